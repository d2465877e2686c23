/*
 * cred.c: a peer's credentials, from its socket (see cred.h).
 */
#include <errno.h>
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
