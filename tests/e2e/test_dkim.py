#!/usr/bin/env python3
"""End-to-end test of DKIM signing and the DNS helper commands, checked by
an independent verifier: Debian's python3-dkim (dkimpy).

`postbote dkim keygen` makes an RSA and an Ed25519 key in a temp data
directory (the config of a pbtest.Server that is never started), `postbote
dns` prints the records, and `postbote dkim sign` signs messages - among
them one with long folded header fields and a body with trailing blank
lines. dkimpy verifies every signature with dkim.verify(), its DNS lookups
answered from the TXT records `postbote dns` printed (the 255-octet strings
joined as a resolver joins them). The `dkimverify` command itself runs too:
inside a private network and mount namespace, against a dnsmasq that serves
those records, with /etc/resolv.conf pointed at it - so it does a real DNS
lookup without touching the host's DNS. That part needs root (unshare) and
dnsmasq, and is skipped with a note otherwise.

python3-dkim lives in Debian's /usr/bin/python3; when the python3 running
this test cannot import it, the test runs itself again under
/usr/bin/python3.

Run: python3 tests/e2e/test_dkim.py [test_name ...]
     (POSTBOTE_BIN=path/to/postbote, POSTBOTE_KEEP=1 to keep failed dirs)
"""

import os
import random
import re
import shutil
import stat
import subprocess
import sys
import time

try:
    import dkim
except ImportError:
    dkim = None
    if (os.path.exists("/usr/bin/python3") and not os.environ.get("POSTBOTE_DKIM_REEXEC")
            and os.path.realpath(sys.executable) != os.path.realpath("/usr/bin/python3")):
        os.environ["POSTBOTE_DKIM_REEXEC"] = "1"
        os.execv("/usr/bin/python3", ["/usr/bin/python3", os.path.abspath(__file__)] + sys.argv[1:])

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pbtest  # noqa: E402
from pbtest import Server, Skip, TestFailure  # noqa: E402

DOMAIN = "example.test"
EX_USAGE, EX_DATAERR, EX_CANTCREAT = 64, 65, 73


def check(cond, msg):
    if not cond:
        raise TestFailure(msg)


def need_dkim():
    if dkim is None:
        raise Skip("python3-dkim is not installed (apt-get install python3-dkim)")


def pb(srv, *args, stdin=None):
    cmd = [pbtest.BIN] + list(args) + ["-c", srv.config_path]
    r = pbtest.run(cmd, input=stdin if stdin is not None else b"", cwd=srv.dir)
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


def zone(text):
    """The records of zone-file text: a list of (name, type, data, strings),
    strings being the quoted character-strings of a TXT record."""
    recs = []
    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith(";"):
            continue
        m = re.match(r"(\S+)\s+(\d+)\s+IN\s+(\S+)\s+(.*)$", line)
        check(m is not None, "not a zone-file line: %r" % line)
        name, _ttl, rtype, data = m.groups()
        data = re.sub(r"\s*;.*$", "", data) if rtype != "TXT" else data
        strings = re.findall(r'"([^"]*)"', data) if rtype == "TXT" else []
        if rtype == "TXT":
            check(re.fullmatch(r'("[^"]*"\s*)+', data) is not None, "bad TXT data %r" % data)
        recs.append((name, rtype, data.strip(), strings))
    return recs


def setup_keys(srv):
    """An RSA and an Ed25519 key with the default selectors; returns
    {selector: type} and the TXT records by name from `postbote dns`."""
    month = time.strftime("%Y%m", time.gmtime())
    sels = {}
    for t in ("rsa", "ed25519"):
        args = ["dkim", "keygen", DOMAIN] + ([] if t == "rsa" else ["--type", t])
        r = ok(pb(srv, *args), "keygen " + t)
        sel = "%s-%s" % (t, month)
        # The month may have turned between strftime and keygen.
        m = re.search(r"^(%s-\d{6})\._domainkey\.%s\.\s" % (t, re.escape(DOMAIN)), r.out, re.M)
        check(m is not None, "keygen %s printed no record: %r" % (t, r.out))
        sel = m.group(1)
        sels[sel] = t
    return sels, dns_txt(srv)


def dns_txt(srv):
    r = ok(pb(srv, "dns", DOMAIN), "dns")
    return {name: strings for name, rtype, _d, strings in zone(r.out) if rtype == "TXT"}


def make_dnsfunc(txt):
    def dnsfunc(name, timeout=5):
        n = name.decode() if isinstance(name, bytes) else name
        strings = txt.get(n)
        return "".join(strings).encode() if strings is not None else None
    return dnsfunc


def to_wire(msg):
    """The message as SMTP carries it: CRLF line ends, ending in CRLF (the
    client adds one before the final dot when the text lacks it)."""
    msg = re.sub(rb"\r?\n", b"\r\n", msg)
    if not msg.endswith(b"\r\n"):
        msg += b"\r\n"
    return msg


def signatures(msg):
    head = re.split(rb"\r?\n\r?\n", msg, 1)[0]
    fields = re.findall(rb"^DKIM-Signature:.*(?:\r?\n[ \t].*)*", head, re.M | re.I)
    return [dict((k.strip(), re.sub(rb"\s+", b"", v)) for k, v in
                 (t.split(b"=", 1) for t in f.split(b":", 1)[1].split(b";") if b"=" in t))
            for f in fields]


def verify_all(msg, dnsfunc, want=2):
    """Verify every DKIM-Signature of msg (wire form) with dkimpy."""
    sigs = signatures(msg)
    check(len(sigs) == want, "%d signatures, want %d:\n%r" % (len(sigs), want, msg[:2000]))
    d = dkim.DKIM(msg)
    results = []
    for i in range(len(sigs)):
        try:
            results.append(d.verify(idx=i, dnsfunc=dnsfunc))
        except dkim.ValidationError as e:
            # A body hash mismatch is raised, not returned.
            results.append("ValidationError: %s" % e)
    return sigs, results


def sign(srv, msg, *extra):
    r = pb(srv, "dkim", "sign", *extra, stdin=msg)
    check(r.returncode == 0, "dkim sign: exit %d, stderr %r" % (r.returncode, r.err))
    check(r.stdout.endswith(msg), "dkim sign did not print the message after the fields")
    return r.stdout


# A message with long folded header fields - a Subject folded over four
# lines with WSP runs, a References field of twelve ids - and a body with
# trailing blank lines (and blank lines that are only WSP).
LONG_FOLDED = (
    b"Received: from client.example.net (client.example.net [192.0.2.7])\n"
    b"\tby mx.example.test with ESMTPSA id 4711; Mon, 1 Jan 2024 10:00:00 +0000\n"
    b"From: Alice Example <alice@example.test>\n"
    b"To: Bob <bob@example.net>,\n  Carol <carol@example.net>,\n\tDave <dave@example.net>\n"
    b"Subject: A rather long subject line that goes on and on, well past the\n"
    b"  seventy-eight characters a line should have, so that it had to be\n"
    b"\tfolded,   with runs of    white space\t\there and there,\n"
    b"   over four lines \n"
    b"Date: Mon, 1 Jan 2024 10:00:00 +0000\n"
    b"Message-ID: <long.folded.1@example.test>\n"
    b"References: " + b"\n ".join(b"<ref%d.%s@example.net>" % (i, b"x" * 20) for i in range(12)) + b"\n"
    b"In-Reply-To: <ref11.xxxxxxxxxxxxxxxxxxxx@example.net>\n"
    b"MIME-Version: 1.0\n"
    b"Content-Type: text/plain; charset=utf-8;\n format=flowed\n"
    b"Content-Transfer-Encoding: 8bit\n"
    b"List-Id: <test.example.test>\n"
    b"X-Unsigned: not in h=\n"
    b"\n"
    b"Hello Bob,   \n"
    b"\n"
    b"the   body has  WSP runs,\ttabs, trailing blanks \t\n"
    b"and trailing blank lines.\n"
    b"\n"
    b"   \n"
    b"\n"
    b"\t\n"
    b"\n"
    b"\n"
)


def test_keygen_files_and_refusals():
    srv = Server(domain=DOMAIN)
    sels, txt = setup_keys(srv)
    key_dir = os.path.join(srv.data_dir, "dkim", DOMAIN)
    for sel, t in sels.items():
        path = os.path.join(key_dir, sel + ".key")
        st = os.stat(path)
        check(stat.S_IMODE(st.st_mode) == 0o600, "%s has mode %o" % (path, stat.S_IMODE(st.st_mode)))
        with open(path) as f:
            check(f.read().startswith("-----BEGIN PRIVATE KEY-----"), "%s is not PKCS#8 PEM" % path)
        r = pbtest.run(["openssl", "pkey", "-in", path, "-noout", "-text"])
        text = r.stdout.decode()
        if t == "rsa":
            check("2048 bit" in text, "not a 2048-bit RSA key: %s" % text[:200])
        else:
            check("ED25519" in text, "not an Ed25519 key: %s" % text[:200])
    check(stat.S_IMODE(os.stat(key_dir).st_mode) == 0o700, "key folder is not 0700")

    # keygen's record is the one dns prints; RSA needs two strings.
    for sel, t in sels.items():
        name = "%s._domainkey.%s." % (sel, DOMAIN)
        check(name in txt, "dns lacks %s: %r" % (name, txt))
        value = "".join(txt[name])
        check(value.startswith("v=DKIM1; k=%s; p=" % t), "bad record %r" % value)
        check(all(len(s) <= 255 for s in txt[name]), "a TXT string is over 255 octets")
        check(len(txt[name]) == (2 if t == "rsa" else 1), "%d strings for %s" % (len(txt[name]), t))

    # An existing key is kept unless --force.
    rsa_sel = [s for s, t in sels.items() if t == "rsa"][0]
    path = os.path.join(key_dir, rsa_sel + ".key")
    before = open(path).read()
    fails(pb(srv, "dkim", "keygen", DOMAIN, "--selector", rsa_sel), EX_CANTCREAT, "keygen again",
          "exists already")
    check(open(path).read() == before, "the key changed without --force")
    ok(pb(srv, "dkim", "keygen", DOMAIN, "--selector", rsa_sel, "--force"), "keygen --force")
    check(open(path).read() != before, "--force did not replace the key")
    check(not [n for n in os.listdir(key_dir) if n.endswith(".tmp")], "temporary files left")

    # Bad input.
    fails(pb(srv, "dkim", "keygen", DOMAIN, "--type", "dsa"), EX_USAGE, "bad type")
    fails(pb(srv, "dkim", "keygen", DOMAIN, "--selector", "../x"), EX_DATAERR, "bad selector")
    fails(pb(srv, "dkim", "keygen", "not a domain"), EX_DATAERR, "bad domain")
    fails(pb(srv, "dkim", "keygen", DOMAIN, "--type", "ed25519", "--bits", "2048"), EX_USAGE, "bits")
    fails(pb(srv, "dkim", "keygen"), EX_USAGE, "no domain")
    fails(pb(srv, "dkim", "frobnicate"), EX_USAGE, "unknown action")

    # list: one line per key, with type and size.
    r = ok(pb(srv, "dkim", "list"), "dkim list")
    lines = sorted(l.split("\t") for l in r.out.splitlines())
    check(len(lines) == 2, "dkim list: %r" % r.out)
    for fields in lines:
        check(fields[0] == DOMAIN and fields[1] in sels and fields[2] == sels[fields[1]],
              "dkim list line %r" % fields)
        check(fields[3] == ("2048" if fields[2] == "rsa" else "256"), "size in %r" % fields)

    # A key that is not a DKIM key is reported, not skipped.
    with open(os.path.join(key_dir, "broken.key"), "w") as f:
        f.write("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")
    fails(pb(srv, "dkim", "list"), EX_DATAERR, "broken key", "broken.key")


def test_dns_records():
    srv = Server(domain=DOMAIN, hostname="mx.example.test")
    # Before any key: a hint instead of a DKIM record.
    r = ok(pb(srv, "dns"), "dns without keys")
    check("postbote dkim keygen %s" % DOMAIN in r.out, "no keygen hint: %r" % r.out)
    check(not any(n.endswith("._domainkey.%s." % DOMAIN) for n, *_ in zone(r.out)), "DKIM without keys")

    sels, _ = setup_keys(srv)
    r = ok(pb(srv, "dns", DOMAIN), "dns")
    recs = zone(r.out)
    by = {}
    for name, rtype, data, strings in recs:
        by.setdefault((name, rtype), []).append((data, strings))
    d = DOMAIN + "."
    check(by[(d, "MX")] == [("10 mx.example.test.", [])], "MX: %r" % by.get((d, "MX")))
    check([s for _d, s in by[(d, "TXT")]] == [["v=spf1 mx -all"]], "SPF: %r" % by.get((d, "TXT")))
    dmarc = by[("_dmarc." + d, "TXT")][0][1]
    check(dmarc == ["v=DMARC1; p=quarantine; rua=mailto:postmaster@%s" % DOMAIN], "DMARC %r" % dmarc)
    check("suggestion" in r.out, "DMARC is not called a suggestion")
    for sel in sels:
        check(("%s._domainkey.%s" % (sel, d), "TXT") in by, "no DKIM record for %s" % sel)
    for n in ("autoconfig", "autodiscover"):
        check(by[("%s.%s" % (n, d), "CNAME")] == [("mx.example.test.", [])], "%s CNAME" % n)
    for service, kind in (("_submissions", "submissions"), ("_submission", "submission"),
                          ("_imaps", "imaps"), ("_imap", "imap"), ("_pop3s", "pop3s"),
                          ("_pop3", "pop3")):
        srv_data = by[("%s._tcp.%s" % (service, d), "SRV")][0][0].split()
        check(len(srv_data) == 4 and int(srv_data[2]) == srv.port(kind)
              and srv_data[3] == "mx.example.test.", "%s SRV %r" % (service, srv_data))
    # Implicit TLS first (RFC 8314), IMAP before POP3.
    prio = {s: int(by[("%s._tcp.%s" % (s, d), "SRV")][0][0].split()[0])
            for s in ("_submissions", "_submission", "_imaps", "_imap", "_pop3s", "_pop3")}
    check(prio["_submissions"] < prio["_submission"] and prio["_imaps"] < prio["_imap"] <
          prio["_pop3s"] < prio["_pop3"], "SRV priorities %r" % prio)

    # Services without a listener are published as not offered.
    srv2 = Server(domain=DOMAIN, listens=[("smtp", "127.0.0.1"), ("imaps", "127.0.0.1")])
    r = ok(pb(srv2, "dns"), "dns, two listeners")
    srvs = {n: data for n, rtype, data, _s in zone(r.out) if rtype == "SRV"}
    check(srvs["_pop3._tcp.%s" % d] == "0 0 0 .", "pop3 not offered: %r" % srvs)
    check(srvs["_imaps._tcp.%s" % d].split()[2] == str(srv2.port("imaps")), "imaps %r" % srvs)
    fails(pb(srv2, "dns", "bad domain!"), EX_DATAERR, "dns bad domain")


def test_sign_verify_both_types():
    need_dkim()
    srv = Server(domain=DOMAIN)
    sels, txt = setup_keys(srv)
    dnsfunc = make_dnsfunc(txt)

    signed = sign(srv, LONG_FOLDED, "--timestamp", "1700000000")
    wire = to_wire(signed)
    sigs, results = verify_all(wire, dnsfunc)
    algs = sorted(s[b"a"].decode() for s in sigs)
    check(algs == ["ed25519-sha256", "rsa-sha256"], "algorithms %r" % algs)
    check(results == [True, True], "dkimpy: %r for\n%s" % (results, wire.decode()))
    for s in sigs:
        check(s[b"c"] == b"relaxed/relaxed" and s[b"d"] == DOMAIN.encode() and s[b"t"] == b"1700000000",
              "tags %r" % s)
        check(s[b"h"].startswith(b"from:from:"), "From is not oversigned: %r" % s[b"h"])
        check(b"x-unsigned" not in s[b"h"] and b"received" not in s[b"h"], "h= %r" % s[b"h"])
        check(s[b"s"].decode() in sels, "selector %r" % s[b"s"])
    # The fields are folded to lines of at most 78 octets.
    head = signed.split(b"\n\n", 1)[0]
    for line in head.split(b"\n"):
        if line.startswith(b"DKIM-Signature:") or line[:1] in (b" ", b"\t"):
            check(len(line) <= 78, "line of %d octets: %r" % (len(line), line))
    # dkimpy also takes the LF form.
    check(dkim.DKIM(signed).verify(idx=0, dnsfunc=dnsfunc), "LF form does not verify")

    # What must break the signature, and what must not (relaxed).
    def results_of(m):
        return [r is True for r in verify_all(to_wire(m), dnsfunc)[1]]
    head, body = signed.split(b"\n\n", 1)
    check(results_of(head + b"\n\n" + body.replace(b"Hello Bob", b"Hello Rob")) == [False, False],
          "a changed body verifies")
    check(results_of(b"From: mallory@example.net\n" + head + b"\n\n" + body) == [False, False],
          "a From added above verifies (not oversigned)")
    check(results_of(head + b"\nFrom: mallory@example.net\n\n" + body) == [False, False],
          "a From added below verifies")
    check(results_of(head.replace(b"A rather long", b"A rather short") + b"\n\n" + body) == [False, False],
          "a changed Subject verifies")
    check(results_of(head + b"\nX-Added: by a relay\n\n" + body) == [True, True],
          "an added unsigned field breaks the signature")
    check(results_of(head + b"\n\n" + body + b"\n\n\n") == [True, True],
          "more trailing blank lines break the signature")
    refolded = head.replace(b"Content-Type: text/plain; charset=utf-8;\n format=flowed",
                            b"Content-Type:   text/plain;    charset=utf-8; format=flowed")
    check(refolded != head and results_of(refolded + b"\n\n" + body) == [True, True],
          "refolding breaks a relaxed signature")
    check(results_of(head + b"\n\n" + body.replace(b"WSP runs,", b"WSP  runs, ")) == [True, True],
          "WSP changes break a relaxed body")

    # --selector signs with one key.
    rsa_sel = [s for s, t in sels.items() if t == "rsa"][0]
    one = to_wire(sign(srv, LONG_FOLDED, "--selector", rsa_sel))
    sigs, results = verify_all(one, dnsfunc, want=1)
    check(results == [True] and sigs[0][b"a"] == b"rsa-sha256", "one key: %r %r" % (sigs, results))

    # More shapes: CRLF input, empty and missing bodies, 8-bit text, a lone
    # CR, repeated fields.
    msgs = [
        to_wire(LONG_FOLDED),
        b"From: alice@example.test\nSubject: empty body\n\n",
        b"From: alice@example.test\nSubject: no body at all\n",
        b"Subject: From last, no line end\nFrom: alice@example.test",
        b"From: alice@example.test\nSubject: only blank lines\n\n\n \n\t\n\n",
        b"From: =?utf-8?q?J=C3=B6rg?= <joerg@example.test>\nSubject: =?utf-8?q?Gr=C3=BC=C3=9Fe?=\n"
        b"Content-Type: text/plain; charset=utf-8\n\nGr\xc3\xbc\xc3\x9fe   aus \xc3\x84gypten \n\n",
        b"From: alice@example.test\nSubject: lone CR\n\nbefore\rafter  \nx \r y\n\n",
        b"From: alice@example.test\nTo: a@example.net\nTo: b@example.net\nCc: c@example.net\n"
        b"Subject: two To\nList-Unsubscribe: <mailto:u@example.test>\nList-Post: NO\n\nbody",
    ]
    for m in msgs:
        s = to_wire(sign(srv, m))
        sigs, results = verify_all(s, dnsfunc)
        check(results == [True, True], "dkimpy: %r for\n%r" % (results, s))
    check(b"to:to" in signatures(to_wire(sign(srv, msgs[-1])))[0][b"h"], "both To fields signed")

    # The domain comes from From unless given; a From elsewhere needs it.
    fails(pb(srv, "dkim", "sign", stdin=b"From: a@elsewhere.example\n\nx\n"), EX_DATAERR,
          "sign for a domain without keys", "no DKIM key")
    r = ok(pb(srv, "dkim", "sign", DOMAIN, stdin=b"From: a@elsewhere.example\n\nx\n"), "sign with DOMAIN")
    check("DMARC" in r.err, "no alignment note: %r" % r.err)
    check(verify_all(to_wire(r.stdout), dnsfunc)[1] == [True, True], "DOMAIN-signed message")


def rand_text(rng, n):
    words = ["alpha", "beta", "gamma", "x", "Gr\u00fc\u00dfe", "=?q?", ":", ";", "a=b", "(c)", "<d@e>",
             "\"q\""]
    out = []
    for _ in range(n):
        out.append(rng.choice(words))
        out.append(rng.choice([" ", "  ", "\t", " \t ", ""]))
    return "".join(out).encode("utf-8")


def test_sign_random_messages():
    """Many generated messages (WSP runs, folds, blank and WSP-only lines,
    mixed line ends, lone CRs in the body) verify with dkimpy."""
    need_dkim()
    srv = Server(domain=DOMAIN)
    _sels, txt = setup_keys(srv)
    dnsfunc = make_dnsfunc(txt)
    rng = random.Random(6376)
    for n in range(60):
        eol = rng.choice([b"\n", b"\r\n"])
        fields = [b"From: Someone <someone@example.test>"]
        for name in rng.sample([b"To", b"Cc", b"Subject", b"Date", b"Message-ID", b"Reply-To",
                                b"References", b"List-Id", b"X-Other", b"Content-Type"], rng.randint(2, 8)):
            value = rand_text(rng, rng.randint(0, 6))
            for _ in range(rng.randint(0, 3)):
                value += eol + rng.choice([b" ", b"\t", b"   "]) + rand_text(rng, rng.randint(1, 4))
            fields.append(rng.choice([name, name.lower(), name.upper()]) + b":" +
                          rng.choice([b" ", b"", b"\t", b"  "]) + value)
        lines = []
        for _ in range(rng.randint(0, 12)):
            line = rand_text(rng, rng.randint(0, 8))
            if rng.random() < 0.1:
                line += b"\r" + rand_text(rng, 1)
            lines.append(line + rng.choice([b"", b" ", b"\t", b"  \t"]))
        lines += [rng.choice([b"", b" ", b"\t"]) for _ in range(rng.randint(0, 4))]
        msg = eol.join(fields) + eol + eol + b"".join(l + rng.choice([b"\n", b"\r\n"]) for l in lines)
        s = to_wire(sign(srv, msg))
        sigs, results = verify_all(s, dnsfunc)
        check(results == [True, True], "message %d: dkimpy %r for\n%r" % (n, results, s))


DNS_DRIVER = r'''
import fcntl, os, socket, struct, subprocess, sys, time
tmp, records, messages = sys.argv[1], sys.argv[2], sys.argv[3:]
# A new network namespace has only lo, and it is down: ip link set lo up,
# without needing iproute2 (SIOCGIFFLAGS, SIOCSIFFLAGS with IFF_UP).
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
flags = struct.unpack("16sH", fcntl.ioctl(s, 0x8913, struct.pack("16sH", b"lo", 0)))[1]
fcntl.ioctl(s, 0x8914, struct.pack("16sH", b"lo", flags | 1))
s.close()
resolv = os.path.join(tmp, "resolv.conf")
with open(resolv, "w") as f:
    f.write("nameserver 127.0.0.1\n")
subprocess.run(["mount", "--bind", resolv, "/etc/resolv.conf"], check=True)
args = ["dnsmasq", "--keep-in-foreground", "--no-resolv", "--no-hosts", "--listen-address=127.0.0.1",
        "--bind-interfaces", "--port=53", "--log-facility=" + os.path.join(tmp, "dnsmasq.log")]
names = []
for line in open(records).read().splitlines():
    name, *strings = line.split("\t")
    names.append(name)
    args.append("--txt-record=" + ",".join([name] + strings))
dnsmasq = subprocess.Popen(args)
try:
    import dns.resolver
    deadline = time.monotonic() + 20
    while True:
        try:
            dns.resolver.resolve(names[0], "TXT", lifetime=0.5)
            break
        except Exception:
            if time.monotonic() > deadline or dnsmasq.poll() is not None:
                print("dnsmasq did not answer")
                sys.exit(3)
            time.sleep(0.05)
    failed = 0
    for m in messages:
        path, count = m.rsplit(":", 1)
        for i in range(int(count)):
            r = subprocess.run(["dkimverify", "--index", str(i)], stdin=open(path, "rb"),
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60)
            out = r.stdout.decode(errors="replace").strip()
            print("dkimverify --index %d < %s: exit %d: %s" % (i, os.path.basename(path), r.returncode, out))
            if r.returncode != 0 or out != "signature ok":
                failed += 1
    sys.exit(1 if failed else 0)
finally:
    dnsmasq.terminate()
    dnsmasq.wait()
'''


def test_dkimverify_command():
    """Debian's dkimverify, which looks the key up in real DNS: run in a
    private network and mount namespace with dnsmasq serving the records
    `postbote dns` printed, exactly as printed (one string per chunk)."""
    need_dkim()
    for tool in ("dkimverify", "dnsmasq", "unshare", "mount"):
        if shutil.which(tool) is None and not os.path.exists("/usr/sbin/" + tool):
            raise Skip("%s is missing; the signatures are verified with dkim.verify() in the "
                       "other tests" % tool)
    if os.geteuid() != 0:
        raise Skip("not root: cannot give dkimverify a private DNS server (unshare -mn); "
                   "the signatures are verified with dkim.verify() in the other tests")
    srv = Server(domain=DOMAIN)
    _sels, txt = setup_keys(srv)
    records = os.path.join(srv.dir, "records")
    with open(records, "w") as f:
        for name, strings in txt.items():
            if "._domainkey." in name:
                f.write("\t".join([name.rstrip(".")] + strings) + "\n")
    paths = []
    for i, m in enumerate([LONG_FOLDED, b"From: a@example.test\nSubject: short\n\nhi\n\n\n"]):
        path = os.path.join(srv.dir, "signed%d.eml" % i)
        with open(path, "wb") as f:
            f.write(to_wire(sign(srv, m)))
        paths.append(path + ":2")
    env = dict(os.environ, PATH=os.environ.get("PATH", "") + ":/usr/sbin:/sbin")
    driver = os.path.join(srv.dir, "driver.py")
    with open(driver, "w") as f:
        f.write(DNS_DRIVER)
    r = subprocess.run(["unshare", "--mount", "--net", "/usr/bin/python3", driver, srv.dir, records] + paths,
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=120, env=env)
    out = r.stdout.decode(errors="replace")
    if r.returncode != 0 and ("unshare failed" in out or "Operation not permitted" in out):
        raise Skip("no private namespaces here (%s); verified with dkim.verify() instead" % out.strip())
    print(out.rstrip())
    check(r.returncode == 0, "dkimverify failed:\n%s" % out)
    check(out.count("signature ok") == 4, "not four verified signatures:\n%s" % out)


if __name__ == "__main__":
    pbtest.main(globals())
