#!/bin/bash
# The Python package's tests: tests/python/run.sh BUILD (default build).
#
# Runs each tests/python/test_*.py with Debian's /usr/bin/python3 against BUILD's
# daemon and library: DMALOADD=BUILD/dmaloadd, libdmaload.so.0 found by the dynamic
# loader through LD_LIBRARY_PATH=BUILD (as a user's build tree would be), the package
# from python/ (PYTHONPATH). Each program prints one line per case like the C tests
# ("PASS|FAIL|SKIP <suite>: <case>[: why]"); tests/run-one.sh runs them as it runs the
# C programs (TEST_TIMEOUT, a silent non-zero exit is a FAIL, the totals line).
# numpy and torch (python3-numpy, python3-torch: tests/deps.sh) are needed by
# test_safetensors.py; without them its cases SKIP.
set -u
cd "$(dirname "$0")/../.."

BUILD=${1:-build}
PY=${PYTHON:-/usr/bin/python3}
case "$BUILD" in
/*) abs=$BUILD ;;
*) abs=$PWD/$BUILD ;;
esac
export LD_LIBRARY_PATH="$abs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export PYTHONPATH="$PWD/python${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONDONTWRITEBYTECODE=1
TEST_RUNNER=$PY exec bash tests/run-one.sh "$BUILD" tests/python/test_*.py
