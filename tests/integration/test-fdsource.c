/*
 * test-fdsource.c: a load by fd reads what the client's own fd reads.
 *
 * The daemon runs as root; the clients are forked children that drop to nobody. On
 * the FUSE test filesystem in mode per-uid (tests/fuse/dl-fusefs.c), a file's bytes
 * depend on who opened it: nobody's fd must load nobody's bytes with every method
 * (buffered, direct, cfr, auto), never root's, and the fd's offset and status flags
 * must be what they were. A cached root load of that file is not served to nobody's
 * fd. A root-only 0600 file opened as root before the drop loads by fd even with
 * method direct: the daemon may not reopen it as nobody, so it reads through the fd
 * (method buffered, reason DL_WHY_NO_REOPEN). libdmaload and dmaload-ctl turn
 * /dev/stdin, /dev/fd/N and /proc/self/fd/N into loads of the client's own fd. Needs
 * root; the FUSE cases SKIP where FUSE cannot be mounted.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../lib/check.h"
#include "../lib/fusefs.h"
#include "../lib/harness.h"
#include "../lib/loads.h"

#define SUITE "fdsource"
#define NOBODY 65534
#define SIZE (MiB + 3 * 4096 + 17)
#define SECRET_SEED 71
#define FD_OFFSET 12345
#define FD_N 7				/* where the children put the file they pass */

static struct test_daemon d, dc;
static struct fusefs fs;
static bool fs_up;
static char fs_why[512];
static char secret[PATH_MAX], expected[PATH_MAX], ctl_dir[PATH_MAX];

enum how {
	HOW_FD,			/* dmaload_load_fd(FD_N) */
	HOW_DEV_STDIN,		/* dmaload_load_path("/dev/stdin"), the file on fd 0 */
	HOW_DEV_FD,		/* dmaload_load_path("/dev/fd/FD_N") */
	HOW_PROC_FD,		/* dmaload_load_path("/proc/self/fd/FD_N") */
};

struct child_arg {
	const struct test_daemon *d;
	const char *path;	/* the file to open */
	bool open_as_root;	/* before dropping to nobody (else as nobody) */
	enum how how;
	uint8_t method;
	uint32_t seed;		/* the bytes it must load */
	uint8_t want_method;	/* DL_METHOD_AUTO: any */
	int want_reason;	/* -1: any */
	bool not_cached;	/* DONE must not come from the cache */
};


/* Opens @path at fd @at (not close-on-exec: dmaload-ctl inherits it), seeked to
 * FD_OFFSET. */
static int open_at(const char *path, int at, char *msg, size_t len)
{
	int fd = open(path, O_RDONLY);

	if (fd < 0) {
		snprintf(msg, len, "open %s as uid %u: %s", path, geteuid(), strerror(errno));
		return -1;
	}
	if (fd != at && (dup2(fd, at) < 0 || close(fd) < 0)) {
		snprintf(msg, len, "dup2: %s", strerror(errno));
		return -1;
	}
	if (lseek(at, FD_OFFSET, SEEK_SET) != FD_OFFSET) {
		snprintf(msg, len, "lseek: %s", strerror(errno));
		return -1;
	}
	return at;
}

/* The fd's offset and status flags are what they were. */
static int fd_unchanged(int fd, int flags, char *msg, size_t len)
{
	off_t off = lseek(fd, 0, SEEK_CUR);
	int fl = fcntl(fd, F_GETFL);

	if (off != FD_OFFSET || fl != flags) {
		snprintf(msg, len, "the passed fd changed: offset %lld (was %d), flags 0%o "
			 "(were 0%o)", (long long)off, FD_OFFSET, fl, flags);
		return -1;
	}
	return 0;
}

/* Runs in the child. */
static int child_load(void *arg, char *msg, size_t len)
{
	struct child_arg *a = arg;
	struct dmaload_event ev;
	struct dmaload_opts o;
	struct dmaload *dl = NULL;
	char why[512], p[64];
	int fd, fl, r;

	dmaload_opts_init(&o);
	o.method = a->method;
	if (a->open_as_root &&
	    open_at(a->path, a->how == HOW_DEV_STDIN ? 0 : FD_N, msg, len) < 0)
		return 1;
	if (child_drop(NOBODY, 0, msg, len) < 0)
		return 1;
	if (!a->open_as_root &&
	    open_at(a->path, a->how == HOW_DEV_STDIN ? 0 : FD_N, msg, len) < 0)
		return 1;
	fd = a->how == HOW_DEV_STDIN ? 0 : FD_N;
	fl = fcntl(fd, F_GETFL);
	r = dmaload_connect(&dl, a->d->sock, "nobody");
	if (r < 0) {
		snprintf(msg, len, "connect as nobody: %s", strerror(-r));
		return 1;
	}
	switch (a->how) {
	case HOW_FD:
		r = dmaload_load_fd_sync(dl, fd, &o, &ev);
		break;
	case HOW_DEV_STDIN:
		r = dmaload_load_path_sync(dl, "/dev/stdin", &o, &ev);
		break;
	case HOW_DEV_FD:
	case HOW_PROC_FD:
		snprintf(p, sizeof(p), a->how == HOW_DEV_FD ? "/dev/fd/%d" : "/proc/self/fd/%d",
			 fd);
		r = dmaload_load_path_sync(dl, p, &o, &ev);
		break;
	}
	if (r != 0) {
		snprintf(msg, len, "expected DONE, got r=%d %s", r,
			 ev.type == DMALOAD_EV_ERROR ? lc_event_str(&ev) : strerror(-r));
		return 1;
	}
	if (ev.size != SIZE || !buf_verify(ev.fd, SIZE, a->seed, 0, why, sizeof(why))) {
		/* whose bytes were they? */
		char root_why[512];
		bool roots = ev.size == SIZE &&
			     buf_verify(ev.fd, SIZE, fusefs_seed(0), 0, root_why,
					sizeof(root_why));

		snprintf(msg, len, "DONE of %llu bytes (%s, %s, flags 0x%x): %s%s%s",
			 (unsigned long long)ev.size, dl_method_name(ev.method),
			 dl_reason_name(ev.reason), ev.done_flags,
			 roots ? "root's bytes, not nobody's" :
			 ev.size != SIZE ? "wrong size" : why,
			 roots || ev.size != SIZE ? "" : "; against root's bytes: ",
			 roots || ev.size != SIZE ? "" : root_why);
		return 1;
	}
	close(ev.fd);
	if (a->want_method != DL_METHOD_AUTO &&
	    (ev.method != a->want_method ||
	     (a->want_reason >= 0 && ev.reason != a->want_reason))) {
		snprintf(msg, len, "DONE method %s (%s), expected %s (%s)",
			 dl_method_name(ev.method), dl_reason_name(ev.reason),
			 dl_method_name(a->want_method),
			 a->want_reason >= 0 ? dl_reason_name((unsigned)a->want_reason) : "any");
		return 1;
	}
	if (a->not_cached && (ev.done_flags & (DL_DONE_CACHED | DL_DONE_JOINED))) {
		snprintf(msg, len, "served from another load (flags 0x%x)", ev.done_flags);
		return 1;
	}
	if (fd_unchanged(fd, fl, msg, len) < 0)
		return 1;
	dmaload_close(dl);
	return 0;
}

static void run(struct child_arg a)
{
	char msg[1024] = "";
	int r;

	if (!a.d)
		a.d = &d;
	r = child_run(child_load, &a, msg, sizeof(msg), 30000);
	CHECKF(r == 0, "%s", msg[0] ? msg : "child failed");
	CHECK_SETTLED((struct test_daemon *)a.d, 5000);
}

static void fuse_load(uint8_t method)
{
	if (!fs_up) {
		check_skip("%s", fs_why);
		return;
	}
	run((struct child_arg){ .path = fs.file, .how = HOW_FD, .method = method,
				.seed = fusefs_seed(NOBODY), .want_reason = -1 });
}

/* Root's load of the FUSE file by path sits in the cache; nobody's fd of it must not
 * be served from there. */
static void fuse_cached(void)
{
	struct dmaload *dl = NULL;
	struct dmaload_event ev;
	char why[512];

	if (!fs_up) {
		check_skip("%s", fs_why);
		return;
	}
	if (daemon_start(&dc, "fdsource-cache", "[cache]\ncache_limit = 64M\n", why,
			 sizeof(why)) < 0) {
		check_fail(__FILE__, __LINE__, "%s", why);
		return;
	}
	daemon_baseline(&dc);
	if (!(dl = lc_connect(&dc, "root")))
		goto out;
	if (!CHECK_OK(dmaload_load_path_sync(dl, fs.file, NULL, &ev)))
		goto out;
	CHECK_BUF(ev.fd, SIZE, fusefs_seed(0), 0);
	close(ev.fd);
	dmaload_close(dl);
	dl = NULL;
	run((struct child_arg){ .d = &dc, .path = fs.file, .how = HOW_FD,
				.method = DL_METHOD_AUTO, .seed = fusefs_seed(NOBODY),
				.want_reason = -1, .not_cached = true });
out:
	if (dl)
		dmaload_close(dl);
	CHECKF(daemon_stop(&dc) == 0, "cache daemon did not exit 0");
	daemon_cleanup(&dc);
}

static void secret_direct(void)
{
	run((struct child_arg){ .path = secret, .open_as_root = true, .how = HOW_FD,
				.method = DL_METHOD_DIRECT, .seed = SECRET_SEED,
				.want_method = DL_METHOD_BUFFERED,
				.want_reason = DL_WHY_NO_REOPEN });
}

static void lib_path(enum how how)
{
	run((struct child_arg){ .path = secret, .open_as_root = true, .how = how,
				.seed = SECRET_SEED, .want_reason = -1 });
}

static void lib_fuse_path(void)
{
	if (!fs_up) {
		check_skip("%s", fs_why);
		return;
	}
	run((struct child_arg){ .path = fs.file, .how = HOW_DEV_FD,
				.seed = fusefs_seed(NOBODY), .want_reason = -1 });
}

/* Runs in the child: dmaload-ctl load SPELLING -- cmp, as nobody, of the root-only
 * file opened as root on FD_N. */
static int child_ctl(void *arg, char *msg, size_t len)
{
	const char *spelling = arg;
	static char out[8192], err[8192];
	char src[64], script[PATH_MAX * 2];
	int r, fl;

	if (open_at(secret, FD_N, msg, len) < 0 || child_drop(NOBODY, 0, msg, len) < 0)
		return 1;
	fl = fcntl(FD_N, F_GETFL);
	snprintf(src, sizeof(src), "%s%d", spelling, FD_N);
	/* <&3, not /proc/self/fd/3: a reopen of root's 0600 buffer is not nobody's */
	snprintf(script, sizeof(script), "head -c \"$DMALOAD_SIZE\" <&3 | cmp - '%s' && "
		 "test \"$DMALOAD_SIZE\" = %llu", expected, (unsigned long long)SIZE);
	const char *args[] = { "load", src, "--", "sh", "-c", script, NULL };

	r = ctl_run(d.sock, ctl_dir, args, 30000, out, sizeof(out), err, sizeof(err));
	if (r != 0) {
		snprintf(msg, len, "dmaload-ctl load %s: exit status %d; stderr: %.400s", src,
			 r, err);
		return 1;
	}
	return fd_unchanged(FD_N, fl, msg, len) < 0;
}

static void ctl_path(const char *spelling)
{
	char msg[1024] = "";
	int r = child_run(child_ctl, (void *)spelling, msg, sizeof(msg), 40000);

	CHECKF(r == 0, "%s", msg[0] ? msg : "child failed");
	CHECK_SETTLED(&d, 5000);
}

static bool setup(void)
{
	int r;

	snprintf(secret, sizeof(secret), "%s/secret", d.dir);
	snprintf(expected, sizeof(expected), "%s/expected", d.dir);
	snprintf(ctl_dir, sizeof(ctl_dir), "%s/ctl", d.dir);
	if ((r = file_make(secret, SIZE, SECRET_SEED, 0600)) < 0 ||
	    (r = file_make(expected, SIZE, SECRET_SEED, 0644)) < 0)
		return CHECKF(false, "file_make: %s", strerror(-r));
	if (!CHECKF(mkdir(ctl_dir, 0755) == 0 && chown(ctl_dir, NOBODY, NOBODY) == 0,
		    "%s: %s", ctl_dir, strerror(errno)))
		return false;
	fs_up = fusefs_mount(&fs, d.dir, "per-uid", SIZE, fs_why, sizeof(fs_why)) == 0;
	return true;
}

int main(void)
{
	check_init(SUITE);
	fs.pid = -1;
	if (geteuid() != 0) {
		check_skip_case("fd source checks", "needs root (the daemon must run as root, clients as nobody)");
		return 0;
	}
	if (!daemon_start_case(&d, SUITE, NULL, NULL))
		return 1;
	setup();
	if (!check_end()) {
		fusefs_unmount(&fs);
		daemon_cleanup(&d);
		return 1;
	}
	daemon_baseline(&d);

	CASE(fuse_load(DL_METHOD_BUFFERED), "FUSE per-uid file by nobody's fd, buffered: "
	     "nobody's bytes, offset and flags kept");
	CASE(fuse_load(DL_METHOD_DIRECT), "FUSE per-uid file by nobody's fd, direct: "
	     "nobody's bytes, offset and flags kept");
	CASE(fuse_load(DL_METHOD_CFR), "FUSE per-uid file by nobody's fd, cfr: "
	     "nobody's bytes, offset and flags kept");
	CASE(fuse_load(DL_METHOD_AUTO), "FUSE per-uid file by nobody's fd, auto: "
	     "nobody's bytes, offset and flags kept");
	CASE(fuse_cached(), "FUSE per-uid file cached by root's load: nobody's fd still "
	     "gets nobody's bytes");
	CASE(secret_direct(), "root 0600 file by fd opened as root, method direct: exact "
	     "bytes, buffered (no reopen)");
	CASE(lib_path(HOW_DEV_STDIN), "libdmaload: /dev/stdin loads the client's fd 0");
	CASE(lib_path(HOW_DEV_FD), "libdmaload: /dev/fd/N loads the client's fd N");
	CASE(lib_path(HOW_PROC_FD), "libdmaload: /proc/self/fd/N loads the client's fd N");
	CASE(lib_fuse_path(), "libdmaload: /dev/fd/N of a FUSE per-uid file: nobody's bytes");
	CASE(ctl_path("/dev/fd/"), "dmaload-ctl load /dev/fd/N: the client's fd N");
	CASE(ctl_path("/proc/self/fd/"), "dmaload-ctl load /proc/self/fd/N: the client's "
	     "fd N");

	fusefs_unmount(&fs);
	daemon_stop_case(&d, "daemon exits 0 on SIGTERM");
	return check_finish();
}
