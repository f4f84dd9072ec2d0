#!/usr/bin/env bash
#
# SMTP receipt: messages accepted per second (250 after the end of data,
# durable on both sides), connect-to-250 latency and postbote's memory,
# postbote against a private Postfix instance that delivers to a Maildir on
# the same machine, in the same run. 1 KiB and 100 KiB messages, 1, 10 and
# 100 sessions at once, one message per connection.
#
#   bench/smtp_receipt.sh [--only postfix|postbote] [POSTBOTE_BIN]
#
# Load: bench/smtp_load (built with the project: cmake --build build --target
# smtp_load) measures every message's time from connect() to the 250 that
# answers its end of data; Postfix's smtp-source (Debian package postfix,
# installed here when missing) is run as well for a second opinion on
# throughput. Both send one message per connection, no pipelining.
#
# Environment (all optional):
#   POSTBOTE_BIN     the binary (default build/postbote; the argument wins)
#   ROUNDS           rounds; each measures every cell once (default 3)
#   SIZES            message sizes in bytes (default "1024 102400")
#   CONCURRENCY      sessions at once (default "1 10 100")
#   MSGS             messages per run for sizes up to 16 KiB (default 2000)
#   MSGS_LARGE       messages per run for larger sizes (default 500)
#   SECONDS_PER_RUN  no new connection after this many seconds (default 20)
#   WARMUP           messages per server before the rounds, unmeasured (default 300)
#   SMTP_SOURCE      1 = also run smtp-source after each smtp_load run (default 1)
#   POSTFIX_IN_FLOW_DELAY  Postfix's in_flow_delay (default: Postfix's own, 1s)
#   POSTBOTE_CONF_EXTRA    lines added to postbote's config file
#   DIR              where the temporary directory goes (default: the build
#                    directory, on the project's disk; /tmp may be a tmpfs)
#   NETNS            1 = run everything in a private network namespace with
#                    only a loopback interface, so that nothing can reach
#                    another machine, DNS included (default 1)
#   TARGET_RATIO     minimum postbote/Postfix messages/s at 1 KiB x 100 (default 2)
#   TARGET_P99       maximum postbote/Postfix p99 at 1 KiB x 100 (default 0.3333)
#   RSS_LIMIT_MB     postbote's peak resident memory must stay below (default 50)
#   DRAIN_DEADLINE   seconds to wait for accepted mail to reach the Maildirs (default 300)
#   KEEP_TMP=1       keep the temporary directory (configs, logs, Maildirs)
#
# Needs root (Postfix's master runs as root). Postfix runs as a private
# instance: its own config_directory, queue_directory and data_directory in
# the temporary directory, listening on 127.0.0.1 only; /etc/postfix is never
# read or written and the system instance is never started.
#
# Exit status: 0 when the target is met, 1 when it is not (or a server lost
# acknowledged mail), 2 when the setup fails. With --only, no target is
# judged and the status is 0 unless something fails.

set -euo pipefail
export LC_ALL=C

die() {
	echo "smtp_receipt: $*" >&2
	exit 2
}

ONLY=
ARGS=("$@")
while (($#)); do
	case $1 in
	--only)
		[[ $# -ge 2 ]] || die "--only needs postfix or postbote"
		ONLY=$2
		shift 2
		;;
	--only=*)
		ONLY=${1#--only=}
		shift
		;;
	-h | --help)
		sed -n '2,/^$/p' "$0" | sed 's/^# \{0,1\}//'
		exit 0
		;;
	*)
		POSTBOTE_BIN=$1
		shift
		;;
	esac
done
case $ONLY in
'' | postfix | postbote) ;;
*) die "--only takes postfix or postbote, not \"$ONLY\"" ;;
esac

TOP=$(cd "$(dirname "$0")/.." && pwd)
POSTBOTE_BIN=${POSTBOTE_BIN:-$TOP/build/postbote}
SMTP_LOAD=${SMTP_LOAD:-$TOP/build/bench/smtp_load}
ROUNDS=${ROUNDS:-3}
SIZES=${SIZES:-1024 102400}
CONCURRENCY=${CONCURRENCY:-1 10 100}
MSGS=${MSGS:-2000}
MSGS_LARGE=${MSGS_LARGE:-500}
SECONDS_PER_RUN=${SECONDS_PER_RUN:-20}
WARMUP=${WARMUP:-300}
SMTP_SOURCE=${SMTP_SOURCE:-1}
NETNS=${NETNS:-1}
TARGET_RATIO=${TARGET_RATIO:-2}
TARGET_P99=${TARGET_P99:-0.3333}
RSS_LIMIT_MB=${RSS_LIMIT_MB:-50}
DRAIN_DEADLINE=${DRAIN_DEADLINE:-300}
STARTUP_DEADLINE=${STARTUP_DEADLINE:-30}
BASE=${DIR:-$TOP/build}
RCPT=bench@bench.test
FROM=load@bench.test
HELO=load.bench.test

for n in "$ROUNDS" "$MSGS" "$MSGS_LARGE" "$SECONDS_PER_RUN" "$DRAIN_DEADLINE"; do
	[[ $n =~ ^[1-9][0-9]*$ ]] || die "ROUNDS, MSGS, MSGS_LARGE, SECONDS_PER_RUN and DRAIN_DEADLINE must be positive integers"
done
[[ $WARMUP =~ ^[0-9]+$ ]] || die "WARMUP must be a number"
for n in $SIZES $CONCURRENCY; do
	[[ $n =~ ^[1-9][0-9]*$ ]] || die "SIZES and CONCURRENCY must be positive integers"
done

TARGETS=()
[[ $ONLY == postbote ]] || TARGETS+=(postfix)
[[ $ONLY == postfix ]] || TARGETS+=(postbote)
want() { [[ " ${TARGETS[*]} " == *" $1 "* ]]; }

# --- Before the private network namespace: checks and the package ----------

[[ $EUID -eq 0 ]] || die "run as root (Postfix's master needs it)"
[[ -x $SMTP_LOAD ]] || die "$SMTP_LOAD missing: cmake -S . -B build && cmake --build build --target smtp_load"
if want postbote; then
	[[ -x $POSTBOTE_BIN ]] || die "$POSTBOTE_BIN: not an executable (build first, or pass the path)"
	POSTBOTE_BIN=$(cd "$(dirname "$POSTBOTE_BIN")" && pwd)/$(basename "$POSTBOTE_BIN")
fi
SMTP_LOAD=$(cd "$(dirname "$SMTP_LOAD")" && pwd)/$(basename "$SMTP_LOAD")

# Install Postfix from Debian's archive when it is missing, with debconf's
# "No configuration" (no /etc/postfix/main.cf, so the system instance cannot
# start). If installing did start the system instance anyway, stop it again.
if [[ -z ${SMTP_BENCH_IN_NETNS:-} ]] && { want postfix || [[ $SMTP_SOURCE == 1 ]]; } &&
	! [[ -x /usr/sbin/postfix && -x /usr/sbin/smtp-source ]]; then
	command -v apt-get >/dev/null || die "Postfix is not installed and apt-get is missing"
	was_running=0
	if [[ -x /usr/sbin/postfix && -f /etc/postfix/main.cf ]] && postfix status >/dev/null 2>&1; then
		was_running=1
	fi
	echo "installing Debian's postfix package (debconf: No configuration) ..."
	echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
	if ! DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends postfix >/dev/null 2>&1; then
		apt-get update -q >/dev/null 2>&1 || true
		DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends postfix >/dev/null ||
			die "apt-get install postfix failed"
	fi
	if ((was_running == 0)) && [[ -f /etc/postfix/main.cf ]] && postfix status >/dev/null 2>&1; then
		echo "the package started the system Postfix instance; stopping it"
		postfix stop >/dev/null 2>&1 || true
	fi
fi
if want postfix || [[ $SMTP_SOURCE == 1 ]]; then
	[[ -x /usr/sbin/postfix && -x /usr/sbin/smtp-source ]] || die "Postfix is not installed"
fi

# Re-run inside a network namespace of our own: only lo, so no packet (a DNS
# query included) can leave the machine whatever either server tries.
if [[ $NETNS == 1 && -z ${SMTP_BENCH_IN_NETNS:-} ]]; then
	if ! command -v unshare >/dev/null || ! command -v ip >/dev/null; then
		die "unshare and ip (util-linux, iproute2) are needed for NETNS=1; NETNS=0 runs without"
	fi
	export SMTP_BENCH_IN_NETNS=1
	exec unshare --net -- "$BASH" "$(cd "$(dirname "$0")" && pwd)/$(basename "$0")" "${ARGS[@]}"
fi
if [[ -n ${SMTP_BENCH_IN_NETNS:-} ]]; then
	ip link set lo up || die "cannot bring up lo in the network namespace"
fi

# --- The temporary directory and the clean-up ---------------------------------

mkdir -p "$BASE"
WORK=$(mktemp -d "$BASE/bench-smtp.XXXXXX")
chmod 755 "$WORK" # Postfix's daemons (user postfix) and virtual (nobody) look inside
PF=$WORK/postfix
PB=$WORK/postbote
PF_MASTER_PID=
PB_PID=

# shellcheck disable=SC2317  # called from the EXIT trap
postfix_pids() { # every process of our private instance, by its MAIL_CONFIG
	local f pid
	for f in /proc/[0-9]*/environ; do
		pid=${f#/proc/}
		pid=${pid%/environ}
		if { tr '\0' '\n' <"$f"; } 2>/dev/null | grep -qxF "MAIL_CONFIG=$PF/etc"; then
			echo "$pid"
		fi
	done
}

alive() { # a process that exists and is not a zombie
	local st
	st=$(awk '{ print $3 }' "/proc/$1/stat" 2>/dev/null) || return 1
	[[ -n $st && $st != Z ]]
}

# shellcheck disable=SC2317  # called from the EXIT trap
cleanup() {
	local pid i
	set +e
	if [[ -n $PB_PID ]]; then
		kill "$PB_PID" 2>/dev/null
		for ((i = 0; i < 300; i++)); do
			alive "$PB_PID" || break
			sleep 0.05
		done
		alive "$PB_PID" && kill -KILL "$PB_PID" 2>/dev/null
		wait "$PB_PID" 2>/dev/null
	fi
	if [[ -d $PF/etc ]]; then
		if [[ -n $PF_MASTER_PID ]] && alive "$PF_MASTER_PID"; then
			timeout 30 postfix -c "$PF/etc" stop >/dev/null 2>&1
			for ((i = 0; i < 200; i++)); do
				alive "$PF_MASTER_PID" || break
				sleep 0.05
			done
		fi
		# Anything of our instance still running (an abort, a crash) is ours.
		for pid in $(postfix_pids); do
			kill -KILL "$pid" 2>/dev/null
		done
	fi
	if [[ ${KEEP_TMP:-0} == 1 ]]; then
		echo "kept $WORK"
	else
		rm -rf "$WORK"
	fi
}
trap cleanup EXIT
trap 'exit 2' INT TERM

free_port() {
	python3 -c 'import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])
s.close()'
}

wait_port() { # name port pidcheck-fn log
	local name=$1 port=$2 check=$3 log=$4
	local deadline=$((SECONDS + STARTUP_DEADLINE))
	while ((SECONDS < deadline)); do
		if ! $check; then
			echo "smtp_receipt: $name exited before listening; its log:" >&2
			tail -n 30 "$log" | sed 's/^/    /' >&2
			exit 2
		fi
		if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
			return 0
		fi
		sleep 0.05
	done
	echo "smtp_receipt: $name not listening on 127.0.0.1:$port after ${STARTUP_DEADLINE}s; its log:" >&2
	tail -n 30 "$log" | sed 's/^/    /' >&2
	exit 2
}

count_maildir() { # files in new/ and cur/ under a Maildir tree
	find "$1" -type f \( -path '*/new/*' -o -path '*/cur/*' \) 2>/dev/null | wc -l
}

# --- Postfix: a private instance delivering to a Maildir ----------------------

PF_PORT=
PF_EXPECT=0 # messages Postfix acknowledged with 250 so far
pf_alive() { [[ -n $PF_MASTER_PID ]] && alive "$PF_MASTER_PID"; }

start_postfix() {
	mkdir -p "$PF/etc" "$PF/spool" "$PF/data" "$PF/mail"
	chown postfix:postfix "$PF/data"
	chmod 700 "$PF/data"
	chown nobody:nogroup "$PF/mail"
	: >"$PF/maillog"
	PF_PORT=$(free_port)
	# Only what a private, local-delivery-only instance needs. Everything
	# not set here is Postfix's default (compatibility level 3.6), including
	# the fsync of the queue file before the 250 and in_flow_delay.
	cat >"$PF/etc/main.cf" <<EOF
compatibility_level = 3.6
queue_directory = $PF/spool
data_directory = $PF/data
mail_owner = postfix
setgid_group = postdrop
myhostname = postfix.bench.test
mydomain = bench.test
myorigin = \$myhostname
mydestination =
relay_domains =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
# no DNS anywhere: not for the client's name, not for addresses
smtpd_peername_lookup = no
disable_dns_lookups = yes
smtp_dns_support_level = disabled
alias_maps =
alias_database =
local_recipient_maps =
biff = no
append_dot_mydomain = no
# 100 sessions plus the delivery agents never wait for a process slot
default_process_limit = 200
virtual_mailbox_domains = bench.test
virtual_mailbox_base = $PF/mail
virtual_mailbox_maps = texthash:$PF/etc/vmailbox
virtual_uid_maps = static:65534
virtual_gid_maps = static:65534
maillog_file = $PF/maillog
maillog_file_prefixes = $PF
EOF
	if [[ -n ${POSTFIX_IN_FLOW_DELAY:-} ]]; then
		echo "in_flow_delay = $POSTFIX_IN_FLOW_DELAY" >>"$PF/etc/main.cf"
	fi
	# "bench.test/bench/": the trailing slash makes it a Maildir.
	echo "$RCPT bench.test/bench/" >"$PF/etc/vmailbox"
	cat >"$PF/etc/master.cf" <<EOF
127.0.0.1:$PF_PORT inet n - n - - smtpd
pickup     unix  n - n 60    1 pickup
cleanup    unix  n - n -     0 cleanup
qmgr       unix  n - n 300   1 qmgr
rewrite    unix  - - n -     - trivial-rewrite
bounce     unix  - - n -     0 bounce
defer      unix  - - n -     0 bounce
trace      unix  - - n -     0 bounce
verify     unix  - - n -     1 verify
flush      unix  n - n 1000? 0 flush
proxymap   unix  - - n -     - proxymap
proxywrite unix  - - n -     1 proxymap
showq      unix  n - n -     - showq
error      unix  - - n -     - error
retry      unix  - - n -     - error
discard    unix  - - n -     - discard
virtual    unix  - n n -     - virtual
anvil      unix  - - n -     1 anvil
scache     unix  - - n -     1 scache
postlog    unix-dgram n - n - 1 postlogd
EOF
	postfix -c "$PF/etc" check >>"$PF/maillog" 2>&1 || {
		tail -n 20 "$PF/maillog" >&2
		die "postfix check failed"
	}
	postfix -c "$PF/etc" start >>"$PF/maillog" 2>&1 || {
		tail -n 20 "$PF/maillog" >&2
		die "postfix start failed"
	}
	PF_MASTER_PID=$(tr -d ' \n' <"$PF/spool/pid/master.pid" 2>/dev/null || true)
	[[ -n $PF_MASTER_PID ]] || die "Postfix wrote no master.pid"
	wait_port postfix "$PF_PORT" pf_alive "$PF/maillog"
}

postfix_queue_count() {
	find "$PF/spool/incoming" "$PF/spool/active" "$PF/spool/deferred" "$PF/spool/hold" \
		"$PF/spool/maildrop" -type f 2>/dev/null | wc -l
}

# --- postbote ------------------------------------------------------------------

PB_PORT=
PB_EXPECT=0
pb_alive() { [[ -n $PB_PID ]] && alive "$PB_PID"; }

start_postbote() {
	mkdir -p "$PB/data"
	PB_PORT=$(free_port)
	while [[ $PB_PORT == "$PF_PORT" ]]; do PB_PORT=$(free_port); done
	{
		echo "data_dir = $PB/data"
		echo "hostname = postbote.bench.test"
		echo "domain = bench.test"
		echo "listen = smtp 127.0.0.1:$PB_PORT"
		echo "log_level = warn"
		echo "max_connections = 10000"
		echo "max_connections_per_ip = 10000"
		if [[ -n ${POSTBOTE_CONF_EXTRA:-} ]]; then printf '%s\n' "$POSTBOTE_CONF_EXTRA"; fi
	} >"$PB/postbote.conf"
	"$POSTBOTE_BIN" check-config -c "$PB/postbote.conf" >"$PB/check.log" 2>&1 || {
		cat "$PB/check.log" >&2
		die "postbote check-config failed"
	}
	echo "bench-password" | "$POSTBOTE_BIN" user add "$RCPT" -c "$PB/postbote.conf" --password-stdin \
		>"$PB/user.log" 2>&1 || {
		cat "$PB/user.log" >&2
		die "postbote user add failed"
	}
	"$POSTBOTE_BIN" serve -c "$PB/postbote.conf" </dev/null >"$PB/postbote.log" 2>&1 &
	PB_PID=$!
	wait_port postbote "$PB_PORT" pb_alive "$PB/postbote.log"
}

# --- Measurements ----------------------------------------------------------------

port_of() { if [[ $1 == postfix ]]; then echo "$PF_PORT"; else echo "$PB_PORT"; fi; }
maildir_of() { if [[ $1 == postfix ]]; then echo "$PF/mail"; else echo "$PB/data/mail"; fi; }
expect_of() { if [[ $1 == postfix ]]; then echo "$PF_EXPECT"; else echo "$PB_EXPECT"; fi; }
add_expect() {
	if [[ $1 == postfix ]]; then PF_EXPECT=$((PF_EXPECT + $2)); else PB_EXPECT=$((PB_EXPECT + $2)); fi
}

field() { # field "RESULT a=1 b=2" b -> 2
	local kv
	for kv in $1; do
		if [[ $kv == "$2="* ]]; then
			echo "${kv#*=}"
			return
		fi
	done
	echo 0
}

LOST=0 # set when a server acknowledged mail that never reached its Maildir

# Wait until every acknowledged message is a file in the target's Maildir
# (and, for Postfix, its queue is empty), so that nothing counts that was
# not really delivered, and so that one run's deliveries do not load the next.
wait_delivered() {
	local target=$1 expect have queued=0 deadline=$((SECONDS + DRAIN_DEADLINE)) dir
	expect=$(expect_of "$target")
	dir=$(maildir_of "$target")
	while :; do
		have=$(count_maildir "$dir")
		[[ $target == postfix ]] && queued=$(postfix_queue_count)
		if ((have == expect && queued == 0)); then
			return 0
		fi
		if ((have > expect)); then
			echo "smtp_receipt: $target: $have messages in the Maildir, but only $expect were acknowledged" >&2
			LOST=1
			add_expect "$target" $((have - expect))
			return 1
		fi
		if [[ $target == postfix ]] && [[ -n $(find "$PF/spool/deferred" -type f 2>/dev/null | head -n1) ]]; then
			echo "smtp_receipt: Postfix deferred mail; its log:" >&2
			grep -E 'status=deferred|warning|fatal|error' "$PF/maillog" | tail -n 10 | sed 's/^/    /' >&2
			exit 2
		fi
		if ((SECONDS >= deadline)); then
			echo "smtp_receipt: $target acknowledged $expect messages, but $have are in its Maildir" \
				"after ${DRAIN_DEADLINE}s (queue: $queued)" >&2
			LOST=1
			return 1
		fi
		sleep 0.1
	done
}

declare -A RATE P50 P99 SRC FAILS RSSMAX
declare -A SRC_BROKEN=([postfix]=0 [postbote]=0)

# One smtp_load run. Prints a line and records the figures unless $5 says warm-up.
run_load() {
	local target=$1 size=$2 conc=$3 n=$4 label=$5 out line pidopt=() key
	key="$target:$size:$conc"
	[[ $target == postbote ]] && pidopt=(-P "$PB_PID")
	out=$("$SMTP_LOAD" -c "$conc" -n "$n" -t "$SECONDS_PER_RUN" -s "$size" -f "$FROM" -r "$RCPT" \
		-H "$HELO" "${pidopt[@]}" 127.0.0.1 "$(port_of "$target")" 2>&1) || true
	line=$(grep '^RESULT ' <<<"$out" || true)
	[[ -n $line ]] || die "smtp_load printed no result: $out"
	local acc failed rate p50 p99 rss
	acc=$(field "$line" accepted)
	failed=$(field "$line" failed)
	rate=$(field "$line" rate)
	p50=$(field "$line" p50_ms)
	p99=$(field "$line" p99_ms)
	rss=$(field "$line" rss_max_kb)
	add_expect "$target" "$acc"
	printf '%-10s %-8s %6dB x%-4d smtp_load   %8.1f msg/s  p50 %8.2f ms  p99 %8.2f ms  (%d accepted, %d failed%s)\n' \
		"$label" "$target" "$size" "$conc" "$rate" "$p50" "$p99" "$acc" "$failed" \
		"$([[ $target == postbote ]] && echo ", RSS max $((rss / 1024)) MB")"
	grep '^FAIL ' <<<"$out" | sed 's/^/             /' || true
	if [[ $label != warm-up ]]; then
		RATE[$key]="${RATE[$key]:-} $rate"
		if ((acc > 0)); then # no latency without an accepted message
			P50[$key]="${P50[$key]:-} $p50"
			P99[$key]="${P99[$key]:-} $p99"
		fi
		FAILS[$key]=$((${FAILS[$key]:-0} + failed))
		if [[ $target == postbote ]] && ((rss > ${RSSMAX[$key]:-0})); then RSSMAX[$key]=$rss; fi
	fi
	wait_delivered "$target" || true
	LAST_RATE=$rate
}

now() { echo "$EPOCHREALTIME"; }

# smtp-source with as many messages as smtp_load managed in SECONDS_PER_RUN
# (at least 50, at most the run's count), so that it is bounded in time as
# well as in count (smtp-source itself has no time limit).
run_source() {
	local target=$1 size=$2 conc=$3 n=$4 label=$5 key count payload t0 t1 rate rc
	key="$target:$size:$conc"
	[[ $SMTP_SOURCE == 1 && ${SRC_BROKEN[$target]} == 0 ]] || return 0
	count=$(awk -v r="$LAST_RATE" -v s="$SECONDS_PER_RUN" -v n="$n" \
		'BEGIN { c = int(r * s); if (c > n) c = n; if (c < 50) c = (n < 50 ? n : 50); print c }')
	# -l is the payload without smtp-source's header lines (From, To, Date,
	# Message-Id, Subject: about 160 bytes), so the total is about $size.
	payload=$((size > 400 ? size - 160 : 240))
	t0=$(now)
	rc=0
	timeout $((SECONDS_PER_RUN * 3 + 30)) smtp-source -s "$conc" -m "$count" -l "$payload" \
		-f "$FROM" -t "$RCPT" -M "$HELO" -S "smtp-source bench" "127.0.0.1:$(port_of "$target")" \
		>"$WORK/smtp-source.out" 2>&1 || rc=$?
	t1=$(now)
	if ((rc != 0)); then
		printf '%-10s %-8s %6dB x%-4d smtp-source failed (status %d): %s\n' "$label" "$target" \
			"$size" "$conc" "$rc" "$(head -c 300 "$WORK/smtp-source.out" | tr '\n' ' ')"
		printf '%-10s %-8s smtp-source is not run on %s again\n' "" "" "$target"
		SRC_BROKEN[$target]=1
		# How many it got in before failing is unknown: take the Maildir's word.
		local settle=$((SECONDS + 10)) before after
		before=-1
		after=$(count_maildir "$(maildir_of "$target")")
		while ((after != before && SECONDS < settle)); do
			sleep 1
			before=$after
			after=$(count_maildir "$(maildir_of "$target")")
		done
		add_expect "$target" $((after - $(expect_of "$target")))
		wait_delivered "$target" || true
		return 0
	fi
	rate=$(awk -v c="$count" -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", c / (b - a) }')
	add_expect "$target" "$count"
	printf '%-10s %-8s %6dB x%-4d smtp-source %8.1f msg/s  (%d messages)\n' "$label" "$target" "$size" \
		"$conc" "$rate" "$count"
	[[ $label == warm-up ]] || SRC[$key]="${SRC[$key]:-} $rate"
	wait_delivered "$target" || true
}

median() {
	tr ' ' '\n' | grep -v '^$' | sort -g | awk '{ v[NR] = $1 } END {
		if (NR == 0) { print "-"; exit }
		if (NR % 2) printf "%.2f\n", v[(NR + 1) / 2]
		else printf "%.2f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "-" || b == "-" || b + 0 == 0) print "-"; else printf "%.2f", a / b }'; }

msgs_for() { if (($1 > 16384)); then echo "$MSGS_LARGE"; else echo "$MSGS"; fi; }

# --- Run -------------------------------------------------------------------------

want postfix && start_postfix
want postbote && start_postbote

echo "smtp_receipt: one message per connection (connect, EHLO, MAIL, RCPT, DATA, text, 250, QUIT)"
want postfix && echo "postfix:   $(postconf -c "$PF/etc" -h mail_version) private instance on 127.0.0.1:$PF_PORT," \
	"virtual(8) to a Maildir; in_flow_delay = $(postconf -c "$PF/etc" -h in_flow_delay)"
want postbote && echo "postbote:  $POSTBOTE_BIN on 127.0.0.1:$PB_PORT (smtp listener)"
echo "runs:      $ROUNDS rounds; sizes: $SIZES bytes; sessions: $CONCURRENCY;" \
	"$MSGS messages (> 16 KiB: $MSGS_LARGE) or ${SECONDS_PER_RUN}s per run"
[[ -n ${SMTP_BENCH_IN_NETNS:-} ]] && echo "network:   a private network namespace with only lo"
echo "work dir:  $WORK"
echo

maxconc=0
for c in $CONCURRENCY; do ((c > maxconc)) && maxconc=$c; done
if ((WARMUP > 0)); then
	for t in "${TARGETS[@]}"; do
		run_load "$t" 1024 "$maxconc" "$WARMUP" warm-up
	done
fi

for ((r = 1; r <= ROUNDS; r++)); do
	# Alternate who goes first so drift hits both alike.
	order=("${TARGETS[@]}")
	if ((r % 2 == 0 && ${#TARGETS[@]} == 2)); then order=(postbote postfix); fi
	for size in $SIZES; do
		n=$(msgs_for "$size")
		for conc in $CONCURRENCY; do
			for t in "${order[@]}"; do
				run_load "$t" "$size" "$conc" "$n" "round $r/$ROUNDS"
				run_source "$t" "$size" "$conc" "$n" "round $r/$ROUNDS"
			done
		done
	done
done

# postbote's peak: the kernel's VmHWM at the end, or the largest VmRSS
# smtp_load saw, whichever is larger (VmHWM is not updated on every change).
PB_HWM=0
if want postbote && pb_alive; then
	PB_HWM=$(awk '/^VmHWM:/ { print $2 }' "/proc/$PB_PID/status")
	for k in "${!RSSMAX[@]}"; do
		if ((RSSMAX[$k] > PB_HWM)); then PB_HWM=${RSSMAX[$k]}; fi
	done
fi

# --- Summary ---------------------------------------------------------------------

echo
echo "medians over $ROUNDS rounds; latency = connect to the 250 after the end of data"
printf '%-9s %7s %5s %10s %9s %9s %12s %7s %9s\n' target size conc "msg/s" "p50 ms" "p99 ms" \
	"src msg/s" failed "RSS MB"
for t in "${TARGETS[@]}"; do
	for size in $SIZES; do
		for conc in $CONCURRENCY; do
			k="$t:$size:$conc"
			rss=-
			[[ $t == postbote ]] && rss=$(awk -v k="${RSSMAX[$k]:-0}" 'BEGIN { printf "%.1f", k / 1024 }')
			printf '%-9s %7s %5s %10s %9s %9s %12s %7s %9s\n' "$t" "$size" "$conc" \
				"$(median <<<"${RATE[$k]:-}")" "$(median <<<"${P50[$k]:-}")" "$(median <<<"${P99[$k]:-}")" \
				"$(median <<<"${SRC[$k]:-}")" "${FAILS[$k]:-0}" "$rss"
		done
	done
done
if want postbote; then
	printf 'postbote peak resident memory over the whole run (VmHWM or sampled VmRSS): %.1f MB\n' \
		"$(awk -v k="$PB_HWM" 'BEGIN { print k / 1024 }')"
fi
if want postfix; then
	echo "Postfix Maildir: $(count_maildir "$PF/mail") messages (acknowledged: $PF_EXPECT)"
	ifd=$(postconf -c "$PF/etc" -h in_flow_delay)
	if [[ $ifd != 0 && $ifd != 0s ]]; then
		echo "note: Postfix's in_flow_delay is $ifd (its default): when mail arrives faster than it is" \
			"delivered, smtpd waits up to $ifd before accepting the next message, which shows in" \
			"Postfix's p99 at high concurrency. POSTFIX_IN_FLOW_DELAY=0 measures without the pause."
	fi
fi
if want postbote; then
	echo "postbote Maildir: $(count_maildir "$PB/data/mail") messages (acknowledged: $PB_EXPECT)"
fi

status=0
((LOST == 0)) || {
	echo "a server acknowledged mail that is not in its Maildir (see above)"
	status=1
}
want postfix && ! pf_alive && {
	echo "Postfix died during the run"
	status=2
}
want postbote && ! pb_alive && {
	echo "postbote died during the run; its log:"
	tail -n 20 "$PB/postbote.log" | sed 's/^/    /'
	status=1
}

for k in "${!FAILS[@]}"; do
	if ((FAILS[$k] > 0 && status == 0)); then
		echo "some messages were not accepted (see the FAIL lines above)"
		status=1
		break
	fi
done

if [[ -n $ONLY ]]; then
	echo "(--only $ONLY: no comparison, no target judged)"
	exit "$status"
fi

echo
echo "ratios postbote/Postfix (medians)"
printf '%7s %5s %10s %10s %10s %12s\n' size conc "msg/s" "p50" "p99" "src msg/s"
for size in $SIZES; do
	for conc in $CONCURRENCY; do
		a="postbote:$size:$conc"
		b="postfix:$size:$conc"
		printf '%7s %5s %10s %10s %10s %12s\n' "$size" "$conc" \
			"$(ratio "$(median <<<"${RATE[$a]:-}")" "$(median <<<"${RATE[$b]:-}")")" \
			"$(ratio "$(median <<<"${P50[$a]:-}")" "$(median <<<"${P50[$b]:-}")")" \
			"$(ratio "$(median <<<"${P99[$a]:-}")" "$(median <<<"${P99[$b]:-}")")" \
			"$(ratio "$(median <<<"${SRC[$a]:-}")" "$(median <<<"${SRC[$b]:-}")")"
	done
done

# The target: 1 KiB x 100 sessions (or the largest measured concurrency at
# the smallest size, when SIZES/CONCURRENCY are changed).
tsize=1024
[[ " $SIZES " == *" 1024 "* ]] || tsize=$(tr ' ' '\n' <<<"$SIZES" | grep -v '^$' | sort -n | head -n1)
a="postbote:$tsize:$maxconc"
b="postfix:$tsize:$maxconc"
rr=$(ratio "$(median <<<"${RATE[$a]:-}")" "$(median <<<"${RATE[$b]:-}")")
pr=$(ratio "$(median <<<"${P99[$a]:-}")" "$(median <<<"${P99[$b]:-}")")
rss_mb=$(awk -v k="$PB_HWM" 'BEGIN { printf "%.1f", k / 1024 }')
echo
ok=1
verdict() { # label, then an awk condition on a (the measured value)
	if awk -v a="$2" "BEGIN { exit !(a != \"-\" && ($3)) }"; then
		echo "  $1: met"
	else
		echo "  $1: NOT met"
		ok=0
	fi
}
echo "target at ${tsize} bytes x $maxconc sessions:"
verdict "messages/s ratio $rr >= $TARGET_RATIO" "$rr" "a + 0 >= $TARGET_RATIO"
verdict "p99 ratio $pr <= $TARGET_P99" "$pr" "a + 0 > 0 && a + 0 <= $TARGET_P99"
verdict "postbote peak RSS $rss_mb MB < $RSS_LIMIT_MB MB" "$rss_mb" "a + 0 > 0 && a + 0 < $RSS_LIMIT_MB"
verdict "no failed messages at postbote (${FAILS[$a]:-0})" "${FAILS[$a]:-0}" "a + 0 == 0"
if ((status == 0 && ok == 0)); then status=1; fi
exit "$status"
