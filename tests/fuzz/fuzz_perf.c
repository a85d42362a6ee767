/* Fuzzes the perf ring-buffer reader (attach/perf.c: walk_ring,
 * parse_sample, parse_mmap2, parse_comm, the events' ordering) on records
 * laid out as the kernel writes them for fill_attr's attributes, in a ring
 * of the real size, wrapping at its end.  perf.c is compiled into this file to reach its static functions
 * (the archive's perf.o then stays out of the link).
 *
 * Input: u8 flags (bit 0: samples carry kernel call chains; bit 1: switch
 * mode, samples and PERF_RECORD_SWITCH read in time order by read_sorted),
 * u32 tail (the ring position the records start at: near 4 MiB they
 * wrap), the records.
 */
#include "attach/perf.c"

#include "tests/fuzz/fuzz.h"

#define TARGET_PID 4242

static struct xp_perf perf;
static struct xp_ring ring;
static struct perf_event_mmap_page meta;
static volatile uint64_t sink;

/* Touches every byte a sample hands out, so the sanitizer sees any that
 * lie outside the ring or the wrap buffer. */
static void on_sample(const struct xp_perf_sample *s, void *arg)
{
	uint64_t sum = (uint64_t)s->pid + (uint64_t)s->tid + s->time + s->regs.rip + s->regs.rsp;
	size_t i;

	if (s->nkernel > XP_PERF_KERNEL_FRAMES || (s->stack_len && !s->stack))
		abort();
	for (i = 0; i < s->stack_len; i++)
		sum += s->stack[i];
	for (i = 0; i < s->nkernel; i++)
		sum += s->kernel_ips[i];
	sink += sum;
	(*(int *)arg)++;
}

static void on_mapping(const struct xp_perf_mapping *m, void *arg)
{
	(void)arg;
	sink += m->time + m->addr + m->len + m->pgoff + m->inode + m->prot + strlen(m->filename);
}

static void on_exec(const struct xp_perf_exec *e, void *arg)
{
	(void)arg;
	sink += (uint64_t)e->pid + (uint64_t)e->tid + e->time + strlen(e->comm);
}

static void on_switch(const struct xp_perf_switch *w, void *arg)
{
	(void)arg;
	sink += (uint64_t)w->pid + (uint64_t)w->tid + w->time + (uint64_t)w->out + (uint64_t)w->preempted;
}

static const struct xp_perf_handlers handlers = {
	.sample = on_sample,
	.mapping = on_mapping,
	.exec = on_exec,
	.switched = on_switch,
};

static uint64_t heads[1];

/* ---- seeds ---------------------------------------------------------------- */

struct buf {
	uint8_t b[16384];
	size_t n;
};

static void put(struct buf *b, const void *p, size_t len)
{
	memcpy(b->b + b->n, p, len);
	b->n += len;
}

static void put64(struct buf *b, uint64_t v)
{
	put(b, &v, 8);
}

static void put_header(struct buf *b, uint32_t type, size_t size)
{
	struct perf_event_header h = { .type = type, .misc = 0, .size = (uint16_t)size };

	put(b, &h, sizeof(h));
}

static void seed_sample(struct buf *b, int kernel, uint32_t pid, size_t nstack, int regs)
{
	size_t size = 8 + 8 + 8 + 8 + (kernel ? 8 + 5 * 8 : 0) + 8 + (regs ? 8 * XP_PERF_NREGS : 0) + 8 +
		      (nstack ? nstack + 8 : 0);
	uint32_t pidtid[2] = { pid, pid + 1 };
	size_t i;

	put_header(b, PERF_RECORD_SAMPLE, size);
	put64(b, 0x555555555123);
	put(b, pidtid, 8);
	put64(b, 123456789);
	if (kernel) {
		put64(b, 5);
		put64(b, PERF_CONTEXT_KERNEL);
		put64(b, 0xffffffff81000010);
		put64(b, 0xffffffff81000020);
		put64(b, PERF_CONTEXT_USER);
		put64(b, 0xffffffff81000030);
	}
	put64(b, regs ? PERF_SAMPLE_REGS_ABI_64 : PERF_SAMPLE_REGS_ABI_NONE);
	for (i = 0; regs && i < XP_PERF_NREGS; i++)
		put64(b, i == 7 ? 0x7ffc0000 : i == 8 ? 0x555555555123 : i);
	put64(b, nstack);
	for (i = 0; i < nstack; i++)
		b->b[b->n++] = (uint8_t)i;
	if (nstack)
		put64(b, nstack / 2);
}

/* sample_id_all with TID|TIME: what ends every record but a sample */
static void put_sample_id(struct buf *b, uint32_t pid, uint64_t time)
{
	uint32_t pidtid[2] = { pid, pid };

	put(b, pidtid, 8);
	put64(b, time);
}

static void seed_mmap2(struct buf *b, uint32_t pid, const char *file, uint64_t time)
{
	size_t flen = (strlen(file) + 8) & ~(size_t)7;
	uint32_t pidtid[2] = { pid, pid }, prot = 5, flags = 2;
	uint64_t ids[3] = { 0x0000000800000001ULL, 1234, 0 };

	put_header(b, PERF_RECORD_MMAP2, 8 + 8 + 24 + 24 + 8 + flen + 16);
	put(b, pidtid, 8);
	put64(b, 0x7f0000000000);
	put64(b, 0x1000);
	put64(b, 0x2000);
	put(b, ids, sizeof(ids));
	put(b, &prot, 4);
	put(b, &flags, 4);
	memset(b->b + b->n, 0, flen);
	memcpy(b->b + b->n, file, strlen(file));
	b->n += flen;
	put_sample_id(b, pid, time);
}

static void seed_exec(struct buf *b, uint32_t pid, const char *comm, uint64_t time)
{
	size_t clen = (strlen(comm) + 8) & ~(size_t)7;
	uint32_t pidtid[2] = { pid, pid };
	struct perf_event_header h = { PERF_RECORD_COMM, PERF_RECORD_MISC_COMM_EXEC,
				       (uint16_t)(8 + 8 + clen + 16) };

	put(b, &h, sizeof(h));
	put(b, pidtid, 8);
	memset(b->b + b->n, 0, clen);
	memcpy(b->b + b->n, comm, strlen(comm));
	b->n += clen;
	put_sample_id(b, pid, time);
}

static void seed_lost(struct buf *b)
{
	put_header(b, PERF_RECORD_LOST, 8 + 16 + 16);
	put64(b, 1);
	put64(b, 17);
	put_sample_id(b, TARGET_PID, 5);
}

static void write_seed(const char *dir, const char *name, uint8_t flags, uint32_t tail, const struct buf *b)
{
	static uint8_t out[sizeof(b->b) + 5];

	out[0] = flags;
	memcpy(out + 1, &tail, 4);
	memcpy(out + 5, b->b, b->n);
	fuzz_write_seed(dir, name, out, b->n + 5);
}

static void write_seeds(const char *dir)
{
	uint32_t end = (uint32_t)ring.size;
	struct buf b;

	b.n = 0;
	seed_exec(&b, TARGET_PID, "cpuwork", 10);
	seed_mmap2(&b, TARGET_PID, "/usr/lib/x86_64-linux-gnu/libc.so.6", 30);
	seed_mmap2(&b, TARGET_PID, "/usr/bin/cpuwork", 20);
	seed_sample(&b, 0, TARGET_PID, 512, 1);
	seed_lost(&b);
	seed_sample(&b, 0, TARGET_PID + 7, 64, 1); /* another process */
	seed_sample(&b, 0, TARGET_PID, 0, 0);      /* kernel-only: no registers, no stack */
	write_seed(dir, "user", 0, 0, &b);

	b.n = 0;
	seed_sample(&b, 1, TARGET_PID, 256, 1);
	seed_mmap2(&b, TARGET_PID, "/tmp/a.out", 1);
	seed_sample(&b, 1, TARGET_PID, 0, 0);
	write_seed(dir, "kernel", 1, 4096, &b);

	/* the ring's end inside a header, inside a sample, inside a file name */
	b.n = 0;
	seed_sample(&b, 0, TARGET_PID, 1024, 1);
	seed_mmap2(&b, TARGET_PID, "/usr/lib/x86_64-linux-gnu/libstdc++.so.6.0.30", 2);
	seed_exec(&b, TARGET_PID, "a-name-of-15-ch", 3);
	seed_sample(&b, 1, TARGET_PID, 128, 1);
	write_seed(dir, "wrap-header", 0, end - 4, &b);
	write_seed(dir, "wrap-sample", 0, end - 100, &b);
	write_seed(dir, "wrap-mmap2", 0, end - 1200, &b);
}

/* ---- the harness ---------------------------------------------------------- */

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	const char *seeds = fuzz_seed_dir();

	(void)argc;
	(void)argv;
	ring.size = XP_PERF_RING_PAGES * (size_t)getpagesize();
	ring.data = malloc(ring.size);
	ring.meta = &meta;
	ring.fd = -1;
	perf.o.pid = TARGET_PID;
	perf.ncpus = 1;
	perf.rings = &ring;
	perf.wrapbuf = malloc(XP_RECORD_MAX);
	perf.heads = heads;
	if (!ring.data || !perf.wrapbuf)
		abort();
	if (seeds) {
		write_seeds(seeds);
		exit(0);
	}
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fuzz_in in = { data, size };
	uint64_t tail, head;
	size_t off, first;
	int n, seen = 0;

	uint8_t flags = fuzz_u8(&in);

	perf.kernel = flags & 1;
	perf.o.switches = (flags >> 1) & 1;
	tail = fuzz_u32(&in);
	if (in.n > ring.size)
		return 0;
	/* the records, from tail on, wrapping at the ring's end */
	off = (size_t)(tail & (ring.size - 1));
	first = in.n < ring.size - off ? in.n : ring.size - off;
	memcpy(ring.data + off, in.p, first);
	memcpy(ring.data, in.p + first, in.n - first);
	head = tail + in.n;
	meta.data_tail = tail;
	perf.lost = 0;
	if (perf.o.switches) {
		/* as xp_perf_read does in switch mode: every ring's samples and
		 * switches, sorted by time */
		heads[0] = head;
		n = read_sorted(&perf, &handlers, &seen);
		if (n < 0 || n != seen)
			abort();
		return 0;
	}
	/* as xp_perf_read does: the mappings and execs first, then the samples */
	walk_ring(&perf, &ring, head, 0, &handlers, &seen);
	dispatch_events(&perf, &handlers, &seen);
	if (seen != 0)
		abort();
	n = walk_ring(&perf, &ring, head, 1, &handlers, &seen);
	if (n != seen)
		abort();
	return 0;
}
