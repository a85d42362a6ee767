/* serve/ — net/http/pprof's endpoints for a process that does not serve
 * them itself, on libmicrohttpd: the paths, parameters, content types and
 * status codes of Go's net/http/pprof, so that `go tool pprof http://…`,
 * Parca and Grafana Alloy scrape any process unchanged.
 *
 * serve/ owns HTTP (route.c, http.c): routing, parsing, the bearer token,
 * limits, one CPU profile at a time, draining on shutdown; what a profile
 * holds comes from a backend (struct xp_serve_backend).  target.c is that
 * backend for one process: it finds the target and collects with collect/,
 * keeping modules between requests.  Library code: returns 0 or -errno,
 * never prints.
 */
#ifndef XPROF_SERVE_SERVE_H
#define XPROF_SERVE_SERVE_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

/* What a request asks for: net/http/pprof's names. */
enum xp_serve_kind {
	XP_SERVE_INDEX,        /* /debug/pprof/ */
	XP_SERVE_CPU,          /* /debug/pprof/profile */
	XP_SERVE_HEAP,
	XP_SERVE_ALLOCS,
	XP_SERVE_GOROUTINE,
	XP_SERVE_BLOCK,
	XP_SERVE_MUTEX,
	XP_SERVE_THREADCREATE,
	XP_SERVE_CMDLINE,
	XP_SERVE_KINDS
};

/* The profile's name as in its path ("profile" for XP_SERVE_CPU). */
const char *xp_serve_kind_name(enum xp_serve_kind k);

#define XP_SERVE_DEFAULT_SECONDS 30   /* net/http/pprof's, for profile; ours for a
				       * native block or mutex profile without seconds */
#define XP_SERVE_MAX_ARGS 16          /* query parameters looked at */

/* One query parameter, decoded. */
struct xp_serve_arg {
	const char *key, *value;
};

/* A request as the router sees it (all strings may be hostile). */
struct xp_serve_http {
	const char *method;          /* "GET" */
	const char *path;            /* decoded, without the query */
	const struct xp_serve_arg *args;
	size_t nargs;
	const char *authorization;   /* the header, or NULL */
	int has_body;                /* Content-Length > 0 or chunked */
};

/* A routed request: what a backend is asked to collect. */
struct xp_serve_query {
	enum xp_serve_kind kind;
	int debug;                   /* 0: pprof; 1: counts as text; 2: full text dump */
	int64_t seconds;             /* CPU, native block and mutex, Go deltas: how long to collect */
	int seconds_given;           /* heap, allocs, block, mutex: seconds was asked for (a delta
				      * profile); else a Go program gets its runtime's since it
				      * started */
	volatile sig_atomic_t *stop; /* set when the server shuts down: end early */
};

/* The router's verdict on a request: 0 with q filled when it goes to the
 * backend; otherwise an HTTP status, with the answer's text in msg and,
 * for a redirect, its target in location. */
struct xp_serve_limits {
	int64_t max_seconds;         /* a CPU profile longer than this is refused */
	const char *token;           /* bearer token, or NULL: none asked */
	size_t token_len;
};
struct xp_serve_route {
	int status;                  /* 0: collect q */
	struct xp_serve_query q;
	char msg[160];
	const char *location;        /* 301 */
	int bearer_challenge;        /* 401: send WWW-Authenticate */
};
void xp_serve_route(const struct xp_serve_http *rq, const struct xp_serve_limits *lim,
		    struct xp_serve_route *out);

/* Go's strconv.Atoi and ParseInt(s, 10, 64): 0 with *v, or -EINVAL
 * (empty, junk, out of range). */
int xp_serve_parse_int(const char *s, int64_t *v);

/* 1 when the Authorization header carries "Bearer TOKEN" with the given
 * token; compared in time that depends on the token's length only. */
int xp_serve_token_ok(const char *authorization, const char *token, size_t token_len);

/* What the target offers, for the index page. */
struct xp_serve_offer {
	char title[160];             /* "pid 42 (nginx)" */
	unsigned char offered[XP_SERVE_KINDS];
	int64_t count[XP_SERVE_KINDS]; /* -1 when unknown */
	int native;                  /* block and mutex are xprof's own collectors (over seconds=N),
				      * not a Go runtime's profiles */
};

/* A backend's answer: status 200 with body (malloc'd; serve/ frees it), or
 * an error status (404, 410, 500, 501, ...) with a one-line reason. */
struct xp_serve_reply {
	int status;
	uint8_t *body;
	size_t len;
	int delta;                   /* a Go delta profile: its file is NAME-delta, as Go's */
	char msg[512];
};

/* The target side.  Calls come from several threads at once (one per
 * connection); the backend locks what it shares.  stop in a query is set
 * when the server drains: a CPU profile then ends early and is answered. */
struct xp_serve_backend {
	void *ctx;
	/* 0 and *offer filled, or an HTTP status (410: the target exited) with
	 * the reason in offer->title */
	int (*offer)(void *ctx, struct xp_serve_offer *offer);
	void (*collect)(void *ctx, const struct xp_serve_query *q, struct xp_serve_reply *r);
};

struct xp_serve_config {
	int listen_fd;               /* a bound, listening socket (xp_serve_listen) */
	struct xp_serve_limits limits;
	unsigned max_connections;    /* beyond this a connection is closed at once */
	unsigned timeout_seconds;    /* an idle or stalled connection is closed */
	size_t max_header_bytes;     /* a larger request head is refused (431) */
};

struct xp_server;

/* Parses "ADDR:PORT" ("127.0.0.1:6060", "[::1]:6060", "localhost:0",
 * ":6060" for every address): 0, or -EINVAL. */
int xp_serve_parse_listen(const char *s, struct sockaddr_storage *sa, socklen_t *len);
/* 1 when sa is a loopback address (127.0.0.0/8, ::1). */
int xp_serve_is_loopback(const struct sockaddr_storage *sa);
/* Binds and listens; the fd or -errno.  *port gets the port bound (useful
 * with port 0). */
int xp_serve_listen(const struct sockaddr_storage *sa, socklen_t len, int *port);

/* Starts serving in threads of its own; the caller's thread returns.  Block
 * the signals that end the program before calling: the threads inherit the
 * mask.  0 or -errno. */
int xp_serve_start(const struct xp_serve_config *cfg, const struct xp_serve_backend *be,
		   struct xp_server **out);
/* Stops accepting, asks running collections to end (stop), waits for the
 * requests in flight to be answered (at most wait_ms), then closes every
 * connection and frees s.  Returns how many requests were still
 * unanswered; *answered and *refused count the requests that reached the
 * backend and those refused before it. */
unsigned xp_serve_drain(struct xp_server *s, int wait_ms, uint64_t *answered, uint64_t *refused);

/* ---- the target: one process, answered with collect/ (serve/target.c) ---- */

enum xp_serve_follow {
	XP_SERVE_BY_PID,      /* that process, for as long as it lives (410 after) */
	XP_SERVE_BY_NAME,     /* the oldest process whose comm is the pattern, found again */
	XP_SERVE_BY_CMDLINE,  /* the oldest whose command line matches the POSIX ERE */
};
struct xp_serve_target;
/* The target set, fixed for the server's life.  By pid: pid must be one a
 * command could profile (-ESRCH, -EINVAL with why); by name or command
 * line: none running yet is no failure (-EINVAL: a bad pattern, why). */
int xp_serve_target_new(enum xp_serve_follow by, pid_t pid, const char *pattern, struct xp_serve_target **out,
			char *why, size_t whylen);
/* The pid served now (0: none) and its name. */
pid_t xp_serve_target_current(struct xp_serve_target *t, char *comm, size_t commlen);
/* The backend for xp_serve_start: every path answered for t.  Modules,
 * debug info and symbol caches are kept between requests. */
void xp_serve_target_backend(struct xp_serve_target *t, struct xp_serve_backend *be);
void xp_serve_target_free(struct xp_serve_target *t);
/* Blocks SIGALRM in the calling thread (do it before xp_serve_start, so
 * every server thread inherits it): the thread that stops a target takes
 * it for the stop's bounded waits. */
void xp_serve_block_alarm(void);

#endif
