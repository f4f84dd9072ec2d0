#!/usr/bin/env python3
"""End-to-end tests of the IMAP server through the real binary: python3's
imaplib for every command of RFC 3501 and the extensions postbote
announces (IDLE, UIDPLUS, MOVE, SPECIAL-USE, CHILDREN, UNSELECT, NAMESPACE,
ID, ENABLE, LITERAL+, SASL-IR), over STARTTLS on the plain port and over
implicit TLS; raw sockets (pbtest.Imap) for what imaplib cannot do (IDLE,
pipelining, LITERAL+, malformed input) and for exact checks of responses.

The expected answers come from the RFCs, not from what the server happens
to say: FETCH results are parsed and compared field by field (atoms such as
"TEXT" case-insensitively, as RFC 3501 allows, strings exactly).

Run: python3 tests/e2e/test_imap.py [test_name ...]
"""

import base64
import datetime
import imaplib
import os
import re
import smtplib
import ssl
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pbtest  # noqa: E402
from pbtest import Imap, Server, TestFailure, wait_for  # noqa: E402

USER = "bob@example.test"
PASSWORD = "bob imap pw"
LISTENS = [("imap", "127.0.0.1"), ("imaps", "127.0.0.1"), ("smtp", "127.0.0.1")]
CAPS_AFTER_LOGIN = ("IMAP4rev1", "LITERAL+", "SASL-IR", "ID", "ENABLE", "IDLE", "NAMESPACE", "UIDPLUS",
                    "MOVE", "SPECIAL-USE", "CHILDREN", "UNSELECT")


# ---------------------------------------------------------------- messages

def crlf(text):
    return text.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


PLAIN_HEADER = crlf(
    b"Date: Mon, 02 Jan 2023 10:00:00 +0000\n"
    b"From: Alice Example <alice@example.org>\n"
    b"To: Bob <bob@example.test>\n"
    b"Cc: carol@example.org\n"
    b"Subject: Quarterly report\n"
    b"Message-ID: <plain.1@example.org>\n"
    b"MIME-Version: 1.0\n"
    b"Content-Type: text/plain; charset=us-ascii\n"
    b"\n")
PLAIN_BODY = crlf(b"Hello Bob,\nthe numbers are in.\n")
MSG_PLAIN = PLAIN_HEADER + PLAIN_BODY

IMAGE = bytes(range(256)) * 5
IMAGE_B64 = crlf(base64.encodebytes(IMAGE))
MULTI_PART1_MIME = crlf(b'Content-Type: multipart/alternative; boundary="inner-AbC"\n\n')
MULTI_TEXT = crlf(b"Look at the picture.\n")
MULTI_HTML = crlf(b"<p>Look at the <b>picture</b>.</p>\n")
MULTI_PART2_MIME = crlf(
    b'Content-Type: image/png; name="beach.png"\n'
    b"Content-Transfer-Encoding: base64\n"
    b'Content-Disposition: attachment; filename="beach.png"\n'
    b"Content-Language: en\n"
    b"Content-Location: http://example.org/beach.png\n"
    b"Content-ID: <img1@example.org>\n"
    b"Content-Description: The beach\n"
    b"Content-MD5: Q2hlY2sgSW50ZWdyaXR5IQ==\n"
    b"\n")
MULTI_PART1 = crlf(
    b"--inner-AbC\n"
    b"Content-Type: text/plain; charset=utf-8\n\n") + MULTI_TEXT + crlf(
    b"\n--inner-AbC\n"
    b"Content-Type: text/html; charset=utf-8\n\n") + MULTI_HTML + crlf(b"\n--inner-AbC--\n")
MSG_MULTI = crlf(
    b"From: Dave <dave@example.org>\n"
    b"To: bob@example.test\n"
    b"Subject: Holiday photos\n"
    b"Date: Wed, 15 Mar 2023 12:00:00 +0000\n"
    b"Message-ID: <multi.2@example.org>\n"
    b"MIME-Version: 1.0\n"
    b'Content-Type: multipart/mixed; boundary="outer-XyZ"\n'
    b"\n"
    b"This is a multi-part message in MIME format.\n"
    b"--outer-XyZ\n") + MULTI_PART1_MIME + MULTI_PART1 + crlf(b"\n--outer-XyZ\n") + \
    MULTI_PART2_MIME + IMAGE_B64 + crlf(b"\n--outer-XyZ--\n")

MSG_B64 = crlf(
    b"From: Alice Example <alice@example.org>\n"
    b"To: bob@example.test\n"
    b"Subject: Encoded\n"
    b"Date: Tue, 20 Jun 2023 08:00:00 +0000\n"
    b"Message-ID: <b64.3@example.org>\n"
    b"MIME-Version: 1.0\n"
    b"Content-Type: text/plain; charset=utf-8\n"
    b"Content-Transfer-Encoding: base64\n"
    b"\n") + crlf(base64.encodebytes(b"The secret word is pineapple.\r\n"))

MSG_UTF8 = crlf(
    b"From: =?utf-8?q?J=C3=BCrgen?= <juergen@example.de>\n"
    b"To: bob@example.test\n"
    b"Bcc: hidden@example.test\n"
    b"Subject: =?utf-8?q?Gr=C3=BC=C3=9Fe_aus_Berlin?=\n"
    b"Date: Fri, 01 Sep 2023 12:30:00 +0200\n"
    b"Message-ID: <utf8.4@example.de>\n"
    b"In-Reply-To: <plain.1@example.org>\n"
    b"MIME-Version: 1.0\n"
    b"Content-Type: text/plain; charset=utf-8\n"
    b"Content-Transfer-Encoding: quoted-printable\n"
    b"\n"
    b"Viele Gr=C3=BC=C3=9Fe vom Alexanderplatz.\n")

# (message, flags, internal date) in the order populate() appends them.
MAILBOX = [
    (MSG_PLAIN, r"(\Seen)", "02-Jan-2023 12:00:00 +0000"),
    (MSG_MULTI, None, "15-Mar-2023 12:00:00 +0000"),
    (MSG_B64, r"(\Flagged)", "20-Jun-2023 12:00:00 +0000"),
    (MSG_UTF8, r"(\Answered $Work)", "01-Sep-2023 12:00:00 +0000"),
]


# ---------------------------------------------------------------- helpers

def check(cond, msg):
    if not cond:
        raise TestFailure(msg)


def server(config=None, users=(USER,)):
    cfg = {"log_level": "info"}
    cfg.update(config or {})
    srv = Server(listens=LISTENS, config=cfg)
    for u in users:
        pbtest.add_user(srv, u, PASSWORD)
    return srv


def imaps(srv):
    return imaplib.IMAP4_SSL("127.0.0.1", srv.port("imaps"), ssl_context=pbtest.client_context(), timeout=20)


def login(srv, user=USER):
    m = imaps(srv)
    m.login(user, PASSWORD)
    return m


def raw_login(srv, kind="imaps"):
    c = Imap.open(srv, kind)
    c.login(USER, PASSWORD)
    return c


def ok(result, what):
    typ, dat = result
    check(typ == "OK", "%s: %s %r" % (what, typ, dat))
    return dat


def status_of(fn, *args):
    """(typ, data) of an imaplib call; imaplib raises on BAD."""
    try:
        return fn(*args)
    except imaplib.IMAP4.error as e:
        return "BAD", [str(e).encode()]


def code_of(text, name):
    """The data of response code [name ...] in text (bytes), or None."""
    m = re.search(rb"\[" + name.encode() + rb"(?: ([^\]]*))?\]", text)
    return m and (m.group(1) or b"")


def append(m, msg, flags=None, date=None, mailbox="INBOX"):
    """APPEND; the APPENDUID (uidvalidity, uid)."""
    dat = ok(m.append(mailbox, flags, '"%s"' % date if date else None, msg), "APPEND")
    au = code_of(dat[-1], "APPENDUID")
    check(au is not None, "no APPENDUID in %r" % dat)
    v, u = au.split()
    return int(v), int(u)


def populate(m, mailbox="INBOX"):
    """The four MAILBOX messages; their UIDs."""
    return [append(m, msg, flags, date, mailbox)[1] for msg, flags, date in MAILBOX]


def responses(data):
    """imaplib's data list put back into whole responses: a literal's
    (head, bytes) pair and the piece after it belong to one response."""
    out = []
    cont = False
    for item in data:
        if item is None:
            continue
        if isinstance(item, tuple):
            piece = item[0] + b"\r\n" + item[1]
            if cont:
                out[-1] += piece
            else:
                out.append(piece)
            cont = True
        else:
            if cont:
                out[-1] += item
            else:
                out.append(item)
            cont = False
    return out


def fetch_attrs(toks):
    attrs = toks[-1]
    return {k.upper(): v for k, v in zip(attrs[0::2], attrs[1::2])}


def fetch(m, seqset, items, uid=False):
    """{sequence number: {ITEM: value}} of a FETCH (or UID FETCH)."""
    dat = ok(m.uid("FETCH", seqset, items) if uid else m.fetch(seqset, items), "FETCH %s %s" % (seqset, items))
    out = {}
    for r in responses(dat):
        toks = pbtest.imap_parse(r)
        out.setdefault(int(toks[0]), {}).update(fetch_attrs(toks))
    return out


def search(m, *criteria, uid=False, charset=None):
    dat = ok(m.uid("SEARCH", *criteria) if uid else m.search(charset, *criteria), "SEARCH %r" % (criteria,))
    return [int(x) for x in b" ".join(d for d in dat if d).split()]


def flags_of(value):
    """A FLAGS list as a set, \\Recent left out (which session gets it is
    not what these tests are about)."""
    return {f for f in value if f.lower() != "\\recent"}


def count(m, mailbox):
    dat = ok(m.status(mailbox, "(MESSAGES)"), "STATUS " + mailbox)
    return int(re.search(rb"MESSAGES (\d+)", dat[0]).group(1))


def list_names(m, ref, pattern, cmd="LIST"):
    """{name: set of attributes} of LIST or LSUB; checks the delimiter."""
    dat = ok(m.list(ref, pattern) if cmd == "LIST" else m.lsub(ref, pattern), "%s %s" % (cmd, pattern))
    out = {}
    for r in responses(dat):
        attrs, delim, name = pbtest.imap_parse(r)
        check(delim == b"/", "hierarchy delimiter %r in %r" % (delim, r))
        out[name.decode() if isinstance(name, bytes) else name] = {a.lower() for a in attrs}
    return out


class CI:
    """An expected string compared case-insensitively."""

    def __init__(self, s):
        self.s = s.lower()

    def __repr__(self):
        return "CI(%r)" % self.s


class OneOf:
    def __init__(self, *choices):
        self.choices = choices

    def __repr__(self):
        return "OneOf%r" % (self.choices,)


def match(got, want, path="$"):
    """Compare a parsed response with an expectation (ints match numeric
    atoms, CI case-insensitively, OneOf any of its choices)."""
    if isinstance(want, OneOf):
        errors = []
        for w in want.choices:
            try:
                match(got, w, path)
                return
            except TestFailure as e:
                errors.append(str(e))
        raise TestFailure("%s: none of %r matches %r (%s)" % (path, want.choices, got, "; ".join(errors)))
    if isinstance(want, CI):
        # A string in the grammar: an atom there would be a syntax error.
        check(isinstance(got, bytes) and got.decode("utf-8", "replace").lower() == want.s,
              "%s: %r, want the string %r" % (path, got, want))
    elif isinstance(want, int):
        check(isinstance(got, str) and got.isdigit() and int(got) == want, "%s: %r, want %d" % (path, got, want))
    elif isinstance(want, list):
        check(isinstance(got, list) and len(got) == len(want),
              "%s: %r, want a list of %d: %r" % (path, got, len(want), want))
        for i, (g, w) in enumerate(zip(got, want)):
            match(g, w, "%s[%d]" % (path, i))
    else:
        check(got == want, "%s: %r, want %r" % (path, got, want))


def lines(body):
    return body.count(b"\r\n")


def text_part(subtype, charset, body, encoding="7BIT", ext=True):
    part = [CI("TEXT"), CI(subtype), [CI("CHARSET"), CI(charset)], None, None, CI(encoding), len(body),
            lines(body)]
    return part + [None, None, None, None] if ext else part


def multi_structure(ext=True):
    """MSG_MULTI's BODYSTRUCTURE (ext) or BODY."""
    alt = [text_part("PLAIN", "utf-8", MULTI_TEXT, ext=ext), text_part("HTML", "utf-8", MULTI_HTML, ext=ext),
           CI("ALTERNATIVE")]
    image = [CI("IMAGE"), CI("PNG"), [CI("NAME"), b"beach.png"], b"<img1@example.org>", b"The beach",
             CI("BASE64"), len(IMAGE_B64)]
    outer = [alt, image, CI("MIXED")]
    if ext:
        alt += [[CI("BOUNDARY"), b"inner-AbC"], None, None, None]
        image += [b"Q2hlY2sgSW50ZWdyaXR5IQ==", [CI("ATTACHMENT"), [CI("FILENAME"), b"beach.png"]],
                  OneOf(b"en", [b"en"]), b"http://example.org/beach.png"]
        outer += [[CI("BOUNDARY"), b"outer-XyZ"], None, None, None]
    return outer


PLAIN_ENVELOPE = [b"Mon, 02 Jan 2023 10:00:00 +0000", b"Quarterly report",
                  [[b"Alice Example", None, b"alice", b"example.org"]],
                  [[b"Alice Example", None, b"alice", b"example.org"]],
                  [[b"Alice Example", None, b"alice", b"example.org"]],
                  [[b"Bob", None, b"bob", b"example.test"]],
                  [[None, None, b"carol", b"example.org"]],
                  None, None, b"<plain.1@example.org>"]


def internal_date(value):
    return datetime.datetime.strptime(value.decode().strip(), "%d-%b-%Y %H:%M:%S %z")


# ---------------------------------------------------------------- connecting and logging in

def test_starttls_on_plain_port_then_login():
    with server() as srv:
        m = imaplib.IMAP4("127.0.0.1", srv.port("imap"), timeout=20)
        check("STARTTLS" in m.capabilities and "LOGINDISABLED" in m.capabilities,
              "capabilities before TLS: %r" % (m.capabilities,))
        check("AUTH=PLAIN" not in m.capabilities, "AUTH=PLAIN offered before TLS: %r" % (m.capabilities,))
        ok(m.starttls(ssl_context=pbtest.client_context()), "STARTTLS")
        check("LOGINDISABLED" not in m.capabilities and "STARTTLS" not in m.capabilities
              and "AUTH=PLAIN" in m.capabilities, "capabilities after STARTTLS: %r" % (m.capabilities,))
        ok(m.login(USER, PASSWORD), "LOGIN")
        ok(m.select("INBOX"), "SELECT")
        check(m.logout()[0] == "BYE", "LOGOUT")


def test_login_refused_before_tls():
    with server() as srv, Imap.open(srv, "imap") as c:
        r = c.cmd('LOGIN "%s" "%s"' % (USER, PASSWORD))
        check(r.status == "NO", "LOGIN before TLS: %r" % r)
        token = base64.b64encode(b"\0" + USER.encode() + b"\0" + PASSWORD.encode()).decode()
        r = c.cmd("AUTHENTICATE PLAIN " + token)
        check(r.status in ("NO", "BAD"), "AUTHENTICATE before TLS: %r" % r)
        c.ok("STARTTLS")
        c.c.starttls()
        c.login(USER, PASSWORD)
        c.ok("SELECT INBOX")


def test_plaintext_login_allowed_on_loopback():
    with server({"allow_plaintext_auth_loopback": "yes"}) as srv:
        m = imaplib.IMAP4("127.0.0.1", srv.port("imap"), timeout=20)
        check("LOGINDISABLED" not in m.capabilities and "AUTH=PLAIN" in m.capabilities,
              "capabilities: %r" % (m.capabilities,))
        ok(m.login(USER, PASSWORD), "LOGIN")
        m.logout()


def test_capabilities_over_imaps():
    with server() as srv:
        m = imaps(srv)
        for cap in ("IMAP4REV1", "AUTH=PLAIN", "SASL-IR"):
            check(cap in m.capabilities, "%s missing before login: %r" % (cap, m.capabilities))
        check("STARTTLS" not in m.capabilities and "LOGINDISABLED" not in m.capabilities,
              "imaps capabilities: %r" % (m.capabilities,))
        m.login(USER, PASSWORD)
        caps = ok(m.capability(), "CAPABILITY")[-1].decode().split()
        for cap in CAPS_AFTER_LOGIN:
            check(cap in caps, "%s missing after login: %r" % (cap, caps))
        m.logout()


def test_authenticate_plain_with_imaplib():
    with server() as srv:
        m = imaps(srv)
        ok(m.authenticate("PLAIN", lambda _: b"\0" + USER.encode() + b"\0" + PASSWORD.encode()),
           "AUTHENTICATE PLAIN")
        ok(m.select("INBOX"), "SELECT")
        m.logout()


def test_authenticate_plain_raw_with_and_without_initial_response():
    token = base64.b64encode(b"\0" + USER.encode() + b"\0" + PASSWORD.encode()).decode()
    with server() as srv:
        with Imap.open(srv) as c:
            c.ok("AUTHENTICATE PLAIN " + token)
            c.ok("SELECT INBOX")
        with Imap.open(srv) as c:
            c.send(b"a1 AUTHENTICATE PLAIN\r\n")
            line = c.c.readline_bytes()
            check(line.startswith(b"+ "), "continuation request %r (must be '+' and a space)" % line)
            c.send(token.encode() + b"\r\n")
            r = c.finish("a1")
            check(r.ok, "AUTHENTICATE after the challenge: %r" % r)
        with Imap.open(srv) as c:
            wrong = base64.b64encode(b"\0" + USER.encode() + b"\0wrong").decode()
            r = c.cmd("AUTHENTICATE PLAIN " + wrong)
            check(r.status == "NO", "wrong password: %r" % r)
            c.send(b"a2 AUTHENTICATE PLAIN\r\n")
            check(c.c.readline_bytes().startswith(b"+ "), "no continuation")
            c.send(b"*\r\n")
            r = c.finish("a2")
            check(r.status == "BAD", "cancelled AUTHENTICATE: %r" % r)


def test_login_wrong_password_is_no():
    with server() as srv, Imap.open(srv) as c:
        r = c.cmd('LOGIN "%s" "not the password"' % USER)
        check(r.status == "NO", "wrong password: %r" % r)
        c.login(USER, PASSWORD)


def test_login_with_literals():
    with server() as srv, Imap.open(srv) as c:
        user, pw = USER.encode(), PASSWORD.encode()
        c.send(b"a1 LOGIN {%d}\r\n" % len(user))
        check(c.c.readline_bytes().startswith(b"+ "), "no continuation for the user name literal")
        c.send(user + b" {%d}\r\n" % len(pw))
        check(c.c.readline_bytes().startswith(b"+ "), "no continuation for the password literal")
        c.send(pw + b"\r\n")
        check(c.finish("a1").ok, "LOGIN with synchronizing literals")
    with server() as srv, Imap.open(srv) as c:
        c.ok(b"LOGIN {%d+}\r\n%s {%d+}\r\n%s" % (len(USER), USER.encode(), len(PASSWORD), PASSWORD.encode()))


def test_starttls_discards_plaintext_sent_behind_it():
    with server() as srv, Imap.open(srv, "imap") as c:
        c.send(b"a1 STARTTLS\r\na2 NOOP\r\n")
        r = c.read_response()
        check(r.startswith(b"a1 OK"), "STARTTLS: %r" % r)
        try:
            c.c.starttls()   # fails if a2 was answered in plaintext
        except (ssl.SSLError, ConnectionError):
            return   # closing on a client that pipelines past STARTTLS is safe too
        c.send(b"a3 CAPABILITY\r\n")
        r = c.read_response()
        check(r.startswith(b"* CAPABILITY") and b"STARTTLS" not in r, "first answer inside TLS: %r" % r)
        check(c.finish("a3").ok, "CAPABILITY inside TLS (a2 must not be answered)")


def test_idle_session_is_logged_out_after_imap_timeout():
    with server({"imap_timeout": "1s"}) as srv, Imap.open(srv) as c:
        t0 = time.monotonic()
        r = c.read_response(timeout=15)
        check(r.startswith(b"* BYE"), "autologout: %r" % r)
        check(time.monotonic() - t0 >= 0.5, "closed after %.2fs" % (time.monotonic() - t0))
        c.c.expect_eof()


def test_noop_and_logout():
    with server() as srv, Imap.open(srv) as c:
        c.ok("NOOP")
        c.login(USER, PASSWORD)
        c.ok("NOOP")
        r = c.ok("LOGOUT")
        check(any(u.startswith(b"BYE") for u in r.untagged), "no BYE before LOGOUT's OK: %r" % r)
        c.c.expect_eof()


# ---------------------------------------------------------------- mailboxes

def test_list_special_use_and_children():
    with server() as srv:
        m = login(srv)
        names = list_names(m, '""', "*")
        for name, use in (("Sent", "\\sent"), ("Drafts", "\\drafts"), ("Trash", "\\trash"),
                          ("Junk", "\\junk"), ("Archive", "\\archive")):
            check(name in names and use in names[name], "%s without %s: %r" % (name, use, names))
        check("INBOX" in names, "no INBOX: %r" % names)
        ok(m.create("Projects"), "CREATE Projects")
        ok(m.create("Projects/2024"), "CREATE Projects/2024")
        top = list_names(m, '""', "%")
        check("Projects" in top and "Projects/2024" not in top, "LIST %%: %r" % top)
        check("\\haschildren" in top["Projects"], "Projects attributes %r" % top["Projects"])
        check("\\hasnochildren" in top["Sent"], "Sent attributes %r" % top["Sent"])
        sub = list_names(m, '""', "Projects/%")
        check(list(sub) == ["Projects/2024"] and "\\hasnochildren" in sub["Projects/2024"],
              "LIST Projects/%%: %r" % sub)
        check(set(list_names(m, "Projects/", "%")) == {"Projects/2024"}, "LIST with a reference")
        root = responses(ok(m.list('""', '""'), 'LIST "" ""'))
        check(len(root) == 1 and pbtest.imap_parse(root[0])[1] == b"/", "LIST \"\" \"\": %r" % root)
        m.logout()


def test_create_delete_rename():
    with server() as srv:
        m = login(srv)
        ok(m.create("Work"), "CREATE")
        typ, dat = m.create("Work")
        check(typ == "NO" and code_of(dat[-1], "ALREADYEXISTS") is not None, "second CREATE: %s %r" % (typ, dat))
        append(m, MSG_PLAIN, mailbox="Work")
        ok(m.rename("Work", "Job"), "RENAME")
        check(m.select("Work")[0] == "NO", "SELECT of the old name")
        check(count(m, "Job") == 1, "the message did not move with RENAME")
        ok(m.delete("Job"), "DELETE")
        typ, dat = m.delete("Job")
        check(typ == "NO", "DELETE of a deleted mailbox: %s %r" % (typ, dat))
        typ, dat = m.delete("INBOX")
        check(typ == "NO", "DELETE INBOX: %s %r" % (typ, dat))
        check("Job" not in list_names(m, '""', "*"), "Job still listed")
        m.logout()


def test_rename_inbox_moves_its_messages():
    with server() as srv:
        m = login(srv)
        append(m, MSG_PLAIN)
        append(m, MSG_B64)
        ok(m.rename("INBOX", "OldInbox"), "RENAME INBOX")
        check(count(m, "OldInbox") == 2, "OldInbox should have INBOX's two messages")
        check(count(m, "INBOX") == 0, "INBOX should be empty after its rename")
        check("INBOX" in list_names(m, '""', "*"), "INBOX gone after its rename")
        m.logout()


def test_rename_takes_children_along():
    with server() as srv:
        m = login(srv)
        ok(m.create("Clients"), "CREATE")
        ok(m.create("Clients/Acme"), "CREATE child")
        append(m, MSG_PLAIN, mailbox="Clients/Acme")
        ok(m.rename("Clients", "Customers"), "RENAME")
        names = list_names(m, '""', "*")
        check("Customers/Acme" in names and "Clients/Acme" not in names and "Clients" not in names,
              "after RENAME of a parent: %r" % names)
        check(count(m, "Customers/Acme") == 1, "the child's message")
        m.logout()


def test_subscribe_unsubscribe_lsub():
    with server() as srv:
        m = login(srv)
        ok(m.create("Lists"), "CREATE")
        ok(m.subscribe("Lists"), "SUBSCRIBE")
        check("Lists" in list_names(m, '""', "*", cmd="LSUB"), "LSUB after SUBSCRIBE")
        ok(m.unsubscribe("Lists"), "UNSUBSCRIBE")
        check("Lists" not in list_names(m, '""', "*", cmd="LSUB"), "LSUB after UNSUBSCRIBE")
        m.logout()


def test_status_counts():
    with server() as srv:
        m = login(srv)
        uids = populate(m)
        v = append(m, MSG_PLAIN, mailbox="Drafts")[0]
        dat = ok(m.status("INBOX", "(MESSAGES RECENT UIDNEXT UIDVALIDITY UNSEEN)"), "STATUS")
        toks = pbtest.imap_parse(dat[0])
        got = {k.upper(): int(x) for k, x in zip(toks[1][0::2], toks[1][1::2])}
        check(got["MESSAGES"] == 4 and got["UNSEEN"] == 3 and "RECENT" in got, "STATUS %r" % got)
        check(got["UIDNEXT"] > max(uids), "UIDNEXT %d after uid %d" % (got["UIDNEXT"], max(uids)))
        check(count(m, "Drafts") == 1 and v > 0, "Drafts")
        check(m.status("Nowhere", "(MESSAGES)")[0] == "NO", "STATUS of no mailbox")
        m.logout()


def test_append_flags_date_and_appenduid():
    with server() as srv:
        m = login(srv)
        v1, u1 = append(m, MSG_PLAIN, r"(\Flagged $Work)", "05-Jan-2023 10:20:30 +0100")
        v2, u2 = append(m, MSG_B64)
        check(v1 == v2 and u2 > u1, "APPENDUIDs %r %r" % ((v1, u1), (v2, u2)))
        ok(m.select("INBOX"), "SELECT")
        check(m.response("UIDVALIDITY")[1][-1] == str(v1).encode(), "UIDVALIDITY is not APPENDUID's")
        f = fetch(m, "%d" % u1, "(FLAGS INTERNALDATE RFC822.SIZE BODY.PEEK[])", uid=True)[1]
        check(flags_of(f["FLAGS"]) == {"\\Flagged", "$Work"}, "FLAGS %r" % f["FLAGS"])
        check(internal_date(f["INTERNALDATE"]) == internal_date(b"05-Jan-2023 10:20:30 +0100"),
              "INTERNALDATE %r" % f["INTERNALDATE"])
        check(f["RFC822.SIZE"] == str(len(MSG_PLAIN)) and f["BODY[]"] == MSG_PLAIN, "the appended message differs")
        typ, dat = m.append("NoSuchBox", None, None, MSG_PLAIN)
        check(typ == "NO" and code_of(dat[-1], "TRYCREATE") is not None, "APPEND to no mailbox: %s %r" % (typ, dat))
        m.logout()


def test_select_and_examine_responses():
    with server() as srv, raw_login(srv) as c:
        c.ok("APPEND INBOX (\\Seen) {%d+}\r\n" % len(MSG_PLAIN) + MSG_PLAIN.decode())
        r = c.ok("SELECT INBOX")
        text = b"\n".join(r.untagged)
        check(re.search(rb"^FLAGS \(", text, re.M) and re.search(rb"^1 EXISTS$", text, re.M)
              and re.search(rb"^\d+ RECENT$", text, re.M), "SELECT untagged %r" % r.untagged)
        for code in ("UIDVALIDITY", "UIDNEXT", "PERMANENTFLAGS"):
            check(re.search(rb"^OK \[" + code.encode(), text, re.M), "no %s in %r" % (code, r.untagged))
        check(b"\\*" in code_of(text, "PERMANENTFLAGS"), "PERMANENTFLAGS without \\*")
        check(r.tagged.startswith(b"OK [READ-WRITE]"), "SELECT: %r" % r.tagged)
        r = c.ok("APPEND INBOX {%d+}\r\n" % len(MSG_B64) + MSG_B64.decode())
        check(b"2 EXISTS" in r.untagged, "APPEND to the selected mailbox without EXISTS: %r" % r)
        r = c.ok("EXAMINE INBOX")
        check(r.tagged.startswith(b"OK [READ-ONLY]"), "EXAMINE: %r" % r.tagged)
        r = c.cmd("STORE 1 +FLAGS (\\Deleted)")
        check(r.status in ("NO", "OK"), "STORE in a read-only mailbox: %r" % r)
        r = c.ok("FETCH 1 FLAGS")
        check(b"\\Deleted" not in r.untagged[0], "STORE changed a read-only mailbox: %r" % r)
        c.ok("CLOSE")
        r = c.cmd("FETCH 1 FLAGS")
        check(r.status == "BAD", "FETCH after CLOSE: %r" % r)


# ---------------------------------------------------------------- FETCH

def test_fetch_envelope_body_and_sizes():
    with server() as srv:
        m = login(srv)
        uids = populate(m)
        ok(m.select("INBOX"), "SELECT")
        f = fetch(m, "1", "(UID FLAGS INTERNALDATE RFC822.SIZE ENVELOPE BODY BODYSTRUCTURE)")[1]
        check(f["UID"] == str(uids[0]), "UID %r" % f["UID"])
        check(flags_of(f["FLAGS"]) == {"\\Seen"}, "FLAGS %r" % f["FLAGS"])
        check(internal_date(f["INTERNALDATE"]) == internal_date(b"02-Jan-2023 12:00:00 +0000"), "INTERNALDATE")
        check(f["RFC822.SIZE"] == str(len(MSG_PLAIN)), "RFC822.SIZE %r" % f["RFC822.SIZE"])
        match(f["ENVELOPE"], PLAIN_ENVELOPE, "ENVELOPE")
        match(f["BODY"], text_part("PLAIN", "us-ascii", PLAIN_BODY, ext=False), "BODY")
        match(f["BODYSTRUCTURE"], text_part("PLAIN", "us-ascii", PLAIN_BODY), "BODYSTRUCTURE")
        env = fetch(m, "4", "ENVELOPE")[4]["ENVELOPE"]
        check(env[1] == b"=?utf-8?q?Gr=C3=BC=C3=9Fe_aus_Berlin?=", "ENVELOPE subject must stay encoded: %r" % env[1])
        match(env[7], [[None, None, b"hidden", b"example.test"]], "ENVELOPE bcc")
        check(env[8] == b"<plain.1@example.org>", "ENVELOPE in-reply-to %r" % env[8])
        f = fetch(m, "2", "(BODY BODYSTRUCTURE)")[2]
        match(f["BODY"], multi_structure(ext=False), "BODY of the multipart")
        match(f["BODYSTRUCTURE"], multi_structure(), "BODYSTRUCTURE of the multipart")
        m.logout()


def test_fetch_rfc822_items_and_sections():
    with server() as srv:
        m = login(srv)
        populate(m)
        ok(m.select("INBOX"), "SELECT")
        f = fetch(m, "1", "(RFC822.HEADER RFC822.TEXT BODY.PEEK[HEADER.FIELDS (SUBJECT)] BODY.PEEK[TEXT])")[1]
        check(f["RFC822.HEADER"] == PLAIN_HEADER, "RFC822.HEADER %r" % f["RFC822.HEADER"])
        check(f["RFC822.TEXT"] == PLAIN_BODY, "RFC822.TEXT %r" % f["RFC822.TEXT"])
        check(f["BODY[HEADER.FIELDS (SUBJECT)]"] == b"Subject: Quarterly report\r\n\r\n",
              "HEADER.FIELDS %r" % f)
        check(f["BODY[TEXT]"] == PLAIN_BODY, "BODY[TEXT]")
        f = fetch(m, "1", "(RFC822 BODY.PEEK[HEADER.FIELDS.NOT (SUBJECT DATE FROM TO CC MESSAGE-ID)])")[1]
        check(f["RFC822"] == MSG_PLAIN, "RFC822")
        check(f["BODY[HEADER.FIELDS.NOT (SUBJECT DATE FROM TO CC MESSAGE-ID)]"] ==
              crlf(b"MIME-Version: 1.0\nContent-Type: text/plain; charset=us-ascii\n\n"), "HEADER.FIELDS.NOT %r" % f)
        f = fetch(m, "2", "(BODY.PEEK[1.2] BODY.PEEK[1.1] BODY.PEEK[1.MIME] BODY.PEEK[2] BODY.PEEK[2.MIME])")[2]
        check(f["BODY[1.2]"] == MULTI_HTML, "BODY[1.2] %r" % f["BODY[1.2]"])
        check(f["BODY[1.1]"] == MULTI_TEXT, "BODY[1.1] %r" % f["BODY[1.1]"])
        check(f["BODY[1.MIME]"] == MULTI_PART1_MIME, "BODY[1.MIME] %r" % f["BODY[1.MIME]"])
        check(f["BODY[2]"] == IMAGE_B64, "BODY[2]")
        check(f["BODY[2.MIME]"] == MULTI_PART2_MIME, "BODY[2.MIME] %r" % f["BODY[2.MIME]"])
        f = fetch(m, "1", "(BODY.PEEK[]<0.10> BODY.PEEK[TEXT]<6.100>)")[1]
        check(f.get("BODY[]<0>") == MSG_PLAIN[:10], "BODY[]<0.10>: %r" % f)
        check(f.get("BODY[TEXT]<6>") == PLAIN_BODY[6:106], "BODY[TEXT]<6.100>: %r" % f)
        m.logout()


INNER_HEADER = crlf(b"From: Eve <eve@example.net>\nSubject: Inner\nMessage-ID: <inner@example.net>\n\n")
INNER_BODY = crlf(b"The forwarded text.\n")
MSG_FORWARD = crlf(
    b"From: Bob <bob@example.test>\nSubject: Fwd: Inner\nMIME-Version: 1.0\n"
    b'Content-Type: multipart/mixed; boundary="fw"\n\n--fw\nContent-Type: text/plain\n\nSee below.\n\n'
    b"--fw\nContent-Type: message/rfc822\n\n") + INNER_HEADER + INNER_BODY + crlf(b"\n--fw--\n")


def test_fetch_inside_a_message_rfc822_part():
    with server() as srv:
        m = login(srv)
        append(m, MSG_FORWARD)
        ok(m.select("INBOX"), "SELECT")
        f = fetch(m, "1", "(BODYSTRUCTURE BODY.PEEK[2.HEADER] BODY.PEEK[2.TEXT] BODY.PEEK[2.1] BODY.PEEK[2])")[1]
        inner = f["BODYSTRUCTURE"][1]
        match(inner[:7], [CI("MESSAGE"), CI("RFC822"), None, None, None, CI("7BIT"),
                          len(INNER_HEADER + INNER_BODY)], "message/rfc822 part")
        match(inner[7][1], b"Inner", "the encapsulated ENVELOPE's subject")
        # No Content-Type: text/plain with RFC 2045's default charset, which
        # a server may spell out or leave out.
        want = text_part("PLAIN", "us-ascii", INNER_BODY)
        want[2] = OneOf(want[2], None)
        match(inner[8], want, "the encapsulated BODYSTRUCTURE")
        match(inner[9], lines(INNER_HEADER + INNER_BODY), "the message/rfc822 line count")
        check(f["BODY[2.HEADER]"] == INNER_HEADER, "BODY[2.HEADER] %r" % f["BODY[2.HEADER]"])
        check(f["BODY[2.TEXT]"] == INNER_BODY, "BODY[2.TEXT] %r" % f["BODY[2.TEXT]"])
        check(f["BODY[2.1]"] == INNER_BODY, "BODY[2.1] %r" % f["BODY[2.1]"])
        check(f["BODY[2]"] == INNER_HEADER + INNER_BODY, "BODY[2] %r" % f["BODY[2]"])
        m.logout()


def test_body_sets_seen_but_peek_does_not():
    with server() as srv:
        m = login(srv)
        populate(m)
        ok(m.select("INBOX"), "SELECT")
        fetch(m, "2", "(BODY.PEEK[TEXT] BODY.PEEK[HEADER])")
        check("\\Seen" not in fetch(m, "2", "FLAGS")[2]["FLAGS"], "BODY.PEEK set \\Seen")
        fetch(m, "2", "BODY[TEXT]")
        check("\\Seen" in fetch(m, "2", "FLAGS")[2]["FLAGS"], "BODY[] did not set \\Seen")
        fetch(m, "3", "RFC822.HEADER")
        check("\\Seen" not in fetch(m, "3", "FLAGS")[3]["FLAGS"], "RFC822.HEADER set \\Seen")
        fetch(m, "3", "RFC822")
        check("\\Seen" in fetch(m, "3", "FLAGS")[3]["FLAGS"], "RFC822 did not set \\Seen")
        ok(m.select("INBOX", readonly=True), "EXAMINE")
        fetch(m, "4", "BODY[TEXT]")
        check("\\Seen" not in fetch(m, "4", "FLAGS")[4]["FLAGS"], "BODY[] set \\Seen in a read-only mailbox")
        m.logout()


def test_uid_fetch_reports_uid():
    with server() as srv:
        m = login(srv)
        uids = populate(m)
        ok(m.select("INBOX"), "SELECT")
        got = fetch(m, "%d:*" % uids[1], "FLAGS", uid=True)
        check(sorted(got) == [2, 3, 4] and [got[i]["UID"] for i in (2, 3, 4)] == [str(u) for u in uids[1:]],
              "UID FETCH: %r" % got)
        check(fetch(m, "%d" % (uids[-1] + 100), "FLAGS", uid=True) == {}, "UID FETCH of a missing uid")
        m.logout()


def test_many_messages_and_a_big_one_fetched_whole():
    msgs = [crlf(b"Subject: number %d\n\n" % i + b"line\n" * (i % 50)) for i in range(500)]
    big = crlf(b"Subject: big\n\n" + b"".join(b"%07d " % i + b"b" * 92 + b"\n" for i in range(60000)))
    with server() as srv, raw_login(srv) as c:
        c.send(b"".join(b"p%d APPEND INBOX {%d+}\r\n" % (i, len(m)) + m + b"\r\n" for i, m in enumerate(msgs)))
        _, done = c.finish_many(["p%d" % i for i in range(len(msgs))], timeout=60)
        uids = [int(code_of(done["p%d" % i], "APPENDUID").split()[1]) for i in range(len(msgs))]
        check(uids == sorted(set(uids)), "APPENDUIDs not ascending and distinct")
        c.ok(b"APPEND INBOX {%d+}\r\n" % len(big) + big, timeout=60)
        c.ok("SELECT INBOX")
        r = c.ok("UID FETCH 1:* (FLAGS RFC822.SIZE)", timeout=60)
        sizes = [int(fetch_attrs(f)["RFC822.SIZE"]) for f in r.named("FETCH")]
        check(sizes == [len(m) for m in msgs] + [len(big)], "RFC822.SIZE of the 501 messages")
        r = c.ok("FETCH 501 BODY.PEEK[]", timeout=60)
        check(fetch_attrs(r.named("FETCH")[0])["BODY[]"] == big, "the 6 MB message came back different")
        want = b" ".join(b"%d" % (i + 1) for i in range(500) if b"number 49" in b"number %d" % i)
        check(c.ok("SEARCH SUBJECT \"number 49\"").untagged == [b"SEARCH " + want], "SEARCH among 501")


# ---------------------------------------------------------------- STORE, SEARCH

def test_store_flags_and_keywords():
    with server() as srv:
        m = login(srv)
        populate(m)
        ok(m.select("INBOX"), "SELECT")
        dat = ok(m.store("1", "+FLAGS", r"(\Flagged)"), "STORE +FLAGS")
        got = {int(pbtest.imap_parse(r)[0]): fetch_attrs(pbtest.imap_parse(r)) for r in responses(dat)}
        check(flags_of(got[1]["FLAGS"]) == {"\\Seen", "\\Flagged"}, "+FLAGS answer %r" % dat)
        ok(m.store("1", "-FLAGS", r"(\Seen)"), "STORE -FLAGS")
        ok(m.store("1", "FLAGS", r"(\Answered $Label1)"), "STORE FLAGS")
        dat = ok(m.store("1", "+FLAGS.SILENT", r"(\Draft)"), "STORE +FLAGS.SILENT")
        check(not [r for r in responses(dat) if r.startswith(b"1 ")], ".SILENT answered FETCH: %r" % dat)
        check(flags_of(fetch(m, "1", "FLAGS")[1]["FLAGS"]) == {"\\Answered", "$Label1", "\\Draft"}, "flags after STORE")
        ok(m.uid("STORE", "1:*", "-FLAGS", r"(\Answered)"), "UID STORE")
        ok(m.select("INBOX"), "SELECT again")
        perm = m.response("PERMANENTFLAGS")[1][-1]
        check(b"$Label1" in perm and b"\\*" in perm, "PERMANENTFLAGS %r" % perm)
        check(b"$Label1" in m.response("FLAGS")[1][-1], "FLAGS without the new keyword")
        check(search(m, "KEYWORD", "$Label1") == [1], "SEARCH KEYWORD $Label1")
        typ, dat = status_of(m.store, "1", "+FLAGS", r"(\Recent)")
        check(typ != "OK", "STORE \\Recent accepted")
        m.logout()


SEARCHES = [
    (("ALL",), [1, 2, 3, 4]),
    (("SEEN",), [1]), (("UNSEEN",), [2, 3, 4]), (("FLAGGED",), [3]), (("UNFLAGGED",), [1, 2, 4]),
    (("ANSWERED",), [4]), (("UNANSWERED",), [1, 2, 3]), (("DELETED",), []), (("UNDELETED",), [1, 2, 3, 4]),
    (("DRAFT",), []), (("UNDRAFT",), [1, 2, 3, 4]), (("KEYWORD", "$Work"), [4]), (("UNKEYWORD", "$Work"), [1, 2, 3]),
    (("FROM", "alice"), [1, 3]), (("FROM", "ALICE@EXAMPLE.ORG"), [1, 3]), (("TO", "bob@example.test"), [1, 2, 3, 4]),
    (("CC", "carol"), [1]), (("BCC", "hidden"), [4]), (("SUBJECT", "REPORT"), [1]),
    (("HEADER", "Message-ID", "<multi.2@example.org>"), [2]), (("HEADER", "In-Reply-To", ""), [4]),
    (("BODY", "pineapple"), [3]), (("BODY", "Quarterly"), []), (("TEXT", "quarterly"), [1]),
    (("TEXT", "picture"), [2]), (("BODY", "numbers are"), [1]),
    (("OR", "FLAGGED", "SEEN"), [1, 3]), (("NOT", "SEEN"), [2, 3, 4]), (("NOT", "OR", "SEEN", "FLAGGED"), [2, 4]),
    (("SEEN", "FROM", "alice"), [1]), (("(OR", "ANSWERED", "SEEN)", "UNFLAGGED"), [1, 4]),
    (("BEFORE", "1-Mar-2023"), [1]), (("ON", "15-Mar-2023"), [2]), (("SINCE", "20-Jun-2023"), [3, 4]),
    (("SENTBEFORE", "1-Mar-2023"), [1]), (("SENTON", "20-Jun-2023"), [3]), (("SENTSINCE", "15-Mar-2023"), [2, 3, 4]),
    (("LARGER", "1000"), [2]), (("SMALLER", "1000"), [1, 3, 4]),
    (("2:3",), [2, 3]), (("2:*", "NOT", "FLAGGED"), [2, 4]),
]


def test_search_keys():
    with server() as srv:
        m = login(srv)
        uids = populate(m)
        ok(m.select("INBOX"), "SELECT")
        for criteria, want in SEARCHES:
            args = tuple('""' if a == "" else ('"%s"' % a if " " in a else a) for a in criteria)
            check(search(m, *args) == want, "SEARCH %s: %r, want %r" % (" ".join(args), search(m, *args), want))
        check(search(m, "UID", "%d:%d" % (uids[1], uids[2])) == [2, 3], "SEARCH UID")
        check(search(m, "FLAGGED", uid=True) == [uids[2]], "UID SEARCH FLAGGED")
        check(search(m, "ALL", uid=True) == uids, "UID SEARCH ALL")
        typ, dat = status_of(m.search, None, "FROBNICATE")
        check(typ == "BAD", "SEARCH with an unknown key: %s %r" % (typ, dat))
        m.logout()


def test_search_charset_utf8_and_encoded_text():
    with server() as srv:
        m = login(srv)
        populate(m)
        ok(m.select("INBOX"), "SELECT")
        check(search(m, "BODY", "PINEAPPLE") == [3], "BODY in a base64 text part (case-insensitive)")
        for key in ("SUBJECT", "BODY", "TEXT"):
            m.literal = "grüße".encode()
            got = search(m, key, charset="UTF-8")
            check(got == [4], "SEARCH CHARSET UTF-8 %s grüße: %r" % (key, got))
        m.literal = "Jürgen".encode()
        check(search(m, "FROM", charset="UTF-8") == [4], "FROM with an encoded word")
        check(search(m, "SUBJECT", "report", charset="US-ASCII") == [1], "CHARSET US-ASCII")
        typ, dat = m.search("X-NO-SUCH-CHARSET", "SUBJECT", "report")
        check(typ == "NO" and code_of(dat[-1], "BADCHARSET") is not None, "unknown charset: %s %r" % (typ, dat))
        m.logout()


# ---------------------------------------------------------------- COPY, MOVE, EXPUNGE

def test_copy_and_uid_copy_with_copyuid():
    with server() as srv:
        m = login(srv)
        uids = populate(m)
        ok(m.select("INBOX"), "SELECT")
        dat = ok(m.copy("1:2", "Archive"), "COPY")
        cu = code_of(dat[-1], "COPYUID")
        check(cu is not None, "COPY without COPYUID: %r" % dat)
        v, src, dst = cu.split()
        check(src.decode() in ("%d:%d" % (uids[0], uids[1]), "%d,%d" % (uids[0], uids[1])), "COPYUID source %r" % cu)
        m.response("COPYUID")   # forget COPY's (imaplib keeps response codes)
        ok(m.uid("COPY", str(uids[3]), "Archive"), "UID COPY")
        cu = m.response("COPYUID")[1][-1]
        check(cu is not None and cu.split()[1] == str(uids[3]).encode(), "UID COPY's COPYUID: %r" % cu)
        check(count(m, "Archive") == 3 and count(m, "INBOX") == 4, "counts after COPY")
        typ, dat = m.copy("1", "Nowhere")
        check(typ == "NO" and code_of(dat[-1], "TRYCREATE") is not None, "COPY to no mailbox: %s %r" % (typ, dat))
        ok(m.select("Archive"), "SELECT Archive")
        check(m.response("UIDVALIDITY")[1][-1] == v, "COPYUID's uidvalidity %r is not Archive's" % v)
        f = fetch(m, "1:*", "(UID BODY.PEEK[] FLAGS)")
        check(dst.decode() in ("%s:%s" % (f[1]["UID"], f[2]["UID"]), "%s,%s" % (f[1]["UID"], f[2]["UID"])),
              "COPYUID target uids %r" % cu)
        check([f[i]["BODY[]"] for i in (1, 2, 3)] == [MSG_PLAIN, MSG_MULTI, MSG_UTF8], "copied bytes differ")
        check(flags_of(f[3]["FLAGS"]) == {"\\Answered", "$Work"}, "COPY lost flags: %r" % f[3]["FLAGS"])
        m.logout()


def test_move_and_uid_move():
    with server() as srv, raw_login(srv) as c:
        for msg in (MSG_PLAIN, MSG_B64, MSG_UTF8):
            c.ok(b"APPEND INBOX {%d+}\r\n" % len(msg) + msg)
        c.ok("SELECT INBOX")
        r = c.ok("MOVE 1 Trash")
        text = b"\n".join(r.untagged) + b"\n" + r.tagged
        check(code_of(text, "COPYUID") is not None, "MOVE without COPYUID: %r" % r)
        check(b"1 EXPUNGE" in r.untagged, "MOVE without EXPUNGE: %r" % r)
        r = c.ok("FETCH 2 (UID)")
        uid = int(fetch_attrs(r.named("FETCH")[0])["UID"])
        r = c.ok("UID MOVE %d Trash" % uid)
        check(b"2 EXPUNGE" in r.untagged, "UID MOVE: %r" % r)
        check(code_of(b"\n".join(r.untagged) + b"\n" + r.tagged, "COPYUID") is not None, "UID MOVE without COPYUID")
        r = c.ok("STATUS Trash (MESSAGES)")
        check(b"MESSAGES 2" in r.untagged[0], "Trash after the moves: %r" % r)
        r = c.ok("SEARCH ALL")
        check(r.untagged == [b"SEARCH 1"], "INBOX after the moves: %r" % r)


def test_expunge_close_unselect_check():
    with server() as srv:
        m = login(srv)
        populate(m)
        ok(m.select("INBOX"), "SELECT")
        ok(m.check(), "CHECK")
        ok(m.store("2", "+FLAGS", r"(\Deleted)"), "STORE")
        dat = ok(m.expunge(), "EXPUNGE")
        check(dat == [b"2"], "EXPUNGE answer %r" % dat)
        ok(m.store("1", "+FLAGS", r"(\Deleted)"), "STORE")
        ok(m.unselect(), "UNSELECT")
        check(count(m, "INBOX") == 3, "UNSELECT expunged")
        ok(m.select("INBOX", readonly=True), "EXAMINE")
        ok(m.close(), "CLOSE after EXAMINE")
        check(count(m, "INBOX") == 3, "CLOSE of a read-only mailbox expunged")
        ok(m.select("INBOX"), "SELECT")
        ok(m.close(), "CLOSE")
        check(count(m, "INBOX") == 2, "CLOSE did not expunge")
        m.logout()


def test_expunge_responses_keep_numbers_consistent():
    with server() as srv, raw_login(srv) as c:
        for msg in (MSG_PLAIN, MSG_MULTI, MSG_B64, MSG_UTF8):
            c.ok(b"APPEND INBOX {%d+}\r\n" % len(msg) + msg)
        c.ok("SELECT INBOX")
        model = [int(fetch_attrs(f)["UID"]) for f in c.ok("FETCH 1:4 UID").named("FETCH")]
        c.ok("STORE 1,2,4 +FLAGS.SILENT (\\Deleted)")
        r = c.ok("EXPUNGE")
        for u in r.untagged:
            e = re.fullmatch(rb"(\d+) EXPUNGE", u)
            if not e:
                continue   # EXISTS, RECENT may come too
            n = int(e.group(1))
            check(1 <= n <= len(model), "EXPUNGE %d with %d messages: %r" % (n, len(model), r))
            del model[n - 1]
        check(model == [int(fetch_attrs(f)["UID"]) for f in c.ok("FETCH 1:* UID").named("FETCH")],
              "the EXPUNGE responses %r leave the client with %r" % (r.untagged, model))
        check(len(model) == 1, "left: %r" % model)


def test_uid_expunge_only_named_uids():
    with server() as srv:
        m = login(srv)
        uids = populate(m)
        ok(m.select("INBOX"), "SELECT")
        ok(m.store("1,3", "+FLAGS", r"(\Deleted)"), "STORE")
        ok(m.uid("EXPUNGE", str(uids[2])), "UID EXPUNGE")
        told = m.response("EXPUNGE")[1]
        check(told == [b"3"], "UID EXPUNGE told %r, want 3" % told)
        check(search(m, "ALL", uid=True) == [uids[0], uids[1], uids[3]], "UIDs after UID EXPUNGE")
        check(search(m, "DELETED") == [1], "message 1 kept its \\Deleted")
        m.logout()


# ---------------------------------------------------------------- other sessions, IDLE

def send_smtp(srv, subject):
    """Deliver a message through the smtp listener; the monotonic time
    of the server's 250 to it."""
    with smtplib.SMTP("127.0.0.1", srv.port("smtp"), timeout=20) as s:
        s.sendmail("sender@example.org", [USER],
                   "From: sender@example.org\r\nTo: %s\r\nSubject: %s\r\n\r\nbody\r\n" % (USER, subject))
        return time.monotonic()


def test_idle_sees_smtp_delivery_within_one_second():
    with server() as srv, raw_login(srv) as c:
        c.ok("SELECT INBOX")
        c.send(b"i1 IDLE\r\n")
        line = c.c.readline_bytes()
        check(line.startswith(b"+ "), "IDLE continuation %r" % line)
        t0 = send_smtp(srv, "while idling")
        resp = c.read_response(timeout=10)
        elapsed = time.monotonic() - t0
        check(resp == b"* 1 EXISTS\r\n", "first response in IDLE: %r" % resp)
        check(elapsed < 1.0, "EXISTS came %.2fs after the SMTP 250" % elapsed)
        c.send(b"DONE\r\n")
        r = c.finish("i1")
        check(r.ok, "IDLE end: %r" % r)
        r = c.ok("FETCH 1 (BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
        check(b"Subject: while idling" in r.untagged[0], "the delivered message: %r" % r)


def test_idle_sees_other_sessions_flags_and_expunge():
    with server() as srv, raw_login(srv) as a, raw_login(srv) as b:
        for msg in (MSG_PLAIN, MSG_B64):
            a.ok(b"APPEND INBOX {%d+}\r\n" % len(msg) + msg)
        a.ok("SELECT INBOX")
        b.ok("SELECT INBOX")
        b.send(b"i1 IDLE\r\n")
        check(b.c.readline_bytes().startswith(b"+ "), "no IDLE continuation")
        a.ok("STORE 1 +FLAGS (\\Flagged)")
        r = b.read_response(timeout=5)
        check(re.match(rb"\* 1 FETCH \(.*FLAGS \([^)]*\\Flagged", r), "flag change in IDLE: %r" % r)
        a.ok("STORE 2 +FLAGS.SILENT (\\Deleted)")
        r = b.read_response(timeout=5)
        check(re.match(rb"\* 2 FETCH \(.*\\Deleted", r), "\\Deleted in IDLE: %r" % r)
        a.ok("EXPUNGE")
        r = b.read_response(timeout=5)
        check(r == b"* 2 EXPUNGE\r\n", "expunge in IDLE: %r" % r)
        b.send(b"DONE\r\n")
        check(b.finish("i1").ok, "IDLE end")


def test_recent_goes_to_the_first_session_only():
    with server() as srv:
        send_smtp(srv, "recent")
        with raw_login(srv) as a, raw_login(srv) as b:
            r = a.ok("SELECT INBOX")
            check(b"1 RECENT" in r.untagged, "first SELECT: %r" % r)
            check("\\Recent" in fetch_attrs(a.ok("FETCH 1 FLAGS").named("FETCH")[0])["FLAGS"], "no \\Recent")
            check(a.ok("SEARCH RECENT").untagged == [b"SEARCH 1"], "SEARCH RECENT")
            check(a.ok("SEARCH NEW").untagged == [b"SEARCH 1"], "SEARCH NEW")
            r = b.ok("SELECT INBOX")
            check(b"0 RECENT" in r.untagged, "second SELECT: %r" % r)
            check(b.ok("SEARCH OLD").untagged == [b"SEARCH 1"], "SEARCH OLD in the second session")


def test_strings_that_need_quoting_or_literals():
    subject = b'He said "hi" \\o/ \xc3\xa4'
    msg = crlf(b"From: =?utf-8?q?Z=C3=BC?= <z@example.org>\nSubject: " + subject + b"\n\nbody\n")
    with server() as srv:
        m = login(srv)
        append(m, msg)
        ok(m.select("INBOX"), "SELECT")
        env = fetch(m, "1", "ENVELOPE")[1]["ENVELOPE"]
        check(env[1] == subject, "ENVELOPE subject %r, want %r" % (env[1], subject))
        f = fetch(m, "1", "BODY.PEEK[HEADER.FIELDS (SUBJECT)]")[1]
        check(f["BODY[HEADER.FIELDS (SUBJECT)]"] == b"Subject: " + subject + b"\r\n\r\n", "header %r" % f)
        m.logout()


def test_two_sessions_see_each_others_flags():
    with server() as srv, raw_login(srv) as a, raw_login(srv) as b:
        for msg in (MSG_PLAIN, MSG_B64):
            a.ok(b"APPEND INBOX {%d+}\r\n" % len(msg) + msg)
        a.ok("SELECT INBOX")
        b.ok("SELECT INBOX")
        a.ok("STORE 2 +FLAGS (\\Flagged)")

        def b_told():
            r = b.ok("NOOP")
            return [u for u in r.named("FETCH") if u[0] == "2"]
        told = wait_for(b_told, 5, "B to hear of A's flag change at NOOP")
        check("\\Flagged" in fetch_attrs(told[0])["FLAGS"], "flags told to B: %r" % told)
        b.ok("STORE 1 +FLAGS (\\Answered)")
        told = wait_for(lambda: [u for u in a.ok("NOOP").named("FETCH") if u[0] == "1"], 5,
                        "A to hear of B's flag change")
        check("\\Answered" in fetch_attrs(told[0])["FLAGS"], "flags told to A: %r" % told)


def test_expunge_told_at_noop_never_during_fetch():
    with server() as srv, raw_login(srv) as a, raw_login(srv) as b:
        for msg in (MSG_PLAIN, MSG_B64, MSG_UTF8):
            a.ok(b"APPEND INBOX {%d+}\r\n" % len(msg) + msg)
        a.ok("SELECT INBOX")
        b.ok("SELECT INBOX")
        uid3 = fetch_attrs(b.ok("FETCH 3 UID").named("FETCH")[0])["UID"]
        a.ok("STORE 2 +FLAGS (\\Deleted)")
        a.ok("EXPUNGE")
        # B keeps its numbers until a command that may tell it.
        for cmd in ("FETCH 1:3 (FLAGS)", "STORE 1 +FLAGS (\\Seen)", "SEARCH ALL"):
            r = b.cmd(cmd)
            check(not [u for u in r.untagged if re.match(rb"\d+ EXPUNGE", u)], "EXPUNGE during %s: %r" % (cmd, r))
        r = b.ok("NOOP")
        check(b"2 EXPUNGE" in r.untagged, "B not told of the expunge at NOOP: %r" % r)
        f = b.ok("FETCH 2 UID").named("FETCH")
        check(fetch_attrs(f[0])["UID"] == uid3, "message 3 is not number 2 now: %r" % f)


# ---------------------------------------------------------------- client quirks

def test_quirk_done_and_next_command_in_one_packet():
    with server() as srv, raw_login(srv) as c:
        c.ok("SELECT INBOX")
        c.send(b"i1 IDLE\r\n")
        check(c.c.readline_bytes().startswith(b"+ "), "no IDLE continuation")
        c.send(b"DONE\r\nA2 NOOP\r\n")
        check(c.finish("i1").ok, "IDLE not ended")
        check(c.finish("A2").ok, "the command after DONE was not answered")


def test_quirk_continuation_is_plus_space():
    with server() as srv, raw_login(srv) as c:
        c.send(b"a1 APPEND INBOX {%d}\r\n" % len(MSG_PLAIN))
        line = c.c.readline_bytes()
        check(line.startswith(b"+ "), "continuation %r (must be '+' and a space)" % line)
        c.send(MSG_PLAIN + b"\r\n")
        check(c.finish("a1").ok, "APPEND")


def test_quirk_bodystructure_of_image_attachment_then_mime_header():
    with server() as srv, raw_login(srv) as c:
        c.ok(b"APPEND INBOX {%d+}\r\n" % len(MSG_MULTI) + MSG_MULTI)
        c.ok("SELECT INBOX")
        c.send(b"a1 UID FETCH 1:* (UID RFC822.SIZE FLAGS BODYSTRUCTURE)\r\na2 UID FETCH 1 (BODY.PEEK[2.MIME])\r\n")
        untagged, done = c.finish_many(["a1", "a2"])
        check(all(t.startswith(b"OK") for t in done.values()), "FETCH: %r" % done)
        attrs = {}
        for u in untagged:
            attrs.update(fetch_attrs(pbtest.imap_parse(u)))
        match(attrs.get("BODYSTRUCTURE"), multi_structure(), "BODYSTRUCTURE")
        check(attrs.get("BODY[2.MIME]") == MULTI_PART2_MIME, "BODY[2.MIME] after BODYSTRUCTURE: %r" % untagged)


def test_quirk_ten_sessions_of_one_account():
    with server() as srv:
        sessions = []
        try:
            for _ in range(10):
                m = login(srv)
                ok(m.select("INBOX"), "SELECT")
                sessions.append(m)
            for m in sessions:
                ok(m.noop(), "NOOP")
        finally:
            for m in sessions:
                m.logout()


def test_quirk_unselect_children_and_archive():
    with server() as srv:
        m = login(srv)
        caps = ok(m.capability(), "CAPABILITY")[-1].decode().split()
        check("UNSELECT" in caps and "CHILDREN" in caps, "capabilities %r" % caps)
        names = list_names(m, '""', "Archive")
        check("\\archive" in names.get("Archive", ()), "Archive: %r" % names)
        m.logout()


# ---------------------------------------------------------------- NAMESPACE, ID, ENABLE

def test_namespace_id_enable():
    with server() as srv, raw_login(srv) as c:
        r = c.ok("NAMESPACE")
        ns = r.named("NAMESPACE")
        check(ns and ns[0][1] == [[b"", b"/"]], "NAMESPACE %r" % r)
        r = c.ok('ID ("name" "e2e" "version" "1")')
        check(r.named("ID"), "no * ID answer: %r" % r)
        r = c.ok("ENABLE X-NO-SUCH-EXTENSION")
        check(all(not u.startswith(b"ENABLED ") or u == b"ENABLED" for u in r.untagged),
              "ENABLE enabled an unknown extension: %r" % r)
    with server() as srv, Imap.open(srv) as c:
        check(c.ok("ID NIL").named("ID"), "ID before login")


# ---------------------------------------------------------------- limits

def test_overlong_line_is_bad_and_session_goes_on():
    with server({"imap_line_max": "1024"}) as srv, raw_login(srv) as c:
        c.send(b"a1 NOOP " + b"x" * 5000 + b"\r\n")
        r = c.read_response()
        check(re.match(rb"(a1|\*) BAD", r), "overlong line: %r" % r)
        c.ok("NOOP")
        c.ok("SELECT INBOX")


def test_literal_over_limit_too_big():
    big = b"Subject: big\r\n\r\n" + b"z" * (100 * 1024)
    with server({"imap_literal_max": "64K"}) as srv, raw_login(srv) as c:
        c.send(b"a1 APPEND INBOX {%d}\r\n" % len(big))
        r = c.read_response()
        check(r.startswith(b"a1 NO [TOOBIG]"), "sync literal over the limit: %r (no continuation wanted)" % r)
        c.ok("NOOP")
        c.send(b"a2 APPEND INBOX {%d+}\r\n" % len(big) + big + b"\r\n")
        r = c.finish("a2")
        check(r.tagged.startswith(b"NO [TOOBIG]"), "LITERAL+ over the limit: %r" % r)
        c.ok("NOOP")
        small = big[:60 * 1024]
        r = c.ok(b"APPEND INBOX {%d+}\r\n" % len(small) + small)
        check(code_of(r.tagged, "APPENDUID") is not None, "APPEND under the limit: %r" % r)


def test_malformed_commands_are_bad_and_session_goes_on():
    with server({"max_bad_commands": "50"}) as srv, raw_login(srv) as c:
        c.ok("SELECT INBOX")
        for cmd in ("FETCH", "FETCH 1 (FLAGS", "SELECT", 'LIST "" "unterminated', "STORE 1 +FLAGS",
                    "UID FROB 1", "FETCH 0 FLAGS", "SEARCH (SEEN", "COPY 1:x Trash"):
            r = c.cmd(cmd)
            check(r.status == "BAD", "%s: %r" % (cmd, r))
        c.send(b"\r\n")
        r = c.read_response()
        check(r.startswith(b"* BAD"), "an empty line: %r" % r)
        c.ok("NOOP")


def test_too_many_bad_commands_bye():
    with server({"max_bad_commands": "3"}) as srv, raw_login(srv) as c:
        c.ok("NOOP")
        c.send(b"".join(b"b%d FROBNICATE\r\n" % i for i in range(1, 6)))
        for i in range(1, 6):
            r = c.read_response()
            if r.startswith(b"* BYE"):
                check(i > 3, "BYE after %d bad commands, the limit is 3" % (i - 1))
                c.c.expect_eof()
                return
            check(r.startswith(b"b%d BAD" % i), "bad command %d: %r" % (i, r))
        raise TestFailure("still open after 5 bad commands with max_bad_commands = 3")


def test_session_limit_per_account():
    with server({"imap_max_sessions_per_account": "10"}) as srv:
        sessions = [raw_login(srv) for _ in range(10)]
        try:
            with Imap.open(srv) as extra:
                r = extra.cmd('LOGIN "%s" "%s"' % (USER, PASSWORD))
                check(r.status == "NO" and code_of(r.tagged, "LIMIT") is not None, "11th session: %r" % r)
                gone = sessions.pop()
                gone.ok("LOGOUT")
                gone.close()
                wait_for(lambda: extra.cmd('LOGIN "%s" "%s"' % (USER, PASSWORD)).ok, 5,
                         "a login once a session has gone")
        finally:
            for s in sessions:
                s.close()


if __name__ == "__main__":
    pbtest.main(globals())
