/* collect/tnames.c: see tnames.h. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "collect/tnames.h"
#include "symbolize/symbolize.h"

void xp_thread_comm(pid_t pid, pid_t tid, char *buf, size_t len)
{
	char path[96], raw[64];
	ssize_t n = -1;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/task/%d/comm", (int)pid, (int)tid);
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) >= 0) {
		n = read(fd, raw, sizeof(raw) - 1);
		close(fd);
	}
	raw[n > 0 ? n : 0] = '\0';
	raw[strcspn(raw, "\n")] = '\0';
	if (raw[0])
		xp_escape(raw, buf, len);
	else
		snprintf(buf, len, "?");
}

const char *xp_tnames_get(struct xp_tnames *t, pid_t pid, pid_t tid)
{
	struct xp_tname *e;
	size_t i;

	for (i = 0; i < t->n; i++)
		if (t->v[i].tid == tid)
			return t->v[i].name;
	if (t->n == t->alloc) {
		size_t na = t->alloc ? t->alloc * 2 : 64;
		struct xp_tname *v = realloc(t->v, na * sizeof(*v));

		if (!v)
			return "?";
		t->v = v;
		t->alloc = na;
	}
	e = &t->v[t->n++];
	e->tid = tid;
	xp_thread_comm(pid, tid, e->name, sizeof(e->name));
	return e->name;
}

void xp_tnames_free(struct xp_tnames *t)
{
	free(t->v);
	*t = (struct xp_tnames){ 0 };
}
