#!/usr/bin/env python3
"""End-to-end test of the account commands: `postbote user`, `alias` and
`quota` run as the real binary against a config of their own, and beside a
running server that uses the same data directory.

Run: python3 tests/e2e/test_cli_user.py [test_name ...]
     (POSTBOTE_BIN=path/to/postbote, POSTBOTE_KEEP=1 to keep failed dirs)
"""

import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pbtest  # noqa: E402
from pbtest import Server, TestFailure  # noqa: E402

# openssl passwd -6 -salt saltsalt 'correct horse'
HASH6 = ("$6$saltsalt$hRM5XZ86KXEw9UOmjigeVqFgULtFB2sgpC9lXQDfMib3Zgw7mEiUvBJI2EplzfAqxL5"
         "Vvwp2scFtv/uamSo5z0")

EX_USAGE, EX_DATAERR, EX_NOUSER = 64, 65, 67


def check(cond, msg):
    if not cond:
        raise TestFailure(msg)


def pb(srv, *args, password=None, stdin=None):
    """Run `postbote ARGS -c CONF`; the CompletedProcess with text output.
    password is sent on standard input with --password-stdin."""
    cmd = [pbtest.BIN] + list(args) + ["-c", srv.config_path]
    data = stdin
    if password is not None:
        cmd.append("--password-stdin")
        data = password + "\n"
    r = pbtest.run(cmd, input=data.encode() if data is not None else b"", cwd=srv.dir)
    r.out = r.stdout.decode("utf-8", "replace")
    r.err = r.stderr.decode("utf-8", "replace")
    return r


def ok(r, what):
    check(r.returncode == 0, "%s: exit %d, stdout %r, stderr %r" % (what, r.returncode, r.out, r.err))
    return r


def fails(r, code, what, stderr_has=None):
    check(r.returncode == code, "%s: exit %d (want %d), stdout %r, stderr %r"
          % (what, r.returncode, code, r.out, r.err))
    if stderr_has is not None:
        check(stderr_has in r.err, "%s: stderr %r lacks %r" % (what, r.err, stderr_has))
    return r


def users(srv):
    """{address: flags} from `user list`."""
    r = ok(pb(srv, "user", "list"), "user list")
    out = {}
    for line in r.out.splitlines():
        parts = line.split("\t")
        out[parts[0]] = parts[1:]
    return out


# ------------------------------------------------------------ user

def test_user_lifecycle():
    srv = Server()      # not started: the CLI alone
    r = ok(pb(srv, "user", "add", "Alice@Example.TEST", password="correct horse"), "user add")
    check("added alice@example.test" in r.out, "user add output %r" % r.out)
    want = os.path.join(srv.data_dir, "mail", "example.test", "alice")
    check("Maildir: %s" % want in r.out, "user add does not say where the Maildir is: %r" % r.out)
    check("correct horse" not in r.out + r.err, "the password was echoed")

    fails(pb(srv, "user", "add", "alice@example.test", password="x"), EX_DATAERR,
          "duplicate user add", "already exists")
    check(users(srv) == {"alice@example.test": []}, "user list: %r" % users(srv))

    ok(pb(srv, "user", "passwd", "alice@example.test", password="battery staple"), "user passwd")
    fails(pb(srv, "user", "passwd", "nobody@example.test", password="x"), EX_NOUSER, "passwd of nobody")

    ok(pb(srv, "user", "disable", "alice@example.test"), "user disable")
    check(users(srv) == {"alice@example.test": ["disabled"]}, "after disable: %r" % users(srv))
    ok(pb(srv, "user", "enable", "alice@example.test"), "user enable")
    check(users(srv) == {"alice@example.test": []}, "after enable: %r" % users(srv))

    r = ok(pb(srv, "user", "add", "bob@example.test", "--maildir", "/srv/mail/bob", "--quota", "1G",
              password="pw"), "user add --maildir --quota")
    check("Maildir: /srv/mail/bob" in r.out, "custom Maildir not shown: %r" % r.out)
    check(sorted(users(srv)) == ["alice@example.test", "bob@example.test"], "list %r" % users(srv))

    r = ok(pb(srv, "user", "del", "alice@example.test"), "user del")
    check("left in place" in r.out, "user del output %r" % r.out)
    fails(pb(srv, "user", "del", "alice@example.test"), EX_NOUSER, "user del twice")
    check(sorted(users(srv)) == ["bob@example.test"], "after del: %r" % users(srv))


def test_user_errors():
    srv = Server()
    fails(pb(srv, "user", "add", "bob@example.org", password="pw"), EX_DATAERR,
          "user add of a non-local domain", "not a local domain")
    fails(pb(srv, "user", "add", "no-at-sign", password="pw"), EX_DATAERR, "user add without @")
    fails(pb(srv, "user", "add", "a b@example.test", password="pw"), EX_DATAERR, "user add with a space")
    fails(pb(srv, "user", "add", "carol@example.test", stdin=""), EX_DATAERR, "no terminal, no stdin")
    fails(pb(srv, "user", "add", "carol@example.test", "--password-stdin", stdin="\n"), EX_DATAERR,
          "empty password", "empty password")
    fails(pb(srv, "user"), EX_USAGE, "user without action", "usage:")
    fails(pb(srv, "user", "add"), EX_USAGE, "user add without address", "usage:")
    fails(pb(srv, "user", "frobnicate"), EX_USAGE, "unknown action", "usage:")
    fails(pb(srv, "user", "list", "extra"), EX_USAGE, "user list with an argument")
    fails(pb(srv, "user", "add", "carol@example.test", "--quota", "lots", password="pw"), EX_USAGE,
          "bad --quota")
    check(users(srv) == {}, "failed adds left accounts: %r" % users(srv))
    # A config that does not load is a config error.
    r = pbtest.run([pbtest.BIN, "user", "list", "-c", os.path.join(srv.dir, "missing.conf")])
    check(r.returncode == 78, "missing config: exit %d" % r.returncode)
    # CRLF on standard input is stripped, and options may come first.
    r = pbtest.run([pbtest.BIN, "user", "--password-stdin", "-c", srv.config_path, "add", "dave@example.test"],
                   input=b"pw\r\n")
    check(r.returncode == 0, "options before the action: exit %d %r" % (r.returncode, r.stderr))


def test_user_import():
    srv = Server()
    good = os.path.join(srv.dir, "users.txt")
    with open(good, "w") as f:
        f.write("# shadow-style and Dovecot passwd-file lines\n"
                "\n"
                "erin@example.test:%s:19000:0:99999:7:::\n" % HASH6 +
                "Frank@Example.Test:{SHA512-CRYPT}%s:1000:1000::/home/frank::\n" % HASH6)
    r = ok(pb(srv, "user", "import", good), "user import")
    check(re.search(r"imported 2 accounts", r.out), "import summary %r" % r.out)
    check(sorted(users(srv)) == ["erin@example.test", "frank@example.test"], "after import %r" % users(srv))
    # Again: the same accounts are updated, not duplicated.
    r = ok(pb(srv, "user", "import", good), "user import again")
    check("2 updated" in r.out, "second import %r" % r.out)

    bad = os.path.join(srv.dir, "bad.txt")
    with open(bad, "w") as f:
        f.write("gina@example.test:%s\n" % HASH6 +
                "hank@example.test:{PLAIN}secret\n"
                "ivan@example.org:%s\n" % HASH6 +
                "no colon here\n"
                "jane@example.test:!locked\n")
    r = fails(pb(srv, "user", "import", bad), EX_DATAERR, "import of a bad file")
    for n in (2, 3, 4, 5):
        check("bad.txt:%d:" % n in r.err, "line %d not reported: %r" % (n, r.err))
    check("bad.txt:1:" not in r.err, "a good line reported: %r" % r.err)
    check("gina@example.test" not in users(srv), "a bad file was partly imported")
    fails(pb(srv, "user", "import", os.path.join(srv.dir, "missing.txt")), EX_DATAERR, "missing file")


# ------------------------------------------------------------ alias

def aliases(srv):
    r = ok(pb(srv, "alias", "list"), "alias list")
    out = {}
    for line in r.out.splitlines():
        name, _, targets = line.partition(" -> ")
        out[name] = targets.split(", ")
    return out


def test_alias():
    srv = Server()
    ok(pb(srv, "user", "add", "alice@example.test", password="pw"), "user add")
    ok(pb(srv, "alias", "add", "Sales@example.test", "alice@example.test", "Partner@Elsewhere.Example"),
       "alias add")
    r = ok(pb(srv, "alias", "add", "sales@example.test", "alice@example.test"), "alias add again")
    check("already there" in r.out, "duplicate target %r" % r.out)
    ok(pb(srv, "alias", "add", "@example.test", "alice@example.test"), "catch-all")
    check(aliases(srv) == {"@example.test": ["alice@example.test"],
                           "sales@example.test": ["alice@example.test", "partner@elsewhere.example"]},
          "alias list %r" % aliases(srv))

    fails(pb(srv, "alias", "add", "x@example.org", "alice@example.test"), EX_DATAERR,
          "alias of a non-local domain", "not a local domain")
    fails(pb(srv, "alias", "add", "x@example.test", "not an address"), EX_DATAERR, "bad target")
    fails(pb(srv, "alias", "add", "x@example.test"), EX_USAGE, "alias add without target", "usage:")
    fails(pb(srv, "alias"), EX_USAGE, "alias without action", "usage:")

    ok(pb(srv, "alias", "del", "sales@example.test", "partner@elsewhere.example"), "alias del target")
    check(aliases(srv)["sales@example.test"] == ["alice@example.test"], "after del %r" % aliases(srv))
    fails(pb(srv, "alias", "del", "sales@example.test", "partner@elsewhere.example"), EX_NOUSER,
          "alias del of a missing target")
    ok(pb(srv, "alias", "del", "@example.test"), "alias del catch-all")
    ok(pb(srv, "alias", "del", "sales@example.test"), "alias del all")
    fails(pb(srv, "alias", "del", "sales@example.test"), EX_NOUSER, "alias del twice")
    check(aliases(srv) == {}, "aliases left %r" % aliases(srv))


# ------------------------------------------------------------ quota

def test_quota():
    srv = Server(config={"quota_bytes": "100M"})
    ok(pb(srv, "user", "add", "alice@example.test", password="pw"), "user add")
    r = ok(pb(srv, "quota", "alice@example.test"), "quota show")
    check(re.search(r"storage:\s+100M .*default", r.out), "default storage quota %r" % r.out)
    check(re.search(r"messages:\s+unlimited", r.out), "default message quota %r" % r.out)

    r = ok(pb(srv, "quota", "alice@example.test", "10M", "500"), "quota set")
    check(re.search(r"storage:\s+10M \(10485760 bytes\), account", r.out), "set storage %r" % r.out)
    check(re.search(r"messages:\s+500, account", r.out), "set messages %r" % r.out)
    r = ok(pb(srv, "quota", "alice@example.test"), "quota show again")
    check("10M" in r.out and "500" in r.out, "quota not kept %r" % r.out)

    r = ok(pb(srv, "quota", "alice@example.test", "none"), "quota reset bytes")
    check(re.search(r"storage:\s+100M .*default", r.out), "reset storage %r" % r.out)
    check(re.search(r"messages:\s+500, account", r.out), "messages changed by SIZE alone %r" % r.out)
    r = ok(pb(srv, "quota", "alice@example.test", "unlimited", "0"), "quota unlimited")
    check(re.search(r"storage:\s+unlimited, account", r.out), "unlimited %r" % r.out)
    check(re.search(r"messages:\s+unlimited, configured default", r.out), "0 = default %r" % r.out)

    fails(pb(srv, "quota", "nobody@example.test"), EX_NOUSER, "quota of nobody")
    fails(pb(srv, "quota", "nobody@example.test", "1M"), EX_NOUSER, "set quota of nobody")
    fails(pb(srv, "quota", "alice@example.test", "lots"), EX_USAGE, "bad size")
    fails(pb(srv, "quota", "alice@example.test", "1M", "many"), EX_USAGE, "bad count")
    fails(pb(srv, "quota"), EX_USAGE, "quota without address", "usage:")


# ------------------------------------------------------------ beside a server

def test_beside_running_server():
    with Server() as srv:
        ok(pb(srv, "user", "add", "carol@example.test", password="pw"), "user add beside the server")
        ok(pb(srv, "alias", "add", "info@example.test", "carol@example.test"), "alias add beside the server")
        check("carol@example.test" in users(srv), "user list beside the server")
        # The server is unharmed and still answers.
        with srv.connect("smtp") as c:
            c.expect("220 ")
        check(srv.running(), "the server died")
        ok(pb(srv, "user", "del", "carol@example.test"), "user del beside the server")
        check(srv.stop() == 0, "server exit code")
    ok(pb(srv, "user", "add", "dave@example.test", password="pw"), "user add after the server stopped")


if __name__ == "__main__":
    pbtest.main(globals())
