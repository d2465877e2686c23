/*
 * memory.h: how much memory the daemon may still use, so that a load that cannot fit
 * is refused with ENOMEM before its buffer is made, instead of the kernel's OOM killer
 * ending the daemon for everyone. Two limits count: the host's MemAvailable, and the
 * daemon's memory cgroup (v1 memory.limit_in_bytes and memory.usage_in_bytes, or v2
 * memory.max and memory.current), whose usage already includes the buffers clients
 * still hold (their pages stay charged to the daemon) and the cache. Surplus huge
 * pages come from free memory and show in MemAvailable. Buffers admitted but not yet
 * filled are counted by the caller (in flight) on top of what the kernel reports.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct memory {
	char limit_path[1280];		/* the cgroup's limit file, "" if none found */
	char usage_path[1280];		/* and its usage */
	uint64_t reserve;		/* bytes always left free ([io] memory_reserve) */
	uint64_t inflight;		/* admitted buffers not yet filled (atomic) */
};

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
