/*
 * worker.h: a small pool of threads for the calls that can block for long and have no
 * io_uring op (opening a path on a slow filesystem, pinning a GiB of pages, freeing
 * one). Tasks run on a worker; their completion runs back on the event loop.
 */
#pragma once

#include <ev.h>
#include <stdbool.h>

struct worker_task;

/* run: on a worker thread, must not touch loop state; its return value is passed to
 * done. done: on the loop thread, after run. */
struct worker_task {
	int (*run)(struct worker_task *t);
	void (*done)(struct worker_task *t, int res);
	struct worker_task *next;	/* owned by the pool while queued */
	int res;
};

struct worker_pool;

/* Starts @n threads. Returns 0 or -errno. */
int worker_pool_new(struct worker_pool **out, struct ev_loop *loop, unsigned n);
/* Waits for queued and running tasks to finish (their done callbacks run), then stops
 * the threads. Returns NULL. */
struct worker_pool *worker_pool_free(struct worker_pool *p);

/* Queues @t; borrows it until its done callback has run. */
void worker_submit(struct worker_pool *p, struct worker_task *t);
/* The same, at the head of the queue: for a short task someone waits on (opening a
 * foreground load) that should not wait behind long ones (freeing big buffers). */
void worker_submit_first(struct worker_pool *p, struct worker_task *t);

/* Tasks queued or running (their done not yet called). */
unsigned worker_pending(const struct worker_pool *p);

/* Calls @fn(@data) on the loop each time the last pending task's done callback has
 * run: how the daemon's stop learns that nothing is left (NULL: no one). */
void worker_pool_on_idle(struct worker_pool *p, void (*fn)(void *data), void *data);

/* Closes @fd (consumed) on a worker: when it is the last reference to a big buffer,
 * the close frees its pages, which takes tens of milliseconds per GiB. Closes it at
 * once when there is no pool or no memory for the task. */
void worker_close(struct worker_pool *p, int fd);
