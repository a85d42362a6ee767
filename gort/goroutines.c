/* Goroutines, read while the process is stopped and printed afterwards
 * exactly as the runtime prints them (runtime/traceback.go of the target's
 * Go: goroutineheader, gentraceback's printing, printArgs,
 * printcreatedby), from copies of their stacks.
 */
#define _GNU_SOURCE
#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "gort/gort_internal.h"

#define STATUS_SCAN 0x1000
enum { G_IDLE, G_RUNNABLE, G_RUNNING, G_SYSCALL, G_WAITING, G_MORIBUND, G_DEAD, G_ENQUEUE, G_COPYSTACK, G_PREEMPTED };

static const char *const gstatus[] = {
	"idle", "runnable", "running", "syscall", "waiting", "", "dead", "", "copystack", "preempted",
};

static int rd64(struct xp_mem *m, uint64_t addr, uint64_t *v)
{
	return xp_mem_read_full(m, addr, v, 8);
}

static uint64_t field(const uint8_t *g, int64_t off, size_t size)
{
	uint64_t v = 0;

	if (off >= 0)
		memcpy(&v, g + off, size);
	return v;
}

/* ---- reading (the process is stopped) ------------------------------------- */

/* allgs of a binary without symbols: the slice header in .bss whose first
 * goroutine is goroutine 1 with a sane stack. */
static int find_allgs(struct xp_go *go, struct xp_mem *mem)
{
	const struct xp_go_layout *l = &go->l;
	uint64_t bss, size, off;
	uint64_t *w;
	int rc = -ENOENT;

	if (xp_gopclntab_section(go->t, ".bss", &bss, &size) < 0 || size > (64u << 20) || size < 24)
		return -ENOENT;
	w = malloc(size);
	if (!w)
		return -ENOMEM;
	if (xp_mem_read_full(mem, bss + go->bias, w, size & ~7ULL) < 0) {
		free(w);
		return -EFAULT;
	}
	for (off = 0; off + 3 <= size / 8; off++) {
		uint64_t ptr = w[off], len = w[off + 1], cap = w[off + 2], g1, goid, lo, hi;
		if (!ptr || (ptr & 7) || !len || len > cap || cap > XP_GO_MAX_GOROUTINES)
			continue;
		if (rd64(mem, ptr, &g1) < 0 || !g1 || (g1 & 7) || rd64(mem, g1 + l->g_goid, &goid) < 0 || goid != 1 ||
		    rd64(mem, g1 + l->g_stack_lo, &lo) < 0 || rd64(mem, g1 + l->g_stack_hi, &hi) < 0 || lo >= hi ||
		    hi - lo > (1ULL << 30))
			continue;
		go->allgs_slice = bss + go->bias + off * 8;
		rc = 0;
		break;
	}
	free(w);
	return rc;
}

static int read_string(struct xp_mem *mem, uint64_t hdr_ptr, uint64_t hdr_len, char **out)
{
	char *s;

	if (hdr_len > 4096)
		hdr_len = 4096;
	s = malloc(hdr_len + 1);
	if (!s)
		return -ENOMEM;
	if (hdr_len && xp_mem_read_full(mem, hdr_ptr, s, hdr_len) < 0) {
		free(s);
		return -EFAULT;
	}
	s[hdr_len] = '\0';
	*out = s;
	return 0;
}

/* pprof labels: g.labels points at a labelMap, a map[string]string.  The
 * map's buckets (runtime.hmap, bmap of 8 string keys and 8 string values)
 * have had the same layout since Go 1.0. */
#define BUCKET_CNT 8
#define BMAP_SIZE (8 + 16 * BUCKET_CNT * 2 + 8)
#define MIN_TOPHASH 5

static void add_label(struct xp_goroutine *g, struct xp_mem *mem, const uint8_t *kv)
{
	uint64_t h[4];
	char *k = NULL, *v = NULL;
	size_t i;

	memcpy(h, kv, 16);
	memcpy(h + 2, kv + 16 * BUCKET_CNT, 16);
	if (g->nlabels == XP_GO_MAX_LABELS || read_string(mem, h[0], h[1], &k) < 0)
		return;
	for (i = 0; i < g->nlabels; i++) {
		if (strcmp(g->label_key[i], k) == 0) {
			free(k);
			return;
		}
	}
	if (read_string(mem, h[2], h[3], &v) < 0) {
		free(k);
		return;
	}
	if (!g->label_key) {
		g->label_key = calloc(XP_GO_MAX_LABELS, sizeof(char *));
		g->label_value = calloc(XP_GO_MAX_LABELS, sizeof(char *));
		if (!g->label_key || !g->label_value) {
			free(k);
			free(v);
			return;
		}
	}
	g->label_key[g->nlabels] = k;
	g->label_value[g->nlabels++] = v;
}

static void read_buckets(struct xp_goroutine *g, struct xp_mem *mem, uint64_t buckets, uint64_t n)
{
	uint64_t i, steps = 0;

	for (i = 0; i < n && buckets; i++) {
		uint64_t b = buckets + i * BMAP_SIZE;
		while (b && steps++ < 1024) {
			uint8_t bm[BMAP_SIZE];
			int k;
			if (xp_mem_read_full(mem, b, bm, sizeof(bm)) < 0)
				return;
			for (k = 0; k < BUCKET_CNT; k++)
				if (bm[k] >= MIN_TOPHASH)
					add_label(g, mem, bm + 8 + 16 * k);
			memcpy(&b, bm + BMAP_SIZE - 8, 8);
		}
	}
}

static void read_labels(struct xp_goroutine *g, struct xp_mem *mem, uint64_t labels)
{
	uint64_t hmap, h[4];
	uint8_t flags, B;

	if (!labels || rd64(mem, labels, &hmap) < 0 || !hmap || xp_mem_read_full(mem, hmap, h, sizeof(h)) < 0)
		return;
	/* count int, flags u8, B u8, noverflow u16, hash0 u32, buckets, oldbuckets */
	flags = (uint8_t)(h[1] & 0xff);
	B = (uint8_t)((h[1] >> 8) & 0xff);
	if (h[0] == 0 || B > 10)
		return;
	read_buckets(g, mem, h[2], 1ULL << B);
	if (h[3]) /* growing: entries not yet moved are still in the old buckets */
		read_buckets(g, mem, h[3], (flags & 8) || B == 0 ? 1ULL << B : 1ULL << (B - 1));
}

static const struct xp_thread *thread_of(const struct xp_snapshot *s, pid_t tid)
{
	size_t i;

	for (i = 0; i < s->nthreads; i++)
		if (s->threads[i].tid == tid && s->threads[i].stopped)
			return &s->threads[i];
	return NULL;
}

static int is_system(struct xp_go *go, uint64_t startpc, int fing_running)
{
	struct xp_gofunc f;

	if (xp_go_func(go, startpc, &f) < 0)
		return 0;
	if (strcmp(f.name, "runtime.main") == 0 || strcmp(f.name, "runtime.handleAsyncEvent") == 0)
		return 0;
	if (strcmp(f.name, "runtime.runfinq") == 0) /* a user goroutine while it runs finalizers */
		return !fing_running;
	return strncmp(f.name, "runtime.", 8) == 0;
}

void xp_goroutines_finish(struct xp_goroutines *gs)
{
	size_t i;

	for (i = 0; i < gs->n; i++)
		gs->v[i].system = is_system(gs->go, gs->v[i].startpc, gs->fing_running);
}

/* One goroutine from its runtime.g (raw): its fields, where its traceback
 * starts, its labels, and the range of its stack to copy (stack.addr and
 * stack.len; stack.data still NULL).  Dead ones are skipped. */
static int parse_one(struct xp_goroutines *gs, struct xp_snapshot *s, struct xp_mem *mem, uint64_t gp,
		     const uint8_t *raw)
{
	struct xp_go *go = gs->go;
	const struct xp_go_layout *l = &go->l;
	struct xp_goroutine *g;
	uint64_t len;

	if ((field(raw, l->g_status, 4) & ~STATUS_SCAN) == G_DEAD)
		return 0;
	if (gs->n == gs->alloc) {
		size_t na = gs->alloc ? gs->alloc * 2 : 64;
		struct xp_goroutine *v = realloc(gs->v, na * sizeof(*v));
		if (!v)
			return -ENOMEM;
		gs->v = v;
		gs->alloc = na;
	}
	g = &gs->v[gs->n++];
	memset(g, 0, sizeof(*g));
	g->g = gp;
	g->goid = (int64_t)field(raw, l->g_goid, 8);
	g->status = (uint32_t)field(raw, l->g_status, 4);
	g->waitreason = (uint8_t)field(raw, l->g_waitreason, 1);
	g->waitsince = (int64_t)field(raw, l->g_waitsince, 8);
	g->m = field(raw, l->g_m, 8);
	g->lockedm = field(raw, l->g_lockedm, 8);
	g->sched_pc = field(raw, l->g_sched_pc, 8);
	g->sched_sp = field(raw, l->g_sched_sp, 8);
	g->sched_bp = field(raw, l->g_sched_bp, 8);
	g->syscall_pc = field(raw, l->g_syscallpc, 8);
	g->syscall_sp = field(raw, l->g_syscallsp, 8);
	g->gopc = field(raw, l->g_gopc, 8);
	g->startpc = field(raw, l->g_startpc, 8);
	g->stack_lo = field(raw, l->g_stack_lo, 8);
	g->stack_hi = field(raw, l->g_stack_hi, 8);

	/* where its traceback starts, as gentraceback picks it */
	if (g->syscall_sp) {
		g->pc = g->syscall_pc;
		g->sp = g->syscall_sp;
	} else {
		g->pc = g->sched_pc;
		g->sp = g->sched_sp;
	}
	if ((g->status & ~STATUS_SCAN) == G_RUNNING && g->m) {
		uint64_t procid;
		const struct xp_thread *t;
		if (rd64(mem, g->m + l->m_procid, &procid) == 0 && (t = thread_of(s, (pid_t)procid)) != NULL) {
			g->tid = t->tid;
			/* on its own stack: the thread's registers; on the
			 * system stack: what it saved when it switched */
			if (t->regs.rsp >= g->stack_lo && t->regs.rsp < g->stack_hi) {
				g->pc = t->regs.rip;
				g->sp = t->regs.rsp;
				g->trap = 1;
			}
		}
	}
	if (l->g_labels >= 0)
		read_labels(g, mem, field(raw, l->g_labels, 8));

	/* its stack, from sp up */
	if (g->sp < g->stack_lo || g->sp >= g->stack_hi || g->stack_hi - g->stack_lo > (1ULL << 30))
		return 0;
	len = g->stack_hi - g->sp;
	if (len > XP_GO_STACK_COPY_MAX) {
		len = XP_GO_STACK_COPY_MAX;
		gs->truncated++;
	}
	if (gs->copied + len > XP_GO_COPY_TOTAL_MAX) {
		snprintf(gs->problem, sizeof(gs->problem), "stacks over %llu MiB: the rest not copied",
			 (unsigned long long)(XP_GO_COPY_TOTAL_MAX >> 20));
		return 0;
	}
	g->stack.addr = g->sp;
	g->stack.len = len;
	gs->copied += len;
	return 0;
}

/* The stacks of goroutines [first, gs->n), in one batch. */
static int copy_stacks(struct xp_goroutines *gs, struct xp_mem *mem, size_t first, struct xp_mem_req *req)
{
	size_t i, k = 0;
	int err;

	for (i = first; i < gs->n; i++) {
		struct xp_goroutine *g = &gs->v[i];
		if (!g->stack.len)
			continue;
		g->stack.data = malloc(g->stack.len);
		if (!g->stack.data)
			return -ENOMEM;
		req[k++] = (struct xp_mem_req){ g->stack.addr, g->stack.len, (void *)g->stack.data, 0 };
	}
	err = xp_mem_read_many(mem, req, k);
	for (i = first, k = 0; i < gs->n; i++) {
		struct xp_goroutine *g = &gs->v[i];
		if (!g->stack.len)
			continue;
		if (err < 0 || !req[k].ok) {
			free((void *)g->stack.data);
			g->stack.data = NULL;
			gs->copied -= g->stack.len;
			g->stack.len = 0;
		}
		k++;
	}
	return err;
}

#define CHUNK 1024 /* goroutines read per batch */

int xp_go_read_goroutines(struct xp_snapshot *s, void *arg)
{
	struct xp_goroutines *gs = arg;
	struct xp_go *go = gs->go;
	struct xp_mem *mem = gs->mem ? gs->mem : xp_mem_process(s->pid);
	struct timespec ts;
	uint64_t n = 0, arr = 0, *ptrs = NULL, i;
	struct xp_mem_req *req = NULL;
	uint8_t *raw = NULL, running = 0;
	int err = 0;

	if (!mem)
		return -ENOMEM;
	clock_gettime(CLOCK_MONOTONIC, &ts); /* Go's nanotime */
	gs->now = (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
	if (go->allglen && go->allgptr) {
		if (rd64(mem, go->allglen, &n) < 0 || rd64(mem, go->allgptr, &arr) < 0)
			err = -EFAULT;
	} else if (go->allgs_slice || (err = find_allgs(go, mem)) == 0) {
		if (rd64(mem, go->allgs_slice, &arr) < 0 || rd64(mem, go->allgs_slice + 8, &n) < 0)
			err = -EFAULT;
	}
	if (err < 0) {
		snprintf(gs->problem, sizeof(gs->problem), "cannot find the goroutine list (runtime.allgs)");
		goto out;
	}
	if (n > XP_GO_MAX_GOROUTINES) {
		snprintf(gs->problem, sizeof(gs->problem), "runtime.allglen is %llu: more than %d, read as corrupt",
			 (unsigned long long)n, XP_GO_MAX_GOROUTINES);
		err = -EINVAL;
		goto out;
	}
	ptrs = malloc((n ? n : 1) * 8);
	raw = malloc(CHUNK * (size_t)go->l.g_size);
	req = malloc(CHUNK * sizeof(*req));
	if (!ptrs || !raw || !req) {
		err = -ENOMEM;
		goto out;
	}
	if (n && xp_mem_read_full(mem, arr, ptrs, n * 8) < 0) {
		snprintf(gs->problem, sizeof(gs->problem), "cannot read runtime.allgs at 0x%llx",
			 (unsigned long long)arr);
		err = -EFAULT;
		goto out;
	}
	if (go->fingrunning && xp_mem_read_full(mem, go->fingrunning, &running, 1) == 0)
		gs->fing_running = running != 0;
	/* a batch of runtime.g structures, then a batch of their stacks */
	for (i = 0; i < n && err == 0; i += CHUNK) {
		size_t k, m = 0, first = gs->n;
		for (k = i; k < n && k < i + CHUNK; k++) {
			if (!ptrs[k] || (ptrs[k] & 7))
				continue;
			req[m] = (struct xp_mem_req){ ptrs[k], (size_t)go->l.g_size, raw + m * (size_t)go->l.g_size, 0 };
			m++;
		}
		err = xp_mem_read_many(mem, req, m);
		for (k = 0; k < m && err == 0; k++) {
			if (!req[k].ok) {
				/* the process died under us (what we read a
				 * moment ago fails too), or a bad pointer */
				uint64_t w;
				if (rd64(mem, arr, &w) < 0)
					err = -ESRCH;
				continue;
			}
			err = parse_one(gs, s, mem, req[k].addr, req[k].buf);
		}
		if (err == 0)
			err = copy_stacks(gs, mem, first, req);
	}
	if (err == -ESRCH)
		snprintf(gs->problem, sizeof(gs->problem), "the process exited while its goroutines were read "
			 "(%zu of %llu read)", gs->n, (unsigned long long)n);
out:
	free(ptrs);
	free(raw);
	free(req);
	if (mem != gs->mem)
		xp_mem_close(mem);
	return err;
}

void xp_goroutines_free(struct xp_goroutines *gs)
{
	size_t i, k;

	for (i = 0; i < gs->n; i++) {
		free((void *)gs->v[i].stack.data);
		for (k = 0; k < gs->v[i].nlabels; k++) {
			free(gs->v[i].label_key[k]);
			free(gs->v[i].label_value[k]);
		}
		free(gs->v[i].label_key);
		free(gs->v[i].label_value);
	}
	free(gs->v);
	gs->v = NULL;
	gs->n = gs->alloc = 0;
}

/* ---- traceback (after the release, from the copies) ----------------------- */

static int stack_read(const struct xp_goroutine *g, uint64_t addr, void *buf, size_t len)
{
	if (!g->stack.data || addr < g->stack.addr || addr - g->stack.addr > g->stack.len ||
	    g->stack.len - (addr - g->stack.addr) < len)
		return -1;
	memcpy(buf, g->stack.data + (addr - g->stack.addr), len);
	return 0;
}

size_t xp_go_traceback(struct xp_go *go, const struct xp_goroutine *g, struct xp_go_frame *frames, size_t max,
		       int *complete)
{
	uint64_t pc = g->pc, sp = g->sp;
	int is_call = !g->trap;
	size_t n = 0;

	*complete = 0;
	while (n < max) {
		struct xp_gofunc f;
		int64_t delta;
		uint64_t fp, ra;

		if (xp_go_func(go, pc, &f) < 0)
			break;
		delta = xp_gopclntab_spdelta(go->t, &f, pc - go->bias);
		if (delta < 0)
			break;
		fp = sp + (uint64_t)delta + 8;
		frames[n++] = (struct xp_go_frame){ pc, sp, fp, is_call };
		/* the end of a goroutine (goexit), or a stack switch, where
		 * Go's own traceback stops too */
		if ((f.flag & XP_GO_FLAG_TOPFRAME) ||
		    ((f.flag & XP_GO_FLAG_SPWRITE) && !(n == 1 && pc == g->syscall_pc && sp == g->syscall_sp))) {
			*complete = 1;
			break;
		}
		if (stack_read(g, fp - 8, &ra, 8) < 0 || !ra)
			break;
		/* after sigpanic, the pc is the faulting instruction */
		is_call = strcmp(f.name, "runtime.sigpanic") != 0;
		pc = ra;
		sp = fp;
	}
	return n;
}

/* ---- printing ------------------------------------------------------------- */

static int is_panic_id(const char *name)
{
	return name && (strcmp(name, "runtime.gopanic") == 0 || strcmp(name, "runtime.sigpanic") == 0 ||
			strcmp(name, "runtime.panicwrap") == 0);
}

/* showfuncinfo at GOTRACEBACK=single; child: the callee's name (NULL for
 * none, Go's funcID_normal). */
static int show(struct xp_go *go, const char *name, int funcid, int first, const char *child)
{
	if (!name)
		return 0;
	if (go->wrapper_id >= 0 && funcid == go->wrapper_id && !is_panic_id(child))
		return 0;
	if (strcmp(name, "runtime.gopanic") == 0 && !first)
		return 1;
	return strchr(name, '.') && (strncmp(name, "runtime.", 8) != 0 || (name[8] >= 'A' && name[8] <= 'Z'));
}

static void print_args(struct xp_go *go, const struct xp_goroutine *g, const struct xp_gofunc *f, uint64_t argp,
		       uint64_t tracepc, FILE *out)
{
	enum { END_SEQ = 0xff, START_AGG = 0xfe, END_AGG = 0xfd, DOTDOTDOT = 0xfc, OFFSET_TOO_LARGE = 0xfb };
	size_t avail, live_avail = 0, pi = 0;
	const uint8_t *p = xp_gopclntab_funcdata(go->t, f, XP_GO_FUNCDATA_ARGINFO, &avail);
	const uint8_t *live = xp_gopclntab_funcdata(go->t, f, XP_GO_FUNCDATA_ARGLIVE, &live_avail);
	int64_t live_idx = xp_gopclntab_pcdata(go->t, f, XP_GO_PCDATA_ARGLIVE, tracepc - go->bias);
	uint8_t start_off = live && live_avail ? live[0] : 0xff, slot = 0;
	int start = 1;

	if (!p)
		return;
	if (avail > (5 * 3 + 2) * 10 + 1)
		avail = (5 * 3 + 2) * 10 + 1;
	while (pi < avail) {
		uint8_t o = p[pi++], sz;
		uint64_t x = 0;
		switch (o) {
		case END_SEQ:
			return;
		case START_AGG:
			fputs(start ? "{" : ", {", out);
			start = 1;
			continue;
		case END_AGG:
			fputc('}', out);
			break;
		case DOTDOTDOT:
			fputs(start ? "..." : ", ...", out);
			break;
		case OFFSET_TOO_LARGE:
			fputs(start ? "_" : ", _", out);
			break;
		default:
			if (!start)
				fputs(", ", out);
			if (pi >= avail)
				return;
			sz = p[pi++];
			if (stack_read(g, argp + o, &x, 8) < 0) {
				fputc('?', out);
			} else {
				int is_live = 1;
				if (sz < 8)
					x = x << (64 - sz * 8) >> (64 - sz * 8);
				fprintf(out, "0x%llx", (unsigned long long)x);
				if (live && live_idx > 0 && o >= start_off) {
					uint64_t at = (uint64_t)live_idx + slot / 8;
					is_live = at < live_avail && (live[at] & (1 << (slot % 8)));
				}
				if (!is_live)
					fputc('?', out);
			}
			if (o >= start_off)
				slot++;
		}
		start = 0;
	}
}

/* One pass of gentraceback's printing; returns how many frames it printed. */
static size_t print_frames(struct xp_go *go, const struct xp_goroutine *g, const struct xp_go_frame *fr, size_t n,
			   int all, FILE *out)
{
	const char *last = NULL; /* the callee's name: funcID_normal at first */
	int waspanic = 0;
	size_t i, nprint = 0;

	for (i = 0; i < n; i++) {
		struct xp_gofunc f;
		struct xp_goinline in;
		uint64_t tracepc = fr[i].pc;
		const char *file;
		int line, depth;

		if (xp_go_func(go, fr[i].pc, &f) < 0)
			break;
		if ((i > 0 || !g->trap) && fr[i].pc > f.entry + go->bias && !waspanic)
			tracepc--;
		for (depth = 0; depth < 100; depth++) {
			if (xp_gopclntab_inlined_at(go->t, &f, tracepc - go->bias, &in) < 0)
				break;
			if (all || show(go, in.name, in.funcid, nprint == 0, last)) {
				xp_gopclntab_fileline(go->t, &f, tracepc - go->bias, &file, &line);
				fprintf(out, "%s(...)\n\t%s:%d\n", xp_esc(in.name), file ? xp_esc(file) : "?", line);
				nprint++;
			}
			last = in.name;
			tracepc = f.entry + go->bias + (uint64_t)in.parent_pc;
		}
		if (all || show(go, f.name, f.funcid, nprint == 0, last)) {
			xp_gopclntab_fileline(go->t, &f, tracepc - go->bias, &file, &line);
			fprintf(out, "%s(", strcmp(f.name, "runtime.gopanic") == 0 ? "panic" : xp_esc(f.name));
			print_args(go, g, &f, fr[i].fp, tracepc, out);
			fprintf(out, ")\n\t%s:%d", file ? xp_esc(file) : "?", line);
			if (fr[i].pc > f.entry + go->bias)
				fprintf(out, " +0x%llx", (unsigned long long)(fr[i].pc - f.entry - go->bias));
			fputc('\n', out);
			nprint++;
		}
		last = f.name;
		waspanic = strcmp(f.name, "runtime.sigpanic") == 0;
	}
	return nprint;
}

const char *xp_go_status(struct xp_go *go, const struct xp_goroutine *g)
{
	uint32_t st = g->status & ~STATUS_SCAN;

	if (st == G_WAITING && g->waitreason != 0)
		return g->waitreason < go->nwaitreason ? go->waitreason[g->waitreason] : "unknown wait reason";
	return st < sizeof(gstatus) / sizeof(gstatus[0]) ? gstatus[st] : "???";
}

int xp_go_print(struct xp_go *go, const struct xp_goroutines *gs, const struct xp_goroutine *g, FILE *out)
{
	struct xp_go_frame fr[XP_GO_MAX_FRAMES];
	uint32_t st = g->status & ~STATUS_SCAN;
	int64_t waitfor = 0;
	struct xp_gofunc f;
	size_t n, nprint;
	int complete;

	/* a waitsince from the future (or hostile) is no wait at all */
	if ((st == G_WAITING || st == G_SYSCALL) && g->waitsince > 0 && g->waitsince <= gs->now)
		waitfor = (gs->now - g->waitsince) / 60000000000LL;
	fprintf(out, "goroutine %lld [%s", (long long)g->goid, xp_esc(xp_go_status(go, g)));
	if (g->status & STATUS_SCAN)
		fputs(" (scan)", out);
	if (waitfor >= 1)
		fprintf(out, ", %lld minutes", (long long)waitfor);
	if (g->lockedm)
		fputs(", locked to thread", out);
	fputs("]:\n", out);

	n = xp_go_traceback(go, g, fr, XP_GO_MAX_FRAMES, &complete);
	nprint = print_frames(go, g, fr, n, 0, out);
	if (nprint == 0)
		nprint = print_frames(go, g, fr, n, 1, out);
	if (nprint == XP_GO_MAX_FRAMES)
		fputs("...additional frames elided...\n", out);
	else if (!complete)
		fputs("...stack incomplete: xprof's traceback stopped here...\n", out);

	/* printcreatedby: not for goroutine 1 */
	if (g->goid != 1 && xp_go_func(go, g->gopc, &f) == 0 && show(go, f.name, f.funcid, 0, NULL)) {
		uint64_t tracepc = g->gopc > f.entry + go->bias ? g->gopc - 1 : g->gopc;
		const char *file;
		int line;
		xp_gopclntab_fileline(go->t, &f, tracepc - go->bias, &file, &line);
		fprintf(out, "created by %s\n\t%s:%d", xp_esc(f.name), file ? xp_esc(file) : "?", line);
		if (g->gopc > f.entry + go->bias)
			fprintf(out, " +0x%llx", (unsigned long long)(g->gopc - f.entry - go->bias));
		fputc('\n', out);
	}
	return complete;
}
