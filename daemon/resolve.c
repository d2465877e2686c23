/*
 * resolve.c: a client's path, walked as the client would walk it, one component at a
 * time, from the client's own root directory, never into procfs.
 *
 * Why a walk of our own: the kernel resolves "/proc/self", "/proc/thread-self" and
 * "/proc/<pid>" relative to the process that resolves, which is the daemon. Through
 * them a client could name the daemon's own fds (cached and in-flight buffers of
 * other users, whose memfds pass a permission check), its mappings (map_files) and
 * its root. openat2's RESOLVE_NO_MAGICLINKS stops the magic links at the end of such
 * paths, but not the lookups before them: /proc/self/fd/5 fails with ELOOP where fd 5
 * exists and ENOENT where it does not, and a client that reads the errors maps the
 * daemon's fd table. So the walk stops at the first component that lands on procfs,
 * before anything inside it is looked up, with one answer whatever follows. Files on
 * procfs have nothing to load anyway (their st_size is 0); a client's own
 * /proc/self/fd/N is its fd, which libdmaload sends as a load by fd.
 *
 * Each component is opened with openat(O_PATH | O_NOFOLLOW): one name, no slash, so
 * the kernel follows no link (the name itself, if a link, is opened as one) and
 * crosses at most the mount on that name; openat2's RESOLVE_* would add nothing to
 * that, and systemd's RestrictSUIDSGID=, which dmaloadd.service sets, answers openat2
 * with ENOSYS (its filter cannot read the mode inside struct open_how). Symbolic links
 * are read with readlinkat and their targets walked the same way; absolute ones, and
 * "..", stay inside the root the walk began at (as RESOLVE_IN_ROOT would), which is
 * the client's root directory: a client in a container cannot climb out of it. A root
 * on procfs (a client may pass any directory it holds) is refused the same way.
 * Search permission on every directory is the kernel's check, made with the
 * identity of the calling thread (the caller takes on the client's first).
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include "resolve.h"

/* As many links as the kernel follows in one lookup (MAXSYMLINKS). */
#define RESOLVE_MAX_LINKS 40

/* Opens one name (no slash) in @dirfd: a component, or "..", which is never a link. */
static int open_one(int dirfd, const char *name, int flags)
{
	int fd = openat(dirfd, name, flags | O_CLOEXEC);

	return fd < 0 ? -errno : fd;
}

/*
 * Notes the mount @fd lies on in @seen (may be NULL), if new there: its unique id
 * (never reused while the system runs) and the type of its filesystem, @fs_type.
 */
static void note_mount(struct resolve_mounts *seen, const struct statx *stx,
		       uint32_t fs_type)
{
	if (!seen || !(stx->stx_mask & STATX_MNT_ID_UNIQUE) || !fs_type)
		return;
	for (unsigned i = 0; i < seen->n; i++)
		if (seen->m[i].id == stx->stx_mnt_id)
			return;
	if (seen->n < RESOLVE_MOUNTS)
		seen->m[seen->n++] = (struct resolve_mount){ .id = stx->stx_mnt_id,
							      .fs_type = fs_type };
}

/*
 * Puts @target in front of the unwalked rest of the path, which starts at @rest in
 * @buf (@cap bytes): "target/rest". Returns 0 or -ENAMETOOLONG.
 */
static int splice_link(char *buf, size_t cap, char **rest, const char *target,
		       size_t tlen)
{
	size_t rlen = strlen(*rest);

	if (tlen + 1 + rlen + 1 > cap)
		return -ENAMETOOLONG;
	memmove(buf + tlen + 1, *rest, rlen + 1);
	memcpy(buf, target, tlen);
	buf[tlen] = '/';
	*rest = buf;
	return 0;
}

char *resolve_next(char **rest)
{
	for (;;) {
		char *name = *rest;
		size_t n;

		while (*name == '/')
			name++;
		if (!*name)
			return NULL;
		n = strcspn(name, "/");
		*rest = name + n;
		if (**rest)
			*(*rest)++ = '\0';
		if (strcmp(name, "."))
			return name;
	}
}

int resolve_path(int root, const char *path, int *out, struct resolve_mounts *seen,
		 char *msg, size_t len)
{
	char buf[2 * PATH_MAX], target[PATH_MAX];
	unsigned depth = 0, links = 0;
	char *rest = buf, *name;
	struct statfs sfs;
	struct statx stx;
	int cur, next, r;

	if (strlen(path) >= sizeof(buf)) {
		snprintf(msg, len, "path too long");
		return -ENAMETOOLONG;
	}
	strcpy(buf, path);
	/* A root the client passed may be any directory it holds, one on procfs too
	 * (/proc/<daemon pid>/fd): refused like a walk that reaches procfs, before
	 * anything is looked up in it. */
	if (fstatfs(root, &sfs) < 0)
		sfs.f_type = 0;
	if (sfs.f_type == PROC_SUPER_MAGIC) {
		snprintf(msg, len, "%s: paths through procfs are not loaded (/proc/self "
			 "would be the daemon); pass the file as an open fd instead", path);
		return -EACCES;
	}
	if (statx(root, "", AT_EMPTY_PATH, STATX_TYPE | STATX_MNT_ID_UNIQUE, &stx) == 0)
		note_mount(seen, &stx, (uint32_t)sfs.f_type);
	cur = fcntl(root, F_DUPFD_CLOEXEC, 3);
	if (cur < 0) {
		r = -errno;
		snprintf(msg, len, "cannot walk %s: %s", path, strerror(-r));
		return r;
	}
	while ((name = resolve_next(&rest))) {
		if (!strcmp(name, "..")) {
			if (depth == 0)
				continue;	/* the root's parent is the root */
			next = open_one(cur, "..", O_PATH | O_DIRECTORY);
			if (next < 0) {
				r = next;
				goto fail;
			}
			close(cur);
			cur = next;
			depth--;
			continue;
		}
		next = open_one(cur, name, O_PATH | O_NOFOLLOW);
		if (next < 0) {
			r = next;
			goto fail;
		}
		if (fstatfs(next, &sfs) < 0)
			sfs.f_type = 0;		/* not procfs, which always answers */
		if (sfs.f_type == PROC_SUPER_MAGIC) {
			close(next);
			snprintf(msg, len, "%s: paths through procfs are not loaded (/proc/self "
				 "would be the daemon); pass the file as an open fd instead",
				 path);
			r = -EACCES;
			goto out;
		}
		if (statx(next, "", AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW,
			  STATX_TYPE | STATX_MNT_ID_UNIQUE, &stx) < 0) {
			r = -errno;
			close(next);
			goto fail;
		}
		note_mount(seen, &stx, (uint32_t)sfs.f_type);
		if (S_ISLNK(stx.stx_mode)) {
			ssize_t tl;

			if (++links > RESOLVE_MAX_LINKS) {
				close(next);
				r = -ELOOP;
				goto fail;
			}
			tl = readlinkat(next, "", target, sizeof(target));
			r = tl < 0 ? -errno : 0;
			close(next);
			if (r == 0 && (size_t)tl >= sizeof(target))
				r = -ENAMETOOLONG;
			if (r == 0)
				r = splice_link(buf, sizeof(buf), &rest, target, (size_t)tl);
			if (r < 0)
				goto fail;
			if (target[0] == '/') {
				/* Absolute: from the walk's root again. */
				next = fcntl(root, F_DUPFD_CLOEXEC, 3);
				if (next < 0) {
					r = -errno;
					goto fail;
				}
				close(cur);
				cur = next;
				depth = 0;
			}
			continue;
		}
		close(cur);
		cur = next;
		depth++;
	}
	*out = cur;
	return 0;
fail:
	snprintf(msg, len, "cannot open %s: %s", path, strerror(-r));
out:
	close(cur);
	return r;
}
