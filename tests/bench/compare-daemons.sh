#!/bin/bash
# compare-daemons.sh: two dmaloadd binaries side by side in one run, for a change that
# must not change speed (issue 11: "old and new daemons side by side in one run,
# ratios within 10%").
#
#   bash tests/bench/compare-daemons.sh OLD_DMALOADD NEW_DMALOADD [BUILD]
#
# Runs bench-e2e's row (method auto, cold: the page cache dropped before each
# run) for both binaries, alternating old and new so both see the disk's mood alike,
# with 4 KiB pages and with huge pages (reserved here, restored at exit), on 8 x 64
# MiB and 1 x 512 MiB files under $BENCH_DIR (default /var/tmp/dmaload-compare).
# Prints each row's median ms and MB/s and the ratio new/old of MB/s. Needs root.
# BENCH_RUNS=N runs per row (default 3), ROUNDS=N alternations (default 2).
set -euo pipefail

OLD=$(realpath "$1")
NEW=$(realpath "$2")
BUILD=$(cd "${3:-build}" && pwd)
ROW=$BUILD/tests/bench/bench-e2e
RUNS=${BENCH_RUNS:-3}
ROUNDS=${ROUNDS:-2}
BASE=${BENCH_DIR:-/var/tmp/dmaload-compare}
HP=/proc/sys/vm/nr_hugepages
HP_OLD=$(cat "$HP")

[ "$(id -u)" -eq 0 ] || { echo "compare: needs root" >&2; exit 1; }
[ -x "$ROW" ] || { echo "compare: build $ROW first (make bench builds it)" >&2; exit 1; }
mkdir -p "$BASE/work"
trap 'echo "$HP_OLD" > "$HP"; rm -rf "$BASE"' EXIT
echo $((HP_OLD + 600)) > "$HP"

files() {		# files COUNT MIB: names into F
	F=()
	for ((i = 0; i < $1; i++)); do
		f=$BASE/f$2m-$i
		[ -f "$f" ] || head -c "$2M" /dev/urandom > "$f"
		F+=("$f")
	done
}

# one LABEL DAEMON HUGETLB: median ms and MB/s of one e2e row
one() {
	"$ROW" --runs "$RUNS" --label "$1" "$2" auto "$3" "$BASE/work" "${F[@]}" |
		awk -F'\t' '$1 == "ok" { printf "%.0f %.0f\n", $11, $14; exit }
			    $1 != "ok" { print "error error"; exit }'
}

printf '%-10s %-8s %10s %10s %10s %10s %8s\n' workload pages "old ms" "new ms" \
	"old MB/s" "new MB/s" new/old
for w in "8 64" "1 512"; do
	set -- $w
	files "$1" "$2"
	sync
	for hp in off on; do
		old_sum=0 new_sum=0 old_ms=0 new_ms=0
		for ((r = 0; r < ROUNDS; r++)); do
			read -r oms omb < <(one old "$OLD" "$hp")
			read -r nms nmb < <(one new "$NEW" "$hp")
			old_sum=$((old_sum + omb)); new_sum=$((new_sum + nmb))
			old_ms=$((old_ms + oms)); new_ms=$((new_ms + nms))
		done
		awk -v w="$1x$2M" -v hp="$hp" -v om="$old_ms" -v nm="$new_ms" -v o="$old_sum" \
			-v n="$new_sum" -v r="$ROUNDS" 'BEGIN {
			printf "%-10s %-8s %10.0f %10.0f %10.0f %10.0f %8.2f\n", w,
			       hp == "on" ? "hugetlb" : "4 KiB", om / r, nm / r, o / r, n / r,
			       o ? n / o : 0 }'
	done
done
