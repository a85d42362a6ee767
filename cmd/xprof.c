/* xprof: profiles a running Linux process from the outside.  main and the
 * command table; each command lives in its own file and reads
 * parse → validate → run → report. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cmd/cmd.h"
#include "unwind/unwind.h"

struct command {
	const char *name;
	int (*fn)(int argc, char **argv);
	const char *summary;
};

static const struct command commands[] = {
	{ "cpu", cmd_cpu, "where CPU time goes: sampled stacks (or --wall: every thread)" },
	{ "heap", cmd_heap, "what the heap holds now: glibc (types, holders, leaks) or Go's profile" },
	{ "threads", cmd_threads, "every thread's stack, now, or a Go program's goroutines" },
	{ "serve", cmd_serve, "net/http/pprof's endpoints for a process, for go tool pprof, Parca, Alloy" },
};

static void usage(FILE *f)
{
	size_t i;

	fputs("usage: xprof COMMAND [OPTIONS]\n\ncommands:\n", f);
	for (i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		fprintf(f, "  %-8s %s\n", commands[i].name, commands[i].summary);
	fputs("\n'xprof COMMAND --help' for a command's options; --version for the version.\n"
	      "Profiles open with: go tool pprof -http=: FILE\n",
	      f);
}

int xp_stdout_closed;

/* A standard descriptor xprof was started without would be taken by the
 * next file it opens (a target's /proc file, a cache entry), and output
 * meant for it would go there: each gets /dev/null, and a closed stdout is
 * remembered so that text output fails with a clear message. */
static void sanitize_std_fds(void)
{
	int fd;

	for (fd = 0; fd <= 2; fd++) {
		if (fcntl(fd, F_GETFD) >= 0 || errno != EBADF)
			continue;
		if (open("/dev/null", fd == 0 ? O_RDONLY : O_WRONLY) != fd)
			_exit(XP_EXIT_FATAL);
		if (fd == 1)
			xp_stdout_closed = 1;
	}
}

int main(int argc, char **argv)
{
	size_t i;

	sanitize_std_fds();
	if (argc < 2) {
		usage(stderr);
		return XP_EXIT_USAGE;
	}
	if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "help") == 0) {
		usage(stdout);
		return XP_EXIT_OK;
	}
	if (strcmp(argv[1], "--version") == 0) {
		printf("xprof %s\n", XPROF_VERSION);
		return XP_EXIT_OK;
	}
	/* the unwinder to compare libdw's with (bench/unwinders.sh) */
	const char *unwinder = getenv("XPROF_UNWINDER");
	enum xp_unwind_backend b;
	if (unwinder && *unwinder) {
		if (xp_unwind_backend_parse(unwinder, &b) < 0) {
			xp_msg("bad XPROF_UNWINDER '%s' (use libdw or libunwind)", xp_esc(unwinder));
			return XP_EXIT_USAGE;
		}
		xp_unwind_set_backend(b);
	}
	for (i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (strcmp(argv[1], commands[i].name) == 0)
			return commands[i].fn(argc - 1, argv + 1);
	xp_msg("unknown command '%s' (try 'xprof --help')", argv[1]);
	return XP_EXIT_USAGE;
}
