/* Private to attach/: what perf.c (per-CPU rings of sampling events) and
 * uprobe.c (per-thread rings of uprobe events) share: mapping and walking
 * a perf_event ring buffer, the fields of a sample, the task list scan. */
#ifndef XPROF_ATTACH_PERF_INTERNAL_H
#define XPROF_ATTACH_PERF_INTERNAL_H

#include <linux/perf_event.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/user.h>

#define XP_RECORD_MAX 65536 /* a record's size field is 16 bits: a wrap buffer's size */

int xp_perf_event_open(struct perf_event_attr *attr, pid_t pid, int cpu, int group, unsigned long flags);

/* One ring: the metadata page and 2^n data pages, mapped from the event
 * that owns them (fd). */
struct xp_ring {
	int fd;
	struct perf_event_mmap_page *meta;
	uint8_t *data;
	size_t size;                      /* data area, a power of two */
};

/* Maps the ring of event fd with pages data pages: 0 or -errno. */
int xp_ring_map(struct xp_ring *r, int fd, size_t pages);
/* Unmaps it, when mapped; fd is left open. */
void xp_ring_unmap(struct xp_ring *r);
/* Where the kernel's writing has got to (acquire: the records before it
 * are readable), and where our reading has. */
uint64_t xp_ring_head(const struct xp_ring *r);
uint64_t xp_ring_tail(const struct xp_ring *r);
/* Gives the records before pos back to the kernel (release). */
void xp_ring_release(struct xp_ring *r, uint64_t pos);
/* The header of the record at pos (whole, also when it wraps): 1, or 0
 * at head or at a malformed header (smaller than itself, or past head):
 * the rest of the batch is then dropped. */
int xp_ring_header(const struct xp_ring *r, uint64_t pos, uint64_t head, struct perf_event_header *h);
/* The record of size bytes at pos, in place or, when it wraps, made whole
 * in wrapbuf (XP_RECORD_MAX bytes). */
const uint8_t *xp_ring_record(const struct xp_ring *r, uint64_t pos, size_t size, uint8_t *wrapbuf);

/* The fields of one record, taken in order, bounded by its end. */
struct xp_cursor {
	const uint8_t *p, *end;
};
/* The record's fields after its header. */
void xp_cursor_init(struct xp_cursor *c, const uint8_t *rec, size_t len);
/* n bytes into out: 0, or -1 when fewer are left. */
int xp_cursor_take(struct xp_cursor *c, void *out, size_t n);

/* The user part that closes a sample of PERF_SAMPLE_REGS_USER (mask
 * XP_PERF_REGS_MASK) | PERF_SAMPLE_STACK_USER: registers, when there is a
 * user context, and the copy of the stack from the user SP.  0, or -1 when
 * the record is shorter than its fields say. */
struct xp_user_part {
	int have_regs;
	struct user_regs_struct regs;
	uint64_t stack_addr;
	const uint8_t *stack;             /* into the record */
	size_t stack_len;
};
int xp_take_user_part(struct xp_cursor *c, struct xp_user_part *u);

/* RLIMIT_NOFILE up to its hard limit: one descriptor per event. */
void xp_raise_fd_limit(void);

/* Calls fn(tid, arg) for every thread of pid: one pass over
 * /proc/PID/task, or up to rounds passes until one in which fn returns 1
 * for none (fn: 1 a thread added, 0 not, -errno to stop with). */
int xp_scan_tasks(pid_t pid, int rounds, int (*fn)(pid_t tid, void *arg), void *arg);

#endif
