/*
 * sched.h: which loads are being read and which chunk goes to the ring next. At most
 * cfg->max_loads loads read at once (more wait, in arrival order); their chunks are
 * issued round robin, one per load per turn, up to cfg->queue_depth reads in flight
 * for the whole daemon.
 */
#pragma once

#include "list.h"

struct server;
struct job;

struct sched {
	struct server *srv;
	struct list waiting;	/* jobs opened, waiting for a reading slot */
	struct list active;	/* jobs reading, in round-robin order */
	unsigned n_waiting, n_active;
	unsigned reads_inflight;
	bool pumping;
	unsigned char *fixed_used;	/* registered-buffer slots taken */
	unsigned n_fixed;
};

int sched_init(struct sched *s, struct server *srv, unsigned n_fixed);
void sched_deinit(struct sched *s);

/* A job whose source is open: queue it for reading. */
void sched_add(struct sched *s, struct job *j);
/* Takes a job out of the waiting or active set (finished, failed, cancelled); starts
 * the next waiting one. Safe on a job in neither. */
void sched_remove(struct sched *s, struct job *j);
/* Issues reads while there is room. Call after anything that may free room. */
void sched_pump(struct sched *s);

/* Registered-buffer slot for a job, or -1. */
int sched_take_slot(struct sched *s);
void sched_put_slot(struct sched *s, int slot);
