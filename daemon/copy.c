/*
 * copy.c: the chunks of a load and the methods that move them. See copy.h.
 *
 * The file range [off, off + len) lands at the start of the buffer, so file offset x
 * goes to buffer byte x - off. A load of extents, or one into the caller's buffer, is
 * a list of runs (struct copy_seg), issued in file order one after the other: file
 * offset x of a run goes to buffer byte x - run.off + run.buf, and to the mapping at
 * that minus tgt->map_off (a caller's buffer is mapped from the first page the load
 * touches). Every chunk lies inside one run. Runs that touch on disk but not in the
 * buffer are separate runs read back to back, which the block layer merges.
 *
 * Reads (direct and buffered): a chunk that comes back short is resubmitted for the
 * rest (short reads are normal: signals, page cache pressure, O_DIRECT quirks);
 * -EAGAIN and -EINTR are resubmitted as they are; 0 bytes before the end means the
 * file shrank under us, which fails the load (ESTALE, like a file written during the
 * read) rather than hand out a buffer with a hole in it. O_DIRECT needs the file offset, the length and the memory address aligned;
 * the mapping is page-aligned and byte 0 holds file offset off, so direct reads are
 * possible only when off is aligned, and the unaligned tail (less than one alignment
 * unit) goes through the page cache.
 *
 * Splice pairs: SPLICE file -> pipe linked to SPLICE pipe -> buffer memfd. When the
 * first comes up short, io_uring cancels the second (-ECANCELED) and the bytes that
 * did reach the pipe are still there: the chunk "drains" them with a lone SPLICE
 * pipe -> memfd before it issues the next pair. A chunk acts only once all of its
 * requests have completed, so the order of the two completions does not matter.
 * A chunk that ends with bytes left in its pipe (a failed load) closes the pipe
 * instead of returning it, so no later chunk ever reads stale bytes.
 *
 * copy_file_range chunks run on the workers: the syscall has no io_uring op and may
 * block for as long as the copy takes.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "config.h"
#include "copy.h"
#include "list.h"
#include "log.h"
#include "probe.h"
#include "ring.h"
#include "source.h"
#include "target.h"
#include "worker.h"

struct chunk {
	struct ring_op op[2];	/* read or splice in; splice out */
	struct worker_task task;	/* CHUNK_CFR */
	struct copy *cp;
	enum chunk_how how;
	uint64_t off;		/* file offset of the next byte to read */
	uint64_t out;		/* file offset of the next byte to land (splice: off minus
				 * what sits in the pipe) */
	uint32_t left;		/* bytes still to read from the file */
	uint32_t len;		/* bytes of the chunk, as issued */
	uint32_t in_pipe;	/* splice: bytes in the pipe, not yet in the buffer */
	int res[2];
	unsigned pending;	/* requests of this chunk in the ring */
	bool pair;		/* the requests in the ring are a pair (else a drain) */
	struct cpipe *pipe;
	int bounce;		/* CHUNK_BOUNCE, CHUNK_STAGED: index of its bounce buffer,
				 * else -1 */
	bool staged_buffered;	/* CHUNK_STAGED: reads the rest through the page cache
				 * (an unaligned short read, O_DIRECT refused) */
	uint64_t wrote;		/* CHUNK_STAGED: file offset of the next byte to write */
	struct chunk *next_staged;	/* CHUNK_STAGED: in cp->staged_queue */
	uint64_t bdelta;	/* buffer offset minus file offset in its run (mod 2^64) */
	uint64_t end;		/* file offset where its run ends (for messages) */
};

/* The buffer offset where file byte @x of chunk @c lands. */
static uint64_t chunk_buf(const struct chunk *c, uint64_t x)
{
	return x + c->bdelta;
}

/* Its address in the daemon's mapping of the buffer. */
static char *chunk_addr(const struct chunk *c, uint64_t x)
{
	return (char *)c->cp->tgt->map + (chunk_buf(c, x) - c->cp->tgt->map_off);
}

/* No more direct reads in this copy (the filesystem refused one, or cfr took over). */
static void copy_no_direct(struct copy *cp)
{
	for (unsigned i = 0; i < cp->nsegs; i++)
		cp->segs[i].direct_end = cp->segs[i].off;
}

/* ---- bounce buffers ----------------------------------------------------------------- */

static void copy_bounce_init(struct copy_bounce *b, uint64_t size, unsigned depth)
{
	memset(b, 0, sizeof(*b));
	b->size = size;
	b->max = size ? (unsigned)(COPY_BOUNCE_BYTES / size) : 0;
	if (b->max > depth)
		b->max = depth;
	if (b->max < 4)
		b->max = 4;
	if (b->max > COPY_BOUNCE_MAX)
		b->max = COPY_BOUNCE_MAX;
}

static void copy_bounce_deinit(struct copy_bounce *b)
{
	for (unsigned i = 0; i < COPY_BOUNCE_MAX; i++)
		if (b->buf[i] && !b->busy[i]) {
			munmap(b->buf[i], b->size);
			b->buf[i] = NULL;
		}
}

/* A free bounce buffer's index, or -1 when all are busy (or none can be made). */
static int bounce_get(struct copy_bounce *b)
{
	for (unsigned i = 0; i < b->max; i++) {
		if (b->busy[i])
			continue;
		if (!b->buf[i]) {
			/* page-aligned, which every O_DIRECT memory alignment divides */
			void *p = mmap(NULL, b->size, PROT_READ | PROT_WRITE,
				       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

			if (p == MAP_FAILED)
				continue;
			/* Transparent huge pages where the host allows them for
			 * madvise: fewer pages to fault in and to pin per read. */
			madvise(p, b->size, MADV_HUGEPAGE);
			b->buf[i] = p;
		}
		b->busy[i] = true;
		return (int)i;
	}
	return -1;
}

/* ---- pipes ------------------------------------------------------------------------- */

static void copy_pipes_init(struct copy_pipes *p, unsigned max, uint32_t size)
{
	memset(p, 0, sizeof(*p));
	p->max = max;
	p->want = size;
	p->size = size;
}

static void cpipe_close(struct copy_pipes *p, struct cpipe *cp)
{
	close(cp->rfd);
	close(cp->wfd);
	free(cp);
	p->n--;
}

static void copy_pipes_deinit(struct copy_pipes *p)
{
	while (p->free) {
		struct cpipe *cp = p->free;

		p->free = cp->next;
		cpipe_close(p, cp);
	}
}

void copy_env_init(struct copy_env *e, const struct config *cfg, struct ring *ring,
		   struct worker_pool *pool)
{
	memset(e, 0, sizeof(*e));
	e->cfg = cfg;
	e->ring = ring;
	e->pool = pool;
	/* Pipes hold kernel memory: a few pairs in flight keep the disk busy. */
	copy_pipes_init(&e->pipes, cfg->queue_depth < 16 ? cfg->queue_depth : 16,
			(uint32_t)cfg->pipe_size);
	copy_bounce_init(&e->bounce, cfg->chunk_size, cfg->queue_depth);
}

void copy_env_trim_pipes(struct copy_env *e)
{
	copy_pipes_deinit(&e->pipes);
}

void copy_env_trim(struct copy_env *e)
{
	copy_pipes_deinit(&e->pipes);
	copy_bounce_deinit(&e->bounce);
}

static struct cpipe *cpipe_get(struct copy_pipes *p)
{
	struct cpipe *cp = p->free;
	int fds[2], got;

	if (cp) {
		p->free = cp->next;
		return cp;
	}
	if (p->n >= p->max) {
		errno = EBUSY;
		return NULL;
	}
	/* Blocking pipes: io_uring runs splices on its own workers, which may wait;
	 * a non-blocking pipe would turn a full or empty pipe into -EAGAIN loops. */
	if (pipe2(fds, O_CLOEXEC) < 0)
		return NULL;
	got = fcntl(fds[1], F_SETPIPE_SZ, (int)p->want);
	if (got < 0)
		got = fcntl(fds[1], F_GETPIPE_SZ);
	if (got <= 0 || !(cp = calloc(1, sizeof(*cp)))) {
		close(fds[0]);
		close(fds[1]);
		errno = ENOMEM;
		return NULL;
	}
	/* Every pipe of the daemon has the same size unless the kernel refused some
	 * (pipe-max-size, the user's pipe quota): chunks use the smallest seen. */
	if ((uint32_t)got < p->size)
		p->size = (uint32_t)got;
	cp->rfd = fds[0];
	cp->wfd = fds[1];
	p->n++;
	return cp;
}

static void cpipe_put(struct copy_pipes *p, struct cpipe *cp, bool dirty)
{
	if (dirty || p->n > p->max) {
		cpipe_close(p, cp);
		return;
	}
	cp->next = p->free;
	p->free = cp;
}

/* ---- planning (worker) ----------------------------------------------------------- */

/* The alignment a direct read needs of both its file offset and its buffer address;
 * buffer addresses follow file offsets here, so one number covers both. */
static uint32_t dio_align(const struct copy *cp)
{
	return cp->src->dio_mem_align > cp->src->dio_off_align ?
	       cp->src->dio_mem_align : cp->src->dio_off_align;
}

/* Why O_DIRECT cannot read any of this load, or DL_WHY_DEFAULT if it may. */
static uint8_t direct_obstacle(const struct copy *cp)
{
	if (cp->env->cfg->direct == CONFIG_OFF)
		return DL_WHY_ASKED;	/* the site said so: not the load's fault */
	if (cp->src->dfd < 0)
		return cp->src->direct_denied ? DL_WHY_NO_REOPEN : DL_WHY_NO_DIRECT;
	return DL_WHY_DEFAULT;
}

/* Why O_DIRECT cannot read run @s, or DL_WHY_DEFAULT if it can: its start must be
 * aligned on disk and in memory (the mapping is page-aligned, so the buffer offset
 * tells), and it must hold one whole unit. */
static uint8_t direct_obstacle_seg(const struct copy *cp, const struct copy_seg *s)
{
	if (s->off % dio_align(cp) || s->buf % dio_align(cp))
		return DL_WHY_UNALIGNED;
	if (s->len < dio_align(cp))
		return DL_WHY_SHORT;
	return DL_WHY_DEFAULT;
}

int copy_plan(struct copy *cp, char *msg, size_t len)
{
	const struct config *cfg = cp->env->cfg;
	bool asked = cp->asked != DL_METHOD_AUTO;
	uint8_t want = asked ? cp->asked : cfg->method;
	const struct copy_seg *bad = NULL;
	uint8_t why;

	if (!cp->segs) {
		cp->one = (struct copy_seg){ .off = cp->off, .len = cp->len };
		cp->segs = &cp->one;
		cp->nsegs = cp->len ? 1 : 0;
	}
	copy_no_direct(cp);
	cp->reason = asked ? DL_WHY_ASKED : DL_WHY_DEFAULT;
	cp->seg = 0;
	cp->next = cp->nsegs ? cp->segs[0].off : cp->off;
	cp->auto_cache = false;
	if (cp->len == 0) {
		cp->method = DL_METHOD_BUFFERED;
		cp->reason = DL_WHY_EMPTY;
		return 0;
	}
	if (want == DL_METHOD_CFR || want == DL_METHOD_BUFFERED) {
		cp->method = want;
		return 0;
	}

	/* direct, or auto (direct where it can, cached chunks buffered): each run that
	 * starts aligned is read direct up to its last whole unit */
	why = direct_obstacle(cp);
	if (why == DL_WHY_DEFAULT) {
		bool any = false;

		for (unsigned i = 0; i < cp->nsegs; i++) {
			struct copy_seg *s = &cp->segs[i];
			uint8_t w = direct_obstacle_seg(cp, s);

			if (w == DL_WHY_DEFAULT) {
				s->direct_end = s->off + (s->len / dio_align(cp)) * dio_align(cp);
				any = true;
			} else if (why == DL_WHY_DEFAULT || (w == DL_WHY_UNALIGNED &&
							     why != DL_WHY_UNALIGNED)) {
				why = w;
				bad = s;
			}
		}
		/* Asked for direct: every run must start aligned (a short one, or the
		 * tail of one, goes through the page cache as with a plain load). */
		if (any && !(cp->asked == DL_METHOD_DIRECT && why == DL_WHY_UNALIGNED)) {
			cp->method = DL_METHOD_DIRECT;
			cp->auto_cache = want == DL_METHOD_AUTO;
			return 0;
		}
		copy_no_direct(cp);
	}
	cp->method = DL_METHOD_BUFFERED;
	if (why != DL_WHY_ASKED)
		cp->reason = why;
	/* Too short for O_DIRECT: all of it is the buffered tail. A client that may not
	 * reopen its own fd gets what that fd reads, as it would read it itself. */
	if (cp->asked != DL_METHOD_DIRECT || why == DL_WHY_SHORT || why == DL_WHY_NO_REOPEN)
		return 0;
	if (why == DL_WHY_ASKED)
		snprintf(msg, len, "method direct asked, but direct "
			 "= off in the daemon's config; use auto or buffered");
	else if (why == DL_WHY_NO_DIRECT)
		snprintf(msg, len, "method direct asked, but the "
			 "filesystem refuses O_DIRECT (%s); use auto or buffered",
			 strerror(cp->src->direct_err));
	else if (!bad || bad->buf == 0)
		snprintf(msg, len, "method direct asked, but offset "
			 "%llu is not aligned for O_DIRECT (%u bytes); use auto, buffered or "
			 "cfr", (unsigned long long)(bad ? bad->off : cp->off), dio_align(cp));
	else
		snprintf(msg, len, "method direct asked, but the extent at file offset "
			 "%llu, buffer offset %llu, is not aligned for O_DIRECT (%u bytes); use "
			 "auto, buffered or cfr", (unsigned long long)bad->off,
			 (unsigned long long)bad->buf, dio_align(cp));
	return -EINVAL;
}

/* Heap targets: copy_file_range into the dma-buf where the kernel takes it (stock
 * kernels refuse, EINVAL); auto uses it then too, since nothing else skips the copy. */
static int probe_heap(struct copy *cp, char *msg, size_t len)
{
	char kind[80];
	int err;

	cp->cache_how = CHUNK_BUFFERED;	/* splice into a dma-buf is not a thing */
	if (cp->len == 0 || (cp->method != DL_METHOD_CFR && cp->asked != DL_METHOD_AUTO))
		return 0;
	snprintf(kind, sizeof(kind), "heap:%s", cp->tgt->heap);
	cp->cfr_syscall = probe_cfr(cp->src->fd, cp->src->dev, cp->segs[0].off,
				   cp->segs[0].len, cp->segs[0].buf, cp->tgt->fd, kind,
				   &err) == CFR_ACCEPTED;
	cp->cfr_err = err;
	if (cp->cfr_syscall) {
		cp->method = DL_METHOD_CFR;
		copy_no_direct(cp);
		cp->auto_cache = false;
		return 0;
	}
	if (cp->method != DL_METHOD_CFR)
		return 0;
	snprintf(msg, len, "method cfr asked, but this kernel refuses "
		 "copy_file_range into %s \"%s\" (%s); use auto, direct or buffered",
		 cp->tgt->into ? "the dma-buf of exporter" : "dma-heap",
		 cp->tgt->heap, err ? strerrorname_np(err) : "no verdict");
	return -EINVAL;
}

static bool range_cached(const struct copy *cp, uint64_t off, uint64_t len);

/* Whether auto asks the kernel for copy_file_range into this memfd. A kernel that
 * takes it (none stock; tests/kernel/patches/ makes one) reads the file into the
 * memfd's pages itself, by direct I/O where the file allows: no mapping to fault in
 * and nothing left in the page cache. Not into hugetlb memfds (hugetlbfs has no such
 * copy), and not for a range all in the page cache (a memory copy beats reading the
 * disk again). Where the kernel refuses, the verdict is remembered: one failing
 * syscall per filesystem. */
static bool auto_cfr(const struct copy *cp, bool auto_method)
{
	/* (a caller's memfd with O_APPEND takes no write at an offset) */
	return auto_method && cp->len && !cp->tgt->hugetlb && !cp->tgt->no_splice &&
	       !range_cached(cp, cp->off, cp->len);
}

int copy_probe(struct copy *cp, char *msg, size_t len)
{
	bool auto_method = cp->asked == DL_METHOD_AUTO &&
			   cp->env->cfg->method == DL_METHOD_AUTO;
	int err;

	if (cp->tgt->pfnmap)
		return probe_heap(cp, msg, len);

	/* Bytes that come through the page cache: reading them into the mapping of a
	 * 4 KiB-page memfd faults in every page from the copy (measured 10-15x slower
	 * than splicing them into the memfd, which fills it through the file); huge
	 * pages fault cheaply and cannot be spliced into. */
	cp->cache_how = auto_method && !cp->tgt->hugetlb && !cp->tgt->no_splice ?
			CHUNK_SPLICE : CHUNK_BUFFERED;
	cp->staged = target_fresh_small_pages(cp->tgt);
	if ((cp->method != DL_METHOD_CFR && !auto_cfr(cp, auto_method)) || cp->len == 0)
		return 0;
	cp->cfr_syscall = probe_cfr(cp->src->fd, cp->src->dev, cp->segs[0].off,
				   cp->segs[0].len, cp->segs[0].buf, cp->tgt->fd,
				   "memfd", &err) == CFR_ACCEPTED;
	cp->cfr_err = err;
	if (cp->cfr_syscall && cp->method != DL_METHOD_CFR) {
		cp->method = DL_METHOD_CFR;
		copy_no_direct(cp);
		cp->auto_cache = false;
	}
	return 0;
}

/* ---- chunk endings ----------------------------------------------------------------- */

/* The copy cannot go on: the owner hears why (once per failing chunk; it keeps the
 * first). */
static void copy_fail(struct copy *cp, int err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void copy_fail(struct copy *cp, int err, const char *fmt, ...)
{
	char msg[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	cp->ops->failed(cp, err, msg);
}

/* The chunk is over (its bytes landed, or the copy failed): tell the owner. */
static void chunk_end(struct chunk *c)
{
	struct copy *cp = c->cp;
	uint64_t len = c->len;

	if (c->pipe)
		cpipe_put(&cp->env->pipes, c->pipe, c->in_pipe > 0 || cp->stopped);
	if (c->bounce >= 0)
		cp->env->bounce.busy[c->bounce] = false;
	free(c);
	cp->env->chunks--;
	cp->inflight--;
	cp->ops->chunk_ended(cp, len);
}

/* "@what at offset @off failed: reason" */
static void chunk_fail(struct chunk *c, int err, const char *what, uint64_t off)
{
	/* -ECANCELED means "the client cancelled" to the owner; a request the kernel
	 * cancelled is an I/O failure of this load. */
	if (err == -ECANCELED)
		err = -EIO;
	copy_fail(c->cp, err, "%s at offset %llu failed: %s", what,
		  (unsigned long long)off, strerror(-err));
	chunk_end(c);
}

static void chunk_shrank(struct chunk *c)
{
	struct copy *cp = c->cp;

	/* The file changed under the read: the same failure, ESTALE, as the statx after
	 * the read (source_check_unchanged), so a writer racing the load (a truncate
	 * and rewrite) gets one answer whichever check sees it first. */
	copy_fail(cp, -ESTALE, "the file changed while it was read: it ended at offset "
		  "%llu, before the %llu bytes asked for (it shrank during the load)",
		  (unsigned long long)c->off, (unsigned long long)c->end);
	chunk_end(c);
}

/* ---- reads ----------------------------------------------------------------------- */

static void staged_write(struct chunk *c);
static void staged_start(struct chunk *c);

static void read_submit(struct chunk *c)
{
	struct copy *cp = c->cp;
	char *dst = chunk_addr(c, c->off);
	int fd = c->how == CHUNK_BUFFERED ? cp->src->fd : cp->src->dfd;

	c->pending = 1;
	if (c->how == CHUNK_BOUNCE || c->how == CHUNK_STAGED) {
		/* c->out stays at the chunk's first byte, which sits at the bounce start */
		dst = (char *)cp->env->bounce.buf[c->bounce] + (c->off - c->out);
		if (c->staged_buffered)
			fd = cp->src->fd;
		ring_read(cp->env->ring, &c->op[0], fd, dst, c->left, c->off, -1);
		return;
	}
	ring_read(cp->env->ring, &c->op[0], fd, dst, c->left, c->off, cp->fixed_slot);
}

static void read_complete(struct ring_op *op, int res)
{
	struct chunk *c = list_entry(op, struct chunk, op[0]);
	struct copy *cp = c->cp;

	c->pending = 0;
	if (cp->stopped) {
		chunk_end(c);
		return;
	}
	if (res == -EAGAIN || res == -EINTR) {
		read_submit(c);
		return;
	}
	if (res == -EINVAL && (c->how == CHUNK_DIRECT || c->how == CHUNK_BOUNCE ||
			       (c->how == CHUNK_STAGED && !c->staged_buffered)) &&
	    cp->asked != DL_METHOD_DIRECT) {
		/* Some filesystems take O_DIRECT at open and refuse it per request: fall
		 * back for the rest of this load. */
		log_notice("%s: O_DIRECT read refused, using buffered reads", cp->who);
		cp->method = DL_METHOD_BUFFERED;
		cp->reason = DL_WHY_NO_DIRECT;
		copy_no_direct(cp);
		cp->auto_cache = false;
		/* a staged chunk may hold bytes in its bounce buffer: it goes on there */
		if (c->how == CHUNK_STAGED)
			c->staged_buffered = true;
		else
			c->how = CHUNK_BUFFERED;
		read_submit(c);
		return;
	}
	if (res < 0) {
		chunk_fail(c, res, "read", c->off);
		return;
	}
	if (res == 0) {
		chunk_shrank(c);
		return;
	}
	if (c->how == CHUNK_BOUNCE)
		/* On the loop: a memory copy of at most one chunk (4 MiB by default, about
		 * a millisecond), cheaper than a round trip to a worker and back, and the
		 * loop's other work is only waiting for completions meanwhile. */
		memcpy(chunk_addr(c, c->off),
		       (char *)cp->env->bounce.buf[c->bounce] + (c->off - c->out), (size_t)res);
	if (c->how != CHUNK_STAGED) {	/* staged bytes land when written */
		cp->done += (uint64_t)res;
		cp->landed[c->how] += (uint64_t)res;
	}
	c->off += (uint64_t)res;
	c->left -= (uint32_t)res;
	if (c->left) {
		/* Short read: go on from where it stopped. O_DIRECT may only go on from
		 * an aligned place; otherwise the page cache finishes the chunk. */
		if (c->off % dio_align(cp)) {
			if (c->how == CHUNK_DIRECT || c->how == CHUNK_BOUNCE)
				c->how = CHUNK_BUFFERED;
			else if (c->how == CHUNK_STAGED)
				c->staged_buffered = true;
		}
		read_submit(c);
		return;
	}
	if (c->how == CHUNK_STAGED) {
		staged_start(c);
		return;
	}
	chunk_end(c);
}

/* ---- staged chunks: the bounce buffer written into the memfd ------------------------
 *
 * One write per copy at a time: a write into shmem holds the inode's lock, so a
 * second one would only spin on it (perf: 5% of the CPU of a 1 GiB load went to
 * that), and its chunk waits in staged_queue meanwhile. Loads into different
 * buffers write in parallel.
 */

/* Chunk @c's bytes are all in its bounce buffer: write them, or queue them. */
static void staged_start(struct chunk *c)
{
	struct copy *cp = c->cp;
	struct chunk **p = &cp->staged_queue;

	c->wrote = c->out;
	if (cp->staged_writing) {
		while (*p)
			p = &(*p)->next_staged;
		c->next_staged = NULL;
		*p = c;
		return;
	}
	cp->staged_writing = true;
	staged_write(c);
}

/* Chunk @c's write is over (its bytes landed, or the copy failed): the next one
 * goes, or when the copy stopped, ends as well. */
static void staged_done(struct chunk *c)
{
	struct copy *cp = c->cp;
	struct chunk *n = cp->staged_queue;

	cp->staged_writing = false;
	if (n)
		cp->staged_queue = n->next_staged;
	chunk_end(c);		/* @n still counts in inflight: @cp stays */
	if (!n)
		return;
	if (cp->stopped)
		staged_done(n);
	else
		staged_start(n);
}

static void staged_write(struct chunk *c)
{
	struct copy *cp = c->cp;

	c->pending = 1;
	ring_write(cp->env->ring, &c->op[1], cp->tgt->fd,
		   (char *)cp->env->bounce.buf[c->bounce] + (c->wrote - c->out),
		   (unsigned)(c->off - c->wrote), chunk_buf(c, c->wrote));
}

static void staged_write_complete(struct ring_op *op, int res)
{
	struct chunk *c = list_entry(op, struct chunk, op[1]);
	struct copy *cp = c->cp;

	c->pending = 0;
	if (cp->stopped) {
		staged_done(c);
		return;
	}
	if (res == -EAGAIN || res == -EINTR) {
		staged_write(c);
		return;
	}
	if (res <= 0) {
		/* 0: a memfd takes every byte or fails; never loop on it */
		if (!res || res == -ECANCELED)
			res = -EIO;
		copy_fail(cp, res, "writing into the buffer at offset %llu failed: %s",
			  (unsigned long long)chunk_buf(c, c->wrote), strerror(-res));
		staged_done(c);
		return;
	}
	cp->done += (uint64_t)res;
	/* read through the page cache after O_DIRECT failed: reported as such */
	cp->landed[c->staged_buffered ? CHUNK_BUFFERED : CHUNK_STAGED] += (uint64_t)res;
	c->wrote += (uint64_t)res;
	if (c->wrote < c->off) {
		staged_write(c);
		return;
	}
	staged_done(c);
}

/* auto: is [off, off + len) all in the page cache? Then a copy from it is faster
 * than the disk. Any page missing sends the whole chunk to the disk: one O_DIRECT
 * read beats a buffered read that stalls on a page-cache miss. */
static bool range_cached(const struct copy *cp, uint64_t off, uint64_t len)
{
	uint64_t cached, pages;

	return probe_cached(cp->src->fd, off, len, &cached, &pages) == 0 && cached >= pages;
}

/* ---- splice pairs ---------------------------------------------------------------- */

static void splice_step(struct chunk *c);

static void splice_submit(struct chunk *c)
{
	struct copy *cp = c->cp;
	uint32_t n;

	c->res[0] = c->res[1] = 0;
	if (c->in_pipe) {
		/* Drain what a short pair left in the pipe. */
		c->pair = false;
		c->pending = 1;
		ring_splice(cp->env->ring, &c->op[1], c->pipe->rfd, -1, cp->tgt->fd,
			    (int64_t)chunk_buf(c, c->out), c->in_pipe, false);
		return;
	}
	n = c->left < cp->env->pipes.size ? c->left : cp->env->pipes.size;
	c->pair = true;
	c->pending = 2;
	ring_splice(cp->env->ring, &c->op[0], cp->src->fd, (int64_t)c->off, c->pipe->wfd, -1,
		    n, true);
	ring_splice(cp->env->ring, &c->op[1], c->pipe->rfd, -1, cp->tgt->fd,
		    (int64_t)chunk_buf(c, c->out), n, false);
}

static void splice_in_complete(struct ring_op *op, int res)
{
	struct chunk *c = list_entry(op, struct chunk, op[0]);

	c->res[0] = res;
	if (--c->pending == 0)
		splice_step(c);
}

static void splice_out_complete(struct ring_op *op, int res)
{
	struct chunk *c = list_entry(op, struct chunk, op[1]);

	c->res[1] = res;
	if (--c->pending == 0)
		splice_step(c);
}

static bool retryable(int res)
{
	return res == -EAGAIN || res == -EINTR || res == -ECANCELED;
}

/* Both requests of a pair (or the lone drain) have completed. */
static void splice_step(struct chunk *c)
{
	struct copy *cp = c->cp;
	int in = c->res[0], out = c->res[1];

	if (c->pair && in > 0) {
		c->off += (uint32_t)in;
		c->left -= (uint32_t)in;
		c->in_pipe += (uint32_t)in;
	}
	if (out > 0) {
		c->in_pipe -= (uint32_t)out;
		c->out += (uint32_t)out;
		cp->done += (uint64_t)out;
		cp->landed[CHUNK_SPLICE] += (uint64_t)out;
	}
	if (cp->stopped) {
		chunk_end(c);
		return;
	}
	if (c->pair && in < 0 && !retryable(in) && cp->method != DL_METHOD_CFR &&
	    !c->in_pipe) {
		/* auto spliced page-cache bytes and this filesystem cannot splice: reads
		 * do the rest of the load. The pipe is empty, so it goes back clean. */
		log_notice("%s: splice from the file refused (%s), using reads", cp->who,
			   strerror(-in));
		cp->cache_how = CHUNK_BUFFERED;
		cpipe_put(&cp->env->pipes, c->pipe, false);
		c->pipe = NULL;
		c->how = CHUNK_BUFFERED;
		c->op[0].complete = read_complete;
		read_submit(c);
		return;
	}
	if (c->pair && in < 0 && !retryable(in)) {
		chunk_fail(c, in, "splice from the file", c->off);
		return;
	}
	if (out < 0 && !retryable(out)) {
		chunk_fail(c, out, "splice into the buffer", chunk_buf(c, c->out));
		return;
	}
	if (c->pair && in == 0 && c->left) {
		chunk_shrank(c);
		return;
	}
	if (c->in_pipe || c->left) {
		splice_submit(c);
		return;
	}
	chunk_end(c);
}

/* ---- copy_file_range chunks (worker) ----------------------------------------------- */

static int cfr_run(struct worker_task *t)
{
	struct chunk *c = list_entry(t, struct chunk, task);
	struct copy *cp = c->cp;

	while (c->left) {
		loff_t in = (loff_t)c->off, out = (loff_t)chunk_buf(c, c->off);
		ssize_t n = copy_file_range(cp->src->fd, &in, cp->tgt->fd, &out, c->left, 0);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return -ENODATA;	/* end of file: it shrank */
		c->off += (uint64_t)n;
		c->left -= (uint32_t)n;
	}
	return 0;
}

static void cfr_done(struct worker_task *t, int res)
{
	struct chunk *c = list_entry(t, struct chunk, task);
	struct copy *cp = c->cp;

	cp->done += c->off - c->out;	/* out stayed where the chunk began */
	cp->landed[CHUNK_CFR] += c->off - c->out;
	if (cp->stopped) {
		chunk_end(c);
		return;
	}
	if (res == -ENODATA) {
		chunk_shrank(c);
		return;
	}
	if (res < 0) {
		chunk_fail(c, res, "copy_file_range", c->off);
		return;
	}
	chunk_end(c);
}

/* ---- issuing ---------------------------------------------------------------------- */

/* How the next chunk goes, before auto's page-cache check. */
static enum chunk_how chunk_how_next(const struct copy *cp)
{
	if (cp->method == DL_METHOD_CFR)
		return cp->cfr_syscall ? CHUNK_CFR : CHUNK_SPLICE;
	if (cp->next < cp->segs[cp->seg].direct_end)
		return CHUNK_DIRECT;
	return cp->cache_how;
}

bool copy_can_issue(const struct copy *cp)
{
	return !cp->stopped && cp->seg < cp->nsegs;
}

void copy_stop(struct copy *cp)
{
	cp->stopped = true;
}

/* @max cut to what the job's reads allow: in the direct range, whole O_DIRECT units,
 * so the next chunk starts aligned too. */
static uint64_t chunk_max(const struct copy *cp, uint64_t max)
{
	uint32_t a = dio_align(cp);

	if (max > cp->env->cfg->chunk_size)
		max = cp->env->cfg->chunk_size;
	if (cp->next < cp->segs[cp->seg].direct_end && a > 1 && max % a)
		max = max >= a ? max / a * a : a;
	return max;
}

uint64_t copy_next_len(const struct copy *cp, uint64_t max)
{
	const struct copy_seg *s;
	uint64_t end;

	if (cp->seg >= cp->nsegs)
		return 0;
	s = &cp->segs[cp->seg];
	end = cp->next < s->direct_end ? s->direct_end : s->off + s->len;
	max = chunk_max(cp, max);
	return end - cp->next < max ? end - cp->next : max;
}

uint64_t copy_issue(struct copy *cp, uint64_t max)
{
	const struct copy_seg *s;
	uint64_t len;
	enum chunk_how how;
	struct cpipe *pipe = NULL;
	bool cached = false;
	struct chunk *c;
	int bounce = -1;

	if (!copy_can_issue(cp))
		return 0;
	s = &cp->segs[cp->seg];
	len = copy_next_len(cp, max);
	how = chunk_how_next(cp);
	if (how == CHUNK_DIRECT) {
		cached = cp->auto_cache && range_cached(cp, cp->next, len);
		if (cached)
			how = cp->cache_how;
	}
	if (how == CHUNK_DIRECT && (cp->tgt->pfnmap || (cp->staged && cp->fixed_slot < 0))) {
		/* Every bounce buffer busy: a chunk ending frees one and pumps again. */
		bounce = bounce_get(&cp->env->bounce);
		if (bounce < 0) {
			if (cp->inflight || cp->env->chunks)
				return 0;
			/* none can be made at all */
			how = cp->tgt->pfnmap ? CHUNK_BUFFERED : CHUNK_DIRECT;
		} else {
			how = cp->tgt->pfnmap ? CHUNK_BOUNCE : CHUNK_STAGED;
		}
	}
	if (how == CHUNK_SPLICE && !(pipe = cpipe_get(&cp->env->pipes))) {
		int err = errno;

		/* Every pipe busy: wait for a chunk to end (and give back its pipe)
		 * rather than read into the mapping, many times slower into 4 KiB
		 * pages. With no pipe at all (the fd limit), nothing would wake us. */
		if (cp->env->pipes.n > 0)
			return 0;
		if (cp->method == DL_METHOD_CFR) {
			copy_fail(cp, -err, "cannot make a pipe for splice: %s", strerror(err));
			return 0;
		}
		how = CHUNK_BUFFERED;
	}
	if (cp->next < s->direct_end) {
		if (cached)
			cp->bytes_cached += len;
		else
			cp->bytes_direct += len;
	}
	c = calloc(1, sizeof(*c));
	if (!c) {
		if (pipe)
			cpipe_put(&cp->env->pipes, pipe, false);
		if (bounce >= 0)
			cp->env->bounce.busy[bounce] = false;
		copy_fail(cp, -ENOMEM, "out of memory");
		return 0;
	}
	c->cp = cp;
	c->how = how;
	c->off = c->out = cp->next;
	c->pipe = pipe;
	c->bounce = bounce;
	c->left = (uint32_t)len;
	c->len = c->left;
	c->bdelta = s->buf - s->off;
	c->end = s->off + s->len;
	cp->next += c->left;
	if (cp->next == c->end && ++cp->seg < cp->nsegs)
		cp->next = cp->segs[cp->seg].off;

	cp->inflight++;
	cp->env->chunks++;
	switch (c->how) {
	case CHUNK_DIRECT:
	case CHUNK_BUFFERED:
	case CHUNK_BOUNCE:
	case CHUNK_STAGED:
		c->op[0].complete = read_complete;
		c->op[1].complete = staged_write_complete;
		read_submit(c);
		break;
	case CHUNK_SPLICE:
		c->op[0].complete = splice_in_complete;
		c->op[1].complete = splice_out_complete;
		splice_submit(c);
		break;
	case CHUNK_CFR:
	case CHUNK_HOW_N:
		/* Reads the client's file: capped per uid with its opens. */
		c->task = (struct worker_task){ .run = cfr_run, .done = cfr_done,
						.lane = WORKER_FILE, .uid = cp->uid };
		worker_submit(cp->env->pool, &c->task);
		break;
	}
	return c->len;
}

/* ---- reporting --------------------------------------------------------------------- */

void copy_report(struct copy *cp)
{
	static const uint8_t method_of[CHUNK_HOW_N] = {
		[CHUNK_DIRECT] = DL_METHOD_DIRECT,
		[CHUNK_BUFFERED] = DL_METHOD_BUFFERED,
		[CHUNK_SPLICE] = DL_METHOD_CFR,
		[CHUNK_CFR] = DL_METHOD_CFR,
		[CHUNK_BOUNCE] = DL_METHOD_DIRECT,
		[CHUNK_STAGED] = DL_METHOD_DIRECT,
	};
	unsigned most = 0;

	if (!cp->len)
		return;
	/* The method is the way most bytes went. */
	for (unsigned h = 1; h < CHUNK_HOW_N; h++)
		if (cp->landed[h] > cp->landed[most])
			most = h;
	cp->method = method_of[most];
	cp->cfr_syscall = cp->landed[CHUNK_CFR] > 0;
	if (!cp->auto_cache)
		return;
	if (!cp->bytes_cached)
		cp->reason = DL_WHY_NOT_CACHED;
	else if (!cp->bytes_direct)
		cp->reason = DL_WHY_CACHED;
	else
		cp->reason = DL_WHY_PARTLY_CACHED;
}
