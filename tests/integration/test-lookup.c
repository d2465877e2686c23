/*
 * test-lookup.c: likely cache hits whose path is walked on the event loop (issue 15;
 * daemon/lookup.c). The walk there must answer exactly as a worker's would: each
 * case checks the reply (bytes, flags, errno) and, through the daemon's debug log
 * ("likely in the cache: its path checked on the loop", with the load's path), which
 * way the path went.
 *
 * Cases: a second load of a small file, and of a 4 MiB one, is a hit checked on the
 * loop; nobody gets a
 * cached file of root's that it may read, on the loop, and EACCES for a cached 0600
 * one, one in a 0700 directory and one chmod 0600 after it was cached; a cached file
 * named through /proc/self/root is still refused as a path through procfs; a
 * symbolic link or ".." in the path goes to a worker and still hits; a file
 * rewritten in place is read again, not served old; a file seen through a new mount
 * (a bind mount) no worker's walk went through yet is a hit through a worker, and the
 * next one on the loop; with [cache] loop_hits = off (SIGHUP) a hit goes to a
 * worker. At the end the daemon's fds and memfds are where they started.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "../lib/check.h"
#include "../lib/harness.h"
#include "../lib/loads.h"

#define SUITE "lookup"
#define NOBODY 65534
#define ON_LOOP "likely in the cache: its path checked on the loop"

static struct test_daemon d;

/* Whether the log, past @skip, says @path's load was checked on the loop. */
static bool on_loop(const char *path, long skip)
{
	char needle[PATH_MAX + 100];

	snprintf(needle, sizeof(needle), "%s: " ON_LOOP, path);
	return daemon_log_wait(&d, needle, skip, 300);
}

/* Loads @path, which must be a hit of @len bytes of pattern @seed; then whether it
 * went by the loop must be @loop. */
static void hit(struct dmaload *dl, const char *path, uint64_t len, uint32_t seed,
		bool loop)
{
	long skip = daemon_log_size(&d);
	struct dmaload_event ev;

	if (!CHECK_OK(dmaload_load_path_sync(dl, path, NULL, &ev)))
		return;
	CHECKF(ev.done_flags & DL_DONE_CACHED, "%s: not a hit (flags 0x%x)", path,
	       ev.done_flags);
	CHECK_BUF(ev.fd, len, seed, 0);
	close(ev.fd);
	CHECKF(on_loop(path, skip) == loop, "%s: %s on the loop", path,
	       loop ? "not checked" : "checked");
}

/* A file of @size bytes of pattern @seed, loaded once by @dl (a miss, read). */
static bool cached(struct dmaload *dl, const char *path, uint64_t size, uint32_t seed,
		   mode_t mode)
{
	int r = file_make(path, size, seed, mode);

	if (!CHECKF(r == 0, "file_make(%s): %s", path, strerror(-r)))
		return false;
	return lc_load_verify(dl, path, -1, NULL, size, seed, DL_METHOD_AUTO, NULL);
}

static void second_load(void)
{
	struct dmaload *dl = lc_connect(&d, "root");
	char path[PATH_MAX], big[PATH_MAX];

	snprintf(path, sizeof(path), "%s/a", d.dir);
	snprintf(big, sizeof(big), "%s/big", d.dir);
	if (dl && cached(dl, path, 65536, 1, 0644))
		hit(dl, path, 65536, 1, true);
	/* not a small file: read the usual way, then a hit checked on the loop too */
	if (dl && cached(dl, big, 4u << 20, 11, 0644))
		hit(dl, big, 4u << 20, 11, true);
	dmaload_close(dl);
}

/* ---- as another user -------------------------------------------------------------- */

struct as_nobody {
	const char *path;
	uint32_t seed;
	int want_err;		/* 0: a hit checked on the loop, else this ERROR */
};

static int nobody_child(void *arg, char *msg, size_t len)
{
	struct as_nobody *a = arg;
	struct dmaload *dl = NULL;
	struct dmaload_event ev;
	char why[256];
	long skip = daemon_log_size(&d);
	int r;

	dl = lc_connect_as(NOBODY, 0, d.sock, "nobody", msg, len);
	if (!dl)
		return -1;
	r = dmaload_load_path_sync(dl, a->path, NULL, &ev);
	if (a->want_err) {
		if (r >= 0) {
			snprintf(msg, len, "nobody got %s (flags 0x%x)", a->path, ev.done_flags);
			close(ev.fd);
			r = -1;
		} else if (ev.type != DMALOAD_EV_ERROR || ev.err != a->want_err) {
			snprintf(msg, len, "%s: expected errno %d, got %s", a->path,
				 a->want_err, lc_event_str(&ev));
			r = -1;
		} else {
			r = 0;
		}
	} else if (r < 0) {
		snprintf(msg, len, "%s: %s", a->path, lc_event_str(&ev));
	} else if (!(ev.done_flags & DL_DONE_CACHED)) {
		snprintf(msg, len, "%s: not a hit (flags 0x%x)", a->path, ev.done_flags);
		close(ev.fd);
		r = -1;
	} else if (!buf_verify(ev.fd, 65536, a->seed, 0, why, sizeof(why))) {
		snprintf(msg, len, "%s: %s", a->path, why);
		close(ev.fd);
		r = -1;
	} else {
		close(ev.fd);
		r = on_loop(a->path, skip) ? 0 : -1;
		if (r < 0)
			snprintf(msg, len, "%s: not checked on the loop", a->path);
	}
	dmaload_close(dl);
	return r;
}

static bool as_nobody(const char *path, uint32_t seed, int want_err)
{
	struct as_nobody a = { .path = path, .seed = seed, .want_err = want_err };
	char msg[600] = "";

	return CHECKF(child_run(nobody_child, &a, msg, sizeof(msg), 10000) == 0, "%s", msg);
}

static void other_user(void)
{
	struct dmaload *dl = lc_connect(&d, "root");
	char dir[PATH_MAX], path[PATH_MAX], hidden[PATH_MAX], secret[PATH_MAX];

	if (geteuid() != 0) {
		check_skip("needs root (nobody as the other client)");
		goto out;
	}
	chmod(d.dir, 0755);
	snprintf(path, sizeof(path), "%s/shared", d.dir);
	snprintf(dir, sizeof(dir), "%s/private", d.dir);
	snprintf(hidden, sizeof(hidden), "%s/private/f", d.dir);
	snprintf(secret, sizeof(secret), "%s/secret", d.dir);
	if (!dl || !CHECKF(mkdir(dir, 0700) == 0, "mkdir: %s", strerror(errno)) ||
	    !cached(dl, path, 65536, 2, 0644) || !cached(dl, hidden, 65536, 3, 0644) ||
	    !cached(dl, secret, 65536, 4, 0600))
		goto out;
	hit(dl, path, 65536, 2, true);
	hit(dl, hidden, 65536, 3, true);
	hit(dl, secret, 65536, 4, true);
	if (!as_nobody(path, 2, 0))
		goto out;
	/* the very version root has in the cache, which nobody may not read */
	as_nobody(secret, 4, EACCES);
	/* no search permission on the directory: the walk as nobody stops there */
	as_nobody(hidden, 3, EACCES);
	/* the same inode, its mode changed after it was cached */
	if (CHECKF(chmod(path, 0600) == 0, "chmod: %s", strerror(errno)))
		as_nobody(path, 2, EACCES);
out:
	dmaload_close(dl);
}

/* ---- what the loop leaves to a worker --------------------------------------------- */

static void procfs(void)
{
	struct dmaload *dl = lc_connect(&d, "root");
	struct dmaload_event ev;
	char path[PATH_MAX], via[PATH_MAX + 32];
	const int eacces = EACCES;

	snprintf(path, sizeof(path), "%s/p", d.dir);
	snprintf(via, sizeof(via), "/proc/self/root%s", path);
	if (dl && cached(dl, path, 65536, 4, 0644) &&
	    lc_load_error(dl, via, -1, NULL, &eacces, 1, &ev))
		CHECKF(strstr(ev.message, "procfs"), "message: %s", ev.message);
	dmaload_close(dl);
}

static void links_and_dots(void)
{
	struct dmaload *dl = lc_connect(&d, "root");
	char path[PATH_MAX], link[PATH_MAX], dots[PATH_MAX + 32];

	char dir[PATH_MAX];

	/* the link has the file's name, so the loop's name hint does send it there */
	snprintf(path, sizeof(path), "%s/l", d.dir);
	snprintf(dir, sizeof(dir), "%s/links", d.dir);
	snprintf(link, sizeof(link), "%s/links/l", d.dir);
	snprintf(dots, sizeof(dots), "%s/../%s/l", d.dir, strrchr(d.dir, '/') + 1);
	if (!dl || !cached(dl, path, 65536, 5, 0644) ||
	    !CHECKF(mkdir(dir, 0755) == 0, "mkdir: %s", strerror(errno)) ||
	    !CHECKF(symlink("../l", link) == 0, "symlink: %s", strerror(errno)))
		goto out;
	hit(dl, link, 65536, 5, false);
	hit(dl, dots, 65536, 5, false);
	hit(dl, path, 65536, 5, true);
out:
	dmaload_close(dl);
}

static void rewritten(void)
{
	struct dmaload *dl = lc_connect(&d, "root");
	struct dmaload_event ev;
	struct timespec ts[2];
	char path[PATH_MAX];
	int r;

	snprintf(path, sizeof(path), "%s/w", d.dir);
	if (!dl || !cached(dl, path, 65536, 6, 0644))
		goto out;
	hit(dl, path, 65536, 6, true);
	/* the same inode, new bytes and a new mtime */
	r = file_make(path, 65536, 7, 0644);
	clock_gettime(CLOCK_REALTIME, &ts[0]);
	ts[0].tv_sec += 10;
	ts[1] = ts[0];
	if (!CHECKF(r == 0, "rewrite: %s", strerror(-r)) ||
	    !CHECKF(utimensat(AT_FDCWD, path, ts, 0) == 0, "utimensat: %s", strerror(errno)) ||
	    !CHECK_OK(dmaload_load_path_sync(dl, path, NULL, &ev)))
		goto out;
	CHECKF(!(ev.done_flags & DL_DONE_CACHED), "the rewritten file was served from the "
	       "cache");
	CHECK_BUF(ev.fd, 65536, 7, 0);
	close(ev.fd);
	hit(dl, path, 65536, 7, true);
out:
	dmaload_close(dl);
}

/* A mount the daemon has not walked through: a hit by path goes to a worker, whose
 * walk vouches for the mount; the next hit is checked on the loop. A bind mount of a
 * tmpfs is a new mount (its own id) of the same files. */
static void new_mount(void)
{
	struct dmaload *dl = lc_connect(&d, "root");
	char mnt[PATH_MAX], bind[PATH_MAX], path[PATH_MAX], other[PATH_MAX];
	int mounted = 0, r;

	if (geteuid() != 0) {
		check_skip("needs root (mounts a tmpfs)");
		goto out;
	}
	snprintf(mnt, sizeof(mnt), "%s/mnt", d.dir);
	snprintf(bind, sizeof(bind), "%s/bind", d.dir);
	snprintf(path, sizeof(path), "%s/mnt/m", d.dir);
	snprintf(other, sizeof(other), "%s/bind/m", d.dir);
	if (!dl || !CHECKF(mkdir(mnt, 0755) == 0 && mkdir(bind, 0755) == 0, "mkdir: %s",
			   strerror(errno)))
		goto out;
	if (mount("dl-lookup", mnt, "tmpfs", 0, "size=1m") < 0) {
		check_skip("cannot mount a tmpfs here");
		goto out;
	}
	mounted = 1;
	r = file_make(path, 65536, 8, 0644);
	if (!CHECKF(r == 0, "file_make: %s", strerror(-r)) ||
	    !lc_load_verify(dl, path, -1, NULL, 65536, 8, DL_METHOD_AUTO, NULL))
		goto out;
	hit(dl, path, 65536, 8, true);
	if (!CHECKF(mount(mnt, bind, NULL, MS_BIND, NULL) == 0, "bind mount: %s",
		    strerror(errno)))
		goto out;
	mounted = 2;
	hit(dl, other, 65536, 8, false);
	hit(dl, other, 65536, 8, true);
out:
	dmaload_close(dl);
	/* the cache's buffers are memfds, not the files: the mounts are not busy */
	if (mounted > 1)
		CHECKF(umount2(bind, MNT_DETACH) == 0, "umount: %s", strerror(errno));
	if (mounted)
		CHECKF(umount2(mnt, MNT_DETACH) == 0, "umount: %s", strerror(errno));
}

/* [cache] loop_hits = off, by SIGHUP: a hit goes to a worker; auto again: the loop. */
static void switched_off(void)
{
	struct dmaload *dl = lc_connect(&d, "root");
	char path[PATH_MAX];

	snprintf(path, sizeof(path), "%s/o", d.dir);
	if (!dl || !cached(dl, path, 65536, 9, 0644))
		goto out;
	hit(dl, path, 65536, 9, true);
	if (!daemon_reload(&d, NULL, "[cache]\ncache_limit = 1G\nloop_hits = off\n",
			   "reload: [cache] loop_hits"))
		goto out;
	hit(dl, path, 65536, 9, false);
	if (daemon_reload(&d, NULL, "[cache]\ncache_limit = 1G\n", "reload: [cache] loop_hits"))
		hit(dl, path, 65536, 9, true);
out:
	dmaload_close(dl);
}

static void evict_all(void)
{
	struct dmaload *dl = lc_connect(&d, "evict");
	uint64_t bytes;

	if (!dl)
		return;
	dmaload_evict(dl, NULL, &bytes);
	dmaload_close(dl);
	CHECK_SETTLED_START(&d, 5000);
}

int main(void)
{
	check_init(SUITE);
	if (!daemon_start_case(&d, "lookup", "[cache]\ncache_limit = 1G\n", NULL))
		return check_finish();
	check_end();
	daemon_baseline(&d);
	CASE(second_load(), "a second load of a 64 KiB and of a 4 MiB file: a hit, its "
	     "path checked on the loop");
	CASE(other_user(), "nobody: a cached 0644 file of root's is a hit on the loop; "
	     "EACCES for 0600, in a 0700 directory, after chmod 0600");
	CASE(procfs(), "a cached file named through /proc/self/root: EACCES, procfs");
	CASE(links_and_dots(), "a symbolic link or \"..\" in the path: a hit through a "
	     "worker");
	CASE(rewritten(), "rewritten in place: read again with its new bytes, then a hit");
	CASE(new_mount(), "a file through a new bind mount: the first hit through a worker, "
	     "the next on the loop");
	CASE(switched_off(), "SIGHUP to loop_hits = off: a hit through a worker; back to "
	     "auto: on the loop");
	CASE(evict_all(), "EVICT all: fds and memfds back to the start");
	daemon_stop_case(&d, "daemon exits 0 on SIGTERM");
	return check_finish();
}
