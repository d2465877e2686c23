/*
 * test-quota.c: quotas per uid (issue 12, item 7), with nobody as the greedy user and
 * root beside it. Against one daemon with a 64 MiB cache and [quota]
 * max_loads_per_uid = 2, max_inflight_per_uid = 40M, max_pinned_per_uid at its
 * default (50% of the cache):
 *
 *   - nobody pins five 12 MiB files: two are pinned (24 MiB), the others are kept
 *     unpinned, which the log says; root's loads are then still cached (a second load
 *     of each is a hit). Before the quota nobody pinned 60 of the 64 MiB and root's
 *     buffers were not kept.
 *   - nobody's load over its bytes in flight, and over its loads in flight, get
 *     EDQUOT naming the key, while root's three loads at once go through.
 *   - nobody loads 48 MiB into its own memfd: left sparse, the pages the daemon's
 *     writes would fault in are the daemon's to pay for, so they count as bytes in
 *     flight (EDQUOT, the memfd untouched); fallocated first, they are nobody's own
 *     and the load is done, every byte right.
 *
 * Needs root (a nobody client); SKIPs otherwise.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../lib/check.h"
#include "../lib/harness.h"
#include "../lib/loads.h"

#define SUITE "quota"
#define NOBODY 65534
#define SEED 7
#define PIN_SIZE (12 * MiB)
#define N_PIN 5

static struct test_daemon d;
static char pin_files[N_PIN][PATH_MAX + 16], root_files[2][PATH_MAX + 16];
static char slow_big[2][PATH_MAX + 16], slow_small[2][PATH_MAX + 16];
static char into_file[PATH_MAX + 16];
#define INTO_SIZE (48 * MiB)
static char root_flight[3][PATH_MAX + 16];	/* not nobody's: root must not join
						 * its throttled loads */

/* In a child: becomes nobody (child_drop) and connects as @name. NULL with @msg set
 * if either fails. */
static struct dmaload *nobody_connect(const char *name, char *msg, size_t len)
{
	struct dmaload *dl;
	int r;

	if (child_drop(NOBODY, 0, msg, len) < 0)
		return NULL;
	if ((r = dmaload_connect(&dl, d.sock, name)) < 0) {
		snprintf(msg, len, "connect: %s", strerror(-r));
		return NULL;
	}
	return dl;
}

/* nobody pins every file, one after the other; each loads. */
static int child_pin(void *arg, char *msg, size_t len)
{
	struct dmaload_event ev;
	struct dmaload_opts o;
	struct dmaload *dl;
	int r;

	if (!(dl = nobody_connect("pinner", msg, len)))
		return 1;
	dmaload_opts_init(&o);
	o.exact_size = true;
	o.pin = true;
	for (int i = 0; i < N_PIN; i++) {
		r = dmaload_load_path_sync(dl, pin_files[i], &o, &ev);
		if (r < 0 || ev.type != DMALOAD_EV_DONE) {
			snprintf(msg, len, "pinned load %d: %s", i,
				 r < 0 ? strerror(-r) : lc_event_str(&ev));
			return 1;
		}
		close(ev.fd);
	}
	dmaload_close(dl);
	return 0;
}

static void pins(void)
{
	char msg[1024] = "", needle[64];
	long skip = daemon_log_size(&d);
	struct dmaload *dl;
	struct dmaload_event ev;
	struct dmaload_opts o;
	int r;

	r = child_run(child_pin, NULL, msg, sizeof(msg), 60000);
	if (!CHECKF(r == 0, "%s", msg[0] ? msg : "child failed"))
		return;
	/* 50% of 64 MiB: two 12 MiB pins, not the third. */
	snprintf(needle, sizeof(needle), "kept unpinned: uid %d pins %llu bytes", NOBODY,
		 (unsigned long long)(2 * PIN_SIZE));
	CHECKF(daemon_log_wait(&d, needle, skip, 5000), "no \"%s\" in the log", needle);
	dl = lc_connect(&d, "root");
	if (!dl)
		return;
	dmaload_opts_init(&o);
	o.exact_size = true;
	for (int i = 0; i < 2; i++) {
		for (int k = 0; k < 2; k++) {
			if (!CHECK_OK(dmaload_load_path_sync(dl, root_files[i], &o, &ev)) ||
			    !CHECKF(ev.type == DMALOAD_EV_DONE, "root's load: %s",
				    lc_event_str(&ev)))
				goto out;
			close(ev.fd);
		}
		CHECKF(ev.done_flags & DL_DONE_CACHED, "root's second load of %s was not "
		       "a cache hit: its buffer was not kept", root_files[i]);
	}
out:
	dmaload_close(dl);
}

/* Waits for the final event of @id; true if it is an ERROR @err naming @needle. */
static bool wait_refused(struct dmaload *dl, uint64_t id, int err, const char *needle,
			 char *msg, size_t len)
{
	struct dmaload_event ev;
	int r = dmaload_wait(dl, id, &ev, NULL, NULL);

	if (r == 0 && ev.type == DMALOAD_EV_ERROR && ev.err == err &&
	    strstr(ev.message, needle))
		return true;
	snprintf(msg, len, "expected ERROR %s naming %s, got %s", strerrorname_np(err),
		 needle, r < 0 ? strerror(-r) : lc_event_str(&ev));
	if (r == 0 && ev.type == DMALOAD_EV_DONE)
		close(ev.fd);
	return false;
}

/*
 * nobody: a 24 MiB load in flight (slow), a second one over max_inflight_per_uid
 * (40M): EDQUOT; an 8 MiB one (slow) fits; a third load in flight over
 * max_loads_per_uid (2): EDQUOT. Then it tells the parent (@arg: the pipes) and keeps
 * its loads in flight until the parent is done.
 */
static int child_flight(void *arg, char *msg, size_t len)
{
	int *p = arg;	/* p[0]: read "go on"; p[1]: write "ready" */
	struct dmaload_opts o;
	struct dmaload *dl;
	uint64_t id[4];
	char c = 'x';

	if (!(dl = nobody_connect("greedy", msg, len)))
		return 1;
	dmaload_opts_init(&o);
	o.rate_limit = 256 * 1024;	/* in flight for the whole case */
	/* One after the other: the opens run on two workers, in either order. */
	if (dmaload_load_path(dl, slow_big[0], &o, &id[0]) < 0 || (sleep_ms(300), false) ||
	    dmaload_load_path(dl, slow_big[1], &o, &id[1]) < 0) {
		snprintf(msg, len, "starting loads failed");
		return 1;
	}
	if (!wait_refused(dl, id[1], EDQUOT, "max_inflight_per_uid", msg, len))
		return 1;
	sleep_ms(300);		/* the refused load is released on a worker */
	if (dmaload_load_path(dl, slow_small[0], &o, &id[2]) < 0 || (sleep_ms(300), false) ||
	    dmaload_load_path(dl, slow_small[1], &o, &id[3]) < 0) {
		snprintf(msg, len, "starting loads failed");
		return 1;
	}
	if (!wait_refused(dl, id[3], EDQUOT, "max_loads_per_uid", msg, len))
		return 1;
	if (write(p[1], &c, 1) != 1 || read(p[0], &c, 1) != 1) {
		snprintf(msg, len, "pipe: %s", strerror(errno));
		return 1;
	}
	dmaload_close(dl);	/* cancels the slow ones */
	return 0;
}

/* nobody, its earlier loads gone, loads 24 MiB and 8 MiB again. */
static int child_again(void *arg, char *msg, size_t len)
{
	const char *files[] = { slow_big[1], slow_small[1] };
	struct dmaload_event ev;
	struct dmaload_opts o;
	struct dmaload *dl;
	int r;

	if (!(dl = nobody_connect("again", msg, len)))
		return 1;
	dmaload_opts_init(&o);
	for (int i = 0; i < 2; i++) {
		r = dmaload_load_path_sync(dl, files[i], &o, &ev);
		if (r < 0 || ev.type != DMALOAD_EV_DONE) {
			snprintf(msg, len, "load of %s: %s", files[i],
				 r < 0 ? strerror(-r) : lc_event_str(&ev));
			return 1;
		}
		close(ev.fd);
	}
	dmaload_close(dl);
	return 0;
}

/* A 48 MiB memfd of nobody's, sealed against shrinking; fallocated if @paid. */
static int into_memfd(bool paid, char *msg, size_t len)
{
	int fd = memfd_create("into", MFD_CLOEXEC | MFD_ALLOW_SEALING);

	if (fd < 0 || ftruncate(fd, INTO_SIZE) < 0 ||
	    (paid && fallocate(fd, 0, 0, INTO_SIZE) < 0) ||
	    fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK) < 0) {
		snprintf(msg, len, "memfd: %s", strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	return fd;
}

/* nobody loads into_file into a sparse memfd (EDQUOT), then a fallocated one. */
static int child_into(void *arg, char *msg, size_t len)
{
	struct dmaload_event ev;
	struct dmaload *dl;
	uint64_t id;
	uint8_t *p;
	int fd, r;

	if (!(dl = nobody_connect("into", msg, len)))
		return 1;
	for (int paid = 0; paid < 2; paid++) {
		fd = into_memfd(paid, msg, len);
		if (fd < 0)
			return 1;
		r = dmaload_load_into_path(dl, into_file, fd, 0, NULL, &id);
		if (r == 0)
			r = dmaload_wait(dl, id, &ev, NULL, NULL);
		if (r < 0) {
			snprintf(msg, len, "load into (%s): %s", paid ? "fallocated" : "sparse",
				 strerror(-r));
			return 1;
		}
		if (!paid && (ev.type != DMALOAD_EV_ERROR || ev.err != EDQUOT ||
			      !strstr(ev.message, "max_inflight_per_uid"))) {
			snprintf(msg, len, "into a sparse 48 MiB memfd, over 40M in flight: "
				 "%s, want EDQUOT naming max_inflight_per_uid",
				 lc_event_str(&ev));
			return 1;
		}
		if (paid && ev.type != DMALOAD_EV_DONE) {
			snprintf(msg, len, "into a fallocated memfd: %s", lc_event_str(&ev));
			return 1;
		}
		p = mmap(NULL, INTO_SIZE, PROT_READ, MAP_SHARED, fd, 0);
		if (p == MAP_FAILED) {
			snprintf(msg, len, "mmap: %s", strerror(errno));
			return 1;
		}
		for (uint64_t off = 0; off < INTO_SIZE; off++) {
			uint8_t want = paid ? pattern_byte(SEED + 50, off) : 0;

			if (p[off] != want) {
				snprintf(msg, len, "%s memfd: byte %llu is 0x%02x, want 0x%02x",
					 paid ? "fallocated" : "refused, sparse",
					 (unsigned long long)off, p[off], want);
				return 1;
			}
		}
		munmap(p, INTO_SIZE);
		close(fd);
	}
	dmaload_close(dl);
	return 0;
}

static void into_holes(void)
{
	char msg[1024] = "";
	int r = child_run(child_into, NULL, msg, sizeof(msg), 60000);

	CHECKF(r == 0, "%s", msg[0] ? msg : "child failed");
}

static void in_flight(void)
{
	int to_child[2], to_parent[2], p[2], r = -1;
	char msg[1024] = "", c;
	pid_t pid;
	struct dmaload *dl = NULL;
	struct dmaload_event ev;
	struct dmaload_opts o;
	uint64_t id[3];
	int status;

	if (!CHECK_OK(pipe2(to_child, O_CLOEXEC)) || !CHECK_OK(pipe2(to_parent, O_CLOEXEC)))
		return;
	pid = fork();
	if (pid == 0) {
		p[0] = to_child[0];
		p[1] = to_parent[1];
		r = child_flight(p, msg, sizeof(msg));
		if (r)
			fprintf(stderr, "# nobody: %s\n", msg);
		_exit(r);
	}
	close(to_child[0]);
	close(to_parent[1]);
	if (!CHECKF(pid > 0, "fork: %s", strerror(errno)))
		goto out;
	/* nobody's loads are in flight, at its quotas: root's go on. */
	if (!CHECKF(read(to_parent[0], &c, 1) == 1, "nobody's part failed (see stderr)"))
		goto reap;
	dl = lc_connect(&d, "root-flight");
	if (!dl)
		goto reap;
	dmaload_opts_init(&o);
	for (int i = 0; i < 3; i++)
		CHECK_OK(dmaload_load_path(dl, root_flight[i], &o, &id[i]));
	for (int i = 0; i < 3; i++) {
		if (CHECK_OK(dmaload_wait(dl, id[i], &ev, NULL, NULL)) &&
		    CHECKF(ev.type == DMALOAD_EV_DONE, "root's load %d: %s", i,
			   lc_event_str(&ev)))
			close(ev.fd);
	}
	dmaload_close(dl);
reap:
	c = 'x';
	if (write(to_child[1], &c, 1) != 1)
		kill(pid, SIGKILL);
	waitpid(pid, &status, 0);
	CHECKF(WIFEXITED(status) && WEXITSTATUS(status) == 0, "nobody's part failed "
	       "(status 0x%x, see stderr)", status);
	/* Its closed loads left its tallies: it loads again. */
	sleep_ms(500);
	r = child_run(child_again, NULL, msg, sizeof(msg), 60000);
	CHECKF(r == 0, "after its connection closed: %s", msg[0] ? msg : "child failed");
out:
	close(to_child[1]);
	close(to_parent[0]);
}

int main(void)
{
	check_init(SUITE);
	signal(SIGPIPE, SIG_IGN);	/* a child that failed early closed its pipe */
	if (geteuid() != 0) {
		check_skip_case("quotas per uid", "needs root (the greedy client is nobody)");
		return 0;
	}
	if (!daemon_start_case(&d, SUITE, NULL, "[cache]\ncache_limit = 64M\n[quota]\n"
			       "max_loads_per_uid = 2\nmax_inflight_per_uid = 40M\n"))
		return 1;
	for (int i = 0; i < N_PIN; i++) {
		snprintf(pin_files[i], sizeof(pin_files[i]), "%s/pin%d.bin", d.dir, i);
		CHECK_OK(file_make(pin_files[i], PIN_SIZE, SEED + i, 0644));
	}
	for (int i = 0; i < 2; i++) {
		snprintf(root_files[i], sizeof(root_files[i]), "%s/root%d.bin", d.dir, i);
		snprintf(slow_big[i], sizeof(slow_big[i]), "%s/big%d.bin", d.dir, i);
		snprintf(slow_small[i], sizeof(slow_small[i]), "%s/small%d.bin", d.dir, i);
		CHECK_OK(file_make(root_files[i], PIN_SIZE, SEED + 10 + i, 0644));
		CHECK_OK(file_make(slow_big[i], 24 * MiB, SEED + 20 + i, 0644));
		CHECK_OK(file_make(slow_small[i], 8 * MiB, SEED + 30 + i, 0644));
	}
	for (int i = 0; i < 3; i++) {
		snprintf(root_flight[i], sizeof(root_flight[i]), "%s/rootf%d.bin", d.dir, i);
		CHECK_OK(file_make(root_flight[i], 24 * MiB, SEED + 40 + i, 0644));
	}
	snprintf(into_file, sizeof(into_file), "%s/into.bin", d.dir);
	CHECK_OK(file_make(into_file, INTO_SIZE, SEED + 50, 0644));
	check_end();

	CASE(pins(), "nobody pins 5 x 12 MiB in a 64 MiB cache: 2 pinned, the rest kept "
	     "unpinned (logged); root's loads are still cached");
	CASE(in_flight(), "nobody over max_inflight_per_uid and max_loads_per_uid gets "
	     "EDQUOT while root's three loads go through; once they closed, nobody loads "
	     "again");
	CASE(into_holes(), "nobody into its own sparse 48 MiB memfd: EDQUOT (the holes are "
	     "the daemon's to fill, over 40M in flight); fallocated: DONE, every byte");

	daemon_stop_case(&d, "daemon exits 0 on SIGTERM");
	return check_finish();
}
