/*
 * sched.c: the reading slots, the order of reads and the bandwidth limits.
 *
 * Slots: loads wait in arrival order for one of cfg->max_loads reading slots of their
 * class, which bounds the files being read at once. Each class has its own slots, so
 * a foreground load never waits for a background one to finish; background loads
 * that hold slots issue nothing while foreground chunks are waiting.
 *
 * Order: a reading load sits on its client's queue for its class (struct sched_queue,
 * embedded in the client). The queues of a class with loads on them form a ready
 * list, served by deficit round robin: a queue at the head gets a quantum of
 * chunk_size bytes, issues chunks while its deficit covers the next one, then goes to
 * the tail. So a client with a 100 GiB load and one with a 10 MiB load get the disk
 * in turns of equal bytes, however many loads each has; within a client, its loads
 * take turns a chunk each. A queue that could not issue (nothing left to issue, or
 * held back by a limit) keeps no credit. Foreground queues are served first;
 * background ones only when no foreground chunk could go, and only while at most 1/4
 * of queue_depth and of max_inflight are used, so a foreground load that arrives finds
 * room at once and few reads ahead of it at the disk.
 *
 * Limits: a chunk goes only when the daemon's bucket, its client's and its load's
 * (limit.h) each hold the chunk's bytes; chunks of a limited client are cut to a
 * quarter of its burst. A client held back gets an ev_timer for when its buckets will hold enough,
 * never a poll (woken late, it loses nothing: limit.h's catch-up); the daemon's bucket has one timer of its own. Bytes are charged when
 * issued: a limit counts what is asked of the disk.
 *
 * Lending: a reading load that cannot read (a bucket of its own or of its client holds
 * back its next chunk for longer than LEND_WAIT_NS, with none of its reads in flight)
 * does not keep its slot from a load that waits for one: the waiting load takes the
 * slot, and the throttled one goes to its class's lent list. There it counts as
 * waiting; once its buckets hold its next chunk (its client's limit timer wakes the
 * scheduler) it gets the next free slot before the loads that never had one, or takes
 * one from another load that is held back. So one client's loads at 1 byte/s cannot
 * hold every slot while others queue behind them, and nothing changes while nobody
 * waits. A load lends only to a load that can read at once, never to one held back by
 * its own or its client's bucket, so two throttled loads never trade a slot back and
 * forth.
 *
 * A load that will use READ_FIXED first registers its mapping (pinning its pages) on
 * a worker; it counts as reading meanwhile but issues nothing.
 *
 * Clients and loads are struct sched_owner and struct sched_load (sched.h), which
 * their connection and job embed; a load's chunks come from its struct copy.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "copy.h"
#include "log.h"
#include "ring.h"
#include "sched.h"
#include "source.h"
#include "target.h"
#include "util.h"

/* io_uring takes registered buffers of at most 1 GiB each. */
#define FIXED_MAX ((uint64_t)1 << 30)

/* A reading load held back by its limits for longer than this lends its slot to a
 * waiting load. A shorter wait is a limited load pacing its chunks (a 1 MiB chunk at
 * 20 MB/s): it keeps its slot, so a modest limit still gets its rate. */
#define LEND_WAIT_NS 50000000ull

/* How long the copy's bounce buffers outlive the last reading load. Freed at once,
 * the next load had to fault in and zero up to 128 MiB of them again (perf of 1 GiB
 * loads into 4 KiB pages: clear_page at 15% of the daemon's CPU, though on this VM
 * mostly the first touch of fresh memory). Loads that follow each other, a model's
 * files or a client's retries, keep them; an idle daemon gives them back. Pipes are
 * fds, and go as soon as nothing reads. */
#define TRIM_DELAY_S 10.0

static void on_global_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
	sched_pump(w->data);
}

static void on_trim_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct sched *s = w->data;

	if (!s->n_active)
		copy_env_trim(s->copy);
}

int sched_init(struct sched *s, const struct config *cfg, struct ev_loop *loop,
	       struct ring *ring, struct worker_pool *pool, struct copy_env *copy)
{
	unsigned n_fixed = ring->n_fixed;

	memset(s, 0, sizeof(*s));
	s->cfg = cfg;
	s->loop = loop;
	s->ring = ring;
	s->pool = pool;
	s->copy = copy;
	for (int k = 0; k < SCHED_CLASSES; k++) {
		list_init(&s->waiting[k]);
		list_init(&s->lent[k]);
		list_init(&s->ready[k]);
	}
	bucket_init(&s->global, cfg->limits.global_rate,
		    cfg->limits.global_burst ? cfg->limits.global_burst : cfg->chunk_size,
		    now_ns());
	ev_timer_init(&s->global_timer, on_global_timer, 0, 0);
	s->global_timer.data = s;
	ev_timer_init(&s->trim_timer, on_trim_timer, 0, 0);
	s->trim_timer.data = s;
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
	if (s->loop) {
		ev_timer_stop(s->loop, &s->global_timer);
		ev_timer_stop(s->loop, &s->trim_timer);
	}
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

/* ---- owners and their limits -------------------------------------------------------- */

/* The owner's wait for tokens ended (it issued, or has nothing waiting any more). */
static void throttle_end(struct sched_owner *o, uint64_t now)
{
	if (!o->throttled_since)
		return;
	o->throttled_ns += now - o->throttled_since;
	o->throttled_since = 0;
}

uint64_t sched_owner_throttled_ns(const struct sched_owner *o, uint64_t now)
{
	return o->throttled_ns + (o->throttled_since ? now - o->throttled_since : 0);
}

static void on_limit_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct sched_owner *o = w->data;

	o->limit_due = 0;
	sched_pump(o->sched);
}

void sched_owner_init(struct sched *s, struct sched_owner *o)
{
	memset(o, 0, sizeof(*o));
	o->sched = s;
	for (int k = 0; k < SCHED_CLASSES; k++) {
		list_init(&o->sq[k].link);
		list_init(&o->sq[k].loads);
		o->sq[k].owner = o;
	}
	list_init(&o->loads);
	ev_timer_init(&o->limit_timer, on_limit_timer, 0, 0);
	o->limit_timer.data = o;
	bucket_init(&o->bucket, 0, 0, now_ns());
}

static void arm(struct ev_loop *loop, ev_timer *t, uint64_t *due, uint64_t now,
		uint64_t wait);

void sched_owner_deinit(struct sched_owner *o)
{
	struct sched *s = o->sched;
	uint64_t now = now_ns();

	if (!s)
		return;
	/* A wake-up it was waiting for moves to the daemon's timer: a load of a closed
	 * connection that still reads for the loads that joined it must not stall
	 * because the timer that would have resumed it is gone. */
	if (ev_is_active(&o->limit_timer) && o->limit_due)
		arm(s->loop, &s->global_timer, &s->global_due, now,
		    o->limit_due > now ? o->limit_due - now : 0);
	ev_timer_stop(s->loop, &o->limit_timer);
	o->limit_due = 0;
	o->gone = true;
	throttle_end(o, now);
}

/* The load's own bucket: its rate_limit, when that is below its owner's rate. */
static void load_limits(struct sched_load *l, uint64_t now)
{
	const struct bucket *ob = &l->owner->bucket;
	uint64_t want = l->rate_limit;

	if (want && (!ob->rate || want < ob->rate))
		bucket_set(&l->bucket, want, ob->burst, now);
	else
		bucket_set(&l->bucket, 0, 0, now);
}

void sched_owner_limits(struct sched_owner *o, const char *name, const struct peer_cred *cred,
			uint64_t conn_id, const char *why)
{
	const struct config *cfg = o->sched->cfg;
	const struct limit_rule *rule;
	uint64_t rate, burst, now = now_ns();
	struct list *pos, *tmp;
	char who[64];

	rule = limits_lookup(&cfg->limits, name, cred->uid, cred->gid, cred->groups,
			     cred->n_groups, cfg->chunk_size, &rate, &burst);
	if (why && (rate != o->bucket.rate || burst != o->bucket.burst)) {
		limit_rule_str(rule, who, sizeof(who));
		if (rate)
			log_info("conn %llu (%s): %s: limit now %llu bytes/s, burst %llu (%s)",
				 (unsigned long long)conn_id, name[0] ? name : "-",
				 why, (unsigned long long)rate, (unsigned long long)burst,
				 who);
		else
			log_info("conn %llu (%s): %s: now unlimited (%s)",
				 (unsigned long long)conn_id, name[0] ? name : "-",
				 why, who);
	}
	bucket_set(&o->bucket, rate, burst, now);
	list_for_each_safe(pos, tmp, &o->loads)
		load_limits(list_entry(pos, struct sched_load, owner_link), now);
}

void sched_global_limits(struct sched *s)
{
	const struct config *cfg = s->cfg;

	bucket_set(&s->global, cfg->limits.global_rate,
		   cfg->limits.global_burst ? cfg->limits.global_burst : cfg->chunk_size,
		   now_ns());
}

/* ---- slots ------------------------------------------------------------------------- */

static int register_run(struct worker_task *t)
{
	struct sched_load *l = list_entry(t, struct sched_load, reg_task);
	struct iovec iov = { .iov_base = l->cp->tgt->map, .iov_len = l->cp->tgt->map_len };

	return ring_register_slot(l->owner->sched->ring, (unsigned)l->cp->fixed_slot, &iov);
}

static void register_done(struct worker_task *t, int res)
{
	struct sched_load *l = list_entry(t, struct sched_load, reg_task);
	struct sched *s = l->owner->sched;

	if (res < 0) {
		/* Not fatal: the reads work without it, only slower. */
		log_notice("%s: cannot register its buffer (%s): plain reads", l->cp->who,
			   strerror(-res));
		sched_put_slot(s, l->cp->fixed_slot);
		l->cp->fixed_slot = -1;
	}
	l->registering = false;
	l->ops->registered(l);		/* may release a load that failed meanwhile */
	sched_pump(s);
}

static void sched_activate(struct sched *s, struct sched_load *l)
{
	const struct config *cfg = s->cfg;
	struct sched_queue *q = &l->owner->sq[l->prio];
	const struct target *tgt = l->cp->tgt;

	list_add_tail(&q->loads, &l->link);
	if (list_empty(&q->link)) {
		list_add_tail(&s->ready[l->prio], &q->link);
		s->n_ready[l->prio]++;
		q->deficit = 0;
		q->in_turn = false;
	}
	l->active = true;
	s->active[l->prio]++;
	s->n_active++;
	load_limits(l, now_ns());	/* keeps the tokens a lent load's bucket holds */
	l->lent = false;
	l->ops->activated(l);
	/* Registering pins every page up front: cheap for huge pages, about 0.4 s per
	 * GiB of 4 KiB pages, which costs more than READ_FIXED saves; hence auto. Only
	 * reads use the slot. */
	if ((cfg->fixed_buffers == CONFIG_ON ||
	     (cfg->fixed_buffers == CONFIG_AUTO && tgt->hugetlb)) &&
	    l->cp->method != DL_METHOD_CFR && !tgt->pfnmap &&
	    s->ring->fixed_ok &&
	    tgt->map_len <= FIXED_MAX && l->cp->fixed_slot < 0 &&
	    (l->cp->fixed_slot = sched_take_slot(s)) >= 0) {
		l->registering = true;
		l->reg_task = (struct worker_task){ .run = register_run, .done = register_done };
		worker_submit(s->pool, &l->reg_task);
	}
}

uint64_t sched_load_rate(const struct sched_load *l)
{
	uint64_t own = l->rate_limit, client = l->owner ? l->owner->bucket.rate : 0;

	if (!own || (client && client < own))
		return client;
	return own;
}

void sched_load_init(struct sched_load *l)
{
	memset(l, 0, sizeof(*l));
	list_init(&l->link);
	list_init(&l->owner_link);
}

void sched_add(struct sched *s, struct sched_load *l)
{
	if (l->prio != DL_PRIO_BACKGROUND)
		l->prio = DL_PRIO_FOREGROUND;
	list_add_tail(&l->owner->loads, &l->owner_link);
	if (s->active[l->prio] < s->cfg->max_loads) {
		sched_activate(s, l);
		sched_pump(s);
	} else {
		list_add_tail(&s->waiting[l->prio], &l->link);
		s->n_waiting++;
		sched_pump(s);		/* a load held back may lend it its slot */
	}
}

static uint64_t chunk_cap(const struct sched *s, const struct sched_load *l);

/* How long @l's own and its client's buckets hold back its next chunk (0: it may go
 * now). The daemon's global bucket is left out: it holds back every load alike. */
static uint64_t load_wait(struct sched *s, struct sched_load *l, uint64_t now)
{
	uint64_t need = copy_next_len(l->cp, chunk_cap(s, l));
	uint64_t w = bucket_wait(&l->owner->bucket, need, now);
	uint64_t lw = bucket_wait(&l->bucket, need, now);

	return lw > w ? lw : w;
}

/* A reading load of class @cls that cannot use its slot: held back by its limits for
 * more than LEND_WAIT_NS, with no read in flight and its buffer not being registered.
 * The one that waits longest, or NULL. */
static struct sched_load *find_lender(struct sched *s, int cls, uint64_t now)
{
	struct sched_load *best = NULL;
	uint64_t best_wait = LEND_WAIT_NS;
	struct list *qp, *qtmp, *lp, *ltmp;

	list_for_each_safe(qp, qtmp, &s->ready[cls]) {
		struct sched_queue *q = list_entry(qp, struct sched_queue, link);

		list_for_each_safe(lp, ltmp, &q->loads) {
			struct sched_load *l = list_entry(lp, struct sched_load, link);
			uint64_t w;

			if (l->registering || l->cp->inflight || !copy_can_issue(l->cp))
				continue;
			w = load_wait(s, l, now);
			if (w > best_wait) {
				best = l;
				best_wait = w;
			}
		}
	}
	return best;
}

/* Arms @o's wake-up in @wait ns: its limit timer, or the daemon's once it is gone (a
 * closed client's load still reads for the loads that joined it). */
static void owner_wake(struct sched *s, struct sched_owner *o, uint64_t now, uint64_t wait)
{
	if (!o->gone)
		arm(s->loop, &o->limit_timer, &o->limit_due, now, wait);
	else
		arm(s->loop, &s->global_timer, &s->global_due, now, wait);
}

static void sched_deactivate(struct sched *s, struct sched_load *l);

/* The reading load @l gives its slot back and waits on the lent list until its
 * buckets hold its next chunk. */
static void sched_lend(struct sched *s, struct sched_load *l, uint64_t now)
{
	uint64_t w = load_wait(s, l, now);

	list_del(&l->link);
	sched_deactivate(s, l);
	list_add_tail(&s->lent[l->prio], &l->link);
	l->lent = true;
	s->n_waiting++;
	s->n_lent++;
	owner_wake(s, l->owner, now, w);
	l->ops->deactivated(l);
	log_debug("%s: held back by its limits for %.1f s: lends its reading slot",
		  l->cp->who, (double)w / 1e9);
}

/* The first load of list @from of class @k that may read at once (not held back by
 * its own or its client's bucket), or NULL. */
static struct sched_load *first_ready(struct sched *s, struct list *from, uint64_t now)
{
	struct list *pos, *tmp;

	list_for_each_safe(pos, tmp, from) {
		struct sched_load *l = list_entry(pos, struct sched_load, link);

		if (!load_wait(s, l, now))
			return l;
	}
	return NULL;
}

/* Takes @l off its waiting or lent list and gives it a slot. */
static void sched_take_waiting(struct sched *s, struct sched_load *l)
{
	list_del(&l->link);
	s->n_waiting--;
	if (l->lent)
		s->n_lent--;
	sched_activate(s, l);
}

/* Starts waiting loads while their class has free reading slots: after a load left,
 * and after SIGHUP raised max_loads. Lent loads whose buckets refilled go first (they
 * had a slot before any waiting load came); then waiting loads in arrival order. With
 * no slot free, a load that waits and may read at once takes the slot of one that is
 * held back by its limits (find_lender). */
static void sched_fill_slots(struct sched *s)
{
	uint64_t now = now_ns();

	for (int k = 0; k < SCHED_CLASSES; k++) {
		while (s->active[k] < s->cfg->max_loads) {
			struct sched_load *next = first_ready(s, &s->lent[k], now);

			if (!next && !list_empty(&s->waiting[k]))
				next = list_entry(s->waiting[k].next, struct sched_load, link);
			if (!next)
				break;
			sched_take_waiting(s, next);
		}
		/* Each round gives a slot to a load that may read at once and takes it
		 * from one that may not for LEND_WAIT_NS: the loads that may read and
		 * have no slot are one fewer each time, so this ends. Not while the
		 * scheduler walks the ready queues (a load failed in copy_issue): the
		 * pump that follows lends. */
		for (; !s->pumping;) {
			/* the lender first: the reading loads are few (max_loads), the
			 * waiting ones may be many */
			struct sched_load *lender = find_lender(s, k, now), *next;

			if (!lender)
				break;
			next = first_ready(s, &s->lent[k], now);
			if (!next)
				next = first_ready(s, &s->waiting[k], now);
			if (!next)
				break;
			sched_lend(s, lender, now);
			sched_take_waiting(s, next);
		}
	}
}

/* Takes the reading load @l (already off its owner's queue list) out of the active
 * count and its queue out of the ready list if it was the last. */
static void sched_deactivate(struct sched *s, struct sched_load *l)
{
	struct sched_queue *q = &l->owner->sq[l->prio];

	s->active[l->prio]--;
	s->n_active--;
	if (list_empty(&q->loads)) {
		list_del(&q->link);
		s->n_ready[l->prio]--;
		q->deficit = 0;
		q->in_turn = false;
		if (list_empty(&l->owner->sq[!l->prio].loads))
			throttle_end(l->owner, now_ns());
	}
	l->active = false;
}

void sched_remove(struct sched *s, struct sched_load *l)
{
	if (list_empty(&l->link))
		return;
	list_del(&l->link);
	list_init(&l->link);
	list_del(&l->owner_link);
	list_init(&l->owner_link);
	if (l->active) {
		sched_deactivate(s, l);
	} else {
		s->n_waiting--;
		if (l->lent)
			s->n_lent--;
	}
	l->active = false;
	l->lent = false;
	sched_fill_slots(s);
	if (!s->n_active) {
		copy_env_trim_pipes(s->copy);
		ev_timer_stop(s->loop, &s->trim_timer);
		ev_timer_set(&s->trim_timer, TRIM_DELAY_S, 0);
		ev_timer_start(s->loop, &s->trim_timer);
	}
	sched_pump(s);
}

/* ---- issuing ----------------------------------------------------------------------- */

void sched_chunk_start(struct sched *s, uint64_t bytes)
{
	s->reads_inflight++;
	s->bytes_inflight += bytes;
}

void sched_chunk_end(struct sched *s, uint64_t bytes)
{
	s->reads_inflight--;
	s->bytes_inflight -= bytes;
}

/* Is there room for one more read of class @cls? Background uses at most a quarter
 * of the reads and bytes, so a foreground read that comes finds few reads ahead of it
 * in the disk's queue (16 of 4 MiB still keep a disk busy by themselves). */
static bool sched_room(const struct sched *s, int cls)
{
	const struct config *cfg = s->cfg;
	uint64_t bytes = cfg->max_inflight ? cfg->max_inflight :
			 (uint64_t)cfg->queue_depth * cfg->chunk_size;
	unsigned depth = cfg->queue_depth;

	if (cls == DL_PRIO_BACKGROUND) {
		depth = depth / 4 ? depth / 4 : 1;
		bytes = bytes / 4 ? bytes / 4 : 1;
	}
	return s->reads_inflight < depth && s->bytes_inflight < bytes &&
	       ring_has_room(s->ring);
}

/* The most bytes the next chunk of @j may have: chunk_size, or when limited a quarter
 * of the smallest burst that applies (so a bucket can always hold it). Whole 4 KiB
 * pages. */
static uint64_t chunk_cap(const struct sched *s, const struct sched_load *l)
{
	uint64_t cap = s->cfg->chunk_size;
	const struct bucket *b[3] = { &s->global, &l->owner->bucket, &l->bucket };

	for (int k = 0; k < 3; k++)
		if (b[k]->rate && b[k]->burst < cap)
			cap = b[k]->burst;
	/* A limited load's chunks are a quarter of the smallest burst: the bucket then
	 * banks the tokens that come while the loop is late to wake it, where chunks of
	 * the whole burst would lose them (measured: 0.56x of an 800 MB/s limit with
	 * 1 MiB chunks and a 1 MiB burst). */
	if (cap < s->cfg->chunk_size || (l->bucket.rate | l->owner->bucket.rate |
					      s->global.rate))
		cap /= 4;
	cap &= ~(uint64_t)4095;
	return cap ? cap : 4096;
}

enum turn {
	TURN_ISSUED,		/* issued a chunk */
	TURN_DEFICIT,		/* has a chunk ready, but its turn's bytes are spent */
	TURN_THROTTLED,		/* has a chunk ready, but a bucket lacks the tokens */
	TURN_NOTHING,		/* nothing to issue now */
};

static void arm(struct ev_loop *loop, ev_timer *t, uint64_t *due, uint64_t now,
		uint64_t wait)
{
	uint64_t at = now + wait, cur;

	if (*due && *due <= at && ev_is_active(t))
		return;		/* an earlier wake-up is set */
	/* libev counts the timeout from the loop's clock, read when the iteration began:
	 * after a busy iteration that is well before @now, and the timer would fire
	 * early, for another round of epoll's whole-millisecond sleeps. */
	ev_now_update(loop);
	cur = now_ns();
	ev_timer_stop(loop, t);
	ev_timer_set(t, at > cur ? (double)(at - cur) / 1e9 : 0, 0);
	ev_timer_start(loop, t);
	*due = at;
}

/* One chunk from queue @q's loads, the next in round-robin order that can go. */
static enum turn queue_issue(struct sched *s, struct sched_queue *q, uint64_t now)
{
	struct sched_owner *o = q->owner;
	enum turn res = TURN_NOTHING;
	uint64_t cwait = 0, gwait = 0;
	unsigned n = 0;
	struct list *pos, *tmp;

	list_for_each_safe(pos, tmp, &q->loads)
		n++;
	for (unsigned k = 0; k < n && !list_empty(&q->loads); k++) {
		struct sched_load *l = list_entry(q->loads.next, struct sched_load, link);
		uint64_t cap, need, g, w, got;

		if (l->registering || !copy_can_issue(l->cp)) {
			list_rotate(&q->loads, &l->link);
			continue;
		}
		cap = chunk_cap(s, l);
		need = copy_next_len(l->cp, cap);
		g = bucket_wait(&s->global, need, now);
		w = bucket_wait(&o->bucket, need, now);
		if (bucket_wait(&l->bucket, need, now) > w)
			w = bucket_wait(&l->bucket, need, now);
		if (g || w) {
			if (g && (!gwait || g < gwait))
				gwait = g;
			if (w && (!cwait || w < cwait))
				cwait = w;
			res = TURN_THROTTLED;
			list_rotate(&q->loads, &l->link);
			continue;
		}
		if (q->deficit < need)
			return TURN_DEFICIT;	/* stays first for the next turn */
		list_rotate(&q->loads, &l->link);
		got = copy_issue(l->cp, cap);	/* may fail @l and take it off @q */
		if (!got)
			continue;
		sched_chunk_start(s, got);
		bucket_take(&s->global, got);
		bucket_take(&o->bucket, got);
		bucket_take(&l->bucket, got);
		q->deficit = got < q->deficit ? q->deficit - got : 0;
		throttle_end(o, now);
		return TURN_ISSUED;
	}
	if (res == TURN_THROTTLED) {
		if (!o->throttled_since)
			o->throttled_since = now;
		/* A closed client's timer is gone (its orphaned load still reads for the
		 * loads that joined it): the daemon's timer wakes the scheduler then. */
		if (cwait && !o->gone)
			arm(s->loop, &o->limit_timer, &o->limit_due, now, cwait);
		else if (cwait)
			arm(s->loop, &s->global_timer, &s->global_due, now, cwait);
		if (gwait)
			arm(s->loop, &s->global_timer, &s->global_due, now, gwait);
	}
	return res;
}

/* Deficit round robin over the ready queues of class @cls. Returns true when it
 * stopped for lack of room (chunks of this class are still waiting to go). */
static bool pump_class(struct sched *s, int cls, uint64_t now)
{
	const struct config *cfg = s->cfg;
	struct list *ready = &s->ready[cls];
	unsigned idle = 0;

	while (!list_empty(ready) && idle < s->n_ready[cls]) {
		struct sched_queue *q = list_entry(ready->next, struct sched_queue, link);
		enum turn t = TURN_NOTHING;
		bool issued = false;

		if (!q->in_turn) {
			q->deficit += cfg->chunk_size;	/* the quantum; weight 1 */
			q->in_turn = true;
		}
		for (;;) {
			if (!sched_room(s, cls))
				return true;	/* @q keeps its turn and its deficit */
			t = queue_issue(s, q, now);
			if (t != TURN_ISSUED || list_empty(&q->loads))
				break;
			issued = true;
		}
		idle = issued ? 0 : idle + 1;
		if (list_empty(&q->loads))
			continue;	/* sched_remove took it off the ready list */
		q->in_turn = false;
		if (t != TURN_DEFICIT)
			q->deficit = 0;	/* no credit for a queue that could not use it */
		list_rotate(ready, &q->link);
	}
	return false;
}

void sched_pump(struct sched *s)
{
	uint64_t now;

	/* copy_issue can fail a load, which removes it and calls back in here. */
	if (s->pumping)
		return;
	sched_fill_slots(s);
	s->pumping = true;
	now = now_ns();
	/* Background only when every foreground chunk that could go went. */
	if (!pump_class(s, DL_PRIO_FOREGROUND, now))
		pump_class(s, DL_PRIO_BACKGROUND, now);
	s->pumping = false;
}
