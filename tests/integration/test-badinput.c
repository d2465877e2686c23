/*
 * test-badinput.c: everything a client can get wrong, against the real daemon.
 *
 * Each bad request must get an ERROR with the right errno and a non-empty message,
 * never a crash, a hang or a leak; afterwards the daemon must still serve a normal
 * load (on the same connection where the protocol keeps it, else on a new one).
 * Semantic errors (no such file, not a regular file, range past EOF, too big) use
 * libdmaload; malformed datagrams, wrong fd counts and bad fds use the raw protocol.
 * The daemon runs with max_load_size = 512M and max_queued = 4. At the end its fd and
 * memfd counts must equal the baseline.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "../lib/check.h"
#include "../lib/harness.h"
#include "../lib/loads.h"

#define SUITE "badinput"
#define TIMEOUT 20000

static struct test_daemon d;
static struct dmaload *dl;
static struct raw_msg *rm;

static char ok_path[PATH_MAX], big_path[PATH_MAX], dir_path[PATH_MAX];
static char fifo_path[PATH_MAX], sock_path[PATH_MAX], huge_path[PATH_MAX];
#define OK_SIZE (MiB + 5)
#define OK_SEED 11
#define MAX_LOAD (512 * MiB)	/* the daemon's max_load_size */
#define BIG_SIZE (MAX_LOAD + 1)	/* a sparse file over it */
#define HUGE_SIZE (256 * MiB)

static bool setup_files(void)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int s, r;

	snprintf(ok_path, sizeof(ok_path), "%s/ok", d.dir);
	snprintf(big_path, sizeof(big_path), "%s/big", d.dir);
	snprintf(dir_path, sizeof(dir_path), "%s/a-dir", d.dir);
	snprintf(fifo_path, sizeof(fifo_path), "%s/fifo", d.dir);
	snprintf(sock_path, sizeof(sock_path), "%s/sockfile", d.dir);
	snprintf(huge_path, sizeof(huge_path), "%s/huge", d.dir);
	r = file_make(ok_path, OK_SIZE, OK_SEED, 0644);
	if (!CHECKF(r == 0, "file_make: %s", strerror(-r)))
		return false;
	r = open(big_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (!CHECKF(r >= 0 && ftruncate(r, (off_t)BIG_SIZE) == 0, "sparse file: %s",
		    strerror(errno)))
		return false;
	close(r);
	if (!CHECKF(mkdir(dir_path, 0755) == 0, "mkdir: %s", strerror(errno)) ||
	    !CHECKF(mkfifo(fifo_path, 0644) == 0, "mkfifo: %s", strerror(errno)))
		return false;
	/* a Unix socket file nobody listens on any more */
	s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	strcpy(sa.sun_path, sock_path);
	if (!CHECKF(s >= 0 && bind(s, (struct sockaddr *)&sa, sizeof(sa)) == 0,
		    "bind: %s", strerror(errno)))
		return false;
	close(s);
	return true;
}

/* The connection @dl still serves a normal load. */
static void still_serves(struct dmaload *c)
{
	lc_load_verify(c, ok_path, -1, NULL, OK_SIZE, OK_SEED, DL_METHOD_AUTO, NULL);
}

/* A new connection serves a normal load. */
static void new_conn_serves(void)
{
	struct dmaload *c = lc_connect(&d, "fresh");

	if (c) {
		still_serves(c);
		dmaload_close(c);
	}
}

/* ---- semantic errors, through libdmaload ------------------------------------------ */

static void lib_error(const char *path, uint64_t off, uint64_t len, int err,
		      const char *must_contain)
{
	struct dmaload_opts o;
	struct dmaload_event ev;

	dmaload_opts_init(&o);
	o.offset = off;
	o.length = len;
	if (lc_load_error(dl, path, -1, &o, &err, 1, &ev) && must_contain)
		CHECKF(strcasestr(ev.message, must_contain), "message \"%s\" lacks \"%s\"",
		       ev.message, must_contain);
	still_serves(dl);
}

static void missing(void)
{
	char p[PATH_MAX];

	snprintf(p, sizeof(p), "%s/no/such/file", d.dir);
	lib_error(p, 0, DMALOAD_TO_EOF, ENOENT, NULL);
}

/* ---- loads by fd of things that are not readable regular files -------------------- */

static void raw_expect_error(int s, uint64_t id, int err, const char *what)
{
	int r = raw_wait_final(s, id, rm, TIMEOUT);

	if (!CHECKF(r == 1, "%s: no reply (%d: %s)", what, r, r < 0 ? strerror(-r) : "EOF"))
		return;
	if (!CHECKF(rm->m.hdr.type == DL_ERROR, "%s: got %s, expected ERROR", what,
		    dl_msg_type_name(rm->m.hdr.type)))
		return;
	CHECKF(err == 0 || rm->m.u.error.err == err, "%s: ERROR %d (%s), expected %d (%s): %s",
	       what, rm->m.u.error.err, strerror(rm->m.u.error.err), err, strerror(err),
	       raw_error_text(rm));
	CHECKF(rm->m.u.error.err > 0, "%s: ERROR with errno 0", what);
	CHECKF(raw_error_text(rm)[0], "%s: ERROR %d with an empty message", what,
	       rm->m.u.error.err);
}

/* The raw connection @s still loads a file (so it was not closed). */
static void raw_still_serves(int s, uint64_t id)
{
	int r;

	if (!CHECK_OK(raw_send_load(s, id, ok_path, -1, 0, DL_LENGTH_TO_EOF, 0)))
		return;
	r = raw_wait_final(s, id, rm, TIMEOUT);
	if (!CHECKF(r == 1, "follow-up load: no reply (%d)", r))
		return;
	if (CHECKF(rm->m.hdr.type == DL_DONE, "follow-up load: %s %s",
		   dl_msg_type_name(rm->m.hdr.type), raw_error_text(rm)))
		CHECK_BUF(rm->fd, OK_SIZE, OK_SEED, 0);
	raw_msg_clear(rm);
}

static void by_bad_fd(int fd, int err, const char *what)
{
	int s = raw_connect(d.sock);

	if (!CHECKF(s >= 0, "connect: %s", strerror(-s)))
		goto out;
	if (!CHECKF(fd >= 0, "%s: could not make the fd: %s", what, strerror(errno)))
		goto out;
	if (CHECK_OK(raw_send_load(s, 5, NULL, fd, 0, DL_LENGTH_TO_EOF, 0)))
		raw_expect_error(s, 5, err, what);
	raw_still_serves(s, 6);
out:
	if (s >= 0)
		close(s);
	if (fd >= 0)
		close(fd);
	CHECK_SETTLED(&d, 5000);
}

static void fd_dir(void)
{
	by_bad_fd(open(dir_path, O_RDONLY | O_DIRECTORY | O_CLOEXEC), EISDIR, "directory fd");
}

static void fd_pipe(void)
{
	int p[2];

	if (!CHECK(pipe2(p, O_CLOEXEC) == 0))
		return;
	if (write(p[1], "data", 4) != 4)
		CHECK(false);
	by_bad_fd(p[0], EINVAL, "pipe read end");
	close(p[1]);
}

static void fd_wronly(void)
{
	by_bad_fd(open(ok_path, O_WRONLY | O_CLOEXEC), EBADF, "O_WRONLY fd");
}

static void fd_opath(void)
{
	by_bad_fd(open(ok_path, O_PATH | O_CLOEXEC), EBADF, "O_PATH fd");
}

static void fd_socket(void)
{
	by_bad_fd(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0), EINVAL, "socket fd");
}

static void fd_devzero(void)
{
	by_bad_fd(open("/dev/zero", O_RDONLY | O_CLOEXEC), EINVAL, "/dev/zero fd");
}

/* ---- malformed datagrams, raw -------------------------------------------------------- */

/* Sends @len bytes of @buf with @nfds fds on a fresh connection; expects ERROR @err
 * (echoing @id if @check_id) and then, if @closes, the end of the stream, else a
 * working connection. Then a new connection must serve a load. */
static void raw_case(const void *buf, size_t len, const int *fds, int nfds, int err,
		     bool check_id, uint64_t id, bool closes)
{
	int s = raw_connect(d.sock), r;

	if (!CHECKF(s >= 0, "connect: %s", strerror(-s)))
		return;
	r = raw_send_bytes(s, buf, len, fds, nfds);
	if (!CHECKF(r == 0, "send: %s", strerror(-r)))
		goto out;
	r = raw_recv(s, rm, TIMEOUT);
	if (!CHECKF(r == 1, "no reply (%d: %s)", r, r < 0 ? strerror(-r) : "EOF"))
		goto out;
	if (!CHECKF(rm->decode == 0, "the reply does not decode: %d", rm->decode))
		goto out;
	if (!CHECKF(rm->m.hdr.type == DL_ERROR, "got %s, expected ERROR",
		    dl_msg_type_name(rm->m.hdr.type)))
		goto out;
	CHECKF(rm->m.u.error.err == err, "ERROR %d (%s), expected %d (%s): %s",
	       rm->m.u.error.err, strerror(rm->m.u.error.err), err, strerror(err),
	       raw_error_text(rm));
	CHECKF(raw_error_text(rm)[0], "ERROR with an empty message");
	if (check_id)
		CHECK_U64(rm->m.hdr.id, ==, id);
	if (closes) {
		r = raw_recv(s, rm, TIMEOUT);
		CHECKF(r == 0, "connection not closed after ERROR %d (recv = %d)", err, r);
	} else {
		raw_still_serves(s, id + 1000);
	}
out:
	close(s);
	new_conn_serves();
	CHECK_SETTLED(&d, 5000);
}

static char mbuf[2 * DL_MSG_MAX];

static size_t good_load(uint64_t id, const char *path, bool by_fd)
{
	struct dl_load l = { .length = DL_LENGTH_TO_EOF };

	if (by_fd)
		l.flags = DL_LOAD_BY_FD;
	else
		l.path_len = (uint32_t)strlen(path);
	return (size_t)dl_encode(mbuf, sizeof(mbuf), DL_LOAD, id, &l, sizeof(l), path,
				 by_fd ? 0 : strlen(path));
}

static void dg_short(void)
{
	size_t n = good_load(1, ok_path, false);

	(void)n;
	raw_case(mbuf, 10, NULL, 0, EBADMSG, false, 0, true);
}

static void dg_header_len_mismatch(void)
{
	size_t n = good_load(3, ok_path, false);

	((struct dl_hdr *)mbuf)->len += 4;
	raw_case(mbuf, n, NULL, 0, EBADMSG, false, 0, true);
}

static void dg_too_long(void)
{
	size_t n = DL_MSG_MAX + 100;
	struct dl_hdr h = {
		.magic = DL_PROTO_MAGIC, .version = DL_PROTO_VERSION, .type = DL_LOAD,
		.len = (uint32_t)(n - sizeof(h)), .id = 4,
	};

	memset(mbuf, 'x', n);
	memcpy(mbuf, &h, sizeof(h));
	raw_case(mbuf, n, NULL, 0, EMSGSIZE, false, 0, true);
}

static void dg_bad_magic(void)
{
	size_t n = good_load(5, ok_path, false);

	((struct dl_hdr *)mbuf)->magic ^= 0x01000000;
	raw_case(mbuf, n, NULL, 0, EBADMSG, false, 0, true);
}

static void dg_version(void)
{
	size_t n = good_load(6, ok_path, false);

	((struct dl_hdr *)mbuf)->version = DL_PROTO_VERSION + 1;
	raw_case(mbuf, n, NULL, 0, EPROTONOSUPPORT, true, 6, true);
}

static void dg_unknown_type(void)
{
	size_t n = (size_t)dl_encode(mbuf, sizeof(mbuf), 0x7e, 7, "probe", 5, NULL, 0);

	raw_case(mbuf, n, NULL, 0, EOPNOTSUPP, true, 7, false);
}

static void dg_reply_type(void)
{
	size_t n = (size_t)dl_encode(mbuf, sizeof(mbuf), DL_OK, 8, NULL, 0, NULL, 0);

	raw_case(mbuf, n, NULL, 0, EOPNOTSUPP, true, 8, false);
}

static void dg_path_with_fd(void)
{
	int fd = open(ok_path, O_RDONLY | O_CLOEXEC);
	size_t n = good_load(9, ok_path, false);

	raw_case(mbuf, n, &fd, 1, EINVAL, true, 9, false);
	close(fd);
}

static void dg_fd_without_fd(void)
{
	size_t n = good_load(10, NULL, true);

	raw_case(mbuf, n, NULL, 0, EINVAL, true, 10, false);
}

static void dg_two_fds(void)
{
	int fds[DL_MAX_FDS + 1];
	size_t n = good_load(11, NULL, true);

	for (int i = 0; i < DL_MAX_FDS + 1; i++)
		fds[i] = open(ok_path, O_RDONLY | O_CLOEXEC);
	/* within DL_MAX_FDS: a well-formed datagram with the wrong fd count for a LOAD */
	raw_case(mbuf, n, fds, 2, EINVAL, true, 11, false);
	/* more than any message carries: malformed */
	n = good_load(11, NULL, true);
	raw_case(mbuf, n, fds, DL_MAX_FDS + 1, EBADMSG, false, 0, true);
	for (int i = 0; i < DL_MAX_FDS + 1; i++)
		close(fds[i]);
}

/* A zero-length datagram reads like the end of the stream; one with an fd attached
 * must not leak the fd. */
static void dg_empty_with_fd(void)
{
	int fd = open(ok_path, O_RDONLY | O_CLOEXEC);
	int s = raw_connect(d.sock), r;

	if (!CHECKF(s >= 0 && fd >= 0, "connect/open: %s", strerror(errno)))
		goto out;
	r = raw_send_bytes(s, "", 0, &fd, 1);
	if (!CHECKF(r == 0, "send: %s", strerror(-r)))
		goto out;
	r = raw_recv(s, rm, TIMEOUT);
	CHECKF(r == 0 || (r == 1 && rm->m.hdr.type == DL_ERROR),
	       "after an empty datagram: recv = %d", r);
	raw_msg_clear(rm);
out:
	if (s >= 0)
		close(s);
	if (fd >= 0)
		close(fd);
	new_conn_serves();
	CHECK_SETTLED(&d, 5000);
}

static void dg_no_path(void)
{
	size_t n = good_load(12, "", false);

	raw_case(mbuf, n, NULL, 0, EINVAL, true, 12, false);
}

static void dg_bad_enum(void)
{
	struct dl_load l = { .length = DL_LENGTH_TO_EOF, .method = 4 };
	size_t n;

	l.path_len = (uint32_t)strlen(ok_path);
	n = (size_t)dl_encode(mbuf, sizeof(mbuf), DL_LOAD, 13, &l, sizeof(l), ok_path,
			      strlen(ok_path));
	raw_case(mbuf, n, NULL, 0, EINVAL, true, 13, false);
}

static void dg_relative(void)
{
	size_t n = good_load(14, "relative/path/file", false);

	raw_case(mbuf, n, NULL, 0, EINVAL, true, 14, false);
}

static void dg_dotdot(void)
{
	char p[PATH_MAX];
	size_t n;

	/* an absolute path through ".." still names the file: fine */
	snprintf(p, sizeof(p), "%s/a-dir/../ok", d.dir);
	n = good_load(15, p, false);
	{
		int s = raw_connect(d.sock), r;

		if (!CHECKF(s >= 0, "connect: %s", strerror(-s)))
			return;
		if (CHECK_OK(raw_send_bytes(s, mbuf, n, NULL, 0))) {
			r = raw_wait_final(s, 15, rm, TIMEOUT);
			if (CHECKF(r == 1 && rm->m.hdr.type == DL_DONE, "r=%d type %s %s", r,
				   dl_msg_type_name(rm->m.hdr.type), raw_error_text(rm)))
				CHECK_BUF(rm->fd, OK_SIZE, OK_SEED, 0);
		}
		raw_msg_clear(rm);
		close(s);
	}
}

/* A reply the size of the socket buffer must not wedge the daemon: a client that
 * sends many requests and never reads. Other clients are still served. */
static void never_reads(void)
{
	int s = raw_connect(d.sock);

	if (!CHECKF(s >= 0, "connect: %s", strerror(-s)))
		return;
	/* non-blocking: the daemon may well stop reading a client that does not read */
	fcntl(s, F_SETFL, O_NONBLOCK);
	for (int i = 0; i < 2000; i++) {
		/* STATUS replies pile up unread */
		if (raw_send(s, DL_STATUS, 100 + (uint64_t)i, NULL, 0, NULL, 0, NULL, 0) < 0)
			break;
	}
	new_conn_serves();
	close(s);
}

/* max_queued = 4: a fifth load in flight on one connection gets EBUSY. */
static void too_many_queued(void)
{
	int s = raw_connect(d.sock), r, done = 0;
	bool busy = false;

	if (!CHECKF(s >= 0, "connect: %s", strerror(-s)))
		return;
	for (uint64_t id = 1; id <= 5; id++)
		CHECK_OK(raw_send_load(s, id, huge_path, -1, 0, DL_LENGTH_TO_EOF, 0));
	/* collect 5 final replies: 4 DONE (checked) and 1 EBUSY for id 5 */
	while (done < 5) {
		r = raw_recv(s, rm, 60000);
		if (!CHECKF(r == 1 && rm->decode == 0, "recv: %d decode %d", r, rm->decode))
			break;
		if (rm->m.hdr.type == DL_ACCEPTED || rm->m.hdr.type == DL_PROGRESS)
			continue;
		done++;
		if (rm->m.hdr.id == 5) {
			busy = rm->m.hdr.type == DL_ERROR && rm->m.u.error.err == EBUSY;
			CHECKF(busy, "5th load: %s %d %s", dl_msg_type_name(rm->m.hdr.type),
			       rm->m.u.error.err, raw_error_text(rm));
		} else if (CHECKF(rm->m.hdr.type == DL_DONE, "load %llu: %s %s",
				  (unsigned long long)rm->m.hdr.id,
				  dl_msg_type_name(rm->m.hdr.type), raw_error_text(rm))) {
			CHECK_U64(rm->m.u.done.size, ==, HUGE_SIZE);
		}
		raw_msg_clear(rm);
	}
	raw_msg_clear(rm);
	close(s);
}

/* The source shrinks under the load: an ERROR, or a DONE with the original bytes,
 * never garbage or a hang. The length is explicit, so a load that opened the file
 * after the truncation is an ERROR (past EOF) too. @after_accepted: truncate once the
 * daemon has opened the file and said ACCEPTED, so the reads see it shrink. */
static void truncated_source(uint8_t method, bool after_accepted)
{
	struct dmaload_opts o;
	struct dmaload_event ev;
	uint64_t id;
	int r, fd;

	r = file_make(huge_path, HUGE_SIZE, 99, 0644);
	if (!CHECKF(r == 0, "file_make: %s", strerror(-r)))
		return;
	fd = open(huge_path, O_WRONLY | O_CLOEXEC);
	if (!CHECK(fd >= 0))
		return;
	dmaload_opts_init(&o);
	o.method = method;
	o.length = HUGE_SIZE;
	if (!CHECK_OK(dmaload_load_path(dl, huge_path, &o, &id)))
		goto out;
	if (after_accepted) {
		r = dmaload_next_event(dl, &ev, TIMEOUT);
		if (!CHECKF(r == 1 && ev.id == id && ev.type == DMALOAD_EV_ACCEPTED,
			    "first event: r=%d %s", r, r == 1 ? lc_event_str(&ev) : ""))
			goto out;
	}
	CHECK(ftruncate(fd, MiB) == 0);
	r = dmaload_wait(dl, id, &ev, NULL, NULL);
	if (CHECK_OK(r)) {
		if (ev.type == DMALOAD_EV_DONE)
			lc_check_done(&ev, HUGE_SIZE, 99, 0, DL_METHOD_AUTO);
		else
			CHECKF(ev.type == DMALOAD_EV_ERROR && ev.err > 0 && ev.message[0],
			       "got %s", lc_event_str(&ev));
	}
out:
	close(fd);
	still_serves(dl);
	/* put the full file back for the cases that use it */
	r = file_make(huge_path, HUGE_SIZE, 99, 0644);
	CHECKF(r == 0, "file_make: %s", strerror(-r));
	CHECK_SETTLED(&d, 5000);
}

/* Random corruptions of valid requests, on connections that are re-opened whenever
 * the daemon drops them: the daemon must survive and leak nothing. */
static void mutations(void)
{
	uint64_t x = 0x1234567;
	int s = -1, dropped = 0;

	for (int i = 0; i < 600; i++) {
		size_t n;
		int r, fd = -1;

		if (s < 0) {
			s = raw_connect(d.sock);
			if (!CHECKF(s >= 0, "connect #%d: %s", i, strerror(-s)))
				return;
		}
		x ^= x << 13; x ^= x >> 7; x ^= x << 17;
		n = good_load((uint64_t)i, ok_path, x & 1);
		if (x & 1)
			fd = open(ok_path, O_RDONLY | O_CLOEXEC);
		/* flip 1-3 bytes anywhere, and sometimes cut the datagram */
		for (int k = 0; k < 1 + (int)((x >> 8) % 3); k++)
			mbuf[(x >> (16 + 8 * k)) % n] ^= (char)(1 + ((x >> 40) & 0x7f));
		if ((x >> 50) % 4 == 0)
			n = (x >> 20) % n;
		r = raw_send_bytes(s, mbuf, n, &fd, fd >= 0 ? 1 : 0);
		if (fd >= 0)
			close(fd);
		if (r < 0) {
			close(s);
			s = -1;
			dropped++;
			continue;
		}
		/* drain replies until the final one or the connection's end */
		for (;;) {
			r = raw_recv(s, rm, TIMEOUT);
			if (r == 1 && (rm->m.hdr.type == DL_ACCEPTED ||
				       rm->m.hdr.type == DL_PROGRESS))
				continue;
			break;
		}
		if (!CHECKF(r != -ETIMEDOUT, "mutation #%d: no reply within %d ms", i, TIMEOUT))
			break;
		if (r == 1)
			CHECKF(rm->decode == 0, "mutation #%d: reply does not decode (%d)", i,
			       rm->decode);
		raw_msg_clear(rm);
		if (r == 1 && rm->m.hdr.type == DL_ERROR &&
		    (rm->m.u.error.err == EBADMSG || rm->m.u.error.err == EPROTONOSUPPORT)) {
			/* the daemon closes these connections */
			r = raw_recv(s, rm, TIMEOUT);
			CHECKF(r == 0, "mutation #%d: connection open after ERROR %d", i,
			       rm->m.u.error.err);
			raw_msg_clear(rm);
		}
		if (r != 1) {
			close(s);
			s = -1;
			dropped++;
		}
	}
	if (s >= 0)
		close(s);
	CHECKF(daemon_alive(&d), "the daemon died");
	new_conn_serves();
	CHECK_SETTLED(&d, 5000);
}

int main(void)
{
	char why[512];
	int r;

	check_init(SUITE);
	check_begin("daemon starts");
	if (daemon_start(&d, SUITE, "max_load_size = 512M\nmax_queued = 4\n", why,
			 sizeof(why)) < 0) {
		check_fail(__FILE__, __LINE__, "%s", why);
		check_end();
		daemon_cleanup(&d);
		return 1;
	}
	rm = raw_msg_new();
	dl = lc_connect(&d, "badinput");
	if (dl && setup_files()) {
		r = file_make(huge_path, HUGE_SIZE, 99, 0644);
		CHECKF(r == 0, "file_make: %s", strerror(-r));
		still_serves(dl);
	}
	if (!check_end() || !dl || !rm) {
		daemon_cleanup(&d);
		return 1;
	}
	daemon_baseline(&d);

	CASE(missing(), "nonexistent path -> ENOENT");
	CASE(lib_error(dir_path, 0, DMALOAD_TO_EOF, EISDIR, NULL), "directory -> EISDIR");
	CASE(lib_error(fifo_path, 0, DMALOAD_TO_EOF, EINVAL, "regular"),
	     "FIFO -> EINVAL \"not a regular file\", no hang");
	CASE(lib_error(sock_path, 0, DMALOAD_TO_EOF, EINVAL, "regular"),
	     "Unix socket file -> EINVAL \"not a regular file\"");
	CASE(lib_error("/dev/zero", 0, DMALOAD_TO_EOF, EINVAL, "regular"),
	     "/dev/zero -> EINVAL \"not a regular file\"");
	CASE(lib_error(ok_path, OK_SIZE + 1, DMALOAD_TO_EOF, EINVAL, NULL),
	     "offset past EOF -> EINVAL");
	CASE(lib_error(ok_path, 1, OK_SIZE, EINVAL, NULL), "offset + length past EOF -> EINVAL");
	CASE(lib_error(ok_path, UINT64_MAX, 1, EINVAL, NULL), "offset UINT64_MAX -> EINVAL");
	CASE(lib_error(ok_path, UINT64_MAX - 10, 100, EINVAL, NULL),
	     "offset + length overflowing 64 bits -> EINVAL");
	CASE(lib_error(big_path, 0, MAX_LOAD + 1, EFBIG, NULL),
	     "length over max_load_size -> EFBIG");
	CASE(lib_error(big_path, 0, DMALOAD_TO_EOF, EFBIG, NULL),
	     "whole file over max_load_size -> EFBIG");

	CASE(fd_dir(), "LOAD by fd of a directory -> EISDIR");
	CASE(fd_pipe(), "LOAD by fd of a pipe -> EINVAL");
	CASE(fd_wronly(), "LOAD by fd of an O_WRONLY file -> EBADF");
	CASE(fd_opath(), "LOAD by fd of an O_PATH fd -> EBADF");
	CASE(fd_socket(), "LOAD by fd of a socket -> EINVAL");
	CASE(fd_devzero(), "LOAD by fd of /dev/zero -> EINVAL");

	CASE(dg_short(), "10-byte datagram -> EBADMSG, connection closed");
	CASE(dg_header_len_mismatch(), "hdr.len larger than the datagram -> EBADMSG, closed");
	CASE(dg_too_long(), "datagram over DL_MSG_MAX -> EMSGSIZE, closed");
	CASE(dg_bad_magic(), "bad magic -> EBADMSG, closed");
	CASE(dg_version(), "version 2 -> EPROTONOSUPPORT with the id, closed");
	CASE(dg_unknown_type(), "unknown type -> EOPNOTSUPP with the id, connection usable");
	CASE(dg_reply_type(), "a reply type sent to the daemon -> EOPNOTSUPP, usable");
	CASE(dg_path_with_fd(), "LOAD by path with an fd -> EINVAL, usable");
	CASE(dg_fd_without_fd(), "LOAD by fd without an fd -> EINVAL, usable");
	CASE(dg_two_fds(), "LOAD by fd with 2 fds -> EINVAL; with DL_MAX_FDS + 1 -> EBADMSG, "
	     "closed");
	CASE(dg_empty_with_fd(), "empty datagram with an fd: fd not leaked");
	CASE(dg_no_path(), "LOAD by path with an empty path -> EINVAL, usable");
	CASE(dg_bad_enum(), "LOAD with method 4 -> EINVAL, usable");
	CASE(dg_relative(), "relative path -> EINVAL, usable");
	CASE(dg_dotdot(), "absolute path through \"..\" loads");
	CASE(never_reads(), "a client that never reads does not block others");
	CASE(too_many_queued(), "max_queued 4: the 5th load in flight -> EBUSY");
	CASE(truncated_source(DL_METHOD_AUTO, false),
	     "source truncated at once (auto): ERROR or exact DONE");
	CASE(truncated_source(DL_METHOD_AUTO, true),
	     "source truncated after ACCEPTED (auto): ERROR or exact DONE");
	CASE(truncated_source(DL_METHOD_BUFFERED, true),
	     "source truncated after ACCEPTED (buffered): ERROR or exact DONE");
	CASE(mutations(), "600 corrupted requests: daemon survives");

	CASE(CHECK_SETTLED_START(&d, 5000), "daemon fds and memfds back to the first baseline");
	dl = dmaload_close(dl);
	raw_msg_free(rm);
	daemon_stop_case(&d, "daemon exits 0 on SIGTERM");
	return check_finish();
}
