#!/bin/bash
# tests/layers/check-includes.sh: fails on an include cycle among the daemon's files.
#
# A module is a .c file with its .h (job.c + job.h = "job"). Every #include "x.h" of
# a module's files is an edge from the module to module x. The daemon is meant to be
# layered (docs/ARCHITECTURE.md): connections on top, the load engine below them, the
# kernel-facing parts at the bottom, calls running down and up only through callbacks
# the upper layer registered. A cycle in this graph is a call that runs up, or two
# modules that know each other: either way the layering broke.
#
# Prints "PASS layers: ..." or "FAIL layers: ...: the cycle" (tests/run-one.sh's line
# format) and exits 1 on a cycle. tsort(1) finds the cycles.
set -u
cd "$(dirname "$0")/../.."

edges=$(mktemp)
trap 'rm -f "$edges"' EXIT
for f in daemon/*.c daemon/*.h; do
	from=$(basename "${f%.*}")
	echo "$from $from" >>"$edges"	# every module is a node, even a lone one
	grep -o '^#include "[a-z0-9_-]*\.h"' "$f" | sed 's/.*"\(.*\)\.h"/\1/' |
	while read -r to; do
		[ -e "daemon/$to.h" ] || continue	# proto/ and client/ headers
		[ "$to" = "$from" ] || echo "$from $to"
	done >>"$edges"
done
out=$(tsort "$edges" 2>&1 >/dev/null)
if [ -n "$out" ]; then
	# tsort prints each loop it breaks as a header line and then its members.
	loops=$(echo "$out" | awk '/input contains a loop/ { if (l) print l; l = ""; next }
		{ sub(/^tsort: /, ""); l = l (l ? " -> " : "") $0 } END { if (l) print l }' |
		sort -u | paste -sd ';' | sed 's/;/; /g')
	echo "FAIL layers: no include cycle among daemon modules: $loops"
	exit 1
fi
echo "PASS layers: no include cycle among daemon modules ($(sort -u "$edges" | wc -l) edges)"
