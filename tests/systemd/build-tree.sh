#!/bin/bash
# tests/systemd/build-tree.sh: the Debian bookworm tree that tests/systemd/run.sh boots
# with systemd-nspawn, built once per machine with debootstrap and cached.
#
# The tree is debootstrap --variant=minbase plus tests/systemd/packages. It is cached
# under ${XDG_CACHE_HOME:-$HOME/.cache}/dmaloadd/, in a directory named after the suite,
# the architecture and a hash of this script and the package list, so an edit to either
# builds a new tree and everything else reuses it. It is built in a temp dir beside it
# and renamed into place only when complete; a failed build leaves its log as
# nspawn-build-failed.log in the cache dir. The cached tree is never booted: run.sh
# boots copies of it.
#
# Prints the tree's path as the only line on stdout. Exit status 0, or 1 with the reason
# as the last stderr line. DMALOAD_DEBIAN_MIRROR overrides the mirror
# (default http://deb.debian.org/debian).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
SUITE=bookworm
MIRROR=${DMALOAD_DEBIAN_MIRROR:-http://deb.debian.org/debian}
CACHE=${XDG_CACHE_HOME:-$HOME/.cache}/dmaloadd

die() {
	echo "build-tree: $*" >&2
	exit 1
}
note() { echo "# $*" >&2; }

command -v debootstrap >/dev/null || die "debootstrap is missing (bash tests/deps.sh)"
[ "$(id -u)" -eq 0 ] || die "debootstrap needs root"

pkgs=$(grep -v '^#' "$here/packages" | tr -s ' \n' ',' | sed 's/^,//; s/,$//')
arch=$(dpkg --print-architecture)
hash=$(cat "$here/build-tree.sh" "$here/packages" | sha256sum | cut -c1-12)
dest=$CACHE/nspawn-$SUITE-$arch-$hash

if [ -x "$dest/tree/lib/systemd/systemd" ]; then
	echo "$dest/tree"
	exit 0
fi

mkdir -p "$CACHE"
# Two runs at once build once: the second waits here and then finds the tree.
exec 9>"$CACHE/nspawn-build.lock"
if ! flock -n 9; then
	note "another build of the nspawn tree is running; waiting for it"
	flock -w 900 9 || die "gave up waiting for $CACHE/nspawn-build.lock after 15 minutes"
fi
if [ -x "$dest/tree/lib/systemd/systemd" ]; then
	echo "$dest/tree"
	exit 0
fi

stage=$(mktemp -d "$CACHE/nspawn-build.XXXXXX")
trap 'rm -rf "$stage"' EXIT
note "debootstrap $SUITE (minbase + $pkgs) from $MIRROR: once per machine, about a minute"
start=$SECONDS
if ! timeout -k 10 900 debootstrap --variant=minbase --include="$pkgs" "$SUITE" \
	"$stage/tree" "$MIRROR" >"$stage/build.log" 2>&1; then
	cp "$stage/build.log" "$CACHE/nspawn-build-failed.log"
	tail -n 20 "$stage/build.log" >&2
	die "debootstrap failed; its log is $CACHE/nspawn-build-failed.log"
fi
# Room back: the downloaded .debs are not needed in a tree that is only booted.
rm -rf "$stage/tree/var/cache/apt/archives/"*.deb
rm -rf "$dest"
mkdir -p "$dest"
mv "$stage/build.log" "$dest/build.log"
mv "$stage/tree" "$dest/tree"
note "nspawn tree built in $((SECONDS - start)) s: $dest/tree"
echo "$dest/tree"
