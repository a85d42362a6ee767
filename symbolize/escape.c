/* Strings that come from a target (comm, thread names, paths, symbol names,
 * Go strings) made safe to show: a name must not be able to forge a line of
 * xprof's output, move the cursor or recolour a terminal.  The one escaper
 * every printer uses.
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "symbolize/symbolize.h"

/* The length of the UTF-8 sequence at s that may be shown as is (a code
 * point from U+00A0 on, minus the invisible ones that reorder or break a
 * line), else 0: C1 controls (which terminals take for CSI), overlong forms,
 * surrogates and broken sequences are escaped byte by byte. */
static size_t shown_utf8(const unsigned char *s)
{
	uint32_t cp;
	size_t n, i;

	if (s[0] >= 0xc2 && s[0] <= 0xdf)
		n = 2, cp = s[0] & 0x1f;
	else if (s[0] >= 0xe0 && s[0] <= 0xef)
		n = 3, cp = s[0] & 0x0f;
	else if (s[0] >= 0xf0 && s[0] <= 0xf4)
		n = 4, cp = s[0] & 0x07;
	else
		return 0;
	for (i = 1; i < n; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (s[i] & 0x3f);
	}
	if (cp < 0xa0 || (n == 3 && cp < 0x800) || (n == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
	    (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	/* bidirectional controls and separators: "Trojan Source" */
	if (cp == 0x200e || cp == 0x200f || (cp >= 0x2028 && cp <= 0x202e) || (cp >= 0x2066 && cp <= 0x2069))
		return 0;
	return n;
}

/* Calls put for each piece of s's escaped form; stops when it returns < 0. */
static int escape_each(const char *str, int (*put)(const char *p, size_t n, void *arg), void *arg)
{
	const unsigned char *s = (const unsigned char *)str;
	char esc[5];

	while (*s) {
		size_t n = 0;

		while (s[n] >= 0x20 && s[n] < 0x7f && s[n] != '\\')
			n++;
		if (n) {
			if (put((const char *)s, n, arg) < 0)
				return -1;
			s += n;
			continue;
		}
		if (*s >= 0x80 && (n = shown_utf8(s)) > 0) {
			if (put((const char *)s, n, arg) < 0)
				return -1;
			s += n;
			continue;
		}
		if (*s == '\\')
			memcpy(esc, "\\\\", 3);
		else if (*s == '\n')
			memcpy(esc, "\\n", 3);
		else if (*s == '\t')
			memcpy(esc, "\\t", 3);
		else if (*s == '\r')
			memcpy(esc, "\\r", 3);
		else
			snprintf(esc, sizeof(esc), "\\x%02x", *s);
		if (put(esc, strlen(esc), arg) < 0)
			return -1;
		s++;
	}
	return 0;
}

struct sink {
	char *buf;
	size_t len, used;
};

static int put_buf(const char *p, size_t n, void *arg)
{
	struct sink *k = arg;

	if (k->used + n + 1 > k->len) {
		/* a cut shows as "..."; plain text may be cut anywhere, an escape
		 * or a UTF-8 character only whole */
		size_t room = k->len >= 4 ? k->len - 4 : 0;

		if (k->used > room)
			k->used = room;
		else if (p[0] != '\\' && (unsigned char)p[0] < 0x80 && room > k->used) {
			memcpy(k->buf + k->used, p, room - k->used);
			k->used = room;
		}
		if (k->len >= 4)
			memcpy(k->buf + k->used, "...", 4);
		return -1;
	}
	memcpy(k->buf + k->used, p, n);
	k->used += n;
	k->buf[k->used] = '\0';
	return 0;
}

char *xp_escape(const char *s, char *buf, size_t len)
{
	struct sink k = { buf, len, 0 };

	if (!len)
		return buf;
	buf[0] = '\0';
	escape_each(s ? s : "", put_buf, &k);
	return buf;
}

static int put_file(const char *p, size_t n, void *arg)
{
	return fwrite(p, 1, n, arg) == n ? 0 : -1;
}

int xp_fputs_escaped(const char *s, FILE *f)
{
	return escape_each(s ? s : "", put_file, f) < 0 ? EOF : 0;
}

#define ESC_SLOTS 8
#define ESC_MAX 4096

const char *xp_esc(const char *s)
{
	static __thread char slot[ESC_SLOTS][ESC_MAX];
	static __thread unsigned next;

	return xp_escape(s, slot[next++ % ESC_SLOTS], ESC_MAX);
}
