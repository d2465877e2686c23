/*
 * test-worker.c: the blocking-call pool (daemon/worker.c), linked straight against the
 * daemon's objects, with tasks that block until the test lets them go: calls stuck
 * in the kernel, as far as the pool can tell.
 *
 * The per-uid cap: of one uid's tasks in the file lane no more than per_uid start,
 * however long the loop runs (where the pool grows); another uid's task, a
 * finish-lane task of the same uid and a quick task all run meanwhile; once let go,
 * the capped uid's tasks run in the order they came. The pool's size: with every uid
 * under its cap, the pool grows until max - 1 capped tasks run (the last thread is
 * the quick lane's) and no more, and a quick task still runs. Every done
 * callback runs on the loop, on_idle when the last one has, and worker_pool_free
 * runs what is still queued.
 */
#include <errno.h>
#include <ev.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../lib/check.h"
#include "../lib/harness.h"
#include "worker.h"

#define N_MAX 16

struct ttask {
	struct worker_task t;
	bool blocks;		/* waits for the gate */
	atomic_bool started;
	bool done;		/* loop thread */
	int res;
	int order;		/* when it started, among all tasks of the case */
};

static pthread_mutex_t gate_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t gate_cond = PTHREAD_COND_INITIALIZER;
static bool gate_open;
static atomic_int n_started;
static unsigned n_idle_calls;

static int ttask_run(struct worker_task *t)
{
	struct ttask *tt = (struct ttask *)t;

	tt->order = atomic_fetch_add(&n_started, 1);
	atomic_store(&tt->started, true);
	if (tt->blocks) {
		pthread_mutex_lock(&gate_lock);
		while (!gate_open)
			pthread_cond_wait(&gate_cond, &gate_lock);
		pthread_mutex_unlock(&gate_lock);
	}
	return 7;
}

static void ttask_done(struct worker_task *t, int res)
{
	struct ttask *tt = (struct ttask *)t;

	tt->done = true;
	tt->res = res;
}

static void on_idle(void *data)
{
	n_idle_calls++;
}

static void gate(bool open)
{
	pthread_mutex_lock(&gate_lock);
	gate_open = open;
	pthread_cond_broadcast(&gate_cond);
	pthread_mutex_unlock(&gate_lock);
}

static void task_init(struct ttask *tt, enum worker_lane lane, uid_t uid, bool blocks)
{
	memset(tt, 0, sizeof(*tt));
	tt->t = (struct worker_task){ .run = ttask_run, .done = ttask_done, .lane = lane,
				      .uid = uid };
	tt->blocks = blocks;
	tt->order = -1;
}

/* Runs the loop until @tt's done callback ran, up to @ms. */
static bool wait_done(struct ev_loop *loop, const struct ttask *tt, int ms)
{
	for (uint64_t until = now_ms() + (uint64_t)ms; !tt->done; sleep_ms(5)) {
		ev_run(loop, EVRUN_NOWAIT);
		if (now_ms() > until)
			return false;
	}
	return true;
}

/* Runs the loop (where the pool grows) for @ms. */
static void pump(struct ev_loop *loop, int ms)
{
	for (uint64_t until = now_ms() + (uint64_t)ms; now_ms() < until; sleep_ms(5))
		ev_run(loop, EVRUN_NOWAIT);
}

static int count_started(struct ttask *ts, int n)
{
	int c = 0;

	for (int i = 0; i < n; i++)
		c += atomic_load(&ts[i].started);
	return c;
}

/* Lets the gate open and the loop run until nothing is pending, up to 5 s. */
static bool drain(struct ev_loop *loop, struct worker_pool *p)
{
	gate(true);
	for (uint64_t until = now_ms() + 5000; worker_pending(p); sleep_ms(5)) {
		ev_run(loop, EVRUN_NOWAIT);
		if (now_ms() > until)
			return false;
	}
	return true;
}

static void per_uid_cap(void)
{
	struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
	struct worker_pool *p = NULL;
	struct ttask hog[5], other, finish, quick;
	int r;

	gate(false);
	atomic_store(&n_started, 0);
	n_idle_calls = 0;
	r = worker_pool_new(&p, loop, 2, 8, 2);
	if (!CHECKF(r == 0, "worker_pool_new: %s", strerror(-r)))
		goto out;
	worker_pool_on_idle(p, on_idle, NULL);
	for (int i = 0; i < 5; i++) {
		task_init(&hog[i], WORKER_FILE, 1000, true);
		worker_submit(p, &hog[i].t);
	}
	pump(loop, 300);
	CHECKF(count_started(hog, 5) == 2, "%d of uid 1000's 5 blocking opens started, "
	       "per_uid is 2", count_started(hog, 5));

	task_init(&other, WORKER_FILE, 0, false);
	worker_submit(p, &other.t);
	CHECKF(wait_done(loop, &other, 2000), "uid 0's open waits behind uid 1000's");
	task_init(&finish, WORKER_FINISH, 1000, false);
	worker_submit(p, &finish.t);
	CHECKF(wait_done(loop, &finish, 2000), "uid 1000's seal waits behind its opens");
	task_init(&quick, WORKER_QUICK, 1000, false);
	worker_submit(p, &quick.t);
	CHECKF(wait_done(loop, &quick, 2000), "a quick task waits behind the opens");
	CHECK_INT(other.res, ==, 7);
	CHECK_INT(count_started(hog, 5), ==, 2);
	CHECK_INT(n_idle_calls, ==, 0);

	if (!CHECK(drain(loop, p)))
		goto out;
	for (int i = 0; i < 5; i++)
		CHECKF(hog[i].done && hog[i].res == 7, "uid 1000's task %d: done %d res %d", i,
		       hog[i].done, hog[i].res);
	/* the three that waited started in the order they came */
	CHECKF(hog[2].order < hog[3].order && hog[3].order < hog[4].order,
	       "uid 1000's queued tasks started out of order: %d %d %d", hog[2].order,
	       hog[3].order, hog[4].order);
	CHECKF(n_idle_calls >= 1, "on_idle not called when the last task was done");
out:
	worker_pool_free(p);
	ev_loop_destroy(loop);
}

static void pool_size(void)
{
	struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
	struct worker_pool *p = NULL;
	struct ttask many[10], quick;
	int r;

	gate(false);
	atomic_store(&n_started, 0);
	r = worker_pool_new(&p, loop, 1, 8, 8);
	if (!CHECKF(r == 0, "worker_pool_new: %s", strerror(-r)))
		goto out;
	/* ten uids, each under its cap: the pool grows, and stops one short of max */
	for (int i = 0; i < 10; i++) {
		task_init(&many[i], WORKER_FILE, 2000 + i, true);
		worker_submit(p, &many[i].t);
	}
	for (uint64_t until = now_ms() + 2000; count_started(many, 10) < 7 &&
	     now_ms() < until; sleep_ms(5))
		ev_run(loop, EVRUN_NOWAIT);
	pump(loop, 200);
	CHECKF(count_started(many, 10) == 7, "%d of 10 blocking tasks of 10 uids started; "
	       "max 8 leaves 7 to the capped lanes", count_started(many, 10));
	task_init(&quick, WORKER_QUICK, 0, false);
	worker_submit(p, &quick.t);
	CHECKF(wait_done(loop, &quick, 2000), "a quick task found no thread");
	CHECK(drain(loop, p));
	for (int i = 0; i < 10; i++)
		CHECKF(many[i].done, "task %d never done", i);
out:
	worker_pool_free(p);
	ev_loop_destroy(loop);
}

/* worker_pool_free runs what is queued and calls every done before it returns. */
static void free_drains(void)
{
	struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
	struct worker_pool *p = NULL;
	struct ttask ts[12];
	int r;

	gate(true);
	r = worker_pool_new(&p, loop, 1, 3, 1);
	if (!CHECKF(r == 0, "worker_pool_new: %s", strerror(-r)))
		goto out;
	for (int i = 0; i < 12; i++) {
		task_init(&ts[i], i % 3 == 0 ? WORKER_QUICK : i % 3 == 1 ? WORKER_FILE :
			  WORKER_FINISH, 3000, false);
		worker_submit(p, &ts[i].t);
	}
	p = worker_pool_free(p);
	for (int i = 0; i < 12; i++)
		CHECKF(ts[i].done && ts[i].res == 7, "task %d: done %d res %d", i, ts[i].done,
		       ts[i].res);
out:
	worker_pool_free(p);
	ev_loop_destroy(loop);
}

int main(void)
{
	check_init("worker");
	CASE(per_uid_cap(), "per-uid cap: 2 of uid 1000's 5 stuck opens run; uid 0's open, "
	     "its seal and a quick task run meanwhile; the rest in order once let go");
	CASE(pool_size(), "growth: 10 uids' stuck tasks start 7 threads of max 8; a quick "
	     "task still runs");
	CASE(free_drains(), "worker_pool_free runs every queued task and its done");
	gate(true);
	return check_finish();
}
