/* The target's address space for libdw, and pc → frames.
 *
 * Modules are reported from the maps read during the stop.  ELF files are
 * opened through /proc/PID/map_files (a deleted or replaced binary, another
 * mount namespace) or /proc/PID/root; debug files come from libdw's standard
 * search (build-id under /usr/lib/debug, .gnu_debuglink, MiniDebugInfo),
 * extended with the target's own /usr/lib/debug.  Every pc is symbolized
 * once: threads of one pool share most of their pcs.
 */
#define _GNU_SOURCE
#include <dwarf.h>
#include <elfutils/libdw.h>
#include <elfutils/libdwfl.h>
#include <errno.h>
#include <fcntl.h>
#include <libelf.h>
#include <stdio.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "symbolize/symbolize.h"
#include "symbolize/gopclntab.h"
#include "symbolize/symbolize_internal.h"

#define VDSO_MAX (64 * 1024 * 1024) /* a larger "vdso" is not one */

/* One mapped ELF file. */
struct modinfo {
	struct xp_space *space;
	char *path;        /* as in maps, " (deleted)" stripped */
	uint64_t first_start, first_end; /* its first mapping, for map_files */
	uint64_t inode;    /* the file mapped, as maps gives it: what we open must be it */
	unsigned major, minor;
	Dwfl_Module *mod;
	int is_vdso;
	int loaded;        /* flags and build id computed */
	char build_id[2 * 64 + 1];
	int has_functions, has_lines;
	size_t first_mapping, nmappings; /* its entries in space->mappings */
	struct xp_gopclntab *gopcln;     /* a Go binary's own table */
	Dwarf_Addr gopcln_bias;
	uint64_t data_end; /* end of its last PT_LOAD at run time, 0 when unknown */
	/* .eh_frame_hdr's sorted table of function starts, NULL when none */
	const uint8_t *fde_table;
	size_t fde_count;
	uint64_t fde_hdr;  /* the section's link-time address: entries count from it */
	int fde_loaded;
};

struct mapping {
	struct xp_module pub;
	struct modinfo *mi;
};

struct symcache_entry {
	uint64_t key; /* pc << 1 | is_call */
	struct xp_sym sym;
	int used;
	int jit;          /* named (or not) by the perf map of generation jit_gen */
	unsigned jit_gen;
};

struct xp_space {
	pid_t pid;
	pid_t proc_pid; /* the /proc entry read: pid, or a live thread once the leader has exited */
	int flags;
	Dwfl *dwfl;
	Dwfl_Callbacks callbacks;
	char *debuginfo_path;
	struct xp_mem *mem;
	struct modinfo *mods;
	size_t nmods;
	struct mapping *mappings; /* executable mappings, sorted by start */
	size_t nmappings;
	void *vdso_image;
	struct symcache_entry *cache;
	size_t ncache, cache_used;
	struct stat exe;  /* the process's executable (/proc/PID/exe) at open; st_ino 0 when unknown */
	char *exe_path;   /* its path, as maps would name it, or NULL */
	struct xp_module *anon; /* anonymous executable mappings (JIT code), sorted */
	size_t nanon;
	struct xp_perfmap *jit; /* NULL until the first pc in JIT code */
	struct xp_map jitdump;  /* the jitdump the target maps (path NULL: none) */
	unsigned jit_seen;      /* its generation the modules' flags follow */
	int jit_entries;        /* it names something */
};

static void strip_deleted(char *path)
{
	size_t n = strlen(path), k = strlen(" (deleted)");

	if (n > k && strcmp(path + n - k, " (deleted)") == 0)
		path[n - k] = '\0';
}

/* ---- finding ELF files ------------------------------------------------ */

static int open_vdso(struct modinfo *mi, Elf **elfp)
{
	struct xp_space *s = mi->space;
	size_t len = mi->first_end - mi->first_start;
	Elf *elf;

	if (len > VDSO_MAX || s->vdso_image)
		return -1;
	s->vdso_image = malloc(len);
	if (!s->vdso_image || xp_mem_read_full(s->mem, mi->first_start, s->vdso_image, len) < 0)
		return -1;
	elf = elf_memory(s->vdso_image, len);
	if (!elf)
		return -1;
	*elfp = elf;
	return 0;
}

static int find_elf(Dwfl_Module *mod, void **userdata, const char *modname, Dwarf_Addr base,
		    char **file_name, Elf **elfp)
{
	struct modinfo *mi = *userdata;
	char path[4096];
	int fd;

	(void)mod;
	(void)modname;
	(void)base;
	*elfp = NULL;
	*file_name = NULL;
	if (!mi)
		return -1;
	if (mi->is_vdso) {
		if (open_vdso(mi, elfp) < 0)
			return -1;
		return -1; /* no fd: the Elf lives in memory */
	}
	/* map_files names the very file that is mapped, even when the path now
	 * names another or nothing; /proc/PID/root resolves the path in the
	 * target's mount namespace. */
	snprintf(path, sizeof(path), "/proc/%d/map_files/%lx-%lx", (int)mi->space->proc_pid,
		 (unsigned long)mi->first_start, (unsigned long)mi->first_end);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	snprintf(path, sizeof(path), "/proc/%d/root%s", (int)mi->space->proc_pid, mi->path);
	if (fd < 0)
		fd = xp_open_in_root(mi->space->proc_pid, mi->path);
	if (fd < 0 && (mi->space->flags & XP_SPACE_OWN_NAMESPACE)) {
		/* a launched command that has exited: its paths are ours */
		snprintf(path, sizeof(path), "%s", mi->path);
		fd = open(path, O_RDONLY | O_CLOEXEC);
	}
	/* the path may name another file now (renamed, replaced, a symlink
	 * planted by the target): only the file mapped is read */
	if (fd >= 0 && !xp_fd_is_file(fd, mi->major, mi->minor, mi->inode)) {
		close(fd);
		fd = -1;
	}
	if (fd < 0)
		return -1;
	*elfp = elf_begin(fd, ELF_C_READ_MMAP, NULL);
	if (!*elfp || elf_kind(*elfp) != ELF_K_ELF) {
		if (*elfp)
			elf_end(*elfp);
		*elfp = NULL;
		close(fd);
		return -1;
	}
	/* the name .gnu_debuglink searches are relative to */
	*file_name = strdup(path);
	return fd;
}

/* The directories a debug file is looked for in by build id, in order:
 * those of $XPROF_DEBUG_DIRS (absolute paths, ':' between them), then
 * /usr/lib/debug; the target's own /usr/lib/debug comes last, resolved
 * inside its root.  In the form libdw's debuginfo_path takes (":.debug:"
 * first: .gnu_debuglink beside the binary and in its .debug/). */
static char *debug_dirs(pid_t pid)
{
	const char *env = getenv("XPROF_DEBUG_DIRS");
	char *path = NULL, *dirs = strdup(env ? env : ""), *dir, *save = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&path, &len);

	if (!f || !dirs) {
		if (f)
			fclose(f);
		free(path);
		free(dirs);
		return NULL;
	}
	fputs(":.debug", f);
	for (dir = strtok_r(dirs, ":", &save); dir; dir = strtok_r(NULL, ":", &save))
		if (dir[0] == '/')
			fprintf(f, ":%s", dir);
	fprintf(f, ":/usr/lib/debug:/proc/%d/root/usr/lib/debug", (int)pid);
	free(dirs);
	if (fclose(f) != 0) {
		free(path);
		return NULL;
	}
	return path;
}

/* Separate debug info: first by build id in the debug directories (see
 * debug_dirs), served from the decompressed cache; when the cache cannot
 * help, libdw's standard search (build id, then .gnu_debuglink) over the
 * same directories exactly as it is.  The standard search must not run
 * first: it keeps its own handle on the file it finds and ignores the fd
 * we return. */
static int find_debuginfo(Dwfl_Module *mod, void **userdata, const char *modname, Dwarf_Addr base,
			  const char *file_name, const char *debuglink_file, GElf_Word debuglink_crc,
			  char **debuginfo_file_name)
{
	struct modinfo *mi = *userdata;
	const unsigned char *id;
	GElf_Addr vaddr;
	char hex[2 * 64 + 1], path[4200];
	int len, i;

	len = dwfl_module_build_id(mod, &id, &vaddr);
	if (len >= 2 && len <= 64 && mi) {
		const char *dirs = mi->space->debuginfo_path, *next;
		for (i = 0; i < len; i++)
			snprintf(hex + 2 * i, 3, "%02x", id[i]);
		/* looked for long after the open: the thread that stood for an
		 * exited leader may be gone too */
		mi->space->proc_pid = xp_live_thread(mi->space->pid);
		for (; *dirs; dirs = *next ? next + 1 : next) {
			size_t dlen;
			int rootlen = 0, rootpid;
			char *cached;
			int fd, cfd, in_root;
			next = strchrnul(dirs, ':');
			dlen = (size_t)(next - dirs);
			if (dirs[0] != '/' || dlen >= sizeof(path) - 64)
				continue;
			snprintf(path, sizeof(path), "%.*s/.build-id/%.2s/%s.debug", (int)dlen, dirs, hex, hex + 2);
			/* the target's own tree: resolved inside its root */
			/* the target's tree (/proc/PID/root/...), whichever thread
			 * stood for it when the list was made */
			in_root = sscanf(path, "/proc/%d/root%n", &rootpid, &rootlen) == 1 && rootlen > 0 &&
				  path[rootlen] == '/';
			fd = in_root ? xp_open_in_root(mi->space->proc_pid, path + rootlen)
				     : open(path, O_RDONLY | O_CLOEXEC);
			if (fd < 0)
				continue;
			cfd = xp_debugcache_open(fd, hex, &cached);
			close(fd);
			if (cfd >= 0) {
				*debuginfo_file_name = cached;
				return cfd;
			}
			break;
		}
	}
	/* .gnu_debuglink holds a file name; one with a '/' ("../../etc/x")
	 * would lead the search out of the debug directories */
	if (debuglink_file && strchr(debuglink_file, '/'))
		debuglink_file = NULL;
	return dwfl_standard_find_debuginfo(mod, userdata, modname, base, file_name, debuglink_file,
					    debuglink_crc, debuginfo_file_name);
}

/* ---- reporting modules ------------------------------------------------ */

static int is_exec(const struct xp_map *m)
{
	return m->perms[2] == 'x';
}

static int mapping_cmp(const void *a, const void *b)
{
	const struct mapping *x = a, *y = b;

	return x->pub.start < y->pub.start ? -1 : x->pub.start > y->pub.start;
}

static int report_modules(struct xp_space *s, const struct xp_maps *maps)
{
	size_t i, j, nexec = 0;

	for (i = 0; i < maps->n; i++)
		nexec += is_exec(&maps->v[i]);
	s->mods = calloc(maps->n ? maps->n : 1, sizeof(*s->mods));
	s->mappings = calloc(nexec ? nexec : 1, sizeof(*s->mappings));
	if (!s->mods || !s->mappings)
		return -ENOMEM;

	dwfl_report_begin(s->dwfl);
	for (i = 0; i < maps->n; i = j) {
		const struct xp_map *first = &maps->v[i];
		uint64_t end = first->end;
		int any_exec = 0, vdso = strcmp(first->path, "[vdso]") == 0;
		struct modinfo *mi;
		Dwfl_Module *mod;
		void **ud;

		/* one file: consecutive mappings of the same path and inode */
		for (j = i; j < maps->n && strcmp(maps->v[j].path, first->path) == 0 &&
			    maps->v[j].inode == first->inode;
		     j++) {
			any_exec |= is_exec(&maps->v[j]);
			end = maps->v[j].end;
		}
		if (!any_exec || (first->path[0] != '/' && !vdso))
			continue;
		mi = &s->mods[s->nmods];
		mi->space = s;
		mi->path = strdup(first->path);
		if (!mi->path)
			return -ENOMEM;
		strip_deleted(mi->path);
		mi->first_start = first->start;
		mi->first_end = first->end;
		mi->inode = first->inode;
		mi->major = first->major;
		mi->minor = first->minor;
		mi->is_vdso = vdso;
		/* the file's load base: its first mapping less that mapping's
		 * offset (a group may start at the text mapping, as PERF_RECORD_MMAP2
		 * reports only executable ones) */
		mod = dwfl_report_module(s->dwfl, first->path,
					 first->start >= first->offset ? first->start - first->offset : first->start, end);
		if (!mod)
			continue;
		s->nmods++;
		mi->mod = mod;
		dwfl_module_info(mod, &ud, NULL, NULL, NULL, NULL, NULL, NULL);
		*ud = mi;
		mi->first_mapping = s->nmappings;
		for (; i < j; i++) {
			const struct xp_map *m = &maps->v[i];
			struct mapping *mp;
			if (!is_exec(m))
				continue;
			mp = &s->mappings[s->nmappings++];
			mp->pub.start = m->start;
			mp->pub.end = m->end;
			mp->pub.offset = m->offset;
			mp->pub.path = mi->path;
			mp->pub.build_id = "";
			mp->mi = mi;
			mi->nmappings++;
		}
	}
	if (dwfl_report_end(s->dwfl, NULL, NULL) != 0)
		return -EINVAL;
	if (xp_space_set_anon_code(s, maps) < 0)
		return -ENOMEM;
	qsort(s->mappings, s->nmappings, sizeof(*s->mappings), mapping_cmp);
	/* open every file now, while /proc/PID/map_files still names it: a
	 * target that exits (or a launched command that ends) before we
	 * symbolize must not take its binaries with it */
	for (i = 0; i < s->nmods; i++) {
		Dwarf_Addr bias;
		dwfl_module_getelf(s->mods[i].mod, &bias);
	}
	return 0;
}

int xp_space_open(pid_t pid, const struct xp_maps *maps, struct xp_mem *mem, int flags,
		  struct xp_space **out)
{
	struct xp_space *s = calloc(1, sizeof(*s));
	char path[64], exe[4096];
	ssize_t n;
	int err;

	*out = NULL;
	if (!s)
		return -ENOMEM;
	s->pid = pid;
	s->proc_pid = xp_live_thread(pid);
	s->flags = flags;
	s->mem = mem;
	s->debuginfo_path = debug_dirs(s->proc_pid);
	if (!s->debuginfo_path) {
		free(s);
		return -ENOMEM;
	}
	/* which file is the program, while /proc/PID/exe still says */
	snprintf(path, sizeof(path), "/proc/%d/exe", (int)pid);
	if (stat(path, &s->exe) < 0)
		s->exe.st_ino = 0;
	n = readlink(path, exe, sizeof(exe) - 1);
	if (n > 0) {
		exe[n] = '\0';
		strip_deleted(exe);
		s->exe_path = strdup(exe);
	}
	elf_version(EV_CURRENT);
	s->callbacks.find_elf = find_elf;
	s->callbacks.find_debuginfo = find_debuginfo;
	s->callbacks.debuginfo_path = &s->debuginfo_path;
	s->dwfl = dwfl_begin(&s->callbacks);
	if (!s->dwfl) {
		xp_space_close(s);
		return -ENOMEM;
	}
	err = report_modules(s, maps);
	if (err < 0) {
		xp_space_close(s);
		return err;
	}
	*out = s;
	return 0;
}

static void free_sym(struct xp_sym *sym)
{
	size_t i;

	for (i = 0; i < sym->nframes; i++) {
		struct xp_frame *f = (struct xp_frame *)&sym->frames[i];
		if (f->system_name != f->function)
			free((char *)f->system_name);
		free((char *)f->function);
		free((char *)f->file);
	}
	free((void *)sym->frames);
}

void xp_space_close(struct xp_space *s)
{
	size_t i;

	if (!s)
		return;
	for (i = 0; i < s->ncache; i++)
		if (s->cache[i].used)
			free_sym(&s->cache[i].sym);
	free(s->cache);
	if (s->dwfl)
		dwfl_end(s->dwfl);
	for (i = 0; i < s->nmods; i++) {
		free(s->mods[i].path);
		xp_gopclntab_close(s->mods[i].gopcln);
	}
	free(s->mods);
	free(s->mappings);
	free(s->anon);
	free(s->jitdump.path);
	xp_perfmap_free(s->jit);
	free(s->vdso_image);
	free(s->debuginfo_path);
	free(s->exe_path);
	free(s);
}

Dwfl *xp_space_dwfl(struct xp_space *s)
{
	return s->dwfl;
}

pid_t xp_space_pid(const struct xp_space *s)
{
	return s->pid;
}

/* ---- modules for pprof -------------------------------------------------- */

static void load_modinfo(struct xp_space *s, struct modinfo *mi)
{
	const unsigned char *id;
	GElf_Addr vaddr;
	Dwarf_Addr bias;
	int len, i;
	size_t k;

	if (mi->loaded)
		return;
	mi->loaded = 1;
	len = dwfl_module_build_id(mi->mod, &id, &vaddr);
	for (i = 0; i < len && i < 64; i++)
		snprintf(mi->build_id + 2 * i, 3, "%02x", id[i]);
	mi->has_functions = dwfl_module_getsymtab(mi->mod) > 0;
	mi->has_lines = dwfl_module_getdwarf(mi->mod, &bias) != NULL;
	if (mi->has_lines)
		mi->has_functions = 1;
	/* a Go binary's own table: names and lines even when stripped, and
	 * lines where its DWARF gives none */
	mi->gopcln = xp_gopclntab_open(dwfl_module_getelf(mi->mod, &mi->gopcln_bias));
	if (mi->gopcln)
		mi->has_functions = mi->has_lines = 1;
	/* the vdso has no file for a viewer to read: its addresses stay */
	if (!dwfl_module_getelf(mi->mod, &bias) || mi->is_vdso)
		bias = 0;
	for (k = 0; k < s->nmappings; k++) {
		struct mapping *mp = &s->mappings[k];
		if (mp->mi != mi)
			continue;
		mp->pub.bias = bias <= mp->pub.start ? bias : 0;
		mp->pub.build_id = mi->build_id;
		mp->pub.has_functions = mi->has_functions;
		mp->pub.has_lines = mi->has_lines;
		mp->pub.has_inlines = mi->has_lines;
	}
}

static struct mapping *find_mapping(struct xp_space *s, uint64_t pc)
{
	size_t lo = 0, hi = s->nmappings;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		struct mapping *m = &s->mappings[mid];
		if (pc < m->pub.start)
			hi = mid;
		else if (pc >= m->pub.end)
			lo = mid + 1;
		else
			return m;
	}
	return NULL;
}

const struct xp_module *xp_space_module(struct xp_space *s, uint64_t pc)
{
	struct mapping *m = find_mapping(s, pc);

	if (!m)
		return NULL;
	load_modinfo(s, m->mi);
	return &m->pub;
}

/* The module of the process's executable: its file by device and inode,
 * else by path (an overlay file system may show another device in maps). */
const struct xp_module *xp_space_main_module(struct xp_space *s)
{
	size_t i, k;

	for (i = 0; i < s->nmods; i++) {
		struct modinfo *mi = &s->mods[i];
		int same_file = s->exe.st_ino && mi->inode == s->exe.st_ino &&
				mi->major == major(s->exe.st_dev) && mi->minor == minor(s->exe.st_dev);
		if (mi->is_vdso || !(same_file || (s->exe_path && strcmp(mi->path, s->exe_path) == 0)))
			continue;
		/* its first executable mapping (mappings are sorted by address) */
		for (k = 0; k < s->nmappings; k++) {
			if (s->mappings[k].mi == mi) {
				load_modinfo(s, mi);
				return &s->mappings[k].pub;
			}
		}
	}
	return NULL;
}

/* ---- names ---------------------------------------------------------- */

char *xp_demangle(const char *name);

/* The name a DIE goes by: its linkage name when it has one (C++, and the
 * internal aliases of glibc), else its plain name; through abstract origins. */
static const char *die_name(Dwarf_Die *die)
{
	Dwarf_Attribute attr;
	const char *name;

	name = dwarf_formstring(dwarf_attr_integrate(die, DW_AT_linkage_name, &attr));
	if (!name)
		name = dwarf_formstring(dwarf_attr_integrate(die, DW_AT_MIPS_linkage_name, &attr));
	if (!name)
		name = dwarf_diename(die);
	return name;
}

static int is_function_scope(Dwarf_Die *die)
{
	int tag = dwarf_tag(die);

	return tag == DW_TAG_subprogram || tag == DW_TAG_inlined_subroutine || tag == DW_TAG_entry_point;
}

static int set_names(struct xp_frame *f, const char *raw)
{
	char *d;

	if (!raw)
		raw = "??";
	d = xp_demangle(raw);
	f->function = d ? d : strdup(raw);
	if (!f->function)
		return -ENOMEM;
	if (d) {
		f->system_name = strdup(raw);
		if (!f->system_name)
			return -ENOMEM;
	} else {
		f->system_name = f->function;
	}
	return 0;
}

/* ---- source file names ------------------------------------------------- */

/* The name of a source file as gdb shows it: a name the line table holds
 * relative to its unit's build directory (`cc fixtures/x.c` records
 * "fixtures/x.c", DWARF 5 puts "fixtures" in a directory entry that libdw
 * does not join with the build directory) is joined to DW_AT_comp_dir and
 * cleaned of "." and ".." components, so `pprof -list` finds the file from
 * any directory.  A relative build directory (Debian's packages map theirs
 * to "./nptl" and the like) leaves the name as recorded.  malloc'd. */
static char *source_path(const char *comp_dir, const char *file)
{
	char *joined, *out, *w;
	const char *r;
	size_t n;

	if (!file)
		return NULL;
	if (file[0] == '/' || !comp_dir || comp_dir[0] != '/')
		return strdup(file);
	if (asprintf(&joined, "%s/%s", comp_dir, file) < 0)
		return NULL;
	out = malloc(strlen(joined) + 2);
	if (!out) {
		free(joined);
		return NULL;
	}
	/* lexical cleaning, as Go's path.Clean: out is always "/..." */
	w = out;
	for (r = joined; *r;) {
		while (*r == '/')
			r++;
		n = strcspn(r, "/");
		if (n == 0)
			break;
		if (n == 1 && r[0] == '.') {
			/* nothing */
		} else if (n == 2 && r[0] == '.' && r[1] == '.') {
			while (w > out && *--w != '/')
				;
		} else {
			*w++ = '/';
			memcpy(w, r, n);
			w += n;
		}
		r += n;
	}
	if (w == out)
		*w++ = '/';
	*w = '\0';
	free(joined);
	return out;
}

/* ---- pc → frames ------------------------------------------------------ */

struct frames_buf {
	struct xp_frame *v;
	size_t n, alloc;
};

static struct xp_frame *push_frame(struct frames_buf *b)
{
	if (b->n == b->alloc) {
		size_t alloc = b->alloc ? b->alloc * 2 : 4;
		struct xp_frame *v = realloc(b->v, alloc * sizeof(*v));
		if (!v)
			return NULL;
		b->v = v;
		b->alloc = alloc;
	}
	memset(&b->v[b->n], 0, sizeof(b->v[0]));
	return &b->v[b->n++];
}

#define SCOPES_MAX 64      /* function scopes around one pc: inline depth */
#define SCOPE_NESTING_MAX 256 /* DIE nesting walked */

/* DIEs that hold code-carrying DIEs without carrying addresses themselves
 * (C++ namespaces, Fortran modules, classes with member definitions). */
static int is_container(int tag)
{
	return tag == DW_TAG_namespace || tag == DW_TAG_module || tag == DW_TAG_class_type ||
	       tag == DW_TAG_structure_type || tag == DW_TAG_union_type;
}

/* The function scopes (subprograms and inline instances) around pc in
 * parent's subtree, outermost first, appended to chain[n..]; returns the
 * new count.  Our own walk of the unit's DIEs: libdw's dwarf_getscopes
 * looks for an inline instance's abstract origin in the unit of the pc,
 * and with LTO (DW_FORM_ref_addr) it is in another one, so it loses the
 * inlined function and gives its line to the caller. */
static int scopes_at(Dwarf_Die *parent, Dwarf_Addr pc, Dwarf_Die *chain, int n, int nesting)
{
	Dwarf_Die child;

	if (nesting > SCOPE_NESTING_MAX || dwarf_child(parent, &child) != 0)
		return n;
	do {
		int tag = dwarf_tag(&child), m;
		if (dwarf_haspc(&child, pc) > 0) {
			/* siblings' ranges do not overlap: this is the one */
			if (is_function_scope(&child) && n < SCOPES_MAX)
				chain[n++] = child;
			return scopes_at(&child, pc, chain, n, nesting + 1);
		}
		if (is_container(tag) && (m = scopes_at(&child, pc, chain, n, nesting + 1)) > n)
			return m;
	} while (dwarf_siblingof(&child, &child) == 0);
	return n;
}

/* Fills frames for one pc from DWARF: the chain of function scopes around
 * it, innermost first, each inlined one placed at its caller's call site
 * (DW_AT_call_file/line, in the line table of the unit holding the inline
 * instance, which is the pc's), up to the innermost physical function. */
static int frames_from_dwarf(Dwfl_Module *mod, Dwarf_Addr pc, const char *symname,
			     struct frames_buf *b)
{
	Dwarf_Addr bias = 0;
	Dwarf_Die *cudie = dwfl_module_addrdie(mod, pc, &bias);
	Dwarf_Die chain[SCOPES_MAX];
	Dwarf_Files *files = NULL;
	Dwfl_Line *line;
	Dwarf_Attribute cattr;
	const char *file = NULL, *comp_dir;
	int nchain, i, lineno = 0;

	if (!cudie)
		return 0;
	nchain = scopes_at(cudie, pc - bias, chain, 0, 0);
	if (nchain <= 0)
		return 0;
	line = dwfl_module_getsrc(mod, pc);
	if (line)
		file = dwfl_lineinfo(line, NULL, &lineno, NULL, NULL, NULL);
	dwarf_getsrcfiles(cudie, &files, NULL);
	comp_dir = dwarf_formstring(dwarf_attr(cudie, DW_AT_comp_dir, &cattr));
	for (i = nchain - 1; i >= 0; i--) {
		Dwarf_Die *scope = &chain[i];
		int inlined = dwarf_tag(scope) == DW_TAG_inlined_subroutine;
		const char *name = die_name(scope);
		Dwarf_Attribute attr;
		Dwarf_Word val;
		struct xp_frame *f;

		/* a physical function whose DIE has no name (some lambdas)
		 * still has its symbol; an inline instance without one is
		 * passed over, its call site given to its caller */
		if (!name && !inlined)
			name = symname;
		if (name) {
			f = push_frame(b);
			if (!f || set_names(f, name) < 0)
				return -ENOMEM;
			f->file = source_path(comp_dir, file);
			f->line = lineno;
			f->inlined = inlined;
		}
		if (!inlined)
			break;
		/* the caller's position is this inline instance's call site */
		file = NULL;
		lineno = 0;
		if (files && dwarf_formudata(dwarf_attr(scope, DW_AT_call_file, &attr), &val) == 0)
			file = dwarf_filesrc(files, val, NULL, NULL);
		if (dwarf_formudata(dwarf_attr(scope, DW_AT_call_line, &attr), &val) == 0)
			lineno = (int)val;
	}
	/* the outermost must be physical even if the chain ended in an inline */
	if (b->n > 0)
		b->v[b->n - 1].inlined = 0;
	return 0;
}

/* Fills frames for a pc of Go code from .gopclntab (file addresses):
 * the inline tree's chain at lookup, then the physical function. */
static int frames_from_go(const struct xp_gopclntab *t, uint64_t lookup, uint64_t pc, struct frames_buf *b)
{
	struct xp_gofunc gf;
	struct xp_goinline in;
	uint64_t at = lookup;
	const char *file;
	struct xp_frame *f;
	int line, depth;

	if (xp_gopclntab_func(t, lookup, &gf) < 0)
		return 0;
	for (depth = 0; depth < 100; depth++) {
		if (xp_gopclntab_inlined_at(t, &gf, at, &in) < 0)
			break;
		xp_gopclntab_fileline(t, &gf, at, &file, &line);
		f = push_frame(b);
		if (!f || set_names(f, in.name) < 0)
			return -ENOMEM;
		f->file = file ? strdup(file) : NULL;
		f->line = line;
		f->inlined = 1;
		at = gf.entry + (uint64_t)in.parent_pc;
	}
	xp_gopclntab_fileline(t, &gf, at, &file, &line);
	f = push_frame(b);
	if (!f || set_names(f, gf.name) < 0)
		return -ENOMEM;
	f->file = file ? strdup(file) : NULL;
	f->line = line;
	f->offset = pc - gf.entry;
	return 0;
}

/* ---- JIT code ----------------------------------------------------------- */

static int is_anon_code(const struct xp_map *m)
{
	return is_exec(m) && (m->path[0] == '\0' || strncmp(m->path, "[anon", 5) == 0 ||
			      strcmp(m->path, "//anon") == 0);
}

/* A jitdump a JIT mapped, so that perf sees it: ".../jit-PID.dump". */
static int is_jitdump(const struct xp_map *m)
{
	const char *base = strrchr(m->path, '/');
	size_t n;

	if (!base || strncmp(base + 1, "jit-", 4) != 0)
		return 0;
	base += 5;
	n = strspn(base, "0123456789");
	return n > 0 && strcmp(base + n, ".dump") == 0;
}

static void set_jitdump(struct xp_space *s, const struct xp_map *m)
{
	char *path = strdup(m->path);

	if (!path)
		return;
	free(s->jitdump.path);
	s->jitdump = *m;
	s->jitdump.path = path;
	if (s->jit)
		xp_perfmap_set_jitdump(s->jit, &s->jitdump);
}

int xp_space_set_anon_code(struct xp_space *s, const struct xp_maps *maps)
{
	struct xp_module *v;
	size_t i, n = 0;

	for (i = 0; i < maps->n; i++) {
		n += is_anon_code(&maps->v[i]);
		if (is_jitdump(&maps->v[i]))
			set_jitdump(s, &maps->v[i]);
	}
	v = calloc(n ? n : 1, sizeof(*v));
	if (!v)
		return -ENOMEM;
	for (i = 0, n = 0; i < maps->n; i++) {
		if (!is_anon_code(&maps->v[i]))
			continue;
		v[n].start = maps->v[i].start;
		v[n].end = maps->v[i].end;
		v[n].path = XP_JIT_PATH;
		v[n].build_id = "";
		v[n].has_functions = s->jit_entries;
		n++;
	}
	/* maps are sorted by address */
	free(s->anon);
	s->anon = v;
	s->nanon = n;
	return 0;
}

static struct xp_module *find_anon(struct xp_space *s, uint64_t pc)
{
	size_t lo = 0, hi = s->nanon;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (pc < s->anon[mid].start)
			hi = mid;
		else if (pc >= s->anon[mid].end)
			lo = mid + 1;
		else
			return &s->anon[mid];
	}
	return NULL;
}

int xp_space_code_kind(struct xp_space *s, uint64_t pc)
{
	return find_mapping(s, pc) ? 1 : find_anon(s, pc) ? 2 : 0;
}

int xp_space_read_code(struct xp_space *s, uint64_t addr, void *buf, size_t len)
{
	if (s->jit && xp_perfmap_code(s->jit, addr, buf, len) == 0)
		return 0;
	return s->mem ? xp_mem_read_full(s->mem, addr, buf, len) : -EIO;
}

/* The perf map, read once when first needed and again (rate-limited)
 * when a pc in JIT code finds no name: the file grows as code is made. */
static struct xp_perfmap *jit_names(struct xp_space *s, int missed)
{
	size_t i;

	if (!s->jit) {
		if (!(s->jit = xp_perfmap_new(s->proc_pid)))
			return NULL;
		if (s->jitdump.path)
			xp_perfmap_set_jitdump(s->jit, &s->jitdump);
		xp_perfmap_refresh(s->jit, 1);
	} else if (missed) {
		xp_perfmap_refresh(s->jit, 0);
	}
	if (xp_perfmap_gen(s->jit) != s->jit_seen) {
		struct xp_jit_stats st;
		s->jit_seen = xp_perfmap_gen(s->jit);
		xp_perfmap_stats(s->jit, &st);
		s->jit_entries = st.entries > 0;
		for (i = 0; i < s->nanon; i++)
			s->anon[i].has_functions = s->jit_entries;
	}
	return s->jit;
}

int xp_space_jit_func(struct xp_space *s, uint64_t pc, uint64_t *start, uint64_t *end)
{
	struct xp_perfmap *jit = jit_names(s, 0);

	if (jit && xp_perfmap_lookup(jit, pc, start, end))
		return 0;
	if ((jit = jit_names(s, 1)) != NULL && xp_perfmap_lookup(jit, pc, start, end))
		return 0;
	return -ENOENT;
}

void xp_space_jit_stats(struct xp_space *s, struct xp_jit_stats *st)
{
	memset(st, 0, sizeof(*st));
	if (s->jit)
		xp_perfmap_stats(s->jit, st);
}

/* pc in JIT code (or in no mapping): its name from the perf map. */
static int symbolize_jit(struct xp_space *s, uint64_t pc, int is_call, struct xp_sym *sym, struct frames_buf *b)
{
	uint64_t lookup = pc - (is_call ? 1 : 0), start, end;
	struct xp_module *m = find_anon(s, lookup);
	struct xp_perfmap *jit;
	const char *name;
	struct xp_frame *f;

	if (m)
		sym->module = m;
	if (!(jit = jit_names(s, 0)))
		return 0;
	name = xp_perfmap_lookup(jit, lookup, &start, &end);
	if (!name && m && (jit = jit_names(s, 1)) != NULL)
		name = xp_perfmap_lookup(jit, lookup, &start, &end);
	if (!name)
		return 0;
	if (!(f = push_frame(b)) || set_names(f, name) < 0)
		return -ENOMEM;
	f->offset = pc - start;
	return 0;
}

/* .eh_frame_hdr (version 1) as GNU ld writes it: after 4 encoding bytes,
 * eh_frame_ptr and fde_count, a table sorted by function start of
 * (start, FDE) pairs, each a 4-byte signed offset from the section
 * (DW_EH_PE_datarel | DW_EH_PE_sdata4).  Other encodings: no table. */
#define EH_PE_UDATA4 0x03
#define EH_PE_SDATA4 0x0b
#define EH_PE_DATAREL_SDATA4 0x3b
#define FDE_TABLE_MAX (16u << 20) /* entries; a larger table is not a real one */

static void load_fde_table(struct modinfo *mi)
{
	GElf_Addr bias;
	Elf *elf;
	Elf_Scn *scn = NULL;
	size_t shstrndx;

	mi->fde_loaded = 1;
	if (!(elf = dwfl_module_getelf(mi->mod, &bias)) || elf_getshdrstrndx(elf, &shstrndx) < 0)
		return;
	while ((scn = elf_nextscn(elf, scn)) != NULL) {
		GElf_Shdr sh;
		Elf_Data *d;
		const uint8_t *p;
		const char *name;
		uint32_t count;

		if (!gelf_getshdr(scn, &sh) || sh.sh_type != SHT_PROGBITS ||
		    !(name = elf_strptr(elf, shstrndx, sh.sh_name)) || strcmp(name, ".eh_frame_hdr") != 0)
			continue;
		d = elf_getdata(scn, NULL);
		if (!d || !d->d_buf || d->d_size < 12)
			return;
		p = d->d_buf;
		/* eh_frame_ptr: a 4-byte signed value, however relative */
		if (p[0] != 1 || (p[1] & 0x0f) != EH_PE_SDATA4 || p[2] != EH_PE_UDATA4 || p[3] != EH_PE_DATAREL_SDATA4)
			return;
		memcpy(&count, p + 8, 4);
		if (count > FDE_TABLE_MAX || count > (d->d_size - 12) / 8)
			return;
		mi->fde_table = p + 12;
		mi->fde_count = count;
		mi->fde_hdr = sh.sh_addr;
		return;
	}
}

/* The greatest function start at or below addr (link-time), 0 or -1. */
static int fde_start(struct modinfo *mi, uint64_t addr, uint64_t *start)
{
	size_t lo = 0, hi;
	int32_t rel;

	if (!mi->fde_loaded)
		load_fde_table(mi);
	hi = mi->fde_count;
	if (!hi)
		return -1;
	while (hi - lo > 1) {
		size_t mid = lo + (hi - lo) / 2;
		memcpy(&rel, mi->fde_table + 8 * mid, 4);
		if (mi->fde_hdr + (int64_t)rel <= addr)
			lo = mid;
		else
			hi = mid;
	}
	memcpy(&rel, mi->fde_table + 8 * lo, 4);
	*start = mi->fde_hdr + (int64_t)rel;
	return *start <= addr ? 0 : -1;
}

/* A frame named by a string made for it (malloc'd, taken over, freed on
 * failure), offset bytes into its function. */
static int push_made_name(struct frames_buf *b, char *name, uint64_t offset)
{
	struct xp_frame *f = push_frame(b);

	if (!f) {
		free(name);
		return -ENOMEM;
	}
	f->function = f->system_name = name;
	f->offset = offset;
	return 0;
}

/* A pc that no symbol covers (a static function of a stripped binary) is
 * named after the start of the function whose unwind entry (FDE) covers
 * it, as a link-time address: "[nginx+0x54130]" (objdump --start-address
 * finds it; "[vdso]+0x780" in the vdso).  A profile then tells such
 * functions apart instead of merging them all into one "[nginx]". */
static int frame_from_cfi(const struct mapping *mp, Dwfl_Module *mod, Dwarf_Addr lookup, uint64_t pc,
			  struct frames_buf *b)
{
	Dwarf_Addr bias, row_start, row_end;
	Dwarf_CFI *cfi = dwfl_module_eh_cfi(mod, &bias);
	Dwarf_Frame *frame;
	const char *path = mp->pub.path, *base = strrchr(path, '/');
	uint64_t start;
	char *name;
	int ra;

	/* an FDE covers pc: it is in a function, not between two */
	if (!cfi || dwarf_cfi_addrframe(cfi, lookup - bias, &frame) != 0)
		return 0;
	ra = dwarf_frame_info(frame, &row_start, &row_end, NULL);
	free(frame);
	if (ra < 0 || fde_start(mp->mi, lookup - bias, &start) < 0 || start > row_start)
		return 0;
	if ((path[0] == '[' ? asprintf(&name, "%s+0x%" PRIx64, path, start)
			    : asprintf(&name, "[%s+0x%" PRIx64 "]", base ? base + 1 : path, start)) < 0)
		return -ENOMEM;
	return push_made_name(b, name, pc - (start + bias));
}

/* A pc in a PLT stub, which has no symbol: "realloc@plt" (plt.c). */
static int frame_from_plt(Dwfl_Module *mod, Dwarf_Addr lookup, uint64_t pc, struct frames_buf *b)
{
	GElf_Addr bias;
	Elf *elf = dwfl_module_getelf(mod, &bias);
	uint64_t entry;
	char *name;
	int rc = elf ? xp_plt_name(elf, lookup - bias, &name, &entry) : 0;

	return rc <= 0 ? rc : push_made_name(b, name, pc - (entry + bias));
}

static int symbolize_pc(struct xp_space *s, uint64_t pc, int is_call, struct xp_sym *sym)
{
	Dwarf_Addr lookup = pc - (is_call ? 1 : 0);
	struct mapping *mp = find_mapping(s, lookup);
	struct frames_buf b = { 0 };
	GElf_Off off = 0;
	GElf_Sym esym;
	const char *symname = NULL;
	Dwfl_Module *mod;
	int err = 0;

	sym->pc = pc;
	sym->module = NULL;
	sym->frames = NULL;
	sym->nframes = 0;
	if (!mp) {
		err = symbolize_jit(s, pc, is_call, sym, &b);
		sym->frames = b.v;
		sym->nframes = b.n;
		return err;
	}
	load_modinfo(s, mp->mi);
	sym->module = &mp->pub;
	mod = mp->mi->mod;
	symname = dwfl_module_addrinfo(mod, lookup, &off, &esym, NULL, NULL, NULL);
	/* Go code: the runtime's own table names functions as Go does and
	 * has the inline tree; Go's DWARF gives libdw no lines */
	if (mp->mi->gopcln)
		err = frames_from_go(mp->mi->gopcln, lookup - mp->mi->gopcln_bias, pc - mp->mi->gopcln_bias, &b);
	if (err == 0 && b.n > 0)
		symname = NULL; /* the offset is the table's */
	else if (err == 0)
		err = frames_from_dwarf(mod, lookup, symname, &b);
	if (err == 0 && b.n == 0 && symname) {
		struct xp_frame *f = push_frame(&b);
		Dwfl_Line *line = dwfl_module_getsrc(mod, lookup);
		int lineno = 0;
		const char *file = line ? dwfl_lineinfo(line, NULL, &lineno, NULL, NULL, NULL) : NULL;
		if (!f || set_names(f, symname) < 0) {
			err = -ENOMEM;
		} else {
			f->file = source_path(line ? dwfl_line_comp_dir(line) : NULL, file);
			f->line = lineno;
		}
	}
	if (b.n > 0 && symname)
		b.v[b.n - 1].offset = off + (is_call ? 1 : 0);
	if (err == 0 && b.n == 0 && !symname)
		err = frame_from_plt(mod, lookup, pc, &b);
	if (err == 0 && b.n == 0 && !symname)
		err = frame_from_cfi(mp, mod, lookup, pc, &b);
	sym->frames = b.v;
	sym->nframes = b.n;
	return err;
}

static uint64_t hash64(uint64_t x)
{
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdULL;
	x ^= x >> 33;
	return x;
}

static int cache_grow(struct xp_space *s)
{
	size_t n = s->ncache ? s->ncache * 2 : 1024, i;
	struct symcache_entry *c = calloc(n, sizeof(*c));

	if (!c)
		return -ENOMEM;
	for (i = 0; i < s->ncache; i++) {
		size_t h;
		if (!s->cache[i].used)
			continue;
		for (h = hash64(s->cache[i].key) & (n - 1); c[h].used; h = (h + 1) & (n - 1))
			;
		c[h] = s->cache[i];
	}
	free(s->cache);
	s->cache = c;
	s->ncache = n;
	return 0;
}

const struct xp_sym *xp_symbolize(struct xp_space *s, uint64_t pc, int is_call)
{
	uint64_t key = pc << 1 | (is_call ? 1 : 0);
	struct symcache_entry *e;
	size_t h;

	if (xp_pc_is_synthetic(pc))
		return xp_synthetic_sym(pc);
	if ((s->cache_used + 1) * 2 > s->ncache && cache_grow(s) < 0)
		return NULL;
	for (h = hash64(key) & (s->ncache - 1); s->cache[h].used; h = (h + 1) & (s->ncache - 1)) {
		e = &s->cache[h];
		if (e->key != key)
			continue;
		/* JIT code named by an older read of the perf map: again */
		if (!e->jit || !s->jit || e->jit_gen == xp_perfmap_gen(s->jit))
			return &e->sym;
		free_sym(&e->sym);
		if (symbolize_pc(s, pc, is_call, &e->sym) < 0) {
			memset(&e->sym, 0, sizeof(e->sym));
			e->sym.pc = pc;
		}
		e->jit_gen = xp_perfmap_gen(s->jit);
		return &e->sym;
	}
	e = &s->cache[h];
	if (symbolize_pc(s, pc, is_call, &e->sym) < 0) {
		free_sym(&e->sym);
		return NULL;
	}
	e->key = key;
	e->used = 1;
	e->jit = s->jit && !find_mapping(s, pc - (is_call ? 1 : 0));
	e->jit_gen = s->jit ? xp_perfmap_gen(s->jit) : 0;
	s->cache_used++;
	return &e->sym;
}

/* ---- data symbols -------------------------------------------------------- */

int xp_space_lookup(struct xp_space *s, const char *file, const char *name, uint64_t *value,
		    int *is_tls, uint64_t *base)
{
	size_t i, flen = strlen(file);

	for (i = 0; i < s->nmods; i++) {
		struct modinfo *mi = &s->mods[i];
		const char *slash = strrchr(mi->path, '/');
		const char *bn = slash ? slash + 1 : mi->path;
		Dwarf_Addr low;
		int n, k;

		if (strncmp(bn, file, flen) != 0)
			continue;
		n = dwfl_module_getsymtab(mi->mod);
		for (k = 1; k < n; k++) {
			GElf_Sym sym;
			GElf_Addr addr;
			GElf_Word shndx;
			Elf *elf;
			Dwarf_Addr bias;
			const char *nm = dwfl_module_getsym_info(mi->mod, k, &sym, &addr, &shndx, &elf, &bias);
			if (!nm || strcmp(nm, name) != 0)
				continue;
			*is_tls = GELF_ST_TYPE(sym.st_info) == STT_TLS;
			*value = *is_tls ? sym.st_value : addr;
			dwfl_module_info(mi->mod, NULL, &low, NULL, NULL, NULL, NULL, NULL);
			*base = low;
			return 0;
		}
	}
	return -ENOENT;
}

const char *xp_space_data_symbol(struct xp_space *s, uint64_t addr, uint64_t *offset)
{
	Dwfl_Module *mod = dwfl_addrmodule(s->dwfl, addr);
	GElf_Off off = 0;
	GElf_Sym sym;
	const char *name;

	if (!mod)
		return NULL;
	name = dwfl_module_addrinfo(mod, addr, &off, &sym, NULL, NULL, NULL);
	if (name)
		*offset = off;
	return name;
}

/* The end of a module's memory image (its .bss included) from its program
 * headers, computed once. */
static uint64_t image_end(struct modinfo *mi, Elf **elfp, Dwarf_Addr *bias)
{
	Elf *elf = dwfl_module_getelf(mi->mod, bias);
	size_t i, n;

	*elfp = elf;
	if (!elf || mi->data_end || elf_getphdrnum(elf, &n) != 0)
		return mi->data_end;
	for (i = 0; i < n; i++) {
		GElf_Phdr ph;
		if (gelf_getphdr(elf, (int)i, &ph) && ph.p_type == PT_LOAD &&
		    ph.p_vaddr + ph.p_memsz + *bias > mi->data_end)
			mi->data_end = ph.p_vaddr + ph.p_memsz + *bias;
	}
	return mi->data_end;
}

int xp_space_data_section(struct xp_space *s, uint64_t addr, const char **path, const char **section,
			  uint64_t *offset)
{
	size_t i, shstrndx;

	for (i = 0; i < s->nmods; i++) {
		struct modinfo *mi = &s->mods[i];
		Elf_Scn *scn = NULL;
		Dwarf_Addr low, bias;
		Elf *elf;

		dwfl_module_info(mi->mod, NULL, &low, NULL, NULL, NULL, NULL, NULL);
		if (addr < low || addr >= image_end(mi, &elf, &bias) || elf_getshdrstrndx(elf, &shstrndx) != 0)
			continue;
		while ((scn = elf_nextscn(elf, scn)) != NULL) {
			GElf_Shdr sh;
			const char *name;
			/* .tbss takes no room: its addresses are the next section's */
			if (!gelf_getshdr(scn, &sh) || !(sh.sh_flags & SHF_ALLOC) || (sh.sh_flags & SHF_TLS) ||
			    addr - bias < sh.sh_addr || addr - bias - sh.sh_addr >= sh.sh_size)
				continue;
			name = elf_strptr(elf, shstrndx, sh.sh_name);
			if (!name)
				continue;
			*path = mi->path;
			*section = name;
			*offset = addr - bias - sh.sh_addr;
			return 0;
		}
	}
	return -ENOENT;
}

/* ---- Go ------------------------------------------------------------------ */

const struct xp_gopclntab *xp_space_gopclntab(struct xp_space *s, uint64_t pc, uint64_t *bias)
{
	struct mapping *m = find_mapping(s, pc);

	if (!m)
		return NULL;
	load_modinfo(s, m->mi);
	*bias = m->mi->gopcln_bias;
	return m->mi->gopcln;
}

const struct xp_gopclntab *xp_space_go(struct xp_space *s, uint64_t *bias, Dwfl_Module **mod)
{
	size_t i;

	for (i = 0; i < s->nmods; i++) {
		struct modinfo *mi = &s->mods[i];
		if (mi->is_vdso)
			continue;
		load_modinfo(s, mi);
		if (mi->gopcln) {
			*bias = mi->gopcln_bias;
			*mod = mi->mod;
			return mi->gopcln;
		}
	}
	return NULL;
}
