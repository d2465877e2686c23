/*
 * check.h: the test suite's tiny check library.
 *
 * A program is one suite of cases. check_begin() opens a case, CHECK*() record the
 * first failure of the case (later ones are counted, not printed), check_end() prints
 * exactly one line for it:
 *     PASS <suite>: <case>
 *     FAIL <suite>: <case>: <why>
 *     SKIP <suite>: <case>: <why>
 * and check_finish() gives the exit status (0 when no case failed). tests/run-one.sh
 * counts those lines; nothing else a test prints to stdout may start with PASS, FAIL
 * or SKIP. Diagnostics go to stderr.
 *
 * Every CHECK*() evaluates to true when the check held, so a case can bail out:
 *     if (!CHECK_OK(r)) goto out;
 * Checks are thread-safe: worker threads of a case may use them.
 *
 * A watchdog (SIGALRM, check_timeout_s seconds, default 60 or $CHECK_CASE_TIMEOUT)
 * prints FAIL for a case that hangs, runs the registered kill hook (async-signal-safe
 * only: the harness SIGKILLs its daemon there) and exits.
 */
#pragma once

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

void check_init(const char *suite);
/* Opens a case; its name is printf-formatted. */
void check_begin(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Records a failure of the open case (the first one is kept). Returns false. */
bool check_fail(const char *file, int line, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* Marks the open case skipped (unless it has already failed). */
void check_skip(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* A case that cannot run here: opens @name, skips it for @reason, prints its line. */
void check_skip_case(const char *name, const char *reason);
/* Whether the open case has failed so far. */
bool check_failed(void);
/* Prints the case's line. Returns true when it passed or was skipped. */
bool check_end(void);
/* The program's exit status: 0 when no case failed. Prints nothing. */
int check_finish(void);

/* A hook run (outside the lock) after a FAIL line is printed: e.g. the daemon's log. */
void check_set_fail_hook(void (*fn)(void *data), void *data);
/* A hook run from the watchdog's signal handler: must be async-signal-safe. */
void check_set_kill_hook(void (*fn)(void));
/* One more (up to 4), run before the kill hook: for what the test changed outside
 * its processes (a sysctl, a mount) and must put back. Async-signal-safe too. */
void check_add_undo_hook(void (*fn)(void));
/* Seconds before the watchdog fires for each case from now on (0: off). */
void check_set_timeout(unsigned seconds);

/* Runs a case body: check_begin(), body, check_end(). */
#define CASE(body, ...) do { check_begin(__VA_ARGS__); (void)(body); check_end(); } while (0)

#define CHECK(cond) ({							\
	bool _ok = (cond);							\
	if (!_ok)								\
		check_fail(__FILE__, __LINE__, "%s", #cond);			\
	_ok;									\
})

#define CHECKF(cond, ...) ({							\
	bool _ok = (cond);							\
	if (!_ok)								\
		check_fail(__FILE__, __LINE__, __VA_ARGS__);			\
	_ok;									\
})

/* Compares two integer expressions as signed 64-bit with @op. */
#define CHECK_INT(a, op, b) ({							\
	long long _a = (long long)(a), _b = (long long)(b);			\
	(_a op _b) ? true : check_fail(__FILE__, __LINE__, "%s %s %s (%lld vs %lld)",	\
				       #a, #op, #b, _a, _b);			\
})

/* Compares two integer expressions as unsigned 64-bit with @op. */
#define CHECK_U64(a, op, b) ({							\
	unsigned long long _a = (unsigned long long)(a);			\
	unsigned long long _b = (unsigned long long)(b);			\
	(_a op _b) ? true : check_fail(__FILE__, __LINE__, "%s %s %s (%llu vs %llu)",	\
				       #a, #op, #b, _a, _b);			\
})

/* @r (0 or -errno) must be 0. */
#define CHECK_OK(r) ({								\
	long long _r = (long long)(r);						\
	_r == 0 ? true : check_fail(__FILE__, __LINE__, "%s = %lld (%s)", #r, _r,	\
				    _r < 0 ? strerror((int)-_r) : "positive");	\
})

/* @r must equal the negative errno @e (e.g. -EINVAL). */
#define CHECK_ERR(r, e) ({							\
	long long _r = (long long)(r), _e = (long long)(e);			\
	_r == _e ? true : check_fail(__FILE__, __LINE__,			\
			"%s = %lld (%s), expected %lld (%s)", #r, _r,		\
			_r < 0 ? strerror((int)-_r) : "not an error", _e,	\
			strerror((int)(_e < 0 ? -_e : _e)));			\
})

/* Two NUL-terminated strings must be equal. */
#define CHECK_STR(a, b) ({							\
	const char *_a = (a), *_b = (b);					\
	(_a && _b && strcmp(_a, _b) == 0) ? true :				\
		check_fail(__FILE__, __LINE__, "%s = \"%s\", expected \"%s\"", #a,	\
			   _a ? _a : "(null)", _b ? _b : "(null)");		\
})
