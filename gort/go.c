/* A Go program's runtime: which Go, where its runtime variables are, and
 * the layouts of the structures xprof reads (runtime.g, runtime.m,
 * runtime.bucket, runtime.memRecord), from the binary's DWARF or, without
 * DWARF, from the layouts of known versions.
 */
#define _GNU_SOURCE
#include <dwarf.h>
#include <elfutils/libdw.h>
#include <elfutils/libdwfl.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gort/gort_internal.h"
#include "symbolize/dwarftypes.h"

const char *const xp_go_known_versions = "go1.19";

/* go1.19's layouts (linux/amd64), for binaries built without DWARF. */
static const struct xp_go_layout go119 = {
	.g_size = 392, .g_stack_lo = 0, .g_stack_hi = 8, .g_m = 48,
	.g_sched_sp = 56, .g_sched_pc = 64, .g_sched_bp = 104,
	.g_syscallsp = 112, .g_syscallpc = 120, .g_status = 144, .g_goid = 152,
	.g_waitsince = 168, .g_waitreason = 176, .g_lockedm = 232, .g_gopc = 296,
	.g_startpc = 312, .g_labels = 360,
	.m_procid = 72,
	.b_size = 48, .b_allnext = 8, .b_typ = 16, .b_nstk = 40,
	.mr_active = 0, .mr_future = 32, .mrc_size = 32,
	.mrc_allocs = 0, .mrc_frees = 8, .mrc_alloc_bytes = 16, .mrc_free_bytes = 24,
	.ticks_val = 16,
};

int xp_go_func(struct xp_go *go, uint64_t pc, struct xp_gofunc *f)
{
	if (pc < go->bias)
		return -1;
	return xp_gopclntab_func(go->t, pc - go->bias, f);
}

/* ---- DWARF --------------------------------------------------------------- */

/* A layout from the binary is input: every field must lie inside its
 * structure, every structure be of a sane size.  0, or -1 with why. */
static int layout_check(struct xp_go_layout *l, char *why, size_t whylen)
{
	const int64_t g_fields[] = {
		l->g_stack_lo, l->g_stack_hi, l->g_m, l->g_sched_sp, l->g_sched_pc, l->g_sched_bp,
		l->g_syscallsp, l->g_syscallpc, l->g_status, l->g_goid, l->g_waitsince, l->g_waitreason,
		l->g_lockedm, l->g_gopc, l->g_startpc, l->g_labels,
	};
	const int64_t mrc_fields[] = { l->mrc_allocs, l->mrc_frees, l->mrc_alloc_bytes, l->mrc_free_bytes };
	size_t i;

	if (l->g_size <= 0 || l->g_size > 65536 || l->m_procid < 0 || l->m_procid > 65536)
		goto bad;
	for (i = 0; i < sizeof(g_fields) / sizeof(g_fields[0]); i++)
		if (g_fields[i] + 8 > l->g_size)
			goto bad;
	/* the heap profile's structures: unusable, not fatal */
	if (l->b_size < 0 || l->b_size > 4096 || l->b_allnext + 8 > l->b_size || l->b_typ + 8 > l->b_size ||
	    l->b_nstk + 8 > l->b_size || l->mrc_size < 0 || l->mrc_size > 4096 || l->mr_active < 0 ||
	    l->mr_active + l->mrc_size > 4096 || l->mr_future < 0 || l->mr_future > 4096)
		l->b_size = -1;
	for (i = 0; i < sizeof(mrc_fields) / sizeof(mrc_fields[0]); i++)
		if (mrc_fields[i] < 0 || mrc_fields[i] + 8 > l->mrc_size)
			l->b_size = -1;
	return 0;
bad:
	snprintf(why, whylen, "its DWARF gives runtime.g or runtime.m an impossible layout");
	return -1;
}

/* 0, or -1 with the missing field in why. */
static int layout_from_dwarf(Dwarf *dw, struct xp_go_layout *l, char *why, size_t whylen)
{
	struct xp_dwarf_struct w[] = {
		{ "runtime.g" }, { "runtime.m" }, { "runtime.bucket" },
		{ "runtime.memRecord" }, { "runtime.memRecordCycle" }, { "runtime.ticksType" },
	};
	struct { int64_t *dst; int which; const char *path; int required; } fields[] = {
		{ &l->g_stack_lo, 0, "stack.lo", 1 }, { &l->g_stack_hi, 0, "stack.hi", 1 },
		{ &l->g_m, 0, "m", 1 }, { &l->g_sched_sp, 0, "sched.sp", 1 },
		{ &l->g_sched_pc, 0, "sched.pc", 1 }, { &l->g_sched_bp, 0, "sched.bp", 1 },
		{ &l->g_syscallsp, 0, "syscallsp", 1 }, { &l->g_syscallpc, 0, "syscallpc", 1 },
		{ &l->g_status, 0, "atomicstatus", 1 }, { &l->g_goid, 0, "goid", 1 },
		{ &l->g_waitsince, 0, "waitsince", 1 }, { &l->g_waitreason, 0, "waitreason", 1 },
		{ &l->g_lockedm, 0, "lockedm", 1 }, { &l->g_gopc, 0, "gopc", 1 },
		{ &l->g_startpc, 0, "startpc", 1 }, { &l->g_labels, 0, "labels", 0 },
		{ &l->m_procid, 1, "procid", 1 },
		{ &l->b_allnext, 2, "allnext", 0 }, { &l->b_typ, 2, "typ", 0 }, { &l->b_nstk, 2, "nstk", 0 },
		{ &l->mr_active, 3, "active", 0 }, { &l->mr_future, 3, "future", 0 },
		{ &l->mrc_allocs, 4, "allocs", 0 }, { &l->mrc_frees, 4, "frees", 0 },
		{ &l->mrc_alloc_bytes, 4, "alloc_bytes", 0 }, { &l->mrc_free_bytes, 4, "free_bytes", 0 },
		{ &l->ticks_val, 5, "val", 0 },
	};
	size_t i;

	xp_dwarf_find_structs(dw, w, sizeof(w) / sizeof(w[0]));
	for (i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
		*fields[i].dst = w[fields[i].which].found ? xp_dwarf_member_offset(&w[fields[i].which].die, fields[i].path) : -1;
		if (*fields[i].dst < 0 && fields[i].required) {
			snprintf(why, whylen, "its DWARF has no %s.%s", w[fields[i].which].name, fields[i].path);
			return -1;
		}
	}
	l->g_size = xp_dwarf_struct_size(&w[0]);
	l->b_size = xp_dwarf_struct_size(&w[2]);
	l->mrc_size = xp_dwarf_struct_size(&w[4]);
	return layout_check(l, why, whylen);
}

/* ---- symbols ------------------------------------------------------------- */

static void find_symbols(struct xp_go *go, Dwfl_Module *mod, uint64_t *wrs_addr, uint64_t *wrs_size)
{
	const struct { const char *name; uint64_t *addr; } vars[] = {
		{ "allglen", &go->allglen }, { "allgptr", &go->allgptr }, { "mbuckets", &go->mbuckets },
		{ "mProfCycle", &go->mprofcycle }, { "MemProfileRate", &go->memprofilerate },
		{ "fingRunning", &go->fingrunning }, { "bbuckets", &go->bbuckets }, { "xbuckets", &go->xbuckets },
		{ "blockprofilerate", &go->blockprofilerate }, { "mutexprofilerate", &go->mutexprofilerate },
		{ "ticks", &go->ticks },
	};
	int n = dwfl_module_getsymtab(mod), k;
	size_t i;

	/* a -s binary may still have .dynsym (cgo), without runtime symbols */
	go->stripped = 1;
	for (k = 1; k < n; k++) {
		GElf_Sym sym;
		GElf_Addr addr;
		const char *nm = dwfl_module_getsym_info(mod, k, &sym, &addr, NULL, NULL, NULL);
		if (!nm || strncmp(nm, "runtime.", 8) != 0)
			continue;
		nm += 8;
		go->stripped = 0;
		for (i = 0; i < sizeof(vars) / sizeof(vars[0]); i++)
			if (strcmp(nm, vars[i].name) == 0)
				*vars[i].addr = addr;
		if (strcmp(nm, "waitReasonStrings") == 0) {
			*wrs_addr = sym.st_value; /* a file address: read from the file */
			*wrs_size = sym.st_size;
		}
	}
}

/* ---- runtime variables from the runtime's code ------------------------------
 *
 * A stripped Go binary (Debian strips its Go packages) keeps .gopclntab,
 * so the runtime's functions are known by name; the profile variables are
 * not.  Each is the first RIP-relative load of its size, into the kind of
 * section it lives in, in a function that reads it first thing: mbuckets
 * and mProfCycle in runtime.MemProfile, bbuckets in runtime.BlockProfile,
 * xbuckets in runtime.MutexProfile, MemProfileRate in runtime.profilealloc,
 * blockprofilerate in runtime.blockevent, mutexprofilerate in the mutex
 * event (sync.event, its linkname); MemProfileRate is the load
 * runtime.profilealloc compares with 1 (nextSample, inlined).  Bytes are matched, not decoded: a
 * match is kept only when its target lies in the expected section, and
 * what it points to is checked again when read.
 */
#define MAX_FUNC_BYTES (64 << 10)

enum var_section { IN_BSS, IN_NOPTR }; /* pointers: .bss; numbers: .noptrbss or .noptrdata */

static int in_section(struct xp_go *go, uint64_t addr, size_t size, enum var_section where)
{
	const char *names[2][2] = { { ".bss", ".data" }, { ".noptrbss", ".noptrdata" } };
	uint64_t start, len;
	int i;

	for (i = 0; i < 2; i++)
		if (xp_gopclntab_section(go->t, names[where][i], &start, &len) == 0 && addr >= start &&
		    addr - start + size <= len)
			return 1;
	return 0;
}

/* Whether the instruction at b[i] (after nops) compares a register with 1. */
static int cmp_one_at(const uint8_t *b, uint64_t i, uint64_t n)
{
	while (i < n && (b[i] == 0x90 || (b[i] == 0x66 && i + 1 < n && b[i + 1] == 0x90)))
		i += b[i] == 0x90 ? 1 : 2;
	/* cmpq r64, $1: REX.W (REX.B), 83, modrm 11 111 reg, 01 */
	return i + 4 <= n && (b[i] == 0x48 || b[i] == 0x49) && b[i + 1] == 0x83 && (b[i + 2] & 0xf8) == 0xf8 &&
	       b[i + 3] == 0x01;
}

/* The file address of the first RIP-relative mov of size (4 or 8 bytes)
 * from where in func (followed by a compare with 1 if cmp1), or 0. */
static uint64_t first_load(struct xp_go *go, const char *func, int size, enum var_section where, int cmp1)
{
	struct xp_gofunc f;
	uint8_t *b;
	uint64_t n, i, found = 0;

	if (xp_gopclntab_find(go->t, func, &f) < 0 || f.end <= f.entry)
		return 0;
	n = f.end - f.entry;
	if (n > MAX_FUNC_BYTES)
		n = MAX_FUNC_BYTES;
	b = malloc(n);
	if (!b || xp_gopclntab_read(go->t, f.entry, b, n) < 0) {
		free(b);
		return 0;
	}
	for (i = 0; i + 7 <= n && !found; i++) {
		uint64_t next;
		int32_t disp;
		/* movq r64, [rip+disp32]: REX.W (REX.R for r8-r15), 8b, modrm 00 reg 101 */
		if (size == 8 && (b[i] == 0x48 || b[i] == 0x4c) && b[i + 1] == 0x8b && (b[i + 2] & 0xc7) == 0x05) {
			memcpy(&disp, b + i + 3, 4);
			next = f.entry + i + 7;
		} else if (size == 4 && b[i] == 0x8b && (b[i + 1] & 0xc7) == 0x05 &&
			   (i == 0 || (b[i - 1] & 0xf8) != 0x48)) { /* movl: no REX.W before */
			memcpy(&disp, b + i + 2, 4);
			next = f.entry + i + 6;
		} else {
			continue;
		}
		if (in_section(go, next + (int64_t)disp, (size_t)size, where) && (!cmp1 || cmp_one_at(b, next - f.entry, n)))
			found = next + (int64_t)disp;
	}
	free(b);
	return found;
}

static void find_vars_in_code(struct xp_go *go)
{
	/* profilealloc reads mcache0 first: the rate is the one nextSample
	 * compares with 1 */
	const struct { uint64_t *dst; const char *func; int size; enum var_section where; int cmp1; } vars[] = {
		{ &go->mbuckets, "runtime.MemProfile", 8, IN_BSS, 0 },
		{ &go->mprofcycle, "runtime.MemProfile", 4, IN_NOPTR, 0 },
		{ &go->memprofilerate, "runtime.profilealloc", 8, IN_NOPTR, 1 },
		{ &go->bbuckets, "runtime.BlockProfile", 8, IN_BSS, 0 },
		{ &go->xbuckets, "runtime.MutexProfile", 8, IN_BSS, 0 },
		{ &go->blockprofilerate, "runtime.blockevent", 8, IN_NOPTR, 0 },
		{ &go->mutexprofilerate, "sync.event", 8, IN_NOPTR, 0 },
		{ &go->mutexprofilerate, "runtime.mutexevent", 8, IN_NOPTR, 0 },
	};
	size_t i;

	for (i = 0; i < sizeof(vars) / sizeof(vars[0]); i++) {
		uint64_t a;
		if (*vars[i].dst)
			continue;
		a = first_load(go, vars[i].func, vars[i].size, vars[i].where, vars[i].cmp1);
		if (a)
			*vars[i].dst = a + go->bias;
	}
}

/* A Go string header in the file: its text, malloc'd, or NULL. */
static char *file_string(struct xp_go *go, uint64_t hdr_addr)
{
	uint64_t h[2];
	char *s;

	if (xp_gopclntab_read(go->t, hdr_addr, h, sizeof(h)) < 0 || h[1] > 256)
		return NULL;
	s = malloc(h[1] + 1);
	if (!s)
		return NULL;
	if (h[1] && xp_gopclntab_read(go->t, h[0], s, h[1]) < 0) {
		free(s);
		return NULL;
	}
	s[h[1]] = '\0';
	return s;
}

/* waitReasonStrings without a symbol: the array in .data whose entry 1 is
 * "GC assist marking" (true of every Go since the table exists). */
static int find_waitreasons(struct xp_go *go, uint64_t *addr, uint64_t *size)
{
	uint64_t data, dsize, off;

	if (xp_gopclntab_section(go->t, ".data", &data, &dsize) < 0)
		return -1;
	for (off = 16; off + 32 <= dsize; off += 8) {
		uint64_t h[2];
		char text[18];
		if (xp_gopclntab_read(go->t, data + off, h, sizeof(h)) < 0 || h[1] != 17 ||
		    xp_gopclntab_read(go->t, h[0], text, 17) < 0 || memcmp(text, "GC assist marking", 17) != 0)
			continue;
		*addr = data + off - 16;
		*size = 16 * XP_GO_NWAIT; /* read on while entries look like text */
		return 0;
	}
	return -1;
}

static void load_waitreasons(struct xp_go *go, uint64_t addr, uint64_t size)
{
	size_t i, n = size / 16;

	if (n > XP_GO_NWAIT)
		n = XP_GO_NWAIT;
	for (i = 0; i < n; i++) {
		char *s = file_string(go, addr + 16 * i);
		size_t k;
		if (!s)
			break;
		for (k = 0; s[k]; k++)
			if (s[k] < 0x20 || s[k] > 0x7e)
				break;
		if (s[k] || (i > 0 && !s[0])) {
			free(s);
			break;
		}
		go->waitreason[go->nwaitreason++] = s;
	}
}

/* The GNU build id note (go build -ldflags=-B 0x..., or the external
 * linker's --build-id), which names the separate debug file: Go's own
 * .note.go.buildid does not. */
static void build_id_hex(Dwfl_Module *mod, char *hex, size_t len)
{
	const unsigned char *id;
	GElf_Addr vaddr;
	int n = dwfl_module_build_id(mod, &id, &vaddr), i;

	hex[0] = '\0';
	for (i = 0; i < n && (size_t)(2 * i + 2) < len; i++)
		snprintf(hex + 2 * i, 3, "%02x", id[i]);
}

int xp_go_open(struct xp_space *space, struct xp_go **out, char *why, size_t whylen)
{
	struct xp_go *go;
	Dwfl_Module *mod = NULL;
	Dwarf *dw;
	Dwarf_Addr dwbias;
	uint64_t wrs_addr = 0, wrs_size = 0;
	const struct xp_gopclntab *t;
	uint64_t bias;
	int minor = 0;

	*out = NULL;
	why[0] = '\0';
	t = xp_space_go(space, &bias, &mod);
	if (!t)
		return -ENOENT;
	go = calloc(1, sizeof(*go));
	if (!go)
		return -ENOMEM;
	go->space = space;
	go->t = t;
	go->bias = bias;
	snprintf(go->version, sizeof(go->version), "%s", xp_gopclntab_version(t));
	go->wrapper_id = xp_gopclntab_wrapper_id(t);
	sscanf(go->version, "go1.%d", &minor);

	dw = dwfl_module_getdwarf(mod, &dwbias);
	if (dw && layout_from_dwarf(dw, &go->l, why, whylen) == 0) {
		go->layout_source = "DWARF";
	} else if (minor == 19) {
		go->l = go119;
		go->layout_source = "known go1.19 layout";
		why[0] = '\0';
	} else {
		if (!why[0])
			snprintf(why, whylen, "it was built without DWARF (-ldflags=-w) and xprof knows the runtime "
				 "layouts of %s only, not of %s", xp_go_known_versions,
				 go->version[0] ? go->version : "this Go version");
		xp_go_close(go);
		return -ENOTSUP;
	}
	find_symbols(go, mod, &wrs_addr, &wrs_size);
	if (go->stripped) {
		build_id_hex(mod, go->build_id, sizeof(go->build_id));
		find_vars_in_code(go);
	}
	if (!wrs_addr)
		find_waitreasons(go, &wrs_addr, &wrs_size);
	if (wrs_addr)
		load_waitreasons(go, wrs_addr, wrs_size);
	*out = go;
	return 0;
}

void xp_go_close(struct xp_go *go)
{
	size_t i;

	if (!go)
		return;
	for (i = 0; i < go->nwaitreason; i++)
		free(go->waitreason[i]);
	free(go);
}

const char *xp_go_version(const struct xp_go *go)
{
	return go->version[0] ? go->version : "unknown Go version";
}

const char *xp_go_layout_source(const struct xp_go *go)
{
	return go->layout_source;
}

const char *xp_go_funcname(struct xp_go *go, uint64_t pc, const char **file, int *line, uint64_t *entry,
			   int *inlined)
{
	struct xp_gofunc f;
	struct xp_goinline in;
	const char *name;
	int is_inlined = 0;

	*file = NULL;
	*line = 0;
	if (xp_go_func(go, pc - 1, &f) < 0)
		return NULL;
	name = f.name;
	if (xp_gopclntab_inlined_at(go->t, &f, pc - 1 - go->bias, &in) == 0) {
		name = in.name;
		is_inlined = 1;
	}
	if (entry)
		*entry = f.entry;
	if (inlined)
		*inlined = is_inlined;
	xp_gopclntab_fileline(go->t, &f, pc - 1 - go->bias, file, line);
	return name;
}
