/*
 * harness.c: the integration tests' private daemon, /proc probes, pattern files and
 * buffer checks, raw protocol client and child runner (see harness.h).
 *
 * The daemon is a child of the test process with stdin on /dev/null and stdout and
 * stderr appended to its log; every fd above 2 is closed before exec, so the fds it
 * shows in /proc are its own. Its pid is remembered so the watchdog can SIGKILL it.
 */
#include <dirent.h>
#include <fcntl.h>
#include <ftw.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"

#ifndef F_SEAL_SEAL
#include <linux/fcntl.h>
#endif

/* ---- time ---------------------------------------------------------------------- */

uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

void sleep_ms(unsigned ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000 };

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* ---- temp dirs ----------------------------------------------------------------- */

int tdir_create(char *out, size_t len, const char *tag)
{
	const char *base = getenv("DMALOAD_TEST_TMP");
	int n;

	if (!base || !*base)
		base = "/var/tmp";
	n = snprintf(out, len, "%s/dmaload-%s.XXXXXX", base, tag);
	if (n < 0 || (size_t)n >= len)
		return -ENAMETOOLONG;
	if (!mkdtemp(out))
		return -errno;
	if (chmod(out, 0755) < 0)
		return -errno;
	return 0;
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st; (void)flag; (void)ftw;
	remove(path);
	return 0;
}

int tdir_remove(const char *path)
{
	if (!path || !*path)
		return 0;
	return nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS) < 0 ? -errno : 0;
}

int fs_type_name(const char *path, char *out, size_t len)
{
	struct statfs sf;
	const char *name;

	if (statfs(path, &sf) < 0)
		return -errno;
	switch ((unsigned long)sf.f_type) {
	case 0xEF53: name = "ext4"; break;
	case 0x01021994: name = "tmpfs"; break;
	case 0x58465342: name = "xfs"; break;
	case 0x9123683E: name = "btrfs"; break;
	case 0x794c7630: name = "overlayfs"; break;
	default: name = "other"; break;
	}
	snprintf(out, len, "%s", name);
	return 0;
}

/* ---- pattern files ------------------------------------------------------------- */

/* splitmix64's finalizer: every 8-byte word of the pattern is a hash of (seed, word
 * index), so neighbouring words, files and offsets all differ. */
static uint64_t mix64(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ull;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
	return x ^ (x >> 31);
}

static uint64_t pattern_word(uint32_t seed, uint64_t word)
{
	return mix64(((uint64_t)seed << 44) ^ word ^ ((uint64_t)seed * 0x632be59bd9b4e019ull));
}

uint8_t pattern_byte(uint32_t seed, uint64_t off)
{
	return (uint8_t)(pattern_word(seed, off >> 3) >> ((off & 7) * 8));
}

void pattern_fill(uint32_t seed, uint64_t off, void *buf, size_t len)
{
	uint8_t *p = buf;

	while (len && (off & 7)) {
		*p++ = pattern_byte(seed, off++);
		len--;
	}
	while (len >= 8) {
		uint64_t w = pattern_word(seed, off >> 3);

		memcpy(p, &w, 8);	/* little-endian: byte k is bits 8k..8k+7 */
		p += 8;
		off += 8;
		len -= 8;
	}
	while (len) {
		*p++ = pattern_byte(seed, off++);
		len--;
	}
}

int file_make(const char *path, uint64_t size, uint32_t seed, mode_t mode)
{
	size_t cap = 4 * MiB;
	char *buf;
	uint64_t off = 0;
	int fd, r = 0;

	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
	if (fd < 0)
		return -errno;
	if (fchmod(fd, mode) < 0) {
		r = -errno;
		close(fd);
		return r;
	}
	buf = malloc(cap);
	if (!buf) {
		close(fd);
		return -ENOMEM;
	}
	while (off < size) {
		size_t n = size - off < cap ? (size_t)(size - off) : cap;
		ssize_t w;

		pattern_fill(seed, off, buf, n);
		w = pwrite(fd, buf, n, (off_t)off);
		if (w < 0) {
			r = -errno;
			break;
		}
		if ((size_t)w != n) {
			r = -EIO;
			break;
		}
		off += n;
	}
	free(buf);
	if (close(fd) < 0 && !r)
		r = -errno;
	return r;
}

bool buf_verify(int fd, uint64_t len, uint32_t seed, uint64_t off, char *why, size_t n)
{
	const int want = F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL;
	char link[64], target[256];
	struct stat st;
	ssize_t k;
	int seals, fl, rw;
	char *map = NULL, *expect = NULL;
	bool ok = false, huge;
	size_t map_len;

	if (fd < 0) {
		snprintf(why, n, "no fd (%d)", fd);
		return false;
	}
	if (fstat(fd, &st) < 0) {
		snprintf(why, n, "fstat: %s", strerror(errno));
		return false;
	}
	if (!S_ISREG(st.st_mode)) {
		snprintf(why, n, "not a regular file (mode %o)", st.st_mode);
		return false;
	}
	/* A hugetlb buffer (its block size is the huge page size) is rounded up to
	 * whole huge pages; any other is exactly the data. */
	huge = st.st_blksize > getpagesize();
	if ((uint64_t)st.st_size < len || (!huge && (uint64_t)st.st_size != len) ||
	    (huge && (st.st_size % st.st_blksize ||
		      (uint64_t)st.st_size - len >= (uint64_t)st.st_blksize))) {
		snprintf(why, n, "fstat size %lld, expected %llu%s", (long long)st.st_size,
			 (unsigned long long)len, huge ? " rounded up to huge pages" : "");
		return false;
	}
	snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
	k = readlink(link, target, sizeof(target) - 1);
	target[k < 0 ? 0 : k] = '\0';
	if (strncmp(target, "/memfd:", 7) != 0) {
		snprintf(why, n, "not a memfd: %s", target);
		return false;
	}
	fl = fcntl(fd, F_GETFD);
	if (fl < 0 || !(fl & FD_CLOEXEC)) {
		snprintf(why, n, "received fd is not close-on-exec");
		return false;
	}
	seals = fcntl(fd, F_GET_SEALS);
	if (seals < 0 || (seals & want) != want) {
		snprintf(why, n, "seals 0x%x, need 0x%x", seals, want);
		return false;
	}
	/* Every holder gets a read-only open file description of its own. */
	fl = fcntl(fd, F_GETFL);
	if (fl < 0 || (fl & O_ACCMODE) != O_RDONLY || pwrite(fd, "x", 1, 0) >= 0) {
		snprintf(why, n, "the buffer was handed out writable (flags 0x%x)", fl);
		return false;
	}
	/* Opened again for writing (root may; others may not, the memfd is 0400): the
	 * seal still refuses writes. hugetlbfs has no write(): EINVAL, sealed or not. */
	rw = open(link, O_RDWR | O_CLOEXEC);
	if (rw < 0 && (errno != EACCES || geteuid() == 0)) {
		snprintf(why, n, "reopening the buffer read-write: %s", strerror(errno));
		return false;
	}
	if (rw >= 0) {
		bool refused = pwrite(rw, "x", 1, 0) < 0 && errno == (huge ? EINVAL : EPERM);

		close(rw);
		if (!refused) {
			snprintf(why, n, "pwrite into the sealed buffer did not fail with %s",
				 huge ? "EINVAL" : "EPERM");
			return false;
		}
	}
	if (len == 0) {
		snprintf(why, n, "ok");
		return true;
	}
	/* The whole object: a hugetlb mapping can only be unmapped in whole huge
	 * pages (munmap of less fails with EINVAL and the pages stay mapped). */
	map_len = (size_t)st.st_size;
	map = mmap(NULL, map_len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (map != MAP_FAILED) {
		munmap(map, map_len);
		snprintf(why, n, "writable shared mapping of the sealed buffer succeeded");
		return false;
	}
	map = mmap(NULL, map_len, PROT_READ, MAP_SHARED, fd, 0);
	if (map == MAP_FAILED) {
		snprintf(why, n, "mmap: %s", strerror(errno));
		return false;
	}
	expect = malloc(4 * MiB);
	if (!expect) {
		snprintf(why, n, "out of memory");
		goto out;
	}
	for (uint64_t pos = 0; pos < len; pos += 4 * MiB) {
		size_t chunk = len - pos < 4 * MiB ? (size_t)(len - pos) : 4 * MiB;

		pattern_fill(seed, off + pos, expect, chunk);
		if (memcmp(map + pos, expect, chunk) != 0) {
			size_t i = 0;

			while (i < chunk && map[pos + i] == expect[i])
				i++;
			snprintf(why, n, "byte %llu of %llu (file offset %llu) is 0x%02x, "
				 "expected 0x%02x", (unsigned long long)(pos + i),
				 (unsigned long long)len, (unsigned long long)(off + pos + i),
				 (unsigned char)map[pos + i], (unsigned char)expect[i]);
			goto out;
		}
	}
	/* past the data, a rounded-up buffer holds zeros */
	for (uint64_t pos = len; pos < map_len; pos++)
		if (map[pos]) {
			snprintf(why, n, "byte %llu, past the %llu bytes of data, is 0x%02x",
				 (unsigned long long)pos, (unsigned long long)len,
				 (unsigned char)map[pos]);
			goto out;
		}
	snprintf(why, n, "ok");
	ok = true;
out:
	free(expect);
	if (munmap(map, map_len) < 0 && ok) {
		snprintf(why, n, "munmap: %s", strerror(errno));
		ok = false;
	}
	return ok;
}

/* ---- huge pages ------------------------------------------------------------------ */

static long hugepages_orig = -1;
static pid_t hugepages_owner;	/* forked children must not restore the pool */

static long meminfo_value(const char *key)
{
	char line[256];
	long v = -1;
	size_t kl = strlen(key);
	FILE *f = fopen("/proc/meminfo", "re");

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, key, kl) && line[kl] == ':') {
			v = strtol(line + kl + 1, NULL, 10);
			break;
		}
	fclose(f);
	return v;
}

long hugepages_free(void)
{
	long fr = meminfo_value("HugePages_Free"), rs = meminfo_value("HugePages_Rsvd");

	return fr < 0 || rs < 0 ? -1 : fr - rs;
}

long hugepages_total(void)
{
	long v = -1;
	FILE *f = fopen("/proc/sys/vm/nr_hugepages", "re");

	if (f) {
		if (fscanf(f, "%ld", &v) != 1)
			v = -1;
		fclose(f);
	}
	return v;
}

static void hugepages_restore(void)
{
	if (hugepages_orig >= 0 && getpid() == hugepages_owner)
		hugepages_set((unsigned)hugepages_orig);
}

bool hugepages_set(unsigned n)
{
	FILE *f;

	if (hugepages_orig < 0) {
		hugepages_orig = hugepages_total();
		if (hugepages_orig < 0)
			return false;
		hugepages_owner = getpid();
		atexit(hugepages_restore);
	}
	f = fopen("/proc/sys/vm/nr_hugepages", "we");
	if (!f)
		return false;
	fprintf(f, "%u\n", n);
	if (fclose(f) != 0)
		return false;
	return hugepages_total() == (long)n;
}

bool hugepages_reserve(unsigned n)
{
	long now = hugepages_total(), fr = hugepages_free();

	if (now < 0 || fr < 0)
		return false;
	if (fr < (long)n && !hugepages_set((unsigned)(now + ((long)n - fr))))
		return false;
	return hugepages_free() >= (long)n;
}

/* ---- /proc probes -------------------------------------------------------------- */

static void proc_dir(pid_t pid, const char *what, char *out, size_t len)
{
	if (pid > 0)
		snprintf(out, len, "/proc/%d/%s", (int)pid, what);
	else
		snprintf(out, len, "/proc/self/%s", what);
}

int proc_fd_count(pid_t pid)
{
	char path[64];
	struct dirent *de;
	DIR *d;
	int n = 0;

	proc_dir(pid, "fd", path, sizeof(path));
	d = opendir(path);
	if (!d)
		return -errno;
	while ((de = readdir(d)))
		if (de->d_name[0] != '.')
			n++;
	closedir(d);
	if (pid <= 0)
		n--;	/* the DIR's own fd */
	return n;
}

int proc_memfd_count(pid_t pid, int *fds, int *maps)
{
	char path[64], link[PATH_MAX], line[1024], last[1024] = "";
	struct dirent *de;
	DIR *d;
	FILE *f;

	*fds = *maps = 0;
	proc_dir(pid, "fd", path, sizeof(path));
	d = opendir(path);
	if (!d)
		return -errno;
	while ((de = readdir(d))) {
		char p[PATH_MAX];
		ssize_t k;

		if (de->d_name[0] == '.')
			continue;
		snprintf(p, sizeof(p), "%s/%s", path, de->d_name);
		k = readlink(p, link, sizeof(link) - 1);
		if (k < 0)
			continue;
		link[k] = '\0';
		if (strstr(link, "memfd:"))
			(*fds)++;
	}
	closedir(d);

	proc_dir(pid, "maps", path, sizeof(path));
	f = fopen(path, "re");
	if (!f)
		return -errno;
	while (fgets(line, sizeof(line), f)) {
		char *name = strstr(line, "/memfd:");

		/* A mapping split into several VMAs counts once. */
		if (name && strcmp(name, last) != 0)
			(*maps)++;
		snprintf(last, sizeof(last), "%s", name ? name : "");
	}
	fclose(f);
	return 0;
}

void proc_fd_describe(pid_t pid, char *out, size_t len)
{
	char path[64];
	struct dirent *de;
	size_t used = 0;
	DIR *d;

	out[0] = '\0';
	proc_dir(pid, "fd", path, sizeof(path));
	d = opendir(path);
	if (!d)
		return;
	while ((de = readdir(d)) && used + 1 < len) {
		char p[PATH_MAX], link[256];
		ssize_t k;
		int w;

		if (de->d_name[0] == '.')
			continue;
		snprintf(p, sizeof(p), "%s/%s", path, de->d_name);
		k = readlink(p, link, sizeof(link) - 1);
		link[k < 0 ? 0 : k] = '\0';
		w = snprintf(out + used, len - used, "%s%s=%s", used ? " " : "", de->d_name,
			     link);
		if (w < 0)
			break;
		used += (size_t)w;
	}
	closedir(d);
}

/* ---- the daemon ---------------------------------------------------------------- */

#define MAX_DAEMONS 8
static pid_t daemon_pids[MAX_DAEMONS];

static void register_pid(pid_t pid)
{
	for (int i = 0; i < MAX_DAEMONS; i++)
		if (daemon_pids[i] <= 0) {
			daemon_pids[i] = pid;
			return;
		}
}

static void unregister_pid(pid_t pid)
{
	for (int i = 0; i < MAX_DAEMONS; i++)
		if (daemon_pids[i] == pid)
			daemon_pids[i] = 0;
}

/* The watchdog fired: leave no daemon behind. Async-signal-safe. */
static void kill_daemons(void)
{
	for (int i = 0; i < MAX_DAEMONS; i++)
		if (daemon_pids[i] > 0)
			kill(daemon_pids[i], SIGKILL);
}

static void log_tail_hook(void *data)
{
	const struct test_daemon *d = data;

	if (d && d->pid > 0)
		daemon_log_tail(d, getenv("DL_LOG_LINES") ? atoi(getenv("DL_LOG_LINES")) : 30);
}

const char *daemon_binary(void)
{
	const char *p = getenv("DMALOADD");

	return p && *p ? p : "build/dmaloadd";
}

const char *ctl_binary(void)
{
	const char *p = getenv("DMALOAD_CTL");

	return p && *p ? p : "build/dmaload-ctl";
}

/* Reads up to @len - 1 bytes of @path into @buf, NUL-terminated ("" on failure). */
static void read_text(const char *path, char *buf, size_t len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n = fd >= 0 ? read(fd, buf, len - 1) : -1;

	buf[n > 0 ? n : 0] = '\0';
	if (fd >= 0)
		close(fd);
}

int ctl_run(const char *sock, const char *dir, const char *const *args, int timeout_ms,
	    char *out, size_t out_len, char *err, size_t err_len)
{
	char opath[PATH_MAX], epath[PATH_MAX];
	const char *argv[64];
	uint64_t deadline;
	int n = 0, status;
	pid_t pid;

	argv[n++] = ctl_binary();
	argv[n++] = "--socket";
	argv[n++] = sock;
	while (*args && n < 63)
		argv[n++] = *args++;
	argv[n] = NULL;
	snprintf(opath, sizeof(opath), "%s/ctl.out", dir);
	snprintf(epath, sizeof(epath), "%s/ctl.err", dir);
	fflush(stdout);
	pid = fork();
	if (pid == 0) {
		int o = open(opath, O_WRONLY | O_CREAT | O_TRUNC, 0644);
		int e = open(epath, O_WRONLY | O_CREAT | O_TRUNC, 0644);
		int in = open("/dev/null", O_RDONLY);

		if (o < 0 || e < 0 || in < 0)
			_exit(126);
		dup2(in, 0);
		dup2(o, 1);
		dup2(e, 2);
		alarm(0);
		execv(argv[0], (char **)argv);
		dprintf(2, "exec %s: %s\n", argv[0], strerror(errno));
		_exit(127);
	}
	if (pid < 0)
		return -1;
	deadline = now_ms() + (uint64_t)timeout_ms;
	while (waitpid(pid, &status, WNOHANG) == 0) {
		if (now_ms() > deadline) {
			kill(pid, SIGKILL);
			waitpid(pid, &status, 0);
			snprintf(err, err_len, "timed out");
			return -1;
		}
		sleep_ms(10);
	}
	read_text(opath, out, out_len);
	read_text(epath, err, err_len);
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

int daemon_write_config(struct test_daemon *d, const char *io_extra)
{
	return daemon_write_config_more(d, io_extra, NULL);
}

int daemon_write_config_more(struct test_daemon *d, const char *io_extra,
			     const char *more)
{
	FILE *f = fopen(d->conf, "we");

	if (!f)
		return -errno;
	fprintf(f, "# written by the dmaloadd test harness\n"
		"[daemon]\n"
		"socket_mode = 0666\n"
		"log_level = debug\n"
		"\n"
		/* Kept buffers are daemon fds held on purpose: the leak probes would see
		 * them. Tests of the cache turn it on with their own [cache] section. */
		"[cache]\n"
		"cache_limit = 0\n"
		"\n"
		"[io]\n"
		"%s", io_extra ? io_extra : "");
	if (more)
		fprintf(f, "\n%s", more);
	if (fclose(f) != 0)
		return -errno;
	return 0;
}

static bool socket_accepts(const char *path)
{
	int s = raw_connect(path);

	if (s < 0)
		return false;
	close(s);
	return true;
}

int daemon_start(struct test_daemon *d, const char *tag, const char *io_extra,
		 char *why, size_t why_len)
{
	return daemon_start_more(d, tag, io_extra, NULL, why, why_len);
}

long daemon_log_size(const struct test_daemon *d)
{
	struct stat st;

	return stat(d->log, &st) == 0 ? (long)st.st_size : 0;
}

bool daemon_log_wait(const struct test_daemon *d, const char *needle, long skip,
		     int timeout_ms)
{
	uint64_t deadline = now_ms() + (uint64_t)timeout_ms;

	for (;;) {
		FILE *f = fopen(d->log, "re");
		char line[4096];
		bool found = false;

		if (f) {
			if (fseek(f, skip, SEEK_SET) == 0)
				while (!found && fgets(line, sizeof(line), f))
					found = strstr(line, needle) != NULL;
			fclose(f);
		}
		if (found)
			return true;
		if (now_ms() > deadline)
			return false;
		sleep_ms(20);
	}
}

int daemon_start_more(struct test_daemon *d, const char *tag, const char *io_extra,
		      const char *more, char *why, size_t why_len)
{
	const char *bin = daemon_binary();
	uint64_t deadline;
	int r, status;

	memset(d, 0, sizeof(*d));
	d->pid = -1;
	d->base_fds = d->base_memfds = -1;
	check_set_kill_hook(kill_daemons);
	if (access(bin, X_OK) < 0) {
		snprintf(why, why_len, "daemon binary %s: %s", bin, strerror(errno));
		return -ENOENT;
	}
	r = tdir_create(d->dir, sizeof(d->dir), tag);
	if (r < 0) {
		snprintf(why, why_len, "temp dir: %s", strerror(-r));
		return r;
	}
	snprintf(d->sock, sizeof(d->sock), "%s/sock", d->dir);
	snprintf(d->conf, sizeof(d->conf), "%s/dmaloadd.conf", d->dir);
	snprintf(d->log, sizeof(d->log), "%s/daemon.log", d->dir);
	r = daemon_write_config_more(d, io_extra, more);
	if (r < 0) {
		snprintf(why, why_len, "config: %s", strerror(-r));
		return r;
	}

	d->pid = fork();
	if (d->pid < 0) {
		r = -errno;
		snprintf(why, why_len, "fork: %s", strerror(-r));
		return r;
	}
	if (d->pid == 0) {
		int in = open("/dev/null", O_RDONLY);
		int out = open(d->log, O_WRONLY | O_CREAT | O_APPEND, 0644);

		if (in < 0 || out < 0)
			_exit(126);
		dup2(in, 0);
		dup2(out, 1);
		dup2(out, 2);
		syscall(SYS_close_range, 3u, ~0u, 0u);
		execl(bin, bin, "--config", d->conf, "--socket", d->sock, (char *)NULL);
		dprintf(2, "exec %s: %s\n", bin, strerror(errno));
		_exit(127);
	}
	register_pid(d->pid);
	check_set_fail_hook(log_tail_hook, d);

	deadline = now_ms() + 20000;
	for (;;) {
		if (socket_accepts(d->sock))
			return 0;
		r = waitpid(d->pid, &status, WNOHANG);
		if (r == d->pid) {
			unregister_pid(d->pid);
			d->pid = -1;
			snprintf(why, why_len, "daemon exited before accepting (status 0x%x)",
				 status);
			daemon_log_tail(d, getenv("DL_LOG_LINES") ? atoi(getenv("DL_LOG_LINES")) : 30);
			return -ECHILD;
		}
		if (now_ms() > deadline) {
			snprintf(why, why_len, "socket %s not accepting after 20 s", d->sock);
			daemon_log_tail(d, getenv("DL_LOG_LINES") ? atoi(getenv("DL_LOG_LINES")) : 30);
			return -ETIMEDOUT;
		}
		sleep_ms(20);
	}
}

bool daemon_alive(const struct test_daemon *d)
{
	return d->pid > 0 && kill(d->pid, 0) == 0 &&
	       waitpid(d->pid, NULL, WNOHANG) == 0;
}

int daemon_stop(struct test_daemon *d)
{
	uint64_t deadline;
	int status = 0;
	pid_t r;

	if (d->pid <= 0)
		return -1;
	kill(d->pid, SIGTERM);
	deadline = now_ms() + 20000;
	for (;;) {
		r = waitpid(d->pid, &status, WNOHANG);
		if (r == d->pid)
			break;
		if (r < 0 || now_ms() > deadline) {
			kill(d->pid, SIGKILL);
			waitpid(d->pid, &status, 0);
			unregister_pid(d->pid);
			d->pid = -1;
			return -1;
		}
		sleep_ms(20);
	}
	unregister_pid(d->pid);
	d->pid = -1;
	return status;
}

void daemon_log_tail(const struct test_daemon *d, int lines)
{
	char buf[256 * 1024];
	int fd = open(d->log, O_RDONLY | O_CLOEXEC);
	off_t size, start;
	ssize_t n;
	char *p;

	if (fd < 0)
		return;
	size = lseek(fd, 0, SEEK_END);
	start = size > (off_t)sizeof(buf) - 1 ? size - (off_t)sizeof(buf) + 1 : 0;
	n = pread(fd, buf, sizeof(buf) - 1, start);
	close(fd);
	if (n <= 0)
		return;
	for (ssize_t i = 0; i < n; i++)
		if (buf[i] == '\0')
			buf[i] = '?';
	buf[n] = '\0';
	p = buf + n;
	if (p > buf && p[-1] == '\n')
		p--;
	while (p > buf && lines > 0) {
		p--;
		if (*p == '\n')
			lines--;
	}
	if (*p == '\n')
		p++;
	fprintf(stderr, "---- %s (last lines) ----\n", d->log);
	for (char *line = p, *nl; *line; line = nl + 1) {
		nl = strchr(line, '\n');
		if (!nl) {
			fprintf(stderr, "  | %s\n", line);
			break;
		}
		fprintf(stderr, "  | %.*s\n", (int)(nl - line), line);
	}
	fprintf(stderr, "----\n");
}

static void counts(const struct test_daemon *d, int *fds, int *memfds)
{
	int mf = 0, mm = 0;

	*fds = proc_fd_count(d->pid);
	if (proc_memfd_count(d->pid, &mf, &mm) < 0)
		mf = mm = -1000;
	*memfds = mf + mm;
}

void daemon_baseline(struct test_daemon *d)
{
	int fds, memfds, last_fds = -1, last_memfds = -1;
	uint64_t stable_since = now_ms(), deadline = now_ms() + 5000;

	for (;;) {
		counts(d, &fds, &memfds);
		if (fds != last_fds || memfds != last_memfds) {
			last_fds = fds;
			last_memfds = memfds;
			stable_since = now_ms();
		} else if (now_ms() - stable_since >= 300 || now_ms() > deadline) {
			break;
		}
		sleep_ms(25);
	}
	d->base_fds = d->start_fds = fds;
	d->base_memfds = d->start_memfds = memfds;
}

bool daemon_settle_start(struct test_daemon *d, int timeout_ms, char *why, size_t why_len)
{
	d->base_fds = d->start_fds;
	d->base_memfds = d->start_memfds;
	return daemon_settle(d, timeout_ms, why, why_len);
}

bool daemon_settle(struct test_daemon *d, int timeout_ms, char *why, size_t why_len)
{
	uint64_t deadline = now_ms() + (uint64_t)timeout_ms;
	int fds, memfds;

	for (;;) {
		counts(d, &fds, &memfds);
		if (fds == d->base_fds && memfds == d->base_memfds)
			return true;
		if (now_ms() > deadline)
			break;
		sleep_ms(25);
	}
	{
		char desc[768];

		proc_fd_describe(d->pid, desc, sizeof(desc));
		snprintf(why, why_len, "after %d ms: %d fds (baseline %d), %d memfd fds+maps "
			 "(baseline %d); fds: %s", timeout_ms, fds, d->base_fds, memfds,
			 d->base_memfds, desc);
	}
	/* Later cases judge only their own leaks; start_* keep the first baseline. */
	d->base_fds = fds;
	d->base_memfds = memfds;
	return false;
}

void daemon_cleanup(struct test_daemon *d)
{
	if (d->pid > 0) {
		kill(d->pid, SIGKILL);
		waitpid(d->pid, NULL, 0);
		unregister_pid(d->pid);
		d->pid = -1;
	}
	check_set_fail_hook(NULL, NULL);
	if (!getenv("DMALOAD_TEST_KEEP"))
		tdir_remove(d->dir);
}

void daemon_stop_case(struct test_daemon *d, const char *suite_case)
{
	int status;

	check_begin("%s", suite_case);
	if (!CHECKF(daemon_alive(d), "daemon is not running any more"))
		goto out;
	status = daemon_stop(d);
	if (status == -1)
		check_fail(__FILE__, __LINE__,
			   "daemon did not exit within 20 s of SIGTERM (killed)");
	else if (WIFSIGNALED(status))
		check_fail(__FILE__, __LINE__, "daemon died of signal %d on SIGTERM",
			   WTERMSIG(status));
	else
		CHECKF(WEXITSTATUS(status) == 0, "daemon exited with status %d on SIGTERM",
		       WEXITSTATUS(status));
out:
	if (check_failed())
		daemon_log_tail(d, 40);
	check_set_fail_hook(NULL, NULL);
	check_end();
	daemon_cleanup(d);
}

/* ---- raw protocol -------------------------------------------------------------- */

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

/* ---- children ------------------------------------------------------------------ */

int child_run(int (*fn)(void *arg, char *msg, size_t len), void *arg,
	      char *msg, size_t len, int timeout_ms)
{
	uint64_t deadline = now_ms() + (uint64_t)timeout_ms;
	int pfd[2], status;
	size_t got = 0;
	pid_t pid;

	msg[0] = '\0';
	if (pipe2(pfd, O_CLOEXEC) < 0) {
		snprintf(msg, len, "pipe: %s", strerror(errno));
		return -1;
	}
	fflush(stdout);
	fflush(stderr);
	pid = fork();
	if (pid < 0) {
		snprintf(msg, len, "fork: %s", strerror(errno));
		close(pfd[0]);
		close(pfd[1]);
		return -1;
	}
	if (pid == 0) {
		char m[1024] = "";
		int r;

		close(pfd[0]);
		alarm(0);
		r = fn(arg, m, sizeof(m));
		if (r) {
			ssize_t w = write(pfd[1], m, strlen(m));
			(void)w;
		}
		_exit(r ? 1 : 0);
	}
	close(pfd[1]);
	for (;;) {
		struct pollfd p = { .fd = pfd[0], .events = POLLIN };
		int64_t left = (int64_t)(deadline - now_ms());
		ssize_t n;

		if (left <= 0) {
			kill(pid, SIGKILL);
			waitpid(pid, &status, 0);
			close(pfd[0]);
			snprintf(msg, len, "child timed out after %d ms", timeout_ms);
			return -ETIMEDOUT;
		}
		if (poll(&p, 1, (int)left) <= 0)
			continue;
		n = read(pfd[0], msg + got, len - 1 - got);
		if (n <= 0)
			break;
		got += (size_t)n;
		if (got >= len - 1)
			break;
	}
	msg[got] = '\0';
	close(pfd[0]);
	waitpid(pid, &status, 0);
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
		return 0;
	if (WIFEXITED(status) && WEXITSTATUS(status) == 1)
		return 1;
	if (!got)
		snprintf(msg, len, "child died: status 0x%x", status);
	return -1;
}
