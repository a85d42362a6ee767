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

#define MAX_HANDOFFS 16 /* switches between Go and native code in one stack */

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
	struct xp_lu *lu;       /* XP_UNWIND_LIBUNWIND: libunwind unwinds instead */
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
	Dwarf_Word sp;
	uint64_t bias;
	bool activation;

	if (!dwfl_frame_pc(frame, &pc, &activation))
		return DWARF_CB_ABORT;
	if (dwfl_frame_reg(frame, 7, &sp) != 0) /* DWARF 7: rsp */
		sp = 0;
	/* a caller in Go code: Go's table takes over */
	if (out->n > u->native_start && !activation && sp && go_func(u, pc, 1, &gf, &bias)) {
		u->to_go = 1;
		u->go_pc = pc;
		u->go_sp = sp;
		return DWARF_CB_ABORT;
	}
	/* a return address lies in some module: one that does not is a wrong
	 * guess (libdw's frame-pointer heuristic where there is no CFI) */
	if (out->n > 0 && !dwfl_addrmodule(u->dwfl, pc - (activation ? 0 : 1))) {
		snprintf(out->error, sizeof(out->error), "a return address in no module: 0x%llx",
			 (unsigned long long)pc);
		return DWARF_CB_ABORT;
	}
	if (out->n == XP_MAX_FRAMES) {
		out->capped = 1;
		return DWARF_CB_ABORT;
	}
	/* resumed from Go code: the first pc is a return address */
	out->is_call[out->n] = out->n == u->native_start ? u->first_is_call : !activation;
	out->sp[out->n] = sp;
	out->pc[out->n++] = pc;
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

int xp_unwind(struct xp_unwinder *u, const struct user_regs_struct *regs, struct xp_mem *mem,
	      struct xp_stack *out)
{
	struct user_regs_struct cur = *regs;
	uint64_t pc = regs->rip, sp = regs->rsp, bp = regs->rbp;
	int rc, round, is_call = 0;

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
		u->first_is_call = is_call;
		u->native_start = out->n;
		rc = dwfl_getthread_frames(u->dwfl, CURRENT_TID, frame_cb, u);
		if (rc == 0) {
			out->complete = 1;
			return 0;
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
