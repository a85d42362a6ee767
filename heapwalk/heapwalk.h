/* heapwalk/ — the blocks a process's heap holds right now, without
 * allocator hooks: glibc malloc's arenas walked from outside, each in-use
 * block typed (C++ vtable, else a size class) and traced back to what holds
 * it, down to a root (a global, a stack, TLS, other anonymous memory) or to
 * nothing: a leak.
 *
 * Everything here reads copies made while the process was stopped, of the
 * pages it has resident only and never of shared memory; data from the
 * target is checked (every pointer against the regions, every walk
 * bounded, the totals against glibc's own counters).  Library code: 0 or
 * -errno, no printing.
 */
#ifndef XPROF_HEAPWALK_HEAPWALK_H
#define XPROF_HEAPWALK_HEAPWALK_H

#include <stddef.h>
#include <stdint.h>

#include "attach/attach.h"
#include "symbolize/symbolize.h"

#define XP_HEAP_MAX_CHUNKS 50000000ULL   /* per walk: a heap this big is refused */
#define XP_HEAP_MAX_COPY (8ULL << 30)     /* bytes copied from the target in one walk */
/* What a walk holds, per byte copied: the copies, the pool's slack (1/8),
 * then blocks, sets and stories (measured: 346 MB peak for 211 MB copied),
 * plus a fixed part; a walk must fit in all but a tenth of what is free. */
#define XP_HEAP_NEED(copy) ((copy) + (copy) / 8 + (copy) / 2 + (32ULL << 20))
#define XP_HEAP_MAX_ARENAS 4096
#define XP_HEAP_MAX_LIST 100000           /* entries of one free list */
#define XP_HEAP_PATH_MAX 8                /* frames of a block's story */

#define XP_BLOCK_ARENA_MMAP 0xffffffffu

struct xp_block {
	uint64_t addr;       /* the user pointer (chunk + 16) */
	uint64_t size;       /* usable size, as malloc_usable_size reports */
	uint32_t arena;      /* 0 main, 1.. thread arenas, XP_BLOCK_ARENA_MMAP */
	int64_t parent;      /* block that first reached it; -1 a root; -2 unreachable */
	int32_t root;        /* the root, when parent == -1 */
	const char *type;    /* demangled class from the vtable, or NULL */
	const char *name;    /* its type, else its size class "[malloc 48]": interned */
};

/* A root: where a pointer into the heap was found outside it. */
struct xp_heap_root {
	char *name; /* "[global] NAME", "[stack] FUNCTION", "[tls]", "[anon rw 0x...]" */
};

/* A copy of a range of target memory.  Only pages the target has resident
 * (or swapped) are read: a heap's copy has zeros where its pages were never
 * touched, and other memory is copied as one copy per resident run. */
struct xp_heap_copy {
	uint64_t addr;
	size_t len;
	uint8_t *data;
	int pooled;           /* data is in the pre-faulted pool, not malloc'd */
	int kind;             /* XP_COPY_HEAP, XP_COPY_GLOBAL, XP_COPY_ANON */
	int anon;             /* in an anonymous mapping: mmapped chunks may lie in it */
	uint64_t map_start, map_end; /* the mapping it lies in (roots) */
};

/* HEAP: an arena's heap, walked chunk by chunk.  GLOBAL: a module's .data
 * or .bss.  ANON: other private writable memory (pymalloc arenas, pools,
 * mmapped chunks found in it after the release). */
enum { XP_COPY_HEAP, XP_COPY_GLOBAL, XP_COPY_ANON };

/* Thread-local storage of one thread: its static TLS blocks and its TCB. */
struct xp_heap_range {
	uint64_t lo, hi;
};

struct xp_heap {
	pid_t pid;
	struct xp_block *blocks;  /* sorted by addr */
	size_t nblocks, blocks_alloc;
	struct xp_heap_copy *copies; /* sorted by addr once the stop is over */
	size_t ncopies, copies_alloc;
	int copies_sorted;
	struct xp_heap_root *roots;
	size_t nroots, roots_alloc;
	/* totals */
	size_t narenas;
	uint64_t inuse_bytes, free_bytes, free_chunks, mmapped_chunks;
	uint64_t unreachable_blocks, unreachable_bytes;
	uint64_t copied_bytes;
	uint64_t libc_internal_bytes; /* the tcache structs: malloc's own, left out */
	/* a problem met while walking: the walk stopped there (partial); the
	 * first one is kept, every one is counted */
	char problem[256];
	size_t nproblems;
	/* glibc's own counters, read in the stop, beside what the walk found */
	int have_counts;
	uint64_t glibc_n_mmaps, glibc_mmapped_mem, glibc_system_mem;
	uint64_t mmapped_bytes;   /* the mmapped chunks found: their mapped size */
	uint64_t walked_mem;      /* arena memory the walk tiled with chunks */
	uint64_t arena_system_mem[XP_HEAP_MAX_ARENAS], arena_walked[XP_HEAP_MAX_ARENAS];
	uint8_t read_damaged[XP_HEAP_MAX_ARENAS]; /* arenas the stop found damaged */
	/* memory left alone: shared mappings (never read), and pages of private
	 * writable memory the target never touched */
	uint64_t shared_skipped, untouched_skipped;
	struct xp_heap_range *tls;
	size_t ntls;
	struct xp_heap_range *excluded; /* heaps and live stacks: not roots */
	size_t nexcluded, excluded_alloc;
	struct xp_space *space;
	/* malloc's own state in libc's .data (main_arena, mp_): it points at
	 * chunk headers, inside their neighbours, so it is no root */
	uint64_t skip[2][2];
	/* copies go into memory allocated and touched before the stop: page
	 * faults on fresh buffers were most of the pause */
	uint8_t *pool;
	size_t pool_len, pool_used;
	int dry;              /* sizing run: count what would be copied */
	uint64_t planned;
	/* xp_heap_prepare's estimate: memory the walk needs, and what there is */
	uint64_t need_bytes, avail_bytes;
	/* what the stop recorded for the walk after the release */
	struct xp_heap_plan {
		uint64_t copy;        /* the address of its copy */
		uint64_t start, end, top;
		uint64_t base, limit; /* the whole heap: [base, limit) is system_mem's share */
		uint32_t arena;
	} *plan;
	size_t nplan, plan_alloc;
	uint64_t arena_addrs[XP_HEAP_MAX_ARENAS];
	uint64_t *tcaches;    /* each thread's tcache_perthread_struct */
	size_t ntcaches;
	/* interned size-class names, by usable size */
	struct xp_heap_size_name {
		uint64_t size;
		char *name;
	} *size_names;
	size_t nsize_names, size_names_cap;
};

/* Why a process's heap cannot be walked, for a clear message. */
enum xp_heap_refusal {
	XP_HEAP_OK = 0,
	XP_HEAP_NO_GLIBC,      /* no libc.so.6 mapped: static binary or another libc */
	XP_HEAP_OTHER_MALLOC,  /* jemalloc, tcmalloc or mimalloc is mapped */
	XP_HEAP_NO_DEBUGINFO,  /* libc's debug info (main_arena, mp_) not found */
};

/* Checks the allocator before stopping anything; *what names what was
 * found (a library path) for the message. */
enum xp_heap_refusal xp_heap_check(struct xp_space *space, const struct xp_maps *maps,
				   const char **what);

/* Before stopping: walks malloc's metadata live (no chunk data) to size
 * the copies, and allocates and pre-faults a pool for them.  -ENOMEM when
 * the walk would need more memory than is available (need_bytes and
 * avail_bytes say how much): nothing has been stopped. */
int xp_heap_prepare(struct xp_heap *h, pid_t pid, const struct xp_maps *maps);

/* Bytes of memory xprof may use: MemAvailable, or less when its memory
 * cgroup has a limit; UINT64_MAX when unknown. */
uint64_t xp_heap_memory_available(void);

/* Copies the heap while every thread of s is stopped (an xp_while_stopped
 * callback: arg is the struct xp_heap, with space and pid set): malloc's
 * metadata and glibc's counters are read, the arenas' heaps and every
 * other private writable mapping (roots, mmapped chunks) copied in bulk,
 * resident pages only; the copies are left sorted by address. */
int xp_glibc_heap_read(struct xp_snapshot *s, void *arg);

/* After the release: the free lists, the chunks and the mmapped chunks,
 * walked in the copies only; the blocks sorted; what was found checked
 * against glibc's counters.  0, or -ENOMEM (a corrupt heap, or a total
 * that differs from glibc's, is a partial walk: h->problem says the first
 * problem, h->nproblems counts them). */
int xp_glibc_heap_walk(struct xp_heap *h);

/* After the process is released: reachability from roots, types, stories. */
int xp_heap_analyze(struct xp_heap *h, const struct xp_snapshot *s);

/* A block's story, leaf first: its type, the types that hold it (runs of
 * one type folded), its root.  Writes at most XP_HEAP_PATH_MAX names into
 * names.  Every name is interned (valid while h lives): two stories are the
 * same exactly when their name pointers are. */
size_t xp_heap_story(const struct xp_heap *h, size_t block, const char **names);

void xp_heap_free(struct xp_heap *h);

#endif
