#!/usr/bin/env python3
"""Retrieve every message of a 1,000 x 100 KiB mailbox over POP3S with
poplib, from postbote and from a private Dovecot (dovecot-pop3d) holding
the same messages, rounds alternating between the two; print each round,
the medians and the ratio. Run through bench/pop3_retrieve.sh.

The Dovecot instance is the benchmark's own: its config, runtime and state
directories, log and Maildir are in the temporary directory, it listens on
a free port on 127.0.0.1 only, and it is stopped at the end. /etc/dovecot
and the system's service are never touched.

Both servers use the same certificate (ECDSA P-256) and negotiate the same
TLS version and cipher, and both read the same files: Maildir names carry
,S= and ,W=, so neither has to read a message to know its size. Dovecot is
set not to update flags on RETR (pop3_no_flag_updates), as postbote does
not; that is work Dovecot would otherwise do and postbote not.

Exit status: 0 when postbote's median is at least TARGET times Dovecot's
speed, 1 when not, 2 when the setup failed.
"""

import argparse
import os
import poplib
import pwd
import random
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


class SetupError(Exception):
    pass


def log(msg):
    print(msg, flush=True)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_port(port, proc, what, deadline=30.0):
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


def make_messages(n, size, seed=1):
    """n messages of exactly size octets each: a header and a base64-like
    body in 76-character lines, LF line ends as Maildir files have them."""
    rnd = random.Random(seed)
    alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    block = bytes(rnd.choice(alphabet) for _ in range(76 * 64))
    msgs = []
    for i in range(n):
        head = (b"From: sender%d@example.org\nTo: %s\nSubject: benchmark message %d\n"
                b"Message-ID: <%d.bench@example.org>\nDate: Mon, 1 Jan 2024 00:00:00 +0000\n"
                b"MIME-Version: 1.0\nContent-Type: application/octet-stream\n"
                b"Content-Transfer-Encoding: base64\n\n" % (i, USER.encode(), i, i))
        body = bytearray()
        k = i
        while len(head) + len(body) < size:
            start = (k * 76) % len(block)
            line = (block + block)[start:start + 76]
            body += line + b"\n"
            k += 7
        m = (head + bytes(body))[:size - 1] + b"\n"
        msgs.append(m)
    return msgs


def vsize(m):
    return len(m) + m.count(b"\n") - m.count(b"\r\n")


def write_maildir(root, msgs):
    for sub in ("cur", "new", "tmp"):
        os.makedirs(os.path.join(root, sub), exist_ok=True)
    for i, m in enumerate(msgs):
        name = "%d.M%dP1.bench,S=%d,W=%d" % (1700000000 + i, i, len(m), vsize(m))
        with open(os.path.join(root, "new", name), "wb") as f:
            f.write(m)


def cpu_seconds(pid, children=False):
    """utime + stime (and the reaped children's, for Dovecot's master)."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    ticks = int(fields[11]) + int(fields[12])
    if children:
        ticks += int(fields[13]) + int(fields[14])
    return ticks / os.sysconf("SC_CLK_TCK")


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


def tree_cpu(pid):
    """CPU of a process tree: the master with its reaped children, plus
    the children still running. Dovecot's pop3 and pop3-login processes
    end with their connection; wait (briefly) until they are reaped, or a
    process that exits between the two reads below would be missed."""
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        busy = False
        for c in descendants(pid):
            try:
                with open("/proc/%d/cmdline" % c, "rb") as f:
                    busy = busy or b"pop3" in f.read()
            except OSError:
                busy = True
        if not busy:
            break
        time.sleep(0.01)
    total = cpu_seconds(pid, children=True)
    for c in descendants(pid):
        try:
            total += cpu_seconds(c)
        except OSError:
            pass
    return total


def retrieve_all(port, ctx, expect, check_every):
    """One round: log in, RETR every message, QUIT. Returns (seconds,
    octets, TLS description)."""
    t0 = time.perf_counter()
    p = poplib.POP3_SSL("127.0.0.1", port, context=ctx, timeout=120)
    p.user(USER)
    p.pass_(PASSWORD)
    count, _ = p.stat()
    if count != len(expect):
        raise SetupError("the server has %d messages, expected %d" % (count, len(expect)))
    total = 0
    for i in range(1, count + 1):
        resp, lines, octets = p.retr(i)
        total += octets
        if i % check_every == 1:
            got = b"\n".join(lines) + b"\n"
            if got != expect[i - 1]:
                raise SetupError("message %d came back different" % i)
    tls = "%s %s" % (p.sock.version(), p.sock.cipher()[0])
    p.quit()
    return time.perf_counter() - t0, total, tls


def start_postbote(args, tmp, cert, key, msgs):
    port = free_port()
    data = os.path.join(tmp, "postbote-data")
    conf = os.path.join(tmp, "postbote.conf")
    with open(conf, "w") as f:
        f.write("data_dir = %s\nhostname = bench.test\ndomain = bench.test\n"
                "listen = pop3s 127.0.0.1:%d\ntls_cert = %s\ntls_key = %s\nlog_level = warn\n"
                "max_connections_per_ip = 100\n" % (data, port, cert, key))
    r = subprocess.run([args.bin, "user", "add", USER, "-c", conf, "--password-stdin"],
                       input=(PASSWORD + "\n").encode(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    if r.returncode != 0:
        raise SetupError("postbote user add: %s" % r.stdout.decode(errors="replace"))
    write_maildir(os.path.join(data, "mail", "bench.test", "bench"), msgs)
    logf = open(os.path.join(tmp, "postbote.log"), "wb")
    proc = subprocess.Popen([args.bin, "serve", "-c", conf], stdout=logf, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL)
    wait_port(port, proc, "postbote")
    return proc, port


def start_dovecot(args, tmp, cert, key, msgs):
    dovecot = shutil.which("dovecot") or "/usr/sbin/dovecot"
    if not os.path.exists(dovecot):
        raise SetupError("dovecot not found: apt-get install dovecot-pop3d")
    port = free_port()
    d = os.path.join(tmp, "dovecot")
    home = os.path.join(d, "home", USER)
    for sub in ("run", "state", "home"):
        os.makedirs(os.path.join(d, sub), exist_ok=True)
    write_maildir(os.path.join(home, "Maildir"), msgs)
    if os.geteuid() == 0:
        # Dovecot refuses to read mail as root: the copy belongs to
        # nobody, and its services run as Debian's dovecot/dovenull.
        mail_user = pwd.getpwnam("nobody")
        internal, login = "dovecot", "dovenull"
        for dirpath, dirnames, filenames in os.walk(os.path.join(d, "home")):
            os.chown(dirpath, mail_user.pw_uid, mail_user.pw_gid)
            for fn in filenames:
                os.chown(os.path.join(dirpath, fn), mail_user.pw_uid, mail_user.pw_gid)
        # The path down to the Maildir must be traversable by that user.
        p = home
        while p != "/":
            os.chmod(p, os.stat(p).st_mode | 0o055)
            p = os.path.dirname(p)
    else:
        mail_user = pwd.getpwuid(os.getuid())
        internal = login = mail_user.pw_name
    with open(os.path.join(d, "passwd"), "w") as f:
        f.write("%s:{PLAIN}%s\n" % (USER, PASSWORD))
    os.chmod(os.path.join(d, "passwd"), 0o644)
    conf = os.path.join(d, "dovecot.conf")
    with open(conf, "w") as f:
        f.write("""# Written by bench/pop3_retrieve.py; a private instance.
protocols = pop3
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
pop3_no_flag_updates = yes
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {d}/passwd
}}
userdb {{
  driver = static
  args = uid={uid} gid={gid} home={d}/home/%u
}}
service pop3-login {{
  inet_listener pop3 {{
    port = 0
  }}
  inet_listener pop3s {{
    port = {port}
    ssl = yes
  }}
}}
""".format(d=d, internal=internal, login=login, uid=mail_user.pw_uid, gid=mail_user.pw_gid, cert=cert,
           key=key, port=port))
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
    return proc, port


def stop(proc):
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--messages", type=int, default=1000)
    ap.add_argument("--size", type=int, default=100 * 1024)
    ap.add_argument("--target", type=float, default=1.0)
    ap.add_argument("--dir", default=None, help="where the temporary directory goes")
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args()

    base = args.dir or os.environ.get("TMPDIR") or "/tmp"
    os.makedirs(base, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix="postbote-pop3bench.", dir=base)
    os.chmod(tmp, 0o755)
    procs = []
    try:
        cert, key = os.path.join(tmp, "cert.pem"), os.path.join(tmp, "key.pem")
        r = subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                            "-nodes", "-days", "2", "-subj", "/CN=bench.test", "-keyout", key, "-out", cert],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        if r.returncode != 0:
            raise SetupError("openssl req: %s" % r.stdout.decode(errors="replace"))
        os.chmod(key, 0o644)
        log("making %d messages of %d octets" % (args.messages, args.size))
        msgs = make_messages(args.messages, args.size)
        pb, pb_port = start_postbote(args, tmp, cert, key, msgs)
        procs.append(pb)
        dc, dc_port = start_dovecot(args, tmp, cert, key, msgs)
        procs.append(dc)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        servers = {
            "postbote": (pb_port, lambda: cpu_seconds(pb.pid)),
            "dovecot": (dc_port, lambda: tree_cpu(dc.pid)),
        }
        mib = args.messages * args.size / (1 << 20)
        # A warm-up round each: both build their index of the Maildir
        # on the first login, and the files come into the page cache.
        for name, (port, _) in servers.items():
            secs, octets, tls = retrieve_all(port, ctx, msgs, 1)
            log("warm-up %-8s %6.3fs  %s  %d octets" % (name, secs, tls, octets))
        times = {n: [] for n in servers}
        cpus = {n: [] for n in servers}
        for r in range(args.rounds):
            order = list(servers) if r % 2 == 0 else list(servers)[::-1]
            for name in order:
                port, cpu = servers[name]
                c0 = cpu()
                secs, octets, _ = retrieve_all(port, ctx, msgs, 97)
                used = cpu() - c0
                times[name].append(secs)
                cpus[name].append(used)
                log("round %d %-8s %6.3fs  %6.1f MiB/s  server CPU %5.2fs" % (r + 1, name, secs, mib / secs, used))
        med = {n: statistics.median(times[n]) for n in servers}
        cpu_med = {n: statistics.median(cpus[n]) for n in servers}
        ratio = med["dovecot"] / med["postbote"]
        log("")
        log("median postbote %.3fs (%.1f MiB/s, server CPU %.2fs)" %
            (med["postbote"], mib / med["postbote"], cpu_med["postbote"]))
        log("median dovecot  %.3fs (%.1f MiB/s, server CPU %.2fs)" %
            (med["dovecot"], mib / med["dovecot"], cpu_med["dovecot"]))
        log("ratio dovecot/postbote time: %.3f (target >= %.2f): %s" %
            (ratio, args.target, "met" if ratio >= args.target else "NOT met"))
        return 0 if ratio >= args.target else 1
    except SetupError as e:
        print("pop3_retrieve: %s" % e, file=sys.stderr)
        return 2
    finally:
        for p in procs:
            stop(p)
        if args.keep:
            log("kept %s" % tmp)
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
