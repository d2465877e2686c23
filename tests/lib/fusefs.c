/*
 * fusefs.c: mounting and tearing down the FUSE test filesystem (see fusefs.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fusefs.h"
#include "harness.h"

#define FUSE_SUPER_MAGIC 0x65735546
#define FUSECTL_DIR "/sys/fs/fuse/connections"

const char *fusefs_binary(void)
{
	static char path[PATH_MAX];
	const char *e = getenv("DMALOAD_FUSEFS");
	char d[PATH_MAX];

	if (e && *e)
		return e;
	e = getenv("DMALOADD");
	if (e && *e) {
		snprintf(d, sizeof(d), "%s", e);
		snprintf(path, sizeof(path), "%s/tests/fuse/dl-fusefs", dirname(d));
		return path;
	}
	return "build/tests/fuse/dl-fusefs";
}

static bool mount_live(const char *mnt, unsigned *conn)
{
	struct statfs sf;
	struct stat st;

	if (statfs(mnt, &sf) < 0 || sf.f_type != FUSE_SUPER_MAGIC || stat(mnt, &st) < 0)
		return false;
	/* the connection's directory is named after the superblock's device number */
	*conn = major(st.st_dev) ? (unsigned)st.st_dev : minor(st.st_dev);
	return true;
}

int fusefs_mount(struct fusefs *f, const char *parent, const char *mode, uint64_t size,
		 char *why, size_t why_len)
{
	const char *bin = fusefs_binary();
	char size_arg[64], mode_arg[64];
	uint64_t until;
	int status;

	f->pid = -1;
	f->conn = 0;
	snprintf(f->mnt, sizeof(f->mnt), "%.*s/fuse", PATH_MAX - 8, parent);
	snprintf(f->file, sizeof(f->file), "%s/%s", f->mnt, FUSEFS_FILE);
	if (access("/dev/fuse", R_OK | W_OK) < 0) {
		snprintf(why, why_len, "FUSE unavailable: /dev/fuse: %s", strerror(errno));
		return -ENODEV;
	}
	if (access(bin, X_OK) < 0) {
		snprintf(why, why_len, "FUSE helper %s: %s (built when libfuse3-dev is "
			 "installed)", bin, strerror(errno));
		return -ENOENT;
	}
	if (mkdir(f->mnt, 0755) < 0 && errno != EEXIST) {
		snprintf(why, why_len, "mkdir %s: %s", f->mnt, strerror(errno));
		return -errno;
	}
	snprintf(size_arg, sizeof(size_arg), "--size=%llu", (unsigned long long)size);
	snprintf(mode_arg, sizeof(mode_arg), "--mode=%s", mode);
	f->pid = fork();
	if (f->pid < 0) {
		snprintf(why, why_len, "fork: %s", strerror(errno));
		return -errno;
	}
	if (f->pid == 0) {
		int null = open("/dev/null", O_RDONLY);

		if (null >= 0)
			dup2(null, 0);
		execl(bin, bin, f->mnt, mode_arg, size_arg, (char *)NULL);
		fprintf(stderr, "exec %s: %s\n", bin, strerror(errno));
		_exit(127);
	}
	until = now_ms() + 10000;
	while (!mount_live(f->mnt, &f->conn)) {
		if (waitpid(f->pid, &status, WNOHANG) == f->pid) {
			f->pid = -1;
			snprintf(why, why_len, "FUSE mount refused: %s exited with status %d "
				 "(its stderr has the reason)", bin,
				 WIFEXITED(status) ? WEXITSTATUS(status) : -1);
			rmdir(f->mnt);
			return -EPERM;
		}
		if (now_ms() > until) {
			fusefs_unmount(f);
			snprintf(why, why_len, "FUSE mount not live after 10 s");
			return -ETIMEDOUT;
		}
		sleep_ms(10);
	}
	return 0;
}

/* Aborts connection @conn through fusectl (mounting it if needed): every request
 * pending or to come fails with ENOTCONN, nothing waits on the helper any more. */
static void conn_abort(unsigned conn)
{
	char p[128];
	int fd;

	snprintf(p, sizeof(p), FUSECTL_DIR "/%u/abort", conn);
	if (access(p, F_OK) < 0)
		mount("fusectl", FUSECTL_DIR, "fusectl", 0, NULL);
	fd = open(p, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return;
	if (write(fd, "1", 1) < 0) {
		/* killing the helper below aborts it too */
	}
	close(fd);
}

void fusefs_unmount(struct fusefs *f)
{
	uint64_t until;

	if (f->pid <= 0)
		return;
	if (f->conn)
		conn_abort(f->conn);
	umount2(f->mnt, MNT_DETACH);
	kill(f->pid, SIGTERM);
	until = now_ms() + 5000;
	while (waitpid(f->pid, NULL, WNOHANG) == 0) {
		if (now_ms() > until) {
			kill(f->pid, SIGKILL);
			waitpid(f->pid, NULL, 0);
			break;
		}
		sleep_ms(10);
	}
	f->pid = -1;
	f->conn = 0;
	rmdir(f->mnt);
}
