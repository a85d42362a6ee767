/* Kernel symbols from /proc/kallsyms: text symbols sorted by address, for
 * the kernel frames of CPU samples.  Addresses read as zero (kptr_restrict,
 * or no privilege) mean there is nothing to look up. */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "symbolize/symbolize.h"

#define KALLSYMS_MAX 4000000 /* more lines than any kernel has */

struct ksym {
	uint64_t addr;
	char *name;
};

struct xp_kallsyms {
	struct ksym *v;
	size_t n;
};

static int ksym_cmp(const void *a, const void *b)
{
	const struct ksym *x = a, *y = b;

	return x->addr < y->addr ? -1 : x->addr > y->addr;
}

struct xp_kallsyms *xp_kallsyms_load(void)
{
	struct xp_kallsyms *k = calloc(1, sizeof(*k));
	FILE *f = fopen("/proc/kallsyms", "re");
	char line[512], name[256], type;
	unsigned long long addr;
	size_t alloc = 0;

	if (!k || !f)
		goto fail;
	while (fgets(line, sizeof(line), f) && k->n < KALLSYMS_MAX) {
		if (sscanf(line, "%llx %c %255s", &addr, &type, name) != 3)
			continue;
		if (type != 't' && type != 'T' && type != 'w' && type != 'W')
			continue;
		if (addr == 0)
			continue;
		if (k->n == alloc) {
			size_t n = alloc ? alloc * 2 : 65536;
			struct ksym *v = realloc(k->v, n * sizeof(*v));
			if (!v)
				goto fail;
			k->v = v;
			alloc = n;
		}
		k->v[k->n].addr = addr;
		k->v[k->n].name = strdup(name);
		if (!k->v[k->n].name)
			goto fail;
		k->n++;
	}
	fclose(f);
	f = NULL;
	if (k->n == 0)
		goto fail;
	qsort(k->v, k->n, sizeof(*k->v), ksym_cmp);
	return k;
fail:
	if (f)
		fclose(f);
	xp_kallsyms_free(k);
	return NULL;
}

const char *xp_kallsyms_lookup(const struct xp_kallsyms *k, uint64_t addr, uint64_t *offset)
{
	size_t lo = 0, hi;

	if (!k || k->n == 0 || addr < k->v[0].addr)
		return NULL;
	hi = k->n;
	while (hi - lo > 1) {
		size_t mid = lo + (hi - lo) / 2;
		if (k->v[mid].addr <= addr)
			lo = mid;
		else
			hi = mid;
	}
	*offset = addr - k->v[lo].addr;
	return k->v[lo].name;
}

void xp_kallsyms_free(struct xp_kallsyms *k)
{
	size_t i;

	if (!k)
		return;
	for (i = 0; i < k->n; i++)
		free(k->v[i].name);
	free(k->v);
	free(k);
}
