/*
 * main.c: dmaloadd's entry point. Reads top to bottom: parse the command line, load
 * the config, raise the fd limit, set up the server, tell systemd we are ready, run the loop, tear down.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <systemd/sd-daemon.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "log.h"
#include "preload.h"
#include "server.h"

#define DMALOADD_VERSION "0.1.0"

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: dmaloadd [OPTIONS]\n"
		"Loads files into sealed memfds through io_uring and hands them to clients\n"
		"over a Unix socket. Runs in the foreground.\n\n"
		"  -c, --config FILE      config file (default %s, if present)\n"
		"  -s, --socket PATH      listen here (overrides the config)\n"
		"  -l, --log-level LEVEL  error, warning, notice, info or debug\n"
		"  -t, --check-config     check the config and exit\n"
		"  -h, --help             this text\n"
		"  -V, --version          print the version\n",
		CONFIG_DEFAULT_PATH);
}

/* Fds one load may hold in the daemon at once: its source, its buffer and the dup
 * queued with its DONE. */
#define FDS_PER_LOAD 3

/* Every connection and load holds fds: the soft limit (1024 by default) is far below
 * what max_clients allows, so take the hard one. Returns the limit in force. */
static rlim_t raise_fd_limit(void)
{
	struct rlimit rl;
	rlim_t was;

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0) {
		log_warn("getrlimit(RLIMIT_NOFILE): %s", strerror(errno));
		return RLIM_INFINITY;
	}
	was = rl.rlim_cur;
	if (rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &rl) < 0) {
			log_warn("setrlimit(RLIMIT_NOFILE, %llu): %s",
				 (unsigned long long)rl.rlim_max, strerror(errno));
			rl.rlim_cur = was;
		}
	}
	log_info("fd limit: %llu (soft limit was %llu)", (unsigned long long)rl.rlim_cur,
		 (unsigned long long)was);
	return rl.rlim_cur;
}

/* Fds the daemon needs besides its clients': listener, ring, log, pipes, spare. */
#define FDS_OWN 64

/* Says what the fd limit holds. That every client fills its max_queued loads with 3
 * fds each is a worst case no host's default hard limit covers (256 x 64 x 3), and
 * past the limit a load only gets EMFILE while the others go on: a notice. A limit
 * too low to give every connection one load is a misconfiguration: a warning. */
static void check_fd_limit(const struct config *cfg, rlim_t limit)
{
	unsigned long long worst = (unsigned long long)cfg->max_clients * cfg->max_queued *
				   FDS_PER_LOAD;
	unsigned long long floor = (unsigned long long)cfg->max_clients *
				   (1 + FDS_PER_LOAD) + FDS_OWN;

	if (limit == RLIM_INFINITY || worst <= limit)
		return;
	if (limit < floor)
		log_warn("the fd limit (%llu) is less than max_clients (%u) connections with "
			 "one load each (%llu fds): loads will fail with EMFILE; raise "
			 "LimitNOFILE= or lower max_clients", (unsigned long long)limit,
			 cfg->max_clients, floor);
	else
		log_notice("the fd limit (%llu) holds about %llu loads at %d fds each; "
			   "max_clients (%u) x max_queued (%u) allows %llu: past the limit a "
			   "load gets EMFILE", (unsigned long long)limit,
			   (unsigned long long)(limit - floor + FDS_PER_LOAD * cfg->max_clients) /
				   FDS_PER_LOAD,
			   FDS_PER_LOAD, cfg->max_clients, cfg->max_queued,
			   (unsigned long long)cfg->max_clients * cfg->max_queued);
}

/* What SIGHUP needs: the running config, where it came from, what the command line
 * overrides. */
struct reload {
	struct server *srv;
	struct config *cfg;
	const char *path;	/* -c FILE, or NULL: the default file if it exists */
	const char *level;	/* --log-level, which wins over the file */
	rlim_t fd_limit;	/* RLIMIT_NOFILE as raised at start */
};

/* Re-reads the config file. A file with an error changes nothing. Reading it blocks
 * the loop for as long as a small file read (and user/group name lookups) take. */
static bool reload(struct reload *rl)
{
	const char *path = rl->path;
	struct config next;
	char err[512];

	if (!path && access(CONFIG_DEFAULT_PATH, F_OK) == 0)
		path = CONFIG_DEFAULT_PATH;
	if (!path) {
		log_notice("SIGHUP: no config file (%s does not exist): nothing to reload",
			   CONFIG_DEFAULT_PATH);
		return false;
	}
	config_init(&next);
	if (config_load(&next, path, err, sizeof(err)) < 0) {
		log_err("SIGHUP: %s; keeping the running config", err);
		config_deinit(&next);
		return false;
	}
	if (rl->level)
		log_parse_level(rl->level, &next.log_level);
	log_notice("SIGHUP: reloading %s", path);
	server_config_changed(rl->srv, config_reload(rl->cfg, &next));
	log_setup(rl->cfg->log_level);
	check_fd_limit(rl->cfg, rl->fd_limit);
	config_deinit(&next);
	return true;
}

/* SIGHUP, bracketed for systemd: RELOADING=1 with MONOTONIC_USEC (Type=notify-reload
 * in systemd 253+ wants the timestamp; 252 ignores it), then READY=1 whether or not
 * the new file was good, since the daemon serves either way. */
static void on_hup(struct ev_loop *loop, ev_signal *w, int revents)
{
	struct reload *rl = w->data;
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	sd_notifyf(0, "RELOADING=1\nMONOTONIC_USEC=%llu",
		   (unsigned long long)ts.tv_sec * 1000000ull +
		   (unsigned long long)ts.tv_nsec / 1000);
	if (reload(rl) && preload_start(&rl->srv->conns, rl->cfg->preload, rl->cfg->n_preload) < 0)
		log_err("SIGHUP: preload: out of memory");
	sd_notify(0, "READY=1");
	server_notify_status(rl->srv);
}

static void on_stop_signal(struct ev_loop *loop, ev_signal *w, int revents)
{
	server_stop(w->data);
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "socket", required_argument, NULL, 's' },
		{ "log-level", required_argument, NULL, 'l' },
		{ "check-config", no_argument, NULL, 't' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ 0 }
	};
	const char *config_path = NULL, *socket_path = NULL, *level = NULL;
	bool check_only = false;
	struct config cfg;
	struct server srv;
	struct reload rl;
	struct ev_loop *loop;
	ev_signal sigterm, sigint, sighup;
	char err[512];
	int o, r;

	while ((o = getopt_long(argc, argv, "c:s:l:thV", opts, NULL)) != -1) {
		switch (o) {
		case 'c': config_path = optarg; break;
		case 's': socket_path = optarg; break;
		case 'l': level = optarg; break;
		case 't': check_only = true; break;
		case 'h': usage(stdout); return 0;
		case 'V': printf("dmaloadd " DMALOADD_VERSION "\n"); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "dmaloadd: unexpected argument '%s'\n", argv[optind]);
		return 2;
	}

	config_init(&cfg);
	if (!config_path && access(CONFIG_DEFAULT_PATH, F_OK) == 0)
		config_path = CONFIG_DEFAULT_PATH;
	if (config_path) {
		r = config_load(&cfg, config_path, err, sizeof(err));
		if (r < 0) {
			fprintf(stderr, "dmaloadd: %s\n", err);
			config_deinit(&cfg);
			return 1;
		}
	}
	if (socket_path) {
		free(cfg.socket);
		cfg.socket = strdup(socket_path);
	}
	if (level && log_parse_level(level, &cfg.log_level) < 0) {
		fprintf(stderr, "dmaloadd: bad log level '%s'\n", level);
		config_deinit(&cfg);
		return 2;
	}
	if (check_only) {
		printf("%s: ok\n", config_path ? config_path : "built-in defaults");
		config_deinit(&cfg);
		return 0;
	}
	log_setup(cfg.log_level);
	/* A client that goes away mid-send must not kill us (sends also use
	 * MSG_NOSIGNAL; this covers everything else). */
	signal(SIGPIPE, SIG_IGN);
	rl = (struct reload){ .srv = &srv, .cfg = &cfg, .path = config_path, .level = level,
			      .fd_limit = raise_fd_limit() };
	check_fd_limit(&cfg, rl.fd_limit);

	loop = ev_default_loop(EVFLAG_AUTO | EVFLAG_SIGNALFD);
	/* Signals first: starting the watchers blocks them (they arrive through a
	 * signalfd), and the worker threads server_init starts inherit that mask. A
	 * thread that had them unblocked would take a SIGTERM with the default action
	 * and end the process; so would one that came between listen() and here. */
	ev_signal_init(&sigterm, on_stop_signal, SIGTERM);
	ev_signal_init(&sigint, on_stop_signal, SIGINT);
	sigterm.data = sigint.data = &srv;
	ev_signal_start(loop, &sigterm);
	ev_signal_start(loop, &sigint);
	ev_signal_init(&sighup, on_hup, SIGHUP);
	sighup.data = &rl;
	ev_signal_start(loop, &sighup);
	r = server_init(&srv, loop, &cfg);
	if (r < 0) {
		config_deinit(&cfg);
		return 1;
	}
	sd_notify(0, "READY=1");
	server_notify_status(&srv);
	/* After READY=1: preloads run in the background and never hold up start-up. */
	if (preload_start(&srv.conns, cfg.preload, cfg.n_preload) < 0)
		log_err("preload: out of memory");
	ev_run(loop, 0);	/* until server_check_idle breaks it after a stop */

	r = (int)server_left_stuck(&srv);
	if (r) {
		/* Threads stuck in the kernel cannot be joined, nor the memory they use
		 * freed: leave them to the kernel, which ends them when their calls
		 * return. No atexit handlers either (a leak checker would wait on them). */
		log_notice("stopped, leaving %d calls stuck in the kernel", r);
		_exit(0);
	}
	log_notice("stopped");
	ev_signal_stop(loop, &sigterm);
	ev_signal_stop(loop, &sigint);
	ev_signal_stop(loop, &sighup);
	server_deinit(&srv);
	ev_loop_destroy(loop);
	config_deinit(&cfg);
	return 0;
}
