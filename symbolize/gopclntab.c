/* Go's .gopclntab, read the way the runtime reads it (runtime/symtab.go):
 * pcHeader, functab, _func records, pc-value tables, and funcdata in
 * go.func.* (inline trees, argument layouts).  See gopclntab.h.
 *
 * The section comes from the target's file: every offset is checked
 * against it, every table walk is bounded.
 */
#include <gelf.h>
#include <libelf.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "symbolize/gopclntab.h"

#define GO118_MAGIC 0xfffffff0u
#define GO120_MAGIC 0xfffffff1u
#define HEADER_SIZE (8 + 8 * 8)
#define MAX_SECTIONS 64
#define PCVALUE_MAX_STEPS 1000000 /* a table longer than any function */

struct section {
	const char *name;
	uint64_t addr, size;
	const uint8_t *data; /* NULL for NOBITS */
};

struct xp_gopclntab {
	const uint8_t *p;   /* the section's bytes */
	size_t len;
	uint32_t magic;
	uint8_t quantum;
	uint64_t nfunc, text_start;
	uint64_t funcnames, cutab, filetab, pctab, functab; /* offsets in p */
	size_t func_size;   /* of a _func record before its pcdata */
	struct section sec[MAX_SECTIONS];
	size_t nsec;
	uint64_t gofunc;    /* file address of go.func.*, 0 when unknown */
	char version[48];
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

int xp_gopclntab_read(const struct xp_gopclntab *t, uint64_t addr, void *buf, size_t len)
{
	size_t i;

	for (i = 0; i < t->nsec; i++) {
		const struct section *s = &t->sec[i];
		if (s->data && addr >= s->addr && addr - s->addr <= s->size && s->size - (addr - s->addr) >= len) {
			memcpy(buf, s->data + (addr - s->addr), len);
			return 0;
		}
	}
	return -1;
}

int xp_gopclntab_section(const struct xp_gopclntab *t, const char *name, uint64_t *addr, uint64_t *size)
{
	size_t i;

	for (i = 0; i < t->nsec; i++) {
		if (strcmp(t->sec[i].name, name) == 0) {
			*addr = t->sec[i].addr;
			*size = t->sec[i].size;
			return 0;
		}
	}
	return -1;
}

static const struct section *section_at(const struct xp_gopclntab *t, uint64_t addr)
{
	size_t i;

	for (i = 0; i < t->nsec; i++)
		if (t->sec[i].data && addr >= t->sec[i].addr && addr - t->sec[i].addr < t->sec[i].size)
			return &t->sec[i];
	return NULL;
}

static int uvarint(const uint8_t *p, size_t len, size_t *off, uint64_t *v)
{
	uint64_t r = 0;
	int shift;

	for (shift = 0; shift < 64; shift += 7) {
		if (*off >= len)
			return -1;
		r |= (uint64_t)(p[*off] & 0x7f) << shift;
		if (!(p[(*off)++] & 0x80)) {
			*v = r;
			return 0;
		}
	}
	return -1;
}

/* The Go version in .go.buildinfo: inline since Go 1.18 (flag 2), before
 * that a pointer to a string header. */
static void read_version(struct xp_gopclntab *t)
{
	static const char magic[] = "\xff Go buildinf:";
	uint64_t addr, size, v;
	const struct section *s;
	const uint8_t *p;
	size_t off = 32;

	if (xp_gopclntab_section(t, ".go.buildinfo", &addr, &size) < 0 || !(s = section_at(t, addr)) ||
	    s->size < 32 + 1)
		return;
	p = s->data;
	if (memcmp(p, magic, 14) != 0 || p[14] != 8)
		return;
	if (p[15] & 2) {
		if (uvarint(p, s->size, &off, &v) < 0 || v >= sizeof(t->version) || v > s->size - off)
			return;
		memcpy(t->version, p + off, v);
		t->version[v] = '\0';
	} else {
		uint64_t hdr[2], str;
		memcpy(&str, p + 16, 8);
		if (xp_gopclntab_read(t, str, hdr, sizeof(hdr)) < 0 || hdr[1] >= sizeof(t->version) ||
		    xp_gopclntab_read(t, hdr[0], t->version, hdr[1]) < 0) {
			t->version[0] = '\0';
			return;
		}
		t->version[hdr[1]] = '\0';
	}
	if (strncmp(t->version, "go", 2) != 0)
		t->version[0] = '\0';
}

/* go.func.*, the base of funcdata offsets: from the symbol table, else from
 * runtime.firstmoduledata, found in the file's data as the record whose
 * first word points at .gopclntab and whose text field is the text start. */
static void find_gofunc(struct xp_gopclntab *t, Elf *elf, uint64_t pcln_addr)
{
	Elf_Scn *scn = NULL;
	uint64_t rodata = 0, rodata_size = 0;
	size_t i;

	while ((scn = elf_nextscn(elf, scn)) != NULL) {
		GElf_Shdr sh;
		Elf_Data *d;
		size_t k, n;
		if (!gelf_getshdr(scn, &sh) || sh.sh_type != SHT_SYMTAB || !sh.sh_entsize)
			continue;
		d = elf_getdata(scn, NULL);
		n = d ? d->d_size / sh.sh_entsize : 0;
		for (k = 0; k < n; k++) {
			GElf_Sym sym;
			const char *name;
			if (!gelf_getsym(d, (int)k, &sym))
				break;
			name = elf_strptr(elf, sh.sh_link, sym.st_name);
			if (name && (strcmp(name, "go.func.*") == 0 || strcmp(name, "go:func.*") == 0)) {
				t->gofunc = sym.st_value;
				return;
			}
		}
	}
	if (xp_gopclntab_section(t, ".rodata", &rodata, &rodata_size) < 0)
		return;
	for (i = 0; i < t->nsec; i++) {
		const struct section *s = &t->sec[i];
		uint64_t off;
		if (!s->data || (strcmp(s->name, ".data") != 0 && strcmp(s->name, ".noptrdata") != 0))
			continue;
		for (off = 0; off + 336 <= s->size; off += 8) {
			uint64_t w, text, gofunc;
			size_t at;
			memcpy(&w, s->data + off, 8);
			if (w != pcln_addr)
				continue;
			memcpy(&text, s->data + off + 176, 8);
			if (text != t->text_start)
				continue;
			at = t->magic == GO118_MAGIC ? 304 : 320;
			memcpy(&gofunc, s->data + off + at, 8);
			if (gofunc >= rodata && gofunc - rodata < rodata_size) {
				t->gofunc = gofunc;
				return;
			}
		}
	}
}

struct xp_gopclntab *xp_gopclntab_open(Elf *elf)
{
	size_t shstrndx;
	Elf_Scn *scn = NULL;
	struct xp_gopclntab *t;
	uint64_t v[8], pcln_addr = 0;

	if (!elf || elf_getshdrstrndx(elf, &shstrndx) < 0)
		return NULL;
	t = calloc(1, sizeof(*t));
	if (!t)
		return NULL;
	while ((scn = elf_nextscn(elf, scn)) != NULL) {
		GElf_Shdr sh;
		const char *name;
		Elf_Data *d = NULL;
		if (!gelf_getshdr(scn, &sh) || !(sh.sh_flags & SHF_ALLOC))
			continue;
		name = elf_strptr(elf, shstrndx, sh.sh_name);
		if (!name || t->nsec == MAX_SECTIONS)
			continue;
		if (sh.sh_type != SHT_NOBITS) {
			d = elf_getdata(scn, NULL);
			if (!d || !d->d_buf || d->d_size != sh.sh_size)
				d = NULL;
		}
		t->sec[t->nsec++] = (struct section){ name, sh.sh_addr, sh.sh_size, d ? d->d_buf : NULL };
		if (strcmp(name, ".gopclntab") == 0 && d) {
			t->p = d->d_buf;
			t->len = d->d_size;
			pcln_addr = sh.sh_addr;
		}
	}
	if (!t->p || t->len < HEADER_SIZE)
		goto fail;
	memcpy(&t->magic, t->p, 4);
	t->quantum = t->p[6];
	memcpy(v, t->p + 8, sizeof(v));
	/* nfunc, nfiles, textStart, funcnameOffset, cuOffset, filetabOffset,
	 * pctabOffset, pclnOffset */
	t->nfunc = v[0];
	t->text_start = v[2];
	t->funcnames = v[3];
	t->cutab = v[4];
	t->filetab = v[5];
	t->pctab = v[6];
	t->functab = v[7];
	if ((t->magic != GO118_MAGIC && t->magic != GO120_MAGIC) || t->p[7] != 8 || !t->quantum ||
	    t->functab >= t->len || t->nfunc > (t->len - t->functab) / 8 - 1)
		goto fail; /* another Go version, or not a pclntab */
	/* entryoff, nameoff, args, deferreturn, pcsp, pcfile, pcln, npcdata,
	 * cuOffset, [startLine,] funcID, flag, pad, nfuncdata */
	t->func_size = t->magic == GO118_MAGIC ? 40 : 44;
	read_version(t);
	find_gofunc(t, elf, pcln_addr);
	return t;
fail:
	free(t);
	return NULL;
}

void xp_gopclntab_close(struct xp_gopclntab *t)
{
	free(t);
}

const char *xp_gopclntab_version(const struct xp_gopclntab *t)
{
	return t->version;
}

int xp_gopclntab_format(const struct xp_gopclntab *t)
{
	return t->magic == GO118_MAGIC ? 118 : 120;
}

int xp_gopclntab_wrapper_id(const struct xp_gopclntab *t)
{
	int minor;

	/* funcID_wrapper is the 22nd funcID from Go 1.18 to 1.20 */
	if (sscanf(t->version, "go1.%d", &minor) == 1 && minor >= 18 && minor <= 20)
		return 21;
	return -1;
}

int xp_gopclntab_has_funcdata(const struct xp_gopclntab *t)
{
	return t->gofunc != 0;
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

	if (!table || t->pctab > t->len)
		return -1;
	for (steps = 0; steps < PCVALUE_MAX_STEPS; steps++) {
		uint32_t uv, pcd;
		if (read_varint(t, &off, &uv) < 0)
			return -1;
		if (uv == 0 && !first)
			return -1;
		first = 0;
		/* Go's int32 arithmetic wraps; a table may make it */
		val = (int32_t)((uint32_t)val + ((uv >> 1) ^ -(uv & 1)));
		if (read_varint(t, &off, &pcd) < 0)
			return -1;
		pc += (uint64_t)pcd * t->quantum;
		if (targetpc < pc)
			return val;
	}
	return -1;
}

int xp_gopclntab_func(const struct xp_gopclntab *t, uint64_t pc, struct xp_gofunc *f)
{
	uint64_t rel, lo = 0, hi = t->nfunc, foff;
	uint32_t ent, next, funcoff, w[9];
	uint8_t tail[4];

	if (pc < t->text_start || t->nfunc == 0)
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
	foff = t->functab + funcoff;
	if (foff > t->len || t->len - foff < t->func_size)
		return -1;
	memcpy(w, t->p + foff, sizeof(w));
	memcpy(tail, t->p + foff + t->func_size - 4, 4);
	f->entry = t->text_start + ent;
	f->end = t->text_start + next;
	f->off = foff;
	f->name = str_at(t, t->funcnames + w[1]);
	f->args = (int32_t)w[2];
	f->pcsp = w[4];
	f->pcfile = w[5];
	f->pcln = w[6];
	f->npcdata = w[7];
	f->cuoff = w[8];
	f->funcid = tail[0];
	f->flag = tail[1];
	f->nfuncdata = tail[3];
	if (!f->name || w[0] != ent)
		return -1;
	return 0;
}

int xp_gopclntab_find(const struct xp_gopclntab *t, const char *name, struct xp_gofunc *f)
{
	uint64_t i;
	uint32_t ent, funcoff, nameoff;

	for (i = 0; i < t->nfunc; i++) {
		const char *nm;
		if (u32_at(t, t->functab + i * 8, &ent) < 0 || u32_at(t, t->functab + i * 8 + 4, &funcoff) < 0 ||
		    u32_at(t, t->functab + funcoff + 4, &nameoff) < 0)
			return -1;
		nm = str_at(t, t->funcnames + nameoff);
		if (nm && strcmp(nm, name) == 0)
			return xp_gopclntab_func(t, t->text_start + ent, f);
	}
	return -1;
}

int64_t xp_gopclntab_pcvalue(const struct xp_gopclntab *t, const struct xp_gofunc *f, uint32_t table, uint64_t pc)
{
	if (pc < f->entry || pc >= f->end)
		return -1;
	return pcvalue(t, table, f->entry - t->text_start, pc - t->text_start);
}

int64_t xp_gopclntab_spdelta(const struct xp_gopclntab *t, const struct xp_gofunc *f, uint64_t pc)
{
	return xp_gopclntab_pcvalue(t, f, f->pcsp, pc);
}

int64_t xp_gopclntab_pcdata(const struct xp_gopclntab *t, const struct xp_gofunc *f, uint32_t idx, uint64_t pc)
{
	uint32_t table;

	if (idx >= f->npcdata || u32_at(t, f->off + t->func_size + 4 * (uint64_t)idx, &table) < 0)
		return -1;
	return xp_gopclntab_pcvalue(t, f, table, pc);
}

int xp_gopclntab_fileline(const struct xp_gopclntab *t, const struct xp_gofunc *f, uint64_t pc, const char **file,
			  int *line)
{
	int64_t fileno = xp_gopclntab_pcvalue(t, f, f->pcfile, pc);
	int64_t ln = xp_gopclntab_pcvalue(t, f, f->pcln, pc);
	uint32_t fileoff;

	*file = NULL;
	*line = ln > 0 ? (int)ln : 0;
	if (fileno >= 0 && u32_at(t, t->cutab + 4 * ((uint64_t)f->cuoff + (uint64_t)fileno), &fileoff) == 0 &&
	    fileoff != 0xffffffffu)
		*file = str_at(t, t->filetab + fileoff);
	return *file ? 0 : -1;
}

const uint8_t *xp_gopclntab_funcdata(const struct xp_gopclntab *t, const struct xp_gofunc *f, uint32_t idx,
				     size_t *avail)
{
	uint64_t at = f->off + t->func_size + 4 * ((uint64_t)f->npcdata + idx), addr;
	const struct section *s;
	uint32_t off;

	if (!t->gofunc || idx >= f->nfuncdata || u32_at(t, at, &off) < 0 || off == 0xffffffffu)
		return NULL;
	addr = t->gofunc + off;
	s = section_at(t, addr);
	if (!s)
		return NULL;
	*avail = s->size - (addr - s->addr);
	return s->data + (addr - s->addr);
}

int xp_gopclntab_inlined_at(const struct xp_gopclntab *t, const struct xp_gofunc *f, uint64_t pc,
			    struct xp_goinline *out)
{
	int64_t ix = xp_gopclntab_pcdata(t, f, XP_GO_PCDATA_INLTREE, pc);
	size_t avail, esize = t->magic == GO118_MAGIC ? 20 : 16;
	const uint8_t *tree = xp_gopclntab_funcdata(t, f, XP_GO_FUNCDATA_INLTREE, &avail);
	int32_t nameoff, parent_pc;
	const uint8_t *e;

	if (!tree || ix < 0 || (uint64_t)ix >= avail / esize)
		return -1;
	e = tree + ix * esize;
	if (t->magic == GO118_MAGIC) {
		/* parent i16, funcID u8, pad, file i32, line i32, func_ i32, parentPc i32 */
		out->funcid = e[2];
		memcpy(&nameoff, e + 12, 4);
		memcpy(&parent_pc, e + 16, 4);
	} else {
		/* funcID u8, pad[3], nameOff i32, parentPc i32, startLine i32 */
		out->funcid = e[0];
		memcpy(&nameoff, e + 4, 4);
		memcpy(&parent_pc, e + 8, 4);
	}
	out->name = nameoff >= 0 ? str_at(t, t->funcnames + (uint32_t)nameoff) : NULL;
	out->parent_pc = parent_pc;
	return out->name && parent_pc >= 0 ? 0 : -1;
}

int xp_gopclntab_lookup(const struct xp_gopclntab *t, uint64_t pc, const char **func, const char **file,
			int *line, uint64_t *entry)
{
	struct xp_gofunc f;

	*func = *file = NULL;
	*line = 0;
	if (xp_gopclntab_func(t, pc, &f) < 0)
		return -1;
	*func = f.name;
	*entry = f.entry;
	xp_gopclntab_fileline(t, &f, pc, file, line);
	return 0;
}
