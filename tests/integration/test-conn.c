/*
 * test-conn.c: connections a client cannot abuse (issue 12, item 6).
 *
 * One uid (nobody) opens connections up to its share (max_clients_per_uid) and the
 * next one is refused with the daemon's reason, which libdmaload hands back from
 * dmaload_connect_ex() with its errno, while root still connects; root filling
 * max_clients gets dmaload-ctl to print the reason instead of "Connection reset by
 * peer". A daemon started with few fds (RLIMIT_NOFILE 64) and more clients than it
 * can hold must not spin on accept(): its CPU over a second stays low, its log has a
 * few lines, the clients it cannot take hear why, and it serves again once they leave.
 */
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/inotify.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../lib/check.h"
#include "../lib/harness.h"
#include "../lib/loads.h"

#define SUITE "conn"
#define NOBODY 65534
#define MAX_CLIENTS 16
#define PER_UID 4

static struct test_daemon d;
static char small_path[PATH_MAX];
#define SMALL_SIZE (300 * 1024 + 7)
#define SMALL_SEED 41

/* Lines in the daemon's log after byte @skip. */
static int log_lines_since(const struct test_daemon *dm, long skip)
{
	FILE *f = fopen(dm->log, "re");
	int n = 0, c;

	if (!f)
		return -1;
	fseek(f, skip, SEEK_SET);
	while ((c = fgetc(f)) != EOF)
		n += c == '\n';
	fclose(f);
	return n;
}

/* ---- one uid's share ------------------------------------------------------------- */

/*
 * The child, as nobody: PER_UID connections, then one more that must be refused with
 * EAGAIN and a message naming max_clients_per_uid; it holds them until the parent
 * closes @hold (its end of a pipe).
 */
struct share_arg {
	int ready;		/* write end: one byte once the connections are held */
	int hold;		/* read end: EOF tells the child to go */
	int other[2];		/* the parent's ends, closed in the child */
};

static int nobody_share(void *p, char *msg, size_t len)
{
	struct share_arg *a = p;
	struct dmaload *dl[PER_UID] = { 0 }, *extra = NULL;
	char err[DL_ERRMSG_MAX + 1], c;
	int r, rc = 1;

	close(a->other[0]);
	close(a->other[1]);
	if (setgroups(0, NULL) < 0 || setgid(NOBODY) < 0 || setuid(NOBODY) < 0) {
		snprintf(msg, len, "cannot become nobody: %s", strerror(errno));
		return 1;
	}
	for (int i = 0; i < PER_UID; i++) {
		r = dmaload_connect(&dl[i], d.sock, "nobody");
		if (r < 0) {
			snprintf(msg, len, "connection %d of %d refused: %s", i + 1, PER_UID,
				 strerror(-r));
			goto out;
		}
	}
	r = dmaload_connect_ex(&extra, d.sock, "nobody-extra", 5000, err, sizeof(err));
	if (r != -EAGAIN) {
		snprintf(msg, len, "connection %d: want -EAGAIN, got %d (%s), message '%s'",
			 PER_UID + 1, r, strerror(-r), err);
		goto out;
	}
	if (!strstr(err, "max_clients_per_uid")) {
		snprintf(msg, len, "refusal message '%s' does not name max_clients_per_uid",
			 err);
		goto out;
	}
	rc = 0;
out:
	c = rc ? 'F' : 'R';
	if (write(a->ready, &c, 1) != 1)
		rc = 1;
	/* hold the connections until the parent has checked root's */
	while (read(a->hold, &c, 1) > 0)
		;
	dmaload_close(extra);
	for (int i = 0; i < PER_UID; i++)
		dmaload_close(dl[i]);
	return rc;
}

static int run_share_child(void *p, char *msg, size_t len)
{
	return nobody_share(p, msg, len);
}

struct share_parent {
	struct share_arg a;
	int ready_r, hold_w;
	char msg[512];
	int result;
};

static void *share_thread(void *p)
{
	struct share_parent *sp = p;

	sp->result = child_run(run_share_child, &sp->a, sp->msg, sizeof(sp->msg), 30000);
	return NULL;
}

static void per_uid_share(void)
{
	struct share_parent sp = { .result = -1 };
	int rp[2], hp[2];
	struct dmaload *root;
	pthread_t t;
	char c = 0;

	if (!CHECK(pipe2(rp, O_CLOEXEC) == 0 && pipe2(hp, O_CLOEXEC) == 0))
		return;
	sp.a.ready = rp[1];
	sp.a.hold = hp[0];
	sp.a.other[0] = rp[0];
	sp.a.other[1] = hp[1];
	if (!CHECK(pthread_create(&t, NULL, share_thread, &sp) == 0))
		return;
	/* the child is forked: our copies of its ends can go once it has them */
	{
		struct pollfd pfd = { .fd = rp[0], .events = POLLIN };

		CHECKF(poll(&pfd, 1, 20000) == 1 && read(rp[0], &c, 1) == 1,
		       "child never said it holds its connections");
	}
	if (c == 'R') {
		/* nobody holds its whole share: root still gets in, and is served */
		root = lc_connect(&d, "root-beside-nobody");
		if (root) {
			lc_load_verify(root, small_path, -1, NULL, SMALL_SIZE, SMALL_SEED,
				       DL_METHOD_AUTO, NULL);
			dmaload_close(root);
		}
	}
	close(hp[1]);
	close(hp[0]);
	close(rp[1]);
	pthread_join(t, NULL);
	close(rp[0]);
	CHECKF(sp.result == 0, "nobody's child: %s (%d)", sp.msg, sp.result);
	CHECK_SETTLED(&d, 5000);
}

/* Root fills max_clients: dmaload-ctl says why it cannot connect. */
static void ctl_reports_refusal(void)
{
	int s[MAX_CLIENTS];
	int n = 0, st;
	char out[4096], err[4096];
	const char *args[] = { "ping", NULL };

	for (int i = 0; i < MAX_CLIENTS; i++) {
		s[i] = raw_connect(d.sock);
		if (!CHECKF(s[i] >= 0, "raw connect %d: %s", i, strerror(-s[i])))
			break;
		n++;
	}
	/* accepted by now: a ping on the first one answers after all are in */
	if (n) {
		struct dl_hello h = { .version = DL_PROTO_VERSION };
		struct raw_msg *rm = raw_msg_new();

		for (int i = 0; i < n; i++) {
			if (raw_send(s[i], DL_HELLO, 1, &h, sizeof(h), NULL, 0, NULL, 0) == 0)
				raw_recv(s[i], rm, 5000);
		}
		raw_msg_free(rm);
	}
	st = ctl_run(d.sock, d.dir, args, 20000, out, sizeof(out), err, sizeof(err));
	CHECKF(st == 1, "dmaload-ctl ping with max_clients taken: exit %d, stderr '%s'", st,
	       err);
	CHECKF(strstr(err, "too many clients") && strstr(err, "max_clients = 16"),
	       "dmaload-ctl did not print the daemon's reason: '%s'", err);
	{
		struct dmaload *dl;
		char msg[DL_ERRMSG_MAX + 1];
		int r = dmaload_connect_ex(&dl, d.sock, "over", 5000, msg, sizeof(msg));

		CHECKF(r == -EAGAIN && strstr(msg, "too many clients"),
		       "libdmaload: want -EAGAIN with the reason, got %d '%s'", r, msg);
		if (r == 0)
			dmaload_close(dl);
	}
	for (int i = 0; i < n; i++)
		close(s[i]);
	CHECK_SETTLED(&d, 5000);
}

/* ---- out of fds ------------------------------------------------------------------ */

#define LOW_NOFILE 64
#define N_FLOOD 120

static struct test_daemon lo;

static void out_of_fds(void)
{
	char why[512];
	int s[N_FLOOD], n = 0, told = 0, lines;
	long skip, cpu0, cpu1, hz = sysconf(_SC_CLK_TCK);
	struct dmaload *dl = NULL;
	uint64_t t0;

	daemon_set_nofile(LOW_NOFILE);
	if (daemon_start(&lo, SUITE "-fds", NULL, why, sizeof(why)) < 0) {
		daemon_set_nofile(0);
		check_fail(__FILE__, __LINE__, "%s", why);
		return;
	}
	daemon_set_nofile(0);
	fprintf(stderr, "# daemon with RLIMIT_NOFILE %d: %d fds at start\n", LOW_NOFILE,
		proc_fd_count(lo.pid));
	for (int i = 0; i < N_FLOOD; i++) {
		s[i] = raw_connect(lo.sock);
		if (!CHECKF(s[i] >= 0, "raw connect %d: %s", i, strerror(-s[i])))
			break;
		n++;
	}
	/* let it run into the limit, then watch it for a second */
	sleep_ms(500);
	skip = daemon_log_size(&lo);
	cpu0 = proc_cpu_ticks(lo.pid);
	sleep_ms(1000);
	cpu1 = proc_cpu_ticks(lo.pid);
	lines = log_lines_since(&lo, skip);
	CHECKF(cpu0 >= 0 && cpu1 - cpu0 <= hz / 5, "daemon out of fds used %ld of %ld ticks "
	       "in a second: spinning on accept()?", cpu1 - cpu0, hz);
	CHECKF(lines >= 0 && lines <= 20, "daemon out of fds wrote %d log lines in a second",
	       lines);
	CHECKF(daemon_log_wait(&lo, "is less than max_clients (256) connections with one "
			       "load each (1088 fds)", 0, 100),
	       "no start-up warning that 64 fds cannot give 256 connections a load each");
	CHECKF(daemon_log_wait(&lo, "pausing new connections", 0, 100),
	       "no log line about the pause");
	fprintf(stderr, "# out of fds: %ld ticks (of %ld) in 1 s, %d log lines, %d fds\n",
		cpu1 - cpu0, hz, lines, proc_fd_count(lo.pid));
	/* the ones it could not take were told why */
	for (int i = 0; i < n; i++) {
		struct raw_msg *rm = raw_msg_new();
		struct pollfd p = { .fd = s[i], .events = POLLIN };

		if (poll(&p, 1, 0) == 1 && raw_recv(s[i], rm, 100) == 1 && rm->decode == 0 &&
		    rm->m.hdr.type == DL_ERROR && rm->m.hdr.id == 0 &&
		    strstr(raw_error_text(rm), "out of file descriptors"))
			told++;
		raw_msg_free(rm);
	}
	CHECKF(told > 0, "none of %d clients heard 'out of file descriptors'", n);
	for (int i = 0; i < n; i++)
		close(s[i]);
	/* and it serves again */
	t0 = now_ms();
	while (now_ms() - t0 < 10000) {
		char msg[DL_ERRMSG_MAX + 1];

		if (dmaload_connect_ex(&dl, lo.sock, "after-flood", 5000, msg, sizeof(msg)) == 0)
			break;
		dl = NULL;
		sleep_ms(100);
	}
	if (CHECKF(dl, "no connection within 10 s of the flood leaving")) {
		lc_load_verify(dl, small_path, -1, NULL, SMALL_SIZE, SMALL_SEED, DL_METHOD_AUTO,
			       NULL);
		dmaload_close(dl);
	}
	CHECKF(daemon_log_wait(&lo, "fds free again", 0, 2000),
	       "no log line about accepting again");
}

#define N_HUP 8

/*
 * Loads whose connection hung up before the daemon read them are dropped: no job, no
 * open, nothing to cancel (connect-die in make stress). With the daemon stopped,
 * N_HUP connections each send a LOAD of one file and close; one more sends a LOAD of
 * another file and stays. After SIGCONT the staying one gets its DONE, and nothing
 * opened the first file (inotify IN_OPEN): a load that was started, then cancelled
 * by the close, would have opened it on a worker first.
 */
static void hung_up_dropped(void)
{
	char gone_path[PATH_MAX + 16], stay_path[PATH_MAX + 16];
	struct raw_msg *rm = raw_msg_new();
	int stay = -1, ino = -1, sent = 0, r;
	char ev[4096];

	snprintf(gone_path, sizeof(gone_path), "%s/hup-gone", d.dir);
	snprintf(stay_path, sizeof(stay_path), "%s/hup-stay", d.dir);
	if (!CHECK(file_make(gone_path, 1 << 20, 7, 0644) == 0 &&
		   file_make(stay_path, 1 << 20, 8, 0644) == 0))
		goto out;
	ino = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	if (!CHECK(ino >= 0 && inotify_add_watch(ino, gone_path, IN_OPEN) >= 0))
		goto out;
	if (!CHECK(kill(d.pid, SIGSTOP) == 0))
		goto out;
	for (int i = 0; i < N_HUP; i++) {
		int s = raw_connect(d.sock);

		if (s >= 0 && raw_send_load(s, 1, gone_path, -1, 0, 1 << 20, 0) == 0)
			sent++;
		if (s >= 0)
			close(s);
	}
	stay = raw_connect(d.sock);
	r = stay >= 0 ? raw_send_load(stay, 1, stay_path, -1, 0, 1 << 20, 0) : stay;
	kill(d.pid, SIGCONT);
	CHECKF(sent == N_HUP, "%d of %d hung-up LOADs sent", sent, N_HUP);
	if (!CHECKF(r == 0, "the staying connection: %s", strerror(-r)))
		goto out;
	r = raw_wait_final(stay, 1, rm, 5000);
	if (CHECKF(r == 1 && rm->decode == 0 && rm->m.hdr.type == DL_DONE,
		   "the staying connection's LOAD: no DONE (%d)", r))
		CHECK_BUF(rm->fd, 1 << 20, 8, 0);
	sleep_ms(300);
	CHECKF(read(ino, ev, sizeof(ev)) < 0 && errno == EAGAIN,
	       "the file of the hung-up connections' loads was opened: they were started");
	close(stay);
	stay = -1;
	raw_msg_clear(rm);
	CHECK_SETTLED(&d, 3000);
out:
	if (stay >= 0)
		close(stay);
	if (ino >= 0)
		close(ino);
	raw_msg_free(rm);
}

/* The built-in defaults (256 x 64 loads x 3 fds) under an fd limit of 20,000: a
 * notice with what the limit holds, (20000 - 256 - 64) / 3 = 6560 loads, no warning. */
static void defaults_fd_notice(void)
{
	struct test_daemon dd = { .pid = -1 };
	char why[512];
	int st;

	daemon_set_nofile(20000);
	if (daemon_start_conf(&dd, SUITE "-nofile", "", why, sizeof(why)) < 0) {
		daemon_set_nofile(0);
		check_fail(__FILE__, __LINE__, "%s", why);
		daemon_cleanup(&dd);
		return;
	}
	daemon_set_nofile(0);
	CHECKF(daemon_log_wait(&dd, "notice: the fd limit (20000) holds about 6560 loads at "
			       "3 fds each; max_clients (256) x max_queued (64) allows 16384",
			       0, 2000), "no notice of what 20000 fds hold");
	CHECKF(!daemon_log_wait(&dd, "warning", 0, 0), "built-in defaults log a warning");
	st = daemon_stop(&dd);
	CHECKF(st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0, "exit status %#x", st);
	daemon_cleanup(&dd);
}

int main(void)
{
	char why[512];
	char conf[128];

	check_init(SUITE);
	check_begin("daemon starts");
	snprintf(conf, sizeof(conf), "[daemon]\nmax_clients = %d\nmax_clients_per_uid = %d\n",
		 MAX_CLIENTS, PER_UID);
	if (daemon_start_more(&d, SUITE, NULL, conf, why, sizeof(why)) < 0) {
		check_fail(__FILE__, __LINE__, "%s", why);
		check_end();
		daemon_cleanup(&d);
		return 1;
	}
	snprintf(small_path, sizeof(small_path), "%s/small", d.dir);
	CHECK(file_make(small_path, SMALL_SIZE, SMALL_SEED, 0644) == 0);
	if (!check_end()) {
		daemon_cleanup(&d);
		return 1;
	}
	daemon_baseline(&d);

	CASE(per_uid_share(), "nobody gets %d connections, the next is refused with the "
	     "reason (EAGAIN); root still connects and loads", PER_UID);
	CASE(ctl_reports_refusal(), "max_clients taken: dmaload-ctl and libdmaload give the "
	     "daemon's reason");
	CASE(hung_up_dropped(), "%d LOADs of connections closed before the daemon read them "
	     "are dropped unstarted; a staying one is served", N_HUP);
	CASE(out_of_fds(), "RLIMIT_NOFILE %d, %d clients: no accept() spin (CPU, log), the "
	     "refused hear why, served again after", LOW_NOFILE, N_FLOOD);
	if (lo.pid > 0)
		daemon_stop_case(&lo, "the daemon out of fds exits 0 on SIGTERM");
	CASE(defaults_fd_notice(), "built-in defaults under 20000 fds: a notice of what they "
	     "hold, no warning");

	daemon_stop_case(&d, "daemon exits 0 on SIGTERM");
	return check_finish();
}
