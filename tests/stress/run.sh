#!/bin/bash
# make stress: tests/stress/stress against one daemon of BUILD on the shipped config
# (conf/dmaloadd.conf; STRESS_CONF=FILE for another), under the fd limit a plain
# systemd service gets (soft 1024). Prints the table; exits non-zero only if it could
# not run. STRESS_CASES="flood throttled" picks cases, STRESS_CASE_MS the length of
# each (3000). Root runs the attackers as nobody.
#
#   bash tests/stress/run.sh [BUILD]
set -u
cd "$(dirname "$0")/../.."

BUILD=${1:-build}
case "$BUILD" in
/*) abs=$BUILD ;;
*) abs=$PWD/$BUILD ;;
esac
export DMALOADD="$abs/dmaloadd"
conf=${STRESS_CONF:-conf/dmaloadd.conf}
[ "$(id -u)" = 0 ] || echo "# not root: the attackers run as you, not as nobody" >&2

# On a real filesystem (O_DIRECT), 0755 so nobody can reach the public files.
work=$(mktemp -d /var/tmp/dmaload-stress.XXXXXX) || exit 1
chmod 755 "$work"
trap 'rm -rf "$work"' EXIT
ulimit -c 0
ulimit -Sn 1024
timeout -k 10 600 "$abs/tests/stress/stress" "$conf" "$work"
