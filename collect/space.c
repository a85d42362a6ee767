/* collect/space.c: what every collector shares: a target's address space
 * kept between collections (maps, modules, unwinder), and the translation
 * of symbolized stacks into pprof mappings, functions and locations. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "collect/collect.h"

int64_t xp_monotonic_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* ---- the kept address space ------------------------------------------------ */

static int build(struct xp_target_space *ts)
{
	int err;

	xp_unwinder_free(ts->unwinder);
	ts->unwinder = NULL;
	xp_space_close(ts->space);
	ts->space = NULL;
	err = xp_space_open(ts->pid, &ts->maps, ts->live, ts->flags, &ts->space);
	if (err == 0)
		err = xp_unwinder_new(ts->space, &ts->unwinder);
	if (err == 0)
		ts->builds++;
	return err;
}

int xp_target_space_open(pid_t pid, int flags, struct xp_target_space *ts)
{
	int err;

	memset(ts, 0, sizeof(*ts));
	ts->pid = pid;
	ts->flags = flags;
	ts->live = xp_mem_process(pid);
	if (!ts->live)
		return -ENOMEM;
	if ((err = xp_maps_read(pid, &ts->maps)) < 0 || (err = build(ts)) < 0) {
		xp_target_space_close(ts);
		return err;
	}
	return 0;
}

static int is_code(const struct xp_map *m)
{
	return m->perms[2] == 'x' && (m->path[0] == '/' || strcmp(m->path, "[vdso]") == 0);
}

/* Do a and b map the same code at the same places?  Data mappings come and
 * go all the time (malloc's mmaps, thread stacks) and change nothing. */
static int same_code(const struct xp_maps *a, const struct xp_maps *b)
{
	size_t i = 0, k = 0;

	for (;;) {
		while (i < a->n && !is_code(&a->v[i]))
			i++;
		while (k < b->n && !is_code(&b->v[k]))
			k++;
		if (i == a->n || k == b->n)
			return i == a->n && k == b->n;
		if (a->v[i].start != b->v[k].start || a->v[i].end != b->v[k].end ||
		    a->v[i].offset != b->v[k].offset || a->v[i].inode != b->v[k].inode ||
		    a->v[i].major != b->v[k].major || a->v[i].minor != b->v[k].minor ||
		    strcmp(a->v[i].path, b->v[k].path) != 0)
			return 0;
		i++;
		k++;
	}
}

int xp_target_space_refresh(struct xp_target_space *ts)
{
	struct xp_maps now = { 0 };
	int err = xp_maps_read(ts->pid, &now);

	if (err < 0)
		return err;
	if (ts->space && same_code(&ts->maps, &now)) {
		/* a JIT's new code needs no new modules */
		xp_space_set_anon_code(ts->space, &now);
		xp_maps_free(&now);
		ts->reuses++;
		return 0;
	}
	xp_maps_free(&ts->maps);
	ts->maps = now;
	err = build(ts);
	return err < 0 ? err : 1;
}

void xp_target_space_close(struct xp_target_space *ts)
{
	xp_unwinder_free(ts->unwinder);
	xp_space_close(ts->space);
	xp_mem_close(ts->live);
	xp_maps_free(&ts->maps);
	memset(ts, 0, sizeof(*ts));
}

/* ---- stacks into pprof ------------------------------------------------ */

/* Profiles hold each file's own (link-time) addresses, mapping and
 * locations alike, not the randomized run-time ones: go tool pprof looks
 * up -disasm, weblist and -symbolize=force addresses in the file's symbol
 * table as they are, and tools that compute file offsets (address - start
 * + offset: pprof's binutils, Parca, Pyroscope) get the same ones.  Two
 * runs of one PIE binary then also merge by address. */
static int64_t mapping_id(struct xp_profile *p, const struct xp_module *m)
{
	struct xp_pmapping pm = {
		.start = m->start - m->bias,
		.limit = m->end - m->bias,
		.offset = m->offset,
		.file = m->path,
		.build_id = m->build_id,
		.has_functions = m->has_functions,
		.has_filenames = m->has_lines,
		.has_line_numbers = m->has_lines,
		.has_inline_frames = m->has_inlines,
	};

	return xp_profile_mapping(p, &pm);
}

int xp_profile_main_mapping(struct xp_profile *p, struct xp_space *space, const struct xp_maps *maps)
{
	const struct xp_module *main_mod = xp_space_main_module(space);
	size_t i;

	/* the lowest file is not always the program: with `ulimit -s
	 * unlimited` (the legacy mmap layout) the libraries lie below it */
	if (main_mod)
		return mapping_id(p, main_mod) < 0 ? -ENOMEM : 0;
	for (i = 0; i < maps->n; i++) {
		const struct xp_map *m = &maps->v[i];
		const struct xp_module *mod;
		if (m->perms[2] != 'x' || m->path[0] != '/')
			continue;
		mod = xp_space_module(space, m->start);
		if (!mod)
			continue;
		return mapping_id(p, mod) < 0 ? -ENOMEM : 0;
	}
	return 0;
}

int64_t xp_profile_pc_mapping(struct xp_profile *p, struct xp_space *space, uint64_t pc, uint64_t *address)
{
	const struct xp_module *mod = xp_space_module(space, pc);

	*address = pc - (mod ? mod->bias : 0);
	return mod ? mapping_id(p, mod) : 0;
}

int xp_stack_locations(struct xp_profile *p, struct xp_space *space, const uint64_t *pc,
		       const unsigned char *is_call, size_t n, uint64_t *ids)
{
	struct xp_pline lines[64];
	size_t i, k;

	for (i = 0; i < n; i++) {
		const struct xp_sym *sym = xp_symbolize(space, pc[i], is_call[i]);
		int64_t mid = 0, id;
		uint64_t bias = 0;
		size_t nl = 0;

		if (!sym)
			return -ENOMEM;
		if (sym->module) {
			bias = sym->module->bias;
			mid = mapping_id(p, sym->module);
			if (mid < 0)
				return (int)mid;
		}
		for (k = 0; k < sym->nframes && nl < sizeof(lines) / sizeof(lines[0]); k++) {
			const struct xp_frame *f = &sym->frames[k];
			int64_t fid = xp_profile_function(p, f->function, f->system_name,
							  f->file ? f->file : "", 0);
			if (fid < 0)
				return (int)fid;
			lines[nl].function_id = (uint64_t)fid;
			lines[nl].line = f->line;
			nl++;
		}
		/* like Go, callers point into the call instruction */
		id = xp_profile_location(p, (uint64_t)mid, pc[i] - (is_call[i] ? 1 : 0) - bias, lines, nl);
		if (id < 0)
			return (int)id;
		ids[i] = (uint64_t)id;
	}
	return 0;
}
