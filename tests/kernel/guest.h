/*
 * guest.h: what the guest test programs share about the kernel they run on.
 *
 * tests/kernel/run.sh boots two kernels of the same version: "stock" (Debian's
 * source, which refuses copy_file_range into memfds and dma-bufs) and "patched"
 * (tests/kernel/patches/, which takes it and reads the file by direct I/O into the
 * buffer's pages). It names the kernel on the command line as DMALOAD_KERNEL=NAME,
 * which the kernel hands to /init's environment and /init to the programs, so each
 * case knows which answer is right on this kernel.
 *
 * The proof that such a copy read by direct I/O: afterwards, (almost) none of the
 * source's range is in its page cache, counted with cachestat(2) (Linux 6.5;
 * kernel.config turns it on). The caller drops the page cache before the copy.
 */
#pragma once

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "../lib/check.h"

#ifndef __NR_cachestat
#define __NR_cachestat 451	/* the same on every architecture */
#endif

/* Whether this is the patched test kernel. */
static inline bool guest_patched(void)
{
	const char *k = getenv("DMALOAD_KERNEL");

	return k && strcmp(k, "patched") == 0;
}

/* The kernel's name for case names: "stock" or "patched". */
static inline const char *guest_kernel(void)
{
	return guest_patched() ? "patched" : "stock";
}

/* Pages of [@off, @off + @len) of @fd in the page cache, or -errno. */
static inline long guest_cached_pages(int fd, uint64_t off, uint64_t len)
{
	struct { uint64_t off, len; } range = { off, len };
	struct { uint64_t cache, dirty, writeback, evicted, recently_evicted; } cs;

	if (syscall(__NR_cachestat, fd, &range, &cs, 0) < 0)
		return -errno;
	return (long)cs.cache;
}

/* A read cut short at the end of a file leaves its last page or two to the page
 * cache: a copy that went through the page cache leaves every page. */
#define GUEST_CACHED_MAX 2

/* After a copy_file_range load on the patched kernel: the range [@off, +@len) of
 * @path went from the disk into the buffer by direct I/O, so at most the page or two
 * a short read at the end of the file takes through the page cache are there. A
 * CHECK each. */
static inline void guest_check_not_cached(const char *path, uint64_t off, uint64_t len)
{
	long cached;
	int fd;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (!CHECKF(fd >= 0, "open %s: %s", path, strerror(errno)))
		return;
	cached = guest_cached_pages(fd, off, len);
	close(fd);
	if (CHECKF(cached >= 0, "cachestat: %s", strerror((int)-cached)))
		CHECKF(cached <= GUEST_CACHED_MAX, "%ld pages of [%llu, +%llu) are in the page "
		       "cache after the load: it went through the page cache", cached,
		       (unsigned long long)off, (unsigned long long)len);
}
