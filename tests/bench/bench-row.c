/*
 * bench-row.c: measures one row of the copy-method benchmark (make bench).
 *
 * A row is one way of getting a set of files into memfd buffers, run --runs times;
 * it prints one tab-separated line with the median, min and max of each column, which
 * tests/bench/run.sh turns into the table of docs/BENCHMARKS.md:
 *
 *   bench-row [OPTS] raw METHOD TARGET FILE...   this process does the copy itself
 *   bench-row [OPTS] fio malloc|shmhuge FILE...   fio reads the files: the disk's limit
 *   bench-row [OPTS] e2e DAEMON METHOD HUGETLB WORKDIR FILE...
 *                                                  a private dmaloadd, through libdmaload
 *
 * OPTS: --runs N (default 3); --hot (files read into the page cache before each run
 * instead of dropped from it); --label TEXT (the row's name in the output line);
 * --io 'KEY = VALUE' (e2e only, repeatable: a line for the [io] section of the
 * daemon's config, after "hugetlb = HUGETLB"; every key not given keeps the daemon's
 * built-in default, fixed_buffers included); --cache SIZE (e2e only: the daemon's
 * cache_limit; default 0, so that every run reads its files rather than finding the
 * buffers of the last run kept); --clients N (e2e only, one FILE: N connections load
 * it at once, so the daemon shares one read between them; the row's bytes are N times
 * the file's and every buffer is checked).
 *
 * Raw METHODs (TARGET is 4k or huge, a memfd of 4 KiB pages or MFD_HUGETLB):
 *   naive     read() of the whole file into the mapping, what a client does by itself
 *   direct    io_uring READ, O_DIRECT, 4 MiB chunks, 64 in flight
 *   fixed     the same with READ_FIXED into the mapping registered with io_uring
 *   buffered  io_uring READ through the page cache, 4 MiB chunks, 64 in flight
 *   splice    io_uring linked SPLICE pairs file -> pipe -> memfd, 1 MiB pipes, 16 pairs
 *   cfr       copy_file_range(file -> memfd); where the kernel refuses it, the row is
 *             the refusal
 *
 * What a run measures (milliseconds):
 *   creat  the buffers made ready: memfd_create, ftruncate, mmap with MAP_POPULATE (so
 *          the page allocation and faults a 4 KiB memfd costs land here for every
 *          method, not in whichever read happens to touch a page first), the pipes of
 *          splice, the registration (pinning) of fixed. A hypervisor that charges the
 *          first write to each page on top (docs/BENCHMARKS.md) charges it to io;
 *   io     the files opened and copied, all of them, with every chunk complete;
 *   close  munmap and close of the buffers (the memfd's pages are freed here), and
 *          the unregistration and pipes;
 *   cpu    user + system time of this process over creat + io + close; for e2e, the
 *          daemon's (from /proc/PID/stat, all its threads) plus this client's.
 * For e2e, io runs from the first LOAD sent to the last DONE received, so the daemon's
 * own allocation, sealing and fd passing are inside it and creat is "-"; close is
 * munmap and close of the received buffers. For fio, io is fio's own runtime.
 *
 * Every run checks samples of every buffer (first and last 4 KiB, 16 spots between)
 * against the file, so a broken load is reported as an error, never as fast. A row
 * that cannot be measured (the kernel refuses the method, the daemon answers ERROR or
 * dies) prints an error line with the reason instead of numbers.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <liburing.h>

#include "dmaload.h"
#include "dmaload-proto.h"

#define KiB ((uint64_t)1024)
#define MiB (KiB * 1024)
#define GiB (1024ull * MiB)

#define CHUNK (4 * MiB)			/* READ chunk, as fio --bs=4M */
#define QD 64				/* READs in flight, as fio --iodepth=64 */
#define PIPE_SIZE (1 * MiB)		/* F_SETPIPE_SZ of each splice pipe */
#define PAIRS 16			/* splice pairs in flight */
#define FIXED_MAX GiB			/* io_uring's limit on one registered iovec */
#define SAMPLES 16			/* spots checked between a buffer's ends */
#define E2E_TIMEOUT_MS 60000		/* an e2e run this long is a hang: the slowest
					 * real one (1 GiB buffered, 4 KiB) takes ~7 s */

/* ---- errors and time ----------------------------------------------------------- */

/* The first error of the row; once set, the row prints it and nothing else. */
static char row_error[512];

__attribute__((format(printf, 1, 2)))
static int fail(const char *fmt, ...)
{
	va_list ap;

	if (row_error[0])
		return -1;
	va_start(ap, fmt);
	vsnprintf(row_error, sizeof(row_error), fmt, ap);
	va_end(ap);
	return -1;
}

/* "EXDEV (Invalid cross-device link)" for a positive errno. */
static const char *errtext(int err)
{
	static char buf[128];
	const char *name = strerrorname_np(err);

	snprintf(buf, sizeof(buf), "%s (%s)", name ? name : "?", strerror(err));
	return buf;
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000 + (uint64_t)ts.tv_nsec;
}

/* User + system time of this process, all threads, io_uring's workers included. */
static uint64_t cpu_self_ns(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return (uint64_t)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000000 +
	       (uint64_t)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) * 1000;
}

/* User + system time of @pid from /proc/PID/stat, which counts every thread, dead ones
 * too. Clock ticks, so 10 ms steps: fine against loads of hundreds of ms. */
static int cpu_pid_ns(pid_t pid, uint64_t *out)
{
	char path[64], buf[1024], *p;
	unsigned long long ut, st;
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return -EIO;
	buf[n] = 0;
	/* The name in parentheses may hold spaces: fields count from the last ')'. */
	p = strrchr(buf, ')');
	if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu",
			 &ut, &st) != 2)
		return -EIO;
	*out = (ut + st) * (1000000000ull / (uint64_t)sysconf(_SC_CLK_TCK));
	return 0;
}

/* ---- the files ----------------------------------------------------------------- */

struct bfile {
	const char *path;
	uint64_t size;
};

static struct bfile *files;
static int n_files;
static uint64_t total_bytes;

static int files_stat(char **paths, int n)
{
	struct stat st;

	files = calloc(n, sizeof(*files));
	if (!files)
		return fail("out of memory");
	for (int i = 0; i < n; i++) {
		if (stat(paths[i], &st) < 0)
			return fail("%s: %s", paths[i], errtext(errno));
		if (!S_ISREG(st.st_mode) || st.st_size == 0)
			return fail("%s: not a non-empty regular file", paths[i]);
		files[i].path = paths[i];
		files[i].size = (uint64_t)st.st_size;
		total_bytes += files[i].size;
	}
	n_files = n;
	return 0;
}

static int drop_caches(void)
{
	int fd;

	sync();
	fd = open("/proc/sys/vm/drop_caches", O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return fail("drop the page cache: /proc/sys/vm/drop_caches: %s (needs root)",
			    errtext(errno));
	if (write(fd, "3", 1) != 1) {
		close(fd);
		return fail("drop the page cache: %s", errtext(errno));
	}
	close(fd);
	return 0;
}

/* Reads every file once through the page cache, so a --hot run finds it all there. */
static int files_warm(void)
{
	static char scratch[1 << 20];

	for (int i = 0; i < n_files; i++) {
		int fd = open(files[i].path, O_RDONLY | O_CLOEXEC);
		ssize_t n;

		if (fd < 0)
			return fail("%s: %s", files[i].path, errtext(errno));
		while ((n = read(fd, scratch, sizeof(scratch))) > 0)
			;
		close(fd);
		if (n < 0)
			return fail("%s: %s", files[i].path, errtext(errno));
	}
	return 0;
}

/* Before each run: cold (nothing of the files cached) or hot (all of them cached). */
static int run_prepare(bool hot)
{
	return hot ? files_warm() : drop_caches();
}

/*
 * Compares @len bytes at @off of @buf with file @i: first and last 4 KiB and SAMPLES
 * spots of 512 bytes in between. Random file content means a zero-filled, shifted or
 * swapped chunk fails. Runs outside the timed parts.
 */
static int buf_check(const uint8_t *buf, int i, const char *what)
{
	uint64_t size = files[i].size, spots[SAMPLES + 2], lens[SAMPLES + 2];
	uint8_t want[4096];
	int fd, n = 0;

	spots[n] = 0, lens[n++] = size < 4096 ? size : 4096;
	spots[n] = size > 4096 ? size - 4096 : 0, lens[n++] = size < 4096 ? size : 4096;
	for (int k = 1; k <= SAMPLES; k++) {
		uint64_t at = size / (SAMPLES + 1) * k;

		spots[n] = at, lens[n++] = at + 512 <= size ? 512 : size - at;
	}
	fd = open(files[i].path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return fail("check %s: %s", files[i].path, errtext(errno));
	for (int k = 0; k < n; k++) {
		if (pread(fd, want, lens[k], (off_t)spots[k]) != (ssize_t)lens[k]) {
			close(fd);
			return fail("check %s: short read of the file", files[i].path);
		}
		if (memcmp(buf + spots[k], want, lens[k]) != 0) {
			close(fd);
			return fail("%s: buffer of %s differs from the file at bytes %" PRIu64
				    "..%" PRIu64, what, files[i].path, spots[k],
				    spots[k] + lens[k]);
		}
	}
	close(fd);
	return 0;
}

/* ---- one run's numbers, and the row's ------------------------------------------ */

struct sample {
	double creat_ms, close_ms, io_ms, cpu_ms;	/* NAN: not measured in this row */
	uint64_t bytes;
};

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

/* Prints "\tMEDIAN\tMIN\tMAX" of @v (n values, sorted in place) or "\t-\t-\t-". */
static void print_stat(double *v, int n)
{
	double med;

	if (n == 0 || isnan(v[0])) {
		printf("\t-\t-\t-");
		return;
	}
	qsort(v, n, sizeof(*v), cmp_double);
	med = n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
	printf("\t%.2f\t%.2f\t%.2f", med, v[0], v[n - 1]);
}

/* Tabs and newlines would break the line format. */
static void print_clean(const char *s)
{
	for (; *s; s++)
		putchar(*s == '\t' || *s == '\n' || *s == '\r' ? ' ' : *s);
}

/*
 * The row's line: "ok LABEL RUNS BYTES" then median/min/max of creat, close, io,
 * MB/s (10^6 bytes per second of io) and cpu, then NOTE; or "error LABEL TEXT".
 */
static void print_row(const char *label, const struct sample *s, int n, const char *note)
{
	double v[5][64];

	if (row_error[0]) {
		printf("error\t");
		print_clean(label);
		putchar('\t');
		print_clean(row_error);
		putchar('\n');
		return;
	}
	for (int i = 0; i < n; i++) {
		v[0][i] = s[i].creat_ms;
		v[1][i] = s[i].close_ms;
		v[2][i] = s[i].io_ms;
		v[3][i] = s[i].bytes / (s[i].io_ms * 1000.0);
		v[4][i] = s[i].cpu_ms;
	}
	printf("ok\t");
	print_clean(label);
	printf("\t%d\t%" PRIu64, n, s[0].bytes);
	for (int c = 0; c < 5; c++)
		print_stat(v[c], n);
	putchar('\t');
	print_clean(note && *note ? note : "-");
	putchar('\n');
}

/* ---- raw methods: buffers ------------------------------------------------------ */

enum raw_method { RAW_NAIVE, RAW_DIRECT, RAW_FIXED, RAW_BUFFERED, RAW_SPLICE, RAW_CFR };

struct rbuf {
	int fd;				/* the memfd, -1 when none */
	uint8_t *p;			/* its mapping, map_size bytes, or NULL */
	uint64_t map_size;		/* the file's size, rounded up to a huge page */
};

static unsigned long meminfo_value(const char *key)
{
	char line[128];
	size_t n = strlen(key);
	unsigned long v = 0;
	FILE *f = fopen("/proc/meminfo", "re");

	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f))
		if (strncmp(line, key, n) == 0 && line[n] == ':') {
			v = strtoul(line + n + 1, NULL, 10);
			break;
		}
	fclose(f);
	return v;
}

static uint64_t huge_page_size(void)
{
	unsigned long kb = meminfo_value("Hugepagesize");

	return kb ? kb * KiB : 2 * MiB;
}

/*
 * Waits up to 30 s for the huge page pool to have room for every file, each rounded
 * up to whole huge pages. The pool is the machine's: tests running at the same time
 * may hold part of it for a while, and a row that lost that race would show an
 * allocation failure (raw) or a silent fallback to 4 KiB pages (the daemon), not the
 * method.
 */
static int hugetlb_wait(void)
{
	uint64_t unit = huge_page_size(), need = 0;
	unsigned long free_pages = 0;

	for (int i = 0; i < n_files; i++)
		need += (files[i].size + unit - 1) / unit;
	for (int t = 0; t < 300; t++) {
		free_pages = meminfo_value("HugePages_Free");
		if (free_pages >= need)
			return 0;
		usleep(100000);
	}
	return fail("huge page pool: %lu free after 30 s, %" PRIu64 " needed (nr_hugepages "
		    "%lu; another process holds the rest?)", free_pages, need,
		    meminfo_value("HugePages_Total"));
}

/* Makes buffer @b for file @i, pages allocated and mapped (see the top comment). */
static int rbuf_create(struct rbuf *b, int i, bool huge)
{
	uint64_t unit = huge ? huge_page_size() : 4096;

	b->map_size = (files[i].size + unit - 1) / unit * unit;
	b->fd = memfd_create("dmaload-bench", MFD_CLOEXEC | (huge ? MFD_HUGETLB : 0));
	if (b->fd < 0)
		return fail("memfd_create%s: %s", huge ? " MFD_HUGETLB" : "", errtext(errno));
	if (ftruncate(b->fd, (off_t)b->map_size) < 0)
		return fail("ftruncate memfd: %s", errtext(errno));
	b->p = mmap(NULL, b->map_size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE,
		    b->fd, 0);
	if (b->p == MAP_FAILED) {
		b->p = NULL;
		return fail("mmap %s memfd of %" PRIu64 " MiB: %s%s", huge ? "hugetlb" : "4 KiB",
			    b->map_size / MiB, errtext(errno),
			    huge && errno == ENOMEM ? "; huge page pool too small?" : "");
	}
	return 0;
}

static void rbuf_free(struct rbuf *b)
{
	if (b->p)
		munmap(b->p, b->map_size);
	if (b->fd >= 0)
		close(b->fd);
	b->p = NULL;
	b->fd = -1;
}

/* ---- raw methods: the io_uring engine ------------------------------------------ */

/* An in-flight request; user_data points at it and the loop calls complete(). */
struct op {
	void (*complete)(struct op *op, int res);
};

/* One READ chunk: file @file, bytes [off + done, off + len). */
struct rd {
	struct op op;
	int file;
	uint64_t off, len, done;
	bool busy;
};

/* A splice pair's state: bytes before @out_pos are in the buffer, [out_pos, pos) sit
 * in the pipe, [pos, end) are still in the file. Buffer offset = file offset. */
struct pair {
	struct op in, out;		/* file -> pipe, pipe -> memfd */
	int pipe[2];
	int file;
	uint64_t pos, out_pos, end;
	int pending;			/* completions still to come */
	bool busy;
};

static struct {
	struct io_uring ring;
	enum raw_method m;
	bool huge;			/* the buffers are hugetlb memfds */
	int *ffd;			/* the files' fds */
	struct rbuf *buf;
	int *reg_base;			/* fixed: index of file i's first registered iovec */
	int next_file;			/* the next chunk to start */
	uint64_t next_off;
	unsigned chunk;			/* bytes per chunk: CHUNK, or PIPE_SIZE for splice */
	int inflight;
	struct rd rds[QD];
	struct pair pairs[PAIRS];
} eng;

static struct io_uring_sqe *sqe_get(void)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&eng.ring);

	if (!sqe) {
		io_uring_submit(&eng.ring);
		sqe = io_uring_get_sqe(&eng.ring);
	}
	return sqe;		/* never NULL: the ring has room for twice QD */
}

/* Takes the next chunk of the work list into *file, *off, *len; false when done. */
static bool next_chunk(int *file, uint64_t *off, uint64_t *len)
{
	if (row_error[0] || eng.next_file >= n_files)
		return false;
	*file = eng.next_file;
	*off = eng.next_off;
	*len = files[*file].size - *off < eng.chunk ? files[*file].size - *off : eng.chunk;
	eng.next_off += *len;
	if (eng.next_off >= files[*file].size) {
		eng.next_file++;
		eng.next_off = 0;
	}
	return true;
}

static void rd_submit(struct rd *r)
{
	struct io_uring_sqe *sqe = sqe_get();
	uint64_t at = r->off + r->done, n = r->len - r->done;
	uint8_t *dst = eng.buf[r->file].p + at;

	if (eng.m == RAW_FIXED)
		io_uring_prep_read_fixed(sqe, eng.ffd[r->file], dst, n, at,
					 eng.reg_base[r->file] + (int)(at / FIXED_MAX));
	else
		io_uring_prep_read(sqe, eng.ffd[r->file], dst, n, at);
	io_uring_sqe_set_data(sqe, &r->op);
	eng.inflight++;
}

static void rd_complete(struct op *op, int res)
{
	struct rd *r = (struct rd *)op;

	eng.inflight--;
	if (res == -EAGAIN || res == -EINTR) {
		rd_submit(r);
		return;
	}
	if (res < 0) {
		fail("READ%s %s at %" PRIu64 ": %s", eng.m == RAW_FIXED ? "_FIXED" : "",
		     files[r->file].path, r->off + r->done, errtext(-res));
		r->busy = false;
		return;
	}
	if (res == 0) {
		fail("READ %s at %" PRIu64 ": end of file before its size",
		     files[r->file].path, r->off + r->done);
		r->busy = false;
		return;
	}
	r->done += (uint64_t)res;
	if (r->done < r->len) {
		rd_submit(r);		/* short read: the rest, from where it stopped */
		return;
	}
	r->busy = next_chunk(&r->file, &r->off, &r->len);
	r->done = 0;
	if (r->busy)
		rd_submit(r);
}

static void pair_submit(struct pair *p);

static void pair_next(struct pair *p)
{
	uint64_t len;

	p->busy = next_chunk(&p->file, &p->pos, &len);
	if (!p->busy)
		return;
	p->out_pos = p->pos;
	p->end = p->pos + len;
	pair_submit(p);
}

/*
 * Moves what the pair still has to move. Bytes left in the pipe go out first, alone:
 * that is the drain after a short first half (whose linked second half the kernel
 * cancelled) or a short second half. Otherwise a linked pair for the rest of the
 * chunk, or the next chunk.
 */
static void pair_submit(struct pair *p)
{
	struct io_uring_sqe *sqe;
	uint64_t in_pipe = p->pos - p->out_pos;

	if (row_error[0]) {
		p->busy = false;
		return;
	}
	if (in_pipe == 0 && p->pos == p->end) {
		pair_next(p);
		return;
	}
	if (in_pipe == 0) {
		sqe = sqe_get();
		io_uring_prep_splice(sqe, eng.ffd[p->file], (int64_t)p->pos, p->pipe[1], -1,
				     (unsigned)(p->end - p->pos), 0);
		sqe->flags |= IOSQE_IO_LINK;
		io_uring_sqe_set_data(sqe, &p->in);
		in_pipe = p->end - p->pos;
		p->pending++;
		eng.inflight++;
	}
	sqe = sqe_get();
	io_uring_prep_splice(sqe, p->pipe[0], -1, eng.buf[p->file].fd, (int64_t)p->out_pos,
			     (unsigned)in_pipe, 0);
	io_uring_sqe_set_data(sqe, &p->out);
	p->pending++;
	eng.inflight++;
}

/* Both halves (or the lone drain) back: move on. */
static void pair_done_one(struct pair *p)
{
	eng.inflight--;
	if (--p->pending == 0)
		pair_submit(p);
}

static void pair_in_complete(struct op *op, int res)
{
	struct pair *p = (struct pair *)((char *)op - offsetof(struct pair, in));

	if (res > 0)
		p->pos += (uint64_t)res;
	else if (res == 0)
		fail("splice %s -> pipe at %" PRIu64 ": end of file before its size",
		     files[p->file].path, p->pos);
	else if (res != -EAGAIN && res != -EINTR)
		fail("splice file -> pipe: %s", errtext(-res));
	pair_done_one(p);
}

static void pair_out_complete(struct op *op, int res)
{
	struct pair *p = (struct pair *)((char *)op - offsetof(struct pair, out));

	if (res > 0)
		p->out_pos += (uint64_t)res;
	else if (res == 0 || (res < 0 && res != -ECANCELED && res != -EAGAIN && res != -EINTR))
		fail("splice pipe -> %s memfd: %s", eng.huge ? "hugetlb" : "4 KiB",
		     res ? errtext(-res) : "moved nothing");
	pair_done_one(p);
}

/* Runs the ring until every chunk is done or an error has stopped new work and all
 * requests in flight have come back (the kernel may still write into the buffers
 * until then). */
static void ring_run(void)
{
	struct io_uring_cqe *cqe;

	while (eng.inflight > 0) {
		int r = io_uring_submit_and_wait(&eng.ring, 1);

		if (r < 0 && r != -EINTR) {
			fail("io_uring_submit_and_wait: %s", errtext(-r));
			return;		/* cannot happen short of a kernel bug; give up */
		}
		while (io_uring_peek_cqe(&eng.ring, &cqe) == 0) {
			struct op *op = io_uring_cqe_get_data(cqe);
			int res = cqe->res;

			io_uring_cqe_seen(&eng.ring, cqe);
			op->complete(op, res);
		}
	}
}

/* ---- raw methods: one run ------------------------------------------------------ */

static int io_naive(void)
{
	for (int i = 0; i < n_files; i++) {
		uint64_t done = 0;

		while (done < files[i].size) {
			ssize_t n = read(eng.ffd[i], eng.buf[i].p + done, files[i].size - done);

			if (n < 0 && errno == EINTR)
				continue;
			if (n < 0)
				return fail("read %s: %s", files[i].path, errtext(errno));
			if (n == 0)
				return fail("read %s: end of file before its size",
					    files[i].path);
			done += (uint64_t)n;
		}
	}
	return 0;
}

static int io_cfr(bool huge)
{
	for (int i = 0; i < n_files; i++) {
		loff_t in = 0, out = 0;

		while ((uint64_t)in < files[i].size) {
			ssize_t n = copy_file_range(eng.ffd[i], &in, eng.buf[i].fd, &out,
						    files[i].size - (uint64_t)in, 0);

			if (n < 0 && errno == EINTR)
				continue;
			if (n < 0)
				return fail("copy_file_range(file -> %s memfd): %s",
					    huge ? "hugetlb" : "4 KiB", errtext(errno));
			if (n == 0)
				return fail("copy_file_range %s: copied nothing at %lld",
					    files[i].path, (long long)in);
		}
	}
	return 0;
}

static int io_ring(void)
{
	if (eng.m == RAW_SPLICE) {
		for (int k = 0; k < PAIRS; k++)
			pair_next(&eng.pairs[k]);
	} else {
		for (int k = 0; k < QD; k++) {
			struct rd *r = &eng.rds[k];

			r->done = 0;
			r->busy = next_chunk(&r->file, &r->off, &r->len);
			if (r->busy)
				rd_submit(r);
		}
	}
	ring_run();
	return row_error[0] ? -1 : 0;
}

/* Registers every buffer with the ring, in pieces of at most FIXED_MAX. */
static int fixed_register(void)
{
	struct iovec *iov;
	int n = 0, r;

	for (int i = 0; i < n_files; i++)
		n += (int)((eng.buf[i].map_size + FIXED_MAX - 1) / FIXED_MAX);
	iov = calloc(n, sizeof(*iov));
	if (!iov)
		return fail("out of memory");
	n = 0;
	for (int i = 0; i < n_files; i++) {
		eng.reg_base[i] = n;
		for (uint64_t at = 0; at < eng.buf[i].map_size; at += FIXED_MAX) {
			uint64_t left = eng.buf[i].map_size - at;

			iov[n].iov_base = eng.buf[i].p + at;
			iov[n++].iov_len = left < FIXED_MAX ? left : FIXED_MAX;
		}
	}
	r = io_uring_register_buffers(&eng.ring, iov, (unsigned)n);
	free(iov);
	if (r < 0)
		return fail("io_uring_register_buffers: %s", errtext(-r));
	return 0;
}

/*
 * One run of a raw method into @huge or 4 KiB memfds. On failure the buffers and fds
 * are still released, so the next row starts clean.
 */
static int raw_run(enum raw_method m, bool huge, struct sample *s)
{
	uint64_t t0, t1, t2, t3, t4, cpu0, cpu_mid0, cpu_mid1, cpu1;
	bool registered = false;
	int fl = O_RDONLY | O_CLOEXEC, r = 0;

	memset(&eng.rds, 0, sizeof(eng.rds));
	memset(&eng.pairs, 0, sizeof(eng.pairs));
	eng.m = m;
	eng.huge = huge;
	eng.next_file = 0;
	eng.next_off = 0;
	eng.inflight = 0;
	eng.chunk = m == RAW_SPLICE ? PIPE_SIZE : CHUNK;
	for (int i = 0; i < n_files; i++) {
		eng.ffd[i] = -1;
		eng.buf[i] = (struct rbuf){ .fd = -1 };
	}
	for (int k = 0; k < PAIRS; k++) {
		eng.pairs[k].pipe[0] = eng.pairs[k].pipe[1] = -1;
		eng.pairs[k].in.complete = pair_in_complete;
		eng.pairs[k].out.complete = pair_out_complete;
	}
	for (int k = 0; k < QD; k++)
		eng.rds[k].op.complete = rd_complete;

	/* creat: buffers, pipes, registration */
	cpu0 = cpu_self_ns();
	t0 = now_ns();
	for (int i = 0; i < n_files && r == 0; i++)
		r = rbuf_create(&eng.buf[i], i, huge);
	for (int k = 0; r == 0 && m == RAW_SPLICE && k < PAIRS; k++) {
		if (pipe2(eng.pairs[k].pipe, O_CLOEXEC) < 0)
			r = fail("pipe2: %s", errtext(errno));
		else if (fcntl(eng.pairs[k].pipe[0], F_SETPIPE_SZ, (int)PIPE_SIZE) < 0)
			r = fail("F_SETPIPE_SZ %d: %s", (int)PIPE_SIZE, errtext(errno));
	}
	if (r == 0 && m == RAW_FIXED) {
		r = fixed_register();
		registered = r == 0;
	}
	t1 = now_ns();

	/* io: open and copy */
	if (m == RAW_DIRECT || m == RAW_FIXED)
		fl |= O_DIRECT;
	for (int i = 0; i < n_files && r == 0; i++) {
		eng.ffd[i] = open(files[i].path, fl);
		if (eng.ffd[i] < 0)
			r = fail("open %s: %s", files[i].path, errtext(errno));
	}
	if (r == 0) {
		switch (m) {
		case RAW_NAIVE:
			r = io_naive();
			break;
		case RAW_CFR:
			r = io_cfr(huge);
			break;
		default:
			r = io_ring();
			break;
		}
	}
	t2 = now_ns();

	cpu_mid0 = cpu_self_ns();
	for (int i = 0; i < n_files && r == 0; i++)
		r = buf_check(eng.buf[i].p, i, "raw");
	cpu_mid1 = cpu_self_ns();

	/* close: unregister, unmap and close the buffers (their pages are freed) */
	t3 = now_ns();
	if (registered)
		io_uring_unregister_buffers(&eng.ring);
	for (int i = 0; i < n_files; i++)
		rbuf_free(&eng.buf[i]);
	for (int k = 0; k < PAIRS; k++)
		for (int e = 0; e < 2; e++)
			if (eng.pairs[k].pipe[e] >= 0)
				close(eng.pairs[k].pipe[e]);
	t4 = now_ns();
	cpu1 = cpu_self_ns();

	for (int i = 0; i < n_files; i++)
		if (eng.ffd[i] >= 0)
			close(eng.ffd[i]);
	if (r < 0)
		return r;
	s->creat_ms = (t1 - t0) / 1e6;
	s->io_ms = (t2 - t1) / 1e6;
	s->close_ms = (t4 - t3) / 1e6;
	s->cpu_ms = ((cpu_mid0 - cpu0) + (cpu1 - cpu_mid1)) / 1e6;
	s->bytes = total_bytes;
	return 0;
}

static int raw_row(const char *method, const char *target, int runs, bool hot,
		   struct sample *s, char *note, size_t note_len)
{
	static const char *names[] = { "naive", "direct", "fixed", "buffered", "splice",
				       "cfr" };
	int m = -1, r;
	bool huge;

	for (int k = 0; k < (int)(sizeof(names) / sizeof(names[0])); k++)
		if (strcmp(method, names[k]) == 0)
			m = k;
	if (m < 0)
		return fail("unknown raw method %s", method);
	if (strcmp(target, "4k") != 0 && strcmp(target, "huge") != 0)
		return fail("unknown target %s (4k or huge)", target);
	huge = strcmp(target, "huge") == 0;

	eng.ffd = calloc(n_files, sizeof(*eng.ffd));
	eng.buf = calloc(n_files, sizeof(*eng.buf));
	eng.reg_base = calloc(n_files, sizeof(*eng.reg_base));
	if (!eng.ffd || !eng.buf || !eng.reg_base)
		return fail("out of memory");
	r = io_uring_queue_init(2 * QD, &eng.ring, 0);
	if (r < 0)
		return fail("io_uring_queue_init: %s", errtext(-r));
	for (int i = 0; i < runs; i++) {
		if ((huge && hugetlb_wait() < 0) || run_prepare(hot) < 0 ||
		    raw_run(m, huge, &s[i]) < 0)
			break;
	}
	io_uring_queue_exit(&eng.ring);
	snprintf(note, note_len, "%s", m == RAW_DIRECT || m == RAW_FIXED ? "O_DIRECT" : "");
	return row_error[0] ? -1 : 0;
}

/* ---- fio ----------------------------------------------------------------------- */

/*
 * One fio run over all the files in one job (so one queue of depth 64 across them,
 * like the other rows). Its own runtime is the io time: its start-up, which allocates
 * 64 x 4 MiB of I/O buffers, is not. CPU is the fio process's, start-up included.
 * @iomem is fio's --iomem: malloc (its default) gives it 4 KiB pages, which on a
 * guest whose every first write to a 4 KiB page is expensive holds fio below the
 * disk; shmhuge gives it huge pages.
 */
static int fio_run(const char *iomem, struct sample *s)
{
	static char names[16 * PATH_MAX];
	char out[65536], *f[16], mem[64];
	char *argv[] = { "fio", "--name=bench", "--ioengine=io_uring", "--direct=1",
			 "--rw=read", "--bs=4M", "--iodepth=64", "--readonly", mem,
			 "--output-format=terse", "--terse-version=3", names, NULL };
	struct rusage ru;
	size_t got = 0, used;
	int p[2], st, nf = 0;
	unsigned long long kib, ms, err;
	pid_t pid;
	ssize_t n;

	snprintf(mem, sizeof(mem), "--iomem=%s", iomem);
	/* --filename=a:b:c */
	used = (size_t)snprintf(names, sizeof(names), "--filename=");
	for (int i = 0; i < n_files; i++) {
		int w = snprintf(names + used, sizeof(names) - used, "%s%s", i ? ":" : "",
				 files[i].path);

		if (w < 0 || (size_t)w >= sizeof(names) - used)
			return fail("fio: file list too long");
		used += (size_t)w;
	}
	if (pipe2(p, O_CLOEXEC) < 0)
		return fail("pipe2: %s", errtext(errno));
	pid = fork();
	if (pid < 0)
		return fail("fork: %s", errtext(errno));
	if (pid == 0) {
		dup2(p[1], 1);
		execvp("fio", argv);
		fprintf(stderr, "bench-row: exec fio: %s\n", strerror(errno));
		_exit(127);
	}
	close(p[1]);
	while ((n = read(p[0], out + got, sizeof(out) - 1 - got)) > 0)
		got += (size_t)n;
	out[got] = 0;
	close(p[0]);
	if (wait4(pid, &st, 0, &ru) < 0)
		return fail("wait for fio: %s", errtext(errno));
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
		return fail("fio failed (exit status %d%s); is it installed? tests/deps.sh "
			    "installs it", WIFEXITED(st) ? WEXITSTATUS(st) : -1,
			    WEXITSTATUS(st) == 127 ? ", not found" : "");
	/* terse v3: 3;fio-3.33;bench;GROUP;ERROR;READ_KIB;READ_KIB/S;IOPS;RUNTIME_MS;... */
	for (char *tok = out, *sp; nf < 16 && (tok = strtok_r(tok, ";", &sp)); tok = NULL)
		f[nf++] = tok;
	if (nf < 9 || strcmp(f[0], "3") != 0 || sscanf(f[4], "%llu", &err) != 1 ||
	    sscanf(f[5], "%llu", &kib) != 1 || sscanf(f[8], "%llu", &ms) != 1)
		return fail("fio: cannot parse its terse output");
	if (err)
		return fail("fio: error %s", errtext((int)err));
	if (kib * KiB != total_bytes)
		return fail("fio read %llu KiB, not the files' %llu", kib,
			    (unsigned long long)(total_bytes / KiB));
	s->creat_ms = s->close_ms = NAN;
	s->io_ms = ms ? (double)ms : 0.5;	/* fio counts whole milliseconds */
	s->bytes = kib * KiB;
	s->cpu_ms = (ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1e3 +
		    (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e3;
	return 0;
}

/* ---- dmaloadd end to end ------------------------------------------------------- */

static struct {
	pid_t pid;			/* the private daemon, -1 when none */
	char dir[PATH_MAX], sock[PATH_MAX + 8], conf[PATH_MAX + 16], log[PATH_MAX + 8];
	struct dmaload *dl;
} dmn = { .pid = -1 };

/* The last line of the daemon's log, for error rows. */
static const char *daemon_log_last(void)
{
	static char line[512];
	char buf[4096];
	ssize_t n;
	int fd = open(dmn.log, O_RDONLY | O_CLOEXEC);
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

	if (dmn.pid < 0 || waitpid(dmn.pid, &st, WNOHANG) != dmn.pid)
		return NULL;
	dmn.pid = -1;
	if (WIFSIGNALED(st))
		snprintf(buf, sizeof(buf), "killed by %s", sigabbrev_np(WTERMSIG(st)) ?
			 sigabbrev_np(WTERMSIG(st)) : "a signal");
	else
		snprintf(buf, sizeof(buf), "exited with status %d", WEXITSTATUS(st));
	return buf;
}

/* --cache and --clients */
static const char *cache_limit = "0";
static int n_clients = 1;
static struct dmaload *extra_dl[63];	/* connections 2..n_clients */

static void daemon_stop(void)
{
	int st;

	dmn.dl = dmn.dl ? dmaload_close(dmn.dl) : NULL;
	for (int i = 0; i < 63; i++)
		extra_dl[i] = extra_dl[i] ? dmaload_close(extra_dl[i]) : NULL;
	if (dmn.pid > 0) {
		kill(dmn.pid, SIGTERM);
		for (int i = 0; i < 200; i++) {
			if (waitpid(dmn.pid, &st, WNOHANG) == dmn.pid) {
				dmn.pid = -1;
				break;
			}
			usleep(50000);
		}
		if (dmn.pid > 0) {
			kill(dmn.pid, SIGKILL);
			waitpid(dmn.pid, &st, 0);
			dmn.pid = -1;
		}
	}
	if (dmn.dir[0]) {
		unlink(dmn.sock);
		unlink(dmn.conf);
		unlink(dmn.log);
		rmdir(dmn.dir);
		dmn.dir[0] = 0;
	}
}

/* Killed while a daemon runs: take it along (PR_SET_PDEATHSIG covers the rest). */
static void on_signal(int sig)
{
	if (dmn.pid > 0)
		kill(dmn.pid, SIGKILL);
	signal(sig, SIG_DFL);
	raise(sig);
}

/* The --io lines, in order: extra [io] keys of the daemon's config. */
#define IO_LINES_MAX 16
static const char *io_lines[IO_LINES_MAX];
static int n_io_lines;

/*
 * Starts @bin on a private socket and config in a fresh dir under @workdir, with
 * "[io] hugetlb = @hugetlb", then the --io lines, and every other key at its default,
 * and connects to it.
 */
static int daemon_start(const char *bin, const char *workdir, const char *hugetlb)
{
	uint64_t deadline;
	FILE *f;
	int r;

	snprintf(dmn.dir, sizeof(dmn.dir), "%s/daemon.XXXXXX", workdir);
	if (!mkdtemp(dmn.dir)) {
		dmn.dir[0] = 0;
		return fail("mkdtemp under %s: %s", workdir, errtext(errno));
	}
	snprintf(dmn.sock, sizeof(dmn.sock), "%s/sock", dmn.dir);
	snprintf(dmn.conf, sizeof(dmn.conf), "%s/dmaloadd.conf", dmn.dir);
	snprintf(dmn.log, sizeof(dmn.log), "%s/log", dmn.dir);
	f = fopen(dmn.conf, "we");
	if (!f)
		return fail("%s: %s", dmn.conf, errtext(errno));
	fprintf(f, "# written by tests/bench/bench-row\n[cache]\ncache_limit = %s\n"
		"[io]\nhugetlb = %s\n", cache_limit, hugetlb);
	for (int i = 0; i < n_io_lines; i++)
		fprintf(f, "%s\n", io_lines[i]);
	if (fclose(f) != 0)
		return fail("%s: %s", dmn.conf, errtext(errno));

	dmn.pid = fork();
	if (dmn.pid < 0)
		return fail("fork: %s", errtext(errno));
	if (dmn.pid == 0) {
		int fd = open(dmn.log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
		int null = open("/dev/null", O_RDONLY | O_CLOEXEC);

		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (fd < 0 || null < 0)
			_exit(126);
		dup2(null, 0);
		dup2(fd, 1);
		dup2(fd, 2);
		close_range(3, ~0u, 0);
		execl(bin, bin, "--socket", dmn.sock, "--config", dmn.conf, (char *)NULL);
		fprintf(stderr, "bench-row: exec %s: %s\n", bin, strerror(errno));
		_exit(127);
	}
	deadline = now_ns() + 20 * 1000000000ull;
	for (;;) {
		const char *gone = daemon_gone();

		if (gone)
			return fail("dmaloadd (hugetlb = %s) %s at start: %s", hugetlb, gone,
				    daemon_log_last());
		if (access(dmn.sock, F_OK) == 0) {
			r = dmaload_connect(&dmn.dl, dmn.sock, "bench");
			if (r == 0)
				return 0;
		}
		if (now_ns() > deadline)
			return fail("dmaloadd did not answer on %s within 20 s", dmn.sock);
		usleep(10000);
	}
}

/* "ERROR EINVAL: the daemon's text", or the connection's failure with the daemon's
 * fate and last log line. */
static int e2e_conn_failed(int r)
{
	const char *gone;

	usleep(100000);		/* give a crashing daemon time to be reaped */
	gone = daemon_gone();
	if (gone)
		return fail("dmaloadd %s: %s", gone, daemon_log_last());
	return fail("connection to dmaloadd: %s", errtext(-r));
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
		r = dmaload_load_path(dmn.dl, files[i].path, &o, &ids[i]);
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
				return fail("dmaloadd: %d of %d loads unfinished after %d s", left,
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
			fds[k] = ev.fd;
		else
			fail("dmaloadd: ERROR %s: %s", errtext(ev.err), ev.message);
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
			return fail("dmaloadd: ERROR %s: %s", errtext(evs[i].err),
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
			return fail("dmaloadd: DONE size %" PRIu64 " for %s of %" PRIu64 " bytes",
				    evs[i].size, files[fi].path, files[fi].size);
		if (fstat(fds[i], &st) < 0 || (uint64_t)st.st_size < evs[i].size)
			return fail("dmaloadd: buffer of %s smaller than its data",
				    files[fi].path);
		map_len[i] = (uint64_t)st.st_size;
		maps[i] = mmap(NULL, map_len[i], PROT_READ, MAP_SHARED, fds[i], 0);
		if (maps[i] == MAP_FAILED) {
			maps[i] = NULL;
			return fail("mmap of a DONE buffer: %s", errtext(errno));
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
	uint64_t map_len[n], t0, t1, t2, t3, c0, c1, c2, c3, d0, d1;

	if (!evs)
		return fail("out of memory");
	for (int i = 0; i < n; i++)
		maps[i] = NULL;
	if (cpu_pid_ns(dmn.pid, &d0) < 0) {
		free(evs);
		return e2e_conn_failed(-ECONNRESET);
	}
	c0 = cpu_self_ns();
	t0 = now_ns();
	r = n_clients > 1 ? e2e_load_shared(method, fds, evs) :
			    e2e_load_all(method, DMALOAD_TO_EOF, n, fds, evs);
	t1 = now_ns();
	c1 = cpu_self_ns();
	if (r == 0 && cpu_pid_ns(dmn.pid, &d1) < 0)
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
		return fail("unknown method %s", method);
	if (daemon_start(bin, workdir, hugetlb) < 0)
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
		int r = dmaload_connect(&extra_dl[i], dmn.sock, "bench");

		if (r < 0)
			return e2e_conn_failed(r);
	}
	for (int i = 0; i < runs; i++)
		if ((strcmp(hugetlb, "off") != 0 && hugetlb_wait() < 0) || run_prepare(hot) < 0 ||
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
	if (seen.hugetlb == seen.buffers)
		note_add(note, note_len, "; hugetlb");
	else if (seen.hugetlb == 0)
		note_add(note, note_len, "; 4 KiB pages");
	else
		note_add(note, note_len, "; hugetlb for %u of %u buffers", seen.hugetlb,
			 seen.buffers);
	return 0;
}

/* ---- main ---------------------------------------------------------------------- */

static void usage(void)
{
	fprintf(stderr,
		"usage: bench-row [--runs N] [--hot] [--label TEXT] raw METHOD 4k|huge FILE...\n"
		"       bench-row [--runs N] [--label TEXT] fio malloc|shmhuge FILE...\n"
		"       bench-row [--runs N] [--hot] [--label TEXT] [--io 'KEY = VALUE']... "
		"[--cache SIZE] [--clients N] e2e DAEMON METHOD on|off WORKDIR FILE...\n");
	exit(2);
}

int main(int argc, char **argv)
{
	struct sample s[64];
	char note[512] = "";
	const char *label = NULL, *kind;
	int runs = 3, a = 1;
	bool hot = false;

	for (; a < argc && strncmp(argv[a], "--", 2) == 0; a++) {
		if (strcmp(argv[a], "--runs") == 0 && a + 1 < argc)
			runs = atoi(argv[++a]);
		else if (strcmp(argv[a], "--label") == 0 && a + 1 < argc)
			label = argv[++a];
		else if (strcmp(argv[a], "--hot") == 0)
			hot = true;
		else if (strcmp(argv[a], "--clients") == 0 && a + 1 < argc &&
			 atoi(argv[a + 1]) >= 1 && atoi(argv[a + 1]) <= 64)
			n_clients = atoi(argv[++a]);
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
	if (a >= argc || runs < 1 || runs > 64)
		usage();
	kind = argv[a++];
	if ((n_io_lines || n_clients > 1 || strcmp(cache_limit, "0")) &&
	    strcmp(kind, "e2e") != 0)
		usage();
	if (!label)
		label = kind;
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	signal(SIGHUP, on_signal);
	signal(SIGPIPE, SIG_IGN);

	if (strcmp(kind, "raw") == 0) {
		if (argc - a < 3)
			usage();
		if (files_stat(argv + a + 2, argc - a - 2) == 0)
			raw_row(argv[a], argv[a + 1], runs, hot, s, note, sizeof(note));
	} else if (strcmp(kind, "fio") == 0) {
		if (argc - a < 2 || hot)
			usage();
		if (files_stat(argv + a + 1, argc - a - 1) == 0)
			for (int i = 0; i < runs; i++)
				if (drop_caches() < 0 || fio_run(argv[a], &s[i]) < 0)
					break;
		snprintf(note, sizeof(note), "--bs=4M --iodepth=64 --iomem=%s", argv[a]);
	} else if (strcmp(kind, "e2e") == 0) {
		if (argc - a < 5)
			usage();
		if (n_clients > 1 && argc - a != 5)
			usage();	/* --clients: one file */
		if (files_stat(argv + a + 4, argc - a - 4) == 0)
			e2e_row(argv[a], argv[a + 1], argv[a + 2], argv[a + 3], runs, hot, s,
				note, sizeof(note));
		daemon_stop();
	} else {
		usage();
	}
	print_row(label, s, runs, note);
	return 0;
}
