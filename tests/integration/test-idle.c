/*
 * test-idle.c: [daemon] idle_timeout (issue 12, item 6). A daemon with idle_timeout =
 * 1: a connection that sends nothing hears an ERROR (ETIMEDOUT, id 0, naming
 * idle_timeout) and is closed; one that keeps asking (STATUS every 300 ms) stays; one
 * whose load runs past the timeout (rate-limited to about 3 s) is not idle: it gets its
 * DONE with every byte and only then its quiet spell starts; so do replies it has not
 * read (its socket full, the rest queued in the daemon). The daemon runs with
 * max_clients = 2, so that one connection makes connections short (half of
 * max_clients): only then is an idle one closed. SIGHUP to max_clients = 64: a quiet
 * connection stays past idle_timeout while there is room; then SIGHUP to
 * idle_timeout = 0: a new connection stays open.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "../lib/check.h"
#include "../lib/harness.h"
#include "../lib/loads.h"

#define SUITE "idle"
#define FILE_SIZE (4 * MiB + 123)
#define SEED 9
#define N_UNREAD 3000		/* STATUS replies: more than a socket holds */

static struct test_daemon d;
static char path[PATH_MAX];

/* Receives on @s until the idle ERROR and then EOF, within @ms. Returns when it came
 * (ms after @t0) or 0 if not as expected. */
static uint64_t wait_idle_close(int s, uint64_t t0, int ms)
{
	struct raw_msg *rm = raw_msg_new();
	uint64_t at = 0;
	int r;

	if (!rm)
		return 0;
	for (;;) {
		r = raw_recv(s, rm, ms);
		if (r != 1)
			break;
		if (rm->m.hdr.type != DL_ERROR)
			continue;	/* STATUS replies */
		CHECKF(rm->m.hdr.id == 0 && rm->m.u.error.err == ETIMEDOUT &&
		       strstr(raw_error_text(rm), "idle_timeout"),
		       "ERROR id %llu err %d '%s', want id 0 ETIMEDOUT naming idle_timeout",
		       (unsigned long long)rm->m.hdr.id, rm->m.u.error.err,
		       raw_error_text(rm));
		at = now_ms() - t0;
		r = raw_recv(s, rm, 2000);
		CHECKF(r == 0, "no end of stream after the idle ERROR: %d", r);
		break;
	}
	CHECKF(at, "no idle ERROR within %d ms: recv %d", ms, r);
	raw_msg_free(rm);
	return at;
}

static void idle_closed(void)
{
	int s = raw_connect(d.sock);
	uint64_t t0 = now_ms(), at;

	if (!CHECKF(s >= 0, "connect: %s", strerror(-s)))
		return;
	at = wait_idle_close(s, t0, 5000);
	CHECKF(!at || at >= 900, "closed after %llu ms, before idle_timeout (1 s)",
	       (unsigned long long)at);
	close(s);
}

static void requests_keep_it(void)
{
	struct raw_msg *rm = raw_msg_new();
	int s = raw_connect(d.sock);
	uint64_t t0 = now_ms();

	if (!CHECKF(s >= 0 && rm, "connect: %s", strerror(-s)))
		goto out;
	for (int i = 0; i < 10; i++) {
		if (!CHECK_INT(raw_send(s, DL_STATUS, (uint64_t)i + 1, NULL, 0, NULL, 0, NULL,
					0), ==, 0))
			goto out;
		if (!CHECKF(raw_wait_final(s, (uint64_t)i + 1, rm, 2000) == 1 &&
			    rm->m.hdr.type != DL_ERROR, "STATUS %d after %llu ms: %s", i + 1,
			    (unsigned long long)(now_ms() - t0),
			    rm->m.hdr.type == DL_ERROR ? raw_error_text(rm) : "no reply"))
			goto out;
		raw_msg_clear(rm);
		sleep_ms(300);
	}
	/* then quiet: closed about a second after the last request */
	wait_idle_close(s, now_ms(), 5000);
out:
	if (s >= 0)
		close(s);
	raw_msg_free(rm);
}

static void load_keeps_it(void)
{
	struct dmaload *dl = lc_connect(&d, "slow");
	struct dmaload_opts o;
	struct dmaload_event ev;
	uint64_t t0 = now_ms();

	ev.fd = -1;
	if (!dl)
		return;
	dmaload_opts_init(&o);
	o.rate_limit = MiB;		/* about 3 s: past the 1 s timeout */
	if (lc_load_verify(dl, path, -1, &o, FILE_SIZE, SEED, DL_METHOD_AUTO, &ev))
		CHECKF(now_ms() - t0 >= 1500, "the load took only %llu ms: not past the "
		       "timeout, the case proves nothing", (unsigned long long)(now_ms() - t0));
	if (ev.fd >= 0)
		close(ev.fd);
	/* quiet now: the daemon closes it; the next request finds it gone */
	sleep_ms(2500);
	CHECKF(dmaload_load_path_sync(dl, path, NULL, &ev) < 0,
	       "the connection still served a load 2.5 s after going quiet");
	if (ev.fd >= 0 && ev.type == DMALOAD_EV_DONE)
		close(ev.fd);
	dmaload_close(dl);
}

/* Replies the client has not read yet (its socket full, the rest queued in the
 * daemon) keep it open past the timeout; once it reads them all, its quiet spell
 * starts. */
static void unread_replies_keep_it(void)
{
	struct raw_msg *rm = raw_msg_new();
	int s = raw_connect(d.sock), sent = 0, got = 0, r;

	if (!CHECKF(s >= 0 && rm, "connect: %s", strerror(-s)))
		goto out;
	for (int i = 0; i < N_UNREAD; i++, sent++)
		if (raw_send(s, DL_STATUS, (uint64_t)i + 1, NULL, 0, NULL, 0, NULL, 0) < 0)
			break;
	sleep_ms(2500);		/* past the timeout, every reply unread */
	while (got < sent && (r = raw_recv(s, rm, 2000)) == 1) {
		if (!CHECKF(rm->m.hdr.type != DL_ERROR, "reply %d of %d: ERROR '%s' while "
			    "replies were unread", got + 1, sent, raw_error_text(rm)))
			goto out;
		got++;
	}
	CHECKF(got == sent && sent > 1000, "%d replies of %d sent", got, sent);
	wait_idle_close(s, now_ms(), 5000);
out:
	if (s >= 0)
		close(s);
	raw_msg_free(rm);
}

/* With room to spare (1 connection of 64), a quiet connection is not closed: it
 * hears nothing for 2.5 s, 2.5 times idle_timeout, and still answers a STATUS. */
static void room_keeps_it(void)
{
	struct raw_msg *rm = raw_msg_new();
	int s = -1, r;

	if (!rm || !daemon_reload(&d, "chunk_size = 1M\n", "[daemon]\nidle_timeout = 1\nmax_clients = 64\n",
				   "max_clients"))
		goto out;
	s = raw_connect(d.sock);
	if (!CHECKF(s >= 0, "connect: %s", strerror(-s)))
		goto out;
	r = raw_recv(s, rm, 2500);
	if (!CHECKF(r == -ETIMEDOUT, "1 of 64 connections, quiet: got %d (%s)", r,
		    r == 1 ? raw_error_text(rm) : "end of stream"))
		goto out;
	if (!CHECK_INT(raw_send(s, DL_STATUS, 77, NULL, 0, NULL, 0, NULL, 0), ==, 0))
		goto out;
	r = raw_recv(s, rm, 2000);
	CHECKF(r == 1 && rm->m.hdr.type == DL_STATUS_REPLY && rm->m.hdr.id == 77,
	       "after the quiet spell STATUS got %d type %d", r, r == 1 ? rm->m.hdr.type : 0);
out:
	if (s >= 0)
		close(s);
	raw_msg_free(rm);
}

static void reload_off(void)
{
	struct raw_msg *rm = raw_msg_new();
	int s = -1, r;

	if (!daemon_reload(&d, "chunk_size = 1M\n", "[daemon]\nidle_timeout = 0\nmax_clients = 2\n",
			   "idle_timeout"))
		goto out;
	s = raw_connect(d.sock);
	if (!CHECKF(s >= 0, "connect: %s", strerror(-s)))
		goto out;
	r = raw_recv(s, rm, 2500);
	CHECKF(r == -ETIMEDOUT, "idle_timeout = 0: the quiet connection got %d (%s)", r,
	       r == 1 ? raw_error_text(rm) : "end of stream");
out:
	if (s >= 0)
		close(s);
	raw_msg_free(rm);
}

int main(void)
{
	char why[512];

	check_init(SUITE);
	check_begin("daemon starts");
	/* chunk_size 1M: a limited load's burst is 1 MiB, so the slow load takes 3 s */
	if (daemon_start_more(&d, SUITE, "chunk_size = 1M\n", "[daemon]\nidle_timeout = 1\nmax_clients = 2\n",
			      why, sizeof(why)) < 0) {
		check_fail(__FILE__, __LINE__, "%s", why);
		check_end();
		daemon_cleanup(&d);
		return 1;
	}
	snprintf(path, sizeof(path), "%s/file", d.dir);
	CHECK(file_make(path, FILE_SIZE, SEED, 0644) == 0);
	if (!check_end()) {
		daemon_cleanup(&d);
		return 1;
	}
	daemon_baseline(&d);

	CASE(idle_closed(), "a quiet connection hears ETIMEDOUT (id 0, idle_timeout) after "
	     "1 s and is closed");
	CASE(requests_keep_it(), "STATUS every 300 ms for 3 s keeps it open; quiet, it "
	     "closes");
	CASE(load_keeps_it(), "a 3 s load is not idle: DONE, every byte; closed once quiet");
	CASE(unread_replies_keep_it(), "%d STATUS replies left unread for 2.5 s: not idle; "
	     "read, it closes 1 s later", N_UNREAD);
	CASE(room_keeps_it(), "SIGHUP to max_clients = 64: 1 quiet connection of 64 stays "
	     "past idle_timeout and answers STATUS");
	CASE(reload_off(), "SIGHUP to idle_timeout = 0: a quiet connection stays");

	daemon_stop_case(&d, "daemon exits 0 on SIGTERM");
	return check_finish();
}
