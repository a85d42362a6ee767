/* collect/mutex.c: lock contention of a native process, from uprobes on
 * glibc's lock slow paths.  A thread that finds a mutex taken calls
 * __lll_lock_wait (rwlocks and timed or robust mutexes wait in
 * __futex_abstimed_wait64); the entry probe copies its stack, the return
 * probe ends the wait.  glibc's internal locks (malloc's arenas, stdio)
 * are left out: each probe is one event per thread, and the kernel takes
 * 30-45 ms to destroy each at the end.  An uncontended lock never leaves the fast path and
 * costs nothing.
 *
 * The holder: a thread that unlocks a mutex with waiters calls
 * __lll_lock_wake on the lock word.  The first such wake on a waiter's
 * lock word after its wait began comes from the thread that held the
 * mutex then (it holds the mutex until that unlock, and the waiter has
 * marked the word contended, so the unlock wakes).  Events from all
 * threads are put in time order before they are matched.
 */
#define _GNU_SOURCE
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

#define STACK_BYTES XP_PERF_STACK_DEFAULT
#define OPEN_WAITS_MAX 65536      /* waits in progress kept at once */
#define ORDER_SLACK_NS 1000000    /* a hit is in its ring within 1 ms of its time */
#define PENDING_MAX (1u << 22)    /* hits held for ordering; past it, processed as they are */

enum hit_kind { WAIT_ENTRY, WAIT_RETURN, WAKE };

/* The glibc functions probed, and what each hit means. */
static const struct {
	const char *symbol;
	enum xp_lock_class cls;       /* of a wait in it (rwlock: decided by the stack) */
	int wake;
} probed[] = {
	{ "__lll_lock_wait", XP_LOCK_MUTEX, 0 },
	{ "__futex_abstimed_wait64", XP_LOCK_MUTEX, 0 },
	{ "__lll_lock_wake", 0, 1 },
};
#define NPROBED (sizeof(probed) / sizeof(probed[0]))

/* What each uprobe spec is. */
struct spec_meta {
	enum hit_kind kind;
	size_t fn;                    /* index into probed[] */
	uint64_t addr;                /* the function's run-time address */
};

/* A hit kept until every earlier hit of every thread is known. */
struct event {
	uint64_t time;
	uint64_t lockword;            /* rdi at the entry of a wait or wake */
	pid_t tid;
	uint32_t stack;               /* interned stack id of a wait entry, 0 none */
	uint8_t kind, cls;
	uint8_t lost_before;          /* the thread lost hits just before this one */
	uint16_t spec;
};

struct open_wait {
	pid_t tid, holder;
	uint64_t lockword, start;
	uint32_t stack;
	uint8_t cls;
	uint16_t spec;
};

struct istack {
	uint64_t hash;
	uint32_t n;
	uint64_t *pc;
	unsigned char *is_call;
};

struct agg {
	uint32_t stack;
	pid_t tid, holder;
	uint8_t cls;
	uint64_t count, delay;
	struct agg *next;
};

struct xp_mutex {
	struct xp_mutex_opts o;
	struct xp_mutex_stats st;
	struct xp_target_space own;   /* when the caller keeps none */
	struct xp_target_space *ts;
	struct xp_uprobes *up;
	struct xp_uprobe_spec specs[2 * NPROBED];
	struct spec_meta meta[2 * NPROBED];
	size_t nspecs;
	char libc_path[4096];
	struct xp_stack *unw;
	struct event *pend;
	size_t npend, pend_alloc;
	struct open_wait *open;
	size_t nopen, open_alloc;
	struct istack *stacks;        /* id i+1 at index i */
	size_t nstacks, stacks_alloc;
	uint32_t *stab;               /* hash → stack id */
	size_t stab_size;
	struct agg **atab;
	size_t atab_size, nagg;
	struct xp_tnames names;
};

static int stopping(const struct xp_mutex *m)
{
	return m->o.stop && *m->o.stop;
}

/* ---- names of threads ------------------------------------------------------ */

static const char *thread_name(struct xp_mutex *m, pid_t tid)
{
	return xp_tnames_get(&m->names, m->o.pid, tid);
}

/* ---- stacks ------------------------------------------------------------------ */

static uint64_t hash_pcs(const uint64_t *pc, const unsigned char *is_call, size_t n)
{
	uint64_t h = 1469598103934665603ULL;
	size_t i;

	for (i = 0; i < n; i++) {
		h = (h ^ pc[i] ^ ((uint64_t)is_call[i] << 63)) * 1099511628211ULL;
		h ^= h >> 29;
	}
	return h;
}

static int stab_grow(struct xp_mutex *m)
{
	size_t n = m->stab_size ? m->stab_size * 2 : 1024, i, h;
	uint32_t *t = calloc(n, sizeof(*t));

	if (!t)
		return -ENOMEM;
	for (i = 0; i < m->nstacks; i++) {
		for (h = m->stacks[i].hash & (n - 1); t[h]; h = (h + 1) & (n - 1))
			;
		t[h] = (uint32_t)(i + 1);
	}
	free(m->stab);
	m->stab = t;
	m->stab_size = n;
	return 0;
}

/* The id of a stack, interned: 0 on allocation failure. */
static uint32_t intern_stack(struct xp_mutex *m, const uint64_t *pc, const unsigned char *is_call, size_t n)
{
	uint64_t hash = hash_pcs(pc, is_call, n);
	struct istack *s;
	size_t h;
	uint32_t id;

	if ((m->nstacks + 1) * 2 > m->stab_size && stab_grow(m) < 0)
		return 0;
	for (h = hash & (m->stab_size - 1); (id = m->stab[h]) != 0; h = (h + 1) & (m->stab_size - 1)) {
		s = &m->stacks[id - 1];
		if (s->hash == hash && s->n == n && memcmp(s->pc, pc, n * sizeof(*pc)) == 0 &&
		    memcmp(s->is_call, is_call, n) == 0)
			return id;
	}
	if (m->nstacks == m->stacks_alloc) {
		size_t na = m->stacks_alloc ? m->stacks_alloc * 2 : 256;
		struct istack *v = realloc(m->stacks, na * sizeof(*v));
		if (!v)
			return 0;
		m->stacks = v;
		m->stacks_alloc = na;
	}
	s = &m->stacks[m->nstacks];
	s->hash = hash;
	s->n = (uint32_t)n;
	s->pc = malloc(n * (sizeof(*pc) + 1) + 1);
	if (!s->pc)
		return 0;
	s->is_call = (unsigned char *)(s->pc + n);
	memcpy(s->pc, pc, n * sizeof(*pc));
	memcpy(s->is_call, is_call, n);
	m->stab[h] = (uint32_t)++m->nstacks;
	return (uint32_t)m->nstacks;
}

/* A wait in __futex_abstimed_wait64 is an rwlock's when its caller is. */
static enum xp_lock_class stack_class(struct xp_mutex *m, uint32_t id, enum xp_lock_class cls)
{
	const struct istack *s;
	size_t i, k;

	if (id == 0 || cls != XP_LOCK_MUTEX)
		return cls;
	s = &m->stacks[id - 1];
	for (i = 0; i < s->n && i < 4; i++) {
		const struct xp_sym *y = xp_symbolize(m->ts->space, s->pc[i], s->is_call[i]);
		for (k = 0; y && k < y->nframes; k++)
			if (strstr(y->frames[k].function, "rwlock"))
				return XP_LOCK_RWLOCK;
	}
	return cls;
}

/* ---- aggregation ------------------------------------------------------------- */

static int agg_add(struct xp_mutex *m, uint32_t stack, pid_t tid, pid_t holder, uint8_t cls, uint64_t delay)
{
	uint64_t h = ((uint64_t)stack * 0x9e3779b97f4a7c15ULL) ^ ((uint64_t)tid << 20) ^ (uint64_t)holder ^
		     ((uint64_t)cls << 50);
	struct agg *a;
	size_t i;

	if (m->nagg * 2 >= m->atab_size) {
		size_t n = m->atab_size ? m->atab_size * 2 : 1024;
		struct agg **t = calloc(n, sizeof(*t));
		if (!t)
			return -ENOMEM;
		for (i = 0; i < m->atab_size; i++) {
			while ((a = m->atab[i]) != NULL) {
				uint64_t ah = ((uint64_t)a->stack * 0x9e3779b97f4a7c15ULL) ^ ((uint64_t)a->tid << 20) ^
					      (uint64_t)a->holder ^ ((uint64_t)a->cls << 50);
				m->atab[i] = a->next;
				a->next = t[ah & (n - 1)];
				t[ah & (n - 1)] = a;
			}
		}
		free(m->atab);
		m->atab = t;
		m->atab_size = n;
	}
	for (a = m->atab[h & (m->atab_size - 1)]; a; a = a->next)
		if (a->stack == stack && a->tid == tid && a->holder == holder && a->cls == cls)
			break;
	if (!a) {
		if (!(a = calloc(1, sizeof(*a))))
			return -ENOMEM;
		a->stack = stack;
		a->tid = tid;
		a->holder = holder;
		a->cls = cls;
		a->next = m->atab[h & (m->atab_size - 1)];
		m->atab[h & (m->atab_size - 1)] = a;
		m->nagg++;
	}
	a->count++;
	a->delay += delay;
	return 0;
}

/* ---- matching, in time order ---------------------------------------------------- */

/* Forgets the waits in progress of one thread (their start or end is
 * lost), or of one thread in one function; counted as dropped. */
static void forget_waits(struct xp_mutex *m, pid_t tid, int spec)
{
	size_t i;

	for (i = m->nopen; i-- > 0;) {
		if (m->open[i].tid != tid || (spec >= 0 && m->open[i].spec != spec))
			continue;
		m->open[i] = m->open[--m->nopen];
		m->st.unmatched++;
	}
}

static void on_event(struct xp_mutex *m, const struct event *e)
{
	size_t i;

	/* hits of this thread were lost just before: a return matched to an
	 * entry from before the gap would span the gap */
	if (e->lost_before)
		forget_waits(m, e->tid, -1);
	switch (e->kind) {
	case WAIT_ENTRY:
		/* a thread is in one wait of a function at a time: an older one
		 * still open lost its return */
		forget_waits(m, e->tid, e->spec);
		if (m->nopen == OPEN_WAITS_MAX) {
			m->st.dropped++;
			return;
		}
		if (m->nopen == m->open_alloc) {
			size_t na = m->open_alloc ? m->open_alloc * 2 : 64;
			struct open_wait *v = realloc(m->open, na * sizeof(*v));
			if (!v) {
				m->st.dropped++;
				return;
			}
			m->open = v;
			m->open_alloc = na;
		}
		m->open[m->nopen++] = (struct open_wait){
			.tid = e->tid, .lockword = e->lockword, .start = e->time,
			.stack = e->stack, .cls = e->cls, .spec = e->spec,
		};
		return;
	case WAIT_RETURN:
		/* the thread's innermost wait in the same function */
		for (i = m->nopen; i-- > 0;)
			if (m->open[i].tid == e->tid && m->open[i].spec + 1 == e->spec)
				break;
		if (i == (size_t)-1) {
			m->st.unmatched++; /* it began before the probes were in */
			return;
		}
		if (e->time > (uint64_t)m->st.end_ns && m->st.end_ns)
			return; /* it ended after the window: still going at the end */
		{
			struct open_wait w = m->open[i];
			uint64_t delay = e->time > w.start ? e->time - w.start : 0;
			m->open[i] = m->open[--m->nopen];
			m->st.waits++;
			m->st.delay_ns += delay;
			m->st.with_holder += w.holder != 0;
			if (w.stack == 0 || agg_add(m, w.stack, w.tid, w.holder, w.cls, delay) < 0)
				m->st.dropped++;
		}
		return;
	case WAKE:
		for (i = 0; i < m->nopen; i++)
			if (m->open[i].lockword == e->lockword && m->open[i].holder == 0 && m->open[i].start <= e->time &&
			    m->open[i].tid != e->tid)
				m->open[i].holder = e->tid;
		return;
	}
}

static int event_cmp(const void *a, const void *b)
{
	const struct event *x = a, *y = b;

	return x->time < y->time ? -1 : x->time > y->time;
}

/* Matches the held hits older than cutoff (all of them: UINT64_MAX). */
static void process_pending(struct xp_mutex *m, uint64_t cutoff)
{
	size_t i, k;

	if (m->npend == 0)
		return;
	qsort(m->pend, m->npend, sizeof(*m->pend), event_cmp);
	for (i = 0; i < m->npend && m->pend[i].time < cutoff; i++)
		on_event(m, &m->pend[i]);
	for (k = 0; i < m->npend; i++, k++)
		m->pend[k] = m->pend[i];
	m->npend = k;
}

static void on_hit(const struct xp_uprobe_hit *h, void *arg)
{
	struct xp_mutex *m = arg;
	const struct spec_meta *sm = &m->meta[h->probe];
	struct event e = {
		.time = h->time,
		.tid = h->tid,
		.kind = (uint8_t)sm->kind,
		.spec = (uint16_t)h->probe,
		.cls = (uint8_t)probed[sm->fn].cls,
		.lockword = h->have_regs ? h->regs.rdi : 0,
		.lost_before = (uint8_t)(h->lost_before != 0),
	};

	m->st.hits++;
	thread_name(m, h->tid);
	if (sm->kind == WAIT_ENTRY && h->have_regs && m->ts->unwinder) {
		struct xp_region stack = { h->stack_addr, h->stack_len, h->stack };
		struct xp_mem *mem = xp_mem_snapshot(&stack, h->stack_len ? 1 : 0, NULL);
		if (mem) {
			xp_unwind(m->ts->unwinder, &h->regs, mem, m->unw);
			xp_mem_close(mem);
			m->st.complete += m->unw->complete;
			e.stack = intern_stack(m, m->unw->pc, m->unw->is_call, m->unw->n);
			e.cls = (uint8_t)stack_class(m, e.stack, probed[sm->fn].cls);
		}
	}
	if (m->npend == PENDING_MAX) {
		process_pending(m, UINT64_MAX); /* a flood: match what is held now */
		m->st.dropped++;
	}
	if (m->npend == m->pend_alloc) {
		size_t na = m->pend_alloc ? m->pend_alloc * 2 : 4096;
		struct event *v = realloc(m->pend, na * sizeof(*v));
		if (!v) {
			m->st.dropped++;
			return;
		}
		m->pend = v;
		m->pend_alloc = na;
	}
	m->pend[m->npend++] = e;
}

/* ---- opening -------------------------------------------------------------------- */

/* Where the kernel finds the file of the mapping that holds addr: the
 * mapping itself through /proc/PID/map_files (a container's file, a
 * deleted one), else the path under /proc/PID/root. */
static int probe_file(struct xp_mutex *m, uint64_t addr, uint64_t *file_off)
{
	const struct xp_map *map = xp_maps_find(&m->ts->maps, addr);
	char path[4096];

	if (!map || map->perms[2] != 'x' || map->path[0] != '/')
		return -ENOENT;
	*file_off = addr - map->start + map->offset;
	snprintf(path, sizeof(path), "/proc/%d/map_files/%" PRIx64 "-%" PRIx64, (int)m->o.pid, map->start, map->end);
	if (access(path, R_OK) != 0)
		snprintf(path, sizeof(path), "/proc/%d/root%s", (int)m->o.pid, map->path);
	if (m->libc_path[0] && strcmp(m->libc_path, path) != 0)
		return -EXDEV; /* the functions are in one file */
	snprintf(m->libc_path, sizeof(m->libc_path), "%s", path);
	return 0;
}

int xp_mutex_open_error(pid_t pid, const char *comm, int err, const char *why, char *buf, size_t len)
{
	if (err == -ENOENT && why[0])
		snprintf(buf, len, "cannot measure lock contention of pid %d (%s): %s", (int)pid, comm, why);
	else if (err == -EACCES || err == -EPERM)
		snprintf(buf, len, "cannot put uprobes into pid %d (%s): %s (the uprobe PMU needs root or CAP_PERFMON: "
			 "run xprof as root, or setcap cap_perfmon,cap_sys_ptrace+ep on it)",
			 (int)pid, comm, strerror(-err));
	else if (err == -EOPNOTSUPP)
		snprintf(buf, len, "cannot put uprobes into pid %d (%s): this kernel has no uprobe PMU "
			 "(/sys/bus/event_source/devices/uprobe; CONFIG_UPROBE_EVENTS)",
			 (int)pid, comm);
	else if (err == -EMFILE || err == -ENFILE)
		snprintf(buf, len, "cannot put uprobes into pid %d (%s): out of file descriptors (one per thread and "
			 "probe; raise ulimit -n)",
			 (int)pid, comm);
	else
		return -1;
	return 0;
}

int xp_mutex_open(const struct xp_mutex_opts *o, struct xp_mutex **out, char *why, size_t whylen)
{
	struct xp_mutex *m = calloc(1, sizeof(*m));
	struct timespec now;
	size_t i;
	int err, have_wait = 0, have_wake = 0;

	*out = NULL;
	snprintf(why, whylen, "%s", "");
	if (!m)
		return -ENOMEM;
	m->o = *o;
	if (!(m->unw = malloc(sizeof(*m->unw)))) {
		free(m);
		return -ENOMEM;
	}
	if (o->space && o->space->pid == o->pid && o->space->space && o->space->unwinder) {
		m->ts = o->space;
	} else {
		if ((err = xp_target_space_open(o->pid, 0, &m->own)) < 0) {
			xp_mutex_close(m);
			return err;
		}
		m->ts = &m->own;
	}
	for (i = 0; i < NPROBED; i++) {
		uint64_t addr, base, off;
		int is_tls;
		if (xp_space_lookup(m->ts->space, "libc.so.", probed[i].symbol, &addr, &is_tls, &base) < 0 || is_tls)
			continue;
		if ((err = probe_file(m, addr, &off)) < 0)
			continue;
		m->specs[m->nspecs] = (struct xp_uprobe_spec){ .offset = off, .stack_bytes = probed[i].wake ? 0 : STACK_BYTES };
		m->meta[m->nspecs] = (struct spec_meta){ .kind = probed[i].wake ? WAKE : WAIT_ENTRY, .fn = i, .addr = addr };
		m->nspecs++;
		if (!probed[i].wake) {
			/* its return, right after: entry spec + 1 (on_event relies on it) */
			m->specs[m->nspecs] = (struct xp_uprobe_spec){ .offset = off, .retprobe = 1 };
			m->meta[m->nspecs] = (struct spec_meta){ .kind = WAIT_RETURN, .fn = i, .addr = addr };
			m->nspecs++;
			have_wait += strcmp(probed[i].symbol, "__lll_lock_wait") == 0;
		} else {
			have_wake += strcmp(probed[i].symbol, "__lll_lock_wake") == 0;
		}
	}
	if (!have_wait || !have_wake) {
		uint64_t addr, base;
		int is_tls;
		/* __lll_lock_wait_private is exported; the others are only in
		 * the debug file's symbol table */
		if (xp_space_lookup(m->ts->space, "libc.so.", "__lll_lock_wait_private", &addr, &is_tls, &base) < 0)
			snprintf(why, whylen, "it has no glibc mapped (a static binary, or another C library)");
		else
			snprintf(why, whylen, "glibc's lock functions (__lll_lock_wait, __lll_lock_wake) are not in "
				 "its symbols: install libc's debug info (Debian: apt install libc6-dbg)");
		xp_mutex_close(m);
		return -ENOENT;
	}
	for (i = 0; i < m->nspecs; i++)
		m->specs[i].path = m->libc_path;
	err = xp_uprobes_open(o->pid, m->specs, m->nspecs, &m->up);
	if (err < 0) {
		m->up = NULL;
		xp_mutex_close(m);
		return err;
	}
	/* the run starts once every thread is probed (opening the events can
	 * take long: each waits for the kernel's event mutex); waits begun
	 * before are counted when their return is seen after */
	m->st.start_ns = xp_monotonic_ns();
	clock_gettime(CLOCK_REALTIME, &now);
	m->st.start_real_ns = (int64_t)now.tv_sec * 1000000000 + now.tv_nsec;
	*out = m;
	return 0;
}

/* ---- the run -------------------------------------------------------------------- */

static int gone(const struct xp_mutex *m)
{
	char path[64];

	snprintf(path, sizeof(path), "/proc/%d/task", (int)m->o.pid);
	return !xp_proc_alive(m->o.pid) || access(path, F_OK) != 0;
}

int xp_mutex_run(struct xp_mutex *m)
{
	int64_t deadline, now;
	int n, err = 0;

	deadline = m->st.start_ns + m->o.duration_ns;
	while (!stopping(m) && (now = xp_monotonic_ns()) < deadline) {
		int64_t left_ms = (deadline - now) / 1000000;
		n = xp_uprobes_read(m->up, left_ms < 100 ? (int)left_ms + 1 : 100, on_hit, m);
		if (n < 0) {
			err = n;
			break;
		}
		process_pending(m, (uint64_t)(now - ORDER_SLACK_NS));
		m->st.threads = xp_uprobes_nthreads(m->up);
		if (m->o.progress)
			m->o.progress(m->o.arg, &m->st, xp_monotonic_ns());
		if (gone(m)) {
			m->st.gone = 1;
			break;
		}
	}
	m->st.end_ns = xp_monotonic_ns();
	/* the last hits; waits still open at the end are not counted (their
	 * delay is not known) */
	if (err == 0 && (n = xp_uprobes_read(m->up, 0, on_hit, m)) < 0)
		err = n;
	process_pending(m, UINT64_MAX);
	m->st.open_at_end = m->nopen;
	m->st.lost = xp_uprobes_lost(m->up);
	/* nothing more is recorded; the breakpoints go at xp_mutex_close
	 * (slowly: see xp_uprobes_close) */
	xp_uprobes_disable(m->up);
	return err;
}

const struct xp_mutex_stats *xp_mutex_stats(const struct xp_mutex *m)
{
	return &m->st;
}

static const char *const class_names[] = { "mutex", "rwlock" };

int xp_mutex_profile(struct xp_mutex *m, struct xp_profile **out)
{
	struct xp_profile *p = xp_profile_new();
	uint64_t ids[XP_MAX_FRAMES];
	size_t i;
	int err;

	if (!p)
		return -ENOMEM;
	if ((err = xp_profile_add_sample_type(p, "contentions", "count")) < 0 ||
	    (err = xp_profile_add_sample_type(p, "delay", "nanoseconds")) < 0 ||
	    (err = xp_profile_set_period(p, "contentions", "count", 1)) < 0 ||
	    (err = xp_profile_main_mapping(p, m->ts->space, &m->ts->maps)) < 0)
		goto out;
	xp_profile_set_time(p, m->st.start_real_ns, m->st.end_ns - m->st.start_ns);
	for (i = 0; i < m->atab_size; i++) {
		struct agg *a;
		for (a = m->atab[i]; a; a = a->next) {
			const struct istack *s = &m->stacks[a->stack - 1];
			struct xp_plabel labels[5];
			int64_t values[2] = { (int64_t)a->count, (int64_t)a->delay };
			size_t nl = 0;

			if ((err = xp_stack_locations(p, m->ts->space, s->pc, s->is_call, s->n, ids)) < 0)
				goto out;
			labels[nl++] = (struct xp_plabel){ .key = "thread", .str = thread_name(m, a->tid) };
			labels[nl++] = (struct xp_plabel){ .key = "tid", .num = a->tid };
			labels[nl++] = (struct xp_plabel){ .key = "lock", .str = class_names[a->cls] };
			if (a->holder) {
				labels[nl++] = (struct xp_plabel){ .key = "holder", .str = thread_name(m, a->holder) };
				labels[nl++] = (struct xp_plabel){ .key = "holder_tid", .num = a->holder };
			}
			if ((err = xp_profile_add_sample(p, ids, s->n, values, 2, labels, nl)) < 0)
				goto out;
		}
	}
	*out = p;
	return 0;
out:
	xp_profile_free(p);
	return err;
}

void xp_mutex_close(struct xp_mutex *m)
{
	size_t i;

	if (!m)
		return;
	xp_uprobes_close(m->up);
	for (i = 0; i < m->atab_size; i++) {
		struct agg *a, *next;
		for (a = m->atab[i]; a; a = next) {
			next = a->next;
			free(a);
		}
	}
	free(m->atab);
	for (i = 0; i < m->nstacks; i++)
		free(m->stacks[i].pc);
	free(m->stacks);
	free(m->stab);
	free(m->pend);
	free(m->open);
	xp_tnames_free(&m->names);
	free(m->unw);
	if (m->ts == &m->own)
		xp_target_space_close(&m->own);
	free(m);
}
