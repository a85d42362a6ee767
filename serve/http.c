/* The HTTP side of serve/: the listening socket, libmicrohttpd's daemon
 * (a thread per connection, so a 30 s CPU profile holds only its own
 * connection), the answers with net/http/pprof's headers, the index page,
 * and the drain on shutdown. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <dlfcn.h>
#include <errno.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "serve/serve.h"

/* libmicrohttpd is opened by `serve` alone: linked into xprof it brought
 * gnutls and eight more libraries into every command's start, 170 page
 * faults that cost a threads dump 30-45 ms on a kernel where each fault
 * costs 25-90 us (6.18-fc). */
#define MHD_SONAME "libmicrohttpd.so.12"
static struct {
	void *lib;
	__typeof__(MHD_add_response_header) *add_response_header;
	__typeof__(MHD_create_response_from_buffer) *create_response_from_buffer;
	__typeof__(MHD_destroy_response) *destroy_response;
	__typeof__(MHD_get_connection_values) *get_connection_values;
	__typeof__(MHD_lookup_connection_value) *lookup_connection_value;
	__typeof__(MHD_queue_response) *queue_response;
	__typeof__(MHD_quiesce_daemon) *quiesce_daemon;
	__typeof__(MHD_start_daemon) *start_daemon;
	__typeof__(MHD_stop_daemon) *stop_daemon;
} mhd;

/* 0, or -ELIBACC when the library or one of its functions is missing. */
static int mhd_open(void)
{
	void *lib;

	if (mhd.lib)
		return 0;
	lib = dlopen(MHD_SONAME, RTLD_NOW | RTLD_LOCAL);
	if (!lib)
		return -ELIBACC;
#define MHD_SYM(name) (*(void **)&mhd.name = dlsym(lib, "MHD_" #name)) != NULL
	if (!(MHD_SYM(add_response_header) && MHD_SYM(create_response_from_buffer) && MHD_SYM(destroy_response) &&
	      MHD_SYM(get_connection_values) && MHD_SYM(lookup_connection_value) && MHD_SYM(queue_response) &&
	      MHD_SYM(quiesce_daemon) && MHD_SYM(start_daemon) && MHD_SYM(stop_daemon))) {
		dlclose(lib);
		return -ELIBACC;
	}
#undef MHD_SYM
	mhd.lib = lib;
	return 0;
}

struct xp_server {
	struct MHD_Daemon *mhd;
	struct xp_serve_config cfg;
	struct xp_serve_backend be;
	volatile sig_atomic_t stop;  /* draining: collections end early */
	atomic_flag cpu_busy;        /* one CPU profile at a time */
	atomic_uint inflight;        /* requests seen and not yet completed */
	atomic_ullong answered, refused;
};

/* ---- the address ------------------------------------------------------- */

int xp_serve_parse_listen(const char *s, struct sockaddr_storage *sa, socklen_t *len)
{
	char host[64];
	const char *colon;
	char *end;
	unsigned long port;
	size_t hl;

	memset(sa, 0, sizeof(*sa));
	if (!s || !(colon = strrchr(s, ':')))
		return -EINVAL;
	hl = (size_t)(colon - s);
	if (hl >= sizeof(host))
		return -EINVAL;
	memcpy(host, s, hl);
	host[hl] = '\0';
	errno = 0;
	port = strtoul(colon + 1, &end, 10);
	if (!colon[1] || *end || errno || port > 65535 || colon[1] == '-' || colon[1] == '+')
		return -EINVAL;
	if (host[0] == '[') {
		struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)sa;
		if (hl < 2 || host[hl - 1] != ']')
			return -EINVAL;
		host[hl - 1] = '\0';
		if (inet_pton(AF_INET6, host + 1, &a6->sin6_addr) != 1)
			return -EINVAL;
		a6->sin6_family = AF_INET6;
		a6->sin6_port = htons((uint16_t)port);
		*len = sizeof(*a6);
		return 0;
	}
	{
		struct sockaddr_in *a4 = (struct sockaddr_in *)sa;
		if (hl == 0)
			a4->sin_addr.s_addr = htonl(INADDR_ANY); /* Go's ":6060" */
		else if (strcmp(host, "localhost") == 0)
			a4->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		else if (inet_pton(AF_INET, host, &a4->sin_addr) != 1)
			return -EINVAL;
		a4->sin_family = AF_INET;
		a4->sin_port = htons((uint16_t)port);
		*len = sizeof(*a4);
	}
	return 0;
}

int xp_serve_is_loopback(const struct sockaddr_storage *sa)
{
	if (sa->ss_family == AF_INET)
		return (ntohl(((const struct sockaddr_in *)sa)->sin_addr.s_addr) >> 24) == 127;
	if (sa->ss_family == AF_INET6) {
		const struct in6_addr *a = &((const struct sockaddr_in6 *)sa)->sin6_addr;
		if (IN6_IS_ADDR_V4MAPPED(a))
			return a->s6_addr[12] == 127;
		return IN6_IS_ADDR_LOOPBACK(a);
	}
	return 0;
}

int xp_serve_listen(const struct sockaddr_storage *sa, socklen_t len, int *port)
{
	struct sockaddr_storage got;
	socklen_t gl = sizeof(got);
	int fd, one = 1, err;

	fd = socket(sa->ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (sa->ss_family == AF_INET6)
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
	if (bind(fd, (const struct sockaddr *)sa, len) < 0 || listen(fd, 64) < 0 ||
	    getsockname(fd, (struct sockaddr *)&got, &gl) < 0) {
		err = -errno;
		close(fd);
		return err;
	}
	*port = ntohs(got.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&got)->sin6_port
						: ((struct sockaddr_in *)&got)->sin_port);
	return fd;
}

/* ---- answers ------------------------------------------------------------ */

static enum MHD_Result send_answer(struct MHD_Connection *conn, int status, void *body, size_t len,
				   const char *type, const char *disposition_name)
{
	struct MHD_Response *r = mhd.create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
	enum MHD_Result ok;

	if (!r) {
		free(body);
		return MHD_NO;
	}
	mhd.add_response_header(r, "X-Content-Type-Options", "nosniff");
	mhd.add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
	if (disposition_name) {
		char cd[64];
		snprintf(cd, sizeof(cd), "attachment; filename=\"%s\"", disposition_name);
		mhd.add_response_header(r, "Content-Disposition", cd);
	}
	ok = mhd.queue_response(conn, (unsigned)status, r);
	mhd.destroy_response(r);
	return ok;
}

/* net/http/pprof's serveError: the reason as one line of text */
static enum MHD_Result send_error(struct MHD_Connection *conn, int status, const char *msg, const char *location,
				  int bearer)
{
	struct MHD_Response *r;
	char *body = NULL;
	int n = asprintf(&body, "%s\n", msg);
	enum MHD_Result ok;

	if (n < 0)
		return MHD_NO;
	r = mhd.create_response_from_buffer((size_t)n, body, MHD_RESPMEM_MUST_FREE);
	if (!r) {
		free(body);
		return MHD_NO;
	}
	mhd.add_response_header(r, "X-Content-Type-Options", "nosniff");
	mhd.add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "text/plain; charset=utf-8");
	if (status != 200)
		mhd.add_response_header(r, "X-Go-Pprof", "1");
	if (location)
		mhd.add_response_header(r, MHD_HTTP_HEADER_LOCATION, location);
	if (bearer)
		mhd.add_response_header(r, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer realm=\"xprof\"");
	if (status == 405)
		mhd.add_response_header(r, MHD_HTTP_HEADER_ALLOW, "GET, HEAD");
	ok = mhd.queue_response(conn, (unsigned)status, r);
	mhd.destroy_response(r);
	return ok;
}

static const char *const descriptions[XP_SERVE_KINDS] = {
	[XP_SERVE_CPU] = "CPU profile: stacks sampled while the process runs on a CPU. Give the "
			 "duration in seconds with the seconds parameter; open the file with go tool pprof.",
	[XP_SERVE_HEAP] = "What the heap holds now: glibc's blocks by type and holder, or a Go "
			  "program's sampled live allocations (with seconds=N, what changed over N seconds).",
	[XP_SERVE_ALLOCS] = "A Go program's sampled allocations since it started, or over seconds=N.",
	[XP_SERVE_GOROUTINE] = "The stack of every thread, or every goroutine of a Go program, now.",
	[XP_SERVE_BLOCK] = "Where a Go program's goroutines waited on synchronization, since it started "
			   "or over seconds=N.",
	[XP_SERVE_MUTEX] = "Where a Go program's goroutines held contended mutexes, since it started or "
			   "over seconds=N.",
	[XP_SERVE_THREADCREATE] = "The threads alive now, by the stack that started each.",
	[XP_SERVE_CMDLINE] = "The process's command line, arguments separated by NUL bytes.",
};
/* block and mutex of a native program: xprof's own, over seconds=N */
static const char *const native_descriptions[XP_SERVE_KINDS] = {
	[XP_SERVE_BLOCK] = "Where the threads waited off the CPU (locks, I/O, sleeps), by stack, from "
			   "perf's context switches over seconds=N (default 30 s); the process is never stopped.",
	[XP_SERVE_MUTEX] = "Where the threads waited for pthread mutexes and rwlocks, by stack, with a "
			   "mutex's holder, from uprobes on glibc's lock slow path over seconds=N (default 30 s).",
};

static void html_escape(FILE *f, const char *s)
{
	for (; *s; s++) {
		switch (*s) {
		case '<': fputs("&lt;", f); break;
		case '>': fputs("&gt;", f); break;
		case '&': fputs("&amp;", f); break;
		case '"': fputs("&#34;", f); break;
		case '\'': fputs("&#39;", f); break;
		default: fputc(*s, f);
		}
	}
}

/* The index in net/http/pprof's shape: a table of count and link (with
 * ?debug=1 where a text form exists), then what each profile is. */
static int index_page(const struct xp_serve_offer *o, char **body, size_t *len)
{
	/* sorted by name, as Go sorts its entries */
	static const enum xp_serve_kind order[] = {
		XP_SERVE_ALLOCS, XP_SERVE_BLOCK, XP_SERVE_CMDLINE, XP_SERVE_GOROUTINE,
		XP_SERVE_HEAP, XP_SERVE_MUTEX, XP_SERVE_CPU, XP_SERVE_THREADCREATE,
	};
	FILE *f = open_memstream(body, len);
	size_t i;

	if (!f)
		return -ENOMEM;
	fputs("<html>\n<head>\n<title>/debug/pprof/</title>\n<style>\n.profile-name{\n"
	      "\tdisplay:inline-block;\n\twidth:6rem;\n}\n</style>\n</head>\n<body>\n/debug/pprof/ of ",
	      f);
	html_escape(f, o->title);
	fputs(", served by xprof<br>\n<br>\nTypes of profiles available:\n<table>\n"
	      "<thead><td>Count</td><td>Profile</td></thead>\n",
	      f);
	for (i = 0; i < sizeof(order) / sizeof(order[0]); i++) {
		enum xp_serve_kind k = order[i];
		if (!o->offered[k])
			continue;
		fputs("<tr><td>", f);
		if (o->count[k] >= 0)
			fprintf(f, "%lld", (long long)o->count[k]);
		fprintf(f, "</td><td><a href='%s%s'>%s</a></td></tr>\n", xp_serve_kind_name(k),
			k == XP_SERVE_GOROUTINE || k == XP_SERVE_THREADCREATE ? "?debug=1" : "", xp_serve_kind_name(k));
	}
	fputs("</table>\n", f);
	if (o->offered[XP_SERVE_GOROUTINE])
		fputs("<a href=\"goroutine?debug=2\">full goroutine stack dump</a>\n", f);
	fputs("<br>\n<p>\nProfile Descriptions:\n<ul>\n", f);
	for (i = 0; i < sizeof(order) / sizeof(order[0]); i++) {
		enum xp_serve_kind k = order[i];
		if (o->offered[k])
			fprintf(f, "<li><div class=profile-name>%s: </div> %s</li>\n", xp_serve_kind_name(k),
				o->native && native_descriptions[k] ? native_descriptions[k] : descriptions[k]);
	}
	fputs("</ul>\n</p>\n</body>\n</html>", f);
	return fclose(f) == 0 ? 0 : -ENOMEM;
}

/* ---- requests ----------------------------------------------------------- */

struct args {
	struct xp_serve_arg v[XP_SERVE_MAX_ARGS];
	size_t n;
};

static enum MHD_Result collect_arg(void *cls, enum MHD_ValueKind kind, const char *key, const char *value)
{
	struct args *a = cls;

	(void)kind;
	if (a->n < XP_SERVE_MAX_ARGS) {
		a->v[a->n].key = key;
		a->v[a->n].value = value;
		a->n++;
	}
	return MHD_YES;
}

static int has_body(struct MHD_Connection *conn)
{
	const char *cl = mhd.lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
	const char *te = mhd.lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_TRANSFER_ENCODING);

	return te != NULL || (cl != NULL && strspn(cl, "0") != strlen(cl));
}

static enum MHD_Result answer_query(struct xp_server *s, struct MHD_Connection *conn, const struct xp_serve_query *q)
{
	struct xp_serve_reply r = { 0 };
	const char *name = xp_serve_kind_name(q->kind);

	if (q->kind == XP_SERVE_INDEX) {
		struct xp_serve_offer o;
		char *body;
		size_t len;
		memset(&o, 0, sizeof(o));
		r.status = s->be.offer(s->be.ctx, &o);
		if (r.status)
			return send_error(conn, r.status, o.title, NULL, 0);
		if (index_page(&o, &body, &len) < 0)
			return send_error(conn, 500, "out of memory", NULL, 0);
		return send_answer(conn, 200, body, len, "text/html; charset=utf-8", NULL);
	}
	if (q->kind == XP_SERVE_CPU && atomic_flag_test_and_set(&s->cpu_busy))
		/* runtime/pprof's StartCPUProfile error, as net/http/pprof words it */
		return send_error(conn, 500, "Could not enable CPU profiling: cpu profiling already in use", NULL, 0);
	s->be.collect(s->be.ctx, q, &r);
	if (q->kind == XP_SERVE_CPU)
		atomic_flag_clear(&s->cpu_busy);
	if (r.status != 200) {
		free(r.body);
		return send_error(conn, r.status ? r.status : 500, r.msg[0] ? r.msg : "collection failed", NULL, 0);
	}
	if (q->debug || q->kind == XP_SERVE_CMDLINE)
		return send_answer(conn, 200, r.body, r.len, "text/plain; charset=utf-8", NULL);
	if (r.delta) {
		/* as Go names a delta profile */
		char delta[32];
		snprintf(delta, sizeof(delta), "%s-delta", name);
		return send_answer(conn, 200, r.body, r.len, "application/octet-stream", delta);
	}
	return send_answer(conn, 200, r.body, r.len, "application/octet-stream", name);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
				  const char *version, const char *upload_data, size_t *upload_data_size,
				  void **con_cls)
{
	static int seen;
	struct xp_server *s = cls;
	struct args a = { .n = 0 };
	struct xp_serve_http rq;
	struct xp_serve_route rt;
	enum MHD_Result ok;

	(void)version;
	(void)upload_data;
	if (*con_cls) {
		/* the body of a request already answered: drop it */
		*upload_data_size = 0;
		return MHD_YES;
	}
	*con_cls = &seen;
	atomic_fetch_add(&s->inflight, 1);
	mhd.get_connection_values(conn, MHD_GET_ARGUMENT_KIND, collect_arg, &a);
	rq.method = method;
	rq.path = url;
	rq.args = a.v;
	rq.nargs = a.n;
	rq.authorization = mhd.lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
	rq.has_body = has_body(conn);
	xp_serve_route(&rq, &s->cfg.limits, &rt);
	if (rt.status) {
		if (rt.status != 200)
			atomic_fetch_add(&s->refused, 1);
		return send_error(conn, rt.status, rt.msg, rt.location, rt.bearer_challenge);
	}
	rt.q.stop = &s->stop;
	ok = answer_query(s, conn, &rt.q);
	atomic_fetch_add(&s->answered, 1);
	return ok;
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls, enum MHD_RequestTerminationCode why)
{
	struct xp_server *s = cls;

	(void)conn;
	(void)why;
	if (*con_cls) {
		atomic_fetch_sub(&s->inflight, 1);
		*con_cls = NULL;
	}
}

int xp_serve_start(const struct xp_serve_config *cfg, const struct xp_serve_backend *be, struct xp_server **out)
{
	struct xp_server *s;
	int err = mhd_open();

	if (err < 0)
		return err;
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->cfg = *cfg;
	s->be = *be;
	atomic_flag_clear(&s->cpu_busy);
	s->mhd = mhd.start_daemon(MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ITC |
					  MHD_USE_POLL,
				  0, NULL, NULL, on_request, s,
				  MHD_OPTION_LISTEN_SOCKET, cfg->listen_fd,
				  MHD_OPTION_CONNECTION_LIMIT, cfg->max_connections,
				  MHD_OPTION_CONNECTION_TIMEOUT, cfg->timeout_seconds,
				  MHD_OPTION_CONNECTION_MEMORY_LIMIT, cfg->max_header_bytes,
				  MHD_OPTION_NOTIFY_COMPLETED, on_completed, s,
				  MHD_OPTION_END);
	if (!s->mhd) {
		free(s);
		return -EIO;
	}
	*out = s;
	return 0;
}

unsigned xp_serve_drain(struct xp_server *s, int wait_ms, uint64_t *answered, uint64_t *refused)
{
	struct timespec tick = { 0, 20 * 1000000 };
	MHD_socket lfd;
	unsigned left;
	int waited;

	s->stop = 1;
	lfd = mhd.quiesce_daemon(s->mhd);
	if (lfd != MHD_INVALID_SOCKET)
		close(lfd);
	for (waited = 0; (left = atomic_load(&s->inflight)) > 0 && waited < wait_ms; waited += 20)
		nanosleep(&tick, NULL);
	mhd.stop_daemon(s->mhd);
	*answered = atomic_load(&s->answered);
	*refused = atomic_load(&s->refused);
	free(s);
	return left;
}
