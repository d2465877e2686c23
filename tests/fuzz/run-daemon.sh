#!/bin/bash
# Runs the stateful daemon fuzzer (build-fuzz/fuzz-daemon, from make fuzz) for SECONDS
# on a scratch copy of tests/fuzz/corpus-daemon/, and prints one line:
#   PASS fuzz: daemon requests, N s (Done N runs, N exec/s)
#   FAIL fuzz: daemon requests: crash input saved in build-fuzz/crashes/
# make check runs it for FUZZ_SECONDS (20), make fuzz-long for an hour. New inputs
# stay in the scratch copy (FUZZ_KEEP_CORPUS=DIR keeps them there instead); the seeds
# are rewritten with build-fuzz/gen-corpus --daemon tests/fuzz/corpus-daemon.
#
#   tests/fuzz/run-daemon.sh SECONDS
set -u
cd "$(dirname "$0")/../.."

secs=${1:-20}
bin=build-fuzz/fuzz-daemon
if [ ! -x "$bin" ]; then
	echo "FAIL fuzz: daemon requests: $bin not built (make fuzz)"
	exit 1
fi
corpus=${FUZZ_KEEP_CORPUS:-$(mktemp -d /tmp/dmaload-corpus-daemon.XXXXXX)}
mkdir -p "$corpus"
artifacts=$(mktemp -d /tmp/dmaload-fuzz-daemon.XXXXXX)
log=$(mktemp /tmp/dmaload-fuzz-daemon-log.XXXXXX)
cleanup() {
	[ -n "${FUZZ_KEEP_CORPUS:-}" ] || rm -rf "$corpus"
	rm -rf "$artifacts" "$log"
}
trap cleanup EXIT
cp tests/fuzz/corpus-daemon/* "$corpus"/

# -timeout: an input that holds the daemon busy past it is a hang worth keeping (the
# target's own bound on "quiet" is 10 s). The files the loads read are made under
# /var/tmp (O_DIRECT) by the target itself and removed when it exits.
if timeout -k 10 $((secs + 120)) "$bin" -max_total_time="$secs" -timeout=30 \
	-rss_limit_mb=4096 -max_len=4096 -print_final_stats=1 \
	-artifact_prefix="$artifacts/" "$corpus" >"$log" 2>&1; then
	runs=$(grep -o 'Done [0-9]* runs' "$log" | tail -1)
	rate=$(grep -o 'exec/s: [0-9]*' "$log" | tail -1)
	echo "PASS fuzz: daemon requests, $secs s (${runs:-?}, ${rate:-?})"
	exit 0
fi
tail -n 60 "$log" >&2
mkdir -p build-fuzz/crashes
cp "$artifacts"/* build-fuzz/crashes/ 2>/dev/null
echo "FAIL fuzz: daemon requests: crash input saved in build-fuzz/crashes/"
exit 1
