#!/bin/bash
# tests/kernel/build-kernel.sh: the qemu test kernel, built once per machine and cached.
#
# Builds a bzImage from Debian's linux-source-6.1 package (/usr/src/linux-source-6.1.tar.xz)
# with `make tinyconfig` plus tests/kernel/kernel.config, and prints the bzImage's path
# as the only line on stdout. Progress and errors go to stderr.
#
# The image is cached under ${XDG_CACHE_HOME:-$HOME/.cache}/dmaloadd/, in a directory
# named after the source package's version and a hash of the fragment, so a new Debian
# kernel source or an edited fragment builds once more, and everything else reuses it.
# The build itself runs in a temp dir under the cache dir (never in the clone: a kernel
# tree is 1.5 GB), and is removed afterwards; its log is kept beside the image, or, when
# the build fails, as build-failed.log in the cache dir.
#
# Exit status 0 with the path on stdout, or 1 with the reason as the last stderr line.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
FRAGMENT=$here/kernel.config
TARBALL=${LINUX_SOURCE_TARBALL:-/usr/src/linux-source-6.1.tar.xz}
CACHE=${XDG_CACHE_HOME:-$HOME/.cache}/dmaloadd

die() {
	echo "build-kernel: $*" >&2
	exit 1
}
note() { echo "# $*" >&2; }

[ -r "$TARBALL" ] || die "no kernel source at $TARBALL (install linux-source-6.1: bash tests/deps.sh)"
for tool in make gcc flex bison bc xz; do
	command -v "$tool" >/dev/null || die "$tool is missing (bash tests/deps.sh)"
done

# The key: the package's version (the tarball's contents) and the fragment's hash.
# Without dpkg (a tarball from elsewhere), the tarball's own hash stands in.
version=$(dpkg-query -W -f='${Version}' linux-source-6.1 2>/dev/null || true)
[ -n "$version" ] || version=$(sha256sum "$TARBALL" | cut -c1-12)
fraghash=$(sha256sum "$FRAGMENT" | cut -c1-12)
key=linux-${version//[^A-Za-z0-9.+-]/_}-$fraghash
dest=$CACHE/$key

if [ -s "$dest/bzImage" ]; then
	echo "$dest/bzImage"
	exit 0
fi

mkdir -p "$CACHE"
# Two runs at once (make check-kernel in two clones) build once: the second waits here
# and then finds the image.
exec 9>"$CACHE/build.lock"
if ! flock -n 9; then
	note "another build of the test kernel is running; waiting for it"
	flock -w 1800 9 || die "gave up waiting for $CACHE/build.lock after 30 minutes"
fi
if [ -s "$dest/bzImage" ]; then
	echo "$dest/bzImage"
	exit 0
fi

stage=
work=$(mktemp -d "$CACHE/build.XXXXXX")
trap 'rm -rf "$work" ${stage:+"$stage"}' EXIT
log=$work/build.log
jobs=$(nproc)
start=$SECONDS

# Leaves the log where a person can find it, and says why in one line.
fail() {
	cp "$log" "$CACHE/build-failed.log" 2>/dev/null || true
	tail -n 30 "$log" >&2 || true
	die "$* (log: $CACHE/build-failed.log)"
}

note "building the test kernel $key in $work (11 to 13 minutes on 2 cores, once per machine)"
tar -C "$work" -xf "$TARBALL" || die "cannot unpack $TARBALL"
src=$(find "$work" -mindepth 1 -maxdepth 1 -type d -name 'linux*' | head -1)
[ -n "$src" ] && [ -f "$src/Makefile" ] || die "$TARBALL holds no kernel tree"

# tinyconfig, then the fragment merged by kbuild's own NAME.config target (merge_config
# plus olddefconfig), which needs the fragment under kernel/configs/.
cp "$FRAGMENT" "$src/kernel/configs/dmaload-test.config"
make -C "$src" tinyconfig >"$log" 2>&1 || fail "make tinyconfig failed"
make -C "$src" dmaload-test.config >>"$log" 2>&1 || fail "merging kernel.config failed"

# Kconfig drops an option whose dependencies are off without a word: check every "=y"
# of the fragment made it.
missing=()
while IFS= read -r line; do
	grep -qxF "$line" "$src/.config" || missing+=("${line%=y}")
done < <(grep -E '^CONFIG_[A-Z0-9_]+=y$' "$FRAGMENT")
if [ ${#missing[@]} -gt 0 ]; then
	cp "$src/.config" "$CACHE/build-failed.config"
	die "not =y after olddefconfig: ${missing[*]} (a dependency is off; config in $CACHE/build-failed.config)"
fi

note "make -j$jobs bzImage"
make -C "$src" -j"$jobs" bzImage >>"$log" 2>&1 || fail "make bzImage failed"

# Publish whole or not at all: a half-copied image must never look cached.
stage=$(mktemp -d "$CACHE/stage.XXXXXX")
cp "$src/arch/x86/boot/bzImage" "$stage/bzImage"
cp "$src/.config" "$stage/config"
cp "$log" "$stage/build.log"
echo "built in $((SECONDS - start)) s on $jobs cores" >"$stage/build-time"
rm -rf "$dest"
mv "$stage" "$dest"
note "test kernel built in $((SECONDS - start)) s: $dest/bzImage"
echo "$dest/bzImage"
