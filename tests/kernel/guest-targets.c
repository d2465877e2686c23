/*
 * guest-targets.c: dma-buf loads (targets udmabuf and heap:system) through the real
 * daemon inside the qemu test kernel, from files on the ext4 virtio-blk disk.
 *
 *   guest-targets --make-files DIR   on the host: writes the test files
 *   guest-targets DISK_DIR           in the guest, with $DMALOAD_SOCKET set
 *
 * Every dma-buf is mapped by the client, read between DMA_BUF_IOCTL_SYNC START and END,
 * and compared byte for byte with the file's pattern, and the bytes past the data up
 * to the page-rounded buffer size must be zero. The cases: INFO on a host that has
 * both targets; whole files and ranges (aligned, unaligned) by path and by fd with
 * each method; auto with DL_LOAD_DMABUF; a hugetlb memfd behind a udmabuf; the
 * udmabuf.size_limit_mb error (the parameter is lowered through sysfs); many clients
 * mixing memfd, udmabuf and heap loads at once; and clients killed mid-load, after
 * which no pages may stay allocated or pinned (/proc/meminfo Shmem and MemFree).
 *
 * Method cfr, and auto, depend on the kernel (guest.h). The stock kernel refuses
 * copy_file_range into memfds and heap buffers: udmabuf with cfr runs splice pairs
 * into its memfd, and heap:system with cfr is refused. The patched one takes both:
 * cfr and auto (cold files) run copy_file_range into the udmabuf's memfd and into
 * the heap buffer (DONE has DL_DONE_CFR_SYSCALL) at the same sizes and offsets, and
 * at O_DIRECT-aligned offsets at most the tail's pages of the file's range are in
 * its page cache afterwards (the kernel read it by direct I/O).
 */
#include <fcntl.h>
#include <linux/dma-buf.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../lib/check.h"
#include "../lib/harness.h"
#include "../lib/loads.h"
#include "guest.h"

#define SUITE "kernel"
#define LIMIT_PARAM "/sys/module/udmabuf/parameters/size_limit_mb"

struct tfile {
	const char *name;
	uint64_t size;
	uint32_t seed;
	char path[PATH_MAX];
};

static struct tfile files[] = {
	{ .name = "tgt-big.bin", .size = 3 * MiB + 1234, .seed = 601 },
	{ .name = "tgt-tiny.bin", .size = 300, .seed = 602 },
};
#define BIG (&files[0])
#define TINY (&files[1])

static struct dmaload *dl;

static int make_files(const char *dir)
{
	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		char path[PATH_MAX];
		int r;

		snprintf(path, sizeof(path), "%s/%s", dir, files[i].name);
		r = file_make(path, files[i].size, files[i].seed, 0644);
		if (r < 0) {
			fprintf(stderr, "guest-targets: writing %s: %s\n", path, strerror(-r));
			return 1;
		}
	}
	return 0;
}

static uint64_t page_round(uint64_t n)
{
	uint64_t page = (uint64_t)getpagesize();

	return (n + page - 1) / page * page;
}

static int dmabuf_sync(int fd, uint64_t flags)
{
	struct dma_buf_sync s = { .flags = flags | DMA_BUF_SYNC_READ };

	return ioctl(fd, DMA_BUF_IOCTL_SYNC, &s) < 0 ? -errno : 0;
}

/*
 * Checks a dma-buf fd: not a memfd (no seals), close-on-exec, mappable for
 * @buf_size bytes, holding pattern @seed from file offset @off for @len bytes and
 * zeros up to @buf_size. Returns true, or false with @why set.
 */
static bool dmabuf_verify(int fd, uint64_t len, uint64_t buf_size, uint32_t seed,
			  uint64_t off, char *why, size_t n)
{
	unsigned char *p, want[4096];
	bool ok = false;

	if (fcntl(fd, F_GET_SEALS) >= 0) {
		snprintf(why, n, "the fd has seals: a memfd, not a dma-buf");
		return false;
	}
	if (!(fcntl(fd, F_GETFD) & FD_CLOEXEC)) {
		snprintf(why, n, "the fd is not close-on-exec");
		return false;
	}
	p = mmap(NULL, buf_size, PROT_READ, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED) {
		snprintf(why, n, "mmap of %llu bytes: %s", (unsigned long long)buf_size,
			 strerror(errno));
		return false;
	}
	if (dmabuf_sync(fd, DMA_BUF_SYNC_START) < 0) {
		snprintf(why, n, "DMA_BUF_IOCTL_SYNC START: %s", strerror(errno));
		goto out;
	}
	for (uint64_t at = 0; at < buf_size; at += sizeof(want)) {
		size_t k = buf_size - at < sizeof(want) ? (size_t)(buf_size - at) : sizeof(want);

		memset(want, 0, sizeof(want));
		if (at < len)
			pattern_fill(seed, off + at, want,
				     len - at < k ? (size_t)(len - at) : k);
		if (memcmp(p + at, want, k)) {
			for (size_t b = 0; b < k; b++)
				if (p[at + b] != want[b]) {
					snprintf(why, n, "byte %llu is 0x%02x, not 0x%02x%s",
						 (unsigned long long)(at + b), p[at + b],
						 want[b], at + b >= len ? " (past the data)" : "");
					break;
				}
			dmabuf_sync(fd, DMA_BUF_SYNC_END);
			goto out;
		}
	}
	if (dmabuf_sync(fd, DMA_BUF_SYNC_END) < 0) {
		snprintf(why, n, "DMA_BUF_IOCTL_SYNC END: %s", strerror(errno));
		goto out;
	}
	ok = true;
out:
	munmap(p, buf_size);
	return ok;
}

/* Checks a DONE event of a dma-buf load; closes its fd. */
static bool check_dmabuf_done(struct dmaload_event *ev, uint8_t target, uint64_t len,
			      uint32_t seed, uint64_t off)
{
	char why[256];
	bool ok;

	if (!CHECKF(ev->type == DMALOAD_EV_DONE, "%s", lc_event_str(ev)))
		return false;
	ok = CHECKF(ev->target == target, "DONE target %s, not %s",
		    dl_target_name(ev->target), dl_target_name(target));
	ok &= CHECK_U64(ev->size, ==, len);
	ok &= CHECKF(!(ev->done_flags & DL_DONE_SEALED), "a dma-buf reported as sealed");
	if (ev->done_flags & DL_DONE_HUGETLB)
		ok &= CHECKF(ev->buf_size >= len && ev->buf_size % (2 * MiB) == 0,
			     "hugetlb buf_size %llu", (unsigned long long)ev->buf_size);
	else
		ok &= CHECK_U64(ev->buf_size, ==, page_round(len));
	ok &= CHECKF(dmabuf_verify(ev->fd, len, ev->buf_size, seed, off, why, sizeof(why)),
		     "dma-buf: %s", why);
	close(ev->fd);
	ev->fd = -1;
	return ok;
}

static void opts_for(struct dmaload_opts *o, uint8_t target, uint8_t method, uint64_t off,
		     uint64_t len)
{
	dmaload_opts_init(o);
	o->target = target;
	o->heap = target == DL_TARGET_HEAP ? "system" : NULL;
	o->method = method;
	o->offset = off;
	o->length = len;
}

/* Whether a load with @method must run copy_file_range (patched kernel: cfr, and
 * auto on a cold file) or splice pairs (stock kernel, cfr into a udmabuf's memfd). */
static bool uses_cfr(uint8_t method)
{
	return method == DL_METHOD_CFR || (method == DL_METHOD_AUTO && guest_patched());
}

/* The call and target a case checks, for its name: ": copy_file_range into the
 * heap buffer" and the like, or "" where neither is checked. */
static const char *cfr_how(uint8_t target, uint8_t method)
{
	if (!uses_cfr(method))
		return "";
	if (!guest_patched())
		return ": splice pairs into the udmabuf's memfd";
	return target == DL_TARGET_HEAP ? ": copy_file_range into the heap buffer" :
	       ": copy_file_range into the udmabuf's memfd";
}

/* DONE of a load that used cfr: DL_DONE_CFR_SYSCALL on the patched kernel only, and
 * there, at O_DIRECT-aligned offsets, at most the tail's pages of [@off, +@len) of @f
 * in the page cache (the kernel read it by direct I/O). */
static void check_cfr(const struct dmaload_event *ev, const struct tfile *f, uint64_t off,
		      uint64_t len)
{
	bool sys = ev->done_flags & DL_DONE_CFR_SYSCALL;

	CHECKF(ev->method == DL_METHOD_CFR, "DONE method %s, expected cfr",
	       dl_method_name(ev->method));
	CHECKF(sys == guest_patched(), "DONE %s DL_DONE_CFR_SYSCALL on the %s kernel",
	       sys ? "has" : "lacks", guest_kernel());
	if (guest_patched() && off % 512 == 0)
		guest_check_not_cached(f->path, off, len);
}

/* One load of @f into @target, checked. */
static void load(const struct tfile *f, uint8_t target, bool by_fd, uint8_t method,
		 uint64_t off, uint64_t len)
{
	uint64_t expect = len == DMALOAD_TO_EOF ? f->size - off : len;
	struct dmaload_opts o;
	struct dmaload_event ev;
	int fd = -1, r;

	if (!CHECKF(dl, "no connection to the daemon"))
		return;
	drop_caches();
	opts_for(&o, target, method, off, len);
	o.exact_size = true;
	if (by_fd) {
		fd = open(f->path, O_RDONLY | O_CLOEXEC);
		if (!CHECKF(fd >= 0, "open %s: %s", f->path, strerror(errno)))
			return;
		r = dmaload_load_fd_sync(dl, fd, &o, &ev);
		close(fd);
	} else {
		r = dmaload_load_path_sync(dl, f->path, &o, &ev);
	}
	if (!CHECKF(r == 0, "load: %s", lc_event_str(&ev)))
		return;
	if (method != DL_METHOD_AUTO)
		CHECKF(ev.method == method, "method %s, asked %s", dl_method_name(ev.method),
		       dl_method_name(method));
	fprintf(stderr, "# %s [%llu, +%llu) %s: method %s%s (%s), %.1f ms in the daemon\n",
		f->name, (unsigned long long)off, (unsigned long long)expect,
		dl_target_name(target), dl_method_name(ev.method),
		ev.done_flags & DL_DONE_CFR_SYSCALL ? " (copy_file_range)" : "",
		dl_reason_name(ev.reason), ev.elapsed_ns / 1e6);
	if (!check_dmabuf_done(&ev, target, expect, f->seed, off))
		return;
	if (uses_cfr(method))
		check_cfr(&ev, f, off, expect);
}

static void hello(void)
{
	int r = dmaload_connect(&dl, NULL, "guest-targets");

	if (!CHECKF(r == 0, "dmaload_connect: %s", strerror(-r)))
		return;
	CHECKF(dmaload_daemon_caps(dl) & DL_CAP_DMABUF, "caps 0x%x", dmaload_daemon_caps(dl));
	CHECKF(dmaload_daemon_caps(dl) & DL_CAP_UDMABUF, "no DL_CAP_UDMABUF");
	CHECKF(dmaload_daemon_caps(dl) & DL_CAP_HEAP, "no DL_CAP_HEAP");
}

static void info(void)
{
	struct dmaload_info in;
	bool system = false;

	if (!CHECKF(dl, "no connection") || !CHECK_OK(dmaload_info(dl, &in)))
		return;
	CHECKF(in.caps == (DL_CAP_UDMABUF | DL_CAP_HEAP), "info caps 0x%x", in.caps);
	CHECK_INT(in.udmabuf_err, ==, 0);
	CHECK_U64(in.udmabuf_size_limit, ==, 64 * MiB);	/* the module's default */
	CHECK_U64(in.huge_page_size, ==, 2 * MiB);
	CHECK_INT(in.huge_pages_total, ==, 16);		/* hugepages=16 */
	for (size_t i = 0; i < in.n_heaps; i++)
		system |= !strcmp(in.heaps[i], "system");
	CHECKF(system, "heap system not listed (%zu heaps)", in.n_heaps);
	CHECK_INT(in.default_target, ==, DL_TARGET_AUTO);
}

/* auto + DL_LOAD_DMABUF picks udmabuf here; without the flag, a memfd. */
static void auto_dmabuf(void)
{
	struct dmaload_opts o;
	struct dmaload_event ev;

	opts_for(&o, DL_TARGET_AUTO, DL_METHOD_AUTO, 0, DMALOAD_TO_EOF);
	o.dmabuf = true;
	o.exact_size = true;
	if (CHECKF(dmaload_load_path_sync(dl, BIG->path, &o, &ev) == 0, "%s",
		   lc_event_str(&ev)))
		check_dmabuf_done(&ev, DL_TARGET_UDMABUF, BIG->size, BIG->seed, 0);
	o.dmabuf = false;
	if (CHECKF(dmaload_load_path_sync(dl, TINY->path, &o, &ev) == 0, "%s",
		   lc_event_str(&ev))) {
		CHECK_INT(ev.target, ==, DL_TARGET_MEMFD);
		CHECK_BUF(ev.fd, TINY->size, TINY->seed, 0);
		close(ev.fd);
	}
}

/* heap targets and method cfr on the stock kernel: it refuses copy_file_range into
 * the heap, and a method the client names is obeyed or refused with a reason. */
static void heap_cfr_refused(void)
{
	static const int einval[] = { EINVAL };
	struct dmaload_opts o;
	struct dmaload_event ev;

	opts_for(&o, DL_TARGET_HEAP, DL_METHOD_CFR, 0, MiB);
	if (lc_load_error(dl, BIG->path, -1, &o, einval, 1, &ev))
		CHECKF(strstr(ev.message, "copy_file_range") && strstr(ev.message, "system"),
		       "message: %s", ev.message);
}

/* A heap that does not exist: the error names it and what to do. */
static void heap_missing(void)
{
	static const int enoent[] = { ENOENT };
	struct dmaload_opts o;
	struct dmaload_event ev;

	opts_for(&o, DL_TARGET_HEAP, DL_METHOD_AUTO, 0, MiB);
	o.heap = "nosuchheap";
	if (lc_load_error(dl, BIG->path, -1, &o, enoent, 1, &ev))
		CHECKF(strstr(ev.message, "nosuchheap") && strstr(ev.message, "memfd"),
		       "message: %s", ev.message);
}

/* Whether the guest's kernel is at least @major.@minor. */
static bool kernel_at_least(unsigned major, unsigned minor)
{
	struct utsname u;
	unsigned ma = 0, mi = 0;

	if (uname(&u) < 0 || sscanf(u.release, "%u.%u", &ma, &mi) != 2)
		return false;
	return ma > major || (ma == major && mi >= minor);
}

/* A udmabuf from a hugetlb memfd: the daemon probes whether this kernel's udmabuf
 * takes one (6.11 and later must: they pin folios); either way the bytes must be
 * right and INFO must agree with DONE. */
static void udmabuf_hugetlb(void)
{
	struct dmaload_opts o;
	struct dmaload_event ev;
	struct dmaload_info in;
	bool huge;

	if (!CHECKF(hugepages_free() >= 2, "only %ld free huge pages", hugepages_free()))
		return;
	opts_for(&o, DL_TARGET_UDMABUF, DL_METHOD_AUTO, 0, DMALOAD_TO_EOF);	/* not exact */
	if (!CHECKF(dmaload_load_path_sync(dl, BIG->path, &o, &ev) == 0, "%s",
		    lc_event_str(&ev)))
		return;
	huge = ev.done_flags & DL_DONE_HUGETLB;
	if (!check_dmabuf_done(&ev, DL_TARGET_UDMABUF, BIG->size, BIG->seed, 0))
		return;
	if (!CHECK_OK(dmaload_info(dl, &in)))
		return;
	CHECKF(huge == in.udmabuf_hugetlb, "DONE hugetlb %d but INFO udmabuf_hugetlb %d",
	       huge, in.udmabuf_hugetlb);
	if (kernel_at_least(6, 11))
		CHECKF(huge, "a 6.11+ kernel, and the daemon fell back to 4 KiB pages");
	fprintf(stderr, "# udmabuf on this kernel %s hugetlb memfds: %s\n",
		in.udmabuf_hugetlb ? "takes" : "refuses",
		huge ? "2 MiB pages" : "fell back to 4 KiB pages");
}

static int write_param(const char *path, const char *val)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC), r = 0;

	if (fd < 0)
		return -errno;
	if (write(fd, val, strlen(val)) != (ssize_t)strlen(val))
		r = -errno;
	close(fd);
	return r;
}

/* udmabuf.size_limit_mb lowered to 1: a 3 MiB udmabuf is refused with a message that
 * names the parameter and the value it needs; auto + dmabuf moves on to the heap. */
static void size_limit(void)
{
	static const int efbig[] = { EFBIG };
	struct dmaload_opts o;
	struct dmaload_event ev;

	if (!CHECK_OK(write_param(LIMIT_PARAM, "1")))
		return;
	opts_for(&o, DL_TARGET_UDMABUF, DL_METHOD_AUTO, 0, DMALOAD_TO_EOF);
	if (lc_load_error(dl, BIG->path, -1, &o, efbig, 1, &ev))
		CHECKF(strstr(ev.message, "udmabuf.size_limit_mb (1)") &&
		       strstr(ev.message, "at least 4"), "message: %s", ev.message);
	/* one page under the limit still works */
	opts_for(&o, DL_TARGET_UDMABUF, DL_METHOD_AUTO, 0, MiB);
	o.exact_size = true;
	if (CHECKF(dmaload_load_path_sync(dl, BIG->path, &o, &ev) == 0, "%s",
		   lc_event_str(&ev)))
		check_dmabuf_done(&ev, DL_TARGET_UDMABUF, MiB, BIG->seed, 0);
	opts_for(&o, DL_TARGET_AUTO, DL_METHOD_AUTO, 0, DMALOAD_TO_EOF);
	o.dmabuf = true;
	if (CHECKF(dmaload_load_path_sync(dl, BIG->path, &o, &ev) == 0, "%s",
		   lc_event_str(&ev)))
		check_dmabuf_done(&ev, DL_TARGET_HEAP, BIG->size, BIG->seed, 0);
	CHECK_OK(write_param(LIMIT_PARAM, "64"));
}

/* ---- many clients ------------------------------------------------------------------ */

static int mixed_child(void *arg, char *msg, size_t len)
{
	static const uint8_t targets[] = { DL_TARGET_MEMFD, DL_TARGET_UDMABUF, DL_TARGET_HEAP };
	unsigned k = (unsigned)(uintptr_t)arg;
	struct dmaload_opts o;
	struct dmaload_event ev;
	struct dmaload *c;
	uint64_t ids[3];
	char why[256];
	int r;

	if ((r = dmaload_connect(&c, NULL, "guest-mixed")) < 0) {
		snprintf(msg, len, "connect: %s", strerror(-r));
		return 1;
	}
	/* three loads in flight on one connection, each of another target */
	for (unsigned i = 0; i < 3; i++) {
		uint8_t t = targets[(k + i) % 3];

		opts_for(&o, t, DL_METHOD_AUTO, (k + i) * 4096, MiB + k);
		o.exact_size = true;
		if ((r = dmaload_load_path(c, BIG->path, &o, &ids[i])) < 0) {
			snprintf(msg, len, "load: %s", strerror(-r));
			return 1;
		}
	}
	for (unsigned i = 0; i < 3; i++) {
		uint8_t t = targets[(k + i) % 3];
		bool ok;

		if ((r = dmaload_wait(c, ids[i], &ev, NULL, NULL)) < 0 ||
		    ev.type != DMALOAD_EV_DONE) {
			snprintf(msg, len, "load %u (%s): %s", i, dl_target_name(t),
				 r < 0 ? strerror(-r) : lc_event_str(&ev));
			return 1;
		}
		if (ev.target != t) {
			snprintf(msg, len, "load %u: target %s, not %s", i,
				 dl_target_name(ev.target), dl_target_name(t));
			return 1;
		}
		if (t == DL_TARGET_MEMFD)
			ok = buf_verify(ev.fd, MiB + k, BIG->seed, (k + i) * 4096, why,
					sizeof(why));
		else
			ok = dmabuf_verify(ev.fd, MiB + k, ev.buf_size, BIG->seed,
					   (k + i) * 4096, why, sizeof(why));
		close(ev.fd);
		if (!ok) {
			snprintf(msg, len, "load %u (%s): %s", i, dl_target_name(t), why);
			return 1;
		}
	}
	dmaload_close(c);
	return 0;
}

static void many_clients(void)
{
	enum { N = 4 };
	pid_t pids[N];
	int rc;

	for (unsigned k = 0; k < N; k++) {
		pids[k] = fork();
		if (pids[k] == 0) {
			char m[512] = "";
			int r = mixed_child((void *)(uintptr_t)k, m, sizeof(m));

			if (r)
				fprintf(stderr, "# client %u: %s\n", k, m);
			_exit(r);
		}
		CHECKF(pids[k] > 0, "fork: %s", strerror(errno));
	}
	for (unsigned k = 0; k < N; k++) {
		int st = 0;

		rc = pids[k] > 0 && waitpid(pids[k], &st, 0) == pids[k] && WIFEXITED(st) ?
			WEXITSTATUS(st) : -1;
		CHECKF(rc == 0, "client %u failed (status %d; its reason is on stderr)", k, rc);
	}
}

/* ---- killed clients ---------------------------------------------------------------- */

/* Waits until the daemon runs no load (the killed clients' loads are released). */
static bool daemon_idle(int timeout_ms)
{
	uint64_t end = now_ms() + (uint64_t)timeout_ms;
	struct dmaload_status st;

	while (now_ms() < end) {
		if (dmaload_status(dl, &st) < 0)
			return false;
		dmaload_status_free(&st);
		if (st.loads_active == 0 && st.loads_queued == 0 && st.n_loads == 0 &&
		    st.clients == 1)
			return true;
		sleep_ms(50);
	}
	return false;
}

/* Starts a udmabuf and a heap load of the big file, waits for the first ACCEPTED
 * (the buffers exist then), and dies. */
static void __attribute__((noreturn)) killed_child(void)
{
	struct dmaload_opts o;
	struct dmaload_event ev;
	struct dmaload *c;
	uint64_t id;

	if (dmaload_connect(&c, NULL, "guest-killed") < 0)
		_exit(1);
	opts_for(&o, DL_TARGET_UDMABUF, DL_METHOD_BUFFERED, 0, DMALOAD_TO_EOF);
	o.exact_size = true;
	dmaload_load_path(c, BIG->path, &o, &id);
	opts_for(&o, DL_TARGET_HEAP, DL_METHOD_BUFFERED, 0, DMALOAD_TO_EOF);
	dmaload_load_path(c, BIG->path, &o, &id);
	while (dmaload_next_event(c, &ev, 5000) == 1 && ev.type != DMALOAD_EV_ACCEPTED)
		if (ev.fd >= 0)
			close(ev.fd);
	raise(SIGKILL);
	_exit(1);
}

static void killed_mid_load(void)
{
	long shmem0, free0, shmem1, free1;
	int st;

	if (!CHECKF(daemon_idle(10000), "the daemon is not idle before the case"))
		return;
	drop_caches();
	shmem0 = meminfo_value("Shmem");
	free0 = meminfo_value("MemFree");
	for (int round = 0; round < 3; round++) {
		pid_t pid = fork();

		if (pid == 0)
			killed_child();
		if (!CHECKF(pid > 0, "fork: %s", strerror(errno)))
			return;
		waitpid(pid, &st, 0);
		CHECKF(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL, "child status 0x%x", st);
	}
	if (!CHECKF(daemon_idle(30000), "the killed clients' loads are still there"))
		return;
	drop_caches();
	shmem1 = meminfo_value("Shmem");
	free1 = meminfo_value("MemFree");
	fprintf(stderr, "# killed clients: Shmem %ld -> %ld KiB, MemFree %ld -> %ld KiB\n",
		shmem0, shmem1, free0, free1);
	/* Each round held 3 MiB of udmabuf memfd (Shmem) and 3 MiB of heap pages: a
	 * leak of any of them is far above the noise. */
	CHECKF(shmem1 - shmem0 < 1024, "Shmem grew by %ld KiB", shmem1 - shmem0);
	CHECKF(free0 - free1 < 2048, "MemFree fell by %ld KiB", free0 - free1);
}

int main(int argc, char **argv)
{
	static const uint8_t methods[] = { DL_METHOD_AUTO, DL_METHOD_DIRECT,
					   DL_METHOD_BUFFERED };
	static const uint8_t targets[] = { DL_TARGET_UDMABUF, DL_TARGET_HEAP };
	const char *dir;

	if (argc == 3 && strcmp(argv[1], "--make-files") == 0)
		return make_files(argv[2]);
	if (argc != 2) {
		fprintf(stderr, "usage: %s DISK_DIR (inside the qemu test kernel)\n"
			"       %s --make-files DIR\n", argv[0], argv[0]);
		return 2;
	}
	dir = argv[1];
	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++)
		snprintf(files[i].path, sizeof(files[i].path), "%s/%s", dir, files[i].name);
	check_init(SUITE);

	CASE(hello(), "targets: HELLO announces udmabuf and heaps");
	CASE(info(), "targets: INFO lists heap system, the size limit, the huge page pool");
	for (size_t t = 0; t < sizeof(targets); t++) {
		uint8_t tg = targets[t];
		const char *tn = tg == DL_TARGET_HEAP ? "heap:system" : "udmabuf";

		for (size_t m = 0; m < sizeof(methods); m++)
			CASE(load(BIG, tg, m == 1, methods[m], 0, DMALOAD_TO_EOF),
			     "targets: %s, whole file by %s, method %s%s", tn,
			     m == 1 ? "fd" : "path",
			     methods[m] ? dl_method_name(methods[m]) : "auto",
			     cfr_how(tg, methods[m]));
		CASE(load(BIG, tg, false, DL_METHOD_DIRECT, 4096, 2 * MiB + 100),
		     "targets: %s, range at a page-aligned offset, method direct", tn);
		CASE(load(BIG, tg, true, DL_METHOD_AUTO, 2 * MiB + 512, DMALOAD_TO_EOF),
		     "targets: %s, range to EOF at a 512-aligned offset by fd%s", tn,
		     cfr_how(tg, DL_METHOD_AUTO));
		CASE(load(BIG, tg, false, DL_METHOD_AUTO, 1000, MiB),
		     "targets: %s, range at an unaligned offset%s", tn,
		     cfr_how(tg, DL_METHOD_AUTO));
		CASE(load(TINY, tg, false, DL_METHOD_AUTO, 0, DMALOAD_TO_EOF),
		     "targets: %s, a 300-byte file%s", tn, cfr_how(tg, DL_METHOD_AUTO));

		/* Method cfr at the same sizes and offsets, where this kernel can. */
		if (tg == DL_TARGET_HEAP && !guest_patched())
			continue;
		CASE(load(BIG, tg, false, DL_METHOD_CFR, 0, DMALOAD_TO_EOF),
		     "targets: %s, whole file by path, method cfr%s", tn,
		     cfr_how(tg, DL_METHOD_CFR));
		CASE(load(BIG, tg, true, DL_METHOD_CFR, 0, DMALOAD_TO_EOF),
		     "targets: %s, whole file by fd, method cfr%s", tn,
		     cfr_how(tg, DL_METHOD_CFR));
		CASE(load(BIG, tg, false, DL_METHOD_CFR, 4096, 2 * MiB + 100),
		     "targets: %s, range at a page-aligned offset, method cfr%s", tn,
		     cfr_how(tg, DL_METHOD_CFR));
		CASE(load(BIG, tg, true, DL_METHOD_CFR, 2 * MiB + 512, DMALOAD_TO_EOF),
		     "targets: %s, range to EOF at a 512-aligned offset by fd, method cfr%s",
		     tn, cfr_how(tg, DL_METHOD_CFR));
		CASE(load(BIG, tg, false, DL_METHOD_CFR, 1000, MiB),
		     "targets: %s, range at an unaligned offset, method cfr%s", tn,
		     cfr_how(tg, DL_METHOD_CFR));
		CASE(load(TINY, tg, true, DL_METHOD_CFR, 0, DMALOAD_TO_EOF),
		     "targets: %s, a 300-byte file by fd, method cfr%s", tn,
		     cfr_how(tg, DL_METHOD_CFR));
	}
	if (!guest_patched())
		CASE(heap_cfr_refused(), "targets: heap:system with method cfr is refused "
		     "with EINVAL and a reason (stock kernel)");
	CASE(heap_missing(), "targets: heap:nosuchheap is refused with ENOENT naming it");
	CASE(auto_dmabuf(), "targets: auto picks udmabuf for DL_LOAD_DMABUF, memfd without");
	CASE(udmabuf_hugetlb(), "targets: udmabuf of a hugetlb memfd (2 MiB pages on 6.11+, "
	     "else the fallback)");
	CASE(size_limit(), "targets: udmabuf.size_limit_mb=1: EFBIG naming the parameter; "
	     "auto falls back to the heap");
	CASE(many_clients(), "targets: 4 clients, each with memfd, udmabuf and heap loads "
	     "in flight");
	CASE(killed_mid_load(), "targets: clients killed mid-load leave no pages behind");

	dl = dmaload_close(dl);
	return check_finish();
}
