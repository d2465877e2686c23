/*
 * test-small.c: the small-file way (issue 15; job.c, JOB_SMALL_MAX = 1 MiB): a plain
 * auto load of a small file is read, sealed and answered in its one open task.
 *
 * Without the cache: files of 1 byte, 64 KiB, 1 MiB (the largest small one) and
 * 1 MiB + 1 (the smallest that is not) and ranges of a big file: every byte right,
 * sealed memfds of the exact size; the small ones say buffered (small file), the
 * other one does not; a load that names a method is read as it asked. 200 loads of
 * 20 small files from 4 clients at once.
 * With the cache: a second load of a small file is a hit (nothing read); the file
 * rewritten in place (same inode, so the hint says "cached") is read again with its
 * new bytes while the old buffer keeps the old ones; 8 clients loading one cold small
 * file at once all get the right bytes and the file is read at most 8 times; a file
 * that root loaded and the cache keeps is still refused to a client (nobody) that may
 * not read it. At the end the daemons' fds and memfds are back where they started.
 */
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "../lib/check.h"
#include "../lib/harness.h"
#include "../lib/loads.h"

#define SUITE "small"
#define SMALL_MAX (1024 * 1024)
#define NOBODY 65534

static struct test_daemon d;

/* A file of @size bytes of pattern @seed at @dir/@name into @out, dropped from the
 * page cache. */
static bool make_cold(const char *dir, const char *name, uint64_t size, uint32_t seed,
		      mode_t mode, char *out, size_t len)
{
	int r;

	snprintf(out, len, "%s/%s", dir, name);
	r = file_make(out, size, seed, mode);
	if (!CHECKF(r == 0, "file_make(%s): %s", out, strerror(-r)))
		return false;
	r = file_uncache(out);
	return CHECKF(r == 0, "dropping %s from the page cache: %s", out, strerror(-r));
}

static bool get_stats(struct dmaload *dl, struct dmaload_stats *st)
{
	int r = dmaload_stats(dl, st);

	return CHECKF(r == 0, "dmaload_stats: %s", strerror(-r));
}

/* ---- without the cache -------------------------------------------------------- */

static void sizes(void)
{
	static const uint64_t size[] = { 1, 64 * 1024, SMALL_MAX, SMALL_MAX + 1 };
	struct dmaload *dl = lc_connect(&d, "sizes");
	struct dmaload_opts o;
	char path[PATH_MAX], name[32];

	dmaload_opts_init(&o);
	o.exact_size = true;
	for (unsigned i = 0; dl && i < 4 && !check_failed(); i++) {
		struct dmaload_event ev;

		snprintf(name, sizeof(name), "size-%u", i);
		if (!make_cold(d.dir, name, size[i], 60 + i, 0644, path, sizeof(path)) ||
		    !lc_load_verify(dl, path, -1, &o, size[i], 60 + i, DL_METHOD_AUTO, &ev))
			break;
		CHECKF(ev.done_flags & DL_DONE_SEALED, "%llu bytes: not sealed",
		       (unsigned long long)size[i]);
		if (size[i] <= SMALL_MAX)
			CHECKF(ev.method == DL_METHOD_BUFFERED && ev.reason == DL_WHY_SMALL,
			       "%llu bytes: DONE says %s (%s), expected buffered (small file)",
			       (unsigned long long)size[i], dl_method_name(ev.method),
			       dl_reason_name(ev.reason));
		else
			CHECKF(ev.reason != DL_WHY_SMALL, "%llu bytes: read the small way",
			       (unsigned long long)size[i]);
	}
	dmaload_close(dl);
}

/* Small ranges of a 4 MiB file (which itself is not small), and a named method. */
static void ranges(void)
{
	static const uint64_t off[] = { 0, 1, 4095, 3 * 1024 * 1024 + 7 },
			      len[] = { 4096, 65537, SMALL_MAX, 1000 };
	struct dmaload *dl = lc_connect(&d, "ranges");
	struct dmaload_opts o;
	struct dmaload_event ev;
	char path[PATH_MAX];

	if (!dl || !make_cold(d.dir, "big", 4 * 1024 * 1024, 70, 0644, path, sizeof(path)))
		goto out;
	dmaload_opts_init(&o);
	for (unsigned i = 0; i < 4 && !check_failed(); i++) {
		o.offset = off[i];
		o.length = len[i];
		if (lc_load_verify(dl, path, -1, &o, len[i], 70, DL_METHOD_AUTO, &ev))
			CHECKF(ev.reason == DL_WHY_SMALL, "range %llu+%llu: reason %s",
			       (unsigned long long)off[i], (unsigned long long)len[i],
			       dl_reason_name(ev.reason));
	}
	/* asked for buffered: read as asked, not the small way */
	o.offset = 0;
	o.length = 65536;
	o.method = DL_METHOD_BUFFERED;
	if (lc_load_verify(dl, path, -1, &o, 65536, 70, DL_METHOD_BUFFERED, &ev))
		CHECKF(ev.reason != DL_WHY_SMALL, "method buffered asked: reason small file");
out:
	dmaload_close(dl);
}

struct many {
	const char *dir;
	unsigned k;
	char err[300];
};

static void *many_thread(void *arg)
{
	struct many *m = arg;
	struct dmaload *dl = NULL;
	char path[PATH_MAX], why[256];

	if (dmaload_connect(&dl, d.sock, "many") < 0) {
		snprintf(m->err, sizeof(m->err), "connect failed");
		return NULL;
	}
	for (unsigned i = 0; i < 50 && !m->err[0]; i++) {
		unsigned f = (i * 7 + m->k) % 20;
		struct dmaload_event ev;
		int r;

		snprintf(path, sizeof(path), "%s/many-%02u", m->dir, f);
		r = dmaload_load_path_sync(dl, path, NULL, &ev);
		if (r < 0) {
			snprintf(m->err, sizeof(m->err), "%.200s: %.90s", path, lc_event_str(&ev));
			break;
		}
		if (!buf_verify(ev.fd, 10000 + f * 3000, 80 + f, 0, why, sizeof(why)))
			snprintf(m->err, sizeof(m->err), "%.200s: %.90s", path, why);
		close(ev.fd);
	}
	dmaload_close(dl);
	return NULL;
}

/* 4 clients, 50 loads each of 20 files of different small sizes, at once. */
static void many(struct test_daemon *td)
{
	struct many m[4];
	pthread_t t[4];
	char path[PATH_MAX], name[32];

	for (unsigned f = 0; f < 20; f++) {
		snprintf(name, sizeof(name), "many-%02u", f);
		if (!make_cold(td->dir, name, 10000 + f * 3000, 80 + f, 0644, path,
			       sizeof(path)))
			return;
	}
	for (unsigned i = 0; i < 4; i++) {
		m[i] = (struct many){ .dir = td->dir, .k = i };
		CHECK(pthread_create(&t[i], NULL, many_thread, &m[i]) == 0);
	}
	for (unsigned i = 0; i < 4; i++) {
		pthread_join(t[i], NULL);
		CHECKF(!m[i].err[0], "client %u: %s", i, m[i].err);
	}
}

/* ---- with the cache ------------------------------------------------------------- */

static void hit_and_rewrite(void)
{
	struct dmaload *dl = lc_connect(&d, "hits");
	struct dmaload_stats st0, st1;
	struct dmaload_event old, ev;
	struct timespec ts[2];
	char path[PATH_MAX];

	old.fd = -1;
	if (!dl || !make_cold(d.dir, "hit", 100000, 90, 0644, path, sizeof(path)) ||
	    !lc_load_verify(dl, path, -1, NULL, 100000, 90, DL_METHOD_AUTO, &ev) ||
	    !get_stats(dl, &st0))
		goto out;
	if (!CHECK_OK(dmaload_load_path_sync(dl, path, NULL, &old)))
		goto out;
	CHECKF(old.done_flags & DL_DONE_CACHED, "second load not from the cache (flags "
	       "0x%x)", old.done_flags);
	CHECK_BUF(old.fd, 100000, 90, 0);
	if (!get_stats(dl, &st1))
		goto out;
	CHECK_U64(st1.bytes_read - st0.bytes_read, ==, 0);
	dmaload_stats_free(&st0);
	dmaload_stats_free(&st1);
	/* rewritten in place: the same inode, another version */
	if (!make_cold(d.dir, "hit", 100000, 91, 0644, path, sizeof(path)))
		goto out;
	clock_gettime(CLOCK_REALTIME, &ts[0]);
	ts[0].tv_sec += 10;
	ts[1] = ts[0];
	if (!CHECKF(utimensat(AT_FDCWD, path, ts, 0) == 0, "utimensat: %s", strerror(errno)) ||
	    !get_stats(dl, &st0))
		goto out;
	if (CHECK_OK(dmaload_load_path_sync(dl, path, NULL, &ev))) {
		CHECKF(!(ev.done_flags & (DL_DONE_CACHED | DL_DONE_JOINED)),
		       "the rewritten file was served shared (flags 0x%x)", ev.done_flags);
		CHECK_BUF(ev.fd, 100000, 91, 0);
		close(ev.fd);
	}
	CHECK_BUF(old.fd, 100000, 90, 0);
	if (get_stats(dl, &st1))
		CHECK_U64(st1.bytes_read - st0.bytes_read, ==, 100000);
	dmaload_stats_free(&st0);
	dmaload_stats_free(&st1);
	if (CHECK_OK(dmaload_load_path_sync(dl, path, NULL, &ev))) {
		CHECKF(ev.done_flags & DL_DONE_CACHED, "new version not cached");
		CHECK_BUF(ev.fd, 100000, 91, 0);
		close(ev.fd);
	}
out:
	if (old.fd >= 0)
		close(old.fd);
	dmaload_close(dl);
}

/* 8 clients, 4 loads in flight each, of one cold small file at once. */
static void same_file(void)
{
	struct dmaload *dl[8] = { 0 };
	struct dmaload_stats st0, st1;
	char path[PATH_MAX];
	uint64_t ids[8][4];

	if (!make_cold(d.dir, "same", 200000, 95, 0644, path, sizeof(path)))
		return;
	for (unsigned i = 0; i < 8; i++)
		if (!(dl[i] = lc_connect(&d, "same")))
			goto out;
	if (!get_stats(dl[0], &st0))
		goto out;
	for (unsigned i = 0; i < 8; i++)
		for (unsigned k = 0; k < 4; k++)
			if (!CHECK_OK(lc_start(dl[i], path, -1, NULL, &ids[i][k])))
				goto out;
	for (unsigned i = 0; i < 8; i++)
		for (unsigned n = 0; n < 4; ) {
			struct dmaload_event ev;
			int r = dmaload_next_event(dl[i], &ev, 10000);

			if (!CHECKF(r > 0, "client %u: no event", i))
				goto out;
			if (ev.type == DMALOAD_EV_ACCEPTED || ev.type == DMALOAD_EV_PROGRESS)
				continue;
			if (!lc_check_done(&ev, 200000, 95, 0, DL_METHOD_AUTO))
				goto out;
			n++;
		}
	if (get_stats(dl[0], &st1))
		CHECKF(st1.bytes_read - st0.bytes_read <= 8 * 200000ull &&
		       st1.bytes_read - st0.bytes_read >= 200000, "%llu bytes read for 32 "
		       "loads of 200000", (unsigned long long)(st1.bytes_read -
							       st0.bytes_read));
	dmaload_stats_free(&st0);
	dmaload_stats_free(&st1);
out:
	for (unsigned i = 0; i < 8; i++)
		dmaload_close(dl[i]);
}

struct denied {
	const char *path;
};

static int denied_child(void *arg, char *msg, size_t len)
{
	struct denied *a = arg;
	struct dmaload *dl = NULL;
	struct dmaload_event ev;
	int r;

	dl = lc_connect_as(NOBODY, 0, d.sock, "nobody", msg, len);
	if (!dl)
		return -1;
	r = dmaload_load_path_sync(dl, a->path, NULL, &ev);
	if (r >= 0) {
		snprintf(msg, len, "nobody got root's 0600 file (flags 0x%x)", ev.done_flags);
		close(ev.fd);
		r = -1;
	} else if (ev.type != DMALOAD_EV_ERROR || ev.err != EACCES) {
		snprintf(msg, len, "expected EACCES, got %s", lc_event_str(&ev));
		r = -1;
	} else {
		r = 0;
	}
	dmaload_close(dl);
	return r;
}

/* A small file only root may read, in the cache: nobody asking for it by path opens
 * it as itself first, and is refused. */
static void cached_but_denied(void)
{
	struct dmaload *dl = lc_connect(&d, "root");
	struct dmaload_event ev;
	struct denied a;
	char path[PATH_MAX], msg[512] = "";

	if (geteuid() != 0) {
		check_skip("needs root (nobody as the other client)");
		goto out;
	}
	if (!dl || !make_cold(d.dir, "secret", 5000, 99, 0600, path, sizeof(path)) ||
	    !lc_load_verify(dl, path, -1, NULL, 5000, 99, DL_METHOD_AUTO, NULL) ||
	    !CHECK_OK(dmaload_load_path_sync(dl, path, NULL, &ev)))
		goto out;
	CHECKF(ev.done_flags & DL_DONE_CACHED, "root's second load not a hit");
	close(ev.fd);
	/* the test dir must be searchable by nobody */
	chmod(d.dir, 0755);
	a.path = path;
	CHECKF(child_run(denied_child, &a, msg, sizeof(msg), 10000) == 0, "%s", msg);
out:
	dmaload_close(dl);
}

static void evict_all(struct test_daemon *td)
{
	struct dmaload *dl = lc_connect(td, "evict");
	uint64_t bytes;

	if (!dl)
		return;
	dmaload_evict(dl, NULL, &bytes);
	dmaload_close(dl);
	CHECK_SETTLED_START(td, 5000);
}

int main(void)
{
	check_init(SUITE);
	if (!daemon_start_case(&d, "nocache", "", NULL))
		return check_finish();
	check_end();
	daemon_baseline(&d);
	CASE(sizes(), "1 B, 64 KiB, 1 MiB: buffered (small file), sealed, right bytes; "
	     "1 MiB + 1 the usual way");
	CASE(ranges(), "small ranges of a 4 MiB file the small way; method buffered as asked");
	CASE(many(&d), "4 clients x 50 loads of 20 small files at once: right bytes");
	CASE(({ CHECK_SETTLED_START(&d, 5000); }), "fds and memfds back to the start");
	daemon_stop_case(&d, "nocache: daemon exits 0 on SIGTERM");

	daemon_cleanup(&d);
	if (!daemon_start_case(&d, "cache", "[cache]\ncache_limit = 1G\n", NULL))
		return check_finish();
	check_end();
	daemon_baseline(&d);
	CASE(hit_and_rewrite(), "a hit reads nothing; rewritten in place: new bytes read, "
	     "old buffer keeps the old ones, then the new one is the hit");
	CASE(same_file(), "8 clients x 4 loads of one cold small file at once: right bytes");
	CASE(cached_but_denied(), "a cached 0600 file of root's: nobody gets EACCES by path");
	CASE(evict_all(&d), "EVICT all: fds and memfds back to the start");
	daemon_stop_case(&d, "cache: daemon exits 0 on SIGTERM");
	return check_finish();
}
