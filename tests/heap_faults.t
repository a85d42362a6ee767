#!/bin/bash
# xprof heap: C++ objects counted by class through their vtables; a program
# that scribbled over its heap (a chunk size, a tcache link) gets a partial
# profile and exit 1, never a hang or a crash; SIGKILL mid-walk leaves the
# target running; bad usage gets one line.
. "$(dirname "$0")/lib.sh"
need_ptrace
command -v go >/dev/null || { echo "Bail out! go missing (make deps)"; exit 1; }

# count_of FILE NAME: inuse_objects of the samples whose story has NAME
count_of() {
	go tool pprof -traces -sample_index=inuse_objects "$1" 2>/dev/null | awk -v want="$2" '
		/^-----------\+/ { if (has) total += v; v = ""; has = 0; next }
		v == "" && $1 ~ /^[0-9]+$/ { v = $1; rest = $0; sub(/^ *[0-9]+ +/, "", rest); if (rest == want) has = 1; next }
		v != "" { line = $0; sub(/^ +/, "", line); if (line == want) has = 1 }
		END { if (has) total += v; print total + 0 }'
}

start_fixture ready "$FIX/heapcxx" 3000 2000
read -r pid circles squares <<<"$ready"
"$XPROF" heap -p "$pid" -o "$TMP/cxx.pb.gz" 2>"$TMP/err"
ok $? "heap of a C++ program" || diag "$(cat "$TMP/err")"
is "$(count_of "$TMP/cxx.pb.gz" shapes::Circle)" "$circles" "shapes::Circle objects counted exactly by their vtable ($circles)"
is "$(count_of "$TMP/cxx.pb.gz" shapes::Square)" "$squares" "shapes::Square objects counted exactly ($squares)"
is "$(count_of "$TMP/cxx.pb.gz" shapes::Node)" 500 "a 500-node list of one type, its story folded to one frame"
go tool pprof -traces "$TMP/cxx.pb.gz" 2>/dev/null | grep -A2 'shapes::Circle' | grep -q '\[global\] registry'
ok $? "shapes are traced through the vector's buffer to [global] registry"

go tool pprof -traces "$TMP/cxx.pb.gz" 2>/dev/null | grep -A1 'shapes::Triangle' | grep -q '\[stack\] park_with'
ok $? "an object held only by a local variable is rooted at [stack] park_with"

# another allocator: a clear refusal, not a wrong walk
if [ -e /usr/lib/x86_64-linux-gnu/libjemalloc.so.2 ]; then
	LD_PRELOAD=/usr/lib/x86_64-linux-gnu/libjemalloc.so.2 sleep 60 &
	jpid=$!
	_fixture_pids="$_fixture_pids $jpid"
	sleep 0.3
	"$XPROF" heap -p "$jpid" -o "$TMP/je.pb.gz" >/dev/null 2>"$TMP/err"
	rc=$?
	[ "$rc" = 2 ] && grep -q 'allocates with .*libjemalloc.so.2: only glibc.s malloc is supported yet' "$TMP/err" &&
		[ ! -e "$TMP/je.pb.gz" ] && [ "$(wc -l <"$TMP/err")" = 1 ]
	ok $? "a jemalloc program: one clear line, exit 2, no file ($(cat "$TMP/err"))"
else
	ok 0 "# SKIP libjemalloc2 not installed (make deps installs it)"
fi

for mode in corrupt-size corrupt-list; do
	start_fixture ready "$FIX/heapfix" "$mode"
	cpid=${ready%% *}
	timeout 30 "$XPROF" heap -p "$cpid" -o "$TMP/$mode.pb.gz" >/dev/null 2>"$TMP/err"
	rc=$?
	[ "$rc" = 1 ] && grep -q 'the walk is partial: ' "$TMP/err"
	ok $? "$mode: a partial profile, exit 1, no hang or crash (exit $rc): $(grep partial "$TMP/err")"
	pprof_check "$TMP/$mode.pb.gz"
	ok $? "$mode: what was walked is written and valid"
	no_thread_stopped "$cpid"
	ok $? "$mode: the target runs afterwards"
done

# SIGKILL at several moments of a walk of a 500,000-object heap
start_fixture ready "$FIX/heapcxx" 300000 200000
bpid=${ready%% *}
stuck=0
for delay in 0 0.01 0.02 0.04 0.06 0.1; do
	"$XPROF" heap -p "$bpid" -o "$TMP/k.pb.gz" >/dev/null 2>&1 &
	xp=$!
	sleep "$delay"
	kill -KILL "$xp" 2>/dev/null
	wait "$xp" 2>/dev/null
	no_thread_stopped "$bpid" || stuck=$((stuck + 1))
done
is "$stuck" 0 "SIGKILL at 6 moments of a heap walk leaves no thread stopped"
ls -A "$TMP" | grep -q '^\.k\.pb\.gz'
ok $((! $?)) "and no temporary file"

"$XPROF" heap >/dev/null 2>"$TMP/err"
[ $? = 64 ] && grep -q -e '-p PID is required' "$TMP/err"
ok $? "heap without -p: usage error 64"
"$XPROF" heap -p "$pid" -o "$TMP/nodir/x.pb.gz" >/dev/null 2>"$TMP/err"
[ $? = 2 ] && grep -q 'cannot write' "$TMP/err" && [ "$(wc -l <"$TMP/err")" = 1 ]
ok $? "unwritable -o: one line, exit 2"
plan "$_tap_n"
done_testing
