/* x86-64 register access: the one place that knows user_regs_struct. */
#ifndef XPROF_ATTACH_REGS_X86_64_H
#define XPROF_ATTACH_REGS_X86_64_H

#include <stdint.h>
#include <sys/user.h>

#define XP_REDZONE 128 /* bytes below SP a leaf function may use */
#define XP_SYS_FUTEX 202

static inline uint64_t xp_regs_pc(const struct user_regs_struct *r) { return r->rip; }
static inline uint64_t xp_regs_sp(const struct user_regs_struct *r) { return r->rsp; }
/* The system call a thread is in (or was interrupted in), or -1. */
static inline int64_t xp_regs_syscall(const struct user_regs_struct *r) { return (int64_t)r->orig_rax; }
static inline uint64_t xp_regs_arg0(const struct user_regs_struct *r) { return r->rdi; }
/* The thread pointer (glibc's and musl's struct pthread, the TLS above it). */
static inline uint64_t xp_regs_tp(const struct user_regs_struct *r) { return r->fs_base; }

#endif
