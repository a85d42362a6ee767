/* Go's own symbol table, .gopclntab, which a Go binary keeps even when
 * stripped (-ldflags="-s -w" drops .symtab and DWARF): function names,
 * files and lines for a pc.  The layout is the runtime's (pcHeader,
 * functab, _func, pc-value tables) for Go 1.18-1.19 (magic 0xfffffff0) and
 * 1.20 onwards (0xfffffff1, which adds _func.startLine).  The section comes
 * from the target's file: every offset is checked against it.
 */
#include <gelf.h>
#include <libelf.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "symbolize/symbolize_internal.h"

#define GO118_MAGIC 0xfffffff0u
#define GO120_MAGIC 0xfffffff1u
#define HEADER_SIZE (8 + 8 * 8)

struct xp_gopclntab {
	const uint8_t *p;   /* the section's bytes */
	size_t len;
	uint32_t magic;
	uint8_t quantum;
	uint64_t nfunc, text_start;
	uint64_t funcnames, cutab, filetab, pctab, functab; /* offsets in p */
};

static int u32_at(const struct xp_gopclntab *t, uint64_t off, uint32_t *v)
{
	if (off > t->len || t->len - off < 4)
		return -1;
	memcpy(v, t->p + off, 4);
	return 0;
}

/* A NUL-terminated string at off, or NULL. */
static const char *str_at(const struct xp_gopclntab *t, uint64_t off)
{
	if (off >= t->len || !memchr(t->p + off, '\0', t->len - off))
		return NULL;
	return (const char *)t->p + off;
}

struct xp_gopclntab *xp_gopclntab_open(Elf *elf)
{
	size_t shstrndx;
	Elf_Scn *scn = NULL;
	struct xp_gopclntab *t;
	uint64_t v[8];

	if (!elf || elf_getshdrstrndx(elf, &shstrndx) < 0)
		return NULL;
	while ((scn = elf_nextscn(elf, scn)) != NULL) {
		GElf_Shdr sh;
		const char *name;
		Elf_Data *d;
		if (!gelf_getshdr(scn, &sh) || sh.sh_type == SHT_NOBITS)
			continue;
		name = elf_strptr(elf, shstrndx, sh.sh_name);
		if (!name || strcmp(name, ".gopclntab") != 0)
			continue;
		d = elf_getdata(scn, NULL);
		if (!d || !d->d_buf || d->d_size < HEADER_SIZE)
			return NULL;
		t = calloc(1, sizeof(*t));
		if (!t)
			return NULL;
		t->p = d->d_buf;
		t->len = d->d_size;
		memcpy(&t->magic, t->p, 4);
		t->quantum = t->p[6];
		memcpy(v, t->p + 8, sizeof(v));
		/* nfunc, nfiles, textStart, funcnameOffset, cuOffset,
		 * filetabOffset, pctabOffset, pclnOffset */
		t->nfunc = v[0];
		t->text_start = v[2];
		t->funcnames = v[3];
		t->cutab = v[4];
		t->filetab = v[5];
		t->pctab = v[6];
		t->functab = v[7];
		if ((t->magic != GO118_MAGIC && t->magic != GO120_MAGIC) || t->p[7] != 8 || !t->quantum ||
		    t->functab >= t->len || t->nfunc > (t->len - t->functab) / 8 - 1) {
			free(t);
			return NULL; /* another Go version, or not a pclntab */
		}
		return t;
	}
	return NULL;
}

void xp_gopclntab_close(struct xp_gopclntab *t)
{
	free(t);
}

static int read_varint(const struct xp_gopclntab *t, uint64_t *off, uint32_t *v)
{
	uint32_t r = 0;
	int shift;

	for (shift = 0; shift < 35; shift += 7) {
		uint8_t b;
		if (*off >= t->len)
			return -1;
		b = t->p[(*off)++];
		r |= (uint32_t)(b & 0x7f) << shift;
		if (!(b & 0x80)) {
			*v = r;
			return 0;
		}
	}
	return -1;
}

/* The value a pc-value table gives targetpc (pcs relative to the text
 * start), or -1. */
static int64_t pcvalue(const struct xp_gopclntab *t, uint32_t table, uint64_t entry, uint64_t targetpc)
{
	uint64_t off = t->pctab + table, pc = entry;
	int32_t val = -1;
	int first = 1, steps;

	if (!table)
		return -1;
	for (steps = 0; steps < 1000000; steps++) {
		uint32_t uv, pcd;
		if (read_varint(t, &off, &uv) < 0)
			return -1;
		if (uv == 0 && !first)
			return -1;
		first = 0;
		val += (int32_t)((uv >> 1) ^ -(uv & 1));
		if (read_varint(t, &off, &pcd) < 0)
			return -1;
		pc += (uint64_t)pcd * t->quantum;
		if (targetpc < pc)
			return val;
	}
	return -1;
}

int xp_gopclntab_lookup(const struct xp_gopclntab *t, uint64_t pc, const char **func, const char **file,
			int *line, uint64_t *entry)
{
	uint64_t rel, lo = 0, hi = t->nfunc, foff;
	uint32_t ent, next, funcoff, nameoff, pcfile, pcln, cuoff, fileoff;
	int64_t fileno, ln;

	*func = *file = NULL;
	*line = 0;
	if (pc < t->text_start)
		return -1;
	rel = pc - t->text_start;
	/* functab: nfunc + 1 entries of (entryoff, funcoff), sorted */
	while (hi - lo > 1) {
		uint64_t mid = lo + (hi - lo) / 2;
		if (u32_at(t, t->functab + mid * 8, &ent) < 0)
			return -1;
		if (ent <= rel)
			lo = mid;
		else
			hi = mid;
	}
	if (u32_at(t, t->functab + lo * 8, &ent) < 0 || u32_at(t, t->functab + lo * 8 + 4, &funcoff) < 0 ||
	    u32_at(t, t->functab + (lo + 1) * 8, &next) < 0 || rel < ent || rel >= next)
		return -1;
	/* _func: entryoff, nameoff, args, deferreturn, pcsp, pcfile, pcln,
	 * npcdata, cuOffset, ... */
	foff = t->functab + funcoff;
	if (u32_at(t, foff + 4, &nameoff) < 0 || u32_at(t, foff + 20, &pcfile) < 0 ||
	    u32_at(t, foff + 24, &pcln) < 0 || u32_at(t, foff + 32, &cuoff) < 0)
		return -1;
	*func = str_at(t, t->funcnames + nameoff);
	if (!*func)
		return -1;
	*entry = t->text_start + ent;
	ln = pcvalue(t, pcln, ent, rel);
	fileno = pcvalue(t, pcfile, ent, rel);
	if (ln > 0)
		*line = (int)ln;
	if (fileno >= 0 && u32_at(t, t->cutab + 4 * ((uint64_t)cuoff + (uint64_t)fileno), &fileoff) == 0 &&
	    fileoff != 0xffffffffu)
		*file = str_at(t, t->filetab + fileoff);
	return 0;
}
