/*
 * server.h: the daemon as a whole: the listening socket, the set of client
 * connections, the ring, the worker pool, the scheduler and the counters that STATUS
 * reports. There is one per process; every other object points back at it.
 */
#pragma once

#include <ev.h>
#include <stdbool.h>
#include <stdint.h>

#include "client.h"
#include "config.h"
#include "engine.h"

struct server {
	struct ev_loop *loop;
	const struct config *cfg;
	struct engine eng;		/* the loads: ring, workers, scheduler, cache */

	int listen_fd;
	ev_io accept_watch;
	bool socket_from_systemd;	/* not ours to unlink */
	char socket_path[108];

	struct client_set conns;	/* the connections, and loads without one */

	/* Out of fds (EMFILE): accept() fails and the listener stays readable. The
	 * spare (an fd of /dev/null, -1 while used) is closed to accept and answer one
	 * connection, then accepting pauses for a while (accept_pause). */
	int spare_fd;
	ev_timer accept_pause;
	unsigned n_pauses;		/* since accepting last went well */
	uint64_t n_fd_refused;		/* connections refused for want of fds, likewise */
	/* Refusals (max_clients, per uid) are logged at most once a second. */
	uint64_t refuse_log_ns;
	unsigned n_refused_quiet;	/* not logged since */

	/* A stop waits stop_timeout_s for the last reads and worker tasks; then it
	 * gives up on those stuck in the kernel (gave_up) and the process exits. */
	ev_timer stop_timer;
	bool gave_up;

	ev_timer status_timer;		/* refreshes sd_notify STATUS= */
	ev_timer watchdog_timer;	/* WATCHDOG=1 while WatchdogSec= is set */
};

/* Sets up ring, pool and listener (systemd's socket if passed, else binds). */
int server_init(struct server *s, struct ev_loop *loop, const struct config *cfg);
void server_deinit(struct server *s);

/* Stops accepting, answers every load ESHUTDOWN, closes every client and asks the
 * kernel to cancel the reads in flight. The loop ends by itself once the last
 * in-flight operation has completed, or after stop_timeout_s with gave_up set. */
void server_stop(struct server *s);

/* After the loop ended: whether calls stuck in the kernel were left behind. Then the
 * worker threads cannot be joined nor what they use freed: the caller exits without
 * server_deinit, and the kernel ends the threads when their calls return. Returns
 * how many tasks and reads were left (0: none, a clean stop). */
unsigned server_left_stuck(const struct server *s);

/* Called when something that server_stop waits for has finished. */
void server_check_idle(struct server *s);

/* The config was reloaded: every client's limits again when @limits changed (a raised
 * one may let a held-back client go), and room for more reads (max_loads or
 * max_inflight may have grown). */
void server_config_changed(struct server *s, bool limits);

/* Sends systemd a STATUS= line: clients, loads in flight, cache use. A no-op without
 * NOTIFY_SOCKET. */
void server_notify_status(struct server *s);
