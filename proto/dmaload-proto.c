/*
 * dmaload-proto.c: encoding, decoding and fd passing for the wire protocol in
 * dmaload-proto.h. The decoder trusts nothing: every length is checked against the
 * datagram before a byte of payload is read, and the fd count against the type, so
 * the daemon can hand it any datagram a client sends (the fuzzer does exactly that).
 * Nothing here allocates; nothing here keeps state.
 */
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "dmaload-proto.h"

/* How each type looks on the wire: fixed payload size, whether trailing data may
 * follow, and how many fds it must carry (-1: decided by its fields). */
struct type_rule {
	uint16_t type;
	uint16_t fixed;
	int8_t fds;
	uint8_t trailing;
};

static const struct type_rule rules[] = {
	{ DL_HELLO, sizeof(struct dl_hello), 0, 0 },
	{ DL_LOAD, sizeof(struct dl_load), -1, 1 },
	{ DL_LOAD_EXTENTS, sizeof(struct dl_load_ext), -1, 1 },
	{ DL_CANCEL, sizeof(struct dl_cancel), 0, 0 },
	{ DL_STATUS, 0, 0, 0 },
	{ DL_INFO, 0, 0, 0 },
	{ DL_LIST, 0, 0, 0 },
	{ DL_EVICT, sizeof(struct dl_evict), 0, 1 },
	{ DL_STATS, 0, 0, 0 },
	{ DL_HELLO_REPLY, sizeof(struct dl_hello_reply), 0, 0 },
	{ DL_ACCEPTED, sizeof(struct dl_accepted), 0, 0 },
	{ DL_PROGRESS, sizeof(struct dl_progress), 0, 0 },
	{ DL_DONE, sizeof(struct dl_done), -1, 0 },
	{ DL_ERROR, sizeof(struct dl_error), 0, 1 },
	{ DL_OK, 0, 0, 0 },
	{ DL_STATUS_REPLY, sizeof(struct dl_status_reply), 0, 1 },
	{ DL_INFO_REPLY, sizeof(struct dl_info_reply), 0, 1 },
	{ DL_LIST_REPLY, sizeof(struct dl_list_reply), 0, 1 },
	{ DL_STATS_REPLY, sizeof(struct dl_stats_reply), 0, 1 },
	{ DL_EVICT_REPLY, sizeof(struct dl_evict_reply), 0, 0 },
};

static const struct type_rule *rule_find(unsigned type)
{
	for (size_t i = 0; i < sizeof(rules) / sizeof(rules[0]); i++)
		if (rules[i].type == type)
			return &rules[i];
	return NULL;
}

int dl_heap_name_ok(const char *name, size_t len)
{
	if (len == 0 || len > DL_HEAP_NAME_MAX)
		return 0;
	/* a file name under /dev/dma_heap/: no way out of that directory */
	if ((len == 1 && name[0] == '.') || (len == 2 && name[0] == '.' && name[1] == '.'))
		return 0;
	for (size_t i = 0; i < len; i++) {
		char c = name[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		      (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-'))
			return 0;
	}
	return 1;
}

/* LOAD (and LOAD_EXTENTS's first part): trailing path and heap name lengths, flags
 * and fd count must agree. @extra_trail bytes of trailing data follow the heap name
 * and @extra_fds fds follow the source's or root's (LOAD_EXTENTS). */
static int check_load(struct dl_msg *m, int nfds, uint64_t extra_trail, int extra_fds)
{
	const struct dl_load *l = &m->u.load;
	const char *trail = m->trail;

	if (l->reserved0 || (l->flags & ~DL_LOAD_FLAGS_ALL))
		return -EBADMSG;
	/* 64-bit sums: 32-bit fields cannot wrap them */
	if ((uint64_t)l->path_len + l->heap_len + extra_trail != m->trail_len)
		return -EBADMSG;
	nfds -= extra_fds;
	if (l->flags & DL_LOAD_BY_FD) {
		if (l->path_len != 0 || nfds != 1 || (l->flags & DL_LOAD_ROOT_FD))
			return -EINVAL;
	} else {
		if (nfds != !!(l->flags & DL_LOAD_ROOT_FD) || l->path_len == 0 ||
		    l->path_len > DL_PATH_MAX)
			return -EINVAL;
		if (memchr(trail, '\0', l->path_len))
			return -EINVAL;
	}
	if (l->target > DL_TARGET_HEAP || l->method > DL_METHOD_CFR ||
	    l->priority > DL_PRIO_BACKGROUND)
		return -EINVAL;
	if (l->target == DL_TARGET_HEAP) {
		if (!dl_heap_name_ok(trail + l->path_len, l->heap_len))
			return -EINVAL;
		m->heap = trail + l->path_len;
		m->heap_len = l->heap_len;
	} else if (l->heap_len) {
		return -EINVAL;		/* a heap name for a target that has none */
	}
	return 0;
}

int dl_extents_check(const void *ext, size_t n)
{
	if (n == 0 || n > DL_MAX_EXTENTS)
		return -EINVAL;
	for (size_t i = 0; i < n; i++) {
		struct dl_extent e;

		memcpy(&e, (const char *)ext + i * sizeof(e), sizeof(e));
		if (e.length == DL_LENGTH_TO_EOF) {
			if (n != 1)
				return -EINVAL;
			continue;
		}
		if (e.file_offset + e.length < e.file_offset ||
		    e.buf_offset + e.length < e.buf_offset)
			return -EINVAL;
	}
	return 0;
}

/* LOAD_EXTENTS: the LOAD part, then the extents inline (or the memfd's fd), and the
 * caller's buffer's fd. */
static int check_load_ext(struct dl_msg *m, int nfds)
{
	const struct dl_load_ext *x = &m->u.load_ext;
	bool in_memfd = x->ext_flags & DL_EXT_LIST_MEMFD;
	uint64_t ext_bytes = in_memfd ? 0 : (uint64_t)x->n_extents * sizeof(struct dl_extent);
	int extra_fds = !!(x->ext_flags & DL_EXT_INTO) + in_memfd;
	int r;

	if (x->ext_flags & ~DL_EXT_FLAGS_ALL)
		return -EBADMSG;
	r = check_load(m, nfds, ext_bytes, extra_fds);
	if (r < 0)
		return r;
	if (x->load.offset || x->load.length || (x->load.flags & DL_LOAD_DETACH))
		return -EINVAL;
	if ((x->ext_flags & DL_EXT_INTO) && x->load.target != DL_TARGET_AUTO)
		return -EINVAL;
	if (x->n_extents == 0 || x->n_extents > DL_MAX_EXTENTS)
		return -EINVAL;
	if (in_memfd)
		return 0;
	m->ext = m->trail + x->load.path_len + x->load.heap_len;
	m->n_ext = x->n_extents;
	return dl_extents_check(m->ext, m->n_ext);
}

/* INFO_REPLY: the trailing data is heaps_len bytes of n_heaps NUL-terminated valid
 * names, then optionally a struct dl_info_surplus (flags and reserved 0). */
static int check_info(const struct dl_msg *m)
{
	const struct dl_info_reply *in = &m->u.info;
	size_t pos = 0, names = in->heaps_len;
	uint32_t n = 0;

	if (in->reserved || in->reserved1 || in->udmabuf_err < 0)
		return -EBADMSG;
	if (names != m->trail_len) {
		struct dl_info_surplus sp;

		if (names > m->trail_len || m->trail_len - names != sizeof(sp))
			return -EBADMSG;
		memcpy(&sp, m->trail + names, sizeof(sp));
		if (sp.flags || sp.reserved)
			return -EBADMSG;
	}
	while (pos < names) {
		const char *end = memchr(m->trail + pos, '\0', names - pos);

		if (!end || !dl_heap_name_ok(m->trail + pos, (size_t)(end - m->trail) - pos))
			return -EBADMSG;
		pos = (size_t)(end - m->trail) + 1;
		n++;
	}
	return n == in->n_heaps ? 0 : -EBADMSG;
}

int dl_info_next_heap(const struct dl_msg *m, size_t *pos, const char **name)
{
	if (m->hdr.type != DL_INFO_REPLY || *pos >= m->u.info.heaps_len)
		return 0;
	/* dl_msg_decode() checked that every name ends in a NUL inside the names */
	*name = m->trail + *pos;
	*pos += strlen(*name) + 1;
	return 1;
}

int dl_info_get_surplus(const struct dl_msg *m, struct dl_info_surplus *out)
{
	if (m->hdr.type != DL_INFO_REPLY ||
	    m->trail_len != (size_t)m->u.info.heaps_len + sizeof(*out))
		return 0;
	memcpy(out, m->trail + m->u.info.heaps_len, sizeof(*out));	/* unaligned */
	return 1;
}

/* STATUS_REPLY: the entries must walk exactly to the end of the trailing data. */
static int check_status(const struct dl_msg *m)
{
	struct dl_status_load ent;
	const char *name;
	size_t pos = 0, name_len;
	uint32_t n = 0;
	int r;

	while ((r = dl_status_next(m, &pos, &ent, &name, &name_len)) == 1)
		n++;
	if (r < 0 || n != m->u.status.n_loads)
		return -EBADMSG;
	return 0;
}

/* LIST_REPLY: likewise. */
static int check_list(const struct dl_msg *m)
{
	struct dl_list_entry ent;
	const char *name;
	size_t pos = 0, name_len;
	uint32_t n = 0;
	int r;

	if (m->u.list.reserved)
		return -EBADMSG;
	while ((r = dl_list_next(m, &pos, &ent, &name, &name_len)) == 1)
		n++;
	if (r < 0 || n != m->u.list.n_entries)
		return -EBADMSG;
	return 0;
}

/* EVICT: a path, or DL_EVICT_ALL and none. */
static int check_evict(const struct dl_evict *e, size_t trail_len, const char *trail)
{
	if (e->flags & ~DL_EVICT_ALL)
		return -EBADMSG;
	if (e->path_len != trail_len)
		return -EBADMSG;
	if (e->flags & DL_EVICT_ALL)
		return trail_len == 0 ? 0 : -EINVAL;
	if (trail_len == 0 || trail_len > DL_PATH_MAX || memchr(trail, '\0', trail_len))
		return -EINVAL;
	return 0;
}

int dl_msg_decode(const void *buf, size_t len, int nfds, struct dl_msg *out)
{
	const struct type_rule *rule;
	const char *p = buf;
	size_t body;
	int r;

	memset(out, 0, sizeof(*out));
	if (len < sizeof(struct dl_hdr) || len > DL_MSG_MAX)
		return -EBADMSG;
	memcpy(&out->hdr, p, sizeof(out->hdr));
	if (out->hdr.magic != DL_PROTO_MAGIC)
		return -EBADMSG;
	if (out->hdr.version != DL_PROTO_VERSION)
		return -EPROTONOSUPPORT;
	body = len - sizeof(struct dl_hdr);
	if (out->hdr.len != body || out->hdr.flags != 0)
		return -EBADMSG;
	rule = rule_find(out->hdr.type);
	if (!rule)
		return -EOPNOTSUPP;
	if (body < rule->fixed || (!rule->trailing && body != rule->fixed))
		return -EBADMSG;
	memcpy(&out->u, p + sizeof(struct dl_hdr), rule->fixed);
	out->trail = p + sizeof(struct dl_hdr) + rule->fixed;
	out->trail_len = body - rule->fixed;
	if (rule->fds >= 0 && nfds != rule->fds)
		return -EINVAL;

	switch (out->hdr.type) {
	case DL_LOAD:
		return check_load(out, nfds, 0, 0);
	case DL_LOAD_EXTENTS:
		return check_load_ext(out, nfds);
	case DL_INFO_REPLY:
		return check_info(out);
	case DL_ERROR:
		if (out->u.error.msg_len != out->trail_len ||
		    out->u.error.msg_len > DL_ERRMSG_MAX || out->u.error.err < 0)
			return -EBADMSG;
		return 0;
	case DL_STATUS_REPLY:
		r = check_status(out);
		return r;
	case DL_DONE:
		if (out->u.done.size > out->u.done.buf_size)
			return -EBADMSG;
		/* the caller's own buffer was filled: nothing to pass back */
		if (nfds != ((out->u.done.flags & DL_DONE_INTO) ? 0 : 1))
			return -EINVAL;
		return 0;
	case DL_LIST_REPLY:
		return check_list(out);
	case DL_EVICT:
		return check_evict(&out->u.evict, out->trail_len, out->trail);
	case DL_EVICT_REPLY:
		return out->u.evict_reply.reserved ? -EBADMSG : 0;
	case DL_STATS_REPLY:
		if (out->u.stats.reserved ||
		    out->trail_len / sizeof(struct dl_stats_client) != out->u.stats.n_clients ||
		    out->trail_len % sizeof(struct dl_stats_client))
			return -EBADMSG;
		return 0;
	default:
		return 0;
	}
}

/* Walks entries of @ent_size bytes, each followed by its name padded to a multiple of
 * 8; the name's length is the uint32_t at @name_len_off in the entry. */
static int named_entry_next(const struct dl_msg *m, size_t *pos, void *ent, size_t ent_size,
			    size_t name_len_off, const char **name, size_t *name_len)
{
	size_t left, padded;
	uint32_t nl;

	if (*pos > m->trail_len)
		return -EBADMSG;
	left = m->trail_len - *pos;
	if (left == 0)
		return 0;
	if (left < ent_size)
		return -EBADMSG;
	memcpy(ent, m->trail + *pos, ent_size);
	memcpy(&nl, (const char *)ent + name_len_off, sizeof(nl));
	left -= ent_size;
	if (nl > DL_PATH_MAX)
		return -EBADMSG;
	padded = (nl + 7u) & ~(size_t)7;
	if (padded > left)
		return -EBADMSG;
	*name = m->trail + *pos + ent_size;
	*name_len = nl;
	*pos += ent_size + padded;
	return 1;
}

int dl_status_next(const struct dl_msg *m, size_t *pos, struct dl_status_load *ent,
		   const char **name, size_t *name_len)
{
	return named_entry_next(m, pos, ent, sizeof(*ent),
				offsetof(struct dl_status_load, name_len), name, name_len);
}

int dl_list_next(const struct dl_msg *m, size_t *pos, struct dl_list_entry *ent,
		 const char **name, size_t *name_len)
{
	return named_entry_next(m, pos, ent, sizeof(*ent),
				offsetof(struct dl_list_entry, name_len), name, name_len);
}

void dl_stats_client_get(const struct dl_msg *m, size_t i, struct dl_stats_client *out)
{
	memcpy(out, m->trail + i * sizeof(*out), sizeof(*out));
}

ssize_t dl_encode(void *buf, size_t cap, uint16_t type, uint64_t id,
		  const void *payload, size_t payload_len,
		  const void *trail, size_t trail_len)
{
	struct dl_hdr h = {
		.magic = DL_PROTO_MAGIC,
		.version = DL_PROTO_VERSION,
		.type = type,
		.id = id,
	};
	size_t total = sizeof(h) + payload_len + trail_len;
	char *p = buf;

	if (total > cap || total > DL_MSG_MAX)
		return -EMSGSIZE;
	h.len = (uint32_t)(payload_len + trail_len);
	memcpy(p, &h, sizeof(h));
	if (payload_len)
		memcpy(p + sizeof(h), payload, payload_len);
	if (trail_len)
		memcpy(p + sizeof(h) + payload_len, trail, trail_len);
	return (ssize_t)total;
}

ssize_t dl_encode_error(void *buf, size_t cap, uint64_t id, int err, const char *msg)
{
	size_t n = msg ? strnlen(msg, DL_ERRMSG_MAX) : 0;
	struct dl_error e = { .err = err < 0 ? -err : err, .msg_len = (uint32_t)n };

	return dl_encode(buf, cap, DL_ERROR, id, &e, sizeof(e), msg, n);
}

const char *dl_msg_type_name(unsigned type)
{
	switch (type) {
	case DL_HELLO: return "HELLO";
	case DL_LOAD: return "LOAD";
	case DL_CANCEL: return "CANCEL";
	case DL_STATUS: return "STATUS";
	case DL_LIST: return "LIST";
	case DL_EVICT: return "EVICT";
	case DL_STATS: return "STATS";
	case DL_HELLO_REPLY: return "HELLO_REPLY";
	case DL_ACCEPTED: return "ACCEPTED";
	case DL_PROGRESS: return "PROGRESS";
	case DL_DONE: return "DONE";
	case DL_ERROR: return "ERROR";
	case DL_OK: return "OK";
	case DL_STATUS_REPLY: return "STATUS_REPLY";
	case DL_INFO: return "INFO";
	case DL_LOAD_EXTENTS: return "LOAD_EXTENTS";
	case DL_INFO_REPLY: return "INFO_REPLY";
	case DL_LIST_REPLY: return "LIST_REPLY";
	case DL_STATS_REPLY: return "STATS_REPLY";
	case DL_EVICT_REPLY: return "EVICT_REPLY";
	default: return "?";
	}
}

const char *dl_method_name(unsigned method)
{
	switch (method) {
	case DL_METHOD_AUTO: return "auto";
	case DL_METHOD_DIRECT: return "direct";
	case DL_METHOD_BUFFERED: return "buffered";
	case DL_METHOD_CFR: return "cfr";
	default: return "?";
	}
}

const char *dl_target_name(unsigned target)
{
	switch (target) {
	case DL_TARGET_AUTO: return "auto";
	case DL_TARGET_MEMFD: return "memfd";
	case DL_TARGET_UDMABUF: return "udmabuf";
	case DL_TARGET_HEAP: return "heap";
	default: return "?";
	}
}

const char *dl_reason_name(unsigned reason)
{
	switch (reason) {
	case DL_WHY_DEFAULT: return "default";
	case DL_WHY_ASKED: return "asked";
	case DL_WHY_NO_DIRECT: return "filesystem refuses O_DIRECT";
	case DL_WHY_UNALIGNED: return "offset not O_DIRECT-aligned";
	case DL_WHY_EMPTY: return "nothing to read";
	case DL_WHY_SHORT: return "shorter than one O_DIRECT unit";
	case DL_WHY_CACHED: return "in the page cache";
	case DL_WHY_NOT_CACHED: return "not in the page cache";
	case DL_WHY_PARTLY_CACHED: return "partly in the page cache";
	case DL_WHY_NO_REOPEN: return "client may not reopen its fd for O_DIRECT";
	case DL_WHY_SMALL: return "small file";
	default: return "?";
	}
}

int dl_send(int sock, const void *buf, size_t len, const int *fds, int nfds)
{
	union {
		struct cmsghdr align;
		char buf[CMSG_SPACE(sizeof(int) * DL_MAX_FDS)];
	} ctl;
	struct iovec iov = { .iov_base = (void *)buf, .iov_len = len };
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1 };
	ssize_t n;

	if (nfds < 0 || nfds > DL_MAX_FDS)
		return -EINVAL;
	if (nfds > 0) {
		struct cmsghdr *c;

		memset(&ctl, 0, sizeof(ctl));
		msg.msg_control = ctl.buf;
		msg.msg_controllen = CMSG_SPACE(sizeof(int) * (size_t)nfds);
		c = CMSG_FIRSTHDR(&msg);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int) * (size_t)nfds);
		memcpy(CMSG_DATA(c), fds, sizeof(int) * (size_t)nfds);
	}
	do
		n = sendmsg(sock, &msg, MSG_NOSIGNAL);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	return (size_t)n == len ? 0 : -EMSGSIZE;
}

/* Closes every fd in every SCM_RIGHTS header of @msg, or hands it to @drop. */
static void close_passed_fds(struct msghdr *msg, void (*drop)(void *data, int fd),
			     void *data)
{
	for (struct cmsghdr *c = CMSG_FIRSTHDR(msg); c; c = CMSG_NXTHDR(msg, c)) {
		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
			continue;
		size_t n = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		for (size_t i = 0; i < n; i++) {
			int fd;

			memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
			if (drop)
				drop(data, fd);
			else
				close(fd);
		}
	}
}

ssize_t dl_recv(int sock, void *buf, size_t cap, int *fds, int maxfds, int *nfds)
{
	return dl_recv_drop(sock, buf, cap, fds, maxfds, nfds, NULL, NULL);
}

ssize_t dl_recv_drop(int sock, void *buf, size_t cap, int *fds, int maxfds, int *nfds,
		     void (*drop)(void *data, int fd), void *data)
{
	/* Room for as many fds as one datagram can carry (the kernel's SCM_MAX_FD,
	 * 253), so a greedy sender's extras arrive here and go to @drop instead of
	 * being dropped by MSG_CTRUNC: that drop is the files' last reference when the
	 * sender closed its own, and their release (a FUSE file's writeback) would run
	 * in the receiver's thread... */
	union {
		struct cmsghdr align;
		char buf[CMSG_SPACE(sizeof(int) * 253)];
	} ctl;
	struct iovec iov = { .iov_base = buf, .iov_len = cap };
	struct msghdr msg = {
		.msg_iov = &iov,
		.msg_iovlen = 1,
		.msg_control = ctl.buf,
		.msg_controllen = sizeof(ctl.buf),
	};
	ssize_t n;
	int count = 0, bad = 0;

	*nfds = 0;
	do
		n = recvmsg(sock, &msg, MSG_CMSG_CLOEXEC);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;

	/* ...and the kernel closes whatever did not fit even there (MSG_CTRUNC). */
	if (msg.msg_flags & (MSG_TRUNC | MSG_CTRUNC))
		bad = (msg.msg_flags & MSG_TRUNC) ? -EMSGSIZE : -EBADMSG;
	for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c && !bad; c = CMSG_NXTHDR(&msg, c)) {
		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) {
			bad = -EBADMSG;
			break;
		}
		count += (int)((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));
	}
	if (!bad && count > maxfds)
		bad = -EBADMSG;
	if (bad) {
		close_passed_fds(&msg, drop, data);
		return bad;
	}
	for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
		size_t k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);

		memcpy(fds + *nfds, CMSG_DATA(c), k * sizeof(int));
		*nfds += (int)k;
	}
	return n;
}
