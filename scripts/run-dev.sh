#!/bin/sh
# Install packages, build, and start the development server in the current
# directory: loopback only, data in ./postbote-data, domain localhost, ports
# standard + 2000. Extra arguments go to "postbote serve" (e.g. --trace).
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
sh "$top/scripts/install-deps.sh"
cmake -S "$top" -B "$top/build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$top/build" -j"$(nproc)"
exec "$top/build/postbote" serve "$@"
