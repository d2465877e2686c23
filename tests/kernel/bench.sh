#!/bin/bash
# tests/kernel/bench.sh [BUILD_DIR]: the seed's table (tests/kernel/bench-guest.c) inside
# the patched qemu guest; not part of make check. Needs `make all tests` first, and the
# cached kernels of tests/kernel/run.sh (it builds them if missing).
#
# The guest gets 4 GiB (the 1 GiB workload's buffer and its page cache), udmabufs up to
# 2 GiB, and an hour. The table goes to stdout and to BUILD_DIR/kernel-bench.md; the
# whole console stays in BUILD_DIR/kernel-console-patched.log. TCG timings say nothing
# about hardware: the rows prove which paths run, and what they leave in the page cache.
#
# Environment: BENCH_SMALL=1 makes 4 x 4 MiB and 1 x 64 MiB files instead (a check of
# the bench itself, in a minute or two); KERNEL_TEST_KERNELS (default patched).
set -uo pipefail
cd "$(dirname "$0")/../.."

BUILD=${1:-build}
[ -x "$BUILD/tests/kernel/bench-guest" ] || { echo "no $BUILD/tests/kernel/bench-guest (make tests)" >&2; exit 1; }
KERNEL_TEST_KERNELS=${KERNEL_TEST_KERNELS:-patched} \
KERNEL_TEST_PROGRAMS="$BUILD/tests/kernel/bench-guest" \
KERNEL_TEST_MEM=${KERNEL_TEST_MEM:-4G} \
KERNEL_TEST_TIMEOUT=${KERNEL_TEST_TIMEOUT:-3600} \
KERNEL_TEST_APPEND="PROG_TIMEOUT=3500 udmabuf.size_limit_mb=2048 ${KERNEL_TEST_APPEND:-}" \
	bash tests/kernel/run.sh "$BUILD" >&2
rc=$?
for k in ${KERNEL_TEST_KERNELS:-patched}; do
	# The first line of the guest's may follow the firmware's terminal codes.
	echo "## $k kernel: $(tr -d '\r' <"$BUILD/kernel-console-$k.log" |
		grep -aom1 '# guest: [0-9].*' | cut -c10-)"
	echo
	tr -d '\r' <"$BUILD/kernel-console-$k.log" | sed -n 's/^BENCH //p'
	echo
done | tee "$BUILD/kernel-bench.md"
exit $rc
