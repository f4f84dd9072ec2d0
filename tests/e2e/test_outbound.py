#!/usr/bin/env python3
"""End-to-end tests of outbound delivery: queued mail leaves postbote A and
arrives at postbote B, which plays the remote MX (or the smarthost).

Infrastructure, all on this machine:
  - dnsmasq on 127.0.0.1:<free port>, with no upstream servers at all
    (--no-resolv, --local=/test/), answering for *.test only:
        remote.test    MX 10 mx.remote.test, mx.remote.test A 127.0.0.1
        nullmx.test    a null MX (RFC 7505: "0 .")
        implicit.test  no MX, A 127.0.0.1 (implicit MX)
        loop.test      MX 10 mx.example.test (A's own name)
        anything else under .test: NXDOMAIN
    postbote A asks only this server (dns_servers), so no DNS query leaves
    the machine.
  - postbote A: domain example.test, user alice, outbound_port = B's SMTP
    port, short retries ("1s 1s 2s").
  - postbote B: domain remote.test (and implicit.test), users bob and carol.

Messages are submitted to A by alice with smtplib (STARTTLS + AUTH) and
read back from B's Maildir; bounces are read from alice's INBOX at A and
parsed with python's email package.

Expiry bounces: Action: failed with the Status of the last temporary
problem (4.4.1 for a refused connection), as RFC 3463 X.4.7 asks ("the
code for the actual problem ... rather than this code"); 4.4.7 only when
no better one is known.

Run: python3 tests/e2e/test_outbound.py [test_name ...]
"""

import email
import email.policy
import glob
import os
import re
import shutil
import smtplib
import socket
import ssl
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pbtest  # noqa: E402
from pbtest import Server, Skip, TestFailure, wait_for  # noqa: E402

PASSWORD = "correct horse battery"
CAROL_PASSWORD = "relay secret 42"
A_KINDS = [("smtp", "127.0.0.1"), ("submission", "127.0.0.1")]
B_KINDS = [("smtp", "127.0.0.1"), ("submission", "127.0.0.1"), ("submissions", "127.0.0.1")]
DELIVERY_TIMEOUT = 30


def check(cond, msg):
    if not cond:
        raise TestFailure(msg)


def tls_ctx():
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


# ------------------------------------------------------------------ DNS

DNSMASQ = shutil.which("dnsmasq") or "/usr/sbin/dnsmasq"


def free_udp_port():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
    finally:
        s.close()


def dns_query(port, name, qtype):
    """(rcode, answer count) of one UDP query, for the readiness check."""
    import struct
    hdr = struct.pack(">HHHHHH", 0x5042, 0x0100, 1, 0, 0, 0)
    qn = b"".join(bytes([len(p)]) + p.encode() for p in name.split(".")) + b"\0"
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(0.5)
    try:
        s.sendto(hdr + qn + struct.pack(">HH", qtype, 1), ("127.0.0.1", port))
        d = s.recv(512)
    finally:
        s.close()
    flags, _, an = struct.unpack(">HHH", d[2:8])
    return flags & 15, an


class Dns:
    """A private dnsmasq with fixed records; stopped after the test."""

    def __init__(self):
        if not os.path.exists(DNSMASQ):
            raise Skip("dnsmasq not installed (apt-get install dnsmasq-base)")
        self.log_path = os.path.join(pbtest.make_temp_dir("postbote-dns-"), "dnsmasq.log")
        self._log = open(self.log_path, "wb")
        _dns_servers.append(self)
        # The free port is only free when it was picked: another program
        # may take it (its TCP twin, which dnsmasq binds too, was never
        # checked) before dnsmasq binds it. Then dnsmasq exits at once;
        # try another port.
        for attempt in range(3):
            self.port = free_udp_port()
            self.proc = subprocess.Popen(self._command(), stdin=subprocess.DEVNULL, stdout=self._log,
                                         stderr=subprocess.STDOUT)
            if wait_for(self._ready, 10, "dnsmasq to answer") == "answers":
                return
        raise pbtest.Fatal("dnsmasq exited three times (last status %s): %s"
                           % (self.proc.returncode, open(self.log_path, errors="replace").read()))

    def _command(self):
        return [DNSMASQ, "--no-resolv", "--no-hosts", "--keep-in-foreground", "--conf-file=/dev/null",
                "--local=/test/", "--listen-address=127.0.0.1", "--bind-interfaces",
                "--port=%d" % self.port, "--pid-file=", "--log-facility=-", "--log-queries",
                "--mx-host=remote.test,mx.remote.test,10",
                "--host-record=mx.remote.test,127.0.0.1",
                "--dns-rr=nullmx.test,15,000000",          # MX 0 "." (RFC 7505)
                "--host-record=implicit.test,127.0.0.1",
                "--mx-host=loop.test,mx.example.test,10",
                "--host-record=mx.example.test,127.0.0.1"]

    def _ready(self):
        """"answers", "exited", or False while it is starting."""
        if self.proc.poll() is not None:
            return "exited"
        return "answers" if dns_query(self.port, "mx.remote.test", 1) == (0, 1) else False

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._log.close()


_dns_servers = []


# ------------------------------------------------------------------ servers

def pb(srv, *args, password=None, ok=True):
    cmd = [pbtest.BIN] + list(args) + ["-c", srv.config_path]
    data = None
    if password is not None:
        cmd.append("--password-stdin")
        data = (password + "\n").encode()
    r = pbtest.run(cmd, input=data, cwd=srv.dir)
    if ok:
        check(r.returncode == 0, "%s: exit %d: %r" % (args, r.returncode, r.stderr))
    return r


def remote_server(start=True, config=None):
    """postbote B: the MX of remote.test (and implicit.test), and a smarthost."""
    cfg = [("domain", "implicit.test"), ("submission_check_sender", "no"),
           ("auth_fail_delay", "1s"), ("auth_fail_delay_max", "2s")]
    cfg += list((config or {}).items())
    b = Server(listens=B_KINDS, config=cfg, domain="remote.test", hostname="mx.remote.test")
    for u in ("bob@remote.test", "bob@implicit.test"):
        pb(b, "user", "add", u, password=PASSWORD)
    pb(b, "user", "add", "carol@remote.test", password=CAROL_PASSWORD)
    if start:
        b.start()
    return b


def sender_server(dns, b, config=None, start=True):
    """postbote A: example.test, whose user alice sends mail out."""
    cfg = {"dns_servers": "127.0.0.1:%d" % dns.port,
           "outbound_port": str(b.port("smtp")),
           "queue_retry": "1s 1s 2s",
           "auth_fail_delay": "1s", "auth_fail_delay_max": "2s"}
    cfg.update(config or {})
    a = Server(listens=A_KINDS, config=cfg, domain="example.test", hostname="mx.example.test")
    pb(a, "user", "add", "alice@example.test", password=PASSWORD)
    if start:
        a.start()
    return a


def submit(a, rcpts, msg, sender="alice@example.test"):
    with smtplib.SMTP("127.0.0.1", a.port("submission"), timeout=10) as s:
        s.ehlo("laptop.example.test")
        s.starttls(context=tls_ctx())
        s.ehlo("laptop.example.test")
        s.login("alice@example.test", PASSWORD)
        refused = s.sendmail(sender, rcpts, msg)
        check(refused == {}, "refused %r" % refused)


def message(subject, to="bob@remote.test", body="Hello from A.\r\n.a line with a leading dot\r\n"):
    return ("From: Alice <alice@example.test>\r\nTo: %s\r\nSubject: %s\r\n"
            "Message-ID: <%s@example.test>\r\n\r\n%s" % (to, subject, subject.replace(" ", "."), body)).encode()


def maildir_files(srv, domain, user):
    root = os.path.join(srv.data_dir, "mail", domain, user)
    return sorted(glob.glob(os.path.join(root, "new", "*")) + glob.glob(os.path.join(root, "cur", "*")))


def wait_files(srv, domain, user, n=1, timeout=DELIVERY_TIMEOUT):
    def enough():
        srv._check_alive()
        files = maildir_files(srv, domain, user)
        return files if len(files) >= n else None
    return wait_for(enough, timeout, "%d message(s) for %s@%s" % (n, user, domain))


def strip_trace(data):
    """The message without the Return-Path and Received headers on top."""
    lines = data.split(b"\n")
    i = 0
    while i < len(lines) and (lines[i].startswith(b"Return-Path: ") or lines[i].startswith(b"Received: ")):
        i += 1
        while i < len(lines) and lines[i][:1] in (b"\t", b" "):
            i += 1
    return b"\n".join(lines[:i]) + b"\n", b"\n".join(lines[i:])


def queue_list(a):
    return pb(a, "queue", "list").stdout.decode()


def wait_queue_empty(a, timeout=DELIVERY_TIMEOUT):
    def empty():
        a._check_alive()
        return queue_list(a).strip() == ""
    wait_for(empty, timeout, "A's queue to be empty")


def read_bounce(a, n=1, timeout=DELIVERY_TIMEOUT):
    files = wait_files(a, "example.test", "alice", n, timeout)
    with open(files[n - 1], "rb") as f:
        data = f.read()
    check(data.startswith(b"Return-Path: <>\n"), "a notice must have the null Return-Path: %r" % data[:80])
    return email.message_from_bytes(data, policy=email.policy.compat32), data


def dsn_fields(msg):
    """(per-message fields, [per-recipient fields]) of a multipart/report."""
    check(msg.get_content_type() == "multipart/report", "content type %s" % msg.get_content_type())
    check(msg.get_param("report-type") == "delivery-status", "report-type %r" % msg.get_param("report-type"))
    parts = msg.get_payload()
    check(len(parts) >= 2, "a report has at least two parts, got %d" % len(parts))
    check(parts[0].get_content_type() == "text/plain", "first part %s" % parts[0].get_content_type())
    check(parts[1].get_content_type() == "message/delivery-status", "second part %s" % parts[1].get_content_type())
    blocks = parts[1].get_payload()
    check(len(blocks) >= 2, "delivery-status needs per-message and per-recipient fields: %r" % blocks)
    return blocks[0], blocks[1:], parts


def teardown():
    for d in _dns_servers:
        d.stop()
    _dns_servers.clear()


def with_dns(fn):
    def wrapper():
        try:
            fn(Dns())
        finally:
            teardown()
    wrapper.__name__ = fn.__name__
    return wrapper


# ------------------------------------------------------------------ tests

@with_dns
def test_delivery_to_mx(dns):
    with remote_server() as b, sender_server(dns, b) as a:
        msg = message("outbound one", body="Line one.\r\n.leading dot\r\n..two dots\r\n\r\nend\r\n")
        submit(a, ["bob@remote.test"], msg)
        files = wait_files(b, "remote.test", "bob")
        with open(files[0], "rb") as f:
            data = f.read()
        trace, body = strip_trace(data)
        check(body == msg.replace(b"\r\n", b"\n"),
              "B stored something else than alice sent:\n%r\n--- vs ---\n%r" % (body[:300], msg[:300]))
        check(trace.startswith(b"Return-Path: <alice@example.test>\n"), trace)
        check(trace.count(b"Received: ") == 2, "B's and A's Received headers expected: %r" % trace)
        check(b"by mx.example.test (postbote) with ESMTPSA" in trace, trace)
        check(b"from mx.example.test ([127.0.0.1])" in trace and b"by mx.remote.test" in trace, trace)
        a.wait_log(r"outbound \S+: domain=remote\.test host=mx\.remote\.test\[127\.0\.0\.1\]:%d tls=TLSv1\.[23]/\S+ "
                   r"auth=- <bob@remote\.test>=delivered \(250 " % b.port("smtp"))
        a.wait_log(r"outbound \S+: done: delivered=1 failed=0, removed from the queue")
        wait_queue_empty(a)
        check(not os.listdir(os.path.join(a.data_dir, "queue")), "queue files left behind")
        check(len(maildir_files(a, "example.test", "alice")) == 0, "alice got a notice for a delivery")


@with_dns
def test_deferred_then_delivered_when_b_starts(dns):
    b = remote_server(start=False)
    with sender_server(dns, b) as a:
        msg = message("waits for B")
        submit(a, ["bob@remote.test"], msg)

        def deferred():
            out = queue_list(a)
            return "deferred" in out and "connect to mx.remote.test[127.0.0.1] failed" in out and out
        out = wait_for(deferred, DELIVERY_TIMEOUT, "queue list to show the deferral")
        check("<bob@remote.test> deferred: 451 4.4.1" in out, out)
        check("connection refused" in out, out)
        a.wait_log(r"next attempt in \d+s")
        with b:
            files = wait_files(b, "remote.test", "bob")
            _, body = strip_trace(open(files[0], "rb").read())
            check(body == msg.replace(b"\r\n", b"\n"), body)
            wait_queue_empty(a)
        check(len(maildir_files(a, "example.test", "alice")) == 0, "alice got a notice")


@with_dns
def test_permanent_failure_bounces_and_shares_connection(dns):
    with remote_server() as b, sender_server(dns, b) as a:
        msg = message("to a stranger", to="nobody@remote.test, bob@remote.test")
        submit(a, ["nobody@remote.test", "bob@remote.test"], msg)
        wait_files(b, "remote.test", "bob")
        # One connection for both recipients of the domain.
        m = a.wait_log(r"outbound \S+: domain=remote\.test host=mx\.remote\.test\[127\.0\.0\.1\]:\d+ tls=\S+ auth=- "
                       r"<nobody@remote\.test>=failed \(550 5\.1\.1 [^)]*\), <bob@remote\.test>=delivered \(250 ")
        check(m, "one log line for both recipients")
        bounce, raw = read_bounce(a)
        check(bounce["To"] == "<alice@example.test>", bounce["To"])
        check(bounce["Auto-Submitted"] == "auto-replied", bounce["Auto-Submitted"])
        per_msg, rcpts, parts = dsn_fields(bounce)
        check(per_msg["Reporting-MTA"] == "dns; mx.example.test", per_msg["Reporting-MTA"])
        check(len(rcpts) == 1, "only the failed recipient is reported: %r" % [str(r) for r in rcpts])
        r = rcpts[0]
        check(r["Final-Recipient"] == "rfc822; nobody@remote.test", r["Final-Recipient"])
        check(r["Action"] == "failed", r["Action"])
        check(r["Status"] == "5.1.1", r["Status"])
        check(r["Remote-MTA"] == "dns; mx.remote.test", r["Remote-MTA"])
        diag = re.sub(r"\s+", " ", r["Diagnostic-Code"])
        check(diag.startswith("smtp; 550 5.1.1"), diag)
        check("mx.remote.test" in parts[0].get_payload(), "the text part names the host")
        # No RET given: the original's header comes back (dsn.h).
        check(parts[2].get_content_type() == "text/rfc822-headers", parts[2].get_content_type())
        check(b"Subject: to a stranger" in raw, "the original header is attached")
        wait_queue_empty(a)


@with_dns
def test_ret_full_returns_the_message(dns):
    with remote_server() as b, sender_server(dns, b) as a:
        msg = message("return it all", to="nobody@remote.test", body="The whole body comes back.\r\n")
        with smtplib.SMTP("127.0.0.1", a.port("submission"), timeout=10) as s:
            s.ehlo("laptop")
            s.starttls(context=tls_ctx())
            s.ehlo("laptop")
            s.login("alice@example.test", PASSWORD)
            s.sendmail("alice@example.test", ["nobody@remote.test"], msg, mail_options=["RET=FULL", "ENVID=env-42"],
                       rcpt_options=["NOTIFY=FAILURE", "ORCPT=rfc822;nobody@remote.test"])
        bounce, raw = read_bounce(a)
        per_msg, rcpts, parts = dsn_fields(bounce)
        check(per_msg["Original-Envelope-Id"] == "env-42", per_msg["Original-Envelope-Id"])
        check(rcpts[0]["Original-Recipient"] == "rfc822; nobody@remote.test" or
              rcpts[0]["Original-Recipient"] == "rfc822;nobody@remote.test", rcpts[0]["Original-Recipient"])
        check(parts[2].get_content_type() == "message/rfc822", parts[2].get_content_type())
        check(b"The whole body comes back." in raw, "RET=FULL returns the body")


@with_dns
def test_bounce_to_a_remote_sender_is_queued(dns):
    """A sender outside our domains gets the bounce through the queue,
    from the null sender."""
    with remote_server() as b, sender_server(dns, b, {"submission_check_sender": "no"}) as a:
        submit(a, ["nobody@remote.test"], message("on behalf of bob", to="nobody@remote.test"),
               sender="bob@remote.test")
        files = wait_files(b, "remote.test", "bob")
        data = open(files[0], "rb").read()
        check(data.startswith(b"Return-Path: <>\n"), "the bounce must come from <>: %r" % data[:80])
        _, body = strip_trace(data)
        bounce = email.message_from_bytes(body, policy=email.policy.compat32)
        _, rcpts, _ = dsn_fields(bounce)
        check(rcpts[0]["Final-Recipient"] == "rfc822; nobody@remote.test", rcpts[0]["Final-Recipient"])
        check(rcpts[0]["Status"] == "5.1.1", rcpts[0]["Status"])
        a.wait_log(r"notice \S+\.dsn\.\d+ queued for <bob@remote\.test>")
        wait_queue_empty(a)
        check(maildir_files(a, "example.test", "alice") == [], "alice is not the sender")


@with_dns
def test_notify_never_and_null_sender_get_no_bounce(dns):
    with remote_server() as b, sender_server(dns, b) as a:
        with smtplib.SMTP("127.0.0.1", a.port("submission"), timeout=10) as s:
            s.ehlo("laptop")
            s.starttls(context=tls_ctx())
            s.ehlo("laptop")
            s.login("alice@example.test", PASSWORD)
            s.sendmail("alice@example.test", ["nobody@remote.test"], message("never tell"),
                       rcpt_options=["NOTIFY=NEVER"])
            s.sendmail("", ["nobody@remote.test"], message("from the null sender"))
        wait_for(lambda: a.count_log(r"outbound \S+: done: delivered=0 failed=1, removed") >= 2, DELIVERY_TIMEOUT,
                 "both messages to fail")
        wait_queue_empty(a)
        check(maildir_files(a, "example.test", "alice") == [], "a notice was sent")
        check(a.count_log(r"notice") == 0, "no notice expected:\n%s" % pbtest.tail(a.log_text(), 20))


@with_dns
def test_lifetime_expiry_bounces(dns):
    b = remote_server(start=False)
    with sender_server(dns, b, {"queue_retry": "1s", "queue_lifetime": "3s"}) as a:
        submit(a, ["bob@remote.test"], message("never arrives"))
        bounce, _ = read_bounce(a)
        _, rcpts, parts = dsn_fields(bounce)
        r = rcpts[0]
        check(r["Action"] == "failed", r["Action"])
        check(r["Status"] == "4.4.1", "the last problem's status (refused connection): %r" % r["Status"])
        check(r["Final-Recipient"] == "rfc822; bob@remote.test", r["Final-Recipient"])
        check(r["Remote-MTA"] is None, "no server ever answered")
        text = re.sub(r"\s+", " ", parts[0].get_payload())
        check("too long in the queue" in text and "connect to mx.remote.test[127.0.0.1] failed" in text, text)
        a.wait_log(r"outbound \S+: done: delivered=0 failed=1 \(expired\), removed from the queue")
        wait_queue_empty(a)
        attempts = a.count_log(r"outbound \S+: domain=remote\.test .*bob@remote\.test>=deferred")
        check(attempts >= 2, "retried before expiry (%d attempts)" % attempts)


@with_dns
def test_delay_warning_once(dns):
    b = remote_server(start=False)
    with sender_server(dns, b, {"queue_retry": "1s", "queue_delay_warning": "2s", "queue_lifetime": "1h"}) as a:
        submit(a, ["bob@remote.test"], message("delayed a little"))
        bounce, _ = read_bounce(a)
        check(bounce["Subject"].startswith("Delayed Mail"), bounce["Subject"])
        _, rcpts, _ = dsn_fields(bounce)
        check(rcpts[0]["Action"] == "delayed", rcpts[0]["Action"])
        check(rcpts[0]["Status"] == "4.4.1", rcpts[0]["Status"])
        check(rcpts[0]["Will-Retry-Until"] is not None, "Will-Retry-Until missing")
        # Still queued; then B comes up and the message is delivered.
        check("bob@remote.test> deferred" in queue_list(a), queue_list(a))
        mark = a.log_mark()
        with b:
            wait_files(b, "remote.test", "bob")
            wait_queue_empty(a)
        check(len(maildir_files(a, "example.test", "alice")) == 1, "one warning only")
        check(a.count_log(r"notice", since=mark) == 0, "no second notice")


@with_dns
def test_kill9_before_delivery_then_exactly_once(dns):
    b = remote_server(start=False)
    a = sender_server(dns, b, {"queue_retry": "1s"})
    try:
        submit(a, ["bob@remote.test"], message("survives a crash"))
        wait_for(lambda: "deferred" in queue_list(a), DELIVERY_TIMEOUT, "the first attempt to fail")
        a.kill()   # SIGKILL
        b.start()
        a.start()
        files = wait_files(b, "remote.test", "bob")
        wait_queue_empty(a)
        # Nothing may come later: the record is gone, so give stray
        # attempts no chance by checking the log and the Maildir once more.
        a.wait_log(r"done: delivered=1 failed=0, removed")
        check(len(maildir_files(b, "remote.test", "bob")) == 1, "delivered %d times" %
              len(maildir_files(b, "remote.test", "bob")))
        check(len(files) == 1, files)
    finally:
        a.stop()
        b.stop()


@with_dns
def test_kill9_during_delivery_never_loses(dns):
    """kill -9 of A right after B accepted the message: the mail is at B
    at least once and A's record is either gone or tried again."""
    with remote_server() as b:
        a = sender_server(dns, b)
        try:
            for i in range(5):
                submit(a, ["bob@remote.test"], message("burst %d" % i))
            wait_files(b, "remote.test", "bob", 1)
            a.kill()
            a.start()
            wait_files(b, "remote.test", "bob", 5)
            wait_queue_empty(a)
            n = len(maildir_files(b, "remote.test", "bob"))
            check(n >= 5, "lost messages: %d" % n)
        finally:
            a.stop()


def max_overlap(log, listener):
    """Most connections open at once on a listener, from B's log."""
    open_now, most = set(), 0
    for m in re.finditer(r"conn (\d+) (open|close): peer=\S+ listener=(\S+ \S+)", log):
        if m.group(3) != listener:
            continue
        if m.group(2) == "open":
            open_now.add(m.group(1))
            most = max(most, len(open_now))
        else:
            open_now.discard(m.group(1))
    return most


@with_dns
def test_per_domain_limit(dns):
    with remote_server() as b, sender_server(dns, b, {"outbound_max_per_domain": "1"}) as a:
        mark = len(b.log_text())
        with smtplib.SMTP("127.0.0.1", a.port("submission"), timeout=10) as s:
            s.ehlo("laptop")
            s.starttls(context=tls_ctx())
            s.ehlo("laptop")
            s.login("alice@example.test", PASSWORD)
            for i in range(6):
                s.sendmail("alice@example.test", ["bob@remote.test"], message("limited %d" % i))
        wait_files(b, "remote.test", "bob", 6)
        wait_queue_empty(a)
        most = max_overlap(b.log_text()[mark:], "smtp 127.0.0.1:%d" % b.port("smtp"))
        check(most == 1, "%d connections at once to one domain (limit 1)" % most)


def smarthost_test(dns, kind, tls):
    with remote_server() as b:
        pwfile = os.path.join(pbtest.make_temp_dir(), "relay.pw")
        with open(pwfile, "w") as f:
            f.write(CAROL_PASSWORD + "\n")
        os.chmod(pwfile, 0o600)
        cfg = {"smarthost": "127.0.0.1:%d tls=%s user=carol@remote.test password_file=%s"
               % (b.port(kind), tls, pwfile)}
        with sender_server(dns, b, cfg) as a:
            msg = message("via the smarthost %s" % kind)
            submit(a, ["bob@remote.test"], msg)
            files = wait_files(b, "remote.test", "bob")
            trace, body = strip_trace(open(files[0], "rb").read())
            check(body == msg.replace(b"\r\n", b"\n"), body)
            check(b"(authenticated user carol@remote.test)" in trace and b"with ESMTPSA" in trace, trace)
            a.wait_log(r"outbound \S+: domain=remote\.test host=127\.0\.0\.1\[127\.0\.0\.1\]:%d tls=TLSv1\.[23]/\S+ "
                       r"auth=carol@remote\.test <bob@remote\.test>=delivered" % b.port(kind))
            wait_queue_empty(a)
            check(CAROL_PASSWORD not in a.log_text(), "the relay password is in A's log")
            # No MX lookup happened: the smarthost replaces it.
            check("query[MX] remote.test" not in open(dns.log_path, errors="replace").read(),
                  "an MX lookup was made despite the smarthost")


@with_dns
def test_smarthost_starttls_auth(dns):
    smarthost_test(dns, "submission", "require")


@with_dns
def test_smarthost_implicit_tls_auth(dns):
    smarthost_test(dns, "submissions", "implicit")


@with_dns
def test_smarthost_wrong_password_defers(dns):
    with remote_server() as b:
        pwfile = os.path.join(pbtest.make_temp_dir(), "relay.pw")
        with open(pwfile, "w") as f:
            f.write("not the password\n")
        cfg = {"smarthost": "127.0.0.1:%d tls=require user=carol@remote.test password_file=%s"
               % (b.port("submission"), pwfile)}
        with sender_server(dns, b, cfg) as a:
            submit(a, ["bob@remote.test"], message("refused login"))
            out = wait_for(lambda: "deferred: 535" in queue_list(a) and queue_list(a), DELIVERY_TIMEOUT,
                           "a deferral for the refused AUTH")
            check(maildir_files(a, "example.test", "alice") == [], "a refused login must not bounce")
            check("not the password" not in a.log_text(), "the password is in the log")
            check(out, out)


@with_dns
def test_null_mx_bounces_at_once(dns):
    with remote_server() as b, sender_server(dns, b) as a:
        submit(a, ["someone@nullmx.test"], message("to a null MX", to="someone@nullmx.test"))
        bounce, _ = read_bounce(a)
        _, rcpts, _ = dsn_fields(bounce)
        check(rcpts[0]["Status"] == "5.1.10", rcpts[0]["Status"])
        check(rcpts[0]["Action"] == "failed", rcpts[0]["Action"])
        a.wait_log(r"outbound \S+: domain=nullmx\.test failed: 556 5\.1\.10 ")
        check(a.count_log(r"domain=nullmx\.test") == 1, "one attempt only")
        wait_queue_empty(a)


@with_dns
def test_nxdomain_and_loop_bounce(dns):
    with remote_server() as b, sender_server(dns, b) as a:
        submit(a, ["x@nowhere.test", "y@loop.test"], message("nowhere", to="x@nowhere.test, y@loop.test"))
        bounce, _ = read_bounce(a)
        _, rcpts, _ = dsn_fields(bounce)
        status = {r["Final-Recipient"]: r["Status"] for r in rcpts}
        check(status == {"rfc822; x@nowhere.test": "5.1.2", "rfc822; y@loop.test": "5.4.6"}, status)
        wait_queue_empty(a)


@with_dns
def test_implicit_mx(dns):
    with remote_server() as b, sender_server(dns, b) as a:
        msg = message("no MX, an A record", to="bob@implicit.test")
        submit(a, ["bob@implicit.test"], msg)
        files = wait_files(b, "implicit.test", "bob")
        _, body = strip_trace(open(files[0], "rb").read())
        check(body == msg.replace(b"\r\n", b"\n"), body)
        a.wait_log(r"domain=implicit\.test host=implicit\.test\[127\.0\.0\.1\]")
        wait_queue_empty(a)


@with_dns
def test_flush_from_the_cli(dns):
    b = remote_server(start=False)
    # A long wait after the first failure: only `queue flush` brings the
    # next attempt soon.
    with sender_server(dns, b, {"queue_retry": "1h"}) as a:
        submit(a, ["bob@remote.test"], message("flushed"))
        wait_for(lambda: "deferred" in queue_list(a), DELIVERY_TIMEOUT, "the first attempt to fail")
        with b:
            r = pb(a, "queue", "flush")
            check("due now" in r.stdout.decode(), r.stdout)
            wait_files(b, "remote.test", "bob", timeout=15)
            wait_queue_empty(a)


@with_dns
def test_large_message_streams(dns):
    with remote_server() as b, sender_server(dns, b) as a:
        line = "0123456789abcdefghijklmnopqrstuvwxyz" * 2 + "\r\n"
        body = line * (5 * 1024 * 1024 // len(line)) + ".\r\n..\r\nlast\r\n"
        msg = message("five megabytes", body=body)
        submit(a, ["bob@remote.test"], msg)
        files = wait_files(b, "remote.test", "bob", timeout=60)
        _, got = strip_trace(open(files[0], "rb").read())
        check(got == msg.replace(b"\r\n", b"\n"), "large message differs (%d vs %d octets)" % (len(got), len(msg)))
        wait_queue_empty(a)


@with_dns
def test_clean_stop_during_attempt(dns):
    """SIGTERM while an attempt waits for a server that says nothing: the
    server exits at once and the entry is tried again after a restart."""
    silent = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    silent.bind(("127.0.0.1", 0))
    silent.listen(5)
    try:
        b = remote_server(start=False)
        cfg = {"transport": "remote.test 127.0.0.1:%d tls=none" % silent.getsockname()[1]}
        a = sender_server(dns, b, cfg)
        submit(a, ["bob@remote.test"], message("stopped mid-way"))
        conn, _ = silent.accept()
        t0 = time.monotonic()
        check(a.stop() == 0, "exit code")
        check(time.monotonic() - t0 < 10, "stop took %.1fs" % (time.monotonic() - t0))
        conn.close()
        out = queue_list(a)
        check("bob@remote.test> pending" in out, "the entry must be unchanged: %s" % out)
    finally:
        silent.close()


if __name__ == "__main__":
    pbtest.main(globals())
