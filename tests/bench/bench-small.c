/*
 * bench-small.c: the small-file and cache-hit rows of make bench (issue 15). Reported,
 * not asserted.
 *
 *   small     10,000 files of 64 KiB and 1,000 of 1 MiB (1,000 and 100 with --quick),
 *             cold (dropped from the page cache with POSIX_FADV_DONTNEED before each
 *             run), loaded by 1 and by 8 clients: loads per second against a naive
 *             client doing the same in this program (open, fstat, memfd_create,
 *             ftruncate, mmap, read() into the mapping), one thread per client. Each
 *             dmaloadd client is a connection of its own that keeps up to WINDOW loads
 *             in flight (libdmaload's asynchronous calls), as an application that
 *             loads a directory would; the naive one reads a file at a time. Target:
 *             >= 3x the naive loads/s for 64 KiB files;
 *   hits      the latency of a cache hit, LOAD sent to DONE received, p50 and p99 in
 *             microseconds, with 1 and 64 clients at an open-loop offered rate of
 *             HIT_RATE_ONE and HIT_RATE hits/s in all (each client sends at fixed times whatever
 *             happened to its previous load): 64 files of 64 KiB, loaded once before
 *             into a daemon with the cache on. Target: p99 < 200 us with 64 clients.
 *             The daemon's part of it (DONE's elapsed_ns: LOAD decoded to DONE sent)
 *             is printed beside it, p50 and p99: the rest is the socket, the
 *             wake-ups and the client threads on a busy machine.
 *
 *   bench-small [--quick] [--rows small,hits] WORKDIR   (the daemon: $DMALOADD;
 *                                                        small64: the 64 KiB rows only)
 *
 * The daemons run on the built-in defaults (log_level info), but for the cache.
 * Every buffer, of the daemon and of the naive client, is checked byte for byte
 * (the daemon's also for its size, seals and read-only open; the first of each
 * client fully, by buf_verify) in the timed loop: both pay the same check. A
 * hit's buffer is checked after its latency was taken, by its seals, its read-only
 * open and a pread of every byte against a copy made once; the full check (buf_verify:
 * two opens through /proc, a 4 MiB malloc, mmaps whose munmap interrupts the other
 * CPU) runs on each file's first load. Run after every hit it took as much CPU as
 * the daemon did, on the same two cores, and its IPIs, not the daemon, made the p99.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "../lib/harness.h"
#include "dmaload.h"

#define WINDOW 16		/* loads in flight per dmaloadd client */
#define MAX_CLIENTS 64
#define HIT_RATE 5000		/* hits/s offered by 64 clients together */
#define HIT_RATE_ONE 1000	/* by one client: a hit and its check take ~0.2 ms */
#define HIT_FILES 64

static struct test_daemon d;
static bool quick;
static char files_dir[256];

struct set {
	const char *name;	/* "64 KiB" */
	unsigned n;
	uint64_t size;
	uint32_t seed0;		/* file i has seed seed0 + i */
	char tag[16];		/* file name prefix */
};

static void set_path(const struct set *s, unsigned i, char *out, size_t len)
{
	snprintf(out, len, "%s/%s-%05u", files_dir, s->tag, i);
}

static int set_make(const struct set *s)
{
	char path[PATH_MAX];
	struct stat st;

	for (unsigned i = 0; i < s->n; i++) {
		set_path(s, i, path, sizeof(path));
		if (stat(path, &st) == 0 && (uint64_t)st.st_size == s->size)
			continue;	/* from an earlier run: same seed, same bytes */
		if (file_make(path, s->size, s->seed0 + i, 0644) < 0)
			return -1;
	}
	return 0;
}

static void set_cold(const struct set *s)
{
	char path[PATH_MAX];

	for (unsigned i = 0; i < s->n; i++) {
		int fd;

		set_path(s, i, path, sizeof(path));
		fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			continue;
		fdatasync(fd);
		posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
		close(fd);
	}
}

static void set_unlink(const struct set *s)
{
	char path[PATH_MAX];

	for (unsigned i = 0; i < s->n; i++) {
		set_path(s, i, path, sizeof(path));
		unlink(path);
	}
}

/* Compares @len bytes at @p with pattern @seed; @expect is scratch of @len bytes. */
static bool bytes_ok(const void *p, uint64_t len, uint32_t seed, void *expect)
{
	pattern_fill(seed, 0, expect, len);
	return memcmp(p, expect, len) == 0;
}

/* ---- cold loads ------------------------------------------------------------------ */

struct worker {
	const struct set *s;
	unsigned first, step;	/* its files: first, first + step, ... */
	pthread_barrier_t *bar;
	double secs;		/* from the barrier to its last buffer checked */
	unsigned loads;
	char err[600];
};

/* The naive client: one file at a time. */
static void *naive_thread(void *arg)
{
	struct worker *w = arg;
	const struct set *s = w->s;
	char path[PATH_MAX];
	void *expect = malloc(s->size);
	double t0;

	pthread_barrier_wait(w->bar);
	t0 = now_s();
	for (unsigned i = w->first; i < s->n && expect && !w->err[0]; i += w->step) {
		int fd, mfd = -1;
		struct stat st;
		char *map = MAP_FAILED;
		uint64_t got = 0;

		set_path(s, i, path, sizeof(path));
		fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0 || fstat(fd, &st) < 0 ||
		    (mfd = memfd_create("naive", MFD_CLOEXEC)) < 0 ||
		    ftruncate(mfd, st.st_size) < 0 ||
		    (map = mmap(NULL, (size_t)st.st_size, PROT_READ | PROT_WRITE, MAP_SHARED,
				mfd, 0)) == MAP_FAILED) {
			snprintf(w->err, sizeof(w->err), "naive %.300s: %s", path, strerror(errno));
		} else {
			while (got < (uint64_t)st.st_size) {
				ssize_t k = read(fd, map + got, (size_t)st.st_size - got);

				if (k <= 0)
					break;
				got += (uint64_t)k;
			}
			if (got != s->size || !bytes_ok(map, s->size, s->seed0 + i, expect))
				snprintf(w->err, sizeof(w->err), "naive %.300s: wrong bytes", path);
			w->loads++;
		}
		if (map != MAP_FAILED)
			munmap(map, (size_t)st.st_size);
		if (mfd >= 0)
			close(mfd);
		if (fd >= 0)
			close(fd);
	}
	w->secs = now_s() - t0;
	if (!expect)
		snprintf(w->err, sizeof(w->err), "out of memory");
	free(expect);
	return NULL;
}

/* Checks a DONE's buffer fully: a sealed, read-only memfd of the file's bytes, its
 * mappings and reopens refused writes (buf_verify). */
static bool done_ok(const struct set *s, unsigned i, const struct dmaload_event *ev,
		    char *err, size_t n)
{
	char why[512];

	if (buf_verify(ev->fd, s->size, s->seed0 + i, 0, why, sizeof(why)))
		return true;
	snprintf(err, n, "file %u: %.500s", i, why);
	return false;
}

/*
 * The check in the timed loop, the naive client's and then some: the buffer mapped
 * and compared with the file's bytes (@expect: room for them), its size, its seals
 * and its read-only open. buf_verify (two opens through /proc, a 4 MiB malloc, a
 * refused writable mapping) runs on each client's first buffer only: run on every
 * one it cost the daemon's client more than the naive client's whole load.
 */
static bool load_ok(const struct set *s, unsigned i, int fd, void *expect, char *err,
		    size_t n)
{
	const int want = F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL;
	int seals = fcntl(fd, F_GET_SEALS), fl = fcntl(fd, F_GETFL);
	struct stat st;
	void *map;
	bool ok;

	if (fstat(fd, &st) < 0 || (uint64_t)st.st_size != s->size || seals < 0 ||
	    (seals & want) != want || fl < 0 || (fl & O_ACCMODE) != O_RDONLY) {
		snprintf(err, n, "file %u: size %lld, seals 0x%x, flags 0x%x", i,
			 (long long)st.st_size, seals, fl);
		return false;
	}
	map = mmap(NULL, s->size, PROT_READ, MAP_SHARED, fd, 0);
	if (map == MAP_FAILED) {
		snprintf(err, n, "file %u: mmap: %s", i, strerror(errno));
		return false;
	}
	ok = bytes_ok(map, s->size, s->seed0 + i, expect);
	munmap(map, s->size);
	if (!ok)
		snprintf(err, n, "file %u: wrong bytes", i);
	return ok;
}

/* A dmaloadd client: its own connection, up to WINDOW loads in flight. */
static void *daemon_thread(void *arg)
{
	struct worker *w = arg;
	const struct set *s = w->s;
	struct dmaload *dl = NULL;
	struct dmaload_opts o;
	uint64_t ids[WINDOW];
	unsigned files[WINDOW], inflight = 0, next = w->first;
	void *expect = malloc(s->size);
	char path[PATH_MAX];
	double t0;
	int r = dmaload_connect(&dl, d.sock, "small");

	if (r < 0)
		snprintf(w->err, sizeof(w->err), "connect: %s", strerror(-r));
	dmaload_opts_init(&o);
	o.exact_size = true;
	pthread_barrier_wait(w->bar);
	t0 = now_s();
	while (!w->err[0] && expect && dl && (next < s->n || inflight)) {
		struct dmaload_event ev;
		unsigned k;

		while (next < s->n && inflight < WINDOW) {
			set_path(s, next, path, sizeof(path));
			r = dmaload_load_path(dl, path, &o, &ids[inflight]);
			if (r < 0) {
				snprintf(w->err, sizeof(w->err), "load: %s", strerror(-r));
				break;
			}
			files[inflight++] = next;
			next += w->step;
		}
		if (w->err[0])
			break;
		r = dmaload_next_event(dl, &ev, 60000);
		if (r <= 0) {
			snprintf(w->err, sizeof(w->err), "events: %s", r ? strerror(-r) :
				 "none for 60 s");
			break;
		}
		if (ev.type == DMALOAD_EV_ACCEPTED || ev.type == DMALOAD_EV_PROGRESS)
			continue;
		for (k = 0; k < inflight && ids[k] != ev.id; k++)
			;
		if (k == inflight) {
			snprintf(w->err, sizeof(w->err), "an event for id %llu, not sent",
				 (unsigned long long)ev.id);
		} else if (ev.type != DMALOAD_EV_DONE) {
			snprintf(w->err, sizeof(w->err), "file %u: %.500s", files[k],
				 ev.type == DMALOAD_EV_ERROR ? ev.message : "no DONE");
		} else {
			if (w->loads ? load_ok(s, files[k], ev.fd, expect, w->err,
					       sizeof(w->err)) :
				       done_ok(s, files[k], &ev, w->err, sizeof(w->err)))
				w->loads++;
		}
		if (ev.fd >= 0)
			close(ev.fd);
		if (k < inflight) {
			ids[k] = ids[inflight - 1];
			files[k] = files[inflight - 1];
			inflight--;
		}
	}
	w->secs = now_s() - t0;
	if (!expect)
		snprintf(w->err, sizeof(w->err), "out of memory");
	free(expect);
	dmaload_close(dl);
	return NULL;
}

/* @clients threads of @fn over @s, cold. Loads per second, or -1 with @err. */
static double run_clients(const struct set *s, unsigned clients, void *(*fn)(void *),
			  char *err, size_t n)
{
	struct worker w[8] = { 0 };
	pthread_t t[8];
	pthread_barrier_t bar;
	double longest = 0;
	unsigned loads = 0;

	set_cold(s);
	pthread_barrier_init(&bar, NULL, clients);
	for (unsigned i = 0; i < clients; i++) {
		w[i] = (struct worker){ .s = s, .first = i, .step = clients, .bar = &bar };
		if (pthread_create(&t[i], NULL, fn, &w[i]) != 0)
			abort();
	}
	for (unsigned i = 0; i < clients; i++)
		pthread_join(t[i], NULL);
	pthread_barrier_destroy(&bar);
	for (unsigned i = 0; i < clients; i++) {
		if (w[i].err[0]) {
			snprintf(err, n, "client %u: %s", i, w[i].err);
			return -1;
		}
		loads += w[i].loads;
		if (w[i].secs > longest)
			longest = w[i].secs;
	}
	if (loads != s->n) {
		snprintf(err, n, "%u loads of %u", loads, s->n);
		return -1;
	}
	return loads / longest;
}

/* CPU seconds this process has used (the clients, naive or not). */
static double self_cpu_s(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
	       (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

static void row_small(const struct set *s, unsigned clients, bool target)
{
	char err[700] = "";
	double naive, dm, ratio, c0, naive_cpu, client_cpu, daemon_cpu;
	long t0;

	c0 = self_cpu_s();
	naive = run_clients(s, clients, naive_thread, err, sizeof(err));
	naive_cpu = self_cpu_s() - c0;
	if (naive < 0) {
		printf("| %u x %s, cold, %u client%s | **error**: naive: %s | |\n", s->n,
		       s->name, clients, clients > 1 ? "s" : "", err);
		return;
	}
	c0 = self_cpu_s();
	t0 = proc_cpu_ticks(d.pid);
	dm = run_clients(s, clients, daemon_thread, err, sizeof(err));
	client_cpu = self_cpu_s() - c0;
	daemon_cpu = (double)(proc_cpu_ticks(d.pid) - t0) / (double)sysconf(_SC_CLK_TCK);
	if (dm < 0) {
		printf("| %u x %s, cold, %u client%s | **error**: dmaloadd: %s | |\n", s->n,
		       s->name, clients, clients > 1 ? "s" : "", err);
		return;
	}
	ratio = dm / naive;
	printf("| %u x %s, cold, %u client%s | dmaloadd %.0f loads/s (%.0f MB/s) vs naive "
	       "%.0f loads/s: %.2fx%s%s | %u in flight per dmaloadd client; naive: one file "
	       "at a time per thread; CPU per load: daemon %.0f us + its client %.0f us, "
	       "naive %.0f us (checks included) |\n", s->n, s->name, clients,
	       clients > 1 ? "s" : "", dm, dm * (double)s->size / 1e6, naive, ratio,
	       target ? " (target >= 3x): " : "",
	       target ? ratio >= 3 ? "met" : "not met" : "", WINDOW,
	       daemon_cpu * 1e6 / s->n, client_cpu * 1e6 / s->n, naive_cpu * 1e6 / s->n);
	fflush(stdout);
}

/* ---- cache hits ------------------------------------------------------------------ */

static const struct set *hit_set;
static char *hit_bytes;		/* what each of the HIT_FILES files holds, in a row */
static atomic_uint hit_late;	/* sends that started over 1 ms after their time */

/* A hit's buffer @fd holds file @f's bytes, sealed, read-only; @tmp: room for them. */
static bool hit_ok(unsigned f, int fd, char *tmp, char *err, size_t n)
{
	const int want = F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL;
	uint64_t size = hit_set->size;
	struct stat st;
	int seals = fcntl(fd, F_GET_SEALS), fl = fcntl(fd, F_GETFL);

	if (fstat(fd, &st) < 0 || (uint64_t)st.st_size != size) {
		snprintf(err, n, "file %u: buffer of %lld bytes, expected %llu", f,
			 (long long)st.st_size, (unsigned long long)size);
		return false;
	}
	if (seals < 0 || (seals & want) != want || fl < 0 || (fl & O_ACCMODE) != O_RDONLY) {
		snprintf(err, n, "file %u: seals 0x%x, flags 0x%x", f, seals, fl);
		return false;
	}
	if (pread(fd, tmp, size, 0) != (ssize_t)size ||
	    memcmp(tmp, hit_bytes + (size_t)f * size, size) != 0) {
		snprintf(err, n, "file %u: the buffer's bytes are not the file's", f);
		return false;
	}
	return true;
}

struct hitter {
	unsigned i, clients, rate;
	double start, secs;	/* the common start, the run's length */
	unsigned n;
	double *us;		/* n latencies */
	double *dus;		/* and the daemon's part of each (DONE's elapsed_ns) */
	char err[600];
};

static void sleep_until(double t)
{
	struct timespec ts = { .tv_sec = (time_t)t,
			       .tv_nsec = (long)((t - (double)(time_t)t) * 1e9) };

	while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
		;
}

static void *hit_thread(void *arg)
{
	struct hitter *h = arg;
	double interval = (double)h->clients / h->rate;
	double at = h->start + interval * h->i / h->clients;
	void *expect = malloc(hit_set->size);
	struct dmaload *dl = NULL;
	struct dmaload_opts o;
	char path[PATH_MAX];
	int r = dmaload_connect(&dl, d.sock, "hits");

	if (r < 0 || !expect) {
		snprintf(h->err, sizeof(h->err), "connect: %s", strerror(r < 0 ? -r : ENOMEM));
		goto out;
	}
	dmaload_opts_init(&o);
	o.exact_size = true;
	for (unsigned k = 0; at < h->start + h->secs; k++, at += interval) {
		unsigned f = (h->i + k) % HIT_FILES;
		struct dmaload_event ev;
		double t0;

		sleep_until(at);
		t0 = now_s();
		if (t0 - at > 1e-3)
			atomic_fetch_add(&hit_late, 1);
		set_path(hit_set, f, path, sizeof(path));
		r = dmaload_load_path_sync(dl, path, &o, &ev);
		if (r < 0) {
			snprintf(h->err, sizeof(h->err), "load: %.500s", ev.type ==
				 DMALOAD_EV_ERROR ? ev.message : strerror(-r));
			break;
		}
		h->dus[h->n] = (double)ev.elapsed_ns / 1e3;
		h->us[h->n++] = (now_s() - t0) * 1e6;
		if (!(ev.done_flags & DL_DONE_CACHED))
			snprintf(h->err, sizeof(h->err), "file %u: not a cache hit", f);
		else
			hit_ok(f, ev.fd, expect, h->err, sizeof(h->err));
		close(ev.fd);
		if (h->err[0])
			break;
	}
out:
	free(expect);
	dmaload_close(dl);
	return NULL;
}

static int cmp_double(const void *x, const void *y)
{
	double a = *(const double *)x, b = *(const double *)y;

	return a < b ? -1 : a > b;
}

static void row_hits(unsigned clients, unsigned rate, bool target)
{
	static struct hitter h[MAX_CLIENTS];
	pthread_t t[MAX_CLIENTS];
	double secs = quick ? 0.5 : 2.0, *all, *dall, p50, p99, d50, d99;
	unsigned per = (unsigned)(rate * secs / clients) + 2, n = 0;
	char err[700] = "";

	atomic_store(&hit_late, 0);
	all = calloc((size_t)per * clients, sizeof(*all));
	dall = calloc((size_t)per * clients, sizeof(*dall));
	if (!all || !dall)
		abort();
	for (unsigned i = 0; i < clients; i++) {
		h[i] = (struct hitter){ .i = i, .clients = clients, .rate = rate,
					.start = now_s() + 0.2,
					.secs = secs, .us = all + (size_t)i * per,
					.dus = dall + (size_t)i * per };
		if (i)
			h[i].start = h[0].start;
		if (pthread_create(&t[i], NULL, hit_thread, &h[i]) != 0)
			abort();
	}
	for (unsigned i = 0; i < clients; i++)
		pthread_join(t[i], NULL);
	for (unsigned i = 0; i < clients; i++) {
		if (h[i].err[0] && !err[0])
			snprintf(err, sizeof(err), "client %u: %s", i, h[i].err);
		/* compact: client i's samples follow client i-1's */
		memmove(all + n, h[i].us, h[i].n * sizeof(*all));
		memmove(dall + n, h[i].dus, h[i].n * sizeof(*dall));
		n += h[i].n;
	}
	if (err[0] || !n) {
		printf("| cache hit, %u client%s | **error**: %s | |\n", clients,
		       clients > 1 ? "s" : "", err[0] ? err : "no hits");
		free(all);
		free(dall);
		return;
	}
	qsort(all, n, sizeof(*all), cmp_double);
	qsort(dall, n, sizeof(*dall), cmp_double);
	p50 = all[n / 2];
	p99 = all[((size_t)n * 99 + 99) / 100 - 1];
	d50 = dall[n / 2];
	d99 = dall[((size_t)n * 99 + 99) / 100 - 1];
	printf("| cache hit, %u client%s, %u hits/s offered | p50 %.0f us, p99 %.0f us%s%s "
	       "| %u hits of %u files x 64 KiB in %.1f s, LOAD sent to DONE received (of "
	       "which in the daemon, LOAD decoded to DONE sent: p50 %.0f us, p99 %.0f us); "
	       "%u sends over 1 ms late (client threads on a busy machine) |\n", clients,
	       clients > 1 ? "s" : "", rate, p50, p99,
	       target ? " (target p99 < 200 us): " : "",
	       target ? p99 < 200 ? "met" : "not met" : "", n, HIT_FILES, secs, d50, d99,
	       atomic_load(&hit_late));
	fflush(stdout);
	free(all);
	free(dall);
}

static int start_daemon(const char *tag, const char *cache_limit, char *why, size_t n)
{
	char conf[512];

	snprintf(conf, sizeof(conf), "# written by tests/bench/bench-small\n"
		 "[daemon]\nlog_level = info\n[cache]\ncache_limit = %s\n", cache_limit);
	return daemon_start_conf(&d, tag, conf, why, n);
}

static void rows_hits(const struct set *s)
{
	struct dmaload *dl = NULL;
	char why[512], path[PATH_MAX];

	hit_set = s;
	hit_bytes = malloc((size_t)HIT_FILES * s->size);
	if (!hit_bytes)
		abort();
	if (start_daemon("hits", "1G", why, sizeof(why)) < 0) {
		printf("| cache hit | **error**: daemon: %s | |\n", why);
		free(hit_bytes);
		return;
	}
	/* the first load of each file reads it and keeps it */
	if (dmaload_connect(&dl, d.sock, "fill") < 0) {
		printf("| cache hit | **error**: connect | |\n");
		goto out;
	}
	for (unsigned i = 0; i < HIT_FILES; i++) {
		struct dmaload_opts o;
		struct dmaload_event ev;

		dmaload_opts_init(&o);
		o.exact_size = true;
		set_path(s, i, path, sizeof(path));
		if (dmaload_load_path_sync(dl, path, &o, &ev) < 0) {
			printf("| cache hit | **error**: first load of %s: %s | |\n", path,
			       ev.type == DMALOAD_EV_ERROR ? ev.message : "failed");
			goto out;
		}
		if (!done_ok(s, i, &ev, why, sizeof(why))) {
			printf("| cache hit | **error**: first load: %s | |\n", why);
			close(ev.fd);
			goto out;
		}
		close(ev.fd);
		pattern_fill(s->seed0 + i, 0, hit_bytes + (size_t)i * s->size, s->size);
	}
	row_hits(1, HIT_RATE_ONE, false);
	row_hits(64, HIT_RATE, true);
out:
	dmaload_close(dl);
	daemon_stop(&d);
	daemon_cleanup(&d);
	free(hit_bytes);
	hit_bytes = NULL;
}

int main(int argc, char **argv)
{
	struct set small = { "64 KiB", 10000, 64 << 10, 100000, "s64k" };
	struct set mid = { "1 MiB", 1000, 1 << 20, 200000, "s1m" };
	const char *rows = "small,hits";
	struct rlimit rl;
	char why[512];
	int i;

	daemon_kill_on_signal(&d);
	i = bench_options(argc, argv, &quick, &rows);
	if (i + 1 != argc) {
		fprintf(stderr, "usage: bench-small [--quick] [--rows small,hits] WORKDIR\n");
		return 2;
	}
	if (quick) {
		small.n /= 10;
		mid.n /= 10;
	}
	/* 64 connections and their buffers */
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < 4096) {
		rl.rlim_cur = rl.rlim_max < 4096 ? rl.rlim_max : 4096;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	setenv("DMALOAD_TEST_TMP", argv[i], 1);
	snprintf(files_dir, sizeof(files_dir), "%s/small-files", argv[i]);
	if (mkdir(files_dir, 0755) < 0 && errno != EEXIST) {
		fprintf(stderr, "bench-small: %s: %s\n", files_dir, strerror(errno));
		return 1;
	}
	if (set_make(&small) < 0 || (name_listed(rows, "small") && set_make(&mid) < 0)) {
		fprintf(stderr, "bench-small: cannot make the files under %s\n", files_dir);
		return 1;
	}
	sync();
	printf("\n### Small files and cache hits (tests/bench/bench-small.c)\n\n");
	printf("Default settings (cache_limit 0 for the cold rows); MB = 10^6 bytes. Every "
	       "buffer checked byte for byte inside the timed loop, by both clients.\n\n");
	printf("| Row | Result | Notes |\n|---|---|---|\n");
	fflush(stdout);
	if (name_listed(rows, "small") || name_listed(rows, "small64")) {
		if (start_daemon("small", "0", why, sizeof(why)) < 0) {
			printf("| small files | **error**: daemon: %s | |\n", why);
		} else {
			row_small(&small, 1, true);
			row_small(&small, 8, true);
			if (!name_listed(rows, "small64")) {
				row_small(&mid, 1, false);
				row_small(&mid, 8, false);
			}
			daemon_stop(&d);
			daemon_cleanup(&d);
		}
	}
	if (name_listed(rows, "hits"))
		rows_hits(&small);
	if (!getenv("BENCH_KEEP") || strcmp(getenv("BENCH_KEEP"), "1")) {
		set_unlink(&small);
		set_unlink(&mid);
		rmdir(files_dir);
	}
	return 0;
}
