/*
 * limit.h: bandwidth limits. A token bucket holds up to @burst bytes and fills at
 * @rate bytes/s; a chunk may be issued only when every bucket that applies to it (the
 * daemon's, its client's, its load's) holds at least the chunk's bytes, which are then
 * taken out. Limits count bytes asked of the disk, charged when a chunk is issued.
 *
 * A waiter that is woken late keeps what the bucket earned since it was due, up to
 * BUCKET_CATCHUP_NS of the rate beyond the burst: the event loop's timers fire a
 * millisecond or more late (epoll's timeout is in whole milliseconds, and the loop may
 * be busy or wait for a core), and at 2 GB/s a 1 MiB bucket fills in half a
 * millisecond, so capping it at the burst threw away up to half of the rate (measured:
 * 0.55x of 2 GB/s). 100 ms, not 20: on two busy cores the loop itself may wait that
 * long for one (in alternating runs 20 ms fell short more often; docs/BENCHMARKS.md).
 * So over any stretch of t ns a bucket gives at most burst + rate * (t +
 * BUCKET_CATCHUP_NS), and an idle bucket (nobody waiting) still holds only the burst.
 *
 * The [limits] section of dmaloadd.conf says which rate and burst each client gets:
 *
 *   default_rate = 50M          every client not matched below (0: unlimited)
 *   default_burst = 1M
 *   global_rate = 2G            the whole daemon (0: unlimited)
 *   global_burst = 8M
 *   name preloader = 20M 1M     the HELLO name; then
 *   uid 1000 = 200M 4M          the client's uid (number or user name); then
 *   gid video = 100M            its gid or a supplementary group (number or name)
 *
 * A rule is "KIND WHO = RATE [BURST]" (inih takes ':' for '=', so no "uid:1000").
 * A burst of 0 or none means one chunk (chunk_size). The first matching rule wins,
 * looked up in the order name, uid, gid; within a kind, in file order.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* ---- token buckets ---------------------------------------------------------------- */

struct bucket {
	uint64_t rate;		/* bytes/s; 0: unlimited (the bucket never stops anything) */
	uint64_t burst;		/* most bytes it holds */
	uint64_t tokens;	/* bytes it holds now (at t_ns) */
	uint64_t t_ns;		/* when tokens was last brought up to date */
	uint64_t frac;		/* what it earned past whole bytes, in 1e-9 bytes */
	uint64_t due_ns;	/* when a waiter was told it would have its bytes; 0: none */
};

/* How late a waiter may be woken and still get all it was owed (see above). */
#define BUCKET_CATCHUP_NS 100000000ull

/* A full bucket at @now. */
void bucket_init(struct bucket *b, uint64_t rate, uint64_t burst, uint64_t now);
/* New rate and burst (SIGHUP); keeps the tokens it holds, at most the new burst. */
void bucket_set(struct bucket *b, uint64_t rate, uint64_t burst, uint64_t now);
/* Adds what @rate earned since the last call, up to @burst (plus what a late waiter is
 * owed since it was due, BUCKET_CATCHUP_NS at most). */
void bucket_refill(struct bucket *b, uint64_t now);
/* 0 if the bucket holds @need bytes at @now (refilled), else the ns until it will;
 * then the bucket remembers that someone waits from then on, until a call finds
 * enough.
 * @need above the burst is treated as the burst, so a bucket never stops for good. */
uint64_t bucket_wait(struct bucket *b, uint64_t need, uint64_t now);
/* Takes @bytes out (at most what it holds: callers ask bucket_wait first). */
void bucket_take(struct bucket *b, uint64_t bytes);

/* ---- the [limits] section ---------------------------------------------------------- */

enum limit_kind {
	LIMIT_NAME,
	LIMIT_UID,
	LIMIT_GID,
};

struct limit_rule {
	enum limit_kind kind;
	uint32_t id;		/* uid or gid */
	char name[33];		/* HELLO name (DL_NAME_LEN bytes at most) */
	uint64_t rate, burst;	/* burst 0: one chunk */
};

struct limits {
	uint64_t default_rate, default_burst;
	uint64_t global_rate, global_burst;
	struct limit_rule *rules;
	size_t n_rules;
};

void limits_init(struct limits *l);		/* unlimited, no rules */
void limits_deinit(struct limits *l);		/* safe twice */
/* Moves @from into @to (which is deinit'ed first); @from is left empty. */
void limits_move(struct limits *to, struct limits *from);
/* Whether two sets of limits say the same thing. */
bool limits_equal(const struct limits *a, const struct limits *b);

/*
 * One "key = value" line of [limits]. Returns 0, or -EINVAL with what is wrong in
 * @what (a static string, for "FILE:LINE: [limits] KEY = VALUE: what"), or -ENOMEM.
 * User and group names are looked up here (getpwnam_r, getgrnam_r).
 */
int limits_parse(struct limits *l, const char *key, const char *value, const char **what);

/* "RATE [BURST]": sizes with K/M/G/T suffixes. 0 or -EINVAL. */
int limits_parse_pair(const char *value, uint64_t *rate, uint64_t *burst);

/*
 * The rate and burst for a client with @name (HELLO, may be empty), @uid, @gid and
 * @groups: the first matching rule, else the defaults. A burst of 0 comes back as
 * @chunk. Returns the matching rule or NULL (defaults), for logs.
 */
const struct limit_rule *limits_lookup(const struct limits *l, const char *name,
				       uid_t uid, gid_t gid, const gid_t *groups,
				       int n_groups, uint64_t chunk, uint64_t *rate,
				       uint64_t *burst);

/* "uid 1000", "name preloader" for logs. */
void limit_rule_str(const struct limit_rule *r, char *buf, size_t len);
