#!/bin/bash
# Runs every test program of one build once: tests/run-one.sh BUILD (default build).
# tests/run-one.sh BUILD PROGRAM... runs those instead (paths from the tree's root),
# each under $TEST_RUNNER when set (tests/python/run.sh: the interpreter).
#
# Each program in BUILD/tests/unit and BUILD/tests/integration prints one line per case:
# "PASS|FAIL|SKIP <suite>: <case>[: why]". A program gets TEST_TIMEOUT seconds (default
# 300); one that exits non-zero or is killed without having printed a FAIL counts as
# one more FAIL named after it. Its stderr (daemon log tails, sanitizer reports) is shown
# when it failed. The last line is "N passed, N failed, N skipped"; the exit status is
# 1 if anything failed.
#
# Environment given to the programs: DMALOADD, DMALOAD_CTL (the build's binaries),
# DMALOAD_TEST_TMP (a fresh 0755 dir under /var/tmp, on a real filesystem for O_DIRECT,
# removed at the end), and for sanitizer builds ASAN_OPTIONS / UBSAN_OPTIONS unless set.
set -u
cd "$(dirname "$0")/.."

BUILD=${1:-build}
[ $# -gt 0 ] && shift
TEST_TIMEOUT=${TEST_TIMEOUT:-300}
RUNNER=${TEST_RUNNER:-}

case "$BUILD" in
/*) abs=$BUILD ;;
*) abs=$PWD/$BUILD ;;
esac
export DMALOADD="$abs/dmaloadd"
export DMALOAD_CTL="$abs/dmaload-ctl"
case "$BUILD" in
*san*)
	export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:strict_string_checks=1:detect_stack_use_after_return=1:check_initialization_order=1}
	export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
	;;
esac
ulimit -c 0

DMALOAD_TEST_TMP=$(mktemp -d /var/tmp/dmaload-run.XXXXXX) || exit 1
export DMALOAD_TEST_TMP
chmod 755 "$DMALOAD_TEST_TMP"	# the trust test's clients run as nobody
OUT=$(mktemp "$DMALOAD_TEST_TMP/out.XXXXXX")
ERR=$(mktemp "$DMALOAD_TEST_TMP/err.XXXXXX")
trap 'rm -rf "$DMALOAD_TEST_TMP"' EXIT

passed=0 failed=0 skipped=0
progs=("$@")
if [ $# -eq 0 ]; then
	for dir in "$BUILD/tests/unit" "$BUILD/tests/integration"; do
		for p in "$dir"/*; do
			[ -f "$p" ] && [ -x "$p" ] && progs+=("$p")
		done
	done
fi
if [ ${#progs[@]} -eq 0 ]; then
	echo "FAIL run-one: no test programs in $BUILD/tests (run make tests)"
	echo "0 passed, 1 failed, 0 skipped"
	exit 1
fi

for p in "${progs[@]}"; do
	name=$(basename "$p" .py)
	start=$SECONDS
	# shellcheck disable=SC2086 # $RUNNER: empty, or one command word
	timeout -k 10 "$TEST_TIMEOUT" $RUNNER "$p" >"$OUT" 2>"$ERR"
	rc=$?
	cat "$OUT"
	np=$(grep -c '^PASS ' "$OUT")
	nf=$(grep -c '^FAIL ' "$OUT")
	ns=$(grep -c '^SKIP ' "$OUT")
	if [ "$rc" -ne 0 ] && [ "$nf" -eq 0 ]; then
		case $rc in
		124|137) why="killed after the ${TEST_TIMEOUT} s time limit" ;;
		*) if [ "$rc" -gt 128 ]; then why="killed by signal $((rc - 128))"
		   else why="exited with status $rc"; fi ;;
		esac
		echo "FAIL $name: $why without reporting a failure"
		nf=1
	fi
	if [ "$nf" -gt 0 ] && [ -s "$ERR" ]; then
		echo "---- stderr of $name ----" >&2
		tail -n 200 "$ERR" >&2
		echo "----" >&2
	fi
	echo "# $name: $np passed, $nf failed, $ns skipped in $((SECONDS - start)) s" >&2
	passed=$((passed + np)) failed=$((failed + nf)) skipped=$((skipped + ns))
done

leftover=$(find "$DMALOAD_TEST_TMP" -mindepth 1 -maxdepth 1 -name 'dmaload-*' | head -5)
if [ -n "$leftover" ]; then
	echo "# note: test dirs left behind (a program did not clean up): $leftover" >&2
fi
echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
