/*
 * resolve.h: walking a client's path from its root directory, never into procfs (see
 * resolve.c for why). Runs on a worker thread that has taken on the client's identity.
 */
#pragma once

#include <stddef.h>
#include <stdint.h>

/* The mounts a walk went through (the first RESOLVE_MOUNTS of them), each with the
 * type of its filesystem (statfs f_type): what lookup.c learns which mounts are not
 * procfs from. */
#define RESOLVE_MOUNTS 8
#ifndef STATX_MNT_ID_UNIQUE
#define STATX_MNT_ID_UNIQUE 0x00004000U	/* Linux 6.8; newer than this libc's headers */
#endif
struct resolve_mount {
	uint64_t id;		/* statx STATX_MNT_ID_UNIQUE */
	uint32_t fs_type;
};
struct resolve_mounts {
	unsigned n;
	struct resolve_mount m[RESOLVE_MOUNTS];
};

/* The next component of the path at *@rest (a buffer the walk may write): NUL-ended
 * in place, with *@rest moved past it; empty components and "." are skipped. NULL at
 * the end. */
char *resolve_next(char **rest);

/*
 * Walks absolute or relative @path from @root (borrowed: an O_PATH directory fd, the
 * client's root), following symbolic links inside @root. On success *@out is an
 * O_PATH fd of what the path names (never a symbolic link) and 0 is returned; else
 * -errno with @msg set: -EACCES for a path that reaches procfs, whatever comes after.
 * Each mount the walk passed is added to @seen (may be NULL).
 */
int resolve_path(int root, const char *path, int *out, struct resolve_mounts *seen,
		 char *msg, size_t len);
