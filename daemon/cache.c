/*
 * cache.c: shared loads and the buffer cache (see cache.h).
 *
 * Trust: a load reaches the cache only after its own source was opened, with its
 * client's credentials for a path or from the client's own fd, so a buffer is handed
 * only to clients that could read its bytes anyway; the buffers are sealed memfds,
 * read-only for every holder. The key holds the file's size, mtime and ctime as statx
 * reported them at that open: a file written since does not match, and its old
 * entries are dropped when the lookup meets them.
 *
 * Budget: ready entries count their buffer's size (hugetlb buffers their rounded
 * size) against cache_limit. A new buffer is kept after evicting the least recently
 * used unpinned entries as needed; one that does not fit even then (the pinned ones
 * fill the budget, or it is bigger than the budget) is not kept. Evicting closes only
 * the daemon's reference: clients keep theirs, and the pages go with the last one.
 * That close may free GiBs, so it runs on a worker.
 *
 * Per uid (issue 12): one user must not fill the cache with its buffers or its pins
 * and leave nothing for the others. A uid's ready entries (its leader's) count
 * against uid_limit: to keep a new one over it, its own least recently used unpinned
 * entries go first. A pin counts against the pinning uid's uid_pin_limit: one over it
 * is not honoured, and the buffer is kept unpinned. Root is not limited (its preloads
 * are pinned by design). The sums are walked when needed: entries are few.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cache.h"
#include "dmaload-proto.h"
#include "fdstore.h"
#include "log.h"
#include "util.h"
#include "worker.h"

void cache_init(struct cache *c, struct worker_pool *pool, uint64_t limit)
{
	memset(c, 0, sizeof(*c));
	c->pool = pool;
	c->limit = limit;
	list_init(&c->entries);
}

static unsigned hint_slot(uint64_t dev, uint64_t ino)
{
	return (unsigned)(((ino * 0x9e3779b97f4a7c15ull) ^ (dev * 0xc2b2ae3d27d4eb4full))
			  >> 52) % CACHE_HINT_SLOTS;
}

bool cache_may_have(const struct cache *c, uint64_t dev, uint64_t ino)
{
	return __atomic_load_n(&c->hint[hint_slot(dev, ino)], __ATOMIC_RELAXED) != 0;
}

/* The slot of @path's last component (FNV-1a), or -1 for a name that is no path. */
static int name_slot(const char *path)
{
	const char *base = strrchr(path, '/');
	uint32_t h = 2166136261u;

	if (path[0] != '/')
		return -1;
	for (const char *p = base + 1; *p; p++)
		h = (h ^ (unsigned char)*p) * 16777619u;
	return (int)(h % CACHE_HINT_SLOTS);
}

bool cache_may_have_name(const struct cache *c, const char *path)
{
	int s = name_slot(path);

	return s >= 0 && c->hint_name[s] != 0;
}

/* A new entry @e of @c is counted for cache_may_have and cache_may_have_name. */
static void entry_hint(struct cache *c, struct cache_entry *e)
{
	e->cache = c;
	__atomic_add_fetch(&c->hint[hint_slot(e->key.dev, e->key.ino)], 1, __ATOMIC_RELAXED);
	/* the name may change (a takeover): the slot counted is the one let go */
	e->name_slot = name_slot(e->name);
	if (e->name_slot >= 0)
		c->hint_name[e->name_slot]++;
}

/* An entry's own copy of its key's runs goes with it. */
static void entry_release(struct cache_entry *e)
{
	if (e->cache) {
		__atomic_sub_fetch(&e->cache->hint[hint_slot(e->key.dev, e->key.ino)], 1,
				   __ATOMIC_RELAXED);
		if (e->name_slot >= 0)
			e->cache->hint_name[e->name_slot]--;
	}
	free((void *)e->key.runs);
	free(e);
}

static void entry_free(struct cache *c, struct cache_entry *e)
{
	list_del(&e->link);
	if (e->fd >= 0) {
		c->bytes -= e->buf_size;
		c->n_ready--;
		if (e->pinned)
			c->n_pinned--;
		worker_close(c->pool, e->fd);
	}
	entry_release(e);
}

/* Hands ready entry @e's buffer to systemd's fd store under a name that says all the
 * entry knows (again, when that changed: pinned since). */
static void entry_store(struct cache_entry *e)
{
	struct fdstore_record r = {
		.dev = e->key.dev, .ino = e->key.ino, .size = e->key.size,
		.mtime_ns = e->key.mtime_ns, .ctime_ns = e->key.ctime_ns,
		.off = e->key.off, .len = e->key.len, .buf_size = e->buf_size,
		.target = e->key.target, .method = e->method, .reason = e->reason,
		.pinned = e->pinned, .hugetlb = e->hugetlb, .uid = e->uid,
	};

	if (e->fd < 0 || e->key.runs)
		return;		/* a record has no room for a list of extents */
	fdstore_remove(e->fdname);
	snprintf(r.path, sizeof(r.path), "%s", e->name);
	fdstore_put(&r, e->fd, e->fdname);
}

/* Drops a ready entry, counting it as an eviction. */
static void entry_evict(struct cache *c, struct cache_entry *e, const char *why)
{
	log_debug("cache: dropping %s (%llu bytes at %llu, %s)", e->name,
		  (unsigned long long)e->key.len, (unsigned long long)e->key.off, why);
	c->evictions++;
	fdstore_remove(e->fdname);
	entry_free(c, e);
}

void cache_clear(struct cache *c)
{
	struct list *pos, *tmp;

	if (!c->entries.next)
		return;
	list_for_each_safe(pos, tmp, &c->entries) {
		struct cache_entry *e = list_entry(pos, struct cache_entry, link);

		if (!e->leader)
			entry_free(c, e);
	}
}

/* Puts @e first: inserting before the first element (or the head, if empty). */
static void entry_to_front(struct cache *c, struct cache_entry *e)
{
	list_add_tail(c->entries.next, &e->link);
}

static bool key_same_file(const struct cache_key *a, const struct cache_key *b)
{
	return a->dev == b->dev && a->ino == b->ino;
}

static bool key_same_version(const struct cache_key *a, const struct cache_key *b)
{
	return a->size == b->size && a->mtime_ns == b->mtime_ns &&
	       a->ctime_ns == b->ctime_ns;
}

static bool key_same_runs(const struct cache_key *a, const struct cache_key *b)
{
	if (a->n_runs != b->n_runs || !a->runs != !b->runs)
		return false;
	for (uint32_t i = 0; i < a->n_runs; i++)
		if (a->runs[i].off != b->runs[i].off || a->runs[i].len != b->runs[i].len ||
		    a->runs[i].buf != b->runs[i].buf)
			return false;
	return true;
}

static bool key_equal(const struct cache_key *a, const struct cache_key *b)
{
	return key_same_file(a, b) && key_same_version(a, b) && a->off == b->off &&
	       a->len == b->len && a->target == b->target && key_same_runs(a, b);
}

/* @l leads the loading entry @e in place of its leader, which is returned: @e's
 * joiners wait for @l now, and the entry says who reads it. */
static struct cache_load *entry_take_over(struct cache_entry *e, struct cache_load *l,
					  const struct cache_who *who)
{
	struct cache_load *slow = e->leader;

	slow->leads = NULL;
	e->leader = l;
	l->leads = e;
	e->exact_req = who->exact;
	snprintf(e->name, sizeof(e->name), "%s", who->name);
	e->uid = who->uid;
	return slow;
}

int cache_lookup(struct cache *c, struct cache_load *l, const struct cache_key *key,
		 const struct cache_who *who, struct cache_entry **out,
		 struct cache_load **slow)
{
	const struct cache_key k = *key;
	bool other_size = false;
	struct list *pos, *tmp;
	struct cache_entry *e;

	list_for_each_safe(pos, tmp, &c->entries) {
		e = list_entry(pos, struct cache_entry, link);

		/* A ready buffer of an older version of this file, or of another file
		 * that was at this path: never served again. A path names another file
		 * in another client's root (a container's), so only the same uid's
		 * entries go by name: nobody drops what others loaded. */
		if (!e->leader && ((key_same_file(&e->key, &k) &&
				    !key_same_version(&e->key, &k)) ||
				   (who->by_path && !key_same_file(&e->key, &k) &&
				    e->uid == who->uid &&
				    strcmp(e->name, who->name) == 0))) {
			entry_evict(c, e, "the file changed");
			continue;
		}
		if (!key_equal(&e->key, &k))
			continue;
		/* dma-buf targets (not yet): share only within one uid, i.e. also
		 * require e->uid == who->uid for those kinds. */
		if (e->leader) {
			/* A joiner that needs an exact-size buffer waits only for a leader
			 * that asked for one; the others may get a hugetlb-rounded one.
			 * (A leader whose huge pages fell back is exact in fact; it is not
			 * known yet while it reads.) */
			if (who->exact && !e->exact_req) {
				other_size = true;
				continue;
			}
			/* A leader slower than this load would be on its own: this one
			 * reads, for everyone waiting (unless some of them need an exact
			 * size that it did not ask for: then it reads for itself). */
			if (who->may_join && !who->may_join(e->leader, who->data)) {
				if (e->exact_req && !who->exact) {
					other_size = true;
					continue;
				}
				c->misses++;
				*slow = entry_take_over(e, l, who);
				list_del(&e->link);
				entry_to_front(c, e);
				*out = e;
				return CACHE_TOOK_OVER;
			}
			list_add_tail(&e->joiners, &l->join_link);
			l->joined = e;
			c->joins++;
			*out = e;
			return CACHE_JOINED;
		}
		if (who->exact && e->buf_size != e->key.len) {
			other_size = true;
			continue;
		}
		list_del(&e->link);
		entry_to_front(c, e);			/* most recently used */
		c->hits++;
		*out = e;
		return CACHE_HIT;
	}

	c->misses++;
	/* An entry of this key exists, only its buffer is rounded up (or its joiners
	 * need an exact one): this load reads on its own rather than make a second
	 * entry of the same key. */
	if (other_size)
		return CACHE_MISS;
	e = calloc(1, sizeof(*e));
	if (!e)
		return -ENOMEM;
	e->key = k;
	if (k.runs) {
		struct copy_seg *runs = malloc(k.n_runs * sizeof(*runs));

		if (!runs) {
			free(e);
			return -ENOMEM;
		}
		memcpy(runs, k.runs, k.n_runs * sizeof(*runs));
		e->key.runs = runs;
	}
	snprintf(e->name, sizeof(e->name), "%s", who->name);
	e->uid = who->uid;
	e->leader = l;
	e->exact_req = who->exact;
	e->fd = -1;
	list_init(&e->joiners);
	entry_to_front(c, e);
	entry_hint(c, e);
	l->leads = e;
	*out = e;
	return CACHE_MISS;
}

struct cache_entry *cache_covering(struct cache *c, const struct cache_key *key,
				   uint64_t off, uint64_t end)
{
	struct list *pos, *tmp;

	list_for_each_safe(pos, tmp, &c->entries) {
		struct cache_entry *e = list_entry(pos, struct cache_entry, link);

		if (e->leader || e->fd < 0 || e->key.runs || e->key.target != DL_TARGET_MEMFD ||
		    !key_same_file(&e->key, key) || !key_same_version(&e->key, key) ||
		    e->key.off > off || end > e->key.off + e->key.len)
			continue;
		list_del(&e->link);
		entry_to_front(c, e);			/* most recently used */
		c->hits++;
		e->served++;
		e->hits++;
		e->t_used = now_ns();
		return e;
	}
	return NULL;
}

/* Bytes of @uid's ready entries, and of the entries it pinned. */
static void cache_uid_bytes(const struct cache *c, uid_t uid, uint64_t *kept,
			    uint64_t *pinned)
{
	struct list *pos;

	*kept = *pinned = 0;
	for (pos = c->entries.next; pos != &c->entries; pos = pos->next) {
		const struct cache_entry *e = list_entry(pos, struct cache_entry, link);

		if (e->fd < 0)
			continue;
		if (e->uid == uid)
			*kept += e->buf_size;
		if (e->pinned && e->pin_uid == uid)
			*pinned += e->buf_size;
	}
}

/* Whether @uid may pin @e too; logs why not. */
static bool cache_may_pin(const struct cache *c, const struct cache_entry *e, uid_t uid)
{
	uint64_t kept, pinned;

	if (uid == 0 || c->uid_pin_limit == UINT64_MAX)
		return true;
	cache_uid_bytes(c, uid, &kept, &pinned);
	if (e->buf_size <= c->uid_pin_limit && pinned <= c->uid_pin_limit - e->buf_size)
		return true;
	log_info("cache: %s kept unpinned: uid %u pins %llu bytes, %llu more is over "
		 "max_pinned_per_uid (%llu bytes)", e->name, uid, (unsigned long long)pinned,
		 (unsigned long long)e->buf_size, (unsigned long long)c->uid_pin_limit);
	return false;
}

void cache_hit_served(struct cache *c, struct cache_entry *e, bool pin, uid_t uid)
{
	e->served++;
	e->hits++;
	e->t_used = now_ns();
	if (pin && !e->pinned && cache_may_pin(c, e, uid)) {
		e->pin_uid = uid;
		e->pinned = true;
		c->n_pinned++;
		entry_store(e);		/* its stored name says pinned now */
	}
}

bool cache_has_joiners(const struct cache_load *l)
{
	return l->leads && !list_empty(&l->leads->joiners);
}

void cache_load_init(struct cache_load *l, bool pin, uid_t uid)
{
	memset(l, 0, sizeof(*l));
	list_init(&l->join_link);
	l->pin = pin;
	l->uid = uid;
}

struct cache_load *cache_next_joiner(struct cache_entry *e)
{
	struct cache_load *w;

	if (list_empty(&e->joiners))
		return NULL;
	w = list_entry(e->joiners.next, struct cache_load, join_link);
	list_del(&w->join_link);
	list_init(&w->join_link);
	w->joined = NULL;
	/* The first pin asked is charged; root's, if root asked, which has no quota. */
	if (w->pin && (!e->pin_req || w->uid == 0))
		e->pin_uid = w->uid;
	e->pin_req |= w->pin;
	e->served++;
	return w;
}

/* Makes room for @need bytes of @uid under uid_limit by evicting its own least
 * recently used unpinned ready entries. Returns whether it fits now. */
static bool cache_make_uid_room(struct cache *c, uid_t uid, uint64_t need)
{
	struct list *pos, *prev;
	uint64_t kept, pinned;

	if (uid == 0 || c->uid_limit == UINT64_MAX)
		return true;
	if (need > c->uid_limit)
		return false;
	cache_uid_bytes(c, uid, &kept, &pinned);
	for (pos = c->entries.prev; pos != &c->entries && kept + need > c->uid_limit;
	     pos = prev) {
		struct cache_entry *e = list_entry(pos, struct cache_entry, link);

		prev = pos->prev;
		if (e->leader || e->pinned || e->uid != uid || e->fd < 0)
			continue;
		kept -= e->buf_size;
		entry_evict(c, e, "over max_cached_per_uid, least recently used");
	}
	return kept + need <= c->uid_limit;
}

/* Makes room for @need bytes by evicting least recently used unpinned ready
 * entries. Returns whether it fits now. */
static bool cache_make_room(struct cache *c, uint64_t need)
{
	struct list *pos, *prev;

	if (need > c->limit)
		return false;
	for (pos = c->entries.prev; pos != &c->entries && c->bytes + need > c->limit;
	     pos = prev) {
		struct cache_entry *e = list_entry(pos, struct cache_entry, link);

		prev = pos->prev;
		if (e->leader || e->pinned)
			continue;
		entry_evict(c, e, "over cache_limit, least recently used");
	}
	return c->bytes + need <= c->limit;
}

struct cache_entry *cache_leader_done(struct cache *c, struct cache_load *l,
				      const struct cache_ready *r)
{
	struct cache_entry *e = l->leads;

	if (!e)
		return NULL;
	l->leads = NULL;
	e->leader = NULL;
	e->buf_size = r->buf_size;
	e->hugetlb = r->hugetlb;
	e->method = r->method;
	e->reason = r->reason;
	e->done_flags = r->done_flags;
	e->t_loaded = e->t_used = now_ns();
	e->served = r->served ? 1 : 0;
	e->pin_req = l->pin;
	e->pin_uid = l->uid;
	return e;
}

/* @e (its fd, size and pin set) joins the ready entries, most recently used. */
static void entry_ready(struct cache *c, struct cache_entry *e)
{
	entry_to_front(c, e);
	c->bytes += e->buf_size;
	c->n_ready++;
	if (e->pinned)
		c->n_pinned++;
}

void cache_keep(struct cache *c, struct cache_entry *e, int fd)
{
	/* Keep it? Pinned or not, it must fit the budget. Off the list meanwhile, so
	 * making room does not pick the entry itself. */
	list_del(&e->link);
	if (e->pin_req && !cache_may_pin(c, e, e->pin_uid))
		e->pin_req = false;
	if (c->limit && !cache_make_uid_room(c, e->uid, e->buf_size)) {
		log_info("cache: not keeping %s (%llu bytes): uid %u is over "
			 "max_cached_per_uid (%llu bytes)", e->name,
			 (unsigned long long)e->buf_size, e->uid,
			 (unsigned long long)c->uid_limit);
		entry_release(e);
		return;
	}
	if (c->limit == 0 || !cache_make_room(c, e->buf_size)) {
		if (c->limit)
			log_debug("cache: not keeping %s (%llu bytes): does not fit "
				  "cache_limit %llu", e->name, (unsigned long long)e->buf_size,
				  (unsigned long long)c->limit);
		entry_release(e);
		return;
	}
	e->fd = fcntl(fd, F_DUPFD_CLOEXEC, 3);
	if (e->fd < 0) {
		log_warn("cache: cannot keep %s: dup: %s", e->name, strerror(errno));
		entry_release(e);
		return;
	}
	e->pinned = e->pin_req;
	entry_ready(c, e);
	entry_store(e);
}

int cache_adopt(struct cache *c, const struct fdstore_record *r, int fd, const char *stored)
{
	struct cache_entry *e;

	if (!c->limit || !cache_make_room(c, r->buf_size)) {
		fdstore_drop(fd, stored, "it does not fit the cache");
		return -ENOSPC;
	}
	e = calloc(1, sizeof(*e));
	if (!e) {
		fdstore_drop(fd, stored, "out of memory");
		return -ENOMEM;
	}
	e->key = (struct cache_key){ .dev = r->dev, .ino = r->ino, .size = r->size,
				     .mtime_ns = r->mtime_ns, .ctime_ns = r->ctime_ns,
				     .off = r->off, .len = r->len, .target = r->target };
	snprintf(e->name, sizeof(e->name), "%s", r->path);
	snprintf(e->fdname, sizeof(e->fdname), "%s", stored);
	e->uid = r->uid;
	e->pin_uid = r->uid;
	e->fd = fd;
	e->buf_size = r->buf_size;
	e->pinned = r->pinned;
	e->hugetlb = r->hugetlb;
	e->method = r->method;
	e->reason = r->reason;
	list_init(&e->joiners);
	e->done_flags = DL_DONE_SEALED | (e->hugetlb ? DL_DONE_HUGETLB : 0);
	e->t_loaded = e->t_used = now_ns();
	entry_ready(c, e);
	entry_hint(c, e);
	log_info("fdstore: kept %s (%llu bytes at %llu) from before the restart", e->name,
		 (unsigned long long)e->key.len, (unsigned long long)e->key.off);
	return 0;
}

struct cache_entry *cache_leader_failed(struct cache *c, struct cache_load *l)
{
	struct cache_entry *e = l->leads;

	if (!e)
		return NULL;
	l->leads = NULL;
	e->leader = NULL;
	list_del(&e->link);
	list_init(&e->link);
	return e;
}

void cache_abandon(struct cache_entry *e)
{
	entry_release(e);
}

struct cache_load *cache_unjoin(struct cache *c, struct cache_load *l)
{
	struct cache_entry *e = l->joined;

	if (!e)
		return NULL;
	list_del(&l->join_link);
	list_init(&l->join_link);
	l->joined = NULL;
	return list_empty(&e->joiners) ? e->leader : NULL;
}

unsigned cache_evict(struct cache *c, const char *path, uid_t uid, uint64_t *bytes)
{
	struct list *pos, *tmp;
	unsigned n = 0;

	*bytes = 0;
	list_for_each_safe(pos, tmp, &c->entries) {
		struct cache_entry *e = list_entry(pos, struct cache_entry, link);

		if (e->leader || (path && strcmp(e->name, path) != 0) ||
		    (uid != 0 && e->uid != uid))
			continue;
		*bytes += e->buf_size;
		n++;
		entry_evict(c, e, "evicted by a client");
	}
	return n;
}
