/*
 * handlers.c: the requests a connection may send, each a handler in one table.
 *
 * client.c receives and decodes; a well-formed request comes here through the
 * dispatch callback the server registered, and its handler answers it with the
 * client's senders. Loads go to the engine (client_start_load); STATUS, LIST, STATS,
 * EVICT and INFO read the engine, the cache and the set of connections.
 *
 * Trust: STATUS and STATS show a user only its own connections and loads (root sees
 * all), LIST shows only its own cache entries (counting the others), EVICT drops
 * only its own (root: any). The names a user gave (HELLO) are logged printable only.
 *
 * Detached loads (DL_LOAD_DETACH) outlive their connection and hold the daemon's fds
 * and buffers with nobody to close them, so only root and members of detach_group
 * may start them, at most max_detached of them run at once daemon-wide, STATUS lists
 * them (also on closed connections, set->lingering) and EVICT cancels them like it
 * drops cache entries: root's any, a user's its own.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cache.h"
#include "client.h"
#include "dmaload-proto.h"
#include "engine.h"
#include "handlers.h"
#include "job.h"
#include "log.h"
#include "target.h"
#include "util.h"

/* INFO: what buffers this host offers. target_host_info only reads devtmpfs, sysfs
 * and procfs, which do not block on I/O. A client that announced DL_CAP_INFO_SURPLUS
 * gets the surplus allowance after the heap names. */
static void handle_info(struct client *c, const struct dl_msg *m, int *fds, int nfds)
{
	struct target_host h;
	struct dl_info_reply r;
	struct dl_info_surplus sp;
	char names[4096 + sizeof(sp)];
	size_t trail;

	target_host_info(&h, names, sizeof(names) - sizeof(sp));
	r = (struct dl_info_reply){
		.caps = (h.udmabuf_err ? 0 : DL_CAP_UDMABUF) | (h.heaps ? DL_CAP_HEAP : 0),
		.udmabuf_err = h.udmabuf_err,
		.udmabuf_size_limit = h.udmabuf_size_limit,
		.huge_page_size = h.huge_page_size,
		.huge_pages_total = h.huge_pages_total,
		.huge_pages_free = h.huge_pages_free,
		.n_heaps = h.n_heaps,
		.heaps_len = (uint32_t)h.heaps_len,
		.default_target = c->set->cfg->target,
		.udmabuf_hugetlb = h.udmabuf_hugetlb,
	};
	trail = r.heaps_len;
	if (c->peer_caps & DL_CAP_INFO_SURPLUS) {
		sp = (struct dl_info_surplus){ .overcommit_pages = h.overcommit_pages,
					       .surplus_pages = h.surplus_pages };
		memcpy(names + trail, &sp, sizeof(sp));
		trail += sizeof(sp);
	}
	client_send_trail(c, DL_INFO_REPLY, m->hdr.id, &r, sizeof(r), names, trail);
}

static void handle_hello(struct client *c, const struct dl_msg *m, int *fds, int nfds)
{
	const struct config *cfg = c->set->cfg;
	struct dl_hello_reply r = {
		.version = DL_PROTO_VERSION,
		.caps = DL_CAPS_V1 | DL_CAP_DMABUF | DL_CAP_DETACH | DL_CAP_ROOT_FD |
			DL_CAP_LOAD_INTO | DL_CAP_EXTENTS | DL_CAP_INFO_SURPLUS,
		.max_load_size = c->set->eng->max_load_size,
		.chunk_size = (uint32_t)cfg->chunk_size,
		.queue_depth = cfg->queue_depth,
	};
	struct target_host h;
	char names[8];
	size_t i;

	/* Which dma-buf targets this host has, now: a module loaded later shows. */
	target_host_info(&h, names, 0);
	r.caps |= (h.udmabuf_err ? 0 : DL_CAP_UDMABUF) | (h.heaps ? DL_CAP_HEAP : 0);
	/* Keep printable characters only: the name goes into logs. */
	for (i = 0; i < DL_NAME_LEN && m->u.hello.name[i]; i++) {
		char ch = m->u.hello.name[i];

		c->name[i] = (ch > 0x20 && ch < 0x7f) ? ch : '_';
	}
	c->name[i] = '\0';
	c->peer_caps = m->u.hello.caps;
	log_debug("conn %llu: hello from \"%s\" (version %u, caps 0x%x)",
		  (unsigned long long)c->conn_id, c->name, m->u.hello.version,
		  m->u.hello.caps);
	/* [limits] may have a rule for this name. */
	sched_owner_limits(&c->so, c->name, &c->cred, c->conn_id, "hello");
	client_send_plain(c, DL_HELLO_REPLY, m->hdr.id, &r, sizeof(r));
}

/* Whether @c may detach loads: root, or a member of [daemon] detach_group (its
 * primary or a supplementary group, as the socket told at accept). */
static bool may_detach(const struct client *c)
{
	gid_t g = c->set->cfg->detach_gid;

	if (c->cred.uid == 0)
		return true;
	if (g == (gid_t)-1)
		return false;
	if (c->cred.gid == g)
		return true;
	for (int i = 0; i < c->cred.n_groups; i++)
		if (c->cred.groups[i] == g)
			return true;
	return false;
}

/* The detach rules of LOAD @m; sends the ERROR and returns false when it breaks one. */
static bool load_detach_ok(struct client *c, const struct dl_msg *m)
{
	const struct config *cfg = c->set->cfg;
	char msg[192];

	if (!(m->u.load.flags & DL_LOAD_DETACH))
		return true;
	if (!may_detach(c)) {
		if (cfg->detach_group[0])
			snprintf(msg, sizeof(msg), "detached loads (DL_LOAD_DETACH) are for "
				 "root and the group \"%s\" (detach_group) only",
				 cfg->detach_group);
		else
			snprintf(msg, sizeof(msg), "detached loads (DL_LOAD_DETACH) are for "
				 "root only (no detach_group is set)");
		log_info("conn %llu: load %llu: detach refused (uid %u)",
			 (unsigned long long)c->conn_id, (unsigned long long)m->hdr.id,
			 c->cred.uid);
		client_send_error(c, m->hdr.id, EPERM, msg);
		return false;
	}
	if (!(m->u.load.flags & DL_LOAD_PIN)) {
		client_send_error(c, m->hdr.id, EINVAL, "DL_LOAD_DETACH needs DL_LOAD_PIN: "
				  "a detached load's buffer is kept only in the cache");
		return false;
	}
	if (!c->set->eng->cache.limit) {
		client_send_error(c, m->hdr.id, EOPNOTSUPP, "the cache is off "
				  "(cache_limit = 0): nowhere to preload into");
		return false;
	}
	if (c->set->n_detached >= cfg->max_detached) {
		snprintf(msg, sizeof(msg), "too many detached loads in flight "
			 "(max_detached = %u)", cfg->max_detached);
		client_send_error(c, m->hdr.id, EBUSY, msg);
		return false;
	}
	return true;
}

/* LOAD and LOAD_EXTENTS. Takes @fds (the source or root, the caller's buffer, the
 * extent list: see dl_load_ext). */
static void handle_load(struct client *c, const struct dl_msg *m, int *fds, int nfds)
{
	int r;

	if (c->set->stopping) {
		client_send_error(c, m->hdr.id, ESHUTDOWN, "the daemon is shutting down");
		goto drop;
	}
	if (client_find_job(c, m->hdr.id)) {
		client_send_error(c, m->hdr.id, EEXIST,
				  "a load with this request id is still running");
		goto drop;
	}
	if (c->n_jobs >= c->set->cfg->max_queued) {
		char msg[128];

		snprintf(msg, sizeof(msg), "too many loads on this connection "
			 "(max_queued = %u)", c->set->cfg->max_queued);
		client_send_error(c, m->hdr.id, EBUSY, msg);
		goto drop;
	}
	/* Per uid (root excepted): one user's loads must leave room for the others. */
	if (c->cred.uid != 0 && c->set->cfg->max_loads_per_uid &&
	    quota_loads(&c->set->eng->quota, c->cred.uid) >= c->set->cfg->max_loads_per_uid) {
		char msg[160];

		snprintf(msg, sizeof(msg), "uid %u has %u loads in flight, its quota "
			 "(max_loads_per_uid = %u)", c->cred.uid,
			 quota_loads(&c->set->eng->quota, c->cred.uid),
			 c->set->cfg->max_loads_per_uid);
		log_info("conn %llu: load %llu refused: %s", (unsigned long long)c->conn_id,
			 (unsigned long long)m->hdr.id, msg);
		client_send_error(c, m->hdr.id, EDQUOT, msg);
		goto drop;
	}
	if (m->u.load.length != DL_LENGTH_TO_EOF &&
	    m->u.load.length > c->set->eng->max_load_size) {
		char msg[160];

		snprintf(msg, sizeof(msg), "%llu bytes is more than max_load_size "
			 "(%llu bytes)", (unsigned long long)m->u.load.length,
			 (unsigned long long)c->set->eng->max_load_size);
		client_send_error(c, m->hdr.id, EFBIG, msg);
		goto drop;
	}
	if (!load_detach_ok(c, m))
		goto drop;
	r = client_start_load(c, m, fds, nfds);
	if (r < 0)
		client_send_error(c, m->hdr.id, -r, "cannot start the load");
	return;
drop:
	client_drop_fds(c, fds, nfds);
}

static void handle_cancel(struct client *c, const struct dl_msg *m, int *fds, int nfds)
{
	struct job *j = client_find_job(c, m->u.cancel.load_id);

	if (!j) {
		client_send_error(c, m->hdr.id, ENOENT,
				  "no load with that id is running on this connection");
		return;
	}
	job_fail(j, -ECANCELED, "cancelled by the client");
	client_send_plain(c, DL_OK, m->hdr.id, NULL, 0);
}

/* Appends @ent (@ent_size bytes) and @name padded with zeros to a multiple of 8, the
 * layout of STATUS_REPLY and LIST_REPLY entries; returns false when the datagram is
 * full. */
static bool append_named(char *buf, size_t cap, size_t *len, const void *ent,
			 size_t ent_size, const char *name, size_t name_len)
{
	size_t padded = (name_len + 7) & ~(size_t)7;

	if (*len + ent_size + padded > cap)
		return false;
	memcpy(buf + *len, ent, ent_size);
	memcpy(buf + *len + ent_size, name, name_len);
	memset(buf + *len + ent_size + name_len, 0, padded - name_len);
	*len += ent_size + padded;
	return true;
}

/* Appends one status entry; returns false when the datagram is full. */
static bool status_add(char *buf, size_t cap, size_t *len, const struct job *j)
{
	size_t name_len = strnlen(j->name, sizeof(j->name));
	struct dl_status_load e = {
		.id = j->id,
		.done = j->cp.done,
		.total = j->cp.len,
		.pid = (uint32_t)j->owner->cred->pid,
		.uid = j->owner->cred->uid,
		.state = (uint8_t)j->state,
		.method = j->cp.method,
		.name_len = (uint32_t)name_len,
	};

	return append_named(buf, cap, len, &e, sizeof(e), j->name, name_len);
}

/* STATUS's entries being written. */
struct status_walk {
	struct dl_status_reply *st;
	char *buf;
	size_t cap, len;
};

static bool status_one(struct job *j, void *data)
{
	struct status_walk *w = data;

	if (!status_add(w->buf, w->cap, &w->len, j))
		return false;
	w->st->n_loads++;
	return true;
}

static void handle_status(struct client *c, const struct dl_msg *m, int *fds, int nfds)
{
	struct client_set *set = c->set;
	size_t cap = DL_MSG_MAX - sizeof(struct dl_hdr) - sizeof(struct dl_status_reply);
	struct dl_status_reply st = {
		.uptime_ms = (now_ns() - set->started_ns) / 1000000,
		.bytes_loaded = set->eng->bytes_loaded,
		.loads_done = set->eng->loads_done,
		.loads_failed = set->eng->loads_failed,
		.clients = set->n_clients,
		.loads_active = set->eng->sched.n_active,
		.loads_queued = set->eng->sched.n_waiting,
	};
	struct status_walk w = { .st = &st, .cap = cap, .buf = malloc(cap) };

	if (!w.buf) {
		client_send_error(c, m->hdr.id, ENOMEM, "out of memory");
		return;
	}
	/* Detached loads and the daemon's own [preload] (root's) too; other users'
	 * loads are counted above but not shown, except to root. */
	if (!client_set_each_job(set, c->cred.uid, status_one, &w))
		st.flags |= DL_STATUS_TRUNCATED;
	client_send_trail(c, DL_STATUS_REPLY, m->hdr.id, &st, sizeof(st), w.buf, w.len);
	free(w.buf);
}

/* Appends one LIST entry; returns false when the datagram is full. */
static bool list_add_entry(char *buf, size_t cap, size_t *len, const struct cache_entry *e,
			   uint64_t now)
{
	size_t name_len = strnlen(e->name, sizeof(e->name));
	struct dl_list_entry le = {
		.offset = e->key.off,
		.size = e->key.len,
		.buf_size = e->leader ? 0 : e->buf_size,
		.file_size = e->key.size,
		.dev = e->key.dev,
		.ino = e->key.ino,
		.served = e->served,
		.hits = e->hits,
		.age_ms = e->leader ? 0 : (now - e->t_loaded) / 1000000,
		.idle_ms = e->leader ? 0 : (now - e->t_used) / 1000000,
		.uid = e->uid,
		.flags = (e->pinned ? DL_ENTRY_PINNED : 0) | (e->hugetlb ? DL_ENTRY_HUGETLB : 0) |
			 (e->leader ? DL_ENTRY_LOADING : 0),
		.method = e->method,
		.name_len = (uint32_t)name_len,
	};

	return append_named(buf, cap, len, &le, sizeof(le), e->name, name_len);
}

static void handle_list(struct client *c, const struct dl_msg *m, int *fds, int nfds)
{
	struct cache *cache = &c->set->eng->cache;
	size_t cap = DL_MSG_MAX - sizeof(struct dl_hdr) - sizeof(struct dl_list_reply);
	struct dl_list_reply lr = { .cache_bytes = cache->bytes, .cache_limit = cache->limit };
	uint64_t now = now_ns();
	struct list *pos, *tmp;
	char *entries = malloc(cap);
	size_t len = 0;

	if (!entries) {
		client_send_error(c, m->hdr.id, ENOMEM, "out of memory");
		return;
	}
	list_for_each_safe(pos, tmp, &cache->entries) {
		struct cache_entry *e = list_entry(pos, struct cache_entry, link);

		/* Like STATUS: other users' entries are counted, shown only to root. */
		if (c->cred.uid != 0 && e->uid != c->cred.uid) {
			lr.n_hidden++;
			continue;
		}
		if (!(lr.flags & DL_LIST_TRUNCATED) && list_add_entry(entries, cap, &len, e, now))
			lr.n_entries++;
		else
			lr.flags |= DL_LIST_TRUNCATED;
	}
	client_send_trail(c, DL_LIST_REPLY, m->hdr.id, &lr, sizeof(lr), entries, len);
	free(entries);
}

/* EVICT's other half: detached loads still running of path @match (NULL: all). */
struct evict_walk {
	const struct client *c;		/* who asks */
	const char *match;
	uint64_t bytes;			/* bytes the cancelled loads had read */
	unsigned n;
};

static bool evict_one(struct job *j, void *data)
{
	struct evict_walk *w = data;

	if (!(j->req.flags & DL_LOAD_DETACH) ||
	    (w->match && (!j->path || strcmp(j->path, w->match) != 0)))
		return true;
	w->bytes += j->cp.done;
	w->n++;
	job_fail(j, -ECANCELED, "detached load cancelled by EVICT (conn %llu)",
		 (unsigned long long)w->c->conn_id);
	return true;
}

static void handle_evict(struct client *c, const struct dl_msg *m, int *fds, int nfds)
{
	char path[DL_PATH_MAX + 1];
	struct dl_evict_reply er = { 0 };
	struct evict_walk w = { .c = c };

	if (!(m->u.evict.flags & DL_EVICT_ALL)) {
		memcpy(path, m->trail, m->trail_len);
		path[m->trail_len] = '\0';
		w.match = path;
	}
	/* Not root: only the entries and detached loads its own uid started. */
	client_set_each_job(c->set, c->cred.uid, evict_one, &w);
	er.count = cache_evict(&c->set->eng->cache, w.match, c->cred.uid, &er.bytes);
	log_info("conn %llu: evict %s: %u entries, %llu bytes; %u detached loads cancelled",
		 (unsigned long long)c->conn_id, w.match ? w.match : "(all)", er.count,
		 (unsigned long long)er.bytes, w.n);
	er.count += w.n;
	er.bytes += w.bytes;
	if (!er.count) {
		client_send_error(c, m->hdr.id, ENOENT, w.match ?
				  "no cached buffer or detached load of that path (that "
				  "you loaded)" :
				  "no cached buffers or detached loads (that you loaded)");
		return;
	}
	client_send_plain(c, DL_EVICT_REPLY, m->hdr.id, &er, sizeof(er));
}

static void handle_stats(struct client *c, const struct dl_msg *m, int *fds, int nfds)
{
	struct client_set *set = c->set;
	struct cache *cache = &set->eng->cache;
	size_t cap = (DL_MSG_MAX - sizeof(struct dl_hdr) - sizeof(struct dl_stats_reply)) /
		     sizeof(struct dl_stats_client);
	struct dl_stats_reply st = {
		.bytes_read = set->eng->bytes_read,
		.bytes_cached = set->eng->bytes_cached,
		.cache_hits = cache->hits,
		.cache_joins = cache->joins,
		.cache_misses = cache->misses,
		.cache_evictions = cache->evictions,
		.cache_bytes = cache->bytes,
		.cache_limit = cache->limit,
		.cache_entries = cache->n_ready,
		.cache_pinned = cache->n_pinned,
	};
	struct dl_stats_client *ents = calloc(cap, sizeof(*ents));
	struct list *pos, *tmp;

	if (!ents) {
		client_send_error(c, m->hdr.id, ENOMEM, "out of memory");
		return;
	}
	memcpy(st.loads_by_method, set->eng->loads_by_method, sizeof(st.loads_by_method));
	list_for_each_safe(pos, tmp, &set->clients) {
		struct client *o = list_entry(pos, struct client, link);
		struct dl_stats_client *e;

		if ((c->cred.uid != 0 && o->cred.uid != c->cred.uid) || st.n_clients >= cap)
			continue;
		e = &ents[st.n_clients++];
		e->conn_id = o->conn_id;
		e->loads = o->loads_done;
		e->bytes = o->bytes_done;
		e->throttled_ns = sched_owner_throttled_ns(&o->so, now_ns());
		e->pid = (uint32_t)o->cred.pid;
		e->uid = o->cred.uid;
		memcpy(e->name, o->name, DL_NAME_LEN);
	}
	client_send_trail(c, DL_STATS_REPLY, m->hdr.id, &st, sizeof(st), ents,
			st.n_clients * sizeof(*ents));
	free(ents);
}

/* Handles one datagram. Returns false if the client was closed. */

/* Every request type and its handler; a handler that takes the fds (only the LOADs have a
 * use for one) owns it, the others' is closed after them. */
static const struct {
	uint16_t type;
	void (*fn)(struct client *c, const struct dl_msg *m, int *fds, int nfds);
	bool takes_fd;
} handlers[] = {
	{ DL_HELLO, handle_hello, false },
	{ DL_LOAD, handle_load, true },
	{ DL_LOAD_EXTENTS, handle_load, true },
	{ DL_CANCEL, handle_cancel, false },
	{ DL_STATUS, handle_status, false },
	{ DL_INFO, handle_info, false },
	{ DL_LIST, handle_list, false },
	{ DL_EVICT, handle_evict, false },
	{ DL_STATS, handle_stats, false },
};

void handlers_dispatch(struct client *c, const struct dl_msg *m, int *fds, int nfds)
{
	for (size_t i = 0; i < sizeof(handlers) / sizeof(handlers[0]); i++) {
		if (handlers[i].type != m->hdr.type)
			continue;
		handlers[i].fn(c, m, fds, nfds);
		if (!handlers[i].takes_fd)
			client_drop_fds(c, fds, nfds);
		return;
	}
	/* A reply type sent to us. */
	client_send_error(c, m->hdr.id, EOPNOTSUPP, "not a request");
	client_drop_fds(c, fds, nfds);
}
