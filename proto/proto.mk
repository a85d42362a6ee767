# proto/proto.mk — builds proto/ (the pprof model and writer); included by
# the top-level Makefile and run from the repository root.  Objects are
# compiled by the including Makefile's %.o rule (or make's built-in one), so
# they get its flags; users link with -lprotobuf-c -lz.

PROTO_GEN := proto/profile.pb-c.c proto/profile.pb-c.h
PROTO_OBJS := proto/builder.o proto/check.o proto/write.o proto/flame.o proto/profile.pb-c.o
PROTO_CLEAN := $(PROTO_OBJS) $(PROTO_GEN) tests/unit/test_proto

# A pattern rule with two targets tells make that one protoc-c run makes
# both files, so make -j does not run it twice.  Run from the root so the
# generated code includes "proto/profile.pb-c.h".
proto/%.pb-c.c proto/%.pb-c.h: proto/%.proto
	protoc-c --c_out=. $<

# Every object needs the generated header before it compiles (make -j).
# Naming profile.pb-c.c here also keeps make from deleting it as an
# intermediate file after the build.
$(PROTO_OBJS): proto/profile.h proto/profile.pb-c.h
proto/profile.pb-c.o: proto/profile.pb-c.c

tests/unit/test_proto: $(PROTO_OBJS)
