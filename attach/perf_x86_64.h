/* x86-64 perf_event register layout: which user registers a sample
 * carries (sample_regs_user) and how they map to user_regs_struct. */
#ifndef XPROF_ATTACH_PERF_X86_64_H
#define XPROF_ATTACH_PERF_X86_64_H

#include <stdint.h>
#include <sys/user.h>

/* enum perf_event_x86_regs: AX BX CX DX SI DI BP SP IP FLAGS CS SS (0-11),
 * DS ES FS GS (12-15, refused in this mask: EINVAL), R8-R15 (16-23) */
#define XP_PERF_REGS_MASK 0xff0fffULL
#define XP_PERF_NREGS 20

/* regs: the sample's registers in increasing bit order of the mask */
static inline void xp_perf_regs_to_user(const uint64_t *regs, struct user_regs_struct *r)
{
	r->rax = regs[0];
	r->rbx = regs[1];
	r->rcx = regs[2];
	r->rdx = regs[3];
	r->rsi = regs[4];
	r->rdi = regs[5];
	r->rbp = regs[6];
	r->rsp = regs[7];
	r->rip = regs[8];
	r->eflags = regs[9];
	r->cs = regs[10];
	r->ss = regs[11];
	r->r8 = regs[12];
	r->r9 = regs[13];
	r->r10 = regs[14];
	r->r11 = regs[15];
	r->r12 = regs[16];
	r->r13 = regs[17];
	r->r14 = regs[18];
	r->r15 = regs[19];
	r->orig_rax = (uint64_t)-1;
}

#endif
