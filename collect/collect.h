/* collect/ — one call per profile kind: a target and options in, a profile
 * in memory (proto/'s xp_profile) or text out.  No option parsing, no
 * printing, no files: the commands (cmd/) and the server (xprof serve)
 * are front ends over the same code, so a scrape and a command give the
 * same profile.
 *
 * Long-lived state belongs to the caller: an xp_target_space holds a
 * target's maps, modules (symbolize/'s xp_space with its symbol caches and
 * debug info) and unwinder, and is handed to each collection; it is
 * rebuilt only when the target's executable mappings change, so repeated
 * collections skip the cost of opening modules and debug info.
 *
 * Library code: returns 0 or -errno, never prints.
 */
#ifndef XPROF_COLLECT_COLLECT_H
#define XPROF_COLLECT_COLLECT_H

#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include "attach/attach.h"
#include "gort/gort.h"
#include "pyrt/pyrt.h"
#include "proto/profile.h"
#include "symbolize/symbolize.h"
#include "unwind/unwind.h"

/* ---- a target's address space, kept between collections -------------------- */

struct xp_target_space {
	pid_t pid;
	int flags;                   /* XP_SPACE_* given to xp_space_open */
	struct xp_mem *live;         /* reads the running process */
	struct xp_maps maps;         /* as read at the last (re)build */
	struct xp_space *space;
	struct xp_unwinder *unwinder;
	uint64_t builds, reuses;     /* how often it was (re)built and reused */
};

/* Reads pid's maps and opens its modules.  0 or -errno (ts is then empty). */
int xp_target_space_open(pid_t pid, int flags, struct xp_target_space *ts);
/* Reads the maps again: when an executable file mapping came, went or
 * moved, rebuilds the modules and unwinder (1); else keeps them (0).
 * -errno when the maps cannot be read (the space is kept). */
int xp_target_space_refresh(struct xp_target_space *ts);
void xp_target_space_close(struct xp_target_space *ts);

/* CLOCK_MONOTONIC in nanoseconds. */
int64_t xp_monotonic_ns(void);

/* Interns the main executable's mapping first (the process's executable,
 * else the first file-backed executable mapping): pprof takes mapping 1
 * for the profiled binary. */
int xp_profile_main_mapping(struct xp_profile *p, struct xp_space *space, const struct xp_maps *maps);
/* The mapping id of the module holding pc, 0 when none, or -errno;
 * *address: pc as the profile holds it (the file's own address). */
int64_t xp_profile_pc_mapping(struct xp_profile *p, struct xp_space *space, uint64_t pc, uint64_t *address);
/* Adds the locations of one unwound stack (leaf first) to p; ids[] receives
 * one id per pc.  is_call[i]: pc[i] is a return address. */
int xp_stack_locations(struct xp_profile *p, struct xp_space *space, const uint64_t *pc,
		       const unsigned char *is_call, size_t n, uint64_t *ids);

/* ---- cpu: sampled stacks (perf), or every thread at each tick (--wall) ------ */

struct xp_cpu;
struct xp_cpu_stats;

struct xp_cpu_opts {
	pid_t pid;
	const char *comm;            /* the target's name, escaped */
	int64_t duration_ns;
	int freq;                    /* samples per second */
	int wall;                    /* every thread's time: XP_WALL (perf's context switches and
				      * cpu-clock, else ptrace snapshots) or XP_WALL_PTRACE */
	int kernel;                  /* kernel frames, when perf grants them */
	int launched;                /* pid is a child held before its exec: sampling starts at the exec */
	volatile sig_atomic_t *stop; /* set: the run ends early (may be NULL) */
	/* called after each read of the ring buffers or --wall tick */
	void (*progress)(void *arg, const struct xp_cpu_stats *st, int64_t now);
	void *arg;
	struct xp_target_space *space; /* optional: the modules of the first program (kept) */
};

enum { XP_WALL = 1, XP_WALL_PTRACE = 2 };

/* What a run saw, for the front end's report. */
struct xp_cpu_stats {
	uint64_t samples, complete;  /* samples, and those with a whole stack */
	size_t threads;
	uint64_t lost;               /* perf records lost */
	int kernel;                  /* kernel frames are in */
	int gone;                    /* the target exited (or its pid is another's now) */
	int too_many_execs;
	size_t programs;             /* 1 + the execs followed */
	const char *comm;            /* the target's name now (the last program's) */
	const char *first_comm, *last_comm;
	int child_exited, child_status; /* launched: -1 gone with its status unknown */
	uint64_t ticks, ticks_stopped, ticks_spaced, ticks_execd, ticks_unstopped; /* --wall */
	uint64_t wall_missed, wall_seen;
	int wall_refused;            /* --wall: a later stop was refused (-EBUSY, -EPERM) */
	int left_stopped;
	int wall_perf;               /* --wall from perf (no stop); else ptrace */
	int wall_perf_err;           /* why perf could not do --wall (-errno; 0: not tried) */
	int wall_execd;              /* --wall from perf: the target exec'd, which ended the run */
	int64_t start_ns, end_ns, start_real_ns;
	/* CPython: its version ("" when none), where its layouts came from,
	 * or why it cannot be read; samples of Python threads, and those
	 * whose innermost Python frame was still the same when read */
	const char *python, *python_layout, *python_problem;
	const char *python_check;  /* what the innermost Python frames are checked by (xp_py_innermost_check) */
	uint64_t py_samples, py_consistent;
	uint64_t py_late;     /* of py_samples, read too late to show their Python frames */
	uint64_t py_checked;  /* of py_samples, the innermost frame checked against the sampled registers */
	uint64_t py_corrected;/* of py_samples, the innermost frame taken from them (it had moved on) */
	struct xp_jit_stats jit;     /* the first program's perf map, once read */
};

/* Prepares a run: opens perf_event_open sampling unless o->wall.  For a
 * launched command, call before letting it exec.  -EACCES/-EPERM: perf
 * refused (run with wall instead); -EMFILE/-ENFILE: too many threads for
 * the open-file limit. */
int xp_cpu_open(const struct xp_cpu_opts *o, struct xp_cpu **out);
/* Samples until the duration ends, the target exits or *o->stop.  Then
 * the samples are kept aggregated by (program, thread, state, stack). */
int xp_cpu_run(struct xp_cpu *c);
const struct xp_cpu_stats *xp_cpu_stats(const struct xp_cpu *c);
/* The pprof profile of the run: samples/count and cpu (or wall)
 * nanoseconds, labels thread, tid (and state with --wall). */
int xp_cpu_profile(struct xp_cpu *c, struct xp_profile **out);
/* For a live view, from o->progress: the profile of the samples since the
 * last take (or the start), then forgets them.  Stats stay cumulative. */
int xp_cpu_profile_take(struct xp_cpu *c, struct xp_profile **out);
/* One stack of a flame graph: frame names root first, and its count. */
struct xp_cpu_stack {
	char **frames;
	size_t nframes;
	uint64_t count;
};
int xp_cpu_stacks(struct xp_cpu *c, struct xp_cpu_stack **out, size_t *n);
void xp_cpu_stacks_free(struct xp_cpu_stack *v, size_t n);
void xp_cpu_close(struct xp_cpu *c);

/* ---- off-CPU: where threads wait (block), every thread's time (--wall) --- */

struct xp_offcpu;

struct xp_offcpu_opts {
	pid_t pid;
	int64_t duration_ns;
	int wall;                    /* add cpu-clock samples at freq: the time on the CPU too */
	int freq;
	int preempted;               /* block: keep involuntary switches (reason "preempted") */
	volatile sig_atomic_t *stop; /* set: the run ends early (may be NULL) */
	struct xp_target_space *space; /* optional: kept modules (the caller's until xp_offcpu_close) */
	/* called after each read of the rings (at most 50 ms apart) */
	void (*progress)(void *arg, int64_t now);
	void *arg;
};

/* What an interval of a thread's time is counted as. */
enum { XP_OFFCPU_BLOCKED, XP_OFFCPU_PREEMPTED, XP_OFFCPU_RUNNING,
       XP_OFFCPU_STOPPED, /* in group stop (SIGSTOP) when the run began, until it ran again */
       XP_OFFCPU_KINDS };

struct xp_offcpu_stats {
	uint64_t switches;           /* switch-outs of the target's threads */
	uint64_t samples, complete;  /* stacks unwound, and those unwound whole */
	uint64_t count[XP_OFFCPU_KINDS];
	int64_t ns[XP_OFFCPU_KINDS]; /* time counted, by kind */
	uint64_t unmatched;          /* intervals whose stack sample was lost */
	uint64_t lost;               /* perf records lost */
	size_t threads, exited;
	int kernel;                  /* kernel chains: the syscall and wait channel are known */
	int gone, execd;
	int64_t start_ns, end_ns, start_real_ns;
};

/* Opens the context-switch sampling of every thread of pid (and, with
 * wall, cpu-clock sampling), and the target's modules.  -EACCES/-EPERM:
 * perf refused. */
int xp_offcpu_open(const struct xp_offcpu_opts *o, struct xp_offcpu **out);
/* Why xp_offcpu_open failed with err, as one line for a message or an
 * HTTP answer, with the one thing that fixes it when perf refused. */
void xp_offcpu_open_error(pid_t pid, int err, char *buf, size_t len);
/* Runs until the duration ends, the target exits or execs, or *o->stop. */
int xp_offcpu_run(struct xp_offcpu *c);
const struct xp_offcpu_stats *xp_offcpu_stats(const struct xp_offcpu *c);
/* block: contentions/count and delay/nanoseconds, labels thread, tid,
 * reason (the syscall, or preempted), wchan.  wall: samples/count and
 * wall/nanoseconds, labels thread, tid, state (running, runnable,
 * sleeping, stopped) and reason. */
int xp_offcpu_profile(struct xp_offcpu *c, struct xp_profile **out);
/* For a live view, from o->progress: the same profile of the window since
 * the last take (or the start), waits and time on a CPU still going on
 * counted up to now and carried on into the next window; then forgets the
 * window.  The stats stay cumulative. */
int xp_offcpu_take(struct xp_offcpu *c, struct xp_profile **out);
/* The same as flame-graph stacks (xp_cpu_stacks), counted in periods. */
struct xp_cpu_stack;
int xp_offcpu_stacks(struct xp_offcpu *c, struct xp_cpu_stack **out, size_t *n);
void xp_offcpu_close(struct xp_offcpu *c);

/* ---- threads: every thread's stack at one instant ------------------------------ */

/* One thread of a dump. */
struct xp_thread_stack {
	const struct xp_thread *t;
	uint64_t *pc;
	unsigned char *is_call;
	size_t n;
	int complete, capped;
	int end_unplaced;     /* the last pc is a return address in no code (where the unwinder stopped) */
	const char *syscall;  /* name of the system call it blocks in, or NULL */
	uint64_t mutex;       /* the pthread mutex it waits for, or 0 */
	pid_t owner;          /* that mutex's owner tid, or 0 */
	int owner_ns;         /* owner is a tid of the target's pid namespace, not ours */
	int in_deadlock;
	int python;           /* a thread of the CPython interpreter (it has a thread state) */
	int holds_gil;
	int py_moved;         /* its Python frames changed between the stop and their read */
};

struct xp_thread_dump {
	pid_t pid;
	char comm[64];
	struct xp_snapshot snap;  /* the caller takes it (xp_snapshot_take) */
	struct xp_space *space;
	int space_borrowed;       /* an xp_target_space's */
	struct xp_mem *live;      /* the live process, for what was not copied (the vdso) */
	struct xp_thread_stack *d;
	size_t n;
	size_t frames, incomplete, capped;
	int64_t unwind_ns;
	/* CPython: "3.11.2" and where its layouts came from, or "" */
	char python[32];
	const char *python_layout;
	char python_problem[160];  /* a Python xprof cannot read: why */
	size_t python_threads, python_frames, python_moved;
	int gil_locked;
};

/* Unwinds and symbolizes every thread of dp->snap, and finds the owners of
 * the mutexes threads wait for.  ts: kept modules to use (NULL: opened for
 * this dump from the snapshot's maps). */
int xp_threads_unwind(struct xp_thread_dump *dp, const struct xp_target_space *ts);
/* Prints every cycle of threads waiting for each other's mutexes; returns
 * how many. */
int xp_threads_deadlocks(struct xp_thread_dump *dp, FILE *f);
/* The dump, Go-dump style: thread, state, frames with file:line. */
void xp_threads_print(struct xp_thread_dump *dp, FILE *f);
/* The same with threads of identical stacks printed once, biggest group first. */
int xp_threads_print_grouped(struct xp_thread_dump *dp, FILE *f);
/* One sample per thread (threads/count), labels tid, thread, state. */
int xp_threads_profile(struct xp_thread_dump *dp, struct xp_profile **out);
void xp_threads_free(struct xp_thread_dump *dp);

/* A stack and how many threads, goroutines or samples have it. */
struct xp_stack_count {
	const uint64_t *pc;          /* leaf first */
	const unsigned char *is_call;
	size_t n;
	const char *labels;          /* "{\"k\":\"v\"}" or NULL */
	uint64_t count;
};
/* runtime/pprof's debug=1 text of a count profile ("NAME profile: total
 * N", then each distinct stack with its count, most first, its frames as
 * "#\tPC\tFUNCTION+OFFSET\tFILE:LINE"); sorts and folds v in place. */
int xp_print_count_profile(FILE *f, const char *name, struct xp_space *space, struct xp_stack_count *v, size_t n);
/* The threads of a dump that way (goroutine profile, one per thread). */
int xp_threads_print_counts(struct xp_thread_dump *dp, FILE *f);
/* threadcreate: each live thread counted by the stack of its start (the
 * outer frames: the C library's and the first of the program's own,
 * clone3 → start_thread → worker, or _start → main), as a profile
 * (threadcreate/count) or as the debug=1 text. */
int xp_threads_start_profile(struct xp_thread_dump *dp, struct xp_profile **out);
int xp_threads_print_starts(struct xp_thread_dump *dp, FILE *f);

/* ---- heap: what glibc's malloc holds now ------------------------------------- */

struct xp_heap;
/* Where xp_glibc_heap_collect stopped. */
enum xp_heap_stage {
	XP_HEAP_STAGE_PREPARE,   /* sizing the walk: -ENOMEM, it would not fit in memory */
	XP_HEAP_STAGE_STOP,      /* stopping the process: an attach error */
	XP_HEAP_STAGE_COPY,      /* copying the heap while stopped */
	XP_HEAP_STAGE_WALK,      /* walking and analyzing the copy */
};
/* Walks pid's glibc heap (checked with xp_heap_check first) into h, the
 * process stopped meanwhile (snap: the caller frees it).  0 or -errno, with
 * *stage saying where it failed.  A walk that ends early is partial, not a
 * failure: h->problem says why. */
int xp_glibc_heap_collect(pid_t pid, struct xp_space *space, struct xp_maps *maps, struct xp_heap *h,
			  struct xp_snapshot *snap, enum xp_heap_stage *stage);
/* Samples inuse_objects/count, inuse_space/bytes: one per distinct story. */
int xp_heap_profile(struct xp_heap *h, const struct xp_maps *maps, int64_t time_ns, struct xp_profile **out);

/* ---- Go: goroutines and the runtime's heap, block and mutex profiles ------- */

struct xp_go_target {
	struct xp_maps maps;
	struct xp_mem *live;
	struct xp_space *space;
	struct xp_go *go;
	int borrowed;                /* maps, live and space are an xp_target_space's */
};
/* 1: pid is a Go program whose runtime xprof reads (gt filled); 0: it is
 * not Go; -ENOTSUP: it is, but its runtime cannot be read (why says why);
 * -errno on failure. */
int xp_go_target_open(pid_t pid, struct xp_go_target *gt, char *why, size_t whylen);
/* The same over a kept address space (which must outlive gt). */
int xp_go_target_borrow(const struct xp_target_space *ts, struct xp_go_target *gt, char *why, size_t whylen);
void xp_go_target_close(struct xp_go_target *gt);
/* Go's own dump of the user goroutines (runtime.Stack(buf, true)); returns
 * how many it printed, and in *incomplete how many tracebacks stopped early. */
size_t xp_go_print_goroutines(struct xp_go *go, const struct xp_goroutines *gs, FILE *out, size_t *incomplete);
/* One sample per user goroutine (goroutine/count), labels goroutine,
 * state and its own pprof labels. */
int xp_go_goroutine_profile(struct xp_go_target *gt, const struct xp_goroutines *gs,
			    const struct xp_snapshot *snap, struct xp_profile **out);
/* Reads the runtime's heap (h->kind XP_GO_HEAP), block or mutex profile
 * while pid is stopped (snap: the caller frees it).  -ENOTSUP: the binary
 * lacks what it needs (why says what); -EIO: reading failed (why);
 * -ENODATA: the program records no such profile (MemProfileRate 0, block
 * or mutex profiling off); attach errors. */
int xp_go_profile_read(struct xp_go_target *gt, pid_t pid, struct xp_go_heap *h, struct xp_snapshot *snap,
		       char *why, size_t whylen);
/* The profile read, as runtime/pprof writes it. */
int xp_go_profile_build(struct xp_go_target *gt, const struct xp_go_heap *h, int64_t time_ns, struct xp_profile **out);
/* What the runtime recorded between two reads of the same profile (h0
 * first, h1 later): each stack's values in h1 minus those in h0, each
 * scaled as runtime/pprof scales it, stacks that come to zero left out;
 * net/http/pprof's answer to seconds=N.  time_ns: h1's read;
 * duration_ns: the time between the reads. */
int xp_go_profile_delta(struct xp_go_target *gt, const struct xp_go_heap *h0, const struct xp_go_heap *h1,
			int64_t time_ns, int64_t duration_ns, struct xp_profile **out);
/* The user goroutines as runtime/pprof's goroutine profile with debug=1. */
int xp_go_print_goroutine_counts(struct xp_go_target *gt, const struct xp_goroutines *gs, FILE *f);
/* Totals of a read profile, scaled as in it: objects and bytes in use,
 * contentions. */
void xp_go_profile_totals(const struct xp_go_heap *h, int64_t *inuse, int64_t *inuse_bytes, int64_t *contentions);


/* ---- mutex: lock contention of a native process (uprobes on glibc) ------------ */

enum xp_lock_class { XP_LOCK_MUTEX, XP_LOCK_RWLOCK };

struct xp_mutex;
struct xp_mutex_stats {
	uint64_t hits;               /* probe hits read */
	uint64_t waits, with_holder; /* waits measured, and those whose holder is known */
	uint64_t delay_ns;           /* their total */
	uint64_t complete;           /* waiter stacks unwound to their outermost frame */
	uint64_t unmatched;          /* returns of waits begun before the start */
	uint64_t dropped;            /* hits not kept (memory, a flood) */
	uint64_t lost;               /* hits the kernel lost (a full ring) */
	size_t open_at_end;          /* waits still going at the end (not counted) */
	size_t threads;
	int gone;                    /* the target exited */
	int64_t start_ns, end_ns, start_real_ns;
};

struct xp_mutex_opts {
	pid_t pid;
	int64_t duration_ns;
	volatile sig_atomic_t *stop; /* set: the run ends early (may be NULL) */
	void (*progress)(void *arg, const struct xp_mutex_stats *st, int64_t now);
	void *arg;
	struct xp_target_space *space; /* optional: kept modules */
};

/* Finds glibc's lock slow paths in pid's libc and puts uprobes on them
 * for every thread.  -ENOENT: not found (why says why: no glibc, no debug
 * info); -EACCES/-EPERM: uprobes need CAP_PERFMON; -EOPNOTSUPP: no uprobe
 * PMU; -errno. */
int xp_mutex_open(const struct xp_mutex_opts *o, struct xp_mutex **out, char *why, size_t whylen);
/* Why xp_mutex_open failed with err (why: what it said), as one line with
 * what to do: 0; or -1 when err is a plain attach error (no such process,
 * permissions of /proc), which the caller words as its other attach errors. */
int xp_mutex_open_error(pid_t pid, const char *comm, int err, const char *why, char *buf, size_t len);
/* Measures until the duration ends, the target exits or *o->stop, then
 * stops recording.  The probes stay in (idle) until xp_mutex_close takes
 * them out, which takes the kernel 30-45 ms per thread and probe (five
 * events a thread): write the profile first. */
int xp_mutex_run(struct xp_mutex *m);
const struct xp_mutex_stats *xp_mutex_stats(const struct xp_mutex *m);
/* contentions/count and delay/nanoseconds by the waiter's stack, labels
 * thread, tid, lock (mutex, rwlock) and, when known, holder and
 * holder_tid. */
int xp_mutex_profile(struct xp_mutex *m, struct xp_profile **out);
void xp_mutex_close(struct xp_mutex *m);

#endif
