#!/bin/bash
# The target changes under xprof (fixtures/hostile.c): it execs (once, and
# in a loop), forks all the time, creates and reaps threads all the time, is
# SIGSTOPped and SIGCONTed every few ms, exits.  During each command
# (threads, threads -o, heap, cpu, cpu --wall): no hang or crash, the
# documented exit code with a clear message, a valid file when the exit is
# 0 or 1 and none when it is 2, and the target running afterwards.
# cpu across an exec symbolizes each program with its own modules.
. "$(dirname "$0")/lib.sh"
need_ptrace
command -v go >/dev/null || { echo "Bail out! go missing (make deps)"; exit 1; }
H=$FIX/hostile

# run_cmd NAME PID ARGS...: runs xprof ARGS -p PID -o FILE (text dumps: no
# -o), sets rc and out; checks the exit code against the file.
run_cmd() {
	local name=$1 pid=$2; shift 2
	out="$TMP/$name.pb.gz"
	rm -f "$out"
	if [ "$1" = threads-text ]; then
		shift
		out=""
		timeout 60 "$XPROF" threads "$@" -p "$pid" >"$TMP/dump.txt" 2>"$TMP/err"
	else
		timeout 60 "$XPROF" "$@" -p "$pid" -o "$out" >/dev/null 2>"$TMP/err"
	fi
	rc=$?
}

# outcome_ok: exit 0 or 1 with a valid file (or a dump), or 2 with an
# "xprof: " message and no file.
outcome_ok() {
	case $rc in
	0 | 1)
		if [ -n "$out" ]; then pprof_check "$out"; else grep -q '^thread ' "$TMP/dump.txt"; fi ;;
	2)
		grep -q '^xprof: ' "$TMP/err" && { [ -z "$out" ] || [ ! -e "$out" ]; } &&
			[ -z "$(ls -A "$TMP" | grep '^\..*\.pb\.gz\.')" ] ;;
	*) return 1 ;;
	esac
}

commands=("threads-text" "threads" "heap" "cpu -d 2s -F 199" "cpu --wall -d 1s -F 49")
names=(dump threads heap cpu wall)

# (lib.sh's in_run and sampling: hostile execs or exits once xprof samples
# it.  A fixed time for the target to exec or exit in ran out before xprof
# had started on a loaded machine (load 8-10: xprof then sampled the new
# process under the reused pid, or its start was over when the target
# exited and it said "no samples").)

# --- exec: cpu across one exec names both programs' functions ---------------
# (--wall from perf ends its run at an exec, said, exit 1; the ptrace
# sampler follows it).  hostile execs at the SIGUSR1 sent once xprof
# samples it, xprof's SIGINT ends the run once cpuburn has run 0.2 s.
for mode in "" --wall=ptrace; do
	start_fixture ready "$H" exec usr1 "$FIX/cpuburn" 1
	pid=${ready%% *}
	"$XPROF" cpu $mode -p "$pid" -d 60s -F 199 -o "$TMP/exec.pb.gz" 2>"$TMP/err" &
	xp=$!
	sampling "$xp" "$pid" || diag "xprof did not sample hostile: $(cat "$TMP/err")"
	kill -USR1 "$pid"
	for i in $(seq 1 1000); do [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = cpuburn ] && break; sleep 0.01; done
	sampling "$xp" "$pid" || diag "xprof did not sample cpuburn: $(cat "$TMP/err")"
	kill -INT "$xp"
	wait "$xp"
	rc=$?
	grep -q "pid $pid exec'd 1 time during the run (from hostile to cpuburn)" "$TMP/err"
	ok $? "cpu ${mode:-(perf)} across an exec: said so (exit $rc)" || diag "$(cat "$TMP/err")"
	is "$rc" 0 "cpu ${mode:-(perf)} across an exec exits 0"
	go tool pprof -top "$TMP/exec.pb.gz" 2>/dev/null >"$TMP/top.txt"
	grep -q ' hostile_spin$' "$TMP/top.txt" && grep -q ' burn_c$' "$TMP/top.txt"
	ok $? "cpu ${mode:-(perf)}: functions of the program before (hostile_spin) and after (burn_c) the exec" ||
		diag "$(head -20 "$TMP/top.txt")"
	share=$(sed -n 's/.*, \([0-9.]*\)% with a complete stack.*/\1/p' "$TMP/err")
	awk -v s="$share" 'BEGIN { exit !(s >= 90) }'
	ok $? "cpu ${mode:-(perf)}: stacks complete on both sides of the exec ($share%)"
	kill -KILL "$pid"
	wait "$pid" 2>/dev/null
done

# --- a target that execs itself every 10 ms -----------------------------------
start_fixture ready "$H" reexec 10
pid=${ready%% *}
for i in 0 1 2 3 4; do
	cmd=${commands[$i]}
	# cpu's run ends at the 64th program: 30 s are never reached (10 ms per
	# program); the 2 s it had were 63 programs or fewer at load 25
	[ "$i" = 3 ] && cmd="cpu -d 30s -F 199"
	run_cmd "${names[$i]}" "$pid" $cmd
	outcome_ok
	ok $? "exec loop, $cmd: exit $rc, $(grep -v '^xprof: wrote' "$TMP/err" | tail -n 1)"
	no_thread_stopped "$pid"
	ok $? "exec loop, $cmd: the target runs afterwards"
	if [ "$i" = 3 ]; then
		[ "$rc" = 1 ] && grep -q "exec'd more than 63 times; later programs are not sampled" "$TMP/err"
		ok $? "cpu on an exec loop stops at the cap on programs, says so, exit 1" || diag "$(cat "$TMP/err")"
	fi
done
kill -KILL "$pid"
wait "$pid" 2>/dev/null

# --- fork storm, thread churn -------------------------------------------------
for fx in forker churn; do
	start_fixture ready "$H" "$fx"
	pid=${ready%% *}
	for i in 0 1 2 3 4; do
		run_cmd "${names[$i]}" "$pid" ${commands[$i]}
		outcome_ok
		ok $? "$fx, ${commands[$i]}: exit $rc, $(grep -v '^xprof: wrote' "$TMP/err" | tail -n 1)"
		no_thread_stopped "$pid"
		ok $? "$fx, ${commands[$i]}: the target runs afterwards"
	done
	# only the target's own children: none of them is ever seized
	kill -KILL "$pid"
	wait "$pid" 2>/dev/null
done

# --- SIGSTOP / SIGCONT every few ms during each command -----------------------
start_fixture ready "$FIX/parked-O2" 20
pid=${ready%% *}
(while :; do kill -STOP "$pid"; sleep 0.005; kill -CONT "$pid"; sleep 0.003; done) 2>/dev/null &
toggler=$!
for i in 0 1 2 3 4; do
	run_cmd "${names[$i]}" "$pid" ${commands[$i]}
	outcome_ok
	ok $? "stop/cont storm, ${commands[$i]}: exit $rc, $(grep -v '^xprof: wrote' "$TMP/err" | tail -n 1)"
done
kill "$toggler"
wait "$toggler" 2>/dev/null
kill -CONT "$pid"
no_thread_stopped "$pid"
ok $? "after the storm and a last SIGCONT, no thread is stopped (t or T)"

# --- the target exits during the command ---------------------------------------
bad=0
for i in 0 1 2; do
	for delay in 0 0.002 0.01; do
		"$H" exit 3 >/dev/null 2>&1 &
		epid=$!
		_fixture_pids="$_fixture_pids $epid"
		sleep "$delay"
		run_cmd "${names[$i]}" "$epid" ${commands[$i]}
		outcome_ok || { bad=$((bad + 1)); diag "${commands[$i]} after ${delay}s: exit $rc: $(cat "$TMP/err")"; }
		wait "$epid" 2>/dev/null
	done
done
is "$bad" 0 "a target exiting as threads, threads -o and heap start: exit 0/1 with a file, or 2 with a message and none"
# --- the target exits before its first sample ----------------------------------
# (stopped, so that it cannot run while sampled; it said "did not run on a
# CPU while sampled (try --wall ...)" before)
start_fixture ready "$FIX/cpuburn" 1
pid=${ready%% *}
kill -STOP "$pid"
rm -f "$TMP/gone.pb.gz"
"$XPROF" cpu -p "$pid" -d 60s -F 199 -o "$TMP/gone.pb.gz" 2>"$TMP/err" &
xp=$!
in_run "$xp" || diag "xprof's run did not begin: $(cat "$TMP/err")"
kill -KILL "$pid"
wait "$pid" 2>/dev/null
wait "$xp"
rc=$?
[ "$rc" = 2 ] && [ ! -e "$TMP/gone.pb.gz" ] &&
	grep -qx "xprof: no samples: pid $pid exited before its first sample; nothing written" "$TMP/err"
ok $? "cpu on a target that exits before its first sample: exit $rc, no file, said so" || diag "$(cat "$TMP/err")"

# --- the pid is reused: the target exits and a new process gets its pid ---------
# (tests/unit/pidreuse starts the new one the moment the first is reaped)
if [ "$(id -u)" = 0 ] && [ -w /proc/sys/kernel/ns_last_pid ]; then
	for mode in "" --wall; do
		# hostile exits at the SIGUSR1 sent once xprof samples it
		tests/unit/pidreuse "$H" exit usr1 -- "$FIX/cpuburn" 1 >"$TMP/reuse.out" 2>&1 &
		helper=$!
		_fixture_pids="$_fixture_pids $helper"
		for i in $(seq 1 1000); do grep -q '^ready' "$TMP/reuse.out" && break; sleep 0.01; done
		rpid=$(awk '/^ready/ { print $2; exit }' "$TMP/reuse.out")
		"$XPROF" cpu $mode -p "$rpid" -d 60s -F 199 -o "$TMP/reuse.pb.gz" 2>"$TMP/err" &
		xp=$!
		sampling "$xp" "$rpid" || diag "xprof did not sample hostile: $(cat "$TMP/err")"
		kill -USR1 "$rpid"
		wait "$xp"
		rc=$?
		if ! grep -q "^reused $rpid" "$TMP/reuse.out"; then
			ok 0 "# SKIP another process took pid $rpid first"
			ok 0 "# SKIP"
		else
			[ "$rc" = 1 ] && grep -q "pid $rpid exited during the run" "$TMP/err"
			ok $? "cpu ${mode:-(perf)}: the target exits and its pid is reused: exit 1, said so" ||
				diag "exit $rc: $(cat "$TMP/err")"
			go tool pprof -top "$TMP/reuse.pb.gz" 2>/dev/null | grep -q 'burn_'
			rc2=$?
			no_thread_stopped "$rpid"
			[ "$rc2" != 0 ] && [ $? = 0 ]
			ok $? "cpu ${mode:-(perf)}: the new process under that pid is neither sampled nor stopped"
		fi
		# the helper's children, whichever pid they got (the reused
		# one, or another when the pid was missed): killing "$rpid"
		# alone left the helper waiting forever when ready came late
		pkill -KILL -P "$helper" 2>/dev/null
		wait "$helper" 2>/dev/null
	done
else
	ok 0 "# SKIP pid reuse needs root (ns_last_pid)"
	ok 0 "# SKIP"
	ok 0 "# SKIP"
	ok 0 "# SKIP"
fi
plan "$_tap_n"
done_testing
