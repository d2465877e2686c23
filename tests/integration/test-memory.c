/*
 * test-memory.c: a load that cannot fit in memory is refused with ENOMEM before its
 * buffer is made; the daemon is never killed because of a request.
 *
 * Three ways to be short of memory, each against a daemon whose max_load_size lets
 * the load through to the admission: a (sparse) file bigger than what the host's
 * MemAvailable leaves above memory_reserve; a daemon in a real cgroup v1 memory cgroup of 300 MB asked for
 * 1 GiB; a cgroup v2 daemon, seen through a fake /proc and cgroup tree
 * ($DMALOAD_MEMORY_ROOT), whose memory.max leaves less than the load. Each refusal
 * must be ENOMEM with a message naming the numbers, must leave no buffer behind
 * (memfd count), and the daemon must go on serving a small load. Needs root for the
 * real cgroup (SKIPs without a writable v1 memory controller).
 * The admission samples the kernel's numbers (at most every 10 ms): through the fake
 * tree, a 64 MiB load that fits is admitted; memory.current raised and 30 ms later
 * the same load is refused (the sample is not older than that); memory.current
 * lowered and at once the load is admitted again (a sample that refuses is read anew
 * first).
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../lib/check.h"
#include "../lib/harness.h"
#include "../lib/loads.h"

#define SUITE "memory"
#define SMALL (4 * MiB)

static char dir[PATH_MAX];
static char small[PATH_MAX + 16], sparse[PATH_MAX + 16];

/* A sparse file of @size bytes (nothing on disk: the loads are refused first). */
static bool make_sparse(uint64_t size)
{
	int fd = open(sparse, O_CREAT | O_TRUNC | O_WRONLY | O_CLOEXEC, 0644);
	bool ok = fd >= 0 && ftruncate(fd, (off_t)size) == 0;

	if (fd >= 0)
		close(fd);
	return CHECKF(ok, "%s: %s", sparse, strerror(errno));
}

/* The refusal, nothing left behind, and a small load after it. */
static void refused(struct test_daemon *d, const char *needle)
{
	struct dmaload *dl = lc_connect(d, "memory");
	struct dmaload_event ev;
	int fds0, maps0, fds1, maps1, r;

	if (!dl)
		return;
	proc_memfd_count(d->pid, &fds0, &maps0);
	r = dmaload_load_path_sync(dl, sparse, NULL, &ev);
	if (r == 0)
		close(ev.fd);
	CHECKF(r == -ENOMEM && strstr(ev.message, "not enough memory") &&
	       (!needle || strstr(ev.message, needle)),
	       "the big load: %d %s, want ENOMEM naming \"%s\"", r, lc_event_str(&ev),
	       needle ? needle : "");
	proc_memfd_count(d->pid, &fds1, &maps1);
	CHECKF(fds1 == fds0 && maps1 == maps0, "memfds %d+%d before, %d+%d after", fds0,
	       maps0, fds1, maps1);
	CHECK(lc_load_verify(dl, small, -1, NULL, SMALL, 5, DL_METHOD_AUTO, NULL));
	CHECK(daemon_alive(d));
	dmaload_close(dl);
}

static void stop(struct test_daemon *d)
{
	int r = daemon_stop(d);

	CHECKF(r == 0, "exit status %d", r);
	daemon_cleanup(d);
}

/* MemAvailable is read at each load: a reserve of all but 256 MiB of it makes a
 * 512 MiB load too big without this test ever asking for gigabytes (a daemon without
 * admission would take them, and a host's memory with them). */
static void over_available(void)
{
	struct test_daemon d;
	char why[512], io[128];
	long avail = meminfo_value("MemAvailable");

	if (!CHECKF(avail > 512 * 1024, "MemAvailable %ld kB", avail) ||
	    !make_sparse(512 * MiB))
		return;
	snprintf(io, sizeof(io), "max_load_size = 1T\nmemory_reserve = %lluK\n",
		 (unsigned long long)avail - 256 * 1024);
	if (!CHECKF(daemon_start(&d, "mem-avail", io, why, sizeof(why)) == 0, "%s", why))
		return;
	refused(&d, "MemAvailable");
	stop(&d);
}

static bool write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "we");
	bool ok = f && fputs(text, f) >= 0;

	if (f)
		ok &= fclose(f) == 0;
	return ok;
}

/* A real v1 memory cgroup of 300 MB: the daemon is started inside it (it finds its
 * cgroup at start), then this process goes back where it was. */
static void cgroup_v1(void)
{
	char cg[512], procs[600], here[600], own[256] = "";
	char line[600], pid[32], why[512];
	struct test_daemon d = { .pid = -1 };
	FILE *f;

	if (geteuid() != 0 || access("/sys/fs/cgroup/memory/cgroup.procs", W_OK) < 0) {
		check_skip("no writable cgroup v1 memory controller");
		return;
	}
	f = fopen("/proc/self/cgroup", "re");
	while (f && fgets(line, sizeof(line), f))
		if (strstr(line, ":memory:"))
			snprintf(own, sizeof(own), "%s", strstr(line, ":memory:") + 8);
	if (f)
		fclose(f);
	own[strcspn(own, "\n")] = '\0';
	snprintf(cg, sizeof(cg), "/sys/fs/cgroup/memory/dmaload-test-%d", (int)getpid());
	snprintf(procs, sizeof(procs), "%s/cgroup.procs", cg);
	snprintf(here, sizeof(here), "/sys/fs/cgroup/memory%s/cgroup.procs", own);
	snprintf(pid, sizeof(pid), "%d\n", (int)getpid());
	if (!CHECKF(mkdir(cg, 0755) == 0 || errno == EEXIST, "mkdir %s: %s", cg,
		    strerror(errno)))
		return;
	snprintf(line, sizeof(line), "%s/memory.limit_in_bytes", cg);
	if (!CHECKF(write_file(line, "300M\n") && write_file(procs, pid), "%s: %s", cg,
		    strerror(errno)))
		goto out;
	if (!CHECKF(daemon_start(&d, "mem-cg1", "max_load_size = 1T\n", why,
				 sizeof(why)) == 0, "%s", why))
		goto back;
	write_file(here, pid);		/* the test itself is not limited */
	if (make_sparse(1024 * MiB))
		refused(&d, "cgroup");
	stop(&d);
back:
	write_file(here, pid);
out:
	/* The daemon is gone: the cgroup is empty and goes. */
	for (int i = 0; i < 50 && rmdir(cg) < 0 && errno == EBUSY; i++)
		sleep_ms(100);
}

/* A fake /proc and cgroup v2 tree under @root: memory.max 300M, memory.current
 * @current, MemAvailable 16 GiB. */
static bool fake_tree(const char *root, const char *current)
{
	char p[3 * PATH_MAX];

	snprintf(p, sizeof(p), "mkdir -p '%s/proc/self' '%s/sys/fs/cgroup/dl'", root, root);
	if (!CHECK(system(p) == 0))
		return false;
	snprintf(p, sizeof(p), "%s/proc/self/cgroup", root);
	CHECK(write_file(p, "0::/dl\n"));
	snprintf(p, sizeof(p), "%s/proc/self/mountinfo", root);
	CHECK(write_file(p, "30 23 0:26 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw\n"));
	snprintf(p, sizeof(p), "%s/proc/meminfo", root);
	CHECK(write_file(p, "MemTotal: 33554432 kB\nMemAvailable: 16777216 kB\n"));
	snprintf(p, sizeof(p), "%s/sys/fs/cgroup/dl/memory.max", root);
	CHECK(write_file(p, "314572800\n"));
	snprintf(p, sizeof(p), "%s/sys/fs/cgroup/dl/memory.current", root);
	CHECK(write_file(p, current));
	return !check_failed();
}

static char last_refusal[DL_ERRMSG_MAX + 1];

/* The 64 MiB sparse file: admitted (DONE, buffer checked for size) or refused (its
 * message in last_refusal). */
static bool sparse_admitted(struct dmaload *dl)
{
	struct dmaload_event ev;
	int r = dmaload_load_path_sync(dl, sparse, NULL, &ev);

	if (r == 0) {
		CHECK_U64(ev.size, ==, 64 * MiB);
		close(ev.fd);
		return true;
	}
	CHECKF(r == -ENOMEM, "the load: %d %s, want DONE or ENOMEM", r, lc_event_str(&ev));
	snprintf(last_refusal, sizeof(last_refusal), "%s", ev.message);
	return false;
}

/* Through a fake tree whose memory.current the test moves: the sampled admission. */
static void sampled(void)
{
	char root[PATH_MAX + 16], cur[PATH_MAX + 64], why[512];
	struct test_daemon d;
	struct dmaload *dl;
	int r;

	snprintf(root, sizeof(root), "%s/fake-sampled", dir);
	snprintf(cur, sizeof(cur), "%s/sys/fs/cgroup/dl/memory.current", root);
	if (!fake_tree(root, "10485760\n") || !make_sparse(64 * MiB))
		return;
	setenv("DMALOAD_MEMORY_ROOT", root, 1);
	r = daemon_start(&d, "mem-sampled", "max_load_size = 1T\nmemory_reserve = 16M\n"
			 "hugetlb = off\n", why, sizeof(why));
	unsetenv("DMALOAD_MEMORY_ROOT");
	if (!CHECKF(r == 0, "%s", why))
		return;
	dl = lc_connect(&d, "sampled");
	if (dl) {
		CHECKF(sparse_admitted(dl), "274 MiB of room, 64 MiB asked: refused: %s",
		       last_refusal);
		/* its buffer freed on a worker (the fd goes first, its pages in the
		 * close), and no longer in flight */
		for (int i = 0, fds = 1, maps = 1; i < 500 && (fds || maps); i++) {
			proc_memfd_count(d.pid, &fds, &maps);
			sleep_ms(10);
		}
		sleep_ms(300);
		CHECK(write_file(cur, "272629760\n"));		/* 24 MiB of room */
		sleep_ms(30);
		CHECKF(!sparse_admitted(dl), "memory.current raised 30 ms ago: admitted "
		       "from an old sample");
		CHECK(write_file(cur, "10485760\n"));
		CHECKF(sparse_admitted(dl), "memory.current lowered: refused from the "
		       "sample without reading anew: %s", last_refusal);
		dmaload_close(dl);
	}
	stop(&d);
}

/* A cgroup v2 daemon, through a fake tree: memory.max 300M, memory.current 100M. */
static void cgroup_v2_fake(void)
{
	char root[PATH_MAX + 16], why[512];
	struct test_daemon d;
	int r;

	snprintf(root, sizeof(root), "%s/fake", dir);
	fake_tree(root, "104857600\n");
	if (check_failed() || !make_sparse(256 * MiB))
		return;
	setenv("DMALOAD_MEMORY_ROOT", root, 1);
	r = daemon_start(&d, "mem-cg2", "max_load_size = 1T\nmemory_reserve = 16M\n", why,
			 sizeof(why));
	unsetenv("DMALOAD_MEMORY_ROOT");
	if (!CHECKF(r == 0, "%s", why))
		return;
	CHECK(daemon_log_wait(&d, "the cgroup's limit is 300 MiB", 0, 5000));
	refused(&d, "314572800");
	stop(&d);
}

int main(void)
{
	int r;

	check_init(SUITE);
	check_begin("test files");
	r = tdir_create(dir, sizeof(dir), "memory-files");
	if (r == 0) {
		snprintf(small, sizeof(small), "%s/small", dir);
		snprintf(sparse, sizeof(sparse), "%s/sparse", dir);
		r = file_make(small, SMALL, 5, 0644);
	}
	CHECKF(r == 0, "%s", strerror(-r));
	if (!check_end())
		return 1;

	CASE(over_available(), "a load bigger than MemAvailable: ENOMEM before any buffer, "
	     "the daemon serves on");
	CASE(cgroup_v1(), "a daemon in a 300 MB cgroup v1 asked for 1 GiB: ENOMEM naming the "
	     "cgroup, not the OOM killer; it serves on");
	CASE(cgroup_v2_fake(), "a cgroup v2 daemon (a fake tree) whose memory.max leaves "
	     "too little: ENOMEM naming it");
	CASE(sampled(), "sampled admission: admitted; memory.current raised, 30 ms later "
	     "ENOMEM; lowered, admitted at once");
	tdir_remove(dir);
	return check_finish();
}
