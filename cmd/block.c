/* xprof block: where the threads of a process wait off the CPU, by stack,
 * from perf's context-switch samples: no thread is ever stopped.  A Go
 * program's block profile is its runtime's own (SetBlockProfileRate).
 *
 * parse options → validate → open the switch sampling → run until the
 * duration ends, the target exits or Ctrl-C → write pprof → report.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "attach/attach.h"
#include "cmd/cmd.h"
#include "collect/collect.h"

#define DURATION_DEFAULT_NS (30LL * 1000000000)

struct block_opts {
	pid_t pid;
	int64_t duration_ns;
	const char *out;
	int preempted;
	int native;
};

static volatile sig_atomic_t stop_requested;

static void on_stop_signal(int sig)
{
	if (stop_requested) { /* a second Ctrl-C: leave now */
		signal(sig, SIG_DFL);
		raise(sig);
	}
	stop_requested = 1;
}

static void usage(FILE *f)
{
	fputs("usage: xprof block -p PID [-d DURATION] [-o FILE] [--preempted] [--native]\n"
	      "\n"
	      "Where the threads of a running process wait: each time a thread leaves\n"
	      "the CPU, perf_event_open samples its stack, and its return says how long\n"
	      "it was away.  No thread is stopped (no ptrace).  Ctrl-C ends early and\n"
	      "still writes the profile.\n"
	      "\n"
	      "Sample types contentions/count and delay/nanoseconds, as Go's block\n"
	      "profile.  Labels: thread, tid, reason (the system call it waited in:\n"
	      "futex, read, epoll_wait, clock_nanosleep...; page_fault; unknown) and\n"
	      "wchan (the kernel function it slept in).  A thread preempted while it\n"
	      "could run is not blocked: left out, or with --preempted kept under\n"
	      "reason=preempted.  Keep one kind with go tool pprof -tagfocus=reason=futex.\n"
	      "\n"
	      "  -p, --pid PID       the process\n"
	      "  -d, --duration D    how long: 500ms, 30s, 2m (default 30s)\n"
	      "  -o, --output FILE   where to write (default xprof.COMM.PID.block.pb.gz)\n"
	      "      --preempted     keep involuntary switches too (reason=preempted)\n"
	      "      --native        a Go program's threads off the CPU, not its runtime's\n"
	      "                      block profile\n"
	      "  -h, --help          this help\n"
	      "\n"
	      "A Go program gets its runtime's block profile (it must call\n"
	      "runtime.SetBlockProfileRate), read during a stop of a few milliseconds.\n"
	      "\n"
	      "Exit status: 0 written, 1 written but the target exited or execs during\n"
	      "the run, or records were lost, 2 failure, 64 bad usage.\n",
	      f);
}

static int parse(int argc, char **argv, struct block_opts *o)
{
	enum { OPT_PREEMPTED = 256, OPT_NATIVE };
	static const struct option longopts[] = {
		{ "pid", required_argument, NULL, 'p' },
		{ "duration", required_argument, NULL, 'd' },
		{ "output", required_argument, NULL, 'o' },
		{ "preempted", no_argument, NULL, OPT_PREEMPTED },
		{ "native", no_argument, NULL, OPT_NATIVE },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int c;

	memset(o, 0, sizeof(*o));
	o->duration_ns = DURATION_DEFAULT_NS;
	optind = 1;
	opterr = 0; /* xp_option_error says it in one line */
	while ((c = getopt_long(argc, argv, ":p:d:o:h", longopts, NULL)) != -1) {
		switch (c) {
		case 'p':
			if ((o->pid = xp_parse_pid(optarg)) < 0)
				return XP_EXIT_USAGE;
			break;
		case 'd':
			if (xp_option_duration("block", optarg, &o->duration_ns) != 0)
				return XP_EXIT_USAGE;
			break;
		case 'o':
			if (xp_parse_output("block", optarg, &o->out) < 0)
				return XP_EXIT_USAGE;
			break;
		case OPT_PREEMPTED:
			o->preempted = 1;
			break;
		case OPT_NATIVE:
			o->native = 1;
			break;
		case 'h':
			usage(stdout);
			return XP_EXIT_OK;
		default:
			return xp_option_error("block", c, argv);
		}
	}
	if (optind < argc) {
		xp_msg("block: unexpected argument '%s'", argv[optind]);
		return XP_EXIT_USAGE;
	}
	if (o->pid <= 0) {
		xp_msg("block: -p PID is required (try 'xprof block --help')");
		return XP_EXIT_USAGE;
	}
	return -1;
}

static double secs(int64_t ns)
{
	return (double)ns / 1e9;
}

int cmd_block(int argc, char **argv)
{
	struct block_opts o;
	struct xp_offcpu_opts bo;
	struct xp_offcpu *c = NULL;
	const struct xp_offcpu_stats *st;
	struct xp_profile *p = NULL;
	struct xp_go_target gt;
	char defpath[256], comm[64];
	const char *path;
	int rc, err;
	pid_t pid;

	rc = parse(argc, argv, &o);
	if (rc >= 0)
		return rc;
	if (o.out && xp_check_output(o.out, 1) < 0)
		return XP_EXIT_FATAL;
	pid = xp_check_target_for(o.pid, comm, sizeof(comm), 0);
	if (pid < 0)
		return XP_EXIT_FATAL;
	if (!o.out)
		xp_default_output(defpath, sizeof(defpath), comm, pid, "block.pb.gz");
	path = o.out ? o.out : defpath;
	if (!o.native) {
		/* a Go program: the runtime's own block profile */
		memset(&gt, 0, sizeof(gt));
		err = xp_go_target_open_said(pid, comm, &gt);
		if (err != 0) {
			rc = XP_EXIT_FATAL;
			if (err == 1)
				rc = xp_go_heap(&gt, pid, comm, path, xp_now_ns(), XP_GO_BLOCK);
			else if (err != -ENOTSUP)
				xp_report_attach_error(pid, err);
			xp_go_target_close(&gt);
			return rc;
		}
	}
	xp_install_stop_signals(on_stop_signal);
	memset(&bo, 0, sizeof(bo));
	bo.pid = pid;
	bo.duration_ns = o.duration_ns;
	bo.preempted = o.preempted;
	bo.stop = &stop_requested;
	err = xp_offcpu_open(&bo, &c);
	if (err < 0) {
		char why[512];
		xp_offcpu_open_error(pid, err, why, sizeof(why));
		xp_msg("%s", why);
		return XP_EXIT_FATAL;
	}
	err = xp_offcpu_run(c);
	st = xp_offcpu_stats(c);
	if (err < 0) {
		xp_msg("cannot read the context switches of pid %d: %s", (int)pid, strerror(-err));
		goto fail;
	}
	if ((err = xp_offcpu_profile(c, &p)) < 0 || (err = xp_profile_write(p, path)) < 0) {
		xp_msg("cannot write %s: %s", xp_esc(path), strerror(-err));
		goto fail;
	}
	rc = XP_EXIT_OK;
	xp_msg("%s (pid %d): %.1f s, %zu threads: %" PRIu64 " waits, %.3f s blocked; %" PRIu64
	       " preemptions, %.3f s runnable (%s); %.1f%% of %" PRIu64 " stacks complete",
	       comm, (int)pid, secs(st->end_ns - st->start_ns), st->threads, st->count[XP_OFFCPU_BLOCKED],
	       secs(st->ns[XP_OFFCPU_BLOCKED]), st->count[XP_OFFCPU_PREEMPTED], secs(st->ns[XP_OFFCPU_PREEMPTED]),
	       o.preempted ? "reason=preempted" : "left out", st->samples ? 100.0 * (double)st->complete / (double)st->samples : 0.0,
	       st->samples);
	if (st->count[XP_OFFCPU_STOPPED])
		xp_msg("%" PRIu64 " threads were stopped (SIGSTOP) when the run began: %.3f s under reason=stopped",
		       st->count[XP_OFFCPU_STOPPED], secs(st->ns[XP_OFFCPU_STOPPED]));
	if (!st->kernel)
		xp_msg("no kernel call chains (perf_event_paranoid): reason is the system call only for threads "
		       "already waiting at the start, unknown for the others");
	if (st->lost) {
		xp_msg("%" PRIu64 " records were lost (ring buffers full): %" PRIu64 " waits have no stack",
		       st->lost, st->unmatched);
		rc = XP_EXIT_PARTIAL;
	}
	if (stop_requested)
		xp_msg("stopped early by a signal");
	if (st->execd) {
		xp_msg("pid %d exec'd a new program: the run ended there", (int)pid);
		rc = XP_EXIT_PARTIAL;
	} else if (st->gone) {
		xp_msg("pid %d exited during the run", (int)pid);
		rc = XP_EXIT_PARTIAL;
	}
	xp_report_wrote(path, NULL);
	xp_profile_free(p);
	xp_offcpu_close(c);
	return rc;
fail:
	xp_profile_free(p);
	xp_offcpu_close(c);
	return XP_EXIT_FATAL;
}
