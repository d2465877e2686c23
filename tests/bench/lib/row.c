/*
 * row.c: the shared part of one benchmark row (see row.h): errors, time, the files
 * and their check, the huge page pool, the common options and the output line.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "row.h"

/* ---- errors and time ----------------------------------------------------------- */

char row_error[512];

int row_fail(const char *fmt, ...)
{
	va_list ap;

	if (row_error[0])
		return -1;
	va_start(ap, fmt);
	vsnprintf(row_error, sizeof(row_error), fmt, ap);
	va_end(ap);
	return -1;
}

const char *errtext(int err)
{
	static char buf[128];
	const char *name = strerrorname_np(err);

	snprintf(buf, sizeof(buf), "%s (%s)", name ? name : "?", strerror(err));
	return buf;
}


uint64_t cpu_self_ns(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return (uint64_t)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000000 +
	       (uint64_t)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) * 1000;
}

/* ---- the files ----------------------------------------------------------------- */

struct bfile *files;
int n_files;
uint64_t total_bytes;

int files_stat(char **paths, int n)
{
	struct stat st;

	files = calloc(n, sizeof(*files));
	if (!files)
		return row_fail("out of memory");
	for (int i = 0; i < n; i++) {
		if (stat(paths[i], &st) < 0)
			return row_fail("%s: %s", paths[i], errtext(errno));
		if (!S_ISREG(st.st_mode) || st.st_size == 0)
			return row_fail("%s: not a non-empty regular file", paths[i]);
		files[i].path = paths[i];
		files[i].size = (uint64_t)st.st_size;
		total_bytes += files[i].size;
	}
	n_files = n;
	return 0;
}

int files_cold(void)
{
	int r = drop_caches();

	if (r < 0)
		return row_fail("drop the page cache: /proc/sys/vm/drop_caches: %s (needs root)",
				errtext(-r));
	return 0;
}

/* Reads every file once through the page cache, so a --hot run finds it all there. */
static int files_warm(void)
{
	static char scratch[1 << 20];

	for (int i = 0; i < n_files; i++) {
		int fd = open(files[i].path, O_RDONLY | O_CLOEXEC);
		ssize_t n;

		if (fd < 0)
			return row_fail("%s: %s", files[i].path, errtext(errno));
		while ((n = read(fd, scratch, sizeof(scratch))) > 0)
			;
		close(fd);
		if (n < 0)
			return row_fail("%s: %s", files[i].path, errtext(errno));
	}
	return 0;
}

int run_prepare(bool hot)
{
	return hot ? files_warm() : files_cold();
}

int buf_check(const uint8_t *buf, int i, const char *what)
{
	uint64_t size = files[i].size, spots[SAMPLES + 2], lens[SAMPLES + 2];
	uint8_t want[4096];
	int fd, n = 0;

	spots[n] = 0, lens[n++] = size < 4096 ? size : 4096;
	spots[n] = size > 4096 ? size - 4096 : 0, lens[n++] = size < 4096 ? size : 4096;
	for (int k = 1; k <= SAMPLES; k++) {
		uint64_t at = size / (SAMPLES + 1) * k;

		spots[n] = at, lens[n++] = at + 512 <= size ? 512 : size - at;
	}
	fd = open(files[i].path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return row_fail("check %s: %s", files[i].path, errtext(errno));
	for (int k = 0; k < n; k++) {
		if (pread(fd, want, lens[k], (off_t)spots[k]) != (ssize_t)lens[k]) {
			close(fd);
			return row_fail("check %s: short read of the file", files[i].path);
		}
		if (memcmp(buf + spots[k], want, lens[k]) != 0) {
			close(fd);
			return row_fail("%s: buffer of %s differs from the file at bytes %" PRIu64
					"..%" PRIu64, what, files[i].path, spots[k],
					spots[k] + lens[k]);
		}
	}
	close(fd);
	return 0;
}

/* ---- huge pages ---------------------------------------------------------------- */

uint64_t huge_page_size(void)
{
	long kb = meminfo_value("Hugepagesize");

	return kb > 0 ? (uint64_t)kb * KiB : 2 * MiB;
}

/*
 * Waits up to 30 s for the huge page pool to have room for every file, each rounded
 * up to whole huge pages. The pool is the machine's: tests running at the same time
 * may hold part of it for a while, and a row that lost that race would show an
 * allocation failure (raw) or a silent fallback to 4 KiB pages (the daemon), not the
 * method.
 */
int hugetlb_wait(void)
{
	uint64_t unit = huge_page_size(), need = 0;
	long free_pages = 0;

	for (int i = 0; i < n_files; i++)
		need += (files[i].size + unit - 1) / unit;
	for (int t = 0; t < 300; t++) {
		free_pages = meminfo_value("HugePages_Free");
		if (free_pages >= 0 && (uint64_t)free_pages >= need)
			return 0;
		usleep(100000);
	}
	return row_fail("huge page pool: %ld free after 30 s, %" PRIu64 " needed (nr_hugepages "
			"%ld; another process holds the rest?)", free_pages, need,
			meminfo_value("HugePages_Total"));
}

/* ---- options, one run's numbers, and the row's --------------------------------- */

void row_opts_init(struct row_opts *o, const char *kind)
{
	*o = (struct row_opts){ .runs = 3, .label = kind };
}

bool row_option(struct row_opts *o, int argc, char **argv, int *a, bool hot_ok)
{
	if (strcmp(argv[*a], "--runs") == 0 && *a + 1 < argc)
		o->runs = atoi(argv[++*a]);
	else if (strcmp(argv[*a], "--label") == 0 && *a + 1 < argc)
		o->label = argv[++*a];
	else if (hot_ok && strcmp(argv[*a], "--hot") == 0)
		o->hot = true;
	else
		return false;
	return true;
}

void row_init(void)
{
	signal(SIGPIPE, SIG_IGN);
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

/* Prints "\tMEDIAN\tMIN\tMAX" of @v (n values, sorted in place) or "\t-\t-\t-". */
static void print_stat(double *v, int n)
{
	double med;

	if (n == 0 || isnan(v[0])) {
		printf("\t-\t-\t-");
		return;
	}
	qsort(v, n, sizeof(*v), cmp_double);
	med = n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
	printf("\t%.2f\t%.2f\t%.2f", med, v[0], v[n - 1]);
}

/* Tabs and newlines would break the line format. */
static void print_clean(const char *s)
{
	for (; *s; s++)
		putchar(*s == '\t' || *s == '\n' || *s == '\r' ? ' ' : *s);
}

void print_row(const char *label, const struct sample *s, int n, const char *note)
{
	double v[5][64];

	if (row_error[0]) {
		printf("error\t");
		print_clean(label);
		putchar('\t');
		print_clean(row_error);
		putchar('\n');
		return;
	}
	for (int i = 0; i < n; i++) {
		v[0][i] = s[i].creat_ms;
		v[1][i] = s[i].close_ms;
		v[2][i] = s[i].io_ms;
		v[3][i] = s[i].bytes / (s[i].io_ms * 1000.0);
		v[4][i] = s[i].cpu_ms;
	}
	printf("ok\t");
	print_clean(label);
	printf("\t%d\t%" PRIu64, n, s[0].bytes);
	for (int c = 0; c < 5; c++)
		print_stat(v[c], n);
	putchar('\t');
	print_clean(note && *note ? note : "-");
	putchar('\n');
}
