/*
 * copy.h: how a load's bytes move from its file into its buffer. Three methods:
 *
 *   direct    O_DIRECT reads (io_uring READ, or READ_FIXED on a registered buffer)
 *             straight into the buffer's mapping; the disk's speed, no page cache.
 *   buffered  page-cache reads into the mapping: for files already cached, and where
 *             O_DIRECT is impossible (unaligned offsets, filesystems that refuse it).
 *   cfr       copy_file_range from the file into the buffer, where the kernel takes
 *             it (probed once per filesystem and buffer kind, see probe.h), run per
 *             chunk on the workers; else its io_uring equivalent, linked pairs of
 *             SPLICE file -> pipe -> buffer.
 *
 * and auto: direct, except for chunks cachestat(2) finds in the page cache (a memory
 * copy beats reading the disk again) and what O_DIRECT cannot read (unaligned offsets
 * and tails, filesystems that refuse it); those go through the page cache, spliced
 * into 4 KiB-page memfds and read into hugetlb ones. Where the kernel takes
 * copy_file_range into the buffer (no stock kernel does; the patched test kernel of
 * tests/kernel/ does, reading by direct I/O into the buffer's pages), auto uses it
 * for 4 KiB-page memfds and heap buffers whose range is not all in the page cache.
 *
 * Heap targets (dma-bufs from a dma-heap) are mapped as PFN maps that O_DIRECT cannot
 * target (EFAULT): direct chunks read into a few aligned bounce buffers and are copied
 * into the mapping; cfr runs copy_file_range where the kernel takes it for the heap;
 * page-cache reads go straight into the mapping (a plain CPU copy, which works).
 *
 * Fresh 4 KiB-page buffers (the daemon's own memfds, not hugetlb): direct chunks read
 * into the bounce buffers too, and an io_uring WRITE puts the bytes into the memfd
 * (CHUNK_STAGED). A read straight into the mapping would fault every page in inside
 * get_user_pages: allocated, zeroed, mapped, later unmapped. Measured (issue 15, per
 * GiB): the reads' faults 660-770 ms of CPU, fallocate plus MADV_POPULATE_WRITE plus
 * munmap 520-750; a write allocates the pages and fills them without zeroing or
 * mapping them, 320-470 ms for the allocation and the copy together. The bounce
 * buffers stay mapped and faulted in while the daemon reads, so their reads pin
 * them on the fast path.
 *
 * A load is cut into chunks (config chunk_size; for splice, one pipe-full per pair)
 * that the scheduler asks for one at a time; any number may be in flight. This file
 * owns the chunks, their retries (short reads and splices, -EAGAIN, -EINTR) and the
 * pipes. It knows no load, client or scheduler: it moves the bytes of a struct copy,
 * which its owner (a job) embeds, and reports back through the owner's callbacks.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

struct chunk;
struct config;
struct ring;
struct source;
struct target;
struct worker_pool;

/* How one chunk moves. */
enum chunk_how {
	CHUNK_DIRECT,		/* O_DIRECT read into the mapping */
	CHUNK_BUFFERED,		/* page-cache read into the mapping */
	CHUNK_SPLICE,		/* splice pairs through a pipe into the memfd */
	CHUNK_CFR,		/* copy_file_range on a worker */
	CHUNK_BOUNCE,		/* O_DIRECT read into a bounce buffer, copied into the
				 * mapping (heap targets) */
	CHUNK_STAGED,		/* O_DIRECT read into a bounce buffer, then written into
				 * the memfd (fresh 4 KiB-page buffers) */
	CHUNK_HOW_N,
};

/* A pipe for splice pairs. */
struct cpipe {
	int rfd, wfd;
	struct cpipe *next;	/* on the free list */
};

/* The pipes the daemon's splice pairs share: made on first use, kept for reuse, at
 * most @max at once (each holds up to @size bytes of kernel memory when full). */
struct copy_pipes {
	struct cpipe *free;
	unsigned n, max;
	uint32_t size;		/* bytes per pipe, as the kernel granted them */
	uint32_t want;		/* bytes asked for (config pipe_size) */
};

/* The bounce buffers of direct reads into heap targets and fresh 4 KiB-page memfds
 * (CHUNK_STAGED): chunk_size bytes each, made on first use, freed once the daemon has
 * had nothing to read for a while (sched.c's TRIM_DELAY_S). At most max of them: COPY_BOUNCE_BYTES in all and no more
 * than queue_depth (one per read in flight), 4 at least. Measured for staged loads of
 * 32 x 32 MiB (issue 15): 32 MiB of them 1480 MB/s, 128 MiB 1750-1910 MB/s. */
#define COPY_BOUNCE_MAX 64
#define COPY_BOUNCE_BYTES (128ull << 20)
struct copy_bounce {
	void *buf[COPY_BOUNCE_MAX];
	bool busy[COPY_BOUNCE_MAX];
	uint64_t size;
	unsigned max;
};

/* What every copy of the daemon shares: the ring and workers that run its chunks, the
 * config, the pipes and bounce buffers. One per daemon. */
struct copy_env {
	const struct config *cfg;
	struct ring *ring;
	struct worker_pool *pool;
	struct copy_pipes pipes;
	struct copy_bounce bounce;
	unsigned chunks;	/* chunks in flight, of all copies */
};

struct copy;

/*
 * A run of the file that lands in one piece of the buffer: file bytes [off, off + len)
 * go to buffer bytes [buf, buf + len). A load of extents is a list of these, sorted by
 * file offset, with the extents that touch both on disk and in the buffer merged (so
 * they are read as one); a plain load is one run with buf 0.
 */
struct copy_seg {
	uint64_t off, len;		/* the file range; len > 0 */
	uint64_t buf;			/* buffer offset of its first byte */
	uint64_t direct_end;		/* the plan: direct reads below this file offset,
					 * the page cache above */
};

/* How a copy tells its owner, on the loop. */
struct copy_ops {
	/* A chunk of @bytes (as issued) ended: landed, or given up after a failure. */
	void (*chunk_ended)(struct copy *cp, uint64_t bytes);
	/* The copy cannot go on (@err negative, @msg for the client). Chunks still in
	 * flight end later, each with chunk_ended. */
	void (*failed)(struct copy *cp, int err, const char *msg);
};

/*
 * The copy of one load: what it moves, how, and how far it got. Embedded in its
 * owner. The owner sets the first group before copy_plan() and then leaves it alone
 * (the scheduler sets fixed_slot while it holds a registered buffer for it); copy.c
 * writes the rest.
 */
struct copy {
	struct copy_env *env;
	const struct copy_ops *ops;
	struct source *src;		/* borrowed: open */
	struct target *tgt;		/* borrowed: made before the first chunk */
	uint64_t off, len;		/* plain load: the file range, landing at buffer
					 * byte 0; with segs: the first run's offset and the
					 * bytes of all runs */
	struct copy_seg *segs;		/* borrowed, sorted: the runs (a load of extents or
					 * into the caller's buffer), or NULL: one run of
					 * off, len at buffer byte 0 */
	unsigned nsegs;
	uint8_t asked;			/* enum dl_method the client named, or auto */
	const char *who;		/* for logs: connection, load, name */
	uid_t uid;			/* whose load: its worker tasks' cap */
	int fixed_slot;			/* registered buffer slot or -1 */

	/* the plan */
	struct copy_seg one;		/* the run of a plain load (segs points at it) */
	uint8_t method, reason;		/* enum dl_method, enum dl_reason */
	bool auto_cache;		/* auto: chunks in the page cache go buffered */
	bool cfr_syscall;		/* cfr: copy_file_range itself (else splice) */
	int cfr_err;			/* cfr: why copy_file_range was refused */
	uint8_t cache_how;		/* enum chunk_how for page-cache bytes */
	bool staged;			/* direct chunks go CHUNK_STAGED */
	bool staged_writing;		/* a staged chunk's write is in the ring ... */
	struct chunk *staged_queue;	/* ... and these read ones wait for it, in order */

	/* progress */
	unsigned seg;			/* the run being issued (nsegs: all issued) */
	uint64_t next;			/* next file offset to issue, in run seg */
	uint64_t done;			/* bytes landed */
	unsigned inflight;		/* chunks in the ring or on a worker */
	bool stopped;			/* the owner gave up: issue nothing more */
	uint64_t bytes_direct;		/* auto: bytes sent to the disk ... */
	uint64_t bytes_cached;		/* ... and bytes found in the page cache */
	uint64_t landed[CHUNK_HOW_N];	/* bytes landed, per enum chunk_how */
};

void copy_env_init(struct copy_env *e, const struct config *cfg, struct ring *ring,
		   struct worker_pool *pool);
/* Frees the idle pipes (copy_env_trim_pipes: as soon as nothing reads, since they
 * are fds) or the idle pipes and bounce buffers (copy_env_trim: a while after the
 * last read), so an idle daemon holds none; those still in use go when their chunks
 * end. */
void copy_env_trim_pipes(struct copy_env *e);
void copy_env_trim(struct copy_env *e);

/*
 * Decides the copy's method and why, from what was asked, the config and the opened
 * source: sets method, reason, each run's direct_end and auto_cache, and next to the
 * start. A
 * method the client named that cannot be done is an error: returns -EINVAL with @msg
 * (@len bytes) set. Runs on the open worker, before the buffer is made (cfr needs
 * 4 KiB pages).
 */
int copy_plan(struct copy *cp, char *msg, size_t len);

/* After the buffer is made: how bytes that come through the page cache move (auto
 * splices them into 4 KiB-page memfds), and for cfr whether copy_file_range itself
 * will run (the probe; auto probes it too, for heap targets and 4 KiB-page memfds,
 * and then uses it where the kernel takes it). Returns 0, or -EINVAL with
 * @msg set when method cfr is asked for a heap that refuses it. Runs on the open
 * worker. */
int copy_probe(struct copy *cp, char *msg, size_t len);

/* Issues the copy's next chunk of at most @max bytes (a multiple of 4096; direct
 * chunks are cut to whole O_DIRECT units), if it has one and there is room (a pipe
 * for splice). Returns the chunk's bytes, 0 if it issued nothing (it may have failed:
 * ops->failed was called then). Runs on the loop. */
uint64_t copy_issue(struct copy *cp, uint64_t max);

/* Whether the copy has a chunk left to issue (not stopped, bytes left). */
bool copy_can_issue(const struct copy *cp);

/* At least the bytes of the copy's next chunk, were it issued with @max. */
uint64_t copy_next_len(const struct copy *cp, uint64_t max);

/* The owner gave up (failed, cancelled): no chunk is issued any more; those in
 * flight end as they come back. */
void copy_stop(struct copy *cp);

/* Before DONE: settles method and reason from what the chunks did (auto may have read
 * some chunks buffered and others direct). */
void copy_report(struct copy *cp);
