/*
 * worker.h: a pool of threads for the calls that can block for long and have no
 * io_uring op (opening a path on a slow filesystem, pinning a GiB of pages, freeing
 * one). Tasks run on a worker; their completion runs back on the event loop.
 *
 * A call that touches a client's filesystem may never return (a FUSE server that
 * does not answer, a lease held for lease-break-time): such tasks name a lane and
 * the uid they run for, and no uid may hold more than @per_uid threads of one lane.
 * The pool grows (up to @max threads) when every thread is busy, so one user's
 * stuck calls cannot starve another's, and the quick lane (closes, registration:
 * kernel memory work only) never waits behind either.
 */
#pragma once

#include <ev.h>
#include <stdbool.h>
#include <sys/types.h>

/* What a task may touch, which decides what it can wait behind. */
enum worker_lane {
	WORKER_QUICK = 0,	/* memory only (closing buffers, registration): no cap */
	WORKER_FILE,		/* opens, statx, reads of a client's file: capped per uid */
	WORKER_FINISH,		/* seals and releases (stat and close the source):
				 * capped per uid apart from the opens */
	WORKER_LANES
};

struct worker_task;

/* run: on a worker thread, must not touch loop state; its return value is passed to
 * done. done: on the loop thread, after run. lane and uid: set by the submitter
 * (zero: the quick lane). */
struct worker_task {
	int (*run)(struct worker_task *t);
	void (*done)(struct worker_task *t, int res);
	enum worker_lane lane;
	uid_t uid;			/* whose task it is, for the per-uid cap */
	struct worker_task *next;	/* owned by the pool while queued */
	int res;
};

struct worker_pool;

/* Starts @min threads, which stay; up to @max run when tasks wait and every thread is
 * busy (the extra ones end after idling a while); @per_uid: the most threads one uid's
 * tasks of one capped lane may hold. Returns 0 or -errno. */
int worker_pool_new(struct worker_pool **out, struct ev_loop *loop, unsigned min,
		    unsigned max, unsigned per_uid);
/* Waits for queued and running tasks to finish (their done callbacks run), then stops
 * the threads. Returns NULL. Only for a pool with nothing stuck: a stopping daemon
 * that gave up on stuck tasks exits without it. */
struct worker_pool *worker_pool_free(struct worker_pool *p);

/* Queues @t; borrows it until its done callback has run. */
void worker_submit(struct worker_pool *p, struct worker_task *t);
/* The same, at the head of its lane: for a short task someone waits on (opening a
 * foreground load) that should not wait behind long ones. */
void worker_submit_first(struct worker_pool *p, struct worker_task *t);

/* Calls @t's done with @res on the loop's next turn, as if a worker had run it: for
 * a task the loop found it could do at once (a likely cache hit, lookup.c), so that
 * its done runs where every done runs, with no caller holding what it may free. */
void worker_done_soon(struct worker_pool *p, struct worker_task *t, int res);

/* Tasks queued or running (their done not yet called). */
unsigned worker_pending(const struct worker_pool *p);

/* Calls @fn(@data) on the loop each time the last pending task's done callback has
 * run: how the daemon's stop learns that nothing is left (NULL: no one). */
void worker_pool_on_idle(struct worker_pool *p, void (*fn)(void *data), void *data);

/* Closes @fd (consumed) on a worker: when it is the last reference to a big buffer,
 * the close frees its pages, which takes tens of milliseconds per GiB. Closes it at
 * once when there is no pool or no memory for the task. Quick lane: only for fds
 * that are not a client's file (a FUSE file's close may wait on its server). */
void worker_close(struct worker_pool *p, int fd);

/* Closes @n fds (consumed), a client's files, each on a worker of @uid's in the
 * finish lane: every close(2) of a file calls its filesystem's flush, which FUSE sends
 * to its server and waits for, so a client's own FUSE server could hold the closing
 * thread for ever. For the fds a request brought that the loop refuses or drops. */
void worker_close_files(struct worker_pool *p, const int *fds, int n, uid_t uid);

/* Closes @fd (consumed) on a worker, with others: batched, CLOSE_BATCH at a time or
 * within 20 ms, so that one per request costs no thread wake-up each. For O_PATH fds
 * the loop must not close: such a close runs no filesystem code, but as the last
 * reference it frees an unlinked inode (a journal transaction) or the last mount of
 * a lazily unmounted filesystem (its whole teardown). Quick lane, like worker_close. */
void worker_close_later(struct worker_pool *p, int fd);
