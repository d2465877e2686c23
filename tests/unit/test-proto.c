/*
 * test-proto.c: the wire protocol's encoder, decoder and fd passing
 * (proto/dmaload-proto.c), without a daemon.
 *
 * Every message type makes a round trip through dl_encode()/dl_msg_decode(); then
 * every way a datagram can be malformed is fed to the decoder, which must name it
 * with the documented errno. Decoding always works on an exactly-sized heap copy of
 * the datagram, so under ASan a read past its end is caught. Last, dl_send()/dl_recv()
 * over a SOCK_SEQPACKET socketpair: fds pass, and oversize datagrams or extra fds are
 * refused with every received fd closed.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "../lib/check.h"
#include "dmaload-proto.h"
#include "../lib/harness.h"

#define HDR sizeof(struct dl_hdr)

/* The last exact copy given to the decoder; kept so msg.trail stays valid. */
static void *exact_copy;

/* Decodes a heap copy of exactly @len bytes of @buf. */
static int decode(const void *buf, size_t len, int nfds, struct dl_msg *m)
{
	free(exact_copy);
	exact_copy = malloc(len ? len : 1);
	memcpy(exact_copy, buf, len);
	return dl_msg_decode(exact_copy, len, nfds, m);
}

static size_t encode(void *buf, uint16_t type, uint64_t id, const void *payload,
		     size_t plen, const void *trail, size_t tlen)
{
	ssize_t n = dl_encode(buf, DL_MSG_MAX, type, id, payload, plen, trail, tlen);

	CHECKF(n > 0, "dl_encode(type 0x%x) = %zd", type, n);
	return n > 0 ? (size_t)n : 0;
}

static struct dl_hdr *hdr_of(void *buf)
{
	return buf;
}

static char buf[DL_MSG_MAX + 4096];
static struct dl_msg m;

/* ---- round trips ----------------------------------------------------------------- */

static void rt_hello(void)
{
	struct dl_hello h = { .version = 1, .caps = DL_CAPS_V1 };
	size_t n;

	memcpy(h.name, "unit-test-client", 16);
	n = encode(buf, DL_HELLO, 7, &h, sizeof(h), NULL, 0);
	CHECK_U64(n, ==, HDR + sizeof(h));
	CHECK_OK(decode(buf, n, 0, &m));
	CHECK_U64(m.hdr.magic, ==, DL_PROTO_MAGIC);
	CHECK_U64(m.hdr.version, ==, DL_PROTO_VERSION);
	CHECK_U64(m.hdr.type, ==, DL_HELLO);
	CHECK_U64(m.hdr.flags, ==, 0);
	CHECK_U64(m.hdr.len, ==, sizeof(h));
	CHECK_U64(m.hdr.id, ==, 7);
	CHECK(memcmp(&m.u.hello, &h, sizeof(h)) == 0);
	CHECK_U64(m.trail_len, ==, 0);
}

static void rt_load_path(void)
{
	const char *path = "/var/tmp/some file with spaces/model.bin";
	struct dl_load l = {
		.offset = 4096, .length = 12345, .rate_limit = 1000000,
		.flags = DL_LOAD_PROGRESS, .target = DL_TARGET_MEMFD,
		.method = DL_METHOD_DIRECT, .priority = DL_PRIO_BACKGROUND,
		.path_len = (uint32_t)strlen(path),
	};
	size_t n = encode(buf, DL_LOAD, UINT64_MAX, &l, sizeof(l), path, strlen(path));

	CHECK_U64(n, ==, HDR + sizeof(l) + strlen(path));
	CHECK_OK(decode(buf, n, 0, &m));
	CHECK_U64(m.hdr.type, ==, DL_LOAD);
	CHECK_U64(m.hdr.id, ==, UINT64_MAX);
	CHECK(memcmp(&m.u.load, &l, sizeof(l)) == 0);
	CHECK_U64(m.trail_len, ==, strlen(path));
	CHECK(m.trail && memcmp(m.trail, path, strlen(path)) == 0);
}

static void rt_load_path_max(void)
{
	static char path[DL_PATH_MAX];
	struct dl_load l = { .length = DL_LENGTH_TO_EOF, .path_len = DL_PATH_MAX };
	size_t n;

	memset(path, 'a', sizeof(path));
	path[0] = '/';
	n = encode(buf, DL_LOAD, 1, &l, sizeof(l), path, DL_PATH_MAX);
	CHECK_OK(decode(buf, n, 0, &m));
	CHECK_U64(m.trail_len, ==, DL_PATH_MAX);
	CHECK_U64(m.u.load.length, ==, DL_LENGTH_TO_EOF);
}

static void rt_load_fd(void)
{
	struct dl_load l = { .offset = 1, .length = 2, .flags = DL_LOAD_BY_FD };
	size_t n = encode(buf, DL_LOAD, 3, &l, sizeof(l), NULL, 0);

	CHECK_OK(decode(buf, n, 1, &m));
	CHECK_U64(m.u.load.flags, ==, DL_LOAD_BY_FD);
	CHECK_U64(m.u.load.offset, ==, 1);
	CHECK_U64(m.u.load.length, ==, 2);
	CHECK_U64(m.trail_len, ==, 0);
}

static void rt_cancel(void)
{
	struct dl_cancel c = { .load_id = 0x1122334455667788ull };
	size_t n = encode(buf, DL_CANCEL, 9, &c, sizeof(c), NULL, 0);

	CHECK_OK(decode(buf, n, 0, &m));
	CHECK_U64(m.u.cancel.load_id, ==, 0x1122334455667788ull);
	CHECK_U64(m.hdr.id, ==, 9);
}

static void rt_empty(uint16_t type)
{
	size_t n = encode(buf, type, 42, NULL, 0, NULL, 0);

	CHECK_U64(n, ==, HDR);
	CHECK_OK(decode(buf, n, 0, &m));
	CHECK_U64(m.hdr.type, ==, type);
	CHECK_U64(m.hdr.len, ==, 0);
	CHECK_U64(m.hdr.id, ==, 42);
}

static void rt_hello_reply(void)
{
	struct dl_hello_reply h = {
		.version = 1, .caps = DL_CAPS_V1, .max_load_size = 1ull << 40,
		.chunk_size = 4 << 20, .queue_depth = 64,
	};
	size_t n = encode(buf, DL_HELLO_REPLY, 5, &h, sizeof(h), NULL, 0);

	CHECK_OK(decode(buf, n, 0, &m));
	CHECK(memcmp(&m.u.hello_reply, &h, sizeof(h)) == 0);
}

static void rt_accepted(void)
{
	struct dl_accepted a = { .length = 100, .file_size = 200 };
	size_t n = encode(buf, DL_ACCEPTED, 5, &a, sizeof(a), NULL, 0);

	CHECK_OK(decode(buf, n, 0, &m));
	CHECK_U64(m.u.accepted.length, ==, 100);
	CHECK_U64(m.u.accepted.file_size, ==, 200);
}

static void rt_progress(void)
{
	struct dl_progress p = { .done = 10, .total = 20 };
	size_t n = encode(buf, DL_PROGRESS, 5, &p, sizeof(p), NULL, 0);

	CHECK_OK(decode(buf, n, 0, &m));
	CHECK_U64(m.u.progress.done, ==, 10);
	CHECK_U64(m.u.progress.total, ==, 20);
}

static void rt_done(void)
{
	struct dl_done d = {
		.size = 4097, .buf_size = 8192, .elapsed_ns = 123456789,
		.flags = DL_DONE_SEALED, .target = DL_TARGET_MEMFD,
		.method = DL_METHOD_DIRECT, .reason = DL_WHY_ASKED,
	};
	size_t n = encode(buf, DL_DONE, 77, &d, sizeof(d), NULL, 0);

	CHECK_OK(decode(buf, n, 1, &m));
	CHECK(memcmp(&m.u.done, &d, sizeof(d)) == 0);
	/* size == buf_size is fine too */
	d.buf_size = d.size;
	n = encode(buf, DL_DONE, 77, &d, sizeof(d), NULL, 0);
	CHECK_OK(decode(buf, n, 1, &m));
}

static void rt_error(void)
{
	const char *text = "no such file: /x";
	ssize_t n = dl_encode_error(buf, sizeof(buf), 11, -ENOENT, text);

	CHECK_INT(n, ==, (ssize_t)(HDR + sizeof(struct dl_error) + strlen(text)));
	CHECK_OK(decode(buf, (size_t)n, 0, &m));
	CHECK_U64(m.hdr.type, ==, DL_ERROR);
	CHECK_U64(m.hdr.id, ==, 11);
	CHECK_INT(m.u.error.err, ==, ENOENT);	/* negative in, positive on the wire */
	CHECK_U64(m.u.error.msg_len, ==, strlen(text));
	CHECK(m.trail_len == strlen(text) && memcmp(m.trail, text, m.trail_len) == 0);

	n = dl_encode_error(buf, sizeof(buf), 12, EIO, NULL);
	CHECK_INT(n, ==, (ssize_t)(HDR + sizeof(struct dl_error)));
	CHECK_OK(decode(buf, (size_t)n, 0, &m));
	CHECK_INT(m.u.error.err, ==, EIO);
	CHECK_U64(m.u.error.msg_len, ==, 0);
}

static void rt_error_long(void)
{
	static char text[3000];
	ssize_t n;

	memset(text, 'e', sizeof(text) - 1);
	n = dl_encode_error(buf, sizeof(buf), 1, EINVAL, text);
	CHECK_INT(n, ==, (ssize_t)(HDR + sizeof(struct dl_error) + DL_ERRMSG_MAX));
	CHECK_OK(decode(buf, (size_t)n, 0, &m));
	CHECK_U64(m.u.error.msg_len, ==, DL_ERRMSG_MAX);
}

/* Appends one status entry with @name to @trail at *len; returns false if no room. */
static void status_add(char *trail, size_t *len, uint64_t id, const char *name)
{
	struct dl_status_load e = {
		.id = id, .done = id * 10, .total = id * 100, .pid = 1234, .uid = 1000,
		.state = DL_STATE_READING, .method = DL_METHOD_DIRECT,
		.name_len = (uint32_t)strlen(name),
	};
	size_t padded = (strlen(name) + 7) & ~(size_t)7;

	memcpy(trail + *len, &e, sizeof(e));
	memset(trail + *len + sizeof(e), 0, padded);
	memcpy(trail + *len + sizeof(e), name, strlen(name));
	*len += sizeof(e) + padded;
}

static const char *status_names[] = { "", "a", "12345678", "/var/tmp/model.bin" };

static size_t status_build(char *out, uint32_t n_loads, size_t *trail_len_out)
{
	static char trail[4096];
	struct dl_status_reply s = {
		.uptime_ms = 5000, .bytes_loaded = 1 << 30, .loads_done = 3, .loads_failed = 1,
		.clients = 2, .loads_active = 1, .loads_queued = 0, .n_loads = n_loads,
	};
	size_t tl = 0;

	for (uint32_t i = 0; i < 4; i++)
		status_add(trail, &tl, i + 1, status_names[i]);
	*trail_len_out = tl;
	return encode(out, DL_STATUS_REPLY, 99, &s, sizeof(s), trail, tl);
}

static void rt_status_reply(void)
{
	struct dl_status_load e;
	const char *name;
	size_t pos = 0, name_len, tl, n = status_build(buf, 4, &tl);
	int i = 0, r;

	CHECK_OK(decode(buf, n, 0, &m));
	CHECK_U64(m.u.status.n_loads, ==, 4);
	CHECK_U64(m.u.status.bytes_loaded, ==, 1 << 30);
	CHECK_U64(m.trail_len, ==, tl);
	while ((r = dl_status_next(&m, &pos, &e, &name, &name_len)) == 1) {
		if (!CHECK_INT(i, <, 4))
			break;
		CHECK_U64(e.id, ==, (uint64_t)i + 1);
		CHECK_U64(e.total, ==, ((uint64_t)i + 1) * 100);
		CHECK_U64(name_len, ==, strlen(status_names[i]));
		CHECK(memcmp(name, status_names[i], name_len) == 0);
		i++;
	}
	CHECK_INT(r, ==, 0);
	CHECK_INT(i, ==, 4);
	CHECK_U64(pos, ==, tl);
}

static void rt_status_empty(void)
{
	struct dl_status_reply s = { .clients = 1 };
	struct dl_status_load e;
	const char *name;
	size_t pos = 0, name_len;
	size_t n = encode(buf, DL_STATUS_REPLY, 1, &s, sizeof(s), NULL, 0);

	CHECK_OK(decode(buf, n, 0, &m));
	CHECK_INT(dl_status_next(&m, &pos, &e, &name, &name_len), ==, 0);
}

static void rt_names(void)
{
	CHECK_STR(dl_msg_type_name(DL_LOAD), "LOAD");
	CHECK_STR(dl_msg_type_name(DL_DONE), "DONE");
	CHECK_STR(dl_msg_type_name(DL_STATUS_REPLY), "STATUS_REPLY");
	CHECK_STR(dl_msg_type_name(DL_LIST), "LIST");
	CHECK_STR(dl_msg_type_name(DL_EVICT_REPLY), "EVICT_REPLY");
	CHECK_STR(dl_msg_type_name(DL_INFO), "INFO");
	CHECK_STR(dl_msg_type_name(DL_LOAD_EXTENTS), "LOAD_EXTENTS");
	CHECK_STR(dl_msg_type_name(0x0a), "?");
	CHECK_STR(dl_msg_type_name(0xffff), "?");
	CHECK_STR(dl_method_name(DL_METHOD_DIRECT), "direct");
	CHECK_STR(dl_method_name(DL_METHOD_BUFFERED), "buffered");
	CHECK_STR(dl_method_name(DL_METHOD_CFR), "cfr");
	CHECK_STR(dl_method_name(4), "?");
	CHECK_STR(dl_target_name(DL_TARGET_MEMFD), "memfd");
	CHECK_STR(dl_target_name(DL_TARGET_UDMABUF), "udmabuf");
	CHECK_STR(dl_target_name(DL_TARGET_HEAP), "heap");
	CHECK_STR(dl_target_name(4), "?");
	CHECK_STR(dl_msg_type_name(DL_INFO), "INFO");
	CHECK_STR(dl_msg_type_name(DL_INFO_REPLY), "INFO_REPLY");
	for (unsigned r = DL_WHY_DEFAULT; r <= DL_WHY_SMALL; r++)
		CHECKF(strcmp(dl_reason_name(r), "?") != 0, "reason %u has no name", r);
	CHECK_STR(dl_reason_name(DL_WHY_SMALL + 1), "?");
	CHECK_STR(dl_reason_name(200), "?");
}

static void encode_limits(void)
{
	static char big[DL_MSG_MAX];
	struct dl_cancel c = { 1 };

	/* does not fit the caller's buffer */
	CHECK_INT(dl_encode(buf, HDR + sizeof(c) - 1, DL_CANCEL, 1, &c, sizeof(c), NULL, 0),
		  ==, -EMSGSIZE);
	CHECK_INT(dl_encode(buf, HDR + sizeof(c), DL_CANCEL, 1, &c, sizeof(c), NULL, 0),
		  ==, (ssize_t)(HDR + sizeof(c)));
	/* the largest datagram is DL_MSG_MAX, even with a bigger buffer */
	CHECK_INT(dl_encode(buf, sizeof(buf), DL_ERROR, 1, &c, sizeof(c), big,
			    DL_MSG_MAX - HDR - sizeof(c) + 1), ==, -EMSGSIZE);
	CHECK_INT(dl_encode(buf, sizeof(buf), DL_ERROR, 1, &c, sizeof(c), big,
			    DL_MSG_MAX - HDR - sizeof(c)), ==, DL_MSG_MAX);
	CHECK_INT(dl_encode_error(buf, HDR + 4, 1, EIO, "x"), ==, -EMSGSIZE);
}

/* ---- cache messages -------------------------------------------------------------- */

static void rt_load_pin(void)
{
	struct dl_load l = { .length = DL_LENGTH_TO_EOF, .flags = DL_LOAD_PIN, .path_len = 2 };
	size_t n = encode(buf, DL_LOAD, 3, &l, sizeof(l), "/p", 2);

	if (CHECK_OK(decode(buf, n, 0, &m)))
		CHECK_U64(m.u.load.flags, ==, DL_LOAD_PIN);
}

static void rt_evict(void)
{
	struct dl_evict e = { .path_len = 7 };
	size_t n = encode(buf, DL_EVICT, 11, &e, sizeof(e), "/a/file", 7);

	if (CHECK_OK(decode(buf, n, 0, &m))) {
		CHECK_U64(m.hdr.id, ==, 11);
		CHECK_U64(m.u.evict.path_len, ==, 7);
		CHECK(m.trail_len == 7 && memcmp(m.trail, "/a/file", 7) == 0);
	}
	e = (struct dl_evict){ .flags = DL_EVICT_ALL };
	n = encode(buf, DL_EVICT, 12, &e, sizeof(e), NULL, 0);
	if (CHECK_OK(decode(buf, n, 0, &m)))
		CHECK_U64(m.u.evict.flags, ==, DL_EVICT_ALL);
}

static void bad_evict(void)
{
	struct dl_evict e = { .path_len = 0 };
	size_t n;

	n = encode(buf, DL_EVICT, 1, &e, sizeof(e), NULL, 0);	/* no path, not ALL */
	CHECK_ERR(decode(buf, n, 0, &m), -EINVAL);
	e.path_len = 3;
	n = encode(buf, DL_EVICT, 1, &e, sizeof(e), "/a\0", 3);	/* embedded NUL */
	CHECK_ERR(decode(buf, n, 0, &m), -EINVAL);
	e.path_len = 4;						/* length mismatch */
	n = encode(buf, DL_EVICT, 1, &e, sizeof(e), "/ab", 3);
	CHECK_ERR(decode(buf, n, 0, &m), -EBADMSG);
	e = (struct dl_evict){ .flags = DL_EVICT_ALL, .path_len = 2 };	/* ALL with a path */
	n = encode(buf, DL_EVICT, 1, &e, sizeof(e), "/a", 2);
	CHECK_ERR(decode(buf, n, 0, &m), -EINVAL);
	e = (struct dl_evict){ .flags = 2 };			/* undefined flag */
	n = encode(buf, DL_EVICT, 1, &e, sizeof(e), NULL, 0);
	CHECK_ERR(decode(buf, n, 0, &m), -EBADMSG);
	e = (struct dl_evict){ .flags = DL_EVICT_ALL };		/* an fd with it */
	n = encode(buf, DL_EVICT, 1, &e, sizeof(e), NULL, 0);
	CHECK_ERR(decode(buf, n, 1, &m), -EINVAL);
	CHECK_ERR(decode(buf, n - 1, 0, &m), -EBADMSG);		/* short */
}

static void rt_evict_reply(void)
{
	struct dl_evict_reply r = { .bytes = 1ull << 33, .count = 3 };
	size_t n = encode(buf, DL_EVICT_REPLY, 12, &r, sizeof(r), NULL, 0);

	if (CHECK_OK(decode(buf, n, 0, &m))) {
		CHECK_U64(m.u.evict_reply.count, ==, 3);
		CHECK_U64(m.u.evict_reply.bytes, ==, 1ull << 33);
	}
	r.reserved = 1;
	n = encode(buf, DL_EVICT_REPLY, 12, &r, sizeof(r), NULL, 0);
	CHECK_ERR(decode(buf, n, 0, &m), -EBADMSG);
	r.reserved = 0;
	n = encode(buf, DL_EVICT_REPLY, 12, &r, sizeof(r), "x", 1);	/* trailing byte */
	CHECK_ERR(decode(buf, n, 0, &m), -EBADMSG);
}

/* A LIST_REPLY of @n entries named "/f/0", "/f/11", "/f/222"... into buf. */
static size_t list_msg(uint32_t n, uint32_t claimed)
{
	static char tr[4096];
	struct dl_list_reply lr = { .cache_bytes = 1 << 20, .cache_limit = 1 << 30,
				    .n_entries = claimed, .n_hidden = 2 };
	size_t tl = 0;

	memset(tr, 0, sizeof(tr));
	for (uint32_t i = 0; i < n; i++) {
		char name[32];
		int len = snprintf(name, sizeof(name), "/f/%.*s", (int)i + 1, "0123456789");
		struct dl_list_entry e = { .offset = i, .size = 100 + i, .buf_size = 4096,
					   .served = i + 1, .hits = i, .uid = 1000 + i,
					   .flags = i % 2 ? DL_ENTRY_PINNED : 0,
					   .method = DL_METHOD_DIRECT, .name_len = (uint32_t)len };

		memcpy(tr + tl, &e, sizeof(e));
		memcpy(tr + tl + sizeof(e), name, (size_t)len);
		tl += sizeof(e) + (((size_t)len + 7) & ~(size_t)7);
	}
	return encode(buf, DL_LIST_REPLY, 21, &lr, sizeof(lr), tr, tl);
}

static void rt_list_reply(void)
{
	struct dl_list_entry e;
	const char *name;
	size_t pos = 0, name_len, n = list_msg(4, 4);
	uint32_t i = 0;
	int r;

	if (!CHECK_OK(decode(buf, n, 0, &m)))
		return;
	CHECK_U64(m.u.list.n_hidden, ==, 2);
	CHECK_U64(m.u.list.cache_limit, ==, 1 << 30);
	while ((r = dl_list_next(&m, &pos, &e, &name, &name_len)) == 1) {
		char want[32];
		int wl = snprintf(want, sizeof(want), "/f/%.*s", (int)i + 1, "0123456789");

		CHECK_U64(e.size, ==, 100 + i);
		CHECK_U64(e.served, ==, i + 1);
		CHECK_U64(e.uid, ==, 1000 + i);
		CHECK_U64(!!(e.flags & DL_ENTRY_PINNED), ==, i % 2);
		CHECK(name_len == (size_t)wl && memcmp(name, want, name_len) == 0);
		i++;
	}
	CHECK_INT(r, ==, 0);
	CHECK_U64(i, ==, 4);
	n = list_msg(0, 0);
	CHECK_OK(decode(buf, n, 0, &m));
}

static void bad_list_reply(void)
{
	size_t n = list_msg(3, 4);		/* claims one more than it has */

	CHECK_ERR(decode(buf, n, 0, &m), -EBADMSG);
	n = list_msg(3, 2);			/* one fewer */
	CHECK_ERR(decode(buf, n, 0, &m), -EBADMSG);
	n = list_msg(3, 3);
	CHECK_OK(decode(buf, n, 0, &m));
	/* The last entry cut short: its padded name no longer fits. */
	hdr_of(buf)->len -= 8;
	CHECK_ERR(decode(buf, n - 8, 0, &m), -EBADMSG);
	/* A name length past DL_PATH_MAX in the first entry. */
	n = list_msg(1, 1);
	((struct dl_list_entry *)(buf + HDR + sizeof(struct dl_list_reply)))->name_len =
		DL_PATH_MAX + 1;
	CHECK_ERR(decode(buf, n, 0, &m), -EBADMSG);
}

static void rt_stats_reply(void)
{
	struct dl_stats_reply s = { .bytes_read = 12345, .bytes_cached = 678,
				    .loads_by_method = { 0, 1, 2, 3 }, .cache_hits = 4,
				    .cache_joins = 5, .cache_misses = 6, .cache_evictions = 7,
				    .cache_bytes = 8, .cache_limit = 9, .cache_entries = 10,
				    .cache_pinned = 1, .n_clients = 3 };
	struct dl_stats_client c[3], got;
	size_t n;

	memset(c, 0, sizeof(c));
	for (int i = 0; i < 3; i++) {
		c[i] = (struct dl_stats_client){ .conn_id = 10u + i, .loads = i, .bytes = 99,
						 .throttled_ns = 1000u * i, .pid = 1, .uid = 2 };
		snprintf(c[i].name, sizeof(c[i].name), "c%d", i);
	}
	n = encode(buf, DL_STATS_REPLY, 31, &s, sizeof(s), c, sizeof(c));
	if (!CHECK_OK(decode(buf, n, 0, &m)))
		return;
	CHECK_U64(m.u.stats.bytes_read, ==, 12345);
	CHECK_U64(m.u.stats.loads_by_method[DL_METHOD_CFR], ==, 3);
	CHECK_U64(m.u.stats.cache_pinned, ==, 1);
	for (size_t i = 0; i < 3; i++) {
		dl_stats_client_get(&m, i, &got);
		CHECK(memcmp(&got, &c[i], sizeof(got)) == 0);
	}
	/* n_clients off by one either way, a partial entry, a reserved field */
	s.n_clients = 4;
	n = encode(buf, DL_STATS_REPLY, 31, &s, sizeof(s), c, sizeof(c));
	CHECK_ERR(decode(buf, n, 0, &m), -EBADMSG);
	s.n_clients = 2;
	n = encode(buf, DL_STATS_REPLY, 31, &s, sizeof(s), c, sizeof(c));
	CHECK_ERR(decode(buf, n, 0, &m), -EBADMSG);
	n = encode(buf, DL_STATS_REPLY, 31, &s, sizeof(s), c, sizeof(c) - 1);
	CHECK_ERR(decode(buf, n, 0, &m), -EBADMSG);
	s.n_clients = 0;
	s.reserved = 1;
	n = encode(buf, DL_STATS_REPLY, 31, &s, sizeof(s), NULL, 0);
	CHECK_ERR(decode(buf, n, 0, &m), -EBADMSG);
}

/* ---- malformed ------------------------------------------------------------------ */

static size_t good_cancel(void)
{
	struct dl_cancel c = { .load_id = 5 };

	return encode(buf, DL_CANCEL, 1234, &c, sizeof(c), NULL, 0);
}

static void bad_short(void)
{
	size_t n = good_cancel();

	CHECK_ERR(decode(buf, 0, 0, &m), -EBADMSG);
	CHECK_ERR(decode(buf, 1, 0, &m), -EBADMSG);
	CHECK_ERR(decode(buf, HDR - 1, 0, &m), -EBADMSG);
	/* a full header that promises more than was sent */
	CHECK_ERR(decode(buf, n - 1, 0, &m), -EBADMSG);
}

static void bad_header_only(void)
{
	static const uint16_t types[] = {
		DL_HELLO, DL_LOAD, DL_CANCEL, DL_HELLO_REPLY, DL_ACCEPTED, DL_PROGRESS,
		DL_DONE, DL_ERROR, DL_STATUS_REPLY,
	};

	for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
		int nfds = types[i] == DL_DONE ? 1 : 0;
		size_t n = encode(buf, types[i], 1, NULL, 0, NULL, 0);

		CHECKF(decode(buf, n, nfds, &m) == -EBADMSG, "type %s header only: %d",
		       dl_msg_type_name(types[i]), decode(buf, n, nfds, &m));
	}
}

static void bad_short_payload(void)
{
	struct dl_load l = { .path_len = 0 };
	size_t n;

	/* a fixed payload one byte short (hdr.len consistent with it) */
	n = encode(buf, DL_LOAD, 1, &l, sizeof(l) - 1, NULL, 0);
	CHECK_ERR(decode(buf, n, 0, &m), -EBADMSG);
	n = encode(buf, DL_DONE, 1, &l, sizeof(struct dl_done) - 1, NULL, 0);
	CHECK_ERR(decode(buf, n, 1, &m), -EBADMSG);
}

static void bad_len_mismatch(void)
{
	size_t n = good_cancel();

	hdr_of(buf)->len += 1;
	CHECK_ERR(decode(buf, n, 0, &m), -EBADMSG);
	hdr_of(buf)->len -= 2;
	CHECK_ERR(decode(buf, n, 0, &m), -EBADMSG);
	hdr_of(buf)->len = UINT32_MAX;
	CHECK_ERR(decode(buf, n, 0, &m), -EBADMSG);
	/* extra bytes after a fixed-size payload, hdr.len counting them */
	n = good_cancel();
	buf[n] = 0;
	hdr_of(buf)->len += 1;
	CHECK_ERR(decode(buf, n + 1, 0, &m), -EBADMSG);
	n = encode(buf, DL_STATUS, 1, "x", 1, NULL, 0);
	CHECK_ERR(decode(buf, n, 0, &m), -EBADMSG);
	n = encode(buf, DL_OK, 1, NULL, 0, "x", 1);
	CHECK_ERR(decode(buf, n, 0, &m), -EBADMSG);
}

static void bad_magic(void)
{
	size_t n = good_cancel();

	hdr_of(buf)->magic = 0x314d4c44;	/* byte-swapped */
	CHECK_ERR(decode(buf, n, 0, &m), -EBADMSG);
	hdr_of(buf)->magic = 0;
	CHECK_ERR(decode(buf, n, 0, &m), -EBADMSG);
}

static void bad_version(void)
{
	size_t n = good_cancel();

	hdr_of(buf)->version = DL_PROTO_VERSION + 1;
	CHECK_ERR(decode(buf, n, 0, &m), -EPROTONOSUPPORT);
	hdr_of(buf)->version = 0;
	CHECK_ERR(decode(buf, n, 0, &m), -EPROTONOSUPPORT);
	/* the version is judged before the length: a v2 header with another layout */
	hdr_of(buf)->version = 2;
	hdr_of(buf)->len = 999;
	CHECK_ERR(decode(buf, n, 0, &m), -EPROTONOSUPPORT);
}

static void bad_flags(void)
{
	size_t n = good_cancel();

	hdr_of(buf)->flags = 1;
	CHECK_ERR(decode(buf, n, 0, &m), -EBADMSG);
	hdr_of(buf)->flags = 0x80000000u;
	CHECK_ERR(decode(buf, n, 0, &m), -EBADMSG);
}

static void bad_unknown_type(void)
{
	static const uint16_t types[] = { 0, 0x0a, 0x7f, 0x80, 0x8c, 0xffff };

	for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
		size_t n = encode(buf, types[i], 0xabcdef, "xyz", 3, NULL, 0);
		int r = decode(buf, n, 0, &m);

		CHECKF(r == -EOPNOTSUPP, "type 0x%x: %d", types[i], r);
		CHECKF(m.hdr.id == 0xabcdef && m.hdr.type == types[i],
		       "type 0x%x: hdr not filled (id %llu)", types[i],
		       (unsigned long long)m.hdr.id);
	}
}

static size_t load_msg(struct dl_load *l, const char *path, size_t path_len)
{
	return encode(buf, DL_LOAD, 555, l, sizeof(*l), path, path_len);
}

static void bad_load_path(void)
{
	static char longpath[DL_PATH_MAX + 1];
	struct dl_load l = { .length = DL_LENGTH_TO_EOF };
	size_t n;
	int r;

	/* no path */
	l.path_len = 0;
	n = load_msg(&l, NULL, 0);
	CHECK_ERR(decode(buf, n, 0, &m), -EINVAL);
	CHECK_U64(m.hdr.id, ==, 555);
	/* embedded NUL */
	l.path_len = 6;
	n = load_msg(&l, "/a\0b/c", 6);
	CHECK_ERR(decode(buf, n, 0, &m), -EINVAL);
	/* a NUL terminator counted in the length is an embedded NUL too */
	l.path_len = 3;
	n = load_msg(&l, "/a\0", 3);
	CHECK_ERR(decode(buf, n, 0, &m), -EINVAL);
	/* too long */
	memset(longpath, 'p', sizeof(longpath));
	longpath[0] = '/';
	l.path_len = DL_PATH_MAX + 1;
	n = load_msg(&l, longpath, DL_PATH_MAX + 1);
	r = decode(buf, n, 0, &m);
	CHECKF(r == -EINVAL, "path of %d bytes: %d", DL_PATH_MAX + 1, r);
	/* a path and an fd */
	l.path_len = 2;
	n = load_msg(&l, "/x", 2);
	CHECK_ERR(decode(buf, n, 1, &m), -EINVAL);
	CHECK_OK(decode(buf, n, 0, &m));
	/* path_len disagrees with the trailing bytes */
	l.path_len = 3;
	n = load_msg(&l, "/x", 2);
	CHECK_ERR(decode(buf, n, 0, &m), -EBADMSG);
	l.path_len = 1;
	n = load_msg(&l, "/x", 2);
	CHECK_ERR(decode(buf, n, 0, &m), -EBADMSG);
	l.path_len = UINT32_MAX;
	n = load_msg(&l, "/x", 2);
	CHECK_ERR(decode(buf, n, 0, &m), -EBADMSG);
}

static void bad_load_fd(void)
{
	struct dl_load l = { .flags = DL_LOAD_BY_FD, .length = DL_LENGTH_TO_EOF };
	size_t n;

	/* by fd with a path */
	l.path_len = 2;
	n = load_msg(&l, "/x", 2);
	CHECK_ERR(decode(buf, n, 1, &m), -EINVAL);
	/* by fd with 0 or 2 fds */
	l.path_len = 0;
	n = load_msg(&l, NULL, 0);
	CHECK_ERR(decode(buf, n, 0, &m), -EINVAL);
	CHECK_ERR(decode(buf, n, 2, &m), -EINVAL);
	CHECK_OK(decode(buf, n, 1, &m));
	/* other types must carry exactly their fds */
	n = good_cancel();
	CHECK_ERR(decode(buf, n, 1, &m), -EINVAL);
	{
		struct dl_done d = { .size = 1, .buf_size = 1 };

		n = encode(buf, DL_DONE, 1, &d, sizeof(d), NULL, 0);
		CHECK_ERR(decode(buf, n, 0, &m), -EINVAL);
		CHECK_ERR(decode(buf, n, 2, &m), -EINVAL);
	}
	n = encode(buf, DL_STATUS, 1, NULL, 0, NULL, 0);
	CHECK_ERR(decode(buf, n, 1, &m), -EINVAL);
}

/* DL_LOAD_ROOT_FD: a load by path with exactly 1 fd (the root); never by fd. */
static void load_root_fd(void)
{
	struct dl_load l = { .flags = DL_LOAD_ROOT_FD, .length = DL_LENGTH_TO_EOF,
			     .path_len = 2 };
	size_t n = load_msg(&l, "/x", 2);

	CHECK_OK(decode(buf, n, 1, &m));
	CHECK_U64(m.u.load.flags, ==, DL_LOAD_ROOT_FD);
	CHECK_INT(memcmp(m.trail, "/x", 2), ==, 0);
	CHECK_ERR(decode(buf, n, 0, &m), -EINVAL);
	CHECK_ERR(decode(buf, n, 2, &m), -EINVAL);
	l.flags = 0;			/* a path without the flag carries no fd */
	n = load_msg(&l, "/x", 2);
	CHECK_ERR(decode(buf, n, 1, &m), -EINVAL);
	l.flags = DL_LOAD_ROOT_FD | DL_LOAD_BY_FD;
	l.path_len = 0;
	n = load_msg(&l, NULL, 0);
	CHECK_ERR(decode(buf, n, 1, &m), -EINVAL);
}

static void bad_reserved(void)
{
	struct dl_load l = { .length = 1, .path_len = 2 };
	size_t n;

	l.reserved0 = 1;
	n = load_msg(&l, "/x", 2);
	CHECK_ERR(decode(buf, n, 0, &m), -EBADMSG);
	l.reserved0 = 0;
	l.heap_len = 0x100;	/* heap bytes that are not there */
	n = load_msg(&l, "/x", 2);
	CHECK_ERR(decode(buf, n, 0, &m), -EBADMSG);
	l.heap_len = 0;
	l.flags = 1u << 7;	/* an undefined LOAD flag (the next after DL_LOAD_ROOT_FD) */
	n = load_msg(&l, "/x", 2);
	CHECK_ERR(decode(buf, n, 0, &m), -EBADMSG);
	l.flags = 1u << 31;
	n = load_msg(&l, "/x", 2);
	CHECK_ERR(decode(buf, n, 0, &m), -EBADMSG);
}

static void bad_enums(void)
{
	struct dl_load l = { .length = 1, .path_len = 2 };
	size_t n;

	l.target = 4;	/* no such target */
	n = load_msg(&l, "/x", 2);
	CHECK_ERR(decode(buf, n, 0, &m), -EINVAL);
	l.target = 255;
	n = load_msg(&l, "/x", 2);
	CHECK_ERR(decode(buf, n, 0, &m), -EINVAL);
	l.target = DL_TARGET_MEMFD;
	l.method = 4;	/* no such method */
	n = load_msg(&l, "/x", 2);
	CHECK_ERR(decode(buf, n, 0, &m), -EINVAL);
	l.method = DL_METHOD_BUFFERED;
	l.priority = 2;
	n = load_msg(&l, "/x", 2);
	CHECK_ERR(decode(buf, n, 0, &m), -EINVAL);
	l.priority = DL_PRIO_BACKGROUND;
	n = load_msg(&l, "/x", 2);
	CHECK_OK(decode(buf, n, 0, &m));
}

static void bad_error(void)
{
	struct dl_error e = { .err = EIO, .msg_len = 4 };
	size_t n;

	n = encode(buf, DL_ERROR, 1, &e, sizeof(e), "abc", 3);
	CHECK_ERR(decode(buf, n, 0, &m), -EBADMSG);
	n = encode(buf, DL_ERROR, 1, &e, sizeof(e), "abcde", 5);
	CHECK_ERR(decode(buf, n, 0, &m), -EBADMSG);
	n = encode(buf, DL_ERROR, 1, &e, sizeof(e), "abcd", 4);
	CHECK_OK(decode(buf, n, 0, &m));
	e.err = -5;
	n = encode(buf, DL_ERROR, 1, &e, sizeof(e), "abcd", 4);
	CHECK_ERR(decode(buf, n, 0, &m), -EBADMSG);
	{
		static char text[DL_ERRMSG_MAX + 1];

		memset(text, 't', sizeof(text));
		e.err = EIO;
		e.msg_len = DL_ERRMSG_MAX + 1;
		n = encode(buf, DL_ERROR, 1, &e, sizeof(e), text, DL_ERRMSG_MAX + 1);
		CHECK_ERR(decode(buf, n, 0, &m), -EBADMSG);
	}
}

static void bad_status(void)
{
	struct dl_status_reply *s = (void *)(buf + HDR);
	size_t tl, n;

	/* n_loads says one more or one fewer than the entries */
	n = status_build(buf, 5, &tl);
	CHECK_ERR(decode(buf, n, 0, &m), -EBADMSG);
	n = status_build(buf, 3, &tl);
	CHECK_ERR(decode(buf, n, 0, &m), -EBADMSG);
	n = status_build(buf, 0, &tl);
	CHECK_ERR(decode(buf, n, 0, &m), -EBADMSG);
	/* the last entry cut short: in its name padding, its name, its fixed part */
	for (size_t cut = 1; cut <= 8 + sizeof(struct dl_status_load) + 8; cut++) {
		n = status_build(buf, 4, &tl);
		hdr_of(buf)->len -= (uint32_t)cut;
		int r = decode(buf, n - cut, 0, &m);

		if (!CHECKF(r == -EBADMSG, "status cut by %zu bytes: %d", cut, r))
			break;
	}
	/* a name_len beyond the datagram */
	n = status_build(buf, 4, &tl);
	{
		struct dl_status_load *e = (void *)(buf + HDR + sizeof(*s));

		e->name_len = 1000;
		CHECK_ERR(decode(buf, n, 0, &m), -EBADMSG);
		e->name_len = UINT32_MAX;
		CHECK_ERR(decode(buf, n, 0, &m), -EBADMSG);
	}
	/* dl_status_next on a position past the end */
	n = status_build(buf, 4, &tl);
	CHECK_OK(decode(buf, n, 0, &m));
	{
		struct dl_status_load e;
		const char *name;
		size_t pos = tl + 8, name_len;

		CHECK_ERR(dl_status_next(&m, &pos, &e, &name, &name_len), -EBADMSG);
	}
}

static void bad_done(void)
{
	struct dl_done d = { .size = 8193, .buf_size = 8192 };
	size_t n = encode(buf, DL_DONE, 1, &d, sizeof(d), NULL, 0);

	CHECK_ERR(decode(buf, n, 1, &m), -EBADMSG);
}

static void bad_oversize(void)
{
	struct dl_error e = { .err = EIO };
	size_t n = DL_MSG_MAX + 1;
	struct dl_hdr h = {
		.magic = DL_PROTO_MAGIC, .version = DL_PROTO_VERSION, .type = DL_ERROR,
		.len = (uint32_t)(n - HDR), .id = 1,
	};

	memset(buf, 0, n);
	memcpy(buf, &h, sizeof(h));
	e.msg_len = (uint32_t)(n - HDR - sizeof(e));
	memcpy(buf + HDR, &e, sizeof(e));
	CHECK_ERR(decode(buf, n, 0, &m), -EBADMSG);
	/* a STATUS_REPLY the size of a whole datagram is fine if it walks */
	{
		struct dl_status_reply s = { .n_loads = 0 };

		n = encode(buf, DL_STATUS_REPLY, 1, &s, sizeof(s), NULL, 0);
		CHECK_OK(decode(buf, n, 0, &m));
	}
}

/* Every single-byte truncation and every bit flip of a valid LOAD is either decoded
 * or refused with a documented errno, never anything else (and never read out of
 * bounds, which ASan checks). */
static void flips(void)
{
	const char *path = "/var/tmp/x";
	struct dl_load l = { .length = 10, .path_len = (uint32_t)strlen(path) };
	static char orig[256];
	size_t n = load_msg(&l, path, strlen(path));

	memcpy(orig, buf, n);
	for (size_t len = 0; len <= n; len++) {
		int r = decode(orig, len, 0, &m);

		if (!CHECKF(r == -EBADMSG || (len == n && r == 0), "truncated to %zu: %d",
			    len, r))
			return;
	}
	for (size_t bit = 0; bit < n * 8; bit++) {
		int r;

		memcpy(buf, orig, n);
		buf[bit / 8] ^= (char)(1 << (bit % 8));
		r = decode(buf, n, 0, &m);
		if (!CHECKF(r == 0 || r == -EBADMSG || r == -EINVAL || r == -EOPNOTSUPP ||
			    r == -EPROTONOSUPPORT, "bit %zu flipped: %d", bit, r))
			return;
	}
}

/* ---- fd passing ----------------------------------------------------------------- */

static int pair[2] = { -1, -1 };

static bool make_pair(void)
{
	if (pair[0] >= 0)
		return true;
	return CHECKF(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, pair) == 0,
		      "socketpair: %s", strerror(errno));
}

static void send_fd(void)
{
	char path[] = "/tmp/dmaload-proto-XXXXXX";
	int tmp, fdv[DL_MAX_FDS] = { -1, -1, -1 }, fd = -1, nfds = -1, fl;
	struct stat a, b;
	char rbuf[256];
	struct dl_load l = { .flags = DL_LOAD_BY_FD, .length = DL_LENGTH_TO_EOF };
	size_t n;
	ssize_t r;

	if (!make_pair())
		return;
	tmp = mkostemp(path, O_CLOEXEC);
	if (!CHECKF(tmp >= 0, "mkostemp: %s", strerror(errno)))
		return;
	unlink(path);
	n = load_msg(&l, NULL, 0);
	CHECK_OK(dl_send(pair[0], buf, n, &tmp, 1));
	r = dl_recv(pair[1], rbuf, sizeof(rbuf), fdv, DL_MAX_FDS, &nfds);
	fd = fdv[0];
	CHECK_INT(r, ==, (ssize_t)n);
	CHECK_INT(nfds, ==, 1);
	if (CHECK(fd >= 0 && fd != tmp)) {
		CHECK(fstat(tmp, &a) == 0 && fstat(fd, &b) == 0 && a.st_ino == b.st_ino &&
		      a.st_dev == b.st_dev);
		fl = fcntl(fd, F_GETFD);
		CHECKF(fl >= 0 && (fl & FD_CLOEXEC), "received fd not close-on-exec");
		CHECK_OK(dl_msg_decode(rbuf, (size_t)r, nfds, &m));
		close(fd);
	}
	/* and without fds */
	n = good_cancel();
	CHECK_OK(dl_send(pair[0], buf, n, NULL, 0));
	r = dl_recv(pair[1], rbuf, sizeof(rbuf), fdv, DL_MAX_FDS, &nfds);
	CHECK_INT(r, ==, (ssize_t)n);
	CHECK_INT(nfds, ==, 0);
	CHECK(memcmp(rbuf, buf, n) == 0);
	/* dl_send refuses more fds than the protocol allows */
	{
		int many[DL_MAX_FDS + 1] = { tmp, tmp, tmp, tmp };

		CHECK_ERR(dl_send(pair[0], buf, n, many, DL_MAX_FDS + 1), -EINVAL);
		CHECK_ERR(dl_send(pair[0], buf, n, many, -1), -EINVAL);
	}
	close(tmp);
}

static void recv_too_big(void)
{
	static char big[8192];
	int before, after, fd = -1, nfds = -1, tmp;
	char rbuf[100];
	ssize_t r;

	if (!make_pair())
		return;
	tmp = open("/dev/null", O_RDONLY | O_CLOEXEC);
	before = proc_fd_count(0);
	memset(big, 'b', sizeof(big));
	CHECK_OK(dl_send(pair[0], big, sizeof(big), &tmp, 1));
	r = dl_recv(pair[1], rbuf, sizeof(rbuf), &fd, 1, &nfds);
	CHECK_INT(r, ==, -EMSGSIZE);
	CHECK_INT(nfds, ==, 0);
	after = proc_fd_count(0);
	CHECKF(after == before, "fd count %d -> %d: the passed fd leaked", before, after);
	/* the datagram was consumed: the next one arrives intact */
	CHECK_OK(dl_send(pair[0], "next", 4, NULL, 0));
	r = dl_recv(pair[1], rbuf, sizeof(rbuf), &fd, 1, &nfds);
	CHECK_INT(r, ==, 4);
	CHECK(memcmp(rbuf, "next", 4) == 0);
	close(tmp);
}

static void recv_too_many_fds(void)
{
	int before, after, fd = -1, nfds = -1, a, b;
	char rbuf[100];
	ssize_t r;

	if (!make_pair())
		return;
	a = open("/dev/null", O_RDONLY | O_CLOEXEC);
	b = open("/dev/zero", O_RDONLY | O_CLOEXEC);
	before = proc_fd_count(0);
	{
		int two[2] = { a, b };

		CHECK_OK(raw_send_bytes(pair[0], "two fds", 7, two, 2));
	}
	r = dl_recv(pair[1], rbuf, sizeof(rbuf), &fd, 1, &nfds);
	CHECK_INT(r, ==, -EBADMSG);
	CHECK_INT(nfds, ==, 0);
	after = proc_fd_count(0);
	CHECKF(after == before, "fd count %d -> %d: received fds leaked", before, after);
	/* many fds (more than dl_recv's control buffer holds) */
	{
		int many[16];

		for (int i = 0; i < 16; i++)
			many[i] = a;
		CHECK_OK(raw_send_bytes(pair[0], "many", 4, many, 16));
		r = dl_recv(pair[1], rbuf, sizeof(rbuf), &fd, 1, &nfds);
		CHECK_INT(r, ==, -EBADMSG);
		after = proc_fd_count(0);
		CHECKF(after == before, "fd count %d -> %d after 16 fds", before, after);
	}
	/* maxfds 0: one fd is already too many */
	CHECK_OK(raw_send_bytes(pair[0], "one", 3, &a, 1));
	r = dl_recv(pair[1], rbuf, sizeof(rbuf), &fd, 0, &nfds);
	CHECK_INT(r, ==, -EBADMSG);
	after = proc_fd_count(0);
	CHECKF(after == before, "fd count %d -> %d with maxfds 0", before, after);
	close(a);
	close(b);
}

/* dl_recv_drop's callback: counts the fds and checks each is an open /dev/zero. */
static void drop_count(void *data, int fd)
{
	struct stat st;
	int *n = data;

	if (fstat(fd, &st) == 0 && S_ISCHR(st.st_mode) && st.st_rdev == makedev(1, 5))
		(*n)++;
	close(fd);
}

static void recv_drop(void)
{
	int z, before, after, fd = -1, nfds = -1, dropped = 0, three[3];
	char rbuf[100];
	ssize_t r;

	if (!make_pair())
		return;
	z = open("/dev/zero", O_RDONLY | O_CLOEXEC);
	before = proc_fd_count(0);
	for (int i = 0; i < 3; i++)
		three[i] = z;
	CHECK_OK(raw_send_bytes(pair[0], "three", 5, three, 3));
	r = dl_recv_drop(pair[1], rbuf, sizeof(rbuf), &fd, 2, &nfds, drop_count, &dropped);
	CHECK_INT(r, ==, -EBADMSG);
	CHECK_INT(nfds, ==, 0);
	CHECK_INT(dropped, ==, 3);
	after = proc_fd_count(0);
	CHECKF(after == before, "fd count %d -> %d: dropped fds leaked", before, after);
	/* a datagram it takes: the callback is not called */
	CHECK_OK(raw_send_bytes(pair[0], "one", 3, &z, 1));
	r = dl_recv_drop(pair[1], rbuf, sizeof(rbuf), &fd, 2, &nfds, drop_count, &dropped);
	CHECK_INT(r, ==, 3);
	CHECK_INT(nfds, ==, 1);
	CHECK_INT(dropped, ==, 3);
	if (nfds == 1)
		close(fd);
	close(z);
}

static void recv_eof(void)
{
	int p[2], fd = -1, nfds = -1;
	char rbuf[16];

	if (!CHECK(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, p) == 0))
		return;
	close(p[0]);
	CHECK_INT(dl_recv(p[1], rbuf, sizeof(rbuf), &fd, 1, &nfds), ==, 0);
	close(p[1]);
}

/* ---- dma-buf targets and INFO -------------------------------------------------- */

/* LOAD with @path then @heap (heap_len = strlen(heap)) as trailing data. */
static size_t load_heap_msg(struct dl_load *l, const char *path, const char *heap)
{
	char t[DL_PATH_MAX + DL_HEAP_NAME_MAX + 2];
	size_t pl = strlen(path), hl = strlen(heap);

	memcpy(t, path, pl);
	memcpy(t + pl, heap, hl);
	l->path_len = (uint32_t)pl;
	l->heap_len = (uint32_t)hl;
	return encode(buf, DL_LOAD, 556, l, sizeof(*l), t, pl + hl);
}

static void rt_load_targets(void)
{
	struct dl_load l = { .length = 1, .target = DL_TARGET_UDMABUF,
			     .flags = DL_LOAD_DMABUF, .path_len = 2 };
	size_t n;

	n = load_msg(&l, "/x", 2);
	CHECK_OK(decode(buf, n, 0, &m));
	CHECK_INT(m.u.load.target, ==, DL_TARGET_UDMABUF);
	CHECK_INT(m.u.load.flags, ==, DL_LOAD_DMABUF);
	CHECK(m.heap == NULL && m.heap_len == 0);

	l.target = DL_TARGET_HEAP;
	n = load_heap_msg(&l, "/a/b", "system");
	CHECK_OK(decode(buf, n, 0, &m));
	CHECK_INT(m.u.load.path_len, ==, 4);
	CHECK_INT(m.heap_len, ==, 6);
	CHECK(m.heap && memcmp(m.heap, "system", 6) == 0);
	CHECK(memcmp(m.trail, "/a/bsystem", 10) == 0);

	/* by fd: the heap name is all of the trailing data */
	l.flags = DL_LOAD_BY_FD;
	n = load_heap_msg(&l, "", "cma-reserved_1.x");
	CHECK_OK(decode(buf, n, 1, &m));
	CHECK_INT(m.heap_len, ==, 16);
	CHECK(memcmp(m.heap, "cma-reserved_1.x", 16) == 0);
}

static void bad_heap_name(void)
{
	static const char *bad[] = { "", ".", "..", "a/b", "../x", "sys tem", "sys\ntem" };
	char longname[DL_HEAP_NAME_MAX + 2];
	struct dl_load l = { .length = 1, .target = DL_TARGET_HEAP };
	size_t n;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		n = load_heap_msg(&l, "/x", bad[i]);
		CHECKF(decode(buf, n, 0, &m) == -EINVAL, "heap name \"%s\" accepted", bad[i]);
	}
	memset(longname, 'h', sizeof(longname) - 1);
	longname[DL_HEAP_NAME_MAX + 1] = '\0';
	n = load_heap_msg(&l, "/x", longname);
	CHECK_ERR(decode(buf, n, 0, &m), -EINVAL);
	longname[DL_HEAP_NAME_MAX] = '\0';
	n = load_heap_msg(&l, "/x", longname);
	CHECK_OK(decode(buf, n, 0, &m));
	/* a NUL inside the heap name */
	n = load_heap_msg(&l, "/x", "ab");
	((char *)buf)[n - 1] = '\0';
	CHECK_ERR(decode(buf, n, 0, &m), -EINVAL);
	/* a heap name for the other targets */
	l.target = DL_TARGET_UDMABUF;
	n = load_heap_msg(&l, "/x", "system");
	CHECK_ERR(decode(buf, n, 0, &m), -EINVAL);
	l.target = DL_TARGET_MEMFD;
	n = load_heap_msg(&l, "/x", "system");
	CHECK_ERR(decode(buf, n, 0, &m), -EINVAL);
	/* heap_len larger than what is there, and path_len + heap_len near 2^32 */
	l.target = DL_TARGET_HEAP;
	n = load_heap_msg(&l, "/x", "system");
	l.heap_len = 7;
	memcpy(buf + HDR, &l, sizeof(l));
	CHECK_ERR(decode(buf, n, 0, &m), -EBADMSG);
	l.path_len = UINT32_MAX;
	l.heap_len = 8;		/* wraps to 7 in 32 bits */
	memcpy(buf + HDR, &l, sizeof(l));
	CHECK_ERR(decode(buf, n, 0, &m), -EBADMSG);
}

static size_t info_msg(struct dl_info_reply *in, const char *names, size_t len)
{
	in->heaps_len = (uint32_t)len;
	return encode(buf, DL_INFO_REPLY, 7, in, sizeof(*in), names, len);
}

static void rt_info(void)
{
	struct dl_info_reply in = { .caps = DL_CAP_UDMABUF | DL_CAP_HEAP,
				    .udmabuf_size_limit = 64ull << 20,
				    .huge_page_size = 2 << 20, .huge_pages_total = 16,
				    .huge_pages_free = 3, .n_heaps = 2,
				    .default_target = DL_TARGET_AUTO };
	const char *name;
	size_t n, pos = 0;

	n = encode(buf, DL_INFO, 6, NULL, 0, NULL, 0);
	CHECK_OK(decode(buf, n, 0, &m));
	CHECK_INT(m.hdr.type, ==, DL_INFO);
	n = info_msg(&in, "system\0cma\0", 11);
	CHECK_OK(decode(buf, n, 0, &m));
	CHECK_INT(m.u.info.udmabuf_size_limit, ==, 64ull << 20);
	CHECK_INT(m.u.info.huge_pages_total, ==, 16);
	CHECK_INT(dl_info_next_heap(&m, &pos, &name), ==, 1);
	CHECK_STR(name, "system");
	CHECK_INT(dl_info_next_heap(&m, &pos, &name), ==, 1);
	CHECK_STR(name, "cma");
	CHECK_INT(dl_info_next_heap(&m, &pos, &name), ==, 0);
	in.n_heaps = 0;
	in.caps = 0;
	in.udmabuf_err = ENOENT;
	n = info_msg(&in, NULL, 0);
	CHECK_OK(decode(buf, n, 0, &m));
	pos = 0;
	CHECK_INT(dl_info_next_heap(&m, &pos, &name), ==, 0);
	CHECK_INT(m.u.info.udmabuf_err, ==, ENOENT);
}

/* INFO_REPLY with @names (heaps_len = @len) and then @extra bytes of trailing data. */
static size_t info_msg_more(struct dl_info_reply *in, const char *names, size_t len,
			    const void *extra, size_t extra_len)
{
	char trail[256];

	in->heaps_len = (uint32_t)len;
	memcpy(trail, names, len);
	memcpy(trail + len, extra, extra_len);
	return encode(buf, DL_INFO_REPLY, 7, in, sizeof(*in), trail, len + extra_len);
}

/* The optional struct dl_info_surplus after the heap names (DL_CAP_INFO_SURPLUS). */
static void rt_info_surplus(void)
{
	struct dl_info_reply in = { .n_heaps = 2, .huge_page_size = 2 << 20 };
	struct dl_info_surplus sp = { .overcommit_pages = 1ull << 40, .surplus_pages = 9 },
			       got;
	const char *name;
	size_t n, pos = 0;

	n = info_msg_more(&in, "system\0cma\0", 11, &sp, sizeof(sp));
	CHECK_OK(decode(buf, n, 0, &m));
	/* the names stop where the surplus part begins */
	CHECK_INT(dl_info_next_heap(&m, &pos, &name), ==, 1);
	CHECK_STR(name, "system");
	CHECK_INT(dl_info_next_heap(&m, &pos, &name), ==, 1);
	CHECK_STR(name, "cma");
	CHECK_INT(dl_info_next_heap(&m, &pos, &name), ==, 0);
	if (CHECK_INT(dl_info_get_surplus(&m, &got), ==, 1)) {
		CHECK_U64(got.overcommit_pages, ==, 1ull << 40);
		CHECK_U64(got.surplus_pages, ==, 9);
	}
	/* no heaps: the part alone, at an odd offset no more (unaligned reads) */
	in.n_heaps = 0;
	n = info_msg_more(&in, "", 0, &sp, sizeof(sp));
	CHECK_OK(decode(buf, n, 0, &m));
	CHECK_INT(dl_info_get_surplus(&m, &got), ==, 1);
	in.n_heaps = 1;
	n = info_msg_more(&in, "a\0", 2, &sp, sizeof(sp));
	CHECK_OK(decode(buf, n, 0, &m));
	if (CHECK_INT(dl_info_get_surplus(&m, &got), ==, 1))
		CHECK_U64(got.surplus_pages, ==, 9);
	/* without it: none */
	n = info_msg(&in, "a\0", 2);
	CHECK_OK(decode(buf, n, 0, &m));
	CHECK_INT(dl_info_get_surplus(&m, &got), ==, 0);
	/* a message of another type has none */
	n = encode(buf, DL_INFO, 6, NULL, 0, NULL, 0);
	CHECK_OK(decode(buf, n, 0, &m));
	CHECK_INT(dl_info_get_surplus(&m, &got), ==, 0);
}

static void bad_info_surplus(void)
{
	struct dl_info_reply in = { .n_heaps = 1 };
	struct dl_info_surplus sp = { 0 };
	char junk[sizeof(sp) + 1] = { 0 };
	size_t n;

	/* a part of the wrong size */
	n = info_msg_more(&in, "system\0", 7, junk, sizeof(sp) - 1);
	CHECK_ERR(decode(buf, n, 0, &m), -EBADMSG);
	n = info_msg_more(&in, "system\0", 7, junk, sizeof(sp) + 1);
	CHECK_ERR(decode(buf, n, 0, &m), -EBADMSG);
	/* flags and reserved must be 0 */
	sp.flags = 1;
	n = info_msg_more(&in, "system\0", 7, &sp, sizeof(sp));
	CHECK_ERR(decode(buf, n, 0, &m), -EBADMSG);
	sp.flags = 0;
	sp.reserved = 1;
	n = info_msg_more(&in, "system\0", 7, &sp, sizeof(sp));
	CHECK_ERR(decode(buf, n, 0, &m), -EBADMSG);
	/* heaps_len past the trailing data */
	sp.reserved = 0;
	n = info_msg_more(&in, "system\0", 7, &sp, sizeof(sp));
	((struct dl_info_reply *)(buf + HDR))->heaps_len = 7 + sizeof(sp) + 1;
	CHECK_ERR(decode(buf, n, 0, &m), -EBADMSG);
	/* a name that runs into the part (no NUL within heaps_len) */
	n = info_msg_more(&in, "system", 6, &sp, sizeof(sp));
	CHECK_ERR(decode(buf, n, 0, &m), -EBADMSG);
}

static void bad_info(void)
{
	struct dl_info_reply in = { .n_heaps = 1 };
	size_t n;

	n = info_msg(&in, "system", 6);		/* no final NUL */
	CHECK_ERR(decode(buf, n, 0, &m), -EBADMSG);
	n = info_msg(&in, "system\0\0", 8);	/* an empty name */
	CHECK_ERR(decode(buf, n, 0, &m), -EBADMSG);
	n = info_msg(&in, "a/b\0", 4);		/* not a heap name */
	CHECK_ERR(decode(buf, n, 0, &m), -EBADMSG);
	in.n_heaps = 2;				/* count mismatch */
	n = info_msg(&in, "system\0", 7);
	CHECK_ERR(decode(buf, n, 0, &m), -EBADMSG);
	in.n_heaps = 1;
	n = info_msg(&in, "system\0", 7);
	((struct dl_info_reply *)(buf + HDR))->heaps_len = 6;	/* length mismatch */
	CHECK_ERR(decode(buf, n, 0, &m), -EBADMSG);
	in.reserved = 1;
	n = info_msg(&in, "system\0", 7);
	CHECK_ERR(decode(buf, n, 0, &m), -EBADMSG);
	in.reserved = 0;
	in.udmabuf_err = -1;
	n = info_msg(&in, "system\0", 7);
	CHECK_ERR(decode(buf, n, 0, &m), -EBADMSG);
	in.udmabuf_err = 0;
	n = info_msg(&in, "system\0", 7);
	CHECK_OK(decode(buf, n, 0, &m));
	CHECK_ERR(decode(buf, n, 1, &m), -EINVAL);	/* INFO_REPLY carries no fd */
}

/* A LOAD_EXTENTS of @n extents (inline unless DL_EXT_LIST_MEMFD), by path "/f". */
static size_t load_ext_msg(struct dl_load_ext *x, const struct dl_extent *ext, uint32_t n)
{
	static char trail[8 + DL_MSG_MAX];
	size_t tl = 2;

	memcpy(trail, "/f", 2);
	x->n_extents = n;
	if (!x->load.path_len && !(x->load.flags & DL_LOAD_BY_FD))
		x->load.path_len = 2;
	if (x->load.flags & DL_LOAD_BY_FD)
		tl = 0;
	if (!(x->ext_flags & DL_EXT_LIST_MEMFD)) {
		memcpy(trail + tl, ext, n * sizeof(*ext));
		tl += n * sizeof(*ext);
	}
	return encode(buf, DL_LOAD_EXTENTS, 556, x, sizeof(*x), trail, tl);
}

static void rt_load_ext(void)
{
	struct dl_extent e[3] = {
		{ .file_offset = 4096, .length = 100, .buf_offset = 0 },
		{ .file_offset = 0, .length = 4096, .buf_offset = 100 },
		{ .file_offset = 1 << 20, .length = 1, .buf_offset = 1 << 30 },
	};
	struct dl_load_ext x = { .ext_flags = DL_EXT_INTO };
	struct dl_extent got;
	size_t n = load_ext_msg(&x, e, 3);

	CHECK_OK(decode(buf, n, 1, &m));
	CHECK_INT(m.hdr.type, ==, DL_LOAD_EXTENTS);
	CHECK_INT(m.n_ext, ==, 3);
	CHECK_INT(m.u.load_ext.n_extents, ==, 3);
	CHECK(m.trail_len == 2 + 3 * sizeof(struct dl_extent) && !memcmp(m.trail, "/f", 2));
	memcpy(&got, m.ext + 2 * sizeof(got), sizeof(got));
	CHECK(got.file_offset == 1 << 20 && got.length == 1 && got.buf_offset == 1 << 30);
	/* the buffer fd counts: none is one too few, two one too many */
	CHECK_ERR(decode(buf, n, 0, &m), -EINVAL);
	CHECK_ERR(decode(buf, n, 2, &m), -EINVAL);
	/* a new buffer: no fd by path; by fd, the source's */
	x = (struct dl_load_ext){ 0 };
	n = load_ext_msg(&x, e, 3);
	CHECK_OK(decode(buf, n, 0, &m));
	x = (struct dl_load_ext){ .load.flags = DL_LOAD_BY_FD, .ext_flags = DL_EXT_INTO };
	n = load_ext_msg(&x, e, 1);
	CHECK_OK(decode(buf, n, 2, &m));
	CHECK_ERR(decode(buf, n, 1, &m), -EINVAL);
	/* the list in a memfd: no inline extents, one more fd (3 at most) */
	x = (struct dl_load_ext){ .load.flags = DL_LOAD_BY_FD,
				  .ext_flags = DL_EXT_INTO | DL_EXT_LIST_MEMFD };
	n = load_ext_msg(&x, e, DL_MAX_EXTENTS);
	CHECK_OK(decode(buf, n, 3, &m));
	CHECK(m.ext == NULL && m.u.load_ext.n_extents == DL_MAX_EXTENTS);
	CHECK_ERR(decode(buf, n, 2, &m), -EINVAL);
	/* one extent to the end of the file */
	e[0].length = DL_LENGTH_TO_EOF;
	x = (struct dl_load_ext){ 0 };
	n = load_ext_msg(&x, e, 1);
	CHECK_OK(decode(buf, n, 0, &m));
}

static void bad_load_ext(void)
{
	struct dl_extent e[2] = {
		{ .file_offset = 0, .length = 10, .buf_offset = 0 },
		{ .file_offset = 10, .length = 10, .buf_offset = 10 },
	};
	struct dl_load_ext x = { 0 };
	size_t n = load_ext_msg(&x, e, 2);

	/* the count must match the trailing bytes exactly */
	((struct dl_load_ext *)(buf + HDR))->n_extents = 3;
	CHECK_ERR(decode(buf, n, 0, &m), -EBADMSG);
	((struct dl_load_ext *)(buf + HDR))->n_extents = 1;
	CHECK_ERR(decode(buf, n, 0, &m), -EBADMSG);
	CHECK_ERR(decode(buf, n - 1, 0, &m), -EBADMSG);
	/* none, or more than DL_MAX_EXTENTS (in a memfd) */
	x = (struct dl_load_ext){ 0 };
	n = load_ext_msg(&x, e, 0);
	CHECK_ERR(decode(buf, n, 0, &m), -EINVAL);
	x = (struct dl_load_ext){ .ext_flags = DL_EXT_LIST_MEMFD };
	n = load_ext_msg(&x, e, DL_MAX_EXTENTS + 1);
	CHECK_ERR(decode(buf, n, 1, &m), -EINVAL);
	/* sums past 2^64, on either side */
	e[1].file_offset = UINT64_MAX - 5;
	x = (struct dl_load_ext){ 0 };
	n = load_ext_msg(&x, e, 2);
	CHECK_ERR(decode(buf, n, 0, &m), -EINVAL);
	e[1].file_offset = 10;
	e[1].buf_offset = UINT64_MAX;
	n = load_ext_msg(&x, e, 2);
	CHECK_ERR(decode(buf, n, 0, &m), -EINVAL);
	e[1].buf_offset = 10;
	/* to the end of the file only in a list of one */
	e[1].length = DL_LENGTH_TO_EOF;
	n = load_ext_msg(&x, e, 2);
	CHECK_ERR(decode(buf, n, 0, &m), -EINVAL);
	e[1].length = 10;
	/* the LOAD part: offset and length 0, no DETACH, target auto into a buffer */
	x = (struct dl_load_ext){ .load.offset = 1 };
	n = load_ext_msg(&x, e, 2);
	CHECK_ERR(decode(buf, n, 0, &m), -EINVAL);
	x = (struct dl_load_ext){ .load.length = DL_LENGTH_TO_EOF };
	n = load_ext_msg(&x, e, 2);
	CHECK_ERR(decode(buf, n, 0, &m), -EINVAL);
	x = (struct dl_load_ext){ .load.flags = DL_LOAD_DETACH | DL_LOAD_PIN };
	n = load_ext_msg(&x, e, 2);
	CHECK_ERR(decode(buf, n, 0, &m), -EINVAL);
	x = (struct dl_load_ext){ .load.target = DL_TARGET_MEMFD, .ext_flags = DL_EXT_INTO };
	n = load_ext_msg(&x, e, 2);
	CHECK_ERR(decode(buf, n, 1, &m), -EINVAL);
	x = (struct dl_load_ext){ .load.target = DL_TARGET_MEMFD };
	n = load_ext_msg(&x, e, 2);
	CHECK_OK(decode(buf, n, 0, &m));
	/* undefined ext_flags */
	x = (struct dl_load_ext){ .ext_flags = 1u << 7 };
	n = load_ext_msg(&x, e, 2);
	CHECK_ERR(decode(buf, n, 0, &m), -EBADMSG);
	/* fixed part cut short */
	n = encode(buf, DL_LOAD_EXTENTS, 1, &x, sizeof(x) - 1, NULL, 0);
	CHECK_ERR(decode(buf, n, 0, &m), -EBADMSG);
}

static void done_into(void)
{
	struct dl_done d = { .size = 10, .buf_size = 4096, .flags = DL_DONE_INTO };
	size_t n = encode(buf, DL_DONE, 1, &d, sizeof(d), NULL, 0);

	CHECK_OK(decode(buf, n, 0, &m));
	CHECK(m.u.done.flags & DL_DONE_INTO);
	CHECK_ERR(decode(buf, n, 1, &m), -EINVAL);
	d.flags = 0;
	n = encode(buf, DL_DONE, 1, &d, sizeof(d), NULL, 0);
	CHECK_ERR(decode(buf, n, 0, &m), -EINVAL);
	CHECK_OK(decode(buf, n, 1, &m));
}

int main(void)
{
	check_init("proto");

	CASE(rt_hello(), "round trip HELLO");
	CASE(rt_load_path(), "round trip LOAD by path");
	CASE(rt_load_path_max(), "round trip LOAD with a %d-byte path", DL_PATH_MAX);
	CASE(rt_load_fd(), "round trip LOAD by fd");
	CASE(rt_cancel(), "round trip CANCEL");
	CASE(rt_empty(DL_STATUS), "round trip STATUS");
	CASE(rt_hello_reply(), "round trip HELLO_REPLY");
	CASE(rt_accepted(), "round trip ACCEPTED");
	CASE(rt_progress(), "round trip PROGRESS");
	CASE(rt_done(), "round trip DONE");
	CASE(rt_error(), "round trip ERROR");
	CASE(rt_error_long(), "ERROR text truncated to DL_ERRMSG_MAX");
	CASE(rt_empty(DL_OK), "round trip OK");
	CASE(rt_status_reply(), "round trip STATUS_REPLY with 4 entries");
	CASE(rt_status_empty(), "round trip STATUS_REPLY with no entries");
	CASE(rt_names(), "type, method, target and reason names");
	CASE(rt_empty(DL_LIST), "round trip LIST");
	CASE(rt_empty(DL_STATS), "round trip STATS");
	CASE(rt_load_pin(), "round trip LOAD with DL_LOAD_PIN");
	CASE(rt_evict(), "round trip EVICT by path and ALL");
	CASE(rt_evict_reply(), "round trip EVICT_REPLY; reserved and trailing refused");
	CASE(rt_list_reply(), "round trip LIST_REPLY with 4 entries, and none");
	CASE(rt_stats_reply(), "round trip STATS_REPLY with 3 clients; count mismatches");
	CASE(bad_evict(), "malformed: EVICT (no path, NUL, mismatch, ALL+path, flags, fd)");
	CASE(bad_list_reply(), "malformed: LIST_REPLY count mismatch, cut entry, name_len");
	CASE(encode_limits(), "encode: buffer too small and DL_MSG_MAX");

	CASE(bad_short(), "malformed: short datagram");
	CASE(bad_header_only(), "malformed: header only for a type with payload");
	CASE(bad_short_payload(), "malformed: fixed payload one byte short");
	CASE(bad_len_mismatch(), "malformed: hdr.len mismatch both ways");
	CASE(bad_magic(), "malformed: bad magic");
	CASE(bad_version(), "malformed: other version -> EPROTONOSUPPORT");
	CASE(bad_flags(), "malformed: nonzero header flags");
	CASE(bad_unknown_type(), "malformed: unknown type -> EOPNOTSUPP, hdr filled");
	CASE(bad_load_path(), "malformed: LOAD by path (no path, NUL, too long, fd)");
	CASE(bad_load_fd(), "malformed: LOAD by fd (path, 0 or 2 fds); fd counts per type");
	CASE(bad_reserved(), "malformed: LOAD reserved fields and undefined flags");
	CASE(load_root_fd(), "LOAD with DL_LOAD_ROOT_FD: a path and exactly 1 fd, never by fd");
	CASE(bad_enums(), "malformed: LOAD target, method, priority out of range");
	CASE(bad_error(), "malformed: ERROR msg_len mismatch, negative err, too long");
	CASE(bad_status(), "malformed: STATUS_REPLY n_loads mismatch, truncated entries");
	CASE(bad_done(), "malformed: DONE size > buf_size");
	CASE(bad_oversize(), "malformed: datagram larger than DL_MSG_MAX");
	CASE(rt_load_targets(), "round trip LOAD udmabuf and heap:NAME (heap_len)");
	CASE(bad_heap_name(), "malformed: LOAD heap names and heap_len");
	CASE(rt_info(), "round trip INFO and INFO_REPLY with heap names");
	CASE(bad_info(), "malformed: INFO_REPLY names, counts, reserved fields");
	CASE(rt_info_surplus(), "INFO_REPLY with DL_CAP_INFO_SURPLUS's trailing part: round "
	     "trip, the heap names stop before it, none without it");
	CASE(bad_info_surplus(), "INFO_REPLY's surplus part: wrong size, flags, reserved, "
	     "heaps_len past the data, a name running into it");
	CASE(flips(), "every truncation and bit flip of a LOAD decodes or is refused");
	CASE(rt_load_ext(), "round trip LOAD_EXTENTS inline and in a memfd; fd counts");
	CASE(bad_load_ext(), "malformed: LOAD_EXTENTS counts, lengths, sums, LOAD part, flags");
	CASE(done_into(), "DONE with DL_DONE_INTO carries 0 fds, without it 1");

	CASE(send_fd(), "dl_send/dl_recv pass an fd (close-on-exec)");
	CASE(recv_too_big(), "dl_recv: datagram over cap -> EMSGSIZE, fd closed");
	CASE(recv_too_many_fds(), "dl_recv: 2 fds with maxfds 1 -> EBADMSG, fds closed");
	CASE(recv_drop(), "dl_recv_drop: 3 fds with maxfds 2 -> EBADMSG, each handed to "
	     "the callback, not closed; a datagram it takes calls no callback");
	CASE(recv_eof(), "dl_recv: end of stream -> 0");

	free(exact_copy);
	if (pair[0] >= 0) {
		close(pair[0]);
		close(pair[1]);
	}
	return check_finish();
}
