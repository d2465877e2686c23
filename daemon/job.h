/*
 * job.h: one LOAD request, from the moment it is accepted to the moment its buffer
 * has been handed over (or its error reported) and its resources are released.
 *
 * States: OPENING (worker opens and checks the source, creates the buffer) ->
 * QUEUED (waits for a reading slot) -> READING (chunks in the ring) -> FINISHING
 * (worker unmaps and seals) -> reply -> released (worker frees; then the job is
 * freed on the loop). A failure or cancel at any point sends the ERROR at once;
 * the job then waits for its in-flight reads and worker task before it is released,
 * because the kernel may still write into its buffer.
 *
 * A LOAD_EXTENTS is a job too: its extents become the copy's runs (sorted, merged),
 * and the scheduler, limits and cancel see one load. Into the caller's buffer, the
 * target is that buffer (target_open_into) and DONE carries no fd.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "cache.h"
#include "copy.h"
#include "dmaload-proto.h"
#include "limit.h"
#include "list.h"
#include "ring.h"
#include "sched.h"
#include "source.h"
#include "target.h"
#include "worker.h"

struct cache_entry;
struct engine;
struct quota_uid;
struct job;

/* What the engine tells whoever asked for a load, on the loop. */
struct job_owner_ops {
	void (*accepted)(struct job *j, const struct dl_accepted *a);
	void (*progress)(struct job *j, const struct dl_progress *p);
	/* @fd (borrowed) is the buffer: the owner hands it on */
	void (*done)(struct job *j, const struct dl_done *d, int fd);
	/* @err is a positive errno */
	void (*failed)(struct job *j, int err, const char *msg);
	/* the job is about to be freed: the owner lets go of it */
	void (*released)(struct job *j);
	/* optional: whether nobody can take the job's reply any more (its connection
	 * hung up; the owner learns it for sure a little later, at its end of stream) */
	bool (*hung_up)(struct job *j);
};

/*
 * Whoever asks for loads, as the engine sees it: a connection (client.c), or the
 * daemon's own preloads. Embedded in its owner, which keeps it valid until its last
 * job is released; the engine reads it and calls back through ops.
 */
struct job_owner {
	const struct job_owner_ops *ops;
	uint64_t conn_id;		/* for logs */
	const char *name;		/* for logs: its HELLO name, "" if none */
	const struct peer_cred *cred;	/* whose rights its loads have */
	struct sched_owner *so;		/* its queues and limits in the scheduler */
	bool gone;			/* nobody to reply to any more */
};

struct job {
	struct list owner_link;		/* in its owner's list, which the owner manages */
	struct sched_load sl;		/* the load as the scheduler sees it (sched.c) */
	struct engine *eng;
	struct job_owner *owner;	/* stays valid until the job is freed */
	uint64_t id;			/* the LOAD's request id */
	enum dl_load_state state;

	/* what was asked */
	struct dl_load req;		/* LOAD_EXTENTS: its LOAD part (offset, length 0) */
	bool extents;			/* a LOAD_EXTENTS */
	bool into;			/* ... into the caller's buffer (DL_EXT_INTO) */
	struct dl_extent *ext;		/* its extents as asked, n_ext of them (owned) */
	uint32_t n_ext;
	int list_fd;			/* DL_EXT_LIST_MEMFD: the list, owned until the open
					 * task reads it; else -1 */
	int buf_fd;			/* DL_EXT_INTO: the caller's buffer, owned until the
					 * open task gives it to the target; else -1 */
	char *path;			/* NULL for loads by fd */
	int passed_fd;			/* owned until the open task takes it */
	int root_fd;			/* DL_LOAD_ROOT_FD: the client's root directory,
					 * owned until the open task closes it; else -1 */
	char name[256];			/* path or "fd:N (dev:ino)" for logs and STATUS */
	uint8_t target;			/* enum dl_target chosen (never auto) */
	char heap[DL_HEAP_NAME_MAX + 1];	/* target heap: its name */

	/* what is being done */
	struct source src;
	struct target tgt;
	struct copy cp;			/* the file range (cp.off, cp.len), the method, the
					 * chunks and the bytes landed (copy.c) */
	struct copy_seg *segs;		/* LOAD_EXTENTS: the runs the copy reads (owned) */
	int cache_fd;			/* into: a dup of the cached buffer the bytes are
					 * copied from (owned), else -1 */
	uint64_t cache_off;		/* its file offset at buffer byte 0 */
	bool from_cache;		/* into: served by that copy, nothing read */
	uint64_t buf_len;		/* the new buffer's size: cp.len, or for extents
					 * the end of the last one in the buffer */
	char who[320];			/* "conn N load M name": the prefix of its logs */
	char msg[512];			/* why a task on the workers failed, for ERROR */
	uint64_t mem_admitted;		/* bytes memory_admit() let it allocate */

	/* sharing (cache.c) */
	bool shareable;			/* method auto: may join, hit, or lead an entry */
	bool prepared;			/* method planned and buffer made */
	/* A small file (job.c, JOB_SMALL_MAX): opened, read, sealed and its source
	 * closed in the one open task, or only opened, statted and closed again when
	 * the cache likely has it. */
	bool small;			/* may take that way (decided before the open) */
	bool filled;			/* it did: the buffer is sealed, nothing to read */
	bool src_closed;		/* its source was closed after the stat, for a hit */
	bool reopen;			/* the cache was asked and missed: a src_closed
					 * load opens again, any small load reads */
	bool root_opath;		/* root_fd is an O_PATH fd kept for that reopen */
	bool accepted;			/* ACCEPTED sent */
	struct source seen;		/* src_closed: what the first open saw */
	struct quota_uid *quota;	/* its uid's tally of loads and bytes (quota.h) */
	uint64_t quota_bytes;		/* buffer bytes admitted to it there */
	bool orphaned;			/* its client cancelled or left; reads on for the
					 * joiners of its entry */
	struct cache_load cl;		/* the load as the cache sees it */

	struct worker_task task;
	bool task_busy;
	bool replied;			/* final reply (DONE or ERROR) sent */
	int err;			/* first failure (negative), 0 if none */
	uint64_t t_start, t_progress;
};

/* Creates a job of @eng for @owner's LOAD or LOAD_EXTENTS @m; takes the @nfds @fds
 * that came with it on success and failure alike. Starts it: the source is opened on
 * a worker. */
int job_new(struct job **out, struct engine *eng, struct job_owner *owner,
	    const struct dl_msg *m, int *fds, int nfds);

/* Ends the job with @err (negative errno) and @msg told to its owner, if nothing final
 * was told yet. Resources go when in-flight work is done. */
void job_fail(struct job *j, int err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Ends the job with a DONE carrying @fd (borrowed): a buffer of entry @e that it
 * did not read itself; @how is DL_DONE_CACHED or DL_DONE_JOINED. Releases the job. */
void job_done_shared(struct job *j, int fd, const struct cache_entry *e, uint32_t how);

/* Its owner is gone: the job ends without a reply. */
void job_detach(struct job *j);


