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

/* One thread of the dump. */
struct dumped {
	const struct xp_thread *t;
	uint64_t *pc;
	unsigned char *is_call;
	size_t n;
	int complete, capped;
	const char *syscall;  /* name of the system call it blocks in, or NULL */
	uint64_t mutex;       /* the pthread mutex it waits for, or 0 */
	pid_t owner;          /* that mutex's owner tid, or 0 */
	int owner_ns;         /* owner is a tid of the target's pid namespace, not ours */
	int in_deadlock;
};

struct dump {
	pid_t pid;
	char comm[64];
	struct xp_snapshot snap;
	struct xp_space *space;
	struct xp_mem *live;  /* the live process, for what was not copied (the vdso) */
	struct dumped *d;
	size_t n;
	size_t frames, incomplete, capped;
	int64_t unwind_ns;
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
	      "                    count and tids\n"
	      "  -o, --output FILE write a pprof profile instead of text: one sample per\n"
	      "                    thread (threads/count), labels tid, thread, state;\n"
	      "                    for a Go program one sample per goroutine\n"
	      "                    (goroutine/count), labels goroutine, state and its\n"
	      "                    own pprof labels; open it with: go tool pprof -http=: FILE\n"
	      "      --native      for a Go program, print the OS threads' own stacks\n"
	      "                    (cgo, system calls, the runtime) after the goroutines\n"
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
	while ((c = getopt_long(argc, argv, "p:go:h", longopts, NULL)) != -1) {
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
			fputs("try 'xprof threads --help'\n", stderr);
			return XP_EXIT_USAGE;
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
	return -1; /* go on */
}

/* ---- mutexes and deadlocks ------------------------------------------ */

static int waits_in_mutex_lock(struct dump *dp, const struct dumped *d)
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

static struct dumped *find_tid(struct dump *dp, pid_t tid)
{
	size_t i;

	for (i = 0; i < dp->n; i++)
		if (dp->d[i].t->tid == tid)
			return &dp->d[i];
	return NULL;
}

static void find_mutex_owners(struct dump *dp)
{
	size_t i;

	for (i = 0; i < dp->n; i++) {
		struct dumped *d = &dp->d[i];
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
static void owners_to_our_tids(struct dump *dp)
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
		struct dumped *d = &dp->d[i];
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
static int report_deadlocks(struct dump *dp)
{
	size_t i, found = 0;

	for (i = 0; i < dp->n; i++) {
		struct dumped *start = &dp->d[i], *cur = start;
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
		printf("deadlock: these threads wait for each other's mutexes:\n");
		cur = start;
		do {
			struct dumped *next = find_tid(dp, cur->owner);
			cur->in_deadlock = 1;
			printf("  thread %d \"%s\" waits for mutex 0x%" PRIx64 " held by thread %d \"%s\"\n",
			       (int)cur->t->tid, xp_esc(cur->t->name), cur->mutex, (int)next->t->tid,
			       xp_esc(next->t->name));
			cur = next;
		} while (cur != start);
		printf("\n");
	}
	return (int)found;
}

/* ---- text ------------------------------------------------------------- */

static void print_state(struct dump *dp, const struct dumped *d)
{
	const struct xp_thread *t = d->t;

	printf("[%s", xp_state_word(t->state));
	if (d->syscall)
		printf(", %s", d->syscall);
	if (t->wchan[0])
		printf(", wchan %s", xp_esc(t->wchan));
	if (d->mutex) {
		struct dumped *o = d->owner_ns ? NULL : find_tid(dp, d->owner);
		printf(", waiting for mutex 0x%" PRIx64, d->mutex);
		if (o)
			printf(" held by thread %d \"%s\"", (int)o->t->tid, xp_esc(o->t->name));
		else if (d->owner)
			printf(" held by tid %d%s, not a thread of this process", (int)d->owner,
			       d->owner_ns ? " of its pid namespace" : "");
	}
	if (!t->stopped)
		printf(", did not stop: no stack");
	printf("]");
}

static void print_frames(struct dump *dp, const struct dumped *d)
{
	size_t i, k;

	for (i = 0; i < d->n; i++) {
		const struct xp_sym *s = xp_symbolize(dp->space, d->pc[i], d->is_call[i]);
		if (!s || s->nframes == 0) {
			const struct xp_module *m = s ? s->module : NULL;
			printf("?" "?()\n\t");
			if (m)
				printf("%s+0x%" PRIx64 "\n", xp_esc(m->path), d->pc[i] - m->start + m->offset);
			else
				printf("?" "? pc=0x%" PRIx64 "\n", d->pc[i]);
			continue;
		}
		for (k = 0; k < s->nframes; k++) {
			const struct xp_frame *f = &s->frames[k];
			int has_params = strchr(f->function, '(') != NULL;
			printf("%s%s\n\t", xp_esc(f->function),
			       has_params ? (f->inlined ? " (inlined)" : "") : (f->inlined ? "(...)" : "()"));
			if (f->file)
				printf("%s:%d", xp_esc(f->file), f->line);
			else if (s->module)
				xp_fputs_escaped(s->module->path, stdout);
			if (!f->inlined)
				printf(" +0x%" PRIx64, f->offset);
			printf("\n");
		}
	}
	if (d->capped)
		printf("...additional frames elided...\n");
	else if (!d->complete && d->t->stopped && d->t->stack_truncated)
		printf("...stack incomplete: the unwinder stopped here, at the end of the %zu KiB of stack copied...\n",
		       d->t->stack_len / 1024);
	else if (!d->complete && d->t->stopped)
		printf("...stack incomplete: the unwinder stopped here...\n");
}

static void print_dump(struct dump *dp)
{
	size_t i;

	for (i = 0; i < dp->n; i++) {
		const struct dumped *d = &dp->d[i];
		printf("thread %d \"%s\" ", (int)d->t->tid, xp_esc(d->t->name));
		print_state(dp, d);
		printf(":\n");
		print_frames(dp, d);
		printf("\n");
	}
}

static int stack_cmp(const void *a, const void *b)
{
	const struct dumped *x = *(const struct dumped *const *)a, *y = *(const struct dumped *const *)b;
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

static int same_group(const struct dumped *x, const struct dumped *y)
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

static int print_grouped(struct dump *dp)
{
	const struct dumped **v = malloc(dp->n * sizeof(*v));
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
		const struct dumped **m = &v[g[k].first];
		size_t n = g[k].count;
		if (n == 1) {
			printf("thread %d \"%s\" ", (int)m[0]->t->tid, xp_esc(m[0]->t->name));
		} else {
			/* tids, consecutive runs folded: 4101-4999 */
			printf("%zu threads \"%s\" tids ", n, xp_esc(m[0]->t->name));
			for (i = 0; i < n;) {
				size_t r = i;
				while (r + 1 < n && m[r + 1]->t->tid == m[r]->t->tid + 1)
					r++;
				printf("%s%d", i > 0 ? "," : "", (int)m[i]->t->tid);
				if (r > i)
					printf("-%d", (int)m[r]->t->tid);
				i = r + 1;
			}
			printf(" ");
		}
		print_state(dp, m[0]);
		printf(":\n");
		print_frames(dp, m[0]);
		printf("\n");
	}
	free(g);
	free(v);
	return 0;
}

/* ---- pprof ------------------------------------------------------------ */

static int write_profile(struct dump *dp, const char *path)
{
	struct xp_profile *p = xp_profile_new();
	uint64_t ids[XP_MAX_FRAMES];
	size_t i;
	int err;

	if (!p)
		return -ENOMEM;
	if ((err = xp_profile_add_sample_type(p, "threads", "count")) < 0 ||
	    (err = xp_profile_set_period(p, "threads", "count", 1)) < 0)
		goto out;
	xp_profile_set_time(p, dp->snap.time_ns, 0);
	if ((err = xp_profile_main_mapping(p, dp->space, &dp->snap.maps)) < 0)
		goto out;
	for (i = 0; i < dp->n; i++) {
		const struct dumped *d = &dp->d[i];
		int64_t one = 1;
		struct xp_plabel labels[3] = {
			{ .key = "tid", .num = d->t->tid },
			{ .key = "thread", .str = d->t->name },
			{ .key = "state", .str = xp_state_word(d->t->state) },
		};
		err = xp_stack_locations(p, dp->space, d->pc, d->is_call, d->n, ids);
		if (err < 0)
			goto out;
		err = xp_profile_add_sample(p, ids, d->n, &one, 1, labels, 3);
		if (err < 0)
			goto out;
	}
	err = xp_profile_write(p, path);
out:
	xp_profile_free(p);
	return err;
}

/* ---- run -------------------------------------------------------------- */

static int unwind_all(struct dump *dp)
{
	struct xp_mem *mem = NULL;
	struct xp_unwinder *u = NULL;
	struct xp_stack *st = malloc(sizeof(*st));
	int64_t t0 = xp_now_ns();
	size_t i;
	int err = -ENOMEM;

	dp->d = calloc(dp->snap.nthreads, sizeof(*dp->d));
	dp->live = xp_mem_process(dp->pid);
	if (!dp->live || !st || !dp->d)
		goto out;
	mem = xp_mem_snapshot(dp->snap.regions, dp->snap.nregions, dp->live);
	if (!mem)
		goto out;
	err = xp_space_open(dp->pid, &dp->snap.maps, dp->live, 0, &dp->space);
	if (err < 0)
		goto out;
	err = xp_unwinder_new(dp->space, &u);
	if (err < 0)
		goto out;
	dp->n = dp->snap.nthreads;
	for (i = 0; i < dp->n; i++) {
		struct dumped *d = &dp->d[i];
		const struct xp_thread *t = &dp->snap.threads[i];
		long nr = (long)(int64_t)t->regs.orig_rax;

		d->t = t;
		if (!t->stopped) {
			dp->incomplete++;
			continue;
		}
		if (nr >= 0 && t->state != 'R')
			d->syscall = xp_syscall_name(nr);
		xp_unwind(u, &t->regs, mem, st);
		d->pc = malloc((st->n ? st->n : 1) * sizeof(d->pc[0]));
		d->is_call = malloc(st->n ? st->n : 1);
		if (!d->pc || !d->is_call) {
			err = -ENOMEM;
			goto out;
		}
		memcpy(d->pc, st->pc, st->n * sizeof(st->pc[0]));
		memcpy(d->is_call, st->is_call, st->n);
		d->n = st->n;
		d->complete = st->complete;
		d->capped = st->capped;
		dp->frames += st->n;
		dp->capped += st->capped;
		dp->incomplete += !st->complete;
	}
	err = 0;
out:
	dp->unwind_ns = xp_now_ns() - t0;
	xp_unwinder_free(u);
	xp_mem_close(mem);
	free(st);
	return err;
}

static void dump_free(struct dump *dp)
{
	size_t i;

	for (i = 0; i < dp->n; i++) {
		free(dp->d[i].pc);
		free(dp->d[i].is_call);
	}
	free(dp->d);
	xp_space_close(dp->space);
	xp_mem_close(dp->live);
	xp_snapshot_free(&dp->snap);
}

/* The goroutines of a Go program: printed or written.  An exit code, or -1
 * when they could not be read (said): the native dump goes on. */
static int go_dump(const struct threads_opts *o, struct dump *dp, struct xp_go_target *gt,
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
		err = xp_go_goroutine_profile(gt, gs, &dp->snap, o->out);
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

int cmd_threads(int argc, char **argv)
{
	struct threads_opts o;
	struct dump dp;
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
	is_go = xp_go_target_open(dp.pid, dp.comm, &gt);
	if (is_go == -ENOTSUP) {
		xp_msg("dumping its OS threads instead");
		is_go = 0;
	}
	if (is_go < 0) {
		xp_report_attach_error(dp.pid, is_go);
		return XP_EXIT_FATAL;
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
	err = unwind_all(&dp);
	if (err < 0) {
		xp_msg("cannot unwind pid %d: %s", (int)dp.pid, strerror(-err));
		dump_free(&dp);
		return XP_EXIT_FATAL;
	}
	find_mutex_owners(&dp);
	owners_to_our_tids(&dp);

	if (o.out) {
		err = write_profile(&dp, o.out);
		if (err < 0) {
			xp_msg("cannot write %s: %s", xp_esc(o.out), strerror(-err));
			dump_free(&dp);
			return XP_EXIT_FATAL;
		}
	} else {
		static char obuf[1 << 16];
		err = 0;
		setvbuf(stdout, obuf, _IOFBF, sizeof(obuf));
		deadlocks = report_deadlocks(&dp);
		if (o.group)
			err = print_grouped(&dp);
		else
			print_dump(&dp);
		if (err < 0 || fflush(stdout) != 0) {
			xp_msg("cannot write the dump: %s", strerror(err < 0 ? -err : errno));
			dump_free(&dp);
			return XP_EXIT_FATAL;
		}
	}

	xp_msg("pid %d (%s): %zu threads, %zu frames, process stopped for %.2f ms, "
	       "total %.0f ms (unwind and symbolize %.0f ms)",
	       (int)dp.pid, dp.comm, dp.n, dp.frames, dp.snap.stopped_ns / 1e6,
	       (xp_now_ns() - t0) / 1e6, dp.unwind_ns / 1e6);
	if (dp.snap.process_was_stopped)
		xp_msg("the process was stopped (SIGSTOP) when xprof came and is left stopped");
	if (xp_live_thread(dp.pid) != dp.pid)
		xp_msg("its main thread (tid %d) has exited (pthread_exit): it is not in the dump", (int)dp.pid);
	if (dp.incomplete)
		xp_msg("%zu of %zu stacks are incomplete%s", dp.incomplete, dp.n,
		       dp.snap.not_stopped ? " (some threads did not stop in time)" : "");
	if (dp.capped)
		xp_msg("%zu stacks were cut at %d frames", dp.capped, XP_MAX_FRAMES);
	if (deadlocks)
		xp_msg("%d deadlock%s found: see the top of the dump", deadlocks, deadlocks > 1 ? "s" : "");
	if (o.out)
		xp_report_wrote(o.out, NULL);
	rc = dp.incomplete ? XP_EXIT_PARTIAL : XP_EXIT_OK;
	if (go_rc > rc)
		rc = go_rc;
	dump_free(&dp);
	return rc;
}
