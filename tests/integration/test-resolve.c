/*
 * test-resolve.c: a path is resolved as if the client had opened it, never through the
 * daemon's own /proc entries.
 *
 * The daemon runs as root with its cache on; root has loaded a 0600 file (so the
 * daemon holds a cached buffer of it) and has a slow load in flight (a buffer being
 * filled). Then nobody, and root too, ask for every spelling of "the opener's fds"
 * and the daemon's own /proc directory: /proc/self/fd/N, /proc/thread-self/fd/N,
 * /proc/<daemon pid>/fd/N and task/<tid>/fd/N, /dev/fd/N, the daemon's map_files,
 * /proc/<daemon pid>/root/..., and symlink chains to them. Every one must get the same
 * refusal (so the errors map nothing) and none a DONE. Ordinary paths with ".", "..",
 * relative and absolute symlinks load their bytes; ".." never climbs above the root.
 *
 * Containers (uid 0, no user namespace): a client in its own mount namespace that
 * hides a host directory under a tmpfs cannot load the host's file there, and loads
 * its own; a client chrooted into a tree with only the daemon's socket bound in cannot
 * reach the host's root-only file by its path, a symlink to it or "..", and loads its
 * own files, and host files it passes by fd. The reverse: a daemon in its own mount
 * namespace (as systemd's PrivateTmp makes it) loads the file the client sees.
 * Raw protocol clients, so libdmaload's own handling of /dev/fd paths plays no part.
 * Needs root; SKIPs otherwise.
 */
#include <dirent.h>
#include <stdarg.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../lib/check.h"
#include "../lib/harness.h"
#include "../lib/loads.h"

#define SUITE "resolve"
#define NOBODY 65534
#define SIZE (MiB + 4097)
#define SLOW_SIZE (64 * MiB)
#define PROBE_FDS 64

static struct test_daemon d;
/* Paths under d.dir (256 bytes at most), with room for a name. */
#define TPATH 512

static char secret[TPATH], public[TPATH], slow[TPATH];

/* ---- a client that sends raw LOADs ---------------------------------------------- */

struct want {
	int err;		/* 0: DONE of @size bytes of @seed; else this ERROR */
	const char *text;	/* ERROR: a substring every message must have */
	uint64_t size;
	uint32_t seed;
};

struct probe {
	const char *sock;
	bool nobody;
	char **paths;
	size_t n;
	struct want want;
	/* Before connecting (still root, in the child): a container of some kind. */
	int (*enter)(void *arg, char *msg, size_t len);
	void *enter_arg;
	int pass_fd;		/* also load this fd (opened before @enter), -1: none */
	int root_fd;		/* > 0: path loads carry it (DL_LOAD_ROOT_FD) */
	bool lib;		/* through libdmaload (which sends its root) */
};


/* One LOAD (with @root as DL_LOAD_ROOT_FD if > 0) and its final reply, checked
 * against @w. */
static int probe_one(int s, uint64_t id, const char *path, int fd, int root,
		     const struct want *w, struct raw_msg *rm, char *msg, size_t len)
{
	struct dl_load l = { .length = DL_LENGTH_TO_EOF, .flags = DL_LOAD_ROOT_FD };
	char why[512];
	int r;

	if (path && root > 0) {
		l.path_len = (uint32_t)strlen(path);
		r = raw_send(s, DL_LOAD, id, &l, sizeof(l), path, l.path_len, &root, 1);
	} else {
		r = raw_send_load(s, id, path, fd, 0, DL_LENGTH_TO_EOF, DL_METHOD_AUTO);
	}
	if (r == 0)
		r = raw_wait_final(s, id, rm, 20000);
	if (r != 1 || rm->decode < 0) {
		snprintf(msg, len, "%s: no reply (%d)", path ? path : "fd", r);
		return 1;
	}
	if (w->err) {
		if (rm->m.hdr.type == DL_DONE) {
			snprintf(msg, len, "%s: DONE of %llu bytes, want ERROR %s",
				 path ? path : "fd", (unsigned long long)rm->m.u.done.size,
				 strerrorname_np(w->err));
			return 1;
		}
		if (rm->m.hdr.type != DL_ERROR || rm->m.u.error.err != w->err ||
		    (w->text && !strstr(raw_error_text(rm), w->text))) {
			snprintf(msg, len, "%s: got %s %d \"%s\", want ERROR %s \"%s\"",
				 path ? path : "fd", dl_msg_type_name(rm->m.hdr.type),
				 rm->m.hdr.type == DL_ERROR ? rm->m.u.error.err : 0,
				 rm->m.hdr.type == DL_ERROR ? raw_error_text(rm) : "",
				 strerrorname_np(w->err), w->text ? w->text : "");
			return 1;
		}
		return 0;
	}
	if (rm->m.hdr.type != DL_DONE || rm->fd < 0) {
		snprintf(msg, len, "%s: got %s (%s), want DONE", path ? path : "fd",
			 dl_msg_type_name(rm->m.hdr.type),
			 rm->m.hdr.type == DL_ERROR ? raw_error_text(rm) : "");
		return 1;
	}
	if (rm->m.u.done.size != w->size ||
	    !buf_verify(rm->fd, w->size, w->seed, 0, why, sizeof(why))) {
		snprintf(msg, len, "%s: DONE of %llu bytes: %s", path ? path : "fd",
			 (unsigned long long)rm->m.u.done.size,
			 rm->m.u.done.size != w->size ? "wrong size" : why);
		return 1;
	}
	raw_msg_clear(rm);
	return 0;
}

/* The same through libdmaload. */
static int probe_lib(struct dmaload *dl, const char *path, const struct want *w, char *msg,
		     size_t len)
{
	struct dmaload_event ev;
	char why[512];
	int r = dmaload_load_path_sync(dl, path, NULL, &ev);

	if (w->err) {
		if (r == 0 || ev.type != DMALOAD_EV_ERROR || ev.err != w->err ||
		    (w->text && !strstr(ev.message, w->text))) {
			snprintf(msg, len, "%s: got %s, want ERROR %s", path, lc_event_str(&ev),
				 strerrorname_np(w->err));
			if (r == 0)
				close(ev.fd);
			return 1;
		}
		return 0;
	}
	if (r != 0) {
		snprintf(msg, len, "%s: got %s, want DONE", path,
			 ev.type == DMALOAD_EV_ERROR ? lc_event_str(&ev) : strerror(-r));
		return 1;
	}
	r = ev.size == w->size && buf_verify(ev.fd, w->size, w->seed, 0, why, sizeof(why));
	close(ev.fd);
	if (!r)
		snprintf(msg, len, "%s: DONE of %llu bytes: %s", path,
			 (unsigned long long)ev.size, ev.size != w->size ? "wrong size" : why);
	return !r;
}

/* Runs in a child: every path of @arg (a struct probe) must get p->want. */
static int child_probe(void *arg, char *msg, size_t len)
{
	struct probe *p = arg;
	struct raw_msg *rm = raw_msg_new();
	int s;

	if (!rm)
		return 1;
	if (p->enter && p->enter(p->enter_arg, msg, len))
		return 1;
	if (p->nobody && child_drop(NOBODY, 0, msg, len) < 0)
		return 1;
	if (p->lib) {
		struct dmaload *dl;

		s = dmaload_connect(&dl, p->sock, "resolve-lib");
		if (s < 0) {
			snprintf(msg, len, "connect %s: %s", p->sock, strerror(-s));
			return 1;
		}
		for (size_t i = 0; i < p->n; i++)
			if (probe_lib(dl, p->paths[i], &p->want, msg, len))
				return 1;
		dmaload_close(dl);
		return 0;
	}
	s = raw_connect(p->sock);
	if (s < 0) {
		snprintf(msg, len, "connect %s: %s", p->sock, strerror(-s));
		return 1;
	}
	for (size_t i = 0; i < p->n; i++)
		if (probe_one(s, i + 1, p->paths[i], -1, p->root_fd, &p->want, rm, msg, len))
			return 1;
	if (p->pass_fd >= 0 && probe_one(s, p->n + 1, NULL, p->pass_fd, -1, &p->want, rm,
					 msg, len))
		return 1;
	raw_msg_free(rm);
	close(s);
	return 0;
}

static void run_probe(struct probe *p)
{
	char msg[2048] = "";
	int r = child_run(child_probe, p, msg, sizeof(msg), 60000);

	CHECKF(r == 0, "%s%s", p->nobody ? "as nobody: " : "as root: ",
	       msg[0] ? msg : "child failed");
}

/* ---- the daemon's own /proc entries ------------------------------------------------ */

static char **paths;
static size_t n_paths, cap_paths;

static void add_path(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void add_path(const char *fmt, ...)
{
	va_list ap;
	char *s;

	if (n_paths == cap_paths) {
		cap_paths = cap_paths ? 2 * cap_paths : 256;
		paths = realloc(paths, cap_paths * sizeof(*paths));
		if (!paths)
			abort();
	}
	va_start(ap, fmt);
	if (vasprintf(&s, fmt, ap) < 0)
		abort();
	va_end(ap);
	paths[n_paths++] = s;
}

static void free_paths(void)
{
	for (size_t i = 0; i < n_paths; i++)
		free(paths[i]);
	free(paths);
	paths = NULL;
	n_paths = cap_paths = 0;
}

/* Every spelling of the daemon's fds, mappings and root the test knows. */
static void daemon_proc_paths(void)
{
	char dir[64], link[PATH_MAX];
	struct dirent *e;
	DIR *mf;

	for (int n = 0; n < PROBE_FDS; n++) {
		add_path("/proc/self/fd/%d", n);
		add_path("/proc/thread-self/fd/%d", n);
		add_path("/proc/%d/fd/%d", (int)d.pid, n);
		add_path("/proc/%d/task/%d/fd/%d", (int)d.pid, (int)d.pid, n);
		add_path("/dev/fd/%d", n);
		add_path("/proc/self/fdinfo/%d", n);
	}
	snprintf(dir, sizeof(dir), "/proc/%d/map_files", (int)d.pid);
	mf = opendir(dir);
	while (mf && (e = readdir(mf)))
		if (e->d_name[0] != '.') {
			add_path("%s/%s", dir, e->d_name);
			add_path("/proc/self/map_files/%s", e->d_name);
		}
	if (mf)
		closedir(mf);
	add_path("/proc/%d/root%s", (int)d.pid, secret);
	add_path("/proc/self/root%s", secret);
	add_path("/proc/thread-self/root%s", secret);
	add_path("/proc/self/cwd/%s", secret + 1);
	add_path("/proc/self/environ");
	add_path("/proc/self/mem");
	add_path("/dev/stdin");
	/* Symlink chains into them: absolute, relative, and through a directory link. */
	for (int n = 0; n < PROBE_FDS; n += 7) {
		snprintf(link, sizeof(link), "%s/chain-a-%d", d.dir, n);
		add_path("%s", link);
	}
	add_path("%s/chain-rel", d.dir);
	add_path("%s/proc-dir/self/fd/3", d.dir);
	add_path("%s/proc-dir/../proc-dir/self/fd/3", d.dir);
}

static bool make_chains(void)
{
	char a[PATH_MAX], b[PATH_MAX], t[64];
	bool ok = true;

	for (int n = 0; n < PROBE_FDS; n += 7) {
		/* chain-a-N -> chain-b-N -> /proc/self/fd/N */
		snprintf(a, sizeof(a), "%s/chain-a-%d", d.dir, n);
		snprintf(b, sizeof(b), "%s/chain-b-%d", d.dir, n);
		snprintf(t, sizeof(t), "/proc/self/fd/%d", n);
		ok &= symlink(t, b) == 0 && symlink(b, a) == 0;
	}
	snprintf(a, sizeof(a), "%s/chain-rel", d.dir);
	snprintf(t, sizeof(t), "chain-a-%d", 7);
	ok &= symlink(t, a) == 0;
	snprintf(a, sizeof(a), "%s/proc-dir", d.dir);
	ok &= symlink("/proc", a) == 0;
	return CHECKF(ok, "symlink: %s", strerror(errno));
}

/* While root's slow load runs (a buffer in flight) and root's secret is cached. */
static void proc_refused(bool nobody)
{
	struct dmaload *dl = lc_connect(&d, "root-slow");
	struct dmaload_opts o;
	struct dmaload_event ev;
	struct probe p = {
		.sock = d.sock,
		.nobody = nobody,
		.want = { .err = EACCES, .text = "paths through procfs are not loaded" },
		.pass_fd = -1,
	};
	uint64_t id;

	if (!dl)
		return;
	dmaload_opts_init(&o);
	o.rate_limit = 8 * MiB;		/* about 8 s: in flight while the probes run */
	if (!CHECK_OK(dmaload_load_path(dl, slow, &o, &id)))
		goto out;
	sleep_ms(200);
	daemon_proc_paths();
	p.paths = paths;
	p.n = n_paths;
	run_probe(&p);
	free_paths();
	CHECK_OK(dmaload_cancel(dl, id, NULL));
	dmaload_wait(dl, id, &ev, NULL, NULL);
	if (ev.type == DMALOAD_EV_DONE)
		close(ev.fd);
out:
	dmaload_close(dl);
	CHECK_SETTLED(&d, 10000);
}

/* A root the client passes may be any directory it holds: one inside the daemon's
 * /proc entry is refused before anything is looked up in it, so a name that exists
 * there (fd 0) and one that does not (fd 99999) get the same answer. */
static void proc_root(bool nobody)
{
	struct probe p = {
		.sock = d.sock,
		.nobody = nobody,
		.want = { .err = EACCES, .text = "paths through procfs are not loaded" },
		.pass_fd = -1,
	};
	char dir[64];

	snprintf(dir, sizeof(dir), "/proc/%d/fd", (int)d.pid);
	p.root_fd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (!CHECKF(p.root_fd > 0, "open %s: %s", dir, strerror(errno)))
		return;
	add_path("/0");
	add_path("/3");
	add_path("/99999");
	add_path("/99999/x");
	p.paths = paths;
	p.n = n_paths;
	run_probe(&p);
	free_paths();
	close(p.root_fd);
}

/* ---- ordinary paths ------------------------------------------------------------------ */

static void ordinary_paths(void)
{
	char a[PATH_MAX], base[NAME_MAX];
	struct probe p = {
		.sock = d.sock,
		.nobody = true,
		.want = { .size = SIZE, .seed = 2 },
		.pass_fd = -1,
	};
	bool ok = true;

	snprintf(base, sizeof(base), "%s", strrchr(public, '/') + 1);
	snprintf(a, sizeof(a), "%s/sub", d.dir);
	ok &= mkdir(a, 0755) == 0;
	snprintf(a, sizeof(a), "%s/sub/abs-link", d.dir);
	ok &= symlink(public, a) == 0;
	snprintf(a, sizeof(a), "%s/sub/rel-link", d.dir);
	ok &= symlink("../public", a) == 0;
	snprintf(a, sizeof(a), "%s/sub/dir-link", d.dir);
	ok &= symlink("..", a) == 0;
	if (!CHECKF(ok, "setup: %s", strerror(errno)))
		return;
	add_path("%s", public);
	add_path("%s/./sub/../%s", d.dir, base);
	add_path("%s/sub/abs-link", d.dir);
	add_path("%s/sub/rel-link", d.dir);
	add_path("%s/sub/dir-link/sub/dir-link/%s", d.dir, base);
	add_path("/../../..%s", public);
	add_path("//%s", public);
	p.paths = paths;
	p.n = n_paths;
	run_probe(&p);
	free_paths();
}

static void link_loop(void)
{
	char a[PATH_MAX], b[PATH_MAX];
	struct probe p = {
		.sock = d.sock,
		.nobody = true,
		.want = { .err = ELOOP },
		.pass_fd = -1,
	};

	snprintf(a, sizeof(a), "%s/loop-a", d.dir);
	snprintf(b, sizeof(b), "%s/loop-b", d.dir);
	if (!CHECKF(symlink(b, a) == 0 && symlink(a, b) == 0, "symlink: %s",
		    strerror(errno)))
		return;
	add_path("%s", a);
	p.paths = paths;
	p.n = n_paths;
	run_probe(&p);
	free_paths();
}

/* ---- containers ------------------------------------------------------------------ */

static char hidden_dir[TPATH], hidden_file[TPATH], ctr[TPATH];

static int enter_private_mounts(char *msg, size_t len)
{
	if (unshare(CLONE_NEWNS) < 0 || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0) {
		snprintf(msg, len, "unshare/mount: %s", strerror(errno));
		return 1;
	}
	return 0;
}

/* A new mount namespace with a tmpfs over hidden_dir, holding @file (SIZE bytes of
 * pattern @seed). */
static int enter_tmpfs_with(const char *file, uint32_t seed, char *msg, size_t len)
{
	int r;

	if (enter_private_mounts(msg, len))
		return 1;
	if (mount("tmpfs", hidden_dir, "tmpfs", 0, "mode=0755") < 0) {
		snprintf(msg, len, "mount tmpfs: %s", strerror(errno));
		return 1;
	}
	r = file_make(file, SIZE, seed, 0644);
	if (r < 0) {
		snprintf(msg, len, "file_make: %s", strerror(-r));
		return 1;
	}
	return 0;
}

/* ... holding a file of its own. */
static int enter_tmpfs_ns(void *arg, char *msg, size_t len)
{
	char own[PATH_MAX];

	(void)arg;
	snprintf(own, sizeof(own), "%s/own", hidden_dir);
	return enter_tmpfs_with(own, 5, msg, len);
}

static void container_mount_ns(void)
{
	char own[PATH_MAX];
	char *hide[] = { hidden_file };
	char *mine[] = { own };
	struct probe p = {
		.sock = d.sock,
		.enter = enter_tmpfs_ns,
		.pass_fd = -1,
	};

	snprintf(own, sizeof(own), "%s/own", hidden_dir);
	p.paths = hide;
	p.n = 1;
	p.want = (struct want){ .err = ENOENT };
	run_probe(&p);
	p.paths = mine;
	p.want = (struct want){ .size = SIZE, .seed = 5 };
	run_probe(&p);
}

/* ... holding a public file of the same name as the host's file there. */
static int enter_same_name(void *arg, char *msg, size_t len)
{
	(void)arg;
	return enter_tmpfs_with(hidden_file, 9, msg, len);
}

/* Entries of @name loaded by uid 0. */
static size_t entries_named(struct dmaload *dl, const char *name)
{
	struct dmaload_cache_list l;
	size_t n = 0;

	if (!CHECK_OK(dmaload_list(dl, &l)))
		return 0;
	for (size_t i = 0; i < l.n_entries; i++)
		n += !strcmp(l.entries[i].name, name) && l.entries[i].uid == 0;
	dmaload_list_free(&l);
	return n;
}

/* Root's cached file, and nobody's own file of the same path in its mount namespace:
 * nobody gets its bytes, and root's entry stays (a path names different files in
 * different roots; only an entry of one's own uid goes by name). */
static void same_name_other_root(void)
{
	struct dmaload *dl = lc_connect(&d, "root-cache");
	char *mine[] = { hidden_file };
	struct probe p = {
		.sock = d.sock,
		.nobody = true,
		.enter = enter_same_name,
		.pass_fd = -1,
		.paths = mine,
		.n = 1,
		.want = { .size = SIZE, .seed = 9 },
	};
	struct dmaload_event ev;

	if (!dl)
		return;
	if (CHECK_OK(dmaload_load_path_sync(dl, hidden_file, NULL, &ev)))
		close(ev.fd);
	CHECK_U64(entries_named(dl, hidden_file), ==, 1);
	run_probe(&p);
	CHECK_U64(entries_named(dl, hidden_file), ==, 1);
	if (CHECK_OK(dmaload_load_path_sync(dl, hidden_file, NULL, &ev))) {
		CHECKF(ev.done_flags & DL_DONE_CACHED, "root's load was not a cache hit");
		CHECK(lc_check_done(&ev, SIZE, 7, 0, DL_METHOD_AUTO));
	}
	dmaload_close(dl);
}

/* chroot into ctr, with the daemon's socket bound to ctr/sock and a /proc of its own
 * (as containers have; buf_verify reads it). */
static int enter_chroot(void *arg, char *msg, size_t len)
{
	char sock[PATH_MAX + 8], proc[PATH_MAX + 8];

	(void)arg;
	if (enter_private_mounts(msg, len))
		return 1;
	snprintf(sock, sizeof(sock), "%s/sock", ctr);
	snprintf(proc, sizeof(proc), "%s/proc", ctr);
	if (mount(d.sock, sock, NULL, MS_BIND, NULL) < 0 ||
	    mount("proc", proc, "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) < 0 ||
	    chroot(ctr) < 0 ||
	    chdir("/") < 0) {
		snprintf(msg, len, "bind/chroot: %s", strerror(errno));
		return 1;
	}
	return 0;
}

static void container_chroot(void)
{
	char up[PATH_MAX], sock_in[PATH_MAX];
	char *host[] = { secret, "/evil", up, "/evil-rel" };
	char *mine[] = { "/pub", "/./pub", "/../pub", "/pub-link" };
	struct probe p = {
		.sock = "/sock",
		.enter = enter_chroot,
		.pass_fd = -1,
	};
	int fd;

	snprintf(up, sizeof(up), "/../../../..%s", secret);
	snprintf(sock_in, sizeof(sock_in), "%s/sock", ctr);
	p.paths = host;
	p.n = 4;
	p.want = (struct want){ .err = ENOENT };
	run_probe(&p);
	p.paths = mine;
	p.n = 4;
	p.want = (struct want){ .size = SIZE, .seed = 6 };
	run_probe(&p);
	/* libdmaload sends the chroot's "/" as the root: the same answers. */
	p.lib = true;
	run_probe(&p);
	p.paths = host;
	p.want = (struct want){ .err = ENOENT };
	run_probe(&p);
	p.lib = false;
	/* A host file passed by fd still loads: the way in for files it cannot see. */
	fd = open(secret, O_RDONLY | O_CLOEXEC);
	if (!CHECKF(fd >= 0, "open: %s", strerror(errno)))
		return;
	p.paths = NULL;
	p.n = 0;
	p.pass_fd = fd;
	p.want = (struct want){ .size = SIZE, .seed = 1 };
	run_probe(&p);
	close(fd);
}

static bool make_containers(void)
{
	char a[PATH_MAX], rel[PATH_MAX];
	int r;

	snprintf(hidden_dir, sizeof(hidden_dir), "%s/hidden", d.dir);
	snprintf(hidden_file, sizeof(hidden_file), "%s/hidden/host-file", d.dir);
	snprintf(ctr, sizeof(ctr), "%s/ctr", d.dir);
	if (!CHECKF(mkdir(hidden_dir, 0755) == 0 && mkdir(ctr, 0755) == 0, "mkdir: %s",
		    strerror(errno)))
		return false;
	if ((r = file_make(hidden_file, SIZE, 7, 0644)) < 0)
		return CHECKF(false, "file_make: %s", strerror(-r));
	snprintf(a, sizeof(a), "%s/pub", ctr);
	if ((r = file_make(a, SIZE, 6, 0644)) < 0)
		return CHECKF(false, "file_make: %s", strerror(-r));
	snprintf(a, sizeof(a), "%s/sock", ctr);
	if (!CHECKF(close(open(a, O_CREAT | O_WRONLY | O_CLOEXEC, 0644)) == 0, "%s: %s", a,
		    strerror(errno)))
		return false;
	snprintf(a, sizeof(a), "%s/proc", ctr);
	if (!CHECKF(mkdir(a, 0555) == 0, "mkdir: %s", strerror(errno)))
		return false;
	snprintf(a, sizeof(a), "%s/evil", ctr);
	/* "../" as many times as the secret is deep, then its path: outside, if it could */
	rel[0] = '\0';
	for (const char *c = ctr; *c; c++)
		if (*c == '/')
			strcat(rel, "../");
	strcat(rel, secret + 1);
	snprintf(a, sizeof(a), "%s/evil", ctr);
	if (!CHECKF(symlink(secret, a) == 0, "symlink: %s", strerror(errno)))
		return false;
	snprintf(a, sizeof(a), "%s/evil-rel", ctr);
	if (!CHECKF(symlink(rel, a) == 0, "symlink: %s", strerror(errno)))
		return false;
	snprintf(a, sizeof(a), "%s/pub-link", ctr);
	return CHECKF(symlink("/pub", a) == 0, "symlink: %s", strerror(errno));
}

/*
 * Starts @dp through a shell wrapper: "exec @prefix" with the daemon binary as $0 and
 * its arguments after, for a daemon in a mount namespace or with capabilities of its
 * own. The wrapper is written under d.dir as @tag.
 */
static bool start_wrapped(struct test_daemon *dp, const char *tag, const char *prefix)
{
	const char *bin = daemon_binary();
	char wrapper[TPATH], why[512];
	FILE *f;
	int r;

	snprintf(wrapper, sizeof(wrapper), "%s/%s", d.dir, tag);
	f = fopen(wrapper, "we");
	if (!CHECKF(f, "%s: %s", wrapper, strerror(errno)))
		return false;
	fprintf(f, "#!/bin/sh\nexec %s '%s' \"$@\"\n", prefix, bin);
	fclose(f);
	chmod(wrapper, 0755);
	setenv("DMALOADD", wrapper, 1);
	r = daemon_start(dp, tag, NULL, why, sizeof(why));
	setenv("DMALOADD", bin, 1);
	return CHECKF(r == 0, "%s", why);
}

/* A daemon in its own mount namespace, with a tmpfs over a directory the host has. */
static void daemon_private_ns(void)
{
	struct test_daemon dp;
	char priv[TPATH], file[TPATH], prefix[2 * TPATH];
	char *mine[] = { file };
	struct probe p = {
		.want = { .size = SIZE, .seed = 8 },
		.pass_fd = -1,
	};
	int r;

	snprintf(priv, sizeof(priv), "%s/priv", d.dir);
	snprintf(file, sizeof(file), "%s/priv/file", d.dir);
	if (!CHECKF(mkdir(priv, 0755) == 0, "mkdir: %s", strerror(errno)))
		return;
	if ((r = file_make(file, SIZE, 8, 0644)) < 0) {
		CHECKF(false, "file_make: %s", strerror(-r));
		return;
	}
	snprintf(prefix, sizeof(prefix), "unshare --mount --propagation private sh -c "
		 "'mount -t tmpfs none \"$0\" && exec \"$@\"' '%s'", priv);
	if (!start_wrapped(&dp, "resolve-privns", prefix))
		return;
	p.sock = dp.sock;
	p.paths = mine;
	p.n = 1;
	run_probe(&p);
	r = daemon_stop(&dp);
	CHECKF(r == 0, "exit status %d", r);
	daemon_cleanup(&dp);
}

/*
 * A daemon started the way the hardened unit runs it: only CAP_SETUID and CAP_SETGID,
 * and a /proc with hidepid=invisible (ProtectProc=invisible). It may not open a root
 * client's /proc/PID/root (the client holds capabilities the daemon lacks), so root's
 * raw path loads are refused with a pointer to fds, while root's libdmaload loads
 * (which send their root directory) and nobody's raw ones (whose /proc/PID/root it
 * may open as nobody) load. A root fd that is not a directory is refused; one of
 * another directory is where the path is walked from.
 */
static void daemon_hardened(void)
{
	struct test_daemon dh;
	char reg[TPATH + 8];
	char *pub[] = { public };
	char *in_ctr[] = { "/pub" };
	char *host[] = { secret };
	struct probe p = { .pass_fd = -1 };
	int r, fd;

	if (!start_wrapped(&dh, "resolve-hardened", "unshare --mount --propagation private "
			   "sh -c 'mount -t proc -o hidepid=invisible proc /proc && exec setpriv "
			   "--bounding-set=-all,+setuid,+setgid --inh-caps=-all \"$0\" \"$@\"'"))
		return;
	p.sock = dh.sock;
	p.paths = pub;
	p.n = 1;
	p.want = (struct want){ .err = EACCES, .text = "cannot resolve paths as the client" };
	run_probe(&p);
	p.lib = true;
	p.want = (struct want){ .size = SIZE, .seed = 2 };
	run_probe(&p);
	p.lib = false;
	p.nobody = true;
	run_probe(&p);
	p.lib = true;
	run_probe(&p);
	p.lib = false;
	p.nobody = false;
	snprintf(reg, sizeof(reg), "%s/pub", ctr);
	fd = open(reg, O_RDONLY | O_CLOEXEC);
	p.root_fd = fd;
	p.want = (struct want){ .err = ENOTDIR };
	run_probe(&p);
	close(fd);
	fd = open(ctr, O_PATH | O_DIRECTORY | O_CLOEXEC);
	p.root_fd = fd;
	p.paths = in_ctr;
	p.want = (struct want){ .size = SIZE, .seed = 6 };
	run_probe(&p);
	p.paths = host;
	p.want = (struct want){ .err = ENOENT };
	run_probe(&p);
	close(fd);
	r = daemon_stop(&dh);
	CHECKF(r == 0, "exit status %d", r);
	daemon_cleanup(&dh);
}

/* ---- a connection whose process is gone --------------------------------------------- */

/* In the process that survives its connector: a path load must get ESRCH, a load by
 * fd its bytes. Reports through @report (written whole, then renamed into place),
 * since nobody waits for it. */
static void survivor(int s, pid_t connector, const char *report)
{
	struct want gone = { .err = ESRCH, .text = "has exited" };
	struct want good = { .size = SIZE, .seed = 2 };
	struct raw_msg *rm = raw_msg_new();
	char msg[1024] = "", tmp[TPATH + 8];
	int fd, bad;
	FILE *f;

	for (int i = 0; i < 400 && getppid() == connector; i++)
		sleep_ms(25);
	fd = open(public, O_RDONLY | O_CLOEXEC);
	bad = !rm || getppid() == connector ||
	      probe_one(s, 1, public, -1, -1, &gone, rm, msg, sizeof(msg)) ||
	      probe_one(s, 2, NULL, fd, -1, &good, rm, msg, sizeof(msg));
	snprintf(tmp, sizeof(tmp), "%s.tmp", report);
	f = fopen(tmp, "we");
	if (f) {
		fprintf(f, "%s%s", bad ? "FAIL " : "OK", bad ? (msg[0] ? msg : "the "
			"connector never exited") : "");
		fclose(f);
		rename(tmp, report);
	}
	_exit(0);
}

static void orphaned_connection(void)
{
	char report[TPATH], text[1200] = "";
	FILE *f = NULL;
	pid_t a;
	int st;

	snprintf(report, sizeof(report), "%s/orphan-report", d.dir);
	a = fork();
	if (a == 0) {
		int s = raw_connect(d.sock);
		pid_t b;

		if (s < 0)
			_exit(1);
		a = getpid();
		b = fork();
		if (b == 0)
			survivor(s, a, report);
		_exit(b < 0);	/* the connector goes; its connection lives on in b */
	}
	if (!CHECKF(a > 0 && waitpid(a, &st, 0) == a && WIFEXITED(st) &&
		    WEXITSTATUS(st) == 0, "the connector failed"))
		return;
	for (int i = 0; i < 400 && !(f = fopen(report, "re")); i++)
		sleep_ms(50);
	if (!CHECKF(f, "the survivor never reported"))
		return;
	if (!fgets(text, sizeof(text), f))
		text[0] = '\0';
	fclose(f);
	CHECKF(!strcmp(text, "OK"), "%s", text);
}

/* The buffers the cases left in the cache go; then nothing else is left. */
static void no_leaks(void)
{
	struct dmaload *dl = lc_connect(&d, "root-evict");
	uint64_t bytes;

	if (!dl)
		return;
	CHECK_INT(dmaload_evict(dl, NULL, &bytes), >, 0);
	dmaload_close(dl);
	CHECK_SETTLED_START(&d, 5000);
}

int main(void)
{
	char why[512];
	struct dmaload *dl;
	struct dmaload_event ev;
	int r, start_fds, start_memfds;

	check_init(SUITE);
	if (geteuid() != 0) {
		check_skip_case("resolution checks", "needs root (the daemon must run as root, clients as nobody)");
		return 0;
	}
	check_begin("daemon starts; root's secret is cached");
	/* The probes are hundreds of refused loads of nobody's in a row, which
	 * max_failures_per_uid would pace over seconds, past root's slow load. */
	if (daemon_start(&d, SUITE, "[cache]\ncache_limit = 256M\n[quota]\n"
			 "max_failures_per_uid = 0\n", why, sizeof(why)) < 0) {
		check_fail(__FILE__, __LINE__, "%s", why);
		check_end();
		daemon_cleanup(&d);
		return 1;
	}
	snprintf(secret, sizeof(secret), "%s/secret", d.dir);
	snprintf(public, sizeof(public), "%s/public", d.dir);
	snprintf(slow, sizeof(slow), "%s/slow", d.dir);
	if ((r = file_make(secret, SIZE, 1, 0600)) < 0 ||
	    (r = file_make(public, SIZE, 2, 0644)) < 0 ||
	    (r = file_make(slow, SLOW_SIZE, 3, 0600)) < 0)
		CHECKF(false, "file_make: %s", strerror(-r));
	make_chains();
	make_containers();
	daemon_baseline(&d);		/* nothing cached: the start, for no_leaks() */
	start_fds = d.start_fds;
	start_memfds = d.start_memfds;
	dl = lc_connect(&d, "root");
	if (dl && CHECK_OK(dmaload_load_path_sync(dl, secret, NULL, &ev)))
		close(ev.fd);
	if (dl)
		dmaload_close(dl);
	if (!check_end()) {
		daemon_stop(&d);
		daemon_cleanup(&d);
		return 1;
	}
	daemon_baseline(&d);		/* the secret cached: the cases' baseline */
	d.start_fds = start_fds;
	d.start_memfds = start_memfds;

	CASE(proc_refused(true), "nobody: the daemon's /proc fds, map_files, root and symlinks "
	     "to them are all refused alike, none loads");
	CASE(proc_refused(false), "root client: the same paths are refused alike");
	CASE(proc_root(true), "nobody passes /proc/<daemon pid>/fd as its root: fds that "
	     "exist and fds that do not, refused alike");
	CASE(proc_root(false), "root client: the same");
	CASE(ordinary_paths(), "nobody: '.', '..', absolute, relative and directory symlinks, "
	     "'..' above / load the file's bytes");
	CASE(link_loop(), "a symlink loop -> ELOOP");
	CASE(container_mount_ns(), "container root in its own mount namespace: a host file "
	     "under its tmpfs -> ENOENT, its own file loads");
	CASE(same_name_other_root(), "nobody's own file at the path of root's cached one (in "
	     "its mount namespace) loads, and root's entry stays");
	CASE(container_chroot(), "container root chrooted: the host's root-only file by path, "
	     "by symlinks and by '..' -> ENOENT; its files, and host files by fd, load");
	CASE(daemon_private_ns(), "a daemon in a private mount namespace loads the file the "
	     "client sees");
	CASE(daemon_hardened(), "a daemon with only CAP_SETUID/CAP_SETGID and hidepid: root's "
	     "raw path load is refused, with libdmaload's root fd it loads, nobody's loads; a "
	     "root fd is walked from");
	CASE(orphaned_connection(), "a connection handed on by a process that exited: paths "
	     "-> ESRCH, fds load");
	CASE(no_leaks(), "EVICT --all: the daemon's fds and memfds back to the start");

	daemon_stop_case(&d, "daemon exits 0 on SIGTERM");
	return check_finish();
}
