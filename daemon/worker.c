/*
 * worker.c: the blocking-call pool. One mutex guards a FIFO per lane; finished tasks
 * go on a list and an ev_async wakes the loop, which runs their done callbacks. The
 * pool owns neither tasks nor their memory: a task is embedded in its owner (a job),
 * which must stay alive until done runs; worker_pending() lets the owner's teardown
 * wait for that.
 *
 * Picking: a free thread takes the oldest task of the first lane (quick, finish,
 * file) that may run: a capped lane's task may not while its uid already holds
 * per_uid threads of that lane, and the capped lanes together keep one thread of
 * max for the quick lane. Tasks of a uid at its cap stay queued, in order, behind
 * nobody else's. This is a cap, not a fair share: the scheduler (sched.c) shares
 * the disk; the pool only sees to it that a stuck call holds back its own uid.
 *
 * Growth: a task that may start but finds no idle thread starts the grow timer on
 * the loop; each tick (WORKER_GROW_S) while that is still so starts one thread, up to
 * max. Short tasks are done before the first tick and never grow the pool; tasks
 * stuck in the kernel make it grow until what may run runs. A thread above min that
 * idles WORKER_IDLE_S ends. Threads are detached and
 * counted, so the pool can end without joining one that is stuck in the kernel: the
 * daemon's stop gives up on those after a grace period (server.c).
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "util.h"
#include "worker.h"

/* Seconds an extra thread idles before it ends. */
#define WORKER_IDLE_S 10
/* How long a task that may start waits for a thread before the pool grows by one. */
#define WORKER_GROW_S 0.02

/* worker_close_later's batches: handed to a worker when full, or this long after their
 * first fd, so that a close per cache hit costs no thread wake-up per hit. */
#define CLOSE_BATCH 32
#define CLOSE_DELAY_S 0.02

struct close_batch {
	struct worker_task task;
	unsigned n;
	int fd[CLOSE_BATCH];
};

/* Threads one uid holds in one capped lane; a slot per running capped task at most. */
struct worker_busy {
	uid_t uid;
	enum worker_lane lane;
	unsigned n;		/* 0: a free slot */
};

struct worker_pool {
	struct ev_loop *loop;
	ev_async wake;
	ev_timer grow_timer;		/* while a task may start and no thread is free */
	struct close_batch *batch;	/* worker_close_later's, loop thread only */
	ev_timer batch_timer;		/* hands it over CLOSE_DELAY_S after its first */
	pthread_mutex_t lock;
	pthread_cond_t cond;		/* work may be there, or stopping */
	pthread_cond_t gone;		/* a thread ended */
	struct worker_task *head[WORKER_LANES], *tail[WORKER_LANES];	/* under lock */
	struct worker_task *finished;			/* LIFO, under lock */
	unsigned pending;				/* loop thread only */
	void (*on_idle)(void *data);			/* loop thread only */
	void *idle_data;
	bool stopping;
	bool grow_failed;				/* logged once */
	/* The pool reached max: logged once each time, outside the lock (a log write
	 * may block, and the loop takes the lock to submit). */
	atomic_bool full, full_told;
	unsigned min, max, per_uid;
	unsigned n_threads, n_idle, n_signaled;		/* under lock */
	unsigned n_capped;		/* running tasks of the capped lanes, under lock */
	struct worker_busy busy[];	/* max slots, under lock */
};

static struct worker_busy *busy_find(struct worker_pool *p, const struct worker_task *t,
				     bool add)
{
	struct worker_busy *free_slot = NULL;

	for (unsigned i = 0; i < p->max; i++) {
		struct worker_busy *b = &p->busy[i];

		if (b->n && b->uid == t->uid && b->lane == t->lane)
			return b;
		if (!b->n && !free_slot)
			free_slot = b;
	}
	if (!add || !free_slot)
		return NULL;
	free_slot->uid = t->uid;
	free_slot->lane = t->lane;
	return free_slot;
}

/* Whether @t may start now. Under lock. */
static bool may_run(struct worker_pool *p, const struct worker_task *t)
{
	const struct worker_busy *b;

	if (t->lane == WORKER_QUICK)
		return true;
	if (p->n_capped + 1 >= p->max && p->max > 1)
		return false;		/* the last thread is the quick lane's */
	b = busy_find(p, t, false);
	return !b || b->n < p->per_uid;
}

/*
 * The first queued task that may start, and its predecessor in its lane. Under lock.
 * A scan, which a flood makes long: a lane whose cap is reached as a whole is
 * skipped, and a run of tasks of one uid that may not start costs a compare each.
 */
static struct worker_task *find(struct worker_pool *p, int *lane_out,
				struct worker_task **prev_out)
{
	for (int lane = 0; lane < WORKER_LANES; lane++) {
		struct worker_task *t, *prev = NULL;
		bool refused = false;
		uid_t refused_uid = 0;

		if (lane != WORKER_QUICK && p->max > 1 && p->n_capped + 1 >= p->max)
			continue;	/* the last thread is the quick lane's */
		for (t = p->head[lane]; t; prev = t, t = t->next) {
			if (refused && t->uid == refused_uid)
				continue;
			if (may_run(p, t)) {
				*lane_out = lane;
				*prev_out = prev;
				return t;
			}
			refused = true;
			refused_uid = t->uid;
		}
	}
	return NULL;
}

/* Takes the next task that may start, marking it running. Under lock. */
static struct worker_task *pick(struct worker_pool *p)
{
	struct worker_task *t, *prev;
	int lane;

	t = find(p, &lane, &prev);
	if (!t)
		return NULL;
	if (prev)
		prev->next = t->next;
	else
		p->head[lane] = t->next;
	if (p->tail[lane] == t)
		p->tail[lane] = prev;
	if (t->lane != WORKER_QUICK) {
		busy_find(p, t, true)->n++;
		p->n_capped++;
	}
	return t;
}

/* Whether a queued task may start now. Under lock. */
static bool runnable_left(struct worker_pool *p)
{
	struct worker_task *prev;
	int lane;

	return find(p, &lane, &prev) != NULL;
}

static void *worker_main(void *arg);

/* Starts one detached thread that takes no signals (those belong to the loop thread).
 * Under lock. Returns 0 or -errno. */
static int grow(struct worker_pool *p)
{
	pthread_attr_t attr;
	pthread_t th;
	sigset_t all, old;
	int r;

	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	r = -pthread_create(&th, &attr, worker_main, p);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	pthread_attr_destroy(&attr);
	if (r == 0)
		p->n_threads++;
	if (r == 0 && p->n_threads == p->max && p->max > p->min)
		atomic_store(&p->full, true);
	return r;
}

/* Says once that every thread was started: an admin's sign of calls that hang. */
static void tell_full(struct worker_pool *p)
{
	if (!atomic_load(&p->full) || atomic_exchange(&p->full_told, true))
		return;
	log_warn("workers: all %u threads (max_workers) are started; calls stuck in the "
		 "kernel keep theirs, and tasks wait for a free one", p->max);
}

/* Wakes an idle thread that nobody woke yet. Under lock. Returns false if none. */
static bool wake_idle(struct worker_pool *p)
{
	if (p->n_idle <= p->n_signaled)
		return false;
	p->n_signaled++;
	pthread_cond_signal(&p->cond);
	return true;
}

/* Called by a thread that just took a task: more may start, for an idle thread. */
static void kick_more(struct worker_pool *p)
{
	if (runnable_left(p))
		wake_idle(p);
}

static void unmark(struct worker_pool *p, const struct worker_task *t)
{
	if (t->lane != WORKER_QUICK) {
		busy_find(p, t, false)->n--;
		p->n_capped--;
	}
}

static void *worker_main(void *arg)
{
	struct worker_pool *p = arg;
	bool idled = false;

	pthread_mutex_lock(&p->lock);
	for (;;) {
		struct worker_task *t = pick(p);
		struct timespec until;

		if (t) {
			idled = false;
			kick_more(p);
			pthread_mutex_unlock(&p->lock);
			t->res = t->run(t);
			pthread_mutex_lock(&p->lock);
			unmark(p, t);
			t->next = p->finished;
			p->finished = t;
			ev_async_send(p->loop, &p->wake);
			continue;	/* the cap it held may have let another start */
		}
		if (p->stopping || (idled && p->n_threads > p->min))
			break;
		clock_gettime(CLOCK_MONOTONIC, &until);
		until.tv_sec += WORKER_IDLE_S;
		p->n_idle++;
		idled = pthread_cond_timedwait(&p->cond, &p->lock, &until) == ETIMEDOUT;
		p->n_idle--;
		if (p->n_signaled)
			p->n_signaled--;
	}
	if (p->n_threads-- == p->max) {
		atomic_store(&p->full, false);
		atomic_store(&p->full_told, false);
	}
	pthread_cond_broadcast(&p->gone);
	pthread_mutex_unlock(&p->lock);
	return NULL;
}

/* Runs done callbacks, oldest first. */
static void pool_reap(struct worker_pool *p)
{
	struct worker_task *list, *rev = NULL;

	pthread_mutex_lock(&p->lock);
	list = p->finished;
	p->finished = NULL;
	pthread_mutex_unlock(&p->lock);
	while (list) {
		struct worker_task *t = list;

		list = t->next;
		t->next = rev;
		rev = t;
	}
	while (rev) {
		struct worker_task *t = rev;

		rev = t->next;
		p->pending--;
		t->done(t, t->res);
	}
	if (!p->pending && p->on_idle)
		p->on_idle(p->idle_data);
}

static void on_wake(struct ev_loop *loop, ev_async *w, int revents)
{
	pool_reap(w->data);
}

static void batch_flush(struct worker_pool *p);

static void on_batch_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
	batch_flush(w->data);
}

/* A tick of growth: a task still may start and no thread is free to take it. */
static void on_grow(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct worker_pool *p = w->data;
	bool more = false;
	int r = 0;

	pthread_mutex_lock(&p->lock);
	if (runnable_left(p) && !wake_idle(p) && p->n_threads < p->max) {
		r = grow(p);
		more = r == 0;
	}
	pthread_mutex_unlock(&p->lock);
	if (r < 0 && !p->grow_failed) {
		p->grow_failed = true;
		log_warn("workers: cannot start a thread: %s; tasks wait for a free one",
			 strerror(-r));
	}
	tell_full(p);
	if (!more)
		ev_timer_stop(loop, w);
}

int worker_pool_new(struct worker_pool **out, struct ev_loop *loop, unsigned min,
		    unsigned max, unsigned per_uid)
{
	struct worker_pool *p;
	pthread_condattr_t ca;
	int r = 0;

	if (max < min)
		max = min;
	if (max < 1)
		max = 1;
	p = calloc(1, sizeof(*p) + max * sizeof(p->busy[0]));
	if (!p)
		return -ENOMEM;
	p->loop = loop;
	p->min = min;
	p->max = max;
	p->per_uid = per_uid ? per_uid : 1;
	pthread_mutex_init(&p->lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&p->cond, &ca);
	pthread_condattr_destroy(&ca);
	pthread_cond_init(&p->gone, NULL);
	ev_async_init(&p->wake, on_wake);
	p->wake.data = p;
	ev_async_start(loop, &p->wake);
	ev_timer_init(&p->grow_timer, on_grow, WORKER_GROW_S, WORKER_GROW_S);
	p->grow_timer.data = p;
	ev_timer_init(&p->batch_timer, on_batch_timer, CLOSE_DELAY_S, 0);
	p->batch_timer.data = p;
	pthread_mutex_lock(&p->lock);
	for (unsigned i = 0; i < min && !r; i++)
		r = grow(p);
	pthread_mutex_unlock(&p->lock);
	if (r) {
		worker_pool_free(p);
		return r;
	}
	*out = p;
	return 0;
}

struct worker_pool *worker_pool_free(struct worker_pool *p)
{
	if (!p)
		return NULL;
	p->on_idle = NULL;		/* its owner is going away too */
	ev_timer_stop(p->loop, &p->batch_timer);
	if (p->batch) {		/* the daemon is stopping: the loop waits on nothing now */
		close_fds(p->batch->fd, (int)p->batch->n);
		free(p->batch);
		p->batch = NULL;
	}
	pthread_mutex_lock(&p->lock);
	p->stopping = true;
	pthread_cond_broadcast(&p->cond);
	/* Threads drain the queues before they see stopping with nothing left. */
	while (p->n_threads)
		pthread_cond_wait(&p->gone, &p->lock);
	pthread_mutex_unlock(&p->lock);
	pool_reap(p);
	ev_timer_stop(p->loop, &p->grow_timer);
	ev_async_stop(p->loop, &p->wake);
	pthread_cond_destroy(&p->cond);
	pthread_cond_destroy(&p->gone);
	pthread_mutex_destroy(&p->lock);
	free(p);
	return NULL;
}

static void enqueue(struct worker_pool *p, struct worker_task *t, bool first)
{
	enum worker_lane lane = t->lane < WORKER_LANES ? t->lane : WORKER_FILE;

	t->lane = lane;
	p->pending++;
	pthread_mutex_lock(&p->lock);
	if (first) {
		t->next = p->head[lane];
		p->head[lane] = t;
		if (!p->tail[lane])
			p->tail[lane] = t;
	} else {
		t->next = NULL;
		if (p->tail[lane])
			p->tail[lane]->next = t;
		else
			p->head[lane] = t;
		p->tail[lane] = t;
	}
	/* No thread to take it now: the pool grows if it waits a tick. */
	if (!wake_idle(p) && !ev_is_active(&p->grow_timer))
		ev_timer_again(p->loop, &p->grow_timer);
	pthread_mutex_unlock(&p->lock);
}

void worker_submit(struct worker_pool *p, struct worker_task *t)
{
	enqueue(p, t, false);
}

void worker_submit_first(struct worker_pool *p, struct worker_task *t)
{
	enqueue(p, t, true);
}

void worker_done_soon(struct worker_pool *p, struct worker_task *t, int res)
{
	p->pending++;
	t->res = res;
	pthread_mutex_lock(&p->lock);
	t->next = p->finished;
	p->finished = t;
	pthread_mutex_unlock(&p->lock);
	/* Pending in this turn of the loop: no wake-up through the kernel. */
	ev_feed_event(p->loop, &p->wake, EV_ASYNC);
}

unsigned worker_pending(const struct worker_pool *p)
{
	return p->pending;
}

void worker_pool_on_idle(struct worker_pool *p, void (*fn)(void *data), void *data)
{
	p->on_idle = fn;
	p->idle_data = data;
}

/* A close that may free a big buffer. */
struct closer {
	struct worker_task task;
	int fd;
};

static int closer_run(struct worker_task *t)
{
	close(((struct closer *)t)->fd);
	return 0;
}

static void closer_done(struct worker_task *t, int res)
{
	free(t);
}

static void closer_submit(struct worker_pool *p, int fd, enum worker_lane lane, uid_t uid)
{
	struct closer *cl = p ? malloc(sizeof(*cl)) : NULL;

	if (!cl) {
		close(fd);	/* no pool, or no memory for the task: the loop pays once */
		return;
	}
	cl->task = (struct worker_task){ .run = closer_run, .done = closer_done,
					 .lane = lane, .uid = uid };
	cl->fd = fd;
	worker_submit(p, &cl->task);
}

void worker_close(struct worker_pool *p, int fd)
{
	closer_submit(p, fd, WORKER_QUICK, 0);
}

void worker_close_files(struct worker_pool *p, const int *fds, int n, uid_t uid)
{
	for (int i = 0; i < n; i++)
		closer_submit(p, fds[i], WORKER_FINISH, uid);
}

static int batch_run(struct worker_task *t)
{
	struct close_batch *b = (struct close_batch *)t;

	close_fds(b->fd, (int)b->n);
	return 0;
}

static void batch_done(struct worker_task *t, int res)
{
	free(t);
}

static void batch_flush(struct worker_pool *p)
{
	struct close_batch *b = p->batch;

	ev_timer_stop(p->loop, &p->batch_timer);
	if (!b)
		return;
	p->batch = NULL;
	b->task = (struct worker_task){ .run = batch_run, .done = batch_done };
	worker_submit(p, &b->task);
}

void worker_close_later(struct worker_pool *p, int fd)
{
	if (p && !p->batch)
		p->batch = calloc(1, sizeof(*p->batch));
	if (!p || !p->batch) {
		close(fd);	/* no pool, or no memory for the batch: the loop pays once */
		return;
	}
	p->batch->fd[p->batch->n++] = fd;
	if (p->batch->n == CLOSE_BATCH)
		batch_flush(p);
	else if (!ev_is_active(&p->batch_timer)) {
		/* set again each time: a stop leaves the time left (none) in it */
		ev_timer_set(&p->batch_timer, CLOSE_DELAY_S, 0);
		ev_timer_start(p->loop, &p->batch_timer);
	}
}
