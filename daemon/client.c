/*
 * client.c: one connection to the daemon.
 *
 * Input: each readable event takes up to a handful of datagrams (so one chatty
 * client cannot hog the loop), decodes each with dl_msg_decode and dispatches it.
 * Malformed datagrams (bad framing, another protocol version) get an ERROR and the
 * connection is closed: a peer that does not speak the protocol cannot be trusted to
 * read what follows. Requests that are well-formed but wrong (unknown type, bad
 * fields, wrong fd count) get an ERROR and the connection goes on.
 *
 * Output: replies are sent at once when the socket takes them; otherwise they queue
 * (with a dup of any fd they carry) and a write watcher drains the queue in order.
 *
 * Lifetime: client_close() closes the socket, detaches the jobs and marks the client
 * closed; the struct lives on until its last job is released, because jobs still
 * point at it (and at its credentials) while the kernel finishes their reads.
 *
 * Loads without a client (preloads): a load that outlives its connection is simply a
 * job of a closed client. client_close() keeps the jobs that asked for it
 * (DL_LOAD_DETACH) running and moves the client to server->lingering, where
 * server_stop() still finds them; client_preload() makes a client that is closed
 * from birth, with the daemon's own credentials, for the [preload] entries. Either
 * way the job path is the one every load takes, replies go nowhere (client_send on a
 * closed client is a no-op), and the client frees itself after its last job.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "cache.h"
#include "client.h"
#include "dmaload-proto.h"
#include "job.h"
#include "log.h"
#include "server.h"
#include "util.h"

struct out_msg {
	struct out_msg *next;
	int fd;			/* dup of the fd to pass, or -1 */
	size_t len;
	char buf[];
};

static void on_readable(struct ev_loop *loop, ev_io *w, int revents);
static void client_owner_init(struct client *c);
static void on_writable(struct ev_loop *loop, ev_io *w, int revents);

/* Datagrams handled per readable event before giving others a turn. */
#define RECV_BATCH 16

static void client_free(struct client *c)
{
	struct server *srv = c->srv;

	sched_owner_deinit(&c->so);
	list_del(&c->link);		/* server->lingering, if there */
	while (c->out_head) {
		struct out_msg *m = c->out_head;

		c->out_head = m->next;
		/* a DONE's buffer never sent: this may be its last reference */
		if (m->fd >= 0)
			worker_close(srv->eng.pool, m->fd);
		free(m);
	}
	if (c->cred.pidfd >= 0)
		close(c->cred.pidfd);
	free(c->cred.groups);
	free(c);
	server_check_idle(srv);
}

/* A closed client goes once no job and no handler on the stack holds it. */
static void client_maybe_free(struct client *c)
{
	if (c->closed && c->n_jobs == 0 && !c->busy)
		client_free(c);
}

void client_close(struct client *c)
{
	struct list *pos, *tmp;
	unsigned kept = 0;

	if (c->closed)
		return;
	c->closed = true;
	c->owner.gone = true;
	ev_io_stop(c->srv->loop, &c->rio);
	ev_io_stop(c->srv->loop, &c->wio);
	close(c->fd);
	c->fd = -1;
	sched_owner_deinit(&c->so);
	list_del(&c->link);
	c->srv->n_clients--;
	list_for_each_safe(pos, tmp, &c->jobs) {
		struct job *j = list_entry(pos, struct job, owner_link);

		/* A preload reads on for the cache (not on a stopping daemon). */
		if ((j->req.flags & DL_LOAD_DETACH) && !j->err && !j->replied &&
		    !c->srv->stopping)
			kept++;
		else
			job_detach(j);
	}
	if (kept)
		list_add_tail(&c->srv->lingering, &c->link);
	log_debug("conn %llu closed (%u loads cancelled, %u preloads go on)",
		  (unsigned long long)c->conn_id, c->n_jobs - kept, kept);
	client_maybe_free(c);
}

int client_preload(struct server *srv, char **paths, size_t n)
{
	struct client *c = calloc(1, sizeof(*c));
	unsigned started = 0;

	if (!c)
		return -ENOMEM;
	c->srv = srv;
	c->fd = -1;
	c->closed = true;		/* nobody to reply to */
	c->conn_id = ++srv->next_conn_id;
	c->cred = (struct peer_cred){ .pid = getpid(), .pidfd = -1, .uid = geteuid(),
				      .gid = getegid() };
	snprintf(c->name, sizeof(c->name), "preload");
	list_init(&c->jobs);
	client_owner_init(c);
	ev_io_init(&c->rio, on_readable, -1, EV_READ);	/* never started */
	ev_io_init(&c->wio, on_writable, -1, EV_WRITE);
	list_add_tail(&srv->lingering, &c->link);
	c->busy++;
	for (size_t i = 0; i < n; i++) {
		struct dl_msg m = {
			.hdr = { .type = DL_LOAD, .id = i + 1 },
			.u.load = {
				.length = DL_LENGTH_TO_EOF,
				.flags = DL_LOAD_PIN | DL_LOAD_DETACH,
				.target = DL_TARGET_AUTO,
				.method = DL_METHOD_AUTO,
				.priority = DL_PRIO_BACKGROUND,
				.path_len = (uint32_t)strlen(paths[i]),
			},
			.trail = paths[i],
			.trail_len = strlen(paths[i]),
		};
		struct job *j;

		if (job_new(&j, &srv->eng, &c->owner, &m, -1) < 0) {
			log_warn("preload %s: out of memory", paths[i]);
			continue;
		}
		list_add_tail(&c->jobs, &j->owner_link);
		c->n_jobs++;
		started++;
	}
	log_notice("preload: conn %llu: %u files, background priority, pinned",
		   (unsigned long long)c->conn_id, started);
	c->busy--;
	client_maybe_free(c);
	return 0;
}

static void client_job_gone(struct client *c, struct job *j)
{
	list_del(&j->owner_link);
	c->n_jobs--;
	client_maybe_free(c);
}

/* The peer cannot take replies any more. Closing now could release a job whose
 * callback is on the stack, so the write watcher's callback does it. */
static void client_break(struct client *c, int err)
{
	if (c->broken)
		return;
	log_debug("conn %llu: send: %s", (unsigned long long)c->conn_id, strerror(-err));
	c->broken = true;
	ev_feed_event(c->srv->loop, &c->wio, EV_WRITE);
}

/* Sends queued messages in order until the socket is full. Returns 0 or -errno. */
static int client_flush(struct client *c)
{
	while (c->out_head) {
		struct out_msg *m = c->out_head;
		int r = dl_send(c->fd, m->buf, m->len, &m->fd, m->fd >= 0 ? 1 : 0);

		if (r == -EAGAIN) {
			ev_io_start(c->srv->loop, &c->wio);
			return 0;
		}
		if (r < 0)
			return r;
		c->out_head = m->next;
		if (!c->out_head)
			c->out_tail = NULL;
		if (m->fd >= 0)
			close(m->fd);
		free(m);
	}
	ev_io_stop(c->srv->loop, &c->wio);
	return 0;
}

void client_send(struct client *c, const void *buf, size_t len, int fd_to_pass)
{
	struct out_msg *m;
	int r;

	if (c->closed || c->broken)
		return;
	if (!c->out_head) {
		r = dl_send(c->fd, buf, len, &fd_to_pass, fd_to_pass >= 0 ? 1 : 0);
		if (r == 0)
			return;
		if (r != -EAGAIN) {
			client_break(c, r);
			return;
		}
	}
	m = malloc(sizeof(*m) + len);
	if (!m)
		goto oom;
	m->next = NULL;
	m->len = len;
	memcpy(m->buf, buf, len);
	m->fd = -1;
	if (fd_to_pass >= 0) {
		m->fd = fcntl(fd_to_pass, F_DUPFD_CLOEXEC, 3);
		if (m->fd < 0) {
			free(m);
			goto oom;
		}
	}
	if (c->out_tail)
		c->out_tail->next = m;
	else
		c->out_head = m;
	c->out_tail = m;
	ev_io_start(c->srv->loop, &c->wio);
	return;
oom:
	/* A reply that cannot be kept breaks the client's view of its requests. */
	log_err("conn %llu: out of memory for a reply: closing",
		(unsigned long long)c->conn_id);
	client_break(c, -ENOMEM);
}

void client_send_error(struct client *c, uint64_t id, int err, const char *msg)
{
	char buf[sizeof(struct dl_hdr) + sizeof(struct dl_error) + DL_ERRMSG_MAX];
	ssize_t n = dl_encode_error(buf, sizeof(buf), id, err, msg);

	if (n > 0)
		client_send(c, buf, (size_t)n, -1);
}

static void send_plain(struct client *c, uint16_t type, uint64_t id, const void *p,
		       size_t plen)
{
	char buf[256];
	ssize_t n = dl_encode(buf, sizeof(buf), type, id, p, plen, NULL, 0);

	if (n > 0)
		client_send(c, buf, (size_t)n, -1);
}

/* ---- its loads: what the engine tells the connection (job.h) ------------------------ */

static struct client *owner_client(const struct job *j)
{
	return list_entry(j->owner, struct client, owner);
}

static void owner_accepted(struct job *j, const struct dl_accepted *a)
{
	send_plain(owner_client(j), DL_ACCEPTED, j->id, a, sizeof(*a));
}

static void owner_progress(struct job *j, const struct dl_progress *p)
{
	send_plain(owner_client(j), DL_PROGRESS, j->id, p, sizeof(*p));
}

static void owner_done(struct job *j, const struct dl_done *d, int fd)
{
	struct client *c = owner_client(j);
	char buf[128];
	ssize_t n = dl_encode(buf, sizeof(buf), DL_DONE, j->id, d, sizeof(*d), NULL, 0);

	if (n > 0)
		client_send(c, buf, (size_t)n, fd);
	c->loads_done++;
	c->bytes_done += d->size;
}

static void owner_failed(struct job *j, int err, const char *msg)
{
	client_send_error(owner_client(j), j->id, err, msg);
}

static void owner_released(struct job *j)
{
	client_job_gone(owner_client(j), j);
}

static const struct job_owner_ops client_owner_ops = {
	.accepted = owner_accepted,
	.progress = owner_progress,
	.done = owner_done,
	.failed = owner_failed,
	.released = owner_released,
};

/* What the engine knows of this connection; its queues and limits too. */
static void client_owner_init(struct client *c)
{
	c->owner = (struct job_owner){
		.ops = &client_owner_ops,
		.conn_id = c->conn_id,
		.name = c->name,
		.cred = &c->cred,
		.so = &c->so,
		.gone = c->closed,
	};
	sched_owner_init(&c->srv->eng.sched, &c->so);
	sched_owner_limits(&c->so, c->name, &c->cred, c->conn_id, NULL);
}

/* A reply with trailing entries, up to a whole datagram (too big for the stack of a
 * handler that also builds the entries). */
static void send_with_trail(struct client *c, uint16_t type, uint64_t id, const void *p,
			    size_t plen, const void *trail, size_t tlen)
{
	char *out = malloc(DL_MSG_MAX);
	ssize_t n;

	if (!out) {
		client_send_error(c, id, ENOMEM, "out of memory");
		return;
	}
	n = dl_encode(out, DL_MSG_MAX, type, id, p, plen, trail, tlen);
	if (n > 0)
		client_send(c, out, (size_t)n, -1);
	free(out);
}

/* INFO: what buffers this host offers. target_host_info only reads devtmpfs, sysfs
 * and procfs, which do not block on I/O. */
static void handle_info(struct client *c, const struct dl_msg *m)
{
	struct target_host h;
	struct dl_info_reply r;
	char names[4096];

	target_host_info(&h, names, sizeof(names));
	r = (struct dl_info_reply){
		.caps = (h.udmabuf_err ? 0 : DL_CAP_UDMABUF) | (h.heaps ? DL_CAP_HEAP : 0),
		.udmabuf_err = h.udmabuf_err,
		.udmabuf_size_limit = h.udmabuf_size_limit,
		.huge_page_size = h.huge_page_size,
		.huge_pages_total = h.huge_pages_total,
		.huge_pages_free = h.huge_pages_free,
		.n_heaps = h.n_heaps,
		.heaps_len = (uint32_t)h.heaps_len,
		.default_target = c->srv->cfg->target,
		.udmabuf_hugetlb = h.udmabuf_hugetlb,
	};
	send_with_trail(c, DL_INFO_REPLY, m->hdr.id, &r, sizeof(r), names, r.heaps_len);
}

static struct job *client_find_job(struct client *c, uint64_t id)
{
	struct list *pos, *tmp;

	list_for_each_safe(pos, tmp, &c->jobs) {
		struct job *j = list_entry(pos, struct job, owner_link);

		if (j->id == id && !j->replied)
			return j;
	}
	return NULL;
}

static void handle_hello(struct client *c, const struct dl_msg *m)
{
	const struct config *cfg = c->srv->cfg;
	struct dl_hello_reply r = {
		.version = DL_PROTO_VERSION,
		.caps = DL_CAPS_V1 | DL_CAP_DMABUF | DL_CAP_DETACH | DL_CAP_ROOT_FD,
		.max_load_size = c->srv->eng.max_load_size,
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
	log_debug("conn %llu: hello from \"%s\" (version %u, caps 0x%x)",
		  (unsigned long long)c->conn_id, c->name, m->u.hello.version,
		  m->u.hello.caps);
	/* [limits] may have a rule for this name. */
	sched_owner_limits(&c->so, c->name, &c->cred, c->conn_id, "hello");
	send_plain(c, DL_HELLO_REPLY, m->hdr.id, &r, sizeof(r));
}

/* Takes @fd (-1 or the passed source). */
static void handle_load(struct client *c, const struct dl_msg *m, int fd)
{
	struct job *j;
	int r;

	if (c->srv->stopping) {
		client_send_error(c, m->hdr.id, ESHUTDOWN, "the daemon is shutting down");
		goto drop;
	}
	if (client_find_job(c, m->hdr.id)) {
		client_send_error(c, m->hdr.id, EEXIST,
				  "a load with this request id is still running");
		goto drop;
	}
	if (c->n_jobs >= c->srv->cfg->max_queued) {
		char msg[128];

		snprintf(msg, sizeof(msg), "too many loads on this connection "
			 "(max_queued = %u)", c->srv->cfg->max_queued);
		client_send_error(c, m->hdr.id, EBUSY, msg);
		goto drop;
	}
	if (m->u.load.length != DL_LENGTH_TO_EOF &&
	    m->u.load.length > c->srv->eng.max_load_size) {
		char msg[160];

		snprintf(msg, sizeof(msg), "%llu bytes is more than max_load_size "
			 "(%llu bytes)", (unsigned long long)m->u.load.length,
			 (unsigned long long)c->srv->eng.max_load_size);
		client_send_error(c, m->hdr.id, EFBIG, msg);
		goto drop;
	}
	if ((m->u.load.flags & DL_LOAD_DETACH) && !(m->u.load.flags & DL_LOAD_PIN)) {
		client_send_error(c, m->hdr.id, EINVAL, "DL_LOAD_DETACH needs DL_LOAD_PIN: "
				  "a detached load's buffer is kept only in the cache");
		goto drop;
	}
	if ((m->u.load.flags & DL_LOAD_DETACH) && !c->srv->eng.cache.limit) {
		client_send_error(c, m->hdr.id, EOPNOTSUPP, "the cache is off "
				  "(cache_limit = 0): nowhere to preload into");
		goto drop;
	}
	r = job_new(&j, &c->srv->eng, &c->owner, m, fd);
	if (r < 0) {
		client_send_error(c, m->hdr.id, -r, "cannot start the load");
		return;
	}
	list_add_tail(&c->jobs, &j->owner_link);
	c->n_jobs++;
	return;
drop:
	if (fd >= 0)
		close(fd);
}

static void handle_cancel(struct client *c, const struct dl_msg *m)
{
	struct job *j = client_find_job(c, m->u.cancel.load_id);

	if (!j) {
		client_send_error(c, m->hdr.id, ENOENT,
				  "no load with that id is running on this connection");
		return;
	}
	job_fail(j, -ECANCELED, "cancelled by the client");
	send_plain(c, DL_OK, m->hdr.id, NULL, 0);
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

static void handle_status(struct client *c, const struct dl_msg *m)
{
	struct server *srv = c->srv;
	size_t cap = DL_MSG_MAX - sizeof(struct dl_hdr) - sizeof(struct dl_status_reply);
	struct dl_status_reply st = {
		.uptime_ms = (now_ns() - srv->started_ns) / 1000000,
		.bytes_loaded = srv->eng.bytes_loaded,
		.loads_done = srv->eng.loads_done,
		.loads_failed = srv->eng.loads_failed,
		.clients = srv->n_clients,
		.loads_active = srv->eng.sched.n_active,
		.loads_queued = srv->eng.sched.n_waiting,
	};
	struct list *cp, *ctmp, *jp, *jtmp;
	char *entries = malloc(cap);
	size_t len = 0;

	if (!entries) {
		client_send_error(c, m->hdr.id, ENOMEM, "out of memory");
		return;
	}
	list_for_each_safe(cp, ctmp, &srv->clients) {
		struct client *o = list_entry(cp, struct client, link);

		/* Other users' loads are counted above but not shown, except to root. */
		if (c->cred.uid != 0 && o->cred.uid != c->cred.uid)
			continue;
		list_for_each_safe(jp, jtmp, &o->jobs) {
			struct job *j = list_entry(jp, struct job, owner_link);

			if (j->replied)
				continue;
			if (!status_add(entries, cap, &len, j)) {
				st.flags |= DL_STATUS_TRUNCATED;
				goto full;
			}
			st.n_loads++;
		}
	}
full:
	send_with_trail(c, DL_STATUS_REPLY, m->hdr.id, &st, sizeof(st), entries, len);
	free(entries);
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

static void handle_list(struct client *c, const struct dl_msg *m)
{
	struct cache *cache = &c->srv->eng.cache;
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
	send_with_trail(c, DL_LIST_REPLY, m->hdr.id, &lr, sizeof(lr), entries, len);
	free(entries);
}

static void handle_evict(struct client *c, const struct dl_msg *m)
{
	char path[DL_PATH_MAX + 1];
	struct dl_evict_reply er = { 0 };
	const char *match = NULL;

	if (!(m->u.evict.flags & DL_EVICT_ALL)) {
		memcpy(path, m->trail, m->trail_len);
		path[m->trail_len] = '\0';
		match = path;
	}
	/* Not root: only the entries its own uid loaded. */
	er.count = cache_evict(&c->srv->eng.cache, match, c->cred.uid, &er.bytes);
	log_info("conn %llu: evict %s: %u entries, %llu bytes", (unsigned long long)c->conn_id,
		 match ? match : "(all)", er.count, (unsigned long long)er.bytes);
	if (!er.count) {
		client_send_error(c, m->hdr.id, ENOENT, match ?
				  "no cached buffer of that path (that you loaded)" :
				  "no cached buffers (that you loaded)");
		return;
	}
	send_plain(c, DL_EVICT_REPLY, m->hdr.id, &er, sizeof(er));
}

static void handle_stats(struct client *c, const struct dl_msg *m)
{
	struct server *srv = c->srv;
	struct cache *cache = &srv->eng.cache;
	size_t cap = (DL_MSG_MAX - sizeof(struct dl_hdr) - sizeof(struct dl_stats_reply)) /
		     sizeof(struct dl_stats_client);
	struct dl_stats_reply st = {
		.bytes_read = srv->eng.bytes_read,
		.bytes_cached = srv->eng.bytes_cached,
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
	memcpy(st.loads_by_method, srv->eng.loads_by_method, sizeof(st.loads_by_method));
	list_for_each_safe(pos, tmp, &srv->clients) {
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
	send_with_trail(c, DL_STATS_REPLY, m->hdr.id, &st, sizeof(st), ents,
			st.n_clients * sizeof(*ents));
	free(ents);
}

/* Handles one datagram. Returns false if the client was closed. */
static bool client_dispatch(struct client *c, const char *buf, size_t len, int *fds,
			    int nfds)
{
	struct dl_msg m;
	int fd = nfds > 0 ? fds[0] : -1;
	int r = dl_msg_decode(buf, len, nfds, &m);

	if (r == -EBADMSG || r == -EPROTONOSUPPORT) {
		client_send_error(c, m.hdr.id, -r, r == -EBADMSG ?
				  "malformed message: closing the connection" :
				  "unsupported protocol version: this daemon speaks version 1");
		log_info("conn %llu: %s: closing", (unsigned long long)c->conn_id,
			 strerror(-r));
		if (fd >= 0)
			close(fd);
		client_close(c);
		return false;
	}
	if (r == -EOPNOTSUPP || r == -EINVAL) {
		char msg[128];

		if (r == -EOPNOTSUPP)
			snprintf(msg, sizeof(msg), "unknown message type 0x%x", m.hdr.type);
		else
			snprintf(msg, sizeof(msg), "bad %s request (fields or fd count)",
				 dl_msg_type_name(m.hdr.type));
		client_send_error(c, m.hdr.id, -r, msg);
		if (fd >= 0)
			close(fd);
		return !c->closed;
	}

	switch (m.hdr.type) {
	case DL_HELLO:
		handle_hello(c, &m);
		break;
	case DL_LOAD:
		handle_load(c, &m, fd);
		fd = -1;
		break;
	case DL_CANCEL:
		handle_cancel(c, &m);
		break;
	case DL_STATUS:
		handle_status(c, &m);
		break;
	case DL_INFO:
		handle_info(c, &m);
		break;
	case DL_LIST:
		handle_list(c, &m);
		break;
	case DL_EVICT:
		handle_evict(c, &m);
		break;
	case DL_STATS:
		handle_stats(c, &m);
		break;
	default:
		/* A reply type sent to us. */
		client_send_error(c, m.hdr.id, EOPNOTSUPP, "not a request");
		break;
	}
	if (fd >= 0)
		close(fd);
	return !c->closed;
}

static void client_read_batch(struct client *c)
{
	char *buf = c->srv->rbuf;

	for (int i = 0; i < RECV_BATCH && !c->closed && !c->broken; i++) {
		int fds[DL_MAX_FDS], nfds = 0;
		ssize_t n = dl_recv(c->fd, buf, DL_MSG_MAX, fds, DL_MAX_FDS, &nfds);

		if (n == -EAGAIN)
			return;
		if (n == -EMSGSIZE || n == -EBADMSG) {
			client_send_error(c, 0, -n == EMSGSIZE ? EMSGSIZE : EBADMSG,
					  n == -EMSGSIZE ? "message too long: closing "
					  "the connection" : "bad ancillary data: closing "
					  "the connection");
			client_close(c);
			return;
		}
		if (n <= 0) {
			/* End of stream; an fd sent with an empty datagram is closed too. */
			for (int k = 0; k < nfds; k++)
				close(fds[k]);
			if (n < 0)
				log_debug("conn %llu: recv: %s",
					  (unsigned long long)c->conn_id, strerror((int)-n));
			client_close(c);
			return;
		}
		if (!client_dispatch(c, buf, (size_t)n, fds, nfds))
			return;
	}
}

static void on_readable(struct ev_loop *loop, ev_io *w, int revents)
{
	struct client *c = w->data;

	/* A reply that fails to send closes the client in the middle of a request:
	 * keep its memory until the handler is done with it. */
	c->busy++;
	client_read_batch(c);
	c->busy--;
	client_maybe_free(c);
}

static void on_writable(struct ev_loop *loop, ev_io *w, int revents)
{
	struct client *c = w->data;
	int r = c->broken ? -EPIPE : client_flush(c);

	if (r < 0) {
		if (!c->broken)
			log_debug("conn %llu: send: %s", (unsigned long long)c->conn_id,
				  strerror(-r));
		client_close(c);
	}
}

#ifndef SO_PEERPIDFD
#define SO_PEERPIDFD 77		/* Linux 6.5; newer than this libc's headers */
#endif

/*
 * A pidfd of the process that connected on @fd, or -1. Paths are resolved in that
 * process's root directory, found by its PID; the pidfd tells later whether the PID
 * still names it. SO_PEERPIDFD is exact; before 6.5, pidfd_open of the PID the
 * socket reported is right unless the peer exited between connect and accept. A peer
 * already gone gets *@pid 0: its paths are refused.
 */
static int peer_pidfd(int fd, pid_t *pid)
{
	int pidfd = -1;
	socklen_t sl = sizeof(pidfd);

	if (*pid <= 0)
		return -1;
	if (getsockopt(fd, SOL_SOCKET, SO_PEERPIDFD, &pidfd, &sl) == 0)
		return pidfd;
	if (errno != ENOPROTOOPT && errno != EINVAL) {
		*pid = 0;
		return -1;
	}
	pidfd = (int)syscall(SYS_pidfd_open, *pid, 0);	/* close-on-exec always */
	if (pidfd < 0 && errno == ESRCH)
		*pid = 0;
	return pidfd < 0 ? -1 : pidfd;
}

int client_new(struct client **out, struct server *srv, int fd)
{
	struct client *c = calloc(1, sizeof(*c));
	struct ucred uc;
	socklen_t sl = sizeof(uc);

	if (!c) {
		close(fd);
		return -ENOMEM;
	}
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &uc, &sl) < 0) {
		int r = -errno;

		close(fd);
		free(c);
		return r;
	}
	c->cred.pid = uc.pid;
	c->cred.uid = uc.uid;
	c->cred.gid = uc.gid;
	c->cred.n_groups = -1;
	c->cred.pidfd = peer_pidfd(fd, &c->cred.pid);
	/* Supplementary groups as of connect(): part of what the peer may read. */
	sl = 64 * sizeof(gid_t);
	for (int tries = 0; tries < 4; tries++) {
		gid_t *g = realloc(c->cred.groups, sl);

		if (!g)
			break;
		c->cred.groups = g;
		if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, g, &sl) == 0) {
			c->cred.n_groups = (int)(sl / sizeof(gid_t));
			break;
		}
		if (errno != ERANGE)
			break;
	}
	c->srv = srv;
	c->fd = fd;
	c->conn_id = ++srv->next_conn_id;
	list_init(&c->jobs);
	client_owner_init(c);
	ev_io_init(&c->rio, on_readable, fd, EV_READ);
	ev_io_init(&c->wio, on_writable, fd, EV_WRITE);
	c->rio.data = c;
	c->wio.data = c;
	ev_io_start(srv->loop, &c->rio);
	list_add_tail(&srv->clients, &c->link);
	srv->n_clients++;
	log_debug("conn %llu: pid %d uid %u gid %u", (unsigned long long)c->conn_id,
		  (int)uc.pid, uc.uid, uc.gid);
	*out = c;
	return 0;
}
