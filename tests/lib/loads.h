/*
 * loads.h: load-and-check helpers over libdmaload, shared by the integration tests.
 *
 * They record failures with CHECK*() in the open case (so they are thread-safe and
 * usable from a case's worker threads) and return whether everything held.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "dmaload.h"
#include "harness.h"

/* Starts a load of @path, or of @fd when @path is NULL. 0 or -errno. */
int lc_start(struct dmaload *dl, const char *path, int fd,
	     const struct dmaload_opts *opts, uint64_t *id);

/* The buffer object's size agrees with DONE: the data size, or for hugetlb buffers
 * the data size rounded up to whole huge pages. */
bool lc_check_buf_size(const struct dmaload_event *ev, uint64_t len);

/*
 * Checks that @ev is the DONE of a load that should have delivered @len bytes of
 * pattern @seed starting at file offset @off: size, buffer size, target, method (one
 * of direct/buffered/cfr; @want_method too unless it is DL_METHOD_AUTO), and the
 * buffer itself (buf_verify). Closes ev->fd.
 */
bool lc_check_done(struct dmaload_event *ev, uint64_t len, uint32_t seed, uint64_t off,
		   uint8_t want_method);

/* Starts a load, waits for its final event and checks it with lc_check_done(). @ev
 * (may be NULL) receives the event. */
bool lc_load_verify(struct dmaload *dl, const char *path, int fd,
		    const struct dmaload_opts *opts, uint64_t len, uint32_t seed,
		    uint8_t want_method, struct dmaload_event *ev);

/* Starts a load and waits for its final event, which must be an ERROR with one of the
 * @n errnos in @errs (positive) and a non-empty message. @ev receives it. */
bool lc_load_error(struct dmaload *dl, const char *path, int fd,
		   const struct dmaload_opts *opts, const int *errs, int n,
		   struct dmaload_event *ev);

/* "DONE size 123" / "ERROR 2 (No such file): text" for failure messages. */
const char *lc_event_str(const struct dmaload_event *ev);

/* Connects with a CHECK. NULL on failure. */
struct dmaload *lc_connect(const struct test_daemon *d, const char *name);
/* In a child (child_run): becomes @uid with supplementary group @extra (child_drop),
 * then connects to @sock as @name. NULL with @msg set on failure. */
struct dmaload *lc_connect_as(uid_t uid, gid_t extra, const char *sock, const char *name,
			      char *msg, size_t len);

/* Whether STATUS on @dl lists a running load named @path: 1, 0, or -errno. */
int lc_status_lists(struct dmaload *dl, const char *path);
