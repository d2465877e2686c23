/*
 * sched.h: which loads are being read and which chunk goes to the ring next.
 *
 * Two priority classes (enum dl_priority). In each, at most cfg->max_loads loads read
 * at once; more wait in arrival order. A reading load sits on its client's queue for
 * its class; the scheduler issues chunks across the clients of a class by deficit
 * round robin (a quantum of chunk_size bytes per turn), and within a client round
 * robin over its loads. Background chunks go out only while no foreground chunk is
 * waiting to go. Bandwidth limits (limit.h) hold a client back until its buckets have
 * the chunk's bytes; a timer then resumes it. The daemon keeps at most
 * cfg->queue_depth reads and max_inflight bytes in flight.
 */
#pragma once

#include <ev.h>
#include <stdint.h>

#include "dmaload-proto.h"
#include "limit.h"
#include "list.h"

struct server;
struct job;
struct client;

#define SCHED_CLASSES 2		/* DL_PRIO_FOREGROUND, DL_PRIO_BACKGROUND */

/* One client's reading loads of one class; embedded in struct client. */
struct sched_queue {
	struct list link;	/* in sched->ready[class] while jobs is not empty */
	struct list jobs;	/* its reading loads, in round-robin order */
	struct client *client;
	uint64_t deficit;	/* bytes it may still issue in this round */
	bool in_turn;		/* got its quantum and has not finished its turn */
};

struct sched {
	struct server *srv;
	struct list waiting[SCHED_CLASSES];	/* opened, waiting for a reading slot */
	struct list ready[SCHED_CLASSES];	/* client queues with reading loads */
	unsigned n_ready[SCHED_CLASSES];
	unsigned active[SCHED_CLASSES];		/* reading loads, per class */
	unsigned n_waiting, n_active;		/* all classes, for STATUS */
	unsigned reads_inflight;
	uint64_t bytes_inflight;
	bool pumping;
	struct bucket global;			/* [limits] global_rate */
	ev_timer global_timer;			/* resumes when the global bucket refills */
	uint64_t global_due;			/* when it fires (now_ns clock) */
	unsigned char *fixed_used;	/* registered-buffer slots taken */
	unsigned n_fixed;
};

int sched_init(struct sched *s, struct server *srv, unsigned n_fixed);
void sched_deinit(struct sched *s);

/* A client's queues and its limit timer (client_new / when its last job is gone). */
void sched_client_init(struct sched *s, struct client *c);
void sched_client_deinit(struct sched *s, struct client *c);
/* Sets the client's bucket from the config's [limits] (at connect, on HELLO, after a
 * reload), and its loads' buckets. Logs when @why is not NULL and something changed. */
void sched_client_limits(struct sched *s, struct client *c, const char *why);
/* The client's throttled time so far, the wait in progress included (for STATS). */
uint64_t sched_client_throttled_ns(const struct client *c, uint64_t now);
/* The config's limits changed (SIGHUP): every client and the global bucket. */
void sched_limits_changed(struct sched *s);

/* A job whose source is open: queue it for reading. */
void sched_add(struct sched *s, struct job *j);
/* Takes a job out of the waiting or active set (finished, failed, cancelled); starts
 * the next waiting one. Safe on a job in neither. */
void sched_remove(struct sched *s, struct job *j);
/* Issues reads while there is room. Call after anything that may free room. */
void sched_pump(struct sched *s);

/* A chunk of @bytes of @j went into the ring (or to a worker), or ended (copy.c). */
void sched_chunk_start(struct sched *s, const struct job *j, uint64_t bytes);
void sched_chunk_end(struct sched *s, const struct job *j, uint64_t bytes);

/* Registered-buffer slot for a job, or -1. */
int sched_take_slot(struct sched *s);
void sched_put_slot(struct sched *s, int slot);
