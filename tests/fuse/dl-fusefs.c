/*
 * dl-fusefs.c: a FUSE filesystem for the tests, over libfuse3. Not a test itself:
 * tests/lib/fusefs.c mounts it (in the foreground, as a child) and tears it down.
 *
 *   dl-fusefs MOUNTPOINT --mode=MODE --size=BYTES
 *
 * It serves one regular file, /data (0444, BYTES long). What reads of it return is
 * the mode's business:
 *
 *   per-uid   pattern fusefs_seed(uid) (tests/lib/fusefs.h) of the uid that opened
 *             it: decided at open and kept in the open's file handle, so each opener
 *             gets its own bytes from its own open file description, the same size
 *             for everyone. The kernel's page cache is kept out (direct_io on every
 *             open), or one opener's pages would be served to the next.
 *
 *   hang-open every open of the file waits until the helper is told to end
 *             (SIGTERM, which fusefs_unmount sends after aborting the connection):
 *             the opener hangs as on a FUSE server that stopped answering. The
 *             helper is single-threaded, so every later request waits too; lookups
 *             and stats before the first open are answered.
 *   hang-read opens succeed; every read waits likewise.
 *   hang-flush opens and reads as per-uid; every flush (which the kernel sends at each
 *             close(2) of an fd of the file, by anyone) waits likewise.
 *
 * Later modes (EIO at an offset, short reads, a size that changes) add a value to
 * enum mode and a case in fs_read.
 *
 * Mounted with allow_other and without default_permissions: the kernel checks no
 * mode bits, every opener reaches fs_open with its own credentials (fsuid, fsgid).
 */
#define FUSE_USE_VERSION 31

#include <errno.h>
#include <fuse.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../lib/fusefs.h"
#include "../lib/harness.h"

enum mode {
	MODE_PER_UID,
	MODE_HANG_OPEN,
	MODE_HANG_READ,
	MODE_HANG_FLUSH,
};

/* Waits for a signal (libfuse's SIGTERM handler ends the session loop after it). */
static int hang(void)
{
	pause();
	return -EIO;
}

static struct {
	char *mode_name;
	unsigned long size;
	enum mode mode;
} opt = { .size = 1 << 20 };

static const struct fuse_opt opt_spec[] = {
	{ "--mode=%s", offsetof(typeof(opt), mode_name), 0 },
	{ "--size=%lu", offsetof(typeof(opt), size), 0 },
	FUSE_OPT_END,
};

static void *fs_init(struct fuse_conn_info *conn, struct fuse_config *cfg)
{
	cfg->use_ino = 1;	/* the inode numbers below, not ones libfuse makes up */
	return NULL;
}

static int fs_getattr(const char *path, struct stat *st, struct fuse_file_info *fi)
{
	memset(st, 0, sizeof(*st));
	if (strcmp(path, "/") == 0) {
		st->st_ino = 1;
		st->st_mode = S_IFDIR | 0755;
		st->st_nlink = 2;
		return 0;
	}
	if (strcmp(path, "/" FUSEFS_FILE) != 0)
		return -ENOENT;
	st->st_ino = 2;		/* fixed: one file, for the daemon's cache too */
	st->st_mode = S_IFREG | 0444;
	st->st_nlink = 1;
	st->st_size = (off_t)opt.size;
	return 0;
}

static int fs_readdir(const char *path, void *buf, fuse_fill_dir_t fill, off_t off,
		      struct fuse_file_info *fi, enum fuse_readdir_flags flags)
{
	if (strcmp(path, "/") != 0)
		return -ENOENT;
	fill(buf, ".", NULL, 0, 0);
	fill(buf, "..", NULL, 0, 0);
	fill(buf, FUSEFS_FILE, NULL, 0, 0);
	return 0;
}

static int fs_open(const char *path, struct fuse_file_info *fi)
{
	if (strcmp(path, "/" FUSEFS_FILE) != 0)
		return -ENOENT;
	if ((fi->flags & O_ACCMODE) != O_RDONLY)
		return -EACCES;
	if (opt.mode == MODE_HANG_OPEN)
		return hang();
	/* The opener's uid, not the reader's: reads through an fd passed on (to the
	 * daemon) are served what its opener was. */
	fi->fh = fusefs_seed(fuse_get_context()->uid);
	fi->direct_io = 1;
	fi->keep_cache = 0;
	return 0;
}

static int fs_read(const char *path, char *buf, size_t len, off_t off,
		   struct fuse_file_info *fi)
{
	if (off < 0 || (unsigned long)off >= opt.size)
		return 0;
	if (len > opt.size - (unsigned long)off)
		len = opt.size - (unsigned long)off;
	switch (opt.mode) {
	case MODE_PER_UID:
	case MODE_HANG_OPEN:
	case MODE_HANG_FLUSH:
		pattern_fill((uint32_t)fi->fh, (uint64_t)off, buf, len);
		return (int)len;
	case MODE_HANG_READ:
		return hang();
	}
	return -EIO;
}

static int fs_flush(const char *path, struct fuse_file_info *fi)
{
	return opt.mode == MODE_HANG_FLUSH ? hang() : 0;
}

static const struct fuse_operations ops = {
	.init = fs_init,
	.getattr = fs_getattr,
	.readdir = fs_readdir,
	.open = fs_open,
	.read = fs_read,
	.flush = fs_flush,
};

int main(int argc, char **argv)
{
	struct fuse_args args = FUSE_ARGS_INIT(argc, argv);
	int r;

	if (fuse_opt_parse(&args, &opt, opt_spec, NULL) < 0)
		return 2;
	if (!opt.mode_name || strcmp(opt.mode_name, "per-uid") == 0) {
		opt.mode = MODE_PER_UID;
	} else if (strcmp(opt.mode_name, "hang-open") == 0) {
		opt.mode = MODE_HANG_OPEN;
	} else if (strcmp(opt.mode_name, "hang-read") == 0) {
		opt.mode = MODE_HANG_READ;
	} else if (strcmp(opt.mode_name, "hang-flush") == 0) {
		opt.mode = MODE_HANG_FLUSH;
	} else {
		fprintf(stderr, "dl-fusefs: unknown mode %s\n", opt.mode_name);
		return 2;
	}
	/* Foreground, so the harness's child is the server; one thread is plenty. */
	fuse_opt_add_arg(&args, "-f");
	fuse_opt_add_arg(&args, "-s");
	fuse_opt_add_arg(&args, "-oallow_other,fsname=dl-fusefs,subtype=dl-fusefs");
	r = fuse_main(args.argc, args.argv, &ops, NULL);
	fuse_opt_free_args(&args);
	free(opt.mode_name);
	return r;
}
