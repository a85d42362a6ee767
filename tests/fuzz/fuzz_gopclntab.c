/* Fuzzes the .gopclntab reader (symbolize/gopclntab.c) as a Go binary's
 * file feeds it.  The input is
 *     u32 n, n bytes of .gopclntab, then the bytes of go.func.*
 * made into an ELF image in memory: .gopclntab, a .rodata holding go.func.*,
 * a .data holding a runtime.firstmoduledata that points at both (found the
 * way a stripped binary's is), and a .go.buildinfo.  Then, for pcs spread
 * over the text: the function, its frame size, pc-data, file and line,
 * every funcdata and the whole inline chain, as the symbolizer, the
 * unwinder and the goroutine printer use them.
 *
 * Seeds: XPROF_FUZZ_WRITE_SEEDS=DIR fuzz_gopclntab GOBINARY... writes one
 * per Go binary (its real table and go.func.*).
 */
#define _GNU_SOURCE
#include <elf.h>
#include <fcntl.h>
#include <unistd.h>
#include <gelf.h>
#include <libelf.h>

#include "symbolize/gopclntab.h"

#include "tests/fuzz/fuzz.h"

#define PCLN_ADDR 0x500000ULL
#define GOFUNC_ADDR 0x600000ULL
#define DATA_ADDR 0x700000ULL
#define BUILDINFO_ADDR 0x710000ULL
#define NSEC 6
#define MODULEDATA_SIZE 336
#define NPCS 64

static volatile uint64_t sink;
static size_t nfuncs, nfuncdata, ninline; /* for XPROF_FUZZ_VERBOSE */

static size_t align8(size_t n)
{
	return (n + 7) & ~(size_t)7;
}

static const char shstr[] = "\0.shstrtab\0.gopclntab\0.rodata\0.data\0.go.buildinfo";
enum { N_SHSTRTAB = 1, N_GOPCLNTAB = 11, N_RODATA = 22, N_DATA = 30, N_BUILDINFO = 36 };

/* The ELF image of the input, malloc'd, its length in *len. */
static uint8_t *make_elf(const uint8_t *pcln, size_t npcln, const uint8_t *gofunc, size_t ngofunc, size_t *len)
{
	uint8_t moddata[MODULEDATA_SIZE] = { 0 }, info[48] = { 0 };
	uint64_t w, text = 0;
	size_t off = sizeof(Elf64_Ehdr), o_shstr, o_pcln, o_rodata, o_data, o_info, o_sh;
	Elf64_Ehdr *eh;
	Elf64_Shdr *sh;
	uint8_t *img;

	if (npcln >= 32)
		memcpy(&text, pcln + 24, 8); /* pcHeader.textStart */
	w = PCLN_ADDR;
	memcpy(moddata, &w, 8);
	memcpy(moddata + 176, &text, 8);
	w = GOFUNC_ADDR;
	memcpy(moddata + 304, &w, 8); /* gofunc, Go 1.18-1.19 */
	memcpy(moddata + 320, &w, 8); /* and 1.20 onwards */
	memcpy(info, "\xff Go buildinf:", 14);
	info[14] = 8;
	info[15] = 2;
	info[32] = 8;
	memcpy(info + 33, "go1.19.8", 8);

	o_shstr = off;
	off = align8(off + sizeof(shstr));
	o_pcln = off;
	off = align8(off + npcln);
	o_rodata = off;
	off = align8(off + ngofunc);
	o_data = off;
	off += sizeof(moddata);
	o_info = off;
	off += sizeof(info);
	o_sh = off;
	off += NSEC * sizeof(Elf64_Shdr);
	img = calloc(1, off);
	if (!img)
		return NULL;
	eh = (Elf64_Ehdr *)img;
	memcpy(eh->e_ident, ELFMAG, SELFMAG);
	eh->e_ident[EI_CLASS] = ELFCLASS64;
	eh->e_ident[EI_DATA] = ELFDATA2LSB;
	eh->e_ident[EI_VERSION] = EV_CURRENT;
	eh->e_type = ET_EXEC;
	eh->e_machine = EM_X86_64;
	eh->e_version = EV_CURRENT;
	eh->e_ehsize = sizeof(Elf64_Ehdr);
	eh->e_shoff = o_sh;
	eh->e_shentsize = sizeof(Elf64_Shdr);
	eh->e_shnum = NSEC;
	eh->e_shstrndx = 1;
	memcpy(img + o_shstr, shstr, sizeof(shstr));
	memcpy(img + o_pcln, pcln, npcln);
	memcpy(img + o_rodata, gofunc, ngofunc);
	memcpy(img + o_data, moddata, sizeof(moddata));
	memcpy(img + o_info, info, sizeof(info));
	sh = (Elf64_Shdr *)(img + o_sh);
	sh[1] = (Elf64_Shdr){ .sh_name = N_SHSTRTAB, .sh_type = SHT_STRTAB, .sh_offset = o_shstr,
			      .sh_size = sizeof(shstr), .sh_addralign = 1 };
	sh[2] = (Elf64_Shdr){ .sh_name = N_GOPCLNTAB, .sh_type = SHT_PROGBITS, .sh_flags = SHF_ALLOC,
			      .sh_addr = PCLN_ADDR, .sh_offset = o_pcln, .sh_size = npcln, .sh_addralign = 1 };
	sh[3] = (Elf64_Shdr){ .sh_name = N_RODATA, .sh_type = SHT_PROGBITS, .sh_flags = SHF_ALLOC,
			      .sh_addr = GOFUNC_ADDR, .sh_offset = o_rodata, .sh_size = ngofunc, .sh_addralign = 1 };
	sh[4] = (Elf64_Shdr){ .sh_name = N_DATA, .sh_type = SHT_PROGBITS, .sh_flags = SHF_ALLOC | SHF_WRITE,
			      .sh_addr = DATA_ADDR, .sh_offset = o_data, .sh_size = sizeof(moddata),
			      .sh_addralign = 8 };
	sh[5] = (Elf64_Shdr){ .sh_name = N_BUILDINFO, .sh_type = SHT_PROGBITS, .sh_flags = SHF_ALLOC | SHF_WRITE,
			      .sh_addr = BUILDINFO_ADDR, .sh_offset = o_info, .sh_size = sizeof(info),
			      .sh_addralign = 16 };
	*len = off;
	return img;
}

static void touch(const uint8_t *p, size_t avail)
{
	size_t i;

	/* every byte the reader claims is there must be readable */
	for (i = 0; i < avail && i < 256; i++)
		sink += p[i];
	if (avail)
		sink += p[avail - 1];
}

static void exercise(const struct xp_gopclntab *t, uint64_t text)
{
	int i;

	sink += strlen(xp_gopclntab_version(t)) + (uint64_t)xp_gopclntab_format(t) +
		(uint64_t)xp_gopclntab_wrapper_id(t) + (uint64_t)xp_gopclntab_has_funcdata(t);
	for (i = 0; i < NPCS; i++) {
		uint64_t pc = text + (uint64_t)i * 0x4011 % 0x100000, at, entry;
		struct xp_gofunc f;
		struct xp_goinline in;
		const char *file, *fn;
		int line, depth;
		uint32_t k;

		if (xp_gopclntab_lookup(t, pc, &fn, &file, &line, &entry) == 0)
			sink += strlen(fn) + (file ? strlen(file) : 0) + (uint64_t)line;
		if (xp_gopclntab_func(t, pc, &f) < 0)
			continue;
		nfuncs++;
		sink += strlen(f.name) + f.funcid + f.flag;
		sink += (uint64_t)xp_gopclntab_spdelta(t, &f, pc);
		for (k = 0; k < 5; k++)
			sink += (uint64_t)xp_gopclntab_pcdata(t, &f, k, pc);
		if (xp_gopclntab_fileline(t, &f, pc, &file, &line) == 0)
			sink += strlen(file) + (uint64_t)line;
		for (k = 0; k < 9; k++) {
			size_t avail;
			const uint8_t *d = xp_gopclntab_funcdata(t, &f, k, &avail);
			if (d) {
				touch(d, avail);
				nfuncdata++;
			}
		}
		at = pc;
		for (depth = 0; depth < 100; depth++) {
			if (xp_gopclntab_inlined_at(t, &f, at, &in) < 0)
				break;
			sink += strlen(in.name) + in.funcid;
			ninline++;
			at = f.entry + (uint64_t)in.parent_pc;
		}
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fuzz_in in = { data, size };
	uint32_t n = fuzz_u32(&in);
	size_t len;
	uint8_t *img;
	Elf *elf;
	struct xp_gopclntab *t;
	uint64_t text = 0;

	if (n > in.n)
		n = (uint32_t)in.n;
	img = make_elf(in.p, n, in.p + n, in.n - n, &len);
	if (!img)
		return 0;
	elf = elf_memory((char *)img, len);
	t = elf ? xp_gopclntab_open(elf) : NULL;
	if (t) {
		if (n >= 32)
			memcpy(&text, in.p + 24, 8);
		exercise(t, text);
		xp_gopclntab_close(t);
		if (getenv("XPROF_FUZZ_VERBOSE"))
			fprintf(stderr, "%zu functions, %zu funcdata, %zu inline frames\n", nfuncs, nfuncdata, ninline);
	}
	if (elf)
		elf_end(elf);
	free(img);
	return 0;
}

/* ---- seeds from real Go binaries ---------------------------------------- */

static int section(Elf *elf, const char *name, GElf_Shdr *out, Elf_Data **data)
{
	size_t shstrndx;
	Elf_Scn *scn = NULL;

	if (elf_getshdrstrndx(elf, &shstrndx) < 0)
		return -1;
	while ((scn = elf_nextscn(elf, scn)) != NULL) {
		const char *nm;
		if (!gelf_getshdr(scn, out) || !(nm = elf_strptr(elf, shstrndx, out->sh_name)) || strcmp(nm, name))
			continue;
		*data = elf_getdata(scn, NULL);
		return *data ? 0 : -1;
	}
	return -1;
}

static uint64_t symbol(Elf *elf, const char *name)
{
	GElf_Shdr sh;
	Elf_Data *d;
	Elf_Scn *scn = NULL;
	size_t k;

	while ((scn = elf_nextscn(elf, scn)) != NULL) {
		if (!gelf_getshdr(scn, &sh) || sh.sh_type != SHT_SYMTAB || !(d = elf_getdata(scn, NULL)))
			continue;
		for (k = 0; k < d->d_size / sh.sh_entsize; k++) {
			GElf_Sym s;
			const char *nm;
			if (gelf_getsym(d, (int)k, &s) && (nm = elf_strptr(elf, sh.sh_link, s.st_name)) &&
			    strcmp(nm, name) == 0)
				return s.st_value;
		}
	}
	return 0;
}

static void write_seed(const char *dir, const char *path)
{
	GElf_Shdr psh, rsh;
	Elf_Data *pd, *rd;
	uint64_t gofunc;
	uint32_t n;
	uint8_t *buf;
	const char *base = strrchr(path, '/');
	int fd = open(path, O_RDONLY);
	Elf *elf = fd >= 0 ? elf_begin(fd, ELF_C_READ, NULL) : NULL;

	if (!elf || section(elf, ".gopclntab", &psh, &pd) < 0 || section(elf, ".rodata", &rsh, &rd) < 0 ||
	    !(gofunc = symbol(elf, "go.func.*")) || gofunc < rsh.sh_addr || gofunc >= rsh.sh_addr + rd->d_size) {
		fprintf(stderr, "%s: not a Go binary with .gopclntab and go.func.*\n", path);
		exit(1);
	}
	n = (uint32_t)pd->d_size;
	buf = malloc(4 + n + rd->d_size);
	memcpy(buf, &n, 4);
	memcpy(buf + 4, pd->d_buf, n);
	memcpy(buf + 4 + n, (uint8_t *)rd->d_buf + (gofunc - rsh.sh_addr), rd->d_size - (gofunc - rsh.sh_addr));
	fuzz_write_seed(dir, base ? base + 1 : path, buf, 4 + n + rd->d_size - (gofunc - rsh.sh_addr));
	free(buf);
	elf_end(elf);
	close(fd);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	const char *dir = fuzz_seed_dir();
	int i;

	elf_version(EV_CURRENT);
	if (!dir)
		return 0;
	for (i = 1; i < *argc; i++)
		write_seed(dir, (*argv)[i]);
	exit(0);
}
