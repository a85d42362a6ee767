/* /proc parsing: memory maps, process status, and the diagnosis of why a
 * process cannot be attached.  Everything read here is target-controlled
 * text (comm, paths), so every field is parsed with bounds.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "attach/attach.h"
#include "attach/proc_internal.h"

#define MAPS_MAX 1000000 /* a process with more mappings is refused */

int xp_read_small_file(const char *path, char *buf, size_t len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n, total = 0;

	if (fd < 0)
		return -errno;
	while ((size_t)total < len - 1) {
		n = read(fd, buf + total, len - 1 - total);
		if (n < 0) {
			int err = errno;
			if (err == EINTR)
				continue;
			close(fd);
			return -err;
		}
		if (n == 0)
			break;
		total += n;
	}
	close(fd);
	buf[total] = '\0';
	return (int)total;
}

/* Hex or decimal digits at p into *v; the end of them, or NULL when there
 * are none or more than fit. */
static const char *parse_num(const char *p, int base, unsigned long long *v)
{
	const char *start = p;
	unsigned long long x = 0;

	for (;; p++) {
		unsigned d;
		if (*p >= '0' && *p <= '9')
			d = (unsigned)(*p - '0');
		else if (base == 16 && *p >= 'a' && *p <= 'f')
			d = (unsigned)(*p - 'a' + 10);
		else
			break;
		if (x > (~0ULL - d) / (unsigned)base)
			return NULL;
		x = x * (unsigned)base + d;
	}
	*v = x;
	return p > start ? p : NULL;
}

/* "start-end perms offset major:minor inode   path", as the kernel writes
 * it: read by hand, since sscanf took 5,000 instructions a line (a
 * 1000-thread process has 2,000 lines, read twice per dump). */
static int parse_map_line(char *line, struct xp_map *m)
{
	unsigned long long start, end, offset, inode, major, minor;
	const char *p = line, *perms;

	if (!(p = parse_num(p, 16, &start)) || *p != '-' || !(p = parse_num(p + 1, 16, &end)) || *p != ' ')
		return -EINVAL;
	perms = ++p;
	while (*p && *p != ' ')
		p++;
	if (p - perms < 4 || *p != ' ' || !(p = parse_num(p + 1, 16, &offset)) || *p != ' ' ||
	    !(p = parse_num(p + 1, 16, &major)) || *p != ':' || !(p = parse_num(p + 1, 16, &minor)) ||
	    *p != ' ' || !(p = parse_num(p + 1, 10, &inode)) || (*p && *p != ' '))
		return -EINVAL;
	if (end <= start || major > 0xffffffffULL || minor > 0xffffffffULL)
		return -EINVAL;
	while (*p == ' ')
		p++;
	m->start = start;
	m->end = end;
	m->offset = offset;
	m->inode = inode;
	m->major = (unsigned int)major;
	m->minor = (unsigned int)minor;
	memcpy(m->perms, perms, 4);
	m->perms[4] = '\0';
	m->path = strdup(p);
	return m->path ? 0 : -ENOMEM;
}

static int thread_gone(pid_t pid, pid_t tid)
{
	char path[96], buf[1024], comm[64], state;

	snprintf(path, sizeof(path), "/proc/%d/task/%d/stat", (int)pid, (int)tid);
	return xp_read_small_file(path, buf, sizeof(buf)) < 0 ||
	       xp_parse_stat(buf, comm, sizeof(comm), &state, NULL) < 0 || state == 'Z' || state == 'X';
}

pid_t xp_live_thread(pid_t pid)
{
	char path[64];
	DIR *d;
	struct dirent *e;
	pid_t found = 0;

	if (!thread_gone(pid, pid))
		return pid;
	snprintf(path, sizeof(path), "/proc/%d/task", (int)pid);
	d = opendir(path);
	if (!d)
		return pid;
	while (!found && (e = readdir(d)) != NULL) {
		char *end;
		long tid = strtol(e->d_name, &end, 10);

		if (!*end && tid > 0 && tid != pid && !thread_gone(pid, (pid_t)tid))
			found = (pid_t)tid;
	}
	closedir(d);
	return found ? found : pid;
}

static int maps_read_file(const char *path, struct xp_maps *out)
{
	FILE *f;
	char *line = NULL;
	size_t cap = 0, alloc = 0;
	ssize_t n;
	int err = 0;

	out->v = NULL;
	out->n = 0;
	f = fopen(path, "re");
	if (!f)
		return -errno;
	while ((n = getline(&line, &cap, f)) > 0) {
		if (line[n - 1] == '\n')
			line[n - 1] = '\0';
		if (out->n == alloc) {
			struct xp_map *v;
			if (alloc >= MAPS_MAX) {
				err = -E2BIG;
				break;
			}
			alloc = alloc ? alloc * 2 : 256;
			v = realloc(out->v, alloc * sizeof(*v));
			if (!v) {
				err = -ENOMEM;
				break;
			}
			out->v = v;
		}
		if (parse_map_line(line, &out->v[out->n]) == 0)
			out->n++;
	}
	free(line);
	fclose(f);
	if (err == 0 && out->n == 0)
		err = -ESRCH; /* a process with no maps is gone or a kernel thread */
	if (err)
		xp_maps_free(out);
	return err;
}

int xp_maps_read(pid_t pid, struct xp_maps *out)
{
	char path[96];
	pid_t tid;
	int err;

	snprintf(path, sizeof(path), "/proc/%d/maps", (int)pid);
	err = maps_read_file(path, out);
	/* a leader that called pthread_exit has no maps of its own; the
	 * process it led lives on in its other threads */
	if (err == -ESRCH && (tid = xp_live_thread(pid)) != pid) {
		snprintf(path, sizeof(path), "/proc/%d/task/%d/maps", (int)pid, (int)tid);
		err = maps_read_file(path, out);
	}
	return err;
}

const struct xp_map *xp_maps_find(const struct xp_maps *maps, uint64_t addr)
{
	size_t lo = 0, hi = maps->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		const struct xp_map *m = &maps->v[mid];
		if (addr < m->start)
			hi = mid;
		else if (addr >= m->end)
			lo = mid + 1;
		else
			return m;
	}
	return NULL;
}

void xp_maps_free(struct xp_maps *maps)
{
	size_t i;

	for (i = 0; i < maps->n; i++)
		free(maps->v[i].path);
	free(maps->v);
	maps->v = NULL;
	maps->n = 0;
}

int xp_parse_stat(const char *buf, char *comm, size_t commlen, char *state, unsigned long *flags)
{
	/* comm may hold spaces and parentheses: it ends at the last ')' */
	const char *open = strchr(buf, '(');
	const char *close = strrchr(buf, ')');
	size_t n;

	if (!open || !close || close < open || close[1] != ' ' || !close[2])
		return -EINVAL;
	n = (size_t)(close - open - 1);
	if (n >= commlen)
		n = commlen - 1;
	memcpy(comm, open + 1, n);
	comm[n] = '\0';
	*state = close[2];
	if (flags) {
		/* fields after state: ppid pgrp session tty_nr tpgid flags */
		int ppid, pgrp, session, tty, tpgid;
		if (sscanf(close + 4, "%d %d %d %d %d %lu", &ppid, &pgrp, &session, &tty, &tpgid,
			   flags) != 6)
			return -EINVAL;
	}
	return 0;
}

static long status_field(const char *status, const char *key)
{
	const char *p = strstr(status, key);

	if (!p)
		return -1;
	return strtol(p + strlen(key), NULL, 10);
}

int xp_thread_ns_tid(pid_t pid, pid_t tid, pid_t *ns_tid)
{
	char path[96], buf[4096];
	const char *p;
	int n, levels = 0;

	*ns_tid = tid;
	snprintf(path, sizeof(path), "/proc/%d/task/%d/status", (int)pid, (int)tid);
	if ((n = xp_read_small_file(path, buf, sizeof(buf))) < 0)
		return n;
	p = strstr(buf, "\nNSpid:");
	if (!p)
		return 0; /* before Linux 4.1: no namespaces to tell apart */
	p += strlen("\nNSpid:");
	/* one id per namespace level, ours first, the thread's own last */
	while (*p == ' ' || *p == '\t') {
		char *end;
		long v = strtol(p, &end, 10);
		if (end == p || v <= 0)
			break;
		*ns_tid = (pid_t)v;
		levels++;
		p = end;
	}
	return levels > 1;
}

/* The validated target, pinned.  One per run: xprof profiles one process. */
static pid_t pinned_pid;
static int pinned_fd = -1;

static void pin(pid_t pid)
{
	int fd;

	if (pinned_fd >= 0 && pinned_pid == pid)
		return; /* keep the first: a re-check must not re-pin a reused pid */
	fd = (int)syscall(SYS_pidfd_open, pid, 0);
	if (fd < 0)
		return;
	if (pinned_fd >= 0)
		close(pinned_fd);
	pinned_fd = fd;
	pinned_pid = pid;
	fcntl(fd, F_SETFD, FD_CLOEXEC);
}

int xp_proc_alive(pid_t pid)
{
	if (pinned_fd < 0 || pinned_pid != pid)
		return 1;
	/* signal 0 through the pidfd: ESRCH once that process has exited,
	 * whatever now holds its pid */
	return syscall(SYS_pidfd_send_signal, pinned_fd, 0, NULL, 0) == 0 || errno != ESRCH;
}

int xp_proc_check(pid_t pid, struct xp_proc *p, enum xp_proc_problem *problem)
{
	char path[64], buf[4096];
	unsigned long flags = 0;
	int n;

	memset(p, 0, sizeof(*p));
	p->pid = pid;
	*problem = XP_PROC_OK;
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	n = xp_read_small_file(path, buf, sizeof(buf));
	if (n == -ENOENT || n == -ESRCH) {
		*problem = XP_PROC_NO_SUCH;
		return 0;
	}
	if (n < 0)
		return n;
	if (xp_parse_stat(buf, p->comm, sizeof(p->comm), &p->state, &flags) < 0)
		return -EINVAL;
	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	n = xp_read_small_file(path, buf, sizeof(buf));
	if (n < 0) {
		if (n == -ENOENT || n == -ESRCH)
			*problem = XP_PROC_NO_SUCH;
		return n == -ENOENT || n == -ESRCH ? 0 : n;
	}
	p->uid = (uid_t)status_field(buf, "\nUid:");
	p->tracer = (pid_t)status_field(buf, "\nTracerPid:");
	/* A thread id that is not a thread-group leader is still a valid
	 * /proc entry; profile its whole group. */
	p->pid = (pid_t)status_field(buf, "\nTgid:");
	if (p->pid <= 0)
		p->pid = pid;
	p->kernel_thread = (flags & 0x00200000) != 0; /* PF_KTHREAD */

	/* a leader that called pthread_exit is a zombie while its threads run */
	if ((p->state == 'Z' || p->state == 'X') && status_field(buf, "\nThreads:") <= 1)
		*problem = XP_PROC_ZOMBIE;
	else if (p->kernel_thread)
		*problem = XP_PROC_KERNEL_THREAD;
	else if (p->pid == getpid())
		*problem = XP_PROC_SELF;
	else if (p->tracer > 0 && p->tracer != getpid())
		*problem = XP_PROC_TRACED;
	if (*problem == XP_PROC_OK)
		pin(p->pid);
	return 0;
}

static int have_cap_sys_ptrace(void)
{
	char buf[4096];
	const char *p;
	unsigned long long eff;

	if (xp_read_small_file("/proc/self/status", buf, sizeof(buf)) < 0)
		return 0;
	p = strstr(buf, "\nCapEff:");
	if (!p || sscanf(p + 8, "%llx", &eff) != 1)
		return 0;
	return (eff >> 19) & 1; /* CAP_SYS_PTRACE */
}

/* Capability numbers (linux/capability.h) as the refusal names them. */
static const char *const cap_names[] = {
	"chown", "dac_override", "dac_read_search", "fowner", "fsetid", "kill", "setgid", "setuid",
	"setpcap", "linux_immutable", "net_bind_service", "net_broadcast", "net_admin", "net_raw",
	"ipc_lock", "ipc_owner", "sys_module", "sys_rawio", "sys_chroot", "sys_ptrace", "sys_pacct",
	"sys_admin", "sys_boot", "sys_nice", "sys_resource", "sys_time", "sys_tty_config", "mknod",
	"lease", "audit_write", "audit_control", "setfcap", "mac_override", "mac_admin", "syslog",
	"wake_alarm", "block_suspend", "audit_read", "perfmon", "bpf", "checkpoint_restore",
};

static unsigned long long cap_field(const char *status, const char *key)
{
	const char *p = strstr(status, key);
	unsigned long long v = 0;

	if (p)
		sscanf(p + strlen(key), "%llx", &v);
	return v;
}

/* "cap_a, cap_b" for the bits of caps, the first three, then "…" */
static void cap_list(unsigned long long caps, char *buf, size_t len)
{
	size_t used = 0;
	int bit, shown = 0;

	buf[0] = '\0';
	for (bit = 0; bit < 64 && used < len; bit++) {
		if (!((caps >> bit) & 1))
			continue;
		if (shown == 3) {
			snprintf(buf + used, len - used, ", ...");
			return;
		}
		if (bit < (int)(sizeof(cap_names) / sizeof(cap_names[0])))
			used += (size_t)snprintf(buf + used, len - used, "%scap_%s", shown ? ", " : "", cap_names[bit]);
		else
			used += (size_t)snprintf(buf + used, len - used, "%scapability %d", shown ? ", " : "", bit);
		shown++;
	}
}

/* The checks of the kernel's ptrace_may_access, in its order, each named
 * with the thing that fixes it.  Which of them also refuse perf sampling
 * is in the return value. */
enum xp_eperm_cause xp_explain_eperm(pid_t pid, char *buf, size_t len)
{
	struct xp_proc p;
	enum xp_proc_problem problem;
	char scope[16] = "", path[64], status[4096] = "", self[4096] = "", caps[160];
	unsigned uid[4] = { 0, 0, 0, 0 };
	unsigned long long missing;
	const char *line;
	struct stat st;
	int have_scope, cap_ptrace = have_cap_sys_ptrace();

	have_scope = xp_read_small_file("/proc/sys/kernel/yama/ptrace_scope", scope, sizeof(scope)) > 0;
	if (xp_proc_check(pid, &p, &problem) == 0 && problem == XP_PROC_TRACED) {
		snprintf(buf, len, "it is already traced by pid %d (a debugger or tracer); detach it first",
			 (int)p.tracer);
		return XP_EPERM_OTHER;
	}
	if (have_scope && atoi(scope) == 3) {
		snprintf(buf, len, "kernel.yama.ptrace_scope is 3, which forbids all ptrace until reboot");
		return XP_EPERM_OTHER;
	}
	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	xp_read_small_file(path, status, sizeof(status));
	if ((line = strstr(status, "\nUid:")) != NULL)
		sscanf(line + 5, "%u %u %u %u", &uid[0], &uid[1], &uid[2], &uid[3]);
	if (!cap_ptrace && line && geteuid() != 0 &&
	    (uid[0] != geteuid() || uid[1] != geteuid() || uid[2] != geteuid())) {
		if (uid[0] == uid[1] && uid[1] == uid[2])
			snprintf(buf, len, "pid %d belongs to uid %u and xprof runs as uid %u; run as root or as that user",
				 (int)pid, uid[0], (unsigned)geteuid());
		else
			snprintf(buf, len,
				 "pid %d runs with uids %u (real), %u (effective), %u (saved), a setuid program, "
				 "and xprof as uid %u: all must match; run as root",
				 (int)pid, uid[0], uid[1], uid[2], (unsigned)geteuid());
		return XP_EPERM_CREDENTIALS;
	}
	/* the files in /proc/PID belong to root, not to the process's user,
	 * when the process is not dumpable */
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	if (!cap_ptrace && line && stat(path, &st) == 0 && st.st_uid != uid[1]) {
		snprintf(buf, len,
			 "pid %d is not dumpable: it called prctl(PR_SET_DUMPABLE, 0) or runs a setuid or "
			 "file-capability program; only root with CAP_SYS_PTRACE may read it",
			 (int)pid);
		return XP_EPERM_CREDENTIALS;
	}
	xp_read_small_file("/proc/self/status", self, sizeof(self));
	missing = cap_field(status, "\nCapPrm:") & ~cap_field(self, "\nCapPrm:");
	cap_list(missing, caps, sizeof(caps));
	/* without CAP_SYS_PTRACE, only a target whose capabilities are a
	 * subset of ours may be read */
	if (line && missing && (cap_ptrace || geteuid() != 0)) {
		if (cap_ptrace)
			snprintf(buf, len,
				 "pid %d holds capabilities xprof lacks (%s); run xprof with at least the "
				 "target's capabilities, as root outside the container",
				 (int)pid, caps);
		else
			snprintf(buf, len,
				 "pid %d holds capabilities xprof lacks (%s); run xprof as root",
				 (int)pid, caps);
		return XP_EPERM_CREDENTIALS;
	}
	if (!cap_ptrace) {
		if (geteuid() == 0)
			snprintf(buf, len,
				 "xprof runs as root without CAP_SYS_PTRACE, as in a container; "
				 "grant it (docker run --cap-add SYS_PTRACE)");
		else if (have_scope && atoi(scope) >= 1)
			snprintf(buf, len,
				 "kernel.yama.ptrace_scope is %d; run as root, or "
				 "sysctl -w kernel.yama.ptrace_scope=0",
				 atoi(scope));
		else
			snprintf(buf, len, "run as root or with CAP_SYS_PTRACE");
		return missing ? XP_EPERM_CREDENTIALS : XP_EPERM_OTHER;
	}
	snprintf(buf, len, "the kernel refused ptrace (a security module such as SELinux or AppArmor?)");
	return XP_EPERM_OTHER;
}

const char *xp_state_word(char state)
{
	switch (state) {
	case 'R':
		return "running";
	case 'S':
		return "sleeping";
	case 'D':
		return "disk";
	case 'T':
		return "stopped";
	case 't':
		return "tracing stop";
	case 'Z':
	case 'X':
		return "zombie";
	case 'I':
		return "idle";
	case 'P':
		return "parked";
	default:
		return "unknown";
	}
}
