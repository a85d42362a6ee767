/* collect/cpu.c: where a process spends CPU time.  perf_event_open
 * cpu-clock samples are unwound as they arrive, so only their pcs are kept;
 * with wall, collect/offcpu.c accounts for every thread without stopping
 * it, or, where perf is refused, every thread is stopped at each tick
 * (ptrace snapshots) and sampled running or not.  Exec-following: each program the process runs
 * keeps its own modules.  The samples stay aggregated by (program, thread,
 * state, stack) until the front end asks for a profile or flame stacks.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "attach/attach.h"
#include "collect/collect.h"
#include "collect/tnames.h"
#include "proto/profile.h"
#include "symbolize/symbolize.h"
#include "unwind/unwind.h"

#define FRAMES_MAX (XP_MAX_FRAMES + XP_PERF_KERNEL_FRAMES)
/* Programs one run keeps apart: a target that execs more often than this
 * ends the run (each program's modules stay open until the output). */
#define PROGRAMS_MAX 64
/* --wall: after a stop of T, the next comes no sooner than this many T
 * later, so the target runs at least 90% of the time */
#define WALL_DUTY_GAP 9

/* frame flags */
#define F_CALL 1   /* a return address: look up pc - 1 */
#define F_KERNEL 2 /* a kernel address */
#define F_PY_MOVED 4 /* the innermost Python frame had moved on when read (set on the first user frame) */
#define F_PY_LATE 8  /* read too long after the sample to show its Python frames (first user frame) */

/* One distinct (program, thread, state, stack) and its sample count. */
struct agg {
	uint64_t hash;
	pid_t tid;
	char state;
	uint8_t prog;
	uint32_t n;
	uint64_t count;
	uint64_t *pc;
	uint8_t *flag;
};

/* One program the process ran: all of the run, or the part between two
 * execs.  Its samples are unwound and symbolized against its own modules. */
struct program {
	struct xp_maps maps;
	struct xp_space *space;
	struct xp_unwinder *unwinder;
	int dirty;        /* a mapping came in: rebuild the space before unwinding */
	int borrowed;     /* space and unwinder are the caller's (xp_target_space) */
	uint64_t since;   /* perf time of the exec that started it; 0 for the first */
	char comm[64];
	/* CPython: its interpreter (opened at the first sample) and thread
	 * states, read again when a sample comes from a thread not in them */
	struct xp_py *py;
	int py_checked;
	struct xp_py_threads pts;
	int64_t pts_read_ns;
	char python[32], python_problem[160];
};

struct xp_cpu {
	struct xp_cpu_opts o;
	struct xp_cpu_stats st;  /* filled by xp_cpu_stats */
	struct xp_perf *perf;
	pid_t pid;
	char comm[64];
	int launched;
	int child_status, child_exited;
	int launch_exec_seen;  /* the exec that started a launched command was reported */
	int stop_found_gone;  /* a --wall stop found no thread left: it exited */
	struct xp_mem *live;
	struct program prog[PROGRAMS_MAX];
	size_t nprog;     /* 1 once the first space is open */
	int too_many_execs;
	uint64_t ticks_spaced; /* --wall ticks delayed to keep the pauses under a tenth */
	uint64_t wall_missed, wall_seen; /* --wall: thread samples lost (not stopped in time), of all */
	uint64_t ticks_execd;  /* --wall ticks lost: the target exec'd during each try */
	uint64_t ticks_unstopped; /* --wall ticks lost: no thread stopped in time */
	int wall_refused;      /* --wall: a later stop was refused (-EBUSY: another tracer) */
	uint64_t ticks, ticks_stopped; /* --wall stops, and those that found it SIGSTOPped */
	int left_stopped;      /* the last --wall stop found it SIGSTOPped */
	struct xp_stack *stack;
	struct xp_frame_regs *fregs; /* the stack's frames' registers (a Python program's samples) */
	struct xp_kallsyms *kallsyms;
	/* aggregation: open addressing over pointers */
	struct agg **tab;
	size_t ntab, nagg;
	struct xp_tnames names;
	uint64_t samples, complete;
	uint64_t py_samples, py_consistent, py_late, py_checked, py_corrected;
	int64_t start_ns, start_real_ns, end_ns;
	int kernel;
	int gone;
	uint64_t lost;
	int finished;          /* kallsyms loaded, spaces rebuilt: ready for output */
	struct xp_offcpu *offcpu; /* --wall from perf: collect/offcpu.c does the run */
	int wall_perf_err;     /* why --wall is not from perf */
};

static int stopping(const struct xp_cpu *r)
{
	return r->o.stop && *r->o.stop;
}

static void progress(struct xp_cpu *r, int64_t now)
{
	if (r->o.progress)
		r->o.progress(r->o.arg, xp_cpu_stats(r), now);
}

/* ---- aggregation ------------------------------------------------------ */

static uint64_t hash_stack(unsigned prog, pid_t tid, char state, const uint64_t *pc, const uint8_t *flag,
			   size_t n)
{
	uint64_t h = 1469598103934665603ULL ^ (uint64_t)tid ^ ((uint64_t)(unsigned char)state << 32) ^
		     ((uint64_t)prog << 40);
	size_t i;

	for (i = 0; i < n; i++) {
		h = (h ^ pc[i] ^ ((uint64_t)flag[i] << 60)) * 1099511628211ULL;
		h ^= h >> 29;
	}
	return h;
}

static int agg_grow(struct xp_cpu *r)
{
	size_t n = r->ntab ? r->ntab * 2 : 4096, i;
	struct agg **t = calloc(n, sizeof(*t));

	if (!t)
		return -ENOMEM;
	for (i = 0; i < r->ntab; i++) {
		size_t h;
		if (!r->tab[i])
			continue;
		for (h = r->tab[i]->hash & (n - 1); t[h]; h = (h + 1) & (n - 1))
			;
		t[h] = r->tab[i];
	}
	free(r->tab);
	r->tab = t;
	r->ntab = n;
	return 0;
}

static int agg_add(struct xp_cpu *r, unsigned prog, pid_t tid, char state, const uint64_t *pc,
		   const uint8_t *flag, size_t n)
{
	uint64_t hash = hash_stack(prog, tid, state, pc, flag, n);
	struct agg *a;
	size_t h;

	if ((r->nagg + 1) * 2 > r->ntab && agg_grow(r) < 0)
		return -ENOMEM;
	for (h = hash & (r->ntab - 1); (a = r->tab[h]) != NULL; h = (h + 1) & (r->ntab - 1)) {
		if (a->hash == hash && a->tid == tid && a->state == state && a->prog == prog && a->n == n &&
		    memcmp(a->pc, pc, n * sizeof(*pc)) == 0 && memcmp(a->flag, flag, n) == 0) {
			a->count++;
			return 0;
		}
	}
	a = malloc(sizeof(*a) + n * (sizeof(*pc) + 1));
	if (!a)
		return -ENOMEM;
	a->hash = hash;
	a->tid = tid;
	a->state = state;
	a->prog = (uint8_t)prog;
	a->n = (uint32_t)n;
	a->count = 1;
	a->pc = (uint64_t *)(a + 1);
	a->flag = (uint8_t *)(a->pc + n);
	memcpy(a->pc, pc, n * sizeof(*pc));
	memcpy(a->flag, flag, n);
	r->tab[h] = a;
	r->nagg++;
	return 0;
}

static const char *thread_name(struct xp_cpu *r, pid_t tid)
{
	return xp_tnames_get(&r->names, r->pid, tid);
}

/* ---- the address space -------------------------------------------------- */

/* (Re)builds a program's modules and unwinder from its maps. */
static void python_close(struct program *g)
{
	xp_py_threads_free(&g->pts);
	xp_py_close(g->py);
	g->py = NULL;
	g->py_checked = 0;
}

static int build_space(struct xp_cpu *r, struct program *g)
{
	int err;

	if (!g->borrowed) {
		xp_unwinder_free(g->unwinder);
		xp_space_close(g->space);
	}
	python_close(g);
	g->unwinder = NULL;
	g->space = NULL;
	g->borrowed = 0;
	g->dirty = 0;
	err = xp_space_open(r->pid, &g->maps, r->live, r->launched ? XP_SPACE_OWN_NAMESPACE : 0, &g->space);
	if (err == 0)
		err = xp_unwinder_new(g->space, &g->unwinder);
	return err;
}

/* The modules as /proc/PID/maps lists them now: at the start of an
 * attached run, right after a launched command's exec. */
static int maps_copy(const struct xp_maps *from, struct xp_maps *to);
static void finish(struct xp_cpu *r);

/* The modules as /proc/PID/maps lists them now, or as the caller's kept
 * space has them (refreshed by the caller just before). */
static int open_space(struct xp_cpu *r)
{
	struct program *g = &r->prog[0];
	const struct xp_target_space *ts = r->o.space;
	int err;

	if (r->nprog)
		return 0;
	xp_maps_free(&g->maps);
	snprintf(g->comm, sizeof(g->comm), "%s", r->comm);
	if (ts && ts->pid == r->pid && ts->space && ts->unwinder) {
		if ((err = maps_copy(&ts->maps, &g->maps)) < 0)
			return err;
		g->space = ts->space;
		g->unwinder = ts->unwinder;
		g->borrowed = 1;
		r->nprog = 1;
		return 0;
	}
	if ((err = xp_maps_read(r->pid, &g->maps)) < 0)
		return err;
	r->nprog = 1;
	return build_space(r, g);
}

static void program_free(struct program *g)
{
	python_close(g);
	if (!g->borrowed) {
		xp_unwinder_free(g->unwinder);
		xp_space_close(g->space);
	}
	xp_maps_free(&g->maps);
	memset(g, 0, sizeof(*g));
}

/* The program that ran at perf time t: the last one started by then. */
static unsigned program_at(const struct xp_cpu *r, uint64_t t)
{
	unsigned k = r->nprog ? (unsigned)r->nprog - 1 : 0;

	while (k > 0 && r->prog[k].since > t)
		k--;
	return k;
}

/* The process exec'd: what follows belongs to a new program, with modules
 * of its own (its mappings come as PERF_RECORD_MMAP2 right after).  The old
 * program's space stays open: its samples are symbolized with it. */
static void start_program(struct xp_cpu *r, uint64_t since, const char *comm)
{
	struct program *g;

	if (r->nprog == 0)
		return;
	if (r->nprog == PROGRAMS_MAX) {
		r->too_many_execs = 1;
		return;
	}
	g = &r->prog[r->nprog++];
	memset(g, 0, sizeof(*g));
	g->since = since;
	g->dirty = 1;
	xp_escape(comm, g->comm, sizeof(g->comm));
	xp_escape(comm, r->comm, sizeof(r->comm));
}

static void on_perf_exec(const struct xp_perf_exec *e, void *arg)
{
	struct xp_cpu *r = arg;

	/* a launched command's events start at its exec (enable_on_exec), so
	 * the first exec reported is the launch itself, whose program the
	 * first space already holds: not a change of program */
	if (r->launched && !r->launch_exec_seen) {
		r->launch_exec_seen = 1;
		return;
	}
	start_program(r, e->time, e->comm);
}

/* A mapping reported while sampling (PERF_RECORD_MMAP2): it replaces what
 * it overlaps in the program that made it; that program's space is rebuilt
 * before its next unwind.  Anonymous code (a JIT's, "//anon") only joins
 * the space's list of executable memory: no module to open. */
static void on_perf_mapping(const struct xp_perf_mapping *m, void *arg)
{
	struct xp_cpu *r = arg;
	struct program *g;
	struct xp_map *v, nm;
	size_t i, k = 0;
	int anon = strcmp(m->filename, "//anon") == 0 || strncmp(m->filename, "[anon", 5) == 0;

	if (!(m->prot & PROT_EXEC) || m->len == 0 || m->addr + m->len < m->addr ||
	    (m->filename[0] != '/' && strcmp(m->filename, "[vdso]") != 0 && !anon))
		return;
	memset(&nm, 0, sizeof(nm));
	nm.start = m->addr;
	nm.end = m->addr + m->len;
	nm.offset = m->pgoff;
	nm.inode = m->inode;
	nm.major = m->major;
	nm.minor = m->minor;
	memcpy(nm.perms, "r-xp", 5);
	if (r->nprog == 0)
		return;
	g = &r->prog[program_at(r, m->time)];
	nm.path = strdup(anon ? "" : m->filename);
	v = malloc((g->maps.n + 1) * sizeof(*v));
	if (!nm.path || !v) {
		free(nm.path);
		free(v);
		return;
	}
	for (i = 0; i < g->maps.n; i++) {
		struct xp_map *o = &g->maps.v[i];
		if (o->start < nm.end && nm.start < o->end) {
			free(o->path); /* replaced */
			continue;
		}
		if (nm.path && o->start >= nm.end) {
			v[k++] = nm;
			nm.path = NULL;
		}
		v[k++] = *o;
	}
	if (nm.path)
		v[k++] = nm;
	free(g->maps.v);
	g->maps.v = v;
	g->maps.n = k;
	if (anon && g->space && !g->dirty)
		xp_space_set_anon_code(g->space, &g->maps);
	else
		g->dirty = 1;
}

/* ---- one sample --------------------------------------------------------- */

/* Thread states are read again at most this often when samples come from
 * threads that have none (native threads of a Python program). */
#define PY_THREADS_REREAD_NS 100000000

/* A sample read later than this after it was taken keeps its
 * interpreter loop frames: its Python frames, read live, would be those
 * the thread runs then.  xprof reads every PY_READ_NS; a starved xprof
 * reads its backlog at one moment, and showing it all under whatever
 * each thread ran at that moment skewed the shares by up to 9 points
 * (python.t under load); without them, the shares of the samples read in
 * time stay unbiased.  On a quiet machine 98% are read within 5 ms. */
#define PY_LATE_NS 5000000

/* Finds out, once per program, whether it is a CPython xprof reads. */
static void python_open(struct xp_cpu *r, struct program *g)
{
	if (g->py_checked || !g->space)
		return;
	g->py_checked = 1;
	if (xp_py_open(g->space, r->live, &g->py, g->python_problem, sizeof(g->python_problem)) == 1)
		snprintf(g->python, sizeof(g->python), "%s", xp_py_version(g->py));
}

/* CPython: the Python frames of tid's interpreter loop activations, in
 * place of them.  The stack is the sample's copy; the innermost frame
 * pointer comes from it, the frames themselves from the live process now,
 * as soon as the sample is read (racy: counted as consistent when the
 * innermost frame pointer is still the one the copy holds).  Returns the
 * flag of the first user frame: F_PY_MOVED, F_PY_LATE or 0. */
static int python_frames(struct xp_cpu *r, struct program *g, pid_t tid, struct xp_mem *mem, uint64_t time)
{
	struct xp_py_thread *pt;
	struct xp_py_merge m;
	int64_t now;

	python_open(r, g);
	if (!g->py)
		return 0;
	pt = (struct xp_py_thread *)xp_py_thread_of(&g->pts, tid);
	if (!pt && (now = xp_monotonic_ns()) - g->pts_read_ns > PY_THREADS_REREAD_NS) {
		g->pts_read_ns = now;
		xp_py_threads_free(&g->pts);
		xp_py_threads_read(g->py, &g->pts);
		pt = (struct xp_py_thread *)xp_py_thread_of(&g->pts, tid);
	}
	if (!pt)
		return 0;
	if (time && xp_monotonic_ns() - (int64_t)time > PY_LATE_NS) {
		if (!xp_py_in_eval(g->py, r->stack))
			return 0;
		r->py_samples++;
		r->py_late++;
		return F_PY_LATE;
	}
	if (xp_py_thread_update(g->py, pt) < 0)
		return 0;
	if (xp_py_merge_stack(g->py, pt, mem, r->stack, r->fregs, &m) < 0 || !m.activations)
		return 0;
	r->py_samples++;
	r->py_consistent += m.consistent;
	r->py_checked += m.innermost == XP_PY_CHECKED;
	r->py_corrected += m.innermost == XP_PY_CORRECTED;
	return m.consistent ? 0 : F_PY_MOVED;
}

/* prog: the program that ran; kips: kernel frames, innermost first; regs
 * and mem: the user context to unwind (mem reads the copied stack), or NULL. */
static void add_sample(struct xp_cpu *r, unsigned prog, pid_t tid, char state, const uint64_t *kips,
		       size_t nk, const struct user_regs_struct *regs, struct xp_mem *mem, uint64_t time)
{
	struct program *g = &r->prog[prog];
	uint64_t pc[FRAMES_MAX];
	uint8_t flag[FRAMES_MAX];
	size_t n = 0, i;
	int pyflag = 0;

	for (i = 0; i < nk && n < FRAMES_MAX; i++, n++) {
		pc[n] = kips[i];
		flag[n] = F_KERNEL | (i > 0 ? F_CALL : 0);
	}
	if (g->dirty)
		build_space(r, g);
	if (regs && mem && g->unwinder) {
		/* a Python program's: its loop's registers say which
		 * instruction it ran */
		if (g->py && !r->fregs)
			r->fregs = malloc(XP_MAX_FRAMES * sizeof(*r->fregs));
		xp_unwind_regs(g->unwinder, regs, mem, r->stack, g->py ? r->fregs : NULL);
		pyflag = python_frames(r, g, tid, mem, time);
		for (i = 0; i < r->stack->n && n < FRAMES_MAX; i++, n++) {
			pc[n] = r->stack->pc[i];
			flag[n] = (r->stack->is_call[i] ? F_CALL : 0) | (i == 0 ? pyflag : 0);
		}
		r->complete += r->stack->complete;
	}
	r->samples++;
	if (n > 0)
		agg_add(r, prog, tid, state, pc, flag, n); /* on -ENOMEM the sample is counted, not kept */
}

static void on_perf_sample(const struct xp_perf_sample *s, void *arg)
{
	struct xp_cpu *r = arg;
	struct xp_region stack = { s->stack_addr, s->stack_len, s->stack };
	/* only the copied stack: a read outside it would be a racy live read */
	struct xp_mem *mem = xp_mem_snapshot(&stack, s->stack_len ? 1 : 0, NULL);

	thread_name(r, s->tid);
	/* before the window (an attached run's set-up) */
	if (!r->launched && r->start_ns && s->time && (int64_t)s->time < r->start_ns) {
		xp_mem_close(mem);
		return;
	}
	if (r->nprog)
		add_sample(r, program_at(r, s->time), s->tid, 'R', s->kernel_ips, s->nkernel,
			   s->have_regs ? &s->regs : NULL, mem, s->time);
	xp_mem_close(mem);
}

/* ---- running --------------------------------------------------------- */

static int target_gone(struct xp_cpu *r)
{
	char path[64], buf[512], comm[64], state;
	int fd;
	ssize_t n;

	if (r->launched) {
		int status;
		pid_t w;
		if (r->child_exited)
			return 1;
		w = waitpid(r->pid, &status, WNOHANG);
		if (w == r->pid) {
			r->child_exited = 1;
			r->child_status = status;
		} else if (w < 0 && errno == ECHILD) {
			/* reaped by a --wall snapshot's waitpid: gone, status unknown */
			r->child_exited = -1;
		}
		return r->child_exited != 0;
	}
	if (!xp_proc_alive(r->pid))
		return 1; /* whatever holds its pid now is another process */
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)r->pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 1;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return 1;
	buf[n] = '\0';
	/* a zombie leader with no threads left is gone too */
	if (sscanf(buf, "%*d (%63[^)]) %c", comm, &state) == 2 && (state == 'Z' || state == 'X')) {
		snprintf(path, sizeof(path), "/proc/%d/task", (int)r->pid);
		return access(path, F_OK) != 0 || state == 'X';
	}
	return 0;
}

/* A Python program's samples are read this often (ns), not on a quarter
 * of a ring or every 100 ms: its Python frames are read live, and the
 * sooner, the likelier they are still the ones the sample caught. */
#define PY_READ_NS 250000

static int python_running(const struct xp_cpu *r)
{
	return r->nprog && r->prog[r->nprog - 1].py != NULL;
}

static const struct xp_perf_handlers perf_handlers = {
	.sample = on_perf_sample,
	.mapping = on_perf_mapping,
	.exec = on_perf_exec,
};

static int run_perf(struct xp_cpu *r, struct xp_perf *perf)
{
	int64_t deadline = r->start_ns + r->o.duration_ns, now;
	int n;

	int64_t checked = 0;

	while (!stopping(r) && (now = xp_monotonic_ns()) < deadline) {
		int64_t left_ms = (deadline - now) / 1000000;
		if (python_running(r)) {
			struct timespec pause = { 0, PY_READ_NS };
			nanosleep(&pause, NULL);
			n = xp_perf_read(perf, 0, &perf_handlers, r);
		} else {
			n = xp_perf_read(perf, left_ms < 100 ? (int)left_ms + 1 : 100, &perf_handlers, r);
		}
		if (n < 0)
			return n;
		now = xp_monotonic_ns();
		if (now - checked < 100000000)
			continue;
		checked = now;
		progress(r, now);
		if (target_gone(r) || r->too_many_execs)
			break;
	}
	/* what is still in the buffers */
	n = xp_perf_read(perf, 0, &perf_handlers, r);
	return n < 0 ? n : 0;
}

static int same_map(const struct xp_map *a, const struct xp_map *b)
{
	return a->start == b->start && a->end == b->end && a->inode == b->inode && strcmp(a->path, b->path) == 0;
}

static int is_file_code(const struct xp_map *m)
{
	return m->perms[2] == 'x' && m->path[0] == '/';
}

/* 1 when maps holds a mapping the same as m. */
static int has_map(const struct xp_maps *maps, const struct xp_map *m)
{
	const struct xp_map *f = xp_maps_find(maps, m->start);

	return f && same_map(f, m);
}

static int maps_copy(const struct xp_maps *from, struct xp_maps *to)
{
	to->v = calloc(from->n ? from->n : 1, sizeof(*to->v));
	to->n = 0;
	if (!to->v)
		return -ENOMEM;
	for (; to->n < from->n; to->n++) {
		to->v[to->n] = from->v[to->n];
		if (!(to->v[to->n].path = strdup(from->v[to->n].path))) {
			xp_maps_free(to);
			return -ENOMEM;
		}
	}
	return 0;
}

/* --wall: the maps of each stop against the current program's.  Its main
 * executable gone means an exec (a new program); new code mapped means a
 * library loaded (the space is rebuilt).  Unmapped code changes nothing. */
static void follow_maps(struct xp_cpu *r, const struct xp_maps *now)
{
	struct program *g = &r->prog[r->nprog - 1];
	const struct xp_map *main_map = NULL;
	struct xp_maps copy;
	size_t i;
	int grew = 0;

	for (i = 0; i < g->maps.n && !main_map; i++)
		if (is_file_code(&g->maps.v[i]))
			main_map = &g->maps.v[i];
	for (i = 0; i < now->n && !grew; i++)
		grew = is_file_code(&now->v[i]) && !has_map(&g->maps, &now->v[i]);
	if (!grew && (!main_map || has_map(now, main_map)))
		return;
	if (maps_copy(now, &copy) < 0)
		return;
	if (main_map && !has_map(now, main_map)) {
		char path[64], comm[64] = "";
		int fd, n;
		snprintf(path, sizeof(path), "/proc/%d/comm", (int)r->pid);
		if ((fd = open(path, O_RDONLY | O_CLOEXEC)) >= 0) {
			n = (int)read(fd, comm, sizeof(comm) - 1);
			comm[n > 0 ? n : 0] = '\0';
			comm[strcspn(comm, "\n")] = '\0';
			close(fd);
		}
		start_program(r, (uint64_t)xp_monotonic_ns(), comm[0] ? comm : r->comm);
		if (r->too_many_execs) {
			xp_maps_free(&copy);
			return;
		}
		g = &r->prog[r->nprog - 1];
	}
	xp_maps_free(&g->maps);
	g->maps = copy;
	g->dirty = 1;
}

static int run_wall(struct xp_cpu *r)
{
	int64_t period = 1000000000LL / r->o.freq;
	int64_t deadline = r->start_ns + r->o.duration_ns, next = r->start_ns;
	int err;

	while (!stopping(r) && xp_monotonic_ns() < deadline) {
		struct xp_snapshot snap;
		struct xp_mem *mem;
		int64_t stopped = 0;
		size_t i;

		err = xp_snapshot_take(r->pid, &snap);
		if (err == -ESRCH)
			r->stop_found_gone = 1;
		if (err == -ESRCH || target_gone(r))
			break;
		if (err == -EAGAIN || err == -ETIMEDOUT) {
			/* it exec'd during every try, or no thread would stop */
			if (err == -EAGAIN)
				r->ticks_execd++;
			else
				r->ticks_unstopped++;
			goto next_tick;
		}
		/* a tracer (a debugger) that came after the first stop: the
		 * run ends with what it has */
		if ((err == -EBUSY || err == -EPERM) && r->samples > 0) {
			r->wall_refused = err;
			break;
		}
		if (err < 0)
			return err;
		if (open_space(r) < 0) {
			xp_snapshot_free(&snap);
			return -ESRCH;
		}
		follow_maps(r, &snap.maps);
		if (r->too_many_execs) {
			xp_snapshot_free(&snap);
			break;
		}
		mem = xp_mem_snapshot(snap.regions, snap.nregions, NULL);
		for (i = 0; mem && i < snap.nthreads; i++) {
			const struct xp_thread *t = &snap.threads[i];
			/* a thread in group stop (SIGSTOP) is not running */
			char state = t->state == 'S' || t->state == 'D' || t->state == 'T' ? t->state : 'R';
			if (t->group_stopped)
				state = 'T';
			r->wall_seen++;
			if (!t->stopped) {
				r->wall_missed++;
				continue;
			}
			thread_name(r, t->tid);
			add_sample(r, (unsigned)r->nprog - 1, t->tid, state, NULL, 0, &t->regs, mem, 0);
		}
		xp_mem_close(mem);
		r->ticks++;
		r->ticks_stopped += snap.process_was_stopped != 0;
		r->left_stopped = snap.process_was_stopped != 0;
		stopped = snap.stopped_ns;
		xp_snapshot_free(&snap);
next_tick:
		progress(r, xp_monotonic_ns());
		next += period;
		/* the target is stopped at most a tenth of the time: a process
		 * of many threads gets fewer ticks, not a longer pause */
		if (next < xp_monotonic_ns() + WALL_DUTY_GAP * stopped) {
			next = xp_monotonic_ns() + WALL_DUTY_GAP * stopped;
			r->ticks_spaced++;
		}
		while (!stopping(r)) {
			int64_t now = xp_monotonic_ns(), wait = next - now;
			struct timespec ts;
			if (wait <= 0)
				break;
			if (now + wait > deadline)
				wait = deadline - now;
			if (wait <= 0)
				break;
			ts.tv_sec = wait / 1000000000;
			ts.tv_nsec = wait % 1000000000;
			if (nanosleep(&ts, NULL) == 0)
				break;
		}
		if (xp_monotonic_ns() > next + period && !r->ticks_spaced) /* fell behind: skip, don't burst */
			next = xp_monotonic_ns();
	}
	return 0;
}

static int64_t kernel_mapping(struct xp_profile *p, struct xp_cpu *r)
{
	struct xp_pmapping m = {
		.start = 0xffff800000000000ULL,
		.limit = 0xffffffffffffffffULL,
		.file = "[kernel.kallsyms]",
		.has_functions = r->kallsyms != NULL,
	};

	return xp_profile_mapping(p, &m);
}

static int kernel_location(struct xp_profile *p, struct xp_cpu *r, uint64_t pc, int is_call,
			   uint64_t *id)
{
	uint64_t off;
	const char *name = xp_kallsyms_lookup(r->kallsyms, pc - (is_call ? 1 : 0), &off);
	int64_t mid = kernel_mapping(p, r), fid, lid;
	struct xp_pline line;

	if (mid < 0)
		return (int)mid;
	if (!name) {
		lid = xp_profile_location(p, (uint64_t)mid, pc - (is_call ? 1 : 0), NULL, 0);
	} else {
		fid = xp_profile_function(p, name, name, "", 0);
		if (fid < 0)
			return (int)fid;
		line.function_id = (uint64_t)fid;
		line.line = 0;
		lid = xp_profile_location(p, (uint64_t)mid, pc - (is_call ? 1 : 0), &line, 1);
	}
	if (lid < 0)
		return (int)lid;
	*id = (uint64_t)lid;
	return 0;
}

static const char *state_word(char state)
{
	return state == 'S' ? "sleeping" : state == 'D' ? "disk" : state == 'T' ? "stopped" : "running";
}

static int build_profile(struct xp_cpu *r, struct xp_profile **out)
{
	struct xp_profile *p = xp_profile_new();
	int64_t period = 1000000000LL / r->o.freq;
	const char *vtype = r->o.wall ? "wall" : "cpu";
	uint64_t ids[FRAMES_MAX];
	unsigned char is_call[FRAMES_MAX];
	size_t i, k;
	int err;

	if (!p)
		return -ENOMEM;
	if ((err = xp_profile_add_sample_type(p, "samples", "count")) < 0 ||
	    (err = xp_profile_add_sample_type(p, vtype, "nanoseconds")) < 0 ||
	    (err = xp_profile_set_period(p, vtype, "nanoseconds", period)) < 0)
		goto out;
	xp_profile_set_time(p, r->start_real_ns, r->end_ns - r->start_ns);
	if (r->nprog && r->prog[0].space &&
	    (err = xp_profile_main_mapping(p, r->prog[0].space, &r->prog[0].maps)) < 0)
		goto out;
	for (i = 0; i < r->ntab; i++) {
		struct agg *a = r->tab[i];
		struct xp_space *space;
		int64_t values[2];
		struct xp_plabel labels[4];
		size_t nl = 2, first_user;

		if (!a)
			continue;
		space = a->prog < r->nprog ? r->prog[a->prog].space : NULL;
		for (k = 0; k < a->n && (a->flag[k] & F_KERNEL); k++) {
			err = kernel_location(p, r, a->pc[k], a->flag[k] & F_CALL, &ids[k]);
			if (err < 0)
				goto out;
		}
		first_user = k;
		for (; k < a->n; k++)
			is_call[k] = (a->flag[k] & F_CALL) != 0;
		if (a->n > first_user && space) {
			err = xp_stack_locations(p, space, a->pc + first_user, is_call + first_user,
						 a->n - first_user, ids + first_user);
			if (err < 0)
				goto out;
		}
		values[0] = (int64_t)a->count;
		values[1] = (int64_t)a->count * period;
		labels[0] = (struct xp_plabel){ .key = "thread", .str = thread_name(r, a->tid) };
		labels[1] = (struct xp_plabel){ .key = "tid", .num = a->tid };
		if (r->o.wall)
			labels[nl++] = (struct xp_plabel){ .key = "state", .str = state_word(a->state) };
		if (first_user < a->n && (a->flag[first_user] & F_PY_MOVED))
			labels[nl++] = (struct xp_plabel){ .key = "python", .str = "moved" };
		else if (first_user < a->n && (a->flag[first_user] & F_PY_LATE))
			labels[nl++] = (struct xp_plabel){ .key = "python", .str = "late" };
		err = xp_profile_add_sample(p, ids, space ? a->n : first_user, values, 2, labels, nl);
		if (err < 0)
			goto out;
	}
	*out = p;
	return 0;
out:
	xp_profile_free(p);
	return err;
}

/* Frame names of one aggregated stack, root first, for flame graphs:
 * inline frames expanded, kernel frames marked _[k]. */
static size_t stack_names(struct xp_cpu *r, const struct agg *a, char **names, size_t max)
{
	struct xp_space *space = a->prog < r->nprog ? r->prog[a->prog].space : NULL;
	size_t n = 0, k, j;

	for (k = a->n; k-- > 0 && n < max;) {
		if (a->flag[k] & F_KERNEL) {
			uint64_t off;
			const char *name = xp_kallsyms_lookup(r->kallsyms, a->pc[k], &off);
			if (asprintf(&names[n], "%s_[k]", name ? name : "[unknown]") >= 0)
				n++;
			continue;
		}
		const struct xp_sym *s = space ? xp_symbolize(space, a->pc[k], a->flag[k] & F_CALL) : NULL;
		if (!s || s->nframes == 0) {
			const struct xp_module *m = s ? s->module : NULL;
			const char *base = m ? strrchr(m->path, '/') : NULL;
			uint64_t off = m ? a->pc[k] - m->start + m->offset : a->pc[k];
			/* a pseudo-module ([jit]) is named as it is */
			if ((m && !base ? asprintf(&names[n], "%s+0x%" PRIx64, m->path, off)
					: asprintf(&names[n], "[%s+0x%" PRIx64 "]", base ? base + 1 : "unknown", off)) >= 0)
				n++;
			continue;
		}
		/* the inline chain is innermost first: root first is its reverse */
		for (j = s->nframes; j-- > 0 && n < max;)
			if ((names[n] = strdup(s->frames[j].function)) != NULL)
				n++;
	}
	return n;
}

int xp_cpu_stacks(struct xp_cpu *r, struct xp_cpu_stack **out, size_t *nout)
{
	struct xp_cpu_stack *v;
	size_t i, n = 0;

	if (r->offcpu)
		return xp_offcpu_stacks(r->offcpu, out, nout);
	v = calloc(r->nagg ? r->nagg : 1, sizeof(*v));
	if (!v)
		return -ENOMEM;
	finish(r);
	for (i = 0; i < r->ntab; i++) {
		struct agg *a = r->tab[i];
		size_t max;
		if (!a)
			continue;
		/* each pc may expand into its inline chain */
		max = (size_t)a->n * 8 + 1;
		v[n].frames = calloc(max, sizeof(*v[n].frames));
		if (!v[n].frames) {
			xp_cpu_stacks_free(v, n);
			return -ENOMEM;
		}
		v[n].nframes = stack_names(r, a, v[n].frames, max);
		v[n].count = a->count;
		n++;
	}
	*out = v;
	*nout = n;
	return 0;
}

void xp_cpu_stacks_free(struct xp_cpu_stack *v, size_t n)
{
	size_t i, k;

	for (i = 0; i < n; i++) {
		for (k = 0; k < v[i].nframes; k++)
			free(v[i].frames[k]);
		free(v[i].frames);
	}
	free(v);
}

static void run_free(struct xp_cpu *r)
{
	size_t i;

	for (i = 0; i < r->ntab; i++)
		free(r->tab[i]);
	free(r->tab);
	xp_tnames_free(&r->names);
	free(r->stack);
	free(r->fregs);
	for (i = 0; i < r->nprog; i++)
		program_free(&r->prog[i]);
	xp_mem_close(r->live);
	xp_kallsyms_free(r->kallsyms);
}


/* ---- the run ------------------------------------------------------------ */

/* --wall from perf: the caller's progress, with the stats it knows */
static void offcpu_progress(void *arg, int64_t now)
{
	progress(arg, now);
}

int xp_cpu_open(const struct xp_cpu_opts *o, struct xp_cpu **out)
{
	struct xp_cpu *r = calloc(1, sizeof(*r));
	int err;

	if (!r)
		return -ENOMEM;
	r->o = *o;
	r->pid = o->pid;
	r->launched = o->launched;
	snprintf(r->comm, sizeof(r->comm), "%s", o->comm ? o->comm : "?");
	r->stack = malloc(sizeof(*r->stack));
	r->live = xp_mem_process(r->pid);
	if (!r->stack) {
		xp_cpu_close(r);
		return -ENOMEM;
	}
	if (o->wall == XP_WALL && !o->launched) {
		/* every thread's time without stopping it, when perf allows */
		struct xp_offcpu_opts wo = {
			.pid = r->pid, .duration_ns = o->duration_ns, .wall = 1, .freq = o->freq, .stop = o->stop,
			.progress = o->progress ? offcpu_progress : NULL, .arg = r,
		};
		err = xp_offcpu_open(&wo, &r->offcpu);
		if (err == 0) {
			*out = r;
			return 0;
		}
		r->offcpu = NULL;
		r->wall_perf_err = err;
	}
	if (!o->wall) {
		struct xp_perf_opts po = {
			.pid = r->pid,
			.freq = o->freq,
			.stack_bytes = XP_PERF_STACK_DEFAULT,
			.kernel = o->kernel,
			.enable_on_exec = o->launched,
		};
		err = xp_perf_open(&po, &r->perf);
		if (err < 0) {
			r->perf = NULL;
			xp_cpu_close(r);
			return err;
		}
		r->kernel = xp_perf_kernel(r->perf);
	}
	*out = r;
	return 0;
}

int xp_cpu_run(struct xp_cpu *r)
{
	struct timespec ts;
	int err;

	if (r->offcpu) {
		const struct xp_offcpu_stats *ws;
		err = xp_offcpu_run(r->offcpu);
		ws = xp_offcpu_stats(r->offcpu);
		r->start_ns = ws->start_ns;
		r->end_ns = ws->end_ns;
		r->start_real_ns = ws->start_real_ns;
		r->gone = ws->gone;
		r->lost = ws->lost;
		return err;
	}
	r->start_ns = xp_monotonic_ns();
	clock_gettime(CLOCK_REALTIME, &ts);
	r->start_real_ns = (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
	if (!r->o.wall) {
		/* know the modules before the first sample: an attached process's
		 * now, a launched command's as its exec left them (its libraries
		 * arrive as PERF_RECORD_MMAP2) */
		if ((err = open_space(r)) < 0) {
			r->end_ns = xp_monotonic_ns();
			return err;
		}
		/* the window starts once the samples can be read as they come:
		 * the interpreter's layouts took 60 ms to read from its debug
		 * file, and samples waiting for that lose their Python frames */
		if (!r->launched) {
			python_open(r, &r->prog[0]);
			r->start_ns = xp_monotonic_ns();
			clock_gettime(CLOCK_REALTIME, &ts);
			r->start_real_ns = (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
		}
	}
	err = r->o.wall ? run_wall(r) : run_perf(r, r->perf);
	r->end_ns = xp_monotonic_ns();
	/* a stop that found no thread knows; the pid may already be reused */
	r->gone = r->stop_found_gone || target_gone(r);
	if (r->perf) {
		r->lost = xp_perf_lost(r->perf);
		xp_perf_close(r->perf);
		r->perf = NULL;
	}
	return err;
}

const struct xp_cpu_stats *xp_cpu_stats(const struct xp_cpu *c)
{
	struct xp_cpu *r = (struct xp_cpu *)c; /* st is a cache of the fields */
	struct xp_cpu_stats *st = &r->st;

	st->samples = r->samples;
	st->complete = r->complete;
	st->threads = r->names.n;
	st->lost = r->lost;
	st->kernel = r->kernel;
	st->gone = r->gone;
	st->too_many_execs = r->too_many_execs;
	st->programs = r->nprog;
	st->first_comm = r->nprog ? r->prog[0].comm : r->comm;
	st->last_comm = r->nprog ? r->prog[r->nprog - 1].comm : r->comm;
	st->comm = r->comm;
	st->child_exited = r->child_exited;
	st->child_status = r->child_status;
	st->ticks = r->ticks;
	st->ticks_stopped = r->ticks_stopped;
	st->ticks_spaced = r->ticks_spaced;
	st->ticks_execd = r->ticks_execd;
	st->ticks_unstopped = r->ticks_unstopped;
	st->wall_missed = r->wall_missed;
	st->wall_seen = r->wall_seen;
	st->wall_refused = r->wall_refused;
	st->left_stopped = r->left_stopped;
	st->start_ns = r->start_ns;
	st->end_ns = r->end_ns;
	st->start_real_ns = r->start_real_ns;
	st->python = r->nprog ? r->prog[r->nprog - 1].python : "";
	st->python_layout = r->nprog && r->prog[r->nprog - 1].py ? xp_py_layout_source(r->prog[r->nprog - 1].py) : NULL;
	st->python_check = r->nprog && r->prog[r->nprog - 1].py ? xp_py_innermost_check(r->prog[r->nprog - 1].py) : NULL;
	st->python_problem = r->nprog ? r->prog[r->nprog - 1].python_problem : "";
	st->py_samples = r->py_samples;
	st->py_consistent = r->py_consistent;
	st->py_late = r->py_late;
	st->py_checked = r->py_checked;
	st->py_corrected = r->py_corrected;
	st->wall_perf = r->offcpu != NULL;
	st->wall_perf_err = r->wall_perf_err;
	if (r->offcpu) {
		const struct xp_offcpu_stats *ws = xp_offcpu_stats(r->offcpu);
		st->samples = ws->samples;
		st->complete = ws->complete;
		st->threads = ws->threads;
		st->lost = ws->lost;
		st->wall_execd = ws->execd;
		/* during the run too (the progress line counts from the start) */
		st->start_ns = ws->start_ns;
		st->start_real_ns = ws->start_real_ns;
	}
	if (r->nprog && r->prog[0].space)
		xp_space_jit_stats(r->prog[0].space, &st->jit);
	return st;
}

/* Before output: kernel symbols (read only now: ~100 ms of CPU the target
 * would feel during the run) and the spaces of programs whose mappings
 * changed last. */
static int has_kernel_frames(const struct xp_cpu *r)
{
	size_t i;

	for (i = 0; i < r->ntab; i++)
		if (r->tab[i] && r->tab[i]->n && (r->tab[i]->flag[0] & F_KERNEL))
			return 1;
	return 0;
}

static void finish(struct xp_cpu *r)
{
	size_t i;

	if (r->finished)
		return;
	r->finished = 1;
	/* kallsyms is some 120,000 lines the kernel formats on each read:
	 * read only when a sample has a kernel frame */
	if (r->kernel && has_kernel_frames(r))
		r->kallsyms = xp_kallsyms_load();
	for (i = 0; i < r->nprog; i++)
		if (r->prog[i].dirty)
			build_space(r, &r->prog[i]);
}

int xp_cpu_profile(struct xp_cpu *r, struct xp_profile **out)
{
	if (r->offcpu)
		return xp_offcpu_profile(r->offcpu, out);
	finish(r);
	return build_profile(r, out);
}

/* For a live view (xprof top), called between reads (from progress): the
 * profile of the samples since the last take, then the aggregation is
 * emptied.  Kernel symbols are read at the first take; the stats stay
 * cumulative. */
int xp_cpu_profile_take(struct xp_cpu *r, struct xp_profile **out)
{
	size_t i;
	int err;

	if (r->offcpu)
		return xp_offcpu_take(r->offcpu, out);
	if (r->kernel && !r->kallsyms)
		r->kallsyms = xp_kallsyms_load();
	for (i = 0; i < r->nprog; i++)
		if (r->prog[i].dirty)
			build_space(r, &r->prog[i]);
	if ((err = build_profile(r, out)) < 0)
		return err;
	for (i = 0; i < r->ntab; i++) {
		free(r->tab[i]);
		r->tab[i] = NULL;
	}
	r->nagg = 0;
	return 0;
}

void xp_cpu_close(struct xp_cpu *r)
{
	if (!r)
		return;
	xp_perf_close(r->perf);
	xp_offcpu_close(r->offcpu);
	run_free(r);
	free(r);
}
