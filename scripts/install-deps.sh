#!/bin/sh
# Install the Debian 12 packages postbote needs to build, test and benchmark.
# Does nothing when they are all present already (so the README's commands
# stay quick the second time). Needs root.
set -eu

PACKAGES="build-essential cmake pkg-config libuv1-dev libssl-dev liblmdb-dev libcrypt-dev
check libc-ares-dev openssl python3 ca-certificates"
# Test-only peers and tools.
PACKAGES="$PACKAGES valgrind swaks libnet-ssleay-perl curl dnsmasq-base python3-dkim fetchmail isync"
if [ "${POSTBOTE_FUZZ_DEPS:-0}" = 1 ]; then
	PACKAGES="$PACKAGES clang libclang-rt-14-dev"
fi

missing=""
for p in $PACKAGES; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
		missing="$missing $p"
	fi
done
[ -z "$missing" ] && exit 0

if [ "$(id -u)" != 0 ]; then
	echo "postbote: these packages are missing:$missing" >&2
	echo "postbote: run this script as root (or: sudo apt-get install$missing)" >&2
	exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update
# shellcheck disable=SC2086
apt-get install -y --no-install-recommends $missing
