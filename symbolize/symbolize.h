/* symbolize/ — address → module → function, file:line and inline chain.
 *
 * An xp_space is a target's address space as libdw sees it: one module per
 * mapped ELF file (opened through /proc/PID/map_files or /proc/PID/root, so
 * containers and deleted binaries work), the vdso read from memory, separate
 * debug files found by build-id and .gnu_debuglink, MiniDebugInfo.  The
 * unwinder (unwind/) walks stacks over the same modules.
 */
#ifndef XPROF_SYMBOLIZE_SYMBOLIZE_H
#define XPROF_SYMBOLIZE_SYMBOLIZE_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include "attach/attach.h"

struct xp_space;
typedef struct Dwfl Dwfl;

/* One executable mapping of a module, as a pprof Mapping wants it. */
struct xp_module {
	uint64_t start, end, offset;
	/* run-time address - bias = the file's own (link-time) address, as
	 * objdump and nm show it: the load bias of a PIE or a library, 0 for
	 * a fixed-address executable and for the vdso */
	uint64_t bias;
	const char *path;      /* as in /proc/PID/maps, " (deleted)" stripped */
	const char *build_id;  /* lowercase hex, "" when none */
	int has_functions, has_lines, has_inlines;
};

/* One frame of a PC's inline chain: innermost first, the last one physical. */
struct xp_frame {
	const char *function;     /* demangled; "??" when unknown */
	const char *system_name;  /* as in the symbol table (mangled), or function */
	const char *file;         /* NULL when no line info */
	int line;
	uint64_t offset;          /* pc - start of the physical function; physical frame only */
	int inlined;              /* 1 for every frame but the last */
};

struct xp_sym {
	uint64_t pc;               /* as given (a return address for callers) */
	const struct xp_module *module; /* NULL when the pc is in no module */
	const struct xp_frame *frames;
	size_t nframes;
};

/* The target shares xprof's mount namespace (a command xprof launched): once
 * /proc/PID is gone, its files may be opened by their paths. */
#define XP_SPACE_OWN_NAMESPACE 1

/* Reports a module for every file-backed executable mapping of maps and
 * opens its file.  mem reads the vdso.  -errno on failure. */
int xp_space_open(pid_t pid, const struct xp_maps *maps, struct xp_mem *mem, int flags,
		  struct xp_space **out);
void xp_space_close(struct xp_space *s);
Dwfl *xp_space_dwfl(struct xp_space *s);
pid_t xp_space_pid(const struct xp_space *s);

/* Symbolizes one pc; is_call: pc is a return address (look up pc - 1).
 * Results are cached for the life of the space; never fails (unknown
 * frames get "??"), but may return NULL on allocation failure. */
const struct xp_sym *xp_symbolize(struct xp_space *s, uint64_t pc, int is_call);

/* Frames that are no machine code (a Python function with its file and
 * line) as pseudo pcs: xp_symbolize gives them back as one frame with no
 * module.  One registry for the whole xprof process, so pcs outlive any
 * space.  0 when the registry is full (2^20 frames) or out of memory. */
uint64_t xp_synthetic_pc(const char *function, const char *file, int line);
int xp_pc_is_synthetic(uint64_t pc);
const struct xp_sym *xp_synthetic_sym(uint64_t pc);

/* The symbol NAME of the module whose file name starts with FILE ("libc.so."):
 * its run-time address, or for a TLS symbol its offset in the module's TLS
 * block (*is_tls set); *base is the module's load base.  0 or -ENOENT. */
int xp_space_lookup(struct xp_space *s, const char *file, const char *name, uint64_t *value,
		    int *is_tls, uint64_t *base);

/* The symbol (raw, as in the symbol table) covering a data address, such as
 * a global variable or a vtable, with addr's offset into it; or NULL. */
const char *xp_space_data_symbol(struct xp_space *s, uint64_t addr, uint64_t *offset);

/* The allocated section of a mapped ELF file that holds a data address
 * (.data, .bss, also past the file's last mapping, where .bss goes on in
 * anonymous memory): the file's path as mapped, the section's name and
 * addr's offset into it.  For globals no symbol names.  0 or -ENOENT. */
int xp_space_data_section(struct xp_space *s, uint64_t addr, const char **path, const char **section,
			  uint64_t *offset);

/* The first executable mapping of the process's own executable (as
 * /proc/PID/exe named it when the space was opened), or NULL when none of
 * the modules is it. */
const struct xp_module *xp_space_main_module(struct xp_space *s);

/* The module mapping that holds pc, or NULL. */
const struct xp_module *xp_space_module(struct xp_space *s, uint64_t pc);

/* Go binaries (see symbolize/gopclntab.h).  The .gopclntab of the module
 * holding pc, with the module's load bias (file address = pc - bias); NULL
 * when that module is not Go. */
struct xp_gopclntab;
typedef struct Dwfl_Module Dwfl_Module;
const struct xp_gopclntab *xp_space_gopclntab(struct xp_space *s, uint64_t pc, uint64_t *bias);
/* The first mapped Go binary: its table, load bias and libdw module (for
 * its DWARF and symbols); NULL when the process maps none. */
const struct xp_gopclntab *xp_space_go(struct xp_space *s, uint64_t *bias, Dwfl_Module **mod);

/* JIT code: anonymous executable memory, named by the target's
 * /tmp/perf-PID.map (read inside its mount namespace, with the pid it has
 * there) and by a jitdump it maps (jit-PID.dump).  Such code is a module of
 * its own, path XP_JIT_PATH. */
#define XP_JIT_PATH "[jit]"
struct xp_jit_stats {
	char path[64];      /* the map's path in the target's root */
	int found;          /* it exists (and was accepted) */
	int refused;        /* it exists but is not a regular file of the target's user or root */
	int cut;            /* larger than the cap: the rest was not read */
	int jitdump;        /* a jitdump the target maps was read too */
	size_t entries;     /* functions named */
	size_t skipped;     /* lines that did not parse */
	size_t dropped;     /* entries past the cap */
	uint64_t bytes;     /* read so far */
	uint64_t checks;    /* times the file was looked at */
};
/* Where pc is code: 1 in a module, 2 in anonymous executable memory, 0 in
 * no executable mapping known. */
int xp_space_code_kind(struct xp_space *s, uint64_t pc);
/* Replaces the anonymous executable mappings the space knows by those of
 * maps (code a JIT mapped after the space was opened). */
int xp_space_set_anon_code(struct xp_space *s, const struct xp_maps *maps);
/* The JIT function holding pc, as the perf map or jitdump gives it: its
 * start and end.  0, or -ENOENT. */
int xp_space_jit_func(struct xp_space *s, uint64_t pc, uint64_t *start, uint64_t *end);
/* Reads code bytes: JIT code as its jitdump recorded it, else through the
 * space's memory reader.  0 or -errno. */
int xp_space_read_code(struct xp_space *s, uint64_t addr, void *buf, size_t len);
/* What was read of the perf map so far (zeros before the first JIT pc). */
void xp_space_jit_stats(struct xp_space *s, struct xp_jit_stats *st);

/* Kernel symbols from /proc/kallsyms, for kernel frames of CPU samples. */
struct xp_kallsyms;
/* NULL when the kernel hides its addresses (kptr_restrict) or on failure. */
struct xp_kallsyms *xp_kallsyms_load(void);
/* The function holding addr and addr's offset into it, or NULL. */
const char *xp_kallsyms_lookup(const struct xp_kallsyms *k, uint64_t addr, uint64_t *offset);
void xp_kallsyms_free(struct xp_kallsyms *k);

/* Demangles C++ and Rust names; returns malloc'd text or NULL when name is
 * not mangled. */
char *xp_demangle(const char *name);

/* Strings from a target (comm, thread names, paths, symbol names, Go
 * strings) made safe for a terminal, a message or a text dump: printable
 * ASCII and UTF-8 text stay as they are; a backslash is doubled; \n, \t, \r
 * are written so; every other control byte (ESC, DEL, the C1 controls),
 * bidirectional overrides and bytes that are not UTF-8 become \xHH.
 * xp_escape writes into buf (cut with "..." when it does not fit) and
 * returns it; xp_fputs_escaped writes to a stream (EOF on error); xp_esc
 * is for message arguments: the result lives in one of 8 per-thread buffers
 * of 4 KiB used in turn, so up to 8 may appear in one call. */
char *xp_escape(const char *s, char *buf, size_t len);
int xp_fputs_escaped(const char *s, FILE *f);
const char *xp_esc(const char *s);

#endif
