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

/* JIT code's names from the target's /tmp/perf-PID.map (perfmap.c). */
#define XP_PERFMAP_RECHECK_NS 1000000000LL /* a grown file is read again at most this often */
struct xp_perfmap;
struct xp_jit_stats;
/* For pid (its own pid and root are looked up); nothing is read yet. */
struct xp_perfmap *xp_perfmap_new(pid_t pid);
void xp_perfmap_free(struct xp_perfmap *m);
/* Reads what was appended since the last read (all of it when the file
 * was replaced), unless the last look was under XP_PERFMAP_RECHECK_NS ago
 * and !force.  1 when the names changed, else 0. */
int xp_perfmap_refresh(struct xp_perfmap *m, int force);
/* Whole lines of buf parsed into m (at_eof: a last line without its
 * newline too); the bytes consumed. */
size_t xp_perfmap_parse(struct xp_perfmap *m, const char *buf, size_t len, int at_eof);
/* The jitdump the target maps (its mapping from maps): read from now on. */
struct xp_map;
void xp_perfmap_set_jitdump(struct xp_perfmap *m, const struct xp_map *map);
/* The name of the function covering pc and its bounds, or NULL. */
const char *xp_perfmap_lookup(const struct xp_perfmap *m, uint64_t pc, uint64_t *start, uint64_t *end);
/* Code bytes of the function holding addr, as the jitdump that named it
 * recorded them (the memory itself may be gone or reused by the time a
 * sample is unwound).  0, or -errno (-ENOENT: no jitdump code there). */
int xp_perfmap_code(const struct xp_perfmap *m, uint64_t addr, void *buf, size_t len);
/* Bumped whenever the entries change. */
unsigned xp_perfmap_gen(const struct xp_perfmap *m);
void xp_perfmap_stats(const struct xp_perfmap *m, struct xp_jit_stats *st);

/* A PLT stub's name, "realloc@plt", for link-time address addr of the
 * module's ELF (plt.c): 1 with *name (malloc'd) and the stub's start in
 * *entry, 0 when addr is in no named stub (x86-64 only), -ENOMEM. */
#include <libelf.h>
int xp_plt_name(Elf *elf, uint64_t addr, char **name, uint64_t *entry);

#endif
