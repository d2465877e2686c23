/*
 * extents.h: the extent list of a LOAD_EXTENTS, from the wire to the runs a copy reads.
 * It reads a list that came in a memfd, checks it against the file (an extent past
 * the end is an error, never zero-fill) and against itself (buffer ranges may not
 * overlap), and turns it into runs (struct copy_seg) sorted by file offset, merging
 * extents that touch both on disk and in the buffer, so they are read as one.
 * Nothing here knows a job: the job hands its list in and gets the runs back.
 */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "copy.h"
#include "dmaload-proto.h"

/* What a list comes to. */
struct extents_plan {
	struct copy_seg *segs;		/* malloc'd, sorted by file offset; NULL when
					 * every extent is empty */
	unsigned nsegs;
	uint64_t bytes;			/* the sum of the lengths */
	uint64_t lo, hi;		/* the buffer range the extents touch: the lowest
					 * buffer offset and the highest end (0, 0 when
					 * every extent is empty) */
};

/*
 * Reads @n extents from the memfd @fd (borrowed) into *@out (malloc'd). The memfd
 * must be sealed against writes, shrinking and growing and hold exactly @n extents.
 * Returns 0, or -EINVAL with @msg (@len bytes) set. Blocking (a big list): on a worker.
 */
int extents_read_memfd(int fd, uint32_t n, struct dl_extent **out, char *msg, size_t len);

/*
 * Checks the @n extents at @ext against a file of @file_size bytes and each other and
 * plans their runs. A single extent of length DL_LENGTH_TO_EOF is resolved in place to
 * the rest of the file. Returns 0 with @p filled, -EINVAL with @msg set (past the end
 * of the file, overlapping in the buffer), or -ENOMEM. O(n log n): on a worker.
 */
int extents_plan(struct dl_extent *ext, uint32_t n, uint64_t file_size,
		 struct extents_plan *p, char *msg, size_t len);
