"""Shared helpers for postbote's end-to-end tests.

A test file imports this module, defines functions named test_* and ends
with ``pbtest.main(globals())``. Each test usually starts its own server:

    with pbtest.Server(config={"max_connections": 2}) as srv:
        c = srv.connect("smtp")
        assert c.readline().startswith("220 ")

Everything waits on a condition with a deadline (never a bare sleep used as
synchronisation), every socket has a timeout, and every server started is
stopped in a finally block (the context manager, and the runner again after
each test as a safety net).

For IMAP, Imap is a raw client (tagged commands, literals read whole) and
imap_parse() turns a response into tokens.

Environment:
  POSTBOTE_BIN   the binary (default: <repo>/build/postbote)
  POSTBOTE_KEEP  1 = keep the temp directories of failed tests
"""

import hashlib
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.environ.get("POSTBOTE_SOURCE_DIR") or os.path.dirname(os.path.dirname(HERE))
BIN = os.environ.get("POSTBOTE_BIN") or os.path.join(REPO, "build", "postbote")

ALL_KINDS = ("smtp", "submission", "submissions", "pop3", "pop3s", "imap", "imaps")
IMPLICIT_TLS = ("submissions", "pop3s", "imaps")
PROTO = {
    "smtp": "smtp", "submission": "smtp", "submissions": "smtp",
    "pop3": "pop3", "pop3s": "pop3", "imap": "imap", "imaps": "imap",
}

SOCKET_TIMEOUT = 10.0      # default for every socket the helpers open
START_TIMEOUT = 30.0       # until every listener accepts
STOP_TIMEOUT = 20.0        # SIGTERM until exit, then SIGKILL
POLL = 0.02                # poll interval inside deadline loops


class Skip(Exception):
    """Raise to skip the running test with a reason."""


class TestFailure(AssertionError):
    pass


class Fatal(TestFailure):
    """Raised inside a wait_for condition: stop waiting at once (e.g. the
    server died), rather than retrying until the deadline."""


# ---------------------------------------------------------------- waiting

def wait_for(predicate, timeout, what):
    """Poll predicate() until it returns a true value (which is returned)
    or timeout seconds pass (AssertionError naming what)."""
    deadline = time.monotonic() + timeout
    last_exc = None
    while True:
        try:
            v = predicate()
            if v:
                return v
            last_exc = None
        except Fatal:
            raise
        except Exception as e:  # the condition may raise until it holds
            last_exc = e
        if time.monotonic() >= deadline:
            extra = " (last error: %r)" % (last_exc,) if last_exc else ""
            raise TestFailure("timed out after %.1fs waiting for %s%s" % (timeout, what, extra))
        time.sleep(POLL)


# ---------------------------------------------------------------- ports, dirs, TLS

def have_ipv6_loopback():
    try:
        s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    except OSError:
        return False
    try:
        s.bind(("::1", 0))
        return True
    except OSError:
        return False
    finally:
        s.close()


def free_ports(n, host="127.0.0.1"):
    """n distinct free TCP ports on host (bound to port 0 together, so they
    differ, then released)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    socks = []
    try:
        for _ in range(n):
            s = socket.socket(family, socket.SOCK_STREAM)
            s.bind((host, 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def free_port(host="127.0.0.1"):
    return free_ports(1, host)[0]


def port_is_free(port, host="127.0.0.1"):
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    s = socket.socket(family, socket.SOCK_STREAM)
    try:
        s.bind((host, port))
        return True
    except OSError:
        return False
    finally:
        s.close()


_temp_dirs = []   # (path, owner test) made during the current test


def make_temp_dir(prefix="postbote-e2e-"):
    """A temp directory removed after the test (kept when the test failed
    and POSTBOTE_KEEP=1)."""
    d = tempfile.mkdtemp(prefix=prefix)
    _temp_dirs.append(d)
    return d


def client_context(minimum=None, maximum=None, seclevel0=False):
    """A client SSLContext that accepts the server's self-signed cert."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    if seclevel0:
        ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
    if minimum is not None:
        ctx.minimum_version = minimum
    if maximum is not None:
        ctx.maximum_version = maximum
    return ctx


def pem_der(path):
    """DER bytes of the first certificate in a PEM file."""
    with open(path) as f:
        text = f.read()
    m = re.search(r"-----BEGIN CERTIFICATE-----.*?-----END CERTIFICATE-----", text, re.S)
    if not m:
        raise TestFailure("no certificate in %s" % path)
    return ssl.PEM_cert_to_DER_cert(m.group(0))


def sha256_hex(der):
    return hashlib.sha256(der).hexdigest()


def colon_fingerprint(der):
    h = hashlib.sha256(der).hexdigest().upper()
    return ":".join(h[i:i + 2] for i in range(0, len(h), 2))


def make_self_signed(cert_path, key_path, cn="localhost"):
    """A fresh P-256 self-signed certificate via the openssl command."""
    r = subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
         "-nodes", "-days", "1", "-subj", "/CN=" + cn, "-keyout", key_path, "-out", cert_path],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60)
    if r.returncode != 0:
        raise TestFailure("openssl req failed: %s" % r.stdout.decode(errors="replace"))


# ---------------------------------------------------------------- a line client

class Client:
    """A socket with a read buffer: line reads with a timeout, STARTTLS."""

    def __init__(self, sock, timeout=SOCKET_TIMEOUT):
        self.sock = sock
        self.sock.settimeout(timeout)
        self.buf = b""
        self.timeout = timeout

    # reading
    def _fill(self, timeout):
        self.sock.settimeout(timeout)
        try:
            data = self.sock.recv(65536)
        finally:
            self.sock.settimeout(self.timeout)
        return data

    def readline(self, timeout=None):
        """One line without CRLF; raises EOFError on close, socket.timeout
        after timeout seconds in all."""
        return self.readline_bytes(timeout)[:-1].rstrip(b"\r").decode("utf-8", "replace")

    def readline_bytes(self, timeout=None):
        """One line as bytes, its line end included (for protocols with
        binary data, such as IMAP literals)."""
        timeout = self.timeout if timeout is None else timeout
        deadline = time.monotonic() + timeout
        while b"\n" not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise socket.timeout("no complete line within %.1fs (have %r)" % (timeout, self.buf[:200]))
            data = self._fill(left)
            if not data:
                raise EOFError("connection closed (pending %r)" % self.buf[:200])
            self.buf += data
        i = self.buf.index(b"\n") + 1
        line, self.buf = self.buf[:i], self.buf[i:]
        return line

    def read_exact(self, n, timeout=None):
        """Exactly n bytes."""
        timeout = self.timeout if timeout is None else timeout
        deadline = time.monotonic() + timeout
        while len(self.buf) < n:
            left = deadline - time.monotonic()
            if left <= 0:
                raise socket.timeout("%d of %d bytes within %.1fs" % (len(self.buf), n, timeout))
            data = self._fill(left)
            if not data:
                raise EOFError("connection closed after %d of %d bytes" % (len(self.buf), n))
            self.buf += data
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def read_reply(self, timeout=None):
        """An SMTP reply, possibly multi-line: list of lines."""
        lines = []
        while True:
            line = self.readline(timeout)
            lines.append(line)
            if len(line) < 4 or line[3] != "-":
                return lines

    def read_until(self, pred, timeout=None):
        """Lines until pred(line) is true; returns all of them."""
        lines = []
        while True:
            line = self.readline(timeout)
            lines.append(line)
            if pred(line):
                return lines

    def expect(self, prefix, timeout=None):
        line = self.readline(timeout)
        if not line.startswith(prefix):
            raise TestFailure("expected a line starting %r, got %r" % (prefix, line))
        return line

    def expect_eof(self, timeout=None):
        """The peer closes (any further data is an error)."""
        timeout = self.timeout if timeout is None else timeout
        deadline = time.monotonic() + timeout
        if self.buf:
            raise TestFailure("expected EOF, have unread %r" % self.buf[:200])
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TestFailure("connection still open after %.1fs" % timeout)
            try:
                data = self._fill(left)
            except ssl.SSLError as e:
                # A close without close_notify still counts as a close here.
                if "EOF" in str(e) or "UNEXPECTED_EOF" in str(e):
                    return
                raise
            except (ConnectionResetError, BrokenPipeError):
                return
            if not data:
                return
            raise TestFailure("expected EOF, got %r" % data[:200])

    # writing
    def send(self, text):
        if isinstance(text, str):
            text = text.encode()
        self.sock.sendall(text)

    def cmd(self, line):
        self.send(line + "\r\n")

    def starttls(self, ctx=None):
        if self.buf:
            raise TestFailure("plaintext after the STARTTLS reply: %r" % self.buf[:200])
        ctx = ctx or client_context()
        self.sock = ctx.wrap_socket(self.sock, server_hostname=None)
        self.sock.settimeout(self.timeout)
        return self.sock

    def peer_cert_sha256(self):
        return sha256_hex(self.sock.getpeercert(binary_form=True))

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def connect(host, port, tls=False, ctx=None, timeout=SOCKET_TIMEOUT):
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    s = socket.socket(family, socket.SOCK_STREAM)
    s.settimeout(timeout)
    try:
        s.connect((host, port))
        if tls:
            s = (ctx or client_context()).wrap_socket(s, server_hostname=None)
            s.settimeout(timeout)
    except BaseException:
        s.close()
        raise
    return Client(s, timeout)


# ---------------------------------------------------------------- the server

_servers = []   # every Server made during the current test


class Server:
    """One postbote process with its own temp data dir and config.

    listens: list of (kind, host) pairs; ports are picked free. Default: one
             listener of every kind on 127.0.0.1.
    config:  dict (or list of pairs) of extra "key = value" lines, or None.
    raw_config: text appended verbatim.
    args:    extra command line arguments after "serve -c FILE".
    no_config: run "postbote serve" without -c (development setup); then
             listens must name the (fixed) ports as (kind, host, port).
    wrapper: words put before the binary, e.g. a valgrind command line.
    """

    def __init__(self, listens=None, config=None, raw_config="", args=(), no_config=False,
                 cwd=None, domain="example.test", hostname="mx.example.test", wrapper=()):
        self.dir = make_temp_dir()
        self.data_dir = os.path.join(self.dir, "data")
        self.log_path = os.path.join(self.dir, "postbote.log")
        self.config_path = None if no_config else os.path.join(self.dir, "postbote.conf")
        self.cwd = cwd or self.dir
        self.args = list(args)
        self.wrapper = list(wrapper)   # e.g. ["valgrind", ...] before the binary
        self.no_config = no_config
        self.proc = None
        self.returncode = None
        self.hostname = hostname
        self.domain = domain
        if listens is None:
            listens = [(k, "127.0.0.1") for k in ALL_KINDS]
        self.listens = []
        if no_config:
            self.listens = [tuple(l) for l in listens]
        else:
            by_host = {}
            for kind, host in listens:
                by_host.setdefault(host, []).append(kind)
            ports = {h: iter(free_ports(len(k), h)) for h, k in by_host.items()}
            for kind, host in listens:
                self.listens.append((kind, host, next(ports[host])))
        self.extra = []
        if isinstance(config, dict):
            self.extra = list(config.items())
        elif config:
            self.extra = list(config)
        self.raw_config = raw_config
        self._logf = None
        if not no_config:
            self.write_config()
        _servers.append(self)

    # config
    def config_text(self, extra=None, raw=None):
        lines = ["# written by tests/e2e/pbtest.py",
                 "data_dir = %s" % self.data_dir,
                 "hostname = %s" % self.hostname,
                 "domain = %s" % self.domain,
                 "shutdown_timeout = 5s"]
        keys = {k for k, _ in (self.extra if extra is None else extra)}
        if "shutdown_timeout" in keys:
            lines.remove("shutdown_timeout = 5s")
        for kind, host, port in self.listens:
            h = "[%s]" % host if ":" in host else host
            lines.append("listen = %s %s:%d" % (kind, h, port))
        for k, v in (self.extra if extra is None else extra):
            lines.append("%s = %s" % (k, v))
        lines.append(self.raw_config if raw is None else raw)
        return "\n".join(lines) + "\n"

    def write_config(self, text=None):
        """(Re)write the config file: the server's own, or the given text."""
        data = self.config_text() if text is None else text
        tmp = self.config_path + ".tmp"
        with open(tmp, "w") as f:
            f.write(data)
        os.replace(tmp, self.config_path)

    # ports
    def port(self, kind, host="127.0.0.1"):
        for k, h, p in self.listens:
            if k == kind and h == host:
                return p
        raise KeyError("no %s listener on %s" % (kind, host))

    def addr(self, kind, host="127.0.0.1"):
        return "%s:%d" % ("[%s]" % host if ":" in host else host, self.port(kind, host))

    # process
    def command(self):
        cmd = self.wrapper + [BIN, "serve"]
        if not self.no_config:
            cmd += ["-c", self.config_path]
        return cmd + self.args

    def start(self, wait=True, timeout=START_TIMEOUT):
        if not os.path.exists(BIN):
            raise TestFailure("binary %s not found (build it or set POSTBOTE_BIN)" % BIN)
        self._logf = open(self.log_path, "ab")
        self.proc = subprocess.Popen(self.command(), stdin=subprocess.DEVNULL, stdout=self._logf,
                                     stderr=subprocess.STDOUT, cwd=self.cwd)
        if wait:
            self.wait_ready(timeout)
        return self

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    @property
    def pid(self):
        return self.proc.pid

    def _check_alive(self):
        if self.proc is not None and self.proc.poll() is not None:
            raise Fatal("postbote exited with %d; log:\n%s" %
                              (self.proc.returncode, tail(self.log_text(), 30)))

    def wait_ready(self, timeout=START_TIMEOUT):
        """Until every listener accepts a connection. The probe connections
        are closed again and waited for (their close is logged), so they do
        not count against connection limits afterwards."""
        closes_before = self.count_log(r"conn \d+ close:")
        probes = 0
        for kind, host, port in self.listens:
            def accepts():
                self._check_alive()
                family = socket.AF_INET6 if ":" in host else socket.AF_INET
                s = socket.socket(family, socket.SOCK_STREAM)
                s.settimeout(1.0)
                try:
                    s.connect((host, port))
                    return True
                except OSError:
                    return False
                finally:
                    s.close()
            wait_for(accepts, timeout, "%s listener %s:%d to accept" % (kind, host, port))
            probes += 1
        if not re.search(r"log_level\s*=\s*(warn|error)", self.config_text() if not self.no_config else ""):
            wait_for(lambda: self._check_alive() or
                     self.count_log(r"conn \d+ close:") >= closes_before + probes,
                     timeout, "the %d probe connections to be closed" % probes)
        return self

    def signal(self, sig):
        self._check_alive()
        self.proc.send_signal(sig)

    def stop(self, timeout=STOP_TIMEOUT):
        """SIGTERM, wait for exit (SIGKILL after timeout); the exit code."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            try:
                self.proc.send_signal(signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
                self.returncode = self.proc.returncode
                self._close_log()
                raise TestFailure("postbote did not exit within %.0fs of SIGTERM; killed" % timeout)
        self.returncode = self.proc.returncode
        self._close_log()
        return self.returncode

    def wait_exit(self, timeout=STOP_TIMEOUT):
        """Wait (sending nothing) for the process to exit; its exit code.
        SIGKILL and fail after timeout."""
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise TestFailure("postbote still running after %.0fs" % timeout)
        self.returncode = self.proc.returncode
        self._close_log()
        return self.returncode

    def kill(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                pass
        self._close_log()

    def _close_log(self):
        if self._logf is not None:
            self._logf.close()
            self._logf = None

    # the log
    def log_text(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def log_mark(self):
        """An offset into the log; wait_log(since=mark) looks only after it."""
        return len(self.log_text())

    def count_log(self, regex, since=0):
        return len(re.findall(regex, self.log_text()[since:]))

    def wait_log(self, regex, timeout=10.0, since=0):
        """Until regex matches the log (after offset since); the match."""
        rx = re.compile(regex)

        def found():
            m = rx.search(self.log_text()[since:])
            if m is None and self.proc is not None and self.proc.poll() is not None:
                # One last read: the line may have come with the exit.
                m = rx.search(self.log_text()[since:])
                if m is None:
                    raise Fatal("postbote exited (%d) before logging /%s/"
                                      % (self.proc.returncode, regex))
            return m
        return wait_for(found, timeout, "log line /%s/" % regex)

    # clients
    def connect(self, kind, host="127.0.0.1", tls=None, ctx=None, timeout=SOCKET_TIMEOUT):
        """A Client on a listener; implicit-TLS kinds are wrapped in TLS."""
        if tls is None:
            tls = kind in IMPLICIT_TLS
        return connect(host, self.port(kind, host), tls=tls, ctx=ctx, timeout=timeout)

    def __enter__(self):
        if self.proc is None:
            self.start()
        return self

    def __exit__(self, *exc):
        if self.proc is not None and self.proc.poll() is None:
            try:
                self.stop()
            except TestFailure:
                if exc[0] is None:
                    raise
        self._close_log()


def tail(text, n):
    return "\n".join(text.splitlines()[-n:])


def run(cmd, input=None, timeout=30, cwd=None):
    """subprocess.run with captured text output and a timeout."""
    return subprocess.run(cmd, input=input, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          timeout=timeout, cwd=cwd)


# ---------------------------------------------------------------- accounts

def add_user(srv, address, password):
    """Add an account with the CLI (the server may be running or not)."""
    r = run([BIN, "user", "add", address, "-c", srv.config_path, "--password-stdin"],
            input=(password + "\n").encode(), cwd=srv.dir)
    if r.returncode != 0:
        raise TestFailure("user add %s: exit %d: %r" % (address, r.returncode, r.stderr))


# ---------------------------------------------------------------- IMAP

def imap_parse(data):
    """The tokens of one IMAP response (or of a part of one): atoms and
    numbers as str, quoted strings and literals as bytes, NIL as None,
    parenthesised lists as lists. A bracketed part of an atom is kept
    whole ("BODY[HEADER.FIELDS (SUBJECT)]<0>")."""
    pos = 0
    n = len(data)

    def parse_list(close):
        nonlocal pos
        out = []
        while True:
            while pos < n and data[pos:pos + 1] in (b" ", b"\r", b"\n"):
                pos += 1
            if pos >= n:
                if close is None:
                    return out
                raise TestFailure("unbalanced parentheses in %r" % data[:300])
            c = data[pos:pos + 1]
            if c == b")":
                if close is None:
                    raise TestFailure("stray ')' in %r" % data[:300])
                pos += 1
                return out
            if c == b"(":
                pos += 1
                out.append(parse_list(b")"))
            elif c == b'"':
                pos += 1
                s = bytearray()
                while data[pos:pos + 1] != b'"':
                    if pos >= n:
                        raise TestFailure("unterminated quoted string in %r" % data[:300])
                    if data[pos:pos + 1] == b"\\":
                        pos += 1
                    s += data[pos:pos + 1]
                    pos += 1
                pos += 1
                out.append(bytes(s))
            elif c == b"{" or data[pos:pos + 2] == b"~{":
                m = re.match(rb"~?\{(\d+)\+?\}\r\n", data[pos:])
                if not m:
                    raise TestFailure("bad literal at %r" % data[pos:pos + 40])
                pos += m.end()
                size = int(m.group(1))
                out.append(data[pos:pos + size])
                pos += size
            else:
                start = pos
                depth = 0
                while pos < n:
                    c = data[pos:pos + 1]
                    if c == b"[":
                        depth += 1
                    elif c == b"]":
                        depth -= 1
                    elif depth == 0 and c in (b" ", b"(", b")", b"\r", b"\n"):
                        break
                    pos += 1
                atom = data[start:pos].decode("utf-8", "replace")
                out.append(None if atom.upper() == "NIL" else atom)
    return parse_list(None)


class ImapResult:
    """A command's untagged responses (each whole, literals inline, as
    bytes without the leading "* ") and its tagged completion."""

    def __init__(self, tag, untagged, tagged):
        self.tag = tag
        self.untagged = untagged
        self.tagged = tagged          # the completion line without tag and CRLF
        self.status = tagged.split(b" ", 1)[0].decode()

    @property
    def ok(self):
        return self.status == "OK"

    def named(self, name):
        """Untagged responses of a kind ("FETCH", "EXISTS", "LIST"...),
        as token lists."""
        out = []
        for u in self.untagged:
            toks = imap_parse(u)
            if len(toks) >= 2 and isinstance(toks[1], str) and toks[1].upper() == name and toks[0].isdigit():
                out.append(toks)
            elif toks and isinstance(toks[0], str) and toks[0].upper() == name:
                out.append(toks)
        return out

    def __repr__(self):
        return "<%s %r untagged=%r>" % (self.tag, self.tagged, [u[:200] for u in self.untagged])


class Imap:
    """A raw IMAP client over a Client: for what imaplib does not do (IDLE,
    pipelining, LITERAL+, malformed input) and for exact checks of
    responses."""

    def __init__(self, client, timeout=SOCKET_TIMEOUT):
        self.c = client
        self.timeout = timeout
        self.n = 0

    @classmethod
    def open(cls, srv, kind="imaps", timeout=SOCKET_TIMEOUT):
        imap = cls(srv.connect(kind, timeout=timeout), timeout)
        greeting = imap.read_response()
        if not greeting.startswith(b"* OK"):
            raise TestFailure("IMAP greeting %r" % greeting)
        imap.greeting = greeting
        return imap

    def next_tag(self):
        self.n += 1
        return "t%d" % self.n

    def send(self, data):
        self.c.send(data)

    def read_response(self, timeout=None):
        """One response, its literals read whole and kept inline."""
        timeout = self.timeout if timeout is None else timeout
        out = b""
        while True:
            line = self.c.readline_bytes(timeout)
            out += line
            m = re.search(rb"\{(\d+)\}\r\n$", line)
            if not m:
                return out
            out += self.c.read_exact(int(m.group(1)), timeout)

    def finish(self, tag, timeout=None):
        """Responses until tag's completion: an ImapResult."""
        untagged = []
        while True:
            r = self.read_response(timeout)
            if r.startswith(tag.encode() + b" "):
                return ImapResult(tag, untagged, r[len(tag) + 1:].rstrip(b"\r\n"))
            if r.startswith(b"* "):
                untagged.append(r[2:].rstrip(b"\r\n"))
            else:
                raise TestFailure("unexpected response to %s: %r" % (tag, r[:300]))

    def finish_many(self, tags, timeout=None):
        """Responses until every tag in tags has completed (pipelined
        commands may be answered in any order, RFC 3501 5.5): the untagged
        responses of all, and {tag: completion line}."""
        untagged = []
        done = {}
        while len(done) < len(tags):
            r = self.read_response(timeout)
            tag = r.split(b" ", 1)[0].decode(errors="replace")
            if tag in tags and tag not in done:
                done[tag] = r[len(tag) + 1:].rstrip(b"\r\n")
            elif r.startswith(b"* "):
                untagged.append(r[2:].rstrip(b"\r\n"))
            else:
                raise TestFailure("unexpected response to %s: %r" % (tags, r[:300]))
        return untagged, done

    def cmd(self, text, timeout=None):
        """Send "TAG text" and read to its completion."""
        if isinstance(text, str):
            text = text.encode()
        tag = self.next_tag()
        self.send(tag.encode() + b" " + text + b"\r\n")
        return self.finish(tag, timeout)

    def ok(self, text, timeout=None):
        r = self.cmd(text, timeout)
        if not r.ok:
            raise TestFailure("%s: %r" % (text if isinstance(text, str) else text[:80], r))
        return r

    def login(self, user, password):
        return self.ok('LOGIN "%s" "%s"' % (user, password))

    def close(self):
        self.c.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


# ---------------------------------------------------------------- the runner

def expected_failure(reason):
    """Mark a test as failing because of a known server bug."""
    def deco(fn):
        fn.expected_failure = reason
        return fn
    return deco


def _cleanup_after_test(failed):
    keep = failed and os.environ.get("POSTBOTE_KEEP") == "1"
    for srv in _servers:
        if failed:
            print("---- last 60 lines of %s ----" % srv.log_path)
            print(tail(srv.log_text(), 60))
            print("---- end of log ----")
        try:
            srv.kill()
        except Exception:
            pass
    for d in _temp_dirs:
        if keep:
            print("kept %s" % d)
        else:
            shutil.rmtree(d, ignore_errors=True)
    _servers.clear()
    _temp_dirs.clear()


def main(namespace):
    """Run the test_* functions of namespace in definition order (or the
    ones named on the command line); print ok/FAIL per test and a final
    "N passed, M failed"; exit 1 if any failed."""
    tests = [(name, fn) for name, fn in namespace.items()
             if name.startswith("test_") and callable(fn)]
    wanted = sys.argv[1:]
    if wanted:
        unknown = [w for w in wanted if w not in dict(tests)]
        if unknown:
            print("unknown test(s): %s" % ", ".join(unknown))
            sys.exit(2)
        tests = [(n, f) for n, f in tests if n in wanted]
    passed = failed = skipped = xfailed = 0
    print("postbote binary: %s" % BIN)
    sys.stdout.flush()
    for name, fn in tests:
        t0 = time.monotonic()
        xfail = getattr(fn, "expected_failure", None)
        test_failed = False
        try:
            fn()
        except Skip as e:
            print("skip %s: %s" % (name, e))
            skipped += 1
        except Exception:
            if xfail:
                print("expected failure %s (%s):" % (name, xfail))
                print(traceback.format_exc().rstrip())
                xfailed += 1
            else:
                test_failed = True
                print("FAIL %s (%.2fs)" % (name, time.monotonic() - t0))
                print(traceback.format_exc().rstrip())
                failed += 1
        else:
            if xfail:
                print("ok   %s (%.2fs) -- marked expected failure (%s) but passed"
                      % (name, time.monotonic() - t0, xfail))
            else:
                print("ok   %s (%.2fs)" % (name, time.monotonic() - t0))
            passed += 1
        _cleanup_after_test(test_failed)
        sys.stdout.flush()
    if skipped or xfailed:
        print("(%d skipped, %d expected failures)" % (skipped, xfailed))
    print("%d passed, %d failed" % (passed, failed))
    sys.stdout.flush()
    sys.exit(1 if failed else 0)
