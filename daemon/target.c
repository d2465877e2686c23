/*
 * target.c: memfd buffers. The memfd is created with MFD_ALLOW_SEALING and sized
 * with ftruncate, which allocates nothing: 4 KiB pages are allocated as the O_DIRECT
 * reads (or the copies of buffered reads) fault them in, so allocation overlaps the
 * I/O instead of preceding it. Sealing needs the writable mapping gone first
 * (F_SEAL_WRITE fails with EBUSY while one exists), so target_finish unmaps, then
 * seals.
 *
 * Huge pages cost a fraction of 4 KiB pages to allocate, fault and free (measured:
 * about 115 ms against 300-800 ms per GiB). A hugetlb file's size must be a whole
 * number of huge pages, so the buffer is rounded up and the client is told the real
 * data size. The shared mapping reserves every huge page of the buffer at mmap time:
 * a pool that runs short fails the mmap, before any byte is read, and the buffer is
 * made again from 4 KiB pages. That is the only way to use the pool without racing
 * other users of it; reading free_hugepages first would only be a guess.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/vfs.h>
#include <unistd.h>

#include "dmaload-proto.h"
#include "log.h"
#include "target.h"

/* The pool was short last time: log the fallback once, not for every load. */
static bool pool_short_logged;

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

/* A "Key: N" line of /proc/meminfo, -1 if missing. */
static long meminfo_pages(const char *key)
{
	size_t kl = strlen(key);
	char line[128];
	long v = -1;
	FILE *f = fopen("/proc/meminfo", "re");

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, key, kl) && line[kl] == ':') {
			v = strtol(line + kl + 1, NULL, 10);
			break;
		}
	fclose(f);
	return v;
}

uint64_t target_huge_page_size(void)
{
	static uint64_t size;
	unsigned long kb;
	char line[128];
	FILE *f;

	if (__atomic_load_n(&size, __ATOMIC_RELAXED))
		return size;
	f = fopen("/proc/meminfo", "re");
	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "Hugepagesize: %lu kB", &kb) == 1) {
			__atomic_store_n(&size, (uint64_t)kb << 10, __ATOMIC_RELAXED);
			break;
		}
	fclose(f);
	return size;
}

/* Makes the memfd, sizes it to @len and maps @map_len bytes of it (@len rounded up
 * to its pages). Returns 0 or -errno. */
static int target_make(struct target *t, const char *label, unsigned flags,
		       uint64_t len, uint64_t map_len)
{
	int r;

	t->fd = memfd_create(label, MFD_CLOEXEC | MFD_ALLOW_SEALING | flags);
	if (t->fd < 0)
		return -errno;
	t->map_len = map_len;
	if (ftruncate(t->fd, (off_t)len) < 0)
		goto fail;
	if (map_len == 0)
		return 0;
	t->map = mmap(NULL, map_len, PROT_READ | PROT_WRITE, MAP_SHARED, t->fd, 0);
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

/* Tries a hugetlb buffer. Returns 0, or -errno (-ENOMEM: the pool has no room). */
static int target_make_huge(struct target *t, const char *label, uint64_t size,
			    uint64_t huge)
{
	uint64_t len = (size + huge - 1) & ~(huge - 1);
	int r = target_make(t, label, MFD_HUGETLB, len, len);

	if (r == 0) {
		t->hugetlb = true;
		if (__atomic_exchange_n(&pool_short_logged, false, __ATOMIC_RELAXED))
			log_notice("huge pages: the pool has room again");
	}
	return r;
}

int target_create(struct target *t, const char *name, uint64_t size,
		  enum config_toggle hugetlb, bool exact)
{
	uint64_t page = (uint64_t)getpagesize(), huge = target_huge_page_size();
	char label[64];
	int r;

	/* The name shows in /proc/PID/fd of every holder: say who made it. */
	snprintf(label, sizeof(label), "dmaload:%.48s", name);
	t->size = size;
	if (hugetlb != CONFIG_OFF && huge && size > 0 &&
	    (hugetlb == CONFIG_ON || size >= huge) && !(exact && size % huge)) {
		r = target_make_huge(t, label, size, huge);
		if (r == 0)
			return 0;
		t->hugetlb_short = true;
		if (!__atomic_exchange_n(&pool_short_logged, true, __ATOMIC_RELAXED))
			log_notice("huge pages: no room for a %llu-byte buffer (%s; %ld of "
				   "%ld huge pages free); using 4 KiB pages until the pool "
				   "has room (see /proc/sys/vm/nr_hugepages)",
				   (unsigned long long)size, strerror(-r),
				   meminfo_pages("HugePages_Free") -
				   meminfo_pages("HugePages_Rsvd"),
				   meminfo_pages("HugePages_Total"));
	}
	return target_make(t, label, 0, size, (size + page - 1) & ~(page - 1));
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
