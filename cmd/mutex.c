/* xprof mutex: where threads wait for locks, by the waiter's stack, with
 * the thread that held the lock.  Native programs: uprobes on glibc's lock
 * slow paths (collect/mutex.c), never a ptrace stop.  Go programs: the
 * mutex profile the runtime keeps.
 *
 * parse options → validate → put the probes in → wait for the duration,
 * the target's exit or Ctrl-C → take the probes out → write pprof.
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
#include "proto/profile.h"

#define DURATION_DEFAULT_NS (30LL * 1000000000)

static void usage(FILE *f)
{
	fputs("usage: xprof mutex -p PID [-d DURATION] [-o FILE]\n"
	      "\n"
	      "Measures lock contention: every time a thread waits for a pthread mutex\n"
	      "(std::mutex too) or an rwlock, how long it waited, by its stack, and\n"
	      "which thread held the lock.  Uprobes on glibc's\n"
	      "lock slow path (__lll_lock_wait, __futex_abstimed_wait64, __lll_lock_wake)\n"
	      "through perf_event_open: a lock taken without waiting costs nothing, the\n"
	      "process is never stopped, and the breakpoints go when xprof ends, however\n"
	      "it ends.  Ctrl-C stops early and still writes the profile.  Taking the\n"
	      "probes out takes the kernel 40-60 ms per thread and probe (five per\n"
	      "thread), one at a time: some 20 s for 50 threads, after the profile is\n"
	      "written.\n"
	      "\n"
	      "Sample types contentions/count and delay/nanoseconds, as Go's mutex\n"
	      "profile; labels thread and tid (the waiter), lock (mutex or rwlock)\n"
	      "and holder, holder_tid (the thread whose unlock ended the wait: the one\n"
	      "that held the mutex when the wait began; not known for rwlocks).\n"
	      "\n"
	      "A Go program gets the mutex profile its runtime keeps (since it started,\n"
	      "when it called runtime.SetMutexProfileFraction), as runtime/pprof writes it.\n"
	      "\n"
	      "  -p, --pid PID       the process\n"
	      "  -d, --duration D    how long: 500ms, 30s, 2m (default 30s; not for Go)\n"
	      "  -o, --output FILE   where to write (default xprof.COMM.PID.mutex.pb.gz)\n"
	      "  -h, --help          this help\n"
	      "\n"
	      "Needs root or CAP_PERFMON (the uprobe PMU asks for it) and libc's debug\n"
	      "info (Debian: apt install libc6-dbg).  Exit status: 0 written, 1 written\n"
	      "but the target exited early or waits were lost, 2 failure, 64 bad usage.\n",
	      f);
}

static int parse(int argc, char **argv, struct xp_watch_opts *o)
{
	static const struct option longopts[] = {
		XP_WATCH_LONGOPTS,
		{ NULL, 0, NULL, 0 },
	};
	int c, rc;

	xp_watch_opts_init(o, DURATION_DEFAULT_NS);
	while ((c = getopt_long(argc, argv, XP_WATCH_SHORTOPTS, longopts, NULL)) != -1) {
		if (c == 'h') {
			usage(stdout);
			return XP_EXIT_OK;
		}
		if ((rc = xp_watch_option("mutex", c, argv, o)) != 0)
			return rc;
	}
	return xp_watch_opts_done("mutex", argc, argv, o);
}

static void show_progress(void *arg, const struct xp_mutex_stats *st, int64_t now)
{
	const struct xp_watch_opts *o = arg;
	static int64_t last;

	if (!isatty(2) || now - last < 250000000)
		return;
	last = now;
	fprintf(stderr, "\rxprof: %.1fs of %.0fs, %" PRIu64 " waits, %zu threads\033[K", (now - st->start_ns) / 1e9,
		o->duration_ns / 1e9, st->waits, st->threads);
}

int cmd_mutex(int argc, char **argv)
{
	struct xp_watch_opts o;
	struct xp_mutex *m = NULL;
	struct xp_mutex_opts mo;
	const struct xp_mutex_stats *st;
	struct xp_profile *p = NULL;
	char comm[64], defpath[256], why[512];
	const char *path;
	pid_t pid;
	int rc, err;

	rc = parse(argc, argv, &o);
	if (rc >= 0)
		return rc;
	pid = xp_watch_target(&o, "mutex.pb.gz", comm, sizeof(comm), defpath, sizeof(defpath), &path);
	if (pid < 0)
		return XP_EXIT_FATAL;
	/* a Go program: the runtime's own mutex profile */
	if ((rc = xp_watch_go(pid, comm, path, XP_GO_MUTEX)) >= 0)
		return rc;

	xp_watch_signals();
	memset(&mo, 0, sizeof(mo));
	mo.pid = pid;
	mo.duration_ns = o.duration_ns;
	mo.stop = &xp_stop_requested;
	mo.progress = show_progress;
	mo.arg = &o;
	err = xp_mutex_open(&mo, &m, why, sizeof(why));
	if (err < 0) {
		char msg[768];
		if (xp_mutex_open_error(pid, comm, err, why, msg, sizeof(msg)) == 0)
			xp_msg("%s", msg);
		else
			xp_report_attach_error(pid, err);
		return XP_EXIT_FATAL;
	}
	err = xp_mutex_run(m);
	if (isatty(2))
		fputs("\r\033[K", stderr);
	st = xp_mutex_stats(m);
	if (err < 0) {
		xp_msg("measuring lock contention of pid %d failed: %s", (int)pid, strerror(-err));
		rc = XP_EXIT_FATAL;
		goto out;
	}
	err = xp_mutex_profile(m, &p);
	if (err == 0)
		err = xp_profile_write(p, path);
	if (err < 0) {
		xp_msg("cannot write %s: %s", xp_esc(path), strerror(-err));
		rc = XP_EXIT_FATAL;
		goto out;
	}
	xp_msg("pid %d (%s): %" PRIu64 " lock waits in %.1f s, %.3f s waited in all, %" PRIu64
	       " with their holder known; %zu threads",
	       (int)pid, comm, st->waits, (st->end_ns - st->start_ns) / 1e9, st->delay_ns / 1e9, st->with_holder,
	       st->threads);
	if (st->unmatched || st->open_at_end)
		xp_msg("not counted: %" PRIu64 " waits begun before the probes were in (or with hits lost), "
		       "%zu still going at the end",
		       st->unmatched, st->open_at_end);
	rc = XP_EXIT_OK;
	if (xp_stop_requested)
		xp_msg("stopped early by a signal");
	if (st->gone) {
		xp_msg("pid %d exited during the run: the profile covers %.1f s", (int)pid,
		       (st->end_ns - st->start_ns) / 1e9);
		rc = XP_EXIT_PARTIAL;
	}
	if (st->lost || st->dropped) {
		xp_msg("%" PRIu64 " probe hits lost (the kernel's ring buffers were full) and %" PRIu64
		       " dropped: some waits are missing",
		       st->lost, st->dropped);
		rc = XP_EXIT_PARTIAL;
	}
	xp_report_wrote(path, NULL);
	if (isatty(2))
		fprintf(stderr, "xprof: taking out %zu probes...", 5 * st->threads);
out:
	xp_profile_free(p);
	xp_mutex_close(m);
	if (isatty(2) && rc != XP_EXIT_FATAL)
		fputs("\r\033[K", stderr);
	return rc;
}
