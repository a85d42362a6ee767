/* Unwinding through libdw's frame unwinder (dwfl_getthread_frames) with
 * thread callbacks of our own: the "thread" is whatever registers and memory
 * reader the current xp_unwind call holds, so one Dwfl attached once serves
 * every stopped thread and every sample.
 */
#define _GNU_SOURCE
#include <elfutils/libdwfl.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "unwind/unwind.h"
#include "unwind/unwind_internal.h"

/* The one "tid" we hand libdw; the real thread is in the unwinder. */
#define CURRENT_TID 1

struct xp_unwinder {
	Dwfl *dwfl;
	const struct user_regs_struct *regs;
	struct xp_mem *mem;
	struct xp_stack *out;
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
	struct xp_unwinder *u = calloc(1, sizeof(*u));

	*out = NULL;
	if (!u)
		return -ENOMEM;
	u->dwfl = xp_space_dwfl(space);
	if (!dwfl_attach_state(u->dwfl, NULL, xp_space_pid(space), &callbacks, u)) {
		free(u);
		return -EINVAL;
	}
	*out = u;
	return 0;
}

void xp_unwinder_free(struct xp_unwinder *u)
{
	free(u);
}

static int frame_cb(Dwfl_Frame *frame, void *arg)
{
	struct xp_unwinder *u = arg;
	struct xp_stack *out = u->out;
	Dwarf_Addr pc;
	bool activation;

	if (!dwfl_frame_pc(frame, &pc, &activation))
		return DWARF_CB_ABORT;
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
	out->is_call[out->n] = !activation;
	if (dwfl_frame_reg(frame, 7, &out->sp[out->n]) != 0) /* DWARF 7: rsp */
		out->sp[out->n] = 0;
	out->pc[out->n++] = pc;
	return DWARF_CB_OK;
}

int xp_unwind(struct xp_unwinder *u, const struct user_regs_struct *regs, struct xp_mem *mem,
	      struct xp_stack *out)
{
	int rc;

	out->n = 0;
	out->complete = 0;
	out->capped = 0;
	out->error[0] = '\0';
	u->regs = regs;
	u->mem = mem;
	u->out = out;
	rc = dwfl_getthread_frames(u->dwfl, CURRENT_TID, frame_cb, u);
	if (rc == 0) {
		out->complete = 1;
	} else if (!out->capped && !out->error[0]) {
		snprintf(out->error, sizeof(out->error), "%s", dwfl_errmsg(-1));
	}
	return 0;
}
