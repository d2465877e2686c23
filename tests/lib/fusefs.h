/*
 * fusefs.h: mounting the FUSE test filesystem (tests/fuse/dl-fusefs.c) for a test.
 *
 * fusefs_mount() starts the helper in the foreground as a child on a fresh mount
 * point and waits until the mount is live; fusefs_unmount() aborts the connection
 * (/sys/fs/fuse/connections/N/abort, fusectl mounted there if it was not), detaches
 * the mount and reaps the child, so a wedged filesystem never hangs the run.
 */
#pragma once

#include <limits.h>
#include <stdint.h>
#include <sys/types.h>

/* The one file it serves, under the mount point. */
#define FUSEFS_FILE "data"

/* Mode per-uid: the pattern seed of the bytes an opener with @uid gets. */
static inline uint32_t fusefs_seed(uid_t uid)
{
	return 0x5eed0000u ^ (uint32_t)uid;
}

struct fusefs {
	pid_t pid;			/* the helper, -1 when not running */
	char mnt[PATH_MAX];		/* the mount point (a dir made under @parent) */
	char file[PATH_MAX + 16];	/* mnt/FUSEFS_FILE */
	unsigned conn;			/* /sys/fs/fuse/connections/N */
};

/* The helper binary: $DMALOAD_FUSEFS, else tests/fuse/dl-fusefs next to $DMALOADD's
 * build, else build/tests/fuse/dl-fusefs. */
const char *fusefs_binary(void);

/*
 * Mounts the helper in @mode ("per-uid") serving @size bytes on @parent/fuse. Returns
 * 0, or -errno with the reason in @why (no /dev/fuse, no helper, mount refused, not
 * live within 10 s): the caller SKIPs with it.
 */
int fusefs_mount(struct fusefs *f, const char *parent, const char *mode, uint64_t size,
		 char *why, size_t why_len);

/* Aborts the connection, lazily unmounts, reaps the helper; removes the mount point.
 * Safe on a struct that was never mounted (pid -1) and to call twice. */
void fusefs_unmount(struct fusefs *f);
