#!/usr/bin/env python3
"""End-to-end tests of POP3 through the real binary, with real clients:
python3's poplib (plain + STLS, POP3_SSL, USER/PASS and AUTH PLAIN),
fetchmail (keep and delete mode, handing messages to an MDA command that
writes files), curl (pop3s list and retrieve), and raw sockets for what
clients do not do on purpose (dropped connections, bad input, a second
login while the first holds the maildrop).

Messages are put into an account's Maildir as another program would
(tmp/ then rename into new/); the store picks them up when the mailbox is
next opened (contract 4).

Run: python3 tests/e2e/test_pop3.py [test_name ...]
"""

import base64
import os
import poplib
import re
import shutil
import socket
import ssl
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pbtest  # noqa: E402
from pbtest import Server, Skip, TestFailure  # noqa: E402

# poplib refuses lines over 2048 octets; messages have longer ones.
poplib._MAXLINE = 1 << 20

USER = "bob@example.test"
PASSWORD = "bob pw 1"
LISTENS = [("pop3", "127.0.0.1"), ("pop3s", "127.0.0.1")]

# Messages as Maildir files have them: LF line ends (one with CRLF), lines
# that need dot-stuffing, a line that is only ".", 8-bit bytes, a last line
# without its line end.
SAMPLES = [
    b"From: a@example.org\nTo: bob@example.test\nSubject: one\n\nHello Bob.\n.\n.leading dot\n..two dots\nbye\n",
    b"From: a@example.org\r\nSubject: crlf\r\n\r\nA message with CRLF line ends.\r\n.\r\n",
    b"From: c@example.org\nSubject: =?utf-8?q?gr=C3=BC=C3=9Fe?=\n\n8-bit: \xc3\xa4\xc3\xb6\xc3\xbc\nno final newline",
    b"Subject: long\n\n" + (b"x" * 5000 + b"\n") * 3 + b"".join(b"line %d\n" % i for i in range(2000)),
]


def check(cond, msg):
    if not cond:
        raise TestFailure(msg)


def ctx():
    return pbtest.client_context()


def pb(srv, *args, password=None):
    cmd = [pbtest.BIN] + list(args) + ["-c", srv.config_path]
    data = b""
    if password is not None:
        cmd.append("--password-stdin")
        data = (password + "\n").encode()
    r = pbtest.run(cmd, input=data, cwd=srv.dir)
    check(r.returncode == 0, "%s: exit %d: %r %r" % (args, r.returncode, r.stdout, r.stderr))
    return r.stdout.decode("utf-8", "replace")


def maildir(srv, account=USER):
    local, domain = account.split("@")
    return os.path.join(srv.data_dir, "mail", domain, local)


_seq = [0]


def drop(srv, messages, account=USER, with_sizes=True):
    """Put messages into account's INBOX as another program would: write
    into tmp/, rename into new/. Names carry ,S= and ,W= (like Dovecot's
    and postbote's) unless with_sizes is false."""
    root = maildir(srv, account)
    for sub in ("tmp", "new", "cur"):
        os.makedirs(os.path.join(root, sub), exist_ok=True)
    names = []
    for m in messages:
        _seq[0] += 1
        base = "%d.M%dP%d.e2e" % (1700000000 + _seq[0], _seq[0], os.getpid())
        if with_sizes:
            base += ",S=%d,W=%d" % (len(m), vsize(m))
        tmp = os.path.join(root, "tmp", base)
        with open(tmp, "wb") as f:
            f.write(m)
        os.rename(tmp, os.path.join(root, "new", base))
        names.append(base)
    return names


def files_in(srv, account=USER):
    root = maildir(srv, account)
    out = []
    for sub in ("new", "cur"):
        d = os.path.join(root, sub)
        if os.path.isdir(d):
            out += os.listdir(d)
    return sorted(out)


def vsize(m):
    """Octets with CRLF line ends: what STAT and LIST count."""
    return len(m) + len(re.findall(rb"(?<!\r)\n", m))


def crlf_lines(m):
    """The lines poplib hands back for a message (line ends and stuffing
    removed)."""
    text = m.replace(b"\r\n", b"\n")
    if text.endswith(b"\n"):
        text = text[:-1]
    return text.split(b"\n")


def wire(m):
    """The message as it travels: CRLF line ends, the last line ended."""
    text = m.replace(b"\r\n", b"\n")
    if not text.endswith(b"\n"):
        text += b"\n"
    return text.replace(b"\n", b"\r\n")


def server(config=None, users=(USER,)):
    cfg = {"log_level": "info"}
    cfg.update(config or {})
    srv = Server(listens=LISTENS, config=cfg)
    for u in users:
        pb(srv, "user", "add", u, password=PASSWORD)
    return srv


def pop3s(srv, timeout=20):
    return poplib.POP3_SSL("127.0.0.1", srv.port("pop3s"), context=ctx(), timeout=timeout)


def login_pop3s(srv, user=USER, password=PASSWORD):
    p = pop3s(srv)
    p.user(user)
    p.pass_(password)
    return p


def retry_login(srv, timeout=10):
    """Log in once the previous session's lock is gone (the server learns
    of a dropped connection a moment after the client)."""
    deadline = time.monotonic() + timeout
    while True:
        p = pop3s(srv)
        try:
            p.user(USER)
            p.pass_(PASSWORD)
            return p
        except poplib.error_proto as e:
            p.close()
            if b"[IN-USE]" not in e.args[0] or time.monotonic() > deadline:
                raise
            time.sleep(pbtest.POLL)


def uidl_map(p):
    resp, lines, _ = p.uidl()
    check(resp.startswith(b"+OK"), "UIDL: %r" % resp)
    return dict(line.split(b" ", 1) for line in lines)


# ---------------------------------------------------------------- poplib

def test_poplib_stls_user_pass():
    with server() as srv:
        drop(srv, SAMPLES)
        p = poplib.POP3("127.0.0.1", srv.port("pop3"), timeout=20)
        caps = p.capa()
        check("STLS" in caps and "UIDL" in caps and "TOP" in caps and "RESP-CODES" in caps,
              "CAPA before TLS: %r" % caps)
        # Not loopback-trusted by default: no password before TLS.
        check("USER" not in caps and "SASL" not in caps, "login offered without TLS: %r" % caps)
        try:
            p.user(USER)
            raise TestFailure("USER accepted without TLS")
        except poplib.error_proto as e:
            check(e.args[0].startswith(b"-ERR [AUTH]"), "plaintext refusal: %r" % e.args[0])
        p.stls(context=ctx())
        caps = p.capa()
        check("USER" in caps and caps.get("SASL") == ["PLAIN", "LOGIN"] and "STLS" not in caps,
              "CAPA after STLS: %r" % caps)
        p.user(USER)
        p.pass_(PASSWORD)
        count, octets = p.stat()
        check(count == len(SAMPLES) and octets == sum(vsize(m) for m in SAMPLES),
              "STAT %d %d" % (count, octets))
        resp, lines, _ = p.list()
        check([l.split()[1] for l in lines] == [b"%d" % vsize(m) for m in SAMPLES], "LIST %r" % lines)
        for i, m in enumerate(SAMPLES, 1):
            resp, lines, octets = p.retr(i)
            check(resp == b"+OK %d octets" % vsize(m), "RETR %d: %r" % (i, resp))
            check(lines == crlf_lines(m), "RETR %d content differs" % i)
        resp, lines, _ = p.top(1, 2)
        check(lines == crlf_lines(SAMPLES[0])[:6], "TOP 1 2: %r" % lines)
        p.quit()
        check(len(files_in(srv)) == len(SAMPLES), "a message went away")


def test_pop3s_auth_plain_and_login():
    with server() as srv:
        drop(srv, SAMPLES[:2])
        p = pop3s(srv)
        caps = p.capa()
        check("STLS" not in caps and "USER" in caps, "CAPA on pop3s: %r" % caps)
        token = base64.b64encode(b"\0" + USER.encode() + b"\0" + PASSWORD.encode()).decode()
        resp = p._shortcmd("AUTH PLAIN " + token)
        check(resp.startswith(b"+OK"), "AUTH PLAIN: %r" % resp)
        check(p.stat() == (2, vsize(SAMPLES[0]) + vsize(SAMPLES[1])), "STAT after AUTH PLAIN")
        uids = uidl_map(p)
        check(sorted(uids) == [b"1", b"2"] and len(set(uids.values())) == 2, "UIDL %r" % uids)
        p.quit()

        # LOGIN, challenge by challenge, and a wrong password.
        p = pop3s(srv)
        resp = p._shortcmd("AUTH LOGIN")
        check(resp == b"+ VXNlcm5hbWU6", "LOGIN challenge: %r" % resp)
        p._putcmd(base64.b64encode(USER.encode()).decode())
        check(p._getresp() == b"+ UGFzc3dvcmQ6", "LOGIN second challenge")
        p._putcmd(base64.b64encode(b"wrong").decode())
        try:
            p._getresp()
            raise TestFailure("wrong password accepted")
        except poplib.error_proto as e:
            check(e.args[0].startswith(b"-ERR [AUTH]"), "failure: %r" % e.args[0])
        p.quit()


def test_plaintext_login_on_loopback_when_allowed():
    with server({"allow_plaintext_auth_loopback": "yes"}) as srv:
        drop(srv, SAMPLES[:1])
        p = poplib.POP3("127.0.0.1", srv.port("pop3"), timeout=20)
        caps = p.capa()
        check("USER" in caps and "STLS" in caps, "CAPA: %r" % caps)
        p.user(USER)
        p.pass_(PASSWORD)
        check(p.stat()[0] == 1, "STAT")
        p.quit()


# ---------------------------------------------------------------- deletion

def test_dele_rset_quit_deletes_nothing():
    with server() as srv:
        drop(srv, SAMPLES)
        before = files_in(srv)
        p = login_pop3s(srv)
        p.dele(1)
        p.dele(3)
        check(p.stat()[0] == len(SAMPLES) - 2, "STAT after DELE")
        p.rset()
        check(p.stat()[0] == len(SAMPLES), "STAT after RSET")
        p.quit()
        check(files_in(srv) == before, "RSET then QUIT removed files")


def test_dele_quit_removes_files():
    with server() as srv:
        drop(srv, SAMPLES)
        p = login_pop3s(srv)
        uids = uidl_map(p)
        p.dele(2)
        p.dele(4)
        resp = p.quit()
        check(resp == b"+OK postbote signing off (2 messages deleted)", "QUIT: %r" % resp)
        check(len(files_in(srv)) == 2, "files left: %r" % files_in(srv))
        p = login_pop3s(srv)
        check(p.stat() == (2, vsize(SAMPLES[0]) + vsize(SAMPLES[2])), "STAT after the deletions")
        resp, lines, _ = p.retr(2)
        check(lines == crlf_lines(SAMPLES[2]), "message 3 is now number 2")
        # The survivors keep their UIDL.
        after = uidl_map(p)
        check(after == {b"1": uids[b"1"], b"2": uids[b"3"]}, "UIDL changed: %r vs %r" % (uids, after))
        p.quit()
        srv.wait_log(r"pop3 \d+: logout account=bob@example.test retrieved=0 deleted=2")


def test_dropped_connection_deletes_nothing():
    with server() as srv:
        drop(srv, SAMPLES)
        before = files_in(srv)
        c = srv.connect("pop3s")
        c.expect("+OK")
        c.cmd("USER " + USER)
        c.expect("+OK")
        c.cmd("PASS " + PASSWORD)
        c.expect("+OK Logged in")
        for i in range(1, len(SAMPLES) + 1):
            c.cmd("DELE %d" % i)
            c.expect("+OK")
        c.close()   # no QUIT
        srv.wait_log(r"logout account=bob@example.test retrieved=0 deleted=0 \(connection lost\)")
        check(files_in(srv) == before, "a dropped connection removed files")
        p = retry_login(srv)
        check(p.stat()[0] == len(SAMPLES), "messages gone after a drop")
        p.quit()

        # Dropped in the middle of a big RETR: nothing removed either.
        big = b"Subject: big\n\n" + b"y" * 100 + b"\n" * 1 + (b"z" * 999 + b"\n") * 20000
        drop(srv, [big])
        c = srv.connect("pop3s")
        c.expect("+OK")
        c.cmd("USER " + USER)
        c.expect("+OK")
        c.cmd("PASS " + PASSWORD)
        c.expect("+OK Logged in")
        c.cmd("DELE 1")
        c.expect("+OK")
        c.cmd("RETR %d" % (len(SAMPLES) + 1))
        c.expect("+OK")
        c.close()
        p = retry_login(srv)
        check(p.stat()[0] == len(SAMPLES) + 1, "messages gone after a drop mid-RETR")
        p.quit()


# ---------------------------------------------------------------- the lock

def test_in_use_on_second_login():
    with server(users=(USER, "carol@example.test")) as srv:
        drop(srv, SAMPLES[:1])
        first = login_pop3s(srv)
        second = pop3s(srv)
        second.user(USER)
        try:
            second.pass_(PASSWORD)
            raise TestFailure("second login accepted")
        except poplib.error_proto as e:
            check(e.args[0].startswith(b"-ERR [IN-USE]"), "second login: %r" % e.args[0])
        # The session goes on: another account may log in on it.
        second.user("carol@example.test")
        second.pass_(PASSWORD)
        check(second.stat() == (0, 0), "carol's STAT")
        second.quit()
        first.quit()
        again = login_pop3s(srv)
        check(again.stat()[0] == 1, "STAT after the lock was released")
        again.quit()


def test_delivered_during_session_not_shown():
    with server() as srv:
        drop(srv, SAMPLES[:2])
        p = login_pop3s(srv)
        time.sleep(0.01)  # a new mtime for new/ (the store compares them)
        drop(srv, SAMPLES[2:3])
        check(p.stat()[0] == 2, "a message delivered during the session was shown")
        try:
            p.list(3)
            raise TestFailure("LIST 3 answered")
        except poplib.error_proto:
            pass
        p.quit()
        p = login_pop3s(srv)
        check(p.stat()[0] == 3, "the new message is not there at the next login")
        p.quit()


# ---------------------------------------------------------------- UIDL

def test_uidl_stable_across_restart_and_reindex():
    srv = server()
    with srv:
        drop(srv, SAMPLES)
        plain = b"Subject: no sizes in the name\n\nbody\n"
        drop(srv, [plain], with_sizes=False)
        p = login_pop3s(srv)
        first = uidl_map(p)
        sizes = p.list()[1]
        p.quit()
        check(len(first) == len(SAMPLES) + 1 and len(set(first.values())) == len(first), "UIDL %r" % first)
        check(all(re.fullmatch(rb"[0-9A-F]{16}", v) for v in first.values()), "UIDL format %r" % first)
        check(sizes[-1] == b"%d %d" % (len(first), vsize(plain)), "size of a file without ,W=: %r" % sizes[-1])
    srv.start()
    with srv:
        p = login_pop3s(srv)
        check(uidl_map(p) == first, "UIDL changed across a restart")
        p.quit()
    out = pb(srv, "reindex")
    check("INBOX: 5 messages" in out, "reindex: %r" % out)
    srv.start()
    with srv:
        p = login_pop3s(srv)
        check(uidl_map(p) == first, "UIDL changed across reindex")
        p.quit()


# ---------------------------------------------------------------- volume

def test_thousand_messages():
    msgs = [b"From: n%d@example.org\nSubject: message %d\n\n" % (i, i) +
            b"".join(b"%d.%d body line\n" % (i, k) for k in range(i % 40)) +
            (b".starts with a dot\n" if i % 7 == 0 else b"")
            for i in range(1000)]
    with server() as srv:
        drop(srv, msgs)
        p = login_pop3s(srv)
        check(p.stat() == (1000, sum(vsize(m) for m in msgs)), "STAT %r" % (p.stat(),))
        resp, lines, _ = p.list()
        check(len(lines) == 1000, "LIST gave %d lines" % len(lines))
        sizes = sorted(int(l.split()[1]) for l in lines)
        check(sizes == sorted(vsize(m) for m in msgs), "LIST sizes")
        uids = uidl_map(p)
        check(len(uids) == 1000 and len(set(uids.values())) == 1000, "UIDL not unique")
        got = set()
        for i in range(1, 1001):
            resp, body, _ = p.retr(i)
            got.add(b"\n".join(body) + b"\n")
        check(got == {m for m in msgs}, "RETR of all did not give back every message")
        p.quit()


def test_big_message_streamed_with_bounded_memory():
    big = b"Subject: big\n\n" + b"".join(b"%08d " % i + b"q" * 90 + b"\n" for i in range(150000))
    with server() as srv:
        drop(srv, [big])
        p = login_pop3s(srv)

        def rss_kb():
            with open("/proc/%d/status" % srv.pid) as f:
                return int(re.search(r"VmRSS:\s+(\d+)", f.read()).group(1))
        before = rss_kb()
        resp, lines, octets = p.retr(1)
        after = rss_kb()
        check(resp == b"+OK %d octets" % vsize(big), "RETR: %r" % resp)
        check(b"\n".join(lines) + b"\n" == big, "content differs")
        # About 15 MB went out; the server holds a few buffers, not the
        # message. (AddressSanitizer keeps freed memory in quarantine, so
        # its RSS says nothing about this.)
        with open("/proc/%d/maps" % srv.pid) as f:
            sanitized = "libasan" in f.read()
        check(sanitized or after - before < 8 * 1024, "RSS grew by %d KiB" % (after - before))
        p.quit()


# ---------------------------------------------------------------- bad input

def test_bad_input_then_too_many_errors():
    with server({"max_bad_commands": "5"}) as srv:
        drop(srv, SAMPLES[:1])
        c = srv.connect("pop3s")
        c.expect("+OK")
        c.cmd("STAT")
        c.expect("-ERR Command not valid in this state")
        c.cmd("USER " + USER)
        c.expect("+OK")
        c.cmd("PASS " + PASSWORD)
        c.expect("+OK Logged in")
        c.cmd("RETR 2")
        c.expect("-ERR No such message")
        c.cmd("DELE 1")
        c.expect("+OK")
        c.cmd("RETR 1")
        c.expect("-ERR Message is marked as deleted")
        c.cmd("X" * 3000)
        c.expect("-ERR Line too long")
        c.cmd("NOOP")
        c.expect("+OK")
        c.cmd("FROB")
        c.expect("-ERR Unknown command")
        c.expect("-ERR Too many errors")
        c.expect_eof()
        # Closing for errors is not QUIT: nothing removed.
        p = retry_login(srv)
        check(p.stat()[0] == 1, "message removed")
        p.quit()


def test_login_throttle():
    cfg = {"auth_fail_delay": "1s", "auth_lockout_failures": "3", "auth_lockout_time": "1m"}
    with server(cfg) as srv:
        c = srv.connect("pop3s")
        c.expect("+OK")
        times = []
        replies = []
        for i in range(4):
            t0 = time.monotonic()
            c.cmd("USER " + USER)
            c.expect("+OK")
            # Different each time: a repeated wrong password counts once.
            c.cmd("PASS wrong %d" % i)
            replies.append(c.readline(timeout=30))
            times.append(time.monotonic() - t0)
        check(all(r.startswith("-ERR [AUTH]") for r in replies[:3]), "failures: %r" % replies)
        check(times[1] >= 0.9, "second failure answered after %.2fs" % times[1])
        check(replies[3].startswith("-ERR [LOGIN-DELAY]"), "locked: %r" % replies[3])
        # Locked: even the right password is refused for now.
        c.cmd("USER " + USER)
        c.expect("+OK")
        c.cmd("PASS " + PASSWORD)
        c.expect("-ERR [LOGIN-DELAY]")
        c.close()


# ---------------------------------------------------------------- fetchmail, curl

def fetchmail_run(srv, workdir, keep, port_kind="pop3s"):
    if shutil.which("fetchmail") is None:
        raise Skip("fetchmail is not installed (apt-get install fetchmail)")
    out = os.path.join(workdir, "out")
    os.makedirs(out, exist_ok=True)
    rc = os.path.join(workdir, "fetchmailrc")
    ssl_opt = "ssl" if port_kind == "pop3s" else "sslproto TLS1.2+"
    with open(rc, "w") as f:
        # invisible: no Received line of its own, so the bytes compare.
        f.write('set no bouncemail\nset invisible\n'
                'poll 127.0.0.1 service %d protocol pop3 uidl auth password\n'
                '  user "%s" password "%s" is root here\n'
                '  %s no sslcertck %s\n'
                '  mda "sh -c \'cat > %s/m.$$\'"\n'
                % (srv.port(port_kind), USER, PASSWORD, ssl_opt, "keep" if keep else "no keep", out))
    os.chmod(rc, 0o600)
    env = dict(os.environ, HOME=workdir)
    r = subprocess.run(["fetchmail", "-f", rc, "--nosyslog", "--idfile", os.path.join(workdir, "ids"),
                        "-v"], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       env=env, timeout=120)
    text = r.stdout.decode("utf-8", "replace")
    # 0: mail fetched; 1: no mail.
    check(r.returncode in (0, 1), "fetchmail exit %d:\n%s" % (r.returncode, text[-3000:]))
    got = []
    for name in sorted(os.listdir(out)):
        with open(os.path.join(out, name), "rb") as f:
            got.append(f.read())
        os.unlink(os.path.join(out, name))
    return got, text


def mda_form(m):
    """What an MDA gets from fetchmail: LF line ends, the last line ended."""
    text = m.replace(b"\r\n", b"\n")
    return text if text.endswith(b"\n") else text + b"\n"


def test_fetchmail_keep_then_delete():
    with server() as srv:
        drop(srv, SAMPLES)
        work = pbtest.make_temp_dir("postbote-fetchmail-")
        got, log = fetchmail_run(srv, work, keep=True)
        check(sorted(got) == sorted(mda_form(m) for m in SAMPLES),
              "fetchmail (keep) delivered different bytes:\n%s" % log[-2000:])
        check(len(files_in(srv)) == len(SAMPLES), "keep mode removed messages")
        # UIDL: already seen, nothing fetched again.
        got, log = fetchmail_run(srv, work, keep=True)
        check(got == [], "fetchmail fetched %d messages again:\n%s" % (len(got), log[-2000:]))
        # Delete mode over STLS on the plain port: fetch (only what is
        # new to it, none) with flush semantics off, so use a new id file.
        os.unlink(os.path.join(work, "ids"))
        got, log = fetchmail_run(srv, work, keep=False, port_kind="pop3")
        check("STLS" in log, "fetchmail did not use STLS:\n%s" % log[-2000:])
        check(sorted(got) == sorted(mda_form(m) for m in SAMPLES),
              "fetchmail (delete) delivered different bytes:\n%s" % log[-2000:])
        check(files_in(srv) == [], "delete mode left files: %r" % files_in(srv))


def test_curl_pop3s():
    if shutil.which("curl") is None:
        raise Skip("curl is not installed")
    with server() as srv:
        drop(srv, SAMPLES)
        url = "pop3s://127.0.0.1:%d/" % srv.port("pop3s")
        base = ["curl", "-s", "-S", "-k", "--max-time", "60", "-u", "%s:%s" % (USER, PASSWORD)]
        r = pbtest.run(base + [url], timeout=90)
        check(r.returncode == 0, "curl list: %r" % r.stderr)
        listing = r.stdout.decode().split("\r\n")
        check(listing[:len(SAMPLES)] == ["%d %d" % (i, vsize(m)) for i, m in enumerate(SAMPLES, 1)],
              "curl listing %r" % listing)
        for i, m in enumerate(SAMPLES, 1):
            r = pbtest.run(base + [url + str(i)], timeout=90)
            check(r.returncode == 0, "curl RETR %d: %r" % (i, r.stderr))
            check(r.stdout == wire(m), "curl RETR %d content differs: %r" % (i, r.stdout[:200]))
        check(len(files_in(srv)) == len(SAMPLES), "curl removed messages")


if __name__ == "__main__":
    pbtest.main(globals())
