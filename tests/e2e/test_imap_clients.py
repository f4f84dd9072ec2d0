#!/usr/bin/env python3
"""End-to-end tests of the IMAP server with real clients: mbsync (Debian's
isync) syncing a Maildir both ways over IMAPS, and curl listing mailboxes
and fetching messages over imaps and STARTTLS.

A test whose client is not installed is skipped with the package to
install (scripts/install-deps.sh installs them; CI has them).

Run: python3 tests/e2e/test_imap_clients.py [test_name ...]
"""

import glob
import imaplib
import os
import re
import shutil
import smtplib
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pbtest  # noqa: E402
from pbtest import Server, Skip, TestFailure, wait_for  # noqa: E402

USER = "bob@example.test"
PASSWORD = "bob imap pw"
LISTENS = [("imap", "127.0.0.1"), ("imaps", "127.0.0.1"), ("smtp", "127.0.0.1")]


def crlf(text):
    return text.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


def lf(text):
    return text.replace(b"\r\n", b"\n")


MESSAGES = [crlf(b"From: a@example.org\nTo: bob@example.test\nSubject: sync %s\n"
                 b"Message-ID: <sync.%s@example.org>\n\nBody of %s.\n" % (n, n, n))
            for n in (b"one", b"two", b"three")]
LOCAL_NEW = b"From: bob@example.test\nTo: x@example.org\nSubject: sync written locally\n" \
            b"Message-ID: <sync.local@example.test>\n\nWritten in the local Maildir.\n"


def check(cond, msg):
    if not cond:
        raise TestFailure(msg)


def need(tool, package):
    if shutil.which(tool) is None:
        raise Skip("%s is not installed (apt-get install %s)" % (tool, package))


def server(config=None):
    cfg = {"log_level": "info"}
    cfg.update(config or {})
    # hostname localhost: the self-signed certificate then names 127.0.0.1
    # too, which mbsync checks even for a certificate it is told to trust.
    srv = Server(listens=LISTENS, config=cfg, hostname="localhost")
    pbtest.add_user(srv, USER, PASSWORD)
    return srv


def login(srv):
    m = imaplib.IMAP4_SSL("127.0.0.1", srv.port("imaps"), ssl_context=pbtest.client_context(), timeout=20)
    m.login(USER, PASSWORD)
    return m


def append_all(srv, messages, flags=()):
    """APPEND messages to INBOX; their UIDs (from APPENDUID)."""
    m = login(srv)
    uids = []
    for i, msg in enumerate(messages):
        typ, dat = m.append("INBOX", flags[i] if i < len(flags) else None, None, msg)
        check(typ == "OK", "APPEND: %s %r" % (typ, dat))
        au = re.search(rb"\[APPENDUID \d+ (\d+)\]", dat[-1])
        check(au is not None, "no APPENDUID: %r" % dat)
        uids.append(int(au.group(1)))
    m.logout()
    return uids


def server_state(srv):
    """{Subject: set of flags} of INBOX, as a fresh session sees it."""
    m = login(srv)
    typ, _ = m.select("INBOX", readonly=True)
    check(typ == "OK", "EXAMINE INBOX")
    typ, dat = m.fetch("1:*", "(FLAGS BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
    state = {}
    if typ == "OK" and dat != [None]:
        for item in dat:
            if isinstance(item, tuple):
                flags = set(re.search(rb"FLAGS \(([^)]*)\)", item[0]).group(1).decode().split())
                subject = item[1].decode().strip().split(": ", 1)[1]
                state[subject] = flags - {"\\Recent"}
    m.logout()
    return state


# ---------------------------------------------------------------- mbsync

class Mbsync:
    """mbsync with a Maildir of its own, syncing bob's INBOX over IMAPS
    (trusting exactly the server's self-signed certificate)."""

    def __init__(self, srv):
        need("mbsync", "isync")
        self.srv = srv
        self.dir = pbtest.make_temp_dir("postbote-mbsync-")
        self.maildir = os.path.join(self.dir, "mail")
        os.makedirs(self.maildir)
        self.rc = os.path.join(self.dir, "mbsyncrc")
        with open(self.rc, "w") as f:
            f.write('IMAPAccount far\nHost localhost\nPort %d\nUser %s\nPass "%s"\n'
                    "SSLType IMAPS\nCertificateFile %s\nSystemCertificates no\n\n"
                    "IMAPStore far-store\nAccount far\n\n"
                    "MaildirStore near-store\nPath %s/\nInbox %s/INBOX\nSubFolders Verbatim\n\n"
                    "Channel pb\nFar :far-store:\nNear :near-store:\nPatterns INBOX\n"
                    "Create Near\nExpunge Both\nSync All\nSyncState *\nCopyArrivalDate yes\n"
                    % (srv.port("imaps"), USER, PASSWORD, os.path.join(srv.data_dir, "tls", "cert.pem"),
                       self.maildir, self.maildir))

    def run(self):
        """One sync; mbsync's output (protocol debug included)."""
        r = subprocess.run(["mbsync", "-c", self.rc, "-V", "-Dn", "pb"], stdin=subprocess.DEVNULL,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=120,
                           env=dict(os.environ, HOME=self.dir))
        out = r.stdout.decode("utf-8", "replace")
        check(r.returncode == 0, "mbsync exit %d:\n%s" % (r.returncode, out[-4000:]))
        return out

    def files(self):
        """{file name: bytes} of the local INBOX."""
        out = {}
        for path in glob.glob(os.path.join(self.maildir, "INBOX", "new", "*")) + \
                glob.glob(os.path.join(self.maildir, "INBOX", "cur", "*")):
            with open(path, "rb") as f:
                out[path] = f.read()
        return out

    def find(self, subject):
        hits = [p for p, data in self.files().items() if b"Subject: " + subject in data]
        check(len(hits) == 1, "local files with subject %r: %r" % (subject, hits))
        return hits[0]


def local_flags(path):
    m = re.search(r":2,([A-Za-z]*)$", path)
    return set(m.group(1)) if m else set()


def client_commands(srv, since):
    """The commands IMAP clients sent since the log offset (trace = on)."""
    return re.findall(r"\[imap \d+\] C: (.*)", srv.log_text()[since:])


def mbsync_pull(srv, sync):
    append_all(srv, MESSAGES, flags=[r"(\Seen)"])
    sync.run()
    # mbsync marks each message it writes with an X-TUID header.
    got = sorted(re.sub(rb"(?m)^X-TUID: .*\n", b"", lf(d)) for d in sync.files().values())
    check(got == sorted(lf(m) for m in MESSAGES), "pulled messages differ: %r" % got)
    check(local_flags(sync.find(b"sync one")) == {"S"}, "\\Seen not pulled: %r" % sync.find(b"sync one"))


def mbsync_push_flag(srv, sync):
    two = sync.find(b"sync two")
    os.rename(two, re.sub(r":2,[A-Za-z]*$", "", two) + ":2,F")
    sync.run()
    check(server_state(srv)["sync two"] == {"\\Flagged"}, "flag not pushed: %r" % server_state(srv))


def mbsync_push_new(srv, sync):
    """A message written locally is appended, its UID taken from APPENDUID
    (without UIDPLUS mbsync would look it up by its X-TUID header)."""
    mark = srv.log_mark()
    tmp = os.path.join(sync.maildir, "INBOX", "tmp", "1700000000.e2e.local")
    with open(tmp, "wb") as f:
        f.write(LOCAL_NEW)
    os.rename(tmp, os.path.join(sync.maildir, "INBOX", "new", "1700000000.e2e.local"))
    sync.run()
    check("sync written locally" in server_state(srv), "local message not pushed: %r" % server_state(srv))
    trace = srv.log_text()[mark:]
    append = re.search(r"\[imap (\d+)\] C: (\S+) APPEND ", trace)
    check(append is not None, "no APPEND in the trace: %r" % client_commands(srv, mark))
    check(re.search(r"\[imap %s\] S: %s OK \[APPENDUID \d+ \d+\]" % append.groups(), trace),
          "the APPEND was not answered with APPENDUID")
    cmds = client_commands(srv, mark)
    lookups = [c for c in cmds if re.match(r"\S+ (UID )?(SEARCH\b|FETCH\b.*(X-TUID|MESSAGE-ID))", c, re.I)]
    check(not lookups, "mbsync looked the appended message up (APPENDUID not used?): %r" % lookups)


def mbsync_expunge_both_ways(srv, sync):
    """Expunged on the server: gone locally; deleted locally: gone on the
    server."""
    m = login(srv)
    m.select("INBOX")
    typ, dat = m.search(None, "SUBJECT", '"sync three"')
    check(typ == "OK" and len(dat[0].split()) == 1, "SEARCH SUBJECT: %s %r" % (typ, dat))
    m.store(dat[0].decode(), "+FLAGS", r"(\Deleted)")
    m.expunge()
    m.logout()
    os.unlink(sync.find(b"sync one"))
    sync.run()
    subjects = sorted(re.search(rb"Subject: (.*)", d).group(1) for d in sync.files().values())
    check(subjects == [b"sync two", b"sync written locally"], "local INBOX after the expunges: %r" % subjects)
    check(sorted(server_state(srv)) == ["sync two", "sync written locally"],
          "server INBOX after the expunges: %r" % server_state(srv))


def mbsync_second_run_does_nothing(srv, sync):
    before = (sorted(sync.files()), server_state(srv))
    mark = srv.log_mark()
    sync.run()
    check((sorted(sync.files()), server_state(srv)) == before, "a second run changed something")
    changes = [c for c in client_commands(srv, mark)
               if re.match(r"\S+ (UID )?(APPEND|STORE|EXPUNGE|COPY|MOVE)\b", c) or "BODY[]" in c
               or "BODY.PEEK[]" in c]
    check(not changes, "the second run transferred: %r" % changes)


def test_mbsync_pull_push_expunge_then_nothing_to_do():
    with server({"trace": "on"}) as srv:
        sync = Mbsync(srv)
        mbsync_pull(srv, sync)
        mbsync_push_flag(srv, sync)
        mbsync_push_new(srv, sync)
        mbsync_expunge_both_ways(srv, sync)
        mbsync_second_run_does_nothing(srv, sync)


# ---------------------------------------------------------------- curl

def curl(*args):
    need("curl", "curl")
    r = pbtest.run(["curl", "-sS", "--max-time", "60", "-u", "%s:%s" % (USER, PASSWORD)] + list(args), timeout=90)
    check(r.returncode == 0, "curl %s: exit %d: %r" % (args, r.returncode, r.stderr))
    return r.stdout


def deliver(srv):
    """A message through the smtp listener; its stored bytes."""
    with smtplib.SMTP("127.0.0.1", srv.port("smtp"), timeout=20) as s:
        s.sendmail("sender@example.org", [USER], "From: sender@example.org\r\nSubject: by smtp\r\n\r\nhello\r\n")
    root = os.path.join(srv.data_dir, "mail", "example.test", "bob")
    files = wait_for(lambda: glob.glob(os.path.join(root, "new", "*")) + glob.glob(os.path.join(root, "cur", "*")),
                     10, "the delivered message in the Maildir")
    with open(files[0], "rb") as f:
        return f.read()


def test_curl_imaps_lists_mailboxes():
    with server() as srv:
        out = curl("-k", "imaps://127.0.0.1:%d/" % srv.port("imaps")).decode()
        names = set()
        for line in out.splitlines():
            toks = pbtest.imap_parse(line.encode()[2:])
            check(line.startswith("* LIST ") and toks[2] == b"/", "curl listing line %r" % line)
            names.add(toks[3].decode() if isinstance(toks[3], bytes) else toks[3])
        check({"INBOX", "Sent", "Drafts", "Trash", "Junk", "Archive"} <= names, "curl listing: %r" % out)


def test_curl_imaps_fetches_by_uid():
    with server() as srv:
        stored = deliver(srv)
        uids = append_all(srv, MESSAGES[:1])
        base = "imaps://127.0.0.1:%d/INBOX" % srv.port("imaps")
        got = curl("-k", base + ";UID=%d" % uids[0])
        check(got == MESSAGES[0], "curl UID=%d: %r" % (uids[0], got[:300]))
        got = curl("-k", base + ";UID=1")
        check(got == crlf(stored), "curl UID=1 (delivered by SMTP): %r vs %r" % (got[:300], stored[:300]))


def test_curl_starttls_fetch():
    with server() as srv:
        uids = append_all(srv, MESSAGES[1:2])
        got = curl("-k", "--ssl-reqd", "imap://127.0.0.1:%d/INBOX;UID=%d" % (srv.port("imap"), uids[0]))
        check(got == MESSAGES[1], "curl over STARTTLS: %r" % got[:300])


if __name__ == "__main__":
    pbtest.main(globals())
