/*
 * proc.c: what the tests and the bench read from /proc and write to it: a process's
 * open fds and memfds (the daemon's, for the leak probes), fields of /proc/meminfo,
 * and dropping the page cache. The one copy of each: the qemu guest's programs and
 * the bench link it too.
 */
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "harness.h"

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
		char *name = strstr(line, "/memfd:"), dev[32], ino[32], id[72] = "";

		/* A mapping split into several VMAs counts once. Buffers are all named
		 * "dmaload", so two buffers mapped side by side are told apart by their
		 * device and inode (the maps line's fourth and fifth fields). */
		if (name && sscanf(line, "%*s %*s %*s %31s %31s", dev, ino) == 2) {
			snprintf(id, sizeof(id), "%s %s", dev, ino);
			if (strcmp(id, last) != 0)
				(*maps)++;
		}
		snprintf(last, sizeof(last), "%s", id);
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


int drop_caches(void)
{
	int fd, err;

	sync();
	fd = open("/proc/sys/vm/drop_caches", O_WRONLY | O_CLOEXEC);
	if (fd < 0) {
		err = errno;
		fprintf(stderr, "# drop_caches: %s\n", strerror(err));
		return -err;
	}
	if (write(fd, "3", 1) != 1) {
		err = errno;
		fprintf(stderr, "# drop_caches: %s\n", strerror(err));
		close(fd);
		return -err;
	}
	close(fd);
	return 0;
}

long proc_rss_kib(pid_t pid)
{
	char path[64], line[256];
	long kib = -ENOENT;
	FILE *f;

	proc_dir(pid, "status", path, sizeof(path));
	f = fopen(path, "re");
	if (!f)
		return -errno;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "VmRSS: %ld kB", &kib) == 1)
			break;
	fclose(f);
	return kib;
}

long proc_cpu_ticks(pid_t pid)
{
	char path[64], buf[1024], *p;
	unsigned long utime, stime;
	ssize_t n;
	int fd;

	proc_dir(pid, "stat", path, sizeof(path));
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return -EIO;
	buf[n] = '\0';
	/* the name in parentheses may hold spaces: fields count from its end */
	p = strrchr(buf, ')');
	if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu",
			 &utime, &stime) != 2)
		return -EIO;
	return (long)(utime + stime);
}
