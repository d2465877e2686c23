/*
 * lookup.h: a client's path walked on the event loop, without blocking, for a load
 * the cache likely answers (see lookup.c for why it is safe and when it gives up).
 */
#pragma once

#include <liburing.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "cred.h"
#include "resolve.h"

/* As many mounts as a host's model and data paths run through; past it, new ones
 * are not learned (their paths go to a worker, as before). */
#define LOOKUP_MOUNTS 64

struct lookup {
	struct io_uring ring;	/* its own, tiny: opens complete inside the submit */
	bool ok;		/* the kernel has what it needs (lookup_init) */
	bool ring_ok;
	uid_t euid;		/* the daemon's, which the loop thread must be again */
	unsigned n;
	struct resolve_mount known[LOOKUP_MOUNTS];	/* learned from workers' walks */
	uint64_t walks, gave_up;	/* for the stop's log line */
	/* Set by the engine: closes @fd, which the walk opened, off the loop (its last
	 * close may free a file or directory removed meanwhile). NULL: closed here. */
	void (*close_fd)(void *data, int fd);
	void *close_data;
};

/* What a walk found: a regular file the client may read. */
struct lookup_file {
	dev_t dev;
	uint64_t ino, size, mtime_ns, ctime_ns;
	bool root_opath;	/* the root it began at is an O_PATH fd */
};

/* Sets @l up; when the kernel (or a seccomp filter) refuses something a walk needs
 * (io_uring's OPENAT2 with RESOLVE_CACHED, unique mount ids from statx and
 * name_to_handle_at, faccessat2), every lookup_path gives up and paths go to the
 * workers as before. Never fails. */
void lookup_init(struct lookup *l);
void lookup_deinit(struct lookup *l);

/* Learns the mounts a worker's walk passed through (on the loop). */
void lookup_learn(struct lookup *l, const struct resolve_mounts *seen);

/*
 * Walks absolute @path from @root (borrowed: the root directory the client passed)
 * as @peer, on the calling (loop) thread, and checks that @peer may read the regular
 * file it names. Returns 0 with *@f filled, or -EAGAIN: anything this walk does not
 * do (a name not in the dentry cache, a symbolic link, "..", a mount no worker's
 * walk has vouched for, a file not on a local filesystem or encrypted, any error),
 * which a worker's walk then does, and answers, as for any load.
 */
int lookup_path(struct lookup *l, int root, const char *path,
		const struct peer_cred *peer, struct lookup_file *f);
