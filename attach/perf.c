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
#include <dirent.h>
#include <errno.h>
#include <linux/perf_event.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "attach/attach.h"
#include "attach/perf_x86_64.h"

#define MAX_CPUS 1024
#define RECORD_MAX 65536 /* a record's size field is 16 bits */
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

struct ring {
	int fd;                           /* the CPU's first event: owns the buffer */
	struct perf_event_mmap_page *meta;
	uint8_t *data;
	size_t size;                      /* data area, a power of two */
};

struct xp_perf {
	struct xp_perf_opts o;
	int ncpus;
	struct ring *rings;               /* one per CPU */
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

static int perf_event_open(struct perf_event_attr *attr, pid_t pid, int cpu, int group, unsigned long flags)
{
	return (int)syscall(SYS_perf_event_open, attr, pid, cpu, group, flags);
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

static int map_ring(const struct xp_perf *p, struct ring *r)
{
	size_t page = (size_t)getpagesize();
	size_t len = (1 + ring_pages(p)) * page;
	void *m = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, r->fd, 0);

	if (m == MAP_FAILED)
		return -errno;
	r->meta = m;
	r->data = (uint8_t *)m + page;
	r->size = ring_pages(p) * page;
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
		struct ring *r = &p->rings[cpu];
		int fd;

		fill_attr(p, &a, p->kernel);
		fd = perf_event_open(&a, tid, cpu, -1, PERF_FLAG_FD_CLOEXEC);
		if (fd < 0 && p->kernel && !p->o.switches && (errno == EACCES || errno == EPERM) && p->nfds == 0) {
			/* kernel call chains refused: user space only */
			p->kernel = 0;
			fill_attr(p, &a, 0);
			fd = perf_event_open(&a, tid, cpu, -1, PERF_FLAG_FD_CLOEXEC);
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
			if ((err = map_ring(p, r)) < 0)
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

/* Opens events for the threads of the process that have none: until the
 * task list is stable at start, and then now and then, for a thread created
 * by one that had no event yet. */
static int scan_threads(struct xp_perf *p)
{
	char path[64];
	int rounds, added, err;

	snprintf(path, sizeof(path), "/proc/%d/task", (int)p->o.pid);
	for (rounds = 0; rounds < 100; rounds++) {
		DIR *d = opendir(path);
		struct dirent *e;

		if (!d)
			return -errno;
		added = 0;
		while ((e = readdir(d)) != NULL) {
			char *end;
			long tid = strtol(e->d_name, &end, 10);
			if (*end || tid <= 0 || has_tid(p, (pid_t)tid))
				continue;
			err = open_thread(p, (pid_t)tid);
			if (err < 0) {
				closedir(d);
				return err;
			}
			added++;
		}
		closedir(d);
		if (added == 0)
			break;
	}
	if (p->ntids) /* no thread found leaves tids NULL, which qsort may not be given */
		qsort(p->tids, p->ntids, sizeof(*p->tids), tid_cmp);
	p->nsorted = p->ntids;
	p->last_scan_ns = mono_ns();
	return 0;
}

static void raise_fd_limit(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
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
	p->wrapbuf = malloc(RECORD_MAX);
	if (!p->rings || !p->heads || !p->wrapbuf) {
		xp_perf_close(p);
		return -ENOMEM;
	}
	for (cpu = 0; cpu < p->ncpus; cpu++)
		p->rings[cpu].fd = -1;
	raise_fd_limit();
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
		if (p->rings[cpu].meta)
			munmap(p->rings[cpu].meta, (1 + ring_pages(p)) * (size_t)getpagesize());
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

struct cursor {
	const uint8_t *p, *end;
};

static int take(struct cursor *c, void *out, size_t n)
{
	if ((size_t)(c->end - c->p) < n)
		return -1;
	memcpy(out, c->p, n);
	c->p += n;
	return 0;
}

/* Parses one PERF_RECORD_SAMPLE laid out as fill_attr asked; -1 when the
 * record is shorter than its fields say. */
static int parse_sample(struct xp_perf *p, const uint8_t *rec, size_t len,
			struct xp_perf_sample *s)
{
	struct cursor c = { rec + sizeof(struct perf_event_header), rec + len };
	uint64_t ip, nr, abi, size, dyn;
	uint32_t pidtid[2];
	uint64_t regs[XP_PERF_NREGS];

	memset(s, 0, sizeof(*s));
	if (take(&c, &ip, 8) || take(&c, pidtid, 8) || take(&c, &s->time, 8))
		return -1;
	s->pid = (pid_t)pidtid[0];
	s->tid = (pid_t)pidtid[1];
	if (p->kernel) {
		uint64_t i, ip;
		if (take(&c, &nr, 8) || nr > (size_t)(c.end - c.p) / 8)
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
	if (take(&c, &abi, 8))
		return -1;
	if (abi != PERF_SAMPLE_REGS_ABI_NONE) {
		if (take(&c, regs, sizeof(regs)))
			return -1;
		xp_perf_regs_to_user(regs, &s->regs);
		s->have_regs = 1;
	}
	if (take(&c, &size, 8))
		return -1;
	if (size > 0) {
		const uint8_t *data = c.p;
		if (size > (size_t)(c.end - c.p) || (c.p += size, take(&c, &dyn, 8)))
			return -1;
		s->stack = data;
		s->stack_len = dyn < size ? (size_t)dyn : (size_t)size;
		s->stack_addr = s->regs.rsp;
	}
	(void)ip;
	return 0;
}

/* PERF_RECORD_MMAP2: pid, tid, addr, len, pgoff, 24 bytes of device/inode
 * or build id, prot, flags, then the NUL-terminated file name. */
static int parse_mmap2(const uint8_t *rec, size_t len, struct xp_perf_mapping *m)
{
	struct cursor c = { rec + sizeof(struct perf_event_header), rec + len };
	uint32_t pidtid[2], prot, flags;
	uint8_t ids[24];
	size_t n;

	if (take(&c, pidtid, 8) || take(&c, &m->addr, 8) || take(&c, &m->len, 8) ||
	    take(&c, &m->pgoff, 8) || take(&c, ids, sizeof(ids)) || take(&c, &prot, 4) ||
	    take(&c, &flags, 4))
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
	struct cursor c = { rec + sizeof(struct perf_event_header), rec + len };
	uint32_t pidtid[2];
	size_t n;

	if (take(&c, pidtid, 8))
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

/* The record at ring position pos, made whole in wrapbuf when it wraps. */
static const uint8_t *record_at(struct xp_perf *p, struct ring *r, uint64_t pos, size_t size)
{
	size_t off = (size_t)(pos & (r->size - 1));
	size_t first = r->size - off;

	if (off + size <= r->size)
		return r->data + off;
	memcpy(p->wrapbuf, r->data + off, first);
	memcpy(p->wrapbuf + first, r->data, size - first);
	return p->wrapbuf;
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
	struct ring *r = &p->rings[cpu];
	uint64_t tail = r->meta->data_tail;

	while (tail < head) {
		size_t off = (size_t)(tail & (r->size - 1));
		struct perf_event_header h;

		if (off + sizeof(h) <= r->size) {
			memcpy(&h, r->data + off, sizeof(h));
		} else {
			size_t first = r->size - off;
			memcpy(&h, r->data + off, first);
			memcpy((uint8_t *)&h + first, r->data, sizeof(h) - first);
		}
		if (h.size < sizeof(h) || h.size > head - tail)
			break; /* malformed: drop the rest of this batch */
		if (h.type == PERF_RECORD_SAMPLE || h.type == PERF_RECORD_SWITCH || h.type == PERF_RECORD_LOST) {
			struct record_ref *ref;
			const uint8_t *rec = record_at(p, r, tail, h.size);
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
		tail += h.size;
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
		struct ring *r = &p->rings[ref->ring];
		const uint8_t *rec = record_at(p, r, ref->pos, ref->size);
		struct perf_event_header h;

		memcpy(&h, rec, sizeof(h));
		n += dispatch_record(p, &h, rec, hd, arg);
	}
	for (cpu = 0; cpu < p->ncpus; cpu++)
		if (p->rings[cpu].meta)
			__atomic_store_n(&p->rings[cpu].meta->data_tail, p->heads[cpu], __ATOMIC_RELEASE);
	return n;
}

/* Walks the records of one ring between tail and head.  Mappings and execs
 * go first, from every ring and in time order (xp_perf_read), then the
 * samples, because the rings are per CPU: a library's MMAP2 in one CPU's
 * ring must be known before the samples in the other rings that run code
 * in it. */
static int walk_ring(struct xp_perf *p, struct ring *r, uint64_t head, int want_samples,
		     const struct xp_perf_handlers *hd, void *arg)
{
	uint64_t tail = r->meta->data_tail;
	int n = 0;

	while (tail < head) {
		size_t off = (size_t)(tail & (r->size - 1));
		struct perf_event_header h;
		const uint8_t *rec;

		if (off + sizeof(h) <= r->size) {
			memcpy(&h, r->data + off, sizeof(h));
		} else {
			size_t first = r->size - off;
			memcpy(&h, r->data + off, first);
			memcpy((uint8_t *)&h + first, r->data, sizeof(h) - first);
		}
		if (h.size < sizeof(h) || h.size > head - tail)
			break; /* malformed: drop the rest of this batch */
		if (want_samples ? (h.type != PERF_RECORD_SAMPLE && h.type != PERF_RECORD_LOST)
				 : (h.type != PERF_RECORD_MMAP2 &&
				    !(h.type == PERF_RECORD_COMM && (h.misc & PERF_RECORD_MISC_COMM_EXEC)))) {
			tail += h.size;
			continue;
		}
		if (off + h.size <= r->size) {
			rec = r->data + off;
		} else {
			size_t first = r->size - off;
			memcpy(p->wrapbuf, r->data + off, first);
			memcpy(p->wrapbuf + first, r->data, h.size - first);
			rec = p->wrapbuf;
		}
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
		tail += h.size;
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
		head = p->rings[cpu].meta ? __atomic_load_n(&p->rings[cpu].meta->data_head, __ATOMIC_ACQUIRE) : 0;
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
		__atomic_store_n(&p->rings[cpu].meta->data_tail, p->heads[cpu], __ATOMIC_RELEASE);
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
