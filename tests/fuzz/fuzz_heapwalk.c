/* Fuzzes the glibc heap walker (heapwalk/glibc.c) and the analysis after
 * it (heapwalk/analyze.c) over a synthetic process image: the whole flow
 * of xprof heap — xp_heap_prepare's dry walk, xp_glibc_heap_read as if the
 * target were stopped, xp_glibc_heap_walk, xp_heap_analyze, every block's
 * story — with every byte malloc's metadata and the heap hold from the
 * input.
 *
 * The reader reads the "target" with process_vm_readv, so the target is
 * this process: the input is laid out in six windows mapped at fixed
 * addresses here, 64 MiB apart (thread heaps are 64 MiB aligned), each
 * readable only up to the length its maps entry claims:
 *   0 libc.so.6 (a code page, then its data: main_arena, mp_, ...)
 *   1 ld-linux-x86-64.so.2 (a code page, then _r_debug)
 *   2 [heap], 3 and 4 anonymous (a thread arena's heap, mmapped chunks),
 *   5 [stack].
 * The two libraries are build/fuzz/heapfake/ (tests/fuzz/heapfake.s): the
 * symbols only, at the addresses libdw reports for them.
 *
 * Input: u8 thread count (0-2, bits 0-1) and flags (bit 7: no
 * xp_heap_prepare); per thread fs_base, rsp, rip, rbp, rax, rbx
 * (u64) and a stack length (u32); per window its mapped length and its
 * data length (u32); then each window's data.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <libgen.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "heapwalk/heapwalk.h"

#include "tests/fuzz/fuzz.h"

#define IMAGE_BASE 0x500000000000ULL
#define WIN_STRIDE (64ULL << 20)
#define WIN_MAX (1ULL << 20)   /* reserved per window */
#define NWIN 6
#define LIB_TEXT 0x1000ULL     /* a library window's code page: its data follows */
#define NTHREADS 2
#define NO_PREPARE 0x80        /* in the input's first byte: no xp_heap_prepare */
#define PAGE 4096ULL

enum { W_LIBC, W_LD, W_HEAP, W_ANON1, W_ANON2, W_STACK };

/* what each window may claim: the analysis scans every word of the
 * libraries' data and the stacks, so those stay small */
static const uint64_t win_max[NWIN] = { 16 << 10, 16 << 10, WIN_MAX, WIN_MAX, WIN_MAX, 64 << 10 };

static char libc_path[4200], ld_path[4200];
static struct stat libc_st, ld_st; /* maps entries name the files' device and inode */
static size_t dirty[NWIN];
static int verbose; /* XPROF_FUZZ_VERBOSE set: the walk's results on stderr */
static volatile uint64_t sink;

static void write_seeds(const char *dir);

/* Leaks inside libdw on malformed input are elfutils'; ours start in our
 * code and still show. */
const char *__lsan_default_suppressions(void);
const char *__lsan_default_suppressions(void)
{
	return "leak:libdw.so.1\n";
}

const char *__lsan_default_options(void);
const char *__lsan_default_options(void)
{
	return "print_suppressions=0";
}

static uint64_t win(int w)
{
	return IMAGE_BASE + (uint64_t)w * WIN_STRIDE;
}

static int is_lib(int w)
{
	return w == W_LIBC || w == W_LD;
}

/* The maps of the synthetic process; len[w] is each window's claimed
 * length past its code page (libraries) or from its start. */
static size_t make_maps(const uint64_t *len, struct xp_map *v)
{
	static const char *const names[NWIN] = { NULL, NULL, "[heap]", "", "", "[stack]" };
	size_t n = 0;
	int w;

	for (w = 0; w < NWIN; w++) {
		uint64_t base = win(w);
		if (is_lib(w)) {
			const char *path = w == W_LIBC ? libc_path : ld_path;
			const struct stat *st = w == W_LIBC ? &libc_st : &ld_st;
			struct xp_map m = { .start = base, .end = base + LIB_TEXT, .offset = 0,
					    .inode = st->st_ino, .major = major(st->st_dev),
					    .minor = minor(st->st_dev), .perms = "r-xp", .path = (char *)path };
			v[n++] = m;
			if (len[w]) {
				m.start = m.end;
				m.end = m.start + len[w];
				m.offset = LIB_TEXT;
				memcpy(m.perms, "rw-p", 4);
				v[n++] = m;
			}
		} else if (len[w]) {
			v[n++] = (struct xp_map){ .start = base, .end = base + len[w], .perms = "rw-p",
						  .path = (char *)names[w] };
		}
	}
	return n;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	char exe[4096], *dir;
	ssize_t n;
	int w;

	(void)argc;
	(void)argv;
	verbose = getenv("XPROF_FUZZ_VERBOSE") != NULL;
	setenv("XPROF_CACHE_DIR", "off", 1);
	unsetenv("DEBUGINFOD_URLS");
	n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (n <= 0)
		abort();
	exe[n] = '\0';
	dir = dirname(exe);
	snprintf(libc_path, sizeof(libc_path), "%s/heapfake/libc.so.6", dir);
	snprintf(ld_path, sizeof(ld_path), "%s/heapfake/ld-linux-x86-64.so.2", dir);
	if (stat(libc_path, &libc_st) < 0 || stat(ld_path, &ld_st) < 0) {
		fprintf(stderr, "fuzz_heapwalk: %s or %s missing (make fuzz-build)\n", libc_path, ld_path);
		exit(1);
	}
	for (w = 0; w < NWIN; w++) {
		void *p = mmap((void *)(uintptr_t)win(w), WIN_MAX + LIB_TEXT, PROT_NONE,
			       MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
		if (p != (void *)(uintptr_t)win(w)) {
			fprintf(stderr, "fuzz_heapwalk: cannot map window %d at 0x%llx\n", w,
				(unsigned long long)win(w));
			exit(1);
		}
	}
	if (fuzz_seed_dir()) {
		write_seeds(fuzz_seed_dir());
		exit(0);
	}
	return 0;
}

/* Lays the windows out for this input: each one readable exactly as far
 * as its maps entry says, holding its data and zeros after. */
static void fill_windows(struct fuzz_in *in, const uint64_t *len, const uint64_t *dlen)
{
	int w;

	for (w = 0; w < NWIN; w++) {
		uint8_t *base = (uint8_t *)(uintptr_t)win(w);
		uint64_t data_at = is_lib(w) ? LIB_TEXT : 0, readable = data_at + len[w];
		if (mprotect(base, WIN_MAX + LIB_TEXT, PROT_READ | PROT_WRITE) < 0)
			abort();
		memset(base, 0, dirty[w]);
		fuzz_take(in, base + data_at, dlen[w]);
		dirty[w] = data_at + dlen[w];
		if (mprotect(base + readable, WIN_MAX + LIB_TEXT - readable, PROT_NONE) < 0)
			abort();
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fuzz_in in = { data, size };
	struct xp_map maps_v[2 * NWIN];
	struct xp_thread threads[NTHREADS];
	struct xp_region regions[NTHREADS];
	struct xp_snapshot s;
	struct xp_heap h;
	struct xp_space *space = NULL;
	uint64_t len[NWIN], dlen[NWIN];
	size_t nthreads, i, nregions = 0;
	uint8_t flags;
	int w, err = 0;

	memset(threads, 0, sizeof(threads));
	flags = fuzz_u8(&in);
	nthreads = (flags & 3) % (NTHREADS + 1);
	for (i = 0; i < NTHREADS; i++) {
		struct xp_thread *t = &threads[i];
		t->tid = (pid_t)(1000 + i);
		t->stopped = 1;
		t->regs.fs_base = fuzz_u64(&in);
		t->regs.rsp = fuzz_u64(&in);
		t->regs.rip = fuzz_u64(&in);
		t->regs.rbp = fuzz_u64(&in);
		t->regs.rax = fuzz_u64(&in);
		t->regs.rbx = fuzz_u64(&in);
		t->stack_len = fuzz_u32(&in);
	}
	for (w = 0; w < NWIN; w++) {
		len[w] = ((uint64_t)fuzz_u32(&in) + PAGE - 1) & ~(PAGE - 1);
		if (len[w] > win_max[w])
			len[w] = win_max[w];
		dlen[w] = fuzz_u32(&in);
		if (dlen[w] > len[w])
			dlen[w] = len[w];
	}
	fill_windows(&in, len, dlen);

	/* the stopped threads' stacks: what lies in [stack] from rsp on */
	for (i = 0; i < nthreads; i++) {
		struct xp_thread *t = &threads[i];
		uint64_t lo = win(W_STACK), hi = lo + len[W_STACK];
		if (t->regs.rsp < lo || t->regs.rsp >= hi) {
			t->stack_len = 0;
			continue;
		}
		if (t->stack_len > hi - t->regs.rsp)
			t->stack_len = hi - t->regs.rsp;
		t->stack_addr = t->regs.rsp;
		t->stack = (uint8_t *)(uintptr_t)t->regs.rsp;
		if (t->stack_len)
			regions[nregions++] = (struct xp_region){ t->stack_addr, t->stack_len, t->stack };
		else
			t->stack = NULL;
	}
	memset(&s, 0, sizeof(s));
	s.pid = getpid();
	s.threads = threads;
	s.nthreads = nthreads;
	s.maps.v = maps_v;
	s.maps.n = make_maps(len, maps_v);
	s.regions = regions;
	s.nregions = nregions;

	memset(&h, 0, sizeof(h));
	if (xp_space_open(getpid(), &s.maps, NULL, 0, &space) < 0)
		return 0;
	h.pid = getpid();
	h.space = space;
	/* as xprof heap does: size the copies (or not: copies are then
	 * malloc'd, as when the pool ran out), copy "in the stop", walk, analyze */
	if (!(flags & NO_PREPARE)) {
		err = xp_heap_prepare(&h, h.pid, &s.maps);
		if (verbose)
			fprintf(stderr, "prepare %d: %zu bytes pooled\n", err, h.pool_len);
	}
	if (err == 0)
		err = xp_glibc_heap_read(&s, &h);
	/* what the stop recorded lies in what it copied: the walk after the
	 * release reads nothing else (a short copy must shorten its plan) */
	for (i = 0; err == 0 && i < h.nplan; i++) {
		const struct xp_heap_plan *pl = &h.plan[i];
		const struct xp_heap_copy *c = NULL;
		for (size_t k = 0; k < h.ncopies; k++)
			if (h.copies[k].addr == pl->copy)
				c = &h.copies[k];
		if (!c || pl->start < c->addr || pl->end < pl->start || pl->end - c->addr > c->len)
			abort();
	}
	if (err == 0)
		err = xp_glibc_heap_walk(&h);
	if (err == 0)
		err = xp_heap_analyze(&h, &s);
	if (verbose)
		fprintf(stderr, "err %d: %zu arenas, %zu blocks, %llu in use, %llu free in %llu chunks, "
			"%llu mmapped, %llu unreachable, %zu roots; %s\n",
			err, h.narenas, h.nblocks, (unsigned long long)h.inuse_bytes,
			(unsigned long long)h.free_bytes, (unsigned long long)h.free_chunks,
			(unsigned long long)h.mmapped_chunks, (unsigned long long)h.unreachable_blocks, h.nroots,
			h.problem);
	for (i = 0; err == 0 && i < h.nblocks; i++) {
		const char *names[XP_HEAP_PATH_MAX];
		size_t n = xp_heap_story(&h, i, names), k;
		if (n == 0 || n > XP_HEAP_PATH_MAX || (i > 0 && h.blocks[i - 1].addr >= h.blocks[i].addr))
			abort();
		for (k = 0; k < n; k++) {
			sink += strlen(names[k]);
			if (verbose && k == 0)
				fprintf(stderr, "  0x%llx %llu:", (unsigned long long)h.blocks[i].addr,
					(unsigned long long)h.blocks[i].size);
			if (verbose)
				fprintf(stderr, " %s%s", names[k], k + 1 < n ? " <-" : "\n");
		}
	}
	xp_heap_free(&h);
	xp_space_close(space);
	return 0;
}

/* ---- seeds: well-formed heaps ---------------------------------------------- */

struct image {
	uint8_t hdr[1 + NTHREADS * (6 * 8 + 4) + NWIN * 8];
	uint8_t *win[NWIN];
	uint64_t len[NWIN], dlen[NWIN];
};

/* where a run-time address lands in the seed's window data */
static void poke(struct image *im, uint64_t addr, uint64_t v)
{
	int w = (int)((addr - IMAGE_BASE) / WIN_STRIDE);
	uint64_t off = addr - win(w) - (is_lib(w) ? LIB_TEXT : 0);

	if (w < 0 || w >= NWIN || off + 8 > WIN_MAX)
		abort();
	memcpy(im->win[w] + off, &v, 8);
	if (off + 8 > im->dlen[w])
		im->dlen[w] = off + 8;
	if (im->dlen[w] > im->len[w])
		im->len[w] = (im->dlen[w] + PAGE - 1) & ~(PAGE - 1);
}

static void poke32(struct image *im, uint64_t addr, uint32_t a, uint32_t b)
{
	poke(im, addr, (uint64_t)b << 32 | a);
}

static void set_thread(struct image *im, int t, uint64_t fs_base, uint64_t rsp, uint64_t rip, uint64_t rax,
		       uint32_t stack_len)
{
	uint64_t v[6] = { fs_base, rsp, rip, 0, rax, 0 };
	uint8_t *p = im->hdr + 1 + (size_t)t * (6 * 8 + 4);

	memcpy(p, v, sizeof(v));
	memcpy(p + sizeof(v), &stack_len, 4);
}

static void save(struct image *im, const char *dir, const char *name)
{
	uint8_t *out, *p;
	size_t total = sizeof(im->hdr);
	int w;

	for (w = 0; w < NWIN; w++) {
		uint32_t l = (uint32_t)im->len[w], d = (uint32_t)im->dlen[w];
		memcpy(im->hdr + 1 + NTHREADS * (6 * 8 + 4) + 8 * w, &l, 4);
		memcpy(im->hdr + 1 + NTHREADS * (6 * 8 + 4) + 8 * w + 4, &d, 4);
		total += im->dlen[w];
	}
	out = p = malloc(total);
	if (!out)
		abort();
	memcpy(p, im->hdr, sizeof(im->hdr));
	p += sizeof(im->hdr);
	for (w = 0; w < NWIN; w++) {
		memcpy(p, im->win[w], im->dlen[w]);
		p += im->dlen[w];
	}
	fuzz_write_seed(dir, name, out, total);
	free(out);
}

/* a chunk header: size with its flag bits */
static void chunk(struct image *im, uint64_t c, uint64_t size_and_flags)
{
	poke(im, c + 8, size_and_flags);
}

static uint64_t protect(uint64_t field, uint64_t ptr)
{
	return (field >> 12) ^ ptr;
}

/* The symbols of the stand-in libraries, where libdw puts them. */
struct syms {
	uint64_t main_arena, mp, tls_desc, r_debug, vtable, held, tcache_tls;
};

static void find_syms(struct syms *y)
{
	uint64_t len[NWIN] = { 16 << 10, 16 << 10 };
	struct xp_map v[2 * NWIN];
	struct xp_maps maps = { v, make_maps(len, v) };
	struct xp_space *sp;
	uint64_t base;
	int tls, bad;

	if (xp_space_open(getpid(), &maps, NULL, 0, &sp) < 0)
		abort();
	bad = xp_space_lookup(sp, "libc.so", "main_arena", &y->main_arena, &tls, &base) < 0 ||
	      xp_space_lookup(sp, "libc.so", "mp_", &y->mp, &tls, &base) < 0 ||
	      xp_space_lookup(sp, "libc.so", "_thread_db_link_map_l_tls_offset", &y->tls_desc, &tls, &base) < 0 ||
	      xp_space_lookup(sp, "ld-linux", "_r_debug", &y->r_debug, &tls, &base) < 0 ||
	      xp_space_lookup(sp, "libc.so", "_ZTV3Foo", &y->vtable, &tls, &base) < 0 ||
	      xp_space_lookup(sp, "libc.so", "held", &y->held, &tls, &base) < 0 ||
	      xp_space_lookup(sp, "libc.so", "tcache", &y->tcache_tls, &tls, &base) < 0 || !tls;
	xp_space_close(sp);
	if (bad)
		abort();
}

/* A heap as glibc 2.36 leaves it (FACTS.md sec. 3): the main heap with the
 * main thread's tcache, blocks held by a global and by the stack, a
 * register pointing into one, a C++ object, a leak and what only it holds, a tcache'd, a
 * fastbin'd and a consolidated free chunk; optionally a thread arena and
 * an mmapped chunk. */
static void heap_seed(const char *dir, const char *name, int thread_arena, int mmapped, int nthreads)
{
	struct image im;
	struct syms y;
	const uint64_t H = win(W_HEAP), TH = win(W_ANON1), MM = win(W_ANON2), S = win(W_STACK);
	uint64_t tc = H + 16, c1 = H + 0x290, c2 = c1 + 0x20, c3 = c2 + 0x30, c4 = c3 + 0x20, c5 = c4 + 0x20,
		 c6 = c5 + 0x40, c7 = c6 + 0x20, c8 = c7 + 0x90, top = c8 + 0x20;
	uint64_t ta = TH + 0x30, t1 = TH + 0x8d0, ttop = t1 + 0x20;
	uint64_t lm1 = win(W_LD) + 0x2000, lm2 = lm1 + 0x200, slot = win(W_LD) + 0x2800, tls_off = 0x80;
	int w;

	find_syms(&y);
	memset(&im, 0, sizeof(im));
	for (w = 0; w < NWIN; w++)
		if (!(im.win[w] = calloc(1, WIN_MAX)))
			abort();
	im.hdr[0] = (uint8_t)nthreads;

	/* libc: main_arena, mp_, the TLS descriptor, a global holding c1 and c2 */
	poke(&im, y.main_arena + 16, c4); /* fastbinsY[0]: a raw head */
	poke(&im, y.main_arena + 96, top);
	poke(&im, y.main_arena + 2160, thread_arena ? ta : y.main_arena);
	poke(&im, y.main_arena + 2184, 0x21000);
	poke(&im, y.mp + 96, H); /* sbrk_base */
	poke32(&im, y.mp + 56, 0, mmapped); /* n_mmaps at 60 */
	poke32(&im, y.tls_desc, 64, 1);
	poke32(&im, y.tls_desc + 8, 0x100, 0);
	poke(&im, y.held, c1 + 16);
	poke(&im, y.held + 8, c2 + 16);

	/* ld.so: _r_debug's r_map, a link map of two (the program, libc) */
	poke(&im, y.r_debug, 1);
	poke(&im, y.r_debug + 8, lm1);
	poke(&im, lm1, 0x555555554000);
	poke(&im, lm1 + 24, lm2);
	poke(&im, lm2, win(W_LIBC)); /* l_addr: libc's load base */
	poke(&im, lm2 + 0x100, tls_off);
	poke(&im, slot, tc);          /* the main thread's tcache pointer */

	/* the main heap */
	chunk(&im, H, 0x291);         /* the tcache itself */
	poke(&im, tc, 1);             /* counts[0] */
	poke(&im, tc + 128, c3 + 16); /* entries[0] */
	chunk(&im, c1, 0x21);
	chunk(&im, c2, 0x31);
	poke(&im, c2 + 16, y.vtable + 16); /* a Foo */
	chunk(&im, c3, 0x21);
	poke(&im, c3 + 16, protect(c3 + 16, 0)); /* tcache'd: next, safe-linked */
	poke(&im, c3 + 24, 0x1234);              /* its key */
	chunk(&im, c4, 0x21);
	poke(&im, c4 + 16, protect(c4 + 16, 0)); /* fastbin'd */
	chunk(&im, c5, 0x41);
	poke(&im, c5 + 16, c6 + 16); /* the leak holds c6 */
	chunk(&im, c6, 0x21);
	chunk(&im, c7, 0x91); /* free: c8 says so */
	poke(&im, c7 + 16, y.main_arena + 96);
	poke(&im, c7 + 24, y.main_arena + 96);
	poke(&im, c8, 0x90);
	chunk(&im, c8, 0x20); /* PREV_INUSE clear */
	chunk(&im, top, (PAGE - (top - H)) | 1);
	im.len[W_HEAP] = PAGE;

	if (thread_arena) {
		poke(&im, TH, ta); /* heap_info: ar_ptr, prev, size */
		poke(&im, TH + 8, 0);
		poke(&im, TH + 16, PAGE);
		poke(&im, ta + 96, ttop);
		poke(&im, ta + 2160, y.main_arena);
		chunk(&im, t1, 0x25);
		chunk(&im, ttop, (PAGE - (ttop - TH)) | 1);
		im.len[W_ANON1] = PAGE;
	}
	if (mmapped) {
		poke(&im, MM, 0);
		chunk(&im, MM, 0x2002);
		poke(&im, MM + 16, c6 + 16);
		im.len[W_ANON2] = 0x2000;
	}

	/* the stack: rsp at 0x800, holding c8, t1 and the mmapped block */
	poke(&im, S + 0x800, c8 + 16);
	poke(&im, S + 0x808, thread_arena ? t1 + 16 : 0);
	poke(&im, S + 0x810, mmapped ? MM + 16 : 0);
	im.len[W_STACK] = PAGE;
	set_thread(&im, 0, slot + tls_off - y.tcache_tls, S + 0x800, win(W_LIBC) + 0x300, c2 + 24, 0x800);
	set_thread(&im, 1, 0, S + 0xc00, 0, 0, 0x100);
	if (im.len[W_LIBC] < PAGE)
		im.len[W_LIBC] = PAGE;
	save(&im, dir, name);
	for (w = 0; w < NWIN; w++)
		free(im.win[w]);
}

static void write_seeds(const char *dir)
{
	heap_seed(dir, "main-arena", 0, 0, 1);
	heap_seed(dir, "thread-arena", 1, 0, 1);
	heap_seed(dir, "mmapped", 0, 1, 2);
	heap_seed(dir, "all", 1, 1, 2);
}
