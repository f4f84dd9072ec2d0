#!/usr/bin/env bash
#
# POP3S retrieval: every message of a 1,000 x 100 KiB mailbox with python3's
# poplib, from postbote and from a private Dovecot (Debian's dovecot-pop3d)
# holding the same messages, rounds alternating. The driver is
# bench/pop3_retrieve.py; see bench/README.md.
#
#   bench/pop3_retrieve.sh [POSTBOTE_BIN]
#
# Environment (all optional):
#   POSTBOTE_BIN   the binary (default build/postbote; the argument wins)
#   ROUNDS         measured rounds per server (default 5), after a warm-up each
#   MESSAGES       messages in the mailbox (default 1000)
#   SIZE           octets per message (default 102400)
#   TARGET         minimum ratio Dovecot time / postbote time (default 1.0)
#   DIR            where the temporary directory goes (default build/bench-tmp)
#   KEEP_TMP=1     keep the temporary directory (configs, logs) afterwards
#
# Loopback only; never touches /etc/dovecot or the system's Dovecot service.
# Exit status: 0 when the target is met, 1 when not, 2 when the setup fails.

set -euo pipefail
export LC_ALL=C

POSTBOTE_BIN=${1:-${POSTBOTE_BIN:-build/postbote}}
HERE=$(cd "$(dirname "$0")" && pwd)

die() {
	echo "pop3_retrieve: $*" >&2
	exit 2
}

command -v python3 >/dev/null || die "python3 not found"
command -v openssl >/dev/null || die "openssl not found"
command -v dovecot >/dev/null || [[ -x /usr/sbin/dovecot ]] ||
	die "dovecot not found: apt-get install dovecot-pop3d (its system service is not used)"
[[ -x $POSTBOTE_BIN ]] || die "$POSTBOTE_BIN: not an executable (build first, or pass the path)"
POSTBOTE_BIN=$(cd "$(dirname "$POSTBOTE_BIN")" && pwd)/$(basename "$POSTBOTE_BIN")
# On disk next to the build rather than in a /tmp that may be a tmpfs; the
# files are read from the page cache either way after the warm-up.
DIR=${DIR:-$(dirname "$POSTBOTE_BIN")/bench-tmp}

EXTRA=()
[[ ${KEEP_TMP:-0} == 1 ]] && EXTRA+=(--keep)
exec python3 "$HERE/pop3_retrieve.py" --bin "$POSTBOTE_BIN" --rounds "${ROUNDS:-5}" \
	--messages "${MESSAGES:-1000}" --size "${SIZE:-102400}" --target "${TARGET:-1.0}" \
	--dir "$DIR" "${EXTRA[@]}"
