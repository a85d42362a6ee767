/* proto/builder.c — the in-memory profile and its encoder.
 *
 * Strings, mappings, functions and locations are interned in hash tables so
 * a profile with 100k locations costs O(1) per lookup; an id is its array
 * index + 1, so ids start at 1 and are unique by construction.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proto/profile.h"
#include "proto/profile.pb-c.h"

#define DELETED_SUFFIX " (deleted)"

/* Open-addressing table of indexes into one of the builder's arrays.  The
 * hash is kept in the slot so growing never has to look at the keys. */
struct intern_slot {
	uint64_t hash;
	size_t idx1; /* index + 1; 0 marks an empty slot */
};

struct intern_table {
	struct intern_slot *slots;
	size_t cap; /* 0 or a power of two */
	size_t count;
};

/* Compares the key being looked up with the entry at idx. */
typedef int (*same_fn)(const struct xp_profile *p, size_t idx, const void *key);

struct value_type {
	int64_t type, unit;
};

struct mapping {
	uint64_t start, limit, offset;
	int64_t file, build_id;
	int has_functions, has_filenames, has_line_numbers, has_inline_frames;
};

struct function {
	int64_t name, system_name, filename, start_line;
};

struct location {
	uint64_t mapping_id, address;
	size_t line_off, nlines; /* into xp_profile.lines */
};

struct label {
	int64_t key, str, num, num_unit;
};

/* A sample's values are always ntypes long: types are frozen by then. */
struct sample {
	size_t loc_off, nlocs;     /* into xp_profile.sample_locs */
	size_t value_off;          /* into xp_profile.sample_values */
	size_t label_off, nlabels; /* into xp_profile.labels */
};

struct xp_profile {
	char **strings; /* strings[0] is "" and is not in string_index */
	size_t nstrings, strings_cap;
	struct intern_table string_index;

	struct value_type *types;
	size_t ntypes, types_cap;
	struct value_type period_type;
	int has_period_type;
	int64_t period, time_nanos, duration_nanos, default_sample_type;
	int64_t *comments;
	size_t ncomments, comments_cap;

	struct mapping *mappings;
	size_t nmappings, mappings_cap;
	struct intern_table mapping_index;

	struct function *functions;
	size_t nfunctions, functions_cap;
	struct intern_table function_index;

	struct location *locations;
	size_t nlocations, locations_cap;
	struct intern_table location_index;
	struct xp_pline *lines;
	size_t nlines, lines_cap;

	struct sample *samples;
	size_t nsamples, samples_cap;
	uint64_t *sample_locs;
	size_t nsample_locs, sample_locs_cap;
	int64_t *sample_values;
	size_t nsample_values, sample_values_cap;
	struct label *labels;
	size_t nlabels, labels_cap;
};

/* Makes room for need elements in the array *itemsp points to.  The array
 * pointer is read and written with memcpy so one helper serves every
 * element type without aliasing trouble; on failure the old array stays. */
static int reserve(void *itemsp, size_t *cap, size_t need, size_t size)
{
	void *items, *grown;
	size_t ncap;

	if (need <= *cap)
		return 0;
	ncap = *cap ? *cap : 16;
	while (ncap < need) {
		if (ncap > SIZE_MAX / 2 / size)
			return -ENOMEM;
		ncap *= 2;
	}
	if (ncap > SIZE_MAX / size)
		return -ENOMEM;
	memcpy(&items, itemsp, sizeof(items));
	grown = realloc(items, ncap * size);
	if (!grown)
		return -ENOMEM;
	memcpy(itemsp, &grown, sizeof(grown));
	*cap = ncap;
	return 0;
}

/* The table index is taken from the low bits, so scramble them well. */
static uint64_t fmix64(uint64_t h)
{
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdULL;
	h ^= h >> 33;
	h *= 0xc4ceb9fe1a85ec53ULL;
	h ^= h >> 33;
	return h;
}

static uint64_t hash_add(uint64_t h, uint64_t v)
{
	return fmix64(h ^ v) + 0x9e3779b97f4a7c15ULL;
}

static uint64_t hash_bytes(const char *s, size_t len)
{
	uint64_t h = 0xcbf29ce484222325ULL; /* FNV-1a */

	for (size_t i = 0; i < len; i++) {
		h ^= (unsigned char)s[i];
		h *= 0x100000001b3ULL;
	}
	return fmix64(h);
}

/* Keeps the load at or below 3/4 so a probe always finds an empty slot;
 * call before table_find so its slot stays valid for the insert. */
static int table_reserve(struct intern_table *t)
{
	struct intern_slot *slots;
	size_t ncap;

	if (t->cap && (t->count + 1) <= t->cap / 4 * 3)
		return 0;
	ncap = t->cap ? t->cap * 2 : 64;
	if (ncap < t->cap || ncap > SIZE_MAX / sizeof(*slots))
		return -ENOMEM;
	slots = calloc(ncap, sizeof(*slots));
	if (!slots)
		return -ENOMEM;
	for (size_t i = 0; i < t->cap; i++) {
		size_t j;

		if (!t->slots[i].idx1)
			continue;
		for (j = t->slots[i].hash & (ncap - 1); slots[j].idx1; j = (j + 1) & (ncap - 1))
			;
		slots[j] = t->slots[i];
	}
	free(t->slots);
	t->slots = slots;
	t->cap = ncap;
	return 0;
}

/* The slot holding an entry equal to key, or the empty slot where it goes. */
static struct intern_slot *table_find(const struct intern_table *t, uint64_t hash, same_fn same,
				      const struct xp_profile *p, const void *key)
{
	size_t mask = t->cap - 1;

	for (size_t i = hash & mask;; i = (i + 1) & mask) {
		struct intern_slot *s = &t->slots[i];

		if (!s->idx1 || (s->hash == hash && same(p, s->idx1 - 1, key)))
			return s;
	}
}

static void table_insert(struct intern_table *t, struct intern_slot *s, uint64_t hash, size_t idx)
{
	s->hash = hash;
	s->idx1 = idx + 1;
	t->count++;
}

struct string_key {
	const char *s;
	size_t len;
};

static int same_string(const struct xp_profile *p, size_t idx, const void *key)
{
	const struct string_key *k = key;
	const char *s = p->strings[idx];

	return strncmp(s, k->s, k->len) == 0 && s[k->len] == '\0';
}

/* The string table index of the first len bytes of s; "" is always 0. */
static int64_t intern_string_n(struct xp_profile *p, const char *s, size_t len)
{
	struct string_key key = { s, len };
	struct intern_slot *slot;
	uint64_t hash;
	char *copy;

	if (!s || !len)
		return 0;
	hash = hash_bytes(s, len);
	if (table_reserve(&p->string_index))
		return -ENOMEM;
	slot = table_find(&p->string_index, hash, same_string, p, &key);
	if (slot->idx1)
		return (int64_t)(slot->idx1 - 1);
	if (reserve(&p->strings, &p->strings_cap, p->nstrings + 1, sizeof(*p->strings)))
		return -ENOMEM;
	copy = strndup(s, len);
	if (!copy)
		return -ENOMEM;
	p->strings[p->nstrings] = copy;
	table_insert(&p->string_index, slot, hash, p->nstrings);
	return (int64_t)p->nstrings++;
}

static int64_t intern_string(struct xp_profile *p, const char *s)
{
	return intern_string_n(p, s, s ? strlen(s) : 0);
}

struct xp_profile *xp_profile_new(void)
{
	struct xp_profile *p = calloc(1, sizeof(*p));

	if (!p)
		return NULL;
	if (reserve(&p->strings, &p->strings_cap, 1, sizeof(*p->strings)))
		goto out_free;
	p->strings[0] = strdup("");
	if (!p->strings[0])
		goto out_free_strings;
	p->nstrings = 1;
	return p;

out_free_strings:
	free(p->strings);
out_free:
	free(p);
	return NULL;
}

void xp_profile_free(struct xp_profile *p)
{
	if (!p)
		return;
	for (size_t i = 0; i < p->nstrings; i++)
		free(p->strings[i]);
	free(p->strings);
	free(p->string_index.slots);
	free(p->types);
	free(p->comments);
	free(p->mappings);
	free(p->mapping_index.slots);
	free(p->functions);
	free(p->function_index.slots);
	free(p->locations);
	free(p->location_index.slots);
	free(p->lines);
	free(p->samples);
	free(p->sample_locs);
	free(p->sample_values);
	free(p->labels);
	free(p);
}

/* Interns type and unit; both must be nonempty, as pprof shows them. */
static int value_type(struct xp_profile *p, const char *type, const char *unit,
		      struct value_type *vt)
{
	int64_t t, u;

	if (!type || !*type || !unit || !*unit)
		return -EINVAL;
	t = intern_string(p, type);
	if (t < 0)
		return (int)t;
	u = intern_string(p, unit);
	if (u < 0)
		return (int)u;
	vt->type = t;
	vt->unit = u;
	return 0;
}

int xp_profile_add_sample_type(struct xp_profile *p, const char *type, const char *unit)
{
	struct value_type vt;
	int err;

	if (!p)
		return -EINVAL;
	/* Samples already added carry one value per type: the set is frozen. */
	if (p->nsamples)
		return -EINVAL;
	err = value_type(p, type, unit, &vt);
	if (err)
		return err;
	if (reserve(&p->types, &p->types_cap, p->ntypes + 1, sizeof(*p->types)))
		return -ENOMEM;
	p->types[p->ntypes++] = vt;
	return 0;
}

int xp_profile_set_period(struct xp_profile *p, const char *type, const char *unit, int64_t period)
{
	struct value_type vt;
	int err;

	if (!p)
		return -EINVAL;
	err = value_type(p, type, unit, &vt);
	if (err)
		return err;
	p->period_type = vt;
	p->has_period_type = 1;
	p->period = period;
	return 0;
}

void xp_profile_set_time(struct xp_profile *p, int64_t time_nanos, int64_t duration_nanos)
{
	if (!p)
		return;
	p->time_nanos = time_nanos;
	p->duration_nanos = duration_nanos;
}

int xp_profile_add_comment(struct xp_profile *p, const char *comment)
{
	int64_t s;

	if (!p || !comment)
		return -EINVAL;
	s = intern_string(p, comment);
	if (s < 0)
		return (int)s;
	if (reserve(&p->comments, &p->comments_cap, p->ncomments + 1, sizeof(*p->comments)))
		return -ENOMEM;
	p->comments[p->ncomments++] = s;
	return 0;
}

int xp_profile_set_default_sample_type(struct xp_profile *p, const char *type)
{
	int64_t s;

	if (!p || !type)
		return -EINVAL;
	s = intern_string(p, type);
	if (s < 0)
		return (int)s;
	p->default_sample_type = s;
	return 0;
}

struct mapping_key {
	uint64_t start, limit, offset;
	int64_t file;
};

static int same_mapping(const struct xp_profile *p, size_t idx, const void *key)
{
	const struct mapping_key *k = key;
	const struct mapping *m = &p->mappings[idx];

	return m->start == k->start && m->limit == k->limit && m->offset == k->offset &&
	       m->file == k->file;
}

/* The first call for a key decides build id and flags: one address range of
 * one file is one mapping however often it is reported. */
int64_t xp_profile_mapping(struct xp_profile *p, const struct xp_pmapping *m)
{
	const size_t suffix_len = strlen(DELETED_SUFFIX);
	struct mapping_key key;
	struct intern_slot *slot;
	struct mapping *added;
	const char *file;
	size_t file_len;
	int64_t build_id;
	uint64_t hash;

	if (!p || !m)
		return -EINVAL;
	file = m->file ? m->file : "";
	file_len = strlen(file);
	/* The kernel marks replaced files; the name pprof should show is the
	 * path, which the next run will find again. */
	if (file_len >= suffix_len && !strcmp(file + file_len - suffix_len, DELETED_SUFFIX))
		file_len -= suffix_len;
	key.start = m->start;
	key.limit = m->limit;
	key.offset = m->offset;
	key.file = intern_string_n(p, file, file_len);
	if (key.file < 0)
		return key.file;

	hash = hash_add(hash_add(hash_add(hash_add(0, key.start), key.limit), key.offset),
			(uint64_t)key.file);
	if (table_reserve(&p->mapping_index))
		return -ENOMEM;
	slot = table_find(&p->mapping_index, hash, same_mapping, p, &key);
	if (slot->idx1)
		return (int64_t)slot->idx1;

	build_id = intern_string(p, m->build_id);
	if (build_id < 0)
		return build_id;
	if (reserve(&p->mappings, &p->mappings_cap, p->nmappings + 1, sizeof(*p->mappings)))
		return -ENOMEM;
	added = &p->mappings[p->nmappings];
	added->start = key.start;
	added->limit = key.limit;
	added->offset = key.offset;
	added->file = key.file;
	added->build_id = build_id;
	added->has_functions = !!m->has_functions;
	added->has_filenames = !!m->has_filenames;
	added->has_line_numbers = !!m->has_line_numbers;
	added->has_inline_frames = !!m->has_inline_frames;
	table_insert(&p->mapping_index, slot, hash, p->nmappings);
	return (int64_t)++p->nmappings;
}

static int same_function(const struct xp_profile *p, size_t idx, const void *key)
{
	const struct function *k = key, *f = &p->functions[idx];

	return f->name == k->name && f->system_name == k->system_name &&
	       f->filename == k->filename && f->start_line == k->start_line;
}

int64_t xp_profile_function(struct xp_profile *p, const char *name, const char *system_name,
			    const char *filename, int64_t start_line)
{
	struct intern_slot *slot;
	struct function key;
	uint64_t hash;

	if (!p)
		return -EINVAL;
	key.name = intern_string(p, name);
	if (key.name < 0)
		return key.name;
	key.system_name = intern_string(p, system_name);
	if (key.system_name < 0)
		return key.system_name;
	key.filename = intern_string(p, filename);
	if (key.filename < 0)
		return key.filename;
	key.start_line = start_line;

	hash = hash_add(hash_add(hash_add(hash_add(0, (uint64_t)key.name), (uint64_t)key.system_name),
				 (uint64_t)key.filename),
			(uint64_t)key.start_line);
	if (table_reserve(&p->function_index))
		return -ENOMEM;
	slot = table_find(&p->function_index, hash, same_function, p, &key);
	if (slot->idx1)
		return (int64_t)slot->idx1;
	if (reserve(&p->functions, &p->functions_cap, p->nfunctions + 1, sizeof(*p->functions)))
		return -ENOMEM;
	p->functions[p->nfunctions] = key;
	table_insert(&p->function_index, slot, hash, p->nfunctions);
	return (int64_t)++p->nfunctions;
}

struct location_key {
	uint64_t mapping_id, address;
	const struct xp_pline *lines;
	size_t nlines;
};

static int same_location(const struct xp_profile *p, size_t idx, const void *key)
{
	const struct location_key *k = key;
	const struct location *l = &p->locations[idx];

	if (l->mapping_id != k->mapping_id || l->address != k->address || l->nlines != k->nlines)
		return 0;
	for (size_t i = 0; i < k->nlines; i++) {
		const struct xp_pline *line = &p->lines[l->line_off + i];

		if (line->function_id != k->lines[i].function_id || line->line != k->lines[i].line)
			return 0;
	}
	return 1;
}

int64_t xp_profile_location(struct xp_profile *p, uint64_t mapping_id, uint64_t address,
			    const struct xp_pline *lines, size_t nlines)
{
	struct location_key key = { mapping_id, address, lines, nlines };
	struct intern_slot *slot;
	struct location *added;
	uint64_t hash;

	if (!p || (nlines && !lines) || mapping_id > p->nmappings)
		return -EINVAL;
	hash = hash_add(hash_add(hash_add(0, mapping_id), address), nlines);
	for (size_t i = 0; i < nlines; i++) {
		if (!lines[i].function_id || lines[i].function_id > p->nfunctions)
			return -EINVAL;
		hash = hash_add(hash_add(hash, lines[i].function_id), (uint64_t)lines[i].line);
	}
	if (table_reserve(&p->location_index))
		return -ENOMEM;
	slot = table_find(&p->location_index, hash, same_location, p, &key);
	if (slot->idx1)
		return (int64_t)slot->idx1;
	if (reserve(&p->locations, &p->locations_cap, p->nlocations + 1, sizeof(*p->locations)) ||
	    reserve(&p->lines, &p->lines_cap, p->nlines + nlines, sizeof(*p->lines)))
		return -ENOMEM;
	added = &p->locations[p->nlocations];
	added->mapping_id = mapping_id;
	added->address = address;
	added->line_off = p->nlines;
	added->nlines = nlines;
	if (nlines)
		memcpy(&p->lines[p->nlines], lines, nlines * sizeof(*lines));
	p->nlines += nlines;
	table_insert(&p->location_index, slot, hash, p->nlocations);
	return (int64_t)++p->nlocations;
}

int xp_profile_add_sample(struct xp_profile *p, const uint64_t *locs, size_t nlocs,
			  const int64_t *values, size_t nvalues,
			  const struct xp_plabel *labels, size_t nlabels)
{
	struct sample *s;

	if (!p || (nlocs && !locs) || (nvalues && !values) || (nlabels && !labels))
		return -EINVAL;
	if (nvalues != p->ntypes)
		return -EINVAL;
	for (size_t i = 0; i < nlocs; i++)
		if (!locs[i] || locs[i] > p->nlocations)
			return -EINVAL;
	for (size_t i = 0; i < nlabels; i++)
		if (!labels[i].key || !*labels[i].key)
			return -EINVAL;

	/* Room first, so a failure leaves no half-added sample behind. */
	if (reserve(&p->samples, &p->samples_cap, p->nsamples + 1, sizeof(*p->samples)) ||
	    reserve(&p->sample_locs, &p->sample_locs_cap, p->nsample_locs + nlocs,
		    sizeof(*p->sample_locs)) ||
	    reserve(&p->sample_values, &p->sample_values_cap, p->nsample_values + nvalues,
		    sizeof(*p->sample_values)) ||
	    reserve(&p->labels, &p->labels_cap, p->nlabels + nlabels, sizeof(*p->labels)))
		return -ENOMEM;

	for (size_t i = 0; i < nlabels; i++) {
		struct label *l = &p->labels[p->nlabels + i];

		memset(l, 0, sizeof(*l));
		l->key = intern_string(p, labels[i].key);
		if (l->key < 0)
			return (int)l->key;
		if (labels[i].str) {
			l->str = intern_string(p, labels[i].str);
			if (l->str < 0)
				return (int)l->str;
		} else {
			l->num = labels[i].num;
			l->num_unit = intern_string(p, labels[i].num_unit);
			if (l->num_unit < 0)
				return (int)l->num_unit;
		}
	}

	s = &p->samples[p->nsamples++];
	s->loc_off = p->nsample_locs;
	s->nlocs = nlocs;
	s->value_off = p->nsample_values;
	s->label_off = p->nlabels;
	s->nlabels = nlabels;
	if (nlocs)
		memcpy(&p->sample_locs[p->nsample_locs], locs, nlocs * sizeof(*locs));
	if (nvalues)
		memcpy(&p->sample_values[p->nsample_values], values, nvalues * sizeof(*values));
	p->nsample_locs += nlocs;
	p->nsample_values += nvalues;
	p->nlabels += nlabels;
	return 0;
}

size_t xp_profile_sample_count(const struct xp_profile *p)
{
	return p ? p->nsamples : 0;
}

/* The protobuf-c messages that mirror the builder for one encode; the
 * repeated scalars point straight into the builder's arrays. */
struct encode_scratch {
	Perftools__Profiles__ValueType *types, **type_ptrs, period_type;
	Perftools__Profiles__Mapping *mappings, **mapping_ptrs;
	Perftools__Profiles__Function *functions, **function_ptrs;
	Perftools__Profiles__Location *locations, **location_ptrs;
	Perftools__Profiles__Line *lines, **line_ptrs;
	Perftools__Profiles__Sample *samples, **sample_ptrs;
	Perftools__Profiles__Label *labels, **label_ptrs;
};

/* calloc that never returns NULL for an empty array, so NULL means ENOMEM. */
static void *alloc_array(size_t n, size_t size)
{
	return calloc(n ? n : 1, size);
}

static int scratch_alloc(struct encode_scratch *s, const struct xp_profile *p)
{
	s->types = alloc_array(p->ntypes, sizeof(*s->types));
	s->type_ptrs = alloc_array(p->ntypes, sizeof(*s->type_ptrs));
	s->mappings = alloc_array(p->nmappings, sizeof(*s->mappings));
	s->mapping_ptrs = alloc_array(p->nmappings, sizeof(*s->mapping_ptrs));
	s->functions = alloc_array(p->nfunctions, sizeof(*s->functions));
	s->function_ptrs = alloc_array(p->nfunctions, sizeof(*s->function_ptrs));
	s->locations = alloc_array(p->nlocations, sizeof(*s->locations));
	s->location_ptrs = alloc_array(p->nlocations, sizeof(*s->location_ptrs));
	s->lines = alloc_array(p->nlines, sizeof(*s->lines));
	s->line_ptrs = alloc_array(p->nlines, sizeof(*s->line_ptrs));
	s->samples = alloc_array(p->nsamples, sizeof(*s->samples));
	s->sample_ptrs = alloc_array(p->nsamples, sizeof(*s->sample_ptrs));
	s->labels = alloc_array(p->nlabels, sizeof(*s->labels));
	s->label_ptrs = alloc_array(p->nlabels, sizeof(*s->label_ptrs));
	if (!s->types || !s->type_ptrs || !s->mappings || !s->mapping_ptrs || !s->functions ||
	    !s->function_ptrs || !s->locations || !s->location_ptrs || !s->lines ||
	    !s->line_ptrs || !s->samples || !s->sample_ptrs || !s->labels || !s->label_ptrs)
		return -ENOMEM;
	return 0;
}

static void scratch_release(struct encode_scratch *s)
{
	free(s->types);
	free(s->type_ptrs);
	free(s->mappings);
	free(s->mapping_ptrs);
	free(s->functions);
	free(s->function_ptrs);
	free(s->locations);
	free(s->location_ptrs);
	free(s->lines);
	free(s->line_ptrs);
	free(s->samples);
	free(s->sample_ptrs);
	free(s->labels);
	free(s->label_ptrs);
}

static void fill_value_type(Perftools__Profiles__ValueType *m, const struct value_type *vt)
{
	perftools__profiles__value_type__init(m);
	m->type = vt->type;
	m->unit = vt->unit;
}

static void fill_profile(Perftools__Profiles__Profile *prof, struct encode_scratch *s,
			 const struct xp_profile *p)
{
	for (size_t i = 0; i < p->ntypes; i++) {
		fill_value_type(&s->types[i], &p->types[i]);
		s->type_ptrs[i] = &s->types[i];
	}
	prof->n_sample_type = p->ntypes;
	prof->sample_type = s->type_ptrs;

	for (size_t i = 0; i < p->nmappings; i++) {
		Perftools__Profiles__Mapping *m = &s->mappings[i];
		const struct mapping *src = &p->mappings[i];

		perftools__profiles__mapping__init(m);
		m->id = i + 1;
		m->memory_start = src->start;
		m->memory_limit = src->limit;
		m->file_offset = src->offset;
		m->filename = src->file;
		m->build_id = src->build_id;
		m->has_functions = src->has_functions;
		m->has_filenames = src->has_filenames;
		m->has_line_numbers = src->has_line_numbers;
		m->has_inline_frames = src->has_inline_frames;
		s->mapping_ptrs[i] = m;
	}
	prof->n_mapping = p->nmappings;
	prof->mapping = s->mapping_ptrs;

	for (size_t i = 0; i < p->nfunctions; i++) {
		Perftools__Profiles__Function *f = &s->functions[i];
		const struct function *src = &p->functions[i];

		perftools__profiles__function__init(f);
		f->id = i + 1;
		f->name = src->name;
		f->system_name = src->system_name;
		f->filename = src->filename;
		f->start_line = src->start_line;
		s->function_ptrs[i] = f;
	}
	prof->n_function = p->nfunctions;
	prof->function = s->function_ptrs;

	for (size_t i = 0; i < p->nlines; i++) {
		perftools__profiles__line__init(&s->lines[i]);
		s->lines[i].function_id = p->lines[i].function_id;
		s->lines[i].line = p->lines[i].line;
		s->line_ptrs[i] = &s->lines[i];
	}
	for (size_t i = 0; i < p->nlocations; i++) {
		Perftools__Profiles__Location *l = &s->locations[i];
		const struct location *src = &p->locations[i];

		perftools__profiles__location__init(l);
		l->id = i + 1;
		l->mapping_id = src->mapping_id;
		l->address = src->address;
		l->n_line = src->nlines;
		l->line = &s->line_ptrs[src->line_off];
		s->location_ptrs[i] = l;
	}
	prof->n_location = p->nlocations;
	prof->location = s->location_ptrs;

	for (size_t i = 0; i < p->nlabels; i++) {
		Perftools__Profiles__Label *l = &s->labels[i];

		perftools__profiles__label__init(l);
		l->key = p->labels[i].key;
		l->str = p->labels[i].str;
		l->num = p->labels[i].num;
		l->num_unit = p->labels[i].num_unit;
		s->label_ptrs[i] = l;
	}
	for (size_t i = 0; i < p->nsamples; i++) {
		Perftools__Profiles__Sample *m = &s->samples[i];
		const struct sample *src = &p->samples[i];

		perftools__profiles__sample__init(m);
		/* Empty samples may have no arrays behind them at all. */
		m->n_location_id = src->nlocs;
		m->location_id = src->nlocs ? &p->sample_locs[src->loc_off] : NULL;
		m->n_value = p->ntypes;
		m->value = p->ntypes ? &p->sample_values[src->value_off] : NULL;
		m->n_label = src->nlabels;
		m->label = &s->label_ptrs[src->label_off];
		s->sample_ptrs[i] = m;
	}
	prof->n_sample = p->nsamples;
	prof->sample = s->sample_ptrs;

	prof->n_string_table = p->nstrings;
	prof->string_table = p->strings;
	prof->n_comment = p->ncomments;
	prof->comment = p->comments;
	prof->default_sample_type = p->default_sample_type;
	if (p->has_period_type) {
		fill_value_type(&s->period_type, &p->period_type);
		prof->period_type = &s->period_type;
	}
	if (p->period)
		prof->period = p->period;
	if (p->time_nanos)
		prof->time_nanos = p->time_nanos;
	if (p->duration_nanos)
		prof->duration_nanos = p->duration_nanos;
}

int xp_profile_encode(const struct xp_profile *p, uint8_t **buf, size_t *len)
{
	Perftools__Profiles__Profile prof = PERFTOOLS__PROFILES__PROFILE__INIT;
	struct encode_scratch scratch = { 0 };
	uint8_t *out;
	size_t size;
	int err;

	if (!p || !buf || !len)
		return -EINVAL;
	err = scratch_alloc(&scratch, p);
	if (err)
		goto out_release;
	fill_profile(&prof, &scratch, p);

	size = perftools__profiles__profile__get_packed_size(&prof);
	out = malloc(size ? size : 1);
	if (!out) {
		err = -ENOMEM;
		goto out_release;
	}
	if (perftools__profiles__profile__pack(&prof, out) != size) {
		free(out);
		err = -EIO;
		goto out_release;
	}
	*buf = out;
	*len = size;
out_release:
	scratch_release(&scratch);
	return err;
}
