/* Fuzzes what xprof serve parses from a request itself (serve/route.c):
 * the routing of a path, Go's integer parsing of query parameters, the
 * bearer token, and the --listen address; libmicrohttpd's own parsing is
 * not ours.  Each result is checked against what it promises: a routed CPU,
 * block or mutex profile, and any delta (seconds=N), lasts 1 to max_seconds, an integer parse agrees with a strtoll
 * reference, the token check with memcmp.
 *
 * Input: u8 flags (bit 0: a body; bit 1: a token is asked; bits 2-3: the
 * method), u16 max_seconds, then NUL-separated strings: path, the
 * Authorization header, the token, then query keys and values in turns.
 */
#include <errno.h>
#include <limits.h>
#include <strings.h>
#include <sys/socket.h>

#include "serve/serve.h"
#include "tests/fuzz/fuzz.h"

static const char *const methods[] = { "GET", "HEAD", "POST", NULL };

/* the next NUL-terminated string of the input, or NULL at its end */
static char *next_string(char **p, char *end)
{
	char *s = *p, *z;

	if (s >= end)
		return NULL;
	z = memchr(s, '\0', (size_t)(end - s));
	*p = z ? z + 1 : end;
	return s;
}

/* strconv.ParseInt(s, 10, 64) by another road */
static int reference_int(const char *s, int64_t *v)
{
	const char *d = s;
	char *end;
	long long x;

	if (*d == '+' || *d == '-')
		d++;
	if (!*d || strspn(d, "0123456789") != strlen(d))
		return -EINVAL;
	errno = 0;
	x = strtoll(s, &end, 10);
	if (errno || *end)
		return -EINVAL;
	*v = x;
	return 0;
}

static void check_int(const char *s)
{
	int64_t a = 0, b = 0;
	int ra = xp_serve_parse_int(s, &a), rb = reference_int(s, &b);

	if (ra != rb || (ra == 0 && a != b))
		abort();
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	static const struct {
		const char *name;
		const char data[128];
		size_t len;
	} seeds[] = {
#define SEED(n, s) { n, s, sizeof(s) - 1 }
		SEED("profile", "\x00\x3c\x00/debug/pprof/profile\0\0\0seconds\0" "30\0"),
		SEED("goroutine", "\x00\x3c\x00/debug/pprof/goroutine\0\0\0debug\0" "2\0debug\0" "1\0"),
		SEED("token", "\x02\x3c\x00/debug/pprof/heap\0Bearer abcdefghijklmnopq\0abcdefghijklmnopq\0"),
		SEED("delta", "\x00\x3c\x00/debug/pprof/heap\0\0\0seconds\0-9223372036854775808\0"),
		SEED("block", "\x00\x0a\x00/debug/pprof/block\0\0\0seconds\0" "5\0debug\0" "0\0"),
		SEED("listen", "\x05\x10\x00[::1]:6060\0bearer  x\0x\0"),
#undef SEED
	};
	const char *dir = fuzz_seed_dir();
	size_t i;

	(void)argc;
	(void)argv;
	if (!dir)
		return 0;
	for (i = 0; i < sizeof(seeds) / sizeof(seeds[0]); i++)
		fuzz_write_seed(dir, seeds[i].name, seeds[i].data, seeds[i].len);
	exit(0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fuzz_in in = { data, size };
	struct xp_serve_arg args[XP_SERVE_MAX_ARGS + 2];
	struct xp_serve_limits lim = { 0 };
	struct xp_serve_http rq = { 0 };
	struct xp_serve_route rt;
	struct sockaddr_storage sa;
	socklen_t salen;
	uint8_t flags = fuzz_u8(&in);
	uint16_t maxs;
	char *buf, *p, *end, *token;
	size_t i;

	fuzz_take(&in, &maxs, sizeof(maxs));
	buf = malloc(in.n + 1);
	if (!buf)
		return 0;
	memcpy(buf, in.p, in.n);
	buf[in.n] = '\0';
	p = buf;
	end = buf + in.n;

	rq.method = methods[(flags >> 2) & 3];
	rq.has_body = flags & 1;
	rq.path = next_string(&p, end);
	rq.authorization = next_string(&p, end);
	token = next_string(&p, end);
	for (i = 0; i < sizeof(args) / sizeof(args[0]); i++) {
		args[i].key = next_string(&p, end);
		args[i].value = next_string(&p, end);
		if (!args[i].key)
			break;
	}
	rq.args = args;
	rq.nargs = i;
	lim.max_seconds = maxs ? maxs : 1;
	if ((flags & 2) && token && *token) {
		lim.token = token;
		lim.token_len = strlen(token);
	}

	xp_serve_route(&rq, &lim, &rt);
	if (!memchr(rt.msg, '\0', sizeof(rt.msg)))
		abort();
	if (rt.status == 0) {
		if ((unsigned)rt.q.kind >= XP_SERVE_KINDS || rt.q.debug < 0 || rt.q.debug > 2)
			abort();
		if ((rt.q.kind == XP_SERVE_CPU || rt.q.kind == XP_SERVE_BLOCK || rt.q.kind == XP_SERVE_MUTEX ||
		     rt.q.seconds_given) &&
		    (rt.q.seconds < 1 || rt.q.seconds > lim.max_seconds))
			abort();
		/* nothing is collected without the token */
		if (lim.token && !xp_serve_token_ok(rq.authorization, lim.token, lim.token_len))
			abort();
	} else if (rt.status < 200 || rt.status > 599) {
		abort();
	}
	if (lim.token && rq.authorization) {
		const char *g = rq.authorization;
		int want = strncasecmp(g, "Bearer ", 7) == 0;
		if (want) {
			g += 7;
			while (*g == ' ')
				g++;
			want = strcmp(g, lim.token) == 0;
		}
		if (xp_serve_token_ok(rq.authorization, lim.token, lim.token_len) != want)
			abort();
	}
	for (i = 0; i < rq.nargs; i++)
		if (args[i].value)
			check_int(args[i].value);
	if (rq.path) {
		check_int(rq.path);
		if (xp_serve_parse_listen(rq.path, &sa, &salen) == 0 && sa.ss_family != AF_INET &&
		    sa.ss_family != AF_INET6)
			abort();
	}
	free(buf);
	return 0;
}
