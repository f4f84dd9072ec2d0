#!/usr/bin/env bash
# Durable deliveries per second of a 4 KiB message through the store at 1,
# 16 and 64 deliveries in flight, beside this disk's rate of write + fsync +
# rename of a 4 KiB file (the limit of a store that fsyncs every message).
#
#   bench/store_delivery.sh [BUILD_DIR]      (default: build)
#   ROUNDS=5 SECONDS_PER_RUN=3 SIZE=4096 DIR=/var/tmp bench/store_delivery.sh
#
# The data directory is made under DIR (default: the build directory, so the
# disk measured is the one the project lives on; /tmp may be a tmpfs).
# Nothing is deleted until the end: ext4 scans past inodes deleted in the
# last 30-100 s when it allocates new ones, so deleting one run's thousands
# of files would slow down file creation in the next and measure that.
# Prints each run, then medians and ratios.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$top/build}
bin="$build/bench/bench_deliver"
rounds=${ROUNDS:-5}
secs=${SECONDS_PER_RUN:-3}
size=${SIZE:-4096}
base=${DIR:-$build}
[ -x "$bin" ] || { echo "build first: cmake --build $build --target bench_deliver" >&2; exit 2; }

work=$(mktemp -d "$base/bench-deliver.XXXXXX")
trap 'rm -rf "$work"' EXIT

div() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
median() { sort -n | awk '{a[NR]=$1} END {if (NR % 2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'; }

declare -A rates
for r in $(seq 1 "$rounds"); do
	for mode in fsync store1 store16 store64; do
		d="$work/$mode-$r"
		mkdir -p "$d"
		case $mode in
		fsync) line=$("$bin" "$d" fsync 1 "$secs" "$size") ;;
		store*) line=$("$bin" "$d" store "${mode#store}" "$secs" "$size") ;;
		esac
		rate=$(echo "$line" | awk '{print $3}')
		echo "round $r: $mode $rate/s"
		rates[$mode]="${rates[$mode]:-} $rate"
	done
done

m_fsync=$(echo ${rates[fsync]} | tr ' ' '\n' | median)
m1=$(echo ${rates[store1]} | tr ' ' '\n' | median)
m16=$(echo ${rates[store16]} | tr ' ' '\n' | median)
m64=$(echo ${rates[store64]} | tr ' ' '\n' | median)
echo
echo "medians over $rounds rounds of ${secs}s, ${size}-byte messages:"
printf "  write+fsync+rename (the disk's limit per file): %8.1f/s\n" "$m_fsync"
printf "  store, 1 in flight:   %8.1f/s  (%.2fx fsync)\n" "$m1" "$(div "$m1" "$m_fsync")"
printf "  store, 16 in flight:  %8.1f/s  (%.2fx fsync, %.2fx store/1)\n" "$m16" \
	"$(div "$m16" "$m_fsync")" "$(div "$m16" "$m1")"
printf "  store, 64 in flight:  %8.1f/s  (%.2fx fsync, %.2fx store/1)\n" "$m64" \
	"$(div "$m64" "$m_fsync")" "$(div "$m64" "$m1")"
if awk -v a="$m64" -v b="$m1" 'BEGIN { exit !(a >= 5 * b) }'; then
	echo "target (64 in flight >= 5x one): met"
else
	echo "target (64 in flight >= 5x one): NOT met"
	exit 1
fi
