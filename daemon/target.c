/*
 * target.c: memfd buffers. The memfd is created with MFD_ALLOW_SEALING and sized
 * with ftruncate, which allocates nothing: 4 KiB pages are allocated as the O_DIRECT
 * reads (or the copies of buffered reads) fault them in, so allocation overlaps the
 * I/O instead of preceding it. Sealing needs the writable mapping gone first
 * (F_SEAL_WRITE fails with EBUSY while one exists), so target_finish unmaps, then
 * seals.
 *
 * Huge pages cost a fraction of 4 KiB pages to allocate, fault and free (measured:
 * about 115 ms against 300-800 ms per GiB).
 *
 * Transparent huge pages: where shmem_enabled, or one size's hugepages-<size>kB/
 * shmem_enabled (multi-size THP), lets a mapping advised MADV_HUGEPAGE have them
 * (advise, within_size, always), a 4 KiB-page buffer of at least one huge page is so
 * advised ([io] thp = auto) and mapped at a huge page's alignment (map_aligned), and
 * the reads fault it in 2 MiB (or 64 KiB, ...) at a time. With 64 KiB folios only:
 * 180-200 ms of CPU per cold GiB against 520-660 for staged 4 KiB pages. Measured
 * (issue 15, 32 x 32 MiB cold): 163-224 ms of CPU per GiB against 580-712 for 4 KiB
 * pages written by copy.c's staged chunks, and 1820-2341 MB/s against 1552-1951. On a
 * VM whose host takes back freed memory (free page reporting), the first touch of
 * memory the host took back costs more (0.7-2.4 s per GiB, against 47 ms when the
 * pages were freed just before); 4 KiB pages pay less of it. The daemon never changes
 * shmem_enabled: that is the administrator's. A hugetlb file's size must be a whole
 * number of huge pages, so the buffer is rounded up and the client is told the real
 * data size. The shared mapping reserves every huge page of the buffer at mmap time:
 * a pool that runs short fails the mmap, before any byte is read, and the buffer is
 * made again from 4 KiB pages. That is the only way to use the pool without racing
 * other users of it; reading free_hugepages first would only be a guess.
 *
 * udmabuf: the memfd is filled exactly like a memfd target, then UDMABUF_CREATE pins
 * its pages into a dma-buf. udmabuf wants F_SEAL_SHRINK (the pages it pins must not
 * be truncated away) and refuses F_SEAL_WRITE (a dma-buf is writable by its devices
 * and importers, so a write seal would be a lie), so these memfds are sealed shrink,
 * grow and seal, never write. Its offset and size must be page-aligned: the memfd is
 * page-rounded. hugetlb memfds: kernels before 6.11 accept them in UDMABUF_CREATE but
 * hand out their tail pages one by one, and mapping such a dma-buf then freeing it
 * corrupts the huge page free list (seen here on 6.1: an oops in enqueue of the freed
 * huge page). 6.11 pins folios instead (memfd_pin_folios). So hugetlb udmabufs need
 * 6.11 or later, and one probe with a single huge page; else 4 KiB pages.
 *
 * heap: DMA_HEAP_IOCTL_ALLOC allocates every page at once (so on a worker), and its
 * mapping is a PFN map that O_DIRECT cannot target (copy.c reads direct into bounce
 * buffers). CPU writes are bracketed by DMA_BUF_IOCTL_SYNC START and END, for heaps
 * whose memory is not cache-coherent.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/dma-buf.h>
#include <linux/dma-heap.h>
#include <linux/udmabuf.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <sys/vfs.h>
#include <unistd.h>

#include "dmaload-proto.h"
#include "log.h"
#include "target.h"
#include "util.h"

/* The pool was short last time: log the fallback once, not for every load. */
static bool pool_short_logged;
/* [io] thp (target_set_thp) */
static bool thp_on = true;

void target_set_thp(bool on)
{
	thp_on = on;
}

void target_init(struct target *t)
{
	memset(t, 0, sizeof(*t));
	t->fd = -1;
	t->dev_fd = -1;
	t->kind = DL_TARGET_MEMFD;
}

/* heap: ends (or begins) CPU access to the dma-buf. */
static int dmabuf_sync(int fd, uint64_t flags)
{
	struct dma_buf_sync sync = { .flags = flags | DMA_BUF_SYNC_WRITE };

	while (ioctl(fd, DMA_BUF_IOCTL_SYNC, &sync) < 0)
		if (errno != EINTR && errno != EAGAIN)
			return -errno;
	return 0;
}

void target_deinit(struct target *t)
{
	if (t->syncing)
		dmabuf_sync(t->fd, DMA_BUF_SYNC_END);
	t->syncing = false;
	if (t->map)
		munmap(t->map, t->map_len);
	t->map = NULL;
	if (t->fd >= 0)
		close(t->fd);
	t->fd = -1;
	if (t->dev_fd >= 0)
		close(t->dev_fd);
	t->dev_fd = -1;
}

uint64_t target_huge_page_size(void)
{
	static uint64_t size;
	long kb;

	if (__atomic_load_n(&size, __ATOMIC_RELAXED))
		return size;
	kb = meminfo_value("Hugepagesize");
	if (kb > 0)
		__atomic_store_n(&size, (uint64_t)kb << 10, __ATOMIC_RELAXED);
	return size;
}

/* The name every buffer shows in /proc/PID/fd of its holders: the same for all, since
 * later holders of a shared buffer may be other users than the first loader. */
#define BUFFER_NAME "dmaload"

/*
 * Maps @len bytes of @fd at an address aligned to @align. The kernel gives a shmem
 * mapping a transparent huge page (or a multi-size one) only where the folio's file
 * range lines up with an equally aligned address range, and mmap aligns a shmem
 * mapping by itself only when the global shmem_enabled allows huge pages: with just
 * hugepages-64kB/shmem_enabled at advise, a 24 MiB buffer with a ragged tail got no
 * 64 KiB folio at all, an exact 24 MiB one all of them. So a range @align longer is
 * reserved and the mapping put at its first aligned address.
 */
static void *map_aligned(int fd, uint64_t len, uint64_t align)
{
	char *res = mmap(NULL, len + align, PROT_NONE,
			 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	char *at;

	if (res == MAP_FAILED)
		return MAP_FAILED;
	at = (char *)round_up((uint64_t)(uintptr_t)res, align);
	if (mmap(at, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, fd, 0) == MAP_FAILED) {
		int e = errno;

		munmap(res, len + align);
		errno = e;
		return MAP_FAILED;
	}
	if (at > res)
		munmap(res, (size_t)(at - res));
	if (at + len < res + len + align)
		munmap(at + len, (size_t)(res + align - at));
	return at;
}

/* Makes the memfd, sizes it to @len and maps @map_len bytes of it (@len rounded up
 * to its pages; a buffer of a huge page or more at a huge page's alignment, where
 * transparent huge pages may back it). Returns 0 or -errno. */
static int target_make(struct target *t, unsigned flags, uint64_t len, uint64_t map_len)
{
	uint64_t huge;
	int r;

	t->fd = memfd_create(BUFFER_NAME, MFD_CLOEXEC | MFD_ALLOW_SEALING | flags);
	if (t->fd < 0)
		return -errno;
	/* Its holders get read-only descriptors of their own (target_handout); 0400 also
	 * keeps a holder that is not the daemon's user from reopening its descriptor
	 * read-write through its own /proc/self/fd. */
	if (fchmod(t->fd, 0400) < 0)
		goto fail;
	t->map_len = map_len;
	if (ftruncate(t->fd, (off_t)len) < 0)
		goto fail;
	if (map_len == 0)
		return 0;
	huge = target_huge_page_size();
	if (!(flags & MFD_HUGETLB) && huge && map_len >= huge)
		t->map = map_aligned(t->fd, map_len, huge);
	else
		t->map = mmap(NULL, map_len, PROT_READ | PROT_WRITE, MAP_SHARED, t->fd, 0);
	if (t->map == MAP_FAILED) {
		t->map = NULL;
		goto fail;
	}
	return 0;
fail:
	r = -errno;
	target_deinit(t);
	return r;
}

/* Tries a hugetlb buffer. Returns 0, or -errno (-ENOMEM: the pool has no room). */
static int target_make_huge(struct target *t, uint64_t size, uint64_t huge)
{
	uint64_t len = round_up(size, huge);
	int r = target_make(t, MFD_HUGETLB, len, len);

	if (r == 0) {
		t->hugetlb = true;
		if (__atomic_exchange_n(&pool_short_logged, false, __ATOMIC_RELAXED))
			log_notice("huge pages: the pool has room again");
	}
	return r;
}

/* vm.nr_overcommit_hugepages: how many surplus huge pages the kernel may hand out
 * beyond the pool, from free memory, when a buffer is mapped. -1 if unknown. */
static long overcommit_pages(void)
{
	return read_long_file("/proc/sys/vm/nr_overcommit_hugepages");
}

#define SHMEM_THP_KNOB "/sys/kernel/mm/transparent_hugepage/shmem_enabled"
#define THP_DIR "/sys/kernel/mm/transparent_hugepage"

/* Whether the knob @path names, in brackets, a setting under which a mapping advised
 * MADV_HUGEPAGE gets large folios: always, within_size, advise (and force). */
static bool knob_allows(const char *path)
{
	char buf[128], *a, *b;
	FILE *f = fopen(path, "re");
	bool ok = false;

	if (!f)
		return false;
	if (fgets(buf, sizeof(buf), f) && (a = strchr(buf, '[')) && (b = strchr(a, ']'))) {
		*b = '\0';
		ok = !strcmp(a + 1, "always") || !strcmp(a + 1, "within_size") ||
		     !strcmp(a + 1, "advise") || !strcmp(a + 1, "force");
	}
	fclose(f);
	return ok;
}

/* Whether shmem_enabled lets a mapping advised MADV_HUGEPAGE have transparent huge
 * pages: the global knob (PMD-sized pages, and every size set to inherit), or since
 * Linux 6.11 a size's own hugepages-<size>kB/shmem_enabled (multi-size THP: folios
 * of 16 KiB to 1 MiB cut the faults and frees as 2 MiB pages do, if less). Read for
 * every buffer of a huge page or more: the administrator may change them any time. */
static bool shmem_thp_allowed(void)
{
	char path[PATH_MAX];
	struct dirent *e;
	bool ok = knob_allows(SHMEM_THP_KNOB);
	DIR *d = ok ? NULL : opendir(THP_DIR);

	while (d && !ok && (e = readdir(d))) {
		if (strncmp(e->d_name, "hugepages-", 10) != 0)
			continue;
		snprintf(path, sizeof(path), THP_DIR "/%s/shmem_enabled", e->d_name);
		ok = knob_allows(path);
	}
	if (d)
		closedir(d);
	return ok;
}

void target_log_host(enum config_toggle hugetlb)
{
	long total = meminfo_value("HugePages_Total"), over = overcommit_pages();
	uint64_t huge = target_huge_page_size();

	if (hugetlb == CONFIG_OFF || !huge)
		log_notice("buffers: 4 KiB pages (%s)", hugetlb == CONFIG_OFF ?
			   "[io] hugetlb = off" : "this kernel has no huge pages");
	else if (total > 0 || over > 0)
		log_notice("buffers: huge pages of %llu KiB where they fit: %ld reserved "
			   "(vm.nr_hugepages), up to %ld more on demand "
			   "(vm.nr_overcommit_hugepages); else 4 KiB pages",
			   (unsigned long long)(huge >> 10), total, over < 0 ? 0 : over);
	else
		log_notice("buffers: 4 KiB pages, since no huge page is reserved or allowed; "
			   "loads fill huge pages about 10x faster: allow them on demand with "
			   "vm.nr_overcommit_hugepages (make install-hugepages, or "
			   "share/dmaloadd/60-dmaloadd-hugepages.conf; dmaloadd(8), HUGE PAGES)");
	if (thp_on && shmem_thp_allowed())
		log_notice("buffers of 4 KiB pages: transparent huge pages where they fit "
			   "(" SHMEM_THP_KNOB " or a size's hugepages-*/shmem_enabled "
			   "allows them; [io] thp = off turns them off)");
	else if (thp_on && access(THP_DIR "/hugepages-64kB/shmem_enabled", F_OK) == 0)
		log_notice("buffers of 4 KiB pages: no transparent huge pages (shmem_enabled "
			   "allows none); 64 KiB folios cost a loaded GiB about a third of the "
			   "CPU: make install-thp, or share/dmaloadd/60-dmaloadd-thp.conf in "
			   "tmpfiles.d (dmaloadd(8), HUGE PAGES)");
}

int target_create(struct target *t, uint64_t size, enum config_toggle hugetlb, bool exact)
{
	uint64_t page = (uint64_t)getpagesize(), huge = target_huge_page_size();
	int r;

	t->size = size;
	if (hugetlb != CONFIG_OFF && huge && size > 0 &&
	    (hugetlb == CONFIG_ON || size >= huge) && !(exact && size % huge)) {
		r = target_make_huge(t, size, huge);
		if (r == 0)
			return 0;
		t->hugetlb_short = true;
		if (!__atomic_exchange_n(&pool_short_logged, true, __ATOMIC_RELAXED))
			log_notice("huge pages: no room for a %llu-byte buffer (%s; %ld of "
				   "%ld reserved huge pages free, %ld of %ld surplus in use); "
				   "using 4 KiB pages until there is room (vm.nr_hugepages "
				   "reserves a pool, vm.nr_overcommit_hugepages allows surplus "
				   "pages: dmaloadd(8), HUGE PAGES)",
				   (unsigned long long)size, strerror(-r),
				   meminfo_value("HugePages_Free") -
				   meminfo_value("HugePages_Rsvd"),
				   meminfo_value("HugePages_Total"),
				   meminfo_value("HugePages_Surp"), overcommit_pages());
	}
	r = target_make(t, 0, size, round_up(size, page));
	/* Transparent huge pages where the host allows them for shmem: the reads fault
	 * in a 2 MiB page at a time, and freeing them is as cheap as hugetlb's. */
	if (r == 0 && thp_on && huge && t->map_len >= huge && shmem_thp_allowed() &&
	    madvise(t->map, t->map_len, MADV_HUGEPAGE) == 0)
		t->thp = true;
	return r;
}

int target_create_unmapped(struct target *t, uint64_t size)
{
	int r;

	t->size = size;
	r = target_make(t, 0, size, 0);
	if (r == 0)
		t->map_len = round_up(size, (uint64_t)getpagesize());
	return r;
}

int target_handout(int fd)
{
	char p[64];
	int r;

	/* Our own /proc/self/fd: a new open file description of the same memfd. */
	snprintf(p, sizeof(p), "/proc/self/fd/%d", fd);
	r = open(p, O_RDONLY | O_CLOEXEC);
	return r < 0 ? -errno : r;
}

bool target_sealed(const struct target *t)
{
	return t->kind == DL_TARGET_MEMFD && !t->into;
}

/* ---- the caller's buffer ---------------------------------------------------------- */

#ifndef HUGETLBFS_MAGIC
#define HUGETLBFS_MAGIC 0x958458f6
#endif

/* The exporter's name of dma-buf @fd ("exp_name:" in /proc/self/fdinfo), or "" when
 * @fd is not a dma-buf. */
static void dmabuf_exporter(int fd, char *out, size_t len)
{
	char path[64], line[256];
	FILE *f;

	out[0] = '\0';
	snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", fd);
	f = fopen(path, "re");
	if (!f)
		return;
	while (fgets(line, sizeof(line), f)) {
		if (strncmp(line, "exp_name:", 9))
			continue;
		char *v = line + 9;

		v += strspn(v, " \t");
		v[strcspn(v, "\n")] = '\0';
		snprintf(out, len, "%s", v[0] ? v : "?");
		break;
	}
	fclose(f);
}

/* The memfd checks: write seals, F_SEAL_SHRINK, size; and the page size to map by. */
static int into_check_memfd(struct target *t, uint64_t hi, uint64_t *page, char *msg,
			    size_t len)
{
	struct statfs sfs;
	struct stat st;
	int seals = fcntl(t->fd, F_GET_SEALS);

	if (seals < 0) {
		snprintf(msg, len, "cannot read the buffer's seals: %s", strerror(errno));
		return -EINVAL;
	}
	if (seals & (F_SEAL_WRITE | F_SEAL_FUTURE_WRITE)) {
		snprintf(msg, len, "the buffer memfd is write-sealed (%s): nothing can be "
			 "loaded into it", (seals & F_SEAL_WRITE) ? "F_SEAL_WRITE" :
			 "F_SEAL_FUTURE_WRITE");
		return -EPERM;
	}
	if (!(seals & F_SEAL_SHRINK)) {
		snprintf(msg, len, "the buffer memfd is not sealed against shrinking: add "
			 "F_SEAL_SHRINK (memfd_create with MFD_ALLOW_SEALING, ftruncate, then "
			 "fcntl F_ADD_SEALS F_SEAL_SHRINK), so that it cannot be truncated under "
			 "the load");
		return -EINVAL;
	}
	if (fstat(t->fd, &st) < 0 || fstatfs(t->fd, &sfs) < 0) {
		snprintf(msg, len, "cannot stat the buffer: %s", strerror(errno));
		return -EINVAL;
	}
	t->size = (uint64_t)st.st_size;
	if (t->size < hi) {
		snprintf(msg, len, "the buffer is too small: %llu bytes, the load needs "
			 "%llu (buffer offset + length)", (unsigned long long)t->size,
			 (unsigned long long)hi);
		return -EINVAL;
	}
	t->hugetlb = (uint64_t)sfs.f_type == HUGETLBFS_MAGIC;
	*page = t->hugetlb && st.st_blksize > 0 ? (uint64_t)st.st_blksize :
		(uint64_t)getpagesize();
	return 0;
}

/* The dma-buf checks: its size; which exporter. */
static int into_check_dmabuf(struct target *t, uint64_t hi, char *msg, size_t len)
{
	off_t end = lseek(t->fd, 0, SEEK_END);

	if (end < 0) {
		snprintf(msg, len, "cannot size the dma-buf of exporter \"%s\": %s", t->heap,
			 strerror(errno));
		return -EINVAL;
	}
	t->size = (uint64_t)end;
	if (t->size < hi) {
		snprintf(msg, len, "the dma-buf is too small: %llu bytes, the load needs "
			 "%llu (buffer offset + length)", (unsigned long long)t->size,
			 (unsigned long long)hi);
		return -EINVAL;
	}
	t->pfnmap = true;
	t->kind = strcmp(t->heap, "udmabuf") ? DL_TARGET_HEAP : DL_TARGET_UDMABUF;
	return 0;
}

uint64_t target_unpaid_bytes(const struct target *t)
{
	struct stat st;
	uint64_t alloc;

	if (!t->into || t->kind != DL_TARGET_MEMFD || t->hugetlb)
		return 0;
	/* i_blocks counts every page the memfd holds, written or fallocated. Neither
	 * SEEK_DATA nor mincore would do: shmem shows fallocated pages that were never
	 * written as holes and not resident, yet they are allocated and paid for. */
	if (fstat(t->fd, &st) < 0)
		return UINT64_MAX;
	alloc = (uint64_t)st.st_blocks * 512;
	return (uint64_t)st.st_size > alloc ? (uint64_t)st.st_size - alloc : 0;
}

void target_prefault(struct target *t, uint64_t buf, uint64_t len)
{
	uint64_t a = buf / t->page * t->page, b = round_up(buf + len, t->page);

	if (!t->into || t->pfnmap || !t->map || t->no_prefault || !len)
		return;
	if (madvise((char *)t->map + (a - t->map_off), b - a, MADV_POPULATE_WRITE) < 0 &&
	    (errno == EINVAL || errno == ENOSYS))
		t->no_prefault = true;	/* not this kernel: the reads fault them in */
}

bool target_fresh_small_pages(const struct target *t)
{
	return (t->kind == DL_TARGET_MEMFD || t->kind == DL_TARGET_UDMABUF) && !t->into &&
	       !t->pfnmap && !t->hugetlb && !t->thp && t->fd >= 0;
}

int target_open_into(struct target *t, int fd, uint64_t lo, uint64_t hi, char *msg,
		     size_t len)
{
	char path[64], link[128];
	uint64_t page = (uint64_t)getpagesize();
	bool memfd, dmabuf;
	ssize_t n;
	int fl, r;

	t->fd = fd;
	t->into = true;
	fl = fcntl(fd, F_GETFL);
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	n = readlink(path, link, sizeof(link) - 1);
	if (fl < 0 || n < 0) {
		snprintf(msg, len, "cannot inspect the buffer fd: %s", strerror(errno));
		return -EINVAL;
	}
	link[n] = '\0';
	memfd = !strncmp(link, "/memfd:", 7);
	dmabuf_exporter(fd, t->heap, sizeof(t->heap));
	dmabuf = t->heap[0] != '\0';
	if (!memfd && !dmabuf) {
		snprintf(msg, len, "the buffer fd is not a memfd or a dma-buf (it is %s)",
			 link);
		return -EINVAL;
	}
	if ((fl & O_ACCMODE) != O_RDWR) {
		snprintf(msg, len, "the buffer fd is open %s: the daemon maps it to write "
			 "into it, so it must be open O_RDWR",
			 (fl & O_ACCMODE) == O_RDONLY ? "read-only" : "write-only");
		return -EBADF;
	}
	t->no_splice = fl & O_APPEND;
	r = dmabuf ? into_check_dmabuf(t, hi, msg, len) :
		     into_check_memfd(t, hi, &page, msg, len);
	if (r < 0)
		return r;
	if (hi == lo)
		return 0;		/* nothing to write: no mapping */
	t->page = page;
	t->map_off = lo / page * page;
	t->map_len = round_up(hi, page) - t->map_off;
	t->map = mmap(NULL, t->map_len, PROT_READ | PROT_WRITE, MAP_SHARED, fd,
		      (off_t)t->map_off);
	if (t->map == MAP_FAILED) {
		r = -errno;
		t->map = NULL;
		if (dmabuf)
			snprintf(msg, len, "the dma-buf's exporter \"%s\" refuses mmap (%s): "
				 "the daemon cannot write into it", t->heap, strerror(-r));
		else
			snprintf(msg, len, "cannot map the buffer (%llu bytes at %llu): %s%s",
				 (unsigned long long)t->map_len,
				 (unsigned long long)t->map_off, strerror(-r),
				 t->hugetlb && r == -ENOMEM ? " (the huge page pool cannot "
				 "back it: fallocate the buffer first)" : "");
		return dmabuf ? -EOPNOTSUPP : r;
	}
	if (dmabuf) {
		r = dmabuf_sync(fd, DMA_BUF_SYNC_START);
		if (r < 0) {
			snprintf(msg, len, "DMA_BUF_IOCTL_SYNC START on the dma-buf of "
				 "exporter \"%s\" failed: %s", t->heap, strerror(-r));
			return r;
		}
		t->syncing = true;
	}
	return 0;
}

/* ---- udmabuf ------------------------------------------------------------------------ */

#define UDMABUF_DEV		"/dev/udmabuf"
#define UDMABUF_LIMIT_PARAM	"/sys/module/udmabuf/parameters/size_limit_mb"

int target_udmabuf_usable(void)
{
	int fd = open(UDMABUF_DEV, O_RDWR | O_CLOEXEC);

	if (fd < 0)
		return -errno;
	close(fd);
	return 0;
}

/* udmabuf.size_limit_mb in bytes, 0 if unknown (no module, or it has no limit). */
uint64_t target_udmabuf_size_limit(void)
{
	unsigned long long mb = 0;
	FILE *f = fopen(UDMABUF_LIMIT_PARAM, "re");

	if (!f)
		return 0;
	if (fscanf(f, "%llu", &mb) != 1)
		mb = 0;
	fclose(f);
	return (uint64_t)mb << 20;
}

static int udmabuf_open(char *msg, size_t len)
{
	int fd = open(UDMABUF_DEV, O_RDWR | O_CLOEXEC), err = errno;

	if (fd >= 0)
		return fd;
	if (err == ENOENT || err == ENXIO || err == ENODEV)
		snprintf(msg, len, "no udmabuf device on this host (" UDMABUF_DEV ": %s): "
			 "load the udmabuf module (modprobe udmabuf; CONFIG_UDMABUF) or use "
			 "target memfd", strerror(err));
	else if (err == EACCES || err == EPERM)
		snprintf(msg, len, "permission denied on " UDMABUF_DEV ": give the "
			 "daemon's user read-write access to it (a udev rule) or use target "
			 "memfd");
	else
		snprintf(msg, len, "cannot open " UDMABUF_DEV ": %s", strerror(err));
	return -err;
}

/* Makes the dma-buf of @memfd's first @size bytes. Returns the fd or -errno. */
static int udmabuf_make(int dev_fd, int memfd, uint64_t size)
{
	struct udmabuf_create c = {
		.memfd = (uint32_t)memfd,
		.flags = UDMABUF_FLAGS_CLOEXEC,
		.offset = 0,
		.size = size,
	};
	int fd;

	do
		fd = ioctl(dev_fd, UDMABUF_CREATE, &c);
	while (fd < 0 && errno == EINTR);
	return fd < 0 ? -errno : fd;
}

/* Whether udmabuf takes hugetlb memfds: 1 yes, 0 no, -1 not known yet. */
static int udmabuf_huge_ok = -1;
static pthread_mutex_t udmabuf_probe_lock = PTHREAD_MUTEX_INITIALIZER;

/* Whether the running kernel is at least @major.@minor. */
static bool kernel_at_least(unsigned major, unsigned minor)
{
	struct utsname u;
	unsigned ma = 0, mi = 0;

	if (uname(&u) < 0 || sscanf(u.release, "%u.%u", &ma, &mi) != 2)
		return false;
	return ma > major || (ma == major && mi >= minor);
}

/* Tries one huge page. A pool without a free page says nothing: asked again later. */
static bool udmabuf_takes_hugetlb(int dev_fd, uint64_t huge)
{
	int memfd, buf, v;
	void *p;

	pthread_mutex_lock(&udmabuf_probe_lock);
	v = udmabuf_huge_ok;
	if (v >= 0)
		goto out;
	if (!kernel_at_least(6, 11)) {
		/* Never try: the probe itself would succeed and the damage come later. */
		v = udmabuf_huge_ok = 0;
		log_info("udmabuf: kernels before 6.11 mishandle hugetlb memfds; udmabuf "
			 "buffers use 4 KiB pages");
		goto out;
	}
	memfd = memfd_create("dmaload:probe", MFD_CLOEXEC | MFD_ALLOW_SEALING | MFD_HUGETLB);
	if (memfd < 0)
		goto out;
	if (ftruncate(memfd, (off_t)huge) < 0 ||
	    (p = mmap(NULL, huge, PROT_READ | PROT_WRITE, MAP_SHARED, memfd, 0)) ==
	    MAP_FAILED) {
		close(memfd);
		goto out;
	}
	*(volatile char *)p = 0;	/* the page must exist for udmabuf to pin it */
	munmap(p, huge);
	if (fcntl(memfd, F_ADD_SEALS, F_SEAL_SHRINK) == 0) {
		buf = udmabuf_make(dev_fd, memfd, huge);
		v = udmabuf_huge_ok = buf >= 0;
		if (buf >= 0)
			close(buf);
		log_info("udmabuf %s hugetlb memfds on this kernel%s", v ? "takes" : "refuses",
			 v ? "" : ": udmabuf buffers use 4 KiB pages");
	}
	close(memfd);
out:
	pthread_mutex_unlock(&udmabuf_probe_lock);
	return v == 1;
}

int target_create_udmabuf(struct target *t, uint64_t size, enum config_toggle hugetlb,
			  bool exact, char *msg, size_t len)
{
	uint64_t page = (uint64_t)getpagesize(), huge = target_huge_page_size();
	uint64_t limit = target_udmabuf_size_limit(), need;
	int dev_fd, r;

	if (size == 0) {
		snprintf(msg, len, "a dma-buf cannot be empty: use target memfd or auto");
		return -EINVAL;
	}
	dev_fd = udmabuf_open(msg, len);
	if (dev_fd < 0)
		return dev_fd;
	/* The kernel refuses larger buffers with a bare EINVAL: say which knob it is. */
	need = round_up(size, page);
	if (limit && need > limit) {
		snprintf(msg, len, "a %llu-byte udmabuf is over udmabuf.size_limit_mb (%llu): "
			 "set it to at least %llu (" UDMABUF_LIMIT_PARAM ", or "
			 "udmabuf.size_limit_mb=%llu on the kernel command line), or use "
			 "target heap or memfd", (unsigned long long)need,
			 (unsigned long long)(limit >> 20),
			 (unsigned long long)((need + (1u << 20) - 1) >> 20),
			 (unsigned long long)((need + (1u << 20) - 1) >> 20));
		close(dev_fd);
		return -EFBIG;
	}
	if (hugetlb != CONFIG_OFF && huge && (hugetlb == CONFIG_ON || size >= huge) &&
	    !(exact && size % huge) && !udmabuf_takes_hugetlb(dev_fd, huge)) {
		hugetlb = CONFIG_OFF;
		t->hugetlb_refused = true;
	}
	/* A huge-page buffer could be over the limit where 4 KiB pages are not. */
	if (limit && huge && round_up(size, huge) > limit)
		hugetlb = CONFIG_OFF;
	r = target_create(t, need, hugetlb, exact);
	if (r < 0) {
		snprintf(msg, len, "cannot create a %llu-byte buffer: %s",
			 (unsigned long long)size, strerror(-r));
		close(dev_fd);
		return r;
	}
	/* Before 6.11 udmabuf pins a memfd's pages one by one (see the top): not the
	 * parts of huge ones. Nothing is faulted in yet, so none is huge. */
	if (t->thp && !kernel_at_least(6, 11)) {
		madvise(t->map, t->map_len, MADV_NOHUGEPAGE);
		t->thp = false;
	}
	t->size = size;
	t->dev_fd = dev_fd;
	t->kind = DL_TARGET_UDMABUF;
	return 0;
}

static int finish_udmabuf(struct target *t, char *msg, size_t len)
{
	int fd;

	/* Shrink: udmabuf requires it (its pinned pages must stay). No write seal: it
	 * refuses that, since devices write dma-bufs. Seal: nobody adds one later. */
	if (fcntl(t->fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) < 0) {
		int r = -errno;

		snprintf(msg, len, "cannot seal the udmabuf's memfd: %s", strerror(-r));
		return r;
	}
	fd = udmabuf_make(t->dev_fd, t->fd, t->map_len);
	if (fd < 0) {
		if (fd == -EINVAL)
			snprintf(msg, len, "UDMABUF_CREATE refused a %llu-byte %s memfd (EINVAL): "
				 "check udmabuf.size_limit_mb (%llu MiB now) or use target memfd",
				 (unsigned long long)t->map_len,
				 t->hugetlb ? "hugetlb" : "4 KiB-page",
				 (unsigned long long)(target_udmabuf_size_limit() >> 20));
		else
			snprintf(msg, len, "UDMABUF_CREATE of a %llu-byte buffer failed: %s%s",
				 (unsigned long long)t->map_len, strerror(-fd),
				 fd == -ENOMEM ? ": free memory or use target memfd" : "");
		return fd;
	}
	/* The dma-buf holds the pages now: the memfd and the device go. */
	close(t->fd);
	t->fd = fd;
	close(t->dev_fd);
	t->dev_fd = -1;
	return 0;
}

/* ---- dma-heaps ---------------------------------------------------------------------- */

#define HEAP_DIR "/dev/dma_heap"

int target_create_heap(struct target *t, const char *heap, uint64_t size, char *msg,
		       size_t len)
{
	uint64_t page = (uint64_t)getpagesize();
	struct dma_heap_allocation_data a = {
		.len = round_up(size, page),
		.fd_flags = O_RDWR | O_CLOEXEC,
	};
	char path[sizeof(HEAP_DIR) + DL_HEAP_NAME_MAX + 2];
	int hfd, r, err;

	snprintf(t->heap, sizeof(t->heap), "%s", heap);
	if (size == 0) {
		snprintf(msg, len, "a dma-buf cannot be empty: use target memfd or auto");
		return -EINVAL;
	}
	snprintf(path, sizeof(path), HEAP_DIR "/%s", heap);
	hfd = open(path, O_RDONLY | O_CLOEXEC);
	if (hfd < 0) {
		err = errno;
		if (err == ENOENT || err == ENXIO || err == ENODEV)
			snprintf(msg, len, "no dma-heap \"%s\" on this host (%s: %s): pick one "
				 "of " HEAP_DIR " (dmaload-ctl info lists them), load its driver, "
				 "or use target memfd", heap, path, strerror(err));
		else if (err == EACCES || err == EPERM)
			snprintf(msg, len, "permission denied on %s: give the daemon's user "
				 "access to it (a udev rule) or use target memfd", path);
		else
			snprintf(msg, len, "cannot open %s: %s", path, strerror(err));
		return -err;
	}
	do
		r = ioctl(hfd, DMA_HEAP_IOCTL_ALLOC, &a);
	while (r < 0 && errno == EINTR);
	err = errno;
	close(hfd);
	if (r < 0) {
		snprintf(msg, len, "dma-heap \"%s\" cannot allocate %llu bytes: %s; free "
			 "memory, pick another heap, or use target memfd or udmabuf", heap,
			 (unsigned long long)a.len, strerror(err));
		return -err;
	}
	t->fd = (int)a.fd;
	t->kind = DL_TARGET_HEAP;
	t->pfnmap = true;
	t->size = size;
	t->map_len = a.len;
	t->map = mmap(NULL, a.len, PROT_READ | PROT_WRITE, MAP_SHARED, t->fd, 0);
	if (t->map == MAP_FAILED) {
		err = errno;
		t->map = NULL;
		snprintf(msg, len, "cannot map a %llu-byte buffer of dma-heap \"%s\": %s",
			 (unsigned long long)a.len, heap, strerror(err));
		target_deinit(t);
		return -err;
	}
	r = dmabuf_sync(t->fd, DMA_BUF_SYNC_START);
	if (r < 0) {
		snprintf(msg, len, "DMA_BUF_IOCTL_SYNC on dma-heap \"%s\" failed: %s", heap,
			 strerror(-r));
		target_deinit(t);
		return r;
	}
	t->syncing = true;
	return 0;
}

int target_finish(struct target *t, char *msg, size_t len)
{
	int r = 0;

	if (t->syncing) {
		t->syncing = false;
		r = dmabuf_sync(t->fd, DMA_BUF_SYNC_END);
		if (r < 0)
			snprintf(msg, len, "DMA_BUF_IOCTL_SYNC END failed: %s", strerror(-r));
	}
	if (t->map)
		munmap(t->map, t->map_len);
	t->map = NULL;
	if (t->kind == DL_TARGET_HEAP || t->into)
		return r;	/* the caller's buffer stays as the caller made it */
	if (t->kind == DL_TARGET_UDMABUF)
		return finish_udmabuf(t, msg, len);
	if (fcntl(t->fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE) < 0 ||
	    fcntl(t->fd, F_ADD_SEALS, F_SEAL_SEAL) < 0) {
		r = -errno;
		snprintf(msg, len, "cannot seal the buffer: %s", strerror(-r));
		return r;
	}
	return 0;
}

/* ---- what the host offers ----------------------------------------------------------- */

int target_default_heap(char *out, size_t len)
{
	struct dirent *d;
	DIR *dir;
	int r = -ENOENT;

	if (access(HEAP_DIR "/system", R_OK) == 0) {
		snprintf(out, len, "system");
		return 0;
	}
	dir = opendir(HEAP_DIR);
	if (!dir)
		return -ENOENT;
	while ((d = readdir(dir)))
		if (dl_heap_name_ok(d->d_name, strlen(d->d_name)) && d->d_name[0] != '.') {
			snprintf(out, len, "%s", d->d_name);
			r = 0;
			break;
		}
	closedir(dir);
	return r;
}

void target_host_info(struct target_host *h, char *names, size_t cap)
{
	long total = meminfo_value("HugePages_Total"), free_ = meminfo_value("HugePages_Free");
	long rsvd = meminfo_value("HugePages_Rsvd"), over, surp;
	size_t used = 0, n;
	struct dirent *d;
	DIR *dir;

	memset(h, 0, sizeof(*h));
	h->udmabuf_err = -target_udmabuf_usable();
	h->udmabuf_size_limit = target_udmabuf_size_limit();
	h->udmabuf_hugetlb = __atomic_load_n(&udmabuf_huge_ok, __ATOMIC_RELAXED) == 1;
	h->huge_page_size = target_huge_page_size();
	h->huge_pages_total = total > 0 ? (uint32_t)total : 0;
	h->huge_pages_free = free_ > rsvd && rsvd >= 0 ? (uint32_t)(free_ - rsvd) : 0;
	over = overcommit_pages();
	surp = meminfo_value("HugePages_Surp");
	h->overcommit_pages = over > 0 ? (uint64_t)over : 0;
	h->surplus_pages = surp > 0 ? (uint64_t)surp : 0;
	dir = opendir(HEAP_DIR);
	while (dir && (d = readdir(dir))) {
		n = strlen(d->d_name);
		if (d->d_name[0] == '.' || !dl_heap_name_ok(d->d_name, n))
			continue;
		h->heaps = true;
		if (used + n + 1 > cap)
			continue;
		memcpy(names + used, d->d_name, n + 1);
		used += n + 1;
		h->n_heaps++;
	}
	if (dir)
		closedir(dir);
	h->heaps_len = used;
}
