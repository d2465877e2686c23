/*
 * test-holders.c: every holder of a shared buffer has a read-only descriptor of its
 * own, so no holder changes what another sees.
 *
 * Against a daemon with its cache on: a slow leader, a load that joins it, and two
 * cache hits (one of them nobody's) all get the same sealed buffer. For each pair of
 * holders: reading one to the end leaves the other at offset 0 (it still reads every
 * byte), O_NONBLOCK set on one does not show on the other, each is O_RDONLY, a
 * writable shared mapping fails, the buffer's name does not carry the path, and
 * nobody cannot reopen its descriptor read-write. A load that names its method (it
 * shares nothing) gets the same kind of descriptor. Then the CLI case the issue
 * reported: three `dmaload-ctl load F -- sh -c 'wc -c <&3'` in a row all count the
 * whole file. Every load asks for an exact-size buffer, so a host with huge pages
 * reserved gives the same bytes to count. Needs root (a nobody client); SKIPs
 * otherwise.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include "../lib/check.h"
#include "../lib/harness.h"
#include "../lib/loads.h"

#define SUITE "holders"
#define NOBODY 65534
#define SIZE (24 * MiB + 123)
#define SEED 21

static struct test_daemon d;
static char file[PATH_MAX];

/* Reads @fd from its current offset to the end; the bytes must be the file's. */
static bool read_all(int fd, char *why, size_t len)
{
	static char buf[1 << 20], want[1 << 20];
	uint64_t at = 0;
	ssize_t n;

	while ((n = read(fd, buf, sizeof(buf))) > 0) {
		pattern_fill(SEED, at, want, (size_t)n);
		if (memcmp(buf, want, (size_t)n)) {
			snprintf(why, len, "wrong bytes near %llu", (unsigned long long)at);
			return false;
		}
		at += (uint64_t)n;
	}
	if (n < 0 || at != SIZE) {
		snprintf(why, len, "read %llu of %llu bytes (%s)", (unsigned long long)at,
			 (unsigned long long)SIZE, n < 0 ? strerror(errno) : "end of file");
		return false;
	}
	return true;
}

/* What one holder may and may not do with its descriptor. */
static bool holder_ok(int fd, char *why, size_t len)
{
	char link[64], target[256];
	ssize_t k;
	void *p;
	int fl = fcntl(fd, F_GETFL);

	if (fl < 0 || (fl & O_ACCMODE) != O_RDONLY) {
		snprintf(why, len, "flags 0x%x: not read-only", fl);
		return false;
	}
	p = mmap(NULL, SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (p != MAP_FAILED) {
		munmap(p, SIZE);
		snprintf(why, len, "a writable shared mapping succeeded");
		return false;
	}
	snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
	k = readlink(link, target, sizeof(target) - 1);
	target[k < 0 ? 0 : k] = '\0';
	if (strstr(target, "holders") || strstr(target, "model")) {
		snprintf(why, len, "the buffer's name shows the path: %s", target);
		return false;
	}
	return true;
}

/* Two holders of one buffer do not share an offset or status flags. */
static bool independent(int a, int b, char *why, size_t len)
{
	int fb;

	if (lseek(a, 0, SEEK_SET) < 0 || lseek(b, 0, SEEK_SET) < 0) {
		snprintf(why, len, "lseek: %s", strerror(errno));
		return false;
	}
	if (!read_all(a, why, len))
		return false;
	if (lseek(b, 0, SEEK_CUR) != 0) {
		snprintf(why, len, "reading one holder moved the other's offset to %lld",
			 (long long)lseek(b, 0, SEEK_CUR));
		return false;
	}
	if (!read_all(b, why, len))
		return false;
	if (fcntl(a, F_SETFL, fcntl(a, F_GETFL) | O_NONBLOCK) < 0) {
		snprintf(why, len, "F_SETFL: %s", strerror(errno));
		return false;
	}
	fb = fcntl(b, F_GETFL);
	fcntl(a, F_SETFL, fcntl(a, F_GETFL) & ~O_NONBLOCK);
	if (fb & O_NONBLOCK) {
		snprintf(why, len, "O_NONBLOCK set on one holder shows on the other");
		return false;
	}
	return true;
}

/* nobody's cache hit, checked against @other (root's descriptor, inherited). */
static int child_nobody(void *arg, char *msg, size_t len)
{
	int other = *(int *)arg, r, rw;
	struct dmaload_opts o;
	struct dmaload_event ev;
	struct dmaload *dl;
	char link[64];

	if (child_drop(NOBODY, 0, msg, len) < 0)
		return 1;
	dmaload_opts_init(&o);
	o.exact_size = true;
	r = dmaload_connect(&dl, d.sock, "nobody");
	if (r < 0 || (r = dmaload_load_path_sync(dl, file, &o, &ev)) < 0) {
		snprintf(msg, len, "nobody's load: %s", strerror(-r));
		return 1;
	}
	if (!(ev.done_flags & DL_DONE_CACHED)) {
		snprintf(msg, len, "nobody's load was not a cache hit");
		return 1;
	}
	if (!holder_ok(ev.fd, msg, len) || !independent(ev.fd, other, msg, len))
		return 1;
	snprintf(link, sizeof(link), "/proc/self/fd/%d", ev.fd);
	rw = open(link, O_RDWR | O_CLOEXEC);
	if (rw >= 0 || errno != EACCES) {
		snprintf(msg, len, "nobody reopened its buffer read-write: %s",
			 rw >= 0 ? "it worked" : strerror(errno));
		return 1;
	}
	dmaload_close(dl);
	return 0;
}

static void shared_holders(void)
{
	struct dmaload *lead = lc_connect(&d, "leader"), *join = lc_connect(&d, "joiner");
	struct dmaload_event ev[4];
	struct dmaload_opts o;
	int fds[4] = { -1, -1, -1, -1 };
	char why[512], msg[1024] = "";
	uint64_t lid, jid;
	int r;

	if (!lead || !join)
		goto out;
	dmaload_opts_init(&o);
	o.exact_size = true;
	o.rate_limit = 16 * MiB;	/* slow enough that the second load joins */
	if (!CHECK_OK(dmaload_load_path(lead, file, &o, &lid)))
		goto out;
	sleep_ms(300);
	/* at the leader's rate: a faster load would take the read over, not join */
	if (!CHECK_OK(dmaload_load_path(join, file, &o, &jid)))
		goto out;
	if (!CHECK_OK(dmaload_wait(lead, lid, &ev[0], NULL, NULL)) ||
	    !CHECK_OK(dmaload_wait(join, jid, &ev[1], NULL, NULL)))
		goto out;
	fds[0] = ev[0].type == DMALOAD_EV_DONE ? ev[0].fd : -1;
	fds[1] = ev[1].type == DMALOAD_EV_DONE ? ev[1].fd : -1;
	if (!CHECKF(fds[0] >= 0 && fds[1] >= 0, "leader %s, joiner %s",
		    lc_event_str(&ev[0]), lc_event_str(&ev[1])))
		goto out;
	CHECKF(ev[1].done_flags & DL_DONE_JOINED, "the second load did not join");
	for (int i = 2; i < 4; i++) {
		if (!CHECK_OK(dmaload_load_path_sync(lead, file, &o, &ev[i])))
			goto out;
		fds[i] = ev[i].fd;
		CHECKF(ev[i].done_flags & DL_DONE_CACHED, "load %d was not a cache hit", i);
	}
	for (int i = 0; i < 4; i++)
		if (!holder_ok(fds[i], why, sizeof(why)))
			CHECKF(false, "holder %d: %s", i, why);
	for (int i = 0; i < 4; i++)
		for (int k = i + 1; k < 4; k++)
			if (!independent(fds[i], fds[k], why, sizeof(why)))
				CHECKF(false, "holders %d and %d: %s", i, k, why);
	r = child_run(child_nobody, &fds[0], msg, sizeof(msg), 60000);
	CHECKF(r == 0, "%s", msg[0] ? msg : "child failed");
	/* A load that names its method shares nothing, and is handed out the same way. */
	o.method = DL_METHOD_BUFFERED;
	if (!CHECK_OK(dmaload_load_path_sync(lead, file, &o, &ev[0])))
		goto out;
	CHECKF(!(ev[0].done_flags & (DL_DONE_CACHED | DL_DONE_JOINED)), "the load that "
	       "named its method shared a buffer: flags 0x%x", ev[0].done_flags);
	if (!holder_ok(ev[0].fd, why, sizeof(why)) ||
	    !independent(ev[0].fd, fds[0], why, sizeof(why)))
		CHECKF(false, "the load that named its method: %s", why);
	close(ev[0].fd);
out:
	for (int i = 0; i < 4; i++)
		if (fds[i] >= 0)
			close(fds[i]);
	if (lead)
		dmaload_close(lead);
	if (join)
		dmaload_close(join);
}

/* The report: a second and third CMD read nothing, their fd 3 shared the first's. */
static void cli_three_times(void)
{
	char want[64], out[4096], err[4096];

	snprintf(want, sizeof(want), "%llu", (unsigned long long)SIZE);
	for (int i = 0; i < 3; i++) {
		const char *args[] = { "load", file, "--exact-size", "--", "sh", "-c",
				       "wc -c <&3", NULL };
		int r = ctl_run(d.sock, d.dir, args, 60000, out, sizeof(out), err,
				sizeof(err));

		if (!CHECKF(r == 0 && strstr(out, want), "run %d: exit %d, counted \"%s\", "
			    "want %s (%s)", i + 1, r, out, want, err))
			return;
	}
}

int main(void)
{
	int r;

	check_init(SUITE);
	if (geteuid() != 0) {
		check_skip_case("holders", "needs root (one holder is nobody)");
		return 0;
	}
	if (!daemon_start_case(&d, SUITE, "[cache]\ncache_limit = 256M\n", NULL))
		return 1;
	snprintf(file, sizeof(file), "%s/model.bin", d.dir);
	r = file_make(file, SIZE, SEED, 0644);
	CHECKF(r == 0, "file_make: %s", strerror(-r));
	check_end();

	CASE(shared_holders(), "a leader, a joiner and two cache hits (and nobody's), and a "
	     "load that names its method: each read-only, own offset and flags, no path in "
	     "the name, no read-write reopen");
	CASE(cli_three_times(), "three `dmaload-ctl load F -- sh -c 'wc -c <&3'` in a row "
	     "each count the whole file");

	daemon_stop_case(&d, "daemon exits 0 on SIGTERM");
	return check_finish();
}
