/*
 * test-preload.c: preloading, against the real daemon.
 *
 * Files made before the daemon starts are named in its [preload] section (a glob, a
 * plain path, a pattern that matches nothing, a directory that matches the glob);
 * global_rate slows the reads down so the test can watch them. NOTIFY_SOCKET is a
 * datagram socket of the test's: READY=1 comes while LIST still shows the preloads
 * loading; then LIST shows every matched regular file loaded and pinned, and a
 * client's load of one is served from the cache (DONE_CACHED, no bytes read, every
 * byte right). `dmaload-ctl preload` does the same at run time: without --wait it
 * returns once the daemon accepted the file and the load goes on after it exits;
 * with --wait it returns when loaded, non-zero if a file failed. A SIGHUP that adds
 * a [preload] entry preloads it; one still loading is in root's STATUS and root's
 * EVICT of its path cancels it. A daemon with the cache off preloads nothing (with a
 * warning) and refuses `dmaload-ctl preload`.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
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

#define SUITE "preload"
#define BIG (48 * MiB + 3)
#define SMALL (3 * MiB + 17)

static struct test_daemon d, d2;
static struct test_daemon *cur;
static char fdir[256];		/* the files, made before the daemon starts */
static char fa[PATH_MAX], fb[PATH_MAX], fone[PATH_MAX], fc[PATH_MAX], fd_[PATH_MAX],
	    fe[PATH_MAX], fg[PATH_MAX], fh[PATH_MAX];
static char out[65536], err[65536];

/* Runs dmaload-ctl on cur's socket; stdout and stderr into out and err. Returns the
 * exit status, or -1. */
static int ctl(const char *first, ...)
{
	const char *args[64];
	va_list ap;
	int n = 0;

	va_start(ap, first);
	for (const char *a = first; a && n < 60; a = va_arg(ap, const char *))
		args[n++] = a;
	va_end(ap);
	args[n] = NULL;
	return ctl_run(cur->sock, cur->dir, args, 60000, out, sizeof(out), err, sizeof(err));
}

static bool make_cold(const char *path, uint64_t size, uint32_t seed)
{
	int r = file_make(path, size, seed, 0644);

	if (!CHECKF(r == 0, "file_make(%s): %s", path, strerror(-r)))
		return false;
	file_uncache(path);	/* a warm file only makes the load faster */
	return true;
}

/* The LIST entry of @path (whole file), copied into @e. */
static bool list_find(struct dmaload *dl, const char *path, struct dmaload_cache_entry *e)
{
	struct dmaload_cache_list l;
	bool found = false;

	if (dmaload_list(dl, &l) < 0)
		return false;
	for (size_t i = 0; i < l.n_entries && !found; i++)
		if (!strcmp(l.entries[i].name, path)) {
			*e = l.entries[i];
			found = true;
		}
	dmaload_list_free(&l);
	return found;
}

/* Waits up to @ms for @path to be listed loaded (not loading) and pinned. */
static bool wait_pinned(struct dmaload *dl, const char *path, uint64_t size, int ms)
{
	struct dmaload_cache_entry e;
	uint64_t end = now_ms() + (uint64_t)ms;

	do {
		if (list_find(dl, path, &e) && !(e.flags & DL_ENTRY_LOADING)) {
			CHECKF(e.flags & DL_ENTRY_PINNED, "%s: loaded but not pinned", path);
			CHECK_U64(e.size, ==, size);
			return true;
		}
		sleep_ms(20);
	} while (now_ms() < end);
	return CHECKF(false, "%s not listed loaded within %d ms", path, ms);
}

/* A load of @path is a cache hit: DONE_CACHED, nothing read, the right bytes. */
static void load_cached(struct dmaload *dl, const char *path, uint64_t size, uint32_t seed)
{
	struct dmaload_stats s0, s1;
	struct dmaload_event ev = { .fd = -1 };
	int r;

	if (!CHECK_OK(dmaload_stats(dl, &s0)))
		return;
	r = dmaload_load_path_sync(dl, path, NULL, &ev);
	if (CHECKF(r == 0, "load %s: %s", path, lc_event_str(&ev))) {
		CHECKF(ev.done_flags & DL_DONE_CACHED, "%s: not from the cache (flags 0x%x)",
		       path, ev.done_flags);
		CHECK_U64(ev.size, ==, size);
		CHECK_BUF(ev.fd, size, seed, 0);
		close(ev.fd);
	}
	if (CHECK_OK(dmaload_stats(dl, &s1)))
		CHECK_U64(s1.bytes_read, ==, s0.bytes_read);
	dmaload_stats_free(&s0);
	dmaload_stats_free(&s1);
}

static int notify_sock = -1;

/* Start-up: READY=1 before the preloads are done; they show as loading. */
static void ready_first(void)
{
	struct dmaload_cache_entry e;
	struct dmaload *dl = lc_connect(&d, "watch");
	char buf[512] = "";
	bool ready = false, loading = false;
	uint64_t end = now_ms() + 5000;

	if (!dl)
		return;
	while (!ready && now_ms() < end) {
		struct timeval tv = { .tv_usec = 50000 };
		ssize_t n;

		setsockopt(notify_sock, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
		n = recv(notify_sock, buf, sizeof(buf) - 1, 0);
		if (n > 0) {
			buf[n] = '\0';
			ready = strstr(buf, "READY=1");
		}
	}
	CHECKF(ready, "no READY=1 within 5 s");
	/* Nobody reads it from here on: close it, so the daemon's later messages
	 * (STATUS=, FDSTORE=1) are refused at once instead of filling a queue that
	 * would block its sends (systemd reads all the time; a stand-in must too). */
	close(notify_sock);
	notify_sock = -1;
	/* The entry appears once a worker has globbed and opened the file (slow under
	 * sanitizers); 48 MiB at global_rate 16M then take about 3 s of reading, so
	 * when it first shows it is still loading. */
	end = now_ms() + 3000;
	while (!list_find(dl, fa, &e) && now_ms() < end)
		sleep_ms(10);
	loading = list_find(dl, fa, &e) && (e.flags & DL_ENTRY_LOADING);
	CHECKF(loading, "%s is not listed as loading soon after READY=1", fa);
	dmaload_close(dl);
}

static void startup_preloads(void)
{
	struct dmaload *dl = lc_connect(&d, "preloads");

	if (!dl)
		return;
	wait_pinned(dl, fb, SMALL, 20000);
	wait_pinned(dl, fone, SMALL, 20000);
	if (wait_pinned(dl, fa, BIG, 30000))
		load_cached(dl, fa, BIG, 1);
	load_cached(dl, fone, SMALL, 3);
	CHECKF(daemon_log_wait(&d, "matches no regular file", 0, 100), "no warning for the "
	       "pattern that matches nothing");
	dmaload_close(dl);
}

static void ctl_preload(void)
{
	struct dmaload *dl = lc_connect(&d, "ctl");
	char missing[PATH_MAX + 16];
	int st;

	if (!dl)
		return;
	cur = &d;
	st = ctl("preload", fc, NULL);
	CHECKF(st == 0 && strstr(out, "preloading"), "preload without --wait: exit %d, "
	       "out %s, err %s", st, out, err);
	/* The load goes on after dmaload-ctl has gone. */
	if (wait_pinned(dl, fc, BIG, 30000))
		load_cached(dl, fc, BIG, 4);
	snprintf(missing, sizeof(missing), "%s/missing.bin", fdir);
	st = ctl("preload", "--wait", fd_, missing, NULL);
	CHECKF(st == 1, "preload --wait with a missing file: exit %d, want 1", st);
	CHECKF(strstr(out, "preloaded") && strstr(err, "missing.bin"), "out %s, err %s",
	       out, err);
	wait_pinned(dl, fd_, SMALL, 100);
	load_cached(dl, fd_, SMALL, 5);
	/* Already cached: a hit, still exit 0. */
	st = ctl("preload", "--wait", fd_, NULL);
	CHECKF(st == 0 && strstr(out, "already in the cache"), "exit %d, out %s, err %s",
	       st, out, err);
	dmaload_close(dl);
}

static void sighup_adds(void)
{
	struct dmaload *dl = lc_connect(&d, "hup");
	char more[PATH_MAX * 4];

	if (!dl)
		return;
	snprintf(more, sizeof(more), "[cache]\ncache_limit = 1G\n[limits]\n"
		 "global_rate = 16M\n[preload]\npreload = %s/models/*.bin\npreload = %s\n",
		 fdir, fe);
	if (CHECK_OK(daemon_write_config_more(&d, NULL, more))) {
		kill(d.pid, SIGHUP);
		if (wait_pinned(dl, fe, SMALL, 20000))
			load_cached(dl, fe, SMALL, 6);
	}
	dmaload_close(dl);
}

/* A [preload] entry (the daemon's own detached load, 48 MiB at 16 MB/s) is listed in
 * root's STATUS while it loads, and root's EVICT of its path cancels it: it leaves
 * STATUS and never reaches the cache. */
static void preload_listed_evicted(void)
{
	struct dmaload *dl = lc_connect(&d, "hup-cancel");
	struct dmaload_cache_entry e;
	char more[PATH_MAX * 4];
	uint64_t end;
	int r = 0;

	if (!dl)
		return;
	snprintf(more, sizeof(more), "[cache]\ncache_limit = 1G\n[limits]\n"
		 "global_rate = 16M\n[preload]\npreload = %s/models/*.bin\npreload = %s\n"
		 "preload = %s\n", fdir, fe, fh);
	if (!CHECK_OK(daemon_write_config_more(&d, NULL, more)))
		goto out;
	kill(d.pid, SIGHUP);
	end = now_ms() + 5000;
	while ((r = lc_status_lists(dl, fh)) == 0 && now_ms() < end)
		sleep_ms(20);
	if (!CHECKF(r == 1, "%s not in root's STATUS while preloading (r=%d)", fh, r))
		goto out;
	r = dmaload_evict(dl, fh, NULL);
	CHECKF(r >= 1, "EVICT %s: %d", fh, r);
	end = now_ms() + 2000;
	while ((r = lc_status_lists(dl, fh)) == 1 && now_ms() < end)
		sleep_ms(20);
	CHECKF(r == 0, "%s still in STATUS after EVICT (r=%d)", fh, r);
	sleep_ms(100);
	CHECKF(!list_find(dl, fh, &e), "%s cached after its preload was cancelled", fh);
	CHECKF(daemon_log_wait(&d, "cancelled by EVICT", 0, 1000), "no cancel in the log");
out:
	dmaload_close(dl);
}

/* Drops every cached buffer and waits for the daemon to hold no memfd. */
static bool evict_all(struct test_daemon *td)
{
	struct dmaload *dl = lc_connect(td, "evict");
	uint64_t bytes, end = now_ms() + 5000;
	int fds = -1, maps = -1;

	if (!dl)
		return false;
	CHECKF(dmaload_evict(dl, NULL, &bytes) >= 1, "evict all");
	dmaload_close(dl);
	while (now_ms() < end && (proc_memfd_count(td->pid, &fds, &maps) < 0 || fds || maps))
		sleep_ms(20);
	return CHECKF(fds == 0 && maps == 0, "after EVICT all: %d memfd fds, %d maps", fds,
		      maps);
}

/* The idle daemon's fds are the baseline (the start-up preloads ran before any could
 * be taken); a run-time preload and its EVICT must come back to it. */
static void no_leak(void)
{
	if (!evict_all(&d))
		return;
	daemon_baseline(&d);
	cur = &d;
	CHECKF(ctl("preload", "--wait", fb, fd_, NULL) == 0, "preload --wait: %s", err);
	if (evict_all(&d))
		CHECK_SETTLED_START(&d, 5000);
}

/* A detached preload still reading when SIGTERM comes is cancelled; the daemon
 * stops cleanly (the next case checks exit 0) well before the read could end. */
static void stop_during_preload(void)
{
	struct dmaload_event ev = { .fd = -1 };
	struct dmaload_opts o;
	struct dmaload *dl = lc_connect(&d, "detach");
	uint64_t id, t0;
	int r, st;

	if (!dl)
		return;
	/* DL_LOAD_DETACH without DL_LOAD_PIN is refused */
	dmaload_opts_init(&o);
	o.detach = true;
	r = dmaload_load_path(dl, fb, &o, &id);
	if (CHECK_OK(r) && CHECK_OK(dmaload_wait(dl, id, &ev, NULL, NULL)))
		CHECKF(ev.type == DMALOAD_EV_ERROR && ev.err == EINVAL, "detach without pin: "
		       "%s", lc_event_str(&ev));
	dmaload_close(dl);
	cur = &d;
	st = ctl("preload", fg, NULL);	/* 48 MiB at 16 MB/s: about 3 s */
	CHECKF(st == 0, "preload: exit %d, err %s", st, err);
	sleep_ms(200);
	t0 = now_ms();
	st = daemon_stop(&d);
	CHECKF(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0, "wait status 0x%x", st);
	CHECKF(now_ms() - t0 < 2500, "the stop took %llu ms: the preload was not cancelled",
	       (unsigned long long)(now_ms() - t0));
	CHECKF(daemon_log_wait(&d, "the daemon is stopping", 0, 100), "the preload was not "
	       "cancelled with ESHUTDOWN");
}

static void cache_off(void)
{
	struct dmaload_cache_list l;
	struct dmaload *dl = lc_connect(&d2, "off");
	int st;

	if (!dl)
		return;
	CHECKF(daemon_log_wait(&d2, "the cache is off", 0, 5000), "no warning");
	if (CHECK_OK(dmaload_list(dl, &l))) {
		CHECK_U64(l.n_entries, ==, 0);
		dmaload_list_free(&l);
	}
	cur = &d2;
	st = ctl("preload", fb, NULL);
	CHECKF(st == 1 && strstr(err, "cache"), "exit %d, err %s", st, err);
	dmaload_close(dl);
}

int main(void)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	char more[PATH_MAX * 4], why[512];
	int r;

	check_init(SUITE);
	check_begin("set-up: files and a daemon that preloads them");
	if (!CHECKF(tdir_create(fdir, sizeof(fdir), "preload-files") == 0, "tdir: %m"))
		return check_finish();
	snprintf(more, sizeof(more), "%s/models", fdir);
	mkdir(more, 0755);
	snprintf(more, sizeof(more), "%s/models/dir.bin", fdir);	/* not a file */
	mkdir(more, 0755);
	snprintf(fa, sizeof(fa), "%s/models/a.bin", fdir);
	snprintf(fb, sizeof(fb), "%s/models/b.bin", fdir);
	snprintf(fone, sizeof(fone), "%s/one", fdir);
	snprintf(fc, sizeof(fc), "%s/c", fdir);
	snprintf(fd_, sizeof(fd_), "%s/d", fdir);
	snprintf(fe, sizeof(fe), "%s/e", fdir);
	make_cold(fa, BIG, 1);
	make_cold(fb, SMALL, 2);
	make_cold(fone, SMALL, 3);
	make_cold(fc, BIG, 4);
	make_cold(fd_, SMALL, 5);
	make_cold(fe, SMALL, 6);
	snprintf(fg, sizeof(fg), "%s/g", fdir);
	make_cold(fg, BIG, 7);
	snprintf(fh, sizeof(fh), "%s/h", fdir);
	make_cold(fh, BIG, 8);
	notify_sock = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%.90s/notify", fdir);
	CHECKF(notify_sock >= 0 && bind(notify_sock, (struct sockaddr *)&sa, sizeof(sa)) == 0,
	       "notify socket: %m");
	snprintf(more, sizeof(more), "[cache]\ncache_limit = 1G\n[limits]\n"
		 "global_rate = 16M\n[preload]\npreload = %s/models/*.bin\n"
		 "preload = %s\npreload = %s/nothing-*.bin\n", fdir, fone, fdir);
	setenv("NOTIFY_SOCKET", sa.sun_path, 1);
	r = daemon_start_more(&d, "preload", "hugetlb = off\n", more, why, sizeof(why));
	unsetenv("NOTIFY_SOCKET");
	CHECKF(r == 0, "%s", why);
	if (!check_end())
		return check_finish();

	CASE(ready_first(), "READY=1 comes while the preloads are still loading (LIST)");
	CASE(startup_preloads(), "[preload] glob and path: loaded, pinned, served from the "
	     "cache with no read; a pattern matching nothing is a warning");
	CASE(ctl_preload(), "dmaload-ctl preload: without --wait returns at ACCEPTED and "
	     "the load goes on; --wait: exit 1 if a file failed; a cached file is a hit");
	CASE(sighup_adds(), "SIGHUP with a new [preload] entry preloads it");
	CASE(preload_listed_evicted(), "a [preload] entry still loading is in root's STATUS; "
	     "root's EVICT of its path cancels it");
	CASE(no_leak(), "EVICT all, then a run-time preload and EVICT: no fd or memfd left");
	CASE(stop_during_preload(), "detach needs pin; SIGTERM during a detached preload: "
	     "cancelled, exit 0 at once");
	daemon_cleanup(&d);

	check_begin("set-up: a daemon with the cache off and a [preload] entry");
	snprintf(more, sizeof(more), "[preload]\npreload = %s\n", fb);
	r = daemon_start_more(&d2, "nocache", NULL, more, why, sizeof(why));
	CHECKF(r == 0, "%s", why);
	if (check_end()) {
		CASE(cache_off(), "cache off: [preload] is a warning, dmaload-ctl preload an "
		     "error");
		daemon_stop_case(&d2, "nocache: daemon exits 0 on SIGTERM");
	}
	if (notify_sock >= 0)
		close(notify_sock);
	if (!getenv("DMALOAD_TEST_KEEP"))
		tdir_remove(fdir);
	return check_finish();
}
