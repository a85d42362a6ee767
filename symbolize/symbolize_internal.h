/* Private to symbolize/. */
#ifndef XPROF_SYMBOLIZE_INTERNAL_H
#define XPROF_SYMBOLIZE_INTERNAL_H

#include <stdint.h>

/* An fd of a decompressed copy of the debug file at fd, from or into the
 * cache, with its path in *path_out; -1 to go on with fd itself (nothing
 * compressed, no cache directory, or any failure). */
int xp_debugcache_open(int fd, const char *build_id, char **path_out);


#endif
