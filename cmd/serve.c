/* xprof serve: net/http/pprof's endpoints for a process that has none, so
 * that go tool pprof, Parca and Grafana Alloy scrape it as they scrape a Go
 * program.  The HTTP side is serve/; this file parses the options, finds
 * the target (serve/target.c finds it again after it restarts, with --name
 * or --cmdline, and answers with the collectors), and drains on SIGTERM.
 *
 * parse options → validate (address, token) → find the target → listen →
 * serve until SIGTERM/SIGINT/SIGHUP → drain → exit 0.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "attach/attach.h"
#include "cmd/cmd.h"
#include "serve/serve.h"

#define MAX_SECONDS_DEFAULT 60
#define MAX_SECONDS_LIMIT 3600
#define CONNECTIONS_DEFAULT 16
#define TIMEOUT_DEFAULT 15          /* seconds an idle or stalled connection lives */
#define HEADER_BYTES_MAX (16 * 1024)
#define TOKEN_MIN 16
#define TOKEN_MAX 4096
#define DRAIN_WAIT_MS 30000

struct serve_opts {
	struct xp_follow_opts t;
	const char *listen;
	const char *token_file;
	int64_t max_seconds;
	unsigned max_connections;
	unsigned timeout;
};

/* The process being served: fixed by -p, or found again by name. */

static void usage(FILE *f)
{
	fputs("usage: xprof serve (-p PID | --name COMM | --cmdline REGEX) [--listen ADDR:PORT]\n"
	      "                   [--token FILE] [--max-seconds N] [--max-connections N] [--timeout S]\n"
	      "\n"
	      "Serves Go's net/http/pprof endpoints for one process, read from outside,\n"
	      "so that go tool pprof, Parca and Grafana Alloy scrape it unchanged:\n"
	      "\n"
	      "  /debug/pprof/                    an index of what the process offers\n"
	      "  /debug/pprof/profile?seconds=N   CPU profile (default 30 s)\n"
	      "  /debug/pprof/heap                glibc heap now, or a Go program's heap profile\n"
	      "                                   (Go: ?seconds=N its delta over N s)\n"
	      "  /debug/pprof/goroutine           every thread's (Go: goroutine's) stack;\n"
	      "                                   ?debug=1 counts by stack, ?debug=2 the dump\n"
	      "                                   (Go's own for a Go program)\n"
	      "  /debug/pprof/threadcreate        threads by the stack that started them\n"
	      "  /debug/pprof/block?seconds=N     where threads waited off the CPU, over N s\n"
	      "                                   (default 30 s; as xprof block)\n"
	      "  /debug/pprof/mutex?seconds=N     lock waits and their holders, over N s\n"
	      "                                   (default 30 s; as xprof mutex)\n"
	      "                                   (Go: the runtime's, since it started, or\n"
	      "                                   with seconds=N its delta over N s)\n"
	      "  /debug/pprof/allocs              a Go program's allocations (seconds=N: delta)\n"
	      "  /debug/pprof/cmdline             the process's command line\n"
	      "\n"
	      "  -p, --pid PID          the process, for as long as it lives\n"
	      "      --name COMM        the oldest process of that name, found again when\n"
	      "                         it exits and another starts\n"
	      "      --cmdline REGEX    likewise, by a match in its command line (POSIX ERE)\n"
	      "      --listen ADDR:PORT where to listen (default 127.0.0.1:6060; port 0 picks\n"
	      "                         a free one); any address but loopback needs --token\n"
	      "      --token FILE       ask every request for Authorization: Bearer TOKEN,\n"
	      "                         TOKEN the file's content (at least 16 characters,\n"
	      "                         the file readable by its owner only)\n"
	      "      --max-seconds N    the longest CPU, block, mutex or delta profile\n"
	      "                         (default 60)\n"
	      "      --max-connections N  connections at once; more are closed (default 16)\n"
	      "      --timeout S        an idle or stalled connection is closed after S\n"
	      "                         seconds (default 15)\n"
	      "  -h, --help             this help\n"
	      "\n"
	      "One CPU profile at a time: a second gets net/http/pprof's \"cpu profiling\n"
	      "already in use\" at once; likewise one native block and one native mutex\n"
	      "profile, and one Go delta of a kind.  A target that exits is answered 410\n"
	      "(-p) or 404 (--name, --cmdline: until the next one starts); the server\n"
	      "keeps running.  Modules, debug info and symbol caches are kept between\n"
	      "requests and rebuilt when the target's code mappings change.  SIGTERM or\n"
	      "SIGINT ends a CPU, block, mutex or delta profile in progress early,\n"
	      "answers it, and exits 0 once a mutex profile's probes are out; the target\n"
	      "runs on.  Ctrl-Z (SIGTSTP) is ignored: a suspended server could hold its\n"
	      "target stopped.\n"
	      "\n"
	      "Exit status: 0 stopped by a signal, 2 failure, 64 bad usage.\n",
	      f);
}

static int parse_count(const char *what, const char *s, long min, long max, long *v)
{
	char *end;

	errno = 0;
	*v = strtol(s, &end, 10);
	if (!*s || *end || errno || *v < min || *v > max) {
		xp_msg("serve: invalid %s '%s': want %ld to %ld", what, s, min, max);
		return -1;
	}
	return 0;
}

static int parse(int argc, char **argv, struct serve_opts *o)
{
	enum { OPT_LISTEN = 256, OPT_TOKEN, OPT_MAX_SECONDS, OPT_MAX_CONN, OPT_TIMEOUT };
	static const struct option longopts[] = {
		XP_FOLLOW_LONGOPTS,
		{ "listen", required_argument, NULL, OPT_LISTEN },
		{ "token", required_argument, NULL, OPT_TOKEN },
		{ "max-seconds", required_argument, NULL, OPT_MAX_SECONDS },
		{ "max-connections", required_argument, NULL, OPT_MAX_CONN },
		{ "timeout", required_argument, NULL, OPT_TIMEOUT },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int c, r;
	long v;

	memset(o, 0, sizeof(*o));
	o->listen = "127.0.0.1:6060";
	o->max_seconds = MAX_SECONDS_DEFAULT;
	o->max_connections = CONNECTIONS_DEFAULT;
	o->timeout = TIMEOUT_DEFAULT;
	optind = 1;
	opterr = 0; /* xp_option_error says it in one line */
	while ((c = getopt_long(argc, argv, ":p:h", longopts, NULL)) != -1) {
		if ((r = xp_follow_option("serve", c, optarg, &o->t)) != 0) {
			if (r != 1)
				return r;
			continue;
		}
		switch (c) {
		case OPT_LISTEN:
			o->listen = optarg;
			break;
		case OPT_TOKEN:
			o->token_file = optarg;
			break;
		case OPT_MAX_SECONDS:
			if (parse_count("--max-seconds", optarg, 1, MAX_SECONDS_LIMIT, &v) < 0)
				return XP_EXIT_USAGE;
			o->max_seconds = v;
			break;
		case OPT_MAX_CONN:
			if (parse_count("--max-connections", optarg, 1, 1024, &v) < 0)
				return XP_EXIT_USAGE;
			o->max_connections = (unsigned)v;
			break;
		case OPT_TIMEOUT:
			if (parse_count("--timeout", optarg, 1, 3600, &v) < 0)
				return XP_EXIT_USAGE;
			o->timeout = (unsigned)v;
			break;
		case 'h':
			usage(stdout);
			return XP_EXIT_OK;
		default:
			return xp_option_error("serve", c, argv);
		}
	}
	return xp_follow_opts_done("serve", argc, argv, &o->t);
}

/* The token file: a secret, so readable by its owner only, and long enough
 * not to be guessed.  Trailing newlines and spaces are not part of it. */
static char *read_token(const char *path, size_t *len)
{
	char buf[TOKEN_MAX + 2];
	struct stat st;
	ssize_t n;
	size_t i;
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);

	if (fd < 0) {
		xp_msg("serve: cannot read token file %s: %s", path, strerror(errno));
		return NULL;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		xp_msg("serve: token file %s is not a regular file", path);
		close(fd);
		return NULL;
	}
	if (st.st_mode & 077) {
		xp_msg("serve: token file %s can be read by other users (chmod 600 %s)", path, path);
		close(fd);
		return NULL;
	}
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n < 0 || n > TOKEN_MAX) {
		xp_msg("serve: cannot read token file %s: %s", path, n < 0 ? strerror(errno) : "longer than 4096 bytes");
		return NULL;
	}
	while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r' || buf[n - 1] == ' '))
		n--;
	buf[n] = '\0';
	for (i = 0; i < (size_t)n; i++)
		if (buf[i] <= ' ' || buf[i] == 0x7f) {
			xp_msg("serve: token in %s holds a space or control character: want one line of "
			       "printable text",
			       path);
			return NULL;
		}
	if (n < TOKEN_MIN) {
		xp_msg("serve: token in %s is too short: want at least %d characters "
		       "(head -c 32 /dev/urandom | base64 > %s)",
		       path, TOKEN_MIN, path);
		return NULL;
	}
	*len = (size_t)n;
	return strdup(buf);
}

/* ---- the command ---------------------------------------------------------- */

int cmd_serve(int argc, char **argv)
{
	struct serve_opts o;
	struct xp_serve_target *t = NULL;
	struct sockaddr_storage sa;
	socklen_t salen;
	struct xp_serve_config cfg;
	struct xp_serve_backend be;
	struct xp_server *srv;
	char url[128], host[64], comm[64];
	char *token = NULL;
	size_t token_len = 0;
	sigset_t ends;
	int rc, fd, port, sig, err;
	unsigned left;
	uint64_t answered, refused;
	pid_t pid = 0;

	rc = parse(argc, argv, &o);
	if (rc >= 0)
		return rc;
	if (xp_serve_parse_listen(o.listen, &sa, &salen) < 0) {
		xp_msg("serve: invalid --listen '%s': want ADDR:PORT (127.0.0.1:6060, [::1]:6060)", o.listen);
		return XP_EXIT_USAGE;
	}
	if (!xp_serve_is_loopback(&sa) && !o.token_file) {
		xp_msg("serve: refusing to listen on %s without --token FILE: any host that reaches it could "
		       "read this process's memory through its profiles",
		       o.listen);
		return XP_EXIT_USAGE;
	}
	if (o.token_file && !(token = read_token(o.token_file, &token_len)))
		return XP_EXIT_FATAL;
	/* -p: the checks every command makes, with their messages */
	if (o.t.by == XP_SERVE_BY_PID && (pid = xp_check_target(o.t.pid, comm, sizeof(comm))) < 0) {
		free(token);
		return XP_EXIT_FATAL;
	}
	if ((err = xp_follow_target("serve", &o.t, pid, &t)) < 0) {
		free(token);
		return -err;
	}
	xp_serve_target_backend(t, &be);

	fd = xp_serve_listen(&sa, salen, &port);
	if (fd < 0) {
		xp_msg("serve: cannot listen on %s: %s%s", o.listen, strerror(-fd),
		       fd == -EADDRINUSE ? " (another server has it: choose another with --listen ADDR:PORT)" : "");
		rc = XP_EXIT_FATAL;
		goto out;
	}
	/* the signals that end the server wait for the main thread, and
	 * SIGALRM for the thread that stops the target: the server's threads
	 * inherit this mask */
	sigemptyset(&ends);
	sigaddset(&ends, SIGTERM);
	sigaddset(&ends, SIGINT);
	sigaddset(&ends, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &ends, NULL);
	xp_serve_block_alarm();
	signal(SIGPIPE, SIG_IGN);
	/* a stop holds the job-control signals in its own thread only: any
	 * other thread would take a Ctrl-Z for the whole server, and a
	 * suspended server keeps the target it is stopping stopped */
	signal(SIGTSTP, SIG_IGN);
	signal(SIGTTIN, SIG_IGN);
	signal(SIGTTOU, SIG_IGN);

	memset(&cfg, 0, sizeof(cfg));
	cfg.listen_fd = fd;
	cfg.limits.max_seconds = o.max_seconds;
	cfg.limits.token = token;
	cfg.limits.token_len = token_len;
	cfg.max_connections = o.max_connections;
	cfg.timeout_seconds = o.timeout;
	cfg.max_header_bytes = HEADER_BYTES_MAX;
	err = xp_serve_start(&cfg, &be, &srv);
	if (err == -ELIBACC) {
		xp_msg("serve: cannot load libmicrohttpd.so.12, the HTTP server's library (install libmicrohttpd12)");
		close(fd);
		rc = XP_EXIT_FATAL;
		goto out;
	}
	if (err < 0) {
		xp_msg("serve: cannot start the HTTP server on %s: %s", o.listen, strerror(-err));
		close(fd);
		rc = XP_EXIT_FATAL;
		goto out;
	}

	if (sa.ss_family == AF_INET6) {
		inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&sa)->sin6_addr, host, sizeof(host));
		snprintf(url, sizeof(url), "http://[%s]:%d/debug/pprof/", host, port);
	} else {
		inet_ntop(AF_INET, &((struct sockaddr_in *)&sa)->sin_addr, host, sizeof(host));
		snprintf(url, sizeof(url), "http://%s:%d/debug/pprof/", host, port);
	}
	pid = xp_serve_target_current(t, comm, sizeof(comm));
	if (pid > 0)
		xp_msg("serving pid %d (%s) on %s", (int)pid, comm, url);
	else
		xp_msg("serving the process %s '%s' (none runs yet) on %s",
		       o.t.by == XP_SERVE_BY_NAME ? "named" : "whose command line matches", o.t.name, url);

	while ((sig = sigwaitinfo(&ends, NULL)) < 0 && errno == EINTR)
		;
	left = xp_serve_drain(srv, DRAIN_WAIT_MS, &answered, &refused);
	xp_msg("serve: %s: stopped after %llu answers and %llu refusals%s", strsignal(sig),
	       (unsigned long long)answered, (unsigned long long)refused,
	       left ? ", some requests unanswered" : "");
	rc = XP_EXIT_OK;
out:
	xp_serve_target_free(t);
	free(token);
	return rc;
}
