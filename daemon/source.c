/*
 * source.c: opening a load's source file.
 *
 * Trust: the daemon usually runs as root, its clients do not. For a load by path the
 * worker thread takes on the peer's identity for the filesystem (setfsuid, setfsgid
 * and setgroups, each as a raw syscall: glibc would apply them to every thread) and
 * opens the path with O_PATH, which checks search permission along the path. The
 * O_PATH fd pins the inode; it is then reopened through /proc/self/fd for reading,
 * still as the peer, which checks read permission on that very inode. No window
 * between a check and an open exists. Changing fsuid away from 0 also drops
 * CAP_DAC_OVERRIDE and friends for this thread, so root's overrides do not apply.
 * A daemon that is not root cannot take on another uid; it then serves paths only to
 * peers of its own uid.
 *
 * Loads by fd need no check: the client already holds a readable fd. The O_DIRECT fd
 * is a reopen of the same inode, which grants nothing the fd did not.
 *
 * Only regular files load: directories, FIFOs (open would block or data would be
 * consumed), sockets and devices (/dev/zero has no end) are refused.
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <stdio.h>
#include <string.h>
#include <sys/fsuid.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "source.h"

void source_init(struct source *s)
{
	memset(s, 0, sizeof(*s));
	s->fd = -1;
	s->dfd = -1;
}

void source_deinit(struct source *s)
{
	if (s->fd >= 0)
		close(s->fd);
	if (s->dfd >= 0)
		close(s->dfd);
	s->fd = -1;
	s->dfd = -1;
}

static const char *kind_name(mode_t m)
{
	switch (m & S_IFMT) {
	case S_IFDIR: return "a directory";
	case S_IFIFO: return "a FIFO";
	case S_IFSOCK: return "a socket";
	case S_IFCHR: return "a character device";
	case S_IFBLK: return "a block device";
	case S_IFLNK: return "a symbolic link";
	default: return "not a regular file";
	}
}

/* Checks the file behind @fd is a regular file and records its identity. */
static int source_stat(struct source *s, int fd)
{
	struct statx stx;

	if (statx(fd, "", AT_EMPTY_PATH, STATX_BASIC_STATS | STATX_DIOALIGN, &stx) < 0) {
		int r = -errno;

		snprintf(s->msg, sizeof(s->msg), "cannot stat source: %s", strerror(-r));
		return r;
	}
	if (!S_ISREG(stx.stx_mode)) {
		snprintf(s->msg, sizeof(s->msg), "source is %s, not a regular file",
			 kind_name(stx.stx_mode));
		return S_ISDIR(stx.stx_mode) ? -EISDIR : -EINVAL;
	}
	s->size = stx.stx_size;
	s->dev = makedev(stx.stx_dev_major, stx.stx_dev_minor);
	s->ino = stx.stx_ino;
	s->mtime_ns = (uint64_t)stx.stx_mtime.tv_sec * 1000000000ull + stx.stx_mtime.tv_nsec;
	s->ctime_ns = (uint64_t)stx.stx_ctime.tv_sec * 1000000000ull + stx.stx_ctime.tv_nsec;
	if ((stx.stx_mask & STATX_DIOALIGN) && stx.stx_dio_mem_align) {
		s->dio_mem_align = stx.stx_dio_mem_align;
		s->dio_off_align = stx.stx_dio_offset_align;
	} else {
		/* Filesystems that do not say: the block size is always safe. */
		s->dio_mem_align = 4096;
		s->dio_off_align = 4096;
	}
	return 0;
}

static int reopen(int fd, int flags)
{
	char p[64];

	snprintf(p, sizeof(p), "/proc/self/fd/%d", fd);
	return open(p, flags | O_CLOEXEC | O_NOCTTY);
}

static void open_direct(struct source *s, int from)
{
	s->dfd = reopen(from, O_RDONLY | O_DIRECT);
	if (s->dfd < 0)
		s->direct_err = errno;
}

/* Takes on @peer's filesystem identity on this thread only. */
static int become(const struct peer_cred *peer)
{
	int n = peer->n_groups > 0 ? peer->n_groups : 0;

	if (syscall(SYS_setgroups, (size_t)n, peer->groups) < 0)
		return -errno;
	/* setfsgid/setfsuid report the old value, never an error: check by asking. */
	syscall(SYS_setfsgid, peer->gid);
	if ((gid_t)syscall(SYS_setfsgid, (gid_t)-1) != peer->gid)
		return -EPERM;
	syscall(SYS_setfsuid, peer->uid);
	if ((uid_t)syscall(SYS_setfsuid, (uid_t)-1) != peer->uid)
		return -EPERM;
	return 0;
}

static void become_self(void)
{
	gid_t g = getegid();

	syscall(SYS_setfsuid, geteuid());
	syscall(SYS_setfsgid, g);
	syscall(SYS_setgroups, (size_t)0, NULL);
}

int source_open_path(struct source *s, const char *path, const struct peer_cred *peer,
		     bool want_direct)
{
	bool same = peer->uid == geteuid();
	int pfd = -1, r;

	if (path[0] != '/') {
		snprintf(s->msg, sizeof(s->msg), "path must be absolute");
		return -EINVAL;
	}
	if (geteuid() != 0 && !same) {
		snprintf(s->msg, sizeof(s->msg), "the daemon runs as uid %u and cannot act "
			 "as uid %u; pass an open fd instead", geteuid(), peer->uid);
		return -EACCES;
	}
	if (geteuid() == 0) {
		r = become(peer);
		if (r < 0) {
			become_self();
			snprintf(s->msg, sizeof(s->msg), "cannot take on the client's "
				 "credentials: %s", strerror(-r));
			return r;
		}
	}

	pfd = open(path, O_PATH | O_CLOEXEC);
	if (pfd < 0) {
		r = -errno;
		snprintf(s->msg, sizeof(s->msg), "cannot open %s: %s", path, strerror(-r));
		goto out;
	}
	r = source_stat(s, pfd);
	if (r < 0)
		goto out;
	s->fd = reopen(pfd, O_RDONLY);
	if (s->fd < 0) {
		r = -errno;
		snprintf(s->msg, sizeof(s->msg), "cannot read %s: %s", path, strerror(-r));
		goto out;
	}
	if (want_direct)
		open_direct(s, pfd);
	r = 0;
out:
	if (pfd >= 0)
		close(pfd);
	if (geteuid() == 0)
		become_self();
	if (r < 0)
		source_deinit(s);
	return r;
}

int source_open_fd(struct source *s, int fd, bool want_direct)
{
	int fl, r;

	fl = fcntl(fd, F_GETFL);
	if (fl < 0) {
		r = -errno;
		snprintf(s->msg, sizeof(s->msg), "bad fd: %s", strerror(-r));
		goto fail;
	}
	if (fl & O_PATH) {
		snprintf(s->msg, sizeof(s->msg), "fd is an O_PATH fd; it cannot be read");
		r = -EBADF;
		goto fail;
	}
	if ((fl & O_ACCMODE) == O_WRONLY) {
		snprintf(s->msg, sizeof(s->msg), "fd is open write-only; it cannot be read");
		r = -EBADF;
		goto fail;
	}
	r = source_stat(s, fd);
	if (r < 0)
		goto fail;
	s->fd = fd;
	if (want_direct)
		open_direct(s, fd);
	return 0;
fail:
	close(fd);
	return r;
}
