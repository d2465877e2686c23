/*
 * test-into.c: loads into the caller's buffer, and loads of extent lists (issue 13).
 *
 * Into a memfd of the test's own (4 KiB pages, and huge pages when the pool has room),
 * by path and by fd, with every method: exactly the asked bytes land, and every byte
 * outside them keeps the 0xAA the test filled the buffer with. Extents at odd offsets
 * and lengths, 1 and 4096 of them (4096 go in a memfd: more than one datagram), in
 * shuffled order, adjacent and far apart, into a new buffer (zeros between them) and
 * into the caller's. Every refusal before a byte moves: a read-only or write-only fd,
 * a write-sealed memfd, one without F_SEAL_SHRINK, a regular file, a buffer too small,
 * an extent past the end of the file, overlapping extents; the buffer untouched. A
 * caller that tries to truncate (refused: the seal), closes its fd, or is SIGKILLed
 * mid-load, and a cancel: the daemon lives on with no fd leaked.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../lib/check.h"
#include "../lib/harness.h"
#include "../lib/loads.h"

#define SUITE "into"
#define FILE_SIZE (16 * MiB + 777)
#define SEED 13
#define FILL 0xAA

static struct test_daemon d;
static struct dmaload *dl;
static char file[PATH_MAX];
static uint64_t huge_size;	/* the default huge page size, 0: none usable */

/* ---- buffers ---------------------------------------------------------------------- */

/* A memfd of @size bytes filled with FILL; sealed against shrinking when @seal. */
static int buf_make(uint64_t size, bool huge, bool seal)
{
	int fd = memfd_create("into-test", MFD_CLOEXEC | MFD_ALLOW_SEALING |
			      (huge ? MFD_HUGETLB : 0));
	void *p;

	if (!CHECKF(fd >= 0, "memfd_create: %s", strerror(errno)))
		return -1;
	if (!CHECKF(ftruncate(fd, (off_t)size) == 0, "ftruncate: %s", strerror(errno)))
		goto fail;
	p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (!CHECKF(p != MAP_FAILED, "mmap: %s", strerror(errno)))
		goto fail;
	memset(p, FILL, size);
	munmap(p, size);
	if (seal && !CHECKF(fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK) == 0, "F_SEAL_SHRINK: %s",
			    strerror(errno)))
		goto fail;
	return fd;
fail:
	close(fd);
	return -1;
}

/* The first @len bytes of buffer @fd are @fill everywhere except the extents, which
 * hold their bytes of the pattern. */
static bool buf_check(int fd, uint64_t len, const struct dmaload_extent *e, size_t n,
		      uint8_t fill)
{
	uint8_t *want = malloc(len ? len : 1);
	const uint8_t *got;
	bool ok = true;

	if (!CHECK(want != NULL))
		return false;
	got = len ? mmap(NULL, len, PROT_READ, MAP_SHARED, fd, 0) : (void *)want;
	if (!CHECKF(got != MAP_FAILED, "mmap for the check: %s", strerror(errno))) {
		free(want);
		return false;
	}
	memset(want, fill, len);
	for (size_t i = 0; i < n; i++)
		pattern_fill(SEED, e[i].file_offset, want + e[i].buf_offset, e[i].length);
	if (memcmp(got, want, len)) {
		uint64_t k = 0;

		while (got[k] == want[k])
			k++;
		ok = check_fail(__FILE__, __LINE__, "buffer byte %llu is 0x%02x, expected "
				"0x%02x", (unsigned long long)k, got[k], want[k]);
	}
	if (len)
		munmap((void *)got, len);
	free(want);
	return ok;
}

static uint64_t ext_sum(const struct dmaload_extent *e, size_t n)
{
	uint64_t s = 0;

	for (size_t i = 0; i < n; i++)
		s += e[i].length;
	return s;
}

/* Loads @e into @buf_fd (-1: a new buffer) by path or by fd, sync; returns the event. */
static int load_ext(const struct dmaload_extent *e, size_t n, int buf_fd, bool by_fd,
		    uint8_t method, struct dmaload_event *ev)
{
	struct dmaload_opts o;
	int src, r;

	dmaload_opts_init(&o);
	o.method = method;
	if (!by_fd)
		return dmaload_load_extents_path_sync(dl, file, e, n, buf_fd, &o, ev);
	src = open(file, O_RDONLY | O_CLOEXEC);
	if (!CHECKF(src >= 0, "open: %s", strerror(errno)))
		return -errno;
	r = dmaload_load_extents_fd_sync(dl, src, e, n, buf_fd, &o, ev);
	close(src);
	return r;
}

/* ---- into the caller's memfd ------------------------------------------------------ */

static void into_range(bool huge, bool by_fd, uint8_t method, uint64_t foff, uint64_t len,
		       uint64_t boff)
{
	uint64_t size = huge ? 4 * huge_size : 8 * MiB;
	struct dmaload_extent e = { .file_offset = foff, .length = len, .buf_offset = boff };
	struct dmaload_event ev;
	int fd = buf_make(size, huge, true), r;

	if (fd < 0)
		return;
	r = load_ext(&e, 1, fd, by_fd, method, &ev);
	if (CHECKF(r == 0, "load: %s", lc_event_str(&ev))) {
		CHECKF(ev.fd == -1, "DONE into carries fd %d", ev.fd);
		CHECK(ev.done_flags & DL_DONE_INTO);
		CHECK(!(ev.done_flags & DL_DONE_SEALED));
		CHECK_U64(ev.size, ==, len);
		CHECK_U64(ev.buf_size, ==, size);
		CHECK_INT(ev.target, ==, DL_TARGET_MEMFD);
		CHECK(!!(ev.done_flags & DL_DONE_HUGETLB) == huge);
		if (method != DL_METHOD_AUTO)
			CHECKF(ev.method == method, "method %s, asked %s",
			       dl_method_name(ev.method), dl_method_name(method));
		buf_check(fd, size, &e, 1, FILL);
	}
	/* still the caller's: writable, not sealed by the daemon */
	CHECK((fcntl(fd, F_GET_SEALS) & F_SEAL_WRITE) == 0);
	close(fd);
	CHECK_SETTLED(&d, 5000);
}

/* dmaload_load_into_path / _fd: the range of the options, to the end of the file. */
static void into_api(bool by_fd)
{
	uint64_t size = 32 * MiB, boff = 4096 * 3 + 5;
	struct dmaload_extent e = { .file_offset = 100, .length = FILE_SIZE - 100,
				    .buf_offset = boff };
	struct dmaload_opts o;
	struct dmaload_event ev;
	uint64_t id;
	int fd = buf_make(size, false, true), src = -1, r;

	if (fd < 0)
		return;
	dmaload_opts_init(&o);
	o.offset = 100;
	if (by_fd) {
		src = open(file, O_RDONLY | O_CLOEXEC);
		r = dmaload_load_into_fd(dl, src, fd, boff, &o, &id);
	} else {
		r = dmaload_load_into_path(dl, file, fd, boff, &o, &id);
	}
	if (CHECKF(r == 0, "start: %s", strerror(-r)) &&
	    CHECK(dmaload_wait(dl, id, &ev, NULL, NULL) == 0) &&
	    CHECKF(ev.type == DMALOAD_EV_DONE, "%s", lc_event_str(&ev))) {
		CHECK_U64(ev.size, ==, FILE_SIZE - 100);
		CHECK(ev.fd == -1 && (ev.done_flags & DL_DONE_INTO));
		buf_check(fd, size, &e, 1, FILL);
	}
	if (src >= 0)
		close(src);
	close(fd);
	CHECK_SETTLED(&d, 5000);
}

/* ---- extents ---------------------------------------------------------------------- */

/* @n extents of odd offsets and lengths, disjoint in the file and in the buffer, in
 * shuffled order; *@buf_len is where the last one ends in the buffer. */
static struct dmaload_extent *ext_random(size_t n, uint64_t *buf_len, unsigned seed)
{
	struct dmaload_extent *e = calloc(n, sizeof(*e));
	uint64_t foff = 3, boff = 1;

	srand(seed);
	for (size_t i = 0; i < n && e; i++) {
		uint64_t len = 1 + (uint64_t)(rand() % 3000);

		if (foff + len > FILE_SIZE)
			foff = (uint64_t)(rand() % 4096);	/* the file may repeat */
		e[i] = (struct dmaload_extent){ .file_offset = foff, .length = len,
						.buf_offset = boff };
		foff += len + (uint64_t)(rand() % 2 ? 0 : rand() % 5000);
		boff += len + (uint64_t)(rand() % 2 ? 0 : rand() % 300);
	}
	for (size_t i = n - 1; i > 0 && e; i--) {
		size_t j = (size_t)rand() % (i + 1);
		struct dmaload_extent t = e[i];

		e[i] = e[j];
		e[j] = t;
	}
	*buf_len = boff;
	return e;
}

static void extents_new(size_t n, bool by_fd)
{
	uint64_t len;
	struct dmaload_extent *e = ext_random(n, &len, (unsigned)n);
	struct dmaload_event ev;
	int r;

	if (!CHECK(e != NULL))
		return;
	r = load_ext(e, n, -1, by_fd, DL_METHOD_AUTO, &ev);
	if (CHECKF(r == 0, "load: %s", lc_event_str(&ev))) {
		/* the highest buffer offset + length */
		uint64_t hi = 0;

		for (size_t i = 0; i < n; i++)
			if (e[i].buf_offset + e[i].length > hi)
				hi = e[i].buf_offset + e[i].length;
		CHECK_U64(ev.size, ==, ext_sum(e, n));
		CHECK(!(ev.done_flags & DL_DONE_INTO));
		CHECK(ev.done_flags & DL_DONE_SEALED);
		if (CHECK(ev.fd >= 0)) {
			struct stat st;

			CHECK(fstat(ev.fd, &st) == 0 && (uint64_t)st.st_size >= hi);
			buf_check(ev.fd, hi, e, n, 0);
			close(ev.fd);
		}
	}
	free(e);
	CHECK_SETTLED(&d, 5000);
}

static void extents_into(size_t n, bool huge, uint8_t method)
{
	uint64_t len, size;
	struct dmaload_extent *e = ext_random(n, &len, (unsigned)n + 1);
	struct dmaload_event ev;
	int fd, r;

	if (!CHECK(e != NULL))
		return;
	size = huge ? round_up(len, huge_size) : len + 1000;
	fd = buf_make(size, huge, true);
	if (fd >= 0) {
		r = load_ext(e, n, fd, false, method, &ev);
		if (CHECKF(r == 0, "load: %s", lc_event_str(&ev))) {
			CHECK_U64(ev.size, ==, ext_sum(e, n));
			CHECK(ev.fd == -1 && (ev.done_flags & DL_DONE_INTO));
			buf_check(fd, size, e, n, FILL);
		}
		close(fd);
	}
	free(e);
	CHECK_SETTLED(&d, 5000);
}

/* Aligned extents that touch on disk and in the buffer (read as one, direct), and two
 * far apart in the file, into the caller's buffer. */
static void extents_adjacent_far(void)
{
	struct dmaload_extent e[] = {
		{ .file_offset = 2 * MiB, .length = MiB, .buf_offset = 2 * MiB },
		{ .file_offset = 0, .length = MiB, .buf_offset = 0 },
		{ .file_offset = MiB, .length = MiB, .buf_offset = MiB },
		{ .file_offset = 15 * MiB, .length = 4096, .buf_offset = 3 * MiB + 4096 },
		{ .file_offset = 7, .length = 0, .buf_offset = 0 },	/* empty: nothing */
	};
	struct dmaload_event ev;
	long skip = daemon_log_size(&d);
	int fd = buf_make(4 * MiB, false, true), r;

	if (fd < 0)
		return;
	r = load_ext(e, 5, fd, true, DL_METHOD_AUTO, &ev);
	if (CHECKF(r == 0, "load: %s", lc_event_str(&ev))) {
		CHECK_U64(ev.size, ==, 3 * MiB + 4096);
		buf_check(fd, 4 * MiB, e, 5, FILL);
		/* the three that touch are one run, the far one another */
		CHECK(daemon_log_wait(&d, "5 extents in 2 runs", skip, 2000));
	}
	close(fd);
	CHECK_SETTLED(&d, 5000);
}

/* ---- refusals ---------------------------------------------------------------------- */

/* A load into @fd that must fail with @err before touching it. */
static void refused(int fd, const struct dmaload_extent *e, size_t n, int err,
		    const char *needle)
{
	struct dmaload_event ev;
	struct stat st;
	int r = load_ext(e, n, fd, false, DL_METHOD_AUTO, &ev);

	CHECKF(r == -err, "got %d (%s), expected -%s", r, lc_event_str(&ev),
	       strerrorname_np(err));
	if (needle)
		CHECKF(strstr(ev.message, needle), "message \"%s\" lacks \"%s\"", ev.message,
		       needle);
	/* untouched (where the test can map it: a memfd it may read) */
	if (fd >= 0 && fstat(fd, &st) == 0 && st.st_size > 0 &&
	    fcntl(fd, F_GET_SEALS) >= 0 && (fcntl(fd, F_GETFL) & O_ACCMODE) != O_WRONLY)
		buf_check(fd, (uint64_t)st.st_size, NULL, 0, FILL);
}

static void refusals(void)
{
	struct dmaload_extent one = { .file_offset = 0, .length = 8192, .buf_offset = 0 };
	struct dmaload_extent over[2] = {
		{ .file_offset = 0, .length = 8192, .buf_offset = 0 },
		{ .file_offset = 100000, .length = 10, .buf_offset = 8191 },
	};
	struct dmaload_extent past = { .file_offset = FILE_SIZE - 10, .length = 11 };
	char path[64];
	int fd = buf_make(MiB, false, true), ro, wo, reg;

	if (fd < 0)
		return;
	/* the same memfd, opened read-only and write-only */
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	ro = open(path, O_RDONLY | O_CLOEXEC);
	wo = open(path, O_WRONLY | O_CLOEXEC);
	refused(ro, &one, 1, EBADF, "read-only");
	refused(wo, &one, 1, EBADF, "write-only");
	close(ro);
	close(wo);
	refused(fd, over, 2, EINVAL, "overlap");
	refused(fd, &past, 1, EINVAL, "past the end of the file");
	one.buf_offset = MiB - 8191;
	refused(fd, &one, 1, EINVAL, "too small");
	close(fd);
	one.buf_offset = 0;
	/* not sealed against shrinking */
	fd = buf_make(MiB, false, false);
	refused(fd, &one, 1, EINVAL, "F_SEAL_SHRINK");
	/* write-sealed */
	if (fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_WRITE) == 0)
		refused(fd, &one, 1, EPERM, "write-sealed");
	close(fd);
	/* a regular file */
	reg = open(file, O_RDWR | O_CLOEXEC);
	refused(reg, &one, 1, EINVAL, "not a memfd or a dma-buf");
	close(reg);
	/* the library's own checks */
	CHECK_INT(dmaload_load_extents_path(dl, file, &one, 0, -1, NULL, NULL), ==, -EINVAL);
	CHECK_INT(dmaload_load_extents_path(dl, file, &one, DMALOAD_MAX_EXTENTS + 1, -1,
					    NULL, NULL), ==, -EINVAL);
	CHECK_SETTLED(&d, 5000);
}

/* ---- callers that misbehave -------------------------------------------------------- */

/* A slow load (rate-limited, about 2 s) of the whole file into @fd at offset 0. */
static int slow_start(int fd, uint64_t *id)
{
	struct dmaload_opts o;

	dmaload_opts_init(&o);
	o.rate_limit = 8 * MiB;		/* about 2 s for the file */
	o.method = DL_METHOD_BUFFERED;
	return dmaload_load_into_path(dl, file, fd, 0, &o, id);
}

/* The caller truncates (refused by F_SEAL_SHRINK) and closes its fd mid-load: the
 * load completes into the memory the caller still maps. */
static void truncate_close(void)
{
	struct dmaload_extent e = { .file_offset = 0, .length = FILE_SIZE };
	struct dmaload_event ev;
	uint64_t id, size = FILE_SIZE + 4096;
	int fd = buf_make(size, false, true), r;
	void *map;

	if (fd < 0)
		return;
	map = mmap(NULL, size, PROT_READ, MAP_SHARED, fd, 0);
	r = slow_start(fd, &id);
	if (!CHECKF(r == 0, "start: %s", strerror(-r))) {
		close(fd);
		return;
	}
	sleep_ms(300);
	CHECKF(ftruncate(fd, 4096) < 0 && errno == EPERM, "truncate was not refused");
	/* its fd closed: only a dup kept for the check below, and the daemon's, hold it */
	r = dup(fd);
	close(fd);
	fd = r;
	if (CHECK(dmaload_wait(dl, id, &ev, NULL, NULL) == 0))
		CHECKF(ev.type == DMALOAD_EV_DONE, "%s", lc_event_str(&ev));
	if (fd >= 0)
		buf_check(fd, size, &e, 1, FILL);
	munmap(map, size);
	close(fd);
	CHECK_SETTLED(&d, 5000);
}

/* The caller closes its only fd of the buffer (and unmaps it) mid-load: the daemon
 * still holds the memfd, finishes and says DONE. */
static void close_mid_load(void)
{
	struct dmaload_event ev;
	uint64_t id;
	int fd = buf_make(FILE_SIZE, false, true), r;

	if (fd < 0)
		return;
	r = slow_start(fd, &id);
	close(fd);
	if (!CHECKF(r == 0, "start: %s", strerror(-r)))
		return;
	sleep_ms(200);
	if (CHECK(dmaload_wait(dl, id, &ev, NULL, NULL) == 0))
		CHECKF(ev.type == DMALOAD_EV_DONE, "%s", lc_event_str(&ev));
	CHECK_SETTLED(&d, 5000);
	CHECKF(daemon_alive(&d), "the daemon died");
}

static void cancel_mid_load(void)
{
	struct dmaload_event ev;
	uint64_t id;
	int fd = buf_make(FILE_SIZE, false, true), r;

	if (fd < 0)
		return;
	r = slow_start(fd, &id);
	if (CHECKF(r == 0, "start: %s", strerror(-r))) {
		sleep_ms(300);
		CHECK(dmaload_cancel(dl, id, NULL) == 0);
		if (CHECK(dmaload_wait(dl, id, &ev, NULL, NULL) == 0))
			CHECKF(ev.type == DMALOAD_EV_ERROR && ev.err == ECANCELED, "%s",
			       lc_event_str(&ev));
	}
	close(fd);
	CHECK_SETTLED(&d, 5000);
}

/* A child starts a load into its memfd, then is SIGKILLed. */
static void killed_caller(bool huge)
{
	int p[2], status;
	pid_t pid;
	char c;

	if (!CHECK(pipe2(p, O_CLOEXEC) == 0))
		return;
	fflush(stdout);
	pid = fork();
	if (pid == 0) {
		struct dmaload *cdl = NULL;
		struct dmaload_opts o;
		struct dmaload_event ev;
		uint64_t id;
		int fd = memfd_create("doomed", MFD_CLOEXEC | MFD_ALLOW_SEALING |
				      (huge ? MFD_HUGETLB : 0));

		alarm(0);
		close(p[0]);
		if (fd < 0 || ftruncate(fd, (off_t)round_up(FILE_SIZE, huge ? huge_size : 4096)) ||
		    fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK) || dmaload_connect(&cdl, d.sock,
									  "doomed"))
			_exit(1);
		dmaload_opts_init(&o);
		o.rate_limit = 8 * MiB;
		if (dmaload_load_into_path(cdl, file, fd, 0, &o, &id) ||
		    dmaload_next_event(cdl, &ev, 20000) != 1 || write(p[1], "!", 1) != 1)
			_exit(1);
		pause();
		_exit(0);
	}
	close(p[1]);
	if (!CHECKF(pid > 0, "fork: %s", strerror(errno))) {
		close(p[0]);
		return;
	}
	if (CHECKF(read(p[0], &c, 1) == 1, "the child did not get its load accepted"))
		sleep_ms(300);
	kill(pid, SIGKILL);
	waitpid(pid, &status, 0);
	close(p[0]);
	CHECK_SETTLED(&d, 5000);
	CHECKF(daemon_alive(&d), "the daemon died");
}

/* ---- sharing ------------------------------------------------------------------------ */

/* NX extents of XLEN bytes, one every XSTRIDE of the file, packed in the buffer: 12 MiB
 * in all, more than a rate limit's burst (chunk_size, 4 MiB); @shift moves the last
 * one by a byte in the buffer. */
#define NX 48
#define XLEN (256 * 1024 + 1)
#define XSTRIDE (320 * 1024)

static void ext_list(struct dmaload_extent *e, int shift)
{
	for (int i = 0; i < NX; i++)
		e[i] = (struct dmaload_extent){ .file_offset = (uint64_t)i * XSTRIDE + 5,
						.length = XLEN,
						.buf_offset = (uint64_t)i * XLEN };
	e[NX - 1].buf_offset += (uint64_t)shift;
}

/* @ev is the DONE of the list @e into a new buffer: size and bytes. */
static void ext_done_check(struct dmaload_event *ev, const struct dmaload_extent *e)
{
	uint64_t hi = e[NX - 1].buf_offset + e[NX - 1].length;

	if (!CHECKF(ev->type == DMALOAD_EV_DONE, "%s", lc_event_str(ev)))
		return;
	CHECK_U64(ev->size, ==, (uint64_t)NX * XLEN);
	if (CHECK(ev->fd >= 0))
		buf_check(ev->fd, hi, e, NX, 0);
	close(ev->fd);
}

/* A list of extents while the same list is being read joins it; another list (one
 * buffer offset differs) does not. */
static void extents_join(struct dmaload *c, bool want_cached)
{
	struct dmaload_extent e[NX], f[NX];
	struct dmaload_opts slow, o;
	struct dmaload_event ev;
	uint64_t id1, id2, id3;

	ext_list(e, 0);
	ext_list(f, 1);
	dmaload_opts_init(&slow);
	dmaload_opts_init(&o);
	slow.rate_limit = 4 * MiB;		/* the burst, then about 2 s */
	if (!CHECK(dmaload_load_extents_path(c, file, e, NX, -1, &slow, &id1) == 0) ||
	    !CHECK(dmaload_next_event(c, &ev, 10000) == 1 && ev.type == DMALOAD_EV_ACCEPTED))
		return;
	/* at the leader's rate: a faster load would take the read over instead */
	CHECK(dmaload_load_extents_path(c, file, e, NX, -1, &slow, &id2) == 0);
	CHECK(dmaload_load_extents_path(c, file, f, NX, -1, &o, &id3) == 0);
	if (CHECK(dmaload_wait(c, id3, &ev, NULL, NULL) == 0)) {
		CHECKF(!(ev.done_flags & (DL_DONE_JOINED | DL_DONE_CACHED)),
		       "another list shared a buffer: flags 0x%x", ev.done_flags);
		ext_done_check(&ev, f);
	}
	if (CHECK(dmaload_wait(c, id2, &ev, NULL, NULL) == 0)) {
		CHECKF(ev.done_flags & DL_DONE_JOINED, "not joined: flags 0x%x", ev.done_flags);
		ext_done_check(&ev, e);
	}
	if (CHECK(dmaload_wait(c, id1, &ev, NULL, NULL) == 0))
		ext_done_check(&ev, e);
	if (!want_cached)
		return;
	/* with a cache: the same list again is a hit, the other one too now */
	if (CHECK(dmaload_load_extents_path_sync(c, file, e, NX, -1, &o, &ev) == 0)) {
		CHECKF(ev.done_flags & DL_DONE_CACHED, "not cached: flags 0x%x", ev.done_flags);
		ext_done_check(&ev, e);
	}
	if (CHECK(dmaload_load_extents_path_sync(c, file, f, NX, -1, &o, &ev) == 0)) {
		CHECKF(ev.done_flags & DL_DONE_CACHED, "not cached: flags 0x%x", ev.done_flags);
		ext_done_check(&ev, f);
	}
}

/* A load into the caller's buffer of a range a kept buffer holds: copied from it
 * (DL_DONE_CACHED, counted as a hit in STATS), nothing read; one it does not hold
 * reads. */
static void into_from_cache(struct dmaload *c)
{
	struct dmaload_extent e[2] = {
		{ .file_offset = MiB + 7, .length = 3 * MiB, .buf_offset = 5 },
		{ .file_offset = 100, .length = 1000, .buf_offset = 4 * MiB },
	};
	struct dmaload_stats st0, st1;
	struct dmaload_opts o;
	struct dmaload_event ev;
	int fd = buf_make(8 * MiB, false, true);

	if (fd < 0)
		return;
	/* the first 8 MiB of the file, kept */
	dmaload_opts_init(&o);
	o.length = 8 * MiB;
	if (CHECK(dmaload_load_path_sync(c, file, &o, &ev) == 0))
		close(ev.fd);
	CHECK(dmaload_stats(c, &st0) == 0);
	if (CHECK(dmaload_load_extents_path_sync(c, file, e, 2, fd, NULL, &ev) == 0)) {
		CHECKF((ev.done_flags & (DL_DONE_CACHED | DL_DONE_INTO)) ==
		       (DL_DONE_CACHED | DL_DONE_INTO), "flags 0x%x", ev.done_flags);
		CHECK_U64(ev.size, ==, 3 * MiB + 1000);
		buf_check(fd, 8 * MiB, e, 2, FILL);
	}
	if (CHECK(dmaload_stats(c, &st1) == 0)) {
		CHECK_U64(st1.cache_hits, ==, st0.cache_hits + 1);
		CHECK_U64(st1.bytes_cached, ==, st0.bytes_cached + 3 * MiB + 1000);
		CHECK_U64(st1.bytes_read, ==, st0.bytes_read);
		dmaload_stats_free(&st1);
	}
	dmaload_stats_free(&st0);
	/* past what is kept: read */
	e[0].file_offset = 7 * MiB;
	if (CHECK(dmaload_load_extents_path_sync(c, file, e, 2, fd, NULL, &ev) == 0)) {
		CHECKF(!(ev.done_flags & DL_DONE_CACHED), "flags 0x%x", ev.done_flags);
		buf_check(fd, 8 * MiB, e, 2, FILL);
	}
	close(fd);
}

/* The same with a daemon that keeps buffers (cache_limit 256M). */
static void extents_cached(void)
{
	struct test_daemon dc;
	struct dmaload *c;
	char why[512];

	if (!CHECKF(daemon_start(&dc, "into-cache", "max_load_size = 1G\n[cache]\n"
				 "cache_limit = 256M\n", why, sizeof(why)) == 0, "%s", why)) {
		daemon_cleanup(&dc);
		return;
	}
	c = lc_connect(&dc, "test-into-cache");
	if (c) {
		extents_join(c, true);
		into_from_cache(c);
		dmaload_close(c);
	}
	CHECK(daemon_stop(&dc) == 0);
	daemon_cleanup(&dc);
}

/* ---- dmaload-ctl ------------------------------------------------------------------- */

/* dmaload-ctl load FILE --extents ... [--into-new-memfd] -- cmp /dev/fd/3 EXPECTED: the
 * buffer CMD gets holds the extents (zeros between them). */
static void ctl_extents(bool into_new, bool by_fd)
{
	struct dmaload_extent e[3] = {
		{ .file_offset = 777, .length = 1000, .buf_offset = 0 },
		{ .file_offset = 5000, .length = 3000, .buf_offset = 2000 },
		{ .file_offset = 8 * MiB, .length = 5, .buf_offset = 5000 },
	};
	uint64_t len = 5005;
	char expected[PATH_MAX], out[4096], err[4096];
	uint8_t *want = calloc(1, len);
	const char *args[16];
	int n = 0, fd, r;

	if (!CHECK(want != NULL))
		return;
	for (int i = 0; i < 3; i++)
		pattern_fill(SEED, e[i].file_offset, want + e[i].buf_offset, e[i].length);
	snprintf(expected, sizeof(expected), "%s/expected.bin", d.dir);
	fd = open(expected, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	CHECK(fd >= 0 && write(fd, want, len) == (ssize_t)len);
	close(fd);
	args[n++] = "load";
	args[n++] = file;
	args[n++] = "--extents";
	args[n++] = "777:1000,5000:3000@2000,8M:5";
	if (into_new)
		args[n++] = "--into-new-memfd";
	if (by_fd)
		args[n++] = "--fd";
	args[n++] = "--";
	args[n++] = "cmp";
	args[n++] = "/dev/fd/3";
	args[n++] = expected;
	args[n] = NULL;
	r = ctl_run(d.sock, d.dir, args, 20000, out, sizeof(out), err, sizeof(err));
	CHECKF(r == 0, "dmaload-ctl: %d: %s%s", r, out, err);
	CHECKF(strstr(err, into_new ? "filled in place" : "sealed"), "report: %s", err);
	unlink(expected);
	free(want);
	CHECK_SETTLED(&d, 5000);
}

/* dmaload-ctl's refusals of bad lists. */
static void ctl_bad_extents(void)
{
	static const char *const bad[] = { "", "5", "1:2,", "x:1", "1:2@", ",", NULL };
	char out[4096], err[4096];

	for (int i = 0; bad[i]; i++) {
		const char *args[] = { "load", file, "--extents", bad[i], NULL };
		int r = ctl_run(d.sock, d.dir, args, 20000, out, sizeof(out), err, sizeof(err));

		CHECKF(r == 2 && strstr(err, "bad extents"), "'%s': %d: %s", bad[i], r, err);
	}
}

int main(void)
{
	char why[512];
	int r;

	check_init(SUITE);
	check_begin("daemon starts; test file");
	r = daemon_start(&d, SUITE, "max_load_size = 1G\n", why, sizeof(why));
	if (!CHECKF(r == 0, "%s", why)) {
		check_end();
		daemon_cleanup(&d);
		return check_finish();
	}
	snprintf(file, sizeof(file), "%s/file.bin", d.dir);
	r = file_make(file, FILE_SIZE, SEED, 0644);
	CHECKF(r == 0, "file_make: %s", strerror(-r));
	dl = lc_connect(&d, "test-into");
	if (dl)
		CHECK((dmaload_daemon_caps(dl) & (DL_CAP_LOAD_INTO | DL_CAP_EXTENTS)) ==
		      (DL_CAP_LOAD_INTO | DL_CAP_EXTENTS));
	if (!check_end() || !dl) {
		dmaload_close(dl);
		daemon_stop(&d);
		daemon_cleanup(&d);
		return check_finish();
	}
	/* a first load, so what the daemon sets up lazily is in the baseline */
	{
		struct dmaload_extent e = { .length = 4096 };
		struct dmaload_event ev;

		if (load_ext(&e, 1, -1, false, DL_METHOD_AUTO, &ev) == 0)
			close(ev.fd);
	}
	daemon_baseline(&d);
	if (geteuid() == 0 && hugepages_reserve(16))
		huge_size = (uint64_t)meminfo_value("Hugepagesize") * 1024;

	for (int huge = 0; huge < 2; huge++) {
		static const uint8_t methods[] = { DL_METHOD_AUTO, DL_METHOD_BUFFERED,
						   DL_METHOD_DIRECT };
		const char *kind = huge ? "hugetlb memfd" : "4 KiB memfd";

		for (int by_fd = 0; by_fd < 2; by_fd++)
			for (size_t m = 0; m < sizeof(methods); m++) {
				const char *how = by_fd ? "by fd" : "by path";

				if (huge && !huge_size) {
					check_begin("into a %s %s", kind, how);
					check_skip("no huge pages (needs root and a pool)");
					check_end();
					continue;
				}
				CASE(into_range(huge, by_fd, methods[m], 0, 3 * MiB, 0),
				     "into a %s %s, method %s: 3 MiB at buffer offset 0", kind,
				     how, dl_method_name(methods[m]));
				CASE(into_range(huge, by_fd, methods[m], 4096, 2 * MiB + 4096,
						MiB + 8192),
				     "into a %s %s, method %s: aligned range at an aligned "
				     "buffer offset", kind, how, dl_method_name(methods[m]));
				if (methods[m] != DL_METHOD_DIRECT)
					CASE(into_range(huge, by_fd, methods[m], 777, MiB + 3,
							12345),
					     "into a %s %s, method %s: odd offset, length and "
					     "buffer offset", kind, how,
					     dl_method_name(methods[m]));
			}
	}
	CASE(into_api(false), "dmaload_load_into_path: offset 100 to the end of the file");
	CASE(into_api(true), "dmaload_load_into_fd: offset 100 to the end of the file");
	CASE(extents_new(1, false), "1 extent into a new buffer, by path");
	CASE(extents_new(100, true), "100 extents into a new buffer (inline), by fd");
	CASE(extents_new(4096, false), "4096 extents into a new buffer (list in a memfd)");
	CASE(extents_into(4096, false, DL_METHOD_AUTO),
	     "4096 extents into a 4 KiB memfd, auto");
	CASE(extents_into(1000, false, DL_METHOD_BUFFERED),
	     "1000 extents into a 4 KiB memfd, buffered");
	if (huge_size)
		CASE(extents_into(4096, true, DL_METHOD_AUTO),
		     "4096 extents into a hugetlb memfd, auto");
	CASE(extents_join(dl, false), "a list of extents joins a running load of the same "
	     "list, not of another");
	CASE(CHECK_SETTLED(&d, 5000), "no fd leaked by the joins");
	CASE(extents_cached(), "with a cache: the same list again is a hit; a load into the "
	     "caller's buffer of a kept range is copied from it");
	CASE(extents_adjacent_far(), "adjacent extents read as one, far ones apart");
	CASE(refusals(), "refused before a byte moves: read-only, write-only, overlap, "
	     "past EOF, too small, no F_SEAL_SHRINK, write-sealed, a regular file");
	CASE(truncate_close(), "the caller truncates (refused by the seal), then closes "
	     "its fd: the load completes");
	CASE(close_mid_load(), "the caller closes its only fd mid-load: DONE, no leak");
	CASE(cancel_mid_load(), "cancel of a load into the caller's buffer: no leak");
	CASE(killed_caller(false), "caller SIGKILLed mid-load into a 4 KiB memfd: no leak");
	if (huge_size)
		CASE(killed_caller(true), "caller SIGKILLed mid-load into a hugetlb memfd: "
		     "no leak");
	CASE(ctl_extents(false, false), "dmaload-ctl load --extents -- CMD: a new buffer");
	CASE(ctl_extents(true, false), "dmaload-ctl load --extents --into-new-memfd -- CMD");
	CASE(ctl_extents(true, true), "dmaload-ctl load --fd --extents --into-new-memfd -- CMD");
	CASE(ctl_bad_extents(), "dmaload-ctl load --extents: bad lists are usage errors");
	CASE(CHECK_SETTLED_START(&d, 5000), "no fd leaked since the start");
	dl = dmaload_close(dl);
	daemon_stop_case(&d, "daemon exits 0 on SIGTERM");
	return check_finish();
}
