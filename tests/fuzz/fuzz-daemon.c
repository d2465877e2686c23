/*
 * fuzz-daemon.c: a stateful libFuzzer target of the daemon's request handling.
 *
 * The daemon's objects (all but main.c) run in this process: one server (engine,
 * client set, listener on a socket in a private dir under /var/tmp) on a private libev
 * loop, set up once. Each input is one connection: a socketpair whose daemon end
 * becomes a client (client_new), and a sequence of operations decoded from the input
 * that send it (or a second connection, or a new one after a hangup) datagrams, each with 0 to 2 fds from a small pool (a regular file, a
 * directory, /dev/null, a pipe's read end, a memfd, a bigger file), run the loop, and
 * read the replies. Then the connection closes, a second one sends EVICT --all (which
 * cancels detached loads and drops cached buffers, as root may), and the loop runs
 * until the daemon is quiet. The invariants, checked after every input (abort() if
 * broken, so libFuzzer keeps the input):
 *   - every client is freed, no load is reading or waiting, no worker task or I/O is
 *     in flight, and no buffer is cached, within QUIET_TIMEOUT_S;
 *   - the process has as many fds as before the input, but for the pipes the copy
 *     pool keeps for reuse;
 *   - ASan and UBSan found nothing (the build has them on).
 *
 * Input: byte 0 holds options (bit 0: read the replies only at the end, so they queue
 * in the daemon); then operations, each an opcode byte and its arguments:
 *   OP_RAW    spec len_lo len_hi bytes...   a datagram as is
 *   OP_LOAD   id path flags method target prio offset length rate spec
 *   OP_CANCEL id
 *   OP_SIMPLE type id                       HELLO, STATUS, INFO, LIST, STATS
 *   OP_EVICT  id path                       path 0xff: --all
 *   OP_PUMP                                 run the loop without waiting
 *   OP_SETTLE                               run it until the engine is idle (bounded)
 *   OP_DRAIN                                read the replies there are
 *   OP_PEER                                 switch to the other connection
 *   OP_HANGUP                               close this one (reopened when next used)
 * "spec" picks the fds: count = spec % 3, then the pool indices (spec >> 2) and
 * (spec >> 5). The numbers are in fuzz-daemon.h; tests/fuzz/gen-corpus.c --daemon
 * writes the seeds (tests/fuzz/corpus-daemon/).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cache.h"
#include "client.h"
#include "config.h"
#include "dmaload-proto.h"
#include "engine.h"
#include "fuzz-daemon.h"
#include "log.h"
#include "server.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define POOL_SIZE 6
#define QUIET_TIMEOUT_S 10.0
#define SETTLE_TIMEOUT_S 0.02	/* one OP_SETTLE at most */
#define SETTLE_BUDGET_S 0.1	/* all of an input's OP_SETTLEs together: a slow
				 * load never settles, and inputs must stay quick */

static char dir[64];
static char paths[12][128];
static unsigned n_paths;
static int pool[POOL_SIZE];
static int pipe_w = -1;
static struct config cfg;
static struct server srv;
static struct ev_loop *loop;
static char buf[DL_MSG_MAX];
static double settle_left;	/* of SETTLE_BUDGET_S, in this input */

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	int n = 0;

	if (!d)
		abort();
	while ((e = readdir(d)))
		if (e->d_name[0] != '.')
			n++;
	closedir(d);
	return n - 1;	/* the DIR's own */
}

static void write_file(const char *name, size_t size)
{
	char p[128];
	int fd;

	snprintf(p, sizeof(p), "%s/%s", dir, name);
	fd = open(p, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0) {
		perror(p);
		exit(1);
	}
	for (size_t i = 0; i < size; i += sizeof(buf)) {
		size_t n = size - i < sizeof(buf) ? size - i : sizeof(buf);

		memset(buf, (int)(i / sizeof(buf)) + 'a', n);
		if (write(fd, buf, n) != (ssize_t)n)
			exit(1);
	}
	close(fd);
}

/* @rel under the private dir, or @rel as is when it starts with '!' */
static void add_path(const char *rel)
{
	if (rel[0] == '!')
		snprintf(paths[n_paths++], sizeof(paths[0]), "%s", rel + 1);
	else
		snprintf(paths[n_paths++], sizeof(paths[0]), "%s/%s", dir, rel);
}

static void cleanup(void)
{
	char cmd[128];

	if (dir[0]) {
		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
		if (system(cmd) != 0)
			fprintf(stderr, "fuzz-daemon: cannot remove %s\n", dir);
	}
}

/* The files, the fd pool and the daemon, once per process. */
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	char p[128];
	int fds[2];

	signal(SIGPIPE, SIG_IGN);
	/* O_DIRECT needs a real filesystem: /var/tmp, not a tmpfs /tmp */
	snprintf(dir, sizeof(dir), "/var/tmp/dmaload-fuzz.XXXXXX");
	if (!mkdtemp(dir)) {
		perror("mkdtemp");
		exit(1);
	}
	atexit(cleanup);
	write_file("small", 3 * 4096 + 100);
	write_file("big", (1 << 20) + 4096);
	write_file("empty", 0);
	snprintf(p, sizeof(p), "%s/dir", dir);
	mkdir(p, 0755);
	snprintf(p, sizeof(p), "%s/link", dir);
	if (symlink("small", p) < 0)
		exit(1);
	/* in enum fuzz_path's order */
	add_path("small");
	add_path("big");
	add_path("empty");
	add_path("dir");
	add_path("link");
	add_path("dir/../small");
	add_path("missing");
	add_path("!/dev/null");
	add_path("!/proc/self/status");
	add_path("!small");		/* relative: from the client's cwd */
	add_path("small/");

	/* in enum fuzz_fd's order */
	snprintf(p, sizeof(p), "%s/small", dir);
	pool[0] = open(p, O_RDONLY | O_CLOEXEC);
	pool[1] = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	pool[2] = open("/dev/null", O_RDWR | O_CLOEXEC);
	if (pipe2(fds, O_CLOEXEC | O_NONBLOCK) < 0)
		exit(1);
	pool[3] = fds[0];
	pipe_w = fds[1];
	pool[4] = memfd_create("fuzz", MFD_CLOEXEC);
	if (pool[4] < 0 || ftruncate(pool[4], 8192) < 0)
		exit(1);
	snprintf(p, sizeof(p), "%s/big", dir);
	pool[5] = open(p, O_RDONLY | O_CLOEXEC);
	for (int i = 0; i < POOL_SIZE; i++)
		if (pool[i] < 0)
			exit(1);

	log_setup(getenv("FUZZ_DAEMON_LOG") ? LOG_LVL_DEBUG : LOG_LVL_ERR);
	config_init(&cfg);
	snprintf(p, sizeof(p), "%s/sock", dir);
	cfg.socket = strdup(p);
	/* small chunks: multi-chunk loads of "big"; a cache, so hits, joins and pins */
	cfg.chunk_size = 64 << 10;
	cfg.max_load_size = 16 << 20;
	cfg.cache_limit = 4 << 20;
	cfg.cache_limit_pct = 0;
	loop = ev_loop_new(EVFLAG_AUTO);
	if (!loop || server_init(&srv, loop, &cfg) < 0) {
		fprintf(stderr, "fuzz-daemon: cannot start the daemon's objects\n");
		exit(1);
	}
	return 0;
}

/* Sends with 0..2 fds, more than the protocol allows, so the receive side's checks
 * run too; a full socket is given a few turns of the loop. */
static void send_dgram(int sock, const void *msg, size_t len, uint8_t spec)
{
	union {
		struct cmsghdr h;
		char b[CMSG_SPACE(2 * sizeof(int))];
	} u;
	struct iovec iov = { .iov_base = (void *)msg, .iov_len = len };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
	int nfds = spec % 3;

	if (nfds) {
		int fds[2] = { pool[(spec >> 2) % POOL_SIZE], pool[(spec >> 5) % POOL_SIZE] };
		struct cmsghdr *c;

		memset(&u, 0, sizeof(u));
		mh.msg_control = u.b;
		mh.msg_controllen = CMSG_SPACE(nfds * sizeof(int));
		c = CMSG_FIRSTHDR(&mh);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(nfds * sizeof(int));
		memcpy(CMSG_DATA(c), fds, nfds * sizeof(int));
	}
	for (int tries = 0; tries < 100; tries++) {
		if (sendmsg(sock, &mh, MSG_NOSIGNAL | MSG_DONTWAIT) >= 0 || errno != EAGAIN)
			return;
		ev_run(loop, EVRUN_NOWAIT);
	}
}

/* Reads every reply there is; the fds that came with them are closed. */
static void drain(int sock)
{
	for (;;) {
		int fds[2], nfds = 0;
		ssize_t n = dl_recv(sock, buf, sizeof(buf), fds, 2, &nfds);

		for (int i = 0; i < nfds; i++)
			close(fds[i]);
		if (n <= 0 && n != -EMSGSIZE && n != -EBADMSG)
			return;
	}
}

static bool engine_quiet(void)
{
	return !engine_busy(&srv.eng);
}

static bool daemon_quiet(void)
{
	return srv.conns.n_clients == 0 && list_empty(&srv.conns.lingering) &&
	       srv.conns.n_detached == 0 && engine_quiet();
}

/* Runs the loop until @done() or @timeout_s. */
static bool run_until(bool (*done)(void), double timeout_s)
{
	double end = now_s() + timeout_s;

	for (;;) {
		ev_run(loop, EVRUN_NOWAIT);
		if (done())
			return true;
		if (now_s() > end)
			return false;
		usleep(50);
	}
}

/* A new connection: the daemon's end becomes a client; returns ours. */
static int connect_client(void)
{
	struct client *c;
	int sv[2];

	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, sv) < 0)
		abort();
	if (client_new(&c, &srv.conns, sv[0]) < 0)
		abort();
	return sv[1];
}

static void hang_up(int *sock)
{
	if (*sock < 0)
		return;
	drain(*sock);
	close(*sock);
	*sock = -1;
}

struct input {
	const uint8_t *p, *end;
};

static uint8_t next(struct input *in)
{
	return in->p < in->end ? *in->p++ : 0;
}

static const uint64_t offsets[] = { 0, 4096, 100, 12288, 1 << 20, UINT64_MAX - 4095,
				    (1 << 20) + 4096, 512 };
static const uint64_t lengths[] = { DL_LENGTH_TO_EOF, 4096, 1, 0, 100, 1 << 20,
				    UINT64_MAX, 65536 };
static const uint64_t rates[] = { 0, 0, 0, 0, 1, 4096, 1 << 20, UINT64_MAX };

static void op_load(struct input *in, int sock)
{
	uint64_t id = next(in);
	uint8_t path = next(in), flags = next(in), method = next(in), target = next(in);
	uint8_t prio = next(in), off = next(in), len = next(in), rate = next(in);
	uint8_t spec = next(in);
	const char *p = paths[path % n_paths];
	char trail[256];
	struct dl_load l = {
		.offset = offsets[off % 8],
		.length = lengths[len % 8],
		.rate_limit = rates[rate % 8],
		/* the defined flags, and now and then one that is not */
		.flags = flags == 0xff ? 1u << 15 : (uint32_t)(flags & 0x7f),
		.method = method % 5,
		.target = target < 0xf0 ? DL_TARGET_MEMFD : target % 5,
		.priority = prio % 3,
	};
	size_t tl = 0;
	ssize_t n;

	if (!(l.flags & DL_LOAD_BY_FD)) {
		tl = strlen(p);
		memcpy(trail, p, tl);
		l.path_len = (uint32_t)tl;
	}
	if (l.target == DL_TARGET_HEAP) {
		memcpy(trail + tl, "system", 6);
		tl += 6;
		l.heap_len = 6;
	}
	n = dl_encode(buf, sizeof(buf), DL_LOAD, id, &l, sizeof(l), trail, tl);
	if (n > 0)
		send_dgram(sock, buf, (size_t)n, spec);
}

static void op_simple(struct input *in, int sock)
{
	static const uint16_t types[] = { DL_HELLO, DL_STATUS, DL_INFO, DL_LIST, DL_STATS };
	uint8_t t = next(in);
	uint64_t id = next(in);
	ssize_t n;

	if (types[t % 5] == DL_HELLO) {
		struct dl_hello h = { .version = 1 + (t >> 7), .caps = DL_CAPS_V1,
				      .name = "fuzz" };

		n = dl_encode(buf, sizeof(buf), DL_HELLO, id, &h, sizeof(h), NULL, 0);
	} else {
		n = dl_encode(buf, sizeof(buf), types[t % 5], id, NULL, 0, NULL, 0);
	}
	if (n > 0)
		send_dgram(sock, buf, (size_t)n, 0);
}

static void op_evict(struct input *in, int sock)
{
	uint64_t id = next(in);
	uint8_t path = next(in);
	struct dl_evict e = { 0 };
	const char *p = paths[path % n_paths];
	ssize_t n;

	if (path == 0xff) {
		e.flags = DL_EVICT_ALL;
		n = dl_encode(buf, sizeof(buf), DL_EVICT, id, &e, sizeof(e), NULL, 0);
	} else {
		e.path_len = (uint32_t)strlen(p);
		n = dl_encode(buf, sizeof(buf), DL_EVICT, id, &e, sizeof(e), p, strlen(p));
	}
	if (n > 0)
		send_dgram(sock, buf, (size_t)n, 0);
}

/* The ops of @in over two connections, @socks (ours; -1: none yet). */
static void run_ops(struct input *in, int socks[2], bool read_late)
{
	int cur = 0;

	while (in->p < in->end) {
		uint8_t op = next(in) % OP_COUNT;
		int sock;

		if (op == OP_PEER) {
			cur ^= 1;
			continue;
		}
		if (op == OP_HANGUP) {
			hang_up(&socks[cur]);
			ev_run(loop, EVRUN_NOWAIT);
			continue;
		}
		if (socks[cur] < 0)
			socks[cur] = connect_client();
		sock = socks[cur];
		switch (op) {
		case OP_RAW: {
			uint8_t spec = next(in);
			size_t len = next(in);

			len |= (size_t)next(in) << 8;
			if (len > (size_t)(in->end - in->p))
				len = (size_t)(in->end - in->p);
			send_dgram(sock, in->p, len, spec);
			in->p += len;
			break;
		}
		case OP_LOAD:
			op_load(in, sock);
			break;
		case OP_CANCEL: {
			struct dl_cancel c = { .load_id = next(in) };
			ssize_t n = dl_encode(buf, sizeof(buf), DL_CANCEL, next(in), &c,
					      sizeof(c), NULL, 0);

			if (n > 0)
				send_dgram(sock, buf, (size_t)n, 0);
			break;
		}
		case OP_SIMPLE:
			op_simple(in, sock);
			break;
		case OP_EVICT:
			op_evict(in, sock);
			break;
		case OP_PUMP:
			ev_run(loop, EVRUN_NOWAIT);
			break;
		case OP_SETTLE: {
			double t = now_s();

			if (settle_left > 0)
				run_until(engine_quiet, settle_left < SETTLE_TIMEOUT_S ?
					  settle_left : SETTLE_TIMEOUT_S);
			settle_left -= now_s() - t;
			break;
		}
		case OP_DRAIN:
			if (!read_late)
				drain(sock);
			break;
		}
		ev_run(loop, EVRUN_NOWAIT);
	}
}

/* A second connection of root's: EVICT --all cancels the detached loads the input
 * started and drops what it cached, through the handlers like any request. */
static void evict_all(void)
{
	struct dl_evict e = { .flags = DL_EVICT_ALL };
	int sock = connect_client();
	ssize_t n;

	n = dl_encode(buf, sizeof(buf), DL_EVICT, 1, &e, sizeof(e), NULL, 0);
	send_dgram(sock, buf, (size_t)n, 0);
	/* its reply (EVICT_REPLY, or ENOENT when there was nothing) says it ran */
	for (double end = now_s() + QUIET_TIMEOUT_S; now_s() < end; usleep(50)) {
		int fd = -1, nfds = 0;

		ev_run(loop, EVRUN_NOWAIT);
		n = dl_recv(sock, buf, sizeof(buf), &fd, 1, &nfds);
		if (nfds)
			close(fd);
		if (n != -EAGAIN)
			break;
	}
	close(sock);
}

static void fail(const char *what, int fds_before, int fds_after)
{
	fprintf(stderr, "fuzz-daemon: %s: clients %u, lingering %s, detached %u, loads "
		"reading %u, waiting %u, worker tasks %u, ring ops %u, cached %u (%u pinned), "
		"fds %d before, %d after (copy pipes %u)\n", what, srv.conns.n_clients,
		list_empty(&srv.conns.lingering) ? "none" : "some", srv.conns.n_detached,
		srv.eng.sched.n_active, srv.eng.sched.n_waiting,
		srv.eng.pool ? worker_pending(srv.eng.pool) : 0, srv.eng.ring.inflight,
		srv.eng.cache.n_ready, srv.eng.cache.n_pinned, fds_before, fds_after,
		srv.eng.copy.pipes.n);
	abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct input in = { data, data + size };
	unsigned pipes_before = srv.eng.copy.pipes.n;
	int fds_before = count_fds(), fds_after;
	bool read_late = next(&in) & FUZZ_OPT_READ_LATE;
	int socks[2] = { connect_client(), -1 };

	settle_left = SETTLE_BUDGET_S;
	run_ops(&in, socks, read_late);
	ev_run(loop, EVRUN_NOWAIT);
	hang_up(&socks[0]);
	hang_up(&socks[1]);
	evict_all();
	if (!run_until(daemon_quiet, QUIET_TIMEOUT_S))
		fail("the daemon is not quiet after the input", fds_before, count_fds());
	if (srv.eng.cache.n_ready) {
		/* what root's EVICT --all left: make the next input start clean anyway */
		cache_clear(&srv.eng.cache);
		run_until(daemon_quiet, QUIET_TIMEOUT_S);
		fail("EVICT --all left cached buffers", fds_before, count_fds());
	}
	fds_after = count_fds() - 2 * (int)(srv.eng.copy.pipes.n - pipes_before);
	if (fds_after != fds_before)
		fail("fd count changed", fds_before, fds_after);
	/* a pipe the daemon never reads stays drained for the next input */
	while (read(pool[3], buf, sizeof(buf)) > 0)
		;
	return 0;
}
