/* Structure layouts from DWARF (see dwarftypes.h). */
#define _GNU_SOURCE
#include <dwarf.h>
#include <elfutils/libdw.h>
#include <stdio.h>
#include <string.h>

#include "symbolize/dwarftypes.h"

void xp_dwarf_find_structs(Dwarf *dw, struct xp_dwarf_struct *w, size_t n)
{
	Dwarf_Off off = 0, next;
	size_t hsize, left = n;

	while (left && dwarf_nextcu(dw, off, &next, &hsize, NULL, NULL, NULL) == 0) {
		Dwarf_Die cu, child;
		if (dwarf_offdie(dw, off + hsize, &cu) && dwarf_child(&cu, &child) == 0) {
			do {
				const char *nm;
				size_t i;
				/* a declaration has no members: keep looking */
				if (dwarf_tag(&child) != DW_TAG_structure_type || !(nm = dwarf_diename(&child)) ||
				    !dwarf_hasattr(&child, DW_AT_byte_size))
					continue;
				for (i = 0; i < n; i++) {
					if (!w[i].found && strcmp(nm, w[i].name) == 0) {
						w[i].die = child;
						w[i].found = 1;
						left--;
					}
				}
			} while (left && dwarf_siblingof(&child, &child) == 0);
		}
		off = next;
	}
}

/* The offset of member name of st, its type in *type; -1 when none. */
static int64_t member(Dwarf_Die *st, const char *name, size_t len, Dwarf_Die *type)
{
	Dwarf_Die m;

	if (!st || dwarf_child(st, &m) != 0)
		return -1;
	do {
		Dwarf_Attribute a;
		Dwarf_Word off;
		const char *nm = dwarf_diename(&m);
		if (dwarf_tag(&m) != DW_TAG_member || !nm || strlen(nm) != len || strncmp(nm, name, len) != 0)
			continue;
		if (dwarf_formudata(dwarf_attr(&m, DW_AT_data_member_location, &a), &off) != 0)
			return -1;
		if (type && !dwarf_formref_die(dwarf_attr(&m, DW_AT_type, &a), type))
			return -1;
		return (int64_t)off;
	} while (dwarf_siblingof(&m, &m) == 0);
	return -1;
}

int64_t xp_dwarf_member_offset(Dwarf_Die *st, const char *path)
{
	Dwarf_Die cur = *st, type;
	int64_t total = 0;
	int levels;

	for (levels = 0; levels < 8; levels++) {
		const char *dot = strchr(path, '.');
		size_t len = dot ? (size_t)(dot - path) : strlen(path);
		int64_t off = member(&cur, path, len, dot ? &type : NULL);
		if (off < 0)
			return -1;
		total += off;
		if (!dot)
			return total;
		/* a named type may come as a typedef (or a qualified one) of the structure */
		for (int depth = 0; depth < 8 && (dwarf_tag(&type) == DW_TAG_typedef ||
						  dwarf_tag(&type) == DW_TAG_volatile_type ||
						  dwarf_tag(&type) == DW_TAG_const_type); depth++) {
			Dwarf_Attribute at;
			if (!dwarf_formref_die(dwarf_attr(&type, DW_AT_type, &at), &type))
				return -1;
		}
		cur = type;
		path = dot + 1;
	}
	return -1;
}

int64_t xp_dwarf_struct_size(const struct xp_dwarf_struct *w)
{
	Dwarf_Attribute a;
	Dwarf_Word v;
	Dwarf_Die d;

	if (!w->found)
		return -1;
	d = w->die;
	if (dwarf_formudata(dwarf_attr(&d, DW_AT_byte_size, &a), &v) != 0)
		return -1;
	return (int64_t)v;
}
