/* Structure layouts from DWARF: for reading a runtime's own structures
 * (Go's runtime.g, CPython's thread states) at the offsets its build has.
 */
#ifndef XPROF_SYMBOLIZE_DWARFTYPES_H
#define XPROF_SYMBOLIZE_DWARFTYPES_H

#include <elfutils/libdw.h>
#include <stddef.h>
#include <stdint.h>

struct xp_dwarf_struct {
	const char *name;   /* the structure's tag name: "runtime.g", "_ts" */
	Dwarf_Die die;
	int found;
};

/* Finds top-level structure types by name over every unit (the first
 * definition with members wins). */
void xp_dwarf_find_structs(Dwarf *dw, struct xp_dwarf_struct *w, size_t n);
/* The offset of a member, or of a member of members ("sched.pc",
 * "ceval.gil.locked", typedefs seen through); -1 when there is none. */
int64_t xp_dwarf_member_offset(Dwarf_Die *st, const char *path);
/* DW_AT_byte_size of a found structure, or -1. */
int64_t xp_dwarf_struct_size(const struct xp_dwarf_struct *w);

#endif
