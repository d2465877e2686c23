/*
 * test-hugepages.c: huge pages without reserving them.
 *
 * With no pool reserved (vm.nr_hugepages = 0): a daemon on a host that allows no
 * surplus pages says at start that its buffers are 4 KiB pages and which setting
 * would help; with an allowance (vm.nr_overcommit_hugepages) it says so, and a load
 * gets a hugetlb buffer of surplus pages, with every byte right, which go back to
 * the kernel when the buffer is freed; with an allowance too small for the load, the
 * load falls back to 4 KiB pages and the log says so once, naming both settings.
 * INFO (libdmaload's dmaload_info_hugepages, dmaload-ctl info, text and JSON) says
 * the allowance and the surplus pages in use, and a client whose HELLO did not
 * announce DL_CAP_INFO_SURPLUS gets the INFO reply of before. Then the opt-in drop-in: `make install` puts it where it does nothing
 * (share/dmaloadd/), `make install-hugepages` into sysctl.d, both under a DESTDIR.
 * Root only (the sysctls); the values found are restored at exit.
 */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../lib/check.h"
#include "../lib/harness.h"
#include "../lib/loads.h"

#define SUITE "hugepages"
#define SIZE (16 * MiB + 4096)

static char file[PATH_MAX];

/* A daemon on today's sysctls; its log must have @needle once it listens. */
static bool start(struct test_daemon *d, const char *tag, const char *needle)
{
	char why[512];

	char line[512] = "";
	FILE *f;

	if (!CHECKF(daemon_start(d, tag, NULL, why, sizeof(why)) == 0, "%s", why))
		return false;
	if (daemon_log_wait(d, needle, 0, 5000))
		return true;
	/* what it said instead (other tests on this host change the same sysctls) */
	f = fopen(d->log, "re");
	while (f && fgets(line, sizeof(line), f) && !strstr(line, "buffers:"))
		line[0] = '\0';
	if (f)
		fclose(f);
	line[strcspn(line, "\n")] = '\0';
	return CHECKF(false, "no \"%s\" in the log; it said: %s (HugePages_Total %ld, "
		      "vm.nr_overcommit_hugepages %ld now)", needle, line[0] ? line : "-",
		      meminfo_value("HugePages_Total"),
		      read_long_file("/proc/sys/vm/nr_overcommit_hugepages"));
}

static void stop(struct test_daemon *d)
{
	int r = daemon_stop(d);

	CHECKF(r == 0, "exit status %d", r);
	daemon_cleanup(d);
}

static void none_allowed(void)
{
	struct test_daemon d;

	if (!CHECK(hugepages_set(0) && hugepages_overcommit(0)))
		return;
	/* Pages another process still holds stay, as surplus ones, until it lets go:
	 * then the host does have huge pages, and the daemon rightly says so. */
	for (int i = 0; i < 50 && meminfo_value("HugePages_Total") > 0; i++)
		sleep_ms(100);
	if (meminfo_value("HugePages_Total") > 0) {
		check_skip("another process holds %ld huge pages (HugePages_Total after "
			   "vm.nr_hugepages = 0)", meminfo_value("HugePages_Total"));
		return;
	}
	if (start(&d, "hp-none", "buffers: 4 KiB pages, since no huge page is reserved or "
		  "allowed"))
		CHECK(daemon_log_wait(&d, "vm.nr_overcommit_hugepages", 0, 1000));
	stop(&d);
}

static void surplus(void)
{
	struct test_daemon d;
	struct dmaload *dl = NULL;
	struct dmaload_event ev;

	if (!CHECK(hugepages_set(0) && hugepages_overcommit(32)))
		return;
	if (!start(&d, "hp-surplus", "up to 32 more on demand"))
		goto out;
	if (!(dl = lc_connect(&d, "surplus")))
		goto out;
	if (CHECK(lc_load_verify(dl, file, -1, NULL, SIZE, 3, DL_METHOD_AUTO, &ev)))
		CHECKF(ev.done_flags & DL_DONE_HUGETLB, "not a hugetlb buffer (flags 0x%x)",
		       ev.done_flags);
	dmaload_close(dl);
	dl = NULL;
	/* The surplus pages go back to the kernel with the buffer. */
	for (int i = 0; i < 100 && meminfo_value("HugePages_Surp") > 0; i++)
		sleep_ms(50);
	CHECK_INT(meminfo_value("HugePages_Surp"), ==, 0);
out:
	if (dl)
		dmaload_close(dl);
	stop(&d);
}

static void surplus_short(void)
{
	struct test_daemon d;
	struct dmaload *dl = NULL;
	struct dmaload_event ev;

	if (!CHECK(hugepages_set(0) && hugepages_overcommit(2)))	/* 4 MiB: too few */
		return;
	if (!start(&d, "hp-short", "up to 2 more on demand"))
		goto out;
	if (!(dl = lc_connect(&d, "short")))
		goto out;
	if (CHECK(lc_load_verify(dl, file, -1, NULL, SIZE, 3, DL_METHOD_AUTO, &ev)))
		CHECKF(!(ev.done_flags & DL_DONE_HUGETLB), "a hugetlb buffer (flags 0x%x)",
		       ev.done_flags);
	CHECK(daemon_log_wait(&d, "huge pages: no room for a", 0, 5000));
	CHECK(daemon_log_wait(&d, "vm.nr_overcommit_hugepages allows surplus", 0, 1000));
out:
	if (dl)
		dmaload_close(dl);
	stop(&d);
}

/* dmaload-ctl info (text or --json) against @d: its stdout in @out. */
static bool ctl_info(const struct test_daemon *d, bool json, char *out, size_t len)
{
	const char *text[] = { "info", NULL }, *js[] = { "--json", "info", NULL };
	char err[1024];
	int r = ctl_run(d->sock, d->dir, json ? js : text, 10000, out, len, err, sizeof(err));

	return CHECKF(r == 0, "dmaload-ctl %sinfo: status %d: %s", json ? "--json " : "", r,
		      err);
}

/* The INFO reply and dmaload-ctl info say the surplus allowance and the surplus pages
 * in use; a client that did not announce DL_CAP_INFO_SURPLUS gets the reply as before. */
static void info_surplus(void)
{
	struct test_daemon d;
	struct dmaload *dl = NULL;
	struct dmaload_hugepages hp;
	struct dmaload_info in;
	struct dmaload_event ev = { .fd = -1 };
	struct dmaload_opts o;
	struct dl_hello hello = { .version = DL_PROTO_VERSION, .caps = DL_CAPS_V1 };
	struct dl_info_surplus sp;
	struct raw_msg *rm = raw_msg_new();
	char out[8192];
	long surp;
	int s = -1;

	if (!CHECK(rm && hugepages_set(0) && hugepages_overcommit(32)))
		goto out0;
	if (!start(&d, "hp-info", "up to 32 more on demand"))
		goto out;
	if (!(dl = lc_connect(&d, "info")))
		goto out;
	CHECK(dmaload_daemon_caps(dl) & DL_CAP_INFO_SURPLUS);
	if (CHECK_INT(dmaload_info_hugepages(dl, &hp), ==, 0)) {
		/* not the pool's size: pages another process holds stay in it */
		CHECK_INT(hp.overcommit, ==, 32);
		CHECK_INT(hp.page_size, ==, (uint64_t)meminfo_value("Hugepagesize") << 10);
	}
	/* dmaload_info is unchanged beside it */
	if (CHECK_INT(dmaload_info(dl, &in), ==, 0))
		CHECK_INT(in.huge_page_size, ==, hp.page_size);
	/* a buffer of surplus pages shows as in use while it is held */
	dmaload_opts_init(&o);
	if (CHECK_INT(dmaload_load_path_sync(dl, file, &o, &ev), ==, 0) &&
	    CHECK_BUF(ev.fd, SIZE, 3, 0) && CHECK(ev.done_flags & DL_DONE_HUGETLB) &&
	    CHECK_INT(dmaload_info_hugepages(dl, &hp), ==, 0)) {
		surp = meminfo_value("HugePages_Surp");
		/* the buffer's pages at least; other users of surplus pages may add some */
		CHECKF(hp.surplus >= (SIZE + (2 * MiB) - 1) / (2 * MiB) && hp.surplus <=
		       (uint64_t)surp + 32, "surplus %llu, HugePages_Surp %ld",
		       (unsigned long long)hp.surplus, surp);
	}
	if (ev.fd >= 0)
		close(ev.fd);
	if (ctl_info(&d, false, out, sizeof(out)))
		CHECKF(strstr(out, "surplus pages:  up to 32 more on demand "
			      "(vm.nr_overcommit_hugepages)"), "info said: %s", out);
	if (ctl_info(&d, true, out, sizeof(out)))
		CHECKF(strstr(out, "\"huge_pages_overcommit\":32,\"huge_pages_surplus\":"),
		       "info --json said: %s", out);
	/* a client of before: no DL_CAP_INFO_SURPLUS in its HELLO, no trailing part */
	s = raw_connect(d.sock);
	if (CHECKF(s >= 0, "connect: %s", strerror(-s)) &&
	    CHECK_INT(raw_send(s, DL_HELLO, 1, &hello, sizeof(hello), NULL, 0, NULL, 0), ==, 0) &&
	    CHECK_INT(raw_wait_final(s, 1, rm, 5000), ==, 1) &&
	    CHECK_INT(raw_send(s, DL_INFO, 2, NULL, 0, NULL, 0, NULL, 0), ==, 0) &&
	    CHECK_INT(raw_recv(s, rm, 5000), ==, 1) &&
	    CHECK_INT(rm->decode, ==, 0) && CHECK_INT(rm->m.hdr.type, ==, DL_INFO_REPLY)) {
		CHECK_INT(rm->m.trail_len, ==, rm->m.u.info.heaps_len);
		CHECK_INT(dl_info_get_surplus(&rm->m, &sp), ==, 0);
	}
	/* with the allowance gone, the text says none is allowed */
	if (CHECK(hugepages_overcommit(0)) && ctl_info(&d, false, out, sizeof(out)))
		CHECKF(strstr(out, "surplus pages:  none allowed (vm.nr_overcommit_hugepages "
			      "= 0)"), "info said: %s", out);
out:
	if (s >= 0)
		close(s);
	if (dl)
		dmaload_close(dl);
	stop(&d);
out0:
	raw_msg_free(rm);
}

static bool has_setting(const char *path)
{
	char line[256];
	bool found = false;
	FILE *f = fopen(path, "re");

	if (!f)
		return CHECKF(false, "%s: %s", path, strerror(errno));
	while (fgets(line, sizeof(line), f))
		found |= !strncmp(line, "vm.nr_overcommit_hugepages = ", 29) &&
			 atoi(line + 29) > 0;
	fclose(f);
	return CHECKF(found, "%s: no vm.nr_overcommit_hugepages setting", path);
}

static void dropin_install(void)
{
	char dest[PATH_MAX], path[PATH_MAX + 64];
	struct stat st;
	int r;

	if (access("Makefile", R_OK) || access("conf/60-dmaloadd-hugepages.conf", R_OK)) {
		check_skip("not run from the source tree");
		return;
	}
	r = tdir_create(dest, sizeof(dest), "hp-install");
	if (!CHECKF(r == 0, "temp dir: %s", strerror(-r)))
		return;
	r = make_into("install", dest);
	if (CHECKF(r == 0, "make install DESTDIR=%s: status %d", dest, r)) {
		snprintf(path, sizeof(path), "%s/usr/local/share/dmaloadd/"
			 "60-dmaloadd-hugepages.conf", dest);
		has_setting(path);
		snprintf(path, sizeof(path), "%s/etc/sysctl.d/60-dmaloadd-hugepages.conf",
			 dest);
		CHECKF(stat(path, &st) < 0, "make install put the drop-in in sysctl.d: it "
		       "must be opt-in");
	}
	r = make_into("install-hugepages", dest);
	if (CHECKF(r == 0, "make install-hugepages DESTDIR=%s: status %d", dest, r)) {
		snprintf(path, sizeof(path), "%s/etc/sysctl.d/60-dmaloadd-hugepages.conf",
			 dest);
		has_setting(path);
	}
	tdir_remove(dest);
}

int main(void)
{
	int r;

	check_init(SUITE);
	if (geteuid() != 0 || access("/proc/sys/vm/nr_overcommit_hugepages", W_OK) < 0 ||
	    !meminfo_value("Hugepagesize")) {
		check_skip_case("huge pages without a pool", "needs root and huge pages (vm.nr_overcommit_hugepages)");
		return 0;
	}
	check_begin("test file");
	r = tdir_create(file, sizeof(file), "hp-files");
	if (r == 0) {
		strcat(file, "/model.bin");
		r = file_make(file, SIZE, 3, 0644);
	}
	CHECKF(r == 0, "file_make: %s", strerror(-r));
	if (!check_end())
		return 1;

	CASE(none_allowed(), "no pool, no allowance: the log says 4 KiB pages and names "
	     "vm.nr_overcommit_hugepages");
	CASE(surplus(), "no pool, an allowance: a hugetlb buffer of surplus pages, right "
	     "bytes, the pages given back after");
	CASE(surplus_short(), "an allowance too small: 4 KiB pages, and the log says why "
	     "once, naming both settings");
	CASE(info_surplus(), "INFO and dmaload-ctl info: the surplus allowance and the "
	     "pages in use beside the pool; an older client's INFO reply unchanged");
	CASE(dropin_install(), "make install: the drop-in where it does nothing; make "
	     "install-hugepages: into sysctl.d");
	*strrchr(file, '/') = '\0';
	tdir_remove(file);
	return check_finish();
}
