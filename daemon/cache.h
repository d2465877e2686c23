/*
 * cache.h: loads that share one read. An entry is one file range in one kind of
 * buffer, keyed by the file's identity as statx saw it when the load opened it
 * (device, inode, size, mtime, ctime), the range and the target kind. While its first
 * load (the leader) reads, later loads of the same key join it and get the same
 * buffer when it is sealed; afterwards the entry keeps a reference to the sealed
 * buffer, under the cache_limit budget, and later loads get a dup at once.
 *
 * A joiner never waits for a leader slower than itself: a leader held to a lower rate
 * (its LOAD's rate_limit or its client's limit) than the joiner would get is replaced
 * by the newcomer, which reads at its own pace for every load waiting on the entry; the
 * slow load reads on for its own client only (cache_lookup).
 *
 * Invariants: entries live on one list, most recently used first; an entry is either
 * loading (leader set, fd -1, joiners listed) or ready (fd >= 0, no leader). The
 * cache's byte count is the sum of the ready entries' buffer sizes. Every change
 * happens on the loop; the last close of a buffer (which frees its pages) runs on a
 * worker.
 *
 * The cache knows no job: a load is a struct cache_load its job embeds. When a
 * leader ends, the cache hands the entry back and the job layer walks its joiners
 * (cache_next_joiner) and answers each, so no call runs up into the jobs.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "copy.h"
#include "fdstore.h"
#include "list.h"

struct cache_load;
struct worker_pool;

#define CACHE_HINT_SLOTS 4096

struct cache_key {
	uint64_t dev, ino;
	uint64_t size;			/* of the file */
	uint64_t mtime_ns, ctime_ns;	/* any write changes one of them */
	uint64_t off, len;		/* the range; a list of extents: its first run's
					 * offset, and the buffer's size */
	uint8_t target;			/* enum dl_target, never AUTO */
	/* A list of extents (into a new buffer): its runs, compared by file offset,
	 * length and buffer offset, so the key includes the whole list; else NULL. An
	 * entry owns a copy. Such entries are not put in systemd's fd store. */
	const struct copy_seg *runs;
	uint32_t n_runs;
};

struct cache_entry {
	struct list link;		/* in cache->entries, most recently used first */
	struct cache_key key;
	struct cache *cache;		/* whose hint counts it */
	char name[256];			/* the path (or fd description) it was loaded by */
	int name_slot;			/* its cache_may_have_name count, -1: none */
	uid_t uid;			/* the leader's client's uid */

	/* loading */
	struct cache_load *leader;	/* the load reading it; NULL once ready */
	bool exact_req;			/* the leader asked for an exact-size buffer */
	struct list joiners;		/* loads waiting for it (cache_load.join_link) */
	bool pin_req;			/* the leader or a joiner asked for a pin */
	uid_t pin_uid;			/* whose pin it is (pin_req, pinned): charged to
					 * its max_pinned_per_uid */

	/* ready */
	int fd;				/* our reference to the sealed buffer, or -1 */
	uint64_t buf_size;
	bool hugetlb, pinned;
	uint8_t method, reason;		/* how it was loaded, for DONE and LIST */
	uint32_t done_flags;		/* DL_DONE_* of the leader's DONE */
	uint64_t served, hits;		/* DONEs handed out; of which cache hits */
	uint64_t t_loaded, t_used;	/* now_ns() */
	char fdname[FDSTORE_NAME_MAX + 1];	/* its name in systemd's fd store, "" if
						 * not there */
};

struct cache {
	struct worker_pool *pool;	/* closes dropped buffers */
	struct list entries;
	uint64_t limit;			/* bytes; 0: ready entries are not kept */
	uint64_t uid_limit;		/* bytes of one uid's ready entries (uid 0: no
					 * limit); UINT64_MAX: none */
	uint64_t uid_pin_limit;		/* bytes one uid may pin; UINT64_MAX: none */
	uint64_t bytes;			/* buffer bytes of the ready entries */
	unsigned n_ready, n_pinned;
	uint64_t hits, joins, misses, evictions;
	/* Entries (loading or ready) per hash of their file's dev and inode, written on
	 * the loop, read by the workers (atomics): cache_may_have. */
	uint32_t hint[CACHE_HINT_SLOTS];
	/* The same per hash of the last component of their path (entries loaded by
	 * path), on the loop only: cache_may_have_name. */
	uint32_t hint_name[CACHE_HINT_SLOTS];
};

void cache_init(struct cache *c, struct worker_pool *pool, uint64_t limit);
/* Drops every ready entry (closes go to the workers). Loading entries go with their
 * leaders. Safe to call twice. */
void cache_clear(struct cache *c);

/* A load as the cache sees it; embedded in its job. */
struct cache_load {
	struct cache_entry *leads;	/* the loading entry it reads for, or NULL */
	struct cache_entry *joined;	/* the loading entry it waits on, or NULL */
	struct list join_link;		/* in joined->joiners */
	bool pin;			/* its LOAD asked for a pin */
	uid_t uid;			/* whose load it is */
};

void cache_load_init(struct cache_load *l, bool pin, uid_t uid);

/*
 * Whether the cache may have an entry (loading or ready) of file @dev/@ino: false
 * means it has none now. Thread-safe, for a worker that has just opened the file and
 * chooses between reading it at once and asking the loop's cache_lookup first; either
 * answer may be out of date by the time the loop looks, so it is only a hint.
 */
bool cache_may_have(const struct cache *c, uint64_t dev, uint64_t ino);
/*
 * Whether the cache may have an entry loaded by a path whose last component is that
 * of @path: false means none now. On the loop, before it walks a path to learn the
 * file's dev and inode (lookup.c): the last component, not the whole path, so that
 * the same file reached another way (a bind mount, a container's view, a linked
 * directory) still counts.
 */
bool cache_may_have_name(const struct cache *c, const char *path);

/* Who asks, for a lookup. */
struct cache_who {
	const char *name;		/* the path, or the fd's description */
	bool by_path;			/* @name is a path (entries of another file at it
					 * are stale) */
	uid_t uid;
	bool exact;			/* it needs an exact-size buffer (no hugetlb
					 * rounding) */
	/* Whether it may wait for @leader's read: false when the leader is slower than
	 * it would be on its own (its rate limit). The job layer's, with @data. */
	bool (*may_join)(const struct cache_load *leader, void *data);
	void *data;
};

enum cache_result {
	CACHE_MISS = 0,			/* @l leads a new loading entry (l->leads) */
	CACHE_HIT = 1,			/* *@out is ready: serve a dup of its fd */
	CACHE_JOINED = 2,		/* @l waits on *@out's leader */
	CACHE_TOOK_OVER = 3,		/* @l leads *@out in place of a slower leader
					 * (*@slow), whose joiners now wait for @l */
};

/*
 * Looks up @key (the load's source is open and its range resolved). Drops stale
 * entries of the same file (other size or times), and of another file at the same
 * path loaded by the same uid, on the way. A miss registers @l as the leader of a new
 * loading entry. A loading entry whose leader may not be joined (who->may_join) is
 * taken over: @l leads it from now on, with its joiners, and the old leader (*@slow)
 * leads nothing and reads on for itself; where @l cannot lead it (the entry's joiners
 * need an exact size, @l does not ask for one) @l reads on its own, a CACHE_MISS
 * leading nothing. Returns enum cache_result; -ENOMEM on a miss that could not be
 * registered (the load then just runs unshared).
 */
int cache_lookup(struct cache *c, struct cache_load *l, const struct cache_key *key,
		 const struct cache_who *who, struct cache_entry **out,
		 struct cache_load **slow);

/*
 * A ready entry of a plain load (not a list of extents) of the same file version as
 * @key (dev, ino, size, times) whose range covers file bytes [@off, @end), memfd
 * target, or NULL. For a load into the caller's buffer that a copy from memory can
 * serve; it counts as a hit and marks the entry used.
 */
struct cache_entry *cache_covering(struct cache *c, const struct cache_key *key,
				   uint64_t off, uint64_t end);

/* A hit was served from @e (a DONE with a dup of e->fd): counts it, marks it used,
 * and pins it for @uid if @pin and @uid's pins stay within uid_pin_limit (logged if
 * not). */
void cache_hit_served(struct cache *c, struct cache_entry *e, bool pin, uid_t uid);

/* What a leader's sealed buffer is, for its entry and the joiners' DONEs. */
struct cache_ready {
	uint64_t buf_size;
	bool hugetlb;
	uint8_t method, reason;
	uint32_t done_flags;		/* DL_DONE_* of the leader's DONE */
	bool served;			/* the leader's own client got it */
};

/*
 * The leader @l sealed its buffer: its entry (returned; NULL if it leads none) is
 * described by @r, and @l leads it no more. The caller answers each joiner, taken with
 * cache_next_joiner() until NULL, then gives the entry to cache_keep().
 */
struct cache_entry *cache_leader_done(struct cache *c, struct cache_load *l,
				      const struct cache_ready *r);
/* The next load waiting on @e, taken off its list (NULL when none is left); counted
 * as served, its pin asked for the entry. */
struct cache_load *cache_next_joiner(struct cache_entry *e);
/* After the joiners: @e keeps a dup of @fd (borrowed) if the budget allows
 * (evicting the least recently used unpinned entries), or goes. Per uid (root
 * excepted): its uid's own least recently used unpinned entries make room under
 * uid_limit first, and a pin over pin_uid's uid_pin_limit is not honoured (the entry
 * is kept unpinned; logged). */
void cache_keep(struct cache *c, struct cache_entry *e, int fd);

/* The leader @l failed: its entry leaves the cache and is returned (NULL if it leads
 * none). The caller fails each joiner (cache_next_joiner), then cache_abandon()s it. */
struct cache_entry *cache_leader_failed(struct cache *c, struct cache_load *l);
void cache_abandon(struct cache_entry *e);

/* Whether the entry @l leads has joiners who still want it. */
bool cache_has_joiners(const struct cache_load *l);

/* The joiner @l leaves its entry (cancelled, client gone). Returns the entry's leader
 * when nobody waits for it any more (the caller may cancel it), else NULL. */
struct cache_load *cache_unjoin(struct cache *c, struct cache_load *l);

/*
 * A buffer from before a restart: @fd (consumed), stored in systemd's fd store as
 * @stored and validated there into @r (fdstore_take). Becomes a ready entry if it fits
 * the budget; otherwise it is dropped from the store. Returns 0, or -ENOSPC / -ENOMEM.
 */
int cache_adopt(struct cache *c, const struct fdstore_record *r, int fd, const char *stored);

/*
 * Drops ready entries: those loaded under @path (NULL: all), visible to @uid (0: all).
 * Pinned ones too. Returns the number dropped; *@bytes gets their buffer bytes.
 */
unsigned cache_evict(struct cache *c, const char *path, uid_t uid, uint64_t *bytes);
