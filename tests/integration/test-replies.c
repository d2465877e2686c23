/*
 * test-replies.c: a client that never reads its replies cannot grow the daemon (issue
 * 12, item 1).
 *
 * The daemon keeps 200 buffers with long names in its cache, so that a LIST reply is
 * a whole datagram (64 KiB). A raw client sends LISTs (then STATUSes) as fast as its
 * socket takes them and reads nothing: the daemon's RSS must stay within 64 MiB of
 * what it was, its sends must start to block (the daemon stopped reading), and
 * another client is served meanwhile. A client that fills its socket with replies,
 * then loads the same file again and again without reading its DONEs must make the
 * daemon hold at most max_queued of their buffers' fds; once it reads, every LOAD
 * gets its DONE (or EBUSY, when the daemon read more at once than max_queued) and the
 * fds go back.
 */
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../lib/check.h"
#include "../lib/harness.h"
#include "../lib/loads.h"

#define SUITE "replies"
#define N_FILES 200
#define FILE_SIZE 4096
#define MAX_QUEUED 8
#define RSS_SLACK_KIB (64 * 1024)

static struct test_daemon d;
static char paths[N_FILES][PATH_MAX];

static bool make_files(void)
{
	char name[256];

	/* long names: LIST entries carry them, and fill a datagram with fewer */
	memset(name, 'n', sizeof(name) - 1);
	name[200] = '\0';
	for (int i = 0; i < N_FILES; i++) {
		snprintf(paths[i], sizeof(paths[i]), "%s/%03d-%s", d.dir, i, name);
		if (!CHECK(file_make(paths[i], FILE_SIZE, 500 + i, 0644) == 0))
			return false;
	}
	return true;
}

static bool fill_cache(void)
{
	struct dmaload *dl = lc_connect(&d, "fill");
	bool ok = dl != NULL;

	for (int i = 0; ok && i < N_FILES; i++)
		ok = lc_load_verify(dl, paths[i], -1, NULL, FILE_SIZE, 500 + i, DL_METHOD_AUTO,
				    NULL);
	dmaload_close(dl);
	return ok;
}

/* Sends a request without blocking. 0, -EAGAIN, or -errno. */
static int send_nowait(int s, uint16_t type, uint64_t id, const void *p, size_t plen,
		       const void *trail, size_t tlen)
{
	char buf[sizeof(struct dl_hdr) + sizeof(struct dl_load) + PATH_MAX];
	ssize_t n = dl_encode(buf, sizeof(buf), type, id, p, plen, trail, tlen);

	if (n < 0)
		return (int)n;
	if (send(s, buf, (size_t)n, MSG_DONTWAIT | MSG_NOSIGNAL) < 0)
		return -errno;
	return 0;
}

/* ---- LIST and STATUS, never read -------------------------------------------------- */

static void flood(uint16_t type, const char *what)
{
	long rss0 = proc_rss_kib(d.pid), rss = rss0, peak = rss0;
	int s = raw_connect(d.sock), sent = 0, blocked_ms = 0;
	struct dmaload_cache_list l;
	struct dmaload *other;
	uint64_t t0;
	int r;

	if (!CHECKF(s >= 0, "connect: %s", strerror(-s)) || !CHECK(rss0 > 0))
		goto out;
	{
		struct dl_hello h = { .version = DL_PROTO_VERSION };
		struct raw_msg *rm = raw_msg_new();

		CHECK(raw_send(s, DL_HELLO, 1, &h, sizeof(h), NULL, 0, NULL, 0) == 0 &&
		      raw_recv(s, rm, 5000) == 1);
		raw_msg_free(rm);
	}
	t0 = now_ms();
	while (sent < 30000 && now_ms() - t0 < 20000) {
		r = send_nowait(s, type, 2 + (uint64_t)sent, NULL, 0, NULL, 0);
		if (r == -EAGAIN) {
			/* the daemon stopped reading us: give it time to prove it */
			if (blocked_ms >= 1500)
				break;
			sleep_ms(10);
			blocked_ms += 10;
			continue;
		}
		if (!CHECKF(r == 0, "send %d: %s", sent, strerror(-r)))
			break;
		blocked_ms = 0;
		if (++sent % 100 == 0) {
			rss = proc_rss_kib(d.pid);
			peak = rss > peak ? rss : peak;
			if (rss - rss0 > RSS_SLACK_KIB)
				break;
		}
	}
	sleep_ms(300);
	rss = proc_rss_kib(d.pid);
	peak = rss > peak ? rss : peak;
	fprintf(stderr, "# %s flood: %d sent in %llu ms, blocked at the end: %s; daemon RSS "
		"%ld -> %ld KiB (peak %ld)\n", what, sent,
		(unsigned long long)(now_ms() - t0), blocked_ms >= 1500 ? "yes" : "no", rss0,
		rss, peak);
	CHECKF(peak - rss0 <= RSS_SLACK_KIB, "daemon RSS grew by %ld KiB (from %ld) after %d "
	       "unread %ss", peak - rss0, rss0, sent, what);
	CHECKF(blocked_ms >= 1500, "the daemon read all %d %ss of a client that reads "
	       "nothing", sent, what);
	/* another client is served meanwhile */
	other = lc_connect(&d, "other");
	if (other) {
		uint64_t t1 = now_ms();

		dmaload_set_timeout(other, 5000);
		r = dmaload_list(other, &l);
		if (CHECKF(r == 0, "LIST of another client: %s", strerror(-r))) {
			CHECKF(l.n_entries > 0, "LIST of another client: no entries");
			dmaload_list_free(&l);
		}
		CHECKF(now_ms() - t1 < 2000, "LIST of another client took %llu ms",
		       (unsigned long long)(now_ms() - t1));
		lc_load_verify(other, paths[0], -1, NULL, FILE_SIZE, 500, DL_METHOD_AUTO, NULL);
		dmaload_close(other);
	}
out:
	if (s >= 0)
		close(s);
	CHECK_SETTLED(&d, 10000);
}

/* ---- DONE buffers, never read ----------------------------------------------------- */

static void unread_dones(void)
{
	int s = raw_connect(d.sock), sent = 0, held_back = 0, dones = 0, busy = 0, extra;
	size_t plen = strlen(paths[1]);
	struct dl_load l = { .length = DL_LENGTH_TO_EOF, .path_len = (uint32_t)plen };
	struct raw_msg *rm = raw_msg_new();
	int base;
	struct dl_hello h = { .version = DL_PROTO_VERSION };

	if (!CHECKF(s >= 0, "connect: %s", strerror(-s)))
		goto out;
	CHECK(raw_send(s, DL_HELLO, 1, &h, sizeof(h), NULL, 0, NULL, 0) == 0 &&
	      raw_recv(s, rm, 5000) == 1);
	base = proc_fd_count(d.pid);	/* with the connection's socket and pidfd */
	/* A few whole-datagram LIST replies fill the socket (the kernel takes about
	 * 200 KiB of them), so what follows waits in the daemon. */
	for (int i = 0; i < 6; i++)
		CHECK(send_nowait(s, DL_LIST, 100 + (uint64_t)i, NULL, 0, NULL, 0) == 0);
	sleep_ms(100);
	/* paced: each load is over (a cache hit) before the next, so only the unread
	 * DONEs pile up */
	for (int i = 0; i < 40; i++) {
		int r = send_nowait(s, DL_LOAD, 200 + (uint64_t)i, &l, sizeof(l), paths[1],
				    plen);

		if (r == -EAGAIN) {
			held_back++;
			sleep_ms(10);
			continue;
		}
		if (!CHECKF(r == 0, "send LOAD %d: %s", i, strerror(-r)))
			break;
		sent++;
		sleep_ms(10);
	}
	sleep_ms(500);
	extra = proc_fd_count(d.pid) - base;
	fprintf(stderr, "# %d LOADs sent (%d held back), daemon holds %d more fds "
		"(max_queued %d)\n", sent, held_back, extra, MAX_QUEUED);
	CHECKF(extra <= MAX_QUEUED, "the daemon holds %d more fds for a client with unread "
	       "DONEs (max_queued %d)", extra, MAX_QUEUED);
	/* now it reads: a DONE for every LOAD the daemon took, then nothing */
	while (raw_recv(s, rm, 1000) == 1) {
		if (rm->decode == 0 && rm->m.hdr.type == DL_DONE) {
			dones++;
			CHECKF(rm->fd >= 0, "DONE without a buffer");
			raw_msg_clear(rm);
		} else if (rm->decode == 0 && rm->m.hdr.type == DL_ERROR) {
			/* read again, it takes a batch of LOADs at once: past max_queued
			 * running, they are refused */
			busy++;
			CHECKF(rm->m.u.error.err == EBUSY, "LOAD %llu: %s",
			       (unsigned long long)rm->m.hdr.id, raw_error_text(rm));
		}
	}
	fprintf(stderr, "# then read: %d DONEs, %d EBUSY\n", dones, busy);
	CHECKF(dones + busy == sent && dones >= MAX_QUEUED, "%d DONEs and %d EBUSY for %d "
	       "LOADs sent", dones, busy, sent);
out:
	raw_msg_free(rm);
	if (s >= 0)
		close(s);
	CHECK_SETTLED(&d, 10000);
}

/* ASan keeps freed memory in quarantine (256 MiB by default): every reply freed would
 * count in the daemon's RSS. A small quarantine keeps the bound meaningful. */
static void asan_small_quarantine(void)
{
#ifdef __SANITIZE_ADDRESS__
	const char *old = getenv("ASAN_OPTIONS");
	char opts[1024];

	snprintf(opts, sizeof(opts), "%s%squarantine_size_mb=8", old ? old : "",
		 old && *old ? ":" : "");
	setenv("ASAN_OPTIONS", opts, 1);
#endif
}

int main(void)
{
	char why[512], io[128];

	asan_small_quarantine();
	check_init(SUITE);
	check_begin("daemon starts, 200 buffers with long names in its cache");
	snprintf(io, sizeof(io), "max_queued = %d\n", MAX_QUEUED);
	if (daemon_start_more(&d, SUITE, io, "[daemon]\nmax_reply_bytes = 1M\n\n"
			      "[cache]\ncache_limit = 256M\n", why, sizeof(why)) < 0) {
		check_fail(__FILE__, __LINE__, "%s", why);
		check_end();
		daemon_cleanup(&d);
		return 1;
	}
	if (!make_files() || !fill_cache() || !check_end()) {
		daemon_cleanup(&d);
		return 1;
	}
	daemon_baseline(&d);

	CASE(flood(DL_LIST, "LIST"), "LISTs never read: RSS within 64 MiB, the daemon stops "
	     "reading, another client is served");
	CASE(flood(DL_STATUS, "STATUS"), "STATUSes never read: the same");
	CASE(unread_dones(), "40 paced LOADs, DONEs never read: at most max_queued (%d) "
	     "buffer fds in the daemon; all answered once read", MAX_QUEUED);

	daemon_stop_case(&d, "daemon exits 0 on SIGTERM");
	return check_finish();
}
