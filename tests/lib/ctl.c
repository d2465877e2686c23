/*
 * ctl.c: the CLI runner. Runs the dmaload-ctl binary of the build under test against
 * a test daemon's socket, with its stdout and stderr captured through files, and a
 * time limit, for tests that read its output (test-ctl, test-preload).
 */
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"

const char *ctl_binary(void)
{
	const char *p = getenv("DMALOAD_CTL");

	return p && *p ? p : "build/dmaload-ctl";
}

/* Reads up to @len - 1 bytes of @path into @buf, NUL-terminated ("" on failure). */
static void read_text(const char *path, char *buf, size_t len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n = fd >= 0 ? read(fd, buf, len - 1) : -1;

	buf[n > 0 ? n : 0] = '\0';
	if (fd >= 0)
		close(fd);
}

int ctl_run(const char *sock, const char *dir, const char *const *args, int timeout_ms,
	    char *out, size_t out_len, char *err, size_t err_len)
{
	char opath[PATH_MAX], epath[PATH_MAX];
	const char *argv[64];
	uint64_t deadline;
	int n = 0, status;
	pid_t pid;

	argv[n++] = ctl_binary();
	argv[n++] = "--socket";
	argv[n++] = sock;
	while (*args && n < 63)
		argv[n++] = *args++;
	argv[n] = NULL;
	snprintf(opath, sizeof(opath), "%s/ctl.out", dir);
	snprintf(epath, sizeof(epath), "%s/ctl.err", dir);
	fflush(stdout);
	pid = fork();
	if (pid == 0) {
		int o = open(opath, O_WRONLY | O_CREAT | O_TRUNC, 0644);
		int e = open(epath, O_WRONLY | O_CREAT | O_TRUNC, 0644);
		int in = open("/dev/null", O_RDONLY);

		if (o < 0 || e < 0 || in < 0)
			_exit(126);
		dup2(in, 0);
		dup2(o, 1);
		dup2(e, 2);
		alarm(0);
		execv(argv[0], (char **)argv);
		dprintf(2, "exec %s: %s\n", argv[0], strerror(errno));
		_exit(127);
	}
	if (pid < 0)
		return -1;
	deadline = now_ms() + (uint64_t)timeout_ms;
	while (waitpid(pid, &status, WNOHANG) == 0) {
		if (now_ms() > deadline) {
			kill(pid, SIGKILL);
			waitpid(pid, &status, 0);
			snprintf(err, err_len, "timed out");
			return -1;
		}
		sleep_ms(10);
	}
	read_text(opath, out, out_len);
	read_text(epath, err, err_len);
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}
