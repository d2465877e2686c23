/*
 * daemon.c: the test daemon. The real $DMALOADD binary started on its own socket,
 * config file and log in a private temp dir (like tmux's regress/ or dbus-broker's
 * util-broker), watched, stopped with SIGTERM, and its fds counted against a
 * baseline. The integration tests, bench-sched and bench-e2e all start it here.
 *
 * The daemon is a child of the test process with stdin on /dev/null and stdout and
 * stderr appended to its log; every fd above 2 is closed before exec, so the fds it
 * shows in /proc are its own. Its pid is remembered so the watchdog can SIGKILL it,
 * and it gets SIGKILL when the process that started it dies (PR_SET_PDEATHSIG), so a
 * test or bench killed by its time limit leaves no daemon behind.
 */
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"

#define MAX_DAEMONS 8
static pid_t daemon_pids[MAX_DAEMONS];
static unsigned long spawn_nofile;	/* daemon_set_nofile() */

void daemon_set_nofile(unsigned long n)
{
	spawn_nofile = n;
}

static void register_pid(pid_t pid)
{
	for (int i = 0; i < MAX_DAEMONS; i++)
		if (daemon_pids[i] <= 0) {
			daemon_pids[i] = pid;
			return;
		}
}

static void unregister_pid(pid_t pid)
{
	for (int i = 0; i < MAX_DAEMONS; i++)
		if (daemon_pids[i] == pid)
			daemon_pids[i] = 0;
}

/* The watchdog fired: leave no daemon behind. Async-signal-safe. */
static void kill_daemons(void)
{
	for (int i = 0; i < MAX_DAEMONS; i++)
		if (daemon_pids[i] > 0)
			kill(daemon_pids[i], SIGKILL);
}

static void log_tail_hook(void *data)
{
	const struct test_daemon *d = data;

	if (d && d->pid > 0)
		daemon_log_tail(d, getenv("DL_LOG_LINES") ? atoi(getenv("DL_LOG_LINES")) : 30);
}

const char *daemon_binary(void)
{
	const char *p = getenv("DMALOADD");

	return p && *p ? p : "build/dmaloadd";
}

int daemon_write_config(struct test_daemon *d, const char *io_extra)
{
	return daemon_write_config_more(d, io_extra, NULL);
}

int daemon_write_config_more(struct test_daemon *d, const char *io_extra,
			     const char *more)
{
	FILE *f = fopen(d->conf, "we");

	if (!f)
		return -errno;
	fprintf(f, "# written by the dmaloadd test harness\n"
		"[daemon]\n"
		"socket_mode = 0666\n"
		"log_level = debug\n"
		"\n"
		/* Kept buffers are daemon fds held on purpose: the leak probes would see
		 * them. Tests of the cache turn it on with their own [cache] section. */
		"[cache]\n"
		"cache_limit = 0\n"
		"\n"
		"[io]\n"
		"%s", io_extra ? io_extra : "");
	if (more)
		fprintf(f, "\n%s", more);
	if (fclose(f) != 0)
		return -errno;
	return 0;
}

static bool socket_accepts(const char *path)
{
	int s = raw_connect(path);

	if (s < 0)
		return false;
	close(s);
	return true;
}

int daemon_start(struct test_daemon *d, const char *tag, const char *io_extra,
		 char *why, size_t why_len)
{
	return daemon_start_more(d, tag, io_extra, NULL, why, why_len);
}

bool daemon_start_case(struct test_daemon *d, const char *tag, const char *io_extra,
		       const char *more)
{
	char why[512];

	check_begin("daemon starts");
	if (daemon_start_more(d, tag, io_extra, more, why, sizeof(why)) == 0)
		return true;
	check_fail(__FILE__, __LINE__, "%s", why);
	check_end();
	daemon_cleanup(d);
	return false;
}

long daemon_log_size(const struct test_daemon *d)
{
	struct stat st;

	return stat(d->log, &st) == 0 ? (long)st.st_size : 0;
}

bool daemon_reload(struct test_daemon *d, const char *io_extra, const char *more,
		   const char *needle)
{
	long skip = daemon_log_size(d);

	return CHECK_INT(daemon_write_config_more(d, io_extra, more), ==, 0) &&
	       CHECK_INT(kill(d->pid, SIGHUP), ==, 0) &&
	       CHECKF(daemon_log_wait(d, needle, skip, 5000), "no reload log line for %s",
		      needle);
}

bool daemon_log_wait(const struct test_daemon *d, const char *needle, long skip,
		     int timeout_ms)
{
	uint64_t deadline = now_ms() + (uint64_t)timeout_ms;

	for (;;) {
		FILE *f = fopen(d->log, "re");
		char line[4096];
		bool found = false;

		if (f) {
			if (fseek(f, skip, SEEK_SET) == 0)
				while (!found && fgets(line, sizeof(line), f))
					found = strstr(line, needle) != NULL;
			fclose(f);
		}
		if (found)
			return true;
		if (now_ms() > deadline)
			return false;
		sleep_ms(20);
	}
}

/* Makes @d's temp dir and paths. 0, or -errno with the reason in @why. */
static int daemon_prepare(struct test_daemon *d, const char *tag, char *why, size_t why_len)
{
	const char *bin = daemon_binary();
	int r;

	memset(d, 0, sizeof(*d));
	d->pid = -1;
	d->base_fds = d->base_memfds = -1;
	check_set_kill_hook(kill_daemons);
	if (access(bin, X_OK) < 0) {
		snprintf(why, why_len, "daemon binary %s: %s", bin, strerror(errno));
		return -ENOENT;
	}
	r = tdir_create(d->dir, sizeof(d->dir), tag);
	if (r < 0) {
		snprintf(why, why_len, "temp dir: %s", strerror(-r));
		return r;
	}
	snprintf(d->sock, sizeof(d->sock), "%s/sock", d->dir);
	snprintf(d->conf, sizeof(d->conf), "%s/dmaloadd.conf", d->dir);
	snprintf(d->log, sizeof(d->log), "%s/daemon.log", d->dir);
	return 0;
}

/* Starts the daemon on @d's config and socket and waits until the socket accepts. */
static int daemon_spawn(struct test_daemon *d, char *why, size_t why_len)
{
	const char *bin = daemon_binary();
	pid_t parent = getpid();
	uint64_t deadline;
	int r, status;

	d->pid = fork();
	if (d->pid < 0) {
		r = -errno;
		snprintf(why, why_len, "fork: %s", strerror(-r));
		return r;
	}
	if (d->pid == 0) {
		int in = open("/dev/null", O_RDONLY);
		int out = open(d->log, O_WRONLY | O_CREAT | O_APPEND, 0644);

		/* dies with the test; the check covers a parent gone before prctl */
		if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() != parent)
			_exit(125);
		if (in < 0 || out < 0)
			_exit(126);
		dup2(in, 0);
		dup2(out, 1);
		dup2(out, 2);
		syscall(SYS_close_range, 3u, ~0u, 0u);
		if (spawn_nofile) {
			struct rlimit rl = { spawn_nofile, spawn_nofile };

			if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
				_exit(124);
		}
		execl(bin, bin, "--config", d->conf, "--socket", d->sock, (char *)NULL);
		dprintf(2, "exec %s: %s\n", bin, strerror(errno));
		_exit(127);
	}
	register_pid(d->pid);
	check_set_fail_hook(log_tail_hook, d);

	deadline = now_ms() + 20000;
	for (;;) {
		if (socket_accepts(d->sock))
			return 0;
		r = waitpid(d->pid, &status, WNOHANG);
		if (r == d->pid) {
			unregister_pid(d->pid);
			d->pid = -1;
			snprintf(why, why_len, "daemon exited before accepting (status 0x%x)",
				 status);
			daemon_log_tail(d, getenv("DL_LOG_LINES") ? atoi(getenv("DL_LOG_LINES")) : 30);
			return -ECHILD;
		}
		if (now_ms() > deadline) {
			snprintf(why, why_len, "socket %s not accepting after 20 s", d->sock);
			daemon_log_tail(d, getenv("DL_LOG_LINES") ? atoi(getenv("DL_LOG_LINES")) : 30);
			return -ETIMEDOUT;
		}
		sleep_ms(20);
	}
}

int daemon_start_more(struct test_daemon *d, const char *tag, const char *io_extra,
		      const char *more, char *why, size_t why_len)
{
	int r = daemon_prepare(d, tag, why, why_len);

	if (r < 0)
		return r;
	r = daemon_write_config_more(d, io_extra, more);
	if (r < 0) {
		snprintf(why, why_len, "config: %s", strerror(-r));
		return r;
	}
	return daemon_spawn(d, why, why_len);
}

int daemon_start_conf(struct test_daemon *d, const char *tag, const char *conf,
		      char *why, size_t why_len)
{
	int r = daemon_prepare(d, tag, why, why_len);
	FILE *f;

	if (r < 0)
		return r;
	f = fopen(d->conf, "we");
	if (!f)
		r = -errno;
	else if (fputs(conf, f) < 0)
		r = -EIO;
	if (f && fclose(f) != 0 && !r)
		r = -errno;
	if (r < 0) {
		snprintf(why, why_len, "config %s: %s", d->conf, strerror(-r));
		return r;
	}
	return daemon_spawn(d, why, why_len);
}

bool daemon_reap(struct test_daemon *d, int *status)
{
	if (d->pid <= 0 || waitpid(d->pid, status, WNOHANG) != d->pid)
		return false;
	unregister_pid(d->pid);
	d->pid = -1;
	return true;
}

bool daemon_alive(const struct test_daemon *d)
{
	return d->pid > 0 && kill(d->pid, 0) == 0 &&
	       waitpid(d->pid, NULL, WNOHANG) == 0;
}

int daemon_stop(struct test_daemon *d)
{
	uint64_t deadline;
	int status = 0;
	pid_t r;

	if (d->pid <= 0)
		return -1;
	kill(d->pid, SIGTERM);
	deadline = now_ms() + 20000;
	for (;;) {
		r = waitpid(d->pid, &status, WNOHANG);
		if (r == d->pid)
			break;
		if (r < 0 || now_ms() > deadline) {
			kill(d->pid, SIGKILL);
			waitpid(d->pid, &status, 0);
			unregister_pid(d->pid);
			d->pid = -1;
			return -1;
		}
		sleep_ms(20);
	}
	unregister_pid(d->pid);
	d->pid = -1;
	return status;
}

void daemon_log_tail(const struct test_daemon *d, int lines)
{
	char buf[256 * 1024];
	int fd = open(d->log, O_RDONLY | O_CLOEXEC);
	off_t size, start;
	ssize_t n;
	char *p;

	if (fd < 0)
		return;
	size = lseek(fd, 0, SEEK_END);
	start = size > (off_t)sizeof(buf) - 1 ? size - (off_t)sizeof(buf) + 1 : 0;
	n = pread(fd, buf, sizeof(buf) - 1, start);
	close(fd);
	if (n <= 0)
		return;
	for (ssize_t i = 0; i < n; i++)
		if (buf[i] == '\0')
			buf[i] = '?';
	buf[n] = '\0';
	p = buf + n;
	if (p > buf && p[-1] == '\n')
		p--;
	while (p > buf && lines > 0) {
		p--;
		if (*p == '\n')
			lines--;
	}
	if (*p == '\n')
		p++;
	fprintf(stderr, "---- %s (last lines) ----\n", d->log);
	for (char *line = p, *nl; *line; line = nl + 1) {
		nl = strchr(line, '\n');
		if (!nl) {
			fprintf(stderr, "  | %s\n", line);
			break;
		}
		fprintf(stderr, "  | %.*s\n", (int)(nl - line), line);
	}
	fprintf(stderr, "----\n");
}

static void counts(const struct test_daemon *d, int *fds, int *memfds)
{
	int mf = 0, mm = 0;

	*fds = proc_fd_count(d->pid);
	if (proc_memfd_count(d->pid, &mf, &mm) < 0)
		mf = mm = -1000;
	*memfds = mf + mm;
}

void daemon_baseline(struct test_daemon *d)
{
	int fds, memfds, last_fds = -1, last_memfds = -1;
	uint64_t stable_since = now_ms(), deadline = now_ms() + 5000;

	for (;;) {
		counts(d, &fds, &memfds);
		if (fds != last_fds || memfds != last_memfds) {
			last_fds = fds;
			last_memfds = memfds;
			stable_since = now_ms();
		} else if (now_ms() - stable_since >= 300 || now_ms() > deadline) {
			break;
		}
		sleep_ms(25);
	}
	d->base_fds = d->start_fds = fds;
	d->base_memfds = d->start_memfds = memfds;
}

bool daemon_settle_start(struct test_daemon *d, int timeout_ms, char *why, size_t why_len)
{
	d->base_fds = d->start_fds;
	d->base_memfds = d->start_memfds;
	return daemon_settle(d, timeout_ms, why, why_len);
}

bool daemon_settle(struct test_daemon *d, int timeout_ms, char *why, size_t why_len)
{
	uint64_t deadline = now_ms() + (uint64_t)timeout_ms;
	int fds, memfds;

	for (;;) {
		counts(d, &fds, &memfds);
		if (fds == d->base_fds && memfds == d->base_memfds)
			return true;
		if (now_ms() > deadline)
			break;
		sleep_ms(25);
	}
	{
		char desc[768];

		proc_fd_describe(d->pid, desc, sizeof(desc));
		snprintf(why, why_len, "after %d ms: %d fds (baseline %d), %d memfd fds+maps "
			 "(baseline %d); fds: %s", timeout_ms, fds, d->base_fds, memfds,
			 d->base_memfds, desc);
	}
	/* Later cases judge only their own leaks; start_* keep the first baseline. */
	d->base_fds = fds;
	d->base_memfds = memfds;
	return false;
}

void daemon_cleanup(struct test_daemon *d)
{
	if (d->pid > 0) {
		kill(d->pid, SIGKILL);
		waitpid(d->pid, NULL, 0);
		unregister_pid(d->pid);
		d->pid = -1;
	}
	check_set_fail_hook(NULL, NULL);
	if (!getenv("DMALOAD_TEST_KEEP"))
		tdir_remove(d->dir);
}

void daemon_stop_case(struct test_daemon *d, const char *suite_case)
{
	int status;

	check_begin("%s", suite_case);
	if (!CHECKF(daemon_alive(d), "daemon is not running any more"))
		goto out;
	status = daemon_stop(d);
	if (status == -1)
		check_fail(__FILE__, __LINE__,
			   "daemon did not exit within 20 s of SIGTERM (killed)");
	else if (WIFSIGNALED(status))
		check_fail(__FILE__, __LINE__, "daemon died of signal %d on SIGTERM",
			   WTERMSIG(status));
	else
		CHECKF(WEXITSTATUS(status) == 0, "daemon exited with status %d on SIGTERM",
		       WEXITSTATUS(status));
out:
	if (check_failed())
		daemon_log_tail(d, 40);
	check_set_fail_hook(NULL, NULL);
	check_end();
	daemon_cleanup(d);
}

static struct test_daemon *signal_daemon;

static void kill_on_signal(int sig)
{
	if (signal_daemon && signal_daemon->pid > 0)
		kill(signal_daemon->pid, SIGKILL);
	signal(sig, SIG_DFL);
	raise(sig);
}

void daemon_kill_on_signal(struct test_daemon *d)
{
	signal_daemon = d;
	signal(SIGINT, kill_on_signal);
	signal(SIGTERM, kill_on_signal);
	signal(SIGHUP, kill_on_signal);
}

int bench_options(int argc, char **argv, bool *quick, const char **rows)
{
	int i = 1;

	for (; i < argc && argv[i][0] == '-'; i++) {
		if (strcmp(argv[i], "--quick") == 0)
			*quick = true;
		else if (strcmp(argv[i], "--rows") == 0 && i + 1 < argc)
			*rows = argv[++i];
		else
			break;
	}
	return i;
}

bool name_listed(const char *list, const char *name)
{
	size_t n = strlen(name);

	for (const char *p = list; (p = strstr(p, name)); p += n)
		if ((p == list || p[-1] == ',') && (p[n] == ',' || !p[n]))
			return true;
	return false;
}
