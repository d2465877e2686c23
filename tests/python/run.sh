#!/bin/bash
# The Python package's tests: tests/python/run.sh BUILD (default build).
#
# Runs each tests/python/test_*.py with Debian's /usr/bin/python3 against BUILD's
# daemon and library: DMALOADD=BUILD/dmaloadd, libdmaload.so.0 found by the dynamic
# loader through LD_LIBRARY_PATH=BUILD (as a user's build tree would be), the package
# from python/ (PYTHONPATH). Each program prints one line per case like the C tests
# ("PASS|FAIL|SKIP <suite>: <case>[: why]") and gets TEST_TIMEOUT seconds (300); one
# that exits non-zero without a FAIL line counts as one FAIL. The last line is
# "N passed, N failed, N skipped"; the exit status is 1 if anything failed.
# numpy and torch (python3-numpy, python3-torch: tests/deps.sh) are needed by
# test_safetensors.py; without them its cases SKIP.
set -u
cd "$(dirname "$0")/../.."

BUILD=${1:-build}
TEST_TIMEOUT=${TEST_TIMEOUT:-300}
PY=${PYTHON:-/usr/bin/python3}
case "$BUILD" in
/*) abs=$BUILD ;;
*) abs=$PWD/$BUILD ;;
esac
export DMALOADD="$abs/dmaloadd"
export LD_LIBRARY_PATH="$abs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export PYTHONPATH="$PWD/python${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONDONTWRITEBYTECODE=1
ulimit -c 0

DMALOAD_TEST_TMP=$(mktemp -d /var/tmp/dmaload-py.XXXXXX) || exit 1
export DMALOAD_TEST_TMP
chmod 755 "$DMALOAD_TEST_TMP"
OUT=$(mktemp "$DMALOAD_TEST_TMP/out.XXXXXX")
ERR=$(mktemp "$DMALOAD_TEST_TMP/err.XXXXXX")
trap 'rm -rf "$DMALOAD_TEST_TMP"' EXIT

passed=0 failed=0 skipped=0
for p in tests/python/test_*.py; do
	name=$(basename "$p" .py)
	start=$SECONDS
	timeout -k 10 "$TEST_TIMEOUT" "$PY" "$p" >"$OUT" 2>"$ERR"
	rc=$?
	cat "$OUT"
	np=$(grep -c '^PASS ' "$OUT")
	nf=$(grep -c '^FAIL ' "$OUT")
	ns=$(grep -c '^SKIP ' "$OUT")
	if [ "$rc" -ne 0 ] && [ "$nf" -eq 0 ]; then
		case $rc in
		124|137) why="killed after the ${TEST_TIMEOUT} s time limit" ;;
		*) why="exited with status $rc" ;;
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
echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
