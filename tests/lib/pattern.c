/*
 * pattern.c: test files of a deterministic pattern, and the check of a DONE buffer
 * against them. Any byte of a pattern can be computed alone, so a test writes files of
 * any size and checks any range of a buffer without keeping a copy.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"

#ifndef F_SEAL_SEAL
#include <linux/fcntl.h>
#endif
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

int file_uncache(const char *path)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC), r = 0;

	if (fd < 0)
		return -errno;
	if (fdatasync(fd) < 0)
		r = -errno;
	else
		r = -posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
	close(fd);
	return r;
}
