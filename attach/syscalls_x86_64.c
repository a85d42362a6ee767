/* x86-64 system call names, generated at build time from the kernel
 * headers' asm/unistd_64.h. */
#include <stddef.h>

static const char *const names[] = {
#include "attach/syscalls_x86_64.inc"
};

const char *xp_syscall_name(long nr)
{
	if (nr < 0 || (size_t)nr >= sizeof(names) / sizeof(names[0]))
		return NULL;
	return names[nr];
}
