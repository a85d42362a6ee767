/* proto/check.c — validates an encoded profile before anyone relies on it.
 *
 * go tool pprof answers a broken file only with "unrecognized profile
 * format", so we check what its CheckValid checks (and a little more) and
 * say exactly what is wrong, in one lowercase line.
 */
#define ZLIB_CONST
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "proto/profile.h"
#include "proto/profile.pb-c.h"

/* Cap on the decompressed size, so a corrupt or hostile gzip stream cannot
 * make us allocate without bound.  Real profiles are far smaller. */
#define MAX_INFLATED_BYTES ((size_t)1 << 30)

struct checker {
	const Perftools__Profiles__Profile *prof;
	char *err;
	size_t errlen;
};

/* A set of ids; 0 marks an empty slot, which is why id 0 is checked first. */
struct id_set {
	uint64_t *slots;
	size_t mask;
};

static int fail(struct checker *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int fail(struct checker *c, const char *fmt, ...)
{
	va_list ap;

	if (c->err && c->errlen) {
		va_start(ap, fmt);
		vsnprintf(c->err, c->errlen, fmt, ap);
		va_end(ap);
	}
	return -EINVAL;
}

static int fail_nomem(struct checker *c, const char *what)
{
	fail(c, "out of memory %s", what);
	return -ENOMEM;
}

static int gunzip(struct checker *c, const uint8_t *in, size_t inlen, uint8_t **out,
		  size_t *outlen)
{
	z_stream zs;
	uint8_t *buf = NULL;
	size_t cap = 0, used = 0, fed = 0;
	int ret, err;

	memset(&zs, 0, sizeof(zs));
	if (inflateInit2(&zs, 15 + 16) != Z_OK)
		return fail_nomem(c, "starting gunzip");
	for (;;) {
		size_t room;

		if (!zs.avail_in && fed < inlen) {
			size_t chunk = inlen - fed < UINT_MAX ? inlen - fed : UINT_MAX;

			zs.next_in = in + fed;
			zs.avail_in = (uInt)chunk;
			fed += chunk;
		}
		if (used == cap) {
			size_t ncap = cap ? cap * 2 : (inlen < MAX_INFLATED_BYTES / 4 ? inlen * 4 : 0) + 4096;
			uint8_t *grown;

			if (cap >= MAX_INFLATED_BYTES) {
				err = fail(c, "profile inflates to more than %zu bytes", MAX_INFLATED_BYTES);
				goto out_free;
			}
			if (ncap > MAX_INFLATED_BYTES)
				ncap = MAX_INFLATED_BYTES;
			grown = realloc(buf, ncap);
			if (!grown) {
				err = fail_nomem(c, "gunzipping profile");
				goto out_free;
			}
			buf = grown;
			cap = ncap;
		}
		room = cap - used < UINT_MAX ? cap - used : UINT_MAX;
		zs.next_out = buf + used;
		zs.avail_out = (uInt)room;
		ret = inflate(&zs, Z_NO_FLUSH);
		used += room - zs.avail_out;
		if (ret == Z_STREAM_END)
			break;
		/* With room to write, no progress means the input ran out. */
		if (ret == Z_BUF_ERROR && !zs.avail_in && fed == inlen) {
			err = fail(c, "gzip data is truncated");
			goto out_free;
		}
		if (ret != Z_OK && ret != Z_BUF_ERROR) {
			if (ret == Z_MEM_ERROR)
				err = fail_nomem(c, "gunzipping profile");
			else
				err = fail(c, "bad gzip data: %s", zs.msg ? zs.msg : "unknown error");
			goto out_free;
		}
	}
	inflateEnd(&zs);
	*out = buf;
	*outlen = used;
	return 0;

out_free:
	inflateEnd(&zs);
	free(buf);
	return err;
}

static uint64_t mix_id(uint64_t id)
{
	id ^= id >> 33;
	id *= 0xff51afd7ed558ccdULL;
	id ^= id >> 33;
	return id;
}

static int id_set_init(struct id_set *s, size_t n)
{
	size_t cap = 16;

	while (cap < 2 * n) {
		if (cap > SIZE_MAX / 2 / sizeof(*s->slots))
			return -ENOMEM;
		cap *= 2;
	}
	s->slots = calloc(cap, sizeof(*s->slots));
	if (!s->slots)
		return -ENOMEM;
	s->mask = cap - 1;
	return 0;
}

/* 1 when added, 0 when already there.  The set holds at most n ids, half
 * its size, so a probe always ends. */
static int id_set_add(struct id_set *s, uint64_t id)
{
	size_t i;

	for (i = mix_id(id) & s->mask; s->slots[i]; i = (i + 1) & s->mask)
		if (s->slots[i] == id)
			return 0;
	s->slots[i] = id;
	return 1;
}

static int id_set_has(const struct id_set *s, uint64_t id)
{
	if (!id)
		return 0;
	for (size_t i = mix_id(id) & s->mask; s->slots[i]; i = (i + 1) & s->mask)
		if (s->slots[i] == id)
			return 1;
	return 0;
}

/* what names the field, e.g. "sample 3 label 0 key". */
static int check_string(struct checker *c, int64_t idx, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int check_string(struct checker *c, int64_t idx, const char *fmt, ...)
{
	char what[128];
	va_list ap;

	if (idx >= 0 && (uint64_t)idx < c->prof->n_string_table)
		return 0;
	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	return fail(c, "%s has string index %" PRId64 ", table has %zu strings", what, idx,
		    c->prof->n_string_table);
}

static int check_header(struct checker *c)
{
	const Perftools__Profiles__Profile *prof = c->prof;
	const char *first;
	int err;

	if (!prof->n_string_table)
		return fail(c, "profile has no string table");
	first = prof->string_table[0];
	if (first && *first)
		return fail(c, "string_table[0] is \"%.32s\", want \"\"", first);

	if ((err = check_string(c, prof->drop_frames, "drop_frames")) ||
	    (err = check_string(c, prof->keep_frames, "keep_frames")) ||
	    (err = check_string(c, prof->default_sample_type, "default_sample_type")))
		return err;
	for (size_t i = 0; i < prof->n_comment; i++)
		if ((err = check_string(c, prof->comment[i], "comment %zu", i)))
			return err;
	if (prof->period_type &&
	    ((err = check_string(c, prof->period_type->type, "period type")) ||
	     (err = check_string(c, prof->period_type->unit, "period unit"))))
		return err;
	for (size_t i = 0; i < prof->n_sample_type; i++) {
		const Perftools__Profiles__ValueType *vt = prof->sample_type[i];

		if ((err = check_string(c, vt->type, "sample type %zu type", i)) ||
		    (err = check_string(c, vt->unit, "sample type %zu unit", i)))
			return err;
	}
	return 0;
}

static int check_mappings(struct checker *c, struct id_set *ids)
{
	const Perftools__Profiles__Profile *prof = c->prof;
	int err;

	for (size_t i = 0; i < prof->n_mapping; i++) {
		const Perftools__Profiles__Mapping *m = prof->mapping[i];

		if (!m->id)
			return fail(c, "mapping %zu has id 0", i);
		if (!id_set_add(ids, m->id))
			return fail(c, "duplicate mapping id %" PRIu64, m->id);
		if ((err = check_string(c, m->filename, "mapping id %" PRIu64 " filename", m->id)) ||
		    (err = check_string(c, m->build_id, "mapping id %" PRIu64 " build_id", m->id)))
			return err;
	}
	return 0;
}

static int check_functions(struct checker *c, struct id_set *ids)
{
	const Perftools__Profiles__Profile *prof = c->prof;
	int err;

	for (size_t i = 0; i < prof->n_function; i++) {
		const Perftools__Profiles__Function *f = prof->function[i];

		if (!f->id)
			return fail(c, "function %zu has id 0", i);
		if (!id_set_add(ids, f->id))
			return fail(c, "duplicate function id %" PRIu64, f->id);
		if ((err = check_string(c, f->name, "function id %" PRIu64 " name", f->id)) ||
		    (err = check_string(c, f->system_name, "function id %" PRIu64 " system_name",
					f->id)) ||
		    (err = check_string(c, f->filename, "function id %" PRIu64 " filename", f->id)))
			return err;
	}
	return 0;
}

/* Unlike pprof we refuse a mapping id that names no mapping: we always
 * write our mappings, so a dangling one means a bug. */
static int check_locations(struct checker *c, struct id_set *ids, const struct id_set *mappings,
			   const struct id_set *functions)
{
	const Perftools__Profiles__Profile *prof = c->prof;

	for (size_t i = 0; i < prof->n_location; i++) {
		const Perftools__Profiles__Location *l = prof->location[i];

		if (!l->id)
			return fail(c, "location %zu has id 0", i);
		if (!id_set_add(ids, l->id))
			return fail(c, "duplicate location id %" PRIu64, l->id);
		if (l->mapping_id && !id_set_has(mappings, l->mapping_id))
			return fail(c, "location id %" PRIu64 " has missing mapping id %" PRIu64,
				    l->id, l->mapping_id);
		for (size_t j = 0; j < l->n_line; j++)
			if (!id_set_has(functions, l->line[j]->function_id))
				return fail(c, "location id %" PRIu64 " line %zu has missing function id %" PRIu64,
					    l->id, j, l->line[j]->function_id);
	}
	return 0;
}

static int check_samples(struct checker *c, const struct id_set *locations)
{
	const Perftools__Profiles__Profile *prof = c->prof;
	int err;

	for (size_t i = 0; i < prof->n_sample; i++) {
		const Perftools__Profiles__Sample *s = prof->sample[i];

		if (s->n_value != prof->n_sample_type)
			return fail(c, "sample %zu has %zu values, want %zu", i, s->n_value,
				    prof->n_sample_type);
		for (size_t j = 0; j < s->n_location_id; j++)
			if (!id_set_has(locations, s->location_id[j]))
				return fail(c, "sample %zu has missing location id %" PRIu64, i,
					    s->location_id[j]);
		for (size_t j = 0; j < s->n_label; j++) {
			const Perftools__Profiles__Label *l = s->label[j];

			if ((err = check_string(c, l->key, "sample %zu label %zu key", i, j)) ||
			    (err = check_string(c, l->str, "sample %zu label %zu str", i, j)) ||
			    (err = check_string(c, l->num_unit, "sample %zu label %zu num_unit", i, j)))
				return err;
			if (l->str && l->num)
				return fail(c, "sample %zu label %zu has both str and num", i, j);
		}
	}
	return 0;
}

static int check_profile(struct checker *c)
{
	const Perftools__Profiles__Profile *prof = c->prof;
	struct id_set mappings = { 0 }, functions = { 0 }, locations = { 0 };
	int err;

	if (id_set_init(&mappings, prof->n_mapping) || id_set_init(&functions, prof->n_function) ||
	    id_set_init(&locations, prof->n_location)) {
		err = fail_nomem(c, "checking ids");
		goto out_free_sets;
	}
	err = check_header(c);
	if (!err)
		err = check_mappings(c, &mappings);
	if (!err)
		err = check_functions(c, &functions);
	if (!err)
		err = check_locations(c, &locations, &mappings, &functions);
	if (!err)
		err = check_samples(c, &locations);
out_free_sets:
	free(mappings.slots);
	free(functions.slots);
	free(locations.slots);
	return err;
}

int xp_profile_check_encoded(const uint8_t *buf, size_t len, char *err, size_t errlen)
{
	struct checker c = { NULL, err, errlen };
	Perftools__Profiles__Profile *prof;
	uint8_t *inflated = NULL;
	int ret;

	if (err && errlen)
		err[0] = '\0';
	if (!buf && len)
		return fail(&c, "no profile data");
	if (len >= 2 && buf[0] == 0x1f && buf[1] == 0x8b) {
		ret = gunzip(&c, buf, len, &inflated, &len);
		if (ret)
			return ret;
		buf = inflated;
	}
	prof = perftools__profiles__profile__unpack(NULL, len, buf);
	if (!prof) {
		ret = fail(&c, "cannot decode profile protobuf (%zu bytes)", len);
		goto out_free_inflated;
	}
	c.prof = prof;
	ret = check_profile(&c);
	perftools__profiles__profile__free_unpacked(prof, NULL);
out_free_inflated:
	free(inflated);
	return ret;
}
