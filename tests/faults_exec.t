#!/bin/bash
# The stop against a target that fights it (fixtures/hostile.c): a
# multi-threaded process that execs itself every 20 ms (the exec kills the
# threads xprof holds and waits for xprof to reap them), Ctrl-Z to xprof in
# the middle of the stop of 5,000 threads, threads exiting all the time, a
# second tracer (strace) before and during a --wall run, a thread that never
# stops.  xprof always ends, never leaves a thread stopped or the target
# wedged in D state, and says what happened with the right exit code.
. "$(dirname "$0")/lib.sh"
need_ptrace
command -v go >/dev/null || { echo "Bail out! go missing (make deps)"; exit 1; }
H=$FIX/hostile

# outcome_ok FILE: exit 0 or 1 with a valid FILE, or 2 with an "xprof: "
# message and no FILE; rc and the stderr in $TMP/err
outcome_ok() {
	case $rc in
	0 | 1) pprof_check "$1" ;;
	2) grep -q '^xprof: ' "$TMP/err" && [ ! -e "$1" ] ;;
	*) return 1 ;;
	esac
}

# not_wedged PID: within 2 s, a moment where no thread of PID is in tracing
# stop and its main thread is not in D (an exec waiting for a reap)
not_wedged() {
	local i line st
	for i in $(seq 1 200); do
		read -r line <"/proc/$1/stat" 2>/dev/null || return 1
		st=${line##*) }
		st=${st%% *}
		[ "$st" != D ] && ! thread_states "$1" | grep -q t && return 0
		sleep 0.01
	done
	return 1
}

# --- a multi-threaded process that execs every 20 ms ---------------------------
# The main thread execs the moment a stop lets it go, while xprof may still
# hold the others.  Before: cpu --wall -d 1s -F 99 hung for good in 2 to 4
# runs of 5 (xprof in ptrace_attach, the main thread in D in
# begin_new_exec, the other threads zombies that xprof never reaped); only
# SIGKILL ended it.
start_fixture ready "$H" mtexec 20 4
pid=${ready%% *}
for cmd in "cpu --wall -d 1s -F 99" "threads"; do
	runs=4
	[ "$cmd" = threads ] && runs=3
	for i in $(seq 1 "$runs"); do
		out="$TMP/exec.pb.gz"
		rm -f "$out"
		timeout -s KILL 20 "$XPROF" $cmd -p "$pid" -o "$out" >/dev/null 2>"$TMP/err"
		rc=$?
		[ "$rc" != 137 ]
		ok $? "exec every 20 ms, $cmd ($i): xprof ends (exit $rc)" || break
		outcome_ok "$out"
		ok $? "exec every 20 ms, $cmd ($i): exit $rc, $(grep -v '^xprof: wrote' "$TMP/err" | tail -n 1)"
		not_wedged "$pid"
		ok $? "exec every 20 ms, $cmd ($i): the target runs on (no thread in t, main thread not in D)"
	done
done
kill -KILL "$pid"
wait "$pid" 2>/dev/null

# --- Ctrl-Z to xprof during the stop of 5,000 threads ----------------------------
# Before: xprof stopped at once, holding up to every thread in t for as long
# as it sat stopped.  Now the signal waits for the release.
start_fixture ready "$H" threads 5000
pid=${ready%% *}
# xprof in a process group of its own whose parent (this shell) is in
# another: SIGTSTP is discarded in an orphaned process group
set -m
"$XPROF" threads -p "$pid" -o "$TMP/tstp.pb.gz" 2>"$TMP/err" &
xp=$!
set +m
_fixture_pids="$_fixture_pids $xp"
st=""
SECONDS=0
while [ "$SECONDS" -lt 30 ] && kill -0 "$xp" 2>/dev/null; do
	read -r line <"/proc/$pid/stat"
	st=${line##*) }
	st=${st%% *}
	[ "$st" = t ] && break
done
if [ "$st" != t ]; then
	ok 0 "# SKIP the stop was not seen (xprof done before its main thread was in t)"
	ok 0 "# SKIP"
else
	kill -TSTP "$xp"
	xst=""
	SECONDS=0
	while [ "$SECONDS" -lt 20 ]; do
		read -r line <"/proc/$xp/stat" || break
		xst=${line##*) }
		xst=${xst%% *}
		[ "$xst" = T ] && break
		sleep 0.01
	done
	if [ "$xst" != T ]; then
		# SIGTSTP is discarded in an orphaned process group
		ok 0 "# SKIP SIGTSTP did not suspend xprof here (state $xst)"
	else
		sleep 0.2
		n=$(thread_states "$pid" | grep -c t)
		is "$n" 0 "SIGTSTP during the stop of 5,001 threads: while xprof sits suspended, no target thread is in t"
	fi
	kill -CONT "$xp"
	wait "$xp"
	rc=$?
	[ "$rc" = 0 ] && pprof_check "$TMP/tstp.pb.gz"
	ok $? "after SIGCONT, xprof finishes the dump (exit $rc)" || diag "$(cat "$TMP/err")"
fi
kill -KILL "$pid"
wait "$pid" 2>/dev/null

# --- threads exiting all the time --------------------------------------------------
# PTRACE_SEIZE on a thread whose exit has begun is EPERM; that was reported as
# "the kernel refused ptrace (a security module ...?)", exit 2 (about one
# seize in a thousand on such a target).
start_fixture ready "$H" churn 4 0
pid=${ready%% *}
bad=0
for i in $(seq 1 6); do
	rm -f "$TMP/churn.pb.gz"
	timeout -s KILL 20 "$XPROF" threads -p "$pid" -o "$TMP/churn.pb.gz" >/dev/null 2>"$TMP/err"
	rc=$?
	if grep -q 'not permitted' "$TMP/err" || ! outcome_ok "$TMP/churn.pb.gz"; then
		bad=$((bad + 1))
		diag "threads run $i: exit $rc: $(cat "$TMP/err")"
	fi
done
is "$bad" 0 "thread churn: 6 thread dumps, none refused as not permitted, each exit 0/1 with a file"
bad=0
for i in 1 2; do
	rm -f "$TMP/churn.pb.gz"
	timeout -s KILL 20 "$XPROF" cpu --wall=ptrace -d 1s -F 499 -p "$pid" -o "$TMP/churn.pb.gz" >/dev/null 2>"$TMP/err"
	rc=$?
	if grep -q 'not permitted' "$TMP/err" || [ "$rc" != 0 ] || ! pprof_check "$TMP/churn.pb.gz"; then
		bad=$((bad + 1))
		diag "cpu --wall run $i: exit $rc: $(cat "$TMP/err")"
	fi
done
is "$bad" 0 "thread churn: 2 runs of cpu --wall=ptrace -F 499, each exit 0 with a file"
no_thread_stopped "$pid"
ok $? "thread churn: the target runs afterwards"
kill -KILL "$pid"
wait "$pid" 2>/dev/null

# --- a second tracer -------------------------------------------------------------
command -v strace >/dev/null || { echo "Bail out! strace missing (make deps)"; exit 1; }
start_fixture ready "$FIX/parked-O2"
pid=${ready%% *}
# one thread (not the main one) traced by strace: the refusal names it
tid=$(ls "/proc/$pid/task" | grep -v "^$pid\$" | head -n 1)
strace -p "$tid" -o /dev/null 2>/dev/null &
tracer=$!
_fixture_pids="$_fixture_pids $tracer"
for i in $(seq 1 300); do grep -q "^TracerPid:[[:space:]]*$tracer\$" "/proc/$pid/task/$tid/status" && break; sleep 0.01; done
"$XPROF" threads -p "$pid" -o "$TMP/traced.pb.gz" >/dev/null 2>"$TMP/err"
rc=$?
[ "$rc" = 2 ] && grep -q 'another process traces it' "$TMP/err" && ! grep -q 'security module' "$TMP/err" &&
	[ ! -e "$TMP/traced.pb.gz" ]
ok $? "a thread traced by strace: exit 2 naming the other tracer, not a security module ($(cat "$TMP/err"))"
no_thread_stopped "$pid"
ok $? "a thread traced by strace: no other thread left stopped"
kill "$tracer"
wait "$tracer" 2>/dev/null

# strace arrives 1 s into a 4 s --wall run (the ptrace sampler: perf's is
# not in a tracer's way): the run ends with what it has.
# strace gives up when it comes during a stop (the threads are xprof's):
# it is started again until it traces the main thread.
"$XPROF" cpu --wall=ptrace -d 4s -F 49 -p "$pid" -o "$TMP/mid.pb.gz" >/dev/null 2>"$TMP/err" &
xp=$!
_fixture_pids="$_fixture_pids $xp"
# (once its run has begun and it had a second of it: strace after a fixed
# 1 s could come before xprof on a loaded machine)
in_run "$xp"
sleep 1
for try in $(seq 1 10); do
	strace -f -p "$pid" -o /dev/null 2>/dev/null &
	tracer=$!
	_fixture_pids="$_fixture_pids $tracer"
	for i in $(seq 1 50); do
		grep -q "^TracerPid:[[:space:]]*$tracer\$" "/proc/$pid/status" && break 2
		kill -0 "$tracer" 2>/dev/null || break
		sleep 0.01
	done
	kill "$tracer" 2>/dev/null
	wait "$tracer" 2>/dev/null
done
wait "$xp"
rc=$?
[ "$rc" = 1 ] && grep -q 'another process (a debugger?) began tracing' "$TMP/err" && pprof_check "$TMP/mid.pb.gz"
ok $? "a tracer arriving during cpu --wall: exit 1 with the samples before it ($(tail -n 2 "$TMP/err" | head -n 1))"
kill "$tracer" 2>/dev/null
wait "$tracer" 2>/dev/null
kill -KILL "$pid"
wait "$pid" 2>/dev/null

# --- a thread that never stops: --wall says how many samples are missing ------------
start_fixture ready "$FIX/vforker"
set -- $ready
"$XPROF" cpu --wall=ptrace -d 1s -F 49 -p "$1" -o "$TMP/vf.pb.gz" >/dev/null 2>"$TMP/err"
rc=$?
[ "$rc" = 1 ] && grep -q 'thread samples missing' "$TMP/err" && pprof_check "$TMP/vf.pb.gz"
ok $? "cpu --wall with a thread stuck in vfork: exit 1, the missing samples counted ($(grep missing "$TMP/err"))"
kill -KILL "$1" "$3" 2>/dev/null
wait "$1" 2>/dev/null

plan "$_tap_n"
done_testing
