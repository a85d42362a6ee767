/* xprof cpu: where a process spends CPU time (perf_event_open cpu-clock
 * samples, unwound as they arrive so only their pcs are kept) or, with
 * --wall, where every thread is at each tick, running or not (ptrace
 * snapshots).  Attaches to a pid or launches a command.
 *
 * parse options → validate → open the sampler → loop until the duration
 * ends, the target exits or Ctrl-C → symbolize → write pprof, folded or SVG.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "attach/attach.h"
#include "cmd/cmd.h"
#include "proto/profile.h"
#include "symbolize/symbolize.h"
#include "unwind/unwind.h"

#define FREQ_DEFAULT 99  /* not 100: samples must not phase-lock with 100 Hz timers */
#define FREQ_MAX 10000
#define DURATION_DEFAULT_NS (30LL * 1000000000)
/* as collect/cpu.c keeps programs apart: the report names the limit */
#define PROGRAMS_MAX 64

enum format { FORMAT_PPROF, FORMAT_FOLDED, FORMAT_SVG };

struct cpu_opts {
	pid_t pid;
	int64_t duration_ns;
	int duration_set;
	int freq;
	const char *out;
	enum format format;
	int wall;
	int no_kernel;
	char **cmd; /* launch mode: the command after -- */
};

/* How long a launched command still running when the run ends has to
 * exit after SIGTERM before xprof leaves it running. */
#define CHILD_TERM_WAIT_NS (5LL * 1000000000)
/* After Ctrl-C, how long the command (signalled by the terminal too) has
 * to end on its own before xprof sends SIGTERM. */
#define CHILD_GRACE_NS (200LL * 1000000)

static volatile sig_atomic_t stop_requested, sampling_over;

static void on_stop_signal(int sig)
{
	/* a second Ctrl-C, or one once the sampling is over: leave now (no
	 * file: proto/write.c drops a temp file a signal interrupts) */
	if (stop_requested || sampling_over) {
		signal(sig, SIG_DFL);
		raise(sig);
	}
	stop_requested = 1;
}

static void usage(FILE *f)
{
	fputs("usage: xprof cpu -p PID [-d DURATION] [-F HZ] [-o FILE] [--format pprof|folded|svg] [--wall]\n"
	      "       xprof cpu [OPTIONS] -- COMMAND [ARGS...]\n"
	      "\n"
	      "Samples every thread of a running process (or of COMMAND, launched and\n"
	      "profiled until it exits) and writes where the time went.  Stacks are\n"
	      "unwound with DWARF CFI from a copy of each sample's user stack: no frame\n"
	      "pointers needed.  Ctrl-C stops early and still writes the profile.\n"
	      "\n"
	      "  -p, --pid PID       the process to profile\n"
	      "  -d, --duration D    how long: 500ms, 30s, 2m (default 30s; a launched\n"
	      "                      COMMAND: until it exits; if it is still running\n"
	      "                      when D ends, it is sent SIGTERM, as perf record\n"
	      "                      does, and left running if it outlives 5 s)\n"
	      "  -F, --freq HZ       samples per second, 1 to 10000 (default 99)\n"
	      "  -o, --output FILE   where to write (default xprof.COMM.PID.cpu.pb.gz,\n"
	      "                      .folded or .svg by format)\n"
	      "      --format F      pprof (default): open with go tool pprof -http=: FILE;\n"
	      "                      folded: collapsed stacks for flamegraph.pl, inferno,\n"
	      "                      speedscope; svg: an interactive flame graph\n"
	      "      --wall          wall-clock: every thread's whole time, running or not:\n"
	      "                      perf's cpu-clock samples on the CPU, and each interval\n"
	      "                      off it (context switches) weighed by its length; no\n"
	      "                      thread is stopped.  Label state = running, runnable\n"
	      "                      (preempted), sleeping, and reason (the syscall).\n"
	      "                      Where perf is refused, or for a launched COMMAND:\n"
	      "                      every thread stopped at each tick (ptrace), state =\n"
	      "                      running, sleeping, disk, stopped\n"
	      "      --wall=ptrace   the ptrace sampler, even where perf is allowed\n"
	      "      --no-kernel     leave out kernel frames (not with --wall, which has none)\n"
	      "  -h, --help          this help\n"
	      "\n"
	      "CPU mode uses perf_event_open (cpu-clock); when that is refused, xprof\n"
	      "says so and samples with --wall instead.  A launched COMMAND is profiled\n"
	      "in its own process: processes it starts are not included.\n"
	      "\n"
	      "A progress line (seconds, samples, threads) shows on a terminal.  The\n"
	      "first SIGINT, SIGTERM or SIGHUP ends the sampling early and the profile is\n"
	      "still written; a second one, or one after the sampling, ends xprof with\n"
	      "nothing written.\n"
	      "\n"
	      "Exit status: 0 written, 1 written but the target exited early or samples\n"
	      "were lost, 2 failure, 64 bad usage.  With a launched COMMAND, its status\n"
	      "as time(1) gives it: its exit code, 128+N when signal N killed it, 127 or\n"
	      "126 when it cannot be run; xprof's own (0, 1) when xprof ended it at the\n"
	      "end of -d; 2 when xprof failed.  Lost samples are said, not in the status.\n",
	      f);
}

static int parse(int argc, char **argv, struct cpu_opts *o)
{
	enum { OPT_FORMAT = 256, OPT_WALL, OPT_NO_KERNEL };
	static const struct option longopts[] = {
		{ "pid", required_argument, NULL, 'p' },
		{ "duration", required_argument, NULL, 'd' },
		{ "freq", required_argument, NULL, 'F' },
		{ "output", required_argument, NULL, 'o' },
		{ "format", required_argument, NULL, OPT_FORMAT },
		{ "wall", optional_argument, NULL, OPT_WALL },
		{ "no-kernel", no_argument, NULL, OPT_NO_KERNEL },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	char *end;
	long v;
	int c;

	memset(o, 0, sizeof(*o));
	o->duration_ns = DURATION_DEFAULT_NS;
	o->freq = FREQ_DEFAULT;
	optind = 1;
	opterr = 0; /* xp_option_error says it in one line */
	/* "+": options stop at the first non-option, the command to launch */
	while ((c = getopt_long(argc, argv, "+:p:d:F:o:h", longopts, NULL)) != -1) {
		switch (c) {
		case 'p':
			o->pid = xp_parse_pid(optarg);
			if (o->pid < 0)
				return XP_EXIT_USAGE;
			break;
		case 'd':
			o->duration_set = 1;
			if (xp_option_duration("cpu", optarg, &o->duration_ns) != 0)
				return XP_EXIT_USAGE;
			break;
		case 'F':
			errno = 0;
			v = strtol(optarg, &end, 10);
			if (!*optarg || *end || errno || v < 1 || v > FREQ_MAX) {
				xp_msg("cpu: invalid frequency '%s': want 1 to %d samples per second", optarg, FREQ_MAX);
				return XP_EXIT_USAGE;
			}
			o->freq = (int)v;
			break;
		case 'o':
			if (xp_parse_output("cpu", optarg, &o->out) < 0)
				return XP_EXIT_USAGE;
			break;
		case OPT_FORMAT:
			if (strcmp(optarg, "pprof") == 0)
				o->format = FORMAT_PPROF;
			else if (strcmp(optarg, "folded") == 0)
				o->format = FORMAT_FOLDED;
			else if (strcmp(optarg, "svg") == 0)
				o->format = FORMAT_SVG;
			else {
				xp_msg("cpu: unknown format '%s': want pprof, folded or svg", optarg);
				return XP_EXIT_USAGE;
			}
			break;
		case OPT_WALL:
			if (optarg && strcmp(optarg, "ptrace") != 0) {
				xp_msg("cpu: unknown --wall=%s: --wall alone, or --wall=ptrace to stop the threads at each tick", optarg);
				return XP_EXIT_USAGE;
			}
			o->wall = optarg ? XP_WALL_PTRACE : XP_WALL;
			break;
		case OPT_NO_KERNEL:
			o->no_kernel = 1;
			break;
		case 'h':
			usage(stdout);
			return XP_EXIT_OK;
		default:
			return xp_option_error("cpu", c, argv);
		}
	}
	if (optind < argc) {
		if (strcmp(argv[optind - 1], "--") != 0) {
			xp_msg("cpu: unexpected argument '%s' (a command to launch goes after --)", argv[optind]);
			return XP_EXIT_USAGE;
		}
		o->cmd = &argv[optind];
	}
	if (o->cmd && o->pid > 0) {
		xp_msg("cpu: give -p PID or a command after --, not both");
		return XP_EXIT_USAGE;
	}
	if (!o->cmd && o->pid <= 0) {
		xp_msg("cpu: -p PID or -- COMMAND is required (try 'xprof cpu --help')");
		return XP_EXIT_USAGE;
	}
	if (o->wall && o->no_kernel) {
		xp_msg("cpu: --no-kernel is for CPU sampling: --wall stacks never have kernel frames");
		return XP_EXIT_USAGE;
	}
	/* a launched command is profiled until it exits, unless -d says less */
	if (o->cmd && !o->duration_set)
		o->duration_ns = INT64_MAX / 2;
	return -1;
}

/* ---- launching ---------------------------------------------------------- */

/* Forks COMMAND held before its exec, so sampling can be set up first;
 * release_child lets it exec.  The exec's errno comes back through a
 * close-on-exec pipe: end of file means the exec happened. */
struct child {
	pid_t pid;
	int go;      /* write end: a byte lets the child exec */
	int errfd;   /* read end: the exec's errno, or EOF */
};

/* stdout_taken: the profile goes to standard output (-o -), so the
 * command's own output goes to standard error instead. */
static int spawn_held(char **cmd, struct child *c, int stdout_taken)
{
	int go[2], err[2];

	if (pipe2(go, O_CLOEXEC) < 0)
		return -errno;
	if (pipe2(err, O_CLOEXEC) < 0) {
		int e = -errno;
		close(go[0]);
		close(go[1]);
		return e;
	}
	c->pid = fork();
	if (c->pid < 0) {
		int e = -errno;
		close(go[0]);
		close(go[1]);
		close(err[0]);
		close(err[1]);
		return e;
	}
	if (c->pid == 0) {
		char b;
		int e;
		signal(SIGPIPE, SIG_DFL);
		close(go[1]);
		close(err[0]);
		if (read(go[0], &b, 1) != 1)
			_exit(127); /* xprof gave up */
		if (stdout_taken && dup2(STDERR_FILENO, STDOUT_FILENO) < 0)
			_exit(127);
		execvp(cmd[0], cmd);
		e = errno;
		if (write(err[1], &e, sizeof(e)) < 0)
			_exit(127);
		_exit(127);
	}
	close(go[0]);
	close(err[1]);
	c->go = go[1];
	c->errfd = err[0];
	return 0;
}

/* 0 once the child has exec'd, else -errno of the failed exec. */
static int release_child(struct child *c)
{
	int e = 0;
	ssize_t n;

	if (write(c->go, "x", 1) != 1)
		e = errno;
	close(c->go);
	do
		n = read(c->errfd, &e, sizeof(e));
	while (n < 0 && errno == EINTR);
	close(c->errfd);
	return n == (ssize_t)sizeof(e) ? -e : 0;
}

/* The status of a launched command as time(1) and perf stat pass it on:
 * its exit code, or 128 + the signal that killed it. */
static int status_code(int status)
{
	if (WIFEXITED(status))
		return WEXITSTATUS(status);
	if (WIFSIGNALED(status))
		return 128 + WTERMSIG(status);
	return XP_EXIT_FATAL;
}

/* Waits up to ns for pid to end: 1 and *status when it did, else 0. */
static int wait_child(pid_t pid, int64_t ns, int *status)
{
	int64_t until = xp_now_ns() + ns;
	pid_t w;

	for (;;) {
		w = waitpid(pid, status, WNOHANG);
		if (w == pid)
			return 1;
		if (w < 0 && errno != EINTR)
			return 0;
		if (xp_now_ns() >= until)
			return 0;
		usleep(10000);
	}
}

/* A launched command still running when the run ends (-d, or a signal to
 * xprof) is sent SIGTERM, as perf record does with its workload, and given
 * CHILD_TERM_WAIT_NS to exit; one that does not is left running.  Returns
 * 1 when it ended (status in *status), 0 when left running. */
static int end_child(pid_t pid, int *status, int *ended_by_us)
{
	*ended_by_us = 0;
	/* Ctrl-C on a terminal reached the command too: let it end by that */
	if (stop_requested && wait_child(pid, CHILD_GRACE_NS, status))
		return 1;
	*ended_by_us = 1;
	if (kill(pid, SIGTERM) < 0 && errno != ESRCH)
		return 0;
	return wait_child(pid, CHILD_TERM_WAIT_NS, status);
}

/* How a launched command ended. */
struct child_end {
	int exited;      /* as xp_cpu_stats' child_exited: 1 known status, -1 gone, 0 running */
	int status;
	int ended_by_us; /* xprof sent it SIGTERM at the end of the run */
	int left;        /* it outlived SIGTERM: left running */
};

/* Says how a launched command ended; returns its status code when it ended
 * on its own (time(1)'s rule), else -1 (xprof's own status stands). */
static int report_child(const char *comm, pid_t pid, const struct child_end *ch)
{
	const char *why = stop_requested ? "xprof was stopped by a signal" : "the end of -d";

	if (ch->left)
		xp_msg("%s was still running at %s: sent it SIGTERM, and it is still running as pid %d "
		       "(left running)", comm, why, (int)pid);
	else if (ch->ended_by_us && WIFSIGNALED(ch->status))
		xp_msg("%s was still running at %s: ended with SIGTERM", comm, why);
	else if (ch->ended_by_us)
		xp_msg("%s was still running at %s: sent it SIGTERM, and it exited with status %d", comm, why,
		       WEXITSTATUS(ch->status));
	else if (ch->exited < 0)
		xp_msg("%s exited", comm);
	else if (WIFEXITED(ch->status))
		xp_msg("%s exited with status %d", comm, WEXITSTATUS(ch->status));
	else if (WIFSIGNALED(ch->status))
		xp_msg("%s was killed by signal %d (%s)", comm, WTERMSIG(ch->status), strsignal(WTERMSIG(ch->status)));
	/* the command's own end is the status, as time(1) passes it on; one
	 * xprof ended leaves xprof's own */
	return !ch->left && !ch->ended_by_us && ch->exited > 0 ? status_code(ch->status) : -1;
}

static int perf_paranoid(void)
{
	FILE *f = fopen("/proc/sys/kernel/perf_event_paranoid", "re");
	int v = 2; /* the kernel's default */

	if (f) {
		if (fscanf(f, "%d", &v) != 1)
			v = 2;
		fclose(f);
	}
	return v;
}

/* The progress line on a terminal. */
struct progress_ctx {
	const struct cpu_opts *o;
	int launched;
};

static void show_progress(void *arg, const struct xp_cpu_stats *st, int64_t now)
{
	const struct progress_ctx *pc = arg;
	static int64_t last;

	if (!isatty(2) || now - last < 250000000)
		return;
	last = now;
	if (pc->o->duration_set || !pc->launched)
		fprintf(stderr, "\rxprof: %.1fs of %.0fs, %" PRIu64 " samples, %zu threads\033[K",
			(now - st->start_ns) / 1e9, pc->o->duration_ns / 1e9, st->samples, st->threads);
	else
		fprintf(stderr, "\rxprof: %.1fs, %" PRIu64 " samples, %zu threads\033[K",
			(now - st->start_ns) / 1e9, st->samples, st->threads);
}

static int write_pprof(struct xp_cpu *c, const char *path)
{
	struct xp_profile *p;
	int err = xp_cpu_profile(c, &p);

	if (err < 0)
		return err;
	err = xp_profile_write(p, path);
	xp_profile_free(p);
	return err;
}

static int write_flame(struct xp_cpu *c, const struct cpu_opts *o, const char *comm, pid_t pid, const char *path)
{
	const struct xp_cpu_stats *st = xp_cpu_stats(c);
	struct xp_cpu_stack *stacks;
	struct xp_flame_stack *v;
	char title[256];
	size_t i, n;
	int err = xp_cpu_stacks(c, &stacks, &n);

	if (err < 0)
		return err;
	v = calloc(n ? n : 1, sizeof(*v));
	if (!v) {
		xp_cpu_stacks_free(stacks, n);
		return -ENOMEM;
	}
	for (i = 0; i < n; i++) {
		v[i].frames = (const char *const *)stacks[i].frames;
		v[i].nframes = stacks[i].nframes;
		v[i].value = stacks[i].count;
	}
	if (o->format == FORMAT_FOLDED) {
		err = xp_folded_write(path, v, n);
	} else {
		snprintf(title, sizeof(title), "%s profile of %s (pid %d), %.1f s at %d Hz",
			 o->wall ? "Wall-clock" : "CPU", comm, (int)pid, (st->end_ns - st->start_ns) / 1e9, o->freq);
		err = xp_flamegraph_write(path, title, "samples", v, n);
	}
	free(v);
	xp_cpu_stacks_free(stacks, n);
	return err;
}

int cmd_cpu(int argc, char **argv)
{
	struct cpu_opts o;
	struct xp_cpu *c = NULL;
	struct xp_cpu_opts co;
	const struct xp_cpu_stats *st;
	struct progress_ctx pc;
	struct child child = { -1, -1, -1 };
	char defpath[256], why[256], comm[64];
	const char *path;
	uint64_t lost;
	int rc, err, gone, launched = 0;
	struct child_end ch = { 0, 0, 0, 0 };
	pid_t pid;

	rc = parse(argc, argv, &o);
	if (rc >= 0)
		return rc;
	if (o.out && xp_check_output(o.out, o.format == FORMAT_PPROF) < 0)
		return XP_EXIT_FATAL;

	if (o.cmd) {
		err = spawn_held(o.cmd, &child, o.out && strcmp(o.out, "-") == 0);
		if (err < 0) {
			xp_msg("cannot start %s: %s", o.cmd[0], strerror(-err));
			return XP_EXIT_FATAL;
		}
		pid = child.pid;
		launched = 1;
		xp_escape(strrchr(o.cmd[0], '/') ? strrchr(o.cmd[0], '/') + 1 : o.cmd[0], comm, sizeof(comm));
	} else {
		pid = xp_check_target_for(o.pid, comm, sizeof(comm), o.wall);
		if (pid < 0)
			return XP_EXIT_FATAL;
	}
	xp_install_stop_signals(on_stop_signal);

	pc.o = &o;
	pc.launched = launched;
	memset(&co, 0, sizeof(co));
	co.pid = pid;
	co.comm = comm;
	co.duration_ns = o.duration_ns;
	co.freq = o.freq;
	co.wall = o.wall;
	co.kernel = !o.no_kernel;
	co.launched = launched;
	co.stop = &stop_requested;
	co.progress = show_progress;
	co.arg = &pc;
	err = xp_cpu_open(&co, &c);
	if (!o.wall && (err == -EACCES || err == -EPERM) && !launched &&
	    xp_explain_eperm(pid, why, sizeof(why)) == XP_EPERM_CREDENTIALS) {
		/* ptrace would be refused the same: no --wall fallback */
		xp_msg("cannot sample pid %d: operation not permitted (%s)", (int)pid, why);
		return XP_EXIT_FATAL;
	} else if (!o.wall && (err == -EACCES || err == -EPERM)) {
		xp_msg("perf_event_open refused for pid %d (kernel.perf_event_paranoid is %d and xprof "
		       "lacks CAP_PERFMON): sampling with --wall (ptrace) instead",
		       (int)pid, perf_paranoid());
		o.wall = co.wall = XP_WALL_PTRACE;
		err = xp_cpu_open(&co, &c);
	} else if (!o.wall && (err == -EMFILE || err == -ENFILE)) {
		struct rlimit rl = { 0, 0 };
		getrlimit(RLIMIT_NOFILE, &rl);
		xp_msg("pid %d has too many threads for one perf event per thread and CPU within the "
		       "open-file limit (%llu; ulimit -n): sampling with --wall (ptrace) instead",
		       (int)pid, (unsigned long long)rl.rlim_cur);
		o.wall = co.wall = XP_WALL_PTRACE;
		err = xp_cpu_open(&co, &c);
	}
	if (err < 0) {
		if (launched)
			kill(pid, SIGKILL), waitpid(pid, NULL, 0);
		xp_msg("cannot sample pid %d: %s", (int)pid, strerror(-err));
		return XP_EXIT_FATAL;
	}
	if (launched) {
		err = release_child(&child);
		if (err < 0) {
			waitpid(pid, NULL, 0);
			xp_msg("cannot run %s: %s", xp_esc(o.cmd[0]), strerror(-err));
			xp_cpu_close(c);
			/* as time(1), env(1) and the shell say it */
			return err == -ENOENT ? 127 : 126;
		}
	}
	if (!o.out) {
		static const char *const ext[] = { "pb.gz", "folded", "svg" };
		char kind[16];
		snprintf(kind, sizeof(kind), "cpu.%s", ext[o.format]);
		xp_default_output(defpath, sizeof(defpath), comm, pid, kind);
	}
	path = o.out ? o.out : defpath;

	err = xp_cpu_run(c);
	sampling_over = 1;
	if (isatty(2))
		fputs("\r\033[K", stderr);
	st = xp_cpu_stats(c);
	ch.exited = st->child_exited;
	ch.status = st->child_status;
	if (launched && ch.exited == 0) {
		ch.left = !end_child(pid, &ch.status, &ch.ended_by_us);
		ch.exited = !ch.left;
	}
	if (err < 0 && st->programs == 0 && !o.wall) {
		xp_msg("cannot read the memory map of pid %d: %s", (int)pid, strerror(-err));
		xp_cpu_close(c);
		return XP_EXIT_FATAL;
	}
	gone = st->gone;
	lost = st->lost;
	rc = lost ? XP_EXIT_PARTIAL : XP_EXIT_OK;
	if (err < 0) {
		xp_report_attach_error(pid, err);
		xp_cpu_close(c);
		return XP_EXIT_FATAL;
	}
	if (st->samples == 0 && (st->ticks_execd || st->ticks_unstopped)) {
		xp_msg("no samples: at every tick pid %d %s; nothing written", (int)pid,
		       st->ticks_execd ? "exec'd during each try to stop it" : "had no thread that would stop in time");
		xp_cpu_close(c);
		return XP_EXIT_FATAL;
	}
	if (st->samples == 0 && gone && !launched) {
		/* not "did not run": it may have, before the run began */
		xp_msg("no samples: pid %d exited before its first sample; nothing written", (int)pid);
		xp_cpu_close(c);
		return XP_EXIT_FATAL;
	}
	if (st->samples == 0) {
		xp_msg("no samples: pid %d did not run on a CPU%s; nothing written", (int)pid,
		       o.wall ? "" : " while sampled (try --wall to see where its threads wait)");
		xp_cpu_close(c);
		/* a command too short to be sampled is no failure of xprof's */
		if (launched && (rc = report_child(comm, pid, &ch)) >= 0)
			return rc;
		return XP_EXIT_FATAL;
	}
	snprintf(comm, sizeof(comm), "%s", st->comm);
	err = o.format == FORMAT_PPROF ? write_pprof(c, path) : write_flame(c, &o, comm, pid, path);
	st = xp_cpu_stats(c);
	if (err < 0) {
		xp_msg("cannot write %s: %s", xp_esc(path), strerror(-err));
		xp_cpu_close(c);
		return XP_EXIT_FATAL;
	}
	xp_msg("%s (pid %d): %" PRIu64 " samples over %.1f s at %d Hz, %zu threads, %.1f%% with a complete stack, %" PRIu64 " lost%s",
	       comm, (int)pid, st->samples, (st->end_ns - st->start_ns) / 1e9, o.freq, st->threads,
	       st->samples ? 100.0 * (double)st->complete / (double)st->samples : 0.0, lost,
	       o.wall && st->wall_perf ? ", wall-clock from perf (no thread stopped)" :
	       o.wall ? ", wall-clock" : st->kernel ? ", kernel frames included" : "");
	if (st->python && st->python[0]) {
		uint64_t in_time = st->py_samples - st->py_late;
		xp_msg("python %s (layouts: %s): %" PRIu64 " samples in Python code, %.1f%% with the Python frames "
		       "still the same when read", st->python, st->python_layout ? st->python_layout : "?", st->py_samples,
		       in_time ? 100.0 * (double)st->py_consistent / (double)in_time : 0.0);
		if (st->py_checked + st->py_corrected)
			xp_msg("python: the innermost Python frame agreed with the sampled registers in %.1f%% of samples "
			       "and was taken from them in %.1f%% (it had moved on when read)",
			       100.0 * (double)st->py_checked / (double)in_time,
			       100.0 * (double)st->py_corrected / (double)in_time);
		else if (in_time && st->python_check)
			xp_msg("python: no next_instr in the interpreter loop's DWARF: the innermost Python frames were "
			       "checked by %s only", st->python_check);
		if (st->py_late)
			xp_msg("python: %" PRIu64 " samples (%.1f%%) were read over 5 ms after they were taken (xprof "
			       "was starved of CPU) and show the interpreter loop, labelled python=late",
			       st->py_late, 100.0 * (double)st->py_late / (double)st->py_samples);
	}
	else if (st->python_problem && st->python_problem[0])
		xp_msg("python frames not shown: %s", xp_esc(st->python_problem));
	if (o.wall && !st->wall_perf && o.wall != XP_WALL_PTRACE)
		xp_msg("--wall: %s: every thread was stopped at each tick (ptrace) instead",
		       launched ? "perf does not follow a launched command's exec for context switches" :
		       st->wall_perf_err == -EACCES || st->wall_perf_err == -EPERM ?
				  "perf_event_open refused (CAP_PERFMON, or perf_event_paranoid 1 or less, allows it)" :
				  "perf's context-switch sampling could not be opened");
	xp_report_jit(&st->jit);
	if (lost)
		xp_msg("%" PRIu64 " samples were lost: the ring buffers filled faster than xprof drained them; "
		       "a lower -F loses fewer", lost);
	if (stop_requested)
		xp_msg("stopped early by a signal");
	if (st->ticks_spaced)
		xp_msg("--wall: each stop of pid %d took long enough (many threads) that %" PRIu64 " ticks were "
		       "delayed, to keep it stopped under a tenth of the time",
		       (int)pid, st->ticks_spaced);
	if (st->wall_missed) {
		xp_msg("--wall: %" PRIu64 " of %" PRIu64 " thread samples missing: those threads did not stop in "
		       "time (uninterruptible sleep, or a loaded machine)", st->wall_missed, st->wall_seen);
		rc = XP_EXIT_PARTIAL;
	}
	if (st->ticks_execd) {
		xp_msg("--wall: pid %d exec'd during each try of %" PRIu64 " ticks, which have no samples",
		       (int)pid, st->ticks_execd);
		rc = XP_EXIT_PARTIAL;
	}
	if (st->ticks_unstopped) {
		xp_msg("--wall: at %" PRIu64 " ticks no thread of pid %d stopped in time (uninterruptible "
		       "sleep): they have no samples", st->ticks_unstopped, (int)pid);
		rc = XP_EXIT_PARTIAL;
	}
	if (st->wall_refused == -EBUSY) {
		xp_msg("--wall: another process (a debugger?) began tracing pid %d: the run ended there, "
		       "with the samples before", (int)pid);
		rc = XP_EXIT_PARTIAL;
	} else if (st->wall_refused) {
		char why[256];
		xp_explain_eperm(pid, why, sizeof(why));
		xp_msg("--wall: pid %d could no longer be stopped (operation not permitted: %s): the run "
		       "ended there, with the samples before", (int)pid, why);
		rc = XP_EXIT_PARTIAL;
	}
	if (st->ticks_stopped)
		xp_msg("pid %d was stopped (SIGSTOP) at %" PRIu64 " of %" PRIu64 " ticks: its threads are labelled "
		       "state=stopped there%s",
		       (int)pid, st->ticks_stopped, st->ticks, st->left_stopped ? "; it is left stopped" : "");
	if (st->wall_execd) {
		xp_msg("--wall: pid %d exec'd a new program: the run ended there (--wall=ptrace follows execs)", (int)pid);
		rc = XP_EXIT_PARTIAL;
	}
	if (st->programs > 1)
		xp_msg("pid %d exec'd %zu time%s during the run (from %s to %s): each program's samples "
		       "are symbolized with its own modules",
		       (int)pid, st->programs - 1, st->programs > 2 ? "s" : "", st->first_comm, st->last_comm);
	if (st->too_many_execs) {
		xp_msg("stopped early: pid %d exec'd more than %d times; later programs are not sampled",
		       (int)pid, PROGRAMS_MAX - 1);
		rc = XP_EXIT_PARTIAL;
	}
	if (launched) {
		int child_rc = report_child(comm, pid, &ch);
		if (child_rc >= 0)
			rc = child_rc;
	} else if (gone) {
		xp_msg("pid %d exited during the run", (int)pid);
		rc = XP_EXIT_PARTIAL;
	}
	xp_report_wrote(path, o.format == FORMAT_PPROF ? NULL :
			      o.format == FORMAT_SVG ? "open it in a browser" :
			      "draw it with flamegraph.pl or inferno-flamegraph, or open it in speedscope");
	xp_cpu_close(c);
	return rc;
}
