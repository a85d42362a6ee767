#!/bin/bash
# Processes that look unusual from /proc:
#  - a leader that called pthread_exit (fixtures/leaderexit.c): a zombie
#    with no maps, memory or root of its own while its threads run on;
#    threads, cpu (perf and --wall) and heap read it through a live thread.
. "$(dirname "$0")/lib.sh"
need_ptrace
command -v go >/dev/null || { echo "Bail out! go missing (make deps)"; exit 1; }

state_of() { sed 's/.*) \(.\).*/\1/' "/proc/$1/stat" 2>/dev/null; }

# --- a zombie leader with live threads ----------------------------------------
start_fixture ready "$FIX/leaderexit"
read -r pid spin_tid sleep_tid nblocks bsize <<<"$ready"
for i in $(seq 1 200); do [ "$(state_of "$pid")" = Z ] && break; sleep 0.01; done
is "$(state_of "$pid")" Z "leaderexit: the leader is a zombie, its threads run on"

"$XPROF" threads -p "$pid" >"$TMP/le.txt" 2>"$TMP/err"
rc=$?
is "$rc" 0 "zombie leader, threads: exit 0 ($(tail -n 1 "$TMP/err"))"
xprof_functions "$TMP/le.txt" "$spin_tid" | grep -qx spin_forever &&
	xprof_functions "$TMP/le.txt" "$sleep_tid" | grep -qx sleep_forever
ok $? "zombie leader, threads: le-spin in spin_forever, le-sleep in sleep_forever" || diag "$(head -30 "$TMP/le.txt")"
grep -q "^thread $pid " "$TMP/le.txt"
ok $((! $?)) "zombie leader, threads: the exited leader is not dumped"

"$XPROF" threads -p "$pid" -o "$TMP/le-threads.pb.gz" 2>"$TMP/err"
rc=$?
is "$rc" 0 "zombie leader, threads -o: exit 0 ($(head -n 1 "$TMP/err"))"
pprof_check "$TMP/le-threads.pb.gz"
ok $? "zombie leader, threads -o: a valid profile"

"$XPROF" cpu -p "$pid" -d 1s -F 199 -o "$TMP/le-cpu.pb.gz" 2>"$TMP/err"
rc=$?
is "$rc" 0 "zombie leader, cpu: exit 0 ($(head -n 1 "$TMP/err"))"
pprof_check "$TMP/le-cpu.pb.gz" && go tool pprof -top "$TMP/le-cpu.pb.gz" 2>/dev/null | grep -q ' spin_forever$'
ok $? "zombie leader, cpu: spin_forever sampled"

"$XPROF" cpu --wall -p "$pid" -d 1s -F 49 -o "$TMP/le-wall.pb.gz" 2>"$TMP/err"
rc=$?
is "$rc" 0 "zombie leader, cpu --wall: exit 0 ($(head -n 1 "$TMP/err"))"
pprof_check "$TMP/le-wall.pb.gz" && go tool pprof -top "$TMP/le-wall.pb.gz" 2>/dev/null >"$TMP/top.txt" &&
	grep -q ' spin_forever$' "$TMP/top.txt" && grep -q ' sleep_forever$' "$TMP/top.txt"
ok $? "zombie leader, cpu --wall: spin_forever and sleep_forever sampled" || diag "$(head -15 "$TMP/top.txt" 2>/dev/null)"

"$XPROF" heap -p "$pid" -o "$TMP/le-heap.pb.gz" 2>"$TMP/err"
rc=$?
is "$rc" 0 "zombie leader, heap: exit 0 ($(head -n 1 "$TMP/err"))"
# the blocks the leader malloc'ed before it exited, held by the global `kept`
kept=$(go tool pprof -sample_index=inuse_objects -traces "$TMP/le-heap.pb.gz" 2>/dev/null |
	awk -v b="[malloc $bsize]" '$2 " " $3 == b { n = $1; next } n != "" && $0 ~ /\[global\] kept$/ { print n } { n = "" }')
is "${kept:-none}" "$nblocks" "zombie leader, heap: the $nblocks blocks of $bsize bytes, held by kept"
no_thread_stopped "$pid"
ok $? "zombie leader: its threads run afterwards"
kill -KILL "$pid"
wait "$pid" 2>/dev/null

plan "$_tap_n"
done_testing
