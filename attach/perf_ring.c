/* perf_event ring buffers and sample fields, for perf.c's per-CPU rings
 * and uprobe.c's per-thread ones: one reader of the kernel's layout.
 *
 * A ring is 1 + 2^n pages; the kernel writes records up to data_head,
 * we read from data_tail and move it on when done.  A record may wrap
 * around the end of the data area.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "attach/perf_internal.h"
#include "attach/perf_x86_64.h"

int xp_perf_event_open(struct perf_event_attr *attr, pid_t pid, int cpu, int group, unsigned long flags)
{
	return (int)syscall(SYS_perf_event_open, attr, pid, cpu, group, flags);
}

int xp_ring_map(struct xp_ring *r, int fd, size_t pages)
{
	size_t page = (size_t)getpagesize();
	void *m = mmap(NULL, (1 + pages) * page, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);

	if (m == MAP_FAILED)
		return -errno;
	r->fd = fd;
	r->meta = m;
	r->data = (uint8_t *)m + page;
	r->size = pages * page;
	return 0;
}

void xp_ring_unmap(struct xp_ring *r)
{
	if (r->meta)
		munmap(r->meta, (size_t)getpagesize() + r->size);
	r->meta = NULL;
	r->data = NULL;
}

uint64_t xp_ring_head(const struct xp_ring *r)
{
	return __atomic_load_n(&r->meta->data_head, __ATOMIC_ACQUIRE);
}

uint64_t xp_ring_tail(const struct xp_ring *r)
{
	return r->meta->data_tail;
}

void xp_ring_release(struct xp_ring *r, uint64_t pos)
{
	__atomic_store_n(&r->meta->data_tail, pos, __ATOMIC_RELEASE);
}

int xp_ring_header(const struct xp_ring *r, uint64_t pos, uint64_t head, struct perf_event_header *h)
{
	size_t off = (size_t)(pos & (r->size - 1));

	if (pos >= head)
		return 0;
	if (off + sizeof(*h) <= r->size) {
		memcpy(h, r->data + off, sizeof(*h));
	} else {
		size_t first = r->size - off;
		memcpy(h, r->data + off, first);
		memcpy((uint8_t *)h + first, r->data, sizeof(*h) - first);
	}
	return h->size >= sizeof(*h) && h->size <= head - pos;
}

const uint8_t *xp_ring_record(const struct xp_ring *r, uint64_t pos, size_t size, uint8_t *wrapbuf)
{
	size_t off = (size_t)(pos & (r->size - 1));
	size_t first = r->size - off;

	if (off + size <= r->size)
		return r->data + off;
	memcpy(wrapbuf, r->data + off, first);
	memcpy(wrapbuf + first, r->data, size - first);
	return wrapbuf;
}

void xp_cursor_init(struct xp_cursor *c, const uint8_t *rec, size_t len)
{
	c->p = rec + sizeof(struct perf_event_header);
	c->end = rec + len;
}

int xp_cursor_take(struct xp_cursor *c, void *out, size_t n)
{
	if ((size_t)(c->end - c->p) < n)
		return -1;
	memcpy(out, c->p, n);
	c->p += n;
	return 0;
}

int xp_take_user_part(struct xp_cursor *c, struct xp_user_part *u)
{
	uint64_t abi, size, dyn, regs[XP_PERF_NREGS];

	memset(u, 0, sizeof(*u));
	if (xp_cursor_take(c, &abi, 8))
		return -1;
	if (abi != PERF_SAMPLE_REGS_ABI_NONE) {
		if (xp_cursor_take(c, regs, sizeof(regs)))
			return -1;
		xp_perf_regs_to_user(regs, &u->regs);
		u->have_regs = 1;
	}
	if (xp_cursor_take(c, &size, 8))
		return -1;
	if (size > 0) {
		const uint8_t *data = c->p;
		/* the copy, then the size of it that is stack (dyn_size) */
		if (size > (size_t)(c->end - c->p) || (c->p += size, xp_cursor_take(c, &dyn, 8)))
			return -1;
		u->stack = data;
		u->stack_len = dyn < size ? (size_t)dyn : (size_t)size;
		u->stack_addr = u->regs.rsp;
	}
	return 0;
}

void xp_raise_fd_limit(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
}

int xp_scan_tasks(pid_t pid, int rounds, int (*fn)(pid_t tid, void *arg), void *arg)
{
	char path[64];
	int added, err;

	snprintf(path, sizeof(path), "/proc/%d/task", (int)pid);
	while (rounds-- > 0) {
		DIR *d = opendir(path);
		struct dirent *e;

		if (!d)
			return -errno;
		added = 0;
		while ((e = readdir(d)) != NULL) {
			char *end;
			long tid = strtol(e->d_name, &end, 10);
			if (*end || tid <= 0)
				continue;
			if ((err = fn((pid_t)tid, arg)) < 0) {
				closedir(d);
				return err;
			}
			added += err > 0;
		}
		closedir(d);
		if (!added)
			break;
	}
	return 0;
}
