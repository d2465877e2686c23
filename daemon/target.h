/*
 * target.h: the buffer a load fills and the client receives. Three kinds:
 *   memfd    backed by 4 KiB pages or by huge pages (MFD_HUGETLB), mapped into the
 *            daemon while it is filled, then unmapped and sealed so every holder can
 *            trust it never changes;
 *   udmabuf  a memfd filled the same way, then made a dma-buf with UDMABUF_CREATE;
 *   heap     a dma-buf allocated from /dev/dma_heap/NAME and filled through its
 *            mapping (between DMA_BUF_IOCTL_SYNC START and END).
 * Dma-bufs cannot be sealed: their holders can write them.
 *
 * Or the caller's own buffer (target_open_into): a memfd (4 KiB or huge pages) or a
 * dma-buf of any exporter, filled through a mapping of the part the load touches and
 * never sealed, kept or handed out: the caller has it.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "config.h"
#include "dmaload-proto.h"

struct target {
	int fd;			/* the memfd (udmabuf: until finished), or the heap's
				 * dma-buf; -1 when none */
	int dev_fd;		/* udmabuf: /dev/udmabuf until finished; else -1 */
	void *map;		/* shared writable mapping while filling, NULL otherwise */
	uint64_t map_off;	/* buffer offset of map[0]: 0, except into a caller's
				 * buffer (its first page the load touches) */
	uint64_t size;		/* bytes of data the client asked for; into: the
				 * caller's buffer's size */
	uint64_t map_len;	/* the buffer object's size: size rounded up to pages;
				 * into: the mapping's length */
	uint8_t kind;		/* enum dl_target (into a dma-buf: udmabuf when its
				 * exporter is udmabuf, else heap) */
	bool into;		/* the caller's buffer (target_open_into) */
	bool pfnmap;		/* a dma-buf mapping O_DIRECT cannot target (heaps,
				 * and every dma-buf of a caller's) */
	bool no_splice;		/* into: the fd has O_APPEND, which splice refuses */
	bool no_prefault;	/* into: this kernel has no MADV_POPULATE_WRITE */
	uint64_t page;		/* into: the page size it is mapped by */
	bool hugetlb;		/* backed by huge pages */
	bool thp;		/* 4 KiB-page memfd mapped MADV_HUGEPAGE, where the host
				 * lets shmem have transparent huge pages */
	bool hugetlb_short;	/* huge pages were wanted but the pool had no room */
	bool hugetlb_refused;	/* udmabuf: this kernel takes no hugetlb memfds */
	bool syncing;		/* heap: between DMA_BUF_SYNC START and END */
	char heap[DL_HEAP_NAME_MAX + 1];	/* heap: its name; into a dma-buf: its
						 * exporter's (exp_name) */
};

void target_init(struct target *t);
/* Unmaps and closes; safe to call twice. Freeing a big memfd's pages can take a
 * while: call from a worker. */
void target_deinit(struct target *t);

/*
 * Creates a memfd of @size bytes, and maps it. With @hugetlb on,
 * or auto and @size at least one huge page, it tries huge pages first: the mapping
 * reserves them all, so a pool without room fails here (never later, mid-load) and
 * the buffer falls back to 4 KiB pages. @exact: the buffer object must be exactly
 * @size bytes, so huge pages only when @size is a multiple of their size. 4 KiB pages
 * are not touched: the reads fault them in as they land. Returns 0 or -errno.
 */
int target_create(struct target *t, uint64_t size, enum config_toggle hugetlb, bool exact);

/* A 4 KiB-page memfd of @size bytes that is not mapped: a small buffer the job
 * fills with the kernel's copies (sendfile, pwrite), so no page fault, no mmap_lock and
 * no TLB shootdown at munmap. Returns 0 or -errno. */
int target_create_unmapped(struct target *t, uint64_t size);

/* Logs, once at start, which buffers loads will get (huge pages reserved, allowed on
 * demand, or none) and which setting would make them faster. */
void target_log_host(enum config_toggle hugetlb);

/*
 * A descriptor of the sealed memfd @fd (borrowed) for one holder: an open file
 * description of its own, read-only. Holders of one shared buffer then never move
 * each other's file offset, see each other's status flags (O_NONBLOCK, O_APPEND) or
 * take write locks on it. Returns the new fd or -errno. (A dma-buf cannot be opened
 * again this way; those are never shared and go out as they are.)
 */
int target_handout(int fd);

/*
 * The dma-buf kinds; like target_create, on a worker (allocating and pinning take a
 * while for big buffers). On failure they return -errno and write into @msg (@len
 * bytes) what went wrong and what to change.
 * target_create_udmabuf: checks /dev/udmabuf and udmabuf.size_limit_mb, then makes a
 * memfd of @size rounded up to pages (huge pages when the kernel's udmabuf takes them).
 * target_create_heap: allocates @size rounded up to pages from heap @heap and maps it.
 */
int target_create_udmabuf(struct target *t, uint64_t size, enum config_toggle hugetlb,
			  bool exact, char *msg, size_t len);
int target_create_heap(struct target *t, const char *heap, uint64_t size, char *msg,
		       size_t len);

/* memfd: unmaps and seals (shrink, grow, write, then seal). udmabuf: unmaps, seals
 * shrink and grow, makes the dma-buf and keeps only it. heap: ends the CPU access
 * and unmaps. Returns 0 or -errno with @msg (@len bytes) set. */
int target_finish(struct target *t, char *msg, size_t len);

/*
 * The caller's buffer @fd (consumed, also on failure: target_deinit closes it), to
 * be filled at buffer bytes [@lo, @hi). Checks before any byte moves, each failure a
 * -errno with @msg (@len bytes) saying what to change:
 *   -EINVAL  not a memfd or dma-buf; smaller than @hi; a memfd without F_SEAL_SHRINK
 *   -EBADF   not open O_RDWR (the daemon maps it shared and writable)
 *   -EPERM   write-sealed (F_SEAL_WRITE or F_SEAL_FUTURE_WRITE)
 *   -EOPNOTSUPP  a dma-buf whose exporter refuses mmap (named, from fdinfo)
 * Then maps the pages that hold [@lo, @hi) (a dma-buf between DMA_BUF_IOCTL_SYNC START
 * and END). F_SEAL_SHRINK is the safety: the caller may close, unmap or die, but its
 * memfd can never become shorter than the mapping, so no write of the daemon lands
 * anywhere but in that buffer. Hugetlb mappings reserve their huge pages at mmap, so a
 * short pool fails here, not mid-load. The seal allows punching holes, though: a
 * hugetlb page punched away with the pool empty cannot be faulted back, so the
 * daemon writes into a hugetlb mapping only with the kernel's copies (EFAULT, never
 * a SIGBUS), never with memcpy. On a worker.
 */
int target_open_into(struct target *t, int fd, uint64_t lo, uint64_t hi, char *msg,
		     size_t len);

/*
 * Into a caller's memfd: makes the daemon's page tables for the pages that hold
 * buffer bytes [@buf, @buf + @len) writable now (MADV_POPULATE_WRITE), on a worker,
 * rather than one fault at a time in the reads (O_DIRECT pins them in the submitting
 * thread). Called per run, so a gap between extents is never touched. A buffer the
 * caller reuses has its pages already, so this only maps them. Best effort: a kernel
 * without it (before 5.14) faults them in the reads as before.
 */
/*
 * Into a caller's 4 KiB-page memfd: the bytes of it no page holds yet (its size less
 * what it has allocated, written or fallocated). The daemon's writes into those
 * fault pages in, charged to the daemon's memory cgroup, so the job admits them
 * like a buffer of its own: a load's share is the least of this and its bytes.
 * UINT64_MAX if the memfd cannot be examined; 0 for other buffers: huge pages come
 * from the pool, and dma-bufs were allocated by their exporter.
 */
uint64_t target_unpaid_bytes(const struct target *t);
void target_prefault(struct target *t, uint64_t buf, uint64_t len);

/*
 * A buffer of the daemon's own in fresh 4 KiB pages (a memfd, or a udmabuf's memfd
 * before it is finished; not hugetlb, not the caller's): copy.c fills it by writing
 * into the memfd rather than by reading into its mapping (see CHUNK_STAGED).
 */
bool target_fresh_small_pages(const struct target *t);

/* [io] thp: whether 4 KiB-page buffers are mapped MADV_HUGEPAGE where the host's
 * shmem_enabled lets them have transparent huge pages (target_create). */
void target_set_thp(bool on);

/* Sealed read-only (DL_DONE_SEALED): memfds only. */
bool target_sealed(const struct target *t);

/* What this host offers for buffers, now (a module loaded later shows). */
struct target_host {
	int udmabuf_err;		/* 0: /dev/udmabuf opens read-write; else why not
					 * (positive errno) */
	uint64_t udmabuf_size_limit;	/* udmabuf.size_limit_mb in bytes, 0 if unknown */
	bool udmabuf_hugetlb;		/* udmabuf takes hugetlb memfds (probed) */
	uint64_t huge_page_size;	/* bytes; 0: no huge pages */
	uint32_t huge_pages_total;	/* the pool (HugePages_Total) */
	uint32_t huge_pages_free;	/* HugePages_Free minus HugePages_Rsvd */
	uint64_t overcommit_pages;	/* vm.nr_overcommit_hugepages: surplus allowed */
	uint64_t surplus_pages;		/* HugePages_Surp: surplus pages in use */
	bool heaps;			/* /dev/dma_heap has at least one heap */
	unsigned n_heaps;		/* names written to the caller's buffer */
	size_t heaps_len;		/* their bytes, each name followed by a NUL */
};

/*
 * Fills @h, and writes the heap names (each followed by a NUL) that fit into @names
 * (@cap bytes). Only stat/open/readdir of devtmpfs, sysfs and procfs: cheap enough for
 * the loop.
 */
void target_host_info(struct target_host *h, char *names, size_t cap);

/* udmabuf.size_limit_mb in bytes; 0 when unknown. */
uint64_t target_udmabuf_size_limit(void);
/* Whether /dev/udmabuf opens read-write (0) or why not (-errno). */
int target_udmabuf_usable(void);
/* A heap for target auto: "system" when there is one, else the first in
 * /dev/dma_heap. Returns 0 with @out set, or -ENOENT. */
int target_default_heap(char *out, size_t len);

/* Size of the default huge page (from the kernel), 0 if there are none. */
uint64_t target_huge_page_size(void);
