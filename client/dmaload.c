/*
 * dmaload.c: libdmaload, one struct dmaload per connection to dmaloadd.
 *
 * A connection owns its SOCK_SEQPACKET socket, a receive buffer of DL_MSG_MAX bytes,
 * the id counter for its requests and a FIFO of events that arrived while the caller
 * was waiting for something else (dmaload_wait() for another id, dmaload_status()).
 * The FIFO owns the buffer fds of the DONE events in it until they are handed out;
 * dmaload_close() closes the ones never handed out.
 *
 * Invariants: every request id is used once, in order, starting at 1 (the HELLO);
 * events are handed out in the order they arrived, except that dmaload_wait() pulls
 * its own id's events out of order. Once the daemon hangs up or breaks the protocol,
 * dl->broken holds the reason and every later read or send returns it, after the
 * events already queued have been handed out. The blocking calls wait at most
 * dl->timeout_ms for each message (an idle timeout: a load that sends PROGRESS is
 * never cut short). Nothing here keeps global state except
 * the static buffer behind dmaload_default_socket().
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "dmaload-proto.h"
#include "dmaload.h"

#define DMALOAD_SYSTEM_SOCKET	"/run/dmaloadd/dmaloadd.sock"

struct queued_event {
	struct queued_event *next;
	struct dmaload_event ev;
};

struct dmaload {
	int fd;				/* the socket, -1 once closed */
	uint64_t next_id;		/* id of the next request */
	int broken;			/* 0, or the -errno that ended the connection */
	uint32_t version, caps;		/* from HELLO_REPLY */
	uint64_t max_load_size;
	int timeout_ms;			/* idle timeout of blocking calls, -1: none */
	struct queued_event *head;	/* events not handed out yet, oldest first */
	struct queued_event **tail;	/* &last->next, or &head when empty */
	char buf[DL_MSG_MAX];		/* one received datagram; dl_msg points into it */
};

static int64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* A deadline for @timeout_ms from now; -1 stands for "never". */
static int64_t deadline_after(int timeout_ms)
{
	if (timeout_ms < 0)
		return -1;
	return now_ns() + (int64_t)timeout_ms * 1000000;
}

/* The deadline of a blocking call's next message: the connection's idle timeout. */
static int64_t idle_deadline(const struct dmaload *dl)
{
	return deadline_after(dl->timeout_ms);
}

/*
 * Waits until the socket is readable or @deadline passes. Returns 1, 0 on timeout, or
 * -errno. A signal only shortens the wait: poll() is restarted for what is left.
 */
static int wait_readable(int fd, int64_t deadline)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	int timeout, r;

	for (;;) {
		if (deadline < 0) {
			timeout = -1;
		} else {
			int64_t left = deadline - now_ns();

			if (left < 0)
				left = 0;
			/* round up, so a 1 ns remainder does not spin with timeout 0 */
			left = (left + 999999) / 1000000;
			timeout = left > INT_MAX ? INT_MAX : (int)left;
		}
		r = poll(&p, 1, timeout);
		if (r > 0)
			return 1;	/* POLLHUP / POLLERR too: the recv reports it */
		if (r == 0) {
			if (deadline < 0 || now_ns() >= deadline)
				return 0;
			continue;
		}
		if (errno != EINTR)
			return -errno;
	}
}

/* Records why the connection ended (the first reason wins) and returns it. */
static int conn_break(struct dmaload *dl, int err)
{
	if (!dl->broken)
		dl->broken = err;
	return dl->broken;
}

static void close_fds(const int *fds, int nfds)
{
	for (int i = 0; i < nfds; i++)
		close(fds[i]);
}

/*
 * Receives and decodes one message from the daemon into @m; @m points into dl->buf
 * until the next call. *@fd is the fd it carried (owned by the caller), or -1.
 * Returns 1, 0 when @deadline passed first, or -errno with the connection broken.
 * Messages of types this library does not know are skipped: a newer daemon may
 * announce things an older client can ignore. Requests (types below 0x80) coming
 * from the daemon are malformed.
 */
static int conn_read(struct dmaload *dl, int64_t deadline, struct dl_msg *m, int *fd)
{
	int fds[DL_MAX_FDS];
	int nfds, r;
	ssize_t n;

	*fd = -1;
	for (;;) {
		if (dl->broken < 0)
			return dl->broken;
		r = wait_readable(dl->fd, deadline);
		if (r <= 0)
			return r;
		n = dl_recv(dl->fd, dl->buf, sizeof(dl->buf), fds, DL_MAX_FDS, &nfds);
		if (n == -EAGAIN)
			continue;
		if (n == -EMSGSIZE || n == -EBADMSG)
			return conn_break(dl, -EBADMSG);
		if (n < 0)
			return conn_break(dl, (int)n);
		if (n == 0)
			return conn_break(dl, -ECONNRESET);

		r = dl_msg_decode(dl->buf, (size_t)n, nfds, m);
		if (r == -EOPNOTSUPP) {
			close_fds(fds, nfds);
			continue;
		}
		if (r == 0 && m->hdr.type < 0x80)
			r = -EBADMSG;
		if (r < 0) {
			close_fds(fds, nfds);
			return conn_break(dl, r == -EPROTONOSUPPORT ? r : -EBADMSG);
		}
		if (nfds > 0)
			*fd = fds[0];
		return 1;
	}
}

/*
 * Turns a decoded ACCEPTED, PROGRESS, DONE, ERROR or OK into an event; consumes @fd
 * into ev->fd. Returns 0, or -EBADMSG for the replies that are not events (they
 * answer requests that wait for them: HELLO and STATUS).
 */
static int event_from_msg(struct dmaload_event *ev, const struct dl_msg *m, int fd)
{
	memset(ev, 0, sizeof(*ev));
	ev->id = m->hdr.id;
	ev->fd = -1;
	switch (m->hdr.type) {
	case DL_ACCEPTED:
		ev->type = DMALOAD_EV_ACCEPTED;
		ev->size = m->u.accepted.length;
		ev->file_size = m->u.accepted.file_size;
		/* so that an on_progress callback can treat it as "0 of total" */
		ev->done = 0;
		ev->total = m->u.accepted.length;
		return 0;
	case DL_PROGRESS:
		ev->type = DMALOAD_EV_PROGRESS;
		ev->done = m->u.progress.done;
		ev->total = m->u.progress.total;
		return 0;
	case DL_DONE:
		ev->type = DMALOAD_EV_DONE;
		ev->fd = fd;
		ev->size = m->u.done.size;
		ev->buf_size = m->u.done.buf_size;
		ev->elapsed_ns = m->u.done.elapsed_ns;
		ev->method = m->u.done.method;
		ev->target = m->u.done.target;
		ev->reason = m->u.done.reason;
		ev->done_flags = m->u.done.flags;
		return 0;
	case DL_ERROR:
		ev->type = DMALOAD_EV_ERROR;
		/* an ERROR that says "errno 0" would read as success to a caller */
		ev->err = m->u.error.err > 0 ? m->u.error.err : EPROTO;
		memcpy(ev->message, m->trail, m->trail_len);
		ev->message[m->trail_len] = '\0';
		return 0;
	case DL_OK:
		ev->type = DMALOAD_EV_OK;
		return 0;
	default:
		return -EBADMSG;
	}
}

/* Reads the next message, which must be an event. Same returns as conn_read(). */
static int conn_read_event(struct dmaload *dl, int64_t deadline, struct dmaload_event *ev)
{
	struct dl_msg m;
	int fd, r;

	r = conn_read(dl, deadline, &m, &fd);
	if (r <= 0)
		return r;
	if (event_from_msg(ev, &m, fd) < 0) {
		if (fd >= 0)
			close(fd);
		return conn_break(dl, -EBADMSG);
	}
	return 1;
}

static bool event_is_final(const struct dmaload_event *ev)
{
	return ev->type == DMALOAD_EV_DONE || ev->type == DMALOAD_EV_ERROR ||
	       ev->type == DMALOAD_EV_OK;
}

/* Appends a copy of @ev to the FIFO, which then owns its fd. On -ENOMEM the event is
 * lost, its fd closed, and the connection marked broken: a caller waiting for it
 * would wait forever otherwise. */
static int queue_push(struct dmaload *dl, const struct dmaload_event *ev)
{
	struct queued_event *q = malloc(sizeof(*q));

	if (!q) {
		if (ev->fd >= 0)
			close(ev->fd);
		return conn_break(dl, -ENOMEM);
	}
	q->next = NULL;
	q->ev = *ev;
	*dl->tail = q;
	dl->tail = &q->next;
	return 0;
}

/* Unlinks the event *@pp points at, moves it to @ev (fd included) and frees it. */
static void queue_take(struct dmaload *dl, struct queued_event **pp,
		       struct dmaload_event *ev)
{
	struct queued_event *q = *pp;

	*pp = q->next;
	if (dl->tail == &q->next)
		dl->tail = pp;
	*ev = q->ev;
	free(q);
}

/* The link pointing at the oldest queued event of request @id, or NULL. */
static struct queued_event **queue_find(struct dmaload *dl, uint64_t id)
{
	for (struct queued_event **pp = &dl->head; *pp; pp = &(*pp)->next)
		if ((*pp)->ev.id == id)
			return pp;
	return NULL;
}

/* Encodes and sends one request with a fresh id; borrows @fds. */
static int conn_request(struct dmaload *dl, uint16_t type, const void *payload,
			size_t payload_len, const void *trail, size_t trail_len,
			const int *fds, int nfds, uint64_t *id)
{
	char small[sizeof(struct dl_hdr) + sizeof(struct dl_load) + DL_PATH_MAX +
		   DL_HEAP_NAME_MAX];
	char *buf = small;
	size_t cap = sizeof(small);
	ssize_t len;
	int r;

	if (dl->broken < 0)
		return dl->broken;
	/* A LOAD_EXTENTS with its extents inline may fill a whole datagram. */
	if (sizeof(struct dl_hdr) + payload_len + trail_len > cap) {
		cap = DL_MSG_MAX;
		buf = malloc(cap);
		if (!buf)
			return -ENOMEM;
	}
	len = dl_encode(buf, cap, type, dl->next_id, payload, payload_len,
			trail, trail_len);
	if (len < 0) {
		if (buf != small)
			free(buf);
		return (int)len;
	}
	r = dl_send(dl->fd, buf, (size_t)len, fds, nfds);
	if (buf != small)
		free(buf);
	if (r == -EPIPE || r == -ECONNRESET || r == -ENOTCONN)
		return conn_break(dl, -ECONNRESET);
	if (r < 0)
		return r;
	if (id)
		*id = dl->next_id;
	dl->next_id++;
	return 0;
}

const char *dmaload_default_socket(void)
{
	static char path[sizeof(((struct sockaddr_un *)0)->sun_path) + 64];
	const char *env = getenv("DMALOAD_SOCKET");
	struct stat st;
	int n;

	if (env && *env)
		return env;
	if (geteuid() == 0)
		return DMALOAD_SYSTEM_SOCKET;
	env = getenv("XDG_RUNTIME_DIR");
	if (!env || !*env)
		return DMALOAD_SYSTEM_SOCKET;
	n = snprintf(path, sizeof(path), "%s/dmaloadd.sock", env);
	if (n < 0 || (size_t)n >= sizeof(path))
		return DMALOAD_SYSTEM_SOCKET;
	/* No daemon of the user's own: the system's serves every user (issue 14). */
	if (stat(path, &st) < 0)
		return DMALOAD_SYSTEM_SOCKET;
	return path;
}

/* A refusal of the connection or of its HELLO: the daemon's errno, its text into
 * @errmsg (@errlen bytes, may be 0). Consumes @fd. */
static int hello_refused(struct dmaload *dl, const struct dl_msg *m, int fd, char *errmsg,
			 size_t errlen)
{
	struct dmaload_event ev;

	event_from_msg(&ev, m, fd);
	if (errlen)
		snprintf(errmsg, errlen, "%s", ev.message);
	return conn_break(dl, -ev.err);
}

/*
 * The connection ended (@err) before the HELLO's reply: a daemon that refuses a
 * connection (too many clients, out of fds) answers with an ERROR of request id 0 and
 * closes it, maybe before our HELLO went out (the send fails) or with the HELLO unread
 * (the kernel then reports ECONNRESET on the first read, before the ERROR that still
 * waits in our socket). Looks for that ERROR without waiting; returns its -errno, or
 * @err.
 */
static int hello_lost(struct dmaload *dl, uint64_t id, int err, char *errmsg, size_t errlen)
{
	struct dl_msg m;
	int fd, r;

	for (int tries = 0; tries < 2; tries++) {
		dl->broken = 0;
		r = conn_read(dl, now_ns(), &m, &fd);
		if (r > 0 && m.hdr.type == DL_ERROR && (m.hdr.id == 0 || m.hdr.id == id))
			return hello_refused(dl, &m, fd, errmsg, errlen);
		if (r > 0 && fd >= 0)
			close(fd);
		if (r != -ECONNRESET)
			break;
	}
	dl->broken = 0;
	return conn_break(dl, err);
}

/* Says HELLO (request id 1) and waits for its reply. */
static int conn_hello(struct dmaload *dl, const char *name, char *errmsg, size_t errlen)
{
	struct dl_hello hello = { .version = DL_PROTO_VERSION,
				  .caps = DL_CAPS_V1 | DL_CAP_INFO_SURPLUS };
	struct dl_msg m;
	uint64_t id = dl->next_id;
	int fd, r;

	if (!name)
		name = program_invocation_short_name;
	/* NUL-padded, not necessarily NUL-terminated: a 32-byte name fills it all */
	memcpy(hello.name, name, strnlen(name, sizeof(hello.name)));
	r = conn_request(dl, DL_HELLO, &hello, sizeof(hello), NULL, 0, NULL, 0, &id);
	if (r == -ECONNRESET)
		return hello_lost(dl, id, r, errmsg, errlen);
	if (r < 0)
		return r;
	r = conn_read(dl, idle_deadline(dl), &m, &fd);
	if (r == -ECONNRESET)
		return hello_lost(dl, id, r, errmsg, errlen);
	if (r <= 0)
		return r ? r : conn_break(dl, -ETIMEDOUT);
	/* Nothing else is in flight: anything but the answer to the HELLO is wrong. A
	 * refusal ends the connection too, since dmaload_connect() gives it up. */
	if (m.hdr.type == DL_ERROR && (m.hdr.id == 0 || m.hdr.id == id))
		return hello_refused(dl, &m, fd, errmsg, errlen);
	if (m.hdr.id != id || m.hdr.type != DL_HELLO_REPLY) {
		if (fd >= 0)
			close(fd);
		return conn_break(dl, -EBADMSG);
	}
	if (m.u.hello_reply.version < 1)
		return conn_break(dl, -EPROTONOSUPPORT);
	dl->version = m.u.hello_reply.version;
	dl->caps = m.u.hello_reply.caps;
	dl->max_load_size = m.u.hello_reply.max_load_size;
	return 0;
}

int dmaload_connect(struct dmaload **out, const char *socket_path, const char *name)
{
	return dmaload_connect_ex(out, socket_path, name, -1, NULL, 0);
}

int dmaload_connect_ex(struct dmaload **out, const char *socket_path, const char *name,
		       int timeout_ms, char *errmsg, size_t errlen)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct dmaload *dl;
	size_t len;
	int r;

	if (errlen)
		errmsg[0] = '\0';
	if (!socket_path)
		socket_path = dmaload_default_socket();
	len = strlen(socket_path);
	if (len == 0)
		return -EINVAL;
	if (len >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	memcpy(sa.sun_path, socket_path, len);

	dl = calloc(1, sizeof(*dl));
	if (!dl)
		return -ENOMEM;
	dl->next_id = 1;
	dl->timeout_ms = timeout_ms < 0 ? -1 : timeout_ms;
	dl->tail = &dl->head;
	dl->fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (dl->fd < 0) {
		r = -errno;
		goto fail;
	}
	/* A Unix connect that a signal interrupts has not connected: try again. */
	do
		r = connect(dl->fd, (struct sockaddr *)&sa, sizeof(sa));
	while (r < 0 && errno == EINTR);
	if (r < 0) {
		r = -errno;
		goto fail;
	}
	r = conn_hello(dl, name, errmsg, errlen);
	if (r < 0)
		goto fail;
	*out = dl;
	return 0;

fail:
	dmaload_close(dl);
	return r;
}

struct dmaload *dmaload_close(struct dmaload *dl)
{
	struct queued_event *q, *next;

	if (!dl)
		return NULL;
	for (q = dl->head; q; q = next) {
		next = q->next;
		if (q->ev.fd >= 0)
			close(q->ev.fd);
		free(q);
	}
	if (dl->fd >= 0)
		close(dl->fd);
	free(dl);
	return NULL;
}

void dmaload_set_timeout(struct dmaload *dl, int timeout_ms)
{
	dl->timeout_ms = timeout_ms < 0 ? -1 : timeout_ms;
}

int dmaload_fd(const struct dmaload *dl)
{
	return dl->fd;
}

uint32_t dmaload_daemon_caps(const struct dmaload *dl)
{
	return dl->caps;
}

uint32_t dmaload_daemon_version(const struct dmaload *dl)
{
	return dl->version;
}

uint64_t dmaload_max_load_size(const struct dmaload *dl)
{
	return dl->max_load_size;
}

void dmaload_opts_init(struct dmaload_opts *opts)
{
	memset(opts, 0, sizeof(*opts));
	opts->length = DMALOAD_TO_EOF;
}

/* Fills @l from @opts and appends the heap name, if any, to @trail (which holds
 * l->path_len bytes of path and has room for DL_HEAP_NAME_MAX more). Returns the
 * trailing data's length, -EINVAL for a heap target without a valid heap name, or
 * -EOPNOTSUPP for a detached load the daemon does not know. */
static ssize_t load_from_opts(const struct dmaload *dl, struct dl_load *l,
			      const struct dmaload_opts *opts, char *trail, size_t path_len)
{
	struct dmaload_opts defaults;
	size_t hl;

	if (!opts) {
		dmaload_opts_init(&defaults);
		opts = &defaults;
	}
	memset(l, 0, sizeof(*l));
	l->offset = opts->offset;
	l->length = opts->length;
	l->rate_limit = opts->rate_limit;
	l->flags = (opts->progress ? DL_LOAD_PROGRESS : 0) |
		   (opts->exact_size ? DL_LOAD_EXACT_SIZE : 0) |
		   (opts->pin ? DL_LOAD_PIN : 0);
	/* A daemon without dma-bufs would take the flag for a malformed LOAD; without
	 * it, auto gives the memfd such a daemon would pick anyway. */
	if (opts->dmabuf && (dl->caps & DL_CAP_DMABUF))
		l->flags |= DL_LOAD_DMABUF;
	if (opts->detach) {
		if (!(dl->caps & DL_CAP_DETACH))
			return -EOPNOTSUPP;
		l->flags |= DL_LOAD_DETACH;
	}
	l->path_len = (uint32_t)path_len;
	/* Not range-checked here: the daemon answers values it does not know with
	 * ERROR EINVAL, and a newer daemon may know more of them than this library. */
	l->target = opts->target;
	l->method = opts->method;
	l->priority = opts->priority;
	if (opts->target != DL_TARGET_HEAP)
		return (ssize_t)path_len;
	hl = opts->heap ? strlen(opts->heap) : 0;
	if (!dl_heap_name_ok(opts->heap ? opts->heap : "", hl))
		return -EINVAL;
	memcpy(trail + path_len, opts->heap, hl);
	l->heap_len = (uint32_t)hl;
	return (ssize_t)(path_len + hl);
}

/* Makes @path absolute against our working directory (the daemon takes absolute paths
 * only: it does not know our cwd): *@path points at @abs then. Returns the length, or
 * -errno. */
static ssize_t path_absolute(const char **path, char abs[DL_PATH_MAX + 1])
{
	size_t len = strlen(*path);

	if (len == 0)
		return -EINVAL;
	if ((*path)[0] != '/') {
		size_t cwd_len;

		if (!getcwd(abs, DL_PATH_MAX + 1))
			return errno == ERANGE ? -ENAMETOOLONG : -errno;
		cwd_len = strlen(abs);
		if (cwd_len + 1 + len > DL_PATH_MAX)
			return -ENAMETOOLONG;
		if (abs[cwd_len - 1] != '/')
			abs[cwd_len++] = '/';
		memcpy(abs + cwd_len, *path, len);
		len += cwd_len;
		*path = abs;
	}
	if (len > DL_PATH_MAX)
		return -ENAMETOOLONG;
	return (ssize_t)len;
}

/*
 * The fd number @path spells for this process: /dev/fd/N, /proc/self/fd/N,
 * /proc/thread-self/fd/N, /dev/stdin, /dev/stdout, /dev/stderr, written exactly so;
 * -1 for any other path. The daemon would resolve these in its own process (it
 * refuses procfs), and a reopen would not be this open file description anyway.
 */
static int path_own_fd(const char *path)
{
	static const char *const dirs[] = { "/dev/fd/", "/proc/self/fd/",
					    "/proc/thread-self/fd/" };
	static const char *const std[] = { "/dev/stdin", "/dev/stdout", "/dev/stderr" };
	const char *p = NULL;
	long n = 0;

	for (size_t i = 0; i < sizeof(std) / sizeof(std[0]); i++)
		if (strcmp(path, std[i]) == 0)
			return (int)i;
	for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]) && !p; i++)
		if (strncmp(path, dirs[i], strlen(dirs[i])) == 0)
			p = path + strlen(dirs[i]);
	if (!p || *p == '\0')
		return -1;
	for (; *p; p++) {
		if (*p < '0' || *p > '9')
			return -1;
		n = n * 10 + (*p - '0');
		if (n > INT_MAX)
			return -1;
	}
	return (int)n;
}

int dmaload_load_path(struct dmaload *dl, const char *path,
		      const struct dmaload_opts *opts, uint64_t *id)
{
	/* the path, then the heap name if any */
	char abs[DL_PATH_MAX + DL_HEAP_NAME_MAX + 1];
	struct dl_load l;
	ssize_t n = path_absolute(&path, abs), tl;
	int root, r, own = path_own_fd(path);

	/* Our own fd: loaded as that very fd (its offset and flags untouched). */
	if (own >= 0)
		return dmaload_load_fd(dl, own, opts, id);
	if (n < 0)
		return (int)n;
	if (path != abs)
		memcpy(abs, path, (size_t)n);
	tl = load_from_opts(dl, &l, opts, abs, (size_t)n);
	if (tl < 0)
		return (int)tl;
	/* Our root directory goes along, so the daemon walks the path from what "/" is
	 * for us (a container's, a chroot's) whatever it may see of our process. */
	root = (dl->caps & DL_CAP_ROOT_FD) ? open("/", O_PATH | O_DIRECTORY | O_CLOEXEC) : -1;
	if (root >= 0)
		l.flags |= DL_LOAD_ROOT_FD;
	r = conn_request(dl, DL_LOAD, &l, sizeof(l), abs, (size_t)tl, &root, root >= 0,
			 id);
	if (root >= 0)
		close(root);
	return r;
}

int dmaload_load_fd(struct dmaload *dl, int fd, const struct dmaload_opts *opts,
		    uint64_t *id)
{
	char heap[DL_HEAP_NAME_MAX];
	struct dl_load l;
	ssize_t tl;

	if (fd < 0)
		return -EBADF;
	if (!(dl->caps & DL_CAP_LOAD_FD))
		return -EOPNOTSUPP;
	tl = load_from_opts(dl, &l, opts, heap, 0);
	if (tl < 0)
		return (int)tl;
	l.flags |= DL_LOAD_BY_FD;
	return conn_request(dl, DL_LOAD, &l, sizeof(l), heap, (size_t)tl, &fd, 1, id);
}

/* ---- extents, and loads into the caller's buffer --------------------------------- */

_Static_assert(sizeof(struct dmaload_extent) == sizeof(struct dl_extent) &&
	       offsetof(struct dmaload_extent, buf_offset) ==
	       offsetof(struct dl_extent, buf_offset), "dmaload_extent is dl_extent");

/* A sealed memfd holding @n extents: lists too long for one datagram go this way. */
static int extents_memfd(const struct dmaload_extent *ext, size_t n)
{
	size_t bytes = n * sizeof(*ext), done = 0;
	int fd = memfd_create("dmaload-extents", MFD_CLOEXEC | MFD_ALLOW_SEALING), err;

	if (fd < 0)
		return -errno;
	while (done < bytes) {
		ssize_t w = write(fd, (const char *)ext + done, bytes - done);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			goto fail;
		done += (size_t)w;
	}
	if (fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE) < 0)
		goto fail;
	return fd;
fail:
	err = errno ? errno : EIO;
	close(fd);
	return -err;
}

/*
 * Sends a LOAD_EXTENTS: the source is @path (made absolute, or one of our own fds as
 * dmaload_load_path() does) or, with @path NULL, @src_fd (borrowed); @buf_fd >= 0 is
 * the caller's buffer (borrowed).
 */
static int load_extents(struct dmaload *dl, const char *path, int src_fd,
			const struct dmaload_extent *ext, size_t n_ext, int buf_fd,
			const struct dmaload_opts *opts, uint64_t *id)
{
	char abs[DL_PATH_MAX + 1];
	struct dl_load_ext x;
	size_t path_len = 0, ext_bytes = n_ext * sizeof(*ext), inline_max;
	ssize_t tl;
	char *trail;
	int fds[DL_MAX_FDS], nfds = 0, root = -1, list = -1, r;

	if (!(dl->caps & DL_CAP_EXTENTS) || (buf_fd >= 0 && !(dl->caps & DL_CAP_LOAD_INTO)))
		return -EOPNOTSUPP;
	if (!ext || n_ext == 0 || n_ext > DMALOAD_MAX_EXTENTS ||
	    dl_extents_check(ext, n_ext) < 0)
		return -EINVAL;
	if (opts && opts->detach)
		return -EINVAL;		/* a preload goes into the cache, not a list */
	if (buf_fd >= 0 && opts && opts->target != DL_TARGET_AUTO)
		return -EINVAL;		/* the caller's buffer is what it is */
	if (path) {
		int own = path_own_fd(path);
		ssize_t n;

		if (own >= 0) {
			src_fd = own;
			path = NULL;
		} else {
			n = path_absolute(&path, abs);
			if (n < 0)
				return (int)n;
			path_len = (size_t)n;
		}
	} else if (src_fd < 0) {
		return -EBADF;
	}
	if (!path && !(dl->caps & DL_CAP_LOAD_FD))
		return -EOPNOTSUPP;
	trail = malloc(DL_MSG_MAX);
	if (!trail)
		return -ENOMEM;
	if (path)
		memcpy(trail, path, path_len);
	memset(&x, 0, sizeof(x));
	tl = load_from_opts(dl, &x.load, opts, trail, path_len);
	if (tl < 0) {
		free(trail);
		return (int)tl;
	}
	x.load.offset = 0;
	x.load.length = 0;
	x.n_extents = (uint32_t)n_ext;
	if (buf_fd >= 0) {
		x.load.flags &= ~(uint32_t)DL_LOAD_DMABUF;
		x.ext_flags |= DL_EXT_INTO;
	}
	if (path) {
		root = (dl->caps & DL_CAP_ROOT_FD) ?
		       open("/", O_PATH | O_DIRECTORY | O_CLOEXEC) : -1;
		if (root >= 0) {
			x.load.flags |= DL_LOAD_ROOT_FD;
			fds[nfds++] = root;
		}
	} else {
		x.load.flags |= DL_LOAD_BY_FD;
		fds[nfds++] = src_fd;
	}
	if (buf_fd >= 0)
		fds[nfds++] = buf_fd;
	/* Inline when the whole request fits one datagram, else in a sealed memfd. */
	inline_max = DL_MSG_MAX - sizeof(struct dl_hdr) - sizeof(x) - (size_t)tl;
	if (ext_bytes <= inline_max) {
		memcpy(trail + tl, ext, ext_bytes);
		tl += (ssize_t)ext_bytes;
	} else {
		list = extents_memfd(ext, n_ext);
		if (list < 0) {
			r = list;
			goto out;
		}
		x.ext_flags |= DL_EXT_LIST_MEMFD;
		fds[nfds++] = list;
	}
	r = conn_request(dl, DL_LOAD_EXTENTS, &x, sizeof(x), trail, (size_t)tl, fds, nfds,
			 id);
out:
	if (root >= 0)
		close(root);
	if (list >= 0)
		close(list);
	free(trail);
	return r;
}

int dmaload_load_extents_path(struct dmaload *dl, const char *path,
			      const struct dmaload_extent *ext, size_t n_ext,
			      int buf_fd, const struct dmaload_opts *opts, uint64_t *id)
{
	if (!path)
		return -EINVAL;
	return load_extents(dl, path, -1, ext, n_ext, buf_fd, opts, id);
}

int dmaload_load_extents_fd(struct dmaload *dl, int src_fd,
			    const struct dmaload_extent *ext, size_t n_ext,
			    int buf_fd, const struct dmaload_opts *opts, uint64_t *id)
{
	return load_extents(dl, NULL, src_fd, ext, n_ext, buf_fd, opts, id);
}

/* The one extent of a load into: the range of @opts at @buf_offset. */
static struct dmaload_extent into_extent(const struct dmaload_opts *opts,
					 uint64_t buf_offset)
{
	return (struct dmaload_extent){
		.file_offset = opts ? opts->offset : 0,
		.length = opts ? opts->length : DMALOAD_TO_EOF,
		.buf_offset = buf_offset,
	};
}

int dmaload_load_into_path(struct dmaload *dl, const char *path, int buf_fd,
			   uint64_t buf_offset, const struct dmaload_opts *opts,
			   uint64_t *id)
{
	struct dmaload_extent e = into_extent(opts, buf_offset);

	if (!path)
		return -EINVAL;
	if (buf_fd < 0)
		return -EBADF;
	return load_extents(dl, path, -1, &e, 1, buf_fd, opts, id);
}

int dmaload_load_into_fd(struct dmaload *dl, int src_fd, int buf_fd,
			 uint64_t buf_offset, const struct dmaload_opts *opts,
			 uint64_t *id)
{
	struct dmaload_extent e = into_extent(opts, buf_offset);

	if (buf_fd < 0)
		return -EBADF;
	return load_extents(dl, NULL, src_fd, &e, 1, buf_fd, opts, id);
}

int dmaload_cancel(struct dmaload *dl, uint64_t load_id, uint64_t *id)
{
	struct dl_cancel c = { .load_id = load_id };

	return conn_request(dl, DL_CANCEL, &c, sizeof(c), NULL, 0, NULL, 0, id);
}

int dmaload_next_event(struct dmaload *dl, struct dmaload_event *ev, int timeout_ms)
{
	if (dl->head) {
		queue_take(dl, &dl->head, ev);
		return 1;
	}
	return conn_read_event(dl, deadline_after(timeout_ms), ev);
}

int dmaload_wait(struct dmaload *dl, uint64_t id, struct dmaload_event *ev,
		 void (*on_progress)(const struct dmaload_event *ev, void *data),
		 void *data)
{
	struct queued_event **pp;
	struct dmaload_event e;
	int r;

	/* an id never sent would be waited for forever */
	if (id == 0 || id >= dl->next_id)
		return -EINVAL;

	/* Events of @id queued earlier come first, oldest first. The queue is searched
	 * again after each callback, which may itself have used the connection. */
	while ((pp = queue_find(dl, id))) {
		queue_take(dl, pp, &e);
		if (event_is_final(&e)) {
			*ev = e;
			return 0;
		}
		if (on_progress)
			on_progress(&e, data);
	}

	for (;;) {
		/* Idle: each message, of any request, starts the timeout again. The
		 * connection stays usable; the final event may still come later. */
		r = conn_read_event(dl, idle_deadline(dl), &e);
		if (r <= 0)
			return r ? r : -ETIMEDOUT;
		if (e.id != id) {
			r = queue_push(dl, &e);
			if (r < 0)
				return r;
			continue;
		}
		if (event_is_final(&e)) {
			*ev = e;
			return 0;
		}
		if (on_progress)
			on_progress(&e, data);
	}
}

/* The second half of every *_sync call: @started is what starting load @id
 * returned. Clears @ev, then waits for the load and turns its outcome into a return
 * value. */
static int load_finish(struct dmaload *dl, int started, uint64_t id,
		       struct dmaload_event *ev)
{
	int r;

	memset(ev, 0, sizeof(*ev));
	ev->fd = -1;
	if (started < 0)
		return started;
	r = dmaload_wait(dl, id, ev, NULL, NULL);
	if (r < 0)
		return r;
	if (ev->type == DMALOAD_EV_ERROR)
		return -ev->err;
	if (ev->type != DMALOAD_EV_DONE)
		return conn_break(dl, -EBADMSG);	/* an OK to a LOAD */
	return 0;
}

int dmaload_load_path_sync(struct dmaload *dl, const char *path,
			   const struct dmaload_opts *opts, struct dmaload_event *ev)
{
	uint64_t id = 0;
	int r = dmaload_load_path(dl, path, opts, &id);

	return load_finish(dl, r, id, ev);
}

int dmaload_load_extents_path_sync(struct dmaload *dl, const char *path,
				   const struct dmaload_extent *ext, size_t n_ext,
				   int buf_fd, const struct dmaload_opts *opts,
				   struct dmaload_event *ev)
{
	uint64_t id = 0;
	int r = dmaload_load_extents_path(dl, path, ext, n_ext, buf_fd, opts, &id);

	return load_finish(dl, r, id, ev);
}

int dmaload_load_extents_fd_sync(struct dmaload *dl, int src_fd,
				 const struct dmaload_extent *ext, size_t n_ext,
				 int buf_fd, const struct dmaload_opts *opts,
				 struct dmaload_event *ev)
{
	uint64_t id = 0;
	int r = dmaload_load_extents_fd(dl, src_fd, ext, n_ext, buf_fd, opts, &id);

	return load_finish(dl, r, id, ev);
}

int dmaload_load_fd_sync(struct dmaload *dl, int fd, const struct dmaload_opts *opts,
			 struct dmaload_event *ev)
{
	uint64_t id = 0;
	int r = dmaload_load_fd(dl, fd, opts, &id);

	return load_finish(dl, r, id, ev);
}

/* Copies a STATUS_REPLY into @st; allocates st->loads. */
static int status_fill(struct dmaload_status *st, const struct dl_msg *m)
{
	const struct dl_status_reply *s = &m->u.status;
	struct dl_status_load ent;
	const char *name;
	size_t pos = 0, name_len, i = 0;
	int r;

	st->uptime_ms = s->uptime_ms;
	st->bytes_loaded = s->bytes_loaded;
	st->loads_done = s->loads_done;
	st->loads_failed = s->loads_failed;
	st->clients = s->clients;
	st->loads_active = s->loads_active;
	st->loads_queued = s->loads_queued;
	st->truncated = s->flags & DL_STATUS_TRUNCATED;
	if (s->n_loads == 0)
		return 0;
	st->loads = calloc(s->n_loads, sizeof(*st->loads));
	if (!st->loads)
		return -ENOMEM;
	/* dl_msg_decode() already walked the entries: n_loads of them, well formed */
	while (i < s->n_loads && (r = dl_status_next(m, &pos, &ent, &name, &name_len)) == 1) {
		struct dmaload_status_load *l = &st->loads[i++];

		l->id = ent.id;
		l->done = ent.done;
		l->total = ent.total;
		l->pid = ent.pid;
		l->uid = ent.uid;
		l->state = ent.state;
		l->method = ent.method;
		memcpy(l->name, name, name_len);
		l->name[name_len] = '\0';
	}
	st->n_loads = i;
	return 0;
}

/*
 * Sends request @type and waits for its reply, which must be of @reply_type (into @m,
 * valid until the next read) or an ERROR (returned as -err, its text in @errmsg if
 * not NULL). Events of other requests are queued. Returns 0 or -errno.
 */
static int conn_call(struct dmaload *dl, uint16_t type, const void *payload, size_t plen,
		     const void *trail, size_t tlen, uint16_t reply_type, struct dl_msg *m,
		     char *errmsg, size_t errlen)
{
	struct dmaload_event ev;
	uint64_t id;
	int fd, r;

	r = conn_request(dl, type, payload, plen, trail, tlen, NULL, 0, &id);
	if (r < 0)
		return r;
	for (;;) {
		/* A reply that comes after we gave up would be taken for an event: a
		 * timeout ends the connection. */
		r = conn_read(dl, idle_deadline(dl), m, &fd);
		if (r <= 0)
			return r ? r : conn_break(dl, -ETIMEDOUT);
		if (m->hdr.type == reply_type) {
			if (m->hdr.id != id)
				return conn_break(dl, -EBADMSG);
			return 0;
		}
		if (event_from_msg(&ev, m, fd) < 0) {
			if (fd >= 0)
				close(fd);
			return conn_break(dl, -EBADMSG);
		}
		if (ev.id == id) {
			if (ev.type == DMALOAD_EV_ERROR) {
				if (errmsg)
					snprintf(errmsg, errlen, "%s", ev.message);
				return -ev.err;
			}
			return conn_break(dl, -EBADMSG);
		}
		r = queue_push(dl, &ev);
		if (r < 0)
			return r;
	}
}

int dmaload_status(struct dmaload *dl, struct dmaload_status *st)
{
	struct dl_msg m;
	int r;

	memset(st, 0, sizeof(*st));
	r = conn_call(dl, DL_STATUS, NULL, 0, NULL, 0, DL_STATUS_REPLY, &m, NULL, 0);
	if (r < 0)
		return r;
	return status_fill(st, &m);
}

int dmaload_info(struct dmaload *dl, struct dmaload_info *info)
{
	const char *name;
	struct dl_msg m;
	size_t pos = 0;
	int r;

	memset(info, 0, sizeof(*info));
	if (!(dl->caps & DL_CAP_DMABUF))
		return -EOPNOTSUPP;
	r = conn_call(dl, DL_INFO, NULL, 0, NULL, 0, DL_INFO_REPLY, &m, NULL, 0);
	if (r < 0)
		return r;
	info->caps = m.u.info.caps;
	info->udmabuf_err = m.u.info.udmabuf_err;
	info->udmabuf_size_limit = m.u.info.udmabuf_size_limit;
	info->udmabuf_hugetlb = m.u.info.udmabuf_hugetlb;
	info->huge_page_size = m.u.info.huge_page_size;
	info->huge_pages_total = m.u.info.huge_pages_total;
	info->huge_pages_free = m.u.info.huge_pages_free;
	info->default_target = m.u.info.default_target;
	/* dl_msg_decode() checked the names: valid, NUL-terminated, n_heaps of them */
	while (info->n_heaps < sizeof(info->heaps) / sizeof(info->heaps[0]) &&
	       dl_info_next_heap(&m, &pos, &name) == 1)
		snprintf(info->heaps[info->n_heaps++], sizeof(info->heaps[0]), "%s", name);
	return 0;
}

int dmaload_info_hugepages(struct dmaload *dl, struct dmaload_hugepages *hp)
{
	struct dl_info_surplus sp;
	struct dl_msg m;
	int r;

	memset(hp, 0, sizeof(*hp));
	if (!(dl->caps & DL_CAP_DMABUF) || !(dl->caps & DL_CAP_INFO_SURPLUS))
		return -EOPNOTSUPP;
	r = conn_call(dl, DL_INFO, NULL, 0, NULL, 0, DL_INFO_REPLY, &m, NULL, 0);
	if (r < 0)
		return r;
	/* our HELLO announced DL_CAP_INFO_SURPLUS, so a daemon with the bit sends it */
	if (!dl_info_get_surplus(&m, &sp))
		return -EPROTO;
	hp->page_size = m.u.info.huge_page_size;
	hp->pool_total = m.u.info.huge_pages_total;
	hp->pool_free = m.u.info.huge_pages_free;
	hp->overcommit = sp.overcommit_pages;
	hp->surplus = sp.surplus_pages;
	return 0;
}

void dmaload_status_free(struct dmaload_status *st)
{
	free(st->loads);
	st->loads = NULL;
	st->n_loads = 0;
}

int dmaload_list(struct dmaload *dl, struct dmaload_cache_list *out)
{
	struct dl_list_entry ent;
	struct dl_msg m;
	const char *name;
	size_t pos = 0, name_len, i = 0;
	int r;

	memset(out, 0, sizeof(*out));
	r = conn_call(dl, DL_LIST, NULL, 0, NULL, 0, DL_LIST_REPLY, &m, NULL, 0);
	if (r < 0)
		return r;
	out->cache_bytes = m.u.list.cache_bytes;
	out->cache_limit = m.u.list.cache_limit;
	out->n_hidden = m.u.list.n_hidden;
	out->truncated = m.u.list.flags & DL_LIST_TRUNCATED;
	if (m.u.list.n_entries == 0)
		return 0;
	out->entries = calloc(m.u.list.n_entries, sizeof(*out->entries));
	if (!out->entries)
		return -ENOMEM;
	/* dl_msg_decode() already walked the entries */
	while (i < m.u.list.n_entries &&
	       dl_list_next(&m, &pos, &ent, &name, &name_len) == 1) {
		struct dmaload_cache_entry *e = &out->entries[i++];

		e->offset = ent.offset;
		e->size = ent.size;
		e->buf_size = ent.buf_size;
		e->file_size = ent.file_size;
		e->dev = ent.dev;
		e->ino = ent.ino;
		e->served = ent.served;
		e->hits = ent.hits;
		e->age_ms = ent.age_ms;
		e->idle_ms = ent.idle_ms;
		e->uid = ent.uid;
		e->flags = ent.flags;
		e->method = ent.method;
		memcpy(e->name, name, name_len);
		e->name[name_len] = '\0';
	}
	out->n_entries = i;
	return 0;
}

void dmaload_list_free(struct dmaload_cache_list *l)
{
	free(l->entries);
	l->entries = NULL;
	l->n_entries = 0;
}

int dmaload_evict(struct dmaload *dl, const char *path, uint64_t *bytes)
{
	char abs[DL_PATH_MAX + 1];
	struct dl_evict e = { .flags = path ? 0 : DL_EVICT_ALL };
	struct dl_msg m;
	size_t len = 0;
	int r;

	if (path) {
		ssize_t n = path_absolute(&path, abs);

		if (n < 0)
			return (int)n;
		len = (size_t)n;
		e.path_len = (uint32_t)len;
	}
	r = conn_call(dl, DL_EVICT, &e, sizeof(e), path, len, DL_EVICT_REPLY, &m, NULL, 0);
	if (r < 0)
		return r;
	if (bytes)
		*bytes = m.u.evict_reply.bytes;
	return (int)(m.u.evict_reply.count > INT_MAX ? INT_MAX : m.u.evict_reply.count);
}

int dmaload_stats(struct dmaload *dl, struct dmaload_stats *st)
{
	const struct dl_stats_reply *s;
	struct dl_msg m;
	int r;

	memset(st, 0, sizeof(*st));
	r = conn_call(dl, DL_STATS, NULL, 0, NULL, 0, DL_STATS_REPLY, &m, NULL, 0);
	if (r < 0)
		return r;
	s = &m.u.stats;
	st->bytes_read = s->bytes_read;
	st->bytes_cached = s->bytes_cached;
	for (int i = 0; i < 4; i++)
		st->loads_by_method[i] = s->loads_by_method[i];
	st->cache_hits = s->cache_hits;
	st->cache_joins = s->cache_joins;
	st->cache_misses = s->cache_misses;
	st->cache_evictions = s->cache_evictions;
	st->cache_bytes = s->cache_bytes;
	st->cache_limit = s->cache_limit;
	st->cache_entries = s->cache_entries;
	st->cache_pinned = s->cache_pinned;
	if (s->n_clients == 0)
		return 0;
	st->clients = calloc(s->n_clients, sizeof(*st->clients));
	if (!st->clients)
		return -ENOMEM;
	for (size_t i = 0; i < s->n_clients; i++) {
		struct dl_stats_client c;
		struct dmaload_stats_client *o = &st->clients[i];

		dl_stats_client_get(&m, i, &c);
		o->conn_id = c.conn_id;
		o->loads = c.loads;
		o->bytes = c.bytes;
		o->throttled_ns = c.throttled_ns;
		o->pid = c.pid;
		o->uid = c.uid;
		memcpy(o->name, c.name, DL_NAME_LEN);
		o->name[DL_NAME_LEN] = '\0';
	}
	st->n_clients = s->n_clients;
	return 0;
}

void dmaload_stats_free(struct dmaload_stats *st)
{
	free(st->clients);
	st->clients = NULL;
	st->n_clients = 0;
}

const char *dmaload_state_name(unsigned state)
{
	switch (state) {
	case DL_STATE_OPENING: return "opening";
	case DL_STATE_QUEUED: return "queued";
	case DL_STATE_READING: return "reading";
	case DL_STATE_FINISHING: return "finishing";
	default: return "?";
	}
}
