/*
 * test-trust.c: a client gets only bytes it could read itself.
 *
 * The daemon runs as root; the clients are forked children that drop to nobody
 * (uid/gid 65534, optionally with one supplementary group). By path, the daemon must
 * open files with the client's credentials: a root-only file, a file in a directory
 * nobody cannot search, a symlink to a root-only file, are all EACCES; a file readable
 * through a supplementary group loads. By fd, what the client opened (as root, before
 * dropping privileges) loads. With a cache: a file root's load left in the cache is
 * still EACCES by path for nobody, a public one is served from it; nobody's LIST
 * hides root's entries and its EVICT cannot drop them. Needs root; SKIPs otherwise.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../lib/check.h"
#include "../lib/harness.h"
#include "../lib/loads.h"

#define SUITE "trust"
#define NOBODY 65534
#define EXTRA_GID 4242
#define SIZE (MiB + 17)

static struct test_daemon d;
static char secret[PATH_MAX], public[PATH_MAX], locked_inner[PATH_MAX];
static char link_path[PATH_MAX], group_file[PATH_MAX];

struct child_arg {
	const char *path;	/* load this path ... */
	bool open_first;	/* ... or open it before dropping and load the fd */
	gid_t extra_gid;	/* a supplementary group to keep, 0 for none */
	int want_err;		/* 0: DONE expected; else this ERROR errno */
	uint32_t seed;
};


/* Runs in the child. */
static int child_load(void *arg, char *msg, size_t len)
{
	struct child_arg *a = arg;
	struct dmaload_event ev;
	struct dmaload *dl = NULL;
	char why[512];
	int fd = -1, r;

	if (a->open_first) {
		fd = open(a->path, O_RDONLY | O_CLOEXEC);
		if (fd < 0) {
			snprintf(msg, len, "open as root: %s", strerror(errno));
			return 1;
		}
	}
	dl = lc_connect_as(NOBODY, a->extra_gid, d.sock, "nobody", msg, len);
	if (!dl)
		return 1;
	r = fd >= 0 ? dmaload_load_fd_sync(dl, fd, NULL, &ev)
		    : dmaload_load_path_sync(dl, a->path, NULL, &ev);
	if (a->want_err) {
		if (r == 0) {
			snprintf(msg, len, "expected ERROR %s, got DONE of %llu bytes",
				 strerrorname_np(a->want_err), (unsigned long long)ev.size);
			return 1;
		}
		if (ev.type != DMALOAD_EV_ERROR || ev.err != a->want_err || !ev.message[0]) {
			snprintf(msg, len, "expected ERROR %s with a message, got r=%d %s",
				 strerrorname_np(a->want_err), r, lc_event_str(&ev));
			return 1;
		}
		return 0;
	}
	if (r != 0) {
		snprintf(msg, len, "expected DONE, got r=%d %s", r,
			 ev.type == DMALOAD_EV_ERROR ? lc_event_str(&ev) : strerror(-r));
		return 1;
	}
	if (ev.size != SIZE || !buf_verify(ev.fd, SIZE, a->seed, 0, why, sizeof(why))) {
		snprintf(msg, len, "DONE of %llu bytes: %s", (unsigned long long)ev.size,
			 ev.size != SIZE ? "wrong size" : why);
		return 1;
	}
	return 0;
}

/* Runs in the child: as nobody, STATUS while root's loads run must count them but
 * list none. "RETRY" when no load was running at the time. */
static int child_status(void *arg, char *msg, size_t len)
{
	struct dmaload_status st = { 0 };
	struct dmaload *dl = NULL;
	int r;

	(void)arg;
	dl = lc_connect_as(NOBODY, 0, d.sock, "nobody-status", msg, len);
	if (!dl)
		return 1;
	r = dmaload_status(dl, &st);
	if (r < 0) {
		snprintf(msg, len, "status: %s", strerror(-r));
		return 1;
	}
	if (st.loads_active + st.loads_queued == 0) {
		snprintf(msg, len, "RETRY");
		return 1;
	}
	if (st.n_loads != 0) {
		snprintf(msg, len, "nobody sees %zu of root's loads (first: %s)", st.n_loads,
			 st.loads[0].name);
		return 1;
	}
	return 0;
}

static void status_hides_others(void)
{
	struct dmaload *dl = lc_connect(&d, "root-loader");
	char big[PATH_MAX], msg[1024] = "";
	bool seen = false;
	int r;

	snprintf(big, sizeof(big), "%s/big-secret", d.dir);
	r = file_make(big, 256 * MiB, 9, 0600);
	if (!dl || !CHECKF(r == 0, "file_make: %s", strerror(-r)))
		goto out;
	for (int attempt = 0; attempt < 5 && !seen && !check_failed(); attempt++) {
		uint64_t ids[4];

		for (int i = 0; i < 4; i++)
			CHECK_OK(dmaload_load_path(dl, big, NULL, &ids[i]));
		r = child_run(child_status, NULL, msg, sizeof(msg), 30000);
		if (r == 0)
			seen = true;
		else if (strcmp(msg, "RETRY") != 0)
			CHECKF(false, "%s", msg[0] ? msg : "child failed");
		for (int i = 0; i < 4; i++) {
			struct dmaload_event ev;

			if (CHECK_OK(dmaload_wait(dl, ids[i], &ev, NULL, NULL)) &&
			    ev.type == DMALOAD_EV_DONE)
				close(ev.fd);
		}
	}
	CHECKF(seen || check_failed(), "root's loads never seen running in 5 attempts");
out:
	if (dl)
		dmaload_close(dl);
	unlink(big);
	CHECK_SETTLED(&d, 5000);
}

/* ---- the cache -------------------------------------------------------------------- */

static struct test_daemon dc;

/* As nobody, against a daemon whose cache holds root's loads of secret and public. */
static int child_cache(void *arg, char *msg, size_t len)
{
	struct dmaload_cache_list l;
	struct dmaload_event ev;
	struct dmaload *dl = NULL;
	uint64_t bytes;
	char why[512];
	int r;

	(void)arg;
	dl = lc_connect_as(NOBODY, 0, dc.sock, "nobody-cache", msg, len);
	if (!dl)
		return 1;
	r = dmaload_load_path_sync(dl, secret, NULL, &ev);
	if (r != -EACCES) {
		snprintf(msg, len, "cached secret by path: %d (%s), flags 0x%x", r,
			 ev.type == DMALOAD_EV_ERROR ? ev.message : "DONE", ev.done_flags);
		return 1;
	}
	r = dmaload_load_path_sync(dl, public, NULL, &ev);
	if (r < 0) {
		snprintf(msg, len, "cached public: %s", strerror(-r));
		return 1;
	}
	if (!(ev.done_flags & DL_DONE_CACHED) ||
	    !buf_verify(ev.fd, SIZE, 2, 0, why, sizeof(why))) {
		snprintf(msg, len, "public: flags 0x%x: %s", ev.done_flags,
			 ev.done_flags & DL_DONE_CACHED ? why : "not from the cache");
		return 1;
	}
	close(ev.fd);
	r = dmaload_list(dl, &l);
	if (r < 0 || l.n_entries != 0 || l.n_hidden != 2) {
		snprintf(msg, len, "LIST as nobody: %d, %zu shown, %u hidden (want 0 and 2)", r,
			 l.n_entries, l.n_hidden);
		return 1;
	}
	dmaload_list_free(&l);
	if ((r = dmaload_evict(dl, secret, &bytes)) != -ENOENT ||
	    (r = dmaload_evict(dl, NULL, &bytes)) != -ENOENT) {
		snprintf(msg, len, "EVICT of root's entries as nobody: %d", r);
		return 1;
	}
	dmaload_close(dl);
	return 0;
}

static void cache_trust(void)
{
	struct dmaload *dl = NULL;
	struct dmaload_cache_list l;
	struct dmaload_event ev;
	char why[512], msg[1024] = "";
	uint64_t bytes;
	int r;

	if (daemon_start(&dc, "trust-cache", "[cache]\ncache_limit = 64M\n", why,
			 sizeof(why)) < 0) {
		check_fail(__FILE__, __LINE__, "%s", why);
		return;
	}
	daemon_baseline(&dc);
	if (!(dl = lc_connect(&dc, "root")))
		goto out;
	if (!CHECK_OK(dmaload_load_path_sync(dl, secret, NULL, &ev)))
		goto out;
	close(ev.fd);
	if (!CHECK_OK(dmaload_load_path_sync(dl, public, NULL, &ev)))
		goto out;
	close(ev.fd);
	r = child_run(child_cache, NULL, msg, sizeof(msg), 30000);
	CHECKF(r == 0, "%s", msg[0] ? msg : "child failed");
	/* root still sees and drops both */
	if (CHECK_OK(dmaload_list(dl, &l))) {
		CHECK_U64(l.n_entries, ==, 2);
		dmaload_list_free(&l);
	}
	CHECK_INT(dmaload_evict(dl, NULL, &bytes), ==, 2);
	dmaload_close(dl);
	dl = NULL;
	CHECK_SETTLED_START(&dc, 5000);
out:
	if (dl)
		dmaload_close(dl);
	r = daemon_stop(&dc);
	CHECKF(r == 0, "cache daemon: exit status %d", r);
	daemon_cleanup(&dc);
}

static void run(const char *path, bool open_first, gid_t extra, int want_err,
		uint32_t seed)
{
	struct child_arg a = {
		.path = path, .open_first = open_first, .extra_gid = extra,
		.want_err = want_err, .seed = seed,
	};
	char msg[1024];
	int r;

	if (geteuid() != 0) {
		check_skip("needs root");
		return;
	}
	r = child_run(child_load, &a, msg, sizeof(msg), 30000);
	CHECKF(r == 0, "%s", msg[0] ? msg : "child failed");
	CHECK_SETTLED(&d, 5000);
}

static bool setup(void)
{
	char dir[PATH_MAX];
	int r;

	snprintf(secret, sizeof(secret), "%s/secret", d.dir);
	snprintf(public, sizeof(public), "%s/public", d.dir);
	snprintf(dir, sizeof(dir), "%s/locked", d.dir);
	snprintf(locked_inner, sizeof(locked_inner), "%s/locked/inner", d.dir);
	snprintf(link_path, sizeof(link_path), "%s/link-to-secret", d.dir);
	snprintf(group_file, sizeof(group_file), "%s/group-readable", d.dir);

	if ((r = file_make(secret, SIZE, 1, 0600)) < 0 ||
	    (r = file_make(public, SIZE, 2, 0644)) < 0 ||
	    (r = file_make(group_file, SIZE, 3, 0640)) < 0)
		return CHECKF(false, "file_make: %s", strerror(-r));
	if (!CHECKF(chown(group_file, 0, EXTRA_GID) == 0, "chown: %s", strerror(errno)))
		return false;
	if (!CHECKF(mkdir(dir, 0700) == 0, "mkdir: %s", strerror(errno)))
		return false;
	if ((r = file_make(locked_inner, SIZE, 4, 0644)) < 0)
		return CHECKF(false, "file_make: %s", strerror(-r));
	return CHECKF(symlink(secret, link_path) == 0, "symlink: %s", strerror(errno));
}

int main(void)
{
	check_init(SUITE);
	if (geteuid() != 0) {
		check_skip_case("trust checks", "needs root (the daemon must run as root, clients as nobody)");
		return 0;
	}
	if (!daemon_start_case(&d, SUITE, NULL, NULL))
		return 1;
	setup();
	if (!check_end()) {
		daemon_cleanup(&d);
		return 1;
	}
	daemon_baseline(&d);

	CASE(run(public, false, 0, 0, 2), "nobody loads a 0644 file by path");
	CASE(run(secret, false, 0, EACCES, 1), "nobody loads a root 0600 file by path -> EACCES");
	CASE(run(secret, true, 0, 0, 1), "nobody loads a root 0600 file by fd opened as root");
	CASE(run(locked_inner, false, 0, EACCES, 4),
	     "nobody loads a 0644 file in a 0700 root dir -> EACCES");
	CASE(run(link_path, false, 0, EACCES, 1),
	     "nobody loads a symlink to a root 0600 file -> EACCES");
	CASE(run(group_file, false, EXTRA_GID, 0, 3),
	     "nobody with a supplementary group loads a 0640 group file");
	CASE(run(group_file, false, 0, EACCES, 3),
	     "nobody without that group loads the 0640 group file -> EACCES");
	CASE(run(secret, false, 0, EACCES, 1), "still EACCES after other clients' loads");
	CASE(status_hides_others(), "nobody's STATUS counts root's loads but lists none");
	CASE(cache_trust(), "cached root-only file still EACCES for nobody; LIST/EVICT hide "
	     "root's entries");

	daemon_stop_case(&d, "daemon exits 0 on SIGTERM");
	return check_finish();
}
