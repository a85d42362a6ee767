/* Uprobes through perf_event_open's uprobe PMU: a breakpoint at a file
 * offset of a library, hit by the target's threads only, each hit a sample
 * with the user registers and a copy of the user stack.
 *
 * The breakpoints belong to the events: the kernel removes them when the
 * last event's file descriptor closes, which also happens when xprof is
 * killed.  Nothing goes through tracefs (uprobe_events would outlive us).
 *
 * One event per (thread, probe), cpu -1, never inherited: an inherited
 * uprobe event is re-created by the kernel inside the target's clone(),
 * which reads the probe's path from the target's memory and fails the
 * clone (its pthread_create returns EFAULT).  So threads created during a
 * run are found by rescanning /proc/PID/task, and each thread has its own
 * ring buffer (a cpu -1 event can share only its own task's buffer).
 *
 * Closing uprobe events is slow: the kernel destroys them one at a time
 * under a global mutex, each after RCU grace periods (40-60 ms here; more
 * for return probes the target is inside: see close_by_address), and an
 * open waits behind any close on the machine.  So a manager
 * thread opens the events of new threads and closes those of threads that
 * exited, and the reader only reads the rings: it is never held up and
 * the rings do not overflow meanwhile.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <linux/perf_event.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#include "attach/attach.h"
#include "attach/perf_internal.h"
#include "attach/perf_x86_64.h"

/* Pages of each thread's ring: 1 MiB (64 stacks of 16 KiB: a thread that
 * waits every millisecond fills it in 64 ms, and xprof may not be
 * scheduled that often on a busy machine), less when there are many
 * threads, so that all the rings stay within RINGS_TOTAL. */
#define RING_PAGES_MAX 256
#define RING_PAGES_MIN 16
#define RINGS_TOTAL (256u << 20)
/* the event that owns a thread's ring: the first opened */
#define OWNER(u) ((u)->nspecs - 1)
#define RESCAN_MS 100            /* new threads looked for every 100 ms */
#define SCAN_ROUNDS 100          /* /proc/PID/task re-read until stable at the start, at most */


struct uthread {
	pid_t tid;
	int *fds;                    /* one per probe; fds[OWNER] owns the ring */
	uint64_t *ids;               /* PERF_EVENT_IOC_ID of each */
	struct xp_ring ring;         /* mapped from fds[OWNER] */
	int gone;                    /* the thread exited: closed after its last read */
	int lost;                    /* hits lost since the last one handed out */
};

struct xp_uprobes {
	pid_t pid;
	struct xp_uprobe_spec *specs;
	size_t nspecs;
	int type, retbit;
	size_t ring_pages;           /* a power of two */
	/* the reader's */
	struct uthread *t;
	size_t nt, talloc;
	uint64_t lost;
	uint64_t *hits;              /* per spec: which breakpoints the target hits most */
	uint8_t *wrapbuf;
	struct pollfd *pfd;
	size_t pfd_alloc;
	/* the scanner's (xp_uprobes_open, then the manager): tids probed, sorted */
	pid_t *known;
	size_t nknown, known_alloc;
	/* between the two, under lock */
	pthread_mutex_t lock;
	pthread_cond_t wake;
	pthread_t manager;
	int managing, stop, have_cond;
	struct uthread *added, *dead; /* opened, not yet read; exited, to close */
	size_t nadded, added_alloc, ndead, dead_alloc;
	int err;                     /* the manager's, for the reader to return */
	size_t probed;               /* threads probed in all, gone ones too */
};

/* The ring size for a process of this many threads. */
static size_t ring_pages_for(size_t nthreads)
{
	size_t pages = RING_PAGES_MAX;

	while (pages > RING_PAGES_MIN && nthreads * pages * (size_t)getpagesize() > RINGS_TOTAL)
		pages /= 2;
	return pages;
}

static size_t count_threads(pid_t pid)
{
	char path[64];
	struct dirent *e;
	size_t n = 0;
	DIR *d;

	snprintf(path, sizeof(path), "/proc/%d/task", (int)pid);
	if (!(d = opendir(path)))
		return 1;
	while ((e = readdir(d)) != NULL)
		n += e->d_name[0] != '.';
	closedir(d);
	return n;
}

static void thread_close(struct xp_uprobes *u, struct uthread *t)
{
	size_t i;

	xp_ring_unmap(&t->ring);
	for (i = 0; t->fds && i < u->nspecs; i++)
		if (t->fds[i] >= 0)
			close(t->fds[i]);
	free(t->fds);
	free(t->ids);
	memset(t, 0, sizeof(*t));
}

static void fill_attr(const struct xp_uprobes *u, const struct xp_uprobe_spec *s, struct perf_event_attr *a)
{
	memset(a, 0, sizeof(*a));
	a->size = sizeof(*a);
	a->type = (uint32_t)u->type;
	a->config = s->retprobe ? 1ULL << u->retbit : 0;
	a->config1 = (uint64_t)(uintptr_t)s->path; /* uprobe_path */
	a->config2 = s->offset;                    /* probe_offset */
	a->sample_period = 1;                      /* every hit */
	a->sample_type = PERF_SAMPLE_IDENTIFIER | PERF_SAMPLE_TID | PERF_SAMPLE_TIME | PERF_SAMPLE_REGS_USER |
			 PERF_SAMPLE_STACK_USER;
	a->sample_regs_user = XP_PERF_REGS_MASK;
	a->sample_stack_user = (uint32_t)s->stack_bytes;
	a->exclude_kernel = 1;
	a->exclude_hv = 1;
	a->use_clockid = 1;
	a->clockid = CLOCK_MONOTONIC;
	a->watermark = 1;
	a->wakeup_watermark = (uint32_t)(u->ring_pages * (size_t)getpagesize() / 4);
}

/* Opens every probe on one thread.  0 also when the thread exited
 * meanwhile (nothing kept); -errno when the kernel refuses. */
static int thread_open(struct xp_uprobes *u, struct uthread *t, pid_t tid)
{
	struct perf_event_attr a;
	size_t i;
	int err;

	memset(t, 0, sizeof(*t));
	t->tid = tid;
	t->fds = malloc(u->nspecs * sizeof(*t->fds));
	t->ids = calloc(u->nspecs, sizeof(*t->ids));
	if (!t->fds || !t->ids) {
		thread_close(u, t);
		return -ENOMEM;
	}
	for (i = 0; i < u->nspecs; i++)
		t->fds[i] = -1;
	/* last to first: a return probe goes in before its entry probe, so
	 * that an entry seen has its return seen too */
	for (i = u->nspecs; i-- > 0;) {
		fill_attr(u, &u->specs[i], &a);
		t->fds[i] = xp_perf_event_open(&a, tid, -1, -1, PERF_FLAG_FD_CLOEXEC);
		if (t->fds[i] < 0) {
			err = -errno;
			thread_close(u, t);
			return err == -ESRCH ? 0 : err;
		}
		if (ioctl(t->fds[i], PERF_EVENT_IOC_ID, &t->ids[i]) < 0)
			goto fail;
		if (i == OWNER(u)) {
			if ((err = xp_ring_map(&t->ring, t->fds[i], u->ring_pages)) < 0) {
				thread_close(u, t);
				return err;
			}
		} else if (ioctl(t->fds[i], PERF_EVENT_IOC_SET_OUTPUT, t->fds[OWNER(u)]) < 0) {
			goto fail;
		}
	}
	return 1;
fail:
	err = -errno;
	thread_close(u, t);
	return err;
}

static int push(struct uthread **v, size_t *n, size_t *alloc, const struct uthread *t)
{
	if (*n == *alloc) {
		size_t na = *alloc ? *alloc * 2 : 32;
		struct uthread *nv = realloc(*v, na * sizeof(*nv));
		if (!nv)
			return -ENOMEM;
		*v = nv;
		*alloc = na;
	}
	(*v)[(*n)++] = *t;
	return 0;
}

static int known_find(const struct xp_uprobes *u, pid_t tid, size_t *at)
{
	size_t lo = 0, hi = u->nknown;

	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		if (u->known[mid] < tid)
			lo = mid + 1;
		else
			hi = mid;
	}
	*at = lo;
	return lo < u->nknown && u->known[lo] == tid;
}

static void known_remove(struct xp_uprobes *u, pid_t tid)
{
	size_t at;

	if (known_find(u, tid, &at)) {
		memmove(&u->known[at], &u->known[at + 1], (u->nknown - at - 1) * sizeof(*u->known));
		u->nknown--;
	}
}

/* Probes tid unless it is probed already; the new thread goes to the
 * reader's table (at the start: manager 0) or to the added queue.  1 when
 * added, 0 when not (known, or exited meanwhile), -errno. */
static int add_thread(struct xp_uprobes *u, pid_t tid, int manager)
{
	struct uthread t;
	size_t at;
	int err;

	if (known_find(u, tid, &at))
		return 0;
	if (u->nknown == u->known_alloc) {
		size_t n = u->known_alloc ? u->known_alloc * 2 : 64;
		pid_t *v = realloc(u->known, n * sizeof(*v));
		if (!v)
			return -ENOMEM;
		u->known = v;
		u->known_alloc = n;
	}
	if ((err = thread_open(u, &t, tid)) <= 0)
		return err;
	if (manager)
		pthread_mutex_lock(&u->lock);
	err = manager ? push(&u->added, &u->nadded, &u->added_alloc, &t) : push(&u->t, &u->nt, &u->talloc, &t);
	u->probed += err == 0;
	if (manager)
		pthread_mutex_unlock(&u->lock);
	if (err < 0) {
		thread_close(u, &t);
		return err;
	}
	memmove(&u->known[at + 1], &u->known[at], (u->nknown - at) * sizeof(*u->known));
	u->known[at] = tid;
	u->nknown++;
	return 1;
}

static int add_thread_at_start(pid_t tid, void *arg)
{
	return add_thread(arg, tid, 0);
}

static int add_thread_managed(pid_t tid, void *arg)
{
	return add_thread(arg, tid, 1);
}

/* Probes every thread of the process that has none: one pass over
 * /proc/PID/task, or (rounds > 1) passes until one adds nothing. */
static int scan_threads(struct xp_uprobes *u, int rounds, int manager)
{
	return xp_scan_tasks(u->pid, rounds, manager ? add_thread_managed : add_thread_at_start, u);
}

/* The manager: every RESCAN_MS, closes the events of the threads the
 * reader saw exit and probes the threads that appeared. */
static void *manage(void *arg)
{
	struct xp_uprobes *u = arg;
	struct timespec ts;

	pthread_mutex_lock(&u->lock);
	while (!u->stop) {
		struct uthread *dead;
		size_t ndead, i;
		int err;

		clock_gettime(CLOCK_MONOTONIC, &ts);
		ts.tv_nsec += RESCAN_MS * 1000000L;
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		pthread_cond_timedwait(&u->wake, &u->lock, &ts);
		if (u->stop)
			break;
		dead = u->dead;
		ndead = u->ndead;
		u->dead = NULL;
		u->ndead = u->dead_alloc = 0;
		pthread_mutex_unlock(&u->lock);
		for (i = 0; i < ndead; i++) {
			known_remove(u, dead[i].tid);
			thread_close(u, &dead[i]);
		}
		free(dead);
		err = xp_proc_alive(u->pid) ? scan_threads(u, 1, 1) : 0;
		pthread_mutex_lock(&u->lock);
		if (err < 0 && err != -ENOENT && err != -ESRCH && !u->err)
			u->err = err;
	}
	pthread_mutex_unlock(&u->lock);
	return NULL;
}

/* Ends the manager; the reader's table then holds every thread. */
static void stop_manager(struct xp_uprobes *u)
{
	size_t i;

	if (!u->managing)
		return;
	pthread_mutex_lock(&u->lock);
	u->stop = 1;
	pthread_cond_signal(&u->wake);
	pthread_mutex_unlock(&u->lock);
	pthread_join(u->manager, NULL);
	u->managing = 0;
	for (i = 0; i < u->nadded; i++)
		if (push(&u->t, &u->nt, &u->talloc, &u->added[i]) < 0)
			thread_close(u, &u->added[i]);
	u->nadded = 0;
}

int xp_uprobes_open(pid_t pid, const struct xp_uprobe_spec *v, size_t n, struct xp_uprobes **out)
{
	struct xp_uprobes *u;
	size_t i;
	int err;

	*out = NULL;
	if (n == 0)
		return -EINVAL;
	for (i = 0; i < n; i++)
		if (v[i].stack_bytes % 8 || v[i].stack_bytes >= 65528)
			return -EINVAL;
	if (!(u = calloc(1, sizeof(*u))))
		return -ENOMEM;
	u->pid = pid;
	pthread_mutex_init(&u->lock, NULL);
	u->ring_pages = ring_pages_for(count_threads(pid));
	if ((u->type = xp_pmu_type("uprobe")) < 0 || (u->retbit = xp_pmu_config_bit("uprobe", "retprobe")) < 0) {
		err = u->type < 0 ? u->type : u->retbit;
		free(u);
		return err == -ENOENT ? -EOPNOTSUPP : err;
	}
	u->specs = calloc(n, sizeof(*u->specs));
	u->hits = calloc(n, sizeof(*u->hits));
	u->wrapbuf = malloc(XP_RECORD_MAX);
	if (!u->specs || !u->hits || !u->wrapbuf) {
		xp_uprobes_close(u);
		return -ENOMEM;
	}
	for (i = 0; i < n; i++) {
		u->specs[i] = v[i];
		if (!(u->specs[i].path = strdup(v[i].path))) {
			u->nspecs = i;
			xp_uprobes_close(u);
			return -ENOMEM;
		}
	}
	u->nspecs = n;
	xp_raise_fd_limit(); /* one descriptor per thread and probe */
	err = scan_threads(u, SCAN_ROUNDS, 0);
	if (err == 0 && (u->nt == 0 || !xp_proc_alive(pid)))
		err = -ESRCH;
	if (err == 0) {
		pthread_condattr_t ca;
		pthread_condattr_init(&ca);
		pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
		pthread_cond_init(&u->wake, &ca);
		pthread_condattr_destroy(&ca);
		u->have_cond = 1;
		err = -pthread_create(&u->manager, NULL, manage, u);
		u->managing = err == 0;
	}
	if (err < 0) {
		xp_uprobes_close(u);
		return err;
	}
	*out = u;
	return 0;
}

size_t xp_uprobes_nthreads(const struct xp_uprobes *u)
{
	size_t n;

	pthread_mutex_lock((pthread_mutex_t *)&u->lock);
	n = u->probed;
	pthread_mutex_unlock((pthread_mutex_t *)&u->lock);
	return n;
}

uint64_t xp_uprobes_lost(const struct xp_uprobes *u)
{
	return u->lost;
}

void xp_uprobes_disable(struct xp_uprobes *u)
{
	size_t i, k;

	stop_manager(u); /* no thread probed after this */
	for (i = 0; i < u->nt; i++)
		for (k = 0; u->t[i].fds && k < u->nspecs; k++)
			if (u->t[i].fds[k] >= 0)
				ioctl(u->t[i].fds[k], PERF_EVENT_IOC_DISABLE, 0);
}

/* Closes spec k's event on every thread. */
static void close_spec(struct xp_uprobes *u, size_t k)
{
	struct uthread *v[2] = { u->t, u->dead };
	size_t n[2] = { u->nt, u->ndead }, i, j;

	for (j = 0; j < 2; j++)
		for (i = 0; i < n[j]; i++)
			if (v[j][i].fds && v[j][i].fds[k] >= 0) {
				close(v[j][i].fds[k]);
				v[j][i].fds[k] = -1;
			}
}

static int same_address(const struct xp_uprobe_spec *a, const struct xp_uprobe_spec *b)
{
	return a->offset == b->offset && strcmp(a->path, b->path) == 0;
}

/* Of the specs not closed yet (done[k] 0), one on the address the target
 * hit most; nspecs when every spec is closed. */
static size_t hottest_address(const struct xp_uprobes *u, const int *done)
{
	size_t best = u->nspecs, i, k;
	uint64_t besthits = 0, h;

	for (k = 0; k < u->nspecs; k++) {
		if (done[k])
			continue;
		for (h = 0, i = 0; i < u->nspecs; i++)
			if (same_address(&u->specs[i], &u->specs[k]))
				h += u->hits[i];
		if (best == u->nspecs || h > besthits) {
			best = k;
			besthits = h;
		}
	}
	return best;
}

/* Closes every event, one probed address at a time, the most hit first,
 * and on each address the return probes before the entry probes.
 *
 * The kernel destroys a uprobe event under its global event_mutex and,
 * under it, waits for RCU grace periods (uprobe_unregister_sync, then
 * tracepoint_synchronize_unregister): some 40-60 ms a close, one close at
 * a time whatever the number of threads closing.  A breakpoint leaves
 * the target only with the last event on its address (every thread's,
 * entry and return alike).  While a return probe is on an address, every
 * thread that enters it holds a return instance until it returns (a lock
 * wait: up to the kernel's 100 ms before it lets go), and each close waits
 * for those too: 150-200 ms.  So the return probes go first (the entry
 * probes of that address then close as fast as any), and the hot
 * addresses before the cold ones.  lockbench, 50 threads: 47.6 s from the
 * first close to the last in thread order, 20 s in this one. */
static void close_by_address(struct xp_uprobes *u)
{
	int *done = calloc(u->nspecs, sizeof(*done));
	size_t i, k, best;
	int ret;

	for (i = 0; i < u->nt; i++)
		xp_ring_unmap(&u->t[i].ring); /* a mapped ring keeps its event alive */
	for (i = 0; i < u->ndead; i++)
		xp_ring_unmap(&u->dead[i].ring);
	if (!done)
		return; /* thread_close closes them, in thread order */
	while ((best = hottest_address(u, done)) < u->nspecs) {
		for (ret = 1; ret >= 0; ret--)
			for (k = 0; k < u->nspecs; k++)
				if (!done[k] && !!u->specs[k].retprobe == ret && same_address(&u->specs[k], &u->specs[best])) {
					close_spec(u, k);
					done[k] = 1;
				}
	}
	free(done);
}

void xp_uprobes_close(struct xp_uprobes *u)
{
	size_t i;

	if (!u)
		return;
	stop_manager(u);
	if (u->specs && u->nspecs && u->hits)
		close_by_address(u);
	for (i = 0; i < u->nt; i++)
		thread_close(u, &u->t[i]);
	for (i = 0; i < u->ndead; i++)
		thread_close(u, &u->dead[i]);
	free(u->dead);
	free(u->added);
	free(u->known);
	if (u->have_cond)
		pthread_cond_destroy(&u->wake);
	pthread_mutex_destroy(&u->lock);
	for (i = 0; u->specs && i < u->nspecs; i++)
		free((char *)u->specs[i].path);
	free(u->specs);
	free(u->hits);
	free(u->t);
	free(u->pfd);
	free(u->wrapbuf);
	free(u);
}

/* ---- records ------------------------------------------------------------ */

/* A sample as fill_attr asked for it; -1 when shorter than its fields say
 * or from an event that is not this thread's. */
static int parse_hit(const struct xp_uprobes *u, const struct uthread *t, const uint8_t *rec, size_t len,
		     struct xp_uprobe_hit *h)
{
	struct xp_cursor c;
	struct xp_user_part up;
	uint64_t id;
	uint32_t pidtid[2];
	size_t i;

	memset(h, 0, sizeof(*h));
	xp_cursor_init(&c, rec, len);
	if (xp_cursor_take(&c, &id, 8) || xp_cursor_take(&c, pidtid, 8) || xp_cursor_take(&c, &h->time, 8))
		return -1;
	for (i = 0; i < u->nspecs && t->ids[i] != id; i++)
		;
	if (i == u->nspecs || (pid_t)pidtid[0] != u->pid)
		return -1;
	h->probe = i;
	h->tid = (pid_t)pidtid[1];
	if (xp_take_user_part(&c, &up))
		return -1;
	h->have_regs = up.have_regs;
	h->regs = up.regs;
	h->stack_addr = up.stack_addr;
	h->stack = up.stack;
	h->stack_len = up.stack_len;
	return 0;
}

/* Hands every record of one thread's ring to fn; returns how many hits. */
static int drain(struct xp_uprobes *u, struct uthread *t, xp_uprobe_fn fn, void *arg)
{
	uint64_t head = xp_ring_head(&t->ring), tail;
	struct perf_event_header h;
	int n = 0;

	/* a malformed header drops the rest */
	for (tail = xp_ring_tail(&t->ring); xp_ring_header(&t->ring, tail, head, &h); tail += h.size) {
		const uint8_t *rec = xp_ring_record(&t->ring, tail, h.size, u->wrapbuf);

		if (h.type == PERF_RECORD_SAMPLE) {
			struct xp_uprobe_hit hit;
			if (parse_hit(u, t, rec, h.size, &hit) == 0) {
				u->hits[hit.probe]++;
				hit.lost_before = t->lost;
				t->lost = 0;
				fn(&hit, arg);
				n++;
			}
		} else if (h.type == PERF_RECORD_LOST && h.size >= sizeof(h) + 16) {
			uint64_t lost;
			memcpy(&lost, rec + sizeof(h) + 8, 8);
			u->lost += lost;
			t->lost = 1;
		}
	}
	xp_ring_release(&t->ring, head);
	return n;
}

int xp_uprobes_read(struct xp_uprobes *u, int timeout_ms, xp_uprobe_fn fn, void *arg)
{
	size_t i, k;
	int n = 0, err = 0;

	/* the threads the manager probed since the last read */
	pthread_mutex_lock(&u->lock);
	for (i = 0; i < u->nadded; i++)
		if (push(&u->t, &u->nt, &u->talloc, &u->added[i]) < 0)
			thread_close(u, &u->added[i]); /* out of memory: not read */
	u->nadded = 0;
	err = u->err;
	pthread_mutex_unlock(&u->lock);
	if (err)
		return err;
	if (u->pfd_alloc < u->nt) {
		struct pollfd *v = realloc(u->pfd, u->nt * sizeof(*v));
		if (!v)
			return -ENOMEM;
		u->pfd = v;
		u->pfd_alloc = u->nt;
	}
	for (i = 0; i < u->nt; i++) {
		u->pfd[i].fd = u->t[i].fds[OWNER(u)];
		u->pfd[i].events = POLLIN;
		u->pfd[i].revents = 0;
	}
	if (timeout_ms > 0 && u->nt && poll(u->pfd, (nfds_t)u->nt, timeout_ms) < 0 && errno != EINTR)
		return -errno;
	for (i = 0; i < u->nt; i++) {
		n += drain(u, &u->t[i], fn, arg);
		/* the thread exited: its events report POLLHUP once its last
		 * samples are in the ring */
		if (u->pfd[i].revents & POLLHUP)
			u->t[i].gone = 1;
	}
	/* the exited threads' events go to the manager, which closes them */
	pthread_mutex_lock(&u->lock);
	for (i = k = 0; i < u->nt; i++) {
		if (u->t[i].gone && (!u->managing || push(&u->dead, &u->ndead, &u->dead_alloc, &u->t[i]) < 0))
			u->t[k++] = u->t[i]; /* kept, closed at the end */
		else if (!u->t[i].gone)
			u->t[k++] = u->t[i];
	}
	u->nt = k;
	pthread_mutex_unlock(&u->lock);
	return n;
}
