/* Unit tests of symbolize/perfmap.c's parser on golden text: what a perf
 * map's lines name, what is skipped (and counted), and which of
 * overlapping entries wins. */
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include "symbolize/symbolize.h"
#include "symbolize/symbolize_internal.h"
#include "tests/unit/tap.h"

static const char *name_at(struct xp_perfmap *m, uint64_t pc)
{
	uint64_t start, end;
	const char *n = xp_perfmap_lookup(m, pc, &start, &end);

	return n ? n : "(none)";
}

int main(void)
{
	static const char text[] =
		"0 ffffffffffff whole_space_older\n"
		"1000 100 first\n"
		"0x2000 0x10 with 0x prefix and spaces in the name\n"
		"not a line\n"
		"\n"
		"3000 0 zero_size\n"
		"ffffffffffffff00 1000 wraps\n"
		"12345678901234567 10 seventeen_digits\n"
		"4000 10\n"
		"1000 10 newer_first\r\n"
		"5000 10 cut_at_the_end";
	struct xp_perfmap *m = xp_perfmap_new(getpid());
	struct xp_jit_stats st;
	char longline[6000];
	size_t used;

	if (!m) {
		printf("Bail out! no memory\n");
		return 1;
	}
	used = xp_perfmap_parse(m, text, sizeof(text) - 1, 0);
	xp_perfmap_stats(m, &st);
	ok(used == sizeof(text) - 1 - strlen("5000 10 cut_at_the_end"),
	   "a last line without its newline is left for the next read (%zu bytes used)", used);
	ok(st.entries == 4 && st.skipped == 6, "4 entries, 6 lines skipped (got %zu, %zu)", st.entries, st.skipped);
	ok(strcmp(name_at(m, 0x1008), "newer_first") == 0, "of overlapping entries the last written wins: %s",
	   name_at(m, 0x1008));
	ok(strcmp(name_at(m, 0x1050), "first") == 0, "past the newer one, the older names it: %s", name_at(m, 0x1050));
	ok(strcmp(name_at(m, 0x200f), "with 0x prefix and spaces in the name") == 0, "0x prefix, spaces in the name");
	ok(strcmp(name_at(m, 0x2010), "whole_space_older") == 0, "an address only the huge older entry covers: %s",
	   name_at(m, 0x2010));
	ok(strcmp(name_at(m, 0x1000000000000ULL), "(none)") == 0, "nothing covers an address past every entry");
	memset(longline, 'a', sizeof(longline));
	longline[sizeof(longline) - 1] = '\n';
	used = xp_perfmap_parse(m, longline, sizeof(longline), 0);
	xp_perfmap_stats(m, &st);
	ok(used == sizeof(longline) && st.skipped == 7, "a 6000-byte line is skipped whole (skipped %zu)", st.skipped);
	used = xp_perfmap_parse(m, longline, sizeof(longline) - 1, 0);
	ok(used == sizeof(longline) - 1, "so is one without its newline, longer than a line may be");
	xp_perfmap_free(m);
	(void)skip, (void)read_file, (void)count_entries; /* tap.h's, unused here */
	printf("1..%d\n", test_no);
	return failures != 0;
}
