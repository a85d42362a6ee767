/* collect/heap.c: what a glibc heap holds now.  The walk (heapwalk/) runs
 * while the process is stopped; each block's story (its type, what holds
 * it, its root) becomes a sample's stack, blocks with one story summed. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "attach/attach.h"
#include "collect/collect.h"
#include "heapwalk/heapwalk.h"
#include "proto/profile.h"

int xp_glibc_heap_collect(pid_t pid, struct xp_space *space, struct xp_maps *maps, struct xp_heap *h,
			  struct xp_snapshot *snap, enum xp_heap_stage *stage)
{
	int err;

	h->pid = pid;
	h->space = space;
	*stage = XP_HEAP_STAGE_PREPARE;
	if ((err = xp_heap_prepare(h, pid, maps)) == -ENOMEM)
		return err;
	*stage = XP_HEAP_STAGE_STOP;
	err = xp_snapshot_take_with(pid, snap, xp_glibc_heap_read, h);
	if (err < 0)
		return err;
	*stage = XP_HEAP_STAGE_COPY;
	if (snap->hold_err < 0)
		return snap->hold_err;
	*stage = XP_HEAP_STAGE_WALK;
	err = xp_glibc_heap_walk(h);
	if (err == 0)
		err = xp_heap_analyze(h, snap);
	return err;
}

/* One distinct story and its totals.  Its names are interned, so stories
 * compare and hash by pointer. */
struct story {
	const char *names[XP_HEAP_PATH_MAX];
	size_t n;
	uint64_t count, bytes;
};

static uint64_t story_hash(const struct story *st)
{
	uint64_t h = 1469598103934665603ULL;
	size_t i;

	for (i = 0; i < st->n; i++)
		h = (h ^ (uint64_t)(uintptr_t)st->names[i]) * 1099511628211ULL;
	return h ^ (h >> 29);
}

static int same_story(const struct story *a, const struct story *b)
{
	return a->n == b->n && memcmp(a->names, b->names, a->n * sizeof(a->names[0])) == 0;
}

/* Stories grouped in a hash table: a heap of millions of blocks has
 * thousands of stories. */
struct stories {
	struct story *v;
	size_t n, alloc;
	size_t *tab; /* story index + 1 */
	size_t ntab;
};

static int stories_rehash(struct stories *ss)
{
	size_t nt = ss->ntab ? ss->ntab * 2 : 1024, i, slot;
	size_t *t = calloc(nt, sizeof(*t));

	if (!t)
		return -ENOMEM;
	for (i = 0; i < ss->n; i++) {
		for (slot = story_hash(&ss->v[i]) & (nt - 1); t[slot]; slot = (slot + 1) & (nt - 1))
			;
		t[slot] = i + 1;
	}
	free(ss->tab);
	ss->tab = t;
	ss->ntab = nt;
	return 0;
}

static int stories_add(struct stories *ss, const struct story *cur, uint64_t bytes)
{
	size_t slot;

	if ((ss->n + 1) * 2 > ss->ntab && stories_rehash(ss) < 0)
		return -ENOMEM;
	for (slot = story_hash(cur) & (ss->ntab - 1); ss->tab[slot]; slot = (slot + 1) & (ss->ntab - 1)) {
		struct story *st = &ss->v[ss->tab[slot] - 1];
		if (same_story(st, cur)) {
			st->count++;
			st->bytes += bytes;
			return 0;
		}
	}
	if (ss->n == ss->alloc) {
		size_t na = ss->alloc ? ss->alloc * 2 : 256;
		struct story *v = realloc(ss->v, na * sizeof(*v));
		if (!v)
			return -ENOMEM;
		ss->v = v;
		ss->alloc = na;
	}
	ss->v[ss->n] = *cur;
	ss->v[ss->n].count = 1;
	ss->v[ss->n].bytes = bytes;
	ss->tab[slot] = ++ss->n;
	return 0;
}

/* The stories' frames are no code: their locations have no mapping.  The
 * main binary still comes first, as mapping 1, so that pprof names the
 * profiled program (File:, Build ID:) instead of "Main binary filename not
 * available". */
int xp_heap_profile(struct xp_heap *h, const struct xp_maps *maps, int64_t time_ns, struct xp_profile **out)
{
	struct xp_profile *p = xp_profile_new();
	struct stories ss = { 0 };
	struct story cur;
	size_t b, i, k;
	int err = -ENOMEM;

	if (!p)
		return -ENOMEM;
	for (b = 0; b < h->nblocks; b++) {
		cur.n = xp_heap_story(h, b, cur.names);
		if ((err = stories_add(&ss, &cur, h->blocks[b].size)) < 0)
			goto out;
	}
	if ((err = xp_profile_add_sample_type(p, "inuse_objects", "count")) < 0 ||
	    (err = xp_profile_add_sample_type(p, "inuse_space", "bytes")) < 0 ||
	    (err = xp_profile_set_period(p, "space", "bytes", 1)) < 0 ||
	    (err = xp_profile_set_default_sample_type(p, "inuse_space")) < 0)
		goto out;
	xp_profile_set_time(p, time_ns, 0);
	if ((err = xp_profile_main_mapping(p, h->space, maps)) < 0)
		goto out;
	for (i = 0; i < ss.n; i++) {
		const struct story *st = &ss.v[i];
		uint64_t ids[XP_HEAP_PATH_MAX];
		int64_t values[2] = { (int64_t)st->count, (int64_t)st->bytes };
		for (k = 0; k < st->n; k++) {
			const char *name = st->names[k];
			struct xp_pline line;
			int64_t fid = xp_profile_function(p, name, name, "", 0), lid;
			if (fid < 0) {
				err = (int)fid;
				goto out;
			}
			line.function_id = (uint64_t)fid;
			line.line = 0;
			lid = xp_profile_location(p, 0, 0, &line, 1);
			if (lid < 0) {
				err = (int)lid;
				goto out;
			}
			ids[k] = (uint64_t)lid;
		}
		err = xp_profile_add_sample(p, ids, st->n, values, 2, NULL, 0);
		if (err < 0)
			goto out;
	}
	*out = p;
	p = NULL;
	err = 0;
out:
	free(ss.tab);
	free(ss.v);
	xp_profile_free(p);
	return err;
}

