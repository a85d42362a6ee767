/* Helpers shared by the harnesses in tests/fuzz/: taking fields from the
 * input, and writing seeds.  A harness that can generate well-formed seeds
 * does so when XPROF_FUZZ_WRITE_SEEDS names a directory (in
 * LLVMFuzzerInitialize, then exits): tests/fuzz/seeds/NAME is made that way.
 */
#ifndef XPROF_TESTS_FUZZ_H
#define XPROF_TESTS_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The input read front to back; past its end every field reads as 0. */
struct fuzz_in {
	const uint8_t *p;
	size_t n;
};

static inline void fuzz_take(struct fuzz_in *in, void *out, size_t len)
{
	size_t k = len < in->n ? len : in->n;

	memcpy(out, in->p, k);
	memset((uint8_t *)out + k, 0, len - k);
	in->p += k;
	in->n -= k;
}

static inline uint8_t fuzz_u8(struct fuzz_in *in)
{
	uint8_t v;

	fuzz_take(in, &v, 1);
	return v;
}

static inline uint32_t fuzz_u32(struct fuzz_in *in)
{
	uint32_t v;

	fuzz_take(in, &v, 4);
	return v;
}

static inline uint64_t fuzz_u64(struct fuzz_in *in)
{
	uint64_t v;

	fuzz_take(in, &v, 8);
	return v;
}

/* The directory to write generated seeds into, or NULL for a fuzzing run. */
static inline const char *fuzz_seed_dir(void)
{
	const char *d = getenv("XPROF_FUZZ_WRITE_SEEDS");

	return d && *d ? d : NULL;
}

static inline void fuzz_write_seed(const char *dir, const char *name, const void *buf, size_t len)
{
	char path[4096];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "wb");
	if (!f || fwrite(buf, 1, len, f) != len || fclose(f) != 0) {
		perror(path);
		exit(1);
	}
}

#endif
