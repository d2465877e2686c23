/*
 * test-targets.c: the dma-buf targets on a host that has neither /dev/udmabuf nor
 * /dev/dma_heap (this one; the real loads run in qemu, tests/kernel/guest-targets.c).
 * HELLO and INFO must say there are none, loads into them must fail with errors that
 * name what to change, auto with DL_LOAD_DMABUF must fall back to a sealed memfd, and
 * [io] target must be parsed and applied. On a host that does have the devices, the
 * cases that need their absence skip.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../lib/check.h"
#include "../lib/harness.h"
#include "../lib/loads.h"

#define SUITE "targets"

static struct test_daemon d;
static char file[PATH_MAX];	/* 1 MiB + 5 of pattern 41 */
#define FILE_SIZE (MiB + 5)

static bool no_devices(void)
{
	return access("/dev/udmabuf", F_OK) < 0 && access("/dev/dma_heap", F_OK) < 0;
}

static void hello_info(void)
{
	struct dmaload *dl = lc_connect(&d, "test-targets");
	struct dmaload_info in;

	if (!dl)
		return;
	CHECKF(dmaload_daemon_caps(dl) & DL_CAP_DMABUF, "caps 0x%x", dmaload_daemon_caps(dl));
	CHECKF(!(dmaload_daemon_caps(dl) & (DL_CAP_UDMABUF | DL_CAP_HEAP)),
	       "caps 0x%x announce a dma-buf target", dmaload_daemon_caps(dl));
	if (CHECK_OK(dmaload_info(dl, &in))) {
		CHECK_INT(in.caps, ==, 0);
		CHECK_INT(in.udmabuf_err, ==, ENOENT);
		CHECK_INT(in.n_heaps, ==, 0);
		CHECK_INT(in.default_target, ==, DL_TARGET_AUTO);
		CHECK(!in.udmabuf_hugetlb);
	}
	dmaload_close(dl);
}

/* A load into @target fails with ENOENT and a message holding every @needles. */
static void no_device(uint8_t target, const char *heap, bool by_fd, const char *n1,
		      const char *n2)
{
	static const int enoent[] = { ENOENT };
	struct dmaload *dl = lc_connect(&d, "test-targets");
	struct dmaload_opts o;
	struct dmaload_event ev;
	int fd = -1;

	if (!dl)
		return;
	dmaload_opts_init(&o);
	o.target = target;
	o.heap = heap;
	if (by_fd)
		fd = open(file, O_RDONLY | O_CLOEXEC);
	if (lc_load_error(dl, by_fd ? NULL : file, fd, &o, enoent, 1, &ev))
		CHECKF(strstr(ev.message, n1) && strstr(ev.message, n2), "message: %s",
		       ev.message);
	if (fd >= 0)
		close(fd);
	dmaload_close(dl);
	CHECK_SETTLED(&d, 5000);
}

/* auto + DL_LOAD_DMABUF without devices: a sealed memfd, and DONE says so. */
static void auto_fallback(void)
{
	struct dmaload *dl = lc_connect(&d, "test-targets");
	struct dmaload_opts o;
	struct dmaload_event ev;

	if (!dl)
		return;
	dmaload_opts_init(&o);
	o.dmabuf = true;
	o.exact_size = true;
	if (CHECKF(dmaload_load_path_sync(dl, file, &o, &ev) == 0, "%s", lc_event_str(&ev))) {
		CHECK_INT(ev.target, ==, DL_TARGET_MEMFD);
		CHECK(ev.done_flags & DL_DONE_SEALED);
		CHECK_BUF(ev.fd, FILE_SIZE, 41, 0);
		close(ev.fd);
	}
	dmaload_close(dl);
	CHECK_SETTLED(&d, 5000);
}

/* A client may not name a heap outside /dev/dma_heap: the library refuses it before
 * sending, and the daemon's decoder too (raw LOAD with "..", EINVAL). */
static void bad_heap_names(void)
{
	struct dmaload *dl = lc_connect(&d, "test-targets");
	struct dmaload_opts o;
	uint64_t id;

	if (!dl)
		return;
	dmaload_opts_init(&o);
	o.target = DL_TARGET_HEAP;
	o.heap = "../udmabuf";
	CHECK_ERR(dmaload_load_path(dl, file, &o, &id), -EINVAL);
	o.heap = NULL;
	CHECK_ERR(dmaload_load_path(dl, file, &o, &id), -EINVAL);
	dmaload_close(dl);
}

/* [io] target = udmabuf makes it the default of loads that say auto; = heap:NAME too;
 * a bad value stops the daemon at start with the key named. */
static void config_target(void)
{
	struct test_daemon d2 = { 0 };
	struct dmaload *dl;
	struct dmaload_opts o;
	struct dmaload_event ev;
	struct dmaload_info in;
	static const int enoent[] = { ENOENT };
	char why[512];

	if (!CHECKF(daemon_start(&d2, "targets-conf", "target = heap:system\n", why,
				 sizeof(why)) == 0, "%s", why)) {
		daemon_cleanup(&d2);
		return;
	}
	dl = lc_connect(&d2, "test-targets");
	if (dl) {
		if (CHECK_OK(dmaload_info(dl, &in)))
			CHECK_INT(in.default_target, ==, DL_TARGET_HEAP);
		dmaload_opts_init(&o);
		if (lc_load_error(dl, file, -1, &o, enoent, 1, &ev))
			CHECKF(strstr(ev.message, "dma-heap \"system\""), "message: %s",
			       ev.message);
		o.target = DL_TARGET_MEMFD;	/* a load's own target wins */
		if (CHECKF(dmaload_load_path_sync(dl, file, &o, &ev) == 0, "%s",
			   lc_event_str(&ev))) {
			CHECK_INT(ev.target, ==, DL_TARGET_MEMFD);
			close(ev.fd);
		}
		dmaload_close(dl);
	}
	CHECK_INT(daemon_stop(&d2), ==, 0);
	daemon_cleanup(&d2);
	memset(&d2, 0, sizeof(d2));
	CHECKF(daemon_start(&d2, "targets-bad", "target = heap:../x\n", why,
			    sizeof(why)) < 0, "the daemon took target = heap:../x");
	daemon_stop(&d2);
	daemon_cleanup(&d2);
}

int main(void)
{
	char why[512];
	int r;

	check_init(SUITE);
	check_begin("daemon starts");
	if (daemon_start(&d, SUITE, NULL, why, sizeof(why)) < 0) {
		check_fail(__FILE__, __LINE__, "%s", why);
		check_end();
		daemon_cleanup(&d);
		return check_finish();
	}
	snprintf(file, sizeof(file), "%s/file", d.dir);
	r = file_make(file, FILE_SIZE, 41, 0644);
	CHECKF(r == 0, "file_make: %s", strerror(-r));
	if (!check_end()) {
		daemon_stop(&d);
		daemon_cleanup(&d);
		return check_finish();
	}
	daemon_baseline(&d);

	if (no_devices()) {
		CASE(hello_info(), "HELLO and INFO: no udmabuf, no heaps on this host");
		CASE(no_device(DL_TARGET_UDMABUF, NULL, false, "/dev/udmabuf",
			       "modprobe udmabuf"),
		     "target udmabuf: ENOENT saying to load the module or use memfd");
		CASE(no_device(DL_TARGET_UDMABUF, NULL, true, "/dev/udmabuf", "target memfd"),
		     "target udmabuf by fd: the same");
		CASE(no_device(DL_TARGET_HEAP, "system", false, "/dev/dma_heap/system",
			       "target memfd"),
		     "target heap:system: ENOENT naming the heap and the way out");
		CASE(auto_fallback(), "auto with DL_LOAD_DMABUF: a sealed memfd, DONE says "
		     "memfd");
		CASE(config_target(), "[io] target = heap:system is the default; a bad "
		     "heap name stops the daemon");
	} else {
		check_skip_case("no-device cases", "this host has /dev/udmabuf or /dev/dma_heap");
	}
	CASE(bad_heap_names(), "libdmaload refuses heap names outside /dev/dma_heap");
	CASE(CHECK_SETTLED_START(&d, 5000), "daemon fds and memfds back to the first "
	     "baseline");
	daemon_stop_case(&d, "daemon exits 0 on SIGTERM");
	return check_finish();
}
