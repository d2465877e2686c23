/*
 * client.h: one connection. Receives requests, dispatches them, and sends replies in
 * order through an outgoing queue (a slow reader never blocks the loop). Owns its jobs
 * in the sense that closing the client cancels them; the memory of a closed client is
 * freed only once its last job has let go of it.
 */
#pragma once

#include <ev.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "dmaload-proto.h"
#include "job.h"
#include "limit.h"
#include "list.h"
#include "sched.h"
#include "source.h"

struct server;
struct job;

struct out_msg;

struct client {
	struct list link;		/* in server->clients */
	struct server *srv;
	int fd;
	ev_io rio, wio;
	uint64_t conn_id;
	struct peer_cred cred;		/* from SO_PEERCRED / SO_PEERGROUPS at accept */
	char name[DL_NAME_LEN + 1];	/* from HELLO */
	struct list jobs;
	unsigned n_jobs;
	unsigned busy;			/* handlers on the stack that use the client */
	struct out_msg *out_head, *out_tail;
	bool closed;			/* socket closed; waiting for jobs to let go */
	bool broken;			/* a send failed: close from the write watcher */

	struct sched_owner so;		/* its queues and limit, for the scheduler */
	struct job_owner owner;		/* what the engine knows of it (job.h) */
	uint64_t loads_done, bytes_done;	/* DONEs sent, and their bytes (STATS) */
};

/* Takes @fd (an accepted connection) on success and failure alike. */
int client_new(struct client **out, struct server *srv, int fd);

/* Closes the connection and cancels its loads. The client frees itself when its last
 * job is gone. */
void client_close(struct client *c);

/* Sends (or queues) a message; borrows @fd_to_pass (dup'd if queued). A send error
 * marks the client broken; it is closed from the loop, never inside the caller, so
 * a job replying from its own callback is not released under its feet. */
void client_send(struct client *c, const void *buf, size_t len, int fd_to_pass);
void client_send_error(struct client *c, uint64_t id, int err, const char *msg);

/*
 * Starts a load of each of @paths (borrowed; absolute paths of regular files) with
 * the daemon's own credentials, background priority, method auto, pinned in the
 * cache, on a client that has no connection (see client.c). Returns 0 or -ENOMEM.
 */
int client_preload(struct server *srv, char **paths, size_t n);

