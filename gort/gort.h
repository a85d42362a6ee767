/* gort/ — a running Go program's runtime, read from outside: its
 * goroutines (runtime.allgs) and its heap-profile buckets
 * (runtime.mbuckets), with what Go's own traceback and runtime/pprof make
 * of them.
 *
 * Structure layouts come from the binary's DWARF; a binary without DWARF
 * gets the layouts of the Go versions listed in xp_go_known_versions.
 * Runtime variables come from the symbol table; a binary stripped of it
 * (-s) has its goroutine list found by a checked scan of its .bss.
 *
 * Everything read from the target is hostile: every count is capped, every
 * pointer checked, every read may fail.  Library code: 0 or -errno, no
 * printing.
 */
#ifndef XPROF_GORT_GORT_H
#define XPROF_GORT_GORT_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "attach/attach.h"
#include "symbolize/symbolize.h"

#define XP_GO_MAX_GOROUTINES 1000000
#define XP_GO_STACK_COPY_MAX (256 * 1024)   /* bytes of one goroutine's stack */
#define XP_GO_COPY_TOTAL_MAX (1ULL << 30)   /* bytes of goroutine stacks per dump */
#define XP_GO_MAX_FRAMES 100                /* Go's own traceback limit */
#define XP_GO_MAX_LABELS 64
#define XP_GO_MAX_BUCKETS 10000000

struct xp_go;

/* Which Go versions are read without DWARF. */
extern const char *const xp_go_known_versions;

/* Opens the Go runtime of a process whose Go binary space maps (see
 * xp_space_go).  -ENOENT: not a Go program; -ENOTSUP: a Go program xprof
 * cannot read (why says which and why, one line). */
int xp_go_open(struct xp_space *space, struct xp_go **out, char *why, size_t whylen);
void xp_go_close(struct xp_go *go);
const char *xp_go_version(const struct xp_go *go);
/* "DWARF" or "known go1.19 layout": where the layouts came from */
const char *xp_go_layout_source(const struct xp_go *go);

/* ---- goroutines ------------------------------------------------------- */

struct xp_goroutine {
	uint64_t g;                 /* its runtime.g */
	int64_t goid;
	uint32_t status;            /* with the scan bit */
	uint8_t waitreason;
	int64_t waitsince;          /* nanotime, 0 when unset */
	uint64_t m, lockedm;
	pid_t tid;                  /* the thread running it, 0 when none */
	uint64_t sched_pc, sched_sp, sched_bp, syscall_pc, syscall_sp;
	uint64_t gopc, startpc;
	uint64_t stack_lo, stack_hi;
	int system;                 /* a runtime goroutine Go's dump leaves out */
	/* where its traceback starts: saved state, or a thread's registers
	 * (trap: the pc was interrupted, not a return address) */
	uint64_t pc, sp;
	int trap;
	struct xp_region stack;     /* the copy of [sp, stack_hi), capped */
	size_t nlabels;
	char **label_key, **label_value; /* nlabels each */
};

struct xp_goroutines {
	struct xp_go *go;
	struct xp_mem *mem;         /* reads the target; NULL: the stopped process */
	struct xp_goroutine *v;
	size_t n, alloc;
	int64_t now;                /* the target's nanotime at the stop */
	uint64_t copied;            /* bytes of stacks copied */
	int fing_running;           /* the finalizer goroutine runs user code */
	size_t truncated;           /* stacks longer than XP_GO_STACK_COPY_MAX */
	char problem[160];          /* why reading stopped early, or "" */
};

/* An xp_while_stopped callback (arg: struct xp_goroutines with go set):
 * reads every goroutine and copies its stack. */
int xp_go_read_goroutines(struct xp_snapshot *s, void *arg);
/* After the release: what the stop had no time for (which goroutines are
 * the runtime's own).  Call before printing. */
void xp_goroutines_finish(struct xp_goroutines *gs);
void xp_goroutines_free(struct xp_goroutines *gs);

/* One physical frame of a goroutine's traceback. */
struct xp_go_frame {
	uint64_t pc, sp, fp;  /* run-time addresses */
	int is_call;          /* pc is a return address */
};

/* Walks g's stack (from its copy) as Go's traceback does; at most max
 * frames.  Returns the count; *complete when it ended at the top frame. */
size_t xp_go_traceback(struct xp_go *go, const struct xp_goroutine *g, struct xp_go_frame *frames, size_t max,
		       int *complete);

/* Prints g as Go's runtime.Stack(buf, true) does for this Go version:
 * header, frames (runtime frames hidden, inline frames, arguments), the
 * "created by" line.  Returns 1 when its traceback was complete. */
int xp_go_print(struct xp_go *go, const struct xp_goroutines *gs, const struct xp_goroutine *g, FILE *f);
/* The header's status text ("chan receive", "running", ...). */
const char *xp_go_status(struct xp_go *go, const struct xp_goroutine *g);

/* ---- heap, block and mutex profiles ---------------------------------------- */

enum xp_go_profile { XP_GO_HEAP, XP_GO_BLOCK, XP_GO_MUTEX };

struct xp_go_bucket {
	uint64_t addr;         /* the bucket in the target: the runtime never frees
				* one, so it names the same stack (and size) in
				* every read */
	uint64_t *stk;         /* return pcs, as runtime.callers gives them */
	size_t nstk;
	int64_t allocs, frees, alloc_bytes, free_bytes;   /* heap */
	int64_t count, cycles;                            /* block, mutex */
};

struct xp_go_heap {
	struct xp_go *go;
	struct xp_mem *mem;    /* reads the target; NULL: the stopped process */
	enum xp_go_profile kind;
	int64_t rate;          /* MemProfileRate; block: blockprofilerate (CPU
				* ticks); mutex: mutexprofilerate (1 in rate) */
	int64_t ticks_per_second; /* block, mutex: the runtime's, 0 when unset */
	struct xp_go_bucket *v;
	size_t n;
	char problem[160];
};

/* -ENOTSUP with why when the binary lacks what the profile needs. */
int xp_go_heap_check(struct xp_go *go, enum xp_go_profile kind, char *why, size_t whylen);
/* The profile's rate (MemProfileRate, the block rate, the mutex fraction)
 * read from the running process without stopping it: 0, or -ENOENT when
 * its address is unknown, or -errno. */
int xp_go_profile_rate(struct xp_go *go, enum xp_go_profile kind, pid_t pid, int64_t *rate);
/* An xp_while_stopped callback (arg: struct xp_go_heap with go and kind
 * set): reads the profile's rate and buckets.  The heap profile is
 * published as runtime.MemProfile would publish it (active plus the cycle
 * it would flush); block and mutex records are read as they are. */
int xp_go_read_heap(struct xp_snapshot *s, void *arg);
void xp_go_heap_free(struct xp_go_heap *h);

/* The innermost function at a return pc (pc - 1), as runtime.FuncForPC
 * names it: for the heap profile's stacks, which hold inline frames as
 * pcs of their own.  NULL when pc is not Go code.  entry (when not NULL):
 * the physical function's entry; inlined (when not NULL): 1 when the
 * function named is inlined there. */
const char *xp_go_funcname(struct xp_go *go, uint64_t pc, const char **file, int *line, uint64_t *entry,
			   int *inlined);

#endif
