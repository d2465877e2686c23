#!/bin/bash
# tests/kernel/run.sh BUILD_DIR: the dma-buf tests on real kernels, in qemu (make
# check-kernel). BUILD_DIR (default build) must hold dmaloadd, dmaload-ctl and
# tests/kernel/guest-* (make all tests).
#
#   1. the test kernels: tests/kernel/build-kernel.sh stock and patched (cached; the
#      first run on a machine builds them: about 6 minutes on 2 cores for the stock
#      one, then under a minute for the patched one, built from the stock tree);
#   2. the test disk: every guest program writes its files with `--make-files DIR`,
#      and `mke2fs -d DIR` turns DIR into an ext4 image (no mount on the host);
#   3. the initramfs: busybox, tests/kernel/init as /init, the binaries and the shared
#      libraries ldd names, with the dynamic loader, at their host paths;
#   4. for each kernel, qemu-system-x86_64 under TCG (nested KVM hangs on these
#      machines) on a fresh copy of the disk, serial console into
#      BUILD_DIR/kernel-console-KERNEL.log, -no-reboot, and a time limit. The kernel
#      command line carries DMALOAD_KERNEL=stock|patched, which the kernel hands to
#      /init's environment, so the guest programs know what to expect.
#
# Prints the guests' results with the suite named after the kernel ("PASS
# kernel-stock: <case>", "FAIL kernel-patched: <case>"), a FAIL line for a guest that
# did not finish (time limit, panic) with the console's last lines on stderr, and last
# "N passed, N failed, N skipped". Exits 1 if anything failed, including a kernel
# build (never a silent skip).
#
# Environment: KERNEL_TEST_KERNELS (default "stock patched"), KERNEL_TEST_PROGRAMS
# (the programs the guest runs, default BUILD_DIR/tests/kernel/guest-*; bench.sh
# names bench-guest), KERNEL_TEST_TIMEOUT
# (seconds for qemu, per guest, default 300), KERNEL_TEST_MEM (default 1G),
# KERNEL_TEST_APPEND (more kernel command line, e.g. udmabuf.size_limit_mb=8),
# DMALOAD_TEST_KEEP=1 keeps the temp dir (initramfs, disk image).
set -euo pipefail
cd "$(dirname "$0")/../.."

BUILD=${1:-build}
KERNELS=${KERNEL_TEST_KERNELS:-stock patched}
TIMEOUT=${KERNEL_TEST_TIMEOUT:-300}
MEM=${KERNEL_TEST_MEM:-1G}
HUGEPAGES=16			# 32 MiB of 2 MiB pages, for hugetlb memfd tests
MARKER="dmaload-guest: finished"

note() { echo "# $*" >&2; }

# A harness failure: one FAIL line (counted like a test's), the totals, exit 1.
harness_fail() {
	echo "FAIL kernel: harness: $*"
	echo "0 passed, 1 failed, 0 skipped"
	exit 1
}

for f in "$BUILD/dmaloadd" "$BUILD/dmaload-ctl"; do
	[ -x "$f" ] || harness_fail "no $f (run make all tests first)"
done
guests=()
for f in ${KERNEL_TEST_PROGRAMS:-"$BUILD"/tests/kernel/guest-*}; do
	[ -f "$f" ] && [ -x "$f" ] && guests+=("$f")
done
[ ${#guests[@]} -gt 0 ] || harness_fail "no $BUILD/tests/kernel/guest-* (run make tests first)"
for tool in qemu-system-x86_64:qemu-system-x86 mke2fs:e2fsprogs cpio:cpio \
	busybox:busybox-static ldd:libc-bin timeout:coreutils; do
	command -v "${tool%%:*}" >/dev/null ||
		harness_fail "${tool%%:*} is missing (package ${tool#*:}: bash tests/deps.sh)"
done

work=$(mktemp -d /var/tmp/dmaload-kernel.XXXXXX)
if [ "${DMALOAD_TEST_KEEP:-}" = 1 ]; then
	note "keeping $work"
else
	trap 'rm -rf "$work"' EXIT
fi

# 1. The kernels. Their progress goes to stderr as it comes; the last line says why
# one failed. A kernel that did not build is one FAIL line; the others still run.
declare -A kernel_of
: >"$work/results"
for k in $KERNELS; do
	if kernel=$(bash tests/kernel/build-kernel.sh "$k" 2> >(tee "$work/build-$k.err" >&2)); then
		kernel_of[$k]=$kernel
		note "$k kernel: $kernel"
	else
		sleep 0.2	# let tee finish writing
		echo "FAIL kernel-$k: the $k test kernel did not build: $(tail -n 1 "$work/build-$k.err")" >>"$work/results"
	fi
done

# 2. The disk: each program's own files, in one ext4 image with room to spare for
# files the guest writes.
mkdir "$work/disk"
for g in "${guests[@]}"; do
	"$g" --make-files "$work/disk" >&2 ||
		harness_fail "$(basename "$g") --make-files failed"
done
# ext4's metadata and journal take a share of big disks (the bench's 2 GiB of files).
used_mib=$(du -sm "$work/disk" | cut -f1)
disk_mib=$(( used_mib + used_mib / 8 + 64 ))
truncate -s "${disk_mib}M" "$work/disk.img"
mke2fs -q -F -t ext4 -L dmaload-test -d "$work/disk" "$work/disk.img" >&2 ||
	harness_fail "mke2fs -d failed"

# 3. The initramfs.
root=$work/root
mkdir -p "$root"/{bin,dev,proc,sys,tmp,run,mnt,dmaload/tests}

# install_bin SRC DEST: SRC at DEST in the initramfs, with every library ldd lists
# (and the loader, its first field when it has no "=>") at the host's own path.
install_bin() {
	local src=$1 dest=$2 a b c lib
	install -D -m 755 "$src" "$root$dest"
	while read -r a b c _; do
		if [ "$b" = "=>" ] && [ "${c#/}" != "$c" ]; then
			lib=$c
		elif [ "${a#/}" != "$a" ]; then
			lib=$a
		else
			continue	# linux-vdso, or "not a dynamic executable"
		fi
		[ -e "$root$lib" ] || install -D -m 755 "$(readlink -f "$lib")" "$root$lib"
	done < <(ldd "$src" 2>/dev/null || true)
}

install_bin "$(command -v busybox)" /bin/busybox
install_bin "$BUILD/dmaloadd" /dmaload/dmaloadd
install_bin "$BUILD/dmaload-ctl" /dmaload/dmaload-ctl
for g in "${guests[@]}"; do
	install_bin "$g" "/dmaload/tests/$(basename "$g")"
done
# glibc loads libgcc_s with dlopen when a thread is cancelled or exits through
# pthread_exit; ldd cannot see that. awk reads to the end: had it left at the first
# match, ldconfig could die of SIGPIPE, and pipefail with set -e end this script there
# without a word (it did, once in a make check).
gcc_s=$(ldconfig -p | awk '!p && /libgcc_s\.so\.1 .*x86-64/ { p = $NF } END { print p }')
[ -n "$gcc_s" ] && [ ! -e "$root$gcc_s" ] && install -D -m 644 "$(readlink -f "$gcc_s")" "$root$gcc_s"
[ -f tests/kernel/dmaloadd.conf ] && install -m 644 tests/kernel/dmaloadd.conf "$root/dmaload/"
install -m 755 tests/kernel/init "$root/init"
# Owned by root in the guest, whoever runs this; uncompressed, so TCG spends no time
# inflating it.
(cd "$root" && find . -print0 | LC_ALL=C sort -z |
	cpio --null -o -H newc -R 0:0 --quiet) >"$work/initramfs.cpio"
note "initramfs $(du -h "$work/initramfs.cpio" | cut -f1), disk ${disk_mib} MiB"

# 4. qemu, once per kernel. The kernel panics on an oops and reboots at once on a
# panic (panic=-1), which -no-reboot turns into qemu's exit: a crash ends the run
# like the end does.
for k in $KERNELS; do
	[ -n "${kernel_of[$k]:-}" ] || continue
	console=$BUILD/kernel-console-$k.log
	cp --sparse=always "$work/disk.img" "$work/disk-$k.img"
	note "qemu, $k kernel (TCG, $MEM, time limit $TIMEOUT s); console in $console"
	start=$SECONDS
	rc=0
	timeout -k 10 "$TIMEOUT" qemu-system-x86_64 -accel tcg -m "$MEM" -smp 1 \
		-nographic -no-reboot -nic none \
		-kernel "${kernel_of[$k]}" -initrd "$work/initramfs.cpio" \
		-append "console=ttyS0 loglevel=5 panic=-1 oops=panic hugepages=$HUGEPAGES DMALOAD_KERNEL=$k ${KERNEL_TEST_APPEND:-}" \
		-drive "file=$work/disk-$k.img,format=raw,if=virtio" \
		</dev/null >"$console" 2>&1 || rc=$?
	note "qemu ran $((SECONDS - start)) s with the $k kernel (exit status $rc)"
	rm -f "$work/disk-$k.img"

	# The serial console ends lines with \r\n. The guest's suite is "kernel"; the
	# host names the kernel in it.
	tr -d '\r' <"$console" >"$work/console-$k"
	grep -E '^(PASS|FAIL|SKIP) kernel: ' "$work/console-$k" |
		sed "s/^\([A-Z]*\) kernel: /\1 kernel-$k: /" >>"$work/results" || true
	if ! grep -qxF "$MARKER" "$work/console-$k"; then
		if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
			why="killed after the ${TIMEOUT} s time limit"
		elif grep -q 'Kernel panic' "$work/console-$k"; then
			why="kernel panic: $(grep -m1 'Kernel panic' "$work/console-$k" | cut -c1-160)"
		else
			why="qemu exited with status $rc before the end"
		fi
		echo "FAIL kernel-$k: guest did not finish: $why" >>"$work/results"
		echo "---- last 30 lines of $console ----" >&2
		tail -n 30 "$work/console-$k" | sed 's/^/| /' >&2
		echo "----" >&2
	fi
done
cat "$work/results"

passed=$(grep -c '^PASS ' "$work/results" || true)
failed=$(grep -c '^FAIL ' "$work/results" || true)
skipped=$(grep -c '^SKIP ' "$work/results" || true)
if [ "$failed" -gt 0 ]; then
	note "the whole consoles are in $BUILD/kernel-console-*.log"
fi
echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
