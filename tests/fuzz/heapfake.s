# A stand-in for libc.so.6 and ld-linux-x86-64.so.2 in fuzz_heapwalk: no
# code, only the symbols the heap walker looks up (main_arena, mp_, the TLS
# variable tcache, _thread_db_link_map_l_tls_offset, _r_debug), a vtable
# and a global for the analysis to name.  Their contents come from the fuzz
# input, in memory the harness maps where the module is said to be.
	.text
	.globl	fake_function
	.type	fake_function, @function
fake_function:
	ret
	.size	fake_function, .-fake_function

	.data
	.balign	64
	.globl	main_arena
	.type	main_arena, @object
	.size	main_arena, 2200
main_arena:
	.zero	2200
	.balign	64
	.globl	mp_
	.type	mp_, @object
	.size	mp_, 136
mp_:
	.zero	136
	.balign	16
	.globl	_thread_db_link_map_l_tls_offset
	.type	_thread_db_link_map_l_tls_offset, @object
	.size	_thread_db_link_map_l_tls_offset, 12
_thread_db_link_map_l_tls_offset:
	.zero	12
	.balign	16
	.globl	_r_debug
	.type	_r_debug, @object
	.size	_r_debug, 40
_r_debug:
	.zero	40
	.balign	16
	.globl	_ZTV3Foo
	.type	_ZTV3Foo, @object
	.size	_ZTV3Foo, 32
_ZTV3Foo:
	.zero	32
	.globl	held
	.type	held, @object
	.size	held, 64
held:
	.zero	64

	.section	.tbss,"awT",@nobits
	.balign	8
	.zero	0x48
	.globl	tcache
	.type	tcache, @tls_object
	.size	tcache, 8
tcache:
	.zero	8
