/*
 * extents.c: a LOAD_EXTENTS's list, checked and planned. See extents.h.
 *
 * The decoder (dmaload-proto.c) checked the count and that no sum passes 2^64; what
 * needs the file or the whole list is here: the end of the file, and overlaps, found
 * by sorting a copy by buffer offset (adjacent ranges may touch, never overlap). The
 * runs are sorted by file offset: the disk sees one ascending sweep whatever order the
 * client listed the extents in.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "extents.h"

/* An extent and its place in the client's list (for messages). */
struct ext_ix {
	struct dl_extent e;
	uint32_t ix;
};

static int cmp_buf(const void *a, const void *b)
{
	const struct ext_ix *x = a, *y = b;

	if (x->e.buf_offset != y->e.buf_offset)
		return x->e.buf_offset < y->e.buf_offset ? -1 : 1;
	return x->ix < y->ix ? -1 : x->ix > y->ix;
}

static int cmp_file(const void *a, const void *b)
{
	const struct ext_ix *x = a, *y = b;

	if (x->e.file_offset != y->e.file_offset)
		return x->e.file_offset < y->e.file_offset ? -1 : 1;
	if (x->e.buf_offset != y->e.buf_offset)
		return x->e.buf_offset < y->e.buf_offset ? -1 : 1;
	return 0;
}

int extents_read_memfd(int fd, uint32_t n, struct dl_extent **out, char *msg, size_t len)
{
	const int need = F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE;
	size_t bytes = (size_t)n * sizeof(struct dl_extent), got = 0;
	int seals = fcntl(fd, F_GET_SEALS);
	struct stat st;
	char *buf;

	*out = NULL;
	if (seals < 0 || (seals & need) != need) {
		snprintf(msg, len, "the extent list must come in a memfd sealed with "
			 "F_SEAL_SHRINK, F_SEAL_GROW and F_SEAL_WRITE");
		return -EINVAL;
	}
	if (fstat(fd, &st) < 0 || (uint64_t)st.st_size != bytes) {
		snprintf(msg, len, "the extent list memfd holds %lld bytes, not the %zu of "
			 "%u extents", (long long)st.st_size, bytes, n);
		return -EINVAL;
	}
	buf = malloc(bytes);
	if (!buf)
		return -ENOMEM;
	while (got < bytes) {
		ssize_t r = pread(fd, buf + got, bytes - got, (off_t)got);

		if (r <= 0) {
			snprintf(msg, len, "cannot read the extent list: %s",
				 r < 0 ? strerror(errno) : "short");
			free(buf);
			return -EINVAL;
		}
		got += (size_t)r;
	}
	if (dl_extents_check(buf, n) < 0) {
		snprintf(msg, len, "bad extent list: a sum of offset and length passes 2^64, "
			 "or a length is DL_LENGTH_TO_EOF in a list of more than one");
		free(buf);
		return -EINVAL;
	}
	*out = (struct dl_extent *)buf;
	return 0;
}

int extents_plan(struct dl_extent *ext, uint32_t n, uint64_t file_size,
		 struct extents_plan *p, char *msg, size_t len)
{
	struct ext_ix *v;
	uint32_t k = 0;

	memset(p, 0, sizeof(*p));
	if (n == 1 && ext[0].length == DL_LENGTH_TO_EOF) {
		if (ext[0].file_offset > file_size) {
			snprintf(msg, len, "offset %llu is past the end of the file (%llu "
				 "bytes)", (unsigned long long)ext[0].file_offset,
				 (unsigned long long)file_size);
			return -EINVAL;
		}
		ext[0].length = file_size - ext[0].file_offset;
		if (ext[0].buf_offset + ext[0].length < ext[0].buf_offset) {
			snprintf(msg, len, "buffer offset + length passes 2^64");
			return -EINVAL;
		}
	}
	v = malloc(sizeof(*v) * (n ? n : 1));
	if (!v)
		return -ENOMEM;
	for (uint32_t i = 0; i < n; i++) {
		const struct dl_extent *e = &ext[i];

		if (e->file_offset + e->length > file_size) {
			snprintf(msg, len, "extent %u (file offset %llu, length %llu) is past "
				 "the end of the file (%llu bytes)", i,
				 (unsigned long long)e->file_offset,
				 (unsigned long long)e->length, (unsigned long long)file_size);
			free(v);
			return -EINVAL;
		}
		if (e->length == 0)
			continue;	/* nothing to read, nothing to overlap */
		v[k++] = (struct ext_ix){ .e = *e, .ix = i };
		p->bytes += e->length;
		if (k == 1 || e->buf_offset < p->lo)
			p->lo = e->buf_offset;
		if (e->buf_offset + e->length > p->hi)
			p->hi = e->buf_offset + e->length;
	}
	qsort(v, k, sizeof(*v), cmp_buf);
	for (uint32_t i = 1; i < k; i++) {
		if (v[i - 1].e.buf_offset + v[i - 1].e.length <= v[i].e.buf_offset)
			continue;
		snprintf(msg, len, "extents %u and %u overlap in the buffer (buffer offsets "
			 "%llu and %llu, lengths %llu and %llu)", v[i - 1].ix, v[i].ix,
			 (unsigned long long)v[i - 1].e.buf_offset,
			 (unsigned long long)v[i].e.buf_offset,
			 (unsigned long long)v[i - 1].e.length,
			 (unsigned long long)v[i].e.length);
		free(v);
		return -EINVAL;
	}
	qsort(v, k, sizeof(*v), cmp_file);
	p->segs = calloc(k ? k : 1, sizeof(*p->segs));
	if (!p->segs) {
		free(v);
		return -ENOMEM;
	}
	for (uint32_t i = 0; i < k; i++) {
		const struct dl_extent *e = &v[i].e;
		struct copy_seg *last = p->nsegs ? &p->segs[p->nsegs - 1] : NULL;

		/* Touching on disk and in the buffer: one read. */
		if (last && last->off + last->len == e->file_offset &&
		    last->buf + last->len == e->buf_offset) {
			last->len += e->length;
			continue;
		}
		p->segs[p->nsegs++] = (struct copy_seg){
			.off = e->file_offset, .len = e->length, .buf = e->buf_offset,
		};
	}
	free(v);
	if (!p->nsegs) {
		free(p->segs);
		p->segs = NULL;
	}
	return 0;
}
