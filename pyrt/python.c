/* CPython 3.11 to 3.13's interpreter read from outside: where it is
 * (_PyRuntime), the layouts of its thread states, C frames, interpreter
 * frames and code objects (3.11 and 3.12: DWARF, else the checked table of
 * the version; 3.13: the _Py_DebugOffsets it keeps at the start of
 * _PyRuntime for debuggers), the thread list with the GIL holder, and
 * Python frames merged into native stacks.
 */
#define _GNU_SOURCE
#include <dwarf.h>
#include <elfutils/libdwfl.h>
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pyrt/pyrt.h"
#include "symbolize/dwarftypes.h"

const char *const xp_py_known_versions = "3.11, 3.12, 3.13";

/* Offsets xprof reads; -1 where the version has no such member.  What
 * changed between versions:
 * - 3.11: the GIL in _PyRuntime; each loop activation's _PyCFrame on its C
 *   stack (tstate->cframe->current_frame), its first frame marked is_entry;
 * - 3.12: the GIL per interpreter (interp->ceval.gil, a pointer); the
 *   loop pushes an entry frame of its own (owner FRAME_OWNED_BY_CSTACK)
 *   below the activation's frames;
 * - 3.13: no _PyCFrame: tstate->current_frame (in ts_cframe) is the
 *   innermost frame, and each activation's entry frame, on its C stack,
 *   is what tells activations apart; f_code became f_executable and
 *   prev_instr instr_ptr (same offsets, same use here). */
struct py_layout {
	int minor;  /* 11, 12, 13 */
	int64_t rt_interp_head, rt_gil_locked, rt_gil_holder;
	int64_t is_next, is_threads_head, is_gil, gil_locked, gil_holder;
	int64_t ts_next, ts_cframe, ts_native_tid, ts_size;
	int64_t cf_current_frame, cf_previous;
	int64_t fr_code, fr_previous, fr_prev_instr, fr_is_entry, fr_owner, fr_size;
	int64_t co_firstlineno, co_filename, co_name, co_qualname, co_linetable, co_firsttraceable, co_code;
	int64_t str_ascii_data, str_compact_data; /* compact strings' text */
};

/* CPython 3.11 on x86-64, checked against python3.11-dbg's DWARF (gdb
 * ptype /o) for Debian's 3.11.2: the layout every 3.11 build has, since
 * 3.11's structures do not change within the series. */
static const struct py_layout py311 = {
	.minor = 11,
	.rt_interp_head = 0x28, .rt_gil_locked = 0x178, .rt_gil_holder = 0x170,
	.is_next = 0, .is_threads_head = 0x10, .is_gil = -1, .gil_locked = -1, .gil_holder = -1,
	.ts_next = 8, .ts_cframe = 0x38, .ts_native_tid = 0xa0, .ts_size = 360,
	.cf_current_frame = 8, .cf_previous = 16,
	.fr_code = 32, .fr_previous = 48, .fr_prev_instr = 56, .fr_is_entry = 68, .fr_owner = 69, .fr_size = 72,
	.co_firstlineno = 72, .co_filename = 112, .co_name = 120, .co_qualname = 128, .co_linetable = 136,
	.co_firsttraceable = 168, .co_code = 184,
	.str_ascii_data = 48, .str_compact_data = 72,
};

/* CPython 3.12 on x86-64, checked against the DWARF of pyenv's 3.12.1
 * (libpython3.12.so, gdb ptype /o). */
static const struct py_layout py312 = {
	.minor = 12,
	.rt_interp_head = 0x28, .rt_gil_locked = -1, .rt_gil_holder = -1,
	.is_next = 0, .is_threads_head = 0x48, .is_gil = 0x180, .gil_locked = 16, .gil_holder = 8,
	.ts_next = 8, .ts_cframe = 0x38, .ts_native_tid = 0x90, .ts_size = 288,
	.cf_current_frame = 0, .cf_previous = 8,
	.fr_code = 0, .fr_previous = 8, .fr_prev_instr = 56, .fr_is_entry = -1, .fr_owner = 70, .fr_size = 72,
	.co_firstlineno = 68, .co_filename = 112, .co_name = 120, .co_qualname = 128, .co_linetable = 136,
	.co_firsttraceable = 176, .co_code = 192,
	.str_ascii_data = 40, .str_compact_data = 56,
};

/* Object headers, fixed by 3.11's ABI: ob_type, a var object's size, the
 * bytes of a bytes object, compact strings' state word and text. */
#define OB_TYPE 8
#define OB_SIZE 16
#define BYTES_DATA 32
#define STR_LENGTH 16
#define STR_STATE 32
#define STR_HDR_MAX 128

#define FRAME_OWNED_BY_GENERATOR 1
#define FRAME_OWNED_BY_CSTACK 3 /* 3.12+: the loop's own entry frame */
#define CODE_CACHE 4096 /* code objects remembered (direct-mapped) */
#define CODE_HDR_MAX 512
#define EVAL_RANGES 8

struct code_info {
	uint64_t addr, qualname, filename, linetable;
	uint64_t lo, hi;  /* its instructions (co_code_adaptive, 2 bytes a unit) */
	int firstlineno, firsttraceable;
	char *name, *file;
	uint8_t *table;
	size_t table_len;
};

/* A variable of the interpreter loop: its DWARF location list. */
struct loop_var {
	int have;
	Dwarf_Attribute loc;
};

struct xp_py {
	struct xp_space *space;
	struct xp_mem *live;
	struct py_layout l;
	uint64_t runtime, code_type;
	char version[32];
	const char *layout_source;
	struct code_info cache[CODE_CACHE];
	/* where the interpreter loop's code lies (its symbol and parts of it
	 * split off, _PyEval_EvalFrameDefault.cold), from the symbol table */
	struct { uint64_t lo, hi; } eval[EVAL_RANGES];
	size_t neval;
	/* the loop's variables from its DWARF, read from a sample's
	 * registers: next_instr, the instruction each activation ran when
	 * the sample was taken; frame (3.13, whose next_instr DWARF leaves
	 * out), the innermost Python frame it ran */
	struct loop_var ni, frame;
	int fbase_cfa; /* the loop's frame base is the CFA */
	Dwarf_Addr bias;
};

/* ---- finding it ------------------------------------------------------- */

/* A pointer worth following: in user space, aligned. */
static int plausible(uint64_t p)
{
	return p >= 4096 && p < (1ULL << 47) && (p & 7) == 0;
}

static int read_u64(struct xp_mem *m, uint64_t addr, uint64_t *v)
{
	return xp_mem_read_full(m, addr, v, sizeof(*v));
}

static uint64_t word_at(const uint8_t *buf, int64_t off)
{
	uint64_t v;

	memcpy(&v, buf + off, sizeof(v));
	return v;
}

/* A symbol of the module whose file name starts with one of the
 * interpreter's names: the program (python3.11) or libpython3.11.so. */
static int lookup(struct xp_space *space, const char *name, uint64_t *addr)
{
	static const char *const files[] = { "python3", "libpython3" };
	uint64_t base;
	int tls;
	size_t i;

	for (i = 0; i < sizeof(files) / sizeof(files[0]); i++)
		if (xp_space_lookup(space, files[i], name, addr, &tls, &base) == 0 && !tls)
			return 0;
	return -ENOENT;
}

/* A layout from a debug file is input: each field xprof reads from a
 * structure's copy must lie inside the bytes it copies. */
static int layout_ok(const struct py_layout *l)
{
	const int64_t ts[] = { l->ts_next, l->ts_cframe, l->ts_native_tid };
	const int64_t fr[] = { l->fr_code, l->fr_previous, l->fr_prev_instr };
	const int64_t co[] = { l->co_filename, l->co_name, l->co_qualname, l->co_linetable };
	const int64_t far[] = { l->rt_interp_head, l->rt_gil_locked, l->rt_gil_holder, l->is_next, l->is_threads_head,
				l->is_gil, l->gil_locked, l->gil_holder };
	size_t i;

	if (l->ts_size > 1024 || l->fr_size > 256 || l->co_code > CODE_HDR_MAX || l->co_code < 16 ||
	    l->str_ascii_data < STR_STATE + 4 || l->str_compact_data < l->str_ascii_data ||
	    l->str_compact_data > STR_HDR_MAX)
		return 0;
	/* read one at a time, each where it says: bounded by the size of the
	 * largest structure (3.13's interpreter state is 190 KiB) */
	for (i = 0; i < sizeof(far) / sizeof(far[0]); i++)
		if (far[i] < -1 || far[i] > (1 << 20))
			return 0;
	for (i = 0; i < 3; i++)
		if (ts[i] < 0 || ts[i] + 8 > l->ts_size || fr[i] < 0 || fr[i] + 8 > l->fr_size)
			return 0;
	for (i = 0; i < 4; i++)
		if (co[i] < 0 || co[i] + 8 > l->co_code)
			return 0;
	return l->fr_is_entry < l->fr_size && l->fr_owner >= 0 && l->fr_owner < l->fr_size &&
	       l->co_firstlineno >= 0 && l->co_firstlineno + 4 <= l->co_code && l->co_firsttraceable + 4 <= l->co_code;
}

struct find_module {
	uint64_t addr;
	Dwfl_Module *mod;
};

/* The module whose symbol addr is: by its symbols' range, since a space
 * may know only a module's code mapping and not the data after it. */
static int module_of_symbol(Dwfl_Module *mod, void **userdata, const char *name, Dwarf_Addr start, void *arg)
{
	struct find_module *f = arg;
	GElf_Sym sym;
	GElf_Addr addr;
	int n = dwfl_module_getsymtab(mod), k;

	(void)userdata;
	(void)name;
	(void)start;
	for (k = 1; k < n; k++) {
		const char *nm = dwfl_module_getsym_info(mod, k, &sym, &addr, NULL, NULL, NULL);
		if (nm && addr == f->addr && strcmp(nm, "_PyRuntime") == 0) {
			f->mod = mod;
			return DWARF_CB_ABORT;
		}
	}
	return DWARF_CB_OK;
}

/* 1 when a symbol name is the interpreter loop's, or a part of it the
 * compiler split off ("_PyEval_EvalFrameDefault.cold"). */
static int is_eval_name(const char *fn)
{
	size_t k = strlen("_PyEval_EvalFrameDefault");

	return fn && strncmp(fn, "_PyEval_EvalFrameDefault", k) == 0 && (fn[k] == '\0' || fn[k] == '.');
}

/* The address ranges of the interpreter loop in the module holding eval,
 * from its function symbols: is_eval is then a range check, not a
 * symbolization (each frame of each sample asks, and the first
 * symbolization of the interpreter read its whole debug file: 300 ms of
 * samples read late at the start of a run). */
static void eval_ranges(struct xp_py *py, uint64_t eval)
{
	Dwfl_Module *mod = dwfl_addrmodule(xp_space_dwfl(py->space), eval);
	int n = mod ? dwfl_module_getsymtab(mod) : -1, k;

	for (k = 1; k < n && py->neval < EVAL_RANGES; k++) {
		GElf_Sym sym;
		GElf_Addr addr;
		const char *nm = dwfl_module_getsym_info(mod, k, &sym, &addr, NULL, NULL, NULL);
		size_t i;

		if (!nm || GELF_ST_TYPE(sym.st_info) != STT_FUNC || sym.st_size == 0 || !is_eval_name(nm))
			continue;
		for (i = 0; i < py->neval && py->eval[i].lo != addr; i++)
			;
		if (i == py->neval) { /* .dynsym and .symtab both list it */
			py->eval[py->neval].lo = addr;
			py->eval[py->neval].hi = addr + sym.st_size;
			py->neval++;
		}
	}
}

/* The variable name in scope (or a lexical block of it), with a location. */
static int find_var(Dwarf_Die *scope, const char *name, Dwarf_Die *out, int depth)
{
	Dwarf_Die c;

	if (depth > 8 || dwarf_child(scope, &c) != 0)
		return -1;
	do {
		int tag = dwarf_tag(&c);
		Dwarf_Attribute a;
		const char *nm;
		if ((tag == DW_TAG_variable || tag == DW_TAG_formal_parameter) && (nm = dwarf_formstring(dwarf_attr_integrate(&c, DW_AT_name, &a))) &&
		    strcmp(nm, name) == 0 && dwarf_hasattr(&c, DW_AT_location)) {
			*out = c;
			return 0;
		}
		if (tag == DW_TAG_lexical_block && find_var(&c, name, out, depth + 1) == 0)
			return 0;
	} while (dwarf_siblingof(&c, &c) == 0);
	return -1;
}

/* The loop's next_instr and frame from its DWARF (python3.11-dbg, a
 * build's own): where each lives at each pc.  Without them, samples are
 * checked by their frame pointer only. */
static void find_loop_vars(struct xp_py *py, uint64_t eval)
{
	Dwfl_Module *mod = dwfl_addrmodule(xp_space_dwfl(py->space), eval);
	Dwarf_Die *cu, *scopes = NULL, var;
	Dwarf_Attribute fb;
	Dwarf_Op *ops;
	size_t nops;
	int n, k;

	if (!mod || !(cu = dwfl_module_addrdie(mod, eval, &py->bias)))
		return;
	n = dwarf_getscopes(cu, eval - py->bias, &scopes);
	for (k = 0; k < n; k++) {
		if (dwarf_tag(&scopes[k]) != DW_TAG_subprogram)
			continue;
		py->ni.have = find_var(&scopes[k], "next_instr", &var, 0) == 0 &&
			      dwarf_attr(&var, DW_AT_location, &py->ni.loc) != NULL;
		py->frame.have = find_var(&scopes[k], "frame", &var, 0) == 0 &&
				 dwarf_attr(&var, DW_AT_location, &py->frame.loc) != NULL;
		py->fbase_cfa = dwarf_attr(&scopes[k], DW_AT_frame_base, &fb) != NULL &&
				dwarf_getlocation(&fb, &ops, &nops) == 0 && nops == 1 && ops[0].atom == DW_OP_call_frame_cfa;
		break;
	}
	free(scopes);
}

/* The module holding _PyRuntime: by address, else by its symbols. */
static Dwfl_Module *runtime_module(struct xp_py *py)
{
	struct find_module fm = { py->runtime, NULL };
	Dwfl_Module *mod = dwfl_addrmodule(xp_space_dwfl(py->space), py->runtime);

	if (!mod) {
		dwfl_getmodules(xp_space_dwfl(py->space), module_of_symbol, &fm, 0);
		mod = fm.mod;
	}
	return mod;
}

/* The layout of a 3.11 or 3.12 (py->l.minor) from the interpreter's DWARF. */
static int layout_from_dwarf(struct xp_py *py)
{
	Dwfl_Module *mod = runtime_module(py);
	Dwarf_Addr bias;
	Dwarf *dw;
	struct xp_dwarf_struct w[] = {
		{ "pyruntimestate" }, { "_is" },	  { "_ts" },	      { "_PyCFrame" },
		{ "_PyInterpreterFrame" }, { "PyCodeObject" }, { "_gil_runtime_state" },
	};
	struct py_layout *l = &py->l;
	/* where each is in 3.11 and in 3.12 (NULL: not in that version) */
	struct { int64_t *dst; int which; const char *path[2]; } f[] = {
		{ &l->rt_interp_head, 0, { "interpreters.head", "interpreters.head" } },
		{ &l->rt_gil_locked, 0, { "ceval.gil.locked", NULL } },
		{ &l->rt_gil_holder, 0, { "ceval.gil.last_holder", NULL } },
		{ &l->is_next, 1, { "next", "next" } }, { &l->is_threads_head, 1, { "threads.head", "threads.head" } },
		{ &l->is_gil, 1, { NULL, "ceval.gil" } },
		{ &l->gil_locked, 6, { NULL, "locked" } }, { &l->gil_holder, 6, { NULL, "last_holder" } },
		{ &l->ts_next, 2, { "next", "next" } }, { &l->ts_cframe, 2, { "cframe", "cframe" } },
		{ &l->ts_native_tid, 2, { "native_thread_id", "native_thread_id" } },
		{ &l->cf_current_frame, 3, { "current_frame", "current_frame" } },
		{ &l->cf_previous, 3, { "previous", "previous" } },
		{ &l->fr_code, 4, { "f_code", "f_code" } }, { &l->fr_previous, 4, { "previous", "previous" } },
		{ &l->fr_prev_instr, 4, { "prev_instr", "prev_instr" } }, { &l->fr_is_entry, 4, { "is_entry", NULL } },
		{ &l->fr_owner, 4, { "owner", "owner" } }, { &l->fr_size, 4, { "localsplus", "localsplus" } },
		{ &l->co_firstlineno, 5, { "co_firstlineno", "co_firstlineno" } },
		{ &l->co_filename, 5, { "co_filename", "co_filename" } }, { &l->co_name, 5, { "co_name", "co_name" } },
		{ &l->co_qualname, 5, { "co_qualname", "co_qualname" } },
		{ &l->co_linetable, 5, { "co_linetable", "co_linetable" } },
		{ &l->co_firsttraceable, 5, { "_co_firsttraceable", "_co_firsttraceable" } },
		{ &l->co_code, 5, { "co_code_adaptive", "co_code_adaptive" } },
	};
	int v = l->minor == 11 ? 0 : 1;
	size_t i;

	dw = mod ? dwfl_module_getdwarf(mod, &bias) : NULL;
	if (!dw)
		return -ENOENT;
	xp_dwarf_find_structs(dw, w, sizeof(w) / sizeof(w[0]));
	for (i = 0; i < sizeof(f) / sizeof(f[0]); i++) {
		if (!f[i].path[v]) {
			*f[i].dst = -1;
			continue;
		}
		*f[i].dst = w[f[i].which].found ? xp_dwarf_member_offset(&w[f[i].which].die, f[i].path[v]) : -1;
		/* every one is needed; a field too far out is no layout we trust */
		if (*f[i].dst < 0 || *f[i].dst > 4096)
			return -ENOENT;
	}
	l->ts_size = xp_dwarf_struct_size(&w[2]);
	return layout_ok(l) ? 0 : -ENOENT;
}

/* 3.13's _Py_DebugOffsets (Include/internal/pycore_runtime.h), the first
 * member of _PyRuntime: the offsets a debugger needs, kept by the
 * interpreter itself, each a u64, where 3.13 puts them. */
#define DO_COOKIE "xdebugpy"
enum {
	DO_VERSION = 8, DO_FREE_THREADED = 16,
	DO_RT_SIZE = 24, DO_RT_INTERP_HEAD = 40,
	DO_IS_SIZE = 48, DO_IS_NEXT = 64, DO_IS_THREADS_HEAD = 72, DO_IS_CEVAL_GIL = 112, DO_IS_GIL = 120,
	DO_IS_GIL_LOCKED = 136, DO_IS_GIL_HOLDER = 144,
	DO_TS_SIZE = 152, DO_TS_NEXT = 168, DO_TS_CURRENT_FRAME = 184, DO_TS_NATIVE_TID = 200,
	DO_FR_PREVIOUS = 232, DO_FR_EXECUTABLE = 240, DO_FR_INSTR_PTR = 248, DO_FR_LOCALSPLUS = 256, DO_FR_OWNER = 264,
	DO_CO_SIZE = 272, DO_CO_FILENAME = 280, DO_CO_NAME = 288, DO_CO_QUALNAME = 296, DO_CO_LINETABLE = 304,
	DO_CO_FIRSTLINENO = 312, DO_CO_CODE_ADAPTIVE = 344,
	DO_OB_TYPE = 360, DO_BYTES_OB_SIZE = 520, DO_BYTES_OB_SVAL = 528,
	DO_STR_STATE = 544, DO_STR_LENGTH = 552, DO_STR_ASCII_SIZE = 560,
	DO_SIZE = 584,
};

/* The layout from the debug offsets at runtime (hostile like all the
 * target holds: each offset inside the size given for its structure,
 * each size bounded, object headers the ABI xprof reads).  0, or -ENOTSUP
 * with why. */
static int layout_from_debug_offsets(struct xp_py *py, uint32_t hexversion, char *why, size_t whylen)
{
	uint8_t d[DO_SIZE];
	uint64_t v, rt_size, is_size, gil;
	struct py_layout *l = &py->l;

	if (xp_mem_read_full(py->live, py->runtime, d, sizeof(d)) < 0 || memcmp(d, DO_COOKIE, 8) != 0) {
		snprintf(why, whylen, "CPython %s without _Py_DebugOffsets at the start of _PyRuntime", py->version);
		return -ENOTSUP;
	}
	v = word_at(d, DO_VERSION);
	/* the layout above is 3.13's from its first release candidate on */
	if (v >> 16 != 0x030d || v >> 16 != hexversion >> 16 || (v & 0xf0) < 0xc0) {
		snprintf(why, whylen, "CPython %s has _Py_DebugOffsets of version 0x%" PRIx64 ", and xprof knows those of 3.13",
			 py->version, v);
		return -ENOTSUP;
	}
	if (word_at(d, DO_FREE_THREADED)) {
		snprintf(why, whylen, "CPython %s is a free-threaded build, whose objects xprof does not read",
			 py->version);
		return -ENOTSUP;
	}
	rt_size = word_at(d, DO_RT_SIZE);
	is_size = word_at(d, DO_IS_SIZE);
	gil = word_at(d, DO_IS_GIL);
	memset(l, 0, sizeof(*l));
	l->minor = 13;
	l->rt_interp_head = (int64_t)word_at(d, DO_RT_INTERP_HEAD);
	l->rt_gil_locked = l->rt_gil_holder = -1;
	l->is_next = (int64_t)word_at(d, DO_IS_NEXT);
	l->is_threads_head = (int64_t)word_at(d, DO_IS_THREADS_HEAD);
	l->is_gil = (int64_t)word_at(d, DO_IS_CEVAL_GIL);
	/* given from the interpreter state; read through its ceval.gil */
	l->gil_locked = (int64_t)(word_at(d, DO_IS_GIL_LOCKED) - gil);
	l->gil_holder = (int64_t)(word_at(d, DO_IS_GIL_HOLDER) - gil);
	l->ts_size = (int64_t)word_at(d, DO_TS_SIZE);
	l->ts_next = (int64_t)word_at(d, DO_TS_NEXT);
	l->ts_cframe = (int64_t)word_at(d, DO_TS_CURRENT_FRAME);
	l->ts_native_tid = (int64_t)word_at(d, DO_TS_NATIVE_TID);
	l->cf_current_frame = l->cf_previous = -1;
	l->fr_code = (int64_t)word_at(d, DO_FR_EXECUTABLE);
	l->fr_previous = (int64_t)word_at(d, DO_FR_PREVIOUS);
	l->fr_prev_instr = (int64_t)word_at(d, DO_FR_INSTR_PTR);
	l->fr_is_entry = -1;
	l->fr_owner = (int64_t)word_at(d, DO_FR_OWNER);
	l->fr_size = (int64_t)word_at(d, DO_FR_LOCALSPLUS);
	l->co_firstlineno = (int64_t)word_at(d, DO_CO_FIRSTLINENO);
	l->co_filename = (int64_t)word_at(d, DO_CO_FILENAME);
	l->co_name = (int64_t)word_at(d, DO_CO_NAME);
	l->co_qualname = (int64_t)word_at(d, DO_CO_QUALNAME);
	l->co_linetable = (int64_t)word_at(d, DO_CO_LINETABLE);
	l->co_firsttraceable = -1; /* not among them: from DWARF, if there is any */
	l->co_code = (int64_t)word_at(d, DO_CO_CODE_ADAPTIVE);
	/* compact strings: the ASCII object, then utf8_length and utf8 */
	l->str_ascii_data = (int64_t)word_at(d, DO_STR_ASCII_SIZE);
	l->str_compact_data = l->str_ascii_data + 16;
	if (rt_size > (64 << 20) || is_size > (64 << 20) || (uint64_t)l->rt_interp_head + 8 > rt_size ||
	    (uint64_t)l->is_next + 8 > is_size || (uint64_t)l->is_threads_head + 8 > is_size ||
	    (uint64_t)l->is_gil + 8 > is_size || gil >= is_size || (uint64_t)l->gil_locked >= 4096 ||
	    (uint64_t)l->gil_holder >= 4096 || (uint64_t)l->co_code > word_at(d, DO_CO_SIZE) ||
	    word_at(d, DO_OB_TYPE) != OB_TYPE || word_at(d, DO_BYTES_OB_SIZE) != OB_SIZE ||
	    word_at(d, DO_BYTES_OB_SVAL) != BYTES_DATA || word_at(d, DO_STR_STATE) != STR_STATE ||
	    word_at(d, DO_STR_LENGTH) != STR_LENGTH || !layout_ok(l)) {
		snprintf(why, whylen, "CPython %s: its _Py_DebugOffsets are not a layout xprof can trust", py->version);
		return -ENOTSUP;
	}
	return 0;
}

/* 3.13's _co_firsttraceable, which its debug offsets leave out, from its
 * DWARF; -1 without. */
static int64_t firsttraceable_from_dwarf(struct xp_py *py)
{
	Dwfl_Module *mod = runtime_module(py);
	Dwarf_Addr bias;
	Dwarf *dw = mod ? dwfl_module_getdwarf(mod, &bias) : NULL;
	struct xp_dwarf_struct w[] = { { "PyCodeObject" } };
	int64_t off;

	if (!dw)
		return -1;
	xp_dwarf_find_structs(dw, w, 1);
	off = w[0].found ? xp_dwarf_member_offset(&w[0].die, "_co_firsttraceable") : -1;
	return off >= 0 && off + 4 <= py->l.co_code ? off : -1;
}

int xp_py_open(struct xp_space *space, struct xp_mem *live, struct xp_py **out, char *why, size_t whylen)
{
	struct xp_py *py;
	uint64_t version_addr, eval;
	uint32_t hexversion, minor;

	*out = NULL;
	py = calloc(1, sizeof(*py));
	if (!py)
		return -ENOMEM;
	py->space = space;
	py->live = live;
	if (lookup(space, "_PyRuntime", &py->runtime) < 0) {
		free(py);
		return 0;
	}
	/* Py_Version (3.11+) holds PY_VERSION_HEX: 0x030b02f0 is 3.11.2 final */
	if (lookup(space, "Py_Version", &version_addr) < 0 ||
	    xp_mem_read_full(live, version_addr, &hexversion, sizeof(hexversion)) < 0) {
		snprintf(why, whylen, "a CPython older than 3.11 (no Py_Version); xprof reads %s", xp_py_known_versions);
		free(py);
		return -ENOTSUP;
	}
	snprintf(py->version, sizeof(py->version), "%u.%u.%u", hexversion >> 24, (hexversion >> 16) & 0xff,
		 (hexversion >> 8) & 0xff);
	minor = (hexversion >> 16) & 0xff;
	if (hexversion >> 24 != 3 || minor < 11 || minor > 13) {
		snprintf(why, whylen, "CPython %s, and xprof reads %s", py->version, xp_py_known_versions);
		free(py);
		return -ENOTSUP;
	}
	if (lookup(space, "PyCode_Type", &py->code_type) < 0 ||
	    lookup(space, "_PyEval_EvalFrameDefault", &eval) < 0) {
		snprintf(why, whylen, "CPython %s without PyCode_Type or _PyEval_EvalFrameDefault in its symbols",
			 py->version);
		free(py);
		return -ENOTSUP;
	}
	eval_ranges(py, eval);
	if (minor == 13) {
		if (layout_from_debug_offsets(py, hexversion, why, whylen) < 0) {
			free(py);
			return -ENOTSUP;
		}
		py->l.co_firsttraceable = firsttraceable_from_dwarf(py);
		py->layout_source = "_Py_DebugOffsets";
		find_loop_vars(py, eval);
	} else {
		py->l = minor == 11 ? py311 : py312;
		if (layout_from_dwarf(py) == 0) {
			py->layout_source = "DWARF";
			find_loop_vars(py, eval);
		} else {
			py->l = minor == 11 ? py311 : py312;
			py->layout_source = minor == 11 ? "known 3.11 layout" : "known 3.12 layout";
		}
	}
	*out = py;
	return 1;
}

/* An interpreter read through space and live, its layouts still to set. */
static struct xp_py *py_new(struct xp_space *space, struct xp_mem *live, uint64_t runtime, uint64_t code_type)
{
	struct xp_py *py = calloc(1, sizeof(*py));

	if (py) {
		py->space = space;
		py->live = live;
		py->runtime = runtime;
		py->code_type = code_type;
	}
	return py;
}

int xp_py_open_known(struct xp_space *space, struct xp_mem *live, uint64_t runtime, uint64_t code_type,
		     struct xp_py **out)
{
	struct xp_py *py = py_new(space, live, runtime, code_type);

	if (!py)
		return -ENOMEM;
	py->l = py311;
	py->layout_source = "known 3.11 layout";
	snprintf(py->version, sizeof(py->version), "3.11");
	*out = py;
	return 0;
}

int xp_py_open_debug_offsets(struct xp_space *space, struct xp_mem *live, uint64_t runtime, uint64_t code_type,
			     uint32_t hexversion, struct xp_py **out, char *why, size_t whylen)
{
	struct xp_py *py = py_new(space, live, runtime, code_type);

	*out = NULL;
	if (!py)
		return -ENOMEM;
	snprintf(py->version, sizeof(py->version), "%u.%u.%u", hexversion >> 24, (hexversion >> 16) & 0xff,
		 (hexversion >> 8) & 0xff);
	if (layout_from_debug_offsets(py, hexversion, why, whylen) < 0) {
		free(py);
		return -ENOTSUP;
	}
	py->layout_source = "_Py_DebugOffsets";
	*out = py;
	return 0;
}

void xp_py_close(struct xp_py *py)
{
	size_t i;

	if (!py)
		return;
	for (i = 0; i < CODE_CACHE; i++) {
		free(py->cache[i].name);
		free(py->cache[i].file);
		free(py->cache[i].table);
	}
	free(py);
}

const char *xp_py_version(const struct xp_py *py)
{
	return py->version;
}

const char *xp_py_layout_source(const struct xp_py *py)
{
	return py->layout_source;
}

const char *xp_py_innermost_check(const struct xp_py *py)
{
	if (py->ni.have)
		return "the sampled next_instr";
	if (py->l.cf_current_frame >= 0)
		return "the _PyCFrame in the stack copy";
	return py->frame.have ? "the frame the sampled registers hold" : "the entry frames on the stack";
}

/* ---- reading ---------------------------------------------------------- */

/* native_thread_id is the id a thread has in its own pid namespace: in a
 * container, not the one xprof knows it by.  Each is rewritten through
 * the NSpid of the process's tasks; one no task has (it exited) gets 0,
 * which names no thread. */
static int tids_to_ours(struct xp_py *py, struct xp_py_threads *out)
{
	pid_t pid = xp_space_pid(py->space), tid, ns;
	unsigned char *done;
	char path[64];
	struct dirent *e;
	DIR *d;
	size_t k;
	int nested = -1;

	if (out->n == 0 || pid <= 0)
		return 0;
	snprintf(path, sizeof(path), "/proc/%d/task", (int)pid);
	if (!(d = opendir(path)))
		return 0; /* gone: the ids name nothing anyway */
	if (!(done = calloc(out->n, 1))) {
		closedir(d);
		return -ENOMEM;
	}
	while ((e = readdir(d)) != NULL) {
		if ((tid = (pid_t)atoi(e->d_name)) <= 0 || (nested = xp_thread_ns_tid(pid, tid, &ns)) < 0)
			continue;
		if (nested == 0)
			break; /* our namespace: the ids are ours already */
		for (k = 0; k < out->n; k++)
			if (!done[k] && out->v[k].tid == ns) {
				out->v[k].tid = tid;
				done[k] = 1;
			}
	}
	closedir(d);
	for (k = 0; nested > 0 && k < out->n; k++)
		if (!done[k])
			out->v[k].tid = 0;
	free(done);
	return 0;
}

int xp_py_threads_read(struct xp_py *py, struct xp_py_threads *out)
{
	const struct py_layout *l = &py->l;
	uint64_t interp, holder = 0;
	uint32_t locked = 0;
	size_t ni, alloc = 0;
	int err = 0;

	memset(out, 0, sizeof(*out));
	if (read_u64(py->live, py->runtime + l->rt_interp_head, &interp) < 0)
		return -EIO;
	/* 3.11: one GIL, in the runtime */
	if (l->rt_gil_locked >= 0 &&
	    xp_mem_read_full(py->live, py->runtime + l->rt_gil_locked, &locked, sizeof(locked)) == 0 && locked &&
	    read_u64(py->live, py->runtime + l->rt_gil_holder, &holder) == 0)
		out->gil_locked = 1;
	for (ni = 0; interp && ni < XP_PY_MAX_INTERPRETERS; ni++) {
		uint64_t ts, next_interp, gil;
		size_t nt;

		if (!plausible(interp) || read_u64(py->live, interp + l->is_threads_head, &ts) < 0 ||
		    read_u64(py->live, interp + l->is_next, &next_interp) < 0) {
			out->truncated = 1;
			break;
		}
		/* 3.12+: each interpreter's GIL (its own, or the main one's) */
		if (l->is_gil >= 0) {
			locked = 0;
			holder = 0;
			if (read_u64(py->live, interp + l->is_gil, &gil) == 0 && plausible(gil) &&
			    xp_mem_read_full(py->live, gil + l->gil_locked, &locked, sizeof(locked)) == 0 && locked &&
			    read_u64(py->live, gil + l->gil_holder, &holder) == 0)
				out->gil_locked = 1;
		}
		for (nt = 0; ts && nt < XP_PY_MAX_THREADS; nt++) {
			uint8_t buf[1024];
			size_t k;
			if (!plausible(ts) || (size_t)l->ts_size > sizeof(buf) ||
			    xp_mem_read_full(py->live, ts, buf, (size_t)l->ts_size) < 0) {
				out->truncated = 1;
				break;
			}
			/* a cycle in the list: stop at the first thread state seen twice */
			for (k = 0; k < out->n && out->v[k].tstate != ts; k++)
				;
			if (k < out->n && out->n < 4096) {
				out->truncated = 1;
				break;
			}
			if (out->n == alloc) {
				size_t na = alloc ? alloc * 2 : 16;
				struct xp_py_thread *v = realloc(out->v, na * sizeof(*v));
				if (!v) {
					err = -ENOMEM;
					goto out;
				}
				out->v = v;
				alloc = na;
			}
			out->v[out->n] = (struct xp_py_thread){
				.tstate = ts,
				.tid = (pid_t)word_at(buf, l->ts_native_tid),
				.cframe = word_at(buf, l->ts_cframe),
				.holds_gil = locked && holder == ts,
			};
			out->n++;
			ts = word_at(buf, l->ts_next);
		}
		if (nt == XP_PY_MAX_THREADS)
			out->truncated = 1;
		interp = next_interp;
	}
	err = tids_to_ours(py, out);
out:
	if (err < 0)
		xp_py_threads_free(out);
	return err;
}

void xp_py_threads_free(struct xp_py_threads *t)
{
	free(t->v);
	memset(t, 0, sizeof(*t));
}

const struct xp_py_thread *xp_py_thread_of(const struct xp_py_threads *t, pid_t tid)
{
	size_t i;

	for (i = 0; t && i < t->n; i++)
		if (t->v[i].tid == tid)
			return &t->v[i];
	return NULL;
}

int xp_py_thread_update(struct xp_py *py, struct xp_py_thread *t)
{
	if (!plausible(t->tstate))
		return -EINVAL;
	return read_u64(py->live, t->tstate + py->l.ts_cframe, &t->cframe);
}

/* A str object's text as UTF-8 (compact strings: all that code objects
 * hold), malloc'd; NULL when it is not one or cannot be read. */
static char *read_str(struct xp_py *py, uint64_t addr)
{
	uint8_t hdr[STR_STATE + 4], raw[XP_PY_MAX_STRING * 4];
	uint64_t len;
	uint32_t state, kind;
	char *s;
	size_t i, o = 0;

	if (!plausible(addr) || xp_mem_read_full(py->live, addr, hdr, sizeof(hdr)) < 0)
		return NULL;
	len = word_at(hdr, STR_LENGTH);
	memcpy(&state, hdr + STR_STATE, sizeof(state));
	kind = (state >> 2) & 7;
	if (!(state & (1u << 5)) || (kind != 1 && kind != 2 && kind != 4))
		return NULL; /* not compact, or not ready */
	if (len > XP_PY_MAX_STRING)
		len = XP_PY_MAX_STRING;
	if (xp_mem_read_full(py->live, addr + (uint64_t)((state & (1u << 6)) ? py->l.str_ascii_data : py->l.str_compact_data),
			     raw, len * kind) < 0)
		return NULL;
	s = malloc(len * 4 + 1);
	if (!s)
		return NULL;
	for (i = 0; i < len; i++) {
		uint32_t c = kind == 1 ? raw[i] : kind == 2 ? (uint32_t)raw[2 * i] | (uint32_t)raw[2 * i + 1] << 8 :
			     (uint32_t)raw[4 * i] | (uint32_t)raw[4 * i + 1] << 8 | (uint32_t)raw[4 * i + 2] << 16 |
				     (uint32_t)raw[4 * i + 3] << 24;
		if (c < 0x80) {
			s[o++] = (char)c;
		} else if (c < 0x800) {
			s[o++] = (char)(0xc0 | c >> 6);
			s[o++] = (char)(0x80 | (c & 0x3f));
		} else if (c < 0x10000) {
			s[o++] = (char)(0xe0 | c >> 12);
			s[o++] = (char)(0x80 | ((c >> 6) & 0x3f));
			s[o++] = (char)(0x80 | (c & 0x3f));
		} else if (c < 0x110000) {
			s[o++] = (char)(0xf0 | c >> 18);
			s[o++] = (char)(0x80 | ((c >> 12) & 0x3f));
			s[o++] = (char)(0x80 | ((c >> 6) & 0x3f));
			s[o++] = (char)(0x80 | (c & 0x3f));
		} else {
			s[o++] = '?';
		}
	}
	s[o] = '\0';
	return s;
}

static uint8_t *read_bytes(struct xp_py *py, uint64_t addr, size_t *len)
{
	uint64_t n;
	uint8_t *b;

	if (!plausible(addr) || read_u64(py->live, addr + OB_SIZE, &n) < 0 || n > XP_PY_MAX_LINETABLE)
		return NULL;
	b = malloc(n ? n : 1);
	if (b && n && xp_mem_read_full(py->live, addr + BYTES_DATA, b, n) < 0) {
		free(b);
		return NULL;
	}
	*len = n;
	return b;
}

static void code_forget(struct code_info *c)
{
	free(c->name);
	free(c->file);
	free(c->table);
	memset(c, 0, sizeof(*c));
}

/* The code object at addr, read now; NULL when addr is no code object.
 * Kept while its name, file and table pointers stay the same. */
static const struct code_info *code_at(struct xp_py *py, uint64_t addr)
{
	const struct py_layout *l = &py->l;
	struct code_info *c = &py->cache[(addr >> 4) % CODE_CACHE];
	uint8_t hdr[CODE_HDR_MAX];
	uint64_t qual, file, table;
	int32_t first, traceable;

	if (!plausible(addr) || (size_t)l->co_code > sizeof(hdr) ||
	    xp_mem_read_full(py->live, addr, hdr, (size_t)l->co_code) < 0 || word_at(hdr, OB_TYPE) != py->code_type)
		return NULL;
	qual = word_at(hdr, l->co_qualname);
	file = word_at(hdr, l->co_filename);
	table = word_at(hdr, l->co_linetable);
	memcpy(&first, hdr + l->co_firstlineno, sizeof(first));
	traceable = 0; /* unknown (3.13 without DWARF): every frame is shown */
	if (l->co_firsttraceable >= 0)
		memcpy(&traceable, hdr + l->co_firsttraceable, sizeof(traceable));
	if (c->addr == addr && c->qualname == qual && c->filename == file && c->linetable == table &&
	    c->firstlineno == first && c->name)
		return c;
	code_forget(c);
	c->name = read_str(py, qual);
	if (!c->name)
		c->name = read_str(py, word_at(hdr, l->co_name));
	c->file = read_str(py, file);
	c->table = read_bytes(py, table, &c->table_len);
	if (!c->name) {
		code_forget(c);
		return NULL;
	}
	c->addr = addr;
	c->qualname = qual;
	c->filename = file;
	c->linetable = table;
	c->firstlineno = first;
	c->firsttraceable = traceable < 0 ? 0 : traceable;
	c->lo = addr + (uint64_t)l->co_code;
	/* ob_size code units; a bad one gives no range */
	c->hi = word_at(hdr, OB_SIZE) < (1u << 24) ? c->lo + 2 * word_at(hdr, OB_SIZE) : c->lo;
	return c;
}

static uint64_t varint(const uint8_t *t, size_t len, size_t *i)
{
	uint64_t v = 0;
	unsigned shift = 0;

	while (*i < len && shift < 60) {
		uint8_t b = t[(*i)++];
		v |= (uint64_t)(b & 63) << shift;
		shift += 6;
		if (!(b & 64))
			break;
	}
	return v;
}

/* The line of the instruction at code unit lasti, from 3.11's location
 * table (Objects/locations.md): entries of a first byte (bit 7 set, a
 * 4-bit code, a length of 1-8 code units) and the bytes its code says. */
static int line_of(const struct code_info *c, int64_t lasti)
{
	const uint8_t *t = c->table;
	size_t i = 0, len = c->table_len;
	int64_t line = c->firstlineno, unit = 0;

	if (!t || lasti < 0)
		return c->firstlineno;
	while (i < len) {
		uint8_t b = t[i++];
		int code = (b >> 3) & 15, entry_line;
		int64_t end = unit + (b & 7) + 1;
		size_t skip = 0;

		if (!(b & 128))
			return (int)line; /* not at an entry's start: a bad table */
		if (code == 13 || code == 14) {
			uint64_t v = varint(t, len, &i);
			line += (v & 1) ? -(int64_t)(v >> 1) : (int64_t)(v >> 1);
			if (code == 14) {
				varint(t, len, &i);
				varint(t, len, &i);
				varint(t, len, &i);
			}
		} else if (code >= 10 && code <= 12) {
			line += code - 10;
			skip = 2;
		} else if (code < 10) {
			skip = 1;
		}
		i += skip;
		entry_line = code == 15 ? -1 : (int)line;
		if (lasti < end)
			return entry_line;
		unit = end;
	}
	return (int)line;
}

/* ---- merging ---------------------------------------------------------- */

static int is_eval(struct xp_py *py, uint64_t pc, int is_call)
{
	const struct xp_sym *s;
	size_t i;

	if (py->neval) {
		for (i = 0; i < py->neval; i++)
			if (pc - is_call >= py->eval[i].lo && pc - is_call < py->eval[i].hi)
				return 1;
		return 0;
	}
	/* no sized symbol: as the symbolizer names the function */
	s = xp_symbolize(py->space, pc, is_call);
	return s && s->nframes > 0 && is_eval_name(s->frames[s->nframes - 1].system_name);
}

int xp_py_in_eval(struct xp_py *py, const struct xp_stack *st)
{
	size_t i;

	for (i = 0; i < st->n; i++)
		if (is_eval(py, st->pc[i], st->is_call[i]))
			return 1;
	return 0;
}

/* The stack copy first (what the thread had at that instant), then the
 * process now. */
static int read_at(struct xp_py *py, struct xp_mem *stackmem, uint64_t addr, void *buf, size_t len)
{
	if (stackmem && xp_mem_read_full(stackmem, addr, buf, len) == 0)
		return 0;
	return xp_mem_read_full(py->live, addr, buf, len);
}

static int frame_reg(const struct xp_frame_regs *r, uint64_t n, uint64_t *v)
{
	if (n >= XP_FRAME_NREGS || !(r->known & (1u << n)))
		return -1;
	*v = r->v[n];
	return 0;
}

/* A variable (next_instr, frame) of the loop activation that is frame i
 * of st, as it was when the stack was taken: from the frame's registers
 * (fregs[i]) or its stack slot in the copy, where the loop's DWARF puts it
 * at that pc.  0 and *ni, or -1 (no DWARF, a location xprof does not
 * evaluate, a register the unwinder did not recover). */
static int loop_var_at(struct xp_py *py, const struct loop_var *var, const struct xp_stack *st,
		       const struct xp_frame_regs *fregs, size_t i, struct xp_mem *stackmem, uint64_t *ni)
{
	const struct xp_frame_regs *r = &fregs[i];
	uint64_t pc = st->pc[i] - st->is_call[i], v;
	Dwarf_Op *ops;
	size_t nops;
	unsigned atom;

	if (!var->have || !r->known ||
	    dwarf_getlocation_addr((Dwarf_Attribute *)&var->loc, pc - py->bias, &ops, &nops, 1) != 1 || nops == 0 ||
	    nops > 2)
		return -1;
	atom = ops[0].atom;
	if (nops == 1 && atom >= DW_OP_reg0 && atom <= DW_OP_reg31)
		return frame_reg(r, atom - DW_OP_reg0, ni);
	if (nops == 1 && atom == DW_OP_regx)
		return frame_reg(r, ops[0].number, ni);
	if (atom >= DW_OP_breg0 && atom <= DW_OP_breg31) {
		if (frame_reg(r, atom - DW_OP_breg0, &v) < 0)
			return -1;
		v += ops[0].number; /* a signed offset, modulo 2^64 */
	} else if (atom == DW_OP_fbreg && py->fbase_cfa && i + 1 < st->n && st->sp[i + 1]) {
		v = st->sp[i + 1] + ops[0].number; /* the caller's sp is this frame's CFA */
	} else {
		return -1;
	}
	if (nops == 2)
		return ops[1].atom == DW_OP_stack_value ? (*ni = v, 0) : -1;
	/* a stack slot: as stackmem has it (a sample's copy of the stack,
	 * or a stopped thread's) */
	return stackmem && xp_mem_read_full(stackmem, v, ni, 8) == 0 ? 0 : -1;
}

/* The code object whose instructions hold addr, among those seen. */
static const struct code_info *code_holding(const struct xp_py *py, uint64_t addr)
{
	size_t i;

	for (i = 0; i < CODE_CACHE; i++)
		if (py->cache[i].name && addr >= py->cache[i].lo && addr < py->cache[i].hi)
			return &py->cache[i];
	return NULL;
}

/* The Python frames of one C activation, from its innermost frame to its
 * entry frame: pseudo pcs appended to pcs (at most max).  seen holds the
 * frames of the stack so far (a cycle check).  3.12+: the loop's own
 * entry frame ends them, not shown; its address goes to *entry and the
 * frame it leads to, the next activation's innermost, to *after. */
static size_t activation_frames(struct xp_py *py, uint64_t frame, uint64_t *pcs, size_t max, uint64_t *seen,
				size_t *nseen, uint64_t ni, int *check, uint64_t *entry_at, uint64_t *after)
{
	const struct py_layout *l = &py->l;
	size_t n = 0, k;
	int first_frame = 1;

	while (frame && n < max && *nseen < XP_PY_MAX_FRAMES) {
		uint8_t f[256];
		const struct code_info *c;
		uint64_t code, prev_instr, first;
		int entry;

		if (!plausible(frame) || (size_t)l->fr_size > sizeof(f) ||
		    xp_mem_read_full(py->live, frame, f, (size_t)l->fr_size) < 0)
			break;
		for (k = 0; k < *nseen && seen[k] != frame; k++)
			;
		if (k < *nseen)
			break; /* a cycle: torn or hostile */
		seen[(*nseen)++] = frame;
		if (l->fr_is_entry < 0 && f[l->fr_owner] == FRAME_OWNED_BY_CSTACK) {
			*entry_at = frame;
			*after = word_at(f, l->fr_previous);
			break;
		}
		code = word_at(f, l->fr_code);
		prev_instr = word_at(f, l->fr_prev_instr);
		entry = l->fr_is_entry >= 0 && f[l->fr_is_entry] != 0;
		c = code_at(py, code);
		if (first_frame && ni) {
			/* the instruction the sample caught: in this frame's code,
			 * or in the code the frame ran then (it has moved on) */
			const struct code_info *then = c && ni > c->lo && ni <= c->hi ? c : code_holding(py, ni - 1);
			if (then && check) {
				*check = then == c ? XP_PY_CHECKED : XP_PY_CORRECTED;
				c = then;
				code = c->addr;
				prev_instr = ni - 2; /* next_instr is one unit past it */
			}
		}
		first_frame = 0;
		if (c) {
			first = code + (uint64_t)l->co_code;
			/* a frame still being set up is not shown (as the
			 * interpreter's own frame list does not) */
			if (f[l->fr_owner] == FRAME_OWNED_BY_GENERATOR ||
			    (int64_t)(prev_instr - first) / 2 >= c->firsttraceable) {
				int64_t lasti = prev_instr >= first ? (int64_t)(prev_instr - first) / 2 : -1;
				uint64_t pc = xp_synthetic_pc(c->name, c->file, line_of(c, lasti));
				if (pc)
					pcs[n++] = pc;
			}
		}
		if (entry)
			break;
		frame = word_at(f, l->fr_previous);
	}
	return n;
}

/* 3.13: the frames of the loop activation whose stack frame is [lo, hi),
 * from *cursor (the innermost frame not shown yet) to the entry frame the
 * activation keeps in its stack frame; *cursor then moves past it.  A run
 * whose entry frame lies below lo is an activation's the stack does not
 * have (the thread has called on since it was taken): skipped.  One whose
 * entry frame lies at or above hi is an outer activation's: this one has
 * returned since, and keeps its native frame.  *moved when either. */
static size_t activation_frames_313(struct xp_py *py, uint64_t *cursor, uint64_t lo, uint64_t hi, uint64_t ni,
				    uint64_t *pcs, uint64_t *seen, size_t *nseen, int *check, int *moved)
{
	size_t steps, np, mark;
	uint64_t entry, after;
	int chk;

	for (steps = 0; *cursor && steps < XP_PY_MAX_FRAMES; steps++) {
		entry = 0;
		chk = 0;
		mark = *nseen;
		np = activation_frames(py, *cursor, pcs, XP_MAX_FRAMES, seen, nseen, ni, &chk, &entry, &after);
		if (!entry) {
			*cursor = 0; /* torn: no entry frame where the frames end */
			return 0;
		}
		if (entry < lo) {
			*moved = 1;
			*cursor = after;
			continue;
		}
		if (entry >= hi) {
			*moved = 1;
			*nseen = mark;
			return 0;
		}
		*cursor = after;
		if (check)
			*check = chk;
		return np;
	}
	return 0;
}

size_t xp_py_thread_stack(struct xp_py *py, const struct xp_py_thread *t, uint64_t *pc, size_t max)
{
	uint64_t *seen = malloc(XP_PY_MAX_FRAMES * sizeof(*seen)), cframe = t->cframe, frame, entry, after;
	size_t n = 0, nseen = 0, steps;

	if (!seen)
		return 0;
	if (py->l.cf_current_frame < 0) {
		/* 3.13: t->cframe is the innermost frame; every activation's
		 * frames lead through its entry frame to the next */
		for (frame = t->cframe, steps = 0; frame && n < max && steps < XP_PY_MAX_FRAMES; steps++) {
			entry = 0;
			n += activation_frames(py, frame, pc + n, max - n, seen, &nseen, 0, NULL, &entry, &after);
			frame = entry ? after : 0;
		}
		free(seen);
		return n;
	}
	for (steps = 0; plausible(cframe) && n < max && steps < XP_PY_MAX_FRAMES; steps++) {
		if (read_u64(py->live, cframe + py->l.cf_current_frame, &frame) < 0)
			break;
		n += activation_frames(py, frame, pc + n, max - n, seen, &nseen, 0, NULL, &entry, &after);
		if (read_u64(py->live, cframe + py->l.cf_previous, &cframe) < 0)
			break;
	}
	free(seen);
	return n;
}

int xp_py_merge_stack(struct xp_py *py, const struct xp_py_thread *t, struct xp_mem *stackmem,
		      struct xp_stack *st, const struct xp_frame_regs *fregs, struct xp_py_merge *m)
{
	const struct py_layout *l = &py->l;
	uint64_t *out_pc = malloc(XP_MAX_FRAMES * sizeof(uint64_t)), *seen = malloc(XP_PY_MAX_FRAMES * 8);
	uint64_t *pyf = malloc(XP_MAX_FRAMES * sizeof(uint64_t));
	unsigned char *out_call = malloc(XP_MAX_FRAMES);
	uint64_t *out_sp = malloc(XP_MAX_FRAMES * sizeof(uint64_t));
	uint64_t cframe = t ? t->cframe : 0, live_now = 0, copied = 0, entry, after;
	size_t i, n = 0, nseen = 0, steps = 0;
	int innermost = 1, err = 0;

	memset(m, 0, sizeof(*m));
	if (!out_pc || !out_call || !out_sp || !seen || !pyf) {
		err = -ENOMEM;
		goto out;
	}
	m->consistent = 1;
	for (i = 0; i < st->n; i++) {
		uint64_t lo = st->sp[i], hi = i + 1 < st->n && st->sp[i + 1] ? st->sp[i + 1] : UINT64_MAX;
		size_t np = 0, k;

		if (is_eval(py, st->pc[i], st->is_call[i]) && l->cf_current_frame < 0) {
			/* 3.13 */
			uint64_t ni = 0;
			int moved = 0;
			m->activations++;
			uint64_t fr = 0, cursor;
			if (innermost && fregs && loop_var_at(py, &py->ni, st, fregs, i, stackmem, &ni) < 0)
				ni = 0;
			/* the innermost frame as the registers had it, against
			 * the thread's current frame now (as 3.11's copy of its
			 * _PyCFrame is) */
			if (innermost && fregs && loop_var_at(py, &py->frame, st, fregs, i, stackmem, &fr) == 0 &&
			    plausible(fr) && fr != cframe) {
				size_t mark = nseen;
				cursor = fr;
				moved = 1;
				np = activation_frames_313(py, &cursor, lo, hi, ni, pyf, seen, &nseen, &m->innermost,
							   &moved);
				if (np > 0)
					cframe = cursor;
				else
					nseen = mark; /* returned since: what runs now */
			}
			if (np == 0)
				np = activation_frames_313(py, &cframe, lo, hi, ni, pyf, seen, &nseen,
							   innermost ? &m->innermost : NULL, &moved);
			if (innermost && moved)
				m->consistent = 0;
			innermost = 0;
		} else if (is_eval(py, st->pc[i], st->is_call[i])) {
			m->activations++;
			/* this activation's _PyCFrame lies in its own stack frame:
			 * the first of the chain (innermost first, so deeper
			 * frames, lower addresses, come first) at or above its sp */
			while (cframe && lo && cframe < lo && steps++ < XP_PY_MAX_FRAMES) {
				if (!plausible(cframe) || read_at(py, stackmem, cframe + l->cf_previous, &cframe, 8) < 0)
					cframe = 0;
			}
			if (cframe && lo && cframe >= lo && cframe < hi && plausible(cframe)) {
				uint64_t frame;
				if (read_at(py, stackmem, cframe + l->cf_current_frame, &frame, 8) == 0) {
					uint64_t ni = 0;
					if (innermost && fregs && loop_var_at(py, &py->ni, st, fregs, i, stackmem, &ni) < 0)
						ni = 0;
					if (innermost) {
						copied = frame;
						/* what the thread runs now, against what the copy says */
						if (read_u64(py->live, cframe + l->cf_current_frame, &live_now) < 0 ||
						    live_now != copied)
							m->consistent = 0;
					}
					np = activation_frames(py, frame, pyf, XP_MAX_FRAMES, seen, &nseen, ni,
							       &m->innermost, &entry, &after);
					/* the frame the copy names has returned since:
					 * what the activation runs now is the best left */
					if (np == 0 && innermost && live_now && live_now != frame)
						np = activation_frames(py, live_now, pyf, XP_MAX_FRAMES, seen, &nseen,
								       ni, &m->innermost, &entry, &after);
				}
				if (read_at(py, stackmem, cframe + l->cf_previous, &cframe, 8) < 0)
					cframe = 0;
			} else {
				m->consistent = 0;
			}
			innermost = 0;
		}
		if (np > 0) {
			m->replaced++;
			m->pyframes += np;
			for (k = 0; k < np && n < XP_MAX_FRAMES; k++, n++) {
				out_pc[n] = pyf[k];
				out_call[n] = 0;
				out_sp[n] = 0;
			}
			continue;
		}
		if (n < XP_MAX_FRAMES) {
			out_pc[n] = st->pc[i];
			out_call[n] = st->is_call[i];
			out_sp[n] = st->sp[i];
			n++;
		}
	}
	/* the registers vouch for the innermost frame the copy named, or
	 * say that it had moved on (its slot reused at the same address) */
	if (m->innermost)
		m->consistent = m->innermost == XP_PY_CHECKED;
	if (m->replaced < m->activations)
		m->consistent = 0;
	if (m->replaced) {
		if (n == XP_MAX_FRAMES && n > st->n)
			st->capped = 1;
		memcpy(st->pc, out_pc, n * sizeof(out_pc[0]));
		memcpy(st->is_call, out_call, n);
		memcpy(st->sp, out_sp, n * sizeof(out_sp[0]));
		st->n = n;
	}
out:
	free(out_pc);
	free(out_call);
	free(out_sp);
	free(seen);
	free(pyf);
	return err;
}
