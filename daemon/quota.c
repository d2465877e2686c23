/*
 * quota.c: loads and bytes in flight per uid, and the budget of failing requests per
 * uid (see quota.h). Lists, not tables: the uids with loads in flight at once are
 * few, as are those that failed in the last second or two, and each request looks
 * its own up once.
 */
#include <errno.h>
#include <stdio.h>
#include <stdbool.h>
#include <stdlib.h>
#include <unistd.h>

#include "log.h"
#include "quota.h"

void quota_init(struct quota *q)
{
	pthread_mutex_init(&q->lock, NULL);
	list_init(&q->uids);
	list_init(&q->fails);
}

void quota_deinit(struct quota *q)
{
	struct list *pos, *tmp;

	if (!q->uids.next)
		return;
	list_for_each_safe(pos, tmp, &q->uids) {
		list_del(pos);
		free(list_entry(pos, struct quota_uid, link));
	}
	list_for_each_safe(pos, tmp, &q->fails) {
		list_del(pos);
		free(list_entry(pos, struct quota_fails, link));
	}
	pthread_mutex_destroy(&q->lock);
}

static struct quota_uid *quota_find(const struct quota *q, uid_t uid)
{
	struct list *pos;

	for (pos = q->uids.next; pos != &q->uids; pos = pos->next) {
		struct quota_uid *u = list_entry(pos, struct quota_uid, link);

		if (u->uid == uid)
			return u;
	}
	return NULL;
}

unsigned quota_loads(const struct quota *q, uid_t uid)
{
	struct quota *mq = (struct quota *)q;	/* the lock only */
	const struct quota_uid *u;
	unsigned n;

	pthread_mutex_lock(&mq->lock);
	u = quota_find(q, uid);
	n = u ? u->loads : 0;
	pthread_mutex_unlock(&mq->lock);
	return n;
}

struct quota_uid *quota_load_start(struct quota *q, uid_t uid)
{
	struct quota_uid *u;

	pthread_mutex_lock(&q->lock);
	u = quota_find(q, uid);
	if (!u) {
		u = calloc(1, sizeof(*u));
		if (u) {
			u->uid = uid;
			list_add_tail(&q->uids, &u->link);
		}
	}
	if (u)
		u->loads++;
	pthread_mutex_unlock(&q->lock);
	return u;
}

void quota_load_end(struct quota *q, struct quota_uid *u, uint64_t bytes)
{
	if (!u)
		return;
	pthread_mutex_lock(&q->lock);
	u->bytes -= bytes < u->bytes ? bytes : u->bytes;
	if (!--u->loads)
		list_del(&u->link);
	else
		u = NULL;
	pthread_mutex_unlock(&q->lock);
	free(u);
}

int quota_bytes_admit(struct quota *q, struct quota_uid *u, uint64_t bytes, uint64_t max,
		      char *msg, size_t len)
{
	int r = 0;

	if (!u)
		return 0;
	pthread_mutex_lock(&q->lock);
	if (u->uid != 0 && max != UINT64_MAX && (bytes > max || u->bytes > max - bytes)) {
		snprintf(msg, len, "uid %u has %llu bytes of loads in flight: %llu more is "
			 "over its quota (max_inflight_per_uid = %llu bytes)", u->uid,
			 (unsigned long long)u->bytes, (unsigned long long)bytes,
			 (unsigned long long)max);
		r = -EDQUOT;
	} else {
		u->bytes += bytes;
	}
	pthread_mutex_unlock(&q->lock);
	return r;
}

/* ---- failing requests ---------------------------------------------------------------- */

static bool fails_exempt(uid_t uid, unsigned rate)
{
	return !rate || uid == 0 || uid == geteuid();
}

/* Refills @f to @now; true when it is full again (nothing to remember). */
static bool fails_refill(struct quota_fails *f, unsigned rate, uint64_t now)
{
	if (now > f->at_ns)
		f->level += (double)(now - f->at_ns) * rate / 1e9;
	f->at_ns = now;
	if (f->level < (double)rate)
		return false;
	f->level = rate;
	return true;
}

/* @uid's bucket refilled to @now, or NULL when it is full (forgotten then). Drops the
 * other full ones on the way, so the list holds only uids that failed lately. */
static struct quota_fails *fails_find(struct quota *q, uid_t uid, unsigned rate,
				      uint64_t now)
{
	struct quota_fails *found = NULL;
	struct list *pos, *tmp;

	list_for_each_safe(pos, tmp, &q->fails) {
		struct quota_fails *f = list_entry(pos, struct quota_fails, link);

		if (f->uid == uid)
			found = f;
		if (fails_refill(f, rate, now)) {
			list_del(&f->link);
			free(f);
			if (found == f)
				found = NULL;
		}
	}
	return found;
}

void quota_failed(struct quota *q, uid_t uid, unsigned n, unsigned rate, uint64_t now_ns)
{
	struct quota_fails *f;

	if (fails_exempt(uid, rate))
		return;
	f = fails_find(q, uid, rate, now_ns);
	if (!f) {
		f = calloc(1, sizeof(*f));
		if (!f)
			return;		/* not counted: no worse than no limit */
		f->uid = uid;
		f->level = rate;
		f->at_ns = now_ns;
		list_add_tail(&q->fails, &f->link);
	}
	f->n++;
	/* A second's worth of debt at most: a uid that stops failing is read again
	 * within two seconds, however much it failed before. */
	f->level -= n;
	if (f->level < 1.0 - (double)rate)
		f->level = 1.0 - (double)rate;
	/* Once per spell: the entry goes when its bucket is full again. */
	if (f->level < 1.0 && !f->told) {
		f->told = true;
		log_notice("uid %u: %llu requests failed within a second or so, over "
			   "max_failures_per_uid = %u a second: its requests are read at that "
			   "pace", (unsigned)uid, (unsigned long long)f->n, rate);
	}
}

uint64_t quota_fail_wait(struct quota *q, uid_t uid, unsigned rate, uint64_t now_ns)
{
	struct quota_fails *f;

	if (fails_exempt(uid, rate) || list_empty(&q->fails))
		return 0;
	f = fails_find(q, uid, rate, now_ns);
	if (!f || f->level >= 1.0)
		return 0;
	return (uint64_t)((1.0 - f->level) * 1e9 / rate) + 1;
}
