/*
 * test-limit.c: token buckets and the [limits] section (daemon/limit.c), linked
 * straight against the daemon's objects.
 *
 * Buckets: a new bucket is full; waits are exact to the nanosecond (rounded up);
 * refills never pass the burst; over any simulated stretch, what a greedy taker gets
 * is at most burst + rate * time and, taking whenever allowed, at least that minus
 * one chunk, also when woken milliseconds late (what a late waiter is owed, bounded
 * by BUCKET_CATCHUP_NS); unlimited buckets never wait; new rates keep the tokens held.
 * The parser: every key, both rule forms it refuses, names and numbers, the lookup
 * order, and errors through config_load naming FILE:LINE; config_reload says when the
 * limits changed.
 */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "../lib/check.h"
#include "../lib/harness.h"
#include "config.h"
#include "limit.h"

#define NS 1000000000ull

static char dir[256];

static void bucket_basics(void)
{
	struct bucket b;

	bucket_init(&b, 1000, 500, 10 * NS);
	CHECK_U64(b.tokens, ==, 500);
	CHECK_U64(bucket_wait(&b, 500, 10 * NS), ==, 0);
	bucket_take(&b, 500);
	CHECK_U64(b.tokens, ==, 0);
	/* 100 bytes at 1000 B/s: 0.1 s */
	CHECK_U64(bucket_wait(&b, 100, 10 * NS), ==, NS / 10);
	/* half-way there */
	CHECK_U64(bucket_wait(&b, 100, 10 * NS + NS / 20), ==, NS / 20);
	CHECK_U64(bucket_wait(&b, 100, 10 * NS + NS / 10), ==, 0);
	CHECK_U64(b.tokens, ==, 100);
	/* a long pause fills it to the burst, no more */
	bucket_refill(&b, 3600 * NS);
	CHECK_U64(b.tokens, ==, 500);
	/* more than the burst is asked as the burst: never waits forever */
	CHECK_U64(bucket_wait(&b, 10000, 3600 * NS), ==, 0);
	/* taking more than it holds empties it */
	bucket_take(&b, 10000);
	CHECK_U64(b.tokens, ==, 0);
}

static void bucket_rounding(void)
{
	struct bucket b;

	/* 3 bytes/s: 1 byte takes 333333333.33 ns: waits round up, and fractions of a
	 * byte carry over between refills */
	bucket_init(&b, 3, 10, 0);
	bucket_take(&b, 10);
	CHECK_U64(bucket_wait(&b, 1, 0), ==, 333333334);
	for (uint64_t t = 1; t <= NS; t += 1000)
		bucket_refill(&b, t);
	bucket_refill(&b, NS);
	CHECK_U64(b.tokens, ==, 3);
}

static void bucket_unlimited(void)
{
	struct bucket b;

	bucket_init(&b, 0, 0, 5);
	CHECK_U64(bucket_wait(&b, 1ull << 40, 5), ==, 0);
	bucket_take(&b, 1ull << 40);
	CHECK_U64(bucket_wait(&b, 1ull << 40, 6), ==, 0);
	/* from unlimited to limited: starts full */
	bucket_set(&b, 100, 50, 7);
	CHECK_U64(b.tokens, ==, 50);
	bucket_take(&b, 30);
	/* a new rate keeps what it holds; a smaller burst cuts it */
	bucket_set(&b, 200, 60, 7);
	CHECK_U64(b.tokens, ==, 20);
	bucket_set(&b, 200, 10, 7);
	CHECK_U64(b.tokens, ==, 10);
}

/* A greedy taker of @chunk-byte chunks, woken exactly when bucket_wait says, over
 * @secs: gets at most burst + rate * secs, and at least that minus one chunk. */
static void bucket_simulated(uint64_t rate, uint64_t burst, uint64_t chunk, unsigned secs)
{
	struct bucket b;
	uint64_t now = 1000, end = 1000 + secs * NS, got = 0;

	bucket_init(&b, rate, burst, now);
	while (now < end) {
		uint64_t w = bucket_wait(&b, chunk, now);

		if (w) {
			now += w;
			continue;
		}
		bucket_take(&b, chunk);
		got += chunk;
	}
	CHECKF(got <= burst + rate * secs + chunk, "rate %llu burst %llu chunk %llu: %llu "
	       "bytes in %u s", (unsigned long long)rate, (unsigned long long)burst,
	       (unsigned long long)chunk, (unsigned long long)got, secs);
	CHECKF(got + 2 * chunk >= burst + rate * secs, "rate %llu burst %llu chunk %llu: "
	       "only %llu bytes in %u s", (unsigned long long)rate,
	       (unsigned long long)burst, (unsigned long long)chunk,
	       (unsigned long long)got, secs);
}

static void bucket_rates(void)
{
	bucket_simulated(50000000, 1 << 20, 256 << 10, 10);
	bucket_simulated(200000000, 4 << 20, 4 << 20, 10);
	bucket_simulated(800000000, 8 << 20, 4 << 20, 5);
	bucket_simulated(7, 4096, 4096, 3000);
	bucket_simulated(3ull << 30, 64 << 20, 4 << 20, 100);
}

/* The same taker woken @late ns after bucket_wait said (the loop's timers fire whole
 * milliseconds late): it still gets burst + rate * secs within two chunks, and never
 * more than burst + rate * (secs + BUCKET_CATCHUP_NS) + a chunk. */
static void bucket_late(uint64_t rate, uint64_t burst, uint64_t chunk, unsigned secs,
			uint64_t late)
{
	struct bucket b;
	uint64_t now = 1000, end = 1000 + secs * NS, got = 0, wakes = 0;
	unsigned __int128 most;

	bucket_init(&b, rate, burst, now);
	while (now < end) {
		uint64_t w = bucket_wait(&b, chunk, now);

		if (w) {
			now += w + late;
			wakes++;
			continue;
		}
		bucket_take(&b, chunk);
		got += chunk;
	}
	most = burst + (unsigned __int128)rate * (secs * NS + BUCKET_CATCHUP_NS) / NS + chunk;
	CHECKF(got <= most, "rate %llu burst %llu chunk %llu late %llu ns: %llu bytes in "
	       "%u s", (unsigned long long)rate, (unsigned long long)burst,
	       (unsigned long long)chunk, (unsigned long long)late,
	       (unsigned long long)got, secs);
	CHECKF(got + 2 * chunk + late * rate / NS >= burst + rate * secs,
	       "rate %llu burst %llu chunk %llu late %llu ns: only %llu bytes in %u s "
	       "(%llu wake-ups)", (unsigned long long)rate, (unsigned long long)burst,
	       (unsigned long long)chunk, (unsigned long long)late,
	       (unsigned long long)got, secs, (unsigned long long)wakes);
}

static void bucket_catchup(void)
{
	struct bucket b;
	uint64_t w, t;

	/* the bench's worst case before: 2 GB/s, a 1 MiB burst cut into 256 KiB chunks,
	 * woken 1 ms late (epoll's granularity) and 3 ms late (a busy loop) */
	bucket_late(2000000000, 1 << 20, 256 << 10, 2, 1000000);
	bucket_late(2000000000, 1 << 20, 256 << 10, 2, 3000000);
	bucket_late(800000000, 1 << 20, 256 << 10, 2, 1000000);
	bucket_late(50000000, 1 << 20, 256 << 10, 4, 1000000);
	/* later than the catch-up: owed BUCKET_CATCHUP_NS' worth beyond the burst, no more */
	bucket_init(&b, 1000000000, 1 << 20, 0);
	bucket_take(&b, 1 << 20);
	w = bucket_wait(&b, 1 << 20, 0);
	CHECK_U64(w, ==, (1ull << 20));		/* 1 byte per ns */
	bucket_refill(&b, w + NS);
	CHECK_U64(b.tokens, ==, (1ull << 20) + BUCKET_CATCHUP_NS);
	/* what it is owed stays until taken, and grows no further */
	CHECK_U64(bucket_wait(&b, 1 << 20, w + NS), ==, 0);
	bucket_refill(&b, w + 2 * NS);
	CHECK_U64(b.tokens, ==, (1ull << 20) + BUCKET_CATCHUP_NS);
	bucket_take(&b, BUCKET_CATCHUP_NS);
	CHECK_U64(b.tokens, ==, 1ull << 20);
	/* nobody waiting: a long pause fills it to the burst only */
	bucket_take(&b, 1 << 20);
	bucket_refill(&b, w + 3600 * NS);
	CHECK_U64(b.tokens, ==, 1ull << 20);
	/* a waiter woken early is owed nothing extra: the burst caps it as before */
	bucket_take(&b, 1 << 20);
	t = w + 3600 * NS;
	CHECK_U64(bucket_wait(&b, 4096, t), ==, 4096);
	bucket_refill(&b, t + 2048);
	CHECK_U64(b.tokens, ==, 2048);
	bucket_refill(&b, t + 4096);
	CHECK_U64(b.tokens, ==, 4096);
}

/* ---- the parser ---------------------------------------------------------------- */

static void parse_keys(void)
{
	struct limits l;
	const char *what = NULL;
	uint64_t rate, burst;
	gid_t groups[] = { 44, 45 };

	limits_init(&l);
	CHECK_OK(limits_parse(&l, "default_rate", "50M", &what));
	CHECK_OK(limits_parse(&l, "default_burst", "1M", &what));
	CHECK_OK(limits_parse(&l, "global_rate", "2G", &what));
	CHECK_OK(limits_parse(&l, "global_burst", "8M", &what));
	CHECK_U64(l.default_rate, ==, 50ull << 20);
	CHECK_U64(l.default_burst, ==, 1 << 20);
	CHECK_U64(l.global_rate, ==, 2ull << 30);
	CHECK_U64(l.global_burst, ==, 8 << 20);
	CHECK_OK(limits_parse(&l, "uid 1000", "200M 4M", &what));
	CHECK_OK(limits_parse(&l, "uid root", "300M", &what));
	CHECK_OK(limits_parse(&l, "gid 45", "100M  64K", &what));
	CHECK_OK(limits_parse(&l, "gid 44", "10M", &what));
	CHECK_OK(limits_parse(&l, "name preloader", "20M 1M", &what));
	CHECK_OK(limits_parse(&l, "name free", "0", &what));
	CHECK_U64(l.n_rules, ==, 6);
	CHECK_U64(l.rules[1].id, ==, 0);		/* root */

	/* name first, then uid, then gid (first in the file), then the default */
	CHECK(limits_lookup(&l, "preloader", 1000, 1, NULL, 0, 4096, &rate, &burst) ==
	      &l.rules[4]);
	CHECK_U64(rate, ==, 20 << 20);
	CHECK(limits_lookup(&l, "other", 1000, 1, NULL, 0, 4096, &rate, &burst) ==
	      &l.rules[0]);
	CHECK_U64(burst, ==, 4 << 20);
	CHECK(limits_lookup(&l, "", 0, 1, NULL, 0, 4096, &rate, &burst) == &l.rules[1]);
	CHECK_U64(burst, ==, 4096);			/* none given: one chunk */
	CHECK(limits_lookup(&l, "", 7, 1, groups, 2, 4096, &rate, &burst) == &l.rules[2]);
	CHECK_U64(burst, ==, 64 << 10);
	CHECK(limits_lookup(&l, "", 7, 44, NULL, 0, 4096, &rate, &burst) == &l.rules[3]);
	CHECK(limits_lookup(&l, "free", 1000, 1, NULL, 0, 4096, &rate, &burst) ==
	      &l.rules[5]);
	CHECK_U64(rate, ==, 0);
	CHECK(limits_lookup(&l, NULL, 7, 7, NULL, 0, 4096, &rate, &burst) == NULL);
	CHECK_U64(rate, ==, 50ull << 20);
	CHECK_U64(burst, ==, 1 << 20);
	limits_deinit(&l);
	limits_deinit(&l);
	CHECK(l.rules == NULL);
}

static void parse_errors(void)
{
	static const char *const bad[][2] = {
		{ "default_rate", "fast" }, { "default_rate", "-1" },
		{ "default_burst", "100" }, { "global_burst", "1K" },
		{ "global_rate", "" }, { "uid", "1000 = 200M 4M" },
		{ "gid", "video = 1M" }, { "name", "x = 1M" },
		{ "uid 1000", "" }, { "uid 1000", "1M 2M 3M" }, { "uid 1000", "1M 1K" },
		{ "uid no-such-user-dmaload", "1M" }, { "gid no-such-group-dmaload", "1M" },
		{ "name a b", "1M" }, { "name 0123456789012345678901234567890123", "1M" },
		{ "rate", "1M" }, { "uid -5", "1M" },
	};
	struct limits l;

	limits_init(&l);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		const char *what = NULL;

		CHECKF(limits_parse(&l, bad[i][0], bad[i][1], &what) == -EINVAL && what &&
		       *what, "'%s = %s' accepted", bad[i][0], bad[i][1]);
	}
	CHECK_U64(l.n_rules, ==, 0);
	limits_deinit(&l);
}

static bool write_file(const char *name, const char *text, char *path, size_t len)
{
	FILE *f;

	snprintf(path, len, "%s/%s", dir, name);
	f = fopen(path, "we");
	if (!CHECKF(f, "fopen %s: %s", path, strerror(errno)))
		return false;
	fputs(text, f);
	fclose(f);
	return true;
}

static void config_file(void)
{
	char path[PATH_MAX], err[512] = "", want[PATH_MAX + 8];
	struct config c, next;

	if (!write_file("limits.conf", "[io]\nmax_inflight = 64M\n[limits]\n"
			"default_rate = 50M\nname x = 1M 8K\n", path, sizeof(path)))
		return;
	config_init(&c);
	CHECK_OK(config_load(&c, path, err, sizeof(err)));
	CHECK_U64(c.max_inflight, ==, 64 << 20);
	CHECK_U64(c.limits.default_rate, ==, 50 << 20);
	CHECK_U64(c.limits.n_rules, ==, 1);

	/* the same again: nothing changed */
	config_init(&next);
	CHECK_OK(config_load(&next, path, err, sizeof(err)));
	CHECK(!config_reload(&c, &next));
	config_deinit(&next);
	/* another rate: changed, and taken over */
	if (write_file("limits2.conf", "[limits]\ndefault_rate = 10M\n[io]\nmax_loads = 3\n",
		       path, sizeof(path))) {
		config_init(&next);
		CHECK_OK(config_load(&next, path, err, sizeof(err)));
		CHECK(config_reload(&c, &next));
		config_deinit(&next);
		CHECK_U64(c.limits.default_rate, ==, 10 << 20);
		CHECK_U64(c.limits.n_rules, ==, 0);
		CHECK_U64(c.max_loads, ==, 3);
	}
	config_deinit(&c);

	/* an error names FILE:LINE */
	if (write_file("bad.conf", "[limits]\ndefault_rate = 1M\n\nuid:1000 = 1M\n", path,
		       sizeof(path))) {
		config_init(&c);
		CHECK_ERR(config_load(&c, path, err, sizeof(err)), -EINVAL);
		snprintf(want, sizeof(want), "%s:4: ", path);
		CHECKF(strncmp(err, want, strlen(want)) == 0, "error '%s', expected it to "
		       "start with '%s'", err, want);
		config_deinit(&c);
	}
}

int main(void)
{
	int r;

	check_init("limit");
	r = tdir_create(dir, sizeof(dir), "limit");
	if (r < 0) {
		check_begin("temp dir");
		check_fail(__FILE__, __LINE__, "tdir_create: %s", strerror(-r));
		check_end();
		return 1;
	}
	CASE(bucket_basics(), "bucket: full at start, exact waits, refill up to the burst");
	CASE(bucket_rounding(), "bucket: waits round up, byte fractions carry over");
	CASE(bucket_unlimited(), "bucket: rate 0 never waits; new rates keep the tokens");
	CASE(bucket_rates(), "bucket: a greedy taker gets burst + rate * time, within a "
	     "chunk");
	CASE(bucket_catchup(), "bucket: a waiter woken late keeps what came since it was "
	     "due, BUCKET_CATCHUP_NS' worth at most; an idle bucket stops at the burst");
	CASE(parse_keys(), "[limits]: every key, rules by name, uid and gid, lookup order");
	CASE(parse_errors(), "[limits]: bad values and the 'uid:1000' form are refused");
	CASE(config_file(), "[limits] through config_load and config_reload; FILE:LINE");
	tdir_remove(dir);
	return check_finish();
}
