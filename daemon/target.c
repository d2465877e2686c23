/*
 * target.c: memfd buffers. The memfd is created with MFD_ALLOW_SEALING and sized
 * with ftruncate, which allocates nothing: pages are allocated as the O_DIRECT reads
 * (or the copies of buffered reads) fault them in, so allocation overlaps the I/O
 * instead of preceding it. Sealing needs the writable mapping gone first (F_SEAL_WRITE
 * fails with EBUSY while one exists), so target_finish unmaps, then seals.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "dmaload-proto.h"
#include "target.h"

void target_init(struct target *t)
{
	memset(t, 0, sizeof(*t));
	t->fd = -1;
	t->kind = DL_TARGET_MEMFD;
}

void target_deinit(struct target *t)
{
	if (t->map)
		munmap(t->map, t->map_len);
	t->map = NULL;
	if (t->fd >= 0)
		close(t->fd);
	t->fd = -1;
}

int target_create(struct target *t, const char *name, uint64_t size)
{
	long page = sysconf(_SC_PAGESIZE);
	char label[64];
	int r;

	/* The name shows in /proc/PID/fd of every holder: say who made it. */
	snprintf(label, sizeof(label), "dmaload:%.48s", name);
	t->fd = memfd_create(label, MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (t->fd < 0)
		return -errno;
	t->size = size;
	t->map_len = (size + (uint64_t)page - 1) & ~((uint64_t)page - 1);
	if (ftruncate(t->fd, (off_t)size) < 0)
		goto fail;
	if (size == 0)
		return 0;
	t->map = mmap(NULL, t->map_len, PROT_READ | PROT_WRITE, MAP_SHARED, t->fd, 0);
	if (t->map == MAP_FAILED) {
		t->map = NULL;
		goto fail;
	}
	return 0;
fail:
	r = -errno;
	target_deinit(t);
	return r;
}

int target_finish(struct target *t)
{
	if (t->map)
		munmap(t->map, t->map_len);
	t->map = NULL;
	if (fcntl(t->fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE) < 0)
		return -errno;
	if (fcntl(t->fd, F_ADD_SEALS, F_SEAL_SEAL) < 0)
		return -errno;
	return 0;
}
