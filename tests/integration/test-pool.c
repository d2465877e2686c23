/*
 * test-pool.c: one user's blocking calls cannot starve another's, and a stop is
 * prompt while calls hang (issue 12, items 4 and 5).
 *
 * The daemon runs as root with its defaults for the pool (workers 2, max_workers,
 * workers_per_uid); the attackers are forked children that drop to nobody and keep
 * their connection open while root, the victim, loads a file of its own. Checks are
 * of correctness, not speed: root's loads complete with the right bytes.
 *
 *  - hang-open: nobody loads the FUSE test filesystem's file (tests/fuse/dl-fusefs.c
 *    in mode hang-open) 12 times; every open hangs in the FUSE server. Its cancel of
 *    one is answered ECANCELED at once; root's loads complete meanwhile; nobody holds
 *    no more of the daemon's threads in FUSE than workers_per_uid; once the
 *    connection is aborted, every task ends and the fds are back.
 *  - leases: nobody holds write leases (F_SETLEASE) on 8 files of its own and loads
 *    them: each open would wait out fs.lease-break-time (lowered to 20 s here and
 *    restored after); each gets ERROR EWOULDBLOCK that names the lease instead,
 *    before the break time, and root's loads complete meanwhile.
 *  - hang-flush: nobody opens the FUSE file in mode hang-flush, where every close(2) of
 *    it waits in the server's flush, and sends its fd with a STATUS (which takes none)
 *    and then DL_MAX_FDS + 1 copies in one datagram (refused whole). The daemon drops
 *    them on workers, not on its loop: root's loads complete meanwhile, and nobody
 *    holds no more than workers_per_uid threads in FUSE; after the abort the fds
 *    are back.
 *  - stop: a second daemon whose loads read a hang-read FUSE file (two) or open a
 *    hang-open one (one). SIGTERM: the three loading clients get ERROR ESHUTDOWN and
 *    an idle one its connection closed within a few seconds, the socket goes away;
 *    the process ends within a few seconds of the FUSE connections' abort, status 0,
 *    its log saying it gave up on stuck calls.
 *
 * Needs root; every case SKIPs where FUSE cannot be mounted (the lease case does not
 * need it).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../lib/check.h"
#include "../lib/fusefs.h"
#include "../lib/harness.h"
#include "../lib/loads.h"

#define SUITE "pool"
#define NOBODY 65534
#define FILE_SIZE (256 * 1024 + 17)
#define ROOT_SEED 42
#define N_HANG 12		/* nobody's hanging loads: past workers_per_uid (4) */
#define PER_UID 4		/* the daemon's default workers_per_uid */
#define N_LEASE 8
#define LEASE_BREAK_S 20
#define LEASE_PATH "/proc/sys/fs/lease-break-time"

static struct test_daemon d;
static char root_file[PATH_MAX], lease_dir[PATH_MAX];
static char lease_was[32];	/* fs.lease-break-time as found, "" when not changed */

/* ---- attackers: children as nobody that stay until killed ------------------------ */

struct attacker {
	pid_t pid;
	int rfd;		/* its report: one line, then it waits to be killed */
};

static pid_t attacker_pid = -1;	/* the one running, for the watchdog to kill */

/* Forks @fn as nobody; @fn writes its report to @wfd and returns. The child then
 * waits (its connection and leases stay) until attacker_stop(). */
static bool attacker_start(struct attacker *a, void (*fn)(void *arg, int wfd), void *arg)
{
	int p[2];

	a->pid = -1;
	a->rfd = -1;
	if (!CHECKF(pipe2(p, O_CLOEXEC) == 0, "pipe: %s", strerror(errno)))
		return false;
	a->pid = fork();
	if (a->pid < 0) {
		close(p[0]);
		close(p[1]);
		return CHECKF(false, "fork: %s", strerror(errno));
	}
	if (a->pid == 0) {
		char msg[256];

		close(p[0]);
		setpgid(0, 0);
		if (child_drop(NOBODY, 0, msg, sizeof(msg)) < 0) {
			dprintf(p[1], "FAIL %s\n", msg);
			_exit(1);
		}
		fn(arg, p[1]);
		for (;;)
			pause();
	}
	close(p[1]);
	a->rfd = p[0];
	attacker_pid = a->pid;
	return true;
}

/* Its report line, waiting up to @ms; "" on timeout. */
static const char *attacker_report(struct attacker *a, int ms, char *buf, size_t len)
{
	struct pollfd pfd = { .fd = a->rfd, .events = POLLIN };
	size_t n = 0;
	uint64_t until = now_ms() + (uint64_t)ms;

	buf[0] = '\0';
	while (n + 1 < len && now_ms() < until) {
		ssize_t r;

		if (poll(&pfd, 1, (int)(until - now_ms())) <= 0)
			break;
		r = read(a->rfd, buf + n, len - 1 - n);
		if (r <= 0)
			break;
		n += (size_t)r;
		buf[n] = '\0';
		if (strchr(buf, '\n'))
			break;
	}
	return buf;
}

static void attacker_stop(struct attacker *a)
{
	if (a->pid > 0) {
		kill(a->pid, SIGKILL);
		waitpid(a->pid, NULL, 0);
	}
	attacker_pid = -1;
	if (a->rfd >= 0)
		close(a->rfd);
	a->pid = -1;
	a->rfd = -1;
}

/* ---- the victim ------------------------------------------------------------------- */

/* Root loads its own file @n times; each must complete with its bytes. */
static void victim_loads(int n)
{
	struct dmaload *dl = lc_connect(&d, "root-victim");

	if (!dl)
		return;
	/* A victim that waits for ever would show as the watchdog, not as a FAIL. */
	dmaload_set_timeout(dl, 20000);
	for (int i = 0; i < n && !check_failed(); i++)
		lc_load_verify(dl, root_file, -1, NULL, FILE_SIZE, ROOT_SEED, 0, NULL);
	dmaload_close(dl);
}

/* Threads of @pid whose wait channel is in FUSE (a request waiting for its answer). */
static int threads_in_fuse(pid_t pid)
{
	char p[64], w[128];
	int n = 0;
	DIR *dir;
	struct dirent *e;

	snprintf(p, sizeof(p), "/proc/%d/task", (int)pid);
	dir = opendir(p);
	if (!dir)
		return -1;
	while ((e = readdir(dir))) {
		char wp[512];
		FILE *f;

		if (e->d_name[0] == '.')
			continue;
		snprintf(wp, sizeof(wp), "%s/%s/wchan", p, e->d_name);
		f = fopen(wp, "r");
		if (!f)
			continue;
		if (fgets(w, sizeof(w), f) &&
		    (strstr(w, "fuse") || strstr(w, "request_wait_answer")))
			n++;
		fclose(f);
	}
	closedir(dir);
	return n;
}

/* ---- hang-open -------------------------------------------------------------------- */

static struct fusefs hang_fs = { .pid = -1 }, read_fs = { .pid = -1 },
		     open_fs = { .pid = -1 };
static bool hang_up;
static char hang_why[512];

static void hang_attack(void *arg, int wfd)
{
	struct dmaload *dl = NULL;
	struct dmaload_event ev = { .fd = -1 };
	int r = dmaload_connect(&dl, d.sock, "nobody-hang");
	uint64_t ids[N_HANG], cid;
	int sent = 0;

	if (r < 0) {
		dprintf(wfd, "FAIL connect as nobody: %s\n", strerror(-r));
		return;
	}
	for (int i = 0; i < N_HANG; i++)
		if (dmaload_load_path(dl, hang_fs.file, NULL, &ids[i]) == 0)
			sent++;
	/* The first is in a worker, in the FUSE open by now or soon: its cancel is
	 * answered at once all the same. */
	sleep_ms(500);
	dmaload_set_timeout(dl, 5000);
	if (dmaload_cancel(dl, ids[0], &cid) == 0)
		r = dmaload_wait(dl, ids[0], &ev, NULL, NULL);
	dprintf(wfd, "sent %d, cancel: %s\n", sent, r == 0 && ev.type == DMALOAD_EV_ERROR &&
		ev.err == ECANCELED ? "ECANCELED" : lc_event_str(&ev));
	/* dl stays open: the loads stay the daemon's until it is killed */
}

static void hang_open(void)
{
	struct attacker a;
	char rep[256];
	int stuck = -1;

	if (!hang_up) {
		check_skip("%s", hang_why);
		return;
	}
	if (!attacker_start(&a, hang_attack, NULL))
		return;
	attacker_report(&a, 15000, rep, sizeof(rep));
	if (!CHECKF(strncmp(rep, "sent ", 5) == 0 && atoi(rep + 5) == N_HANG,
		    "attacker: %s", rep[0] ? rep : "no report"))
		goto out;
	CHECKF(strstr(rep, "cancel: ECANCELED"), "attacker's cancel of a hanging load: %s",
	       rep);
	/* Let its opens reach the FUSE server and the pool grow, then count them. */
	for (uint64_t until = now_ms() + 3000; now_ms() < until; sleep_ms(50)) {
		stuck = threads_in_fuse(d.pid);
		if (stuck >= PER_UID)
			break;
	}
	victim_loads(3);
	stuck = threads_in_fuse(d.pid);
	CHECKF(stuck <= PER_UID, "%d of the daemon's threads wait in FUSE for nobody, more "
	       "than workers_per_uid (%d)", stuck, PER_UID);
	if (stuck == 0)
		fprintf(stderr, "# no thread's wchan names FUSE: the cap is not observed\n");
out:
	attacker_stop(&a);
	/* The abort ends every hanging open: the tasks end, the fds come back. */
	fusefs_unmount(&hang_fs);
	hang_up = false;
	CHECK_SETTLED(&d, 10000);
}

/* ---- hang-flush -------------------------------------------------------------------- */

static struct fusefs flush_fs = { .pid = -1 };

static void flush_attack(void *arg, int wfd)
{
	struct dl_hello h = { .version = DL_PROTO_VERSION };
	struct raw_msg *rm = raw_msg_new();
	int fd = open(flush_fs.file, O_RDONLY | O_CLOEXEC), s = raw_connect(d.sock);
	int many[DL_MAX_FDS + 1];

	if (fd < 0 || s < 0 || !rm) {
		dprintf(wfd, "FAIL open %s or connect: %s\n", flush_fs.file,
			strerror(fd < 0 ? errno : -s));
		return;
	}
	if (raw_send(s, DL_HELLO, 1, &h, sizeof(h), NULL, 0, NULL, 0) < 0 ||
	    raw_recv(s, rm, 5000) != 1) {
		dprintf(wfd, "FAIL HELLO\n");
		return;
	}
	for (int i = 0; i < DL_MAX_FDS + 1; i++)
		many[i] = fd;
	/* Neither is answered with a load: the daemon only has fds to drop. The fd
	 * and the connection stay open (closing either would hang here too). */
	if (raw_send(s, DL_STATUS, 2, NULL, 0, NULL, 0, &fd, 1) < 0 ||
	    raw_send_bytes(s, "x", 1, many, DL_MAX_FDS + 1) < 0) {
		dprintf(wfd, "FAIL send: %s\n", strerror(errno));
		return;
	}
	dprintf(wfd, "sent\n");
}

static void hang_flush(void)
{
	struct attacker a = { .pid = -1, .rfd = -1 };
	char rep[256], why[512];
	int stuck;

	if (fusefs_mount(&flush_fs, d.dir, "hang-flush", FILE_SIZE, why, sizeof(why)) < 0) {
		check_skip("%s", why);
		return;
	}
	if (!attacker_start(&a, flush_attack, NULL))
		goto out;
	attacker_report(&a, 15000, rep, sizeof(rep));
	if (!CHECKF(strcmp(rep, "sent\n") == 0, "attacker: %s", rep[0] ? rep : "no report"))
		goto out;
	sleep_ms(300);		/* the drops reach the FUSE server */
	victim_loads(3);
	stuck = threads_in_fuse(d.pid);
	CHECKF(stuck <= PER_UID, "%d of the daemon's threads wait in FUSE flushes for "
	       "nobody, more than workers_per_uid (%d)", stuck, PER_UID);
	if (stuck == 0)
		fprintf(stderr, "# no thread's wchan names FUSE: the flushes were not seen\n");
out:
	/* The abort first: the attacker's own exit closes its fd, a flush too. */
	fusefs_unmount(&flush_fs);
	attacker_stop(&a);
	CHECK_SETTLED(&d, 10000);
}

/* ---- leases ----------------------------------------------------------------------- */

static bool lease_break_set(const char *v)
{
	int fd = open(LEASE_PATH, O_WRONLY | O_CLOEXEC);
	bool ok;

	if (fd < 0)
		return false;
	ok = write(fd, v, strlen(v)) == (ssize_t)strlen(v);
	close(fd);
	return ok;
}

static void lease_restore(void)
{
	if (lease_was[0])
		lease_break_set(lease_was);
	lease_was[0] = '\0';
}

/* The watchdog ends a stuck case with _exit: the sysctl goes back and the FUSE
 * connection is aborted first. */
static void on_watchdog_kill(void)
{
	lease_restore();
	if (attacker_pid > 0)
		kill(attacker_pid, SIGKILL);
	fusefs_unmount(&hang_fs);
	fusefs_unmount(&read_fs);
	fusefs_unmount(&open_fs);
	fusefs_unmount(&flush_fs);
}

static void lease_attack(void *arg, int wfd)
{
	struct dmaload *dl = NULL;
	int fds[N_LEASE], n_lease = 0, n_ok = 0, r;
	uint64_t ids[N_LEASE], t0, worst = 0;
	char first[DL_ERRMSG_MAX + 64] = "";

	/* The kernel tells a holder to let go with SIGIO, whose default ends it. */
	signal(SIGIO, SIG_IGN);
	for (int i = 0; i < N_LEASE; i++) {
		char p[PATH_MAX + 16];

		snprintf(p, sizeof(p), "%s/f%d", lease_dir, i);
		fds[i] = open(p, O_RDONLY | O_CLOEXEC);
		if (fds[i] >= 0 && fcntl(fds[i], F_SETLEASE, F_WRLCK) == 0)
			n_lease++;
	}
	if (n_lease != N_LEASE) {
		dprintf(wfd, "FAIL %d of %d leases taken: %s\n", n_lease, N_LEASE,
			strerror(errno));
		return;
	}
	r = dmaload_connect(&dl, d.sock, "nobody-lease");
	if (r < 0) {
		dprintf(wfd, "FAIL connect as nobody: %s\n", strerror(-r));
		return;
	}
	dmaload_set_timeout(dl, (LEASE_BREAK_S + 10) * 1000);
	t0 = now_ms();
	for (int i = 0; i < N_LEASE; i++) {
		char p[PATH_MAX + 16];

		snprintf(p, sizeof(p), "%s/f%d", lease_dir, i);
		if (dmaload_load_path(dl, p, NULL, &ids[i]) < 0) {
			dprintf(wfd, "FAIL load %s not sent\n", p);
			return;
		}
	}
	for (int i = 0; i < N_LEASE; i++) {
		struct dmaload_event ev = { .fd = -1 };

		r = dmaload_wait(dl, ids[i], &ev, NULL, NULL);
		if (now_ms() - t0 > worst)
			worst = now_ms() - t0;
		if (r == 0 && ev.type == DMALOAD_EV_ERROR &&
		    ev.err == EWOULDBLOCK && strstr(ev.message, "lease"))
			n_ok++;
		else if (!first[0])
			snprintf(first, sizeof(first), "r=%d %s", r, lc_event_str(&ev));
		if (ev.type == DMALOAD_EV_DONE && ev.fd >= 0)
			close(ev.fd);
	}
	dprintf(wfd, "ok %d of %d in %llu ms%s%s\n", n_ok, N_LEASE,
		(unsigned long long)worst, first[0] ? "; first other: " : "", first);
}

static void leases(void)
{
	struct attacker a;
	char rep[512], v[32] = "";
	unsigned long ms = 0;
	int ok = 0, fd;

	fd = open("/proc/sys/fs/leases-enable", O_RDONLY | O_CLOEXEC);
	if (fd >= 0 && read(fd, v, sizeof(v) - 1) > 0 && v[0] == '0') {
		close(fd);
		check_skip("leases are off (fs.leases-enable = 0)");
		return;
	}
	if (fd >= 0)
		close(fd);
	memset(v, 0, sizeof(v));
	fd = open(LEASE_PATH, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || read(fd, v, sizeof(v) - 1) <= 0) {
		if (fd >= 0)
			close(fd);
		check_skip("%s: %s", LEASE_PATH, strerror(errno));
		return;
	}
	close(fd);
	v[strcspn(v, "\n")] = '\0';
	snprintf(lease_was, sizeof(lease_was), "%s", v);
	snprintf(v, sizeof(v), "%d", LEASE_BREAK_S);
	if (!CHECKF(lease_break_set(v), "cannot set %s", LEASE_PATH))
		return;
	if (!attacker_start(&a, lease_attack, NULL))
		goto out;
	victim_loads(3);
	attacker_report(&a, (LEASE_BREAK_S + 15) * 1000, rep, sizeof(rep));
	if (CHECKF(sscanf(rep, "ok %d of %*d in %lu ms", &ok, &ms) == 2, "attacker: %s",
		   rep[0] ? rep : "no report")) {
		CHECKF(ok == N_LEASE, "%d of %d leased loads got ERROR EWOULDBLOCK naming "
		       "the lease: %s", ok, N_LEASE, rep);
		CHECKF(ms < LEASE_BREAK_S * 1000ul, "the answers took %lu ms: the opens "
		       "waited for the lease break (%d s)", ms, LEASE_BREAK_S);
	}
	attacker_stop(&a);
out:
	lease_restore();
	CHECK_SETTLED(&d, 10000);
}

/* ---- stop while a read hangs ------------------------------------------------------ */

static void stop_hanging(void)
{
	static const char *const names[] = { "reader", "reader-buffered", "opener", "idle" };
	struct test_daemon d2;
	struct dmaload *dl[4] = { NULL };
	uint64_t ids[3], t0;
	char why[512], sub[PATH_MAX];
	int status = 0;
	bool reaped = false;

	if (!CHECKF(daemon_start_more(&d2, SUITE "-stop", NULL,
				      "[daemon]\nstop_timeout_s = 2\n", why,
				      sizeof(why)) == 0, "%s", why)) {
		daemon_cleanup(&d2);
		return;
	}
	snprintf(sub, sizeof(sub), "%s/o", d2.dir);
	if (fusefs_mount(&read_fs, d2.dir, "hang-read", FILE_SIZE, why, sizeof(why)) < 0 ||
	    mkdir(sub, 0755) < 0 ||
	    fusefs_mount(&open_fs, sub, "hang-open", FILE_SIZE, why, sizeof(why)) < 0) {
		check_skip("%s", why);
		goto out;
	}
	for (int i = 0; i < 4; i++) {
		if (!(dl[i] = lc_connect(&d2, names[i])))
			goto out;
		dmaload_set_timeout(dl[i], 10000);
	}
	/* One by path, one buffered by path with another connection: both read. The
	 * third hangs in its open, on a worker. */
	if (!CHECK(dmaload_load_path(dl[0], read_fs.file, NULL, &ids[0]) == 0))
		goto out;
	{
		struct dmaload_opts o;

		dmaload_opts_init(&o);
		o.method = DL_METHOD_BUFFERED;
		if (!CHECK(dmaload_load_path(dl[1], read_fs.file, &o, &ids[1]) == 0))
			goto out;
	}
	if (!CHECK(dmaload_load_path(dl[2], open_fs.file, NULL, &ids[2]) == 0))
		goto out;
	/* Until all are stuck: in a read, in the worker that plans it, in the open. */
	sleep_ms(1000);
	t0 = now_ms();
	kill(d2.pid, SIGTERM);
	for (int i = 0; i < 3; i++) {
		struct dmaload_event ev = { .fd = -1 };
		int r = dmaload_wait(dl[i], ids[i], &ev, NULL, NULL);

		CHECKF(ev.type == DMALOAD_EV_ERROR && ev.err == ESHUTDOWN,
		       "%s: expected ERROR ESHUTDOWN, got r=%d %s", names[i], r,
		       lc_event_str(&ev));
	}
	{
		struct dmaload_event ev = { .fd = -1 };
		int r = dmaload_next_event(dl[3], &ev, 10000);

		CHECKF(r < 0, "the idle client: expected its connection closed, got %d", r);
	}
	CHECKF(now_ms() - t0 < 5000, "the clients were answered %llu ms after SIGTERM",
	       (unsigned long long)(now_ms() - t0));
	CHECKF(access(d2.sock, F_OK) < 0, "the socket is still there after SIGTERM");
	/* Past the grace period: it gave up on the stuck calls, and waits for the
	 * kernel to let them go. */
	CHECK(daemon_log_wait(&d2, "stuck in the kernel", 0, 6000));
	t0 = now_ms();
	fusefs_unmount(&read_fs);
	fusefs_unmount(&open_fs);
	while (!(reaped = daemon_reap(&d2, &status)) && now_ms() - t0 < 5000)
		sleep_ms(20);
	if (CHECKF(reaped, "the daemon had not exited 5 s after the FUSE aborts"))
		CHECKF(WIFEXITED(status) && WEXITSTATUS(status) == 0, "exit status 0x%x",
		       status);
out:
	for (int i = 0; i < 4; i++)
		if (dl[i])
			dmaload_close(dl[i]);
	fusefs_unmount(&read_fs);
	fusefs_unmount(&open_fs);
	if (d2.pid > 0) {
		if (check_failed())
			daemon_log_tail(&d2, 30);
		daemon_stop(&d2);
	}
	daemon_cleanup(&d2);
	check_set_fail_hook(NULL, NULL);
}

/* ---- setup ------------------------------------------------------------------------ */

static bool setup(void)
{
	int r;

	snprintf(root_file, sizeof(root_file), "%s/root-file", d.dir);
	snprintf(lease_dir, sizeof(lease_dir), "%s/nobody", d.dir);
	if ((r = file_make(root_file, FILE_SIZE, ROOT_SEED, 0600)) < 0)
		return CHECKF(false, "file_make: %s", strerror(-r));
	if (!CHECKF(mkdir(lease_dir, 0755) == 0 && chown(lease_dir, NOBODY, NOBODY) == 0,
		    "%s: %s", lease_dir, strerror(errno)))
		return false;
	for (int i = 0; i < N_LEASE; i++) {
		char p[PATH_MAX + 16];

		snprintf(p, sizeof(p), "%s/f%d", lease_dir, i);
		if ((r = file_make(p, FILE_SIZE, 100 + i, 0644)) < 0 ||
		    chown(p, NOBODY, NOBODY) < 0)
			return CHECKF(false, "%s: %s", p, strerror(r < 0 ? -r : errno));
	}
	hang_fs.pid = -1;
	hang_up = fusefs_mount(&hang_fs, d.dir, "hang-open", FILE_SIZE, hang_why,
			       sizeof(hang_why)) == 0;
	return true;
}

int main(void)
{
	check_init(SUITE);
	check_add_undo_hook(on_watchdog_kill);
	hang_fs.pid = -1;
	if (geteuid() != 0) {
		check_skip_case("worker pool and stop checks", "needs root (the daemon must run as root, attackers as nobody)");
		return 0;
	}
	if (!daemon_start_case(&d, SUITE, NULL, NULL))
		return 1;
	setup();
	if (!check_end()) {
		fusefs_unmount(&hang_fs);
		daemon_cleanup(&d);
		return 1;
	}
	daemon_baseline(&d);

	CASE(hang_open(), "nobody's %d loads hang in FUSE opens: root's loads complete, "
	     "nobody holds at most workers_per_uid threads, all ends at the abort", N_HANG);
	CASE(hang_flush(), "nobody's fds of a file whose close hangs (FUSE flush), sent "
	     "where the daemon drops them: root's loads complete, nobody holds at most "
	     "workers_per_uid threads, all ends at the abort");
	CASE(leases(), "nobody's %d loads of files it holds write leases on: ERROR "
	     "EWOULDBLOCK naming the lease before lease-break-time, root's loads complete",
	     N_LEASE);
	fusefs_unmount(&hang_fs);
	lease_restore();
	daemon_stop_case(&d, "daemon exits 0 on SIGTERM");
	CASE(stop_hanging(), "SIGTERM while FUSE reads and an open hang: every client "
	     "answered (ESHUTDOWN, EOF) within 5 s, exit 0 within 5 s of the FUSE aborts");
	return check_finish();
}
