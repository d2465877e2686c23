/*
 * source.c: opening a load's source file.
 *
 * Trust: the daemon usually runs as root, its clients do not. A load by path is
 * opened as if the client had opened it. The worker thread takes on the peer's
 * identity for the filesystem (setfsuid, setfsgid and setgroups, each as a raw
 * syscall: glibc would apply them to every thread) and drops every effective
 * capability of its own (capset, also per thread), so neither root's overrides nor
 * CAP_SYS_PTRACE-style exceptions apply. It then walks the path from the peer's own
 * root directory, /proc/PID/root of the process that connected (checked against its
 * pidfd, so a recycled PID is never taken for it): a client in a container, or the
 * daemon in systemd's private /tmp, each see the files the client sees. The walk
 * (resolve.c) never enters procfs, where /proc/self would be the daemon. It ends on
 * an O_PATH fd, which pins the inode; that fd is reopened through /proc/self/fd for
 * reading, still as the peer, which checks read permission on that very inode. No
 * window between a check and an open exists.
 *
 * A daemon that is not root cannot take on another uid; it then serves paths only to
 * peers of its own uid.
 *
 * Loads by fd read through the client's own open file description: its offset and
 * status flags are never touched (every read, splice and copy_file_range names its
 * offset; nothing calls lseek or F_SETFL on it), so a filesystem that serves each
 * opener by its credentials (FUSE) serves the daemon what it served the client. The
 * O_DIRECT fd is the one new open file description: a reopen through /proc/self/fd,
 * done as the peer with the same identity switch as for a path, so the filesystem
 * sees the client open it and may refuse (a file the client could open only before
 * it dropped privileges). Refused, the load has no O_DIRECT fd and reads through the
 * passed fd. For the same reason a file on FUSE is marked per_opener: its buffer is
 * never shared with, or served from, another client's load (job.c).
 *
 * Only regular files load: directories, FIFOs (open would block or data would be
 * consumed), sockets and devices (/dev/zero has no end) are refused.
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/capability.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/fsuid.h>
#include <linux/magic.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "resolve.h"
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

/* Filesystems whose bytes may depend on who opened the file: a FUSE server sees each
 * opener's credentials and may answer each its own way. */
static bool fs_per_opener(int fd)
{
	struct statfs sf;

	return fstatfs(fd, &sf) == 0 && sf.f_type == FUSE_SUPER_MAGIC;
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
	s->per_opener = fs_per_opener(fd);
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

/*
 * Opens with O_NONBLOCK: a file another process holds a write lease on (fcntl
 * F_SETLEASE) then fails at once with EWOULDBLOCK, where a blocking open would hold a
 * worker for all of fs.lease-break-time (45 s by default); any user can lease his own
 * files, so that wait is his to impose on nobody else. The kernel still tells the
 * holder to give the lease up, so a retry soon after succeeds. The flag is cleared
 * once open: io_uring would answer -EAGAIN for reads of it on filesystems that
 * cannot read without blocking.
 */
static int reopen(int fd, int flags)
{
	char p[64];
	int nfd, fl;

	snprintf(p, sizeof(p), "/proc/self/fd/%d", fd);
	nfd = open(p, flags | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (nfd < 0)
		return -1;
	fl = fcntl(nfd, F_GETFL);
	if (fl < 0 || fcntl(nfd, F_SETFL, fl & ~O_NONBLOCK) < 0) {
		int e = errno;

		close(nfd);
		errno = e;
		return -1;
	}
	return nfd;
}

/* Why opening @path failed with @err, in @msg. */
static void open_failed(struct source *s, const char *path, int err)
{
	if (err == EWOULDBLOCK)
		snprintf(s->msg, sizeof(s->msg), "cannot read %s: another process holds a "
			 "lease on it (fcntl F_SETLEASE); the kernel asked it to let go: try "
			 "again in a moment", path);
	else
		snprintf(s->msg, sizeof(s->msg), "cannot read %s: %s", path, strerror(err));
}

static void open_direct(struct source *s, int from)
{
	s->dfd = reopen(from, O_RDONLY | O_DIRECT);
	if (s->dfd < 0)
		s->direct_err = errno;
}

/*
 * The root directory of the process that connected, as an O_PATH fd, or -errno with
 * @msg set. Opened as the peer (its fsuid passes procfs' ptrace check where the
 * daemon's own might not: hidepid, ProtectProc=invisible) and while the daemon's
 * capabilities still count, so a peer that made itself undumpable is served too.
 */
static int peer_root(const struct peer_cred *peer, char *msg, size_t len)
{
	struct pollfd pfd = { .fd = peer->pidfd, .events = POLLIN };
	char p[64];
	int fd, r;

	if (peer->pid == getpid())	/* the daemon's own loads ([preload]) */
		return open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (peer->pid <= 0) {
		snprintf(msg, len, "the daemon cannot see the client's process (it exited, "
			 "or lives in a PID namespace the daemon cannot see), so it cannot "
			 "resolve paths as the client: pass an open fd instead");
		return -ESRCH;
	}
	snprintf(p, sizeof(p), "/proc/%d/root", (int)peer->pid);
	fd = open(p, O_PATH | O_DIRECTORY | O_CLOEXEC);
	r = fd < 0 ? -errno : 0;
	/* A pidfd turns readable once its process has exited: the PID may be another's
	 * now, and so may the root just opened (or, for a zombie, none is left). */
	if (peer->pidfd >= 0 && poll(&pfd, 1, 0) != 0) {
		if (fd >= 0)
			close(fd);
		snprintf(msg, len, "the process that connected (pid %d) has exited; paths "
			 "are resolved in its root directory: reconnect, or pass an open fd",
			 (int)peer->pid);
		return -ESRCH;
	}
	if (r < 0) {
		snprintf(msg, len, "cannot resolve paths as the client: %s: %s; pass an open "
			 "fd instead", p, strerror(-r));
		return r == -ENOENT ? -ESRCH : r;
	}
	return fd;
}

/* The O_PATH fd of @path as @peer sees it, walked from @passed_root (borrowed) or, if
 * that is -1, from the peer's root; the caller has taken on its identity. */
static int open_as_peer(struct source *s, const char *path, const struct peer_cred *peer,
			int passed_root, struct as_peer *as)
{
	struct stat st;
	int root, pfd, r;

	if (passed_root >= 0) {
		/* Any directory the client holds will do: walking from it grants nothing
		 * the client could not do with the fd itself. */
		if (fstat(passed_root, &st) < 0 || !S_ISDIR(st.st_mode)) {
			snprintf(s->msg, sizeof(s->msg), "the root fd passed with the load is "
				 "not a directory");
			return -ENOTDIR;
		}
		root = fcntl(passed_root, F_DUPFD_CLOEXEC, 3);
	} else {
		root = peer_root(peer, s->msg, sizeof(s->msg));
	}
	if (root < 0)
		return root;
	r = as_peer_drop_caps(as, s->msg, sizeof(s->msg));
	if (r < 0) {
		close(root);
		return r;
	}
	r = resolve_path(root, path, &pfd, &s->mounts, s->msg, sizeof(s->msg));
	close(root);
	return r < 0 ? r : pfd;
}

int source_open_path(struct source *s, const char *path, const struct peer_cred *peer,
		     int passed_root, bool want_direct)
{
	struct as_peer as;
	int pfd = -1, r;

	s->mounts.n = 0;
	if (path[0] != '/') {
		snprintf(s->msg, sizeof(s->msg), "path must be absolute");
		return -EINVAL;
	}
	r = as_peer_begin(&as, peer, s->msg, sizeof(s->msg));
	if (r < 0)
		return r;
	pfd = open_as_peer(s, path, peer, passed_root, &as);
	if (pfd < 0) {
		r = pfd;
		goto out;
	}
	r = source_stat(s, pfd);
	if (r < 0)
		goto out;
	s->fd = reopen(pfd, O_RDONLY);
	if (s->fd < 0) {
		r = -errno;
		open_failed(s, path, -r);
		goto out;
	}
	if (want_direct && (s->size >= s->direct_min || s->per_opener))
		open_direct(s, pfd);
	r = 0;
out:
	if (pfd >= 0)
		close(pfd);
	as_peer_end(&as);
	if (r < 0)
		source_deinit(s);
	return r;
}

int source_unchanged(const struct source *s, char *msg, size_t len)
{
	struct statx stx;
	uint64_t mtime, ctime;

	if (statx(s->fd, "", AT_EMPTY_PATH, STATX_BASIC_STATS, &stx) < 0) {
		int r = -errno;

		snprintf(msg, len, "cannot stat the file after reading it: %s", strerror(-r));
		return r;
	}
	mtime = (uint64_t)stx.stx_mtime.tv_sec * 1000000000ull + stx.stx_mtime.tv_nsec;
	ctime = (uint64_t)stx.stx_ctime.tv_sec * 1000000000ull + stx.stx_ctime.tv_nsec;
	if (stx.stx_size == s->size && mtime == s->mtime_ns && ctime == s->ctime_ns)
		return 0;
	snprintf(msg, len, "the file changed while it was read (%s%s%s): the buffer could "
		 "mix old and new bytes; load it again", stx.stx_size != s->size ?
		 "size " : "", mtime != s->mtime_ns ? "mtime " : "",
		 ctime != s->ctime_ns ? "ctime" : "");
	return -ESTALE;
}

/*
 * The O_DIRECT fd of a load by fd: a reopen of the client's fd as the client, without
 * the daemon's capabilities. Refused (by permissions, or by a filesystem that serves
 * by credentials), the load has none: s->direct_denied says why it is not the
 * filesystem refusing O_DIRECT. Borrows @fd.
 */
static void open_direct_as_peer(struct source *s, int fd, const struct peer_cred *peer)
{
	struct as_peer as;
	char msg[256];

	/* A daemon that is not root cannot be another uid: it has no reopen for them. */
	if (as_peer_begin(&as, peer, msg, sizeof(msg)) < 0) {
		s->direct_err = EPERM;
		s->direct_denied = true;
		return;
	}
	if (as_peer_drop_caps(&as, msg, sizeof(msg)) < 0) {
		s->direct_err = EPERM;
	} else {
		open_direct(s, fd);
	}
	if (s->dfd < 0 && (s->direct_err == EACCES || s->direct_err == EPERM))
		s->direct_denied = true;
	as_peer_end(&as);
}

int source_open_fd(struct source *s, int fd, const struct peer_cred *peer,
		   bool want_direct)
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
		open_direct_as_peer(s, fd, peer);
	return 0;
fail:
	close(fd);
	return r;
}
