/*
 * bench-guest.c: the seed's table inside the patched qemu guest (tests/kernel/bench.sh;
 * outside make check). Every way of getting files into a buffer, for each kind of
 * buffer, on one kernel: TCG timings say nothing about hardware, so the table proves
 * which paths run (and how much of the files each leaves in the page cache), not
 * which is fast.
 *
 *   bench-guest --make-files DIR   on the host: 32 files of 32 MiB and 1 of 1 GiB
 *                                  (BENCH_SMALL=1: 4 of 4 MiB and 1 of 64 MiB)
 *   bench-guest DISK_DIR           in the guest: prints "BENCH |...|" table rows
 *
 * Workloads: the 32 files loaded one after another into 32 buffers, and the 1 GiB
 * file into one. Buffers: a memfd (4 KiB pages); a udmabuf (a memfd, fallocated and
 * sealed, turned into a dma-buf before the copy); a system heap dma-buf. Methods:
 *   buffer R/W   read() into the buffer's mapping (heap: between DMA_BUF_IOCTL_SYNC)
 *   direct R/W   O_DIRECT read() into the mapping, 4 MiB at a time
 *   sendfile     sendfile() into the buffer's fd (udmabuf: into its memfd)
 *   splice       file -> pipe (1 MiB) -> buffer fd (udmabuf: its memfd)
 *   c_f_r        copy_file_range() into the buffer's fd (udmabuf: the dma-buf itself)
 * A row the kernel refuses shows the errno instead of numbers. The page cache is
 * dropped before each row; "cached" is how much of the files cachestat finds in it
 * after the row. Each buffer's first, middle and last 4 KiB are checked.
 */
#include <fcntl.h>
#include <linux/dma-buf.h>
#include <linux/dma-heap.h>
#include <linux/udmabuf.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../lib/harness.h"
#include "guest.h"

#define GiB (1024 * MiB)
#define CHUNK (4 * MiB)
#define SEED 900
#define MAX_FILES 32

enum target { T_MEMFD, T_UDMABUF, T_HEAP, T_N };
enum method { M_RW, M_DIRECT, M_SENDFILE, M_SPLICE, M_CFR, M_N };

static const char *const target_names[T_N] = { "memfd", "udmabuf", "dma-buf (heap)" };
static const char *const method_names[M_N] = { "buffer R/W", "direct R/W", "sendfile",
					       "splice", "c_f_r" };

struct workload {
	const char *name, *prefix;
	int n;
	uint64_t size, small;
};

static const struct workload workloads[] = {
	{ "32 x 32 MiB", "w32", 32, 32 * MiB, 4 * MiB },
	{ "1 x 1 GiB", "w1g", 1, GiB, 64 * MiB },
};

struct buf {
	int fd;			/* what sendfile, splice and c_f_r write into */
	int memfd;		/* the memfd behind a udmabuf, else -1 */
	int dmabuf;		/* the udmabuf or heap dma-buf, else -1 */
	uint8_t *map;		/* the mapping reads go into */
	uint64_t size;
};

static void buf_free(struct buf *b)
{
	if (b->map && b->map != MAP_FAILED)
		munmap(b->map, b->size);
	if (b->memfd >= 0)
		close(b->memfd);
	if (b->dmabuf >= 0)
		close(b->dmabuf);
	*b = (struct buf){ .fd = -1, .memfd = -1, .dmabuf = -1 };
}

/* A buffer of @size bytes of kind @t, mapped. Returns 0 or an errno. */
static int buf_make(struct buf *b, enum target t, uint64_t size)
{
	*b = (struct buf){ .fd = -1, .memfd = -1, .dmabuf = -1, .size = size };
	if (t == T_HEAP) {
		struct dma_heap_allocation_data a = { .len = size, .fd_flags = O_RDWR | O_CLOEXEC };
		int heap = open("/dev/dma_heap/system", O_RDONLY | O_CLOEXEC);

		if (heap < 0 || ioctl(heap, DMA_HEAP_IOCTL_ALLOC, &a) < 0) {
			int e = errno;

			if (heap >= 0)
				close(heap);
			return e;
		}
		close(heap);
		b->fd = b->dmabuf = (int)a.fd;
	} else {
		b->memfd = memfd_create("bench-guest", MFD_CLOEXEC | MFD_ALLOW_SEALING);
		if (b->memfd < 0 || ftruncate(b->memfd, (off_t)size) < 0)
			return errno;
		b->fd = b->memfd;
	}
	if (t == T_UDMABUF) {
		struct udmabuf_create c = { .memfd = (uint32_t)b->memfd,
					    .flags = UDMABUF_FLAGS_CLOEXEC, .size = size };
		int dev;

		/* udmabuf pins the memfd's pages: they must exist, and stay. */
		if (fallocate(b->memfd, 0, 0, (off_t)size) < 0 ||
		    fcntl(b->memfd, F_ADD_SEALS, F_SEAL_SHRINK) < 0)
			return errno;
		dev = open("/dev/udmabuf", O_RDWR | O_CLOEXEC);
		if (dev < 0)
			return errno;
		b->dmabuf = ioctl(dev, UDMABUF_CREATE, &c);
		close(dev);
		if (b->dmabuf < 0)
			return errno;
	}
	/* Reads go into the memfd's mapping (a udmabuf's is a PFN map O_DIRECT cannot
	 * use); the heap's mapping is the only one it has. */
	b->map = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED,
		      t == T_HEAP ? b->dmabuf : b->memfd, 0);
	return b->map == MAP_FAILED ? errno : 0;
}

static int sync_heap(const struct buf *b, uint64_t flags)
{
	struct dma_buf_sync s = { .flags = flags };

	if (b->dmabuf < 0 || b->memfd >= 0)
		return 0;
	return ioctl(b->dmabuf, DMA_BUF_IOCTL_SYNC, &s) < 0 ? errno : 0;
}

/* Moves all @len bytes of @src into @b with @m. Returns 0 or the errno. */
static int fill(const struct buf *b, enum target t, enum method m, const char *path,
		uint64_t len)
{
	int src = open(path, O_RDONLY | O_CLOEXEC | (m == M_DIRECT ? O_DIRECT : 0));
	int dst = m == M_CFR ? (t == T_UDMABUF ? b->dmabuf : b->fd) : b->fd;
	int p[2] = { -1, -1 }, e = 0;
	uint64_t done = 0;
	loff_t in = 0, out = 0;

	if (src < 0)
		return errno;
	if (m == M_SPLICE && (pipe2(p, O_CLOEXEC) < 0 || fcntl(p[1], F_SETPIPE_SZ, MiB) < 0))
		e = errno;
	if (!e && (m == M_RW || m == M_DIRECT))
		e = sync_heap(b, DMA_BUF_SYNC_START | DMA_BUF_SYNC_WRITE);
	while (!e && done < len) {
		uint64_t want = len - done < CHUNK ? len - done : CHUNK;
		ssize_t n;

		switch (m) {
		case M_RW:
		case M_DIRECT:
			n = read(src, b->map + done, want);
			break;
		case M_SENDFILE:
			n = sendfile(dst, src, &in, want);
			break;
		case M_SPLICE:
			n = splice(src, &in, p[1], NULL, want < MiB ? want : MiB, SPLICE_F_MOVE);
			for (ssize_t left = n; left > 0;) {
				ssize_t w = splice(p[0], NULL, dst, &out, (size_t)left, SPLICE_F_MOVE);

				if (w <= 0) {
					n = w < 0 ? -1 : n;
					left = 0;
				} else {
					left -= w;
				}
			}
			break;
		default:
			n = copy_file_range(src, &in, dst, &out, want, 0);
			break;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			e = n < 0 ? errno : ENODATA;
		else
			done += (uint64_t)n;
	}
	if (m == M_RW || m == M_DIRECT)
		sync_heap(b, DMA_BUF_SYNC_END | DMA_BUF_SYNC_WRITE);
	if (p[0] >= 0) {
		close(p[0]);
		close(p[1]);
	}
	close(src);
	return e;
}

/* The first, middle and last 4 KiB of @b hold the file's pattern. */
static bool sample_ok(const struct buf *b, uint32_t seed, uint64_t len)
{
	uint64_t at[3] = { 0, len / 2 / 4096 * 4096, len - 4096 };
	bool ok = true;

	sync_heap(b, DMA_BUF_SYNC_START | DMA_BUF_SYNC_READ);
	for (int i = 0; i < 3 && ok; i++)
		for (uint64_t j = at[i]; j < at[i] + 4096 && ok; j++)
			ok = b->map[j] == pattern_byte(seed, j);
	sync_heap(b, DMA_BUF_SYNC_END | DMA_BUF_SYNC_READ);
	return ok;
}

static void row(const struct workload *w, const char *dir, enum target t, enum method m)
{
	static struct buf bufs[MAX_FILES];
	char path[MAX_FILES][PATH_MAX], note[128] = "";
	uint64_t size = 0, total = 0, t0, ms;
	long cached = 0;
	int e = 0, i;
	struct stat st;

	for (i = 0; i < w->n; i++) {
		snprintf(path[i], sizeof(path[i]), "%s/%s-%02d.bin", dir, w->prefix, i);
		if (stat(path[i], &st) < 0) {
			printf("BENCH | %s | %s | %s | no file %s |\n", w->name, target_names[t],
			       method_names[m], path[i]);
			return;
		}
		size = (uint64_t)st.st_size;
		total += size;
	}
	drop_caches();
	for (i = 0; i < w->n && !e; i++)
		e = buf_make(&bufs[i], t, size);
	if (e)
		snprintf(note, sizeof(note), "buffer: %s", strerrorname_np(e));
	t0 = now_ms();
	for (i = 0; i < w->n && !e; i++)
		if ((e = fill(&bufs[i], t, m, path[i], size)))
			snprintf(note, sizeof(note), "refused: %s", strerrorname_np(e));
	ms = now_ms() - t0;
	for (i = 0; i < w->n && !e; i++)
		if (!sample_ok(&bufs[i], SEED + (uint32_t)i, size)) {
			snprintf(note, sizeof(note), "WRONG BYTES in buffer %d", i);
			e = EIO;
		}
	for (i = 0; i < w->n; i++) {
		int fd = open(path[i], O_RDONLY | O_CLOEXEC);
		long c = fd >= 0 ? guest_cached_pages(fd, 0, size) : -1;

		cached += c > 0 ? c : 0;
		if (fd >= 0)
			close(fd);
		buf_free(&bufs[i]);
	}
	if (e)
		printf("BENCH | %s | %s | %s | - | - | - | %s |\n", w->name, target_names[t],
		       method_names[m], note);
	else
		printf("BENCH | %s | %s | %s | %llu | %.0f | %ld%% | bytes checked |\n", w->name,
		       target_names[t], method_names[m], (unsigned long long)ms,
		       ms ? total / 1e3 / (double)ms : 0.0, (long)(cached * 4096 * 100 / total));
	fflush(stdout);
}

static int make_files(const char *dir)
{
	bool small = getenv("BENCH_SMALL") != NULL;

	for (size_t w = 0; w < sizeof(workloads) / sizeof(workloads[0]); w++)
		for (int i = 0; i < workloads[w].n; i++) {
			char path[PATH_MAX];
			int r;

			snprintf(path, sizeof(path), "%s/%s-%02d.bin", dir, workloads[w].prefix, i);
			r = file_make(path, small ? workloads[w].small : workloads[w].size,
				      SEED + (uint32_t)i, 0644);
			if (r < 0) {
				fprintf(stderr, "bench-guest: %s: %s\n", path, strerror(-r));
				return 1;
			}
		}
	return 0;
}

int main(int argc, char **argv)
{
	if (argc == 3 && strcmp(argv[1], "--make-files") == 0)
		return make_files(argv[2]);
	if (argc != 2) {
		fprintf(stderr, "usage: %s DISK_DIR (inside the qemu test kernel)\n"
			"       %s --make-files DIR\n", argv[0], argv[0]);
		return 2;
	}
	printf("BENCH | workload | buffer | method | I/O ms | MB/s | cached after | note |\n");
	printf("BENCH |---|---|---|---|---|---|---|\n");
	for (size_t w = 0; w < sizeof(workloads) / sizeof(workloads[0]); w++)
		for (int t = 0; t < T_N; t++)
			for (int m = 0; m < M_N; m++)
				row(&workloads[w], argv[1], (enum target)t, (enum method)m);
	return 0;
}
