/* serve/target.c: the process xprof serve answers for, and the answers:
 * the target is found (again, after it restarts, by name or command line)
 * and pinned by a pidfd; each request is collected with collect/ over the
 * modules kept for it between requests.  No printing: every failure is an
 * HTTP status with its reason. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <regex.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "attach/attach.h"
#include "collect/collect.h"
#include "heapwalk/heapwalk.h"
#include "serve/serve.h"

#define SERVE_HZ 99               /* as xprof cpu, and not 100: no lock-step with timers */

/* SIGALRM bounds the waits of a stop (attach/stop.c's setitimer): a
 * process signal, so it is blocked in every thread but the one stopping. */
static sigset_t alarm_only;

void xp_serve_block_alarm(void)
{
	sigemptyset(&alarm_only);
	sigaddset(&alarm_only, SIGALRM);
	pthread_sigmask(SIG_BLOCK, &alarm_only, NULL);
}

struct xp_serve_target {
	pthread_mutex_t lock;        /* the fields below up to is_go */
	enum xp_serve_follow by;
	const char *name;
	regex_t re;
	int have_re;
	pid_t pid;                   /* 0: none found yet */
	int pidfd;                   /* pins that very process: a reused pid is not it */
	char comm[64];
	int is_go;
	/* kept between requests (for ts.pid): modules, debug info, symbol
	 * caches, the unwinder, a Go program's runtime layouts */
	pthread_mutex_t space_lock;  /* whoever uses ts and gt: a CPU profile for its whole run */
	pthread_mutex_t stop_lock;   /* one stop of the target at a time */
	atomic_flag block_busy;      /* one native block profile at a time */
	atomic_flag mutex_busy;      /* one native mutex profile recording at a time */
	atomic_flag heap_busy;       /* one Go heap delta (seconds=N) at a time */
	atomic_flag allocs_busy;     /* block_busy, mutex_busy: Go's block and mutex deltas too */
	pthread_mutex_t prober_lock; /* prober and have_prober */
	pthread_t prober;            /* the last thread taking a mutex profile's probes out */
	int have_prober;
	atomic_int probers;          /* such threads not yet ended */
	struct xp_target_space ts;
	struct xp_go_target gt;
};

/* ---- the target --------------------------------------------------------- */

static int pidfd_alive(int fd)
{
	return syscall(SYS_pidfd_send_signal, fd, 0, NULL, 0) == 0 || errno != ESRCH;
}

/* Does the process pid match what --name or --cmdline asks for? */
static int matches(struct xp_serve_target *t, pid_t pid)
{
	char path[64], buf[4096];
	int fd;
	ssize_t n, i;

	if (t->by == XP_SERVE_BY_NAME) {
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
	if (t->by == XP_SERVE_BY_NAME) {
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
 * its parent; 0 when unreadable, or when it has exited and waits to be
 * reaped (a zombie is no instance to serve). */
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
		if (p && field == 2 && (p[1] == 'Z' || p[1] == 'X'))
			return 0;
		if (p && field == 3)
			*ppid = (pid_t)strtol(p + 1, NULL, 10);
	}
	if (p)
		st = strtoull(p + 1, NULL, 10);
	return st;
}

/* The oldest process that matches, leaving out xprof and what it started
 * (whose command lines name the pattern too). */
static pid_t find_by_name(struct xp_serve_target *t)
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
static int take(struct xp_serve_target *t, pid_t pid, char *why, size_t whylen)
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
static int resolve(struct xp_serve_target *t, char *why, size_t whylen)
{
	pid_t pid;

	if (t->pid > 0 && pidfd_alive(t->pidfd))
		return 0;
	if (t->by == XP_SERVE_BY_PID) {
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
			 t->by == XP_SERVE_BY_NAME ? "named" : "whose command line matches", t->name);
		return 404;
	}
	if (take(t, pid, why, whylen) < 0)
		return 404;
	return 0;
}

/* ---- collecting ---------------------------------------------------------- */

/* Under t->space_lock: the kept modules (and Go runtime) of pid, opened,
 * or checked against its maps and rebuilt when its code changed. */
static int ensure_space(struct xp_serve_target *t, pid_t pid, int is_go, char *why, size_t whylen)
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

/* The kept modules for one collection, when no other request holds them:
 * 1 with t->space_lock held (the caller unlocks), else 0 and the collector
 * opens its own.  Never waits: a CPU, block or mutex profile holds them for
 * its whole run, and another request meanwhile must not wait that long. */
static int keep_space(struct xp_serve_target *t, pid_t pid, int is_go)
{
	char why[256];

	if (pthread_mutex_trylock(&t->space_lock) != 0)
		return 0;
	if (ensure_space(t, pid, is_go, why, sizeof(why)) < 0) {
		pthread_mutex_unlock(&t->space_lock);
		return 0;
	}
	return 1;
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

/* profile?seconds=N: perf sampling at 99 Hz over the kept modules (when
 * no other profile holds them).  The kept space is the run's for its whole
 * length: other requests meanwhile open their own. */
static void collect_cpu(struct xp_serve_target *t, pid_t pid, const char *comm, int is_go, const struct xp_serve_query *q,
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
	int kept = keep_space(t, pid, is_go), err;

	if (kept)
		co.space = &t->ts;
	err = xp_cpu_open(&co, &c);
	if (err < 0) {
		if (kept)
			pthread_mutex_unlock(&t->space_lock);
		/* runtime/pprof's StartCPUProfile error, as net/http/pprof words it */
		fail(r, 500, "Could not enable CPU profiling: perf_event_open on pid %d: %s", (int)pid, strerror(-err));
		return;
	}
	err = xp_cpu_run(c);
	if (err == 0)
		err = xp_cpu_profile(c, &p);
	xp_cpu_close(c);
	if (kept)
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
static void collect_goroutines(struct xp_serve_target *t, pid_t pid, int is_go, const struct xp_serve_query *q,
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

/* One read of a Go program's heap, block or mutex profile (the target
 * stopped while its buckets are read): 0, or the request answered with
 * why not. */
static int read_go_profile(struct xp_go_target *gt, pid_t pid, enum xp_serve_kind kind, struct xp_go_heap *h,
			   struct xp_snapshot *snap, struct xp_serve_reply *r)
{
	const char *name = xp_serve_kind_name(kind);
	char why[512];
	int err;

	memset(h, 0, sizeof(*h));
	h->kind = kind == XP_SERVE_BLOCK ? XP_GO_BLOCK : kind == XP_SERVE_MUTEX ? XP_GO_MUTEX : XP_GO_HEAP;
	memset(snap, 0, sizeof(*snap));
	err = xp_go_profile_read(gt, pid, h, snap, why, sizeof(why));
	if (err == -ENOTSUP || err == -EIO)
		fail(r, 500, "cannot read the Go %s profile of pid %d: %.200s", name, (int)pid, why);
	else if (err == -ENODATA && h->kind == XP_GO_HEAP)
		fail(r, 404, "pid %d records no heap profile: its runtime.MemProfileRate is 0 (it imports neither "
		     "runtime/pprof nor net/http/pprof)", (int)pid);
	else if (err == -ENODATA)
		fail(r, 404, "pid %d records no %s profile: the program turns it on with %s", (int)pid, name,
		     h->kind == XP_GO_BLOCK ? "runtime.SetBlockProfileRate" : "runtime.SetMutexProfileFraction");
	else if (err < 0)
		fail_attach(r, pid, err);
	return err;
}

/* A Go profile as the answer: allocs is heap with alloc_space first. */
static void answer_go_profile(struct xp_profile *p, int err, enum xp_serve_kind kind, struct xp_serve_reply *r)
{
	if (err == 0 && kind == XP_SERVE_ALLOCS)
		err = xp_profile_set_default_sample_type(p, "alloc_space");
	if (err < 0) {
		xp_profile_free(p);
		fail(r, 500, "cannot make the %s profile: %s", xp_serve_kind_name(kind), strerror(-err));
		return;
	}
	answer_profile(p, r);
}

/* heap, allocs, block, mutex of a Go program: the runtime's own. */
static void collect_go_profile(struct xp_go_target *gt, pid_t pid, enum xp_serve_kind kind, struct xp_serve_reply *r)
{
	struct xp_go_heap h;
	struct xp_snapshot snap;
	struct xp_profile *p = NULL;
	int err;

	if (read_go_profile(gt, pid, kind, &h, &snap, r) == 0) {
		err = xp_go_profile_build(gt, &h, snap.time_ns, &p);
		answer_go_profile(p, err, kind, r);
	}
	xp_go_heap_free(&h);
	xp_snapshot_free(&snap);
}

/* A partial profile says so where a scrape can read it (go tool pprof
 * -comments), as the commands say it on stderr and in their exit status. */
static int note_lost(struct xp_profile *p, uint64_t lost, uint64_t dropped)
{
	char line[160];

	if (!lost && !dropped)
		return 0;
	snprintf(line, sizeof(line), "xprof: %llu records lost (the kernel's ring buffers were full) and %llu dropped: "
		 "some waits are missing", (unsigned long long)lost, (unsigned long long)dropped);
	return xp_profile_add_comment(p, line);
}

/* The start of a profile over seconds=N (a native block or mutex, a Go
 * delta): one of a kind at a time (busy is its flag; a second is answered
 * at once, as a second CPU profile is), over the kept modules when no
 * other request holds them.  -1 when answered; else 1 with the kept
 * modules (space_lock held), 0 without. */
static int begin_run(struct xp_serve_target *t, atomic_flag *busy, enum xp_serve_kind kind, pid_t pid, int is_go,
		     struct xp_serve_reply *r)
{
	const char *name = xp_serve_kind_name(kind);

	if (atomic_flag_test_and_set(busy)) {
		if (is_go)
			fail(r, 500, "%s profiling already in use: one %s?seconds=N at a time (try again when it ends)",
			     name, name);
		else
			fail(r, 500, "%s profiling already in use: one native %s profile at a time (try again when it "
			     "ends)", name, name);
		return -1;
	}
	return keep_space(t, pid, is_go);
}

/* Stops the target for one read of its Go profile, as a request without
 * seconds does: one stop at a time, this thread taking SIGALRM for it. */
static int read_go_stopped(struct xp_serve_target *t, struct xp_go_target *gt, pid_t pid, enum xp_serve_kind kind,
			   struct xp_go_heap *h, struct xp_snapshot *snap, struct xp_serve_reply *r)
{
	int err;

	pthread_mutex_lock(&t->stop_lock);
	pthread_sigmask(SIG_UNBLOCK, &alarm_only, NULL);
	err = read_go_profile(gt, pid, kind, h, snap, r);
	pthread_sigmask(SIG_BLOCK, &alarm_only, NULL);
	pthread_mutex_unlock(&t->stop_lock);
	return err;
}

/* Sleeps seconds, or until stop is set (the server drains). */
static void sleep_unless_stopped(int64_t seconds, volatile sig_atomic_t *stop)
{
	int64_t end = xp_monotonic_ns() + seconds * 1000000000LL, now;

	while (!(stop && *stop) && (now = xp_monotonic_ns()) < end) {
		struct timespec ts = { 0, end - now < 50000000 ? (long)(end - now) : 50000000 };
		nanosleep(&ts, NULL);
	}
}

/* heap, allocs, block, mutex?seconds=N of a Go program: net/http/pprof's
 * delta profile.  The runtime's profile is read twice, N seconds apart,
 * each read one short stop as without seconds; the answer is the second
 * minus the first (xp_go_profile_delta).  The server draining ends the
 * wait early: the delta over the time waited is answered. */
static void collect_go_delta(struct xp_serve_target *t, pid_t pid, const char *comm, const struct xp_serve_query *q,
			     struct xp_serve_reply *r)
{
	atomic_flag *busy = q->kind == XP_SERVE_BLOCK ? &t->block_busy : q->kind == XP_SERVE_MUTEX ? &t->mutex_busy :
			    q->kind == XP_SERVE_ALLOCS ? &t->allocs_busy : &t->heap_busy;
	struct xp_go_target own, *gt = &t->gt;
	struct xp_go_heap h0, h1;
	struct xp_snapshot s0, s1;
	struct xp_profile *p = NULL;
	char why[256], line[200];
	int kept, err;

	memset(&own, 0, sizeof(own));
	memset(&h0, 0, sizeof(h0));
	memset(&h1, 0, sizeof(h1));
	memset(&s0, 0, sizeof(s0));
	memset(&s1, 0, sizeof(s1));
	if (q->debug) {
		fail(r, 400, "seconds and debug params are incompatible"); /* Go's words */
		return;
	}
	if ((kept = begin_run(t, busy, q->kind, pid, 1, r)) < 0)
		return;
	if (!kept) {
		/* the kept Go runtime is another profile's now: one for this run */
		gt = &own;
		if (xp_go_target_open(pid, gt, why, sizeof(why)) <= 0) {
			fail(r, 500, "pid %d (%s) is a Go program, but xprof cannot read its runtime: %.180s", (int)pid,
			     comm, why);
			goto out;
		}
	}
	if (read_go_stopped(t, gt, pid, q->kind, &h0, &s0, r) < 0)
		goto out;
	sleep_unless_stopped(q->seconds, q->stop);
	if (read_go_stopped(t, gt, pid, q->kind, &h1, &s1, r) < 0)
		goto out;
	err = xp_go_profile_delta(gt, &h0, &h1, s1.time_ns, s1.time_ns - s0.time_ns, &p);
	snprintf(line, sizeof(line), "xprof: delta profile: what the runtime recorded in the %.2f s between two reads "
		 "(seconds=%lld%s)", (double)(s1.time_ns - s0.time_ns) / 1e9, (long long)q->seconds,
		 q->stop && *q->stop ? ", ended early: the server is stopping" : "");
	if (err == 0)
		err = xp_profile_add_comment(p, line);
	snprintf(line, sizeof(line), "xprof: pid %d was stopped %.2f ms and %.2f ms for the two reads", (int)pid,
		 (double)s0.stopped_ns / 1e6, (double)s1.stopped_ns / 1e6);
	if (err == 0)
		err = xp_profile_add_comment(p, line);
	answer_go_profile(p, err, q->kind, r);
	r->delta = 1;
out:
	xp_go_heap_free(&h0);
	xp_go_heap_free(&h1);
	xp_snapshot_free(&s0);
	xp_snapshot_free(&s1);
	if (gt == &own)
		xp_go_target_close(&own);
	if (kept)
		pthread_mutex_unlock(&t->space_lock);
	atomic_flag_clear(busy);
}

/* block?seconds=N of a native program: where its threads waited off the
 * CPU, from perf's context switches over N seconds (xprof block's
 * collector); no thread is stopped. */
static void collect_block(struct xp_serve_target *t, pid_t pid, const struct xp_serve_query *q, struct xp_serve_reply *r)
{
	struct xp_offcpu_opts bo = {
		.pid = pid,
		.duration_ns = q->seconds * 1000000000LL,
		.stop = q->stop,
	};
	struct xp_offcpu *c = NULL;
	struct xp_profile *p = NULL;
	int kept, err;

	if ((kept = begin_run(t, &t->block_busy, XP_SERVE_BLOCK, pid, 0, r)) < 0)
		return;
	if (kept)
		bo.space = &t->ts;
	err = xp_offcpu_open(&bo, &c);
	if (err < 0) {
		r->status = 500;
		xp_offcpu_open_error(pid, err, r->msg, sizeof(r->msg));
	} else if ((err = xp_offcpu_run(c)) < 0) {
		fail(r, 500, "cannot read the context switches of pid %d: %s", (int)pid, strerror(-err));
	} else if ((err = xp_offcpu_profile(c, &p)) < 0 || (err = note_lost(p, xp_offcpu_stats(c)->lost, 0)) < 0) {
		fail(r, 500, "cannot make the block profile: %s", strerror(-err));
	} else {
		answer_profile(p, r);
		p = NULL;
	}
	xp_profile_free(p);
	xp_offcpu_close(c);
	if (kept)
		pthread_mutex_unlock(&t->space_lock);
	atomic_flag_clear(&t->block_busy);
}

/* A mutex profile's probes out.  The kernel takes 30-45 ms per thread and
 * probe (five a thread), longer when other perf users keep it busy: that
 * is done after the answer, by a thread of its own, or go tool pprof (which
 * waits 1.5 times seconds=N) gives up; the probes are idle meanwhile
 * (xp_mutex_run stopped recording).  Each such thread first waits for the
 * one before it, so xp_serve_target_free joins the last one only; at most
 * MAX_PROBERS are under way, beyond that a mutex profile is refused. */
#define MAX_PROBERS 3

struct prober {
	struct xp_serve_target *t;
	struct xp_mutex *m;
	pthread_t prev;
	int have_prev;
};

static void *prober_main(void *arg)
{
	struct prober *pr = arg;

	if (pr->have_prev)
		pthread_join(pr->prev, NULL);
	xp_mutex_close(pr->m);
	atomic_fetch_sub(&pr->t->probers, 1);
	free(pr);
	return NULL;
}

static void take_probes_out(struct xp_serve_target *t, struct xp_mutex *m)
{
	struct prober *pr = malloc(sizeof(*pr));
	pthread_t th;

	pthread_mutex_lock(&t->prober_lock);
	if (pr) {
		*pr = (struct prober){ .t = t, .m = m, .prev = t->prober, .have_prev = t->have_prober };
		atomic_fetch_add(&t->probers, 1);
		if (pthread_create(&th, NULL, prober_main, pr) == 0) {
			t->prober = th;
			t->have_prober = 1;
			pthread_mutex_unlock(&t->prober_lock);
			return;
		}
		atomic_fetch_sub(&t->probers, 1);
		free(pr);
	}
	/* no thread for it: here, after the ones before */
	if (t->have_prober)
		pthread_join(t->prober, NULL);
	t->have_prober = 0;
	xp_mutex_close(m);
	pthread_mutex_unlock(&t->prober_lock);
}

/* mutex?seconds=N of a native program: lock waits by the waiter's stack,
 * from uprobes on glibc's lock slow path over N seconds (xprof mutex's
 * collector); the probes go after the answer. */
static void collect_mutex(struct xp_serve_target *t, pid_t pid, const char *comm, const struct xp_serve_query *q,
			  struct xp_serve_reply *r)
{
	struct xp_mutex_opts mo = {
		.pid = pid,
		.duration_ns = q->seconds * 1000000000LL,
		.stop = q->stop,
	};
	struct xp_mutex *m = NULL;
	struct xp_profile *p = NULL;
	char why[256] = "";
	int kept, err;

	if (atomic_load(&t->probers) >= MAX_PROBERS) {
		fail(r, 500, "mutex profiling already in use: the probes of the last %d profiles are still being taken "
		     "out (try again in a few seconds)", MAX_PROBERS);
		return;
	}
	if ((kept = begin_run(t, &t->mutex_busy, XP_SERVE_MUTEX, pid, 0, r)) < 0)
		return;
	if (kept)
		mo.space = &t->ts;
	err = xp_mutex_open(&mo, &m, why, sizeof(why));
	if (err < 0) {
		if (xp_mutex_open_error(pid, comm, err, why, r->msg, sizeof(r->msg)) == 0)
			r->status = 500;
		else
			fail_attach(r, pid, err);
	} else if ((err = xp_mutex_run(m)) < 0) {
		fail(r, 500, "measuring lock contention of pid %d failed: %s", (int)pid, strerror(-err));
	} else if ((err = xp_mutex_profile(m, &p)) < 0 ||
		   (err = note_lost(p, xp_mutex_stats(m)->lost, xp_mutex_stats(m)->dropped)) < 0) {
		fail(r, 500, "cannot make the mutex profile: %s", strerror(-err));
	} else {
		answer_profile(p, r);
		p = NULL;
	}
	xp_profile_free(p);
	if (kept)
		pthread_mutex_unlock(&t->space_lock);
	if (m)
		take_probes_out(t, m);
	atomic_flag_clear(&t->mutex_busy);
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
	struct xp_serve_target *t = ctx;
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
		o->offered[XP_SERVE_BLOCK] = o->offered[XP_SERVE_MUTEX] = 1;
		o->offered[XP_SERVE_ALLOCS] = t->is_go;
		o->native = !t->is_go;
	}
	pthread_mutex_unlock(&t->lock);
	return status;
}


static void collect(void *ctx, const struct xp_serve_query *q, struct xp_serve_reply *r)
{
	struct xp_serve_target *t = ctx;
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
		/* fall through */
	case XP_SERVE_HEAP:
		if (!q->seconds_given)
			break;
		if (!is_go) {
			fail(r, 400, "\"seconds\" parameter is not supported for this profile type (pid %d (%s) is not a "
			     "Go program: its heap has no history to take a delta of)", (int)pid, comm);
			return;
		}
		collect_go_delta(t, pid, comm, q, r);
		goto check_gone;
	case XP_SERVE_BLOCK:
	case XP_SERVE_MUTEX:
		if (is_go && q->seconds_given) {
			collect_go_delta(t, pid, comm, q, r);
			goto check_gone;
		}
		if (q->debug)
			break; /* 501 below */
		if (!is_go) {
			/* perf and uprobes: no stop, no stop_lock */
			if (q->kind == XP_SERVE_BLOCK)
				collect_block(t, pid, q, r);
			else
				collect_mutex(t, pid, comm, q, r);
			goto check_gone;
		}
		break;
	case XP_SERVE_GOROUTINE:
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
	kept = keep_space(t, pid, is_go);
	if (q->kind == XP_SERVE_THREADCREATE) {
		collect_threadcreate(pid, q, kept ? &t->ts : NULL, r);
	} else if (!kept && is_go) {
		/* the kept Go runtime is a CPU profile's now, or could not be
		 * opened: one for this request */
		struct xp_serve_target tmp;
		char why[256];
		memset(&tmp, 0, sizeof(tmp));
		if (xp_go_target_open(pid, &tmp.gt, why, sizeof(why)) <= 0) {
			fail(r, 500, "pid %d (%s) is a Go program, but xprof cannot read its runtime: %.180s", (int)pid,
			     comm, why);
		} else {
			if (q->kind == XP_SERVE_GOROUTINE)
				collect_goroutines(&tmp, pid, 1, q, NULL, r);
			else
				collect_go_profile(&tmp.gt, pid, q->kind, r);
			xp_go_target_close(&tmp.gt);
		}
	} else if (q->kind == XP_SERVE_GOROUTINE) {
		collect_goroutines(t, pid, is_go, q, kept ? &t->ts : NULL, r);
	} else if (is_go) {
		collect_go_profile(&t->gt, pid, q->kind, r);
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

/* ---- the target's life ---------------------------------------------------- */

int xp_serve_target_new(enum xp_serve_follow by, pid_t pid, const char *pattern, struct xp_serve_target **out,
			char *why, size_t whylen)
{
	struct xp_serve_target *t = calloc(1, sizeof(*t));
	int err;

	if (!t)
		return -ENOMEM;
	pthread_mutex_init(&t->lock, NULL);
	pthread_mutex_init(&t->space_lock, NULL);
	pthread_mutex_init(&t->stop_lock, NULL);
	atomic_flag_clear(&t->block_busy);
	atomic_flag_clear(&t->mutex_busy);
	atomic_flag_clear(&t->heap_busy);
	atomic_flag_clear(&t->allocs_busy);
	pthread_mutex_init(&t->prober_lock, NULL);
	t->by = by;
	t->name = pattern;
	t->pidfd = -1;
	why[0] = '\0';
	if (by == XP_SERVE_BY_CMDLINE && (err = regcomp(&t->re, pattern, REG_EXTENDED | REG_NOSUB)) != 0) {
		regerror(err, &t->re, why, whylen);
		free(t);
		return -EINVAL;
	}
	t->have_re = by == XP_SERVE_BY_CMDLINE;
	if (by == XP_SERVE_BY_PID) {
		err = take(t, pid, why, whylen);
		if (err < 0) {
			xp_serve_target_free(t);
			return err;
		}
	} else {
		resolve(t, why, whylen); /* none yet is no failure: the next one is served */
	}
	*out = t;
	return 0;
}

pid_t xp_serve_target_current(struct xp_serve_target *t, char *comm, size_t commlen)
{
	pid_t pid;

	pthread_mutex_lock(&t->lock);
	pid = t->pid > 0 ? t->pid : 0;
	snprintf(comm, commlen, "%s", t->comm);
	pthread_mutex_unlock(&t->lock);
	return pid;
}

void xp_serve_target_backend(struct xp_serve_target *t, struct xp_serve_backend *be)
{
	be->ctx = t;
	be->offer = offer;
	be->collect = collect;
}

void xp_serve_target_free(struct xp_serve_target *t)
{
	if (!t)
		return;
	/* the mutex profiles' probes: out before the server ends (the last
	 * prober waits for the ones before it) */
	if (t->have_prober)
		pthread_join(t->prober, NULL);
	pthread_mutex_destroy(&t->prober_lock);
	xp_go_target_close(&t->gt);
	xp_target_space_close(&t->ts);
	if (t->pidfd >= 0)
		close(t->pidfd);
	if (t->have_re)
		regfree(&t->re);
	pthread_mutex_destroy(&t->lock);
	pthread_mutex_destroy(&t->space_lock);
	pthread_mutex_destroy(&t->stop_lock);
	free(t);
}
