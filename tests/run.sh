#!/bin/bash
# The whole suite, as CI runs it (make check):
#   0. tests/layers/check-includes.sh        no include cycle among the daemon's modules
#   1. make all tests                        and tests/run-one.sh build, then
#      tests/python/run.sh build (the Python package, /usr/bin/python3), then
#      tests/kernel/run.sh build (the dma-buf tests in qemu on the test kernel), then
#      tests/systemd/run.sh build (the Debian package under systemd in nspawn), then
#      tests/compat/run.sh build (the previous release's dmaload-ctl and daemon against
#      this tree's)
#   2. make SANITIZE=address,undefined ...   and tests/run-one.sh build-san
#      (ASan with leak detection: the daemon must exit 0 on SIGTERM without leaks)
#   3. make fuzz, then build-fuzz/fuzz-proto for FUZZ_SECONDS (default 20) on a seed
#      corpus of valid messages written by tests/fuzz/gen-corpus.c, and the stateful
#      fuzzer build-fuzz/fuzz-daemon for as long on tests/fuzz/corpus-daemon/
#      (tests/fuzz/run-daemon.sh)
# then prints the totals as the very last line: "N passed, N failed, N skipped", and
# exits 1 if anything failed. A build that fails counts as one FAIL, and so does a
# part that exits non-zero without a FAIL line of its own (part() below).
set -u
cd "$(dirname "$0")/.."

FUZZ_SECONDS=${FUZZ_SECONDS:-20}
LOG=$(mktemp /tmp/dmaload-check.XXXXXX)
MAKELOG=$(mktemp /tmp/dmaload-make.XXXXXX)
trap 'rm -f "$LOG" "$MAKELOG"' EXIT

note() { echo "# $*" >&2; }

# build LABEL MAKE-ARGS...: runs make quietly; on failure, a FAIL line and make's tail.
build() {
	local label=$1
	shift
	note "make $*"
	if make -j2 "$@" >"$MAKELOG" 2>&1; then
		return 0
	fi
	tail -n 40 "$MAKELOG" >&2
	echo "FAIL build: $label: make $* failed" | tee -a "$LOG"
	return 1
}

# part NAME CMD...: runs one part of the suite, its lines into the log. A part that
# exits non-zero without a FAIL line of its own (killed, or a harness step that failed
# under set -e) counts as one FAIL: a part never drops out of the totals silently.
part() {
	local name=$1 before rc
	shift
	before=$(grep -c '^FAIL ' "$LOG")
	"$@" | tee -a "$LOG"
	rc=${PIPESTATUS[0]}
	if [ "$rc" -ne 0 ] && [ "$(grep -c '^FAIL ' "$LOG")" -eq "$before" ]; then
		echo "FAIL $name: exited with status $rc and no result line" | tee -a "$LOG"
	fi
}

# The daemon's layering: no include cycle among its modules (docs/ARCHITECTURE.md).
part layers bash tests/layers/check-includes.sh

if build plain all tests; then
	part suite tests/run-one.sh build
	note "tests/python/run.sh build (the dmaload package over build/libdmaload.so.0)"
	part python bash tests/python/run.sh build
	note "tests/kernel/run.sh build (qemu; the first run on a machine builds its kernel)"
	part kernel bash tests/kernel/run.sh build
	note "tests/systemd/run.sh build (nspawn; the first run on a machine debootstraps its tree)"
	part systemd bash tests/systemd/run.sh build
	note "tests/compat/run.sh build (the previous release's client and daemon, both ways)"
	part compat bash tests/compat/run.sh build
fi

if build sanitizers SANITIZE=address,undefined all tests; then
	ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:strict_string_checks=1:detect_stack_use_after_return=1} \
	UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1} \
		part suite-san tests/run-one.sh build-san
fi

if build fuzz fuzz; then
	corpus=$(mktemp -d /tmp/dmaload-corpus.XXXXXX)
	artifacts=$(mktemp -d /tmp/dmaload-fuzz.XXXXXX)
	if ! cc -std=gnu11 -D_GNU_SOURCE -Iproto -Itests/fuzz -o build-fuzz/gen-corpus \
		tests/fuzz/gen-corpus.c proto/dmaload-proto.c >"$MAKELOG" 2>&1 ||
	   ! build-fuzz/gen-corpus "$corpus" >"$MAKELOG" 2>&1; then
		cat "$MAKELOG" >&2
		echo "FAIL fuzz: proto: cannot build or write the seed corpus" | tee -a "$LOG"
	else
		note "fuzz-proto for $FUZZ_SECONDS s"
		if timeout -k 10 $((FUZZ_SECONDS + 60)) build-fuzz/fuzz-proto \
			-max_total_time="$FUZZ_SECONDS" -timeout=10 -rss_limit_mb=2048 \
			-artifact_prefix="$artifacts/" "$corpus" >"$MAKELOG" 2>&1; then
			runs=$(grep -o 'Done [0-9]* runs' "$MAKELOG" | tail -1)
			echo "PASS fuzz: proto decoder, ${FUZZ_SECONDS} s (${runs:-?})" | tee -a "$LOG"
		else
			tail -n 60 "$MAKELOG" >&2
			mkdir -p build-fuzz/crashes
			cp "$artifacts"/* build-fuzz/crashes/ 2>/dev/null
			echo "FAIL fuzz: proto decoder: crash input saved in build-fuzz/crashes/" |
				tee -a "$LOG"
		fi
	fi
	rm -rf "$corpus" "$artifacts"
	note "fuzz-daemon for $FUZZ_SECONDS s"
	part fuzz-daemon bash tests/fuzz/run-daemon.sh "$FUZZ_SECONDS"
fi

passed=$(grep -c '^PASS ' "$LOG")
failed=$(grep -c '^FAIL ' "$LOG")
skipped=$(grep -c '^SKIP ' "$LOG")
echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
