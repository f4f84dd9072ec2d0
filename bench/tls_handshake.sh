#!/usr/bin/env bash
#
# TLS handshake rate: postbote's implicit-TLS listener against
# `openssl s_server` with the same certificate, measured by
# `openssl s_time -new` (full handshakes, no resumption, no payload).
#
#   bench/tls_handshake.sh [POSTBOTE_BIN]
#
# Environment (all optional):
#   POSTBOTE_BIN     the binary (default build/postbote; the argument wins)
#   ROUNDS           rounds per protocol, peers alternating (default 5)
#   SECONDS_PER_RUN  length of one s_time run in seconds (default 5)
#   PROTOCOLS        space-separated s_time protocol flags (default "tls1_3";
#                    "tls1_3 tls1_2" measures both)
#   PARALLEL         s_time clients run at once per measurement (default 1;
#                    raise it to saturate the servers rather than the client)
#   TARGET           minimum ratio postbote/s_server (default 0.90)
#   KEEP_TMP=1       keep the temporary directory (logs, config) afterwards
#
# Loopback only. Exit status: 0 when every protocol's median ratio meets
# TARGET, 1 when one does not, 2 when the setup fails.

set -euo pipefail
export LC_ALL=C  # a decimal point, not a comma, in times and rates

POSTBOTE_BIN=${1:-${POSTBOTE_BIN:-build/postbote}}
ROUNDS=${ROUNDS:-5}
SECONDS_PER_RUN=${SECONDS_PER_RUN:-5}
PROTOCOLS=${PROTOCOLS:-tls1_3}
PARALLEL=${PARALLEL:-1}
TARGET=${TARGET:-0.90}
STARTUP_DEADLINE=${STARTUP_DEADLINE:-20}  # seconds for both servers to listen

die() {
	echo "tls_handshake: $*" >&2
	exit 2
}

command -v openssl >/dev/null || die "openssl not found"
[[ -x $POSTBOTE_BIN ]] || die "$POSTBOTE_BIN: not an executable (build first, or pass the path)"
POSTBOTE_BIN=$(cd "$(dirname "$POSTBOTE_BIN")" && pwd)/$(basename "$POSTBOTE_BIN")
for n in "$ROUNDS" "$SECONDS_PER_RUN" "$PARALLEL"; do
	[[ $n =~ ^[1-9][0-9]*$ ]] || die "ROUNDS, SECONDS_PER_RUN and PARALLEL must be positive integers"
done

TMP=$(mktemp -d "${TMPDIR:-/tmp}/postbote-tlsbench.XXXXXX")
PIDS=()

# shellcheck disable=SC2317  # called from the EXIT trap
cleanup() {
	local pid
	for pid in "${PIDS[@]}"; do
		kill "$pid" 2>/dev/null || true
	done
	for pid in "${PIDS[@]}"; do
		wait "$pid" 2>/dev/null || true
	done
	if [[ ${KEEP_TMP:-0} == 1 ]]; then
		echo "kept $TMP"
	else
		rm -rf "$TMP"
	fi
}
trap cleanup EXIT
trap 'exit 2' INT TERM

# A loopback port nobody listens on: ask the kernel when python3 is around,
# otherwise probe random high ports.
free_port() {
	if command -v python3 >/dev/null; then
		python3 -c 'import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])
s.close()'
		return
	fi
	local port tries
	for ((tries = 0; tries < 100; tries++)); do
		port=$((20000 + RANDOM % 40000))
		if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
			echo "$port"
			return
		fi
	done
	die "no free port found"
}

# Wait until something accepts on the port, failing early if the server
# process has died. Polls with a deadline; never a fixed sleep.
wait_port() {
	local name=$1 port=$2 pid=$3 log=$4
	local deadline=$((SECONDS + STARTUP_DEADLINE))
	while ((SECONDS < deadline)); do
		if ! kill -0 "$pid" 2>/dev/null; then
			echo "tls_handshake: $name exited before listening; its log:" >&2
			sed 's/^/    /' "$log" >&2
			exit 2
		fi
		if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
			return 0
		fi
		sleep 0.05
	done
	echo "tls_handshake: $name not listening on 127.0.0.1:$port after ${STARTUP_DEADLINE}s; its log:" >&2
	sed 's/^/    /' "$log" >&2
	exit 2
}

# One certificate for both: ECDSA P-256, as postbote's self-signed default.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
	-keyout "$TMP/key.pem" -out "$TMP/cert.pem" -days 30 -subj /CN=localhost \
	-addext "subjectAltName=DNS:localhost,IP:127.0.0.1" >"$TMP/req.log" 2>&1 ||
	die "openssl req failed: $(cat "$TMP/req.log")"

PORT_SSL=$(free_port)
openssl s_server -accept "127.0.0.1:$PORT_SSL" -cert "$TMP/cert.pem" -key "$TMP/key.pem" \
	-naccept 1000000000 -quiet -www </dev/null >"$TMP/s_server.log" 2>&1 &
PIDS+=($!)
PID_SSL=$!

PORT_PB=$(free_port)
while [[ $PORT_PB == "$PORT_SSL" ]]; do
	PORT_PB=$(free_port)
done
mkdir -p "$TMP/data"
cat >"$TMP/postbote.conf" <<EOF
data_dir = $TMP/data
hostname = localhost
domain = localhost
listen = imaps 127.0.0.1:$PORT_PB
tls_cert = $TMP/cert.pem
tls_key = $TMP/key.pem
log_level = warn
max_connections_per_ip = 100000
max_connections = 100000
EOF
"$POSTBOTE_BIN" serve -c "$TMP/postbote.conf" </dev/null >"$TMP/postbote.log" 2>&1 &
PIDS+=($!)
PID_PB=$!

wait_port "openssl s_server" "$PORT_SSL" "$PID_SSL" "$TMP/s_server.log"
wait_port postbote "$PORT_PB" "$PID_PB" "$TMP/postbote.log"

# What each peer negotiates, so that the comparison is like for like:
# s_client prints "New, TLSv1.3, Cipher is TLS_AES_256_GCM_SHA384".
negotiated() {
	local port=$1 proto=$2 line
	line=$(openssl s_client -connect "127.0.0.1:$port" "-$proto" -servername localhost \
		</dev/null 2>/dev/null | sed -n 's/^New, \([^,]*\), Cipher is \(.*\)$/\1 \2/p' | head -n1 || true)
	echo "${line:-handshake failed}"
}

now() {
	if [[ -n ${EPOCHREALTIME:-} ]]; then
		echo "$EPOCHREALTIME"
	else
		date +%s.%N
	fi
}

# One measurement: PARALLEL s_time clients for SECONDS_PER_RUN seconds;
# prints the summed rate in handshakes per second. The count comes from
# s_time's "N connections in T real seconds" line, but T is whole seconds
# (a 5 s run may really last 4.01 s), so the time is each s_time process's
# own wall clock, taken here.
measure() {
	local port=$1 proto=$2 i
	local outs=()
	local pids=()
	for ((i = 0; i < PARALLEL; i++)); do
		outs+=("$TMP/s_time.$i.out")
		(
			t0=$(now)
			openssl s_time -connect "127.0.0.1:$port" -new -time "$SECONDS_PER_RUN" "-$proto" \
				</dev/null >"${outs[i]}" 2>&1 || true
			t1=$(now)
			echo "wallclock $t0 $t1" >>"${outs[i]}"
		) &
		pids+=($!)
	done
	for i in "${pids[@]}"; do
		wait "$i" || true
	done
	local f line wall total=0 ok=0
	for f in "${outs[@]}"; do
		line=$(grep -E '^[0-9]+ connections in [0-9.]+ real seconds' "$f" | tail -n1 || true)
		wall=$(awk '/^wallclock / { printf "%.6f", $3 - $2 }' "$f")
		if [[ -z $line || -z $wall ]]; then
			echo "tls_handshake: s_time against port $port printed no result:" >&2
			sed 's/^/    /' "$f" >&2
			continue
		fi
		total=$(awk -v acc="$total" -v wall="$wall" '{ printf "%.2f", acc + (wall > 0 ? $1 / wall : 0) }' <<<"$line")
		ok=$((ok + 1))
	done
	((ok > 0)) || die "no s_time result from port $port"
	echo "$total"
}

median() {
	sort -g | awk '{ v[NR] = $1 } END {
		if (NR == 0) { print 0; exit }
		if (NR % 2) printf "%.2f\n", v[(NR + 1) / 2]
		else printf "%.2f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

echo "postbote:      $POSTBOTE_BIN (127.0.0.1:$PORT_PB, imaps)"
echo "openssl:       $(openssl version) s_server (127.0.0.1:$PORT_SSL)"
echo "runs:          $ROUNDS rounds x ${SECONDS_PER_RUN}s, $PARALLEL client(s) at once, protocols: $PROTOCOLS"

status=0
for proto in $PROTOCOLS; do
	echo
	echo "== $proto"
	echo "negotiated:    s_server: $(negotiated "$PORT_SSL" "$proto")"
	echo "               postbote: $(negotiated "$PORT_PB" "$proto")"
	rates_ssl=()
	rates_pb=()
	for ((r = 1; r <= ROUNDS; r++)); do
		# Alternate who goes first so drift (CPU clocks, heat) hits both.
		if ((r % 2)); then
			a=$(measure "$PORT_SSL" "$proto")
			b=$(measure "$PORT_PB" "$proto")
		else
			b=$(measure "$PORT_PB" "$proto")
			a=$(measure "$PORT_SSL" "$proto")
		fi
		rates_ssl+=("$a")
		rates_pb+=("$b")
		printf 'round %d/%d:   s_server %10.2f/s   postbote %10.2f/s\n' "$r" "$ROUNDS" "$a" "$b"
	done
	med_ssl=$(printf '%s\n' "${rates_ssl[@]}" | median)
	med_pb=$(printf '%s\n' "${rates_pb[@]}" | median)
	ratio=$(awk -v p="$med_pb" -v s="$med_ssl" 'BEGIN { if (s > 0) printf "%.3f", p / s; else print "0" }')
	verdict=$(awk -v r="$ratio" -v t="$TARGET" 'BEGIN { print (r >= t) ? "ok" : "BELOW TARGET" }')
	printf 'median:        s_server %10.2f/s   postbote %10.2f/s\n' "$med_ssl" "$med_pb"
	printf 'ratio:         postbote/s_server = %s (target >= %s): %s\n' "$ratio" "$TARGET" "$verdict"
	[[ $verdict == ok ]] || status=1
done

# Both servers must still be up: a crash mid-run would skew the numbers.
kill -0 "$PID_PB" 2>/dev/null || { echo "tls_handshake: postbote died during the run" >&2; status=1; }
kill -0 "$PID_SSL" 2>/dev/null || { echo "tls_handshake: s_server died during the run" >&2; status=1; }
if [[ -s $TMP/postbote.log ]]; then
	echo
	echo "postbote log (warnings and errors):"
	tail -n 20 "$TMP/postbote.log" | sed 's/^/    /'
fi
exit "$status"
