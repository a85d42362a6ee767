/* Names for JIT code from /tmp/perf-PID.map, the file V8, the JVM's perf-map
 * agents, LuaJIT and .NET append to: one "START SIZE name" line per
 * function, hex, the pid as the target sees it; and from a jitdump
 * (jit-PID.dump, perf's binary format, which LLVM's perf listener writes
 * for PostgreSQL's jit_profiling_support), found where the JIT mmaps it.  The file is read inside the target's mount namespace, and it is
 * hostile input like everything else from the target: anyone can write
 * /tmp, so it must be a regular file of the target's user or root, it is
 * read up to a size cap, and lines that do not parse are skipped and
 * counted.  It grows while the program runs: what was appended is read
 * again, at most once per XP_PERFMAP_RECHECK_NS.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "attach/attach.h"
#include "symbolize/symbolize.h"
#include "symbolize/symbolize_internal.h"

#define PERFMAP_MAX_BYTES (64u << 20) /* read no further into one file */
#define PERFMAP_MAX_ENTRIES (1u << 20)
#define PERFMAP_LINE_MAX 4096          /* a longer line is skipped */
#define PERFMAP_NAME_MAX 1024          /* a longer name is cut */
#define PERFMAP_CHUNK (1u << 20)
#define PERFMAP_OVERLAP_SCAN 64 /* entries looked at below a pc for a later one covering it */

/* jitdump (tools/perf/Documentation/jitdump-specification.txt) */
#define JITDUMP_MAGIC 0x4A695444u
#define JITDUMP_HEADER_MIN 40
#define JIT_CODE_LOAD 0
#define JIT_RECORD_HEADER 16
#define JIT_LOAD_FIXED 40 /* pid, tid, vma, code_addr, code_size, code_index */

struct entry {
	uint64_t start, end;
	uint64_t code_off; /* where a jitdump holds its code bytes; 0: none */
	uint32_t seq;  /* line order: of overlapping entries the last one written wins */
	uint32_t name; /* offset into names */
};

struct xp_perfmap {
	pid_t pid;
	char path[64];
	struct entry *v;
	size_t n, cap;
	int sorted;
	char *names;
	size_t names_len, names_cap;
	uint64_t read_off; /* bytes of whole lines consumed */
	dev_t dev;
	ino_t ino;
	int64_t last_check_ns;
	unsigned gen; /* bumped when entries change */
	struct xp_jit_stats st;
	/* the jitdump the target maps, if any: read up to dump_off */
	char *dump_path;
	uint64_t dump_start, dump_end, dump_inode, dump_off;
	unsigned dump_major, dump_minor;
	int dump_fd;   /* kept open: the code bytes are read from it */
	int dump_bad;  /* not a jitdump: not read again */
};

static int64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

struct xp_perfmap *xp_perfmap_new(pid_t pid)
{
	struct xp_perfmap *m = calloc(1, sizeof(*m));
	pid_t nspid = pid;

	if (!m)
		return NULL;
	m->pid = pid;
	/* the pid it writes into the name is its own, in its pid namespace */
	if (xp_thread_ns_tid(pid, pid, &nspid) < 0)
		nspid = pid;
	snprintf(m->path, sizeof(m->path), "/tmp/perf-%d.map", (int)nspid);
	snprintf(m->st.path, sizeof(m->st.path), "%s", m->path);
	m->last_check_ns = INT64_MIN / 2;
	m->dump_fd = -1;
	return m;
}

void xp_perfmap_free(struct xp_perfmap *m)
{
	if (!m)
		return;
	free(m->v);
	free(m->names);
	free(m->dump_path);
	if (m->dump_fd >= 0)
		close(m->dump_fd);
	free(m);
}

static void reset(struct xp_perfmap *m)
{
	m->n = 0;
	m->names_len = 0;
	m->read_off = 0;
	m->sorted = 1;
	m->st.entries = m->st.skipped = m->st.dropped = 0;
	m->st.bytes = 0;
	m->dump_off = 0; /* its entries went too */
	m->gen++;
}

static int parse_hex(const char **p, const char *end, uint64_t *out)
{
	const char *s = *p;
	uint64_t v = 0;
	int digits = 0;

	if (end - s > 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X'))
		s += 2;
	for (; s < end; s++, digits++) {
		int d = *s >= '0' && *s <= '9' ? *s - '0' : *s >= 'a' && *s <= 'f' ? *s - 'a' + 10
			: *s >= 'A' && *s <= 'F' ? *s - 'A' + 10 : -1;
		if (d < 0)
			break;
		if (digits == 16)
			return -1; /* more than 64 bits */
		v = v << 4 | (uint64_t)d;
	}
	if (digits == 0)
		return -1;
	*p = s;
	*out = v;
	return 0;
}

static int add_entry(struct xp_perfmap *m, uint64_t start, uint64_t size, const char *p, size_t nlen,
		     uint64_t code_off);

/* One line without its newline: 0 added, -1 skipped. */
static int parse_line(struct xp_perfmap *m, const char *s, size_t len)
{
	const char *end = s + len, *p = s;
	uint64_t start, size;
	size_t nlen;

	if (len > 0 && end[-1] == '\r')
		end--;
	if (parse_hex(&p, end, &start) < 0 || p == end || *p != ' ')
		return -1;
	p++;
	if (parse_hex(&p, end, &size) < 0 || p == end || *p != ' ')
		return -1;
	p++;
	nlen = (size_t)(end - p);
	if (memchr(p, '\0', nlen))
		return -1;
	return add_entry(m, start, size, p, nlen, 0);
}

/* One function; -1 when it makes no sense. */
static int add_entry(struct xp_perfmap *m, uint64_t start, uint64_t size, const char *p, size_t nlen,
		     uint64_t code_off)
{
	struct entry *e;

	if (size == 0 || start + size < start || nlen == 0)
		return -1;
	if (nlen > PERFMAP_NAME_MAX)
		nlen = PERFMAP_NAME_MAX;
	if (m->n == PERFMAP_MAX_ENTRIES) {
		m->st.dropped++;
		return 0;
	}
	if (m->n == m->cap) {
		size_t nc = m->cap ? m->cap * 2 : 256;
		struct entry *v = realloc(m->v, nc * sizeof(*v));
		if (!v)
			return 0;
		m->v = v;
		m->cap = nc;
	}
	if (m->names_len + nlen + 1 > m->names_cap) {
		size_t nc = m->names_cap ? m->names_cap : 4096;
		char *nn;
		while (nc < m->names_len + nlen + 1)
			nc *= 2;
		if (!(nn = realloc(m->names, nc)))
			return 0;
		m->names = nn;
		m->names_cap = nc;
	}
	e = &m->v[m->n];
	e->start = start;
	e->end = start + size;
	e->seq = (uint32_t)m->n;
	e->code_off = code_off;
	e->name = (uint32_t)m->names_len;
	memcpy(m->names + m->names_len, p, nlen);
	m->names[m->names_len + nlen] = '\0';
	m->names_len += nlen + 1;
	if (m->n > 0 && m->v[m->n - 1].start > start)
		m->sorted = 0;
	m->n++;
	m->st.entries++;
	m->gen++;
	return 0;
}

static int entry_cmp(const void *a, const void *b)
{
	const struct entry *x = a, *y = b;

	if (x->start != y->start)
		return x->start < y->start ? -1 : 1;
	return x->seq < y->seq ? -1 : x->seq > y->seq;
}

size_t xp_perfmap_parse(struct xp_perfmap *m, const char *buf, size_t len, int at_eof)
{
	size_t off = 0;

	while (off < len) {
		const char *nl = memchr(buf + off, '\n', len - off);
		size_t l = nl ? (size_t)(nl - (buf + off)) : len - off;
		if (!nl && !at_eof && l <= PERFMAP_LINE_MAX)
			break; /* a line still being written: read it whole next time */
		if (l > PERFMAP_LINE_MAX || parse_line(m, buf + off, l) < 0)
			m->st.skipped++;
		if (!nl && l > PERFMAP_LINE_MAX) {
			off = len; /* the rest of an over-long line is skipped with it */
			break;
		}
		off += l + (nl ? 1 : 0);
	}
	if (!m->sorted) {
		qsort(m->v, m->n, sizeof(*m->v), entry_cmp);
		m->sorted = 1;
	}
	return off;
}


/* Reads what the file holds past read_off. */
static int read_more(struct xp_perfmap *m, int fd, uint64_t size)
{
	char *buf = malloc(PERFMAP_CHUNK + PERFMAP_LINE_MAX + 2);
	size_t have = 0;
	uint64_t limit = size < PERFMAP_MAX_BYTES ? size : PERFMAP_MAX_BYTES;
	uint64_t pos = m->read_off;

	if (!buf)
		return -ENOMEM;
	while (pos < limit) {
		size_t want = PERFMAP_CHUNK;
		ssize_t r;
		size_t used;
		if (want > limit - pos)
			want = (size_t)(limit - pos);
		r = pread(fd, buf + have, want, (off_t)pos);
		if (r <= 0)
			break;
		pos += (uint64_t)r;
		have += (size_t)r;
		/* a partial last line stays for the next chunk; a line that
		 * will not fit in one is skipped */
		used = xp_perfmap_parse(m, buf, have, 0);
		memmove(buf, buf + used, have - used);
		have -= used;
		m->read_off += used;
	}
	free(buf);
	m->st.bytes = m->read_off;
	if (size > PERFMAP_MAX_BYTES)
		m->st.cut = 1;
	if (!m->sorted) {
		qsort(m->v, m->n, sizeof(*m->v), entry_cmp);
		m->sorted = 1;
	}
	return 0;
}

void xp_perfmap_set_jitdump(struct xp_perfmap *m, const struct xp_map *map)
{
	if (m->dump_path && m->dump_inode == map->inode && m->dump_major == map->major &&
	    m->dump_minor == map->minor && strcmp(m->dump_path, map->path) == 0)
		return;
	free(m->dump_path);
	m->dump_path = strdup(map->path);
	m->dump_start = map->start;
	m->dump_end = map->end;
	m->dump_inode = map->inode;
	m->dump_major = map->major;
	m->dump_minor = map->minor;
	m->dump_off = 0;
	m->dump_bad = 0;
	if (m->dump_fd >= 0)
		close(m->dump_fd);
	m->dump_fd = -1;
}

/* The jitdump's file: the one mapped (map_files), else its path in the
 * target's root if it is the same file. */
static int open_jitdump(struct xp_perfmap *m)
{
	char path[96];
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/map_files/%llx-%llx", (int)m->pid, (unsigned long long)m->dump_start,
		 (unsigned long long)m->dump_end);
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
	if (fd < 0)
		fd = xp_open_in_root(m->pid, m->dump_path);
	if (fd >= 0 && !xp_fd_is_file(fd, m->dump_major, m->dump_minor, m->dump_inode)) {
		close(fd);
		fd = -1;
	}
	return fd;
}

/* The code-load records appended to the jitdump since the last read. */
static void read_jitdump(struct xp_perfmap *m)
{
	unsigned char buf[JIT_RECORD_HEADER + JIT_LOAD_FIXED + PERFMAP_NAME_MAX + 1];
	struct stat st;
	uint64_t limit;
	int fd;

	if (!m->dump_path || m->dump_bad)
		return;
	if (m->dump_fd < 0 && (m->dump_fd = open_jitdump(m)) < 0)
		return;
	fd = m->dump_fd;
	if (fstat(fd, &st) < 0)
		return;
	limit = (uint64_t)st.st_size < PERFMAP_MAX_BYTES ? (uint64_t)st.st_size : PERFMAP_MAX_BYTES;
	if (m->dump_off == 0) {
		uint32_t h[3];
		/* magic (in the writer's byte order: ours), version, header size */
		if (pread(fd, h, sizeof(h), 0) != (ssize_t)sizeof(h) || h[0] != JITDUMP_MAGIC ||
		    h[2] < JITDUMP_HEADER_MIN || h[2] > 4096) {
			m->dump_bad = 1;
			m->st.skipped++;
			return;
		}
		m->dump_off = h[2];
	}
	while (m->dump_off + JIT_RECORD_HEADER <= limit) {
		uint32_t id, size;
		uint64_t addr, len;
		ssize_t r = pread(fd, buf, sizeof(buf), (off_t)m->dump_off);
		const unsigned char *name;
		size_t nlen;

		if (r < JIT_RECORD_HEADER)
			break;
		memcpy(&id, buf, 4);
		memcpy(&size, buf + 4, 4);
		if (size < JIT_RECORD_HEADER) { /* the rest cannot be framed */
			m->st.skipped++;
			m->dump_bad = 1;
			break;
		}
		if (m->dump_off + size > limit)
			break; /* still being written */
		if (id == JIT_CODE_LOAD) {
			name = buf + JIT_RECORD_HEADER + JIT_LOAD_FIXED;
			r = r < (ssize_t)size ? r : (ssize_t)size;
			nlen = r > (ssize_t)(JIT_RECORD_HEADER + JIT_LOAD_FIXED)
				       ? strnlen((const char *)name, (size_t)r - JIT_RECORD_HEADER - JIT_LOAD_FIXED)
				       : 0;
			uint64_t code_off = JIT_RECORD_HEADER + JIT_LOAD_FIXED + nlen + 1;
			memcpy(&addr, buf + JIT_RECORD_HEADER + 16, 8);
			memcpy(&len, buf + JIT_RECORD_HEADER + 24, 8);
			/* the code follows the name, inside the record */
			code_off = len <= size && code_off <= size - len ? m->dump_off + code_off : 0;
			if (nlen == 0 || add_entry(m, addr, len, (const char *)name, nlen, code_off) < 0)
				m->st.skipped++;
		}
		m->dump_off += size;
	}
	if (!m->sorted) {
		qsort(m->v, m->n, sizeof(*m->v), entry_cmp);
		m->sorted = 1;
	}
}

int xp_perfmap_refresh(struct xp_perfmap *m, int force)
{
	int64_t now = now_ns();
	struct stat st, proc;
	char procdir[32];
	unsigned gen = m->gen;
	int fd;

	if (!force && now - m->last_check_ns < XP_PERFMAP_RECHECK_NS)
		return 0;
	m->last_check_ns = now;
	m->st.checks++;
	read_jitdump(m);
	fd = xp_open_in_root(m->pid, m->path);
	if (fd < 0) {
		m->st.found = 0;
		return m->gen != gen;
	}
	snprintf(procdir, sizeof(procdir), "/proc/%d", (int)m->pid);
	/* a regular file of the target's user (the owner of /proc/PID) or
	 * root: another user's file in /tmp names nothing */
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || stat(procdir, &proc) < 0 ||
	    (st.st_uid != proc.st_uid && st.st_uid != 0)) {
		m->st.found = 0;
		m->st.refused = 1;
		close(fd);
		return m->gen != gen;
	}
	m->st.found = 1;
	m->st.refused = 0;
	if (st.st_ino != m->ino || st.st_dev != m->dev || (uint64_t)st.st_size < m->read_off) {
		/* another file, or one written again from the start */
		if (m->read_off || m->n)
			reset(m);
		m->ino = st.st_ino;
		m->dev = st.st_dev;
	}
	if ((uint64_t)st.st_size > m->read_off && m->read_off < PERFMAP_MAX_BYTES)
		read_more(m, fd, (uint64_t)st.st_size);
	close(fd);
	return m->gen != gen;
}

unsigned xp_perfmap_gen(const struct xp_perfmap *m)
{
	return m->gen;
}

static const struct entry *find_entry(const struct xp_perfmap *m, uint64_t pc)
{
	size_t lo = 0, hi = m->n, i, k;
	const struct entry *best = NULL;

	/* the last entry starting at or below pc */
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (m->v[mid].start <= pc)
			lo = mid + 1;
		else
			hi = mid;
	}
	/* entries may overlap (code freed and its memory reused): the one
	 * written last that covers pc, among the nearest few */
	for (i = lo, k = 0; i-- > 0 && k < PERFMAP_OVERLAP_SCAN; k++) {
		const struct entry *e = &m->v[i];
		if (pc < e->end && (!best || e->seq > best->seq))
			best = e;
	}
	return best;
}

const char *xp_perfmap_lookup(const struct xp_perfmap *m, uint64_t pc, uint64_t *start, uint64_t *end)
{
	const struct entry *e = find_entry(m, pc);

	if (!e)
		return NULL;
	*start = e->start;
	*end = e->end;
	return m->names + e->name;
}

int xp_perfmap_code(const struct xp_perfmap *m, uint64_t addr, void *buf, size_t len)
{
	const struct entry *e = find_entry(m, addr);

	if (!e || !e->code_off || m->dump_fd < 0 || len > e->end - addr)
		return -ENOENT;
	if (pread(m->dump_fd, buf, len, (off_t)(e->code_off + (addr - e->start))) != (ssize_t)len)
		return -EIO;
	return 0;
}

void xp_perfmap_stats(const struct xp_perfmap *m, struct xp_jit_stats *st)
{
	*st = m->st;
	st->jitdump = m->dump_path && !m->dump_bad && m->dump_off > 0;
}
