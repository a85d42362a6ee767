/* proto/flame.c — folded stacks and an interactive SVG flame graph from
 * merged stacks.  Both are built whole in memory and then written with
 * xp_write_file_atomic, so a reader never sees half a file.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto/profile.h"

/* What a frame without a name (NULL or "") and a stack without frames are
 * shown as, in both formats, so their samples still count. */
#define UNKNOWN_FRAME "[unknown]"

/* Frames deeper than this (counted from the root) are cut from the SVG: a
 * runaway recursion would otherwise make a picture tens of thousands of
 * pixels high.  The cut frames' samples still count in their ancestors. */
#define FLAME_MAX_DEPTH 1024

/* Geometry of the SVG, in pixels. */
#define IMAGE_WIDTH 1200
#define XPAD 10
#define PLOT_WIDTH (IMAGE_WIDTH - 2 * XPAD)
#define FRAME_HEIGHT 16
#define FONT_SIZE 12
#define TITLE_FONT_SIZE 17
#define PAD_TOP (FONT_SIZE * 3)         /* title and controls */
#define PAD_BOTTOM (FONT_SIZE * 2 + 10) /* details line */
#define LABEL_PAD 3                     /* left of a label, and kept free on its right */
#define TEXT_DY 11                      /* label baseline below a frame's top */
/* Verdana's average advance is about 0.59 em; labels are cut by this
 * estimate rather than measured, so they may end a little early. */
#define CHAR_WIDTH (FONT_SIZE * 0.59)
/* Frames narrower than this are left out of the SVG (their samples stay in
 * their parent's width): a profile of many distinct stacks is otherwise
 * mostly invisible slivers, and megabytes of them. */
#define MIN_FRAME_PX 0.1

#define HIGHLIGHT_FILL "rgb(230,0,230)"

/* ---- an output buffer ------------------------------------------------ */

/* Grows as needed; the first allocation failure is kept in err and later
 * appends are dropped, so callers check once at the end. */
struct outbuf {
	char *buf;
	size_t len, cap;
	int err;
};

static int out_reserve(struct outbuf *o, size_t more)
{
	size_t cap;
	char *grown;

	if (o->err)
		return o->err;
	if (o->cap - o->len > more)
		return 0;
	if (more > SIZE_MAX / 2 - o->len) {
		o->err = -ENOMEM;
		return o->err;
	}
	cap = o->cap ? o->cap : 4096;
	while (cap - o->len <= more)
		cap *= 2;
	grown = realloc(o->buf, cap);
	if (!grown) {
		o->err = -ENOMEM;
		return o->err;
	}
	o->buf = grown;
	o->cap = cap;
	return 0;
}

static void out_put(struct outbuf *o, const char *s, size_t n)
{
	if (out_reserve(o, n))
		return;
	memcpy(o->buf + o->len, s, n);
	o->len += n;
	o->buf[o->len] = '\0';
}

static void out_puts(struct outbuf *o, const char *s)
{
	out_put(o, s, strlen(s));
}

static void out_printf(struct outbuf *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void out_printf(struct outbuf *o, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0) {
		o->err = o->err ? o->err : -EINVAL;
		return;
	}
	if (out_reserve(o, (size_t)n))
		return;
	va_start(ap, fmt);
	vsnprintf(o->buf + o->len, o->cap - o->len, fmt, ap);
	va_end(ap);
	o->len += (size_t)n;
}

static void out_release(struct outbuf *o)
{
	free(o->buf);
	memset(o, 0, sizeof(*o));
}

static uint64_t add_saturating(uint64_t a, uint64_t b)
{
	return a > UINT64_MAX - b ? UINT64_MAX : a + b;
}

static const char *frame_name(const char *name)
{
	return name && *name ? name : UNKNOWN_FRAME;
}

/* ---- folded ---------------------------------------------------------- */

/* flamegraph.pl, inferno and speedscope take the value after the last
 * space of a line and split the rest at ';', so spaces inside names (C++
 * templates) are fine; only ';' and line breaks would change the stack. */
static void put_folded_name(struct outbuf *o, const char *name)
{
	const char *s;

	for (s = name; *s; s++) {
		unsigned char c = (unsigned char)*s;
		char safe = (char)c;

		if (c == ';')
			safe = ':';
		else if (c < 0x20 || c == 0x7f)
			safe = ' ';
		out_put(o, &safe, 1);
	}
}

struct folded_line {
	size_t off; /* into the joined text; a pointer once the text stops growing */
	const char *text;
	uint64_t value;
};

static int compare_folded(const void *a, const void *b)
{
	const struct folded_line *x = a, *y = b;

	return strcmp(x->text, y->text); /* bytewise: strcmp compares as unsigned char */
}

int xp_folded_write(const char *path, const struct xp_flame_stack *v, size_t n)
{
	struct outbuf text = { 0 }, out = { 0 };
	struct folded_line *lines;
	size_t i, k, nlines = 0;
	int err;

	if (!path || (!v && n))
		return -EINVAL;
	lines = calloc(n ? n : 1, sizeof(*lines));
	if (!lines)
		return -ENOMEM;

	/* Each stack as "root;...;leaf\0" in one buffer, then sorted so
	 * identical stacks (also those made identical by the replacements)
	 * are neighbours and the output does not depend on input order. */
	for (i = 0; i < n; i++) {
		if (!v[i].value)
			continue; /* no samples, no line */
		lines[nlines].off = text.len;
		lines[nlines].value = v[i].value;
		nlines++;
		if (!v[i].nframes)
			out_puts(&text, UNKNOWN_FRAME);
		for (k = 0; k < v[i].nframes; k++) {
			if (k)
				out_put(&text, ";", 1);
			put_folded_name(&text, frame_name(v[i].frames[k]));
		}
		out_put(&text, "", 1);
	}
	err = text.err;
	if (err)
		goto out_free;
	for (i = 0; i < nlines; i++)
		lines[i].text = text.buf + lines[i].off;
	qsort(lines, nlines, sizeof(*lines), compare_folded);

	for (i = 0; i < nlines; i = k) {
		uint64_t sum = lines[i].value;

		for (k = i + 1; k < nlines && !strcmp(lines[k].text, lines[i].text); k++)
			sum = add_saturating(sum, lines[k].value);
		out_printf(&out, "%s %" PRIu64 "\n", lines[i].text, sum);
	}
	err = out.err;
	if (!err)
		err = xp_write_file_atomic(path, out.buf, out.len);
out_free:
	out_release(&out);
	out_release(&text);
	free(lines);
	return err;
}

/* ---- the SVG's tree -------------------------------------------------- */

#define NO_NODE UINT32_MAX

/* One frame of the merged tree: all stacks that share the path from the
 * root to it.  value counts the samples of every stack through it; x is
 * where it starts, in samples from the left edge, once laid out. */
struct flame_node {
	const char *name; /* the caller's string; never NULL */
	uint64_t value, x;
	uint32_t parent, first_child, next_sibling;
	uint32_t name_hash;
	uint16_t depth; /* root ("all") is 0 */
};

/* Node 0 is the root.  Nodes are created parent first, so walking them in
 * index order visits every parent before its children.  At most one node
 * per frame kept from the input (plus the root) is ever created. */
struct flame_tree {
	struct flame_node *nodes;
	uint32_t count, cap;
	uint32_t *slots; /* (parent, name) -> node index + 1; 0 = empty */
	size_t nslots;   /* a power of two, at least twice cap */
};

/* FNV-1a, then a finalizer so the low bits used for the table and the
 * colour depend on every byte. */
static uint32_t hash_name(const char *s)
{
	uint32_t h = 2166136261u;

	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 16777619u;
	h ^= h >> 16;
	h *= 0x85ebca6bu;
	h ^= h >> 13;
	h *= 0xc2b2ae35u;
	h ^= h >> 16;
	return h;
}

static size_t slot_of(const struct flame_tree *t, uint32_t parent, uint32_t name_hash)
{
	uint64_t h = ((uint64_t)parent << 32 | name_hash) * 0x9e3779b97f4a7c15ull;

	return (size_t)(h >> 17) & (t->nslots - 1);
}

/* The child of parent called name, created if new. */
static uint32_t child_of(struct flame_tree *t, uint32_t parent, const char *name)
{
	uint32_t hash = hash_name(name);
	size_t s = slot_of(t, parent, hash);
	struct flame_node *node;
	uint32_t idx;

	for (; t->slots[s]; s = (s + 1) & (t->nslots - 1)) {
		node = &t->nodes[t->slots[s] - 1];
		if (node->parent == parent && node->name_hash == hash && !strcmp(node->name, name))
			return t->slots[s] - 1;
	}
	/* Cannot run out: cap counts every frame the caller will insert. */
	idx = t->count++;
	node = &t->nodes[idx];
	memset(node, 0, sizeof(*node));
	node->name = name;
	node->name_hash = hash;
	node->parent = parent;
	node->depth = (uint16_t)(t->nodes[parent].depth + 1);
	node->first_child = NO_NODE;
	node->next_sibling = t->nodes[parent].first_child;
	t->nodes[parent].first_child = idx;
	t->slots[s] = idx + 1;
	return idx;
}

static size_t frames_kept(const struct xp_flame_stack *s)
{
	if (!s->nframes)
		return 1; /* UNKNOWN_FRAME */
	return s->nframes < FLAME_MAX_DEPTH ? s->nframes : FLAME_MAX_DEPTH;
}

static void tree_release(struct flame_tree *t)
{
	free(t->nodes);
	free(t->slots);
	memset(t, 0, sizeof(*t));
}

static int tree_build(struct flame_tree *t, const struct xp_flame_stack *v, size_t n)
{
	size_t i, k, frames = 1; /* the root */

	memset(t, 0, sizeof(*t));
	for (i = 0; i < n; i++) {
		if (!v[i].value)
			continue;
		frames += frames_kept(&v[i]);
		if (frames >= UINT32_MAX / 4)
			return -E2BIG;
	}
	t->cap = (uint32_t)frames;
	for (t->nslots = 16; t->nslots < 2 * (size_t)t->cap; t->nslots *= 2)
		;
	t->nodes = malloc(t->cap * sizeof(*t->nodes));
	t->slots = calloc(t->nslots, sizeof(*t->slots));
	if (!t->nodes || !t->slots) {
		tree_release(t);
		return -ENOMEM;
	}
	t->count = 1;
	memset(&t->nodes[0], 0, sizeof(t->nodes[0]));
	t->nodes[0].name = "all";
	t->nodes[0].name_hash = hash_name("all");
	t->nodes[0].parent = NO_NODE;
	t->nodes[0].first_child = NO_NODE;
	t->nodes[0].next_sibling = NO_NODE;

	for (i = 0; i < n; i++) {
		size_t depth = frames_kept(&v[i]);
		uint32_t cur = 0;

		if (!v[i].value)
			continue;
		t->nodes[0].value = add_saturating(t->nodes[0].value, v[i].value);
		for (k = 0; k < depth; k++) {
			const char *name = v[i].nframes ? frame_name(v[i].frames[k]) : UNKNOWN_FRAME;

			cur = child_of(t, cur, name);
			t->nodes[cur].value = add_saturating(t->nodes[cur].value, v[i].value);
		}
	}
	return 0;
}

static int compare_nodes_by_name(const void *a, const void *b)
{
	const struct flame_node *const *x = a, *const *y = b;

	return strcmp((*x)->name, (*y)->name);
}

/* Children in name order, as flamegraph.pl draws them: the same function
 * lands at the same place in two graphs of the same program. */
static int tree_sort_children(struct flame_tree *t)
{
	struct flame_node **kids;
	uint32_t i, c;
	size_t nkids, k;

	kids = malloc(t->count * sizeof(*kids));
	if (!kids)
		return -ENOMEM;
	for (i = 0; i < t->count; i++) {
		nkids = 0;
		for (c = t->nodes[i].first_child; c != NO_NODE; c = t->nodes[c].next_sibling)
			kids[nkids++] = &t->nodes[c];
		if (nkids < 2)
			continue;
		qsort(kids, nkids, sizeof(*kids), compare_nodes_by_name);
		t->nodes[i].first_child = (uint32_t)(kids[0] - t->nodes);
		for (k = 0; k + 1 < nkids; k++)
			kids[k]->next_sibling = (uint32_t)(kids[k + 1] - t->nodes);
		kids[nkids - 1]->next_sibling = NO_NODE;
	}
	free(kids);
	return 0;
}

/* Each child starts where its previous sibling ends; parents come first. */
static void tree_layout(struct flame_tree *t)
{
	uint32_t i, c;

	t->nodes[0].x = 0;
	for (i = 0; i < t->count; i++) {
		uint64_t x = t->nodes[i].x;

		for (c = t->nodes[i].first_child; c != NO_NODE; c = t->nodes[c].next_sibling) {
			t->nodes[c].x = x;
			x = add_saturating(x, t->nodes[c].value);
		}
	}
}

/* ---- the SVG's text -------------------------------------------------- */

/* Length of the well-formed UTF-8 sequence at s if it is a character XML
 * 1.0 allows, else 0.  ASCII is left to the caller. */
static size_t xml_char_len(const unsigned char *s)
{
	unsigned char c = s[0];

	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf)
		return (s[1] & 0xc0) == 0x80 ? 2 : 0;
	if (c >= 0xe0 && c <= 0xef) {
		if ((s[1] & 0xc0) != 0x80 || (s[2] & 0xc0) != 0x80)
			return 0;
		if ((c == 0xe0 && s[1] < 0xa0) ||                  /* overlong */
		    (c == 0xed && s[1] >= 0xa0) ||                 /* surrogate */
		    (c == 0xef && s[1] == 0xbf && s[2] >= 0xbe)) /* U+FFFE, U+FFFF */
			return 0;
		return 3;
	}
	if (c >= 0xf0 && c <= 0xf4) {
		if ((s[1] & 0xc0) != 0x80 || (s[2] & 0xc0) != 0x80 || (s[3] & 0xc0) != 0x80)
			return 0;
		if ((c == 0xf0 && s[1] < 0x90) || (c == 0xf4 && s[1] >= 0x90))
			return 0;
		return 4;
	}
	return 0;
}

/* Characters as put_xml counts them: one per UTF-8 sequence or bad byte. */
static size_t display_len(const char *s)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t n = 0, len;

	for (; *p; p += len ? len : 1, n++)
		len = xml_char_len(p);
	return n;
}

/* Up to maxchars characters of s as XML text or attribute value: markup
 * escaped, control characters as spaces, and bytes that are not UTF-8 as
 * U+FFFD, since one bad byte makes the whole document unreadable. */
static void put_xml(struct outbuf *o, const char *s, size_t maxchars)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t len;

	for (; *p && maxchars; p += len ? len : 1, maxchars--) {
		len = xml_char_len(p);
		if (!len)
			out_puts(o, "\xef\xbf\xbd");
		else if (len > 1)
			out_put(o, (const char *)p, len);
		else if (*p == '&')
			out_puts(o, "&amp;");
		else if (*p == '<')
			out_puts(o, "&lt;");
		else if (*p == '>')
			out_puts(o, "&gt;");
		else if (*p == '"')
			out_puts(o, "&quot;");
		else if (*p == '\'')
			out_puts(o, "&apos;");
		else if (*p < 0x20 || *p == 0x7f)
			out_put(o, " ", 1);
		else
			out_put(o, (const char *)p, 1);
	}
}

/* "75%", "33.33%", "<0.01%": two decimals at most, trailing zeros dropped. */
static void put_percent(struct outbuf *o, uint64_t part, uint64_t whole)
{
	uint64_t hundredths = (uint64_t)((long double)part * 10000 / whole + 0.5L);

	if (!hundredths && part) {
		out_puts(o, "&lt;0.01%");
		return;
	}
	out_printf(o, "%" PRIu64, hundredths / 100);
	if (hundredths % 10)
		out_printf(o, ".%02u", (unsigned)(hundredths % 100));
	else if (hundredths % 100)
		out_printf(o, ".%u", (unsigned)(hundredths % 100 / 10));
	out_puts(o, "%");
}

/* A warm colour (reds to yellows) from the name alone, so one function has
 * one colour everywhere in the graph and across graphs. */
static void put_fill(struct outbuf *o, uint32_t name_hash)
{
	unsigned r = 205 + 50 * (name_hash & 0xff) / 255;
	unsigned g = 230 * ((name_hash >> 8) & 0xff) / 255;
	unsigned b = 55 * ((name_hash >> 16) & 0xff) / 255;

	out_printf(o, "rgb(%u,%u,%u)", r, g, b);
}

/* The name, cut to what fits in width with "..", or nothing when not even
 * three characters would fit.  The script's label() uses the same rule. */
static void put_label(struct outbuf *o, const char *name, double x, double y, double width)
{
	double room = (width - 2 * LABEL_PAD) / CHAR_WIDTH;
	size_t fit, len;

	if (room < 3)
		return;
	fit = (size_t)room;
	len = display_len(name);
	out_printf(o, "<text x=\"%.1f\" y=\"%.1f\">", x + LABEL_PAD, y + TEXT_DY);
	if (len <= fit) {
		put_xml(o, name, SIZE_MAX);
	} else {
		put_xml(o, name, fit - 2);
		out_puts(o, "..");
	}
	out_puts(o, "</text>");
}

/* One <g> per frame: its tooltip title, its box, maybe its label.  fg:x
 * and fg:v are the frame's start and width in samples, exact, so the
 * script can zoom and sum matches without pixel rounding. */
static void emit_frame(struct outbuf *o, const struct flame_node *node, uint64_t total,
		       const char *unit, int height)
{
	double scale = (double)PLOT_WIDTH / (double)total;
	double x = XPAD + (double)node->x * scale;
	double width = (double)node->value * scale;
	int y = height - PAD_BOTTOM - (node->depth + 1) * FRAME_HEIGHT;

	out_printf(o, "<g fg:x=\"%" PRIu64 "\" fg:v=\"%" PRIu64 "\"><title>", node->x, node->value);
	put_xml(o, node->name, SIZE_MAX);
	out_printf(o, " (%" PRIu64 " ", node->value);
	put_xml(o, unit, SIZE_MAX);
	out_puts(o, ", ");
	put_percent(o, node->value, total);
	out_printf(o, ")</title><rect x=\"%.1f\" y=\"%d\" width=\"%.1f\" height=\"%d\" fill=\"", x, y,
		   width, FRAME_HEIGHT - 1);
	put_fill(o, node->name_hash);
	out_puts(o, "\"/>");
	put_label(o, node->name, x, y, width);
	out_puts(o, "</g>\n");
}

static const char svg_style[] =
	"<style type=\"text/css\">\n"
	"text { font-family: Verdana, sans-serif; font-size: 12px; fill: #000; }\n"
	"#title { font-size: 17px; text-anchor: middle; }\n"
	".control { cursor: pointer; fill: #1a4c9c; }\n"
	".control:hover { text-decoration: underline; }\n"
	"#frames > g { cursor: pointer; }\n"
	"#frames > g:hover > rect { stroke: #000; stroke-width: 0.5; }\n"
	"#frames text { pointer-events: none; }\n"
	"</style>\n";

/* The viewer: zoom on click, reset, search by regular expression (also
 * Ctrl-F), details on hover.  Frames are read back from the document, so
 * the SVG stays the one source of truth.  Written for this file; ES5 so
 * that any browser that opens SVG runs it. */
static const char svg_script_body[] =
	"var NS = 'urn:xprof:flame', SVGNS = 'http://www.w3.org/2000/svg';\n"
	"var frames = [], total = 0, lastTerm = '', searching = false;\n"
	"var box = document.getElementById('frames');\n"
	"var details = document.getElementById('details');\n"
	"var matched = document.getElementById('matched');\n"
	"var resetCtl = document.getElementById('reset');\n"
	"var searchCtl = document.getElementById('search');\n"
	"\n"
	"function fgAttr(el, name) {\n"
	"  var v = el.getAttributeNS(NS, name);\n"
	"  return v !== null && v !== '' ? v : el.getAttribute('fg:' + name);\n"
	"}\n"
	"\n"
	"/* Same rule as put_label() in cmd/flame.c. */\n"
	"function label(name, width) {\n"
	"  var fit = Math.floor((width - 2 * LABEL_PAD) / CHAR_WIDTH);\n"
	"  if (!(fit >= 3)) return '';\n"
	"  return name.length <= fit ? name : name.substring(0, fit - 2) + '..';\n"
	"}\n"
	"\n"
	"function place(f, x, width) {\n"
	"  var text = label(f.name, width);\n"
	"  f.rect.setAttribute('x', x.toFixed(1));\n"
	"  f.rect.setAttribute('width', width.toFixed(1));\n"
	"  if (text && !f.text) {\n"
	"    f.text = document.createElementNS(SVGNS, 'text');\n"
	"    f.text.setAttribute('y', (parseFloat(f.rect.getAttribute('y')) + TEXT_DY).toFixed(1));\n"
	"    f.g.appendChild(f.text);\n"
	"  }\n"
	"  if (f.text) {\n"
	"    f.text.setAttribute('x', (x + LABEL_PAD).toFixed(1));\n"
	"    f.text.textContent = text;\n"
	"  }\n"
	"}\n"
	"\n"
	"function show(f, ancestor) {\n"
	"  f.g.removeAttribute('display');\n"
	"  if (ancestor) f.g.setAttribute('opacity', '0.6');\n"
	"  else f.g.removeAttribute('opacity');\n"
	"}\n"
	"\n"
	"function unzoom() {\n"
	"  var scale = PLOT_WIDTH / total;\n"
	"  for (var i = 0; i < frames.length; i++) {\n"
	"    show(frames[i], false);\n"
	"    place(frames[i], XPAD + frames[i].x * scale, frames[i].v * scale);\n"
	"  }\n"
	"  resetCtl.setAttribute('visibility', 'hidden');\n"
	"}\n"
	"\n"
	"/* c fills the width; its ancestors span it, faded; the rest hide. */\n"
	"function zoom(c) {\n"
	"  if (c.d === 0) { unzoom(); return; }\n"
	"  var scale = PLOT_WIDTH / c.v, end = c.x + c.v;\n"
	"  for (var i = 0; i < frames.length; i++) {\n"
	"    var f = frames[i];\n"
	"    if (f === c || (f.d > c.d && f.x >= c.x && f.x + f.v <= end)) {\n"
	"      show(f, false);\n"
	"      place(f, XPAD + (f.x - c.x) * scale, f.v * scale);\n"
	"    } else if (f.d < c.d && f.x <= c.x && f.x + f.v >= end) {\n"
	"      show(f, true);\n"
	"      place(f, XPAD, PLOT_WIDTH);\n"
	"    } else {\n"
	"      f.g.setAttribute('display', 'none');\n"
	"    }\n"
	"  }\n"
	"  resetCtl.setAttribute('visibility', 'visible');\n"
	"}\n"
	"\n"
	"function clearSearch() {\n"
	"  for (var i = 0; i < frames.length; i++)\n"
	"    frames[i].rect.setAttribute('fill', frames[i].fill);\n"
	"  matched.textContent = '';\n"
	"  searchCtl.textContent = 'Search';\n"
	"  searching = false;\n"
	"}\n"
	"\n"
	"function search() {\n"
	"  var term = window.prompt('Search frames (regular expression):', lastTerm);\n"
	"  var re, hits = [], sum = 0, end = -1, i;\n"
	"  if (term === null) return;\n"
	"  if (term === '') { clearSearch(); return; }\n"
	"  try { re = new RegExp(term); } catch (e) {\n"
	"    window.alert('not a regular expression: ' + e.message);\n"
	"    return;\n"
	"  }\n"
	"  lastTerm = term;\n"
	"  for (i = 0; i < frames.length; i++) {\n"
	"    var f = frames[i];\n"
	"    var hit = re.test(f.name);\n"
	"    f.rect.setAttribute('fill', hit ? HIGHLIGHT : f.fill);\n"
	"    if (hit) hits.push(f);\n"
	"  }\n"
	"  /* A match inside a match (recursion) is already counted: frames\n"
	"   * either nest or do not overlap, so walk them left to right. */\n"
	"  hits.sort(function (a, b) { return a.x - b.x || b.v - a.v; });\n"
	"  for (i = 0; i < hits.length; i++) {\n"
	"    if (hits[i].x >= end) { sum += hits[i].v; end = hits[i].x + hits[i].v; }\n"
	"  }\n"
	"  matched.textContent = 'Matched: ' + (total ? 100 * sum / total : 0).toFixed(1) + '%';\n"
	"  searchCtl.textContent = 'Reset search';\n"
	"  searching = true;\n"
	"}\n"
	"\n"
	"function frameOf(el) {\n"
	"  for (; el && el !== box; el = el.parentNode)\n"
	"    if (el.parentNode === box) return frames[el.fgIndex];\n"
	"  return null;\n"
	"}\n"
	"\n"
	"(function init() {\n"
	"  var unit = fgAttr(box, 'unit') || '';\n"
	"  for (var g = box.firstElementChild; g; g = g.nextElementSibling) {\n"
	"    var rect = g.getElementsByTagNameNS(SVGNS, 'rect')[0];\n"
	"    var title = g.getElementsByTagNameNS(SVGNS, 'title')[0].textContent;\n"
	"    var value = fgAttr(g, 'v');\n"
	"    var cut = title.lastIndexOf(' (' + value + ' ' + unit + ', ');\n"
	"    var f = {\n"
	"      g: g, rect: rect, fill: rect.getAttribute('fill'),\n"
	"      text: g.getElementsByTagNameNS(SVGNS, 'text')[0] || null,\n"
	"      title: title, name: cut >= 0 ? title.substring(0, cut) : title,\n"
	"      x: Number(fgAttr(g, 'x')), v: Number(value),\n"
	"      d: Math.round((BASE_Y - parseFloat(rect.getAttribute('y'))) / FRAME_HEIGHT) - 1\n"
	"    };\n"
	"    if (f.d === 0) total = f.v;\n"
	"    g.fgIndex = frames.length;\n"
	"    frames.push(f);\n"
	"  }\n"
	"  box.addEventListener('click', function (e) {\n"
	"    var f = frameOf(e.target);\n"
	"    if (f) zoom(f);\n"
	"  });\n"
	"  box.addEventListener('mouseover', function (e) {\n"
	"    var f = frameOf(e.target);\n"
	"    details.textContent = f ? f.title : ' ';\n"
	"  });\n"
	"  box.addEventListener('mouseout', function () { details.textContent = ' '; });\n"
	"  resetCtl.addEventListener('click', unzoom);\n"
	"  searchCtl.addEventListener('click', function () {\n"
	"    if (searching) clearSearch(); else search();\n"
	"  });\n"
	"  window.addEventListener('keydown', function (e) {\n"
	"    if ((e.ctrlKey || e.metaKey) && (e.key === 'f' || e.key === 'F' || e.keyCode === 70)) {\n"
	"      e.preventDefault();\n"
	"      search();\n"
	"    } else if (e.key === 'Escape' && searching) {\n"
	"      clearSearch();\n"
	"    }\n"
	"  });\n"
	"})();\n";

/* scale: pixels per sample.  A child is never wider than its parent, so a
 * frame left out never has a drawn descendant. */
static int drawn(const struct flame_node *node, double scale)
{
	return (double)node->value * scale >= MIN_FRAME_PX;
}

static void emit_svg(struct outbuf *o, const struct flame_tree *t, const char *title,
		     const char *unit)
{
	uint64_t total = t->nodes[0].value;
	double scale = total ? (double)PLOT_WIDTH / (double)total : 0;
	unsigned max_depth = 0;
	int height, empty = !total;
	uint32_t i;

	for (i = 0; !empty && i < t->count; i++) {
		if (drawn(&t->nodes[i], scale) && t->nodes[i].depth > max_depth)
			max_depth = t->nodes[i].depth;
	}
	height = PAD_TOP + (int)(max_depth + (empty ? 2 : 1)) * FRAME_HEIGHT + PAD_BOTTOM;

	out_puts(o, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
	out_printf(o,
		   "<svg version=\"1.1\" width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\" "
		   "xmlns=\"http://www.w3.org/2000/svg\" xmlns:fg=\"urn:xprof:flame\">\n",
		   IMAGE_WIDTH, height, IMAGE_WIDTH, height);
	out_printf(o,
		   "<!-- Flame graph written by xprof: the root is at the bottom, a frame's width is its\n"
		   "     share of the samples, children are in name order.  Click a frame to zoom, Ctrl-F\n"
		   "     to search.  Frames narrower than %.1f px are left out (their samples stay in\n"
		   "     their parent), and stacks are cut at depth %d; the folded output has them all. -->\n",
		   MIN_FRAME_PX, FLAME_MAX_DEPTH);
	out_puts(o, "<defs><linearGradient id=\"background\" x1=\"0\" y1=\"0\" x2=\"0\" y2=\"1\">"
		    "<stop offset=\"5%\" stop-color=\"#eeeeee\"/><stop offset=\"95%\" stop-color=\"#eeeeb0\"/>"
		    "</linearGradient></defs>\n");
	out_puts(o, svg_style);
	out_printf(o, "<rect x=\"0\" y=\"0\" width=\"%d\" height=\"%d\" fill=\"url(#background)\"/>\n",
		   IMAGE_WIDTH, height);
	out_printf(o, "<text id=\"title\" x=\"%d\" y=\"%d\">", IMAGE_WIDTH / 2, TITLE_FONT_SIZE + 7);
	put_xml(o, title, SIZE_MAX);
	out_puts(o, "</text>\n");
	out_printf(o, "<text id=\"reset\" class=\"control\" x=\"%d\" y=\"%d\" visibility=\"hidden\">"
		      "Reset zoom</text>\n", XPAD, TITLE_FONT_SIZE + 7);
	out_printf(o, "<text id=\"search\" class=\"control\" x=\"%d\" y=\"%d\" text-anchor=\"end\">"
		      "Search</text>\n", IMAGE_WIDTH - XPAD, TITLE_FONT_SIZE + 7);
	out_printf(o, "<text id=\"details\" x=\"%d\" y=\"%d\"> </text>\n", XPAD, height - FONT_SIZE);
	out_printf(o, "<text id=\"matched\" x=\"%d\" y=\"%d\" text-anchor=\"end\"></text>\n",
		   IMAGE_WIDTH - XPAD, height - FONT_SIZE);
	if (empty)
		out_printf(o, "<text id=\"empty\" x=\"%d\" y=\"%d\" text-anchor=\"middle\">"
			      "no samples: nothing to draw</text>\n",
			   IMAGE_WIDTH / 2, PAD_TOP + FRAME_HEIGHT + FONT_SIZE / 2);

	out_puts(o, "<g id=\"frames\" fg:unit=\"");
	put_xml(o, unit, SIZE_MAX);
	out_puts(o, "\">\n");
	for (i = 0; !empty && i < t->count; i++) {
		if (drawn(&t->nodes[i], scale))
			emit_frame(o, &t->nodes[i], total, unit, height);
	}
	out_puts(o, "</g>\n");

	/* Last, so every element it looks up already exists when it runs. */
	out_puts(o, "<script type=\"text/ecmascript\"><![CDATA[\n'use strict';\n");
	out_printf(o, "var XPAD = %d, PLOT_WIDTH = %d, FRAME_HEIGHT = %d, BASE_Y = %d;\n", XPAD,
		   PLOT_WIDTH, FRAME_HEIGHT, height - PAD_BOTTOM);
	out_printf(o, "var LABEL_PAD = %d, TEXT_DY = %d, CHAR_WIDTH = %.2f, HIGHLIGHT = '%s';\n",
		   LABEL_PAD, TEXT_DY, CHAR_WIDTH, HIGHLIGHT_FILL);
	out_puts(o, svg_script_body);
	out_puts(o, "]]></script>\n</svg>\n");
}

int xp_flamegraph_write(const char *path, const char *title, const char *unit,
			const struct xp_flame_stack *v, size_t n)
{
	struct flame_tree tree;
	struct outbuf out = { 0 };
	int err;

	if (!path || (!v && n))
		return -EINVAL;
	err = tree_build(&tree, v, n);
	if (err)
		return err;
	err = tree_sort_children(&tree);
	if (err)
		goto out_release_tree;
	tree_layout(&tree);
	emit_svg(&out, &tree, title ? title : "Flame Graph", unit && *unit ? unit : "samples");
	err = out.err;
	if (!err)
		err = xp_write_file_atomic(path, out.buf, out.len);
	out_release(&out);
out_release_tree:
	tree_release(&tree);
	return err;
}
