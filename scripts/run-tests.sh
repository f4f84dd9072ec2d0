#!/bin/sh
# Install packages, build with warnings as errors, and run every test
# (Check unit suites and end-to-end tests against the real binary) with ctest.
# POSTBOTE_BUILD_DIR and POSTBOTE_CMAKE_ARGS choose another build (the
# sanitizer run in CI uses them).
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
build=${POSTBOTE_BUILD_DIR:-$top/build}
sh "$top/scripts/install-deps.sh"
# shellcheck disable=SC2086
cmake -S "$top" -B "$build" -DPOSTBOTE_WERROR=ON ${POSTBOTE_CMAKE_ARGS:-} >/dev/null
cmake --build "$build" -j"$(nproc)"
cd "$build"
ctest --output-on-failure -j2
