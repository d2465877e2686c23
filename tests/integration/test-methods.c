/*
 * test-methods.c: how the daemon chooses and runs its copy methods, against the real
 * daemon. (test-load checks the bytes of every method on every size and offset; this
 * file checks the choices.)
 *
 *   - auto asks cachestat: a cold file is read direct ("not in the page cache"), a
 *     hot one through the page cache ("in the page cache"), a half-cached one both
 *     ways ("partly in the page cache");
 *   - cfr probes copy_file_range once per filesystem and buffer kind and logs the
 *     verdict once, however many loads follow; DONE says which of the two ways ran;
 *   - the config's method is the default for loads that say auto, and a load's own
 *     method overrides it;
 *   - hugetlb: auto uses huge pages for loads of at least one huge page, on for any;
 *     EXACT_SIZE keeps the buffer exactly the data's size; a pool that runs out
 *     mid-run makes loads fall back to 4 KiB pages (logged once), never fail, and
 *     huge pages come back when the pool has room again.
 * Every load's bytes are compared with the file too.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../lib/check.h"
#include "../lib/harness.h"
#include "../lib/loads.h"

#define SUITE "methods"
#define HUGE_SIZE (2 * MiB)

static struct test_daemon d;
static char file16[PATH_MAX];	/* 16 MiB of pattern 7 */

/* Counts the lines of the daemon's log that contain @needle. */
static int log_count(const char *needle)
{
	char line[2048];
	int n = 0;
	FILE *f = fopen(d.log, "re");

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		n += strstr(line, needle) != NULL;
	fclose(f);
	return n;
}

/* Drops @path from the page cache (written data is synced first). */
static bool cache_drop(const char *path)
{
	int r = file_uncache(path);

	return CHECKF(r == 0, "dropping %s from the page cache: %s", path, strerror(-r));
}

/* Reads [0, len) of @path, so it is in the page cache. */
static bool cache_fill(const char *path, uint64_t len)
{
	static char buf[1 << 20];
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	uint64_t done = 0;
	ssize_t n = 0;

	if (!CHECKF(fd >= 0, "open %s: %m", path))
		return false;
	/* no readahead: exactly [0, len) gets cached */
	posix_fadvise(fd, 0, 0, POSIX_FADV_RANDOM);
	while (done < len && (n = read(fd, buf, len - done < sizeof(buf) ?
				       len - done : sizeof(buf))) > 0)
		done += (uint64_t)n;
	close(fd);
	return CHECKF(done == len, "read %s: %llu of %llu bytes", path,
		      (unsigned long long)done, (unsigned long long)len);
}

static struct dmaload *connect_to(const struct test_daemon *td)
{
	return lc_connect(td, "test-methods");
}

/* Loads all of @path (16 MiB, pattern 7) with @method; checks bytes and returns the
 * DONE in @ev. */
static bool load16(struct dmaload *dl, uint8_t method, bool exact,
		   struct dmaload_event *ev)
{
	struct dmaload_opts o;

	dmaload_opts_init(&o);
	o.method = method;
	o.exact_size = exact;
	return lc_load_verify(dl, file16, -1, &o, 16 * MiB, 7, method, ev);
}

static void expect_how(const struct dmaload_event *ev, uint8_t method, uint8_t reason)
{
	CHECKF(ev->method == method && ev->reason == reason, "DONE says %s (%s), expected "
	       "%s (%s)", dl_method_name(ev->method), dl_reason_name(ev->reason),
	       dl_method_name(method), dl_reason_name(reason));
}

/* ---- auto and the page cache ------------------------------------------------------ */

static void auto_cold(void)
{
	struct dmaload *dl = connect_to(&d);
	struct dmaload_event ev;

	if (dl && cache_drop(file16) && load16(dl, DL_METHOD_AUTO, false, &ev))
		expect_how(&ev, DL_METHOD_DIRECT, DL_WHY_NOT_CACHED);
	dmaload_close(dl);
}

/* Hot bytes go through the page cache: spliced into 4 KiB pages, read into huge
 * pages (which cannot be spliced into). */
static void auto_hot(void)
{
	struct dmaload *dl = connect_to(&d);
	struct dmaload_event ev;

	if (dl && cache_fill(file16, 16 * MiB) && load16(dl, DL_METHOD_AUTO, false, &ev))
		expect_how(&ev, ev.done_flags & DL_DONE_HUGETLB ? DL_METHOD_BUFFERED :
			   DL_METHOD_CFR, DL_WHY_CACHED);
	dmaload_close(dl);
}

static void auto_partly(void)
{
	struct dmaload *dl = connect_to(&d);
	struct dmaload_event ev;

	if (!dl || !cache_drop(file16) || !cache_fill(file16, 8 * MiB) ||
	    !load16(dl, DL_METHOD_AUTO, false, &ev))
		goto out;
	CHECKF(ev.reason == DL_WHY_PARTLY_CACHED, "DONE reason %s, expected partly cached",
	       dl_reason_name(ev.reason));
out:
	dmaload_close(dl);
}

/* ---- cfr ------------------------------------------------------------------------- */

/* Three cfr loads: one probe, one log line; DONE's flag matches the verdict. */
static void cfr_probe_once(void)
{
	struct dmaload *dl = connect_to(&d);
	struct dmaload_event ev;
	bool refused;
	int lines;

	for (int i = 0; dl && i < 3; i++)
		if (!load16(dl, DL_METHOD_CFR, false, &ev))
			goto out;
	lines = log_count("copy_file_range from dev");
	if (!CHECKF(lines == 1, "%d probe verdicts in the log, expected 1", lines))
		goto out;
	refused = log_count("uses io_uring splice pairs") == 1;
	CHECKF(!!(ev.done_flags & DL_DONE_CFR_SYSCALL) == !refused, "probe %s, DONE %s the "
	       "copy_file_range flag", refused ? "refused" : "accepted",
	       ev.done_flags & DL_DONE_CFR_SYSCALL ? "has" : "lacks");
	CHECKF(!(ev.done_flags & DL_DONE_HUGETLB), "cfr into huge pages: splice cannot");
out:
	dmaload_close(dl);
}

/* cfr at odd offsets and lengths: splice pairs cross pipe-sized pieces. */
static void cfr_ranges(void)
{
	static const uint64_t offs[] = { 1, 4095, 1000001 }, lens[] = { 1, 65537, 3 * MiB + 5 };
	struct dmaload *dl = connect_to(&d);
	struct dmaload_opts o;

	dmaload_opts_init(&o);
	o.method = DL_METHOD_CFR;
	for (size_t i = 0; dl && i < 3 && !check_failed(); i++) {
		o.offset = offs[i];
		o.length = lens[i];
		lc_load_verify(dl, file16, -1, &o, lens[i], 7, DL_METHOD_CFR, NULL);
	}
	dmaload_close(dl);
}

/* ---- config method ------------------------------------------------------------- */

static void config_method(void)
{
	struct test_daemon d2 = { .pid = -1 };
	struct dmaload *dl = NULL;
	struct dmaload_event ev;
	char why[512];

	if (!CHECKF(daemon_start(&d2, "methods-conf", "method = buffered\nhugetlb = off\n",
				 why, sizeof(why)) == 0, "%s", why))
		goto out;
	dl = connect_to(&d2);
	if (dl && load16(dl, DL_METHOD_AUTO, false, &ev))
		expect_how(&ev, DL_METHOD_BUFFERED, DL_WHY_DEFAULT);
	if (dl && cache_drop(file16) && load16(dl, DL_METHOD_DIRECT, false, &ev))
		expect_how(&ev, DL_METHOD_DIRECT, DL_WHY_ASKED);
	dl = dmaload_close(dl);
	CHECKF(daemon_stop(&d2) == 0, "the second daemon did not exit 0");
out:
	dmaload_close(dl);
	daemon_cleanup(&d2);
}

/* ---- hugetlb ---------------------------------------------------------------------- */

/* hugetlb = auto: a buffer of at least one huge page gets them, a smaller one not. */
static void hugetlb_auto_sizes(void)
{
	struct dmaload *dl = connect_to(&d);
	struct dmaload_opts o;
	struct dmaload_event ev;

	dmaload_opts_init(&o);
	o.length = HUGE_SIZE - 1;
	if (dl && lc_load_verify(dl, file16, -1, &o, o.length, 7, DL_METHOD_AUTO, &ev))
		CHECKF(!(ev.done_flags & DL_DONE_HUGETLB), "%llu bytes got huge pages",
		       (unsigned long long)o.length);
	o.length = HUGE_SIZE + 1;
	if (dl && lc_load_verify(dl, file16, -1, &o, o.length, 7, DL_METHOD_AUTO, &ev)) {
		CHECKF(ev.done_flags & DL_DONE_HUGETLB, "%llu bytes got no huge pages",
		       (unsigned long long)o.length);
		CHECK_U64(ev.buf_size, ==, 2 * HUGE_SIZE);
	}
	dmaload_close(dl);
}

/* EXACT_SIZE: huge pages only when the data fills them exactly. */
static void hugetlb_exact(void)
{
	struct dmaload *dl = connect_to(&d);
	struct dmaload_opts o;
	struct dmaload_event ev;

	dmaload_opts_init(&o);
	o.exact_size = true;
	o.length = 3 * MiB + 1;
	if (dl && lc_load_verify(dl, file16, -1, &o, o.length, 7, DL_METHOD_AUTO, &ev)) {
		CHECKF(!(ev.done_flags & DL_DONE_HUGETLB), "exact size got huge pages");
		CHECK_U64(ev.buf_size, ==, o.length);
	}
	o.length = 4 * MiB;
	if (dl && lc_load_verify(dl, file16, -1, &o, o.length, 7, DL_METHOD_AUTO, &ev)) {
		CHECKF(ev.done_flags & DL_DONE_HUGETLB, "4 MiB exact got no huge pages");
		CHECK_U64(ev.buf_size, ==, o.length);
	}
	dmaload_close(dl);
}

/*
 * A pool with room for one 16 MiB buffer and a half (12 huge pages): four loads at
 * once on one connection all succeed with the right bytes; at least one has huge
 * pages and at least one fell back; the fallback is logged once. Once the buffers are
 * closed, a load gets huge pages again.
 */
static void hugetlb_pool_runs_out(void)
{
	struct dmaload *dl = connect_to(&d);
	struct dmaload_opts o;
	struct dmaload_event ev;
	int fds[4], n = 0, huge = 0, small = 0, done = 0;
	uint64_t id;

	if (!dl)
		return;
	/* A named method: four auto loads of one file would share one read (and one
	 * buffer). */
	dmaload_opts_init(&o);
	o.method = DL_METHOD_BUFFERED;
	if (!CHECKF(hugepages_set((unsigned)(hugepages_total() - hugepages_free() + 12)),
		    "cannot resize the huge page pool"))
		goto out;
	for (int i = 0; i < 4; i++)
		if (!CHECK_OK(dmaload_load_path(dl, file16, &o, &id)))
			goto out;
	while (done < 4) {
		int r = dmaload_next_event(dl, &ev, 30000);

		if (!CHECKF(r == 1, "dmaload_next_event = %d", r))
			goto out;
		if (ev.type == DMALOAD_EV_ACCEPTED || ev.type == DMALOAD_EV_PROGRESS)
			continue;
		done++;
		if (!CHECKF(ev.type == DMALOAD_EV_DONE, "load %llu: %s",
			    (unsigned long long)ev.id, lc_event_str(&ev)))
			continue;
		if (ev.done_flags & DL_DONE_HUGETLB)
			huge++;
		else
			small++;
		lc_check_buf_size(&ev, 16 * MiB);
		CHECK_BUF(ev.fd, 16 * MiB, 7, 0);
		fds[n++] = ev.fd;	/* held until all four are in: the pool stays taken */
	}
	CHECKF(huge >= 1 && small >= 1, "%d loads got huge pages and %d 4 KiB pages; the "
	       "pool had room for one", huge, small);
	CHECKF(log_count("huge pages: no room") == 1, "fallback logged %d times, expected "
	       "once", log_count("huge pages: no room"));
out:
	while (n > 0)
		close(fds[--n]);
	dmaload_close(dl);
}

int main(void)
{
	char why[512];
	int r;

	check_init(SUITE);
	check_begin("daemon starts");
	if (!hugepages_reserve(64))
		fprintf(stderr, "note: no huge pages to reserve: hugetlb cases skip\n");
	if (daemon_start(&d, SUITE, "hugetlb = auto\n", why, sizeof(why)) < 0) {
		check_fail(__FILE__, __LINE__, "%s", why);
		check_end();
		daemon_cleanup(&d);
		return check_finish();
	}
	snprintf(file16, sizeof(file16), "%s/file16", d.dir);
	r = file_make(file16, 16 * MiB, 7, 0644);
	CHECKF(r == 0, "file_make: %s", strerror(-r));
	if (!check_end()) {
		daemon_stop(&d);
		daemon_cleanup(&d);
		return check_finish();
	}
	daemon_baseline(&d);

	CASE(auto_cold(), "auto, file not cached -> direct (not in the page cache)");
	CASE(auto_hot(), "auto, file cached -> page cache (in the page cache)");
	CASE(auto_partly(), "auto, half the file cached -> partly in the page cache");
	CASE(cfr_probe_once(), "cfr: copy_file_range probed and logged once for 3 loads");
	CASE(cfr_ranges(), "cfr at unaligned offsets and lengths");
	CASE(config_method(), "[io] method = buffered is the default; a load's method "
	     "overrides it");
	if (hugepages_free() >= 8) {
		CASE(hugetlb_auto_sizes(), "hugetlb auto: huge pages from one huge page up");
		CASE(hugetlb_exact(), "EXACT_SIZE: huge pages only for whole huge pages");
		CASE(hugetlb_pool_runs_out(), "huge page pool runs out: loads fall back to "
		     "4 KiB pages, none fails, logged once");
		CASE(hugetlb_auto_sizes(), "huge pages come back when the pool has room");
	} else {
		check_skip_case("hugetlb cases", "no huge pages (not root?)");
	}
	CASE(CHECK_SETTLED_START(&d, 5000), "daemon fds and memfds back to the first "
	     "baseline");
	daemon_stop_case(&d, "daemon exits 0 on SIGTERM");
	return check_finish();
}
