/*
 * test-systemd.c: the daemon under systemd's rules, without a systemd to run it (these
 * machines have none as PID 1), using systemd's own tools where they exist:
 *
 *   - systemd-analyze verify accepts the shipped units, the preload template through
 *     an instance (with ExecStart pointed at the built binaries, since verify wants
 *     an executable there);
 *   - systemd-analyze security --offline rates dmaloadd.service and the preload
 *     template at 2.0 or less;
 *   - systemd-socket-activate (real systemd code) passes a listening socket: the
 *     daemon serves on it, byte for byte, and exits 0 on SIGTERM;
 *   - a datagram socket of the test's, set as NOTIFY_SOCKET, receives READY=1 with a
 *     STATUS= (loads and cache use), WATCHDOG=1 at half of WATCHDOG_USEC,
 *     RELOADING=1 then READY=1 around a SIGHUP, and STOPPING=1 on SIGTERM.
 * The units are the ones make generated from the templates in systemd/, beside the daemon
 * binary ($DMALOADD's directory, systemd/), or those in $DMALOAD_UNITS. A missing tool skips
 * its case (with the reason); nothing here needs root. tests/systemd/ runs them under a
 * real systemd.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../lib/check.h"
#include "../lib/harness.h"
#include "../lib/loads.h"

#define SUITE "systemd"

static char dir[256];		/* this program's temp dir */
static char units[PATH_MAX + 16];	/* the generated units (BUILD/systemd) */

static bool have(const char *tool)
{
	char cmd[256];

	snprintf(cmd, sizeof(cmd), "command -v %s >/dev/null 2>&1", tool);
	return system(cmd) == 0;
}

/* Runs @cmd with sh; its output (stdout and stderr) into @out. Returns the exit
 * status, or -1. */
static int run(const char *cmd, char *out, size_t len)
{
	char full[PATH_MAX * 3];
	size_t n = 0;
	FILE *p;
	int st;

	snprintf(full, sizeof(full), "%s 2>&1", cmd);
	p = popen(full, "r");
	if (!p)
		return -1;
	while (n + 1 < len && fgets(out + n, (int)(len - n), p))
		n += strlen(out + n);
	out[n] = '\0';
	st = pclose(p);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* The template's instance: verify and security want a unit name, not a template. */
#define PRELOAD_UNIT "dmaload-preload@srv-models-x.safetensors.service"

/* Copies the generated units into dir/units, ExecStart= pointing at the built binaries,
 * and links an instance of the preload template to it. */
static bool units_copy(void)
{
	char cmd[PATH_MAX * 8], out[4096], bin[PATH_MAX], ctlbin[PATH_MAX];

	if (!CHECKF(realpath(daemon_binary(), bin), "realpath %s: %m", daemon_binary()) ||
	    !CHECKF(realpath(ctl_binary(), ctlbin), "realpath %s: %m", ctl_binary()))
		return false;
	snprintf(cmd, sizeof(cmd), "mkdir -p '%s/units' && cp '%s/dmaloadd.socket' "
		 "'%s/units/' && sed 's|^ExecStart=.*|ExecStart=%s|' "
		 "'%s/dmaloadd.service' > '%s/units/dmaloadd.service' && "
		 "sed 's|^ExecStart=[^ ]*/dmaload-ctl |ExecStart=%s |' "
		 "'%s/dmaload-preload@.service' > "
		 "'%s/units/dmaload-preload@.service' && "
		 "ln -sf dmaload-preload@.service '%s/units/" PRELOAD_UNIT "'",
		 dir, units, dir, bin, units, dir, ctlbin, units, dir, dir);
	return CHECKF(run(cmd, out, sizeof(out)) == 0, "copying the units: %s", out);
}

static void verify_units(void)
{
	char cmd[PATH_MAX * 2], out[8192];
	int st;

	if (!have("systemd-analyze")) {
		check_skip("no systemd-analyze");
		return;
	}
	if (!units_copy())
		return;
	snprintf(cmd, sizeof(cmd), "cd '%s/units' && systemd-analyze verify --man=no "
		 "./dmaloadd.socket ./dmaloadd.service ./" PRELOAD_UNIT, dir);
	st = run(cmd, out, sizeof(out));
	CHECKF(st == 0 && !out[0], "systemd-analyze verify: status %d: %s", st, out);
}

/* The exposure score systemd-analyze security gives @unit (in dir/units). */
static void score_of(const char *unit)
{
	char cmd[PATH_MAX * 2], out[65536], head[256], *at;
	double score = 99;
	int st;

	snprintf(cmd, sizeof(cmd), "cd '%s/units' && systemd-analyze security "
		 "--offline=true --no-pager ./%s", dir, unit);
	st = run(cmd, out, sizeof(out));
	snprintf(head, sizeof(head), "Overall exposure level for %s:", unit);
	at = strstr(out, head);
	if (!CHECKF(st == 0 && at, "systemd-analyze security %s: status %d, no score in: "
		    "%.300s", unit, st, out))
		return;
	if (!CHECKF(sscanf(at + strlen(head), "%lf", &score) == 1, "cannot read the score: "
		    "%.80s", at))
		return;
	CHECKF(score <= 2.0, "%s: exposure %.1f, more than 2.0", unit, score);
	fprintf(stderr, "%s: exposure level %.1f\n", unit, score);
}

static void security_score(void)
{
	if (!have("systemd-analyze")) {
		check_skip("no systemd-analyze");
		return;
	}
	if (!units_copy())
		return;
	score_of("dmaloadd.service");
	score_of(PRELOAD_UNIT);
}

/* systemd-socket-activate binds, waits for the first connection and execs the daemon
 * with the socket as LISTEN_FDS. */
static void socket_activation(void)
{
	char sock[300], file[300], conf[300];
	struct dmaload *dl = NULL;
	pid_t pid;
	int st, r;

	if (!have("systemd-socket-activate")) {
		check_skip("no systemd-socket-activate");
		return;
	}
	snprintf(sock, sizeof(sock), "%s/activated.sock", dir);
	snprintf(file, sizeof(file), "%s/file", dir);
	snprintf(conf, sizeof(conf), "%s/empty.conf", dir);
	r = file_make(file, 3 * MiB + 5, 42, 0644);
	if (!CHECKF(r == 0, "file_make: %s", strerror(-r)))
		return;
	r = file_make(conf, 0, 0, 0644);
	if (!CHECKF(r == 0, "file_make: %s", strerror(-r)))
		return;
	pid = fork();
	if (pid == 0) {
		/* a config with no socket key: the passed socket is the one */
		execlp("systemd-socket-activate", "systemd-socket-activate", "--seqpacket",
		       "-l", sock, daemon_binary(), "--config", conf, (char *)NULL);
		_exit(127);
	}
	if (!CHECKF(pid > 0, "fork: %m"))
		return;
	for (int i = 0; i < 100 && access(sock, F_OK) != 0; i++)
		sleep_ms(50);
	r = dmaload_connect(&dl, sock, "activated");
	if (CHECKF(r == 0, "connect to the activated socket: %s", strerror(-r)))
		lc_load_verify(dl, file, -1, NULL, 3 * MiB + 5, 42, DL_METHOD_AUTO, NULL);
	dmaload_close(dl);
	kill(pid, SIGTERM);
	if (waitpid(pid, &st, 0) == pid)
		CHECKF(WIFEXITED(st) && WEXITSTATUS(st) == 0, "activated daemon: wait status "
		       "0x%x", st);
}

/* Reads notify datagrams for up to @ms, appending "|"-joined messages to @log. */
static void notify_collect(int s, unsigned ms, char *log, size_t len)
{
	uint64_t end = now_ms() + ms;
	char buf[1024];

	while (now_ms() < end) {
		struct timeval tv = { .tv_usec = 50000 };
		ssize_t n;

		setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
		n = recv(s, buf, sizeof(buf) - 1, 0);
		if (n <= 0)
			continue;
		buf[n] = '\0';
		for (char *p = buf; *p; p++)
			if (*p == '\n')
				*p = ' ';
		snprintf(log + strlen(log), len - strlen(log), "%s|", buf);
	}
}

static void notify_protocol(void)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct test_daemon d;
	char why[512], log[8192] = "", hup[4096] = "", hup2[4096] = "";
	char *ready, *dog, *rel;
	int s, st;

	s = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (!CHECKF(s >= 0, "socket: %m"))
		return;
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%.90s/notify", dir);
	if (!CHECKF(bind(s, (struct sockaddr *)&sa, sizeof(sa)) == 0, "bind: %m"))
		goto out;
	setenv("NOTIFY_SOCKET", sa.sun_path, 1);
	setenv("WATCHDOG_USEC", "400000", 1);
	st = daemon_start(&d, "systemd-notify", NULL, why, sizeof(why));
	unsetenv("NOTIFY_SOCKET");
	unsetenv("WATCHDOG_USEC");
	if (!CHECKF(st == 0, "%s", why)) {
		daemon_cleanup(&d);
		goto out;
	}
	notify_collect(s, 1000, log, sizeof(log));
	/* SIGHUP with a good config, then with a broken one: both are bracketed by
	 * RELOADING=1 (with MONOTONIC_USEC) and READY=1, since the daemon serves on. */
	kill(d.pid, SIGHUP);
	notify_collect(s, 500, hup, sizeof(hup));
	if (CHECK_OK(daemon_write_config_more(&d, NULL, "[nosuchsection]\nx = 1\n"))) {
		kill(d.pid, SIGHUP);
		notify_collect(s, 500, hup2, sizeof(hup2));
	}
	st = daemon_stop(&d);
	notify_collect(s, 300, log, sizeof(log));
	daemon_cleanup(&d);
	ready = strstr(log, "READY=1");
	dog = strstr(log, "WATCHDOG=1");
	CHECKF(ready && strstr(ready, "STATUS="), "no READY=1 with a STATUS=: %s", log);
	/* 1 s at a 0.2 s ping period: a few, after READY */
	CHECKF(dog && dog > ready && strstr(dog + 1, "WATCHDOG=1"), "fewer than two "
	       "WATCHDOG=1 after READY=1 in 1 s: %s", log);
	CHECKF(ready && strstr(ready, "cache 0 entries (0 pinned), 0 of 0 MiB"),
	       "STATUS= without the cache use: %s", log);
	rel = strstr(hup, "RELOADING=1 MONOTONIC_USEC=");
	CHECKF(rel && strstr(rel, "READY=1"), "SIGHUP: no RELOADING=1 + MONOTONIC_USEC then "
	       "READY=1: %s", hup);
	rel = strstr(hup2, "RELOADING=1 MONOTONIC_USEC=");
	CHECKF(rel && strstr(rel, "READY=1"), "SIGHUP with a broken config: no RELOADING=1 "
	       "then READY=1: %s", hup2);
	CHECKF(strstr(log, "STOPPING=1"), "no STOPPING=1 after SIGTERM: %s", log);
	CHECKF(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0, "wait status 0x%x", st);
out:
	close(s);
}

/* ---- the fd store ---------------------------------------------------------------- */

#define MAX_STORED 8

struct stored {
	int n;
	int fds[MAX_STORED];
	char names[MAX_STORED][256];
	char log[8192];			/* every message, "|"-joined */
};

/* Reads notify datagrams for @ms, keeping FDSTORE=1 fds and their FDNAMEs. */
static void store_collect(int s, unsigned ms, struct stored *st)
{
	uint64_t end = now_ms() + ms;

	while (now_ms() < end) {
		char buf[1024], cbuf[CMSG_SPACE(sizeof(int) * 4)];
		struct iovec iov = { .iov_base = buf, .iov_len = sizeof(buf) - 1 };
		struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf,
				     .msg_controllen = sizeof(cbuf) };
		struct timeval tv = { .tv_usec = 50000 };
		struct cmsghdr *cm;
		int fd = -1;
		ssize_t n;
		char *name;

		setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
		n = recvmsg(s, &mh, MSG_CMSG_CLOEXEC);
		if (n <= 0)
			continue;
		buf[n] = '\0';
		for (cm = CMSG_FIRSTHDR(&mh); cm; cm = CMSG_NXTHDR(&mh, cm))
			if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_RIGHTS)
				memcpy(&fd, CMSG_DATA(cm), sizeof(int));
		snprintf(st->log + strlen(st->log), sizeof(st->log) - strlen(st->log), "%s|",
			 buf);
		name = strstr(buf, "FDNAME=");
		if (fd >= 0 && strstr(buf, "FDSTORE=1") && name && st->n < MAX_STORED) {
			snprintf(st->names[st->n], sizeof(st->names[0]), "%.*s",
				 (int)strcspn(name + 7, "\n"), name + 7);
			st->fds[st->n++] = fd;
		} else if (fd >= 0) {
			close(fd);
		}
	}
}

static int notify_socket(const char *tag, struct sockaddr_un *sa)
{
	int s = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);

	*sa = (struct sockaddr_un){ .sun_family = AF_UNIX };
	snprintf(sa->sun_path, sizeof(sa->sun_path), "%.90s/%s", dir, tag);
	if (s >= 0 && bind(s, (struct sockaddr *)sa, sizeof(*sa)) < 0) {
		close(s);
		return -1;
	}
	return s;
}

/*
 * A daemon with NOTIFY_SOCKET hands each cached buffer to the stand-in (FDSTORE=1 +
 * FDNAME); restarted with them as LISTEN_FDS / LISTEN_FDNAMES (LISTEN_PID set by a
 * wrapper that execs the daemon, reopening the buffers from this process's
 * /proc/PID/fd: the harness closes inherited fds), it serves the unchanged file
 * from the cache with no read, and drops the buffer of the file changed in between
 * (FDSTOREREMOVE=1).
 */
static void fd_store(void)
{
	char keep[300], change[300], wrap[300], why[512], bin[PATH_MAX], names[2048] = "";
	char redir[1024] = "";
	struct dmaload_stats s0, s1;
	struct dmaload_event ev = { .fd = -1 };
	struct test_daemon d1, d2;
	struct sockaddr_un sa;
	struct stored st = { 0 }, st2 = { 0 };
	struct dmaload *dl = NULL;
	struct dmaload_cache_list l;
	int s, r, keep_i = -1, change_i = -1;
	FILE *f;

	snprintf(keep, sizeof(keep), "%s/keep.bin", dir);
	snprintf(change, sizeof(change), "%s/change.bin", dir);
	if (!CHECK_OK(file_make(keep, 5 * MiB + 7, 7, 0644)) ||
	    !CHECK_OK(file_make(change, 2 * MiB, 8, 0644)))
		return;
	s = notify_socket("notify-store", &sa);
	if (!CHECKF(s >= 0, "notify socket: %m"))
		return;
	setenv("NOTIFY_SOCKET", sa.sun_path, 1);
	r = daemon_start_more(&d1, "fdstore1", NULL, "[cache]\ncache_limit = 1G\n", why,
			      sizeof(why));
	unsetenv("NOTIFY_SOCKET");
	if (!CHECKF(r == 0, "%s", why))
		goto out1;
	dl = lc_connect(&d1, "store");
	if (dl) {
		lc_load_verify(dl, keep, -1, NULL, 5 * MiB + 7, 7, DL_METHOD_AUTO, NULL);
		lc_load_verify(dl, change, -1, NULL, 2 * MiB, 8, DL_METHOD_AUTO, NULL);
		dl = dmaload_close(dl);
	}
	store_collect(s, 500, &st);
	daemon_stop(&d1);
	daemon_cleanup(&d1);
	for (int i = 0; i < st.n; i++) {
		if (strstr(st.names[i], "keep.bin"))
			keep_i = i;
		if (strstr(st.names[i], "change.bin"))
			change_i = i;
		CHECKF(strlen(st.names[i]) <= 255 && !strchr(st.names[i], ':'),
		       "bad FDNAME %s", st.names[i]);
	}
	if (!CHECKF(st.n == 2 && keep_i >= 0 && change_i >= 0, "%d FDSTORE fds: %s", st.n,
		    st.log))
		goto out1;
	/* The stored buffers hold the bytes. What systemd keeps is the daemon's own
	 * descriptor (read-write, sealed); look at it as a holder would, read-only. */
	{
		char link[64];
		int ro;

		snprintf(link, sizeof(link), "/proc/self/fd/%d", st.fds[keep_i]);
		ro = open(link, O_RDONLY | O_CLOEXEC);
		CHECK_BUF(ro, 5 * MiB + 7, 7, 0);
		if (ro >= 0)
			close(ro);
	}

	/* change.bin gets new bytes (same size, new mtime and ctime) */
	sleep_ms(20);
	if (!CHECK_OK(file_make(change, 2 * MiB, 9, 0644)))
		goto out1;

	if (!CHECKF(realpath(daemon_binary(), bin), "realpath: %m"))
		goto out1;
	for (int i = 0; i < st.n; i++) {
		snprintf(names + strlen(names), sizeof(names) - strlen(names), "%s%s",
			 i ? ":" : "", st.names[i]);
		snprintf(redir + strlen(redir), sizeof(redir) - strlen(redir),
			 " %d<>/proc/%d/fd/%d", 3 + i, (int)getpid(), st.fds[i]);
	}
	snprintf(wrap, sizeof(wrap), "%s/wrap.sh", dir);
	f = fopen(wrap, "we");
	if (!CHECKF(f, "%s: %m", wrap))
		goto out1;
	fprintf(f, "#!/bin/bash\nexport LISTEN_PID=$$ LISTEN_FDS=%d LISTEN_FDNAMES='%s'\n"
		"exec '%s' \"$@\"%s\n", st.n, names, bin, redir);
	fclose(f);
	chmod(wrap, 0755);
	setenv("DMALOADD", wrap, 1);
	setenv("NOTIFY_SOCKET", sa.sun_path, 1);
	r = daemon_start_more(&d2, "fdstore2", NULL, "[cache]\ncache_limit = 1G\n", why,
			      sizeof(why));
	unsetenv("NOTIFY_SOCKET");
	unsetenv("DMALOADD");
	if (!CHECKF(r == 0, "%s", why))
		goto out1;
	dl = lc_connect(&d2, "restored");
	if (!dl || !CHECK_OK(dmaload_stats(dl, &s0)))
		goto out2;
	CHECK_U64(s0.bytes_read, ==, 0);
	CHECK_U64(s0.cache_entries, ==, 1);
	r = dmaload_load_path_sync(dl, keep, NULL, &ev);
	if (CHECKF(r == 0, "load %s: %s", keep, lc_event_str(&ev))) {
		CHECKF(ev.done_flags & DL_DONE_CACHED, "not from the cache: flags 0x%x",
		       ev.done_flags);
		CHECK_BUF(ev.fd, 5 * MiB + 7, 7, 0);
		close(ev.fd);
	}
	if (CHECK_OK(dmaload_list(dl, &l))) {
		for (size_t i = 0; i < l.n_entries; i++)
			CHECKF(!strstr(l.entries[i].name, "change.bin"), "the changed file's "
			       "buffer was kept");
		dmaload_list_free(&l);
	}
	/* the changed file is read again, with its new bytes */
	lc_load_verify(dl, change, -1, NULL, 2 * MiB, 9, DL_METHOD_AUTO, NULL);
	if (CHECK_OK(dmaload_stats(dl, &s1))) {
		CHECK_U64(s1.bytes_read, ==, 2 * MiB);
		dmaload_stats_free(&s1);
	}
	dmaload_stats_free(&s0);
	store_collect(s, 300, &st2);
	CHECKF(strstr(st2.log, "FDSTOREREMOVE=1") && strstr(st2.log, st.names[change_i]),
	       "no FDSTOREREMOVE=1 of the changed file's buffer: %s", st2.log);
out2:
	dmaload_close(dl);
	CHECKF(daemon_stop(&d2) == 0, "restarted daemon: exit status");
	daemon_cleanup(&d2);
out1:
	for (int i = 0; i < st.n; i++)
		close(st.fds[i]);
	for (int i = 0; i < st2.n; i++)
		close(st2.fds[i]);
	close(s);
}

int main(void)
{
	const char *env = getenv("DMALOAD_UNITS");
	char bin[PATH_MAX], *slash;

	check_init(SUITE);
	check_begin("set-up");
	if (env) {
		snprintf(units, sizeof(units), "%s", env);
	} else if (realpath(daemon_binary(), bin) && (slash = strrchr(bin, '/'))) {
		*slash = '\0';
		snprintf(units, sizeof(units), "%s/systemd", bin);
	}
	CHECKF(units[0] && access(units, F_OK) == 0, "no generated units in %s (make builds "
	       "them beside the daemon; or set DMALOAD_UNITS)", units[0] ? units : "?");
	/* A template whose placeholder make left unfilled would still pass verify once
	 * ExecStart= is rewritten below: look for one here. */
	{
		char cmd[PATH_MAX + 64], out[1024];

		snprintf(cmd, sizeof(cmd), "! grep -n '@S\\?BINDIR@' '%s'/*", units);
		CHECKF(run(cmd, out, sizeof(out)) == 0, "placeholders left in the units: %s",
		       out);
	}
	CHECKF(tdir_create(dir, sizeof(dir), "systemd") == 0, "temp dir: %m");
	if (!check_end())
		return check_finish();

	CASE(verify_units(), "systemd-analyze verify accepts dmaloadd.socket, .service and "
	     "an instance of dmaload-preload@.service");
	CASE(security_score(), "systemd-analyze security rates dmaloadd.service and "
	     "dmaload-preload@.service 2.0 or less");
	CASE(socket_activation(), "systemd-socket-activate: the daemon serves on the passed "
	     "socket and exits 0 on SIGTERM");
	CASE(notify_protocol(), "NOTIFY_SOCKET sees READY=1 + STATUS= (with cache use), WATCHDOG=1 "
	     "at half WATCHDOG_USEC, RELOADING=1 then READY=1 on SIGHUP (good and bad "
	     "config), STOPPING=1");
	CASE(fd_store(), "fd store: cached buffers go to FDSTORE=1; passed back after a "
	     "restart they serve loads with no read; a changed file's is dropped");
	if (!getenv("DMALOAD_TEST_KEEP"))
		tdir_remove(dir);
	return check_finish();
}
