/*
 * test-cache.c: shared loads and the buffer cache, against the real daemon.
 *
 * One daemon with a roomy cache: N clients loading one cold file at once cause one
 * read (STATS bytes_read grows by the file's size, once) and all get the same sealed
 * buffer with the file's bytes; a later load is served from the cache (DONE says so,
 * STATS counts the bytes as served, nothing is read); a rewritten file (new bytes, new
 * mtime) is read again and its new bytes delivered, while a buffer of the old version
 * keeps the old bytes; a leader cancelled by its client still serves the load that
 * joined it, and a joined load cancelled leaves the leader's load alone. A second daemon with a 20 MiB budget and three 8 MiB files: LIST shows
 * what fits, the least recently used goes first, a pinned entry stays, EVICT drops it.
 * Every buffer is checked byte for byte; at the end, after EVICT of everything, the
 * daemon's fds and memfds are back to where they started.
 */
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../lib/check.h"
#include "../lib/harness.h"
#include "../lib/loads.h"

#define SUITE "cache"
#define N_CLIENTS 6
#define BIG_SIZE (96 * MiB + 5)		/* not a multiple of anything */
#define SMALL (8 * MiB)

static struct test_daemon d;
static char big[PATH_MAX];

/* Writes @path with pattern @seed, flushes it and drops it from the page cache, so
 * the first load reads the disk and takes a while. */
static bool make_cold(const char *path, uint64_t size, uint32_t seed)
{
	int r = file_make(path, size, seed, 0644);

	if (!CHECKF(r == 0, "file_make(%s): %s", path, strerror(-r)))
		return false;
	r = file_uncache(path);
	return CHECKF(r == 0, "dropping %s from the page cache: %s", path, strerror(-r));
}

static bool get_stats(struct dmaload *dl, struct dmaload_stats *st)
{
	int r = dmaload_stats(dl, st);

	return CHECKF(r == 0, "dmaload_stats: %s", strerror(-r));
}

static bool same_inode(int a, int b)
{
	struct stat sa, sb;

	return fstat(a, &sa) == 0 && fstat(b, &sb) == 0 && sa.st_dev == sb.st_dev &&
	       sa.st_ino == sb.st_ino;
}

/* N connections load the cold big file at once: one read, one buffer, N DONEs. */
static void coalesce(void)
{
	struct dmaload *dls[N_CLIENTS] = { 0 }, *dl;
	struct dmaload_event ev[N_CLIENTS];
	struct dmaload_stats st0, st1;
	uint64_t ids[N_CLIENTS];
	int joined = 0, cached = 0, first = -1;

	for (int i = 0; i < N_CLIENTS; i++)
		ev[i].fd = -1;
	if (!(dl = lc_connect(&d, "stats")) || !get_stats(dl, &st0))
		goto out;
	for (int i = 0; i < N_CLIENTS; i++)
		if (!(dls[i] = lc_connect(&d, "coalesce")))
			goto out;
	for (int i = 0; i < N_CLIENTS; i++)
		if (!CHECK_OK(dmaload_load_path(dls[i], big, NULL, &ids[i])))
			goto out;
	for (int i = 0; i < N_CLIENTS; i++) {
		int r = dmaload_wait(dls[i], ids[i], &ev[i], NULL, NULL);

		if (!CHECK_OK(r) || !CHECKF(ev[i].type == DMALOAD_EV_DONE, "client %d: %s", i,
					    lc_event_str(&ev[i])))
			goto out;
		if (ev[i].done_flags & DL_DONE_JOINED)
			joined++;
		else if (ev[i].done_flags & DL_DONE_CACHED)
			cached++;
		else if (CHECKF(first < 0, "clients %d and %d both read the file", first, i))
			first = i;
		CHECK_U64(ev[i].size, ==, BIG_SIZE);
		CHECKF(ev[i].done_flags & DL_DONE_SEALED, "client %d: not sealed", i);
		CHECK_BUF(ev[i].fd, BIG_SIZE, 41, 0);
		if (i > 0)
			CHECKF(same_inode(ev[0].fd, ev[i].fd), "client %d got another buffer "
			       "than client 0", i);
	}
	CHECKF(first >= 0, "no client read the file: %d joined, %d cached", joined, cached);
	/* The others came within microseconds of a cold 96 MiB read: they joined it. */
	CHECKF(joined >= 1, "none joined the running load (%d from the cache)", cached);
	if (!get_stats(dl, &st1))
		goto out;
	CHECK_U64(st1.bytes_read - st0.bytes_read, ==, BIG_SIZE);
	CHECK_U64(st1.bytes_cached - st0.bytes_cached, ==, (N_CLIENTS - 1) * BIG_SIZE);
	CHECK_U64(st1.cache_joins - st0.cache_joins, ==, (uint64_t)joined);
	CHECK_U64(st1.cache_hits - st0.cache_hits, ==, (uint64_t)cached);
	CHECK_U64(st1.cache_misses - st0.cache_misses, ==, 1);
	CHECK_U64(st1.cache_entries, ==, 1);
	dmaload_stats_free(&st0);
	dmaload_stats_free(&st1);
out:
	for (int i = 0; i < N_CLIENTS; i++) {
		if (ev[i].fd >= 0)
			close(ev[i].fd);
		dmaload_close(dls[i]);
	}
	dmaload_close(dl);
}

/* A load after the first finished: from the cache, nothing read. */
static void second_load_cached(void)
{
	struct dmaload *dl = lc_connect(&d, "again");
	struct dmaload_stats st0, st1;
	struct dmaload_cache_list l;
	struct dmaload_event ev;
	bool found = false;

	if (!dl || !get_stats(dl, &st0))
		goto out;
	if (!CHECK_OK(dmaload_load_path_sync(dl, big, NULL, &ev)))
		goto out;
	CHECKF(ev.done_flags & DL_DONE_CACHED, "DONE flags 0x%x: not from the cache",
	       ev.done_flags);
	CHECK_BUF(ev.fd, BIG_SIZE, 41, 0);
	close(ev.fd);
	if (!get_stats(dl, &st1))
		goto out;
	CHECK_U64(st1.bytes_read, ==, st0.bytes_read);
	CHECK_U64(st1.bytes_cached - st0.bytes_cached, ==, BIG_SIZE);
	CHECK_U64(st1.cache_hits - st0.cache_hits, ==, 1);
	dmaload_stats_free(&st0);
	dmaload_stats_free(&st1);
	if (!CHECK_OK(dmaload_list(dl, &l)))
		goto out;
	for (size_t i = 0; i < l.n_entries; i++)
		if (!strcmp(l.entries[i].name, big)) {
			found = true;
			CHECK_U64(l.entries[i].served, ==, N_CLIENTS + 1);
			CHECK_U64(l.entries[i].hits, >=, 1);
			CHECK_U64(l.entries[i].size, ==, BIG_SIZE);
		}
	CHECKF(found, "LIST does not show %s", big);
	dmaload_list_free(&l);
out:
	dmaload_close(dl);
}

/* The file is rewritten (new bytes, new mtime): read again, new bytes; a buffer of
 * the old version that a client holds keeps the old bytes. */
static void modified_file(void)
{
	struct dmaload *dl = lc_connect(&d, "modified");
	struct dmaload_stats st0, st1;
	struct dmaload_event old, ev;
	struct timespec ts[2];

	old.fd = -1;
	if (!dl || !CHECK_OK(dmaload_load_path_sync(dl, big, NULL, &old)))
		goto out;
	CHECKF(old.done_flags & DL_DONE_CACHED, "not from the cache before the rewrite");
	if (!get_stats(dl, &st0) || !make_cold(big, BIG_SIZE, 42))
		goto out;
	/* mtime moves on even where the clock is coarse */
	clock_gettime(CLOCK_REALTIME, &ts[0]);
	ts[0].tv_sec += 10;
	ts[1] = ts[0];
	if (!CHECKF(utimensat(AT_FDCWD, big, ts, 0) == 0, "utimensat: %s", strerror(errno)))
		goto out;
	if (!CHECK_OK(dmaload_load_path_sync(dl, big, NULL, &ev)))
		goto out;
	CHECKF(!(ev.done_flags & (DL_DONE_CACHED | DL_DONE_JOINED)),
	       "the rewritten file was served shared (flags 0x%x)", ev.done_flags);
	CHECK_BUF(ev.fd, BIG_SIZE, 42, 0);
	close(ev.fd);
	CHECK_BUF(old.fd, BIG_SIZE, 41, 0);
	if (!get_stats(dl, &st1))
		goto out;
	CHECK_U64(st1.bytes_read - st0.bytes_read, ==, BIG_SIZE);
	CHECK_U64(st1.cache_evictions - st0.cache_evictions, ==, 1);	/* the stale one */
	CHECK_U64(st1.cache_entries, ==, 1);
	dmaload_stats_free(&st0);
	dmaload_stats_free(&st1);
	/* and the new version is what the cache serves now */
	if (CHECK_OK(dmaload_load_path_sync(dl, big, NULL, &ev))) {
		CHECKF(ev.done_flags & DL_DONE_CACHED, "new version not cached");
		CHECK_BUF(ev.fd, BIG_SIZE, 42, 0);
		close(ev.fd);
	}
out:
	if (old.fd >= 0)
		close(old.fd);
	dmaload_close(dl);
}

/* The leader's client cancels after another load joined: the joiner still gets the
 * bytes, the leader an ECANCELED. */
enum leader_end {
	LEADER_CANCELS,		/* CANCEL, connection kept */
	LEADER_CANCELS_AND_EXITS,	/* CANCEL, then the connection closes */
	LEADER_LIMITED_EXITS,	/* rate-limited leader's connection closes, no CANCEL */
};

/* The client of the load that reads goes away in one of the ways above while another
 * load has joined it: the joined load still gets every byte. */
static void leader_gone(enum leader_end how)
{
	struct dmaload *a = lc_connect(&d, "leader"), *b = lc_connect(&d, "joiner");
	struct dmaload_event ev, evb;
	struct dmaload_opts o;
	uint64_t ida, idb, idc = 0;
	uint64_t bytes;

	evb.fd = -1;
	if (!a || !b)
		goto out;
	dmaload_evict(a, big, &bytes);
	if (!make_cold(big, BIG_SIZE, 43))
		goto out;
	dmaload_opts_init(&o);
	if (how == LEADER_LIMITED_EXITS)
		o.rate_limit = BIG_SIZE / 2;	/* two seconds of reading */
	/* a's ACCEPTED comes after its cache lookup: a leads by then. */
	if (!CHECK_OK(dmaload_load_path(a, big, &o, &ida)))
		goto out;
	do {
		if (!CHECKF(dmaload_next_event(a, &ev, 30000) == 1, "no event for a"))
			goto out;
	} while (ev.type == DMALOAD_EV_PROGRESS);
	if (!CHECKF(ev.type == DMALOAD_EV_ACCEPTED, "a: %s", lc_event_str(&ev)) ||
	    !CHECK_OK(dmaload_load_path(b, big, &o, &idb)))
		goto out;
	/* b asks a's rate (if any): a faster load would take the read over, not join.
	 * b's ACCEPTED comes after its lookup: it joined (or, on a very fast disk, found
	 * the finished buffer) by then. */
	do {
		if (!CHECKF(dmaload_next_event(b, &evb, 30000) == 1, "no event for b"))
			goto out;
	} while (evb.type == DMALOAD_EV_PROGRESS);
	if (!CHECKF(evb.type == DMALOAD_EV_ACCEPTED, "b: %s", lc_event_str(&evb)))
		goto out;
	if (how == LEADER_LIMITED_EXITS) {
		a = dmaload_close(a);
	} else {
		if (!CHECK_OK(dmaload_cancel(a, ida, &idc)))
			goto out;
		if (!CHECK_OK(dmaload_wait(a, ida, &ev, NULL, NULL)))
			goto out;
	}
	if (how == LEADER_CANCELS_AND_EXITS) {
		if (ev.type == DMALOAD_EV_DONE)
			close(ev.fd);
		dmaload_wait(a, idc, &ev, NULL, NULL);
		a = dmaload_close(a);
	}
	/* a hang here (the joined load never finishing) ends in the case watchdog */
	if (!CHECK_OK(dmaload_wait(b, idb, &evb, NULL, NULL)))
		goto out;
	if (!CHECKF(evb.type == DMALOAD_EV_DONE, "joiner: %s", lc_event_str(&evb)))
		goto out;
	CHECK_BUF(evb.fd, BIG_SIZE, 43, 0);
	if (how != LEADER_CANCELS)
		goto out;
	if (ev.type == DMALOAD_EV_DONE) {
		close(ev.fd);
		check_skip("the leader finished before the cancel arrived");
	} else {
		CHECKF(ev.type == DMALOAD_EV_ERROR && ev.err == ECANCELED, "leader: %s",
		       lc_event_str(&ev));
		CHECKF(evb.done_flags & DL_DONE_JOINED, "joiner flags 0x%x", evb.done_flags);
	}
	dmaload_wait(a, idc, &ev, NULL, NULL);
out:
	if (evb.fd >= 0)
		close(evb.fd);
	dmaload_close(a);
	dmaload_close(b);
}

/* A load that joined is cancelled: it gets ECANCELED, the leader its bytes. */
static void joiner_cancelled(void)
{
	struct dmaload *a = lc_connect(&d, "leader2"), *b = lc_connect(&d, "joiner2");
	struct dmaload_event ev, evb;
	uint64_t ida, idb, idc, bytes;

	ev.fd = -1;
	if (!a || !b)
		goto out;
	dmaload_evict(a, big, &bytes);
	if (!make_cold(big, BIG_SIZE, 44))
		goto out;
	if (!CHECK_OK(dmaload_load_path(a, big, NULL, &ida)))
		goto out;
	do {
		if (!CHECKF(dmaload_next_event(a, &ev, 30000) == 1, "no event for a"))
			goto out;
	} while (ev.type == DMALOAD_EV_PROGRESS);
	if (!CHECKF(ev.type == DMALOAD_EV_ACCEPTED, "a: %s", lc_event_str(&ev)) ||
	    !CHECK_OK(dmaload_load_path(b, big, NULL, &idb)))
		goto out;
	do {
		if (!CHECKF(dmaload_next_event(b, &evb, 30000) == 1, "no event for b"))
			goto out;
	} while (evb.type == DMALOAD_EV_PROGRESS);
	if (!CHECK_OK(dmaload_cancel(b, idb, &idc)) ||
	    !CHECK_OK(dmaload_wait(b, idb, &evb, NULL, NULL)))
		goto out;
	if (evb.type == DMALOAD_EV_DONE) {
		close(evb.fd);
		check_skip("the load finished before the cancel arrived");
	} else {
		CHECKF(evb.type == DMALOAD_EV_ERROR && evb.err == ECANCELED, "joiner: %s",
		       lc_event_str(&evb));
	}
	ev.fd = -1;
	if (!CHECK_OK(dmaload_wait(a, ida, &ev, NULL, NULL)) ||
	    !CHECKF(ev.type == DMALOAD_EV_DONE, "leader: %s", lc_event_str(&ev)))
		goto out;
	CHECKF(!(ev.done_flags & (DL_DONE_JOINED | DL_DONE_CACHED)), "leader flags 0x%x",
	       ev.done_flags);
	CHECK_BUF(ev.fd, BIG_SIZE, 44, 0);
	dmaload_wait(b, idc, &evb, NULL, NULL);
out:
	if (ev.fd >= 0)
		close(ev.fd);
	dmaload_close(a);
	dmaload_close(b);
}

/* ---- the budget ---------------------------------------------------------------------- */

static struct test_daemon d2;
static char small[3][PATH_MAX];

/* LIST names (basenames' last letter) in order, e.g. "CB". */
static void list_names(struct dmaload *dl, char *out, size_t len, uint64_t *bytes,
		       char *pinned)
{
	struct dmaload_cache_list l;
	size_t k = 0, p = 0;

	out[0] = pinned[0] = '\0';
	if (!CHECK_OK(dmaload_list(dl, &l)))
		return;
	for (size_t i = 0; i < l.n_entries && k + 1 < len; i++) {
		char c = l.entries[i].name[strlen(l.entries[i].name) - 1];

		out[k++] = c;
		if (l.entries[i].flags & DL_ENTRY_PINNED)
			pinned[p++] = c;
	}
	out[k] = pinned[p] = '\0';
	*bytes = l.cache_bytes;
	dmaload_list_free(&l);
}

static bool load_small(struct dmaload *dl, int i, bool pin, bool want_cached)
{
	struct dmaload_opts o;
	struct dmaload_event ev;

	dmaload_opts_init(&o);
	o.pin = pin;
	if (!CHECK_OK(dmaload_load_path_sync(dl, small[i], &o, &ev)))
		return false;
	CHECKF(!!(ev.done_flags & DL_DONE_CACHED) == want_cached, "file %c: %s the cache",
	       'A' + i, want_cached ? "not from" : "from");
	CHECK_BUF(ev.fd, SMALL, 50 + i, 0);
	close(ev.fd);
	return true;
}

#define CHECK_LIST(dl, want, want_pinned) ({					\
	char _n[16], _p[16];							\
	uint64_t _b = 0;							\
	list_names((dl), _n, sizeof(_n), &_b, _p);				\
	CHECKF(!strcmp(_n, (want)) && !strcmp(_p, (want_pinned)) &&		\
	       _b == strlen(want) * SMALL, "LIST \"%s\" (pinned \"%s\", %llu bytes), "	\
	       "expected \"%s\" (pinned \"%s\")", _n, _p, (unsigned long long)_b,	\
	       (want), (want_pinned));						\
})

static void budget(void)
{
	struct dmaload *dl = lc_connect(&d2, "budget");
	struct dmaload_stats st;
	uint64_t bytes;

	if (!dl)
		return;
	/* most recently used first */
	if (!load_small(dl, 0, false, false) || !load_small(dl, 1, false, false))
		goto out;
	CHECK_LIST(dl, "BA", "");
	load_small(dl, 2, false, false);	/* 24 MiB > 20: A, the LRU, goes */
	CHECK_LIST(dl, "CB", "");
	load_small(dl, 1, false, true);		/* B is used: C is the LRU now */
	CHECK_LIST(dl, "BC", "");
	load_small(dl, 0, true, false);		/* A again, pinned: C goes */
	CHECK_LIST(dl, "AB", "A");
	load_small(dl, 2, false, false);	/* C: B goes, pinned A stays */
	CHECK_LIST(dl, "CA", "A");
	load_small(dl, 1, false, false);	/* B: C goes, not A */
	CHECK_LIST(dl, "BA", "A");
	load_small(dl, 0, false, true);		/* still there */
	if (get_stats(dl, &st)) {
		CHECK_U64(st.cache_evictions, ==, 4);
		CHECK_U64(st.cache_pinned, ==, 1);
		CHECK_U64(st.cache_limit, ==, 20 * MiB);
		CHECK_U64(st.cache_bytes, ==, 2 * SMALL);
		dmaload_stats_free(&st);
	}
	/* EVICT drops the pinned one; again is ENOENT */
	CHECK_INT(dmaload_evict(dl, small[0], &bytes), ==, 1);
	CHECK_U64(bytes, ==, SMALL);
	CHECK_LIST(dl, "B", "");
	CHECK_ERR(dmaload_evict(dl, small[0], &bytes), -ENOENT);
	CHECK_ERR(dmaload_evict(dl, "/no/such/file", &bytes), -ENOENT);
out:
	dmaload_close(dl);
}

/* A buffer bigger than the whole budget is delivered, never kept. */
static void too_big(void)
{
	struct dmaload *dl = lc_connect(&d2, "toobig");
	struct dmaload_event ev;
	struct dmaload_stats st;

	if (!dl)
		return;
	if (CHECK_OK(dmaload_load_path_sync(dl, big, NULL, &ev))) {
		CHECK_BUF(ev.fd, BIG_SIZE, 43, 0);
		close(ev.fd);
	}
	if (get_stats(dl, &st)) {
		CHECK_U64(st.cache_bytes, <=, 20 * MiB);
		CHECK_U64(st.cache_entries, ==, 1);	/* B from the budget case */
		dmaload_stats_free(&st);
	}
	dmaload_close(dl);
}

static void evict_all(struct test_daemon *td)
{
	struct dmaload *dl = lc_connect(td, "evict");
	uint64_t bytes;
	int r;

	if (!dl)
		return;
	r = dmaload_evict(dl, NULL, &bytes);
	CHECKF(r >= 1, "evict all: %d", r);
	CHECK_ERR(dmaload_evict(dl, NULL, &bytes), -ENOENT);
	dmaload_close(dl);
	CHECK_SETTLED_START(td, 5000);
}

static bool start(struct test_daemon *td, const char *tag, const char *extra)
{
	char why[512];

	check_begin("%s: daemon starts", tag);
	if (daemon_start(td, tag, extra, why, sizeof(why)) < 0) {
		check_fail(__FILE__, __LINE__, "%s", why);
		check_end();
		daemon_cleanup(td);
		return false;
	}
	return check_end();
}

int main(void)
{
	check_init(SUITE);

	if (!start(&d, "cache", "[cache]\ncache_limit = 1G\n"))
		return check_finish();
	snprintf(big, sizeof(big), "%s/big", d.dir);
	check_begin("make a cold %llu-byte file", (unsigned long long)BIG_SIZE);
	make_cold(big, BIG_SIZE, 41);
	check_end();
	daemon_baseline(&d);
	CASE(coalesce(), "%d clients at once: one read, one sealed buffer, right bytes",
	     N_CLIENTS);
	CASE(second_load_cached(), "a later load: DONE from the cache, nothing read");
	CASE(modified_file(), "a rewritten file is read again; old buffers keep old bytes");
	CASE(leader_gone(LEADER_CANCELS), "the leader cancelled: the joined load still gets its "
	     "bytes");
	CASE(leader_gone(LEADER_CANCELS_AND_EXITS), "the leader cancelled, then its client "
	     "left: the joined load still gets its bytes");
	CASE(leader_gone(LEADER_LIMITED_EXITS), "a rate-limited leader's client left: the "
	     "joined load still gets its bytes (its wake-up timer is the daemon's now)");
	CASE(joiner_cancelled(), "a joined load cancelled: ECANCELED; the leader its bytes");
	CASE(evict_all(&d), "EVICT all: the daemon's fds back to the start");
	daemon_stop_case(&d, "cache: daemon exits 0 on SIGTERM");

	if (!start(&d2, "budget", "hugetlb = off\n[cache]\ncache_limit = 20M\n"))
		return check_finish();
	daemon_baseline(&d2);
	check_begin("make three %llu-byte files", (unsigned long long)SMALL);
	for (int i = 0; i < 3; i++) {
		snprintf(small[i], sizeof(small[i]), "%s/file%c", d2.dir, 'A' + i);
		make_cold(small[i], SMALL, 50 + (uint32_t)i);
	}
	snprintf(big, sizeof(big), "%s/big", d2.dir);
	make_cold(big, BIG_SIZE, 43);
	check_end();
	CASE(budget(), "20 MiB budget, 8 MiB files: LRU evicted first, pin kept, EVICT");
	CASE(too_big(), "a buffer bigger than the budget is delivered, not kept");
	CASE(evict_all(&d2), "EVICT all: the daemon's fds back to the start");
	daemon_stop_case(&d2, "budget: daemon exits 0 on SIGTERM");
	return check_finish();
}
