/*
 * target.h: the buffer a load fills and the client receives. For now one kind: a
 * memfd, backed by 4 KiB pages or by huge pages (MFD_HUGETLB), mapped into the daemon
 * while it is filled, then unmapped and sealed so every holder can trust it never
 * changes.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "config.h"

struct target {
	int fd;			/* the memfd; -1 when none */
	void *map;		/* shared writable mapping while filling, NULL otherwise */
	uint64_t size;		/* bytes of data the client asked for */
	uint64_t map_len;	/* the buffer object's size: size rounded up to pages */
	uint8_t kind;		/* enum dl_target */
	bool hugetlb;		/* backed by huge pages */
	bool hugetlb_short;	/* huge pages were wanted but the pool had no room */
};

void target_init(struct target *t);
/* Unmaps and closes; safe to call twice. Freeing a big memfd's pages can take a
 * while: call from a worker. */
void target_deinit(struct target *t);

/*
 * Creates a memfd of @size bytes named after @name, and maps it. With @hugetlb on,
 * or auto and @size at least one huge page, it tries huge pages first: the mapping
 * reserves them all, so a pool without room fails here (never later, mid-load) and
 * the buffer falls back to 4 KiB pages. @exact: the buffer object must be exactly
 * @size bytes, so huge pages only when @size is a multiple of their size. 4 KiB pages
 * are not touched: the reads fault them in as they land. Returns 0 or -errno.
 */
int target_create(struct target *t, const char *name, uint64_t size,
		  enum config_toggle hugetlb, bool exact);

/* Unmaps and seals (shrink, grow, write, then seal). Returns 0 or -errno. */
int target_finish(struct target *t);

/* Size of the default huge page (from the kernel), 0 if there are none. */
uint64_t target_huge_page_size(void);
