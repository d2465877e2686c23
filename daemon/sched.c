/*
 * sched.c: the reading slots and the order of reads. Loads wait in arrival order for
 * one of cfg->max_loads reading slots, which bounds the buffers being filled (memory)
 * and the files open for reading at once. Active loads take turns: each pass over the
 * active list issues one chunk per load, so a small load started next to a huge one
 * finishes in proportion to its size, not after it. The whole daemon keeps at most
 * cfg->queue_depth reads in flight, which is what the disk sees.
 *
 * A load that will use READ_FIXED first registers its mapping (pinning its pages) on
 * a worker; it counts as reading meanwhile but issues nothing.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "copy.h"
#include "job.h"
#include "log.h"
#include "sched.h"
#include "server.h"

/* io_uring takes registered buffers of at most 1 GiB each. */
#define FIXED_MAX ((uint64_t)1 << 30)

int sched_init(struct sched *s, struct server *srv, unsigned n_fixed)
{
	memset(s, 0, sizeof(*s));
	s->srv = srv;
	list_init(&s->waiting);
	list_init(&s->active);
	if (n_fixed) {
		s->fixed_used = calloc(n_fixed, 1);
		if (!s->fixed_used)
			return -ENOMEM;
		s->n_fixed = n_fixed;
	}
	return 0;
}

void sched_deinit(struct sched *s)
{
	free(s->fixed_used);
	s->fixed_used = NULL;
}

int sched_take_slot(struct sched *s)
{
	for (unsigned i = 0; i < s->n_fixed; i++) {
		if (!s->fixed_used[i]) {
			s->fixed_used[i] = 1;
			return (int)i;
		}
	}
	return -1;
}

void sched_put_slot(struct sched *s, int slot)
{
	if (slot >= 0 && (unsigned)slot < s->n_fixed)
		s->fixed_used[slot] = 0;
}

static int register_run(struct worker_task *t)
{
	struct job *j = list_entry(t, struct job, task);
	struct iovec iov = { .iov_base = j->tgt.map, .iov_len = j->tgt.map_len };

	return ring_register_slot(&j->srv->ring, (unsigned)j->fixed_slot, &iov);
}

static void register_done(struct worker_task *t, int res)
{
	struct job *j = list_entry(t, struct job, task);
	struct sched *s = &j->srv->sched;

	j->task_busy = false;
	if (res < 0) {
		/* Not fatal: the reads work without it, only slower. */
		log_notice("load %llu %s: cannot register its buffer (%s): plain reads",
			   (unsigned long long)j->id, j->name, strerror(-res));
		sched_put_slot(s, j->fixed_slot);
		j->fixed_slot = -1;
	}
	j->registering = false;
	if (j->err) {
		job_fail(j, j->err, "cancelled");	/* releases, replies only once */
		return;
	}
	sched_pump(s);
}

static void sched_activate(struct sched *s, struct job *j)
{
	const struct config *cfg = s->srv->cfg;

	list_add_tail(&s->active, &j->sched_link);
	j->sched_active = true;
	s->n_active++;
	j->state = DL_STATE_READING;
	/* Registering pins every page up front: cheap for huge pages, about 0.4 s per
	 * GiB of 4 KiB pages, which costs more than READ_FIXED saves; hence auto. Only
	 * reads use the slot. */
	if ((cfg->fixed_buffers == CONFIG_ON ||
	     (cfg->fixed_buffers == CONFIG_AUTO && j->tgt.hugetlb)) &&
	    j->method != DL_METHOD_CFR && j->tgt.kind != DL_TARGET_HEAP &&
	    s->srv->ring.fixed_ok &&
	    j->tgt.map_len <= FIXED_MAX && (j->fixed_slot = sched_take_slot(s)) >= 0) {
		j->registering = true;
		j->task = (struct worker_task){ .run = register_run, .done = register_done };
		j->task_busy = true;
		worker_submit(s->srv->pool, &j->task);
	}
}

void sched_add(struct sched *s, struct job *j)
{
	if (s->n_active < s->srv->cfg->max_loads) {
		sched_activate(s, j);
		sched_pump(s);
	} else {
		list_add_tail(&s->waiting, &j->sched_link);
		s->n_waiting++;
	}
}

void sched_remove(struct sched *s, struct job *j)
{
	if (list_empty(&j->sched_link))
		return;
	if (j->sched_active)
		s->n_active--;
	else
		s->n_waiting--;
	j->sched_active = false;
	list_del(&j->sched_link);
	while (s->n_active < s->srv->cfg->max_loads && !list_empty(&s->waiting)) {
		struct job *next = list_entry(s->waiting.next, struct job, sched_link);

		list_del(&next->sched_link);
		s->n_waiting--;
		sched_activate(s, next);
	}
	if (!s->n_active) {
		copy_pipes_deinit(&s->srv->pipes);
		copy_bounce_deinit(&s->srv->bounce);
	}
	sched_pump(s);
}

void sched_pump(struct sched *s)
{
	const struct config *cfg = s->srv->cfg;
	unsigned idle = 0;

	/* job_issue can fail a job, which removes it and calls back in here. */
	if (s->pumping)
		return;
	s->pumping = true;
	/* Take the head, move it to the tail, let it issue one chunk: the next read
	 * always goes to the load that waited longest for a turn. Stop when a whole
	 * round issued nothing or there is no room. */
	while (!list_empty(&s->active) && idle < s->n_active &&
	       s->reads_inflight < cfg->queue_depth && ring_has_room(&s->srv->ring)) {
		struct job *j = list_entry(s->active.next, struct job, sched_link);

		list_rotate(&s->active, &j->sched_link);
		if (copy_issue(j))
			idle = 0;
		else
			idle++;
	}
	s->pumping = false;
}
