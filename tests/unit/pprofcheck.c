/* pprofcheck FILE... — runs xprof's pprof validity check (pprof's
 * CheckValid rules) on profiles written by xprof; for the tests. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto/profile.h"

int main(int argc, char **argv)
{
	int i, bad = 0;

	for (i = 1; i < argc; i++) {
		FILE *f = fopen(argv[i], "rb");
		uint8_t *buf = NULL;
		size_t len = 0, cap = 0, n;
		char err[256] = "";

		if (!f) {
			fprintf(stderr, "pprofcheck: %s: %s\n", argv[i], strerror(errno));
			bad = 1;
			continue;
		}
		do {
			if (len == cap) {
				cap = cap ? cap * 2 : 1 << 16;
				buf = realloc(buf, cap);
				if (!buf)
					return 2;
			}
			n = fread(buf + len, 1, cap - len, f);
			len += n;
		} while (n > 0);
		fclose(f);
		if (xp_profile_check_encoded(buf, len, err, sizeof(err)) < 0) {
			fprintf(stderr, "pprofcheck: %s: %s\n", argv[i], err);
			bad = 1;
		}
		free(buf);
	}
	return bad;
}
