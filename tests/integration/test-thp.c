/*
 * test-thp.c: buffers of 4 KiB pages, when they are all there is (issue 15).
 *
 * With /sys/kernel/mm/transparent_hugepage/shmem_enabled at "never" (hugetlb off in
 * the daemon), direct chunks go through bounce buffers and are written into the memfd
 * (copy.c's staged chunks): loads of many chunks (chunk_size 1M, so several writes
 * queue behind each other), with an unaligned tail, by method auto and direct, and
 * several at once, give every byte, method direct, no huge page; the bounce
 * buffers stay a while after a load and then go. At "advise", a daemon
 * with [io] thp = auto says so at start and its buffer gets transparent huge pages
 * (ShmemHugePages grows by most of the buffer while the client holds it), every byte
 * right; with thp = off, none. Root only (the sysfs knob); the value found is restored
 * at exit.
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../lib/check.h"
#include "../lib/harness.h"
#include "../lib/loads.h"

#define SUITE "thp"
#define SIZE (24 * MiB + 4096 + 100)	/* whole huge pages and a ragged tail */
#define KNOB "/sys/kernel/mm/transparent_hugepage/shmem_enabled"

static char file[PATH_MAX];
static char knob_old[32];

/* A THP knob's current value (@path: the global one or a size's), the one in
 * brackets. */
static bool size_knob_get(const char *path, char *out, size_t len)
{
	char buf[128], *a, *b;
	FILE *f = fopen(path, "re");
	bool ok = false;

	if (!f)
		return false;
	if (fgets(buf, sizeof(buf), f) && (a = strchr(buf, '[')) && (b = strchr(a, ']'))) {
		*b = '\0';
		snprintf(out, len, "%s", a + 1);
		ok = true;
	}
	fclose(f);
	return ok;
}

static bool size_knob_set(const char *path, const char *v)
{
	FILE *f = fopen(path, "we");
	bool ok;

	if (!f)
		return false;
	ok = fputs(v, f) >= 0;
	return fclose(f) == 0 && ok;
}

/* The global shmem_enabled. */
static bool knob_get(char *out, size_t len)
{
	return size_knob_get(KNOB, out, len);
}

static bool knob_set(const char *v)
{
	return size_knob_set(KNOB, v);
}

/* The multi-size THP knobs, hugepages-<size>kB/shmem_enabled (Linux 6.11): kept as
 * the kernel starts (sizes_init) but where a case sets one, so that only the global
 * knob decides. */
#define THP_DIR "/sys/kernel/mm/transparent_hugepage"
#define N_SIZES 16
static struct {
	char path[PATH_MAX];
	char old[32];
} sizes[N_SIZES];
static int n_sizes;

/* Finds the size knobs and their values (restored at exit), and sets them as the
 * kernel starts: the PMD size "inherit" (the global knob decides), the others never. */
static void sizes_init(void)
{
	DIR *d = opendir(THP_DIR);
	struct dirent *e;
	char pmd[64];

	snprintf(pmd, sizeof(pmd), "hugepages-%ldkB",
		 read_long_file(THP_DIR "/hpage_pmd_size") / 1024);
	while (d && (e = readdir(d)) && n_sizes < N_SIZES) {
		if (strncmp(e->d_name, "hugepages-", 10) != 0)
			continue;
		snprintf(sizes[n_sizes].path, sizeof(sizes[n_sizes].path),
			 THP_DIR "/%s/shmem_enabled", e->d_name);
		if (size_knob_get(sizes[n_sizes].path, sizes[n_sizes].old,
				  sizeof(sizes[n_sizes].old)) &&
		    size_knob_set(sizes[n_sizes].path,
				  strcmp(e->d_name, pmd) ? "never" : "inherit"))
			n_sizes++;
	}
	if (d)
		closedir(d);
}

static void knob_restore(void)
{
	if (knob_old[0])
		knob_set(knob_old);
	for (int i = 0; i < n_sizes; i++)
		size_knob_set(sizes[i].path, sizes[i].old);
	n_sizes = 0;
}

static void stop(struct test_daemon *d)
{
	int r = daemon_stop(d);

	CHECKF(r == 0, "exit status %d", r);
	daemon_cleanup(d);
}

/* One load of the file, the buffer held while ShmemHugePages is read: the KiB of huge
 * pages it added (@huge_kib), then every byte checked. */
static bool load_huge(struct dmaload *dl, uint8_t method, long *huge_kib)
{
	struct dmaload_event ev = { .fd = -1 };
	struct dmaload_opts o;
	long before;

	/* cold, so that auto reads direct too */
	if (!CHECK(drop_caches() == 0))
		return false;
	before = meminfo_value("ShmemHugePages");
	dmaload_opts_init(&o);
	o.method = method;
	if (!CHECK_INT(dmaload_load_path_sync(dl, file, &o, &ev), ==, 0))
		return false;
	*huge_kib = meminfo_value("ShmemHugePages") - before;
	return lc_check_done(&ev, SIZE, 5, 0, method == DL_METHOD_AUTO ? DL_METHOD_DIRECT :
			     method);
}

static void staged(void)
{
	struct test_daemon d;
	struct dmaload *dl[4] = { NULL };
	uint64_t ids[4];
	char why[512];
	long huge = 0;

	if (!CHECK(knob_set("never")))
		return;
	if (!CHECKF(daemon_start(&d, "thp-staged", "hugetlb = off\nchunk_size = 1M\n", why,
				 sizeof(why)) == 0, "%s", why))
		return;
	for (int i = 0; i < 4; i++)
		if (!(dl[i] = lc_connect(&d, "staged")))
			goto out;
	CHECK(load_huge(dl[0], DL_METHOD_AUTO, &huge));
	CHECKF(huge < 2048, "%ld KiB of huge pages with shmem_enabled never", huge);
	CHECK(load_huge(dl[0], DL_METHOD_DIRECT, &huge));
	/* four at once: their chunks share the bounce buffers */
	CHECK(drop_caches() == 0);
	for (int i = 0; i < 4; i++)
		CHECK_INT(lc_start(dl[i], file, -1, NULL, &ids[i]), ==, 0);
	for (int i = 0; i < 4; i++) {
		struct dmaload_event ev = { .fd = -1 };

		if (CHECK_INT(dmaload_wait(dl[i], ids[i], &ev, NULL, NULL), ==, 0))
			CHECK(lc_check_done(&ev, SIZE, 5, 0, DL_METHOD_DIRECT));
	}
out:
	for (int i = 0; i < 4; i++)
		if (dl[i])
			dmaload_close(dl[i]);
	stop(&d);
}

/* The bounce buffers outlive a load by sched.c's TRIM_DELAY_S (10 s), so the next
 * load does not fault them in again, and then go: the daemon's RSS, up by at least
 * the chunks of one load right after it, is still up 2 s later and back near where it
 * started within 20 s. */
static void bounce_trim(void)
{
	struct test_daemon d;
	struct dmaload *dl = NULL;
	char why[512];
	long huge = 0, rss0, rss = 0;
	uint64_t t0;

	if (!CHECK(knob_set("never")))
		return;
	if (!CHECKF(daemon_start(&d, "thp-trim", "hugetlb = off\nchunk_size = 1M\n", why,
				 sizeof(why)) == 0, "%s", why))
		return;
	if (!(dl = lc_connect(&d, "trim")))
		goto out;
	rss0 = proc_rss_kib(d.pid);
	if (!CHECK(load_huge(dl, DL_METHOD_DIRECT, &huge)))
		goto out;
	rss = proc_rss_kib(d.pid);
	CHECKF(rss >= rss0 + 8 * 1024, "RSS %ld KiB after a staged load, %ld before: "
	       "no bounce buffers held", rss, rss0);
	sleep_ms(2000);
	rss = proc_rss_kib(d.pid);
	CHECKF(rss >= rss0 + 8 * 1024, "RSS %ld KiB 2 s after a staged load, %ld before: "
	       "bounce buffers freed at once", rss, rss0);
	t0 = now_ms();
	while (now_ms() - t0 < 20000 && (rss = proc_rss_kib(d.pid)) > rss0 + 4 * 1024)
		sleep_ms(200);
	CHECKF(rss <= rss0 + 4 * 1024, "RSS %ld KiB 22 s after a staged load, %ld before: "
	       "bounce buffers never freed", rss, rss0);
out:
	if (dl)
		dmaload_close(dl);
	stop(&d);
}

#define KNOB_64K THP_DIR "/hugepages-64kB/shmem_enabled"
#define ALLOC_64K THP_DIR "/hugepages-64kB/stats/shmem_alloc"

/* Multi-size THP alone: the global knob never, hugepages-64kB's advise. The daemon
 * says at start that buffers get transparent huge pages, advises its buffer, and the
 * kernel's count of 64 KiB shmem folios grows by most of the buffer; every byte. */
static void mthp(void)
{
	struct test_daemon d;
	struct dmaload *dl = NULL;
	char why[512], v[32];
	long huge = 0, before, after;

	if (access(KNOB_64K, W_OK) < 0 || access(ALLOC_64K, R_OK) < 0) {
		check_skip("no %s (multi-size THP for shmem: Linux 6.11)", KNOB_64K);
		return;
	}
	if (!CHECK(knob_set("never")) || !CHECK(size_knob_set(KNOB_64K, "advise")))
		return;
	if (!CHECKF(daemon_start(&d, "thp-64k", "hugetlb = off\n", why, sizeof(why)) == 0,
		    "%s", why))
		goto knob;
	CHECK(daemon_log_wait(&d, "transparent huge pages", 0, 5000));
	if (!(dl = lc_connect(&d, "thp-64k")))
		goto out;
	before = read_long_file(ALLOC_64K);
	if (CHECK(load_huge(dl, DL_METHOD_AUTO, &huge))) {
		after = read_long_file(ALLOC_64K);
		CHECKF(after - before >= (long)(SIZE / (64 * 1024)) * 3 / 4, "%ld 64 KiB shmem "
		       "folios allocated for a %d MiB buffer", after - before,
		       (int)(SIZE / MiB));
		CHECKF(huge < 2048, "%ld KiB of 2 MiB pages with only 64 KiB ones allowed",
		       huge);
	}
out:
	if (dl)
		dmaload_close(dl);
	stop(&d);
knob:
	CHECK(size_knob_get(KNOB_64K, v, sizeof(v)) && size_knob_set(KNOB_64K, "never"));
}

/* The opt-in snippet: make install puts it where it does nothing (share/dmaloadd/),
 * make install-thp into tmpfiles.d; systemd-tmpfiles applied to it sets the 64 KiB
 * knob to advise (put back as found after). */
static void dropin_install(void)
{
	char dest[PATH_MAX], path[PATH_MAX + 64], cmd[PATH_MAX + 128], v[32];
	struct stat st;
	int r;

	if (access("Makefile", R_OK) || access("conf/60-dmaloadd-thp.conf", R_OK)) {
		check_skip("not run from the source tree");
		return;
	}
	r = tdir_create(dest, sizeof(dest), "thp-install");
	if (!CHECKF(r == 0, "temp dir: %s", strerror(-r)))
		return;
	r = make_into("install", dest);
	if (CHECKF(r == 0, "make install DESTDIR=%s: status %d", dest, r)) {
		snprintf(path, sizeof(path), "%s/usr/local/share/dmaloadd/60-dmaloadd-thp.conf",
			 dest);
		CHECKF(stat(path, &st) == 0, "make install did not put %s", path);
		snprintf(path, sizeof(path), "%s/etc/tmpfiles.d/60-dmaloadd-thp.conf", dest);
		CHECKF(stat(path, &st) < 0, "make install put the snippet in tmpfiles.d: it "
		       "must be opt-in");
	}
	r = make_into("install-thp", dest);
	if (!CHECKF(r == 0, "make install-thp DESTDIR=%s: status %d", dest, r))
		goto out;
	snprintf(path, sizeof(path), "%s/etc/tmpfiles.d/60-dmaloadd-thp.conf", dest);
	if (!CHECKF(stat(path, &st) == 0, "make install-thp did not put %s", path))
		goto out;
	if (access(KNOB_64K, W_OK) < 0 || system("command -v systemd-tmpfiles >/dev/null")) {
		fprintf(stderr, "# no %s or no systemd-tmpfiles: the snippet is not applied\n",
			KNOB_64K);
		goto out;
	}
	CHECK(size_knob_set(KNOB_64K, "never"));
	snprintf(cmd, sizeof(cmd), "systemd-tmpfiles --create '%s' >/dev/null 2>&1", path);
	CHECKF(system(cmd) == 0, "%s failed", cmd);
	CHECKF(size_knob_get(KNOB_64K, v, sizeof(v)) && !strcmp(v, "advise"),
	       "the 64 KiB knob is %s after systemd-tmpfiles, not advise", v);
	size_knob_set(KNOB_64K, "never");
out:
	tdir_remove(dest);
}

static void thp(bool on)
{
	struct test_daemon d;
	struct dmaload *dl = NULL;
	char why[512];
	long huge = 0;

	if (!CHECK(knob_set("advise")))
		return;
	if (!CHECKF(daemon_start(&d, on ? "thp-on" : "thp-off", on ? "hugetlb = off\n" :
				 "hugetlb = off\nthp = off\n", why, sizeof(why)) == 0, "%s", why))
		return;
	/* the start-up line says so, or not */
	CHECK(daemon_log_wait(&d, "buffers:", 0, 5000));
	CHECK(daemon_log_wait(&d, "transparent huge pages", 0, on ? 5000 : 300) == on);
	if (!(dl = lc_connect(&d, on ? "thp-on" : "thp-off")))
		goto out;
	if (CHECK(load_huge(dl, DL_METHOD_AUTO, &huge))) {
		if (on)
			CHECKF(huge >= 16 * 1024, "only %ld KiB of the %d MiB buffer in huge "
			       "pages", huge, (int)(SIZE / MiB));
		else
			CHECKF(huge < 2048, "%ld KiB of huge pages with thp = off", huge);
	}
out:
	if (dl)
		dmaload_close(dl);
	stop(&d);
}

int main(void)
{
	int r;

	check_init(SUITE);
	if (geteuid() != 0 || access(KNOB, W_OK) < 0 || !knob_get(knob_old, sizeof(knob_old))) {
		knob_old[0] = '\0';
		check_skip_case("4 KiB-page buffers", "needs root and " KNOB);
		return 0;
	}
	atexit(knob_restore);
	sizes_init();
	check_begin("test file");
	r = tdir_create(file, sizeof(file), "thp-files");
	if (r == 0) {
		strcat(file, "/model.bin");
		r = file_make(file, SIZE, 5, 0644);
	}
	CHECKF(r == 0, "file_make: %s", strerror(-r));
	if (!check_end())
		return 1;

	CASE(staged(), "shmem THP never: staged loads (bounce buffers written into the "
	     "memfd), many chunks, a ragged tail, auto and direct, four at once: every "
	     "byte, no huge page");
	CASE(bounce_trim(), "shmem THP never: the bounce buffers of a staged load are "
	     "kept for a while, then freed");
	CASE(thp(true), "shmem THP advise, thp = auto: the start-up line says so, the "
	     "buffer in transparent huge pages, every byte");
	CASE(thp(false), "shmem THP advise, thp = off: no huge page, every byte");
	CASE(mthp(), "shmem THP never, 64 KiB size advise: the start-up line says so, the "
	     "buffer in 64 KiB folios, every byte");
	CASE(dropin_install(), "make install: the 64 KiB snippet where it does nothing; make "
	     "install-thp: in tmpfiles.d, and systemd-tmpfiles sets the knob to advise");
	knob_restore();
	*strrchr(file, '/') = '\0';
	tdir_remove(file);
	return check_finish();
}
