/*
 * ring.c: the io_uring and its place in the libev loop. Requests are queued into the
 * SQ as they come and submitted once per loop iteration (an ev_prepare watcher), so a
 * burst of chunks costs one io_uring_enter. Completions raise the eventfd; a wake-up
 * is only a hint, so the handler drains the whole CQ each time. Each CQE's user_data
 * is a struct ring_op * whose callback gets the result; retries and short reads are
 * the caller's business.
 */
#include <errno.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "log.h"
#include "ring.h"

static void ring_submit_now(struct ring *r)
{
	int n;

	do
		n = io_uring_submit(&r->uring);
	while (n == -EINTR);
	if (n < 0 && n != -EAGAIN && n != -EBUSY)
		log_err("io_uring_submit: %s", strerror(-n));
}

static void ring_drain(struct ring *r)
{
	struct io_uring_cqe *cqe;

	/* Callbacks may queue new requests; they are submitted by the prepare watcher
	 * or below, so the loop over the CQ stays simple. */
	while (io_uring_peek_cqe(&r->uring, &cqe) == 0) {
		struct ring_op *op = io_uring_cqe_get_data(cqe);
		int res = cqe->res;

		io_uring_cqe_seen(&r->uring, cqe);
		r->inflight--;
		if (op)
			op->complete(op, res);
	}
}

static void on_eventfd(struct ev_loop *loop, ev_io *w, int revents)
{
	struct ring *r = w->data;
	uint64_t v;

	/* Clear the counter first: a completion after the read re-arms it. */
	if (read(r->efd, &v, sizeof(v)) < 0 && errno != EAGAIN)
		log_warn("eventfd read: %s", strerror(errno));
	ring_drain(r);
	ring_submit_now(r);
}

static void on_prepare(struct ev_loop *loop, ev_prepare *w, int revents)
{
	struct ring *r = w->data;

	if (io_uring_sq_ready(&r->uring))
		ring_submit_now(r);
}

int ring_init(struct ring *r, struct ev_loop *loop, unsigned entries, unsigned n_fixed)
{
	struct io_uring_params p = { 0 };
	int ret;

	memset(r, 0, sizeof(*r));
	r->efd = -1;
	r->loop = loop;
	/* The CQ holds twice the SQ so completions never overflow while we keep at most
	 * @entries in flight. */
	p.flags = IORING_SETUP_CQSIZE;
	p.cq_entries = entries * 2;
	ret = io_uring_queue_init_params(entries, &r->uring, &p);
	if (ret < 0)
		return ret;
	r->entries = entries;
	r->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (r->efd < 0) {
		ret = -errno;
		goto fail;
	}
	ret = io_uring_register_eventfd(&r->uring, r->efd);
	if (ret < 0)
		goto fail;
	if (n_fixed) {
		ret = io_uring_register_buffers_sparse(&r->uring, n_fixed);
		if (ret == 0) {
			r->n_fixed = n_fixed;
			r->fixed_ok = true;
		} else {
			log_notice("io_uring: no sparse buffer table (%s): reads will not "
				   "use READ_FIXED", strerror(-ret));
		}
	}
	ev_io_init(&r->watch, on_eventfd, r->efd, EV_READ);
	r->watch.data = r;
	ev_io_start(loop, &r->watch);
	ev_prepare_init(&r->flush, on_prepare);
	r->flush.data = r;
	ev_prepare_start(loop, &r->flush);
	return 0;
fail:
	if (r->efd >= 0)
		close(r->efd);
	r->efd = -1;
	io_uring_queue_exit(&r->uring);
	return ret;
}

void ring_deinit(struct ring *r)
{
	if (r->efd < 0)
		return;
	ev_io_stop(r->loop, &r->watch);
	ev_prepare_stop(r->loop, &r->flush);
	io_uring_queue_exit(&r->uring);
	close(r->efd);
	r->efd = -1;
}

bool ring_has_room(const struct ring *r)
{
	return r->inflight + 2 <= r->entries;
}

/* An SQE, with @need - 1 more free behind it. Callers respect ring_has_room(), so
 * the SQ is only full of requests queued this iteration: push them out first. A
 * linked pair must go to the kernel in one submission (a link does not reach into the
 * next io_uring_enter), hence @need. */
static struct io_uring_sqe *ring_sqe(struct ring *r, unsigned need)
{
	if (io_uring_sq_space_left(&r->uring) < need)
		ring_submit_now(r);
	r->inflight++;
	return io_uring_get_sqe(&r->uring);
}

void ring_read(struct ring *r, struct ring_op *op, int fd, void *buf, unsigned len,
	       uint64_t off, int fixed_slot)
{
	struct io_uring_sqe *sqe = ring_sqe(r, 1);

	if (fixed_slot >= 0)
		io_uring_prep_read_fixed(sqe, fd, buf, len, off, fixed_slot);
	else
		io_uring_prep_read(sqe, fd, buf, len, off);
	/* Straight to io_uring's workers: issued inline, a read faults in its buffer's
	 * pages inside io_uring_enter, on the loop thread (measured: up to 170-440 ms
	 * for one submission of 64 x 4 MiB into fresh 4 KiB pages), and every client
	 * would wait for it. Punted, the faults happen on the workers, in parallel. */
	sqe->flags |= IOSQE_ASYNC;
	io_uring_sqe_set_data(sqe, op);
}

void ring_write(struct ring *r, struct ring_op *op, int fd, const void *buf, unsigned len,
		uint64_t off)
{
	struct io_uring_sqe *sqe = ring_sqe(r, 1);

	io_uring_prep_write(sqe, fd, buf, len, off);
	/* Inline, the page allocation of a write into shmem would run on the loop. */
	sqe->flags |= IOSQE_ASYNC;
	io_uring_sqe_set_data(sqe, op);
}

void ring_splice(struct ring *r, struct ring_op *op, int fd_in, int64_t off_in,
		 int fd_out, int64_t off_out, unsigned len, bool link)
{
	struct io_uring_sqe *sqe = ring_sqe(r, link ? 2 : 1);

	io_uring_prep_splice(sqe, fd_in, off_in, fd_out, off_out, len, 0);
	if (link)
		sqe->flags |= IOSQE_IO_LINK;
	io_uring_sqe_set_data(sqe, op);
}

void ring_cancel_all(struct ring *r)
{
	struct io_uring_sqe *sqe;

	if (r->efd < 0 || !r->inflight)
		return;
	/* The cancel completes too (the number cancelled, or an error on kernels before
	 * 5.19 without CANCEL_ANY): no op, counted in inflight like any request. */
	sqe = ring_sqe(r, 1);
	io_uring_prep_cancel(sqe, NULL, IORING_ASYNC_CANCEL_ANY);
	io_uring_sqe_set_data(sqe, NULL);
	ring_submit_now(r);
}

int ring_register_slot(struct ring *r, unsigned slot, const struct iovec *iov)
{
	struct iovec empty = { 0 };
	__u64 tag = 0;
	int ret;

	if (!r->fixed_ok || slot >= r->n_fixed)
		return -EOPNOTSUPP;
	ret = io_uring_register_buffers_update_tag(&r->uring, slot, iov ? iov : &empty,
						   &tag, 1);
	return ret < 0 ? ret : 0;
}
