/* Sampling with perf_event_open: the software cpu-clock event (no hardware
 * counters needed), user registers and a copy of the user stack in every
 * sample, so stacks unwind with DWARF CFI afterwards, and optionally the
 * kernel call chain.
 *
 * One inherited event per (thread, CPU), all the events of a CPU writing
 * into one ring buffer (PERF_EVENT_IOC_SET_OUTPUT): buffers scale with the
 * CPUs, not the threads, and threads created during the run inherit events
 * from their creator and are sampled from their start.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <linux/perf_event.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#include "attach/attach.h"
#include "attach/perf_internal.h"
#include "attach/perf_x86_64.h"

#define MAX_CPUS 1024
#define SAMPLE_ID_TIME_END 8 /* sample_id_all with TID|TIME: the time is a record's last 8 bytes */

/* A mapping or an exec seen in a ring, held until every ring is read so
 * that they reach the caller in time order. */
struct ring_event {
	uint64_t time;
	size_t seq;               /* tie-break: the order read */
	int is_exec;
	struct xp_perf_mapping m; /* m.filename is owned */
	struct xp_perf_exec e;
};

/* switches: a sample or switch record left in its ring until every ring
 * is read and the records are sorted by time. */
struct record_ref {
	uint64_t time;
	uint64_t pos;             /* its offset in the ring (before masking) */
	uint32_t ring;
	uint16_t size;
};

struct xp_perf {
	struct xp_perf_opts o;
	int ncpus;
	struct xp_ring *rings;            /* one per CPU, owned by its first event */
	int *fds;                         /* every event */
	size_t nfds, fds_alloc;
	pid_t *tids;                      /* threads with events: sorted up to nsorted */
	size_t ntids, tids_alloc, nsorted;
	int kernel;
	uint64_t lost;
	uint8_t *wrapbuf;                 /* a record that wraps the ring, made whole */
	uint64_t kips[XP_PERF_KERNEL_FRAMES]; /* the current sample's kernel chain */
	uint64_t *heads;                  /* per CPU: the data_head this read stops at */
	int64_t last_scan_ns;
	struct ring_event *ev;            /* this read's mappings and execs */
	size_t nev, ev_alloc;
	struct record_ref *refs;          /* switches: this read's samples and switches */
	size_t nrefs, refs_alloc;
};

static int64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Switches come in bursts of a full stack each (a thread that blocks
 * 10,000 times a second): twice the room. */
static size_t ring_pages(const struct xp_perf *p)
{
	return p->o.switches ? 2 * XP_PERF_RING_PAGES : XP_PERF_RING_PAGES;
}

static void fill_attr(const struct xp_perf *p, struct perf_event_attr *a, int kernel)
{
	memset(a, 0, sizeof(*a));
	a->size = sizeof(*a);
	a->type = PERF_TYPE_SOFTWARE;
	if (p->o.switches) {
		/* every switch out is a sample, in the context of the thread
		 * leaving; context_switch adds the records of it leaving
		 * (preempted or not) and coming back */
		a->config = PERF_COUNT_SW_CONTEXT_SWITCHES;
		a->sample_period = 1;
		a->context_switch = 1;
	} else {
		a->config = PERF_COUNT_SW_CPU_CLOCK;
		/* a fixed period, not a frequency: every sample stands for 1/F s */
		a->sample_period = 1000000000ULL / (unsigned)p->o.freq;
	}
	a->sample_type = PERF_SAMPLE_IP | PERF_SAMPLE_TID | PERF_SAMPLE_TIME | PERF_SAMPLE_REGS_USER |
			 PERF_SAMPLE_STACK_USER;
	if (kernel) {
		a->sample_type |= PERF_SAMPLE_CALLCHAIN;
		a->exclude_callchain_user = 1; /* the user part comes from our unwinder */
	} else if (!p->o.switches) {
		/* not for switches: a switch happens in the kernel, and an event
		 * excluding it would open and never sample */
		a->exclude_kernel = 1;
	}
	a->exclude_hv = 1;
	a->sample_regs_user = XP_PERF_REGS_MASK;
	a->sample_stack_user = (uint32_t)p->o.stack_bytes;
	a->mmap = 1;  /* executable mappings, as PERF_RECORD_MMAP2 */
	a->mmap2 = 1;
	/* an exec replaces every module: PERF_RECORD_COMM with the exec flag,
	 * and the time on every record to place it among the samples */
	a->comm = 1;
	a->comm_exec = 1;
	a->sample_id_all = 1;
	a->inherit = 1;
	a->disabled = p->o.enable_on_exec;
	a->enable_on_exec = p->o.enable_on_exec;
	a->use_clockid = 1;
	a->clockid = CLOCK_MONOTONIC;
	a->wakeup_watermark = (uint32_t)(ring_pages(p) * (size_t)getpagesize() / 4);
	a->watermark = 1;
}

static int add_fd(struct xp_perf *p, int fd)
{
	if (p->nfds == p->fds_alloc) {
		size_t n = p->fds_alloc ? p->fds_alloc * 2 : 64;
		int *v = realloc(p->fds, n * sizeof(*v));
		if (!v)
			return -ENOMEM;
		p->fds = v;
		p->fds_alloc = n;
	}
	p->fds[p->nfds++] = fd;
	return 0;
}

static int tid_cmp(const void *a, const void *b)
{
	pid_t x = *(const pid_t *)a, y = *(const pid_t *)b;

	return x < y ? -1 : x > y;
}

/* The sorted part by binary search, the few added since by a scan. */
static int has_tid(const struct xp_perf *p, pid_t tid)
{
	size_t i;

	/* bsearch may not be given NULL, even for no elements */
	if (p->nsorted && bsearch(&tid, p->tids, p->nsorted, sizeof(*p->tids), tid_cmp))
		return 1;
	for (i = p->nsorted; i < p->ntids; i++)
		if (p->tids[i] == tid)
			return 1;
	return 0;
}

/* Opens the events of one thread, one per CPU.  A thread that exited in
 * the meantime is not an error. */
static int open_thread(struct xp_perf *p, pid_t tid)
{
	struct perf_event_attr a;
	int cpu, err;

	for (cpu = 0; cpu < p->ncpus; cpu++) {
		struct xp_ring *r = &p->rings[cpu];
		int fd;

		fill_attr(p, &a, p->kernel);
		fd = xp_perf_event_open(&a, tid, cpu, -1, PERF_FLAG_FD_CLOEXEC);
		if (fd < 0 && p->kernel && !p->o.switches && (errno == EACCES || errno == EPERM) && p->nfds == 0) {
			/* kernel call chains refused: user space only */
			p->kernel = 0;
			fill_attr(p, &a, 0);
			fd = xp_perf_event_open(&a, tid, cpu, -1, PERF_FLAG_FD_CLOEXEC);
		}
		if (fd < 0) {
			err = -errno;
			if (err == -ESRCH)
				return 0;
			if (err == -ENODEV || err == -EINVAL) {
				if (cpu > 0 && r->fd < 0)
					continue; /* an offline CPU */
			}
			return err;
		}
		if ((err = add_fd(p, fd)) < 0) {
			close(fd);
			return err;
		}
		if (r->fd < 0) {
			r->fd = fd;
			if ((err = xp_ring_map(r, fd, ring_pages(p))) < 0)
				return err;
		} else if (ioctl(fd, PERF_EVENT_IOC_SET_OUTPUT, r->fd) < 0) {
			return -errno;
		}
	}
	if (p->ntids == p->tids_alloc) {
		size_t n = p->tids_alloc ? p->tids_alloc * 2 : 64;
		pid_t *v = realloc(p->tids, n * sizeof(*v));
		if (!v)
			return -ENOMEM;
		p->tids = v;
		p->tids_alloc = n;
	}
	p->tids[p->ntids++] = tid;
	return 0;
}

/* xp_scan_tasks' callback: 1 when tid had no events (opened now, or it
 * exited meanwhile). */
static int open_new_thread(pid_t tid, void *arg)
{
	struct xp_perf *p = arg;
	int err;

	if (has_tid(p, tid))
		return 0;
	err = open_thread(p, tid);
	return err < 0 ? err : 1;
}

/* Opens events for the threads of the process that have none: until the
 * task list is stable at start, and then now and then, for a thread created
 * by one that had no event yet. */
static int scan_threads(struct xp_perf *p)
{
	int err = xp_scan_tasks(p->o.pid, 100, open_new_thread, p);

	if (err < 0)
		return err;
	if (p->ntids) /* no thread found leaves tids NULL, which qsort may not be given */
		qsort(p->tids, p->ntids, sizeof(*p->tids), tid_cmp);
	p->nsorted = p->ntids;
	p->last_scan_ns = mono_ns();
	return 0;
}

int xp_perf_open(const struct xp_perf_opts *o, struct xp_perf **out)
{
	struct xp_perf *p = calloc(1, sizeof(*p));
	int cpu, err;

	*out = NULL;
	if (!p)
		return -ENOMEM;
	p->o = *o;
	p->kernel = o->kernel;
	p->ncpus = (int)sysconf(_SC_NPROCESSORS_CONF);
	if (p->ncpus < 1 || p->ncpus > MAX_CPUS)
		p->ncpus = p->ncpus < 1 ? 1 : MAX_CPUS;
	p->rings = calloc((size_t)p->ncpus, sizeof(*p->rings));
	p->heads = calloc((size_t)p->ncpus, sizeof(*p->heads));
	p->wrapbuf = malloc(XP_RECORD_MAX);
	if (!p->rings || !p->heads || !p->wrapbuf) {
		xp_perf_close(p);
		return -ENOMEM;
	}
	for (cpu = 0; cpu < p->ncpus; cpu++)
		p->rings[cpu].fd = -1;
	xp_raise_fd_limit();
	if (o->enable_on_exec)
		err = open_thread(p, o->pid); /* one thread, before its exec */
	else
		err = scan_threads(p);
	if (err == 0 && (p->nfds == 0 || !xp_proc_alive(o->pid)))
		err = -ESRCH;
	if (err < 0) {
		xp_perf_close(p);
		return err;
	}
	*out = p;
	return 0;
}

int xp_perf_kernel(const struct xp_perf *p)
{
	return p->kernel;
}

size_t xp_perf_nthreads(const struct xp_perf *p)
{
	return p->ntids;
}

uint64_t xp_perf_lost(const struct xp_perf *p)
{
	return p->lost;
}

void xp_perf_close(struct xp_perf *p)
{
	size_t i;
	int cpu;

	if (!p)
		return;
	for (cpu = 0; p->rings && cpu < p->ncpus; cpu++)
		xp_ring_unmap(&p->rings[cpu]);
	for (i = 0; i < p->nfds; i++)
		close(p->fds[i]);
	free(p->fds);
	free(p->tids);
	free(p->rings);
	free(p->heads);
	free(p->wrapbuf);
	free(p->ev);
	free(p->refs);
	free(p);
}

/* ---- records ---------------------------------------------------------- */

/* Parses one PERF_RECORD_SAMPLE laid out as fill_attr asked; -1 when the
 * record is shorter than its fields say. */
static int parse_sample(struct xp_perf *p, const uint8_t *rec, size_t len,
			struct xp_perf_sample *s)
{
	struct xp_cursor c;
	struct xp_user_part u;
	uint64_t ip, nr;
	uint32_t pidtid[2];

	memset(s, 0, sizeof(*s));
	xp_cursor_init(&c, rec, len);
	if (xp_cursor_take(&c, &ip, 8) || xp_cursor_take(&c, pidtid, 8) || xp_cursor_take(&c, &s->time, 8))
		return -1;
	s->pid = (pid_t)pidtid[0];
	s->tid = (pid_t)pidtid[1];
	if (p->kernel) {
		uint64_t i, ip;
		if (xp_cursor_take(&c, &nr, 8) || nr > (size_t)(c.end - c.p) / 8)
			return -1;
		/* the chain opens with a PERF_CONTEXT_KERNEL marker and may end
		 * with PERF_CONTEXT_USER: keep the addresses only */
		for (i = 0; i < nr; i++) {
			memcpy(&ip, c.p + 8 * i, 8);
			if (ip < PERF_CONTEXT_MAX && s->nkernel < XP_PERF_KERNEL_FRAMES)
				p->kips[s->nkernel++] = ip;
		}
		s->kernel_ips = p->kips;
		c.p += nr * 8;
	}
	if (xp_take_user_part(&c, &u))
		return -1;
	s->have_regs = u.have_regs;
	s->regs = u.regs;
	s->stack_addr = u.stack_addr;
	s->stack = u.stack;
	s->stack_len = u.stack_len;
	(void)ip;
	return 0;
}

/* PERF_RECORD_MMAP2: pid, tid, addr, len, pgoff, 24 bytes of device/inode
 * or build id, prot, flags, then the NUL-terminated file name. */
static int parse_mmap2(const uint8_t *rec, size_t len, struct xp_perf_mapping *m)
{
	struct xp_cursor c;
	uint32_t pidtid[2], prot, flags;
	uint8_t ids[24];
	size_t n;

	xp_cursor_init(&c, rec, len);
	if (xp_cursor_take(&c, pidtid, 8) || xp_cursor_take(&c, &m->addr, 8) || xp_cursor_take(&c, &m->len, 8) ||
	    xp_cursor_take(&c, &m->pgoff, 8) || xp_cursor_take(&c, ids, sizeof(ids)) ||
	    xp_cursor_take(&c, &prot, 4) || xp_cursor_take(&c, &flags, 4))
		return -1;
	n = strnlen((const char *)c.p, (size_t)(c.end - c.p));
	if (n == (size_t)(c.end - c.p))
		return -1; /* not terminated within the record */
	m->pid = (pid_t)pidtid[0];
	m->prot = prot;
	memcpy(&m->major, ids, 4); /* maj u32, min u32, ino u64, ino_generation u64 */
	memcpy(&m->minor, ids + 4, 4);
	memcpy(&m->inode, ids + 8, 8);
	m->filename = (const char *)c.p;
	return 0;
}

/* PERF_RECORD_COMM: pid, tid, the NUL-terminated name; an exec when the
 * header's misc says so. */
static int parse_comm(const uint8_t *rec, size_t len, struct xp_perf_exec *e)
{
	struct xp_cursor c;
	uint32_t pidtid[2];
	size_t n;

	xp_cursor_init(&c, rec, len);
	if (xp_cursor_take(&c, pidtid, 8))
		return -1;
	n = strnlen((const char *)c.p, (size_t)(c.end - c.p));
	if (n == (size_t)(c.end - c.p))
		return -1;
	e->pid = (pid_t)pidtid[0];
	e->tid = (pid_t)pidtid[1];
	snprintf(e->comm, sizeof(e->comm), "%.*s", (int)n, (const char *)c.p);
	return 0;
}

static uint64_t record_time(const uint8_t *rec, size_t len)
{
	uint64_t t = 0;

	if (len >= sizeof(struct perf_event_header) + 16)
		memcpy(&t, rec + len - SAMPLE_ID_TIME_END, 8);
	return t;
}

static struct ring_event *push_event(struct xp_perf *p, uint64_t time)
{
	struct ring_event *ev;

	if (p->nev == p->ev_alloc) {
		size_t n = p->ev_alloc ? p->ev_alloc * 2 : 16;
		struct ring_event *v = realloc(p->ev, n * sizeof(*v));
		if (!v)
			return NULL;
		p->ev = v;
		p->ev_alloc = n;
	}
	ev = &p->ev[p->nev];
	memset(ev, 0, sizeof(*ev));
	ev->time = time;
	ev->seq = p->nev++;
	return ev;
}

static int event_cmp(const void *a, const void *b)
{
	const struct ring_event *x = a, *y = b;

	if (x->time != y->time)
		return x->time < y->time ? -1 : 1;
	return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* Hands this read's mappings and execs to the caller, oldest first. */
static void dispatch_events(struct xp_perf *p, const struct xp_perf_handlers *hd, void *arg)
{
	size_t i;

	if (p->nev == 0)
		return; /* p->ev may be NULL, which qsort may not be given */
	qsort(p->ev, p->nev, sizeof(*p->ev), event_cmp);
	for (i = 0; i < p->nev; i++) {
		struct ring_event *ev = &p->ev[i];
		if (ev->is_exec && hd->exec)
			hd->exec(&ev->e, arg);
		else if (!ev->is_exec && hd->mapping)
			hd->mapping(&ev->m, arg);
		free((char *)ev->m.filename);
	}
	p->nev = 0;
}

/* Hands one sample, switch or loss record (rec, h) to the caller;
 * 1 when it was a sample of the target. */
static int dispatch_record(struct xp_perf *p, const struct perf_event_header *h, const uint8_t *rec,
			   const struct xp_perf_handlers *hd, void *arg)
{
	if (h->type == PERF_RECORD_SAMPLE) {
		struct xp_perf_sample s;
		if (parse_sample(p, rec, h->size, &s) == 0 && s.pid == p->o.pid) {
			hd->sample(&s, arg);
			return 1;
		}
	} else if (h->type == PERF_RECORD_SWITCH) {
		/* sample_id_all: pid, tid, time */
		struct xp_perf_switch w;
		uint32_t pidtid[2];
		if (h->size < sizeof(*h) + 16 || !hd->switched)
			return 0;
		memcpy(pidtid, rec + sizeof(*h), 8);
		w.pid = (pid_t)pidtid[0];
		w.tid = (pid_t)pidtid[1];
		w.time = record_time(rec, h->size);
		w.out = (h->misc & PERF_RECORD_MISC_SWITCH_OUT) != 0;
		w.preempted = w.out && (h->misc & PERF_RECORD_MISC_SWITCH_OUT_PREEMPT) != 0;
		if (w.pid == p->o.pid)
			hd->switched(&w, arg);
	} else if (h->type == PERF_RECORD_LOST && h->size >= sizeof(*h) + 16) { /* id, lost */
		uint64_t lost;
		memcpy(&lost, rec + sizeof(*h) + 8, 8);
		p->lost += lost;
	}
	return 0;
}

static int ref_cmp(const void *a, const void *b)
{
	const struct record_ref *x = a, *y = b;

	if (x->time != y->time)
		return x->time < y->time ? -1 : 1;
	if (x->ring != y->ring)
		return x->ring < y->ring ? -1 : 1;
	return x->pos < y->pos ? -1 : x->pos > y->pos;
}

/* switches: notes where each sample and switch record of one ring is.
 * Records are read in place afterwards, the ring's tail moved only then. */
static int note_ring(struct xp_perf *p, uint32_t cpu, uint64_t head)
{
	struct xp_ring *r = &p->rings[cpu];
	struct perf_event_header h;
	uint64_t tail;

	/* a malformed header drops the rest of this batch */
	for (tail = xp_ring_tail(r); xp_ring_header(r, tail, head, &h); tail += h.size) {
		if (h.type == PERF_RECORD_SAMPLE || h.type == PERF_RECORD_SWITCH || h.type == PERF_RECORD_LOST) {
			struct record_ref *ref;
			const uint8_t *rec = xp_ring_record(r, tail, h.size, p->wrapbuf);
			if (p->nrefs == p->refs_alloc) {
				size_t n = p->refs_alloc ? p->refs_alloc * 2 : 1024;
				struct record_ref *v = realloc(p->refs, n * sizeof(*v));
				if (!v)
					return -ENOMEM;
				p->refs = v;
				p->refs_alloc = n;
			}
			ref = &p->refs[p->nrefs++];
			/* a sample's time is its third field; the others' the last */
			ref->time = 0;
			if (h.type == PERF_RECORD_SAMPLE) {
				if (h.size >= sizeof(h) + 24)
					memcpy(&ref->time, rec + sizeof(h) + 16, 8);
			} else {
				ref->time = record_time(rec, h.size);
			}
			ref->pos = tail;
			ref->ring = cpu;
			ref->size = h.size;
		}
	}
	return 0;
}

/* switches: the samples and switches of every ring, oldest first: a
 * thread leaves the CPU in one ring and comes back in another. */
static int read_sorted(struct xp_perf *p, const struct xp_perf_handlers *hd, void *arg)
{
	size_t i;
	int cpu, n = 0, err;

	p->nrefs = 0;
	for (cpu = 0; cpu < p->ncpus; cpu++)
		if (p->rings[cpu].meta && (err = note_ring(p, (uint32_t)cpu, p->heads[cpu])) < 0)
			return err;
	if (p->nrefs)
		qsort(p->refs, p->nrefs, sizeof(*p->refs), ref_cmp);
	for (i = 0; i < p->nrefs; i++) {
		struct record_ref *ref = &p->refs[i];
		const uint8_t *rec = xp_ring_record(&p->rings[ref->ring], ref->pos, ref->size, p->wrapbuf);
		struct perf_event_header h;

		memcpy(&h, rec, sizeof(h));
		n += dispatch_record(p, &h, rec, hd, arg);
	}
	for (cpu = 0; cpu < p->ncpus; cpu++)
		if (p->rings[cpu].meta)
			xp_ring_release(&p->rings[cpu], p->heads[cpu]);
	return n;
}

/* Walks the records of one ring between tail and head.  Mappings and execs
 * go first, from every ring and in time order (xp_perf_read), then the
 * samples, because the rings are per CPU: a library's MMAP2 in one CPU's
 * ring must be known before the samples in the other rings that run code
 * in it. */
static int walk_ring(struct xp_perf *p, struct xp_ring *r, uint64_t head, int want_samples,
		     const struct xp_perf_handlers *hd, void *arg)
{
	struct perf_event_header h;
	uint64_t tail;
	int n = 0;

	/* a malformed header drops the rest of this batch */
	for (tail = xp_ring_tail(r); xp_ring_header(r, tail, head, &h); tail += h.size) {
		const uint8_t *rec;

		if (want_samples ? (h.type != PERF_RECORD_SAMPLE && h.type != PERF_RECORD_LOST)
				 : (h.type != PERF_RECORD_MMAP2 &&
				    !(h.type == PERF_RECORD_COMM && (h.misc & PERF_RECORD_MISC_COMM_EXEC))))
			continue;
		rec = xp_ring_record(r, tail, h.size, p->wrapbuf);
		if (h.type == PERF_RECORD_SAMPLE || h.type == PERF_RECORD_LOST) {
			n += dispatch_record(p, &h, rec, hd, arg);
		} else if (h.type == PERF_RECORD_MMAP2) {
			struct xp_perf_mapping m;
			struct ring_event *ev;
			if (parse_mmap2(rec, h.size, &m) == 0 && m.pid == p->o.pid && hd->mapping &&
			    (ev = push_event(p, record_time(rec, h.size))) != NULL) {
				m.time = ev->time;
				ev->m = m;
				if (!(ev->m.filename = strdup(m.filename)))
					p->nev--;
			}
		} else if (h.type == PERF_RECORD_COMM) {
			struct xp_perf_exec e;
			struct ring_event *ev;
			if (parse_comm(rec, h.size, &e) == 0 && e.pid == p->o.pid && hd->exec &&
			    (ev = push_event(p, record_time(rec, h.size))) != NULL) {
				e.time = ev->time;
				ev->e = e;
				ev->is_exec = 1;
			}
		}
	}
	return n;
}

int xp_perf_read(struct xp_perf *p, int timeout_ms, const struct xp_perf_handlers *h, void *arg)
{
	struct pollfd pfd[MAX_CPUS];
	uint64_t head = 0;
	int cpu, n = 0, np = 0;

	for (cpu = 0; cpu < p->ncpus; cpu++) {
		if (p->rings[cpu].fd < 0)
			continue;
		pfd[np].fd = p->rings[cpu].fd;
		pfd[np].events = POLLIN;
		np++;
	}
	if (timeout_ms > 0 && poll(pfd, (nfds_t)np, timeout_ms) < 0 && errno != EINTR)
		return -errno;
	for (cpu = 0; cpu < p->ncpus; p->heads[cpu] = head, cpu++)
		head = p->rings[cpu].meta ? xp_ring_head(&p->rings[cpu]) : 0;
	for (cpu = 0; cpu < p->ncpus; cpu++)
		if (p->rings[cpu].meta)
			walk_ring(p, &p->rings[cpu], p->heads[cpu], 0, h, arg);
	dispatch_events(p, h, arg);
	if (p->o.switches) {
		n = read_sorted(p, h, arg);
		if (n < 0)
			return n;
	}
	for (cpu = 0; cpu < p->ncpus && !p->o.switches; cpu++) {
		if (!p->rings[cpu].meta)
			continue;
		n += walk_ring(p, &p->rings[cpu], p->heads[cpu], 1, h, arg);
		xp_ring_release(&p->rings[cpu], p->heads[cpu]);
	}
	/* a thread created by one that had no event yet has none: look for
	 * such threads every 100 ms */
	if (!p->o.enable_on_exec && mono_ns() - p->last_scan_ns > 100000000 && xp_proc_alive(p->o.pid)) {
		size_t nfds = p->nfds;
		int err = scan_threads(p);
		if (err < 0 && err != -ENOENT && err != -ESRCH)
			return err;
		/* the target exited while we looked: the threads just found
		 * may be a new process's under the same pid */
		if (!xp_proc_alive(p->o.pid))
			while (p->nfds > nfds)
				close(p->fds[--p->nfds]);
	}
	return n;
}
