/* xprof cpu: where a process spends CPU time (perf_event_open cpu-clock
 * samples, unwound as they arrive so only their pcs are kept) or, with
 * --wall, where every thread is at each tick, running or not (ptrace
 * snapshots).  Attaches to a pid or launches a command.
 *
 * parse options → validate → open the sampler → loop until the duration
 * ends, the target exits or Ctrl-C → symbolize → write pprof, folded or SVG.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "attach/attach.h"
#include "cmd/cmd.h"
#include "cmd/flame.h"
#include "proto/profile.h"
#include "symbolize/symbolize.h"
#include "unwind/unwind.h"

#define FREQ_DEFAULT 99  /* not 100: samples must not phase-lock with 100 Hz timers */
#define FREQ_MAX 10000
#define DURATION_DEFAULT_NS (30LL * 1000000000)
#define FRAMES_MAX (XP_MAX_FRAMES + XP_PERF_KERNEL_FRAMES)
/* Programs one run keeps apart: a target that execs more often than this
 * ends the run (each program's modules stay open until the output). */
#define PROGRAMS_MAX 64
/* --wall: after a stop of T, the next comes no sooner than this many T
 * later, so the target runs at least 90% of the time */
#define WALL_DUTY_GAP 9

enum format { FORMAT_PPROF, FORMAT_FOLDED, FORMAT_SVG };

struct cpu_opts {
	pid_t pid;
	int64_t duration_ns;
	int duration_set;
	int freq;
	const char *out;
	enum format format;
	int wall;
	int no_kernel;
	char **cmd; /* launch mode: the command after -- */
};

/* frame flags */
#define F_CALL 1   /* a return address: look up pc - 1 */
#define F_KERNEL 2 /* a kernel address */

/* One distinct (program, thread, state, stack) and its sample count. */
struct agg {
	uint64_t hash;
	pid_t tid;
	char state;
	uint8_t prog;
	uint32_t n;
	uint64_t count;
	uint64_t *pc;
	uint8_t *flag;
};

struct thread_name {
	pid_t tid;
	char name[64];
};

/* One program the process ran: all of the run, or the part between two
 * execs.  Its samples are unwound and symbolized against its own modules. */
struct program {
	struct xp_maps maps;
	struct xp_space *space;
	struct xp_unwinder *unwinder;
	int dirty;        /* a mapping came in: rebuild the space before unwinding */
	uint64_t since;   /* perf time of the exec that started it; 0 for the first */
	char comm[64];
};

struct cpu_run {
	struct cpu_opts o;
	pid_t pid;
	char comm[64];
	int launched;
	int child_status, child_exited;
	int stop_found_gone;  /* a --wall stop found no thread left: it exited */
	struct xp_mem *live;
	struct program prog[PROGRAMS_MAX];
	size_t nprog;     /* 1 once the first space is open */
	int too_many_execs;
	uint64_t ticks_spaced; /* --wall ticks delayed to keep the pauses under a tenth */
	uint64_t wall_missed, wall_seen; /* --wall: thread samples lost (not stopped in time), of all */
	uint64_t ticks_execd;  /* --wall ticks lost: the target exec'd during each try */
	uint64_t ticks_unstopped; /* --wall ticks lost: no thread stopped in time */
	int wall_refused;      /* --wall: a later stop was refused (-EBUSY: another tracer) */
	uint64_t ticks, ticks_stopped; /* --wall stops, and those that found it SIGSTOPped */
	int left_stopped;      /* the last --wall stop found it SIGSTOPped */
	struct xp_stack *stack;
	struct xp_kallsyms *kallsyms;
	/* aggregation: open addressing over pointers */
	struct agg **tab;
	size_t ntab, nagg;
	struct thread_name *names;
	size_t nnames, names_alloc;
	uint64_t samples, complete;
	int64_t start_ns, start_real_ns, end_ns;
	int kernel;
};

static volatile sig_atomic_t stop_requested;

static void on_stop_signal(int sig)
{
	if (stop_requested) { /* a second Ctrl-C: leave now */
		signal(sig, SIG_DFL);
		raise(sig);
	}
	stop_requested = 1;
}

static void usage(FILE *f)
{
	fputs("usage: xprof cpu -p PID [-d DURATION] [-F HZ] [-o FILE] [--format pprof|folded|svg] [--wall]\n"
	      "       xprof cpu [OPTIONS] -- COMMAND [ARGS...]\n"
	      "\n"
	      "Samples every thread of a running process (or of COMMAND, launched and\n"
	      "profiled until it exits) and writes where the time went.  Stacks are\n"
	      "unwound with DWARF CFI from a copy of each sample's user stack: no frame\n"
	      "pointers needed.  Ctrl-C stops early and still writes the profile.\n"
	      "\n"
	      "  -p, --pid PID       the process to profile\n"
	      "  -d, --duration D    how long: 500ms, 30s, 2m (default 30s; a launched\n"
	      "                      COMMAND: until it exits)\n"
	      "  -F, --freq HZ       samples per second, 1 to 10000 (default 99)\n"
	      "  -o, --output FILE   where to write (default xprof.COMM.PID.cpu.pb.gz,\n"
	      "                      .folded or .svg by format)\n"
	      "      --format F      pprof (default): open with go tool pprof -http=: FILE;\n"
	      "                      folded: collapsed stacks for flamegraph.pl, inferno,\n"
	      "                      speedscope; svg: an interactive flame graph\n"
	      "      --wall          wall-clock: sample every thread, running or blocked,\n"
	      "                      by stopping the process briefly at each tick (ptrace);\n"
	      "                      label state = running, sleeping, disk, stopped\n"
	      "      --no-kernel     leave out kernel frames\n"
	      "  -h, --help          this help\n"
	      "\n"
	      "CPU mode uses perf_event_open (cpu-clock); when that is refused, xprof\n"
	      "says so and samples with --wall instead.  A launched COMMAND is profiled\n"
	      "in its own process: processes it starts are not included.\n"
	      "\n"
	      "Exit status: 0 written, 1 written but the target exited early or samples\n"
	      "were lost, 2 failure, 64 bad usage.\n",
	      f);
}

/* "500ms", "30s", "2m", "1h"; a bare number is seconds. */
static int parse_duration(const char *s, int64_t *ns)
{
	char *end;
	double v;
	int64_t unit;

	errno = 0;
	v = strtod(s, &end);
	if (end == s || errno || v != v)
		return -1;
	if (*end == '\0' || strcmp(end, "s") == 0)
		unit = 1000000000LL;
	else if (strcmp(end, "ms") == 0)
		unit = 1000000LL;
	else if (strcmp(end, "m") == 0)
		unit = 60LL * 1000000000;
	else if (strcmp(end, "h") == 0)
		unit = 3600LL * 1000000000;
	else
		return -2;
	if (v <= 0 || v * (double)unit > 7 * 24 * 3600e9)
		return -3;
	*ns = (int64_t)(v * (double)unit);
	return *ns > 0 ? 0 : -3;
}

static int parse(int argc, char **argv, struct cpu_opts *o)
{
	enum { OPT_FORMAT = 256, OPT_WALL, OPT_NO_KERNEL };
	static const struct option longopts[] = {
		{ "pid", required_argument, NULL, 'p' },
		{ "duration", required_argument, NULL, 'd' },
		{ "freq", required_argument, NULL, 'F' },
		{ "output", required_argument, NULL, 'o' },
		{ "format", required_argument, NULL, OPT_FORMAT },
		{ "wall", no_argument, NULL, OPT_WALL },
		{ "no-kernel", no_argument, NULL, OPT_NO_KERNEL },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	char *end;
	long v;
	int c, rc;

	memset(o, 0, sizeof(*o));
	o->duration_ns = DURATION_DEFAULT_NS;
	o->freq = FREQ_DEFAULT;
	optind = 1;
	/* "+": options stop at the first non-option, the command to launch */
	while ((c = getopt_long(argc, argv, "+p:d:F:o:h", longopts, NULL)) != -1) {
		switch (c) {
		case 'p':
			o->pid = xp_parse_pid(optarg);
			if (o->pid < 0)
				return XP_EXIT_USAGE;
			break;
		case 'd':
			o->duration_set = 1;
			rc = parse_duration(optarg, &o->duration_ns);
			if (rc == -2) {
				xp_msg("cpu: unknown duration unit in '%s': use ms, s, m or h (500ms, 30s, 2m)", optarg);
				return XP_EXIT_USAGE;
			}
			if (rc < 0) {
				xp_msg("cpu: invalid duration '%s': want a positive time such as 500ms, 30s or 2m", optarg);
				return XP_EXIT_USAGE;
			}
			break;
		case 'F':
			errno = 0;
			v = strtol(optarg, &end, 10);
			if (!*optarg || *end || errno || v < 1 || v > FREQ_MAX) {
				xp_msg("cpu: invalid frequency '%s': want 1 to %d samples per second", optarg, FREQ_MAX);
				return XP_EXIT_USAGE;
			}
			o->freq = (int)v;
			break;
		case 'o':
			if (xp_parse_output("cpu", optarg, &o->out) < 0)
				return XP_EXIT_USAGE;
			break;
		case OPT_FORMAT:
			if (strcmp(optarg, "pprof") == 0)
				o->format = FORMAT_PPROF;
			else if (strcmp(optarg, "folded") == 0)
				o->format = FORMAT_FOLDED;
			else if (strcmp(optarg, "svg") == 0)
				o->format = FORMAT_SVG;
			else {
				xp_msg("cpu: unknown format '%s': want pprof, folded or svg", optarg);
				return XP_EXIT_USAGE;
			}
			break;
		case OPT_WALL:
			o->wall = 1;
			break;
		case OPT_NO_KERNEL:
			o->no_kernel = 1;
			break;
		case 'h':
			usage(stdout);
			return XP_EXIT_OK;
		default:
			fputs("try 'xprof cpu --help'\n", stderr);
			return XP_EXIT_USAGE;
		}
	}
	if (optind < argc) {
		if (strcmp(argv[optind - 1], "--") != 0) {
			xp_msg("cpu: unexpected argument '%s' (a command to launch goes after --)", argv[optind]);
			return XP_EXIT_USAGE;
		}
		o->cmd = &argv[optind];
	}
	if (o->cmd && o->pid > 0) {
		xp_msg("cpu: give -p PID or a command after --, not both");
		return XP_EXIT_USAGE;
	}
	if (!o->cmd && o->pid <= 0) {
		xp_msg("cpu: -p PID or -- COMMAND is required (try 'xprof cpu --help')");
		return XP_EXIT_USAGE;
	}
	/* a launched command is profiled until it exits, unless -d says less */
	if (o->cmd && !o->duration_set)
		o->duration_ns = INT64_MAX / 2;
	return -1;
}

/* ---- aggregation ------------------------------------------------------ */

static uint64_t hash_stack(unsigned prog, pid_t tid, char state, const uint64_t *pc, const uint8_t *flag,
			   size_t n)
{
	uint64_t h = 1469598103934665603ULL ^ (uint64_t)tid ^ ((uint64_t)(unsigned char)state << 32) ^
		     ((uint64_t)prog << 40);
	size_t i;

	for (i = 0; i < n; i++) {
		h = (h ^ pc[i] ^ ((uint64_t)flag[i] << 60)) * 1099511628211ULL;
		h ^= h >> 29;
	}
	return h;
}

static int agg_grow(struct cpu_run *r)
{
	size_t n = r->ntab ? r->ntab * 2 : 4096, i;
	struct agg **t = calloc(n, sizeof(*t));

	if (!t)
		return -ENOMEM;
	for (i = 0; i < r->ntab; i++) {
		size_t h;
		if (!r->tab[i])
			continue;
		for (h = r->tab[i]->hash & (n - 1); t[h]; h = (h + 1) & (n - 1))
			;
		t[h] = r->tab[i];
	}
	free(r->tab);
	r->tab = t;
	r->ntab = n;
	return 0;
}

static int agg_add(struct cpu_run *r, unsigned prog, pid_t tid, char state, const uint64_t *pc,
		   const uint8_t *flag, size_t n)
{
	uint64_t hash = hash_stack(prog, tid, state, pc, flag, n);
	struct agg *a;
	size_t h;

	if ((r->nagg + 1) * 2 > r->ntab && agg_grow(r) < 0)
		return -ENOMEM;
	for (h = hash & (r->ntab - 1); (a = r->tab[h]) != NULL; h = (h + 1) & (r->ntab - 1)) {
		if (a->hash == hash && a->tid == tid && a->state == state && a->prog == prog && a->n == n &&
		    memcmp(a->pc, pc, n * sizeof(*pc)) == 0 && memcmp(a->flag, flag, n) == 0) {
			a->count++;
			return 0;
		}
	}
	a = malloc(sizeof(*a) + n * (sizeof(*pc) + 1));
	if (!a)
		return -ENOMEM;
	a->hash = hash;
	a->tid = tid;
	a->state = state;
	a->prog = (uint8_t)prog;
	a->n = (uint32_t)n;
	a->count = 1;
	a->pc = (uint64_t *)(a + 1);
	a->flag = (uint8_t *)(a->pc + n);
	memcpy(a->pc, pc, n * sizeof(*pc));
	memcpy(a->flag, flag, n);
	r->tab[h] = a;
	r->nagg++;
	return 0;
}

static const char *thread_name(struct cpu_run *r, pid_t tid)
{
	char path[96], buf[64];
	struct thread_name *t;
	size_t i;
	int fd;
	ssize_t n;

	for (i = 0; i < r->nnames; i++)
		if (r->names[i].tid == tid)
			return r->names[i].name;
	if (r->nnames == r->names_alloc) {
		size_t na = r->names_alloc ? r->names_alloc * 2 : 64;
		struct thread_name *v = realloc(r->names, na * sizeof(*v));
		if (!v)
			return "?";
		r->names = v;
		r->names_alloc = na;
	}
	t = &r->names[r->nnames++];
	t->tid = tid;
	snprintf(t->name, sizeof(t->name), "?");
	snprintf(path, sizeof(path), "/proc/%d/task/%d/comm", (int)r->pid, (int)tid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd >= 0) {
		n = read(fd, buf, sizeof(buf) - 1);
		close(fd);
		if (n > 0) {
			buf[n] = '\0';
			buf[strcspn(buf, "\n")] = '\0';
			if (buf[0])
				snprintf(t->name, sizeof(t->name), "%s", buf);
		}
	}
	return t->name;
}

/* ---- the address space -------------------------------------------------- */

/* (Re)builds a program's modules and unwinder from its maps. */
static int build_space(struct cpu_run *r, struct program *g)
{
	int err;

	xp_unwinder_free(g->unwinder);
	g->unwinder = NULL;
	xp_space_close(g->space);
	g->space = NULL;
	g->dirty = 0;
	err = xp_space_open(r->pid, &g->maps, r->live, r->launched ? XP_SPACE_OWN_NAMESPACE : 0, &g->space);
	if (err == 0)
		err = xp_unwinder_new(g->space, &g->unwinder);
	return err;
}

/* The modules as /proc/PID/maps lists them now: at the start of an
 * attached run, right after a launched command's exec. */
static int open_space(struct cpu_run *r)
{
	struct program *g = &r->prog[0];
	int err;

	if (r->nprog)
		return 0;
	xp_maps_free(&g->maps);
	if ((err = xp_maps_read(r->pid, &g->maps)) < 0)
		return err;
	snprintf(g->comm, sizeof(g->comm), "%s", r->comm);
	r->nprog = 1;
	return build_space(r, g);
}

static void program_free(struct program *g)
{
	xp_unwinder_free(g->unwinder);
	xp_space_close(g->space);
	xp_maps_free(&g->maps);
	memset(g, 0, sizeof(*g));
}

/* The program that ran at perf time t: the last one started by then. */
static unsigned program_at(const struct cpu_run *r, uint64_t t)
{
	unsigned k = r->nprog ? (unsigned)r->nprog - 1 : 0;

	while (k > 0 && r->prog[k].since > t)
		k--;
	return k;
}

/* The process exec'd: what follows belongs to a new program, with modules
 * of its own (its mappings come as PERF_RECORD_MMAP2 right after).  The old
 * program's space stays open: its samples are symbolized with it. */
static void start_program(struct cpu_run *r, uint64_t since, const char *comm)
{
	struct program *g;

	if (r->nprog == 0)
		return;
	if (r->nprog == PROGRAMS_MAX) {
		r->too_many_execs = 1;
		return;
	}
	g = &r->prog[r->nprog++];
	memset(g, 0, sizeof(*g));
	g->since = since;
	g->dirty = 1;
	xp_escape(comm, g->comm, sizeof(g->comm));
	xp_escape(comm, r->comm, sizeof(r->comm));
}

static void on_perf_exec(const struct xp_perf_exec *e, void *arg)
{
	start_program(arg, e->time, e->comm);
}

/* A mapping reported while sampling (PERF_RECORD_MMAP2): it replaces what
 * it overlaps in the program that made it; that program's space is rebuilt
 * before its next unwind. */
static void on_perf_mapping(const struct xp_perf_mapping *m, void *arg)
{
	struct cpu_run *r = arg;
	struct program *g;
	struct xp_map *v, nm;
	size_t i, k = 0;

	if (!(m->prot & PROT_EXEC) || m->len == 0 || m->addr + m->len < m->addr ||
	    (m->filename[0] != '/' && strcmp(m->filename, "[vdso]") != 0))
		return;
	memset(&nm, 0, sizeof(nm));
	nm.start = m->addr;
	nm.end = m->addr + m->len;
	nm.offset = m->pgoff;
	nm.inode = m->inode;
	nm.major = m->major;
	nm.minor = m->minor;
	memcpy(nm.perms, "r-xp", 5);
	if (r->nprog == 0)
		return;
	g = &r->prog[program_at(r, m->time)];
	nm.path = strdup(m->filename);
	v = malloc((g->maps.n + 1) * sizeof(*v));
	if (!nm.path || !v) {
		free(nm.path);
		free(v);
		return;
	}
	for (i = 0; i < g->maps.n; i++) {
		struct xp_map *o = &g->maps.v[i];
		if (o->start < nm.end && nm.start < o->end) {
			free(o->path); /* replaced */
			continue;
		}
		if (nm.path && o->start >= nm.end) {
			v[k++] = nm;
			nm.path = NULL;
		}
		v[k++] = *o;
	}
	if (nm.path)
		v[k++] = nm;
	free(g->maps.v);
	g->maps.v = v;
	g->maps.n = k;
	g->dirty = 1;
}

/* ---- one sample --------------------------------------------------------- */

/* prog: the program that ran; kips: kernel frames, innermost first; regs
 * and mem: the user context to unwind (mem reads the copied stack), or NULL. */
static void add_sample(struct cpu_run *r, unsigned prog, pid_t tid, char state, const uint64_t *kips,
		       size_t nk, const struct user_regs_struct *regs, struct xp_mem *mem)
{
	struct program *g = &r->prog[prog];
	uint64_t pc[FRAMES_MAX];
	uint8_t flag[FRAMES_MAX];
	size_t n = 0, i;

	for (i = 0; i < nk && n < FRAMES_MAX; i++, n++) {
		pc[n] = kips[i];
		flag[n] = F_KERNEL | (i > 0 ? F_CALL : 0);
	}
	if (g->dirty)
		build_space(r, g);
	if (regs && mem && g->unwinder) {
		xp_unwind(g->unwinder, regs, mem, r->stack);
		for (i = 0; i < r->stack->n && n < FRAMES_MAX; i++, n++) {
			pc[n] = r->stack->pc[i];
			flag[n] = r->stack->is_call[i] ? F_CALL : 0;
		}
		r->complete += r->stack->complete;
	}
	r->samples++;
	if (n > 0)
		agg_add(r, prog, tid, state, pc, flag, n); /* on -ENOMEM the sample is counted, not kept */
}

static void on_perf_sample(const struct xp_perf_sample *s, void *arg)
{
	struct cpu_run *r = arg;
	struct xp_region stack = { s->stack_addr, s->stack_len, s->stack };
	/* only the copied stack: a read outside it would be a racy live read */
	struct xp_mem *mem = xp_mem_snapshot(&stack, s->stack_len ? 1 : 0, NULL);

	thread_name(r, s->tid);
	if (r->nprog)
		add_sample(r, program_at(r, s->time), s->tid, 'R', s->kernel_ips, s->nkernel,
			   s->have_regs ? &s->regs : NULL, mem);
	xp_mem_close(mem);
}

/* ---- running --------------------------------------------------------- */

static int target_gone(struct cpu_run *r)
{
	char path[64], buf[512], comm[64], state;
	int fd;
	ssize_t n;

	if (r->launched) {
		int status;
		pid_t w;
		if (r->child_exited)
			return 1;
		w = waitpid(r->pid, &status, WNOHANG);
		if (w == r->pid) {
			r->child_exited = 1;
			r->child_status = status;
		} else if (w < 0 && errno == ECHILD) {
			/* reaped by a --wall snapshot's waitpid: gone, status unknown */
			r->child_exited = -1;
		}
		return r->child_exited != 0;
	}
	if (!xp_proc_alive(r->pid))
		return 1; /* whatever holds its pid now is another process */
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)r->pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 1;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return 1;
	buf[n] = '\0';
	/* a zombie leader with no threads left is gone too */
	if (sscanf(buf, "%*d (%63[^)]) %c", comm, &state) == 2 && (state == 'Z' || state == 'X')) {
		snprintf(path, sizeof(path), "/proc/%d/task", (int)r->pid);
		return access(path, F_OK) != 0 || state == 'X';
	}
	return 0;
}

static void progress(struct cpu_run *r, int64_t now, int final)
{
	static int64_t last;

	if (!isatty(2))
		return;
	if (final) {
		fputs("\r\033[K", stderr);
		return;
	}
	if (now - last < 250000000)
		return;
	last = now;
	if (r->o.duration_set || !r->launched)
		fprintf(stderr, "\rxprof: %.1fs of %.0fs, %" PRIu64 " samples, %zu threads\033[K",
			(now - r->start_ns) / 1e9, r->o.duration_ns / 1e9, r->samples, r->nnames);
	else
		fprintf(stderr, "\rxprof: %.1fs, %" PRIu64 " samples, %zu threads\033[K",
			(now - r->start_ns) / 1e9, r->samples, r->nnames);
}

static const struct xp_perf_handlers perf_handlers = {
	.sample = on_perf_sample,
	.mapping = on_perf_mapping,
	.exec = on_perf_exec,
};

static int run_perf(struct cpu_run *r, struct xp_perf *perf)
{
	int64_t deadline = r->start_ns + r->o.duration_ns, now;
	int n;

	while (!stop_requested && (now = xp_now_ns()) < deadline) {
		int64_t left_ms = (deadline - now) / 1000000;
		n = xp_perf_read(perf, left_ms < 100 ? (int)left_ms + 1 : 100, &perf_handlers, r);
		if (n < 0)
			return n;
		progress(r, xp_now_ns(), 0);
		if (target_gone(r) || r->too_many_execs)
			break;
	}
	/* what is still in the buffers */
	n = xp_perf_read(perf, 0, &perf_handlers, r);
	return n < 0 ? n : 0;
}

static int same_map(const struct xp_map *a, const struct xp_map *b)
{
	return a->start == b->start && a->end == b->end && a->inode == b->inode && strcmp(a->path, b->path) == 0;
}

static int is_file_code(const struct xp_map *m)
{
	return m->perms[2] == 'x' && m->path[0] == '/';
}

/* 1 when maps holds a mapping the same as m. */
static int has_map(const struct xp_maps *maps, const struct xp_map *m)
{
	const struct xp_map *f = xp_maps_find(maps, m->start);

	return f && same_map(f, m);
}

static int maps_copy(const struct xp_maps *from, struct xp_maps *to)
{
	to->v = calloc(from->n ? from->n : 1, sizeof(*to->v));
	to->n = 0;
	if (!to->v)
		return -ENOMEM;
	for (; to->n < from->n; to->n++) {
		to->v[to->n] = from->v[to->n];
		if (!(to->v[to->n].path = strdup(from->v[to->n].path))) {
			xp_maps_free(to);
			return -ENOMEM;
		}
	}
	return 0;
}

/* --wall: the maps of each stop against the current program's.  Its main
 * executable gone means an exec (a new program); new code mapped means a
 * library loaded (the space is rebuilt).  Unmapped code changes nothing. */
static void follow_maps(struct cpu_run *r, const struct xp_maps *now)
{
	struct program *g = &r->prog[r->nprog - 1];
	const struct xp_map *main_map = NULL;
	struct xp_maps copy;
	size_t i;
	int grew = 0;

	for (i = 0; i < g->maps.n && !main_map; i++)
		if (is_file_code(&g->maps.v[i]))
			main_map = &g->maps.v[i];
	for (i = 0; i < now->n && !grew; i++)
		grew = is_file_code(&now->v[i]) && !has_map(&g->maps, &now->v[i]);
	if (!grew && (!main_map || has_map(now, main_map)))
		return;
	if (maps_copy(now, &copy) < 0)
		return;
	if (main_map && !has_map(now, main_map)) {
		char path[64], comm[64] = "";
		int fd, n;
		snprintf(path, sizeof(path), "/proc/%d/comm", (int)r->pid);
		if ((fd = open(path, O_RDONLY | O_CLOEXEC)) >= 0) {
			n = (int)read(fd, comm, sizeof(comm) - 1);
			comm[n > 0 ? n : 0] = '\0';
			comm[strcspn(comm, "\n")] = '\0';
			close(fd);
		}
		start_program(r, (uint64_t)xp_now_ns(), comm[0] ? comm : r->comm);
		if (r->too_many_execs) {
			xp_maps_free(&copy);
			return;
		}
		g = &r->prog[r->nprog - 1];
	}
	xp_maps_free(&g->maps);
	g->maps = copy;
	g->dirty = 1;
}

static int run_wall(struct cpu_run *r)
{
	int64_t period = 1000000000LL / r->o.freq;
	int64_t deadline = r->start_ns + r->o.duration_ns, next = r->start_ns;
	int err;

	while (!stop_requested && xp_now_ns() < deadline) {
		struct xp_snapshot snap;
		struct xp_mem *mem;
		int64_t stopped = 0;
		size_t i;

		err = xp_snapshot_take(r->pid, &snap);
		if (err == -ESRCH)
			r->stop_found_gone = 1;
		if (err == -ESRCH || target_gone(r))
			break;
		if (err == -EAGAIN || err == -ETIMEDOUT) {
			/* it exec'd during every try, or no thread would stop */
			if (err == -EAGAIN)
				r->ticks_execd++;
			else
				r->ticks_unstopped++;
			goto next_tick;
		}
		/* a tracer (a debugger) that came after the first stop: the
		 * run ends with what it has */
		if ((err == -EBUSY || err == -EPERM) && r->samples > 0) {
			r->wall_refused = err;
			break;
		}
		if (err < 0)
			return err;
		if (open_space(r) < 0) {
			xp_snapshot_free(&snap);
			return -ESRCH;
		}
		follow_maps(r, &snap.maps);
		if (r->too_many_execs) {
			xp_snapshot_free(&snap);
			break;
		}
		mem = xp_mem_snapshot(snap.regions, snap.nregions, NULL);
		for (i = 0; mem && i < snap.nthreads; i++) {
			const struct xp_thread *t = &snap.threads[i];
			/* a thread in group stop (SIGSTOP) is not running */
			char state = t->state == 'S' || t->state == 'D' || t->state == 'T' ? t->state : 'R';
			if (t->group_stopped)
				state = 'T';
			r->wall_seen++;
			if (!t->stopped) {
				r->wall_missed++;
				continue;
			}
			thread_name(r, t->tid);
			add_sample(r, (unsigned)r->nprog - 1, t->tid, state, NULL, 0, &t->regs, mem);
		}
		xp_mem_close(mem);
		r->ticks++;
		r->ticks_stopped += snap.process_was_stopped != 0;
		r->left_stopped = snap.process_was_stopped != 0;
		stopped = snap.stopped_ns;
		xp_snapshot_free(&snap);
next_tick:
		progress(r, xp_now_ns(), 0);
		next += period;
		/* the target is stopped at most a tenth of the time: a process
		 * of many threads gets fewer ticks, not a longer pause */
		if (next < xp_now_ns() + WALL_DUTY_GAP * stopped) {
			next = xp_now_ns() + WALL_DUTY_GAP * stopped;
			r->ticks_spaced++;
		}
		while (!stop_requested) {
			int64_t now = xp_now_ns(), wait = next - now;
			struct timespec ts;
			if (wait <= 0)
				break;
			if (now + wait > deadline)
				wait = deadline - now;
			if (wait <= 0)
				break;
			ts.tv_sec = wait / 1000000000;
			ts.tv_nsec = wait % 1000000000;
			if (nanosleep(&ts, NULL) == 0)
				break;
		}
		if (xp_now_ns() > next + period && !r->ticks_spaced) /* fell behind: skip, don't burst */
			next = xp_now_ns();
	}
	return 0;
}

/* ---- launching ---------------------------------------------------------- */

/* Forks COMMAND held before its exec, so sampling can be set up first;
 * release_child lets it exec.  The exec's errno comes back through a
 * close-on-exec pipe: end of file means the exec happened. */
struct child {
	pid_t pid;
	int go;      /* write end: a byte lets the child exec */
	int errfd;   /* read end: the exec's errno, or EOF */
};

/* stdout_taken: the profile goes to standard output (-o -), so the
 * command's own output goes to standard error instead. */
static int spawn_held(char **cmd, struct child *c, int stdout_taken)
{
	int go[2], err[2];

	if (pipe2(go, O_CLOEXEC) < 0)
		return -errno;
	if (pipe2(err, O_CLOEXEC) < 0) {
		int e = -errno;
		close(go[0]);
		close(go[1]);
		return e;
	}
	c->pid = fork();
	if (c->pid < 0) {
		int e = -errno;
		close(go[0]);
		close(go[1]);
		close(err[0]);
		close(err[1]);
		return e;
	}
	if (c->pid == 0) {
		char b;
		int e;
		signal(SIGPIPE, SIG_DFL);
		close(go[1]);
		close(err[0]);
		if (read(go[0], &b, 1) != 1)
			_exit(127); /* xprof gave up */
		if (stdout_taken && dup2(STDERR_FILENO, STDOUT_FILENO) < 0)
			_exit(127);
		execvp(cmd[0], cmd);
		e = errno;
		if (write(err[1], &e, sizeof(e)) < 0)
			_exit(127);
		_exit(127);
	}
	close(go[0]);
	close(err[1]);
	c->go = go[1];
	c->errfd = err[0];
	return 0;
}

/* 0 once the child has exec'd, else -errno of the failed exec. */
static int release_child(struct child *c)
{
	int e = 0;
	ssize_t n;

	if (write(c->go, "x", 1) != 1)
		e = errno;
	close(c->go);
	do
		n = read(c->errfd, &e, sizeof(e));
	while (n < 0 && errno == EINTR);
	close(c->errfd);
	return n == (ssize_t)sizeof(e) ? -e : 0;
}

/* ---- output --------------------------------------------------------------- */

static int64_t kernel_mapping(struct xp_profile *p, struct cpu_run *r)
{
	struct xp_pmapping m = {
		.start = 0xffff800000000000ULL,
		.limit = 0xffffffffffffffffULL,
		.file = "[kernel.kallsyms]",
		.has_functions = r->kallsyms != NULL,
	};

	return xp_profile_mapping(p, &m);
}

static int kernel_location(struct xp_profile *p, struct cpu_run *r, uint64_t pc, int is_call,
			   uint64_t *id)
{
	uint64_t off;
	const char *name = xp_kallsyms_lookup(r->kallsyms, pc - (is_call ? 1 : 0), &off);
	int64_t mid = kernel_mapping(p, r), fid, lid;
	struct xp_pline line;

	if (mid < 0)
		return (int)mid;
	if (!name) {
		lid = xp_profile_location(p, (uint64_t)mid, pc - (is_call ? 1 : 0), NULL, 0);
	} else {
		fid = xp_profile_function(p, name, name, "", 0);
		if (fid < 0)
			return (int)fid;
		line.function_id = (uint64_t)fid;
		line.line = 0;
		lid = xp_profile_location(p, (uint64_t)mid, pc - (is_call ? 1 : 0), &line, 1);
	}
	if (lid < 0)
		return (int)lid;
	*id = (uint64_t)lid;
	return 0;
}

static const char *state_word(char state)
{
	return state == 'S' ? "sleeping" : state == 'D' ? "disk" : state == 'T' ? "stopped" : "running";
}

static int write_pprof(struct cpu_run *r, const char *path)
{
	struct xp_profile *p = xp_profile_new();
	int64_t period = 1000000000LL / r->o.freq;
	const char *vtype = r->o.wall ? "wall" : "cpu";
	uint64_t ids[FRAMES_MAX];
	unsigned char is_call[FRAMES_MAX];
	size_t i, k;
	int err;

	if (!p)
		return -ENOMEM;
	if ((err = xp_profile_add_sample_type(p, "samples", "count")) < 0 ||
	    (err = xp_profile_add_sample_type(p, vtype, "nanoseconds")) < 0 ||
	    (err = xp_profile_set_period(p, vtype, "nanoseconds", period)) < 0)
		goto out;
	xp_profile_set_time(p, r->start_real_ns, r->end_ns - r->start_ns);
	if (r->nprog && r->prog[0].space &&
	    (err = xp_profile_main_mapping(p, r->prog[0].space, &r->prog[0].maps)) < 0)
		goto out;
	for (i = 0; i < r->ntab; i++) {
		struct agg *a = r->tab[i];
		struct xp_space *space;
		int64_t values[2];
		struct xp_plabel labels[3];
		size_t nl = 2, first_user;

		if (!a)
			continue;
		space = a->prog < r->nprog ? r->prog[a->prog].space : NULL;
		for (k = 0; k < a->n && (a->flag[k] & F_KERNEL); k++) {
			err = kernel_location(p, r, a->pc[k], a->flag[k] & F_CALL, &ids[k]);
			if (err < 0)
				goto out;
		}
		first_user = k;
		for (; k < a->n; k++)
			is_call[k] = (a->flag[k] & F_CALL) != 0;
		if (a->n > first_user && space) {
			err = xp_stack_locations(p, space, a->pc + first_user, is_call + first_user,
						 a->n - first_user, ids + first_user);
			if (err < 0)
				goto out;
		}
		values[0] = (int64_t)a->count;
		values[1] = (int64_t)a->count * period;
		labels[0] = (struct xp_plabel){ .key = "thread", .str = thread_name(r, a->tid) };
		labels[1] = (struct xp_plabel){ .key = "tid", .num = a->tid };
		if (r->o.wall)
			labels[nl++] = (struct xp_plabel){ .key = "state", .str = state_word(a->state) };
		err = xp_profile_add_sample(p, ids, space ? a->n : first_user, values, 2, labels, nl);
		if (err < 0)
			goto out;
	}
	err = xp_profile_write(p, path);
out:
	xp_profile_free(p);
	return err;
}

/* Frame names of one aggregated stack, root first, for flame graphs:
 * inline frames expanded, kernel frames marked _[k]. */
static size_t stack_names(struct cpu_run *r, const struct agg *a, char **names, size_t max)
{
	struct xp_space *space = a->prog < r->nprog ? r->prog[a->prog].space : NULL;
	size_t n = 0, k, j;

	for (k = a->n; k-- > 0 && n < max;) {
		if (a->flag[k] & F_KERNEL) {
			uint64_t off;
			const char *name = xp_kallsyms_lookup(r->kallsyms, a->pc[k], &off);
			if (asprintf(&names[n], "%s_[k]", name ? name : "[unknown]") >= 0)
				n++;
			continue;
		}
		const struct xp_sym *s = space ? xp_symbolize(space, a->pc[k], a->flag[k] & F_CALL) : NULL;
		if (!s || s->nframes == 0) {
			const struct xp_module *m = s ? s->module : NULL;
			const char *base = m ? strrchr(m->path, '/') : NULL;
			if (asprintf(&names[n], "[%s+0x%" PRIx64 "]", base ? base + 1 : "unknown",
				     m ? a->pc[k] - m->start + m->offset : a->pc[k]) >= 0)
				n++;
			continue;
		}
		/* the inline chain is innermost first: root first is its reverse */
		for (j = s->nframes; j-- > 0 && n < max;)
			if ((names[n] = strdup(s->frames[j].function)) != NULL)
				n++;
	}
	return n;
}

static int write_flame(struct cpu_run *r, const char *path)
{
	struct xp_flame_stack *v = calloc(r->nagg ? r->nagg : 1, sizeof(*v));
	char title[256];
	size_t i, k, n = 0;
	int err = -ENOMEM;

	if (!v)
		return -ENOMEM;
	for (i = 0; i < r->ntab; i++) {
		struct agg *a = r->tab[i];
		size_t max;
		char **names;
		if (!a)
			continue;
		/* each pc may expand into its inline chain */
		max = (size_t)a->n * 8 + 1;
		names = calloc(max, sizeof(*names));
		if (!names)
			goto out;
		v[n].nframes = stack_names(r, a, names, max);
		v[n].frames = (const char *const *)names;
		v[n].value = a->count;
		n++;
	}
	if (r->o.format == FORMAT_FOLDED) {
		err = xp_folded_write(path, v, n);
	} else {
		snprintf(title, sizeof(title), "%s profile of %s (pid %d), %.1f s at %d Hz",
			 r->o.wall ? "Wall-clock" : "CPU", r->comm, (int)r->pid,
			 (r->end_ns - r->start_ns) / 1e9, r->o.freq);
		err = xp_flamegraph_write(path, title, "samples", v, n);
	}
out:
	for (i = 0; i < n; i++) {
		for (k = 0; k < v[i].nframes; k++)
			free((char *)v[i].frames[k]);
		free((void *)v[i].frames);
	}
	free(v);
	return err;
}

/* ---- the command ---------------------------------------------------------- */

static void run_free(struct cpu_run *r)
{
	size_t i;

	for (i = 0; i < r->ntab; i++)
		free(r->tab[i]);
	free(r->tab);
	free(r->names);
	free(r->stack);
	for (i = 0; i < r->nprog; i++)
		program_free(&r->prog[i]);
	xp_mem_close(r->live);
	xp_kallsyms_free(r->kallsyms);
}

static void install_stop_signals(void)
{
	static const int sigs[] = { SIGINT, SIGTERM, SIGHUP };
	struct sigaction sa;
	size_t i;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_stop_signal; /* no SA_RESTART: poll and sleeps return */
	for (i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
		sigaction(sigs[i], &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
}

static int perf_paranoid(void)
{
	FILE *f = fopen("/proc/sys/kernel/perf_event_paranoid", "re");
	int v = 2; /* the kernel's default */

	if (f) {
		if (fscanf(f, "%d", &v) != 1)
			v = 2;
		fclose(f);
	}
	return v;
}

int cmd_cpu(int argc, char **argv)
{
	struct cpu_run r;
	struct xp_perf *perf = NULL;
	struct child child = { -1, -1, -1 };
	char defpath[256], why[256];
	const char *path;
	uint64_t lost = 0;
	int rc, err, gone = 0;
	size_t i;

	memset(&r, 0, sizeof(r));
	rc = parse(argc, argv, &r.o);
	if (rc >= 0)
		return rc;
	if (r.o.out && xp_check_output(r.o.out, r.o.format == FORMAT_PPROF) < 0)
		return XP_EXIT_FATAL;
	r.stack = malloc(sizeof(*r.stack));
	if (!r.stack)
		return XP_EXIT_FATAL;

	if (r.o.cmd) {
		err = spawn_held(r.o.cmd, &child, r.o.out && strcmp(r.o.out, "-") == 0);
		if (err < 0) {
			xp_msg("cannot start %s: %s", r.o.cmd[0], strerror(-err));
			run_free(&r);
			return XP_EXIT_FATAL;
		}
		r.pid = child.pid;
		r.launched = 1;
		xp_escape(strrchr(r.o.cmd[0], '/') ? strrchr(r.o.cmd[0], '/') + 1 : r.o.cmd[0], r.comm, sizeof(r.comm));
	} else {
		r.pid = xp_check_target_for(r.o.pid, r.comm, sizeof(r.comm), r.o.wall);
		if (r.pid < 0) {
			run_free(&r);
			return XP_EXIT_FATAL;
		}
	}
	r.live = xp_mem_process(r.pid);
	install_stop_signals();

	if (!r.o.wall) {
		struct xp_perf_opts po = {
			.pid = r.pid,
			.freq = r.o.freq,
			.stack_bytes = XP_PERF_STACK_DEFAULT,
			.kernel = !r.o.no_kernel,
			.enable_on_exec = r.launched,
		};
		err = xp_perf_open(&po, &perf);
		if ((err == -EACCES || err == -EPERM) && !r.launched &&
		    xp_explain_eperm(r.pid, why, sizeof(why)) == XP_EPERM_CREDENTIALS) {
			/* ptrace would be refused the same: no --wall fallback */
			xp_msg("cannot sample pid %d: operation not permitted (%s)", (int)r.pid, why);
			run_free(&r);
			return XP_EXIT_FATAL;
		} else if (err == -EACCES || err == -EPERM) {
			xp_msg("perf_event_open refused for pid %d (kernel.perf_event_paranoid is %d and xprof "
			       "lacks CAP_PERFMON): sampling with --wall (ptrace) instead",
			       (int)r.pid, perf_paranoid());
			r.o.wall = 1;
		} else if (err == -EMFILE || err == -ENFILE) {
			struct rlimit rl = { 0, 0 };
			getrlimit(RLIMIT_NOFILE, &rl);
			xp_msg("pid %d has too many threads for one perf event per thread and CPU within the "
			       "open-file limit (%llu; ulimit -n): sampling with --wall (ptrace) instead",
			       (int)r.pid, (unsigned long long)rl.rlim_cur);
			r.o.wall = 1;
		} else if (err < 0) {
			if (r.launched)
				kill(r.pid, SIGKILL), waitpid(r.pid, NULL, 0);
			xp_msg("cannot sample pid %d: %s", (int)r.pid, strerror(-err));
			run_free(&r);
			return XP_EXIT_FATAL;
		} else {
			r.kernel = xp_perf_kernel(perf);
		}
	}
	if (r.launched) {
		err = release_child(&child);
		if (err < 0) {
			waitpid(r.pid, NULL, 0);
			xp_msg("cannot run %s: %s", r.o.cmd[0], strerror(-err));
			xp_perf_close(perf);
			run_free(&r);
			return XP_EXIT_FATAL;
		}
	}
	if (!r.o.out) {
		static const char *const ext[] = { "pb.gz", "folded", "svg" };
		char kind[16];
		snprintf(kind, sizeof(kind), "cpu.%s", ext[r.o.format]);
		xp_default_output(defpath, sizeof(defpath), r.comm, r.pid, kind);
	}
	path = r.o.out ? r.o.out : defpath;

	r.start_ns = xp_now_ns();
	{
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		r.start_real_ns = (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
	}
	if (!r.o.wall) {
		/* know the modules before the first sample: an attached process's
		 * now, a launched command's as its exec left them (its libraries
		 * arrive as PERF_RECORD_MMAP2) */
		if ((err = open_space(&r)) < 0) {
			xp_msg("cannot read the memory map of pid %d: %s", (int)r.pid, strerror(-err));
			xp_perf_close(perf);
			run_free(&r);
			return XP_EXIT_FATAL;
		}
	}
	err = r.o.wall ? run_wall(&r) : run_perf(&r, perf);
	r.end_ns = xp_now_ns();
	progress(&r, r.end_ns, 1);
	/* a stop that found no thread knows; the pid may already be reused */
	gone = r.stop_found_gone || target_gone(&r);
	if (perf) {
		lost = xp_perf_lost(perf);
		xp_perf_close(perf);
	}
	rc = lost ? XP_EXIT_PARTIAL : XP_EXIT_OK;
	if (err < 0) {
		xp_report_attach_error(r.pid, err);
		run_free(&r);
		return XP_EXIT_FATAL;
	}
	if (r.samples == 0 && (r.ticks_execd || r.ticks_unstopped)) {
		xp_msg("no samples: at every tick pid %d %s; nothing written", (int)r.pid,
		       r.ticks_execd ? "exec'd during each try to stop it" : "had no thread that would stop in time");
		run_free(&r);
		return XP_EXIT_FATAL;
	}
	if (r.samples == 0) {
		xp_msg("no samples: pid %d did not run on a CPU%s; nothing written", (int)r.pid,
		       r.o.wall ? "" : " while sampled (try --wall to see where its threads wait)");
		run_free(&r);
		return XP_EXIT_FATAL;
	}

	/* only now: reading kallsyms takes ~100 ms of CPU the target would feel */
	if (r.kernel)
		r.kallsyms = xp_kallsyms_load();
	for (i = 0; i < r.nprog; i++)
		if (r.prog[i].dirty)
			build_space(&r, &r.prog[i]);
	err = r.o.format == FORMAT_PPROF ? write_pprof(&r, path) : write_flame(&r, path);
	if (err < 0) {
		xp_msg("cannot write %s: %s", xp_esc(path), strerror(-err));
		run_free(&r);
		return XP_EXIT_FATAL;
	}
	xp_msg("%s (pid %d): %" PRIu64 " samples over %.1f s at %d Hz, %zu threads, %.1f%% with a complete stack, %" PRIu64 " lost%s",
	       r.comm, (int)r.pid, r.samples, (r.end_ns - r.start_ns) / 1e9, r.o.freq, r.nnames,
	       r.samples ? 100.0 * (double)r.complete / (double)r.samples : 0.0, lost,
	       r.o.wall ? ", wall-clock" : r.kernel ? ", kernel frames included" : "");
	if (lost)
		xp_msg("%" PRIu64 " samples were lost: the ring buffers filled faster than xprof drained them; "
		       "a lower -F loses fewer", lost);
	if (stop_requested)
		xp_msg("stopped early by a signal");
	if (r.ticks_spaced)
		xp_msg("--wall: each stop of pid %d took long enough (many threads) that %" PRIu64 " ticks were "
		       "delayed, to keep it stopped under a tenth of the time",
		       (int)r.pid, r.ticks_spaced);
	if (r.wall_missed) {
		xp_msg("--wall: %" PRIu64 " of %" PRIu64 " thread samples missing: those threads did not stop in "
		       "time (uninterruptible sleep, or a loaded machine)", r.wall_missed, r.wall_seen);
		rc = XP_EXIT_PARTIAL;
	}
	if (r.ticks_execd) {
		xp_msg("--wall: pid %d exec'd during each try of %" PRIu64 " ticks, which have no samples",
		       (int)r.pid, r.ticks_execd);
		rc = XP_EXIT_PARTIAL;
	}
	if (r.ticks_unstopped) {
		xp_msg("--wall: at %" PRIu64 " ticks no thread of pid %d stopped in time (uninterruptible "
		       "sleep): they have no samples", r.ticks_unstopped, (int)r.pid);
		rc = XP_EXIT_PARTIAL;
	}
	if (r.wall_refused == -EBUSY) {
		xp_msg("--wall: another process (a debugger?) began tracing pid %d: the run ended there, "
		       "with the samples before", (int)r.pid);
		rc = XP_EXIT_PARTIAL;
	} else if (r.wall_refused) {
		char why[256];
		xp_explain_eperm(r.pid, why, sizeof(why));
		xp_msg("--wall: pid %d could no longer be stopped (operation not permitted: %s): the run "
		       "ended there, with the samples before", (int)r.pid, why);
		rc = XP_EXIT_PARTIAL;
	}
	if (r.ticks_stopped)
		xp_msg("pid %d was stopped (SIGSTOP) at %" PRIu64 " of %" PRIu64 " ticks: its threads are labelled "
		       "state=stopped there%s",
		       (int)r.pid, r.ticks_stopped, r.ticks, r.left_stopped ? "; it is left stopped" : "");
	if (r.nprog > 1)
		xp_msg("pid %d exec'd %zu time%s during the run (from %s to %s): each program's samples "
		       "are symbolized with its own modules",
		       (int)r.pid, r.nprog - 1, r.nprog > 2 ? "s" : "", r.prog[0].comm, r.prog[r.nprog - 1].comm);
	if (r.too_many_execs) {
		xp_msg("stopped early: pid %d exec'd more than %d times; later programs are not sampled",
		       (int)r.pid, PROGRAMS_MAX - 1);
		rc = XP_EXIT_PARTIAL;
	}
	if (r.launched) {
		if (r.child_exited < 0)
			xp_msg("%s exited", r.comm);
		else if (r.child_exited && WIFEXITED(r.child_status))
			xp_msg("%s exited with status %d", r.comm, WEXITSTATUS(r.child_status));
		else if (r.child_exited && WIFSIGNALED(r.child_status))
			xp_msg("%s was killed by signal %d", r.comm, WTERMSIG(r.child_status));
		else
			xp_msg("%s is still running as pid %d", r.comm, (int)r.pid);
	} else if (gone) {
		xp_msg("pid %d exited during the run", (int)r.pid);
		rc = XP_EXIT_PARTIAL;
	}
	xp_report_wrote(path, r.o.format == FORMAT_PPROF ? NULL :
			      r.o.format == FORMAT_SVG ? "open it in a browser" :
			      "draw it with flamegraph.pl or inferno-flamegraph, or open it in speedscope");
	run_free(&r);
	return rc;
}
