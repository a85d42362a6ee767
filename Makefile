# xprof — GNU Makefile.
#   make            build ./xprof
#   make deps       install the Debian packages that are missing (root)
#   make check      deps, build, run every test (TAP under prove)
#   make demo       deps, build, profile a bundled workload, show the result
#   make bench      xprof against its peers, table in docs/benchmarks.md
#   make install    PREFIX=/usr/local: binary and man page
#   make sanitize   the whole suite again with xprof and the unit tests built
#                   by clang with ASan+UBSan (no recovery) in build/sanitize;
#                   any sanitizer report fails it (8 to 25 minutes on 2
#                   cores, as busy as they are; not part of check)

PREFIX ?= /usr/local
CFLAGS ?= -O2 -g
XP_CFLAGS := -std=gnu11 -Wall -Wextra -Wno-missing-field-initializers $(CFLAGS)
CPPFLAGS += -I.
# libunwind-generic: the second unwinder (unwind/libunwind.c); -ptrace only for
# tests/unit/unwcmp's comparison with libunwind's own ptrace accessors
UNWIND_LIBS := $(shell pkg-config --libs libunwind-generic 2>/dev/null || echo -lunwind-generic)
UNWIND_PTRACE_LIBS := $(shell pkg-config --libs libunwind-ptrace 2>/dev/null || echo -lunwind-ptrace)
LDLIBS := -ldw -lelf $(UNWIND_LIBS) -lprotobuf-c -lz -liberty -lm -lpthread
# xprof top's terminal view
LDLIBS += $(shell pkg-config --libs ncursesw)

# Debian packages: building, then testing and benchmarking.
BUILD_PKGS := gcc make pkg-config libelf-dev libdw-dev libprotobuf-c-dev \
	protobuf-c-compiler zlib1g-dev libiberty-dev libmicrohttpd-dev libunwind-dev \
	libncurses-dev
TEST_PKGS := golang-go elfutils gdb libc6-dbg g++ clang perl binutils procps libjemalloc2 linux-perf xz-utils util-linux libclang-rt-14-dev time curl postgresql python3 python3.11-dbg strace tmux mariadb-server mariadb-client nginx prometheus-pushgateway

.PHONY: all deps check demo bench install clean fixtures unit sanitize

all: xprof

include proto/proto.mk

ATTACH_OBJS := attach/proc.o attach/mem.o attach/stop.o attach/perf.o attach/perf_ring.o attach/syscalls_x86_64.o attach/pmu.o attach/uprobe.o
UNWIND_OBJS := unwind/unwind.o unwind/regs_x86_64.o unwind/libunwind.o unwind/framepointer.o
SYMBOLIZE_OBJS := symbolize/symbolize.o symbolize/demangle.o symbolize/debugcache.o symbolize/kallsyms.o symbolize/gopclntab.o symbolize/safeopen.o symbolize/escape.o symbolize/synthetic.o symbolize/dwarftypes.o symbolize/perfmap.o symbolize/plt.o
HEAPWALK_OBJS := heapwalk/glibc.o heapwalk/analyze.o heapwalk/budget.o
GORT_OBJS := gort/go.o gort/goroutines.o gort/goheap.o
PYRT_OBJS := pyrt/python.o
SERVE_OBJS := serve/route.o serve/http.o serve/target.o
COLLECT_OBJS := collect/space.o collect/cpu.o collect/go.o collect/threads.o collect/heap.o collect/offcpu.o collect/mutex.o collect/tnames.o
CMD_OBJS := cmd/common.o cmd/threads.o cmd/cpu.o cmd/heap.o cmd/go.o cmd/serve.o cmd/top.o cmd/block.o cmd/mutex.o
LIB_OBJS := $(ATTACH_OBJS) $(UNWIND_OBJS) $(SYMBOLIZE_OBJS) $(HEAPWALK_OBJS) $(GORT_OBJS) $(PYRT_OBJS) $(COLLECT_OBJS) $(SERVE_OBJS) $(PROTO_OBJS)
HEADERS := $(wildcard */*.h) tests/unit/tap.h proto/profile.pb-c.h

%.o: %.c $(HEADERS)
	$(CC) $(CPPFLAGS) $(XP_CFLAGS) -c -o $@ $<

attach/syscalls_x86_64.inc: /usr/include/x86_64-linux-gnu/asm/unistd_64.h
	sed -n 's/^#define __NR_\([a-z0-9_]*\) \([0-9]*\)$$/[\2] = "\1",/p' $< > $@.tmp && mv $@.tmp $@

attach/syscalls_x86_64.o: attach/syscalls_x86_64.inc

xprof: cmd/xprof.o $(CMD_OBJS) $(LIB_OBJS)
	$(CC) $(XP_CFLAGS) -o $@ $^ $(LDLIBS)

# ---- packages --------------------------------------------------------------

deps:
	@missing=""; for p in $(BUILD_PKGS) $(TEST_PKGS); do \
		dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'ok installed' || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
		echo "installing:$$missing"; \
		if [ "$$(id -u)" != 0 ]; then echo "make deps: run as root to install:$$missing" >&2; exit 1; fi; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi

# ---- fixtures and tests ----------------------------------------------------

include fixtures/fixtures.mk
include tests/fuzz/fuzz.mk

UNIT_TESTS := $(patsubst %.c,%,$(wildcard tests/unit/test_*.c))

tests/unit/test_%: tests/unit/test_%.c $(LIB_OBJS) $(HEADERS)
	$(CC) $(CPPFLAGS) $(XP_CFLAGS) -o $@ $< $(LIB_OBJS) $(LDLIBS)

tests/unit/pprofcheck: tests/unit/pprofcheck.c $(PROTO_OBJS)
	$(CC) $(CPPFLAGS) $(XP_CFLAGS) -o $@ $< $(PROTO_OBJS) -lprotobuf-c -lz

# libdw's unwinder against libunwind's (bench/unwinders.sh, tests/unwinders.t)
tests/unit/unwcmp: tests/unit/unwcmp.c $(LIB_OBJS) $(HEADERS)
	$(CC) $(CPPFLAGS) $(XP_CFLAGS) -o $@ $< $(LIB_OBJS) $(UNWIND_PTRACE_LIBS) $(LDLIBS)

tests/unit/noperf: tests/unit/noperf.c
	$(CC) $(CPPFLAGS) $(XP_CFLAGS) -o $@ $<

tests/unit/pidreuse: tests/unit/pidreuse.c
	$(CC) $(CPPFLAGS) $(XP_CFLAGS) -o $@ $<

unit: $(UNIT_TESTS) tests/unit/pprofcheck tests/unit/noperf tests/unit/pidreuse tests/unit/unwcmp

check: deps
	$(MAKE) all fixtures unit
	prove -v tests/*.t 2>&1 | tee tests/last-run.log | grep -E '^(ok|not ok|#|tests/|All tests|Files=|Result)' ; \
	exit $${PIPESTATUS[0]}

SHELL := /bin/bash

# ---- sanitizers ------------------------------------------------------------
# A copy of the sources (tracked and new files, no build products) in
# build/sanitize/src, built there with the sanitizers and tested with the
# same .t files; the fixtures and fuzz harnesses are shared with this tree.
# Every report goes to build/sanitize/reports as well as failing its test
# (clang: gcc's UBSan runtime ignores log_path); the log is build/sanitize/prove.log.
SAN_DIR := build/sanitize
SAN_CFLAGS := -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=all
SAN_ENV := ASAN_OPTIONS=exitcode=86:detect_leaks=1:log_path=$(CURDIR)/$(SAN_DIR)/reports/asan \
	UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1:exitcode=86:log_path=$(CURDIR)/$(SAN_DIR)/reports/ubsan

sanitize: deps
	$(MAKE) fixtures
	rm -rf $(SAN_DIR)
	mkdir -p $(SAN_DIR)/src/build $(SAN_DIR)/reports
	git ls-files -z -co --exclude-standard | tar -c --null -T - | tar -x -C $(SAN_DIR)/src
	ln -s $(CURDIR)/build/fixtures $(SAN_DIR)/src/build/fixtures
	$(MAKE) -C $(SAN_DIR)/src CC=clang CFLAGS='$(SAN_CFLAGS)' all unit
	cd $(SAN_DIR)/src && $(SAN_ENV) prove -v tests/*.t >../prove.log 2>&1; \
	grep -E '^(not ok|tests/.*Wstat|Files=|Result)' ../prove.log; \
	if ls $(CURDIR)/$(SAN_DIR)/reports | grep -q .; then \
		echo "make sanitize: sanitizer reports:"; head -50 $(CURDIR)/$(SAN_DIR)/reports/*; exit 1; fi; \
	echo "make sanitize: no sanitizer report (a 'not ok' above without one is a timing test slowed by ASan)"

demo: deps
	$(MAKE) all fixtures
	@bash tests/demo.sh

# threads first; the CPU benchmark after, once the threads target is gone
bench: deps
	$(MAKE) all fixtures unit
	bash bench/run.sh
	bash bench/cpu.sh
	bash bench/heap.sh
	bash bench/go.sh
	bash bench/serve.sh
	bash bench/unwinders.sh
	bash bench/top.sh
	bash bench/block.sh
	bash bench/mutex.sh
	bash bench/mutex_end.sh
	bash bench/ux.sh

install: xprof
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/share/man/man1
	install -m 755 xprof $(DESTDIR)$(PREFIX)/bin/xprof
	install -m 644 docs/xprof.1 $(DESTDIR)$(PREFIX)/share/man/man1/xprof.1

clean:
	rm -f xprof */*.o tests/unit/*.o attach/syscalls_x86_64.inc proto/profile.pb-c.[ch] $(UNIT_TESTS) tests/unit/pprofcheck tests/unit/noperf tests/unit/pidreuse tests/unit/unwcmp
	rm -rf build
