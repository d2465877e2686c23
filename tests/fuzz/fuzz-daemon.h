/*
 * fuzz-daemon.h: the input format of fuzz-daemon.c, shared with gen-corpus.c, which
 * writes its seeds. Byte 0 holds FUZZ_OPT_* bits; then operations, an opcode byte
 * (taken mod OP_COUNT) and its argument bytes each (see fuzz-daemon.c). Never
 * renumber: the corpus in tests/fuzz/corpus-daemon/ is written in these numbers.
 */
#pragma once

#define FUZZ_OPT_READ_LATE	(1u << 0)	/* read the replies only at the end */

enum fuzz_op {
	OP_RAW,		/* spec len_lo len_hi bytes... */
	OP_LOAD,	/* id path flags method target prio offset length rate spec */
	OP_CANCEL,	/* load_id id */
	OP_SIMPLE,	/* type id: HELLO, STATUS, INFO, LIST, STATS */
	OP_EVICT,	/* id path (0xff: --all) */
	OP_PUMP,	/* run the loop without waiting */
	OP_SETTLE,	/* run it until the engine is idle (bounded) */
	OP_DRAIN,	/* read the replies there are */
	OP_PEER,	/* the next ops go to the other connection (made on first use) */
	OP_HANGUP,	/* close this connection; the next op on it opens a new one */
	OP_COUNT
};

/* The path table's indices (fuzz-daemon.c's paths[]), for the seeds. */
enum fuzz_path {
	P_SMALL, P_BIG, P_EMPTY, P_DIR, P_LINK, P_DOTDOT, P_MISSING, P_DEVNULL, P_PROC,
	P_RELATIVE, P_SLASH
};

/* The fd pool's indices; a spec byte is count | first << 2 | second << 5. */
enum fuzz_fd { FD_SMALL, FD_DIR, FD_DEVNULL, FD_PIPE, FD_MEMFD, FD_BIG };
#define FUZZ_SPEC(n, a, b)	((n) | (a) << 2 | (b) << 5)
