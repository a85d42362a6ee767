/* How much memory a heap walk may take: what the machine has available
 * (MemAvailable), when xprof runs in a memory cgroup with a limit (a
 * container, a systemd unit), what is left under that limit, and under
 * an address-space limit (ulimit -v), what is left of it.  A walk that
 * would not fit is refused before the target is stopped: being killed by
 * the OOM killer halfway helps nobody.
 */
#define _GNU_SOURCE
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "heapwalk/heapwalk.h"

/* One number from a "key value" file (/proc/meminfo, memory.stat), or -1. */
static int64_t keyed_value(const char *path, const char *key)
{
	FILE *f = fopen(path, "re");
	char line[256];
	size_t klen = strlen(key);
	int64_t v = -1;

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (strncmp(line, key, klen) == 0 && (line[klen] == ' ' || line[klen] == ':')) {
			v = strtoll(line + klen + 1 + strspn(line + klen + 1, " \t"), NULL, 10);
			break;
		}
	fclose(f);
	return v;
}

/* A file holding one number ("max" counts as none), or -1. */
static int64_t file_value(const char *path)
{
	FILE *f = fopen(path, "re");
	char buf[64];
	int64_t v = -1;

	if (!f)
		return -1;
	if (fgets(buf, sizeof(buf), f) && strncmp(buf, "max", 3) != 0)
		v = strtoll(buf, NULL, 10);
	fclose(f);
	return v;
}

/* Left under the memory limit of xprof's own cgroup and its parents (v2),
 * or its hierarchical limit (v1); -1 when there is no limit. */
static int64_t cgroup_room(void)
{
	FILE *f = fopen("/proc/self/cgroup", "re");
	char line[4096], dir[4600], path[4700];
	int64_t room = -1;

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f)) {
		char *rel = strchr(line, ':'), *ctl;
		if (!rel || !(rel = strchr(ctl = rel + 1, ':')))
			continue;
		*rel++ = '\0';
		rel[strcspn(rel, "\n")] = '\0';
		if (strstr(rel, "..")) /* not ours to follow */
			continue;
		if (ctl[0] == '\0') { /* v2: every level's memory.max counts */
			snprintf(dir, sizeof(dir), "/sys/fs/cgroup%s", strcmp(rel, "/") ? rel : "");
			for (;;) {
				int64_t max, cur, file;
				char *slash;
				snprintf(path, sizeof(path), "%s/memory.max", dir);
				max = file_value(path);
				snprintf(path, sizeof(path), "%s/memory.current", dir);
				cur = file_value(path);
				snprintf(path, sizeof(path), "%s/memory.stat", dir);
				file = keyed_value(path, "file"); /* page cache: reclaimable */
				if (max >= 0 && cur >= 0) {
					int64_t r = max - cur + (file > 0 ? file : 0);
					if (room < 0 || r < room)
						room = r;
				}
				slash = strrchr(dir, '/');
				if (!slash || slash == dir || strcmp(dir, "/sys/fs/cgroup") == 0)
					break;
				*slash = '\0';
			}
		} else if (strstr(ctl, "memory")) { /* v1 */
			int64_t limit, usage, cache;
			snprintf(dir, sizeof(dir), "/sys/fs/cgroup/memory%s", strcmp(rel, "/") ? rel : "");
			snprintf(path, sizeof(path), "%s/memory.stat", dir);
			limit = keyed_value(path, "hierarchical_memory_limit");
			cache = keyed_value(path, "total_cache");
			snprintf(path, sizeof(path), "%s/memory.usage_in_bytes", dir);
			usage = file_value(path);
			/* "no limit" is a huge number near INT64_MAX */
			if (limit > 0 && limit < (INT64_C(1) << 60) && usage >= 0) {
				int64_t r = limit - usage + (cache > 0 ? cache : 0);
				if (room < 0 || r < room)
					room = r;
			}
		}
	}
	fclose(f);
	return room;
}

/* Left of xprof's address space under RLIMIT_AS, or -1 when unlimited. */
static int64_t address_space_room(void)
{
	struct rlimit rl;
	int64_t kib;

	if (getrlimit(RLIMIT_AS, &rl) < 0 || rl.rlim_cur == RLIM_INFINITY)
		return -1;
	kib = keyed_value("/proc/self/status", "VmSize");
	if (kib < 0)
		return -1;
	return (uint64_t)kib * 1024 < rl.rlim_cur ? (int64_t)(rl.rlim_cur - (uint64_t)kib * 1024) : 0;
}

uint64_t xp_heap_memory_available(void)
{
	int64_t kib = keyed_value("/proc/meminfo", "MemAvailable");
	int64_t room = cgroup_room(), as = address_space_room();
	uint64_t avail = kib >= 0 ? (uint64_t)kib * 1024 : UINT64_MAX;

	if (room >= 0 && (uint64_t)room < avail)
		avail = (uint64_t)room;
	if (as >= 0 && (uint64_t)as < avail)
		avail = (uint64_t)as;
	return avail;
}
