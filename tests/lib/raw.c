/*
 * raw.c: a protocol client without libdmaload, for what the library would never send
 * (bad lengths, wrong fd counts, unknown types) and for reading replies exactly as
 * they come. Messages go through the protocol's own encoder and decoder.
 */
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "harness.h"

int raw_connect(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int s, r;

	if (strlen(path) >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	strcpy(sa.sun_path, path);
	s = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (s < 0)
		return -errno;
	if (connect(s, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		r = -errno;
		close(s);
		return r;
	}
	return s;
}

int raw_send_bytes(int s, const void *buf, size_t len, const int *fds, int nfds)
{
	union {
		struct cmsghdr align;
		char buf[CMSG_SPACE(sizeof(int) * 16)];
	} ctl;
	struct iovec iov = { .iov_base = (void *)buf, .iov_len = len };
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1 };
	ssize_t n;

	if (nfds < 0 || nfds > 16)
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
		n = sendmsg(s, &msg, MSG_NOSIGNAL);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	return (size_t)n == len ? 0 : -EMSGSIZE;
}

int raw_send(int s, uint16_t type, uint64_t id, const void *payload, size_t plen,
	     const void *trail, size_t tlen, const int *fds, int nfds)
{
	char *buf = malloc(DL_MSG_MAX);
	ssize_t n;
	int r;

	if (!buf)
		return -ENOMEM;
	n = dl_encode(buf, DL_MSG_MAX, type, id, payload, plen, trail, tlen);
	r = n < 0 ? (int)n : raw_send_bytes(s, buf, (size_t)n, fds, nfds);
	free(buf);
	return r;
}

int raw_send_load(int s, uint64_t id, const char *path, int fd, uint64_t offset,
		  uint64_t length, uint8_t method)
{
	struct dl_load l = {
		.offset = offset,
		.length = length,
		.method = method,
	};

	if (path) {
		l.path_len = (uint32_t)strlen(path);
		return raw_send(s, DL_LOAD, id, &l, sizeof(l), path, l.path_len, NULL, 0);
	}
	l.flags = DL_LOAD_BY_FD;
	return raw_send(s, DL_LOAD, id, &l, sizeof(l), NULL, 0, &fd, 1);
}

struct raw_msg *raw_msg_new(void)
{
	struct raw_msg *rm = calloc(1, sizeof(*rm));

	if (rm)
		rm->fd = -1;
	return rm;
}

void raw_msg_free(struct raw_msg *rm)
{
	if (rm) {
		raw_msg_clear(rm);
		free(rm);
	}
}

void raw_msg_clear(struct raw_msg *rm)
{
	if (rm->fd >= 0)
		close(rm->fd);
	rm->fd = -1;
}

int raw_recv(int s, struct raw_msg *rm, int timeout_ms)
{
	struct pollfd p = { .fd = s, .events = POLLIN };
	int fds[DL_MAX_FDS], nfds = 0, r;
	ssize_t n;

	raw_msg_clear(rm);
	do
		r = poll(&p, 1, timeout_ms);
	while (r < 0 && errno == EINTR);
	if (r < 0)
		return -errno;
	if (r == 0)
		return -ETIMEDOUT;
	n = dl_recv(s, rm->buf, sizeof(rm->buf), fds, DL_MAX_FDS, &nfds);
	if (n < 0)
		return (int)n == -ECONNRESET ? 0 : (int)n;
	if (n == 0)
		return 0;
	rm->len = (size_t)n;
	rm->fd = nfds ? fds[0] : -1;
	rm->decode = dl_msg_decode(rm->buf, (size_t)n, nfds, &rm->m);
	return 1;
}

static bool is_final(uint16_t type)
{
	return type == DL_DONE || type == DL_ERROR || type == DL_OK ||
	       type == DL_HELLO_REPLY || type == DL_STATUS_REPLY;
}

int raw_wait_final(int s, uint64_t id, struct raw_msg *rm, int timeout_ms)
{
	uint64_t deadline = now_ms() + (uint64_t)timeout_ms;

	for (;;) {
		int64_t left = (int64_t)(deadline - now_ms());
		int r;

		if (left < 0)
			return -ETIMEDOUT;
		r = raw_recv(s, rm, (int)left);
		if (r <= 0)
			return r;
		if (rm->decode < 0)
			return -EBADMSG;
		if (rm->m.hdr.id != id)
			return -EPROTO;
		if (is_final(rm->m.hdr.type))
			return 1;
	}
}

const char *raw_error_text(const struct raw_msg *rm)
{
	static char text[DL_ERRMSG_MAX + 1];
	size_t n = 0;

	if (rm->m.hdr.type == DL_ERROR && rm->decode == 0) {
		n = rm->m.trail_len < DL_ERRMSG_MAX ? rm->m.trail_len : DL_ERRMSG_MAX;
		memcpy(text, rm->m.trail, n);
	}
	text[n] = '\0';
	return text;
}
