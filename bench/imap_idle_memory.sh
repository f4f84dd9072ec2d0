#!/usr/bin/env bash
#
# Memory of idle IMAPS connections: N sessions logged in, INBOX selected, in
# IDLE, on postbote and on a private Dovecot (Debian's dovecot-imapd), one
# server after the other. postbote's VmRSS growth per connection against the
# growth of the PSS summed over all of Dovecot's processes. The driver is
# bench/imap_bench.py; see bench/README.md.
#
#   bench/imap_idle_memory.sh [POSTBOTE_BIN]
#
# Environment (all optional):
#   POSTBOTE_BIN      the binary (default build/postbote; the argument wins)
#   CONNECTIONS       idle sessions per server (default 1000)
#   STAGE             idle (default), or greeting: TLS and greeting only
#   DOVECOT_PROFILE   "default compact" (both, the default), default or compact
#   ONLY              postbote or dovecot: measure only that one
#   TARGET_KIB        postbote's limit per connection (default 32)
#   DIR               where the temporary directory goes (default build/bench-tmp)
#   KEEP_TMP=1        keep the temporary directory (configs, logs) afterwards
#
# Loopback only; never touches /etc/dovecot or the system's Dovecot service.
# Exit status: 0 when the target is met, 1 when not, 2 when the setup fails.

set -euo pipefail
export LC_ALL=C

POSTBOTE_BIN=${1:-${POSTBOTE_BIN:-build/postbote}}
HERE=$(cd "$(dirname "$0")" && pwd)

die() {
	echo "imap_idle_memory: $*" >&2
	exit 2
}

command -v python3 >/dev/null || die "python3 not found"
command -v openssl >/dev/null || die "openssl not found"
if [[ ${ONLY:-} != postbote && ! -x /usr/lib/dovecot/imap ]]; then
	[[ $(id -u) == 0 ]] || die "dovecot-imapd is missing (apt-get install dovecot-imapd)"
	echo "installing dovecot-imapd (its system service is not used)"
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q dovecot-imapd >/dev/null ||
		die "apt-get install dovecot-imapd failed"
fi
[[ -x $POSTBOTE_BIN ]] || die "$POSTBOTE_BIN: not an executable (build first, or pass the path)"
POSTBOTE_BIN=$(cd "$(dirname "$POSTBOTE_BIN")" && pwd)/$(basename "$POSTBOTE_BIN")
DIR=${DIR:-$(dirname "$POSTBOTE_BIN")/bench-tmp}
CONNECTIONS=${CONNECTIONS:-1000}

# Both servers and the client each hold one descriptor per connection.
want=$((2 * CONNECTIONS + 1000))
if (($(ulimit -n) < want)); then
	ulimit -n "$want" 2>/dev/null || die "cannot raise the open files limit to $want (ulimit -Hn is $(ulimit -Hn))"
fi

EXTRA=()
[[ ${KEEP_TMP:-0} == 1 ]] && EXTRA+=(--keep)
[[ -n ${ONLY:-} ]] && EXTRA+=(--only "$ONLY")
exec python3 "$HERE/imap_bench.py" idle --bin "$POSTBOTE_BIN" --connections "$CONNECTIONS" \
	--stage "${STAGE:-idle}" --dovecot-profile "${DOVECOT_PROFILE:-default compact}" \
	--target-kib "${TARGET_KIB:-32}" --dir "$DIR" "${EXTRA[@]}"
