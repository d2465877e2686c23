/*
 * config.c: reads dmaloadd.conf with inih into struct config. Every key has a built-in
 * default (config_init), so an empty or missing default file is fine; an explicitly
 * named file must exist. Anything unknown or malformed is an error naming FILE:LINE:
 * a daemon that guesses at its config runs with settings nobody chose.
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
/* Debian builds inih with the line number in the handler: errors can name it. */
#define INI_HANDLER_LINENO 1
#include <ini.h>
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "dmaload-proto.h"
#include "util.h"

void config_init(struct config *c)
{
	*c = (struct config){
		.socket = NULL,
		.socket_mode = 0666,
		.max_clients = 256,
		.max_clients_per_uid = 0,
		.max_reply_bytes = 4u << 20,
		.idle_timeout = 300,
		.log_level = LOG_LVL_INFO,
		.workers = 2,
		.max_workers = 64,
		.workers_per_uid = 4,
		.stop_timeout_s = 3,
		.chunk_size = 4u << 20,
		.queue_depth = 64,
		.max_loads = 16,
		.max_queued = 64,
		.max_detached = 64,
		.detach_gid = (gid_t)-1,
		.max_load_size = 0,
		.method = DL_METHOD_AUTO,
		.hugetlb = CONFIG_AUTO,
		.thp = CONFIG_AUTO,
		.pipe_size = 1u << 20,
		.direct = CONFIG_AUTO,
		.fixed_buffers = CONFIG_OFF,
		.max_inflight = 0,
		.memory_reserve = 256u << 20,
		.cache_limit = 0,
		.cache_limit_pct = 10,
		.loop_hits = CONFIG_AUTO,
		.max_loads_per_uid = 256,
		.max_inflight_per_uid = { .bytes = 0 },
		.max_cached_per_uid = { .pct = 100, .is_pct = true },
		.max_pinned_per_uid = { .pct = 50, .is_pct = true },
		.max_failures_per_uid = 50,
	};
	limits_init(&c->limits);
}

void config_deinit(struct config *c)
{
	free(c->socket);
	c->socket = NULL;
	limits_deinit(&c->limits);
	for (size_t i = 0; i < c->n_preload; i++)
		free(c->preload[i]);
	free(c->preload);
	c->preload = NULL;
	c->n_preload = 0;
}

/* [preload] preload = PATTERN: inih calls us once per line, so a repeated key is one
 * more entry (INI_ALLOW_MULTILINE would only fold indented continuation lines into
 * one value; Debian's inih has it, and we do not rely on it). */
static int preload_add(struct config *c, const char *value)
{
	char **v, *p;

	if (value[0] != '/' || strlen(value) >= PATH_MAX)
		return -EINVAL;
	p = strdup(value);
	v = p ? realloc(c->preload, (c->n_preload + 1) * sizeof(*v)) : NULL;
	if (!v) {
		free(p);
		return -ENOMEM;
	}
	v[c->n_preload++] = p;
	c->preload = v;
	return 0;
}

static int parse_uint(const char *s, unsigned min, unsigned max, unsigned *out)
{
	unsigned long v;
	char *end;

	if (!*s || *s == '-' || *s == '+')
		return -EINVAL;
	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno || *end || v < min || v > max)
		return -EINVAL;
	*out = (unsigned)v;
	return 0;
}

/* [daemon] detach_group: a group's name, or a number when no group has that name;
 * empty: none (only root detaches). Resolved now, so a typo is an error at load. */
static int parse_group(struct config *c, const char *s)
{
	struct group *gr;
	unsigned gid;

	if (!*s) {
		c->detach_group[0] = '\0';
		c->detach_gid = (gid_t)-1;
		return 0;
	}
	if (strlen(s) >= sizeof(c->detach_group))
		return -EINVAL;
	gr = getgrnam(s);
	if (gr)
		c->detach_gid = gr->gr_gid;
	else if (parse_uint(s, 0, 0xfffffffe, &gid) == 0)
		c->detach_gid = (gid_t)gid;
	else
		return -ENOENT;
	snprintf(c->detach_group, sizeof(c->detach_group), "%s", s);
	return 0;
}

static int parse_toggle(const char *s, bool allow_on, enum config_toggle *out)
{
	if (strcmp(s, "auto") == 0)
		*out = CONFIG_AUTO;
	else if (strcmp(s, "off") == 0 || strcmp(s, "no") == 0)
		*out = CONFIG_OFF;
	else if (allow_on && (strcmp(s, "on") == 0 || strcmp(s, "yes") == 0))
		*out = CONFIG_ON;
	else
		return -EINVAL;
	return 0;
}

static int parse_method(const char *s, uint8_t *out)
{
	static const uint8_t methods[] = { DL_METHOD_AUTO, DL_METHOD_CFR, DL_METHOD_DIRECT,
					   DL_METHOD_BUFFERED };

	for (size_t i = 0; i < sizeof(methods); i++)
		if (strcmp(s, dl_method_name(methods[i])) == 0) {
			*out = methods[i];
			return 0;
		}
	return -EINVAL;
}

int config_parse_target(const char *s, uint8_t *target, char *heap, size_t heap_len)
{
	if (strncmp(s, "heap:", 5) == 0) {
		if (!dl_heap_name_ok(s + 5, strlen(s + 5)) || strlen(s + 5) >= heap_len)
			return -EINVAL;
		*target = DL_TARGET_HEAP;
		snprintf(heap, heap_len, "%s", s + 5);
		return 0;
	}
	for (uint8_t t = DL_TARGET_AUTO; t <= DL_TARGET_UDMABUF; t++)
		if (strcmp(s, dl_target_name(t)) == 0) {
			*target = t;
			heap[0] = '\0';
			return 0;
		}
	return -EINVAL;
}

/*
 * The keys: a table, one row each, as redis keeps its config. A row names its section
 * and key, how its value is parsed into which field of struct config, the range a
 * number or size must be in, and what to tell a user whose value is wrong. [limits]
 * takes keys that name users and groups, so limit.c parses that whole section.
 */
struct key_rule;
typedef int key_parser(struct config *c, const struct key_rule *k, const char *value);

struct key_rule {
	const char *section, *key;
	key_parser *parse;
	size_t field;			/* offsetof(struct config, ...) */
	uint64_t min, max;		/* numbers and sizes */
	unsigned flags;			/* sizes: KEY_* */
	const char *what;		/* what a good value is */
};

#define KEY_POW2	1u	/* a power of two */
#define KEY_ZERO	2u	/* 0 too, below min: "the default" */

#define FIELD(c, k, type) ((type *)((char *)(c) + (k)->field))

/* An unsigned number in [min, max]. */
static int key_uint(struct config *c, const struct key_rule *k, const char *value)
{
	return parse_uint(value, (unsigned)k->min, (unsigned)k->max, FIELD(c, k, unsigned));
}

/* A size in [min, max], or 0 with KEY_ZERO; a power of two with KEY_POW2. */
static int key_size(struct config *c, const struct key_rule *k, const char *value)
{
	uint64_t v;

	if (parse_size(value, &v) || v > k->max || ((k->flags & KEY_POW2) && (v & (v - 1))) ||
	    (v < k->min && !(v == 0 && (k->flags & KEY_ZERO))))
		return -EINVAL;
	*FIELD(c, k, uint64_t) = v;
	return 0;
}

/* auto, on or off (max 1: "on" allowed), as enum config_toggle. */
static int key_toggle(struct config *c, const struct key_rule *k, const char *value)
{
	return parse_toggle(value, k->max, FIELD(c, k, enum config_toggle));
}

static int key_socket(struct config *c, const struct key_rule *k, const char *value)
{
	if (value[0] && (value[0] != '/' || strlen(value) >= 108))
		return -EINVAL;
	free(c->socket);
	c->socket = value[0] ? strdup(value) : NULL;	/* empty: the default place */
	return 0;
}

static int key_mode(struct config *c, const struct key_rule *k, const char *value)
{
	unsigned long m;
	char *end;

	errno = 0;
	m = strtoul(value, &end, 8);
	if (errno || !*value || *end || m > 07777)
		return -EINVAL;
	c->socket_mode = (mode_t)m;
	return 0;
}

static int key_log_level(struct config *c, const struct key_rule *k, const char *value)
{
	return log_parse_level(value, &c->log_level);
}

static int key_detach_group(struct config *c, const struct key_rule *k, const char *value)
{
	return parse_group(c, value);
}

static int key_method(struct config *c, const struct key_rule *k, const char *value)
{
	return parse_method(value, &c->method);
}

static int key_target(struct config *c, const struct key_rule *k, const char *value)
{
	return config_parse_target(value, &c->target, c->heap, sizeof(c->heap));
}

/* A size, or a percentage of RAM from 0% to 90%. */
static int key_cache_limit(struct config *c, const struct key_rule *k, const char *value)
{
	size_t n = strlen(value);
	uint64_t size;
	unsigned pct;

	if (n > 1 && value[n - 1] == '%') {
		char num[16];

		if (n - 1 >= sizeof(num))
			return -EINVAL;
		snprintf(num, sizeof(num), "%.*s", (int)(n - 1), value);
		if (parse_uint(num, 0, 90, &pct))
			return -EINVAL;
		c->cache_limit_pct = pct;
		c->cache_limit = 0;
		return 0;
	}
	if (parse_size(value, &size))
		return -EINVAL;
	c->cache_limit = size;
	c->cache_limit_pct = 0;
	return 0;
}

/* A quota: a size (0: no limit), or a percentage from 0% to 100%. */
static int key_share(struct config *c, const struct key_rule *k, const char *value)
{
	struct config_share *sh = FIELD(c, k, struct config_share);
	size_t n = strlen(value);
	char num[16];

	if (n > 1 && value[n - 1] == '%') {
		if (n - 1 >= sizeof(num))
			return -EINVAL;
		snprintf(num, sizeof(num), "%.*s", (int)(n - 1), value);
		if (parse_uint(num, 0, 100, &sh->pct))
			return -EINVAL;
		sh->is_pct = true;
		sh->bytes = 0;
		return 0;
	}
	if (parse_size(value, &sh->bytes))
		return -EINVAL;
	sh->is_pct = false;
	sh->pct = 0;
	return 0;
}

uint64_t config_share_bytes(const struct config_share *s, uint64_t whole)
{
	if (s->is_pct)
		return whole / 100 * s->pct;
	return s->bytes ? s->bytes : UINT64_MAX;
}

static int key_preload(struct config *c, const struct key_rule *k, const char *value)
{
	return preload_add(c, value);
}

#define UINT(sec, name, lo, hi, text) \
	{ sec, #name, key_uint, offsetof(struct config, name), lo, hi, 0, text }
#define SIZE(sec, name, lo, hi, flags, text) \
	{ sec, #name, key_size, offsetof(struct config, name), lo, hi, flags, text }
#define TOGGLE(sec, name, on, text) \
	{ sec, #name, key_toggle, offsetof(struct config, name), 0, on, 0, text }
#define CUSTOM(sec, name, fn, text) { sec, name, fn, 0, 0, 0, 0, text }
#define SHARE(sec, name, text) \
	{ sec, #name, key_share, offsetof(struct config, name), 0, 0, 0, text }

static const struct key_rule keys[] = {
	CUSTOM("daemon", "socket", key_socket,
	       "must be an absolute path shorter than 108 bytes"),
	CUSTOM("daemon", "socket_mode", key_mode, "must be an octal file mode such as 0666"),
	UINT("daemon", max_clients, 1, 65536, "must be a number from 1 to 65536"),
	UINT("daemon", max_clients_per_uid, 0, 65536,
	     "must be a number from 1 to 65536 (0: a quarter of max_clients)"),
	SIZE("daemon", max_reply_bytes, 65536, 1ull << 30, 0,
	     "must be a size from 64K to 1G"),
	UINT("daemon", idle_timeout, 0, 86400,
	     "must be a number of seconds from 0 (never) to 86400"),
	CUSTOM("daemon", "log_level", key_log_level,
	       "must be error, warning, notice, info or debug"),
	UINT("daemon", workers, 1, 64, "must be a number from 1 to 64"),
	UINT("daemon", max_workers, 1, 1024, "must be a number from 1 to 1024"),
	UINT("daemon", workers_per_uid, 1, 1024, "must be a number from 1 to 1024"),
	UINT("daemon", stop_timeout_s, 0, 3600, "must be a number of seconds from 0 to "
	     "3600"),
	CUSTOM("daemon", "detach_group", key_detach_group,
	       "must be the name of an existing group, a group number, or empty (only "
	       "root detaches loads)"),
	SIZE("io", chunk_size, 4096, 64u << 20, KEY_POW2,
	     "must be a power of two from 4K to 64M"),
	UINT("io", queue_depth, 1, 4096, "must be a number from 1 to 4096"),
	UINT("io", max_loads, 1, 4096, "must be a number from 1 to 4096"),
	UINT("io", max_queued, 1, 65536, "must be a number from 1 to 65536"),
	UINT("io", max_detached, 0, 65536,
	     "must be a number from 0 (no detached loads) to 65536"),
	SIZE("io", max_load_size, 0, UINT64_MAX, 0,
	     "must be a size such as 64G (0: the machine's RAM)"),
	CUSTOM("io", "method", key_method, "must be auto, cfr, direct or buffered"),
	CUSTOM("io", "target", key_target, "must be auto, memfd, udmabuf or heap:NAME"),
	TOGGLE("io", hugetlb, true, "must be auto, on or off"),
	TOGGLE("io", thp, false, "must be auto or off"),
	SIZE("io", pipe_size, 65536, 64u << 20, KEY_POW2,
	     "must be a power of two from 64K to 64M"),
	TOGGLE("io", direct, false, "must be auto or off"),
	TOGGLE("io", fixed_buffers, true, "must be auto, on or off"),
	SIZE("io", max_inflight, 4096, UINT64_MAX, KEY_ZERO,
	     "must be a size of at least 4K (0: queue_depth * chunk_size)"),
	SIZE("io", memory_reserve, 0, UINT64_MAX, 0, "must be a size such as 256M"),
	CUSTOM("cache", "cache_limit", key_cache_limit,
	       "must be a size such as 4G, or a percentage of RAM from 0% to 90% (0: keep "
	       "no finished buffers)"),
	TOGGLE("cache", loop_hits, false, "must be auto or off"),
	UINT("quota", max_loads_per_uid, 0, 1u << 20,
	     "must be a number from 0 (no limit) to 1048576"),
	SHARE("quota", max_inflight_per_uid,
	      "must be a size such as 8G (0: no limit) or a percentage of RAM such as 50%"),
	SHARE("quota", max_cached_per_uid,
	      "must be a size such as 4G (0: no limit) or a percentage of cache_limit "
	      "such as 50%"),
	SHARE("quota", max_pinned_per_uid,
	      "must be a size such as 1G (0: no limit) or a percentage of cache_limit "
	      "such as 50%"),
	UINT("quota", max_failures_per_uid, 0, 1u << 20,
	     "must be a number of failing requests a second from 0 (no limit) to 1048576"),
	CUSTOM("preload", "preload", key_preload,
	       "must be an absolute path or glob(3) pattern"),
};

struct parse_state {
	struct config *c;
	const char *path;
	char *err;
	size_t err_len;
	int failed;
};

/* inih callback: returns 1 to go on, 0 to stop at the first error. */
static int on_key(void *data, const char *section, const char *key, const char *value,
		  int line)
{
	struct parse_state *ps = data;
	const char *what = NULL;
	bool known_section = strcmp(section, "limits") == 0;

	if (known_section) {
		if (limits_parse(&ps->c->limits, key, value, &what) == 0)
			what = NULL;
	} else {
		const struct key_rule *k = NULL;

		for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
			if (strcmp(keys[i].section, section))
				continue;
			known_section = true;
			if (!strcmp(keys[i].key, key)) {
				k = &keys[i];
				break;
			}
		}
		if (known_section)
			what = !k ? "unknown key" : k->parse(ps->c, k, value) ? k->what : NULL;
	}
	if (!known_section) {
		snprintf(ps->err, ps->err_len, "%s:%d: unknown section [%s]", ps->path, line,
			 section);
		ps->failed = 1;
		return 0;
	}
	if (what) {
		snprintf(ps->err, ps->err_len, "%s:%d: [%s] %s = %s: %s", ps->path, line,
			 section, key, value, what);
		ps->failed = 1;
		return 0;
	}
	return 1;
}

/* What a file that is not a regular file is, for the error. */
static const char *file_kind(mode_t m)
{
	if (S_ISDIR(m))
		return "a directory";
	if (S_ISFIFO(m))
		return "a FIFO";
	if (S_ISSOCK(m))
		return "a socket";
	if (S_ISCHR(m))
		return "a character device";
	if (S_ISBLK(m))
		return "a block device";
	return "not a regular file";
}

int config_load(struct config *c, const char *path, char *err, size_t err_len)
{
	struct parse_state ps = { .c = c, .path = path, .err = err, .err_len = err_len };
	struct stat st;
	FILE *f;
	int fd, r;

	/* O_NONBLOCK: a FIFO put at the path must not hold the loop in open(); the
	 * fstat then refuses it (and a directory, which stdio would read as empty)
	 * before a single byte is read. */
	fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
	if (fd < 0) {
		r = -errno;
		snprintf(err, err_len, "%s: %s", path, strerror(-r));
		return r;
	}
	if (fstat(fd, &st) < 0) {
		r = -errno;
		close(fd);
		snprintf(err, err_len, "%s: %s", path, strerror(-r));
		return r;
	}
	if (!S_ISREG(st.st_mode)) {
		close(fd);
		snprintf(err, err_len, "%s: %s, not a regular file: refusing to read it",
			 path, file_kind(st.st_mode));
		return S_ISDIR(st.st_mode) ? -EISDIR : -EINVAL;
	}
	f = fdopen(fd, "r");
	if (!f) {
		r = -errno;
		close(fd);
		snprintf(err, err_len, "%s: %s", path, strerror(-r));
		return r;
	}
	r = ini_parse_file(f, on_key, &ps);
	fclose(f);
	if (ps.failed)
		return -EINVAL;
	if (r > 0) {
		snprintf(err, err_len, "%s:%d: syntax error", path, r);
		return -EINVAL;
	}
	if (r < 0) {
		snprintf(err, err_len, "%s: cannot read", path);
		return -EIO;
	}
	return 0;
}

/* A key whose new value takes effect now. */
#define LIVE(field, key)							\
	do {									\
		if (live->field != next->field) {				\
			log_notice("reload: %s: %llu -> %llu", key,		\
				   (unsigned long long)live->field,		\
				   (unsigned long long)next->field);		\
			live->field = next->field;				\
		}								\
	} while (0)
/* A key that needs a restart: say so, keep the running value. */
#define RESTART(cond, key)							\
	do {									\
		if (cond)							\
			log_warn("reload: %s changed: takes effect after a restart; " \
				 "still running with the old value", key);	\
	} while (0)

static bool share_equal(const struct config_share *a, const struct config_share *b)
{
	return a->is_pct == b->is_pct && a->bytes == b->bytes && a->pct == b->pct;
}

bool config_reload(struct config *live, struct config *next)
{
	bool limits = !limits_equal(&live->limits, &next->limits);

	LIVE(log_level, "[daemon] log_level");
	LIVE(max_clients, "[daemon] max_clients");
	LIVE(max_clients_per_uid, "[daemon] max_clients_per_uid");
	LIVE(max_reply_bytes, "[daemon] max_reply_bytes");
	LIVE(idle_timeout, "[daemon] idle_timeout");
	if (live->detach_gid != next->detach_gid ||
	    strcmp(live->detach_group, next->detach_group)) {
		log_notice("reload: [daemon] detach_group: \"%s\" -> \"%s\"",
			   live->detach_group, next->detach_group);
		memcpy(live->detach_group, next->detach_group, sizeof(live->detach_group));
		live->detach_gid = next->detach_gid;
	}
	LIVE(max_queued, "[io] max_queued");
	LIVE(max_detached, "[io] max_detached");
	LIVE(max_loads, "[io] max_loads");
	LIVE(max_inflight, "[io] max_inflight");
	LIVE(stop_timeout_s, "[daemon] stop_timeout_s");
	LIVE(max_loads_per_uid, "[quota] max_loads_per_uid");
	LIVE(max_failures_per_uid, "[quota] max_failures_per_uid");
	LIVE(loop_hits, "[cache] loop_hits");
	live->max_inflight_per_uid = next->max_inflight_per_uid;
	RESTART(!share_equal(&live->max_cached_per_uid, &next->max_cached_per_uid),
		"[quota] max_cached_per_uid");
	RESTART(!share_equal(&live->max_pinned_per_uid, &next->max_pinned_per_uid),
		"[quota] max_pinned_per_uid");
	if (live->n_preload != next->n_preload)
		log_notice("reload: [preload]: %zu -> %zu entries", live->n_preload,
			   next->n_preload);
	{
		char **v = live->preload;
		size_t n = live->n_preload;

		live->preload = next->preload;
		live->n_preload = next->n_preload;
		next->preload = v;
		next->n_preload = n;
	}
	RESTART((live->socket == NULL) != (next->socket == NULL) ||
		(live->socket && strcmp(live->socket, next->socket)), "[daemon] socket");
	RESTART(live->socket_mode != next->socket_mode, "[daemon] socket_mode");
	RESTART(live->workers != next->workers, "[daemon] workers");
	RESTART(live->max_workers != next->max_workers, "[daemon] max_workers");
	RESTART(live->workers_per_uid != next->workers_per_uid, "[daemon] workers_per_uid");
	RESTART(live->chunk_size != next->chunk_size, "[io] chunk_size");
	RESTART(live->queue_depth != next->queue_depth, "[io] queue_depth");
	RESTART(live->max_load_size != next->max_load_size, "[io] max_load_size");
	RESTART(live->method != next->method, "[io] method");
	RESTART(live->hugetlb != next->hugetlb, "[io] hugetlb");
	RESTART(live->thp != next->thp, "[io] thp");
	RESTART(live->pipe_size != next->pipe_size, "[io] pipe_size");
	RESTART(live->direct != next->direct, "[io] direct");
	RESTART(live->fixed_buffers != next->fixed_buffers, "[io] fixed_buffers");
	if (limits) {
		log_notice("reload: [limits]: default %llu bytes/s burst %llu, global %llu "
			   "bytes/s burst %llu, %zu rules (0: unlimited)",
			   (unsigned long long)next->limits.default_rate,
			   (unsigned long long)next->limits.default_burst,
			   (unsigned long long)next->limits.global_rate,
			   (unsigned long long)next->limits.global_burst,
			   next->limits.n_rules);
		limits_move(&live->limits, &next->limits);
	}
	return limits;
}

unsigned config_clients_per_uid(const struct config *c)
{
	unsigned n = c->max_clients_per_uid ? c->max_clients_per_uid : c->max_clients / 4;

	return n ? n : 1;
}

int config_socket_path(const struct config *c, char *buf, size_t len)
{
	const char *dir;
	int n;

	if (c->socket)
		n = snprintf(buf, len, "%s", c->socket);
	else if (geteuid() == 0)
		n = snprintf(buf, len, "/run/dmaloadd/dmaloadd.sock");
	else if ((dir = getenv("XDG_RUNTIME_DIR")) && *dir)
		n = snprintf(buf, len, "%s/dmaloadd.sock", dir);
	else
		return -ENOENT;
	return (n < 0 || (size_t)n >= len) ? -ENAMETOOLONG : 0;
}
