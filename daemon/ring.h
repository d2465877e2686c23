/*
 * ring.h: the daemon's one io_uring, woken through an eventfd that libev watches.
 * Callers embed a struct ring_op in whatever issued the request; its callback gets
 * the completion's result. The ring knows nothing of clients or jobs.
 */
#pragma once

#include <ev.h>
#include <liburing.h>
#include <stdbool.h>
#include <sys/uio.h>

struct ring_op {
	void (*complete)(struct ring_op *op, int res);	/* res: bytes or -errno */
};

struct ring {
	struct io_uring uring;
	struct ev_loop *loop;
	ev_io watch;		/* on the eventfd */
	ev_prepare flush;	/* submits what was queued this loop iteration */
	int efd;
	unsigned inflight;	/* SQEs submitted or queued, not yet completed */
	unsigned entries;
	unsigned n_fixed;	/* registered-buffer table slots (sparse), 0: none */
	bool fixed_ok;		/* the kernel took the sparse buffer table */
};

/* Sets up a ring of @entries SQEs and a sparse table of @n_fixed buffer slots (0:
 * none). Returns 0 or -errno. */
int ring_init(struct ring *r, struct ev_loop *loop, unsigned entries, unsigned n_fixed);
void ring_deinit(struct ring *r);

/* Room for another chunk's requests (up to two, a splice pair)? Callers keep at most
 * ring->entries in flight. */
bool ring_has_room(const struct ring *r);

/* Queue a read of @len bytes at @off of @fd into @buf; @op completes it. The request
 * is submitted before the loop next sleeps. @fixed_slot >= 0 makes it READ_FIXED on
 * that registered slot. */
void ring_read(struct ring *r, struct ring_op *op, int fd, void *buf, unsigned len,
	       uint64_t off, int fixed_slot);

/* Queue a write of @len bytes from @buf into @fd at @off; @op completes it. Always
 * on io_uring's workers (a write into a memfd allocates its pages). */
void ring_write(struct ring *r, struct ring_op *op, int fd, const void *buf, unsigned len,
		uint64_t off);

/* Queue a SPLICE of @len bytes from @fd_in at @off_in to @fd_out at @off_out (-1: a
 * pipe, no offset). @link: the next request queued waits for this one and is
 * cancelled (-ECANCELED) if this one fails or comes up short. */
void ring_splice(struct ring *r, struct ring_op *op, int fd_in, int64_t off_in,
		 int fd_out, int64_t off_out, unsigned len, bool link);

/* Asks the kernel to cancel every request in flight (a stopping daemon): each still
 * completes through its op, -ECANCELED or done. A read blocked in a filesystem that
 * does not answer (FUSE) may stay, since the kernel cannot take it back. */
void ring_cancel_all(struct ring *r);

/* Registers @iov into slot @slot (blocking: pins pages; call from a worker) or clears
 * it (iov NULL). Returns 0 or -errno. */
int ring_register_slot(struct ring *r, unsigned slot, const struct iovec *iov);
