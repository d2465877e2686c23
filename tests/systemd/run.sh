#!/bin/bash
# tests/systemd/run.sh [BUILD]: dmaloadd under a real systemd, installed from its Debian
# package, and its clients in containers (make check-systemd; tests/run.sh runs it too).
#
# 1. The Debian packages are built from this tree (tests/systemd/build-deb.sh, into
#    BUILD/deb) and lintian looks at them.
# 2. A bookworm tree (tests/systemd/build-tree.sh: debootstrap, cached under
#    ~/.cache/dmaloadd) is copied, the packages are installed in the copy with dpkg, and
#    the copy is booted with systemd-nspawn: systemd 252 as PID 1. A drop-in shortens
#    WatchdogSec= to 2 s and lifts the start limit; nothing else of the units changes.
#    nspawn's own seccomp filter lets io_uring through (it is in its @aio allow-list),
#    so the container needs no --system-call-filter= of ours.
# 3. The checks run in the container through nsenter: socket activation, Type=notify,
#    the sandbox, cachestat refused, reload, the fd store, the watchdog, crashes,
#    [preload] and dmaload-preload@, clients in other containers (one denied io_uring,
#    one in a user namespace), stop, purge.
# 4. deploy/kubernetes/dmaloadd.yaml is parsed with python3-yaml and checked.
#
# One line per case, "PASS|FAIL|SKIP systemd: <case>[: why]" (as tests/run-one.sh);
# the last line is "N passed, N failed, N skipped"; the exit status is 1 if anything
# failed. Without root, systemd-nspawn or debootstrap (or without a network for the
# first debootstrap), the nspawn cases are one SKIP line with the reason. Every step
# has a time limit (DMALOAD_NSPAWN_STEP, default 60 s); the container is torn down on
# any exit; the whole run stops after DMALOAD_NSPAWN_LIMIT (default 900 s).
# DMALOAD_NSPAWN_NO_DEB=1 installs with make install instead of the package. The
# journal's tail is shown on stderr when a case failed. DMALOAD_TEST_KEEP=1 keeps the
# work directory (the trees, the logs) under /var/tmp.
set -u
self=$(cd "$(dirname "$0")" && pwd)/$(basename "$0")
cd "$(dirname "$0")/../.."

# The whole run has a time limit too (DMALOAD_NSPAWN_LIMIT, default 900 s): on it the
# inner run is stopped (and tears its container down) and this prints a FAIL.
# The outer run makes the work directory; a killed inner run leaves there the pids of
# what it started (nspawn.pid, leader.pid, hostd.pid), which the outer run ends.
if [ -z "${_DMALOAD_NSPAWN_WORK:-}" ]; then
	limit=${DMALOAD_NSPAWN_LIMIT:-900}
	work=$(mktemp -d /var/tmp/dmaload-nspawn.XXXXXX) || exit 1
	# -k: room for the step under way (its own limit) and the teardown.
	_DMALOAD_NSPAWN_WORK=$work timeout -k 120 "$limit" bash "$self" "$@"
	rc=$?
	case $rc in
	124) echo "FAIL systemd: tests/systemd/run.sh: stopped after the ${limit} s limit" ;;
	137 | 143) echo "FAIL systemd: tests/systemd/run.sh: killed (exit status $rc)" ;;
	esac
	for f in leader nspawn hostd; do
		pid=$(cat "$work/$f.pid" 2>/dev/null) || continue
		kill -0 "$pid" 2>/dev/null || continue
		echo "# ending the $f ($pid) the stopped run left" >&2
		kill -KILL "$pid" 2>/dev/null
	done
	sleep 1
	[ -n "${DMALOAD_TEST_KEEP:-}" ] || rm -rf "$work"
	exit "$rc"
fi
work=$_DMALOAD_NSPAWN_WORK
BUILD=${1:-build}
STEP=${DMALOAD_NSPAWN_STEP:-60}
S=systemd

passed=0 failed=0 skipped=0
pass() { echo "PASS $S: $1"; passed=$((passed + 1)); }
fail() { echo "FAIL $S: $1${2:+: $2}"; failed=$((failed + 1)); }
skip() { echo "SKIP $S: $1${2:+: $2}"; skipped=$((skipped + 1)); }
note() { echo "# $*" >&2; }
finish() {
	echo "$passed passed, $failed failed, $skipped skipped"
	[ "$failed" -eq 0 ]
	exit
}

# check NAME FUNCTION...: runs FUNCTION, which returns 0 (pass), 2 (skip) or else
# (fail), with the reason in $why.
why=
check() {
	local name=$1 rc
	shift
	why=
	"$@"
	rc=$?
	case $rc in
	0) pass "$name" ;;
	2) skip "$name" "$why" ;;
	*) fail "$name" "${why:-failed}" ;;
	esac
	return "$rc"
}

# ---- the Kubernetes manifest (needs no container) ----
check_deploy() {
	local py=/usr/bin/python3
	[ -x "$py" ] || py=python3
	if ! "$py" -c 'import yaml' 2>/dev/null; then
		why="no python3-yaml (bash tests/deps.sh)"
		return 2
	fi
	why=$("$py" tests/systemd/check-deploy.py deploy/kubernetes/dmaloadd.yaml \
		$([ -x "$BUILD/dmaloadd" ] && echo "$BUILD/dmaloadd") 2>&1) ||
		return 1
}
check "deploy/kubernetes/dmaloadd.yaml parses (PyYAML): one DaemonSet running dmaloadd as \
root with CAP_SETUID+CAP_SETGID only, its socket on the hostPath /run/dmaloadd, a conf \
dmaloadd -t accepts, and a client pod in a user namespace that mounts the socket" check_deploy

# ---- can nspawn run here? ----
reason=
if [ "$(id -u)" -ne 0 ]; then
	reason="needs root (debootstrap, systemd-nspawn)"
elif ! command -v systemd-nspawn >/dev/null; then
	reason="no systemd-nspawn (package systemd-container: bash tests/deps.sh)"
elif ! command -v debootstrap >/dev/null; then
	reason="no debootstrap (bash tests/deps.sh)"
elif ! command -v nsenter >/dev/null; then
	reason="no nsenter (util-linux)"
elif [ ! -x "$BUILD/dmaloadd" ] || [ ! -x "$BUILD/dmaload-ctl" ]; then
	reason="no $BUILD/dmaloadd (run make)"
fi
if [ -n "$reason" ]; then
	skip "nspawn" "$reason"
	finish
fi

chmod 755 "$work"
machine=dmaload-test-$$
nspawn_pid= leader= hostd_pid=

teardown() {
	if [ -n "$nspawn_pid" ] && kill -0 "$nspawn_pid" 2>/dev/null; then
		kill -TERM "$nspawn_pid" 2>/dev/null	# nspawn asks the container's systemd to power off
		for _ in $(seq 100); do
			kill -0 "$nspawn_pid" 2>/dev/null || break
			sleep 0.1
		done
		if kill -0 "$nspawn_pid" 2>/dev/null; then
			note "the container did not power off in 10 s: killing it"
			[ -n "$leader" ] && kill -KILL "$leader" 2>/dev/null
			kill -KILL "$nspawn_pid" 2>/dev/null
		fi
		wait "$nspawn_pid" 2>/dev/null
	fi
	nspawn_pid=
	rm -f "$work/nspawn.pid" "$work/leader.pid"
	if [ -n "$hostd_pid" ]; then
		kill -TERM "$hostd_pid" 2>/dev/null
		wait "$hostd_pid" 2>/dev/null
		hostd_pid=
	fi
	# nspawn leaves its propagation dir when /run is not a tmpfs.
	rm -rf "/run/systemd/nspawn/propagate/$machine"
	if [ -z "${DMALOAD_TEST_KEEP:-}" ]; then
		rm -rf "$work"
	else
		note "kept $work"
	fi
}
trap teardown EXIT
trap 'exit 143' TERM INT HUP

# ---- the packages ----
start=$SECONDS
debs=
if [ -n "${DMALOAD_NSPAWN_NO_DEB:-}" ]; then
	skip "dpkg-buildpackage -b builds the packages" "DMALOAD_NSPAWN_NO_DEB is set: make install instead"
elif command -v dpkg-buildpackage >/dev/null && command -v dh >/dev/null; then
	note "building the Debian packages (tests/systemd/build-deb.sh $BUILD/deb)"
	if out=$(bash tests/systemd/build-deb.sh "$BUILD/deb" 2>&1); then
		# python3-dmaload needs a python3 the minbase tree lacks; lintian still
		# checks it (through the .changes)
		debs=$(ls "$BUILD"/deb/*.deb | grep -v -- -dbgsym_ | grep -v /python3-dmaload_)
		pass "dpkg-buildpackage -b builds dmaloadd, libdmaload0 and libdmaload-dev"
	else
		fail "dpkg-buildpackage -b builds dmaloadd, libdmaload0 and libdmaload-dev" \
			"$(echo "$out" | tail -n 1)"
		note "$out"
	fi
else
	skip "dpkg-buildpackage -b builds the packages" \
		"no dpkg-buildpackage or debhelper (bash tests/deps.sh): make install instead"
fi
lintian_check() {
	local out
	if [ -z "$debs" ]; then
		why="no packages"
		return 2
	fi
	if ! command -v lintian >/dev/null; then
		why="no lintian (bash tests/deps.sh)"
		return 2
	fi
	out=$(timeout -k 5 300 lintian "$BUILD"/deb/*.changes 2>&1 | grep -v '^running with root')
	[ -n "$out" ] && note "lintian: $out"
	if echo "$out" | grep -q '^E: '; then
		why=$(echo "$out" | grep '^E: ' | head -3 | tr '\n' ';')
		return 1
	fi
	[ -z "$out" ] || why="$(echo "$out" | grep -c '^W: ') warnings"
}
check "lintian reports no errors on the packages" lintian_check

# ---- the tree: a copy of the cached one, with the package installed ----
note "the nspawn tree (tests/systemd/build-tree.sh; the first run on a machine builds it)"
if ! tree=$(bash tests/systemd/build-tree.sh 2>"$work/tree.err"); then
	cat "$work/tree.err" >&2
	skip "nspawn" "no bookworm tree: $(tail -n 1 "$work/tree.err")"
	finish
fi
cat "$work/tree.err" >&2
srv=$work/server
cli=$work/client
cp -a "$tree" "$srv" || { fail "set-up" "cannot copy $tree"; finish; }

# nspawn_run TREE ARGS...: a command in TREE (no boot), with a time limit.
nspawn_run() {
	local t=$1
	shift
	timeout -k 5 "$STEP" systemd-nspawn -q -D "$t" --register=no --keep-unit \
		--resolv-conf=off --timezone=off --link-journal=no --console=pipe "$@" \
		</dev/null 2>&1 | grep -v 'Attempted to remove disk file system'
	return "${PIPESTATUS[0]}"
}

if [ -n "$debs" ]; then
	mkdir -p "$srv/var/tmp/debs"
	cp $debs "$srv/var/tmp/debs/"
	if ! out=$(nspawn_run "$srv" -E DEBIAN_FRONTEND=noninteractive \
		sh -c 'dpkg -i /var/tmp/debs/*.deb'); then
		fail "set-up" "dpkg -i in the tree failed: $(echo "$out" | tail -n 3 | tr '\n' ' ')"
		finish
	fi
	rm -rf "$srv/var/tmp/debs"
else
	if ! out=$(make -s install BUILD="$BUILD" DESTDIR="$srv" PREFIX=/usr 2>&1); then
		fail "set-up" "make install DESTDIR=$srv failed: $(echo "$out" | tail -n 2)"
		finish
	fi
	mkdir -p "$srv/etc/systemd/system/sockets.target.wants"
	ln -sf /lib/systemd/system/dmaloadd.socket \
		"$srv/etc/systemd/system/sockets.target.wants/dmaloadd.socket"
fi

# The test's own settings: a short watchdog, no start limit (the checks restart the
# daemon often), no core files. The hardening of the unit is left as shipped.
mkdir -p "$srv/etc/systemd/system/dmaloadd.service.d"
cat >"$srv/etc/systemd/system/dmaloadd.service.d/50-test.conf" <<'EOF'
[Unit]
StartLimitIntervalSec=0

[Service]
WatchdogSec=2s
TimeoutAbortSec=5s
RestartSec=200ms
LimitCORE=0
EOF
# Test files; the [preload] section is the last one of the shipped conf.
mkdir -p "$srv/srv/dltest"
head -c 3M /dev/urandom >"$srv/srv/dltest/a.bin"
head -c 2M /dev/urandom >"$srv/srv/dltest/b.bin"
for i in 1 2 3; do head -c 512K /dev/urandom >"$srv/srv/dltest/rate$i.bin"; done
for i in 1 2; do head -c 1M /dev/urandom >"$srv/srv/dltest/pre-$i.bin"; done
head -c 1M /dev/urandom >"$srv/srv/dltest/tmpl.bin"
head -c 64K /dev/urandom >"$srv/srv/dltest/secret.bin"
chmod 600 "$srv/srv/dltest/secret.bin"
conf=$srv/etc/dmaloadd/dmaloadd.conf
printf '\n# tests/systemd\npreload = /srv/dltest/pre-*.bin\n' >>"$conf"
cp "$conf" "$work/conf.base"
if ! out=$("$BUILD/dmaloadd" -t -c "$conf" 2>&1); then
	fail "set-up" "the test's dmaloadd.conf: $out"
	finish
fi

# The client container's tree: the same system without the server's files, with a
# file of its own.
cp -a "$srv" "$cli" || { fail "set-up" "cannot copy the tree"; finish; }
rm -rf "$cli/srv/dltest"
mkdir -p "$cli/srv/dlclient" "$cli/run/dmaloadd" "$cli/run/hostd"
head -c 3M /dev/urandom >"$cli/srv/dlclient/c.bin"
head -c 2M /dev/urandom >"$cli/srv/dlclient/c2.bin"	# loaded by fd only
note "set-up took $((SECONDS - start)) s"

# ---- boot ----
boot_start=$SECONDS
# The container's /run/dmaloadd is a directory of the host's, as a host would share it
# with containers: dmaloadd.socket makes the socket there, and the client container
# gets it bound in.
mkdir -p "$work/sock"
setsid systemd-nspawn -q -D "$srv" -b -M "$machine" --register=no --keep-unit \
	--bind="$work/sock:/run/dmaloadd" --resolv-conf=off --timezone=off --link-journal=no --console=pipe \
	</dev/null >"$work/boot.log" 2>&1 &
nspawn_pid=$!
echo "$nspawn_pid" >"$work/nspawn.pid"
# The leader is nspawn's child in a pid namespace of its own (the container's PID 1):
# nspawn first forks a helper in ours that exits once it has started that one, and
# taking the helper made a run fail with "nsenter: stat of /proc/N/ns/user failed".
own_pidns=$(readlink /proc/self/ns/pid)
leader=
for _ in $(seq 100); do
	for p in $(pgrep -P "$nspawn_pid"); do
		ns=$(readlink "/proc/$p/ns/pid" 2>/dev/null) || continue
		[ "$ns" != "$own_pidns" ] && leader=$p && break
	done
	[ -n "$leader" ] && break
	sleep 0.1
done
[ -n "$leader" ] && echo "$leader" >"$work/leader.pid"

# c CMD...: CMD in the container's namespaces, as root, with a clean environment.
c() {
	timeout -k 5 "$STEP" nsenter -t "$leader" -a \
		env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 "$@"
}
prop() { c systemctl show -P "$2" "$1" 2>/dev/null; }
mainpid() { prop dmaloadd.service MainPID; }
# signal SIG PID: SIG to the daemon's PID in the container; never to pid 0 or none
# (kill 0 would signal the caller's own process group: this script).
signal() {
	[ "${2:-0}" -gt 1 ] 2>/dev/null || return 1
	c sh -c "kill -$1 $2"
}
ctl() { c dmaload-ctl "$@"; }
# json_get KEY: the value of "KEY" in the JSON object on stdin (numbers, strings,
# true/false/null), as printed.
json_get() { sed -n 's/.*"'"$1"'":\("[^"]*"\|[^,}]*\).*/\1/p' | head -n 1 | tr -d '"'; }
# same_bytes FILE: loads FILE (more dmaload-ctl options may follow) and compares the
# buffer with the file, both in the container. The buffer is read through fd 3 itself:
# buffers are mode 0400 and owned by the daemon, so a client of another uid (a user
# namespace's root) cannot reopen /proc/self/fd/3.
same_bytes() {
	local f=$1
	shift
	c dmaload-ctl load "$f" "$@" -- sh -c \
		'head -c "$DMALOAD_SIZE" <&3 | cmp -s - "$0"' "$f" 2>/dev/null
}
# wait_until SECONDS COMMAND...: polls COMMAND every 0.2 s.
wait_until() {
	local end=$((SECONDS + $1))
	shift
	while [ $SECONDS -lt "$end" ]; do
		"$@" && return 0
		sleep 0.2
	done
	"$@"
}
journal() { c journalctl -b --no-pager -o cat "$@" 2>/dev/null; }

boot_check() {
	local st
	if [ -z "$leader" ]; then
		why="no container process: $(tail -n 3 "$work/boot.log" | tr '\n' ' ')"
		return 1
	fi
	# Not --wait: that needs the bus (there is no dbus in the tree); systemctl talks to
	# /run/systemd/private once it exists.
	for _ in $(seq $((STEP * 5))); do
		st=$(c systemctl is-system-running 2>&1)
		case $st in
		running | degraded) break ;;
		esac
		sleep 0.2
	done
	case $st in
	running) ;;
	degraded) note "degraded: $(c systemctl --failed --no-legend | tr '\n' ' ')" ;;
	*)
		why="is-system-running: $st; $(tail -n 3 "$work/boot.log" | tr '\n' ' ')"
		return 1
		;;
	esac
	[ "$(c readlink /proc/1/exe)" = /usr/lib/systemd/systemd ] ||
	[ "$(c readlink /proc/1/exe)" = /lib/systemd/systemd ] || {
		why="PID 1 is $(c readlink /proc/1/exe)"
		return 1
	}
	note "booted in $((SECONDS - boot_start)) s: $(c systemctl --version | head -n 1)"
}
if ! check "systemd-nspawn boots the tree with systemd as PID 1" boot_check; then
	finish
fi

# ---- the package's state ----
package_check() {
	local st
	if [ -z "$debs" ]; then
		why="installed with make install, not the package"
		return 2
	fi
	for p in dmaloadd libdmaload0 libdmaload-dev; do
		st=$(c dpkg-query -W -f='${Status}' "$p" 2>&1)
		[ "$st" = "install ok installed" ] || { why="$p: $st"; return 1; }
	done
	st=$(c systemctl is-enabled dmaloadd.socket)
	[ "$st" = enabled ] || { why="dmaloadd.socket is $st"; return 1; }
	st=$(c systemctl is-enabled dmaloadd.service)
	[ "$st" = disabled ] || { why="dmaloadd.service is $st (the socket starts it)"; return 1; }
	st=$(prop dmaloadd.service ExecStart)
	[[ $st == *"path=/usr/sbin/dmaloadd "* ]] || { why="ExecStart: $st"; return 1; }
	st=$(prop dmaload-preload@x.service ExecStart)
	[[ $st == *"path=/usr/bin/dmaload-ctl "* ]] || { why="preload ExecStart: $st"; return 1; }
	c sh -c 'grep -qx "libdir=/usr/lib/[a-z0-9_]*-linux-[a-z0-9_]*" /usr/lib/*/pkgconfig/dmaload.pc' ||
		{ why="dmaload.pc: $(c cat /usr/lib/*/pkgconfig/dmaload.pc | head -3)"; return 1; }
}
check "the package: dpkg installed the three packages, enabled dmaloadd.socket (not the \
service), units run /usr/sbin/dmaloadd and /usr/bin/dmaload-ctl, dmaload.pc has the \
multiarch libdir" package_check

# ---- socket activation and Type=notify ----
activation_check() {
	local st
	st=$(c systemctl is-active dmaloadd.socket)
	[ "$st" = active ] || { why="dmaloadd.socket is $st at boot"; return 1; }
	st=$(c systemctl is-active dmaloadd.service)
	[ "$st" = inactive ] || { why="dmaloadd.service is $st before any connection"; return 1; }
	st=$(ctl ping 2>&1) || { why="ping: $st"; return 1; }
	[[ $st == *"protocol 1"* ]] || { why="ping: $st"; return 1; }
	st=$(c systemctl is-active dmaloadd.service)
	[ "$st" = active ] || { why="dmaloadd.service is $st after a connection"; return 1; }
}
if ! check "socket activation: dmaloadd.socket listens at boot, dmaloadd.service starts on \
the first connection and answers it" activation_check; then
	# Nothing after this can work: show why, and stop here.
	echo "---- the container's journal ----" >&2
	journal | tail -n 40 >&2
	finish
fi

notify_check() {
	local lines ready started
	[ "$(prop dmaloadd.service Type)" = notify ] || { why="Type=$(prop dmaloadd.service Type)"; return 1; }
	[ "$(prop dmaloadd.service SubState)" = running ] ||
		{ why="SubState=$(prop dmaloadd.service SubState)"; return 1; }
	[[ $(prop dmaloadd.service StatusText) == *clients*cache* ]] ||
		{ why="StatusText='$(prop dmaloadd.service StatusText)'"; return 1; }
	[ "$(prop dmaloadd.service WatchdogUSec)" = 2s ] ||
		{ why="WatchdogUSec=$(prop dmaloadd.service WatchdogUSec)"; return 1; }
	# With Type=notify, systemd logs "Started" only after READY=1, which the daemon
	# sends once it serves: after its "listening on" line.
	lines=$(journal _SYSTEMD_UNIT=dmaloadd.service + UNIT=dmaloadd.service)
	ready=$(echo "$lines" | grep -n 'listening on (from systemd)' | head -n 1 | cut -d: -f1)
	started=$(echo "$lines" | grep -n '^Started dmaloadd.service' | head -n 1 | cut -d: -f1)
	[ -n "$ready" ] && [ -n "$started" ] && [ "$ready" -lt "$started" ] ||
		{ why="journal order: listening at line ${ready:-none}, Started at ${started:-none}"; return 1; }
}
check "Type=notify: systemd marks the daemon started only after its READY=1, shows its \
STATUS= (clients, cache), and passes the drop-in's WatchdogSec=2s" notify_check

# ---- [preload] ----
# listed NAME: the entry of NAME in LIST, once loaded and pinned.
listed_pinned() {
	ctl --json list 2>/dev/null | tr '{' '\n' |
		grep "\"name\":\"$1\"" | grep -q '"pinned":true.*"loading":false'
}
preload_conf_check() {
	local f
	for f in /srv/dltest/pre-1.bin /srv/dltest/pre-2.bin; do
		wait_until 15 listed_pinned "$f" ||
			{ why="$f is not pinned in the cache: $(ctl list 2>&1 | tail -n 4 | tr '\n' ' ')"; return 1; }
		out=$(ctl --json load "$f" 2>&1)
		[ "$(echo "$out" | json_get shared)" = cache ] ||
			{ why="a load of $f after the preload: $out"; return 1; }
		same_bytes "$f" || { why="$f: the buffer differs from the file"; return 1; }
	done
}
check "[preload]: the glob in dmaloadd.conf is loaded and pinned at start; loads of \
its files are cache hits with the files' bytes" preload_conf_check

# ---- the sandbox ----
sandbox_check() {
	local pid st
	pid=$(mainpid)
	[ "${pid:-0}" -gt 0 ] || { why="no MainPID"; return 1; }
	st=$(c cat "/proc/$pid/status")
	echo "$st" | grep -q '^CapEff:[[:space:]]*00000000000000c0$' ||
		{ why="$(echo "$st" | grep CapEff) (want CAP_SETUID and CAP_SETGID only)"; return 1; }
	echo "$st" | grep -q '^NoNewPrivs:[[:space:]]*1$' || { why="NoNewPrivs is not 1"; return 1; }
	echo "$st" | grep -q '^Seccomp:[[:space:]]*2$' || { why="no seccomp filter"; return 1; }
	[ "$(c readlink "/proc/$pid/ns/mnt")" != "$(c readlink /proc/1/ns/mnt)" ] ||
		{ why="no mount namespace of its own"; return 1; }
	[ "$(c readlink "/proc/$pid/ns/net")" != "$(c readlink /proc/1/ns/net)" ] ||
		{ why="no network namespace of its own (PrivateNetwork=)"; return 1; }
	same_bytes /srv/dltest/a.bin || { why="a load by path: buffer differs or failed"; return 1; }
	same_bytes /srv/dltest/b.bin --fd || { why="a load by fd: buffer differs or failed"; return 1; }
	st=$(journal -u dmaloadd.service | grep -c 'cannot open\|ENOSYS\|EPERM')
	[ "$st" -eq 0 ] || { why="$st loads failed in the journal: $(journal -u dmaloadd.service | grep 'cannot open\|ENOSYS\|EPERM' | head -n 2)"; return 1; }
}
check "hardening runs: the daemon has CAP_SETUID+CAP_SETGID only, NoNewPrivs, a seccomp \
filter, its own mount and network namespaces, and loads by path and by fd byte for byte \
inside them" sandbox_check

cachestat_check() {
	local out
	c dmaload-ctl evict --all >/dev/null 2>&1
	c cat /srv/dltest/b.bin >/dev/null	# in the page cache now
	out=$(ctl --json load /srv/dltest/b.bin --method auto 2>&1) || { why="load: $out"; return 1; }
	[ "$(echo "$out" | json_get method)" = direct ] ||
		{ why="method auto on a cached file under systemd 252: $out"; return 1; }
	same_bytes /srv/dltest/b.bin --method auto || { why="buffer differs"; return 1; }
}
check "cachestat is refused by systemd 252's filter (unknown to it): method auto reads a \
file that is in the page cache with O_DIRECT, as documented, and gets its bytes" \
	cachestat_check

# ---- reload ----
# load_seconds FILE: how long a load of FILE takes, read from disk (evicted first).
load_seconds() {
	ctl evict "$1" >/dev/null 2>&1
	ctl --json load "$1" --method direct 2>/dev/null | json_get seconds
}
slow() { awk -v s="$1" 'BEGIN { exit !(s >= 1.0) }'; }
fast() { awk -v s="$1" 'BEGIN { exit !(s != "" && s < 0.7) }'; }
reload_check() {
	local pid s1 s2 s3
	pid=$(mainpid)
	s1=$(load_seconds /srv/dltest/rate1.bin)
	fast "$s1" || { why="an unlimited 512 KiB load took ${s1:-?} s"; return 1; }
	cp "$work/conf.base" "$conf"
	printf '\n[limits]\ndefault_rate = 256K\ndefault_burst = 64K\n' >>"$conf"
	c systemctl reload dmaloadd || { why="systemctl reload failed"; return 1; }
	sleep 0.5	# systemd 252 does not wait for the daemon's RELOADING=1/READY=1
	s2=$(load_seconds /srv/dltest/rate2.bin)
	slow "$s2" || { why="after reload with default_rate = 256K a 512 KiB load took ${s2:-?} s"; return 1; }
	printf 'no_such_key = 1\n' >>"$conf"
	c systemctl reload dmaloadd || { why="systemctl reload (broken conf) failed"; return 1; }
	sleep 0.5
	s3=$(load_seconds /srv/dltest/rate3.bin)
	slow "$s3" || { why="after a broken reload a 512 KiB load took ${s3:-?} s: the old limit is gone"; return 1; }
	[ "$(mainpid)" = "$pid" ] || { why="the daemon restarted on reload"; return 1; }
	[ "$(c systemctl is-active dmaloadd)" = active ] || { why="not active after a broken reload"; return 1; }
	journal -u dmaloadd.service | grep -q 'dmaloadd.conf:[0-9]' ||
		{ why="no FILE:LINE error in the journal"; return 1; }
	cp "$work/conf.base" "$conf"
	c systemctl reload dmaloadd
	sleep 0.5
	s1=$(load_seconds /srv/dltest/rate1.bin)
	fast "$s1" || { why="after removing the limit a 512 KiB load took ${s1:-?} s"; return 1; }
	note "reload: 512 KiB in $s2 s and $s3 s at 256K/s, unlimited $s1 s"
}
reload_and_restore() {
	local rc
	reload_check
	rc=$?
	cp "$work/conf.base" "$conf"	# whatever happened: the next checks want no limits
	c systemctl reload dmaloadd
	return "$rc"
}
check "systemctl reload applies new [limits] (a 512 KiB load at 256 KiB/s takes over 1 s), \
a broken conf keeps them and the daemon, a fixed one lifts them" reload_and_restore

# ---- the fd store ----
# read_bytes: the daemon's bytes_read counter.
read_bytes() { ctl --json stats 2>/dev/null | json_get bytes_read; }
# hit_without_read FILE: a load of FILE is a cache hit and the daemon reads nothing.
hit_without_read() {
	local before after out
	before=$(read_bytes)
	out=$(ctl --json load "$1" 2>&1)
	after=$(read_bytes)
	[ "$(echo "$out" | json_get shared)" = cache ] || { why="$1 after the restart: $out"; return 1; }
	[ -n "$before" ] && [ "$before" = "$after" ] ||
		{ why="bytes_read went from ${before:-?} to ${after:-?}"; return 1; }
	same_bytes "$1" || { why="$1: buffer differs"; return 1; }
}
fdstore_check() {
	local pid n
	ctl load /srv/dltest/a.bin >/dev/null 2>&1 || { why="load a.bin failed"; return 1; }
	n=$(prop dmaloadd.service NFileDescriptorStore)
	[ "${n:-0}" -ge 1 ] || { why="NFileDescriptorStore=$n after a load"; return 1; }
	pid=$(mainpid)
	c systemctl restart dmaloadd || { why="restart failed"; return 1; }
	[ "$(mainpid)" != "$pid" ] || { why="same MainPID after restart"; return 1; }
	hit_without_read /srv/dltest/a.bin
}
check "fd store: after systemctl restart dmaloadd (a new process), a file cached before \
loads as a cache hit with no byte read (STATS bytes_read unchanged, DONE shared=cache), \
byte for byte" fdstore_check

# ---- the watchdog and crashes ----
restarted_from() {
	local p
	p=$(mainpid)
	[ "${p:-0}" -gt 0 ] && [ "$p" != "$1" ] && [ "$(c systemctl is-active dmaloadd)" = active ]
}
watchdog_check() {
	local pid n0
	pid=$(mainpid)
	n0=$(prop dmaloadd.service NRestarts)
	signal STOP "$pid" || { why="no MainPID"; return 1; }
	wait_until 20 restarted_from "$pid" || { why="not restarted 20 s after SIGSTOP"; return 1; }
	journal -u dmaloadd.service | grep -q 'Watchdog timeout' ||
		{ why="no 'Watchdog timeout' in the journal"; return 1; }
	[ "$(prop dmaloadd.service NRestarts)" -gt "$n0" ] || { why="NRestarts did not grow"; return 1; }
	ctl ping >/dev/null 2>&1 || { why="the new daemon does not answer"; return 1; }
	hit_without_read /srv/dltest/a.bin || { why="fd store across the watchdog restart: $why"; return 1; }
}
check "watchdog: a SIGSTOPped daemon misses WatchdogSec=2s, systemd kills and restarts it, \
and the new one serves its cache from the fd store" watchdog_check

crash_check() {
	local pid n0 sig
	for sig in SEGV KILL; do
		pid=$(mainpid)
		n0=$(prop dmaloadd.service NRestarts)
		signal "$sig" "$pid" || { why="no MainPID"; return 1; }
		wait_until 15 restarted_from "$pid" || { why="not restarted after SIG$sig"; return 1; }
		[ "$(prop dmaloadd.service NRestarts)" -gt "$n0" ] ||
			{ why="NRestarts did not grow after SIG$sig"; return 1; }
		ctl ping >/dev/null 2>&1 || { why="no answer after SIG$sig"; return 1; }
	done
	hit_without_read /srv/dltest/a.bin || { why="after the crashes: $why"; return 1; }
}
check "crashes: after SIGSEGV and after SIGKILL systemd restarts the daemon (Restart=on-failure), \
which answers and still has its cache" crash_check

# ---- dmaload-preload@ ----
template_check() {
	local unit missing out
	unit=dmaload-preload@$(c systemd-escape --path /srv/dltest/tmpl.bin).service
	c systemctl start "$unit" || { why="start $unit failed: $(journal -u "$unit" | tail -n 3)"; return 1; }
	[ "$(c systemctl is-active "$unit")" = active ] || { why="$unit is not active"; return 1; }
	listed_pinned /srv/dltest/tmpl.bin || { why="tmpl.bin not pinned when the unit is active"; return 1; }
	out=$(ctl --json load /srv/dltest/tmpl.bin 2>&1)
	[ "$(echo "$out" | json_get shared)" = cache ] || { why="tmpl.bin: $out"; return 1; }
	same_bytes /srv/dltest/tmpl.bin || { why="tmpl.bin: buffer differs"; return 1; }
	missing=dmaload-preload@$(c systemd-escape --path /srv/dltest/none.bin).service
	c systemctl start "$missing" || { why="a missing file failed $missing"; return 1; }
	[ "$(prop "$missing" ConditionResult)" = no ] || { why="$missing ran"; return 1; }
	c systemctl is-failed -q "$missing" && { why="$missing failed"; return 1; }
	return 0
}
check "dmaload-preload@: an instance is active once its file is pinned in the cache (a \
hit, byte for byte); a missing file skips the unit, not fails it" template_check

# ---- clients in other containers ----
# The host's own daemon (build/dmaloadd) too: its root-only file must stay out of reach
# of a container's root.
mkdir -p "$work/hostsock"
head -c 64K /dev/urandom >"$work/host-secret.bin"
chmod 600 "$work/host-secret.bin"
printf '[daemon]\n' >"$work/host.conf"
"$BUILD/dmaloadd" --config "$work/host.conf" --socket "$work/hostsock/d.sock" \
	2>"$work/hostd.log" &
hostd_pid=$!
echo "$hostd_pid" >"$work/hostd.pid"
for _ in $(seq 50); do
	[ -S "$work/hostsock/d.sock" ] && break
	sleep 0.1
done

# The client's script: every line is "NAME rc [output]".
cat >"$cli/root/client.sh" <<EOF
#!/bin/sh
r() { n=\$1; shift; o=\$("\$@" 2>&1); rc=\$?; echo "\$n \$rc \$(echo "\$o" | tr '\\n' ' ')"; }
S=/run/dmaloadd/dmaloadd.sock
H=/run/hostd/d.sock
r daemon timeout 5 dmaloadd --socket /tmp/own.sock
r path dmaload-ctl --socket \$S load /srv/dlclient/c.bin -- sh -c 'head -c "\$DMALOAD_SIZE" <&3 | cmp - /srv/dlclient/c.bin'
r fd dmaload-ctl --socket \$S load /srv/dlclient/c2.bin --fd -- sh -c 'head -c "\$DMALOAD_SIZE" <&3 | cmp - /srv/dlclient/c2.bin'
r secret dmaload-ctl --socket \$S load /srv/dltest/secret.bin
r hostpath dmaload-ctl --socket \$H load /srv/dlclient/c.bin -- sh -c 'head -c "\$DMALOAD_SIZE" <&3 | cmp - /srv/dlclient/c.bin'
r hostsecret dmaload-ctl --socket \$H load $work/host-secret.bin
r list dmaload-ctl --socket \$S list
EOF
chmod 755 "$cli/root/client.sh"
client_out=$(nspawn_run "$cli" --system-call-filter='~io_uring_setup' \
	--bind="$work/sock:/run/dmaloadd" \
	--bind="$work/hostsock:/run/hostd" /root/client.sh)
note "client container: $(echo "$client_out" | tr '\n' ';')"
# Not a check, a fact docs/DEPLOYMENT.md states: that root is uid 0 to the daemon and
# lists every entry.
note "the container's root, without a user namespace, is shown the cache's $(echo "$client_out" |
	grep -o '^list 0 cache: .* in [0-9]* entries' | sed 's/.* in //'), every user's"
cline() { echo "$client_out" | grep "^$1 "; }
crc() { cline "$1" | cut -d' ' -f2; }

nouring_check() {
	[ -n "$client_out" ] || { why="the client container ran nothing"; return 1; }
	[ "$(crc daemon)" != 0 ] && [[ $(cline daemon) == *"io_uring setup failed: Operation not permitted"* ]] ||
		{ why="io_uring was not denied there: dmaloadd: $(cline daemon)"; return 1; }
	[ "$(crc path)" = 0 ] || { why="by path: $(cline path)"; return 1; }
	[ "$(crc fd)" = 0 ] && [[ $(cline fd) != *"from the daemon's cache"* ]] ||
		{ why="by fd: $(cline fd)"; return 1; }
	[ "$(crc hostpath)" = 0 ] || { why="by path from the host's daemon: $(cline hostpath)"; return 1; }
}
check "clients need no io_uring: in a container whose filter denies io_uring_setup (a \
daemon cannot start there), a client with the socket bound in loads a file of its own \
tree by path and by fd, byte for byte, from the daemon under systemd and the host's" \
	nouring_check

rootpath_check() {
	local out
	out=$(ctl load /srv/dltest/secret.bin 2>&1) ||
		{ why="root of the daemon's own system cannot load it either: $out"; return 1; }
	out=$("$BUILD/dmaload-ctl" --socket "$work/hostsock/d.sock" load "$work/host-secret.bin" 2>&1) ||
		{ why="root on the host cannot load the host's file: $out"; return 1; }
	[ "$(crc secret)" != 0 ] && [[ $(cline secret) == *"No such file"* ]] ||
		{ why="the container's root got the daemon's root-only file: $(cline secret)"; return 1; }
	[ "$(crc hostsecret)" != 0 ] && [[ $(cline hostsecret) == *"No such file"* ]] ||
		{ why="the container's root got the host's root-only file: $(cline hostsecret)"; return 1; }
}
check "a container's root without a user namespace cannot load the host's root-only \
files by path (resolved in its own root: ENOENT), which root beside the daemon loads" \
	rootpath_check

# A client container with a user namespace: its root is uid $USERNS_BASE on the host,
# and so to the daemon (SO_PEERCRED is translated; the server container has no user
# namespace of its own). nspawn maps its tree with an idmapped mount where the kernel
# allows it, else it chowns this copy.
USERNS_BASE=1879048192
cat >"$cli/root/userns.sh" <<'EOF'
#!/bin/sh
S=/run/dmaloadd/dmaloadd.sock
echo "id $(id -u)"
dmaload-ctl --socket $S load /srv/dlclient/c3.bin -- sh -c 'head -c "$DMALOAD_SIZE" <&3 | cmp - /srv/dlclient/c3.bin'
echo "load $?"
echo "stats $(dmaload-ctl --socket $S --json stats)"
echo "list $(dmaload-ctl --socket $S --json list)"
EOF
chmod 755 "$cli/root/userns.sh"
head -c 1M /dev/urandom >"$cli/srv/dlclient/c3.bin"
userns_out=$(nspawn_run "$cli" --private-users="$USERNS_BASE:65536" \
	--private-users-ownership=auto --system-call-filter='~io_uring_setup' \
	--bind="$work/sock:/run/dmaloadd" /root/userns.sh)
note "user namespace client: $(echo "$userns_out" | grep -v '^stats\|^list' | tr '\n' ';')"
userns_check() {
	local stats list
	[ "$(echo "$userns_out" | sed -n 's/^id //p')" = 0 ] ||
		{ why="not root in its namespace: $(echo "$userns_out" | head -n 3 | tr '\n' ' ')"; return 1; }
	[ "$(echo "$userns_out" | sed -n 's/^load //p')" = 0 ] ||
		{ why="its own file by path: $(echo "$userns_out" | tail -n 4 | tr '\n' ' ')"; return 1; }
	stats=$(echo "$userns_out" | sed -n 's/^stats //p')
	[[ $stats == *"\"uid\":$USERNS_BASE,"* ]] ||
		{ why="the daemon does not see uid $USERNS_BASE: $stats"; return 1; }
	[[ $stats != *'"uid":0,'* ]] || { why="it is shown root's connections: $stats"; return 1; }
	list=$(echo "$userns_out" | sed -n 's/^list //p')
	[[ $list == *'"name":"/srv/dlclient/c3.bin"'* ]] || { why="its entry is not listed: $list"; return 1; }
	[[ $list != *'/srv/dltest/'* ]] || { why="it is shown root's entries: $list"; return 1; }
	[ "$(echo "$list" | json_get hidden)" -gt 0 ] 2>/dev/null ||
		{ why="LIST hides nothing from it: $list"; return 1; }
}
check "a container with a user namespace: its root is uid $USERNS_BASE to the daemon \
(STATS), loads its own file by path byte for byte, and LIST shows it only its own entry" \
	userns_check

# ---- stop ----
memfd_holders() {
	c sh -c 'for f in /proc/[0-9]*/fd/*; do readlink "$f"; done 2>/dev/null' |
		grep -c 'memfd:dmaload'
}
# A small file loaded twice by nobody: the second load is a hit whose path the daemon
# walks on its loop (daemon/lookup.c) under the unit's filter, which refuses openat2;
# its stop logs how many such walks there were and how many gave up.
loop_hits() {
	local i
	c sh -c 'head -c 65536 /dev/urandom > /srv/dltest/small.bin && chmod 0644 /srv/dltest/small.bin' ||
		{ why="cannot write /srv/dltest/small.bin"; return 1; }
	for i in 1 2; do
		c setpriv --reuid=65534 --regid=65534 --clear-groups dmaload-ctl load \
			/srv/dltest/small.bin -- sh -c 'head -c "$DMALOAD_SIZE" <&3 | cmp -s - "$0"' \
			/srv/dltest/small.bin 2>/dev/null ||
			{ why="nobody's load $i of small.bin failed or differs"; return 1; }
	done
}
stop_check() {
	local n out walks gave_up
	loop_hits || return 1
	ctl load /srv/dltest/a.bin >/dev/null 2>&1
	n=$(memfd_holders)
	[ "$n" -gt 0 ] || { why="no dmaload memfd seen before the stop: the probe is blind"; return 1; }
	c systemctl stop dmaloadd.socket dmaloadd.service || { why="stop failed"; return 1; }
	out=$(journal -u dmaloadd.service | grep 'walked on the loop' | tail -n 1)
	walks=$(echo "$out" | sed -n 's/.*walked on the loop: \([0-9]*\),.*/\1/p')
	gave_up=$(echo "$out" | sed -n 's/.*of which \([0-9]*\) went.*/\1/p')
	[ -n "$walks" ] && [ -n "$gave_up" ] && [ "$((walks - gave_up))" -ge 1 ] ||
		{ why="no hit checked on the loop under the unit: '${out:-no line}'"; return 1; }
	[ "$(c systemctl is-active dmaloadd.service)" = inactive ] ||
		{ why="dmaloadd.service is $(c systemctl is-active dmaloadd.service)"; return 1; }
	n=$(prop dmaloadd.service NFileDescriptorStore)
	[ "$n" = 0 ] || { why="$n fds left in the fd store"; return 1; }
	n=$(memfd_holders)
	[ "$n" = 0 ] || { why="$n dmaload memfds still open in the container"; return 1; }
	c systemctl start dmaloadd.socket || { why="cannot start the socket again"; return 1; }
	out=$(ctl --json load /srv/dltest/a.bin 2>&1)
	[ "$(echo "$out" | json_get shared)" = null ] ||
		{ why="a load after the stop was shared: $out"; return 1; }
	[ "$(read_bytes)" -gt 0 ] 2>/dev/null || { why="nothing read after the stop"; return 1; }
}
check "systemctl stop leaves nothing pinned: the fd store is empty, no memfd of the daemon \
is open, and the next start reads the file again; before it, nobody's second load of a \
small file was a hit checked on the daemon's loop, under the unit's filter" stop_check

# ---- purge ----
purge_check() {
	local out
	if [ -z "$debs" ]; then
		why="installed with make install, not the package"
		return 2
	fi
	ctl ping >/dev/null 2>&1
	[ "$(c systemctl is-active dmaloadd.service)" = active ] ||
		{ why="the daemon is not running before the purge"; return 1; }
	out=$(c env DEBIAN_FRONTEND=noninteractive dpkg --purge dmaloadd 2>&1) ||
		{ why="dpkg --purge: $out"; return 1; }
	c test -e /etc/dmaloadd && { why="/etc/dmaloadd is still there"; return 1; }
	c test -e /lib/systemd/system/dmaloadd.socket && { why="the socket unit is still there"; return 1; }
	c test -e /etc/systemd/system/sockets.target.wants/dmaloadd.socket &&
		{ why="the socket is still enabled"; return 1; }
	[ "$(c systemctl is-active dmaloadd.socket)" != active ] ||
		{ why="dmaloadd.socket still listens"; return 1; }
	[ "$(c systemctl is-active dmaloadd.service)" != active ] ||
		{ why="the daemon still runs"; return 1; }
	return 0
}
check "dpkg --purge dmaloadd (with the daemon running) stops the socket and the daemon, \
and removes the units, the enablement and /etc/dmaloadd" purge_check

if [ "$failed" -gt 0 ]; then
	echo "---- the container's journal (dmaloadd) ----" >&2
	journal -u dmaloadd.service -u dmaloadd.socket | tail -n 60 >&2
	echo "---- the host daemon's log ----" >&2
	tail -n 20 "$work/hostd.log" >&2
	echo "----" >&2
fi
note "tests/systemd took $((SECONDS - start)) s"
finish
