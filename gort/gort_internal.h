/* Private to gort/. */
#ifndef XPROF_GORT_INTERNAL_H
#define XPROF_GORT_INTERNAL_H

#include <stdint.h>

#include "gort/gort.h"
#include "symbolize/gopclntab.h"

/* Offsets (bytes) of what xprof reads in the runtime's structures; -1
 * when the binary has no such field. */
struct xp_go_layout {
	int64_t g_size, g_stack_lo, g_stack_hi, g_m, g_sched_sp, g_sched_pc, g_sched_bp;
	int64_t g_syscallsp, g_syscallpc, g_status, g_goid, g_waitsince, g_waitreason;
	int64_t g_lockedm, g_gopc, g_startpc, g_labels;
	int64_t m_procid;
	int64_t b_size, b_allnext, b_typ, b_nstk;           /* runtime.bucket */
	int64_t mr_active, mr_future, mrc_size;              /* memRecord, memRecordCycle */
	int64_t mrc_allocs, mrc_frees, mrc_alloc_bytes, mrc_free_bytes;
	int64_t ticks_val;                                   /* runtime.ticksType */
};

#define XP_GO_NWAIT 64

struct xp_go {
	struct xp_space *space;
	const struct xp_gopclntab *t;
	uint64_t bias;                  /* run-time address = file address + bias */
	char version[48];
	struct xp_go_layout l;
	const char *layout_source;
	/* runtime variables (run-time addresses), 0 when unknown */
	uint64_t allglen, allgptr, allgs_slice;
	uint64_t mbuckets, mprofcycle, memprofilerate, fingrunning;
	uint64_t bbuckets, xbuckets, blockprofilerate, mutexprofilerate, ticks;
	int stripped;                   /* no symbol table */
	char build_id[2 * 64 + 1];      /* GNU build id (hex), "" when none */
	int wrapper_id;                 /* funcID of wrappers, -1 unknown */
	/* waitReasonStrings and gStatusStrings, from the file */
	char *waitreason[XP_GO_NWAIT];
	size_t nwaitreason;
};

/* The function at pc (run-time address): 0 or -1. */
int xp_go_func(struct xp_go *go, uint64_t pc, struct xp_gofunc *f);

#endif
