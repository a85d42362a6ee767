/* collect/go.c: a Go program's runtime as profiles: its goroutines (text
 * dump and profile) and the heap, block and mutex profiles its runtime
 * keeps, as runtime/pprof writes them. */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "collect/collect.h"
#include "gort/gort.h"

int xp_go_target_open(pid_t pid, struct xp_go_target *gt, char *why, size_t whylen)
{
	int err;

	memset(gt, 0, sizeof(*gt));
	gt->live = xp_mem_process(pid);
	if (!gt->live)
		return -ENOMEM;
	if ((err = xp_maps_read(pid, &gt->maps)) < 0 ||
	    (err = xp_space_open(pid, &gt->maps, gt->live, 0, &gt->space)) < 0) {
		xp_go_target_close(gt);
		return err;
	}
	err = xp_go_open(gt->space, &gt->go, why, whylen);
	if (err < 0) {
		xp_go_target_close(gt);
		return err == -ENOENT ? 0 : err;
	}
	return 1;
}

int xp_go_target_borrow(const struct xp_target_space *ts, struct xp_go_target *gt, char *why, size_t whylen)
{
	int err;

	memset(gt, 0, sizeof(*gt));
	gt->maps = ts->maps;
	gt->live = ts->live;
	gt->space = ts->space;
	gt->borrowed = 1;
	err = xp_go_open(gt->space, &gt->go, why, whylen);
	if (err < 0) {
		memset(gt, 0, sizeof(*gt));
		return err == -ENOENT ? 0 : err;
	}
	return 1;
}

void xp_go_target_close(struct xp_go_target *gt)
{
	xp_go_close(gt->go);
	if (!gt->borrowed) {
		xp_space_close(gt->space);
		xp_mem_close(gt->live);
		xp_maps_free(&gt->maps);
	}
	memset(gt, 0, sizeof(*gt));
}

/* ---- goroutines ------------------------------------------------------------ */

size_t xp_go_print_goroutines(struct xp_go *go, const struct xp_goroutines *gs, FILE *out, size_t *incomplete)
{
	size_t i, shown = 0;

	*incomplete = 0;
	for (i = 0; i < gs->n; i++) {
		if (gs->v[i].system)
			continue;
		if (shown++)
			fputc('\n', out);
		if (!xp_go_print(go, gs, &gs->v[i], out))
			(*incomplete)++;
	}
	return shown;
}

int xp_go_goroutine_profile(struct xp_go_target *gt, const struct xp_goroutines *gs, const struct xp_snapshot *snap,
			    struct xp_profile **out)
{
	struct xp_profile *p = xp_profile_new();
	struct xp_go_frame fr[XP_GO_MAX_FRAMES];
	uint64_t pcs[XP_GO_MAX_FRAMES], ids[XP_GO_MAX_FRAMES];
	unsigned char is_call[XP_GO_MAX_FRAMES];
	size_t i, k;
	int err;

	if (!p)
		return -ENOMEM;
	if ((err = xp_profile_add_sample_type(p, "goroutine", "count")) < 0 ||
	    (err = xp_profile_set_period(p, "goroutine", "count", 1)) < 0)
		goto out;
	xp_profile_set_time(p, snap->time_ns, 0);
	if ((err = xp_profile_main_mapping(p, gt->space, &gt->maps)) < 0)
		goto out;
	for (i = 0; i < gs->n; i++) {
		const struct xp_goroutine *g = &gs->v[i];
		struct xp_plabel labels[3 + XP_GO_MAX_LABELS];
		size_t n, nl = 0;
		int64_t one = 1;
		int complete;

		if (g->system)
			continue;
		n = xp_go_traceback(gt->go, g, fr, XP_GO_MAX_FRAMES, &complete);
		for (k = 0; k < n; k++) {
			pcs[k] = fr[k].pc;
			is_call[k] = (unsigned char)fr[k].is_call;
		}
		labels[nl++] = (struct xp_plabel){ .key = "goroutine", .num = g->goid };
		labels[nl++] = (struct xp_plabel){ .key = "state", .str = xp_go_status(gt->go, g) };
		for (k = 0; k < g->nlabels; k++)
			labels[nl++] = (struct xp_plabel){ .key = g->label_key[k], .str = g->label_value[k] };
		if ((err = xp_stack_locations(p, gt->space, pcs, is_call, n, ids)) < 0 ||
		    (err = xp_profile_add_sample(p, ids, n, &one, 1, labels, nl)) < 0)
			goto out;
	}
	*out = p;
	return 0;
out:
	xp_profile_free(p);
	return err;
}

/* ---- heap -------------------------------------------------------------------- */

static int is_runtime(struct xp_go *go, uint64_t pc)
{
	const char *file, *name;
	int line;

	/* runtime/pprof asks runtime.FuncForPC(pc), which looks at pc */
	name = xp_go_funcname(go, pc + 1, &file, &line, NULL, NULL);
	return name && strncmp(name, "runtime.", 8) == 0;
}

/* A double as int64, saturating: the values are the target's. */
static int64_t to_i64(double v)
{
	if (v != v)
		return 0;
	if (v >= 9.2e18)
		return INT64_MAX;
	if (v <= -9.2e18)
		return INT64_MIN;
	return (int64_t)v;
}

static int64_t wrap_sub(int64_t a, int64_t b)
{
	return (int64_t)((uint64_t)a - (uint64_t)b);
}

/* runtime/pprof's scaleHeapSample */
static void scale(int64_t count, int64_t size, int64_t rate, int64_t *c, int64_t *s)
{
	double avg, k;

	if (count == 0 || size == 0) {
		*c = *s = 0;
		return;
	}
	if (rate <= 1) {
		*c = count;
		*s = size;
		return;
	}
	avg = (double)size / (double)count;
	k = 1 / (1 - exp(-avg / (double)rate));
	*c = to_i64((double)count * k);
	*s = to_i64((double)size * k);
}

/* The pcs of one physical frame being gathered into one location, as
 * runtime/pprof's "deck": an inlined function's pc, then its callers' fake
 * pcs, up to the physical function. */
struct go_deck {
	struct xp_pline lines[64];
	size_t n;
	uint64_t address, entry;
	int64_t mapping;
	const char *last; /* the last function added */
	int last_inlined;
};

static int deck_flush(struct xp_profile *p, struct go_deck *d, uint64_t *ids, size_t *nids)
{
	int64_t lid;

	if (d->n == 0)
		return 0;
	lid = xp_profile_location(p, (uint64_t)d->mapping, d->address, d->lines, d->n);
	d->n = 0;
	if (lid < 0)
		return (int)lid;
	ids[(*nids)++] = (uint64_t)lid;
	return 0;
}

/* The locations of one bucket's stack, leaf first, into ids (at most nstk
 * of them); runtime/pprof drops runtime.goexit, and for the heap profile
 * the leading runtime frames unless that leaves none.  The runtime saved
 * every inlined call as a pc of its own; runtime/pprof writes an inlined
 * function and its callers up to the physical one as one location of
 * several lines (innermost first), which pprof marks "(inline)": so here. */
static int bucket_locations(struct xp_profile *p, struct xp_go_target *gt, const struct xp_go_bucket *b,
			    int hide_runtime, uint64_t *ids, size_t *nids)
{
	struct go_deck d = { .n = 0 };
	size_t start = 0, len = 0, k;
	int err;

	*nids = 0;
	while (len < b->nstk && b->stk[len])
		len++;
	while (hide_runtime && start < len && is_runtime(gt->go, b->stk[start]))
		start++;
	if (start == len)
		start = 0;
	for (k = start; k < len; k++) {
		const char *file;
		int lineno, inlined;
		uint64_t entry;
		const char *name = xp_go_funcname(gt->go, b->stk[k], &file, &lineno, &entry, &inlined);
		int64_t fid;
		int joins;
		if (!name || strcmp(name, "runtime.goexit") == 0) {
			if ((err = deck_flush(p, &d, ids, nids)) < 0)
				return err;
			continue;
		}
		fid = xp_profile_function(p, name, name, file ? file : "", 0);
		if (fid < 0)
			return (int)fid;
		/* a caller of the inlined function before it, in the same
		 * physical function (not a recursive call of it) */
		joins = d.n > 0 && d.n < sizeof(d.lines) / sizeof(d.lines[0]) && d.last_inlined &&
			entry == d.entry && strcmp(name, d.last) != 0;
		if (!joins) {
			if ((err = deck_flush(p, &d, ids, nids)) < 0)
				return err;
			d.mapping = xp_profile_pc_mapping(p, gt->space, b->stk[k] - 1, &d.address);
			if (d.mapping < 0)
				return (int)d.mapping;
			d.entry = entry;
		}
		d.lines[d.n].function_id = (uint64_t)fid;
		d.lines[d.n].line = lineno;
		d.n++;
		d.last = name;
		d.last_inlined = inlined;
	}
	return deck_flush(p, &d, ids, nids);
}

static int64_t rdtsc(void)
{
	uint32_t lo, hi;

	__asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi));
	return (int64_t)((uint64_t)hi << 32 | lo);
}

/* The runtime's cputicks per second, measured here as the runtime measures
 * it (rdtsc against the monotonic clock) when it has not yet done so. */
static double ticks_per_second(const struct xp_go_heap *h)
{
	int64_t t0, c0, t1, c1;

	if (h->ticks_per_second > 0)
		return (double)h->ticks_per_second;
	t0 = xp_monotonic_ns();
	c0 = rdtsc();
	while ((t1 = xp_monotonic_ns()) - t0 < 20000000)
		;
	c1 = rdtsc();
	return (double)(c1 - c0) * 1e9 / (double)(t1 - t0);
}

static int cycles_desc(const void *a, const void *b, void *heap)
{
	const struct xp_go_heap *h = heap;
	int64_t x = h->v[*(const size_t *)a].cycles, y = h->v[*(const size_t *)b].cycles;

	return x > y ? -1 : x < y;
}

/* One bucket's values as runtime/pprof writes them; how many (4 for the
 * heap, 2 for block and mutex).  ghz: the runtime's cputicks per ns. */
static size_t bucket_values(const struct xp_go_heap *h, const struct xp_go_bucket *b, double ghz, int64_t v[4])
{
	double ns;

	if (h->kind == XP_GO_HEAP) {
		scale(b->allocs, b->alloc_bytes, h->rate, &v[0], &v[1]);
		scale(wrap_sub(b->allocs, b->frees), wrap_sub(b->alloc_bytes, b->free_bytes), h->rate, &v[2], &v[3]);
		return 4;
	}
	ns = (double)b->cycles / ghz;
	v[0] = b->count;
	if (h->kind == XP_GO_MUTEX) { /* scaleMutexProfile */
		v[0] = (int64_t)((uint64_t)b->count * (uint64_t)h->rate);
		ns *= (double)h->rate;
	}
	v[1] = to_i64(ns);
	return 2;
}

static int addr_cmp(const void *a, const void *b, void *heap)
{
	const struct xp_go_heap *h = heap;
	uint64_t x = h->v[*(const size_t *)a].addr, y = h->v[*(const size_t *)b].addr;

	return x < y ? -1 : x > y;
}

/* The bucket of base that is b (same address, same stack), or NULL.
 * by_addr: base's buckets by address. */
static const struct xp_go_bucket *same_bucket(const struct xp_go_heap *base, const size_t *by_addr,
					      const struct xp_go_bucket *b)
{
	size_t lo = 0, hi = base->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		const struct xp_go_bucket *m = &base->v[by_addr[mid]];
		if (m->addr == b->addr)
			return m->nstk == b->nstk && memcmp(m->stk, b->stk, b->nstk * 8) == 0 ? m : NULL;
		if (m->addr < b->addr)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

/* h as runtime/pprof writes it; with base (read earlier from the same
 * process), what h holds beyond it: each bucket's values minus its values
 * in base, each scaled as it was read, and the buckets that come to zero
 * left out, as net/http/pprof's delta profiles (pprof's Merge of the first
 * scaled by -1 and the second).  A bucket of base missing from h (a read
 * cut short) is left out. */
static int go_heap_profile(struct xp_go_target *gt, const struct xp_go_heap *h, const struct xp_go_heap *base,
			   int64_t time_ns, int64_t duration_ns, struct xp_profile **out)
{
	struct xp_profile *p = xp_profile_new();
	uint64_t *ids = NULL;
	size_t i, k, maxstk = 1, *order = NULL, *by_addr = NULL;
	double ghz = 0, base_ghz = 0;
	int err = -ENOMEM;

	for (i = 0; i < h->n; i++)
		if (h->v[i].nstk > maxstk)
			maxstk = h->v[i].nstk;
	ids = malloc(maxstk * sizeof(*ids));
	order = malloc((h->n ? h->n : 1) * sizeof(*order));
	if (base)
		by_addr = malloc((base->n ? base->n : 1) * sizeof(*by_addr));
	if (!p || !ids || !order || (base && !by_addr))
		goto out;
	if (h->kind == XP_GO_HEAP) {
		/* Merge keeps the larger period */
		int64_t period = base && base->rate > h->rate ? base->rate : h->rate;
		if ((err = xp_profile_set_period(p, "space", "bytes", period)) < 0 ||
		    (err = xp_profile_add_sample_type(p, "alloc_objects", "count")) < 0 ||
		    (err = xp_profile_add_sample_type(p, "alloc_space", "bytes")) < 0 ||
		    (err = xp_profile_add_sample_type(p, "inuse_objects", "count")) < 0 ||
		    (err = xp_profile_add_sample_type(p, "inuse_space", "bytes")) < 0)
			goto out;
	} else {
		/* runtime/pprof's printCountCycleProfile */
		if ((err = xp_profile_set_period(p, "contentions", "count", 1)) < 0 ||
		    (err = xp_profile_add_sample_type(p, "contentions", "count")) < 0 ||
		    (err = xp_profile_add_sample_type(p, "delay", "nanoseconds")) < 0)
			goto out;
		ghz = ticks_per_second(h) / 1e9;
		base_ghz = base && base->ticks_per_second > 0 ? ticks_per_second(base) / 1e9 : ghz;
	}
	xp_profile_set_time(p, time_ns, duration_ns);
	if ((err = xp_profile_main_mapping(p, gt->space, &gt->maps)) < 0)
		goto out;
	for (i = 0; i < h->n; i++)
		order[i] = i;
	if (h->kind != XP_GO_HEAP)
		qsort_r(order, h->n, sizeof(*order), cycles_desc, (void *)h);
	if (base) {
		for (i = 0; i < base->n; i++)
			by_addr[i] = i;
		qsort_r(by_addr, base->n, sizeof(*by_addr), addr_cmp, (void *)base);
	}
	for (k = 0; k < h->n; k++) {
		const struct xp_go_bucket *b = &h->v[order[k]], *b0;
		size_t n, nv, j;
		int64_t v[4], v0[4], block = b->allocs > 0 ? b->alloc_bytes / b->allocs : 0;
		struct xp_plabel label = { .key = "bytes", .num = block };
		int zero = 1;

		nv = bucket_values(h, b, ghz, v);
		if (base && (b0 = same_bucket(base, by_addr, b))) {
			bucket_values(base, b0, base_ghz, v0);
			for (j = 0; j < nv; j++)
				v[j] = wrap_sub(v[j], v0[j]);
		}
		for (j = 0; j < nv; j++)
			zero &= v[j] == 0;
		if (base && zero)
			continue;
		if ((err = bucket_locations(p, gt, b, h->kind == XP_GO_HEAP, ids, &n)) < 0)
			goto out;
		if (h->kind == XP_GO_HEAP)
			err = xp_profile_add_sample(p, ids, n, v, nv, &label, block ? 1 : 0);
		else
			err = xp_profile_add_sample(p, ids, n, v, nv, NULL, 0);
		if (err < 0)
			goto out;
	}
	*out = p;
	p = NULL;
	err = 0;
out:
	free(ids);
	free(order);
	free(by_addr);
	xp_profile_free(p);
	return err;
}

int xp_go_profile_read(struct xp_go_target *gt, pid_t pid, struct xp_go_heap *h, struct xp_snapshot *snap,
		       char *why, size_t whylen)
{
	int err;

	h->go = gt->go;
	if (xp_go_heap_check(gt->go, h->kind, why, whylen) < 0) {
		/* a stripped program that never reads this profile links no
		 * runtime.MemProfile (BlockProfile, ...) to find its list in;
		 * when it does not record the profile either, that is the news */
		int64_t rate;
		if (xp_go_profile_rate(gt->go, h->kind, pid, &rate) == 0 && rate == 0)
			return -ENODATA;
		return -ENOTSUP;
	}
	err = xp_snapshot_take_with(pid, snap, xp_go_read_heap, h);
	if (err < 0)
		return err;
	if (snap->hold_err < 0) {
		snprintf(why, whylen, "%s", h->problem[0] ? h->problem : strerror(-snap->hold_err));
		return -EIO;
	}
	/* MemProfileRate 0: Go turned heap profiling off; block and mutex
	 * profiles are off until the program turns them on */
	if ((h->kind == XP_GO_HEAP && h->rate == 0) || (h->kind != XP_GO_HEAP && h->rate == 0 && h->n == 0))
		return -ENODATA;
	return 0;
}

int xp_go_profile_build(struct xp_go_target *gt, const struct xp_go_heap *h, int64_t time_ns, struct xp_profile **out)
{
	*out = NULL;
	return go_heap_profile(gt, h, NULL, time_ns, 0, out);
}

int xp_go_profile_delta(struct xp_go_target *gt, const struct xp_go_heap *h0, const struct xp_go_heap *h1,
			int64_t time_ns, int64_t duration_ns, struct xp_profile **out)
{
	*out = NULL;
	if (h0->kind != h1->kind)
		return -EINVAL;
	return go_heap_profile(gt, h1, h0, time_ns, duration_ns, out);
}

void xp_go_profile_totals(const struct xp_go_heap *h, int64_t *inuse, int64_t *inuse_bytes, int64_t *contentions)
{
	size_t i;

	*inuse = *inuse_bytes = *contentions = 0;
	for (i = 0; i < h->n; i++) {
		int64_t c, s;
		scale(wrap_sub(h->v[i].allocs, h->v[i].frees), wrap_sub(h->v[i].alloc_bytes, h->v[i].free_bytes),
		      h->rate, &c, &s);
		*inuse = (int64_t)((uint64_t)*inuse + (uint64_t)c);
		*inuse_bytes = (int64_t)((uint64_t)*inuse_bytes + (uint64_t)s);
		*contentions = (int64_t)((uint64_t)*contentions + (uint64_t)h->v[i].count);
	}
}

static int strcmp_ptr(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* A goroutine's pprof labels as runtime/pprof's labelMap prints them:
 * {"k":"v", ...}, sorted. */
static char *labels_text(const struct xp_goroutine *g)
{
	char **kv = calloc(g->nlabels ? g->nlabels : 1, sizeof(*kv));
	char *out = NULL;
	size_t i, len = 3;

	if (!kv)
		return NULL;
	for (i = 0; i < g->nlabels; i++) {
		if (asprintf(&kv[i], "\"%s\":\"%s\"", g->label_key[i], g->label_value[i]) < 0)
			goto out;
		len += strlen(kv[i]) + 2;
	}
	qsort(kv, g->nlabels, sizeof(*kv), strcmp_ptr);
	out = malloc(len);
	if (!out)
		goto out;
	strcpy(out, "{");
	for (i = 0; i < g->nlabels; i++) {
		if (i)
			strcat(out, ", ");
		strcat(out, kv[i]);
	}
	strcat(out, "}");
out:
	for (i = 0; i < g->nlabels; i++)
		free(kv[i]);
	free(kv);
	return out;
}

int xp_go_print_goroutine_counts(struct xp_go_target *gt, const struct xp_goroutines *gs, FILE *f)
{
	struct xp_stack_count *v = calloc(gs->n ? gs->n : 1, sizeof(*v));
	struct xp_go_frame fr[XP_GO_MAX_FRAMES];
	size_t i, k, n = 0;
	int err = -ENOMEM, complete;

	if (!v)
		return -ENOMEM;
	for (i = 0; i < gs->n; i++) {
		const struct xp_goroutine *g = &gs->v[i];
		uint64_t *pc;
		unsigned char *is_call;
		size_t nf;

		if (g->system)
			continue;
		nf = xp_go_traceback(gt->go, g, fr, XP_GO_MAX_FRAMES, &complete);
		pc = malloc((nf ? nf : 1) * sizeof(*pc));
		is_call = malloc(nf ? nf : 1);
		if (!pc || !is_call) {
			free(pc);
			free(is_call);
			goto out;
		}
		for (k = 0; k < nf; k++) {
			pc[k] = fr[k].pc;
			is_call[k] = (unsigned char)fr[k].is_call;
		}
		v[n].pc = pc;
		v[n].is_call = is_call;
		v[n].n = nf;
		v[n].count = 1;
		v[n].labels = g->nlabels ? labels_text(g) : NULL;
		n++;
	}
	err = xp_print_count_profile(f, "goroutine", gt->space, v, n);
out:
	for (i = 0; i < n; i++) {
		free((void *)v[i].pc);
		free((void *)v[i].is_call);
		free((void *)v[i].labels);
	}
	free(v);
	return err;
}
