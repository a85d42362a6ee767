/* xprof serve: net/http/pprof's endpoints for a process that has none, so
 * that go tool pprof, Parca and Grafana Alloy scrape it as they scrape a Go
 * program.  The HTTP side is serve/; this file parses the options, finds
 * the target (again, after it restarts, with --name or --cmdline), answers
 * the backend's calls with the collectors, and drains on SIGTERM.
 *
 * parse options → validate (address, token) → find the target → listen →
 * serve until SIGTERM/SIGINT/SIGHUP → drain → exit 0.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <pthread.h>
#include <regex.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "attach/attach.h"
#include "cmd/cmd.h"
#include "collect/collect.h"
#include "heapwalk/heapwalk.h"
#include "serve/serve.h"

#define MAX_SECONDS_DEFAULT 60
#define MAX_SECONDS_LIMIT 3600
#define CONNECTIONS_DEFAULT 16
#define TIMEOUT_DEFAULT 15          /* seconds an idle or stalled connection lives */
#define HEADER_BYTES_MAX (16 * 1024)
#define TOKEN_MIN 16
#define TOKEN_MAX 4096
#define DRAIN_WAIT_MS 30000
#define SERVE_HZ 99               /* as xprof cpu, and not 100: no lock-step with timers */

enum follow { BY_PID, BY_NAME, BY_CMDLINE };

struct serve_opts {
	enum follow by;
	pid_t pid;
	const char *name;            /* --name COMM or --cmdline REGEX as given */
	const char *listen;
	const char *token_file;
	int64_t max_seconds;
	unsigned max_connections;
	unsigned timeout;
};

/* The process being served: fixed by -p, or found again by name. */
struct target {
	pthread_mutex_t lock;        /* the fields below up to is_go */
	enum follow by;
	const char *name;
	regex_t re;
	pid_t pid;                   /* 0: none found yet */
	int pidfd;                   /* pins that very process: a reused pid is not it */
	char comm[64];
	int is_go;
	/* kept between requests (for ts.pid): modules, debug info, symbol
	 * caches, the unwinder, a Go program's runtime layouts */
	pthread_mutex_t space_lock;  /* whoever uses ts and gt: a CPU profile for its whole run */
	pthread_mutex_t stop_lock;   /* one stop of the target at a time */
	struct xp_target_space ts;
	struct xp_go_target gt;
};

static void usage(FILE *f)
{
	fputs("usage: xprof serve (-p PID | --name COMM | --cmdline REGEX) [--listen ADDR:PORT]\n"
	      "                   [--token FILE] [--max-seconds N] [--max-connections N] [--timeout S]\n"
	      "\n"
	      "Serves Go's net/http/pprof endpoints for one process, read from outside,\n"
	      "so that go tool pprof, Parca and Grafana Alloy scrape it unchanged:\n"
	      "\n"
	      "  /debug/pprof/                    an index of what the process offers\n"
	      "  /debug/pprof/profile?seconds=N   CPU profile (default 30 s)\n"
	      "  /debug/pprof/heap                glibc heap now, or a Go program's heap profile\n"
	      "  /debug/pprof/goroutine           every thread's (Go: goroutine's) stack;\n"
	      "                                   ?debug=1 counts by stack, ?debug=2 the dump\n"
	      "                                   (Go's own for a Go program)\n"
	      "  /debug/pprof/threadcreate        threads by the stack that started them\n"
	      "  /debug/pprof/allocs, block, mutex  a Go program's allocs, block, mutex profiles\n"
	      "  /debug/pprof/cmdline             the process's command line\n"
	      "\n"
	      "  -p, --pid PID          the process, for as long as it lives\n"
	      "      --name COMM        the oldest process of that name, found again when\n"
	      "                         it exits and another starts\n"
	      "      --cmdline REGEX    likewise, by a match in its command line (POSIX ERE)\n"
	      "      --listen ADDR:PORT where to listen (default 127.0.0.1:6060; port 0 picks\n"
	      "                         a free one); any address but loopback needs --token\n"
	      "      --token FILE       ask every request for Authorization: Bearer TOKEN,\n"
	      "                         TOKEN the file's content (at least 16 characters,\n"
	      "                         the file readable by its owner only)\n"
	      "      --max-seconds N    the longest CPU profile served (default 60)\n"
	      "      --max-connections N  connections at once; more are closed (default 16)\n"
	      "      --timeout S        an idle or stalled connection is closed after S\n"
	      "                         seconds (default 15)\n"
	      "  -h, --help             this help\n"
	      "\n"
	      "One CPU profile at a time: a second gets net/http/pprof's \"cpu profiling\n"
	      "already in use\" at once.  A target that exits is answered 410 (-p) or 404\n"
	      "(--name, --cmdline: until the next one starts); the server keeps running.\n"
	      "Modules, debug info and symbol caches are kept between requests and\n"
	      "rebuilt when the target's code mappings change.  SIGTERM or SIGINT ends\n"
	      "a CPU profile in progress early, answers it, and exits 0; the target\n"
	      "runs on.\n"
	      "\n"
	      "Exit status: 0 stopped by a signal, 2 failure, 64 bad usage.\n",
	      f);
}

static int parse_count(const char *what, const char *s, long min, long max, long *v)
{
	char *end;

	errno = 0;
	*v = strtol(s, &end, 10);
	if (!*s || *end || errno || *v < min || *v > max) {
		xp_msg("serve: invalid %s '%s': want %ld to %ld", what, s, min, max);
		return -1;
	}
	return 0;
}

static int parse(int argc, char **argv, struct serve_opts *o)
{
	enum { OPT_NAME = 256, OPT_CMDLINE, OPT_LISTEN, OPT_TOKEN, OPT_MAX_SECONDS, OPT_MAX_CONN, OPT_TIMEOUT };
	static const struct option longopts[] = {
		{ "pid", required_argument, NULL, 'p' },
		{ "name", required_argument, NULL, OPT_NAME },
		{ "cmdline", required_argument, NULL, OPT_CMDLINE },
		{ "listen", required_argument, NULL, OPT_LISTEN },
		{ "token", required_argument, NULL, OPT_TOKEN },
		{ "max-seconds", required_argument, NULL, OPT_MAX_SECONDS },
		{ "max-connections", required_argument, NULL, OPT_MAX_CONN },
		{ "timeout", required_argument, NULL, OPT_TIMEOUT },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int c, targets = 0;
	long v;

	memset(o, 0, sizeof(*o));
	o->listen = "127.0.0.1:6060";
	o->max_seconds = MAX_SECONDS_DEFAULT;
	o->max_connections = CONNECTIONS_DEFAULT;
	o->timeout = TIMEOUT_DEFAULT;
	optind = 1;
	while ((c = getopt_long(argc, argv, "p:h", longopts, NULL)) != -1) {
		switch (c) {
		case 'p':
			o->pid = xp_parse_pid(optarg);
			if (o->pid < 0)
				return XP_EXIT_USAGE;
			o->by = BY_PID;
			targets++;
			break;
		case OPT_NAME:
		case OPT_CMDLINE:
			if (!*optarg) {
				xp_msg("serve: --%s wants a non-empty %s", c == OPT_NAME ? "name" : "cmdline",
				       c == OPT_NAME ? "process name" : "pattern");
				return XP_EXIT_USAGE;
			}
			o->by = c == OPT_NAME ? BY_NAME : BY_CMDLINE;
			o->name = optarg;
			targets++;
			break;
		case OPT_LISTEN:
			o->listen = optarg;
			break;
		case OPT_TOKEN:
			o->token_file = optarg;
			break;
		case OPT_MAX_SECONDS:
			if (parse_count("--max-seconds", optarg, 1, MAX_SECONDS_LIMIT, &v) < 0)
				return XP_EXIT_USAGE;
			o->max_seconds = v;
			break;
		case OPT_MAX_CONN:
			if (parse_count("--max-connections", optarg, 1, 1024, &v) < 0)
				return XP_EXIT_USAGE;
			o->max_connections = (unsigned)v;
			break;
		case OPT_TIMEOUT:
			if (parse_count("--timeout", optarg, 1, 3600, &v) < 0)
				return XP_EXIT_USAGE;
			o->timeout = (unsigned)v;
			break;
		case 'h':
			usage(stdout);
			return XP_EXIT_OK;
		default:
			fputs("try 'xprof serve --help'\n", stderr);
			return XP_EXIT_USAGE;
		}
	}
	if (optind < argc) {
		xp_msg("serve: unexpected argument '%s'", argv[optind]);
		return XP_EXIT_USAGE;
	}
	if (targets != 1) {
		xp_msg("serve: give one target: -p PID, --name COMM or --cmdline REGEX (try 'xprof serve --help')");
		return XP_EXIT_USAGE;
	}
	return -1;
}

/* The token file: a secret, so readable by its owner only, and long enough
 * not to be guessed.  Trailing newlines and spaces are not part of it. */
static char *read_token(const char *path, size_t *len)
{
	char buf[TOKEN_MAX + 2];
	struct stat st;
	ssize_t n;
	size_t i;
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);

	if (fd < 0) {
		xp_msg("serve: cannot read token file %s: %s", path, strerror(errno));
		return NULL;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		xp_msg("serve: token file %s is not a regular file", path);
		close(fd);
		return NULL;
	}
	if (st.st_mode & 077) {
		xp_msg("serve: token file %s can be read by other users (chmod 600 %s)", path, path);
		close(fd);
		return NULL;
	}
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n < 0 || n > TOKEN_MAX) {
		xp_msg("serve: cannot read token file %s: %s", path, n < 0 ? strerror(errno) : "longer than 4096 bytes");
		return NULL;
	}
	while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r' || buf[n - 1] == ' '))
		n--;
	buf[n] = '\0';
	for (i = 0; i < (size_t)n; i++)
		if (buf[i] <= ' ' || buf[i] == 0x7f) {
			xp_msg("serve: token in %s holds a space or control character: want one line of "
			       "printable text",
			       path);
			return NULL;
		}
	if (n < TOKEN_MIN) {
		xp_msg("serve: token in %s is too short: want at least %d characters "
		       "(head -c 32 /dev/urandom | base64 > %s)",
		       path, TOKEN_MIN, path);
		return NULL;
	}
	*len = (size_t)n;
	return strdup(buf);
}

/* ---- the target --------------------------------------------------------- */

static int pidfd_alive(int fd)
{
	return syscall(SYS_pidfd_send_signal, fd, 0, NULL, 0) == 0 || errno != ESRCH;
}

/* Does the process pid match what --name or --cmdline asks for? */
static int matches(struct target *t, pid_t pid)
{
	char path[64], buf[4096];
	int fd;
	ssize_t n, i;

	if (t->by == BY_NAME) {
		snprintf(path, sizeof(path), "/proc/%d/comm", (int)pid);
		fd = open(path, O_RDONLY | O_CLOEXEC);
	} else {
		snprintf(path, sizeof(path), "/proc/%d/cmdline", (int)pid);
		fd = open(path, O_RDONLY | O_CLOEXEC);
	}
	if (fd < 0)
		return 0;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return 0;
	if (t->by == BY_NAME) {
		if (buf[n - 1] == '\n')
			n--;
		buf[n] = '\0';
		return strcmp(buf, t->name) == 0;
	}
	for (i = 0; i < n; i++)
		if (buf[i] == '\0')
			buf[i] = ' ';
	while (n > 0 && buf[n - 1] == ' ')
		n--;
	buf[n] = '\0';
	return regexec(&t->re, buf, 0, NULL, 0) == 0;
}

/* The start time of pid in clock ticks (field 22 of /proc/PID/stat), and
 * its parent; 0 when unreadable. */
static unsigned long long start_time(pid_t pid, pid_t *ppid)
{
	char path[64], buf[1024], *p;
	unsigned long long st = 0;
	int fd, n, field;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	n = (int)read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return 0;
	buf[n] = '\0';
	p = strrchr(buf, ')');
	if (!p)
		return 0;
	/* ") S ppid ..." : field 3 is the state */
	for (field = 2; p && field < 22; field++) {
		p = strchr(p + 1, ' ');
		if (p && field == 3)
			*ppid = (pid_t)strtol(p + 1, NULL, 10);
	}
	if (p)
		st = strtoull(p + 1, NULL, 10);
	return st;
}

/* The oldest process that matches, leaving out xprof and what it started
 * (whose command lines name the pattern too). */
static pid_t find_by_name(struct target *t)
{
	DIR *d = opendir("/proc");
	struct dirent *e;
	unsigned long long best_start = 0;
	pid_t best = 0, self = getpid();

	if (!d)
		return 0;
	while ((e = readdir(d))) {
		pid_t pid = (pid_t)atoi(e->d_name), ppid = 0;
		unsigned long long st;
		if (pid <= 0 || pid == self || !matches(t, pid))
			continue;
		st = start_time(pid, &ppid);
		if (!st || ppid == self)
			continue;
		if (!best || st < best_start) {
			best = pid;
			best_start = st;
		}
	}
	closedir(d);
	return best;
}

/* Takes pid as the target: checked as every command checks a target. */
static int take(struct target *t, pid_t pid, char *why, size_t whylen)
{
	struct xp_proc p;
	enum xp_proc_problem problem;
	struct xp_go_target gt;
	int fd, err;

	err = xp_proc_check(pid, &p, &problem);
	if (err < 0 || problem != XP_PROC_OK) {
		snprintf(why, whylen, "pid %d cannot be profiled: %s", (int)pid,
			 err < 0 ? strerror(-err) :
			 problem == XP_PROC_NO_SUCH ? "no such process" :
			 problem == XP_PROC_ZOMBIE ? "it is a zombie" :
			 problem == XP_PROC_KERNEL_THREAD ? "it is a kernel thread" :
			 problem == XP_PROC_SELF ? "it is xprof itself" : "it is traced by another process");
		return problem == XP_PROC_NO_SUCH ? -ESRCH : -EINVAL;
	}
	fd = (int)syscall(SYS_pidfd_open, p.pid, 0);
	if (fd < 0) {
		snprintf(why, whylen, "cannot pin pid %d: %s", (int)pid, strerror(errno));
		return -errno;
	}
	if (t->pidfd >= 0)
		close(t->pidfd);
	t->pidfd = fd;
	t->pid = p.pid;
	xp_escape(p.comm, t->comm, sizeof(t->comm));
	/* Go or not decides what the target offers; a Go program whose runtime
	 * cannot be read is served as a native one.  The kept modules are
	 * opened now unless a CPU profile holds them (then at the next use). */
	if (pthread_mutex_trylock(&t->space_lock) == 0) {
		xp_go_target_close(&t->gt);
		xp_target_space_close(&t->ts);
		err = xp_target_space_open(p.pid, 0, &t->ts);
		if (err == 0)
			err = xp_go_target_borrow(&t->ts, &t->gt, why, whylen);
		pthread_mutex_unlock(&t->space_lock);
	} else {
		err = xp_go_target_open(p.pid, &gt, why, whylen);
		if (err > 0)
			xp_go_target_close(&gt);
	}
	t->is_go = err > 0;
	return 0;
}

/* Under t->lock: the target now, found again if it exited and the server
 * follows a name.  0, or an HTTP status with the reason. */
static int resolve(struct target *t, char *why, size_t whylen)
{
	pid_t pid;

	if (t->pid > 0 && pidfd_alive(t->pidfd))
		return 0;
	if (t->by == BY_PID) {
		if (t->pid > 0) {
			close(t->pidfd);
			t->pidfd = -1;
			t->pid = -t->pid;
		}
		snprintf(why, whylen, "pid %d (%s) has exited: xprof serve -p follows one process (--name or "
			 "--cmdline follow a service across restarts)",
			 (int)-t->pid, t->comm);
		return 410;
	}
	t->pid = 0;
	pid = find_by_name(t);
	if (!pid) {
		snprintf(why, whylen, "no process %s '%s' is running (the next one to start is served)",
			 t->by == BY_NAME ? "named" : "whose command line matches", t->name);
		return 404;
	}
	if (take(t, pid, why, whylen) < 0)
		return 404;
	return 0;
}

/* ---- collecting ---------------------------------------------------------- */

/* Under t->space_lock: the kept modules (and Go runtime) of pid, opened,
 * or checked against its maps and rebuilt when its code changed. */
static int ensure_space(struct target *t, pid_t pid, int is_go, char *why, size_t whylen)
{
	int err, rebuilt;

	if (t->ts.pid != pid) {
		xp_go_target_close(&t->gt);
		xp_target_space_close(&t->ts);
		err = xp_target_space_open(pid, 0, &t->ts);
		if (err < 0) {
			snprintf(why, whylen, "cannot read the modules of pid %d: %s", (int)pid, strerror(-err));
			return err;
		}
		rebuilt = 1;
	} else {
		err = xp_target_space_refresh(&t->ts);
		if (err < 0) {
			snprintf(why, whylen, "cannot read the memory map of pid %d: %s", (int)pid, strerror(-err));
			return err;
		}
		rebuilt = err == 1;
	}
	if (rebuilt || (is_go && !t->gt.go)) {
		xp_go_target_close(&t->gt);
		if (is_go && xp_go_target_borrow(&t->ts, &t->gt, why, whylen) <= 0)
			return -ENOTSUP;
	}
	return 0;
}

/* A profile as the answer: gzipped, as Go sends them. */
static void answer_profile(struct xp_profile *p, struct xp_serve_reply *r)
{
	int err = xp_profile_gzip(p, &r->body, &r->len);

	xp_profile_free(p);
	if (err < 0) {
		r->status = 500;
		snprintf(r->msg, sizeof(r->msg), "cannot encode the profile: %s", strerror(-err));
		return;
	}
	r->status = 200;
}

static void fail(struct xp_serve_reply *r, int status, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void fail(struct xp_serve_reply *r, int status, const char *fmt, ...)
{
	va_list ap;

	r->status = status;
	va_start(ap, fmt);
	vsnprintf(r->msg, sizeof(r->msg), fmt, ap);
	va_end(ap);
}

/* What an attach error means to a client, the way xprof's commands say it. */
static void fail_attach(struct xp_serve_reply *r, pid_t pid, int err)
{
	char why[200];

	if (err == -EPERM || err == -EACCES) {
		xp_explain_eperm(pid, why, sizeof(why));
		fail(r, 500, "cannot attach to pid %d: operation not permitted (%s)", (int)pid, why);
	} else if (err == -ESRCH) {
		fail(r, 410, "pid %d exited", (int)pid);
	} else {
		fail(r, 500, "cannot attach to pid %d: %s", (int)pid, strerror(-err));
	}
}

/* profile?seconds=N: perf sampling at 99 Hz over the kept modules.  The
 * kept space is the run's for its whole length: other requests meanwhile
 * open their own. */
static void collect_cpu(struct target *t, pid_t pid, const char *comm, int is_go, const struct xp_serve_query *q,
			struct xp_serve_reply *r)
{
	struct xp_cpu_opts co = {
		.pid = pid,
		.comm = comm,
		.duration_ns = q->seconds * 1000000000LL,
		.freq = SERVE_HZ,
		.kernel = 1,
		.stop = q->stop,
	};
	struct xp_cpu *c = NULL;
	struct xp_profile *p = NULL;
	int err;

	pthread_mutex_lock(&t->space_lock);
	if (ensure_space(t, pid, is_go, r->msg, sizeof(r->msg)) == 0)
		co.space = &t->ts;
	err = xp_cpu_open(&co, &c);
	if (err < 0) {
		pthread_mutex_unlock(&t->space_lock);
		/* runtime/pprof's StartCPUProfile error, as net/http/pprof words it */
		fail(r, 500, "Could not enable CPU profiling: perf_event_open on pid %d: %s", (int)pid, strerror(-err));
		return;
	}
	err = xp_cpu_run(c);
	if (err == 0)
		err = xp_cpu_profile(c, &p);
	xp_cpu_close(c);
	pthread_mutex_unlock(&t->space_lock);
	if (err < 0) {
		fail_attach(r, pid, err);
		return;
	}
	answer_profile(p, r);
}

/* Text into memory: what a stream-writing printer wrote, as the body. */
struct text {
	FILE *f;
	char *buf;
	size_t len;
};

static int text_open(struct text *tx)
{
	tx->buf = NULL;
	tx->len = 0;
	tx->f = open_memstream(&tx->buf, &tx->len);
	return tx->f ? 0 : -ENOMEM;
}

static void text_answer(struct text *tx, struct xp_serve_reply *r)
{
	if (fclose(tx->f) != 0) {
		free(tx->buf);
		fail(r, 500, "out of memory");
		return;
	}
	r->body = (uint8_t *)tx->buf;
	r->len = tx->len;
	r->status = 200;
}

/* The threads of a stop, unwound, as the query wants them: goroutine
 * (profile, debug=1 counts, debug=2 dump) or threadcreate. */
static void answer_threads(struct xp_thread_dump *dp, const struct xp_serve_query *q,
			   const struct xp_target_space *ts, struct xp_serve_reply *r)
{
	int starts = q->kind == XP_SERVE_THREADCREATE;
	struct xp_profile *p = NULL;
	struct text tx;
	int err = xp_threads_unwind(dp, ts);

	if (err < 0) {
		fail(r, 500, "cannot unwind pid %d: %s", (int)dp->pid, strerror(-err));
		return;
	}
	if (q->debug == 0) {
		err = starts ? xp_threads_start_profile(dp, &p) : xp_threads_profile(dp, &p);
		if (err < 0)
			fail(r, 500, "cannot make the %s profile: %s", xp_serve_kind_name(q->kind), strerror(-err));
		else
			answer_profile(p, r);
		return;
	}
	if (text_open(&tx) < 0) {
		fail(r, 500, "out of memory");
		return;
	}
	if (starts) {
		xp_threads_print_starts(dp, tx.f);
	} else if (q->debug == 1) {
		xp_threads_print_counts(dp, tx.f);
	} else {
		xp_threads_deadlocks(dp, tx.f);
		xp_threads_print(dp, tx.f);
	}
	text_answer(&tx, r);
}

/* goroutine: a Go program's goroutines (Go's own dump for debug=2), else
 * every thread (xprof threads' dump). */
static void collect_goroutines(struct target *t, pid_t pid, int is_go, const struct xp_serve_query *q,
			       const struct xp_target_space *ts, struct xp_serve_reply *r)
{
	struct xp_thread_dump dp;
	struct xp_goroutines gs;
	struct xp_profile *p = NULL;
	struct text tx;
	size_t incomplete;
	int err;

	memset(&dp, 0, sizeof(dp));
	memset(&gs, 0, sizeof(gs));
	dp.pid = pid;
	if (is_go && t->gt.go) {
		gs.go = t->gt.go;
		err = xp_snapshot_take_with(pid, &dp.snap, xp_go_read_goroutines, &gs);
		if (err < 0) {
			fail_attach(r, pid, err);
			goto out;
		}
		xp_goroutines_finish(&gs);
		if (gs.n > 0 && !(dp.snap.hold_err < 0 && !gs.problem[0])) {
			if (q->debug == 0) {
				err = xp_go_goroutine_profile(&t->gt, &gs, &dp.snap, &p);
				if (err < 0)
					fail(r, 500, "cannot make the goroutine profile: %s", strerror(-err));
				else
					answer_profile(p, r);
			} else if (text_open(&tx) < 0) {
				fail(r, 500, "out of memory");
			} else {
				if (q->debug == 1)
					xp_go_print_goroutine_counts(&t->gt, &gs, tx.f);
				else
					xp_go_print_goroutines(t->gt.go, &gs, tx.f, &incomplete);
				text_answer(&tx, r);
			}
			goto out;
		}
		/* the goroutines could not be read: the threads instead */
	} else {
		err = xp_snapshot_take(pid, &dp.snap);
		if (err < 0) {
			fail_attach(r, pid, err);
			goto out;
		}
	}
	answer_threads(&dp, q, ts, r);
out:
	xp_goroutines_free(&gs);
	xp_threads_free(&dp);
}

/* threadcreate: every OS thread by the stack of its start. */
static void collect_threadcreate(pid_t pid, const struct xp_serve_query *q, const struct xp_target_space *ts,
				 struct xp_serve_reply *r)
{
	struct xp_thread_dump dp;
	int err;

	memset(&dp, 0, sizeof(dp));
	dp.pid = pid;
	err = xp_snapshot_take(pid, &dp.snap);
	if (err < 0)
		fail_attach(r, pid, err);
	else
		answer_threads(&dp, q, ts, r);
	xp_threads_free(&dp);
}

/* heap, allocs, block, mutex of a Go program: the runtime's own. */
static void collect_go_profile(struct target *t, pid_t pid, enum xp_serve_kind kind, struct xp_serve_reply *r)
{
	struct xp_go_heap h = {
		.kind = kind == XP_SERVE_BLOCK ? XP_GO_BLOCK : kind == XP_SERVE_MUTEX ? XP_GO_MUTEX : XP_GO_HEAP,
	};
	struct xp_snapshot snap;
	struct xp_profile *p = NULL;
	const char *name = xp_serve_kind_name(kind);
	char why[512];
	int err;

	memset(&snap, 0, sizeof(snap));
	err = xp_go_profile_read(&t->gt, pid, &h, &snap, why, sizeof(why));

	if (err == -ENOTSUP || err == -EIO)
		fail(r, 500, "cannot read the Go %s profile of pid %d: %.200s", name, (int)pid, why);
	else if (err == -ENODATA && h.kind == XP_GO_HEAP)
		fail(r, 404, "pid %d records no heap profile: its runtime.MemProfileRate is 0 (it imports neither "
		     "runtime/pprof nor net/http/pprof)", (int)pid);
	else if (err == -ENODATA)
		fail(r, 404, "pid %d records no %s profile: the program turns it on with %s", (int)pid, name,
		     h.kind == XP_GO_BLOCK ? "runtime.SetBlockProfileRate" : "runtime.SetMutexProfileFraction");
	else if (err < 0)
		fail_attach(r, pid, err);
	else if ((err = xp_go_profile_build(&t->gt, &h, snap.time_ns, &p)) < 0 ||
		 (kind == XP_SERVE_ALLOCS && (err = xp_profile_set_default_sample_type(p, "alloc_space")) < 0))
		fail(r, 500, "cannot make the %s profile: %s", name, strerror(-err));
	else
		answer_profile(p, r), p = NULL;
	xp_profile_free(p);
	xp_go_heap_free(&h);
	xp_snapshot_free(&snap);
}

static void read_cmdline(pid_t pid, struct xp_serve_reply *r)
{
	char path[64];
	uint8_t *b = NULL;
	size_t cap = 0;
	ssize_t n = 0;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/cmdline", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	r->len = 0;
	/* a /proc file's size is 0 until read; ARG_MAX bounds it */
	while (fd >= 0 && r->len < (1 << 22)) {
		if (r->len == cap) {
			uint8_t *nb = realloc(b, cap = cap ? cap * 2 : 4096);
			if (!nb)
				break;
			b = nb;
		}
		n = read(fd, b + r->len, cap - r->len);
		if (n <= 0 && !(n < 0 && errno == EINTR))
			break;
		if (n > 0)
			r->len += (size_t)n;
	}
	if (fd >= 0)
		close(fd);
	if (fd < 0 || n < 0 || !b) {
		free(b);
		fail(r, 500, "cannot read the command line of pid %d", (int)pid);
		return;
	}
	/* Go joins its arguments with NUL; /proc ends each with one */
	if (r->len > 0 && b[r->len - 1] == '\0')
		r->len--;
	r->body = b;
	r->status = 200;
}

/* heap of a native program: glibc's, walked while the process is stopped. */
static void collect_glibc_heap(pid_t pid, const char *comm, const struct xp_target_space *ts, struct xp_serve_reply *r)
{
	struct xp_heap h;
	struct xp_snapshot snap;
	struct xp_maps maps = { 0 };
	struct xp_space *space = NULL;
	struct xp_mem *live = NULL;
	struct xp_profile *p = NULL;
	enum xp_heap_stage stage;
	const char *what;
	int err;

	memset(&h, 0, sizeof(h));
	memset(&snap, 0, sizeof(snap));
	if (ts) {
		space = ts->space;
		maps = ts->maps;
	} else if (!(live = xp_mem_process(pid)) || (err = xp_maps_read(pid, &maps)) < 0 ||
		   (err = xp_space_open(pid, &maps, live, 0, &space)) < 0) {
		fail_attach(r, pid, live ? err : -ENOMEM);
		goto out;
	}
	switch (xp_heap_check(space, &maps, &what)) {
	case XP_HEAP_OK:
		break;
	case XP_HEAP_NO_GLIBC:
		fail(r, 501, "pid %d (%s) has no glibc mapped: only glibc's malloc is supported yet", (int)pid, comm);
		goto out;
	case XP_HEAP_OTHER_MALLOC:
		fail(r, 501, "pid %d (%s) allocates with %s: only glibc's malloc is supported yet", (int)pid, comm, what);
		goto out;
	case XP_HEAP_NO_DEBUGINFO:
		fail(r, 500, "cannot find malloc's state in %s: its debug info is missing (Debian: apt install libc6-dbg)",
		     what);
		goto out;
	}
	err = xp_glibc_heap_collect(pid, space, &maps, &h, &snap, &stage);
	if (err < 0 && stage == XP_HEAP_STAGE_PREPARE)
		fail(r, 503, "the heap of pid %d is too big to walk in the memory available now", (int)pid);
	else if (err < 0 && stage == XP_HEAP_STAGE_STOP)
		fail_attach(r, pid, err);
	else if (err < 0)
		fail(r, 500, "cannot walk the heap of pid %d: %s", (int)pid, strerror(-err));
	else if ((err = xp_heap_profile(&h, &maps, snap.time_ns, &p)) < 0)
		fail(r, 500, "cannot make the heap profile: %s", strerror(-err));
	else
		answer_profile(p, r);
out:
	xp_heap_free(&h);
	xp_snapshot_free(&snap);
	if (!ts) {
		xp_space_close(space);
		xp_mem_close(live);
		xp_maps_free(&maps);
	}
}

static int offer(void *ctx, struct xp_serve_offer *o)
{
	struct target *t = ctx;
	int status, k;

	pthread_mutex_lock(&t->lock);
	status = resolve(t, o->title, sizeof(o->title));
	if (!status) {
		snprintf(o->title, sizeof(o->title), "pid %d (%s)", (int)t->pid, t->comm);
		for (k = 0; k < XP_SERVE_KINDS; k++)
			o->count[k] = -1;
		o->offered[XP_SERVE_CPU] = o->offered[XP_SERVE_HEAP] = 1;
		o->offered[XP_SERVE_GOROUTINE] = o->offered[XP_SERVE_CMDLINE] = 1;
		o->offered[XP_SERVE_THREADCREATE] = 1;
		o->offered[XP_SERVE_BLOCK] = o->offered[XP_SERVE_MUTEX] = o->offered[XP_SERVE_ALLOCS] = t->is_go;
	}
	pthread_mutex_unlock(&t->lock);
	return status;
}

static sigset_t alarm_only;

static void collect(void *ctx, const struct xp_serve_query *q, struct xp_serve_reply *r)
{
	struct target *t = ctx;
	char comm[64];
	int status, is_go, kept;
	pid_t pid;

	pthread_mutex_lock(&t->lock);
	status = resolve(t, r->msg, sizeof(r->msg));
	pid = t->pid;
	is_go = t->is_go;
	snprintf(comm, sizeof(comm), "%s", t->comm);
	pthread_mutex_unlock(&t->lock);
	if (status) {
		r->status = status;
		return;
	}
	switch (q->kind) {
	case XP_SERVE_CMDLINE:
		read_cmdline(pid, r);
		return;
	case XP_SERVE_CPU:
		collect_cpu(t, pid, comm, is_go, q, r);
		goto check_gone;
	case XP_SERVE_ALLOCS:
		if (!is_go) {
			fail(r, 404, "pid %d (%s) is not a Go program: its heap keeps no allocation history (see heap)",
			     (int)pid, comm);
			return;
		}
		break;
	case XP_SERVE_BLOCK:
	case XP_SERVE_MUTEX:
		if (!is_go) {
			fail(r, 501, "pid %d (%s) is not a Go program: native %s profiles are not implemented yet",
			     (int)pid, comm, xp_serve_kind_name(q->kind));
			return;
		}
		break;
	case XP_SERVE_GOROUTINE:
	case XP_SERVE_HEAP:
	case XP_SERVE_THREADCREATE:
		break;
	default:
		fail(r, 404, "%s is not offered for pid %d (%s)", xp_serve_kind_name(q->kind), (int)pid, comm);
		return;
	}
	if (q->debug && q->kind != XP_SERVE_GOROUTINE && q->kind != XP_SERVE_THREADCREATE) {
		fail(r, 501, "xprof serve writes %s as a pprof profile only (debug=0)", xp_serve_kind_name(q->kind));
		return;
	}

	/* one stop of the target at a time; the kept modules unless a CPU
	 * profile has them.  A stop bounds its waits with SIGALRM (a process
	 * signal, blocked in every thread of the server): this thread takes it
	 * while it stops the target. */
	pthread_mutex_lock(&t->stop_lock);
	pthread_sigmask(SIG_UNBLOCK, &alarm_only, NULL);
	kept = pthread_mutex_trylock(&t->space_lock) == 0;
	if (kept && ensure_space(t, pid, is_go, r->msg, sizeof(r->msg)) < 0) {
		pthread_mutex_unlock(&t->space_lock);
		kept = 0;
	}
	r->msg[0] = '\0';
	if (q->kind == XP_SERVE_THREADCREATE) {
		collect_threadcreate(pid, q, kept ? &t->ts : NULL, r);
	} else if (!kept && is_go) {
		/* the kept Go runtime is a CPU profile's now, or could not be
		 * opened: one for this request */
		struct target tmp;
		char why[256];
		memset(&tmp, 0, sizeof(tmp));
		if (xp_go_target_open(pid, &tmp.gt, why, sizeof(why)) <= 0) {
			fail(r, 500, "pid %d (%s) is a Go program, but xprof cannot read its runtime: %.180s", (int)pid,
			     comm, why);
		} else {
			if (q->kind == XP_SERVE_GOROUTINE)
				collect_goroutines(&tmp, pid, 1, q, NULL, r);
			else
				collect_go_profile(&tmp, pid, q->kind, r);
			xp_go_target_close(&tmp.gt);
		}
	} else if (q->kind == XP_SERVE_GOROUTINE) {
		collect_goroutines(t, pid, is_go, q, kept ? &t->ts : NULL, r);
	} else if (is_go) {
		collect_go_profile(t, pid, q->kind, r);
	} else {
		collect_glibc_heap(pid, comm, kept ? &t->ts : NULL, r);
	}
	if (kept)
		pthread_mutex_unlock(&t->space_lock);
	pthread_sigmask(SIG_BLOCK, &alarm_only, NULL);
	pthread_mutex_unlock(&t->stop_lock);
check_gone:
	if (r->status != 200) {
		/* a target that exited meanwhile is answered as such */
		pthread_mutex_lock(&t->lock);
		status = resolve(t, r->msg, sizeof(r->msg));
		pthread_mutex_unlock(&t->lock);
		if (status) {
			free(r->body);
			r->body = NULL;
			r->status = status;
		}
	}
}

/* ---- the command ---------------------------------------------------------- */

int cmd_serve(int argc, char **argv)
{
	struct serve_opts o;
	struct target t;
	struct sockaddr_storage sa;
	socklen_t salen;
	struct xp_serve_config cfg;
	struct xp_serve_backend be = { &t, offer, collect };
	struct xp_server *srv;
	char why[256], url[128], host[64];
	char *token = NULL;
	size_t token_len = 0;
	sigset_t ends;
	int rc, fd, port, sig, err;
	unsigned left;
	uint64_t answered, refused;

	rc = parse(argc, argv, &o);
	if (rc >= 0)
		return rc;
	if (xp_serve_parse_listen(o.listen, &sa, &salen) < 0) {
		xp_msg("serve: invalid --listen '%s': want ADDR:PORT (127.0.0.1:6060, [::1]:6060)", o.listen);
		return XP_EXIT_USAGE;
	}
	if (!xp_serve_is_loopback(&sa) && !o.token_file) {
		xp_msg("serve: refusing to listen on %s without --token FILE: any host that reaches it could "
		       "read this process's memory through its profiles",
		       o.listen);
		return XP_EXIT_USAGE;
	}
	if (o.token_file && !(token = read_token(o.token_file, &token_len)))
		return XP_EXIT_FATAL;

	memset(&t, 0, sizeof(t));
	pthread_mutex_init(&t.lock, NULL);
	pthread_mutex_init(&t.space_lock, NULL);
	pthread_mutex_init(&t.stop_lock, NULL);
	t.by = o.by;
	t.name = o.name;
	t.pidfd = -1;
	if (o.by == BY_CMDLINE && (err = regcomp(&t.re, o.name, REG_EXTENDED | REG_NOSUB)) != 0) {
		regerror(err, &t.re, why, sizeof(why));
		xp_msg("serve: invalid --cmdline pattern '%s': %s", o.name, why);
		free(token);
		return XP_EXIT_USAGE;
	}
	if (o.by == BY_PID) {
		pid_t pid = xp_check_target(o.pid, t.comm, sizeof(t.comm));
		if (pid < 0 || take(&t, pid, why, sizeof(why)) < 0) {
			if (pid >= 0)
				xp_msg("serve: %s", why);
			rc = XP_EXIT_FATAL;
			goto out_token;
		}
	} else {
		resolve(&t, why, sizeof(why));
	}
	fd = xp_serve_listen(&sa, salen, &port);
	if (fd < 0) {
		xp_msg("serve: cannot listen on %s: %s%s", o.listen, strerror(-fd),
		       fd == -EADDRINUSE ? " (another server has it: choose another with --listen ADDR:PORT)" : "");
		rc = XP_EXIT_FATAL;
		goto out_target;
	}
	/* the signals that end the server wait for the main thread: the
	 * server's threads inherit this mask */
	sigemptyset(&ends);
	sigaddset(&ends, SIGTERM);
	sigaddset(&ends, SIGINT);
	sigaddset(&ends, SIGHUP);
	sigemptyset(&alarm_only);
	sigaddset(&alarm_only, SIGALRM);
	pthread_sigmask(SIG_BLOCK, &ends, NULL);
	pthread_sigmask(SIG_BLOCK, &alarm_only, NULL);
	signal(SIGPIPE, SIG_IGN);

	memset(&cfg, 0, sizeof(cfg));
	cfg.listen_fd = fd;
	cfg.limits.max_seconds = o.max_seconds;
	cfg.limits.token = token;
	cfg.limits.token_len = token_len;
	cfg.max_connections = o.max_connections;
	cfg.timeout_seconds = o.timeout;
	cfg.max_header_bytes = HEADER_BYTES_MAX;
	err = xp_serve_start(&cfg, &be, &srv);
	if (err < 0) {
		xp_msg("serve: cannot start the HTTP server on %s: %s", o.listen, strerror(-err));
		close(fd);
		rc = XP_EXIT_FATAL;
		goto out_target;
	}

	if (sa.ss_family == AF_INET6) {
		inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&sa)->sin6_addr, host, sizeof(host));
		snprintf(url, sizeof(url), "http://[%s]:%d/debug/pprof/", host, port);
	} else {
		inet_ntop(AF_INET, &((struct sockaddr_in *)&sa)->sin_addr, host, sizeof(host));
		snprintf(url, sizeof(url), "http://%s:%d/debug/pprof/", host, port);
	}
	pthread_mutex_lock(&t.lock);
	if (t.pid > 0)
		xp_msg("serving pid %d (%s) on %s", (int)t.pid, t.comm, url);
	else
		xp_msg("serving the process %s '%s' (none runs yet) on %s",
		       o.by == BY_NAME ? "named" : "whose command line matches", o.name, url);
	pthread_mutex_unlock(&t.lock);

	while ((sig = sigwaitinfo(&ends, NULL)) < 0 && errno == EINTR)
		;
	left = xp_serve_drain(srv, DRAIN_WAIT_MS, &answered, &refused);
	xp_msg("serve: %s: stopped after %llu answers and %llu refusals%s", strsignal(sig),
	       (unsigned long long)answered, (unsigned long long)refused,
	       left ? ", some requests unanswered" : "");
	rc = XP_EXIT_OK;
out_target:
	xp_go_target_close(&t.gt);
	xp_target_space_close(&t.ts);
	if (t.pidfd >= 0)
		close(t.pidfd);
	if (o.by == BY_CMDLINE)
		regfree(&t.re);
out_token:
	free(token);
	return rc;
}
