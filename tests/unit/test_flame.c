/* tests/unit/test_flame.c — unit tests for proto/flame.c and the atomic
 * writer under it: folded lines merged, sorted and escaped; SVG that parses
 * as XML with one titled frame per node, escaped names, the viewer script,
 * empty and very deep input.  Prints TAP; exits 0 only if all pass.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "proto/profile.h"
#include "tests/unit/tap.h"
#include "proto/profile.h"

#define PLAN 35
#define DEEP_FRAMES 5000
#define DEPTH_CAP 1024 /* FLAME_MAX_DEPTH in proto/flame.c */

static int have_python, have_xmllint;

static int count_substr(const char *s, const char *needle)
{
	int n = 0;

	for (; (s = strstr(s, needle)); s += strlen(needle))
		n++;
	return n;
}

/* The fill of the first frame whose title starts with title_prefix. */
static int fill_of(const char *svg, const char *title_prefix, char *fill, size_t len)
{
	char key[128];
	const char *p, *f, *end;

	snprintf(key, sizeof(key), "<title>%s", title_prefix);
	p = strstr(svg, key);
	f = p ? strstr(p, "fill=\"") : NULL;
	end = f ? strchr(f + 6, '"') : NULL;
	if (!end || (size_t)(end - f - 6) >= len)
		return -1;
	memcpy(fill, f + 6, (size_t)(end - f - 6));
	fill[end - f - 6] = '\0';
	return 0;
}

static int parses_as_xml(const char *path)
{
	char cmd[512];

	snprintf(cmd, sizeof(cmd),
		 "python3 -c 'import xml.dom.minidom,sys; xml.dom.minidom.parse(sys.argv[1])' '%s'", path);
	return system(cmd) == 0;
}

static void check_xml(const char *path, const char *what)
{
	char cmd[512];

	if (have_python)
		ok(parses_as_xml(path), "%s parses as XML (python3 minidom)", what);
	else
		skip("no python3", "%s parses as XML (python3 minidom)", what);
	if (have_xmllint) {
		snprintf(cmd, sizeof(cmd), "xmllint --noout '%s'", path);
		ok(system(cmd) == 0, "%s passes xmllint --noout", what);
	} else {
		skip("no xmllint", "%s passes xmllint --noout", what);
	}
}

static void test_atomic_writer(const char *dir)
{
	char *path, *missing;
	struct stat st;
	size_t len;
	char *got;
	int err;

	if (asprintf(&path, "%s/raw.bin", dir) < 0 || asprintf(&missing, "%s/nope/raw.bin", dir) < 0)
		exit(2);
	err = xp_write_file_atomic(path, "hello\0world", 11);
	got = read_file(path, &len);
	ok(err == 0 && got && len == 11 && !memcmp(got, "hello\0world", 11),
	   "xp_write_file_atomic writes the bytes as given (%d)", err);
	ok(stat(path, &st) == 0 && (st.st_mode & 0777) == 0644 && count_entries(dir, ".raw.bin.") == 0,
	   "the file has mode 0644 and no temp file is left");
	err = xp_write_file_atomic(missing, "x", 1);
	ok(err == -ENOENT && count_entries(dir, ".raw") == 0 && count_entries(dir, "nope") == 0,
	   "xp_write_file_atomic into a missing directory fails with -ENOENT, leaves nothing (%d)", err);
	free(got);
	unlink(path);
	free(path);
	free(missing);
}

static void test_folded(const char *dir)
{
	static const char *const ac[] = { "a", "c" }, *const ab[] = { "a", "b" };
	static const char *const odd[] = { "main", "semi;colon", "new\nline\r\ttab",
					   "std::vector<int, std::allocator<int> >::push_back(int const&)" };
	static const char *const unnamed[] = { "main", NULL, "" };
	const struct xp_flame_stack merged[] = {
		{ ac, 2, 1 },
		{ ab, 2, 3 },
		{ ab, 2, 2 },
		{ ab, 1, 7 },
		{ ac, 2, 0 },
	};
	const struct xp_flame_stack weird[] = {
		{ odd, 4, 5 },
		{ unnamed, 3, 2 },
		{ NULL, 0, 4 },
	};
	const char *want;
	char *path, *missing, *got;
	size_t len;
	int err;

	if (asprintf(&path, "%s/out.folded", dir) < 0 || asprintf(&missing, "%s/nope/out.folded", dir) < 0)
		exit(2);
	err = xp_folded_write(path, merged, sizeof(merged) / sizeof(merged[0]));
	got = read_file(path, NULL);
	ok(err == 0 && got && !strcmp(got, "a 7\na;b 5\na;c 1\n"),
	   "folded: identical stacks merged, lines sorted, zero values dropped (%d)", err);
	if (got && strcmp(got, "a 7\na;b 5\na;c 1\n"))
		printf("# got:\n%s", got);
	free(got);

	err = xp_folded_write(path, weird, sizeof(weird) / sizeof(weird[0]));
	got = read_file(path, NULL);
	want = "[unknown] 4\n"
	       "main;[unknown];[unknown] 2\n"
	       "main;semi:colon;new line  tab;"
	       "std::vector<int, std::allocator<int> >::push_back(int const&) 5\n";
	ok(err == 0 && got && !strcmp(got, want),
	   "folded: ';' becomes ':', line breaks and tabs spaces, C++ spaces kept, no name is [unknown]");
	if (got && strcmp(got, want))
		printf("# got:\n%s", got);
	free(got);

	err = xp_folded_write(path, NULL, 0);
	got = read_file(path, &len);
	ok(err == 0 && got && len == 0, "folded: no stacks writes an empty file (%d)", err);
	free(got);

	err = xp_folded_write(missing, merged, 1);
	ok(err == -ENOENT && count_entries(dir, ".out.folded") == 0 && count_entries(dir, "nope") == 0,
	   "folded into a missing directory fails with -ENOENT and leaves nothing (%d)", err);
	unlink(path);
	free(path);
	free(missing);
}

static void test_svg_small(const char *dir)
{
	static const char *const ab[] = { "a", "b" }, *const ac[] = { "a", "c" };
	static const char *const cb[] = { "c", "b" };
	const struct xp_flame_stack v[] = { { ac, 2, 1 }, { ab, 2, 3 } };
	const struct xp_flame_stack thirds[] = { { ab, 2, 1 }, { cb, 2, 2 } };
	char fill1[64], fill2[64];
	char *path, *svg;
	int err;

	if (asprintf(&path, "%s/small.svg", dir) < 0)
		exit(2);
	err = xp_flamegraph_write(path, "CPU & <friends>", "samples", v, 2);
	svg = read_file(path, NULL);
	ok(err == 0 && svg && !strncmp(svg, "<?xml", 5), "svg: a;b 3, a;c 1 written (%d)", err);
	if (!svg)
		svg = strdup("");
	check_xml(path, "svg of a small tree");
	ok(count_substr(svg, "<title>") == 4, "one <title> per node: all, a, b, c (%d)",
	   count_substr(svg, "<title>"));
	ok(strstr(svg, "<title>all (4 samples, 100%)</title>") && strstr(svg, "<title>a (4 samples, 100%)</title>"),
	   "root and a: 4 samples, 100%%");
	ok(strstr(svg, "<title>b (3 samples, 75%)</title>") && strstr(svg, "<title>c (1 samples, 25%)</title>"),
	   "b: 3 samples, 75%%; c: 1 samples, 25%%");
	ok(strstr(svg, ">CPU &amp; &lt;friends&gt;</text>") != NULL, "the title is on top, escaped");
	ok(strstr(svg, "<script type=\"text/ecmascript\"><![CDATA[") && strstr(svg, "]]></script>") &&
		   strstr(svg, "function zoom(") && strstr(svg, "function search(") &&
		   strstr(svg, "'Matched: '") && strstr(svg, "ctrlKey"),
	   "the viewer script is there: zoom, search with a matched share, Ctrl-F");
	ok(strstr(svg, ">Reset zoom</text>") && strstr(svg, ">Search</text>") && strstr(svg, "id=\"details\""),
	   "controls and a details line are there");
	ok(strstr(svg, "width=\"1200\"") != NULL, "the image is 1200 wide");
	free(svg);

	err = xp_flamegraph_write(path, "thirds", "ms", thirds, 2);
	svg = read_file(path, NULL);
	if (!svg)
		svg = strdup("");
	ok(err == 0 && strstr(svg, "<title>b (1 ms, 33.33%)</title>") && strstr(svg, "<title>c (2 ms, 66.67%)</title>"),
	   "the unit argument is used, percentages get two decimals");
	ok(fill_of(svg, "b (1 ms", fill1, sizeof(fill1)) == 0 && fill_of(svg, "b (2 ms", fill2, sizeof(fill2)) == 0 &&
		   !strcmp(fill1, fill2),
	   "b under a and b under c have one colour (%s)", fill1);
	ok(fill_of(svg, "a (1 ms", fill1, sizeof(fill1)) == 0 && strcmp(fill1, fill2),
	   "a has another colour (%s)", fill1);
	unlink(path);
	free(svg);
	free(path);
}

static void test_svg_names(const char *dir)
{
	static const char *const cxx[] = {
		"main", "std::vector<int, std::allocator<int> >::push_back(int const&)",
		"it's \"quoted\" & so", "bad \xff\xfe utf-8 \x01 ctl", "caf\xc3\xa9",
	};
	const struct xp_flame_stack v[] = { { cxx, 5, 10 } };
	char *path, *svg;
	int err;

	if (asprintf(&path, "%s/names.svg", dir) < 0)
		exit(2);
	err = xp_flamegraph_write(path, "names", "samples", v, 1);
	svg = read_file(path, NULL);
	if (!svg)
		svg = strdup("");
	ok(err == 0 && strstr(svg, "<title>std::vector&lt;int, std::allocator&lt;int&gt; &gt;::push_back(int const&amp;) (10 samples, 100%)</title>"),
	   "a C++ name is escaped in its title (%d)", err);
	ok(!strstr(svg, "<int"), "no raw '<' of a name is left");
	ok(strstr(svg, "it&apos;s &quot;quoted&quot; &amp; so (") != NULL, "quotes and & are escaped");
	check_xml(path, "svg with C++ names, bad UTF-8 and control characters");
	ok(strstr(svg, "caf\xc3\xa9 (10") != NULL, "valid UTF-8 is kept");
	unlink(path);
	free(svg);
	free(path);
}

static void test_svg_edges(const char *dir)
{
	static const char *names[DEEP_FRAMES];
	static const char *const big[] = { "big" }, *const tiny[] = { "tiny" };
	static const char *const alpha[] = { "abcdefghijklmnopqrstuvwxyz" }, *const wide[] = { "wide" };
	static const char *const narrow[] = { "narrow" };
	const struct xp_flame_stack sizes[] = { { big, 1, 1000000 }, { tiny, 1, 1 } };
	const struct xp_flame_stack labels[] = { { alpha, 1, 100 }, { wide, 1, 895 }, { narrow, 1, 5 } };
	struct xp_flame_stack deep = { names, DEEP_FRAMES, 1 };
	char *path, *missing, *svg;
	const char *narrow_g;
	int i, err;

	if (asprintf(&path, "%s/edge.svg", dir) < 0 || asprintf(&missing, "%s/nope/edge.svg", dir) < 0)
		exit(2);
	err = xp_flamegraph_write(path, "empty", "samples", NULL, 0);
	svg = read_file(path, NULL);
	if (!svg)
		svg = strdup("");
	ok(err == 0 && count_substr(svg, "<title>") == 0 && strstr(svg, "no samples"),
	   "no stacks: an empty graph with a message (%d)", err);
	check_xml(path, "empty svg");
	free(svg);

	for (i = 0; i < DEEP_FRAMES; i++)
		names[i] = i % 2 ? "recurse" : "again";
	err = xp_flamegraph_write(path, "deep", "samples", &deep, 1);
	svg = read_file(path, NULL);
	if (!svg)
		svg = strdup("");
	ok(err == 0 && count_substr(svg, "<title>") == DEPTH_CAP + 1,
	   "a %d-frame stack is cut at depth %d (%d titles)", DEEP_FRAMES, DEPTH_CAP,
	   count_substr(svg, "<title>"));
	free(svg);

	err = xp_flamegraph_write(path, "slivers", "samples", sizes, 2);
	svg = read_file(path, NULL);
	if (!svg)
		svg = strdup("");
	ok(err == 0 && strstr(svg, "<title>big") && !strstr(svg, "<title>tiny"),
	   "a frame far narrower than a pixel is left out");
	free(svg);

	/* 10% of 1180 px: room for (118 - 2 * 3) / 7.08 = 15 characters. */
	err = xp_flamegraph_write(path, "labels", "samples", labels, 3);
	svg = read_file(path, NULL);
	if (!svg)
		svg = strdup("");
	ok(err == 0 && strstr(svg, ">abcdefghijklm..</text>") && strstr(svg, ">wide</text>"),
	   "labels are cut with \"..\" to fit, short ones kept whole");
	narrow_g = strstr(svg, "<title>narrow");
	ok(narrow_g && strstr(narrow_g, "</g>") < (strstr(narrow_g, "<text") ?: svg + strlen(svg)),
	   "a frame too narrow for three characters has no label");
	free(svg);

	err = xp_flamegraph_write(missing, "x", "samples", sizes, 2);
	ok(err == -ENOENT && count_entries(dir, ".edge.svg") == 0 && count_entries(dir, "nope") == 0,
	   "svg into a missing directory fails with -ENOENT and leaves nothing (%d)", err);
	unlink(path);
	free(path);
	free(missing);
}

int main(void)
{
	char dir[] = "/tmp/test_flame.XXXXXX";

	printf("1..%d\n", PLAN);
	have_python = system("python3 -c 'import xml.dom.minidom' >/dev/null 2>&1") == 0;
	have_xmllint = system("command -v xmllint >/dev/null 2>&1") == 0;
	if (!mkdtemp(dir)) {
		ok(0, "mkdtemp: %s", strerror(errno));
		return 1;
	}
	test_atomic_writer(dir);
	test_folded(dir);
	test_svg_small(dir);
	test_svg_names(dir);
	test_svg_edges(dir);
	ok(count_entries(dir, "") == 0, "nothing is left in the test directory");
	rmdir(dir);
	if (test_no != PLAN) {
		printf("# planned %d tests but ran %d\n", PLAN, test_no);
		return 1;
	}
	return failures ? 1 : 0;
}
