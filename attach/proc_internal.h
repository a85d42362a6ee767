/* Private to attach/: small /proc helpers shared by its .c files. */
#ifndef XPROF_ATTACH_PROC_INTERNAL_H
#define XPROF_ATTACH_PROC_INTERNAL_H

#include <stddef.h>

/* Reads at most len-1 bytes and NUL-terminates; bytes read or -errno. */
int xp_read_small_file(const char *path, char *buf, size_t len);

/* Parses /proc/.../stat: comm (bounded, may contain ') '), state letter,
 * and optionally the flags field. */
int xp_parse_stat(const char *buf, char *comm, size_t commlen, char *state, unsigned long *flags);

#endif
