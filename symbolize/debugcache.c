/* A cache of separate debug files with their sections decompressed, keyed
 * by build id.  libdw inflates every compressed .debug_* section each time
 * it opens a debug file (libc's takes tens of ms); the cache pays that once.
 *
 * Entries live in $XPROF_CACHE_DIR, else $XDG_CACHE_HOME/xprof, else
 * ~/.cache/xprof (mode 0700), are written to an O_EXCL temporary and
 * renamed into place, and are used only when they are regular files of
 * ours whose build id note matches the name.  xprof often runs as root:
 * the directory is used only when it is no symlink, is ours and nobody
 * else can write to it, and every access goes through one fd of it, so a
 * path swapped meanwhile leads nowhere.  An entry is written only when it
 * is at most DEBUGCACHE_MAX_BYTES and leaves a twentieth of its file
 * system free.
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
#include <sys/statvfs.h>
#include <unistd.h>

#include "symbolize/symbolize_internal.h"

#define DEBUGCACHE_MAX_BYTES (1ULL << 30) /* a bigger entry is not written */

/* An fd of the cache directory when it is safe to use, else -1. */
static int cache_dir(char *buf, size_t len)
{
	struct stat st;
	int dfd;

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
	dfd = open(buf, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (dfd < 0)
		return -1;
	if (fstat(dfd, &st) < 0 || st.st_uid != geteuid() || (st.st_mode & 022)) {
		close(dfd);
		return -1;
	}
	return dfd;
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
static int open_entry(int dfd, const char *name, const char *hex)
{
	struct stat st;
	int fd = openat(dfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
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

/* A new file in the cache directory, created, never opened: O_EXCL. */
static int create_temp(int dfd, const char *hex, char *tmp, size_t len)
{
	unsigned int r;
	int i, fd;

	for (i = 0; i < 100; i++) {
		if (getentropy(&r, sizeof(r)) < 0)
			r = (unsigned int)getpid() * 2654435761u + (unsigned int)i;
		snprintf(tmp, len, ".%s.%08x", hex, r);
		fd = openat(dfd, tmp, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
		if (fd >= 0 || errno != EEXIST)
			return fd;
	}
	return -1;
}

/* Sections xprof never reads (macros, name indexes): left out of an
 * entry rather than inflated and written, as SHT_NOBITS, which libdw
 * skips.  Location lists are kept: the Python interpreter loop's
 * next_instr is found through them. */
static int unused_section(Elf *elf, size_t shstrndx, const GElf_Shdr *shdr)
{
	static const char *const unused[] = {
		".debug_macro", ".debug_macinfo",
		".debug_pubnames", ".debug_pubtypes", ".debug_gnu_pubnames", ".debug_gnu_pubtypes",
	};
	const char *name = elf_strptr(elf, shstrndx, shdr->sh_name);
	size_t i;

	for (i = 0; name && i < sizeof(unused) / sizeof(unused[0]); i++)
		if (strcmp(name, unused[i]) == 0)
			return 1;
	return 0;
}

static int drop_section(Elf_Scn *scn, GElf_Shdr *shdr)
{
	Elf_Data *d = NULL;

	while ((d = elf_getdata(scn, d)) != NULL) {
		d->d_buf = NULL;
		d->d_size = 0;
	}
	shdr->sh_type = SHT_NOBITS;
	shdr->sh_flags &= ~(GElf_Xword)SHF_COMPRESSED;
	shdr->sh_size = 0;
	return gelf_update_shdr(scn, shdr) ? 0 : -1;
}

/* Writes a copy of the debug file at fd with every section decompressed
 * (those xprof reads) or left out (unused_section). */
static int write_entry(int fd, int dfd, const char *name, const char *hex)
{
	char tmp[160];
	int out, ok = 0;
	Elf *elf = NULL;
	Elf_Scn *scn = NULL;

	out = create_temp(dfd, hex, tmp, sizeof(tmp));
	if (out < 0)
		return -1;
	if (copy_file(fd, out) == 0 && (elf = elf_begin(out, ELF_C_RDWR, NULL)) != NULL) {
		size_t shstrndx = 0;
		ok = elf_getshdrstrndx(elf, &shstrndx) == 0;
		while (ok && (scn = elf_nextscn(elf, scn)) != NULL) {
			GElf_Shdr shdr;
			if (!gelf_getshdr(scn, &shdr) || shdr.sh_type == SHT_NOBITS)
				continue;
			if (unused_section(elf, shstrndx, &shdr))
				ok = drop_section(scn, &shdr) == 0;
			else if (shdr.sh_flags & SHF_COMPRESSED)
				ok = elf_compress(scn, 0, 0) >= 0;
		}
		ok = ok && elf_update(elf, ELF_C_WRITE) >= 0;
		elf_end(elf);
	}
	if (ok && fchmod(out, 0600) == 0 && close(out) == 0 && renameat(dfd, tmp, dfd, name) == 0)
		return open_entry(dfd, name, hex);
	if (out >= 0)
		close(out);
	unlinkat(dfd, tmp, 0);
	return -1;
}

/* Room for an entry of size bytes: a twentieth of the file system stays free. */
static int room_for(int dfd, uint64_t size)
{
	struct statvfs vs;

	if (fstatvfs(dfd, &vs) < 0)
		return 0;
	return (uint64_t)vs.f_bavail * vs.f_frsize >= size + (uint64_t)vs.f_blocks * vs.f_frsize / 20;
}

int xp_debugcache_open(int fd, const char *build_id, char **path_out)
{
	char dir[4096], name[160];
	struct stat st;
	Elf *elf;
	uint64_t size;
	int cfd, dfd;

	*path_out = NULL;
	if (!build_id || strlen(build_id) > 128 || !is_hex(build_id))
		return -1;
	elf = elf_begin(fd, ELF_C_READ_MMAP, NULL);
	if (!elf)
		return -1;
	size = elf_kind(elf) == ELF_K_ELF ? compressed_size(elf) : 0;
	elf_end(elf);
	/* the entry: the file with its compressed sections inflated */
	if (size == 0 || size > DEBUGCACHE_MAX_BYTES || fstat(fd, &st) < 0 ||
	    (uint64_t)st.st_size + size > DEBUGCACHE_MAX_BYTES)
		return -1; /* nothing to gain, or too big to copy */
	if ((dfd = cache_dir(dir, sizeof(dir))) < 0)
		return -1;
	/* ".2": entries with their location lists; the first entries
	 * ("ID.debug") left them out, and go when their successor is written */
	snprintf(name, sizeof(name), "%s.2.debug", build_id);
	cfd = open_entry(dfd, name, build_id);
	if (cfd < 0 && room_for(dfd, (uint64_t)st.st_size + size)) {
		char old[160];
		cfd = write_entry(fd, dfd, name, build_id);
		snprintf(old, sizeof(old), "%s.debug", build_id);
		if (cfd >= 0)
			unlinkat(dfd, old, 0);
	}
	close(dfd);
	if (cfd >= 0 && asprintf(path_out, "%s/%s", dir, name) < 0) {
		*path_out = NULL;
		close(cfd);
		return -1;
	}
	return cfd;
}
