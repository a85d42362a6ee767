/* symbolize/plt.c: x86-64 PLT entries named as objdump and perf name
 * them, "realloc@plt".  A stub has no symbol of its own; it jumps through
 * a GOT slot that a relocation binds to a symbol.  The slot is found from
 * the stub's own jmp *disp32(%rip) (.plt, .plt.sec, .plt.got), or for an
 * IBT .plt entry, which only pushes its index, from that index into
 * .rela.plt.  An IFUNC slot (R_X86_64_IRELATIVE) has no symbol, only its
 * resolver's address: named after the IFUNC symbol there ("strnlen@plt"
 * where objdump prints "*ABS*+0x9f550@plt").
 *
 * The file is the module's own ELF, as read from disk: it is checked like
 * any input (section bounds, relocation and symbol indexes).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <gelf.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "symbolize/symbolize_internal.h"

#define R_IRELATIVE 37 /* R_X86_64_IRELATIVE */

static Elf_Scn *section_named(Elf *elf, size_t shstrndx, const char *want, GElf_Shdr *sh)
{
	Elf_Scn *scn = NULL;
	const char *name;

	while ((scn = elf_nextscn(elf, scn)) != NULL)
		if (gelf_getshdr(scn, sh) && (name = elf_strptr(elf, shstrndx, sh->sh_name)) && strcmp(name, want) == 0)
			return scn;
	return NULL;
}

/* The name of a function symbol of value addr in the symbol table at
 * section index link, or NULL; of aliases (mempcpy, __mempcpy) the one
 * with the fewest leading underscores, the name programs call. */
static const char *function_at(Elf *elf, size_t link, uint64_t addr)
{
	Elf_Scn *scn = elf_getscn(elf, link);
	GElf_Shdr sh;
	Elf_Data *d;
	size_t i, n;

	if (!scn || !gelf_getshdr(scn, &sh) || (sh.sh_type != SHT_DYNSYM && sh.sh_type != SHT_SYMTAB) ||
	    !sh.sh_entsize || !(d = elf_getdata(scn, NULL)))
		return NULL;
	const char *best = NULL, *name;

	n = d->d_size / sh.sh_entsize;
	for (i = 1; i < n; i++) {
		GElf_Sym s;
		int type;

		if (!gelf_getsym(d, (int)i, &s) || s.st_value != addr || s.st_shndx == SHN_UNDEF)
			continue;
		type = GELF_ST_TYPE(s.st_info);
		if ((type == STT_FUNC || type == STT_GNU_IFUNC) && (name = elf_strptr(elf, sh.sh_link, s.st_name)) &&
		    name[0] && (!best || strspn(name, "_") < strspn(best, "_")))
			best = name;
	}
	return best;
}

/* "SYM@plt" for relocation r of a RELA section whose symbols are at
 * section index link: NULL when it names nothing, (char *)-1 without
 * memory. */
static char *rela_name(Elf *elf, size_t link, const GElf_Rela *r)
{
	size_t si = GELF_R_SYM(r->r_info);
	Elf_Scn *scn = elf_getscn(elf, link);
	const char *sym = NULL;
	GElf_Shdr sh;
	Elf_Data *d;
	GElf_Sym s;
	char *out;

	if (si == 0 && GELF_R_TYPE(r->r_info) == R_IRELATIVE)
		sym = function_at(elf, link, (uint64_t)r->r_addend);
	else if (si != 0 && scn && gelf_getshdr(scn, &sh) && sh.sh_entsize && (d = elf_getdata(scn, NULL)) &&
		 si < d->d_size / sh.sh_entsize && gelf_getsym(d, (int)si, &s))
		sym = elf_strptr(elf, sh.sh_link, s.st_name);
	if (!sym || !sym[0])
		return NULL;
	return asprintf(&out, "%s@plt", sym) < 0 ? (char *)-1 : out;
}

/* The name bound to GOT slot slot by any RELA section (index < 0), or by
 * entry index of .rela.plt. */
static char *bound_name(Elf *elf, size_t shstrndx, uint64_t slot, int64_t index)
{
	Elf_Scn *scn = NULL;
	GElf_Shdr sh;
	GElf_Rela r;
	const char *name;

	while ((scn = elf_nextscn(elf, scn)) != NULL) {
		Elf_Data *d;
		size_t i, n;

		if (!gelf_getshdr(scn, &sh) || sh.sh_type != SHT_RELA || !sh.sh_entsize ||
		    !(name = elf_strptr(elf, shstrndx, sh.sh_name)) || !(d = elf_getdata(scn, NULL)))
			continue;
		n = d->d_size / sh.sh_entsize;
		if (index >= 0) {
			if (strcmp(name, ".rela.plt") != 0)
				continue;
			return (uint64_t)index < n && gelf_getrela(d, (int)index, &r) ? rela_name(elf, sh.sh_link, &r)
										   : NULL;
		}
		for (i = 0; i < n; i++)
			if (gelf_getrela(d, (int)i, &r) && r.r_offset == slot)
				return rela_name(elf, sh.sh_link, &r);
	}
	return NULL;
}

static const char *const plt_sections[] = { ".plt", ".plt.sec", ".plt.got" };
static const size_t jmp_at[] = { 0, 1, 4, 5 };
static const uint8_t endbr64[4] = { 0xf3, 0x0f, 0x1e, 0xfa };

int xp_plt_name(Elf *elf, uint64_t addr, char **name, uint64_t *entry)
{
	GElf_Ehdr eh;
	GElf_Shdr sh;
	size_t shstrndx, k;

	*name = NULL;
	if (!elf || !gelf_getehdr(elf, &eh) || eh.e_machine != EM_X86_64 || elf_getshdrstrndx(elf, &shstrndx) < 0)
		return 0;
	for (k = 0; k < sizeof(plt_sections) / sizeof(plt_sections[0]); k++) {
		Elf_Scn *scn = section_named(elf, shstrndx, plt_sections[k], &sh);
		uint64_t size = sh.sh_entsize, start, slot;
		const uint8_t *p;
		Elf_Data *d;
		char *n = NULL;
		size_t i;

		if (!scn || !(sh.sh_flags & SHF_EXECINSTR) || sh.sh_type != SHT_PROGBITS || addr < sh.sh_addr ||
		    addr - sh.sh_addr >= sh.sh_size)
			continue;
		if (size != 8 && size != 16)
			size = 16;
		start = addr - (addr - sh.sh_addr) % size;
		/* .plt's first entry calls the lazy binder: no symbol */
		if (k == 0 && start == sh.sh_addr)
			return 0;
		if (!(d = elf_getdata(scn, NULL)) || !d->d_buf || d->d_size < sh.sh_size || start - sh.sh_addr + size > d->d_size)
			return 0;
		p = (const uint8_t *)d->d_buf + (start - sh.sh_addr);
		/* jmp *disp32(%rip) (ff 25) at the entry's start, after a bnd
		 * prefix, after endbr64, or after both; an IBT .plt entry is
		 * endbr64 then push $index (68) */
		for (i = 0; i < sizeof(jmp_at) / sizeof(jmp_at[0]) && !n; i++) {
			size_t o = jmp_at[i];
			int32_t v;

			if (o + 6 > size || p[o] != 0xff || p[o + 1] != 0x25)
				continue;
			memcpy(&v, p + o + 2, 4);
			slot = start + o + 6 + (int64_t)v;
			n = bound_name(elf, shstrndx, slot, -1);
		}
		if (!n && k == 0 && size == 16 && memcmp(p, endbr64, 4) == 0 && p[4] == 0x68) {
			int32_t v;

			memcpy(&v, p + 5, 4);
			if (v >= 0)
				n = bound_name(elf, shstrndx, 0, v);
		}
		if (n == (char *)-1)
			return -ENOMEM;
		if (!n)
			return 0;
		*name = n;
		*entry = start;
		return 1;
	}
	return 0;
}
