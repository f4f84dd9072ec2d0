#!/usr/bin/env python3
"""End-to-end tests of the store through the real binary: adopting a Maildir
taken over from Dovecot (UIDVALIDITY and UIDs kept), `postbote reindex`
with and without a running server, quota usage, and the removal of day-old
leftovers in tmp/ at start.

Run: python3 tests/e2e/test_store_cli.py [test_name ...]
"""

import os
import re
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pbtest  # noqa: E402
from pbtest import Server, TestFailure  # noqa: E402

MSG = b"From: a@example.org\nSubject: old mail\n\nkept across the move\n"


def check(cond, msg):
    if not cond:
        raise TestFailure(msg)


def pb(srv, *args, password=None):
    cmd = [pbtest.BIN] + list(args) + ["-c", srv.config_path]
    data = b""
    if password is not None:
        cmd.append("--password-stdin")
        data = (password + "\n").encode()
    r = pbtest.run(cmd, input=data, cwd=srv.dir)
    r.out = r.stdout.decode("utf-8", "replace")
    r.err = r.stderr.decode("utf-8", "replace")
    check(r.returncode == 0, "%s: exit %d, stdout %r, stderr %r" % (args, r.returncode, r.out, r.err))
    return r


def make_dovecot_maildir(root):
    """A Maildir as Dovecot leaves it: INBOX with UIDs 7 and 9 (next 12)
    and a Sent folder with UID 3."""
    for sub in ("cur", "new", "tmp", ".Sent/cur", ".Sent/new", ".Sent/tmp"):
        os.makedirs(os.path.join(root, sub), exist_ok=True)
    size = len(MSG)
    vsize = size + MSG.count(b"\n")
    names = ["1600000000.M1P1.old,S=%d,W=%d" % (size, vsize),
             "1600000001.M2P1.old,S=%d,W=%d" % (size, vsize)]
    with open(os.path.join(root, "cur", names[0] + ":2,S"), "wb") as f:
        f.write(MSG)
    with open(os.path.join(root, "new", names[1]), "wb") as f:
        f.write(MSG)
    with open(os.path.join(root, "dovecot-uidlist"), "w") as f:
        f.write("3 V1234567 N12 G0123456789abcdef0123456789abcdef\n")
        f.write("7 :%s\n9 W%d :%s\n" % (names[0], vsize, names[1]))
    sent = "1600000002.M3P1.old,S=%d,W=%d" % (size, vsize)
    with open(os.path.join(root, ".Sent", "cur", sent + ":2,S"), "wb") as f:
        f.write(MSG)
    with open(os.path.join(root, ".Sent", "dovecot-uidlist"), "w") as f:
        f.write("3 V1234999 N4 G00112233445566778899aabbccddeeff\n3 :%s\n" % sent)


def test_adopt_dovecot_maildir():
    srv = Server()
    root = os.path.join(srv.dir, "old", "Maildir")
    make_dovecot_maildir(root)
    pb(srv, "user", "add", "carol@example.test", "--maildir", root, password="pw carol")
    r = pb(srv, "reindex", "carol@example.test")
    check(re.search(r"carol@example.test INBOX: 2 messages, UIDVALIDITY 1234567, next UID 12", r.out),
          "INBOX not adopted with its UIDs: %r" % r.out)
    check(re.search(r"carol@example.test Sent: 1 message, UIDVALIDITY 1234999, next UID 4", r.out),
          "Sent not adopted: %r" % r.out)
    r = pb(srv, "quota", "carol@example.test")
    check(re.search(r"in use: .* in 3 messages", r.out), "usage not counted: %r" % r.out)
    # The files were left where they were, and the uid list still holds
    # Dovecot's UIDs (a user can move back).
    check(os.path.exists(os.path.join(root, "new")), "Maildir moved")
    with open(os.path.join(root, "dovecot-uidlist")) as f:
        text = f.read()
    check(text.startswith("3 V1234567 ") and re.search(r"^7 .*1600000000", text, re.M)
          and re.search(r"^9 .*1600000001", text, re.M), "uid list rewritten wrongly: %r" % text)


def test_reindex_beside_running_server():
    with Server() as srv:
        pb(srv, "user", "add", "dave@example.test", password="pw dave")
        r = pb(srv, "reindex")
        check("postbote is running" in r.out, "reindex did not notice the server: %r" % r.out)
    # Stopped: the rebuild happens in the command itself.
    r = pb(srv, "reindex")
    check(re.search(r"dave@example.test INBOX: 0 messages", r.out), "no rebuild report: %r" % r.out)


def test_tmp_leftovers_removed_at_start():
    srv = Server()
    pb(srv, "user", "add", "erin@example.test", password="pw erin")
    tmp = os.path.join(srv.data_dir, "mail", "example.test", "erin", "tmp")
    os.makedirs(tmp, exist_ok=True)
    old = os.path.join(tmp, "1500000000.M1P1.crashed")
    fresh = os.path.join(tmp, "%d.M1P2.busy" % int(time.time()))
    for p in (old, fresh):
        with open(p, "wb") as f:
            f.write(b"partial")
    two_days_ago = time.time() - 2 * 86400
    os.utime(old, (two_days_ago, two_days_ago))
    with srv:
        pbtest.wait_for(lambda: not os.path.exists(old), 10, "the day-old tmp file to go")
        check(os.path.exists(fresh), "a fresh tmp file was removed")
        check("removed stale" in srv.log_text(), "removal not logged")


if __name__ == "__main__":
    pbtest.main(globals())
