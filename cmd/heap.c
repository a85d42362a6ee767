/* xprof heap: what a glibc program's heap holds right now, and why.
 *
 * parse options → check the target and its allocator → stop every thread,
 * copy the heap, globals and stacks, let the process go → type and trace
 * every in-use block from the copies → write a pprof heap profile whose
 * stacks are the blocks' stories (type, holders, root).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attach/attach.h"
#include "cmd/cmd.h"
#include "heapwalk/heapwalk.h"
#include "proto/profile.h"
#include "symbolize/symbolize.h"

struct heap_opts {
	pid_t pid;
	const char *out;
	enum xp_go_profile go_kind; /* --block, --mutex: a Go program's other profiles */
};

static void usage(FILE *f)
{
	fputs("usage: xprof heap -p PID [-o FILE.pb.gz] [--block | --mutex]\n"
	      "\n"
	      "Writes every block glibc malloc holds in use right now, read from outside\n"
	      "(no allocator hooks, no preload): the main arena, every thread arena and\n"
	      "the mmapped chunks, less the chunks sitting free in fastbins and tcaches.\n"
	      "The process is stopped while the heap is copied, then let go.\n"
	      "\n"
	      "Each sample's stack is a block's story, leaf first: its type (the C++\n"
	      "class of its vtable, else a size class such as [malloc 48]), the types of\n"
	      "the blocks that hold it, and its root: [global] NAME, [stack] FUNCTION, or\n"
	      "[unreachable] when nothing reaches it: a leak (found conservatively).\n"
	      "Sample types inuse_objects/count and inuse_space/bytes (usable size).\n"
	      "\n"
	      "A Go program (1.18 or later) gets instead the heap profile its runtime\n"
	      "keeps (runtime.mbuckets), as runtime/pprof would write it at that moment:\n"
	      "alloc_objects, alloc_space, inuse_objects, inuse_space with allocation\n"
	      "stacks, sampled every runtime.MemProfileRate bytes and scaled as pprof\n"
	      "scales them.  Needs the binary's symbol table (not -ldflags=-s), or its\n"
	      "debug file by build id (Debian's -dbgsym package, or XPROF_DEBUG_DIRS).\n"
	      "With --block or --mutex, its block or mutex contention profile instead\n"
	      "(contentions/count, delay/nanoseconds, as runtime/pprof writes them), when\n"
	      "the program turned it on (runtime.SetBlockProfileRate,\n"
	      "runtime.SetMutexProfileFraction).\n"
	      "\n"
	      "  -p, --pid PID       the process\n"
	      "  -o, --output FILE   where to write (default xprof.COMM.PID.heap.pb.gz,\n"
	      "                      .block.pb.gz, .mutex.pb.gz)\n"
	      "      --block         a Go program's block profile\n"
	      "      --mutex         a Go program's mutex profile\n"
	      "  -h, --help          this help\n"
	      "\n"
	      "Needs libc's debug info (Debian: apt install libc6-dbg) to find malloc's\n"
	      "state.  Exit status: 0 written, 1 written but the walk met a corrupt heap\n"
	      "and stopped there, 2 failure, 64 bad usage.\n",
	      f);
}

static int parse(int argc, char **argv, struct heap_opts *o)
{
	static const struct option longopts[] = {
		{ "pid", required_argument, NULL, 'p' },
		{ "output", required_argument, NULL, 'o' },
		{ "block", no_argument, NULL, 'B' },
		{ "mutex", no_argument, NULL, 'M' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int c;

	memset(o, 0, sizeof(*o));
	optind = 1;
	opterr = 0; /* xp_option_error says it in one line */
	while ((c = getopt_long(argc, argv, ":p:o:h", longopts, NULL)) != -1) {
		switch (c) {
		case 'p':
			o->pid = xp_parse_pid(optarg);
			if (o->pid < 0)
				return XP_EXIT_USAGE;
			break;
		case 'o':
			if (xp_parse_output("heap", optarg, &o->out) < 0)
				return XP_EXIT_USAGE;
			break;
		case 'B':
		case 'M':
			if (o->go_kind != XP_GO_HEAP && o->go_kind != (c == 'B' ? XP_GO_BLOCK : XP_GO_MUTEX)) {
				xp_msg("heap: --block and --mutex are two profiles: ask for one at a time");
				return XP_EXIT_USAGE;
			}
			o->go_kind = c == 'B' ? XP_GO_BLOCK : XP_GO_MUTEX;
			break;
		case 'h':
			usage(stdout);
			return XP_EXIT_OK;
		default:
			return xp_option_error("heap", c, argv);
		}
	}
	if (optind < argc) {
		xp_msg("heap: unexpected argument '%s'", argv[optind]);
		return XP_EXIT_USAGE;
	}
	if (o->pid <= 0) {
		xp_msg("heap: -p PID is required (try 'xprof heap --help')");
		return XP_EXIT_USAGE;
	}
	return -1;
}

static double mib(uint64_t b)
{
	return (double)b / (1024.0 * 1024.0);
}

int cmd_heap(int argc, char **argv)
{
	struct heap_opts o;
	struct xp_heap h;
	struct xp_snapshot snap;
	struct xp_maps maps = { 0 };
	struct xp_mem *live = NULL;
	struct xp_space *space = NULL;
	struct xp_go_target gt;
	char comm[64], defpath[256];
	const char *path, *what;
	pid_t pid;
	int rc, err;
	uint64_t exec_id;
	int64_t t0 = xp_now_ns();
	enum xp_heap_stage stage;
	struct xp_profile *p = NULL;

	rc = parse(argc, argv, &o);
	if (rc >= 0)
		return rc;
	if (o.out && xp_check_output(o.out, 1) < 0)
		return XP_EXIT_FATAL;
	pid = xp_check_target(o.pid, comm, sizeof(comm));
	if (pid < 0)
		return XP_EXIT_FATAL;
	memset(&h, 0, sizeof(h));
	memset(&snap, 0, sizeof(snap));
	rc = XP_EXIT_FATAL;
	if (!o.out)
		xp_default_output(defpath, sizeof(defpath), comm, pid,
				  o.go_kind == XP_GO_BLOCK ? "block.pb.gz" :
				  o.go_kind == XP_GO_MUTEX ? "mutex.pb.gz" : "heap.pb.gz");
	path = o.out ? o.out : defpath;
	/* a Go program: the Go runtime's own heap profile */
	err = xp_go_target_open_said(pid, comm, &gt);
	if (err != 0) {
		if (err == 1)
			rc = xp_go_heap(&gt, pid, comm, path, t0, o.go_kind);
		else if (err != -ENOTSUP)
			xp_report_attach_error(pid, err);
		xp_go_target_close(&gt);
		return rc;
	}
	if (o.go_kind != XP_GO_HEAP) {
		xp_msg("pid %d (%s) is not a Go program: --block and --mutex are Go's profiles", (int)pid, comm);
		goto out;
	}
	live = xp_mem_process(pid);
	exec_id = xp_exec_id(pid);
	if ((err = xp_maps_read(pid, &maps)) < 0 || !live ||
	    (err = xp_space_open(pid, &maps, live, 0, &space)) < 0) {
		if (xp_said_exec(pid, exec_id, "walk its heap"))
			; /* nothing written: exit 2, as for any failure */
		else
			xp_report_attach_error(pid, err < 0 ? err : -ENOMEM);
		goto out;
	}
	switch (xp_heap_check(space, &maps, &what)) {
	case XP_HEAP_OK:
		break;
	case XP_HEAP_NO_GLIBC:
		if (xp_said_exec(pid, exec_id, "walk its heap"))
			goto out;
		xp_msg("pid %d (%s) has no glibc mapped (a static binary, or another C library): "
		       "only glibc's malloc is supported yet",
		       (int)pid, comm);
		goto out;
	case XP_HEAP_OTHER_MALLOC:
		xp_msg("pid %d (%s) allocates with %s: only glibc's malloc is supported yet", (int)pid, comm,
		       what);
		goto out;
	case XP_HEAP_NO_DEBUGINFO:
		xp_msg("cannot find malloc's state (main_arena, mp_) in %s: its debug info is missing; "
		       "install it (Debian: apt install libc6-dbg)",
		       what);
		goto out;
	}

	xp_attach_signals();
	err = xp_glibc_heap_collect(pid, space, &maps, &h, &snap, &stage);
	if (stage == XP_HEAP_STAGE_PREPARE && err == -ENOMEM) {
		xp_msg("cannot walk the heap of pid %d (%s): the walk needs %.0f MiB for %.0f MiB of heap and "
		       "%.0f MiB of memory is available (MemAvailable, xprof's cgroup limit or its ulimit -v; a tenth is "
		       "kept free); nothing was stopped",
		       (int)pid, comm, mib(h.need_bytes), mib(h.planned), mib(h.avail_bytes));
		goto out;
	}
	if ((stage == XP_HEAP_STAGE_STOP || stage == XP_HEAP_STAGE_COPY) && err < 0) {
		if (xp_said_exec(pid, exec_id, "walk its heap"))
			; /* nothing written: exit 2 */
		else if (stage == XP_HEAP_STAGE_STOP)
			xp_report_attach_error(pid, err);
		else
			xp_msg("cannot walk the heap of pid %d: %s", (int)pid, strerror(-snap.hold_err));
		goto out;
	}
	if (err < 0) {
		if (xp_said_exec(pid, exec_id, "walk its heap"))
			; /* nothing written: exit 2, as for any failure */
		else
			xp_msg("cannot analyze the heap of pid %d: %s", (int)pid, strerror(-err));
		goto out;
	}
	err = xp_heap_profile(&h, &maps, snap.time_ns, &p);
	if (err == 0)
		err = xp_profile_write(p, path);
	xp_profile_free(p);
	if (err < 0) {
		xp_msg("cannot write %s: %s", xp_esc(path), strerror(-err));
		goto out;
	}
	xp_msg("pid %d (%s): %zu arenas, %zu blocks in use, %.1f MiB; %.1f MiB free; "
	       "%" PRIu64 " mmapped; %" PRIu64 " unreachable blocks, %.1f MiB",
	       (int)pid, comm, h.narenas, h.nblocks, mib(h.inuse_bytes), mib(h.free_bytes), h.mmapped_chunks,
	       h.unreachable_blocks, mib(h.unreachable_bytes));
	if (h.have_counts)
		xp_msg("glibc counts %.1f MiB in its arenas, %" PRIu64 " mmapped chunks, %.1f MiB; "
		       "found %.1f MiB, %" PRIu64 " chunks, %.1f MiB",
		       mib(h.glibc_system_mem), h.glibc_n_mmaps, mib(h.glibc_mmapped_mem), mib(h.walked_mem),
		       h.mmapped_chunks, mib(h.mmapped_bytes));
	xp_msg("process stopped for %.1f ms while %.1f MiB were copied; total %.0f ms", snap.stopped_ns / 1e6,
	       mib(h.copied_bytes), (xp_now_ns() - t0) / 1e6);
	if (h.shared_skipped || h.untouched_skipped)
		xp_msg("left alone: %.1f MiB of shared mappings, %.1f MiB of pages the process never touched",
		       mib(h.shared_skipped), mib(h.untouched_skipped));
	if (h.nproblems > 1)
		xp_msg("the walk is partial: %s (%zu problems in all)", xp_esc(h.problem), h.nproblems);
	else if (h.problem[0])
		xp_msg("the walk is partial: %s", xp_esc(h.problem));
	xp_report_wrote(path, NULL);
	rc = h.problem[0] ? XP_EXIT_PARTIAL : XP_EXIT_OK;
out:
	xp_heap_free(&h);
	xp_snapshot_free(&snap);
	xp_space_close(space);
	xp_mem_close(live);
	xp_maps_free(&maps);
	return rc;
}
