/* collect/tnames.h: thread names for profile labels, read once per thread
 * from /proc/PID/task/TID/comm and kept, so a thread that exited before
 * the profile is written keeps the name it had when first seen.
 */
#ifndef XPROF_COLLECT_TNAMES_H
#define XPROF_COLLECT_TNAMES_H

#include <stddef.h>
#include <sys/types.h>

struct xp_tname {
	pid_t tid;
	char name[64];
};

struct xp_tnames {
	struct xp_tname *v;
	size_t n, alloc;
};

/* Thread TID's name now, escaped for labels and messages; "?" when the
 * thread is gone or the name is empty. */
void xp_thread_comm(pid_t pid, pid_t tid, char *buf, size_t len);

/* TID's name, read at the first call for TID (xp_thread_comm) and kept;
 * "?" also when memory runs out.  The string lives until xp_tnames_free. */
const char *xp_tnames_get(struct xp_tnames *t, pid_t pid, pid_t tid);
void xp_tnames_free(struct xp_tnames *t);

#endif
