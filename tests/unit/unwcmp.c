/* unwcmp — libdw's unwinder against libunwind's on the same stacks, for
 * bench/unwinders.sh and tests/unwinders.t.
 *
 *   unwcmp threads PID [-r RUNS] [-v] [-u]   every thread, stopped once
 *   unwcmp cpu PID [-d MS] [-n MAX] [-r RUNS] [-v]   perf samples (16 KiB of stack)
 *
 * Every stack is unwound by each unwinder from the same copy (registers and
 * stack), RUNS times, each in its own address space (its own modules and
 * caches).  With -u (threads), libunwind-ptrace's own accessors (_UPT: ptrace
 * reads of the stopped thread, /proc maps and ELF files opened by libunwind)
 * unwind each thread too, while the process is held stopped.
 *
 * One line per unwinder:
 *   unwinder NAME stacks N complete C ends E frames F differ D further U shorter S
 *            first_ms T median_ns M p90_ns P
 * complete: the unwinder said it reached the outermost frame; ends: the
 * outermost frame is _start, a clone, a Go stack's top or a Go stack switch; differ: frames
 * not equal to libdw's at the same depth (a missing or extra frame counts);
 * further/shorter: stacks that are libdw's with frames added / cut;
 * first_ms: the first pass over all stacks (cold caches); median_ns/p90_ns:
 * one stack, over every later pass.  -v: each stack's functions per unwinder
 * (tab-separated, inline frames included, innermost first);
 * -b NAME: only that unwinder (to count its instructions under callgrind).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <libunwind-ptrace.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "attach/attach.h"
#include "symbolize/symbolize.h"
#include "unwind/unwind.h"

#define MAX_SAMPLES 20000

struct one_stack {
	pid_t tid;
	struct user_regs_struct regs;
	struct xp_region region;   /* the copy */
	struct xp_stack st[3];     /* per unwinder: libdw, libunwind, libunwind-ptrace */
};

static struct one_stack *stacks;
static size_t nstacks, cap_stacks;
static int runs = 20, verbose, with_upt;
static const char *only; /* -b NAME: that unwinder alone (for callgrind) */

static int64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static struct one_stack *add_stack(void)
{
	if (nstacks == cap_stacks) {
		size_t nc = cap_stacks ? cap_stacks * 2 : 256;
		struct one_stack *n = realloc(stacks, nc * sizeof(*n));
		if (!n)
			return NULL;
		stacks = n;
		cap_stacks = nc;
	}
	memset(&stacks[nstacks], 0, sizeof(stacks[0]));
	return &stacks[nstacks++];
}

/* ---- collecting stacks -------------------------------------------------- */

static void on_sample(const struct xp_perf_sample *s, void *arg)
{
	struct one_stack *o;
	uint8_t *copy;

	(void)arg;
	if (!s->have_regs || !s->stack_len || nstacks == MAX_SAMPLES)
		return;
	copy = malloc(s->stack_len);
	if (!copy || !(o = add_stack())) {
		free(copy);
		return;
	}
	memcpy(copy, s->stack, s->stack_len);
	o->tid = s->tid;
	o->regs = s->regs;
	o->region.addr = s->stack_addr;
	o->region.len = s->stack_len;
	o->region.data = copy;
}

static int collect_samples(pid_t pid, int ms, size_t max)
{
	struct xp_perf_opts po = { .pid = pid, .freq = 999, .stack_bytes = XP_PERF_STACK_DEFAULT };
	struct xp_perf_handlers h = { .sample = on_sample };
	struct xp_perf *p;
	int64_t end = now_ns() + (int64_t)ms * 1000000;
	int err = xp_perf_open(&po, &p);

	if (err < 0)
		return err;
	while (now_ns() < end && nstacks < max)
		if ((err = xp_perf_read(p, 100, &h, NULL)) < 0)
			break;
	xp_perf_close(p);
	if (nstacks > max)
		nstacks = max;
	return err < 0 ? err : 0;
}

/* libunwind-ptrace on the stopped threads, as its own examples use it */
static int64_t upt_ns_first;
static int64_t *upt_ns;
static size_t nupt_ns;

static void upt_unwind(unw_addr_space_t as, pid_t tid, struct xp_stack *out)
{
	void *upt = _UPT_create(tid);
	unw_cursor_t c;
	int r = -1;

	out->n = 0;
	out->complete = 0;
	if (!upt)
		return;
	if (unw_init_remote(&c, as, upt) == 0) {
		do {
			unw_word_t pc, sp;
			if (out->n == XP_MAX_FRAMES || unw_get_reg(&c, UNW_REG_IP, &pc) < 0 ||
			    unw_get_reg(&c, UNW_REG_SP, &sp) < 0)
				break;
			out->is_call[out->n] = out->n > 0;
			out->sp[out->n] = sp;
			out->pc[out->n++] = pc;
		} while ((r = unw_step(&c)) > 0);
		out->complete = r == 0;
	}
	_UPT_destroy(upt);
}

/* The copies to compare, from a snapshot's threads. */
static void add_threads(const struct xp_snapshot *s)
{
	size_t i;

	for (i = 0; i < s->nthreads; i++) {
		const struct xp_thread *t = &s->threads[i];
		struct one_stack *o;
		if (!t->stopped || !(o = add_stack()))
			continue;
		o->tid = t->tid;
		o->regs = t->regs;
		o->region.addr = t->stack_addr;
		o->region.len = t->stack_len;
		o->region.data = t->stack;
	}
}

/* While the threads are held: libunwind-ptrace unwinds each live thread
 * whose copy was just taken. */
static int while_stopped(struct xp_snapshot *s, void *arg)
{
	unw_addr_space_t as = unw_create_addr_space(&_UPT_accessors, 0);
	int64_t t0 = now_ns();
	size_t i;
	int r;

	(void)arg;
	add_threads(s);
	if (!as)
		return -ENOMEM;
	unw_set_caching_policy(as, UNW_CACHE_GLOBAL);
	upt_ns = calloc(nstacks * (size_t)runs + 1, sizeof(*upt_ns));
	for (r = 0; r < runs && upt_ns; r++) {
		for (i = 0; i < nstacks; i++) {
			struct xp_stack st;
			int64_t t = now_ns();
			upt_unwind(as, stacks[i].tid, r == 0 ? &stacks[i].st[2] : &st);
			if (r > 0)
				upt_ns[nupt_ns++] = now_ns() - t;
		}
		if (r == 0)
			upt_ns_first = now_ns() - t0;
	}
	unw_destroy_addr_space(as);
	return 0;
}

static int collect_threads(pid_t pid, struct xp_snapshot *snap)
{
	int err = with_upt ? xp_snapshot_take_with(pid, snap, while_stopped, NULL) : xp_snapshot_take(pid, snap);

	if (err < 0)
		return err;
	if (!with_upt)
		add_threads(snap);
	return 0;
}

/* ---- comparing ------------------------------------------------------- */

static int cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

	return x < y ? -1 : x > y;
}

static const char *outer_name(struct xp_space *space, const struct xp_stack *st)
{
	const struct xp_sym *s;

	if (st->n == 0)
		return "";
	s = xp_symbolize(space, st->pc[st->n - 1], st->is_call[st->n - 1]);
	return s && s->nframes ? s->frames[s->nframes - 1].function : "";
}

static int is_end(const char *f)
{
	/* Go: the tops of goroutine and system stacks, and the functions that
	 * switch stacks, where Go's own traceback ends a system stack */
	static const char *ends[] = { "_start", "__clone3", "__clone", "clone", "clone3", "runtime.goexit",
				      "runtime.mstart", "runtime.rt0_go", "runtime.mcall", "runtime.systemstack",
				      "runtime.morestack", "runtime.goexit.abi0", "runtime.mstart.abi0",
				      "runtime.rt0_go.abi0", "runtime.mcall.abi0", "runtime.systemstack.abi0",
				      "runtime.morestack.abi0" };
	size_t i;

	for (i = 0; i < sizeof(ends) / sizeof(ends[0]); i++)
		if (strcmp(f, ends[i]) == 0)
			return 1;
	return 0;
}

static size_t differ(const struct xp_stack *a, const struct xp_stack *b)
{
	size_t i, n = a->n > b->n ? a->n : b->n, d = 0;

	for (i = 0; i < n; i++)
		d += i >= a->n || i >= b->n || a->pc[i] != b->pc[i];
	return d;
}

static void print_stack(struct xp_space *space, const char *name, const struct one_stack *o, const struct xp_stack *st)
{
	size_t i, k;

	printf("stack tid %d unwinder %s n %zu complete %d:", (int)o->tid, name, st->n, st->complete);
	for (i = 0; i < st->n; i++) {
		const struct xp_sym *s = xp_symbolize(space, st->pc[i], st->is_call[i]);
		if (!s || s->nframes == 0)
			printf("\t??");
		for (k = 0; s && k < s->nframes; k++)
			printf("\t%s", s->frames[k].function);
	}
	printf("\n");
}

/* b went further than a: a's frames are b's first ones, and b has more */
static int further(const struct xp_stack *a, const struct xp_stack *b)
{
	size_t i;

	if (b->n <= a->n)
		return 0;
	for (i = 0; i < a->n; i++)
		if (a->pc[i] != b->pc[i])
			return 0;
	return 1;
}

static void report(const char *name, int which, struct xp_space *space, int64_t first_ns, int64_t *ns, size_t nns)
{
	size_t i, complete = 0, ends = 0, frames = 0, diff = 0, more = 0, fewer = 0;

	for (i = 0; i < nstacks; i++) {
		const struct xp_stack *st = &stacks[i].st[which];
		complete += st->complete;
		ends += is_end(outer_name(space, st));
		frames += st->n;
		diff += differ(&stacks[i].st[0], st);
		more += further(&stacks[i].st[0], st);
		fewer += further(st, &stacks[i].st[0]);
		if (verbose)
			print_stack(space, name, &stacks[i], st);
	}
	qsort(ns, nns, sizeof(*ns), cmp_i64);
	printf("unwinder %s stacks %zu complete %zu ends %zu frames %zu differ %zu further %zu shorter %zu first_ms %.2f "
	       "median_ns %lld p90_ns %lld\n",
	       name, nstacks, complete, ends, frames, diff, more, fewer, first_ns / 1e6,
	       nns ? (long long)ns[nns / 2] : 0LL, nns ? (long long)ns[nns * 9 / 10] : 0LL);
}

/* Unwinds every stack runs times with one backend in a space of its own. */
static int run_backend(pid_t pid, const struct xp_maps *maps, struct xp_mem *live, enum xp_unwind_backend b,
		       const char *name)
{
	struct xp_space *space;
	struct xp_unwinder *u;
	int64_t *ns = calloc(nstacks * (size_t)runs + 1, sizeof(*ns)), first = 0;
	size_t nns = 0, i;
	int r, err;

	if (only && strcmp(only, name) != 0) {
		free(ns);
		return 0;
	}
	if (!ns)
		return -ENOMEM;
	if ((err = xp_space_open(pid, maps, live, 0, &space)) < 0) {
		free(ns);
		return err;
	}
	if ((err = xp_unwinder_new_backend(space, b, &u)) < 0) {
		xp_space_close(space);
		free(ns);
		return err;
	}
	for (r = 0; r < runs; r++) {
		int64_t t0 = now_ns();
		for (i = 0; i < nstacks; i++) {
			struct xp_mem *mem = xp_mem_snapshot(&stacks[i].region, 1, NULL);
			struct xp_stack st;
			int64_t t = now_ns();
			if (!mem)
				continue;
			xp_unwind(u, &stacks[i].regs, mem, r == 0 ? &stacks[i].st[b] : &st);
			if (r > 0)
				ns[nns++] = now_ns() - t;
			xp_mem_close(mem);
		}
		if (r == 0)
			first = now_ns() - t0;
	}
	report(name, (int)b, space, first, ns, nns);
	xp_unwinder_free(u);
	xp_space_close(space);
	free(ns);
	return 0;
}

int main(int argc, char **argv)
{
	struct xp_snapshot snap = { 0 };
	struct xp_maps maps = { 0 };
	const struct xp_maps *mp;
	struct xp_mem *live;
	int ms = 2000, opt, err, threads;
	size_t max = 2000;
	pid_t pid;

	if (argc < 3 || (strcmp(argv[1], "threads") != 0 && strcmp(argv[1], "cpu") != 0)) {
		fprintf(stderr, "usage: unwcmp threads|cpu PID [-r RUNS] [-d MS] [-n MAX] [-v] [-u] [-b libdw|libunwind]\n");
		return 64;
	}
	threads = strcmp(argv[1], "threads") == 0;
	pid = atoi(argv[2]);
	optind = 3;
	while ((opt = getopt(argc, argv, "r:d:n:vub:")) != -1) {
		switch (opt) {
		case 'r': runs = atoi(optarg) > 0 ? atoi(optarg) : 1; break;
		case 'd': ms = atoi(optarg); break;
		case 'n': max = (size_t)atol(optarg); break;
		case 'v': verbose = 1; break;
		case 'u': with_upt = 1; break;
		case 'b': only = optarg; break;
		default: return 64;
		}
	}
	if (max > MAX_SAMPLES)
		max = MAX_SAMPLES;
	live = xp_mem_process(pid);
	err = threads ? collect_threads(pid, &snap) : collect_samples(pid, ms, max);
	if (err < 0) {
		fprintf(stderr, "unwcmp: cannot collect stacks of pid %d: %s\n", (int)pid, strerror(-err));
		return 2;
	}
	err = threads ? 0 : xp_maps_read(pid, &maps);
	if (err < 0 || !live) {
		fprintf(stderr, "unwcmp: cannot read the maps of pid %d\n", (int)pid);
		return 2;
	}
	mp = threads ? &snap.maps : &maps;
	printf("stacks %zu runs %d\n", nstacks, runs);
	if (run_backend(pid, mp, live, XP_UNWIND_LIBDW, "libdw") < 0 ||
	    run_backend(pid, mp, live, XP_UNWIND_LIBUNWIND, "libunwind") < 0) {
		fprintf(stderr, "unwcmp: cannot open the modules of pid %d\n", (int)pid);
		return 2;
	}
	if (threads && with_upt) {
		struct xp_space *space;
		if (xp_space_open(pid, mp, live, 0, &space) == 0) {
			report("libunwind-ptrace", 2, space, upt_ns_first, upt_ns, nupt_ns);
			xp_space_close(space);
		}
	}
	xp_maps_free(&maps);
	xp_mem_close(live);
	xp_snapshot_free(&snap);
	return 0;
}
