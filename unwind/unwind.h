/* unwind/ — from registers and memory to a list of return addresses.
 *
 * DWARF CFI (.eh_frame, .debug_frame) through libdw's unwinder, so code
 * built -fomit-frame-pointer unwinds through libc, PLT stubs, the vdso and
 * signal frames.  Code without CFI (JIT code in anonymous memory, a module
 * without .eh_frame) is walked up its frame-pointer chain where that is
 * plausible, and CFI takes over again past it.  It unwinds from copies (a stopped thread's registers and
 * stack, a perf sample) the same way as from a live thread: only the
 * registers and the memory reader differ.
 */
#ifndef XPROF_UNWIND_UNWIND_H
#define XPROF_UNWIND_UNWIND_H

#include <stddef.h>
#include <stdint.h>
#include <sys/user.h>

#include "attach/attach.h"
#include "symbolize/symbolize.h"

#define XP_MAX_FRAMES 256 /* deeper stacks are cut there, with a warning */

struct xp_stack {
	uint64_t pc[XP_MAX_FRAMES];
	/* 1 when pc is a return address (look up pc - 1); 0 for the current pc
	 * of the innermost frame and of a frame a signal interrupted */
	unsigned char is_call[XP_MAX_FRAMES];
	uint64_t sp[XP_MAX_FRAMES];     /* the stack pointer in each frame (0: unknown) */
	size_t n;
	int complete;   /* the unwinder reached the outermost frame */
	int capped;     /* stopped at XP_MAX_FRAMES */
	/* the last pc is a return address in no executable mapping: where
	 * unwinding stopped, kept as the stack's end (the stack is incomplete) */
	int end_unplaced;
	size_t fp_frames; /* frames found through the frame-pointer chain (code without CFI) */
	char error[128];/* why it stopped early, when !complete && !capped */
};

struct xp_unwinder;

/* Which unwinder xp_unwinder_new builds.  libdw's is the default; libunwind's
 * (native code only, no Go frames) is there to compare them (bench/). */
enum xp_unwind_backend { XP_UNWIND_LIBDW, XP_UNWIND_LIBUNWIND };
/* "libdw" or "libunwind": 0 and *b set, or -EINVAL. */
int xp_unwind_backend_parse(const char *name, enum xp_unwind_backend *b);
/* For every unwinder made after the call (process-wide, set once by cmd/). */
void xp_unwind_set_backend(enum xp_unwind_backend b);
/* One of the given backend, whatever the default. */
int xp_unwinder_new_backend(struct xp_space *space, enum xp_unwind_backend b, struct xp_unwinder **out);

/* One unwinder per address space; -errno on failure. */
int xp_unwinder_new(struct xp_space *space, struct xp_unwinder **out);
void xp_unwinder_free(struct xp_unwinder *u);

/* Unwinds one stack, innermost first.  mem reads the stack (a snapshot). */
int xp_unwind(struct xp_unwinder *u, const struct user_regs_struct *regs, struct xp_mem *mem,
	      struct xp_stack *out);

/* The registers of one frame as the unwinder recovered them (DWARF
 * numbering: 0 rax, 1 rdx, 2 rcx, 3 rbx, 4 rsi, 5 rdi, 6 rbp, 7 rsp,
 * 8-15 r8-r15, 16 the return address): all of them in the innermost frame,
 * the ones the callees' CFI saved in the others. */
#define XP_FRAME_NREGS 17
struct xp_frame_regs {
	uint64_t v[XP_FRAME_NREGS];
	uint32_t known;   /* bit n: v[n] is known */
};
/* xp_unwind, and each frame's registers in fregs[i] (XP_MAX_FRAMES of
 * them) for frame i of out: known is 0 for frames not unwound by CFI (Go
 * code, frame-pointer frames, the libunwind backend). */
int xp_unwind_regs(struct xp_unwinder *u, const struct user_regs_struct *regs, struct xp_mem *mem,
		   struct xp_stack *out, struct xp_frame_regs *fregs);

#endif
