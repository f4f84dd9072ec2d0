#!/bin/sh
# Run postbote under valgrind, drive a few connections of every kind (plain,
# STARTTLS, implicit TLS, refused over both, an overlong line, a SIGHUP
# reload, the trace, an IMAP session with most commands and IDLE), stop it
# with SIGTERM and report valgrind's summary.
#
# Exit 0 when the server exited 0 and valgrind found no errors and no
# definite or indirect leaks; non-zero otherwise. Slow, so not part of
# ctest; CI runs it:  tests/e2e/valgrind_smoke.sh   (POSTBOTE_BIN=... optional)
set -u

HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
BIN=${POSTBOTE_BIN:-$REPO/build/postbote}
export POSTBOTE_BIN="$BIN"

if ! command -v valgrind >/dev/null 2>&1; then
	echo "valgrind_smoke: valgrind is not installed" >&2
	exit 2
fi
if [ ! -x "$BIN" ]; then
	echo "valgrind_smoke: no binary at $BIN (build it or set POSTBOTE_BIN)" >&2
	exit 2
fi

WORK=$(mktemp -d "${TMPDIR:-/tmp}/postbote-valgrind-XXXXXX")
VGLOG="$WORK/valgrind.log"
# shellcheck disable=SC2317  # called by the trap
cleanup() {
	if [ "${POSTBOTE_KEEP:-0}" = 1 ] && [ "${status:-1}" != 0 ]; then
		echo "valgrind_smoke: kept $WORK"
	else
		rm -rf "$WORK"
	fi
}
trap cleanup EXIT

# The driver: pbtest starts the server (under valgrind), waits for every
# listener with a deadline, and stops it with SIGTERM (SIGKILL after the
# deadline). It prints the server's exit code last.
PBTEST_DIR="$HERE" python3 - "$VGLOG" <<'EOF'
import os
import re
import signal
import sys
import traceback

sys.path.insert(0, os.environ["PBTEST_DIR"])
import pbtest

vglog = sys.argv[1]
valgrind = ["valgrind", "--leak-check=full", "--error-exitcode=99",
            "--errors-for-leak-kinds=definite,indirect", "--show-leak-kinds=definite,indirect",
            "--track-fds=no", "--num-callers=30", "--log-file=" + vglog]
T = 60  # everything is slow under valgrind

srv = pbtest.Server(config={"max_connections_per_ip": 4, "smtp_line_max": 1000,
                            "tls_handshake_timeout": "60s"},
                    args=["--trace"], wrapper=valgrind)
code = None
ok = False
try:
    r = pbtest.run([pbtest.BIN, "user", "add", "vg@" + srv.domain, "-c", srv.config_path,
                    "--password-stdin"], input=b"vg-password\n")
    if r.returncode != 0:
        raise AssertionError("user add: %r" % r.stderr)
    srv.start(timeout=120)

    def banner(c, want):
        line = c.readline(T)
        if not line.startswith(want):
            raise AssertionError("banner %r, want %r" % (line, want))

    # Plain sessions of every protocol, each ended by its quit command.
    for kind, want, quit_cmd in (("smtp", "220 ", "QUIT"), ("submission", "220 ", "QUIT"),
                                 ("pop3", "+OK", "QUIT"), ("imap", "* OK", "a LOGOUT")):
        with srv.connect(kind, timeout=T) as c:
            banner(c, want)
            c.cmd(quit_cmd)
            c.readline(T)

    # STARTTLS on each plain protocol, with a command inside TLS.
    with srv.connect("smtp", timeout=T) as c:
        banner(c, "220 ")
        c.cmd("EHLO vg.example")
        c.read_reply(T)
        c.cmd("STARTTLS")
        c.expect("220 ", T)
        c.starttls()
        c.cmd("EHLO vg.example")
        c.read_reply(T)
        c.cmd("AUTH PLAIN c2VjcmV0")
        c.readline(T)
        c.cmd("QUIT")
        c.expect("221 ", T)
    with srv.connect("pop3", timeout=T) as c:
        banner(c, "+OK")
        c.send("STLS\r\nCAPA\r\n")  # the CAPA must be discarded
        c.expect("+OK", T)
        c.starttls()
        c.cmd("CAPA")
        c.read_until(lambda l: l == ".", T)
        c.cmd("QUIT")
        c.expect("+OK", T)
    with srv.connect("imap", timeout=T) as c:
        banner(c, "* OK")
        c.cmd("a STARTTLS")
        c.expect("a OK", T)
        c.starttls()
        c.cmd("b NOOP")
        c.expect("b OK", T)
        # A client that just goes away inside TLS.

    # A delivery on port 25 (spool, store, reply), one refused by size of
    # line and one relay attempt, then AUTH on 465: a wrong password and a
    # right one, and a delivery pipelined behind the password check.
    import base64
    with srv.connect("smtp", timeout=T) as c:
        banner(c, "220 ")
        c.cmd("EHLO vg.example")
        c.read_reply(T)
        c.send("MAIL FROM:<a@remote.example>\r\nRCPT TO:<vg@%s>\r\nRCPT TO:<x@remote.example>\r\n"
               "DATA\r\n" % srv.domain)
        c.expect("250 ", T)
        c.expect("250 ", T)
        c.expect("554 ", T)
        c.expect("354 ", T)
        c.send("Subject: vg\r\n\r\nbody\r\n..dot\r\n.\r\n")
        c.expect("250 ", T)
        c.send("MAIL FROM:<a@remote.example>\r\nRCPT TO:<vg@%s>\r\nBDAT 5 LAST\r\nhello" % srv.domain)
        c.expect("250 ", T)
        c.expect("250 ", T)
        c.expect("250 ", T)
        c.cmd("QUIT")
        c.expect("221 ", T)
    with srv.connect("submissions", timeout=T) as c:
        banner(c, "220 ")
        c.cmd("EHLO vg.example")
        c.read_reply(T)
        c.cmd("AUTH PLAIN " + base64.b64encode(b"\0vg@" + srv.domain.encode() + b"\0wrong").decode())
        c.expect("535 ", T)
        c.cmd("AUTH LOGIN")
        c.expect("334 ", T)
        c.cmd(base64.b64encode(b"vg@" + srv.domain.encode()).decode())
        c.expect("334 ", T)
        c.send(base64.b64encode(b"vg-password").decode() + "\r\nMAIL FROM:<vg@%s>\r\n" % srv.domain)
        c.expect("235 ", T)
        c.expect("250 ", T)
        # Gone in the middle of a transaction: the spool must be freed.
    with srv.connect("submissions", timeout=T) as c:
        banner(c, "220 ")
        c.cmd("EHLO vg.example")
        c.read_reply(T)
        c.cmd("AUTH PLAIN " + base64.b64encode(b"\0vg@" + srv.domain.encode() + b"\0vg-password").decode())
        # Gone while the password is being checked.

    # Implicit TLS on every kind.
    for kind, want in (("submissions", "220 "), ("pop3s", "+OK"), ("imaps", "* OK")):
        with srv.connect(kind, timeout=T) as c:
            banner(c, want)
            c.cmd("QUIT" if kind != "imaps" else "a LOGOUT")
            c.readline(T)

    # An overlong line, then a session that is still fine.
    with srv.connect("smtp", timeout=T) as c:
        banner(c, "220 ")
        c.send("NOOP " + "x" * 5000 + "\r\n")
        c.expect("500 ", T)
        c.cmd("NOOP")
        c.expect("250 ", T)

    # IMAP: a session with most commands (literals, the MIME parser, SEARCH,
    # flags, COPY/MOVE/EXPUNGE), IDLE woken by a delivery, and clients that
    # vanish in the middle of a literal and of an IDLE.
    closes = srv.count_log(r"conn \d+ close:")
    vg_user = "vg@" + srv.domain
    msg = (b"From: a@remote.example\r\nSubject: vg imap\r\nMIME-Version: 1.0\r\n"
           b"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\n"
           b"hello\r\n--b\r\nContent-Type: image/png\r\nContent-Transfer-Encoding: base64\r\n\r\n"
           b"aGVsbG8=\r\n--b--\r\n")
    im = pbtest.Imap.open(srv, "imaps", timeout=T)
    im.login(vg_user, "vg-password")
    for cmd in (b"APPEND INBOX (\\Seen $vg) {%d+}\r\n" % len(msg) + msg, "CREATE vg/sub", 'LIST "" *',
                'LSUB "" *', "STATUS INBOX (MESSAGES UIDNEXT UNSEEN)", "SELECT INBOX",
                "FETCH 1:* (FLAGS UID INTERNALDATE RFC822.SIZE ENVELOPE BODY BODYSTRUCTURE)",
                "FETCH * (BODY[1] BODY.PEEK[2.MIME] BODY.PEEK[HEADER.FIELDS (SUBJECT)]<0.5> BODY[TEXT])",
                "SEARCH CHARSET UTF-8 OR BODY hello SUBJECT vg", "UID STORE 1:* +FLAGS (\\Flagged $x)",
                "UID COPY 1:* vg/sub", "MOVE 1 Trash", "NAMESPACE", "ID NIL", "RENAME vg/sub vg/other",
                "DELETE vg/other", "STORE 1 +FLAGS.SILENT (\\Deleted)", "EXPUNGE", "CHECK", "UNSELECT",
                "EXAMINE Trash", "CLOSE", "SELECT INBOX"):
        r = im.cmd(cmd, T)
        if r.status != "OK":
            raise AssertionError("IMAP %r: %r" % (cmd[:60], r))
    im.send(b"i1 IDLE\r\n")
    if not im.c.readline_bytes(T).startswith(b"+ "):
        raise AssertionError("no IDLE continuation")
    with srv.connect("smtp", timeout=T) as c:
        banner(c, "220 ")
        c.cmd("EHLO vg.example")
        c.read_reply(T)
        c.send("MAIL FROM:<a@remote.example>\r\nRCPT TO:<%s>\r\nDATA\r\n" % vg_user)
        c.expect("250 ", T)
        c.expect("250 ", T)
        c.expect("354 ", T)
        c.send("Subject: idle\r\n\r\nwake up\r\n.\r\nQUIT\r\n")
        c.expect("250 ", T)
        c.expect("221 ", T)
    r = im.read_response(T)
    if not re.match(rb"\* \d+ EXISTS", r):
        raise AssertionError("IDLE did not see the delivery: %r" % r)
    im.send(b"DONE\r\n")
    im.finish("i1", T)
    im.ok("LOGOUT", T)
    im.close()
    with pbtest.Imap.open(srv, "imaps", timeout=T) as gone:
        gone.login(vg_user, "vg-password")
        gone.send(b"a1 APPEND INBOX {1000}\r\n")
        gone.c.readline_bytes(T)
        gone.send(b"x" * 400)
    with pbtest.Imap.open(srv, "imaps", timeout=T) as gone:
        gone.login(vg_user, "vg-password")
        gone.ok("SELECT INBOX", T)
        gone.send(b"i2 IDLE\r\n")
        gone.c.readline_bytes(T)
    pbtest.wait_for(lambda: srv.count_log(r"conn \d+ close:") >= closes + 4, T,
                    "the IMAP connections to be closed")

    # Reload (config and the self-signed certificate).
    mark = srv.log_mark()
    srv.signal(signal.SIGHUP)
    srv.wait_log(r"reload: done", timeout=T, since=mark)

    # Refusals: hold four, the fifth is refused in plaintext and over TLS.
    held = []
    try:
        for _ in range(4):
            c = srv.connect("smtp", timeout=T)
            held.append(c)
            banner(c, "220 ")
        with srv.connect("smtp", timeout=T) as c:
            c.expect("421 4.7.0", T)
        with srv.connect("imaps", timeout=T) as c:
            c.expect("* BYE", T)
        with srv.connect("pop3", timeout=T) as c:
            c.expect("-ERR", T)
    finally:
        # Two stay open: SIGTERM must say goodbye to them and free them.
        for c in held[2:]:
            c.close()
        held = held[:2]
    def greeted_imaps():
        c = srv.connect("imaps", timeout=T)
        if c.readline(T).startswith("* OK"):
            return c
        c.close()
    with pbtest.wait_for(greeted_imaps, T, "an imaps session to be accepted again") as c:
        srv.signal(signal.SIGTERM)
        c.expect("* BYE", T)
    for c in held:
        c.expect("421 4.3.2", T)
        c.close()
    code = srv.wait_exit(timeout=120)
    ok = True
except Exception:
    traceback.print_exc()
finally:
    if code is None:
        try:
            code = srv.stop(timeout=120)
        except Exception as e:
            print("stop: %s" % e)
            code = srv.proc.returncode if srv.proc else None
    pbtest._cleanup_after_test(not ok)  # prints the log tail on failure
print("driver: %s, server exit code %s" % ("ok" if ok else "FAILED", code))
sys.exit(0 if ok and code == 0 else (code if isinstance(code, int) and code > 0 else 1))
EOF
status=$?

echo "---- valgrind summary ----"
if [ -f "$VGLOG" ]; then
	grep -E "ERROR SUMMARY|definitely lost|indirectly lost|possibly lost|still reachable|in use at exit|All heap blocks were freed" "$VGLOG" |
		sed 's/^==[0-9]*== *//'
	if grep -qE "Invalid (read|write|free)|uninitialised|Mismatched free|definitely lost in [1-9]|indirectly lost in [1-9]" "$VGLOG"; then
		echo "---- valgrind findings ----"
		grep -vE "^==[0-9]+== *$" "$VGLOG" | sed -n '/Invalid\|uninitialised\|Mismatched\|are definitely lost\|are indirectly lost/,/^==[0-9]*== *$/p' | head -200
		[ "$status" = 0 ] && status=99
	fi
else
	echo "no valgrind log at $VGLOG"
	[ "$status" = 0 ] && status=1
fi
if [ "$status" = 0 ]; then
	echo "valgrind_smoke: OK"
else
	echo "valgrind_smoke: FAILED (status $status; 99 = valgrind found errors or leaks)"
fi
exit "$status"
