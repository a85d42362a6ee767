/* The second unwinder: libunwind's DWARF unwinder over an address space of
 * our own accessors, for the same registers and memory readers as libdw's.
 * The stack comes from the xp_mem reader (a stopped thread's copy, a perf
 * sample's); code, .eh_frame_hdr and .eh_frame come from the module images
 * libdw opened for symbolizing (the file, or the vdso copied once), so no
 * read of text is a system call.  Native code only: Go frames are libdw's
 * path's (Go's table), and a module with .debug_frame but no .eh_frame_hdr
 * has no table here.
 */
#define _GNU_SOURCE
#include <elfutils/libdwfl.h>
#include <errno.h>
#include <gelf.h>
#include <libunwind.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "unwind/unwind.h"
#include "unwind/unwind_internal.h"

/* not in libunwind.h, exported by libunwind-generic (perf declares it too) */
extern int _Ux86_64_dwarf_search_unwind_table(unw_addr_space_t as, unw_word_t ip, unw_dyn_info_t *di,
					      unw_proc_info_t *pi, int need_unwind_info, void *arg);

#define MAX_IMAGES 512        /* modules whose tables are remembered */
#define STACK_SPAN (1u << 20) /* reads within this much above SP go to the stack reader first */

/* A module's code and unwind table, as the target sees them. */
struct image {
	uint64_t lo, hi;        /* the module's addresses */
	uint64_t bias;          /* target address = file address + bias */
	const uint8_t *file;    /* the ELF file's bytes */
	size_t file_len;
	GElf_Phdr load[16];     /* PT_LOAD segments: address → file offset */
	size_t nload;
	int have_table;
	unw_dyn_info_t di;      /* .eh_frame_hdr's binary search table */
};

struct xp_lu {
	struct xp_space *space;
	Dwfl *dwfl;
	unw_addr_space_t as;
	struct image *img;
	size_t nimg;
	struct image *last;     /* the image the last code read hit */
	/* the current unwind */
	uint64_t regs[XP_DWARF_NREGS];
	struct xp_mem *mem;
	uint64_t sp0;
};

/* ---- module images ------------------------------------------------------- */

static int read_image(const struct image *im, uint64_t addr, void *buf, size_t len)
{
	uint64_t v = addr - im->bias;
	size_t i;

	for (i = 0; i < im->nload; i++) {
		const GElf_Phdr *p = &im->load[i];
		if (v >= p->p_vaddr && v - p->p_vaddr + len <= p->p_filesz) {
			uint64_t off = p->p_offset + (v - p->p_vaddr);
			if (off > im->file_len || im->file_len - off < len)
				return -EFAULT;
			memcpy(buf, im->file + off, len);
			return 0;
		}
	}
	return -EFAULT;
}

static uint64_t read_u32(const uint8_t *p)
{
	uint32_t v;

	memcpy(&v, p, 4);
	return v;
}

/* The binary search table of .eh_frame_hdr (pcrel/udata4 header fields and
 * datarel sdata4 entries, what every x86-64 linker writes). */
static void find_table(struct image *im, Elf *elf)
{
	size_t nph, i;
	uint8_t hdr[12];

	if (elf_getphdrnum(elf, &nph) != 0)
		return;
	for (i = 0; i < nph; i++) {
		GElf_Phdr ph;
		uint64_t at, fde_count;
		if (!gelf_getphdr(elf, (int)i, &ph) || ph.p_type != PT_GNU_EH_FRAME)
			continue;
		at = ph.p_vaddr + im->bias;
		if (read_image(im, at, hdr, sizeof(hdr)) < 0 || hdr[0] != 1)
			return;
		/* eh_frame_ptr: 4-byte pcrel or absolute; fde_count: (u|s)data4;
		 * table: datarel sdata4, or there is no table to search */
		if ((hdr[1] & 0x0f) != 0x03 && (hdr[1] & 0x0f) != 0x0b)
			return;
		if (hdr[2] != 0x03 && hdr[2] != 0x0b)
			return;
		if (hdr[3] != 0x3b)
			return;
		fde_count = read_u32(hdr + 8);
		if (fde_count == 0 || fde_count > ph.p_filesz / 8)
			return;
		im->di.format = UNW_INFO_FORMAT_REMOTE_TABLE;
		im->di.start_ip = im->lo;
		im->di.end_ip = im->hi;
		im->di.u.rti.segbase = at;
		im->di.u.rti.table_data = at + 12;
		im->di.u.rti.table_len = fde_count * 8 / sizeof(unw_word_t);
		im->have_table = 1;
		return;
	}
}

/* The image of the module holding addr, opened on first use; NULL when
 * addr is in no module or its file cannot be read. */
static struct image *image_at(struct xp_lu *lu, uint64_t addr)
{
	Dwfl_Module *mod;
	Dwarf_Addr lo, hi, bias;
	Elf *elf;
	struct image *im;
	size_t i, nph;

	if (lu->last && addr >= lu->last->lo && addr < lu->last->hi)
		return lu->last;
	for (i = 0; i < lu->nimg; i++)
		if (addr >= lu->img[i].lo && addr < lu->img[i].hi)
			return lu->last = &lu->img[i];
	mod = dwfl_addrmodule(lu->dwfl, addr);
	if (!mod || lu->nimg == MAX_IMAGES)
		return NULL;
	if (!dwfl_module_info(mod, NULL, &lo, &hi, NULL, NULL, NULL, NULL))
		return NULL;
	elf = dwfl_module_getelf(mod, &bias);
	if (!elf)
		return NULL;
	im = &lu->img[lu->nimg];
	memset(im, 0, sizeof(*im));
	im->lo = lo;
	im->hi = hi;
	im->bias = bias;
	im->file = (const uint8_t *)elf_rawfile(elf, &im->file_len);
	if (!im->file || elf_getphdrnum(elf, &nph) != 0)
		return NULL;
	for (i = 0; i < nph && im->nload < sizeof(im->load) / sizeof(im->load[0]); i++) {
		GElf_Phdr ph;
		if (gelf_getphdr(elf, (int)i, &ph) && ph.p_type == PT_LOAD)
			im->load[im->nload++] = ph;
	}
	find_table(im, elf);
	lu->nimg++;
	return lu->last = im;
}

/* ---- accessors ---------------------------------------------------------- */

static int find_proc_info(unw_addr_space_t as, unw_word_t ip, unw_proc_info_t *pi, int need_unwind_info,
			  void *arg)
{
	struct xp_lu *lu = arg;
	struct image *im = image_at(lu, ip);

	if (!im || !im->have_table)
		return -UNW_ENOINFO;
	return _Ux86_64_dwarf_search_unwind_table(as, ip, &im->di, pi, need_unwind_info, arg);
}

static void put_unwind_info(unw_addr_space_t as, unw_proc_info_t *pi, void *arg)
{
	(void)as;
	(void)pi;
	(void)arg; /* libunwind frees the table-format info it made itself */
}

static int get_dyn_info_list_addr(unw_addr_space_t as, unw_word_t *addr, void *arg)
{
	(void)as;
	(void)addr;
	(void)arg;
	return -UNW_ENOINFO;
}

static int access_mem(unw_addr_space_t as, unw_word_t addr, unw_word_t *valp, int write, void *arg)
{
	struct xp_lu *lu = arg;
	struct image *im;

	(void)as;
	if (write)
		return -UNW_EREADONLYREG;
	/* the stack first: most reads are there, and it is in no module */
	if (addr + 128 >= lu->sp0 && addr - lu->sp0 < STACK_SPAN &&
	    xp_mem_read_full(lu->mem, addr, valp, sizeof(*valp)) == 0)
		return 0;
	im = image_at(lu, addr);
	if (im && read_image(im, addr, valp, sizeof(*valp)) == 0)
		return 0;
	if (xp_mem_read_full(lu->mem, addr, valp, sizeof(*valp)) == 0)
		return 0;
	return -UNW_EINVAL;
}

static int access_reg(unw_addr_space_t as, unw_regnum_t reg, unw_word_t *valp, int write, void *arg)
{
	struct xp_lu *lu = arg;

	(void)as;
	if (write)
		return -UNW_EREADONLYREG;
	/* libunwind's x86-64 numbers are the DWARF ones, rip at 16 */
	if (reg < 0 || reg >= XP_DWARF_NREGS)
		return -UNW_EBADREG;
	*valp = lu->regs[reg];
	return 0;
}

static int access_fpreg(unw_addr_space_t as, unw_regnum_t reg, unw_fpreg_t *val, int write, void *arg)
{
	(void)as;
	(void)reg;
	(void)val;
	(void)write;
	(void)arg;
	return -UNW_EBADREG;
}

static int resume(unw_addr_space_t as, unw_cursor_t *c, void *arg)
{
	(void)as;
	(void)c;
	(void)arg;
	return -UNW_EINVAL;
}

static int get_proc_name(unw_addr_space_t as, unw_word_t addr, char *buf, size_t len, unw_word_t *off, void *arg)
{
	(void)as;
	(void)addr;
	(void)buf;
	(void)len;
	(void)off;
	(void)arg;
	return -UNW_ENOINFO;
}

static unw_accessors_t accessors = {
	.find_proc_info = find_proc_info,
	.put_unwind_info = put_unwind_info,
	.get_dyn_info_list_addr = get_dyn_info_list_addr,
	.access_mem = access_mem,
	.access_reg = access_reg,
	.access_fpreg = access_fpreg,
	.resume = resume,
	.get_proc_name = get_proc_name,
};

/* ---- choosing the unwinder ----------------------------------------------------- */

static enum xp_unwind_backend default_backend = XP_UNWIND_LIBDW;

int xp_unwind_backend_parse(const char *name, enum xp_unwind_backend *b)
{
	if (strcmp(name, "libdw") == 0)
		*b = XP_UNWIND_LIBDW;
	else if (strcmp(name, "libunwind") == 0)
		*b = XP_UNWIND_LIBUNWIND;
	else
		return -EINVAL;
	return 0;
}

void xp_unwind_set_backend(enum xp_unwind_backend b)
{
	default_backend = b;
}

enum xp_unwind_backend xp_unwind_default_backend(void)
{
	return default_backend;
}

/* ---- unwinding ---------------------------------------------------------- */

int xp_lu_new(struct xp_space *space, struct xp_lu **out)
{
	struct xp_lu *lu = calloc(1, sizeof(*lu));

	*out = NULL;
	if (!lu)
		return -ENOMEM;
	lu->img = calloc(MAX_IMAGES, sizeof(lu->img[0]));
	lu->as = unw_create_addr_space(&accessors, 0);
	if (!lu->img || !lu->as) {
		xp_lu_free(lu);
		return -ENOMEM;
	}
	/* text does not change under an unwinder: libunwind may keep what
	 * it parsed for every later stack */
	unw_set_caching_policy(lu->as, UNW_CACHE_GLOBAL);
	lu->space = space;
	lu->dwfl = xp_space_dwfl(space);
	*out = lu;
	return 0;
}

void xp_lu_free(struct xp_lu *lu)
{
	if (!lu)
		return;
	if (lu->as)
		unw_destroy_addr_space(lu->as);
	free(lu->img);
	free(lu);
}

/* Does pc lie in code with an FDE?  The last frame of a stack libunwind
 * ended is the outermost only then: without CFI it guessed from rbp. */
static int has_fde(struct xp_lu *lu, uint64_t pc)
{
	unw_proc_info_t pi;

	memset(&pi, 0, sizeof(pi));
	return find_proc_info(lu->as, pc, &pi, 0, lu) == 0;
}

/* x86-64 Linux's signal return trampoline (__restore_rt):
 * mov $15, %rax; syscall.  libunwind knows it too, but tells it one frame
 * late. */
static int is_sigreturn(struct xp_lu *lu, uint64_t pc)
{
	static const uint8_t code[9] = { 0x48, 0xc7, 0xc0, 0x0f, 0x00, 0x00, 0x00, 0x0f, 0x05 };
	struct image *im = image_at(lu, pc);
	uint8_t buf[9];

	return im && read_image(im, pc, buf, sizeof(buf)) == 0 && memcmp(buf, code, sizeof(code)) == 0;
}

int xp_lu_unwind(struct xp_lu *lu, const struct user_regs_struct *regs, struct xp_mem *mem, struct xp_stack *out)
{
	unw_cursor_t c;
	int r, after_signal = 0;

	out->n = 0;
	out->complete = 0;
	out->capped = 0;
	out->error[0] = '\0';
	xp_regs_to_dwarf(regs, lu->regs);
	lu->mem = mem;
	lu->sp0 = regs->rsp;
	r = unw_init_remote(&c, lu->as, lu);
	if (r < 0) {
		snprintf(out->error, sizeof(out->error), "libunwind: %s", unw_strerror(r));
		return 0;
	}
	for (;;) {
		unw_word_t pc, sp;
		int in_signal, is_call;

		if (unw_get_reg(&c, UNW_REG_IP, &pc) < 0 || unw_get_reg(&c, UNW_REG_SP, &sp) < 0)
			break;
		/* a signal frame's pc (__restore_rt) and the pc it interrupted
		 * are where execution is, not return addresses */
		in_signal = out->n > 0 && is_sigreturn(lu, pc);
		is_call = out->n > 0 && !after_signal && !in_signal;
		if (pc == 0 && out->n > 0) {
			out->complete = 1;
			break;
		}
		/* a return address in no module is a wrong guess (libunwind's
		 * frame-pointer fallback where there is no CFI) */
		if (out->n > 0 && !dwfl_addrmodule(lu->dwfl, pc - (unw_word_t)is_call)) {
			snprintf(out->error, sizeof(out->error), "a return address in no module: 0x%llx",
				 (unsigned long long)pc);
			break;
		}
		if (out->n == XP_MAX_FRAMES) {
			out->capped = 1;
			break;
		}
		out->is_call[out->n] = (unsigned char)is_call;
		out->sp[out->n] = sp;
		out->pc[out->n++] = pc;
		after_signal = in_signal;
		r = unw_step(&c);
		if (r == 0) {
			out->complete = has_fde(lu, pc - (unw_word_t)is_call);
			if (!out->complete)
				snprintf(out->error, sizeof(out->error), "no CFI for 0x%llx", (unsigned long long)pc);
			break;
		}
		if (r < 0) {
			snprintf(out->error, sizeof(out->error), "libunwind: %s", unw_strerror(r));
			break;
		}
	}
	lu->mem = NULL;
	return 0;
}
