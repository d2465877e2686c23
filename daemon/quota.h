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
 *
 * Failing requests: a request that fails (an ERROR reply), or a load dropped or
 * cancelled because its connection hung up, costs the daemon work and returns
 * nothing, so a client that resends them as fast as they are answered (loads of
 * files it holds leases on) or connects, asks and dies in a loop can spin it. Each
 * such failure of a uid takes one token (a cancelled load one more per chunk it
 * read) of a bucket that fills at
 * [quota] max_failures_per_uid a second and holds a second's worth; it may run a
 * second's worth into debt. While the bucket holds less than one token the uid's
 * requests are not read (client.c holds its connections), so its failures are
 * paced at that rate whatever it sends, and a uid that seldom fails never waits.
 * Root and the daemon's own uid are exempt, as from every quota.
 */
#pragma once

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "list.h"

struct quota_uid {
	struct list link;		/* in quota->uids */
	uid_t uid;
	unsigned loads;			/* jobs not yet released */
	uint64_t bytes;			/* buffer bytes admitted to them */
};

/* A uid's failing requests (quota_failed): a bucket of max_failures_per_uid a second,
 * which may run into a second's debt. Loop thread only. */
struct quota_fails {
	struct list link;		/* in quota->fails */
	uid_t uid;
	double level;			/* failures it may still cause at once; below 1:
					 * its requests wait */
	uint64_t at_ns;			/* when level was last refilled */
	uint64_t n;			/* failures counted (for the log) */
	bool told;			/* logged that it is held */
};

struct quota {
	pthread_mutex_t lock;		/* the list and every tally in it */
	struct list uids;
	struct list fails;		/* loop thread only: uids whose bucket is not full */
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

/* A request of @uid failed at @now_ns (CLOCK_MONOTONIC ns), costing @n tokens (a load
 * cancelled after it read counts its chunks too), under @rate failures a second (0: no
 * limit). Loop thread. */
void quota_failed(struct quota *q, uid_t uid, unsigned n, unsigned rate, uint64_t now_ns);
/* How long @uid's requests wait before they are read (ns, 0: none) at @now_ns under
 * @rate: the time until its bucket holds a token again. Loop thread. */
uint64_t quota_fail_wait(struct quota *q, uid_t uid, unsigned rate, uint64_t now_ns);
