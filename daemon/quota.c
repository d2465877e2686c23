/*
 * quota.c: loads and bytes in flight per uid (see quota.h). A list, not a table: the
 * uids with loads in flight at once are few, and each LOAD looks its own up once.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "quota.h"

void quota_init(struct quota *q)
{
	pthread_mutex_init(&q->lock, NULL);
	list_init(&q->uids);
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
