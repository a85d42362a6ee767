#!/bin/bash
# JIT code: functions written at run time into anonymous executable memory
# (frame pointer, no CFI), named in /tmp/perf-PID.map, between C frames
# (fixtures/jitfix.c: C → JIT → C).  xprof threads and xprof cpu must show
# the JIT functions by name and the C frames on both sides, down to the
# thread's start; a hostile perf map (garbage, huge, overlapping entries, a
# FIFO) changes no name that a clean one gives and breaks nothing.
. "$(dirname "$0")/lib.sh"
need_ptrace
command -v go >/dev/null || { echo "Bail out! go missing (make deps)"; exit 1; }

# threads_dump OUT ERR ARGS...: xprof threads -p $pid ARGS, again (up to
# 3 times) when a burning thread did not stop in time on the loaded
# machine; the exit status of the last try
threads_dump() {
	local out=$1 err=$2 try rc; shift 2
	for try in 1 2 3; do
		"$XPROF" threads -p "$pid" "$@" >"$out" 2>"$err"
		rc=$?
		grep -q 'did not stop in time' "$err" || break
	done
	return $rc
}
# stacks SAMPLES THREAD: that thread's stacks (leaf first, ';' between
# frames) with their sample counts, from pprof_samples.pl's output
stacks() {
	awk -F'\t' -v t="thread:[$2]" 'index($1, t) { split($1, a, " "); split($2, v, " "); print v[1], a[1] }' "$1"
}
# share_like SAMPLES THREAD REGEX: percent of THREAD's samples whose stack
# matches REGEX
share_like() {
	stacks "$1" "$2" | awk -v re="$3" '{ total += $1; if ($2 ~ re) hit += $1 }
		END { printf "%.1f\n", total ? 100 * hit / total : 0 }'
}
# check_threads DUMP WHAT: the three threads' stacks in a text dump
check_threads() {
	local dump=$1 what=$2 tid got
	tid=$(grep -l '^block$' /proc/"$pid"/task/*/comm | cut -d/ -f5)
	got=$(xprof_functions "$dump" "$tid" | tr '\n' ' ')
	[[ "$got" == *"c_block jit_fn_c c_caller_c thread_c start_thread __clone3 " ]]
	ok $? "$what: the sleeping thread's stack is c_block, jit_fn_c, c_caller_c, thread_c, start_thread, __clone3" ||
		diag "got: $got"
	tid=$(grep -l '^burn-a$' /proc/"$pid"/task/*/comm | cut -d/ -f5)
	got=$(xprof_functions "$dump" "$tid" | tr '\n' ' ')
	[[ "$got" =~ ^((c_burn )?jit_fn_a )?(c_caller_a )?thread_a\ start_thread\ __clone3\ $ ]]
	ok $? "$what: burn-a's stack is (c_burn,) (jit_fn_a,) (c_caller_a,) thread_a, start_thread, __clone3" ||
		diag "got: $got"
	tid=$(grep -l '^burn-b$' /proc/"$pid"/task/*/comm | cut -d/ -f5)
	got=$(xprof_functions "$dump" "$tid" | tr '\n' ' ')
	[[ "$got" =~ ^(jit_fn_b )?(c_caller_b )?thread_b\ start_thread\ __clone3\ $ ]]
	ok $? "$what: burn-b's stack is (jit_fn_b,) (c_caller_b,) thread_b, start_thread, __clone3" ||
		diag "got: $got"
}
# check_cpu PROFILE ERRFILE WHAT: complete stacks and the JIT frames in place
check_cpu() {
	local prof=$1 err=$2 what=$3 pct s samples=$TMP/samples
	pprof_check "$prof"
	ok $? "$what: the profile is valid and go tool pprof reads it"
	tests/pprof_samples.pl "$prof" >"$samples"
	pct=$(sed -n 's/.* \([0-9.]*\)% with a complete stack.*/\1/p' "$err")
	awk -v p="$pct" 'BEGIN { exit !(p != "" && p >= 95) }'
	ok $? "$what: $pct% of the samples have a complete stack (at least 95%)" || diag "$(cat "$err")"
	# burn-a burns in c_burn, called from jit_fn_a: nearly every sample
	s=$(share_like "$samples" burn-a '(^|;)c_burn;jit_fn_a;c_caller_a;thread_a;start_thread;__clone3$')
	awk -v p="$s" 'BEGIN { exit !(p >= 90) }'
	ok $? "$what: $s% of burn-a's samples are c_burn → jit_fn_a → c_caller_a → thread_a → start_thread → __clone3 (at least 90%)" ||
		diag "$(stacks "$samples" burn-a | sort -rn | head -5)"
	# burn-b burns in jit_fn_b itself (a JIT frame is the leaf)
	s=$(share_like "$samples" burn-b '(^|;)jit_fn_b;c_caller_b;thread_b;start_thread;__clone3$')
	awk -v p="$s" 'BEGIN { exit !(p >= 90) }'
	ok $? "$what: $s% of burn-b's samples are jit_fn_b → c_caller_b → thread_b → start_thread → __clone3 (at least 90%)" ||
		diag "$(stacks "$samples" burn-b | sort -rn | head -5)"
	grep -q '_old\|everything\|elsewhere' "$samples"
	ok $((!$?)) "$what: no name from an older overlapping or unrelated perf map entry"
}

# ---- a clean perf map ---------------------------------------------------------

start_fixture ready "$FIX/jitfix"
pid=${ready%% *}
map=/tmp/perf-$pid.map
threads_dump "$TMP/dump" "$TMP/err"
ok $? "xprof threads exits 0: every stack complete" || diag "$(cat "$TMP/err")"
check_threads "$TMP/dump" "threads"
grep -A1 '^jit_fn_c()$' "$TMP/dump" | grep -q '^	\[jit\] +0x10$'
ok $? "threads: a JIT frame shows its module [jit] and its offset in the function (+0x10, after the call)" ||
	diag "$(grep -A1 '^jit_fn' "$TMP/dump")"
threads_dump /dev/null "$TMP/err" -o "$TMP/threads.pb.gz"
ok $? "xprof threads -o exits 0"
tests/pprof_samples.pl "$TMP/threads.pb.gz" | grep -q '^[^	]*c_block;jit_fn_c;c_caller_c;thread_c;start_thread;__clone3 '
ok $? "threads -o: the sleeping thread's sample has jit_fn_c between c_block and c_caller_c" ||
	diag "$(tests/pprof_samples.pl "$TMP/threads.pb.gz")"
go tool pprof -raw "$TMP/threads.pb.gz" 2>/dev/null | grep -q '^[0-9]*: 0x[0-9a-f]*/0x[0-9a-f]*/0x0 \[jit\]  \[FN\]$'
ok $? "threads -o: the JIT code's mapping is [jit], has_functions set (pprof does not try to open it)"

"$XPROF" cpu -p "$pid" -d 3s -o "$TMP/cpu.pb.gz" >/dev/null 2>"$TMP/err"
ok $? "xprof cpu exits 0" || diag "$(cat "$TMP/err")"
check_cpu "$TMP/cpu.pb.gz" "$TMP/err" "cpu"
"$XPROF" cpu -p "$pid" -d 1s --format folded -o "$TMP/cpu.folded" 2>"$TMP/err"
grep -q '^__clone3;start_thread;thread_b;c_caller_b;jit_fn_b[; ]' "$TMP/cpu.folded" ||
	grep -q '^__clone3;start_thread;thread_a;c_caller_a;jit_fn_a;c_burn[; ]' "$TMP/cpu.folded"
ok $? "folded stacks name the JIT function too" || diag "$(head -5 "$TMP/cpu.folded")"
kill -KILL "$pid"
wait "$pid" 2>/dev/null
rm -f "$map"

# ---- no perf map: whole stacks, unnamed JIT frames ------------------------------

start_fixture ready "$FIX/jitfix" nomap
pid=${ready%% *}
map=/tmp/perf-$pid.map
threads_dump "$TMP/dump" "$TMP/err"
ok $? "no perf map: xprof threads exits 0 (every stack complete)" || diag "$(cat "$TMP/err")"
tid=$(grep -l '^block$' /proc/"$pid"/task/*/comm | cut -d/ -f5)
got=$(xprof_functions "$TMP/dump" "$tid" | tr '\n' ' ')
[[ "$got" == *"c_block ?? c_caller_c thread_c start_thread __clone3 " ]]
ok $? "no perf map: the JIT frame is there, unnamed, between c_block and c_caller_c" || diag "got: $got"
# a FIFO where the map would be: not opened for reading, no hang
mkfifo "$map"
timeout 20 "$XPROF" threads -p "$pid" >"$TMP/dump" 2>"$TMP/err"
rc=$?
[ "$rc" = 0 ] || { [ "$rc" = 1 ] && grep -q 'did not stop in time' "$TMP/err"; }
ok $? "a FIFO as the perf map: xprof threads exits 0 (1 only for threads that did not stop), does not block on it" || diag "$(cat "$TMP/err")"
rm -f "$map"
# a map another user wrote into /tmp names nothing
addr=$(awk '$2 == "r-xp" && $6 == "" { split($1, a, "-"); print a[1] }' /proc/"$pid"/maps | head -1)
printf '%s 1000 planted\n' "$addr" >"$map"
chown nobody "$map"
threads_dump "$TMP/dump" "$TMP/err"
grep -q planted "$TMP/dump"
ok $((!$?)) "a perf map owned by another user (nobody) is not read"
kill -KILL "$pid"
wait "$pid" 2>/dev/null
rm -f "$map"

# ---- a hostile perf map -------------------------------------------------------------

start_fixture ready "$FIX/jitfix" hostile
pid=${ready%% *}
map=/tmp/perf-$pid.map
threads_dump "$TMP/dump" "$TMP/err"
ok $? "hostile map: xprof threads exits 0" || diag "$(cat "$TMP/err")"
check_threads "$TMP/dump" "hostile map, threads"
grep -q '_old\|everything\|elsewhere' "$TMP/dump"
ok $((!$?)) "hostile map, threads: the entry written last for an address names it"
grep -q "^xprof: $map: 1[0-9] lines or records skipped (not START SIZE name)$" "$TMP/err"
ok $? "hostile map, threads: the lines skipped are counted and said" || diag "$(cat "$TMP/err")"
"$XPROF" cpu -p "$pid" -d 2s -o "$TMP/cpu.pb.gz" >/dev/null 2>"$TMP/err"
ok $? "hostile map: xprof cpu exits 0" || diag "$(cat "$TMP/err")"
check_cpu "$TMP/cpu.pb.gz" "$TMP/err" "hostile map, cpu"
kill -KILL "$pid"
wait "$pid" 2>/dev/null
rm -f "$map"
plan "$_tap_n"
done_testing
