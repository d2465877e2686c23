/*
 * worker.c: the blocking-call pool. A mutex-protected FIFO feeds the threads; finished
 * tasks go on a second list and an ev_async wakes the loop, which runs their done
 * callbacks. The pool owns neither tasks nor their memory: a task is embedded in its
 * owner (a job), which must stay alive until done runs; worker_pending() lets the
 * owner's teardown wait for that.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <unistd.h>

#include "log.h"
#include "worker.h"

struct worker_pool {
	struct ev_loop *loop;
	ev_async wake;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct worker_task *todo_head, *todo_tail;	/* FIFO, under lock */
	struct worker_task *finished;			/* LIFO, under lock */
	unsigned pending;				/* loop thread only */
	void (*on_idle)(void *data);			/* loop thread only */
	void *idle_data;
	bool stopping;
	unsigned n_threads;
	pthread_t threads[];
};

static void *worker_main(void *arg)
{
	struct worker_pool *p = arg;

	pthread_mutex_lock(&p->lock);
	for (;;) {
		struct worker_task *t;

		while (!p->todo_head && !p->stopping)
			pthread_cond_wait(&p->cond, &p->lock);
		if (!p->todo_head)
			break;
		t = p->todo_head;
		p->todo_head = t->next;
		if (!p->todo_head)
			p->todo_tail = NULL;
		pthread_mutex_unlock(&p->lock);

		t->res = t->run(t);

		pthread_mutex_lock(&p->lock);
		t->next = p->finished;
		p->finished = t;
		ev_async_send(p->loop, &p->wake);
	}
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

int worker_pool_new(struct worker_pool **out, struct ev_loop *loop, unsigned n)
{
	struct worker_pool *p;
	sigset_t all, old;
	int r = 0;

	p = calloc(1, sizeof(*p) + n * sizeof(pthread_t));
	if (!p)
		return -ENOMEM;
	p->loop = loop;
	pthread_mutex_init(&p->lock, NULL);
	pthread_cond_init(&p->cond, NULL);
	ev_async_init(&p->wake, on_wake);
	p->wake.data = p;
	ev_async_start(loop, &p->wake);
	/* Workers take no signals: those belong to the loop thread. */
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	for (unsigned i = 0; i < n; i++) {
		r = -pthread_create(&p->threads[i], NULL, worker_main, p);
		if (r)
			break;
		p->n_threads++;
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
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
	pthread_mutex_lock(&p->lock);
	p->stopping = true;
	pthread_cond_broadcast(&p->cond);
	pthread_mutex_unlock(&p->lock);
	p->on_idle = NULL;		/* its owner is going away too */
	/* Threads drain the queue before they see stopping with nothing left. */
	for (unsigned i = 0; i < p->n_threads; i++)
		pthread_join(p->threads[i], NULL);
	pool_reap(p);
	ev_async_stop(p->loop, &p->wake);
	pthread_cond_destroy(&p->cond);
	pthread_mutex_destroy(&p->lock);
	free(p);
	return NULL;
}

void worker_submit(struct worker_pool *p, struct worker_task *t)
{
	t->next = NULL;
	p->pending++;
	pthread_mutex_lock(&p->lock);
	if (p->todo_tail)
		p->todo_tail->next = t;
	else
		p->todo_head = t;
	p->todo_tail = t;
	pthread_cond_signal(&p->cond);
	pthread_mutex_unlock(&p->lock);
}

void worker_submit_first(struct worker_pool *p, struct worker_task *t)
{
	p->pending++;
	pthread_mutex_lock(&p->lock);
	t->next = p->todo_head;
	p->todo_head = t;
	if (!p->todo_tail)
		p->todo_tail = t;
	pthread_cond_signal(&p->cond);
	pthread_mutex_unlock(&p->lock);
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

void worker_close(struct worker_pool *p, int fd)
{
	struct closer *cl = p ? malloc(sizeof(*cl)) : NULL;

	if (!cl) {
		close(fd);	/* no pool, or no memory for the task: the loop pays once */
		return;
	}
	cl->task = (struct worker_task){ .run = closer_run, .done = closer_done };
	cl->fd = fd;
	worker_submit(p, &cl->task);
}
