/*
 * memory.c: memory admission (see memory.h).
 *
 * The room a load may use is the smaller of the host's MemAvailable and what the
 * daemon's cgroup has left (limit minus usage), minus memory_reserve and minus the
 * buffers admitted but not filled yet (their pages are not allocated, so neither
 * count shows them). A load is admitted if its buffer fits that room. The numbers
 * are a few small reads of procfs and cgroupfs (about 20 us, on the worker that then
 * makes the buffer): sampled at most every MEMORY_SAMPLE_MS, and read anew before any
 * refusal (memory.h).
 *
 * What this cannot see: other processes allocating between the check and the fill,
 * and memory the kernel could reclaim beyond MemAvailable's estimate. The reserve is
 * for those.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "memory.h"
#include "util.h"

/* $DMALOAD_MEMORY_ROOT + @path into @out. */
static void rooted(char *out, size_t len, const char *path)
{
	const char *root = getenv("DMALOAD_MEMORY_ROOT");

	snprintf(out, len, "%s%s", root ? root : "", path);
}

/* The first number in file @path (a "max" reads as no limit: UINT64_MAX), or 0 with
 * false when it cannot be read. */
static bool read_u64(const char *path, uint64_t *out)
{
	char buf[64];
	FILE *f = fopen(path, "re");
	bool ok;

	if (!f)
		return false;
	ok = fgets(buf, sizeof(buf), f) != NULL;
	fclose(f);
	if (!ok)
		return false;
	*out = strncmp(buf, "max", 3) == 0 ? UINT64_MAX : strtoull(buf, NULL, 10);
	return true;
}

static uint64_t mem_available(void)
{
	char path[600], line[128];
	unsigned long long kb = 0;
	FILE *f;

	rooted(path, sizeof(path), "/proc/meminfo");
	f = fopen(path, "re");
	if (!f)
		return UINT64_MAX;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "MemAvailable: %llu kB", &kb) == 1)
			break;
	fclose(f);
	return kb ? (uint64_t)kb << 10 : UINT64_MAX;
}

/*
 * Where the cgroup hierarchy of @fstype ("cgroup2", or "cgroup" with the memory
 * controller among its options) is mounted, from /proc/self/mountinfo. Returns false
 * if it is not.
 */
static bool find_mount(bool v2, char *out, size_t len)
{
	char path[600], line[1024];
	bool found = false;
	FILE *f;

	rooted(path, sizeof(path), "/proc/self/mountinfo");
	f = fopen(path, "re");
	if (!f)
		return false;
	while (!found && fgets(line, sizeof(line), f)) {
		char mnt[512], fstype[64], opts[512];
		const char *sep = strstr(line, " - ");

		if (!sep || sscanf(line, "%*s %*s %*s %*s %511s", mnt) != 1 ||
		    sscanf(sep + 3, "%63s %*s %511s", fstype, opts) != 2)
			continue;
		if (v2 ? strcmp(fstype, "cgroup2") == 0 :
			 strcmp(fstype, "cgroup") == 0 &&
			 (strstr(opts, ",memory") || !strncmp(opts, "memory", 6))) {
			snprintf(out, len, "%s", mnt);
			found = true;
		}
	}
	fclose(f);
	return found;
}

void memory_init(struct memory *m, uint64_t reserve)
{
	char path[600], line[1024], mnt[512] = "", v1[512] = "", v2[512] = "";
	uint64_t limit;
	FILE *f;

	memset(m, 0, sizeof(*m));
	m->reserve = reserve;
	m->lock = (pthread_mutex_t)PTHREAD_MUTEX_INITIALIZER;
	rooted(path, sizeof(path), "/proc/self/cgroup");
	f = fopen(path, "re");
	while (f && fgets(line, sizeof(line), f)) {
		char *p = strchr(line, ':'), *q = p ? strchr(p + 1, ':') : NULL;

		if (!q)
			continue;
		q[strcspn(q, "\n")] = '\0';
		if (!strncmp(line, "0::", 3))
			snprintf(v2, sizeof(v2), "%s", q + 1);
		else if (strstr(p, ":memory:") == p || strstr(p, ",memory:") ||
			 strstr(p, ":memory,"))
			snprintf(v1, sizeof(v1), "%s", q + 1);
	}
	if (f)
		fclose(f);
	/* v1's memory controller when the daemon is in one; else v2's files. */
	if (v1[0] && find_mount(false, mnt, sizeof(mnt))) {
		rooted(path, sizeof(path), mnt);
		snprintf(m->limit_path, sizeof(m->limit_path), "%s%s/memory.limit_in_bytes",
			 path, strcmp(v1, "/") ? v1 : "");
		snprintf(m->usage_path, sizeof(m->usage_path), "%s%s/memory.usage_in_bytes",
			 path, strcmp(v1, "/") ? v1 : "");
	} else if (v2[0] && find_mount(true, mnt, sizeof(mnt))) {
		rooted(path, sizeof(path), mnt);
		snprintf(m->limit_path, sizeof(m->limit_path), "%s%s/memory.max", path,
			 strcmp(v2, "/") ? v2 : "");
		snprintf(m->usage_path, sizeof(m->usage_path), "%s%s/memory.current", path,
			 strcmp(v2, "/") ? v2 : "");
	}
	if (m->limit_path[0] && read_u64(m->limit_path, &limit) && limit < (1ull << 60))
		log_info("memory: the cgroup's limit is %llu MiB (%s); loads that do not fit "
			 "what is left get ENOMEM", (unsigned long long)(limit >> 20),
			 m->limit_path);
	else if (m->limit_path[0] && !read_u64(m->limit_path, &limit))
		m->limit_path[0] = m->usage_path[0] = '\0';	/* not readable: none */
}

/* Reads the kernel's numbers anew. Under m->lock. */
static void sample(struct memory *m, uint64_t now)
{
	m->s_avail = mem_available();
	m->s_limit = UINT64_MAX;
	m->s_usage = 0;
	m->s_cgroup = m->limit_path[0] && read_u64(m->limit_path, &m->s_limit) &&
		      m->s_limit < (1ull << 60) && read_u64(m->usage_path, &m->s_usage);
	m->s_inflight = __atomic_load_n(&m->inflight, __ATOMIC_RELAXED);
	m->s_since = 0;
	m->s_ns = now;
}

/* The room the sample leaves, less what was in flight then and admitted since. */
static uint64_t sample_room(const struct memory *m)
{
	uint64_t room = m->s_avail, taken = m->s_inflight + m->s_since;

	if (m->s_cgroup && (m->s_limit > m->s_usage ? m->s_limit - m->s_usage : 0) < room)
		room = m->s_limit > m->s_usage ? m->s_limit - m->s_usage : 0;
	room = room > m->reserve ? room - m->reserve : 0;
	return room > taken ? room - taken : 0;
}

int memory_admit(struct memory *m, uint64_t bytes, char *msg, size_t len)
{
	uint64_t now = now_ns(), avail, limit, usage, inflight;
	bool cgroup;

	pthread_mutex_lock(&m->lock);
	if (!m->s_ns || now - m->s_ns >= MEMORY_SAMPLE_MS * 1000000ull)
		sample(m, now);
	/* A load the sample cannot fit is checked against fresh numbers: memory
	 * freed since the sample is not credited until then. */
	if (bytes > sample_room(m) && m->s_ns != now)
		sample(m, now);
	if (bytes <= sample_room(m)) {
		m->s_since += bytes;
		__atomic_add_fetch(&m->inflight, bytes, __ATOMIC_RELAXED);
		pthread_mutex_unlock(&m->lock);
		return 0;
	}
	avail = m->s_avail;
	limit = m->s_limit;
	usage = m->s_usage;
	cgroup = m->s_cgroup;
	inflight = m->s_inflight;
	pthread_mutex_unlock(&m->lock);
	if (cgroup)
		snprintf(msg, len, "not enough memory for a %llu-byte buffer: the daemon's "
			 "cgroup has %llu of %llu bytes in use, MemAvailable is %llu, %llu "
			 "are being loaded and %llu kept free (memory_reserve)",
			 (unsigned long long)bytes, (unsigned long long)usage,
			 (unsigned long long)limit, (unsigned long long)avail,
			 (unsigned long long)inflight, (unsigned long long)m->reserve);
	else
		snprintf(msg, len, "not enough memory for a %llu-byte buffer: MemAvailable is "
			 "%llu, %llu are being loaded and %llu kept free (memory_reserve)",
			 (unsigned long long)bytes, (unsigned long long)avail,
			 (unsigned long long)inflight, (unsigned long long)m->reserve);
	return -ENOMEM;
}

void memory_release(struct memory *m, uint64_t bytes)
{
	__atomic_sub_fetch(&m->inflight, bytes, __ATOMIC_RELAXED);
}
