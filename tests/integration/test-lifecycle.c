/*
 * test-lifecycle.c: starting and stopping dmaloadd.
 *
 * A bad config (unknown key, bad value, missing file) makes the daemon exit non-zero
 * at once with FILE:LINE (or the file's name) on stderr; SIGTERM makes a running
 * daemon exit 0, also with loads in flight, whose client sees its connection end; a
 * stale socket file is replaced; a second daemon does not steal a live socket.
 */
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../lib/check.h"
#include "../lib/harness.h"
#include "../lib/loads.h"

#define SUITE "lifecycle"

static char dir[256];
static char errtext[8192];

/* Runs the daemon with @conf on @sock expecting it to exit by itself within 10 s.
 * Returns its wait status (-1: still running after 10 s, then killed); its stderr
 * lands in errtext. */
static int run_daemon_expect_exit(const char *conf, const char *sock)
{
	char epath[PATH_MAX];
	uint64_t deadline;
	int status, fd;
	ssize_t n;
	pid_t pid;

	snprintf(epath, sizeof(epath), "%s/stderr", dir);
	fflush(stdout);
	pid = fork();
	if (pid == 0) {
		int e = open(epath, O_WRONLY | O_CREAT | O_TRUNC, 0644);
		int in = open("/dev/null", O_RDONLY);

		dup2(in, 0);
		dup2(e, 1);
		dup2(e, 2);
		alarm(0);
		execl(daemon_binary(), daemon_binary(), "--config", conf, "--socket", sock,
		      (char *)NULL);
		_exit(127);
	}
	deadline = now_ms() + 10000;
	while (waitpid(pid, &status, WNOHANG) == 0) {
		if (now_ms() > deadline) {
			kill(pid, SIGKILL);
			waitpid(pid, &status, 0);
			status = -1;
			break;
		}
		sleep_ms(10);
	}
	fd = open(epath, O_RDONLY | O_CLOEXEC);
	n = fd >= 0 ? read(fd, errtext, sizeof(errtext) - 1) : 0;
	errtext[n > 0 ? n : 0] = '\0';
	if (fd >= 0)
		close(fd);
	return status;
}

static void bad_config(const char *text, int line)
{
	char conf[PATH_MAX], sock[PATH_MAX], want[PATH_MAX + 16];
	FILE *f;
	int st;

	snprintf(conf, sizeof(conf), "%s/bad.conf", dir);
	snprintf(sock, sizeof(sock), "%s/bad.sock", dir);
	f = fopen(conf, "we");
	if (!CHECK(f))
		return;
	fputs(text, f);
	fclose(f);
	st = run_daemon_expect_exit(conf, sock);
	if (!CHECKF(st != -1, "the daemon kept running with a bad config"))
		return;
	CHECKF(WIFEXITED(st) && WEXITSTATUS(st) != 0, "wait status 0x%x, expected a non-zero exit",
	       st);
	snprintf(want, sizeof(want), "%s:%d", conf, line);
	CHECKF(strstr(errtext, want), "stderr does not name %s: %.300s", want, errtext);
	CHECKF(access(sock, F_OK) != 0, "the socket was created anyway");
}

static void missing_config(void)
{
	char conf[PATH_MAX], sock[PATH_MAX];
	int st;

	snprintf(conf, sizeof(conf), "%s/no-such.conf", dir);
	snprintf(sock, sizeof(sock), "%s/missing.sock", dir);
	st = run_daemon_expect_exit(conf, sock);
	if (!CHECKF(st != -1, "the daemon kept running without its config"))
		return;
	CHECKF(WIFEXITED(st) && WEXITSTATUS(st) != 0, "wait status 0x%x", st);
	CHECKF(strstr(errtext, conf), "stderr does not name the file: %.300s", errtext);
}

/* A directory at the config path: start-up fails naming it, and says what it is
 * (read as a file it would be an empty config: every setting silently at default). */
static void dir_config(void)
{
	char conf[PATH_MAX], sock[PATH_MAX];
	int st;

	snprintf(conf, sizeof(conf), "%s/dir.conf", dir);
	snprintf(sock, sizeof(sock), "%s/dir.sock", dir);
	if (!CHECKF(mkdir(conf, 0755) == 0 || errno == EEXIST, "mkdir: %s", strerror(errno)))
		return;
	st = run_daemon_expect_exit(conf, sock);
	rmdir(conf);
	if (!CHECKF(st != -1, "the daemon kept running with a directory as its config"))
		return;
	CHECKF(WIFEXITED(st) && WEXITSTATUS(st) != 0, "wait status 0x%x", st);
	CHECKF(strstr(errtext, conf) && strstr(errtext, "directory"),
	       "stderr does not name the file and say it is a directory: %.300s", errtext);
	CHECKF(access(sock, F_OK) != 0, "the socket was created anyway");
}

/*
 * The config path of a running daemon (max_queued = 1) replaced by a directory or a
 * FIFO, then SIGHUP: the reload is refused and logged, the running config stays (a
 * second load on one connection still gets EBUSY naming max_queued = 1; read as an
 * empty file it would be 64), and the loop answers STATUS within a second (a FIFO
 * opened for reading would block it until a writer came).
 */
static void hup_not_a_file(bool fifo)
{
	struct raw_msg *rm = raw_msg_new();
	struct dl_load ld = {
		.length = DL_LENGTH_TO_EOF,
		.rate_limit = 1 * MiB,		/* 8 s: still running at the second LOAD */
	};
	char why[512], file[PATH_MAX];
	struct test_daemon d;
	bool busy = false;
	uint64_t t0;
	long skip;
	int s = -1, r;

	if (!CHECKF(daemon_start(&d, fifo ? "hupfifo" : "hupdir", "max_queued = 1\n", why,
				 sizeof(why)) == 0, "daemon_start: %s", why)) {
		daemon_cleanup(&d);
		goto out;
	}
	daemon_baseline(&d);
	snprintf(file, sizeof(file), "%s/slow.bin", d.dir);
	if (!CHECK_OK(file_make(file, 8 * MiB, 11, 0644)))
		goto stop;
	skip = daemon_log_size(&d);
	if (!CHECKF(unlink(d.conf) == 0, "unlink %s: %s", d.conf, strerror(errno)))
		goto stop;
	if (fifo)
		CHECKF(mkfifo(d.conf, 0644) == 0, "mkfifo: %s", strerror(errno));
	else
		CHECKF(mkdir(d.conf, 0755) == 0, "mkdir: %s", strerror(errno));
	CHECK_INT(kill(d.pid, SIGHUP), ==, 0);
	CHECKF(daemon_log_wait(&d, "not a regular file", skip, 5000),
	       "the refusal is not in the log");
	CHECK(daemon_log_wait(&d, "keeping the running config", skip, 1000));

	/* the loop is not stuck: STATUS answered within a second */
	s = raw_connect(d.sock);
	if (!CHECKF(s >= 0, "connect: %s", strerror(-s)))
		goto unblock;
	t0 = now_ms();
	CHECK_OK(raw_send(s, DL_STATUS, 1, NULL, 0, NULL, 0, NULL, 0));
	r = raw_recv(s, rm, 1000);
	CHECKF(r == 1 && rm->m.hdr.type == DL_STATUS_REPLY, "STATUS: %d (type 0x%x) after "
	       "%llu ms", r, r == 1 ? rm->m.hdr.type : 0, (unsigned long long)(now_ms() - t0));

	/* max_queued is still 1 */
	ld.path_len = (uint32_t)strlen(file);
	CHECK_OK(raw_send(s, DL_LOAD, 2, &ld, sizeof(ld), file, strlen(file), NULL, 0));
	CHECK_OK(raw_send(s, DL_LOAD, 3, &ld, sizeof(ld), file, strlen(file), NULL, 0));
	while ((r = raw_recv(s, rm, 5000)) == 1) {
		if (rm->m.hdr.id != 3)
			continue;
		busy = rm->m.hdr.type == DL_ERROR && rm->m.u.error.err == EBUSY &&
		       strstr(raw_error_text(rm), "max_queued = 1");
		CHECKF(busy, "second LOAD: type 0x%x: %s", rm->m.hdr.type,
		       rm->m.hdr.type == DL_ERROR ? raw_error_text(rm) : "");
		break;
	}
	CHECKF(r == 1, "no reply to the second LOAD: %d", r);
	CHECKF(!daemon_log_wait(&d, "reload: [io] max_queued", skip, 1),
	       "the running config was replaced");
unblock:
	/* An old daemon blocked in open() of the FIFO: a writer lets it go on. */
	if (fifo) {
		int w = open(d.conf, O_WRONLY | O_NONBLOCK | O_CLOEXEC);

		if (w >= 0)
			close(w);
	}
	if (s >= 0)
		close(s);
	if (fifo)
		unlink(d.conf);
	else
		rmdir(d.conf);
	daemon_write_config(&d, "max_queued = 1\n");
	CHECK_SETTLED(&d, 10000);
stop:
	r = daemon_stop(&d);
	CHECKF(r != -1 && WIFEXITED(r) && WEXITSTATUS(r) == 0, "SIGTERM: wait status 0x%x",
	       r);
	if (check_failed())
		daemon_log_tail(&d, 30);
	daemon_cleanup(&d);
out:
	raw_msg_free(rm);
}

static void sigterm_idle(void)
{
	struct test_daemon d;
	char why[512];
	int st;

	if (!CHECKF(daemon_start(&d, "lc-idle", NULL, why, sizeof(why)) == 0, "%s", why)) {
		daemon_cleanup(&d);
		return;
	}
	st = daemon_stop(&d);
	CHECKF(st != -1, "no exit within 20 s of SIGTERM");
	CHECKF(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0, "wait status 0x%x", st);
	if (check_failed())
		daemon_log_tail(&d, 30);
	daemon_cleanup(&d);
}

/* SIGTERM while a client has big loads in flight: exit 0 soon; the client's pending
 * loads end (ERROR or the connection's end), it is not left hanging. */
static void sigterm_busy(void)
{
	struct test_daemon d;
	struct dmaload *dl = NULL;
	struct dmaload_event ev;
	char why[512], path[PATH_MAX];
	uint64_t id, t0;
	int st, r;

	if (!CHECKF(daemon_start(&d, "lc-busy", NULL, why, sizeof(why)) == 0, "%s", why)) {
		daemon_cleanup(&d);
		return;
	}
	snprintf(path, sizeof(path), "%s/big", d.dir);
	r = file_make(path, 256 * MiB, 5, 0644);
	if (!CHECKF(r == 0, "file_make: %s", strerror(-r)))
		goto out;
	dl = lc_connect(&d, "busy");
	if (!dl)
		goto out;
	for (int i = 0; i < 4; i++)
		CHECK_OK(dmaload_load_path(dl, path, NULL, &id));
	r = dmaload_next_event(dl, &ev, 10000);
	CHECKF(r == 1, "no first event: %d", r);
	if (r == 1 && ev.type == DMALOAD_EV_DONE)
		close(ev.fd);
	t0 = now_ms();
	st = daemon_stop(&d);
	CHECKF(st != -1, "no exit within 20 s of SIGTERM with loads in flight");
	CHECKF(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0, "wait status 0x%x", st);
	CHECKF(now_ms() - t0 < 10000, "exit took %llu ms", (unsigned long long)(now_ms() - t0));
	/* the client sees the end: every remaining event, then the connection's end */
	for (int i = 0; i < 20; i++) {
		r = dmaload_next_event(dl, &ev, 5000);
		if (r != 1)
			break;
		if (ev.type == DMALOAD_EV_DONE)
			close(ev.fd);
	}
	CHECKF(r < 0, "after the daemon's exit: next_event = %d, expected an error", r);
out:
	if (check_failed())
		daemon_log_tail(&d, 30);
	if (dl)
		dmaload_close(dl);
	daemon_cleanup(&d);
}

/* A socket file left behind by a dead daemon does not stop a new one. */
static void stale_socket(void)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	char path[96];
	int s, r, st;

	/* make the dir and a dead socket in it */
	if (!CHECK_OK(tdir_create(path, sizeof(path), "lc-stale")))
		return;
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/sock", path);
	s = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	r = bind(s, (struct sockaddr *)&sa, sizeof(sa));
	close(s);
	if (!CHECKF(r == 0, "bind: %s", strerror(errno))) {
		tdir_remove(path);
		return;
	}
	/* start a daemon there by hand: daemon_start makes its own dir, so reuse ours */
	{
		char conf[256];
		FILE *f;
		pid_t pid;
		uint64_t deadline = now_ms() + 20000;
		bool up = false;

		snprintf(conf, sizeof(conf), "%s/dmaloadd.conf", path);
		f = fopen(conf, "we");
		fputs("[daemon]\nlog_level = debug\n", f);
		fclose(f);
		fflush(stdout);
		pid = fork();
		if (pid == 0) {
			char log[256];
			int fd;

			snprintf(log, sizeof(log), "%s/daemon.log", path);
			fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);
			dup2(fd, 1);
			dup2(fd, 2);
			alarm(0);
			execl(daemon_binary(), daemon_binary(), "--config", conf, "--socket",
			      sa.sun_path, (char *)NULL);
			_exit(127);
		}
		while (now_ms() < deadline && !up) {
			int c = raw_connect(sa.sun_path);

			if (c >= 0) {
				close(c);
				up = true;
			} else if (waitpid(pid, &st, WNOHANG) == pid) {
				break;
			} else {
				sleep_ms(20);
			}
		}
		CHECKF(up, "the daemon did not come up over a stale socket file");
		kill(pid, SIGTERM);
		waitpid(pid, &st, 0);
		CHECKF(WIFEXITED(st) && WEXITSTATUS(st) == 0, "wait status 0x%x", st);
	}
	tdir_remove(path);
}

/* A second daemon on a live daemon's socket fails and leaves the first one working. */
static void live_socket(void)
{
	struct test_daemon d;
	struct dmaload *dl;
	char why[512];
	int st;

	if (!CHECKF(daemon_start(&d, "lc-live", NULL, why, sizeof(why)) == 0, "%s", why)) {
		daemon_cleanup(&d);
		return;
	}
	st = run_daemon_expect_exit(d.conf, d.sock);
	CHECKF(st != -1, "a second daemon on the same socket kept running");
	CHECKF(st == -1 || (WIFEXITED(st) && WEXITSTATUS(st) != 0),
	       "second daemon: wait status 0x%x, expected a non-zero exit", st);
	dl = lc_connect(&d, "first-still-there");
	if (dl)
		dmaload_close(dl);
	st = daemon_stop(&d);
	CHECKF(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0, "first daemon: status 0x%x",
	       st);
	daemon_cleanup(&d);
}

/* The daemon made the socket; it removes it when it exits. */
static void socket_removed(void)
{
	struct test_daemon d;
	char why[512];
	int st;

	if (!CHECKF(daemon_start(&d, "lc-rm", NULL, why, sizeof(why)) == 0, "%s", why)) {
		daemon_cleanup(&d);
		return;
	}
	st = daemon_stop(&d);
	CHECKF(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0, "wait status 0x%x", st);
	CHECKF(access(d.sock, F_OK) != 0, "%s still exists after exit", d.sock);
	daemon_cleanup(&d);
}

int main(void)
{
	check_init(SUITE);
	if (tdir_create(dir, sizeof(dir), "lifecycle") < 0) {
		check_begin("temp dir");
		check_fail(__FILE__, __LINE__, "tdir_create: %s", strerror(errno));
		check_end();
		return 1;
	}

	CASE(bad_config("# comment\n[daemon]\nlog_level = info\n\n[io]\nno_such_key = 1\n", 6),
	     "unknown key: exit non-zero, FILE:LINE on stderr");
	CASE(bad_config("[daemon]\n\nworkers = lots\n", 3),
	     "bad value: exit non-zero, FILE:LINE on stderr");
	CASE(bad_config("[nosuchsection]\nx = 1\n", 2),
	     "unknown section: exit non-zero, FILE:LINE on stderr");
	CASE(missing_config(), "missing config file: exit non-zero, names the file");
	CASE(dir_config(), "a directory as config: exit non-zero, names it");
	CASE(hup_not_a_file(false), "SIGHUP with a directory at the config path: refused, "
	     "logged, old settings kept");
	CASE(hup_not_a_file(true), "SIGHUP with a FIFO at the config path: refused, logged, "
	     "STATUS answered within 1 s, old settings kept");
	CASE(sigterm_idle(), "SIGTERM: exit 0");
	CASE(sigterm_busy(), "SIGTERM with 4 x 256 MiB loads in flight: exit 0, client told");
	CASE(stale_socket(), "a stale socket file is replaced");
	CASE(live_socket(), "a second daemon does not take over a live socket");
	CASE(socket_removed(), "the socket file is removed on exit");

	tdir_remove(dir);
	return check_finish();
}
