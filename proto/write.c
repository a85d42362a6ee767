/* proto/write.c — puts a profile on disk: encode, check, gzip, then a temp
 * file in the target's directory renamed over the target, so neither a
 * reader nor an interrupted run ever sees half a profile.  The temp-file
 * writer is public (xp_write_file_atomic) for cmd/'s other output files.
 */
#define _GNU_SOURCE /* mkostemp */
#define ZLIB_CONST
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
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

int xp_write_file_atomic(const char *path, const void *buf, size_t len)
{
	sigset_t fatal, saved;
	char *tmp = NULL;
	int fd, err;

	if (!path || !*path || (!buf && len))
		return -EINVAL;
	err = temp_path_for(path, &tmp);
	if (err)
		return err;

	/* Held back until the temp file is renamed or removed, so an INT or
	 * TERM cannot leave it behind; they are delivered when we restore. */
	sigemptyset(&fatal);
	sigaddset(&fatal, SIGINT);
	sigaddset(&fatal, SIGTERM);
	sigaddset(&fatal, SIGHUP);
	sigaddset(&fatal, SIGPIPE);
	sigaddset(&fatal, SIGQUIT);
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
	if (!err && rename(tmp, path) < 0)
		err = -errno;
out_close:
	if (fd >= 0)
		close(fd);
	if (err)
		unlink(tmp);
out_restore_signals:
	sigprocmask(SIG_SETMASK, &saved, NULL);
out_free_tmp:
	free(tmp);
	return err;
}

int xp_profile_write(const struct xp_profile *p, const char *path)
{
	uint8_t *raw = NULL, *gz = NULL;
	size_t rawlen, gzlen;
	char why[256];
	int err;

	if (!p || !path || !*path)
		return -EINVAL;
	err = xp_profile_encode(p, &raw, &rawlen);
	if (err)
		return err;
	/* A file pprof would refuse is worse than none: the caller gets an
	 * error now rather than the user a puzzle later. */
	err = xp_profile_check_encoded(raw, rawlen, why, sizeof(why));
	if (err)
		goto out_free_raw;
	err = gzip_buffer(raw, rawlen, &gz, &gzlen);
	if (err)
		goto out_free_raw;
	err = xp_write_file_atomic(path, gz, gzlen);
	free(gz);
out_free_raw:
	free(raw);
	return err;
}

int xp_output_writable(const char *path)
{
	const char *slash;
	struct stat st;
	char *dir;
	int err = 0;

	if (!path || !*path)
		return -ENOENT;
	slash = strrchr(path, '/');
	if (slash && !slash[1])
		return -EISDIR;
	if (!slash)
		dir = strdup(".");
	else if (slash == path)
		dir = strdup("/");
	else
		dir = strndup(path, (size_t)(slash - path));
	if (!dir)
		return -ENOMEM;

	if (stat(dir, &st) < 0)
		err = -errno;
	else if (!S_ISDIR(st.st_mode))
		err = -ENOTDIR;
	else if (access(dir, W_OK | X_OK) < 0)
		err = -errno;
	else if (stat(path, &st) == 0) {
		/* An existing file is fine: rename replaces it. */
		if (S_ISDIR(st.st_mode))
			err = -EISDIR;
	} else if (errno != ENOENT) {
		err = -errno;
	}
	free(dir);
	return err;
}
