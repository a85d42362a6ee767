/* Private to symbolize/. */
#ifndef XPROF_SYMBOLIZE_INTERNAL_H
#define XPROF_SYMBOLIZE_INTERNAL_H

#include <stdint.h>

/* An fd of a decompressed copy of the debug file at fd, from or into the
 * cache, with its path in *path_out; -1 to go on with fd itself (nothing
 * compressed, no cache directory, or any failure). */
int xp_debugcache_open(int fd, const char *build_id, char **path_out);


/* path resolved inside /proc/PID/root (symlinks and ".." cannot leave
 * it): an fd, or -errno. */
#include <sys/types.h>
int xp_open_in_root(pid_t pid, const char *path);
/* 1 when fd is the regular file of that device and inode (as /proc/PID/maps
 * gives them), else 0. */
int xp_fd_is_file(int fd, unsigned major, unsigned minor, uint64_t inode);

#endif
