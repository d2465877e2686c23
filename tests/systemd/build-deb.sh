#!/bin/bash
# tests/systemd/build-deb.sh DEST: the Debian packages of this tree, built with
# `dpkg-buildpackage -b -us -uc` in a copy of it (its tracked files and the untracked
# ones git does not ignore, so uncommitted edits are packaged too, and the build never
# writes beside or into the checkout). DEST (made if needed, emptied of old .debs) gets
# the .debs, the .buildinfo and the .changes; the build's log is DEST/build.log.
#
# Exit status 0, or 1 with the reason as the last stderr line.
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
dest=${1:?usage: build-deb.sh DEST}
mkdir -p "$dest"
dest=$(cd "$dest" && pwd)

die() {
	echo "build-deb: $*" >&2
	exit 1
}
for tool in dpkg-buildpackage dh fakeroot; do
	command -v "$tool" >/dev/null || die "$tool is missing (bash tests/deps.sh)"
done

work=$(mktemp -d /var/tmp/dmaload-deb.XXXXXX)
trap 'rm -rf "$work"' EXIT
mkdir "$work/dmaloadd"
# With no git (a tarball), everything but the build directories.
if git -C "$top" rev-parse --git-dir >/dev/null 2>&1; then
	(cd "$top" && git ls-files -z -co --exclude-standard) |
		(cd "$top" && xargs -0 cp --parents -t "$work/dmaloadd" --)
else
	(cd "$top" && tar --exclude='./build*' -cf - .) | tar -C "$work/dmaloadd" -xf -
fi

rm -f "$dest"/*.deb "$dest"/*.buildinfo "$dest"/*.changes
if ! (cd "$work/dmaloadd" && dpkg-buildpackage -b -us -uc -j2) >"$dest/build.log" 2>&1; then
	tail -n 30 "$dest/build.log" >&2
	die "dpkg-buildpackage failed; the log is $dest/build.log"
fi
mv "$work"/*.deb "$work"/*.buildinfo "$work"/*.changes "$dest/"
ls "$dest"/*.deb
