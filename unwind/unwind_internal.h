/* Private to unwind/. */
#ifndef XPROF_UNWIND_INTERNAL_H
#define XPROF_UNWIND_INTERNAL_H

#include <stdint.h>
#include <sys/user.h>

#define XP_DWARF_NREGS 17

void xp_regs_to_dwarf(const struct user_regs_struct *r, uint64_t dw[XP_DWARF_NREGS]);

/* An ELF header of this architecture, for libdw to pick its unwinder by;
 * NULL when libelf refuses it. */
typedef struct Elf Elf;
Elf *xp_arch_elf(void);

#endif
