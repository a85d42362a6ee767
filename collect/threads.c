/* collect/threads.c: every thread's stack at one instant, unwound and
 * symbolized from the copies a stop took: the owners of the pthread
 * mutexes threads wait for, deadlocks, a text dump in the shape of Go's
 * goroutine dump (whole, or threads with one stack grouped), and a pprof
 * profile with one sample per thread. */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attach/attach.h"
#include "collect/collect.h"
#include "proto/profile.h"
#include "symbolize/symbolize.h"
#include "unwind/unwind.h"

/* ---- mutexes and deadlocks ------------------------------------------ */

static int waits_in_mutex_lock(struct xp_thread_dump *dp, const struct xp_thread_stack *d)
{
	size_t i, k;

	/* pthread_mutex_lock, timedlock and clocklock all park in a futex
	 * wait below a frame with one of these names */
	for (i = 0; i < d->n && i < 8; i++) {
		const struct xp_sym *s = xp_symbolize(dp->space, d->pc[i], d->is_call[i]);
		for (k = 0; s && k < s->nframes; k++) {
			const char *fn = s->frames[k].function;
			if (strstr(fn, "pthread_mutex_lock") || strstr(fn, "pthread_mutex_timedlock") ||
			    strstr(fn, "pthread_mutex_clocklock") || strstr(fn, "lll_lock_wait"))
				return 1;
		}
	}
	return 0;
}

static struct xp_thread_stack *find_tid(struct xp_thread_dump *dp, pid_t tid)
{
	size_t i;

	for (i = 0; i < dp->n; i++)
		if (dp->d[i].t->tid == tid)
			return &dp->d[i];
	return NULL;
}

static void find_mutex_owners(struct xp_thread_dump *dp)
{
	size_t i;

	for (i = 0; i < dp->n; i++) {
		struct xp_thread_stack *d = &dp->d[i];
		const struct xp_thread *t = d->t;
		/* struct __pthread_mutex_s: __lock@0, __count@4, __owner@8 */
		if (!t->have_futex || t->futex_words[0] == 0 || !waits_in_mutex_lock(dp, d))
			continue;
		d->mutex = t->futex_addr;
		d->owner = (pid_t)(t->futex_words[2] & 0x3fffffff);
	}
}

/* A mutex holds its owner's tid as the owner saw it from gettid(): in a
 * pid namespace (a container) that is not the tid we know the thread by.
 * Rewrites each owner into our tid, through every thread's NSpid; an owner
 * that is no thread of the process keeps its namespace tid, marked so. */
static void owners_to_our_tids(struct xp_thread_dump *dp)
{
	pid_t *ns, first;
	size_t i, k;
	int nested = -1;

	for (i = 0; i < dp->n && !dp->d[i].owner; i++)
		;
	if (i == dp->n)
		return; /* no thread waits for a mutex */
	/* the threads of a process share one pid namespace: one tells */
	for (k = 0; k < dp->n && nested < 0; k++)
		nested = xp_thread_ns_tid(dp->pid, dp->d[k].t->tid, &first);
	if (nested <= 0)
		return;
	ns = malloc(dp->n * sizeof(*ns));
	if (!ns)
		return;
	for (k = 0; k < dp->n; k++)
		if (xp_thread_ns_tid(dp->pid, dp->d[k].t->tid, &ns[k]) < 0)
			ns[k] = 0; /* exited since the stop: holds nothing we can name */
	for (i = 0; i < dp->n; i++) {
		struct xp_thread_stack *d = &dp->d[i];
		if (!d->owner)
			continue;
		for (k = 0; k < dp->n && ns[k] != d->owner; k++)
			;
		if (k < dp->n)
			d->owner = dp->d[k].t->tid;
		else
			d->owner_ns = 1;
	}
	free(ns);
}

/* Marks and prints every cycle of waits-for edges (thread → mutex owner). */
int xp_threads_deadlocks(struct xp_thread_dump *dp, FILE *f)
{
	size_t i, found = 0;

	for (i = 0; i < dp->n; i++) {
		struct xp_thread_stack *start = &dp->d[i], *cur = start;
		size_t steps;

		if (!start->owner || start->owner_ns || start->in_deadlock)
			continue;
		/* walk owners; a cycle through start has at most n edges */
		for (steps = 0; steps < dp->n && cur && cur->owner && !cur->owner_ns; steps++) {
			cur = find_tid(dp, cur->owner);
			if (cur == start)
				break;
		}
		if (cur != start)
			continue;
		found++;
		fprintf(f, "deadlock: these threads wait for each other's mutexes:\n");
		cur = start;
		do {
			struct xp_thread_stack *next = find_tid(dp, cur->owner);
			cur->in_deadlock = 1;
			fprintf(f, "  thread %d \"%s\" waits for mutex 0x%" PRIx64 " held by thread %d \"%s\"\n",
			       (int)cur->t->tid, xp_esc(cur->t->name), cur->mutex, (int)next->t->tid,
			       xp_esc(next->t->name));
			cur = next;
		} while (cur != start);
		fprintf(f, "\n");
	}
	return (int)found;
}

/* ---- text ------------------------------------------------------------- */

static void print_state(FILE *f, struct xp_thread_dump *dp, const struct xp_thread_stack *d)
{
	const struct xp_thread *t = d->t;

	fprintf(f, "[%s", xp_state_word(t->state));
	if (d->syscall)
		fprintf(f, ", %s", d->syscall);
	if (t->wchan[0])
		fprintf(f, ", wchan %s", xp_esc(t->wchan));
	if (d->mutex) {
		struct xp_thread_stack *o = d->owner_ns ? NULL : find_tid(dp, d->owner);
		fprintf(f, ", waiting for mutex 0x%" PRIx64, d->mutex);
		if (o)
			fprintf(f, " held by thread %d \"%s\"", (int)o->t->tid, xp_esc(o->t->name));
		else if (d->owner)
			fprintf(f, " held by tid %d%s, not a thread of this process", (int)d->owner,
			       d->owner_ns ? " of its pid namespace" : "");
	}
	if (d->holds_gil)
		fprintf(f, ", holds the GIL");
	if (!t->stopped && d->n)
		fprintf(f, ", did not stop: its Python frames only, read as it ran");
	else if (!t->stopped)
		fprintf(f, ", did not stop: no stack");
	fprintf(f, "]");
}

static void print_frames(FILE *f, struct xp_thread_dump *dp, const struct xp_thread_stack *d)
{
	size_t i, k;

	for (i = 0; i < d->n; i++) {
		const struct xp_sym *s = xp_symbolize(dp->space, d->pc[i], d->is_call[i]);
		if (!s || s->nframes == 0) {
			const struct xp_module *m = s ? s->module : NULL;
			fprintf(f, "?" "?()\n\t");
			if (m)
				fprintf(f, "%s+0x%" PRIx64 "\n", xp_esc(m->path), d->pc[i] - m->start + m->offset);
			else
				fprintf(f, "?" "? pc=0x%" PRIx64 "\n", d->pc[i]);
			continue;
		}
		for (k = 0; k < s->nframes; k++) {
			const struct xp_frame *fr = &s->frames[k];
			int has_params = strchr(fr->function, '(') != NULL;
			fprintf(f, "%s%s\n\t", xp_esc(fr->function),
			       has_params ? (fr->inlined ? " (inlined)" : "") : (fr->inlined ? "(...)" : "()"));
			if (fr->file)
				fprintf(f, "%s:%d", xp_esc(fr->file), fr->line);
			else if (s->module)
				xp_fputs_escaped(s->module->path, f);
			if (!fr->inlined && !xp_pc_is_synthetic(d->pc[i]))
				fprintf(f, " +0x%" PRIx64, fr->offset);
			fprintf(f, "\n");
		}
	}
	if (d->capped)
		fprintf(f, "...additional frames elided...\n");
	else if (!d->complete && d->t->stopped && d->t->stack_truncated)
		fprintf(f, "...stack incomplete: the unwinder stopped here, at the end of the %zu KiB of stack copied...\n",
		       d->t->stack_len / 1024);
	else if (!d->complete && d->t->stopped && d->end_unplaced)
		fprintf(f, "...stack incomplete: the unwinder stopped here, at a return address in no executable mapping...\n");
	else if (!d->complete && d->t->stopped)
		fprintf(f, "...stack incomplete: the unwinder stopped here...\n");
}

void xp_threads_print(struct xp_thread_dump *dp, FILE *f)
{
	size_t i;

	for (i = 0; i < dp->n; i++) {
		const struct xp_thread_stack *d = &dp->d[i];
		fprintf(f, "thread %d \"%s\" ", (int)d->t->tid, xp_esc(d->t->name));
		print_state(f, dp, d);
		fprintf(f, ":\n");
		print_frames(f, dp, d);
		fprintf(f, "\n");
	}
}

static int stack_cmp(const void *a, const void *b)
{
	const struct xp_thread_stack *x = *(const struct xp_thread_stack *const *)a, *y = *(const struct xp_thread_stack *const *)b;
	size_t i;

	if (x->n != y->n)
		return x->n < y->n ? -1 : 1;
	for (i = 0; i < x->n; i++)
		if (x->pc[i] != y->pc[i])
			return x->pc[i] < y->pc[i] ? -1 : 1;
	if (x->t->state != y->t->state)
		return x->t->state - y->t->state;
	return x->t->tid - y->t->tid;
}

static int same_group(const struct xp_thread_stack *x, const struct xp_thread_stack *y)
{
	return x->n == y->n && x->t->state == y->t->state && !x->mutex && !y->mutex &&
	       memcmp(x->pc, y->pc, x->n * sizeof(x->pc[0])) == 0 &&
	       memcmp(x->is_call, y->is_call, x->n) == 0;
}

struct group {
	size_t first, count; /* a run of the sorted thread list */
	pid_t min_tid;
};

/* Biggest group first, as in Go's debug=1 dump; then by lowest tid. */
static int group_cmp(const void *a, const void *b)
{
	const struct group *x = a, *y = b;

	if (x->count != y->count)
		return x->count > y->count ? -1 : 1;
	return x->min_tid - y->min_tid;
}

int xp_threads_print_grouped(struct xp_thread_dump *dp, FILE *f)
{
	const struct xp_thread_stack **v = malloc(dp->n * sizeof(*v));
	struct group *g = malloc(dp->n * sizeof(*g));
	size_t i, j, k, ng = 0;

	if (!v || !g) {
		free(v);
		free(g);
		return -ENOMEM;
	}
	for (i = 0; i < dp->n; i++)
		v[i] = &dp->d[i];
	qsort(v, dp->n, sizeof(*v), stack_cmp);
	for (i = 0; i < dp->n; i = j) {
		for (j = i + 1; j < dp->n && same_group(v[i], v[j]); j++)
			;
		g[ng].first = i;
		g[ng].count = j - i;
		g[ng].min_tid = v[i]->t->tid; /* stack_cmp ends by tid */
		ng++;
	}
	qsort(g, ng, sizeof(*g), group_cmp);
	for (k = 0; k < ng; k++) {
		const struct xp_thread_stack **m = &v[g[k].first];
		size_t n = g[k].count;
		if (n == 1) {
			fprintf(f, "thread %d \"%s\" ", (int)m[0]->t->tid, xp_esc(m[0]->t->name));
		} else {
			/* tids, consecutive runs folded: 4101-4999 */
			fprintf(f, "%zu threads \"%s\" tids ", n, xp_esc(m[0]->t->name));
			for (i = 0; i < n;) {
				size_t r = i;
				while (r + 1 < n && m[r + 1]->t->tid == m[r]->t->tid + 1)
					r++;
				fprintf(f, "%s%d", i > 0 ? "," : "", (int)m[i]->t->tid);
				if (r > i)
					fprintf(f, "-%d", (int)m[r]->t->tid);
				i = r + 1;
			}
			fprintf(f, " ");
		}
		print_state(f, dp, m[0]);
		fprintf(f, ":\n");
		print_frames(f, dp, m[0]);
		fprintf(f, "\n");
	}
	free(g);
	free(v);
	return 0;
}

/* ---- pprof ------------------------------------------------------------ */

static size_t start_frames(struct xp_thread_dump *dp, const struct xp_thread_stack *d);

/* One sample per thread: its whole stack labelled (threads/count), or only
 * the frames of its start (threadcreate/count). */
static int thread_profile(struct xp_thread_dump *dp, int starts, struct xp_profile **out)
{
	const char *type = starts ? "threadcreate" : "threads";
	struct xp_profile *p = xp_profile_new();
	uint64_t ids[XP_MAX_FRAMES];
	size_t i;
	int err;

	if (!p)
		return -ENOMEM;
	if ((err = xp_profile_add_sample_type(p, type, "count")) < 0 ||
	    (err = xp_profile_set_period(p, type, "count", 1)) < 0)
		goto out;
	xp_profile_set_time(p, dp->snap.time_ns, 0);
	if ((err = xp_profile_main_mapping(p, dp->space, &dp->snap.maps)) < 0)
		goto out;
	for (i = 0; i < dp->n; i++) {
		const struct xp_thread_stack *d = &dp->d[i];
		size_t k = starts ? start_frames(dp, d) : d->n, first = d->n - k;
		int64_t one = 1;
		struct xp_plabel labels[4] = {
			{ .key = "tid", .num = d->t->tid },
			{ .key = "thread", .str = d->t->name },
			{ .key = "state", .str = xp_state_word(d->t->state) },
			{ .key = "gil", .str = "held" },
		};
		if (starts && k == 0)
			continue;
		if ((err = xp_stack_locations(p, dp->space, d->pc + first, d->is_call + first, k, ids)) < 0 ||
		    (err = xp_profile_add_sample(p, ids, k, &one, 1, labels, starts ? 0 : d->holds_gil ? 4 : 3)) < 0)
			goto out;
	}
	*out = p;
	return 0;
out:
	xp_profile_free(p);
	return err;
}

int xp_threads_profile(struct xp_thread_dump *dp, struct xp_profile **out)
{
	return thread_profile(dp, 0, out);
}

/* ---- run -------------------------------------------------------------- */

static int keep_stack(struct xp_thread_dump *dp, struct xp_thread_stack *d, const struct xp_stack *st);

/* CPython: each interpreter loop activation of a Python thread replaced
 * by the Python frames it runs, and the GIL holder marked.  The frames are
 * read after the stop, from the live process: a thread running Python
 * meanwhile may have moved on (counted in py_moved); its innermost frame
 * is then the one its registers (fregs) name at the stop. */
static void python_frames(struct xp_thread_dump *dp, struct xp_mem *mem, struct xp_stack *st,
			  const struct xp_frame_regs *fregs, struct xp_thread_stack *d, struct xp_py *py,
			  const struct xp_py_threads *pts)
{
	const struct xp_py_thread *pt = xp_py_thread_of(pts, d->t->tid);
	struct xp_py_merge m;

	if (!pt)
		return;
	d->python = 1;
	d->holds_gil = pt->holds_gil;
	dp->python_threads++;
	if (xp_py_merge_stack(py, pt, mem, st, fregs, &m) < 0)
		return;
	dp->python_frames += m.pyframes;
	if (m.activations && !m.consistent) {
		d->py_moved = 1;
		dp->python_moved++;
	}
}

/* A Python thread that did not stop: its Python frames alone, read live. */
static int python_only(struct xp_thread_dump *dp, struct xp_stack *st, struct xp_thread_stack *d, struct xp_py *py,
		       const struct xp_py_threads *pts)
{
	const struct xp_py_thread *pt = xp_py_thread_of(pts, d->t->tid);

	if (!pt)
		return 0;
	d->python = 1;
	d->holds_gil = pt->holds_gil;
	dp->python_threads++;
	memset(st, 0, sizeof(*st));
	st->n = xp_py_thread_stack(py, pt, st->pc, XP_MAX_FRAMES);
	dp->python_frames += st->n;
	return keep_stack(dp, d, st);
}

/* d's copy of an unwound stack. */
static int keep_stack(struct xp_thread_dump *dp, struct xp_thread_stack *d, const struct xp_stack *st)
{
	d->pc = malloc((st->n ? st->n : 1) * sizeof(d->pc[0]));
	d->is_call = malloc(st->n ? st->n : 1);
	if (!d->pc || !d->is_call)
		return -ENOMEM;
	memcpy(d->pc, st->pc, st->n * sizeof(st->pc[0]));
	memcpy(d->is_call, st->is_call, st->n);
	d->n = st->n;
	dp->frames += st->n;
	return 0;
}

int xp_threads_unwind(struct xp_thread_dump *dp, const struct xp_target_space *ts)
{
	struct xp_mem *mem = NULL;
	struct xp_unwinder *u = NULL;
	struct xp_py *py = NULL;
	struct xp_frame_regs *fregs = NULL;
	struct xp_py_threads pts = { 0 };
	struct xp_stack *st = malloc(sizeof(*st));
	int64_t t0 = xp_monotonic_ns();
	size_t i;
	int err = -ENOMEM;

	dp->d = calloc(dp->snap.nthreads, sizeof(*dp->d));
	dp->live = xp_mem_process(dp->pid);
	if (!dp->live || !st || !dp->d)
		goto out;
	mem = xp_mem_snapshot(dp->snap.regions, dp->snap.nregions, dp->live);
	if (!mem)
		goto out;
	if (ts && ts->pid == dp->pid && ts->space && ts->unwinder) {
		/* the caller's kept modules, refreshed against the maps just before */
		dp->space = ts->space;
		dp->space_borrowed = 1;
		u = ts->unwinder;
	} else {
		err = xp_space_open(dp->pid, &dp->snap.maps, dp->live, 0, &dp->space);
		if (err < 0)
			goto out;
		err = xp_unwinder_new(dp->space, &u);
		if (err < 0)
			goto out;
	}
	if (xp_py_open(dp->space, dp->live, &py, dp->python_problem, sizeof(dp->python_problem)) == 1) {
		snprintf(dp->python, sizeof(dp->python), "%s", xp_py_version(py));
		dp->python_layout = xp_py_layout_source(py);
		if (xp_py_threads_read(py, &pts) == 0)
			dp->gil_locked = pts.gil_locked;
	}
	/* a Python thread's registers say which instruction its loop ran */
	if (py && !(fregs = malloc(XP_MAX_FRAMES * sizeof(*fregs)))) {
		err = -ENOMEM;
		goto out;
	}
	dp->n = dp->snap.nthreads;
	for (i = 0; i < dp->n; i++) {
		struct xp_thread_stack *d = &dp->d[i];
		const struct xp_thread *t = &dp->snap.threads[i];
		long nr = (long)(int64_t)t->regs.orig_rax;

		d->t = t;
		if (!t->stopped) {
			dp->incomplete++;
			if (py && (err = python_only(dp, st, d, py, &pts)) < 0)
				goto out;
			continue;
		}
		if (nr >= 0 && t->state != 'R')
			d->syscall = xp_syscall_name(nr);
		xp_unwind_regs(u, &t->regs, mem, st, fregs);
		if (py)
			python_frames(dp, mem, st, fregs, d, py, &pts);
		if ((err = keep_stack(dp, d, st)) < 0)
			goto out;
		d->complete = st->complete;
		d->capped = st->capped;
		d->end_unplaced = st->end_unplaced;
		dp->capped += st->capped;
		dp->incomplete += !st->complete;
	}
	find_mutex_owners(dp);
	owners_to_our_tids(dp);
	err = 0;
out:
	dp->unwind_ns = xp_monotonic_ns() - t0;
	free(fregs);
	xp_py_threads_free(&pts);
	xp_py_close(py);
	if (!dp->space_borrowed)
		xp_unwinder_free(u);
	xp_mem_close(mem);
	free(st);
	return err;
}

void xp_threads_free(struct xp_thread_dump *dp)
{
	size_t i;

	for (i = 0; i < dp->n; i++) {
		free(dp->d[i].pc);
		free(dp->d[i].is_call);
	}
	free(dp->d);
	if (!dp->space_borrowed)
		xp_space_close(dp->space);
	xp_mem_close(dp->live);
	xp_snapshot_free(&dp->snap);
}


/* ---- counts: Go's debug=1 text ------------------------------------------------ */


static int rec_cmp(const void *a, const void *b)
{
	const struct xp_stack_count *x = a, *y = b;

	if (x->n != y->n)
		return x->n < y->n ? -1 : 1;
	if (x->n && memcmp(x->pc, y->pc, x->n * sizeof(x->pc[0])) != 0)
		return memcmp(x->pc, y->pc, x->n * sizeof(x->pc[0]));
	return strcmp(x->labels ? x->labels : "", y->labels ? y->labels : "");
}

static int count_desc(const void *a, const void *b)
{
	const struct xp_stack_count *x = a, *y = b;

	if (x->count != y->count)
		return x->count > y->count ? -1 : 1;
	return rec_cmp(a, b);
}

/* One stack as runtime/pprof's printStackRecord prints it: a line per
 * frame, inline frames included, the runtime's frames at the leaf end left
 * out (unless nothing else is left). */
static void print_record(FILE *f, struct xp_space *space, const struct xp_stack_count *r)
{
	size_t i, k, shown = 0;
	int pass, all = 0;

	for (pass = 0; pass < 2 && !shown; pass++, all = 1) {
		int show = all;
		for (i = 0; i < r->n; i++) {
			const struct xp_sym *s = xp_symbolize(space, r->pc[i], r->is_call[i]);
			uint64_t pc = r->pc[i] - (r->is_call[i] ? 1 : 0);
			if (!s || s->nframes == 0) {
				fprintf(f, "#\t%#" PRIx64 "\n", pc);
				show = 1;
				shown++;
				continue;
			}
			for (k = 0; k < s->nframes; k++) {
				const struct xp_frame *fr = &s->frames[k];
				if (strcmp(fr->function, "runtime.goexit") == 0)
					continue;
				if (!show && strncmp(fr->function, "runtime.", 8) == 0)
					continue;
				show = 1;
				shown++;
				fprintf(f, "#\t%#" PRIx64 "\t%s+%#" PRIx64 "\t%s:%d\n", pc, xp_esc(fr->function),
					fr->inlined ? (uint64_t)0 : fr->offset, fr->file ? xp_esc(fr->file) : "?", fr->line);
			}
		}
	}
	fputc('\n', f);
}

int xp_print_count_profile(FILE *f, const char *name, struct xp_space *space, struct xp_stack_count *v, size_t n)
{
	struct xp_stack_count *g = malloc((n ? n : 1) * sizeof(*g));
	size_t i, j, k, total = 0, groups = 0;

	if (!g)
		return -ENOMEM;
	/* equal records next to each other, each run counted once in g (v
	 * keeps every record: the caller frees what they point to) */
	qsort(v, n, sizeof(*v), rec_cmp);
	for (i = 0; i < n; i = j) {
		g[groups] = v[i];
		total += v[i].count;
		for (j = i + 1; j < n && rec_cmp(&v[i], &v[j]) == 0; j++) {
			g[groups].count += v[j].count;
			total += v[j].count;
		}
		groups++;
	}
	qsort(g, groups, sizeof(*g), count_desc);
	fprintf(f, "%s profile: total %zu\n", name, total);
	for (i = 0; i < groups; i++) {
		fprintf(f, "%" PRIu64 " @", g[i].count);
		for (k = 0; k < g[i].n; k++)
			fprintf(f, " %#" PRIx64, g[i].pc[k]);
		fputc('\n', f);
		if (g[i].labels && *g[i].labels)
			fprintf(f, "# labels: %s\n", g[i].labels);
		print_record(f, space, &g[i]);
	}
	free(g);
	return ferror(f) ? -EIO : 0;
}

int xp_threads_print_counts(struct xp_thread_dump *dp, FILE *f)
{
	struct xp_stack_count *v = calloc(dp->n ? dp->n : 1, sizeof(*v));
	size_t i;
	int err;

	if (!v)
		return -ENOMEM;
	for (i = 0; i < dp->n; i++) {
		v[i].pc = dp->d[i].pc;
		v[i].is_call = dp->d[i].is_call;
		v[i].n = dp->d[i].n;
		v[i].count = 1;
	}
	err = xp_print_count_profile(f, "goroutine", dp->space, v, dp->n);
	free(v);
	return err;
}

/* ---- threadcreate: threads by where they start ----------------------------------- */

/* A frame of the C library or the dynamic loader: what a thread's start
 * goes through before its own function (clone3, start_thread; _start,
 * __libc_start_main). */
static int in_libc(struct xp_space *space, uint64_t pc)
{
	const struct xp_module *m = xp_space_module(space, pc);
	const char *base = m ? strrchr(m->path, '/') : NULL;

	base = base ? base + 1 : m ? m->path : "";
	return strncmp(base, "libc.so", 7) == 0 || strncmp(base, "libc-", 5) == 0 || strncmp(base, "ld-linux", 8) == 0;
}

/* How many frames at the root end of d are its start: the C library's,
 * then the first of the program's own (the thread's function, or main). */
static size_t start_frames(struct xp_thread_dump *dp, const struct xp_thread_stack *d)
{
	size_t k = d->n;

	/* crt1's _start, linked into the program, comes before libc's part */
	if (k > 0) {
		const struct xp_sym *s = xp_symbolize(dp->space, d->pc[k - 1], d->is_call[k - 1]);
		if (s && s->nframes && strcmp(s->frames[s->nframes - 1].function, "_start") == 0)
			k--;
	}
	while (k > 0 && in_libc(dp->space, d->pc[k - 1]))
		k--;
	if (k > 0)
		k--; /* the first frame of the program's own */
	return d->n - k;
}

int xp_threads_start_profile(struct xp_thread_dump *dp, struct xp_profile **out)
{
	return thread_profile(dp, 1, out);
}

int xp_threads_print_starts(struct xp_thread_dump *dp, FILE *f)
{
	struct xp_stack_count *v = calloc(dp->n ? dp->n : 1, sizeof(*v));
	size_t i, n = 0;
	int err;

	if (!v)
		return -ENOMEM;
	for (i = 0; i < dp->n; i++) {
		const struct xp_thread_stack *d = &dp->d[i];
		size_t k = start_frames(dp, d);
		if (k == 0)
			continue;
		v[n].pc = d->pc + (d->n - k);
		v[n].is_call = d->is_call + (d->n - k);
		v[n].n = k;
		v[n].count = 1;
		n++;
	}
	err = xp_print_count_profile(f, "threadcreate", dp->space, v, n);
	free(v);
	return err;
}
