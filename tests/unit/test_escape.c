/* Unit tests of xp_escape (symbolize/escape.c): what a target's name may
 * hold against what reaches a terminal. */
#include <stdio.h>
#include <string.h>

#include "symbolize/symbolize.h"
#include "tests/unit/tap.h"

static void expect(const char *in, const char *want, const char *what)
{
	char buf[256];

	xp_escape(in, buf, sizeof(buf));
	ok(strcmp(buf, want) == 0, "%s: \"%s\"", what, xp_esc(buf));
}

int main(void)
{
	char small[8];
	FILE *f;
	char *mem = NULL;
	size_t memlen = 0;

	expect("main", "main", "plain ASCII stays");
	expect("std::vector<int>::push_back(int const&)", "std::vector<int>::push_back(int const&)",
	       "C++ punctuation stays");
	expect("x\nxprof: wrote /e", "x\\nxprof: wrote /e", "a newline cannot start a forged line");
	expect("\x1b[31mred\x1b[0m", "\\x1b[31mred\\x1b[0m", "ESC is written \\x1b");
	expect("a\tb\rc\x7f", "a\\tb\\rc\\x7f", "tab, carriage return and DEL");
	expect("back\\slash", "back\\\\slash", "a backslash is doubled, so escapes are unambiguous");
	expect("caf\xc3\xa9 \xe6\x97\xa5\xe6\x9c\xac", "caf\xc3\xa9 \xe6\x97\xa5\xe6\x9c\xac", "UTF-8 text stays");
	expect("\xc2\x9b" "2J", "\\xc2\\x9b2J", "a C1 control (U+009B, CSI) in UTF-8 is escaped");
	expect("\x9b" "2J", "\\x9b2J", "a raw C1 byte is escaped");
	expect("\xc0\xaf", "\\xc0\\xaf", "an overlong form is escaped");
	expect("\xe2\x80\xae" "cba", "\\xe2\\x80\\xaecba", "a right-to-left override is escaped");
	expect("\xe2\x80", "\\xe2\\x80", "a cut UTF-8 sequence is escaped");
	expect("", "", "the empty string");
	xp_escape("a long name", small, sizeof(small));
	ok(strcmp(small, "a lo...") == 0, "a cut result ends in ... and fits: \"%s\"", small);
	xp_escape("\n\n\n\n\n", small, sizeof(small));
	ok(strlen(small) < sizeof(small), "a cut escape still fits the buffer: \"%s\"", xp_esc(small));
	f = open_memstream(&mem, &memlen);
	ok(f && xp_fputs_escaped("t\x1b[1m\n", f) == 0 && fclose(f) == 0 && strcmp(mem, "t\\x1b[1m\\n") == 0,
	   "xp_fputs_escaped writes the same form to a stream");
	free(mem);
	ok(strcmp(xp_esc("a\n"), "a\\n") == 0 && strcmp(xp_esc(NULL), "") == 0, "xp_esc, and NULL as empty");
	(void)skip, (void)read_file, (void)count_entries; /* tap.h's, unused here */
	printf("1..%d\n", test_no);
	return failures != 0;
}
