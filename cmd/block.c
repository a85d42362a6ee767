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
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "attach/attach.h"
#include "cmd/cmd.h"
#include "collect/collect.h"

#define DURATION_DEFAULT_NS (30LL * 1000000000)

struct block_opts {
	struct xp_watch_opts w;      /* -p, -d, -o */
	int preempted;
	int native;
};

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
		XP_WATCH_LONGOPTS,
		{ "preempted", no_argument, NULL, OPT_PREEMPTED },
		{ "native", no_argument, NULL, OPT_NATIVE },
		{ NULL, 0, NULL, 0 },
	};
	int c, rc;

	memset(o, 0, sizeof(*o));
	xp_watch_opts_init(&o->w, DURATION_DEFAULT_NS);
	while ((c = getopt_long(argc, argv, XP_WATCH_SHORTOPTS, longopts, NULL)) != -1) {
		switch (c) {
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
			if ((rc = xp_watch_option("block", c, argv, &o->w)) != 0)
				return rc;
		}
	}
	return xp_watch_opts_done("block", argc, argv, &o->w);
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
	char defpath[256], comm[64];
	const char *path;
	int rc, err;
	pid_t pid;

	rc = parse(argc, argv, &o);
	if (rc >= 0)
		return rc;
	pid = xp_watch_target(&o.w, "block.pb.gz", comm, sizeof(comm), defpath, sizeof(defpath), &path);
	if (pid < 0)
		return XP_EXIT_FATAL;
	/* a Go program: the runtime's own block profile */
	if (!o.native && (rc = xp_watch_go(pid, comm, path, XP_GO_BLOCK)) >= 0)
		return rc;
	xp_watch_signals();
	memset(&bo, 0, sizeof(bo));
	bo.pid = pid;
	bo.duration_ns = o.w.duration_ns;
	bo.preempted = o.preempted;
	bo.stop = &xp_stop_requested;
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
	if (xp_stop_requested)
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
