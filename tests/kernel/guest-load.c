/*
 * guest-load.c: memfd loads through the real daemon inside the qemu test kernel, from
 * files on an ext4 disk that is a real (virtio-blk) block device, so O_DIRECT goes to
 * a disk and not to tmpfs or the host's page cache.
 *
 *   guest-load --make-files DIR   on the host, before `mke2fs -d DIR`: writes the test
 *                                 files (the same table and patterns the guest checks)
 *   guest-load DISK_DIR           in the guest: DISK_DIR is where /init mounted the
 *                                 disk; the daemon is the one /init started, found
 *                                 through $DMALOAD_SOCKET
 *
 * The cases mirror the foundation suite (tests/integration/test-load.c) at sizes TCG
 * can afford: whole files and ranges (page-aligned, 512-aligned, unaligned offsets,
 * a partial last O_DIRECT unit), by path and by fd, with method auto, direct and
 * buffered; every buffer is compared byte for byte with the pattern (buf_verify).
 * The page cache is dropped before each load, so buffered loads read the disk too and
 * auto sees cold files. Loads ask for an exact-size buffer: the kernel has huge pages
 * reserved, and a hugetlb buffer rounded up to 2 MiB is not what these cases check.
 *
 * Method cfr at the same sizes and offsets, and auto, depend on the kernel (guest.h):
 * the stock kernel refuses copy_file_range into a memfd, so cfr runs splice pairs and
 * auto picks direct for a cold file; the patched one takes it, so the daemon's probe
 * accepts it, cfr and auto run copy_file_range itself (DONE has DL_DONE_CFR_SYSCALL),
 * and at O_DIRECT-aligned offsets the file's range is not in its page cache after the
 * load (the kernel read it directly). A copy of the big file on ramfs, which has no
 * O_DIRECT, loads exactly with cfr on both (the patched kernel's page-cache fallback).
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "../lib/check.h"
#include "../lib/harness.h"
#include "../lib/loads.h"
#include "guest.h"

#define SUITE "kernel"

struct tfile {
	const char *name;
	uint64_t size;
	uint32_t seed;
	char path[PATH_MAX];
};

/* The biggest is a few chunks' worth of TCG time, with a tail that is not a whole
 * 512-byte unit; the others sit below and at one page. */
static struct tfile files[] = {
	{ .name = "big.bin", .size = 3 * MiB + 1234, .seed = 501 },
	{ .name = "page.bin", .size = 4096, .seed = 502 },
	{ .name = "tiny.bin", .size = 300, .seed = 503 },
};
#define N_FILES (sizeof(files) / sizeof(files[0]))
#define BIG (&files[0])

static struct dmaload *dl;

static const char *method_str(uint8_t m)
{
	return m == DL_METHOD_AUTO ? "auto" : dl_method_name(m);
}

static int make_files(const char *dir)
{
	for (size_t i = 0; i < N_FILES; i++) {
		char path[PATH_MAX];
		int r;

		snprintf(path, sizeof(path), "%s/%s", dir, files[i].name);
		r = file_make(path, files[i].size, files[i].seed, 0644);
		if (r < 0) {
			fprintf(stderr, "guest-load: writing %s: %s\n", path, strerror(-r));
			return 1;
		}
	}
	return 0;
}

static void hello(void)
{
	int r = dmaload_connect(&dl, NULL, "guest-load");

	CHECKF(r == 0, "dmaload_connect(%s): %s", dmaload_default_socket(), strerror(-r));
}

/* The premise of every other case: the files are on ext4 on a virtio-blk disk. */
static void disk(const char *dir)
{
	char fs[64] = "", sys[128], link[256];
	struct stat st;
	ssize_t n;

	if (!CHECK_OK(fs_type_name(dir, fs, sizeof(fs))) || !CHECK_STR(fs, "ext4"))
		return;
	if (!CHECKF(stat(BIG->path, &st) == 0, "%s: %s", BIG->path, strerror(errno)))
		return;
	CHECK_U64(st.st_size, ==, BIG->size);
	/* A partition-less disk: the file's device is a whole vdX, bound to virtio_blk. */
	snprintf(sys, sizeof(sys), "/sys/dev/block/%u:%u/device/driver", major(st.st_dev),
		 minor(st.st_dev));
	n = readlink(sys, link, sizeof(link) - 1);
	if (!CHECKF(n > 0, "%s: %s", sys, strerror(errno)))
		return;
	link[n] = '\0';
	CHECKF(strstr(link, "/virtio_blk"), "the disk's driver is %s, not virtio_blk", link);
}

/*
 * Loads [@off, @off + @len) of @f (@len DMALOAD_TO_EOF: to the end) by path or fd with
 * @method, checks the buffer, and then the method DONE reports against @want
 * (DL_METHOD_AUTO: either). Returns whether it all held; DONE is left in @evp.
 */
static bool load_ev(const struct tfile *f, bool by_fd, uint8_t method, uint64_t off,
		    uint64_t len, uint8_t want, struct dmaload_event *evp)
{
	struct dmaload_opts o;
	struct dmaload_event ev;
	uint64_t expect = len == DMALOAD_TO_EOF ? f->size - off : len;
	bool ok;
	int fd = -1;

	if (!CHECKF(dl, "no connection to the daemon"))
		return false;
	/* Cold cache for every load: buffered reads hit the disk, and auto's choice is
	 * the one for a file nobody has read. */
	drop_caches();
	dmaload_opts_init(&o);
	o.method = method;
	o.offset = off;
	o.length = len;
	o.exact_size = true;
	if (by_fd) {
		fd = open(f->path, O_RDONLY | O_CLOEXEC);
		if (!CHECKF(fd >= 0, "open %s: %s", f->path, strerror(errno)))
			return false;
	}
	ok = lc_load_verify(dl, by_fd ? NULL : f->path, fd, &o, expect, f->seed, want, &ev);
	if (ok)
		fprintf(stderr, "# %s [%llu, +%llu) %s: %s%s, reason %s, %.1f ms in the daemon\n",
			f->name, (unsigned long long)off, (unsigned long long)expect,
			method_str(method), dl_method_name(ev.method),
			ev.done_flags & DL_DONE_CFR_SYSCALL ? " (copy_file_range)" : "",
			dl_reason_name(ev.reason), ev.elapsed_ns / 1e6);
	if (fd >= 0)
		close(fd);
	if (evp)
		*evp = ev;
	return ok;
}

static void load(const struct tfile *f, bool by_fd, uint8_t method, uint64_t off,
		 uint64_t len, uint8_t want)
{
	load_ev(f, by_fd, method, off, len, want, NULL);
}

/*
 * A load that must go by copy_file_range on the patched kernel (@method cfr, or auto
 * for a cold file) and by splice pairs on the stock one (cfr): DONE's method and
 * DL_DONE_CFR_SYSCALL say which ran, and on the patched kernel the page cache proves
 * the direct path at O_DIRECT-aligned offsets (@direct).
 */
static void load_cfr(const struct tfile *f, bool by_fd, uint8_t method, uint64_t off,
		     uint64_t len, bool direct)
{
	uint64_t expect = len == DMALOAD_TO_EOF ? f->size - off : len;
	struct dmaload_event ev;
	bool sys;

	if (!load_ev(f, by_fd, method, off, len, DL_METHOD_CFR, &ev))
		return;
	sys = ev.done_flags & DL_DONE_CFR_SYSCALL;
	CHECKF(sys == guest_patched(), "DONE %s DL_DONE_CFR_SYSCALL on the %s kernel",
	       sys ? "has" : "lacks", guest_kernel());
	if (guest_patched() && direct)
		guest_check_not_cached(f->path, off, expect);
}

/* The control for guest_check_not_cached(): a buffered load leaves its range in the
 * page cache, so cachestat would see a copy that went through it. */
static void buffered_cached(void)
{
	uint64_t len = 2 * MiB;
	long cached;
	int fd;

	if (!load_ev(BIG, false, DL_METHOD_BUFFERED, 0, len, DL_METHOD_BUFFERED, NULL))
		return;
	fd = open(BIG->path, O_RDONLY | O_CLOEXEC);
	if (!CHECKF(fd >= 0, "open %s: %s", BIG->path, strerror(errno)))
		return;
	cached = guest_cached_pages(fd, 0, len);
	close(fd);
	if (CHECKF(cached >= 0, "cachestat: %s", strerror((int)-cached)))
		CHECKF(cached >= (long)(len / 4096), "only %ld of %llu pages in the page cache",
		       cached, (unsigned long long)(len / 4096));
}

/* The call method cfr makes on this kernel, for case names. */
static const char *cfr_call(void)
{
	return guest_patched() ? "copy_file_range" : "splice pairs";
}

#define RAMFS_DIR "/tmp/guest-load-ramfs"

/* The big file again, on ramfs (no O_DIRECT): method cfr loads it exactly on both
 * kernels, by copy_file_range's page-cache fallback on the patched one. ramfs files
 * are all page cache, so auto splices them (reported as cfr) on both. */
static void ramfs_source(uint8_t method)
{
	struct tfile rf = *BIG;
	struct dmaload_event ev;
	bool sys = method == DL_METHOD_CFR && guest_patched();
	int r;

	snprintf(rf.path, sizeof(rf.path), RAMFS_DIR "/%s", rf.name);
	mkdir(RAMFS_DIR, 0755);
	if (!CHECKF(mount("ramfs", RAMFS_DIR, "ramfs", 0, NULL) == 0, "mount ramfs: %s",
		    strerror(errno)))
		return;
	r = file_make(rf.path, rf.size, rf.seed, 0644);
	if (CHECKF(r == 0, "writing %s: %s", rf.path, strerror(-r)) &&
	    load_ev(&rf, false, method, 0, DMALOAD_TO_EOF, DL_METHOD_CFR, &ev))
		CHECKF(!!(ev.done_flags & DL_DONE_CFR_SYSCALL) == sys,
		       "DONE %s DL_DONE_CFR_SYSCALL on the %s kernel",
		       ev.done_flags & DL_DONE_CFR_SYSCALL ? "has" : "lacks", guest_kernel());
	umount(RAMFS_DIR);
	rmdir(RAMFS_DIR);
}

/* Direct forced on an unaligned offset is refused, never silently downgraded. */
static void direct_unaligned(void)
{
	static const int einval[] = { EINVAL };
	struct dmaload_opts o;

	if (!CHECKF(dl, "no connection to the daemon"))
		return;
	dmaload_opts_init(&o);
	o.method = DL_METHOD_DIRECT;
	o.offset = 1000;
	o.length = MiB;
	o.exact_size = true;
	lc_load_error(dl, BIG->path, -1, &o, einval, 1, NULL);
}

int main(int argc, char **argv)
{
	static const uint8_t methods[] = { DL_METHOD_AUTO, DL_METHOD_DIRECT,
					   DL_METHOD_BUFFERED };
	const char *dir;

	if (argc == 3 && strcmp(argv[1], "--make-files") == 0)
		return make_files(argv[2]);
	if (argc != 2) {
		fprintf(stderr, "usage: %s DISK_DIR (inside the qemu test kernel)\n"
			"       %s --make-files DIR\n", argv[0], argv[0]);
		return 2;
	}
	dir = argv[1];
	for (size_t i = 0; i < N_FILES; i++)
		snprintf(files[i].path, sizeof(files[i].path), "%s/%s", dir, files[i].name);
	check_init(SUITE);

	CASE(hello(), "load: connect and HELLO to the daemon");
	CASE(disk(dir), "load: test files on ext4 on a virtio-blk disk");

	/* Whole files. A cold file at offset 0 on ext4 is what O_DIRECT is for: auto
	 * must pick it there, or copy_file_range where the kernel takes it into a memfd
	 * (the patched kernel), which reads by direct I/O itself. */
	for (int by_fd = 0; by_fd <= 1; by_fd++)
		for (size_t m = 0; m < sizeof(methods); m++)
			if (methods[m] == DL_METHOD_AUTO && guest_patched())
				CASE(load_cfr(BIG, by_fd, DL_METHOD_AUTO, 0, DMALOAD_TO_EOF, true),
				     "load: %s by %s, method auto: copy_file_range into a memfd, "
				     "none of it in the page cache", BIG->name,
				     by_fd ? "fd" : "path");
			else
				CASE(load(BIG, by_fd, methods[m], 0, DMALOAD_TO_EOF,
					  methods[m] == DL_METHOD_AUTO ? DL_METHOD_DIRECT :
					  methods[m]),
				     "load: %s by %s, method %s", BIG->name,
				     by_fd ? "fd" : "path", method_str(methods[m]));

	/* Ranges of the big file. */
	CASE(load(BIG, false, DL_METHOD_DIRECT, 4096, 2 * MiB + 100, DL_METHOD_DIRECT),
	     "load: range at a page-aligned offset, method direct");
	CASE(load(BIG, true, DL_METHOD_DIRECT, 2 * MiB + 512, DMALOAD_TO_EOF,
		  DL_METHOD_DIRECT),
	     "load: range to EOF at a 512-aligned offset by fd, method direct");
	CASE(load(BIG, false, DL_METHOD_AUTO, 1000, MiB, DL_METHOD_AUTO),
	     "load: range at an unaligned offset, method auto");
	CASE(load(BIG, true, DL_METHOD_BUFFERED, 12345, MiB + 7, DL_METHOD_BUFFERED),
	     "load: range at an unaligned offset by fd, method buffered");
	CASE(direct_unaligned(), "load: method direct at an unaligned offset is refused "
	     "with EINVAL");

	/* Small files: one page, and less than one O_DIRECT unit. */
	CASE(load(&files[1], false, DL_METHOD_DIRECT, 0, DMALOAD_TO_EOF, DL_METHOD_DIRECT),
	     "load: %s, method direct", files[1].name);
	CASE(load(&files[2], true, DL_METHOD_AUTO, 0, DMALOAD_TO_EOF, DL_METHOD_AUTO),
	     "load: %s by fd, method auto", files[2].name);

	CASE(buffered_cached(), "load: method buffered leaves its range in the page cache "
	     "(cachestat sees it: the control for the direct-path proof)");

	/* Method cfr at the same sizes and offsets: copy_file_range on the patched
	 * kernel (direct I/O where the offset allows), splice pairs on the stock one. */
	CASE(load_cfr(BIG, false, DL_METHOD_CFR, 0, DMALOAD_TO_EOF, true),
	     "load: %s by path, method cfr: %s into a memfd%s", BIG->name, cfr_call(),
	     guest_patched() ? ", none of it in the page cache" : "");
	CASE(load_cfr(BIG, true, DL_METHOD_CFR, 0, DMALOAD_TO_EOF, true),
	     "load: %s by fd, method cfr: %s into a memfd%s", BIG->name, cfr_call(),
	     guest_patched() ? ", none of it in the page cache" : "");
	CASE(load_cfr(BIG, false, DL_METHOD_CFR, 4096, 2 * MiB + 100, true),
	     "load: range at a page-aligned offset, method cfr: %s into a memfd%s",
	     cfr_call(), guest_patched() ? ", none of it in the page cache" : "");
	CASE(load_cfr(BIG, true, DL_METHOD_CFR, 2 * MiB + 512, DMALOAD_TO_EOF, true),
	     "load: range to EOF at a 512-aligned offset by fd, method cfr: %s into a "
	     "memfd%s", cfr_call(), guest_patched() ? ", none of it in the page cache" : "");
	CASE(load_cfr(BIG, false, DL_METHOD_CFR, 1000, MiB, false),
	     "load: range at an unaligned offset, method cfr: %s into a memfd", cfr_call());
	CASE(load_cfr(&files[1], false, DL_METHOD_CFR, 0, DMALOAD_TO_EOF, true),
	     "load: %s, method cfr: %s into a memfd", files[1].name, cfr_call());
	CASE(load_cfr(&files[2], true, DL_METHOD_CFR, 0, DMALOAD_TO_EOF, false),
	     "load: %s by fd, method cfr: %s into a memfd", files[2].name, cfr_call());
	CASE(ramfs_source(DL_METHOD_CFR), "load: from ramfs (no O_DIRECT), method cfr: %s "
	     "into a memfd", cfr_call());
	CASE(ramfs_source(DL_METHOD_AUTO), "load: from ramfs (no O_DIRECT, all in the page "
	     "cache), method auto: splice pairs into a memfd");

	dl = dmaload_close(dl);
	return check_finish();
}
