/*
 * cache.h: loads that share one read. An entry is one file range in one kind of
 * buffer, keyed by the file's identity as statx saw it when the load opened it
 * (device, inode, size, mtime, ctime), the range and the target kind. While its first
 * load (the leader) reads, later loads of the same key join it and get the same
 * buffer when it is sealed; afterwards the entry keeps a reference to the sealed
 * buffer, under the cache_limit budget, and later loads get a dup at once.
 *
 * Invariants: entries live on one list, most recently used first; an entry is either
 * loading (leader set, fd -1, joiners listed) or ready (fd >= 0, no leader). The
 * cache's byte count is the sum of the ready entries' buffer sizes. Every change
 * happens on the loop; the last close of a buffer (which frees its pages) runs on a
 * worker.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "fdstore.h"
#include "list.h"

struct job;
struct server;

struct cache_key {
	uint64_t dev, ino;
	uint64_t size;			/* of the file */
	uint64_t mtime_ns, ctime_ns;	/* any write changes one of them */
	uint64_t off, len;		/* the range */
	uint8_t target;			/* enum dl_target, never AUTO */
};

struct cache_entry {
	struct list link;		/* in cache->entries, most recently used first */
	struct cache_key key;
	char name[256];			/* the path (or fd description) it was loaded by */
	uid_t uid;			/* the leader's client's uid */

	/* loading */
	struct job *leader;		/* the job reading it; NULL once ready */
	bool exact_req;			/* the leader asked for an exact-size buffer */
	struct list joiners;		/* jobs waiting for it (job->join_link) */

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
	struct server *srv;
	struct list entries;
	uint64_t limit;			/* bytes; 0: ready entries are not kept */
	uint64_t bytes;			/* buffer bytes of the ready entries */
	unsigned n_ready, n_pinned;
	uint64_t hits, joins, misses, evictions;
};

void cache_init(struct cache *c, struct server *srv, uint64_t limit);
/* Drops every ready entry (closes go to the workers). Loading entries go with their
 * leaders. Safe to call twice. */
void cache_clear(struct cache *c);

enum cache_result {
	CACHE_MISS = 0,			/* @j is the leader of a new loading entry */
	CACHE_HIT = 1,			/* *@out is ready: serve a dup of its fd */
	CACHE_JOINED = 2,		/* @j waits on *@out's leader */
};

/*
 * Looks up @j's key (its source is open and its range resolved). Drops stale entries
 * of the same file (other size or times) on the way. A miss registers @j as the leader
 * of a new loading entry (j->centry). Returns enum cache_result; -ENOMEM on a miss that
 * could not be registered (the load then just runs unshared).
 */
int cache_lookup(struct cache *c, struct job *j, struct cache_entry **out);

/* A hit was served from @e (a DONE with a dup of e->fd): counts it, marks it used. */
void cache_hit_served(struct cache *c, struct cache_entry *e, bool pin);

/*
 * The leader @j of @e sealed its buffer (j->tgt.fd) and sent its own DONE (unless its
 * client went away): every joiner gets its DONE, then the entry keeps a dup of the
 * buffer if the budget allows (evicting the least recently used unpinned entries), or
 * goes. Clears j->centry.
 */
void cache_leader_done(struct cache *c, struct job *j);

/* The leader @j of its entry failed with @err / @msg: every joiner fails the same way,
 * and the entry goes. Clears j->centry. */
void cache_leader_failed(struct cache *c, struct job *j, int err, const char *msg);

/* Whether the entry @j leads has joiners who still want it. */
bool cache_has_joiners(const struct job *j);

/* The joined job @j leaves its entry (cancelled, client gone). If its leader's own
 * client has gone too and nobody else waits, the leader is cancelled. */
void cache_unjoin(struct cache *c, struct job *j);

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
