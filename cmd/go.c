/* The Go side of xprof heap: the messages around collect/go.c's reading
 * of a Go runtime's heap, block and mutex profiles. */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "cmd/cmd.h"
#include "collect/collect.h"
#include "gort/gort.h"

int xp_go_target_open_said(pid_t pid, const char *comm, struct xp_go_target *gt)
{
	char why[512];
	int err = xp_go_target_open(pid, gt, why, sizeof(why));

	if (err == -ENOTSUP)
		xp_msg("pid %d (%s) is a Go program, but xprof cannot read its runtime: %s", (int)pid, comm, xp_esc(why));
	return err;
}

static double mib(int64_t bytes)
{
	return (double)bytes / (1 << 20);
}

int xp_go_heap(struct xp_go_target *gt, pid_t pid, const char *comm, const char *path, int64_t t0,
	       enum xp_go_profile kind)
{
	static const char *const what[] = { "heap", "block", "mutex" };
	struct xp_go_heap h = { .go = gt->go, .kind = kind };
	struct xp_snapshot snap;
	struct xp_profile *p = NULL;
	int64_t inuse, inuse_bytes, contentions;
	char why[512];
	int err, rc = XP_EXIT_FATAL;

	memset(&snap, 0, sizeof(snap));
	xp_attach_signals();
	err = xp_go_profile_read(gt, pid, &h, &snap, why, sizeof(why));
	if (err == -ENOTSUP) {
		xp_msg("pid %d (%s) is a Go program (%s), but its %s profile cannot be read: %s", (int)pid, comm,
		       xp_esc(xp_go_version(gt->go)), what[kind], xp_esc(why));
		goto out;
	}
	if (err == -EIO) {
		xp_msg("cannot read the Go %s profile of pid %d: %s", what[kind], (int)pid, xp_esc(why));
		goto out;
	}
	if (err == -ENODATA && kind == XP_GO_HEAP) {
		xp_msg("pid %d (%s) does not record a heap profile: its runtime.MemProfileRate is 0. Go sets it to 0 "
		       "when a program never references runtime.MemProfile (it imports neither runtime/pprof nor "
		       "net/http/pprof); import one of them, or set runtime.MemProfileRate, to have one",
		       (int)pid, comm);
		goto out;
	}
	if (err == -ENODATA) {
		xp_msg("pid %d (%s) does not record a %s profile: the program turns it on with %s", (int)pid, comm,
		       what[kind],
		       kind == XP_GO_BLOCK ? "runtime.SetBlockProfileRate" : "runtime.SetMutexProfileFraction");
		goto out;
	}
	if (err < 0) {
		xp_report_attach_error(pid, err);
		goto out;
	}
	err = xp_go_profile_build(gt, &h, snap.time_ns, &p);
	if (err == 0)
		err = xp_profile_write(p, path);
	if (err < 0) {
		xp_msg("cannot write %s: %s", xp_esc(path), strerror(-err));
		goto out;
	}
	xp_go_profile_totals(&h, &inuse, &inuse_bytes, &contentions);
	if (kind == XP_GO_HEAP)
		xp_msg("pid %d (%s): %s, heap profile of %zu allocation sites: %" PRId64 " objects, %.1f MiB in use "
		       "(sampled every %" PRId64 " bytes, scaled as runtime/pprof scales)",
		       (int)pid, comm, xp_esc(xp_go_version(gt->go)), h.n, inuse, mib(inuse_bytes), h.rate);
	else
		xp_msg("pid %d (%s): %s, %s profile of %zu stacks, %" PRId64 " contentions recorded", (int)pid, comm,
		       xp_esc(xp_go_version(gt->go)), what[kind], h.n, contentions);
	xp_msg("process stopped for %.2f ms; total %.0f ms", snap.stopped_ns / 1e6, (xp_now_ns() - t0) / 1e6);
	if (h.problem[0])
		xp_msg("the profile is partial: %s", xp_esc(h.problem));
	xp_report_wrote(path, NULL);
	rc = h.problem[0] ? XP_EXIT_PARTIAL : XP_EXIT_OK;
out:
	xp_profile_free(p);
	xp_go_heap_free(&h);
	xp_snapshot_free(&snap);
	return rc;
}
