/*
 * harness.h: what the integration tests, the bench and the qemu guest's programs
 * share; the one header they include (with check.h and loads.h). One .c file per
 * topic, named in each section below:
 *
 *   - util.c: the clock, private temp dirs, filesystem types;
 *   - pattern.c: test files with a deterministic pattern, and the check of a DONE
 *     buffer against them (size, seals, every byte);
 *   - hugepages.c: the huge page pool, grown for a test and restored at exit;
 *   - proc.c: /proc probes (the daemon's open fds and memfds, to catch leaks),
 *     /proc/meminfo and dropping the page cache;
 *   - daemon.c: a private daemon: the real $DMALOADD binary started on its own socket,
 *     config file and log in a private temp dir (like tmux's regress/ or dbus-broker's
 *     util-broker), stopped with SIGTERM and required to exit 0;
 *   - ctl.c: the CLI runner (dmaload-ctl against a test daemon, output captured);
 *   - raw.c: a raw protocol client, for input libdmaload would never send;
 *   - children.c: running a function in a forked child (privilege drops, killed
 *     clients).
 *
 * Temp dirs live under $DMALOAD_TEST_TMP (tests/run-one.sh makes one per run) or
 * /var/tmp: O_DIRECT needs a real filesystem, not tmpfs.
 */
#pragma once

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "check.h"
#include "dmaload-proto.h"
#include "util.h"

#define MiB (1024ull * 1024)

/* ---- time (util.c) ---------------------------------------------------------------- */

uint64_t now_ms(void);
/* The same clock in seconds, to the nanosecond: for latencies and rates. */
double now_s(void);
void sleep_ms(unsigned ms);

/* ---- temp dirs (util.c) ----------------------------------------------------------- */

/* Makes a fresh 0755 dir named after @tag under the test temp base; path into @out. */
int tdir_create(char *out, size_t len, const char *tag);
/* Removes @path and everything under it. */
int tdir_remove(const char *path);
/* The filesystem type name of @path ("ext4", "tmpfs", ...) into @out. */
int fs_type_name(const char *path, char *out, size_t len);
/* `make -s TARGET DESTDIR='DEST'` in the current directory (the source tree), its
 * output thrown away: system()'s status. */
int make_into(const char *target, const char *dest);

/* ---- pattern files (pattern.c) ---------------------------------------------------- */

/* The byte at file offset @off of the pattern @seed: any range can be produced alone,
 * and a byte in the wrong place (off by one, a chunk swapped) does not match. */
uint8_t pattern_byte(uint32_t seed, uint64_t off);
void pattern_fill(uint32_t seed, uint64_t off, void *buf, size_t len);
/* Creates (truncates) @path with @size bytes of pattern @seed, mode @mode. */
int file_make(const char *path, uint64_t size, uint32_t seed, mode_t mode);
/* Drops @path's pages from the page cache (its written data synced first), so the next
 * read of it is cold. 0 or -errno. */
int file_uncache(const char *path);

/*
 * Checks a buffer fd from a DONE: a memfd, close-on-exec, sealed against shrink, grow,
 * write and further seals (and writes really fail), fstat size exactly @len, and
 * holding bytes [@off, @off + @len) of pattern @seed. Returns true, or false with the
 * first problem in @why.
 */
bool buf_verify(int fd, uint64_t len, uint32_t seed, uint64_t off, char *why, size_t n);

#define CHECK_BUF(fd, len, seed, off) ({					\
	char _why[512];								\
	buf_verify((fd), (len), (seed), (off), _why, sizeof(_why)) ? true :	\
		check_fail(__FILE__, __LINE__, "buffer of %s: %s", #fd, _why);	\
})

/* ---- huge pages (hugepages.c) ----------------------------------------------------- */

/* Makes sure at least @n free huge pages of the default size are in the pool (root
 * only: /proc/sys/vm/nr_hugepages), growing it if needed; the pool's first size is
 * restored at exit. Returns true if they are there. */
bool hugepages_reserve(unsigned n);
/* Sets the pool to @n pages exactly (for pool-exhaustion tests). */
bool hugepages_set(unsigned n);
/* Free huge pages now (HugePages_Free minus HugePages_Rsvd), and the pool's size. */
long hugepages_free(void);
long hugepages_total(void);
/* Sets vm.nr_overcommit_hugepages (surplus pages the kernel may hand out beyond the
 * pool, on demand); the first value is restored at exit. Root only. */
bool hugepages_overcommit(unsigned n);

/* ---- /proc (proc.c) --------------------------------------------------------------- */

/* Open fds of @pid (0: this process). -errno on failure. */
int proc_fd_count(pid_t pid);
/* Fds of @pid that are memfds, and memfd mappings in its address space. */
int proc_memfd_count(pid_t pid, int *fds, int *maps);
/* A one-line description of @pid's fds ("3 socket:[..] 4 anon_inode:[io_uring] ...")
 * for failure messages. */
void proc_fd_describe(pid_t pid, char *out, size_t len);
/* Resident memory of @pid (VmRSS of /proc/PID/status), KiB; -errno on failure. */
long proc_rss_kib(pid_t pid);
/* CPU time @pid has used (utime + stime of /proc/PID/stat), in clock ticks
 * (sysconf(_SC_CLK_TCK) a second); -errno on failure. */
long proc_cpu_ticks(pid_t pid);
/* A field of /proc/meminfo: meminfo_value() of the daemon's util.h, the one reader
 * the daemon, the tests and the bench share. */
/* sync(), then drops the page cache, dentries and inodes (root only). 0, or -errno
 * after a "# drop_caches: why" line on stderr. */
int drop_caches(void);

/* ---- the daemon (daemon.c; the CLI runner: ctl.c) --------------------------------- */

struct test_daemon {
	pid_t pid;			/* -1 when not running */
	char dir[256];			/* private temp dir, 0755 */
	char sock[PATH_MAX];		/* dir/sock */
	char conf[PATH_MAX];		/* dir/dmaloadd.conf */
	char log[PATH_MAX];		/* dir/daemon.log: the daemon's stdout and stderr */
	int base_fds;			/* baseline fd count, set by daemon_baseline() */
	int base_memfds;		/* baseline memfd fds + mappings */
	int start_fds, start_memfds;	/* the first baseline, kept */
};

/* RLIMIT_NOFILE (soft and hard) for the daemons started from now on; 0: inherit
 * (the default). For tests of a daemon out of fds. */
void daemon_set_nofile(unsigned long n);
/* The daemon binary: $DMALOADD, else build/dmaloadd. */
const char *daemon_binary(void);
/* The CLI: $DMALOAD_CTL, else build/dmaload-ctl. */
const char *ctl_binary(void);
/*
 * Runs the CLI with --socket @sock and @args (NULL-terminated), stdin from /dev/null,
 * stdout and stderr through files in @dir into @out and @err (NUL-terminated). Kills
 * it after @timeout_ms ("timed out" in @err). Returns its exit status, or -1 if it
 * was killed, timed out or could not start.
 */
int ctl_run(const char *sock, const char *dir, const char *const *args, int timeout_ms,
	    char *out, size_t out_len, char *err, size_t err_len);

/* The config every test daemon gets: the [daemon] section (socket_mode 0666, debug
 * logging), [cache] with cache_limit = 0 (no kept buffers for the fd-leak probes to
 * see; coalescing of running loads stays on), then "[io]" and @io_extra (may be
 * NULL): lines of "key = value\n", possibly followed by other sections. */
int daemon_write_config(struct test_daemon *d, const char *io_extra);
/* The same, then @more (may be NULL): whole sections, e.g. "[limits]\nkey = v\n".
 * Also rewrites the config of a running daemon (for SIGHUP tests). */
int daemon_write_config_more(struct test_daemon *d, const char *io_extra,
			     const char *more);

/*
 * Makes the temp dir (named after @tag), writes the config, starts the daemon with
 * --config and --socket, and waits (up to 20 s) until the socket accepts a
 * connection. Registers the fail hook (log tail) and the watchdog's kill hook.
 * Returns 0, or -errno with the reason in @why.
 */
int daemon_start(struct test_daemon *d, const char *tag, const char *io_extra,
		 char *why, size_t why_len);
/* daemon_start with @more sections in the config (see daemon_write_config_more). */
int daemon_start_more(struct test_daemon *d, const char *tag, const char *io_extra,
		      const char *more, char *why, size_t why_len);
/*
 * The case "daemon starts": begins it and starts the daemon (daemon_start_more). On
 * failure ends the case with the reason, cleans up and returns false (the test then
 * exits 1); on success the case stays open for the test's own set-up checks, ended by
 * its check_end().
 */
bool daemon_start_case(struct test_daemon *d, const char *tag, const char *io_extra,
		       const char *more);
/* Starts the daemon like daemon_start, but with @conf as its whole config file: no
 * test defaults (the bench's daemons run on the built-in ones). */
int daemon_start_conf(struct test_daemon *d, const char *tag, const char *conf,
		      char *why, size_t why_len);
/* Waits up to @timeout_ms for a line of the daemon's log that contains @needle and
 * comes after the first @skip bytes of the log. Returns true if one did. */
bool daemon_log_wait(const struct test_daemon *d, const char *needle, long skip,
		     int timeout_ms);
/* The log's size now, for daemon_log_wait's @skip. */
long daemon_log_size(const struct test_daemon *d);
/* Rewrites the config (daemon_write_config_more), sends SIGHUP and waits up to 5 s
 * for a log line of the reload that contains @needle, all with CHECKs. Returns
 * whether everything held. */
bool daemon_reload(struct test_daemon *d, const char *io_extra, const char *more,
		   const char *needle);
/* Sends SIGTERM and waits up to 20 s (then SIGKILL). Returns the wait status, or -1
 * if it had to be killed. */
int daemon_stop(struct test_daemon *d);
/* From now on SIGINT, SIGTERM and SIGHUP (Ctrl-C, timeout(1)) kill @d's daemon, if it
 * runs, before this process dies of the signal: the benches' private daemons never
 * outlive them. */
void daemon_kill_on_signal(struct test_daemon *d);
/* Whether @name is one of the comma-separated names in @list (a bench's --rows). */
bool name_listed(const char *list, const char *name);
/* Reads a bench's options, [--quick] [--rows LIST], into @quick and @rows (left as
 * they are when absent). Returns the index of the first other argument. */
int bench_options(int argc, char **argv, bool *quick, const char **rows);
/* Prints the last @lines lines of the daemon's log to stderr. */
void daemon_log_tail(const struct test_daemon *d, int lines);
/* If the daemon has exited, reaps it: true with its wait status in *@status, and
 * d->pid is -1 from then on. False while it runs. */
bool daemon_reap(struct test_daemon *d, int *status);
/* Whether the daemon process is still alive. */
bool daemon_alive(const struct test_daemon *d);
/* Waits until the daemon's fd and memfd counts stay the same for 300 ms, then records
 * them as the baseline. */
void daemon_baseline(struct test_daemon *d);
/* Polls until the daemon's fd count equals the baseline and its memfd count too, up
 * to @timeout_ms. Returns true, or false with the last counts in @why; then the
 * baseline moves to the counts seen, so one leak fails one case, not all later ones. */
bool daemon_settle(struct test_daemon *d, int timeout_ms, char *why, size_t why_len);
/* The same against the first baseline (daemon_baseline()'s): for a program's last
 * "no leak at all" case. */
bool daemon_settle_start(struct test_daemon *d, int timeout_ms, char *why, size_t why_len);
/* Case helper: "fd and memfd counts back to baseline" as a CHECK. */
#define CHECK_SETTLED(d, ms) ({							\
	char _why[1024];							\
	daemon_settle((d), (ms), _why, sizeof(_why)) ? true :			\
		check_fail(__FILE__, __LINE__, "daemon leaked: %s", _why);	\
})
#define CHECK_SETTLED_START(d, ms) ({						\
	char _why[1024];							\
	daemon_settle_start((d), (ms), _why, sizeof(_why)) ? true :		\
		check_fail(__FILE__, __LINE__, "daemon leaked since start: %s", _why);	\
})
/* Standard last case of a program: stop with SIGTERM, exit status must be 0; then
 * the temp dir is removed. */
void daemon_stop_case(struct test_daemon *d, const char *suite_case);
/* Removes the temp dir. */
void daemon_cleanup(struct test_daemon *d);

/* ---- raw protocol (raw.c) --------------------------------------------------------- */

struct raw_msg {
	int decode;			/* dl_msg_decode()'s result */
	int fd;				/* the fd that came with it, or -1 */
	size_t len;			/* datagram bytes */
	struct dl_msg m;
	char buf[DL_MSG_MAX];
};

/* A blocking SOCK_SEQPACKET connection to @path. Returns the fd or -errno. */
int raw_connect(const char *path);
/* Sends @len bytes with @nfds fds (any number, unlike dl_send). 0 or -errno. */
int raw_send_bytes(int s, const void *buf, size_t len, const int *fds, int nfds);
/* Encodes and sends one message. 0 or -errno. */
int raw_send(int s, uint16_t type, uint64_t id, const void *payload, size_t plen,
	     const void *trail, size_t tlen, const int *fds, int nfds);
/* Sends a LOAD of @path (by path) or of @fd (when @path is NULL). */
int raw_send_load(int s, uint64_t id, const char *path, int fd, uint64_t offset,
		  uint64_t length, uint8_t method);
/*
 * Receives one message within @timeout_ms. Returns 1 (rm filled, rm->decode says
 * whether it was well-formed), 0 at end of stream, -ETIMEDOUT, or -errno. A previous
 * fd in rm is closed first; the caller closes the last one (raw_msg_clear).
 */
int raw_recv(int s, struct raw_msg *rm, int timeout_ms);
/* Receives until the final reply to @id (skipping ACCEPTED/PROGRESS of @id; replies
 * to other ids are an error: -EPROTO). Same returns as raw_recv. */
int raw_wait_final(int s, uint64_t id, struct raw_msg *rm, int timeout_ms);
/* A zeroed raw_msg with no fd (fd -1), and its release (closes the fd). */
struct raw_msg *raw_msg_new(void);
void raw_msg_free(struct raw_msg *rm);
/* Closes rm's fd, if any. */
void raw_msg_clear(struct raw_msg *rm);
/* The ERROR text of rm as a NUL-terminated string (static storage). */
const char *raw_error_text(const struct raw_msg *rm);

/* ---- children (children.c) -------------------------------------------------------- */

/*
 * Runs @fn in a forked child. The child's @fn returns 0 for success or writes what
 * went wrong into @msg and returns non-zero; the parent gets that text back in @msg.
 * Returns 0 when the child succeeded, 1 when it reported a failure, -ETIMEDOUT when
 * it ran longer than @timeout_ms (it is killed), -1 when it died otherwise.
 */
/*
 * In a child: becomes uid @uid with gid @uid (nobody is 65534 and 65534), with
 * supplementary group @extra (0: none), unable to become root again, and dumpable
 * again as a process that exec'd would be (the kernel makes one that changed its uid
 * undumpable, and a daemon without CAP_SYS_PTRACE may then not open its
 * /proc/PID/root). Returns 0, or -1 with @msg set.
 */
int child_drop(uid_t uid, gid_t extra, char *msg, size_t len);
int child_run(int (*fn)(void *arg, char *msg, size_t len), void *arg,
	      char *msg, size_t len, int timeout_ms);
