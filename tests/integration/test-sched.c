/*
 * test-sched.c: scheduling, priorities, bandwidth limits and SIGHUP, against the real
 * daemon. Bytes and bounds: every load's buffer is checked byte for byte, and a
 * limited load must take at least (size - burst) / rate, which no slow machine can
 * break (only a daemon that gives more than the limit can). Nothing asserts that
 * something is fast.
 *
 * The daemon reads 256 KiB chunks; [limits] names clients by their HELLO name:
 * "limited" 32 MiB/s with a 1 MiB burst, "pair" 16 MiB/s, "bgslow" 4 MiB/s. Everyone
 * else is unlimited until the SIGHUP case sets default_rate.
 */
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../lib/check.h"
#include "../lib/harness.h"
#include "../lib/loads.h"

#define SUITE "sched"
#define IO "chunk_size = 256K\nqueue_depth = 16\nmax_loads = 4\n"
#define LIMITS									\
	"[limits]\n"								\
	"default_rate = 0\n"							\
	"name limited = 32M 1M\n"						\
	"name pair = 16M 1M\n"							\
	"name bgslow = 4M 1M\n"

static struct test_daemon d;

struct tfile {
	uint64_t size;
	uint32_t seed;
	char path[PATH_MAX];
};

static struct tfile f16, f8, f4, f1, f32;	/* 16, 8, 4, 1 and 32 MiB */
#define N_MIXED 64
static struct tfile mixed[N_MIXED];

static bool make_file(struct tfile *f, uint64_t size, uint32_t seed, const char *name)
{
	int r;

	f->size = size;
	f->seed = seed;
	snprintf(f->path, sizeof(f->path), "%s/%s", d.dir, name);
	r = file_make(f->path, size, seed, 0644);
	return CHECKF(r == 0, "file_make(%s): %s", f->path, strerror(-r));
}

static bool make_files(void)
{
	if (!make_file(&f16, 16 * MiB, 11, "f16") || !make_file(&f8, 8 * MiB, 12, "f8") ||
	    !make_file(&f4, 4 * MiB, 13, "f4") || !make_file(&f1, MiB, 14, "f1") ||
	    !make_file(&f32, 32 * MiB, 15, "f32"))
		return false;
	for (int i = 0; i < N_MIXED; i++) {
		char name[32];

		snprintf(name, sizeof(name), "mixed-%02d", i);
		/* 1 byte to ~6 MiB, page multiples and not */
		if (!make_file(&mixed[i], 1 + (uint64_t)i * i * 1531 + (i % 5) * 4096,
			       300 + i, name))
			return false;
	}
	return true;
}

/* Loads @f on @dl with @opts, checks its bytes; returns the seconds it took. */
static double timed_load(struct dmaload *dl, const struct tfile *f,
			 const struct dmaload_opts *opts)
{
	uint64_t t0 = now_ms();

	lc_load_verify(dl, f->path, -1, opts, f->size, f->seed, DL_METHOD_AUTO, NULL);
	return (double)(now_ms() - t0) / 1e3;
}

/* Lower bound of a limited load: (size - burst) / rate seconds, less 20 ms for the
 * coarseness of now_ms() and timers. */
#define CHECK_AT_LEAST(secs, size, burst, rate) ({				\
	double _min = ((double)(size) - (double)(burst)) / (double)(rate) - 0.02;\
	CHECKF((secs) >= _min, "took %.3f s, less than %.3f s: more than %.0f "	\
	       "bytes/s", (secs), _min, (double)(rate));			\
})

/* ---- limits -------------------------------------------------------------------- */

static void limited_client(void)
{
	struct dmaload *dl = lc_connect(&d, "limited");
	double s;

	if (!dl)
		return;
	s = timed_load(dl, &f16, NULL);
	CHECK_AT_LEAST(s, f16.size, MiB, 32 * MiB);
	dmaload_close(dl);
	CHECK_SETTLED(&d, 5000);
}

struct pair_arg {
	double secs;
};

static void *pair_thread(void *arg)
{
	struct pair_arg *pa = arg;
	struct dmaload *dl = lc_connect(&d, "pair");

	if (!dl)
		return NULL;
	pa->secs = timed_load(dl, &f8, NULL);
	dmaload_close(dl);
	return NULL;
}

static void two_equal_clients(void)
{
	struct pair_arg pa[2] = { { -1 }, { -1 } };
	pthread_t t[2];

	for (int i = 0; i < 2; i++)
		if (pthread_create(&t[i], NULL, pair_thread, &pa[i]) != 0)
			abort();
	for (int i = 0; i < 2; i++)
		pthread_join(t[i], NULL);
	for (int i = 0; i < 2; i++)
		CHECK_AT_LEAST(pa[i].secs, f8.size, MiB, 16 * MiB);
	CHECK_SETTLED(&d, 5000);
}

static void load_asks_more(void)
{
	struct dmaload *dl = lc_connect(&d, "limited");
	struct dmaload_opts o;
	double s;

	if (!dl)
		return;
	dmaload_opts_init(&o);
	o.rate_limit = 1ull << 30;	/* 1 GiB/s: more than the client's 32 MiB/s */
	s = timed_load(dl, &f16, &o);
	CHECK_AT_LEAST(s, f16.size, MiB, 32 * MiB);
	dmaload_close(dl);
	CHECK_SETTLED(&d, 5000);
}

static void load_asks_less(void)
{
	struct dmaload *dl = lc_connect(&d, "limited");
	struct dmaload *free_dl = lc_connect(&d, "unlimited");
	struct dmaload_opts o;
	double s;

	if (!dl || !free_dl)
		goto out;
	dmaload_opts_init(&o);
	/* below the client's 32 MiB/s; the load's burst is the client's, 1 MiB */
	o.rate_limit = 8 * MiB;
	s = timed_load(dl, &f4, &o);
	CHECK_AT_LEAST(s, f4.size, MiB, 8 * MiB);
	/* an unlimited client: the burst is one chunk, 256 KiB */
	o.rate_limit = 16 * MiB;
	s = timed_load(free_dl, &f8, &o);
	CHECK_AT_LEAST(s, f8.size, 256 * 1024, 16 * MiB);
out:
	if (dl)
		dmaload_close(dl);
	if (free_dl)
		dmaload_close(free_dl);
	CHECK_SETTLED(&d, 5000);
}

/* Runs dmaload-ctl --socket SOCK @args... (NULL-terminated), output to d.dir/ctl.out.
 * Returns its exit status (-1 if it did not exit) and the seconds it took. */
static int ctl(double *secs, const char *const *args)
{
	const char *argv[32];
	char out[PATH_MAX];
	uint64_t t0 = now_ms();
	int n = 0, status;
	pid_t pid;

	argv[n++] = ctl_binary();
	argv[n++] = "--socket";
	argv[n++] = d.sock;
	while (*args && n < 31)
		argv[n++] = *args++;
	argv[n] = NULL;
	snprintf(out, sizeof(out), "%s/ctl.out", d.dir);
	fflush(stdout);
	pid = fork();
	if (pid == 0) {
		int o = open(out, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);

		if (o < 0)
			_exit(126);
		dup2(o, 1);
		dup2(o, 2);
		alarm(0);
		execv(argv[0], (char **)argv);
		_exit(127);
	}
	if (pid < 0 || waitpid(pid, &status, 0) != pid)
		return -1;
	*secs = (double)(now_ms() - t0) / 1e3;
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* dmaload-ctl load --rate and --priority: the rate holds (lower bound), the bytes are
 * the file's (cmp against the buffer as fd 3), bad values are usage errors. */
static void ctl_options(void)
{
	const char *ok[] = { "--name", "unlimited", "load", f4.path, "--rate", "8M",
			     "--priority", "background", "--", "cmp", "-s", f4.path,
			     "/dev/fd/3", NULL };
	const char *bad_prio[] = { "load", f4.path, "--priority", "urgent", NULL };
	const char *bad_rate[] = { "load", f4.path, "--rate", "0", NULL };
	double s = 0;
	int r;

	r = ctl(&s, ok);
	CHECKF(r == 0, "dmaload-ctl load --rate 8M --priority background -- cmp: exit %d", r);
	/* an unlimited client: the load's burst is one chunk */
	CHECK_AT_LEAST(s, f4.size, 256 * 1024, 8 * MiB);
	CHECK_INT(ctl(&s, bad_prio), ==, 2);
	CHECK_INT(ctl(&s, bad_rate), ==, 2);
	CHECK_SETTLED(&d, 5000);
}

/* ---- priorities ---------------------------------------------------------------- */

/* Background loads next to foreground ones: all finish, all bytes right. */
static void background_finishes(void)
{
	struct dmaload *bg = lc_connect(&d, "background");
	struct dmaload *fg = lc_connect(&d, "foreground");
	struct dmaload_opts ob;
	uint64_t ids[6];
	int n = 0;

	if (!bg || !fg)
		goto out;
	dmaload_opts_init(&ob);
	ob.priority = DL_PRIO_BACKGROUND;
	for (n = 0; n < 6; n++)
		if (!CHECK_OK(lc_start(bg, f32.path, -1, &ob, &ids[n])))
			break;
	/* foreground loads meanwhile, on the other connection */
	for (int i = 0; i < 6; i++)
		lc_load_verify(fg, f8.path, -1, NULL, f8.size, f8.seed, DL_METHOD_AUTO, NULL);
	for (int i = 0; i < n; i++) {
		struct dmaload_event ev;
		int r = dmaload_wait(bg, ids[i], &ev, NULL, NULL);

		if (CHECKF(r == 0, "dmaload_wait(background %d): %s", i, strerror(-r)))
			lc_check_done(&ev, f32.size, f32.seed, 0, DL_METHOD_AUTO);
	}
out:
	if (bg)
		dmaload_close(bg);
	if (fg)
		dmaload_close(fg);
	CHECK_SETTLED(&d, 5000);
}

/*
 * max_loads (4) slots held by background loads of a slow client (4 MiB/s: each of
 * its 16 MiB loads takes at least 3.75 s): a foreground load gets a slot of its own
 * class and finishes while they are all still running (an order, not a time).
 */
static void foreground_not_behind_background(void)
{
	struct dmaload *bg = lc_connect(&d, "bgslow");
	struct dmaload *fg = lc_connect(&d, "foreground");
	struct dmaload_opts ob;
	uint64_t ids[5];
	int n = 0;

	if (!bg || !fg)
		goto out;
	dmaload_opts_init(&ob);
	ob.priority = DL_PRIO_BACKGROUND;
	for (n = 0; n < 5; n++)
		if (!CHECK_OK(lc_start(bg, f16.path, -1, &ob, &ids[n])))
			break;
	sleep_ms(100);		/* let them take the background slots */
	lc_load_verify(fg, f1.path, -1, NULL, f1.size, f1.seed, DL_METHOD_AUTO, NULL);
	/* no background load may have finished before the foreground one */
	for (;;) {
		struct dmaload_event ev;

		if (dmaload_next_event(bg, &ev, 0) != 1)
			break;
		CHECKF(ev.type != DMALOAD_EV_DONE && ev.type != DMALOAD_EV_ERROR,
		       "background load %llu ended (%s) before the foreground one",
		       (unsigned long long)ev.id, lc_event_str(&ev));
		if (ev.type == DMALOAD_EV_DONE && ev.fd >= 0)
			close(ev.fd);
	}
	/* closing cancels them */
out:
	if (bg)
		dmaload_close(bg);
	if (fg)
		dmaload_close(fg);
	CHECK_SETTLED(&d, 5000);
}

/* ---- many clients -------------------------------------------------------------- */

static pthread_barrier_t barrier;

static void *mixed_thread(void *arg)
{
	int i = (int)(intptr_t)arg;
	struct dmaload_opts o;
	struct dmaload *dl;
	char name[32];

	snprintf(name, sizeof(name), "mixed-%02d", i);
	dl = lc_connect(&d, name);
	pthread_barrier_wait(&barrier);
	if (!dl)
		return NULL;
	dmaload_opts_init(&o);
	o.priority = i % 3 == 0 ? DL_PRIO_BACKGROUND : DL_PRIO_FOREGROUND;
	if (i % 8 == 1)
		o.rate_limit = 64 * MiB;
	lc_load_verify(dl, mixed[i].path, -1, &o, mixed[i].size, mixed[i].seed,
		       DL_METHOD_AUTO, NULL);
	dmaload_close(dl);
	return NULL;
}

static void many_clients(void)
{
	pthread_t t[N_MIXED];

	pthread_barrier_init(&barrier, NULL, N_MIXED);
	for (int i = 0; i < N_MIXED; i++)
		if (pthread_create(&t[i], NULL, mixed_thread, (void *)(intptr_t)i) != 0)
			abort();	/* the barrier would never open */
	for (int i = 0; i < N_MIXED; i++)
		pthread_join(t[i], NULL);
	pthread_barrier_destroy(&barrier);
	CHECK_SETTLED(&d, 5000);
}

/* ---- SIGHUP -------------------------------------------------------------------- */

/* The 1-based number of the first line of @path containing @needle, or 0. */
static int file_line_of(const char *path, const char *needle)
{
	char buf[512];
	int n = 0, found = 0;
	FILE *f = fopen(path, "re");

	if (!f)
		return 0;
	while (!found && fgets(buf, sizeof(buf), f))
		if (n++, strstr(buf, needle))
			found = n;
	fclose(f);
	return found;
}

static void hup_bad_config(void)
{
	struct dmaload *dl;
	char want[PATH_MAX + 16];
	long skip = daemon_log_size(&d);
	int line;

	if (!CHECK_OK(daemon_write_config_more(&d, IO, "[limits]\nuid nosuchuser-x = 1M\n")))
		return;
	/* the line the harness's config put the bad key on */
	line = file_line_of(d.conf, "nosuchuser-x");
	if (!CHECKF(line > 0, "the bad key is not in %s", d.conf))
		return;
	CHECK_INT(kill(d.pid, SIGHUP), ==, 0);
	snprintf(want, sizeof(want), "%s:%d:", d.conf, line);
	CHECKF(daemon_log_wait(&d, want, skip, 5000), "no '%s' in the log", want);
	CHECK(daemon_log_wait(&d, "keeping the running config", skip, 1000));
	CHECK(daemon_alive(&d));
	/* still serving, with the old limits */
	dl = lc_connect(&d, "limited");
	if (dl) {
		double s = timed_load(dl, &f8, NULL);

		CHECK_AT_LEAST(s, f8.size, MiB, 32 * MiB);
		dmaload_close(dl);
	}
	daemon_write_config_more(&d, IO, LIMITS);
	CHECK_SETTLED(&d, 5000);
}

static void hup_new_default_rate(void)
{
	struct dmaload *dl = lc_connect(&d, "someone");
	long skip = daemon_log_size(&d);
	double s;

	if (!dl)
		return;
	/* unlimited at first */
	lc_load_verify(dl, f1.path, -1, NULL, f1.size, f1.seed, DL_METHOD_AUTO, NULL);
	if (!CHECK_OK(daemon_write_config_more(&d, IO, LIMITS
					       "default_rate = 16M\ndefault_burst = 1M\n")))
		goto out;
	CHECK_INT(kill(d.pid, SIGHUP), ==, 0);
	CHECK(daemon_log_wait(&d, "now 16777216 bytes/s", skip, 5000) ||
	      daemon_log_wait(&d, "limit now 16777216 bytes/s", skip, 1));
	/* the same connection's next load gets the new default */
	s = timed_load(dl, &f8, NULL);
	CHECK_AT_LEAST(s, f8.size, MiB, 16 * MiB);
out:
	dmaload_close(dl);
	/* back to the test's limits */
	skip = daemon_log_size(&d);
	daemon_write_config_more(&d, IO, LIMITS);
	kill(d.pid, SIGHUP);
	CHECK(daemon_log_wait(&d, "reload: [limits]", skip, 5000));
	CHECK_SETTLED(&d, 5000);
}

/* With one reading slot taken by a slow load (f32 at 4 MiB/s: 8 s), a second load
 * waits; SIGHUP raising max_loads must start it at once, not when the slow one ends.
 * The 5 s bound is a liveness check with a wide margin, not a speed test. */
static void hup_more_slots(void)
{
	struct dmaload *slow = lc_connect(&d, "bgslow"), *quick = lc_connect(&d, "quick");
	struct dmaload_opts o;
	struct dmaload_event ev;
	struct dmaload_status st = { 0 };
	uint64_t ids, idq, idc;
	long skip = daemon_log_size(&d);
	bool done = false;

	if (!slow || !quick)
		goto out;
	if (!CHECK_OK(daemon_write_config_more(&d, "chunk_size = 256K\nqueue_depth = 16\n"
					       "max_loads = 1\n", LIMITS)))
		goto out;
	CHECK_INT(kill(d.pid, SIGHUP), ==, 0);
	if (!CHECK(daemon_log_wait(&d, "max_loads: 4 -> 1", skip, 5000)))
		goto out;
	if (!CHECK_OK(dmaload_load_path(slow, f32.path, NULL, &ids)))
		goto out;
	for (int i = 0; i < 100 && (dmaload_status(quick, &st) == 0) &&
	     st.loads_active == 0; i++) {
		dmaload_status_free(&st);
		sleep_ms(20);
	}
	dmaload_status_free(&st);
	dmaload_opts_init(&o);
	if (!CHECK_OK(dmaload_load_path(quick, f1.path, &o, &idq)))
		goto out;
	sleep_ms(200);
	if (CHECK_OK(dmaload_status(quick, &st)))
		CHECKF(st.loads_active == 1 && st.loads_queued == 1, "before SIGHUP: %u "
		       "active, %u queued; expected 1 and 1", st.loads_active,
		       st.loads_queued);
	dmaload_status_free(&st);
	skip = daemon_log_size(&d);
	if (!CHECK_OK(daemon_write_config_more(&d, IO, LIMITS)))
		goto out;
	CHECK_INT(kill(d.pid, SIGHUP), ==, 0);
	for (uint64_t end = now_ms() + 5000; !done && now_ms() < end;) {
		if (dmaload_next_event(quick, &ev, 100) != 1)
			continue;
		if (ev.type == DMALOAD_EV_DONE || ev.type == DMALOAD_EV_ERROR) {
			done = true;
			lc_check_done(&ev, f1.size, f1.seed, 0, DL_METHOD_AUTO);
		}
	}
	CHECKF(done, "the waiting load did not start within 5 s of SIGHUP raising "
	       "max_loads from 1 to 4 (the slow load holds its slot for 8 s)");
	if (CHECK_OK(dmaload_cancel(slow, ids, &idc)))
		dmaload_wait(slow, ids, &ev, NULL, NULL);
	if (ev.type == DMALOAD_EV_DONE && ev.fd >= 0)
		close(ev.fd);
	dmaload_wait(slow, idc, &ev, NULL, NULL);
out:
	dmaload_close(slow);
	dmaload_close(quick);
	CHECK_SETTLED(&d, 5000);
}

int main(void)
{
	check_init(SUITE);
	if (!daemon_start_case(&d, SUITE, IO, LIMITS))
		return 1;
	make_files();
	if (!check_end()) {
		daemon_cleanup(&d);
		return 1;
	}
	daemon_baseline(&d);

	CASE(limited_client(), "a 32 MiB/s client takes >= (size - burst) / rate, right bytes");
	CASE(two_equal_clients(), "two 16 MiB/s clients at once: both limited, right bytes");
	CASE(load_asks_more(), "a LOAD asking more than its client's limit gets the limit");
	CASE(load_asks_less(), "a LOAD asking less than the limit gets its lower rate");
	CASE(ctl_options(), "dmaload-ctl load --rate 8M --priority background: limited, "
	     "right bytes; bad values exit 2");
	CASE(background_finishes(), "6 background loads next to foreground ones finish, "
	     "right bytes");
	CASE(foreground_not_behind_background(), "a foreground load does not wait for "
	     "background loads holding every slot");
	CASE(many_clients(), "%d clients, mixed sizes, classes and rates: right bytes",
	     N_MIXED);
	CASE(hup_bad_config(), "SIGHUP with a bad config: FILE:LINE logged, old limits kept");
	CASE(hup_new_default_rate(), "SIGHUP with a new default_rate: the next load of an "
	     "existing connection is limited");
	CASE(hup_more_slots(), "SIGHUP raising max_loads starts the loads that wait for a "
	     "slot at once");
	CASE(CHECK_SETTLED_START(&d, 5000), "daemon fds and memfds back to the first "
	     "baseline");

	daemon_stop_case(&d, "daemon exits 0 on SIGTERM");
	return check_finish();
}
