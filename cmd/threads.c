/* xprof threads: every thread's stack at one instant, in the shape of Go's
 * goroutine dump, or as a pprof profile with one sample per thread.
 *
 * parse options → check the target → stop, copy, release → unwind and
 * symbolize the copies → find mutex owners and deadlocks → print or write.
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
#include "gort/gort.h"
#include "proto/profile.h"
#include "symbolize/symbolize.h"
#include "unwind/unwind.h"

struct threads_opts {
	pid_t pid;
	int group;
	int native;
	const char *out;
};

static void usage(FILE *f)
{
	fputs("usage: xprof threads -p PID [--group] [--native] [-o FILE.pb.gz]\n"
	      "\n"
	      "Stops every thread of a running process for as short a time as possible,\n"
	      "copies its registers and live stack, lets the process go, then unwinds\n"
	      "and symbolizes each thread's stack and prints it, Go-dump style.\n"
	      "\n"
	      "  -p, --pid PID     the process to dump (any of its thread ids works too)\n"
	      "  -g, --group       print threads with identical stacks once, with their\n"
	      "                    count and tids (the text dump; a Go program's OS\n"
	      "                    threads with --native)\n"
	      "  -o, --output FILE write a pprof profile instead of text: one sample per\n"
	      "                    thread (threads/count), labels tid, thread, state;\n"
	      "                    for a Go program one sample per goroutine\n"
	      "                    (goroutine/count), labels goroutine, state and its\n"
	      "                    own pprof labels; open it with: go tool pprof -http=: FILE\n"
	      "      --native      for a Go program, print the OS threads' own stacks\n"
	      "                    (cgo, system calls, the runtime) after the goroutines\n"
	      "                    (the text dump: not with -o)\n"
	      "  -h, --help        this help\n"
	      "\n"
	      "A Go program (1.18 or later) gets its goroutines, printed as Go's own\n"
	      "runtime.Stack dump prints them, read while its threads are stopped.\n"
	      "\n"
	      "A thread blocked on a pthread mutex shows the mutex and the thread that\n"
	      "holds it; threads waiting for each other in a cycle are reported as a\n"
	      "deadlock before the dump.  A summary (threads, frames, how long the\n"
	      "process was stopped) goes to stderr.\n"
	      "\n"
	      "Exit status: 0 all stacks complete, 1 some stacks incomplete, 2 failure,\n"
	      "64 bad usage.\n",
	      f);
}

static int parse(int argc, char **argv, struct threads_opts *o)
{
	static const struct option longopts[] = {
		{ "pid", required_argument, NULL, 'p' },
		{ "group", no_argument, NULL, 'g' },
		{ "native", no_argument, NULL, 'N' },
		{ "output", required_argument, NULL, 'o' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int c;

	memset(o, 0, sizeof(*o));
	optind = 1;
	opterr = 0; /* xp_option_error says it in one line */
	while ((c = getopt_long(argc, argv, ":p:go:h", longopts, NULL)) != -1) {
		switch (c) {
		case 'p':
			o->pid = xp_parse_pid(optarg);
			if (o->pid < 0)
				return XP_EXIT_USAGE;
			break;
		case 'g':
			o->group = 1;
			break;
		case 'N':
			o->native = 1;
			break;
		case 'o':
			if (xp_parse_output("threads", optarg, &o->out) < 0)
				return XP_EXIT_USAGE;
			break;
		case 'h':
			usage(stdout);
			return XP_EXIT_OK;
		default:
			return xp_option_error("threads", c, argv);
		}
	}
	if (optind < argc) {
		xp_msg("threads: unexpected argument '%s'", argv[optind]);
		return XP_EXIT_USAGE;
	}
	if (o->pid <= 0) {
		xp_msg("threads: -p PID is required (try 'xprof threads --help')");
		return XP_EXIT_USAGE;
	}
	/* options that would be ignored are refused */
	if (o->group && o->out) {
		xp_msg("threads: --group is for the text dump, and -o writes a profile (pprof groups "
		       "identical stacks itself): give one of them");
		return XP_EXIT_USAGE;
	}
	if (o->native && o->out) {
		xp_msg("threads: --native adds OS threads to the text dump, and -o writes a profile: give "
		       "one of them");
		return XP_EXIT_USAGE;
	}
	return -1; /* go on */
}

/* The goroutines of a Go program: printed or written.  An exit code, or -1
 * when they could not be read (said): the native dump goes on. */
static int go_dump(const struct threads_opts *o, struct xp_thread_dump *dp, struct xp_go_target *gt,
		   const struct xp_goroutines *gs, int64_t t0)
{
	size_t i, shown = 0, incomplete = 0, system = 0;
	int err;

	if (gs->n == 0 || (dp->snap.hold_err < 0 && !gs->problem[0])) {
		xp_msg("cannot read the goroutines of pid %d: %s; dumping its threads instead", (int)dp->pid,
		       gs->problem[0] ? xp_esc(gs->problem) : strerror(-dp->snap.hold_err));
		return -1;
	}
	for (i = 0; i < gs->n; i++)
		system += gs->v[i].system;
	if (o->out) {
		struct xp_profile *p;
		err = xp_go_goroutine_profile(gt, gs, &dp->snap, &p);
		if (err == 0) {
			err = xp_profile_write(p, o->out);
			xp_profile_free(p);
		}
		if (err < 0) {
			xp_msg("cannot write %s: %s", xp_esc(o->out), strerror(-err));
			return XP_EXIT_FATAL;
		}
		shown = gs->n - system;
	} else {
		static char obuf[1 << 16];
		setvbuf(stdout, obuf, _IOFBF, sizeof(obuf));
		shown = xp_go_print_goroutines(gt->go, gs, stdout, &incomplete);
		if (fflush(stdout) != 0) {
			xp_msg("cannot write the dump: %s", strerror(errno));
			return XP_EXIT_FATAL;
		}
		if (!o->native)
			xp_write_hold_signals(); /* printed: the run is complete */
	}
	xp_msg("pid %d (%s): %s (layouts: %s), %zu goroutines (and %zu of the runtime's, not shown), "
	       "process stopped for %.2f ms, total %.0f ms",
	       (int)dp->pid, dp->comm, xp_esc(xp_go_version(gt->go)), xp_go_layout_source(gt->go), shown, system,
	       dp->snap.stopped_ns / 1e6, (xp_now_ns() - t0) / 1e6);
	if (gs->problem[0])
		xp_msg("the dump is partial: %s", xp_esc(gs->problem));
	if (gs->truncated)
		xp_msg("%zu goroutine stacks were longer than %d KiB: their outer frames are missing", gs->truncated,
		       XP_GO_STACK_COPY_MAX / 1024);
	if (incomplete)
		xp_msg("%zu of %zu goroutine tracebacks are incomplete", incomplete, shown);
	if (o->out)
		xp_report_wrote(o->out, NULL);
	return gs->problem[0] || incomplete ? XP_EXIT_PARTIAL : XP_EXIT_OK;
}

/* CPython: its version, its threads, the GIL holder. */
static void python_report(const struct xp_thread_dump *dp)
{
	const struct xp_thread_stack *holder = NULL;
	size_t i;

	for (i = 0; i < dp->n && !holder; i++)
		if (dp->d[i].holds_gil)
			holder = &dp->d[i];
	if (holder)
		xp_msg("python %s (layouts: %s): %zu Python threads, %zu Python frames; the GIL is held by thread %d \"%s\"",
		       dp->python, dp->python_layout, dp->python_threads, dp->python_frames, (int)holder->t->tid,
		       xp_esc(holder->t->name));
	else
		xp_msg("python %s (layouts: %s): %zu Python threads, %zu Python frames; %s", dp->python, dp->python_layout,
		       dp->python_threads, dp->python_frames,
		       dp->gil_locked ? "the GIL is held by no thread xprof knows" : "no thread holds the GIL");
	if (dp->python_moved)
		xp_msg("%zu Python threads ran on between the stop and the read of their Python frames: their "
		       "innermost Python frames may be later than their native stack", dp->python_moved);
}

int cmd_threads(int argc, char **argv)
{
	struct threads_opts o;
	struct xp_thread_dump dp;
	struct xp_go_target gt;
	struct xp_goroutines gs;
	int rc, err, deadlocks = 0, go_rc = -1, is_go;
	int64_t t0 = xp_now_ns();

	rc = parse(argc, argv, &o);
	if (rc >= 0)
		return rc;
	if (o.out && xp_check_output(o.out, 1) < 0)
		return XP_EXIT_FATAL;
	if (!o.out && xp_stdout_closed) {
		xp_msg("standard output is closed: nowhere to print the dump (use -o FILE for a profile)");
		return XP_EXIT_FATAL;
	}
	memset(&dp, 0, sizeof(dp));
	dp.pid = xp_check_target(o.pid, dp.comm, sizeof(dp.comm));
	if (dp.pid < 0)
		return XP_EXIT_FATAL;

	xp_attach_signals();
	memset(&gs, 0, sizeof(gs));
	is_go = xp_go_target_open_said(dp.pid, dp.comm, &gt);
	if (is_go == -ENOTSUP) {
		xp_msg("dumping its OS threads instead");
		is_go = 0;
	}
	if (is_go < 0) {
		xp_report_attach_error(dp.pid, is_go);
		return XP_EXIT_FATAL;
	}
	if (is_go && o.group && !o.native) {
		xp_msg("threads: --group groups OS threads, and pid %d (%s) is a Go program whose goroutines "
		       "are printed as Go prints them: add --native to group its OS threads after them",
		       (int)dp.pid, dp.comm);
		xp_go_target_close(&gt);
		return XP_EXIT_USAGE;
	}
	gs.go = gt.go;
	if (is_go)
		err = xp_snapshot_take_with(dp.pid, &dp.snap, xp_go_read_goroutines, &gs);
	else
		err = xp_snapshot_take(dp.pid, &dp.snap);
	if (err < 0) {
		xp_report_attach_error(dp.pid, err);
		xp_goroutines_free(&gs);
		xp_go_target_close(&gt);
		return XP_EXIT_FATAL;
	}
	if (is_go) {
		xp_goroutines_finish(&gs);
		go_rc = go_dump(&o, &dp, &gt, &gs, t0);
		xp_goroutines_free(&gs);
		xp_go_target_close(&gt);
		if (go_rc >= 0 && (!o.native || o.out || go_rc == XP_EXIT_FATAL)) {
			xp_snapshot_free(&dp.snap);
			return go_rc;
		}
		if (go_rc >= 0)
			fputs("\n", stdout);
	}
	err = xp_threads_unwind(&dp, NULL);
	if (err < 0) {
		xp_msg("cannot unwind pid %d: %s", (int)dp.pid, strerror(-err));
		xp_threads_free(&dp);
		return XP_EXIT_FATAL;
	}

	if (o.out) {
		struct xp_profile *p;
		err = xp_threads_profile(&dp, &p);
		if (err == 0) {
			err = xp_profile_write(p, o.out);
			xp_profile_free(p);
		}
		if (err < 0) {
			xp_msg("cannot write %s: %s", xp_esc(o.out), strerror(-err));
			xp_threads_free(&dp);
			return XP_EXIT_FATAL;
		}
	} else {
		static char obuf[1 << 16];
		err = 0;
		setvbuf(stdout, obuf, _IOFBF, sizeof(obuf));
		deadlocks = xp_threads_deadlocks(&dp, stdout);
		if (o.group)
			err = xp_threads_print_grouped(&dp, stdout);
		else
			xp_threads_print(&dp, stdout);
		if (err < 0 || fflush(stdout) != 0) {
			xp_msg("cannot write the dump: %s", strerror(err < 0 ? -err : errno));
			xp_threads_free(&dp);
			return XP_EXIT_FATAL;
		}
		xp_write_hold_signals(); /* printed: the run is complete */
	}

	xp_msg("pid %d (%s): %zu threads, %zu frames, process stopped for %.2f ms, "
	       "total %.0f ms (unwind and symbolize %.0f ms)",
	       (int)dp.pid, dp.comm, dp.n, dp.frames, dp.snap.stopped_ns / 1e6,
	       (xp_now_ns() - t0) / 1e6, dp.unwind_ns / 1e6);
	if (dp.python[0])
		python_report(&dp);
	else if (dp.python_problem[0])
		xp_msg("python frames not shown: %s", xp_esc(dp.python_problem));
	if (dp.snap.process_was_stopped)
		xp_msg("the process was stopped (SIGSTOP) when xprof came and is left stopped");
	if (xp_live_thread(dp.pid) != dp.pid)
		xp_msg("its main thread (tid %d) has exited (pthread_exit): it is not in the dump", (int)dp.pid);
	if (dp.incomplete)
		xp_msg("%zu of %zu stacks are incomplete%s", dp.incomplete, dp.n,
		       dp.snap.not_stopped ? " (some threads did not stop in time)" : "");
	if (dp.capped)
		xp_msg("%zu stacks were cut at %d frames", dp.capped, XP_MAX_FRAMES);
	if (dp.space) {
		struct xp_jit_stats js;
		xp_space_jit_stats(dp.space, &js);
		xp_report_jit(&js);
	}
	if (deadlocks)
		xp_msg("%d deadlock%s found: see the top of the dump", deadlocks, deadlocks > 1 ? "s" : "");
	if (o.out)
		xp_report_wrote(o.out, NULL);
	rc = dp.incomplete ? XP_EXIT_PARTIAL : XP_EXIT_OK;
	if (go_rc > rc)
		rc = go_rc;
	xp_threads_free(&dp);
	return rc;
}
