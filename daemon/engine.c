/*
 * engine.c: setting up and tearing down the load engine (see engine.h).
 *
 * Order matters: the ring first (the scheduler learns its registered-buffer slots
 * from it), then the workers (the copies, the scheduler and the cache run tasks on
 * them), then what uses both. Teardown waits for the workers before the ring goes,
 * since their last tasks may unregister buffers.
 */
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "engine.h"
#include "log.h"
#include "target.h"

static void on_pool_idle(void *data)
{
	engine_idle(data);
}

/* lookup.c's closes: on a worker, batched (an O_PATH fd runs no filesystem code but
 * the last reference's, so the quick lane). */
static void engine_close_fd(void *data, int fd)
{
	worker_close_later(data, fd);
}

int engine_init(struct engine *e, struct ev_loop *loop, const struct config *cfg,
		void (*on_idle)(void *data), void *data)
{
	long pages = sysconf(_SC_PHYS_PAGES), psz = sysconf(_SC_PAGESIZE);
	uint64_t ram = (uint64_t)pages * (uint64_t)psz;
	unsigned entries = 1;
	int r;

	memset(e, 0, sizeof(*e));
	e->ring.efd = -1;		/* engine_deinit() after a failure here */
	e->loop = loop;
	e->cfg = cfg;
	e->on_idle = on_idle;
	e->idle_data = data;
	e->ram = ram;
	e->max_load_size = cfg->max_load_size ? cfg->max_load_size : ram;
	quota_init(&e->quota);

	/* A power of two at least twice queue_depth (a splice chunk has two requests
	 * in the ring): the SQ never runs short. */
	while (entries < 2 * cfg->queue_depth)
		entries <<= 1;
	r = ring_init(&e->ring, loop, entries,
		      cfg->fixed_buffers != CONFIG_OFF ? cfg->max_loads : 0);
	if (r < 0) {
		log_err("io_uring setup failed: %s", strerror(-r));
		return r;
	}
	r = worker_pool_new(&e->pool, loop, cfg->workers,
			    cfg->max_workers > cfg->workers ? cfg->max_workers : cfg->workers,
			    cfg->workers_per_uid);
	if (r < 0) {
		log_err("cannot start worker threads: %s", strerror(-r));
		return r;
	}
	/* A stopping daemon may wait for the last close or free on the workers. */
	worker_pool_on_idle(e->pool, on_pool_idle, e);
	copy_env_init(&e->copy, cfg, &e->ring, e->pool);
	target_set_thp(cfg->thp != CONFIG_OFF);
	target_log_host(cfg->hugetlb);
	memory_init(&e->mem, cfg->memory_reserve);
	cache_init(&e->cache, e->pool, cfg->cache_limit_pct ?
		   ram / 100 * cfg->cache_limit_pct : cfg->cache_limit);
	/* Per uid, root excepted: its share of the cache, and of that pinned. */
	e->cache.uid_limit = config_share_bytes(&cfg->max_cached_per_uid, e->cache.limit);
	e->cache.uid_pin_limit = config_share_bytes(&cfg->max_pinned_per_uid,
						    e->cache.limit);
	lookup_init(&e->lookup);
	e->lookup.close_fd = engine_close_fd;
	e->lookup.close_data = e->pool;
	return sched_init(&e->sched, cfg, loop, &e->ring, e->pool, &e->copy);
}

void engine_deinit(struct engine *e)
{
	cache_clear(&e->cache);
	if (e->lookup.walks)
		log_info("paths of likely cache hits walked on the loop: %llu, of which "
			 "%llu went to a worker after all",
			 (unsigned long long)e->lookup.walks,
			 (unsigned long long)e->lookup.gave_up);
	lookup_deinit(&e->lookup);
	e->pool = worker_pool_free(e->pool);
	sched_deinit(&e->sched);
	copy_env_trim(&e->copy);
	ring_deinit(&e->ring);
	quota_deinit(&e->quota);
}

bool engine_busy(const struct engine *e)
{
	return e->sched.n_active || e->sched.n_waiting ||
	       (e->pool && worker_pending(e->pool)) || e->ring.inflight;
}

void engine_idle(struct engine *e)
{
	if (e->on_idle)
		e->on_idle(e->idle_data);
}
