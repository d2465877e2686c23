/*
 * cred.c: a peer's credentials, from its socket, and taking them on for a filesystem
 * call (see cred.h).
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "cred.h"

#ifndef SO_PEERPIDFD
#define SO_PEERPIDFD 77		/* Linux 6.5; newer than this libc's headers */
#endif

/*
 * A pidfd of the process that connected on @fd, or -1. Paths are resolved in that
 * process's root directory, found by its PID; the pidfd tells later whether the PID
 * still names it. SO_PEERPIDFD is exact; before 6.5, pidfd_open of the PID the
 * socket reported is right unless the peer exited between connect and accept. A peer
 * already gone gets *@pid 0: its paths are refused.
 */
static int peer_pidfd(int fd, pid_t *pid)
{
	int pidfd = -1;
	socklen_t sl = sizeof(pidfd);

	if (*pid <= 0)
		return -1;
	if (getsockopt(fd, SOL_SOCKET, SO_PEERPIDFD, &pidfd, &sl) == 0)
		return pidfd;
	if (errno != ENOPROTOOPT && errno != EINVAL) {
		*pid = 0;
		return -1;
	}
	pidfd = (int)syscall(SYS_pidfd_open, *pid, 0);	/* close-on-exec always */
	if (pidfd < 0 && errno == ESRCH)
		*pid = 0;
	return pidfd < 0 ? -1 : pidfd;
}

int cred_from_socket(struct peer_cred *c, int fd)
{
	struct ucred uc;
	socklen_t sl = sizeof(uc);

	memset(c, 0, sizeof(*c));
	c->pidfd = -1;
	c->n_groups = -1;
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &uc, &sl) < 0)
		return -errno;
	c->pid = uc.pid;
	c->uid = uc.uid;
	c->gid = uc.gid;
	c->pidfd = peer_pidfd(fd, &c->pid);
	/* Supplementary groups as of connect(): part of what the peer may read. */
	sl = 64 * sizeof(gid_t);
	for (int tries = 0; tries < 4; tries++) {
		gid_t *g = realloc(c->groups, sl);

		if (!g)
			break;
		c->groups = g;
		if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, g, &sl) == 0) {
			c->n_groups = (int)(sl / sizeof(gid_t));
			break;
		}
		if (errno != ERANGE)
			break;
	}
	return 0;
}

void cred_self(struct peer_cred *c)
{
	*c = (struct peer_cred){ .pid = getpid(), .pidfd = -1, .uid = geteuid(),
				 .gid = getegid(), .n_groups = -1 };
}

void cred_deinit(struct peer_cred *c)
{
	if (c->pidfd >= 0)
		close(c->pidfd);
	c->pidfd = -1;
	free(c->groups);
	c->groups = NULL;
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

static int caps_get(struct thread_caps *c)
{
	c->hdr = (struct __user_cap_header_struct){ .version = _LINUX_CAPABILITY_VERSION_3 };
	return syscall(SYS_capget, &c->hdr, c->data) < 0 ? -errno : 0;
}

static int caps_set_effective(struct thread_caps *c, bool on)
{
	struct thread_caps n = *c;

	for (int i = 0; i < 2; i++)
		n.data[i].effective = on ? c->data[i].effective : 0;
	return syscall(SYS_capset, &n.hdr, n.data) < 0 ? -errno : 0;
}

int as_peer_begin(struct as_peer *a, const struct peer_cred *peer, char *msg, size_t len)
{
	bool root = geteuid() == 0;
	int r;

	a->switched = false;
	if (!root && peer->uid != geteuid()) {
		snprintf(msg, len, "the daemon runs as uid %u and cannot act as uid %u; "
			 "pass an open fd instead", geteuid(), peer->uid);
		return -EACCES;
	}
	r = caps_get(&a->caps);
	if (r < 0) {
		snprintf(msg, len, "cannot read the daemon's capabilities: %s", strerror(-r));
		return r;
	}
	if (root) {
		r = become(peer);
		if (r < 0) {
			become_self();
			snprintf(msg, len, "cannot take on the client's credentials: %s",
				 strerror(-r));
			return r;
		}
		a->switched = true;
	}
	return 0;
}

int as_peer_drop_caps(struct as_peer *a, char *msg, size_t len)
{
	int r = caps_set_effective(&a->caps, false);

	if (r < 0)
		snprintf(msg, len, "cannot drop the daemon's capabilities: %s", strerror(-r));
	return r;
}

void as_peer_end(struct as_peer *a)
{
	/* Capabilities first: setfsuid(0) gives back the filesystem ones on its own,
	 * and restoring the saved set makes the thread exactly what it was. */
	caps_set_effective(&a->caps, true);
	if (a->switched)
		become_self();
	a->switched = false;
}
