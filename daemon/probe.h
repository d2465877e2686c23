/*
 * probe.h: what the running kernel and the filesystems accept, learned once and
 * remembered: whether copy_file_range goes from a given source filesystem into a
 * given kind of buffer (patched kernels take it for dma-bufs and memfds; stock
 * kernels answer EXDEV), and how much of a file range is in the page cache
 * (cachestat(2), Linux 6.5+).
 *
 * The probe table is shared by the worker threads (they open sources and create
 * buffers); it is locked inside.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

/* What copy_file_range did for a (source filesystem, target kind) pair. */
enum cfr_verdict {
	CFR_UNKNOWN = 0,	/* not probed yet (or the probe was inconclusive) */
	CFR_ACCEPTED,		/* the syscall copies: use it per chunk */
	CFR_REFUSED,		/* EXDEV / EINVAL / EOPNOTSUPP / ENOSYS: splice instead */
};

/*
 * Whether copy_file_range from @src_fd (a file on device @dev) into @dst_fd (a buffer
 * of kind @kind, e.g. "memfd") works. The first call for a (dev, kind) pair copies up
 * to @len bytes (at most 64 KiB) from @src_off to @dst_off of @dst_fd: real bytes of
 * the load, where they belong, so nothing is wasted (and nothing outside the load is
 * written, into a caller's buffer); later calls only look the verdict up. A refusal is
 * remembered and logged once; other errors (EIO, ...) are not remembered. On refusal
 * *err is the errno the kernel gave (for logs and the benchmark), else 0.
 * Blocking: call from a worker.
 */
enum cfr_verdict probe_cfr(int src_fd, dev_t dev, uint64_t src_off, uint64_t len,
			   uint64_t dst_off, int dst_fd, const char *kind, int *err);

/* Forgets every verdict (tests; a kernel does not change under a running daemon). */
void probe_reset(void);

/*
 * Pages of [off, off + len) of @fd that are in the page cache, and the pages the range
 * spans, via cachestat(2). Returns 0, or -ENOSYS when the kernel has no cachestat
 * (remembered: later calls return -ENOSYS at once) or another -errno. Does not block
 * on I/O: it only walks the page cache, so the loop may call it.
 */
int probe_cached(int fd, uint64_t off, uint64_t len, uint64_t *cached, uint64_t *pages);
