/*
 * client.h: the connections. One struct client is one connection: it receives
 * requests, hands each well-formed one to the request handlers (handlers.c) through
 * the dispatch callback the server registered, and sends replies in order through an
 * outgoing queue (a slow reader never blocks the loop), capped per connection
 * (max_reply_bytes, max_queued fds): a client over the cap is not read from until it
 * reads its replies. A connection with nothing in flight that sends no request for
 * idle_timeout seconds is told why and closed. It owns its jobs in the sense
 * that closing it cancels them; the memory of a closed client is freed only once its
 * last job has let go of it. The set of them (struct client_set) is what the handlers
 * and the server see of the daemon's connections.
 */
#pragma once

#include <ev.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "cred.h"
#include "dmaload-proto.h"
#include "engine.h"
#include "job.h"
#include "list.h"
#include "sched.h"

struct client;
struct out_msg;

/* Every connection of the daemon, and what they share. */
struct client_set {
	struct ev_loop *loop;
	const struct config *cfg;
	struct engine *eng;
	struct list clients;		/* open connections */
	unsigned n_clients;
	struct list lingering;		/* closed ones whose detached loads still run */
	unsigned n_detached;		/* detached loads of connections (not the
					 * daemon's own) not yet released: max_detached */
	uint64_t next_conn_id;
	uint64_t started_ns;		/* when the daemon started (STATUS) */
	bool stopping;			/* SIGTERM seen: refuse new work */
	char rbuf[65536];		/* one received datagram (DL_MSG_MAX) at a time */

	/* Registered by the server: a well-formed request of @c (takes its @nfds
	 * @fds), and "a client was freed" for its stop. */
	void (*dispatch)(struct client *c, const struct dl_msg *m, int *fds, int nfds);
	void (*on_idle)(void *data);
	void *idle_data;
};

struct client {
	struct list link;		/* in set->clients, or set->lingering */
	struct client_set *set;
	int fd;
	ev_io rio, wio;
	uint64_t conn_id;
	struct peer_cred cred;		/* from the socket at accept (cred.h) */
	char name[DL_NAME_LEN + 1];	/* from HELLO */
	uint32_t peer_caps;		/* DL_CAP_* its HELLO said it understands */
	struct list jobs;		/* its loads (job->owner_link) */
	unsigned n_jobs;
	unsigned busy;			/* handlers on the stack that use the client */
	struct out_msg *out_head, *out_tail;
	size_t out_bytes;		/* queued replies: their bytes */
	unsigned out_fds;		/* and the fds they carry (DONE buffers) */
	bool paused;			/* over its reply cap: requests not read */
	bool closed;			/* socket closed; waiting for jobs to let go */
	bool broken;			/* a send failed: close from the write watcher */
	bool local;			/* the daemon's own (client_new_local) */
	bool held;			/* its uid failed too often: not read until
					 * hold_timer (quota.h) */
	ev_timer hold_timer;
	bool hung_up;			/* its peer closed its end, as of hup_asked */
	ev_tstamp hup_asked;		/* ev_now of the last ask (client_peer_gone) */
	ev_timer idle_timer;		/* idle_timeout: closes it after a quiet spell */
	ev_tstamp last_active;		/* its last request, or when it last had
					 * something in flight (ev_now) */
	struct sched_owner so;		/* its queues and limit, for the scheduler */
	struct job_owner owner;		/* what the engine knows of it (job.h) */
	uint64_t loads_done, bytes_done;	/* DONEs sent, and their bytes (STATS) */
};

void client_set_init(struct client_set *set, struct ev_loop *loop, const struct config *cfg,
		     struct engine *eng);
/* The daemon stops: every running load hears ESHUTDOWN, every connection closes,
 * detached loads are cancelled. */
void client_set_stop(struct client_set *set);
/* The config's limits changed: every client's own again. */
void client_set_limits(struct client_set *set);

/*
 * Whether a new connection of @uid may be taken: 0, or -EAGAIN with why in @msg (@len
 * bytes), for the client. Past max_clients nobody is taken. Other users share
 * max_clients less a reserve of an eighth of it, and each uid holds at most
 * config_clients_per_uid(); root and the daemon's own uid are exempt from both, so
 * one user's idle connections cannot lock out the administrator.
 */
int client_set_admit(const struct client_set *set, uid_t uid, char *msg, size_t len);

/* Takes @fd (an accepted connection) on success and failure alike. */
int client_new(struct client **out, struct client_set *set, int fd);
/* A client without a connection, with the daemon's own credentials, for loads the
 * daemon starts itself ([preload]); it frees itself after client_local_done() once
 * its last load is gone. */
int client_new_local(struct client **out, struct client_set *set, const char *name);
void client_local_done(struct client *c);

/* Closes the connection and cancels its loads (but detached ones, which go on unless
 * the daemon stops). The client frees itself when its last job is gone. */
void client_close(struct client *c);

/* Closes @nfds fds that a request of @c brought, off the loop (worker_close_file: a
 * client's file can make a close wait for ever). */
void client_drop_fds(struct client *c, const int *fds, int nfds);

/* Starts LOAD @m for @c; takes @fd (the passed fd or -1) on success and failure alike.
 * A detached load of a connection counts in set->n_detached until it is released.
 * Returns 0 or -errno. */
int client_start_load(struct client *c, const struct dl_msg *m, int *fds, int nfds);
/*
 * Calls @fn(@j, @data) for every running load (no final reply yet) of every client,
 * open or closed (detached loads and [preload]), that a client of @uid may see: its
 * own uid's, or all for root. Stops when @fn returns false, and returns false then.
 * @fn may fail the load: jobs are released later, on a worker.
 */
bool client_set_each_job(struct client_set *set, uid_t uid,
			 bool (*fn)(struct job *j, void *data), void *data);

/* Its running load with request id @id (no final reply yet), or NULL. */
struct job *client_find_job(struct client *c, uint64_t id);

/* Sends (or queues) a message; borrows @fd_to_pass (dup'd if queued). A send error
 * marks the client broken; it is closed from the loop, never inside the caller, so
 * a job replying from its own callback is not released under its feet. */
void client_send(struct client *c, const void *buf, size_t len, int fd_to_pass);
void client_send_error(struct client *c, uint64_t id, int err, const char *msg);
/* A reply of @type with fixed payload @p, and one with trailing entries too (up to a
 * whole datagram). */
void client_send_plain(struct client *c, uint16_t type, uint64_t id, const void *p,
		       size_t plen);
void client_send_trail(struct client *c, uint16_t type, uint64_t id, const void *p,
		       size_t plen, const void *trail, size_t tlen);
