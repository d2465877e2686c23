/*
 * dmaload.h: libdmaload, the C client library of dmaloadd.
 *
 * A struct dmaload is one connection to the daemon. Requests are sent without
 * waiting; their replies arrive as events. Two ways to use it:
 *   - blocking: dmaload_load_path() / dmaload_load_fd() then dmaload_wait(), or the
 *     one-call helpers dmaload_load_path_sync() / dmaload_load_fd_sync();
 *   - in your own event loop: watch dmaload_fd() for POLLIN and call
 *     dmaload_next_event(..., 0) until it returns 0.
 * Many loads may be in flight on one connection. Events for other requests that
 * arrive while dmaload_wait() waits are queued and handed out by later calls.
 *
 * Errors are returned as negative errno values. For a load that the daemon refused,
 * the event (or result) carries the daemon's errno and message.
 * A connection is not thread-safe: use one per thread, or lock around it.
 *
 * The wire constants: this header includes dmaload-proto.h (installed beside it), as
 * liburing.h includes liburing/io_uring.h, and copies none of its values. These names
 * from it are libdmaload's public API, frozen with the -dev package, because the
 * structs below carry them or the calls return them:
 *   - enum dl_method, enum dl_target, enum dl_priority (dmaload_opts), enum dl_reason
 *     and DL_DONE_* (the DONE event), enum dl_load_state (dmaload_status), DL_ENTRY_*
 *     (dmaload_cache_list), DL_CAP_* (dmaload_daemon_caps(), dmaload_info);
 *   - the limits that size this header's arrays: DL_PATH_MAX, DL_ERRMSG_MAX,
 *     DL_NAME_LEN, DL_HEAP_NAME_MAX, DL_STATS_METHODS; DL_LENGTH_TO_EOF
 *     (DMALOAD_TO_EOF); DL_PROTO_VERSION (dmaload_daemon_version());
 *   - dl_method_name(), dl_target_name(), dl_reason_name() and dl_heap_name_ok(),
 *     which libdmaload exports.
 * Their numbers are never reused or changed; new ones are only added. The rest of
 * dmaload-proto.h (message types, the message structs, the codec and fd passing) is
 * the protocol's, not the library's: libdmaload speaks it for you, and a program
 * that uses it directly follows the protocol version, not the library's.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "dmaload-proto.h"	/* the public constants listed above */

#ifdef __cplusplus
extern "C" {
#endif

#define DMALOAD_TO_EOF DL_LENGTH_TO_EOF	/* dmaload_opts.length: to the end */

struct dmaload;

struct dmaload_opts {
	uint64_t offset;		/* first byte of the file (default 0) */
	uint64_t length;		/* bytes, or DMALOAD_TO_EOF (the default) */
	uint64_t rate_limit;		/* bytes/s at most, 0 = the daemon's limit */
	bool progress;			/* ask for DMALOAD_EV_PROGRESS events */
	bool exact_size;		/* buffer exactly the data's size (no hugetlb
					 * rounding up) */
	bool pin;			/* keep the buffer in the daemon's cache until
					 * evicted explicitly (DL_LOAD_PIN) */
	uint8_t method;			/* enum dl_method from dmaload-proto.h; 0 = auto */
	uint8_t target;			/* enum dl_target; 0 = auto */
	uint8_t priority;		/* enum dl_priority; 0 = foreground */
	bool dmabuf;			/* target auto: a dma-buf if the host has one
					 * (udmabuf, else a heap), else a memfd; the DONE
					 * event's target says which */
	const char *heap;		/* target DL_TARGET_HEAP: the heap's name, e.g.
					 * "system" (a file in /dev/dma_heap) */
	bool detach;			/* a preload: the load goes on into the daemon's
					 * cache if this connection closes (DL_LOAD_DETACH;
					 * needs pin; -EOPNOTSUPP from a daemon without
					 * DL_CAP_DETACH) */
};

/* Fills @opts with the defaults: whole file, auto method and target. */
void dmaload_opts_init(struct dmaload_opts *opts);

enum dmaload_event_type {
	DMALOAD_EV_ACCEPTED = 1,	/* source opened; length known */
	DMALOAD_EV_PROGRESS = 2,	/* done / total */
	DMALOAD_EV_DONE = 3,		/* fd holds the buffer: the caller owns it */
	DMALOAD_EV_ERROR = 4,		/* err / message */
	DMALOAD_EV_OK = 5,		/* a CANCEL (or other plain request) succeeded */
};

struct dmaload_event {
	enum dmaload_event_type type;
	uint64_t id;			/* the request it answers */
	int fd;				/* DONE: the buffer (owned by the caller); else -1 */
	uint64_t size;			/* DONE: bytes of file data; ACCEPTED: length */
	uint64_t buf_size;		/* DONE: size of the buffer object */
	uint64_t file_size;		/* ACCEPTED: size of the source file */
	uint64_t done, total;		/* PROGRESS */
	uint64_t elapsed_ns;		/* DONE: daemon-side time for the load */
	uint8_t method, target, reason;	/* DONE: what the daemon used and why */
	uint32_t done_flags;		/* DONE: DL_DONE_* (sealed, hugetlb, ...) */
	int err;			/* ERROR: positive errno */
	char message[DL_ERRMSG_MAX + 1];	/* ERROR: the daemon's text, NUL-terminated */
};

/* The socket path used when none is given: $DMALOAD_SOCKET, else
 * /run/dmaloadd/dmaloadd.sock for root, else $XDG_RUNTIME_DIR/dmaloadd.sock when that
 * exists, else /run/dmaloadd/dmaloadd.sock. Returns a pointer to static storage. */
const char *dmaload_default_socket(void);

/* Connects to @socket_path (NULL: dmaload_default_socket()) and says HELLO with
 * @name (NULL: the program's name; at most 32 bytes are sent) as the client's name.
 * Returns 0 and *out, -err when the daemon refused the connection or the HELLO
 * (dmaload_connect_ex() gives its message too), or -errno. */
int dmaload_connect(struct dmaload **out, const char *socket_path, const char *name);

/*
 * dmaload_connect() with an idle timeout and the daemon's reason for a refusal.
 * @timeout_ms (-1: none) bounds the wait for the HELLO's reply and becomes the
 * connection's timeout (dmaload_set_timeout()). When the daemon refuses the
 * connection (too many clients, too many of this user's, out of fds), returns its
 * -errno (-EAGAIN, -EMFILE) and writes its message into @errmsg (@errlen bytes; may
 * be NULL with @errlen 0); on other failures @errmsg is "". -ETIMEDOUT when the
 * daemon did not answer within @timeout_ms.
 */
int dmaload_connect_ex(struct dmaload **out, const char *socket_path, const char *name,
		       int timeout_ms, char *errmsg, size_t errlen);

/*
 * The idle timeout of the calls that wait for the daemon (dmaload_wait(), the *_sync
 * loads, dmaload_status(), dmaload_list(), dmaload_stats(), dmaload_info(),
 * dmaload_evict()): each waits at most @timeout_ms for the next message from the
 * daemon, and every message (a PROGRESS too, of any request) starts it again, so a
 * long load that reports progress is never cut short. -1 (the default): wait
 * forever. On timeout dmaload_wait() returns -ETIMEDOUT and the connection stays
 * usable; the request-reply calls return -ETIMEDOUT and the connection is broken
 * (their reply could come later, out of turn). dmaload_next_event() keeps its own
 * @timeout_ms.
 */
void dmaload_set_timeout(struct dmaload *dl, int timeout_ms);

/* Closes the connection; loads still in flight are cancelled by the daemon. Fds of
 * queued DONE events that were never handed out are closed. Returns NULL. */
struct dmaload *dmaload_close(struct dmaload *dl);

/* The connection's socket, for poll/epoll/libev: readable means events may be ready. */
int dmaload_fd(const struct dmaload *dl);

/* What the daemon said in its HELLO reply. */
uint32_t dmaload_daemon_caps(const struct dmaload *dl);
uint32_t dmaload_daemon_version(const struct dmaload *dl);
uint64_t dmaload_max_load_size(const struct dmaload *dl);

/* Starts a load of @path (opened by the daemon with this process's credentials).
 * A relative @path is first made absolute against this process's working directory.
 * /dev/fd/N, /proc/self/fd/N, /proc/thread-self/fd/N, /dev/stdin, /dev/stdout and
 * /dev/stderr name this process's own fds: they load as dmaload_load_fd() of that fd
 * (not a reopen; its offset and flags are left alone). @opts may be NULL. Returns 0
 * and the request's id in *id, or -errno. */
int dmaload_load_path(struct dmaload *dl, const char *path,
		      const struct dmaload_opts *opts, uint64_t *id);

/* Starts a load from @fd, a readable regular file of the caller's. Borrows @fd: it is
 * duplicated into the daemon and stays the caller's. */
int dmaload_load_fd(struct dmaload *dl, int fd, const struct dmaload_opts *opts,
		    uint64_t *id);

/* Asks the daemon to cancel load @load_id. The load then ends with an ERROR event
 * (ECANCELED), and the cancel request itself with OK (or ERROR ENOENT if the load
 * was already over). Returns 0 when sent, and the cancel's request id in *id (may
 * be NULL). */
int dmaload_cancel(struct dmaload *dl, uint64_t load_id, uint64_t *id);

/*
 * Gets the next event, waiting up to @timeout_ms (-1: forever, 0: don't wait).
 * Returns 1 with *ev filled, 0 on timeout, -ECONNRESET when the daemon went away,
 * or another -errno. A DONE event's fd belongs to the caller.
 */
int dmaload_next_event(struct dmaload *dl, struct dmaload_event *ev, int timeout_ms);

/*
 * Waits for the final event (DONE, ERROR or OK) of request @id; PROGRESS events for it
 * are passed to @on_progress (may be NULL) and events of other requests are kept for
 * later. The ACCEPTED event of @id goes to @on_progress too, with done = 0 and total =
 * the length to load. @on_progress may call dmaload_cancel(). Returns 0 with *ev
 * filled (check ev->type), -EINVAL for an id not sent yet, or -errno if the connection
 * failed.
 */
int dmaload_wait(struct dmaload *dl, uint64_t id, struct dmaload_event *ev,
		 void (*on_progress)(const struct dmaload_event *ev, void *data),
		 void *data);

/* One-call loads: start and wait. Return 0 with the DONE event in *ev (the caller
 * owns ev->fd), the daemon's refusal as -err with ev->type == DMALOAD_EV_ERROR and its
 * message in ev->message, or another -errno. */
int dmaload_load_path_sync(struct dmaload *dl, const char *path,
			   const struct dmaload_opts *opts, struct dmaload_event *ev);
int dmaload_load_fd_sync(struct dmaload *dl, int fd, const struct dmaload_opts *opts,
			 struct dmaload_event *ev);

/* ---- lists of extents, and loads into the caller's buffer -------------------------
 * Need a daemon with DL_CAP_EXTENTS (and DL_CAP_LOAD_INTO for @buf_fd >= 0): else
 * these return -EOPNOTSUPP before sending. A DONE into the caller's buffer has fd -1,
 * DL_DONE_INTO in done_flags and buf_size = that buffer's size.
 * The caller's buffer: a memfd open O_RDWR, not write-sealed, sealed with
 * F_SEAL_SHRINK (memfd_create(MFD_ALLOW_SEALING), ftruncate, F_ADD_SEALS), 4 KiB or
 * huge pages; or a dma-buf open O_RDWR whose exporter lets it be mmapped. Its pages
 * are charged to whoever first touches them: fallocate the buffer to pay for it.
 */

/* One extent: @length bytes of the file at @file_offset go to @buf_offset. */
struct dmaload_extent {
	uint64_t file_offset;
	uint64_t length;
	uint64_t buf_offset;
};

/* The most extents one load takes (>= 4096). */
#define DMALOAD_MAX_EXTENTS 65536

/*
 * Loads the extents @ext[0..n_ext) of @path (or of @src_fd, borrowed).
 * @buf_fd == -1: into a new buffer of size max(buf_offset + length) over the
 *   extents (bytes not covered are zero); DONE carries the buffer's fd, cached
 *   and joined like any load.
 * @buf_fd >= 0: into the caller's buffer (a memfd or a dma-buf, writable, not
 *   write-sealed, big enough), borrowed; DONE has fd -1 and DL_DONE_INTO.
 * opts->offset and opts->length are ignored; every other option applies.
 * Overlapping buffer ranges, an extent past EOF, n_ext == 0 or over the limit:
 * -EINVAL (locally where the library can tell) or the daemon's ERROR.
 * DONE's size = the sum of the extents' lengths.
 */
int dmaload_load_extents_path(struct dmaload *dl, const char *path,
			      const struct dmaload_extent *ext, size_t n_ext,
			      int buf_fd, const struct dmaload_opts *opts, uint64_t *id);
int dmaload_load_extents_fd(struct dmaload *dl, int src_fd,
			    const struct dmaload_extent *ext, size_t n_ext,
			    int buf_fd, const struct dmaload_opts *opts, uint64_t *id);
int dmaload_load_extents_path_sync(struct dmaload *dl, const char *path,
				   const struct dmaload_extent *ext, size_t n_ext,
				   int buf_fd, const struct dmaload_opts *opts,
				   struct dmaload_event *ev);
int dmaload_load_extents_fd_sync(struct dmaload *dl, int src_fd,
				 const struct dmaload_extent *ext, size_t n_ext,
				 int buf_fd, const struct dmaload_opts *opts,
				 struct dmaload_event *ev);

/* The range opts->offset / opts->length (DMALOAD_TO_EOF allowed) of the file
 * into the caller's @buf_fd at @buf_offset: one extent. */
int dmaload_load_into_path(struct dmaload *dl, const char *path, int buf_fd,
			   uint64_t buf_offset, const struct dmaload_opts *opts,
			   uint64_t *id);
int dmaload_load_into_fd(struct dmaload *dl, int src_fd, int buf_fd,
			 uint64_t buf_offset, const struct dmaload_opts *opts,
			 uint64_t *id);

/* What buffers the daemon's host offers (INFO). */
struct dmaload_info {
	uint32_t caps;			/* DL_CAP_UDMABUF, DL_CAP_HEAP */
	int udmabuf_err;		/* 0, or why udmabuf is unusable (errno) */
	uint64_t udmabuf_size_limit;	/* bytes per udmabuf; 0 = unknown */
	bool udmabuf_hugetlb;		/* udmabuf takes hugetlb memfds (probed) */
	uint64_t huge_page_size;
	uint32_t huge_pages_total, huge_pages_free;
	uint8_t default_target;		/* enum dl_target of the daemon's config */
	size_t n_heaps;
	char heaps[16][DL_HEAP_NAME_MAX + 1];	/* the first 16 heap names */
};

/* Asks for INFO and waits for the reply. Returns 0, -EOPNOTSUPP from a daemon that
 * has no INFO (no DL_CAP_DMABUF), or -errno. */
int dmaload_info(struct dmaload *dl, struct dmaload_info *info);

/* Huge pages on the daemon's host: the reserved pool and the surplus allowance, from
 * which the kernel hands out huge pages on demand (INFO with DL_CAP_INFO_SURPLUS).
 * struct dmaload_info keeps its layout; this is its companion. */
struct dmaload_hugepages {
	uint64_t page_size;		/* bytes; 0 = no huge pages */
	uint64_t pool_total;		/* reserved pool: vm.nr_hugepages (HugePages_Total) */
	uint64_t pool_free;		/* HugePages_Free minus HugePages_Rsvd */
	uint64_t overcommit;		/* vm.nr_overcommit_hugepages: surplus allowed */
	uint64_t surplus;		/* HugePages_Surp: surplus pages in use now */
	uint64_t reserved[3];		/* 0 */
};

/* Asks for INFO and fills @hp. Returns 0, -EOPNOTSUPP from a daemon that does not
 * report the surplus allowance (no DL_CAP_INFO_SURPLUS), or -errno. */
int dmaload_info_hugepages(struct dmaload *dl, struct dmaload_hugepages *hp);

/* Daemon status: counters and the loads this user may see. */
struct dmaload_status_load {
	uint64_t id, done, total;
	uint32_t pid, uid;
	uint8_t state, method;
	char name[DL_PATH_MAX + 1];
};

struct dmaload_status {
	uint64_t uptime_ms, bytes_loaded, loads_done, loads_failed;
	uint32_t clients, loads_active, loads_queued;
	bool truncated;
	size_t n_loads;
	struct dmaload_status_load *loads;	/* n_loads entries; free with
						 * dmaload_status_free() */
};

/* Asks for STATUS and waits for the reply. Returns 0 or -errno. */
int dmaload_status(struct dmaload *dl, struct dmaload_status *st);
void dmaload_status_free(struct dmaload_status *st);

/* The daemon's cache: loads of the same file range share one read, and finished
 * buffers are kept (under its cache_limit) and handed out again. */
struct dmaload_cache_entry {
	uint64_t offset, size;		/* the file range */
	uint64_t buf_size;		/* the buffer object (0 while loading) */
	uint64_t file_size, dev, ino;
	uint64_t served;		/* DONEs handed out with this buffer */
	uint64_t hits;			/* of which from the kept buffer */
	uint64_t age_ms, idle_ms;	/* since loaded, since last handed out */
	uint32_t uid;			/* who loaded it */
	uint32_t flags;			/* DL_ENTRY_* (pinned, hugetlb, loading) */
	uint8_t method;			/* enum dl_method it was read with */
	char name[DL_PATH_MAX + 1];	/* the path, or "fd (dev M:N ino I)" */
};

struct dmaload_cache_list {
	uint64_t cache_bytes, cache_limit;
	uint32_t n_hidden;		/* other users' entries, not shown */
	bool truncated;
	size_t n_entries;
	struct dmaload_cache_entry *entries;	/* free with dmaload_list_free() */
};

/* Asks for LIST: the cache entries this user may see. Returns 0 or -errno. */
int dmaload_list(struct dmaload *dl, struct dmaload_cache_list *out);
void dmaload_list_free(struct dmaload_cache_list *l);

/* Drops the daemon's kept buffers of @path (made absolute like a load's; every
 * range of it), or all this user may see when @path is NULL. Buffers clients hold
 * stay theirs. Returns the number of entries dropped (>= 1) with their bytes in
 * *@bytes (may be NULL), -ENOENT when none matched, or -errno. */
int dmaload_evict(struct dmaload *dl, const char *path, uint64_t *bytes);

struct dmaload_stats_client {
	uint64_t conn_id, loads, bytes;
	uint64_t throttled_ns;		/* held back by rate limits */
	uint32_t pid, uid;
	char name[DL_NAME_LEN + 1];	/* from its HELLO */
};

struct dmaload_stats {
	uint64_t bytes_read;		/* read from files */
	uint64_t bytes_cached;		/* delivered without a read (hits, joins) */
	uint64_t loads_by_method[DL_STATS_METHODS];	/* loads that read, by enum dl_method */
	uint64_t cache_hits, cache_joins, cache_misses, cache_evictions;
	uint64_t cache_bytes, cache_limit;
	uint32_t cache_entries, cache_pinned;
	size_t n_clients;
	struct dmaload_stats_client *clients;	/* free with dmaload_stats_free() */
};

/* Asks for STATS: counters, and the connections this user may see. 0 or -errno. */
int dmaload_stats(struct dmaload *dl, struct dmaload_stats *st);
void dmaload_stats_free(struct dmaload_stats *st);

/* A readable name of a load state (enum dl_load_state). */
const char *dmaload_state_name(unsigned state);

#ifdef __cplusplus
}
#endif
