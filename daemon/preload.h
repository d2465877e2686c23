/*
 * preload.h: the [preload] entries of the config, loaded at start-up (after READY=1)
 * and again after each SIGHUP.
 */
#pragma once

#include <stddef.h>

struct server;

/*
 * Expands @patterns (borrowed: copied here) with glob(3) on a worker, then starts a
 * pinned background load of every regular file they match (client_preload). Does
 * nothing, with a warning, when the cache is off. Returns 0 or -ENOMEM.
 */
int preload_start(struct server *srv, char *const *patterns, size_t n);
