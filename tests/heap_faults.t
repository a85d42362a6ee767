#!/bin/bash
# xprof heap: C++ objects counted by class through their vtables; a program
# that scribbled over its heap (a chunk size, a tcache link, a size of 0, an
# arena's top or next, an mmapped chunk's header) gets a partial profile and
# exit 1 with the damage named, never a hang, a crash or a silent exit 0;
# SIGKILL mid-walk leaves the target running; bad usage gets one line.
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

# damage a walk could once take for the end of a heap: each is said, exit 1
while read -r mode want; do
	start_fixture ready "$FIX/heapfix" "$mode"
	cpid=${ready%% *}
	grep '^RssAnon' /proc/"$cpid"/status >"$TMP/rss0"
	timeout 30 "$XPROF" heap -p "$cpid" -o "$TMP/$mode.pb.gz" >/dev/null 2>"$TMP/err"
	rc=$?
	[ "$rc" = 1 ] && grep -q "the walk is partial: .*$want" "$TMP/err"
	ok $? "$mode: exit 1 ($rc), the damage named: $(grep -o 'the walk is partial: .*' "$TMP/err")"
	pprof_check "$TMP/$mode.pb.gz" && no_thread_stopped "$cpid"
	ok $? "$mode: what was walked is written and valid; the target runs"
	if [ "$mode" = arena-next-untouched ]; then
		# a wild pointer into memory the target never touched faults nothing in
		a0=$(sed -n 's/^RssAnon: *//p' "$TMP/rss0")
		is "$(grep '^RssAnon' /proc/"$cpid"/status | sed 's/^RssAnon: *//')" "$a0" "$mode: RssAnon unchanged"
	fi
done <<'MODES'
zero-size has size 0: walk stopped there
arena-top-zero has no top chunk
top-middle the arena's top is damaged
arena-next-wild next pointer 0x10000 is no arena
arena-next-untouched next pointer 0x[0-9a-f]*030 is no arena
mmap-header-zero glibc counts 3 mmapped chunks, 3.0 MiB; found 2, 2.0 MiB
MODES

# under an address-space limit (ulimit -v) the walk either fits and is
# whole, or is refused before the stop, or says what it could not copy:
# never a silent exit 0 with part of the heap
start_fixture ready "$FIX/heapbig" 50
read -r upid ublocks _ <<<"$ready"
bad=""
for mb in 100 105 110 115 120 125 130 135 140 150 170; do
	(ulimit -v $((mb * 1024)) && exec "$XPROF" heap -p "$upid" -o "$TMP/u.pb.gz") >/dev/null 2>"$TMP/err"
	rc=$?
	got=$(sed -n 's/.* \([0-9]*\) blocks in use.*/\1/p' "$TMP/err")
	case $rc in
	0) [ "$got" = "$((ublocks + 2))" ] || bad="$bad ${mb}MB:exit-0-with-${got:-no}-blocks" ;;
	1) grep -q 'the walk is partial: ' "$TMP/err" || bad="$bad ${mb}MB:exit-1-unsaid" ;;
	2) [ "$(wc -l <"$TMP/err")" = 1 ] || bad="$bad ${mb}MB:exit-2-$(wc -l <"$TMP/err")-lines" ;;
	*) bad="$bad ${mb}MB:exit-$rc" ;;
	esac
	no_thread_stopped "$upid" || bad="$bad ${mb}MB:left-stopped"
done
is "${bad:-none}" none "ulimit -v 100..170 MB on a 50 MB heap: whole, refused in one line, or partial and said"
grep -q "ulimit -v" <(ulimit -v $((100 * 1024)) && exec "$XPROF" heap -p "$upid" -o "$TMP/u.pb.gz" 2>&1)
ok $? "a refusal under ulimit -v names it"

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
