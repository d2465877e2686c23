/*
 * target.h: the buffer a load fills and the client receives. For now one kind: a
 * memfd, mapped into the daemon while it is filled, then unmapped and sealed so every
 * holder can trust it never changes.
 */
#pragma once

#include <stdint.h>

struct target {
	int fd;			/* the memfd; -1 when none */
	void *map;		/* shared writable mapping while filling, NULL otherwise */
	uint64_t size;		/* bytes the client asked for */
	uint64_t map_len;	/* size rounded up to whole pages */
	uint8_t kind;		/* enum dl_target */
};

void target_init(struct target *t);
/* Unmaps and closes; safe to call twice. Freeing a big memfd's pages can take a
 * while: call from a worker. */
void target_deinit(struct target *t);

/* Creates a memfd of @size bytes named after @name, and maps it. Pages are not
 * touched: the reads fault them in as they land. Returns 0 or -errno. */
int target_create(struct target *t, const char *name, uint64_t size);

/* Unmaps and seals (shrink, grow, write, then seal). Returns 0 or -errno. */
int target_finish(struct target *t);
