#!/bin/bash
# tests/kernel/build-kernel.sh [stock|patched]: the qemu test kernels, built once per
# machine and cached.
#
#   stock    Debian's linux-source-6.12 (/usr/src/linux-source-6.12.tar.xz) with
#            `make tinyconfig` plus tests/kernel/kernel.config. It proves what an
#            unpatched kernel refuses (copy_file_range into a memfd or a dma-buf).
#   patched  the same tree, config and version with tests/kernel/patches/*.patch
#            applied: copy_file_range from a regular file into memfds and dma-bufs.
#
# Prints the bzImage's path as the only line on stdout. Progress and errors go to stderr.
#
# The images are cached under ${XDG_CACHE_HOME:-$HOME/.cache}/dmaloadd/, in directories
# named after the source package's version and a hash of the fragment (and, for the
# patched kernel, of the patches), so a new Debian kernel source, an edited fragment or
# an edited patch builds once more, and everything else reuses them. The stock build's
# tree stays beside its image (tree/, about 1.5 GB): the patched kernel is built from a
# copy of it, so that only the files the patches touch are compiled again. The build
# log is kept beside the image, or, when a build fails, as build-failed.log in the
# cache dir.
#
# Exit status 0 with the path on stdout, or 1 with the reason as the last stderr line.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
FLAVOUR=${1:-stock}
PKG=linux-source-6.12
FRAGMENT=$here/kernel.config
PATCHES=$here/patches
TARBALL=${LINUX_SOURCE_TARBALL:-/usr/src/$PKG.tar.xz}
CACHE=${XDG_CACHE_HOME:-$HOME/.cache}/dmaloadd

die() {
	echo "build-kernel: $*" >&2
	exit 1
}
note() { echo "# $*" >&2; }

case $FLAVOUR in
stock | patched) ;;
*) die "unknown kernel '$FLAVOUR' (stock or patched)" ;;
esac
[ -r "$TARBALL" ] || die "no kernel source at $TARBALL (install $PKG: bash tests/deps.sh)"
for tool in make gcc flex bison bc xz patch; do
	command -v "$tool" >/dev/null || die "$tool is missing (bash tests/deps.sh)"
done

# The key: the package's version (the tarball's contents) and the fragment's hash.
# Without dpkg (a tarball from elsewhere), the tarball's own hash stands in.
version=$(dpkg-query -W -f='${Version}' $PKG 2>/dev/null || true)
[ -n "$version" ] || version=$(sha256sum "$TARBALL" | cut -c1-12)
fraghash=$(sha256sum "$FRAGMENT" | cut -c1-12)
stock_key=linux-${version//[^A-Za-z0-9.+-]/_}-$fraghash
patches=()
if [ "$FLAVOUR" = patched ]; then
	patches=("$PATCHES"/*.patch)
	[ -f "${patches[0]}" ] || die "no patches in $PATCHES"
	patchhash=$(cat "${patches[@]}" | sha256sum | cut -c1-12)
	key=$stock_key-patched-$patchhash
else
	key=$stock_key
fi
dest=$CACHE/$key

if [ -s "$dest/bzImage" ]; then
	echo "$dest/bzImage"
	exit 0
fi

# The patched kernel starts from the stock tree: build that first (it takes the lock
# itself, and returns at once when it is cached).
if [ "$FLAVOUR" = patched ]; then
	"$0" stock >/dev/null || die "the stock kernel, which the patched one starts from, did not build"
fi

mkdir -p "$CACHE"
# Two runs at once (make check-kernel in two clones) build once: the second waits here
# and then finds the image.
exec 9>"$CACHE/build.lock"
if ! flock -n 9; then
	note "another build of a test kernel is running; waiting for it"
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

if [ "$FLAVOUR" = stock ]; then
	note "building the stock test kernel $key in $work (6 to 15 minutes on 2 cores, once per machine)"
	tar -C "$work" -xf "$TARBALL" || die "cannot unpack $TARBALL"
	src=$(find "$work" -mindepth 1 -maxdepth 1 -type d -name 'linux*' | head -1)
	[ -n "$src" ] && [ -f "$src/Makefile" ] || die "$TARBALL holds no kernel tree"

	# tinyconfig, then the fragment merged by kbuild's own NAME.config target
	# (merge_config plus olddefconfig), which needs the fragment under kernel/configs/.
	cp "$FRAGMENT" "$src/kernel/configs/dmaload-test.config"
	make -C "$src" tinyconfig >"$log" 2>&1 || fail "make tinyconfig failed"
	make -C "$src" dmaload-test.config >>"$log" 2>&1 || fail "merging kernel.config failed"

	# Kconfig drops an option whose dependencies are off without a word: check every
	# "=y" of the fragment made it.
	missing=()
	while IFS= read -r line; do
		grep -qxF "$line" "$src/.config" || missing+=("${line%=y}")
	done < <(grep -E '^CONFIG_[A-Z0-9_]+=y$' "$FRAGMENT")
	if [ ${#missing[@]} -gt 0 ]; then
		cp "$src/.config" "$CACHE/build-failed.config"
		die "not =y after olddefconfig: ${missing[*]} (a dependency is off; config in $CACHE/build-failed.config)"
	fi
else
	note "building the patched test kernel $key from the stock tree in $work (a few minutes)"
	[ -f "$CACHE/$stock_key/tree/Makefile" ] ||
		die "no stock tree in $CACHE/$stock_key/tree (delete $CACHE/$stock_key to rebuild it)"
	# A real copy, not hard links: the compiler rewrites object files in place.
	src=$work/linux
	cp -a "$CACHE/$stock_key/tree" "$src" || die "cannot copy the stock tree"
	: >"$log"
	for p in "${patches[@]}"; do
		echo "## patch -p1 < $(basename "$p")" >>"$log"
		patch -d "$src" -p1 --no-backup-if-mismatch <"$p" >>"$log" 2>&1 ||
			fail "$(basename "$p") does not apply to $PKG $version"
	done
fi

note "nice make -j$jobs bzImage"
nice make -C "$src" -j"$jobs" bzImage >>"$log" 2>&1 || fail "make bzImage failed"

# Publish whole or not at all: a half-copied image must never look cached.
stage=$(mktemp -d "$CACHE/stage.XXXXXX")
cp "$src/arch/x86/boot/bzImage" "$stage/bzImage"
cp "$src/.config" "$stage/config"
cp "$log" "$stage/build.log"
echo "built in $((SECONDS - start)) s on $jobs cores" >"$stage/build-time"
# The stock tree stays for the patched build; the patched one goes with $work.
[ "$FLAVOUR" = stock ] && mv "$src" "$stage/tree"
rm -rf "$dest"
mv "$stage" "$dest"
stage=
note "$FLAVOUR test kernel built in $((SECONDS - start)) s: $dest/bzImage"
echo "$dest/bzImage"
