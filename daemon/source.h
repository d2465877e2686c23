/*
 * source.h: the file a load reads from. Opening it is where trust is enforced: a path
 * is opened with the requesting peer's credentials, never the daemon's. Runs on a
 * worker thread (open can block on a slow filesystem).
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "cred.h"
#include "resolve.h"


struct source {
	int fd;			/* buffered reads; -1 when closed */
	int dfd;		/* O_DIRECT reads of the same file, -1 if refused */
	uint64_t size;		/* st_size when opened */
	dev_t dev;
	ino_t ino;
	uint64_t mtime_ns;	/* when opened: with size, the version the cache keys */
	uint64_t ctime_ns;
	uint32_t dio_mem_align;	/* O_DIRECT alignment of memory and offsets */
	uint32_t dio_off_align;
	int direct_err;		/* why dfd is -1 (positive errno), 0 if open */
	bool per_opener;	/* on a filesystem that may serve each opener its own
				 * bytes (FUSE): never shared with another load */
	bool direct_denied;	/* dfd is -1 because the client may not reopen its fd
				 * (a load by fd), not because O_DIRECT is refused */
	uint64_t direct_min;	/* set before source_open_path: no O_DIRECT fd for a
				 * file shorter than this (a small file the job reads
				 * whole, buffered: the second open would be waste) */
	struct resolve_mounts mounts;	/* what the walk of a path passed through */
	char msg[512];		/* on failure: what went wrong, for the ERROR reply */
};

void source_init(struct source *s);
void source_deinit(struct source *s);

/*
 * Opens @path as @peer would: walked from the peer's root directory (its mount
 * namespace and chroot), never through procfs (resolve.c), with path search and read
 * permission checked with the peer's uid, gid and groups and none of the daemon's
 * capabilities (on this worker thread only). @root (borrowed) is the root directory
 * the client passed (DL_LOAD_ROOT_FD), or -1 for /proc/PID/root of the process that
 * connected. Only regular files are accepted. With @want_direct, also opens an
 * O_DIRECT fd. Returns 0, or -errno with s->msg set.
 */
int source_open_path(struct source *s, const char *path, const struct peer_cred *peer,
		     int root, bool want_direct);

/*
 * After the read: the file's size, mtime and ctime must be what the open saw, or some
 * bytes may be of another version (a writer raced the load). Returns 0, -ESTALE with
 * @msg set, or -errno. What this cannot see: writes that change neither time (through
 * a shared mapping whose pages were already dirty, a filesystem with coarse
 * timestamps within one tick, times set back with utimensat and a ctime that did not
 * move); STATX_CHANGE_COOKIE would, but it does not reach userspace.
 */
int source_unchanged(const struct source *s, char *msg, size_t len);

/*
 * Takes @fd (consumed on success and failure alike): a readable regular file passed by
 * the client, read through at explicit offsets (its offset and flags stay the
 * client's). With @want_direct, also reopens it with O_DIRECT through /proc/self/fd
 * as @peer would, without the daemon's capabilities; a refusal leaves s->dfd -1 with
 * s->direct_denied set. Returns 0, or -errno with s->msg set.
 */
int source_open_fd(struct source *s, int fd, const struct peer_cred *peer,
		   bool want_direct);
