/*
 * memory.h: how much memory the daemon may still use, so that a load that cannot fit
 * is refused with ENOMEM before its buffer is made, instead of the kernel's OOM killer
 * ending the daemon for everyone. Two limits count: the host's MemAvailable, and the
 * daemon's memory cgroup (v1 memory.limit_in_bytes and memory.usage_in_bytes, or v2
 * memory.max and memory.current), whose usage already includes the buffers clients
 * still hold (their pages stay charged to the daemon) and the cache. Surplus huge
 * pages come from free memory and show in MemAvailable. Buffers admitted but not yet
 * filled are counted by the caller (in flight) on top of what the kernel reports.
 *
 * The kernel's numbers are sampled at most every MEMORY_SAMPLE_MS: between samples,
 * every byte admitted since counts as taken even once its load has ended (a freed
 * buffer is credited only by the next sample), and a load that does not fit the
 * sample is checked again against fresh numbers before it is refused. So a refusal is
 * always from fresh numbers, and an admission from a sample is never more generous
 * than a fresh one would have been but for what other processes took meanwhile.
 */
#pragma once

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct memory {
	char limit_path[1280];		/* the cgroup's limit file, "" if none found */
	char usage_path[1280];		/* and its usage */
	uint64_t reserve;		/* bytes always left free ([io] memory_reserve) */
	uint64_t inflight;		/* admitted buffers not yet filled (atomic) */
	/* The last sample (under lock): what the kernel said, and what was admitted
	 * since it was taken. */
	pthread_mutex_t lock;
	uint64_t s_ns;			/* when (CLOCK_MONOTONIC), 0: none yet */
	uint64_t s_avail;		/* MemAvailable */
	uint64_t s_limit, s_usage;	/* the cgroup's */
	bool s_cgroup;			/* whether those two were read */
	uint64_t s_inflight;		/* in flight when sampled */
	uint64_t s_since;		/* admitted since */
};

#define MEMORY_SAMPLE_MS 10

/*
 * Finds the daemon's memory cgroup (v2, else v1's memory controller) from
 * /proc/self/cgroup and /proc/self/mountinfo. $DMALOAD_MEMORY_ROOT, when set, is
 * prepended to every path read (/proc/... and the cgroup tree): for tests with a fake
 * tree, never needed otherwise. Logs what it found.
 */
void memory_init(struct memory *m, uint64_t reserve);

/*
 * Admits a buffer of @bytes: returns 0 and counts it in flight, or -ENOMEM with @msg
 * (@len bytes) naming the numbers and the limit that refused. Thread-safe (the
 * workers admit).
 */
int memory_admit(struct memory *m, uint64_t bytes, char *msg, size_t len);
/* The admitted buffer is filled (its pages now show in the kernel's counts) or gone. */
void memory_release(struct memory *m, uint64_t bytes);
