/*
 * server.c: the process-wide state and the listening socket.
 *
 * The socket comes from systemd when it passes one (sd_listen_fds, checked with
 * sd_is_socket_unix to be a listening SOCK_SEQPACKET Unix socket), else the daemon
 * binds it itself: the directory is created if missing, a stale socket file left by a
 * dead daemon is replaced, a live one (connect succeeds) is an error rather than
 * stolen. Accepted connections become clients; one past max_clients, or past its uid's
 * share (client_set_admit), gets an ERROR with request id 0 and is closed, so the
 * caller learns why. Out of fds, the listener would stay readable and the loop spin on
 * a failing accept(): a spare fd is given up to take and answer one connection, and
 * accepting pauses (ACCEPT_PAUSE_S) until fds are free again.
 *
 * Shutdown: server_stop() closes the listener, answers every load ESHUTDOWN and
 * closes every client at once, then asks io_uring to cancel what is in flight; the
 * loop breaks in server_check_idle() once no job, client or worker task is left, so
 * nothing is freed while the kernel may still write into it. A call stuck in a
 * filesystem that does not answer (a hung FUSE server, a dead NFS mount) can hold a
 * thread for ever, in D state where no signal reaches it: after stop_timeout_s the
 * stop gives up on those (gave_up) and main() exits without joining them. The
 * process ends when the kernel lets the stuck threads go; the clients do not wait.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include "client.h"
#include "dmaload-proto.h"
#include "fdstore.h"
#include "handlers.h"
#include "log.h"
#include "server.h"
#include "util.h"

/* How long accepting pauses when the daemon is out of fds. */
#define ACCEPT_PAUSE_S 0.25

void server_notify_status(struct server *s)
{
	sd_notifyf(0, "STATUS=%u clients, %u loads reading, %u waiting; %llu loaded, "
		   "%llu failed; cache %u entries (%u pinned), %llu of %llu MiB",
		   s->conns.n_clients, s->eng.sched.n_active, s->eng.sched.n_waiting,
		   (unsigned long long)s->eng.loads_done, (unsigned long long)s->eng.loads_failed,
		   s->eng.cache.n_ready, s->eng.cache.n_pinned,
		   (unsigned long long)s->eng.cache.bytes >> 20,
		   (unsigned long long)s->eng.cache.limit >> 20);
}

/* A stopping daemon waits for the engine's last load, task and read. */
static void on_engine_idle(void *data)
{
	server_check_idle(data);
}

/* The grace period of a stop ran out with calls still stuck in the kernel. */
static void on_stop_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct server *s = w->data;

	s->gave_up = true;
	log_warn("stopping: after %u s, %u worker tasks and %u reads are still stuck in "
		 "the kernel (a filesystem that does not answer?); exiting without them",
		 s->cfg->stop_timeout_s, worker_pending(s->eng.pool), s->eng.ring.inflight);
	ev_break(loop, EVBREAK_ALL);
}

static void on_status_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
	server_notify_status(w->data);
}

/* The loop is alive if this runs: a loop stuck in a blocking call stops the pings
 * and systemd restarts the daemon (WatchdogSec=). */
static void on_watchdog_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
	sd_notify(0, "WATCHDOG=1");
}

/* Answers connection @fd (taken) with ERROR @err and @msg (request id 0: before any
 * request) and closes it, so the caller learns why. The close frees whatever the
 * client sent before it was accepted, fds with their files' last release (a FUSE
 * file's may wait on its server): so on a worker of @uid's, given @pool; without one
 * (out of fds, where a task would not help) here. */
static void refuse(struct worker_pool *pool, uid_t uid, int fd, int err, const char *msg)
{
	char buf[sizeof(struct dl_hdr) + sizeof(struct dl_error) + DL_ERRMSG_MAX];
	ssize_t n = dl_encode_error(buf, sizeof(buf), 0, err, msg);

	if (n > 0)
		dl_send(fd, buf, (size_t)n, NULL, 0);
	if (pool)
		worker_close_files(pool, &fd, 1, uid);
	else
		close(fd);
}

/* One log line a second at most for refusals: a client that reconnects in a loop
 * must not flood the log. */
static void log_refusal(struct server *s, uid_t uid, const char *msg)
{
	uint64_t now = now_ns();

	if (s->refuse_log_ns && now - s->refuse_log_ns < 1000000000ull) {
		s->n_refused_quiet++;
		return;
	}
	log_notice("refused a connection of uid %u: %s (%u more refused in the last "
		   "second)", (unsigned)uid, msg, s->n_refused_quiet);
	s->refuse_log_ns = now;
	s->n_refused_quiet = 0;
}

static void spare_open(struct server *s)
{
	if (s->spare_fd < 0)
		s->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
}

/*
 * accept() failed with EMFILE or ENFILE. The pending connection stays in the backlog
 * and the listener readable, so trying again at once would spin: give up the spare
 * fd to take one connection and tell it why, then stop accepting for a while. One
 * log line per pause; the recovery is logged once accepting works again.
 */
static void accept_out_of_fds(struct server *s, int err)
{
	int fd;

	if (s->spare_fd >= 0) {
		close(s->spare_fd);
		s->spare_fd = -1;
		fd = accept4(s->listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
		if (fd >= 0) {
			refuse(NULL, 0, fd, err, "the daemon is out of file descriptors; "
			       "try again later");
			s->n_fd_refused++;
		}
		spare_open(s);
	}
	if (s->n_pauses++ == 0)
		log_warn("accept: %s: pausing new connections for %.0f ms at a time until "
			 "fds are free again", strerror(err), ACCEPT_PAUSE_S * 1000);
	ev_io_stop(s->loop, &s->accept_watch);
	ev_timer_set(&s->accept_pause, ACCEPT_PAUSE_S, 0.);
	ev_timer_start(s->loop, &s->accept_pause);
}

static void on_accept_pause(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct server *s = w->data;

	if (s->listen_fd >= 0)
		ev_io_start(loop, &s->accept_watch);
}

static void on_accept(struct ev_loop *loop, ev_io *w, int revents)
{
	struct server *s = w->data;

	for (int i = 0; i < 64; i++) {
		struct client *c;
		struct ucred uc;
		socklen_t uclen = sizeof(uc);
		char msg[160];
		int fd = accept4(s->listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);

		if (fd < 0) {
			if (errno == EMFILE || errno == ENFILE)
				accept_out_of_fds(s, errno);
			else if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED)
				log_err("accept: %s", strerror(errno));
			return;
		}
		if (s->n_pauses) {
			log_notice("accept: fds free again after %u pauses (%llu connections "
				   "refused meanwhile)", s->n_pauses,
				   (unsigned long long)s->n_fd_refused);
			s->n_pauses = 0;
			s->n_fd_refused = 0;
		}
		spare_open(s);
		if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &uc, &uclen) < 0) {
			log_warn("accept: SO_PEERCRED: %s", strerror(errno));
			worker_close(s->conns.eng->pool, fd);
			continue;
		}
		if (client_set_admit(&s->conns, uc.uid, msg, sizeof(msg)) < 0) {
			log_refusal(s, uc.uid, msg);
			refuse(s->conns.eng->pool, uc.uid, fd, EAGAIN, msg);
			continue;
		}
		client_new(&c, &s->conns, fd);
	}
}

/*
 * Takes what systemd passed (sd_listen_fds_with_names): buffers stored by an earlier
 * run (fdstore.c names) go back into the cache or are dropped; of the rest, the
 * first listening AF_UNIX SOCK_SEQPACKET socket is ours, further ones are closed
 * with a warning, and anything else is an error. Returns the socket, -1 if none was
 * passed (the daemon then binds its own), or -errno.
 */
static int fds_from_systemd(struct server *s)
{
	char **names = NULL;
	int n = sd_listen_fds_with_names(1, &names), sock = -1, r = 0;
	unsigned stored = 0, kept = 0;

	if (n <= 0)
		return n < 0 ? n : -1;
	for (int i = 0; i < n; i++) {
		int fd = SD_LISTEN_FDS_START + i;
		const char *name = names ? names[i] : NULL;

		fcntl(fd, F_SETFD, FD_CLOEXEC);
		if (fdstore_is_ours(name)) {
			struct fdstore_record rec;

			stored++;
			if (fdstore_take(fd, name, &rec) == 0 &&
			    cache_adopt(&s->eng.cache, &rec, fd, name) == 0)
				kept++;
		} else if (sd_is_socket_unix(fd, SOCK_SEQPACKET, 1, NULL, 0) <= 0) {
			log_err("systemd passed fd %d (%s) that is not a listening AF_UNIX "
				"SOCK_SEQPACKET socket", fd, name ? name : "no name");
			close(fd);
			r = -EINVAL;
		} else if (sock >= 0) {
			log_warn("systemd passed more than one socket; using the first");
			close(fd);
		} else {
			sock = fd;
		}
	}
	for (int i = 0; names && names[i]; i++)
		free(names[i]);
	free(names);
	if (stored)
		log_notice("fdstore: %u of %u stored buffers kept", kept, stored);
	if (r < 0) {
		if (sock >= 0)
			close(sock);
		return r;
	}
	return sock;
}

/* Is a daemon answering on @path? */
static bool socket_alive(const struct sockaddr_un *sa)
{
	int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	bool alive;

	if (fd < 0)
		return false;
	alive = connect(fd, (const struct sockaddr *)sa, sizeof(*sa)) == 0;
	close(fd);
	return alive;
}

static int socket_bind(struct server *s)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	char dir[sizeof(sa.sun_path)];
	char *slash;
	int fd, r;

	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", s->socket_path);
	snprintf(dir, sizeof(dir), "%s", s->socket_path);
	slash = strrchr(dir, '/');
	if (slash && slash != dir) {
		*slash = '\0';
		if (mkdir(dir, 0755) < 0 && errno != EEXIST) {
			r = -errno;
			log_err("cannot create %s: %s", dir, strerror(-r));
			return r;
		}
	}
	fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -errno;
	r = bind(fd, (struct sockaddr *)&sa, sizeof(sa));
	if (r < 0 && errno == EADDRINUSE) {
		/* A socket file is there: a live daemon's, or a dead one's leftover. */
		if (socket_alive(&sa)) {
			log_err("%s: another daemon is listening there", s->socket_path);
			close(fd);
			return -EADDRINUSE;
		}
		unlink(s->socket_path);
		r = bind(fd, (struct sockaddr *)&sa, sizeof(sa));
	}
	if (r < 0) {
		r = -errno;
		log_err("cannot bind %s: %s", s->socket_path, strerror(-r));
		close(fd);
		return r;
	}
	if (chmod(s->socket_path, s->cfg->socket_mode) < 0)
		log_warn("chmod %s: %s", s->socket_path, strerror(errno));
	if (listen(fd, 128) < 0) {
		r = -errno;
		close(fd);
		unlink(s->socket_path);
		return r;
	}
	return fd;
}

int server_init(struct server *s, struct ev_loop *loop, const struct config *cfg)
{
	uint64_t wd_usec = 0;
	int r, fd;

	memset(s, 0, sizeof(*s));
	s->loop = loop;
	s->cfg = cfg;
	s->listen_fd = -1;
	s->spare_fd = -1;
	ev_timer_init(&s->accept_pause, on_accept_pause, ACCEPT_PAUSE_S, 0.);
	s->accept_pause.data = s;
	ev_timer_init(&s->stop_timer, on_stop_timer, 0., 0.);
	s->stop_timer.data = s;
	r = engine_init(&s->eng, loop, cfg, on_engine_idle, s);
	if (r < 0)
		goto fail;
	client_set_init(&s->conns, loop, cfg, &s->eng);
	s->conns.dispatch = handlers_dispatch;
	s->conns.on_idle = on_engine_idle;
	s->conns.idle_data = s;

	fd = fds_from_systemd(s);
	if (fd >= 0) {
		s->socket_from_systemd = true;
		fcntl(fd, F_SETFD, FD_CLOEXEC);
		fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
		snprintf(s->socket_path, sizeof(s->socket_path), "(from systemd)");
	} else if (fd == -1) {
		r = config_socket_path(cfg, s->socket_path, sizeof(s->socket_path));
		if (r < 0) {
			log_err("no socket path: set socket in the config, pass --socket, "
				"or set XDG_RUNTIME_DIR");
			goto fail;
		}
		fd = socket_bind(s);
	}
	if (fd < 0) {
		r = fd;
		goto fail;
	}
	s->listen_fd = fd;
	ev_io_init(&s->accept_watch, on_accept, fd, EV_READ);
	s->accept_watch.data = s;
	ev_io_start(loop, &s->accept_watch);
	spare_open(s);
	if (s->spare_fd < 0)
		log_warn("cannot keep a spare fd (/dev/null): %s", strerror(errno));
	ev_timer_init(&s->status_timer, on_status_timer, 5.0, 5.0);
	s->status_timer.data = s;
	if (getenv("NOTIFY_SOCKET"))
		ev_timer_start(loop, &s->status_timer);
	/* Ping at half the interval systemd asked for (WATCHDOG_USEC), as sd_watchdog_
	 * enabled(3) advises, so one late loop iteration is not a missed ping. */
	if (sd_watchdog_enabled(0, &wd_usec) > 0 && wd_usec) {
		ev_timer_init(&s->watchdog_timer, on_watchdog_timer, (double)wd_usec / 2e6,
			      (double)wd_usec / 2e6);
		s->watchdog_timer.data = s;
		ev_timer_start(loop, &s->watchdog_timer);
		log_info("watchdog: pinging systemd every %.1f s", (double)wd_usec / 2e6);
	}

	log_notice("listening on %s (chunk %llu KiB, queue depth %u, %u workers (up to %u, "
		   "%u per uid), cache %llu MiB)", s->socket_path,
		   (unsigned long long)cfg->chunk_size >> 10, cfg->queue_depth, cfg->workers,
		   cfg->max_workers > cfg->workers ? cfg->max_workers : cfg->workers,
		   cfg->workers_per_uid, (unsigned long long)s->eng.cache.limit >> 20);
	return 0;
fail:
	server_deinit(s);
	return r;
}

void server_deinit(struct server *s)
{
	if (s->listen_fd >= 0) {
		ev_io_stop(s->loop, &s->accept_watch);
		close(s->listen_fd);
		if (!s->socket_from_systemd)
			unlink(s->socket_path);
		s->listen_fd = -1;
	}
	ev_timer_stop(s->loop, &s->accept_pause);
	ev_timer_stop(s->loop, &s->stop_timer);
	if (s->spare_fd >= 0)
		close(s->spare_fd);
	s->spare_fd = -1;
	ev_timer_stop(s->loop, &s->status_timer);
	ev_timer_stop(s->loop, &s->watchdog_timer);
	engine_deinit(&s->eng);
}

void server_config_changed(struct server *s, bool limits)
{
	if (limits) {
		sched_global_limits(&s->eng.sched);
		client_set_limits(&s->conns);
	}
	sched_pump(&s->eng.sched);
}

void server_check_idle(struct server *s)
{
	if (!s->conns.stopping)
		return;
	if (s->conns.n_clients || engine_busy(&s->eng))
		return;
	ev_timer_stop(s->loop, &s->stop_timer);
	ev_break(s->loop, EVBREAK_ALL);
}

unsigned server_left_stuck(const struct server *s)
{
	if (!s->gave_up)
		return 0;
	return (s->eng.pool ? worker_pending(s->eng.pool) : 0) + s->eng.ring.inflight;
}

void server_stop(struct server *s)
{
	if (s->conns.stopping)
		return;
	sd_notify(0, "STOPPING=1");
	log_notice("stopping: cancelling %u loads",
		   s->eng.sched.n_active + s->eng.sched.n_waiting);
	/* New connections would only be reset: stop taking them now. */
	if (s->listen_fd >= 0) {
		ev_io_stop(s->loop, &s->accept_watch);
		ev_timer_stop(s->loop, &s->accept_pause);
		close(s->listen_fd);
		if (!s->socket_from_systemd)
			unlink(s->socket_path);
		s->listen_fd = -1;
	}
	client_set_stop(&s->conns);
	/* The kept buffers go too; their closes are worker tasks the loop waits for. */
	cache_clear(&s->eng.cache);
	/* Every load has stopped: what the ring still reads is for nobody. */
	ring_cancel_all(&s->eng.ring);
	ev_timer_set(&s->stop_timer, (double)s->cfg->stop_timeout_s, 0.);
	ev_timer_start(s->loop, &s->stop_timer);
	server_check_idle(s);
}
