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

#include "cache.h"
#include "fdstore.h"
#include "log.h"
#include "server.h"

#define PREFIX "dlc1."
#define NAME_MAX_LEN 255

static bool enabled(void)
{
	const char *s = getenv("NOTIFY_SOCKET");

	return s && *s;
}

static int name_make(const struct cache_entry *e, char *buf, size_t len)
{
	const struct cache_key *k = &e->key;
	size_t n;
	int r;

	r = snprintf(buf, len, PREFIX "%llx.%llx.%llx.%llx.%llx.%llx.%llx.%llx.%x.%x.%x.%x.%x.",
		     (unsigned long long)k->dev, (unsigned long long)k->ino,
		     (unsigned long long)k->size, (unsigned long long)k->mtime_ns,
		     (unsigned long long)k->ctime_ns, (unsigned long long)k->off,
		     (unsigned long long)k->len, (unsigned long long)e->buf_size, k->target,
		     e->method, e->reason, (e->pinned ? 1u : 0u) | (e->hugetlb ? 2u : 0u),
		     (unsigned)e->uid);
	if (r < 0 || (size_t)r >= len)
		return -ENAMETOOLONG;
	n = (size_t)r;
	for (const unsigned char *p = (const unsigned char *)e->name; *p; p++) {
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

void fdstore_put(struct cache_entry *e)
{
	char name[NAME_MAX_LEN + 1], msg[NAME_MAX_LEN + 32];
	int r;

	if (!enabled() || e->fd < 0)
		return;
	if (e->fdname[0])
		fdstore_remove(e);	/* re-stored under a new name (pinned since) */
	if (name_make(e, name, sizeof(name)) < 0) {
		log_debug("fdstore: %s: path too long for a store name; not kept across a "
			  "restart", e->name);
		return;
	}
	snprintf(msg, sizeof(msg), "FDSTORE=1\nFDNAME=%s", name);
	r = sd_pid_notify_with_fds(0, 0, msg, &e->fd, 1);
	if (r <= 0) {
		log_warn("fdstore: %s: %s", e->name, r < 0 ? strerror(-r) : "not sent");
		return;
	}
	snprintf(e->fdname, sizeof(e->fdname), "%s", name);
}

void fdstore_remove(struct cache_entry *e)
{
	if (!e->fdname[0])
		return;
	sd_notifyf(0, "FDSTOREREMOVE=1\nFDNAME=%s", e->fdname);
	e->fdname[0] = '\0';
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

bool fdstore_restore(struct cache *c, int fd, const char *name)
{
	unsigned long long f[8], buf_size;
	unsigned target, method, reason, flags, uid;
	struct cache_entry e = { .fd = -1 };
	const char *why = NULL;
	struct stat st, bst;
	int pos = 0, seals;

	if (sscanf(name, PREFIX "%llx.%llx.%llx.%llx.%llx.%llx.%llx.%llx.%x.%x.%x.%x.%x.%n",
		   &f[0], &f[1], &f[2], &f[3], &f[4], &f[5], &f[6], &buf_size, &target,
		   &method, &reason, &flags, &uid, &pos) != 13 || !pos ||
	    unescape(name + pos, e.name, sizeof(e.name)) < 0 || e.name[0] != '/') {
		why = "a name it cannot parse";
		goto drop;
	}
	e.key = (struct cache_key){ .dev = f[0], .ino = f[1], .size = f[2], .mtime_ns = f[3],
				    .ctime_ns = f[4], .off = f[5], .len = f[6],
				    .target = (uint8_t)target };
	if (stat(e.name, &st) < 0) {
		why = "the file is gone";
		goto drop;
	}
	if ((uint64_t)st.st_dev != e.key.dev || (uint64_t)st.st_ino != e.key.ino ||
	    (uint64_t)st.st_size != e.key.size ||
	    (uint64_t)st.st_mtim.tv_sec * 1000000000ull + (uint64_t)st.st_mtim.tv_nsec !=
	    e.key.mtime_ns ||
	    (uint64_t)st.st_ctim.tv_sec * 1000000000ull + (uint64_t)st.st_ctim.tv_nsec !=
	    e.key.ctime_ns) {
		why = "the file changed";
		goto drop;
	}
	seals = fcntl(fd, F_GET_SEALS);
	if (fstat(fd, &bst) < 0 || (uint64_t)bst.st_size != buf_size || seals < 0 ||
	    !(seals & F_SEAL_WRITE) || e.key.off + e.key.len > e.key.size) {
		why = "the buffer is not a sealed buffer of the recorded size";
		goto drop;
	}
	e.fd = fd;
	e.buf_size = buf_size;
	e.uid = (uid_t)uid;
	e.pinned = flags & 1;
	e.hugetlb = flags & 2;
	e.method = (uint8_t)method;
	e.reason = (uint8_t)reason;
	snprintf(e.fdname, sizeof(e.fdname), "%s", name);
	if (cache_adopt(c, &e) < 0) {
		why = "it does not fit the cache";
		goto drop;
	}
	log_info("fdstore: kept %s (%llu bytes at %llu) from before the restart", e.name,
		 (unsigned long long)e.key.len, (unsigned long long)e.key.off);
	return true;
drop:
	log_info("fdstore: dropping %s: %s", name, why);
	close(fd);
	sd_notifyf(0, "FDSTOREREMOVE=1\nFDNAME=%s", name);
	return false;
}
