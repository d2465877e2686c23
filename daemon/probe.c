/*
 * probe.c: the copy_file_range verdict table and the cachestat wrapper. See probe.h.
 *
 * The table is small and append-only: a machine has few filesystems, and a verdict
 * never changes while the kernel runs. When it is full, pairs beyond it are probed
 * each time, which costs one failing syscall per load, not per chunk.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "log.h"
#include "probe.h"

#ifndef __NR_cachestat
#define __NR_cachestat 451	/* the same on every architecture (Linux 6.5) */
#endif

/* bookworm's headers predate cachestat: the UAPI structs, as the kernel defines them */
struct dl_cachestat_range {
	uint64_t off;
	uint64_t len;
};

struct dl_cachestat {
	uint64_t nr_cache;
	uint64_t nr_dirty;
	uint64_t nr_writeback;
	uint64_t nr_evicted;
	uint64_t nr_recently_evicted;
};

#define PROBE_MAX 64
#define PROBE_LEN (64u << 10)

struct cfr_entry {
	dev_t dev;
	char kind[80];		/* "memfd", "heap:NAME" (names up to 63 bytes) */
	enum cfr_verdict verdict;
	int err;
};

static pthread_mutex_t probe_lock = PTHREAD_MUTEX_INITIALIZER;
static struct cfr_entry probe_table[PROBE_MAX];
static unsigned probe_n;
static bool no_cachestat;

static struct cfr_entry *probe_find(dev_t dev, const char *kind)
{
	for (unsigned i = 0; i < probe_n; i++)
		if (probe_table[i].dev == dev && !strcmp(probe_table[i].kind, kind))
			return &probe_table[i];
	return NULL;
}

static void probe_remember(dev_t dev, const char *kind, enum cfr_verdict v, int err)
{
	struct cfr_entry *e;

	pthread_mutex_lock(&probe_lock);
	/* Two workers may probe the same pair at once; the first entry wins. */
	if (!probe_find(dev, kind) && probe_n < PROBE_MAX) {
		e = &probe_table[probe_n++];
		e->dev = dev;
		snprintf(e->kind, sizeof(e->kind), "%s", kind);
		e->verdict = v;
		e->err = err;
		pthread_mutex_unlock(&probe_lock);
		if (v == CFR_REFUSED)
			log_notice("copy_file_range from dev %u:%u into %s: %s; method cfr "
				   "uses io_uring splice pairs there", major(dev), minor(dev),
				   kind, strerrorname_np(err));
		else
			log_info("copy_file_range from dev %u:%u into %s: works; method cfr "
				 "uses it there", major(dev), minor(dev), kind);
		return;
	}
	pthread_mutex_unlock(&probe_lock);
}

enum cfr_verdict probe_cfr(int src_fd, dev_t dev, uint64_t src_off, uint64_t len,
			   uint64_t dst_off, int dst_fd, const char *kind, int *err)
{
	struct cfr_entry *e;
	enum cfr_verdict v = CFR_UNKNOWN;
	loff_t in = (loff_t)src_off, out = (loff_t)dst_off;
	ssize_t n;

	*err = 0;
	pthread_mutex_lock(&probe_lock);
	e = probe_find(dev, kind);
	if (e) {
		v = e->verdict;
		*err = e->err;
	}
	pthread_mutex_unlock(&probe_lock);
	if (v != CFR_UNKNOWN)
		return v;

	n = copy_file_range(src_fd, &in, dst_fd, &out, len < PROBE_LEN ? len : PROBE_LEN, 0);
	if (n > 0) {
		probe_remember(dev, kind, CFR_ACCEPTED, 0);
		return CFR_ACCEPTED;
	}
	if (n < 0 && (errno == EXDEV || errno == EINVAL || errno == EOPNOTSUPP ||
		      errno == ENOSYS)) {
		*err = errno;
		probe_remember(dev, kind, CFR_REFUSED, errno);
		return CFR_REFUSED;
	}
	/* 0 bytes (an empty range) or an I/O error says nothing about the pair. */
	*err = n < 0 ? errno : 0;
	return CFR_UNKNOWN;
}

void probe_reset(void)
{
	pthread_mutex_lock(&probe_lock);
	probe_n = 0;
	pthread_mutex_unlock(&probe_lock);
}

int probe_cached(int fd, uint64_t off, uint64_t len, uint64_t *cached, uint64_t *pages)
{
	uint64_t page = (uint64_t)getpagesize();
	struct dl_cachestat_range range = { .off = off, .len = len };
	struct dl_cachestat cs;

	if (__atomic_load_n(&no_cachestat, __ATOMIC_RELAXED))
		return -ENOSYS;
	if (syscall(__NR_cachestat, fd, &range, &cs, 0) < 0) {
		if (errno == ENOSYS)
			__atomic_store_n(&no_cachestat, true, __ATOMIC_RELAXED);
		return -errno;
	}
	*cached = cs.nr_cache;
	*pages = len ? (off + len + page - 1) / page - off / page : 0;
	return 0;
}
