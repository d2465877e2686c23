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
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

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
