/* xprof top: a live view of where a process spends its time, refreshed every
 * second from the same collector as xprof cpu (collect/cpu.c): each second
 * the samples so far are taken as a pprof profile, read back, and folded
 * into per-function own and total shares, over the last interval and since
 * the start.  --wall takes the same from perf's context switches and
 * cpu-clock samples (collect/offcpu.c), each stack weighed by its time.
 * Full screen on a terminal (ncurses); a timestamped text table per
 * interval on a pipe or a file.
 *
 * parse options → find the target → open the sampler → run it, drawing and
 * reading keys from its progress callback → restore the terminal → report.
 */
#define _GNU_SOURCE
#include <curses.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "attach/attach.h"
#include "cmd/cmd.h"
#include "proto/profile.h"
#include "proto/profile.pb-c.h"
#include "serve/serve.h"
#include "symbolize/symbolize.h"

#define FREQ_DEFAULT 99
#define FREQ_MAX 10000
#define INTERVAL_NS 1000000000LL
/* bounds on what the view keeps: distinct stacks since the start (more are
 * counted in the totals but not kept), frames of one stack, threads */
#define STACKS_MAX 200000
#define FRAMES_MAX 512
#define THREADS_MAX 65536
#define FUNC_THREADS_MAX 32   /* threads listed per function (a pool of 1000 is "+more") */
#define TEXT_ROWS 25          /* rows of each text block (pipe mode) */

struct top_opts {
	struct xp_follow_opts t;
	int freq;
	int wall;
};

/* ---- what the view holds ---------------------------------------------------- */

struct func {
	char *name, *file;   /* escaped for the terminal */
	int kernel;
	/* per redraw */
	uint64_t own, total, stamp, line_count;
	int64_t line;
	uint64_t state_own[3]; /* --wall: own samples running, sleeping, disk */
	uint32_t *threads;     /* thread indexes it ran on (total), at most FUNC_THREADS_MAX */
	size_t nthreads, threads_alloc;
	int more_threads;      /* and others */
};

struct frame {
	uint32_t func;
	int32_t line;
	uint8_t inlined;
};

struct stack {
	uint64_t hash;
	uint32_t thread;
	char state;          /* R, S, D, T */
	uint32_t n;
	struct frame *f;     /* leaf first */
	uint64_t last, all;
};

struct thread {
	pid_t tid;
	char name[64];
	uint64_t last, all;
	char state;          /* --wall: its most frequent state last interval */
	uint64_t states[4];
};

struct row {
	uint32_t func;
	uint64_t own_last, total_last, own_all, total_all;
};

enum window { WIN_LAST, WIN_ALL };

struct top {
	struct top_opts o;
	pid_t pid;
	char comm[64];
	struct xp_cpu *c;
	int tty;
	/* data */
	struct func *funcs;
	size_t nfuncs, funcs_alloc;
	uint32_t *func_tab;   /* hash of funcs, index + 1 */
	size_t func_tab_n;
	struct stack *stacks;
	size_t nstacks, stacks_alloc;
	uint32_t *stack_tab;
	size_t stack_tab_n;
	uint64_t stacks_dropped;
	struct thread *threads;
	size_t nthreads, threads_alloc;
	/* shares are of weights: samples, or with --wall nanoseconds of
	 * thread time; nsamples_all counts the samples for the header */
	uint64_t samples_last, samples_all, samples_dropped_last, nsamples_all;
	/* header figures */
	int64_t start_ns, last_take_ns, interval_ns;
	uint64_t prev_samples, prev_complete, prev_lost;
	double cpu_pct, rate;
	uint64_t lost_last, lost_all, complete_last_n, complete_all, samples_seen_all;
	double complete_last;
	unsigned long long prev_cpu_ticks;
	int have_prev_cpu;
	long nthreads_proc;
	/* view */
	enum window win;
	int sort_total;
	int paused;
	long thread_filter;   /* index into threads, -1 all */
	int show_kernel;
	int show_stack;
	int show_help;
	int chooser_open;     /* the thread list (T) */
	size_t chooser_sel;
	size_t selected, scroll;
	struct row *rows;
	size_t nrows, rows_alloc;
	uint64_t denom_last, denom_all;
	uint64_t stamp;
	/* ending */
	int pipe_closed;
	int err;              /* -errno that ended the run */
	const char *err_what;
	int quit;
	int started;
	uint64_t ticks_missed;
	int wall_perf;        /* --wall from perf (else ptrace: perf refused) */
};

static volatile sig_atomic_t stop_requested;
static volatile sig_atomic_t stop_signal;

static void on_stop_signal(int sig)
{
	stop_requested = 1;
	stop_signal = sig;
}

static void usage(FILE *f)
{
	fputs("usage: xprof top (-p PID | --name COMM | --cmdline REGEX) [-F HZ] [--wall]\n"
	      "\n"
	      "A live view of where a process spends its time, refreshed every second:\n"
	      "each function's own and total share of the samples over the last second\n"
	      "and since the start, its file:line and the threads it runs on, under a\n"
	      "header with the process's CPU use, threads, samples per second, lost\n"
	      "samples and how many stacks were unwound whole.  The samples come from\n"
	      "the collector of xprof cpu (perf_event_open cpu-clock, DWARF unwinding):\n"
	      "the target is never stopped and runs as it does under xprof cpu -F HZ.\n"
	      "\n"
	      "  -p, --pid PID       the process to watch\n"
	      "      --name COMM     the oldest process of that name\n"
	      "      --cmdline REGEX the oldest whose command line matches (POSIX ERE)\n"
	      "  -F, --freq HZ       samples per second, 1 to 10000 (default 99)\n"
	      "      --wall          wall-clock: every thread's whole time, running or not,\n"
	      "                      with its state (running, sleeping), each stack weighed\n"
	      "                      by its time, from perf's context switches and\n"
	      "                      cpu-clock samples as xprof cpu --wall: never stopped.\n"
	      "                      Where perf is refused (permissions), every thread is\n"
	      "                      stopped at each tick (ptrace) instead, and the second\n"
	      "                      line says so\n"
	      "  -h, --help          this help\n"
	      "\n"
	      "Keys: o / t sort by own / total; a switch last second / since start;\n"
	      "p or space pause; f / F next / previous thread (all threads after the\n"
	      "last), T choose a thread from a list; K kernel frames on or off; Enter or\n"
	      "s the hottest stack through the selected function (arrows or j / k\n"
	      "select); ? help; q quits.\n"
	      "\n"
	      "When standard output is not a terminal, the table is printed as text\n"
	      "every second, each block headed by the time, so that xprof top -p PID |\n"
	      "head and logging work.  Ends with q, Ctrl-C, SIGTERM or the target's exit.\n"
	      "\n"
	      "Exit status: 0 ended by q, a signal, a closed pipe or the target's exit;\n"
	      "2 failure; 64 bad usage.\n",
	      f);
}

static int parse(int argc, char **argv, struct top_opts *o)
{
	enum { OPT_WALL = 256 };
	static const struct option longopts[] = {
		XP_FOLLOW_LONGOPTS,
		{ "freq", required_argument, NULL, 'F' },
		{ "wall", no_argument, NULL, OPT_WALL },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int c, r;
	char *end;
	long v;

	memset(o, 0, sizeof(*o));
	o->freq = FREQ_DEFAULT;
	optind = 1;
	opterr = 0; /* xp_option_error says it in one line */
	while ((c = getopt_long(argc, argv, ":p:F:h", longopts, NULL)) != -1) {
		if ((r = xp_follow_option("top", c, optarg, &o->t)) != 0) {
			if (r != 1)
				return r;
			continue;
		}
		switch (c) {
		case 'F':
			errno = 0;
			v = strtol(optarg, &end, 10);
			if (!*optarg || *end || errno || v < 1 || v > FREQ_MAX) {
				xp_msg("top: invalid frequency '%s': want 1 to %d samples per second", optarg, FREQ_MAX);
				return XP_EXIT_USAGE;
			}
			o->freq = (int)v;
			break;
		case OPT_WALL:
			o->wall = 1;
			break;
		case 'h':
			usage(stdout);
			return XP_EXIT_OK;
		default:
			return xp_option_error("top", c, argv);
		}
	}
	return xp_follow_opts_done("top", argc, argv, &o->t);
}

/* ---- interning ---------------------------------------------------------------- */

static uint64_t hash_str(uint64_t h, const char *s)
{
	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ULL;
	return (h ^ 0xff) * 1099511628211ULL;
}

static int tab_grow(uint32_t **tab, size_t *n, size_t used)
{
	if ((used + 1) * 2 <= *n)
		return 0;
	free(*tab);
	*n = *n ? *n * 2 : 1024;
	*tab = calloc(*n, sizeof(**tab));
	return *tab ? 1 : -ENOMEM; /* 1: the caller re-inserts */
}

static uint64_t func_hash(const char *name, const char *file, int kernel)
{
	return hash_str(hash_str(1469598103934665603ULL ^ (uint64_t)kernel, name), file);
}

static int func_intern(struct top *t, const char *name, const char *file, int kernel, uint32_t *out)
{
	uint64_t h = func_hash(name, file, kernel);
	size_t i, k;
	struct func *f;
	int g;

	if ((g = tab_grow(&t->func_tab, &t->func_tab_n, t->nfuncs)) < 0)
		return g;
	if (g) {
		for (k = 0; k < t->nfuncs; k++) {
			f = &t->funcs[k];
			for (i = func_hash(f->name, f->file, f->kernel) & (t->func_tab_n - 1); t->func_tab[i];
			     i = (i + 1) & (t->func_tab_n - 1))
				;
			t->func_tab[i] = (uint32_t)k + 1;
		}
	}
	for (i = h & (t->func_tab_n - 1); t->func_tab[i]; i = (i + 1) & (t->func_tab_n - 1)) {
		f = &t->funcs[t->func_tab[i] - 1];
		if (f->kernel == kernel && strcmp(f->name, name) == 0 && strcmp(f->file, file) == 0) {
			*out = t->func_tab[i] - 1;
			return 0;
		}
	}
	if (t->nfuncs == t->funcs_alloc) {
		size_t na = t->funcs_alloc ? t->funcs_alloc * 2 : 256;
		struct func *v = realloc(t->funcs, na * sizeof(*v));
		if (!v)
			return -ENOMEM;
		t->funcs = v;
		t->funcs_alloc = na;
	}
	f = &t->funcs[t->nfuncs];
	memset(f, 0, sizeof(*f));
	f->kernel = kernel;
	f->name = strdup(name);
	f->file = strdup(file);
	if (!f->name || !f->file) {
		free(f->name);
		free(f->file);
		return -ENOMEM;
	}
	t->func_tab[i] = (uint32_t)t->nfuncs + 1;
	*out = (uint32_t)t->nfuncs++;
	return 0;
}

static int thread_intern(struct top *t, pid_t tid, const char *name, uint32_t *out)
{
	size_t i;
	struct thread *th;

	for (i = 0; i < t->nthreads; i++)
		if (t->threads[i].tid == tid) {
			*out = (uint32_t)i;
			return 0;
		}
	if (t->nthreads >= THREADS_MAX)
		return -ENOSPC;
	if (t->nthreads == t->threads_alloc) {
		size_t na = t->threads_alloc ? t->threads_alloc * 2 : 64;
		struct thread *v = realloc(t->threads, na * sizeof(*v));
		if (!v)
			return -ENOMEM;
		t->threads = v;
		t->threads_alloc = na;
	}
	th = &t->threads[t->nthreads];
	memset(th, 0, sizeof(*th));
	th->tid = tid;
	xp_escape(name ? name : "?", th->name, sizeof(th->name));
	*out = (uint32_t)t->nthreads++;
	return 0;
}

static uint64_t stack_hash(uint32_t thread, char state, const struct frame *f, size_t n)
{
	uint64_t h = 1469598103934665603ULL ^ thread ^ ((uint64_t)(unsigned char)state << 40);
	size_t i;

	for (i = 0; i < n; i++)
		h = (h ^ f[i].func ^ ((uint64_t)(uint32_t)f[i].line << 32) ^ ((uint64_t)f[i].inlined << 63)) *
		    1099511628211ULL;
	return h;
}

/* Field by field: the padding of struct frame is whatever the buffer held,
 * and a memcmp that saw it made a new stack of a known one. */
static int frames_equal(const struct frame *a, const struct frame *b, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (a[i].func != b[i].func || a[i].line != b[i].line || a[i].inlined != b[i].inlined)
			return 0;
	return 1;
}

static int stack_add(struct top *t, uint32_t thread, char state, const struct frame *f, size_t n, uint64_t count)
{
	uint64_t h = stack_hash(thread, state, f, n);
	struct stack *s;
	size_t i, k;
	int g;

	if ((g = tab_grow(&t->stack_tab, &t->stack_tab_n, t->nstacks)) < 0)
		return g;
	if (g) {
		for (k = 0; k < t->nstacks; k++) {
			for (i = t->stacks[k].hash & (t->stack_tab_n - 1); t->stack_tab[i]; i = (i + 1) & (t->stack_tab_n - 1))
				;
			t->stack_tab[i] = (uint32_t)k + 1;
		}
	}
	for (i = h & (t->stack_tab_n - 1); t->stack_tab[i]; i = (i + 1) & (t->stack_tab_n - 1)) {
		s = &t->stacks[t->stack_tab[i] - 1];
		if (s->hash == h && s->thread == thread && s->state == state && s->n == n && frames_equal(s->f, f, n)) {
			s->last += count;
			s->all += count;
			return 0;
		}
	}
	if (t->nstacks >= STACKS_MAX) {
		t->stacks_dropped += count;
		t->samples_dropped_last += count;
		return 0;
	}
	if (t->nstacks == t->stacks_alloc) {
		size_t na = t->stacks_alloc ? t->stacks_alloc * 2 : 1024;
		struct stack *v = realloc(t->stacks, na * sizeof(*v));
		if (!v)
			return -ENOMEM;
		t->stacks = v;
		t->stacks_alloc = na;
	}
	s = &t->stacks[t->nstacks];
	s->f = malloc((n ? n : 1) * sizeof(*f));
	if (!s->f)
		return -ENOMEM;
	memcpy(s->f, f, n * sizeof(*f));
	s->hash = h;
	s->thread = thread;
	s->state = state;
	s->n = (uint32_t)n;
	s->last = s->all = count;
	t->stack_tab[i] = (uint32_t)t->nstacks + 1;
	t->nstacks++;
	return 0;
}

/* ---- one interval: the collector's profile, read back ------------------------- */

static const char *pstr(const Perftools__Profiles__Profile *p, int64_t i)
{
	return i >= 0 && (size_t)i < p->n_string_table ? p->string_table[i] : "";
}

static const char *state_word(char state)
{
	return state == 'S' ? "sleeping" : state == 'D' ? "disk" : state == 'T' ? "stopped" : "running";
}

static char state_letter(const char *word)
{
	return strcmp(word, "sleeping") == 0 ? 'S' : strcmp(word, "disk") == 0 ? 'D' :
	       strcmp(word, "stopped") == 0 ? 'T' : 'R';
}

/* Folds one profile's samples into the view's stacks (leaf first; a
 * location's inline lines become frames of their own, marked inlined but
 * for the last, the physical function). */
static int ingest(struct top *t, const Perftools__Profiles__Profile *p)
{
	Perftools__Profiles__Location **loc = NULL;
	Perftools__Profiles__Function **fn = NULL;
	Perftools__Profiles__Mapping **map = NULL;
	struct frame *fr = malloc(FRAMES_MAX * sizeof(*fr));
	size_t i, k, j, nloc = p->n_location + 1, nfn = p->n_function + 1, nmap = p->n_mapping + 1;
	int err = -ENOMEM;

	loc = calloc(nloc, sizeof(*loc));
	fn = calloc(nfn, sizeof(*fn));
	map = calloc(nmap, sizeof(*map));
	if (!fr || !loc || !fn || !map)
		goto out;
	/* the builder numbers each kind 1..n; anything else is left out */
	for (i = 0; i < p->n_location; i++)
		if (p->location[i]->id < nloc)
			loc[p->location[i]->id] = p->location[i];
	for (i = 0; i < p->n_function; i++)
		if (p->function[i]->id < nfn)
			fn[p->function[i]->id] = p->function[i];
	for (i = 0; i < p->n_mapping; i++)
		if (p->mapping[i]->id < nmap)
			map[p->mapping[i]->id] = p->mapping[i];
	for (i = 0; i < p->n_sample; i++) {
		const Perftools__Profiles__Sample *s = p->sample[i];
		uint64_t nsamples = s->n_value ? (uint64_t)s->value[0] : 0;
		/* --wall: the time (perf's intervals differ in length; the
		 * ptrace sampler's value is samples times the period) */
		int64_t v = t->o.wall && s->n_value > 1 ? s->value[1] : (int64_t)nsamples;
		uint64_t count = v > 0 ? (uint64_t)v : 0;
		const char *tname = "?";
		pid_t tid = 0;
		char state = 'R';
		uint32_t th;
		size_t n = 0;

		if (!count)
			continue;
		for (k = 0; k < s->n_label; k++) {
			const char *key = pstr(p, s->label[k]->key);
			if (strcmp(key, "tid") == 0)
				tid = (pid_t)s->label[k]->num;
			else if (strcmp(key, "thread") == 0)
				tname = pstr(p, s->label[k]->str);
			else if (strcmp(key, "state") == 0)
				state = state_letter(pstr(p, s->label[k]->str));
		}
		if ((err = thread_intern(t, tid, tname, &th)) < 0) {
			if (err == -ENOSPC)
				continue;
			goto out;
		}
		t->threads[th].last += count;
		t->threads[th].all += count;
		t->threads[th].states[state == 'R' ? 0 : state == 'S' ? 1 : state == 'D' ? 2 : 3] += count;
		for (k = 0; k < s->n_location_id && n < FRAMES_MAX; k++) {
			const Perftools__Profiles__Location *l =
				s->location_id[k] < nloc ? loc[s->location_id[k]] : NULL;
			const Perftools__Profiles__Mapping *m = l && l->mapping_id < nmap ? map[l->mapping_id] : NULL;
			const char *mfile = m ? pstr(p, m->filename) : "";
			int kernel = strcmp(mfile, "[kernel.kallsyms]") == 0;
			char name[256], file[256];

			if (!l)
				continue;
			if (l->n_line == 0) {
				/* unsymbolized: one entry per module */
				const char *base = strrchr(mfile, '/');
				char raw[256];
				snprintf(raw, sizeof(raw), "[%s]", base ? base + 1 : mfile[0] ? mfile : "unknown");
				xp_escape(raw, name, sizeof(name));
				if ((err = func_intern(t, name, "", kernel, &fr[n].func)) < 0)
					goto out;
				fr[n].line = 0;
				fr[n].inlined = 0;
				n++;
				continue;
			}
			for (j = 0; j < l->n_line && n < FRAMES_MAX; j++) {
				const Perftools__Profiles__Function *f =
					l->line[j]->function_id < nfn ? fn[l->line[j]->function_id] : NULL;
				xp_escape(f ? pstr(p, f->name) : "?", name, sizeof(name));
				xp_escape(f ? pstr(p, f->filename) : "", file, sizeof(file));
				if ((err = func_intern(t, name, file, kernel, &fr[n].func)) < 0)
					goto out;
				fr[n].line = (int32_t)l->line[j]->line;
				fr[n].inlined = j + 1 < l->n_line;
				n++;
			}
		}
		if ((err = stack_add(t, th, state, fr, n, count)) < 0)
			goto out;
		t->samples_last += count;
		t->samples_all += count;
		t->nsamples_all += nsamples;
	}
	err = 0;
out:
	free(fr);
	free(loc);
	free(fn);
	free(map);
	return err;
}

/* user + system ticks of the whole process, from /proc/PID/stat */
static int proc_cpu_ticks(pid_t pid, unsigned long long *ticks)
{
	char path[64], buf[2048], *p;
	unsigned long long ut, st;
	int fd, n, i;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		return -errno;
	n = (int)read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return -EIO;
	buf[n] = '\0';
	if (!(p = strrchr(buf, ')')))
		return -EIO;
	/* after ") ": field 3 (state) ... utime is 14, stime 15 */
	for (i = 3, p += 2; i < 14 && p; i++) {
		p = strchr(p, ' ');
		if (p)
			p++;
	}
	if (!p || sscanf(p, "%llu %llu", &ut, &st) != 2)
		return -EIO;
	*ticks = ut + st;
	return 0;
}

static long proc_threads(pid_t pid)
{
	char path[64], line[256];
	long n = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	if (!(f = fopen(path, "re")))
		return -1;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "Threads: %ld", &n) == 1)
			break;
	fclose(f);
	return n;
}

/* Takes the interval's samples from the collector and the header's figures. */
static int take_interval(struct top *t, const struct xp_cpu_stats *st, int64_t now)
{
	Perftools__Profiles__Profile *pp;
	struct xp_profile *p;
	unsigned long long ticks;
	uint8_t *buf;
	size_t len, i;
	double secs = (now - t->last_take_ns) / 1e9;
	int err;

	if ((err = xp_cpu_profile_take(t->c, &p)) < 0)
		return err;
	if (t->paused) { /* the view holds still: these samples are not counted */
		xp_profile_free(p);
		t->last_take_ns = now;
		t->prev_samples = st->samples;
		t->prev_complete = st->complete;
		t->prev_lost = st->lost;
		return 0;
	}
	err = xp_profile_encode(p, &buf, &len);
	xp_profile_free(p);
	if (err < 0)
		return err;
	pp = perftools__profiles__profile__unpack(NULL, len, buf);
	free(buf);
	if (!pp)
		return -ENOMEM;
	for (i = 0; i < t->nstacks; i++)
		t->stacks[i].last = 0;
	for (i = 0; i < t->nthreads; i++) {
		t->threads[i].last = 0;
		memset(t->threads[i].states, 0, sizeof(t->threads[i].states));
	}
	t->samples_last = 0;
	t->samples_dropped_last = 0;
	err = ingest(t, pp);
	perftools__profiles__profile__free_unpacked(pp, NULL);
	if (err < 0)
		return err;
	for (i = 0; i < t->nthreads; i++) {
		struct thread *th = &t->threads[i];
		int best = 0, k;
		for (k = 1; k < 4; k++)
			if (th->states[k] > th->states[best])
				best = k;
		th->state = th->last ? "RSDT"[best] : 0;
	}
	t->interval_ns = now - t->last_take_ns;
	t->last_take_ns = now;
	t->rate = secs > 0 ? (double)(st->samples - t->prev_samples) / secs : 0;
	t->complete_last = st->samples > t->prev_samples ?
				   100.0 * (double)(st->complete - t->prev_complete) / (double)(st->samples - t->prev_samples) :
				   100.0;
	t->lost_last = st->lost - t->prev_lost;
	t->lost_all = st->lost;
	t->complete_all = st->complete;
	t->samples_seen_all = st->samples;
	t->prev_samples = st->samples;
	t->prev_complete = st->complete;
	t->prev_lost = st->lost;
	if (proc_cpu_ticks(t->pid, &ticks) == 0) {
		long hz = sysconf(_SC_CLK_TCK);
		t->cpu_pct = t->have_prev_cpu && secs > 0 ? 100.0 * (double)(ticks - t->prev_cpu_ticks) / (double)hz / secs : 0;
		t->prev_cpu_ticks = ticks;
		t->have_prev_cpu = 1;
	}
	t->nthreads_proc = proc_threads(t->pid);
	/* --wall: ticks at which no thread stopped in time, or it exec'd */
	t->ticks_missed = st->ticks_unstopped + st->ticks_execd;
	return 0;
}

/* ---- the table ------------------------------------------------------------------ */

static int func_has_thread(struct func *f, uint32_t th)
{
	size_t i;

	for (i = 0; i < f->nthreads; i++)
		if (f->threads[i] == th)
			return 1;
	if (f->nthreads == FUNC_THREADS_MAX) {
		f->more_threads = 1;
		return 0;
	}
	if (f->nthreads == f->threads_alloc) {
		size_t na = f->threads_alloc ? f->threads_alloc * 2 : 4;
		uint32_t *v = realloc(f->threads, na * sizeof(*v));
		if (!v)
			return 1; /* not listed: the table is still right */
		f->threads = v;
		f->threads_alloc = na;
	}
	f->threads[f->nthreads++] = th;
	return 0;
}

static int stack_passes(const struct top *t, const struct stack *s)
{
	return t->thread_filter < 0 || s->thread == (uint32_t)t->thread_filter;
}

/* One window's own and total of every function, into funcs[].own/total. */
static uint64_t fold_window(struct top *t, enum window w)
{
	uint64_t denom = 0;
	size_t i, k;

	for (i = 0; i < t->nfuncs; i++) {
		struct func *f = &t->funcs[i];
		f->own = f->total = f->line_count = 0;
		f->line = 0;
		f->nthreads = 0;
		f->more_threads = 0;
		memset(f->state_own, 0, sizeof(f->state_own));
	}
	for (i = 0; i < t->nstacks; i++) {
		const struct stack *s = &t->stacks[i];
		uint64_t c = w == WIN_LAST ? s->last : s->all;
		int first = 1;
		if (!c || !stack_passes(t, s))
			continue;
		denom += c;
		t->stamp++;
		for (k = 0; k < s->n; k++) {
			struct func *f = &t->funcs[s->f[k].func];
			if (f->kernel && !t->show_kernel)
				continue;
			if (first) {
				f->own += c;
				if (s->state == 'R' || s->state == 'S' || s->state == 'D')
					f->state_own[s->state == 'R' ? 0 : s->state == 'S' ? 1 : 2] += c;
				first = 0;
			}
			if (f->stamp == t->stamp)
				continue;
			f->stamp = t->stamp;
			f->total += c;
			func_has_thread(f, s->thread);
			if (c > f->line_count) {
				f->line_count = c;
				f->line = s->f[k].line;
			}
		}
	}
	return denom;
}

static const struct top *row_cmp_top;

static int row_cmp(const void *a, const void *b)
{
	const struct row *x = a, *y = b;
	int all = row_cmp_top->win == WIN_ALL, tot = row_cmp_top->sort_total;
	uint64_t kx = all ? (tot ? x->total_all : x->own_all) : (tot ? x->total_last : x->own_last);
	uint64_t ky = all ? (tot ? y->total_all : y->own_all) : (tot ? y->total_last : y->own_last);
	uint64_t sx = all ? (tot ? x->own_all : x->total_all) : (tot ? x->own_last : x->total_last);
	uint64_t sy = all ? (tot ? y->own_all : y->total_all) : (tot ? y->own_last : y->total_last);

	if (kx != ky)
		return kx > ky ? -1 : 1;
	if (sx != sy)
		return sx > sy ? -1 : 1;
	return strcmp(row_cmp_top->funcs[x->func].name, row_cmp_top->funcs[y->func].name);
}

/* The rows: every function with samples in either window.  The active
 * window is folded last, so funcs[] keep its lines, threads and states. */
static int build_rows(struct top *t)
{
	enum window other = t->win == WIN_LAST ? WIN_ALL : WIN_LAST;
	uint64_t *own_o, *tot_o;
	size_t i, n = 0;
	uint64_t d;

	if (t->rows_alloc < t->nfuncs) {
		struct row *v = realloc(t->rows, (t->nfuncs + 1) * sizeof(*v));
		if (!v)
			return -ENOMEM;
		t->rows = v;
		t->rows_alloc = t->nfuncs + 1;
	}
	own_o = calloc(t->nfuncs + 1, sizeof(*own_o));
	tot_o = calloc(t->nfuncs + 1, sizeof(*tot_o));
	if (!own_o || !tot_o) {
		free(own_o);
		free(tot_o);
		return -ENOMEM;
	}
	d = fold_window(t, other);
	if (other == WIN_LAST)
		t->denom_last = d;
	else
		t->denom_all = d;
	for (i = 0; i < t->nfuncs; i++) {
		own_o[i] = t->funcs[i].own;
		tot_o[i] = t->funcs[i].total;
	}
	d = fold_window(t, t->win);
	if (t->win == WIN_LAST)
		t->denom_last = d;
	else
		t->denom_all = d;
	for (i = 0; i < t->nfuncs; i++) {
		const struct func *f = &t->funcs[i];
		struct row *r = &t->rows[n];
		if (!f->total && !tot_o[i])
			continue;
		r->func = (uint32_t)i;
		if (t->win == WIN_LAST) {
			r->own_last = f->own, r->total_last = f->total;
			r->own_all = own_o[i], r->total_all = tot_o[i];
		} else {
			r->own_all = f->own, r->total_all = f->total;
			r->own_last = own_o[i], r->total_last = tot_o[i];
		}
		n++;
	}
	free(own_o);
	free(tot_o);
	t->nrows = n;
	row_cmp_top = t;
	qsort(t->rows, n, sizeof(*t->rows), row_cmp);
	if (t->selected >= n)
		t->selected = n ? n - 1 : 0;
	return 0;
}

static double pct(uint64_t v, uint64_t d)
{
	return d ? 100.0 * (double)v / (double)d : 0.0;
}

/* "file.c:42", the directory left out */
static void where(const struct func *f, char *buf, size_t len)
{
	const char *base = strrchr(f->file, '/');

	if (!f->file[0])
		snprintf(buf, len, "%s", f->kernel ? "[kernel]" : "");
	else if (f->line > 0)
		snprintf(buf, len, "%s:%" PRId64, base ? base + 1 : f->file, f->line);
	else
		snprintf(buf, len, "%s", base ? base + 1 : f->file);
}

/* The threads of a function: "burn-1 burn-2 +3" in at most len bytes. */
static void thread_list(const struct top *t, const struct func *f, char *buf, size_t len)
{
	size_t i, used = 0;

	buf[0] = '\0';
	for (i = 0; i < f->nthreads; i++) {
		const struct thread *th = &t->threads[f->threads[i]];
		char one[96];
		int w = snprintf(one, sizeof(one), "%s%s", i ? " " : "", th->name);
		if (used + (size_t)w + 8 >= len) {
			snprintf(buf + used, len - used, " +%zu%s", f->nthreads - i, f->more_threads ? "+" : "");
			return;
		}
		memcpy(buf + used, one, (size_t)w + 1);
		used += (size_t)w;
	}
	if (f->more_threads)
		snprintf(buf + used, len - used, " +more");
}

static void state_mix(const struct func *f, char *buf, size_t len)
{
	uint64_t n = f->state_own[0] + f->state_own[1] + f->state_own[2];

	if (!n) {
		snprintf(buf, len, "%-14s", "-");
		return;
	}
	snprintf(buf, len, "R%3.0f S%3.0f D%3.0f", pct(f->state_own[0], n), pct(f->state_own[1], n),
		 pct(f->state_own[2], n));
}

static void header_lines(const struct top *t, char *l1, size_t n1, char *l2, size_t n2)
{
	const char *filter = t->thread_filter < 0 ? "all" : t->threads[t->thread_filter].name;
	char tid[32] = "", states[256] = "";

	snprintf(l1, n1,
		 "%s (pid %d)  cpu %.0f%%  threads %ld  samples %" PRIu64 " (%.0f/s)  lost %" PRIu64 " (%" PRIu64
		 " total)  complete stacks %.1f%% (%.1f%% total)",
		 t->comm, (int)t->pid, t->cpu_pct, t->nthreads_proc, t->nsamples_all, t->rate, t->lost_last, t->lost_all,
		 t->complete_last,
		 t->samples_seen_all ? 100.0 * (double)t->complete_all / (double)t->samples_seen_all : 100.0);
	if (t->thread_filter >= 0)
		snprintf(tid, sizeof(tid), " (tid %d)", (int)t->threads[t->thread_filter].tid);
	if (t->o.wall) {
		/* each thread by its most frequent state of the last second */
		size_t i, n[4] = { 0, 0, 0, 0 };
		for (i = 0; i < t->nthreads; i++)
			if (t->threads[i].state)
				n[strchr("RSDT", t->threads[i].state) - "RSDT"]++;
		if (t->wall_perf)
			snprintf(states, sizeof(states), "wall-clock from perf, no thread stopped (threads: %zu running, "
				 "%zu sleeping%s)", n[0], n[1], n[3] ? ", some stopped" : "");
		else
			snprintf(states, sizeof(states), "wall-clock by ptrace, every thread stopped at each tick: perf "
				 "refused (threads: %zu running, %zu sleeping, %zu disk%s; %" PRIu64 " ticks missed)",
				 n[0], n[1], n[2], n[3] ? ", some stopped" : "", t->ticks_missed);
	}
	snprintf(l2, n2, "%s at %d Hz  window: %s  sort: %s  thread: %s%s  kernel frames: %s%s%s",
		 t->o.wall ? states : "cpu", t->o.freq, t->win == WIN_LAST ? "last second" : "since start",
		 t->sort_total ? "total" : "own", filter, tid, t->show_kernel ? "shown" : "hidden",
		 t->stacks_dropped ? "  (stack table full: some samples only counted)" : "",
		 t->paused ? "  PAUSED" : "");
}

/* One table line into buf; the column header when r is NULL. */
static void table_line(const struct top *t, const struct row *r, char *buf, size_t len)
{
	char w[128], th[128], st[32] = "";
	const struct func *f;

	if (!r) {
		/* the sort column is starred */
		static const char *const label[4] = { "own 1s", "total 1s", "own all", "total all" };
		char col[4][16];
		int k, sorted = (t->win == WIN_ALL ? 2 : 0) + (t->sort_total ? 1 : 0);
		for (k = 0; k < 4; k++)
			snprintf(col[k], sizeof(col[k]), "%s%s", k == sorted ? "*" : "", label[k]);
		snprintf(buf, len, "%9s %9s %9s %9s  %s%-40s %-24s THREADS", col[0], col[1], col[2], col[3],
			 t->o.wall ? "STATE (own %)   " : "", "FUNCTION", "FILE:LINE");
		return;
	}
	f = &t->funcs[r->func];
	where(f, w, sizeof(w));
	thread_list(t, f, th, 40);
	if (t->o.wall) {
		state_mix(f, st, sizeof(st));
		strncat(st, "  ", sizeof(st) - strlen(st) - 1);
	}
	snprintf(buf, len, "%9.1f %9.1f %9.1f %9.1f  %s%-40s %-24s %s", pct(r->own_last, t->denom_last),
		 pct(r->total_last, t->denom_last), pct(r->own_all, t->denom_all), pct(r->total_all, t->denom_all),
		 t->o.wall ? st : "", f->name, w, th);
}

/* The hottest stack (in the active window, under the thread filter) that
 * has function fi, or NULL. */
static const struct stack *hottest_stack(const struct top *t, uint32_t fi)
{
	const struct stack *best = NULL;
	uint64_t best_c = 0;
	size_t i, k;

	for (i = 0; i < t->nstacks; i++) {
		const struct stack *s = &t->stacks[i];
		uint64_t c = t->win == WIN_LAST ? s->last : s->all;
		if (!c || c <= best_c || !stack_passes(t, s))
			continue;
		for (k = 0; k < s->n; k++)
			if (s->f[k].func == fi && (t->show_kernel || !t->funcs[fi].kernel)) {
				best = s;
				best_c = c;
				break;
			}
	}
	return best;
}

static void frame_line(const struct top *t, const struct frame *fr, char *buf, size_t len)
{
	const struct func *f = &t->funcs[fr->func];
	const char *base = strrchr(f->file, '/');

	if (f->file[0] && fr->line > 0)
		snprintf(buf, len, "  %-48s %s:%d%s", f->name, base ? base + 1 : f->file, fr->line,
			 fr->inlined ? "  (inlined)" : "");
	else
		snprintf(buf, len, "  %-48s %s%s", f->name, f->kernel ? "[kernel]" : f->file,
			 fr->inlined ? "  (inlined)" : "");
}

/* ---- the terminal -------------------------------------------------------------- */

static const char *const help_text[] = {
	"xprof top keys",
	"",
	"  o         sort by own share (samples with the function on top)",
	"  t         sort by total share (samples with the function anywhere)",
	"  a         switch the window: the last second / since the start",
	"  p, space  pause: the view holds still (samples meanwhile are not counted)",
	"  f / F     show the next / previous thread only (then all threads again)",
	"  T         choose a thread from a list",
	"  K         kernel frames shown or hidden",
	"  Enter, s  the hottest stack through the selected function (again: back)",
	"  up/down, j/k, PgUp/PgDn, Home   select a function",
	"  ?         this help (any key closes it)",
	"  q         quit (Ctrl-C and SIGTERM too)",
	"",
	"own: the function is where the sample was taken; total: it is on the stack.",
	"Shares are of the samples in the window (of the thread chosen, if one is).",
	NULL,
};

static void put_line(int y, const char *s, int attr)
{
	if (y < 0 || y >= LINES)
		return;
	move(y, 0);
	clrtoeol();
	if (attr)
		attron(attr);
	addnstr(s, COLS);
	if (attr) {
		/* fill the rest of a highlighted line */
		int x = (int)strlen(s);
		for (; x < COLS; x++)
			addch(' ');
		attroff(attr);
	}
}

static void draw(struct top *t)
{
	char l1[512], l2[512], line[1024];
	int y, body, i;

	erase();
	header_lines(t, l1, sizeof(l1), l2, sizeof(l2));
	put_line(0, l1, A_BOLD);
	put_line(1, l2, 0);
	body = LINES - 4; /* header 2, column header 1, help 1 */
	if (t->show_help) {
		for (i = 0; help_text[i] && i + 2 < LINES - 1; i++)
			put_line(i + 2, help_text[i], i == 0 ? A_BOLD : 0);
	} else if (t->chooser_open) {
		put_line(2, "choose a thread (Enter: show it only, a: all threads, Esc: back)", A_BOLD);
		for (i = 0; i <= (int)t->nthreads && i + 3 < LINES - 1; i++) {
			if (i == 0)
				snprintf(line, sizeof(line), "  all threads");
			else
				snprintf(line, sizeof(line), "  %-7d %-20s %6.1f%% of the %s since start", (int)t->threads[i - 1].tid,
					 t->threads[i - 1].name, pct(t->threads[i - 1].all, t->samples_all),
					 t->o.wall ? "threads' time" : "samples");
			put_line(i + 3, line, (size_t)i == t->chooser_sel ? A_REVERSE : 0);
		}
	} else if (t->show_stack && t->nrows) {
		const struct row *r = &t->rows[t->selected];
		const struct stack *s = hottest_stack(t, r->func);
		uint64_t d = t->win == WIN_LAST ? t->denom_last : t->denom_all;
		snprintf(line, sizeof(line), "hottest stack through %s (%s): ", t->funcs[r->func].name,
			 t->win == WIN_LAST ? "last second" : "since start");
		if (s) {
			uint64_t c = t->win == WIN_LAST ? s->last : s->all;
			size_t k, len = strlen(line);
			if (t->o.wall && t->wall_perf)
				snprintf(line + len, sizeof(line) - len, "%.3f s", (double)c / 1e9);
			else
				snprintf(line + len, sizeof(line) - len, "%" PRIu64 " samples", t->o.wall ?
					 c / (uint64_t)(1000000000 / t->o.freq) : c);
			len = strlen(line);
			snprintf(line + len, sizeof(line) - len, ", %.1f%%, thread %s (tid %d)%s%s", pct(c, d), t->threads[s->thread].name, (int)t->threads[s->thread].tid,
				 t->o.wall ? ", " : "", t->o.wall ? state_word(s->state) : "");
			put_line(2, line, A_BOLD);
			for (k = 0, y = 3; k < s->n && y < LINES - 1; k++) {
				if (t->funcs[s->f[k].func].kernel && !t->show_kernel)
					continue;
				frame_line(t, &s->f[k], line, sizeof(line));
				put_line(y++, line, s->f[k].func == r->func ? A_BOLD : 0);
			}
		} else {
			strncat(line, "none in this window", sizeof(line) - strlen(line) - 1);
			put_line(2, line, A_BOLD);
		}
	} else {
		table_line(t, NULL, line, sizeof(line));
		put_line(2, line, A_REVERSE);
		if (t->selected < t->scroll)
			t->scroll = t->selected;
		if (body > 0 && t->selected >= t->scroll + (size_t)body)
			t->scroll = t->selected - (size_t)body + 1;
		for (i = 0; i < body && t->scroll + (size_t)i < t->nrows; i++) {
			size_t ri = t->scroll + (size_t)i;
			table_line(t, &t->rows[ri], line, sizeof(line));
			put_line(3 + i, line, ri == t->selected ? A_REVERSE : 0);
		}
		if (!t->nrows)
			put_line(3, t->samples_all ? "  (no samples in this window)" : "  (waiting for samples)", 0);
	}
	put_line(LINES - 1,
		 "q quit  o/t sort own/total  a last/since start  p pause  f/F/T thread  K kernel  Enter stack  j/k select  ? help",
		 A_REVERSE);
	refresh();
}

static void select_thread(struct top *t, long idx)
{
	t->thread_filter = idx;
	t->selected = t->scroll = 0;
}

/* One key; 1 when the view changed. */
static int on_key(struct top *t, int ch)
{
	if (t->show_help) {
		t->show_help = 0;
		return ch == 'q' ? (t->quit = 1) : 1;
	}
	if (t->chooser_open) {
		switch (ch) {
		case KEY_UP: case 'k':
			if (t->chooser_sel)
				t->chooser_sel--;
			return 1;
		case KEY_DOWN: case 'j':
			if (t->chooser_sel < t->nthreads)
				t->chooser_sel++;
			return 1;
		case '\n': case '\r': case KEY_ENTER:
			select_thread(t, (long)t->chooser_sel - 1);
			t->chooser_open = 0;
			return 1;
		case 'a':
			select_thread(t, -1);
			t->chooser_open = 0;
			return 1;
		case 'q':
			t->quit = 1;
			return 0;
		case 27: case 'T':
			t->chooser_open = 0;
			return 1;
		}
		return 0;
	}
	switch (ch) {
	case 'q': case 'Q':
		t->quit = 1;
		return 0;
	case 'o':
		t->sort_total = 0;
		return 1;
	case 't':
		t->sort_total = 1;
		return 1;
	case 'a':
		t->win = t->win == WIN_LAST ? WIN_ALL : WIN_LAST;
		return 1;
	case 'p': case ' ':
		t->paused = !t->paused;
		return 1;
	case 'f':
		select_thread(t, t->thread_filter + 1 >= (long)t->nthreads ? -1 : t->thread_filter + 1);
		return 1;
	case 'F':
		select_thread(t, t->thread_filter < 0 ? (long)t->nthreads - 1 : t->thread_filter - 1);
		return 1;
	case 'T':
		t->chooser_open = 1;
		t->chooser_sel = (size_t)(t->thread_filter + 1);
		return 1;
	case 'K':
		t->show_kernel = !t->show_kernel;
		return 1;
	case '\n': case '\r': case KEY_ENTER: case 's':
		t->show_stack = !t->show_stack;
		return 1;
	case 27:
		t->show_stack = 0;
		return 1;
	case '?': case 'h':
		t->show_help = 1;
		return 1;
	case KEY_UP: case 'k':
		if (t->selected)
			t->selected--;
		return 1;
	case KEY_DOWN: case 'j':
		if (t->selected + 1 < t->nrows)
			t->selected++;
		return 1;
	case KEY_PPAGE:
		t->selected = t->selected > (size_t)(LINES - 4) ? t->selected - (size_t)(LINES - 4) : 0;
		return 1;
	case KEY_NPAGE:
		t->selected += (size_t)(LINES - 4);
		if (t->nrows && t->selected >= t->nrows)
			t->selected = t->nrows - 1;
		return 1;
	case KEY_HOME: case 'g':
		t->selected = 0;
		return 1;
	case KEY_RESIZE:
		return 1;
	}
	return 0;
}

/* ---- text blocks (not a terminal) ------------------------------------------- */

/* 0, or -EPIPE when standard output is closed (a pipe's reader left). */
static int print_block(struct top *t)
{
	char l1[512], l2[512], line[1024], stamp[64];
	struct timespec ts;
	struct tm tm;
	size_t i;

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%SZ", &tm);
	header_lines(t, l1, sizeof(l1), l2, sizeof(l2));
	printf("--- %s %s\n%s\n", stamp, l1, l2);
	table_line(t, NULL, line, sizeof(line));
	printf("%s\n", line);
	for (i = 0; i < t->nrows && i < TEXT_ROWS; i++) {
		table_line(t, &t->rows[i], line, sizeof(line));
		printf("%s\n", line);
	}
	if (!t->nrows)
		printf("  (%s)\n", t->samples_all ? "no samples in this window" : "waiting for samples");
	printf("\n");
	if (fflush(stdout) == EOF || ferror(stdout))
		return -errno ? -errno : -EIO;
	return 0;
}

/* ---- the run ---------------------------------------------------------------- */

static void on_progress(void *arg, const struct xp_cpu_stats *st, int64_t now)
{
	struct top *t = arg;
	int changed = 0, ch, err;

	if (t->quit || stop_requested)
		return;
	if (!t->started) {
		/* the modules are open: the first interval starts now */
		unsigned long long ticks;
		struct xp_profile *p;
		if (xp_cpu_profile_take(t->c, &p) == 0)
			xp_profile_free(p);
		t->started = 1;
		t->last_take_ns = now;
		t->prev_samples = st->samples;
		t->prev_complete = st->complete;
		t->prev_lost = st->lost;
		if (proc_cpu_ticks(t->pid, &ticks) == 0) {
			t->prev_cpu_ticks = ticks;
			t->have_prev_cpu = 1;
		}
	}
	if (t->tty) {
		while ((ch = getch()) != ERR) {
			changed |= on_key(t, ch);
			if (t->quit) {
				stop_requested = 1;
				return;
			}
		}
	}
	if (now - t->last_take_ns >= INTERVAL_NS) {
		if ((err = take_interval(t, st, now)) < 0) {
			t->err = err;
			t->err_what = "read the samples";
			stop_requested = 1;
			return;
		}
		changed = 1;
		if (!t->tty) {
			if (build_rows(t) < 0 || (err = print_block(t)) < 0) {
				t->pipe_closed = 1;
				stop_requested = 1;
			}
			return;
		}
	}
	if (t->tty && changed) {
		if (build_rows(t) < 0) {
			t->err = -ENOMEM;
			t->err_what = "build the table";
			stop_requested = 1;
			return;
		}
		draw(t);
	}
}

static void top_free(struct top *t)
{
	size_t i;

	for (i = 0; i < t->nfuncs; i++) {
		free(t->funcs[i].name);
		free(t->funcs[i].file);
		free(t->funcs[i].threads);
	}
	free(t->funcs);
	free(t->func_tab);
	for (i = 0; i < t->nstacks; i++)
		free(t->stacks[i].f);
	free(t->stacks);
	free(t->stack_tab);
	free(t->threads);
	free(t->rows);
}

/* --name / --cmdline: the process found now, as xprof serve finds it. */
static pid_t find_target(const struct top_opts *o, char *comm, size_t commlen)
{
	struct xp_serve_target *st;
	pid_t pid;
	int err = xp_follow_target("top", &o->t, 0, &st);

	if (err < 0)
		return err;
	pid = xp_serve_target_current(st, comm, commlen);
	xp_serve_target_free(st);
	if (pid <= 0) {
		xp_msg("top: no process %s '%s' is running",
		       o->t.by == XP_SERVE_BY_NAME ? "named" : "whose command line matches", o->t.name);
		return -XP_EXIT_FATAL;
	}
	return pid;
}

int cmd_top(int argc, char **argv)
{
	struct top t;
	struct xp_cpu_opts co;
	const struct xp_cpu_stats *st;
	SCREEN *scr = NULL;
	char why[256];
	int rc, err, gone;
	pid_t pid;

	memset(&t, 0, sizeof(t));
	rc = parse(argc, argv, &t.o);
	if (rc >= 0)
		return rc;
	if (xp_stdout_closed) {
		xp_msg("top: standard output is closed: nothing to show the view on");
		return XP_EXIT_FATAL;
	}
	if (t.o.t.by != XP_SERVE_BY_PID) {
		pid = find_target(&t.o, t.comm, sizeof(t.comm));
		if (pid < 0)
			return -pid;
		t.o.t.pid = pid;
	}
	pid = xp_check_target_for(t.o.t.pid, t.comm, sizeof(t.comm), t.o.wall);
	if (pid < 0)
		return XP_EXIT_FATAL;
	t.pid = pid;
	t.tty = isatty(STDOUT_FILENO) && isatty(STDIN_FILENO);
	t.thread_filter = -1;
	t.show_kernel = 1;
	xp_install_stop_signals(on_stop_signal);

	memset(&co, 0, sizeof(co));
	co.pid = pid;
	co.comm = t.comm;
	co.duration_ns = INT64_MAX / 2;
	co.freq = t.o.freq;
	/* top's window is taken from the collector's own aggregate each
	 * second; --wall from perf without stopping, ptrace only where perf
	 * is refused */
	co.wall = t.o.wall ? XP_WALL : 0;
	co.kernel = 1;
	co.stop = &stop_requested;
	co.progress = on_progress;
	co.arg = &t;
	err = xp_cpu_open(&co, &t.c);
	if (!t.o.wall && (err == -EACCES || err == -EPERM)) {
		/* no silent fallback to --wall: that would stop the target */
		if (xp_explain_eperm(pid, why, sizeof(why)) == XP_EPERM_CREDENTIALS)
			xp_msg("top: cannot sample pid %d: operation not permitted (%s)", (int)pid, why);
		else
			xp_msg("top: cannot sample pid %d: perf_event_open refused (%s; --wall samples with ptrace, "
			       "stopping it at each tick)", (int)pid, why);
		return XP_EXIT_FATAL;
	}
	if (err < 0) {
		xp_msg("top: cannot sample pid %d: %s", (int)pid, strerror(-err));
		return XP_EXIT_FATAL;
	}
	if (t.o.wall) {
		st = xp_cpu_stats(t.c);
		t.wall_perf = st->wall_perf;
		if (!st->wall_perf && st->wall_perf_err != -EACCES && st->wall_perf_err != -EPERM) {
			/* stopping the threads is for when perf is not allowed, not a cure for its errors */
			xp_offcpu_open_error(pid, st->wall_perf_err, why, sizeof(why));
			xp_msg("top: %s", why);
			xp_cpu_close(t.c);
			return XP_EXIT_FATAL;
		}
	}
	if (t.tty) {
		/* newterm, not initscr: initscr exits on an unknown TERM */
		scr = newterm(NULL, stdout, stdin);
		if (!scr) {
			xp_msg("top: cannot use the terminal: TERM=%s is unknown to terminfo (set TERM, or pipe the "
			       "output for the text table)",
			       getenv("TERM") ? xp_esc(getenv("TERM")) : "");
			xp_cpu_close(t.c);
			return XP_EXIT_FATAL;
		}
		set_term(scr);
		cbreak();
		noecho();
		nodelay(stdscr, TRUE);
		keypad(stdscr, TRUE);
		curs_set(0);
		set_escdelay(25);
	}
	{
		/* kernel symbols now (the first take reads them), not in the first interval */
		struct xp_profile *p;
		if (xp_cpu_profile_take(t.c, &p) == 0)
			xp_profile_free(p);
	}
	t.start_ns = t.last_take_ns = xp_monotonic_ns();
	if (t.tty) {
		build_rows(&t);
		draw(&t);
	}
	err = xp_cpu_run(t.c);
	if (t.tty) {
		endwin(); /* before any message: every way out passes here */
		delscreen(scr);
	}
	st = xp_cpu_stats(t.c);
	gone = st->gone;
	rc = XP_EXIT_OK;
	if (t.err < 0) {
		xp_msg("top: cannot %s of pid %d: %s", t.err_what, (int)pid, strerror(-t.err));
		rc = XP_EXIT_FATAL;
	} else if (err < 0 && !t.pipe_closed) {
		xp_report_attach_error(pid, err);
		rc = XP_EXIT_FATAL;
	} else if (gone) {
		xp_msg("top: pid %d (%s) exited", (int)pid, t.comm);
	} else if (stop_signal && t.tty) {
		xp_msg("top: stopped by %s", strsignal(stop_signal));
	}
	xp_cpu_close(t.c);
	top_free(&t);
	return rc;
}
