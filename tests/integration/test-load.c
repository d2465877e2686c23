/*
 * test-load.c: the bytes a load delivers, against the real daemon.
 *
 * Files of sizes around the page and sector boundaries (0, 1, 4095, 4096, 4097,
 * 1 MiB + 3, 64 MiB + 1), loaded by path and by fd, with method auto, buffered, direct
 * and cfr: the buffer must be a sealed memfd of the file's size holding its bytes (a
 * pattern that catches misplaced chunks). Then ranges: aligned and unaligned offsets
 * and lengths, the empty range at EOF. The method reported in DONE is checked where it
 * is determined: buffered and cfr when asked; direct when asked with an offset
 * aligned to the filesystem's O_DIRECT alignment (the temp dir is on ext4, 512 bytes);
 * for an unaligned offset, direct asked is an ERROR. All of it twice: against a
 * daemon with 4 KiB-page buffers and one with hugetlb buffers (DONE must say which;
 * cfr always gets 4 KiB pages, splice cannot fill huge ones).
 * Also: the HELLO reply, ACCEPTED and PROGRESS events, and STATUS counters.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "../lib/check.h"
#include "../lib/harness.h"
#include "../lib/loads.h"

#define SUITE "load"

/* The hugetlb pass: the biggest file, a few times over, fits in the pool. */
#define HUGE_PAGES 128

static struct test_daemon d;
static struct dmaload *dl;
static bool on_ext4;
static bool huge_pass;		/* the daemon was told hugetlb = on */

/* The buffer kind DONE reports: 4 KiB pages in the 4K pass; huge pages in the hugetlb
 * pass for every non-empty load but cfr's (splice cannot write into huge pages). */
static void check_hugetlb(const struct dmaload_event *ev, uint8_t method, uint64_t len)
{
	bool want = huge_pass && len > 0 && method != DL_METHOD_CFR;

	CHECKF(!!(ev->done_flags & DL_DONE_HUGETLB) == want, "DONE %s hugetlb, expected "
	       "%s (method asked %s, %llu bytes)", ev->done_flags & DL_DONE_HUGETLB ? "is" :
	       "is not", want ? "it" : "not", method == DL_METHOD_AUTO ? "auto" :
	       dl_method_name(method), (unsigned long long)len);
}

struct tfile {
	uint64_t size;
	uint32_t seed;
	char path[PATH_MAX];
};

static struct tfile files[] = {
	{ .size = 0 }, { .size = 1 }, { .size = 4095 }, { .size = 4096 }, { .size = 4097 },
	{ .size = MiB + 3 }, { .size = 64 * MiB + 1 },
};
#define N_FILES (sizeof(files) / sizeof(files[0]))
#define BIG (&files[N_FILES - 1])

static bool make_files(void)
{
	for (size_t i = 0; i < N_FILES; i++) {
		int r;

		files[i].seed = 1000 + (uint32_t)i;
		snprintf(files[i].path, sizeof(files[i].path), "%s/file-%llu", d.dir,
			 (unsigned long long)files[i].size);
		r = file_make(files[i].path, files[i].size, files[i].seed, 0644);
		if (!CHECKF(r == 0, "file_make(%s): %s", files[i].path, strerror(-r)))
			return false;
	}
	return true;
}

static const char *method_str(uint8_t m)
{
	return m == DL_METHOD_AUTO ? "auto" : dl_method_name(m);
}

/* Whole-file load of @f by path or fd with @method. */
static void whole_file(const struct tfile *f, bool by_fd, uint8_t method)
{
	struct dmaload_opts o;
	struct dmaload_event ev;
	uint8_t want = method;
	int fd = -1;

	dmaload_opts_init(&o);
	o.method = method;
	/* Not determined without an O_DIRECT filesystem or bytes; less than one
	 * 512-byte O_DIRECT unit is read through the page cache (and DONE says so). */
	if (method == DL_METHOD_DIRECT && (!on_ext4 || f->size == 0))
		want = DL_METHOD_AUTO;
	else if (method == DL_METHOD_DIRECT && f->size < 512)
		want = DL_METHOD_BUFFERED;
	else if (method == DL_METHOD_CFR && f->size == 0)
		want = DL_METHOD_AUTO;		/* nothing to copy: "empty" */
	if (by_fd) {
		fd = open(f->path, O_RDONLY | O_CLOEXEC);
		if (!CHECKF(fd >= 0, "open: %s", strerror(errno)))
			return;
	}
	if (lc_load_verify(dl, by_fd ? NULL : f->path, fd, &o, f->size, f->seed, want,
			   &ev)) {
		check_hugetlb(&ev, method, f->size);
		if (f->size == 0)
			CHECKF(ev.reason == DL_WHY_EMPTY || method != DL_METHOD_AUTO,
			       "empty load: reason %s", dl_reason_name(ev.reason));
	}
	if (fd >= 0)
		close(fd);
}

struct range {
	uint64_t off, len;	/* len DMALOAD_TO_EOF: to the end */
	bool aligned;		/* off is a multiple of 512 */
};

static void range_case(const struct range *rg, bool by_fd, uint8_t method)
{
	struct dmaload_opts o;
	struct dmaload_event ev;
	uint64_t expect;
	int fd = -1;

	dmaload_opts_init(&o);
	o.method = method;
	o.offset = rg->off;
	o.length = rg->len;
	expect = rg->len == DMALOAD_TO_EOF ? BIG->size - rg->off : rg->len;
	if (by_fd) {
		fd = open(BIG->path, O_RDONLY | O_CLOEXEC);
		if (!CHECKF(fd >= 0, "open: %s", strerror(errno)))
			return;
	}
	/* direct forced on an unaligned offset is refused clearly, never silently
	 * downgraded: the client asked for something the kernel cannot do. */
	if (method == DL_METHOD_DIRECT && !rg->aligned && expect >= 512 && on_ext4) {
		static const int einval[] = { EINVAL };

		if (lc_load_error(dl, by_fd ? NULL : BIG->path, fd, &o, einval, 1, &ev))
			CHECKF(strstr(ev.message, "aligned"),
			       "direct on unaligned offset %llu: message \"%s\"",
			       (unsigned long long)rg->off, ev.message);
		goto out;
	}
	if (!lc_load_verify(dl, by_fd ? NULL : BIG->path, fd, &o, expect, BIG->seed,
			    method == DL_METHOD_BUFFERED || (method == DL_METHOD_CFR && expect) ?
			    method : DL_METHOD_AUTO, &ev))
		goto out;
	check_hugetlb(&ev, method, expect);
	if (method == DL_METHOD_DIRECT && expect > 0 && on_ext4) {
		if (rg->aligned && expect < 512)
			CHECKF(ev.method == DL_METHOD_BUFFERED && ev.reason == DL_WHY_SHORT,
			       "direct asked for %llu bytes (under one O_DIRECT unit): got %s",
			       (unsigned long long)expect, dl_method_name(ev.method));
		else if (rg->aligned)
			CHECKF(ev.method == DL_METHOD_DIRECT,
			       "direct asked, offset %llu aligned: got %s (reason %s)",
			       (unsigned long long)rg->off, dl_method_name(ev.method),
			       dl_reason_name(ev.reason));
		else
			CHECKF(ev.method == DL_METHOD_DIRECT || ev.reason == DL_WHY_UNALIGNED,
			       "direct asked, offset %llu unaligned: got %s (reason %s)",
			       (unsigned long long)rg->off, dl_method_name(ev.method),
			       dl_reason_name(ev.reason));
	}
	if (method == DL_METHOD_BUFFERED && expect > 0)
		CHECKF(ev.reason == DL_WHY_ASKED, "buffered asked: reason %s",
		       dl_reason_name(ev.reason));
out:
	if (fd >= 0)
		close(fd);
}

static void hello(void)
{
	uint32_t caps = dmaload_daemon_caps(dl);

	CHECKF((caps & DL_CAPS_V1) == DL_CAPS_V1, "daemon caps 0x%x lack some of 0x%x", caps,
	       DL_CAPS_V1);
	CHECK_U64(dmaload_max_load_size(dl), ==, 1ull << 30);	/* from the config */
}

/* ACCEPTED (length, file size) comes before DONE; PROGRESS, if any, counts up to the
 * length. Events are read one by one with dmaload_next_event(). */
static void events(void)
{
	struct dmaload_opts o;
	struct dmaload_event ev;
	bool accepted = false, done = false;
	uint64_t id, last = 0;
	int r, n_progress = 0;

	dmaload_opts_init(&o);
	o.progress = true;
	o.offset = 4096;
	o.length = BIG->size - 4096 - 100;
	if (!CHECK_OK(dmaload_load_path(dl, BIG->path, &o, &id)))
		return;
	while (!done) {
		r = dmaload_next_event(dl, &ev, 30000);
		if (!CHECKF(r == 1, "dmaload_next_event = %d (%s)", r, r < 0 ? strerror(-r) :
			    "timeout"))
			return;
		if (!CHECK_U64(ev.id, ==, id))
			return;
		switch (ev.type) {
		case DMALOAD_EV_ACCEPTED:
			CHECKF(!accepted, "two ACCEPTED");
			CHECKF(n_progress == 0, "ACCEPTED after PROGRESS");
			CHECK_U64(ev.size, ==, o.length);
			CHECK_U64(ev.file_size, ==, BIG->size);
			accepted = true;
			break;
		case DMALOAD_EV_PROGRESS:
			CHECKF(accepted, "PROGRESS before ACCEPTED");
			CHECK_U64(ev.total, ==, o.length);
			CHECK_U64(ev.done, <=, ev.total);
			CHECK_U64(ev.done, >=, last);
			last = ev.done;
			n_progress++;
			break;
		case DMALOAD_EV_DONE:
			CHECKF(accepted, "DONE without ACCEPTED");
			lc_check_done(&ev, o.length, BIG->seed, o.offset, DL_METHOD_AUTO);
			done = true;
			break;
		default:
			CHECKF(false, "unexpected %s", lc_event_str(&ev));
			return;
		}
	}
}

/* Without the progress flag no PROGRESS arrives. */
static void no_progress_unasked(void)
{
	struct dmaload_event ev;
	uint64_t id;
	int r;

	if (!CHECK_OK(dmaload_load_path(dl, BIG->path, NULL, &id)))
		return;
	for (;;) {
		r = dmaload_next_event(dl, &ev, 30000);
		if (!CHECKF(r == 1, "dmaload_next_event = %d", r))
			return;
		CHECKF(ev.type != DMALOAD_EV_PROGRESS, "PROGRESS without DL_LOAD_PROGRESS");
		if (ev.type == DMALOAD_EV_DONE || ev.type == DMALOAD_EV_ERROR)
			break;
	}
	lc_check_done(&ev, BIG->size, BIG->seed, 0, DL_METHOD_AUTO);
}

static void status_counters(void)
{
	struct dmaload_status a = { 0 }, b = { 0 };
	struct dmaload_event ev;
	int enoent = ENOENT;
	char missing[PATH_MAX];

	if (!CHECK_OK(dmaload_status(dl, &a)))
		return;
	CHECK_U64(a.clients, >=, 1);
	CHECK_U64(a.loads_active, ==, 0);
	CHECK_U64(a.loads_queued, ==, 0);
	lc_load_verify(dl, files[5].path, -1, NULL, files[5].size, files[5].seed,
		       DL_METHOD_AUTO, &ev);
	snprintf(missing, sizeof(missing), "%s/missing", d.dir);
	lc_load_error(dl, missing, -1, NULL, &enoent, 1, &ev);
	if (CHECK_OK(dmaload_status(dl, &b))) {
		CHECK_U64(b.loads_done, ==, a.loads_done + 1);
		CHECK_U64(b.loads_failed, ==, a.loads_failed + 1);
		CHECK_U64(b.bytes_loaded, ==, a.bytes_loaded + files[5].size);
		CHECK_U64(b.uptime_ms, >=, a.uptime_ms);
		CHECK_U64(b.n_loads, ==, 0);
	}
	dmaload_status_free(&a);
	dmaload_status_free(&b);
}

/* Every case, against a daemon whose buffers are 4 KiB-page memfds (@huge false) or
 * hugetlb memfds. */
static void run_pass(bool huge)
{
	static const uint8_t methods[] = { DL_METHOD_AUTO, DL_METHOD_BUFFERED,
					   DL_METHOD_DIRECT, DL_METHOD_CFR };
	static const struct range ranges[] = {
		{ 4096, 8192, true },
		{ 1, 4095, false },
		{ 511, MiB + 7, false },
		{ 512, 4096, true },
		{ 4096 * 3, DMALOAD_TO_EOF, true },
		{ 12345, DMALOAD_TO_EOF, false },
		{ 0, 64 * MiB, true },
		{ 64 * MiB, 1, true },
		{ 64 * MiB + 1, DMALOAD_TO_EOF, false },	/* offset == size: 0 bytes */
	};
	const char *tgt = huge ? "memfd hugetlb" : "memfd 4K";
	char why[512], fs[32] = "?";

	huge_pass = huge;
	check_begin("%s: daemon starts", tgt);
	if (huge && !hugepages_reserve(HUGE_PAGES)) {
		check_skip("cannot reserve %u huge pages (not root, or no memory)",
			   HUGE_PAGES);
		check_end();
		return;
	}
	if (daemon_start(&d, SUITE, huge ? "max_load_size = 1G\nhugetlb = on\n" :
			 "max_load_size = 1G\nhugetlb = off\n", why, sizeof(why)) < 0) {
		check_fail(__FILE__, __LINE__, "%s", why);
		check_end();
		daemon_cleanup(&d);
		return;
	}
	fs_type_name(d.dir, fs, sizeof(fs));
	on_ext4 = strcmp(fs, "ext4") == 0 || strcmp(fs, "xfs") == 0;
	if (!on_ext4)
		fprintf(stderr, "note: %s is on %s: direct-method checks relaxed\n", d.dir, fs);
	dl = lc_connect(&d, "test-load");
	/* a first load, so what the daemon sets up lazily is in the baseline */
	if (dl && make_files())
		lc_load_verify(dl, files[1].path, -1, NULL, 1, files[1].seed, DL_METHOD_AUTO,
			       NULL);
	if (!check_end() || !dl) {
		dl = dmaload_close(dl);
		daemon_stop(&d);
		daemon_cleanup(&d);
		return;
	}
	daemon_baseline(&d);

	CASE(hello(), "%s: HELLO reply: caps and max_load_size", tgt);
	for (size_t i = 0; i < N_FILES; i++)
		for (int by_fd = 0; by_fd < 2; by_fd++)
			for (size_t m = 0; m < sizeof(methods); m++)
				CASE(whole_file(&files[i], by_fd, methods[m]),
				     "%s: whole file of %llu bytes by %s, method %s", tgt,
				     (unsigned long long)files[i].size, by_fd ? "fd" : "path",
				     method_str(methods[m]));
	for (size_t i = 0; i < sizeof(ranges) / sizeof(ranges[0]); i++)
		for (int by_fd = 0; by_fd < 2; by_fd++)
			for (size_t m = 0; m < sizeof(methods); m++) {
				char len[32];

				if (ranges[i].len == DMALOAD_TO_EOF)
					snprintf(len, sizeof(len), "to EOF");
				else
					snprintf(len, sizeof(len), "%llu",
						 (unsigned long long)ranges[i].len);
				CASE(range_case(&ranges[i], by_fd, methods[m]),
				     "%s: range offset %llu length %s by %s, method %s", tgt,
				     (unsigned long long)ranges[i].off, len,
				     by_fd ? "fd" : "path", method_str(methods[m]));
			}
	CASE(events(), "%s: ACCEPTED then PROGRESS (monotonic) then DONE", tgt);
	CASE(no_progress_unasked(), "%s: no PROGRESS unless asked", tgt);
	CASE(status_counters(), "%s: STATUS counters follow a DONE and an ERROR", tgt);

	CASE(CHECK_SETTLED_START(&d, 5000), "%s: daemon fds and memfds back to the first "
	     "baseline", tgt);
	dl = dmaload_close(dl);
	daemon_stop_case(&d, huge ? "memfd hugetlb: daemon exits 0 on SIGTERM" :
			 "memfd 4K: daemon exits 0 on SIGTERM");
}

int main(void)
{
	check_init(SUITE);
	run_pass(false);
	run_pass(true);
	return check_finish();
}
