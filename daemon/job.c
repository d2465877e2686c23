/*
 * job.c: one load, from LOAD to DONE. See job.h for the states.
 *
 * The file range [off, off + len) lands at the start of the target buffer. Reads are
 * chunks of cfg->chunk_size issued by the scheduler; each chunk is a small heap
 * object carrying its ring_op, so any number may be in flight. A chunk that comes
 * back short is resubmitted for the rest (short reads are normal: signals, page
 * cache pressure, O_DIRECT quirks); -EAGAIN and -EINTR are resubmitted as they are;
 * 0 bytes before the end means the file shrank under us, which fails the load rather
 * than hand out a buffer with a hole in it.
 *
 * O_DIRECT needs the file offset, the length and the memory address aligned. The
 * buffer's mapping is page-aligned and byte 0 of it holds file offset @off, so direct
 * reads are possible only when @off itself is aligned; then the body goes direct and
 * the unaligned tail (less than one alignment unit) goes through the page cache.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "client.h"
#include "job.h"
#include "log.h"
#include "server.h"

struct chunk {
	struct ring_op op;
	struct job *job;
	uint64_t off;		/* file offset of the next byte to read */
	uint32_t left;		/* bytes still to read */
	bool direct;
};

static void job_release(struct job *j);
static void job_maybe_release(struct job *j);
static void job_finish(struct job *j);

static const char *job_who(const struct job *j)
{
	return j->client->name[0] ? j->client->name : "-";
}

static void job_send(struct job *j, const void *buf, size_t len, int fd)
{
	if (j->client && !j->client->closed)
		client_send(j->client, buf, len, fd);
}

void job_fail(struct job *j, int err, const char *fmt, ...)
{
	char msg[DL_ERRMSG_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (!j->err)
		j->err = err;
	if (!j->replied) {
		j->replied = true;
		j->srv->loads_failed++;
		log_info("conn %llu load %llu %s: %s [%s]",
			 (unsigned long long)j->client->conn_id,
			 (unsigned long long)j->id, j->name, msg, strerrorname_np(-err));
		if (j->client && !j->client->closed)
			client_send_error(j->client, j->id, err, msg);
	}
	job_maybe_release(j);
}

void job_detach(struct job *j)
{
	if (!j->replied)
		j->srv->loads_failed++;
	j->replied = true;	/* nobody to tell */
	if (!j->err)
		j->err = -ECANCELED;
	job_maybe_release(j);
}

/* ---- opening (worker) ------------------------------------------------------------ */

static int open_run(struct worker_task *t)
{
	struct job *j = list_entry(t, struct job, task);
	const struct config *cfg = j->srv->cfg;
	bool want_direct = cfg->direct != CONFIG_OFF && j->req.method != DL_METHOD_BUFFERED;
	uint64_t size;
	int r;

	if (j->path) {
		r = source_open_path(&j->src, j->path, &j->client->cred, want_direct);
	} else {
		r = source_open_fd(&j->src, j->passed_fd, want_direct);
		j->passed_fd = -1;
	}
	if (r < 0)
		return r;
	if (!j->path)
		snprintf(j->name, sizeof(j->name), "fd (dev %u:%u ino %llu)",
			 major(j->src.dev), minor(j->src.dev),
			 (unsigned long long)j->src.ino);

	size = j->src.size;
	if (j->req.offset > size) {
		snprintf(j->src.msg, sizeof(j->src.msg), "offset %llu is past the end of "
			 "the file (%llu bytes)", (unsigned long long)j->req.offset,
			 (unsigned long long)size);
		return -EINVAL;
	}
	j->off = j->req.offset;
	if (j->req.length == DL_LENGTH_TO_EOF) {
		j->len = size - j->off;
	} else if (j->req.length > size - j->off) {
		snprintf(j->src.msg, sizeof(j->src.msg), "offset %llu + length %llu is past "
			 "the end of the file (%llu bytes)", (unsigned long long)j->off,
			 (unsigned long long)j->req.length, (unsigned long long)size);
		return -EINVAL;
	} else {
		j->len = j->req.length;
	}
	if (j->len > j->srv->max_load_size) {
		snprintf(j->src.msg, sizeof(j->src.msg), "%llu bytes is more than "
			 "max_load_size (%llu bytes)", (unsigned long long)j->len,
			 (unsigned long long)j->srv->max_load_size);
		return -EFBIG;
	}

	r = target_create(&j->tgt, j->path ? j->path : "fd", j->len);
	if (r < 0) {
		snprintf(j->src.msg, sizeof(j->src.msg), "cannot create a %llu-byte buffer: "
			 "%s", (unsigned long long)j->len, strerror(-r));
		return r;
	}
	return 0;
}

/* The alignment a direct read needs of both its file offset and its buffer address;
 * buffer addresses follow file offsets here, so one number covers both. */
static uint32_t job_dio_align(const struct job *j)
{
	return j->src.dio_mem_align > j->src.dio_off_align ?
	       j->src.dio_mem_align : j->src.dio_off_align;
}

/* Decides between direct and buffered reads, and why. */
static void job_choose_method(struct job *j)
{
	uint32_t align = job_dio_align(j);
	bool asked = j->req.method != DL_METHOD_AUTO;

	j->reason = asked ? DL_WHY_ASKED : DL_WHY_DEFAULT;
	j->method = DL_METHOD_DIRECT;
	if (j->len == 0) {
		j->method = DL_METHOD_BUFFERED;
		j->reason = DL_WHY_EMPTY;
	} else if (j->req.method == DL_METHOD_BUFFERED ||
		   j->srv->cfg->direct == CONFIG_OFF) {
		j->method = DL_METHOD_BUFFERED;
	} else if (j->src.dfd < 0) {
		j->method = DL_METHOD_BUFFERED;
		j->reason = DL_WHY_NO_DIRECT;
	} else if (j->off % align) {
		j->method = DL_METHOD_BUFFERED;
		j->reason = DL_WHY_UNALIGNED;
	} else if (j->len < align) {
		/* Less than one O_DIRECT unit: all of it is the buffered tail. */
		j->method = DL_METHOD_BUFFERED;
		j->reason = DL_WHY_UNALIGNED;
	}
	if (j->method == DL_METHOD_DIRECT)
		j->direct_end = j->off + (j->len / align) * align;
	else
		j->direct_end = j->off;
}

static void open_done(struct worker_task *t, int res)
{
	struct job *j = list_entry(t, struct job, task);
	struct dl_accepted acc;
	char buf[128];
	ssize_t n;

	j->task_busy = false;
	if (j->err) {			/* cancelled while opening */
		job_maybe_release(j);
		return;
	}
	if (res < 0) {
		job_fail(j, res, "%s", j->src.msg[0] ? j->src.msg : strerror(-res));
		return;
	}
	job_choose_method(j);
	if (j->req.method == DL_METHOD_DIRECT && j->method != DL_METHOD_DIRECT &&
	    j->len >= job_dio_align(j)) {
		if (j->srv->cfg->direct == CONFIG_OFF)
			job_fail(j, -EINVAL, "method direct asked, but direct = off in the "
				 "daemon's config; use auto or buffered");
		else if (j->reason == DL_WHY_NO_DIRECT)
			job_fail(j, -EINVAL, "method direct asked, but the filesystem refuses "
				 "O_DIRECT (%s); use auto or buffered",
				 strerror(j->src.direct_err));
		else
			job_fail(j, -EINVAL, "method direct asked, but offset %llu is not "
				 "aligned for O_DIRECT (%u bytes); use auto or buffered",
				 (unsigned long long)j->off, j->src.dio_off_align);
		return;
	}
	acc = (struct dl_accepted){ .length = j->len, .file_size = j->src.size };
	n = dl_encode(buf, sizeof(buf), DL_ACCEPTED, j->id, &acc, sizeof(acc), NULL, 0);
	if (n > 0)
		job_send(j, buf, (size_t)n, -1);
	log_debug("conn %llu load %llu %s: %llu bytes at %llu, %s (%s)",
		  (unsigned long long)j->client->conn_id, (unsigned long long)j->id,
		  j->name, (unsigned long long)j->len, (unsigned long long)j->off,
		  dl_method_name(j->method), dl_reason_name(j->reason));
	j->next = j->off;
	if (j->len == 0) {
		job_finish(j);
		return;
	}
	j->state = DL_STATE_QUEUED;
	sched_add(&j->srv->sched, j);
}

/* ---- reading ----------------------------------------------------------------- */

static void chunk_submit(struct chunk *c)
{
	struct job *j = c->job;
	char *dst = (char *)j->tgt.map + (c->off - j->off);
	int fd = c->direct ? j->src.dfd : j->src.fd;

	j->inflight++;
	j->srv->sched.reads_inflight++;
	ring_read(&j->srv->ring, &c->op, fd, dst, c->left, c->off, j->fixed_slot);
}

static void send_progress(struct job *j)
{
	struct dl_progress p = { .done = j->done, .total = j->len };
	uint64_t now = now_ns();
	char buf[64];
	ssize_t n;

	if (!(j->req.flags & DL_LOAD_PROGRESS) || now - j->t_progress < 100000000ull)
		return;
	j->t_progress = now;
	n = dl_encode(buf, sizeof(buf), DL_PROGRESS, j->id, &p, sizeof(p), NULL, 0);
	if (n > 0)
		job_send(j, buf, (size_t)n, -1);
}

static void chunk_complete(struct ring_op *op, int res)
{
	struct chunk *c = (struct chunk *)op;
	struct job *j = c->job;

	j->inflight--;
	j->srv->sched.reads_inflight--;

	if (j->err) {
		free(c);
		job_maybe_release(j);
		sched_pump(&j->srv->sched);
		return;
	}
	if (res == -EAGAIN || res == -EINTR) {
		chunk_submit(c);
		return;
	}
	if (res == -EINVAL && c->direct && j->req.method != DL_METHOD_DIRECT) {
		/* Some filesystems take O_DIRECT at open and refuse it per request: fall
		 * back for the rest of this load. */
		log_notice("load %llu %s: O_DIRECT read refused, using buffered reads",
			   (unsigned long long)j->id, j->name);
		j->method = DL_METHOD_BUFFERED;
		j->reason = DL_WHY_NO_DIRECT;
		j->direct_end = j->off;
		c->direct = false;
		chunk_submit(c);
		return;
	}
	if (res <= 0) {
		char msg[160];

		if (res < 0)
			snprintf(msg, sizeof(msg), "read at offset %llu failed: %s",
				 (unsigned long long)c->off, strerror(-res));
		else
			snprintf(msg, sizeof(msg), "the file ended at offset %llu, before "
				 "the %llu bytes asked for: it shrank during the load",
				 (unsigned long long)c->off,
				 (unsigned long long)(j->off + j->len));
		free(c);
		job_fail(j, res < 0 ? res : -EIO, "%s", msg);
		sched_pump(&j->srv->sched);
		return;
	}

	j->done += (uint64_t)res;
	c->off += (uint64_t)res;
	c->left -= (uint32_t)res;
	if (c->left) {
		/* Short read: go on from where it stopped. O_DIRECT may only go on from
		 * an aligned place; otherwise the page cache finishes the chunk. */
		if (c->direct && c->off % job_dio_align(j))
			c->direct = false;
		chunk_submit(c);
		return;
	}
	free(c);
	send_progress(j);
	if (j->done == j->len && j->inflight == 0) {
		sched_remove(&j->srv->sched, j);
		job_finish(j);
	}
	sched_pump(&j->srv->sched);
}

bool job_exhausted(const struct job *j)
{
	return j->err || j->next >= j->off + j->len;
}

bool job_issue(struct job *j)
{
	uint64_t end = j->off + j->len, left;
	struct chunk *c;

	if (j->state != DL_STATE_READING || job_exhausted(j))
		return false;
	c = calloc(1, sizeof(*c));
	if (!c) {
		job_fail(j, -ENOMEM, "out of memory");
		return false;
	}
	c->op.complete = chunk_complete;
	c->job = j;
	c->off = j->next;
	if (j->next < j->direct_end) {
		c->direct = true;
		end = j->direct_end;
	}
	left = end - j->next;
	c->left = (uint32_t)(left < j->srv->cfg->chunk_size ? left : j->srv->cfg->chunk_size);
	j->next += c->left;
	chunk_submit(c);
	return true;
}

/* ---- finishing (worker) ---------------------------------------------------------- */

static int finish_run(struct worker_task *t)
{
	struct job *j = list_entry(t, struct job, task);

	if (j->fixed_slot >= 0)
		ring_register_slot(&j->srv->ring, (unsigned)j->fixed_slot, NULL);
	return target_finish(&j->tgt);
}

static void finish_done(struct worker_task *t, int res)
{
	struct job *j = list_entry(t, struct job, task);
	uint64_t now = now_ns();
	struct dl_done d;
	char buf[128];
	ssize_t n;

	j->task_busy = false;
	if (j->fixed_slot >= 0) {
		sched_put_slot(&j->srv->sched, j->fixed_slot);
		j->fixed_slot = -1;
	}
	if (j->err) {
		job_maybe_release(j);
		return;
	}
	if (res < 0) {
		job_fail(j, res, "cannot seal the buffer: %s", strerror(-res));
		return;
	}
	d = (struct dl_done){
		.size = j->len,
		.buf_size = j->len,
		.elapsed_ns = now - j->t_start,
		.flags = DL_DONE_SEALED,
		.target = j->tgt.kind,
		.method = j->method,
		.reason = j->reason,
	};
	n = dl_encode(buf, sizeof(buf), DL_DONE, j->id, &d, sizeof(d), NULL, 0);
	if (n > 0)
		job_send(j, buf, (size_t)n, j->tgt.fd);
	j->replied = true;
	j->srv->loads_done++;
	j->srv->bytes_loaded += j->len;
	log_info("conn %llu load %llu %s (%s): %llu bytes in %.3f s, %.1f MB/s, %s (%s)",
		 (unsigned long long)j->client->conn_id,
		 (unsigned long long)j->id, j->name, job_who(j),
		 (unsigned long long)j->len, (double)d.elapsed_ns / 1e9,
		 d.elapsed_ns ? (double)j->len * 1e3 / (double)d.elapsed_ns : 0.0,
		 dl_method_name(j->method), dl_reason_name(j->reason));
	job_release(j);
}

static void job_finish(struct job *j)
{
	j->state = DL_STATE_FINISHING;
	j->task = (struct worker_task){ .run = finish_run, .done = finish_done };
	j->task_busy = true;
	worker_submit(j->srv->pool, &j->task);
}

/* ---- releasing (worker) ------------------------------------------------------------ */

static int release_run(struct worker_task *t)
{
	struct job *j = list_entry(t, struct job, task);

	/* Our reference to a buffer nobody else holds frees its pages here: GiBs take
	 * tens of milliseconds, which the loop should not wait for. */
	if (j->fixed_slot >= 0)
		ring_register_slot(&j->srv->ring, (unsigned)j->fixed_slot, NULL);
	target_deinit(&j->tgt);
	source_deinit(&j->src);
	if (j->passed_fd >= 0)
		close(j->passed_fd);
	j->passed_fd = -1;
	return 0;
}

static void release_done(struct worker_task *t, int res)
{
	struct job *j = list_entry(t, struct job, task);
	struct server *srv = j->srv;

	if (j->fixed_slot >= 0)
		sched_put_slot(&srv->sched, j->fixed_slot);
	if (j->client)
		client_job_gone(j->client, j);
	free(j->path);
	free(j);
	server_check_idle(srv);
}

static void job_release(struct job *j)
{
	sched_remove(&j->srv->sched, j);
	j->state = DL_STATE_FINISHING;
	j->task = (struct worker_task){ .run = release_run, .done = release_done };
	j->task_busy = true;
	worker_submit(j->srv->pool, &j->task);
}

/* A failed or cancelled job goes once the kernel and the workers are done with it. */
static void job_maybe_release(struct job *j)
{
	if (!j->err || j->task_busy || j->inflight)
		return;
	job_release(j);
}

/* ---- creation ----------------------------------------------------------------------- */

int job_new(struct job **out, struct client *c, const struct dl_msg *m, int fd)
{
	struct job *j = calloc(1, sizeof(*j));

	if (!j) {
		if (fd >= 0)
			close(fd);
		return -ENOMEM;
	}
	list_init(&j->client_link);
	list_init(&j->sched_link);
	j->srv = c->srv;
	j->client = c;
	j->id = m->hdr.id;
	j->req = m->u.load;
	j->passed_fd = fd;
	j->fixed_slot = -1;
	j->t_start = now_ns();
	source_init(&j->src);
	target_init(&j->tgt);
	if (!(j->req.flags & DL_LOAD_BY_FD)) {
		j->path = strndup(m->trail, m->trail_len);
		if (!j->path) {
			free(j);
			return -ENOMEM;
		}
		snprintf(j->name, sizeof(j->name), "%s", j->path);
	} else {
		snprintf(j->name, sizeof(j->name), "fd");
	}
	j->state = DL_STATE_OPENING;
	j->task = (struct worker_task){ .run = open_run, .done = open_done };
	j->task_busy = true;
	worker_submit(j->srv->pool, &j->task);
	*out = j;
	return 0;
}
