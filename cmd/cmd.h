/* cmd/ — what the commands share: exit codes, messages, pid parsing, and
 * turning symbolized stacks into pprof locations.  Only cmd/ prints. */
#ifndef XPROF_CMD_CMD_H
#define XPROF_CMD_CMD_H

#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include "collect/collect.h"
#include "gort/gort.h"
#include "proto/profile.h"
#include "serve/serve.h"
#include "symbolize/symbolize.h"
#include "unwind/unwind.h"

enum {
	XP_EXIT_OK = 0,
	XP_EXIT_PARTIAL = 1, /* some threads or samples failed; counted and reported */
	XP_EXIT_FATAL = 2,
	XP_EXIT_USAGE = 64,
};

#define XPROF_VERSION "0.1.0"

/* xprof was started with standard output closed (it is /dev/null now). */
extern int xp_stdout_closed;

/* "xprof: " + message + "\n" on stderr. */
void xp_msg(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Takes an -o argument into *out; prints a usage error for cmd and
 * returns -1 when it is empty. */
int xp_parse_output(const char *cmd, const char *arg, const char **out);

/* getopt's complaint (c is '?' or ':', from an optstring starting with
 * ':' after any '+'), as one line naming the option: XP_EXIT_USAGE. */
int xp_option_error(const char *cmd, int c, char **argv);

/* Parses a pid argument; prints a usage error and returns -1 when bad. */
pid_t xp_parse_pid(const char *arg);

/* Validates pid as a profiling target and prints the reason when it is
 * not one.  Returns the thread-group id to profile, or -1; comm receives
 * the target's name escaped for messages (xp_escape). */
pid_t xp_check_target(pid_t pid, char *comm, size_t commlen);
/* The same for a command that may not ptrace (ptraces 0: perf sampling),
 * which a tracer does not stop. */
pid_t xp_check_target_for(pid_t pid, char *comm, size_t commlen, int ptraces);

/* What changes when pid execs (0 when unknown): taken before reading a
 * target, compared when a read fails. */
uint64_t xp_exec_id(pid_t pid);

/* When pid exec'd since exec_id was taken, says so (what: what xprof was
 * doing, "walk its heap") and returns 1; else 0. */
int xp_said_exec(pid_t pid, uint64_t exec_id, const char *what);

/* Prints why attaching to pid failed with err (-errno), in one line. */
void xp_report_attach_error(pid_t pid, int err);

int64_t xp_now_ns(void);

/* "500ms", "30s", "2m", "1h"; a bare number is seconds.  0, -2 for an
 * unknown unit, -1 or -3 for a bad or out-of-range number. */
int xp_parse_duration(const char *s, int64_t *ns);

/* -d DURATION of command CMD: 0, or XP_EXIT_USAGE with the error said. */
int xp_option_duration(const char *cmd, const char *arg, int64_t *ns);

/* SIGINT, SIGTERM and SIGHUP to handler, without SA_RESTART (poll and
 * sleeps return); SIGPIPE ignored. */
void xp_install_stop_signals(void (*handler)(int));

/* A command that watches one process for a while (block, mutex): its
 * options -p PID, -d DURATION and -o FILE, and what it does first. */
struct xp_watch_opts {
	pid_t pid;
	int64_t duration_ns;
	const char *out;
};
/* The long names of -p, -d, -o and -h, for a command's struct option table. */
#define XP_WATCH_LONGOPTS                               \
	{ "pid", required_argument, NULL, 'p' },        \
	{ "duration", required_argument, NULL, 'd' },   \
	{ "output", required_argument, NULL, 'o' },     \
	{ "help", no_argument, NULL, 'h' }
#define XP_WATCH_SHORTOPTS ":p:d:o:h"
/* Defaults into o and getopt reset, before the command's getopt_long loop. */
void xp_watch_opts_init(struct xp_watch_opts *o, int64_t duration_ns);
/* getopt's c when it is none of the command's own: -p, -d, -o into o, or
 * getopt's complaint said.  0, or XP_EXIT_USAGE with the error said. */
int xp_watch_option(const char *cmd, int c, char **argv, struct xp_watch_opts *o);
/* After the loop: an operand left or no -p is XP_EXIT_USAGE, said; -1
 * when the command may go on (parse's convention). */
int xp_watch_opts_done(const char *cmd, int argc, char **argv, const struct xp_watch_opts *o);
/* Checks -o and the target (which the command does not ptrace), and puts
 * the output path in path (-o, or xprof.COMM.PID.KIND in defpath): the
 * thread-group id, or -1 said. */
pid_t xp_watch_target(const struct xp_watch_opts *o, const char *kind, char *comm, size_t commlen,
		      char *defpath, size_t deflen, const char **path);
/* When pid is a Go program, writes the profile its runtime keeps (kind:
 * XP_GO_BLOCK or XP_GO_MUTEX) to path and returns the exit code; -1 when
 * it is not Go. */
int xp_watch_go(pid_t pid, const char *comm, const char *path, enum xp_go_profile kind);
/* Set by the stop signals (xp_watch_signals): end the run, write what
 * there is.  A second signal ends xprof at once. */
extern volatile sig_atomic_t xp_stop_requested;
/* xp_install_stop_signals with the handler that sets xp_stop_requested. */
void xp_watch_signals(void);

/* A command that follows a process by pid, name or command line (top,
 * serve): -p PID, --name COMM, --cmdline REGEX, exactly one of them. */
struct xp_follow_opts {
	enum xp_serve_follow by;
	pid_t pid;
	const char *name; /* --name COMM or --cmdline REGEX as given */
	int given;        /* how many of the three */
};
#define XP_OPT_NAME 0x4e41    /* getopt codes of --name and --cmdline, */
#define XP_OPT_CMDLINE 0x434d /* above any command's own */
#define XP_FOLLOW_LONGOPTS                                    \
	{ "pid", required_argument, NULL, 'p' },              \
	{ "name", required_argument, NULL, XP_OPT_NAME },     \
	{ "cmdline", required_argument, NULL, XP_OPT_CMDLINE }
/* getopt's c: 1 when it was one of the three (taken into f), 0 when not,
 * XP_EXIT_USAGE with the error said. */
int xp_follow_option(const char *cmd, int c, const char *arg, struct xp_follow_opts *f);
/* After the loop: an operand left, or not exactly one target, is
 * XP_EXIT_USAGE, said; -1 when the command may go on. */
int xp_follow_opts_done(const char *cmd, int argc, char **argv, const struct xp_follow_opts *f);
/* xp_serve_target_new for f (pid: -p's, checked), with its errors said:
 * 0, or -XP_EXIT_USAGE / -XP_EXIT_FATAL. */
struct xp_serve_target;
int xp_follow_target(const char *cmd, const struct xp_follow_opts *f, pid_t pid, struct xp_serve_target **t);

/* The default output name "xprof.COMM.PID.KIND" in buf, with the target's
 * name made safe for a file name (anything but letters, digits and ._+-
 * becomes '_'). */
void xp_default_output(char *buf, size_t len, const char *comm, pid_t pid, const char *kind);

/* Checks an -o argument before any work ("-" is standard output; binary:
 * the output is a pprof file, not for a terminal); prints why it cannot be
 * written and returns -1, else 0. */
int xp_check_output(const char *path, int binary);

/* "wrote PATH; HINT" (hint NULL: how to open a pprof file), or that the
 * profile went to standard output. */
void xp_report_wrote(const char *path, const char *hint);
/* What was wrong with the target's perf map (lines skipped, a file refused),
 * if anything: one line each. */
void xp_report_jit(const struct xp_jit_stats *st);

/* xprof heap on a Go program (kind: enum xp_go_profile, heap, block or
 * mutex): an exit code.  cmd/go.c */
int xp_go_heap(struct xp_go_target *gt, pid_t pid, const char *comm, const char *path, int64_t t0,
	       enum xp_go_profile kind);
/* Opens pid as a Go target, saying so when it is Go but unreadable:
 * xp_go_target_open's result. */
int xp_go_target_open_said(pid_t pid, const char *comm, struct xp_go_target *gt);

int cmd_threads(int argc, char **argv);
int cmd_cpu(int argc, char **argv);
int cmd_heap(int argc, char **argv);
int cmd_serve(int argc, char **argv);
int cmd_top(int argc, char **argv);
int cmd_block(int argc, char **argv);
int cmd_mutex(int argc, char **argv);

#endif
