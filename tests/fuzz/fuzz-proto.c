/*
 * fuzz-proto.c: libFuzzer target for the wire decoder (proto/dmaload-proto.c).
 *
 * Input: one byte whose value mod 3 is the fd count the datagram "carried", then the
 * datagram. The decoder must never read out of bounds (ASan) or hit undefined
 * behaviour (UBSan), and what it accepts must be exactly what the encoder produces:
 * re-encoding a decoded message gives the input bytes back. Refusals must be one of
 * the documented errnos, with the header filled where the header says so.
 * tests/fuzz/gen-corpus.c writes the seed corpus (one valid message of each type).
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dmaload-proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint8_t out[DL_MSG_MAX];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct dl_msg m;
	const uint8_t *buf;
	size_t len;
	int nfds, r;

	if (size < 1)
		return 0;
	nfds = data[0] % (DL_MAX_FDS + 1);
	/* an exact copy, so a read one byte past the datagram is caught */
	len = size - 1;
	buf = len ? malloc(len) : NULL;
	if (len)
		memcpy((void *)buf, data + 1, len);
	r = dl_msg_decode(buf, len, nfds, &m);

	switch (r) {
	case 0: {
		size_t fixed = m.hdr.len - m.trail_len;
		ssize_t n = dl_encode(out, sizeof(out), m.hdr.type, m.hdr.id, &m.u, fixed,
				      m.trail, m.trail_len);

		if (n < 0 || (size_t)n != len || memcmp(out, buf, len) != 0)
			abort();	/* accepted bytes the encoder would not produce */
		if (m.trail_len && (m.trail < (const char *)buf ||
				    m.trail + m.trail_len > (const char *)buf + len))
			abort();
		if (m.hdr.type == DL_STATUS_REPLY) {
			struct dl_status_load e;
			const char *name;
			size_t pos = 0, name_len;
			uint32_t k = 0;

			while ((r = dl_status_next(&m, &pos, &e, &name, &name_len)) == 1) {
				if (name_len && (name < (const char *)buf ||
						 name + name_len > (const char *)buf + len))
					abort();
				k++;
			}
			if (r != 0 || k != m.u.status.n_loads)
				abort();
		}
		if (m.hdr.type == DL_LOAD && !(m.u.load.flags & DL_LOAD_BY_FD) &&
		    (m.trail_len == 0 || memchr(m.trail, 0, m.trail_len) ||
		     nfds != !!(m.u.load.flags & DL_LOAD_ROOT_FD)))
			abort();
		if (m.hdr.type == DL_DONE &&
		    (nfds != !(m.u.done.flags & DL_DONE_INTO) ||
		     m.u.done.size > m.u.done.buf_size))
			abort();
		if (m.hdr.type == DL_LOAD_EXTENTS) {
			const struct dl_load_ext *x = &m.u.load_ext;

			if (x->n_extents == 0 || x->n_extents > DL_MAX_EXTENTS ||
			    x->load.offset || x->load.length)
				abort();
			if (!(x->ext_flags & DL_EXT_LIST_MEMFD) &&
			    (m.n_ext != x->n_extents || m.ext < (const char *)buf ||
			     m.ext + m.n_ext * sizeof(struct dl_extent) !=
			     (const char *)buf + len))
				abort();
		}
		break;
	}
	case -EOPNOTSUPP:
	case -EINVAL:
		/* the header is filled so the sender can be answered */
		if (len < sizeof(struct dl_hdr) || memcmp(&m.hdr, buf, sizeof(m.hdr)) != 0)
			abort();
		break;
	case -EBADMSG:
	case -EPROTONOSUPPORT:
		break;
	default:
		abort();
	}
	(void)dl_msg_type_name(m.hdr.type);
	free((void *)buf);
	return 0;
}
