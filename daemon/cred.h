/*
 * cred.h: who a peer is. The kernel tells at accept: SO_PEERCRED (pid, uid, gid, as of
 * connect()), SO_PEERGROUPS, and SO_PEERPIDFD (a pidfd that says whether the pid
 * still names the process that connected). Loads by path are opened with these
 * (source.c), limits and quotas are looked up by them, STATUS and LIST show a user
 * only its own.
 */
#pragma once

#include <sys/types.h>

struct peer_cred {
	pid_t pid;		/* as this daemon sees it; 0 if it cannot (gone, or
				 * in a PID namespace it cannot see) */
	int pidfd;		/* of that process, -1 if the kernel gives none: tells
				 * whether pid still names the process that connected */
	uid_t uid;
	gid_t gid;
	int n_groups;		/* supplementary groups, -1 if unknown */
	gid_t *groups;
};

/* Fills @c for the peer of connected socket @fd (borrowed). Returns 0 or -errno (the
 * peer's pid, uid and gid cannot be known: refuse it). */
int cred_from_socket(struct peer_cred *c, int fd);
/* The daemon's own credentials: for its own loads ([preload]). */
void cred_self(struct peer_cred *c);
/* Frees the groups and closes the pidfd. Safe twice. */
void cred_deinit(struct peer_cred *c);
