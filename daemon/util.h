/*
 * util.h: the small helpers every part of the daemon may use, whatever its layer: the
 * clock, /proc/meminfo, rounding. Nothing here knows any daemon object.
 */
#pragma once

#include <stdint.h>

/* CLOCK_MONOTONIC in nanoseconds: the one clock of timers, rates and ages. */
uint64_t now_ns(void);

/* N of a "Key: N" line of /proc/meminfo (a count of pages, or kB for sizes), -1 if the
 * key is missing or the file cannot be read. */
long meminfo_value(const char *key);

/* The number in file @path (a /proc/sys value such as vm.nr_hugepages), -1 if it cannot
 * be read. */
long read_long_file(const char *path);

/* Parses "4M", "512K", "1G", "123" (binary suffixes, case-insensitive, "MiB" and "MB"
 * alike) into *out. Returns 0 or -EINVAL (also on overflow). */
int parse_size(const char *s, uint64_t *out);

/* Closes the @n fds at @fds that are >= 0 (fds received with a request). */
void close_fds(const int *fds, int n);

/* @v rounded up to a multiple of @align, a power of two. */
static inline uint64_t round_up(uint64_t v, uint64_t align)
{
	return (v + align - 1) & ~(align - 1);
}
