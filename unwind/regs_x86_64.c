/* x86-64: user_regs_struct to the DWARF register numbering the unwinder
 * wants (rax rdx rcx rbx rsi rdi rbp rsp r8..r15, then the return address
 * column, 16, holding rip), and the ELF header that names the machine. */
#include <elf.h>
#include <libelf.h>
#include <stdint.h>
#include <sys/user.h>

#include "unwind/unwind_internal.h"

Elf *xp_arch_elf(void)
{
	static Elf64_Ehdr eh = {
		.e_ident = { ELFMAG0, ELFMAG1, ELFMAG2, ELFMAG3, ELFCLASS64, ELFDATA2LSB, EV_CURRENT },
		.e_type = ET_EXEC,
		.e_machine = EM_X86_64,
		.e_version = EV_CURRENT,
		.e_ehsize = sizeof(Elf64_Ehdr),
	};
	static Elf *elf; /* for the life of the process: libdw's backend keeps it */

	if (!elf) {
		elf_version(EV_CURRENT);
		elf = elf_memory((char *)&eh, sizeof(eh));
	}
	return elf;
}

void xp_regs_to_dwarf(const struct user_regs_struct *r, uint64_t dw[XP_DWARF_NREGS])
{
	dw[0] = r->rax;
	dw[1] = r->rdx;
	dw[2] = r->rcx;
	dw[3] = r->rbx;
	dw[4] = r->rsi;
	dw[5] = r->rdi;
	dw[6] = r->rbp;
	dw[7] = r->rsp;
	dw[8] = r->r8;
	dw[9] = r->r9;
	dw[10] = r->r10;
	dw[11] = r->r11;
	dw[12] = r->r12;
	dw[13] = r->r13;
	dw[14] = r->r14;
	dw[15] = r->r15;
	dw[16] = r->rip;
}
