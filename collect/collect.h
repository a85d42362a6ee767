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
/* The mapping id of the module holding pc, 0 when none, or -errno. */
int64_t xp_profile_pc_mapping(struct xp_profile *p, struct xp_space *space, uint64_t pc);
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
	int wall;                    /* ptrace snapshots instead of perf */
	int kernel;                  /* kernel frames, when perf grants them */
	int launched;                /* pid is a child held before its exec: sampling starts at the exec */
	volatile sig_atomic_t *stop; /* set: the run ends early (may be NULL) */
	/* called after each read of the ring buffers or --wall tick */
	void (*progress)(void *arg, const struct xp_cpu_stats *st, int64_t now);
	void *arg;
	struct xp_target_space *space; /* optional: the modules of the first program (kept) */
};

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
	int64_t start_ns, end_ns, start_real_ns;
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
/* One stack of a flame graph: frame names root first, and its count. */
struct xp_cpu_stack {
	char **frames;
	size_t nframes;
	uint64_t count;
};
int xp_cpu_stacks(struct xp_cpu *c, struct xp_cpu_stack **out, size_t *n);
void xp_cpu_stacks_free(struct xp_cpu_stack *v, size_t n);
void xp_cpu_close(struct xp_cpu *c);

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
/* The user goroutines as runtime/pprof's goroutine profile with debug=1. */
int xp_go_print_goroutine_counts(struct xp_go_target *gt, const struct xp_goroutines *gs, FILE *f);
/* Totals of a read profile, scaled as in it: objects and bytes in use,
 * contentions. */
void xp_go_profile_totals(const struct xp_go_heap *h, int64_t *inuse, int64_t *inuse_bytes, int64_t *contentions);

#endif
