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
#include <poll.h>
#include <pthread.h>
#include <regex.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "attach/attach.h"
#include "cmd/cmd.h"
#include "serve/serve.h"

#define MAX_SECONDS_DEFAULT 60
#define MAX_SECONDS_LIMIT 3600
#define CONNECTIONS_DEFAULT 16
#define TIMEOUT_DEFAULT 15          /* seconds an idle or stalled connection lives */
#define HEADER_BYTES_MAX (16 * 1024)
#define TOKEN_MIN 16
#define TOKEN_MAX 4096
#define DRAIN_WAIT_MS 30000

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
	pthread_mutex_t lock;
	enum follow by;
	const char *name;
	regex_t re;
	pid_t pid;                   /* 0: none found yet */
	int pidfd;                   /* pins that very process: a reused pid is not it */
	char comm[64];
	int is_go;
	int exited;                  /* -p: it exited; answers say so */
	char tmpdir[64];
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
	      "                                   ?debug=2 as text, Go's own dump for Go\n"
	      "  /debug/pprof/block, mutex        a Go program's block and mutex profiles\n"
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
	      "SIGTERM or SIGINT ends a CPU profile in progress early, answers it, and\n"
	      "exits 0; the target runs on.\n"
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
	snprintf(t->comm, sizeof(t->comm), "%s", p.comm);
	/* Go or not decides what the target offers; a Go program whose runtime
	 * cannot be read is served as a native one */
	err = xp_go_target_open(p.pid, p.comm, &gt);
	t->is_go = err > 0;
	if (err > 0)
		xp_go_target_close(&gt);
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
			t->exited = 1;
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

/* Runs this xprof's own command (argv) on the target with its output in
 * out (a file in the private temp dir); ends it early with SIGINT when the
 * server drains.  Its exit status, or -errno; its last error line in err. */
static int run_command(char *const argv[], const char *out, int stdout_to_out, volatile int *stop, char *err,
		       size_t errlen)
{
	int pipefd[2], status = 0, interrupted = 0;
	size_t have = 0;
	char buf[4096];
	pid_t child;

	if (pipe2(pipefd, O_CLOEXEC) < 0)
		return -errno;
	child = fork();
	if (child < 0) {
		close(pipefd[0]);
		close(pipefd[1]);
		return -errno;
	}
	if (child == 0) {
		sigset_t none;
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		signal(SIGPIPE, SIG_DFL);
		/* if the server dies, the command ends and detaches */
		prctl(PR_SET_PDEATHSIG, SIGTERM);
		dup2(pipefd[1], 2);
		if (stdout_to_out) {
			int fd = open(out, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
			if (fd < 0 || dup2(fd, 1) < 0)
				_exit(XP_EXIT_FATAL);
		}
		execv("/proc/self/exe", argv);
		_exit(XP_EXIT_FATAL);
	}
	close(pipefd[1]);
	for (;;) {
		struct pollfd pfd = { pipefd[0], POLLIN, 0 };
		ssize_t n;
		if (*stop && !interrupted) {
			kill(child, SIGINT);
			interrupted = 1;
		}
		if (poll(&pfd, 1, 50) <= 0)
			continue;
		n = read(pipefd[0], buf + have, sizeof(buf) - 1 - have);
		if (n <= 0)
			break;
		have += (size_t)n;
		if (have == sizeof(buf) - 1) {
			/* keep the tail: the last line says what failed */
			memmove(buf, buf + have / 2, have - have / 2);
			have -= have / 2;
		}
	}
	close(pipefd[0]);
	while (waitpid(child, &status, 0) < 0 && errno == EINTR)
		;
	buf[have] = '\0';
	while (have > 0 && buf[have - 1] == '\n')
		buf[--have] = '\0';
	{
		char *last = strrchr(buf, '\n');
		last = last ? last + 1 : buf;
		if (strncmp(last, "xprof: ", 7) == 0)
			last += 7;
		have = strlen(last) < errlen ? strlen(last) : errlen - 1;
		memcpy(err, last, have);
		err[have] = '\0';
	}
	return WIFEXITED(status) ? WEXITSTATUS(status) : XP_EXIT_FATAL;
}

/* The whole of a file (a /proc file's size is 0 until read) into r. */
static int slurp(const char *path, struct xp_serve_reply *r)
{
	size_t cap = 0;
	ssize_t n;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return -errno;
	r->len = 0;
	do {
		if (r->len == cap) {
			uint8_t *b = realloc(r->body, cap = cap ? cap * 2 : 65536);
			if (!b) {
				n = -1;
				errno = ENOMEM;
				break;
			}
			r->body = b;
		}
		n = read(fd, r->body + r->len, cap - r->len);
		if (n > 0)
			r->len += (size_t)n;
	} while (n > 0 || (n < 0 && errno == EINTR));
	close(fd);
	if (n < 0) {
		free(r->body);
		r->body = NULL;
		return -EIO;
	}
	return 0;
}

static void read_cmdline(pid_t pid, struct xp_serve_reply *r)
{
	char path[64];

	snprintf(path, sizeof(path), "/proc/%d/cmdline", (int)pid);
	if (slurp(path, r) < 0) {
		r->status = 500;
		snprintf(r->msg, sizeof(r->msg), "cannot read the command line of pid %d", (int)pid);
		return;
	}
	/* Go joins its arguments with NUL; /proc ends each with one */
	if (r->len > 0 && r->body[r->len - 1] == '\0')
		r->len--;
	r->status = 200;
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
		o->offered[XP_SERVE_BLOCK] = o->offered[XP_SERVE_MUTEX] = t->is_go;
	}
	pthread_mutex_unlock(&t->lock);
	return status;
}

static void collect(void *ctx, const struct xp_serve_query *q, struct xp_serve_reply *r)
{
	struct target *t = ctx;
	static unsigned seq;
	char pidarg[16], dur[24], out[128], err[256];
	const char *argv[12];
	int status, n = 0, is_go, text = 0;
	pid_t pid;

	pthread_mutex_lock(&t->lock);
	status = resolve(t, r->msg, sizeof(r->msg));
	pid = t->pid;
	is_go = t->is_go;
	pthread_mutex_unlock(&t->lock);
	if (status) {
		r->status = status;
		return;
	}
	if (q->kind == XP_SERVE_CMDLINE) {
		read_cmdline(pid, r);
		return;
	}
	snprintf(pidarg, sizeof(pidarg), "%d", (int)pid);
	snprintf(out, sizeof(out), "%s/%u.%s", t->tmpdir, __atomic_fetch_add(&seq, 1, __ATOMIC_RELAXED),
		 xp_serve_kind_name(q->kind));
	argv[n++] = "xprof";
	switch (q->kind) {
	case XP_SERVE_CPU:
		snprintf(dur, sizeof(dur), "%llds", (long long)q->seconds);
		argv[n++] = "cpu";
		argv[n++] = "-d";
		argv[n++] = dur;
		break;
	case XP_SERVE_HEAP:
		if (q->debug) {
			r->status = 501;
			snprintf(r->msg, sizeof(r->msg), "xprof serve writes the heap as a pprof profile only (debug=0)");
			return;
		}
		argv[n++] = "heap";
		break;
	case XP_SERVE_BLOCK:
	case XP_SERVE_MUTEX:
		if (!is_go) {
			r->status = 501;
			snprintf(r->msg, sizeof(r->msg), "pid %d (%s) is not a Go program: native %s profiles are "
				 "not implemented yet", (int)pid, t->comm, xp_serve_kind_name(q->kind));
			return;
		}
		if (q->debug) {
			r->status = 501;
			snprintf(r->msg, sizeof(r->msg), "xprof serve writes %s as a pprof profile only (debug=0)",
				 xp_serve_kind_name(q->kind));
			return;
		}
		argv[n++] = "heap";
		argv[n++] = q->kind == XP_SERVE_BLOCK ? "--block" : "--mutex";
		break;
	case XP_SERVE_GOROUTINE:
		argv[n++] = "threads";
		if (q->debug == 1) {
			r->status = 501;
			snprintf(r->msg, sizeof(r->msg), "goroutine?debug=1 is not implemented yet: use debug=2");
			return;
		}
		text = q->debug == 2;
		break;
	default:
		r->status = 404;
		snprintf(r->msg, sizeof(r->msg), "%s: not offered for pid %d (%s)", xp_serve_kind_name(q->kind),
			 (int)pid, t->comm);
		return;
	}
	argv[n++] = "-p";
	argv[n++] = pidarg;
	if (!text) {
		argv[n++] = "-o";
		argv[n++] = out;
	}
	argv[n] = NULL;
	status = run_command((char *const *)argv, out, text, q->stop, err, sizeof(err));
	if (status != XP_EXIT_OK && status != XP_EXIT_PARTIAL) {
		unlink(out);
		pthread_mutex_lock(&t->lock);
		r->status = resolve(t, r->msg, sizeof(r->msg));
		pthread_mutex_unlock(&t->lock);
		if (!r->status) {
			r->status = 500;
			snprintf(r->msg, sizeof(r->msg), "%s", err[0] ? err : "collection failed");
		}
		return;
	}
	if (slurp(out, r) < 0) {
		r->status = 500;
		snprintf(r->msg, sizeof(r->msg), "collection wrote no output");
	} else {
		r->status = 200;
	}
	unlink(out);
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
	snprintf(t.tmpdir, sizeof(t.tmpdir), "%s/xprof-serve.XXXXXX",
		 getenv("TMPDIR") && strlen(getenv("TMPDIR")) < 40 ? getenv("TMPDIR") : "/tmp");
	if (!mkdtemp(t.tmpdir)) {
		xp_msg("serve: cannot make a temporary directory in %s: %s", t.tmpdir, strerror(errno));
		rc = XP_EXIT_FATAL;
		goto out_target;
	}

	fd = xp_serve_listen(&sa, salen, &port);
	if (fd < 0) {
		xp_msg("serve: cannot listen on %s: %s%s", o.listen, strerror(-fd),
		       fd == -EADDRINUSE ? " (another server has it: choose another with --listen ADDR:PORT)" : "");
		rc = XP_EXIT_FATAL;
		goto out_tmpdir;
	}
	/* the signals that end the server wait for the main thread: the
	 * server's threads inherit this mask */
	sigemptyset(&ends);
	sigaddset(&ends, SIGTERM);
	sigaddset(&ends, SIGINT);
	sigaddset(&ends, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &ends, NULL);
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
		goto out_tmpdir;
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
out_tmpdir:
	rmdir(t.tmpdir);
out_target:
	if (t.pidfd >= 0)
		close(t.pidfd);
	if (o.by == BY_CMDLINE)
		regfree(&t.re);
out_token:
	free(token);
	return rc;
}
