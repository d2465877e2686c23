/*
 * bench-raw.c: the raw rows of the copy-method benchmark (make bench): this process
 * copies the files into memfd buffers itself, one way per row, so the daemon's rows
 * have the kernel's own numbers beside them (tests/bench/lib/row.h says what a row is
 * and what it measures).
 *
 *   bench-raw [--runs N] [--hot] [--label TEXT] METHOD 4k|huge|thp FILE...
 *
 * The buffers are memfds of 4 KiB pages (4k), MFD_HUGETLB (huge), or 4 KiB-page memfds
 * whose mapping is advised MADV_HUGEPAGE (thp: transparent huge pages for shmem, where
 * /sys/kernel/mm/transparent_hugepage/shmem_enabled allows them; the row's note says
 * how much of the buffers the kernel gave huge pages, from ShmemHugePages). METHODs:
 *   naive     read() of the whole file into the mapping, what a client does by itself
 *   direct    io_uring READ, O_DIRECT, 4 MiB chunks, 64 in flight
 *   fixed     the same with READ_FIXED into the mapping registered with io_uring
 *   buffered  io_uring READ through the page cache, 4 MiB chunks, 64 in flight
 *   splice    io_uring linked SPLICE pairs file -> pipe -> memfd, 1 MiB pipes, 16 pairs
 *   cfr       copy_file_range(file -> memfd); where the kernel refuses it, the row is
 *             the refusal
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/uio.h>
#include <unistd.h>

#include <liburing.h>

#include "lib/row.h"

#define CHUNK (4 * MiB)			/* READ chunk, as fio --bs=4M */
#define QD 64				/* READs in flight, as fio --iodepth=64 */
#define PIPE_SIZE (1 * MiB)		/* F_SETPIPE_SZ of each splice pipe */
#define PAIRS 16			/* splice pairs in flight */
#define FIXED_MAX GiB			/* io_uring's limit on one registered iovec */

/* ---- buffers ------------------------------------------------------------------- */

enum raw_method { RAW_NAIVE, RAW_DIRECT, RAW_FIXED, RAW_BUFFERED, RAW_SPLICE, RAW_CFR };

struct rbuf {
	int fd;				/* the memfd, -1 when none */
	uint8_t *p;			/* its mapping, map_size bytes, or NULL */
	uint64_t map_size;		/* the file's size, rounded up to a huge page */
};

/* thp: the buffers' mappings are advised MADV_HUGEPAGE (4 KiB-page memfds). */
static bool thp;
/* thp: the most ShmemHugePages (KiB) seen right after a run's buffers were made, over
 * what was there before, and the buffers' bytes then. */
static uint64_t thp_huge_kib, thp_bytes;

/* Makes buffer @b for file @i, pages allocated and mapped (see the top comment). */
static int rbuf_create(struct rbuf *b, int i, bool huge)
{
	if (thp) {
		/* 2 MiB-aligned huge pages need a 2 MiB-aligned mapping: map more and
		 * keep the aligned part. */
		uint64_t hp = 2 * MiB;
		uint8_t *raw;

		b->map_size = (files[i].size + hp - 1) / hp * hp;
		b->fd = memfd_create("dmaload-bench", MFD_CLOEXEC);
		if (b->fd < 0)
			return row_fail("memfd_create: %s", errtext(errno));
		if (ftruncate(b->fd, (off_t)b->map_size) < 0)
			return row_fail("ftruncate memfd: %s", errtext(errno));
		raw = mmap(NULL, b->map_size + hp, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (raw == MAP_FAILED)
			return row_fail("mmap: %s", errtext(errno));
		b->p = (uint8_t *)(((uintptr_t)raw + hp - 1) / hp * hp);
		if (b->p > raw)
			munmap(raw, (size_t)(b->p - raw));
		munmap(b->p + b->map_size, (size_t)(raw + hp - b->p));
		if (mmap(b->p, b->map_size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED,
			 b->fd, 0) == MAP_FAILED) {
			munmap(b->p, b->map_size);
			b->p = NULL;
			return row_fail("mmap memfd: %s", errtext(errno));
		}
		if (madvise(b->p, b->map_size, MADV_HUGEPAGE) < 0)
			return row_fail("madvise MADV_HUGEPAGE: %s", errtext(errno));
		/* the first touch, as MAP_POPULATE does for the other targets */
		if (madvise(b->p, b->map_size, MADV_POPULATE_WRITE) < 0)
			return row_fail("madvise MADV_POPULATE_WRITE: %s", errtext(errno));
		return 0;
	}
	{
	uint64_t unit = huge ? huge_page_size() : 4096;

	b->map_size = (files[i].size + unit - 1) / unit * unit;
	b->fd = memfd_create("dmaload-bench", MFD_CLOEXEC | (huge ? MFD_HUGETLB : 0));
	if (b->fd < 0)
		return row_fail("memfd_create%s: %s", huge ? " MFD_HUGETLB" : "", errtext(errno));
	if (ftruncate(b->fd, (off_t)b->map_size) < 0)
		return row_fail("ftruncate memfd: %s", errtext(errno));
	b->p = mmap(NULL, b->map_size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE,
		    b->fd, 0);
	if (b->p == MAP_FAILED) {
		b->p = NULL;
		return row_fail("mmap %s memfd of %" PRIu64 " MiB: %s%s", huge ? "hugetlb" : "4 KiB",
				(uint64_t)(b->map_size / MiB), errtext(errno),
				huge && errno == ENOMEM ? "; huge page pool too small?" : "");
	}
	return 0;
	}
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

/* ---- the io_uring engine ------------------------------------------------------ */

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
		row_fail("READ%s %s at %" PRIu64 ": %s", eng.m == RAW_FIXED ? "_FIXED" : "",
			 files[r->file].path, r->off + r->done, errtext(-res));
		r->busy = false;
		return;
	}
	if (res == 0) {
		row_fail("READ %s at %" PRIu64 ": end of file before its size",
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
		row_fail("splice %s -> pipe at %" PRIu64 ": end of file before its size",
			 files[p->file].path, p->pos);
	else if (res != -EAGAIN && res != -EINTR)
		row_fail("splice file -> pipe: %s", errtext(-res));
	pair_done_one(p);
}

static void pair_out_complete(struct op *op, int res)
{
	struct pair *p = (struct pair *)((char *)op - offsetof(struct pair, out));

	if (res > 0)
		p->out_pos += (uint64_t)res;
	else if (res == 0 || (res < 0 && res != -ECANCELED && res != -EAGAIN && res != -EINTR))
		row_fail("splice pipe -> %s memfd: %s", eng.huge ? "hugetlb" : "4 KiB",
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
			row_fail("io_uring_submit_and_wait: %s", errtext(-r));
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

/* ---- one run ------------------------------------------------------------------- */

static int io_naive(void)
{
	for (int i = 0; i < n_files; i++) {
		uint64_t done = 0;

		while (done < files[i].size) {
			ssize_t n = read(eng.ffd[i], eng.buf[i].p + done, files[i].size - done);

			if (n < 0 && errno == EINTR)
				continue;
			if (n < 0)
				return row_fail("read %s: %s", files[i].path, errtext(errno));
			if (n == 0)
				return row_fail("read %s: end of file before its size",
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
				return row_fail("copy_file_range(file -> %s memfd): %s",
						huge ? "hugetlb" : "4 KiB", errtext(errno));
			if (n == 0)
				return row_fail("copy_file_range %s: copied nothing at %lld",
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
		return row_fail("out of memory");
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
		return row_fail("io_uring_register_buffers: %s", errtext(-r));
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
	long shmem_huge0;

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
	shmem_huge0 = thp ? meminfo_value("ShmemHugePages") : 0;
	cpu0 = cpu_self_ns();
	t0 = now_ns();
	for (int i = 0; i < n_files && r == 0; i++)
		r = rbuf_create(&eng.buf[i], i, huge);
	if (thp && r == 0) {
		long now_kib = meminfo_value("ShmemHugePages");
		uint64_t got = now_kib > shmem_huge0 ? (uint64_t)(now_kib - shmem_huge0) : 0;

		if (got > thp_huge_kib)
			thp_huge_kib = got;
		thp_bytes = 0;
		for (int i = 0; i < n_files; i++)
			thp_bytes += eng.buf[i].map_size;
	}
	for (int k = 0; r == 0 && m == RAW_SPLICE && k < PAIRS; k++) {
		if (pipe2(eng.pairs[k].pipe, O_CLOEXEC) < 0)
			r = row_fail("pipe2: %s", errtext(errno));
		else if (fcntl(eng.pairs[k].pipe[0], F_SETPIPE_SZ, (int)PIPE_SIZE) < 0)
			r = row_fail("F_SETPIPE_SZ %d: %s", (int)PIPE_SIZE, errtext(errno));
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
			r = row_fail("open %s: %s", files[i].path, errtext(errno));
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
		return row_fail("unknown raw method %s", method);
	if (strcmp(target, "4k") != 0 && strcmp(target, "huge") != 0 &&
	    strcmp(target, "thp") != 0)
		return row_fail("unknown target %s (4k, huge or thp)", target);
	huge = strcmp(target, "huge") == 0;
	thp = strcmp(target, "thp") == 0;

	eng.ffd = calloc(n_files, sizeof(*eng.ffd));
	eng.buf = calloc(n_files, sizeof(*eng.buf));
	eng.reg_base = calloc(n_files, sizeof(*eng.reg_base));
	if (!eng.ffd || !eng.buf || !eng.reg_base)
		return row_fail("out of memory");
	r = io_uring_queue_init(2 * QD, &eng.ring, 0);
	if (r < 0)
		return row_fail("io_uring_queue_init: %s", errtext(-r));
	for (int i = 0; i < runs; i++) {
		if ((huge && hugetlb_wait() < 0) || run_prepare(hot) < 0 ||
		    raw_run(m, huge, &s[i]) < 0)
			break;
	}
	io_uring_queue_exit(&eng.ring);
	snprintf(note, note_len, "%s", m == RAW_DIRECT || m == RAW_FIXED ? "O_DIRECT" : "");
	if (thp && thp_bytes)
		snprintf(note + strlen(note), note_len - strlen(note),
			 "%sMADV_HUGEPAGE: %.0f%% of the buffers in huge pages (ShmemHugePages)",
			 note[0] ? "; " : "", 100.0 * (double)thp_huge_kib * 1024 /
			 (double)thp_bytes);
	return row_error[0] ? -1 : 0;
}

/* ---- main ---------------------------------------------------------------------- */

static void usage(void)
{
	fprintf(stderr, "usage: bench-raw [--runs N] [--hot] [--label TEXT] "
		"naive|direct|fixed|buffered|splice|cfr 4k|huge|thp FILE...\n");
	exit(2);
}

int main(int argc, char **argv)
{
	struct sample s[64];
	struct row_opts o;
	char note[512] = "";
	int a = 1;

	row_opts_init(&o, "raw");
	for (; a < argc && strncmp(argv[a], "--", 2) == 0; a++)
		if (!row_option(&o, argc, argv, &a, true))
			usage();
	if (argc - a < 3 || o.runs < 1 || o.runs > 64)
		usage();
	row_init();
	if (files_stat(argv + a + 2, argc - a - 2) == 0)
		raw_row(argv[a], argv[a + 1], o.runs, o.hot, s, note, sizeof(note));
	print_row(o.label, s, o.runs, note);
	return 0;
}
