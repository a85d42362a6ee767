/* Fuzzes the Go runtime readers (gort/): the goroutine list, each
 * runtime.g, pprof label maps, goroutine stacks and Go-style tracebacks
 * over them with argument printing, and the heap-profile bucket list.
 *
 * The program is a real Go binary (build/fixtures/goparked, or
 * $XPROF_FUZZ_GOBIN): its symbols, DWARF layouts and .gopclntab are the
 * binary's; what the fuzzer controls is the target's memory.  The heap,
 * block and mutex bucket lists are all read.  The input is
 *     u8 nthreads, nthreads x (u32 tid, u64 rip, u64 rsp),
 *     then regions: u64 address, u32 length, length bytes ...
 * and the target's memory is those regions (reads elsewhere fail).  An
 * address below 0x100 names a runtime variable (VAR_*, at the binary's
 * address for it), so that inputs outlive a rebuilt fixture: the pcs in
 * them may then point elsewhere, but every structure is still read.
 *
 * Seeds: XPROF_FUZZ_WRITE_SEEDS=DIR fuzz_goruntime PID... records every
 * read the readers make of a live Go process (stopped for it) and writes
 * the regions so read, and the threads, as one seed per pid.
 */
#define _GNU_SOURCE
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <gelf.h>
#include <libelf.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "gort/gort_internal.h"

#include "tests/fuzz/fuzz.h"

#define MAX_THREADS 8
#define MAX_REGIONS 4096

static struct xp_space *space;
static struct xp_go *go;

/* the runtime variables an input's region may name by number */
enum { VAR_ALLGLEN, VAR_ALLGPTR, VAR_MBUCKETS, VAR_MPROFCYCLE, VAR_MEMPROFILERATE, VAR_BBUCKETS, VAR_XBUCKETS,
       VAR_BLOCKRATE, VAR_MUTEXRATE, VAR_TICKS, VAR_FINGRUNNING, NVARS };

static uint64_t var_addr(int k)
{
	switch (k) {
	case VAR_ALLGLEN: return go->allglen;
	case VAR_ALLGPTR: return go->allgptr;
	case VAR_MBUCKETS: return go->mbuckets;
	case VAR_MPROFCYCLE: return go->mprofcycle;
	case VAR_MEMPROFILERATE: return go->memprofilerate;
	case VAR_BBUCKETS: return go->bbuckets;
	case VAR_XBUCKETS: return go->xbuckets;
	case VAR_BLOCKRATE: return go->blockprofilerate;
	case VAR_MUTEXRATE: return go->mutexprofilerate;
	case VAR_TICKS: return go->ticks ? go->ticks + (uint64_t)go->l.ticks_val : 0;
	case VAR_FINGRUNNING: return go->fingrunning;
	}
	return 0;
}

static FILE *devnull;
static volatile uint64_t sink;

/* ---- the target's memory: regions ---------------------------------------- */

struct regions {
	struct xp_mem mem;
	struct xp_region v[MAX_REGIONS];
	size_t n;
	/* recording: reads of a live process become regions */
	struct xp_mem *live;
	uint8_t *rec;
	size_t rec_len, rec_cap;
};

static ssize_t regions_read(struct xp_mem *m, uint64_t addr, void *buf, size_t len)
{
	struct regions *r = (struct regions *)m;
	size_t i;

	for (i = 0; i < r->n; i++) {
		const struct xp_region *g = &r->v[i];
		if (addr >= g->addr && addr - g->addr < g->len) {
			size_t k = g->len - (addr - g->addr);
			if (k > len)
				k = len;
			memcpy(buf, g->data + (addr - g->addr), k);
			return (ssize_t)k;
		}
	}
	return -EFAULT;
}

static void regions_close(struct xp_mem *m)
{
	(void)m; /* owned by the harness */
}

static void rec_put(struct regions *r, const void *p, size_t n)
{
	if (r->rec_len + n > r->rec_cap) {
		r->rec_cap = (r->rec_len + n) * 2;
		r->rec = realloc(r->rec, r->rec_cap);
		if (!r->rec)
			abort();
	}
	memcpy(r->rec + r->rec_len, p, n);
	r->rec_len += n;
}

static ssize_t recording_read(struct xp_mem *m, uint64_t addr, void *buf, size_t len)
{
	struct regions *r = (struct regions *)m;
	ssize_t got = xp_mem_read(r->live, addr, buf, len);

	if (got > 0) {
		uint32_t n = (uint32_t)got;
		uint64_t at = addr;
		int k;
		for (k = 0; k < NVARS; k++)
			if (var_addr(k) && addr == var_addr(k))
				at = (uint64_t)k;
		rec_put(r, &at, 8);
		rec_put(r, &n, 4);
		rec_put(r, buf, n);
	}
	return got;
}

/* ---- the program ------------------------------------------------------------ */

/* Opens the Go binary as a process maps it (non-PIE: at its link addresses). */
static int open_program(const char *path)
{
	static struct xp_maps maps;
	static struct xp_map v[8];
	struct xp_mem *mem = xp_mem_local();
	int fd = open(path, O_RDONLY);
	Elf *elf = fd >= 0 ? elf_begin(fd, ELF_C_READ, NULL) : NULL;
	char why[256] = "";
	size_t nph, i, n = 0;
	struct stat st;

	if (!elf || elf_getphdrnum(elf, &nph) < 0 || fstat(fd, &st) < 0) {
		fprintf(stderr, "fuzz_goruntime: cannot read %s (make fixtures builds it)\n", path);
		return -1;
	}
	for (i = 0; i < nph && n < 8; i++) {
		GElf_Phdr ph;
		if (!gelf_getphdr(elf, (int)i, &ph) || ph.p_type != PT_LOAD)
			continue;
		v[n].start = ph.p_vaddr & ~0xfffULL;
		v[n].end = (ph.p_vaddr + ph.p_memsz + 0xfff) & ~0xfffULL;
		v[n].offset = ph.p_offset & ~0xfffULL;
		snprintf(v[n].perms, sizeof(v[n].perms), "%c%c%cp", ph.p_flags & PF_R ? 'r' : '-',
			 ph.p_flags & PF_W ? 'w' : '-', ph.p_flags & PF_X ? 'x' : '-');
		v[n].path = realpath(path, NULL);
		v[n].inode = st.st_ino; /* symbolize checks the file is the mapped one */
		v[n].major = major(st.st_dev);
		v[n].minor = minor(st.st_dev);
		n++;
	}
	elf_end(elf);
	close(fd);
	maps.v = v;
	maps.n = n;
	if (xp_space_open(getpid(), &maps, mem, XP_SPACE_OWN_NAMESPACE, &space) < 0 ||
	    xp_go_open(space, &go, why, sizeof(why)) < 0) {
		fprintf(stderr, "fuzz_goruntime: %s is not a Go program xprof reads: %s\n", path, why);
		return -1;
	}
	return 0;
}

static void run(struct xp_snapshot *s, struct xp_mem *mem)
{
	struct xp_goroutines gs = { .go = go, .mem = mem };
	struct xp_go_heap h = { .go = go, .mem = mem };
	struct xp_go_frame fr[XP_GO_MAX_FRAMES];
	size_t i, k;

	xp_go_read_goroutines(s, &gs);
	xp_goroutines_finish(&gs);
	for (i = 0; i < gs.n; i++) {
		int complete;
		sink += xp_go_traceback(go, &gs.v[i], fr, XP_GO_MAX_FRAMES, &complete);
		xp_go_print(go, &gs, &gs.v[i], devnull);
		sink += strlen(xp_go_status(go, &gs.v[i]));
	}
	xp_goroutines_free(&gs);
	for (int kind = XP_GO_HEAP; kind <= XP_GO_MUTEX; kind++) {
		if (xp_go_heap_check(go, kind, (char[160]){ 0 }, 160) < 0)
			continue;
		memset(&h, 0, sizeof(h));
		h.go = go;
		h.mem = mem;
		h.kind = kind;
		xp_go_read_heap(s, &h);
		for (i = 0; i < h.n; i++) {
			for (k = 0; k < h.v[i].nstk; k++) {
				const char *file;
				int line;
				const char *fn = xp_go_funcname(go, h.v[i].stk[k], &file, &line, NULL, NULL);
				sink += fn ? strlen(fn) : 0;
			}
		}
		xp_go_heap_free(&h);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct regions r;
	struct fuzz_in in = { data, size };
	struct xp_thread th[MAX_THREADS];
	struct xp_snapshot s;
	size_t i, nth = fuzz_u8(&in) % (MAX_THREADS + 1);

	memset(&s, 0, sizeof(s));
	memset(th, 0, sizeof(th));
	for (i = 0; i < nth; i++) {
		th[i].tid = (pid_t)fuzz_u32(&in);
		th[i].regs.rip = fuzz_u64(&in);
		th[i].regs.rsp = fuzz_u64(&in);
		th[i].stopped = 1;
		th[i].seized = 1;
	}
	s.pid = getpid();
	s.threads = th;
	s.nthreads = nth;
	r.mem.read = regions_read;
	r.mem.close = regions_close;
	r.n = 0;
	while (in.n >= 12 && r.n < MAX_REGIONS) {
		uint64_t addr = fuzz_u64(&in);
		uint32_t len = fuzz_u32(&in);
		if (len > in.n)
			len = (uint32_t)in.n;
		if (addr < 0x100)
			addr = addr < NVARS ? var_addr((int)addr) : 0;
		r.v[r.n++] = (struct xp_region){ addr, len, in.p };
		in.p += len;
		in.n -= len;
	}
	run(&s, &r.mem);
	return 0;
}

/* ---- seeds from live processes ------------------------------------------------- */

static int record(struct xp_snapshot *s, void *arg)
{
	run(s, arg);
	return 0;
}

static void write_seed(const char *dir, pid_t pid)
{
	static struct regions r;
	struct xp_snapshot s;
	uint8_t nth;
	uint8_t *out;
	size_t i, len = 1;
	char name[32];

	memset(&s, 0, sizeof(s));
	r.mem.read = recording_read;
	r.mem.close = regions_close;
	r.live = xp_mem_process(pid);
	r.rec_len = 0;
	if (!r.live || xp_snapshot_take_with(pid, &s, record, &r) < 0) {
		fprintf(stderr, "fuzz_goruntime: cannot stop pid %d\n", (int)pid);
		exit(1);
	}
	nth = s.nthreads < MAX_THREADS ? (uint8_t)s.nthreads : MAX_THREADS;
	out = malloc(1 + nth * 20 + r.rec_len);
	out[0] = nth;
	for (i = 0; i < nth; i++) {
		uint32_t tid = (uint32_t)s.threads[i].tid;
		memcpy(out + len, &tid, 4);
		memcpy(out + len + 4, &s.threads[i].regs.rip, 8);
		memcpy(out + len + 12, &s.threads[i].regs.rsp, 8);
		len += 20;
	}
	memcpy(out + len, r.rec, r.rec_len);
	len += r.rec_len;
	snprintf(name, sizeof(name), "live-%d", (int)pid);
	fuzz_write_seed(dir, name, out, len);
	free(out);
	xp_snapshot_free(&s);
	xp_mem_close(r.live);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	const char *dir = fuzz_seed_dir(), *bin = getenv("XPROF_FUZZ_GOBIN");
	int i;

	setenv("XPROF_CACHE_DIR", "off", 1);
	unsetenv("DEBUGINFOD_URLS");
	elf_version(EV_CURRENT);
	devnull = getenv("XPROF_FUZZ_VERBOSE") ? stderr : fopen("/dev/null", "w");
	if (!devnull || open_program(bin && *bin ? bin : "build/fixtures/goparked") < 0)
		exit(1);
	if (!dir)
		return 0;
	for (i = 1; i < *argc; i++)
		write_seed(dir, (pid_t)atoi((*argv)[i]));
	exit(0);
}
