/* glibc 2.36 malloc, walked from outside while the process is stopped.
 *
 * A chunk is in use when the next chunk's PREV_INUSE bit says so and it is
 * in no fastbin and no thread's tcache (those keep the bit set).  Arenas:
 * main_arena (the brk heap from mp_.sbrk_base to top), the thread arenas of
 * its next ring (their heaps found from top through heap_info.prev), and
 * mmapped chunks found anywhere in anonymous private memory.  Layouts:
 * ../shared/FACTS.md sec. 3.  Every region is copied in bulk, only the
 * pages the target has resident, never a shared mapping; every list and
 * walk is bounded; glibc's own counters (mp_.n_mmaps, mp_.mmapped_mem,
 * each arena's system_mem) check what the walk found.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/uio.h>
#include <unistd.h>

#include "heapwalk/heapwalk.h"

/* malloc_state, malloc_par, heap_info, tcache (x86-64, glibc 2.36) */
#define ARENA_SIZE 2200
#define ARENA_FASTBINS 16
#define ARENA_TOP 96
#define ARENA_NEXT 2160
#define ARENA_SYSTEM_MEM 2184
#define ARENA_INITIAL_TOP 96 /* an unused arena's top: its own unsorted bin */
#define NFASTBINS 10
#define MP_SIZE 136
#define MP_N_MMAPS 60
#define MP_MMAPPED_MEM 80
#define MP_SBRK_BASE 96
#define HEAP_MAX (64ULL << 20) /* 2 * DEFAULT_MMAP_THRESHOLD_MAX */
#define HEAP_INFO_SIZE 48
#define TCACHE_SIZE 640
#define TCACHE_BINS 64
#define TCACHE_ENTRIES 128
#define CHUNK_HDR 16
#define MINSIZE 32
#define PREV_INUSE 1ULL
#define IS_MMAPPED 2ULL
#define SIZE_BITS 7ULL
#define PAGE 4096ULL
#define FENCE_ROOM 48 /* a heap's fenceposts lie in its last 48 bytes */
#define PM_PRESENT (1ULL << 63)
#define PM_SWAPPED (1ULL << 62)
#define PM_BATCH 8192  /* pagemap entries read at once: 32 MiB of memory */
#define IOV_BATCH 1024 /* UIO_MAXIOV */

struct walk {
	struct xp_heap *h;
	pid_t pid;
	const struct xp_maps *maps; /* the target's, for the read phase */
	int pagemap;                /* /proc/PID/pagemap, or -1: every page counts as resident */
	/* reads gathered into one process_vm_readv */
	struct iovec l[IOV_BATCH], r[IOV_BATCH];
	size_t niov;
	int read_failed;
	uint64_t pm[PM_BATCH];
	uint8_t damaged[XP_HEAP_MAX_ARENAS]; /* arenas whose walk said a problem */
	/* chunks in fastbins and tcaches, and the tcache structs */
	uint64_t *set;
	size_t nset, setcap;
};

static void problem(struct walk *w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void problem(struct walk *w, const char *fmt, ...)
{
	va_list ap;

	w->h->nproblems++;
	if (w->h->problem[0])
		return; /* the first one says the most */
	va_start(ap, fmt);
	vsnprintf(w->h->problem, sizeof(w->h->problem), fmt, ap);
	va_end(ap);
}

/* ---- reading ------------------------------------------------------------ */

static const struct xp_heap_copy *find_copy(const struct xp_heap *h, uint64_t addr, size_t len)
{
	size_t i, lo = 0, hi = h->ncopies;

	if (h->copies_sorted) {
		while (hi - lo > 1) {
			size_t mid = lo + (hi - lo) / 2;
			if (h->copies[mid].addr <= addr)
				lo = mid;
			else
				hi = mid;
		}
		hi = lo < h->ncopies ? lo + 1 : lo;
	}
	for (i = lo; i < hi; i++) {
		const struct xp_heap_copy *c = &h->copies[i];
		if (addr >= c->addr && addr - c->addr <= c->len && len <= c->len - (addr - c->addr))
			return c;
	}
	return NULL;
}

/* Whether the target has the pages of [addr, addr + len) resident or
 * swapped (a read of up to two pages; longer ones are not asked). */
static int resident(const struct walk *w, uint64_t addr, size_t len)
{
	uint64_t pm[2], first = addr / PAGE;
	size_t n = (size_t)((addr + len - 1) / PAGE - first + 1);

	if (w->pagemap < 0 || !len || n > 2)
		return 1;
	if (pread(w->pagemap, pm, n * 8, (off_t)(first * 8)) != (ssize_t)(n * 8))
		return 1; /* cannot tell: a read that fails says so itself */
	return (pm[0] & (PM_PRESENT | PM_SWAPPED)) && (n == 1 || (pm[1] & (PM_PRESENT | PM_SWAPPED)));
}

/* From a copy when there is one, else from the stopped process where its
 * page map says the pages are there (malloc's metadata always is; a wild
 * pointer in a corrupt heap must not fault a page in); after the release
 * (pid 0) from the copies only: the process runs again. */
static int rd(struct walk *w, uint64_t addr, void *buf, size_t len)
{
	const struct xp_heap_copy *c = find_copy(w->h, addr, len);
	struct iovec l = { buf, len }, r = { (void *)(uintptr_t)addr, len };

	if (c) {
		memcpy(buf, c->data + (addr - c->addr), len);
		return 0;
	}
	if (!w->pid || !resident(w, addr, len))
		return -EFAULT;
	return process_vm_readv(w->pid, &l, 1, &r, 1, 0) == (ssize_t)len ? 0 : -EFAULT;
}

static int rd64(struct walk *w, uint64_t addr, uint64_t *v)
{
	return rd(w, addr, v, sizeof(*v));
}

/* Where the readable memory from addr on ends: its mapping and the
 * readable mappings right after it; addr itself when it is in none. */
static uint64_t readable_end(const struct xp_maps *maps, uint64_t addr)
{
	const struct xp_map *m = xp_maps_find(maps, addr);
	uint64_t end;

	if (!m || m->perms[0] != 'r')
		return addr;
	for (end = m->end, m++; m < maps->v + maps->n && m->start == end && m->perms[0] == 'r'; m++)
		end = m->end;
	return end;
}

/* ---- resident pages ------------------------------------------------------ */

/* Sends the gathered reads; a read that falls short leaves zeros. */
static void flush_reads(struct walk *w)
{
	size_t done = 0;

	while (done < w->niov) {
		ssize_t n = process_vm_readv(w->pid, w->l + done, w->niov - done, w->r + done, w->niov - done, 0);
		size_t k;
		if (n <= 0) {
			w->read_failed = 1;
			break;
		}
		/* a short read ends inside the first range that failed: skip it */
		for (k = done; k < w->niov && (size_t)n >= w->l[k].iov_len; k++)
			n -= (ssize_t)w->l[k].iov_len;
		if (k < w->niov)
			w->read_failed = 1;
		done = k + (k < w->niov);
	}
	w->niov = 0;
}

static void gather_read(struct walk *w, uint64_t addr, uint8_t *dst, size_t len)
{
	if (w->niov == IOV_BATCH)
		flush_reads(w);
	w->l[w->niov].iov_base = dst;
	w->l[w->niov].iov_len = len;
	w->r[w->niov].iov_base = (void *)(uintptr_t)addr;
	w->r[w->niov].iov_len = len;
	w->niov++;
}

typedef int (*run_fn)(struct walk *w, uint64_t addr, uint64_t len, void *arg);

/* Calls fn for each run of [addr, addr + len) whose pages the target has
 * present or swapped out (/proc/PID/pagemap): a page it never touched
 * holds nothing, and reading it would fault it in.  Without pagemap, the
 * whole range is one run. */
static int resident_runs(struct walk *w, uint64_t addr, uint64_t len, run_fn fn, void *arg)
{
	uint64_t *pm = w->pm, end = addr + len, p = addr & ~(PAGE - 1), run = 0;
	int in_run = 0, err;

	if (w->pagemap < 0)
		return len ? fn(w, addr, len, arg) : 0;
	while (p < end) {
		uint64_t pages = (end - p + PAGE - 1) / PAGE, i;
		ssize_t got;
		if (pages > PM_BATCH)
			pages = PM_BATCH;
		got = pread(w->pagemap, pm, pages * 8, (off_t)(p / PAGE * 8));
		if (got < 8) { /* the rest as if resident: read, never skipped */
			if (!in_run)
				run = p;
			in_run = 1;
			break;
		}
		pages = (uint64_t)got / 8;
		for (i = 0; i < pages; i++, p += PAGE) {
			int res = (pm[i] & (PM_PRESENT | PM_SWAPPED)) != 0;
			if (res && !in_run) {
				run = p;
				in_run = 1;
			} else if (!res && in_run) {
				in_run = 0;
				if ((err = fn(w, run > addr ? run : addr, p - (run > addr ? run : addr), arg)) < 0)
					return err;
			}
			if (!res && !w->h->dry)
				w->h->untouched_skipped += PAGE;
		}
	}
	if (in_run) {
		uint64_t from = run > addr ? run : addr;
		return fn(w, from, end - from, arg);
	}
	return 0;
}

static struct xp_heap_copy *new_copy(struct walk *w, uint64_t addr, size_t len, int kind)
{
	struct xp_heap *h = w->h;
	struct xp_heap_copy *c;

	if (h->ncopies == h->copies_alloc) {
		size_t na = h->copies_alloc ? h->copies_alloc * 2 : 64;
		struct xp_heap_copy *v = realloc(h->copies, na * sizeof(*v));
		if (!v)
			return NULL;
		h->copies = v;
		h->copies_alloc = na;
	}
	c = &h->copies[h->ncopies];
	memset(c, 0, sizeof(*c));
	/* zeros where nothing is read: the pool is fresh, calloc too */
	if (h->pool && h->pool_len - h->pool_used >= len) {
		c->data = h->pool + h->pool_used;
		c->pooled = 1;
		h->pool_used += (len + 15) & ~(size_t)15;
	} else {
		c->data = calloc(1, len);
	}
	if (!c->data)
		return NULL;
	c->addr = addr;
	c->len = len;
	c->kind = kind;
	h->ncopies++;
	return c;
}

static int read_run(struct walk *w, uint64_t addr, uint64_t len, void *arg)
{
	struct xp_heap_copy *c = arg;

	gather_read(w, addr, c->data + (addr - c->addr), (size_t)len);
	w->h->copied_bytes += len;
	return 0;
}

static int count_run(struct walk *w, uint64_t addr, uint64_t len, void *arg)
{
	(void)addr;
	(void)arg;
	w->h->planned += len;
	return 0;
}

/* Copies [addr, addr + len) of the stopped process in one piece (its
 * resident pages; zeros elsewhere), or as much of it as is mapped: a
 * heap's extent comes from the target's metadata, and a claimed 8 GiB heap
 * of which one page exists must not cost 8 GiB.  NULL (said in problem)
 * when it cannot. */
static struct xp_heap_copy *copy_region(struct walk *w, uint64_t addr, size_t len, int kind)
{
	struct xp_heap *h = w->h;
	struct xp_heap_copy *c;

	if (w->maps && len) {
		uint64_t end = readable_end(w->maps, addr);
		if (end == addr) {
			problem(w, "cannot copy 0x%llx: in no readable mapping", (unsigned long long)addr);
			return NULL;
		}
		if (len > end - addr)
			len = (size_t)(end - addr);
	}
	if (len == 0 || h->copied_bytes + h->planned + len > XP_HEAP_MAX_COPY) {
		if (len)
			problem(w, "more than %llu GiB of heap to copy", XP_HEAP_MAX_COPY >> 30);
		return NULL;
	}
	if (h->dry) {
		h->planned += len;
		return NULL;
	}
	c = new_copy(w, addr, len, kind);
	if (!c) {
		problem(w, "cannot copy the heap at 0x%llx (%.1f MiB): out of memory", (unsigned long long)addr,
			(double)len / 1048576.0);
		return NULL;
	}
	w->read_failed = 0;
	resident_runs(w, addr, len, read_run, c);
	flush_reads(w);
	if (w->read_failed)
		problem(w, "cannot read all of the heap at 0x%llx: the process changed its mappings?",
			(unsigned long long)addr);
	return c;
}

/* ---- the set of chunks that are free though they look in use ----------- */

static uint64_t mix(uint64_t x)
{
	x ^= x >> 31;
	x *= 0x9e3779b97f4a7c15ULL;
	return x ^ (x >> 29);
}

/* 0 when added, 1 when chunk was in the set already, -ENOMEM */
static int set_add(struct walk *w, uint64_t chunk)
{
	size_t i;

	if ((w->nset + 1) * 2 > w->setcap) {
		size_t nc = w->setcap ? w->setcap * 2 : 1024;
		uint64_t *ns = calloc(nc, sizeof(*ns));
		if (!ns)
			return -ENOMEM;
		for (i = 0; i < w->setcap; i++) {
			size_t k;
			if (!w->set[i])
				continue;
			for (k = mix(w->set[i]) & (nc - 1); ns[k]; k = (k + 1) & (nc - 1))
				;
			ns[k] = w->set[i];
		}
		free(w->set);
		w->set = ns;
		w->setcap = nc;
	}
	for (i = mix(chunk) & (w->setcap - 1); w->set[i]; i = (i + 1) & (w->setcap - 1))
		if (w->set[i] == chunk)
			return 1;
	w->set[i] = chunk;
	w->nset++;
	return 0;
}

static int set_has(const struct walk *w, uint64_t chunk)
{
	size_t i;

	if (!w->setcap)
		return 0;
	for (i = mix(chunk) & (w->setcap - 1); w->set[i]; i = (i + 1) & (w->setcap - 1))
		if (w->set[i] == chunk)
			return 1;
	return 0;
}

/* ---- free lists --------------------------------------------------------- */

/* Safe-linking (glibc >= 2.32): a stored next pointer is the real one
 * XOR the address of the field holding it, shifted right by 12. */
static uint64_t reveal(uint64_t field_addr, uint64_t stored)
{
	return stored ^ (field_addr >> 12);
}

static void walk_fastbins(struct walk *w, uint64_t arena)
{
	int i;

	for (i = 0; i < NFASTBINS; i++) {
		uint64_t c, next;
		size_t n = 0;
		if (rd64(w, arena + ARENA_FASTBINS + 8 * (uint64_t)i, &c) < 0)
			return;
		for (; c && n < XP_HEAP_MAX_LIST; n++) {
			/* a chunk met again is a loop (or in two lists): corrupt */
			if ((c & 15) || set_add(w, c) != 0 || rd64(w, c + 16, &next) < 0) {
				problem(w, "fastbin %d of arena 0x%llx is corrupt at 0x%llx", i,
					(unsigned long long)arena, (unsigned long long)c);
				break;
			}
			c = reveal(c + 16, next);
		}
	}
}

/* The offset of libc's static TLS block from the thread pointer (the
 * l_tls_offset of libc's link_map, found from ld.so's _r_debug), and the
 * largest of every module's: the static TLS blocks lie in [tp - most, tp). */
static int tls_offsets(struct walk *w, uint64_t *libc_off, uint64_t *most)
{
	struct xp_space *sp = w->h->space;
	uint64_t rdebug, desc_addr, libc_base, ldbase, map, laddr, off;
	uint32_t desc[3];
	int tls, found = 0;
	size_t n;

	if (xp_space_lookup(sp, "ld-linux", "_r_debug", &rdebug, &tls, &ldbase) < 0 ||
	    xp_space_lookup(sp, "libc.so", "_thread_db_link_map_l_tls_offset", &desc_addr, &tls,
			    &libc_base) < 0)
		return -ENOENT;
	/* the descriptor: bits, count, offset of the field in struct link_map */
	if (rd(w, desc_addr, desc, sizeof(desc)) < 0 || desc[0] != 64 || desc[2] > 4096)
		return -EINVAL;
	if (rd64(w, rdebug + 8, &map) < 0)
		return -EFAULT;
	*most = 0;
	for (n = 0; map && n < 4096; n++) {
		if (rd64(w, map, &laddr) < 0 || rd64(w, map + desc[2], &off) < 0)
			return -EFAULT;
		/* 0: no TLS; -1 and -2: dynamic TLS, not in the static block */
		if (off < (1ULL << 24) && off > *most)
			*most = off;
		if (laddr == libc_base) {
			*libc_off = off;
			found = 1;
		}
		if (rd64(w, map + 24, &map) < 0)
			return -EFAULT;
	}
	return found ? 0 : -ENOENT;
}

static int range_cmp(const void *a, const void *b)
{
	const struct xp_heap_range *x = a, *y = b;

	return x->lo < y->lo ? -1 : x->lo > y->lo;
}

/* In the stop: each thread's tcache pointer, from its TLS, and where its
 * thread-local storage lies (its static TLS blocks and its TCB, struct
 * pthread), for naming the roots found there. */
static void find_tcaches(struct walk *w, struct xp_snapshot *s)
{
	uint64_t tls_off = 0, most = 0, var, libc_base, tc, sz_addr;
	uint32_t tcb_size = 0;
	int tls;
	size_t t;

	if (xp_space_lookup(w->h->space, "libc.so", "tcache", &var, &tls, &libc_base) < 0 || !tls ||
	    tls_offsets(w, &tls_off, &most) < 0) {
		problem(w, "cannot find the threads' tcaches (libc's link_map): their free chunks count as in use");
		return;
	}
	if (xp_space_lookup(w->h->space, "libc.so", "_thread_db_sizeof_pthread", &sz_addr, &tls, &libc_base) == 0)
		rd(w, sz_addr, &tcb_size, sizeof(tcb_size));
	if (tcb_size > 65536)
		tcb_size = 0;
	w->h->tcaches = calloc(s->nthreads ? s->nthreads : 1, sizeof(*w->h->tcaches));
	w->h->tls = calloc(s->nthreads ? s->nthreads : 1, sizeof(*w->h->tls));
	if (!w->h->tcaches || !w->h->tls)
		return;
	for (t = 0; t < s->nthreads; t++) {
		const struct xp_thread *th = &s->threads[t];
		if (!th->stopped || th->exited || !th->regs.fs_base)
			continue;
		if (th->regs.fs_base > most) {
			w->h->tls[w->h->ntls].lo = th->regs.fs_base - most;
			w->h->tls[w->h->ntls++].hi = th->regs.fs_base + tcb_size;
		}
		if (rd64(w, th->regs.fs_base - tls_off + var, &tc) == 0 && tc)
			w->h->tcaches[w->h->ntcaches++] = tc; /* 0: it never called malloc */
	}
	if (w->h->ntls)
		qsort(w->h->tls, w->h->ntls, sizeof(*w->h->tls), range_cmp);
}

/* After the release, in the copies: every tcache's free chunks. */
static void walk_tcaches(struct walk *w)
{
	size_t t;

	for (t = 0; t < w->h->ntcaches; t++) {
		uint16_t counts[TCACHE_BINS];
		uint64_t entries[TCACHE_BINS], tc = w->h->tcaches[t];
		int i;

		if (rd(w, tc, counts, sizeof(counts)) < 0 || rd(w, tc + TCACHE_ENTRIES, entries, sizeof(entries)) < 0) {
			problem(w, "a tcache is unreadable at 0x%llx", (unsigned long long)tc);
			continue;
		}
		set_add(w, tc - CHUNK_HDR); /* the tcache itself is malloc's own */
		w->h->libc_internal_bytes += TCACHE_SIZE + 16;
		for (i = 0; i < TCACHE_BINS; i++) {
			uint64_t e = entries[i], next;
			size_t n = 0;
			for (; e && n <= counts[i] && n < XP_HEAP_MAX_LIST; n++) {
				if ((e & 15) || set_add(w, e - CHUNK_HDR) != 0 || rd64(w, e, &next) < 0) {
					problem(w, "tcache bin %d at 0x%llx is corrupt at 0x%llx", i,
						(unsigned long long)tc, (unsigned long long)e);
					break;
				}
				e = reveal(e, next);
			}
		}
	}
}

/* ---- chunks --------------------------------------------------------------- */

static int add_block(struct walk *w, uint64_t chunk, uint64_t usable, uint32_t arena)
{
	struct xp_heap *h = w->h;
	struct xp_block *b;

	if (h->nblocks >= XP_HEAP_MAX_CHUNKS) {
		problem(w, "more than %llu blocks", XP_HEAP_MAX_CHUNKS);
		return -E2BIG;
	}
	if (h->nblocks == h->blocks_alloc) {
		size_t na = h->blocks_alloc ? h->blocks_alloc * 2 : 4096;
		struct xp_block *v = realloc(h->blocks, na * sizeof(*v));
		if (!v)
			return -ENOMEM;
		h->blocks = v;
		h->blocks_alloc = na;
	}
	b = &h->blocks[h->nblocks++];
	memset(b, 0, sizeof(*b));
	b->addr = chunk + CHUNK_HDR;
	b->size = usable;
	b->arena = arena;
	b->parent = -2;
	b->root = -1;
	h->inuse_bytes += usable;
	return 0;
}

/* Walks the chunks of one heap, read from its copy, up to the arena's top
 * or the fenceposts that end an older heap.  Every way it can end short of
 * that is said; what it tiled counts against the arena's system_mem. */
static int walk_chunks(struct walk *w, const struct xp_heap_plan *pl)
{
	const struct xp_heap_copy *c = find_copy(w->h, pl->copy, 1);
	uint64_t ch = pl->start, end = pl->end, top = pl->top, sz, next, nsz, reached = 0;
	uint32_t arena = pl->arena;
	int has_top = top >= pl->start && top < end;
	size_t n = 0;

	if (!c || pl->start < c->addr || end - c->addr > c->len)
		return -EINVAL; /* plan() made them agree */
	while (ch != top && ch + CHUNK_HDR <= end) {
		memcpy(&sz, c->data + (ch - c->addr) + 8, 8);
		sz &= ~SIZE_BITS;
		/* glibc ends an older heap of a thread arena with two fenceposts
		 * in its last 48 bytes: a header of size 16, then one of size 0 */
		if (sz == CHUNK_HDR && !has_top && pl->limit - ch <= FENCE_ROOM) {
			reached = pl->limit;
			break;
		}
		if (sz < MINSIZE || (sz & 15) || sz > end - ch || ++n > XP_HEAP_MAX_CHUNKS) {
			problem(w, "bad chunk size 0x%llx at 0x%llx (arena %u): walk stopped there",
				(unsigned long long)sz, (unsigned long long)ch, arena);
			goto damaged;
		}
		next = ch + sz;
		if (next + CHUNK_HDR <= end)
			memcpy(&nsz, c->data + (next - c->addr) + 8, 8);
		else
			nsz = PREV_INUSE; /* the last chunk of a heap without fencepost */
		if ((nsz & ~SIZE_BITS) == 0) {
			/* the fencepost of an older heap whose top was too small to
			 * free: the chunk before it (up to 63 bytes, marked in use)
			 * is no block */
			if (!has_top && pl->limit - next <= FENCE_ROOM) {
				reached = pl->limit;
				break;
			}
			problem(w, "chunk at 0x%llx (arena %u) has size 0: walk stopped there",
				(unsigned long long)next, arena);
			goto damaged;
		}
		if ((nsz & PREV_INUSE) && !set_has(w, ch)) {
			int err = add_block(w, ch, sz - 8, arena);
			if (err < 0)
				return err;
		} else {
			w->h->free_bytes += sz;
			w->h->free_chunks++;
		}
		ch = next;
	}
	if (ch == top && top + CHUNK_HDR <= end) {
		memcpy(&sz, c->data + (top - c->addr) + 8, 8);
		sz &= ~SIZE_BITS;
		w->h->free_bytes += sz;
		reached = top + sz;
		/* the top chunk reaches the end of its heap */
		if (reached != pl->limit) {
			problem(w, "the top chunk 0x%llx of arena %u ends at 0x%llx, its heap at 0x%llx: the arena's "
				"top is damaged",
				(unsigned long long)top, arena, (unsigned long long)reached,
				(unsigned long long)pl->limit);
			goto damaged;
		}
	} else if (!reached) {
		problem(w, "the walk of arena %u's heap at 0x%llx ended at 0x%llx, short of %s 0x%llx",
			arena, (unsigned long long)pl->base, (unsigned long long)ch,
			has_top ? "its top chunk" : "its end", (unsigned long long)(has_top ? top : pl->limit));
		goto damaged;
	}
	w->h->arena_walked[arena] += reached - pl->base;
	return 0;
damaged:
	w->damaged[arena] = 1;
	return -EINVAL;
}

/* Records a region for the walk after the release; base and limit are the
 * heap's whole extent, the part of the arena's system_mem it accounts for. */
static int plan(struct walk *w, const struct xp_heap_copy *c, uint64_t start, uint64_t end, uint64_t top,
		uint64_t base, uint64_t limit, uint32_t arena)
{
	struct xp_heap *h = w->h;
	struct xp_heap_plan *pl;

	if (h->nplan == h->plan_alloc) {
		size_t na = h->plan_alloc ? h->plan_alloc * 2 : 64;
		struct xp_heap_plan *v = realloc(h->plan, na * sizeof(*v));
		if (!v)
			return -ENOMEM;
		h->plan = v;
		h->plan_alloc = na;
	}
	/* the copy is short when the target's memory ends before the heap it
	 * claims does: the walk reads only what was copied */
	if (end > c->addr + c->len) {
		problem(w, "the heap at 0x%llx (arena %u) is readable only up to 0x%llx: walked that far",
			(unsigned long long)c->addr, arena, (unsigned long long)(c->addr + c->len));
		w->damaged[arena] = 1;
		end = c->addr + c->len;
	}
	if (start > end)
		start = end;
	pl = &h->plan[h->nplan++];
	pl->copy = c->addr;
	pl->start = start;
	pl->end = end;
	pl->top = top;
	pl->base = base;
	pl->limit = limit;
	pl->arena = arena;
	return 0;
}

/* Memory that is no root: an arena's heap, a thread's live stack. */
static void exclude(struct xp_heap *h, uint64_t lo, uint64_t hi)
{
	if (h->nexcluded == h->excluded_alloc) {
		size_t na = h->excluded_alloc ? h->excluded_alloc * 2 : 64;
		struct xp_heap_range *v = realloc(h->excluded, na * sizeof(*v));
		if (!v)
			return; /* scanned as a root: a block may look reachable, none is lost */
		h->excluded = v;
		h->excluded_alloc = na;
	}
	h->excluded[h->nexcluded].lo = lo;
	h->excluded[h->nexcluded++].hi = hi;
}

static uint64_t align_chunk(uint64_t p)
{
	/* chunk + 16 (the user pointer) 16-aligned */
	return ((p + CHUNK_HDR + 15) & ~15ULL) - CHUNK_HDR;
}

static int walk_main_arena(struct walk *w, uint64_t main_arena, const uint8_t *arena, const uint8_t *mp)
{
	uint64_t top, base, topsz, sysmem;
	const struct xp_heap_copy *c;

	memcpy(&top, arena + ARENA_TOP, 8);
	memcpy(&sysmem, arena + ARENA_SYSTEM_MEM, 8);
	memcpy(&base, mp + MP_SBRK_BASE, 8);
	if (!base && top == main_arena + ARENA_INITIAL_TOP)
		return 0; /* nothing was ever allocated from brk */
	if (!base || top < base || top - base > XP_HEAP_MAX_COPY || sysmem > XP_HEAP_MAX_COPY ||
	    rd64(w, top + 8, &topsz) < 0) {
		problem(w, "main arena's top 0x%llx is not above sbrk_base 0x%llx", (unsigned long long)top,
			(unsigned long long)base);
		w->damaged[0] = 1;
		return -EINVAL;
	}
	topsz &= ~SIZE_BITS;
	exclude(w->h, base, top + (topsz < XP_HEAP_MAX_COPY ? topsz : 0) + CHUNK_HDR);
	c = copy_region(w, base, top + CHUNK_HDR - base, XP_COPY_HEAP);
	if (w->h->dry)
		return 0;
	if (!c) {
		w->damaged[0] = 1;
		return -EFAULT;
	}
	return plan(w, c, align_chunk(base), top + CHUNK_HDR, top, base, base + sysmem, 0);
}

static int walk_thread_arena(struct walk *w, uint64_t arena, uint32_t index)
{
	uint64_t top, heap, info[3], end, start, topsz, mark = 0;
	size_t n = 0, lap = 1, steps = 0;
	int err;

	if (rd64(w, arena + ARENA_TOP, &top) < 0 || !top) {
		problem(w, "arena %u at 0x%llx has no top chunk: its heaps are not walked", index,
			(unsigned long long)arena);
		w->damaged[index] = 1;
		return -EINVAL;
	}
	for (heap = top & ~(HEAP_MAX - 1); heap && n < 100000; n++) {
		const struct xp_heap_copy *c;
		/* a prev chain that loops (Brent's cycle detection: the heap
		 * marked comes round again) would copy its heaps until the
		 * copy limit */
		if (heap == mark) {
			problem(w, "the heaps of arena 0x%llx loop at 0x%llx", (unsigned long long)arena,
				(unsigned long long)heap);
			w->damaged[index] = 1;
			return -EINVAL;
		}
		if (++steps == lap) {
			mark = heap;
			lap *= 2;
			steps = 0;
		}
		/* heap_info: ar_ptr, prev, size */
		if (rd(w, heap, info, sizeof(info)) < 0 || info[0] != arena || info[2] > HEAP_MAX ||
		    info[2] < HEAP_INFO_SIZE) {
			problem(w, "heap 0x%llx of arena 0x%llx has a bad heap_info", (unsigned long long)heap,
				(unsigned long long)arena);
			w->damaged[index] = 1;
			return -EINVAL;
		}
		end = heap + info[2];
		exclude(w->h, heap, end);
		if (top >= heap && top < end) {
			if (rd64(w, top + 8, &topsz) < 0)
				return -EFAULT;
			end = top + CHUNK_HDR;
		}
		/* the arena's first heap holds the arena itself */
		start = arena >= heap && arena < heap + info[2] ? align_chunk(arena + ARENA_SIZE)
							   : heap + HEAP_INFO_SIZE;
		c = copy_region(w, heap, end - heap, XP_COPY_HEAP);
		if (w->h->dry) {
			heap = info[1];
			continue;
		}
		if (!c) {
			w->damaged[index] = 1;
			return -EFAULT;
		}
		err = plan(w, c, start, end, top, heap, heap + info[2], index);
		if (err < 0)
			return err;
		heap = info[1];
	}
	return 0;
}

/* Private writable memory that is not a device's (DAX, a driver's): the
 * program's own. */
static int private_memory(const struct xp_map *m)
{
	return m->perms[1] == 'w' && m->perms[3] == 'p' &&
	       (strncmp(m->path, "/dev/", 5) != 0 || strncmp(m->path, "/dev/zero", 9) == 0);
}

struct root_ctx {
	const struct xp_map *map;
	int kind;
};

static int copy_root_run(struct walk *w, uint64_t addr, uint64_t len, void *arg)
{
	const struct root_ctx *rc = arg;
	struct xp_heap_copy *c;

	if (w->h->copied_bytes + w->h->planned + len > XP_HEAP_MAX_COPY) {
		problem(w, "more than %llu GiB of heap to copy", XP_HEAP_MAX_COPY >> 30);
		return -E2BIG;
	}
	if (w->h->dry)
		return count_run(w, addr, len, NULL);
	c = new_copy(w, addr, (size_t)len, rc->kind);
	if (!c) {
		/* a block held only from here may look unreachable */
		problem(w, "cannot copy the roots at 0x%llx (%.1f MiB): out of memory", (unsigned long long)addr,
			(double)len / 1048576.0);
		return -ENOMEM;
	}
	c->map_start = rc->map->start;
	c->map_end = rc->map->end;
	c->anon = rc->map->path[0] != '/';
	return read_run(w, addr, len, c);
}

/* The roots, and where mmapped chunks may lie: every private writable
 * mapping (the modules' .data and .bss, anonymous memory: pymalloc's
 * arenas, pools, thread caches), less the arenas' heaps and the threads'
 * stacks, copied one run of resident pages at a time.  A shared mapping
 * (shared memory, /dev/shm, memfd, SysV, a device) is never read: no
 * malloc block lies in it and reading it would fault its pages in. */
static int copy_roots(struct walk *w, const struct xp_snapshot *s)
{
	struct xp_heap *h = w->h;
	const struct xp_maps *maps = &s->maps;
	size_t i, t, e = 0;
	int err = 0;

	/* a stack from its mapping's start (the dead part below SP holds
	 * stale pointers) to the end of what the stop copied of it */
	for (t = 0; t < s->nthreads; t++) {
		const struct xp_thread *th = &s->threads[t];
		const struct xp_map *m = th->stack_len ? xp_maps_find(maps, th->stack_addr) : NULL;
		if (m)
			exclude(h, m->start, th->stack_addr + th->stack_len);
	}
	if (h->nexcluded)
		qsort(h->excluded, h->nexcluded, sizeof(*h->excluded), range_cmp);
	w->read_failed = 0;
	for (i = 0; i < maps->n && err == 0; i++) {
		const struct xp_map *m = &maps->v[i];
		int bss = i > 0 && !m->path[0] && maps->v[i - 1].path[0] == '/' && maps->v[i - 1].end == m->start &&
			  maps->v[i - 1].perms[1] == 'w';
		struct root_ctx rc = { m, m->path[0] == '/' || bss ? XP_COPY_GLOBAL : XP_COPY_ANON };
		uint64_t lo = m->start;

		if (m->perms[1] != 'w')
			continue;
		if (!private_memory(m)) {
			if (!h->dry)
				h->shared_skipped += m->end - m->start;
			continue;
		}
		/* the parts of it that no heap and no stack covers */
		while (e > 0 && h->excluded[e - 1].hi > lo)
			e--;
		for (; e < h->nexcluded && h->excluded[e].lo < m->end && err == 0; e++) {
			if (h->excluded[e].hi <= lo)
				continue;
			if (h->excluded[e].lo > lo)
				err = resident_runs(w, lo, h->excluded[e].lo - lo, copy_root_run, &rc);
			if (h->excluded[e].hi > lo)
				lo = h->excluded[e].hi;
		}
		if (lo < m->end && err == 0)
			err = resident_runs(w, lo, m->end - lo, copy_root_run, &rc);
	}
	flush_reads(w);
	if (w->read_failed)
		problem(w, "cannot read all of the process's writable memory: it changed its mappings?");
	return err == -ENOMEM ? err : 0;
}

/* After the release: mmapped chunks, in the anonymous memory copied as
 * roots.  glibc maps each on its own, but the kernel merges neighbouring
 * mappings, so a chunk may start at any page of one: a header with exactly
 * IS_MMAPPED set, prev_size 0 (the chunk starts its pages), and a size of
 * whole pages that fits in the mapping.  A chunk's own pages are not
 * searched again. */
static int find_mmapped(struct walk *w)
{
	struct xp_heap *h = w->h;
	uint64_t skip_to = 0;
	size_t i;

	for (i = 0; i < h->ncopies; i++) {
		const struct xp_heap_copy *c = &h->copies[i];
		uint64_t p = (c->addr + PAGE - 1) & ~(PAGE - 1), hdr[2], sz;

		if (c->kind == XP_COPY_HEAP || !c->anon)
			continue;
		for (; p + CHUNK_HDR <= c->addr + c->len; p += PAGE) {
			if (p < skip_to) {
				p = ((skip_to + PAGE - 1) & ~(PAGE - 1)) - PAGE;
				continue;
			}
			memcpy(hdr, c->data + (p - c->addr), sizeof(hdr));
			sz = hdr[1] & ~SIZE_BITS;
			if ((hdr[1] & SIZE_BITS) != IS_MMAPPED || hdr[0] != 0 || sz < PAGE || (sz & (PAGE - 1)) ||
			    sz > c->map_end - p)
				continue;
			if (add_block(w, p, sz - CHUNK_HDR, XP_BLOCK_ARENA_MMAP) < 0)
				return -ENOMEM;
			h->mmapped_chunks++;
			h->mmapped_bytes += sz;
			skip_to = p + sz;
			p = skip_to - PAGE;
		}
	}
	return 0;
}

static int block_cmp(const void *a, const void *b)
{
	const struct xp_block *x = a, *y = b;

	return x->addr < y->addr ? -1 : x->addr > y->addr;
}

static int copy_cmp(const void *a, const void *b)
{
	const struct xp_heap_copy *x = a, *y = b;

	return x->addr < y->addr ? -1 : x->addr > y->addr;
}

/* The arenas: main_arena's next ring, each once.  A thread arena lies in
 * its first heap, right after its heap_info, whose ar_ptr points back at
 * it; a ring that leaves the arenas is said, not followed. */
static void find_arenas(struct walk *w, uint64_t main_arena)
{
	struct xp_heap *h = w->h;
	uint64_t a = main_arena, next, back;

	h->narenas = 0;
	while (h->narenas < XP_HEAP_MAX_ARENAS) {
		size_t k;
		h->arena_addrs[h->narenas++] = a;
		if (rd64(w, a + ARENA_NEXT, &next) < 0 || next == main_arena)
			break;
		if (!next || ((next - HEAP_INFO_SIZE) & (HEAP_MAX - 1)) || rd64(w, next - HEAP_INFO_SIZE, &back) < 0 ||
		    back != next) {
			problem(w, "arena %zu's next pointer 0x%llx is no arena: the arenas after it are not walked",
				h->narenas - 1, (unsigned long long)next);
			break;
		}
		for (k = 1; k < h->narenas && h->arena_addrs[k] != next; k++)
			;
		if (k < h->narenas) {
			problem(w, "the arena ring loops at 0x%llx, not through main_arena", (unsigned long long)next);
			break;
		}
		a = next;
	}
}

/* glibc's own counters: how many arenas it made, each one's system_mem,
 * and its mmapped chunks. */
static void read_counts(struct walk *w, const uint8_t *mp)
{
	struct xp_heap *h = w->h;
	uint64_t addr, base, made;
	int32_t n_mmaps;
	int tls;
	size_t i;

	memcpy(&n_mmaps, mp + MP_N_MMAPS, 4);
	memcpy(&h->glibc_mmapped_mem, mp + MP_MMAPPED_MEM, 8);
	h->glibc_n_mmaps = n_mmaps > 0 ? (uint64_t)n_mmaps : 0;
	h->glibc_system_mem = 0;
	for (i = 0; i < h->narenas; i++) {
		if (rd64(w, h->arena_addrs[i] + ARENA_SYSTEM_MEM, &h->arena_system_mem[i]) < 0)
			h->arena_system_mem[i] = 0;
		h->glibc_system_mem += h->arena_system_mem[i];
	}
	h->have_counts = 1;
	/* arenas are never freed: the ring holds every one glibc made */
	if (xp_space_lookup(h->space, "libc.so", "narenas", &addr, &tls, &base) == 0 && rd64(w, addr, &made) == 0 &&
	    made != h->narenas && h->narenas < XP_HEAP_MAX_ARENAS)
		problem(w, "glibc counts %llu arenas, the ring from main_arena holds %zu", (unsigned long long)made,
			h->narenas);
}

int xp_glibc_heap_read(struct xp_snapshot *s, void *arg)
{
	struct xp_heap *h = arg;
	struct walk *w = calloc(1, sizeof(*w));
	uint8_t arena[ARENA_SIZE], mp[MP_SIZE];
	uint64_t main_arena, mp_addr, base;
	char path[64];
	int tls, err = 0;
	uint32_t index = 1;

	if (!w)
		return -ENOMEM;
	w->h = h;
	w->pid = xp_live_thread(s->pid); /* a leader that exited has no mm */
	w->maps = &s->maps;
	snprintf(path, sizeof(path), "/proc/%d/pagemap", (int)w->pid);
	w->pagemap = open(path, O_RDONLY | O_CLOEXEC);
	if (xp_space_lookup(h->space, "libc.so", "main_arena", &main_arena, &tls, &base) < 0 ||
	    xp_space_lookup(h->space, "libc.so", "mp_", &mp_addr, &tls, &base) < 0) {
		err = -ENOENT;
		goto out;
	}
	if (rd(w, main_arena, arena, sizeof(arena)) < 0 || rd(w, mp_addr, mp, sizeof(mp)) < 0) {
		err = -EFAULT;
		goto out;
	}
	h->skip[0][0] = main_arena;
	h->skip[0][1] = main_arena + ARENA_SIZE;
	h->skip[1][0] = mp_addr;
	h->skip[1][1] = mp_addr + MP_SIZE;

	find_arenas(w, main_arena);
	if (!h->dry) {
		read_counts(w, mp);
		find_tcaches(w, s);
	}
	/* a corrupt arena stops its own walk (said in h->problem), not the
	 * others' */
	err = walk_main_arena(w, main_arena, arena, mp);
	for (; index < h->narenas && err != -ENOMEM; index++)
		err = walk_thread_arena(w, h->arena_addrs[index], index);
	if (err != -ENOMEM)
		err = copy_roots(w, s);
	if (!h->dry && h->ncopies) {
		qsort(h->copies, h->ncopies, sizeof(*h->copies), copy_cmp);
		h->copies_sorted = 1;
	}
	/* damage met while stopped is counted again by the walk's checks */
	memcpy(h->read_damaged, w->damaged, sizeof(w->damaged));
out:
	if (w->pagemap >= 0)
		close(w->pagemap);
	free(w);
	return err == -ENOMEM ? err : err == -ENOENT || err == -EFAULT ? err : 0;
}

int xp_glibc_heap_walk(struct xp_heap *h)
{
	struct walk *w = calloc(1, sizeof(*w));
	size_t i, k;
	int err = 0;

	if (!w)
		return -ENOMEM;
	w->h = h;
	w->pid = 0; /* released: the copies only */
	w->pagemap = -1;
	memcpy(w->damaged, h->read_damaged, sizeof(w->damaged));
	/* free chunks that keep PREV_INUSE: every arena's fastbins, every
	 * thread's tcache */
	for (i = 0; i < h->narenas; i++)
		walk_fastbins(w, h->arena_addrs[i]);
	walk_tcaches(w);
	for (i = 0; i < h->nplan && err != -ENOMEM; i++)
		err = walk_chunks(w, &h->plan[i]);
	if (err != -ENOMEM)
		err = find_mmapped(w);
	free(w->set);
	/* what was walked against glibc's own counters: a chunk the walk
	 * missed, a heap it did not reach, shows here */
	for (i = 0; h->have_counts && i < h->narenas; i++) {
		h->walked_mem += h->arena_walked[i];
		if (!w->damaged[i] && h->arena_walked[i] != h->arena_system_mem[i])
			problem(w, "arena %zu: glibc counts %.1f MiB of memory, its chunks cover %.1f MiB", i,
				(double)h->arena_system_mem[i] / 1048576.0, (double)h->arena_walked[i] / 1048576.0);
	}
	if (h->have_counts && (h->mmapped_chunks != h->glibc_n_mmaps || h->mmapped_bytes != h->glibc_mmapped_mem))
		problem(w, "glibc counts %llu mmapped chunks, %.1f MiB; found %llu, %.1f MiB",
			(unsigned long long)h->glibc_n_mmaps, (double)h->glibc_mmapped_mem / 1048576.0,
			(unsigned long long)h->mmapped_chunks, (double)h->mmapped_bytes / 1048576.0);
	free(w);
	if (h->nblocks) /* blocks is NULL then, which qsort may not be given */
		qsort(h->blocks, h->nblocks, sizeof(*h->blocks), block_cmp);
	/* a corrupt heap can lead two walks over the same chunks (a heap
	 * listed twice, or inside another): each block counts once */
	for (i = 1, k = h->nblocks ? 1 : 0; i < h->nblocks; i++) {
		if (h->blocks[i].addr == h->blocks[k - 1].addr)
			h->inuse_bytes -= h->blocks[i].size;
		else
			h->blocks[k++] = h->blocks[i];
	}
	h->nblocks = k;
	return err == -ENOMEM ? err : 0;
}

int xp_heap_prepare(struct xp_heap *h, pid_t pid, const struct xp_maps *maps)
{
	struct xp_snapshot none = { .pid = pid, .maps = *maps };
	size_t len;
	void *p;

	/* the same walk, live and dry: it reads only malloc's metadata and
	 * the target's page map */
	h->dry = 1;
	h->planned = 0;
	xp_glibc_heap_read(&none, h);
	h->dry = 0;
	h->problem[0] = '\0';
	h->nproblems = 0;
	h->nexcluded = 0;
	h->need_bytes = XP_HEAP_NEED(h->planned);
	h->avail_bytes = xp_heap_memory_available();
	if (h->need_bytes > h->avail_bytes - h->avail_bytes / 10)
		return -ENOMEM;
	/* room for growth between now and the stop */
	len = (size_t)(h->planned + h->planned / 8 + (1 << 20));
	len = (len + 4095) & ~(size_t)4095;
	h->planned = 0;
	p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
	if (p == MAP_FAILED)
		return 0; /* copies fall back to calloc: slower, still right */
	h->pool = p;
	h->pool_len = len;
	return 0;
}

/* ---- which allocator ------------------------------------------------------ */

enum xp_heap_refusal xp_heap_check(struct xp_space *space, const struct xp_maps *maps, const char **what)
{
	static const char *const others[] = { "libjemalloc", "libtcmalloc", "libmimalloc", NULL };
	uint64_t v, base;
	int tls, libc = 0;
	size_t i, k;

	*what = "";
	for (i = 0; i < maps->n; i++) {
		const char *slash = strrchr(maps->v[i].path, '/');
		const char *bn = slash ? slash + 1 : maps->v[i].path;
		for (k = 0; others[k]; k++) {
			if (strncmp(bn, others[k], strlen(others[k])) == 0) {
				*what = maps->v[i].path;
				return XP_HEAP_OTHER_MALLOC;
			}
		}
		if (strncmp(bn, "libc.so.", 8) == 0) {
			libc = 1;
			*what = maps->v[i].path;
		}
	}
	if (!libc)
		return XP_HEAP_NO_GLIBC;
	if (xp_space_lookup(space, "libc.so", "main_arena", &v, &tls, &base) < 0)
		return XP_HEAP_NO_DEBUGINFO;
	return XP_HEAP_OK;
}
