#!/usr/bin/env python3
"""End-to-end tests of SMTP receipt (25) and submission (587, 465) through
the real binary with real clients: python3's smtplib, swaks and curl.

Every delivered message is read back from the Maildir and compared with
what was sent, apart from the Return-Path and Received headers the server
adds (the store keeps LF line ends, so CRLF is compared as LF).

Run: python3 tests/e2e/test_smtp.py [test_name ...]
"""

import glob
import os
import re
import shutil
import signal
import smtplib
import socket
import ssl
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pbtest  # noqa: E402
from pbtest import Server, TestFailure, wait_for  # noqa: E402

DOMAIN = "example.test"
PASSWORD = "correct horse battery"
SMTP_KINDS = [("smtp", "127.0.0.1"), ("submission", "127.0.0.1"), ("submissions", "127.0.0.1")]


def check(cond, msg):
    if not cond:
        raise TestFailure(msg)


def tls_ctx():
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def pb(srv, *args, password=None):
    cmd = [pbtest.BIN] + list(args) + ["-c", srv.config_path]
    data = None
    if password is not None:
        cmd.append("--password-stdin")
        data = (password + "\n").encode()
    r = pbtest.run(cmd, input=data, cwd=srv.dir)
    check(r.returncode == 0, "%s: exit %d: %r" % (args, r.returncode, r.stderr))
    return r


def mail_server(config=None, users=("alice", "bob")):
    cfg = {"auth_fail_delay": "1s", "auth_fail_delay_max": "2s"}
    cfg.update(config or {})
    srv = Server(listens=SMTP_KINDS, config=cfg, domain=DOMAIN)
    for u in users:
        pb(srv, "user", "add", "%s@%s" % (u, DOMAIN), password=PASSWORD)
    srv.start()
    return srv


def maildir(srv, user):
    return os.path.join(srv.data_dir, "mail", DOMAIN, user)


def delivery_order(path):
    """Sort key: when the store named the file. Maildir names carry the
    microseconds without leading zeros ("1700000000.M50000P..."), so their
    text order is not their time order."""
    m = re.match(r"(\d+)\.M(\d+)P\d+Q(\d+)\.", os.path.basename(path))
    return (int(m.group(1)), int(m.group(2)), int(m.group(3))) if m else (0, 0, 0)


def delivered_files(srv, user):
    root = maildir(srv, user)
    return sorted(glob.glob(os.path.join(root, "new", "*")) + glob.glob(os.path.join(root, "cur", "*")),
                  key=delivery_order)


def wait_delivered(srv, user, n=1):
    return wait_for(lambda: len(delivered_files(srv, user)) >= n and delivered_files(srv, user), 10,
                    "%d message(s) for %s" % (n, user))


def split_trace(data):
    """(Return-Path + Received headers, the rest) of a stored message."""
    check(data.startswith(b"Return-Path: <"), "no Return-Path first: %r" % data[:80])
    lines = data.split(b"\n")
    i = 1
    check(lines[1].startswith(b"Received: "), "no Received second: %r" % data[:200])
    i = 2
    while i < len(lines) and lines[i].startswith(b"\t"):
        i += 1
    return b"\n".join(lines[:i]) + b"\n", b"\n".join(lines[i:])


def stored_equals(srv, user, sent, index=-1):
    files = wait_delivered(srv, user, 1 if index == -1 else index + 1)
    with open(files[index], "rb") as f:
        data = f.read()
    trace, body = split_trace(data)
    want = sent.replace(b"\r\n", b"\n")
    check(body == want, "stored message differs from what was sent:\n%r\n--- vs ---\n%r" % (body[:300], want[:300]))
    check(PASSWORD.encode() not in trace, "password in the trace headers")
    return trace


def message(subject="test", to="alice@example.test", body="Hello.\r\n"):
    return ("From: Sender <sender@remote.test>\r\nTo: %s\r\nSubject: %s\r\n"
            "Message-ID: <%s@remote.test>\r\n\r\n%s" % (to, subject, subject.replace(" ", "."), body)).encode()


# ------------------------------------------------------------------ smtplib

def test_smtplib_receipt_plain():
    with mail_server() as srv:
        msg = message("plain receipt", body="line one\r\n.leading dot\r\n..two dots\r\n\r\nend\r\n")
        with smtplib.SMTP("127.0.0.1", srv.port("smtp"), timeout=10) as s:
            code, ehlo = s.ehlo("client.remote.test")
            check(code == 250, "EHLO %d" % code)
            for ext in (b"PIPELINING", b"8BITMIME", b"SIZE", b"ENHANCEDSTATUSCODES", b"STARTTLS",
                        b"SMTPUTF8", b"CHUNKING", b"DSN"):
                check(ext in ehlo, "EHLO lacks %s: %r" % (ext, ehlo))
            check(b"AUTH" not in ehlo, "AUTH offered on port 25")
            refused = s.sendmail("sender@remote.test", ["alice@example.test"], msg)
            check(refused == {}, "refused %r" % refused)
        trace = stored_equals(srv, "alice", msg)
        check(b"Return-Path: <sender@remote.test>" in trace, trace)
        check(b"from client.remote.test ([127.0.0.1])" in trace, trace)
        check(b"by mx.example.test (postbote) with ESMTP\n" in trace, trace)
        check(b"for <alice@example.test>;" in trace, trace)
        srv.wait_log(r"smtp \d+: message id=\S+ client=127\.0\.0\.1 helo=client\.remote\.test "
                     r"from=<sender@remote\.test> rcpts=<alice@example\.test>=delivered size=\d+ tls=no "
                     r"user=- result=delivered durable_ms=\d+")


def test_smtplib_starttls_auth_plain_and_login():
    with mail_server() as srv:
        for mech in ("PLAIN", "LOGIN"):
            msg = message("submission %s" % mech, to="bob@example.test")
            with smtplib.SMTP("127.0.0.1", srv.port("submission"), timeout=10) as s:
                s.ehlo()
                check(not s.has_extn("auth"), "AUTH offered before TLS on 587")
                s.starttls(context=tls_ctx())
                s.ehlo()
                check("PLAIN" in s.esmtp_features.get("auth", "") and "LOGIN" in s.esmtp_features["auth"],
                      "AUTH PLAIN LOGIN not offered after TLS: %r" % s.esmtp_features)
                code, resp = s.docmd("MAIL", "FROM:<alice@example.test>")
                check(code == 530 and resp.startswith(b"5.7.0"), "MAIL before AUTH: %d %r" % (code, resp))
                s.rset()
                s.user, s.password = "alice@example.test", PASSWORD
                code, resp = s.auth(mech, getattr(s, "auth_" + mech.lower()),
                                    initial_response_ok=(mech == "PLAIN"))
                check(code == 235, "AUTH %s: %d %r" % (mech, code, resp))
                check(s.sendmail("alice@example.test", ["bob@example.test"], msg) == {}, "refused")
        trace = stored_equals(srv, "bob", message("submission LOGIN", to="bob@example.test"), index=1)
        check(b"with ESMTPSA" in trace and b"(authenticated user alice@example.test)" in trace, trace)
        check(b"version=TLSv1." in trace and b"cipher=" in trace, trace)


def test_smtplib_ssl_465():
    with mail_server() as srv:
        msg = message("implicit tls")
        with smtplib.SMTP_SSL("127.0.0.1", srv.port("submissions"), context=tls_ctx(), timeout=10) as s:
            s.login("bob@example.test", PASSWORD)
            check(s.sendmail("bob@example.test", ["alice@example.test"], msg) == {}, "refused")
        trace = stored_equals(srv, "alice", msg)
        check(b"with ESMTPSA" in trace, trace)


def test_smtplib_smtputf8_address():
    with mail_server() as srv:
        pb(srv, "alias", "add", "j\u00f6rg@%s" % DOMAIN, "alice@%s" % DOMAIN)
        msg = ("From: =?utf-8?q?J=C3=B6rg?= <j\u00f6rg@remote.test>\r\nTo: j\u00f6rg@example.test\r\n"
               "Subject: gr\u00fc\u00dfe\r\n\r\nUmlaute: \u00e4\u00f6\u00fc\r\n").encode("utf-8")
        with smtplib.SMTP("127.0.0.1", srv.port("smtp"), timeout=10) as s:
            s.ehlo()
            check(s.has_extn("smtputf8"), "no SMTPUTF8")
            refused = s.sendmail("j\u00f6rg@remote.test", ["j\u00f6rg@example.test"], msg,
                                 mail_options=["SMTPUTF8", "BODY=8BITMIME"])
            check(refused == {}, refused)
            # Without SMTPUTF8 the same address is refused.
            code, resp = s.docmd("MAIL", "FROM:<j\u00f6rg@remote.test>")
            check(code == 553, "UTF-8 without SMTPUTF8: %d %r" % (code, resp))
        trace = stored_equals(srv, "alice", msg)
        check(b"with UTF8SMTP" in trace, trace)


def test_multiple_recipients_and_unknown_user():
    with mail_server() as srv:
        pb(srv, "alias", "add", "team@%s" % DOMAIN, "alice@%s" % DOMAIN)
        pb(srv, "alias", "add", "team@%s" % DOMAIN, "bob@%s" % DOMAIN)
        msg = message("to the team")
        with smtplib.SMTP("127.0.0.1", srv.port("smtp"), timeout=10) as s:
            s.ehlo()
            s.mail("sender@remote.test")
            check(s.rcpt("team@example.test")[0] == 250, "alias")
            check(s.rcpt("ALICE@Example.TEST")[0] == 250, "mixed case")
            code, resp = s.rcpt("nobody@example.test")
            check(code == 550 and resp.startswith(b"5.1.1"), "unknown user: %d %r" % (code, resp))
            code, resp = s.data(msg)
            check(code == 250, "DATA: %d %r" % (code, resp))
        trace_a = stored_equals(srv, "alice", msg)
        stored_equals(srv, "bob", msg)
        check(len(delivered_files(srv, "alice")) == 1, "alice got the message twice")
        check(b"\tfor <" not in trace_a, "Received names one of several recipients: %r" % trace_a)


# ------------------------------------------------------------------ swaks

def swaks(*args, timeout=60):
    r = pbtest.run(["swaks", "--silent", "1", "--hide-all"] + list(args), timeout=timeout)
    return r.returncode, r.stdout.decode("utf-8", "replace") + r.stderr.decode("utf-8", "replace")


def swaks_dialogue(*args, timeout=60):
    r = pbtest.run(["swaks"] + list(args), timeout=timeout)
    return r.returncode, r.stdout.decode("utf-8", "replace")


def test_swaks_pipelining_and_10mib_attachment():
    if shutil.which("swaks") is None:
        raise pbtest.Skip("swaks not installed")
    with mail_server() as srv:
        big = os.path.join(srv.dir, "big.bin")
        with open(big, "wb") as f:
            f.write(os.urandom(10 * 1024 * 1024))
        rc, out = swaks_dialogue("--server", "127.0.0.1", "--port", str(srv.port("submission")), "--tls",
                                 "--auth", "PLAIN", "--auth-user", "alice@example.test",
                                 "--auth-password", PASSWORD, "--from", "alice@example.test",
                                 "--to", "bob@example.test", "--pipeline", "--attach", "@" + big,
                                 "--header", "Subject: big one")
        check(rc == 0, "swaks failed (%d):\n%s" % (rc, out[-2000:]))
        check("PIPELINING" in out, "no pipelining in swaks' dialogue")
        files = wait_delivered(srv, "bob")
        size = os.path.getsize(files[0])
        check(size > 13 * 1024 * 1024, "the stored message is only %d bytes" % size)
        import email
        with open(files[0], "rb") as f:
            parsed = email.message_from_bytes(f.read())
        parts = [p for p in parsed.walk() if p.get_filename()]
        check(len(parts) == 1, "attachment not found")
        with open(big, "rb") as f:
            check(parts[0].get_payload(decode=True) == f.read(), "attachment bytes differ")


RELAY_TRICKS = [
    "victim@other.test",
    "victim@OTHER.TEST",
    "victim%other.test@example.test",
    "victim%other.test@[127.0.0.1]",
    '"victim@other.test"@example.test',
    '"victim%other.test"@example.test',
    "@example.test:victim@other.test",
    "@example.test,@mx.example.test:victim@other.test",
    "other.test!victim@example.test",
    "other.test!victim",
    "victim@[127.0.0.1]",
    "victim@[IPv6:::1]",
    "victim@other.test.",
    "victim@example.test.other.test",
    "victim@other.test@example.test",
    "victim@example.test@other.test",
    "victim@sub.example.test",
    "victim@localhost",
]


def test_open_relay_battery_port_25():
    if shutil.which("swaks") is None:
        raise pbtest.Skip("swaks not installed")
    with mail_server({"max_bad_commands": "100"}) as srv:
        for addr in RELAY_TRICKS:
            rc, out = swaks_dialogue("--server", "127.0.0.1", "--port", str(srv.port("smtp")),
                                     "--from", "spammer@remote.test", "--to", addr, "--quit-after", "RCPT")
            check(rc != 0, "swaks accepted %r:\n%s" % (addr, out))
            lines = out.splitlines()
            sent = [i for i, l in enumerate(lines) if l.startswith(" -> RCPT TO:")]
            reply = lines[sent[0] + 1] if sent and sent[0] + 1 < len(lines) else ""
            # swaks refuses some tricks itself before sending them; those
            # never reach a server, so there is nothing to check.
            if sent:
                check(reply.startswith("<** 5"), "%r: expected a 5xx refusal, got:\n%s" % (addr, out))
        # Nothing was delivered anywhere, and nothing was spooled.
        check(glob.glob(os.path.join(srv.data_dir, "mail", "*", "*", "new", "*")) == [], "a message was delivered")
        check(os.listdir(os.path.join(srv.data_dir, "spool")) == [], "spool not empty")
        check(srv.count_log(r"554 5\.7\.1 Relay access denied") >= 10, "relay refusals not logged")


def test_swaks_wrong_password_and_throttle():
    if shutil.which("swaks") is None:
        raise pbtest.Skip("swaks not installed")
    with mail_server() as srv:
        times = []
        for _ in range(3):
            t0 = time.monotonic()
            rc, out = swaks_dialogue("--server", "127.0.0.1", "--port", str(srv.port("submission")), "--tls",
                                     "--auth", "PLAIN", "--auth-user", "alice@example.test",
                                     "--auth-password", "wrong", "--from", "alice@example.test",
                                     "--to", "bob@example.test", "--quit-after", "AUTH")
            times.append(time.monotonic() - t0)
            check(rc != 0, "wrong password accepted")
            check("535 5.7.8" in out, "no 535 5.7.8:\n%s" % out)
        # The first failure is answered at hashing speed; repeats from the
        # same address wait out the throttle's delay (1s, doubling).
        check(times[0] < 0.9 and times[1] >= 0.9 and times[2] >= 0.9, "no throttle delay on repeated failures: %r" % times)
        srv.wait_log(r"auth: failed ip=127\.0\.0\.1 user=alice@example\.test reason=password")
        check("wrong" not in srv.log_text(), "password in the log")


# ------------------------------------------------------------------ curl

def test_curl_smtp_and_smtps():
    if shutil.which("curl") is None:
        raise pbtest.Skip("curl not installed")
    with mail_server() as srv:
        msg = message("via curl", to="bob@example.test")
        path = os.path.join(srv.dir, "msg.eml")
        with open(path, "wb") as f:
            f.write(msg)
        r = pbtest.run(["curl", "-sS", "--url", "smtp://127.0.0.1:%d" % srv.port("smtp"),
                        "--mail-from", "sender@remote.test", "--mail-rcpt", "bob@example.test",
                        "-T", path])
        check(r.returncode == 0, "curl smtp: %r" % r.stderr)
        stored_equals(srv, "bob", msg)
        r = pbtest.run(["curl", "-sS", "-k", "--url", "smtps://127.0.0.1:%d" % srv.port("submissions"),
                        "--user", "alice@example.test:" + PASSWORD, "--mail-from", "alice@example.test",
                        "--mail-rcpt", "bob@example.test", "-T", path])
        check(r.returncode == 0, "curl smtps: %r" % r.stderr)
        stored_equals(srv, "bob", msg, index=1)


# ------------------------------------------------------------------ raw dialogues

def raw(srv, kind="smtp"):
    c = srv.connect(kind)
    c.expect("220 ")
    return c


def test_size_refused_before_and_after_data():
    with mail_server({"message_size_max": "64K"}) as srv:
        with raw(srv) as c:
            c.cmd("EHLO x")
            lines = c.read_reply()
            check(any("SIZE 65536" in l for l in lines), "SIZE not announced: %r" % lines)
            c.cmd("MAIL FROM:<a@remote.test> SIZE=100000")
            c.expect("552 5.3.4")
            c.cmd("MAIL FROM:<a@remote.test> SIZE=1000")
            c.expect("250 ")
            c.cmd("RCPT TO:<alice@example.test>")
            c.expect("250 ")
            c.cmd("DATA")
            c.expect("354 ")
            c.send(("Subject: big\r\n\r\n" + ("x" * 998 + "\r\n") * 100 + ".\r\n"))
            c.expect("552 5.3.4")
            # The session goes on.
            c.cmd("NOOP")
            c.expect("250 ")
        check(delivered_files(srv, "alice") == [], "an oversized message was delivered")
        check(os.listdir(os.path.join(srv.data_dir, "spool")) == [], "spool not empty")


def test_bdat_chunks_and_bare_lf():
    with mail_server() as srv:
        with raw(srv) as c:
            c.cmd("EHLO x")
            c.read_reply()
            chunk1 = b"Subject: chunked\r\n\r\nfirst part\r"
            chunk2 = b"\nsecond part\r\n.not stuffed\r\n"
            c.send(b"MAIL FROM:<a@remote.test>\r\nRCPT TO:<alice@example.test>\r\n"
                   b"BDAT %d\r\n" % len(chunk1) + chunk1 + b"BDAT %d LAST\r\n" % len(chunk2) + chunk2)
            c.expect("250 2.1.0")
            c.expect("250 2.1.5")
            c.expect("250 2.0.0 %d octets" % len(chunk1))
            c.expect("250 2.0.0 Message accepted")
            # DATA with bare LFs and the smuggling patterns: only CRLF.CRLF ends it.
            c.send(b"MAIL FROM:<a@remote.test>\r\nRCPT TO:<bob@example.test>\r\nDATA\r\n")
            c.expect("250 ")
            c.expect("250 ")
            c.expect("354 ")
            c.send(b"Subject: smuggle\r\n\r\nline\n.\nMAIL FROM:<evil@x>\n.\r\nRCPT TO:<x@y>\r\n.\n"
                   b"x\r.\rDATA\r\n.\r\n")
            c.expect("250 2.0.0 Message accepted")
            c.cmd("QUIT")
            c.expect("221 ")
        stored_equals(srv, "alice", chunk1 + chunk2)
        files = wait_delivered(srv, "bob")
        with open(files[0], "rb") as f:
            _, body = split_trace(f.read())
        check(body == b"Subject: smuggle\n\nline\n.\nMAIL FROM:<evil@x>\n.\nRCPT TO:<x@y>\n.\nx\r.\rDATA\n",
              "smuggled content: %r" % body)
        srv.wait_log(r"bare_lf=yes")


def test_starttls_injection_on_submission():
    with mail_server() as srv:
        sock = socket.create_connection(("127.0.0.1", srv.port("submission")), timeout=10)
        f = sock.makefile("rb")
        f.readline()
        sock.sendall(b"EHLO x\r\n")
        while not f.readline().startswith(b"250 "):
            pass
        sock.sendall(b"STARTTLS\r\nRSET\r\n")
        check(f.readline().startswith(b"220 "), "no 220 to STARTTLS")
        tls = tls_ctx().wrap_socket(sock, server_hostname="localhost")
        tls.sendall(b"NOOP\r\n")
        first = tls.recv(4096)
        check(first.startswith(b"250 2.0.0 OK") and first.count(b"\r\n") == 1,
              "RSET was executed after TLS: %r" % first)
        tls.close()


def test_kill_after_250_keeps_message():
    srv = mail_server()
    msg = message("durable")
    with smtplib.SMTP("127.0.0.1", srv.port("smtp"), timeout=10) as s:
        s.ehlo()
        check(s.sendmail("sender@remote.test", ["alice@example.test"], msg) == {}, "refused")
        srv.kill()
    srv.start()
    # After a crash the delivery log brings back anything not yet written.
    stored_equals(srv, "alice", msg)
    srv.stop()


def test_submission_sender_must_be_owned():
    with mail_server() as srv:
        pb(srv, "alias", "add", "sales@%s" % DOMAIN, "alice@%s" % DOMAIN)
        with smtplib.SMTP_SSL("127.0.0.1", srv.port("submissions"), context=tls_ctx(), timeout=10) as s:
            s.login("alice@example.test", PASSWORD)
            for sender, want in (("bob@example.test", 553), ("ceo@remote.test", 553),
                                 ("sales@example.test", 250), ("alice+tag@example.test", 250),
                                 ("alice@example.test", 250)):
                code, resp = s.docmd("MAIL", "FROM:<%s>" % sender)
                check(code == want, "%s: %d %r" % (sender, code, resp))
                s.rset()
            # Another domain: into the outbound queue (test_outbound.py
            # follows such mail to the far side).
            s.mail("alice@example.test")
            code, resp = s.rcpt("friend@remote.test")
            check(code == 250, "remote rcpt: %d %r" % (code, resp))


def test_quirks_on_submission_strict_on_25():
    with mail_server() as srv:
        with srv.connect("submissions") as c:
            c.expect("220 ")
            c.cmd("EHLO x")
            c.read_reply()
            import base64
            ir = base64.b64encode(b"\0alice@example.test\0" + PASSWORD.encode()).decode()
            c.cmd("AUTH PLAIN  " + ir)
            c.expect("235 ")
            c.cmd("MAIL FROM: <alice@example.test> AUTH=<>")
            c.expect("250 ")
            c.cmd("RSET")
            c.expect("250 ")
        with srv.connect("submissions") as c:
            c.expect("220 ")
            c.cmd("EHLO x")
            c.read_reply()
            c.cmd("AUTH LOGIN " + base64.b64encode(b"alice@example.test").decode())
            c.expect("334 UGFzc3dvcmQ6")
            c.cmd(base64.b64encode(PASSWORD.encode()).decode())
            c.expect("235 ")
        with raw(srv) as c:
            c.cmd("EHLO x")
            c.read_reply()
            c.cmd("MAIL FROM: <a@remote.test>")
            c.expect("501 ")
            c.cmd("AUTH PLAIN " + ir)
            c.expect("502 ")


if __name__ == "__main__":
    pbtest.main(globals())
