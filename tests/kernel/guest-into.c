/*
 * guest-into.c: loads into dma-bufs the client allocated itself (issue 13), through
 * the real daemon inside the qemu test kernel, from the ext4 virtio-blk disk.
 *
 *   guest-into --make-files DIR   on the host: writes the test file
 *   guest-into DISK_DIR           in the guest, with $DMALOAD_SOCKET set
 *
 * The client makes a udmabuf (a memfd sealed against shrinking, UDMABUF_CREATE) and a
 * dma-heap buffer of /dev/dma_heap/system, fills each with 0xAA, and has the daemon
 * load a range, then a list of extents, into it, by path and by fd, with each method.
 * It maps the dma-buf, reads it between DMA_BUF_IOCTL_SYNC START and END, and checks
 * every byte: the asked ones hold the file, all others still 0xAA. DONE must carry no
 * fd, DL_DONE_INTO, the right target (udmabuf, heap) and the buffer's size. Refusals:
 * a heap buffer handed out O_RDONLY (EBADF), one too small (EINVAL).
 */
#include <fcntl.h>
#include <linux/dma-buf.h>
#include <linux/dma-heap.h>
#include <linux/udmabuf.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "../lib/check.h"
#include "../lib/harness.h"
#include "../lib/loads.h"

#define SUITE "kernel"
#define FILE_NAME "into-src.bin"
#define FILE_SIZE (3 * MiB + 1234)
#define SEED 613
#define BUF_SIZE (4 * MiB)
#define FILL 0xAA

static char file[PATH_MAX];
static struct dmaload *dl;

static bool sync_dmabuf(int fd, uint64_t flags)
{
	struct dma_buf_sync s = { .flags = flags | DMA_BUF_SYNC_RW };

	return ioctl(fd, DMA_BUF_IOCTL_SYNC, &s) == 0;
}

/* Fills dma-buf @fd (@size bytes) with FILL through its mapping. */
static bool dmabuf_fill(int fd, size_t size)
{
	uint8_t *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);

	if (!CHECKF(p != MAP_FAILED, "mmap the dma-buf: %s", strerror(errno)))
		return false;
	sync_dmabuf(fd, DMA_BUF_SYNC_START);
	memset(p, FILL, size);
	sync_dmabuf(fd, DMA_BUF_SYNC_END);
	munmap(p, size);
	return true;
}

/* A udmabuf of @size bytes (the memfd goes once the dma-buf holds its pages). */
static int udmabuf_make(size_t size)
{
	struct udmabuf_create c = { .flags = UDMABUF_FLAGS_CLOEXEC, .size = size };
	int memfd = memfd_create("guest-into", MFD_CLOEXEC | MFD_ALLOW_SEALING), dev, fd;

	if (!CHECKF(memfd >= 0, "memfd_create: %s", strerror(errno)))
		return -1;
	if (!CHECK(ftruncate(memfd, (off_t)size) == 0) ||
	    !CHECK(fcntl(memfd, F_ADD_SEALS, F_SEAL_SHRINK) == 0)) {
		close(memfd);
		return -1;
	}
	dev = open("/dev/udmabuf", O_RDWR | O_CLOEXEC);
	if (!CHECKF(dev >= 0, "/dev/udmabuf: %s", strerror(errno))) {
		close(memfd);
		return -1;
	}
	c.memfd = (uint32_t)memfd;
	fd = ioctl(dev, UDMABUF_CREATE, &c);
	CHECKF(fd >= 0, "UDMABUF_CREATE: %s", strerror(errno));
	close(dev);
	close(memfd);
	if (fd >= 0 && !dmabuf_fill(fd, size)) {
		close(fd);
		return -1;
	}
	return fd;
}

/* A dma-buf of @size bytes from the system heap, handed out with @fd_flags. */
static int heap_make(size_t size, unsigned fd_flags)
{
	struct dma_heap_allocation_data a = { .len = size, .fd_flags = fd_flags | O_CLOEXEC };
	int heap = open("/dev/dma_heap/system", O_RDONLY | O_CLOEXEC);

	if (!CHECKF(heap >= 0, "/dev/dma_heap/system: %s", strerror(errno)))
		return -1;
	if (!CHECKF(ioctl(heap, DMA_HEAP_IOCTL_ALLOC, &a) == 0, "DMA_HEAP_IOCTL_ALLOC: %s",
		    strerror(errno))) {
		close(heap);
		return -1;
	}
	close(heap);
	if ((fd_flags & O_ACCMODE) == O_RDWR && !dmabuf_fill((int)a.fd, size)) {
		close((int)a.fd);
		return -1;
	}
	return (int)a.fd;
}

/* Every byte of dma-buf @fd: the extents' bytes, FILL elsewhere. */
static bool dmabuf_check(int fd, size_t size, const struct dmaload_extent *e, size_t n)
{
	uint8_t *want = malloc(size), *p;
	bool ok = true;

	if (!CHECK(want != NULL))
		return false;
	memset(want, FILL, size);
	for (size_t i = 0; i < n; i++)
		pattern_fill(SEED, e[i].file_offset, want + e[i].buf_offset, e[i].length);
	p = mmap(NULL, size, PROT_READ, MAP_SHARED, fd, 0);
	if (!CHECKF(p != MAP_FAILED, "mmap for the check: %s", strerror(errno))) {
		free(want);
		return false;
	}
	sync_dmabuf(fd, DMA_BUF_SYNC_START);
	if (memcmp(p, want, size)) {
		size_t k = 0;

		while (p[k] == want[k])
			k++;
		ok = check_fail(__FILE__, __LINE__, "byte %zu is 0x%02x, expected 0x%02x", k,
				p[k], want[k]);
	}
	sync_dmabuf(fd, DMA_BUF_SYNC_END);
	munmap(p, size);
	free(want);
	return ok;
}

static void into(bool heap, bool by_fd, uint8_t method, const struct dmaload_extent *e,
		 size_t n)
{
	int fd = heap ? heap_make(BUF_SIZE, O_RDWR) : udmabuf_make(BUF_SIZE), src = -1, r;
	struct dmaload_event ev;
	struct dmaload_opts o;
	uint64_t sum = 0;

	if (fd < 0)
		return;
	dmaload_opts_init(&o);
	o.method = method;
	for (size_t i = 0; i < n; i++)
		sum += e[i].length;
	if (by_fd) {
		src = open(file, O_RDONLY | O_CLOEXEC);
		r = dmaload_load_extents_fd_sync(dl, src, e, n, fd, &o, &ev);
		close(src);
	} else {
		r = dmaload_load_extents_path_sync(dl, file, e, n, fd, &o, &ev);
	}
	if (CHECKF(r == 0, "load: %s", lc_event_str(&ev))) {
		CHECK(ev.fd == -1 && (ev.done_flags & DL_DONE_INTO));
		CHECK_INT(ev.target, ==, heap ? DL_TARGET_HEAP : DL_TARGET_UDMABUF);
		CHECK_U64(ev.size, ==, sum);
		CHECK_U64(ev.buf_size, ==, BUF_SIZE);
		fprintf(stderr, "guest-into: %s %s: method %s (%s)\n", heap ? "heap" : "udmabuf",
			by_fd ? "by fd" : "by path", dl_method_name(ev.method),
			dl_reason_name(ev.reason));
		dmabuf_check(fd, BUF_SIZE, e, n);
	}
	close(fd);
}

static void refusals(void)
{
	struct dmaload_extent one = { .file_offset = 0, .length = 8192, .buf_offset = 0 };
	struct dmaload_event ev;
	int fd = heap_make(BUF_SIZE, O_RDONLY), r;

	if (fd >= 0) {
		r = dmaload_load_extents_path_sync(dl, file, &one, 1, fd, NULL, &ev);
		CHECKF(r == -EBADF, "read-only dma-buf: %d %s", r, lc_event_str(&ev));
		close(fd);
	}
	fd = heap_make(4096, O_RDWR);
	if (fd >= 0) {
		r = dmaload_load_extents_path_sync(dl, file, &one, 1, fd, NULL, &ev);
		CHECKF(r == -EINVAL && strstr(ev.message, "too small"), "too small: %d %s", r,
		       lc_event_str(&ev));
		close(fd);
	}
}

int main(int argc, char **argv)
{
	static const uint8_t methods[] = { DL_METHOD_AUTO, DL_METHOD_DIRECT,
					   DL_METHOD_BUFFERED };
	/* a range; then extents: aligned, odd, touching, far apart, shuffled */
	static const struct dmaload_extent range = { .file_offset = 4096,
						     .length = 2 * MiB, .buf_offset = 8192 };
	static const struct dmaload_extent ext[] = {
		{ .file_offset = 3 * MiB, .length = 1234, .buf_offset = 100 },
		{ .file_offset = 0, .length = MiB, .buf_offset = 2 * MiB },
		{ .file_offset = MiB, .length = 4096, .buf_offset = 3 * MiB },
		{ .file_offset = 777, .length = 5000, .buf_offset = 3 * MiB + 4096 },
	};

	if (argc == 3 && strcmp(argv[1], "--make-files") == 0) {
		char path[PATH_MAX];

		snprintf(path, sizeof(path), "%s/%s", argv[2], FILE_NAME);
		return file_make(path, FILE_SIZE, SEED, 0644) < 0;
	}
	if (argc != 2) {
		fprintf(stderr, "usage: %s DISK_DIR (inside the qemu test kernel)\n"
			"       %s --make-files DIR\n", argv[0], argv[0]);
		return 2;
	}
	snprintf(file, sizeof(file), "%s/%s", argv[1], FILE_NAME);
	check_init(SUITE);
	check_begin("into: connect; the daemon offers loads into a buffer");
	if (CHECK(dmaload_connect(&dl, NULL, "guest-into") == 0))
		CHECK(dmaload_daemon_caps(dl) & DL_CAP_LOAD_INTO);
	if (!check_end())
		return check_finish();
	for (int heap = 0; heap < 2; heap++) {
		const char *tn = heap ? "heap:system" : "udmabuf";

		for (size_t m = 0; m < sizeof(methods); m++)
			CASE(into(heap, m == 1, methods[m], &range, 1),
			     "into: the client's %s, a range by %s, method %s", tn,
			     m == 1 ? "fd" : "path", dl_method_name(methods[m]));
		CASE(into(heap, false, DL_METHOD_AUTO, ext, 4),
		     "into: the client's %s, 4 extents (odd, touching, far apart)", tn);
	}
	CASE(refusals(), "into: a read-only dma-buf (EBADF), one too small (EINVAL)");
	dmaload_close(dl);
	return check_finish();
}
