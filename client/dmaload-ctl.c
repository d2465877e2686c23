/*
 * dmaload-ctl.c: the command-line client of dmaloadd, a thin shell over libdmaload.
 *
 * main() parses the global options and the command's name, and cmd_dispatch() runs
 * the command's row of ctl_cmds[] (name, --help lines, which arguments it takes, and
 * its handler). The query commands (status, list, stats, info) share one path,
 * ctl_query(): connect, ask, print as text or JSON; the others have a cmd_*()
 * function. Each command opens its own connection and returns the process's exit
 * status: 0, 1 for a failure (after one "dmaload-ctl: what: why" line on stderr), 2
 * for a usage error. Nothing here speaks the wire protocol directly; only the names of
 * methods, targets and reasons come from dmaload-proto.h.
 *
 * "load ... -- CMD" is the one place with a child: the buffer is handed to CMD as fd 3
 * and dmaload-ctl stays around only to pass on CMD's exit status, holding neither the
 * buffer nor the connection meanwhile.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "dmaload-proto.h"
#include "dmaload.h"

#define CTL_VERSION	"0.1.0"
#define EXIT_USAGE	2

/* Global options; they may appear before or after the command name. */
struct ctl {
	const char *socket;
	const char *name;
	bool json;
	int timeout_ms;			/* --timeout: idle, -1 for none */
};

/* The default --timeout, seconds: a daemon silent this long is taken for stuck. */
#define CTL_TIMEOUT_S	30

/* info's two answers: the buffers, and the huge pages beside the pool (a daemon
 * without DL_CAP_INFO_SURPLUS has only the first). */
struct ctl_info {
	struct dmaload_info in;
	struct dmaload_hugepages hp;
	bool hp_ok;
};

/* The reply of a query command (status, list, stats, info), as libdmaload gives it. */
union ctl_reply {
	struct dmaload_status status;
	struct dmaload_cache_list list;
	struct dmaload_stats stats;
	struct ctl_info info;
};

static void usage(FILE *f);

static int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Prints the one line about a usage error and returns exit status 2. */
static int usage_error(const char *fmt, ...)
{
	va_list ap;

	fputs("dmaload-ctl: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputs(" (see dmaload-ctl --help)\n", stderr);
	return EXIT_USAGE;
}

/* --timeout as parsed, for the message of a timeout. */
static int timeout_ms_given = CTL_TIMEOUT_S * 1000;

/* Prints the one error line and returns exit status 1. @err is a positive errno. */
static int fail(const char *what, const char *arg, int err, const char *msg)
{
	char text[96];

	if (err == ETIMEDOUT && !(msg && *msg)) {
		snprintf(text, sizeof(text), "the daemon did not answer for %g s (--timeout)",
			 timeout_ms_given / 1000.0);
		msg = text;
	}
	fprintf(stderr, "dmaload-ctl: %s%s%s: %s\n", what, arg ? " " : "", arg ? arg : "",
		msg && *msg ? msg : strerror(err));
	return EXIT_FAILURE;
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* "1.00 GiB", "512 B": binary units, as the --offset / --length suffixes are. */
static const char *format_size(char *buf, size_t cap, uint64_t n)
{
	static const char *const units[] = { "KiB", "MiB", "GiB", "TiB", "PiB", "EiB" };
	double v = (double)n;
	int u = -1;

	if (n < 1024) {
		snprintf(buf, cap, "%" PRIu64 " B", n);
		return buf;
	}
	while (v >= 1024 && u < 5) {
		v /= 1024;
		u++;
	}
	snprintf(buf, cap, "%.2f %s", v, units[u]);
	return buf;
}

/* Parses a byte count: decimal digits, then optionally K, M, G or T (powers of 1024),
 * optionally followed by "iB" or "B". Returns 0 or -EINVAL / -ERANGE. */
static int parse_size(const char *s, uint64_t *out)
{
	unsigned long long v;
	unsigned shift = 0;
	char *end;

	if (*s < '0' || *s > '9')
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno)
		return -errno;
	switch (*end) {
	case 'k': case 'K': shift = 10; end++; break;
	case 'm': case 'M': shift = 20; end++; break;
	case 'g': case 'G': shift = 30; end++; break;
	case 't': case 'T': shift = 40; end++; break;
	}
	if (shift && (!strcmp(end, "iB") || !strcmp(end, "B")))
		end += strlen(end);
	if (*end)
		return -EINVAL;
	if (shift && v > (UINT64_MAX >> shift))
		return -ERANGE;
	*out = (uint64_t)v << shift;
	return 0;
}

static int parse_method(const char *s, uint8_t *out)
{
	if (!strcmp(s, "auto"))
		*out = DL_METHOD_AUTO;
	else if (!strcmp(s, "direct"))
		*out = DL_METHOD_DIRECT;
	else if (!strcmp(s, "buffered"))
		*out = DL_METHOD_BUFFERED;
	else if (!strcmp(s, "cfr"))
		*out = DL_METHOD_CFR;
	else
		return -EINVAL;
	return 0;
}

/* Writes @s as a JSON string: quotes, backslashes and control bytes escaped. */
static void json_string(FILE *f, const char *s)
{
	fputc('"', f);
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if (*p == '"' || *p == '\\')
			fprintf(f, "\\%c", *p);
		else if (*p == '\n')
			fputs("\\n", f);
		else if (*p == '\t')
			fputs("\\t", f);
		else if (*p < 0x20 || *p == 0x7f)
			fprintf(f, "\\u%04x", *p);
		else
			fputc(*p, f);
	}
	fputc('"', f);
}

/*
 * If argv[*i] is option @name, as "--name VALUE" or "--name=VALUE", stores VALUE and
 * moves *i past it. Returns 1 when it matched, 0 when it did not, -1 when the value
 * is missing.
 */
static int opt_value(const char *name, int argc, char **argv, int *i, const char **val)
{
	const char *a = argv[*i];
	size_t n = strlen(name);

	if (strncmp(a, name, n))
		return 0;
	if (a[n] == '=') {
		*val = a + n + 1;
		return 1;
	}
	if (a[n])
		return 0;
	if (*i + 1 >= argc)
		return -1;
	*val = argv[++*i];
	return 1;
}

/* Handles a global option at argv[*i]. Returns 1 if it was one, 0 if not, or an exit
 * status + 2 (so: >= 2) when the process should end (usage error, --help). */
static int global_option(struct ctl *ctl, int argc, char **argv, int *i)
{
	const char *a = argv[*i], *val;
	int r;

	if (!strcmp(a, "--json")) {
		ctl->json = true;
		return 1;
	}
	if ((r = opt_value("--timeout", argc, argv, i, &val))) {
		char *end;
		double t;

		if (r < 0)
			return usage_error("option '%s' needs a value", a) + 2;
		errno = 0;
		t = strtod(val, &end);
		if (errno || end == val || *end || !(t >= 0) || t > 86400 * 24)
			return usage_error("bad timeout '%s' (seconds, 0 for none)", val) + 2;
		ctl->timeout_ms = t > 0 ? (int)(t * 1000 + 0.5) : -1;
		if (t > 0 && ctl->timeout_ms == 0)
			ctl->timeout_ms = 1;
		timeout_ms_given = ctl->timeout_ms;
		return 1;
	}
	if ((r = opt_value("--socket", argc, argv, i, &ctl->socket)) ||
	    (r = opt_value("--name", argc, argv, i, &ctl->name))) {
		if (r < 0)
			return usage_error("option '%s' needs a value", a) + 2;
		return 1;
	}
	if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
		usage(stdout);
		return EXIT_SUCCESS + 2;
	}
	if (!strcmp(a, "--version")) {
		puts("dmaload-ctl " CTL_VERSION);
		return EXIT_SUCCESS + 2;
	}
	return 0;
}

/* For commands without arguments of their own: takes the global options in
 * argv[i..]. Returns -1 to go on, or the exit status (--help, --version, a stray
 * argument). */
static int only_global_options(struct ctl *ctl, int argc, char **argv, int i,
			       const char *cmd)
{
	for (; i < argc; i++) {
		int r = global_option(ctl, argc, argv, &i);

		if (r >= 2)
			return r - 2;
		if (!r)
			return usage_error("%s: unexpected argument '%s'", cmd, argv[i]);
	}
	return -1;
}

/* Connects with the --timeout; a refusal is printed with the daemon's reason. */
static int ctl_connect(const struct ctl *ctl, struct dmaload **dl)
{
	char msg[DL_ERRMSG_MAX + 1];
	int r = dmaload_connect_ex(dl, ctl->socket, ctl->name, ctl->timeout_ms, msg,
				   sizeof(msg));

	if (r < 0)
		return fail("connect to", ctl->socket, -r, msg);
	return 0;
}

/*
 * A load waited --timeout without a word: is the daemon stuck, or is the load only
 * waiting for a reading slot (a queued load sends no PROGRESS)? A fresh connection's
 * HELLO tells. True if the daemon answered within the timeout.
 */
static bool ctl_daemon_answers(const struct ctl *ctl)
{
	struct dmaload *probe;

	if (dmaload_connect_ex(&probe, ctl->socket, ctl->name, ctl->timeout_ms, NULL, 0) < 0)
		return false;
	dmaload_close(probe);
	return true;
}

/* ---- load ------------------------------------------------------------------------ */

/* The progress bar: one line on stderr, redrawn in place at most ten times a second. */
struct progress {
	double start;
	double last_draw;
	int width;		/* columns of the last line drawn, 0 if none */
};

static void progress_draw(const struct dmaload_event *ev, void *data)
{
	struct progress *pg = data;
	char bar[31], line[128];
	double now = now_s(), pct, mbs;
	int fill, n;

	if (ev->total == 0 || (now - pg->last_draw < 0.1 && ev->done < ev->total))
		return;
	pg->last_draw = now;
	pct = ev->done >= ev->total ? 100.0 : 100.0 * (double)ev->done / (double)ev->total;
	fill = (int)(pct * (sizeof(bar) - 1) / 100.0);
	memset(bar, '#', (size_t)fill);
	memset(bar + fill, '.', sizeof(bar) - 1 - (size_t)fill);
	bar[sizeof(bar) - 1] = '\0';
	mbs = now > pg->start ? (double)ev->done / (now - pg->start) / 1e6 : 0;
	n = snprintf(line, sizeof(line), "[%s] %5.1f%%  %.1f MB/s", bar, pct, mbs);
	/* pad with spaces over whatever longer line came before */
	fprintf(stderr, "\r%-*s", pg->width > n ? pg->width : n, line);
	pg->width = n;
}

static void progress_clear(struct progress *pg)
{
	if (pg->width)
		fprintf(stderr, "\r%*s\r", pg->width, "");
	pg->width = 0;
}

/* True when @fd carries the seals that make the buffer read-only for good. */
static bool fd_sealed(int fd)
{
	const int want = F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL;
	int seals = fcntl(fd, F_GET_SEALS);

	return seals >= 0 && (seals & want) == want;
}

/* " (splice)" or " (copy_file_range)" after "cfr": which of the two ran. */
static const char *cfr_how(const struct dmaload_event *ev)
{
	if (ev->method != DL_METHOD_CFR)
		return "";
	return ev->done_flags & DL_DONE_CFR_SYSCALL ? " (copy_file_range)" : " (splice)";
}

static void load_report(const struct ctl *ctl, FILE *f, const char *file,
			const struct dmaload_event *ev, double seconds)
{
	double mbs = seconds > 0 ? (double)ev->size / seconds / 1e6 : 0;
	bool sealed = fd_sealed(ev->fd);
	bool into = ev->done_flags & DL_DONE_INTO;
	bool hugetlb = ev->done_flags & DL_DONE_HUGETLB;
	char size[32];

	const char *shared = ev->done_flags & DL_DONE_CACHED ? "cache" :
			     ev->done_flags & DL_DONE_JOINED ? "joined" : NULL;

	if (!ctl->json) {
		fprintf(f, "loaded %s: %" PRIu64 " bytes (%s) in %.3f s, %.1f MB/s, "
			"method %s%s (%s), %s%s%s%s\n", file, ev->size,
			format_size(size, sizeof(size), ev->size), seconds, mbs,
			dl_method_name(ev->method), cfr_how(ev), dl_reason_name(ev->reason),
			dl_target_name(ev->target), hugetlb ? " hugetlb" : "",
			into ? " of dmaload-ctl's, filled in place" :
			sealed ? " sealed" : " not sealed",
			!shared ? "" : ev->done_flags & DL_DONE_CACHED ?
			", from the daemon's cache" : ", joined a running load");
		return;
	}
	fputs("{\"file\":", f);
	json_string(f, file);
	fprintf(f, ",\"size\":%" PRIu64 ",\"buf_size\":%" PRIu64 ",\"seconds\":%.6f,"
		"\"mb_per_s\":%.3f,\"method\":\"%s\",\"target\":\"%s\",\"reason\":",
		ev->size, ev->buf_size, seconds, mbs, dl_method_name(ev->method),
		dl_target_name(ev->target));
	json_string(f, dl_reason_name(ev->reason));
	fprintf(f, ",\"daemon_ns\":%" PRIu64 ",\"sealed\":%s,\"hugetlb\":%s", ev->elapsed_ns,
		sealed ? "true" : "false", hugetlb ? "true" : "false");
	if (ev->method == DL_METHOD_CFR)
		fprintf(f, ",\"cfr\":\"%s\"", ev->done_flags & DL_DONE_CFR_SYSCALL ?
			"copy_file_range" : "splice");
	fprintf(f, ",\"shared\":%s%s%s", shared ? "\"" : "", shared ? shared : "null",
		shared ? "\"" : "");
	fprintf(f, ",\"into\":%s", into ? "true" : "false");
	fputs("}\n", f);
}

/*
 * Runs @argv with the buffer @fd as its fd 3. Consumes @fd and @dl: the parent lets
 * go of both before waiting, so the buffer lives exactly as long as CMD holds it.
 * Returns CMD's exit status, or 128 + the signal that killed it.
 */
static int run_with_buffer(struct dmaload *dl, int fd, uint64_t size, char **argv)
{
	char size_str[24];
	int status;
	pid_t pid;

	snprintf(size_str, sizeof(size_str), "%" PRIu64, size);
	fflush(NULL);
	pid = fork();
	if (pid < 0) {
		int err = errno;

		close(fd);
		dmaload_close(dl);
		return fail("fork", NULL, err, NULL);
	}
	if (pid == 0) {
		/* dup2() clears close-on-exec on the copy, but does nothing when the
		 * buffer already is fd 3. Whatever else was fd 3 here is let go. */
		if (fd == 3 ? fcntl(fd, F_SETFD, 0) < 0 : dup2(fd, 3) < 0) {
			fprintf(stderr, "dmaload-ctl: fd 3: %s\n", strerror(errno));
			_exit(127);
		}
		if (setenv("DMALOAD_FD", "3", 1) < 0 || setenv("DMALOAD_SIZE", size_str, 1) < 0) {
			fprintf(stderr, "dmaload-ctl: setenv: %s\n", strerror(errno));
			_exit(127);
		}
		execvp(argv[0], argv);
		fprintf(stderr, "dmaload-ctl: %s: %s\n", argv[0], strerror(errno));
		_exit(errno == ENOENT ? 127 : 126);
	}

	close(fd);
	dmaload_close(dl);
	/* Like system(): ^C and ^\ are for CMD; we report how it ended. */
	signal(SIGINT, SIG_IGN);
	signal(SIGQUIT, SIG_IGN);
	while (waitpid(pid, &status, 0) < 0) {
		if (errno != EINTR)
			return fail("wait for", argv[0], errno, NULL);
	}
	if (WIFSIGNALED(status))
		return 128 + WTERMSIG(status);
	return WEXITSTATUS(status);
}

/* "auto", "memfd", "udmabuf" or "heap:NAME" (NAME points into @s). */
static int parse_target(const char *s, struct dmaload_opts *opts)
{
	if (!strncmp(s, "heap:", 5) && dl_heap_name_ok(s + 5, strlen(s + 5))) {
		opts->target = DL_TARGET_HEAP;
		opts->heap = s + 5;
		return 0;
	}
	for (unsigned t = DL_TARGET_AUTO; t <= DL_TARGET_UDMABUF; t++)
		if (!strcmp(s, dl_target_name(t))) {
			opts->target = (uint8_t)t;
			return 0;
		}
	return -EINVAL;
}

/*
 * --extents OFF:LEN[@BUFOFF],...: sizes as --offset takes them; an extent without
 * @BUFOFF goes right after the one before it in the buffer. Returns the count, or -1
 * (after a usage error) with *@out freed.
 */
static long parse_extents(const char *s, struct dmaload_extent **out)
{
	size_t n = 1, k = 0;
	uint64_t next = 0;
	char *copy, *tok, *save = NULL;

	for (const char *p = s; *p; p++)
		n += *p == ',';
	*out = calloc(n, sizeof(**out));
	copy = strdup(s);
	if (!*out || !copy)
		goto bad;
	for (tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		struct dmaload_extent *e = &(*out)[k];
		char *colon = strchr(tok, ':'), *at = strchr(tok, '@');

		if (!colon)
			goto bad;
		*colon = '\0';
		if (at)
			*at = '\0';
		if (parse_size(tok, &e->file_offset) < 0 || parse_size(colon + 1, &e->length) < 0)
			goto bad;
		e->buf_offset = next;
		if (at && parse_size(at + 1, &e->buf_offset) < 0)
			goto bad;
		next = e->buf_offset + e->length;
		k++;
	}
	/* every field between commas, none empty */
	if (k == 0 || k != n || k > DMALOAD_MAX_EXTENTS)
		goto bad;
	free(copy);
	return (long)k;
bad:
	free(copy);
	free(*out);
	*out = NULL;
	usage_error("bad extents '%s' (OFF:LEN[@BUFOFF],... at most %d)", s,
		    DMALOAD_MAX_EXTENTS);
	return -1;
}

/*
 * --into-new-memfd: a memfd of @size bytes of dmaload-ctl's own, fallocated (so its
 * pages are ours, charged to us) and sealed against shrinking, as the daemon wants a
 * caller's buffer. Returns it, or -1 after the failure line.
 */
static int new_memfd(uint64_t size)
{
	int fd = memfd_create("dmaload-ctl", MFD_CLOEXEC | MFD_ALLOW_SEALING);

	if (fd < 0) {
		fail("memfd_create", NULL, errno, NULL);
		return -1;
	}
	if (ftruncate(fd, (off_t)size) < 0 ||
	    (size && fallocate(fd, 0, 0, (off_t)size) < 0 && errno != EOPNOTSUPP) ||
	    fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK) < 0) {
		int err = errno;

		close(fd);
		fail("the new memfd", NULL, err, NULL);
		return -1;
	}
	return fd;
}

/* The buffer --into-new-memfd needs: where the last extent ends, or the range's
 * length (the rest of @file when no --length). Returns 0 or -errno. */
static int into_size(const char *file, const struct dmaload_opts *opts,
		     const struct dmaload_extent *ext, long n_ext, uint64_t *size)
{
	struct stat st;

	*size = 0;
	for (long k = 0; k < n_ext; k++)
		if (ext[k].buf_offset + ext[k].length > *size)
			*size = ext[k].buf_offset + ext[k].length;
	if (ext || opts->length != DMALOAD_TO_EOF) {
		if (!ext)
			*size = opts->length;
		return 0;
	}
	if (stat(file, &st) < 0)
		return -errno;
	*size = (uint64_t)st.st_size > opts->offset ? (uint64_t)st.st_size - opts->offset : 0;
	return 0;
}

/* Starts the load cmd_load was asked for: a range or extents, by path or by @src, into
 * a new buffer or into @buf (>= 0). */
static int load_start(struct dmaload *dl, const char *file, int src,
		      const struct dmaload_extent *ext, long n_ext, int buf,
		      const struct dmaload_opts *opts, uint64_t *id)
{
	if (ext && src >= 0)
		return dmaload_load_extents_fd(dl, src, ext, (size_t)n_ext, buf, opts, id);
	if (ext)
		return dmaload_load_extents_path(dl, file, ext, (size_t)n_ext, buf, opts, id);
	if (buf >= 0 && src >= 0)
		return dmaload_load_into_fd(dl, src, buf, 0, opts, id);
	if (buf >= 0)
		return dmaload_load_into_path(dl, file, buf, 0, opts, id);
	if (src >= 0)
		return dmaload_load_fd(dl, src, opts, id);
	return dmaload_load_path(dl, file, opts, id);
}

static int cmd_load(struct ctl *ctl, int argc, char **argv, int i)
{
	struct dmaload_extent *ext = NULL;
	long n_ext = 0;
	bool into_new = false;
	uint64_t buf_size = 0;
	int buf = -1;
	struct progress pg = { 0 };
	struct dmaload_opts opts;
	struct dmaload_event ev;
	struct dmaload *dl;
	const char *file = NULL, *val;
	char **cmd = NULL;
	bool by_fd = false, bar;
	double t0, seconds;
	uint64_t id;
	int r, src = -1;
	FILE *out;

	dmaload_opts_init(&opts);
	for (; i < argc; i++) {
		const char *a = argv[i];

		if (!strcmp(a, "--")) {
			cmd = &argv[i + 1];
			if (!*cmd)
				return usage_error("'--' must be followed by a command");
			break;
		}
		r = global_option(ctl, argc, argv, &i);
		if (r >= 2)
			return r - 2;
		if (r)
			continue;
		if ((r = opt_value("--offset", argc, argv, &i, &val))) {
			if (r < 0)
				return usage_error("option '%s' needs a value", a);
			if (parse_size(val, &opts.offset) < 0)
				return usage_error("bad offset '%s'", val);
		} else if ((r = opt_value("--length", argc, argv, &i, &val))) {
			if (r < 0)
				return usage_error("option '%s' needs a value", a);
			if (parse_size(val, &opts.length) < 0)
				return usage_error("bad length '%s'", val);
		} else if ((r = opt_value("--method", argc, argv, &i, &val))) {
			if (r < 0)
				return usage_error("option '%s' needs a value", a);
			if (parse_method(val, &opts.method) < 0)
				return usage_error("bad method '%s' (auto, cfr, direct, "
						   "buffered)", val);
		} else if ((r = opt_value("--target", argc, argv, &i, &val))) {
			if (r < 0)
				return usage_error("option '%s' needs a value", a);
			if (parse_target(val, &opts))
				return usage_error("bad target '%s' (auto, memfd, udmabuf, "
						   "heap:NAME)", val);
		} else if (!strcmp(a, "--dmabuf")) {
			opts.dmabuf = true;
		} else if ((r = opt_value("--priority", argc, argv, &i, &val))) {
			if (r < 0)
				return usage_error("option '%s' needs a value", a);
			if (!strcmp(val, "foreground"))
				opts.priority = DL_PRIO_FOREGROUND;
			else if (!strcmp(val, "background"))
				opts.priority = DL_PRIO_BACKGROUND;
			else
				return usage_error("bad priority '%s' (foreground, "
						   "background)", val);
		} else if ((r = opt_value("--rate", argc, argv, &i, &val))) {
			if (r < 0)
				return usage_error("option '%s' needs a value", a);
			if (parse_size(val, &opts.rate_limit) < 0 || !opts.rate_limit)
				return usage_error("bad rate '%s' (bytes/s, more than 0)",
						   val);
		} else if (!strcmp(a, "--fd")) {
			by_fd = true;
		} else if (!strcmp(a, "--exact-size")) {
			opts.exact_size = true;
		} else if (!strcmp(a, "--pin")) {
			opts.pin = true;
		} else if ((r = opt_value("--extents", argc, argv, &i, &val))) {
			if (r < 0)
				return usage_error("option '%s' needs a value", a);
			free(ext);
			n_ext = parse_extents(val, &ext);
			if (n_ext < 0)
				return 2;
		} else if (!strcmp(a, "--into-new-memfd")) {
			into_new = true;
		} else if (a[0] == '-' && a[1]) {
			return usage_error("unknown option '%s'", a);
		} else if (!file) {
			file = a;
		} else {
			return usage_error("unexpected argument '%s'", a);
		}
	}
	if (!file) {
		free(ext);
		return usage_error("load: no FILE given");
	}
	if (ext && (opts.offset || opts.length != DMALOAD_TO_EOF)) {
		free(ext);
		return usage_error("load: --extents replaces --offset and --length");
	}
	if (into_new) {
		r = into_size(file, &opts, ext, n_ext, &buf_size);
		if (r < 0) {
			free(ext);
			return fail("stat", file, -r, NULL);
		}
		buf = new_memfd(buf_size);
		if (buf < 0) {
			free(ext);
			return EXIT_FAILURE;
		}
	}

	/* With CMD, stdout is CMD's: what we have to say goes to stderr. */
	out = cmd ? stderr : stdout;
	bar = !ctl->json && isatty(STDOUT_FILENO) && isatty(STDERR_FILENO);
	/* PROGRESS keeps the --timeout from running out on a long load. */
	opts.progress = bar || ctl->timeout_ms >= 0;

	if (by_fd) {
		src = open(file, O_RDONLY | O_CLOEXEC);
		if (src < 0) {
			free(ext);
			if (buf >= 0)
				close(buf);
			return fail("open", file, errno, NULL);
		}
	}
	r = ctl_connect(ctl, &dl);
	if (r) {
		if (src >= 0)
			close(src);
		if (buf >= 0)
			close(buf);
		free(ext);
		return r;
	}

	t0 = now_s();
	pg.start = t0;
	r = load_start(dl, file, src, ext, n_ext, buf, &opts, &id);
	if (src >= 0)
		close(src);	/* the daemon has its own copy now */
	free(ext);
	if (r == -EOPNOTSUPP && (n_ext || buf >= 0)) {
		if (buf >= 0)
			close(buf);
		dmaload_close(dl);
		return fail("load", file, EOPNOTSUPP, "the daemon does not offer loads of "
			    "extents or into a buffer (DL_CAP_EXTENTS, DL_CAP_LOAD_INTO)");
	}
	if (r == 0)
		do
			r = dmaload_wait(dl, id, &ev, bar ? progress_draw : NULL, &pg);
		while (r == -ETIMEDOUT && ctl_daemon_answers(ctl));
	seconds = now_s() - t0;
	progress_clear(&pg);
	if (r < 0 || ev.type != DMALOAD_EV_DONE) {
		if (buf >= 0)
			close(buf);
		dmaload_close(dl);
		if (r < 0)
			return fail("load", file, -r, NULL);
		if (ev.type == DMALOAD_EV_ERROR)
			return fail("load", file, ev.err, ev.message);
		return fail("load", file, EPROTO, "unexpected reply from the daemon");
	}
	if (buf >= 0) {
		/* Filled: ours, read-only from now on, as the daemon's buffers are. */
		ev.fd = buf;
		fcntl(buf, F_ADD_SEALS, F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL);
	}

	load_report(ctl, out, file, &ev, seconds);
	if (cmd)
		return run_with_buffer(dl, ev.fd, buf >= 0 ? buf_size : ev.size, cmd);
	close(ev.fd);
	dmaload_close(dl);
	return EXIT_SUCCESS;
}

/* ---- preload ---------------------------------------------------------------------- */

struct preload_file {
	const char *file;
	uint64_t id;
	uint64_t total, done;	/* from ACCEPTED and PROGRESS */
	bool accepted, over, failed;
};

static void preload_report(const struct ctl *ctl, const struct preload_file *pf,
			   const struct dmaload_event *ev)
{
	char sz[32];
	bool cached = ev->type == DMALOAD_EV_DONE && (ev->done_flags & DL_DONE_CACHED);

	if (ctl->json) {
		fputs("{\"file\":", stdout);
		json_string(stdout, pf->file);
		printf(",\"size\":%llu,\"state\":\"%s\",\"cached\":%s}\n",
		       (unsigned long long)pf->total,
		       ev->type == DMALOAD_EV_DONE ? "loaded" : "accepted",
		       cached ? "true" : "false");
		return;
	}
	format_size(sz, sizeof(sz), pf->total);
	if (ev->type == DMALOAD_EV_DONE)
		printf("preloaded %s: %llu bytes (%s), pinned%s\n", pf->file,
		       (unsigned long long)pf->total, sz,
		       cached ? ", already in the cache" :
		       (ev->done_flags & DL_DONE_JOINED) ? ", joined a running load" : "");
	else
		printf("preloading %s: %llu bytes (%s), in the background\n", pf->file,
		       (unsigned long long)pf->total, sz);
}

/*
 * Sends one LOAD per file (background priority, pinned, DL_LOAD_DETACH so that the
 * daemon reads on after we close), then takes events until every file is accepted
 * (or, with --wait, loaded) or refused. The progress bar sums all files.
 */
static int cmd_preload(struct ctl *ctl, int argc, char **argv, int i)
{
	struct progress pg = { 0 };
	struct preload_file *pf;
	struct dmaload_opts opts;
	struct dmaload *dl;
	bool wait = false, bar;
	size_t n = 0, left, failed = 0;
	int r;

	pf = calloc((size_t)argc, sizeof(*pf));
	if (!pf)
		return fail("preload", NULL, ENOMEM, NULL);
	for (; i < argc; i++) {
		r = global_option(ctl, argc, argv, &i);
		if (r >= 2) {
			free(pf);
			return r - 2;
		}
		if (r)
			continue;
		if (!strcmp(argv[i], "--wait")) {
			wait = true;
		} else if (argv[i][0] == '-' && argv[i][1]) {
			free(pf);
			return usage_error("unknown option '%s'", argv[i]);
		} else {
			pf[n++].file = argv[i];
		}
	}
	if (!n) {
		free(pf);
		return usage_error("preload: no FILE given");
	}
	r = ctl_connect(ctl, &dl);
	if (r) {
		free(pf);
		return r;
	}
	dmaload_opts_init(&opts);
	opts.priority = DL_PRIO_BACKGROUND;
	opts.pin = true;
	opts.detach = true;
	bar = wait && !ctl->json && isatty(STDERR_FILENO);
	opts.progress = bar || (wait && ctl->timeout_ms >= 0);
	pg.start = now_s();
	left = n;
	for (size_t k = 0; k < n; k++) {
		r = dmaload_load_path(dl, pf[k].file, &opts, &pf[k].id);
		if (r < 0) {
			fail("preload", pf[k].file, -r, r == -EOPNOTSUPP ?
			     "the daemon does not know preloads (DL_CAP_DETACH)" : NULL);
			pf[k].over = pf[k].failed = true;
			failed++;
			left--;
		}
	}
	while (left) {
		struct dmaload_event ev;
		struct preload_file *p = NULL;

		r = dmaload_next_event(dl, &ev, ctl->timeout_ms);
		if (r == 0 && ctl_daemon_answers(ctl))
			continue;
		if (r == 0) {
			progress_clear(&pg);
			fail("preload", NULL, ETIMEDOUT, NULL);
			failed += left;
			break;
		}
		if (r < 0) {
			progress_clear(&pg);
			fail("preload", NULL, -r, "lost the connection to the daemon");
			failed += left;
			break;
		}
		for (size_t k = 0; k < n && !p; k++)
			if (pf[k].id == ev.id && !pf[k].over)
				p = &pf[k];
		if (ev.type == DMALOAD_EV_DONE && ev.fd >= 0)
			close(ev.fd);	/* the daemon keeps its own, pinned */
		if (!p)
			continue;
		switch (ev.type) {
		case DMALOAD_EV_ACCEPTED:
			p->accepted = true;
			p->total = ev.size;
			if (!wait) {
				preload_report(ctl, p, &ev);
				p->over = true;
				left--;
			}
			break;
		case DMALOAD_EV_PROGRESS:
			p->done = ev.done;
			break;
		case DMALOAD_EV_DONE:
			p->done = p->total = ev.size;
			progress_clear(&pg);
			preload_report(ctl, p, &ev);
			p->over = true;
			left--;
			break;
		default:
			progress_clear(&pg);
			fail("preload", p->file, ev.type == DMALOAD_EV_ERROR ? ev.err : EPROTO,
			     ev.type == DMALOAD_EV_ERROR ? ev.message : "unexpected reply");
			p->over = p->failed = true;
			failed++;
			left--;
			break;
		}
		if (bar && left) {
			struct dmaload_event sum = { .type = DMALOAD_EV_PROGRESS };

			for (size_t k = 0; k < n; k++)
				if (!pf[k].failed) {
					sum.done += pf[k].done;
					sum.total += pf[k].total;
				}
			progress_draw(&sum, &pg);
		}
	}
	progress_clear(&pg);
	dmaload_close(dl);
	free(pf);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

/* ---- status ---------------------------------------------------------------------- */

static const char *format_uptime(char *buf, size_t cap, uint64_t ms)
{
	uint64_t s = ms / 1000;

	if (s >= 86400)
		snprintf(buf, cap, "%" PRIu64 "d %02u:%02u:%02u", s / 86400,
			 (unsigned)(s % 86400 / 3600), (unsigned)(s % 3600 / 60),
			 (unsigned)(s % 60));
	else
		snprintf(buf, cap, "%02u:%02u:%02u", (unsigned)(s / 3600),
			 (unsigned)(s % 3600 / 60), (unsigned)(s % 60));
	return buf;
}

static void status_text(const union ctl_reply *rep)
{
	const struct dmaload_status *st = &rep->status;
	char a[32], b[32];

	printf("uptime:       %s\n", format_uptime(a, sizeof(a), st->uptime_ms));
	printf("clients:      %" PRIu32 "\n", st->clients);
	printf("loads:        %" PRIu32 " active, %" PRIu32 " queued, %" PRIu64 " done, %"
	       PRIu64 " failed\n", st->loads_active, st->loads_queued, st->loads_done,
	       st->loads_failed);
	printf("bytes loaded: %" PRIu64 " (%s)\n", st->bytes_loaded,
	       format_size(a, sizeof(a), st->bytes_loaded));
	if (st->n_loads == 0)
		return;
	printf("\n%8s %8s %6s %-9s %-8s %23s  %s\n", "ID", "PID", "UID", "STATE", "METHOD",
	       "DONE/TOTAL", "NAME");
	for (size_t i = 0; i < st->n_loads; i++) {
		const struct dmaload_status_load *l = &st->loads[i];
		char dt[48];

		snprintf(dt, sizeof(dt), "%s / %s", format_size(a, sizeof(a), l->done),
			 format_size(b, sizeof(b), l->total));
		printf("%8" PRIu64 " %8" PRIu32 " %6" PRIu32 " %-9s %-8s %23s  %s\n", l->id,
		       l->pid, l->uid, dmaload_state_name(l->state),
		       dl_method_name(l->method), dt, l->name);
	}
	if (st->truncated)
		puts("(more loads than fit in one reply)");
}

static void status_json(const union ctl_reply *rep)
{
	const struct dmaload_status *st = &rep->status;

	printf("{\"uptime_ms\":%" PRIu64 ",\"clients\":%" PRIu32 ",\"loads_active\":%" PRIu32
	       ",\"loads_queued\":%" PRIu32 ",\"loads_done\":%" PRIu64 ",\"loads_failed\":%"
	       PRIu64 ",\"bytes_loaded\":%" PRIu64 ",\"truncated\":%s,\"loads\":[",
	       st->uptime_ms, st->clients, st->loads_active, st->loads_queued,
	       st->loads_done, st->loads_failed, st->bytes_loaded,
	       st->truncated ? "true" : "false");
	for (size_t i = 0; i < st->n_loads; i++) {
		const struct dmaload_status_load *l = &st->loads[i];

		printf("%s{\"id\":%" PRIu64 ",\"pid\":%" PRIu32 ",\"uid\":%" PRIu32
		       ",\"state\":\"%s\",\"method\":\"%s\",\"done\":%" PRIu64 ",\"total\":%"
		       PRIu64 ",\"name\":", i ? "," : "", l->id, l->pid, l->uid,
		       dmaload_state_name(l->state), dl_method_name(l->method), l->done,
		       l->total);
		json_string(stdout, l->name);
		putchar('}');
	}
	puts("]}");
}

/* ---- cache ----------------------------------------------------------------------- */

static void list_text(const union ctl_reply *rep)
{
	const struct dmaload_cache_list *l = &rep->list;
	char a[32], b[32];

	printf("cache: %s of %s in %zu entries", format_size(a, sizeof(a), l->cache_bytes),
	       format_size(b, sizeof(b), l->cache_limit), l->n_entries);
	if (l->n_hidden)
		printf(" (and %" PRIu32 " of other users)", l->n_hidden);
	putchar('\n');
	if (l->n_entries == 0)
		return;
	printf("\n%12s %12s %12s %6s %6s %9s %-8s %-7s  %s\n", "OFFSET", "SIZE", "BUFFER",
	       "SERVED", "HITS", "AGE", "METHOD", "FLAGS", "NAME");
	for (size_t i = 0; i < l->n_entries; i++) {
		const struct dmaload_cache_entry *e = &l->entries[i];
		char flags[8], age[32];
		int k = 0;

		if (e->flags & DL_ENTRY_PINNED)
			flags[k++] = 'P';
		if (e->flags & DL_ENTRY_HUGETLB)
			flags[k++] = 'H';
		if (e->flags & DL_ENTRY_LOADING)
			flags[k++] = 'L';
		if (!k)
			flags[k++] = '-';
		flags[k] = '\0';
		snprintf(age, sizeof(age), "%.1fs", (double)e->age_ms / 1000);
		printf("%12" PRIu64 " %12s %12s %6" PRIu64 " %6" PRIu64 " %9s %-8s %-7s  %s\n",
		       e->offset, format_size(a, sizeof(a), e->size),
		       format_size(b, sizeof(b), e->buf_size), e->served, e->hits, age,
		       dl_method_name(e->method), flags, e->name);
	}
	puts("(flags: P pinned, H huge pages, L still loading)");
	if (l->truncated)
		puts("(more entries than fit in one reply)");
}

static void list_json(const union ctl_reply *rep)
{
	const struct dmaload_cache_list *l = &rep->list;

	printf("{\"cache_bytes\":%" PRIu64 ",\"cache_limit\":%" PRIu64 ",\"hidden\":%" PRIu32
	       ",\"truncated\":%s,\"entries\":[", l->cache_bytes, l->cache_limit, l->n_hidden,
	       l->truncated ? "true" : "false");
	for (size_t i = 0; i < l->n_entries; i++) {
		const struct dmaload_cache_entry *e = &l->entries[i];

		printf("%s{\"name\":", i ? "," : "");
		json_string(stdout, e->name);
		printf(",\"offset\":%" PRIu64 ",\"size\":%" PRIu64 ",\"buf_size\":%" PRIu64
		       ",\"file_size\":%" PRIu64 ",\"served\":%" PRIu64 ",\"hits\":%" PRIu64
		       ",\"age_ms\":%" PRIu64 ",\"idle_ms\":%" PRIu64 ",\"uid\":%" PRIu32
		       ",\"method\":\"%s\",\"pinned\":%s,\"hugetlb\":%s,\"loading\":%s}",
		       e->offset, e->size, e->buf_size, e->file_size, e->served, e->hits,
		       e->age_ms, e->idle_ms, e->uid, dl_method_name(e->method),
		       e->flags & DL_ENTRY_PINNED ? "true" : "false",
		       e->flags & DL_ENTRY_HUGETLB ? "true" : "false",
		       e->flags & DL_ENTRY_LOADING ? "true" : "false");
	}
	puts("]}");
}

static int cmd_evict(struct ctl *ctl, int argc, char **argv, int i)
{
	const char *file = NULL;
	bool all = false;
	struct dmaload *dl;
	uint64_t bytes = 0;
	char size[32];
	int r;

	for (; i < argc; i++) {
		r = global_option(ctl, argc, argv, &i);
		if (r >= 2)
			return r - 2;
		if (r)
			continue;
		if (!strcmp(argv[i], "--all") && !all && !file)
			all = true;
		else if (all || file || (argv[i][0] == '-' && argv[i][1]))
			return usage_error("evict: unexpected argument '%s'", argv[i]);
		else
			file = argv[i];
	}
	if (!file && !all)
		return usage_error("evict: no FILE (or --all) given");
	r = ctl_connect(ctl, &dl);
	if (r)
		return r;
	r = dmaload_evict(dl, file, &bytes);
	dmaload_close(dl);
	if (r < 0)
		return fail("evict", file ? file : "--all", -r,
			    r == -ENOENT ? "nothing of it is in the daemon's cache" : NULL);
	if (ctl->json) {
		fputs("{\"file\":", stdout);
		if (file)
			json_string(stdout, file);
		else
			fputs("null", stdout);
		printf(",\"evicted\":%d,\"bytes\":%" PRIu64 "}\n", r, bytes);
	} else {
		printf("evicted %d cached buffer%s of %s (%s)\n", r, r == 1 ? "" : "s",
		       file ? file : "every file", format_size(size, sizeof(size), bytes));
	}
	return EXIT_SUCCESS;
}

static void stats_text(const union ctl_reply *rep)
{
	const struct dmaload_stats *st = &rep->stats;
	char a[32], b[32];

	printf("read from files:  %" PRIu64 " (%s)\n", st->bytes_read,
	       format_size(a, sizeof(a), st->bytes_read));
	printf("served shared:    %" PRIu64 " (%s)\n", st->bytes_cached,
	       format_size(a, sizeof(a), st->bytes_cached));
	printf("loads that read:  %" PRIu64 " direct, %" PRIu64 " buffered, %" PRIu64 " cfr\n",
	       st->loads_by_method[DL_METHOD_DIRECT], st->loads_by_method[DL_METHOD_BUFFERED],
	       st->loads_by_method[DL_METHOD_CFR]);
	printf("cache:            %" PRIu64 " hits, %" PRIu64 " joined, %" PRIu64 " misses, %"
	       PRIu64 " evictions\n", st->cache_hits, st->cache_joins, st->cache_misses,
	       st->cache_evictions);
	printf("cache size:       %s of %s, %" PRIu32 " entries (%" PRIu32 " pinned)\n",
	       format_size(a, sizeof(a), st->cache_bytes),
	       format_size(b, sizeof(b), st->cache_limit), st->cache_entries, st->cache_pinned);
	if (st->n_clients == 0)
		return;
	printf("\n%8s %8s %6s %8s %12s %12s  %s\n", "CONN", "PID", "UID", "LOADS", "BYTES",
	       "THROTTLED", "NAME");
	for (size_t i = 0; i < st->n_clients; i++) {
		const struct dmaload_stats_client *c = &st->clients[i];
		char t[32];

		snprintf(t, sizeof(t), "%.3fs", (double)c->throttled_ns / 1e9);
		printf("%8" PRIu64 " %8" PRIu32 " %6" PRIu32 " %8" PRIu64 " %12s %12s  %s\n",
		       c->conn_id, c->pid, c->uid, c->loads, format_size(a, sizeof(a), c->bytes),
		       t, c->name[0] ? c->name : "-");
	}
}

static void stats_json(const union ctl_reply *rep)
{
	const struct dmaload_stats *st = &rep->stats;

	printf("{\"bytes_read\":%" PRIu64 ",\"bytes_cached\":%" PRIu64 ",\"loads_direct\":%"
	       PRIu64 ",\"loads_buffered\":%" PRIu64 ",\"loads_cfr\":%" PRIu64
	       ",\"cache_hits\":%" PRIu64 ",\"cache_joins\":%" PRIu64 ",\"cache_misses\":%"
	       PRIu64 ",\"cache_evictions\":%" PRIu64 ",\"cache_bytes\":%" PRIu64
	       ",\"cache_limit\":%" PRIu64 ",\"cache_entries\":%" PRIu32
	       ",\"cache_pinned\":%" PRIu32 ",\"clients\":[", st->bytes_read, st->bytes_cached,
	       st->loads_by_method[DL_METHOD_DIRECT], st->loads_by_method[DL_METHOD_BUFFERED],
	       st->loads_by_method[DL_METHOD_CFR], st->cache_hits, st->cache_joins,
	       st->cache_misses, st->cache_evictions, st->cache_bytes, st->cache_limit,
	       st->cache_entries, st->cache_pinned);
	for (size_t i = 0; i < st->n_clients; i++) {
		const struct dmaload_stats_client *c = &st->clients[i];

		printf("%s{\"conn\":%" PRIu64 ",\"pid\":%" PRIu32 ",\"uid\":%" PRIu32
		       ",\"loads\":%" PRIu64 ",\"bytes\":%" PRIu64 ",\"throttled_ns\":%" PRIu64
		       ",\"name\":", i ? "," : "", c->conn_id, c->pid, c->uid, c->loads,
		       c->bytes, c->throttled_ns);
		json_string(stdout, c->name);
		putchar('}');
	}
	puts("]}");
}

/* ---- cancel ---------------------------------------------------------------------- */

static int cmd_cancel(struct ctl *ctl, int argc, char **argv, int i)
{
	struct dmaload_event ev;
	struct dmaload *dl;
	const char *arg = NULL;
	uint64_t load_id, id;
	char *end;
	int r;

	for (; i < argc; i++) {
		r = global_option(ctl, argc, argv, &i);
		if (r >= 2)
			return r - 2;
		if (r)
			continue;
		if (arg || (argv[i][0] == '-' && argv[i][1]))
			return usage_error("cancel: unexpected argument '%s'", argv[i]);
		arg = argv[i];
	}
	if (!arg)
		return usage_error("cancel: no load ID given");
	errno = 0;
	load_id = strtoull(arg, &end, 10);
	if (arg[0] < '0' || arg[0] > '9' || *end || errno || load_id == 0)
		return usage_error("cancel: bad load ID '%s'", arg);

	r = ctl_connect(ctl, &dl);
	if (r)
		return r;
	r = dmaload_cancel(dl, load_id, &id);
	if (r == 0)
		r = dmaload_wait(dl, id, &ev, NULL, NULL);	/* within --timeout */
	dmaload_close(dl);
	if (r < 0)
		return fail("cancel", arg, -r, NULL);
	if (ev.type == DMALOAD_EV_ERROR)
		return fail("cancel", arg, ev.err, ev.message);
	if (ev.type != DMALOAD_EV_OK)
		return fail("cancel", arg, EPROTO, "unexpected reply from the daemon");
	if (ctl->json)
		printf("{\"id\":%" PRIu64 ",\"cancelled\":true}\n", load_id);
	else
		printf("cancelled load %" PRIu64 "\n", load_id);
	return EXIT_SUCCESS;
}

/* ---- info ------------------------------------------------------------------------ */

static void info_json(const union ctl_reply *rep)
{
	const struct dmaload_info *in = &rep->info.in;
	const struct ctl_info *ci = &rep->info;

	printf("{\"default_target\":\"%s\",\"udmabuf\":%s,\"udmabuf_error\":",
	       dl_target_name(in->default_target),
	       in->caps & DL_CAP_UDMABUF ? "true" : "false");
	if (in->udmabuf_err)
		json_string(stdout, strerrorname_np(in->udmabuf_err));
	else
		fputs("null", stdout);
	printf(",\"udmabuf_size_limit\":%" PRIu64 ",\"udmabuf_hugetlb\":%s,"
	       "\"heaps\":[", in->udmabuf_size_limit, in->udmabuf_hugetlb ? "true" : "false");
	for (size_t k = 0; k < in->n_heaps; k++) {
		if (k)
			fputc(',', stdout);
		json_string(stdout, in->heaps[k]);
	}
	printf("],\"huge_page_size\":%" PRIu64 ",\"huge_pages_total\":%" PRIu32
	       ",\"huge_pages_free\":%" PRIu32, in->huge_page_size,
	       in->huge_pages_total, in->huge_pages_free);
	/* null: an older daemon that does not say */
	if (ci->hp_ok)
		printf(",\"huge_pages_overcommit\":%" PRIu64 ",\"huge_pages_surplus\":%"
		       PRIu64 "}\n", ci->hp.overcommit, ci->hp.surplus);
	else
		printf(",\"huge_pages_overcommit\":null,\"huge_pages_surplus\":null}\n");
}

static void info_text(const union ctl_reply *rep)
{
	const struct dmaload_info *in = &rep->info.in;
	const struct ctl_info *ci = &rep->info;
	char size[32];

	printf("default target: %s\n", dl_target_name(in->default_target));
	if (in->caps & DL_CAP_UDMABUF)
		printf("udmabuf:        yes, up to %s per buffer (udmabuf.size_limit_mb)%s\n",
		       in->udmabuf_size_limit ?
		       format_size(size, sizeof(size), in->udmabuf_size_limit) : "?",
		       in->udmabuf_hugetlb ? ", hugetlb memfds taken" : "");
	else
		printf("udmabuf:        no (/dev/udmabuf: %s)\n", strerror(in->udmabuf_err));
	printf("dma-heaps:      ");
	if (!in->n_heaps)
		printf("none (/dev/dma_heap is empty or missing)");
	for (size_t k = 0; k < in->n_heaps; k++)
		printf("%sheap:%s", k ? ", " : "", in->heaps[k]);
	printf("\nhuge pages:     ");
	if (in->huge_page_size)
		printf("%s each, %" PRIu32 " in the pool, %" PRIu32 " free\n",
		       format_size(size, sizeof(size), in->huge_page_size),
		       in->huge_pages_total, in->huge_pages_free);
	else
		printf("none\n");
	if (!in->huge_page_size)
		return;
	printf("surplus pages:  ");
	if (!ci->hp_ok)
		printf("? (an older dmaloadd does not say)\n");
	else if (ci->hp.overcommit)
		printf("up to %" PRIu64 " more on demand (vm.nr_overcommit_hugepages), %"
		       PRIu64 " in use\n", ci->hp.overcommit, ci->hp.surplus);
	else
		printf("none allowed (vm.nr_overcommit_hugepages = 0)%s\n",
		       ci->hp.surplus ? "; some still in use" : "");
}

/* ---- ping ------------------------------------------------------------------------ */

static int cmd_ping(struct ctl *ctl, int argc, char **argv, int i)
{
	struct dmaload *dl;
	double t0, ms;
	uint64_t max;
	char size[32];
	int r;

	/* the round trip is the whole connect: socket, connect(), HELLO and its reply */
	t0 = now_s();
	r = ctl_connect(ctl, &dl);
	if (r)
		return r;
	ms = (now_s() - t0) * 1e3;
	max = dmaload_max_load_size(dl);
	if (ctl->json) {
		fputs("{\"socket\":", stdout);
		json_string(stdout, ctl->socket);
		printf(",\"protocol\":%" PRIu32 ",\"caps\":%" PRIu32 ",\"max_load_size\":%"
		       PRIu64 ",\"round_trip_ms\":%.3f}\n", dmaload_daemon_version(dl),
		       dmaload_daemon_caps(dl), max, ms);
	} else {
		printf("dmaloadd at %s: protocol %" PRIu32 ", caps 0x%02" PRIx32
		       ", max load %s, round trip %.3f ms\n", ctl->socket,
		       dmaload_daemon_version(dl), dmaload_daemon_caps(dl),
		       max == UINT64_MAX ? "unlimited" : format_size(size, sizeof(size), max),
		       ms);
	}
	dmaload_close(dl);
	return EXIT_SUCCESS;
}

/* ---- queries ------------------------------------------------------------------- */

/*
 * status, list, stats and info are one round trip each: connect, ask, hang up, then
 * print the reply as text or JSON. struct ctl_query says how for one of them, and
 * ctl_query() is the one path they all take.
 */
struct ctl_query {
	int (*ask)(struct dmaload *dl, union ctl_reply *rep);	/* 0 or -errno */
	void (*text)(const union ctl_reply *rep);
	void (*json)(const union ctl_reply *rep);
	void (*free)(union ctl_reply *rep);			/* NULL: nothing to free */
	const char *eopnotsupp;		/* the error line's text for -EOPNOTSUPP, or NULL */
};

static int status_ask(struct dmaload *dl, union ctl_reply *rep)
{
	return dmaload_status(dl, &rep->status);
}

static void status_free(union ctl_reply *rep)
{
	dmaload_status_free(&rep->status);
}

static int list_ask(struct dmaload *dl, union ctl_reply *rep)
{
	return dmaload_list(dl, &rep->list);
}

static void list_free(union ctl_reply *rep)
{
	dmaload_list_free(&rep->list);
}

static int stats_ask(struct dmaload *dl, union ctl_reply *rep)
{
	return dmaload_stats(dl, &rep->stats);
}

static void stats_free(union ctl_reply *rep)
{
	dmaload_stats_free(&rep->stats);
}

static int info_ask(struct dmaload *dl, union ctl_reply *rep)
{
	int r = dmaload_info(dl, &rep->info.in);

	if (r < 0)
		return r;
	/* a second round trip, so that struct dmaload_info keeps its layout */
	r = dmaload_info_hugepages(dl, &rep->info.hp);
	rep->info.hp_ok = r == 0;
	return r == -EOPNOTSUPP ? 0 : r;
}

static const struct ctl_query query_status = {
	.ask = status_ask, .text = status_text, .json = status_json, .free = status_free,
};
static const struct ctl_query query_list = {
	.ask = list_ask, .text = list_text, .json = list_json, .free = list_free,
};
static const struct ctl_query query_stats = {
	.ask = stats_ask, .text = stats_text, .json = stats_json, .free = stats_free,
};
static const struct ctl_query query_info = {
	.ask = info_ask, .text = info_text, .json = info_json,
	.eopnotsupp = "the daemon offers no dma-buf targets (an older dmaloadd)",
};

/* Runs query @q of command @what: its one line on failure, its reply on success. */
static int ctl_query(const struct ctl *ctl, const char *what, const struct ctl_query *q)
{
	union ctl_reply rep;
	struct dmaload *dl;
	int r;

	r = ctl_connect(ctl, &dl);
	if (r)
		return r;
	r = q->ask(dl, &rep);
	dmaload_close(dl);
	if (r == -EOPNOTSUPP && q->eopnotsupp)
		return fail(what, NULL, EOPNOTSUPP, q->eopnotsupp);
	if (r < 0)
		return fail(what, NULL, -r, NULL);
	if (ctl->json)
		q->json(&rep);
	else
		q->text(&rep);
	if (q->free)
		q->free(&rep);
	return EXIT_SUCCESS;
}

/* ---- commands -------------------------------------------------------------------- */

/*
 * Every command, in the order --help lists them. A command either parses its own
 * arguments (@run gets argv from just after its name, global options included), or
 * takes only the global options (CMD_GLOBAL_ONLY: main parses them first) and then
 * is a query or a @run without arguments.
 */
enum cmd_args {
	CMD_OWN_ARGS,
	CMD_GLOBAL_ONLY,
};

struct ctl_cmd {
	const char *name;
	const char *usage;		/* its lines under "Commands:" in --help */
	enum cmd_args args;
	int (*run)(struct ctl *ctl, int argc, char **argv, int i);
	const struct ctl_query *query;	/* instead of @run */
};

static const struct ctl_cmd ctl_cmds[] = {
	{ .name = "load", .args = CMD_OWN_ARGS, .run = cmd_load, .usage =
	  "  load FILE [--offset N] [--length N] [--method M] [--exact-size] [--pin]\n"
	  "            [--fd] [--target T] [--dmabuf] [--priority P] [--rate N]\n"
	  "            [--extents OFF:LEN[@BUFOFF],...] [--into-new-memfd]\n"
	  "            [-- CMD ARGS...]\n"
	  "                  load FILE into a sealed memfd or a dma-buf; with -- CMD,\n"
	  "                  run CMD with the buffer as fd 3 "
	  "($DMALOAD_FD, $DMALOAD_SIZE);\n"
	  "                  --extents: those ranges, each at BUFOFF (default: right\n"
	  "                  after the one before); --into-new-memfd: into a memfd\n"
	  "                  dmaload-ctl makes and owns (a load into the caller's buffer)\n" },
	{ .name = "preload", .args = CMD_OWN_ARGS, .run = cmd_preload, .usage =
	  "  preload FILE... [--wait]\n"
	  "                  load each FILE in the background, pinned in the daemon's\n"
	  "                  cache; returns once the daemon took them all, or with\n"
	  "                  --wait once they are loaded (non-zero if any failed)\n" },
	{ .name = "info", .args = CMD_GLOBAL_ONLY, .query = &query_info, .usage =
	  "  info            the buffers the daemon's host offers: dma-buf targets,\n"
	  "                  heaps, the udmabuf size limit, the huge page pool\n" },
	{ .name = "status", .args = CMD_GLOBAL_ONLY, .query = &query_status, .usage =
	  "  status          daemon counters and the loads you may see\n" },
	{ .name = "list", .args = CMD_GLOBAL_ONLY, .query = &query_list, .usage =
	  "  list            the daemon's cached buffers you may see\n" },
	{ .name = "evict", .args = CMD_OWN_ARGS, .run = cmd_evict, .usage =
	  "  evict FILE|--all\n"
	  "                  drop the daemon's cached buffers of FILE (or all yours)\n" },
	{ .name = "stats", .args = CMD_GLOBAL_ONLY, .query = &query_stats, .usage =
	  "  stats           cache and I/O counters, per-client totals\n" },
	{ .name = "cancel", .args = CMD_OWN_ARGS, .run = cmd_cancel, .usage =
	  "  cancel ID       cancel load ID (only loads of the same connection)\n" },
	{ .name = "ping", .args = CMD_GLOBAL_ONLY, .run = cmd_ping, .usage =
	  "  ping            say HELLO and report the daemon's answer\n" },
};

static void usage(FILE *f)
{
	fputs("Usage: dmaload-ctl [--socket PATH] [--json] [--name NAME] [--timeout S] "
	      "COMMAND ...\n"
	      "\n"
	      "Commands:\n", f);
	for (size_t k = 0; k < sizeof(ctl_cmds) / sizeof(ctl_cmds[0]); k++)
		fputs(ctl_cmds[k].usage, f);
	fputs("\n"
	      "Options:\n"
	      "  --socket PATH   daemon socket (default $DMALOAD_SOCKET, then\n"
	      "                  $XDG_RUNTIME_DIR/dmaloadd.sock if it exists, else\n"
	      "                  /run/dmaloadd/dmaloadd.sock)\n"
	      "  --json          one JSON object per line instead of text\n"
	      "  --name NAME     client name the daemon logs (default dmaload-ctl)\n"
	      "  --timeout S     give up when the daemon says nothing for S seconds\n"
	      "                  (default 30; 0: wait forever); a load's progress, or\n"
	      "                  a daemon that still answers, keeps it waiting\n"
	      "  --offset N      first byte to load; N takes K, M, G, T suffixes (x1024)\n"
	      "  --length N      bytes to load (default: to the end of the file)\n"
	      "  --method M      auto (the daemon chooses), direct (O_DIRECT), buffered\n"
	      "                  (page cache) or cfr (copy_file_range / splice)\n"
	      "  --exact-size    the buffer must be exactly the data's size (no huge\n"
	      "                  pages rounded up)\n"
	      "  --pin           keep the buffer in the daemon's cache until evicted\n"
	      "  --fd            open FILE here and pass the fd, instead of the path\n"
	      "  --target T      auto (the daemon's default), memfd, udmabuf or heap:NAME\n"
	      "  --dmabuf        with target auto: a dma-buf if the host has one (udmabuf,\n"
	      "                  else a heap), else a memfd\n"
	      "  --priority P    foreground (the default) or background: background\n"
	      "                  loads read only when foreground ones leave the disk idle\n"
	      "  --rate N        read at most N bytes/s (K, M, G suffixes, x1024); only\n"
	      "                  lowers the daemon's limit for this client, never raises it\n"
	      "  --help          this text\n"
	      "  --version       the version\n", f);
}

/* Runs command @c with its arguments at argv[i..]: the one place commands start. */
static int cmd_dispatch(struct ctl *ctl, const struct ctl_cmd *c, int argc, char **argv,
			int i)
{
	int r;

	if (c->args == CMD_GLOBAL_ONLY) {
		r = only_global_options(ctl, argc, argv, i, c->name);
		if (r >= 0)
			return r;
	}
	if (c->query)
		return ctl_query(ctl, c->name, c->query);
	return c->run(ctl, argc, argv, i);
}

/* ---- main ------------------------------------------------------------------------ */

int main(int argc, char **argv)
{
	struct ctl ctl = { .name = "dmaload-ctl", .timeout_ms = CTL_TIMEOUT_S * 1000 };
	const char *cmd = NULL;
	int i, r;

	for (i = 1; i < argc && !cmd; i++) {
		r = global_option(&ctl, argc, argv, &i);
		if (r >= 2)
			return r - 2;
		if (r)
			continue;
		if (argv[i][0] == '-' && argv[i][1])
			return usage_error("unknown option '%s'", argv[i]);
		cmd = argv[i];
	}
	if (!cmd)
		return usage_error("no command given");
	/* Resolved once here, so that messages name the socket actually used. */
	if (!ctl.socket)
		ctl.socket = dmaload_default_socket();

	r = -1;
	for (size_t k = 0; k < sizeof(ctl_cmds) / sizeof(ctl_cmds[0]); k++)
		if (!strcmp(cmd, ctl_cmds[k].name)) {
			r = cmd_dispatch(&ctl, &ctl_cmds[k], argc, argv, i);
			break;
		}
	if (r < 0)
		return usage_error("unknown command '%s'", cmd);

	/* output that could not be written is a failure too (a full disk, a closed pipe) */
	if (fflush(stdout) != 0 || ferror(stdout))
		return r ? r : fail("write", NULL, errno ? errno : EIO, NULL);
	return r;
}
