/* One step up from a frame of code with no CFI (x86-64): JIT code in
 * anonymous memory, a module without .eh_frame at that pc.
 *
 * Where the function's start is known (a perf map or jitdump names it),
 * its prologue says how big its frame is: the pushes and the sub from rsp
 * a compiler emits first (LLVM's JIT code for PostgreSQL keeps no frame
 * pointer).  Otherwise the frame-pointer chain ([rbp] the caller's rbp,
 * [rbp + 8] the return address).  Either is kept only where the result is
 * plausible: the return address lies in executable memory right after a
 * call instruction, the caller's frame is above this one on the stack and
 * not absurdly far, and the words are readable; a frame-pointer step also
 * must not jump over another return address.  A function stopped in its prologue or epilogue has a
 * partial frame: the code bytes at pc say which.
 */
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "symbolize/symbolize.h"
#include "unwind/unwind_internal.h"

#define FP_FRAME_MAX (1u << 20) /* a larger step between two frames is not one */
#define PROLOGUE_MAX 64         /* bytes of a function's start read for its prologue */
#define EPILOGUE_MAX 24         /* bytes at a stopped pc read for an epilogue */
#define FP_CHECK_MAX 4096       /* stack below a frame pointer's frame checked for a return address */

#define OP_PUSH_RBP 0x55
#define OP_RET 0xc3
static const unsigned char mov_rbp_rsp[3] = { 0x48, 0x89, 0xe5 };

/* Where the frame of the code at pc keeps its return address and the
 * caller's rbp: 0 the usual frame, 1 before its push %rbp or at its ret
 * (return address at [sp]), 2 between push %rbp and mov %rsp,%rbp. */
static int leaf_shape(struct xp_space *s, uint64_t pc)
{
	unsigned char code[4];

	if (xp_space_read_code(s, pc - 1, code, sizeof(code)) < 0)
		return 0;
	if (code[1] == OP_PUSH_RBP || code[1] == OP_RET)
		return 1;
	if (code[0] == OP_PUSH_RBP && memcmp(code + 1, mov_rbp_rsp, sizeof(mov_rbp_rsp)) == 0)
		return 2;
	return 0;
}

/* v is a return address: it lies in code, right after a call instruction
 * (call rel32; call through a register, memory at a register plus an
 * offset, or rip plus an offset). */
static int is_return_address(struct xp_space *s, uint64_t v)
{
	unsigned char c[7];

	if (v < sizeof(c) || xp_space_code_kind(s, v - 1) == 0 || xp_space_read_code(s, v - 7, c, 7) < 0)
		return 0;
	return c[2] == 0xe8 ||                                           /* call rel32 */
	       (c[5] == 0xff && ((c[6] & 0xf8) == 0xd0 || (c[6] & 0xf8) == 0x10)) || /* *%reg, *(%reg) */
	       (c[4] == 0xff && (c[5] & 0xf8) == 0x50) ||                 /* *disp8(%reg) */
	       (c[3] == 0xff && c[4] == 0x54) ||                          /* *disp8(base,index) */
	       (c[4] == 0xff && c[5] == 0x14) ||                          /* *(base,index) */
	       (c[1] == 0xff && ((c[2] & 0xf8) == 0x90 || c[2] == 0x15)) || /* *disp32(%reg), *disp32(%rip) */
	       (c[0] == 0xff && c[1] == 0x94);                            /* *disp32(base,index) */
}

/* The frame pointer's frame starts at bp; code without a frame pointer
 * (LLVM's, by default) leaves rbp to its caller, and the chain then skips
 * the caller.  A return address between sp and that frame says so. */
static int frame_skipped(struct xp_space *s, struct xp_mem *mem, uint64_t sp, uint64_t bp)
{
	uint64_t words[FP_CHECK_MAX / 8];
	size_t n = (size_t)(bp - sp) / 8, i;

	if (bp - sp > FP_CHECK_MAX)
		return 1; /* too far to check: not trusted */
	if (n > 0 && xp_mem_read_full(mem, sp, words, n * 8) < 0)
		return 1;
	for (i = 0; i < n; i++)
		if (is_return_address(s, words[i]))
			return 1;
	return 0;
}

/* A function's frame as far as its prologue has run: d bytes pushed or
 * reserved below the return address; where rbp was saved (rbp_d: it is
 * at CFA - 8 - rbp_d) and whether rbp was made the frame pointer (then
 * rbp = CFA - 8 - fp_d). */
struct frame_shape {
	uint64_t d, rbp_d, fp_d;
	int rbp_saved, fp;
};

static int is_push(const unsigned char *c, size_t i, size_t n, size_t *len)
{
	if (c[i] >= 0x50 && c[i] <= 0x57) {
		*len = 1;
		return 1;
	}
	if (i + 1 < n && c[i] == 0x41 && c[i + 1] >= 0x50 && c[i + 1] <= 0x57) {
		*len = 2;
		return 1;
	}
	return 0;
}

/* The prologue of code c (n bytes read from the function's start), of
 * which the first ran bytes have run. */
static void prologue(const unsigned char *c, size_t n, uint64_t ran, struct frame_shape *f)
{
	static const unsigned char endbr64[4] = { 0xf3, 0x0f, 0x1e, 0xfa };
	size_t i = 0, len;

	memset(f, 0, sizeof(*f));
	if (n >= 4 && memcmp(c, endbr64, 4) == 0)
		i = 4;
	while (i < n && i < ran) {
		if (is_push(c, i, n, &len)) {
			f->d += 8;
			if (len == 1 && c[i] == OP_PUSH_RBP) {
				f->rbp_saved = 1;
				f->rbp_d = f->d;
			}
			i += len;
		} else if (i + 3 <= n && memcmp(c + i, mov_rbp_rsp, 3) == 0) {
			f->fp = 1;
			f->fp_d = f->d;
			i += 3;
		} else if (i + 4 <= n && c[i] == 0x48 && c[i + 1] == 0x83 && c[i + 2] == 0xec && c[i + 3] < 0x80) {
			f->d += c[i + 3]; /* sub $imm8, %rsp */
			i += 4;
		} else if (i + 7 <= n && c[i] == 0x48 && c[i + 1] == 0x81 && c[i + 2] == 0xec) {
			uint32_t imm;
			memcpy(&imm, c + i + 3, 4); /* sub $imm32, %rsp */
			if (imm > FP_FRAME_MAX)
				break;
			f->d += imm;
			i += 7;
		} else {
			break;
		}
	}
}

/* A stopped pc in an epilogue: pops left before its ret (-1: not one);
 * *rbp_at: which of them pops rbp (-1: none). */
static int epilogue_pops(const unsigned char *c, size_t n, int *rbp_at)
{
	size_t i = 0, len;
	int pops = 0;

	*rbp_at = -1;
	while (i < n) {
		if (c[i] == OP_RET)
			return pops;
		if (c[i] >= 0x58 && c[i] <= 0x5f) {
			len = 1;
		} else if (i + 1 < n && c[i] == 0x41 && c[i + 1] >= 0x58 && c[i + 1] <= 0x5f) {
			len = 2;
		} else {
			return -1;
		}
		if (len == 1 && c[i] == 0x5d)
			*rbp_at = pops;
		pops++;
		i += len;
	}
	return -1;
}

/* The caller's pc, sp and bp from the frame of a function starting at
 * start, as its prologue (and, for a stopped pc, its epilogue) shape it. */
static int prologue_step(struct xp_space *s, struct xp_mem *mem, uint64_t start, int leaf, uint64_t pc, uint64_t sp,
			 uint64_t bp, uint64_t *cfa, uint64_t *caller_bp)
{
	unsigned char code[PROLOGUE_MAX], tail[EPILOGUE_MAX];
	struct frame_shape f;
	size_t n = sizeof(code);
	int pops, rbp_at;

	while (n > 0 && xp_space_read_code(s, start, code, n) < 0)
		n /= 2; /* a short function at the end of its mapping */
	if (n == 0)
		return -EFAULT;
	prologue(code, n, pc - start, &f);
	*caller_bp = bp;
	if (leaf && xp_space_read_code(s, pc, tail, sizeof(tail)) == 0 &&
	    (pops = epilogue_pops(tail, sizeof(tail), &rbp_at)) >= 0) {
		*cfa = sp + 8 * (uint64_t)pops + 8;
		if (rbp_at >= 0 && xp_mem_read_full(mem, sp + 8 * (uint64_t)rbp_at, caller_bp, 8) < 0)
			return -EFAULT;
		return 0;
	}
	*cfa = f.fp ? bp + f.fp_d + 8 : sp + f.d + 8;
	if (f.rbp_saved && xp_mem_read_full(mem, *cfa - 8 - f.rbp_d, caller_bp, 8) < 0)
		return -EFAULT;
	return 0;
}

int xp_fp_step(struct xp_space *s, struct xp_mem *mem, int leaf, uint64_t *pc, uint64_t *sp, uint64_t *bp)
{
	uint64_t ra, saved_bp = *bp, cfa, start, end;
	int shape = leaf ? leaf_shape(s, *pc) : 0;

	/* a named function: its prologue, when that gives a plausible frame */
	if (xp_space_jit_func(s, *pc - (leaf ? 0 : 1), &start, &end) == 0 &&
	    prologue_step(s, mem, start, leaf, *pc, *sp, *bp, &cfa, &saved_bp) == 0 && cfa > *sp &&
	    cfa - *sp <= FP_FRAME_MAX && xp_mem_read_full(mem, cfa - 8, &ra, 8) == 0 && is_return_address(s, ra)) {
		*pc = ra;
		*sp = cfa;
		*bp = saved_bp;
		return 0;
	}
	saved_bp = *bp;
	switch (shape) {
	case 1:
		cfa = *sp + 8;
		break;
	case 2:
		cfa = *sp + 16;
		if (xp_mem_read_full(mem, *sp, &saved_bp, 8) < 0)
			return -EFAULT;
		break;
	default:
		/* the frame lies above the stack pointer, aligned */
		if (*bp < *sp || *bp - *sp > FP_FRAME_MAX || (*bp & 7) != 0 || frame_skipped(s, mem, *sp, *bp))
			return -EINVAL;
		if (xp_mem_read_full(mem, *bp, &saved_bp, 8) < 0)
			return -EFAULT;
		cfa = *bp + 16;
		break;
	}
	if (cfa <= *sp || xp_mem_read_full(mem, cfa - 8, &ra, 8) < 0)
		return -EFAULT;
	if (!is_return_address(s, ra))
		return -EINVAL;
	*pc = ra;
	*sp = cfa;
	*bp = saved_bp;
	return 0;
}
