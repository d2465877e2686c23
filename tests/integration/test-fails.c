/*
 * test-fails.c: failing requests per uid (issue 12: no client can spin the daemon).
 * Against one daemon with [quota] max_failures_per_uid = 20:
 *
 *   - nobody resends a load of a file that does not exist as fast as it is answered
 *     (ENOENT each time), for 2 s: it gets at most the bucket's 20 plus 20 a second
 *     of answers (not thousands), and the log names the key. Meanwhile uid 1, which
 *     loads a real file every 40 ms and fails now and then (3 loads of a missing
 *     file), gets every answer at once (the slowest under 250 ms, a fifth of one
 *     paced second): one uid's failures do not slow another's requests. Within 2 s
 *     of its last failure nobody is read again and its load of a real file is done.
 *   - root is exempt: 100 failing loads in a row are answered in under 2 s.
 *   - SIGHUP to max_failures_per_uid = 0 (no limit): nobody's flood gets more than
 *     200 answers in 1 s, so the pacing above was the limit's doing.
 *
 * Needs root (nobody and uid 1 clients); SKIPs otherwise.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../lib/check.h"
#include "../lib/harness.h"

#define SUITE "fails"
#define NOBODY 65534
#define GOOD_UID 1
#define RATE 20
#define FLOOD_MS 2000
#define GOOD_GAP_MS 40
#define GOOD_MAX_MS 250

static struct test_daemon d;
static char missing[PATH_MAX + 16], real_file[PATH_MAX + 16];

/* What a child reports through its pipe. */
struct report {
	int failed;		/* non-zero: msg says what went wrong */
	unsigned answers;	/* ERRORs (flood) or DONEs (good) received */
	unsigned fails;		/* the good uid's ERRORs for its missing file */
	double max_ms;		/* the slowest answer */
	char msg[256];
};

/* One LOAD of @path on @s and its final answer: 1 DONE, 0 ERROR ENOENT, -1 other
 * (@r->msg set). The time it took counts for @r->max_ms. */
static int load_once(int s, uint64_t id, const char *path, struct raw_msg *rm,
		     struct report *r)
{
	double t0 = 1e3 * now_s();
	int res = raw_send_load(s, id, path, -1, 0, 0, 0);

	if (res == 0)
		res = raw_wait_final(s, id, rm, 5000);
	if (1e3 * now_s() - t0 > r->max_ms)
		r->max_ms = 1e3 * now_s() - t0;
	if (res == 1 && rm->m.hdr.type == DL_DONE) {
		raw_msg_clear(rm);
		return 1;
	}
	if (res == 1 && rm->m.hdr.type == DL_ERROR && rm->m.u.error.err == ENOENT) {
		raw_msg_clear(rm);
		return 0;
	}
	snprintf(r->msg, sizeof(r->msg), "load %llu of %s: %s", (unsigned long long)id, path,
		 res < 0 ? strerror(-res) : res == 0 ? "connection closed" :
		 rm->m.hdr.type == DL_ERROR ? raw_error_text(rm) : "unexpected reply");
	raw_msg_clear(rm);
	return -1;
}

/* A connection and a message buffer for a child's loads; false (@r failed) if not. */
static bool session(struct report *r, int *s, struct raw_msg **rm)
{
	*rm = raw_msg_new();
	*s = raw_connect(d.sock);
	if (*s >= 0 && *rm)
		return true;
	snprintf(r->msg, sizeof(r->msg), "connect: %s", strerror(*s < 0 ? -*s : ENOMEM));
	r->failed = 1;
	return false;
}

/* nobody: failing loads for @ms, each sent when the last was answered. */
static void flood(struct report *r, int ms)
{
	uint64_t end = now_ms() + (uint64_t)ms, id = 0;
	struct raw_msg *rm;
	int s;

	if (!session(r, &s, &rm))
		return;
	while (now_ms() < end) {
		int res = load_once(s, ++id, missing, rm, r);

		if (res != 0) {
			r->failed = 1;
			break;
		}
		/* an answer that came after the end is not counted in the window */
		if (now_ms() <= end)
			r->answers++;
	}
	close(s);
	raw_msg_free(rm);
}

/* uid 1: a real load every GOOD_GAP_MS for @ms, and 3 failing ones among them. */
static void good(struct report *r, int ms)
{
	uint64_t end = now_ms() + (uint64_t)ms, id = 0;
	struct raw_msg *rm;
	int s;

	if (!session(r, &s, &rm))
		return;
	while (now_ms() < end) {
		bool miss = id % 10 == 5 && r->fails < 3;
		int res = load_once(s, ++id, miss ? missing : real_file, rm, r);

		if (res < 0 || res != !miss) {
			if (res >= 0)
				snprintf(r->msg, sizeof(r->msg), "load %llu: %s", (unsigned long long)id,
					 res ? "DONE for a missing file" : "ENOENT for a real file");
			r->failed = 1;
			break;
		}
		if (miss)
			r->fails++;
		else
			r->answers++;
		sleep_ms(GOOD_GAP_MS);
	}
	close(s);
	raw_msg_free(rm);
}

/* Forks a child that becomes @uid and runs @fn for @ms; its report comes through
 * @pipefd's read end. Returns the pid, or -1. */
static pid_t spawn(uid_t uid, void (*fn)(struct report *r, int ms), int ms, int *pipefd)
{
	int p[2];
	pid_t pid;

	if (pipe2(p, O_CLOEXEC) < 0)
		return -1;
	pid = fork();
	if (pid == 0) {
		struct report r = { 0 };

		close(p[0]);
		if (child_drop(uid, 0, r.msg, sizeof(r.msg)) < 0)
			r.failed = 1;
		else
			fn(&r, ms);
		if (write(p[1], &r, sizeof(r)) != sizeof(r))
			_exit(2);
		_exit(0);
	}
	close(p[1]);
	if (pid < 0) {
		close(p[0]);
		return -1;
	}
	*pipefd = p[0];
	return pid;
}

/* The child's report; false (a CHECK failed) if it has none or it failed. */
static bool collect(pid_t pid, int fd, const char *who, struct report *r)
{
	ssize_t n = read(fd, r, sizeof(*r));

	close(fd);
	waitpid(pid, NULL, 0);
	return CHECKF(n == (ssize_t)sizeof(*r), "%s: no report", who) &&
	       CHECKF(!r->failed, "%s: %s", who, r->msg);
}

/* A nobody load of the real file, done within @ms. */
static int nobody_loads(void *arg, char *msg, size_t len)
{
	struct raw_msg *rm = raw_msg_new();
	struct report r = { 0 };
	double t0;
	int s, res;

	if (child_drop(NOBODY, 0, msg, len) < 0)
		return 1;
	s = raw_connect(d.sock);
	if (s < 0 || !rm) {
		snprintf(msg, len, "connect failed");
		return 1;
	}
	t0 = 1e3 * now_s();
	res = load_once(s, 1, real_file, rm, &r);
	if (res != 1 || 1e3 * now_s() - t0 > *(int *)arg) {
		snprintf(msg, len, "%s", res != 1 ? r.msg : "answered too late");
		return 1;
	}
	close(s);
	raw_msg_free(rm);
	return 0;
}

static void paced(void)
{
	struct report fr = { 0 }, gr = { 0 };
	long skip = daemon_log_size(&d);
	int ffd = -1, gfd = -1, within = 2500;
	pid_t fp = spawn(NOBODY, flood, FLOOD_MS, &ffd);
	pid_t gp = spawn(GOOD_UID, good, FLOOD_MS, &gfd);
	char msg[512] = "", needle[64];

	if (!CHECKF(fp > 0 && gp > 0, "fork: %s", strerror(errno)))
		return;
	if (collect(fp, ffd, "nobody", &fr)) {
		printf("# nobody: %u failing loads answered in %d ms (slowest %.0f ms)\n",
		       fr.answers, FLOOD_MS, fr.max_ms);
		CHECKF(fr.answers <= RATE + RATE * FLOOD_MS / 1000 + 10, "nobody got %u "
		       "failing loads answered in %d ms: not paced at %d a second",
		       fr.answers, FLOOD_MS, RATE);
		CHECKF(fr.answers >= RATE, "nobody got only %u answers: paced too hard",
		       fr.answers);
	}
	if (collect(gp, gfd, "uid 1", &gr)) {
		printf("# uid 1: %u loads done, %u failed as meant, slowest %.1f ms\n",
		       gr.answers, gr.fails, gr.max_ms);
		CHECKF(gr.fails == 3 && gr.answers >= FLOOD_MS / GOOD_GAP_MS / 4,
		       "uid 1 made only %u loads and %u failing ones", gr.answers, gr.fails);
		CHECKF(gr.max_ms < GOOD_MAX_MS, "uid 1's slowest answer took %.1f ms: it "
		       "was held for nobody's failures", gr.max_ms);
	}
	snprintf(needle, sizeof(needle), "uid %d: ", NOBODY);
	CHECKF(daemon_log_wait(&d, "max_failures_per_uid = 20", skip, 1000) &&
	       daemon_log_wait(&d, needle, skip, 1000), "no log line naming uid %d and "
	       "max_failures_per_uid", NOBODY);
	CHECKF(child_run(nobody_loads, &within, msg, sizeof(msg), 10000) == 0,
	       "nobody after its flood: %s", msg);
}

static void root_exempt(void)
{
	struct raw_msg *rm = raw_msg_new();
	struct report r = { 0 };
	uint64_t t0 = now_ms();
	int s = raw_connect(d.sock);

	if (!CHECKF(s >= 0 && rm, "connect failed"))
		goto out;
	for (int i = 0; i < 100; i++)
		if (!CHECKF(load_once(s, (uint64_t)i + 1, missing, rm, &r) == 0, "%s", r.msg))
			goto out;
	CHECKF(now_ms() - t0 < 2000, "root's 100 failing loads took %llu ms: paced",
	       (unsigned long long)(now_ms() - t0));
out:
	if (s >= 0)
		close(s);
	raw_msg_free(rm);
}

static void no_limit(void)
{
	struct report fr = { 0 };
	int ffd = -1;
	pid_t fp;

	/* nobody's debt from the first case is paid back by now (2 s at most) */
	if (!daemon_reload(&d, NULL, "[quota]\nmax_failures_per_uid = 0\n",
			   "max_failures_per_uid"))
		return;
	fp = spawn(NOBODY, flood, 1000, &ffd);
	if (!CHECKF(fp > 0, "fork: %s", strerror(errno)))
		return;
	if (collect(fp, ffd, "nobody", &fr)) {
		printf("# nobody, no limit: %u failing loads answered in 1000 ms\n", fr.answers);
		CHECKF(fr.answers > 200, "only %u answers in 1 s without the limit",
		       fr.answers);
	}
}

int main(void)
{
	check_init(SUITE);
	signal(SIGPIPE, SIG_IGN);
	if (geteuid() != 0) {
		check_skip_case("failing requests per uid", "needs root (the clients are nobody and uid 1)");
		return 0;
	}
	if (!daemon_start_case(&d, SUITE, NULL, "[quota]\nmax_failures_per_uid = 20\n"))
		return 1;
	snprintf(missing, sizeof(missing), "%s/missing.bin", d.dir);
	snprintf(real_file, sizeof(real_file), "%s/real.bin", d.dir);
	CHECK_OK(file_make(real_file, 64 << 10, 3, 0644));
	check_end();

	CASE(paced(), "nobody resending failing loads for 2 s is paced at "
	     "max_failures_per_uid = 20 a second (logged) while uid 1's loads are answered "
	     "at once; nobody is read again after");
	CASE(root_exempt(), "root's 100 failing loads in a row are not paced");
	CASE(no_limit(), "SIGHUP to max_failures_per_uid = 0: nobody's flood is not paced");

	daemon_stop_case(&d, "daemon exits 0 on SIGTERM");
	return check_finish();
}
