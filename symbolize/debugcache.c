/* A cache of separate debug files with their sections decompressed, keyed
 * by build id.  libdw inflates every compressed .debug_* section each time
 * it opens a debug file (libc's takes tens of ms); the cache pays that once.
 *
 * Entries live in $XPROF_CACHE_DIR, else $XDG_CACHE_HOME/xprof, else
 * ~/.cache/xprof (mode 0700), are written to an O_EXCL temporary and
 * renamed into place, and are used only when they are regular files of
 * ours whose build id note matches the name.
 */
#define _GNU_SOURCE
#include <elfutils/libdwelf.h>
#include <errno.h>
#include <fcntl.h>
#include <gelf.h>
#include <libelf.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "symbolize/symbolize_internal.h"

#define DEBUGCACHE_MAX_BYTES (1ULL << 30) /* a bigger debug file is not copied */

static int cache_dir(char *buf, size_t len)
{
	const char *env = getenv("XPROF_CACHE_DIR"), *xdg = getenv("XDG_CACHE_HOME");
	const char *home = getenv("HOME");
	char *p;

	if (env)
		snprintf(buf, len, "%s", env);
	else if (xdg && *xdg)
		snprintf(buf, len, "%s/xprof", xdg);
	else if (home && *home)
		snprintf(buf, len, "%s/.cache/xprof", home);
	else
		return -1;
	if (!buf[0] || strcmp(buf, "off") == 0)
		return -1;
	/* mkdir -p, the last component private */
	for (p = buf + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		mkdir(buf, 0755);
		*p = '/';
	}
	if (mkdir(buf, 0700) < 0 && errno != EEXIST)
		return -1;
	return 0;
}

static int is_hex(const char *s)
{
	if (!*s)
		return 0;
	for (; *s; s++)
		if (!((*s >= '0' && *s <= '9') || (*s >= 'a' && *s <= 'f')))
			return 0;
	return 1;
}

/* Sum of the decompressed sizes of the compressed sections, 0 when none. */
static uint64_t compressed_size(Elf *elf)
{
	Elf_Scn *scn = NULL;
	uint64_t total = 0;

	while ((scn = elf_nextscn(elf, scn)) != NULL) {
		GElf_Shdr shdr;
		GElf_Chdr chdr;
		if (!gelf_getshdr(scn, &shdr) || !(shdr.sh_flags & SHF_COMPRESSED))
			continue;
		if (!gelf_getchdr(scn, &chdr))
			return UINT64_MAX;
		total += chdr.ch_size ? chdr.ch_size : 1;
	}
	return total;
}

static int build_id_matches(Elf *elf, const char *hex)
{
	const void *id;
	char buf[2 * 64 + 1];
	ssize_t n = dwelf_elf_gnu_build_id(elf, &id);
	ssize_t i;

	if (n <= 0 || n > 64)
		return 0;
	for (i = 0; i < n; i++)
		snprintf(buf + 2 * i, 3, "%02x", ((const unsigned char *)id)[i]);
	return strcmp(buf, hex) == 0;
}

/* Opens a cache entry when it is sound: a regular file we own, whose
 * build id is the one it is named after. */
static int open_entry(const char *path, const char *hex)
{
	struct stat st;
	int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	Elf *elf;
	int good;

	if (fd < 0)
		return -1;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_uid != geteuid()) {
		close(fd);
		return -1;
	}
	elf = elf_begin(fd, ELF_C_READ_MMAP, NULL);
	good = elf && elf_kind(elf) == ELF_K_ELF && compressed_size(elf) == 0 &&
	       build_id_matches(elf, hex);
	if (elf)
		elf_end(elf);
	if (!good) {
		close(fd);
		return -1;
	}
	return fd;
}

static int copy_file(int from, int to)
{
	char buf[1 << 16];
	off_t off = 0;
	ssize_t n;

	while ((n = pread(from, buf, sizeof(buf), off)) > 0) {
		if (write(to, buf, (size_t)n) != n)
			return -1;
		off += n;
	}
	return n < 0 ? -1 : 0;
}

/* Writes a copy of the debug file at fd with every section decompressed. */
static int write_entry(int fd, const char *dir, const char *path, const char *hex)
{
	char tmp[4096 + 160];
	int out, ok = 0;
	Elf *elf = NULL;
	Elf_Scn *scn = NULL;

	snprintf(tmp, sizeof(tmp), "%s/.%s.XXXXXX", dir, hex);
	out = mkostemp(tmp, O_CLOEXEC);
	if (out < 0)
		return -1;
	if (copy_file(fd, out) == 0 && (elf = elf_begin(out, ELF_C_RDWR, NULL)) != NULL) {
		ok = 1;
		while (ok && (scn = elf_nextscn(elf, scn)) != NULL) {
			GElf_Shdr shdr;
			if (gelf_getshdr(scn, &shdr) && (shdr.sh_flags & SHF_COMPRESSED))
				ok = elf_compress(scn, 0, 0) >= 0;
		}
		ok = ok && elf_update(elf, ELF_C_WRITE) >= 0;
		elf_end(elf);
	}
	if (ok && fchmod(out, 0600) == 0 && close(out) == 0 && rename(tmp, path) == 0)
		return open_entry(path, hex);
	if (out >= 0)
		close(out);
	unlink(tmp);
	return -1;
}

int xp_debugcache_open(int fd, const char *build_id, char **path_out)
{
	char dir[4096], path[4096 + 160];
	Elf *elf;
	uint64_t size;
	int cfd;

	*path_out = NULL;
	if (!build_id || strlen(build_id) > 128 || !is_hex(build_id) || cache_dir(dir, sizeof(dir)) < 0)
		return -1;
	elf = elf_begin(fd, ELF_C_READ_MMAP, NULL);
	if (!elf)
		return -1;
	size = elf_kind(elf) == ELF_K_ELF ? compressed_size(elf) : 0;
	elf_end(elf);
	if (size == 0 || size > DEBUGCACHE_MAX_BYTES)
		return -1; /* nothing to gain, or too big to copy */
	snprintf(path, sizeof(path), "%s/%s.debug", dir, build_id);
	cfd = open_entry(path, build_id);
	if (cfd < 0)
		cfd = write_entry(fd, dir, path, build_id);
	if (cfd >= 0 && !(*path_out = strdup(path))) {
		close(cfd);
		return -1;
	}
	return cfd;
}
