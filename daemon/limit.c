/*
 * limit.c: token buckets and the [limits] section. See limit.h.
 *
 * Bucket arithmetic is exact, in integers: a bucket earns rate * dt billionths of a
 * byte in dt ns; whole bytes become tokens and the rest (frac) carries over to the
 * next refill, so a bucket gives exactly burst + rate * time, never more, however
 * often it is asked. Products go through 128 bits: hours at GB/s overflow 64.
 * The cap is the burst, raised for a waiter woken late by what it earned since it was
 * due (limit.h says why), BUCKET_CATCHUP_NS' worth at most.
 */
#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "limit.h"
#include "util.h"

#define NS 1000000000ull

/* ---- token buckets ---------------------------------------------------------------- */

void bucket_init(struct bucket *b, uint64_t rate, uint64_t burst, uint64_t now)
{
	*b = (struct bucket){ .rate = rate, .burst = burst, .tokens = burst, .t_ns = now };
}

void bucket_set(struct bucket *b, uint64_t rate, uint64_t burst, uint64_t now)
{
	bucket_refill(b, now);
	if (!b->rate) {
		b->tokens = burst;	/* was unlimited: start full */
		b->frac = 0;
	}
	b->rate = rate;
	b->burst = burst;
	if (b->tokens > burst)
		b->tokens = burst;
	b->t_ns = now;
}

/* The most the bucket may hold at @now: the burst, plus for a waiter woken after it
 * was due what came in since, BUCKET_CATCHUP_NS' worth at most. */
static uint64_t bucket_cap(const struct bucket *b, uint64_t now)
{
	uint64_t late;

	if (!b->due_ns || now <= b->due_ns)
		return b->burst;
	late = now - b->due_ns;
	if (late > BUCKET_CATCHUP_NS)
		late = BUCKET_CATCHUP_NS;
	return b->burst + (uint64_t)((unsigned __int128)late * b->rate / NS);
}

void bucket_refill(struct bucket *b, uint64_t now)
{
	unsigned __int128 nano, earned;
	uint64_t cap;

	if (!b->rate || now <= b->t_ns) {
		if (!b->rate)
			b->t_ns = now;
		return;
	}
	cap = bucket_cap(b, now);
	nano = (unsigned __int128)(now - b->t_ns) * b->rate + b->frac;
	earned = nano / NS;
	b->t_ns = now;
	if (b->tokens >= cap || earned >= cap - b->tokens) {
		if (b->tokens < cap)
			b->tokens = cap;	/* full: nothing carries over */
		b->frac = 0;
		return;
	}
	b->tokens += (uint64_t)earned;
	b->frac = (uint64_t)(nano % NS);
}

uint64_t bucket_wait(struct bucket *b, uint64_t need, uint64_t now)
{
	unsigned __int128 ns;
	uint64_t lack;

	if (!b->rate)
		return 0;
	bucket_refill(b, now);
	if (need > b->burst)
		need = b->burst;
	if (b->tokens >= need) {
		b->due_ns = 0;	/* served: what it was owed is in tokens now */
		return 0;
	}
	lack = need - b->tokens;
	/* t_ns is now: the time the missing billionths take, rounded up */
	ns = ((unsigned __int128)lack * NS - b->frac + b->rate - 1) / b->rate;
	if (!ns)
		ns = 1;
	/* the earliest waiter counts: from then on it is owed what comes in */
	if (!b->due_ns || now + (uint64_t)ns < b->due_ns)
		b->due_ns = now + (uint64_t)ns;
	return (uint64_t)ns;
}

void bucket_take(struct bucket *b, uint64_t bytes)
{
	if (!b->rate)
		return;
	b->tokens = bytes < b->tokens ? b->tokens - bytes : 0;
}

/* ---- the [limits] section ---------------------------------------------------------- */

void limits_init(struct limits *l)
{
	*l = (struct limits){ 0 };
}

void limits_deinit(struct limits *l)
{
	free(l->rules);
	l->rules = NULL;
	l->n_rules = 0;
}

void limits_move(struct limits *to, struct limits *from)
{
	limits_deinit(to);
	*to = *from;
	limits_init(from);
}

bool limits_equal(const struct limits *a, const struct limits *b)
{
	if (a->default_rate != b->default_rate || a->default_burst != b->default_burst ||
	    a->global_rate != b->global_rate || a->global_burst != b->global_burst ||
	    a->n_rules != b->n_rules)
		return false;
	for (size_t i = 0; i < a->n_rules; i++) {
		const struct limit_rule *x = &a->rules[i], *y = &b->rules[i];

		if (x->kind != y->kind || x->id != y->id || strcmp(x->name, y->name) ||
		    x->rate != y->rate || x->burst != y->burst)
			return false;
	}
	return true;
}

/* A burst is 0 (one chunk) or at least 4 KiB: chunks are cut to fit it, and O_DIRECT
 * reads need whole 4 KiB pages. */
static bool burst_ok(uint64_t burst)
{
	return burst == 0 || burst >= 4096;
}

int limits_parse_pair(const char *value, uint64_t *rate, uint64_t *burst)
{
	char buf[64], *sp, *second = NULL;
	size_t n = strlen(value);

	if (n >= sizeof(buf))
		return -EINVAL;
	memcpy(buf, value, n + 1);
	sp = strpbrk(buf, " \t");
	if (sp) {
		*sp = '\0';
		second = sp + 1;
		second += strspn(second, " \t");
		if (strpbrk(second, " \t"))
			return -EINVAL;		/* a third word */
	}
	if (parse_size(buf, rate) < 0)
		return -EINVAL;
	*burst = 0;
	if (second && *second && parse_size(second, burst) < 0)
		return -EINVAL;
	return burst_ok(*burst) ? 0 : -EINVAL;
}

static int parse_id(const char *s, bool group, uint32_t *out)
{
	char *end, buf[4096];
	unsigned long v;
	int r;

	if (!*s)
		return -EINVAL;
	errno = 0;
	v = strtoul(s, &end, 10);
	if (*s != '-' && *s != '+' && !errno && !*end && v < UINT32_MAX) {
		*out = (uint32_t)v;
		return 0;
	}
	if (group) {
		struct group gr, *res = NULL;

		r = getgrnam_r(s, &gr, buf, sizeof(buf), &res);
		if (r || !res)
			return -ENOENT;
		*out = res->gr_gid;
	} else {
		struct passwd pw, *res = NULL;

		r = getpwnam_r(s, &pw, buf, sizeof(buf), &res);
		if (r || !res)
			return -ENOENT;
		*out = res->pw_uid;
	}
	return 0;
}

int limits_parse(struct limits *l, const char *key, const char *value, const char **what)
{
	struct limit_rule rule = { 0 }, *rules;
	const char *who;
	uint64_t v;

	if (strcmp(key, "default_rate") == 0 || strcmp(key, "global_rate") == 0) {
		if (parse_size(value, &v) < 0) {
			*what = "must be bytes per second such as 50M (0: unlimited)";
			return -EINVAL;
		}
		*(key[0] == 'd' ? &l->default_rate : &l->global_rate) = v;
		return 0;
	}
	if (strcmp(key, "default_burst") == 0 || strcmp(key, "global_burst") == 0) {
		if (parse_size(value, &v) < 0 || !burst_ok(v)) {
			*what = "must be a size of at least 4K, such as 1M (0: one chunk)";
			return -EINVAL;
		}
		*(key[0] == 'd' ? &l->default_burst : &l->global_burst) = v;
		return 0;
	}
	if (strncmp(key, "uid ", 4) == 0)
		rule.kind = LIMIT_UID;
	else if (strncmp(key, "gid ", 4) == 0)
		rule.kind = LIMIT_GID;
	else if (strncmp(key, "name ", 5) == 0)
		rule.kind = LIMIT_NAME;
	else if (strcmp(key, "uid") == 0 || strcmp(key, "gid") == 0 ||
		 strcmp(key, "name") == 0) {
		*what = "write a rule as 'uid 1000 = RATE [BURST]' (a ':' reads as '=')";
		return -EINVAL;
	} else {
		*what = "unknown key";
		return -EINVAL;
	}
	who = key + (rule.kind == LIMIT_NAME ? 5 : 4);
	who += strspn(who, " \t");
	if (rule.kind == LIMIT_NAME) {
		if (!*who || strlen(who) >= sizeof(rule.name) || strpbrk(who, " \t")) {
			*what = "the name must be 1 to 32 bytes without spaces";
			return -EINVAL;
		}
		snprintf(rule.name, sizeof(rule.name), "%s", who);
	} else if (parse_id(who, rule.kind == LIMIT_GID, &rule.id) < 0) {
		*what = rule.kind == LIMIT_UID ? "no such user (a number or a user name)" :
			"no such group (a number or a group name)";
		return -EINVAL;
	}
	if (limits_parse_pair(value, &rule.rate, &rule.burst) < 0) {
		*what = "must be RATE [BURST]: bytes per second such as 200M (0: unlimited), "
			"then a burst of at least 4K (0 or none: one chunk)";
		return -EINVAL;
	}
	rules = realloc(l->rules, (l->n_rules + 1) * sizeof(*rules));
	if (!rules) {
		*what = "out of memory";
		return -ENOMEM;
	}
	l->rules = rules;
	l->rules[l->n_rules++] = rule;
	return 0;
}

static const struct limit_rule *find(const struct limits *l, enum limit_kind kind,
				     const char *name, uint32_t id)
{
	for (size_t i = 0; i < l->n_rules; i++) {
		const struct limit_rule *r = &l->rules[i];

		if (r->kind != kind)
			continue;
		if (kind == LIMIT_NAME ? strcmp(r->name, name) == 0 : r->id == id)
			return r;
	}
	return NULL;
}

const struct limit_rule *limits_lookup(const struct limits *l, const char *name,
				       uid_t uid, gid_t gid, const gid_t *groups,
				       int n_groups, uint64_t chunk, uint64_t *rate,
				       uint64_t *burst)
{
	const struct limit_rule *r = NULL;

	if (name && *name)
		r = find(l, LIMIT_NAME, name, 0);
	if (!r)
		r = find(l, LIMIT_UID, NULL, uid);
	if (!r) {
		/* the first gid rule in the file that matches any of the groups */
		for (size_t i = 0; i < l->n_rules && !r; i++) {
			const struct limit_rule *x = &l->rules[i];

			if (x->kind != LIMIT_GID)
				continue;
			if (x->id == gid)
				r = x;
			for (int k = 0; k < n_groups && !r; k++)
				if (x->id == groups[k])
					r = x;
		}
	}
	*rate = r ? r->rate : l->default_rate;
	*burst = r ? r->burst : l->default_burst;
	if (!*burst)
		*burst = chunk;
	return r;
}

void limit_rule_str(const struct limit_rule *r, char *buf, size_t len)
{
	if (!r)
		snprintf(buf, len, "default");
	else if (r->kind == LIMIT_NAME)
		snprintf(buf, len, "name %s", r->name);
	else
		snprintf(buf, len, "%s %u", r->kind == LIMIT_UID ? "uid" : "gid", r->id);
}
