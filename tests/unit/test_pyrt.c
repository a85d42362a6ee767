/* pyrt/ over hostile interpreters (tier a): fake CPython 3.11 (and 3.13:
 * debug offsets, entry frames) thread
 * states, frames, code objects, strings and location tables built in our
 * own memory and read through the local backend, as torn or hostile as a
 * target's can be: frame chains that loop, pointers into nothing, code
 * pointers to what is no code object, lengths of 2^40, location tables of
 * noise.  Every walk must end, bounded, with what could be read.  Prints TAP. */
#define _GNU_SOURCE
#include <errno.h>
#include <unistd.h>

#include "attach/attach.h"
#include "pyrt/pyrt.h"
#include "tests/unit/tap.h"
#include "symbolize/symbolize.h"
#include "unwind/unwind.h"

/* stands for the interpreter loop: merges look for its name */
__attribute__((noinline)) int _PyEval_EvalFrameDefault(int x);
__attribute__((noinline)) int _PyEval_EvalFrameDefault(int x)
{
	__asm__ volatile("" ::: "memory");
	return x + 1;
}

#define A(x) ((uint64_t)(uintptr_t)(x))
static uint8_t code_type[64] __attribute__((aligned(16)));

/* the fake objects: never freed, so from one static arena */
static uint8_t arena[8 << 20] __attribute__((aligned(16)));
static size_t arena_used;

static void *zalloc(size_t n)
{
	uint8_t *p = arena + arena_used;

	n = (n + 15) & ~(size_t)15;
	if (arena_used + n > sizeof(arena)) {
		printf("Bail out! test arena full\n");
		exit(1);
	}
	arena_used += n;
	memset(p, 0, n);
	return p;
}

static void put64(uint8_t *p, size_t off, uint64_t v)
{
	memcpy(p + off, &v, 8);
}

/* a compact ASCII str of text, its length field set to len */
static uint8_t *str_obj(const char *text, uint64_t len)
{
	uint8_t *s = zalloc(48 + 4096);
	uint32_t state = 1u << 5 | 1u << 6 | 1u << 2 | 1u << 7;

	memset(s, 'x', 48 + 4096);
	put64(s, 16, len);
	memcpy(s + 32, &state, 4);
	memcpy(s + 48, text, strlen(text) + 1);
	return s;
}

static uint8_t *bytes_obj(const uint8_t *data, size_t n, uint64_t size_field)
{
	uint8_t *b = zalloc(32 + n + 16);

	memset(b, 0, 32 + n + 16);
	put64(b, 16, size_field);
	memcpy(b + 32, data, n);
	return b;
}

static uint8_t *code_obj(const char *qual, const char *file, uint8_t *table)
{
	uint8_t *c = zalloc(512);

	memset(c, 0, 512);
	put64(c, 8, A(code_type));
	memcpy(c + 72, &(int32_t){ 10 }, 4);
	put64(c, 112, A(str_obj(file, strlen(file))));
	put64(c, 120, A(str_obj(qual, strlen(qual))));
	put64(c, 128, A(str_obj(qual, strlen(qual))));
	put64(c, 136, A(table));
	return c;
}

static uint8_t *frame_obj(uint8_t *code, unsigned lasti, uint64_t previous, int entry)
{
	uint8_t *f = zalloc(96);

	memset(f, 0, 96);
	put64(f, 32, A(code));
	put64(f, 48, previous);
	put64(f, 56, A(code) + 184 + 2 * lasti);
	f[68] = (uint8_t)entry;
	return f;
}

static struct xp_space *space;
static struct xp_py *py;
static uint64_t fake_stack[64];

/* One activation of the fake loop whose C frame holds a _PyCFrame whose
 * current frame is top; merged.  Returns the merge's stack. */
static struct xp_stack *merge(uint64_t top, struct xp_py_merge *m)
{
	static struct xp_stack st;
	struct xp_py_thread t = { .tstate = 0, .tid = 1, .cframe = A(&fake_stack[8]) };

	memset(&st, 0, sizeof(st));
	fake_stack[9] = top;  /* current_frame */
	fake_stack[10] = 0;   /* previous */
	st.pc[0] = A(_PyEval_EvalFrameDefault) + 1;
	st.sp[0] = A(&fake_stack[0]);
	st.n = 1;
	xp_py_merge_stack(py, &t, NULL, &st, NULL, m);
	return &st;
}

static const struct xp_frame *frame_at(const struct xp_stack *st, size_t i)
{
	const struct xp_sym *s = i < st->n ? xp_symbolize(space, st->pc[i], st->is_call[i]) : NULL;

	return s && s->nframes == 1 ? &s->frames[0] : NULL;
}

/* 3.13's _Py_DebugOffsets as 3.13.0 has them (pyenv's build, gdb print
 * _PyRuntime.debug_offsets): the u64 at each offset of the block */
static const struct { unsigned at; uint64_t v; } do313[] = {
	{ 8, 0x030d00f0 }, { 16, 0 }, { 24, 0x452b8 }, { 32, 0x260 }, { 40, 0x278 },
	{ 48, 0x2f998 }, { 56, 0x1c68 }, { 64, 0x1c60 }, { 72, 0x1cb0 }, { 112, 0x10 }, { 120, 0x1e48 },
	{ 128, 0 }, { 136, 0x1e58 }, { 144, 0x1e50 },
	{ 152, 0x130 }, { 160, 0 }, { 168, 8 }, { 176, 0x10 }, { 184, 0x48 }, { 192, 0x98 }, { 200, 0xa0 },
	{ 224, 0x50 }, { 232, 8 }, { 240, 0 }, { 248, 0x38 }, { 256, 0x48 }, { 264, 0x46 },
	{ 272, 0xd0 }, { 280, 0x70 }, { 288, 0x78 }, { 296, 0x80 }, { 304, 0x88 }, { 312, 0x44 }, { 344, 0xc8 },
	{ 352, 0x10 }, { 360, 8 }, { 512, 0x28 }, { 520, 0x10 }, { 528, 0x20 },
	{ 536, 0x40 }, { 544, 0x20 }, { 552, 0x10 }, { 560, 0x28 },
};

/* 3.13's objects: a code object (names at 3.11's offsets, first line at
 * 0x44, instructions at 0xc8) whose strings have 3.12's shorter header
 * (text at 40), and an interpreter frame (f_executable 0, previous 8,
 * instr_ptr 0x38, owner 0x46). */
static uint8_t *code313(const char *qual)
{
	uint8_t *c = zalloc(512), *s = zalloc(40 + 64);
	static const uint8_t table[] = { 0xd8, 1, 2 }; /* units 0-0: line 11 */
	uint32_t state = 1u << 5 | 1u << 6 | 1u << 2;

	put64(s, 16, strlen(qual));
	memcpy(s + 32, &state, 4);
	memcpy(s + 40, qual, strlen(qual) + 1);
	put64(c, 8, A(code_type));
	put64(c, 16, 4);
	memcpy(c + 0x44, &(int32_t){ 10 }, 4);
	put64(c, 0x70, A(s));
	put64(c, 0x78, A(s));
	put64(c, 0x80, A(s));
	put64(c, 0x88, A(bytes_obj(table, sizeof(table), sizeof(table))));
	return c;
}

static void frame313(uint8_t *f, uint8_t *code, uint64_t previous, int owner)
{
	memset(f, 0, 0x48);
	put64(f, 0, A(code));
	put64(f, 8, previous);
	put64(f, 0x38, code ? A(code) + 0xc8 : 0);
	f[0x46] = (uint8_t)owner;
}

/* A native stack of two loop activations, their C frames at stack[16]
 * and stack[32]. */
static void two_loops(struct xp_stack *st, uint64_t *stack)
{
	memset(st, 0, sizeof(*st));
	st->pc[0] = st->pc[1] = A(_PyEval_EvalFrameDefault) + 1;
	st->sp[0] = A(&stack[16]);
	st->sp[1] = A(&stack[32]);
	st->n = 2;
}

/* Two loop activations (their C frames at stack[16] and stack[32]), each
 * keeping its entry frame (owner 3) in its own C frame: Python frames
 * a <- b <- entry0 <- c <- entry1.  Merged from the current frame t->cframe. */
static void frames313(struct xp_py *rt)
{
	static uint64_t stack[64];
	static uint8_t fa[0x48], fb[0x48], fc[0x48], fd[0x48] __attribute__((aligned(16)));
	uint8_t *e0 = (uint8_t *)&stack[20], *e1 = (uint8_t *)&stack[40], *ed = (uint8_t *)&stack[2];
	uint64_t pcs[XP_MAX_FRAMES];
	struct xp_py_thread t = { .tid = 1, .cframe = A(fa) };
	struct xp_py_merge m;
	struct xp_stack st;
	const struct xp_frame *f;

	frame313(fa, code313("a"), A(fb), 0);
	frame313(fb, code313("b"), A(e0), 0);
	frame313(e0, NULL, A(fc), 3);
	frame313(fc, code313("c"), A(e1), 0);
	frame313(e1, NULL, 0, 3);
	two_loops(&st, stack);
	ok(xp_py_merge_stack(rt, &t, NULL, &st, NULL, &m) == 0 && m.activations == 2 && m.replaced == 2 &&
	   m.pyframes == 3 && m.consistent && st.n == 3 && (f = frame_at(&st, 0)) && strcmp(f->function, "a") == 0 &&
	   f->line == 11 && (f = frame_at(&st, 2)) && strcmp(f->function, "c") == 0,
	   "3.13: two activations told apart by their entry frames: a, b, then c");

	/* the thread has called on since the stack was taken: a run of
	 * frames whose entry frame lies below the innermost activation */
	frame313(fd, code313("d"), A(ed), 0);
	frame313(ed, NULL, A(fa), 3);
	t.cframe = A(fd);
	two_loops(&st, stack);
	ok(xp_py_merge_stack(rt, &t, NULL, &st, NULL, &m) == 0 && m.replaced == 2 && m.pyframes == 3 && !m.consistent &&
	   (f = frame_at(&st, 0)) && strcmp(f->function, "a") == 0,
	   "3.13: a deeper activation the stack does not have is skipped, and said (not consistent)");

	/* the innermost activation has returned since: its entry frame is
	 * gone, c's comes first and belongs to the outer one */
	t.cframe = A(fc);
	two_loops(&st, stack);
	ok(xp_py_merge_stack(rt, &t, NULL, &st, NULL, &m) == 0 && m.activations == 2 && m.replaced == 1 &&
	   st.n == 2 && (f = frame_at(&st, 1)) && strcmp(f->function, "c") == 0 && !m.consistent,
	   "3.13: an activation that has returned keeps its native frame; the outer one gets c");

	t.cframe = A(fa);
	ok(xp_py_thread_stack(rt, &t, pcs, XP_MAX_FRAMES) == 3, "3.13: a thread's frames through its entry frames");
	put64(e1, 8, A(fa)); /* entry1 leads back to a: a loop */
	ok(xp_py_thread_stack(rt, &t, pcs, XP_MAX_FRAMES) == 3, "3.13: frames in a loop through entry frames: each once");
	put64(e1, 8, 0);
	put64(fb, 8, A(fb)); /* b its own caller, no entry frame reached */
	memset(&st, 0, sizeof(st));
	st.pc[0] = A(_PyEval_EvalFrameDefault) + 1;
	st.sp[0] = A(&stack[16]);
	st.n = 1;
	ok(xp_py_merge_stack(rt, &t, NULL, &st, NULL, &m) == 0 && m.replaced == 0 && st.n == 1,
	   "3.13: frames that never reach an entry frame: the native frame stays");
}

/* A fake 3.13 runtime: its debug offsets, one interpreter whose GIL
 * (its own, through ceval.gil) thread state 2 holds, two thread states.
 * The offsets refused when one is hostile. */
static void debug_offsets(struct xp_mem *mem)
{
	static uint8_t runtime[0x300] __attribute__((aligned(16))), interp[0x2000] __attribute__((aligned(16)));
	static uint8_t ts1[0x130] __attribute__((aligned(16))), ts2[0x130] __attribute__((aligned(16)));
	static const struct { unsigned at; uint64_t v; const char *what; } bad[] = {
		{ 0, 0x7a70677562656478, "the cookie xdebugpz" },
		{ 8, 0x030e00f0, "a 3.14 version" },
		{ 8, 0x030d00a1, "a 3.13 alpha's" },
		{ 16, 1, "a free-threaded build" },
		{ 40, 0x452b8, "interpreters.head past the runtime's size" },
		{ 48, 1ull << 40, "an interpreter state of 2^40 bytes" },
		{ 72, 0x2f998, "threads.head past the interpreter's size" },
		{ 136, 0x1e40, "the GIL's locked before the GIL" },
		{ 152, 1ull << 20, "a thread state of 1 MiB" },
		{ 184, 0x130, "current_frame past the thread state" },
		{ 248, 0x48, "instr_ptr past the frame's fixed part" },
		{ 264, 0x200, "owner past the frame" },
		{ 280, 0xc8, "co_filename at the instructions" },
		{ 344, 0x1000, "instructions at 4 KiB" },
		{ 360, 24, "ob_type at 24 (a free-threaded object header)" },
		{ 560, 0x1000, "a str header of 4 KiB" },
	};
	char why[200];
	struct xp_py *rt;
	struct xp_py_threads th;
	size_t i, k;

	memcpy(runtime, "xdebugpy", 8);
	for (i = 0; i < sizeof(do313) / sizeof(do313[0]); i++)
		put64(runtime, do313[i].at, do313[i].v);
	put64(runtime, 0x278, A(interp));
	put64(interp, 0x1cb0, A(ts1));
	put64(interp, 0x10, A(interp + 0x1e48)); /* ceval.gil: its own */
	put64(interp, 0x1e50, A(ts2));           /* last_holder */
	interp[0x1e58] = 1;                      /* locked */
	put64(ts1, 8, A(ts2));
	put64(ts1, 0xa0, 201);
	put64(ts2, 0xa0, 202);
	ok(xp_py_open_debug_offsets(space, mem, A(runtime), A(code_type), 0x030d00f0, &rt, why, sizeof(why)) == 0 &&
	   xp_py_threads_read(rt, &th) == 0 && th.n == 2 && th.gil_locked && !th.truncated &&
	   xp_py_thread_of(&th, 202) && xp_py_thread_of(&th, 202)->holds_gil && !xp_py_thread_of(&th, 201)->holds_gil,
	   "3.13's debug offsets: two thread states, the GIL holder through the interpreter's ceval.gil");
	xp_py_threads_free(&th);
	frames313(rt);
	xp_py_close(rt);
	ok(xp_py_open_debug_offsets(space, mem, A(runtime), A(code_type), 0x030c01f0, &rt, why, sizeof(why)) ==
		   -ENOTSUP && strstr(why, "version 0x30d00f0"),
	   "debug offsets of 3.13 in a 3.12: refused (%s)", why);
	for (k = 0; k < sizeof(bad) / sizeof(bad[0]); k++) {
		uint64_t keep;
		memcpy(&keep, runtime + bad[k].at, 8);
		put64(runtime, bad[k].at, bad[k].v);
		why[0] = '\0';
		rt = NULL;
		ok(xp_py_open_debug_offsets(space, mem, A(runtime), A(code_type), 0x030d00f0, &rt, why, sizeof(why)) ==
			   -ENOTSUP && !rt && why[0],
		   "debug offsets with %s: refused (%s)", bad[k].what, why);
		xp_py_close(rt);
		put64(runtime, bad[k].at, keep);
	}
}

int main(void)
{
	/* units 0-1 line 12 (no columns, +2), 2-4 line 12 (one line), 5 line 13 (+1) */
	static const uint8_t table[] = { 0xe9, 0x04, 0xd2, 1, 2, 0xd8, 1, 2 };
	struct xp_mem *mem = xp_mem_local();
	struct xp_maps maps;
	struct xp_py_merge m;
	struct xp_stack *st;
	const struct xp_frame *f;
	uint8_t *lt = bytes_obj(table, sizeof(table), sizeof(table));
	uint8_t *code = code_obj("Fake.method", "fake.py", lt), *outer = code_obj("outer", "fake.py", lt);
	uint8_t *f3, *f2, *f1, *a, *b, *noise, *junk;
	size_t i;

	ok(mem && xp_maps_read(getpid(), &maps) == 0 &&
	   xp_space_open(getpid(), &maps, mem, XP_SPACE_OWN_NAMESPACE, &space) == 0, "our own address space");
	ok(xp_py_open_known(space, mem, 0, A(code_type), &py) == 0, "a fake 3.11 interpreter");

	/* a good chain: leaf at unit 5, its caller at unit 0, the entry frame */
	f3 = frame_obj(outer, 2, 0x5555, 1); /* is_entry: the walk ends here, not at 0x5555 */
	f2 = frame_obj(code, 0, A(f3), 0);
	f1 = frame_obj(code, 5, A(f2), 0);
	st = merge(A(f1), &m);
	ok(m.activations == 1 && m.replaced == 1 && m.pyframes == 3 && st->n == 3,
	   "a chain of three frames ending at its entry frame replaces the loop's frame");
	f = frame_at(st, 0);
	ok(f && strcmp(f->function, "Fake.method") == 0 && strcmp(f->file, "fake.py") == 0 && f->line == 13,
	   "the leaf: qualified name, file, line 13 from the location table");
	f = frame_at(st, 1);
	ok(f && f->line == 12, "its caller at unit 0: line 12");
	f = frame_at(st, 2);
	ok(f && strcmp(f->function, "outer") == 0 && f->line == 12, "the entry frame: outer");

	/* a loop: two frames pointing at each other, neither an entry */
	a = frame_obj(code, 5, 0, 0);
	b = frame_obj(code, 5, A(a), 0);
	put64(a, 48, A(b));
	st = merge(A(a), &m);
	ok(m.pyframes == 2, "a chain that loops ends when a frame comes round again");

	/* a self-loop */
	put64(a, 48, A(a));
	st = merge(A(a), &m);
	ok(m.pyframes == 1, "a frame that is its own caller: one frame");

	/* pointers into nothing, a code pointer to what is no code object */
	junk = zalloc(512);
	memset(junk, 0x41, 512);
	f1 = frame_obj(code, 5, 0x10, 0);
	st = merge(A(f1), &m);
	ok(m.pyframes == 1, "a caller pointer into nothing: the walk stops there");
	f1 = frame_obj(junk, 5, 0, 1);
	st = merge(A(f1), &m);
	ok(m.replaced == 0 && st->n == 1 && !xp_pc_is_synthetic(st->pc[0]),
	   "a frame whose code is no code object: the native frame stays");
	st = merge(0xdeadbeef000ULL, &m);
	ok(m.replaced == 0 && st->n == 1, "a current frame pointer into nothing: the native frame stays");
	st = merge(A(junk), &m);
	ok(m.replaced == 0 && st->n == 1, "a current frame pointer to noise: the native frame stays");

	/* lengths of 2^40: a name cut at XP_PY_MAX_STRING, a table refused */
	{
		uint8_t *huge_lt = bytes_obj(table, sizeof(table), 1ULL << 40);
		uint8_t *c = code_obj("huge", "fake.py", huge_lt);
		uint8_t *name = str_obj("", 1ULL << 40);
		memset(name + 48, 'y', 4096);
		put64(c, 128, A(name));
		f1 = frame_obj(c, 5, 0, 1);
		st = merge(A(f1), &m);
		f = frame_at(st, 0);
		ok(f && strlen(f->function) == XP_PY_MAX_STRING && f->line == 10,
		   "a name of 2^40 characters is cut at 1024; a table of 2^40 bytes is not read (first line)");
	}

	/* location tables of noise: any line, never a crash or a hang */
	noise = zalloc(4096);
	srand(7);
	for (i = 0; i < 200; i++) {
		size_t k, n = (size_t)(rand() % 4096);
		uint8_t *c;
		for (k = 0; k < n; k++)
			noise[k] = (uint8_t)rand();
		c = code_obj("noisy", "fake.py", bytes_obj(noise, n, n));
		f1 = frame_obj(c, (unsigned)(rand() % 5000), 0, 1);
		merge(A(f1), &m);
		if (m.pyframes != 1)
			break;
	}
	ok(i == 200, "200 location tables of random bytes: each frame read, bounded");

	/* a long chain: cut at the stack's frame cap */
	{
		uint64_t prev = 0;
		for (i = 0; i < 5000; i++)
			prev = A(frame_obj(code, 5, prev, 0));
		st = merge(prev, &m);
		ok(st->n <= XP_MAX_FRAMES && m.pyframes <= XP_PY_MAX_FRAMES,
		   "a chain of 5000 frames is cut at the caps");
	}

	/* a thread known only by its thread state: every activation's frames,
	 * through the C frames' chain; a chain of C frames that loops */
	{
		static uint64_t cf1[3], cf2[3];
		uint64_t pcs[XP_MAX_FRAMES];
		struct xp_py_thread t = { .tid = 1, .cframe = A(cf1) };
		f3 = frame_obj(outer, 2, 0, 1);
		f2 = frame_obj(code, 0, 0, 1);
		f1 = frame_obj(code, 5, A(f2), 0);
		cf1[1] = A(f1), cf1[2] = A(cf2);
		cf2[1] = A(f3), cf2[2] = 0;
		ok(xp_py_thread_stack(py, &t, pcs, XP_MAX_FRAMES) == 3 &&
		   strcmp(xp_symbolize(space, pcs[2], 0)->frames[0].function, "outer") == 0,
		   "a thread's Python frames through its C frames: two activations, three frames");
		cf2[2] = A(cf1);
		ok(xp_py_thread_stack(py, &t, pcs, XP_MAX_FRAMES) == 3, "C frames in a loop: each frame once");
	}

	/* thread states in a loop */
	{
		static uint8_t runtime[0x200] __attribute__((aligned(16))), interp[0x100] __attribute__((aligned(16)));
		static uint8_t ts1[512] __attribute__((aligned(16))), ts2[512] __attribute__((aligned(16)));
		struct xp_py *rt;
		struct xp_py_threads th;
		put64(runtime, 0x28, A(interp));
		put64(interp, 0x10, A(ts1));
		put64(ts1, 8, A(ts2));
		put64(ts2, 8, A(ts1));
		put64(ts1, 0xa0, 101);
		put64(ts2, 0xa0, 102);
		ok(xp_py_open_known(space, mem, A(runtime), A(code_type), &rt) == 0 && xp_py_threads_read(rt, &th) == 0 &&
		   th.n == 2 && th.truncated && xp_py_thread_of(&th, 102) != NULL,
		   "a thread list that loops: each thread once, marked truncated");
		xp_py_threads_free(&th);
		put64(ts2, 8, 0x7);
		ok(xp_py_threads_read(rt, &th) == 0 && th.n == 2 && th.truncated,
		   "a thread list ending in a bad pointer: what came before");
		xp_py_threads_free(&th);
		xp_py_close(rt);
	}

	debug_offsets(mem);
	xp_py_close(py);
	xp_space_close(space);
	xp_maps_free(&maps);
	xp_mem_close(mem);
	(void)skip, (void)read_file, (void)count_entries; /* tap.h's, unused here */
	printf("1..%d\n", test_no);
	return failures != 0;
}
