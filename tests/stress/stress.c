/*
 * stress.c: the attacks of issue 12 against one daemon on the shipped config, each
 * for a few seconds, while root (the victim) keeps loading a small file. Reported,
 * never asserted: a case that shows a problem the issue describes prints it.
 *
 *   stress CONFIG WORKDIR        (the daemon: $DMALOADD, else build/dmaloadd)
 *
 * One daemon runs the whole way (tests/lib/daemon.c, CONFIG as its whole config,
 * its socket and log in a private dir under WORKDIR); it is restarted if a case kills
 * it. The attackers are forked children that run as nobody (when this runs as root;
 * as the caller otherwise, which the table says), all in one process group that is
 * killed at the end of the case. The victim opens a connection per load and loads
 * 64 KiB of its own file (another range each time, so no load is a cache hit; the
 * slow-leader case loads the attacker's public file instead), with a 2 s limit per
 * load. Between cases root's EVICT --all empties the cache and the daemon's fd count
 * gets a few seconds to come back.
 *
 * Columns: the victim's loads that got DONE out of those tried, their latency (p50
 * and max over all tries, a timed-out try counted as its wait; "+" marks a try that
 * timed out), the machine's floor under the same attack (echo: p50 of 4 round trips
 * over a socketpair to an idle root process, as many wakeups as a load's hops from
 * the victim to the daemon's loop, a worker and back; no daemon involved), and the
 * daemon's peak RSS and fd count (sampled every 20 ms) and its CPU use over the case.
 * When the attack takes the CPUs, echo grows as the load's latency does: what the
 * daemon cannot give back on 2 cores.
 *
 * The CPUs are shared as under systemd, by slice (see slices_setup below).
 *
 * Cases: idle (the baseline); idle-conns (one uid opens 300 idle connections, past
 * max_clients); throttled (16 loads of 8 MiB at 1 byte/s on one connection);
 * slow-leader (a 1 byte/s load of a public file that the victim's loads then join);
 * connect-die (clients that connect, ask for a load and die, 4 at a time); leases
 * (nobody holds write leases on 16 files of its own and loads them over and over:
 * each open would wait out fs.lease-break-time, left as the system has it);
 * hang-open (16 loads of a file on the FUSE test filesystem in mode hang-open, whose
 * opens never return; the connection is aborted after the case; "no FUSE" where it
 * cannot be mounted); flood, last (a reader that never reads its replies: 256 cached
 * loads of its own, then 10000 LISTs, each reply about 25 KiB, as fast as it can).
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../lib/fusefs.h"
#include "../lib/harness.h"

#define CASE_MS 3000
#define LOAD_TIMEOUT_MS 2000
#define VICTIM_GAP_MS 20
#define VICTIM_LEN (64 << 10)
#define MAX_TRIES 4096
#define FLOOD_ENTRIES 256
#define FLOOD_LISTS 10000
#define N_LEASED 16
#define N_HANG 16

static struct test_daemon d;
static char conf_text[1 << 16];
static char victim_path[PATH_MAX], public_path[PATH_MAX], big_path[PATH_MAX];
static char lease_dir[PATH_MAX];
static struct fusefs hang_fs = { .pid = -1 };
static bool as_nobody;
static int case_ms = CASE_MS;

/* ---- the daemon's numbers ------------------------------------------------------ */

struct sample {
	atomic_bool stop;
	pid_t pid;
	long rss_kb, fds;	/* peaks */
};

static void *sampler(void *arg)
{
	struct sample *s = arg;

	while (!atomic_load(&s->stop)) {
		long rss = proc_rss_kib(s->pid), fds = proc_fd_count(s->pid);

		if (rss > s->rss_kb)
			s->rss_kb = rss;
		if (fds > s->fds)
			s->fds = fds;
		sleep_ms(20);
	}
	return NULL;
}

/* ---- slices ------------------------------------------------------------------- */

/*
 * Under systemd the daemon runs in system.slice and each user's processes in their own
 * user-UID.slice, and the unit's CPUWeight= turns the cpu controller on, so a user's
 * fork loops share the CPUs with the daemon and root by slice, not by process. Here
 * (as root, where a cpu controller is writable) the same split: three cpu cgroups
 * under ours, "system" (the daemon), "user-0" (this program: the victim and the echo)
 * and "user-65534" (the attackers). Without them the table says "no slices", and 4
 * fork loops on 2 cores take the CPUs from the daemon as from any process
 * (STRESS_SLICES=0 runs it so, for comparison).
 */
static char slice_base[PATH_MAX + 32];	/* our cpu cgroup's dmaload-stress dir; "" if none */
static const char *const slice_names[] = { "system", "user-0", "user-65534" };

static bool write_str(const char *path, const char *text)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	ssize_t n = -1;

	if (fd >= 0) {
		n = write(fd, text, strlen(text));
		close(fd);
	}
	return n == (ssize_t)strlen(text);
}

/* Moves @pid (all its threads) into slice @name. */
static bool slice_join(const char *name, pid_t pid)
{
	char path[PATH_MAX + 128], num[32];

	if (!slice_base[0])
		return false;
	snprintf(path, sizeof(path), "%s/%s/cgroup.procs", slice_base, name);
	snprintf(num, sizeof(num), "%d", (int)pid);
	return write_str(path, num);
}

/* Our cpu cgroup's directory: v1's cpu hierarchy, else v2's (whose cpu controller
 * slices_setup turns on below it). Lines of /proc/self/cgroup: ID:CONTROLLERS:PATH. */
static bool cpu_cgroup_dir(char *dir, size_t len, bool *v2)
{
	char line[PATH_MAX + 64], *ctl, *path;
	FILE *f = fopen("/proc/self/cgroup", "re");
	bool v1 = false;

	if (!f)
		return false;
	*v2 = false;
	while (!v1 && fgets(line, sizeof(line), f)) {
		line[strcspn(line, "\n")] = '\0';
		if (!(ctl = strchr(line, ':')) || !(path = strchr(++ctl, ':')))
			continue;
		*path++ = '\0';
		if (!*ctl) {
			*v2 = true;
			snprintf(dir, len, "/sys/fs/cgroup%s", path);
			continue;
		}
		for (char *c = strtok(ctl, ","); c; c = strtok(NULL, ","))
			if (!strcmp(c, "cpu")) {
				snprintf(dir, len, "/sys/fs/cgroup/cpu%s", path);
				v1 = true;
				break;
			}
	}
	fclose(f);
	if (v1)
		*v2 = false;
	return v1 || *v2;
}

static void slices_setup(void)
{
	char dir[PATH_MAX], path[PATH_MAX + 128];
	bool v2 = false;

	if (!as_nobody || (getenv("STRESS_SLICES") && !strcmp(getenv("STRESS_SLICES"), "0")) ||
	    !cpu_cgroup_dir(dir, sizeof(dir), &v2))
		return;
	snprintf(slice_base, sizeof(slice_base), "%s/dmaload-stress", dir);
	if (mkdir(slice_base, 0755) < 0 && errno != EEXIST)
		goto none;
	snprintf(path, sizeof(path), "%s/cgroup.subtree_control", slice_base);
	if (v2 && !write_str(path, "+cpu"))
		goto none;
	for (size_t i = 0; i < sizeof(slice_names) / sizeof(slice_names[0]); i++) {
		snprintf(path, sizeof(path), "%s/%s", slice_base, slice_names[i]);
		if (mkdir(path, 0755) < 0 && errno != EEXIST)
			goto none;
	}
	if (slice_join("user-0", getpid()))
		return;
none:
	rmdir(slice_base);
	slice_base[0] = '\0';
}

/* Back to where we came from, and the cgroups gone (the daemon has exited). */
static void slices_teardown(void)
{
	char path[PATH_MAX + 128], num[32];

	if (!slice_base[0])
		return;
	snprintf(path, sizeof(path), "%s/../cgroup.procs", slice_base);
	snprintf(num, sizeof(num), "%d", (int)getpid());
	write_str(path, num);
	for (size_t i = 0; i < sizeof(slice_names) / sizeof(slice_names[0]); i++) {
		snprintf(path, sizeof(path), "%s/%s", slice_base, slice_names[i]);
		rmdir(path);
	}
	rmdir(slice_base);
}

/* ---- attackers ------------------------------------------------------------------ */

/* In a forked child: become nobody (if root), keep a high fd limit. */
static void drop(void)
{
	struct rlimit rl = { 4096, 4096 };

	setrlimit(RLIMIT_NOFILE, &rl);
	slice_join("user-65534", getpid());
	if (as_nobody && (setgroups(0, NULL) < 0 || setgid(65534) < 0 || setuid(65534) < 0))
		_exit(111);
}

/* A LOAD of [@off, @off + @len) of @path at @rate bytes/s (0: unlimited). */
static int send_load(int s, uint64_t id, const char *path, uint64_t off, uint64_t len,
		     uint64_t rate)
{
	struct dl_load l = { .offset = off, .length = len, .rate_limit = rate,
			     .path_len = (uint32_t)strlen(path) };

	return raw_send(s, DL_LOAD, id, &l, sizeof(l), path, l.path_len, NULL, 0);
}

/* Runs until killed (the case's end). First 256 small loads of its own, so that the
 * cache has entries it may see and each LIST reply is about 25 KiB; then LISTs it
 * never reads. */
static void attack_flood(void)
{
	struct raw_msg *rm = raw_msg_new();
	int s = raw_connect(d.sock);

	for (int i = 0; s >= 0 && rm && i < FLOOD_ENTRIES; i++) {
		if (send_load(s, (uint64_t)i + 1, public_path, (uint64_t)i * 4096, 4096, 0) < 0 ||
		    raw_wait_final(s, (uint64_t)i + 1, rm, 5000) != 1)
			break;
		raw_msg_clear(rm);
	}
	for (int i = 0; s >= 0 && i < FLOOD_LISTS; i++)
		if (raw_send(s, DL_LIST, (uint64_t)i + 1, NULL, 0, NULL, 0, NULL, 0) < 0)
			break;
	pause();
}

static void attack_idle_conns(void)
{
	for (int i = 0; i < 300; i++)
		if (raw_connect(d.sock) < 0)
			break;
	pause();
}

static void attack_throttled(void)
{
	int s = raw_connect(d.sock);

	/* 16 ranges, so 16 loads of their own (one file whole would be one leader and
	 * 15 joiners), of 2 chunks (the shipped chunk_size, 4 MiB): the burst lets the
	 * first through */
	for (int i = 0; s >= 0 && i < 16; i++)
		send_load(s, (uint64_t)i + 1, big_path, (uint64_t)i * 8 * MiB, 8 * MiB, 1);
	pause();
}

static void attack_slow_leader(void)
{
	int s = raw_connect(d.sock);

	if (s >= 0)
		send_load(s, 1, public_path, 0, DL_LENGTH_TO_EOF, 1);
	pause();
}

/* Leases on its own files, then loads of them as fast as they are answered. */
static void attack_leases(void)
{
	struct raw_msg *rm = raw_msg_new();
	int s = raw_connect(d.sock);
	uint64_t id = 0;
	char p[PATH_MAX + 16];

	signal(SIGIO, SIG_IGN);		/* the break notice; its default action kills */
	for (int i = 0; i < N_LEASED; i++) {
		int fd;

		snprintf(p, sizeof(p), "%s/f%d", lease_dir, i);
		fd = open(p, O_RDONLY | O_CLOEXEC);
		if (fd >= 0)
			fcntl(fd, F_SETLEASE, F_WRLCK);	/* kept open: the lease stays */
	}
	while (s >= 0 && rm) {
		for (int i = 0; i < N_LEASED; i++) {
			snprintf(p, sizeof(p), "%s/f%d", lease_dir, i);
			if (send_load(s, ++id, p, 0, DL_LENGTH_TO_EOF, 0) < 0)
				pause();
		}
		for (uint64_t w = id - N_LEASED + 1; w <= id; w++) {
			raw_wait_final(s, w, rm, 60000);
			raw_msg_clear(rm);
		}
	}
	pause();
}

static void attack_hang_open(void)
{
	int s = raw_connect(d.sock);

	for (int i = 0; s >= 0 && i < N_HANG; i++)
		send_load(s, (uint64_t)i + 1, hang_fs.file, 0, DL_LENGTH_TO_EOF, 0);
	pause();
}

static bool hang_mount(char *why, size_t len)
{
	return fusefs_mount(&hang_fs, d.dir, "hang-open", MiB, why, len) == 0;
}

/* One of 4 such processes: 4 at a time. */
static void attack_connect_die(void)
{
	for (;;) {
		pid_t pid = fork();

		if (pid == 0) {
			int s = raw_connect(d.sock);

			if (s >= 0)
				send_load(s, 1, big_path, 0, DL_LENGTH_TO_EOF, 0);
			_exit(0);	/* the kernel closes the connection */
		}
		if (pid < 0)
			sleep_ms(10);
		else
			waitpid(pid, NULL, 0);
	}
}

struct scase {
	const char *name;
	void (*attack)(void);
	unsigned procs;		/* attacker processes */
	bool public_file;	/* the victim loads the attacker's public file */
	bool (*before)(char *why, size_t len);	/* false: the case cannot run */
	void (*after)(struct fusefs *f);	/* once the attackers are gone */
};

static const struct scase cases[] = {
	{ .name = "idle" },
	{ .name = "idle-conns", .attack = attack_idle_conns, .procs = 1 },
	{ .name = "throttled", .attack = attack_throttled, .procs = 1 },
	{ .name = "slow-leader", .attack = attack_slow_leader, .procs = 1,
	  .public_file = true },
	{ .name = "connect-die", .attack = attack_connect_die, .procs = 4 },
	{ .name = "leases", .attack = attack_leases, .procs = 1 },
	{ .name = "hang-open", .attack = attack_hang_open, .procs = 1,
	  .before = hang_mount, .after = fusefs_unmount },
	/* last: the memory it makes the daemon take stays with it */
	{ .name = "flood", .attack = attack_flood, .procs = 1 },
};

/* ---- the victim ------------------------------------------------------------------ */

struct victim {
	unsigned tried, ok, timeouts;
	double ms[MAX_TRIES];
	double echo_ms[MAX_TRIES];
	char first_err[160];
};

/* The echo process: answers each byte on @fd until it closes. */
static int echo_fd = -1;
static pid_t echo_pid;

static void echo_start(void)
{
	int sv[2];
	char c;

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		return;
	echo_pid = fork();
	if (echo_pid == 0) {
		close(sv[0]);
		while (read(sv[1], &c, 1) == 1 && write(sv[1], &c, 1) == 1)
			;
		_exit(0);
	}
	close(sv[1]);
	echo_fd = echo_pid > 0 ? sv[0] : -1;
	if (echo_pid < 0)
		close(sv[0]);
}

/* 4 round trips to the echo process, in ms (0 without one). */
static double echo_rtt(void)
{
	double t0 = 1e3 * now_s();
	char c = 'e';

	if (echo_fd < 0)
		return 0;
	for (int i = 0; i < 4; i++)
		if (write(echo_fd, &c, 1) != 1 || read(echo_fd, &c, 1) != 1)
			return 0;
	return 1e3 * now_s() - t0;
}

static void victim_load(struct victim *v, const struct scase *c, unsigned i,
			struct raw_msg *rm)
{
	double t0 = 1e3 * now_s();
	int s = raw_connect(d.sock), r = s;
	char err[160] = "";

	if (s >= 0) {
		if (c->public_file)
			r = send_load(s, 1, public_path, 0, DL_LENGTH_TO_EOF, 0);
		else
			r = raw_send_load(s, 1, victim_path, -1,
					  (uint64_t)(i % 64) * VICTIM_LEN, VICTIM_LEN, 0);
		if (r == 0)
			r = raw_wait_final(s, 1, rm, LOAD_TIMEOUT_MS);
		close(s);
	}
	v->ms[v->tried] = 1e3 * now_s() - t0;
	v->echo_ms[v->tried++] = echo_rtt();
	if (r == 1 && rm->m.hdr.type == DL_DONE) {
		v->ok++;
	} else if (r == -ETIMEDOUT) {
		v->timeouts++;
		snprintf(err, sizeof(err), "timed out after %d ms", LOAD_TIMEOUT_MS);
	} else if (r == 1 && rm->m.hdr.type == DL_ERROR) {
		snprintf(err, sizeof(err), "ERROR: %s", raw_error_text(rm));
	} else {
		snprintf(err, sizeof(err), "%s", r < 0 ? strerror(-r) :
			 "connection closed without a reply");
	}
	if (err[0] && !v->first_err[0])
		snprintf(v->first_err, sizeof(v->first_err), "%s", err);
	raw_msg_clear(rm);
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

/* ---- one case -------------------------------------------------------------------- */

static void evict_all(void)
{
	struct dl_evict e = { .flags = DL_EVICT_ALL };
	struct raw_msg *rm = raw_msg_new();
	int s = raw_connect(d.sock);

	if (s >= 0 && rm && raw_send(s, DL_EVICT, 1, &e, sizeof(e), NULL, 0, NULL, 0) == 0)
		raw_wait_final(s, 1, rm, 5000);
	if (s >= 0)
		close(s);
	raw_msg_free(rm);
}

static bool ensure_daemon(void)
{
	char why[512];

	if (daemon_alive(&d))
		return true;
	daemon_reap(&d, &(int){ 0 });
	if (daemon_start_conf(&d, "stress", conf_text, why, sizeof(why)) < 0) {
		fprintf(stderr, "stress: cannot start the daemon: %s\n", why);
		return false;
	}
	slice_join("system", d.pid);
	daemon_baseline(&d);
	return true;
}

static void run_case(const struct scase *c)
{
	static struct victim v;
	struct sample smp = { .pid = d.pid };
	struct raw_msg *rm = raw_msg_new();
	pid_t group = 0;
	long cpu0, cpu1;
	uint64_t t0, t_end, elapsed;
	pthread_t th;
	char why[1024], note[256] = "";

	memset(&v, 0, sizeof(v));
	if (c->before && !c->before(why, sizeof(why))) {
		printf("%-12s %11s %8s %10s %8s %8s %6s %6s  %s\n", c->name, "-", "-", "-",
		       "-", "-", "-", "-", why);
		raw_msg_free(rm);
		return;
	}
	/* the attackers first, in a process group of their own */
	for (unsigned i = 0; i < c->procs; i++) {
		pid_t pid = fork();

		if (pid == 0) {
			setpgid(0, group);
			drop();
			c->attack();
			_exit(0);
		}
		if (pid > 0) {
			if (!group)
				group = pid;
			setpgid(pid, group);
		}
	}
	sleep_ms(c->procs ? 300 : 0);	/* let the attack take hold */
	cpu0 = proc_cpu_ticks(d.pid);
	pthread_create(&th, NULL, sampler, &smp);
	t0 = now_ms();
	t_end = t0 + (uint64_t)case_ms;
	for (unsigned i = 0; now_ms() < t_end && v.tried < MAX_TRIES; i++) {
		victim_load(&v, c, i, rm);
		sleep_ms(VICTIM_GAP_MS);
	}
	elapsed = now_ms() - t0 + 300 * (c->procs ? 1 : 0);
	cpu1 = proc_cpu_ticks(d.pid);
	atomic_store(&smp.stop, true);
	pthread_join(th, NULL);

	if (group) {
		kill(-group, SIGKILL);
		while (waitpid(-group, NULL, 0) > 0 || errno == EINTR)
			;
	}
	if (c->after)
		c->after(&hang_fs);
	/* nothing is left of the attack for the next case */
	if (daemon_alive(&d)) {
		evict_all();
		if (!daemon_settle(&d, 5000, why, sizeof(why)))
			snprintf(note, sizeof(note), "fds not back after 5 s");
	} else {
		snprintf(note, sizeof(note), "the daemon died");
	}
	if (v.first_err[0])
		snprintf(note + strlen(note), sizeof(note) - strlen(note), "%s%s",
			 note[0] ? "; " : "", v.first_err);

	qsort(v.ms, v.tried, sizeof(v.ms[0]), cmp_double);
	qsort(v.echo_ms, v.tried, sizeof(v.echo_ms[0]), cmp_double);
	printf("%-12s %5u/%-5u %8.1f %9.1f%s %8.2f %8.1f %6ld %6.0f  %s\n", c->name, v.ok,
	       v.tried, v.tried ? v.ms[v.tried / 2] : 0.0, v.tried ? v.ms[v.tried - 1] : 0.0,
	       v.timeouts ? "+" : " ", v.tried ? v.echo_ms[v.tried / 2] : 0.0,
	       (double)smp.rss_kb / 1024.0, smp.fds,
	       cpu0 >= 0 && cpu1 >= 0 && elapsed ?
	       100.0 * (double)(cpu1 - cpu0) / (double)sysconf(_SC_CLK_TCK) /
	       ((double)elapsed / 1000.0) : -1.0, note);
	fflush(stdout);
	raw_msg_free(rm);
}

static int read_conf(const char *path)
{
	FILE *f = fopen(path, "re");
	size_t n;

	if (!f) {
		perror(path);
		return -1;
	}
	n = fread(conf_text, 1, sizeof(conf_text) - 1, f);
	conf_text[n] = '\0';
	fclose(f);
	return 0;
}

int main(int argc, char **argv)
{
	const char *only = getenv("STRESS_CASES");

	if (argc != 3) {
		fprintf(stderr, "usage: stress CONFIG WORKDIR\n");
		return 2;
	}
	if (getenv("STRESS_CASE_MS"))
		case_ms = atoi(getenv("STRESS_CASE_MS"));
	if (read_conf(argv[1]) < 0)
		return 1;
	setenv("DMALOAD_TEST_TMP", argv[2], 1);
	signal(SIGPIPE, SIG_IGN);
	as_nobody = geteuid() == 0;
	slices_setup();
	if (!ensure_daemon())
		return 1;
	snprintf(victim_path, sizeof(victim_path), "%s/victim", d.dir);
	snprintf(public_path, sizeof(public_path), "%s/public", d.dir);
	snprintf(big_path, sizeof(big_path), "%s/big", d.dir);
	snprintf(lease_dir, sizeof(lease_dir), "%s/nobody", d.dir);
	/* the files nobody leases are its own: F_SETLEASE wants the owner */
	if (mkdir(lease_dir, 0755) < 0)
		perror(lease_dir);
	for (int i = 0; i < N_LEASED; i++) {
		char p[PATH_MAX + 16];

		snprintf(p, sizeof(p), "%s/f%d", lease_dir, i);
		if (file_make(p, 4096, 10 + i, 0644) < 0 ||
		    (as_nobody && chown(p, 65534, 65534) < 0))
			perror(p);
	}
	if (file_make(victim_path, 64 * VICTIM_LEN, 1, 0600) < 0 ||
	    file_make(public_path, 16 * MiB, 2, 0644) < 0 ||
	    file_make(big_path, 128 * MiB, 3, 0644) < 0) {
		fprintf(stderr, "stress: cannot make the files in %s\n", d.dir);
		daemon_stop(&d);
		daemon_cleanup(&d);
		return 1;
	}

	printf("# dmaloadd under attack: config %s, %d ms a case, attackers run as %s; "
	       "victim: root, 64 KiB loads, %d ms limit each\n", argv[1], case_ms,
	       as_nobody ? "nobody" : "the caller (not root: same uid as the victim)",
	       LOAD_TIMEOUT_MS);
	printf("# cpu: %s\n", slice_base[0] ? "daemon, victim and attackers in cpu cgroups of "
	       "their own, as systemd's slices (system, user-0, user-65534)" :
	       "no slices (STRESS_SLICES=0, not root, or no writable cpu controller): all "
	       "share the CPUs process by process");
	printf("%-12s %11s %8s %10s %8s %8s %6s %6s  %s\n", "case", "victim ok", "p50 ms",
	       "max ms", "echo ms", "RSS MiB", "fds", "CPU %", "note");
	echo_start();
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		if (only && !strstr(only, cases[i].name))
			continue;
		if (!ensure_daemon())
			break;
		run_case(&cases[i]);
	}
	if (echo_fd >= 0) {
		close(echo_fd);
		waitpid(echo_pid, NULL, 0);
	}
	if (daemon_alive(&d))
		daemon_stop(&d);
	daemon_cleanup(&d);
	slices_teardown();
	return 0;
}
