/* Private to symbolize/. */
#ifndef XPROF_SYMBOLIZE_INTERNAL_H
#define XPROF_SYMBOLIZE_INTERNAL_H

#include <stdint.h>

/* An fd of a decompressed copy of the debug file at fd, from or into the
 * cache, with its path in *path_out; -1 to go on with fd itself (nothing
 * compressed, no cache directory, or any failure). */
int xp_debugcache_open(int fd, const char *build_id, char **path_out);

/* Go's .gopclntab (kept by stripped Go binaries): NULL when elf has none
 * or of a Go version not known here. */
typedef struct Elf Elf;
struct xp_gopclntab;
struct xp_gopclntab *xp_gopclntab_open(Elf *elf);
/* pc: a file address.  0 and the function's name (and file, line when
 * known, entry address), or -1. */
int xp_gopclntab_lookup(const struct xp_gopclntab *t, uint64_t pc, const char **func, const char **file,
			int *line, uint64_t *entry);
void xp_gopclntab_close(struct xp_gopclntab *t);

#endif
