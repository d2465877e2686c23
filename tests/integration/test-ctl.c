/*
 * test-ctl.c: the dmaload-ctl CLI ($DMALOAD_CTL) against the real daemon.
 *
 * "load FILE -- CMD" hands the buffer to CMD as fd 3: cmp(1) compares it with the
 * file (and fails on a different file or a shifted range); ranges and --fd; --json
 * output must parse as JSON and carry the size; status and ping succeed; the cache's
 * list, evict and stats, human and --json, and load --pin (the daemon runs with a
 * cache, which the cache case empties before the last leak check); failures
 * exit 1 with exactly one line on stderr, usage errors exit 2. Run without a shell of
 * ours: fork/exec with stdout and stderr captured into files.
 */
#include <ctype.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../lib/check.h"
#include "../lib/harness.h"

#define SUITE "ctl"
#define SIZE (3 * MiB + 333)

static struct test_daemon d;
static char file[PATH_MAX], other[PATH_MAX];
static char out[65536], err[65536];
static const char *ctl_sock;	/* --socket for ctl(); NULL: the daemon's */

/* Runs the CLI with the NULL-terminated arguments; stdout and stderr land in out and
 * err. Returns the exit status, or -1 if it was killed / timed out. */
static int ctl(const char *first, ...)
{
	const char *args[64];
	va_list ap;
	int n = 0;

	va_start(ap, first);
	for (const char *a = first; a && n < 60; a = va_arg(ap, const char *))
		args[n++] = a;
	va_end(ap);
	args[n] = NULL;
	return ctl_run(ctl_sock ? ctl_sock : d.sock, d.dir, args, 30000, out, sizeof(out), err, sizeof(err));
}

#define CHECK_EXIT(r, want) \
	CHECKF((r) == (want), "exit status %d, expected %d; stderr: %s", (r), (want), err)

/* ---- a small JSON checker -------------------------------------------------------- */

static const char *js_value(const char *p, int depth);

static const char *js_ws(const char *p)
{
	while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')
		p++;
	return p;
}

static const char *js_string(const char *p)
{
	if (*p++ != '"')
		return NULL;
	while (*p && *p != '"') {
		if ((unsigned char)*p < 0x20)
			return NULL;
		if (*p == '\\') {
			p++;
			if (*p == 'u') {
				for (int i = 1; i <= 4; i++)
					if (!isxdigit((unsigned char)p[i]))
						return NULL;
				p += 4;
			} else if (!strchr("\"\\/bfnrt", *p) || !*p) {
				return NULL;
			}
		}
		p++;
	}
	return *p == '"' ? p + 1 : NULL;
}

static const char *js_number(const char *p)
{
	const char *s = p;

	if (*p == '-')
		p++;
	if (!isdigit((unsigned char)*p))
		return NULL;
	if (*p == '0' && isdigit((unsigned char)p[1]))
		return NULL;
	while (isdigit((unsigned char)*p))
		p++;
	if (*p == '.') {
		p++;
		if (!isdigit((unsigned char)*p))
			return NULL;
		while (isdigit((unsigned char)*p))
			p++;
	}
	if (*p == 'e' || *p == 'E') {
		p++;
		if (*p == '+' || *p == '-')
			p++;
		if (!isdigit((unsigned char)*p))
			return NULL;
		while (isdigit((unsigned char)*p))
			p++;
	}
	return p > s ? p : NULL;
}

static const char *js_value(const char *p, int depth)
{
	if (depth > 32)
		return NULL;
	p = js_ws(p);
	if (*p == '{' || *p == '[') {
		char close = *p == '{' ? '}' : ']';
		bool obj = *p == '{';

		p = js_ws(p + 1);
		if (*p == close)
			return p + 1;
		for (;;) {
			if (obj) {
				p = js_string(js_ws(p));
				if (!p)
					return NULL;
				p = js_ws(p);
				if (*p++ != ':')
					return NULL;
			}
			p = js_value(p, depth + 1);
			if (!p)
				return NULL;
			p = js_ws(p);
			if (*p == close)
				return p + 1;
			if (*p++ != ',')
				return NULL;
		}
	}
	if (*p == '"')
		return js_string(p);
	if (!strncmp(p, "true", 4))
		return p + 4;
	if (!strncmp(p, "false", 5))
		return p + 5;
	if (!strncmp(p, "null", 4))
		return p + 4;
	return js_number(p);
}

/* Every non-empty line of @s is one JSON object. */
static bool json_lines_ok(const char *s, char *why, size_t len)
{
	int lines = 0;

	while (*s) {
		const char *nl = strchr(s, '\n'), *end;
		char line[8192];
		size_t n = nl ? (size_t)(nl - s) : strlen(s);

		if (n >= sizeof(line)) {
			snprintf(why, len, "line too long");
			return false;
		}
		memcpy(line, s, n);
		line[n] = '\0';
		s += n + (nl ? 1 : 0);
		if (!*js_ws(line))
			continue;
		lines++;
		if (*js_ws(line) != '{') {
			snprintf(why, len, "not an object: %.80s", line);
			return false;
		}
		end = js_value(line, 0);
		if (!end || *js_ws(end)) {
			snprintf(why, len, "does not parse: %.200s", line);
			return false;
		}
	}
	if (!lines) {
		snprintf(why, len, "no output");
		return false;
	}
	return true;
}

/* The number after "key": in @s, or -1. */
static long long json_number_of(const char *s, const char *key)
{
	char pat[64];
	const char *p;

	snprintf(pat, sizeof(pat), "\"%s\"", key);
	p = strstr(s, pat);
	if (!p)
		return -1;
	p = js_ws(p + strlen(pat));
	if (*p++ != ':')
		return -1;
	return strtoll(js_ws(p), NULL, 10);
}

/* ---- cases ----------------------------------------------------------------------- */

static char script[PATH_MAX * 2];

static void load_cmp(void)
{
	int r;

	snprintf(script, sizeof(script),
		 "cmp -n \"$DMALOAD_SIZE\" /proc/self/fd/3 '%s' && test \"$DMALOAD_FD\" = 3 && "
		 "test \"$DMALOAD_SIZE\" = %llu", file, (unsigned long long)SIZE);
	r = ctl("load", file, "--", "sh", "-c", script, NULL);
	CHECK_EXIT(r, 0);
}

static void load_cmp_other(void)
{
	int r;

	snprintf(script, sizeof(script), "cmp -s -n \"$DMALOAD_SIZE\" /proc/self/fd/3 '%s'",
		 other);
	r = ctl("load", file, "--", "sh", "-c", script, NULL);
	CHECKF(r > 0, "comparing with a different file: exit status %d; stderr: %s", r, err);
}

static void load_exit_status(void)
{
	int r = ctl("load", file, "--", "sh", "-c", "exit 7", NULL);

	CHECK_EXIT(r, 7);
}

static void load_range(void)
{
	int r;

	snprintf(script, sizeof(script),
		 "test \"$DMALOAD_SIZE\" = 8192 && cmp -n 8192 -i 0:4096 /proc/self/fd/3 '%s' && "
		 "test \"$(stat -L -c %%s /proc/self/fd/3)\" = 8192", file);
	r = ctl("load", "--offset", "4096", "--length", "8192", file, "--", "sh", "-c", script,
		NULL);
	CHECK_EXIT(r, 0);
	/* the same range compared one byte off must differ */
	snprintf(script, sizeof(script), "cmp -s -n 8192 -i 0:4097 /proc/self/fd/3 '%s'", file);
	r = ctl("load", "--offset", "4096", "--length", "8192", file, "--", "sh", "-c", script,
		NULL);
	CHECKF(r > 0, "shifted comparison: exit status %d", r);
}

static void load_fd_method(void)
{
	int r;

	snprintf(script, sizeof(script), "cmp -n \"$DMALOAD_SIZE\" /proc/self/fd/3 '%s'", file);
	r = ctl("load", "--fd", "--method", "buffered", file, "--", "sh", "-c", script, NULL);
	CHECK_EXIT(r, 0);
	r = ctl("load", "--method", "direct", "--offset", "1M", file, "--", "sh", "-c",
		"test \"$DMALOAD_SIZE\" = $((3 * 1048576 + 333 - 1048576))", NULL);
	CHECK_EXIT(r, 0);
}

static void load_json(void)
{
	char why[256];
	int r = ctl("--json", "load", file, NULL);

	if (!CHECK_EXIT(r, 0))
		return;
	CHECKF(json_lines_ok(out, why, sizeof(why)), "load --json: %s", why);
	CHECKF(json_number_of(out, "size") == (long long)SIZE, "\"size\" is %lld in: %.300s",
	       json_number_of(out, "size"), out);
}

static void load_text(void)
{
	int r = ctl("load", file, NULL);

	CHECK_EXIT(r, 0);
	CHECKF(out[0], "load printed nothing");
}

static void status_cmd(void)
{
	char why[256];
	int r = ctl("status", NULL);

	CHECK_EXIT(r, 0);
	CHECKF(out[0], "status printed nothing");
	r = ctl("--json", "status", NULL);
	if (CHECK_EXIT(r, 0)) {
		CHECKF(json_lines_ok(out, why, sizeof(why)), "status --json: %s", why);
		CHECKF(json_number_of(out, "clients") >= 1, "clients in: %.300s", out);
	}
}

static bool one_line(const char *s)
{
	size_t n = strlen(s);

	return n > 1 && s[n - 1] == '\n' && !memchr(s, '\n', n - 1);
}

static void cache_cmds(void)
{
	char why[256], n[32];
	int r;

	snprintf(n, sizeof(n), "%llu", (unsigned long long)SIZE);	/* hugetlb: rounded up */
	CHECK_EXIT(ctl("load", file, NULL), 0);
	r = ctl("load", "--pin", file, "--", "cmp", "-s", "-n", n, "/proc/self/fd/3", file,
		NULL);
	CHECK_EXIT(r, 0);
	CHECKF(strstr(err, "from the daemon's cache"), "load --pin: not from the cache: %s",
	       err);
	r = ctl("list", NULL);
	if (CHECK_EXIT(r, 0))
		CHECKF(strstr(out, file) && strstr(out, " P"), "list: %s not shown pinned: %s",
		       file, out);
	r = ctl("--json", "list", NULL);
	if (CHECK_EXIT(r, 0)) {
		CHECKF(json_lines_ok(out, why, sizeof(why)), "list --json: %s", why);
		CHECKF(strstr(out, "\"pinned\":true"), "list --json: no pinned entry: %.300s",
		       out);
		CHECKF(json_number_of(out, "cache_bytes") >= SIZE, "cache_bytes in: %.300s",
		       out);
	}
	r = ctl("stats", NULL);
	if (CHECK_EXIT(r, 0))
		CHECKF(strstr(out, "hits") && strstr(out, "read from files"), "stats: %s", out);
	r = ctl("--json", "stats", NULL);
	if (CHECK_EXIT(r, 0)) {
		CHECKF(json_lines_ok(out, why, sizeof(why)), "stats --json: %s", why);
		CHECKF(json_number_of(out, "cache_hits") >= 1, "cache_hits in: %.300s", out);
		CHECKF(json_number_of(out, "bytes_read") >= SIZE, "bytes_read in: %.300s", out);
		CHECKF(json_number_of(out, "throttled_ns") == 0, "throttled_ns in: %.300s", out);
	}
	r = ctl("--json", "evict", file, NULL);
	if (CHECK_EXIT(r, 0)) {
		CHECKF(json_lines_ok(out, why, sizeof(why)), "evict --json: %s", why);
		/* the whole file and the 8192-byte range of load_range */
		CHECKF(json_number_of(out, "evicted") == 2, "evicted in: %.300s", out);
	}
	r = ctl("evict", file, NULL);
	CHECK_EXIT(r, 1);
	CHECKF(one_line(err), "evict of nothing: not one line on stderr: %s", err);
	r = ctl("--json", "list", NULL);
	if (CHECK_EXIT(r, 0))
		CHECKF(json_number_of(out, "cache_bytes") == 0, "after evict: %.300s", out);
	CHECK_EXIT(ctl("evict", NULL), 2);
}

static void ping_cmd(void)
{
	int r = ctl("ping", NULL);

	CHECK_EXIT(r, 0);
	CHECKF(out[0], "ping printed nothing");
}


static void missing_file(void)
{
	char p[PATH_MAX];
	int r;

	snprintf(p, sizeof(p), "%s/does-not-exist", d.dir);
	r = ctl("load", p, NULL);
	CHECK_EXIT(r, 1);
	CHECKF(one_line(err), "stderr is not one line: \"%s\"", err);
	CHECKF(strstr(err, "does-not-exist"), "stderr does not name the file: %s", err);
	CHECKF(!out[0], "stdout not empty: %s", out);
	/* with a command: the command never runs */
	r = ctl("load", p, "--", "sh", "-c", "exit 0", NULL);
	CHECK_EXIT(r, 1);
}

static void no_daemon(void)
{
	char p[PATH_MAX];
	int r;

	snprintf(p, sizeof(p), "%s/no-such-socket", d.dir);
	ctl_sock = p;
	r = ctl("ping", NULL);
	CHECK_EXIT(r, 1);
	CHECKF(one_line(err), "stderr is not one line: \"%s\"", err);
	r = ctl("load", file, NULL);
	CHECK_EXIT(r, 1);
	CHECKF(one_line(err), "stderr is not one line: \"%s\"", err);
	ctl_sock = NULL;
}

static void usage_errors(void)
{
	int r = ctl("frobnicate", NULL);

	CHECK_EXIT(r, 2);
	CHECKF(err[0], "no message for an unknown command");
	r = ctl("load", NULL);
	CHECK_EXIT(r, 2);
	r = ctl("load", "--offset", "lots", file, NULL);
	CHECK_EXIT(r, 2);
	r = ctl("load", "--method", "telepathy", file, NULL);
	CHECK_EXIT(r, 2);
}

int main(void)
{
	int r;

	check_init(SUITE);
	if (!daemon_start_case(&d, SUITE, "[cache]\ncache_limit = 64M\n", NULL))
		return 1;
	snprintf(file, sizeof(file), "%s/data", d.dir);
	snprintf(other, sizeof(other), "%s/other", d.dir);
	if ((r = file_make(file, SIZE, 31, 0644)) < 0 || (r = file_make(other, SIZE, 32, 0644)) < 0)
		check_fail(__FILE__, __LINE__, "file_make: %s", strerror(-r));
	CHECKF(access(ctl_binary(), X_OK) == 0, "%s: %s", ctl_binary(), strerror(errno));
	if (!check_end()) {
		daemon_cleanup(&d);
		return 1;
	}
	daemon_baseline(&d);

	CASE(load_cmp(), "load FILE -- sh -c 'cmp ... /proc/self/fd/3 FILE': exit 0");
	CASE(load_cmp_other(), "load FILE -- cmp against another file: non-zero");
	CASE(load_exit_status(), "load FILE -- CMD: CMD's exit status is passed on");
	CASE(load_range(), "load --offset 4096 --length 8192: the right 8192 bytes");
	CASE(load_fd_method(), "load --fd --method buffered; --method direct --offset 1M");
	CASE(load_text(), "load FILE prints a report");
	CASE(load_json(), "--json load: parses, carries \"size\"");
	CASE(status_cmd(), "status and --json status: exit 0, JSON parses");
	CASE(cache_cmds(), "list, evict FILE, stats (text and --json), load --pin");
	CASE(ping_cmd(), "ping: exit 0");
	CASE(missing_file(), "nonexistent file: exit 1, one line on stderr");
	CASE(no_daemon(), "no daemon on the socket: exit 1, one line on stderr");
	CASE(usage_errors(), "usage errors: exit 2");
	CASE(CHECK_SETTLED_START(&d, 5000), "daemon fds and memfds back to the first baseline");

	daemon_stop_case(&d, "daemon exits 0 on SIGTERM");
	return check_finish();
}
