/*
 * util.c: the small things every test uses: the clock, sleeping, private temp dirs
 * under $DMALOAD_TEST_TMP (or /var/tmp: O_DIRECT needs a real filesystem, not tmpfs),
 * and the type of the filesystem a path is on.
 */
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"

uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void sleep_ms(unsigned ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000 };

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

int tdir_create(char *out, size_t len, const char *tag)
{
	const char *base = getenv("DMALOAD_TEST_TMP");
	int n;

	if (!base || !*base)
		base = "/var/tmp";
	n = snprintf(out, len, "%s/dmaload-%s.XXXXXX", base, tag);
	if (n < 0 || (size_t)n >= len)
		return -ENAMETOOLONG;
	if (!mkdtemp(out))
		return -errno;
	if (chmod(out, 0755) < 0)
		return -errno;
	return 0;
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st; (void)flag; (void)ftw;
	remove(path);
	return 0;
}

int tdir_remove(const char *path)
{
	if (!path || !*path)
		return 0;
	return nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS) < 0 ? -errno : 0;
}

int fs_type_name(const char *path, char *out, size_t len)
{
	struct statfs sf;
	const char *name;

	if (statfs(path, &sf) < 0)
		return -errno;
	switch ((unsigned long)sf.f_type) {
	case 0xEF53: name = "ext4"; break;
	case 0x01021994: name = "tmpfs"; break;
	case 0x58465342: name = "xfs"; break;
	case 0x9123683E: name = "btrfs"; break;
	case 0x794c7630: name = "overlayfs"; break;
	default: name = "other"; break;
	}
	snprintf(out, len, "%s", name);
	return 0;
}

int make_into(const char *target, const char *dest)
{
	char cmd[PATH_MAX + 128];

	snprintf(cmd, sizeof(cmd), "make -s %s DESTDIR='%s' >/dev/null 2>&1", target, dest);
	return system(cmd);
}
