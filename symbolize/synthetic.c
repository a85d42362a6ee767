/* Frames that are no machine code — the Python functions an interpreter
 * runs — given pseudo pcs so that they travel through the stacks, the
 * aggregation and the profiles like any other frame.  A pseudo pc is a
 * non-canonical x86-64 address (bit 62 set), which no code can have; the
 * registry is one per xprof process, so a pc stays valid when the space it
 * was made for is rebuilt.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "symbolize/symbolize.h"

#define SYNTH_BASE 0x4000000000000000ULL
#define SYNTH_MASK 0xffff000000000000ULL
/* Distinct (function, file, line) kept; past it, no more are made and the
 * caller keeps the native frame. */
#define SYNTH_MAX (1u << 20)

struct synth {
	struct xp_frame frame;
	struct xp_sym sym;
	uint64_t hash;
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct synth **all;        /* by id - 1, never moved */
static size_t nall, allocated;
static uint32_t *tab;             /* open addressing: id, 0 empty */
static size_t ntab;

static uint64_t hash_frame(const char *function, const char *file, int line)
{
	uint64_t h = 1469598103934665603ULL ^ (uint64_t)(uint32_t)line;
	const char *p;

	for (p = function; *p; p++)
		h = (h ^ (unsigned char)*p) * 1099511628211ULL;
	h = (h ^ 0xff) * 1099511628211ULL;
	for (p = file ? file : ""; *p; p++)
		h = (h ^ (unsigned char)*p) * 1099511628211ULL;
	return h;
}

static int same(const struct synth *e, const char *function, const char *file, int line)
{
	return e->frame.line == line && strcmp(e->frame.function, function) == 0 &&
	       strcmp(e->frame.file ? e->frame.file : "", file ? file : "") == 0;
}

static int grow(void)
{
	size_t n = ntab ? ntab * 2 : 4096, i, h;
	uint32_t *t = calloc(n, sizeof(*t));

	if (!t)
		return -ENOMEM;
	for (i = 0; i < nall; i++) {
		for (h = all[i]->hash & (n - 1); t[h]; h = (h + 1) & (n - 1))
			;
		t[h] = (uint32_t)(i + 1);
	}
	free(tab);
	tab = t;
	ntab = n;
	return 0;
}

static uint64_t add(const char *function, const char *file, int line, uint64_t hash, size_t slot)
{
	struct synth *e;

	if (nall == allocated) {
		size_t n = allocated ? allocated * 2 : 1024;
		struct synth **v = realloc(all, n * sizeof(*v));
		if (!v)
			return 0;
		all = v;
		allocated = n;
	}
	e = calloc(1, sizeof(*e));
	if (!e || !(e->frame.function = strdup(function)) || (file && !(e->frame.file = strdup(file)))) {
		if (e)
			free((char *)e->frame.function);
		free(e);
		return 0;
	}
	e->frame.system_name = e->frame.function;
	e->frame.line = line;
	e->hash = hash;
	e->sym.frames = &e->frame;
	e->sym.nframes = 1;
	all[nall++] = e;
	tab[slot] = (uint32_t)nall;
	e->sym.pc = SYNTH_BASE | ((uint64_t)nall << 4);
	return e->sym.pc;
}

uint64_t xp_synthetic_pc(const char *function, const char *file, int line)
{
	uint64_t h = hash_frame(function, file, line), pc = 0;
	size_t slot;

	pthread_mutex_lock(&lock);
	if ((nall + 1) * 2 > ntab && grow() < 0)
		goto out;
	for (slot = h & (ntab - 1); tab[slot]; slot = (slot + 1) & (ntab - 1)) {
		struct synth *e = all[tab[slot] - 1];
		if (e->hash == h && same(e, function, file, line)) {
			pc = e->sym.pc;
			goto out;
		}
	}
	if (nall < SYNTH_MAX)
		pc = add(function, file, line, h, slot);
out:
	pthread_mutex_unlock(&lock);
	return pc;
}

int xp_pc_is_synthetic(uint64_t pc)
{
	return (pc & SYNTH_MASK) == SYNTH_BASE;
}

const struct xp_sym *xp_synthetic_sym(uint64_t pc)
{
	uint64_t id = (pc & ~SYNTH_MASK) >> 4;
	const struct xp_sym *s = NULL;

	pthread_mutex_lock(&lock);
	if (xp_pc_is_synthetic(pc) && id >= 1 && id <= nall)
		s = &all[id - 1]->sym;
	pthread_mutex_unlock(&lock);
	return s;
}
