/*
 * fdstore.h: cached buffers kept in systemd's file descriptor store, so that a
 * restart costs no re-reads. See fdstore.c for the name format.
 */
#pragma once

#include <stdbool.h>

struct cache;
struct cache_entry;

/* Hands a dup of ready entry @e's buffer to systemd (FDSTORE=1) under a name that
 * encodes its key and path; remembers the name in e->fdname. A no-op without
 * NOTIFY_SOCKET, or when the name would be too long (the entry is then just not
 * kept across a restart). */
void fdstore_put(struct cache_entry *e);
/* Takes @e's buffer out of the store again (FDSTOREREMOVE=1), if it is there. */
void fdstore_remove(struct cache_entry *e);

/* A name of ours? (Other passed fds are the listening socket or not ours.) */
bool fdstore_is_ours(const char *name);
/*
 * At start-up: @fd (consumed), stored as @name by an earlier run. Re-validates it
 * against its file (stat of the path: device, inode, size, mtime, ctime) and the
 * buffer (sealed, the right size); a good one becomes a ready entry of @c (and stays
 * in the store), a bad one is closed and removed from the store. Returns true if kept.
 * Runs before the loop (a stat per entry; accepted at start-up, like reading the
 * config).
 */
bool fdstore_restore(struct cache *c, int fd, const char *name);
