/*
 * log.c: the daemon's log. Lines go to stderr: under systemd (JOURNAL_STREAM set) with
 * a "<N>" priority prefix that journald turns into the entry's priority, otherwise
 * with a wall-clock timestamp and the level's name. The level is process-wide.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"

static enum log_level max_level = LOG_LVL_INFO;
static int to_journal = -1;

static const char *const level_names[] = {
	[LOG_LVL_ERR] = "error",
	[LOG_LVL_WARNING] = "warning",
	[LOG_LVL_NOTICE] = "notice",
	[LOG_LVL_INFO] = "info",
	[LOG_LVL_DEBUG] = "debug",
};

void log_setup(enum log_level max)
{
	max_level = max;
	to_journal = getenv("JOURNAL_STREAM") != NULL;
}

enum log_level log_get_level(void)
{
	return max_level;
}

int log_parse_level(const char *s, enum log_level *out)
{
	for (int l = LOG_LVL_ERR; l <= LOG_LVL_DEBUG; l++) {
		if (strcmp(s, level_names[l]) == 0) {
			*out = (enum log_level)l;
			return 0;
		}
	}
	return -EINVAL;
}

void log_msg(enum log_level lvl, const char *fmt, ...)
{
	char line[1024];
	va_list ap;

	if (lvl > max_level)
		return;
	if (to_journal < 0)
		to_journal = getenv("JOURNAL_STREAM") != NULL;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);

	/* One fprintf per line, so lines from worker threads never interleave. */
	if (to_journal) {
		fprintf(stderr, "<%d>%s\n", lvl, line);
	} else {
		struct timespec ts;
		struct tm tm;
		char when[32];

		clock_gettime(CLOCK_REALTIME, &ts);
		localtime_r(&ts.tv_sec, &tm);
		strftime(when, sizeof(when), "%H:%M:%S", &tm);
		fprintf(stderr, "%s.%03ld dmaloadd %s: %s\n", when, ts.tv_nsec / 1000000,
			level_names[lvl], line);
	}
}
