/* Flame graph outputs for sampled stacks: collapsed ("folded") stacks for
 * flamegraph.pl, inferno and speedscope, and a self-contained interactive
 * SVG flame graph (search, zoom) for people who want a picture first. */
#ifndef XPROF_CMD_FLAME_H
#define XPROF_CMD_FLAME_H

#include <stddef.h>
#include <stdint.h>

/* One distinct stack and how many samples it had. */
struct xp_flame_stack {
	const char *const *frames; /* function names, ROOT FIRST (the reverse of pprof) */
	size_t nframes;
	uint64_t value;
};

/* Writes "root;caller;leaf 42\n" per stack, atomically.  Names are made
 * safe for the format: ';' becomes ':' and control characters (newlines,
 * tabs) spaces; spaces inside names (C++) stay, since consumers split a
 * line at its last space.  0 or -errno. */
int xp_folded_write(const char *path, const struct xp_flame_stack *v, size_t n);

/* Writes an interactive SVG flame graph, atomically.  title: shown on top;
 * unit: what a value counts ("samples").  0 or -errno. */
int xp_flamegraph_write(const char *path, const char *title, const char *unit,
			const struct xp_flame_stack *v, size_t n);

#endif
