/*
 * gen-corpus.c: writes the seed corpus of fuzz-proto into DIR: one valid message of
 * every type (and a few near misses), each file being the fd-count byte followed by
 * the datagram, as fuzz-proto.c reads them.
 *
 * With --daemon, the seeds of fuzz-daemon instead (tests/fuzz/corpus-daemon/): each
 * of the same messages sent as one OP_RAW datagram, then sequences of requests that
 * reach the engine (loads of each method, by path and fd, joins, cancels, slow and
 * detached loads, replies left unread, two connections, hangups), in fuzz-daemon.h's
 * format.
 *
 *   gen-corpus [--daemon] DIR
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "dmaload-proto.h"
#include "fuzz-daemon.h"

static const char *dir;
static int count;
static int daemon_mode;

static void put_file(const char *name, const void *data, size_t len)
{
	char path[4096];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "wb");
	if (!f) {
		perror(path);
		return;
	}
	fwrite(data, 1, len, f);
	fclose(f);
	count++;
}

static void put(const char *name, int nfds, const void *msg, ssize_t len)
{
	char path[4096];
	FILE *f;

	if (len < 0) {
		fprintf(stderr, "gen-corpus: %s does not encode\n", name);
		return;
	}
	if (daemon_mode) {
		/* one datagram (the fd, if any, is the small file), its replies read */
		static unsigned char seq[DL_MSG_MAX + 8];
		size_t n = 0;

		seq[n++] = 0;
		seq[n++] = OP_RAW;
		seq[n++] = FUZZ_SPEC(nfds, FD_SMALL, FD_SMALL);
		seq[n++] = (unsigned char)(len & 0xff);
		seq[n++] = (unsigned char)(len >> 8);
		memcpy(seq + n, msg, (size_t)len);
		n += (size_t)len;
		seq[n++] = OP_SETTLE;
		seq[n++] = OP_DRAIN;
		snprintf(path, sizeof(path), "raw-%s", name);
		put_file(path, seq, n);
		return;
	}
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "wb");
	if (!f) {
		perror(path);
		return;
	}
	fputc(nfds, f);
	fwrite(msg, 1, (size_t)len, f);
	fclose(f);
	count++;
}

/* A LOAD operation: id path flags method target prio offset length rate spec. The
 * offset, length and rate bytes index fuzz-daemon.c's tables (0: 0, whole file, no
 * limit; rate 4: 1 byte/s). */
#define LOAD(id, path, flags, method, rate, spec) \
	OP_LOAD, id, path, flags, method, 0, 0, 0, 0, rate, spec

/* The sequences of requests, in fuzz-daemon.h's format. */
static void put_sequences(void)
{
	static const unsigned char hello_load[] = {
		0, OP_SIMPLE, 0, 1, LOAD(2, P_SMALL, DL_LOAD_PROGRESS, 0, 0, 0), OP_SETTLE,
		OP_DRAIN, OP_SIMPLE, 1, 3, OP_SIMPLE, 3, 4, OP_SIMPLE, 4, 5, OP_SIMPLE, 2, 6,
		OP_DRAIN,
	};
	static const unsigned char methods[] = {
		0, LOAD(1, P_SMALL, 0, DL_METHOD_DIRECT, 0, 0),
		LOAD(2, P_BIG, 0, DL_METHOD_BUFFERED, 0, 0),
		LOAD(3, P_BIG, DL_LOAD_EXACT_SIZE, DL_METHOD_CFR, 0, 0),
		LOAD(4, P_LINK, 0, DL_METHOD_CFR, 0, 0), OP_SETTLE, OP_DRAIN,
	};
	static const unsigned char slow_cancel[] = {
		0, LOAD(7, P_BIG, DL_LOAD_PROGRESS, 0, 4, 0), OP_SETTLE, OP_SIMPLE, 1, 8,
		OP_CANCEL, 7, 9, OP_SETTLE, OP_DRAIN,
	};
	static const unsigned char slow_leader_join[] = {
		0, LOAD(1, P_BIG, 0, 0, 4, 0), OP_SETTLE, LOAD(2, P_BIG, 0, 0, 0, 0),
		LOAD(3, P_BIG, 0, 0, 0, 0), OP_SETTLE, OP_SIMPLE, 3, 4, OP_DRAIN,
	};
	static const unsigned char detach_pin[] = {
		0, LOAD(1, P_BIG, DL_LOAD_PIN | DL_LOAD_DETACH, 0, 4, 0), OP_SETTLE,
		LOAD(2, P_SMALL, DL_LOAD_PIN, 0, 0, 0), OP_SETTLE, OP_SIMPLE, 3, 3,
		OP_EVICT, 4, P_SMALL, OP_DRAIN,
	};
	static const unsigned char by_fd[] = {
		0, LOAD(1, 0, DL_LOAD_BY_FD, DL_METHOD_DIRECT, 0, FUZZ_SPEC(1, FD_BIG, 0)),
		LOAD(2, 0, DL_LOAD_BY_FD, 0, 0, FUZZ_SPEC(1, FD_MEMFD, 0)),
		LOAD(3, 0, DL_LOAD_BY_FD, 0, 0, FUZZ_SPEC(1, FD_PIPE, 0)),
		LOAD(4, 0, DL_LOAD_BY_FD, 0, 0, FUZZ_SPEC(1, FD_DIR, 0)),
		LOAD(5, P_RELATIVE, DL_LOAD_ROOT_FD, 0, 0, FUZZ_SPEC(1, FD_DIR, 0)),
		LOAD(6, 0, DL_LOAD_BY_FD, 0, 0, FUZZ_SPEC(2, FD_SMALL, FD_BIG)),
		OP_SETTLE, OP_DRAIN,
	};
	static const unsigned char bad_paths[] = {
		0, LOAD(1, P_DIR, 0, 0, 0, 0), LOAD(2, P_MISSING, 0, 0, 0, 0),
		LOAD(3, P_DEVNULL, 0, 0, 0, 0), LOAD(4, P_PROC, 0, 0, 0, 0),
		LOAD(5, P_EMPTY, 0, 0, 0, 0), LOAD(6, P_SLASH, 0, 0, 0, 0),
		LOAD(7, P_DOTDOT, 0, 0, 0, FUZZ_SPEC(1, FD_SMALL, 0)), OP_SETTLE, OP_DRAIN,
	};
	static const unsigned char unread[] = {
		FUZZ_OPT_READ_LATE, OP_SIMPLE, 3, 1, OP_SIMPLE, 3, 2, OP_SIMPLE, 3, 3,
		OP_SIMPLE, 1, 4, OP_SIMPLE, 4, 5, LOAD(6, P_SMALL, DL_LOAD_PROGRESS, 0, 0, 0),
		LOAD(7, P_BIG, 0, 0, 0, 0), OP_SETTLE, OP_SIMPLE, 3, 8, OP_SIMPLE, 3, 9,
	};
	static const unsigned char evict[] = {
		0, LOAD(1, P_SMALL, 0, 0, 0, 0), OP_SETTLE, OP_EVICT, 2, P_SMALL,
		LOAD(3, P_SMALL, 0, 0, 0, 0), OP_SETTLE, OP_EVICT, 4, 0xff, OP_EVICT, 5, 0xff,
		OP_DRAIN,
	};

	/* a slow leader on one connection, its joiner on another; the leader hangs up */
	static const unsigned char peer_join[] = {
		0, LOAD(1, P_BIG, 0, 0, 4, 0), OP_SETTLE, OP_PEER, LOAD(1, P_BIG, 0, 0, 0, 0),
		OP_SETTLE, OP_PEER, OP_HANGUP, OP_PEER, OP_SETTLE, OP_SIMPLE, 3, 2, OP_DRAIN,
	};
	/* the leader cancels; the joiner asks STATUS; the first connection comes back */
	static const unsigned char peer_cancel[] = {
		0, LOAD(1, P_BIG, DL_LOAD_PROGRESS, 0, 5, 0), OP_PEER,
		LOAD(2, P_BIG, DL_LOAD_PROGRESS, 0, 0, 0), OP_PEER, OP_CANCEL, 1, 3, OP_PEER,
		OP_SIMPLE, 1, 4, OP_SETTLE, OP_DRAIN, OP_PEER, OP_HANGUP,
		LOAD(5, P_BIG, DL_LOAD_PIN, 0, 0, 0), OP_SETTLE, OP_DRAIN,
	};

	put_file("seq-peer-join", peer_join, sizeof(peer_join));
	put_file("seq-peer-cancel", peer_cancel, sizeof(peer_cancel));
	put_file("seq-hello-load", hello_load, sizeof(hello_load));
	put_file("seq-methods", methods, sizeof(methods));
	put_file("seq-slow-cancel", slow_cancel, sizeof(slow_cancel));
	put_file("seq-slow-leader-join", slow_leader_join, sizeof(slow_leader_join));
	put_file("seq-detach-pin", detach_pin, sizeof(detach_pin));
	put_file("seq-by-fd", by_fd, sizeof(by_fd));
	put_file("seq-bad-paths", bad_paths, sizeof(bad_paths));
	put_file("seq-unread", unread, sizeof(unread));
	put_file("seq-evict", evict, sizeof(evict));
}

static char b[DL_MSG_MAX];

int main(int argc, char **argv)
{
	const char *path = "/var/tmp/model.bin";
	char trail[512];
	size_t tl = 0;

	if (argc == 3 && strcmp(argv[1], "--daemon") == 0) {
		daemon_mode = 1;
		argv++;
		argc--;
	}
	if (argc != 2) {
		fprintf(stderr, "usage: gen-corpus [--daemon] DIR\n");
		return 2;
	}
	dir = argv[1];
	if (daemon_mode)
		put_sequences();

	{
		struct dl_hello h = { .version = 1, .caps = DL_CAPS_V1, .name = "seed" };

		put("hello", 0, b, dl_encode(b, sizeof(b), DL_HELLO, 1, &h, sizeof(h), NULL, 0));
	}
	{
		struct dl_load l = { .offset = 4096, .length = DL_LENGTH_TO_EOF,
				     .flags = DL_LOAD_PROGRESS, .method = DL_METHOD_DIRECT,
				     .path_len = (uint32_t)strlen(path) };

		put("load-path", 0, b, dl_encode(b, sizeof(b), DL_LOAD, 2, &l, sizeof(l), path,
						 strlen(path)));
		l.flags = DL_LOAD_ROOT_FD;
		put("load-root-fd", 1, b, dl_encode(b, sizeof(b), DL_LOAD, 4, &l, sizeof(l), path,
						    strlen(path)));
		l.flags = DL_LOAD_BY_FD;
		l.path_len = 0;
		put("load-fd", 1, b, dl_encode(b, sizeof(b), DL_LOAD, 3, &l, sizeof(l), NULL, 0));
		l.flags = DL_LOAD_DMABUF;
		l.target = DL_TARGET_UDMABUF;
		l.path_len = (uint32_t)strlen(path);
		put("load-udmabuf", 0, b, dl_encode(b, sizeof(b), DL_LOAD, 11, &l, sizeof(l),
						    path, strlen(path)));
		snprintf(trail, sizeof(trail), "%ssystem", path);
		l.target = DL_TARGET_HEAP;
		l.heap_len = 6;
		put("load-heap", 0, b, dl_encode(b, sizeof(b), DL_LOAD, 12, &l, sizeof(l), trail,
						 strlen(trail)));
	}
	put("info", 0, b, dl_encode(b, sizeof(b), DL_INFO, 13, NULL, 0, NULL, 0));
	{
		/* LOAD_EXTENTS: into a new buffer by path, into the caller's by fd, and
		 * with the list in a memfd; two extents that touch and one far away */
		struct dl_extent e[3] = {
			{ .file_offset = 0, .length = 4096, .buf_offset = 0 },
			{ .file_offset = 4096, .length = 100, .buf_offset = 4096 },
			{ .file_offset = 1 << 20, .length = 7, .buf_offset = 5000 },
		};
		struct dl_load_ext x = { .load.path_len = (uint32_t)strlen(path),
					 .n_extents = 3 };
		size_t pl = strlen(path);

		memcpy(trail, path, pl);
		memcpy(trail + pl, e, sizeof(e));
		put("load-extents", 0, b, dl_encode(b, sizeof(b), DL_LOAD_EXTENTS, 16, &x,
						    sizeof(x), trail, pl + sizeof(e)));
		x.ext_flags = DL_EXT_INTO;
		put("load-extents-into", 1, b, dl_encode(b, sizeof(b), DL_LOAD_EXTENTS, 17, &x,
							 sizeof(x), trail, pl + sizeof(e)));
		x.load.flags = DL_LOAD_BY_FD;
		x.load.path_len = 0;
		x.n_extents = 1;
		e[0].length = DL_LENGTH_TO_EOF;
		put("load-into-fd", 2, b, dl_encode(b, sizeof(b), DL_LOAD_EXTENTS, 18, &x,
						    sizeof(x), e, sizeof(e[0])));
		x.ext_flags = DL_EXT_INTO | DL_EXT_LIST_MEMFD;
		x.n_extents = 4096;
		put("load-extents-memfd", 3, b, dl_encode(b, sizeof(b), DL_LOAD_EXTENTS, 19, &x,
							  sizeof(x), NULL, 0));
	}
	{
		struct dl_done dn = { .size = 100, .buf_size = 4096, .flags = DL_DONE_INTO };

		put("done-into", 0, b, dl_encode(b, sizeof(b), DL_DONE, 20, &dn, sizeof(dn),
						 NULL, 0));
	}
	{
		struct dl_info_reply in = { .caps = DL_CAP_UDMABUF | DL_CAP_HEAP,
					    .udmabuf_size_limit = 64 << 20, .n_heaps = 2,
					    .heaps_len = 11, .huge_page_size = 2 << 20 };

		put("info-reply", 0, b, dl_encode(b, sizeof(b), DL_INFO_REPLY, 13, &in, sizeof(in),
						  "system\0cma\0", 11));
	}
	{
		/* with the surplus part a DL_CAP_INFO_SURPLUS client gets */
		struct dl_info_reply in = { .n_heaps = 1, .heaps_len = 7,
					    .huge_page_size = 2 << 20 };
		struct dl_info_surplus sp = { .overcommit_pages = 1024, .surplus_pages = 3 };
		char trail[7 + sizeof(sp)];

		memcpy(trail, "system", 7);
		memcpy(trail + 7, &sp, sizeof(sp));
		put("info-reply-surplus", 0, b, dl_encode(b, sizeof(b), DL_INFO_REPLY, 13, &in,
							  sizeof(in), trail, sizeof(trail)));
	}
	{
		struct dl_cancel c = { .load_id = 2 };

		put("cancel", 0, b, dl_encode(b, sizeof(b), DL_CANCEL, 4, &c, sizeof(c), NULL, 0));
	}
	put("status", 0, b, dl_encode(b, sizeof(b), DL_STATUS, 5, NULL, 0, NULL, 0));
	put("ok", 0, b, dl_encode(b, sizeof(b), DL_OK, 6, NULL, 0, NULL, 0));
	{
		struct dl_hello_reply h = { .version = 1, .caps = DL_CAPS_V1,
					    .max_load_size = 1ull << 34, .chunk_size = 4 << 20,
					    .queue_depth = 64 };

		put("hello-reply", 0, b, dl_encode(b, sizeof(b), DL_HELLO_REPLY, 1, &h, sizeof(h),
						   NULL, 0));
	}
	{
		struct dl_accepted a = { .length = 100, .file_size = 4196 };

		put("accepted", 0, b, dl_encode(b, sizeof(b), DL_ACCEPTED, 2, &a, sizeof(a), NULL,
						0));
	}
	{
		struct dl_progress p = { .done = 50, .total = 100 };

		put("progress", 0, b, dl_encode(b, sizeof(b), DL_PROGRESS, 2, &p, sizeof(p), NULL,
						0));
	}
	{
		struct dl_done dn = { .size = 100, .buf_size = 100, .elapsed_ns = 12345,
				      .flags = DL_DONE_SEALED, .target = DL_TARGET_MEMFD,
				      .method = DL_METHOD_BUFFERED, .reason = DL_WHY_UNALIGNED };

		put("done", 1, b, dl_encode(b, sizeof(b), DL_DONE, 2, &dn, sizeof(dn), NULL, 0));
	}
	put("error", 0, b, dl_encode_error(b, sizeof(b), 2, ENOENT, "cannot open /x: No such file"));
	{
		struct dl_status_reply s = { .uptime_ms = 1000, .clients = 1, .loads_active = 2,
					     .n_loads = 2 };
		struct dl_status_load e = { .id = 2, .done = 10, .total = 100, .pid = 1,
					    .state = DL_STATE_READING, .method = 1,
					    .name_len = (uint32_t)strlen(path) };
		size_t pad = (strlen(path) + 7) & ~(size_t)7;

		memset(trail, 0, sizeof(trail));
		memcpy(trail + tl, &e, sizeof(e));
		memcpy(trail + tl + sizeof(e), path, strlen(path));
		tl += sizeof(e) + pad;
		e.id = 3;
		e.name_len = 0;
		memcpy(trail + tl, &e, sizeof(e));
		tl += sizeof(e);
		put("status-reply", 0, b, dl_encode(b, sizeof(b), DL_STATUS_REPLY, 5, &s, sizeof(s),
						    trail, tl));
	}
	/* the cache's requests and replies */
	put("list", 0, b, dl_encode(b, sizeof(b), DL_LIST, 11, NULL, 0, NULL, 0));
	put("stats", 0, b, dl_encode(b, sizeof(b), DL_STATS, 12, NULL, 0, NULL, 0));
	{
		struct dl_evict e = { .path_len = (uint32_t)strlen(path) };

		put("evict-path", 0, b, dl_encode(b, sizeof(b), DL_EVICT, 13, &e, sizeof(e), path,
						  strlen(path)));
		e = (struct dl_evict){ .flags = DL_EVICT_ALL };
		put("evict-all", 0, b, dl_encode(b, sizeof(b), DL_EVICT, 14, &e, sizeof(e), NULL,
						 0));
	}
	{
		struct dl_evict_reply r = { .bytes = 4096, .count = 1 };

		put("evict-reply", 0, b, dl_encode(b, sizeof(b), DL_EVICT_REPLY, 13, &r,
						   sizeof(r), NULL, 0));
	}
	{
		struct dl_load l = { .length = DL_LENGTH_TO_EOF, .flags = DL_LOAD_PIN,
				     .path_len = (uint32_t)strlen(path) };

		put("load-pin", 0, b, dl_encode(b, sizeof(b), DL_LOAD, 15, &l, sizeof(l), path,
						strlen(path)));
	}
	{
		struct dl_list_reply lr = { .cache_bytes = 8192, .cache_limit = 1 << 30,
					    .n_entries = 2, .n_hidden = 1 };
		struct dl_list_entry e = { .size = 100, .buf_size = 4096, .served = 3, .hits = 2,
					   .flags = DL_ENTRY_PINNED, .method = 1,
					   .name_len = (uint32_t)strlen(path) };
		size_t pad = (strlen(path) + 7) & ~(size_t)7;

		tl = 0;
		memset(trail, 0, sizeof(trail));
		memcpy(trail, &e, sizeof(e));
		memcpy(trail + sizeof(e), path, strlen(path));
		tl = sizeof(e) + pad;
		e.name_len = 0;
		e.flags = DL_ENTRY_LOADING;
		memcpy(trail + tl, &e, sizeof(e));
		tl += sizeof(e);
		put("list-reply", 0, b, dl_encode(b, sizeof(b), DL_LIST_REPLY, 11, &lr,
						  sizeof(lr), trail, tl));
	}
	{
		struct dl_stats_reply s = { .bytes_read = 1 << 20, .loads_by_method = { 0, 1 },
					    .cache_hits = 1, .n_clients = 2 };
		struct dl_stats_client c[2] = {
			{ .conn_id = 1, .loads = 1, .bytes = 100, .pid = 1, .name = "a" },
			{ .conn_id = 2, .throttled_ns = 5, .pid = 2, .uid = 1000 },
		};

		put("stats-reply", 0, b, dl_encode(b, sizeof(b), DL_STATS_REPLY, 12, &s,
						   sizeof(s), c, sizeof(c)));
	}
	/* near misses: unknown type, other version */
	put("unknown-type", 0, b, dl_encode(b, sizeof(b), 0x7e, 9, "abc", 3, NULL, 0));
	{
		ssize_t n = dl_encode(b, sizeof(b), DL_STATUS, 10, NULL, 0, NULL, 0);

		((struct dl_hdr *)b)->version = 2;
		put("version-2", 0, b, n);
	}
	printf("gen-corpus: %d seeds in %s\n", count, dir);
	return count ? 0 : 1;
}
