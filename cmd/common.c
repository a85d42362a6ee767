/* What every command shares: messages, pid parsing and target checks, and
 * the translation of symbolized stacks into pprof locations. */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/stat.h>
#include <unistd.h>

#include "attach/attach.h"
#include "cmd/cmd.h"

void xp_msg(const char *fmt, ...)
{
	va_list ap;

	fputs("xprof: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

int64_t xp_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

void xp_default_output(char *buf, size_t len, const char *comm, pid_t pid, const char *kind)
{
	char safe[64];
	size_t i;

	/* the comm is the target's to choose: only letters, digits and ._+-
	 * reach a file name */
	for (i = 0; comm[i] && i < sizeof(safe) - 1; i++)
		safe[i] = strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._+-", comm[i]) ?
				  comm[i] : '_';
	safe[i] = '\0';
	snprintf(buf, len, "xprof.%s.%d.%s", safe, (int)pid, kind);
}

int xp_check_output(const char *path, int binary)
{
	char why[256];
	int err;

	if (strcmp(path, "-") == 0) {
		if (xp_stdout_closed) {
			xp_msg("cannot write to standard output (-o -): it is closed");
			return -1;
		}
		if (binary && isatty(STDOUT_FILENO)) {
			xp_msg("cannot write to standard output (-o -): it is a terminal and the profile is "
			       "binary (redirect it to a file or a pipe)");
			return -1;
		}
		return 0;
	}
	err = xp_output_writable(path, why, sizeof(why));
	if (err < 0) {
		xp_msg("cannot write %s: %s", xp_esc(path), why[0] ? xp_esc(why) : strerror(-err));
		return -1;
	}
	return 0;
}

void xp_report_wrote(const char *path, const char *hint)
{
	struct stat st;

	if (strcmp(path, "-") == 0)
		xp_msg("wrote the profile to standard output");
	else if (stat(path, &st) == 0 && !S_ISREG(st.st_mode))
		xp_msg("wrote %s", xp_esc(path)); /* a device or FIFO: nothing to open later */
	else if (hint)
		xp_msg("wrote %s; %s", xp_esc(path), hint);
	else
		xp_msg("wrote %s; open it with: go tool pprof -http=: %s", xp_esc(path), xp_esc(path));
}

void xp_report_jit(const struct xp_jit_stats *st)
{
	if (st->refused)
		xp_msg("%s in the target's root not read: not a regular file of the target's user or root",
		       xp_esc(st->path));
	if (st->skipped)
		xp_msg("%s: %zu lines or records skipped (not START SIZE name)", xp_esc(st->path), st->skipped);
	if (st->dropped || st->cut)
		xp_msg("%s: read up to its cap (%zu entries past it dropped)", xp_esc(st->path), st->dropped);
}

int xp_parse_output(const char *cmd, const char *arg, const char **out)
{
	if (!*arg) {
		xp_msg("%s: -o wants a file name ('-' for standard output)", cmd);
		return -1;
	}
	*out = arg;
	return 0;
}

int xp_option_error(const char *cmd, int c, char **argv)
{
	const char *arg = optind > 0 && argv[optind - 1] ? argv[optind - 1] : "";
	char name[128];

	/* a long option is named as given, without its "=value"; a short one
	 * by optopt, as it may sit in a cluster ("-gx") */
	if (strncmp(arg, "--", 2) == 0)
		snprintf(name, sizeof(name), "%.*s", (int)strcspn(arg, "="), arg);
	else
		snprintf(name, sizeof(name), "-%c", optopt > 32 && optopt < 127 ? optopt : '?');
	if (c == ':')
		xp_msg("%s: option '%s' wants a value (try 'xprof %s --help')", cmd, xp_esc(name), cmd);
	else if (name[1] == '-' && optopt)
		xp_msg("%s: option '%s' takes no value (try 'xprof %s --help')", cmd, xp_esc(name), cmd);
	else
		xp_msg("%s: unknown option '%s' (try 'xprof %s --help')", cmd, xp_esc(name), cmd);
	return XP_EXIT_USAGE;
}

pid_t xp_parse_pid(const char *arg)
{
	char *end;
	long v;

	errno = 0;
	v = arg ? strtol(arg, &end, 10) : 0;
	if (!arg || !*arg || *end || errno || v <= 0 || v > 4194304) {
		xp_msg("invalid pid '%s': want a positive process id", arg ? arg : "");
		return -1;
	}
	return (pid_t)v;
}

uint64_t xp_exec_id(pid_t pid)
{
	char path[64], buf[1024], *p, *end;
	unsigned long long field, id = 0;
	struct stat st;
	size_t n;
	FILE *f;
	int i;

	/* fields 26-28 and 45-51 of stat (code, stack, arguments, environment)
	 * move with every exec, even of the same binary (ASLR) */
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	f = fopen(path, "re");
	if (!f)
		return 0;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	if (!(p = strrchr(buf, ')')) || !p[1] || !p[2])
		return 0;
	p += 3; /* ") S" */
	for (i = 4; i <= 51; i++, p = end) {
		field = strtoull(p, &end, 10);
		if (end == p)
			break;
		if ((i >= 26 && i <= 28) || i >= 45)
			id = (id ^ field) * 1099511628211ULL;
	}
	snprintf(path, sizeof(path), "/proc/%d/exe", (int)pid);
	if (stat(path, &st) == 0)
		id = (id ^ st.st_ino ^ st.st_dev) * 1099511628211ULL;
	return id;
}

int xp_said_exec(pid_t pid, uint64_t exec_id, const char *what)
{
	uint64_t now = xp_exec_id(pid);

	if (!exec_id || !now || now == exec_id)
		return 0;
	xp_msg("pid %d exec'd while xprof read it to %s: the new program is another one; nothing written "
	       "(run xprof again)",
	       (int)pid, what);
	return 1;
}

pid_t xp_check_target(pid_t pid, char *comm, size_t commlen)
{
	return xp_check_target_for(pid, comm, commlen, 1);
}

pid_t xp_check_target_for(pid_t pid, char *comm, size_t commlen, int ptraces)
{
	struct xp_proc p;
	enum xp_proc_problem problem;
	int err = xp_proc_check(pid, &p, &problem);

	if (err < 0) {
		xp_msg("cannot read /proc/%d: %s", (int)pid, strerror(-err));
		return -1;
	}
	switch (problem) {
	case XP_PROC_OK:
		break;
	case XP_PROC_NO_SUCH:
		xp_msg("no such process: %d", (int)pid);
		return -1;
	case XP_PROC_ZOMBIE:
		xp_msg("pid %d (%s) is a zombie: it has exited and has no stacks left to read", (int)pid,
		       xp_esc(p.comm));
		return -1;
	case XP_PROC_KERNEL_THREAD:
		xp_msg("pid %d (%s) is a kernel thread: it has no user space to profile", (int)pid,
		       xp_esc(p.comm));
		return -1;
	case XP_PROC_SELF:
		xp_msg("pid %d is xprof itself", (int)pid);
		return -1;
	case XP_PROC_TRACED:
		if (!ptraces) /* perf sampling coexists with a tracer */
			break;
		xp_msg("cannot attach to pid %d (%s): it is already traced by pid %d (a debugger or "
		       "tracer); detach it first",
		       (int)pid, xp_esc(p.comm), (int)p.tracer);
		return -1;
	}
	if (p.pid != pid) {
		/* a thread id: the process is what is profiled, and what the
		 * summary and the default file name are named after */
		struct xp_proc leader;
		enum xp_proc_problem lp;
		char tname[64];

		xp_escape(p.comm, tname, sizeof(tname));
		if (xp_proc_check(p.pid, &leader, &lp) == 0 && lp != XP_PROC_NO_SUCH)
			memcpy(p.comm, leader.comm, sizeof(p.comm));
		xp_msg("%d is a thread (%s) of pid %d (%s): xprof reads the whole process", (int)pid, tname,
		       (int)p.pid, xp_esc(p.comm));
	}
	/* the name every message shows, escaped once here */
	if (comm)
		xp_escape(p.comm, comm, commlen);
	return p.pid;
}

void xp_report_attach_error(pid_t pid, int err)
{
	char why[256];

	/* EACCES: /proc/PID refused us before ptrace could */
	if (err == -EPERM || err == -EACCES) {
		xp_explain_eperm(pid, why, sizeof(why));
		xp_msg("cannot attach to pid %d: operation not permitted (%s)", (int)pid, why);
	} else if (err == -ESRCH) {
		xp_msg("cannot attach to pid %d: the process exited", (int)pid);
	} else if (err == -EBUSY) {
		xp_msg("cannot attach to pid %d: another process traces it (a debugger?); try when it has let go", (int)pid);
	} else if (err == -EAGAIN) {
		xp_msg("cannot stop pid %d: it exec'd during each try (it re-execs too often); try again", (int)pid);
	} else {
		xp_msg("cannot attach to pid %d: %s", (int)pid, strerror(-err));
	}
}

/* "500ms", "30s", "2m", "1h"; a bare number is seconds. */
int xp_parse_duration(const char *s, int64_t *ns)
{
	char *end;
	double v;
	int64_t unit;

	errno = 0;
	v = strtod(s, &end);
	if (end == s || errno || v != v)
		return -1;
	if (*end == '\0' || strcmp(end, "s") == 0)
		unit = 1000000000LL;
	else if (strcmp(end, "ms") == 0)
		unit = 1000000LL;
	else if (strcmp(end, "m") == 0)
		unit = 60LL * 1000000000;
	else if (strcmp(end, "h") == 0)
		unit = 3600LL * 1000000000;
	else
		return -2;
	if (v <= 0 || v * (double)unit > 7 * 24 * 3600e9)
		return -3;
	*ns = (int64_t)(v * (double)unit);
	return *ns > 0 ? 0 : -3;
}

int xp_option_duration(const char *cmd, const char *arg, int64_t *ns)
{
	int rc = xp_parse_duration(arg, ns);

	if (rc == -2)
		xp_msg("%s: unknown duration unit in '%s': use ms, s, m or h (500ms, 30s, 2m)", cmd, arg);
	else if (rc < 0)
		xp_msg("%s: invalid duration '%s': want a positive time such as 500ms, 30s or 2m", cmd, arg);
	return rc < 0 ? XP_EXIT_USAGE : 0;
}

void xp_install_stop_signals(void (*handler)(int))
{
	static const int sigs[] = { SIGINT, SIGTERM, SIGHUP };
	struct sigaction sa;
	size_t i;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = handler; /* no SA_RESTART: poll and sleeps return */
	for (i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
		sigaction(sigs[i], &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
}

/* ---- block and mutex: a process watched for a while ------------------- */

volatile sig_atomic_t xp_stop_requested;

static void on_watch_stop(int sig)
{
	if (xp_stop_requested) { /* a second Ctrl-C: leave now (the kernel takes any probes out) */
		signal(sig, SIG_DFL);
		raise(sig);
	}
	xp_stop_requested = 1;
}

void xp_watch_signals(void)
{
	xp_install_stop_signals(on_watch_stop);
}

void xp_watch_opts_init(struct xp_watch_opts *o, int64_t duration_ns)
{
	memset(o, 0, sizeof(*o));
	o->duration_ns = duration_ns;
	optind = 1;
	opterr = 0; /* xp_option_error says it in one line */
}

int xp_watch_option(const char *cmd, int c, char **argv, struct xp_watch_opts *o)
{
	switch (c) {
	case 'p':
		if ((o->pid = xp_parse_pid(optarg)) < 0)
			return XP_EXIT_USAGE;
		return 0;
	case 'd':
		return xp_option_duration(cmd, optarg, &o->duration_ns);
	case 'o':
		return xp_parse_output(cmd, optarg, &o->out) < 0 ? XP_EXIT_USAGE : 0;
	default:
		return xp_option_error(cmd, c, argv);
	}
}

int xp_watch_opts_done(const char *cmd, int argc, char **argv, const struct xp_watch_opts *o)
{
	if (optind < argc) {
		xp_msg("%s: unexpected argument '%s'", cmd, argv[optind]);
		return XP_EXIT_USAGE;
	}
	if (o->pid <= 0) {
		xp_msg("%s: -p PID is required (try 'xprof %s --help')", cmd, cmd);
		return XP_EXIT_USAGE;
	}
	return -1;
}

int xp_follow_option(const char *cmd, int c, const char *arg, struct xp_follow_opts *f)
{
	switch (c) {
	case 'p':
		if ((f->pid = xp_parse_pid(arg)) < 0)
			return XP_EXIT_USAGE;
		f->by = XP_SERVE_BY_PID;
		break;
	case XP_OPT_NAME:
	case XP_OPT_CMDLINE:
		if (!*arg) {
			xp_msg("%s: --%s wants a non-empty %s", cmd, c == XP_OPT_NAME ? "name" : "cmdline",
			       c == XP_OPT_NAME ? "process name" : "pattern");
			return XP_EXIT_USAGE;
		}
		f->by = c == XP_OPT_NAME ? XP_SERVE_BY_NAME : XP_SERVE_BY_CMDLINE;
		f->name = arg;
		break;
	default:
		return 0;
	}
	f->given++;
	return 1;
}

int xp_follow_opts_done(const char *cmd, int argc, char **argv, const struct xp_follow_opts *f)
{
	if (optind < argc) {
		xp_msg("%s: unexpected argument '%s'", cmd, argv[optind]);
		return XP_EXIT_USAGE;
	}
	if (f->given != 1) {
		xp_msg("%s: give one target: -p PID, --name COMM or --cmdline REGEX (try 'xprof %s --help')", cmd, cmd);
		return XP_EXIT_USAGE;
	}
	return -1;
}

int xp_follow_target(const char *cmd, const struct xp_follow_opts *f, pid_t pid, struct xp_serve_target **t)
{
	char why[256];
	int err = xp_serve_target_new(f->by, pid, f->name, t, why, sizeof(why));

	if (err == 0)
		return 0;
	if (f->by == XP_SERVE_BY_CMDLINE && err == -EINVAL)
		xp_msg("%s: invalid --cmdline pattern '%s': %s", cmd, f->name, why);
	else
		xp_msg("%s: %s", cmd, why);
	return err == -EINVAL ? -XP_EXIT_USAGE : -XP_EXIT_FATAL;
}

pid_t xp_watch_target(const struct xp_watch_opts *o, const char *kind, char *comm, size_t commlen,
		      char *defpath, size_t deflen, const char **path)
{
	pid_t pid;

	if (o->out && xp_check_output(o->out, 1) < 0)
		return -1;
	/* perf events and uprobes stop nothing: a tracer on the target does
	 * not matter */
	pid = xp_check_target_for(o->pid, comm, commlen, 0);
	if (pid < 0)
		return -1;
	xp_default_output(defpath, deflen, comm, pid, kind);
	*path = o->out ? o->out : defpath;
	return pid;
}

int xp_watch_go(pid_t pid, const char *comm, const char *path, enum xp_go_profile kind)
{
	struct xp_go_target gt;
	int rc = XP_EXIT_FATAL;
	int err;

	memset(&gt, 0, sizeof(gt));
	err = xp_go_target_open_said(pid, comm, &gt);
	if (err == 0)
		return -1;
	if (err == 1)
		rc = xp_go_heap(&gt, pid, comm, path, xp_now_ns(), kind);
	else if (err != -ENOTSUP)
		xp_report_attach_error(pid, err);
	xp_go_target_close(&gt);
	return rc;
}
