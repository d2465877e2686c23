/*
 * test-config.c: dmaloadd's config (daemon/config.c) and log level parsing, linked
 * straight against the daemon's objects.
 *
 * Every key is set once in a valid file and read back; every key gets a bad value in
 * a file whose bad line is not the first, and the error must name FILE:LINE with the
 * right line; unknown keys and sections likewise. Sizes are parsed on their own.
 */
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../lib/check.h"
#include "../lib/harness.h"
#include "config.h"
#include "util.h"

static char dir[256];

/* Writes @text into dir/@name; the path into @path. */
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

static void defaults(void)
{
	struct config c;

	config_init(&c);
	CHECK(c.socket == NULL);
	CHECK_U64(c.socket_mode & ~07777u, ==, 0);
	CHECK_U64(c.max_clients, >, 0);
	CHECK_INT(c.log_level, >=, LOG_LVL_ERR);
	CHECK_INT(c.log_level, <=, LOG_LVL_DEBUG);
	CHECK_U64(c.workers, >, 0);
	CHECK_U64(c.chunk_size, >=, 4096);
	CHECKF((c.chunk_size & (c.chunk_size - 1)) == 0, "chunk_size %llu not a power of 2",
	       (unsigned long long)c.chunk_size);
	CHECK_U64(c.queue_depth, >, 0);
	CHECK_U64(c.max_loads, >, 0);
	CHECK_U64(c.max_queued, >, 0);
	CHECK_U64(c.max_detached, ==, 64);
	CHECK_U64(c.idle_timeout, ==, 300);
	CHECK_STR(c.detach_group, "");
	CHECK_U64(c.detach_gid, ==, (gid_t)-1);
	CHECK_INT(c.direct, ==, CONFIG_AUTO);
	CHECK_INT(c.thp, ==, CONFIG_AUTO);
	CHECK_INT(c.loop_hits, ==, CONFIG_AUTO);
	CHECK(c.fixed_buffers == CONFIG_ON || c.fixed_buffers == CONFIG_OFF ||
	      c.fixed_buffers == CONFIG_AUTO);
	config_deinit(&c);
	config_deinit(&c);	/* safe twice */
	CHECK(c.socket == NULL);
}

static void full_file(void)
{
	char path[PATH_MAX], err[512] = "";
	struct config c;
	int r;

	if (!write_file("full.conf",
			"; every key, none at its default\n"
			"# comments of both kinds\n"
			"[daemon]\n"
			"socket = /run/test-dmaloadd/x.sock\n"
			"socket_mode = 0660\n"
			"max_clients = 17\n"
			"log_level = debug\n"
			"workers = 3\n"
			"max_workers = 40\n"
			"workers_per_uid = 5\n"
			"stop_timeout_s = 7\n"
			"idle_timeout = 42\n"
			"detach_group = root\n"
			"\n"
			"[io]\n"
			"chunk_size = 1M\n"
			"queue_depth = 33\n"
			"max_loads = 5\n"
			"max_queued = 9\n"
			"max_detached = 3\n"
			"max_load_size = 1G\n"
			"direct = off\n"
			"thp = off\n"
			"fixed_buffers = on\n"
			"\n"
			"[cache]\n"
			"cache_limit = 3G\n"
			"loop_hits = off\n", path, sizeof(path)))
		return;
	config_init(&c);
	r = config_load(&c, path, err, sizeof(err));
	if (CHECKF(r == 0, "config_load = %d: %s", r, err)) {
		CHECK_STR(c.socket, "/run/test-dmaloadd/x.sock");
		CHECK_U64(c.socket_mode, ==, 0660);
		CHECK_U64(c.max_clients, ==, 17);
		CHECK_INT(c.log_level, ==, LOG_LVL_DEBUG);
		CHECK_U64(c.workers, ==, 3);
		CHECK_U64(c.max_workers, ==, 40);
		CHECK_U64(c.workers_per_uid, ==, 5);
		CHECK_U64(c.stop_timeout_s, ==, 7);
		CHECK_U64(c.idle_timeout, ==, 42);
		CHECK_U64(c.chunk_size, ==, 1 << 20);
		CHECK_U64(c.queue_depth, ==, 33);
		CHECK_U64(c.max_loads, ==, 5);
		CHECK_U64(c.max_queued, ==, 9);
		CHECK_U64(c.max_detached, ==, 3);
		CHECK_STR(c.detach_group, "root");
		CHECK_U64(c.detach_gid, ==, 0);
		CHECK_U64(c.max_load_size, ==, 1ull << 30);
		CHECK_INT(c.direct, ==, CONFIG_OFF);
		CHECK_INT(c.thp, ==, CONFIG_OFF);
		CHECK_INT(c.fixed_buffers, ==, CONFIG_ON);
		CHECK_U64(c.cache_limit, ==, 3ull << 30);
		CHECK_U64(c.cache_limit_pct, ==, 0);
		CHECK_INT(c.loop_hits, ==, CONFIG_OFF);
	}
	{
		char sp[256];

		CHECK_OK(config_socket_path(&c, sp, sizeof(sp)));
		CHECK_STR(sp, "/run/test-dmaloadd/x.sock");
		CHECK_ERR(config_socket_path(&c, sp, 5), -ENAMETOOLONG);
	}
	config_deinit(&c);
	config_deinit(&c);
}

/* A second file changes only what it names; the rest keeps the first file's values. */
static void layered(void)
{
	char p1[PATH_MAX], p2[PATH_MAX], err[512] = "";
	struct config c;

	if (!write_file("l1.conf", "[io]\nqueue_depth = 7\nmax_loads = 2\n", p1, sizeof(p1)) ||
	    !write_file("l2.conf", "[io]\nmax_loads = 3\n[daemon]\nsocket = /a/b\n", p2,
			sizeof(p2)))
		return;
	config_init(&c);
	CHECK_OK(config_load(&c, p1, err, sizeof(err)));
	CHECK_OK(config_load(&c, p2, err, sizeof(err)));
	CHECK_U64(c.queue_depth, ==, 7);
	CHECK_U64(c.max_loads, ==, 3);
	CHECK_STR(c.socket, "/a/b");
	config_deinit(&c);
}

static void accepted_values(void)
{
	static const char *ok[] = {
		"[io]\nchunk_size = 4M\n",
		"[io]\nchunk_size = 4096\n",
		"[io]\nmax_load_size = 0\n",
		"[io]\nmax_inflight = 0\n",
		"[io]\nmax_inflight = 4K\n",
		"[io]\ndirect = auto\n",
		"[io]\nthp = auto\n",
		"[io]\nfixed_buffers = on\n",
		"[io]\nfixed_buffers = off\n",
		"[io]\nfixed_buffers = auto\n",
		"[io]\nmethod = auto\n",
		"[io]\nmethod = cfr\n",
		"[io]\nmethod = direct\n",
		"[io]\nmethod = buffered\n",
		"[io]\nhugetlb = auto\n",
		"[io]\nhugetlb = on\n",
		"[io]\ntarget = auto\n",
		"[io]\ntarget = memfd\n",
		"[io]\ntarget = udmabuf\n",
		"[io]\ntarget = heap:system\n",
		"[io]\nhugetlb = off\n",
		"[io]\npipe_size = 64K\n",
		"[io]\npipe_size = 16M\n",
		"[cache]\ncache_limit = 0\n",
		"[cache]\ncache_limit = 25%\n",
		"[quota]\nmax_loads_per_uid = 0\n",
		"[quota]\nmax_inflight_per_uid = 8G\n",
		"[quota]\nmax_inflight_per_uid = 50%\n",
		"[quota]\nmax_cached_per_uid = 0\n",
		"[quota]\nmax_pinned_per_uid = 0%\n",
		"[quota]\nmax_pinned_per_uid = 100%\n",
		"[quota]\nmax_failures_per_uid = 0\n",
		"[quota]\nmax_failures_per_uid = 1000\n",
		"[cache]\ncache_limit = 0%\n",
		"[cache]\ncache_limit = 512M\n",
		"[daemon]\nlog_level = error\n",
		"[daemon]\nlog_level = warning\n",
		"[daemon]\nlog_level = notice\n",
		"[daemon]\nlog_level = info\n",
		"[daemon]\nsocket_mode = 600\n",
		"[daemon]\ndetach_group = root\n",
		"[daemon]\ndetach_group = 4243\n",
		"[daemon]\ndetach_group = \n",
		"[io]\nmax_detached = 0\n",
		"[io]\nmax_detached = 65536\n",
		"[daemon]\nidle_timeout = 0\n",
		"[daemon]\nidle_timeout = 86400\n",
		"",
		"; only a comment\n",
	};
	char path[PATH_MAX], err[512];

	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		struct config c;
		int r;

		if (!write_file("ok.conf", ok[i], path, sizeof(path)))
			return;
		config_init(&c);
		err[0] = '\0';
		r = config_load(&c, path, err, sizeof(err));
		CHECKF(r == 0, "\"%s\" refused (%d): %s", ok[i], r, err);
		if (i == 0)
			CHECK_U64(c.chunk_size, ==, 4u << 20);
		if (strstr(ok[i], "heap:system")) {
			CHECK_INT(c.target, ==, DL_TARGET_HEAP);
			CHECK_STR(c.heap, "system");
		} else if (strstr(ok[i], "target = udmabuf")) {
			CHECK_INT(c.target, ==, DL_TARGET_UDMABUF);
		}
		if (strstr(ok[i], "detach_group = root"))
			CHECK(c.detach_gid == 0 && !strcmp(c.detach_group, "root"));
		if (strstr(ok[i], "detach_group = 4243"))
			CHECK(c.detach_gid == 4243 && !strcmp(c.detach_group, "4243"));
		if (strstr(ok[i], "detach_group = \n"))
			CHECK(c.detach_gid == (gid_t)-1 && !c.detach_group[0]);
		if (strstr(ok[i], "max_detached = 0"))
			CHECK_U64(c.max_detached, ==, 0);
		if (strstr(ok[i], "idle_timeout = 0"))
			CHECK_U64(c.idle_timeout, ==, 0);
		if (strstr(ok[i], "idle_timeout = 86400"))
			CHECK_U64(c.idle_timeout, ==, 86400);
		if (strstr(ok[i], "25%"))
			CHECK(c.cache_limit_pct == 25 && c.cache_limit == 0);
		if (strstr(ok[i], "512M"))
			CHECK(c.cache_limit_pct == 0 && c.cache_limit == 512ull << 20);
		config_deinit(&c);
	}
}

/*
 * Loads a file of @lines_before filler lines (comments, blanks, valid keys of
 * @section), then "[@section]", then "key = value" on the next line; must fail with
 * -EINVAL and "PATH:LINE" naming exactly that line.
 */
static void expect_bad(const char *section, const char *key, const char *value)
{
	char text[1024], path[PATH_MAX], err[512] = "", want[PATH_MAX + 16];
	struct config c;
	const char *hit;
	int r, line;

	/* lines: 1 comment, 2 blank, 3 [daemon], 4 log_level, 5 ; comment, 6 [section],
	 * 7 the bad key */
	snprintf(text, sizeof(text),
		 "# a config with one bad line\n"
		 "\n"
		 "[daemon]\n"
		 "log_level = info\n"
		 "; the next section holds the bad key\n"
		 "[%s]\n"
		 "%s = %s\n"
		 "; trailing\n", section, key, value);
	line = 7;
	if (!write_file("bad.conf", text, path, sizeof(path)))
		return;
	config_init(&c);
	r = config_load(&c, path, err, sizeof(err));
	config_deinit(&c);
	if (!CHECKF(r == -EINVAL, "[%s] %s = \"%s\": config_load = %d (%s)", section, key,
		    value, r, err))
		return;
	snprintf(want, sizeof(want), "%s:%d", path, line);
	hit = strstr(err, want);
	CHECKF(hit && (hit[strlen(want)] < '0' || hit[strlen(want)] > '9'),
	       "[%s] %s = \"%s\": message \"%s\" does not name %s", section, key, value,
	       err, want);
}

static void bad_values(void)
{
	static const char *bad[][3] = {
		{ "daemon", "socket", "relative/path.sock" },
		{ "daemon", "socket", "/a/very/long/path/that/does/not/fit/into/sun_path/at/all/"
				       "because/it/is/longer/than/one/hundred/and/eight/bytes.sock" },
		{ "quota", "max_loads_per_uid", "-1" },
		{ "quota", "max_inflight_per_uid", "101%" },
		{ "quota", "max_cached_per_uid", "half" },
		{ "quota", "max_pinned_per_uid", "%" },
		{ "quota", "max_failures_per_uid", "-1" },
		{ "quota", "max_failures_per_uid", "fast" },
		{ "daemon", "socket_mode", "999" },
		{ "daemon", "socket_mode", "rw-rw-rw-" },
		{ "daemon", "socket_mode", "" },
		{ "daemon", "max_clients", "many" },
		{ "daemon", "max_clients", "-1" },
		{ "daemon", "max_clients", "12x" },
		{ "daemon", "max_clients", "0" },
		{ "daemon", "log_level", "loud" },
		{ "daemon", "log_level", "" },
		{ "daemon", "idle_timeout", "1m" },
		{ "daemon", "idle_timeout", "-1" },
		{ "daemon", "idle_timeout", "86401" },
		{ "daemon", "idle_timeout", "" },
		{ "daemon", "workers", "two" },
		{ "daemon", "workers", "-1" },
		{ "daemon", "workers", "0" },
		{ "daemon", "max_workers", "0" },
		{ "daemon", "max_workers", "1025" },
		{ "daemon", "workers_per_uid", "0" },
		{ "daemon", "workers_per_uid", "all" },
		{ "daemon", "stop_timeout_s", "-1" },
		{ "daemon", "stop_timeout_s", "3601" },
		{ "daemon", "detach_group", "no-such-group-dmaload" },
		{ "daemon", "detach_group", "-5" },
		{ "daemon", "detach_group", "4294967295" },
		{ "daemon", "detach_group", "a-group-name-far-too-long-for-any-system-to-have-"
					    "been-given-it-0123456789" },
		{ "io", "max_detached", "many" },
		{ "io", "max_detached", "-1" },
		{ "io", "max_detached", "65537" },
		{ "io", "max_detached", "" },
		{ "io", "chunk_size", "0" },
		{ "io", "chunk_size", "4X" },
		{ "io", "chunk_size", "-4M" },
		{ "io", "chunk_size", "" },
		{ "io", "queue_depth", "deep" },
		{ "io", "queue_depth", "-1" },
		{ "io", "queue_depth", "0" },
		{ "io", "queue_depth", "99999999999999999999" },
		{ "io", "max_loads", "x" },
		{ "io", "max_loads", "-3" },
		{ "io", "max_queued", "1.5" },
		{ "io", "max_queued", "-1" },
		{ "io", "max_load_size", "4X" },
		{ "io", "max_load_size", "-1" },
		{ "io", "max_load_size", "99999999999999999999" },
		{ "io", "direct", "sometimes" },
		{ "io", "direct", "" },
		{ "io", "thp", "on" },
		{ "io", "thp", "always" },
		{ "io", "fixed_buffers", "maybe" },
		{ "io", "fixed_buffers", "sometimes" },
		{ "cache", "loop_hits", "on" },
		{ "cache", "loop_hits", "yes" },
		{ "cache", "cache_limit", "lots" },
		{ "cache", "cache_limit", "95%" },
		{ "cache", "cache_limit", "%" },
		{ "cache", "cache_limit", "-5%" },
		{ "cache", "cache_limit", "1.5%" },
		{ "cache", "cache_limit", "10%%" },
		{ "cache", "cache_limit", "" },
		{ "cache", "size", "1G" },
		{ "io", "method", "fast" },
		{ "io", "method", "" },
		{ "io", "method", "splice" },
		{ "io", "target", "heap" },
		{ "io", "target", "heap:" },
		{ "io", "target", "heap:../udmabuf" },
		{ "io", "target", "heap:a/b" },
		{ "io", "target", "dmabuf" },
		{ "io", "hugetlb", "maybe" },
		{ "io", "hugetlb", "2M" },
		{ "io", "pipe_size", "4K" },
		{ "io", "pipe_size", "3M" },
		{ "io", "pipe_size", "128M" },
	};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]) && !check_failed(); i++)
		expect_bad(bad[i][0], bad[i][1], bad[i][2]);
}

static void unknown_key(void)
{
	expect_bad("daemon", "sockett", "/x");
	expect_bad("io", "chunksize", "4M");
	expect_bad("io", "socket", "/x");	/* a [daemon] key in [io] */
	expect_bad("daemon", "queue_depth", "4");	/* an [io] key in [daemon] */
	expect_bad("io", "detach_group", "root");	/* a [daemon] key in [io] */
}

static void unknown_section(void)
{
	expect_bad("cache", "size", "1G");
	expect_bad("daemon.extra", "workers", "2");
}

/* A key before any section header belongs to no section: an error at its line. */
static void no_section(void)
{
	char path[PATH_MAX], err[512] = "", want[PATH_MAX + 8];
	struct config c;
	int r;

	if (!write_file("nosec.conf", "; first\nworkers = 2\n[daemon]\n", path, sizeof(path)))
		return;
	config_init(&c);
	r = config_load(&c, path, err, sizeof(err));
	config_deinit(&c);
	CHECKF(r == -EINVAL, "config_load = %d (%s)", r, err);
	snprintf(want, sizeof(want), "%s:2", path);
	CHECKF(strstr(err, want), "message \"%s\" does not name %s", err, want);
}

static void syntax_error(void)
{
	char path[PATH_MAX], err[512] = "", want[PATH_MAX + 8];
	struct config c;
	int r;

	if (!write_file("syntax.conf", "[daemon]\nworkers = 2\nthis line has no equals sign\n",
			path, sizeof(path)))
		return;
	config_init(&c);
	r = config_load(&c, path, err, sizeof(err));
	config_deinit(&c);
	CHECKF(r == -EINVAL, "config_load = %d (%s)", r, err);
	snprintf(want, sizeof(want), "%s:3", path);
	CHECKF(strstr(err, want), "message \"%s\" does not name %s", err, want);
}

static void missing_file(void)
{
	char path[PATH_MAX], err[512] = "";
	struct config c;
	int r;

	snprintf(path, sizeof(path), "%s/does-not-exist.conf", dir);
	config_init(&c);
	r = config_load(&c, path, err, sizeof(err));
	config_deinit(&c);
	CHECK_ERR(r, -ENOENT);
	CHECKF(strstr(err, path), "message \"%s\" does not name the file", err);
}

/* A config path that is a directory or a FIFO is refused (naming the path and what it
 * is) without a byte read: a directory would read as an empty config, a FIFO would
 * block (the case's watchdog turns a hang into a FAIL). */
static void not_a_file(void)
{
	char path[PATH_MAX], err[512] = "";
	struct config c;
	int r;

	snprintf(path, sizeof(path), "%s/dir.conf", dir);
	if (!CHECKF(mkdir(path, 0755) == 0, "mkdir %s: %s", path, strerror(errno)))
		return;
	config_init(&c);
	c.max_loads = 7;
	r = config_load(&c, path, err, sizeof(err));
	CHECK_ERR(r, -EISDIR);
	CHECK_U64(c.max_loads, ==, 7);
	CHECKF(strstr(err, path) && strstr(err, "directory"),
	       "message \"%s\" does not name the file and what it is", err);
	config_deinit(&c);
	rmdir(path);

	snprintf(path, sizeof(path), "%s/fifo.conf", dir);
	if (!CHECKF(mkfifo(path, 0600) == 0, "mkfifo %s: %s", path, strerror(errno)))
		return;
	config_init(&c);
	err[0] = '\0';
	r = config_load(&c, path, err, sizeof(err));
	CHECK_ERR(r, -EINVAL);
	CHECKF(strstr(err, path) && strstr(err, "FIFO"),
	       "message \"%s\" does not name the file and what it is", err);
	config_deinit(&c);
	unlink(path);
}

/* SIGHUP: detach_group and max_detached take effect at once. */
static void reload_detach(void)
{
	char path[PATH_MAX], err[512] = "";
	struct config live, next;

	if (!write_file("detach.conf", "[daemon]\ndetach_group = root\n[io]\n"
			"max_detached = 5\n", path, sizeof(path)))
		return;
	config_init(&live);
	config_init(&next);
	CHECK_OK(config_load(&next, path, err, sizeof(err)));
	config_reload(&live, &next);
	CHECK_U64(live.max_detached, ==, 5);
	CHECK_U64(live.detach_gid, ==, 0);
	CHECK_STR(live.detach_group, "root");
	config_deinit(&next);
	config_init(&next);
	config_reload(&live, &next);	/* back to none */
	CHECK_U64(live.detach_gid, ==, (gid_t)-1);
	CHECK_STR(live.detach_group, "");
	CHECK_U64(live.max_detached, ==, 64);
	config_deinit(&next);
	config_deinit(&live);
}

static void sizes(void)
{
	static const struct { const char *s; uint64_t v; } ok[] = {
		{ "4M", 4ull << 20 }, { "512k", 512ull << 10 }, { "512K", 512ull << 10 },
		{ "1G", 1ull << 30 }, { "1g", 1ull << 30 }, { "0", 0 }, { "12", 12 },
		{ "4m", 4ull << 20 }, { "2T", 2ull << 40 },
		{ "18446744073709551615", UINT64_MAX },
		{ "16777215T", 16777215ull << 40 },
	};
	static const char *bad[] = {
		"", "4X", "-1", "M", "4MM", "1.5G", " ", "0x10", "16777216T",
		"17179869184G", "18446744073709551616", "99999999999999999999999",
		"4 M", "+4M",
	};

	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		uint64_t v = 12345;
		int r = parse_size(ok[i].s, &v);

		CHECKF(r == 0 && v == ok[i].v, "\"%s\": r=%d v=%llu, expected %llu", ok[i].s, r,
		       (unsigned long long)v, (unsigned long long)ok[i].v);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		uint64_t v = 0;
		int r = parse_size(bad[i], &v);

		CHECKF(r == -EINVAL, "\"%s\": r=%d v=%llu, expected -EINVAL", bad[i], r,
		       (unsigned long long)v);
	}
}

static void log_levels(void)
{
	static const struct { const char *s; enum log_level l; } ok[] = {
		{ "error", LOG_LVL_ERR }, { "warning", LOG_LVL_WARNING },
		{ "notice", LOG_LVL_NOTICE }, { "info", LOG_LVL_INFO },
		{ "debug", LOG_LVL_DEBUG },
	};
	static const char *bad[] = { "", "loud", "err", "debug2", "7" };

	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		enum log_level l = 0;
		int r = log_parse_level(ok[i].s, &l);

		CHECKF(r == 0 && l == ok[i].l, "\"%s\": r=%d level=%d", ok[i].s, r, l);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		enum log_level l = 0;

		CHECKF(log_parse_level(bad[i], &l) == -EINVAL, "\"%s\" accepted", bad[i]);
	}
}

/* A quota as a size, a percentage of a whole, or no limit. */
static void shares(void)
{
	struct config c;

	config_init(&c);
	/* The defaults: no bytes-in-flight limit, all of the cache, half of it pinned. */
	CHECK_U64(config_share_bytes(&c.max_inflight_per_uid, 1000), ==, UINT64_MAX);
	CHECK_U64(config_share_bytes(&c.max_cached_per_uid, 1000), ==, 1000);
	CHECK_U64(config_share_bytes(&c.max_pinned_per_uid, 1000), ==, 500);
	CHECK_U64(c.max_loads_per_uid, ==, 256);
	CHECK_U64(c.max_failures_per_uid, ==, 50);
	c.max_pinned_per_uid = (struct config_share){ .bytes = 4096 };
	CHECK_U64(config_share_bytes(&c.max_pinned_per_uid, 1000), ==, 4096);
	c.max_pinned_per_uid = (struct config_share){ .is_pct = true };
	CHECK_U64(config_share_bytes(&c.max_pinned_per_uid, 1000), ==, 0);
	config_deinit(&c);
}

/* The shipped conf/dmaloadd.conf must load and describe the built-in defaults: any
 * key it sets uncommented must hold the default value. */
static void shipped_conf(void)
{
	const char *path = "conf/dmaloadd.conf";
	char err[512] = "";
	struct config def, c;
	int r;

	if (access(path, R_OK) < 0) {
		check_skip("%s not found (run from the source tree)", path);
		return;
	}
	config_init(&def);
	config_init(&c);
	r = config_load(&c, path, err, sizeof(err));
	if (CHECKF(r == 0, "config_load(%s) = %d: %s", path, r, err)) {
		CHECK_U64(c.socket_mode, ==, def.socket_mode);
		CHECK_U64(c.max_clients, ==, def.max_clients);
		CHECK_INT(c.log_level, ==, def.log_level);
		CHECK_U64(c.workers, ==, def.workers);
		CHECK_U64(c.chunk_size, ==, def.chunk_size);
		CHECK_U64(c.queue_depth, ==, def.queue_depth);
		CHECK_U64(c.max_loads, ==, def.max_loads);
		CHECK_U64(c.max_queued, ==, def.max_queued);
		CHECK_U64(c.max_detached, ==, def.max_detached);
		CHECK_U64(c.detach_gid, ==, def.detach_gid);
		CHECK_U64(c.max_load_size, ==, def.max_load_size);
		CHECK_INT(c.direct, ==, def.direct);
		CHECK_INT(c.thp, ==, def.thp);
		CHECK_INT(c.fixed_buffers, ==, def.fixed_buffers);
		CHECK_U64(c.cache_limit, ==, def.cache_limit);
		CHECK_U64(c.cache_limit_pct, ==, def.cache_limit_pct);
		CHECK_INT(c.loop_hits, ==, def.loop_hits);
		CHECK_U64(c.max_failures_per_uid, ==, def.max_failures_per_uid);
		CHECK_U64(c.max_loads_per_uid, ==, def.max_loads_per_uid);
	}
	config_deinit(&c);
	config_deinit(&def);
}

int main(void)
{
	int r;

	check_init("config");
	r = tdir_create(dir, sizeof(dir), "config");
	if (r < 0) {
		check_begin("temp dir");
		check_fail(__FILE__, __LINE__, "tdir_create: %s", strerror(-r));
		check_end();
		return 1;
	}

	CASE(defaults(), "config_init defaults are sane; deinit twice is safe");
	CASE(full_file(), "config_load of a file setting every key");
	CASE(layered(), "a second file changes only its keys");
	CASE(accepted_values(), "valid values accepted (4M chunk, 0 max_load_size, levels)");
	CASE(bad_values(), "every key's bad value -> EINVAL naming FILE:LINE");
	CASE(unknown_key(), "unknown key -> EINVAL naming FILE:LINE");
	CASE(unknown_section(), "unknown section -> EINVAL naming FILE:LINE");
	CASE(no_section(), "key before any section -> EINVAL naming FILE:LINE");
	CASE(syntax_error(), "line without '=' -> EINVAL naming FILE:LINE");
	CASE(missing_file(), "missing file -> ENOENT with its name");
	CASE(not_a_file(), "a directory or FIFO as config -> refused with its name, no block");
	CASE(reload_detach(), "SIGHUP takes detach_group and max_detached at once");
	CASE(sizes(), "parse_size: suffixes, overflow, garbage");
	CASE(log_levels(), "log_parse_level");
	CASE(shares(), "[quota] shares: defaults, sizes, percentages, no limit");
	CASE(shipped_conf(), "shipped conf/dmaloadd.conf loads and matches the defaults");

	tdir_remove(dir);
	return check_finish();
}
