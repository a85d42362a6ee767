/* proto/write.c — puts a profile where -o says: encode, check, gzip, then
 * a regular file is replaced through a temp file in its directory renamed
 * over it (neither a reader nor an interrupted run sees half a profile),
 * while standard output, a device or a FIFO is written in place.  The
 * writer is public (xp_write_file_atomic) for cmd/'s other output files.
 */
#define _GNU_SOURCE /* mkostemp */
#define ZLIB_CONST
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/magic.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>
#include <zlib.h>

#include "proto/profile.h"

/* How much of the target's name goes into the temp name: ".NAME.XXXXXX"
 * has to stay within NAME_MAX however long NAME is. */
#define TEMP_NAME_KEEP 200

/* pprof reads gzip; level 6 is zlib's usual speed/size balance. */
static int gzip_buffer(const uint8_t *in, size_t inlen, uint8_t **out, size_t *outlen)
{
	z_stream zs;
	uint8_t *buf;
	size_t bound, fed = 0, produced = 0;
	int ret, err = 0;

	memset(&zs, 0, sizeof(zs));
	if (deflateInit2(&zs, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK)
		return -ENOMEM;
	/* With deflateBound's room, Z_FINISH completes without a second buffer. */
	bound = deflateBound(&zs, inlen);
	buf = malloc(bound);
	if (!buf) {
		err = -ENOMEM;
		goto out_end;
	}
	for (;;) {
		size_t room = bound - produced < UINT_MAX ? bound - produced : UINT_MAX;

		if (!zs.avail_in && fed < inlen) {
			size_t chunk = inlen - fed < UINT_MAX ? inlen - fed : UINT_MAX;

			zs.next_in = in + fed;
			zs.avail_in = (uInt)chunk;
			fed += chunk;
		}
		zs.next_out = buf + produced;
		zs.avail_out = (uInt)room;
		ret = deflate(&zs, fed == inlen ? Z_FINISH : Z_NO_FLUSH);
		produced += room - zs.avail_out;
		if (ret == Z_STREAM_END)
			break;
		if ((ret != Z_OK && ret != Z_BUF_ERROR) || produced == bound) {
			err = ret == Z_MEM_ERROR ? -ENOMEM : -EIO;
			free(buf);
			goto out_end;
		}
	}
	*out = buf;
	*outlen = produced;
out_end:
	deflateEnd(&zs);
	return err;
}

/* "dir/.NAME.XXXXXX" for "dir/NAME": same directory, so rename is atomic. */
static int temp_path_for(const char *path, char **tmp)
{
	const char *slash = strrchr(path, '/');
	const char *base = slash ? slash + 1 : path;
	int dirlen = slash ? (int)(slash - path + 1) : 0;
	size_t baselen = strlen(base);

	if (!*base)
		return -EISDIR;
	if (baselen > TEMP_NAME_KEEP)
		baselen = TEMP_NAME_KEEP;
	if (asprintf(tmp, "%.*s.%.*s.XXXXXX", dirlen, path, (int)baselen, base) < 0)
		return -ENOMEM;
	return 0;
}

static int write_all(int fd, const void *data, size_t len)
{
	const uint8_t *buf = data;

	while (len) {
		ssize_t n = write(fd, buf, len);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

/* ---- where the bytes go ---------------------------------------------------
 *
 * The temp file and rename are for regular files only.  What path names
 * decides the rest (docs/xprof.1, FILES):
 *   "-"                     standard output, written as is;
 *   missing, regular file   a temp file in its directory renamed over it;
 *   character device, FIFO  written in place, never replaced;
 *   symlink                 resolved one link at a time, each followed only
 *                           under the rule of the kernel's
 *                           fs.protected_symlinks, whatever the sysctl says:
 *                           no link in a sticky world-writable directory
 *                           unless we or the directory's owner own it, so a
 *                           link planted in a shared /tmp cannot send root's
 *                           output elsewhere; then the above for its target.
 *                           A link in /proc (/dev/stdout, /proc/self/fd/N) is
 *                           the kernel's to follow: what it opens is written
 *                           in place; a dangling link creates its target,
 *                           as a shell's redirection does;
 *   directory, block device, socket: refused.
 */
enum out_kind { OUT_STDOUT, OUT_REPLACE, OUT_IN_PLACE };

struct out_target {
	enum out_kind kind;
	char *replace; /* OUT_REPLACE: the path to rename over, no symlink in it */
	int fd;        /* OUT_IN_PLACE: an O_PATH descriptor of what to write */
	char *why;     /* a refusal in words, or NULL */
	size_t whylen;
};

#define LINKS_MAX 40 /* the kernel's MAXSYMLINKS */

static void say_why(struct out_target *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void say_why(struct out_target *t, const char *fmt, ...)
{
	va_list ap;

	if (!t->why || !t->whylen)
		return;
	va_start(ap, fmt);
	vsnprintf(t->why, t->whylen, fmt, ap);
	va_end(ap);
}

/* procfs's own links (/proc/PID/fd/N, the last link of /dev/stdout) are
 * followed by the kernel: their text ("pipe:[42]") is no path.  The ones on
 * the way (/proc/self) are plain text. */
static int on_procfs(const char *dir)
{
	struct stat d, proc;

	return stat(dir, &d) == 0 && stat("/proc", &proc) == 0 && d.st_dev == proc.st_dev;
}

/* fs.protected_symlinks' rule (may_follow_link in the kernel's fs/namei.c). */
static int link_may_be_followed(const char *dir, const struct stat *link, struct out_target *t)
{
	struct stat d;

	if (stat(dir, &d) < 0)
		return -errno;
	if ((d.st_mode & (S_ISVTX | S_IWOTH)) != (S_ISVTX | S_IWOTH) || link->st_uid == geteuid() ||
	    link->st_uid == d.st_uid)
		return 0;
	say_why(t, "it is a symlink of uid %u in %s, a sticky world-writable directory of uid %u: not "
		   "followed, as anyone could have planted it (name the file it points to)",
		(unsigned)link->st_uid, dir, (unsigned)d.st_uid);
	return -EACCES;
}

/* The last component's kind decides how it is written. */
static int classify_last(const char *res, const struct stat *st, struct out_target *t)
{
	if (S_ISREG(st->st_mode))
		return 0;
	if (S_ISDIR(st->st_mode))
		return -EISDIR;
	if (S_ISCHR(st->st_mode) || S_ISFIFO(st->st_mode)) {
		/* res has no symlink left in it */
		t->fd = open(res, O_PATH | O_NOFOLLOW | O_CLOEXEC);
		t->kind = OUT_IN_PLACE;
		return t->fd < 0 ? -errno : 0;
	}
	if (S_ISBLK(st->st_mode))
		say_why(t, "it is a block device: a profile is not written over a disk");
	else
		say_why(t, "it is a socket: write to a file or a FIFO");
	return -EPERM;
}

/* Walks path a component at a time, as realpath does, checking each symlink
 * before taking it; fills t.  0 or -errno. */
static int resolve_output(const char *path, struct out_target *t)
{
	char *res = NULL, *rest = NULL, *cand = NULL, *p;
	int links = 0, err = 0;

	t->kind = OUT_REPLACE;
	t->fd = -1;
	t->replace = NULL;
	if (!*path)
		return -ENOENT;
	if (strcmp(path, "-") == 0) {
		t->kind = OUT_STDOUT;
		return 0;
	}
	if (path[strlen(path) - 1] == '/')
		return -EISDIR;
	rest = strdup(path);
	res = path[0] == '/' ? strdup("/") : getcwd(NULL, 0);
	if (!rest || !res) {
		err = -ENOMEM;
		goto out;
	}
	p = rest;
	for (;;) {
		char *end = strchrnul(p, '/'), *next = *end ? end + 1 : end;
		int n = (int)(end - p), last;
		struct stat st;

		while (*next == '/')
			next++;
		last = !*next;
		if (n == 0 || (n == 1 && p[0] == '.')) {
			if (last)
				break;
			p = next;
			continue;
		}
		if (n == 2 && p[0] == '.' && p[1] == '.') {
			char *slash = strrchr(res, '/');

			slash[slash == res] = '\0';
			if (last)
				break;
			p = next;
			continue;
		}
		free(cand);
		if (asprintf(&cand, "%s%s%.*s", res, strcmp(res, "/") ? "/" : "", n, p) < 0) {
			cand = NULL;
			err = -ENOMEM;
			break;
		}
		if (lstat(cand, &st) < 0) {
			err = -errno;
			if (err == -ENOENT && last) { /* the file to create */
				err = 0;
				free(res);
				res = cand;
				cand = NULL;
			}
			break;
		}
		if (S_ISLNK(st.st_mode)) {
			char target[PATH_MAX];
			ssize_t tl;
			char *joined;

			if (++links > LINKS_MAX) {
				err = -ELOOP;
				break;
			}
			if ((err = link_may_be_followed(res, &st, t)) < 0)
				break;
			if (last && on_procfs(res)) {
				t->fd = open(cand, O_PATH | O_CLOEXEC);
				if (t->fd < 0) {
					err = -errno;
					break;
				}
				t->kind = OUT_IN_PLACE;
				if (fstat(t->fd, &st) < 0)
					err = -errno;
				else if (S_ISDIR(st.st_mode))
					err = -EISDIR;
				break;
			}
			tl = readlink(cand, target, sizeof(target) - 1);
			if (tl < 0) {
				err = -errno;
				break;
			}
			target[tl] = '\0';
			if (asprintf(&joined, "%s/%s", target, next) < 0) {
				err = -ENOMEM;
				break;
			}
			free(rest);
			p = rest = joined;
			if (target[0] == '/') {
				free(res);
				if (!(res = strdup("/"))) {
					err = -ENOMEM;
					break;
				}
			}
			continue;
		}
		free(res);
		res = cand;
		cand = NULL;
		if (last) {
			err = classify_last(res, &st, t);
			break;
		}
		if (!S_ISDIR(st.st_mode)) {
			err = -ENOTDIR;
			break;
		}
		p = next;
	}
	if (!err && t->kind == OUT_REPLACE) {
		struct stat st;

		/* "dir/.." and the like name a directory */
		if (stat(res, &st) == 0 && S_ISDIR(st.st_mode))
			err = -EISDIR;
		t->replace = res;
		res = NULL;
	}
out:
	free(cand);
	free(rest);
	free(res);
	if (err) {
		if (t->fd >= 0)
			close(t->fd);
		t->fd = -1;
		free(t->replace);
		t->replace = NULL;
	}
	return err;
}

static void out_target_release(struct out_target *t)
{
	if (t->fd >= 0)
		close(t->fd);
	free(t->replace);
}

/* A device or FIFO, reopened for writing through the descriptor the walk
 * found (no second lookup of its name); a FIFO waits for its reader. */
static int write_in_place(int pathfd, const void *buf, size_t len)
{
	char proc[64];
	int fd, err;

	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", pathfd);
	fd = open(proc, O_WRONLY | O_NOCTTY | O_CLOEXEC | O_TRUNC);
	if (fd < 0 && errno == EINVAL) /* O_TRUNC on what cannot be truncated */
		fd = open(proc, O_WRONLY | O_NOCTTY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	err = write_all(fd, buf, len);
	if (close(fd) < 0 && !err)
		err = -errno;
	return err;
}

static int completes_run;

void xp_write_completes_run(void)
{
	completes_run = 1;
}

static void ending_signals(sigset_t *set)
{
	sigemptyset(set);
	sigaddset(set, SIGINT);
	sigaddset(set, SIGTERM);
	sigaddset(set, SIGHUP);
	sigaddset(set, SIGPIPE);
	sigaddset(set, SIGQUIT);
}

static int ending_signal_pending(const sigset_t *ending)
{
	sigset_t pending;
	int sig;

	if (sigpending(&pending) < 0)
		return 0;
	for (sig = 1; sig < NSIG; sig++)
		if (sigismember(ending, sig) && sigismember(&pending, sig))
			return 1;
	return 0;
}

void xp_write_hold_signals(void)
{
	sigset_t set;

	ending_signals(&set);
	sigprocmask(SIG_BLOCK, &set, NULL);
}

static int replace_file(const char *path, const void *buf, size_t len)
{
	sigset_t fatal, saved;
	char *tmp = NULL;
	int fd, err;

	err = temp_path_for(path, &tmp);
	if (err)
		return err;

	/* Held back until the temp file is renamed or removed, so an INT or
	 * TERM cannot leave it behind; they are delivered when we restore,
	 * or, once the file is in place and that completes the run, never. */
	ending_signals(&fatal);
	if (sigprocmask(SIG_BLOCK, &fatal, &saved) < 0) {
		err = -errno;
		goto out_free_tmp;
	}
	fd = mkostemp(tmp, O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0) {
		err = -errno;
		goto out_restore_signals;
	}
	if (fchmod(fd, 0644) < 0) {
		err = -errno;
		goto out_close;
	}
	err = write_all(fd, buf, len);
	if (err)
		goto out_close;
	/* close can report a failed delayed write (NFS, quota). */
	err = close(fd) < 0 ? -errno : 0;
	fd = -1;
	/* a signal that came before the file is in place ends the run without
	 * one: the temp file goes, and the signal is delivered below */
	if (!err && completes_run && ending_signal_pending(&fatal))
		err = -EINTR;
	if (!err && rename(tmp, path) < 0)
		err = -errno;
out_close:
	if (fd >= 0)
		close(fd);
	if (err)
		unlink(tmp);
out_restore_signals:
	if (err || !completes_run)
		sigprocmask(SIG_SETMASK, &saved, NULL);
out_free_tmp:
	free(tmp);
	return err;
}

int xp_write_file_atomic(const char *path, const void *buf, size_t len)
{
	struct out_target t = { 0 };
	int err;

	if (!path || !*path || (!buf && len))
		return -EINVAL;
	err = resolve_output(path, &t);
	if (err)
		return err;
	switch (t.kind) {
	case OUT_STDOUT:
		err = write_all(STDOUT_FILENO, buf, len);
		if (!err && completes_run)
			xp_write_hold_signals();
		break;
	case OUT_IN_PLACE:
		err = write_in_place(t.fd, buf, len);
		if (!err && completes_run)
			xp_write_hold_signals();
		break;
	case OUT_REPLACE:
		err = replace_file(t.replace, buf, len);
		break;
	}
	out_target_release(&t);
	return err;
}

int xp_profile_gzip(const struct xp_profile *p, uint8_t **gz, size_t *gzlen)
{
	uint8_t *raw = NULL;
	size_t rawlen;
	char why[256];
	int err;

	err = xp_profile_encode(p, &raw, &rawlen);
	if (err)
		return err;
	/* A file pprof would refuse is worse than none: the caller gets an
	 * error now rather than the user a puzzle later. */
	err = xp_profile_check_encoded(raw, rawlen, why, sizeof(why));
	if (!err)
		err = gzip_buffer(raw, rawlen, gz, gzlen);
	free(raw);
	return err;
}

int xp_profile_write(const struct xp_profile *p, const char *path)
{
	uint8_t *gz = NULL;
	size_t gzlen;
	int err;

	if (!p || !path || !*path)
		return -EINVAL;
	err = xp_profile_gzip(p, &gz, &gzlen);
	if (err)
		return err;
	err = xp_write_file_atomic(path, gz, gzlen);
	free(gz);
	return err;
}

/* procfs and sysfs are the kernel's: no file can be created in them. */
static int kernel_fs(const char *dir, struct out_target *t)
{
	struct statfs fs;

	if (statfs(dir, &fs) < 0)
		return 0; /* access() says why */
	if (fs.f_type == PROC_SUPER_MAGIC) {
		say_why(t, "it is in /proc, the kernel's process file system: no file can be written there "
			   "(choose a file elsewhere)");
		return -EPERM;
	}
	if (fs.f_type == SYSFS_MAGIC) {
		say_why(t, "it is in /sys, the kernel's sysfs: no file can be written there (choose a file "
			   "elsewhere)");
		return -EPERM;
	}
	return 0;
}

int xp_output_writable(const char *path, char *why, size_t whylen)
{
	struct out_target t = { .why = why, .whylen = whylen };
	const char *slash;
	char *dir;
	int err;

	if (why && whylen)
		why[0] = '\0';
	if (!path || !*path)
		return -ENOENT;
	err = resolve_output(path, &t);
	if (err || t.kind != OUT_REPLACE) {
		out_target_release(&t);
		return err;
	}
	/* a new or replaced file needs its directory writable */
	slash = strrchr(t.replace, '/');
	dir = slash == t.replace ? strdup("/") : strndup(t.replace, (size_t)(slash - t.replace));
	if (!dir)
		err = -ENOMEM;
	else if ((err = kernel_fs(dir, &t)) < 0)
		; /* root's access() would say yes, and the write ENOENT */
	else if (access(dir, W_OK | X_OK) < 0)
		err = -errno;
	free(dir);
	out_target_release(&t);
	return err;
}
