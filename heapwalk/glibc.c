/* glibc 2.36 malloc, walked from outside while the process is stopped.
 *
 * A chunk is in use when the next chunk's PREV_INUSE bit says so and it is
 * in no fastbin and no thread's tcache (those keep the bit set).  Arenas:
 * main_arena (the brk heap from mp_.sbrk_base to top), the thread arenas of
 * its next ring (their heaps found from top through heap_info.prev), and
 * mmapped chunks in anonymous mappings.  Layouts: ../shared/FACTS.md sec. 3.
 * Every region is copied in bulk; every list and walk is bounded.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/uio.h>

#include "heapwalk/heapwalk.h"

/* malloc_state, malloc_par, heap_info, tcache (x86-64, glibc 2.36) */
#define ARENA_SIZE 2200
#define ARENA_FASTBINS 16
#define ARENA_TOP 96
#define ARENA_NEXT 2160
#define NFASTBINS 10
#define MP_SIZE 136
#define MP_N_MMAPS 60
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

struct walk {
	struct xp_heap *h;
	pid_t pid;
	const struct xp_maps *maps; /* the target's, for the read phase */
	/* chunks in fastbins and tcaches, and the tcache structs */
	uint64_t *set;
	size_t nset, setcap;
};

static void problem(struct walk *w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void problem(struct walk *w, const char *fmt, ...)
{
	va_list ap;

	if (w->h->problem[0])
		return; /* the first one says the most */
	va_start(ap, fmt);
	vsnprintf(w->h->problem, sizeof(w->h->problem), fmt, ap);
	va_end(ap);
}

/* ---- reading ------------------------------------------------------------ */

static const struct xp_heap_copy *find_copy(const struct xp_heap *h, uint64_t addr, size_t len)
{
	size_t i;

	for (i = 0; i < h->ncopies; i++) {
		const struct xp_heap_copy *c = &h->copies[i];
		if (addr >= c->addr && addr - c->addr <= c->len && len <= c->len - (addr - c->addr))
			return c;
	}
	return NULL;
}

/* From a copy when there is one, else from the stopped process. */
static int rd(struct walk *w, uint64_t addr, void *buf, size_t len)
{
	const struct xp_heap_copy *c = find_copy(w->h, addr, len);
	struct iovec l = { buf, len }, r = { (void *)(uintptr_t)addr, len };

	if (c) {
		memcpy(buf, c->data + (addr - c->addr), len);
		return 0;
	}
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

/* Copies [addr, addr + len) of the stopped process in bulk, or as much of
 * it as is mapped: a heap's extent comes from the target's metadata, and
 * a claimed 8 GiB heap of which one page exists must not cost 8 GiB. */
static struct xp_heap_copy *copy_region(struct walk *w, uint64_t addr, size_t len, int kind)
{
	struct xp_heap *h = w->h;
	struct xp_heap_copy *c;
	struct iovec l, r;
	ssize_t n;

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
	if (h->pool && h->pool_len - h->pool_used >= len) {
		c->data = h->pool + h->pool_used;
		c->pooled = 1;
		h->pool_used += (len + 15) & ~(size_t)15;
	} else {
		c->data = malloc(len);
	}
	if (!c->data)
		return NULL;
	l.iov_base = c->data;
	l.iov_len = len;
	r.iov_base = (void *)(uintptr_t)addr;
	r.iov_len = len;
	n = process_vm_readv(w->pid, &l, 1, &r, 1, 0);
	if (n <= 0) {
		if (!c->pooled)
			free(c->data);
		return NULL;
	}
	c->addr = addr;
	c->len = (size_t)n;
	c->kind = kind;
	h->copied_bytes += (uint64_t)n;
	h->ncopies++;
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

/* The offset of libc's static TLS block from the thread pointer: the
 * l_tls_offset of libc's link_map, found from ld.so's _r_debug. */
static int libc_tls_offset(struct walk *w, uint64_t *off)
{
	struct xp_space *sp = w->h->space;
	uint64_t rdebug, desc_addr, libc_base, ldbase, map, laddr;
	uint32_t desc[3];
	int tls;
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
	for (n = 0; map && n < 4096; n++) {
		if (rd64(w, map, &laddr) < 0)
			return -EFAULT;
		if (laddr == libc_base)
			return rd64(w, map + desc[2], off);
		if (rd64(w, map + 24, &map) < 0)
			return -EFAULT;
	}
	return -ENOENT;
}

/* In the stop: each thread's tcache pointer, from its TLS. */
static void find_tcaches(struct walk *w, struct xp_snapshot *s)
{
	uint64_t tls_off, var, libc_base, tc;
	int tls;
	size_t t;

	if (xp_space_lookup(w->h->space, "libc.so", "tcache", &var, &tls, &libc_base) < 0 || !tls ||
	    libc_tls_offset(w, &tls_off) < 0) {
		problem(w, "cannot find the threads' tcaches (libc's link_map): their free chunks count as in use");
		return;
	}
	w->h->tcaches = calloc(s->nthreads ? s->nthreads : 1, sizeof(*w->h->tcaches));
	if (!w->h->tcaches)
		return;
	for (t = 0; t < s->nthreads; t++) {
		const struct xp_thread *th = &s->threads[t];
		if (!th->stopped || th->exited || !th->regs.fs_base)
			continue;
		if (rd64(w, th->regs.fs_base - tls_off + var, &tc) == 0 && tc)
			w->h->tcaches[w->h->ntcaches++] = tc; /* 0: it never called malloc */
	}
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

/* Walks the chunks of [start, end) up to top, all read from one copy. */
static int walk_chunks(struct walk *w, const struct xp_heap_copy *c, uint64_t start, uint64_t end,
		       uint64_t top, uint32_t arena)
{
	uint64_t ch = start, sz, next, nsz;
	size_t n = 0;

	while (ch != top && ch + CHUNK_HDR <= end) {
		memcpy(&sz, c->data + (ch - c->addr) + 8, 8);
		sz &= ~SIZE_BITS;
		if (sz == CHUNK_HDR) /* a fencepost at the end of an old heap */
			break;
		if (sz < MINSIZE || (sz & 15) || sz > end - ch || ++n > XP_HEAP_MAX_CHUNKS) {
			problem(w, "bad chunk size 0x%llx at 0x%llx (arena %u): walk stopped there",
				(unsigned long long)sz, (unsigned long long)ch, arena);
			return -EINVAL;
		}
		next = ch + sz;
		if (next + CHUNK_HDR <= end)
			memcpy(&nsz, c->data + (next - c->addr) + 8, 8);
		else
			nsz = PREV_INUSE; /* the last chunk of a heap without fencepost */
		/* glibc ends an old heap with a fencepost: a chunk followed by a
		 * header of size 0 (when the old top was too small to free, that
		 * chunk is up to 63 bytes and marked in use): no block */
		if ((nsz & ~SIZE_BITS) == 0)
			break;
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
		w->h->free_bytes += sz & ~SIZE_BITS;
	}
	return 0;
}

/* Records a region for the walk after the release. */
static int plan(struct walk *w, const struct xp_heap_copy *c, uint64_t start, uint64_t end, uint64_t top,
		uint32_t arena)
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
		end = c->addr + c->len;
	}
	if (start > end)
		start = end;
	pl = &h->plan[h->nplan++];
	pl->copy = (size_t)(c - h->copies);
	pl->start = start;
	pl->end = end;
	pl->top = top;
	pl->arena = arena;
	return 0;
}

static uint64_t align_chunk(uint64_t p)
{
	/* chunk + 16 (the user pointer) 16-aligned */
	return ((p + CHUNK_HDR + 15) & ~15ULL) - CHUNK_HDR;
}

static int walk_main_arena(struct walk *w, const uint8_t *arena, const uint8_t *mp)
{
	uint64_t top, base, topsz;
	const struct xp_heap_copy *c;

	memcpy(&top, arena + ARENA_TOP, 8);
	memcpy(&base, mp + MP_SBRK_BASE, 8);
	if (!top || !base)
		return 0; /* nothing was ever allocated from brk */
	if (top < base || top - base > XP_HEAP_MAX_COPY || rd64(w, top + 8, &topsz) < 0) {
		problem(w, "main arena's top 0x%llx is not above sbrk_base 0x%llx", (unsigned long long)top,
			(unsigned long long)base);
		return -EINVAL;
	}
	topsz &= ~SIZE_BITS;
	c = copy_region(w, base, top + CHUNK_HDR - base, XP_COPY_HEAP);
	if (w->h->dry)
		return 0;
	if (!c)
		return -EFAULT;
	return plan(w, c, align_chunk(base), top + CHUNK_HDR, top, 0);
}

static int walk_thread_arena(struct walk *w, uint64_t arena, uint32_t index)
{
	uint64_t top, heap, info[3], end, start, topsz, mark = 0;
	size_t n = 0, lap = 1, steps = 0;
	int err;

	if (rd64(w, arena + ARENA_TOP, &top) < 0 || !top)
		return 0;
	for (heap = top & ~(HEAP_MAX - 1); heap && n < 100000; n++) {
		const struct xp_heap_copy *c;
		/* a prev chain that loops (Brent's cycle detection: the heap
		 * marked comes round again) would copy its heaps until the
		 * copy limit */
		if (heap == mark) {
			problem(w, "the heaps of arena 0x%llx loop at 0x%llx", (unsigned long long)arena,
				(unsigned long long)heap);
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
			return -EINVAL;
		}
		end = heap + info[2];
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
		if (!c)
			return -EFAULT;
		err = plan(w, c, start, end, top, index);
		if (err < 0)
			return err;
		heap = info[1];
	}
	return 0;
}

/* Mmapped chunks: in anonymous read-write mappings, at the start of the
 * mapping (prev_size is the alignment correction, 0 on x86-64), with
 * IS_MMAPPED set, covering whole pages.  Mapped chunks may be adjacent. */
static int walk_mmapped(struct walk *w, const struct xp_maps *maps)
{
	size_t i;

	for (i = 0; i < maps->n; i++) {
		const struct xp_map *m = &maps->v[i];
		uint64_t ch = m->start, hdr[2], sz;
		size_t n = 0;

		if (strcmp(m->perms, "rw-p") != 0 || m->path[0] || find_copy(w->h, m->start, 16))
			continue;
		while (ch + CHUNK_HDR <= m->end && n++ < 100000) {
			if (rd(w, ch, hdr, sizeof(hdr)) < 0)
				break;
			sz = hdr[1] & ~SIZE_BITS;
			if (!(hdr[1] & IS_MMAPPED) || hdr[0] > 4096 || ((hdr[0] + sz) & 4095) || sz < 4096 ||
			    sz > m->end - ch - hdr[0])
				break;
			if (!copy_region(w, ch + hdr[0], sz, XP_COPY_HEAP) && !w->h->dry)
				return -EFAULT;
			ch += hdr[0] + sz;
			if (w->h->dry)
				continue;
			if (add_block(w, ch - sz, sz - CHUNK_HDR, XP_BLOCK_ARENA_MMAP) < 0)
				return -E2BIG;
			w->h->mmapped_chunks++;
		}
	}
	return 0;
}

/* Globals: the writable mappings of every file (its .data) and the
 * anonymous mapping right after one (its .bss). */
static void copy_globals(struct walk *w, const struct xp_maps *maps)
{
	size_t i;

	for (i = 0; i < maps->n; i++) {
		const struct xp_map *m = &maps->v[i];
		int bss = i > 0 && !m->path[0] && maps->v[i - 1].path[0] == '/' && maps->v[i - 1].end == m->start &&
			  maps->v[i - 1].perms[1] == 'w';
		if (m->perms[1] != 'w' || (!bss && m->path[0] != '/') || find_copy(w->h, m->start, 1))
			continue;
		copy_region(w, m->start, m->end - m->start, XP_COPY_GLOBAL);
	}
}

static int block_cmp(const void *a, const void *b)
{
	const struct xp_block *x = a, *y = b;

	return x->addr < y->addr ? -1 : x->addr > y->addr;
}

int xp_glibc_heap_read(struct xp_snapshot *s, void *arg)
{
	struct xp_heap *h = arg;
	struct walk w = { .h = h, .pid = xp_live_thread(s->pid), .maps = &s->maps };
	uint8_t arena[ARENA_SIZE], mp[MP_SIZE];
	uint64_t main_arena, mp_addr, base, a;
	int tls, err = 0;
	uint32_t index = 1;

	if (xp_space_lookup(h->space, "libc.so", "main_arena", &main_arena, &tls, &base) < 0 ||
	    xp_space_lookup(h->space, "libc.so", "mp_", &mp_addr, &tls, &base) < 0)
		return -ENOENT;
	if (rd(&w, main_arena, arena, sizeof(arena)) < 0 || rd(&w, mp_addr, mp, sizeof(mp)) < 0)
		return -EFAULT;
	h->skip[0][0] = main_arena;
	h->skip[0][1] = main_arena + ARENA_SIZE;
	h->skip[1][0] = mp_addr;
	h->skip[1][1] = mp_addr + MP_SIZE;

	/* the arenas: main_arena's next ring, each once (a corrupt ring may
	 * loop back to another arena than main_arena) */
	h->narenas = 0;
	for (a = main_arena; h->narenas < XP_HEAP_MAX_ARENAS;) {
		size_t k;
		h->arena_addrs[h->narenas++] = a;
		if (rd64(&w, a + ARENA_NEXT, &a) < 0 || !a || a == main_arena)
			break;
		for (k = 1; k < h->narenas && h->arena_addrs[k] != a; k++)
			;
		if (k < h->narenas) {
			problem(&w, "the arena ring loops at 0x%llx, not through main_arena", (unsigned long long)a);
			break;
		}
	}
	if (!h->dry)
		find_tcaches(&w, s);
	/* a corrupt arena stops its own walk (said in h->problem), not the
	 * others' */
	err = walk_main_arena(&w, arena, mp);
	for (; index < h->narenas && err != -ENOMEM; index++)
		err = walk_thread_arena(&w, h->arena_addrs[index], index);
	if (err != -ENOMEM)
		err = walk_mmapped(&w, &s->maps);
	copy_globals(&w, &s->maps);
	return err == -ENOMEM ? err : 0;
}

int xp_glibc_heap_walk(struct xp_heap *h)
{
	struct walk w = { .h = h, .pid = xp_live_thread(h->pid) };
	size_t i, k;
	int err = 0;

	/* free chunks that keep PREV_INUSE: every arena's fastbins, every
	 * thread's tcache */
	for (i = 0; i < h->narenas; i++)
		walk_fastbins(&w, h->arena_addrs[i]);
	walk_tcaches(&w);
	for (i = 0; i < h->nplan && err != -ENOMEM; i++) {
		const struct xp_heap_plan *pl = &h->plan[i];
		err = walk_chunks(&w, &h->copies[pl->copy], pl->start, pl->end, pl->top, pl->arena);
	}
	free(w.set);
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

	/* the same walk, live and dry: it reads only malloc's metadata */
	h->dry = 1;
	h->planned = 0;
	xp_glibc_heap_read(&none, h);
	h->dry = 0;
	h->problem[0] = '\0';
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
		return 0; /* copies fall back to malloc: slower, still right */
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
