/* Go's heap profile, read from the runtime's own buckets (runtime.mbuckets)
 * while the process is stopped, published as runtime.MemProfile would
 * publish it at that moment (runtime/mprof.go): the active cycle plus the
 * cycle a flush would add, or every cycle when no GC has run yet.
 * Nothing in the target is changed: the flush is done on our copy.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "gort/gort_internal.h"

#define MEM_PROFILE 1       /* bucketType memProfile */
#define MAX_STACK 1024      /* Go's maxStack is 32 (128 from 1.23) */
#define NFUTURE 3

static const char *const profile_name[] = { "heap", "block", "mutex" };

int xp_go_heap_check(struct xp_go *go, enum xp_go_profile kind, char *why, size_t whylen)
{
	const struct xp_go_layout *l = &go->l;
	const char *missing = NULL;

	if (kind == XP_GO_HEAP)
		missing = !go->mbuckets ? "runtime.mbuckets" : !go->memprofilerate ? "runtime.MemProfileRate" :
			  !go->mprofcycle ? "runtime.mProfCycle" : NULL;
	else if (kind == XP_GO_BLOCK)
		missing = !go->bbuckets ? "runtime.bbuckets" : !go->blockprofilerate ? "runtime.blockprofilerate" : NULL;
	else
		missing = !go->xbuckets ? "runtime.xbuckets" : !go->mutexprofilerate ? "runtime.mutexprofilerate" : NULL;
	/* stripped: found in the runtime's code, else only in a debug file */
	if (missing && go->stripped && go->build_id[0]) {
		snprintf(why, whylen, "the binary has no symbol table (stripped, or built with -ldflags=-s), so "
			 "xprof cannot find the runtime's %s profile; its symbols are in the debug file "
			 "/usr/lib/debug/.build-id/%.2s/%s.debug (Debian: install the package's -dbgsym package; "
			 "elsewhere XPROF_DEBUG_DIRS=DIR finds DIR/.build-id/%.2s/%s.debug)",
			 profile_name[kind], go->build_id, go->build_id + 2, go->build_id, go->build_id + 2);
		return -ENOTSUP;
	}
	if (missing && go->stripped) {
		snprintf(why, whylen, "the binary has no symbol table (built with -ldflags=-s, or stripped) and no "
			 "GNU build id to find a debug file by, so xprof cannot find the runtime's %s profile; "
			 "rebuild it without -s", profile_name[kind]);
		return -ENOTSUP;
	}
	if (missing) {
		snprintf(why, whylen, "its runtime has no %s", missing);
		return -ENOTSUP;
	}
	if (l->b_size <= 0 || l->b_allnext < 0 || l->b_typ < 0 || l->b_nstk < 0 || l->mr_active < 0 ||
	    l->mr_future < 0 || l->mrc_size <= 0 || l->mrc_allocs < 0 || l->mrc_frees < 0 ||
	    l->mrc_alloc_bytes < 0 || l->mrc_free_bytes < 0) {
		snprintf(why, whylen, "the layout of runtime.bucket or runtime.memRecord is unknown");
		return -ENOTSUP;
	}
	return 0;
}

int xp_go_profile_rate(struct xp_go *go, enum xp_go_profile kind, pid_t pid, int64_t *rate)
{
	uint64_t addr = kind == XP_GO_HEAP ? go->memprofilerate :
			kind == XP_GO_BLOCK ? go->blockprofilerate : go->mutexprofilerate;
	struct xp_mem *mem;
	int err;

	if (!addr)
		return -ENOENT;
	mem = xp_mem_process(pid);
	if (!mem)
		return -ENOMEM;
	err = xp_mem_read_full(mem, addr, rate, 8);
	xp_mem_close(mem);
	return err;
}

struct cycle {
	int64_t allocs, frees, alloc_bytes, free_bytes;
};

static void cycle_at(const struct xp_go_layout *l, const uint8_t *rec, struct cycle *c)
{
	int64_t v[4];

	memcpy(&v[0], rec + l->mrc_allocs, 8);
	memcpy(&v[1], rec + l->mrc_frees, 8);
	memcpy(&v[2], rec + l->mrc_alloc_bytes, 8);
	memcpy(&v[3], rec + l->mrc_free_bytes, 8);
	c->allocs = v[0];
	c->frees = v[1];
	c->alloc_bytes = v[2];
	c->free_bytes = v[3];
}

/* Sums wrap, as the runtime's own uintptr counters do: the values are the
 * target's, and may be anything. */
static int64_t wrap_add(int64_t a, int64_t b)
{
	return (int64_t)((uint64_t)a + (uint64_t)b);
}

static void cycle_add(struct xp_go_bucket *b, const struct cycle *c)
{
	b->allocs = wrap_add(b->allocs, c->allocs);
	b->frees = wrap_add(b->frees, c->frees);
	b->alloc_bytes = wrap_add(b->alloc_bytes, c->alloc_bytes);
	b->free_bytes = wrap_add(b->free_bytes, c->free_bytes);
}

int xp_go_read_heap(struct xp_snapshot *s, void *arg)
{
	struct xp_go_heap *h = arg;
	struct xp_go *go = h->go;
	const struct xp_go_layout *l = &go->l;
	struct xp_mem *mem = h->mem ? h->mem : xp_mem_process(s->pid);
	struct cycle (*future)[NFUTURE] = NULL;
	size_t alloc = 0, nfut = 0, i;
	uint64_t b = 0, rate = 0, head, want_type;
	uint32_t pcycle = 0;
	uint64_t tortoise = 0, power = 1, steps = 0;
	int clear = 1, err = 0;
	/* after the stack: a memRecord, or a blockRecord {count float64, cycles int64} */
	size_t rec_len = h->kind == XP_GO_HEAP ? (size_t)(l->mr_future + NFUTURE * l->mrc_size) : 16;
	uint8_t *hdr = malloc((size_t)l->b_size), *rec = malloc(rec_len);

	if (!mem || !hdr || !rec) {
		err = -ENOMEM;
		goto out;
	}
	switch (h->kind) {
	case XP_GO_HEAP:
		head = go->mbuckets;
		want_type = 1;
		err = xp_mem_read_full(mem, go->memprofilerate, &rate, 8);
		if (err == 0)
			err = xp_mem_read_full(mem, go->mprofcycle, &pcycle, 4);
		break;
	case XP_GO_BLOCK:
		head = go->bbuckets;
		want_type = 2;
		err = xp_mem_read_full(mem, go->blockprofilerate, &rate, 8);
		break;
	default:
		head = go->xbuckets;
		want_type = 3;
		err = xp_mem_read_full(mem, go->mutexprofilerate, &rate, 8);
		break;
	}
	if (err == 0)
		err = xp_mem_read_full(mem, head, &b, 8);
	if (err == 0 && h->kind != XP_GO_HEAP && go->ticks && l->ticks_val >= 0 &&
	    xp_mem_read_full(mem, go->ticks + (uint64_t)l->ticks_val, &h->ticks_per_second, 8) < 0)
		h->ticks_per_second = 0;
	if (err < 0) {
		snprintf(h->problem, sizeof(h->problem), "cannot read the runtime's profiling state");
		goto out;
	}
	h->rate = (int64_t)rate;
	pcycle >>= 1; /* bit 0 is the flushed flag */
	while (b) {
		struct xp_go_bucket *bk;
		uint64_t next, typ, nstk;

		/* a list that loops (Brent): the runtime's never does */
		if (b == tortoise) {
			snprintf(h->problem, sizeof(h->problem), "the bucket list loops back to 0x%llx: read up to there",
				 (unsigned long long)b);
			break;
		}
		if (++steps == power) {
			tortoise = b;
			power *= 2;
			steps = 0;
		}

		if (h->n == XP_GO_MAX_BUCKETS) {
			snprintf(h->problem, sizeof(h->problem), "more than %d buckets: the rest left out",
				 XP_GO_MAX_BUCKETS);
			break;
		}
		if (xp_mem_read_full(mem, b, hdr, (size_t)l->b_size) < 0) {
			snprintf(h->problem, sizeof(h->problem), "cannot read bucket 0x%llx", (unsigned long long)b);
			break;
		}
		memcpy(&next, hdr + l->b_allnext, 8);
		memcpy(&typ, hdr + l->b_typ, 8);
		memcpy(&nstk, hdr + l->b_nstk, 8);
		if ((typ & 0xffffffff) != want_type || nstk > MAX_STACK) {
			snprintf(h->problem, sizeof(h->problem), "bucket 0x%llx is not a %s bucket (type %llu, "
				 "%llu frames)", (unsigned long long)b, profile_name[h->kind],
				 (unsigned long long)typ, (unsigned long long)nstk);
			break;
		}
		if (h->n == alloc) {
			size_t na = alloc ? alloc * 2 : 256;
			void *v = realloc(h->v, na * sizeof(*h->v)), *f = realloc(future, na * sizeof(*future));
			if (v)
				h->v = v;
			if (f)
				future = f;
			if (!v || !f) {
				err = -ENOMEM;
				goto out;
			}
			alloc = na;
		}
		bk = &h->v[h->n];
		memset(bk, 0, sizeof(*bk));
		bk->stk = malloc((nstk ? nstk : 1) * 8);
		if (!bk->stk) {
			err = -ENOMEM;
			goto out;
		}
		if (xp_mem_read_full(mem, b + (uint64_t)l->b_size, bk->stk, nstk * 8) < 0 ||
		    xp_mem_read_full(mem, b + (uint64_t)l->b_size + nstk * 8, rec, rec_len) < 0) {
			free(bk->stk);
			snprintf(h->problem, sizeof(h->problem), "cannot read bucket 0x%llx", (unsigned long long)b);
			break;
		}
		bk->nstk = nstk;
		bk->addr = b;
		if (h->kind == XP_GO_HEAP) {
			struct cycle active;
			cycle_at(l, rec + l->mr_active, &active);
			cycle_add(bk, &active);
			for (i = 0; i < NFUTURE; i++)
				cycle_at(l, rec + l->mr_future + (int64_t)i * l->mrc_size, &future[h->n][i]);
			/* mProf_FlushLocked: cycle C % 3 joins the published profile */
			cycle_add(bk, &future[h->n][pcycle % NFUTURE]);
			if (bk->allocs || bk->frees)
				clear = 0;
		} else {
			double count;
			memcpy(&count, rec, 8);
			memcpy(&bk->cycles, rec + 8, 8);
			/* BlockProfileRecord.Count = int64(count), as Go converts */
			bk->count = count >= -9.2e18 && count <= 9.2e18 ? (int64_t)count : 0;
			if (h->kind == XP_GO_BLOCK && bk->count == 0)
				bk->count = 1; /* BlockProfile never reports 0 */
		}
		h->n++;
		nfut = h->n;
		b = next;
	}
	/* MemProfile: no data at all means no GC has run; it publishes every
	 * cycle then */
	if (h->kind == XP_GO_HEAP && clear) {
		for (i = 0; i < nfut; i++) {
			size_t c;
			for (c = 0; c < NFUTURE; c++)
				if (c != pcycle % NFUTURE)
					cycle_add(&h->v[i], &future[i][c]);
		}
	}
out:
	free(future);
	free(hdr);
	free(rec);
	if (mem != h->mem)
		xp_mem_close(mem);
	return err;
}

void xp_go_heap_free(struct xp_go_heap *h)
{
	size_t i;

	for (i = 0; i < h->n; i++)
		free(h->v[i].stk);
	free(h->v);
	h->v = NULL;
	h->n = 0;
}
