#!/usr/bin/env bash
#
# Opening a large folder over IMAPS: SELECT, UID FETCH 1:* (FLAGS) and
# FETCH 1:* (ENVELOPE BODYSTRUCTURE) on a 100,000-message INBOX, on postbote
# and on a private Dovecot (Debian's dovecot-imapd) holding the same files,
# cold (first open after a fresh start, no index) and warm (repeated),
# medians and ratios. The driver is bench/imap_bench.py; see bench/README.md.
#
#   bench/imap_open.sh [POSTBOTE_BIN]
#
# Environment (all optional):
#   POSTBOTE_BIN      the binary (default build/postbote; the argument wins)
#   MESSAGES          messages in the folder (default 100000)
#   ROUNDS            warm rounds per server (default 5)
#   COLD_ROUNDS       fresh starts, each measured once cold (default 1)
#   SEED              the message generator's seed (default 1)
#   TARGET            largest ratio postbote/Dovecot per step (default 1.0)
#   DOVECOT_PROFILE   default or compact (see imap_idle_memory.sh)
#   ONLY              postbote or dovecot: run only that one (no verdict)
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
	echo "imap_open: $*" >&2
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
# On disk next to the build rather than in a /tmp that may be a tmpfs.
DIR=${DIR:-$(dirname "$POSTBOTE_BIN")/bench-tmp}

EXTRA=()
[[ ${KEEP_TMP:-0} == 1 ]] && EXTRA+=(--keep)
[[ -n ${ONLY:-} ]] && EXTRA+=(--only "$ONLY")
exec python3 "$HERE/imap_bench.py" open --bin "$POSTBOTE_BIN" --messages "${MESSAGES:-100000}" \
	--rounds "${ROUNDS:-5}" --cold-rounds "${COLD_ROUNDS:-1}" --seed "${SEED:-1}" \
	--target "${TARGET:-1.0}" --dovecot-profile "${DOVECOT_PROFILE:-default}" --dir "$DIR" "${EXTRA[@]}"
