/*
 * config.h: dmaloadd's settings. Built-in defaults, then the config file (inih), then
 * the command line. conf/dmaloadd.conf documents every key.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "limit.h"
#include "log.h"

#define CONFIG_DEFAULT_PATH SYSCONFDIR "/dmaloadd/dmaloadd.conf"

enum config_toggle {
	CONFIG_OFF = 0,
	CONFIG_ON = 1,
	CONFIG_AUTO = 2,
};

/* A quota: a size, or a percentage of a whole (RAM, the cache). */
struct config_share {
	uint64_t bytes;			/* the size; 0 (and not pct): no limit */
	unsigned pct;			/* the percentage, if is_pct */
	bool is_pct;
};

/* What @s allows out of @whole bytes: UINT64_MAX for no limit. */
uint64_t config_share_bytes(const struct config_share *s, uint64_t whole);

struct config {
	/* [daemon] */
	char *socket;			/* NULL: root's or the user's runtime dir */
	mode_t socket_mode;		/* chmod of the bound socket */
	unsigned max_clients;		/* connections at once */
	unsigned max_clients_per_uid;	/* connections of one uid (not root's, not the
					 * daemon's own user); 0: max_clients / 4 */
	uint64_t max_reply_bytes;	/* replies queued for one connection before the
					 * daemon stops reading its requests */
	unsigned idle_timeout;		/* seconds a connection with nothing in flight
					 * may stay quiet before it is closed; 0: never */
	enum log_level log_level;
	unsigned workers;		/* threads for blocking calls, always there */
	unsigned max_workers;		/* the most when calls hang: started on demand */
	unsigned workers_per_uid;	/* threads one uid's file calls may hold */
	unsigned stop_timeout_s;	/* a stop waits this long for stuck calls */
	char detach_group[64];		/* who besides root may detach loads: a group's
					 * name (or number) as written, "" for none */
	gid_t detach_gid;		/* its gid; (gid_t)-1 for none */

	/* [io] */
	uint64_t chunk_size;		/* bytes per read request */
	unsigned queue_depth;		/* read requests in flight, all loads together */
	unsigned max_loads;		/* loads being read at once; more wait in line */
	unsigned max_queued;		/* loads one connection may have open at once */
	unsigned max_detached;		/* detached loads (DL_LOAD_DETACH) clients may
					 * have in flight, daemon-wide */
	uint64_t max_load_size;		/* largest load, bytes (0 in the file: RAM size) */
	uint8_t method;			/* enum dl_method for loads that say auto */
	enum config_toggle hugetlb;	/* hugetlb memfds: auto (when the pool has
					 * room), on (even for small loads), off */
	enum config_toggle thp;		/* 4 KiB-page buffers mapped MADV_HUGEPAGE:
					 * auto (where shmem_enabled allows) or off */
	uint64_t pipe_size;		/* cfr splice pipes, bytes (F_SETPIPE_SZ) */
	enum config_toggle direct;	/* O_DIRECT: auto (where allowed) or off */
	enum config_toggle fixed_buffers; /* READ_FIXED into registered mappings */
	uint8_t target;			/* enum dl_target for loads that say auto */
	char heap[64];			/* target heap: the heap's name */
	uint64_t max_inflight;		/* bytes of reads in flight, all loads together
					 * (0 in the file: queue_depth * chunk_size) */
	uint64_t memory_reserve;	/* memory admission keeps this much free */

	/* [limits]: bandwidth per client and for the whole daemon (limit.h) */
	struct limits limits;

	/* [cache] */
	uint64_t cache_limit;		/* bytes of finished buffers kept; 0: none */
	unsigned cache_limit_pct;	/* if not 0: the limit is this % of RAM instead */
	enum config_toggle loop_hits;	/* likely hits checked on the loop (lookup.c):
					 * auto (where it can) or off (a worker opens) */

	/* [quota]: per uid, root excepted */
	unsigned max_loads_per_uid;	/* loads in flight at once; 0: no limit */
	struct config_share max_inflight_per_uid;	/* buffer bytes of loads in
							 * flight, % of RAM */
	struct config_share max_cached_per_uid;	/* bytes of its kept buffers, % of
						 * the cache */
	struct config_share max_pinned_per_uid;	/* of them pinned, % of the cache */
	unsigned max_failures_per_uid;	/* failing requests a second before its
					 * requests are paced (quota.h); 0: no limit */

	/* [preload]: paths or glob(3) patterns, in file order (each "preload =" line
	 * appends one) */
	char **preload;
	size_t n_preload;
};

/* Sets every field to its built-in default. */
void config_init(struct config *c);
/* Frees what config_init/config_load allocated; safe to call twice. */
void config_deinit(struct config *c);

/*
 * Reads @path into @c (which holds defaults or earlier values). On an unknown section
 * or key, or a bad value, returns -EINVAL and writes "FILE:LINE: what is wrong" into
 * @err (@err_len bytes); a file that cannot be opened gives -errno and a message too,
 * and so does a path that is not a regular file (-EISDIR for a directory, -EINVAL for
 * a FIFO, socket or device: opened without blocking and refused before any read).
 * @c is left with defaults/earlier values on error for keys not yet seen.
 */
int config_load(struct config *c, const char *path, char *err, size_t err_len);

/* Parses "auto", "memfd", "udmabuf" or "heap:NAME" into @target and @heap (@heap_len
 * bytes). Returns 0 or -EINVAL. */
int config_parse_target(const char *s, uint8_t *target, char *heap, size_t heap_len);
/*
 * SIGHUP: takes from @next (a freshly loaded config) what can change while the daemon
 * runs: [limits], [preload] (the
 * caller preloads the new list), log_level, max_clients, max_clients_per_uid,
 * max_reply_bytes, idle_timeout (each connection's timer reads it when it fires; one
 * turned on from 0 times the connections made after), detach_group, max_queued,
 * max_detached, max_loads and max_inflight, which only the loop thread reads. Other keys that differ are logged as needing a
 * restart and keep their running values (workers read them, or the socket and the
 * ring were set up with them). Logs each change. Returns true if [limits] changed.
 * @next is left to config_deinit().
 */
bool config_reload(struct config *live, struct config *next);


/* The connections one non-root uid may hold: max_clients_per_uid, or a quarter of
 * max_clients when that is 0 (at least 1). */
unsigned config_clients_per_uid(const struct config *c);

/* The socket path to use: c->socket, else /run/dmaloadd/dmaloadd.sock for root, else
 * $XDG_RUNTIME_DIR/dmaloadd.sock. Writes into @buf; returns 0 or -ENAMETOOLONG /
 * -ENOENT (no XDG_RUNTIME_DIR for a non-root user). */
int config_socket_path(const struct config *c, char *buf, size_t len);
