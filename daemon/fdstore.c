/*
 * fdstore.c: systemd's file descriptor store for the cache.
 *
 * Every buffer the cache keeps is also handed to systemd (FDSTORE=1, FDNAME=...): on
 * a restart systemd passes them back (LISTEN_FDS / LISTEN_FDNAMES) and the daemon
 * re-validates and keeps them. An entry that leaves the cache (LRU, EVICT, a changed
 * file) leaves the store (FDSTOREREMOVE=1). A clean stop does not empty the store:
 * systemd drops it by itself when the unit stops for good, and keeps it across a
 * restart, which is the point.
 *
 * The name is the whole state, so nothing is written to disk (the unit's file system
 * is read-only anyway):
 *
 *   dlc1.DEV.INO.SIZE.MTIME.CTIME.OFF.LEN.BUFSIZE.TARGET.METHOD.REASON.FLAGS.UID.PATH
 *
 * numbers in hex (FLAGS: 1 pinned, 2 hugetlb), PATH escaped: '%', ':' (the separator
 * of LISTEN_FDNAMES) and bytes outside printable ASCII as %XX, since a name allows
 * printable ASCII but ':' (sd_pid_notify_with_fds(3)). A name must stay within 255
 * bytes: an entry with a longer path is simply not stored.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include "fdstore.h"
#include "log.h"

#define PREFIX "dlc1."

static bool enabled(void)
{
	const char *s = getenv("NOTIFY_SOCKET");

	return s && *s;
}

static int name_make(const struct fdstore_record *e, char *buf, size_t len)
{
	size_t n;
	int r;

	r = snprintf(buf, len, PREFIX "%llx.%llx.%llx.%llx.%llx.%llx.%llx.%llx.%x.%x.%x.%x.%x.",
		     (unsigned long long)e->dev, (unsigned long long)e->ino,
		     (unsigned long long)e->size, (unsigned long long)e->mtime_ns,
		     (unsigned long long)e->ctime_ns, (unsigned long long)e->off,
		     (unsigned long long)e->len, (unsigned long long)e->buf_size, e->target,
		     e->method, e->reason, (e->pinned ? 1u : 0u) | (e->hugetlb ? 2u : 0u),
		     (unsigned)e->uid);
	if (r < 0 || (size_t)r >= len)
		return -ENAMETOOLONG;
	n = (size_t)r;
	for (const unsigned char *p = (const unsigned char *)e->path; *p; p++) {
		if (*p == '%' || *p == ':' || *p < 0x20 || *p >= 0x7f) {
			if (n + 3 >= len)
				return -ENAMETOOLONG;
			n += (size_t)snprintf(buf + n, len - n, "%%%02x", *p);
		} else {
			if (n + 1 >= len)
				return -ENAMETOOLONG;
			buf[n++] = (char)*p;
		}
	}
	buf[n] = '\0';
	return 0;
}

int fdstore_put(const struct fdstore_record *r, int fd, char *stored)
{
	char name[FDSTORE_NAME_MAX + 1], msg[FDSTORE_NAME_MAX + 32];
	int n;

	stored[0] = '\0';
	if (!enabled())
		return -ENOTCONN;
	if (name_make(r, name, sizeof(name)) < 0) {
		log_debug("fdstore: %s: path too long for a store name; not kept across a "
			  "restart", r->path);
		return -ENAMETOOLONG;
	}
	snprintf(msg, sizeof(msg), "FDSTORE=1\nFDNAME=%s", name);
	n = sd_pid_notify_with_fds(0, 0, msg, &fd, 1);
	if (n <= 0) {
		log_warn("fdstore: %s: %s", r->path, n < 0 ? strerror(-n) : "not sent");
		return n < 0 ? n : -ENOTCONN;
	}
	snprintf(stored, FDSTORE_NAME_MAX + 1, "%s", name);
	return 0;
}

void fdstore_remove(const char *stored)
{
	if (stored[0])
		sd_notifyf(0, "FDSTOREREMOVE=1\nFDNAME=%s", stored);
}

bool fdstore_is_ours(const char *name)
{
	return name && strncmp(name, PREFIX, strlen(PREFIX)) == 0;
}

static int unescape(const char *s, char *out, size_t len)
{
	size_t n = 0;

	for (; *s; s++) {
		unsigned v;

		if (n + 1 >= len)
			return -ENAMETOOLONG;
		if (*s == '%') {
			if (sscanf(s + 1, "%2x", &v) != 1 || !s[1] || !s[2])
				return -EINVAL;
			out[n++] = (char)v;
			s += 2;
		} else {
			out[n++] = *s;
		}
	}
	out[n] = '\0';
	return 0;
}

void fdstore_drop(int fd, const char *name, const char *why)
{
	log_info("fdstore: dropping %s: %s", name, why);
	close(fd);
	sd_notifyf(0, "FDSTOREREMOVE=1\nFDNAME=%s", name);
}

int fdstore_take(int fd, const char *name, struct fdstore_record *e)
{
	unsigned long long f[8];
	unsigned target, method, reason, flags, uid;
	char path[sizeof(e->path)];
	struct stat st, bst;
	int pos = 0, seals;

	if (sscanf(name, PREFIX "%llx.%llx.%llx.%llx.%llx.%llx.%llx.%llx.%x.%x.%x.%x.%x.%n",
		   &f[0], &f[1], &f[2], &f[3], &f[4], &f[5], &f[6], &f[7], &target,
		   &method, &reason, &flags, &uid, &pos) != 13 || !pos ||
	    unescape(name + pos, path, sizeof(path)) < 0 || path[0] != '/') {
		fdstore_drop(fd, name, "a name it cannot parse");
		return -1;
	}
	*e = (struct fdstore_record){ .dev = f[0], .ino = f[1], .size = f[2],
				      .mtime_ns = f[3], .ctime_ns = f[4], .off = f[5],
				      .len = f[6], .buf_size = f[7], .target = (uint8_t)target,
				      .method = (uint8_t)method, .reason = (uint8_t)reason,
				      .pinned = flags & 1, .hugetlb = flags & 2,
				      .uid = (uid_t)uid };
	memcpy(e->path, path, sizeof(path));
	if (stat(e->path, &st) < 0) {
		fdstore_drop(fd, name, "the file is gone");
		return -1;
	}
	if ((uint64_t)st.st_dev != e->dev || (uint64_t)st.st_ino != e->ino ||
	    (uint64_t)st.st_size != e->size ||
	    (uint64_t)st.st_mtim.tv_sec * 1000000000ull + (uint64_t)st.st_mtim.tv_nsec !=
	    e->mtime_ns ||
	    (uint64_t)st.st_ctim.tv_sec * 1000000000ull + (uint64_t)st.st_ctim.tv_nsec !=
	    e->ctime_ns) {
		fdstore_drop(fd, name, "the file changed");
		return -1;
	}
	seals = fcntl(fd, F_GET_SEALS);
	if (fstat(fd, &bst) < 0 || (uint64_t)bst.st_size != e->buf_size || seals < 0 ||
	    !(seals & F_SEAL_WRITE) || e->off + e->len > e->size) {
		fdstore_drop(fd, name, "the buffer is not a sealed buffer of the recorded size");
		return -1;
	}
	return 0;
}
