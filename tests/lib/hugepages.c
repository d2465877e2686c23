/*
 * hugepages.c: the huge page pool, for tests of hugetlb buffers. A test grows the pool
 * to what it needs (root only), or sets the surplus allowance
 * (vm.nr_overcommit_hugepages); what it found is restored at exit, by the process
 * that changed it (not by forked children).
 */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "harness.h"

static long hugepages_orig = -1;
static pid_t hugepages_owner;	/* forked children must not restore the pool */

long hugepages_free(void)
{
	long fr = meminfo_value("HugePages_Free"), rs = meminfo_value("HugePages_Rsvd");

	return fr < 0 || rs < 0 ? -1 : fr - rs;
}

long hugepages_total(void)
{
	return read_long_file("/proc/sys/vm/nr_hugepages");
}

static void hugepages_restore(void)
{
	if (hugepages_orig >= 0 && getpid() == hugepages_owner)
		hugepages_set((unsigned)hugepages_orig);
}

bool hugepages_set(unsigned n)
{
	FILE *f;

	if (hugepages_orig < 0) {
		hugepages_orig = hugepages_total();
		if (hugepages_orig < 0)
			return false;
		hugepages_owner = getpid();
		atexit(hugepages_restore);
	}
	f = fopen("/proc/sys/vm/nr_hugepages", "we");
	if (!f)
		return false;
	fprintf(f, "%u\n", n);
	if (fclose(f) != 0)
		return false;
	return hugepages_total() == (long)n;
}

bool hugepages_reserve(unsigned n)
{
	long now = hugepages_total(), fr = hugepages_free();

	if (now < 0 || fr < 0)
		return false;
	if (fr < (long)n && !hugepages_set((unsigned)(now + ((long)n - fr))))
		return false;
	return hugepages_free() >= (long)n;
}

static long overcommit_orig = -1;
static pid_t overcommit_owner;

static long overcommit_get(void)
{
	return read_long_file("/proc/sys/vm/nr_overcommit_hugepages");
}

static void overcommit_restore(void)
{
	if (overcommit_orig >= 0 && getpid() == overcommit_owner)
		hugepages_overcommit((unsigned)overcommit_orig);
}

bool hugepages_overcommit(unsigned n)
{
	FILE *f;

	if (overcommit_orig < 0) {
		overcommit_orig = overcommit_get();
		if (overcommit_orig < 0)
			return false;
		overcommit_owner = getpid();
		atexit(overcommit_restore);
	}
	f = fopen("/proc/sys/vm/nr_overcommit_hugepages", "we");
	if (!f)
		return false;
	fprintf(f, "%u\n", n);
	if (fclose(f) != 0)
		return false;
	return overcommit_get() == (long)n;
}
