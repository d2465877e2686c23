/*
 * guest-dmabuf.c: what the test kernel offers the daemon's dma-buf targets, checked
 * without the daemon. Runs inside qemu (tests/kernel/run.sh), never on the host.
 *
 *   guest-dmabuf --make-files DIR   on the host, before `mke2fs -d DIR`: writes the
 *                                   source file of the O_DIRECT and copy_file_range cases
 *   guest-dmabuf DISK_DIR           in the guest: DISK_DIR is the mounted ext4 test disk
 *
 * The facts the udmabuf and heap:NAME targets of issue 5 will rely on, each one case:
 *   - /dev/udmabuf turns a memfd sealed with F_SEAL_SHRINK into a dma-buf whose mmap
 *     holds the memfd's bytes; it refuses a memfd without F_SEAL_SHRINK, one with
 *     F_SEAL_WRITE, and one larger than udmabuf.size_limit_mb;
 *   - /dev/dma_heap/system allocates a dma-buf that can be mapped, written and read
 *     back between DMA_BUF_IOCTL_SYNC brackets;
 *   - an O_DIRECT read into the heap buffer's mapping fails (its pages cannot be
 *     pinned): the daemon must fill heap buffers another way. The case name says
 *     which errno the kernel gave;
 *   - huge pages reserved on the kernel command line are there, MFD_HUGETLB memfds
 *     work, and a udmabuf over one (6.11+) maps and frees its huge pages;
 *   - copy_file_range from ext4 into a memfd, a udmabuf (over 4 KiB and huge pages)
 *     and a system heap buffer: the stock kernel refuses each (EXDEV, EINVAL); the
 *     patched one (guest.h) copies the bytes exactly by direct I/O, leaving none of
 *     the file in its page cache, falls back to the page cache at an unaligned offset
 *     and for a ramfs source (no O_DIRECT), refuses a copy past a dma-buf's end
 *     (ENOSPC), and still refuses hugetlb memfds (EXDEV).
 * A case that finds the kernel without the feature fails: in this kernel it must be
 * there (tests/kernel/kernel.config).
 */
#include <fcntl.h>
#include <linux/dma-buf.h>
#include <linux/dma-heap.h>
#include <linux/udmabuf.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../lib/check.h"
#include "../lib/harness.h"
#include "guest.h"

#define SUITE "kernel"
#define PAGE 4096u
#define BUF_SIZE (1 * MiB)
#define SEED 77
#define SRC_NAME "dmabuf-src.bin"

static const char *disk_dir;

/* errno's name for case names ("EFAULT"), or "success" for 0. */
static const char *err_name(int e)
{
	const char *n = e ? strerrorname_np(e) : "success";

	return n ? n : "unknown errno";
}

/*
 * A memfd of @size bytes of pattern SEED with @seals added. Returns the fd, or -1
 * with the failure recorded.
 */
static int memfd_patterned(size_t size, int seals)
{
	void *buf;
	int fd;

	fd = memfd_create("guest-dmabuf", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (!CHECKF(fd >= 0, "memfd_create: %s", strerror(errno)))
		return -1;
	buf = malloc(size);
	if (!CHECK(buf != NULL))
		goto fail;
	pattern_fill(SEED, 0, buf, size);
	if (!CHECKF(pwrite(fd, buf, size, 0) == (ssize_t)size, "pwrite: %s",
		    strerror(errno)))
		goto fail;
	free(buf);
	buf = NULL;
	if (seals && !CHECKF(fcntl(fd, F_ADD_SEALS, seals) == 0, "F_ADD_SEALS 0x%x: %s",
			     seals, strerror(errno)))
		goto fail;
	return fd;
fail:
	free(buf);
	close(fd);
	return -1;
}

/* UDMABUF_CREATE over [0, @size) of @memfd. Returns the dma-buf fd or -errno. */
static int udmabuf_create(int memfd, uint64_t size)
{
	struct udmabuf_create c = {
		.memfd = (uint32_t)memfd,
		.flags = UDMABUF_FLAGS_CLOEXEC,
		.offset = 0,
		.size = size,
	};
	int dev, fd, r;

	dev = open("/dev/udmabuf", O_RDWR | O_CLOEXEC);
	if (dev < 0)
		return -errno;
	fd = ioctl(dev, UDMABUF_CREATE, &c);
	r = fd < 0 ? -errno : fd;
	close(dev);
	return r;
}

/* DMA_BUF_IOCTL_SYNC on @fd with @flags; true on success, else the failure recorded. */
static bool dmabuf_sync(int fd, uint64_t flags)
{
	struct dma_buf_sync s = { .flags = flags };

	return CHECKF(ioctl(fd, DMA_BUF_IOCTL_SYNC, &s) == 0, "DMA_BUF_IOCTL_SYNC 0x%llx: %s",
		      (unsigned long long)flags, strerror(errno));
}

/* Compares @len mapped bytes with pattern SEED from offset 0; names the first bad one. */
static bool map_matches(const uint8_t *p, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (p[i] != pattern_byte(SEED, i))
			return CHECKF(false, "byte %zu is 0x%02x, expected 0x%02x", i, p[i],
				      pattern_byte(SEED, i));
	return true;
}

static void udmabuf_roundtrip(void)
{
	uint8_t *map = MAP_FAILED;
	int memfd, buf = -1;

	if (!CHECKF(access("/dev/udmabuf", R_OK | W_OK) == 0, "/dev/udmabuf: %s",
		    strerror(errno)))
		return;
	memfd = memfd_patterned(BUF_SIZE, F_SEAL_SHRINK);
	if (memfd < 0)
		return;
	buf = udmabuf_create(memfd, BUF_SIZE);
	if (!CHECKF(buf >= 0, "UDMABUF_CREATE: %s", strerror(-buf)))
		goto out;
	CHECK_INT(lseek(buf, 0, SEEK_END), ==, BUF_SIZE);
	CHECKF(fcntl(buf, F_GETFD) & FD_CLOEXEC, "UDMABUF_FLAGS_CLOEXEC ignored");
	map = mmap(NULL, BUF_SIZE, PROT_READ, MAP_SHARED, buf, 0);
	if (!CHECKF(map != MAP_FAILED, "mmap of the udmabuf: %s", strerror(errno)))
		goto out;
	if (dmabuf_sync(buf, DMA_BUF_SYNC_START | DMA_BUF_SYNC_READ)) {
		map_matches(map, BUF_SIZE);
		dmabuf_sync(buf, DMA_BUF_SYNC_END | DMA_BUF_SYNC_READ);
	}
out:
	if (map != MAP_FAILED)
		munmap(map, BUF_SIZE);
	if (buf >= 0)
		close(buf);
	close(memfd);
}

/* udmabuf's rules on seals: the daemon's udmabuf target must seal exactly so. */
static void udmabuf_refuses(int seals, int want)
{
	int memfd, buf;

	memfd = memfd_patterned(16 * PAGE, seals);
	if (memfd < 0)
		return;
	buf = udmabuf_create(memfd, 16 * PAGE);
	if (buf >= 0)
		close(buf);
	CHECK_ERR(buf < 0 ? buf : 0, -want);
	close(memfd);
}

/* udmabuf.size_limit_mb (default 64) caps one buffer: one page more is refused. The
 * memfd stays sparse, and the size check comes before any page is pinned. */
static void udmabuf_size_limit(void)
{
	unsigned long limit_mb = 0;
	uint64_t size;
	int memfd, buf;
	FILE *f;

	f = fopen("/sys/module/udmabuf/parameters/size_limit_mb", "re");
	if (!CHECKF(f, "size_limit_mb: %s", strerror(errno)))
		return;
	if (fscanf(f, "%lu", &limit_mb) != 1)
		limit_mb = 0;
	fclose(f);
	if (!CHECKF(limit_mb > 0, "size_limit_mb unreadable"))
		return;
	fprintf(stderr, "# udmabuf.size_limit_mb = %lu\n", limit_mb);
	size = limit_mb * MiB + PAGE;
	memfd = memfd_create("guest-dmabuf-big", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (!CHECKF(memfd >= 0, "memfd_create: %s", strerror(errno)))
		return;
	if (CHECK(ftruncate(memfd, (off_t)size) == 0) &&
	    CHECK(fcntl(memfd, F_ADD_SEALS, F_SEAL_SHRINK) == 0)) {
		buf = udmabuf_create(memfd, size);
		if (buf >= 0)
			close(buf);
		CHECK_ERR(buf < 0 ? buf : 0, -EINVAL);
	}
	close(memfd);
}

/* A dma-buf from the system heap, or -errno. */
static int heap_alloc(uint64_t len)
{
	struct dma_heap_allocation_data a = {
		.len = len,
		.fd_flags = O_RDWR | O_CLOEXEC,
	};
	int heap, r;

	heap = open("/dev/dma_heap/system", O_RDONLY | O_CLOEXEC);
	if (heap < 0)
		return -errno;
	r = ioctl(heap, DMA_HEAP_IOCTL_ALLOC, &a) < 0 ? -errno : (int)a.fd;
	close(heap);
	return r;
}

static void heap_roundtrip(void)
{
	uint8_t *map;
	int buf;

	buf = heap_alloc(BUF_SIZE);
	if (!CHECKF(buf >= 0, "DMA_HEAP_IOCTL_ALLOC on /dev/dma_heap/system: %s",
		    strerror(-buf)))
		return;
	CHECK_INT(lseek(buf, 0, SEEK_END), ==, BUF_SIZE);
	map = mmap(NULL, BUF_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, buf, 0);
	if (!CHECKF(map != MAP_FAILED, "mmap of the heap buffer: %s", strerror(errno))) {
		close(buf);
		return;
	}
	if (dmabuf_sync(buf, DMA_BUF_SYNC_START | DMA_BUF_SYNC_WRITE)) {
		pattern_fill(SEED, 0, map, BUF_SIZE);
		dmabuf_sync(buf, DMA_BUF_SYNC_END | DMA_BUF_SYNC_WRITE);
	}
	/* A second mapping sees the same pages: the bytes went to the buffer, not to a
	 * private copy. */
	munmap(map, BUF_SIZE);
	map = mmap(NULL, BUF_SIZE, PROT_READ, MAP_SHARED, buf, 0);
	if (CHECKF(map != MAP_FAILED, "second mmap: %s", strerror(errno))) {
		if (dmabuf_sync(buf, DMA_BUF_SYNC_START | DMA_BUF_SYNC_READ)) {
			map_matches(map, BUF_SIZE);
			dmabuf_sync(buf, DMA_BUF_SYNC_END | DMA_BUF_SYNC_READ);
		}
		munmap(map, BUF_SIZE);
	}
	close(buf);
}

/*
 * Tries an O_DIRECT read of the test file into a heap buffer's mapping. Returns the
 * errno (0 if it worked), or -1 when the attempt could not be set up (recorded in
 * @why).
 */
static int heap_odirect_attempt(char *why, size_t len)
{
	char path[256];
	uint8_t *map = MAP_FAILED;
	int src = -1, buf, e = -1;

	snprintf(path, sizeof(path), "%s/" SRC_NAME, disk_dir);
	buf = heap_alloc(BUF_SIZE);
	if (buf < 0) {
		snprintf(why, len, "DMA_HEAP_IOCTL_ALLOC: %s", strerror(-buf));
		return -1;
	}
	src = open(path, O_RDONLY | O_CLOEXEC | O_DIRECT);
	if (src < 0) {
		snprintf(why, len, "open %s: %s", path, strerror(errno));
		goto out;
	}
	map = mmap(NULL, BUF_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, buf, 0);
	if (map == MAP_FAILED) {
		snprintf(why, len, "mmap: %s", strerror(errno));
		goto out;
	}
	e = read(src, map, 64 * 1024) < 0 ? errno : 0;
out:
	if (map != MAP_FAILED)
		munmap(map, BUF_SIZE);
	if (src >= 0)
		close(src);
	close(buf);
	return e;
}

/* The heap target's premise: O_DIRECT cannot read into its mapping. The case name
 * carries the errno the kernel gave, so the log answers "what does it say". */
static void heap_no_odirect(void)
{
	char why[512] = "";
	int e;

	e = heap_odirect_attempt(why, sizeof(why));
	check_begin("heap: O_DIRECT read into the mapping of a heap buffer fails (%s)",
		    e < 0 ? "not tried" : err_name(e));
	if (CHECKF(e >= 0, "%s", why))
		CHECKF(e == EFAULT, "expected EFAULT: the heap's pages should not pin");
	check_end();
}

/* ---- copy_file_range into buffers ------------------------------------------------ */

/* The buffers copy_file_range is tried into. */
enum dst_kind { DST_MEMFD, DST_UDMABUF, DST_UDMABUF_HUGE, DST_HEAP, DST_HUGETLB_MEMFD };

static const char *const dst_names[] = {
	[DST_MEMFD] = "a memfd",
	[DST_UDMABUF] = "a udmabuf",
	[DST_UDMABUF_HUGE] = "a udmabuf over huge pages",
	[DST_HEAP] = "a system heap buffer",
	[DST_HUGETLB_MEMFD] = "a hugetlb memfd",
};

struct dst {
	enum dst_kind kind;
	int fd;			/* what copy_file_range writes into */
	int memfd;		/* a udmabuf's memfd, else -1 */
	size_t size;
};

/* Makes a @kind buffer of at least @size bytes (huge pages round it up). */
static bool dst_make(struct dst *d, enum dst_kind kind, size_t size)
{
	unsigned huge = kind == DST_UDMABUF_HUGE || kind == DST_HUGETLB_MEMFD ? MFD_HUGETLB : 0;

	*d = (struct dst){ .kind = kind, .fd = -1, .memfd = -1,
			   .size = huge ? (size + 2 * MiB - 1) / (2 * MiB) * (2 * MiB) : size };
	if (kind == DST_HEAP) {
		d->fd = heap_alloc(d->size);
		return CHECKF(d->fd >= 0, "DMA_HEAP_IOCTL_ALLOC: %s", strerror(-d->fd));
	}
	d->memfd = memfd_create("guest-dmabuf-dst", MFD_CLOEXEC | MFD_ALLOW_SEALING | huge);
	if (!CHECKF(d->memfd >= 0, "memfd_create: %s", strerror(errno)) ||
	    !CHECKF(ftruncate(d->memfd, (off_t)d->size) == 0, "ftruncate: %s", strerror(errno)))
		return false;
	if (kind == DST_MEMFD || kind == DST_HUGETLB_MEMFD) {
		d->fd = d->memfd;
		d->memfd = -1;
		return true;
	}
	/* udmabuf pins the memfd's pages, so they must exist: fallocate them. */
	if (!CHECKF(fallocate(d->memfd, 0, 0, (off_t)d->size) == 0, "fallocate: %s",
		    strerror(errno)) ||
	    !CHECK(fcntl(d->memfd, F_ADD_SEALS, F_SEAL_SHRINK) == 0))
		return false;
	d->fd = udmabuf_create(d->memfd, d->size);
	return CHECKF(d->fd >= 0, "UDMABUF_CREATE: %s", strerror(-d->fd));
}

static void dst_free(struct dst *d)
{
	if (d->fd >= 0)
		close(d->fd);
	if (d->memfd >= 0)
		close(d->memfd);
}

/* The first @len bytes of @fd's mapping (@dmabuf: between SYNC brackets) hold
 * pattern SEED from file offset @off. */
static bool map_holds(const struct dst *d, int fd, bool dmabuf, size_t len, uint64_t off)
{
	uint8_t *map;
	bool ok = true;

	map = mmap(NULL, d->size, PROT_READ, MAP_SHARED, fd, 0);
	if (!CHECKF(map != MAP_FAILED, "mmap of %s: %s", fd == d->memfd ? "the memfd" :
		    dst_names[d->kind], strerror(errno)))
		return false;
	if (!dmabuf || dmabuf_sync(fd, DMA_BUF_SYNC_START | DMA_BUF_SYNC_READ)) {
		for (size_t i = 0; i < len && ok; i++)
			ok = CHECKF(map[i] == pattern_byte(SEED, off + i), "%s: byte %zu is "
				    "0x%02x, expected 0x%02x", fd == d->memfd ? "the memfd" :
				    dst_names[d->kind], i, map[i], pattern_byte(SEED, off + i));
		if (dmabuf)
			dmabuf_sync(fd, DMA_BUF_SYNC_END | DMA_BUF_SYNC_READ);
	} else {
		ok = false;
	}
	munmap(map, d->size);
	return ok;
}

/* The buffer's first @len bytes hold pattern SEED from file offset @off; a udmabuf's
 * memfd too (its pages are the udmabuf's, and a fault must not zero them). */
static bool dst_holds(const struct dst *d, size_t len, uint64_t off)
{
	bool dmabuf = d->kind == DST_UDMABUF || d->kind == DST_UDMABUF_HUGE ||
		      d->kind == DST_HEAP;

	if (!map_holds(d, d->fd, dmabuf, len, off))
		return false;
	return d->memfd < 0 || map_holds(d, d->memfd, false, len, off);
}

/* copy_file_range of [@in, @in + @len) of @src to @dst's byte @out, short copies
 * continued. Returns 0 or the errno of the first failing call. */
static int cfr_all(int src, loff_t in, int dst, loff_t out, size_t len)
{
	while (len) {
		ssize_t n = copy_file_range(src, &in, dst, &out, len, 0);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return errno;
		if (n == 0)
			return ENODATA;
		len -= (size_t)n;
	}
	return 0;
}

static int src_open(void)
{
	char path[PATH_MAX];
	int fd;

	snprintf(path, sizeof(path), "%s/" SRC_NAME, disk_dir);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	CHECKF(fd >= 0, "open %s: %s", path, strerror(errno));
	return fd;
}

/* The stock kernel: copy_file_range from ext4 into @kind is refused, with the errno
 * the daemon's probe takes as "use splice pairs" (memfd) or "not here" (dma-bufs). */
static void cfr_refused(enum dst_kind kind, int want)
{
	struct dst d;
	int src, e = -1;

	src = src_open();
	if (src < 0)
		return;
	if (dst_make(&d, kind, BUF_SIZE))
		e = cfr_all(src, 0, d.fd, 0, 64 * 1024);
	dst_free(&d);
	close(src);
	CHECKF(e == want, "copy_file_range: %s, expected %s", e < 0 ? "not tried" : err_name(e),
	       err_name(want));
}

/* The patched kernel: the whole source file into @kind, from a cold page cache: the
 * bytes are exact, and none of the file is in its page cache (direct I/O). */
static void cfr_direct(enum dst_kind kind)
{
	struct dst d;
	long cached;
	int src, e;

	src = src_open();
	if (src < 0)
		return;
	drop_caches();
	if (dst_make(&d, kind, BUF_SIZE)) {
		e = cfr_all(src, 0, d.fd, 0, BUF_SIZE);
		if (CHECKF(e == 0, "copy_file_range into %s: %s", dst_names[kind], err_name(e)))
			dst_holds(&d, BUF_SIZE, 0);
		cached = guest_cached_pages(src, 0, BUF_SIZE);
		if (CHECKF(cached >= 0, "cachestat: %s", strerror((int)-cached)))
			CHECKF(cached == 0, "%ld of %u pages of the file are in its page cache: "
			       "the copy went through it", cached, (unsigned)(BUF_SIZE / PAGE));
	}
	dst_free(&d);
	close(src);
}

/* The patched kernel at a file offset O_DIRECT cannot read at: the page cache instead,
 * and the bytes are still exact. */
static void cfr_unaligned(void)
{
	struct dst d;
	int src, e;

	src = src_open();
	if (src < 0)
		return;
	drop_caches();
	if (dst_make(&d, DST_MEMFD, BUF_SIZE)) {
		e = cfr_all(src, 1000, d.fd, 0, 64 * 1024 + 7);
		if (CHECKF(e == 0, "copy_file_range: %s", err_name(e)))
			dst_holds(&d, 64 * 1024 + 7, 1000);
	}
	dst_free(&d);
	close(src);
}

/* The patched kernel from a filesystem without O_DIRECT (ramfs): through its page
 * cache, bytes exact. */
static void cfr_ramfs(void)
{
	const char *dir = "/tmp/guest-dmabuf-ramfs", *path = "/tmp/guest-dmabuf-ramfs/src";
	struct dst d;
	int src, e, r;

	mkdir(dir, 0755);
	if (!CHECKF(mount("ramfs", dir, "ramfs", 0, NULL) == 0, "mount ramfs: %s",
		    strerror(errno)))
		return;
	r = file_make(path, BUF_SIZE, SEED, 0644);
	if (CHECKF(r == 0, "writing %s: %s", path, strerror(-r)) &&
	    CHECKF((src = open(path, O_RDONLY | O_CLOEXEC)) >= 0, "open: %s", strerror(errno))) {
		int dfd = open(path, O_RDONLY | O_DIRECT), derr = errno;

		if (dfd >= 0)
			close(dfd);
		if (CHECKF(dfd < 0 && derr == EINVAL, "ramfs took O_DIRECT") &&
		    dst_make(&d, DST_MEMFD, BUF_SIZE)) {
			e = cfr_all(src, 0, d.fd, 0, BUF_SIZE);
			if (CHECKF(e == 0, "copy_file_range: %s", err_name(e)))
				dst_holds(&d, BUF_SIZE, 0);
			dst_free(&d);
		}
		close(src);
	}
	umount(dir);
	rmdir(dir);
}

/* The patched kernel: a dma-buf has a fixed size; a copy to its end is refused. */
static void cfr_past_end(void)
{
	struct dst d;
	int src, e = -1;

	src = src_open();
	if (src < 0)
		return;
	if (dst_make(&d, DST_HEAP, BUF_SIZE))
		e = cfr_all(src, 0, d.fd, BUF_SIZE, PAGE);
	dst_free(&d);
	close(src);
	CHECKF(e == ENOSPC, "copy_file_range at the end: %s, expected ENOSPC",
	       e < 0 ? "not tried" : err_name(e));
}

static void cfr_cases(void)
{
	static const enum dst_kind kinds[] = { DST_MEMFD, DST_UDMABUF, DST_UDMABUF_HUGE,
					       DST_HEAP };

	if (!guest_patched()) {
		CASE(cfr_refused(DST_MEMFD, EXDEV), "cfr (stock): copy_file_range from ext4 "
		     "into a memfd is refused with EXDEV");
		CASE(cfr_refused(DST_UDMABUF, EINVAL), "cfr (stock): copy_file_range from ext4 "
		     "into a udmabuf is refused with EINVAL");
		CASE(cfr_refused(DST_HEAP, EINVAL), "cfr (stock): copy_file_range from ext4 "
		     "into a system heap buffer is refused with EINVAL");
	} else {
		for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++)
			CASE(cfr_direct(kinds[i]), "cfr (patched): copy_file_range from ext4 "
			     "into %s: bytes exact%s, none of the file left in its page cache",
			     dst_names[kinds[i]], kinds[i] == DST_UDMABUF ||
			     kinds[i] == DST_UDMABUF_HUGE ? " (and in its memfd)" : "");
		CASE(cfr_unaligned(), "cfr (patched): copy_file_range from ext4 at an "
		     "unaligned offset into a memfd: bytes exact (page-cache fallback)");
		CASE(cfr_ramfs(), "cfr (patched): copy_file_range from ramfs (no O_DIRECT) "
		     "into a memfd: bytes exact");
		CASE(cfr_past_end(), "cfr (patched): copy_file_range to the end of a system "
		     "heap buffer is refused with ENOSPC");
	}
	CASE(cfr_refused(DST_HUGETLB_MEMFD, EXDEV), "cfr (%s): copy_file_range from ext4 "
	     "into a hugetlb memfd is refused with EXDEV", guest_kernel());
}

/* hugepages=N on the command line (tests/kernel/run.sh sets it) reserved N pages,
 * and an MFD_HUGETLB memfd maps one. */
static void hugetlb(void)
{
	char line[4096];
	const char *p;
	long want = -1, total = -1;
	uint8_t *map;
	FILE *f;
	int fd;

	f = fopen("/proc/cmdline", "re");
	if (f && fgets(line, sizeof(line), f) && (p = strstr(line, "hugepages=")))
		want = strtol(p + strlen("hugepages="), NULL, 10);
	if (f)
		fclose(f);
	total = meminfo_value("HugePages_Total");
	if (!CHECKF(want > 0, "no hugepages=N on /proc/cmdline"))
		return;
	if (!CHECK_INT(total, ==, want))
		return;
	fd = memfd_create("guest-dmabuf-huge", MFD_CLOEXEC | MFD_HUGETLB);
	if (!CHECKF(fd >= 0, "memfd_create(MFD_HUGETLB): %s", strerror(errno)))
		return;
	if (CHECK(ftruncate(fd, 2 * MiB) == 0)) {
		map = mmap(NULL, 2 * MiB, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
		if (CHECKF(map != MAP_FAILED, "mmap: %s", strerror(errno))) {
			pattern_fill(SEED, 0, map, 2 * MiB);
			map_matches(map, 2 * MiB);
			munmap(map, 2 * MiB);
		}
	}
	close(fd);
}

/* A udmabuf over a hugetlb memfd: 6.11 and later pin its folios, so its mapping holds
 * the memfd's bytes and closing both gives every huge page back (on 6.1, mapping such
 * a buffer and freeing it oopsed in the huge page free list). */
static void udmabuf_hugetlb_free(void)
{
	long before = hugepages_free();
	uint8_t *map;
	int memfd, buf;

	if (!CHECKF(before >= 1, "no free huge page"))
		return;
	memfd = memfd_create("guest-dmabuf-huge", MFD_CLOEXEC | MFD_ALLOW_SEALING | MFD_HUGETLB);
	if (!CHECKF(memfd >= 0, "memfd_create(MFD_HUGETLB): %s", strerror(errno)))
		return;
	if (!CHECK(ftruncate(memfd, 2 * MiB) == 0))
		goto out;
	map = mmap(NULL, 2 * MiB, PROT_READ | PROT_WRITE, MAP_SHARED, memfd, 0);
	if (!CHECKF(map != MAP_FAILED, "mmap of the memfd: %s", strerror(errno)))
		goto out;
	pattern_fill(SEED, 0, map, 2 * MiB);
	munmap(map, 2 * MiB);
	if (!CHECK(fcntl(memfd, F_ADD_SEALS, F_SEAL_SHRINK) == 0))
		goto out;
	buf = udmabuf_create(memfd, 2 * MiB);
	if (!CHECKF(buf >= 0, "UDMABUF_CREATE of a hugetlb memfd: %s", strerror(-buf)))
		goto out;
	map = mmap(NULL, 2 * MiB, PROT_READ, MAP_SHARED, buf, 0);
	if (CHECKF(map != MAP_FAILED, "mmap of the udmabuf: %s", strerror(errno))) {
		if (dmabuf_sync(buf, DMA_BUF_SYNC_START | DMA_BUF_SYNC_READ)) {
			map_matches(map, 2 * MiB);
			dmabuf_sync(buf, DMA_BUF_SYNC_END | DMA_BUF_SYNC_READ);
		}
		munmap(map, 2 * MiB);
	}
	close(buf);
out:
	close(memfd);
	CHECKF(hugepages_free() == before, "%ld free huge pages after, %ld before",
	       hugepages_free(), before);
}

int main(int argc, char **argv)
{
	if (argc == 3 && strcmp(argv[1], "--make-files") == 0) {
		char path[PATH_MAX];
		int r;

		snprintf(path, sizeof(path), "%s/" SRC_NAME, argv[2]);
		r = file_make(path, BUF_SIZE, SEED, 0644);
		if (r < 0)
			fprintf(stderr, "guest-dmabuf: writing %s: %s\n", path, strerror(-r));
		return r < 0;
	}
	if (argc != 2) {
		fprintf(stderr, "usage: %s DISK_DIR (inside the qemu test kernel)\n"
			"       %s --make-files DIR\n", argv[0], argv[0]);
		return 2;
	}
	disk_dir = argv[1];
	check_init(SUITE);

	CASE(udmabuf_roundtrip(), "udmabuf: UDMABUF_CREATE on a sealed memfd, mmap holds "
	     "its bytes");
	CASE(udmabuf_refuses(0, EINVAL), "udmabuf: refuses a memfd without F_SEAL_SHRINK");
	CASE(udmabuf_refuses(F_SEAL_SHRINK | F_SEAL_WRITE, EINVAL),
	     "udmabuf: refuses a memfd sealed with F_SEAL_WRITE");
	CASE(udmabuf_size_limit(), "udmabuf: refuses a buffer over size_limit_mb");
	CASE(heap_roundtrip(), "heap: system heap alloc, mmap, sync, write and read back");
	heap_no_odirect();
	CASE(hugetlb(), "hugetlb: boot-time huge pages and an MFD_HUGETLB memfd");
	CASE(udmabuf_hugetlb_free(), "udmabuf: over a hugetlb memfd, mmap holds its bytes, "
	     "closing frees the huge pages");
	cfr_cases();
	return check_finish();
}
