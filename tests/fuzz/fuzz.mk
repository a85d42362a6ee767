# tests/fuzz/fuzz.mk — libFuzzer harnesses for the parsers of data a target
# controls (its ELF and DWARF files, its heap, what perf copies out of it).
# Included by the top-level Makefile.
#
#   make fuzz                        every harness for FUZZ_TIME seconds, one after another
#   make fuzz FUZZERS=perf FUZZ_TIME=1800
#   make fuzz-build                  the harnesses only (tests/fuzz_corpus.t runs them)
#
# A harness is tests/fuzz/fuzz_NAME.c (LLVMFuzzerTestOneInput) plus one
# $(eval $(call fuzzer,NAME,LIBFUZZER OPTIONS)) line at the end of this file.
# Its corpus is build/fuzz/corpus/NAME, seeded from tests/fuzz/seeds/NAME and
# the files in FUZZ_SEEDS_NAME; crashes land in build/fuzz/crashes/NAME.
# A fixed bug's reproducer goes into tests/fuzz/regress/NAME/, where `make
# check` replays it.  The library is rebuilt with clang and the sanitizers
# in build/fuzz/obj, apart from the gcc objects next to the sources.

FUZZ_CC := clang
FUZZ_TIME ?= 60
FUZZ_DIR := build/fuzz
FUZZ_SAN := -fsanitize=address,undefined -fno-sanitize-recover=undefined
FUZZ_CFLAGS := -std=gnu11 -g -O1 -fno-omit-frame-pointer -Wall -Wextra \
	-Wno-missing-field-initializers $(FUZZ_SAN)
# every library object but the profile writer, which reads nothing from a target
FUZZ_LIB_OBJS := $(patsubst %.o,$(FUZZ_DIR)/obj/%.o,$(filter-out $(PROTO_OBJS),$(LIB_OBJS)))
FUZZERS :=

.PHONY: fuzz fuzz-build fuzz-list

$(FUZZ_DIR)/obj/%.o: %.c $(HEADERS)
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(CPPFLAGS) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -c -o $@ $<

$(FUZZ_DIR)/obj/attach/syscalls_x86_64.o: attach/syscalls_x86_64.inc

# an archive: a harness that compiles a library file into itself (to reach
# its static functions) keeps that file's member out of the link
$(FUZZ_DIR)/libxp.a: $(FUZZ_LIB_OBJS)
	rm -f $@ && ar rcs $@ $^

# fuzzer NAME, OPTIONS: builds build/fuzz/fuzz_NAME; OPTIONS are libFuzzer's
# for `make fuzz` (-max_len, -dict, ...)
define fuzzer
FUZZERS += $(1)
FUZZ_OPTS_$(1) := $(2)
fuzz-build: $(FUZZ_DIR)/fuzz_$(1)
$(FUZZ_DIR)/fuzz_$(1): tests/fuzz/fuzz_$(1).c tests/fuzz/fuzz.h $(FUZZ_DIR)/libxp.a $(HEADERS)
	$(FUZZ_CC) $(CPPFLAGS) $(FUZZ_CFLAGS) -fsanitize=fuzzer -o $$@ $$< $(FUZZ_DIR)/libxp.a $(LDLIBS)
endef

# (each harness adds itself: FUZZERS is still empty here)
fuzz-build:

fuzz-list:
	@echo $(FUZZERS)

# one harness after another, each on one core, niced: the machine is shared
fuzz: deps fixtures fuzz-build
	@st=0; $(foreach n,$(FUZZERS),tests/fuzz/run.sh $(n) $(FUZZ_TIME) $(FUZZ_OPTS_$(n)) -- $(FUZZ_SEEDS_$(n)) || st=1;) \
	exit $$st

# ---- the harnesses -------------------------------------------------------

# symbolize: seeded with the fixture binaries (the Go ones exceed max_len)
FUZZ_SEEDS_symbolize = $(filter-out %/goapp %/goapp-stripped %/goparked %/goparked-stripped,$(FIXTURES)) \
	$(FIX)/parked-split.debug

$(eval $(call fuzzer,symbolize,-max_len=262144 -dict=tests/fuzz/elf.dict))
$(eval $(call fuzzer,heapwalk,-max_len=65536))
$(eval $(call fuzzer,perf,-max_len=131072))

# heapwalk: stand-ins for libc and ld.so, beside the harness
$(FUZZ_DIR)/heapfake/libc.so.6: tests/fuzz/heapfake.s
	@mkdir -p $(dir $@)
	$(FUZZ_CC) -shared -nostdlib -Wl,-z,norelro -Wl,-z,noseparate-code -Wl,--build-id -o $@ $<
$(FUZZ_DIR)/heapfake/ld-linux-x86-64.so.2: $(FUZZ_DIR)/heapfake/libc.so.6
	cp $< $@
$(FUZZ_DIR)/fuzz_heapwalk: $(FUZZ_DIR)/heapfake/libc.so.6 $(FUZZ_DIR)/heapfake/ld-linux-x86-64.so.2

# gopclntab: the Go fixtures' tables and go.func.*, written by the harness
FUZZ_SEEDS_gopclntab = $(FUZZ_DIR)/seedgen/gopclntab/goapp $(FUZZ_DIR)/seedgen/gopclntab/goparked
$(FUZZ_DIR)/seedgen/gopclntab/%: $(FIX)/% $(FUZZ_DIR)/fuzz_gopclntab
	@mkdir -p $(dir $@)
	XPROF_FUZZ_WRITE_SEEDS=$(dir $@) $(FUZZ_DIR)/fuzz_gopclntab $<
fuzz: $(FUZZ_SEEDS_gopclntab)
$(eval $(call fuzzer,gopclntab,-max_len=1048576))

# goruntime: the target's memory around build/fixtures/goparked, which the
# harness loads; seeded with a recording of a live goparked, made afresh
# (the committed seed came from another build of it)
FUZZ_SEEDS_goruntime = $(FUZZ_DIR)/seedgen/goruntime/goparked
$(FUZZ_DIR)/seedgen/goruntime/goparked: $(FIX)/goparked $(FUZZ_DIR)/fuzz_goruntime tests/fuzz/goruntime-seed.sh
	tests/fuzz/goruntime-seed.sh $(dir $@)
fuzz: $(FUZZ_SEEDS_goruntime)
$(eval $(call fuzzer,goruntime,-max_len=65536))
$(FUZZ_DIR)/fuzz_goruntime: | $(FIX)/goparked

# serve: what xprof serve parses of a request itself (path, query, token)
$(eval $(call fuzzer,serve,-max_len=4096))
