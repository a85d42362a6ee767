/* pyrt/ — a running CPython's interpreter, read from outside: its thread
 * states, the Python frames each runs and which thread holds the GIL, so
 * that native stacks show the Python functions in place of the
 * interpreter loop (each _PyEval_EvalFrameDefault activation), as py-spy
 * --native does.
 *
 * The interpreter is found by its own symbols (_PyRuntime, Py_Version in
 * .dynsym); structure layouts come from its DWARF (Debian's python3.11-dbg)
 * or, without it, from the checked layouts of the versions listed in
 * xp_py_known_versions.  Everything read from the target is hostile: every
 * pointer is checked, every walk bounded, every read may fail.  Library
 * code: 0 or -errno, no printing.
 */
#ifndef XPROF_PYRT_PYRT_H
#define XPROF_PYRT_PYRT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "attach/attach.h"
#include "symbolize/symbolize.h"
#include "unwind/unwind.h"

#define XP_PY_MAX_THREADS 100000     /* thread states walked per interpreter */
#define XP_PY_MAX_INTERPRETERS 256
#define XP_PY_MAX_FRAMES 1024        /* Python frames walked per stack */
#define XP_PY_MAX_STRING 1024        /* bytes of a name or file name */
#define XP_PY_MAX_LINETABLE 65536    /* bytes of a code object's location table */

struct xp_py;

/* Which CPython versions are read, and how ("3.11"). */
extern const char *const xp_py_known_versions;

/* Opens the CPython interpreter of the process space maps (the program or
 * libpython).  live reads the process now.  1 found (*out set); 0 not
 * Python; -ENOTSUP a Python xprof cannot read (why says which, one line);
 * -errno. */
int xp_py_open(struct xp_space *space, struct xp_mem *live, struct xp_py **out, char *why, size_t whylen);
/* The same with the known 3.11 layout and the interpreter's addresses
 * given: for tests and fuzzing, over fake interpreters in memory. */
int xp_py_open_known(struct xp_space *space, struct xp_mem *live, uint64_t runtime, uint64_t code_type,
		     struct xp_py **out);
/* The same with 3.13's layout from the _Py_DebugOffsets at runtime, as
 * CPython hexversion (0x030d00f0) keeps them: 0, or -ENOTSUP with why
 * (offsets xprof does not trust, an unknown version). */
int xp_py_open_debug_offsets(struct xp_space *space, struct xp_mem *live, uint64_t runtime, uint64_t code_type,
			     uint32_t hexversion, struct xp_py **out, char *why, size_t whylen);
void xp_py_close(struct xp_py *py);
/* "3.11.2" */
const char *xp_py_version(const struct xp_py *py);
/* "DWARF", "known 3.11 layout", "known 3.12 layout" or "_Py_DebugOffsets" */
const char *xp_py_layout_source(const struct xp_py *py);
/* What a merge checks the innermost Python frame of a sample by: "the
 * sampled next_instr", or without it (no DWARF, or 3.13's, which leaves it
 * out) "the frame the sampled registers hold" (3.13), "the _PyCFrame in
 * the stack copy" (3.11, 3.12), "the entry frames on the stack" (3.13). */
const char *xp_py_innermost_check(const struct xp_py *py);

/* One thread state of the interpreter(s). */
struct xp_py_thread {
	uint64_t tstate;
	pid_t tid;            /* the thread's id as xprof knows it (native_thread_id, which is
				 the id in the target's own pid namespace, rewritten; 0: none) */
	uint64_t cframe;      /* tstate->cframe: the innermost C activation's */
	int holds_gil;
};

struct xp_py_threads {
	struct xp_py_thread *v;
	size_t n;
	int gil_locked;       /* the GIL is held (by the thread marked, if a known one) */
	int truncated;        /* a walk hit a cap or a bad pointer */
};

/* Reads every thread state now (racy against a running target: bounded,
 * each pointer checked).  0 or -errno. */
int xp_py_threads_read(struct xp_py *py, struct xp_py_threads *out);
void xp_py_threads_free(struct xp_py_threads *t);
/* The thread state of tid, or NULL. */
const struct xp_py_thread *xp_py_thread_of(const struct xp_py_threads *t, pid_t tid);

/* Reads t->cframe again now (a thread's innermost C activation moves as
 * it calls and returns).  0 or -errno. */
int xp_py_thread_update(struct xp_py *py, struct xp_py_thread *t);

/* The Python frames of a thread whose native stack is unknown (it did not
 * stop), read now through its C frames (tstate->cframe and on): pseudo
 * pcs, innermost first, at most max.  Returns how many. */
size_t xp_py_thread_stack(struct xp_py *py, const struct xp_py_thread *t, uint64_t *pc, size_t max);

/* 1 when st holds an activation of the interpreter loop. */
int xp_py_in_eval(struct xp_py *py, const struct xp_stack *st);

/* What a merge found. */
struct xp_py_merge {
	size_t activations;   /* _PyEval_EvalFrameDefault frames in the native stack */
	size_t replaced;      /* of those, replaced by their Python frames */
	size_t pyframes;      /* Python frames put in */
	int consistent;       /* every activation's frames were read as of the stack's instant */
	int innermost;        /* the innermost Python frame against the sampled next_instr:
				 XP_PY_CHECKED, XP_PY_CORRECTED or 0 (not known) */
};
#define XP_PY_CHECKED 1   /* the instruction the registers name is in the frame's code */
#define XP_PY_CORRECTED 2 /* it was not: the frame shows the code it names */

/* Replaces each _PyEval_EvalFrameDefault activation of st (unwound from
 * stackmem, which reads the stack copied at the instant the stack was
 * taken) by the Python frames it runs, leaf first, as pseudo pcs
 * (xp_synthetic_pc).  The innermost activation's frame pointer is read
 * from the copy (its _PyCFrame lives on the C stack); the frames
 * themselves are read from the live process, so a stack copied some time
 * ago may meet frames that have moved on: m->consistent says whether the
 * innermost frame pointer is still the same now.  With fregs (each
 * frame's registers, from xp_unwind_regs) and the interpreter's DWARF, the
 * innermost frame is checked against the instruction the registers held
 * then, and shows the code that instruction is in when the frame has
 * moved on (m->innermost).  An activation whose frames cannot be read
 * keeps its native frame.  0 or -errno. */
int xp_py_merge_stack(struct xp_py *py, const struct xp_py_thread *t, struct xp_mem *stackmem,
		      struct xp_stack *st, const struct xp_frame_regs *fregs, struct xp_py_merge *m);

#endif
