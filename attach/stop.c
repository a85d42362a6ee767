/* Stopping a whole thread group for one consistent instant: seize every
 * thread, interrupt them all, wait for every stop, copy registers and the
 * live part of each stack, and let them go.  The pause is what the target
 * feels, so everything that can happen before or after it does.
 *
 * The signals that end or suspend xprof are blocked while any thread is
 * held, so no exit path can leave a thread stopped; SIGKILL makes the
 * kernel detach.  That makes every wait of the stop a promise: each is
 * bounded (SIGALRM), so the held signals are acted on soon after.
 *
 * An exec during the stop is the hard case: the exec'ing thread kills the
 * others and waits, holding the target's cred_guard_mutex, until their
 * tracer (we) reaps them, while PTRACE_SEIZE of any thread of the group
 * waits for that mutex.  A seize that does not return within a few ticks is
 * abandoned, the seized threads are reaped and let go, and the stop is
 * tried again on the new program.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/time.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "attach/attach.h"
#include "attach/proc_internal.h"
#include "attach/regs_x86_64.h"

#define TASK_ROUNDS_MAX 100 /* re-reads of the task list before giving up on stability */
/* A seize takes microseconds; one still waiting after SEIZE_TICKS_MAX ticks
 * of SEIZE_TICK_MS waits for an exec (or another tracer's attach) that
 * waits for us. */
#define SEIZE_TICK_MS 10
#define SEIZE_TICKS_MAX 3
/* Stops tried again when the target exec'd during one (a program that
 * re-execs every 20 ms gets a stop in nearly every second try). */
#define EXEC_RETRIES 4
/* a thread killed while stopped is a zombie within microseconds */
#define REAP_TIMEOUT_MS 50
/* The stack copies are carved from a pool written once before the stop:
 * the first write to a page of ours is a page fault, 25-90 us each on a
 * kernel that shadows the page tables (6.18-fc), and the pause should not
 * pay for it.  A parked glibc thread's copy below its TCB takes 2.4 KB;
 * deeper ones that do not fit take calloc's pages, as before. */
#define STACK_POOL_PER_THREAD 3072
#define STACK_POOL_MAX (64 << 20)

static int64_t now_ns(clockid_t clk)
{
	struct timespec ts;

	clock_gettime(clk, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* ---- the thread table ------------------------------------------------- */

struct table {
	struct xp_thread *t;
	size_t n, alloc;
	/* open-addressed tid -> index+1, for waitpid results and task re-reads */
	uint32_t *slot;
	size_t nslot;
};

static size_t tid_hash(pid_t tid, size_t nslot)
{
	return ((uint32_t)tid * 2654435761u) & (nslot - 1);
}

static struct xp_thread *table_find(struct table *tb, pid_t tid)
{
	size_t h;

	if (!tb->nslot)
		return NULL;
	for (h = tid_hash(tid, tb->nslot); tb->slot[h]; h = (h + 1) & (tb->nslot - 1))
		if (tb->t[tb->slot[h] - 1].tid == tid)
			return &tb->t[tb->slot[h] - 1];
	return NULL;
}

static int table_rehash(struct table *tb, size_t nslot)
{
	uint32_t *slot = calloc(nslot, sizeof(*slot));
	size_t i, h;

	if (!slot)
		return -ENOMEM;
	for (i = 0; i < tb->n; i++) {
		for (h = tid_hash(tb->t[i].tid, nslot); slot[h]; h = (h + 1) & (nslot - 1))
			;
		slot[h] = (uint32_t)(i + 1);
	}
	free(tb->slot);
	tb->slot = slot;
	tb->nslot = nslot;
	return 0;
}

static struct xp_thread *table_add(struct table *tb, pid_t tid)
{
	struct xp_thread *t;
	size_t h;

	if (tb->n >= XP_MAX_THREADS)
		return NULL;
	if (tb->n == tb->alloc) {
		size_t alloc = tb->alloc ? tb->alloc * 2 : 64;
		struct xp_thread *v = realloc(tb->t, alloc * sizeof(*v));
		if (!v)
			return NULL;
		tb->t = v;
		tb->alloc = alloc;
	}
	if ((tb->n + 1) * 2 > tb->nslot && table_rehash(tb, tb->nslot ? tb->nslot * 2 : 256) < 0)
		return NULL;
	t = &tb->t[tb->n];
	memset(t, 0, sizeof(*t));
	t->tid = tid;
	for (h = tid_hash(tid, tb->nslot); tb->slot[h]; h = (h + 1) & (tb->nslot - 1))
		;
	tb->slot[h] = (uint32_t)(++tb->n);
	return t;
}

/* ---- /proc/PID/task ------------------------------------------------- */

/* Reads name, state and wchan of one thread; before the stop, so that the
 * state is the thread's own and not our tracing stop. */
static void read_thread_info(pid_t pid, struct xp_thread *t)
{
	char path[96], buf[1024];
	int n;
	size_t k;

	snprintf(path, sizeof(path), "/proc/%d/task/%d/stat", (int)pid, (int)t->tid);
	if (xp_read_small_file(path, buf, sizeof(buf)) < 0 ||
	    xp_parse_stat(buf, t->name, sizeof(t->name), &t->state, NULL) < 0) {
		t->state = '?';
		return;
	}
	if (t->state != 'S' && t->state != 'D')
		return;
	snprintf(path, sizeof(path), "/proc/%d/task/%d/wchan", (int)pid, (int)t->tid);
	n = xp_read_small_file(path, buf, sizeof(buf));
	if (n > 0 && strcmp(buf, "0") != 0) {
		for (k = 0; k + 1 < sizeof(t->wchan) && buf[k] && buf[k] != '\n'; k++)
			t->wchan[k] = buf[k];
		t->wchan[k] = '\0';
	}
}

/* Adds the tids of /proc/PID/task not yet in the table; returns how many
 * were new, or -errno. */
static int scan_tasks(pid_t pid, struct table *tb, int read_info)
{
	char path[64];
	DIR *d;
	struct dirent *e;
	int added = 0;

	snprintf(path, sizeof(path), "/proc/%d/task", (int)pid);
	d = opendir(path);
	if (!d)
		return -errno;
	while ((e = readdir(d)) != NULL) {
		char *end;
		long tid = strtol(e->d_name, &end, 10);
		struct xp_thread *t;

		if (*end || tid <= 0 || table_find(tb, (pid_t)tid))
			continue;
		t = table_add(tb, (pid_t)tid);
		if (!t) {
			closedir(d);
			return tb->n >= XP_MAX_THREADS ? -E2BIG : -ENOMEM;
		}
		if (read_info)
			read_thread_info(pid, t);
		added++;
	}
	closedir(d);
	return added;
}

/* ---- ptrace ------------------------------------------------------------- */

struct held {
	size_t seized;  /* threads seized, interrupt sent */
	size_t waiting; /* seized and not yet reported stopped or exited */
	int execd;      /* the target exec'd during the stop (or a seize hung) */
};

/* SIGALRM serves two waits: the deadline of the stop (deadline_hit makes
 * waitpid return EINTR) and the watchdog of a seize, which cannot be
 * interrupted (the kernel restarts it after any handler): a seize still
 * going after SEIZE_TICKS_MAX ticks is left by jumping out of it. */
static volatile sig_atomic_t deadline_hit, in_seize, seize_ticks;
static sigjmp_buf seize_escape;

static void on_alarm(int sig)
{
	(void)sig;
	if (in_seize && ++seize_ticks >= SEIZE_TICKS_MAX) {
		in_seize = 0;
		siglongjmp(seize_escape, 1);
	}
	deadline_hit = 1;
}

static void set_alarm(int first_ms, int every_ms)
{
	struct itimerval it = { { every_ms / 1000, (every_ms % 1000) * 1000 },
				{ first_ms / 1000, (first_ms % 1000) * 1000 } };
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_alarm; /* no SA_RESTART: waitpid returns EINTR */
	sigaction(SIGALRM, &sa, NULL);
	deadline_hit = 0;
	setitimer(ITIMER_REAL, &it, NULL);
}

static void arm_deadline(int ms)
{
	set_alarm(ms, 0);
}

static void disarm_deadline(void)
{
	struct itimerval it = { { 0, 0 }, { 0, 0 } };

	setitimer(ITIMER_REAL, &it, NULL);
}

/* Why PTRACE_SEIZE said EPERM: the thread was exiting (the kernel refuses
 * a thread whose exit has begun: state Z or X, or already gone), another
 * tracer holds it (-EBUSY), or a real refusal (-EPERM). */
static int seize_refusal(pid_t pid, pid_t tid)
{
	char path[96], buf[2048], *p;
	long tracer = 0;
	char state = 0;

	snprintf(path, sizeof(path), "/proc/%d/task/%d/status", (int)pid, (int)tid);
	if (xp_read_small_file(path, buf, sizeof(buf)) < 0)
		return 0; /* gone */
	if ((p = strstr(buf, "\nState:\t")) != NULL)
		state = p[8];
	if ((p = strstr(buf, "\nTracerPid:\t")) != NULL)
		tracer = strtol(p + 12, NULL, 10);
	if (state == 'Z' || state == 'X')
		return 0;
	return tracer != 0 && tracer != (long)getpid() ? -EBUSY : -EPERM;
}

/* Seizes one thread.  0 (seized, or gone: t->exited), -EAGAIN when the
 * seize hung behind an exec, -EBUSY when another tracer has it, -EPERM. */
static int seize(pid_t pid, struct xp_thread *t, struct held *h)
{
	long r;
	int err;

	/* a zombie (a leader that called pthread_exit) has no stack, and its
	 * exit is not reported until the whole group exits */
	if (t->state == 'Z' || t->state == 'X') {
		t->exited = 1;
		return 0;
	}
	if (sigsetjmp(seize_escape, 0) == 0) {
		seize_ticks = 0;
		in_seize = 1;
		r = ptrace(PTRACE_SEIZE, t->tid, NULL, (void *)(uintptr_t)PTRACE_O_TRACEEXEC);
		in_seize = 0;
		err = r < 0 ? errno : 0;
	} else {
		sigset_t alrm;
		sigemptyset(&alrm);
		sigaddset(&alrm, SIGALRM); /* blocked by the handler we left */
		sigprocmask(SIG_UNBLOCK, &alrm, NULL);
		h->execd = 1;
		/* the seize may have taken just before the jump: only its
		 * tracer can interrupt a thread */
		if (ptrace(PTRACE_INTERRUPT, t->tid, NULL, NULL) == 0) {
			t->seized = 1;
			h->seized++;
			h->waiting++;
		}
		return -EAGAIN; /* no more seizes: each would wait as long */
	}
	if (err == ESRCH || (err == EPERM && (err = -seize_refusal(pid, t->tid)) == 0)) {
		/* exited between readdir and now, or exiting */
		t->exited = 1;
		return 0;
	}
	if (err)
		return -err;
	t->seized = 1;
	h->seized++;
	h->waiting++;
	return 0;
}

static void interrupt(struct xp_thread *t)
{
	/* ESRCH: it is dying; its exit still reaches us through waitpid */
	if (t->seized)
		ptrace(PTRACE_INTERRUPT, t->tid, NULL, NULL);
}

static int is_stop_signal(int sig)
{
	return sig == SIGSTOP || sig == SIGTSTP || sig == SIGTTIN || sig == SIGTTOU;
}

struct capture_ctx {
	pid_t pid;
	struct xp_maps *maps;
	int maps_fresh;
	uint64_t copied;  /* stack bytes copied so far, against XP_STACK_COPY_TOTAL */
	int pagemap;      /* /proc/PID/pagemap, opened at the first stack; -1 none */
	int pagemap_tried;
	int keep_tcb;     /* copy a thread's TCB too (a heap walk's roots) */
	uint8_t *pool;    /* pre-faulted, zeroed; NULL: calloc each copy */
	size_t pool_len, pool_used;
};

/* Writes the stack pool before the stop; none when it fails.  From calloc,
 * not mmap: the pages of a freed pool serve the next stop (cpu --wall,
 * top and serve stop the target again and again) without a fault. */
static void stack_pool_make(struct xp_snapshot *s, size_t nthreads)
{
	size_t len = nthreads * STACK_POOL_PER_THREAD, off;
	uint8_t *p;

	len = len > STACK_POOL_MAX ? STACK_POOL_MAX : len;
	p = len ? calloc(1, len) : NULL;
	if (!p)
		return;
	for (off = 0; off < len; off += 4096)
		((volatile uint8_t *)p)[off] = 0;
	s->stack_pool = p;
	s->stack_pool_len = len;
}

/* A zeroed buffer for a stack copy: from the pool while it lasts. */
static uint8_t *stack_alloc(struct capture_ctx *c, size_t len)
{
	size_t need = (len + 15) & ~(size_t)15;

	if (c->pool && need >= len && need <= c->pool_len - c->pool_used) {
		uint8_t *p = c->pool + c->pool_used;
		c->pool_used += need;
		return p;
	}
	return calloc(1, len);
}

static void stack_free(const uint8_t *pool, size_t pool_len, uint8_t *p)
{
	if (!(p >= pool && p < pool + pool_len))
		free(p);
}


static void capture(struct xp_thread *t, struct capture_ctx *c);

/* Records one wait status of a thread we wait for; 1 when it is now
 * stopped or gone. */
static int record_status(struct xp_thread *t, int status, struct held *h)
{
	if (WIFEXITED(status) || WIFSIGNALED(status)) {
		t->exited = 1;
		return 1;
	}
	if (WIFSTOPPED(status)) {
		int event = status >> 16, sig = WSTOPSIG(status);
		if (event == PTRACE_EVENT_STOP)
			t->group_stopped = is_stop_signal(sig);
		else if (event == PTRACE_EVENT_EXEC)
			h->execd = 1; /* a new program: nothing of this stop is kept */
		else if (event == 0)
			t->pending_sig = sig; /* signal-delivery-stop: re-sent at detach */
		t->stopped = 1;
		return 1;
	}
	return 0;
}

/* 1 when a thread is runnable (R): seized and not stopped yet, it stops
 * the moment it gets a CPU, which a loaded machine can keep from it past
 * the deadline, where one in uninterruptible sleep (D) may never stop. */
static int runnable(pid_t tid)
{
	char path[64], buf[1024], comm[64], state;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)tid);
	return xp_read_small_file(path, buf, sizeof(buf)) > 0 &&
	       xp_parse_stat(buf, comm, sizeof(comm), &state, NULL) == 0 && state == 'R';
}

/* 1 when a thread after index i is still on its way and runnable. */
static int runnable_after(const struct table *tb, size_t i)
{
	for (i++; i < tb->n; i++) {
		const struct xp_thread *t = &tb->t[i];
		if (t->seized && !t->stopped && !t->exited && runnable(t->tid))
			return 1;
	}
	return 0;
}

/* Waits for every seized thread to stop or exit, until the deadline; each
 * thread is copied (when c is set) as soon as it stops, while the others
 * are still on their way.  waitpid for one tid at a time: waitpid(-1)
 * scans every tracee on each call, quadratic for a big process.
 * Threads still runnable at the deadline get 100 ms more at a time, up to
 * XP_STOP_TIMEOUT_RUNNABLE_MS in all: at a load of 18 to 50 on 2 cores a
 * busy thread missed the 100 ms now and then (1 dump in 60; threads -o
 * exit 1, --wall a sample short).  One asleep past the deadline is stuck
 * (uninterruptible sleep): passed over, and taken at the end if it
 * stopped meanwhile. */
static void wait_for_stops(struct table *tb, struct held *h, struct capture_ctx *c)
{
	int64_t t0 = now_ns(CLOCK_MONOTONIC), left;
	size_t i;

	arm_deadline(XP_STOP_TIMEOUT_BASE_MS + (int)(tb->n * XP_STOP_TIMEOUT_PER_THREAD_US / 1000));
	for (i = 0; i < tb->n && h->waiting > 0; i++) {
		struct xp_thread *t = &tb->t[i];
		int status, extend = 0, werr = 0;
		pid_t r;

		if (!t->seized || t->stopped || t->exited)
			continue;
		for (;;) {
			do {
				r = waitpid(t->tid, &status, __WALL);
				werr = r < 0 ? errno : 0;
			} while (werr == EINTR && !deadline_hit);
			if (werr != EINTR)
				break;
			left = XP_STOP_TIMEOUT_RUNNABLE_MS - (now_ns(CLOCK_MONOTONIC) - t0) / 1000000;
			extend = left > 0 && (runnable(t->tid) || runnable_after(tb, i));
			if (!extend)
				break;
			arm_deadline(left < XP_STOP_TIMEOUT_BASE_MS ? (int)left : XP_STOP_TIMEOUT_BASE_MS);
			if (!runnable(t->tid))
				break; /* asleep: on to the runnable ones after it */
		}
		if (werr == EINTR && !extend)
			break; /* the deadline: the others are taken if stopped */
		if (r < 0) {
			if (werr == ECHILD) { /* gone, and reaped by someone else */
				t->exited = 1;
				h->waiting--;
			}
			continue;
		}
		if (!record_status(t, status, h))
			continue;
		h->waiting--;
		if (t->stopped && c)
			capture(t, c);
	}
	disarm_deadline();
	/* past the deadline, one thread stuck (uninterruptible sleep) must not
	 * keep the threads after it, already stopped, from being taken */
	for (i = 0; i < tb->n && h->waiting > 0; i++) {
		struct xp_thread *t = &tb->t[i];
		int status;

		if (!t->seized || t->stopped || t->exited)
			continue;
		if (waitpid(t->tid, &status, __WALL | WNOHANG) <= 0 || !record_status(t, status, h))
			continue;
		h->waiting--;
		if (t->stopped && c)
			capture(t, c);
	}
}

#define STACK_IOV 66 /* runs of resident pages in XP_STACK_COPY_MAX, and the futex words */

/* The iovecs reading only the pages of [lo, hi) that the target has
 * resident or swapped: reading a page it never touched (a hole above SP
 * left by a big frame) would fault it in and grow its memory.  The whole
 * range when the page map cannot tell. */
static size_t resident_iovecs(struct capture_ctx *c, pid_t tid, uint64_t lo, uint64_t hi, uint8_t *buf,
			      struct iovec *local, struct iovec *remote, size_t max)
{
	uint64_t pm[XP_STACK_COPY_MAX / 4096 + 2], first = lo & ~4095ULL, p, run = 0;
	size_t n = 0, npages = (size_t)((hi - first + 4095) / 4096), i;
	int in_run = 0;

	if (!c->pagemap_tried) {
		char path[64];
		/* through a thread that lives: a leader that exited has no mm */
		snprintf(path, sizeof(path), "/proc/%d/pagemap", (int)tid);
		c->pagemap = open(path, O_RDONLY | O_CLOEXEC);
		c->pagemap_tried = 1;
	}
	if (c->pagemap < 0 || npages > sizeof(pm) / sizeof(pm[0]) ||
	    pread(c->pagemap, pm, npages * 8, (off_t)(first / 4096 * 8)) != (ssize_t)(npages * 8)) {
		local[0] = (struct iovec){ buf, (size_t)(hi - lo) };
		remote[0] = (struct iovec){ (void *)(uintptr_t)lo, (size_t)(hi - lo) };
		return hi > lo;
	}
	for (i = 0, p = first; i <= npages; i++, p += 4096) {
		int res = i < npages && (pm[i] >> 62) != 0; /* present or swapped */
		if (res && !in_run) {
			run = p < lo ? lo : p;
			in_run = 1;
		} else if (!res && in_run) {
			uint64_t end = p < hi ? p : hi;
			if (n == max) /* too fragmented: read the rest whole */
				end = hi, i = npages;
			local[n] = (struct iovec){ buf + (run - lo), (size_t)(end - run) };
			remote[n++] = (struct iovec){ (void *)(uintptr_t)run, (size_t)(end - run) };
			in_run = 0;
		}
	}
	return n;
}

/* Copies the live part of the stack, from just below SP (the red zone)
 * to the end of its mapping (its resident pages; zeros elsewhere), and
 * for a thread in futex(2) the futex word with the words after it: one
 * process_vm_readv for both. */
static void copy_stack(struct xp_thread *t, struct capture_ctx *c)
{
	uint64_t sp = xp_regs_sp(&t->regs), lo = 0, hi = 0;
	const struct xp_map *m = xp_maps_find(c->maps, sp);
	struct iovec local[STACK_IOV], remote[STACK_IOV];
	int in_futex = xp_regs_syscall(&t->regs) == XP_SYS_FUTEX;
	size_t len = 0, niov = 0, k;
	ssize_t n;

	if (m) {
		lo = sp - XP_REDZONE >= m->start && sp >= XP_REDZONE ? sp - XP_REDZONE : m->start;
		hi = m->end;
		/* A pthread's stack mapping ends in its TCB (struct pthread,
		 * 2.3 KB in glibc 2.36), at the thread pointer, with the
		 * static TLS and then the first frame below it: no frame lies
		 * above it.  Leaving it out halves what a parked thread's copy
		 * costs, and each page written into is a fault for xprof. */
		if (!c->keep_tcb && xp_regs_tp(&t->regs) > sp && xp_regs_tp(&t->regs) < hi)
			hi = xp_regs_tp(&t->regs);
		if (hi - lo > XP_STACK_COPY_MAX) {
			hi = lo + XP_STACK_COPY_MAX;
			t->stack_truncated = 1;
		}
		if (c->copied + (hi - lo) > XP_STACK_COPY_TOTAL && hi - lo > XP_STACK_COPY_LOW) {
			hi = lo + XP_STACK_COPY_LOW;
			t->stack_truncated = 1;
		}
		len = hi - lo;
		t->stack = stack_alloc(c, len);
		if (!t->stack)
			len = 0;
		else
			niov = resident_iovecs(c, t->tid, lo, hi, t->stack, local, remote, STACK_IOV - 1);
	}
	t->futex_addr = in_futex ? xp_regs_arg0(&t->regs) : 0;
	local[niov].iov_base = t->futex_words;
	local[niov].iov_len = in_futex ? sizeof(t->futex_words) : 0;
	remote[niov].iov_base = (void *)(uintptr_t)t->futex_addr;
	remote[niov].iov_len = local[niov].iov_len;
	n = process_vm_readv(t->tid, local, niov + 1, remote, niov + 1, 0); /* a leader that exited reads nothing */
	/* a short read ends at the first remote range that failed: the
	 * stack is kept up to there */
	for (k = 0; k < niov && n >= (ssize_t)local[k].iov_len; k++)
		n -= (ssize_t)local[k].iov_len;
	if (len > 0 && (n > 0 || k > 0 || niov == 0)) {
		size_t got = k == niov ? len : (size_t)((uint64_t)(uintptr_t)remote[k].iov_base - lo) + (size_t)(n > 0 ? n : 0);
		t->stack_addr = lo;
		t->stack_len = got;
		c->copied += t->stack_len;
	} else {
		stack_free(c->pool, c->pool_len, t->stack);
		t->stack = NULL;
	}
	if (in_futex && k == niov && n == (ssize_t)sizeof(t->futex_words))
		t->have_futex = 1;
}

static void capture(struct xp_thread *t, struct capture_ctx *c)
{
	if (ptrace(PTRACE_GETREGS, t->tid, NULL, &t->regs) < 0) {
		t->stopped = 0; /* killed while stopped */
		t->exited = errno == ESRCH;
		return;
	}
	if (!xp_maps_find(c->maps, xp_regs_sp(&t->regs)) && !c->maps_fresh) {
		/* a stack mapped after our first read of the maps */
		struct xp_maps fresh;
		c->maps_fresh = 1;
		if (xp_maps_read(c->pid, &fresh) == 0) {
			xp_maps_free(c->maps);
			*c->maps = fresh;
		}
	}
	copy_stack(t, c);
}

/* Lets one stopped thread go.  ESRCH: it is no longer in its stop, killed
 * while stopped by an exec or an exit of a thread let go before it.  A
 * killed tracee stays a zombie until its tracer reaps it, and an exec
 * waits for that (the target would sit in D state for as long as xprof
 * runs): reap it, in a short bounded wait. */
static void detach(struct xp_thread *t)
{
	int status;
	pid_t r;

	if (ptrace(PTRACE_DETACH, t->tid, NULL, (void *)(uintptr_t)t->pending_sig) == 0 || errno != ESRCH)
		return;
	arm_deadline(REAP_TIMEOUT_MS);
	do {
		r = waitpid(t->tid, &status, __WALL);
	} while (r < 0 && errno == EINTR && !deadline_hit);
	disarm_deadline();
	/* the leader's tid, now the thread that exec'd, in its exec stop */
	if (r == t->tid && WIFSTOPPED(status))
		ptrace(PTRACE_DETACH, t->tid, NULL, NULL);
}

/* Threads that missed the deadline (stuck in uninterruptible sleep) still
 * carry our interrupt: wait a little longer and let each go as it stops.
 * Their copies were never taken, so they count as not stopped.  Any still
 * running afterwards are released by the kernel when xprof exits. */
static void release_late(struct table *tb, struct held *h)
{
	size_t i;
	char *late;

	if (h->waiting == 0)
		return;
	late = calloc(tb->n, 1);
	if (!late)
		return; /* the kernel lets them go when xprof exits */
	for (i = 0; i < tb->n; i++)
		late[i] = !tb->t[i].stopped && !tb->t[i].exited;
	wait_for_stops(tb, h, NULL);
	for (i = 0; i < tb->n; i++) {
		if (!late[i])
			continue;
		if (tb->t[i].stopped && !tb->t[i].exited)
			detach(&tb->t[i]);
		tb->t[i].stopped = 0;
	}
	free(late);
}

/* After an exec the thread that exec'd holds the pid, whatever its tid
 * was: if we seized it under its old tid, the table does not know it by
 * this one.  Only its tracer can interrupt it, so a successful interrupt
 * means it is still ours: wait for the stop (bounded) and let it go. */
static void release_leader_left(pid_t pid)
{
	int status;
	pid_t r;

	if (ptrace(PTRACE_INTERRUPT, pid, NULL, NULL) < 0)
		return;
	arm_deadline(XP_STOP_TIMEOUT_BASE_MS);
	do {
		r = waitpid(pid, &status, __WALL);
	} while (r < 0 && errno == EINTR && !deadline_hit);
	disarm_deadline();
	if (r == pid && WIFSTOPPED(status))
		ptrace(PTRACE_DETACH, pid, NULL, NULL);
}

/* The signals that end xprof, and those that suspend it (Ctrl-Z, a
 * background read or write): a suspended xprof would keep the target
 * stopped for as long as it sits.  Each is acted on after the release. */
static void block_held_signals(sigset_t *old)
{
	static const int sigs[] = { SIGINT, SIGTERM, SIGHUP, SIGPIPE, SIGQUIT, SIGTSTP, SIGTTIN, SIGTTOU };
	sigset_t set;
	size_t i;

	sigemptyset(&set);
	for (i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
		sigaddset(&set, sigs[i]);
	sigprocmask(SIG_BLOCK, &set, old);
}

static int take_once(pid_t pid, struct xp_snapshot *s, xp_while_stopped fn, void *arg);

int xp_snapshot_take(pid_t pid, struct xp_snapshot *s)
{
	return xp_snapshot_take_with(pid, s, NULL, NULL);
}

int xp_snapshot_take_with(pid_t pid, struct xp_snapshot *s, xp_while_stopped fn, void *arg)
{
	int err, tries;

	for (tries = 0;; tries++) {
		err = take_once(pid, s, fn, arg);
		if (err != -EAGAIN || tries + 1 >= EXEC_RETRIES)
			return err;
		/* the exec we let go finishes its start-up (a millisecond) */
		usleep(2000);
	}
}

/* One stop; -EAGAIN when the target exec'd during it. */
static int take_once(pid_t pid, struct xp_snapshot *s, xp_while_stopped fn, void *arg)
{
	struct table tb = { 0 };
	struct held h = { 0 };
	sigset_t oldmask;
	int64_t t0;
	size_t i, nregions = 0;
	int err = 0, rounds, added;
	char leader_state = 0;
	struct capture_ctx cc = { 0 };

	memset(s, 0, sizeof(s[0]));
	s->pid = pid;
	err = xp_maps_read(pid, &s->maps);
	if (err < 0)
		return err;
	err = scan_tasks(pid, &tb, 1);
	if (err < 0)
		goto out_free;
	if (tb.n > 0)
		leader_state = table_find(&tb, pid) ? table_find(&tb, pid)->state : 0;
	/* a leader that called pthread_exit is a zombie: a live thread tells */
	for (i = 0; (leader_state == 'Z' || leader_state == 'X') && i < tb.n; i++)
		leader_state = tb.t[i].state == 'Z' || tb.t[i].state == 'X' ? leader_state : tb.t[i].state;
	s->process_was_stopped = leader_state == 'T';
	err = 0;
	stack_pool_make(s, tb.n);

	block_held_signals(&oldmask);
	/* the seize watchdog ticks until the last seize */
	set_alarm(SEIZE_TICK_MS, SEIZE_TICK_MS);
	/* Seizing does not stop a thread: do it for all before the pause. */
	for (i = 0; i < tb.n && err == 0; i++)
		err = seize(pid, &tb.t[i], &h);
	/* the threads seized are the target's only if it still lives: its
	 * pid may have gone to a new process since it was validated */
	if (err == 0 && !xp_proc_alive(pid))
		err = -ESRCH;

	t0 = now_ns(CLOCK_MONOTONIC);
	s->time_ns = now_ns(CLOCK_REALTIME);
	/* when a seize failed, the threads seized are stopped only to be let
	 * go: a thread left seized would stop at its next signal, for us */
	for (i = 0; i < tb.n; i++)
		interrupt(&tb.t[i]);
	/* Threads created meanwhile: catch them until the list is stable.
	 * Interrupted threads create nothing, so this converges. */
	for (rounds = 0; err == 0 && rounds < TASK_ROUNDS_MAX; rounds++) {
		size_t first = tb.n;
		added = scan_tasks(pid, &tb, 0);
		if (added < 0) {
			err = added;
			break;
		}
		if (added == 0)
			break;
		for (i = first; i < tb.n && err == 0; i++) {
			tb.t[i].state = 'R'; /* new-born: it was running */
			err = seize(pid, &tb.t[i], &h);
			if (err == 0)
				interrupt(&tb.t[i]);
		}
	}
	disarm_deadline();
	if (err == 0 && h.execd)
		err = -EAGAIN; /* a seize hung behind an exec */
	cc.pid = pid;
	cc.maps = &s->maps;
	cc.pagemap = -1;
	cc.keep_tcb = fn != NULL; /* the heap walk's callback: TCBs are roots */
	cc.pool = s->stack_pool;
	cc.pool_len = s->stack_pool_len;
	wait_for_stops(&tb, &h, err == 0 ? &cc : NULL);
	if (cc.pagemap >= 0)
		close(cc.pagemap);
	s->all_stopped_ns = now_ns(CLOCK_MONOTONIC) - t0;
	if (err == 0 && !xp_proc_alive(pid))
		err = -ESRCH;
	if (err == 0 && h.execd)
		err = -EAGAIN; /* registers of two programs: none is kept */

	if (fn && err == 0) {
		/* the caller's reads, with every thread still stopped; the
		 * threads are seen as the table holds them (skip !stopped) */
		s->threads = tb.t;
		s->nthreads = tb.n;
		s->hold_err = fn(s, arg);
		s->threads = NULL;
		s->nthreads = 0;
	}

	/* Every thread has stopped (or missed the deadline): one instant. */
	for (i = 0; i < tb.n; i++)
		if (tb.t[i].stopped && !tb.t[i].exited)
			detach(&tb.t[i]);
	s->stopped_ns = now_ns(CLOCK_MONOTONIC) - t0;
	release_late(&tb, &h);
	if (h.execd)
		release_leader_left(pid);
	sigprocmask(SIG_SETMASK, &oldmask, NULL);
	/* the exec was seen only as a late thread stopped; the caller's
	 * reads, once made, are kept (its state is not ours to reset) */
	if (err == 0 && h.execd && !fn)
		err = -EAGAIN;

	if (err < 0)
		goto out_free;

	/* Keep the threads that were there, drop the ones that exited. */
	s->threads = tb.t;
	tb.t = NULL;
	for (i = 0; i < tb.n; i++) {
		struct xp_thread *t = &s->threads[i];
		if (t->exited) {
			s->exited++;
			continue;
		}
		if (!t->stopped)
			s->not_stopped++;
		s->threads[s->nthreads++] = *t;
	}
	free(tb.slot);
	tb.slot = NULL; /* out_free frees it too */
	if (s->maps.n == 0 && (err = xp_maps_read(pid, &s->maps)) < 0)
		goto out_free;
	s->regions = calloc(s->nthreads ? s->nthreads : 1, sizeof(*s->regions));
	if (!s->regions) {
		err = -ENOMEM;
		goto out_free;
	}
	for (i = 0; i < s->nthreads; i++) {
		if (!s->threads[i].stack)
			continue;
		s->regions[nregions].addr = s->threads[i].stack_addr;
		s->regions[nregions].len = s->threads[i].stack_len;
		s->regions[nregions].data = s->threads[i].stack;
		nregions++;
	}
	s->nregions = nregions;
	if (s->nthreads == 0 || s->not_stopped == s->nthreads) {
		err = s->nthreads == 0 ? -ESRCH : -ETIMEDOUT;
		goto out_free;
	}
	return 0;

out_free:
	if (tb.t) {
		for (i = 0; i < tb.n; i++)
			stack_free(s->stack_pool, s->stack_pool_len, tb.t[i].stack);
		free(tb.t);
	}
	free(tb.slot);
	xp_snapshot_free(s);
	return err;
}

void xp_snapshot_free(struct xp_snapshot *s)
{
	size_t i;

	for (i = 0; i < s->nthreads; i++)
		stack_free(s->stack_pool, s->stack_pool_len, s->threads[i].stack);
	free(s->stack_pool);
	free(s->threads);
	free(s->regions);
	xp_maps_free(&s->maps);
	memset(s, 0, sizeof(*s));
}

/* ---- signals ---------------------------------------------------------- */

static void on_fatal_signal(int sig)
{
	static const char msg[] = "xprof: interrupted, target left running\n";
	ssize_t r = write(2, msg, sizeof(msg) - 1);

	(void)r;
	signal(sig, SIG_DFL);
	raise(sig);
}

void xp_attach_signals(void)
{
	static const int sigs[] = { SIGINT, SIGTERM, SIGHUP, SIGQUIT };
	struct sigaction sa;
	size_t i;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_fatal_signal;
	for (i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
		sigaction(sigs[i], &sa, NULL);
	/* a closed stdout is an EPIPE from write, reported like any error */
	signal(SIGPIPE, SIG_IGN);
}
