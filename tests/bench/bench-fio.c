/*
 * bench-fio.c: the fio rows of the copy-method benchmark (make bench): fio reads the
 * files with io_uring and O_DIRECT, 4 MiB blocks, 64 in flight, into its own buffers:
 * the disk's limit, for the other rows to be read against (tests/bench/lib/row.h says
 * what a row is and what it measures). The page cache is dropped before each run.
 *
 *   bench-fio [--runs N] [--label TEXT] malloc|shmhuge FILE...
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lib/row.h"

/*
 * One fio run over all the files in one job (so one queue of depth 64 across them,
 * like the other rows). Its own runtime is the io time: its start-up, which allocates
 * 64 x 4 MiB of I/O buffers, is not. CPU is the fio process's, start-up included.
 * @iomem is fio's --iomem: malloc (its default) gives it 4 KiB pages, which on a
 * guest whose every first write to a 4 KiB page is expensive holds fio below the
 * disk; shmhuge gives it huge pages.
 */
static int fio_run(const char *iomem, struct sample *s)
{
	static char names[16 * PATH_MAX];
	char out[65536], *f[16], mem[64];
	char *argv[] = { "fio", "--name=bench", "--ioengine=io_uring", "--direct=1",
			 "--rw=read", "--bs=4M", "--iodepth=64", "--readonly", mem,
			 "--output-format=terse", "--terse-version=3", names, NULL };
	struct rusage ru;
	size_t got = 0, used;
	int p[2], st, nf = 0;
	unsigned long long kib, ms, err;
	pid_t pid;
	ssize_t n;

	snprintf(mem, sizeof(mem), "--iomem=%s", iomem);
	/* --filename=a:b:c */
	used = (size_t)snprintf(names, sizeof(names), "--filename=");
	for (int i = 0; i < n_files; i++) {
		int w = snprintf(names + used, sizeof(names) - used, "%s%s", i ? ":" : "",
				 files[i].path);

		if (w < 0 || (size_t)w >= sizeof(names) - used)
			return row_fail("fio: file list too long");
		used += (size_t)w;
	}
	if (pipe2(p, O_CLOEXEC) < 0)
		return row_fail("pipe2: %s", errtext(errno));
	pid = fork();
	if (pid < 0)
		return row_fail("fork: %s", errtext(errno));
	if (pid == 0) {
		dup2(p[1], 1);
		execvp("fio", argv);
		fprintf(stderr, "bench-fio: exec fio: %s\n", strerror(errno));
		_exit(127);
	}
	close(p[1]);
	while ((n = read(p[0], out + got, sizeof(out) - 1 - got)) > 0)
		got += (size_t)n;
	out[got] = 0;
	close(p[0]);
	if (wait4(pid, &st, 0, &ru) < 0)
		return row_fail("wait for fio: %s", errtext(errno));
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
		return row_fail("fio failed (exit status %d%s); is it installed? tests/deps.sh "
				"installs it", WIFEXITED(st) ? WEXITSTATUS(st) : -1,
				WEXITSTATUS(st) == 127 ? ", not found" : "");
	/* terse v3: 3;fio-3.33;bench;GROUP;ERROR;READ_KIB;READ_KIB/S;IOPS;RUNTIME_MS;... */
	for (char *tok = out, *sp; nf < 16 && (tok = strtok_r(tok, ";", &sp)); tok = NULL)
		f[nf++] = tok;
	if (nf < 9 || strcmp(f[0], "3") != 0 || sscanf(f[4], "%llu", &err) != 1 ||
	    sscanf(f[5], "%llu", &kib) != 1 || sscanf(f[8], "%llu", &ms) != 1)
		return row_fail("fio: cannot parse its terse output");
	if (err)
		return row_fail("fio: error %s", errtext((int)err));
	if (kib * KiB != total_bytes)
		return row_fail("fio read %llu KiB, not the files' %llu", kib,
				(unsigned long long)(total_bytes / KiB));
	s->creat_ms = s->close_ms = NAN;
	s->io_ms = ms ? (double)ms : 0.5;	/* fio counts whole milliseconds */
	s->bytes = kib * KiB;
	s->cpu_ms = (ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1e3 +
		    (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e3;
	return 0;
}

/* ---- main ---------------------------------------------------------------------- */

static void usage(void)
{
	fprintf(stderr, "usage: bench-fio [--runs N] [--label TEXT] malloc|shmhuge FILE...\n");
	exit(2);
}

int main(int argc, char **argv)
{
	struct sample s[64];
	struct row_opts o;
	char note[512] = "";
	int a = 1;

	row_opts_init(&o, "fio");
	for (; a < argc && strncmp(argv[a], "--", 2) == 0; a++)
		if (!row_option(&o, argc, argv, &a, false))
			usage();
	if (argc - a < 2 || o.runs < 1 || o.runs > 64)
		usage();
	row_init();
	if (files_stat(argv + a + 1, argc - a - 1) == 0)
		for (int i = 0; i < o.runs; i++)
			if (files_cold() < 0 || fio_run(argv[a], &s[i]) < 0)
				break;
	snprintf(note, sizeof(note), "--bs=4M --iodepth=64 --iomem=%s", argv[a]);
	print_row(o.label, s, o.runs, note);
	return 0;
}
