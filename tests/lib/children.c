/*
 * children.c: running a function in a forked child (a privilege drop, a client that
 * gets killed), with its failure text sent back through a pipe and a time limit.
 */
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"

int child_run(int (*fn)(void *arg, char *msg, size_t len), void *arg,
	      char *msg, size_t len, int timeout_ms)
{
	uint64_t deadline = now_ms() + (uint64_t)timeout_ms;
	int pfd[2], status;
	size_t got = 0;
	pid_t pid;

	msg[0] = '\0';
	if (pipe2(pfd, O_CLOEXEC) < 0) {
		snprintf(msg, len, "pipe: %s", strerror(errno));
		return -1;
	}
	fflush(stdout);
	fflush(stderr);
	pid = fork();
	if (pid < 0) {
		snprintf(msg, len, "fork: %s", strerror(errno));
		close(pfd[0]);
		close(pfd[1]);
		return -1;
	}
	if (pid == 0) {
		char m[1024] = "";
		int r;

		close(pfd[0]);
		alarm(0);
		r = fn(arg, m, sizeof(m));
		if (r) {
			ssize_t w = write(pfd[1], m, strlen(m));
			(void)w;
		}
		_exit(r ? 1 : 0);
	}
	close(pfd[1]);
	for (;;) {
		struct pollfd p = { .fd = pfd[0], .events = POLLIN };
		int64_t left = (int64_t)(deadline - now_ms());
		ssize_t n;

		if (left <= 0) {
			kill(pid, SIGKILL);
			waitpid(pid, &status, 0);
			close(pfd[0]);
			snprintf(msg, len, "child timed out after %d ms", timeout_ms);
			return -ETIMEDOUT;
		}
		if (poll(&p, 1, (int)left) <= 0)
			continue;
		n = read(pfd[0], msg + got, len - 1 - got);
		if (n <= 0)
			break;
		got += (size_t)n;
		if (got >= len - 1)
			break;
	}
	msg[got] = '\0';
	close(pfd[0]);
	waitpid(pid, &status, 0);
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
		return 0;
	if (WIFEXITED(status) && WEXITSTATUS(status) == 1)
		return 1;
	if (!got)
		snprintf(msg, len, "child died: status 0x%x", status);
	return -1;
}

int child_drop(uid_t uid, gid_t extra, char *msg, size_t len)
{
	int r = extra ? setgroups(1, &extra) : setgroups(0, NULL);

	if (r < 0 || setgid(uid) < 0 || setuid(uid) < 0 || prctl(PR_SET_DUMPABLE, 1) < 0) {
		snprintf(msg, len, "dropping privileges: %s", strerror(errno));
		return -1;
	}
	if (getuid() != uid || geteuid() != uid || setuid(0) == 0) {
		snprintf(msg, len, "still privileged after dropping");
		return -1;
	}
	return 0;
}
