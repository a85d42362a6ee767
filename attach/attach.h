/* attach/ — everything that touches the live target: pid validation and
 * /proc parsing, ptrace stop / detach of a whole thread group, and reading
 * target memory behind a small interface (process, snapshot, local).
 *
 * Library code: returns 0 or -errno, never prints or exits.
 */
#ifndef XPROF_ATTACH_ATTACH_H
#define XPROF_ATTACH_ATTACH_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/user.h>

/* ---- /proc ---------------------------------------------------------- */

struct xp_map {
	uint64_t start, end, offset;
	uint64_t inode;
	unsigned int major, minor;
	char perms[5]; /* "r-xp" */
	char *path;    /* "" for anonymous; "[stack]", "[vdso]", "/usr/lib/... (deleted)" */
};

struct xp_maps {
	struct xp_map *v;
	size_t n;
};

int xp_maps_read(pid_t pid, struct xp_maps *out);
/* Binary search; NULL when addr is in no mapping. */
const struct xp_map *xp_maps_find(const struct xp_maps *maps, uint64_t addr);
void xp_maps_free(struct xp_maps *maps);

/* What xprof knows of a process before it touches it. */
struct xp_proc {
	pid_t pid;
	char comm[64];
	char state;          /* letter from /proc/PID/stat */
	uid_t uid;           /* real uid of the target */
	pid_t tracer;        /* TracerPid, 0 when none */
	int kernel_thread;
};

/* Why a pid cannot be profiled; filled by xp_proc_check. */
enum xp_proc_problem {
	XP_PROC_OK = 0,
	XP_PROC_NO_SUCH,
	XP_PROC_ZOMBIE,
	XP_PROC_KERNEL_THREAD,
	XP_PROC_SELF,
	XP_PROC_TRACED,      /* already traced by another process */
};

/* Reads /proc/PID; returns 0 and fills *p, or -errno.  *problem tells why
 * a readable process still cannot be profiled. */
int xp_proc_check(pid_t pid, struct xp_proc *p, enum xp_proc_problem *problem);

/* xp_proc_check pins the process it validated (a pidfd), so that later
 * steps can ask whether that very process still lives: a pid reused by a
 * new process after the target exited is never taken for the target.
 * 1 alive (or not pinned: no pidfd before Linux 5.3), 0 gone. */
int xp_proc_alive(pid_t pid);

/* A thread of pid's group that has not exited: pid itself while the
 * leader lives.  A leader that called pthread_exit is a zombie while its
 * threads run on, and /proc/PID has none of the process's memory left
 * (empty maps, no mem, no root, no map_files): read them through
 * /proc/TID of the thread returned.  pid when none is found. */
pid_t xp_live_thread(pid_t pid);

/* A thread's id in its own pid namespace (the last NSpid of
 * /proc/PID/task/TID/status): what it gets from gettid() and writes into a
 * mutex it locks.  1 when that namespace is not ours (a container: the ids
 * differ), 0 when it is (*ns_tid = tid), -errno. */
int xp_thread_ns_tid(pid_t pid, pid_t tid, pid_t *ns_tid);

/* Explains an EPERM from ptrace or perf_event_open on pid: which check
 * failed (ptrace_scope, missing CAP_SYS_PTRACE, another user's process, a
 * process that is not dumpable, capabilities the target holds and xprof
 * lacks) and the one command that fixes it.  Writes one line without
 * newline.  XP_EPERM_CREDENTIALS: the target's credentials refuse us,
 * which refuses perf sampling as well as ptrace. */
enum xp_eperm_cause { XP_EPERM_OTHER, XP_EPERM_CREDENTIALS };
enum xp_eperm_cause xp_explain_eperm(pid_t pid, char *buf, size_t len);

/* Thread state letters as words: running, sleeping, disk, stopped, zombie... */
const char *xp_state_word(char state);

/* Name of a system call number of this architecture, or NULL. */
const char *xp_syscall_name(long nr);

/* ---- memory --------------------------------------------------------- */

/* A memory reader: read returns bytes read (may be short at an unmapped
 * boundary) or -errno.  Backends: a live process, a snapshot of copied
 * regions over another reader, our own address space (unit tests). */
struct xp_mem_req;
struct xp_mem {
	ssize_t (*read)(struct xp_mem *m, uint64_t addr, void *buf, size_t len);
	void (*close)(struct xp_mem *m);
	/* optional: many reads at once (see xp_mem_read_many) */
	int (*read_many)(struct xp_mem *m, struct xp_mem_req *req, size_t n);
};

/* One range of a batch: ok is set when all len bytes were read. */
struct xp_mem_req {
	uint64_t addr;
	size_t len;
	void *buf;
	int ok;
};
/* Reads every range it can, in as few system calls as the reader allows
 * (a live process: process_vm_readv with many iovecs); a range that
 * cannot be read whole is left !ok.  0, or -errno when nothing could be
 * tried. */
int xp_mem_read_many(struct xp_mem *m, struct xp_mem_req *req, size_t n);

static inline ssize_t xp_mem_read(struct xp_mem *m, uint64_t addr, void *buf, size_t len)
{
	return m->read(m, addr, buf, len);
}
/* All or nothing: 0 or -errno (-EFAULT on a short read). */
int xp_mem_read_full(struct xp_mem *m, uint64_t addr, void *buf, size_t len);
static inline void xp_mem_close(struct xp_mem *m)
{
	if (m)
		m->close(m);
}

/* process_vm_readv, falling back to /proc/PID/mem when it is refused. */
struct xp_mem *xp_mem_process(pid_t pid);
struct xp_mem *xp_mem_local(void);

struct xp_region {
	uint64_t addr;
	size_t len;
	const uint8_t *data;
};
/* Reads from copied regions first, then from `below` (may be NULL).  The
 * regions are borrowed and must outlive the reader. */
struct xp_mem *xp_mem_snapshot(const struct xp_region *regions, size_t n, struct xp_mem *below);

/* ---- stopping a thread group ---------------------------------------- */

/* Caps on what one stop may copy. */
#define XP_STACK_COPY_MAX (512 * 1024)  /* bytes of live stack per thread */
/* Past this much stack copied in one stop, each further thread gets at most
 * XP_STACK_COPY_LOW (marked truncated): 100,000 threads with deep stacks
 * would otherwise ask for 50 GB. */
#define XP_STACK_COPY_TOTAL (1ULL << 30)
#define XP_STACK_COPY_LOW (32 * 1024)
/* A thread that has not stopped by 100 ms + 100 us per thread (stops take
 * about 20 us a thread) is skipped: it is in uninterruptible sleep. */
#define XP_STOP_TIMEOUT_BASE_MS 100
#define XP_STOP_TIMEOUT_PER_THREAD_US 100
#define XP_STOP_RUNNABLE_MAX_MS 1000 /* the deadline, longer for threads still runnable */
#define XP_MAX_THREADS 200000

struct xp_thread {
	pid_t tid;
	char name[64];
	char state;            /* from /proc before the stop: R S D T t Z ... */
	char wchan[64];        /* kernel function a sleeping thread waits in, or "" */
	int seized;            /* PTRACE_SEIZE succeeded */
	int stopped;           /* we got its ptrace stop: regs and stack valid */
	int pending_sig;       /* signal caught in signal-delivery-stop, re-sent at detach */
	int group_stopped;     /* it was in group-stop (SIGSTOP) when we came */
	int exited;            /* it exited while we worked */
	struct user_regs_struct regs;
	uint64_t stack_addr;   /* copy of [stack_addr, stack_addr + stack_len) */
	size_t stack_len;
	uint8_t *stack;
	int stack_truncated;   /* the live stack was longer than XP_STACK_COPY_MAX */
	/* A thread blocked in futex(2): the futex word and the words after it,
	 * read during the stop (a pthread mutex keeps its owner tid at +8). */
	int have_futex;
	uint64_t futex_addr;
	uint32_t futex_words[4];
};

struct xp_snapshot {
	pid_t pid;
	struct xp_thread *threads;
	size_t nthreads;
	struct xp_maps maps;           /* read during the stop */
	int64_t stopped_ns;            /* first interrupt to last detach: the pause */
	int64_t all_stopped_ns;        /* first interrupt to last thread stopped and copied */
	int64_t time_ns;               /* CLOCK_REALTIME at the stop */
	size_t not_stopped;            /* threads that never reached a stop */
	size_t exited;                 /* threads that exited during the stop (not kept) */
	int process_was_stopped;       /* it was SIGSTOPped when we came */
	struct xp_region *regions;     /* the stack copies, for xp_mem_snapshot */
	size_t nregions;
	int hold_err;                  /* what xp_snapshot_take_with's fn returned */
};

struct xp_snapshot;
/* Called while every thread is stopped; returns 0 or -errno (kept in
 * hold_err).  Threads that did not stop have stopped == 0. */
typedef int (*xp_while_stopped)(struct xp_snapshot *s, void *arg);

/* Stops every thread of pid together (PTRACE_SEIZE + PTRACE_INTERRUPT,
 * re-reading the task list until stable), copies registers and the live part
 * of each stack, and lets them all go.  A process found in group-stop is
 * left stopped.  Every wait is bounded; the signals that end or suspend
 * xprof are held until the release.  A thread exiting meanwhile is skipped
 * (counted in exited); a stop across an exec is tried again.  0, or -errno:
 * -EPERM (refused), -EBUSY (another tracer holds a thread), -ESRCH (the
 * process exited), -EAGAIN (it exec'd during every try). */
int xp_snapshot_take(pid_t pid, struct xp_snapshot *s);
/* The same, calling fn(s, arg) before letting the threads go: for reads
 * that must see the process at the same instant (a heap walk). */
int xp_snapshot_take_with(pid_t pid, struct xp_snapshot *s, xp_while_stopped fn, void *arg);
void xp_snapshot_free(struct xp_snapshot *s);

/* ---- perf_event_open sampling -------------------------------------- */

#define XP_PERF_STACK_DEFAULT 16384   /* bytes of user stack copied per sample */
/* per context switch: the target pays for each copy, thousands a second,
 * and a thread waiting in a system call is rarely deeper (perf's dwarf
 * default too) */
#define XP_PERF_STACK_SWITCH 8192
#define XP_PERF_RING_PAGES 1024       /* per-CPU ring buffer: 4 MiB of data */
#define XP_PERF_KERNEL_FRAMES 127     /* the kernel's own cap (perf_event_max_stack) */

/* One sample, valid only during the callback. */
struct xp_perf_sample {
	pid_t pid, tid;
	uint64_t time;                  /* CLOCK_MONOTONIC ns (perf clock) */
	int have_regs;                  /* 0: no user context (a kernel-only sample) */
	struct user_regs_struct regs;   /* user registers at the sample */
	uint64_t stack_addr;            /* the copy starts at the user SP */
	const uint8_t *stack;
	size_t stack_len;
	const uint64_t *kernel_ips;     /* kernel call chain, innermost first */
	size_t nkernel;
};

struct xp_perf_opts {
	pid_t pid;             /* the thread group to sample (or the child to be exec'd) */
	int freq;              /* samples per second per thread on CPU */
	size_t stack_bytes;    /* user stack per sample, a multiple of 8 below 65528 */
	int kernel;            /* try to include kernel call chains */
	int enable_on_exec;    /* launch mode: start at the child's exec */
	/* off-CPU instead of cpu-clock: a sample (user registers and stack,
	 * kernel chain) each time a thread leaves the CPU, and a switch record
	 * (xp_perf_switch) each time it leaves and comes back.  freq unused.
	 * Samples and switches then reach the handlers in time order. */
	int switches;
};

struct xp_perf;

/* Opens a cpu-clock sampling event for every thread of the process on every
 * CPU (inherited by threads they create), sharing one ring buffer per CPU.
 * -EACCES/-EPERM when perf_event_open is refused, -errno otherwise. */
int xp_perf_open(const struct xp_perf_opts *o, struct xp_perf **out);
int xp_perf_kernel(const struct xp_perf *p); /* kernel chains were granted */
size_t xp_perf_nthreads(const struct xp_perf *p);

/* An executable mapping the process made while sampled (PERF_RECORD_MMAP2):
 * libraries loaded after the start, or all of them for a launched command. */
struct xp_perf_mapping {
	pid_t pid;
	uint64_t time;                  /* CLOCK_MONOTONIC ns, as samples */
	uint64_t addr, len, pgoff, inode;
	uint32_t major, minor;          /* the file's device, as in /proc/PID/maps */
	uint32_t prot;
	const char *filename;
};

/* The process exec'd a new program (PERF_RECORD_COMM with the exec flag):
 * its old modules are gone; the new program's mappings follow. */
struct xp_perf_exec {
	pid_t pid, tid;
	uint64_t time;
	char comm[16];
};

/* A thread left the CPU (out) or came back (PERF_RECORD_SWITCH). */
struct xp_perf_switch {
	pid_t pid, tid;
	uint64_t time;
	int out;
	int preempted;                  /* out while still runnable: not a wait of its own */
};

struct xp_perf_handlers {
	void (*sample)(const struct xp_perf_sample *s, void *arg);
	void (*switched)(const struct xp_perf_switch *w, void *arg); /* opts.switches */
	void (*mapping)(const struct xp_perf_mapping *m, void *arg);
	void (*exec)(const struct xp_perf_exec *e, void *arg);
};

/* Waits up to timeout_ms for data, then hands every record to h: first the
 * mappings and execs of every CPU's ring in time order, then the samples.
 * Returns the number of samples read, or -errno.  Also picks up threads that
 * appeared without inheriting an event (created by a thread we had not yet
 * opened). */
int xp_perf_read(struct xp_perf *p, int timeout_ms, const struct xp_perf_handlers *h, void *arg);
/* Samples the kernel reported lost (ring buffer full). */
uint64_t xp_perf_lost(const struct xp_perf *p);
void xp_perf_close(struct xp_perf *p);

/* Detach every thread xprof holds, from a signal handler: async-signal-safe.
 * Installed for SIGINT, SIGTERM, SIGHUP and SIGPIPE by xp_attach_signals. */
void xp_attach_signals(void);


/* ---- uprobes: breakpoints through perf_event_open (attach/uprobe.c) ------- */

/* A dynamic PMU's type from sysfs ("uprobe", "kprobe"), -ENOENT when the
 * kernel has none, or -errno.  attach/pmu.c */
int xp_pmu_type(const char *pmu);
/* The bit of attr.config a PMU's format file names ("retprobe" is
 * "config:0"), or -errno. */
int xp_pmu_config_bit(const char *pmu, const char *format);

struct xp_uprobe_spec {
	const char *path;      /* the ELF file, as xprof opens it (/proc/PID/root/...) */
	uint64_t offset;       /* file offset of the function */
	int retprobe;          /* fire at its return instead of its entry */
	size_t stack_bytes;    /* user stack copied per hit, a multiple of 8; 0 none */
};

/* One hit, valid only during the callback. */
struct xp_uprobe_hit {
	size_t probe;                   /* index of its spec */
	pid_t tid;
	uint64_t time;                  /* CLOCK_MONOTONIC ns */
	int have_regs;
	struct user_regs_struct regs;   /* at the entry; at a return, the caller's pc */
	uint64_t stack_addr;
	const uint8_t *stack;
	size_t stack_len;
	int lost_before;                /* the thread's hits just before this one were lost */
};
typedef void (*xp_uprobe_fn)(const struct xp_uprobe_hit *h, void *arg);

struct xp_uprobes;
/* Puts every probe on every thread of pid (one event per thread and
 * probe; threads created later are added within 100 ms).  The breakpoints
 * go when the events close, xprof killed or not.  -EACCES/-EPERM: the
 * uprobe PMU needs CAP_PERFMON (or root); -EOPNOTSUPP: no uprobe PMU;
 * -ESRCH: no such process; -errno. */
int xp_uprobes_open(pid_t pid, const struct xp_uprobe_spec *v, size_t n, struct xp_uprobes **out);
/* Waits up to timeout_ms for hits, hands each thread's hits to fn in
 * order (threads one after the other: sort by time across threads), and
 * looks for new threads.  The number of hits, or -errno. */
int xp_uprobes_read(struct xp_uprobes *u, int timeout_ms, xp_uprobe_fn fn, void *arg);
uint64_t xp_uprobes_lost(const struct xp_uprobes *u);
/* Threads probed since the start, those that exited since too. */
size_t xp_uprobes_nthreads(const struct xp_uprobes *u);
/* Stops the hits being recorded (at once; a hit still traps until the
 * close). */
void xp_uprobes_disable(struct xp_uprobes *u);
/* Closes every event: the kernel takes the breakpoints out.  Slow: the
 * kernel destroys uprobe events one at a time, each after RCU grace
 * periods (40-60 ms each, whatever the number of threads closing; a
 * return probe's longer while the target's threads are inside the
 * function).  The events go by address, the most hit first, return
 * probes before entry probes: the slow closes are the fewest. */
void xp_uprobes_close(struct xp_uprobes *u);

#endif
