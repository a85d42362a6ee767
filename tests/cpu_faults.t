#!/bin/bash
# xprof cpu under faults and bad input: SIGKILL during a perf-mode run and
# during a --wall run leaves the target running; every bad argument gets
# one line on stderr, a non-zero exit and no output file.
. "$(dirname "$0")/lib.sh"
need_ptrace

start_fixture ready "$FIX/parked-O2" 50
pid=${ready%% *}
spinner=$(grep -l '^spinner$' /proc/"$pid"/task/*/comm | head -n 1 | cut -d/ -f5)
spinner_runs() {
	local a b
	a=$(thread_utime "$pid" "$spinner")
	sleep 0.3
	b=$(thread_utime "$pid" "$spinner")
	[ "$b" -gt "$a" ]
}

for mode in "" "--wall"; do
	stuck=0 runs=0 rounds=0
	for delay in 0.05 0.2 0.5 0.9; do
		"$XPROF" cpu -p "$pid" -d 5s -F 999 $mode -o "$TMP/k.pb.gz" >/dev/null 2>&1 &
		xp=$!
		sleep "$delay"
		kill -KILL "$xp"
		wait "$xp" 2>/dev/null
		rounds=$((rounds + 1))
		no_thread_stopped "$pid" || { stuck=$((stuck + 1)); diag "$(thread_states "$pid" | sort | uniq -c | tr '\n' ' ')"; }
		spinner_runs && runs=$((runs + 1))
	done
	is "$stuck" 0 "SIGKILL during a ${mode:-perf-mode} run at $rounds moments leaves no thread stopped"
	is "$runs" "$rounds" "and the busy thread keeps running (${mode:-perf mode})"
	[ ! -e "$TMP/k.pb.gz" ] && [ -z "$(ls -A "$TMP" | grep '^\.k\.pb\.gz')" ]
	ok $? "a killed run leaves no output file nor temporary (${mode:-perf mode})"
done

expect_fail() { # expect_fail CODE PATTERN DESCRIPTION -- ARGS...
	local code=$1 pattern=$2 desc=$3; shift 4
	rm -f "$TMP/bad.pb.gz"
	"$XPROF" "$@" >"$TMP/out" 2>"$TMP/err"
	local rc=$? lines
	lines=$(wc -l <"$TMP/err")
	if [ "$rc" = "$code" ] && [ "$lines" = 1 ] && grep -q -e "$pattern" "$TMP/err" && [ ! -e "$TMP/bad.pb.gz" ]; then
		ok 0 "$desc (exit $code): $(cat "$TMP/err")"
	else
		ok 1 "$desc"
		diag "exit $rc, want $code; stderr ($lines lines):" "$(cat "$TMP/err")"
	fi
}
o="$TMP/bad.pb.gz"
expect_fail 64 "unknown duration unit in '30x'" "unknown duration unit" -- cpu -p "$pid" -d 30x -o "$o"
expect_fail 64 "invalid duration '-5s'" "negative duration" -- cpu -p "$pid" -d -5s -o "$o"
expect_fail 64 "invalid duration '0s'" "zero duration" -- cpu -p "$pid" -d 0s -o "$o"
expect_fail 64 "invalid duration 'abc'" "a duration that is no number" -- cpu -p "$pid" -d abc -o "$o"
expect_fail 64 "invalid frequency '0'" "-F 0" -- cpu -p "$pid" -F 0 -o "$o"
expect_fail 64 "invalid frequency '100000'" "-F absurd" -- cpu -p "$pid" -F 100000 -o "$o"
expect_fail 64 "invalid frequency '-3'" "-F negative" -- cpu -p "$pid" -F -3 -o "$o"
expect_fail 64 "unknown format 'png'" "--format png" -- cpu -p "$pid" --format png -o "$o"
expect_fail 64 "not both" "-p and a command" -- cpu -p "$pid" -o "$o" -- true
expect_fail 64 "-p PID or -- COMMAND is required" "neither -p nor a command" -- cpu -o "$o"
expect_fail 2 "cannot write $TMP/none/x.pb.gz: No such file or directory" "unwritable -o" -- cpu -p "$pid" -d 1s -o "$TMP/none/x.pb.gz"
expect_fail 2 "no such process: 4194000" "no such pid" -- cpu -p 4194000 -d 1s -o "$o"
"$XPROF" cpu --help | grep -q -- '--wall'
ok $? "cpu --help documents --wall"
plan "$_tap_n"
done_testing
