/*
 * test-clients.c: many clients, many requests, and clients that go away.
 *
 * 32 threads with a connection each load 32 different files at once (the daemon is
 * configured to read only 4 at a time, in 1 MiB chunks, so loads wait in line and
 * their chunks interleave); 16 loads in flight on one connection, collected in
 * reverse order; cancels (early, after ACCEPTED, of unknown and finished loads); a
 * client SIGKILLed in the middle of a 256 MiB load, a client that closes with loads
 * in flight, and connection churn. After each, the daemon's fds and memfds must be
 * back to the baseline and it must still serve loads.
 */
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../lib/check.h"
#include "../lib/harness.h"
#include "../lib/loads.h"

#define SUITE "clients"
#define N_CLIENTS 32
#define BIG_SIZE (256 * MiB)

static struct test_daemon d;

struct tfile {
	uint64_t size;
	uint32_t seed;
	char path[PATH_MAX];
};

static struct tfile small[N_CLIENTS];
static struct tfile big;

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
	for (int i = 0; i < N_CLIENTS; i++) {
		char name[32];

		snprintf(name, sizeof(name), "small-%02d", i);
		/* 1 MiB to ~4 MiB, all different, most not page multiples */
		if (!make_file(&small[i], MiB + (uint64_t)i * 98765 + (uint64_t)i * 3, 200 + i,
			       name))
			return false;
	}
	return make_file(&big, BIG_SIZE, 77, "big");
}

/* ---- 32 clients at once ---------------------------------------------------------- */

static pthread_barrier_t barrier;

static void *client_thread(void *arg)
{
	int i = (int)(intptr_t)arg;
	const struct tfile *f = &small[i];
	struct dmaload_opts o;
	struct dmaload *dl;
	char name[32];
	int fd = -1;

	snprintf(name, sizeof(name), "client-%02d", i);
	dl = lc_connect(&d, name);
	pthread_barrier_wait(&barrier);
	if (!dl)
		return NULL;
	dmaload_opts_init(&o);
	o.method = (uint8_t)(i % 3);	/* auto, direct, buffered */
	if (i % 2) {
		fd = open(f->path, O_RDONLY | O_CLOEXEC);
		CHECKF(fd >= 0, "open: %s", strerror(errno));
	}
	if (i % 2 == 0 || fd >= 0)
		lc_load_verify(dl, i % 2 ? NULL : f->path, fd, &o, f->size, f->seed,
			       DL_METHOD_AUTO, NULL);
	if (fd >= 0)
		close(fd);
	dmaload_close(dl);
	return NULL;
}

static void many_clients(void)
{
	pthread_t t[N_CLIENTS];

	pthread_barrier_init(&barrier, NULL, N_CLIENTS);
	for (int i = 0; i < N_CLIENTS; i++)
		if (pthread_create(&t[i], NULL, client_thread, (void *)(intptr_t)i) != 0) {
			CHECKF(false, "pthread_create failed");
			abort();	/* the barrier would never open */
		}
	for (int i = 0; i < N_CLIENTS; i++)
		pthread_join(t[i], NULL);
	pthread_barrier_destroy(&barrier);
	CHECK_SETTLED(&d, 5000);
}

/* ---- many loads on one connection ------------------------------------------------ */

static void in_flight(void)
{
	struct dmaload *dl = lc_connect(&d, "in-flight");
	uint64_t ids[16], off[16], len[16];
	int fds[16];

	if (!dl)
		return;
	for (int i = 0; i < 16; i++) {
		const struct tfile *f = &small[i];
		struct dmaload_opts o;

		dmaload_opts_init(&o);
		/* different ranges: offsets 0, 1, 1024, ...; some to EOF */
		o.offset = off[i] = (uint64_t)i * (i % 2 ? 1 : 1024);
		o.length = i % 4 == 3 ? DMALOAD_TO_EOF : f->size / 2 + (uint64_t)i;
		len[i] = o.length == DMALOAD_TO_EOF ? f->size - o.offset : o.length;
		fds[i] = -1;
		if (i % 3 == 0)
			fds[i] = open(f->path, O_RDONLY | O_CLOEXEC);
		if (!CHECK_OK(lc_start(dl, i % 3 == 0 ? NULL : f->path, fds[i], &o, &ids[i])))
			goto out;
	}
	/* reverse order: most events arrive for loads not waited for yet */
	for (int i = 15; i >= 0; i--) {
		struct dmaload_event ev;
		int r = dmaload_wait(dl, ids[i], &ev, NULL, NULL);

		if (!CHECKF(r == 0, "dmaload_wait(load %d): %s", i, strerror(-r)))
			break;
		CHECK_U64(ev.id, ==, ids[i]);
		lc_check_done(&ev, len[i], small[i].seed, off[i], DL_METHOD_AUTO);
	}
out:
	for (int i = 0; i < 16; i++)
		if (fds[i] >= 0)
			close(fds[i]);
	dmaload_close(dl);
	CHECK_SETTLED(&d, 5000);
}

/* ---- cancel ---------------------------------------------------------------------- */

/* Waits for both replies: the cancel's (OK or ERROR ENOENT) and the load's (ERROR
 * ECANCELED, or DONE with the right bytes if it won the race). */
static void cancel_outcome(struct dmaload *dl, uint64_t load_id, uint64_t cancel_id)
{
	struct dmaload_event ev;
	int r;

	r = dmaload_wait(dl, load_id, &ev, NULL, NULL);
	if (CHECKF(r == 0, "dmaload_wait(load): %s", strerror(-r))) {
		if (ev.type == DMALOAD_EV_DONE)
			lc_check_done(&ev, big.size, big.seed, 0, DL_METHOD_AUTO);
		else
			CHECKF(ev.type == DMALOAD_EV_ERROR && ev.err == ECANCELED,
			       "cancelled load ended with %s, expected ERROR ECANCELED or DONE",
			       lc_event_str(&ev));
	}
	r = dmaload_wait(dl, cancel_id, &ev, NULL, NULL);
	if (CHECKF(r == 0, "dmaload_wait(cancel): %s", strerror(-r)))
		CHECKF(ev.type == DMALOAD_EV_OK ||
		       (ev.type == DMALOAD_EV_ERROR && ev.err == ENOENT),
		       "cancel got %s, expected OK or ERROR ENOENT", lc_event_str(&ev));
}

static void cancel_early(void)
{
	struct dmaload *dl = lc_connect(&d, "cancel");
	uint64_t load_id, cancel_id;

	if (!dl)
		return;
	if (CHECK_OK(dmaload_load_path(dl, big.path, NULL, &load_id)) &&
	    CHECK_OK(dmaload_cancel(dl, load_id, &cancel_id)))
		cancel_outcome(dl, load_id, cancel_id);
	/* the connection is still good */
	lc_load_verify(dl, small[0].path, -1, NULL, small[0].size, small[0].seed,
		       DL_METHOD_AUTO, NULL);
	dmaload_close(dl);
	CHECK_SETTLED(&d, 5000);
}

static void cancel_after_accepted(void)
{
	struct dmaload *dl = lc_connect(&d, "cancel2");
	struct dmaload_event ev;
	uint64_t load_id, cancel_id;
	int r;

	if (!dl)
		return;
	if (!CHECK_OK(dmaload_load_path(dl, big.path, NULL, &load_id)))
		goto out;
	r = dmaload_next_event(dl, &ev, 20000);
	if (!CHECKF(r == 1 && ev.type == DMALOAD_EV_ACCEPTED, "first event: r=%d %s", r,
		    r == 1 ? lc_event_str(&ev) : ""))
		goto out;
	if (CHECK_OK(dmaload_cancel(dl, load_id, &cancel_id)))
		cancel_outcome(dl, load_id, cancel_id);
out:
	dmaload_close(dl);
	CHECK_SETTLED(&d, 5000);
}

static void cancel_unknown(void)
{
	struct dmaload *dl = lc_connect(&d, "cancel3");
	struct dmaload_event ev;
	uint64_t id, load_id;
	int r;

	if (!dl)
		return;
	/* an id never used */
	if (CHECK_OK(dmaload_cancel(dl, 999999, &id))) {
		r = dmaload_wait(dl, id, &ev, NULL, NULL);
		if (CHECK_OK(r))
			CHECKF(ev.type == DMALOAD_EV_ERROR && ev.err == ENOENT,
			       "cancel of an unknown id: %s", lc_event_str(&ev));
	}
	/* a load that is over */
	if (CHECK_OK(dmaload_load_path(dl, small[1].path, NULL, &load_id))) {
		r = dmaload_wait(dl, load_id, &ev, NULL, NULL);
		if (CHECK_OK(r))
			lc_check_done(&ev, small[1].size, small[1].seed, 0, DL_METHOD_AUTO);
		if (CHECK_OK(dmaload_cancel(dl, load_id, &id))) {
			r = dmaload_wait(dl, id, &ev, NULL, NULL);
			if (CHECK_OK(r))
				CHECKF(ev.type == DMALOAD_EV_ERROR && ev.err == ENOENT,
				       "cancel of a finished load: %s", lc_event_str(&ev));
		}
	}
	dmaload_close(dl);
}

/* ---- status --------------------------------------------------------------------- */

/* Collects the final events of @n loads on @dl, checking DONE sizes only. */
static void collect(struct dmaload *dl, const uint64_t *ids, int n, uint64_t size)
{
	for (int i = 0; i < n; i++) {
		struct dmaload_event ev;
		int r = dmaload_wait(dl, ids[i], &ev, NULL, NULL);

		if (!CHECKF(r == 0, "dmaload_wait: %s", strerror(-r)))
			return;
		if (CHECKF(ev.type == DMALOAD_EV_DONE, "load: %s", lc_event_str(&ev)))
			CHECK_U64(ev.size, ==, size);
		if (ev.type == DMALOAD_EV_DONE)
			close(ev.fd);
	}
}

/* Drops the big file's cached pages so buffered loads of it go to the disk. */
static int big_fd_for_drop(void)
{
	static int fd = -1;

	if (fd < 0)
		fd = open(big.path, O_RDONLY | O_CLOEXEC);
	return fd;
}

/* Another connection's STATUS lists running loads with their id, name, size, pid and
 * uid (root sees all). Loads may finish before STATUS is answered: retried. */
static void status_lists_loads(void)
{
	struct dmaload *a = lc_connect(&d, "loader"), *b = lc_connect(&d, "asker");
	bool seen = false;

	for (int attempt = 0; attempt < 5 && !seen && a && b && !check_failed(); attempt++) {
		struct dmaload_status st = { 0 };
		uint64_t ids[4];
		int matched = 0;

		/* Page-cache reads of a cold file into fresh pages are the slowest path
		 * (about 200-400 MB/s here): four of them outlast a STATUS round trip by
		 * far, where O_DIRECT on a fast disk could finish first. */
		struct dmaload_opts o;

		dmaload_opts_init(&o);
		o.method = DL_METHOD_BUFFERED;
		posix_fadvise(big_fd_for_drop(), 0, 0, POSIX_FADV_DONTNEED);
		for (int i = 0; i < 4; i++)
			CHECK_OK(dmaload_load_path(a, big.path, &o, &ids[i]));
		/* once one is ACCEPTED, it is open and reading or queued */
		{
			struct dmaload_event ev;
			int r = dmaload_next_event(a, &ev, 20000);

			if (!CHECKF(r == 1 && ev.type == DMALOAD_EV_ACCEPTED, "first event: %d %s",
				    r, r == 1 ? lc_event_str(&ev) : ""))
				break;
		}
		if (!CHECK_OK(dmaload_status(b, &st)))
			break;
		CHECK_U64(st.clients, >=, 2);
		if (st.n_loads > 0) {
			uint32_t reading = 0, queued = 0;

			seen = true;
			CHECK_U64(st.n_loads, <=, 4);
			for (size_t k = 0; k < st.n_loads; k++) {
				const struct dmaload_status_load *l = &st.loads[k];
				bool ours = false;

				for (int i = 0; i < 4; i++)
					ours |= l->id == ids[i];
				if (!CHECKF(ours, "status lists load id %llu, not one of ours",
					    (unsigned long long)l->id))
					continue;
				matched++;
				CHECK_STR(l->name, big.path);
				/* the length is known once the file is open */
				if (l->state != DL_STATE_OPENING)
					CHECK_U64(l->total, ==, big.size);
				CHECK_U64(l->done, <=, l->total);
				CHECK_U64(l->pid, ==, (uint64_t)getpid());
				CHECK_U64(l->uid, ==, (uint64_t)geteuid());
				CHECK_U64(l->state, <=, DL_STATE_FINISHING);
				reading += l->state == DL_STATE_READING;
				queued += l->state == DL_STATE_QUEUED;
			}
			CHECK_INT(matched, ==, (int)st.n_loads);
			/* listed loads are counted too (the counters may have moved on) */
			CHECKF(st.loads_active >= reading && st.loads_queued >= queued,
			       "%u listed reading, %u queued; counters say %u active, %u queued",
			       reading, queued, st.loads_active, st.loads_queued);
		}
		dmaload_status_free(&st);
		collect(a, ids, 4, big.size);
	}
	CHECKF(seen || check_failed(), "no load was ever listed in 5 attempts");
	if (a)
		dmaload_close(a);
	if (b)
		dmaload_close(b);
	CHECK_SETTLED(&d, 5000);
}

/* ---- clients that go away -------------------------------------------------------- */

struct killed_arg {
	int ready;	/* write end: one byte once the load is accepted */
	uint8_t method;
};

static int killed_child(void *arg, char *msg, size_t len)
{
	struct killed_arg *ka = arg;
	struct dmaload_opts o;
	struct dmaload *dl = NULL;
	struct dmaload_event ev;
	uint64_t id;
	int r;

	r = dmaload_connect(&dl, d.sock, "doomed");
	if (r < 0) {
		snprintf(msg, len, "connect: %s", strerror(-r));
		return 1;
	}
	dmaload_opts_init(&o);
	o.method = ka->method;
	r = dmaload_load_path(dl, big.path, &o, &id);
	if (r < 0) {
		snprintf(msg, len, "load: %s", strerror(-r));
		return 1;
	}
	r = dmaload_next_event(dl, &ev, 20000);
	if (r != 1 || ev.type != DMALOAD_EV_ACCEPTED) {
		snprintf(msg, len, "no ACCEPTED: r=%d type=%d", r, r == 1 ? (int)ev.type : 0);
		return 1;
	}
	if (write(ka->ready, "!", 1) != 1)
		return 1;
	pause();	/* until SIGKILLed */
	return 0;
}

static void killed_client(uint8_t method)
{
	struct killed_arg ka = { .method = method };
	int p[2], status;
	pid_t pid;
	char c;

	if (!CHECK(pipe2(p, O_CLOEXEC) == 0))
		return;
	ka.ready = p[1];
	fflush(stdout);
	pid = fork();
	if (pid == 0) {
		char msg[256] = "";

		close(p[0]);
		alarm(0);
		if (killed_child(&ka, msg, sizeof(msg)))
			fprintf(stderr, "killed-client child: %s\n", msg);
		_exit(1);
	}
	close(p[1]);
	if (!CHECKF(pid > 0, "fork: %s", strerror(errno))) {
		close(p[0]);
		return;
	}
	if (CHECKF(read(p[0], &c, 1) == 1, "the child did not get its load accepted"))
		sleep_ms(5);	/* a few chunks in flight */
	kill(pid, SIGKILL);
	waitpid(pid, &status, 0);
	close(p[0]);
	CHECK_SETTLED(&d, 5000);
	CHECKF(daemon_alive(&d), "the daemon died");
}

static void serves_new_client(void)
{
	struct dmaload *dl = lc_connect(&d, "after");

	if (!dl)
		return;
	lc_load_verify(dl, small[2].path, -1, NULL, small[2].size, small[2].seed,
		       DL_METHOD_AUTO, NULL);
	dmaload_close(dl);
}

/* dmaload_close() with loads in flight: the daemon cancels them and frees all. */
static void close_in_flight(void)
{
	struct dmaload *dl = lc_connect(&d, "closer");
	uint64_t id;
	int fd;

	if (!dl)
		return;
	fd = open(big.path, O_RDONLY | O_CLOEXEC);
	CHECK_OK(dmaload_load_path(dl, big.path, NULL, &id));
	if (CHECK(fd >= 0))
		CHECK_OK(dmaload_load_fd(dl, fd, NULL, &id));
	for (int i = 0; i < 4; i++)
		CHECK_OK(dmaload_load_path(dl, small[i].path, NULL, &id));
	if (fd >= 0)
		close(fd);
	dmaload_close(dl);
	CHECK_SETTLED(&d, 5000);
}

/* Connections that say nothing, or only HELLO, or half a message, then vanish. */
static void churn(void)
{
	for (int i = 0; i < 200; i++) {
		int s = raw_connect(d.sock);

		if (!CHECKF(s >= 0, "connect #%d: %s", i, strerror(-s)))
			break;
		if (i % 2) {
			struct dl_hello h = { .version = DL_PROTO_VERSION, .caps = DL_CAPS_V1 };

			raw_send(s, DL_HELLO, 1, &h, sizeof(h), NULL, 0, NULL, 0);
		}
		if (i % 5 == 0)
			shutdown(s, SHUT_WR);
		close(s);
	}
	CHECK_SETTLED(&d, 5000);
}

int main(void)
{
	struct dmaload *warm;

	check_init(SUITE);
	if (!daemon_start_case(&d, SUITE, "chunk_size = 1M\nqueue_depth = 16\nmax_loads = 4\n",
			       NULL))
		return 1;
	if (make_files() && (warm = lc_connect(&d, "warm-up"))) {
		lc_load_verify(warm, small[0].path, -1, NULL, small[0].size, small[0].seed,
			       DL_METHOD_AUTO, NULL);
		dmaload_close(warm);
	}
	if (!check_end()) {
		daemon_cleanup(&d);
		return 1;
	}
	daemon_baseline(&d);

	CASE(many_clients(), "%d clients load %d different files at once", N_CLIENTS,
	     N_CLIENTS);
	CASE(in_flight(), "16 loads in flight on one connection, waited in reverse");
	CASE(status_lists_loads(), "STATUS on another connection lists running loads");
	CASE(cancel_early(), "cancel right after LOAD: ECANCELED (or DONE), cancel OK/ENOENT");
	CASE(cancel_after_accepted(), "cancel after ACCEPTED of a 256 MiB load");
	CASE(cancel_unknown(), "cancel of an unknown id or a finished load -> ENOENT");
	CASE(killed_client(DL_METHOD_AUTO), "client SIGKILLed mid-load (auto): no leak");
	CASE(killed_client(DL_METHOD_BUFFERED), "client SIGKILLed mid-load (buffered): no leak");
	CASE(killed_client(DL_METHOD_CFR), "client SIGKILLed mid-load (cfr): no leak, no pipe "
	     "left");
	CASE(serves_new_client(), "daemon serves a new client afterwards");
	CASE(close_in_flight(), "client closes with 6 loads in flight: no leak");
	CASE(churn(), "200 connections opened and dropped: no leak");
	CASE(serves_new_client(), "daemon still serves a new client");

	daemon_stop_case(&d, "daemon exits 0 on SIGTERM");
	return check_finish();
}
