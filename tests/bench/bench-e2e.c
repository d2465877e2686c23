/*
 * bench-e2e.c: the daemon rows of the copy-method benchmark (make bench): a private
 * dmaloadd, started with tests/lib's launcher, loads the files through libdmaload
 * (tests/bench/lib/row.h says what a row is and what it measures).
 *
 *   bench-e2e [--runs N] [--hot] [--label TEXT] [--io 'KEY = VALUE']... [--cache SIZE]
 *             [--clients N] [--into] DAEMON METHOD on|off WORKDIR FILE...
 *
 * DAEMON is the dmaloadd binary; METHOD the LOADs' method (auto, direct, buffered,
 * cfr); on|off the daemon's [io] hugetlb; WORKDIR where its dir goes. --io (repeatable)
 * adds a line to the [io] section of the daemon's config, after "hugetlb = ..."; every
 * key not given keeps the daemon's built-in default, fixed_buffers included. --cache
 * SIZE is the daemon's cache_limit (default 0, so that every run reads its files
 * rather than finding the buffers of the last run kept). --clients N (one FILE): N
 * connections load it at once, so the daemon shares one read between them; the row's
 * bytes are N times the file's and every buffer is checked. --into: the loads go into
 * buffers of the bench's own (dmaload_load_into_path), one memfd per file made once
 * before the runs and reused by every run, as a server that keeps its arenas does:
 * hugetlb memfds for "on", 4 KiB ones (fallocated) for "off"; the daemon's own
 * hugetlb setting is then moot.
 *
 * Before the runs, one small load with the same method pays the daemon's one-time
 * probes and set-up, as a long-running daemon has. A daemon that answers ERROR, dies
 * or hangs (60 s) makes the row an error line with its last log line.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "dmaload.h"
#include "lib/row.h"

#define E2E_TIMEOUT_MS 60000		/* an e2e run this long is a hang: the slowest
					 * real one (1 GiB buffered, 4 KiB) takes ~7 s */

/* --cache, --clients and --into */
static const char *cache_limit = "0";
static int n_clients = 1;
static bool into;
#define INTO_MAX 256
static int into_fd[INTO_MAX];		/* --into: the bench's buffer per file */
static uint64_t into_len[INTO_MAX];
static struct dmaload *extra_dl[63];	/* connections 2..n_clients */

/* The --io lines, in order: extra [io] keys of the daemon's config. */
#define IO_LINES_MAX 16
static const char *io_lines[IO_LINES_MAX];
static int n_io_lines;

/* User + system time of @pid (proc_cpu_ticks(): every thread, dead ones too), ns.
 * Clock ticks, so 10 ms steps: fine against loads of hundreds of ms. */
static int cpu_pid_ns(pid_t pid, uint64_t *out)
{
	long ticks = proc_cpu_ticks(pid);

	if (ticks < 0)
		return -EIO;	/* the callers only tell the daemon is gone */
	*out = (uint64_t)ticks * (1000000000ull / (uint64_t)sysconf(_SC_CLK_TCK));
	return 0;
}

/* ---- the daemon ---------------------------------------------------------------- */

/* The private daemon (tests/lib's launcher) and the row's first connection to it. */
static struct {
	struct test_daemon d;
	struct dmaload *dl;
} dmn = { .d = { .pid = -1 } };

/* The last line of the daemon's log, for error rows. */
static const char *daemon_log_last(void)
{
	static char line[512];
	char buf[4096];
	ssize_t n;
	int fd = open(dmn.d.log, O_RDONLY | O_CLOEXEC);
	off_t end;
	char *p;

	line[0] = 0;
	if (fd < 0)
		return line;
	end = lseek(fd, 0, SEEK_END);
	n = pread(fd, buf, sizeof(buf) - 1, end > (off_t)sizeof(buf) - 1 ?
		  end - (off_t)sizeof(buf) + 1 : 0);
	close(fd);
	if (n <= 0)
		return line;
	buf[n] = 0;
	while (n > 0 && buf[n - 1] == '\n')
		buf[--n] = 0;
	p = strrchr(buf, '\n');
	snprintf(line, sizeof(line), "%.500s", p ? p + 1 : buf);
	return line;
}

/* Why the daemon is gone: "exited with status 1" or "killed by SIGSEGV". */
static const char *daemon_gone(void)
{
	static char buf[128];
	int st;

	if (!daemon_reap(&dmn.d, &st))
		return NULL;
	if (WIFSIGNALED(st))
		snprintf(buf, sizeof(buf), "killed by %s", sigabbrev_np(WTERMSIG(st)) ?
			 sigabbrev_np(WTERMSIG(st)) : "a signal");
	else
		snprintf(buf, sizeof(buf), "exited with status %d", WEXITSTATUS(st));
	return buf;
}

/* Closes the connections, stops the daemon (SIGTERM, then SIGKILL after 20 s) and
 * removes its dir. */
static void e2e_daemon_stop(void)
{
	dmn.dl = dmn.dl ? dmaload_close(dmn.dl) : NULL;
	for (int i = 0; i < 63; i++)
		extra_dl[i] = extra_dl[i] ? dmaload_close(extra_dl[i]) : NULL;
	daemon_stop(&dmn.d);
	if (dmn.d.dir[0])
		daemon_cleanup(&dmn.d);
}

/*
 * Starts @bin with tests/lib's launcher on a private socket and config in a fresh dir
 * under @workdir, with "[io] hugetlb = @hugetlb", then the --io lines, and every other
 * key at its default, and connects to it.
 */
static int e2e_daemon_start(const char *bin, const char *workdir, const char *hugetlb)
{
	char conf[4096], why[512];
	size_t n;
	int r;

	n = (size_t)snprintf(conf, sizeof(conf), "# written by tests/bench/bench-e2e\n"
			     "[cache]\ncache_limit = %s\n[io]\nhugetlb = %s\n", cache_limit,
			     hugetlb);
	for (int i = 0; i < n_io_lines && n < sizeof(conf); i++)
		n += (size_t)snprintf(conf + n, sizeof(conf) - n, "%s\n", io_lines[i]);
	if (n >= sizeof(conf))
		return row_fail("dmaloadd config: too long");
	/* the launcher runs $DMALOADD in a dir under $DMALOAD_TEST_TMP */
	setenv("DMALOADD", bin, 1);
	setenv("DMALOAD_TEST_TMP", workdir, 1);
	r = daemon_start_conf(&dmn.d, "e2e", conf, why, sizeof(why));
	if (r < 0)
		return row_fail("dmaloadd (hugetlb = %s) at start: %s: %s", hugetlb, why,
				daemon_log_last());
	r = dmaload_connect(&dmn.dl, dmn.d.sock, "bench");
	if (r < 0)
		return row_fail("connect to dmaloadd on %s: %s", dmn.d.sock, errtext(-r));
	return 0;
}

/* "ERROR EINVAL: the daemon's text", or the connection's failure with the daemon's
 * fate and last log line. */
static int e2e_conn_failed(int r)
{
	const char *gone;

	usleep(100000);		/* give a crashing daemon time to be reaped */
	gone = daemon_gone();
	if (gone)
		return row_fail("dmaloadd %s: %s", gone, daemon_log_last());
	return row_fail("connection to dmaloadd: %s", errtext(-r));
}

/*
 * Loads all files at once on the one connection and waits for every final event.
 * Fills fds (DONE buffers, -1 for others) and evs. Returns 0, or -1 with the error.
 */
static int e2e_load_all(uint8_t method, uint64_t length, int n, int *fds,
			struct dmaload_event *evs)
{
	uint64_t ids[n], deadline = now_ns() + (uint64_t)E2E_TIMEOUT_MS * 1000000;
	struct dmaload_opts o;
	struct dmaload_event ev;
	int left = n, r = 0;

	dmaload_opts_init(&o);
	o.method = method;
	o.length = length;
	for (int i = 0; i < n; i++)
		fds[i] = -1;
	for (int i = 0; i < n; i++) {
		r = into ? dmaload_load_into_path(dmn.dl, files[i].path, into_fd[i], 0, &o,
						  &ids[i]) :
			   dmaload_load_path(dmn.dl, files[i].path, &o, &ids[i]);
		if (r < 0) {
			/* the ones sent are cancelled when the connection closes */
			return e2e_conn_failed(r);
		}
	}
	while (left > 0) {
		int k = -1;

		r = dmaload_next_event(dmn.dl, &ev, 1000);
		if (r < 0)
			return e2e_conn_failed(r);
		if (r == 0) {
			if (now_ns() > deadline)
				return row_fail("dmaloadd: %d of %d loads unfinished after %d s", left,
						n, E2E_TIMEOUT_MS / 1000);
			if (daemon_gone())
				return e2e_conn_failed(-ECONNRESET);
			continue;
		}
		for (int i = 0; i < n; i++)
			if (ids[i] == ev.id)
				k = i;
		if (k < 0 || (ev.type != DMALOAD_EV_DONE && ev.type != DMALOAD_EV_ERROR)) {
			if (ev.type == DMALOAD_EV_DONE && ev.fd >= 0)
				close(ev.fd);
			continue;
		}
		evs[k] = ev;
		if (ev.type == DMALOAD_EV_DONE)
			fds[k] = into ? dup(into_fd[k]) : ev.fd;	/* --into: checked as
									 * any buffer */
		else
			row_fail("dmaloadd: ERROR %s: %s", errtext(ev.err), ev.message);
		left--;
	}
	return row_error[0] ? -1 : 0;
}

/*
 * --clients N: every connection loads files[0] at once, then waits for its DONE.
 * Fills fds and evs (N of each). Returns 0, or -1 with the error.
 */
static int e2e_load_shared(uint8_t method, int *fds, struct dmaload_event *evs)
{
	uint64_t ids[64];
	struct dmaload_opts o;
	int r;

	dmaload_opts_init(&o);
	o.method = method;
	for (int i = 0; i < n_clients; i++)
		fds[i] = -1;
	for (int i = 0; i < n_clients; i++) {
		r = dmaload_load_path(i ? extra_dl[i - 1] : dmn.dl, files[0].path, &o, &ids[i]);
		if (r < 0)
			return e2e_conn_failed(r);
	}
	for (int i = 0; i < n_clients; i++) {
		r = dmaload_wait(i ? extra_dl[i - 1] : dmn.dl, ids[i], &evs[i], NULL, NULL);
		if (r < 0)
			return e2e_conn_failed(r);
		if (evs[i].type != DMALOAD_EV_DONE)
			return row_fail("dmaloadd: ERROR %s: %s", errtext(evs[i].err),
					evs[i].message);
		fds[i] = evs[i].fd;
	}
	return 0;
}

/* Counts of what the daemon said it did, for the note. */
struct e2e_seen {
	unsigned method[4][16];		/* [method][reason] */
	unsigned hugetlb, buffers;
	unsigned joined, cached;	/* DONEs that shared a read */
};

/* Maps each received buffer, checks it, and leaves it mapped for the timed close. */
static int e2e_check(int n, const int *fds, const struct dmaload_event *evs,
		     uint8_t **maps, uint64_t *map_len, struct e2e_seen *seen)
{
	for (int i = 0; i < n; i++) {
		int fi = n_clients > 1 ? 0 : i;	/* --clients: all of the one file */
		struct stat st;

		maps[i] = NULL;
		if (evs[i].size != files[fi].size)
			return row_fail("dmaloadd: DONE size %" PRIu64 " for %s of %" PRIu64 " bytes",
					evs[i].size, files[fi].path, files[fi].size);
		if (fstat(fds[i], &st) < 0 || (uint64_t)st.st_size < evs[i].size)
			return row_fail("dmaloadd: buffer of %s smaller than its data",
					files[fi].path);
		map_len[i] = (uint64_t)st.st_size;
		maps[i] = mmap(NULL, map_len[i], PROT_READ, MAP_SHARED, fds[i], 0);
		if (maps[i] == MAP_FAILED) {
			maps[i] = NULL;
			return row_fail("mmap of a DONE buffer: %s", errtext(errno));
		}
		if (buf_check(maps[i], fi, "dmaloadd") < 0)
			return -1;
		seen->joined += !!(evs[i].done_flags & DL_DONE_JOINED);
		seen->cached += !!(evs[i].done_flags & DL_DONE_CACHED);
		if (evs[i].method < 4 && evs[i].reason < 16)
			seen->method[evs[i].method][evs[i].reason]++;
		seen->hugetlb += !!(evs[i].done_flags & DL_DONE_HUGETLB);
		seen->buffers++;
	}
	return 0;
}

static int e2e_run(uint8_t method, struct sample *s, struct e2e_seen *seen)
{
	int n = n_clients > 1 ? n_clients : n_files, fds[n], r;
	struct dmaload_event *evs = calloc(n, sizeof(*evs));
	uint8_t *maps[n];
	uint64_t map_len[n], t0, t1, t2, t3, c0, c1, c2, c3, d0 = 0, d1 = 0;

	if (!evs)
		return row_fail("out of memory");
	for (int i = 0; i < n; i++)
		maps[i] = NULL;
	if (cpu_pid_ns(dmn.d.pid, &d0) < 0) {
		free(evs);
		return e2e_conn_failed(-ECONNRESET);
	}
	c0 = cpu_self_ns();
	t0 = now_ns();
	r = n_clients > 1 ? e2e_load_shared(method, fds, evs) :
			    e2e_load_all(method, DMALOAD_TO_EOF, n, fds, evs);
	t1 = now_ns();
	c1 = cpu_self_ns();
	if (r == 0 && cpu_pid_ns(dmn.d.pid, &d1) < 0)
		r = e2e_conn_failed(-ECONNRESET);
	if (r == 0)
		r = e2e_check(n, fds, evs, maps, map_len, seen);
	c2 = cpu_self_ns();
	t2 = now_ns();
	for (int i = 0; i < n; i++) {
		if (maps[i])
			munmap(maps[i], map_len[i]);
		if (fds[i] >= 0)
			close(fds[i]);
	}
	t3 = now_ns();
	c3 = cpu_self_ns();
	free(evs);
	if (r < 0)
		return r;
	s->creat_ms = NAN;
	s->io_ms = (t1 - t0) / 1e6;
	s->close_ms = (t3 - t2) / 1e6;
	s->cpu_ms = ((c1 - c0) + (c3 - c2) + (d1 - d0)) / 1e6;
	s->bytes = total_bytes * (uint64_t)(n_clients > 1 ? n_clients : 1);
	return 0;
}

__attribute__((format(printf, 3, 4)))
static void note_add(char *note, size_t len, const char *fmt, ...)
{
	size_t used = strlen(note);
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(note + used, len - used, fmt, ap);
	va_end(ap);
}

static int e2e_row(const char *bin, const char *method, const char *hugetlb,
		   const char *workdir, int runs, bool hot, struct sample *s, char *note,
		   size_t note_len)
{
	static const char *names[] = { "auto", "direct", "buffered", "cfr" };
	struct e2e_seen seen = { 0 };
	int m = -1, fds[1];
	struct dmaload_event ev;

	for (int k = 0; k < 4; k++)
		if (strcmp(method, names[k]) == 0)
			m = k;
	if (m < 0)
		return row_fail("unknown method %s", method);
	if (e2e_daemon_start(bin, workdir, hugetlb) < 0)
		return -1;
	/*
	 * A first small load with the same method, outside the runs: a long-running
	 * daemon has already made its one-time probes and set-up, so a run should not
	 * pay for them. Its error, if any, is the row's.
	 */
	if (e2e_load_all((uint8_t)m, files[0].size < 4 * MiB ? files[0].size : 4 * MiB, 1,
			 fds, &ev) < 0)
		return -1;
	close(fds[0]);
	for (int i = 0; i + 1 < n_clients; i++) {
		int r = dmaload_connect(&extra_dl[i], dmn.d.sock, "bench");

		if (r < 0)
			return e2e_conn_failed(r);
	}
	for (int i = 0; i < runs; i++)
		if ((strcmp(hugetlb, "off") != 0 && !into && hugetlb_wait() < 0) ||
		    run_prepare(hot) < 0 ||
		    e2e_run((uint8_t)m, &s[i], &seen) < 0)
			break;
	if (row_error[0])
		return -1;

	/* what the daemon said it did, over all runs: "direct (not in the page cache);
	 * hugetlb" */
	for (int mm = 0; mm < 4; mm++)
		for (int rr = 0; rr < 16; rr++) {
			unsigned k = seen.method[mm][rr];

			if (!k)
				continue;
			note_add(note, note_len, "%s%s (%s)", note[0] ? ", " : "",
				 dl_method_name(mm), dl_reason_name(rr));
			if (k != seen.buffers)
				note_add(note, note_len, " for %u of %u buffers", k, seen.buffers);
		}
	if (n_clients > 1)
		note_add(note, note_len, "; %d clients: %u of %u DONEs joined a running load, "
			 "%u from the cache", n_clients, seen.joined, seen.buffers, seen.cached);
	if (into)
		note_add(note, note_len, "; into the bench's buffers, reused");
	if (seen.hugetlb == seen.buffers)
		note_add(note, note_len, "; hugetlb");
	else if (seen.hugetlb == 0)
		note_add(note, note_len, "; 4 KiB pages");
	else
		note_add(note, note_len, "; hugetlb for %u of %u buffers", seen.hugetlb,
			 seen.buffers);
	return 0;
}

/* --into: one buffer per file, made once: a hugetlb memfd rounded up to whole huge
 * pages (@huge), else a 4 KiB one, fallocated so every run finds its pages; sealed
 * against shrinking, as the daemon wants. */
static int into_make(bool huge)
{
	uint64_t hp = huge_page_size();

	if (n_files > INTO_MAX)
		return row_fail("--into: at most %d files", INTO_MAX);
	if (huge && !hp)
		return row_fail("--into on: no huge pages on this host");
	for (int i = 0; i < n_files; i++) {
		int fd = memfd_create("bench-into", MFD_CLOEXEC | MFD_ALLOW_SEALING |
				      (huge ? MFD_HUGETLB : 0));

		into_len[i] = huge ? (files[i].size + hp - 1) / hp * hp : files[i].size;
		if (fd < 0 || ftruncate(fd, (off_t)into_len[i]) < 0 ||
		    fallocate(fd, 0, 0, (off_t)into_len[i]) < 0 ||
		    fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK) < 0) {
			int err = errno;

			if (fd >= 0)
				close(fd);
			return row_fail("--into: a %s buffer of %" PRIu64 " bytes: %s",
					huge ? "hugetlb" : "4 KiB", into_len[i], errtext(err));
		}
		into_fd[i] = fd;
	}
	return 0;
}

/* ---- main ---------------------------------------------------------------------- */

static void usage(void)
{
	fprintf(stderr, "usage: bench-e2e [--runs N] [--hot] [--label TEXT] "
		"[--io 'KEY = VALUE']... [--cache SIZE] [--clients N] [--into] "
		"DAEMON METHOD on|off WORKDIR FILE...\n");
	exit(2);
}

int main(int argc, char **argv)
{
	struct sample s[64];
	struct row_opts o;
	char note[512] = "";
	int a = 1;

	row_opts_init(&o, "e2e");
	for (; a < argc && strncmp(argv[a], "--", 2) == 0; a++) {
		if (row_option(&o, argc, argv, &a, true))
			continue;
		if (strcmp(argv[a], "--clients") == 0 && a + 1 < argc &&
		    atoi(argv[a + 1]) >= 1 && atoi(argv[a + 1]) <= 64)
			n_clients = atoi(argv[++a]);
		else if (strcmp(argv[a], "--into") == 0)
			into = true;
		else if (strcmp(argv[a], "--cache") == 0 && a + 1 < argc &&
			 !strpbrk(argv[a + 1], "\n\r[#="))
			cache_limit = argv[++a];
		else if (strcmp(argv[a], "--io") == 0 && a + 1 < argc &&
			 n_io_lines < IO_LINES_MAX && !strpbrk(argv[a + 1], "\n\r[#") &&
			 strchr(argv[a + 1], '='))
			io_lines[n_io_lines++] = argv[++a];
		else
			usage();
	}
	if (argc - a < 5 || o.runs < 1 || o.runs > 64)
		usage();
	if (n_clients > 1 && (argc - a != 5 || into))
		usage();	/* --clients: one file, the daemon's buffers */
	row_init();
	daemon_kill_on_signal(&dmn.d);	/* PR_SET_PDEATHSIG covers the rest */
	if (files_stat(argv + a + 4, argc - a - 4) == 0 &&
	    (!into || into_make(strcmp(argv[a + 2], "off") != 0) == 0))
		e2e_row(argv[a], argv[a + 1], argv[a + 2], argv[a + 3], o.runs, o.hot, s,
			note, sizeof(note));
	for (int i = 0; into && i < n_files; i++)
		if (into_fd[i] > 0)
			close(into_fd[i]);
	e2e_daemon_stop();
	print_row(o.label, s, o.runs, note);
	return 0;
}
