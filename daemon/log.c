/*
 * log.c: the daemon's log. Lines go to stderr: under systemd (JOURNAL_STREAM set) with
 * a "<N>" priority prefix that journald turns into the entry's priority, otherwise
 * with a wall-clock timestamp and the level's name. The level is process-wide.
 *
 * Lines carry what clients sent (paths, names): every control byte (below 0x20, and
 * 0x7f) is written escaped, as \n, \t, \r or \xNN, and a backslash as \\, so one call
 * is always one line and a client cannot start a line of its own (a forged "<0>"
 * would be an emergency to journald) or send escape sequences to a terminal. Every
 * log helper goes through log_msg(), so all of them inherit this.
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

/* @in with its control bytes and backslashes escaped, into @out (@len bytes). */
static void escape(const char *in, char *out, size_t len)
{
	static const char hex[] = "0123456789abcdef";
	size_t n = 0;

	for (const unsigned char *p = (const unsigned char *)in; *p && n + 5 < len; p++) {
		unsigned char ch = *p;

		if (ch >= 0x20 && ch != 0x7f && ch != '\\') {
			out[n++] = (char)ch;
			continue;
		}
		out[n++] = '\\';
		switch (ch) {
		case '\\': out[n++] = '\\'; break;
		case '\n': out[n++] = 'n'; break;
		case '\t': out[n++] = 't'; break;
		case '\r': out[n++] = 'r'; break;
		default:
			out[n++] = 'x';
			out[n++] = hex[ch >> 4];
			out[n++] = hex[ch & 15];
		}
	}
	out[n] = '\0';
}

void log_msg(enum log_level lvl, const char *fmt, ...)
{
	char raw[1024], line[4 * sizeof(raw)];
	va_list ap;

	if (lvl > max_level)
		return;
	if (to_journal < 0)
		to_journal = getenv("JOURNAL_STREAM") != NULL;
	va_start(ap, fmt);
	vsnprintf(raw, sizeof(raw), fmt, ap);
	va_end(ap);
	escape(raw, line, sizeof(line));

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
