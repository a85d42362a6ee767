/* Fuzzes what a target's ELF file reaches in symbolize/ and unwind/: the
 * input is the file, mapped (in a synthetic maps) the way its PT_LOAD
 * headers ask, named libc.so.6 so the heap walker's symbol lookups find it.
 * Then: pcs spread over its text symbolized (as a pc and as a return
 * address), its module, data symbols, the lookups the heap walker does, and
 * a stack unwound through its CFI from synthetic registers and stack words.
 * Bit 0 of e_ident[15] (padding, ignored by libelf) maps it as the vdso
 * instead, read from memory (elf_memory) rather than from the file.
 *
 * The file lives in a memfd, reached through a symlink named libc.so.6 in
 * a directory made under $TMPDIR (a magic link, which only the
 * own-namespace fallback follows); the debug-info cache is off.
 */
#define _GNU_SOURCE
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "symbolize/symbolize.h"
#include "unwind/unwind.h"

#include "tests/fuzz/fuzz.h"

#define DYN_BASE 0x7f0000000000ULL   /* where a position-independent file is mapped */
#define VDSO_ADDR 0x7ffff7fc0000ULL
#define STACK_ADDR 0x7ffffffde000ULL
#define STACK_LEN 2048
#define MAX_MAPS 16
#define PCS_PER_MAPPING 24
#define PAGE 4096ULL

static char dir[4096], link_path[4200];
static int memfd = -1;
static uint8_t *vdso_buf;
static size_t vdso_cap;
static volatile uint64_t sink;
static int verbose; /* XPROF_FUZZ_VERBOSE set: what was found, on stderr */

/* Leaks inside libdw on malformed DWARF are elfutils' (dwarf_getscopes
 * loses its scopes array when an inlined instance's abstract origin does
 * not resolve); our own leaks still show: their stacks start in our code. */
const char *__lsan_default_suppressions(void);
const char *__lsan_default_suppressions(void)
{
	return "leak:libdw.so.1\n";
}

const char *__lsan_default_options(void);
const char *__lsan_default_options(void)
{
	return "print_suppressions=0";
}

static void cleanup(void)
{
	unlink(link_path);
	rmdir(dir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	const char *tmp = getenv("TMPDIR");
	char target[64];

	(void)argc;
	(void)argv;
	verbose = getenv("XPROF_FUZZ_VERBOSE") != NULL;
	setenv("XPROF_CACHE_DIR", "off", 1);
	unsetenv("DEBUGINFOD_URLS");
	snprintf(dir, sizeof(dir), "%s/xprof-fuzz-symbolize.XXXXXX", tmp && *tmp ? tmp : "/tmp");
	memfd = memfd_create("fuzz-elf", MFD_CLOEXEC);
	if (memfd < 0 || !mkdtemp(dir)) {
		perror("fuzz_symbolize: memfd or temporary directory");
		exit(1);
	}
	snprintf(link_path, sizeof(link_path), "%s/libc.so.6", dir);
	snprintf(target, sizeof(target), "/proc/%d/fd/%d", (int)getpid(), memfd);
	if (symlink(target, link_path) < 0) {
		perror(link_path);
		exit(1);
	}
	atexit(cleanup);
	return 0;
}

static int map_cmp(const void *a, const void *b)
{
	const struct xp_map *x = a, *y = b;

	return x->start < y->start ? -1 : x->start > y->start;
}

/* The file's mappings as the loader would make them, from its PT_LOAD
 * headers; one text mapping of the whole file when it has none usable. */
static size_t file_maps(const uint8_t *data, size_t size, struct xp_map *v)
{
	const Elf64_Ehdr *eh = (const Elf64_Ehdr *)data;
	struct stat st;
	size_t n = 0, i;
	uint64_t base;

	if (size >= sizeof(*eh) && memcmp(data, ELFMAG, SELFMAG) == 0 && data[EI_CLASS] == ELFCLASS64 &&
	    eh->e_phentsize == sizeof(Elf64_Phdr) && eh->e_phoff < size) {
		base = eh->e_type == ET_EXEC ? 0 : DYN_BASE;
		for (i = 0; i < eh->e_phnum && n < MAX_MAPS - 2; i++) {
			Elf64_Phdr ph;
			struct xp_map *m = &v[n];
			uint64_t start, end;
			if (eh->e_phoff + (i + 1) * sizeof(ph) > size)
				break;
			memcpy(&ph, data + eh->e_phoff + i * sizeof(ph), sizeof(ph));
			if (ph.p_type != PT_LOAD || ph.p_memsz == 0 || ph.p_memsz > (1ULL << 30) ||
			    ph.p_vaddr > (1ULL << 46))
				continue;
			start = base + (ph.p_vaddr & ~(PAGE - 1));
			end = base + ((ph.p_vaddr + ph.p_memsz + PAGE - 1) & ~(PAGE - 1));
			if (start >= VDSO_ADDR || end > VDSO_ADDR || (n > 0 && start < v[n - 1].end))
				continue;
			memset(m, 0, sizeof(*m));
			m->start = start;
			m->end = end;
			m->offset = ph.p_offset & ~(PAGE - 1);
			m->perms[0] = ph.p_flags & PF_R ? 'r' : '-';
			m->perms[1] = ph.p_flags & PF_W ? 'w' : '-';
			m->perms[2] = ph.p_flags & PF_X ? 'x' : '-';
			m->perms[3] = 'p';
			n++;
		}
	}
	for (i = 0; i < n && v[i].perms[2] != 'x'; i++)
		;
	if (i == n) {
		memset(v, 0, sizeof(*v));
		v->start = DYN_BASE;
		v->end = DYN_BASE + ((size + PAGE - 1) & ~(PAGE - 1));
		memcpy(v->perms, "r-xp", 4);
		n = 1;
	}
	/* the file mapped is the memfd: what xprof opens must be it */
	if (fstat(memfd, &st) < 0)
		abort();
	for (i = 0; i < n; i++) {
		v[i].inode = st.st_ino;
		v[i].major = major(st.st_dev);
		v[i].minor = minor(st.st_dev);
		v[i].path = link_path;
	}
	return n;
}

/* A stack word from the input: tagged by its low bits as a return address
 * into text, a pointer into the stack, or kept as it is. */
static uint64_t stack_word(uint64_t w, const struct xp_map *text)
{
	switch (w & 3) {
	case 1:
		return text->start + (w >> 2) % (text->end - text->start);
	case 2:
		return STACK_ADDR + ((w >> 2) % (STACK_LEN / 8)) * 8;
	default:
		return w;
	}
}

static void symbolize_at(struct xp_space *space, uint64_t pc)
{
	int is_call;

	for (is_call = 0; is_call < 2; is_call++) {
		const struct xp_sym *s = xp_symbolize(space, pc, is_call);
		size_t i;
		if (!s)
			continue;
		for (i = 0; i < s->nframes; i++) {
			const struct xp_frame *f = &s->frames[i];
			sink += strlen(f->function) + strlen(f->system_name) + (f->file ? strlen(f->file) : 0) +
				(uint64_t)f->line + f->offset;
			if (verbose)
				fprintf(stderr, "0x%llx%s %s+0x%llx %s:%d%s\n", (unsigned long long)pc,
					is_call ? " (call)" : "", f->function, (unsigned long long)f->offset,
					f->file ? f->file : "?", f->line, f->inlined ? " (inlined)" : "");
		}
		if (s->module)
			sink += strlen(s->module->path) + strlen(s->module->build_id);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const lookups[] = { "main_arena", "mp_", "tcache", "_r_debug",
					       "_thread_db_link_map_l_tls_offset" };
	struct xp_map maps_v[MAX_MAPS];
	struct xp_maps maps = { maps_v, 0 };
	struct xp_region regions[2];
	uint8_t stack[STACK_LEN];
	struct xp_space *space = NULL;
	struct xp_unwinder *u = NULL;
	struct xp_mem *mem = NULL;
	struct xp_stack *st = NULL;
	struct user_regs_struct regs;
	const struct xp_map *text = NULL;
	int vdso = size > EI_PAD + 6 && (data[15] & 1);
	size_t i, k, vdso_len = (size + PAGE - 1) & ~(PAGE - 1);
	uint64_t v, base, off;
	int tls;

	if (size == 0)
		return 0;
	if (vdso) {
		/* the whole image is read from memory: page-padded, as mapped */
		if (vdso_cap < vdso_len) {
			free(vdso_buf);
			vdso_buf = malloc(vdso_len);
			vdso_cap = vdso_buf ? vdso_len : 0;
			if (!vdso_buf)
				return 0;
		}
		memcpy(vdso_buf, data, size);
		memset(vdso_buf + size, 0, vdso_len - size);
		memset(maps_v, 0, sizeof(maps_v[0]));
		maps_v[0].start = VDSO_ADDR;
		maps_v[0].end = VDSO_ADDR + vdso_len;
		memcpy(maps_v[0].perms, "r-xp", 4);
		maps_v[0].path = "[vdso]";
		maps.n = 1;
	} else {
		if (ftruncate(memfd, 0) < 0 || pwrite(memfd, data, size, 0) != (ssize_t)size)
			abort();
		maps.n = file_maps(data, size, maps_v);
	}
	qsort(maps_v, maps.n, sizeof(maps_v[0]), map_cmp);

	/* a stack of words from the input's tail */
	for (i = 0; i < maps.n && !text; i++)
		if (maps_v[i].perms[2] == 'x')
			text = &maps_v[i];
	for (i = 0; i < STACK_LEN / 8; i++) {
		uint64_t w = 0;
		size_t at = size > (i + 1) * 8 ? size - (i + 1) * 8 : 0;
		memcpy(&w, data + at, size - at < 8 ? size - at : 8);
		w = stack_word(w, text);
		memcpy(stack + 8 * i, &w, 8);
	}
	regions[0] = (struct xp_region){ STACK_ADDR, STACK_LEN, stack };
	regions[1] = (struct xp_region){ VDSO_ADDR, vdso_len, vdso_buf };
	mem = xp_mem_snapshot(regions, vdso ? 2 : 1, NULL);
	st = malloc(sizeof(*st));
	if (!mem || !st || xp_space_open(getpid(), &maps, mem, XP_SPACE_OWN_NAMESPACE, &space) < 0)
		goto out;

	for (i = 0; i < maps.n; i++) {
		const struct xp_map *m = &maps_v[i];
		uint64_t len = m->end - m->start;
		for (k = 0; k < PCS_PER_MAPPING; k++) {
			uint64_t pc = m->start + len * k / PCS_PER_MAPPING + k % 3;
			const struct xp_module *mod = xp_space_module(space, pc);
			if (mod)
				sink += mod->start + (uint64_t)mod->has_functions + (uint64_t)mod->has_lines;
			if (m->perms[2] == 'x')
				symbolize_at(space, pc);
			if (xp_space_data_symbol(space, pc, &off))
				sink += off;
		}
		symbolize_at(space, m->end - 1);
		symbolize_at(space, m->end);
	}
	symbolize_at(space, 0);
	for (i = 0; i < sizeof(lookups) / sizeof(lookups[0]); i++)
		if (xp_space_lookup(space, "libc.so", lookups[i], &v, &tls, &base) == 0) {
			sink += v + base + (uint64_t)tls;
			if (verbose)
				fprintf(stderr, "%s at 0x%llx%s\n", lookups[i], (unsigned long long)v, tls ? " (tls)" : "");
		}

	/* a stack: registers from the input's head, pc in the text */
	memset(&regs, 0, sizeof(regs));
	memcpy(&regs, data, size < sizeof(regs) ? size : sizeof(regs));
	regs.rip = stack_word(regs.rip | 1, text) - (regs.rip & 2 ? 0 : 1);
	regs.rsp = STACK_ADDR + (regs.rsp % (STACK_LEN / 2)) / 8 * 8;
	regs.rbp = stack_word(regs.rbp, text);
	/* the unwinder is x86-64's whatever machine the file names: it always
	 * has the first frame (a foreign one refused x86-64's registers) */
	if (xp_unwinder_new(space, &u) < 0)
		abort();
	xp_unwind(u, &regs, mem, st);
	if (st->n == 0)
		abort();
	if (verbose)
		fprintf(stderr, "unwound %zu frames%s%s\n", st->n, st->complete ? ", complete" : ": ", st->error);
	for (i = 0; i < st->n; i++)
		symbolize_at(space, st->pc[i]);
out:
	xp_unwinder_free(u);
	xp_space_close(space);
	xp_mem_close(mem);
	free(st);
	return 0;
}
