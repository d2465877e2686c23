/*
 * check.c: the case bookkeeping behind check.h. One case is open at a time; its first
 * failure message is kept under a mutex so worker threads of the case may check too.
 * The watchdog's FAIL line is formatted at check_begin() time, so the signal handler
 * only has to write() it.
 */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "check.h"

enum case_state { CASE_NONE, CASE_OPEN, CASE_SKIPPED, CASE_FAILED };

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static const char *suite = "?";
static char case_name[512];
static char why[1024];
static enum case_state state = CASE_NONE;
static unsigned n_failed_cases;
static unsigned timeout_s = 60;
static char alarm_line[1024];
static size_t alarm_line_len;

static void (*fail_hook)(void *);
static void *fail_hook_data;
static void (*kill_hook)(void);
static void (*undo_hooks[4])(void);

/* One line, no control characters: a reason must not break the output format. */
static void flatten(char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			*s = ' ';
}

static void on_alarm(int sig)
{
	(void)sig;
	if (alarm_line_len) {
		ssize_t n = write(STDOUT_FILENO, alarm_line, alarm_line_len);
		(void)n;
	}
	for (size_t i = 0; i < sizeof(undo_hooks) / sizeof(undo_hooks[0]); i++)
		if (undo_hooks[i])
			undo_hooks[i]();
	if (kill_hook)
		kill_hook();
	_exit(3);
}

void check_init(const char *name)
{
	const char *t = getenv("CHECK_CASE_TIMEOUT");
	struct sigaction sa = { .sa_handler = on_alarm };

	suite = name;
	if (t && *t)
		timeout_s = (unsigned)strtoul(t, NULL, 10);
	setvbuf(stdout, NULL, _IOLBF, 0);
	sigaction(SIGALRM, &sa, NULL);
}

void check_set_fail_hook(void (*fn)(void *data), void *data)
{
	fail_hook = fn;
	fail_hook_data = data;
}

void check_set_kill_hook(void (*fn)(void))
{
	kill_hook = fn;
}

void check_add_undo_hook(void (*fn)(void))
{
	for (size_t i = 0; i < sizeof(undo_hooks) / sizeof(undo_hooks[0]); i++) {
		if (!undo_hooks[i] || undo_hooks[i] == fn) {
			undo_hooks[i] = fn;
			return;
		}
	}
}

void check_set_timeout(unsigned seconds)
{
	timeout_s = seconds;
}

void check_begin(const char *fmt, ...)
{
	va_list ap;
	int n;

	pthread_mutex_lock(&lock);
	va_start(ap, fmt);
	vsnprintf(case_name, sizeof(case_name), fmt, ap);
	va_end(ap);
	flatten(case_name);
	why[0] = '\0';
	state = CASE_OPEN;
	n = snprintf(alarm_line, sizeof(alarm_line), "FAIL %s: %s: timed out after %u s\n",
		     suite, case_name, timeout_s);
	alarm_line_len = n > 0 && (size_t)n < sizeof(alarm_line) ? (size_t)n : 0;
	pthread_mutex_unlock(&lock);
	alarm(timeout_s);
}

bool check_fail(const char *file, int line, const char *fmt, ...)
{
	va_list ap;
	int n;

	pthread_mutex_lock(&lock);
	if (state != CASE_FAILED) {
		const char *base = strrchr(file, '/');

		n = snprintf(why, sizeof(why), "%s:%d: ", base ? base + 1 : file, line);
		if (n < 0 || (size_t)n >= sizeof(why))
			n = 0;
		va_start(ap, fmt);
		vsnprintf(why + n, sizeof(why) - (size_t)n, fmt, ap);
		va_end(ap);
		flatten(why);
		state = CASE_FAILED;
	}
	pthread_mutex_unlock(&lock);
	return false;
}

void check_skip_case(const char *name, const char *reason)
{
	check_begin("%s", name);
	check_skip("%s", reason);
	check_end();
}

void check_skip(const char *fmt, ...)
{
	va_list ap;

	pthread_mutex_lock(&lock);
	if (state != CASE_FAILED) {
		va_start(ap, fmt);
		vsnprintf(why, sizeof(why), fmt, ap);
		va_end(ap);
		flatten(why);
		state = CASE_SKIPPED;
	}
	pthread_mutex_unlock(&lock);
}

bool check_failed(void)
{
	bool r;

	pthread_mutex_lock(&lock);
	r = state == CASE_FAILED;
	pthread_mutex_unlock(&lock);
	return r;
}

bool check_end(void)
{
	enum case_state s;

	alarm(0);
	pthread_mutex_lock(&lock);
	s = state;
	switch (s) {
	case CASE_FAILED:
		printf("FAIL %s: %s: %s\n", suite, case_name, why);
		n_failed_cases++;
		break;
	case CASE_SKIPPED:
		printf("SKIP %s: %s: %s\n", suite, case_name, why);
		break;
	default:
		printf("PASS %s: %s\n", suite, case_name);
		break;
	}
	fflush(stdout);
	state = CASE_NONE;
	alarm_line_len = 0;
	pthread_mutex_unlock(&lock);
	if (s == CASE_FAILED && fail_hook)
		fail_hook(fail_hook_data);
	return s != CASE_FAILED;
}

int check_finish(void)
{
	return n_failed_cases ? 1 : 0;
}
