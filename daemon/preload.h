/*
 * preload.h: the [preload] entries of the config, loaded at start-up (after READY=1)
 * and again after each SIGHUP.
 */
#pragma once

#include <stddef.h>

struct client_set;

/*
 * Expands @patterns (borrowed: copied here) with glob(3) on a worker, then starts a
 * pinned background load of every regular file they match, with the daemon's own
 * credentials, on a client of @set that has no connection. Does nothing, with a
 * warning, when the cache is off. Returns 0 or -ENOMEM.
 */
int preload_start(struct client_set *set, char *const *patterns, size_t n);
