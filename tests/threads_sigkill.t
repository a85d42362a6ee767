#!/bin/bash
# The target is never left stopped: xprof killed with SIGKILL at several
# moments of a dump of a 1000-thread fixture leaves no thread in tracing
# stop, and the fixture's busy thread keeps running.  Also: a process that
# was SIGSTOPped when xprof came is left stopped (as found), and SIGINT /
# SIGTERM during a dump leave the target running.
. "$(dirname "$0")/lib.sh"
need_ptrace

start_fixture ready "$FIX/parked-O2" 993
pid=${ready%% *}
spinner=$(grep -l '^spinner$' /proc/"$pid"/task/*/comm | head -n 1 | cut -d/ -f5)
nthreads=$(ls /proc/"$pid"/task | wc -l)
diag "fixture $pid has $nthreads threads, spinner tid $spinner"

# a busy thread runs: its user time grows over 300 ms
spinner_runs() {
	local a b
	a=$(thread_utime "$pid" "$spinner")
	sleep 0.3
	b=$(thread_utime "$pid" "$spinner")
	[ "$b" -gt "$a" ]
}

stuck=0 running=0 rounds=0
for delay in 0 0.002 0.005 0.01 0.02 0.04 0.07 0.1 0.15 0.25; do
	"$XPROF" threads -p "$pid" >/dev/null 2>&1 &
	xp=$!
	sleep "$delay"
	kill -KILL "$xp" 2>/dev/null
	wait "$xp" 2>/dev/null
	rounds=$((rounds + 1))
	if ! no_thread_stopped "$pid"; then
		stuck=$((stuck + 1))
		diag "after SIGKILL at ${delay}s: $(thread_states "$pid" | sort | uniq -c | tr '\n' ' ')"
	fi
	spinner_runs && running=$((running + 1))
done
is "$stuck" 0 "after SIGKILL at $rounds moments, no thread is left in tracing stop"
is "$running" "$rounds" "the busy thread runs after every SIGKILL"

for sig in INT TERM; do
	"$XPROF" threads -p "$pid" >/dev/null 2>"$TMP/sig.err" &
	xp=$!
	sleep 0.03
	kill -"$sig" "$xp" 2>/dev/null
	wait "$xp"
	rc=$?
	no_thread_stopped "$pid"
	ok $? "SIG$sig during a dump (exit $rc) leaves no thread stopped"
done

# a dump still works after all that
"$XPROF" threads -p "$pid" >"$TMP/after.txt" 2>"$TMP/after.err"
ok $? "a dump after the kills succeeds"
n=$(grep -c '^thread ' "$TMP/after.txt")
is "$n" "$nthreads" "and shows all $nthreads threads"

# SIGSTOPped target: dumped, and left stopped as found
start_fixture ready "$FIX/parked-O2"
spid=${ready%% *}
kill -STOP "$spid"
for i in $(seq 1 100); do thread_states "$spid" | grep -qv T || break; sleep 0.01; done
"$XPROF" threads -p "$spid" >"$TMP/stopped.txt" 2>"$TMP/stopped.err"
ok $? "a SIGSTOPped process can be dumped" || diag "$(cat "$TMP/stopped.err")"
grep -q 'hold_lock' "$TMP/stopped.txt"
ok $? "with its stacks"
grep -q 'left stopped' "$TMP/stopped.err"
ok $? "the summary says it was stopped and is left so"
sleep 0.1
others=$(thread_states "$spid" | grep -vc T)
is "$others" 0 "every thread is still in group stop (T), none in tracing stop"
kill -CONT "$spid"
sleep 0.1
no_thread_stopped "$spid"
ok $? "after SIGCONT it runs again"
plan "$_tap_n"
done_testing
