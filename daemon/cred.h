/*
 * cred.h: who a peer is. The kernel tells at accept: SO_PEERCRED (pid, uid, gid, as of
 * connect()), SO_PEERGROUPS, and SO_PEERPIDFD (a pidfd that says whether the pid
 * still names the process that connected). Loads by path are opened with these
 * (source.c, lookup.c: as_peer_* take them on for one thread), limits and quotas
 * are looked up by them, STATUS and LIST show a user only its own.
 */
#pragma once

#include <linux/capability.h>
#include <stdbool.h>
#include <stddef.h>
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

/* This thread's capabilities (per thread at the syscall level, as setfsuid is). */
struct thread_caps {
	struct __user_cap_header_struct hdr;
	struct __user_cap_data_struct data[2];
};

/* What as_peer_begin() changed on this thread, for as_peer_end(). */
struct as_peer {
	struct thread_caps caps;
	bool switched;		/* the fs identity is the peer's (the daemon is root) */
};

/*
 * Takes on @peer's filesystem identity (setfsuid, setfsgid, setgroups: raw syscalls,
 * this thread only) when the daemon is root; one that is not serves only its own uid
 * and refuses others here. Reads the thread's capabilities for as_peer_drop_caps().
 * Returns 0, or -errno with @msg set and nothing left changed; after 0, as_peer_end()
 * undoes it.
 */
int as_peer_begin(struct as_peer *a, const struct peer_cred *peer, char *msg, size_t len);
/* Drops every effective capability of this thread until as_peer_end(). */
int as_peer_drop_caps(struct as_peer *a, char *msg, size_t len);
/* Makes the thread the daemon again after as_peer_begin() returned 0. */
void as_peer_end(struct as_peer *a);
