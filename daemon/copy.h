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
 * into 4 KiB-page memfds and read into hugetlb ones.
 *
 * Heap targets (dma-bufs from a dma-heap) are mapped as PFN maps that O_DIRECT cannot
 * target (EFAULT): direct chunks read into a few aligned bounce buffers and are copied
 * into the mapping; cfr runs copy_file_range where the kernel takes it for the heap;
 * page-cache reads go straight into the mapping (a plain CPU copy, which works).
 *
 * A load is cut into chunks (config chunk_size; for splice, one pipe-full per pair)
 * that the scheduler asks for one at a time; any number may be in flight. This file
 * owns the chunks, their retries (short reads and splices, -EAGAIN, -EINTR) and the
 * pipes.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>

struct job;

/* How one chunk moves. */
enum chunk_how {
	CHUNK_DIRECT,		/* O_DIRECT read into the mapping */
	CHUNK_BUFFERED,		/* page-cache read into the mapping */
	CHUNK_SPLICE,		/* splice pairs through a pipe into the memfd */
	CHUNK_CFR,		/* copy_file_range on a worker */
	CHUNK_BOUNCE,		/* O_DIRECT read into a bounce buffer, copied into the
				 * mapping (heap targets) */
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

/* The bounce buffers of direct reads into heap targets: chunk_size bytes each, made on
 * first use, freed when the daemon has nothing left to read. */
#define COPY_BOUNCE_MAX 4
struct copy_bounce {
	void *buf[COPY_BOUNCE_MAX];
	bool busy[COPY_BOUNCE_MAX];
	uint64_t size;
};

void copy_bounce_init(struct copy_bounce *b, uint64_t size);
/* Frees the idle buffers (all of them when nothing reads). */
void copy_bounce_deinit(struct copy_bounce *b);

void copy_pipes_init(struct copy_pipes *p, unsigned max, uint32_t size);
/* Closes the free pipes; those still in use are closed when their chunks end. Called
 * when the daemon has nothing left to read too: an idle daemon holds no pipes. */
void copy_pipes_deinit(struct copy_pipes *p);

/*
 * Decides the load's method and why, from what was asked, the config and the opened
 * source: sets j->method, j->reason, j->direct_end and j->auto_cache. A method the
 * client named that cannot be done is an error: returns -EINVAL with j->src.msg set.
 * Runs on the open worker, before the buffer is made (cfr needs 4 KiB pages).
 */
int copy_plan(struct job *j);

/* After the buffer is made: how bytes that come through the page cache move (auto
 * splices them into 4 KiB-page memfds), and for cfr whether copy_file_range itself
 * will run (the probe; heap targets probe it for auto too). Returns 0, or -EINVAL with
 * j->src.msg set when method cfr is asked for a heap that refuses it. Runs on the
 * open worker. */
int copy_probe(struct job *j);

/* Issues the job's next chunk of at most @max bytes (a multiple of 4096; direct
 * chunks are cut to whole O_DIRECT units), if it has one and there is room (a pipe
 * for splice). Returns the chunk's bytes, 0 if it issued nothing. Runs on the loop. */
uint64_t copy_issue(struct job *j, uint64_t max);

/* Whether the job may issue a chunk now (reading, not registering, bytes left). */
bool copy_can_issue(const struct job *j);

/* At least the bytes of the job's next chunk, were it issued with @max. */
uint64_t copy_next_len(const struct job *j, uint64_t max);

/* The job has nothing left to issue. */
bool copy_exhausted(const struct job *j);

/* Before DONE: settles method and reason from what the chunks did (auto may have read
 * some chunks buffered and others direct). */
void copy_report(struct job *j);
