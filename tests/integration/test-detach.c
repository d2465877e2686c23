/*
 * test-detach.c: who may detach loads (DL_LOAD_DETACH), how many, and how they are
 * seen and ended, against a root daemon with detach_group set and max_detached = 2.
 *
 * Clients are forked children that drop to nobody (uid/gid 65534), with or without
 * the detach group as a supplementary group, or to another non-root uid. Nobody
 * without the group gets EPERM naming detach_group; with it, a detached load works.
 * Past max_detached (root's slow loads, rate-limited by the LOAD's rate_limit) a
 * third gets EBUSY, and cancelled ones free their places. A detached slow load whose
 * connection closed is listed in root's STATUS and its owner's, not in another
 * user's, whose EVICT cannot touch it; the owner's EVICT by path and root's
 * `dmaload-ctl evict --all` cancel it: STATUS no longer lists it and the daemon's fd
 * and memfd counts return to the baseline. Needs root; SKIPs otherwise.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../lib/check.h"
#include "../lib/harness.h"
#include "../lib/loads.h"

#define SUITE "detach"
#define NOBODY 65534
#define OTHER 65533		/* another non-root user, in no group of interest */
#define DETACH_GID 4243		/* detach_group, by number (no such group name) */
#define SLOW_SIZE (16 * MiB)
#define SLOW_RATE (1 * MiB)	/* 16 s: still loading while the test looks */
#define SMALL (MiB + 17)

static struct test_daemon d;
static char small[PATH_MAX + 16], slow1[PATH_MAX + 16], slow2[PATH_MAX + 16],
	    slow3[PATH_MAX + 16];
static char out[16384], err[16384];

enum child_act {
	ACT_DETACH_SYNC,	/* a detached pinned load of path, to its final event */
	ACT_DETACH_LEAVE,	/* a slow detached load of path; leave at ACCEPTED */
	ACT_STATUS_HAS,		/* STATUS lists path (want) or not */
	ACT_EVICT,		/* EVICT path: want the result (>= 1 or -errno) */
};

struct child_arg {
	uid_t uid;
	gid_t extra_gid;	/* a supplementary group, 0 for none */
	enum child_act act;
	const char *path;
	int want;		/* ACT_DETACH_SYNC: 0 (DONE) or the ERROR errno;
				 * ACT_STATUS_HAS: 1 listed, 0 not; ACT_EVICT: 1 for
				 * at least one cancelled, else the -errno */
};


static void slow_opts(struct dmaload_opts *o)
{
	dmaload_opts_init(o);
	o->detach = true;
	o->pin = true;
	o->rate_limit = SLOW_RATE;
}

/* Runs in the child. */
static int child_main(void *arg, char *msg, size_t len)
{
	struct child_arg *a = arg;
	struct dmaload_event ev = { .fd = -1 };
	struct dmaload_opts o;
	struct dmaload *dl = NULL;
	uint64_t id;
	int r;

	if (child_drop(a->uid, a->extra_gid, msg, len) < 0)
		return 1;
	r = dmaload_connect(&dl, d.sock, "detach-child");
	if (r < 0) {
		snprintf(msg, len, "connect as uid %u: %s", a->uid, strerror(-r));
		return 1;
	}
	switch (a->act) {
	case ACT_DETACH_SYNC:
		dmaload_opts_init(&o);
		o.detach = true;
		o.pin = true;
		r = dmaload_load_path_sync(dl, a->path, &o, &ev);
		if (a->want == 0 && r != 0) {
			snprintf(msg, len, "expected DONE, got r=%d %s", r, lc_event_str(&ev));
			return 1;
		}
		if (a->want && (r == 0 || ev.type != DMALOAD_EV_ERROR || ev.err != a->want ||
				!strstr(ev.message, "detach_group"))) {
			snprintf(msg, len, "expected ERROR %s naming detach_group, got r=%d %s",
				 strerrorname_np(a->want), r, lc_event_str(&ev));
			return 1;
		}
		if (ev.fd >= 0)
			close(ev.fd);
		break;
	case ACT_DETACH_LEAVE:
		slow_opts(&o);
		r = dmaload_load_path(dl, a->path, &o, &id);
		if (r == 0)
			r = dmaload_next_event(dl, &ev, 5000);
		if (r != 1 || ev.type != DMALOAD_EV_ACCEPTED) {
			snprintf(msg, len, "slow detached load: r=%d %s", r, lc_event_str(&ev));
			return 1;
		}
		break;		/* the connection closes with the child */
	case ACT_STATUS_HAS:
		r = lc_status_lists(dl, a->path);
		if (r != a->want) {
			snprintf(msg, len, "uid %u: STATUS %s %s (r=%d)", a->uid,
				 r == 1 ? "lists" : "does not list", a->path, r);
			return 1;
		}
		break;
	case ACT_EVICT:
		r = dmaload_evict(dl, a->path, NULL);
		if (a->want == 1 ? r < 1 : r != a->want) {
			snprintf(msg, len, "uid %u: EVICT %s = %d, want %s", a->uid, a->path, r,
				 a->want == 1 ? ">= 1" : strerror(-a->want));
			return 1;
		}
		break;
	}
	dmaload_close(dl);
	return 0;
}

static bool in_child(uid_t uid, gid_t extra, enum child_act act, const char *path,
		     int want)
{
	struct child_arg a = { .uid = uid, .extra_gid = extra, .act = act, .path = path,
			       .want = want };
	char msg[1024] = "";
	int r = child_run(child_main, &a, msg, sizeof(msg), 20000);

	return CHECKF(r == 0, "child (uid %u): %d: %s", uid, r, msg);
}

/* Root's STATUS lists @path (or not, @want false), polled up to @ms for the change. */
static bool root_sees(const char *path, bool want, int ms)
{
	struct dmaload *dl = lc_connect(&d, "root-status");
	uint64_t end = now_ms() + (uint64_t)ms;
	int r;

	if (!dl)
		return false;
	do {
		r = lc_status_lists(dl, path);
		if (r < 0 || r == (int)want)
			break;
		sleep_ms(50);
	} while (now_ms() < end);
	dmaload_close(dl);
	return CHECKF(r == (int)want, "root's STATUS %s %s (r=%d)",
		      r == 1 ? "lists" : "does not list", path, r);
}

/* Drops every cached buffer (root's EVICT --all); ENOENT (nothing there) is fine. */
static bool evict_all(void)
{
	struct dmaload *dl = lc_connect(&d, "evict-all");
	int r;

	if (!dl)
		return false;
	r = dmaload_evict(dl, NULL, NULL);
	dmaload_close(dl);
	return CHECKF(r >= 1 || r == -ENOENT, "evict --all: %s", strerror(-r));
}

static void nobody_refused(void)
{
	in_child(NOBODY, 0, ACT_DETACH_SYNC, small, EPERM);
	evict_all();		/* had it been served, its buffer stays cached */
	CHECK_SETTLED(&d, 5000);
}

static void group_member_may(void)
{
	in_child(NOBODY, DETACH_GID, ACT_DETACH_SYNC, small, 0);
	evict_all();
	CHECK_SETTLED(&d, 5000);
}

/* Root's slow detached loads: 2 run, the third is EBUSY naming max_detached; once
 * they are cancelled, a detached load is accepted again. */
static void cap(void)
{
	struct dmaload *dl = lc_connect(&d, "cap");
	struct dmaload_event ev = { .fd = -1 };
	struct dmaload_opts o;
	uint64_t id[2] = { 0, 0 };
	int r;

	if (!dl)
		return;
	slow_opts(&o);
	for (int i = 0; i < 2; i++) {
		r = dmaload_load_path(dl, i ? slow2 : slow1, &o, &id[i]);
		CHECKF(r == 0, "detached load %d: %s", i, strerror(-r));
	}
	r = dmaload_load_path(dl, slow3, &o, NULL);
	if (CHECK_OK(r)) {
		/* ACCEPTED of the first two may come first */
		do
			r = dmaload_next_event(dl, &ev, 5000);
		while (r == 1 && ev.type != DMALOAD_EV_ERROR && ev.type != DMALOAD_EV_DONE);
		CHECKF(r == 1 && ev.type == DMALOAD_EV_ERROR && ev.err == EBUSY &&
		       strstr(ev.message, "max_detached = 2"), "third detached load: r=%d %s",
		       r, lc_event_str(&ev));
	}
	for (int i = 0; i < 2; i++) {
		uint64_t cid;

		if (!id[i] || !CHECK_OK(dmaload_cancel(dl, id[i], &cid)))
			continue;
		r = dmaload_wait(dl, id[i], &ev, NULL, NULL);
		CHECKF(r == 0 && ev.type == DMALOAD_EV_ERROR && ev.err == ECANCELED,
		       "cancelled load %d: r=%d %s", i, r, lc_event_str(&ev));
		r = dmaload_wait(dl, cid, &ev, NULL, NULL);
		CHECKF(r == 0 && ev.type == DMALOAD_EV_OK, "cancel %d: r=%d %s", i, r,
		       lc_event_str(&ev));
	}
	dmaload_close(dl);
	CHECK_SETTLED(&d, 10000);
	/* their places are free again */
	dl = lc_connect(&d, "cap-again");
	if (!dl)
		return;
	dmaload_opts_init(&o);
	o.detach = true;
	o.pin = true;
	r = dmaload_load_path_sync(dl, small, &o, &ev);
	CHECKF(r == 0, "detached load after the cancels: %s", lc_event_str(&ev));
	if (ev.fd >= 0)
		close(ev.fd);
	dmaload_close(dl);
	evict_all();
	CHECK_SETTLED(&d, 5000);
}

/* A group member's detached slow load, its connection closed: listed to root and to
 * its owner, not to another user, whose EVICT of it is ENOENT; the owner's EVICT by
 * path cancels it. */
static void listed_owner_evicts(void)
{
	if (!in_child(NOBODY, DETACH_GID, ACT_DETACH_LEAVE, slow1, 0))
		goto out;
	CHECK(root_sees(slow1, true, 0));
	in_child(NOBODY, 0, ACT_STATUS_HAS, slow1, 1);
	in_child(OTHER, 0, ACT_STATUS_HAS, slow1, 0);
	in_child(OTHER, 0, ACT_EVICT, slow1, -ENOENT);
	CHECK(root_sees(slow1, true, 0));
	in_child(NOBODY, 0, ACT_EVICT, slow1, 1);
	CHECK(root_sees(slow1, false, 2000));
out:
	evict_all();
	CHECK_SETTLED(&d, 10000);
}

/* Root's detached slow loads, connection closed: the log counts them in flight, EVICT
 * by path cancels the one, `dmaload-ctl evict --all` the other. */
static void root_evicts(void)
{
	struct dmaload *dl = lc_connect(&d, "root-leaves");
	struct dmaload_event ev = { .fd = -1 };
	struct dmaload_opts o;
	const char *args[] = { "evict", "--all", NULL };
	const char *args_path[] = { "evict", slow1, NULL };
	long skip = daemon_log_size(&d);
	int r;

	if (!dl)
		return;
	slow_opts(&o);
	for (int i = 0; i < 2; i++) {
		r = dmaload_load_path(dl, i ? slow2 : slow1, &o, NULL);
		if (r == 0)
			r = dmaload_next_event(dl, &ev, 5000);
		CHECKF(r == 1 && ev.type == DMALOAD_EV_ACCEPTED, "slow detached load %d: "
		       "r=%d %s", i, r, lc_event_str(&ev));
	}
	/* The count is root's to see in the log. */
	CHECK(daemon_log_wait(&d, "2 of max_detached = 2 detached loads in flight",
			      skip, 2000));
	dmaload_close(dl);
	CHECK(daemon_log_wait(&d, "2 detached loads go on (2 in flight daemon-wide)",
			      skip, 2000));
	if (!root_sees(slow1, true, 0) || !root_sees(slow2, true, 0))
		goto out;
	r = ctl_run(d.sock, d.dir, args_path, 10000, out, sizeof(out), err, sizeof(err));
	CHECKF(r == 0, "evict %s: exit %d: %s%s", slow1, r, out, err);
	CHECK(root_sees(slow1, false, 2000));
	CHECK(root_sees(slow2, true, 0));
	r = ctl_run(d.sock, d.dir, args, 10000, out, sizeof(out), err, sizeof(err));
	CHECKF(r == 0, "evict --all: exit %d: %s%s", r, out, err);
	CHECK(root_sees(slow2, false, 2000));
out:
	evict_all();
	CHECK_SETTLED(&d, 10000);
	CHECK_SETTLED_START(&d, 5000);
}

int main(void)
{
	char dir[PATH_MAX];

	check_init(SUITE);
	if (geteuid() != 0) {
		check_skip_case("detach checks", "needs root (the daemon must run as root, clients as nobody)");
		return 0;
	}
	if (!daemon_start_case(&d, SUITE, "chunk_size = 1M\nmax_detached = 2\nhugetlb = off\n",
			       "[daemon]\ndetach_group = 4243\n[cache]\ncache_limit = 1G\n"))
		return 1;
	snprintf(dir, sizeof(dir), "%s/files", d.dir);
	CHECKF(mkdir(dir, 0755) == 0, "mkdir: %s", strerror(errno));
	snprintf(small, sizeof(small), "%s/small", dir);
	snprintf(slow1, sizeof(slow1), "%s/slow1", dir);
	snprintf(slow2, sizeof(slow2), "%s/slow2", dir);
	snprintf(slow3, sizeof(slow3), "%s/slow3", dir);
	CHECK_OK(file_make(small, SMALL, 1, 0644));
	CHECK_OK(file_make(slow1, SLOW_SIZE, 2, 0644));
	CHECK_OK(file_make(slow2, SLOW_SIZE, 3, 0644));
	CHECK_OK(file_make(slow3, SLOW_SIZE, 4, 0644));
	if (!check_end()) {
		daemon_cleanup(&d);
		return 1;
	}
	daemon_baseline(&d);

	CASE(nobody_refused(), "nobody's detached load -> EPERM naming detach_group");
	CASE(group_member_may(), "a member of detach_group (supplementary) may detach");
	CASE(cap(), "past max_detached = 2 -> EBUSY; cancelled ones free their places");
	CASE(listed_owner_evicts(), "a closed connection's detached load: in root's and its "
	     "owner's STATUS, not another user's (whose EVICT is ENOENT); the owner's EVICT "
	     "by path cancels it");
	CASE(root_evicts(), "root's detached loads after close: counted in the log; EVICT "
	     "by path and evict --all cancel them; fds and memfds back to the baseline");

	daemon_stop_case(&d, "daemon exits 0 on SIGTERM");
	return check_finish();
}
