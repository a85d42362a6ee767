/* Dynamic perf_event_open PMUs (uprobe, kprobe): the type number and the
 * format bits the kernel publishes in sysfs.  No tracefs needed. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attach/attach.h"
#include "attach/proc_internal.h"

int xp_pmu_type(const char *pmu)
{
	char path[128], buf[32], *end;
	long v;
	int n;

	snprintf(path, sizeof(path), "/sys/bus/event_source/devices/%s/type", pmu);
	if ((n = xp_read_small_file(path, buf, sizeof(buf))) < 0)
		return n;
	v = strtol(buf, &end, 10);
	if (end == buf || v < 0 || v > 0x7fffffff)
		return -EINVAL;
	return (int)v;
}

int xp_pmu_config_bit(const char *pmu, const char *format)
{
	char path[160], buf[32], *end;
	long v;
	int n;

	snprintf(path, sizeof(path), "/sys/bus/event_source/devices/%s/format/%s", pmu, format);
	if ((n = xp_read_small_file(path, buf, sizeof(buf))) < 0)
		return n;
	/* "config:0": a single bit of attr.config */
	if (strncmp(buf, "config:", 7) != 0)
		return -EINVAL;
	v = strtol(buf + 7, &end, 10);
	if (end == buf + 7 || (*end && *end != '\n') || v < 0 || v > 63)
		return -EINVAL;
	return (int)v;
}
