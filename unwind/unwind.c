/* Unwinding through libdw's frame unwinder (dwfl_getthread_frames) with
 * thread callbacks of our own: the "thread" is whatever registers and memory
 * reader the current xp_unwind call holds, so one Dwfl attached once serves
 * every stopped thread and every sample.
 *
 * Go code is unwound as Go's own traceback does it, from .gopclntab's frame
 * sizes (pcsp): a stripped Go binary has no CFI at all, and Go's CFI, when
 * there is some, knows nothing the table does not.  A stack may go back and
 * forth between the two (cgo, a Go signal handler called from the kernel).
 */
#define _GNU_SOURCE
#include <elfutils/libdwfl.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "symbolize/gopclntab.h"
#include "unwind/unwind.h"
#include "unwind/unwind_internal.h"

/* The one "tid" we hand libdw; the real thread is in the unwinder. */
#define CURRENT_TID 1

#define MAX_HANDOFFS 64 /* switches between Go, CFI and frame-pointer code in one stack */
#define CFI_CACHE 4096   /* pcs whose "has CFI" answer is kept (direct-mapped) */

struct xp_unwinder {
	Dwfl *dwfl;
	struct xp_space *space;
	const struct user_regs_struct *regs;
	struct xp_mem *mem;
	struct xp_stack *out;
	/* a native frame whose pc is Go code: libdw stops there */
	int to_go, first_is_call;
	size_t native_start;
	uint64_t go_pc, go_sp;
	/* a frame in code without CFI: the frame-pointer chain takes over */
	int to_fp, fp_leaf;
	uint64_t fp_pc, fp_sp, fp_bp;
	struct { uint64_t pc; int has; } cfi_cache[CFI_CACHE];
	struct xp_lu *lu;       /* XP_UNWIND_LIBUNWIND: libunwind unwinds instead */
	struct xp_frame_regs *fregs; /* xp_unwind_regs: each frame's registers, or NULL */
};

static pid_t next_thread(Dwfl *dwfl, void *arg, void **thread_argp)
{
	(void)dwfl;
	(void)arg;
	(void)thread_argp;
	return 0; /* we never enumerate: xp_unwind asks for one thread */
}

static bool get_thread(Dwfl *dwfl, pid_t tid, void *arg, void **thread_argp)
{
	(void)dwfl;
	*thread_argp = arg;
	return tid == CURRENT_TID;
}

static bool memory_read(Dwfl *dwfl, Dwarf_Addr addr, Dwarf_Word *result, void *arg)
{
	struct xp_unwinder *u = arg;
	uint64_t word;

	(void)dwfl;
	if (xp_mem_read_full(u->mem, addr, &word, sizeof(word)) < 0)
		return false;
	*result = word;
	return true;
}

static bool set_initial_registers(Dwfl_Thread *thread, void *arg)
{
	struct xp_unwinder *u = arg;
	Dwarf_Word dw[XP_DWARF_NREGS];
	uint64_t regs[XP_DWARF_NREGS];
	int i;

	xp_regs_to_dwarf(u->regs, regs);
	for (i = 0; i < XP_DWARF_NREGS; i++)
		dw[i] = regs[i];
	return dwfl_thread_state_registers(thread, 0, XP_DWARF_NREGS, dw);
}

static const Dwfl_Thread_Callbacks callbacks = {
	.next_thread = next_thread,
	.get_thread = get_thread,
	.memory_read = memory_read,
	.set_initial_registers = set_initial_registers,
};

int xp_unwinder_new(struct xp_space *space, struct xp_unwinder **out)
{
	return xp_unwinder_new_backend(space, xp_unwind_default_backend(), out);
}

int xp_unwinder_new_backend(struct xp_space *space, enum xp_unwind_backend b, struct xp_unwinder **out)
{
	struct xp_unwinder *u = calloc(1, sizeof(*u));
	int err;

	*out = NULL;
	if (!u)
		return -ENOMEM;
	u->dwfl = xp_space_dwfl(space);
	u->space = space;
	/* the machine is ours, not the first module's: a target picks that
	 * one (any ELF file it maps executable), and a foreign machine's
	 * unwinder took no x86-64 registers (no stack at all) */
	if (b == XP_UNWIND_LIBUNWIND)
		err = xp_lu_new(space, &u->lu);
	else
		err = dwfl_attach_state(u->dwfl, xp_arch_elf(), xp_space_pid(space), &callbacks, u) ? 0 : -EINVAL;
	if (err < 0) {
		free(u);
		return err;
	}
	*out = u;
	return 0;
}

void xp_unwinder_free(struct xp_unwinder *u)
{
	if (u)
		xp_lu_free(u->lu);
	free(u);
}

/* 1 when libdw has CFI (.eh_frame, else .debug_frame) for the code at
 * pc, which lies in a module. */
static int has_cfi(struct xp_unwinder *u, uint64_t pc)
{
	size_t slot = (size_t)((pc ^ (pc >> 12)) % CFI_CACHE);
	Dwfl_Module *mod;
	Dwarf_Frame *frame;
	Dwarf_CFI *cfi;
	Dwarf_Addr bias;
	int has = 0;

	if (u->cfi_cache[slot].pc == pc + 1)
		return u->cfi_cache[slot].has;
	mod = dwfl_addrmodule(u->dwfl, pc);
	if (mod && (cfi = dwfl_module_eh_cfi(mod, &bias)) != NULL && dwarf_cfi_addrframe(cfi, pc - bias, &frame) == 0) {
		free(frame);
		has = 1;
	} else if (mod && (cfi = dwfl_module_dwarf_cfi(mod, &bias)) != NULL &&
		   dwarf_cfi_addrframe(cfi, pc - bias, &frame) == 0) {
		free(frame);
		has = 1;
	}
	u->cfi_cache[slot].pc = pc + 1; /* 0 stays "empty" */
	u->cfi_cache[slot].has = has;
	return has;
}

/* 1 when pc lies in a module with Go's table (a Go program built without
 * DWARF has no CFI at all): code of it that the table does not know (an
 * assembly stub) is left to libdw, as before perf maps and frame pointers
 * were followed; handing it to the frame-pointer chain cut goroutine
 * tracebacks short (go_runtime.t, goparked-nodwarf) */
static int in_go_module(struct xp_unwinder *u, uint64_t pc)
{
	uint64_t bias;

	return xp_space_gopclntab(u->space, pc, &bias) != NULL;
}

/* The Go function holding pc (a return address when is_call), or NULL. */
static const struct xp_gopclntab *go_func(struct xp_unwinder *u, uint64_t pc, int is_call, struct xp_gofunc *f,
					  uint64_t *bias)
{
	const struct xp_gopclntab *t = xp_space_gopclntab(u->space, pc - is_call, bias);

	if (!t || xp_gopclntab_func(t, pc - is_call - *bias, f) < 0)
		return NULL;
	return t;
}

static int frame_cb(Dwfl_Frame *frame, void *arg)
{
	struct xp_unwinder *u = arg;
	struct xp_stack *out = u->out;
	struct xp_gofunc gf;
	Dwarf_Addr pc;
	Dwarf_Word sp, bp;
	uint64_t bias;
	bool activation;
	int call, kind;

	if (!dwfl_frame_pc(frame, &pc, &activation))
		return DWARF_CB_ABORT;
	/* resumed from Go or frame-pointer code: the first pc is a return address */
	call = out->n == u->native_start ? u->first_is_call : !activation;
	if (dwfl_frame_reg(frame, 7, &sp) != 0) /* DWARF 7: rsp */
		sp = 0;
	/* a caller in Go code: Go's table takes over */
	if (out->n > u->native_start && !activation && sp && go_func(u, pc, 1, &gf, &bias)) {
		u->to_go = 1;
		u->go_pc = pc;
		u->go_sp = sp;
		return DWARF_CB_ABORT;
	}
	if (out->n == XP_MAX_FRAMES) {
		out->capped = 1;
		return DWARF_CB_ABORT;
	}
	/* a return address lies in code: one that does not is where the
	 * stack really ends (or a wrong guess); it is kept, marked */
	kind = xp_space_code_kind(u->space, pc - (uint64_t)call);
	if (out->n > 0 && kind == 0) {
		snprintf(out->error, sizeof(out->error), "a return address in no executable mapping: 0x%llx",
			 (unsigned long long)pc);
		out->end_unplaced = 1;
	}
	if (u->fregs) {
		struct xp_frame_regs *fr = &u->fregs[out->n];
		unsigned r;
		fr->known = 0;
		for (r = 0; r < XP_FRAME_NREGS; r++) {
			Dwarf_Word v;
			if (dwfl_frame_reg(frame, r, &v) == 0) {
				fr->v[r] = v;
				fr->known |= 1u << r;
			}
		}
	}
	out->is_call[out->n] = (unsigned char)call;
	out->sp[out->n] = sp;
	out->pc[out->n++] = pc;
	if (out->end_unplaced)
		return DWARF_CB_ABORT;
	/* code without CFI (JIT code, a module without .eh_frame there):
	 * libdw would guess with an unchecked frame-pointer step */
	if (kind == 2 || (kind == 1 && !has_cfi(u, pc - (uint64_t)call) && !in_go_module(u, pc - (uint64_t)call))) {
		if (dwfl_frame_reg(frame, 6, &bp) != 0) /* DWARF 6: rbp */
			bp = 0;
		u->to_fp = 1;
		u->fp_leaf = !call;
		u->fp_pc = pc;
		u->fp_sp = sp;
		u->fp_bp = bp;
		return DWARF_CB_ABORT;
	}
	return DWARF_CB_OK;
}

/* Go frames from pc, sp as Go's traceback walks them: the frame size at pc
 * from the table, the return address above it.  Returns 1 when the stack
 * ended (complete or not), 0 when pc is not Go code: *pc, *sp and *bp are
 * then where native unwinding goes on. */
static int go_frames(struct xp_unwinder *u, uint64_t *pcp, uint64_t *spp, uint64_t *bpp, int is_call)
{
	struct xp_stack *out = u->out;
	uint64_t pc = *pcp, sp = *spp, bias;
	struct xp_gofunc f;
	const struct xp_gopclntab *t;

	while ((t = go_func(u, pc, is_call, &f, &bias)) != NULL) {
		int64_t delta;
		uint64_t fp, ra;

		if (out->n == XP_MAX_FRAMES) {
			out->capped = 1;
			return 1;
		}
		out->is_call[out->n] = (unsigned char)is_call;
		out->sp[out->n] = sp;
		out->pc[out->n++] = pc;
		if (f.flag & XP_GO_FLAG_TOPFRAME) {
			out->complete = 1; /* runtime.goexit, mstart, rt0_go */
			return 1;
		}
		if (out->n > 1 && (f.flag & XP_GO_FLAG_SPWRITE)) {
			/* it switched to this (system) stack: mcall,
			 * systemstack, morestack.  What called it is on the
			 * goroutine's stack: this stack ends here, as Go's
			 * own traceback ends it */
			out->complete = 1;
			return 1;
		}
		delta = xp_gopclntab_spdelta(t, &f, pc - is_call - bias);
		fp = sp + (uint64_t)delta + 8;
		if (delta < 0 || xp_mem_read_full(u->mem, fp - 8, &ra, 8) < 0) {
			snprintf(out->error, sizeof(out->error), "no frame size or return address in %s", f.name);
			return 1;
		}
		/* a Go function with a frame saved the caller's frame pointer
		 * just below its return address */
		if (delta > 0 && xp_mem_read_full(u->mem, fp - 16, bpp, 8) < 0)
			*bpp = 0;
		if (ra == 0) {
			snprintf(out->error, sizeof(out->error), "return address 0 above %s", f.name);
			return 1;
		}
		pc = ra;
		sp = fp;
		is_call = 1;
	}
	if (out->n > 0 && !dwfl_addrmodule(u->dwfl, pc - is_call)) {
		snprintf(out->error, sizeof(out->error), "a return address in no module: 0x%llx",
			 (unsigned long long)pc);
		return 1;
	}
	*pcp = pc;
	*spp = sp;
	return 0;
}

/* Frames of code without CFI up the frame-pointer chain, from the frame at
 * pc (already recorded).  Returns 1 when the stack ended there, 0 when *pc
 * is a return address into code with CFI or Go code: the caller goes on
 * from *pc, *sp, *bp. */
static int fp_frames(struct xp_unwinder *u, uint64_t *pcp, uint64_t *spp, uint64_t *bpp, int leaf)
{
	struct xp_stack *out = u->out;
	uint64_t pc = *pcp, sp = *spp, bp = *bpp, bias;
	struct xp_gofunc gf;
	int err;

	for (;;) {
		uint64_t from = pc;
		if ((err = xp_fp_step(u->space, u->mem, leaf, &pc, &sp, &bp)) < 0) {
			snprintf(out->error, sizeof(out->error), "no plausible frame-pointer frame above 0x%llx (code without CFI)",
				 (unsigned long long)from);
			return 1;
		}
		leaf = 0;
		if (xp_space_code_kind(u->space, pc - 1) == 1 && (go_func(u, pc, 1, &gf, &bias) || has_cfi(u, pc - 1)))
			break;
		if (out->n == XP_MAX_FRAMES) {
			out->capped = 1;
			return 1;
		}
		out->is_call[out->n] = 1;
		out->sp[out->n] = sp;
		out->pc[out->n++] = pc;
		out->fp_frames++;
	}
	out->fp_frames++; /* the return address into CFI code was found by the chain too */
	*pcp = pc;
	*spp = sp;
	*bpp = bp;
	return 0;
}

int xp_unwind(struct xp_unwinder *u, const struct user_regs_struct *regs, struct xp_mem *mem,
	      struct xp_stack *out)
{
	return xp_unwind_regs(u, regs, mem, out, NULL);
}

int xp_unwind_regs(struct xp_unwinder *u, const struct user_regs_struct *regs, struct xp_mem *mem,
		   struct xp_stack *out, struct xp_frame_regs *fregs)
{
	struct user_regs_struct cur = *regs;
	uint64_t pc = regs->rip, sp = regs->rsp, bp = regs->rbp;
	int rc, round, is_call = 0;
	size_t i;

	/* frame_cb fills the frames libdw unwinds; the others stay unknown */
	if (fregs)
		for (i = 0; i < XP_MAX_FRAMES; i++)
			fregs[i].known = 0;
	u->fregs = fregs;
	out->end_unplaced = 0;
	out->fp_frames = 0;
	if (u->lu)
		return xp_lu_unwind(u->lu, regs, mem, out);
	out->n = 0;
	out->complete = 0;
	out->capped = 0;
	out->error[0] = '\0';
	u->mem = mem;
	u->out = out;
	for (round = 0; round < MAX_HANDOFFS; round++) {
		if (go_frames(u, &pc, &sp, &bp, is_call))
			return 0;
		if (out->n > 0) { /* from Go code back into native code */
			cur.rip = pc;
			cur.rsp = sp;
			cur.rbp = bp;
		}
		u->regs = &cur;
		u->to_go = 0;
		u->to_fp = 0;
		u->first_is_call = is_call;
		u->native_start = out->n;
		rc = dwfl_getthread_frames(u->dwfl, CURRENT_TID, frame_cb, u);
		if (rc == 0) {
			out->complete = 1;
			return 0;
		}
		if (u->to_fp) {
			pc = u->fp_pc;
			sp = u->fp_sp;
			bp = u->fp_bp;
			if (fp_frames(u, &pc, &sp, &bp, u->fp_leaf))
				return 0;
			is_call = 1;
			continue;
		}
		if (!u->to_go)
			break;
		pc = u->go_pc;
		sp = u->go_sp;
		is_call = 1;
	}
	if (!out->capped && !out->error[0])
		snprintf(out->error, sizeof(out->error), "%s",
			 round == MAX_HANDOFFS ? "too many switches between Go and native code" : dwfl_errmsg(-1));
	return 0;
}
