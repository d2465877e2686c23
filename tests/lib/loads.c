/*
 * loads.c: load-and-check helpers over libdmaload (see loads.h).
 */
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "loads.h"

int lc_start(struct dmaload *dl, const char *path, int fd,
	     const struct dmaload_opts *opts, uint64_t *id)
{
	if (path)
		return dmaload_load_path(dl, path, opts, id);
	return dmaload_load_fd(dl, fd, opts, id);
}

const char *lc_event_str(const struct dmaload_event *ev)
{
	static __thread char s[1200];

	switch (ev->type) {
	case DMALOAD_EV_DONE:
		snprintf(s, sizeof(s), "DONE size %llu buf_size %llu method %s",
			 (unsigned long long)ev->size, (unsigned long long)ev->buf_size,
			 dl_method_name(ev->method));
		break;
	case DMALOAD_EV_ERROR:
		snprintf(s, sizeof(s), "ERROR %d (%s): \"%s\"", ev->err, strerror(ev->err),
			 ev->message);
		break;
	case DMALOAD_EV_OK:
		snprintf(s, sizeof(s), "OK");
		break;
	default:
		snprintf(s, sizeof(s), "event type %d", (int)ev->type);
		break;
	}
	return s;
}

bool lc_check_buf_size(const struct dmaload_event *ev, uint64_t len)
{
	struct stat st;
	bool ok = true;

	if (!CHECKF(fstat(ev->fd, &st) == 0, "fstat of the buffer: %m"))
		return false;
	ok &= CHECKF((uint64_t)st.st_size == ev->buf_size, "buffer is %lld bytes, DONE "
		     "says %llu", (long long)st.st_size, (unsigned long long)ev->buf_size);
	if (!(ev->done_flags & DL_DONE_HUGETLB))
		return ok & CHECK_U64(ev->buf_size, ==, len);
	/* huge pages: whole huge pages, less than one of them past the data */
	ok &= CHECKF(ev->buf_size >= len && ev->buf_size % st.st_blksize == 0 &&
		     ev->buf_size - len < (uint64_t)st.st_blksize,
		     "hugetlb buffer of %llu bytes for %llu bytes of data (huge page %ld)",
		     (unsigned long long)ev->buf_size, (unsigned long long)len,
		     (long)st.st_blksize);
	return ok;
}

bool lc_check_done(struct dmaload_event *ev, uint64_t len, uint32_t seed, uint64_t off,
		   uint8_t want_method)
{
	bool ok = true;

	if (!CHECKF(ev->type == DMALOAD_EV_DONE, "expected DONE, got %s", lc_event_str(ev)))
		return false;
	ok &= CHECK_U64(ev->size, ==, len);
	ok &= lc_check_buf_size(ev, len);
	ok &= CHECK_INT(ev->target, ==, DL_TARGET_MEMFD);
	ok &= CHECKF(ev->method == DL_METHOD_DIRECT || ev->method == DL_METHOD_BUFFERED ||
		     ev->method == DL_METHOD_CFR, "DONE method %u", ev->method);
	if (want_method != DL_METHOD_AUTO)
		ok &= CHECKF(ev->method == want_method,
			     "DONE method %s (reason %s), expected %s",
			     dl_method_name(ev->method), dl_reason_name(ev->reason),
			     dl_method_name(want_method));
	ok &= CHECK_BUF(ev->fd, len, seed, off);
	if (ev->fd >= 0)
		close(ev->fd);
	ev->fd = -1;
	return ok;
}

/* Starts a load and waits for its final event into *ev. False (with the failure
 * recorded) if it could not be sent or the connection broke. */
static bool lc_run(struct dmaload *dl, const char *path, int fd,
		   const struct dmaload_opts *opts, struct dmaload_event *ev, uint64_t *id)
{
	int r;

	memset(ev, 0, sizeof(*ev));
	ev->fd = -1;
	r = lc_start(dl, path, fd, opts, id);
	if (!CHECKF(r == 0, "starting the load: %s", strerror(-r)))
		return false;
	r = dmaload_wait(dl, *id, ev, NULL, NULL);
	return CHECKF(r == 0, "dmaload_wait: %s", strerror(-r));
}

bool lc_load_verify(struct dmaload *dl, const char *path, int fd,
		    const struct dmaload_opts *opts, uint64_t len, uint32_t seed,
		    uint8_t want_method, struct dmaload_event *evp)
{
	struct dmaload_event e, *ev = evp ? evp : &e;
	uint64_t id = 0;

	if (!lc_run(dl, path, fd, opts, ev, &id))
		return false;
	CHECK_U64(ev->id, ==, id);
	return lc_check_done(ev, len, seed, opts ? opts->offset : 0, want_method);
}

bool lc_load_error(struct dmaload *dl, const char *path, int fd,
		   const struct dmaload_opts *opts, const int *errs, int n,
		   struct dmaload_event *evp)
{
	struct dmaload_event e, *ev = evp ? evp : &e;
	char want[128] = "";
	uint64_t id = 0;
	bool match = false;

	if (!lc_run(dl, path, fd, opts, ev, &id))
		return false;
	for (int i = 0; i < n; i++) {
		size_t l = strlen(want);

		snprintf(want + l, sizeof(want) - l, "%s%s", i ? " or " : "",
			 strerrorname_np(errs[i]) ? strerrorname_np(errs[i]) : "?");
		if (ev->type == DMALOAD_EV_ERROR && ev->err == errs[i])
			match = true;
	}
	if (ev->type == DMALOAD_EV_DONE && ev->fd >= 0) {
		close(ev->fd);
		ev->fd = -1;
	}
	if (!CHECKF(match, "expected ERROR %s, got %s", want, lc_event_str(ev)))
		return false;
	return CHECKF(ev->message[0] != '\0', "ERROR %d has an empty message", ev->err);
}

struct dmaload *lc_connect(const struct test_daemon *d, const char *name)
{
	struct dmaload *dl = NULL;
	int r = dmaload_connect(&dl, d->sock, name);

	if (!CHECKF(r == 0, "dmaload_connect(%s): %s", d->sock, strerror(-r)))
		return NULL;
	return dl;
}

struct dmaload *lc_connect_as(uid_t uid, gid_t extra, const char *sock, const char *name,
			      char *msg, size_t len)
{
	struct dmaload *dl = NULL;
	int r;

	if (child_drop(uid, extra, msg, len) < 0)
		return NULL;
	r = dmaload_connect(&dl, sock, name);
	if (r < 0) {
		snprintf(msg, len, "connect as uid %u: %s", (unsigned)uid, strerror(-r));
		return NULL;
	}
	return dl;
}

int lc_status_lists(struct dmaload *dl, const char *path)
{
	struct dmaload_status st;
	int r = dmaload_status(dl, &st), found = 0;

	if (r < 0)
		return r;
	for (size_t i = 0; i < st.n_loads; i++)
		if (!strcmp(st.loads[i].name, path))
			found = 1;
	dmaload_status_free(&st);
	return found;
}
