#!/bin/bash
# tests/compat/run.sh [BUILD]: the previous release against this tree, both ways.
#
# The protocol promises that old clients keep working unchanged against a new daemon,
# and that a new client meets an old daemon with clear refusals of what it lacks
# (docs/PROTOCOL.md, "Versions and capabilities"). This builds the release named by
# RELEASE (a tag, else its commit: a clone without tags still has it) from git, in a
# temp dir, and runs:
#   1. the release's dmaload-ctl (its libdmaload, linked in) against BUILD's daemon:
#      loads by path and by fd, a range at odd offsets, a pin then LIST, STATUS; the
#      bytes are compared with the file's (cmp on the buffer's fd);
#   2. BUILD's dmaload-ctl against the release's daemon: the same loads, and a load of
#      extents (which that daemon lacks) refused with a message before it is sent.
#
# One line per case, "PASS|FAIL|SKIP compat: <case>[: why]"; the last line is
# "N passed, N failed, N skipped"; the exit status is 1 if anything failed. Without
# git or the release's commit (a shallow clone), one SKIP line says so.
set -u
cd "$(dirname "$0")/../.."
BUILD=${1:-build}
RELEASE_TAG=v0.1.0
RELEASE_COMMIT=5cc57da38a480e0903482e503ea3040bfde83909
S=compat
pass=0 fail=0 skip=0

ok() { echo "PASS $S: $*"; pass=$((pass + 1)); }
bad() { echo "FAIL $S: $*"; fail=$((fail + 1)); }
skipped() { echo "SKIP $S: $*"; skip=$((skip + 1)); }
finish() {
	echo "$pass passed, $fail failed, $skip skipped"
	[ "$fail" -eq 0 ]
	exit
}

work=$(mktemp -d /var/tmp/dmaload-compat.XXXXXX) || exit 1
pids=()
cleanup() {
	local p
	for p in "${pids[@]}"; do
		kill -TERM "$p" 2>/dev/null
	done
	wait 2>/dev/null
	rm -rf "$work"
}
trap cleanup EXIT

rev=""
for r in "$RELEASE_TAG^{commit}" "$RELEASE_COMMIT"; do
	if rev=$(git rev-parse --verify -q "$r" 2>/dev/null); then
		break
	fi
	rev=""
done
if [ -z "$rev" ]; then
	skipped "release $RELEASE_TAG: neither its tag nor commit $RELEASE_COMMIT is in this clone (shallow?)"
	finish
fi

mkdir -p "$work/old"
if ! git archive "$rev" | tar -x -C "$work/old" ||
	! make -C "$work/old" -j2 BUILD=build all >"$work/old-make.log" 2>&1; then
	tail -n 20 "$work/old-make.log" >&2
	bad "release $RELEASE_TAG ($rev) builds"
	finish
fi
ok "release $RELEASE_TAG (${rev:0:12}) builds from git"
OLD=$work/old/build
NEW=$PWD/$BUILD

# A file whose bytes differ at every offset: a shifted or partial copy shows.
head -c $((24 << 20)) /dev/urandom >"$work/data"
chmod 0644 "$work/data"

# daemon BIN SOCK: starts a daemon on its built-in defaults but the socket; echoes the
# pid once the socket answers.
daemon() {
	local bin=$1 sock=$2 i
	printf '[cache]\ncache_limit = 256M\n' >"$work/conf"
	"$bin" -c "$work/conf" -s "$sock" -l warning 2>>"$work/daemon.log" &
	pids+=($!)
	for i in $(seq 100); do
		[ -S "$sock" ] && return 0
		sleep 0.05
	done
	return 1
}

# loads CTL SOCK WHO: the loads both directions run; the buffer (fd 3) is compared
# with the file's range by cmp.
loads() {
	local ctl=$1 sock=$2 who=$3 out
	if "$ctl" --socket "$sock" load "$work/data" -- \
		sh -c 'cmp -n 25165824 /dev/fd/3 "$0"' "$work/data" >"$work/out" 2>&1; then
		ok "$who: load by path: 24 MiB, bytes equal the file's"
	else
		bad "$who: load by path: $(tail -n 2 "$work/out" | tr '\n' ' ')"
	fi
	if "$ctl" --socket "$sock" load "$work/data" --fd --method buffered -- \
		sh -c 'cmp -n 25165824 /dev/fd/3 "$0"' "$work/data" >"$work/out" 2>&1; then
		ok "$who: load by fd, method buffered: bytes equal the file's"
	else
		bad "$who: load by fd: $(tail -n 2 "$work/out" | tr '\n' ' ')"
	fi
	# 1 MiB + 3 bytes from offset 4097: unaligned both ends.
	if "$ctl" --socket "$sock" load "$work/data" --offset 4097 --length 1048579 \
		--exact-size -- sh -c '[ "$DMALOAD_SIZE" = 1048579 ] &&
			cmp -n 1048579 /dev/fd/3 "$0" 0 4097' "$work/data" >"$work/out" 2>&1; then
		ok "$who: range at offset 4097, 1048579 bytes: size and bytes exact"
	else
		bad "$who: range at offset 4097: $(tail -n 2 "$work/out" | tr '\n' ' ')"
	fi
	if "$ctl" --socket "$sock" load "$work/data" --length 8M --pin >"$work/out" 2>&1 &&
		"$ctl" --socket "$sock" list >"$work/list" 2>&1 &&
		grep -q "$work/data" "$work/list"; then
		ok "$who: a pinned load, then LIST shows it"
	else
		bad "$who: pin and list: $(cat "$work/out" "$work/list" 2>/dev/null | tail -n 3 | tr '\n' ' ')"
	fi
	if "$ctl" --socket "$sock" status >"$work/out" 2>&1 && grep -qi "loads" "$work/out"; then
		ok "$who: STATUS answers"
	else
		bad "$who: status: $(tail -n 2 "$work/out" | tr '\n' ' ')"
	fi
}

if daemon "$NEW/dmaloadd" "$work/new.sock"; then
	loads "$OLD/dmaload-ctl" "$work/new.sock" "$RELEASE_TAG dmaload-ctl -> this daemon"
else
	bad "this daemon starts: $(tail -n 3 "$work/daemon.log" | tr '\n' ' ')"
fi
if daemon "$OLD/dmaloadd" "$work/old.sock"; then
	loads "$NEW/dmaload-ctl" "$work/old.sock" "this dmaload-ctl -> $RELEASE_TAG daemon"
	# What the old daemon lacks is refused by the library before anything is sent,
	# with a message, and the daemon serves on.
	if ! "$NEW/dmaload-ctl" --socket "$work/old.sock" load "$work/data" \
		--extents 0:4096@0 >"$work/out" 2>&1 &&
		grep -qi "not supported\|does not\|EOPNOTSUPP" "$work/out" &&
		"$NEW/dmaload-ctl" --socket "$work/old.sock" status >/dev/null 2>&1; then
		ok "this dmaload-ctl -> $RELEASE_TAG daemon: --extents is refused ($(head -n 1 "$work/out" | cut -c1-80)); the daemon serves on"
	else
		bad "this dmaload-ctl -> $RELEASE_TAG daemon: --extents: $(tail -n 2 "$work/out" | tr '\n' ' ')"
	fi
else
	bad "the $RELEASE_TAG daemon starts: $(tail -n 3 "$work/daemon.log" | tr '\n' ' ')"
fi
finish
