#!/bin/bash
# run.sh: make bench. Every copy method side by side in one run, as issue 3 asks.
#
#   bash tests/bench/run.sh [BUILD]        (make bench runs it on $(BUILD), default build)
#
# Needs root: it drops the page cache before every cold run and reserves huge pages
# (restored at exit). It makes the test files once under $BENCH_DIR (random bytes,
# reused while their sizes are right), runs every row with build/tests/bench/bench-raw,
# bench-fio or bench-e2e (tests/bench/lib/row.h says what each column measures), among
# them the tuning rows from
# which the daemon's [io] defaults are chosen, prints the table and the issue's
# three target ratios, and writes them into docs/BENCHMARKS.md between the
# "bench:begin" and "bench:end" markers; the prose around them is kept.
#
# Knobs:
#   BENCH_RUNS=N    runs per row (default 3; the median is shown, with min-max)
#   BENCH_QUICK=1   small files and 1 run per row (unless BENCH_RUNS says otherwise),
#                   to check the bench itself; docs/BENCHMARKS.md is not touched
#   BENCH_KEEP=1    keep the test files for the next run
#   BENCH_DIR=DIR   where the files go (default /var/tmp/dmaload-bench; not tmpfs:
#                   O_DIRECT needs a real filesystem)
#   BENCH_DOC=FILE  the document to update (default docs/BENCHMARKS.md)
#   BENCH_TUNE=0    leave out the tuning rows (dmaloadd auto, cold, with another
#                   chunk_size, queue_depth or fixed_buffers; see TUNE below)
#   BENCH_SCHED=0   leave out the scheduling rows (bench-sched: rate limits, fairness
#                   of 4 clients, foreground latency under background loads; about
#                   half a minute, once, not BENCH_RUNS times)
#   BENCH_THP=0     leave out the THP row (bench-raw direct thp: O_DIRECT into 4 KiB-page
#                   memfds advised MADV_HUGEPAGE; with shmem_enabled at "never" it is
#                   set to "advise" for the row and restored after)
#   BENCH_SMALL=0   leave out the small-file and cache-hit rows (bench-small: 10,000
#                   x 64 KiB and 1,000 x 1 MiB cold against a naive client, by 1 and 8
#                   clients; cache-hit latency with 1 and 64 clients; once)
set -euo pipefail

TOP=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=$(cd "${1:-build}" && pwd)
BENCH=$BUILD/tests/bench
DAEMON=$BUILD/dmaloadd
QUICK=${BENCH_QUICK:-0}
KEEP=${BENCH_KEEP:-0}
TUNE_ON=${BENCH_TUNE:-1}
SCHED_ON=${BENCH_SCHED:-1}
SCHED=$BENCH/bench-sched
SMALL_ON=${BENCH_SMALL:-1}
THP_ON=${BENCH_THP:-1}
THP_KNOB=/sys/kernel/mm/transparent_hugepage/shmem_enabled
THP_OLD=""
MTHP_KNOB=/sys/kernel/mm/transparent_hugepage/hugepages-64kB/shmem_enabled
MTHP_OLD=""
SMALL=$BENCH/bench-small
BASE=${BENCH_DIR:-/var/tmp/dmaload-bench}
DOC=${BENCH_DOC:-$TOP/docs/BENCHMARKS.md}
if [ "$QUICK" = 1 ]; then
	RUNS=${BENCH_RUNS:-1}
	WORKLOADS=("8 16" "1 128")	# files, MiB each
else
	RUNS=${BENCH_RUNS:-3}
	WORKLOADS=("32 32" "1 1024")
fi

die() { echo "bench: $*" >&2; exit 1; }
say() { echo "bench: $*" >&2; }

[ "$(id -u)" -eq 0 ] || die "needs root (drops the page cache, reserves huge pages)"
for p in "$BENCH/bench-raw" "$BENCH/bench-fio" "$BENCH/bench-e2e" "$SCHED" "$SMALL" "$DAEMON"; do
	[ -x "$p" ] || die "build first: make bench (missing $p)"
done
command -v fio >/dev/null || say "fio is not installed (tests/deps.sh installs it): its row will say so"
case "$RUNS" in ''|*[!0-9]*) die "BENCH_RUNS must be a number";; esac
[ "$RUNS" -ge 1 ] && [ "$RUNS" -le 64 ] || die "BENCH_RUNS must be 1..64"

mkdir -p "$BASE"
WORK=$(mktemp -d "$BASE/run.XXXXXX")
HP=/proc/sys/vm/nr_hugepages
HP_OLD=$(cat "$HP")
HP_SET=

# At exit, whatever happened: the huge page pool back to what it was (unless someone
# else changed it meanwhile), the work dir and, unless kept, the files gone. The rows'
# daemons die with bench-e2e (it kills them on signals, and they get PDEATHSIG).
cleanup() {
	[ -z "$THP_OLD" ] || echo "$THP_OLD" > "$THP_KNOB" || say "could not restore $THP_KNOB to $THP_OLD"
	[ -z "$MTHP_OLD" ] || echo "$MTHP_OLD" > "$MTHP_KNOB" ||
		say "could not restore $MTHP_KNOB to $MTHP_OLD"
	if [ -n "$HP_SET" ]; then
		if [ "$(cat "$HP")" = "$HP_SET" ]; then
			echo "$HP_OLD" > "$HP" || say "could not restore $HP to $HP_OLD"
		else
			say "$HP changed by someone else during the run; left at $(cat "$HP")"
		fi
	fi
	rm -rf "$WORK"
	[ "$KEEP" = 1 ] || rm -rf "$BASE/files"
	rmdir "$BASE" 2>/dev/null || true
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---- the files ----------------------------------------------------------------------

# make_files COUNT MIB: $BASE/files/COUNTxMIBm/fNN, random bytes; names into FILES.
make_files() {
	local n=$1 mib=$2 dir="$BASE/files/${1}x${2}m" i f
	mkdir -p "$dir"
	FILES=()
	for ((i = 0; i < n; i++)); do
		f=$(printf '%s/f%02d' "$dir" "$i")
		if [ "$(stat -c %s "$f" 2>/dev/null || echo 0)" != $((mib * 1048576)) ]; then
			head -c "${mib}M" /dev/urandom > "$f.tmp"
			mv "$f.tmp" "$f"
		fi
		FILES+=("$f")
	done
}

t_start=$(date +%s)
load_start=$(cut -d' ' -f1-3 /proc/loadavg)
say "making the test files under $BASE/files (reused if present)"
for w in "${WORKLOADS[@]}"; do make_files $w; done
sync

# ---- huge pages ---------------------------------------------------------------------

# The largest workload in huge pages (buffers rounded up), plus room for the daemon's
# warm-up loads and the rounding of anything else running.
hp_kb=$(awk '/^Hugepagesize:/ {print $2}' /proc/meminfo)
need=0
for w in "${WORKLOADS[@]}"; do
	set -- $w
	per=$(( ($2 * 1024 + hp_kb - 1) / hp_kb ))
	[ $(( $1 * per )) -gt "$need" ] && need=$(( $1 * per ))
done
need=$(( need + 64 ))
free=$(awk '/^HugePages_Free:/ {print $2}' /proc/meminfo)
if [ "$free" -lt "$need" ]; then
	HP_SET=$(( HP_OLD + need - free ))
	echo "$HP_SET" > "$HP"
	HP_SET=$(cat "$HP")
	free=$(awk '/^HugePages_Free:/ {print $2}' /proc/meminfo)
	[ "$free" -ge "$need" ] || say "only $free of $need huge pages free: hugetlb rows may fail or fall back"
fi
say "huge pages: $free free of $(cat "$HP") ($((hp_kb / 1024)) MiB each; was $HP_OLD)"

# ---- the rows -----------------------------------------------------------------------

# The tuning rows: dmaloadd auto, cold, with one [io] key moved off its default
# (chunk_size 4M, queue_depth 64, fixed_buffers off), the others left alone. The
# defaults themselves are the "dmaloadd auto" cold row, shown again at the head of the
# tuning table rather than run twice. "HUGETLB|KEY|NAME|[io] LINE", HUGETLB being the
# setting the row runs with (both: on and off). fixed_buffers = auto registers hugetlb
# buffers only, so with hugetlb off it is off; there the row is fixed_buffers = on.
TUNE=(
	"both|c1M|chunk_size 1M|chunk_size = 1M"
	"both|c16M|chunk_size 16M|chunk_size = 16M"
	"both|q8|queue_depth 8|queue_depth = 8"
	"both|q16|queue_depth 16|queue_depth = 16"
	"both|q128|queue_depth 128|queue_depth = 128"
	"on|fbauto|fixed_buffers auto (READ_FIXED into registered hugetlb buffers)|fixed_buffers = auto"
	"off|fbon|fixed_buffers on (READ_FIXED into registered 4 KiB buffers)|fixed_buffers = on"
)
[ "$TUNE_ON" = 1 ] || TUNE=()

RESULTS=$WORK/results.tsv
: > "$RESULTS"

# row WORKLOAD SECTION KEY BUFFER KIND [OPTS] ARGS...: one bench-KIND (raw, fio or
# e2e) over FILES; its line goes to RESULTS behind "WORKLOAD SECTION KEY BUFFER". A
# row gets 10 minutes: more is a hang (bench-e2e passes the TERM on to its daemon).
# --foreground keeps the row in the terminal's process group, so Ctrl-C reaches it.
row() {
	local wl=$1 sec=$2 key=$3 buf=$4 prog=bench-$5 out st=0 why
	shift 5
	out=$(timeout --foreground 600 "$BENCH/$prog" --runs "$RUNS" "$@" "${FILES[@]}") || st=$?
	if [ $st -ne 0 ] || [ -z "$out" ]; then
		why="$prog exited with status $st"
		[ $st -ne 124 ] || why="$prog timed out after 600 s"
		out=$(printf 'error\t%s\t%s' "$key" "$why")
	fi
	printf '%s\t%s\t%s\t%s\t%s\n' "$wl" "$sec" "$key" "$buf" "$out" >> "$RESULTS"
	awk -F'\t' -v k="$wl $sec $key" '{
		if ($1 == "ok") printf "bench: %-34s %8.0f ms %7.0f MB/s  %s\n", k, $11, $14, $20
		else printf "bench: %-34s error: %s\n", k, $3 }' <<< "$out" >&2
}

# same_row WORKLOAD SECTION KEY LABEL FROM_SECTION FROM_KEY: a copy of a row already in
# RESULTS under another section, key and label (the defaults at the head of the tuning
# table).
same_row() {
	awk -F'\t' -v OFS='\t' -v wl="$1" -v sec="$2" -v key="$3" -v label="$4" \
		-v fsec="$5" -v fkey="$6" '
		$1 == wl && $2 == fsec && $3 == fkey { $2 = sec; $3 = key; $6 = label; print }' \
		"$RESULTS" > "$WORK/same"
	cat "$WORK/same" >> "$RESULTS"
}

for w in "${WORKLOADS[@]}"; do
	set -- $w
	wl="$1x$2"
	make_files "$1" "$2"
	say "workload $1 x $2 MiB, $RUNS run(s) per row"

	row "$wl" cold naive "4 KiB" raw --label "naive: read() into a mmap'd memfd" naive 4k
	for t in 4k huge; do
		b="4 KiB"; [ $t = huge ] && b=hugetlb
		row "$wl" cold "direct-$t" "$b" raw --label "io_uring READ, O_DIRECT" direct $t
		row "$wl" cold "fixed-$t" "$b" raw \
			--label "io_uring READ_FIXED, O_DIRECT, registered buffer" fixed $t
		row "$wl" cold "buffered-$t" "$b" raw --label "io_uring READ, buffered" \
			buffered $t
		row "$wl" cold "splice-$t" "$b" raw --label "io_uring SPLICE pairs, 1 MiB pipes" \
			splice $t
		row "$wl" cold "cfr-$t" "$b" raw --label "copy_file_range(file -> memfd)" cfr $t
	done
	# Issue 15: transparent huge pages for shmem, the one way to huge pages without
	# a pool. Creat is the first touch of every page (MADV_POPULATE_WRITE), which the
	# note's share of huge pages shows the kernel really gave. The daemon uses them
	# wherever the knob allows ([io] thp); the e2e rows below run with it as found.
	if [ "$THP_ON" = 1 ] && [ -w "$THP_KNOB" ]; then
		thp_now=$(sed 's/.*\[\(.*\)\].*/\1/' "$THP_KNOB")
		if [ "$thp_now" = never ]; then
			THP_OLD=never
			echo advise > "$THP_KNOB"
		fi
		row "$wl" cold direct-thp "4 KiB, MADV_HUGEPAGE" raw \
			--label "io_uring READ, O_DIRECT, THP (shmem_enabled $(sed 's/.*\[\(.*\)\].*/\1/' "$THP_KNOB"))" \
			direct thp
		if [ -n "$THP_OLD" ]; then
			echo "$THP_OLD" > "$THP_KNOB"
			THP_OLD=
		fi
	fi
	row "$wl" cold fio "4 KiB" fio --label "fio io_uring O_DIRECT" malloc
	row "$wl" cold fio-huge hugetlb fio --label "fio io_uring O_DIRECT (the disk's limit)" \
		shmhuge
	# Each hugetlb setting's tuning rows right after its auto row, so they share the
	# disk's mood as far as this machine allows.
	for h in on off; do
		b="4 KiB"; [ $h = on ] && b=hugetlb
		for m in auto cfr direct buffered; do
			row "$wl" cold "e2e-$h-$m" "$b" e2e --label "dmaloadd $m" \
				"$DAEMON" $m $h "$WORK"
			[ $m = auto ] && [ ${#TUNE[@]} -gt 0 ] || continue
			same_row "$wl" tune "tune-$h-default" \
				"dmaloadd auto, chunk_size 4M, queue_depth 64, fixed_buffers off (the defaults: the cold row above)" \
				cold "e2e-$h-auto"
			for t in "${TUNE[@]}"; do
				IFS='|' read -r th k name line <<< "$t"
				[ "$th" = both ] || [ "$th" = $h ] || continue
				row "$wl" tune "tune-$h-$k" "$b" e2e --label "dmaloadd auto, $name" \
					--io "$line" "$DAEMON" auto $h "$WORK"
			done
		done
	done
	# Issue 15: the daemon's 4 KiB-page buffers where the administrator allows 64 KiB
	# shmem folios for advised mappings (multi-size THP, Linux 6.11), the global knob
	# as found; the knob goes back right after.
	if [ "$THP_ON" = 1 ] && [ -w "$MTHP_KNOB" ]; then
		MTHP_OLD=$(sed 's/.*\[\(.*\)\].*/\1/' "$MTHP_KNOB")
		echo advise > "$MTHP_KNOB"
		row "$wl" cold e2e-off-mthp "4 KiB, 64 KiB THP" e2e \
			--label "dmaloadd auto, 64 KiB shmem folios (hugepages-64kB/shmem_enabled advise)" \
			"$DAEMON" auto off "$WORK"
		echo "$MTHP_OLD" > "$MTHP_KNOB"
		MTHP_OLD=
	fi
	# Issue 13: the same loads into buffers of the client's own, made once and reused
	# by every run (no page allocation), next to the fresh-buffer rows above.
	for h in on off; do
		b="4 KiB"; [ $h = on ] && b=hugetlb
		row "$wl" cold "into-$h" "$b" e2e --into \
			--label "dmaloadd into the caller's buffer, reused" "$DAEMON" auto $h "$WORK"
	done

	# Issue 4's dedup row: N clients load the one big file at once, cold, with no
	# kept buffers (cache_limit 0): the daemon reads it once for all of them.
	if [ "$1" = 1 ]; then
		for c in 1 8; do
			row "$wl" share "share-$c" hugetlb e2e --label "dmaloadd auto, $c client(s) at once" \
				--clients $c "$DAEMON" auto on "$WORK"
		done
	fi

	row "$wl" hot naive "4 KiB" raw --hot --label "naive: read() into a mmap'd memfd" naive 4k
	row "$wl" hot buffered-4k "4 KiB" raw --hot --label "io_uring READ, buffered" buffered 4k
	row "$wl" hot buffered-huge hugetlb raw --hot --label "io_uring READ, buffered" \
		buffered huge
	for h in on off; do
		b="4 KiB"; [ $h = on ] && b=hugetlb
		for m in auto cfr direct buffered; do
			row "$wl" hot "e2e-$h-$m" "$b" e2e --hot --label "dmaloadd $m" \
				"$DAEMON" $m $h "$WORK"
		done
	done
done
# The scheduling rows (issue 4): their own daemon and files, a Markdown section.
SCHED_OUT=$WORK/sched.md
: > "$SCHED_OUT"
if [ "$SCHED_ON" = 1 ]; then
	say "scheduling rows (bench-sched)"
	q=; [ "$QUICK" = 1 ] && q=--quick
	mkdir -p "$WORK/sched"
	if ! DMALOADD=$DAEMON timeout --foreground 600 "$SCHED" $q "$WORK/sched" > "$SCHED_OUT"; then
		printf '\n### Scheduling and limits\n\n**error**: bench-sched failed\n' >> "$SCHED_OUT"
	fi
	grep '^| [rfl]' "$SCHED_OUT" | sed 's/^/bench: /' >&2 || true
fi
# The small-file and cache-hit rows (issue 15): their own daemons and files.
SMALL_OUT=$WORK/small.md
: > "$SMALL_OUT"
if [ "$SMALL_ON" = 1 ]; then
	say "small-file and cache-hit rows (bench-small)"
	q=; [ "$QUICK" = 1 ] && q=--quick
	mkdir -p "$WORK/small"
	if ! DMALOADD=$DAEMON timeout --foreground 900 "$SMALL" $q "$WORK/small" > "$SMALL_OUT"; then
		printf '\n### Small files and cache hits\n\n**error**: bench-small failed\n' >> "$SMALL_OUT"
	fi
	grep '^| [0-9c]' "$SMALL_OUT" | sed 's/^/bench: /' >&2 || true
fi
elapsed=$(( $(date +%s) - t_start ))

# ---- the report ---------------------------------------------------------------------

machine() {
	local src fstype dev disk virt
	src=$(findmnt -no SOURCE -T /var/tmp)
	fstype=$(findmnt -no FSTYPE -T /var/tmp)
	disk=$(lsblk -dno PKNAME "$src" 2>/dev/null || true)
	[ -n "$disk" ] || disk=$(basename "$src")
	dev=$(lsblk -dno NAME,SIZE,ROTA,MODEL "/dev/$disk" 2>/dev/null | awk '{
		rot = "non-rotational"; if ($3 == 1) rot = "rotational flag set"
		model = ""; if (NF > 3) model = ", " substr($0, index($0, $4))
		printf "%s, %s, %s%s", $1, $2, rot, model }')
	# sed -n 1p, not head -1, reads to the end: no SIGPIPE for pipefail to end us on.
	virt=$(dmesg 2>/dev/null | sed -n 's/.*Hypervisor detected: //p' | sed -n 1p) || virt=""
	[ -n "$virt" ] || virt=$(systemd-detect-virt 2>/dev/null || echo unknown)
	echo "- Date: $(date -u '+%Y-%m-%d %H:%M UTC'); the run took $((elapsed / 60)) min $((elapsed % 60)) s."
	echo "- Load average (1, 5, 15 min) at the start: $load_start; at the end: $(cut -d' ' -f1-3 /proc/loadavg). Anything else running shows in the min-max."
	echo "- Kernel: $(uname -r); virtualization: $virt."
	echo "- CPU: $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1), $(nproc) cores."
	echo "- RAM: $(awk '/^MemTotal:/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo); huge pages of $((hp_kb / 1024)) MiB."
	echo "- /var/tmp: $fstype on $src ($dev; scheduler $(cat "/sys/block/$disk/queue/scheduler" 2>/dev/null | sed 's/.*\[\(.*\)\].*/\1/' || echo '?'))."
	echo "- Tree: $(git -C "$TOP" describe --always --dirty 2>/dev/null || echo '?'); $(fio --version 2>/dev/null || echo 'no fio'); $RUNS run(s) per row."
}

# The tables and the ratios, in Markdown, from RESULTS.
report() {
	awk -F'\t' -v runs="$RUNS" '
	function ms(v) { return v == "-" ? "-" : (v < 10 ? sprintf("%.1f", v) : sprintf("%.0f", v)) }
	function cell(med, lo, hi) {
		if (med == "-") return "-"
		if (runs == 1) return ms(med)
		return ms(med) " (" ms(lo) "-" ms(hi) ")"
	}
	function size(b) {
		if (b >= 1073741824) return sprintf("%.0f GiB", b / 1073741824)
		return sprintf("%.0f MiB", b / 1048576)
	}
	# a raw row as a client that allocates its own buffer sees it: size / (Creat + I/O)
	function mbs_all(id) { return B[id] / ((C[id] + IO[id]) * 1000) }
	function verdict(r, t) { return sprintf("%.2fx (target >= %sx): %s", r, t, r >= t ? "met" : "not met") }
	function missing(id,   k) {
		if (id in E) return "row failed: " E[id]
		if (!(id in M)) return "row missing"
		return ""
	}
	{
		wl = $1; sec = $2; key = $3; buf = $4; id = wl " " sec " " key
		if (!(wl in seen)) { seen[wl] = 1; order[++nw] = wl }
		line[wl, sec, ++n[wl, sec]] = id
		LABEL[id] = $6; BUF[id] = buf
		if ($5 == "ok") {
			B[id] = $8; C[id] = $9; CL[id] = $12; IO[id] = $15; M[id] = $18
			MX[id] = $20; CPU[id] = $21
			CELLS[id] = cell($9, $10, $11) " | " cell($12, $13, $14) " | "
			CELLS[id] = CELLS[id] cell($15, $16, $17) " | " cell($18, $19, $20)
			CPUC[id] = cell($21, $22, $23); NOTE[id] = $24
			if (key == "naive" && sec == "cold") { NAIVE[wl] = $18; SIZE[wl] = $8 }
		} else {
			E[id] = $7
		}
	}
	END {
		for (w = 1; w <= nw; w++) {
			wl = order[w]; split(wl, p, "x")
			for (s = 1; s <= 4; s++) {
				sec = s == 1 ? "cold" : s == 2 ? "tune" : s == 3 ? "share" : "hot"
				if (!n[wl, sec]) continue
				if (sec == "cold") how = "cold: page cache dropped before each run"
				else if (sec == "tune") how = "tuning: dmaloadd auto, cold, one [io] key changed"
				else if (sec == "share") how = "sharing: clients load the same file at once, cold, cache_limit 0; MB/s counts the bytes of every client"
				else how = "hot: files read into the page cache before each run"
				printf "\n### %d x %d MiB (%s in all), %s\n\n", p[1], p[2],
					size(p[1] * p[2] * 1048576), how
				print "| Method | Buffer | Creat-ms | Close-ms | I/O-ms | I/O-MB/s | I/O% | CPU-ms | Notes |"
				print "|---|---|--:|--:|--:|--:|--:|--:|---|"
				for (i = 1; i <= n[wl, sec]; i++) {
					id = line[wl, sec, i]
					if (id in E) {
						printf "| %s | %s | - | - | - | - | - | - | **error**: %s |\n",
							LABEL[id], BUF[id], E[id]
						continue
					}
					pct = NAIVE[wl] > 0 ? sprintf("%.0f%%", 100 * M[id] / NAIVE[wl]) : "-"
					printf "| %s | %s | %s | %s | %s | %s |\n", LABEL[id], BUF[id],
						CELLS[id], pct, CPUC[id], NOTE[id] == "-" ? "" : NOTE[id]
				}
			}
		}
		printf "\n### Targets of issue 3, from this run\n\n"
		for (w = 1; w <= nw; w++) {
			wl = order[w]; split(wl, p, "x")
			printf "%d x %d MiB:\n\n", p[1], p[2]
			# against the faster fio: with huge-page buffers, unless that row failed
			a = wl " cold e2e-on-auto"; f = wl " cold fio-huge"; g = wl " cold fio"
			if (missing(f) != "" || (missing(g) == "" && M[g] > M[f])) f = g
			fn = f == g ? "fio, malloc buffers" : "fio, huge-page buffers"
			if ((why = missing(a)) != "" || (why = missing(f)) != "")
				printf "- (a) dmaloadd cold, hugetlb, vs fio: not computable (%s)\n", why
			else
				printf "- (a) dmaloadd auto cold, hugetlb, best run %.0f MB/s vs %s %.0f MB/s (median): %s; median to median %.2fx\n",
					MX[a], fn, M[f], verdict(MX[a] / M[f], "0.95"), M[a] / M[f]
			a = wl " cold e2e-off-auto"; f = wl " cold naive"
			if ((why = missing(a)) != "" || (why = missing(f)) != "")
				printf "- (b) dmaloadd cold, 4 KiB pages, vs naive: not computable (%s)\n", why
			else
				printf "- (b) dmaloadd auto cold, 4 KiB pages, %.0f MB/s vs naive size/(Creat+I/O) %.0f MB/s: %s\n",
					M[a], mbs_all(f), verdict(M[a] / mbs_all(f), "2")
			for (t = 1; t <= 2; t++) {
				h = t == 1 ? "on" : "off"; r = t == 1 ? "huge" : "4k"
				tn = t == 1 ? "hugetlb" : "4 KiB pages"
				a = wl " hot e2e-" h "-auto"; f = wl " hot buffered-" r
				if ((why = missing(a)) != "" || (why = missing(f)) != "")
					printf "- (c) hot, %s: not computable (%s)\n", tn, why
				else
					printf "- (c) dmaloadd auto hot, %s, %.0f MB/s vs io_uring buffered hot size/(Creat+I/O) %.0f MB/s: %s\n",
						tn, M[a], mbs_all(f), verdict(M[a] / mbs_all(f), "0.9")
			}
			a = wl " cold into-off"; f = wl " cold fio"
			if ((why = missing(a)) != "" || (why = missing(f)) != "")
				printf "- (issue 13) into the client buffer (4 KiB pages, reused) vs fio: not computable (%s)\n", why
			else
				printf "- (issue 13) dmaloadd into the client buffer (4 KiB pages, reused), cold, %.0f MB/s vs fio (malloc buffers) %.0f MB/s: %s\n",
					M[a], M[f], verdict(M[a] / M[f], "0.9")
			a = wl " cold e2e-off-auto"; f = wl " cold fio-huge"
			if ((why = missing(a)) != "" || (why = missing(f)) != "")
				printf "- (issue 15) fresh 4 KiB buffer vs fio (huge-page buffers): not computable (%s)\n", why
			else
				printf "- (issue 15) dmaloadd auto cold into a fresh 4 KiB-page buffer, %.0f MB/s vs fio (huge-page buffers) %.0f MB/s: %s; CPU %.0f ms per GiB (daemon and client; target <= 450): %s\n",
					M[a], M[f], verdict(M[a] / M[f], "0.8"), CPU[a] * 1073741824 / B[a],
					CPU[a] * 1073741824 / B[a] <= 450 ? "met" : "not met"
			a = wl " cold e2e-off-mthp"; f = wl " cold fio-huge"
			if (missing(a) == "" && missing(f) == "")
				printf "- (issue 15) the same with 64 KiB shmem folios allowed (hugepages-64kB/shmem_enabled advise), %.0f MB/s vs fio (huge-page buffers) %.0f MB/s: %s; CPU %.0f ms per GiB (target <= 450): %s\n",
					M[a], M[f], verdict(M[a] / M[f], "0.8"), CPU[a] * 1073741824 / B[a],
					CPU[a] * 1073741824 / B[a] <= 450 ? "met" : "not met"
			a = wl " cold direct-thp"; f = wl " cold direct-4k"; g = wl " cold direct-huge"
			if (missing(a) == "" && missing(f) == "" && missing(g) == "")
				printf "- (issue 15) THP for shmem: first touch of the buffers %.0f ms (4 KiB pages %.0f, hugetlb %.0f); O_DIRECT into them %.0f MB/s (4 KiB %.0f, hugetlb %.0f); CPU %.0f ms (4 KiB %.0f, hugetlb %.0f); %s (reported, not a target)\n",
					C[a], C[f], C[g], M[a], M[f], M[g], CPU[a], CPU[f], CPU[g], NOTE[a]
			a = wl " share share-8"; f = wl " share share-1"
			if (missing(a) == "" && missing(f) == "")
				printf "- (issue 4) dedup: 8 clients loading the same file at once took %.0f ms, one client %.0f ms: %.2fx the time for 8x the buffers (reported, not a target)\n",
					IO[a], IO[f], IO[a] / IO[f]
			print ""
		}
	}' "$RESULTS"
}

OUT=$WORK/report.md
{
	echo "## Results of the last run"
	echo
	machine
	report
	cat "$SCHED_OUT"
	cat "$SMALL_OUT"
} > "$OUT"
echo
cat "$OUT"

# Into the document, between the markers; a new document gets the prose too.
if [ "$QUICK" = 1 ] || [ "$RUNS" -lt 3 ]; then
	say "quick run or fewer than 3 runs per row: $DOC not updated"
	exit 0
fi
BEGIN_MARK='<!-- bench:begin: generated by tests/bench/run.sh (make bench); edits here are overwritten -->'
END_MARK='<!-- bench:end -->'
if ! grep -qF -- "$BEGIN_MARK" "$DOC" 2>/dev/null || ! grep -qF -- "$END_MARK" "$DOC"; then
	[ ! -e "$DOC" ] || cp "$DOC" "$DOC.bak"
	cat > "$DOC" <<-EOF
	# Benchmarks

	\`make bench\` measures every way of getting a file into a memfd buffer on this
	machine, side by side in one run. tests/bench/run.sh wrote this document; the
	prose outside the generated part is kept when it runs again.

	$BEGIN_MARK
	$END_MARK

	## Defaults chosen from this table

	(To be filled in by whoever sets the defaults: chunk size, queue depth, method,
	hugetlb.)
	EOF
	say "$DOC had no bench markers: wrote a new one (an old one is kept as $DOC.bak)"
fi
awk -v begin="$BEGIN_MARK" -v end="$END_MARK" -v gen="$OUT" '
	$0 == begin { print; while ((getline l < gen) > 0) print l; skip = 1; next }
	$0 == end { skip = 0 }
	!skip { print }' "$DOC" > "$DOC.new"
mv "$DOC.new" "$DOC"
say "wrote $DOC"
