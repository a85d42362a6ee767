/* proto/ — the pprof profile model and its writer.
 *
 * A builder interns strings, functions, locations and mappings the way
 * pprof's own profile.go keeps them, encodes with protobuf-c code generated
 * from proto/profile.proto, checks validity in the spirit of pprof's
 * CheckValid, and writes gzip atomically (temp file + rename); the atomic
 * writer is public for cmd/'s other outputs.
 *
 * Invariants of a built profile:
 *   - string_table[0] == "" and exists;
 *   - every id (mapping, location, function) is nonzero and unique per kind;
 *   - every sample has exactly as many values as there are sample types;
 *   - every location_id of a sample names a location, every line a function;
 *   - inline frames are several Lines of one Location, innermost first.
 * All functions return 0 (or an id > 0) on success and -errno on failure.
 */
#ifndef XPROF_PROTO_PROFILE_H
#define XPROF_PROTO_PROFILE_H

#include <stddef.h>
#include <stdint.h>

struct xp_profile;

/* A mapping as the builder takes it; strings are copied. */
struct xp_pmapping {
	uint64_t start, limit, offset;
	const char *file;     /* " (deleted)" suffix is stripped */
	const char *build_id; /* lowercase hex, or NULL */
	int has_functions, has_filenames, has_line_numbers, has_inline_frames;
};

/* One Line of a Location. */
struct xp_pline {
	uint64_t function_id;
	int64_t line;
};

/* A label: str when str != NULL, else num (with optional num_unit). */
struct xp_plabel {
	const char *key;
	const char *str;
	int64_t num;
	const char *num_unit;
};

struct xp_profile *xp_profile_new(void);
void xp_profile_free(struct xp_profile *p);

int xp_profile_add_sample_type(struct xp_profile *p, const char *type, const char *unit);
int xp_profile_set_period(struct xp_profile *p, const char *type, const char *unit, int64_t period);
void xp_profile_set_time(struct xp_profile *p, int64_t time_nanos, int64_t duration_nanos);
int xp_profile_add_comment(struct xp_profile *p, const char *comment);
int xp_profile_set_default_sample_type(struct xp_profile *p, const char *type);

/* Interned: the same arguments give the same id.  Return id > 0 or -errno. */
int64_t xp_profile_mapping(struct xp_profile *p, const struct xp_pmapping *m);
int64_t xp_profile_function(struct xp_profile *p, const char *name, const char *system_name,
			    const char *filename, int64_t start_line);
/* mapping_id may be 0 (no mapping).  Interned by (mapping_id, address, lines). */
int64_t xp_profile_location(struct xp_profile *p, uint64_t mapping_id, uint64_t address,
			    const struct xp_pline *lines, size_t nlines);

/* locs leaf first; values: one per sample type. */
int xp_profile_add_sample(struct xp_profile *p, const uint64_t *locs, size_t nlocs,
			  const int64_t *values, size_t nvalues,
			  const struct xp_plabel *labels, size_t nlabels);

size_t xp_profile_sample_count(const struct xp_profile *p);

/* Serialize (uncompressed protobuf).  *buf is malloc'd. */
int xp_profile_encode(const struct xp_profile *p, uint8_t **buf, size_t *len);

/* Check an encoded profile (gzipped or not) as pprof would: returns 0 when
 * valid, else -EINVAL with a one-line reason in err. */
int xp_profile_check_encoded(const uint8_t *buf, size_t len, char *err, size_t errlen);

/* Writes len bytes where path names: "-" is standard output; a character
 * device or a FIFO is written in place (opened without O_CREAT, never
 * replaced); a regular file or a missing one is written atomically, to a
 * temp file created O_EXCL|O_NOFOLLOW in its directory (mode 0644, with the
 * signals that end xprof blocked while it exists) renamed over it, so on
 * failure nothing is left at path or at the temp name.  Symlinks are
 * resolved one at a time, and one in a sticky world-writable directory is
 * followed only when we or the directory's owner own it (the kernel's
 * fs.protected_symlinks rule); a directory, a block device or a socket is
 * refused.  0 or -errno. */
int xp_write_file_atomic(const char *path, const void *buf, size_t len);

/* A one-shot command's output is its result: once written in full (a
 * regular file renamed into place, or every byte to a pipe or device),
 * SIGINT, SIGTERM, SIGHUP, SIGQUIT and SIGPIPE stay blocked for the rest of
 * the process, so a signal that comes after the run completed no longer
 * ends it with a signal status.  xp_write_completes_run turns that on for
 * the writes that follow; xp_write_hold_signals blocks them now (after a
 * text dump). */
void xp_write_completes_run(void);
void xp_write_hold_signals(void);

/* Encode, check and gzip into *gz (malloc'd): what a server sends. */
int xp_profile_gzip(const struct xp_profile *p, uint8_t **gz, size_t *gzlen);

/* Encode, check, gzip and write with xp_write_file_atomic. */
int xp_profile_write(const struct xp_profile *p, const char *path);

/* Fails early (before any work) when path cannot be written by the rules
 * of xp_write_file_atomic: its directory missing or not writable, path a
 * directory, a refused symlink or file type.  -errno, with a reason in why
 * (when not NULL) for the refusals strerror would not explain, else "". */
int xp_output_writable(const char *path, char *why, size_t whylen);

/* ---- flame graphs (proto/flame.c): collapsed ("folded") stacks for
 * flamegraph.pl, inferno and speedscope, and a self-contained interactive
 * SVG flame graph (search, zoom), beside the pprof writer. ---- */

/* One distinct stack and how many samples it had. */
struct xp_flame_stack {
	const char *const *frames; /* function names, ROOT FIRST (the reverse of pprof) */
	size_t nframes;
	uint64_t value;
};

/* Writes "root;caller;leaf 42\n" per stack, atomically.  Names are made
 * safe for the format: ';' becomes ':' and control characters (newlines,
 * tabs) spaces; spaces inside names (C++) stay, since consumers split a
 * line at its last space.  0 or -errno. */
int xp_folded_write(const char *path, const struct xp_flame_stack *v, size_t n);

/* Writes an interactive SVG flame graph, atomically.  title: shown on top;
 * unit: what a value counts ("samples").  0 or -errno. */
int xp_flamegraph_write(const char *path, const char *title, const char *unit,
			const struct xp_flame_stack *v, size_t n);

#endif
