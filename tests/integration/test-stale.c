/*
 * test-stale.c: a file written while it is read is never handed out, nor kept.
 *
 * A multi-chunk load runs slowly (its LOAD's rate limit) against a daemon with its
 * cache on. Once PROGRESS shows it reading, the test rewrites part of the file in
 * place (pwrite of other bytes, same size). The load must end with ERROR ESTALE and a
 * message, a second client that joined it must get the same error, the cache must
 * hold no entry of the file, and a load afterwards must get the new bytes, checked
 * byte for byte. Then the same with a truncate and a rewrite to the same size during
 * the load: ESTALE too, whether a read found the file short or the statx after the
 * read saw the new times, and never a DONE. And a file truncated during the load and
 * left short: a read finds its end first, and that is ESTALE as well (one errno for
 * "the file changed while it was read"), then a load gets what is left.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include "../lib/check.h"
#include "../lib/harness.h"
#include "../lib/loads.h"

#define SUITE "stale"
#define SIZE (32 * MiB)
#define RATE (8 * MiB)		/* about 4 s for the whole file */

static struct test_daemon d;
static char file[PATH_MAX];

/* Waits for a PROGRESS of @id with some bytes done. */
static bool wait_reading(struct dmaload *dl, uint64_t id)
{
	struct dmaload_event ev;

	for (int i = 0; i < 200; i++) {
		int r = dmaload_next_event(dl, &ev, 100);

		if (r == -ETIMEDOUT)
			continue;
		if (r < 0 || ev.id != id)
			return CHECKF(false, "waiting for PROGRESS: %d %s", r, lc_event_str(&ev));
		if (ev.type == DMALOAD_EV_PROGRESS && ev.done > 0)
			return true;
		if (ev.type == DMALOAD_EV_DONE || ev.type == DMALOAD_EV_ERROR)
			return CHECKF(false, "the load ended before it was written to: %s",
				      lc_event_str(&ev));
	}
	return CHECKF(false, "no PROGRESS in 20 s");
}

/* The final event of @id: 0 for a DONE (its fd closed), -err for an ERROR. */
static int final_err(struct dmaload *dl, uint64_t id, struct dmaload_event *ev)
{
	int r = dmaload_wait(dl, id, ev, NULL, NULL);

	if (r < 0)
		return r;
	if (ev->type == DMALOAD_EV_DONE) {
		close(ev->fd);
		return 0;
	}
	return ev->type == DMALOAD_EV_ERROR ? -ev->err : -EPROTO;
}

/* Bytes [@at, @at + @len) of buffer @fd are pattern @seed of those file offsets. */
static bool range_ok(int fd, uint64_t at, uint64_t len, uint32_t seed, char *why,
		     size_t n)
{
	const uint8_t *p = mmap(NULL, at + len, PROT_READ, MAP_SHARED, fd, 0);
	uint8_t *want = malloc(len);
	bool ok = p != MAP_FAILED && want;

	if (ok) {
		pattern_fill(seed, at, want, len);
		for (uint64_t i = 0; i < len && ok; i++)
			if (p[at + i] != want[i]) {
				snprintf(why, n, "byte %llu is 0x%02x, want 0x%02x",
					 (unsigned long long)(at + i), p[at + i], want[i]);
				ok = false;
			}
	} else {
		snprintf(why, n, "mmap: %s", strerror(errno));
	}
	if (p != MAP_FAILED)
		munmap((void *)p, at + len);
	free(want);
	return ok;
}

/* The cache's entries of @path. */
static size_t entries_of(struct dmaload *dl, const char *path)
{
	struct dmaload_cache_list l;
	size_t n = 0;

	if (!CHECK_OK(dmaload_list(dl, &l)))
		return 0;
	for (size_t i = 0; i < l.n_entries; i++)
		n += !strcmp(l.entries[i].name, path);
	dmaload_list_free(&l);
	return n;
}

/* @how: 0 rewrites 1 MiB in the middle in place, 1 truncates and rewrites it all, 2
 * truncates it to 24 MiB and leaves it so. */
static void racing_writer(int how)
{
	struct dmaload *dl = lc_connect(&d, "stale"), *joiner = lc_connect(&d, "joiner");
	struct dmaload_opts o;
	struct dmaload_event ev, jev;
	uint64_t id, jid;
	uint32_t seed = how ? 13 : 12;
	int fd = -1, r;

	if (!dl || !joiner)
		goto out;
	r = file_make(file, SIZE, 11, 0644);
	if (!CHECKF(r == 0, "file_make: %s", strerror(-r)))
		goto out;
	dmaload_opts_init(&o);
	o.rate_limit = RATE;
	o.progress = true;
	if (!CHECK_OK(dmaload_load_path(dl, file, &o, &id)))
		goto out;
	if (!wait_reading(dl, id))
		goto out;
	/* Joins the running read (same range, method auto, the leader's rate: a faster
	 * load would take the read over instead). */
	if (!CHECK_OK(dmaload_load_path(joiner, file, &o, &jid)))
		goto out;
	sleep_ms(100);
	fd = open(file, O_WRONLY | O_CLOEXEC);
	if (!CHECKF(fd >= 0, "open: %s", strerror(errno)))
		goto out;
	if (how == 0) {
		char *buf = malloc(MiB);

		pattern_fill(seed, 16 * MiB, buf, MiB);
		r = pwrite(fd, buf, MiB, 16 * MiB) == (ssize_t)MiB ? 0 : -errno;
		free(buf);
	} else if (how == 2) {
		/* stays short: the reads past 24 MiB find the end, before any statx */
		r = ftruncate(fd, 24 * MiB) < 0 ? -errno : 0;
	} else {
		r = ftruncate(fd, 0) < 0 ? -errno : 0;
		close(fd);
		fd = -1;
		if (!r)
			r = file_make(file, SIZE, seed, 0644);
	}
	if (!CHECKF(r == 0, "writing: %s", strerror(-r)))
		goto out;
	r = final_err(dl, id, &ev);
	/* A truncate may be seen by a read (the file ended early) or by the statx after
	 * the read: both are ESTALE, with the same words. */
	CHECKF(r == -ESTALE && strstr(ev.message, "changed while it was read"),
	       "the raced load: %d %s, want ESTALE", r, lc_event_str(&ev));
	r = final_err(joiner, jid, &jev);
	CHECKF(r < 0 && ev.type == DMALOAD_EV_ERROR && r == -ev.err,
	       "the joined load: %d %s, want the leader's error", r, lc_event_str(&jev));
	CHECK_U64(entries_of(dl, file), ==, 0);
	/* Now: the new bytes, every one of them. */
	if (how == 0) {
		if (CHECK_OK(dmaload_load_path_sync(dl, file, NULL, &ev))) {
			char why[256];

			/* seed 11 everywhere but the rewritten MiB */
			CHECKF(ev.size == SIZE, "size %llu", (unsigned long long)ev.size);
			CHECK(range_ok(ev.fd, 0, 16 * MiB, 11, why, sizeof(why)) ||
			      check_fail(__FILE__, __LINE__, "%s", why));
			CHECK(range_ok(ev.fd, 16 * MiB, MiB, seed, why, sizeof(why)) ||
			      check_fail(__FILE__, __LINE__, "%s", why));
			CHECK(range_ok(ev.fd, 17 * MiB, SIZE - 17 * MiB, 11, why,
					       sizeof(why)) ||
			      check_fail(__FILE__, __LINE__, "%s", why));
			close(ev.fd);
		}
	} else if (how == 2) {
		CHECK(lc_load_verify(dl, file, -1, NULL, 24 * MiB, 11, DL_METHOD_AUTO, NULL));
	} else {
		CHECK(lc_load_verify(dl, file, -1, NULL, SIZE, seed, DL_METHOD_AUTO, NULL));
	}
	dmaload_evict(dl, file, NULL);	/* the good buffer the last load left cached */
out:
	if (fd >= 0)
		close(fd);
	if (dl)
		dmaload_close(dl);
	if (joiner)
		dmaload_close(joiner);
	unlink(file);
	CHECK_SETTLED(&d, 10000);
}

int main(void)
{
	check_init(SUITE);
	if (!daemon_start_case(&d, SUITE, "[cache]\ncache_limit = 256M\n", NULL))
		return 1;
	snprintf(file, sizeof(file), "%s/model.bin", d.dir);
	check_end();
	daemon_baseline(&d);

	CASE(racing_writer(0), "a file rewritten in place during a load: ESTALE for it and "
	     "its joiner, nothing cached, the next load gets the new bytes");
	CASE(racing_writer(1), "a file truncated and rewritten to the same size during a "
	     "load: ESTALE (a read that finds it short too), nothing cached");
	CASE(racing_writer(2), "a file truncated during a load: ESTALE, as any file that "
	     "changed while it was read, nothing cached, the next load gets what is left");

	daemon_stop_case(&d, "daemon exits 0 on SIGTERM");
	return check_finish();
}
