#!/usr/bin/env python3
"""IMAP benchmarks of postbote against a private Dovecot (dovecot-imapd)
holding the same messages, in one run. Run through bench/imap_open.sh and
bench/imap_idle_memory.sh; bench/README.md explains both.

  open  SELECT, UID FETCH 1:* (FLAGS) and FETCH 1:* (ENVELOPE
        BODYSTRUCTURE) on a large folder, cold (first open after a fresh
        start with no index) and warm (repeated), medians and ratios.
  idle  memory of many idle IMAPS connections (logged in, INBOX selected,
        in IDLE): postbote's VmRSS growth per connection against the growth
        of the PSS summed over every Dovecot process.

The Dovecot instance is the benchmark's own: its config, runtime and state
directories, log and Maildir are in the temporary directory, it listens on
127.0.0.1 only, and it is stopped at the end. /etc/dovecot and the system's
service are never touched.

The client is deliberately thin: one TLS socket per session, commands
written whole, responses read in large blocks and recognised by their tagged
line at the end of what arrived, so that it costs far less than the servers
it measures.

Exit status: 0 when the targets are met, 1 when not, 2 when the setup failed.
"""

import argparse
import base64
import os
import pwd
import random
import resource
import shutil
import signal
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import time

USER = "bench@bench.test"
PASSWORD = "bench password"
LOCAL, DOMAIN = USER.split("@")


class SetupError(Exception):
    pass


def log(msg=""):
    print(msg, flush=True)


# ---------------------------------------------------------------- messages

WORDS = ("the of and to in is that for it as was with be by on not he this are or his from at which but "
         "have an they you were her all she there would their we him been has when who will more no if out "
         "so said what up its about into than them can only other new some could time these two may then do "
         "first any my now such like our over man me even most made after also did many before must through "
         "back years where much your way well down should because each just those people how too little state "
         "good very make world still own see men work long get here between both life being under never day "
         "same another know while last might us great old year off come since against go came right used take "
         "three meeting invoice report schedule budget release server mailbox quarterly draft review").split()
NAMES = ("Anna Berg", "Bruno Costa", "Chen Wei", "Dara O'Neill", "Emil Novak", "Fatima Zahra", "Gustav Lind",
         "Hiro Tanaka", "Ines Duarte", "Jonas Weber", "Katrin Müller", "Luca Rossi", "Maya Patel", "Nils Holm")
DOMAINS = ("example.org", "example.com", "mail.example.net", "lists.example.org", "corp.example")


def _words(rnd, n):
    return " ".join(rnd.choice(WORDS) for _ in range(n))


class _Pool:
    """Text lines and base64 lines made once per seed; messages take runs
    of them at random places, which keeps 100,000 messages quick to make
    while every message differs."""

    def __init__(self, rnd):
        self.text = [_words(rnd, rnd.randint(6, 12))[:76] if rnd.random() > 0.12 else "" for _ in range(5000)]
        alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
        self.b64 = ["".join(rnd.choice(alphabet) for _ in range(76)) for _ in range(2000)]


_pools = {}


def _pool(rnd):
    key = id(rnd)
    if key not in _pools:
        _pools[key] = _Pool(rnd)
    return _pools[key]


def _run(rnd, lines, octets):
    n = max(1, octets // 48)
    start = rnd.randrange(len(lines) - n) if n < len(lines) else 0
    return "\n".join(lines[start:start + n]) + "\n"


def _paragraphs(rnd, octets):
    """Plain text of about octets bytes in lines of at most 76 characters."""
    return _run(rnd, _pool(rnd).text, octets)


def _b64_lines(rnd, octets):
    return _run(rnd, _pool(rnd).b64, octets * 60 // 77)


def _address(rnd):
    name = rnd.choice(NAMES)
    local = name.split()[0].lower().replace("'", "")
    addr = "%s%d@%s" % (local, rnd.randint(1, 99), rnd.choice(DOMAINS))
    if not name.isascii():
        # An RFC 2047 encoded word, as real mail has them.
        return "=?UTF-8?B?%s?= <%s>" % (base64.b64encode(name.encode()).decode(), addr)
    if rnd.random() < 0.2:
        return addr
    return '"%s" <%s>' % (name, addr) if "'" in name else "%s <%s>" % (name, addr)


def make_message(rnd, i):
    """One message of a few KB: plain text, multipart/alternative,
    multipart/mixed with an attachment, or a forwarded message/rfc822; LF
    line ends as Maildir files have them. The same i and seed give the same
    bytes."""
    day = 1 + i % 28
    date = "%s, %d %s 2024 %02d:%02d:%02d %s" % (
        ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")[i % 7], day,
        ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")[(i // 28) % 12],
        rnd.randint(0, 23), rnd.randint(0, 59), rnd.randint(0, 59), rnd.choice(("+0000", "+0100", "-0500")))
    head = ["Return-Path: <bounce-%d@%s>" % (i, rnd.choice(DOMAINS)),
            "Received: from mx%d.%s (mx.example.net [192.0.2.%d])\n\tby bench.test with ESMTPS id %08x\n"
            "\tfor <%s>; %s" % (rnd.randint(1, 9), rnd.choice(DOMAINS), rnd.randint(1, 254), i, USER, date),
            "From: %s" % _address(rnd),
            "To: %s" % ", ".join(_address(rnd) for _ in range(rnd.randint(1, 3)))]
    if rnd.random() < 0.3:
        head.append("Cc: %s" % _address(rnd))
    subject = _words(rnd, rnd.randint(3, 9)).capitalize()
    if rnd.random() < 0.3:
        subject = "Re: " + subject
    head += ["Subject: %s" % subject, "Date: %s" % date, "Message-ID: <%d.%x@bench.example>" % (i, i * 7919)]
    if i > 0 and rnd.random() < 0.3:
        head.append("In-Reply-To: <%d.%x@bench.example>" % (i - 1, (i - 1) * 7919))
    head.append("MIME-Version: 1.0")
    kind = rnd.random()
    text_size = rnd.randint(600, 4000)
    if kind < 0.55:
        head.append("Content-Type: text/plain; charset=utf-8")
        head.append("Content-Transfer-Encoding: 8bit")
        body = _paragraphs(rnd, text_size)
    elif kind < 0.8:
        b = "=_alt_%d" % i
        head.append('Content-Type: multipart/alternative; boundary="%s"' % b)
        text = _paragraphs(rnd, text_size // 2)
        html = "<html><body><p>" + text.replace("\n\n", "</p><p>") + "</p></body></html>\n"
        body = ("This is a multi-part message in MIME format.\n\n--%s\nContent-Type: text/plain; charset=utf-8\n"
                "Content-Transfer-Encoding: 7bit\n\n%s\n--%s\nContent-Type: text/html; charset=utf-8\n"
                "Content-Transfer-Encoding: 7bit\n\n%s\n--%s--\n" % (b, text, b, html, b))
    elif kind < 0.95:
        b = "=_mixed_%d" % i
        head.append('Content-Type: multipart/mixed; boundary="%s"' % b)
        text = _paragraphs(rnd, text_size // 2)
        fname = "%s-%d.%s" % (rnd.choice(("report", "invoice", "photo", "notes")), i, rnd.choice(("pdf", "png")))
        ctype = "application/pdf" if fname.endswith("pdf") else "image/png"
        body = ("--%s\nContent-Type: text/plain; charset=us-ascii\n\n%s\n--%s\nContent-Type: %s; name=\"%s\"\n"
                "Content-Disposition: attachment; filename=\"%s\"\nContent-Transfer-Encoding: base64\n\n%s"
                "--%s--\n" % (b, text, b, ctype, fname, fname, _b64_lines(rnd, rnd.randint(800, 3000)), b))
    else:
        b = "=_fwd_%d" % i
        head.append('Content-Type: multipart/mixed; boundary="%s"' % b)
        inner = ("From: %s\nTo: %s\nSubject: %s\nDate: %s\nMessage-ID: <inner.%d@bench.example>\n"
                 "Content-Type: text/plain; charset=utf-8\n\n%s" % (
                     _address(rnd), _address(rnd), _words(rnd, 5), date, i, _paragraphs(rnd, text_size // 2)))
        body = ("--%s\nContent-Type: text/plain; charset=utf-8\n\nForwarded message below.\n\n--%s\n"
                "Content-Type: message/rfc822\nContent-Disposition: inline\n\n%s\n--%s--\n" % (b, b, inner, b))
    return ("\n".join(head) + "\n\n" + body).encode()


def vsize(m):
    return len(m) + m.count(b"\n") - m.count(b"\r\n")


def write_corpus(d, n, seed):
    """n messages as Maildir files in d/cur with ,S= ,W= and flags, most
    of them seen (a large folder is mostly old mail). Returns octets."""
    rnd = random.Random(seed)
    os.makedirs(os.path.join(d, "cur"), exist_ok=True)
    total = 0
    for i in range(n):
        m = make_message(rnd, i)
        flags = rnd.choice(("S", "S", "S", "RS", "FS", ""))
        name = "%d.M%dP%d.bench,S=%d,W=%d:2,%s" % (1700000000 + i, i, 1000 + i % 5000, len(m), vsize(m), flags)
        with open(os.path.join(d, "cur", name), "wb") as f:
            f.write(m)
        total += len(m)
    return total


def link_maildir(corpus, root):
    """The corpus's files as the Maildir root (INBOX), by hard links: the
    same bytes for both servers at no copying cost. Neither server writes
    into a message file; each renames only its own links."""
    for sub in ("cur", "new", "tmp"):
        os.makedirs(os.path.join(root, sub), exist_ok=True)
    src = os.path.join(corpus, "cur")
    for name in os.listdir(src):
        os.link(os.path.join(src, name), os.path.join(root, "cur", name))


# ----------------------------------------------------------------- servers

def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_port(port, proc, what, deadline=60.0):
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise SetupError("%s exited with %d while starting" % (what, proc.returncode))
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise SetupError("%s did not listen on port %d within %.0fs" % (what, port, deadline))


def make_cert(tmp):
    cert, key = os.path.join(tmp, "cert.pem"), os.path.join(tmp, "key.pem")
    r = subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                        "-nodes", "-days", "2", "-subj", "/CN=bench.test", "-keyout", key, "-out", cert],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    if r.returncode != 0:
        raise SetupError("openssl req: %s" % r.stdout.decode(errors="replace"))
    os.chmod(key, 0o644)
    return cert, key


class Server:
    def __init__(self, name, proc, port, root_pid):
        self.name, self.proc, self.port, self.root_pid = name, proc, port, root_pid

    def stop(self):
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)


def start_postbote(bin_, d, cert, key, fill, limit):
    """postbote with one imaps listener, data in d; fill(maildir_root)
    puts the messages in place after the user exists."""
    os.makedirs(d, exist_ok=True)
    port = free_port()
    conf = os.path.join(d, "postbote.conf")
    with open(conf, "w") as f:
        f.write("data_dir = %s/data\nhostname = bench.test\ndomain = %s\nlisten = imaps 127.0.0.1:%d\n"
                "tls_cert = %s\ntls_key = %s\nlog_level = warn\nmax_connections = %d\n"
                "max_connections_per_ip = %d\nimap_max_sessions_per_account = %d\n" % (
                    d, DOMAIN, port, cert, key, limit, limit, limit))
        extra = os.environ.get("POSTBOTE_CONF_EXTRA")
        if extra:
            f.write(extra.replace("\\n", "\n") + "\n")
    r = subprocess.run([bin_, "user", "add", USER, "-c", conf, "--password-stdin"],
                       input=(PASSWORD + "\n").encode(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    if r.returncode != 0:
        raise SetupError("postbote user add: %s" % r.stdout.decode(errors="replace"))
    fill(os.path.join(d, "data", "mail", DOMAIN, LOCAL))
    logf = open(os.path.join(d, "postbote.log"), "wb")
    proc = subprocess.Popen([bin_, "serve", "-c", conf], stdout=logf, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL)
    wait_port(port, proc, "postbote")
    return Server("postbote", proc, port, proc.pid)


def dovecot_users():
    """Dovecot refuses to read mail as root: run as root, its copy belongs
    to nobody and its services run as Debian's dovecot/dovenull."""
    if os.geteuid() == 0:
        return pwd.getpwnam("nobody"), "dovecot", "dovenull"
    me = pwd.getpwuid(os.getuid())
    return me, me.pw_name, me.pw_name


def chown_tree(top, user):
    for dirpath, _dirnames, filenames in os.walk(top):
        os.chown(dirpath, user.pw_uid, user.pw_gid)
        for fn in filenames:
            os.chown(os.path.join(dirpath, fn), user.pw_uid, user.pw_gid)


def start_dovecot(d, cert, key, fill, limit, profile):
    dovecot = shutil.which("dovecot") or "/usr/sbin/dovecot"
    if not os.path.exists(dovecot) or not os.path.exists("/usr/lib/dovecot/imap"):
        raise SetupError("dovecot's IMAP server not found: apt-get install dovecot-imapd")
    port = free_port()
    home = os.path.join(d, "home", USER)
    for sub in ("run", "state", "home"):
        os.makedirs(os.path.join(d, sub), exist_ok=True)
    mail_user, internal, login = dovecot_users()
    fill(os.path.join(home, "Maildir"))
    if os.geteuid() == 0:
        chown_tree(os.path.join(d, "home"), mail_user)
    p = home
    while p != "/":  # the path down to the Maildir must be traversable
        os.chmod(p, os.stat(p).st_mode | 0o055)
        p = os.path.dirname(p)
    with open(os.path.join(d, "passwd"), "w") as f:
        f.write("%s:{PLAIN}%s\n" % (USER, PASSWORD))
    os.chmod(os.path.join(d, "passwd"), 0o644)
    # Dovecot's defaults run one imap-login process (which also carries
    # the TLS of the session after login) and one imap process per
    # connection; "compact" serves many connections per process.
    if profile == "compact":
        login_svc = "service_count = 0\n  client_limit = %d\n  process_min_avail = 1\n  vsz_limit = 0\n" % limit
        imap_svc = "service_count = 0\n  client_limit = %d\n  vsz_limit = 0\n" % limit
    else:
        login_svc = imap_svc = ""
    conf = os.path.join(d, "dovecot.conf")
    with open(conf, "w") as f:
        f.write("""# Written by bench/imap_bench.py; a private instance.
protocols = imap
listen = 127.0.0.1
base_dir = {d}/run
state_dir = {d}/state
log_path = {d}/dovecot.log
default_internal_user = {internal}
default_login_user = {login}
first_valid_uid = {uid}
last_valid_uid = {uid}
ssl = required
ssl_cert = <{cert}
ssl_key = <{key}
disable_plaintext_auth = yes
auth_mechanisms = plain
mail_location = maildir:~/Maildir
default_process_limit = {plimit}
default_client_limit = {climit}
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {d}/passwd
}}
userdb {{
  driver = static
  args = uid={uid} gid={gid} home={d}/home/%u
}}
protocol imap {{
  mail_max_userip_connections = {limit}
}}
service imap-login {{
  inet_listener imap {{
    port = 0
  }}
  inet_listener imaps {{
    port = {port}
    ssl = yes
  }}
  process_limit = {limit}
  {login_svc}}}
service imap {{
  process_limit = {limit}
  {imap_svc}}}
""".format(d=d, internal=internal, login=login, uid=mail_user.pw_uid, gid=mail_user.pw_gid, cert=cert,
           key=key, port=port, limit=limit, plimit=limit, climit=4 * limit + 100, login_svc=login_svc,
           imap_svc=imap_svc))
    logf = open(os.path.join(d, "stdout.log"), "wb")
    proc = subprocess.Popen([dovecot, "-F", "-c", conf], stdout=logf, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL)
    try:
        wait_port(port, proc, "dovecot")
    except SetupError:
        try:
            with open(os.path.join(d, "dovecot.log")) as f:
                sys.stderr.write(f.read()[-3000:])
        except OSError:
            pass
        raise
    return Server("dovecot", proc, port, proc.pid)


# ------------------------------------------------------------------ /proc

def descendants(pid):
    kids = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % d) as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        kids.setdefault(ppid, []).append(int(d))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        for c in kids.get(p, []):
            out.append(c)
            todo.append(c)
    return out


def status_kib(pid, field):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def pss_kib(pid):
    with open("/proc/%d/smaps_rollup" % pid) as f:
        for line in f:
            if line.startswith("Pss:"):
                return int(line.split()[1])
    return 0


def tree_pss(pid):
    """PSS summed over a process and its descendants (KiB), and how many
    processes that was. Shared pages are divided among the processes that
    map them, so the sum counts each page once."""
    total, n = 0, 0
    for p in [pid] + descendants(pid):
        try:
            total += pss_kib(p)
            n += 1
        except OSError:
            pass  # gone meanwhile
    return total, n


def cpu_seconds(pid, children=False):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    ticks = int(fields[11]) + int(fields[12])
    if children:
        ticks += int(fields[13]) + int(fields[14])
    return ticks / os.sysconf("SC_CLK_TCK")


def tree_cpu(pid):
    total = cpu_seconds(pid, children=True)
    for c in descendants(pid):
        try:
            total += cpu_seconds(c)
        except OSError:
            pass
    return total


# ------------------------------------------------------------------ client

class Client:
    """One IMAPS session. Commands are written whole; a response is read in
    large blocks until the block that ends in its tagged line."""

    def __init__(self, port, ctx, timeout=120.0):
        raw = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.sock = ctx.wrap_socket(raw, server_hostname=None)
        self.seq = 0
        self.pending = b""
        self.greeting = self.read_line()

    def read_line(self):
        while b"\r\n" not in self.pending:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise SetupError("connection closed by the server")
            self.pending += chunk
        line, self.pending = self.pending.split(b"\r\n", 1)
        return line

    def command(self, text, keep=False):
        """Send a command; return (tagged line, octets of the response,
        the response when keep)."""
        self.seq += 1
        tag = b"b%d" % self.seq
        self.sock.sendall(tag + b" " + text.encode() + b"\r\n")
        chunks = [self.pending] if self.pending else []
        self.pending = b""
        total = sum(len(c) for c in chunks)
        tail = chunks[0][-600:] if chunks else b""
        while True:
            # The tagged line is the last thing the server sends, so the
            # response is complete when what arrived ends in a line that
            # starts with the tag.
            if tail.endswith(b"\r\n"):
                prev = tail.rfind(b"\r\n", 0, len(tail) - 2)
                start = prev + 2 if prev >= 0 else (0 if total == len(tail) else -1)
                if start >= 0 and tail.startswith(tag + b" ", start):
                    last = tail[start:-2]
                    break
            chunk = self.sock.recv(1 << 20)
            if not chunk:
                raise SetupError("connection closed by the server during %r" % text.split()[0])
            total += len(chunk)
            if keep:
                chunks.append(chunk)
            tail = (tail + chunk)[-600:]
        if not last.startswith(tag + b" OK"):
            raise SetupError("%s: %s" % (text, last.decode(errors="replace")))
        return last, total, b"".join(chunks) if keep else None

    def login(self):
        self.command('LOGIN "%s" "%s"' % (USER, PASSWORD))

    def idle(self):
        self.seq += 1
        self.sock.sendall(b"b%d IDLE\r\n" % self.seq)
        line = self.read_line()
        while line.startswith(b"* "):
            line = self.read_line()
        if not line.startswith(b"+"):
            raise SetupError("IDLE: %s" % line.decode(errors="replace"))

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def client_context():
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


# ---------------------------------------------------------- the open bench

STEPS = ("select", "uid fetch flags", "fetch env+bs")


def open_round(srv, ctx, n):
    """One session: log in, then time SELECT, UID FETCH 1:* (FLAGS) and
    FETCH 1:* (ENVELOPE BODYSTRUCTURE). Returns {step: (seconds, octets,
    server cpu)}."""
    c = Client(srv.port, ctx)
    cpu = (lambda: cpu_seconds(srv.root_pid)) if srv.name == "postbote" else (lambda: tree_cpu(srv.root_pid))
    try:
        c.login()
        out = {}
        for step, cmd, check in (("select", "SELECT INBOX", b"* %d EXISTS" % n),
                                 ("uid fetch flags", "UID FETCH 1:* (FLAGS)", None),
                                 ("fetch env+bs", "FETCH 1:* (ENVELOPE BODYSTRUCTURE)", None)):
            c0 = cpu()
            t0 = time.perf_counter()
            _, octets, data = c.command(cmd, keep=True)
            secs = time.perf_counter() - t0
            used = cpu() - c0
            if check is not None and check not in data:
                raise SetupError("%s %s: no %r" % (srv.name, cmd, check))
            if check is None:
                got = data.count(b" FETCH (")
                if got != n:
                    raise SetupError("%s %s: %d FETCH responses, expected %d" % (srv.name, cmd, got, n))
                if step == "fetch env+bs" and data.count(b"BODYSTRUCTURE (") != n:
                    raise SetupError("%s: not every response has a BODYSTRUCTURE" % srv.name)
            out[step] = (secs, octets, used)
        c.command("LOGOUT")
        return out
    finally:
        c.close()


def bench_open(args, tmp):
    corpus = os.path.join(tmp, "corpus")
    t0 = time.monotonic()
    log("making %d messages (seed %d)" % (args.messages, args.seed))
    octets = write_corpus(corpus, args.messages, args.seed)
    log("  %.1f MiB in %.0fs" % (octets / (1 << 20), time.monotonic() - t0))
    mail_user, _, _ = dovecot_users()
    if os.geteuid() == 0:
        chown_tree(corpus, mail_user)
    cert, key = make_cert(tmp)
    ctx = client_context()
    cold = {s: {st: [] for st in STEPS} for s in ("postbote", "dovecot")}
    warm = {s: {st: [] for st in STEPS} for s in ("postbote", "dovecot")}
    cpu_warm = {s: {st: [] for st in STEPS} for s in ("postbote", "dovecot")}
    sizes = {}
    for cr in range(args.cold_rounds):
        servers = []
        try:
            # A fresh start with no index on either side: postbote adopts
            # the files into its index on the first SELECT, Dovecot builds
            # its index and cache files then.
            if args.only != "dovecot":
                servers.append(start_postbote(args.bin, os.path.join(tmp, "pb%d" % cr), cert, key,
                                              lambda root: link_maildir(corpus, root), 200))
            if args.only != "postbote":
                servers.append(start_dovecot(os.path.join(tmp, "dc%d" % cr), cert, key,
                                             lambda root: link_maildir(corpus, root), 200,
                                             args.dovecot_profile.split()[0]))
            order = servers if cr % 2 == 0 else servers[::-1]
            for srv in order:
                r = open_round(srv, ctx, args.messages)
                for st in STEPS:
                    cold[srv.name][st].append(r[st][0])
                    sizes.setdefault(srv.name, {})[st] = r[st][1]
                log("cold %d %-8s " % (cr + 1, srv.name) +
                    "  ".join("%s %.3fs (cpu %.2fs)" % (st, r[st][0], r[st][2]) for st in STEPS))
            if cr != args.cold_rounds - 1:
                continue
            for wr in range(args.rounds):
                order = servers if wr % 2 == 0 else servers[::-1]
                for srv in order:
                    r = open_round(srv, ctx, args.messages)
                    for st in STEPS:
                        warm[srv.name][st].append(r[st][0])
                        cpu_warm[srv.name][st].append(r[st][2])
                    log("warm %d %-8s " % (wr + 1, srv.name) +
                        "  ".join("%s %.3fs (cpu %.2fs)" % (st, r[st][0], r[st][2]) for st in STEPS))
        finally:
            for s in servers:
                s.stop()
    log("")
    log("response octets: " + "; ".join("%s %s" % (s, ", ".join("%s %d" % (st, sizes[s][st]) for st in STEPS))
                                         for s in sizes))
    log("")
    def med(v):
        return statistics.median(v) if v else float("nan")

    log("%-16s %-5s %12s %12s %8s" % ("median", "", "postbote", "dovecot", "pb/dc"))
    ok = True
    slower = []
    for label, table in (("cold", cold), ("warm", warm)):
        for st in STEPS + ("all three",):
            if st == "all three":
                p = sum(med(table["postbote"][x]) for x in STEPS)
                d = sum(med(table["dovecot"][x]) for x in STEPS)
                # The target: opening and listing the folder, the three
                # commands a client sends for it, as a whole.
                ok = ok and p <= d * args.target
            else:
                p, d = med(table["postbote"][st]), med(table["dovecot"][st])
                if p > d * args.target:
                    slower.append("%s %s" % (st, label))
            log("%-16s %-5s %11.3fs %11.3fs %8.2f" % (st, label, p, d, p / d if d else float("nan")))
    for st in STEPS:
        log("server CPU, warm, %-16s postbote %.2fs  dovecot %.2fs" % (
            st, med(cpu_warm["postbote"][st]), med(cpu_warm["dovecot"][st])))
    if args.only:
        return 0
    log("target: all three postbote/dovecot <= %.2f, cold and warm: %s" % (args.target, "met" if ok else "NOT met"))
    if slower:
        log("steps where postbote is slower: %s" % ", ".join(slower))
    return 0 if ok else 1


# ---------------------------------------------------------- the idle bench

def settle(read, deadline=15.0, quiet=2.5):
    """Read a memory figure until it has not changed for `quiet` seconds
    (the server finished what the last connection started, and postbote
    gave back the buffers of connections quiet for a second, which it does
    once a second), bounded in time."""
    end = time.monotonic() + deadline
    last = read()
    since = time.monotonic()
    while time.monotonic() < end:
        time.sleep(0.25)
        now = read()
        if now != last:
            last, since = now, time.monotonic()
        elif time.monotonic() - since >= quiet:
            return now
    return last


def open_idle(srv, ctx, n, stage, deadline):
    """n sessions in IDLE (or only greeted, with stage "greeting"), made one
    after the other, bounded by a deadline."""
    conns = []
    end = time.monotonic() + deadline
    try:
        for i in range(n):
            if time.monotonic() > end:
                raise SetupError("%s: only %d of %d sessions within %.0fs" % (srv.name, i, n, deadline))
            c = Client(srv.port, ctx, timeout=30)
            conns.append(c)
            if not c.greeting.startswith(b"* OK"):
                raise SetupError("%s greeting: %s" % (srv.name, c.greeting.decode(errors="replace")))
            if stage == "idle":
                c.login()
                c.command("SELECT INBOX")
                c.idle()
    except BaseException:
        for c in conns:
            c.close()
        raise
    return conns


def bench_idle(args, tmp):
    cert, key = make_cert(tmp)
    ctx = client_context()
    corpus = os.path.join(tmp, "corpus")
    write_corpus(corpus, args.idle_messages, args.seed)
    if os.geteuid() == 0:
        chown_tree(corpus, dovecot_users()[0])
    limit = args.connections + 100
    runs = [("postbote", None)] + [("dovecot", p) for p in args.dovecot_profile.split()]
    results = {}
    for name, profile in runs:
        if args.only and name != args.only:
            continue
        label = name if profile is None else "dovecot (%s)" % profile
        srv = None
        conns = []
        try:
            if name == "postbote":
                srv = start_postbote(args.bin, os.path.join(tmp, "pb"), cert, key,
                                     lambda root: link_maildir(corpus, root), limit)

                def mem():
                    return status_kib(srv.root_pid, "VmRSS")

                def pss():
                    return pss_kib(srv.root_pid)
            else:
                srv = start_dovecot(os.path.join(tmp, "dc-" + profile), cert, key,
                                    lambda root: link_maildir(corpus, root), limit, profile)

                def mem():
                    return tree_pss(srv.root_pid)[0]

                pss = mem
            # Warm-up: a few sessions opened and closed, so that one-time
            # work (the index, TLS and library state) is not counted as
            # per-connection memory.
            for c in open_idle(srv, ctx, args.warmup, args.stage, 60):
                c.close()
            if name == "dovecot":
                # Wait until the warm-up's processes are gone.
                base_n = None
                end = time.monotonic() + 30
                while time.monotonic() < end:
                    n = len(descendants(srv.root_pid))
                    if base_n is not None and n == base_n:
                        break
                    base_n = n
                    time.sleep(0.3)
            before = settle(mem)
            before_pss = settle(pss)
            t0 = time.monotonic()
            conns = open_idle(srv, ctx, args.connections, args.stage, args.deadline)
            secs = time.monotonic() - t0
            after = settle(mem)
            after_pss = settle(pss)
            nproc = len(descendants(srv.root_pid)) + 1
            per = (after - before) / args.connections
            results[label] = per
            if name == "postbote":
                log("postbote: %d sessions (%s) in %.1fs; VmRSS %d -> %d KiB: %.1f KiB per connection "
                    "(PSS %.1f KiB)" % (args.connections, args.stage, secs, before, after, per,
                                        (after_pss - before_pss) / args.connections))
            else:
                log("%s: %d sessions (%s) in %.1fs; PSS over %d processes %d -> %d KiB: "
                    "%.1f KiB per connection" % (label, args.connections, args.stage, secs, nproc,
                                                 before, after, per))
        finally:
            for c in conns:
                c.close()
            if srv is not None:
                srv.stop()
    log("")
    log("%-22s %14s %10s" % ("per idle connection", "KiB", "pb/this"))
    for label, per in results.items():
        ratio = results["postbote"] / per if "postbote" in results and per > 0 else float("nan")
        log("%-22s %14.1f %10.3f" % (label, per, ratio))
    ok = True
    if "postbote" in results:
        ok = results["postbote"] < args.target_kib
        log("target: postbote under %g KiB per idle connection: %s" % (args.target_kib, "met" if ok else "NOT met"))
    return 0 if ok else 1


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=("open", "idle"))
    ap.add_argument("--bin", required=True)
    ap.add_argument("--dir", default=None, help="where the temporary directory goes")
    ap.add_argument("--keep", action="store_true")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--dovecot-profile", default="default",
                    help="default, compact, or both separated by a space (idle; open uses the first)")
    ap.add_argument("--only", choices=("postbote", "dovecot"), default=None)
    # open
    ap.add_argument("--messages", type=int, default=100000)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--cold-rounds", type=int, default=1)
    ap.add_argument("--target", type=float, default=1.0)
    # idle
    ap.add_argument("--connections", type=int, default=1000)
    ap.add_argument("--stage", choices=("idle", "greeting"), default="idle")
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--idle-messages", type=int, default=20)
    ap.add_argument("--deadline", type=float, default=600)
    ap.add_argument("--target-kib", type=float, default=32)
    args = ap.parse_args()
    if not args.dovecot_profile.split() or set(args.dovecot_profile.split()) - {"default", "compact"}:
        ap.error("--dovecot-profile: default, compact or \"default compact\"")

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = 2 * args.connections + 200 if args.mode == "idle" else 1024
    if soft < need:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (max(need, min(hard, 65536)), max(hard, need)))
        except (ValueError, OSError):
            print("imap_bench: open files limit %d is below %d" % (soft, need), file=sys.stderr)
            return 2
    base = args.dir or os.environ.get("TMPDIR") or "/tmp"
    os.makedirs(base, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix="postbote-imapbench.", dir=base)
    os.chmod(tmp, 0o755)
    try:
        return bench_open(args, tmp) if args.mode == "open" else bench_idle(args, tmp)
    except SetupError as e:
        print("imap_bench: %s" % e, file=sys.stderr)
        return 2
    finally:
        if args.keep:
            log("kept %s" % tmp)
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
