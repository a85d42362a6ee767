/* Opening a target's files without letting the target choose what root
 * reads.  A path from /proc/PID/maps is resolved inside the target's root
 * (openat2 RESOLVE_IN_ROOT: an absolute symlink or ".." stays inside it,
 * where /proc/PID/root/PATH would follow it into xprof's root), and a file
 * opened for a mapping must be the very file mapped: the device and inode
 * /proc/PID/maps gives.  A target can rename, replace or symlink its
 * files after mapping them; it cannot make xprof read one it never mapped.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "symbolize/symbolize_internal.h"

int xp_open_in_root(pid_t pid, const char *path)
{
	struct open_how how = {
		.flags = O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK,
		.resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS,
	};
	char root[64];
	int dfd, fd, err;

	snprintf(root, sizeof(root), "/proc/%d/root", (int)pid);
	dfd = open(root, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		return -errno;
	fd = (int)syscall(SYS_openat2, dfd, path, &how, sizeof(how));
	err = errno;
	close(dfd);
	if (fd < 0)
		return -err; /* ENOSYS before Linux 5.6: no fallback that follows symlinks out */
	return fd;
}

int xp_fd_is_file(int fd, unsigned major, unsigned minor, uint64_t inode)
{
	struct stat st;

	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode))
		return 0;
	return (uint64_t)st.st_ino == inode && major(st.st_dev) == major && minor(st.st_dev) == minor;
}
