/* collect/offcpu.c: where threads wait, without stopping them.  perf's
 * context-switch event samples each thread as it leaves the CPU (user
 * registers and stack, kernel chain), and the switch records say when it
 * comes back and whether it left of its own accord or was preempted: each
 * interval off the CPU is weighed by its own length.  `xprof block` keeps
 * the waits; `cpu --wall` adds cpu-clock samples for the time on the CPU,
 * so every thread is accounted for over the whole run.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "attach/attach.h"
#include "collect/collect.h"
#include "collect/tnames.h"
#include "proto/profile.h"
#include "symbolize/symbolize.h"
#include "unwind/unwind.h"

/* A sample taken this long before a switch-out record is not its own. */
#define SAMPLE_TO_SWITCH_NS 10000000
#define THREADS_MAX 100000
/* distinct syscall and wait channel names: a kernel has a few thousand */
#define STRINGS_MAX 8192
/* threads asleep at the start: how far above sp a frame record is looked for */
#define RBP_SCAN_BYTES 4096
#define RBP_TRIES 32
#define RBP_TRIES_TOTAL 4096 /* for all threads: the rings fill meanwhile */

enum { K_BLOCKED = XP_OFFCPU_BLOCKED, K_PREEMPTED = XP_OFFCPU_PREEMPTED, K_RUNNING = XP_OFFCPU_RUNNING,
       K_STOPPED = XP_OFFCPU_STOPPED, K_KINDS = XP_OFFCPU_KINDS };

/* One distinct (thread, reason, wait channel, stack), what it added up. */
struct entry {
	uint64_t hash;
	pid_t tid;
	const char *reason;   /* syscall name, "page_fault", or NULL */
	const char *wchan;    /* kernel function it waited in, or NULL */
	uint32_t n;
	uint64_t count[K_KINDS];
	int64_t ns[K_KINDS];
	uint64_t *pc;
	uint8_t *is_call;
};

/* Where one thread is: the last sample taken as it left, and since when it
 * is away. */
struct tstate {
	pid_t tid;
	char name[64];
	struct entry *sampled;  /* the stack of the last switch-out sample */
	uint64_t sampled_time;
	struct entry *away;     /* the stack of the wait in progress (may be NULL) */
	uint64_t out_time;      /* 0: not known to be away */
	int out_kind;           /* what the time away is: K_BLOCKED, K_PREEMPTED, K_STOPPED */
	/* --wall: its time on a CPU, exact from the switch records; its
	 * cpu-clock samples share it (a timer tick of a loaded VM comes late,
	 * and a sample weighed one period each undercounted: 2.70 s of 3 s
	 * for a thread that was always running or runnable) */
	uint64_t in_time;       /* 0: not known to be on a CPU */
	int switched;           /* a switch record was seen */
	int64_t oncpu_ns;
	uint64_t clock_samples;
};

struct xp_offcpu {
	struct xp_offcpu_opts o;
	struct xp_offcpu_stats st;
	struct xp_target_space own;  /* when the caller keeps none */
	struct xp_target_space *ts;  /* own, or the caller's */
	int have_space;
	int space_dirty;
	struct xp_perf *sw, *clock;
	struct xp_kallsyms *ksyms;
	struct xp_stack *stack;
	struct entry **tab;
	size_t ntab, nent;
	struct tstate *thr;
	size_t nthr, thr_alloc;
	int execd;
	size_t rbp_tries;     /* unwinds tried with a guessed frame pointer */
	char **strings;       /* label values, interned */
	size_t nstrings;
	/* the window being aggregated: the run's start, or the last take's
	 * time (xp_offcpu_take); intervals begun before it count from it */
	int64_t win_start_ns, win_start_real_ns;
};

/* ---- aggregation ------------------------------------------------------ */

static uint64_t entry_hash(pid_t tid, const char *reason, const char *wchan, const uint64_t *pc, size_t n)
{
	uint64_t h = 14695981039346656037ULL ^ (uint64_t)tid;
	size_t i;

	h = (h ^ (uint64_t)(uintptr_t)reason) * 1099511628211ULL;
	h = (h ^ (uint64_t)(uintptr_t)wchan) * 1099511628211ULL;
	for (i = 0; i < n; i++)
		h = ((h ^ pc[i]) * 1099511628211ULL) ^ (h >> 31);
	return h;
}

static int tab_grow(struct xp_offcpu *c)
{
	size_t n = c->ntab ? c->ntab * 2 : 1024, i, h;
	struct entry **t = calloc(n, sizeof(*t));

	if (!t)
		return -ENOMEM;
	for (i = 0; i < c->ntab; i++) {
		if (!c->tab[i])
			continue;
		for (h = c->tab[i]->hash & (n - 1); t[h]; h = (h + 1) & (n - 1))
			;
		t[h] = c->tab[i];
	}
	free(c->tab);
	c->tab = t;
	c->ntab = n;
	return 0;
}

/* The entry of this stack, made when new; NULL when out of memory.
 * reason and wchan are static strings or kallsyms', compared by address. */
static struct entry *entry_get(struct xp_offcpu *c, pid_t tid, const char *reason, const char *wchan,
			       const struct xp_stack *s)
{
	size_t n = s ? s->n : 0, h;
	const uint64_t *pc = s ? s->pc : NULL;
	uint64_t hash = entry_hash(tid, reason, wchan, pc, n);
	struct entry *e;

	if ((c->nent + 1) * 2 > c->ntab && tab_grow(c) < 0)
		return NULL;
	for (h = hash & (c->ntab - 1); (e = c->tab[h]) != NULL; h = (h + 1) & (c->ntab - 1))
		if (e->hash == hash && e->tid == tid && e->reason == reason && e->wchan == wchan && e->n == n &&
		    (n == 0 || (memcmp(e->pc, pc, n * sizeof(*pc)) == 0 && memcmp(e->is_call, s->is_call, n) == 0)))
			return e;
	e = calloc(1, sizeof(*e) + n * (sizeof(*pc) + 1));
	if (!e)
		return NULL;
	e->hash = hash;
	e->tid = tid;
	e->reason = reason;
	e->wchan = wchan;
	e->n = (uint32_t)n;
	e->pc = (uint64_t *)(e + 1);
	e->is_call = (uint8_t *)(e->pc + n);
	if (n) {
		memcpy(e->pc, pc, n * sizeof(*pc));
		memcpy(e->is_call, s->is_call, n);
	}
	c->tab[h] = e;
	c->nent++;
	return e;
}

static void entry_add(struct xp_offcpu *c, struct entry *e, int kind, int64_t ns)
{
	if (ns <= 0)
		return;
	c->st.ns[kind] += ns;
	c->st.count[kind]++;
	if (!e) {
		c->st.unmatched++;
		return;
	}
	e->count[kind]++;
	e->ns[kind] += ns;
}

/* ---- threads ---------------------------------------------------------- */

static void read_small(const char *path, char *buf, size_t len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n = fd >= 0 ? read(fd, buf, len - 1) : -1;

	if (fd >= 0)
		close(fd);
	buf[n > 0 ? n : 0] = '\0';
	buf[strcspn(buf, "\n")] = '\0';
}

static struct tstate *thread_get(struct xp_offcpu *c, pid_t tid)
{
	struct tstate *t;
	size_t i;

	for (i = 0; i < c->nthr; i++)
		if (c->thr[i].tid == tid)
			return &c->thr[i];
	if (c->nthr >= THREADS_MAX)
		return NULL;
	if (c->nthr == c->thr_alloc) {
		size_t n = c->thr_alloc ? c->thr_alloc * 2 : 64;
		struct tstate *v = realloc(c->thr, n * sizeof(*v));
		if (!v)
			return NULL;
		c->thr = v;
		c->thr_alloc = n;
	}
	t = &c->thr[c->nthr++];
	memset(t, 0, sizeof(*t));
	t->tid = tid;
	xp_thread_comm(c->o.pid, tid, t->name, sizeof(t->name));
	return t;
}

static const char *thread_name(const struct xp_offcpu *c, pid_t tid)
{
	size_t i;

	for (i = 0; i < c->nthr; i++)
		if (c->thr[i].tid == tid)
			return c->thr[i].name;
	return "?";
}

/* ---- why a thread waited, from the kernel chain of its switch-out ------ */

static int starts_with(const char *s, const char *prefix)
{
	return strncmp(s, prefix, strlen(prefix)) == 0;
}

/* The scheduler's own frames, between the switch and the function that
 * decided to wait. */
static int is_sched_frame(const char *f)
{
	return starts_with(f, "schedule") || starts_with(f, "__schedule") || starts_with(f, "io_schedule") ||
	       starts_with(f, "preempt_schedule") || starts_with(f, "__cond_resched") ||
	       starts_with(f, "perf_") || starts_with(f, "__perf_") || starts_with(f, "___perf_") ||
	       starts_with(f, "finish_task_switch") || starts_with(f, "__traceiter");
}

/* The syscall: the frame the syscall entry (do_syscall_64) called, whose
 * name says which (__x64_sys_futex, __do_sys_wait4, ksys_read).  The wait
 * channel: the first frame past the scheduler's. */
static void kernel_reason(struct xp_offcpu *c, const uint64_t *ips, size_t n, const char **reason,
			  const char **wchan)
{
	static const char *const prefixes[] = { "__x64_sys_", "__ia32_sys_", "__do_sys_", "__se_sys_", "ksys_",
						"__sys_", "do_sys_" };
	const char *prev = NULL;
	size_t i, k;

	*reason = NULL;
	*wchan = NULL;
	if (!c->ksyms)
		return;
	for (i = 0; i < n; i++) {
		uint64_t off;
		const char *f = xp_kallsyms_lookup(c->ksyms, ips[i] - (i > 0), &off);
		if (!f)
			continue;
		if (!*wchan && !is_sched_frame(f))
			*wchan = f;
		if (strcmp(f, "do_syscall_64") == 0) {
			if (prev)
				for (k = 0; k < sizeof(prefixes) / sizeof(prefixes[0]); k++)
					if (starts_with(prev, prefixes[k])) {
						*reason = prev + strlen(prefixes[k]);
						break;
					}
			return;
		}
		if (strstr(f, "exc_page_fault")) {
			*reason = "page_fault";
			return;
		}
		if (strcmp(f, "x64_sys_call") != 0)
			prev = f;
	}
}

/* Label strings are kept once each, so that entries compare them by
 * address: a syscall named by kallsyms and by /proc/TID/syscall alike. */
static const char *intern(struct xp_offcpu *c, const char *name)
{
	size_t i;
	char **v;

	if (!name)
		return NULL;
	for (i = 0; i < c->nstrings; i++)
		if (strcmp(c->strings[i], name) == 0)
			return c->strings[i];
	if (c->nstrings >= STRINGS_MAX || !(v = realloc(c->strings, (c->nstrings + 1) * sizeof(*v))))
		return "?";
	c->strings = v;
	if (!(v[c->nstrings] = strdup(name)))
		return "?";
	return v[c->nstrings++];
}

/* ---- records ------------------------------------------------------------ */

static void unwind_into(struct xp_offcpu *c, const struct user_regs_struct *regs, struct xp_mem *mem)
{
	if (c->space_dirty && c->have_space) {
		c->space_dirty = 0;
		xp_target_space_refresh(c->ts);
	}
	c->stack->n = 0;
	c->stack->complete = 0;
	c->st.samples++;
	if (regs && mem && c->have_space && c->ts->unwinder) {
		xp_unwind(c->ts->unwinder, regs, mem, c->stack);
		c->st.complete += c->stack->complete;
	}
}

static void on_switch_sample(const struct xp_perf_sample *s, void *arg)
{
	struct xp_offcpu *c = arg;
	struct xp_region stack = { s->stack_addr, s->stack_len, s->stack };
	struct xp_mem *mem = xp_mem_snapshot(&stack, s->stack_len ? 1 : 0, NULL);
	struct tstate *t = thread_get(c, s->tid);
	const char *reason, *wchan;

	unwind_into(c, s->have_regs ? &s->regs : NULL, mem);
	xp_mem_close(mem);
	if (!t)
		return;
	kernel_reason(c, s->kernel_ips, s->nkernel, &reason, &wchan);
	t->sampled = entry_get(c, s->tid, intern(c, reason), intern(c, wchan), c->stack);
	t->sampled_time = s->time;
}

static int64_t clamp_start(const struct xp_offcpu *c, uint64_t t)
{
	return (int64_t)t < c->win_start_ns ? c->win_start_ns : (int64_t)t;
}

static void on_switch(const struct xp_perf_switch *w, void *arg)
{
	struct xp_offcpu *c = arg;
	struct tstate *t = thread_get(c, w->tid);

	if (!t)
		return;
	c->st.switches += w->out;
	if (w->out) {
		/* on a CPU since it came in, or since the start */
		if (t->in_time || !t->switched)
			t->oncpu_ns += (int64_t)w->time - clamp_start(c, t->in_time);
		t->in_time = 0;
		t->switched = 1;
		/* an earlier wait whose end was lost is dropped */
		t->out_time = w->time;
		t->out_kind = w->preempted ? K_PREEMPTED : K_BLOCKED;
		t->away = t->sampled && w->time >= t->sampled_time && w->time - t->sampled_time < SAMPLE_TO_SWITCH_NS
				  ? t->sampled
				  : NULL;
		t->sampled = NULL;
		return;
	}
	t->in_time = w->time;
	t->switched = 1;
	if (t->out_time) {
		entry_add(c, t->away, t->out_kind, (int64_t)w->time - clamp_start(c, t->out_time));
		t->out_time = 0;
		t->away = NULL;
	}
}

/* --wall: a cpu-clock sample is period ns on the CPU, until
 * weigh_running() shares out each thread's measured time on a CPU. */
static void on_clock_sample(const struct xp_perf_sample *s, void *arg)
{
	struct xp_offcpu *c = arg;
	struct xp_region stack = { s->stack_addr, s->stack_len, s->stack };
	struct xp_mem *mem = xp_mem_snapshot(&stack, s->stack_len ? 1 : 0, NULL);
	struct tstate *t;

	unwind_into(c, s->have_regs ? &s->regs : NULL, mem);
	xp_mem_close(mem);
	if ((int64_t)s->time < c->st.start_ns || !(t = thread_get(c, s->tid)))
		return; /* before the start: not the run's */
	t->clock_samples++;
	entry_add(c, entry_get(c, s->tid, NULL, NULL, c->stack), K_RUNNING, 1000000000LL / c->o.freq);
}

static void on_mapping(const struct xp_perf_mapping *m, void *arg)
{
	struct xp_offcpu *c = arg;

	(void)m;
	c->space_dirty = 1;
}

static void on_exec(const struct xp_perf_exec *e, void *arg)
{
	struct xp_offcpu *c = arg;

	(void)e;
	c->execd = 1;
}

static const struct xp_perf_handlers switch_handlers = {
	.sample = on_switch_sample,
	.switched = on_switch,
	.mapping = on_mapping,
	.exec = on_exec,
};

static const struct xp_perf_handlers clock_handlers = {
	.sample = on_clock_sample,
	.mapping = on_mapping,
	.exec = on_exec,
};

/* ---- threads already waiting when the run starts ------------------------ */

/* /proc/TID/syscall gives no frame pointer, and code that keeps its
 * frame in rbp cannot be unwound past without it.  The frame record of
 * the innermost such frame is on the stack: a word pointing further up
 * the stack (the caller's record, or 0) followed by a return address into
 * code.  Each candidate above sp is tried, the first whole unwind kept. */
static void unwind_guessing_rbp(struct xp_offcpu *c, struct user_regs_struct *regs)
{
	uint64_t words[RBP_SCAN_BYTES / 8];
	const struct xp_map *stack = xp_maps_find(&c->ts->maps, regs->rsp), *code;
	ssize_t got;
	size_t i, n, tries = 0;

	if (!stack)
		return;
	got = xp_mem_read(c->ts->live, regs->rsp, words, sizeof(words));
	if (got < 16)
		return;
	n = (size_t)got / 8;
	for (i = 0; i + 1 < n && tries < RBP_TRIES && c->rbp_tries < RBP_TRIES_TOTAL; i++) {
		uint64_t at = regs->rsp + 8 * i, next = words[i];
		if ((next != 0 && (next <= at || next >= stack->end)) ||
		    !(code = xp_maps_find(&c->ts->maps, words[i + 1])) || code->perms[2] != 'x')
			continue;
		tries++;
		c->rbp_tries++;
		regs->rbp = at;
		c->st.samples--; /* one sample, however many tries */
		unwind_into(c, regs, c->ts->live);
		if (c->stack->complete)
			return;
	}
	regs->rbp = 0;
	c->st.samples--;
	unwind_into(c, regs, c->ts->live);
}

/* A thread asleep in a system call (or stopped by SIGSTOP) has no
 * switch-out in the run: its
 * stack comes from /proc/PID/task/TID/syscall (number, arguments, user sp
 * and pc; readable with the same rights as perf, and without stopping it)
 * and the live stack, which does not move while it sleeps.  Unwinding
 * starts without the frame pointer, which that file does not give. */
static void note_sleeper(struct xp_offcpu *c, pid_t tid)
{
	char path[96], buf[256], stat[512], wchan[128];
	struct user_regs_struct regs;
	unsigned long long sp, pc;
	struct tstate *t;
	const char *reason;
	char *p, state;
	long nr;
	int i;

	snprintf(path, sizeof(path), "/proc/%d/task/%d/stat", (int)c->o.pid, (int)tid);
	read_small(path, stat, sizeof(stat));
	p = strrchr(stat, ')');
	state = p && p[1] == ' ' ? p[2] : 0;
	if (state != 'S' && state != 'D' && state != 'T')
		return;
	snprintf(path, sizeof(path), "/proc/%d/task/%d/syscall", (int)c->o.pid, (int)tid);
	read_small(path, buf, sizeof(buf));
	if (!buf[0] || strcmp(buf, "running") == 0)
		return;
	/* "NR ARG1..ARG6 SP PC", or "-1 SP PC" outside a system call */
	nr = strtol(buf, &p, 10);
	for (i = 0; i < (nr >= 0 ? 6 : 0); i++)
		strtoull(p, &p, 16);
	sp = strtoull(p, &p, 16);
	pc = strtoull(p, &p, 16);
	if (!(t = thread_get(c, tid)))
		return;
	memset(&regs, 0, sizeof(regs));
	regs.rsp = sp;
	regs.rip = pc;
	unwind_into(c, pc ? &regs : NULL, c->ts->live);
	if (pc && !c->stack->complete)
		unwind_guessing_rbp(c, &regs);
	reason = nr >= 0 ? xp_syscall_name(nr) : NULL;
	snprintf(path, sizeof(path), "/proc/%d/task/%d/wchan", (int)c->o.pid, (int)tid);
	read_small(path, wchan, sizeof(wchan));
	t->away = entry_get(c, tid, intern(c, reason), intern(c, wchan[0] && strcmp(wchan, "0") ? wchan : NULL),
			    c->stack);
	t->out_time = (uint64_t)c->st.start_ns;
	t->out_kind = state == 'T' ? K_STOPPED : K_BLOCKED;
}

static void note_sleepers(struct xp_offcpu *c)
{
	char path[64];
	DIR *d;
	struct dirent *e;

	snprintf(path, sizeof(path), "/proc/%d/task", (int)c->o.pid);
	if (!(d = opendir(path)))
		return;
	while ((e = readdir(d)) != NULL) {
		char *end;
		long tid = strtol(e->d_name, &end, 10);
		if (!*end && tid > 0)
			note_sleeper(c, (pid_t)tid);
	}
	closedir(d);
}

/* ---- the run ------------------------------------------------------------ */

void xp_offcpu_open_error(pid_t pid, int err, char *buf, size_t len)
{
	char why[256];

	if (err == -EACCES || err == -EPERM) {
		if (xp_explain_eperm(pid, why, sizeof(why)) == XP_EPERM_CREDENTIALS)
			snprintf(buf, len, "cannot sample the context switches of pid %d: operation not permitted (%s)",
				 (int)pid, why);
		else
			snprintf(buf, len, "cannot sample the context switches of pid %d: perf_event_open refused (run "
				 "as root, give xprof CAP_PERFMON, or set kernel.perf_event_paranoid to 1 or less)",
				 (int)pid);
	} else if (err == -ESRCH) {
		snprintf(buf, len, "cannot sample pid %d: the process exited", (int)pid);
	} else {
		snprintf(buf, len, "cannot sample the context switches of pid %d: %s", (int)pid, strerror(-err));
	}
}

int xp_offcpu_open(const struct xp_offcpu_opts *o, struct xp_offcpu **out)
{
	struct xp_offcpu *c = calloc(1, sizeof(*c));
	struct xp_perf_opts po = {
		.pid = o->pid,
		.stack_bytes = XP_PERF_STACK_SWITCH,
		.kernel = 1,
		.switches = 1,
	};
	int err;

	*out = NULL;
	if (!c)
		return -ENOMEM;
	c->o = *o;
	c->stack = malloc(sizeof(*c->stack));
	if (!c->stack) {
		err = -ENOMEM;
		goto fail;
	}
	/* the slow parts first (modules, kernel symbols), so that no record
	 * waits for them in a filling ring */
	if (o->space && o->space->pid == o->pid && o->space->space && o->space->unwinder) {
		c->ts = o->space;
	} else {
		if ((err = xp_target_space_open(o->pid, 0, &c->own)) < 0)
			goto fail;
		c->ts = &c->own;
	}
	c->have_space = 1;
	c->ksyms = xp_kallsyms_load(); /* names the syscall and wait channel of each switch */
	if ((err = xp_perf_open(&po, &c->sw)) < 0) {
		c->sw = NULL;
		goto fail;
	}
	c->st.kernel = xp_perf_kernel(c->sw) && c->ksyms;
	if (o->wall) {
		struct xp_perf_opts pc = { .pid = o->pid, .freq = o->freq, .stack_bytes = XP_PERF_STACK_DEFAULT };
		if ((err = xp_perf_open(&pc, &c->clock)) < 0) {
			c->clock = NULL;
			goto fail;
		}
	}
	*out = c;
	return 0;
fail:
	xp_offcpu_close(c);
	return err;
}

static int stopping(const struct xp_offcpu *c)
{
	return c->o.stop && *c->o.stop;
}

static int process_gone(const struct xp_offcpu *c)
{
	char path[64];

	snprintf(path, sizeof(path), "/proc/%d/task", (int)c->o.pid);
	return !xp_proc_alive(c->o.pid) || access(path, F_OK) != 0;
}

static int read_all(struct xp_offcpu *c, int timeout_ms)
{
	int n;

	if (c->clock && (n = xp_perf_read(c->clock, 0, &clock_handlers, c)) < 0)
		return n;
	n = xp_perf_read(c->sw, timeout_ms, &switch_handlers, c);
	return n < 0 ? n : 0;
}

/* The waits still going on at `until` count up to it; a thread that
 * exited has a last switch-out and no return, and is not waiting.  At the
 * end (ending) the waits are closed; at a take they go on into the next
 * window, which counts them from its start. */
static void count_waits(struct xp_offcpu *c, int64_t until, int ending)
{
	char path[96];
	size_t i;

	for (i = 0; i < c->nthr; i++) {
		struct tstate *t = &c->thr[i];
		if (!t->out_time)
			continue;
		snprintf(path, sizeof(path), "/proc/%d/task/%d", (int)c->o.pid, (int)t->tid);
		if (access(path, F_OK) == 0) {
			entry_add(c, t->away, t->out_kind, until - clamp_start(c, t->out_time));
		} else {
			c->st.exited++;
			ending = 1; /* gone: not waiting in the next window either */
		}
		if (ending)
			t->out_time = 0;
	}
}

/* --wall: each thread's time on a CPU up to `until`, from its switch
 * records, shared among its cpu-clock samples in proportion to their
 * counts.  A thread that never switched keeps one period per sample.  A
 * thread on a CPU at a take stays on it in the next window. */
static void weigh_running(struct xp_offcpu *c, int64_t until, int ending)
{
	size_t i;

	for (i = 0; i < c->nthr; i++) {
		struct tstate *t = &c->thr[i];
		if (t->in_time) /* on a CPU now */
			t->oncpu_ns += until - clamp_start(c, t->in_time);
		t->in_time = ending || !t->in_time ? 0 : (uint64_t)until;
	}
	for (i = 0; i < c->ntab; i++) {
		struct entry *e = c->tab[i];
		struct tstate *t;
		if (!e || !e->count[K_RUNNING] || !(t = thread_get(c, e->tid)) || !t->switched || !t->clock_samples)
			continue;
		c->st.ns[K_RUNNING] -= e->ns[K_RUNNING];
		e->ns[K_RUNNING] = (int64_t)((double)t->oncpu_ns * (double)e->count[K_RUNNING] / (double)t->clock_samples);
		c->st.ns[K_RUNNING] += e->ns[K_RUNNING];
	}
}

static uint64_t records_lost(const struct xp_offcpu *c)
{
	return xp_perf_lost(c->sw) + (c->clock ? xp_perf_lost(c->clock) : 0);
}

int xp_offcpu_run(struct xp_offcpu *c)
{
	struct timespec ts;
	int64_t deadline, now;
	int err = 0;

	c->st.start_ns = xp_monotonic_ns();
	clock_gettime(CLOCK_REALTIME, &ts);
	c->st.start_real_ns = (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
	c->win_start_ns = c->st.start_ns;
	c->win_start_real_ns = c->st.start_real_ns;
	deadline = c->st.start_ns + c->o.duration_ns;
	/* an exec between the modules' reading and the events' opening has
	 * no record: the maps say it */
	xp_target_space_refresh(c->ts);
	/* what came before the start is not the run's */
	if ((err = read_all(c, 0)) < 0)
		goto out;
	for (size_t i = 0; i < c->nthr; i++) {
		c->thr[i].out_time = 0;
		c->thr[i].oncpu_ns = 0;
		c->thr[i].clock_samples = 0;
	}
	note_sleepers(c);
	while (!stopping(c) && (now = xp_monotonic_ns()) < deadline) {
		int64_t left_ms = (deadline - now) / 1000000;
		if ((err = read_all(c, left_ms < 50 ? (int)left_ms + 1 : 50)) < 0)
			goto out;
		if (c->execd || process_gone(c))
			break;
		if (c->o.progress) {
			/* the live view's header: records lost so far */
			c->st.lost = records_lost(c);
			c->st.threads = c->nthr;
			c->o.progress(c->o.arg, xp_monotonic_ns());
		}
	}
	c->st.end_ns = xp_monotonic_ns();
	err = read_all(c, 0);
out:
	if (!c->st.end_ns)
		c->st.end_ns = xp_monotonic_ns();
	c->st.gone = process_gone(c);
	c->st.execd = c->execd;
	if (!c->st.gone && !c->execd)
		count_waits(c, c->st.end_ns, 1);
	if (c->o.wall)
		weigh_running(c, c->st.end_ns, 1);
	c->st.lost = records_lost(c);
	c->st.threads = c->nthr;
	return err;
}

const struct xp_offcpu_stats *xp_offcpu_stats(const struct xp_offcpu *c)
{
	return &c->st;
}

static const char *kind_state(int kind)
{
	return kind == K_RUNNING ? "running" : kind == K_PREEMPTED ? "runnable" : kind == K_STOPPED ? "stopped" : "sleeping";
}

/* The profile of what the entries hold, over [start_real, +duration). */
static int build_profile(struct xp_offcpu *c, int64_t start_real_ns, int64_t duration_ns, struct xp_profile **out)
{
	struct xp_profile *p = xp_profile_new();
	uint64_t ids[XP_MAX_FRAMES];
	unsigned char is_call[XP_MAX_FRAMES];
	int64_t period = c->o.wall ? 1000000000LL / c->o.freq : 1;
	size_t i, k;
	int err, kind;

	if (!p)
		return -ENOMEM;
	if (c->o.wall)
		err = xp_profile_add_sample_type(p, "samples", "count") < 0 ? -ENOMEM
		      : xp_profile_add_sample_type(p, "wall", "nanoseconds") < 0
			      ? -ENOMEM
			      : xp_profile_set_period(p, "wall", "nanoseconds", period);
	else
		err = xp_profile_add_sample_type(p, "contentions", "count") < 0 ? -ENOMEM
		      : xp_profile_add_sample_type(p, "delay", "nanoseconds") < 0
			      ? -ENOMEM
			      : xp_profile_set_period(p, "contentions", "count", 1);
	if (err < 0)
		goto out;
	xp_profile_set_time(p, start_real_ns, duration_ns);
	if (c->have_space && (err = xp_profile_main_mapping(p, c->ts->space, &c->ts->maps)) < 0)
		goto out;
	for (i = 0; i < c->ntab; i++) {
		struct entry *e = c->tab[i];
		if (!e)
			continue;
		for (k = 0; k < e->n; k++)
			is_call[k] = e->is_call[k];
		if (e->n && (err = xp_stack_locations(p, c->ts->space, e->pc, is_call, e->n, ids)) < 0)
			goto out;
		for (kind = 0; kind < K_KINDS; kind++) {
			struct xp_plabel labels[5];
			int64_t values[2] = { (int64_t)e->count[kind], e->ns[kind] };
			size_t nl = 2;
			if (!e->count[kind] || (!c->o.wall && kind == K_RUNNING) ||
			    (!c->o.wall && kind == K_PREEMPTED && !c->o.preempted))
				continue;
			labels[0] = (struct xp_plabel){ .key = "thread", .str = thread_name(c, e->tid) };
			labels[1] = (struct xp_plabel){ .key = "tid", .num = e->tid };
			if (c->o.wall)
				labels[nl++] = (struct xp_plabel){ .key = "state", .str = kind_state(kind) };
			if (kind == K_PREEMPTED || kind == K_STOPPED)
				labels[nl++] = (struct xp_plabel){ .key = "reason",
								   .str = kind == K_STOPPED ? "stopped" : "preempted" };
			else if (kind == K_BLOCKED)
				labels[nl++] = (struct xp_plabel){ .key = "reason",
								   .str = e->reason ? e->reason : "unknown" };
			if (kind == K_BLOCKED && e->wchan)
				labels[nl++] = (struct xp_plabel){ .key = "wchan", .str = e->wchan };
			if ((err = xp_profile_add_sample(p, ids, e->n, values, 2, labels, nl)) < 0)
				goto out;
		}
	}
	*out = p;
	return 0;
out:
	xp_profile_free(p);
	return err;
}

int xp_offcpu_profile(struct xp_offcpu *c, struct xp_profile **out)
{
	return build_profile(c, c->st.start_real_ns, c->st.end_ns - c->st.start_ns, out);
}

int xp_offcpu_take(struct xp_offcpu *c, struct xp_profile **out)
{
	struct timespec ts;
	int64_t now, now_real;
	size_t i;
	int err;

	if (!c->win_start_ns) /* not running yet: nothing to take */
		return build_profile(c, 0, 0, out);
	/* what the rings hold up to now belongs to this window */
	if ((err = read_all(c, 0)) < 0)
		return err;
	now = xp_monotonic_ns();
	clock_gettime(CLOCK_REALTIME, &ts);
	now_real = (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
	if (!c->execd)
		count_waits(c, now, 0);
	if (c->o.wall)
		weigh_running(c, now, 0);
	if ((err = build_profile(c, c->win_start_real_ns, now - c->win_start_ns, out)) < 0)
		return err;
	/* the entries stay (threads point at them), emptied */
	for (i = 0; i < c->ntab; i++)
		if (c->tab[i]) {
			memset(c->tab[i]->count, 0, sizeof(c->tab[i]->count));
			memset(c->tab[i]->ns, 0, sizeof(c->tab[i]->ns));
		}
	for (i = 0; i < c->nthr; i++) {
		c->thr[i].oncpu_ns = 0;
		c->thr[i].clock_samples = 0;
	}
	c->win_start_ns = now;
	c->win_start_real_ns = now_real;
	return 0;
}

void xp_offcpu_close(struct xp_offcpu *c)
{
	size_t i;

	if (!c)
		return;
	xp_perf_close(c->sw);
	xp_perf_close(c->clock);
	for (i = 0; i < c->ntab; i++)
		free(c->tab[i]);
	free(c->tab);
	free(c->thr);
	free(c->stack);
	for (i = 0; i < c->nstrings; i++)
		free(c->strings[i]);
	free(c->strings);
	xp_kallsyms_free(c->ksyms);
	if (c->have_space && c->ts == &c->own)
		xp_target_space_close(&c->own);
	free(c);
}

/* Frame names of one stack, root first, inline frames expanded. */
static size_t frame_names(struct xp_space *space, const struct entry *e, char **names, size_t max)
{
	size_t n = 0, k, j;

	for (k = e->n; k-- > 0 && n < max;) {
		const struct xp_sym *s = xp_symbolize(space, e->pc[k], e->is_call[k]);
		if (s && s->nframes) {
			for (j = s->nframes; j-- > 0 && n < max;) /* the inline chain is innermost first */
				if ((names[n] = strdup(s->frames[j].function)) != NULL)
					n++;
		} else if (asprintf(&names[n], "[0x%" PRIx64 "]", e->pc[k]) >= 0) {
			n++;
		}
	}
	return n;
}

int xp_offcpu_stacks(struct xp_offcpu *c, struct xp_cpu_stack **out, size_t *nout)
{
	int64_t period = c->o.wall ? 1000000000LL / c->o.freq : 1;
	struct xp_cpu_stack *v = calloc(c->nent ? c->nent : 1, sizeof(*v));
	size_t i, n = 0;
	int kind;

	if (!v)
		return -ENOMEM;
	for (i = 0; i < c->ntab; i++) {
		struct entry *e = c->tab[i];
		int64_t ns = 0;
		size_t max;
		if (!e)
			continue;
		for (kind = 0; kind < K_KINDS; kind++)
			if (c->o.wall || kind == K_BLOCKED || kind == K_STOPPED || (kind == K_PREEMPTED && c->o.preempted))
				ns += e->ns[kind];
		if (ns / period == 0)
			continue;
		max = (size_t)e->n * 8 + 1;
		if (!(v[n].frames = calloc(max, sizeof(*v[n].frames)))) {
			xp_cpu_stacks_free(v, n);
			return -ENOMEM;
		}
		v[n].nframes = c->have_space ? frame_names(c->ts->space, e, v[n].frames, max) : 0;
		v[n].count = (uint64_t)(ns / period);
		n++;
	}
	*out = v;
	*nout = n;
	return 0;
}
