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
 * A client that does not read must not grow the daemon: the queue is capped at
 * max_reply_bytes and at max_queued fds (less the loads still running, whose DONEs
 * would add more). Over the cap the client's requests are not read (its socket
 * fills and its sends block) until it has read half of its replies; PROGRESS, a
 * hint, is never queued behind other replies. Replies of loads it started before
 * still queue; a queue that would pass twice the cap anyway closes the connection.
 *
 * Failing requests: each ERROR a connection is sent (but ESHUTDOWN), each load
 * dropped because its connection hung up and each load its close cancels counts
 * against its uid's max_failures_per_uid (quota.h); while the uid is over it, none
 * of its connections is read (hold_timer says when to look again), so a client that
 * resends failing loads as fast as they are answered, or connects, asks and dies in a
 * loop, gets that many a second of the daemon's time and no more.
 *
 * Idle connections: every connection counts against max_clients and its uid's share,
 * so one that sits with nothing in flight (no load, no reply waiting to be sent) and
 * sends no request for idle_timeout seconds hears an ERROR (ETIMEDOUT, id 0) and is
 * closed, when connections are short: the daemon holds half of max_clients or more,
 * or its uid half of its share. Otherwise it stays: an inference server that keeps
 * one connection for the loads it makes now and then costs nothing while there is
 * room, and libdmaload does not reconnect by itself. A load in flight, however slow,
 * or a DONE the client has not read yet keeps it open; the quiet spell starts when
 * the last of them is gone. One timer per connection, re-armed for what is left of
 * the spell, never a sweep over all.
 *
 * Lifetime: client_close() closes the socket, detaches the jobs and marks the client
 * closed; the struct lives on until its last job is released, because jobs still
 * point at it (and at its credentials) while the kernel finishes their reads.
 *
 * Loads without a connection (preloads): a load that outlives its connection is
 * simply a job of a closed client. client_close() keeps the jobs that asked for it
 * (DL_LOAD_DETACH) running and moves the client to set->lingering, where
 * client_set_stop() still finds them; client_new_local() makes a client that is
 * closed from birth, with the daemon's own credentials, for the [preload] entries
 * (preload.c). Either way the job path is the one every load takes, replies go
 * nowhere (client_send on a closed client is a no-op), and the client frees itself
 * after its last job. The handlers decide who may detach and how many; the set
 * counts the detached loads of connections (set->n_detached) and keeps the lingering
 * clients where STATUS and EVICT find them.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "client.h"
#include "dmaload-proto.h"
#include "job.h"
#include "log.h"
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
static void client_resume_check(struct client *c);
static bool client_peer_gone(struct client *c);

/* Datagrams handled per readable event before giving others a turn. */
#define RECV_BATCH 16

/* ---- idle timeout ---------------------------------------------------------------- */

/* Whether @c has something in flight: a load, or a reply not yet taken by its
 * socket. */
static bool client_busy(const struct client *c)
{
	return c->n_jobs || c->out_head;
}

/* Something happened on @c: its quiet spell starts again. */
static void client_touch(struct client *c)
{
	c->last_active = ev_now(c->set->loop);
}

/* Whether connections are short for @c: the daemon holds half of max_clients or
 * more, or @c's uid (not root's, nor the daemon's) half of its share. */
static bool client_crowded(const struct client *c)
{
	const struct client_set *set = c->set;
	unsigned share = config_clients_per_uid(set->cfg), n = 0;
	struct list *pos;

	if (set->n_clients * 2 >= set->cfg->max_clients)
		return true;
	if (c->cred.uid == 0 || c->cred.uid == geteuid())
		return false;
	/* A walk, bounded by max_clients, once per idle_timeout of a quiet connection. */
	for (pos = set->clients.next; pos != &set->clients; pos = pos->next)
		if (list_entry(pos, struct client, link)->cred.uid == c->cred.uid)
			n++;
	return n * 2 >= share;
}

static void on_idle_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct client *c = w->data;
	unsigned timeout = c->set->cfg->idle_timeout;
	ev_tstamp left;
	char msg[128];

	if (c->closed || !timeout)
		return;		/* off since a reload: the timer stays stopped */
	if (client_busy(c))
		client_touch(c);
	left = c->last_active + timeout - ev_now(loop);
	if (left <= 0.001 && !client_crowded(c)) {
		client_touch(c);	/* room enough: quiet for another spell */
		left = timeout;
	}
	if (left > 0.001) {
		ev_timer_set(w, left, 0);
		ev_timer_start(loop, w);
		return;
	}
	snprintf(msg, sizeof(msg), "idle for %u s with nothing in flight (idle_timeout): "
		 "closing the connection", timeout);
	log_info("conn %llu (uid %u): %s", (unsigned long long)c->conn_id, c->cred.uid, msg);
	client_send_error(c, 0, ETIMEDOUT, msg);
	client_close(c);
}

/* Starts @c's idle timer if idle_timeout is on and it is not running (at connect,
 * and after a reload that turned it on). */
static void client_idle_arm(struct client *c)
{
	unsigned timeout = c->set->cfg->idle_timeout;

	if (c->local || c->closed || !timeout || ev_is_active(&c->idle_timer))
		return;
	client_touch(c);
	ev_timer_set(&c->idle_timer, timeout, 0);
	ev_timer_start(c->set->loop, &c->idle_timer);
}

/* ---- failing requests (quota.h) ----------------------------------------------------- */

/* A request of @c failed, or its load went for nothing: @n tokens. */
static void client_failed_n(struct client *c, unsigned n)
{
	if (!c->local)
		quota_failed(&c->set->eng->quota, c->cred.uid, n,
			     c->set->cfg->max_failures_per_uid, now_ns());
}

static void client_failed(struct client *c)
{
	client_failed_n(c, 1);
}

/* A load that its connection's close cancels costs a token, and one more for each
 * chunk it read or has in flight: what the disk did for nobody. So a client that
 * starts big loads and hangs up is paced by the bytes it wastes, not only by their
 * number. */
static unsigned client_cancel_cost(const struct client *c, const struct job *j)
{
	uint64_t chunk = c->set->cfg->chunk_size ? c->set->cfg->chunk_size : 1;
	uint64_t n = 1 + j->cp.done / chunk + j->cp.inflight;

	return n > UINT32_MAX ? UINT32_MAX : (unsigned)n;
}

/* Whether @c is not to be read now because its uid failed too often: then its read
 * watcher stops until the uid's bucket holds a token again. */
static bool client_hold(struct client *c)
{
	uint64_t wait;

	if (c->held)
		return true;
	if (c->local)
		return false;
	wait = quota_fail_wait(&c->set->eng->quota, c->cred.uid,
			       c->set->cfg->max_failures_per_uid, now_ns());
	if (!wait)
		return false;
	c->held = true;
	ev_io_stop(c->set->loop, &c->rio);
	ev_timer_set(&c->hold_timer, (double)wait / 1e9, 0);
	ev_timer_start(c->set->loop, &c->hold_timer);
	return true;
}

static void on_hold_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct client *c = w->data;

	c->held = false;
	/* Still held (another connection of its uid took the token): the timer again,
	 * without a trip through epoll. */
	if (!c->closed && !c->paused && !client_hold(c))
		ev_io_start(loop, &c->rio);	/* the next read asks again */
}

/* ---- lifetime ----------------------------------------------------------------------- */

static void client_free(struct client *c)
{
	struct client_set *set = c->set;

	sched_owner_deinit(&c->so);
	list_del(&c->link);		/* server->lingering, if there */
	while (c->out_head) {
		struct out_msg *m = c->out_head;

		c->out_head = m->next;
		/* a DONE's buffer never sent: this may be its last reference */
		if (m->fd >= 0)
			worker_close(set->eng->pool, m->fd);
		free(m);
	}
	cred_deinit(&c->cred);
	free(c);
	if (set->on_idle)
		set->on_idle(set->idle_data);
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
	ev_io_stop(c->set->loop, &c->rio);
	ev_io_stop(c->set->loop, &c->wio);
	ev_timer_stop(c->set->loop, &c->idle_timer);
	ev_timer_stop(c->set->loop, &c->hold_timer);
	/* Closing the socket frees the datagrams it still holds, and with them the
	 * last references to any fds they carry: a FUSE file's release can wait on its
	 * server. So on a worker of this client's, like its other fds. */
	if (c->fd >= 0)
		client_drop_fds(c, &c->fd, 1);
	c->fd = -1;
	sched_owner_deinit(&c->so);
	list_del(&c->link);
	c->set->n_clients--;
	list_for_each_safe(pos, tmp, &c->jobs) {
		struct job *j = list_entry(pos, struct job, owner_link);

		/* A preload reads on for the cache (not on a stopping daemon). */
		if ((j->req.flags & DL_LOAD_DETACH) && !j->err && !j->replied &&
		    !c->set->stopping) {
			kept++;
			continue;
		}
		/* A load it asked for and left: work for nothing (not on a stop, which
		 * is ours, nor for one already answered). */
		if (!j->replied && !c->set->stopping)
			client_failed_n(c, client_cancel_cost(c, j));
		job_detach(j);
	}
	if (kept) {
		list_add_tail(&c->set->lingering, &c->link);
		log_info("conn %llu closed: %u detached loads go on (%u in flight daemon-wide)",
			 (unsigned long long)c->conn_id, kept, c->set->n_detached);
	}
	log_debug("conn %llu closed (%u loads cancelled, %u preloads go on)",
		  (unsigned long long)c->conn_id, c->n_jobs - kept, kept);
	client_maybe_free(c);
}

int client_new_local(struct client **out, struct client_set *set, const char *name)
{
	struct client *c = calloc(1, sizeof(*c));

	if (!c)
		return -ENOMEM;
	c->set = set;
	c->fd = -1;
	c->closed = true;		/* nobody to reply to */
	c->local = true;
	c->conn_id = ++set->next_conn_id;
	cred_self(&c->cred);
	snprintf(c->name, sizeof(c->name), "%s", name);
	list_init(&c->jobs);
	client_owner_init(c);
	ev_io_init(&c->rio, on_readable, -1, EV_READ);	/* never started */
	ev_io_init(&c->wio, on_writable, -1, EV_WRITE);
	ev_timer_init(&c->idle_timer, on_idle_timer, 0, 0);	/* nor this */
	ev_timer_init(&c->hold_timer, on_hold_timer, 0, 0);	/* nor this */
	c->idle_timer.data = c;
	c->hold_timer.data = c;
	list_add_tail(&set->lingering, &c->link);
	c->busy++;			/* until client_local_done() */
	*out = c;
	return 0;
}

void client_local_done(struct client *c)
{
	c->busy--;
	client_maybe_free(c);
}

int client_start_load(struct client *c, const struct dl_msg *m, int *fds, int nfds)
{
	struct job *j;
	int r = job_new(&j, c->set->eng, &c->owner, m, fds, nfds);

	if (r < 0)
		return r;
	list_add_tail(&c->jobs, &j->owner_link);
	c->n_jobs++;
	if ((j->req.flags & DL_LOAD_DETACH) && !c->local) {
		c->set->n_detached++;
		/* Root's count of what may outlive its connection (STATUS has no field
		 * for it; its entries list each one). */
		log_info("conn %llu: load %llu may outlive its connection (DL_LOAD_DETACH): "
			 "%u of max_detached = %u detached loads in flight",
			 (unsigned long long)c->conn_id, (unsigned long long)m->hdr.id,
			 c->set->n_detached, c->set->cfg->max_detached);
	}
	return 0;
}

bool client_set_each_job(struct client_set *set, uid_t uid,
			 bool (*fn)(struct job *j, void *data), void *data)
{
	struct list *lists[] = { &set->clients, &set->lingering };
	struct list *cp, *ctmp, *jp, *jtmp;

	/* Open connections, then closed ones whose detached loads go on. */
	for (size_t i = 0; i < sizeof(lists) / sizeof(lists[0]); i++) {
		list_for_each_safe(cp, ctmp, lists[i]) {
			struct client *o = list_entry(cp, struct client, link);

			if (uid != 0 && o->cred.uid != uid)
				continue;
			list_for_each_safe(jp, jtmp, &o->jobs) {
				struct job *j = list_entry(jp, struct job, owner_link);

				if (!j->replied && !fn(j, data))
					return false;
			}
		}
	}
	return true;
}

struct job *client_find_job(struct client *c, uint64_t id)
{
	struct list *pos, *tmp;

	list_for_each_safe(pos, tmp, &c->jobs) {
		struct job *j = list_entry(pos, struct job, owner_link);

		if (j->id == id && !j->replied)
			return j;
	}
	return NULL;
}

static void client_job_gone(struct client *c, struct job *j)
{
	list_del(&j->owner_link);
	c->n_jobs--;
	if (!c->local && !c->closed)
		client_touch(c);	/* its quiet spell starts after its last load */
	client_resume_check(c);
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
	ev_feed_event(c->set->loop, &c->wio, EV_WRITE);
}

/* Over the cap: its replies hold max_reply_bytes, or its buffers waiting to be
 * handed over and its running loads (each a DONE to come) reach max_queued. */
static bool client_over_cap(const struct client *c)
{
	const struct config *cfg = c->set->cfg;

	return c->out_bytes >= cfg->max_reply_bytes ||
	       (c->out_fds && c->out_fds + c->n_jobs >= cfg->max_queued);
}

/* Stops reading requests of a client over its cap. */
static void client_pause_check(struct client *c)
{
	if (c->paused || c->closed || !client_over_cap(c))
		return;
	c->paused = true;
	ev_io_stop(c->set->loop, &c->rio);
	log_debug("conn %llu: %zu bytes and %u buffers of replies unread: not reading its "
		  "requests until it reads them", (unsigned long long)c->conn_id,
		  c->out_bytes, c->out_fds);
}

/* Reads its requests again once it has read half of its replies' bytes and its fds
 * are under the cap. */
static void client_resume_check(struct client *c)
{
	const struct config *cfg = c->set->cfg;

	if (!c->paused || c->closed || c->out_bytes >= cfg->max_reply_bytes / 2 ||
	    (c->out_fds && c->out_fds + c->n_jobs >= cfg->max_queued))
		return;
	c->paused = false;
	if (!c->held)
		ev_io_start(c->set->loop, &c->rio);
	log_debug("conn %llu: reading its requests again", (unsigned long long)c->conn_id);
}

/* Sends queued messages in order until the socket is full. Returns 0 or -errno. */
static int client_flush(struct client *c)
{
	while (c->out_head) {
		struct out_msg *m = c->out_head;
		int r = dl_send(c->fd, m->buf, m->len, &m->fd, m->fd >= 0 ? 1 : 0);

		if (r == -EAGAIN) {
			ev_io_start(c->set->loop, &c->wio);
			return 0;
		}
		if (r < 0)
			return r;
		c->out_head = m->next;
		if (!c->out_head)
			c->out_tail = NULL;
		c->out_bytes -= m->len;
		if (m->fd >= 0) {
			close(m->fd);
			c->out_fds--;
		}
		free(m);
		client_resume_check(c);
	}
	ev_io_stop(c->set->loop, &c->wio);
	client_touch(c);		/* or after its last reply went out */
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
	/* Reading stopped at the cap; what still comes answers loads started before. */
	if (c->out_bytes + len > 2 * c->set->cfg->max_reply_bytes ||
	    c->out_fds + (fd_to_pass >= 0) > 2 * c->set->cfg->max_queued) {
		log_warn("conn %llu (uid %u, pid %d): %zu bytes and %u buffers of replies "
			 "unread, past twice the cap (max_reply_bytes %llu, max_queued %u): "
			 "closing", (unsigned long long)c->conn_id, c->cred.uid,
			 (int)c->cred.pid, c->out_bytes + len, c->out_fds + (fd_to_pass >= 0),
			 (unsigned long long)c->set->cfg->max_reply_bytes,
			 c->set->cfg->max_queued);
		client_break(c, -ENOBUFS);
		return;
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
	c->out_bytes += len;
	c->out_fds += m->fd >= 0;
	ev_io_start(c->set->loop, &c->wio);
	client_pause_check(c);
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
	if (err != ESHUTDOWN)
		client_failed(c);
}

void client_send_plain(struct client *c, uint16_t type, uint64_t id, const void *p,
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
	client_send_plain(owner_client(j), DL_ACCEPTED, j->id, a, sizeof(*a));
}

/* A hint: a client with replies waiting would only read it late, so it is dropped
 * rather than queued (the next one, or DONE, tells more). */
static void owner_progress(struct job *j, const struct dl_progress *p)
{
	struct client *c = owner_client(j);

	if (!c->out_head)
		client_send_plain(c, DL_PROGRESS, j->id, p, sizeof(*p));
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

/* A load that is not detached has nobody to go to once the peer hung up. A closed
 * client's loads were dealt with at its close (those left are detached, or read for
 * others), and the daemon's own have no peer. */
static bool owner_hung_up(struct job *j)
{
	struct client *c = owner_client(j);

	if (c->local || c->closed || (j->req.flags & DL_LOAD_DETACH) ||
	    !client_peer_gone(c))
		return false;
	client_failed(c);		/* it ends now, for nothing */
	return true;
}

static void owner_released(struct job *j)
{
	struct client *c = owner_client(j);

	if ((j->req.flags & DL_LOAD_DETACH) && !c->local)
		c->set->n_detached--;
	client_job_gone(c, j);
}

static const struct job_owner_ops client_owner_ops = {
	.accepted = owner_accepted,
	.progress = owner_progress,
	.done = owner_done,
	.failed = owner_failed,
	.released = owner_released,
	.hung_up = owner_hung_up,
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
	sched_owner_init(&c->set->eng->sched, &c->so);
	sched_owner_limits(&c->so, c->name, &c->cred, c->conn_id, NULL);
}

/* Up to a whole datagram: too big for the stack of a handler that also builds the
 * entries. */
void client_send_trail(struct client *c, uint16_t type, uint64_t id, const void *p,
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

/* Whether @c's peer has closed its end; asked once per loop iteration at most. */
static bool client_peer_gone(struct client *c)
{
	struct pollfd pfd = { .fd = c->fd, .events = POLLIN | POLLRDHUP };
	ev_tstamp now = ev_now(c->set->loop);

	if (c->closed)
		return true;
	if (c->hup_asked != now) {
		c->hup_asked = now;
		c->hung_up = poll(&pfd, 1, 0) == 1 && (pfd.revents & (POLLHUP | POLLRDHUP));
	}
	return c->hung_up;
}

/*
 * Whether @m is a load nobody will take: its connection has hung up (a closed
 * SOCK_SEQPACKET peer shows POLLHUP at once, while its last datagrams still wait to
 * be read), so its DONE would go nowhere and the load would only be cancelled at the
 * end of stream that follows. Such a load is dropped before it costs a job and a
 * worker's open: a client that connects, asks and dies in a loop costs the daemon
 * an accept and a read. A detached load (DL_LOAD_DETACH) is meant to outlive its
 * connection and is served. Its loads ask again before their next step (job.c).
 */
static bool client_hung_up_load(struct client *c, const struct dl_msg *m)
{
	if (m->hdr.type != DL_LOAD && m->hdr.type != DL_LOAD_EXTENTS)
		return false;
	if ((m->u.load.flags & DL_LOAD_DETACH) || !client_peer_gone(c))
		return false;
	client_failed(c);
	return true;
}

void client_drop_fds(struct client *c, const int *fds, int nfds)
{
	worker_close_files(c->set->eng->pool, fds, nfds, c->cred.uid);
}

/* dl_recv_drop's: the fds of a datagram it refused. */
static void drop_fd(void *data, int fd)
{
	client_drop_fds(data, &fd, 1);
}

static bool client_dispatch(struct client *c, const char *buf, size_t len, int *fds,
			    int nfds)
{
	struct dl_msg m;
	int r = dl_msg_decode(buf, len, nfds, &m);

	if (r == -EBADMSG || r == -EPROTONOSUPPORT) {
		client_send_error(c, m.hdr.id, -r, r == -EBADMSG ?
				  "malformed message: closing the connection" :
				  "unsupported protocol version: this daemon speaks version 1");
		log_info("conn %llu: %s: closing", (unsigned long long)c->conn_id,
			 strerror(-r));
		client_drop_fds(c, fds, nfds);
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
		client_drop_fds(c, fds, nfds);
		return !c->closed;
	}

	if (client_hung_up_load(c, &m)) {
		client_drop_fds(c, fds, nfds);
		return true;		/* the end of stream that follows closes it */
	}
	/* The request handlers (handlers.c) take the fds, if any. */
	client_touch(c);
	c->set->dispatch(c, &m, fds, nfds);
	return !c->closed;
}

static void client_read_batch(struct client *c)
{
	char *buf = c->set->rbuf;

	for (int i = 0; i < RECV_BATCH && !c->closed && !c->broken && !c->paused; i++) {
		int fds[DL_MAX_FDS], nfds = 0;
		ssize_t n;

		if (client_hold(c))
			return;
		n = dl_recv_drop(c->fd, buf, DL_MSG_MAX, fds, DL_MAX_FDS, &nfds,
				 drop_fd, c);

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
			client_drop_fds(c, fds, nfds);
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

int client_new(struct client **out, struct client_set *set, int fd)
{
	struct client *c = calloc(1, sizeof(*c));
	int r;

	/* Closes of a socket that may hold a client's fds: on a worker (server.c's
	 * refuse()). */
	if (!c) {
		worker_close(set->eng->pool, fd);
		return -ENOMEM;
	}
	r = cred_from_socket(&c->cred, fd);
	if (r < 0) {
		cred_deinit(&c->cred);
		worker_close(set->eng->pool, fd);
		free(c);
		return r;
	}
	c->set = set;
	c->fd = fd;
	c->conn_id = ++set->next_conn_id;
	list_init(&c->jobs);
	client_owner_init(c);
	ev_io_init(&c->rio, on_readable, fd, EV_READ);
	ev_io_init(&c->wio, on_writable, fd, EV_WRITE);
	ev_timer_init(&c->idle_timer, on_idle_timer, 0, 0);
	ev_timer_init(&c->hold_timer, on_hold_timer, 0, 0);
	c->hold_timer.data = c;
	c->rio.data = c;
	c->wio.data = c;
	c->idle_timer.data = c;
	ev_io_start(set->loop, &c->rio);
	client_idle_arm(c);
	list_add_tail(&set->clients, &c->link);
	set->n_clients++;
	log_debug("conn %llu: pid %d uid %u gid %u", (unsigned long long)c->conn_id,
		  (int)c->cred.pid, c->cred.uid, c->cred.gid);
	*out = c;
	return 0;
}

int client_set_admit(const struct client_set *set, uid_t uid, char *msg, size_t len)
{
	const struct config *cfg = set->cfg;
	unsigned reserve = cfg->max_clients / 8, share = config_clients_per_uid(cfg), n = 0;
	struct list *pos;

	if (set->n_clients >= cfg->max_clients) {
		snprintf(msg, len, "too many clients (max_clients = %u); try again later",
			 cfg->max_clients);
		return -EAGAIN;
	}
	if (uid == 0 || uid == geteuid())
		return 0;
	if (set->n_clients >= cfg->max_clients - reserve) {
		snprintf(msg, len, "too many clients (max_clients = %u, of which %u are "
			 "kept for root); try again later", cfg->max_clients, reserve);
		return -EAGAIN;
	}
	/* A walk: max_clients bounds it, and it runs once per accepted connection. */
	for (pos = set->clients.next; pos != &set->clients; pos = pos->next)
		if (list_entry(pos, struct client, link)->cred.uid == uid)
			n++;
	if (n >= share) {
		snprintf(msg, len, "too many connections of uid %u (max_clients_per_uid = "
			 "%u); close some or try again later", (unsigned)uid, share);
		return -EAGAIN;
	}
	return 0;
}

void client_set_init(struct client_set *set, struct ev_loop *loop, const struct config *cfg,
		     struct engine *eng)
{
	memset(set, 0, sizeof(*set));
	set->loop = loop;
	set->cfg = cfg;
	set->eng = eng;
	set->started_ns = now_ns();
	list_init(&set->clients);
	list_init(&set->lingering);
}

/* Every running load of @c hears why before its connection closes. */
static void client_fail_all(struct client *c, int err, const char *msg)
{
	struct list *pos, *tmp;

	c->busy++;
	list_for_each_safe(pos, tmp, &c->jobs)
		job_fail(list_entry(pos, struct job, owner_link), err, "%s", msg);
	c->busy--;
}

void client_set_stop(struct client_set *set)
{
	struct list *pos, *tmp;

	set->stopping = true;
	list_for_each_safe(pos, tmp, &set->clients) {
		struct client *c = list_entry(pos, struct client, link);

		client_fail_all(c, -ESHUTDOWN, "the daemon is stopping");
		client_close(c);
	}
	/* Preloads without a connection are cancelled too. */
	list_for_each_safe(pos, tmp, &set->lingering) {
		struct client *c = list_entry(pos, struct client, link);

		client_fail_all(c, -ESHUTDOWN, "the daemon is stopping");
		client_maybe_free(c);
	}
}

void client_set_limits(struct client_set *set)
{
	struct list *pos, *tmp;

	list_for_each_safe(pos, tmp, &set->clients) {
		struct client *c = list_entry(pos, struct client, link);

		sched_owner_limits(&c->so, c->name, &c->cred, c->conn_id, "reload");
		client_idle_arm(c);
	}
}
