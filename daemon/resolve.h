/*
 * resolve.h: walking a client's path from its root directory, never into procfs (see
 * resolve.c for why). Runs on a worker thread that has taken on the client's identity.
 */
#pragma once

#include <stddef.h>

/*
 * Walks absolute or relative @path from @root (borrowed: an O_PATH directory fd, the
 * client's root), following symbolic links inside @root. On success *@out is an
 * O_PATH fd of what the path names (never a symbolic link) and 0 is returned; else
 * -errno with @msg set: -EACCES for a path that reaches procfs, whatever comes after.
 */
int resolve_path(int root, const char *path, int *out, char *msg, size_t len);
