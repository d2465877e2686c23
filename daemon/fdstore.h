/*
 * fdstore.h: buffers kept in systemd's file descriptor store, so that a restart costs
 * no re-reads. A stored buffer is described by a record (what the cache knows of it)
 * that its name encodes; see fdstore.c for the format. This module knows nothing of
 * the cache: the cache hands it records and takes records back.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct fdstore_record {
	uint64_t dev, ino, size;	/* the file, as statx saw it at the load */
	uint64_t mtime_ns, ctime_ns;
	uint64_t off, len;		/* the range */
	uint64_t buf_size;		/* the buffer object */
	uint8_t target, method, reason;	/* enum dl_target, dl_method, dl_reason */
	bool pinned, hugetlb;
	uid_t uid;			/* who loaded it */
	char path[256];			/* the path it was loaded by */
};

#define FDSTORE_NAME_MAX 255		/* systemd's limit on a stored fd's name */

/* Hands a dup of @fd (borrowed) to systemd (FDSTORE=1) under a name that encodes @r,
 * written to @stored (FDSTORE_NAME_MAX + 1 bytes) for fdstore_remove(). Returns 0, or
 * -errno with @stored empty: without NOTIFY_SOCKET, or when the name would be too long
 * (the buffer is then just not kept across a restart). */
int fdstore_put(const struct fdstore_record *r, int fd, char *stored);
/* Takes the buffer stored as @stored out of the store again (FDSTOREREMOVE=1); a no-op
 * for an empty name. */
void fdstore_remove(const char *stored);

/* A name of ours? (Other passed fds are the listening socket or not ours.) */
bool fdstore_is_ours(const char *name);
/*
 * At start-up: @fd, stored as @name by an earlier run. Parses the name into @r and
 * re-validates it against its file (stat of the path: device, inode, size, mtime,
 * ctime) and the buffer (sealed, the recorded size). Returns 0 (the fd stays the
 * caller's), or -1 after logging why, closing @fd and removing it from the store.
 * Runs before the loop (a stat per entry; accepted at start-up, like the config).
 */
int fdstore_take(int fd, const char *name, struct fdstore_record *r);
/* A record taken with fdstore_take() that the caller does not keep after all: logs
 * @why, closes @fd and removes @name from the store. */
void fdstore_drop(int fd, const char *name, const char *why);
