/* What the heap's blocks are and what holds them, from the copies a walk
 * made: a block whose first word points into a vtable (_ZTV...) is of that
 * class; a block is reachable when some aligned word in a root or in a
 * reachable block points into it (conservatively: interior pointers
 * count); the first path found is its story.  Roots are all the writable
 * memory that is no malloc block: the modules' .data and .bss ([global]),
 * the threads' stacks and registers ([stack]), their TLS ([tls]) and the
 * other anonymous private memory ([anon rw ADDR]: pymalloc's arenas, pools,
 * JIT data).  Blocks nothing reaches are leaks: [unreachable].
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "heapwalk/heapwalk.h"
#include "unwind/unwind.h"

static const char *size_name(struct xp_heap *h, uint64_t size);

static int64_t find_block(const struct xp_heap *h, uint64_t p)
{
	size_t lo = 0, hi = h->nblocks;

	/* most scanned words are no heap pointers: reject them cheaply */
	if (!h->nblocks || p < h->blocks[0].addr ||
	    p >= h->blocks[h->nblocks - 1].addr + h->blocks[h->nblocks - 1].size)
		return -1;
	while (hi - lo > 1) {
		size_t mid = lo + (hi - lo) / 2;
		if (h->blocks[mid].addr <= p)
			lo = mid;
		else
			hi = mid;
	}
	return p - h->blocks[lo].addr < h->blocks[lo].size ? (int64_t)lo : -1;
}

/* The copies are sorted by address and do not overlap; a block may span
 * several (the resident runs of an mmapped chunk).  For each block, the
 * first copy that overlaps it (SIZE_MAX when none), by one merge of two
 * sorted lists. */
static size_t *block_copies(struct xp_heap *h)
{
	size_t *d = malloc((h->nblocks ? h->nblocks : 1) * sizeof(*d));
	size_t b, c = 0;

	if (!d)
		return NULL;
	for (b = 0; b < h->nblocks; b++) {
		const struct xp_block *bl = &h->blocks[b];
		while (c < h->ncopies && h->copies[c].addr + h->copies[c].len <= bl->addr)
			c++;
		d[b] = c < h->ncopies && h->copies[c].addr < bl->addr + bl->size ? c : SIZE_MAX;
	}
	return d;
}

static int32_t add_root(struct xp_heap *h, const char *prefix, const char *name)
{
	char *full;
	size_t i;

	for (i = 0; i < h->nroots; i++)
		if (strncmp(h->roots[i].name, prefix, strlen(prefix)) == 0 &&
		    strcmp(h->roots[i].name + strlen(prefix), name) == 0)
			return (int32_t)i;
	if (h->nroots == h->roots_alloc) {
		size_t na = h->roots_alloc ? h->roots_alloc * 2 : 64;
		struct xp_heap_root *v = realloc(h->roots, na * sizeof(*v));
		if (!v)
			return -1;
		h->roots = v;
		h->roots_alloc = na;
	}
	if (asprintf(&full, "%s%s", prefix, name) < 0)
		return -1;
	h->roots[h->nroots].name = full;
	return (int32_t)h->nroots++;
}

struct queue {
	int64_t *v;
	size_t head, tail;
};

/* Marks the block a word points into as reached from (parent, root). */
static void reach(struct xp_heap *h, struct queue *q, uint64_t word, int64_t parent, int32_t root)
{
	int64_t b = find_block(h, word);

	if (b < 0 || h->blocks[b].parent != -2)
		return;
	h->blocks[b].parent = parent;
	h->blocks[b].root = root;
	q->v[q->tail++] = b;
}

/* Every aligned word of block cur that was copied (pages never touched
 * hold zeros, no pointers). */
static void scan_block(struct xp_heap *h, struct queue *q, int64_t cur, size_t first)
{
	uint64_t lo = h->blocks[cur].addr, hi = lo + h->blocks[cur].size;
	size_t c;

	for (c = first; c < h->ncopies && h->copies[c].addr < hi; c++) {
		const struct xp_heap_copy *cp = &h->copies[c];
		uint64_t a = cp->addr > lo ? (cp->addr + 7) & ~7ULL : lo;
		uint64_t end = cp->addr + cp->len < hi ? cp->addr + cp->len : hi;
		for (; a + 8 <= end; a += 8) {
			uint64_t word;
			memcpy(&word, cp->data + (a - cp->addr), 8);
			reach(h, q, word, cur, h->blocks[cur].root);
		}
	}
}

static char *demangled_or_copy(const char *raw)
{
	char *d = xp_demangle(raw);
	return d ? d : strdup(raw);
}

/* name without the dots pprof's graph breaks lines at ("libstdc++.so.6.0.30"
 * would show as five lines): a library's ".so" suffix dropped, a leading
 * dot dropped, other dots made '_' ("libstdc++", "bss", "data_rel_ro"). */
static void dotless(char *dst, size_t len, const char *name)
{
	const char *so = strstr(name, ".so");
	size_t n = 0;

	if (so && (so[3] == '\0' || so[3] == '.'))
		len = len < (size_t)(so - name) + 1 ? len : (size_t)(so - name) + 1;
	if (*name == '.')
		name++;
	for (; *name && n + 1 < len; name++)
		dst[n++] = *name == '.' ? '_' : *name;
	dst[n] = '\0';
}

/* A global's name for the slot at addr: its symbol, else the file it lies
 * in, the section and the offset into it ("libstdc++ bss+0x1e8"); else the
 * file and the offset from its first mapping (a .bss mapping counts as its
 * file's). */
static int32_t global_root(struct xp_heap *h, const struct xp_maps *maps, uint64_t slot)
{
	uint64_t off;
	const char *sym = xp_space_data_symbol(h->space, slot, &off), *file_path, *section;
	char buf[320], mod[128], sec[64];
	char *name;
	int32_t r;

	if (!sym && xp_space_data_section(h->space, slot, &file_path, &section, &off) == 0) {
		dotless(mod, sizeof(mod), strrchr(file_path, '/') ? strrchr(file_path, '/') + 1 : file_path);
		dotless(sec, sizeof(sec), section);
		snprintf(buf, sizeof(buf), "%s %s+0x%llx", mod, sec, (unsigned long long)off);
		return add_root(h, "[global] ", buf);
	}
	if (!sym) {
		const struct xp_map *m = xp_maps_find(maps, slot), *file = m;
		size_t i;
		snprintf(buf, sizeof(buf), "0x%llx", (unsigned long long)slot);
		if (m && !m->path[0] && m > maps->v)
			file = m - 1;
		if (file && file->path[0] == '/') {
			uint64_t base = file->start;
			/* the file's first mapping */
			for (i = (size_t)(file - maps->v); i-- > 0 && strcmp(maps->v[i].path, file->path) == 0;)
				base = maps->v[i].start;
			dotless(mod, sizeof(mod), strrchr(file->path, '/') + 1);
			snprintf(buf, sizeof(buf), "%s+0x%llx", mod, (unsigned long long)(slot - base));
		}
		return add_root(h, "[global] ", buf);
	}
	name = demangled_or_copy(sym);
	r = name ? add_root(h, "[global] ", name) : -1;
	free(name);
	return r;
}

static int in_tls(const struct xp_heap *h, uint64_t addr)
{
	size_t lo = 0, hi = h->ntls;

	while (lo < hi) { /* the last range starting at or below addr */
		size_t mid = lo + (hi - lo) / 2;
		if (h->tls[mid].lo <= addr)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo > 0 && addr < h->tls[lo - 1].hi;
}

/* A root in anonymous memory: a module's .bss when it follows the module's
 * data, else the mapping by its name ([heap], [stack], [anon:NAME]) or its
 * start, "[anon rw 0x7f3a...]". */
static int32_t anon_root(struct xp_heap *h, const struct xp_maps *maps, const struct xp_heap_copy *c)
{
	const struct xp_map *m = xp_maps_find(maps, c->map_start);
	char buf[96];

	if (m && m->path[0] == '[')
		return add_root(h, "", m->path);
	snprintf(buf, sizeof(buf), "[anon rw 0x%llx]", (unsigned long long)c->map_start);
	return add_root(h, "", buf);
}

static int32_t frame_root(struct xp_heap *h, uint64_t pc, int is_call)
{
	const struct xp_sym *s = xp_symbolize(h->space, pc, is_call);
	const char *fn = s && s->nframes ? s->frames[s->nframes - 1].function : "??";

	return add_root(h, "[stack] ", fn);
}

/* The stacks and registers of the stopped threads: each slot named after
 * the frame that owns it. */
static void scan_threads(struct xp_heap *h, const struct xp_snapshot *s, struct queue *q)
{
	struct xp_unwinder *u = NULL;
	struct xp_stack *st = malloc(sizeof(*st));
	struct xp_mem *mem = xp_mem_snapshot(s->regions, s->nregions, NULL);
	size_t t, f;

	if (!st || !mem || xp_unwinder_new(h->space, &u) < 0)
		goto out;
	for (t = 0; t < s->nthreads; t++) {
		const struct xp_thread *th = &s->threads[t];
		const uint64_t *regs = (const uint64_t *)&th->regs;
		uint64_t a;
		int32_t leaf;

		if (!th->stopped || !th->stack)
			continue;
		xp_unwind(u, &th->regs, mem, st);
		if (st->n == 0)
			continue;
		leaf = frame_root(h, st->pc[0], 0);
		/* stack slots first, outermost frame first: a callee spills the
		 * callee-saved registers holding its callers' values into its own
		 * frame, so the outer frame that holds a pointer owns it; the
		 * registers only get what no slot has */
		for (a = (th->stack_addr + th->stack_len) & ~7ULL; a >= th->stack_addr + 8;) {
			uint64_t word;
			int64_t blk;
			int32_t root;
			a -= 8;
			memcpy(&word, th->stack + (a - th->stack_addr), 8);
			blk = find_block(h, word);
			if (blk < 0 || h->blocks[blk].parent != -2)
				continue;
			/* a thread's TLS and TCB lie at the top of its stack
			 * mapping; else the frame whose part of the stack holds
			 * the slot */
			for (f = 0; f + 1 < st->n && st->sp[f + 1] && st->sp[f + 1] <= a; f++)
				;
			if (in_tls(h, a))
				root = add_root(h, "", "[tls]");
			else
				root = f == 0 ? leaf : frame_root(h, st->pc[f], st->is_call[f]);
			reach(h, q, word, -1, root);
		}
		for (f = 0; f < sizeof(th->regs) / 8; f++)
			reach(h, q, regs[f], -1, leaf);
	}
out:
	xp_unwinder_free(u);
	xp_mem_close(mem);
	free(st);
}

struct type_cache {
	uint64_t vptr;
	const char *type;
};

/* The class of an object whose first word points into "vtable for X". */
static const char *vtable_type(struct xp_heap *h, uint64_t vptr, struct type_cache *cache, size_t ncache)
{
	struct type_cache *e = &cache[(vptr >> 3) % ncache];
	uint64_t off;
	const char *sym;
	char *d;

	if (e->vptr == vptr)
		return e->type;
	e->vptr = vptr;
	e->type = NULL;
	sym = xp_space_data_symbol(h->space, vptr, &off);
	if (!sym || strncmp(sym, "_ZTV", 4) != 0)
		return NULL;
	d = xp_demangle(sym);
	if (d && strncmp(d, "vtable for ", 11) == 0) {
		/* kept for the life of the heap: a root entry owns it */
		int32_t r = add_root(h, "", d + 11);
		e->type = r >= 0 ? h->roots[r].name : NULL;
	}
	free(d);
	return e->type;
}

/* Every word of the roots that points into a block, skipping the blocks
 * themselves (an mmapped chunk found in anonymous memory) and malloc's own
 * state. */
static void scan_roots(struct xp_heap *h, const struct xp_snapshot *s, struct queue *q)
{
	size_t i, b = 0;

	for (i = 0; i < h->ncopies; i++) {
		const struct xp_heap_copy *c = &h->copies[i];
		int32_t anon = -2; /* the copy's name, once needed */
		uint64_t a;
		if (c->kind == XP_COPY_HEAP)
			continue;
		for (a = (c->addr + 7) & ~7ULL; a + 8 <= c->addr + c->len; a += 8) {
			uint64_t word;
			int64_t blk;
			int32_t root;
			while (b < h->nblocks && h->blocks[b].addr + h->blocks[b].size <= a)
				b++;
			if (b < h->nblocks && a >= h->blocks[b].addr) {
				a = ((h->blocks[b].addr + h->blocks[b].size + 7) & ~7ULL) - 8;
				continue;
			}
			if ((a >= h->skip[0][0] && a < h->skip[0][1]) || (a >= h->skip[1][0] && a < h->skip[1][1]))
				continue;
			memcpy(&word, c->data + (a - c->addr), 8);
			blk = find_block(h, word);
			if (blk < 0 || h->blocks[blk].parent != -2)
				continue;
			if (in_tls(h, a)) {
				root = add_root(h, "", "[tls]");
			} else if (c->kind == XP_COPY_GLOBAL) {
				root = global_root(h, &s->maps, a);
			} else {
				if (anon == -2)
					anon = anon_root(h, &s->maps, c);
				root = anon;
			}
			reach(h, q, word, -1, root);
		}
	}
}

int xp_heap_analyze(struct xp_heap *h, const struct xp_snapshot *s)
{
	size_t *first = NULL;
	struct queue q = { 0 };
	struct type_cache *cache = calloc(4096, sizeof(*cache));
	size_t b;

	/* xp_glibc_heap_read left the copies sorted */
	first = block_copies(h);
	q.v = malloc((h->nblocks ? h->nblocks : 1) * sizeof(*q.v));
	if (!first || !q.v || !cache) {
		free(first);
		free(q.v);
		free(cache);
		return -ENOMEM;
	}
	/* types first; their names are interned in h->roots beside the roots
	 * (as heap strings, so pointers to them survive the array growing) */
	for (b = 0; b < h->nblocks; b++) {
		const struct xp_heap_copy *c = first[b] != SIZE_MAX ? &h->copies[first[b]] : NULL;
		uint64_t vptr;
		if (!c || h->blocks[b].size < 8 || h->blocks[b].addr < c->addr ||
		    h->blocks[b].addr + 8 > c->addr + c->len)
			continue;
		memcpy(&vptr, c->data + (h->blocks[b].addr - c->addr), 8);
		if (vptr & 7)
			continue;
		h->blocks[b].type = vtable_type(h, vptr, cache, 4096);
	}
	/* roots: globals and anonymous memory, then the threads */
	scan_roots(h, s, &q);
	scan_threads(h, s, &q);
	/* then everything reachable, breadth first: the shortest stories */
	while (q.head < q.tail) {
		int64_t cur = q.v[q.head++];
		if (first[cur] != SIZE_MAX)
			scan_block(h, &q, cur, first[cur]);
	}
	for (b = 0; b < h->nblocks; b++) {
		if (h->blocks[b].parent == -2) {
			h->unreachable_blocks++;
			h->unreachable_bytes += h->blocks[b].size;
		}
	}
	for (b = 0; b < h->nblocks; b++)
		h->blocks[b].name = h->blocks[b].type ? h->blocks[b].type : size_name(h, h->blocks[b].size);
	free(cache);
	free(q.v);
	free(first);
	return 0;
}

/* "[malloc N]", one string per size for the life of the heap. */
static const char *size_name(struct xp_heap *h, uint64_t size)
{
	struct xp_heap_size_name *e;
	size_t i;

	if ((h->nsize_names + 1) * 2 > h->size_names_cap) {
		size_t nc = h->size_names_cap ? h->size_names_cap * 2 : 256;
		struct xp_heap_size_name *t = calloc(nc, sizeof(*t));
		if (!t)
			return "[malloc]";
		for (i = 0; i < h->size_names_cap; i++) {
			size_t k;
			if (!h->size_names[i].name)
				continue;
			for (k = (h->size_names[i].size * 0x9e3779b97f4a7c15ULL) >> 40 & (nc - 1); t[k].name;
			     k = (k + 1) & (nc - 1))
				;
			t[k] = h->size_names[i];
		}
		free(h->size_names);
		h->size_names = t;
		h->size_names_cap = nc;
	}
	for (i = (size * 0x9e3779b97f4a7c15ULL) >> 40 & (h->size_names_cap - 1); h->size_names[i].name;
	     i = (i + 1) & (h->size_names_cap - 1))
		if (h->size_names[i].size == size)
			return h->size_names[i].name;
	e = &h->size_names[i];
	if (asprintf(&e->name, "[malloc %llu]", (unsigned long long)size) < 0) {
		e->name = NULL;
		return "[malloc]";
	}
	e->size = size;
	h->nsize_names++;
	return e->name;
}

size_t xp_heap_story(const struct xp_heap *h, size_t block, const char **names)
{
	size_t n = 0;
	int64_t cur = (int64_t)block;
	const char *last = NULL;

	while (n < XP_HEAP_PATH_MAX - 1) {
		const char *name = h->blocks[cur].name;
		if (name != last) /* a list of one type: once */
			names[n++] = last = name;
		if (h->blocks[cur].parent < 0)
			break;
		cur = h->blocks[cur].parent;
	}
	if (h->blocks[cur].parent >= 0)
		names[n - 1] = "..."; /* the story is longer than we keep */
	/* every reached block carries its root */
	if (h->blocks[block].parent != -2 && h->blocks[block].root >= 0)
		names[n++] = h->roots[h->blocks[block].root].name;
	else
		names[n++] = "[unreachable]";
	return n;
}

void xp_heap_free(struct xp_heap *h)
{
	size_t i;

	for (i = 0; i < h->ncopies; i++)
		if (!h->copies[i].pooled)
			free(h->copies[i].data);
	if (h->pool)
		munmap(h->pool, h->pool_len);
	for (i = 0; i < h->nroots; i++)
		free(h->roots[i].name);
	free(h->copies);
	free(h->plan);
	free(h->tcaches);
	free(h->tls);
	free(h->excluded);
	for (i = 0; i < h->size_names_cap; i++)
		free(h->size_names[i].name);
	free(h->size_names);
	free(h->roots);
	free(h->blocks);
}
