/*
 * test-logs.c: what clients send never shapes the daemon's log.
 *
 * A path with a newline followed by "<0>", an ESC sequence, a backslash and a DEL is
 * loaded (once as a file that exists, once as one that does not) from a client with
 * such a HELLO name too, against a daemon in each log format: plain, and journald's
 * "<N>" prefixes (JOURNAL_STREAM set). Every line of the log must start as the
 * daemon writes lines (a timestamp, or "<N>" with N the level of a real line), no
 * byte below 0x20 or 0x7f may appear inside a line, and the escaped path must be
 * there, exactly as the escaping writes it.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../lib/check.h"
#include "../lib/harness.h"
#include "../lib/loads.h"

#define SUITE "logs"

/* A name with every kind of byte the log must not pass through raw. */
#define EVIL "evil\n<0>forged emergency\x1b[31mred\\back\x7f"
#define EVIL_ESCAPED "evil\\n<0>forged emergency\\x1b[31mred\\\\back\\x7f"

static bool line_ok(const char *line, bool journal, char *why, size_t len)
{
	const unsigned char *p;

	if (journal) {
		if (line[0] != '<' || line[1] < '0' || line[1] > '7' || line[2] != '>' ||
		    !strncmp(line + 3, "forged", 6)) {
			snprintf(why, len, "a line that is not the daemon's: %.80s", line);
			return false;
		}
	} else if (!(line[0] >= '0' && line[0] <= '9' && line[2] == ':')) {
		snprintf(why, len, "a line without the daemon's timestamp: %.80s", line);
		return false;
	}
	for (p = (const unsigned char *)line; *p; p++)
		if ((*p < 0x20 && *p != '\n') || *p == 0x7f) {
			snprintf(why, len, "raw byte 0x%02x inside a line: %.80s", *p, line);
			return false;
		}
	return true;
}

static void evil_names(bool journal)
{
	struct test_daemon d;
	char why[512], path[PATH_MAX], missing[PATH_MAX], line[8192];
	struct dmaload *dl = NULL;
	struct dmaload_event ev;
	unsigned lines = 0, found = 0;
	FILE *f;
	int r;

	if (journal)
		setenv("JOURNAL_STREAM", "0:0", 1);
	r = daemon_start(&d, journal ? "logs-journal" : "logs-plain", NULL, why, sizeof(why));
	unsetenv("JOURNAL_STREAM");
	if (!CHECKF(r == 0, "%s", why))
		return;
	snprintf(path, sizeof(path), "%s/" EVIL, d.dir);
	snprintf(missing, sizeof(missing), "%s/missing-" EVIL, d.dir);
	r = file_make(path, 4096, 1, 0644);
	if (!CHECKF(r == 0, "file_make: %s", strerror(-r)))
		goto out;
	r = dmaload_connect(&dl, d.sock, "evil\n<0>name\x1b");
	if (!CHECKF(r == 0, "connect: %s", strerror(-r)))
		goto out;
	if (CHECK_OK(dmaload_load_path_sync(dl, path, NULL, &ev)))
		close(ev.fd);
	CHECK_ERR(dmaload_load_path_sync(dl, missing, NULL, &ev), -ENOENT);
	dmaload_close(dl);
	dl = NULL;
	CHECK(daemon_log_wait(&d, "missing-evil", 0, 5000));
	f = fopen(d.log, "re");
	if (!CHECKF(f, "%s: %s", d.log, strerror(errno)))
		goto out;
	while (fgets(line, sizeof(line), f)) {
		lines++;
		if (!line_ok(line, journal, why, sizeof(why))) {
			CHECKF(false, "%s", why);
			break;
		}
		found += strstr(line, EVIL_ESCAPED) != NULL;
	}
	fclose(f);
	CHECKF(found >= 2, "the escaped path is on %u of %u lines, want 2 or more", found,
	       lines);
out:
	if (dl)
		dmaload_close(dl);
	r = daemon_stop(&d);
	CHECKF(r == 0, "exit status %d", r);
	daemon_cleanup(&d);
}

int main(void)
{
	check_init(SUITE);
	CASE(evil_names(false), "plain log: a path and a name with newline, <0>, ESC, DEL "
	     "and backslash are escaped; every line is the daemon's");
	CASE(evil_names(true), "journald log: the same; no forged <0> line");
	return check_finish();
}
