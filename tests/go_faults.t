#!/bin/bash
# Faults around a Go program's dump: xprof killed while it reads 20,000
# goroutines, a Go program already stopped (SIGSTOP), one that dies while
# it is read.  The program is never left stopped and keeps running.
. "$(dirname "$0")/lib.sh"
need_ptrace
command -v go >/dev/null || { echo "Bail out! go missing (make deps)"; exit 1; }

cputicks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
runs() { # runs PID: no thread stopped, and its busy goroutine gets CPU
	local t0
	no_thread_stopped "$1" || return 1
	t0=$(cputicks "$1")
	sleep 0.2
	[ "$(cputicks "$1")" -gt "$t0" ]
}

mkdir -p "$TMP/big"
GOPARKED_EXTRA=20000 start_fixture ready "$FIX/goparked" "$TMP/big"
pid=${ready%% *}
"$XPROF" threads -p "$pid" >"$TMP/full.txt" 2>"$TMP/full.err"
ok $? "20,000 goroutines dumped: $(tail -1 "$TMP/full.err")"
n=$(grep -c '^goroutine ' "$TMP/full.txt")
ok $((n < 20000)) "all of them ($n goroutine headers)"

# SIGKILL at moments spread over the dump: the kernel lets the threads go
for delay in 0.005 0.02 0.05 0.1 0.2; do
	"$XPROF" threads -p "$pid" >/dev/null 2>&1 &
	x=$!
	sleep "$delay"
	kill -KILL "$x" 2>/dev/null
	wait "$x" 2>/dev/null
	runs "$pid"
	ok $? "xprof SIGKILLed ${delay}s into the dump: the Go program runs on"
done
for sig in INT TERM; do
	"$XPROF" threads -p "$pid" >/dev/null 2>&1 &
	x=$!
	sleep 0.05
	kill -"$sig" "$x" 2>/dev/null
	wait "$x" 2>/dev/null
	runs "$pid"
	ok $? "xprof got SIG$sig during the dump: the Go program runs on"
done

# already stopped: dumped, and left as it was
kill -STOP "$pid"
"$XPROF" threads -p "$pid" >"$TMP/stopped.txt" 2>"$TMP/stopped.err"
rc=$?
[ "$rc" -le 1 ] && grep -q '^goroutine 1 \[' "$TMP/stopped.txt"
ok $? "a SIGSTOPped Go program is dumped (exit $rc)"
st=$(awk '{ print $3 }' "/proc/$pid/stat")
is "$st" T "and left stopped"
kill -CONT "$pid"
runs "$pid"
ok $? "and runs after SIGCONT"

# the program dies while xprof reads it: a clear end, no hang
mkdir -p "$TMP/dies"
GOPARKED_EXTRA=20000 start_fixture ready "$FIX/goparked" "$TMP/dies"
dpid=${ready%% *}
( sleep 0.03; kill -KILL "$dpid" ) &
killer=$!
# (the block's stderr takes the shell's "Killed" notice of the fixture)
{
	timeout 20 "$XPROF" threads -p "$dpid" >"$TMP/dies.txt" 2>"$TMP/dies.err"
	rc=$?
	wait "$killer"
	wait "$dpid"
} 2>/dev/null
[ "$rc" -le 2 ] && [ "$(wc -l <"$TMP/dies.err")" -ge 1 ]
ok $? "the Go program killed during the dump: exit $rc, $(head -1 "$TMP/dies.err")"

# heap and --block on a stopped-and-continued program
kill -STOP "$pid"
( sleep 0.05; kill -CONT "$pid" ) &
cont=$!
"$XPROF" heap -p "$pid" -o "$TMP/h.pb.gz" 2>"$TMP/h.err"
ok $? "heap of a Go program SIGCONTed during the run" || diag "$(cat "$TMP/h.err")"
wait "$cont"
runs "$pid"
ok $? "and it runs"

plan "$_tap_n"
done_testing
