/*
 * test-timeout.c: a daemon that stopped answering does not hang its clients (issue 12,
 * item 8).
 *
 * The daemon is SIGSTOPped: dmaload-ctl status (--timeout 1, and the default) ends
 * with "did not answer" and exit status 1, libdmaload's connect and STATUS return
 * -ETIMEDOUT within their timeout; after SIGCONT it serves again. The timeout is an
 * idle one: a load that reads for about 3 s (64 KiB chunks at 1 MiB/s) and reports
 * progress completes under a 1 s timeout, through dmaload-ctl and through libdmaload;
 * so does a load that waits that long for a reading slot, which sends no progress.
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

#define SUITE "timeout"
#define SLOW_SIZE (3 * MiB + 123)
#define SLOW_SEED 61

static struct test_daemon d;
static char slow_path[PATH_MAX], other_path[PATH_MAX];

/* ---- a stopped daemon ------------------------------------------------------------ */

static void stopped_daemon(void)
{
	const char *args1[] = { "--timeout", "1", "status", NULL };
	const char *args0[] = { "status", "--timeout=0.5", NULL };
	char out[4096], err[4096], msg[DL_ERRMSG_MAX + 1];
	struct dmaload *before = lc_connect(&d, "before-stop"), *dl = NULL;
	struct dmaload_status st;
	uint64_t t0;
	int r;

	if (!before)
		return;
	if (!CHECK(kill(d.pid, SIGSTOP) == 0))
		goto out;

	t0 = now_ms();
	r = ctl_run(d.sock, d.dir, args1, 20000, out, sizeof(out), err, sizeof(err));
	fprintf(stderr, "# dmaload-ctl --timeout 1 status on a stopped daemon: exit %d after "
		"%llu ms: %s", r, (unsigned long long)(now_ms() - t0), err);
	CHECKF(r == 1 && strstr(err, "did not answer for 1 s (--timeout)"),
	       "dmaload-ctl --timeout 1 status: exit %d, stderr '%s'", r, err);
	CHECKF(now_ms() - t0 < 5000, "dmaload-ctl --timeout 1 took %llu ms",
	       (unsigned long long)(now_ms() - t0));

	t0 = now_ms();
	r = ctl_run(d.sock, d.dir, args0, 20000, out, sizeof(out), err, sizeof(err));
	CHECKF(r == 1 && strstr(err, "did not answer for 0.5 s"),
	       "dmaload-ctl status --timeout=0.5: exit %d, stderr '%s'", r, err);

	/* libdmaload: a new connection, and a request on one made before */
	t0 = now_ms();
	r = dmaload_connect_ex(&dl, d.sock, "while-stopped", 500, msg, sizeof(msg));
	CHECKF(r == -ETIMEDOUT, "dmaload_connect_ex on a stopped daemon: %d (%s)", r,
	       strerror(-r));
	CHECKF(now_ms() - t0 < 3000, "dmaload_connect_ex(500 ms) took %llu ms",
	       (unsigned long long)(now_ms() - t0));
	if (r == 0)
		dmaload_close(dl);
	dmaload_set_timeout(before, 500);
	t0 = now_ms();
	r = dmaload_status(before, &st);
	CHECKF(r == -ETIMEDOUT, "dmaload_status on a stopped daemon: %d (%s)", r,
	       strerror(-r));
	CHECKF(now_ms() - t0 < 3000, "dmaload_status (500 ms) took %llu ms",
	       (unsigned long long)(now_ms() - t0));
	if (r == 0)
		dmaload_status_free(&st);
	kill(d.pid, SIGCONT);

	/* awake again, it serves */
	r = ctl_run(d.sock, d.dir, args1, 20000, out, sizeof(out), err, sizeof(err));
	CHECKF(r == 0, "dmaload-ctl status after SIGCONT: exit %d, stderr '%s'", r, err);
out:
	kill(d.pid, SIGCONT);
	dmaload_close(before);
	CHECK_SETTLED(&d, 5000);
}

/* ---- idle, not total ------------------------------------------------------------- */

static void slow_load_ctl(void)
{
	const char *args[] = { "--timeout", "1", "load", slow_path, "--rate", "1M", NULL };
	char out[4096], err[4096];
	uint64_t t0 = now_ms(), ms;
	int r;

	r = ctl_run(d.sock, d.dir, args, 60000, out, sizeof(out), err, sizeof(err));
	ms = now_ms() - t0;
	fprintf(stderr, "# dmaload-ctl --timeout 1 load at 1 MiB/s: exit %d in %llu ms\n", r,
		(unsigned long long)ms);
	CHECKF(r == 0, "dmaload-ctl --timeout 1 load --rate 1M: exit %d, stderr '%s'", r, err);
	CHECKF(ms >= 2000, "the load took only %llu ms: not longer than the timeout",
	       (unsigned long long)ms);
	CHECK_SETTLED(&d, 5000);
}

static void slow_load_lib(void)
{
	struct dmaload *dl = lc_connect(&d, "slow-lib");
	struct dmaload_opts o;
	uint64_t t0 = now_ms();

	if (!dl)
		return;
	dmaload_set_timeout(dl, 1000);
	dmaload_opts_init(&o);
	o.progress = true;
	o.rate_limit = MiB;
	lc_load_verify(dl, slow_path, -1, &o, SLOW_SIZE, SLOW_SEED, DL_METHOD_AUTO, NULL);
	CHECKF(now_ms() - t0 >= 2000, "the load took only %llu ms",
	       (unsigned long long)(now_ms() - t0));
	dmaload_close(dl);
	CHECK_SETTLED(&d, 5000);
}

/* max_loads = 1: a slow load holds the only slot while dmaload-ctl's load waits for
 * it, without progress, longer than --timeout. */
static void *slow_holder(void *arg)
{
	struct dmaload *dl = arg;
	struct dmaload_opts o;

	dmaload_opts_init(&o);
	o.rate_limit = MiB;
	lc_load_verify(dl, slow_path, -1, &o, SLOW_SIZE, SLOW_SEED, DL_METHOD_AUTO, NULL);
	return NULL;
}

static void queued_load_ctl(void)
{
	const char *args[] = { "--timeout", "1", "load", other_path, NULL };
	struct dmaload *dl = lc_connect(&d, "slot-holder");
	char out[4096], err[4096];
	uint64_t t0;
	pthread_t t;
	int r;

	if (!dl || !CHECK(pthread_create(&t, NULL, slow_holder, dl) == 0)) {
		dmaload_close(dl);
		return;
	}
	sleep_ms(300);
	t0 = now_ms();
	r = ctl_run(d.sock, d.dir, args, 60000, out, sizeof(out), err, sizeof(err));
	fprintf(stderr, "# dmaload-ctl --timeout 1 load waiting for a slot: exit %d in %llu "
		"ms\n", r, (unsigned long long)(now_ms() - t0));
	CHECKF(r == 0, "dmaload-ctl --timeout 1 load behind a slow one: exit %d, stderr '%s'",
	       r, err);
	pthread_join(t, NULL);
	dmaload_close(dl);
	CHECK_SETTLED(&d, 5000);
}

int main(void)
{
	char why[512];

	check_init(SUITE);
	check_begin("daemon starts");
	if (daemon_start(&d, SUITE, "chunk_size = 64K\nmax_loads = 1\n", why,
			 sizeof(why)) < 0) {
		check_fail(__FILE__, __LINE__, "%s", why);
		check_end();
		daemon_cleanup(&d);
		return 1;
	}
	snprintf(slow_path, sizeof(slow_path), "%s/slow", d.dir);
	snprintf(other_path, sizeof(other_path), "%s/other", d.dir);
	CHECK(file_make(slow_path, SLOW_SIZE, SLOW_SEED, 0644) == 0);
	CHECK(file_make(other_path, 100000, 62, 0644) == 0);
	if (!check_end()) {
		daemon_cleanup(&d);
		return 1;
	}
	daemon_baseline(&d);

	CASE(stopped_daemon(), "SIGSTOPped daemon: dmaload-ctl status and libdmaload give up "
	     "within their timeout; it serves after SIGCONT");
	CASE(slow_load_ctl(), "dmaload-ctl --timeout 1: a 3 s load with progress completes");
	CASE(slow_load_lib(), "libdmaload timeout 1 s: a 3 s load with progress completes");
	CASE(queued_load_ctl(), "dmaload-ctl --timeout 1: a load waiting 3 s for a slot "
	     "completes (the daemon still answers)");

	daemon_stop_case(&d, "daemon exits 0 on SIGTERM");
	return check_finish();
}
