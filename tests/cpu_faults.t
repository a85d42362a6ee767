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
# perf_event_open refused (a seccomp filter makes it fail with EACCES):
# xprof says so and samples with --wall instead
tests/unit/noperf "$XPROF" cpu -p "$pid" -d 1s -o "$TMP/fallback.pb.gz" >/dev/null 2>"$TMP/err"
ok $? "with perf_event_open refused, cpu still succeeds" || diag "$(cat "$TMP/err")"
grep -q 'perf_event_open refused for pid '"$pid"'.*sampling with --wall (ptrace) instead' "$TMP/err"
ok $? "it announces the fallback to --wall"
go tool pprof -raw "$TMP/fallback.pb.gz" 2>/dev/null | grep -q '^PeriodType: wall nanoseconds'
ok $? "and writes a wall-clock profile"

# an unprivileged user profiling its own process: no kernel call chains
# (perf_event_paranoid), user-space stacks all the same
if [ "$(id -u)" = 0 ] && command -v setpriv >/dev/null; then
	asnobody="setpriv --reuid=65534 --regid=65534 --clear-groups"
	nobody_dir "$XPROF" "$FIX/cpuburn"
	$asnobody "$NOBODY_DIR/cpuburn" 1 >"$TMP/nb.out" 2>&1 &
	nbpid=$!
	_fixture_pids="$_fixture_pids $nbpid"
	for i in $(seq 1 300); do grep -q '^ready' "$TMP/nb.out" && break; sleep 0.01; done
	nbpid=$(sed -n 's/^ready //p' "$TMP/nb.out")
	XPROF_CACHE_DIR=off $asnobody "$NOBODY_DIR/xprof" cpu -p "$nbpid" -d 1s -o "$NOBODY_DIR/u.pb.gz" 2>"$TMP/err"
	rc=$?
	paranoid=$(cat /proc/sys/kernel/perf_event_paranoid)
	[ "$rc" = 0 ] && go tool pprof -top "$NOBODY_DIR/u.pb.gz" 2>/dev/null | grep -q burn_
	ok $? "an unprivileged user samples its own process (exit $rc, perf_event_paranoid $paranoid)" || diag "$(cat "$TMP/err")"
	if [ "$paranoid" -ge 2 ]; then
		grep -q 'kernel frames included' "$TMP/err"
		ok $((! $?)) "without kernel frames when perf_event_paranoid >= 2"
	else
		ok 0 "# SKIP perf_event_paranoid $paranoid lets users see kernel frames"
	fi
else
	ok 0 "# SKIP needs root and setpriv"
	ok 0 "# SKIP needs root and setpriv"
fi

# on a terminal: a progress line (elapsed of total, samples, threads)
if command -v script >/dev/null; then
	script -qec "$XPROF cpu -p $pid -d 1s -o $TMP/tty.pb.gz" /dev/null >"$TMP/tty.out" 2>&1
	grep -a -q 'xprof: [0-9.]*s of 1s, [0-9]* samples, [0-9]* threads' "$TMP/tty.out"
	ok $? "a progress line is shown on a terminal"
	"$XPROF" cpu -p "$pid" -d 1s -o "$TMP/notty.pb.gz" 2>"$TMP/notty.err" </dev/null
	grep -q ' of 1s, ' "$TMP/notty.err"
	ok $((! $?)) "and not when stderr is not a terminal"
else
	ok 0 "# SKIP script(1) missing"
	ok 0 "# SKIP"
fi

"$XPROF" cpu --help | grep -q -- '--wall'
ok $? "cpu --help documents --wall"
plan "$_tap_n"
done_testing
