/* C++ and Rust demangling through libiberty, which knows the Itanium C++
 * ABI and both Rust manglings (legacy _ZN...17h<hash>E and v0 _R...). */
#include <stdlib.h>
#include <string.h>
#include <libiberty/demangle.h>

#include "symbolize/symbolize.h"

char *xp_demangle(const char *name)
{
	if (!name || name[0] != '_' || (name[1] != 'Z' && name[1] != 'R'))
		return NULL;
	return cplus_demangle(name, DMGL_PARAMS | DMGL_ANSI | DMGL_AUTO);
}
