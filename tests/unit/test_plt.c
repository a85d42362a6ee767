/* Unit tests of symbolize/plt.c on real ELF files: every PLT stub objdump
 * names (.plt, .plt.sec, .plt.got) gets objdump's name, an IFUNC stub
 * ("*ABS*+0xV@plt" in objdump) the name nm gives the IFUNC symbol at V
 * (of aliases, one with the fewest leading underscores),
 * and each IBT .plt entry (which objdump leaves unnamed) the symbol of its
 * index in .rela.plt as readelf lists it.  Addresses outside stubs and the
 * lazy binder's entry get no name. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <gelf.h>
#include <inttypes.h>
#include <stdint.h>
#include <unistd.h>

#include "symbolize/symbolize_internal.h"
#include "tests/unit/tap.h"

struct stub {
	uint64_t addr;
	char name[256];
};

/* Lines of a command's output, one call per line. */
static int each_line(const char *cmd, void (*fn)(const char *line, void *arg), void *arg)
{
	FILE *p = popen(cmd, "r");
	char line[1024];

	if (!p)
		return -1;
	while (fgets(line, sizeof(line), p))
		fn(line, arg);
	return pclose(p) == 0 ? 0 : -1;
}

struct stubs {
	struct stub v[4096];
	size_t n;
};

static void objdump_line(const char *line, void *arg)
{
	struct stubs *s = arg;
	uint64_t a;
	char name[256];

	/* "0000000000026030 <realloc@plt>:"; not the binder's "<x@plt-0x10>" */
	if (s->n < 4096 && sscanf(line, "%" SCNx64 " <%255[^>]>:", &a, name) == 2 && strlen(name) > 4 &&
	    strcmp(name + strlen(name) - 4, "@plt") == 0) {
		s->v[s->n].addr = a;
		snprintf(s->v[s->n].name, sizeof(s->v[s->n].name), "%s", name);
		s->n++;
	}
}

struct ifunc {
	uint64_t value;
	char names[8][300]; /* every IFUNC symbol there: mempcpy, __mempcpy */
	int found;
};

static void nm_line(const char *line, void *arg)
{
	struct ifunc *f = arg;
	uint64_t v;
	char type, name[256];

	if (f->found < 8 && sscanf(line, "%" SCNx64 " %c %255s", &v, &type, name) == 3 && type == 'i' &&
	    v == f->value) {
		*strchrnul(name, '@') = '\0';
		snprintf(f->names[f->found++], sizeof(f->names[0]), "%s@plt", name);
	}
}

/* Whether got is objdump's name for a stub, or for an IFUNC's, the name
 * of an IFUNC symbol at its address as nm lists them; of several aliases
 * the one with the fewest leading underscores (mempcpy, not __mempcpy). */
static int as_expected(const char *path, const char *objname, const char *got, char *want, size_t len)
{
	struct ifunc f = { 0 };
	char cmd[4200];
	int i, best = -1;

	if (sscanf(objname, "*ABS*+0x%" SCNx64 "@plt", &f.value) != 1) {
		snprintf(want, len, "%s", objname);
		return got && strcmp(got, objname) == 0;
	}
	snprintf(cmd, sizeof(cmd), "nm -D --defined-only '%s'", path);
	each_line(cmd, nm_line, &f);
	for (i = 0; i < f.found; i++)
		if (best < 0 || strspn(f.names[i], "_") < strspn(f.names[best], "_"))
			best = i;
	snprintf(want, len, "%s", best >= 0 ? f.names[best] : objname);
	/* aliases as short (strchr, index): any of them */
	for (i = 0; got && i < f.found; i++)
		if (strspn(f.names[i], "_") == strspn(want, "_") && strcmp(got, f.names[i]) == 0)
			snprintf(want, len, "%s", got);
	return got && strcmp(got, want) == 0;
}

static Elf *open_elf(const char *path, int *fd)
{
	*fd = open(path, O_RDONLY | O_CLOEXEC);
	return *fd < 0 ? NULL : elf_begin(*fd, ELF_C_READ_MMAP, NULL);
}

static void check_file(const char *path)
{
	static struct stubs s;
	char cmd[4200], want[300], first_bad[700] = "";
	const char *base = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
	size_t i, good = 0;
	int fd;
	Elf *elf;

	if (access(path, R_OK) != 0) {
		skip("not installed", "%s: PLT stubs named as objdump names them", path);
		return;
	}
	s.n = 0;
	snprintf(cmd, sizeof(cmd), "objdump -d -j .plt -j .plt.sec -j .plt.got '%s' 2>/dev/null", path);
	each_line(cmd, objdump_line, &s);
	elf = open_elf(path, &fd);
	for (i = 0; elf && i < s.n; i++) {
		char *got = NULL;
		uint64_t entry = 0;
		/* the stub's first byte and one inside it */
		int rc = xp_plt_name(elf, s.v[i].addr, &got, &entry), ok2;
		char *got2 = NULL;
		uint64_t entry2 = 0;

		int named = as_expected(path, s.v[i].name, rc == 1 ? got : NULL, want, sizeof(want));

		ok2 = xp_plt_name(elf, s.v[i].addr + 7, &got2, &entry2) == 1 && strcmp(got2, want) == 0 &&
		      entry2 == s.v[i].addr;
		if (named && entry == s.v[i].addr && ok2)
			good++;
		else if (!first_bad[0])
			snprintf(first_bad, sizeof(first_bad), "; first miss at 0x%" PRIx64 ": objdump %s, want %s, got %s",
				 s.v[i].addr, s.v[i].name, want, rc == 1 ? got : "(none)");
		free(got);
		free(got2);
	}
	ok(elf && s.n > 0 && good == s.n, "%s: %zu of %zu PLT stubs named as objdump names them%s", base, good, s.n,
	   first_bad);
	if (elf)
		elf_end(elf);
	if (fd >= 0)
		close(fd);
}

struct relas {
	char names[1024][300];
	size_t n;
	int on;
};

static void readelf_line(const char *line, void *arg)
{
	struct relas *r = arg;
	char off[32], info[32], type[64], value[32], name[256];

	if (strstr(line, "Relocation section '.rela.plt'")) {
		r->on = 1;
		return;
	}
	if (strstr(line, "Relocation section"))
		r->on = 0;
	if (r->on && r->n < 1024 && sscanf(line, "%31s %31s %63s %31s %255s", off, info, type, value, name) == 5 &&
	    strcmp(type, "R_X86_64_JUMP_SLOT") == 0) {
		*strchrnul(name, '@') = '\0';
		snprintf(r->names[r->n++], sizeof(r->names[0]), "%s@plt", name);
	}
}

/* An IBT build: .plt entries push their index, .plt.sec jumps */
static void check_ibt(const char *path)
{
	static struct relas r;
	char cmd[4200];
	size_t i, good = 0, shstrndx;
	GElf_Shdr sh;
	Elf_Scn *scn = NULL;
	uint64_t plt = 0, plt_size = 0;
	char *got;
	uint64_t entry;
	int fd, rc;
	Elf *elf = open_elf(path, &fd);

	r.n = 0;
	r.on = 0;
	snprintf(cmd, sizeof(cmd), "readelf -rW '%s'", path);
	each_line(cmd, readelf_line, &r);
	if (elf && elf_getshdrstrndx(elf, &shstrndx) == 0)
		while ((scn = elf_nextscn(elf, scn)) != NULL)
			if (gelf_getshdr(scn, &sh) && strcmp(elf_strptr(elf, shstrndx, sh.sh_name), ".plt") == 0) {
				plt = sh.sh_addr;
				plt_size = sh.sh_size;
			}
	for (i = 0; elf && i < r.n && 16 * (i + 2) <= plt_size; i++) {
		got = NULL;
		if (xp_plt_name(elf, plt + 16 * (i + 1) + 5, &got, &entry) == 1 && strcmp(got, r.names[i]) == 0 &&
		    entry == plt + 16 * (i + 1))
			good++;
		free(got);
	}
	ok(elf && r.n > 0 && good == r.n, "%s: %zu of %zu IBT .plt entries named by their .rela.plt index", path, good,
	   r.n);
	got = NULL;
	rc = elf ? xp_plt_name(elf, plt + 3, &got, &entry) : -1;
	ok(rc == 0 && !got, "the lazy binder's own entry has no name (%d)", rc);
	free(got);
	rc = elf ? xp_plt_name(elf, plt + plt_size + 0x1000, &got, &entry) : -1;
	ok(rc == 0, "an address past the stubs has no name (%d)", rc);
	if (elf)
		elf_end(elf);
	if (fd >= 0)
		close(fd);
}

int main(void)
{
	char libc[4096] = "";
	char *maps = read_file("/proc/self/maps", NULL), *p;

	elf_version(EV_CURRENT);
	/* this process's own libc */
	if (maps && (p = strstr(maps, "/libc.so.6"))) {
		char *start = p;

		while (start > maps && start[-1] != ' ')
			start--;
		snprintf(libc, sizeof(libc), "%.*s", (int)(p - start + strlen("/libc.so.6")), start);
	}
	free(maps);
	check_file(libc);
	check_file("build/fixtures/cpuwork");
	check_file("build/fixtures/cpuwork-ibt");
	check_file("/usr/bin/python3.11");
	check_file("/usr/sbin/nginx");
	check_file("/usr/lib/postgresql/15/bin/postgres");
	check_ibt("build/fixtures/cpuwork-ibt");
	printf("1..%d\n", test_no);
	return failures ? 1 : 0;
}
