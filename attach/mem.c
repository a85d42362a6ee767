/* Memory readers: a live process (process_vm_readv in bulk, /proc/PID/mem
 * when that is refused), a snapshot of copied regions layered over another
 * reader, and our own address space for unit tests.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include "attach/attach.h"
#include "attach/proc_internal.h"

int xp_mem_read_full(struct xp_mem *m, uint64_t addr, void *buf, size_t len)
{
	ssize_t n = m->read(m, addr, buf, len);

	if (n < 0)
		return (int)n;
	return (size_t)n == len ? 0 : -EFAULT;
}

int xp_mem_read_many(struct xp_mem *m, struct xp_mem_req *req, size_t n)
{
	size_t i;

	if (m->read_many)
		return m->read_many(m, req, n);
	for (i = 0; i < n; i++)
		req[i].ok = xp_mem_read_full(m, req[i].addr, req[i].buf, req[i].len) == 0;
	return 0;
}

/* ---- live process --------------------------------------------------- */

struct process_mem {
	struct xp_mem m;
	pid_t pid;
	pid_t via;      /* the thread read through: pid, or another once the leader is gone */
	int no_other;   /* no live thread other than `via` was found */
	int memfd;      /* /proc/VIA/mem, opened on first need */
	int use_memfd;  /* process_vm_readv was refused (ENOSYS/EPERM) */
};

/* After an ESRCH: the thread read through has exited (a leader that called
 * pthread_exit); 1 when another thread of the process now stands for it. */
static int switch_thread(struct process_mem *pm)
{
	pid_t tid;

	if (pm->no_other)
		return 0;
	tid = xp_live_thread(pm->pid);
	if (tid == pm->via || (tid == pm->pid && pm->via != pm->pid)) {
		pm->no_other = 1;
		return 0;
	}
	pm->via = tid;
	if (pm->memfd >= 0)
		close(pm->memfd);
	pm->memfd = -1;
	return 1;
}

static ssize_t read_memfd(struct process_mem *pm, uint64_t addr, void *buf, size_t len)
{
	ssize_t n;

	while (pm->memfd < 0) {
		char path[64];
		snprintf(path, sizeof(path), "/proc/%d/mem", (int)pm->via);
		pm->memfd = open(path, O_RDONLY | O_CLOEXEC);
		if (pm->memfd < 0) {
			int err = errno;
			if (err != ESRCH || !switch_thread(pm))
				return -err;
		}
	}
	do
		n = pread(pm->memfd, buf, len, (off_t)addr);
	while (n < 0 && errno == EINTR);
	return n < 0 ? -errno : n;
}

static ssize_t process_read(struct xp_mem *m, uint64_t addr, void *buf, size_t len)
{
	struct process_mem *pm = (struct process_mem *)m;
	struct iovec local = { buf, len }, remote = { (void *)(uintptr_t)addr, len };
	ssize_t n;

	if (len == 0)
		return 0;
	if (addr + len < addr)
		return -EFAULT;
	while (!pm->use_memfd) {
		int err;
		n = process_vm_readv(pm->via, &local, 1, &remote, 1, 0);
		if (n >= 0)
			return n;
		err = errno;
		if (err == ESRCH && switch_thread(pm))
			continue;
		if (err != ENOSYS && err != EPERM)
			return -err;
		pm->use_memfd = 1;
	}
	return read_memfd(pm, addr, buf, len);
}

#define BATCH 512 /* iovecs per process_vm_readv; IOV_MAX is 1024 */

static int process_read_many(struct xp_mem *m, struct xp_mem_req *req, size_t n)
{
	struct process_mem *pm = (struct process_mem *)m;
	struct iovec local[BATCH], remote[BATCH];
	size_t i = 0;

	while (i < n) {
		size_t k, cnt = 0;
		ssize_t got;

		if (pm->use_memfd || req[i].len == 0) {
			req[i].ok = xp_mem_read_full(m, req[i].addr, req[i].buf, req[i].len) == 0;
			i++;
			continue;
		}
		for (k = i; k < n && cnt < BATCH && req[k].len; k++, cnt++) {
			local[cnt] = (struct iovec){ req[k].buf, req[k].len };
			remote[cnt] = (struct iovec){ (void *)(uintptr_t)req[k].addr, req[k].len };
		}
		got = process_vm_readv(pm->via, local, cnt, remote, cnt, 0);
		if (got < 0 && errno == ESRCH) {
			if (switch_thread(pm))
				continue;
			return -ESRCH;
		}
		if (got < 0)
			got = 0; /* the first range failed: tried alone below */
		/* a transfer stops at the first range it cannot read */
		for (k = 0; k < cnt && (size_t)got >= req[i + k].len; k++) {
			req[i + k].ok = 1;
			got -= (ssize_t)req[i + k].len;
		}
		i += k;
		if (k < cnt) {
			req[i].ok = xp_mem_read_full(m, req[i].addr, req[i].buf, req[i].len) == 0;
			i++;
		}
	}
	return 0;
}

static void process_close(struct xp_mem *m)
{
	struct process_mem *pm = (struct process_mem *)m;

	if (pm->memfd >= 0)
		close(pm->memfd);
	free(pm);
}

struct xp_mem *xp_mem_process(pid_t pid)
{
	struct process_mem *pm = calloc(1, sizeof(*pm));

	if (!pm)
		return NULL;
	pm->m.read = process_read;
	pm->m.close = process_close;
	pm->m.read_many = process_read_many;
	pm->pid = pid;
	pm->via = pid;
	pm->memfd = -1;
	return &pm->m;
}

/* ---- our own address space ------------------------------------------ */

static ssize_t local_read(struct xp_mem *m, uint64_t addr, void *buf, size_t len)
{
	(void)m;
	/* process_vm_readv on ourselves checks the address instead of faulting */
	struct iovec local = { buf, len }, remote = { (void *)(uintptr_t)addr, len };
	ssize_t n = process_vm_readv(getpid(), &local, 1, &remote, 1, 0);
	return n < 0 ? -errno : n;
}

static void local_close(struct xp_mem *m)
{
	free(m);
}

struct xp_mem *xp_mem_local(void)
{
	struct xp_mem *m = calloc(1, sizeof(*m));

	if (!m)
		return NULL;
	m->read = local_read;
	m->close = local_close;
	return m;
}

/* ---- snapshot ------------------------------------------------------- */

struct snapshot_mem {
	struct xp_mem m;
	struct xp_region *r; /* sorted by addr, non-overlapping */
	size_t n;
	struct xp_mem *below;
};

static int region_cmp(const void *a, const void *b)
{
	const struct xp_region *x = a, *y = b;

	return x->addr < y->addr ? -1 : x->addr > y->addr;
}

static const struct xp_region *find_region(const struct snapshot_mem *s, uint64_t addr)
{
	size_t lo = 0, hi = s->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		const struct xp_region *r = &s->r[mid];
		if (addr < r->addr)
			hi = mid;
		else if (addr - r->addr >= r->len)
			lo = mid + 1;
		else
			return r;
	}
	return NULL;
}

static ssize_t snapshot_read(struct xp_mem *m, uint64_t addr, void *buf, size_t len)
{
	struct snapshot_mem *s = (struct snapshot_mem *)m;
	const struct xp_region *r = find_region(s, addr);

	if (r) {
		size_t off = addr - r->addr, n = r->len - off;
		if (n > len)
			n = len;
		memcpy(buf, r->data + off, n);
		return (ssize_t)n;
	}
	if (!s->below)
		return -EFAULT;
	return s->below->read(s->below, addr, buf, len);
}

static void snapshot_close(struct xp_mem *m)
{
	struct snapshot_mem *s = (struct snapshot_mem *)m;

	free(s->r);
	free(s);
}

struct xp_mem *xp_mem_snapshot(const struct xp_region *regions, size_t n, struct xp_mem *below)
{
	struct snapshot_mem *s = calloc(1, sizeof(*s));

	if (!s)
		return NULL;
	s->r = malloc((n ? n : 1) * sizeof(*s->r));
	if (!s->r) {
		free(s);
		return NULL;
	}
	memcpy(s->r, regions, n * sizeof(*regions));
	qsort(s->r, n, sizeof(*s->r), region_cmp);
	s->n = n;
	s->below = below;
	s->m.read = snapshot_read;
	s->m.close = snapshot_close;
	return &s->m;
}
