/*
 * test-hostage.c: slots and joins an unprivileged client cannot hold hostage (issue
 * 12, item 3). Root only: the attacker is a forked child running as nobody, beside
 * root (the victim) on one daemon with max_loads = 4.
 *
 * - throttled: nobody holds every reading slot and more with loads at 1 byte/s; root's
 *   load of its own file completes, every byte right, within VICTIM_MS, while all of
 *   nobody's loads are still running (no DONE or ERROR reached nobody).
 * - slow leader: nobody reads a public file at 1 byte/s; root's default load of it
 *   takes the read over instead of joining (DONE without JOINED, within VICTIM_MS),
 *   and nobody's load still runs; root's next load of it is a cache hit.
 * - orphaned slow leader: nobody's 1 byte/s load has a joiner at the same rate and its
 *   connection closed (it reads only for the joiner); root's load takes the read over,
 *   the joiner gets root's buffer (JOINED, every byte), the old leader is cancelled.
 *
 * Correctness, not speed: VICTIM_MS is far above what any machine takes for 2 MiB and
 * far below the days the attacker's loads would take.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../lib/check.h"
#include "../lib/harness.h"
#include "../lib/loads.h"

#define SUITE "hostage"
#define NOBODY 65534
#define MAX_LOADS 4
#define N_THROTTLED (2 * MAX_LOADS)	/* every slot, and as many waiting */
#define RANGE (4 * MiB)			/* each throttled load's: 4 chunks of 1 MiB */
#define BIG_SIZE ((uint64_t)N_THROTTLED * RANGE)
#define PUB_SIZE (2 * MiB + 12345)
#define VICTIM_SIZE (2 * MiB + 77)
#define VICTIM_MS 5000

static struct test_daemon d;
static char big_path[PATH_MAX], pub_path[PATH_MAX], victim_path[PATH_MAX];

enum attack {
	ATTACK_THROTTLED,	/* N_THROTTLED loads of big_path's ranges at 1 byte/s */
	ATTACK_SLOW,		/* one load of pub_path at 1 byte/s */
	ATTACK_ORPHAN,		/* the same, a joiner at 1 byte/s, the leader's conn closed */
};

/* The attacker: a child as nobody that says 'r' on @ready once its loads are
 * accepted, and on EOF of @hold checks them and exits (0: as expected). */
struct attacker {
	pid_t pid;
	int ready, hold;	/* the parent's ends */
};

/* In the child. Exit codes: 0 as expected, 2 set-up, 3 a load failed to start, 4 a
 * load of ATTACK_THROTTLED/SLOW ended, 5 the orphan's joiner got no right buffer. */
static int attack_child(enum attack how, int ready, int hold)
{
	struct dmaload *dl = NULL, *join = NULL;
	struct dmaload_opts o;
	struct dmaload_event ev;
	char msg[256], c;
	uint64_t id, jid = 0;
	int n = how == ATTACK_THROTTLED ? N_THROTTLED : 1, accepted = 0;

	if (child_drop(NOBODY, 0, msg, sizeof(msg)) < 0 ||
	    dmaload_connect(&dl, d.sock, "attacker") < 0)
		return 2;
	dmaload_opts_init(&o);
	o.rate_limit = 1;
	for (int i = 0; i < n; i++) {
		if (how == ATTACK_THROTTLED) {
			o.offset = (uint64_t)i * RANGE;
			o.length = RANGE;
		}
		if (dmaload_load_path(dl, how == ATTACK_THROTTLED ? big_path : pub_path,
				      &o, &id) < 0)
			return 3;
	}
	while (accepted < n) {
		if (dmaload_next_event(dl, &ev, 10000) != 1 || ev.type == DMALOAD_EV_ERROR ||
		    ev.type == DMALOAD_EV_DONE)
			return 3;
		accepted += ev.type == DMALOAD_EV_ACCEPTED;
	}
	if (how == ATTACK_ORPHAN) {
		/* same rate: it joins; then the leader's client leaves */
		if (dmaload_connect(&join, d.sock, "attacker-joiner") < 0 ||
		    dmaload_load_path(join, pub_path, &o, &jid) < 0 ||
		    dmaload_next_event(join, &ev, 10000) != 1 ||
		    ev.type != DMALOAD_EV_ACCEPTED)
			return 3;
		dl = dmaload_close(dl);
	}
	if (write(ready, "r", 1) != 1)
		return 2;
	while (read(hold, &c, 1) > 0)
		;
	if (how == ATTACK_ORPHAN) {
		bool ok = dmaload_wait(join, jid, &ev, NULL, NULL) == 0 &&
			  ev.type == DMALOAD_EV_DONE && (ev.done_flags & DL_DONE_JOINED) &&
			  buf_verify(ev.fd, PUB_SIZE, 2, 0, msg, sizeof(msg));

		return ok ? 0 : 5;
	}
	/* nothing final may have come: every load is still running */
	while (dmaload_next_event(dl, &ev, 0) == 1)
		if (ev.type == DMALOAD_EV_DONE || ev.type == DMALOAD_EV_ERROR)
			return 4;
	return 0;
}

static bool attack_start(struct attacker *a, enum attack how)
{
	int rp[2], hp[2];
	char c;

	a->pid = -1;
	if (!CHECKF(pipe2(rp, O_CLOEXEC) == 0 && pipe2(hp, O_CLOEXEC) == 0, "pipe: %s",
		    strerror(errno)))
		return false;
	a->pid = fork();
	if (a->pid == 0) {
		close(rp[0]);
		close(hp[1]);
		_exit(attack_child(how, rp[1], hp[0]));
	}
	close(rp[1]);
	close(hp[0]);
	a->ready = rp[0];
	a->hold = hp[1];
	if (!CHECKF(a->pid > 0, "fork: %s", strerror(errno)))
		return false;
	return CHECKF(read(a->ready, &c, 1) == 1, "the attacker did not start its loads");
}

/* Lets the attacker check its loads and go; returns its exit code (-1: killed). */
static int attack_end(struct attacker *a)
{
	int st = 0;

	if (a->pid <= 0)
		return -1;
	close(a->hold);
	close(a->ready);
	if (waitpid(a->pid, &st, 0) < 0 || !WIFEXITED(st))
		return -1;
	return WEXITSTATUS(st);
}

/* Root's load of @path (whole): DONE within VICTIM_MS with every byte; returns its
 * DONE flags in *@flags. Waits no longer than VICTIM_MS: a load held hostage fails
 * the case here, not at the watchdog. */
static void victim_load(const char *path, uint64_t size, uint32_t seed, uint32_t *flags)
{
	struct dmaload *dl = lc_connect(&d, "victim");
	struct dmaload_event ev;
	uint64_t t0 = now_ms(), id, ms;
	int r = 0;

	ev.fd = -1;
	*flags = 0;
	if (!dl || !CHECK_OK(dmaload_load_path(dl, path, NULL, &id)))
		goto out;
	for (;;) {
		ms = now_ms() - t0;
		if (ms >= VICTIM_MS)
			break;
		r = dmaload_next_event(dl, &ev, (int)(VICTIM_MS - ms));
		if (r != 1 || ev.type == DMALOAD_EV_DONE || ev.type == DMALOAD_EV_ERROR)
			break;
	}
	if (!CHECKF(r == 1 && (ev.type == DMALOAD_EV_DONE || ev.type == DMALOAD_EV_ERROR),
		    "root's load had no answer within %d ms beside the attacker", VICTIM_MS))
		goto out;
	if (lc_check_done(&ev, size, seed, 0, DL_METHOD_AUTO))
		*flags = ev.done_flags;
out:
	if (ev.fd >= 0 && ev.type == DMALOAD_EV_DONE)
		close(ev.fd);
	dmaload_close(dl);
}

static void throttled(void)
{
	struct attacker a;
	uint32_t flags;

	if (attack_start(&a, ATTACK_THROTTLED)) {
		/* twice: the slot root's first load had must serve the next too */
		victim_load(victim_path, VICTIM_SIZE, 3, &flags);
		victim_load(victim_path, VICTIM_SIZE, 3, &flags);
	}
	CHECK_INT(attack_end(&a), ==, 0);
}

static void slow_leader(void)
{
	struct attacker a;
	struct dmaload *dl;
	uint64_t bytes;
	uint32_t flags;

	if ((dl = lc_connect(&d, "evict"))) {
		dmaload_evict(dl, NULL, &bytes);
		dmaload_close(dl);
	}
	if (attack_start(&a, ATTACK_SLOW)) {
		victim_load(pub_path, PUB_SIZE, 2, &flags);
		CHECKF(!(flags & DL_DONE_JOINED), "root's load joined the slow leader "
		       "(flags 0x%x)", flags);
		/* its buffer is the entry's: the next load is a hit */
		victim_load(pub_path, PUB_SIZE, 2, &flags);
		CHECKF(flags & DL_DONE_CACHED, "root's second load: flags 0x%x, want cached",
		       flags);
	}
	CHECK_INT(attack_end(&a), ==, 0);
}

static void orphaned_leader(void)
{
	long skip = daemon_log_size(&d);
	struct attacker a;
	struct dmaload *dl;
	uint64_t bytes, t0;
	uint32_t flags;
	int r = -1;

	if ((dl = lc_connect(&d, "evict"))) {
		dmaload_evict(dl, NULL, &bytes);
		dmaload_close(dl);
	}
	if (attack_start(&a, ATTACK_ORPHAN)) {
		victim_load(pub_path, PUB_SIZE, 2, &flags);
		CHECKF(!(flags & DL_DONE_JOINED), "root's load joined the slow leader "
		       "(flags 0x%x)", flags);
		CHECKF(daemon_log_wait(&d, "takes over the read of it from conn", skip, 5000),
		       "no log line about the read taken over");
		/* the old leader read only for the joiner: it is gone from STATUS */
		if ((dl = lc_connect(&d, "status"))) {
			for (t0 = now_ms(); now_ms() - t0 < 5000; sleep_ms(50))
				if ((r = lc_status_lists(dl, pub_path)) <= 0)
					break;
			dmaload_close(dl);
		}
		CHECKF(r == 0, "the orphaned slow leader still runs (STATUS: %d)", r);
	}
	CHECKF(attack_end(&a) == 0, "nobody's joiner did not get root's buffer, every byte");
}

int main(void)
{
	check_init(SUITE);
	if (geteuid() != 0) {
		check_skip_case("slots and joins held hostage", "needs root (the attacker runs as nobody)");
		return 0;
	}
	if (!daemon_start_case(&d, SUITE, "max_loads = 4\nchunk_size = 1M\n",
			       "[cache]\ncache_limit = 64M\n"))
		return 1;
	snprintf(big_path, sizeof(big_path), "%s/big", d.dir);
	snprintf(pub_path, sizeof(pub_path), "%s/public", d.dir);
	snprintf(victim_path, sizeof(victim_path), "%s/victim", d.dir);
	CHECK(file_make(big_path, BIG_SIZE, 1, 0644) == 0);
	CHECK(file_make(pub_path, PUB_SIZE, 2, 0644) == 0);
	CHECK(file_make(victim_path, VICTIM_SIZE, 3, 0600) == 0);
	if (!check_end()) {
		daemon_cleanup(&d);
		return 1;
	}

	CASE(throttled(), "nobody's %d loads at 1 byte/s hold every slot (max_loads %d): "
	     "root's loads finish, every byte, while all of nobody's still run",
	     N_THROTTLED, MAX_LOADS);
	CASE(slow_leader(), "nobody's 1 byte/s load of a public file: root's load of it "
	     "takes the read over (no join), nobody's runs on; root's next is a hit");
	CASE(orphaned_leader(), "a slow leader whose client left: root takes the read "
	     "over, nobody's joiner gets root's buffer, the old leader is cancelled");

	daemon_stop_case(&d, "daemon exits 0 on SIGTERM");
	return check_finish();
}
