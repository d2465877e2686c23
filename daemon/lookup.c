/*
 * lookup.c: a client's path walked on the event loop, for a load the cache likely
 * answers (job.c). A hit needs no read, only proof that this client may read
 * this version of the file; proved on a worker (resolve.c, source.c) that costs two
 * thread wake-ups and some forty syscalls, which on a busy host (64 clients on 2
 * cores) put a hit's p99 past a millisecond. Proved here it costs neither wake-up.
 *
 * It is the workers' walk from the root directory the client passed, with the
 * client's filesystem identity and none of the daemon's capabilities (cred.c: per
 * thread, taken and given back within this call), made never to wait on a
 * filesystem. A path that stays on the root's mount is opened in one go
 * (RESOLVE_NO_XDEV, see walk()); one that crosses a mount, a component at a time:
 *   - Each open (O_PATH | O_NOFOLLOW) is io_uring's OPENAT2 with
 *     RESOLVE_CACHED: from the dentry cache or not at all. A name the kernel would
 *     read from disk, revalidate with a server (NFS, FUSE) or automount fails with
 *     -EAGAIN at once, inside io_uring_enter. (The openat2 syscall would do the same,
 *     but the unit's RestrictSUIDSGID= filter answers it ENOSYS; io_uring's op is
 *     not filtered, and an O_PATH open creates nothing for that filter to guard.)
 *   - procfs, where /proc/self would be the daemon: the root and every component
 *     must lie on a mount that a worker's walk went through and found not to be
 *     procfs (lookup_learn), known by its unique id (never reused while the system
 *     runs), which name_to_handle_at reports without asking a server (statx and
 *     statfs would: a 9p or CIFS server; see below for overlayfs). A mount has one
 *     place in the tree, so the same mounts mean the same answer.
 *   - Only the file is statted, once its mount is known to be a local filesystem's
 *     (ext2/3/4, xfs, btrfs, f2fs, tmpfs), whose statx is exact and never waits. It
 *     must be a regular file, not encrypted (no key means an open fails, and the
 *     loop would not see it) nor verity, and readable by the client: faccessat2 with
 *     AT_EACCESS makes an open's permission check (modes, ACLs, the security
 *     module's inode check) on that very inode. What only a real open runs is not
 *     run: fanotify permission events, a security module's open hook, breaking a
 *     lease. The cached buffer holds what a reader of this version of the file got;
 *     where those matter, [cache] loop_hits = off sends every hit to a worker.
 * Anything else (a symbolic link, "..", an unknown mount, an error of any kind) gives
 * up: the job goes to a worker, whose walk answers it as it answers every load, error
 * messages included. Giving up costs what the walk did so far, a few microseconds.
 *
 * The fds a walk opens are O_PATH fds, which run no filesystem code but the last
 * reference's: an inode unlinked or a directory removed during the walk is freed by
 * whoever closes it last (a journal transaction on ext4 or xfs, a big file's pages).
 * So none is closed on the loop: close_fd hands them to a worker, batched
 * (worker_close_later), which costs a hit no thread wake-up.
 *
 * name_to_handle_at calls the filesystem's encode_fh: in memory everywhere but on an
 * overlayfs mounted with nfs_export=on (not the default), whose lower directories it
 * may copy up first.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <linux/openat2.h>
#include <limits.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "log.h"
#include "lookup.h"

#ifndef SYS_faccessat2
#define SYS_faccessat2 439
#endif
#ifndef AT_HANDLE_FID
#define AT_HANDLE_FID 0x200		/* Linux 6.5 */
#endif
#ifndef AT_HANDLE_MNT_ID_UNIQUE
#define AT_HANDLE_MNT_ID_UNIQUE 0x001	/* Linux 6.12 */
#endif
#ifndef STATX_ATTR_VERITY
#define STATX_ATTR_VERITY 0x00100000
#endif

/*
 * The unique id of the mount @fd lies on, or 0. name_to_handle_at encodes no handle
 * into a buffer of no room (EOVERFLOW), but reports the mount from the kernel's own
 * structures; the filesystem's encode_fh only sizes the handle, in memory (but see
 * the overlayfs note at the top). AT_HANDLE_FID: every filesystem can name its files
 * so, exportable or not.
 */
static uint64_t mount_id(int fd)
{
	struct file_handle fh = { .handle_bytes = 0 };
	uint64_t id = 0;

	if (name_to_handle_at(fd, "", &fh, (int *)&id,
			      AT_EMPTY_PATH | AT_HANDLE_FID | AT_HANDLE_MNT_ID_UNIQUE) < 0 &&
	    errno != EOVERFLOW)
		return 0;
	return id;
}

/* Opens @name in @dirfd from the dentry cache (RESOLVE_CACHED and @resolve), or
 * fails. */
static int open_cached(struct lookup *l, int dirfd, const char *name, uint64_t resolve)
{
	struct open_how how = { .flags = O_PATH | O_NOFOLLOW | O_CLOEXEC,
				.resolve = RESOLVE_CACHED | resolve };
	struct io_uring_sqe *sqe;
	struct io_uring_cqe *cqe;
	int r;

	/* The ring may be gone since the walk began: torn down below, by an earlier
	 * open of this very walk (whose fallback would open again). */
	if (!l->ring_ok || !(sqe = io_uring_get_sqe(&l->ring)))
		return -EAGAIN;
	io_uring_prep_openat2(sqe, dirfd, name, &how);
	if (io_uring_submit(&l->ring) != 1 || io_uring_peek_cqe(&l->ring, &cqe) < 0) {
		/* Never seen: RESOLVE_CACHED opens end inside the submit. Whatever
		 * happened, the ring's state is unknown now: no more walks here. */
		log_warn("lookup: an open on the loop did not complete at once; paths go "
			 "to the workers from now on");
		lookup_deinit(l);
		return -EAGAIN;
	}
	r = cqe->res;
	io_uring_cqe_seen(&l->ring, cqe);
	return r;
}

/* The filesystem type of the mount @fd lies on, if a worker's walk went through it
 * and it is not procfs; 0 if not. */
static uint32_t mount_type(const struct lookup *l, int fd)
{
	uint64_t id = mount_id(fd);

	for (unsigned i = 0; id && i < l->n; i++)
		if (l->known[i].id == id)
			return l->known[i].fs_type == PROC_SUPER_MAGIC ? 0 : l->known[i].fs_type;
	return 0;
}

/* Filesystems whose statx never waits and whose cached answer is the truth. */
static bool local_fs(uint32_t type)
{
	switch (type) {
	case EXT4_SUPER_MAGIC:	/* and ext2, ext3 */
	case XFS_SUPER_MAGIC:
	case BTRFS_SUPER_MAGIC:
	case F2FS_SUPER_MAGIC:
	case TMPFS_MAGIC:
		return true;
	default:
		return false;
	}
}

void lookup_init(struct lookup *l)
{
	struct open_how how = { .flags = O_PATH | O_DIRECTORY | O_CLOEXEC,
				.resolve = RESOLVE_CACHED };
	struct io_uring_sqe *sqe;
	struct io_uring_cqe *cqe;
	struct statx stx;
	const char *why = NULL;
	int r, fd = -1;

	memset(l, 0, sizeof(*l));
	l->euid = geteuid();
	r = io_uring_queue_init(4, &l->ring, 0);
	if (r < 0) {
		log_debug("lookup: no ring (%s): paths go to the workers", strerror(-r));
		return;
	}
	l->ring_ok = true;
	/* What the walk needs, asked of "/" once (a filter may answer EPERM). */
	sqe = io_uring_get_sqe(&l->ring);
	io_uring_prep_openat2(sqe, AT_FDCWD, "/", &how);
	r = io_uring_submit_and_wait(&l->ring, 1);
	if (r == 1 && io_uring_peek_cqe(&l->ring, &cqe) == 0) {
		fd = cqe->res;
		io_uring_cqe_seen(&l->ring, cqe);
	}
	if (fd < 0)
		why = "io_uring OPENAT2 with RESOLVE_CACHED (Linux 5.12)";
	else if (statx(fd, "", AT_EMPTY_PATH, STATX_MNT_ID_UNIQUE, &stx) < 0 ||
		 !(stx.stx_mask & STATX_MNT_ID_UNIQUE))
		why = "statx STATX_MNT_ID_UNIQUE (Linux 6.8)";
	else if (mount_id(fd) != stx.stx_mnt_id)
		why = "name_to_handle_at AT_HANDLE_MNT_ID_UNIQUE (Linux 6.12)";
	else if (syscall(SYS_faccessat2, fd, "", F_OK, AT_EMPTY_PATH | AT_EACCESS) < 0)
		why = "faccessat2 (Linux 5.8)";
	if (fd >= 0)
		close(fd);
	if (why) {
		log_info("likely cache hits are checked on the workers: the kernel (or a "
			 "filter) refuses %s", why);
		return;
	}
	l->ok = true;
}

void lookup_deinit(struct lookup *l)
{
	if (l->ring_ok)
		io_uring_queue_exit(&l->ring);
	l->ring_ok = false;
	l->ok = false;
}

void lookup_learn(struct lookup *l, const struct resolve_mounts *seen)
{
	for (unsigned i = 0; i < seen->n; i++) {
		unsigned k;

		for (k = 0; k < l->n && l->known[k].id != seen->m[i].id; k++)
			;
		if (k == l->n && l->n < LOOKUP_MOUNTS)
			l->known[l->n++] = seen->m[i];
	}
}

/* Closes an fd the walk opened: off the loop (see the top). */
static void walk_close(struct lookup *l, int fd)
{
	if (l->close_fd)
		l->close_fd(l->close_data, fd);
	else
		close(fd);
}

/* Whether @path has a ".." component. */
static bool has_dotdot(const char *path)
{
	for (const char *p = path; (p = strstr(p, "..")); p += 2)
		if ((p == path || p[-1] == '/') && (p[2] == '/' || !p[2]))
			return true;
	return false;
}

/* The walk itself, as the client (lookup_path took on its identity). */
static int walk(struct lookup *l, int root, char *buf, struct lookup_file *f)
{
	struct statx stx;
	char *rest = buf, *name;
	uint32_t type = mount_type(l, root);
	int cur = root, next, r = -EAGAIN;

	if (!type)
		return -EAGAIN;
	/*
	 * Most paths lie on one mount: then one open takes the whole path, and
	 * RESOLVE_NO_XDEV keeps every component on the root's mount (known, not
	 * procfs), so there is no mount to ask about. RESOLVE_NO_SYMLINKS gives up on
	 * a link as the walk below does; ".." is left to that walk, which gives up on
	 * it too. Per hit that saves, for each component past the first, an io_uring
	 * submit, a name_to_handle_at and a close. A path that crosses a mount is
	 * walked a component at a time, each one's mount checked: the open fails with
	 * EXDEV, or with EAGAIN, as RESOLVE_CACHED makes it where the crossing would
	 * leave the RCU walk (as does a name not in the dentry cache, which the walk
	 * below then gives up on).
	 */
	if (!has_dotdot(buf)) {
		next = open_cached(l, root, buf + strspn(buf, "/"),
				   RESOLVE_NO_XDEV | RESOLVE_NO_SYMLINKS | RESOLVE_BENEATH);
		if (next >= 0) {
			cur = next;
			goto file;
		}
		if (next != -EXDEV && next != -EAGAIN)
			goto out;
	}
	while ((name = resolve_next(&rest))) {
		if (!strcmp(name, ".."))
			goto out;
		/* Opened in what the last component opened: a file or a link there
		 * fails (ENOTDIR) and gives up. */
		next = open_cached(l, cur, name, 0);
		if (next < 0)
			goto out;
		if (cur != root)
			walk_close(l, cur);
		cur = next;
		type = mount_type(l, cur);
		if (!type)
			goto out;
	}
file:
	if (cur == root || !local_fs(type) ||
	    statx(cur, "", AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW, STATX_BASIC_STATS, &stx) < 0 ||
	    (~stx.stx_mask & STATX_BASIC_STATS) || !S_ISREG(stx.stx_mode))
		goto out;
	if (stx.stx_attributes & (STATX_ATTR_ENCRYPTED | STATX_ATTR_VERITY))
		goto out;
	if (syscall(SYS_faccessat2, cur, "", R_OK, AT_EMPTY_PATH | AT_EACCESS) < 0)
		goto out;
	f->dev = makedev(stx.stx_dev_major, stx.stx_dev_minor);
	f->ino = stx.stx_ino;
	f->size = stx.stx_size;
	f->mtime_ns = (uint64_t)stx.stx_mtime.tv_sec * 1000000000ull + stx.stx_mtime.tv_nsec;
	f->ctime_ns = (uint64_t)stx.stx_ctime.tv_sec * 1000000000ull + stx.stx_ctime.tv_nsec;
	r = 0;
out:
	if (cur != root)
		walk_close(l, cur);
	return r;
}

int lookup_path(struct lookup *l, int root, const char *path,
		const struct peer_cred *peer, struct lookup_file *f)
{
	char buf[PATH_MAX], msg[256];
	struct as_peer as;
	int fl, r = -EAGAIN;

	if (!l->ok || !l->n || path[0] != '/' || strlen(path) >= sizeof(buf))
		return -EAGAIN;
	fl = fcntl(root, F_GETFL);
	if (fl < 0)
		return -EAGAIN;
	strcpy(buf, path);
	l->walks++;
	if (as_peer_begin(&as, peer, msg, sizeof(msg)) == 0) {
		if (as_peer_drop_caps(&as, msg, sizeof(msg)) == 0)
			r = walk(l, root, buf, f);
		as_peer_end(&as);
		/* The loop thread must be the daemon again, or everything it does next
		 * runs as this client: never seen, but then no more walks here. */
		if ((uid_t)syscall(SYS_setfsuid, (uid_t)-1) != l->euid) {
			log_err("lookup: the loop thread could not take back the daemon's "
				"identity after a walk as uid %u", peer->uid);
			lookup_deinit(l);
			r = -EAGAIN;
		}
	}
	if (r < 0) {
		l->gave_up++;
		return r;
	}
	f->root_opath = fl & O_PATH;
	return 0;
}
