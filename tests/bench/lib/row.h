/*
 * row.h: one row of the copy-method benchmark (make bench), the part bench-raw,
 * bench-fio and bench-e2e share: the files, the run before each measurement (cold or
 * hot), the check of a buffer against its file, the row's first error, and its one
 * output line.
 *
 * A row is one way of getting a set of files into memfd buffers, run --runs times;
 * it prints one tab-separated line with the median, min and max of each column, which
 * tests/bench/run.sh turns into the table of docs/BENCHMARKS.md:
 *
 *   bench-raw [OPTS] METHOD TARGET FILE...       this process does the copy itself
 *   bench-fio [OPTS] malloc|shmhuge FILE...      fio reads the files: the disk's limit
 *   bench-e2e [OPTS] DAEMON METHOD HUGETLB WORKDIR FILE...
 *                                                 a private dmaloadd, through libdmaload
 *
 * OPTS: --runs N (default 3); --label TEXT (the row's name in the output line; by
 * default raw, fio or e2e); --hot (bench-raw and bench-e2e: files read into the page
 * cache before each run instead of dropped from it). Each program's header says what
 * else it takes.
 *
 * What a run measures (milliseconds):
 *   creat  the buffers made ready: memfd_create, ftruncate, mmap with MAP_POPULATE (so
 *          the page allocation and faults a 4 KiB memfd costs land here for every
 *          method, not in whichever read happens to touch a page first), the pipes of
 *          splice, the registration (pinning) of fixed. A hypervisor that charges the
 *          first write to each page on top (docs/BENCHMARKS.md) charges it to io;
 *   io     the files opened and copied, all of them, with every chunk complete;
 *   close  munmap and close of the buffers (the memfd's pages are freed here), and
 *          the unregistration and pipes;
 *   cpu    user + system time of this process over creat + io + close; for e2e, the
 *          daemon's (from /proc/PID/stat, all its threads) plus this client's.
 * For e2e, io runs from the first LOAD sent to the last DONE received, so the daemon's
 * own allocation, sealing and fd passing are inside it and creat is "-"; close is
 * munmap and close of the received buffers. For fio, io is fio's own runtime.
 *
 * Every run checks samples of every buffer (first and last 4 KiB, 16 spots between)
 * against the file, so a broken load is reported as an error, never as fast. A row
 * that cannot be measured (the kernel refuses the method, the daemon answers ERROR or
 * dies) prints an error line with the reason instead of numbers.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../../lib/harness.h"

#define KiB ((uint64_t)1024)
#define GiB (1024ull * MiB)

#define SAMPLES 16			/* spots checked between a buffer's ends */

/* ---- errors and time ----------------------------------------------------------- */

/* The first error of the row; once set, the row prints it and nothing else. */
extern char row_error[512];

/* Records the row's error (the first one is kept). Returns -1. */
int row_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* "EXDEV (Invalid cross-device link)" for a positive errno (static storage). */
const char *errtext(int err);
/* User + system time of this process, all threads, io_uring's workers included. */
uint64_t cpu_self_ns(void);

/* ---- the files ----------------------------------------------------------------- */

struct bfile {
	const char *path;
	uint64_t size;
};

extern struct bfile *files;
extern int n_files;
extern uint64_t total_bytes;	/* of all files */

/* Stats @n paths into files[]: each must be a non-empty regular file. 0 or -1. */
int files_stat(char **paths, int n);
/* Drops the page cache (tests/lib's drop_caches()): nothing of the files cached. */
int files_cold(void);
/* Before each run: cold (nothing of the files cached) or hot (all of them cached). */
int run_prepare(bool hot);
/*
 * Compares @buf with file @i: first and last 4 KiB and SAMPLES spots of 512 bytes in
 * between. Random file content means a zero-filled, shifted or swapped chunk fails.
 * Runs outside the timed parts. @what names the row's kind in the error.
 */
int buf_check(const uint8_t *buf, int i, const char *what);

/* ---- huge pages ---------------------------------------------------------------- */

uint64_t huge_page_size(void);
/* Waits up to 30 s for the huge page pool to have room for every file. 0 or -1. */
int hugetlb_wait(void);

/* ---- one run's numbers, and the row's ------------------------------------------ */

struct sample {
	double creat_ms, close_ms, io_ms, cpu_ms;	/* NAN: not measured in this row */
	uint64_t bytes;
};

/* The options every row takes. */
struct row_opts {
	int runs;
	const char *label;
	bool hot;
};

/* Sets the defaults: 3 runs, label @kind, cold. */
void row_opts_init(struct row_opts *o, const char *kind);
/* If argv[*a] is --runs N, --label TEXT or (with @hot_ok) --hot, takes it (moving *a
 * past its value) and returns true. */
bool row_option(struct row_opts *o, int argc, char **argv, int *a, bool hot_ok);
/* SIGPIPE ignored, as a row's programs always had it. */
void row_init(void);

/*
 * The row's line: "ok LABEL RUNS BYTES" then median/min/max of creat, close, io,
 * MB/s (10^6 bytes per second of io) and cpu, then NOTE; or "error LABEL TEXT".
 */
void print_row(const char *label, const struct sample *s, int n, const char *note);
