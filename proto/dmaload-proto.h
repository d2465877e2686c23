/*
 * dmaload-proto.h: the dmaloadd wire protocol, shared by the daemon, libdmaload,
 * the tests and the fuzzer. This header is the protocol's definition; docs/PROTOCOL.md
 * explains it in prose.
 *
 * Transport: a SOCK_SEQPACKET Unix socket. One message is one datagram plus the fds
 * that ride with it (SCM_RIGHTS). Every message starts with struct dl_hdr, followed by
 * the fixed payload of its type and then, for some types, trailing data whose length
 * is given inside the fixed payload. hdr.len counts everything after the header, so
 * a datagram is exactly sizeof(struct dl_hdr) + hdr.len bytes; anything else is
 * malformed. All integers are in host byte order: the socket never leaves the machine.
 *
 * Message type numbers are never reused. Requests are below 0x80, replies and events
 * at or above it. Each request carries a client-chosen id; every reply to it carries
 * the same id. A request gets exactly one final reply (DONE, ERROR, OK, HELLO_REPLY,
 * STATUS_REPLY, LIST_REPLY, STATS_REPLY or EVICT_REPLY); a LOAD may get ACCEPTED and PROGRESS events before its final reply.
 * Replies to different requests may interleave in any order.
 *
 * Compatibility: a daemon answers a header whose version it does not speak with
 * ERROR(EPROTONOSUPPORT) and closes the connection; an unknown request type with
 * ERROR(EOPNOTSUPP), keeping the connection, so newer clients can probe.
 *
 * libdmaload's public header, dmaload.h, includes this one; it lists the names from
 * here that are the library's frozen API (methods, targets, priorities, reasons,
 * states, DONE, entry and capability bits, and the limits that size its arrays).
 * Plain C, and C++ through extern "C".
 */
#pragma once

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* libdmaload's public header includes this one, and C++ programs include that. */
#ifdef __cplusplus
#define DL_STATIC_ASSERT static_assert
extern "C" {
#else
#define DL_STATIC_ASSERT _Static_assert
#endif

#define DL_PROTO_MAGIC		0x444c4d31u	/* "1MLD" in memory: catches strangers */
#define DL_PROTO_VERSION	1

/* The largest datagram either side sends or accepts; bigger ones are malformed. */
#define DL_MSG_MAX		65536
/* The most fds one message carries: a LOAD_EXTENTS carries the source (or the
 * client's root), the caller's buffer and the extent-list memfd; others carry 0 or 1. */
#define DL_MAX_FDS		3
/* The most extents one LOAD_EXTENTS carries (inline or in its extent-list memfd). */
#define DL_MAX_EXTENTS		65536
/* Longest path in a LOAD, without a terminating NUL (PATH_MAX - 1). */
#define DL_PATH_MAX		4095
/* Longest ERROR message text. */
#define DL_ERRMSG_MAX		1024
/* Client name given in HELLO (NUL-padded, not necessarily NUL-terminated). */
#define DL_NAME_LEN		32
/* Longest dma-heap name in a LOAD (a file name under /dev/dma_heap/). */
#define DL_HEAP_NAME_MAX	63

enum dl_msg_type {
	/* requests: client -> daemon */
	DL_HELLO	= 0x01,	/* struct dl_hello; no fds */
	DL_LOAD		= 0x02,	/* struct dl_load + path bytes; 0 fds (by path) or 1 (by fd) */
	DL_CANCEL	= 0x03,	/* struct dl_cancel; no fds */
	DL_STATUS	= 0x04,	/* no payload; no fds */
	DL_LIST		= 0x05,	/* no payload; no fds: the cache's entries */
	DL_EVICT	= 0x06,	/* struct dl_evict + path bytes; no fds */
	DL_STATS	= 0x07,	/* no payload; no fds: counters */
	DL_INFO		= 0x08,	/* no payload; no fds: what buffers this host offers */
	DL_LOAD_EXTENTS	= 0x09,	/* struct dl_load_ext + path + heap name + extents;
				 * 0 to 3 fds (see struct dl_load_ext) */

	/* replies and events: daemon -> client */
	DL_HELLO_REPLY	= 0x81,	/* struct dl_hello_reply; no fds */
	DL_ACCEPTED	= 0x82,	/* struct dl_accepted; no fds */
	DL_PROGRESS	= 0x83,	/* struct dl_progress; no fds */
	DL_DONE		= 0x84,	/* struct dl_done; 1 fd: the loaded buffer (0 fds with
				 * DL_DONE_INTO: the caller's buffer was filled) */
	DL_ERROR	= 0x85,	/* struct dl_error + message bytes; no fds */
	DL_OK		= 0x86,	/* no payload; the request succeeded (CANCEL) */
	DL_STATUS_REPLY	= 0x87,	/* struct dl_status_reply + entries; no fds */
	DL_INFO_REPLY	= 0x88,	/* struct dl_info_reply + heap names; no fds */
	DL_LIST_REPLY	= 0x89,	/* struct dl_list_reply + entries; no fds */
	DL_STATS_REPLY	= 0x8a,	/* struct dl_stats_reply + client entries; no fds */
	DL_EVICT_REPLY	= 0x8b,	/* struct dl_evict_reply; no fds */
};

/* Every message begins with this. */
struct dl_hdr {
	uint32_t magic;		/* DL_PROTO_MAGIC */
	uint16_t version;	/* DL_PROTO_VERSION */
	uint16_t type;		/* enum dl_msg_type */
	uint32_t flags;		/* none defined yet; must be 0 */
	uint32_t len;		/* bytes after this header */
	uint64_t id;		/* request id chosen by the client; echoed in replies */
};
DL_STATIC_ASSERT(sizeof(struct dl_hdr) == 24, "dl_hdr is 24 bytes on the wire");

/* Capability bits, exchanged in HELLO / HELLO_REPLY. */
#define DL_CAP_LOAD_FD		(1u << 0)	/* loads by passed fd */
#define DL_CAP_PROGRESS		(1u << 1)	/* PROGRESS events */
#define DL_CAP_CANCEL		(1u << 2)
#define DL_CAP_STATUS		(1u << 3)
#define DL_CAP_SEALED_MEMFD	(1u << 4)	/* memfd targets, sealed read-only */
#define DL_CAP_METHOD_CFR	(1u << 5)	/* method cfr (splice pairs or copy_file_range) */
#define DL_CAP_EXACT_SIZE	(1u << 6)	/* LOAD flag DL_LOAD_EXACT_SIZE */
#define DL_CAP_CACHE		(1u << 7)	/* shared loads, LIST, EVICT, STATS, PIN */
#define DL_CAPS_V1		(DL_CAP_LOAD_FD | DL_CAP_PROGRESS | DL_CAP_CANCEL | \
				 DL_CAP_STATUS | DL_CAP_SEALED_MEMFD | DL_CAP_METHOD_CFR | \
				 DL_CAP_EXACT_SIZE | DL_CAP_CACHE)
/* The daemon knows the INFO request, the LOAD flag DL_LOAD_DMABUF, targets udmabuf
 * and heap and dl_load.heap_len (whether or not this host has any dma-buf device). */
#define DL_CAP_DMABUF		(1u << 8)
#define DL_CAP_UDMABUF		(1u << 9)	/* this host: /dev/udmabuf usable */
#define DL_CAP_HEAP		(1u << 10)	/* this host: at least one dma-heap usable */
#define DL_CAP_DETACH		(1u << 11)	/* the LOAD flag DL_LOAD_DETACH */
#define DL_CAP_ROOT_FD		(1u << 12)	/* the LOAD flag DL_LOAD_ROOT_FD */
#define DL_CAP_LOAD_INTO	(1u << 13)	/* loads into the caller's buffer
						 * (LOAD_EXTENTS with DL_EXT_INTO) */
#define DL_CAP_EXTENTS		(1u << 14)	/* LOAD_EXTENTS: loads of extent lists */
/* From a daemon: it sends INFO_REPLY's trailing struct dl_info_surplus to clients that
 * announce this bit in HELLO. From a client: it takes that part (a client without it
 * gets INFO_REPLY as before). */
#define DL_CAP_INFO_SURPLUS	(1u << 15)

/* HELLO: optional; names the client (for logs and, later, limits). */
struct dl_hello {
	uint32_t version;		/* highest protocol version the client speaks */
	uint32_t caps;			/* DL_CAP_* the client understands */
	char name[DL_NAME_LEN];		/* NUL-padded; may be empty */
};
DL_STATIC_ASSERT(sizeof(struct dl_hello) == 40, "dl_hello size");

struct dl_hello_reply {
	uint32_t version;		/* protocol version the daemon speaks */
	uint32_t caps;			/* DL_CAP_* the daemon offers */
	uint64_t max_load_size;		/* largest LOAD length accepted, bytes */
	uint32_t chunk_size;		/* I/O chunk size in use, bytes */
	uint32_t queue_depth;		/* I/O requests in flight at most */
};
DL_STATIC_ASSERT(sizeof(struct dl_hello_reply) == 24, "dl_hello_reply size");

/* LOAD flags */
#define DL_LOAD_BY_FD		(1u << 0)	/* source is the 1 fd passed; path_len is 0 */
#define DL_LOAD_PROGRESS	(1u << 1)	/* send PROGRESS events (throttled) */
/* The buffer object must be exactly the data's size: no hugetlb buffer rounded up to
 * whole huge pages (for clients that take the size from fstat). */
#define DL_LOAD_EXACT_SIZE	(1u << 2)
/* Keep the finished buffer in the daemon's cache regardless of LRU, until it is
 * evicted explicitly (EVICT) or its file changes. Needs a cache (cache_limit > 0). */
#define DL_LOAD_PIN		(1u << 3)
/* The client wants a dma-buf: target auto then picks udmabuf when this host has it,
 * else a dma-heap, else a memfd (DONE.target says which). Needs DL_CAP_DMABUF. */
#define DL_LOAD_DMABUF		(1u << 4)
/* A preload: the load goes on when the connection closes, into the cache only (so it
 * needs DL_LOAD_PIN and a cache; ERROR EINVAL / EOPNOTSUPP otherwise). Replies are sent
 * while the connection is open. Needs DL_CAP_DETACH. */
#define DL_LOAD_DETACH		(1u << 5)
/* A load by path that carries 1 fd: the client's root directory (an O_PATH fd of "/"
 * will do). The daemon walks the path from it, as the client would. Without it the
 * daemon uses /proc/PID/root of the process that connected, which a daemon with fewer
 * capabilities than the client may not open (a root shell against the hardened
 * unit). Not with DL_LOAD_BY_FD. Needs DL_CAP_ROOT_FD. */
#define DL_LOAD_ROOT_FD		(1u << 6)
#define DL_LOAD_FLAGS_ALL	(DL_LOAD_BY_FD | DL_LOAD_PROGRESS | DL_LOAD_EXACT_SIZE | \
				 DL_LOAD_PIN | DL_LOAD_DMABUF | DL_LOAD_DETACH | \
				 DL_LOAD_ROOT_FD)

/* length value meaning "from offset to the end of the file" */
#define DL_LENGTH_TO_EOF	UINT64_MAX

enum dl_target {
	DL_TARGET_AUTO = 0,
	DL_TARGET_MEMFD = 1,
	DL_TARGET_UDMABUF = 2,		/* a memfd filled as memfds are, made a dma-buf
					 * with UDMABUF_CREATE */
	DL_TARGET_HEAP = 3,		/* a dma-buf from /dev/dma_heap/NAME; the LOAD
					 * names the heap (dl_load.heap_len) */
};

/*
 * How the bytes move. A method the client names is obeyed or the load fails with
 * ERROR(EINVAL) saying why; auto lets the daemon choose per file (and per chunk).
 */
enum dl_method {
	DL_METHOD_AUTO = 0,
	DL_METHOD_DIRECT = 1,		/* O_DIRECT reads into the buffer's mapping */
	DL_METHOD_BUFFERED = 2,		/* page-cache reads */
	DL_METHOD_CFR = 3,		/* copy_file_range, else io_uring splice pairs */
};

enum dl_priority {
	DL_PRIO_FOREGROUND = 0,
	DL_PRIO_BACKGROUND = 1,
};

/*
 * LOAD: trailing data is path_len bytes of path (no NUL, no embedded NUL) when loading
 * by path; carries 0 fds then. With DL_LOAD_BY_FD, path_len is 0 and exactly 1 fd
 * rides along: a readable regular file of the client's. After the path come heap_len
 * bytes of heap name (target heap only: 1 to DL_HEAP_NAME_MAX bytes of [A-Za-z0-9._-],
 * not "." or ".."; 0 for every other target).
 */
struct dl_load {
	uint64_t offset;		/* first byte of the file to load */
	uint64_t length;		/* bytes, or DL_LENGTH_TO_EOF */
	uint64_t rate_limit;		/* bytes/s the client asks for at most; 0 = none */
	uint32_t flags;			/* DL_LOAD_* */
	uint8_t target;			/* enum dl_target */
	uint8_t method;			/* enum dl_method; auto by default */
	uint8_t priority;		/* enum dl_priority */
	uint8_t reserved0;		/* must be 0 */
	uint32_t path_len;		/* bytes of trailing path */
	uint32_t heap_len;		/* bytes of heap name after the path */
};
DL_STATIC_ASSERT(sizeof(struct dl_load) == 40, "dl_load size");

/*
 * One extent of a LOAD_EXTENTS: @length bytes of the file at @file_offset go to the
 * buffer at @buf_offset. Neither sum may pass 2^64. length DL_LENGTH_TO_EOF is allowed
 * in a list of one extent only (the rest of the file).
 */
struct dl_extent {
	uint64_t file_offset;
	uint64_t length;
	uint64_t buf_offset;
};
DL_STATIC_ASSERT(sizeof(struct dl_extent) == 24, "dl_extent size");

/* dl_load_ext.ext_flags */
#define DL_EXT_INTO		(1u << 0)	/* the caller's buffer rides along: fill it,
						 * DONE carries no fd (DL_DONE_INTO) */
#define DL_EXT_LIST_MEMFD	(1u << 1)	/* the extents are not inline: they are the
						 * whole content of a sealed memfd that rides
						 * along (n_extents * 24 bytes exactly) */
#define DL_EXT_FLAGS_ALL	(DL_EXT_INTO | DL_EXT_LIST_MEMFD)

/*
 * LOAD_EXTENTS: a LOAD of a list of extents, into a new buffer or into the caller's.
 * load is a LOAD's fixed part with the same meaning and checks, except that
 * load.offset and load.length must be 0 (the extents say what to read) and
 * DL_LOAD_DETACH is refused (EINVAL). Trailing data: load.path_len bytes of path,
 * load.heap_len bytes of heap name, then (without DL_EXT_LIST_MEMFD) n_extents
 * struct dl_extent, packed. 1 <= n_extents <= DL_MAX_EXTENTS.
 * Fds, in this order, each only when its flag says so (the count must match exactly):
 *   the source (DL_LOAD_BY_FD) or the client's root (DL_LOAD_ROOT_FD);
 *   the caller's buffer (DL_EXT_INTO): a memfd open O_RDWR, not write-sealed, sealed
 *     against shrinking (F_SEAL_SHRINK), or a dma-buf open O_RDWR;
 *   the extent list (DL_EXT_LIST_MEMFD): a memfd sealed with F_SEAL_SHRINK,
 *     F_SEAL_GROW and F_SEAL_WRITE.
 * With DL_EXT_INTO, load.target must be auto (the buffer is what it is) and buffer
 * ranges may not overlap; without it the new buffer's size is the largest
 * buf_offset + length, and bytes no extent covers are zero.
 */
struct dl_load_ext {
	struct dl_load load;		/* offset and length 0 */
	uint32_t n_extents;
	uint32_t ext_flags;		/* DL_EXT_* */
};
DL_STATIC_ASSERT(sizeof(struct dl_load_ext) == 48, "dl_load_ext size");

/* CANCEL: the id of an earlier LOAD on this connection. Replied with OK or ERROR. */
struct dl_cancel {
	uint64_t load_id;
};
DL_STATIC_ASSERT(sizeof(struct dl_cancel) == 8, "dl_cancel size");

/* ACCEPTED: the source is open and checked; the load is queued. */
struct dl_accepted {
	uint64_t length;		/* bytes that will be loaded */
	uint64_t file_size;		/* size of the source file */
};
DL_STATIC_ASSERT(sizeof(struct dl_accepted) == 16, "dl_accepted size");

/* PROGRESS: at most a few per second per load, only when asked for. */
struct dl_progress {
	uint64_t done;
	uint64_t total;
};
DL_STATIC_ASSERT(sizeof(struct dl_progress) == 16, "dl_progress size");

/* DONE flags */
#define DL_DONE_SEALED		(1u << 0)	/* F_SEAL_SHRINK|GROW|WRITE|SEAL are set;
						 * never on dma-bufs (not sealable) */
#define DL_DONE_HUGETLB		(1u << 1)	/* huge pages back the buffer; buf_size is
						 * size rounded up to whole huge pages */
#define DL_DONE_CFR_SYSCALL	(1u << 2)	/* method cfr ran copy_file_range itself;
						 * without it, io_uring splice pairs */
#define DL_DONE_CACHED		(1u << 3)	/* served from the daemon's cache: a dup of
						 * a buffer loaded earlier; nothing was read.
						 * method/reason are that load's */
#define DL_DONE_JOINED		(1u << 4)	/* joined a load of the same range that was
						 * already running: one read for both */
#define DL_DONE_INTO		(1u << 5)	/* the load filled the caller's buffer
						 * (DL_EXT_INTO); no fd rides with this DONE;
						 * buf_size is that buffer's size */

/* why the method was chosen (DONE.reason) */
enum dl_reason {
	DL_WHY_DEFAULT = 0,		/* the configured default */
	DL_WHY_ASKED = 1,		/* the client asked for it */
	DL_WHY_NO_DIRECT = 2,		/* the filesystem refused O_DIRECT */
	DL_WHY_UNALIGNED = 3,		/* offset not aligned for O_DIRECT */
	DL_WHY_EMPTY = 4,		/* nothing to read */
	DL_WHY_SHORT = 5,		/* shorter than one O_DIRECT unit */
	DL_WHY_CACHED = 6,		/* auto: the range is in the page cache */
	DL_WHY_NOT_CACHED = 7,		/* auto: the range is not in the page cache */
	DL_WHY_PARTLY_CACHED = 8,	/* auto: cached chunks buffered, the rest direct;
					 * method names the one that moved more bytes */
	DL_WHY_NO_REOPEN = 9,		/* load by fd: the client may not reopen its fd
					 * (for O_DIRECT), so it was read through that fd;
					 * also when direct was asked */
	DL_WHY_SMALL = 10,		/* auto: a small file (1 MiB at most), read whole
					 * through the page cache in one call */
};

/* DONE: the load finished; the 1 fd is the buffer: a sealed memfd, or a dma-buf
 * (target udmabuf or heap; buf_size is then size rounded up to whole pages). */
struct dl_done {
	uint64_t size;			/* bytes of file data at the start of the buffer */
	uint64_t buf_size;		/* size of the buffer object (>= size) */
	uint64_t elapsed_ns;		/* from LOAD received to DONE sent */
	uint32_t flags;			/* DL_DONE_* */
	uint8_t target;			/* enum dl_target actually used (never AUTO) */
	uint8_t method;			/* enum dl_method actually used (never AUTO) */
	uint8_t reason;			/* enum dl_reason */
	uint8_t reserved;
};
DL_STATIC_ASSERT(sizeof(struct dl_done) == 32, "dl_done size");

/* ERROR: err is a positive errno; msg_len bytes of text follow (no NUL). */
struct dl_error {
	int32_t err;
	uint32_t msg_len;
};
DL_STATIC_ASSERT(sizeof(struct dl_error) == 8, "dl_error size");

/*
 * STATUS_REPLY: daemon-wide counters, then n_loads entries, each a struct
 * dl_status_load followed by name_len bytes of source name, padded with zeros to a
 * multiple of 8. Loads the asking uid may not see (other users', unless it is root)
 * are counted but not listed. Entries stop when the datagram is full (flag TRUNCATED).
 */
#define DL_STATUS_TRUNCATED	(1u << 0)

struct dl_status_reply {
	uint64_t uptime_ms;
	uint64_t bytes_loaded;		/* total bytes delivered in DONE buffers */
	uint64_t loads_done;
	uint64_t loads_failed;		/* ERROR replies to LOADs, cancels included */
	uint32_t clients;		/* connections now */
	uint32_t loads_active;		/* loads being read now */
	uint32_t loads_queued;		/* loads waiting for a slot */
	uint32_t n_loads;		/* entries that follow */
	uint32_t flags;			/* DL_STATUS_* */
	uint32_t reserved;
};
DL_STATIC_ASSERT(sizeof(struct dl_status_reply) == 56, "dl_status_reply size");

enum dl_load_state {
	DL_STATE_OPENING = 0,
	DL_STATE_QUEUED = 1,
	DL_STATE_READING = 2,
	DL_STATE_FINISHING = 3,
};

struct dl_status_load {
	uint64_t id;			/* the LOAD's request id */
	uint64_t done;			/* bytes read so far */
	uint64_t total;			/* bytes to read */
	uint32_t pid;			/* the client's pid (SO_PEERCRED) */
	uint32_t uid;
	uint8_t state;			/* enum dl_load_state */
	uint8_t method;			/* enum dl_method in use */
	uint16_t reserved;
	uint32_t name_len;		/* bytes of name that follow */
};
DL_STATIC_ASSERT(sizeof(struct dl_status_load) == 40, "dl_status_load size");

/*
 * INFO_REPLY: what buffers this host offers, then heaps_len bytes of heap names, each
 * followed by one NUL (n_heaps of them; names as in dl_load's heap name).
 */
struct dl_info_reply {
	uint32_t caps;			/* DL_CAP_UDMABUF / DL_CAP_HEAP, as in HELLO_REPLY */
	int32_t udmabuf_err;		/* 0, or a positive errno: why udmabuf is unusable */
	uint64_t udmabuf_size_limit;	/* bytes one udmabuf may hold (size_limit_mb);
					 * 0 = unknown */
	uint64_t huge_page_size;	/* bytes; 0 = no huge pages */
	uint32_t huge_pages_total;	/* the pool (HugePages_Total) */
	uint32_t huge_pages_free;	/* HugePages_Free minus HugePages_Rsvd */
	uint32_t n_heaps;		/* heap names that follow */
	uint32_t heaps_len;		/* bytes of trailing names */
	uint8_t default_target;		/* enum dl_target of the config's [io] target */
	uint8_t udmabuf_hugetlb;	/* 1: udmabuf takes hugetlb memfds on this kernel */
	uint16_t reserved;
	uint32_t reserved1;
};
DL_STATIC_ASSERT(sizeof(struct dl_info_reply) == 48, "dl_info_reply size");

/*
 * INFO_REPLY's optional last part, after the heap names: huge pages the kernel may
 * hand out beyond the pool, on demand. Sent only to a client whose HELLO announced
 * DL_CAP_INFO_SURPLUS (a fixed payload never grows within version 1, and older
 * clients take trailing bytes past heaps_len as malformed).
 */
struct dl_info_surplus {
	uint64_t overcommit_pages;	/* vm.nr_overcommit_hugepages: the allowance */
	uint64_t surplus_pages;		/* HugePages_Surp: surplus pages in use now */
	uint32_t flags;			/* none defined yet; 0 */
	uint32_t reserved;		/* 0 */
};
DL_STATIC_ASSERT(sizeof(struct dl_info_surplus) == 24, "dl_info_surplus size");

/*
 * LIST_REPLY: the cache's entries, each a struct dl_list_entry followed by name_len
 * bytes of name (the path, or "fd (dev M:N ino I)"), padded with zeros to a multiple
 * of 8. A client that is not root sees only entries loaded by its own uid; the others
 * are counted in n_hidden. Entries stop when the datagram is full (flag TRUNCATED).
 */
#define DL_LIST_TRUNCATED	(1u << 0)

struct dl_list_reply {
	uint64_t cache_bytes;		/* buffer bytes the cache holds (all entries) */
	uint64_t cache_limit;		/* the budget, bytes; 0 = finished loads not kept */
	uint32_t n_entries;		/* entries that follow */
	uint32_t n_hidden;		/* entries not shown to this client */
	uint32_t flags;			/* DL_LIST_* */
	uint32_t reserved;
};
DL_STATIC_ASSERT(sizeof(struct dl_list_reply) == 32, "dl_list_reply size");

/* dl_list_entry.flags */
#define DL_ENTRY_PINNED		(1u << 0)
#define DL_ENTRY_HUGETLB	(1u << 1)
#define DL_ENTRY_LOADING	(1u << 2)	/* still being read; no buffer kept yet */

struct dl_list_entry {
	uint64_t offset;		/* file range of the buffer */
	uint64_t size;			/* bytes of data */
	uint64_t buf_size;		/* size of the buffer object (hugetlb: rounded) */
	uint64_t file_size;
	uint64_t dev, ino;		/* the file (makedev numbering) */
	uint64_t served;		/* DONEs handed out with this buffer (the first
					 * load's, joins and cache hits) */
	uint64_t hits;			/* of which from the finished cache entry */
	uint64_t age_ms;		/* since the buffer was loaded */
	uint64_t idle_ms;		/* since it was last handed out */
	uint32_t uid;			/* who loaded it first */
	uint32_t flags;			/* DL_ENTRY_* */
	uint8_t method;			/* enum dl_method it was loaded with */
	uint8_t reserved[3];
	uint32_t name_len;		/* bytes of name that follow */
};
DL_STATIC_ASSERT(sizeof(struct dl_list_entry) == 96, "dl_list_entry size");

/*
 * EVICT: drops cached buffers. By path: path_len bytes of absolute path follow, and
 * every entry loaded under that path goes (all its ranges). With DL_EVICT_ALL,
 * path_len is 0 and every entry goes. A client that is not root evicts only entries
 * its uid loaded. Replied with EVICT_REPLY, or ERROR(ENOENT) when nothing matched.
 * Clients holding a buffer keep it: the daemon only closes its own reference.
 */
#define DL_EVICT_ALL		(1u << 0)

struct dl_evict {
	uint32_t flags;			/* DL_EVICT_* */
	uint32_t path_len;		/* bytes of trailing path */
};
DL_STATIC_ASSERT(sizeof(struct dl_evict) == 8, "dl_evict size");

struct dl_evict_reply {
	uint64_t bytes;			/* buffer bytes dropped */
	uint32_t count;			/* entries dropped */
	uint32_t reserved;
};
DL_STATIC_ASSERT(sizeof(struct dl_evict_reply) == 16, "dl_evict_reply size");

/*
 * STATS_REPLY: daemon-wide counters, then n_clients struct dl_stats_client entries
 * (fixed size, no trailing names). A client that is not root gets only the entries of
 * its own uid's connections.
 */
#define DL_STATS_METHODS	4	/* loads_by_method[] is indexed by enum dl_method */

struct dl_stats_reply {
	uint64_t bytes_read;		/* bytes read from files (disk or page cache) */
	uint64_t bytes_cached;		/* bytes handed out without a read: cache hits
					 * and joined loads */
	uint64_t loads_by_method[DL_STATS_METHODS]; /* loads that read, per method
					 * used ([0], auto, stays 0) */
	uint64_t cache_hits;		/* LOADs served by a finished cache entry */
	uint64_t cache_joins;		/* LOADs that joined a running load */
	uint64_t cache_misses;		/* LOADs that had to read (cache on or off) */
	uint64_t cache_evictions;	/* entries dropped: budget, EVICT, stale */
	uint64_t cache_bytes;		/* buffer bytes held now */
	uint64_t cache_limit;		/* the budget, bytes */
	uint32_t cache_entries;		/* finished buffers held now */
	uint32_t cache_pinned;		/* of which pinned */
	uint32_t n_clients;		/* entries that follow */
	uint32_t reserved;
};
DL_STATIC_ASSERT(sizeof(struct dl_stats_reply) == 112, "dl_stats_reply size");

struct dl_stats_client {
	uint64_t conn_id;		/* the daemon's connection number (logs) */
	uint64_t loads;			/* LOADs finished with DONE */
	uint64_t bytes;			/* bytes delivered in those DONEs */
	uint64_t throttled_ns;		/* time spent held back by rate limits */
	uint32_t pid, uid;
	char name[DL_NAME_LEN];		/* from HELLO; NUL-padded */
};
DL_STATIC_ASSERT(sizeof(struct dl_stats_client) == 72, "dl_stats_client size");

/* ---- encode / decode ------------------------------------------------------------ */

/*
 * A decoded message. Pointers point into the buffer given to dl_msg_decode() and are
 * valid as long as it is. Only the member matching hdr.type is set; trail/trail_len
 * is the trailing data (path, error text, status entries), if the type has any.
 */
struct dl_msg {
	struct dl_hdr hdr;
	union {
		struct dl_hello hello;
		struct dl_hello_reply hello_reply;
		struct dl_load load;	/* LOAD, and LOAD_EXTENTS's first part */
		struct dl_load_ext load_ext;
		struct dl_cancel cancel;
		struct dl_accepted accepted;
		struct dl_progress progress;
		struct dl_done done;
		struct dl_error error;
		struct dl_status_reply status;
		struct dl_info_reply info;
		struct dl_list_reply list;
		struct dl_evict evict;
		struct dl_evict_reply evict_reply;
		struct dl_stats_reply stats;
	} u;
	const char *trail;
	size_t trail_len;
	/* LOAD only: the heap name that follows the path (heap_len bytes), else NULL */
	const char *heap;
	size_t heap_len;
	/* LOAD_EXTENTS only: the inline extents (n_ext struct dl_extent, unaligned: copy
	 * them out with memcpy), else NULL */
	const char *ext;
	size_t n_ext;
};

/* Checks @n extents at @ext (unaligned): 1 <= n <= DL_MAX_EXTENTS, no sum past 2^64,
 * DL_LENGTH_TO_EOF only in a list of one. Returns 0 or -EINVAL. Overlaps are the
 * daemon's to find (it sorts the list). */
int dl_extents_check(const void *ext, size_t n);

/*
 * Checks @len bytes at @buf, carrying @nfds fds, against the protocol: header magic,
 * version and flags, hdr.len against @len exactly, the type's fixed payload size, the
 * trailing-data length, reserved fields, and the fd count the type requires.
 * Returns 0 and fills @out, or a negative errno:
 *   -EBADMSG          malformed (short, long, length mismatch, bad magic, bad field)
 *   -EPROTONOSUPPORT  another protocol version
 *   -EOPNOTSUPP       unknown message type (out->hdr is valid: the id can be echoed)
 *   -EINVAL           known type, bad fd count or bad field values
 * On -EOPNOTSUPP and -EINVAL, out->hdr is filled so the sender can be answered.
 */
int dl_msg_decode(const void *buf, size_t len, int nfds, struct dl_msg *out);

/* Walks INFO_REPLY heap names. *pos starts at 0. Returns 1 and sets @name (NUL-
 * terminated, inside the message) for the next name, 0 at the end. */
int dl_info_next_heap(const struct dl_msg *m, size_t *pos, const char **name);
/* INFO_REPLY's struct dl_info_surplus: 1 and *out when the message has it, else 0. */
int dl_info_get_surplus(const struct dl_msg *m, struct dl_info_surplus *out);

/* Whether @name (@len bytes, no NUL needed) is a valid heap name. */
int dl_heap_name_ok(const char *name, size_t len);

/* Walks STATUS_REPLY entries. *pos starts at 0. Returns 1 and fills @ent / @name /
 * @name_len for the next entry, 0 at the end, -EBADMSG when an entry is malformed. */
int dl_status_next(const struct dl_msg *m, size_t *pos, struct dl_status_load *ent,
		   const char **name, size_t *name_len);

/* Walks LIST_REPLY entries the same way. */
int dl_list_next(const struct dl_msg *m, size_t *pos, struct dl_list_entry *ent,
		 const char **name, size_t *name_len);

/* The @i-th STATS_REPLY client entry (i < n_clients; the decoder checked the size). */
void dl_stats_client_get(const struct dl_msg *m, size_t i, struct dl_stats_client *out);

/*
 * Encoders write a whole message into @buf (@cap bytes) and return its length, or
 * -EMSGSIZE when it does not fit. They never fail otherwise.
 */
ssize_t dl_encode(void *buf, size_t cap, uint16_t type, uint64_t id,
		  const void *payload, size_t payload_len,
		  const void *trail, size_t trail_len);
ssize_t dl_encode_error(void *buf, size_t cap, uint64_t id, int err, const char *msg);

/* A short constant name for a message type, "?" for unknown ones. */
const char *dl_msg_type_name(unsigned type);
const char *dl_method_name(unsigned method);
const char *dl_target_name(unsigned target);
const char *dl_reason_name(unsigned reason);

/* ---- fd passing ----------------------------------------------------------------- */

/*
 * Sends one datagram with @nfds fds (0..DL_MAX_FDS) attached, MSG_NOSIGNAL. Borrows
 * the fds (the caller still owns them). Returns 0, or -errno (-EAGAIN on a full
 * non-blocking socket; nothing was sent then).
 */
int dl_send(int sock, const void *buf, size_t len, const int *fds, int nfds);

/*
 * Receives one datagram into @buf (@cap bytes) with MSG_CMSG_CLOEXEC. Up to @maxfds
 * fds are stored in @fds and their count in *@nfds; the caller owns them. Returns the
 * datagram's length, 0 at end of stream, or -errno. A datagram longer than @cap
 * returns -EMSGSIZE and one with more fds than @maxfds (or of a kind other than
 * SCM_RIGHTS) -EBADMSG; in both cases the datagram is consumed and every fd that came
 * with it is closed.
 */
ssize_t dl_recv(int sock, void *buf, size_t cap, int *fds, int maxfds, int *nfds);
/* dl_recv, but the fds of a refused datagram go to @drop(@data, fd) instead of
 * close(2): the daemon's loop must not close a client's file, whose flush (FUSE, NFS)
 * can wait for ever. */
ssize_t dl_recv_drop(int sock, void *buf, size_t cap, int *fds, int maxfds, int *nfds,
		     void (*drop)(void *data, int fd), void *data);

#ifdef __cplusplus
}
#endif
