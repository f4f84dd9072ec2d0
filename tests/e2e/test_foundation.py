#!/usr/bin/env python3
"""End-to-end test of the Foundation issue: the real binary on free loopback
ports with one listener of every kind, driven by Python's own protocol
clients, raw sockets and openssl s_client.

Run: python3 tests/e2e/test_foundation.py [test_name ...]
     (POSTBOTE_BIN=path/to/postbote, POSTBOTE_KEEP=1 to keep failed dirs)
"""

import imaplib
import os
import poplib
import re
import select
import shutil
import signal
import smtplib
import socket
import ssl
import subprocess
import sys
import time
import warnings

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pbtest  # noqa: E402
from pbtest import Server, Skip, TestFailure, wait_for  # noqa: E402

# TLS 1.0/1.1 are deprecated in Python's ssl module; we use them on purpose.
warnings.filterwarnings("ignore", category=DeprecationWarning)

TIMEOUT = 10


def check(cond, msg):
    if not cond:
        raise TestFailure(msg)


def smtp_banner_ok(line, srv):
    check(re.match(r"^220 %s ESMTP" % re.escape(srv.hostname), line), "SMTP banner %r" % line)


# ------------------------------------------------------------ command line

def test_cli():
    d = pbtest.make_temp_dir()
    good = os.path.join(d, "good.conf")
    with open(good, "w") as f:
        f.write("data_dir = %s/data\ndomain = example.test\nlisten = smtp 127.0.0.1:2525\n" % d)
    r = pbtest.run([pbtest.BIN, "check-config", "-c", good])
    check(r.returncode == 0, "check-config good.conf: exit %d, %r" % (r.returncode, r.stderr))
    check(b"configuration OK" in r.stdout, "check-config stdout %r" % r.stdout)

    bad = os.path.join(d, "bad.conf")
    with open(bad, "w") as f:
        f.write("domain = example.test\nlisten = smtp 127.0.0.1:2525\nlisten_typo = 1\n")
    r = pbtest.run([pbtest.BIN, "check-config", "-c", bad])
    check(r.returncode == 78, "check-config bad.conf: exit %d (want 78)" % r.returncode)
    check(("%s:3:" % bad).encode() in r.stderr, "check-config error %r does not name %s:3:" % (r.stderr, bad))

    r = pbtest.run([pbtest.BIN])
    check(r.returncode == 64, "no arguments: exit %d (want 64)" % r.returncode)
    check(b"usage" in r.stderr, "no arguments: no usage text: %r" % r.stderr)

    r = pbtest.run([pbtest.BIN, "version"])
    check(r.returncode == 0 and re.match(rb"^postbote \d+\.\d+", r.stdout),
          "version: exit %d, %r" % (r.returncode, r.stdout))

    r = pbtest.run([pbtest.BIN, "bogus"])
    check(r.returncode == 64, "bogus command: exit %d (want 64)" % r.returncode)
    check(b"bogus" in r.stderr, "bogus command: stderr %r" % r.stderr)


# ------------------------------------------------------------ banners

def test_banners():
    listens = [(k, "127.0.0.1") for k in pbtest.ALL_KINDS]
    v6 = pbtest.have_ipv6_loopback()
    if v6:
        listens.append(("smtp", "::1"))
    else:
        print("  (no IPv6 loopback: [::1] listener not tested)")
    with Server(listens=listens) as srv:
        # The self-signed certificate made on first start, and its log line.
        cert = os.path.join(srv.data_dir, "tls", "cert.pem")
        check(os.path.exists(cert) and os.path.exists(os.path.join(srv.data_dir, "tls", "key.pem")),
              "no self-signed cert/key in %s/tls" % srv.data_dir)
        m = srv.wait_log(r"TLS certificate (\S+), SHA-256 fingerprint ([0-9A-F:]+)")
        check(m.group(1) == cert, "log names cert %r, want %r" % (m.group(1), cert))
        fp = pbtest.colon_fingerprint(pbtest.pem_der(cert))
        check(m.group(2) == fp, "logged fingerprint %s != file's %s" % (m.group(2), fp))

        expect = {"smtp": "220 ", "submission": "220 ", "pop3": "+OK", "imap": "* OK"}
        for kind, want in expect.items():
            with srv.connect(kind) as c:
                line = c.readline()
                check(line.startswith(want), "%s banner %r" % (kind, line))
                if kind in ("smtp", "submission"):
                    smtp_banner_ok(line, srv)
                if kind == "imap":
                    check("STARTTLS" in line, "imap banner lacks STARTTLS: %r" % line)
        if v6:
            with srv.connect("smtp", host="::1") as c:
                smtp_banner_ok(c.readline(), srv)

        # Implicit TLS with Python's ssl.
        expect = {"submissions": "220 ", "pop3s": "+OK", "imaps": "* OK"}
        for kind, want in expect.items():
            with srv.connect(kind) as c:
                line = c.readline()
                check(line.startswith(want), "%s banner %r" % (kind, line))
                check(c.sock.version() in ("TLSv1.2", "TLSv1.3"), "%s TLS version %s" % (kind, c.sock.version()))
                check(c.peer_cert_sha256() == pbtest.sha256_hex(pbtest.pem_der(cert)),
                      "%s serves a different certificate" % kind)
                if kind == "imaps":
                    check("STARTTLS" not in line, "imaps offers STARTTLS: %r" % line)


def test_openssl_s_client_implicit_tls():
    with Server(listens=[("imaps", "127.0.0.1"), ("pop3s", "127.0.0.1")]) as srv:
        r = pbtest.run(["openssl", "s_client", "-connect", srv.addr("imaps"), "-quiet", "-ign_eof"],
                       input=b"a LOGOUT\r\n", timeout=30)
        out = r.stdout.decode(errors="replace")
        check("* OK" in out and "* BYE" in out and "a OK LOGOUT" in out,
              "s_client imaps: rc %d stdout %r stderr %r" % (r.returncode, out, r.stderr[-500:]))
        r = pbtest.run(["openssl", "s_client", "-connect", srv.addr("pop3s"), "-quiet", "-ign_eof"],
                       input=b"QUIT\r\n", timeout=30)
        out = r.stdout.decode(errors="replace")
        check(out.startswith("+OK") and "+OK postbote signing off" in out,
              "s_client pop3s: rc %d stdout %r" % (r.returncode, out))


# ------------------------------------------------------------ STARTTLS

def test_starttls_python_clients():
    ctx = pbtest.client_context()
    with Server() as srv:
        for kind in ("smtp", "submission"):
            s = smtplib.SMTP("127.0.0.1", srv.port(kind), timeout=TIMEOUT)
            try:
                code, _ = s.ehlo("client.example")
                check(code == 250 and s.has_extn("starttls"), "%s EHLO: %d, STARTTLS offered? %s" %
                      (kind, code, s.has_extn("starttls")))
                code, msg = s.starttls(context=ctx)
                check(code == 220, "%s STARTTLS: %d %r" % (kind, code, msg))
                check(s.sock.version() in ("TLSv1.2", "TLSv1.3"), "%s TLS %s" % (kind, s.sock.version()))
                code, _ = s.ehlo("client.example")
                check(code == 250, "%s EHLO after TLS: %d" % (kind, code))
                check(not s.has_extn("starttls"), "%s offers STARTTLS inside TLS" % kind)
                check(s.noop()[0] == 250, "%s NOOP inside TLS" % kind)
                check(s.quit()[0] == 221, "%s QUIT" % kind)
            finally:
                s.close()

        p = poplib.POP3("127.0.0.1", srv.port("pop3"), timeout=TIMEOUT)
        try:
            check(p.getwelcome().startswith(b"+OK"), "pop3 welcome %r" % p.getwelcome())
            check("STLS" in p.capa(), "pop3 CAPA lacks STLS")
            resp = p.stls(context=ctx)
            check(resp.startswith(b"+OK"), "pop3 STLS %r" % resp)
            check("STLS" not in p.capa(), "pop3 offers STLS inside TLS")
            check(p.quit().startswith(b"+OK"), "pop3 QUIT")
        finally:
            p.close()

        m = imaplib.IMAP4("127.0.0.1", srv.port("imap"), timeout=TIMEOUT)
        try:
            check("STARTTLS" in m.capabilities, "imap capabilities %r" % (m.capabilities,))
            typ, data = m.starttls(ssl_context=ctx)
            check(typ == "OK", "imap STARTTLS %s %r" % (typ, data))
            check("STARTTLS" not in m.capabilities, "imap offers STARTTLS inside TLS: %r" % (m.capabilities,))
            check(m.noop()[0] == "OK", "imap NOOP inside TLS")
            check(m.logout()[0] == "BYE", "imap LOGOUT")
        finally:
            try:
                m.shutdown()
            except OSError:
                pass


def test_openssl_s_client_starttls_smtp():
    with Server(listens=[("smtp", "127.0.0.1")]) as srv:
        r = pbtest.run(["openssl", "s_client", "-starttls", "smtp", "-connect", srv.addr("smtp"),
                        "-quiet", "-ign_eof"], input=b"EHLO x\r\nNOOP\r\nQUIT\r\n", timeout=30)
        out = r.stdout.decode(errors="replace")
        check("250 2.0.0 OK" in out and "221 2.0.0" in out,
              "s_client -starttls smtp: rc %d stdout %r stderr %r" % (r.returncode, out, r.stderr[-500:]))
        check("STARTTLS" not in out, "STARTTLS offered again inside TLS: %r" % out)


def _injection(srv, kind, banner, starttls, injected, expect_ready, after_tls, expect_first, forbidden):
    c = srv.connect(kind)
    try:
        c.expect(banner)
        # Both commands in one packet: the second one is plaintext that
        # must be thrown away, not executed inside the TLS session.
        c.send(starttls + "\r\n" + injected + "\r\n")
        c.expect(expect_ready)
        c.starttls()
        c.cmd(after_tls)
        first = c.readline()
        check(not first.startswith(forbidden),
              "%s: the injected %r was answered after TLS started: %r" % (kind, injected, first))
        check(first.startswith(expect_first), "%s: first reply inside TLS %r, want %r"
              % (kind, first, expect_first))
        return c
    except BaseException:
        c.close()
        raise


def test_starttls_injection():
    with Server(listens=[("smtp", "127.0.0.1"), ("imap", "127.0.0.1"), ("pop3", "127.0.0.1")]) as srv:
        c = _injection(srv, "smtp", "220 ", "STARTTLS", "NOOP", "220 2.0.0", "EHLO x", "250",
                       "250 2.0.0 OK")
        with c:
            rest = c.read_reply()  # the rest of the EHLO reply
            check(not any("2.0.0 OK" in l for l in rest), "smtp: NOOP answer inside EHLO reply %r" % rest)
            c.cmd("NOOP")
            check(c.readline() == "250 2.0.0 OK", "smtp NOOP after TLS")
            c.cmd("QUIT")
            c.expect("221 ")

        c = _injection(srv, "imap", "* OK", "a STARTTLS", "b NOOP", "a OK", "c NOOP", "c OK", "b ")
        with c:
            c.cmd("d LOGOUT")
            lines = c.read_until(lambda l: l.startswith("d "))
            check(lines[-1].startswith("d OK"), "imap LOGOUT %r" % lines)

        c = _injection(srv, "pop3", "+OK", "STLS", "CAPA", "+OK", "QUIT", "+OK postbote signing off",
                       "+OK Capability")
        c.close()


# ------------------------------------------------------------ TLS versions

def _tls_connect(port, ctx):
    s = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
    try:
        t = ctx.wrap_socket(s, server_hostname=None)
    except BaseException:
        s.close()
        raise
    return t


def test_tls_versions():
    V = ssl.TLSVersion
    with Server(listens=[("imaps", "127.0.0.1"), ("submissions", "127.0.0.1")]) as srv:
        port = srv.port("imaps")
        for old in (V.TLSv1, V.TLSv1_1):
            mark = srv.log_mark()
            ctx = pbtest.client_context(minimum=old, maximum=old, seclevel0=True)
            try:
                t = _tls_connect(port, ctx)
            except ssl.SSLError as e:
                if "NO_PROTOCOLS_AVAILABLE" in str(e) or "no protocols available" in str(e):
                    # The local OpenSSL cannot offer it: ask s_client instead.
                    _s_client_old_tls(srv, port, old)
                    continue
                # The client offered the old version; the server said no.
                srv.wait_log(r"TLS failure from 127\.0\.0\.1", since=mark)
            except (ConnectionResetError, BrokenPipeError):
                srv.wait_log(r"TLS failure from 127\.0\.0\.1", since=mark)
            else:
                v = t.version()
                t.close()
                raise TestFailure("%s handshake succeeded (%s)" % (old.name, v))
        for new, name in ((V.TLSv1_2, "TLSv1.2"), (V.TLSv1_3, "TLSv1.3")):
            ctx = pbtest.client_context(minimum=new, maximum=new)
            t = _tls_connect(port, ctx)
            try:
                check(t.version() == name, "wanted %s, got %s" % (name, t.version()))
                c = pbtest.Client(t)
                c.expect("* OK")
                c.cmd("a NOOP")
                c.expect("a OK")
            finally:
                t.close()


def _s_client_old_tls(srv, port, version):
    flag = {ssl.TLSVersion.TLSv1: "-tls1", ssl.TLSVersion.TLSv1_1: "-tls1_1"}[version]
    d = pbtest.make_temp_dir()
    conf = os.path.join(d, "openssl.cnf")
    with open(conf, "w") as f:
        f.write("# empty: no system MinProtocol\n")
    env = dict(os.environ, OPENSSL_CONF=conf)
    mark = srv.log_mark()
    r = subprocess.run(["openssl", "s_client", flag, "-cipher", "DEFAULT@SECLEVEL=0",
                        "-connect", "127.0.0.1:%d" % port], input=b"", stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=30, env=env)
    out = (r.stdout + r.stderr).decode(errors="replace")
    check(r.returncode != 0, "openssl s_client %s succeeded:\n%s" % (flag, out[-1500:]))
    check(not re.search(r"Protocol\s*:\s*TLSv1(\.1)?\s*$", out, re.M) or "Cipher is (NONE)" in out,
          "openssl s_client %s negotiated:\n%s" % (flag, out[-1500:]))
    # The refusal came from the server, not from the local OpenSSL.
    srv.wait_log(r"TLS failure from 127\.0\.0\.1", since=mark)


# ------------------------------------------------------------ SIGHUP

def test_sighup_certificate_swap():
    d = pbtest.make_temp_dir()
    pairs = []
    for i in (1, 2):
        cp, kp = os.path.join(d, "c%d.pem" % i), os.path.join(d, "k%d.pem" % i)
        pbtest.make_self_signed(cp, kp)
        pairs.append((cp, kp, pbtest.sha256_hex(pbtest.pem_der(cp))))
    check(pairs[0][2] != pairs[1][2], "the two generated certificates are the same")
    live_cert, live_key = os.path.join(d, "live-cert.pem"), os.path.join(d, "live-key.pem")

    def install(i):
        shutil.copyfile(pairs[i][0], live_cert)
        shutil.copyfile(pairs[i][1], live_key)
    install(0)
    fp1, fp2 = pairs[0][2], pairs[1][2]

    cfg = {"tls_cert": live_cert, "tls_key": live_key}
    with Server(config=cfg) as srv:
        m = srv.wait_log(r"TLS certificate (\S+), SHA-256 fingerprint ([0-9A-F:]+)")
        check(m.group(1) == live_cert, "log names %r" % m.group(1))
        check(m.group(2) == pbtest.colon_fingerprint(pbtest.pem_der(pairs[0][0])), "logged fingerprint")

        def new_fp(kind="imaps"):
            with srv.connect(kind) as c:
                c.readline()
                return c.peer_cert_sha256()

        check(new_fp() == fp1, "before SIGHUP: not the first certificate")
        a = srv.connect("imaps")
        try:
            a.expect("* OK")
            check(a.peer_cert_sha256() == fp1, "connection A: not the first certificate")

            install(1)
            mark = srv.log_mark()
            srv.signal(signal.SIGHUP)
            srv.wait_log(r"reload: done", since=mark)
            m = srv.wait_log(r"TLS certificate (\S+), SHA-256 fingerprint ([0-9A-F:]+)", since=mark)
            check(m.group(2) == pbtest.colon_fingerprint(pbtest.pem_der(pairs[1][0])),
                  "reload logged fingerprint %s" % m.group(2))
            for kind in ("imaps", "pop3s", "submissions"):
                check(new_fp(kind) == fp2, "after SIGHUP: %s serves the old certificate" % kind)
            # STARTTLS takes the new one too.
            with srv.connect("imap") as c:
                c.expect("* OK")
                c.cmd("a STARTTLS")
                c.expect("a OK")
                c.starttls()
                check(c.peer_cert_sha256() == fp2, "after SIGHUP: imap STARTTLS serves the old certificate")
            a.cmd("a NOOP")
            a.expect("a OK")

            # A broken certificate: nothing changes.
            with open(live_cert, "w") as f:
                f.write("-----BEGIN CERTIFICATE-----\nbroken\n-----END CERTIFICATE-----\n")
            mark = srv.log_mark()
            srv.signal(signal.SIGHUP)
            srv.wait_log(r"keeping the running certificate", since=mark)
            check("reload: done" not in srv.log_text()[mark:], "reload: done after a broken certificate")
            check(new_fp() == fp2, "broken cert: new connection does not get the second certificate")
            a.cmd("b NOOP")
            a.expect("b OK")

            # A broken config file: nothing changes either.
            install(1)
            srv.write_config("this is not a config file\nlisten = nowhere\n")
            mark = srv.log_mark()
            srv.signal(signal.SIGHUP)
            srv.wait_log(r"keeping the running configuration", since=mark)
            check("reload: done" not in srv.log_text()[mark:], "reload: done after a broken config")
            check(new_fp() == fp2, "broken config: new connection does not get the second certificate")
            with srv.connect("smtp") as c:
                smtp_banner_ok(c.readline(), srv)
                c.cmd("NOOP")
                c.expect("250 ")
            a.cmd("c NOOP")
            a.expect("c OK")
            a.cmd("d LOGOUT")
            a.expect("* BYE")
            a.expect("d OK")
        finally:
            a.close()
        check(srv.stop() == 0, "exit code after SIGHUPs")


# ------------------------------------------------------------ connection limits

def _refused(srv, kind, want):
    """A connection on kind is refused with a line starting want, then closed."""
    c = srv.connect(kind, timeout=5)
    with c:
        line = c.readline()
        check(line.startswith(want), "%s over the limit: %r, want %r" % (kind, line, want))
        c.expect_eof(timeout=5)
        if kind in pbtest.IMPLICIT_TLS:
            check(c.sock.version() is not None, "%s refusal not over TLS" % kind)
    return line


def _accepted_again(srv, kind, want):
    """wait_for a connection on kind that is greeted (the close of another
    one is processed asynchronously); returns the open Client."""
    def attempt():
        c = srv.connect(kind, timeout=5)
        line = c.readline()
        if line.startswith(want):
            return c
        c.close()
        return None
    return wait_for(attempt, 10, "a %s connection to be accepted again" % kind)


def test_limit_per_ip():
    listens = [(k, "127.0.0.1") for k in ("smtp", "pop3", "imap", "imaps", "submissions")]
    with Server(listens=listens, config={"max_connections_per_ip": 3}) as srv:
        held = []
        try:
            for _ in range(3):
                c = srv.connect("smtp")
                held.append(c)
                smtp_banner_ok(c.readline(), srv)
            line = _refused(srv, "smtp", "421 4.7.0")
            check("from your address" in line, "per-IP refusal text %r" % line)
            _refused(srv, "pop3", "-ERR [SYS/TEMP]")
            _refused(srv, "imap", "* BYE")
            srv.wait_log(r"refusing 127\.0\.0\.1 .*too many connections from this address")
            held.pop(0).close()
            held.append(_accepted_again(srv, "smtp", "220 "))
            # Back at the limit.
            _refused(srv, "pop3", "-ERR [SYS/TEMP]")
            held.pop().close()
            held.append(_accepted_again(srv, "imap", "* OK"))
            # The sessions that were let in are unharmed.
            *smtp_sessions, imap_session = held
            for c in smtp_sessions:
                c.cmd("NOOP")
                c.expect("250 ")
            imap_session.cmd("a NOOP")
            imap_session.expect("a OK")
        finally:
            for c in held:
                c.close()


def test_limit_global():
    listens = [(k, "127.0.0.1") for k in ("smtp", "pop3", "imap", "imaps", "submissions")]
    with Server(listens=listens, config={"max_connections": 2}) as srv:
        held = []
        try:
            c = srv.connect("smtp")
            held.append(c)
            smtp_banner_ok(c.readline(), srv)
            c = srv.connect("imaps")
            held.append(c)
            c.expect("* OK")
            line = _refused(srv, "smtp", "421 4.7.0")
            check("from your address" not in line, "global refusal blames the address: %r" % line)
            _refused(srv, "pop3", "-ERR [SYS/TEMP]")
            _refused(srv, "imap", "* BYE")
            held.pop(0).close()
            held.append(_accepted_again(srv, "pop3", "+OK"))
            _refused(srv, "smtp", "421 4.7.0")
            held[0].cmd("a NOOP")
            held[0].expect("a OK")
        finally:
            for c in held:
                c.close()


# The refusal on an implicit-TLS listener is a test of its own, so that a
# crash there (conn_tls_ready() once read the timeout of the session a
# refused connection does not have: SIGSEGV) cannot take the plaintext
# limit tests above down with it.


def _limit_implicit_tls(config, want_from_ip):
    listens = [(k, "127.0.0.1") for k in ("smtp", "imaps", "submissions", "pop3s")]
    with Server(listens=listens, config=config) as srv:
        held = []
        try:
            n = config.get("max_connections_per_ip", config.get("max_connections"))
            for _ in range(n):
                c = srv.connect("smtp")
                held.append(c)
                smtp_banner_ok(c.readline(), srv)
            line = _refused(srv, "imaps", "* BYE")
            check(("from your address" in line) == want_from_ip, "refusal text %r" % line)
            _refused(srv, "submissions", "421 4.7.0")
            _refused(srv, "pop3s", "-ERR [SYS/TEMP]")
            held.pop(0).close()
            held.append(_accepted_again(srv, "imaps", "* OK"))
            check(srv.running(), "server died")
        finally:
            for c in held:
                c.close()


def test_limit_per_ip_implicit_tls():
    _limit_implicit_tls({"max_connections_per_ip": 3}, True)


def test_limit_global_implicit_tls():
    _limit_implicit_tls({"max_connections": 2}, False)


# ------------------------------------------------------------ overlong lines

def test_overlong_line():
    listens = [("smtp", "127.0.0.1"), ("imap", "127.0.0.1")]
    with Server(listens=listens, config={"imap_line_max": 1024}) as srv:
        with srv.connect("smtp") as c:
            c.readline()
            # 1000 octets with CRLF is the RFC 5321 limit and must pass.
            c.send("NOOP " + "x" * 993 + "\r\n")
            check(c.readline() == "250 2.0.0 OK", "1000-octet line refused")
            c.send("NOOP " + "x" * 4993 + "\r\n")  # 5000 octets
            line = c.readline()
            check(line.startswith("500 5.5.2"), "5000-octet line: %r" % line)
            c.cmd("NOOP")
            line = c.readline()
            check(line == "250 2.0.0 OK", "NOOP after the long line: %r" % line)
            c.cmd("QUIT")
            c.expect("221 ")
        with srv.connect("imap") as c:
            c.expect("* OK")
            c.send("a NOOP " + "x" * 3000 + "\r\n")
            line = c.readline()
            check(re.match(r"^(\*|a) BAD", line), "overlong IMAP line: %r" % line)
            c.cmd("b NOOP")
            line = c.readline()
            check(line.startswith("b OK"), "NOOP after the long line: %r" % line)


# ------------------------------------------------------------ back-pressure

def _rss_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def test_backpressure():
    n = 20000
    with Server(listens=[("smtp", "127.0.0.1")], config={"write_buffer_max": "64K"}) as srv:
        a = srv.connect("smtp")
        try:
            a.readline()
            rss0 = _rss_kb(srv.pid)
            sock = a.sock
            sock.setblocking(False)
            data = b"NOOP\r\n" * n
            sent = 0
            deadline = time.monotonic() + 10
            while sent < len(data) and time.monotonic() < deadline:
                _, w, _ = select.select([], [sock], [], 0.1)
                if w:
                    try:
                        sent += sock.send(data[sent:sent + 65536])
                    except BlockingIOError:
                        pass
            print("  sent %d of %d bytes without reading" % (sent, len(data)))

            # The stuck client does not hold up anyone else.
            with srv.connect("smtp", timeout=2) as b:
                t0 = time.monotonic()
                smtp_banner_ok(b.readline(timeout=2), srv)
                b.cmd("NOOP")
                check(b.readline(timeout=2) == "250 2.0.0 OK", "other session NOOP")
                check(time.monotonic() - t0 < 2, "other session slow")
            rss1 = _rss_kb(srv.pid)
            print("  server RSS %d kB before, %d kB while the client was not reading" % (rss0, rss1))
            check(rss1 - rss0 < 64 * 1024, "server grew by %d kB" % (rss1 - rss0))

            # Now read everything (sending the rest as room appears).
            buf = b""
            count = 0
            other = []
            deadline = time.monotonic() + 60
            while count < n:
                check(time.monotonic() < deadline, "only %d of %d replies after 60s" % (count, n))
                want_w = [sock] if sent < len(data) else []
                r, w, _ = select.select([sock], want_w, [], 0.5)
                if w:
                    try:
                        sent += sock.send(data[sent:sent + 65536])
                    except BlockingIOError:
                        pass
                if r:
                    chunk = sock.recv(262144)
                    check(chunk, "server closed the connection after %d replies" % count)
                    buf += chunk
                    *lines, buf = buf.split(b"\r\n")
                    for l in lines:
                        if l == b"250 2.0.0 OK":
                            count += 1
                        else:
                            other.append(l)
            check(not other, "unexpected replies: %r" % other[:5])
            check(count == n and buf == b"", "replies: %d, left over %r" % (count, buf[:100]))
            sock.setblocking(True)
            sock.settimeout(TIMEOUT)
            a.buf = b""
            a.cmd("QUIT")
            line = a.readline()
            check(line.startswith("221 "), "QUIT after the flood: %r (extra replies?)" % line)
        finally:
            a.close()


def test_backpressure_stops_reading():
    """Past 20,000 commands: a client that pipelines without end and never
    reads must end up blocked (the server stopped reading it) long before the
    server's memory grows with it."""
    cap = 64 * 1024 * 1024
    with Server(listens=[("smtp", "127.0.0.1")], config={"write_buffer_max": "64K"}) as srv:
        a = srv.connect("smtp")
        try:
            a.readline()
            rss0 = _rss_kb(srv.pid)
            sock = a.sock
            sock.setblocking(False)
            chunk = b"NOOP\r\n" * 10923  # 65538 bytes, whole commands
            sent = 0
            blocked_since = None
            deadline = time.monotonic() + 60
            while sent < cap:
                check(time.monotonic() < deadline, "still sending after 60s (%d bytes)" % sent)
                _, w, _ = select.select([], [sock], [], 0.1)
                if w:
                    try:
                        n = sock.send(chunk[sent % len(chunk):])
                        sent += n
                        blocked_since = None
                        continue
                    except BlockingIOError:
                        pass
                if blocked_since is None:
                    blocked_since = time.monotonic()
                elif time.monotonic() - blocked_since > 1.5:
                    break
            check(sent < cap, "the server kept reading %d bytes from a client that never reads" % sent)
            rss1 = _rss_kb(srv.pid)
            print("  blocked after %d bytes; server RSS %d kB -> %d kB" % (sent, rss0, rss1))
            check(rss1 - rss0 < 32 * 1024, "server grew by %d kB" % (rss1 - rss0))
            with srv.connect("smtp", timeout=2) as b:
                smtp_banner_ok(b.readline(timeout=2), srv)

            # Finish the last partial command, then read every reply.
            if sent % 6:
                rest = 6 - sent % 6
            else:
                rest = 0
            pending = b"NOOP\r\n"[6 - rest:] if rest else b""
            commands = (sent + rest) // 6
            buf = b""
            count = 0
            deadline = time.monotonic() + 120
            while count < commands:
                check(time.monotonic() < deadline, "only %d of %d replies" % (count, commands))
                r, w, _ = select.select([sock], [sock] if pending else [], [], 0.5)
                if w and pending:
                    try:
                        pending = pending[sock.send(pending):]
                    except BlockingIOError:
                        pass
                if r:
                    data = sock.recv(1 << 20)
                    check(data, "server closed after %d replies" % count)
                    buf += data
                    cut = buf.rfind(b"\r\n") + 2
                    if cut >= 2:
                        whole, buf = buf[:cut], buf[cut:]
                        k = whole.count(b"\r\n")
                        ok = whole.count(b"250 2.0.0 OK\r\n")
                        check(ok == k, "unexpected replies among %r" % whole[:200])
                        count += k
            check(count == commands and buf == b"", "replies %d of %d, left %r" % (count, commands, buf[:50]))
            sock.setblocking(True)
            sock.settimeout(TIMEOUT)
            a.cmd("QUIT")
            check(a.readline().startswith("221 "), "QUIT after the flood")
        finally:
            a.close()


# ------------------------------------------------------------ SIGTERM

def test_sigterm_with_open_sessions():
    with Server() as srv:
        sessions = {}
        try:
            for kind, banner in (("smtp", "220 "), ("pop3", "+OK"), ("imap", "* OK"),
                                 ("submissions", "220 "), ("imaps", "* OK")):
                c = srv.connect(kind)
                sessions[kind] = c
                c.expect(banner)
            t0 = time.monotonic()
            srv.signal(signal.SIGTERM)
            for kind, want in (("smtp", "421 4.3.2"), ("pop3", "-ERR"), ("imap", "* BYE"),
                               ("submissions", "421 4.3.2"), ("imaps", "* BYE")):
                c = sessions[kind]
                c.expect(want)
                c.expect_eof()
            # Wait without a second SIGTERM: the exit must come from the first.
            rc = srv.wait_exit(timeout=15)
            check(rc == 0, "exit code %s after SIGTERM" % rc)
            elapsed = time.monotonic() - t0
            print("  stopped %.2fs after SIGTERM" % elapsed)
            check("still busy" not in srv.log_text(), "sessions had to be aborted at the deadline")
            check(re.search(r"postbote stopped", srv.log_text()), "no 'postbote stopped' in the log")
        finally:
            for c in sessions.values():
                c.close()


# ------------------------------------------------------------ port in use

def test_port_in_use():
    with Server() as srv:
        d = pbtest.make_temp_dir()
        conf = os.path.join(d, "second.conf")
        text = srv.config_text().replace(srv.data_dir, os.path.join(d, "data"))
        with open(conf, "w") as f:
            f.write(text)
        r = pbtest.run([pbtest.BIN, "serve", "-c", conf], timeout=30)
        err = r.stderr.decode(errors="replace")
        check(r.returncode == 69, "second instance: exit %d (want 69); stderr %r" % (r.returncode, err))
        first = srv.listens[0]
        check("127.0.0.1:%d" % first[2] in err, "stderr %r does not name 127.0.0.1:%d" % (err, first[2]))
        with srv.connect("smtp") as c:
            smtp_banner_ok(c.readline(), srv)


# ------------------------------------------------------------ trace

def test_trace_masks_secrets():
    with Server(listens=[("smtp", "127.0.0.1")], args=["--trace"]) as srv:
        with srv.connect("smtp") as c:
            c.readline()
            c.cmd("EHLO trace.example")
            c.read_reply()
            c.cmd("AUTH PLAIN c2VjcmV0")
            c.readline()
            c.cmd("QUIT")
            c.expect("221 ")
        srv.wait_log(r"C: AUTH PLAIN \*\*\*")
        srv.wait_log(r"C: EHLO trace\.example")
        log = srv.log_text()
        check("c2VjcmV0" not in log, "the secret is in the log")
        check("secret" not in log, "the decoded secret is in the log")


# ------------------------------------------------------------ idle timeout

def test_idle_timeout():
    # config.c: smtp_timeout has a minimum of 1000 ms, so 1s is accepted.
    with Server(listens=[("smtp", "127.0.0.1")], config={"smtp_timeout": "1s"}) as srv:
        with srv.connect("smtp") as c:
            c.readline()
            t0 = time.monotonic()
            line = c.readline(timeout=10)
            elapsed = time.monotonic() - t0
            check(line.startswith("421 4.4.2"), "idle client got %r" % line)
            check(elapsed > 0.8, "timed out after only %.2fs" % elapsed)
            c.expect_eof()


# ------------------------------------------------------------ development setup

DEV_PORTS = (("smtp", 2025), ("submission", 2587), ("submissions", 2465), ("pop3", 2110),
             ("pop3s", 2995), ("imap", 2143), ("imaps", 2993))


def test_dev_setup():
    busy = [p for _, p in DEV_PORTS if not pbtest.port_is_free(p)]
    if busy:
        raise Skip("development ports in use on this machine: %s" % busy)
    srv = Server(listens=[(k, "127.0.0.1", p) for k, p in DEV_PORTS], no_config=True)
    try:
        srv.start()
    except pbtest.Fatal:
        if srv.proc.poll() == 69 and "cannot listen" in srv.log_text():
            raise Skip("a development port was taken between the check and the start")
        raise
    with srv:
        with srv.connect("smtp") as c:
            line = c.readline()
            check(line.startswith("220 localhost ESMTP"), "dev banner %r" % line)
        tls = os.path.join(srv.cwd, "postbote-data", "tls")
        check(os.path.exists(os.path.join(tls, "cert.pem")) and os.path.exists(os.path.join(tls, "key.pem")),
              "no certificate in ./postbote-data/tls")
        srv.wait_log(r"TLS certificate \./postbote-data/tls/cert\.pem, SHA-256 fingerprint")
        with srv.connect("imaps") as c:
            c.expect("* OK")
        check(srv.stop() == 0, "dev server exit code")


if __name__ == "__main__":
    pbtest.main(globals())
