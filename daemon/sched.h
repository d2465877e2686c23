/*
 * sched.h: which loads are being read and which chunk goes to the ring next.
 *
 * Two priority classes (enum dl_priority). In each, at most cfg->max_loads loads read
 * at once; more wait in arrival order, and a reading load held back by its limits
 * gives its slot to a waiting load (it is lent; sched.c). A reading load sits on its client's queue for
 * its class; the scheduler issues chunks across the clients of a class by deficit
 * round robin (a quantum of chunk_size bytes per turn), and within a client round
 * robin over its loads. Background chunks go out only while no foreground chunk is
 * waiting to go. Bandwidth limits (limit.h) hold a client back until its buckets have
 * the chunk's bytes; a timer then resumes it. The daemon keeps at most
 * cfg->queue_depth reads and max_inflight bytes in flight.
 *
 * The scheduler knows neither jobs nor clients: a load is a struct sched_load that
 * its job embeds (with a pointer to its copy, whose chunks it issues), a client is a
 * struct sched_owner that the connection embeds. It tells the load's owner what
 * happened through sched_load_ops.
 */
#pragma once

#include <ev.h>
#include <stdbool.h>
#include <stdint.h>

#include "dmaload-proto.h"
#include "limit.h"
#include "list.h"
#include "worker.h"

struct config;
struct copy;
struct copy_env;
struct peer_cred;
struct ring;
struct sched;

#define SCHED_CLASSES 2		/* DL_PRIO_FOREGROUND, DL_PRIO_BACKGROUND */

/* One owner's reading loads of one class. */
struct sched_queue {
	struct list link;	/* in sched->ready[class] while loads is not empty */
	struct list loads;	/* its reading loads, in round-robin order */
	struct sched_owner *owner;
	uint64_t deficit;	/* bytes it may still issue in this round */
	bool in_turn;		/* got its quantum and has not finished its turn */
};

/* A client as the scheduler sees it: its queues and its bandwidth limit. Embedded in
 * the connection; sched.c owns every field. */
struct sched_owner {
	struct sched *sched;
	struct sched_queue sq[SCHED_CLASSES];	/* its reading loads, per class */
	struct list loads;		/* every load of its in the scheduler */
	struct bucket bucket;		/* its limit, from [limits] (limit.h) */
	ev_timer limit_timer;		/* resumes it once its buckets hold a chunk */
	uint64_t limit_due;		/* when limit_timer fires (now_ns clock), 0: idle */
	bool gone;			/* its connection closed: its timer is not used */
	uint64_t throttled_since;	/* when it began waiting for tokens; 0: it is not */
	/* For STATS: nanoseconds it had a chunk ready to issue but waited for tokens (its
	 * own bucket, a load's rate_limit or the daemon's global_rate). The wait in
	 * progress is added when it ends; sched_owner_throttled_ns() adds it now. */
	uint64_t throttled_ns;
};

struct sched_load;

/* What the scheduler tells a load's owner, on the loop. */
struct sched_load_ops {
	/* The load got a reading slot: its chunks may go from now on. */
	void (*activated)(struct sched_load *l);
	/* It gave its slot back (held back by its limits while others wait for one); it
	 * is waiting again until activated. */
	void (*deactivated)(struct sched_load *l);
	/* Registering its buffer ended (its failure is not fatal: plain reads). */
	void (*registered)(struct sched_load *l);
};

/* One load as the scheduler sees it; embedded in the job. The owner sets owner, cp,
 * ops, prio and rate_limit before sched_add(); sched.c owns the rest. */
struct sched_load {
	struct sched_owner *owner;
	struct copy *cp;		/* whose chunks it issues */
	const struct sched_load_ops *ops;
	uint8_t prio;			/* enum dl_priority: its class */
	uint64_t rate_limit;		/* its LOAD's rate_limit, 0: none */

	struct list link;		/* in sched waiting, or its owner's queue */
	struct list owner_link;		/* in owner->loads while in the scheduler */
	bool active;			/* on its owner's queue (else waiting, if listed) */
	bool lent;			/* on sched->lent: gave its slot back (sched.c) */
	bool registering;		/* its buffer is being registered: no reads yet */
	struct bucket bucket;		/* rate_limit when below its owner's; rate 0: none */
	struct worker_task reg_task;	/* registering its buffer */
};

struct sched {
	const struct config *cfg;
	struct ev_loop *loop;
	struct ring *ring;
	struct worker_pool *pool;
	struct copy_env *copy;
	struct list waiting[SCHED_CLASSES];	/* opened, waiting for a reading slot */
	struct list lent[SCHED_CLASSES];	/* held back by their limits, gave their
						 * slot to a waiting load (sched.c) */
	struct list ready[SCHED_CLASSES];	/* owner queues with reading loads */
	unsigned n_ready[SCHED_CLASSES];
	unsigned active[SCHED_CLASSES];		/* reading loads, per class */
	unsigned n_waiting, n_active;		/* all classes, for STATUS (lent loads
						 * count as waiting) */
	unsigned n_lent;			/* of them, lent */
	unsigned reads_inflight;
	uint64_t bytes_inflight;
	bool pumping;
	struct bucket global;			/* [limits] global_rate */
	ev_timer global_timer;			/* resumes when the global bucket refills */
	uint64_t global_due;			/* when it fires (now_ns clock) */
	ev_timer trim_timer;			/* frees the copy's bounce buffers
						 * once idle a while (sched.c) */
	unsigned char *fixed_used;	/* registered-buffer slots taken */
	unsigned n_fixed;
};

int sched_init(struct sched *s, const struct config *cfg, struct ev_loop *loop,
	       struct ring *ring, struct worker_pool *pool, struct copy_env *copy);
void sched_deinit(struct sched *s);

/* A connection's queues and its limit timer (at connect; deinit when it closes, and
 * again when it is freed: safe twice). */
void sched_owner_init(struct sched *s, struct sched_owner *o);
void sched_owner_deinit(struct sched_owner *o);
/* Sets the owner's bucket from the config's [limits] for the client @name with @cred
 * (at connect, on HELLO, after a reload), and its loads' buckets. Logs, prefixed
 * "conn @conn_id", when @why is not NULL and something changed. */
void sched_owner_limits(struct sched_owner *o, const char *name, const struct peer_cred *cred,
			uint64_t conn_id, const char *why);
/* The owner's throttled time so far, the wait in progress included (for STATS). */
uint64_t sched_owner_throttled_ns(const struct sched_owner *o, uint64_t now);
/* The config's global limit changed (SIGHUP). The caller applies the owners' own
 * with sched_owner_limits(), then pumps. */
void sched_global_limits(struct sched *s);

/* The rate @l may read at by its own limits: the lower of its LOAD's rate_limit and
 * its client's rate, 0 when neither limits it (the daemon's global_rate, which holds
 * back every load alike, is left out). */
uint64_t sched_load_rate(const struct sched_load *l);

/* Before its owner fills it in: an empty load, in no list. */
void sched_load_init(struct sched_load *l);
/* A load whose source is open and buffer made: queue it for reading. */
void sched_add(struct sched *s, struct sched_load *l);
/* Takes a load out of the waiting or active set (finished, failed, cancelled); starts
 * the next waiting one. Safe on a load in neither. */
void sched_remove(struct sched *s, struct sched_load *l);
/* Issues reads while there is room. Call after anything that may free room. */
void sched_pump(struct sched *s);

/* A chunk of @bytes went into the ring (or to a worker), or ended. */
void sched_chunk_start(struct sched *s, uint64_t bytes);
void sched_chunk_end(struct sched *s, uint64_t bytes);

/* Registered-buffer slot for a load, or -1. */
int sched_take_slot(struct sched *s);
void sched_put_slot(struct sched *s, int slot);
