/* tests/unit/test_proto.c — unit tests for proto/: interning, encode/check
 * round trips, the checker's refusals on hand-made encodings, and files that
 * go tool pprof itself must accept.  Prints TAP; exits 0 only if all pass.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "proto/profile.h"
#include "proto/profile.pb-c.h"
#include "tests/unit/tap.h"

#define PLAN 57
#define GO "/usr/bin/go"
#define MANY_LOCATIONS 100000

static void test_interning(void)
{
	struct xp_profile *p = xp_profile_new();
	struct xp_pmapping m = { 0x400000, 0x500000, 0, "/usr/bin/prog", "abc123", 1, 0, 0, 0 };
	struct xp_pmapping deleted = m, other = m;
	int64_t f1, f1again, f2, m1, m1again, m1deleted, m2, l1, l1again, l2, l3;
	struct xp_pline lines[2];

	ok(p != NULL, "xp_profile_new returns a profile");
	if (!p)
		return;

	f1 = xp_profile_function(p, "main", "main", "prog.c", 10);
	f1again = xp_profile_function(p, "main", "main", "prog.c", 10);
	f2 = xp_profile_function(p, "work", "work", "prog.c", 20);
	ok(f1 == 1 && f1again == 1, "function interning: first id 1, same arguments same id (%" PRId64 ", %" PRId64 ")",
	   f1, f1again);
	ok(f2 == 2, "a different function gets the next id (%" PRId64 ")", f2);
	ok(xp_profile_function(p, "main", "main", "prog.c", 11) == 3,
	   "start_line is part of the function key");

	deleted.file = "/usr/bin/prog (deleted)";
	other.start = 0x600000;
	other.limit = 0x601000;
	m1 = xp_profile_mapping(p, &m);
	m1again = xp_profile_mapping(p, &m);
	m1deleted = xp_profile_mapping(p, &deleted);
	m2 = xp_profile_mapping(p, &other);
	ok(m1 == 1 && m1again == 1, "mapping interning: first id 1, same key same id");
	ok(m1deleted == 1, "\" (deleted)\" is stripped before interning the mapping (%" PRId64 ")",
	   m1deleted);
	ok(m2 == 2, "a different address range is a new mapping (%" PRId64 ")", m2);

	lines[0] = (struct xp_pline){ (uint64_t)f2, 21 };
	lines[1] = (struct xp_pline){ (uint64_t)f1, 12 };
	l1 = xp_profile_location(p, 1, 0x401000, lines, 2);
	l1again = xp_profile_location(p, 1, 0x401000, lines, 2);
	l2 = xp_profile_location(p, 1, 0x401000, lines, 1);
	l3 = xp_profile_location(p, 0, 0x401000, lines, 2);
	ok(l1 == 1 && l1again == 1, "location interning: first id 1, same key same id");
	ok(l2 == 2 && l3 == 3, "different lines or mapping make new locations (%" PRId64 ", %" PRId64 ")",
	   l2, l3);

	lines[0].function_id = 99;
	ok(xp_profile_location(p, 1, 0x402000, lines, 1) == -EINVAL,
	   "a location naming a missing function is refused");
	lines[0].function_id = 1;
	ok(xp_profile_location(p, 7, 0x402000, lines, 1) == -EINVAL,
	   "a location naming a missing mapping is refused");
	xp_profile_free(p);
}

/* 100k distinct locations: ids must be 1..N in order and re-interning must
 * find each one again (a linear scan would take minutes here). */
static void test_many_locations(void)
{
	struct xp_profile *p = xp_profile_new();
	int64_t fn, map;
	int in_order = 1, found_again = 1;
	struct xp_pmapping m = { 0x400000, 0x10400000, 0, "/bin/big", NULL, 1, 1, 0, 0 };
	char why[256];
	uint8_t *buf = NULL;
	size_t len = 0;

	fn = xp_profile_function(p, "f", "f", "f.c", 1);
	map = xp_profile_mapping(p, &m);
	for (uint64_t i = 0; i < MANY_LOCATIONS; i++) {
		struct xp_pline line = { (uint64_t)fn, (int64_t)i };

		if (xp_profile_location(p, (uint64_t)map, 0x400000 + i * 4, &line, 1) != (int64_t)i + 1)
			in_order = 0;
	}
	for (uint64_t i = 0; i < MANY_LOCATIONS; i++) {
		struct xp_pline line = { (uint64_t)fn, (int64_t)i };

		if (xp_profile_location(p, (uint64_t)map, 0x400000 + i * 4, &line, 1) != (int64_t)i + 1)
			found_again = 0;
	}
	ok(in_order, "%d distinct locations get ids 1..%d in order", MANY_LOCATIONS, MANY_LOCATIONS);
	ok(found_again, "re-interning %d locations returns the same ids", MANY_LOCATIONS);
	ok(xp_profile_add_sample_type(p, "samples", "count") == 0 &&
	   xp_profile_encode(p, &buf, &len) == 0 &&
	   xp_profile_check_encoded(buf, len, why, sizeof(why)) == 0,
	   "a profile with %d locations encodes and checks", MANY_LOCATIONS);
	free(buf);
	xp_profile_free(p);
}

/* The profile used by the round-trip and file tests: main -> work, with
 * work's frame holding an inlined helper, and a string and a numeric label. */
static struct xp_profile *sample_profile(void)
{
	struct xp_profile *p = xp_profile_new();
	struct xp_pmapping m = { 0x400000, 0x500000, 0x1000, "/nonexistent/xprof-test (deleted)",
				 "0123abcd", 1, 1, 1, 1 };
	struct xp_plabel labels[2] = {
		{ "thread", "worker-7", 0, NULL },
		{ "bytes", NULL, 4096, "bytes" },
	};
	uint64_t locs[2];
	int64_t values[2] = { 3, 30000000 };
	int64_t map, fmain, fwork, fhelper;
	struct xp_pline inl[2], caller;

	if (!p)
		return NULL;
	if (xp_profile_add_sample_type(p, "samples", "count") ||
	    xp_profile_add_sample_type(p, "cpu", "nanoseconds") ||
	    xp_profile_set_period(p, "cpu", "nanoseconds", 10000000) ||
	    xp_profile_add_comment(p, "made by test_proto"))
		goto fail;
	xp_profile_set_time(p, 1700000000000000000LL, 2000000000LL);
	map = xp_profile_mapping(p, &m);
	fmain = xp_profile_function(p, "xptest_main", "xptest_main", "prog.c", 5);
	fwork = xp_profile_function(p, "xptest_work", "xptest_work", "prog.c", 40);
	fhelper = xp_profile_function(p, "xptest_inlined_helper", "xptest_inlined_helper", "prog.c", 30);
	if (map < 1 || fmain < 1 || fwork < 1 || fhelper < 1)
		goto fail;
	/* Innermost first: the helper was inlined into work. */
	inl[0] = (struct xp_pline){ (uint64_t)fhelper, 33 };
	inl[1] = (struct xp_pline){ (uint64_t)fwork, 44 };
	caller = (struct xp_pline){ (uint64_t)fmain, 7 };
	locs[0] = (uint64_t)xp_profile_location(p, (uint64_t)map, 0x401234, inl, 2);
	locs[1] = (uint64_t)xp_profile_location(p, (uint64_t)map, 0x400abc, &caller, 1);
	if ((int64_t)locs[0] < 1 || (int64_t)locs[1] < 1)
		goto fail;
	if (xp_profile_add_sample(p, locs, 2, values, 2, labels, 2))
		goto fail;
	return p;
fail:
	xp_profile_free(p);
	return NULL;
}

static void test_builder_round_trip(void)
{
	struct xp_profile *p = sample_profile();
	Perftools__Profiles__Profile *d = NULL;
	uint64_t locs[1] = { 1 };
	int64_t one[1] = { 1 }, two[2] = { 1, 2 };
	uint8_t *buf = NULL;
	size_t len = 0;
	char why[256] = "";
	int err;

	ok(p != NULL, "sample profile builds");
	if (!p)
		return;
	err = xp_profile_add_sample(p, locs, 1, one, 1, NULL, 0);
	ok(err == -EINVAL && xp_profile_sample_count(p) == 1,
	   "add_sample with 1 value for 2 sample types is refused (%d)", err);
	locs[0] = 42;
	ok(xp_profile_add_sample(p, locs, 1, two, 2, NULL, 0) == -EINVAL,
	   "add_sample naming a missing location is refused");
	ok(xp_profile_add_sample_type(p, "extra", "count") == -EINVAL,
	   "a sample type cannot be added once samples exist");

	err = xp_profile_encode(p, &buf, &len);
	ok(err == 0 && len > 0, "encode succeeds (%zu bytes)", len);
	err = xp_profile_check_encoded(buf, len, why, sizeof(why));
	ok(err == 0, "encoded profile passes the check (%s)", err ? why : "ok");

	d = perftools__profiles__profile__unpack(NULL, len, buf);
	ok(d && d->n_string_table > 0 && !strcmp(d->string_table[0], ""),
	   "decoded string_table[0] is \"\"");
	ok(d && d->n_mapping == 1 && d->mapping[0]->id == 1 &&
	   !strcmp(d->string_table[d->mapping[0]->filename], "/nonexistent/xprof-test") &&
	   !strcmp(d->string_table[d->mapping[0]->build_id], "0123abcd") &&
	   d->mapping[0]->has_functions && d->mapping[0]->has_inline_frames,
	   "mapping decodes with stripped filename, build id and flags");
	ok(d && d->n_sample == 1 && d->sample[0]->n_value == 2 && d->sample[0]->value[1] == 30000000 &&
	   d->sample[0]->n_location_id == 2 && d->sample[0]->location_id[0] == 1 &&
	   d->sample[0]->n_label == 2,
	   "sample decodes with its values, locations and labels");
	ok(d && d->n_location == 2 && d->location[0]->n_line == 2 &&
	   d->location[0]->line[0]->function_id == 3 && d->location[0]->line[1]->function_id == 2,
	   "inline location keeps its lines innermost first");
	ok(d && d->time_nanos == 1700000000000000000LL && d->duration_nanos == 2000000000LL &&
	   d->period == 10000000 && d->period_type &&
	   !strcmp(d->string_table[d->period_type->type], "cpu") && d->n_comment == 1,
	   "time, duration, period and comment decode");
	if (d)
		perftools__profiles__profile__free_unpacked(d, NULL);
	free(buf);
	xp_profile_free(p);

	p = xp_profile_new();
	buf = NULL;
	ok(p && xp_profile_encode(p, &buf, &len) == 0 &&
	   xp_profile_check_encoded(buf, len, why, sizeof(why)) == 0,
	   "an empty profile encodes and checks");
	free(buf);
	xp_profile_free(p);
}

/* A small valid profile made directly with protobuf-c, to be broken one
 * field at a time.  It points into itself: build it in place. */
struct crafted {
	Perftools__Profiles__Profile prof;
	Perftools__Profiles__ValueType vt[2], *vtp[2];
	Perftools__Profiles__Mapping map, *mapp[1];
	Perftools__Profiles__Function fn, *fnp[1];
	Perftools__Profiles__Line line, *linep[1];
	Perftools__Profiles__Location loc[2], *locp[2];
	Perftools__Profiles__Label label, *labelp[1];
	Perftools__Profiles__Sample sample, *samplep[1];
	uint64_t sample_locs[2];
	int64_t values[2];
	char *strings[6];
};

static void craft_valid(struct crafted *c)
{
	static const char *const strings[] = { "", "samples", "count", "xptest_fn", "/bin/prog", "k" };

	memset(c, 0, sizeof(*c));
	memcpy(c->strings, strings, sizeof(strings));
	perftools__profiles__profile__init(&c->prof);
	c->prof.n_string_table = 6;
	c->prof.string_table = c->strings;
	for (int i = 0; i < 2; i++) {
		perftools__profiles__value_type__init(&c->vt[i]);
		c->vt[i].type = 1;
		c->vt[i].unit = 2;
		c->vtp[i] = &c->vt[i];
	}
	c->prof.n_sample_type = 2;
	c->prof.sample_type = c->vtp;

	perftools__profiles__mapping__init(&c->map);
	c->map.id = 1;
	c->map.memory_start = 0x1000;
	c->map.memory_limit = 0x2000;
	c->map.filename = 4;
	c->mapp[0] = &c->map;
	c->prof.n_mapping = 1;
	c->prof.mapping = c->mapp;

	perftools__profiles__function__init(&c->fn);
	c->fn.id = 1;
	c->fn.name = 3;
	c->fnp[0] = &c->fn;
	c->prof.n_function = 1;
	c->prof.function = c->fnp;

	perftools__profiles__line__init(&c->line);
	c->line.function_id = 1;
	c->line.line = 10;
	c->linep[0] = &c->line;
	for (int i = 0; i < 2; i++) {
		perftools__profiles__location__init(&c->loc[i]);
		c->loc[i].id = (uint64_t)i + 1;
		c->loc[i].mapping_id = 1;
		c->loc[i].address = 0x1100 + (uint64_t)i * 0x10;
		c->loc[i].n_line = 1;
		c->loc[i].line = c->linep;
		c->locp[i] = &c->loc[i];
	}
	c->prof.n_location = 2;
	c->prof.location = c->locp;

	perftools__profiles__label__init(&c->label);
	c->label.key = 5;
	c->label.str = 3;
	c->labelp[0] = &c->label;
	perftools__profiles__sample__init(&c->sample);
	c->sample_locs[0] = 1;
	c->sample_locs[1] = 2;
	c->sample.n_location_id = 2;
	c->sample.location_id = c->sample_locs;
	c->values[0] = 1;
	c->values[1] = 2;
	c->sample.n_value = 2;
	c->sample.value = c->values;
	c->sample.n_label = 1;
	c->sample.label = c->labelp;
	c->samplep[0] = &c->sample;
	c->prof.n_sample = 1;
	c->prof.sample = c->samplep;
}

/* want NULL: expect acceptance; else the exact message. */
static void check_crafted(struct crafted *c, const char *want, const char *desc)
{
	size_t len = perftools__profiles__profile__get_packed_size(&c->prof);
	uint8_t *buf = malloc(len ? len : 1);
	char why[256] = "";
	int err;

	perftools__profiles__profile__pack(&c->prof, buf);
	err = xp_profile_check_encoded(buf, len, why, sizeof(why));
	if (!want)
		ok(err == 0, "%s (%s)", desc, err ? why : "accepted");
	else
		ok(err == -EINVAL && !strcmp(why, want), "%s: \"%s\"", desc, why);
	free(buf);
}

static void test_check_rejects(void)
{
	struct crafted c;
	char why[256] = "";
	static const uint8_t garbage[] = { 0xff, 0xff, 0xff, 0xff, 0x0f, 0x22 };
	static const uint8_t truncated_gzip[] = { 0x1f, 0x8b, 0x08, 0x00, 0x00, 0x00 };
	int err;

	craft_valid(&c);
	check_crafted(&c, NULL, "hand-made valid profile is accepted");

	craft_valid(&c);
	c.prof.n_string_table = 0;
	c.prof.n_mapping = c.prof.n_function = c.prof.n_location = c.prof.n_sample = 0;
	c.prof.n_sample_type = 0;
	check_crafted(&c, "profile has no string table", "missing string table is refused");

	craft_valid(&c);
	c.strings[0] = "x";
	check_crafted(&c, "string_table[0] is \"x\", want \"\"", "string_table[0] != \"\" is refused");

	craft_valid(&c);
	c.fn.id = 0;
	check_crafted(&c, "function 0 has id 0", "function id 0 is refused");

	craft_valid(&c);
	c.loc[1].id = 0;
	check_crafted(&c, "location 1 has id 0", "location id 0 is refused");

	craft_valid(&c);
	c.map.id = 0;
	check_crafted(&c, "mapping 0 has id 0", "mapping id 0 is refused");

	craft_valid(&c);
	c.loc[1].id = 1;
	check_crafted(&c, "duplicate location id 1", "duplicate location id is refused");

	craft_valid(&c);
	c.line.function_id = 9;
	check_crafted(&c, "location id 1 line 0 has missing function id 9",
		      "a line naming a missing function is refused");

	craft_valid(&c);
	c.loc[0].mapping_id = 7;
	check_crafted(&c, "location id 1 has missing mapping id 7",
		      "a location naming a missing mapping is refused (stricter than pprof)");

	craft_valid(&c);
	c.sample.n_value = 1;
	check_crafted(&c, "sample 0 has 1 values, want 2", "mismatched value count is refused");

	craft_valid(&c);
	c.sample_locs[1] = 5;
	check_crafted(&c, "sample 0 has missing location id 5",
		      "a sample naming a missing location is refused");

	craft_valid(&c);
	c.fn.name = 99;
	check_crafted(&c, "function id 1 name has string index 99, table has 6 strings",
		      "an out-of-range string index is refused");

	craft_valid(&c);
	c.label.num = 5;
	check_crafted(&c, "sample 0 label 0 has both str and num",
		      "a label with both str and num is refused");

	err = xp_profile_check_encoded(garbage, sizeof(garbage), why, sizeof(why));
	ok(err == -EINVAL && !strncmp(why, "cannot decode profile protobuf", 30),
	   "garbage bytes are refused: \"%s\"", why);
	err = xp_profile_check_encoded(truncated_gzip, sizeof(truncated_gzip), why, sizeof(why));
	ok(err == -EINVAL && !strcmp(why, "gzip data is truncated"),
	   "truncated gzip is refused: \"%s\"", why);
}

static int have_go(void)
{
	return access(GO, X_OK) == 0;
}

/* Runs go tool pprof -raw on path; returns its exit status and output. */
static int pprof_raw(const char *path, const char *dir, char **out)
{
	char *cmd = NULL, *outpath = NULL;
	int status;

	if (asprintf(&outpath, "%s/pprof.out", dir) < 0)
		return -1;
	if (asprintf(&cmd, "HOME='%s' " GO " tool pprof -raw '%s' >'%s' 2>&1", dir, path, outpath) < 0) {
		free(outpath);
		return -1;
	}
	status = system(cmd);
	*out = read_file(outpath, NULL);
	unlink(outpath);
	free(cmd);
	free(outpath);
	return status == -1 || !WIFEXITED(status) ? -1 : WEXITSTATUS(status);
}

/* The -raw listing prints a location as "ID: ADDR M=... FUNC FILE:LINE ..."
 * and each further inlined line on a continuation line of its own. */
static int inline_frames_listed(const char *raw)
{
	const char *loc = strstr(raw, "0x401234");
	const char *eol, *next_eol;

	if (!loc)
		return 0;
	eol = strchr(loc, '\n');
	if (!eol)
		return 0;
	next_eol = strchr(eol + 1, '\n');
	if (!next_eol)
		return 0;
	return memmem(loc, (size_t)(eol - loc), "xptest_inlined_helper", 21) &&
	       memmem(eol + 1, (size_t)(next_eol - eol - 1), "xptest_work", 11) &&
	       !memmem(eol + 1, (size_t)(next_eol - eol - 1), "0x", 2);
}

static void test_write(const char *dir)
{
	struct xp_profile *p = sample_profile();
	char *path = NULL, *missing = NULL, *subdir = NULL, *raw = NULL, *data;
	char why[256] = "";
	struct stat st;
	sigset_t mask;
	size_t len = 0;
	int err, status;

	if (!p || asprintf(&path, "%s/cpu.pb.gz", dir) < 0 ||
	    asprintf(&missing, "%s/no-such-dir/cpu.pb.gz", dir) < 0 ||
	    asprintf(&subdir, "%s/adir", dir) < 0) {
		ok(0, "set up write tests");
		return;
	}

	ok(xp_output_writable(path, NULL, 0) == 0, "xp_output_writable accepts a new file in a writable dir");
	err = xp_profile_write(p, path);
	ok(err == 0, "xp_profile_write succeeds (%d)", err);
	data = read_file(path, &len);
	ok(data && len > 2 && (uint8_t)data[0] == 0x1f && (uint8_t)data[1] == 0x8b,
	   "written file is gzip (%zu bytes)", len);
	err = data ? xp_profile_check_encoded((uint8_t *)data, len, why, sizeof(why)) : -1;
	ok(err == 0, "written file passes the check after gunzip (%s)", err ? why : "ok");
	free(data);
	ok(stat(path, &st) == 0 && (st.st_mode & 07777) == 0644, "written file has mode 0644");
	ok(count_entries(dir, ".cpu.pb.gz.") == 0, "no temp file is left after a write");
	sigprocmask(SIG_BLOCK, NULL, &mask);
	ok(!sigismember(&mask, SIGINT) && !sigismember(&mask, SIGTERM),
	   "the signal mask is restored after writing");

	if (!have_go()) {
		skip("no " GO, "go tool pprof -raw accepts the file");
		skip("no " GO, "pprof -raw lists the function names and labels");
		skip("no " GO, "pprof -raw lists both inline frames of one location");
	} else {
		status = pprof_raw(path, dir, &raw);
		ok(status == 0 && raw, "go tool pprof -raw accepts the file (exit %d)", status);
		if (status != 0 && raw)
			printf("# %s\n", raw);
		ok(raw && strstr(raw, "xptest_main") && strstr(raw, "xptest_work") &&
		   strstr(raw, "thread:[worker-7]") && strstr(raw, "bytes:[4096 bytes]"),
		   "pprof -raw lists the function names and labels");
		ok(raw && inline_frames_listed(raw),
		   "pprof -raw lists both inline frames of one location");
		free(raw);
	}

	/* Overwriting an existing profile replaces it whole. */
	ok(xp_profile_write(p, path) == 0 && count_entries(dir, ".cpu.pb.gz.") == 0,
	   "writing over an existing file succeeds and leaves no temp file");

	err = xp_profile_write(p, missing);
	ok(err == -ENOENT && access(missing, F_OK) < 0 && count_entries(dir, "no-such-dir") == 0,
	   "writing into a missing directory fails with -ENOENT and creates nothing (%d)", err);
	ok(xp_output_writable(missing, NULL, 0) == -ENOENT, "xp_output_writable says -ENOENT for a missing dir");

	mkdir(subdir, 0755);
	err = xp_profile_write(p, subdir);
	ok(err < 0 && count_entries(dir, ".adir.") == 0 && stat(subdir, &st) == 0 && S_ISDIR(st.st_mode),
	   "writing over a directory fails (%d) and leaves no temp file", err);
	ok(xp_output_writable(subdir, NULL, 0) == -EISDIR, "xp_output_writable says -EISDIR for a directory");
	free(missing);
	if (asprintf(&missing, "%s/cpu.pb.gz/x", dir) < 0)
		missing = NULL;
	ok(missing && xp_output_writable(missing, NULL, 0) == -ENOTDIR,
	   "xp_output_writable says -ENOTDIR when the parent is a file");

	unlink(path);
	rmdir(subdir);
	free(path);
	free(missing);
	free(subdir);
	xp_profile_free(p);
}

int main(void)
{
	char dir[] = "/tmp/test_proto.XXXXXX";

	printf("1..%d\n", PLAN);
	test_interning();
	test_many_locations();
	test_builder_round_trip();
	test_check_rejects();
	if (!mkdtemp(dir)) {
		ok(0, "mkdtemp: %s", strerror(errno));
	} else {
		test_write(dir);
		rmdir(dir);
	}
	if (test_no != PLAN) {
		printf("# planned %d tests but ran %d\n", PLAN, test_no);
		return 1;
	}
	return failures ? 1 : 0;
}
