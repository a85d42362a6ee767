/* One step up the frame-pointer chain (x86-64), for code with no CFI: JIT
 * code in anonymous memory, a module without .eh_frame at that pc.  Such
 * code is trusted to keep the System V frame ([rbp] the caller's rbp,
 * [rbp + 8] the return address) only where the result is plausible: the
 * return address lies in executable memory, the caller's frame is above
 * this one on the stack and not absurdly far, and the words are readable.
 * A function stopped in its prologue or at its ret has no frame of its own
 * yet (or any more): the code bytes at pc say which.
 */
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "symbolize/symbolize.h"
#include "unwind/unwind_internal.h"

#define FP_FRAME_MAX (1u << 20) /* a larger step between two frames is not one */

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

int xp_fp_step(struct xp_space *s, struct xp_mem *mem, int leaf, uint64_t *pc, uint64_t *sp, uint64_t *bp)
{
	uint64_t ra, saved_bp = *bp, cfa;
	int shape = leaf ? leaf_shape(s, *pc) : 0;

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
		if (*bp < *sp || *bp - *sp > FP_FRAME_MAX || (*bp & 7) != 0)
			return -EINVAL;
		if (xp_mem_read_full(mem, *bp, &saved_bp, 8) < 0)
			return -EFAULT;
		cfa = *bp + 16;
		break;
	}
	if (cfa <= *sp || xp_mem_read_full(mem, cfa - 8, &ra, 8) < 0)
		return -EFAULT;
	if (ra == 0 || xp_space_code_kind(s, ra - 1) == 0)
		return -EINVAL;
	*pc = ra;
	*sp = cfa;
	*bp = saved_bp;
	return 0;
}
