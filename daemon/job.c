/*
 * job.c: one load, from LOAD to DONE. See job.h for the states; copy.c moves the
 * bytes, in chunks the scheduler (sched.c) asks for.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "cache.h"
#include "copy.h"
#include "extents.h"
#include "job.h"
#include "log.h"
#include "engine.h"
#include "util.h"

static void job_release(struct job *j);
static void job_share_done(struct job *j);
static void job_share_failed(struct job *j, int err, const char *msg);
static void job_unjoin(struct job *j);
static void job_maybe_release(struct job *j);
static void job_finish(struct job *j);
static void job_done_own(struct job *j);
static void job_release_soon(struct job *j);
static void open_done(struct worker_task *t, int res);

/* Hands @j to a worker: @run there, then @done on the loop. @first: ahead of the tasks
 * already queued in @lane. */
static void job_submit(struct job *j, int (*run)(struct worker_task *),
		       void (*done)(struct worker_task *, int), enum worker_lane lane,
		       bool first)
{
	j->task = (struct worker_task){ .run = run, .done = done, .lane = lane,
					.uid = j->owner->cred->uid };
	j->task_busy = true;
	if (first)
		worker_submit_first(j->eng->pool, &j->task);
	else
		worker_submit(j->eng->pool, &j->task);
}

/*
 * Small files take a short way: a plain auto load of at most JOB_SMALL_MAX bytes into a
 * new memfd is opened, read with sendfile (no mapping: no page faults, no munmap and
 * its TLB shootdowns), sealed and its source closed, all in the one open task, and
 * answered from the loop when that task ends: one worker round trip instead of four,
 * and no O_DIRECT fd. Its bytes go through the page cache (reason DL_WHY_SMALL). It
 * takes no reading slot, so it goes this way only while one is free (job_new). When
 * the cache likely has the file already (cache_may_have), its path is walked on the
 * loop (job_hit_on_loop, lookup.c), or where that walk gives up the task only opens
 * and stats it and closes it again; the loop answers the hit, and a miss opens the
 * file once more on a worker.
 * Measured (bench-small, 2 cores): the daemon's CPU per cold 64 KiB load 300-400 us
 * -> 150-220 us; per 1 MiB load on par with staged O_DIRECT reads (800-920 us).
 */
#define JOB_SMALL_MAX (1024ull << 10)

/* For logs: which of cfr's two ways ran. */
static const char *job_cfr_how(const struct job *j)
{
	if (j->cp.method != DL_METHOD_CFR)
		return "";
	return j->cp.cfr_syscall ? " (copy_file_range)" : " (splice pairs)";
}

static const char *job_who(const struct job *j)
{
	return j->owner->name[0] ? j->owner->name : "-";
}

/* The one way a load logs: "conn N load M name: ...". */
static void job_log(const struct job *j, enum log_level lvl, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void job_log(const struct job *j, enum log_level lvl, const char *fmt, ...)
{
	char msg[768];
	va_list ap;

	if (lvl > log_get_level())
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	log_msg(lvl, "%s: %s", j->who, msg);
}

/* The prefix of its logs: the source's name is known once it is open (by fd). */
static void job_name_changed(struct job *j)
{
	snprintf(j->who, sizeof(j->who), "conn %llu load %llu %s",
		 (unsigned long long)j->owner->conn_id, (unsigned long long)j->id, j->name);
}

/* Why a worker task of @j failed with @res: the job's own message, else the source's,
 * else the errno's. */
static const char *job_task_msg(const struct job *j, int res)
{
	return j->msg[0] ? j->msg : j->src.msg[0] ? j->src.msg : strerror(-res);
}

/* The job gives up: no chunk is issued any more. */
static void job_set_err(struct job *j, int err)
{
	if (!j->err)
		j->err = err;
	copy_stop(&j->cp);
}

/* ACCEPTED: the range is resolved, and the file's size known. */
static void job_send_accepted(struct job *j)
{
	struct dl_accepted acc = { .length = j->cp.len, .file_size = j->src.size };

	if (j->accepted)
		return;
	j->accepted = true;
	j->owner->ops->accepted(j, &acc);
}

/* The request of @j ends (ERROR ECANCELED with @msg, or silently when its client
 * left: @msg NULL), but its read goes on for the loads that joined it. */
static void job_orphan(struct job *j, const char *msg)
{
	j->orphaned = true;
	if (j->replied)
		return;
	j->replied = true;
	j->eng->loads_failed++;
	if (msg && !j->owner->gone) {
		job_log(j, LOG_LVL_INFO, "%s; still read for the loads that joined it", msg);
		j->owner->ops->failed(j, ECANCELED, msg);
	}
}

void job_fail(struct job *j, int err, const char *fmt, ...)
{
	char msg[DL_ERRMSG_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	/* Others wait for this read: only its own request ends; the read goes on. */
	if (err == -ECANCELED && !j->orphaned && cache_has_joiners(&j->cl)) {
		job_orphan(j, msg);
		return;
	}
	job_set_err(j, err);
	job_share_failed(j, err, msg);
	job_unjoin(j);
	if (!j->replied) {
		j->replied = true;
		j->eng->loads_failed++;
		/* A failed preload has nobody to tell but the log. */
		job_log(j, j->owner->gone && (j->req.flags & DL_LOAD_DETACH) ?
			LOG_LVL_WARNING : LOG_LVL_INFO, "%s [%s]", msg, strerrorname_np(-err));
		j->owner->ops->failed(j, -err, msg);
	}
	job_maybe_release(j);
}

void job_detach(struct job *j)
{
	/* Orphaned already (cancelled, still reading for its joiners): it stays so. */
	if (cache_has_joiners(&j->cl)) {
		job_orphan(j, NULL);
		return;
	}
	job_share_failed(j, -ECANCELED, "the leading load was cancelled");
	job_unjoin(j);
	if (!j->replied)
		j->eng->loads_failed++;
	j->replied = true;	/* nobody to tell */
	job_set_err(j, -ECANCELED);
	job_maybe_release(j);
}

/* ---- sharing ---------------------------------------------------------------------- */

/* The leader @j's buffer is sealed: the loads that joined it get it, and the cache
 * keeps it if it can. */
static void job_share_done(struct job *j)
{
	struct cache_ready r = {
		.buf_size = j->tgt.hugetlb ? j->tgt.map_len : j->tgt.size,
		.hugetlb = j->tgt.hugetlb,
		.method = j->cp.method,
		.reason = j->cp.reason,
		.done_flags = DL_DONE_SEALED | (j->tgt.hugetlb ? DL_DONE_HUGETLB : 0) |
			      (j->cp.method == DL_METHOD_CFR && j->cp.cfr_syscall ?
			       DL_DONE_CFR_SYSCALL : 0),
		.served = !j->orphaned,
	};
	struct cache_entry *e = cache_leader_done(&j->eng->cache, &j->cl, &r);
	struct cache_load *w;

	if (!e)
		return;
	while ((w = cache_next_joiner(e)))
		job_done_shared(list_entry(w, struct job, cl), j->tgt.fd, e, DL_DONE_JOINED);
	cache_keep(&j->eng->cache, e, j->tgt.fd);
}

/* The leader @j failed with @err / @msg: every load that joined it fails the same
 * way, and its entry goes. */
static void job_share_failed(struct job *j, int err, const char *msg)
{
	struct cache_entry *e = cache_leader_failed(&j->eng->cache, &j->cl);
	struct cache_load *w;

	if (!e)
		return;
	while ((w = cache_next_joiner(e)))
		job_fail(list_entry(w, struct job, cl), err, "%s", msg);
	cache_abandon(e);
}

/* The joiner @j leaves (cancelled, client gone): a leader whose own client left too
 * is cancelled once nobody waits for it. */
static void job_unjoin(struct job *j)
{
	struct cache_load *leader = cache_unjoin(&j->eng->cache, &j->cl);
	struct job *lj = leader ? list_entry(leader, struct job, cl) : NULL;

	if (lj && lj->orphaned)
		job_fail(lj, -ECANCELED, "nobody waits for this load any more");
}

/* ---- opening (worker) ------------------------------------------------------------ */

/*
 * Which kind of buffer the load gets: the one the client named; for auto, the
 * config's [io] target; when that is auto too, a dma-buf if the client asked for one
 * (DL_LOAD_DMABUF): udmabuf when the device is there and the load fits its size
 * limit, else a dma-heap ("system" first), else a memfd. DONE.target tells the
 * client which it got.
 */
static void pick_target(struct job *j)
{
	const struct config *cfg = j->eng->cfg;
	uint64_t page = (uint64_t)getpagesize(), limit;

	if (j->into) {
		j->target = j->tgt.kind;	/* the caller's buffer is what it is */
		return;
	}
	j->target = j->req.target;
	if (j->target == DL_TARGET_AUTO && cfg->target != DL_TARGET_AUTO) {
		j->target = cfg->target;
		snprintf(j->heap, sizeof(j->heap), "%s", cfg->heap);
	}
	if (j->target != DL_TARGET_AUTO)
		return;
	j->target = DL_TARGET_MEMFD;
	if (!(j->req.flags & DL_LOAD_DMABUF) || j->buf_len == 0)
		return;
	limit = target_udmabuf_size_limit();
	if (target_udmabuf_usable() == 0 &&
	    (!limit || round_up(j->buf_len, page) <= limit))
		j->target = DL_TARGET_UDMABUF;
	else if (target_default_heap(j->heap, sizeof(j->heap)) == 0)
		j->target = DL_TARGET_HEAP;
}

/* Makes the buffer pick_target chose. Returns 0 or -errno with j->msg set. */
static int make_target(struct job *j)
{
	const struct config *cfg = j->eng->cfg;
	/* Splice cannot write into huge pages (EINVAL): cfr gets 4 KiB pages. */
	enum config_toggle huge = j->cp.method == DL_METHOD_CFR ? CONFIG_OFF : cfg->hugetlb;
	bool exact = j->req.flags & DL_LOAD_EXACT_SIZE;
	int r;

	if (j->target == DL_TARGET_UDMABUF)
		return target_create_udmabuf(&j->tgt, j->buf_len, huge, exact, j->msg,
					     sizeof(j->msg));
	if (j->target == DL_TARGET_HEAP)
		return target_create_heap(&j->tgt, j->heap, j->buf_len, j->msg,
					  sizeof(j->msg));
	r = target_create(&j->tgt, j->buf_len, huge, exact);
	if (r < 0)
		snprintf(j->msg, sizeof(j->msg), "cannot create a %llu-byte buffer: "
			 "%s", (unsigned long long)j->buf_len, strerror(-r));
	return r;
}
static int prepare_run(struct worker_task *t);
static void prepare_done(struct worker_task *t, int res);

/*
 * Admits @need bytes of memory the daemon is about to take for @j (its buffer, or
 * the holes of a caller's it will fill): its uid's quota first, so that a user over
 * it hears so and not that memory is short, then the memory admission (ENOMEM
 * before anything is allocated). Both are given back at the job's release. Worker.
 */
static int job_admit(struct job *j, uint64_t need)
{
	int r;

	if (!need)
		return 0;
	r = quota_bytes_admit(&j->eng->quota, j->quota, need,
			      config_share_bytes(&j->eng->cfg->max_inflight_per_uid,
						 j->eng->ram), j->msg, sizeof(j->msg));
	if (r < 0)
		return r;
	j->quota_bytes += j->quota ? need : 0;
	r = memory_admit(&j->eng->mem, need, j->msg, sizeof(j->msg));
	if (r < 0)
		return r;
	j->mem_admitted += need;
	return 0;
}

/* LOAD_EXTENTS, the source open: its list read (from the memfd) and planned against
 * the file, and the caller's buffer checked and mapped, before any byte moves. */
static int open_extents(struct job *j)
{
	struct extents_plan p;
	int r;

	if (j->list_fd >= 0) {
		r = extents_read_memfd(j->list_fd, j->n_ext, &j->ext, j->msg, sizeof(j->msg));
		close(j->list_fd);
		j->list_fd = -1;
		if (r < 0)
			return r;
	}
	r = extents_plan(j->ext, j->n_ext, j->src.size, &p, j->msg, sizeof(j->msg));
	if (r < 0)
		return r;
	j->segs = p.segs;
	j->cp.segs = p.segs;
	j->cp.nsegs = p.nsegs;
	j->cp.off = p.nsegs ? p.segs[0].off : 0;
	j->cp.len = p.bytes;
	j->buf_len = p.hi;
	if (!j->into)
		return 0;
	if (j->req.method == DL_METHOD_CFR) {
		/* splice pairs, cfr's fallback, cannot write into huge pages and a
		 * dma-buf is not spliced into: refuse what may not work */
		snprintf(j->msg, sizeof(j->msg), "method cfr is not offered into the "
			 "caller's buffer; use auto, direct or buffered");
		return -EINVAL;
	}
	r = target_open_into(&j->tgt, j->buf_fd, p.lo, p.hi, j->msg, sizeof(j->msg));
	j->buf_fd = -1;		/* the target has it now */
	if (r == 0) {
		/* Pages the caller did not allocate are faulted in by the daemon's
		 * writes and charged to the daemon: admitted like a buffer of its own
		 * ("fallocate your buffer to pay for it"). */
		uint64_t unpaid = target_unpaid_bytes(&j->tgt);

		r = job_admit(j, round_up(unpaid < p.bytes ? unpaid : p.bytes,
					  (uint64_t)getpagesize()));
	}
	for (unsigned i = 0; r == 0 && i < p.nsegs; i++)
		target_prefault(&j->tgt, p.segs[i].buf, p.segs[i].len);
	return r;
}

static void job_close_root(struct job *j)
{
	if (j->root_fd >= 0)
		close(j->root_fd);
	j->root_fd = -1;
	j->root_opath = false;
}

/* A reopen (after src_closed) found the version of the file the cache was asked for. */
static bool job_same_version(struct job *j)
{
	if (j->src.dev == j->seen.dev && j->src.ino == j->seen.ino &&
	    j->src.size == j->seen.size && j->src.mtime_ns == j->seen.mtime_ns &&
	    j->src.ctime_ns == j->seen.ctime_ns)
		return true;
	snprintf(j->msg, sizeof(j->msg), "the file changed while it was opened: load it "
		 "again");
	return false;
}

/* Copies the range into the new memfd at its start, the kernel copying (sendfile;
 * pread and pwrite where sendfile cannot). Returns 0 or -errno with j->msg set. */
static int small_copy(struct job *j)
{
	uint64_t done = 0;
	off_t off = (off_t)j->cp.off;
	char *bounce = NULL;
	int r = 0;

	/* sendfile reads a pipe's worth (64 KiB) at a time, and readahead grows from
	 * there: ask for the whole range at once, one read for the disk. */
	if (j->cp.len > (64u << 10))
		posix_fadvise(j->src.fd, (off_t)j->cp.off, (off_t)j->cp.len, POSIX_FADV_WILLNEED);
	while (done < j->cp.len) {
		size_t want = (size_t)(j->cp.len - done);
		ssize_t n;

		if (!bounce) {
			n = sendfile(j->tgt.fd, j->src.fd, &off, want);
			if (n < 0 && (errno == EINVAL || errno == ENOSYS) && done == 0) {
				bounce = malloc((size_t)j->cp.len);
				if (!bounce) {
					r = -ENOMEM;
					break;
				}
				continue;
			}
		} else {
			n = pread(j->src.fd, bounce, want, off);
			if (n > 0 && pwrite(j->tgt.fd, bounce, (size_t)n, (off_t)done) != n)
				n = -1;
			if (n > 0)
				off += n;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			r = n < 0 ? -errno : -ESTALE;
			break;
		}
		done += (uint64_t)n;
	}
	free(bounce);
	if (r == -ESTALE)
		snprintf(j->msg, sizeof(j->msg), "the file ended after %llu of %llu bytes "
			 "(it shrank while it was read): load it again",
			 (unsigned long long)done, (unsigned long long)j->cp.len);
	else if (r < 0)
		snprintf(j->msg, sizeof(j->msg), "cannot read %llu bytes at %llu into the "
			 "buffer: %s", (unsigned long long)j->cp.len,
			 (unsigned long long)j->cp.off, strerror(-r));
	return r;
}

/* A small load, all of it on this worker: admitted, its memfd made and filled, the
 * source checked unchanged and closed, the buffer sealed. Worker. */
static int small_fill(struct job *j)
{
	int r;

	j->prepared = true;
	r = job_admit(j, round_up(j->buf_len, (uint64_t)getpagesize()));
	if (r < 0)
		return r;
	r = target_create_unmapped(&j->tgt, j->buf_len);
	if (r < 0) {
		snprintf(j->msg, sizeof(j->msg), "cannot create a %llu-byte buffer: %s",
			 (unsigned long long)j->buf_len, strerror(-r));
		return r;
	}
	r = small_copy(j);
	if (r < 0)
		return r;
	r = source_unchanged(&j->src, j->msg, sizeof(j->msg));
	if (r < 0)
		return r;
	r = target_finish(&j->tgt, j->msg, sizeof(j->msg));
	if (r < 0)
		return r;
	source_deinit(&j->src);
	j->cp.method = DL_METHOD_BUFFERED;
	j->cp.reason = DL_WHY_SMALL;
	j->cp.done = j->cp.len;
	j->filled = true;
	return 0;
}

/* The range a load by offset and length reads of its file (source statted). Returns
 * 0, or -errno with j->msg set. */
static int job_range(struct job *j)
{
	uint64_t size = j->src.size;

	if (j->req.offset > size) {
		snprintf(j->msg, sizeof(j->msg), "offset %llu is past the end of "
			 "the file (%llu bytes)", (unsigned long long)j->req.offset,
			 (unsigned long long)size);
		return -EINVAL;
	}
	j->cp.off = j->req.offset;
	if (j->req.length == DL_LENGTH_TO_EOF) {
		j->cp.len = size - j->cp.off;
	} else if (j->req.length > size - j->cp.off) {
		snprintf(j->msg, sizeof(j->msg), "offset %llu + length %llu is past "
			 "the end of the file (%llu bytes)", (unsigned long long)j->cp.off,
			 (unsigned long long)j->req.length, (unsigned long long)size);
		return -EINVAL;
	} else {
		j->cp.len = j->req.length;
	}
	j->buf_len = j->cp.len;
	return 0;
}

/* Whether the range fits the limits, and where it goes: the target, and whether the
 * load may share and take the small-file way. Returns 0, or -errno with j->msg set. */
static int job_fit(struct job *j)
{
	if (j->cp.len > j->eng->max_load_size) {
		snprintf(j->msg, sizeof(j->msg), "%llu bytes is more than "
			 "max_load_size (%llu bytes)", (unsigned long long)j->cp.len,
			 (unsigned long long)j->eng->max_load_size);
		return -EFBIG;
	}
	if (j->buf_len > j->eng->max_load_size && !j->into) {
		snprintf(j->msg, sizeof(j->msg), "a %llu-byte buffer is more than "
			 "max_load_size (%llu bytes)", (unsigned long long)j->buf_len,
			 (unsigned long long)j->eng->max_load_size);
		return -EFBIG;
	}
	pick_target(j);
	/* A shareable load asks the cache (on the loop) before it makes a buffer. Only
	 * memfds are shared for now: a dma-buf may be shared only within one uid, which
	 * the cache does not check yet. A file on FUSE may read differently for each
	 * opener: its buffer is this load's alone. */
	if (j->target != DL_TARGET_MEMFD || j->src.per_opener)
		j->shareable = false;
	if (j->small && (j->target != DL_TARGET_MEMFD || j->src.per_opener || !j->cp.len ||
			 j->buf_len > JOB_SMALL_MAX))
		j->small = false;
	return 0;
}

static int open_run(struct worker_task *t)
{
	struct job *j = list_entry(t, struct job, task);
	const struct config *cfg = j->eng->cfg;
	/* An O_DIRECT fd is opened whenever direct reads may happen; auto needs it even
	 * when the config's default method is another. */
	bool want_direct = cfg->direct != CONFIG_OFF &&
			   (j->req.method == DL_METHOD_DIRECT ||
			    (j->req.method == DL_METHOD_AUTO &&
			     (cfg->method == DL_METHOD_AUTO || cfg->method == DL_METHOD_DIRECT)));
	int r;

	if (j->small)
		j->src.direct_min = JOB_SMALL_MAX + 1;
	if (j->path) {
		r = source_open_path(&j->src, j->path, j->owner->cred, j->root_fd,
				     want_direct);
		/* A small load keeps an O_PATH root (whose close runs no filesystem
		 * code but the last reference's, and goes to a worker: job_release_soon)
		 * for opening the file again after a wrong hint. */
		j->root_opath = j->small && !j->reopen && j->root_fd >= 0 &&
				(fcntl(j->root_fd, F_GETFL) & O_PATH);
		if (!j->root_opath)
			job_close_root(j);
	} else {
		r = source_open_fd(&j->src, j->passed_fd, j->owner->cred, want_direct);
		j->passed_fd = -1;
	}
	if (r < 0)
		return r;
	if (!j->path) {
		snprintf(j->name, sizeof(j->name), "fd (dev %u:%u ino %llu)",
			 major(j->src.dev), minor(j->src.dev),
			 (unsigned long long)j->src.ino);
		job_name_changed(j);
	}

	r = j->extents ? open_extents(j) : job_range(j);
	if (r < 0)
		return r;
	r = job_fit(j);
	if (r < 0)
		return r;
	if (j->reopen && !job_same_version(j))
		return -ESTALE;
	if (j->shareable && !j->reopen && j->small &&
	    cache_may_have(&j->eng->cache, j->src.dev, j->src.ino)) {
		/* Likely a hit: the loop answers it, and the source is not needed
		 * (it is opened again on a miss, by path from the same root). */
		if (j->path && (j->root_opath || !(j->req.flags & DL_LOAD_ROOT_FD))) {
			j->seen = j->src;
			source_deinit(&j->src);
			j->src_closed = true;
		}
		return 0;
	}
	job_close_root(j);
	if (j->shareable && !j->reopen && !j->small)
		return 0;
	if (j->small)
		return small_fill(j);
	return prepare_run(t);
}

/* A small load that missed after all, its source still open. */
static int small_run(struct worker_task *t)
{
	return small_fill(list_entry(t, struct job, task));
}

/* Plans the method and makes the buffer. */
static int prepare_run(struct worker_task *t)
{
	struct job *j = list_entry(t, struct job, task);
	int r;

	j->prepared = true;
	r = copy_plan(&j->cp, j->msg, sizeof(j->msg));
	if (r < 0)
		return r;
	if (j->into)		/* the caller's buffer, made and paid for by the caller */
		return copy_probe(&j->cp, j->msg, sizeof(j->msg));
	/* Memory admission before the buffer is made: a load that cannot fit is an
	 * ENOMEM, never the OOM killer's business. Counted as huge pages round it. */
	if (j->buf_len) {
		uint64_t huge = target_huge_page_size(), need = round_up(j->buf_len,
			huge && j->eng->cfg->hugetlb != CONFIG_OFF ? huge : (uint64_t)getpagesize());

		r = job_admit(j, need);
		if (r < 0)
			return r;
	}
	r = make_target(j);
	if (r < 0)
		return r;
	return copy_probe(&j->cp, j->msg, sizeof(j->msg));
}

/*
 * Whether @data (the job asking) may wait for @leader's read: unless the leader, at
 * its rate limit, would take longer for what it has left than the asker would for the
 * whole range at its own. An unlimited asker never waits for a limited leader that
 * has bytes left; one at the same limit or a lower one always joins.
 */
static bool job_may_join(const struct cache_load *leader, void *data)
{
	const struct job *j = data;
	const struct job *lj = list_entry(leader, struct job, cl);
	uint64_t lr = sched_load_rate(&lj->sl), jr = sched_load_rate(&j->sl);
	uint64_t left = lj->cp.len - lj->cp.done;

	/* A small load that has its buffer already waits for nobody: it takes the
	 * entry over and answers the joiners at once. */
	if (j->filled)
		return false;
	if (!lr || !left)
		return true;
	if (!jr)
		return false;
	/* left / lr <= len / jr */
	return (unsigned __int128)left * jr <= (unsigned __int128)j->cp.len * lr;
}

/* The leader @slow lost its entry to @j, which is faster: it reads on for its own
 * client, or ends if that client is gone (it read only for the joiners). */
static void job_lost_lead(struct job *j, struct job *slow)
{
	job_log(j, LOG_LVL_INFO, "takes over the read of it from conn %llu load %llu, "
		"limited to %llu bytes/s (this load: %s)",
		(unsigned long long)slow->owner->conn_id, (unsigned long long)slow->id,
		(unsigned long long)sched_load_rate(&slow->sl),
		sched_load_rate(&j->sl) ? "limited" : "unlimited");
	if (slow->orphaned)
		job_fail(slow, -ECANCELED, "a faster load took over its read; nobody "
			 "waits for it any more");
}

/* Asks the cache for @j (source open, range resolved): a hit is answered at once, a
 * join waits for its leader, a miss reads, leading an entry if it could make one, and
 * so does a load that took over a slower leader's entry. */
static void job_share_lookup(struct job *j)
{
	struct cache_key k = {
		.dev = j->src.dev,
		.ino = j->src.ino,
		.size = j->src.size,
		.mtime_ns = j->src.mtime_ns,
		.ctime_ns = j->src.ctime_ns,
		.off = j->cp.off,
		.len = j->buf_len,	/* cp.len, or for extents the buffer's size */
		.target = j->target,	/* pick_target's: only memfds are shared now */
		/* the key includes a list of extents, run by run */
		.runs = j->extents ? j->segs : NULL,
		.n_runs = j->extents ? j->cp.nsegs : 0,
	};
	struct cache_who who = {
		.name = j->name,
		.by_path = j->path != NULL,
		.uid = j->owner->cred->uid,
		.exact = j->req.flags & DL_LOAD_EXACT_SIZE,
		.may_join = job_may_join,
		.data = j,
	};
	struct cache_load *slow = NULL;
	struct cache_entry *e;

	job_send_accepted(j);
	switch (cache_lookup(&j->eng->cache, &j->cl, &k, &who, &e, &slow)) {
	case CACHE_HIT:
		cache_hit_served(&j->eng->cache, e, j->req.flags & DL_LOAD_PIN,
				 j->owner->cred->uid);
		job_done_shared(j, e->fd, e, DL_DONE_CACHED);
		return;
	case CACHE_JOINED:
		j->state = DL_STATE_QUEUED;
		job_log(j, LOG_LVL_DEBUG, "joins the running load of it");
		return;
	case CACHE_TOOK_OVER:
		job_lost_lead(j, list_entry(slow, struct job, cl));
		/* fall through */
	default:
		if (j->filled) {
			job_done_own(j);
			return;
		}
		if (j->src_closed) {
			/* the hint was wrong (or the entry went meanwhile): read it */
			job_log(j, LOG_LVL_DEBUG, "not in the cache after all: opened again");
			j->src_closed = false;
			j->reopen = true;
			source_init(&j->src);
			/* a big background load makes its buffer in this task too: not
			 * ahead of foreground opens */
			job_submit(j, open_run, open_done, WORKER_FILE,
				   j->req.priority == DL_PRIO_FOREGROUND);
			return;
		}
		if (j->small) {
			/* the hint was wrong, the source is still open: read it */
			j->reopen = true;
			job_submit(j, small_run, open_done, WORKER_FILE, true);
			return;
		}
		job_submit(j, prepare_run, prepare_done, WORKER_FILE, false);
		return;
	}
}

/* The method is planned and the buffer made: the reads may start. */
static void job_start_reading(struct job *j)
{
	if (!j->shareable) {
		j->eng->cache.misses++;
		job_send_accepted(j);
	}
	job_log(j, LOG_LVL_DEBUG, "%llu bytes at %llu, %s%s (%s)%s%s",
		(unsigned long long)j->cp.len, (unsigned long long)j->cp.off,
		dl_method_name(j->cp.method), job_cfr_how(j), dl_reason_name(j->cp.reason),
		j->tgt.hugetlb ? ", hugetlb" : "", j->into ? ", into the caller's buffer" : "");
	if (j->extents)
		job_log(j, LOG_LVL_DEBUG, "%u extents in %u runs", j->n_ext, j->cp.nsegs);
	if (j->cp.len == 0) {
		job_finish(j);
		return;
	}
	j->state = DL_STATE_QUEUED;
	sched_add(&j->eng->sched, &j->sl);
}

/* ---- into the caller's buffer, from the cache (worker) ------------------------------ */

/* Copies run @s from the cached buffer (@src: its mapping, or NULL to pread it) into
 * the caller's mapping. Returns 0 or -errno with j->msg set. */
static int cache_copy_seg(struct job *j, const struct copy_seg *s, const char *src)
{
	char *dst = (char *)j->tgt.map + (s->buf - j->tgt.map_off);
	uint64_t done = 0;

	if (src) {
		memcpy(dst, src + (s->off - j->cache_off), s->len);
		return 0;
	}
	while (done < s->len) {
		ssize_t n = pread(j->cache_fd, dst + done, s->len - done,
				  (off_t)(s->off - j->cache_off + done));

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			int r = n < 0 ? -errno : -EIO;

			snprintf(j->msg, sizeof(j->msg), "cannot copy the cached buffer into "
				 "the caller's at buffer offset %llu: %s%s",
				 (unsigned long long)(s->buf + done), strerror(-r),
				 r == -EFAULT ? " (its pages went away under the load: a hole "
				 "punched in it?)" : "");
			return r;
		}
		done += (uint64_t)n;
	}
	return 0;
}

/*
 * Copies every run from the cached buffer into the caller's mapping: memory speed,
 * nothing read from the file. A 4 KiB-page memfd takes a memcpy from a mapping of the
 * cached buffer: a page the caller punched away (F_SEAL_SHRINK allows that) is just
 * faulted in again. Into huge pages and dma-bufs the kernel copies (pread), which
 * answers EFAULT where a CPU store would take a SIGBUS: a hugetlb page punched away
 * with the pool empty cannot come back, and an exporter's fault handler may fail.
 * pread is about half memcpy's speed into 4 KiB pages (4.5 vs 9.5 GB/s measured).
 */
static int cache_copy_run(struct worker_task *t)
{
	struct job *j = list_entry(t, struct job, task);
	bool by_cpu = !j->tgt.hugetlb && !j->tgt.pfnmap;
	const char *src = NULL;
	struct stat st;
	int r = 0;

	if (by_cpu) {
		if (fstat(j->cache_fd, &st) < 0)
			return -errno;
		src = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_SHARED, j->cache_fd, 0);
		if (src == MAP_FAILED) {
			r = -errno;
			snprintf(j->msg, sizeof(j->msg), "cannot map the cached buffer: %s",
				 strerror(-r));
			return r;
		}
	}
	for (unsigned i = 0; r == 0 && i < j->cp.nsegs; i++)
		r = cache_copy_seg(j, &j->cp.segs[i], src);
	if (src)
		munmap((void *)src, (size_t)st.st_size);
	if (r < 0)
		return r;
	close(j->cache_fd);
	j->cache_fd = -1;
	j->cp.done = j->cp.len;
	return 0;
}

static bool job_task_ok(struct job *j, int res);

static void cache_copy_done(struct worker_task *t, int res)
{
	struct job *j = list_entry(t, struct job, task);

	if (!job_task_ok(j, res))
		return;
	job_finish(j);
}

/* A load into the caller's buffer whose every run lies in a buffer the cache keeps (a
 * plain load of this version of the file): copied from it on a worker instead of read.
 * Returns whether it was taken that way. */
static bool job_into_from_cache(struct job *j)
{
	struct cache_key k = {
		.dev = j->src.dev, .ino = j->src.ino, .size = j->src.size,
		.mtime_ns = j->src.mtime_ns, .ctime_ns = j->src.ctime_ns,
	};
	uint64_t end = 0;
	struct cache_entry *e;

	/* as for shared loads: auto only, never a file that reads per opener */
	if (!j->into || !j->cp.nsegs || j->req.method != DL_METHOD_AUTO ||
	    j->src.per_opener || !j->eng->cache.limit)
		return false;
	for (unsigned i = 0; i < j->cp.nsegs; i++)
		if (j->cp.segs[i].off + j->cp.segs[i].len > end)
			end = j->cp.segs[i].off + j->cp.segs[i].len;
	e = cache_covering(&j->eng->cache, &k, j->cp.segs[0].off, end);
	if (!e)
		return false;
	j->cache_fd = fcntl(e->fd, F_DUPFD_CLOEXEC, 3);
	if (j->cache_fd < 0)
		return false;
	j->cache_off = e->key.off;
	j->from_cache = true;
	j->cp.method = e->method;
	j->cp.reason = e->reason;
	job_send_accepted(j);
	job_log(j, LOG_LVL_DEBUG, "%llu bytes copied from the cached buffer of %s",
		(unsigned long long)j->cp.len, e->name);
	j->state = DL_STATE_READING;
	/* Capped per uid like a read: a copy of GiBs takes a thread for a while. */
	job_submit(j, cache_copy_run, cache_copy_done, WORKER_FILE, false);
	return true;
}

/* A task of the opening ended: false when the job failed or was cancelled (it is
 * taken care of), true when it goes on. */
static bool job_task_ok(struct job *j, int res)
{
	j->task_busy = false;
	if (j->err) {			/* cancelled meanwhile */
		job_maybe_release(j);
		return false;
	}
	if (res < 0) {
		job_fail(j, res, "%s", job_task_msg(j, res));
		return false;
	}
	return true;
}

/* Whether @j ends here because its client hung up: before a worker's trip or a read
 * that nobody would take (a client that asks and dies in a loop). A leader that others
 * joined reads on for them. */
static bool job_owner_left(struct job *j)
{
	if (!j->owner->ops->hung_up || !j->owner->ops->hung_up(j))
		return false;
	job_detach(j);
	return j->err != 0;
}

/* The source is open (open_run): a shareable load asks the cache, the others were
 * prepared on the worker already and start reading. */
static void open_done(struct worker_task *t, int res)
{
	struct job *j = list_entry(t, struct job, task);

	if (res == 0)
		lookup_learn(&j->eng->lookup, &j->src.mounts);
	if (!job_task_ok(j, res) || job_owner_left(j))
		return;
	if (j->filled) {
		/* A small load, read and sealed: the cache is asked now (a hit or a
		 * faster read of the same file may have come meanwhile). */
		if (j->shareable && !j->reopen) {
			job_share_lookup(j);
			return;
		}
		if (!j->shareable)
			j->eng->cache.misses++;
		job_send_accepted(j);
		job_done_own(j);
		return;
	}
	if (j->prepared && job_into_from_cache(j))
		return;
	if (j->prepared)
		job_start_reading(j);
	else
		job_share_lookup(j);
}

/* A shareable load that missed has its method and buffer (prepare_run). */
static void prepare_done(struct worker_task *t, int res)
{
	struct job *j = list_entry(t, struct job, task);

	if (job_task_ok(j, res) && !job_owner_left(j))
		job_start_reading(j);
}

/* ---- reading ---------------------------------------------------------------------- */

static void send_progress(struct job *j)
{
	struct dl_progress p = { .done = j->cp.done, .total = j->cp.len };
	uint64_t now = now_ns();

	if (!(j->req.flags & DL_LOAD_PROGRESS) || now - j->t_progress < 100000000ull)
		return;
	j->t_progress = now;
	j->owner->ops->progress(j, &p);
}

static void job_chunk_ended(struct job *j)
{
	if (j->err) {
		job_maybe_release(j);
	} else if (j->cp.done == j->cp.len && j->cp.inflight == 0) {
		sched_remove(&j->eng->sched, &j->sl);
		job_finish(j);
	} else {
		send_progress(j);
	}
	sched_pump(&j->eng->sched);
}

/* The copy's callbacks (copy.h): its chunks end, or it cannot go on. */
static void job_copy_chunk_ended(struct copy *cp, uint64_t bytes)
{
	struct job *j = list_entry(cp, struct job, cp);

	sched_chunk_end(&j->eng->sched, bytes);
	job_chunk_ended(j);
}

static void job_copy_failed(struct copy *cp, int err, const char *msg)
{
	job_fail(list_entry(cp, struct job, cp), err, "%s", msg);
}

static const struct copy_ops job_copy_ops = {
	.chunk_ended = job_copy_chunk_ended,
	.failed = job_copy_failed,
};

/* The scheduler's callbacks (sched.h). */
static void job_sched_activated(struct sched_load *l)
{
	list_entry(l, struct job, sl)->state = DL_STATE_READING;
}

static void job_sched_deactivated(struct sched_load *l)
{
	list_entry(l, struct job, sl)->state = DL_STATE_QUEUED;
}

static void job_sched_registered(struct sched_load *l)
{
	/* A load that failed while its buffer was being registered goes now. */
	job_maybe_release(list_entry(l, struct job, sl));
}

static const struct sched_load_ops job_sched_ops = {
	.activated = job_sched_activated,
	.deactivated = job_sched_deactivated,
	.registered = job_sched_registered,
};

/* DONE with buffer @fd (borrowed). A sealed memfd goes out as a read-only open file
 * description of the holder's own (target_handout). Returns false when that failed:
 * the job failed instead. */
static bool job_send_done(struct job *j, const struct dl_done *d, int fd)
{
	int out = fd;

	if (d->flags & DL_DONE_SEALED) {
		out = target_handout(fd);
		if (out < 0) {
			job_fail(j, out, "cannot hand the buffer out: %s", strerror(-out));
			return false;
		}
	}
	j->owner->ops->done(j, d, out);
	if (out != fd)
		close(out);
	return true;
}

/* ---- finishing (worker) ---------------------------------------------------------- */

static int finish_run(struct worker_task *t)
{
	struct job *j = list_entry(t, struct job, task);
	int r;

	if (j->cp.fixed_slot >= 0)
		ring_register_slot(&j->eng->ring, (unsigned)j->cp.fixed_slot, NULL);
	j->msg[0] = '\0';
	/* A writer that raced the load: fail it, so nothing stale is handed out or kept.
	 * The loads that joined it fail the same way (job_share_failed). */
	r = source_unchanged(&j->src, j->msg, sizeof(j->msg));
	if (r < 0)
		return r;
	return target_finish(&j->tgt, j->msg, sizeof(j->msg));
}

static void finish_done(struct worker_task *t, int res)
{
	struct job *j = list_entry(t, struct job, task);

	j->task_busy = false;
	if (j->cp.fixed_slot >= 0) {
		sched_put_slot(&j->eng->sched, j->cp.fixed_slot);
		j->cp.fixed_slot = -1;
	}
	if (j->err) {
		job_maybe_release(j);
		return;
	}
	if (res < 0) {
		job_fail(j, res, "%s", job_task_msg(j, res));
		return;
	}
	job_done_own(j);
}

/* @j's own buffer is sealed (or the caller's filled): DONE, and the joiners and the
 * cache get it. On the loop, from a worker task's end. */
static void job_done_own(struct job *j)
{
	uint64_t now = now_ns();
	struct dl_done d;

	if (j->filled) {
		j->eng->bytes_read += j->cp.len;
		j->eng->loads_by_method[j->cp.method & 3]++;
	} else if (j->from_cache) {
		j->eng->bytes_cached += j->cp.len;	/* STATS: a hit, nothing read */
	} else {
		copy_report(&j->cp);
		j->eng->bytes_read += j->cp.len;
		j->eng->loads_by_method[j->cp.method & 3]++;
	}
	if (j->orphaned) {		/* nobody of its own to tell */
		job_share_done(j);
		job_release_soon(j);
		return;
	}
	d = (struct dl_done){
		.size = j->cp.len,
		.buf_size = j->into ? j->tgt.size : j->tgt.hugetlb || !target_sealed(&j->tgt) ?
			    j->tgt.map_len : j->tgt.size,
		.elapsed_ns = now - j->t_start,
		.flags = (target_sealed(&j->tgt) ? DL_DONE_SEALED : 0) |
			 (j->tgt.hugetlb ? DL_DONE_HUGETLB : 0) |
			 (j->cp.method == DL_METHOD_CFR && j->cp.cfr_syscall ?
			  DL_DONE_CFR_SYSCALL : 0) | (j->into ? DL_DONE_INTO : 0) |
			 (j->from_cache ? DL_DONE_CACHED : 0),
		.target = j->tgt.kind,
		.method = j->cp.method,
		.reason = j->cp.reason,
	};
	/* Into the caller's buffer: nothing to hand over, the caller has it. */
	if (!job_send_done(j, &d, j->into ? -1 : j->tgt.fd))
		return;
	j->replied = true;
	j->eng->loads_done++;
	j->eng->bytes_loaded += j->cp.len;
	job_log(j, LOG_LVL_INFO, "for %s, %llu bytes in %.3f s, %.1f MB/s, %s%s (%s), "
		"%s%s%s%s", job_who(j), (unsigned long long)j->cp.len,
		(double)d.elapsed_ns / 1e9,
		d.elapsed_ns ? (double)j->cp.len * 1e3 / (double)d.elapsed_ns : 0.0,
		dl_method_name(j->cp.method), job_cfr_how(j), dl_reason_name(j->cp.reason),
		dl_target_name(j->tgt.kind), j->tgt.kind == DL_TARGET_HEAP ? ":" : "",
		j->tgt.kind == DL_TARGET_HEAP ? j->tgt.heap : "",
		j->tgt.hugetlb ? " hugetlb" : j->tgt.thp ?
		" (transparent huge pages where they fit)" : j->tgt.hugetlb_short ?
		" (4 KiB pages: huge page pool short)" : j->tgt.hugetlb_refused ?
		" (4 KiB pages: udmabuf takes no hugetlb memfds here)" : "");
	job_share_done(j);
	job_release_soon(j);
}

void job_done_shared(struct job *j, int fd, const struct cache_entry *e, uint32_t how)
{
	uint64_t now = now_ns();
	struct dl_done d = {
		.size = j->cp.len,
		.buf_size = e->buf_size,
		.elapsed_ns = now - j->t_start,
		.flags = e->done_flags | how,
		.target = e->key.target,
		.method = e->method,
		.reason = e->reason,
	};

	j->state = DL_STATE_FINISHING;
	j->cp.done = j->cp.len;
	if (!j->replied) {
		if (!job_send_done(j, &d, fd))
			return;
		j->replied = true;
		j->eng->loads_done++;
		j->eng->bytes_loaded += j->cp.len;
		j->eng->bytes_cached += j->cp.len;
		/* A hit at info would be a line per hit: thousands a second trip
		 * journald's rate limit (10,000 per 30 s), which then drops the
		 * daemon's other messages too. */
		job_log(j, how == DL_DONE_CACHED ? LOG_LVL_DEBUG : LOG_LVL_INFO,
			"for %s, %llu bytes in %.3f s, %s", job_who(j),
			(unsigned long long)j->cp.len, (double)d.elapsed_ns / 1e9,
			how == DL_DONE_CACHED ? "from the cache" : "joined a running load");
	}
	job_release_soon(j);
}

static void job_finish(struct job *j)
{
	j->state = DL_STATE_FINISHING;
	/* The seal's lane, apart from the opens: it stats the source, which on a hung
	 * filesystem may hang too, but never waits behind another open. */
	job_submit(j, finish_run, finish_done, WORKER_FINISH, false);
}

/* ---- releasing (worker) ------------------------------------------------------------ */

static int release_run(struct worker_task *t)
{
	struct job *j = list_entry(t, struct job, task);

	/* Our reference to a buffer nobody else holds frees its pages here: GiBs take
	 * tens of milliseconds, which the loop should not wait for. */
	if (j->cp.fixed_slot >= 0)
		ring_register_slot(&j->eng->ring, (unsigned)j->cp.fixed_slot, NULL);
	target_deinit(&j->tgt);
	source_deinit(&j->src);
	if (j->passed_fd >= 0)
		close(j->passed_fd);
	j->passed_fd = -1;
	if (j->root_fd >= 0)
		close(j->root_fd);
	j->root_fd = -1;
	if (j->buf_fd >= 0)
		close(j->buf_fd);
	j->buf_fd = -1;
	if (j->list_fd >= 0)
		close(j->list_fd);
	j->list_fd = -1;
	if (j->cache_fd >= 0)
		close(j->cache_fd);
	j->cache_fd = -1;
	return 0;
}

static void release_done(struct worker_task *t, int res)
{
	struct job *j = list_entry(t, struct job, task);
	struct engine *eng = j->eng;

	memory_release(&eng->mem, j->mem_admitted);
	if (j->cp.fixed_slot >= 0)
		sched_put_slot(&eng->sched, j->cp.fixed_slot);
	quota_load_end(&eng->quota, j->quota, j->quota_bytes);
	j->owner->ops->released(j);
	free(j->path);
	free(j->ext);
	free(j->segs);
	free(j);
	engine_idle(eng);
}

static void job_release(struct job *j)
{
	sched_remove(&j->eng->sched, &j->sl);
	j->state = DL_STATE_FINISHING;
	/* Closing the source may wait on its filesystem (a FUSE flush): not the quick
	 * lane. */
	job_submit(j, release_run, release_done, WORKER_FINISH, false);
}

/*
 * A job that holds nothing a close could wait on (no source file, no mapping, a
 * buffer small enough to free at once) is released here, on the loop: a small load or
 * a hit costs no worker round trip for it. Else as job_release. Only from the end of
 * a worker task (a DONE), where no caller holds the job or its owner.
 */
static void job_release_soon(struct job *j)
{
	if (j->src.fd >= 0 || j->src.dfd >= 0 || j->passed_fd >= 0 ||
	    (j->root_fd >= 0 && !j->root_opath) ||
	    j->buf_fd >= 0 || j->list_fd >= 0 || j->cache_fd >= 0 || j->tgt.map ||
	    j->tgt.dev_fd >= 0 || j->tgt.syncing || j->tgt.kind != DL_TARGET_MEMFD ||
	    j->tgt.map_len > JOB_SMALL_MAX || j->cp.fixed_slot >= 0 || j->cp.inflight ||
	    j->sl.registering || j->task_busy) {
		job_release(j);
		return;
	}
	sched_remove(&j->eng->sched, &j->sl);
	j->state = DL_STATE_FINISHING;
	/* The client's O_PATH root: its close may be the last reference to a lazily
	 * unmounted filesystem, whose teardown would then run here. */
	if (j->root_fd >= 0) {
		worker_close_later(j->eng->pool, j->root_fd);
		j->root_fd = -1;
	}
	release_run(&j->task);
	release_done(&j->task, 0);
}

/* A failed or cancelled job goes once the kernel and the workers are done with it. */
static void job_maybe_release(struct job *j)
{
	if (!j->err || j->task_busy || j->sl.registering || j->cp.inflight)
		return;
	job_release(j);
}

/* Whether @j's request can only end in a memfd, whatever the file: it names one, or
 * leaves the target to a config that does and asks for no dma-buf. */
static bool job_memfd_only(const struct job *j)
{
	return j->req.target == DL_TARGET_MEMFD ||
	       (j->req.target == DL_TARGET_AUTO && j->eng->cfg->target == DL_TARGET_AUTO &&
		!(j->req.flags & DL_LOAD_DMABUF));
}

/*
 * A shareable load whose file the cache likely has, its path walked here on the loop
 * (lookup.c) instead of on a worker: what open_run does for a likely hit of a small
 * file, for a file of any size, without the two thread wake-ups. open_done then runs
 * on the loop's next turn and asks the cache, as after a worker's open; a miss opens
 * the file on a worker from there. Returns whether it went this way; if not, the
 * worker's open_run starts @j afresh (what this set, the range and the target, it
 * sets again).
 */
static bool job_hit_on_loop(struct job *j)
{
	bool small = j->small, shareable = j->shareable;
	struct lookup_file f;

	/* Only a memfd is shared: a load that may become a dma-buf is not walked
	 * (pick_target would probe the devices on the loop first). */
	if (!j->shareable || j->extents || !j->path || j->root_fd < 0 ||
	    j->eng->cfg->loop_hits == CONFIG_OFF || !job_memfd_only(j) ||
	    !cache_may_have_name(&j->eng->cache, j->path) ||
	    lookup_path(&j->eng->lookup, j->root_fd, j->path, j->owner->cred, &f) < 0)
		return false;
	if (!cache_may_have(&j->eng->cache, f.dev, f.ino)) {
		j->eng->lookup.gave_up++;	/* walked for nothing: counted so */
		return false;
	}
	j->src.size = f.size;
	j->src.dev = f.dev;
	j->src.ino = f.ino;
	j->src.mtime_ns = f.mtime_ns;
	j->src.ctime_ns = f.ctime_ns;
	if (job_range(j) < 0 || job_fit(j) < 0 || !j->shareable) {
		/* A worker's open says what is wrong, as it does for any load. */
		j->eng->lookup.gave_up++;
		source_init(&j->src);
		j->msg[0] = '\0';
		j->small = small;
		j->shareable = shareable;
		return false;
	}
	j->seen = j->src;
	j->src_closed = true;
	j->root_opath = f.root_opath;	/* kept: a miss opens from it again */
	job_log(j, LOG_LVL_DEBUG, "likely in the cache: its path checked on the loop");
	j->task = (struct worker_task){ .done = open_done, .lane = WORKER_FILE,
					.uid = j->owner->cred->uid };
	j->task_busy = true;
	worker_done_soon(j->eng->pool, &j->task, 0);
	return true;
}

/* ---- creation ----------------------------------------------------------------------- */

int job_new(struct job **out, struct engine *eng, struct job_owner *owner,
	    const struct dl_msg *m, int *fds, int nfds)
{
	struct job *j = calloc(1, sizeof(*j));
	int k = 0, fd;

	if (!j) {
		worker_close_files(eng->pool, fds, nfds, owner->cred->uid);
		return -ENOMEM;
	}
	/* The fds in the order dl_load_ext gives (the decoder checked their count). */
	fd = (m->u.load.flags & (DL_LOAD_BY_FD | DL_LOAD_ROOT_FD)) ? fds[k++] : -1;
	j->buf_fd = j->list_fd = j->cache_fd = -1;
	if (m->hdr.type == DL_LOAD_EXTENTS) {
		const struct dl_load_ext *x = &m->u.load_ext;

		j->extents = true;
		j->into = x->ext_flags & DL_EXT_INTO;
		j->n_ext = x->n_extents;
		if (j->into)
			j->buf_fd = fds[k++];
		if (x->ext_flags & DL_EXT_LIST_MEMFD)
			j->list_fd = fds[k++];
		if (m->ext) {
			j->ext = malloc(m->n_ext * sizeof(*j->ext));
			if (!j->ext) {
				worker_close_files(eng->pool, fds, nfds, owner->cred->uid);
				free(j);
				return -ENOMEM;
			}
			memcpy(j->ext, m->ext, m->n_ext * sizeof(*j->ext));
		}
	}
	list_init(&j->owner_link);
	j->eng = eng;
	j->owner = owner;
	j->id = m->hdr.id;
	j->req = m->u.load;
	cache_load_init(&j->cl, j->req.flags & DL_LOAD_PIN, owner->cred->uid);
	/* The one fd is the source, or with DL_LOAD_ROOT_FD the client's root. */
	j->passed_fd = (j->req.flags & DL_LOAD_ROOT_FD) ? -1 : fd;
	j->root_fd = (j->req.flags & DL_LOAD_ROOT_FD) ? fd : -1;
	j->t_start = now_ns();
	source_init(&j->src);
	target_init(&j->tgt);
	sched_load_init(&j->sl);
	j->sl.owner = owner->so;
	j->sl.cp = &j->cp;
	j->sl.ops = &job_sched_ops;
	j->sl.prio = j->req.priority;
	j->sl.rate_limit = j->req.rate_limit;
	j->cp = (struct copy){
		.env = &j->eng->copy,
		.ops = &job_copy_ops,
		.src = &j->src,
		.tgt = &j->tgt,
		.asked = j->req.method,
		.who = j->who,
		.uid = owner->cred->uid,
		.fixed_slot = -1,
	};
	if (!(j->req.flags & DL_LOAD_BY_FD)) {
		j->path = strndup(m->trail, m->u.load.path_len);
		if (!j->path) {
			worker_close_files(eng->pool, fds, nfds, owner->cred->uid);
			free(j->ext);
			free(j);
			return -ENOMEM;
		}
		snprintf(j->name, sizeof(j->name), "%s", j->path);
	} else {
		snprintf(j->name, sizeof(j->name), "fd");
	}
	job_name_changed(j);
	if (m->heap)
		snprintf(j->heap, sizeof(j->heap), "%.*s", (int)m->heap_len, m->heap);
	/* A load that names a method is read as asked; auto ones may share. Into the
	 * caller's buffer nothing is shared (it is the caller's). */
	j->shareable = j->req.method == DL_METHOD_AUTO && !j->into;
	/* The small-file way (JOB_SMALL_MAX), as far as the request tells: a plain auto
	 * load into a memfd, in the foreground, that no rate holds back, while a reading
	 * slot is free (it takes none, but never passes a load that waits for one). */
	j->small = j->shareable && !j->extents && eng->cfg->method == DL_METHOD_AUTO &&
		   eng->sched.active[DL_PRIO_FOREGROUND] < eng->sched.cfg->max_loads &&
		   list_empty(&eng->sched.waiting[DL_PRIO_FOREGROUND]) &&
		   eng->cfg->hugetlb != CONFIG_ON && j->req.priority == DL_PRIO_FOREGROUND &&
		   job_memfd_only(j) && !sched_load_rate(&j->sl) && !eng->sched.global.rate;
	/* Counted as its uid's from here to its release (the owner checked
	 * max_loads_per_uid). */
	j->quota = quota_load_start(&eng->quota, owner->cred->uid);
	j->state = DL_STATE_OPENING;
	*out = j;
	if (job_hit_on_loop(j))
		return 0;
	/* Opens may hang (a FUSE server, a lease): capped per uid (worker.h). */
	/* A foreground load's open goes before background work queued on the workers
	 * (freeing a GiB buffer takes tens of ms); opens are short. */
	job_submit(j, open_run, open_done, WORKER_FILE,
		   j->req.priority == DL_PRIO_FOREGROUND);
	return 0;
}
