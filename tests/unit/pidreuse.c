/* pidreuse FIRST [ARGS...] -- SECOND [ARGS...] — runs FIRST; the moment it
 * exits, starts SECOND under the same pid (root: the kernel's next pid is
 * set through /proc/sys/kernel/ns_last_pid just before each fork), for
 * testing that xprof never takes a new process for the one it was given.
 * Prints "reused PID" when SECOND runs under FIRST's pid, or "missed PID"
 * when another process took the pid first; then waits for SECOND. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define TRIES 200

static int set_last_pid(pid_t p)
{
	char buf[32];
	int fd = open("/proc/sys/kernel/ns_last_pid", O_WRONLY | O_CLOEXEC), n, ok;

	if (fd < 0)
		return -1;
	n = snprintf(buf, sizeof(buf), "%d", (int)p);
	ok = write(fd, buf, (size_t)n) == n;
	close(fd);
	return ok ? 0 : -1;
}

int main(int argc, char **argv)
{
	char **second = NULL;
	pid_t first, c;
	int i, status;

	for (i = 1; i < argc; i++)
		if (strcmp(argv[i], "--") == 0) {
			argv[i] = NULL;
			second = argv + i + 1;
			break;
		}
	if (argc < 2 || !second || !second[0]) {
		fprintf(stderr, "usage: pidreuse FIRST [ARGS...] -- SECOND [ARGS...]\n");
		return 64;
	}
	first = fork();
	if (first == 0) {
		execv(argv[1], argv + 1);
		_exit(127);
	}
	if (first < 0 || waitpid(first, &status, 0) != first)
		return 1;
	for (i = 0; i < TRIES; i++) {
		if (set_last_pid(first - 1) < 0) {
			perror("pidreuse: ns_last_pid");
			return 1;
		}
		c = fork();
		if (c == 0) {
			if (getpid() != first)
				_exit(0);
			execv(second[0], second);
			_exit(127);
		}
		if (c == first)
			break;
		if (c > 0)
			waitpid(c, NULL, 0);
	}
	printf("%s %d\n", i < TRIES ? "reused" : "missed", (int)first);
	fflush(stdout);
	if (i == TRIES)
		return 1;
	waitpid(first, &status, 0);
	return 0;
}
