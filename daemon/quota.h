/*
 * quota.h: what each uid has in flight in the engine: its loads (from LOAD to their
 * release) and the bytes of the buffers they were admitted for, against [quota]
 * max_loads_per_uid and max_inflight_per_uid. Root (uid 0) is counted but never
 * refused: the daemon's own preloads are root's, and root sets the quotas. The
 * cached and pinned bytes per uid are the cache's (cache.h).
 *
 * One per engine. Loads start and end on the loop; their bytes are admitted on the
 * workers, where buffers are made (job.c's prepare step), so a mutex guards the
 * tallies. A uid's tally exists while it has a load.
 */
#pragma once

#include <pthread.h>
#include <stdint.h>
#include <sys/types.h>

#include "list.h"

struct quota_uid {
	struct list link;		/* in quota->uids */
	uid_t uid;
	unsigned loads;			/* jobs not yet released */
	uint64_t bytes;			/* buffer bytes admitted to them */
};

struct quota {
	pthread_mutex_t lock;		/* the list and every tally in it */
	struct list uids;
};

void quota_init(struct quota *q);
/* Frees the tallies left (none once every job was released). */
void quota_deinit(struct quota *q);

/* Loads @uid has in flight now. */
unsigned quota_loads(const struct quota *q, uid_t uid);

/* A load of @uid starts: its tally (made if needed), or NULL without memory (the load
 * then goes uncounted). */
struct quota_uid *quota_load_start(struct quota *q, uid_t uid);
/* It was released, with @bytes admitted (quota_bytes_admit): the tally goes when its
 * last load does. Takes NULL. */
void quota_load_end(struct quota *q, struct quota_uid *u, uint64_t bytes);

/*
 * Admits @bytes more for @u under @max bytes (UINT64_MAX: none; root is never
 * refused). Returns 0 (counted), or -EDQUOT with the numbers in @msg. Any thread.
 */
int quota_bytes_admit(struct quota *q, struct quota_uid *u, uint64_t bytes, uint64_t max, char *msg,
		      size_t len);
