/* Private to unwind/. */
#ifndef XPROF_UNWIND_INTERNAL_H
#define XPROF_UNWIND_INTERNAL_H

#include <stdint.h>
#include <sys/user.h>

#include "unwind/unwind.h"

#define XP_DWARF_NREGS 17

void xp_regs_to_dwarf(const struct user_regs_struct *r, uint64_t dw[XP_DWARF_NREGS]);

/* An ELF header of this architecture, for libdw to pick its unwinder by;
 * NULL when libelf refuses it. */
typedef struct Elf Elf;
Elf *xp_arch_elf(void);

/* One frame-pointer step from code without CFI (framepointer.c): from
 * *pc, *sp, *bp of a frame to its caller's (*pc a return address then).
 * leaf: pc is where the code stopped, not a return address (it may be in
 * a prologue).  0, or -errno when the step is not plausible. */
struct xp_space;
struct xp_mem;
int xp_fp_step(struct xp_space *s, struct xp_mem *mem, int leaf, uint64_t *pc, uint64_t *sp, uint64_t *bp);

/* libunwind's unwinder (unwind/libunwind.c), over the same space and readers. */
struct xp_lu;
int xp_lu_new(struct xp_space *space, struct xp_lu **out);
void xp_lu_free(struct xp_lu *lu);
int xp_lu_unwind(struct xp_lu *lu, const struct user_regs_struct *regs, struct xp_mem *mem, struct xp_stack *out);
/* What xp_unwind_set_backend chose (libdw's unless told). */
enum xp_unwind_backend xp_unwind_default_backend(void);

#endif
