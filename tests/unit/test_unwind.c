/* Unwinding and symbolizing our own stack (tier b): a noinline chain that
 * crosses into libc (qsort calls back into us), captured with getcontext,
 * unwound by the same code that unwinds targets, reading our own memory
 * through the local backend.  Prints TAP. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <ucontext.h>
#include <unistd.h>

#include "attach/attach.h"
#include "symbolize/symbolize.h"
#include "unwind/unwind.h"

static int ntests, nfailed;

static void ok(int cond, const char *desc)
{
	ntests++;
	if (!cond)
		nfailed++;
	printf("%sok %d - %s\n", cond ? "" : "not ", ntests, desc);
}

static struct user_regs_struct captured;
static int captured_once;

static void to_user_regs(const ucontext_t *uc, struct user_regs_struct *r)
{
	const greg_t *g = uc->uc_mcontext.gregs;

	memset(r, 0, sizeof(*r));
	r->r8 = g[REG_R8], r->r9 = g[REG_R9], r->r10 = g[REG_R10], r->r11 = g[REG_R11];
	r->r12 = g[REG_R12], r->r13 = g[REG_R13], r->r14 = g[REG_R14], r->r15 = g[REG_R15];
	r->rdi = g[REG_RDI], r->rsi = g[REG_RSI], r->rbp = g[REG_RBP], r->rbx = g[REG_RBX];
	r->rdx = g[REG_RDX], r->rax = g[REG_RAX], r->rcx = g[REG_RCX], r->rsp = g[REG_RSP];
	r->rip = g[REG_RIP];
}

/* The unwind happens inside the innermost function, while the whole chain
 * is still on the stack. */
static struct xp_stack stack, stack_lu;
static int unwind_here(void);

static __attribute__((noinline)) int compare_and_capture(const void *a, const void *b)
{
	if (!captured_once) {
		ucontext_t uc;
		captured_once = 1;
		getcontext(&uc);
		to_user_regs(&uc, &captured);
		unwind_here();
	}
	return *(const int *)a - *(const int *)b;
}

static __attribute__((noinline)) void level_two(void)
{
	int v[4] = { 3, 1, 2, 0 };
	qsort(v, 4, sizeof(v[0]), compare_and_capture);
	__asm__ volatile("" ::: "memory");
}

static __attribute__((noinline)) void level_one(void)
{
	level_two();
	__asm__ volatile("" ::: "memory");
}

static struct xp_space *space;
static struct xp_mem *mem;
static struct xp_unwinder *unwinder, *unwinder_lu;

static int unwind_here(void)
{
	/* libunwind's too, while the same frames are live */
	if (unwinder_lu)
		xp_unwind(unwinder_lu, &captured, mem, &stack_lu);
	return xp_unwind(unwinder, &captured, mem, &stack);
}

int main(void);

/* Garbage registers and stacks: each unwinder stops within its caps,
 * without crashing.  Returns how many of the cases stayed bounded. */
static int hostile_cases(struct xp_unwinder *u, int *ncases)
{
	size_t words = 8192, i;
	uint64_t *junk = malloc(words * 8);
	uint64_t code[] = { (uint64_t)(uintptr_t)&level_one + 5, (uint64_t)(uintptr_t)&qsort + 3,
			    (uint64_t)(uintptr_t)&main, 0x4141414141414141ull, 8, 0 };
	int bounded = 0, pattern, k;

	*ncases = 0;
	if (!junk)
		return 0;
	srand(1234);
	for (pattern = 0; pattern < 4; pattern++) {
		for (i = 0; i < words; i++) {
			switch (pattern) {
			case 0: junk[i] = (uint64_t)(uintptr_t)&junk[i]; break;        /* points at itself */
			case 1: junk[i] = (uint64_t)(uintptr_t)&level_one + 9; break;  /* return addresses, forever */
			case 2: junk[i] = ((uint64_t)rand() << 32) ^ (uint64_t)rand(); break;
			default: junk[i] = i & 1 ? (uint64_t)(uintptr_t)&junk[i + 1] : code[i % 6]; break;
			}
		}
		for (k = 0; k < 6; k++) {
			struct user_regs_struct r;
			struct xp_region reg = { (uint64_t)(uintptr_t)junk, words * 8, (const uint8_t *)junk };
			struct xp_mem *snap = xp_mem_snapshot(&reg, 1, NULL);
			memset(&r, 0, sizeof(r));
			r.rip = code[k];
			r.rsp = k == 4 ? 8 : (uint64_t)(uintptr_t)&junk[16];
			r.rbp = (uint64_t)(uintptr_t)&junk[32];
			if (!snap)
				continue;
			(*ncases)++;
			xp_unwind(u, &r, snap, &stack);
			bounded += stack.n <= XP_MAX_FRAMES && (stack.complete || stack.capped || stack.error[0] || stack.n <= 1);
			xp_mem_close(snap);
		}
	}
	free(junk);
	return bounded;
}

static int stack_has(const char *name)
{
	size_t i, k;

	for (i = 0; i < stack.n; i++) {
		const struct xp_sym *s = xp_symbolize(space, stack.pc[i], stack.is_call[i]);
		for (k = 0; s && k < s->nframes; k++)
			if (strcmp(s->frames[k].function, name) == 0)
				return (int)i;
	}
	return -1;
}

int main(void)
{
	struct xp_maps maps;
	int a, b, c, d, e;

	mem = xp_mem_local();
	ok(mem != NULL, "local memory reader");
	ok(xp_maps_read(getpid(), &maps) == 0 && maps.n > 0, "our own maps");
	ok(xp_space_open(getpid(), &maps, mem, XP_SPACE_OWN_NAMESPACE, &space) == 0, "address space of our own process");
	ok(xp_unwinder_new_backend(space, XP_UNWIND_LIBUNWIND, &unwinder_lu) == 0, "libunwind's unwinder");
	ok(xp_unwinder_new(space, &unwinder) == 0, "unwinder");

	level_one();
	ok(stack.n >= 6, "the stack has at least 6 frames");
	ok(stack.complete, "the unwinder reached the outermost frame");
	a = stack_has("compare_and_capture");
	b = stack_has("qsort");
	if (b < 0)
		b = stack_has("__GI___qsort_r");
	if (b < 0)
		b = stack_has("msort_with_tmp");
	c = stack_has("level_two");
	d = stack_has("level_one");
	e = stack_has("main");
	ok(a == 0, "innermost frame: compare_and_capture");
	ok(b > a, "then into libc's qsort");
	ok(c > b, "back out of libc into level_two");
	ok(d > c && e > d, "then level_one and main");
	ok(stack_has("__libc_start_call_main") > e, "down to libc's start code");
	ok(stack_lu.n == stack.n && memcmp(stack_lu.pc, stack.pc, stack.n * sizeof(stack.pc[0])) == 0 &&
		   memcmp(stack_lu.is_call, stack.is_call, stack.n) == 0 && stack_lu.complete,
	   "libunwind's unwinder gives the same frames, complete");
	{
		int n, b = hostile_cases(unwinder, &n);
		ok(n == 24 && b == n, "libdw: 24 garbage stacks and registers, each unwind bounded");
		b = hostile_cases(unwinder_lu, &n);
		ok(n == 24 && b == n, "libunwind: the same 24, each unwind bounded, no crash");
	}

	/* a snapshot region shadows the memory below it */
	{
		static const uint8_t copy[16] = { 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16 };
		static uint8_t real[32];
		struct xp_region r = { (uint64_t)(uintptr_t)real, sizeof(copy), copy };
		struct xp_mem *snap = xp_mem_snapshot(&r, 1, mem);
		uint8_t buf[32];
		ssize_t n = xp_mem_read(snap, (uint64_t)(uintptr_t)real, buf, sizeof(buf));
		ok(n == 16 && buf[0] == 1 && buf[15] == 16, "snapshot reads stop at the end of a region");
		n = xp_mem_read(snap, (uint64_t)(uintptr_t)real + 16, buf, 16);
		ok(n == 16 && buf[0] == 0, "and fall through to the memory below past it");
		ok(xp_mem_read_full(snap, 8, buf, 8) < 0,
		   "an unmapped address is an error, not a crash");
		xp_mem_close(snap);
	}
	{
		const struct xp_map *m = xp_maps_find(&maps, (uint64_t)(uintptr_t)&main);
		ok(m && m->perms[2] == 'x', "xp_maps_find finds our code in an executable mapping");
		ok(xp_maps_find(&maps, 8) == NULL, "and nothing at address 8");
	}
	{
		char *d1 = xp_demangle("_ZN3app5QueueIiE3popEv");
		char *d2 = xp_demangle("_ZN4core3ptr13drop_in_place17h1234567890abcdefE");
		ok(d1 && strcmp(d1, "app::Queue<int>::pop()") == 0, "C++ names demangle");
		ok(d2 && strstr(d2, "core::ptr::drop_in_place") != NULL, "Rust legacy names demangle");
		ok(xp_demangle("main") == NULL, "C names are left alone");
		free(d1);
		free(d2);
	}

	xp_unwinder_free(unwinder);
	xp_unwinder_free(unwinder_lu);
	xp_space_close(space);
	xp_mem_close(mem);
	xp_maps_free(&maps);
	printf("1..%d\n", ntests);
	return nfailed != 0;
}
