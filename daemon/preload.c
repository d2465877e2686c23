/*
 * preload.c: turns [preload] patterns into loads. glob(3) and stat(2) can block for
 * long on a slow or hung network filesystem, so the expansion is a worker task, never
 * loop work; its completion starts the matched regular files on a client without a
 * connection (client_new_local), through the same job path as client loads. A scan
 * owns copies of its patterns, so a SIGHUP that replaces the config while it runs is
 * harmless. Entries removed from the config by a SIGHUP stay pinned: EVICT drops them.
 */
#include <errno.h>
#include <glob.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "client.h"
#include "log.h"
#include "preload.h"

struct preload_scan {
	struct worker_task task;
	struct client_set *set;
	char **patterns;
	size_t n_patterns;
	unsigned *matches;		/* per pattern: regular files it matched */
	char **paths;			/* the files to load */
	size_t n_paths;
	int err;			/* -ENOMEM while collecting */
};

static void strv_free(char **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

static void scan_free(struct preload_scan *ps)
{
	strv_free(ps->patterns, ps->n_patterns);
	strv_free(ps->paths, ps->n_paths);
	free(ps->matches);
	free(ps);
}

static int scan_add(struct preload_scan *ps, const char *path)
{
	char **v = realloc(ps->paths, (ps->n_paths + 1) * sizeof(*v));

	if (!v)
		return -ENOMEM;
	ps->paths = v;
	v[ps->n_paths] = strdup(path);
	if (!v[ps->n_paths])
		return -ENOMEM;
	ps->n_paths++;
	return 0;
}

/* On a worker: no loop state, no logging (the loop logs the outcome). */
static int scan_run(struct worker_task *t)
{
	struct preload_scan *ps = (struct preload_scan *)t;

	for (size_t i = 0; i < ps->n_patterns; i++) {
		glob_t g = { 0 };

		if (glob(ps->patterns[i], GLOB_ERR | GLOB_NOESCAPE, NULL, &g) == 0) {
			for (size_t k = 0; k < g.gl_pathc; k++) {
				struct stat st;

				if (stat(g.gl_pathv[k], &st) < 0 || !S_ISREG(st.st_mode))
					continue;
				if (scan_add(ps, g.gl_pathv[k]) < 0) {
					globfree(&g);
					return -ENOMEM;
				}
				ps->matches[i]++;
			}
		}
		globfree(&g);
	}
	return 0;
}

/* Pinned background loads of @paths (borrowed), on a client with no connection. */
static void preload_paths(struct client_set *set, char **paths, size_t n)
{
	unsigned started = 0;
	struct client *c;

	if (client_new_local(&c, set, "preload") < 0) {
		log_err("preload: out of memory");
		return;
	}
	for (size_t i = 0; i < n; i++) {
		struct dl_msg m = {
			.hdr = { .type = DL_LOAD, .id = i + 1 },
			.u.load = {
				.length = DL_LENGTH_TO_EOF,
				.flags = DL_LOAD_PIN | DL_LOAD_DETACH,
				.target = DL_TARGET_AUTO,
				.method = DL_METHOD_AUTO,
				.priority = DL_PRIO_BACKGROUND,
				.path_len = (uint32_t)strlen(paths[i]),
			},
			.trail = paths[i],
			.trail_len = strlen(paths[i]),
		};

		if (client_start_load(c, &m, NULL, 0) < 0) {
			log_warn("preload %s: out of memory", paths[i]);
			continue;
		}
		started++;
	}
	log_notice("preload: conn %llu: %u files, background priority, pinned",
		   (unsigned long long)c->conn_id, started);
	client_local_done(c);
}

/* The worker's scan is over: the loop starts the loads (or, when the daemon stops,
 * none). The pool tells a stopping daemon when its last task is done. */
static void scan_done(struct worker_task *t, int res)
{
	struct preload_scan *ps = (struct preload_scan *)t;

	for (size_t i = 0; i < ps->n_patterns; i++)
		if (!ps->matches[i])
			log_warn("preload %s: matches no regular file", ps->patterns[i]);
	if (res < 0)
		log_err("preload: %s; loading the %zu files found so far", strerror(-res),
			ps->n_paths);
	if (!ps->set->stopping && ps->n_paths)
		preload_paths(ps->set, ps->paths, ps->n_paths);
	scan_free(ps);
}

int preload_start(struct client_set *set, char *const *patterns, size_t n)
{
	struct preload_scan *ps;

	if (!n)
		return 0;
	if (!set->eng->cache.limit) {
		log_warn("preload: the cache is off (cache_limit = 0): preloading none of "
			 "the %zu [preload] entries", n);
		return 0;
	}
	ps = calloc(1, sizeof(*ps));
	if (!ps)
		return -ENOMEM;
	ps->set = set;
	ps->patterns = calloc(n, sizeof(*ps->patterns));
	ps->matches = calloc(n, sizeof(*ps->matches));
	if (!ps->patterns || !ps->matches)
		goto oom;
	for (; ps->n_patterns < n; ps->n_patterns++) {
		ps->patterns[ps->n_patterns] = strdup(patterns[ps->n_patterns]);
		if (!ps->patterns[ps->n_patterns])
			goto oom;
	}
	/* glob walks directories, which may hang on a slow filesystem. */
	ps->task = (struct worker_task){ .run = scan_run, .done = scan_done,
					 .lane = WORKER_FILE, .uid = geteuid() };
	worker_submit(set->eng->pool, &ps->task);
	return 0;
oom:
	scan_free(ps);
	return -ENOMEM;
}
