/*
 * engine.h: the load engine as a whole: the ring, the worker pool, what the copies
 * share, the scheduler, the cache, and the counters STATUS and STATS report. One per
 * daemon, embedded in the server; every job points at it. It knows no connection:
 * what it has to say about a load goes to the load's owner (job.h), and when it may
 * have become idle it tells whoever registered (the server, for its stop).
 */
#pragma once

#include <ev.h>
#include <stdbool.h>
#include <stdint.h>

#include "cache.h"
#include "config.h"
#include "copy.h"
#include "lookup.h"
#include "memory.h"
#include "quota.h"
#include "ring.h"
#include "sched.h"
#include "worker.h"

struct engine {
	struct ev_loop *loop;
	const struct config *cfg;
	struct ring ring;
	struct worker_pool *pool;
	struct copy_env copy;		/* pipes and bounce buffers the copies share */
	struct sched sched;
	struct cache cache;		/* shared loads and kept buffers */
	struct lookup lookup;		/* paths of likely hits, walked on the loop */
	uint64_t max_load_size;		/* resolved: config or RAM size */
	struct memory mem;		/* admission: what buffers may still take */
	struct quota quota;		/* loads and bytes in flight per uid */
	uint64_t ram;			/* RAM size: the whole of the shares given in % */

	uint64_t bytes_loaded, loads_done, loads_failed;
	uint64_t bytes_read;		/* read from files by loads that did read */
	uint64_t bytes_cached;		/* delivered without a read: hits and joins */
	uint64_t loads_by_method[4];	/* loads that read, per enum dl_method used */

	void (*on_idle)(void *data);	/* something it waited for may have ended */
	void *idle_data;
};

/* Sets up ring, workers, scheduler and cache for @cfg (borrowed, may change on
 * reload). @on_idle(@data) is called on the loop when a load was freed or the workers
 * have nothing left. Returns 0 or -errno (logged). */
int engine_init(struct engine *e, struct ev_loop *loop, const struct config *cfg,
		void (*on_idle)(void *data), void *data);
/* Drops the kept buffers, waits for the workers, closes the ring. Safe on a partly
 * initialised engine. */
void engine_deinit(struct engine *e);

/* Whether anything still runs: loads reading or waiting, worker tasks, I/O. */
bool engine_busy(const struct engine *e);
/* Tells the registered on_idle that something it waits for may have ended. */
void engine_idle(struct engine *e);
