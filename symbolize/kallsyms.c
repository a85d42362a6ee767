/* Kernel symbols from /proc/kallsyms: text symbols sorted by address, for
 * the kernel frames of CPU samples.  Addresses read as zero (kptr_restrict,
 * or no privilege) mean there is nothing to look up. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "symbolize/symbolize.h"

#define KALLSYMS_MAX 4000000 /* more lines than any kernel has */

/* /proc/kallsyms gives at most a page per read() whatever is asked; a
 * big buffer still saves the stdio 1 KiB reads (st_blksize of procfs). */
#define READ_CHUNK (256 * 1024)

struct ksym {
	uint64_t addr;
	uint32_t name; /* offset into names */
};

struct xp_kallsyms {
	struct ksym *v;
	size_t n, alloc;
	char *names; /* every name, NUL-terminated, one allocation */
	size_t names_len, names_alloc;
};

static int ksym_cmp(const void *a, const void *b)
{
	const struct ksym *x = a, *y = b;

	return x->addr < y->addr ? -1 : x->addr > y->addr;
}

/* One line "ADDR TYPE NAME [MODULE]": text symbols with an address are
 * kept; -ENOMEM when out of memory, else 0. */
static int add_line(struct xp_kallsyms *k, const char *line, size_t len)
{
	const char *p = line, *end = line + len, *name;
	uint64_t addr = 0;
	size_t nlen;
	int digits = 0;
	char type;

	for (; p < end && *p != ' '; p++, digits++) {
		int c = *p, v = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 :
					c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
		if (v < 0 || digits >= 16)
			return 0;
		addr = addr << 4 | (uint64_t)v;
	}
	if (end - p < 4 || p[2] != ' ')
		return 0;
	type = p[1];
	if ((type != 't' && type != 'T' && type != 'w' && type != 'W') || addr == 0)
		return 0;
	name = p + 3;
	nlen = strcspn(name, " \t");
	if (name + nlen > end)
		nlen = (size_t)(end - name);
	if (nlen == 0 || nlen > 255)
		return 0;
	if (k->n == k->alloc) {
		size_t n = k->alloc ? k->alloc * 2 : 65536;
		struct ksym *v = realloc(k->v, n * sizeof(*v));
		if (!v)
			return -ENOMEM;
		k->v = v;
		k->alloc = n;
	}
	if (k->names_len + nlen + 1 > k->names_alloc) {
		size_t n = k->names_alloc ? k->names_alloc * 2 : 1 << 20;
		char *v = n < UINT32_MAX ? realloc(k->names, n) : NULL;
		if (!v)
			return -ENOMEM;
		k->names = v;
		k->names_alloc = n;
	}
	memcpy(k->names + k->names_len, name, nlen);
	k->names[k->names_len + nlen] = '\0';
	k->v[k->n].addr = addr;
	k->v[k->n].name = (uint32_t)k->names_len;
	k->names_len += nlen + 1;
	k->n++;
	return 0;
}

struct xp_kallsyms *xp_kallsyms_load(void)
{
	struct xp_kallsyms *k = calloc(1, sizeof(*k));
	char *buf = malloc(READ_CHUNK + 1);
	size_t have = 0, lines = 0;
	int fd = open("/proc/kallsyms", O_RDONLY | O_CLOEXEC);
	ssize_t got;

	if (!k || !buf || fd < 0)
		goto fail;
	for (;;) {
		char *p, *nl;

		got = read(fd, buf + have, READ_CHUNK - have);
		if (got < 0 && errno == EINTR)
			continue;
		if (got < 0)
			goto fail;
		have += (size_t)got;
		if (got == 0 && have == 0)
			break;
		/* every whole line; a partial one waits for the next read */
		for (p = buf; (nl = memchr(p, '\n', have - (size_t)(p - buf))) != NULL; p = nl + 1) {
			if (++lines > KALLSYMS_MAX)
				break;
			if (add_line(k, p, (size_t)(nl - p)) < 0)
				goto fail;
		}
		if (lines > KALLSYMS_MAX)
			break;
		have -= (size_t)(p - buf);
		memmove(buf, p, have);
		if (got == 0 || have == READ_CHUNK) /* the end, or a line longer than the buffer */
			break;
	}
	close(fd);
	fd = -1;
	free(buf);
	buf = NULL;
	if (k->n == 0)
		goto fail;
	qsort(k->v, k->n, sizeof(*k->v), ksym_cmp);
	return k;
fail:
	if (fd >= 0)
		close(fd);
	free(buf);
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
	return k->names + k->v[lo].name;
}

void xp_kallsyms_free(struct xp_kallsyms *k)
{
	if (!k)
		return;
	free(k->v);
	free(k->names);
	free(k);
}
