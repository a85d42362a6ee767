/* The request side of serve/: from a path, its query parameters and the
 * Authorization header to what to collect, or to net/http/pprof's answer
 * when there is nothing to collect.  Pure functions over hostile strings
 * (tests/fuzz/fuzz_serve.c fuzzes them); no HTTP library here. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "serve/serve.h"

#define PREFIX "/debug/pprof/"

static const char *const kind_names[XP_SERVE_KINDS] = {
	[XP_SERVE_INDEX] = "",
	[XP_SERVE_CPU] = "profile",
	[XP_SERVE_HEAP] = "heap",
	[XP_SERVE_ALLOCS] = "allocs",
	[XP_SERVE_GOROUTINE] = "goroutine",
	[XP_SERVE_BLOCK] = "block",
	[XP_SERVE_MUTEX] = "mutex",
	[XP_SERVE_THREADCREATE] = "threadcreate",
	[XP_SERVE_CMDLINE] = "cmdline",
};

const char *xp_serve_kind_name(enum xp_serve_kind k)
{
	return (unsigned)k < XP_SERVE_KINDS ? kind_names[k] : "";
}

int xp_serve_parse_int(const char *s, int64_t *v)
{
	uint64_t acc = 0, lim;
	int neg = 0;

	if (!s || !*s)
		return -EINVAL;
	if (*s == '+' || *s == '-')
		neg = *s++ == '-';
	if (!*s)
		return -EINVAL;
	lim = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
	for (; *s; s++) {
		unsigned d = (unsigned char)*s - '0';
		if (d > 9 || acc > (lim - d) / 10)
			return -EINVAL;
		acc = acc * 10 + d;
	}
	*v = neg ? (int64_t)(0 - acc) : (int64_t)acc;
	return 0;
}

int xp_serve_token_ok(const char *authorization, const char *token, size_t token_len)
{
	const unsigned char *given;
	size_t glen, i;
	unsigned diff;

	if (!authorization || !token || token_len == 0)
		return 0;
	/* RFC 6750: the scheme is case-insensitive, one or more spaces after it */
	if (strncasecmp(authorization, "Bearer ", 7) != 0)
		return 0;
	given = (const unsigned char *)authorization + 7;
	while (*given == ' ')
		given++;
	glen = strlen((const char *)given);
	/* every byte of the token is looked at whatever was sent: the time
	 * tells the token's length, never how much of it matched */
	diff = glen != token_len;
	for (i = 0; i < token_len; i++)
		diff |= (unsigned char)token[i] ^ (i < glen ? given[i] : 0u);
	return diff == 0;
}

/* Go's r.FormValue: the first value given for key, "" when none. */
static const char *arg(const struct xp_serve_http *rq, const char *key)
{
	size_t i;

	for (i = 0; i < rq->nargs && i < XP_SERVE_MAX_ARGS; i++)
		if (rq->args[i].key && strcmp(rq->args[i].key, key) == 0)
			return rq->args[i].value ? rq->args[i].value : "";
	return "";
}

static void answer(struct xp_serve_route *out, int status, const char *msg)
{
	out->status = status;
	snprintf(out->msg, sizeof(out->msg), "%s", msg);
}

static enum xp_serve_kind kind_of(const char *name)
{
	int k;

	for (k = XP_SERVE_CPU; k < XP_SERVE_KINDS; k++)
		if (strcmp(name, kind_names[k]) == 0)
			return (enum xp_serve_kind)k;
	return XP_SERVE_INDEX;
}

/* debug=N: 0 pprof, 1 counts as text, 2 the full dump; strconv.Atoi with
 * its error ignored, as Go's handler: junk is 0 */
static int debug_of(const struct xp_serve_http *rq)
{
	int64_t v;

	if (xp_serve_parse_int(arg(rq, "debug"), &v) < 0)
		v = 0;
	return v <= 0 ? 0 : v == 1 ? 1 : 2;
}

/* A duration beyond the server's cap is refused as Go refuses one beyond
 * its WriteTimeout: 1. */
static int over_cap(int64_t sec, const struct xp_serve_limits *lim, struct xp_serve_route *out)
{
	if (sec <= lim->max_seconds)
		return 0;
	out->status = 400;
	snprintf(out->msg, sizeof(out->msg),
		 "profile duration exceeds server's limit of %lld seconds (xprof serve --max-seconds)",
		 (long long)lim->max_seconds);
	return 1;
}

/* profile?seconds=N: as net/http/pprof's Profile, a missing or bad value
 * means 30 s; beyond the server's cap it is refused. */
static void route_cpu(const struct xp_serve_http *rq, const struct xp_serve_limits *lim,
		      struct xp_serve_route *out)
{
	int64_t sec;

	if (xp_serve_parse_int(arg(rq, "seconds"), &sec) < 0 || sec <= 0)
		sec = XP_SERVE_DEFAULT_SECONDS;
	if (!over_cap(sec, lim, out))
		out->q.seconds = sec;
}

/* heap, allocs, block, mutex: net/http/pprof's delta profiles.  seconds=N,
 * bad values refused as Go refuses them, the cap as for profile; without
 * it a native program's block or mutex is collected over the default (or
 * the cap, if lower), the others are as they are now (a Go program's:
 * its runtime's since it started). */
static void route_delta(const struct xp_serve_http *rq, const struct xp_serve_limits *lim,
			struct xp_serve_route *out)
{
	const char *sec = arg(rq, "seconds");
	int64_t v;

	out->q.debug = debug_of(rq);
	if (!*sec) {
		out->q.seconds = lim->max_seconds < XP_SERVE_DEFAULT_SECONDS ? lim->max_seconds : XP_SERVE_DEFAULT_SECONDS;
		return;
	}
	if (xp_serve_parse_int(sec, &v) < 0 || v <= 0) {
		answer(out, 400, "invalid value for \"seconds\" - must be a positive integer");
		return;
	}
	if (over_cap(v, lim, out))
		return;
	out->q.seconds = v;
	out->q.seconds_given = 1;
}

/* heap, goroutine, ...: net/http/pprof's handler.ServeHTTP */
static void route_named(const struct xp_serve_http *rq, struct xp_serve_route *out)
{
	const char *sec = arg(rq, "seconds");
	int64_t v;

	if (*sec) {
		/* Go's delta profiles (two snapshots subtracted) */
		if (xp_serve_parse_int(sec, &v) < 0 || v <= 0)
			answer(out, 400, "invalid value for \"seconds\" - must be a positive integer");
		else
			answer(out, 400, "\"seconds\" parameter is not supported for this profile type");
		return;
	}
	out->q.debug = debug_of(rq);
}

void xp_serve_route(const struct xp_serve_http *rq, const struct xp_serve_limits *lim,
		    struct xp_serve_route *out)
{
	const char *name;

	memset(out, 0, sizeof(*out));
	if (lim->token && !xp_serve_token_ok(rq->authorization, lim->token, lim->token_len)) {
		out->bearer_challenge = 1;
		answer(out, 401, rq->authorization ? "unauthorized: wrong bearer token"
						   : "unauthorized: this server wants Authorization: Bearer TOKEN");
		return;
	}
	if (!rq->method || (strcmp(rq->method, "GET") != 0 && strcmp(rq->method, "HEAD") != 0)) {
		answer(out, 405, "method not allowed: xprof serve answers GET and HEAD");
		return;
	}
	if (rq->has_body) {
		answer(out, 413, "request body not accepted");
		return;
	}
	if (!rq->path) {
		answer(out, 404, "404 page not found");
		return;
	}
	/* Go's ServeMux sends the subtree's root without its slash there */
	if (strcmp(rq->path, "/debug/pprof") == 0) {
		out->location = PREFIX;
		answer(out, 301, "Moved Permanently");
		return;
	}
	if (strncmp(rq->path, PREFIX, strlen(PREFIX)) != 0) {
		answer(out, 404, "404 page not found");
		return;
	}
	name = rq->path + strlen(PREFIX);
	if (!*name) {
		out->q.kind = XP_SERVE_INDEX;
		return;
	}
	if (strcmp(name, "symbol") == 0) {
		/* pprof's symbolz protocol: "no symbols here"; our profiles come
		 * symbolized */
		answer(out, 200, "num_symbols: 0");
		return;
	}
	if (strcmp(name, "trace") == 0) {
		answer(out, 501, "xprof serve cannot record a Go execution trace (runtime/trace)");
		return;
	}
	out->q.kind = kind_of(name);
	switch (out->q.kind) {
	case XP_SERVE_INDEX:
		answer(out, 404, "Unknown profile");
		return;
	case XP_SERVE_CPU:
		route_cpu(rq, lim, out);
		return;
	case XP_SERVE_CMDLINE:
		return;
	case XP_SERVE_HEAP:
	case XP_SERVE_ALLOCS:
	case XP_SERVE_BLOCK:
	case XP_SERVE_MUTEX:
		route_delta(rq, lim, out);
		return;
	default:
		route_named(rq, out);
		return;
	}
}
