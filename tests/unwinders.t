#!/bin/bash
# libunwind's unwinder (XPROF_UNWINDER=libunwind) against libdw's (the
# default) on the fixtures' known stacks: tests/unit/unwcmp unwinds the very
# same copies (registers and stack of each stopped thread, perf samples)
# with both, and every thread's functions must be the same for both, the
# same as eu-stack -i's, and the chain the fixture's header promises.  The
# libunwind path leaves no thread stopped (a dump, a cpu run, xprof killed
# with SIGKILL during a dump); a bad XPROF_UNWINDER is a usage error.
# Garbage registers and stacks are tests/unit/test_unwind's (unit_unwind.t).
. "$(dirname "$0")/lib.sh"
need_ptrace
command -v eu-stack >/dev/null || { echo "Bail out! eu-stack missing (make deps)"; exit 1; }
CMP=tests/unit/unwcmp
[ -x "$CMP" ] || { echo "Bail out! $CMP is not built (make unit)"; exit 1; }

# functions FILE UNWINDER TID: one thread's functions from unwcmp -v, one per line
functions() {
	awk -F'\t' -v u="$2" -v tid="$3" '{ split($1, h, " ") } h[1] == "stack" && h[3] == tid && h[5] == u {
		for (i = 2; i <= NF; i++) { f = $i; sub(/\(\)$/, "", f); print f } }' "$1"
}
# summary FILE UNWINDER FIELD
summary() { awk -v u="$2" -v k="$3" '$1 == "unwinder" && $2 == u { for (i = 3; i < NF; i += 2) if ($i == k) print $(i + 1) }' "$1"; }

# ---- the parked threads, against each other and eu-stack -i ------------------------

for v in parked-O2 parked-cxx; do
	start_fixture ready "$FIX/$v"
	pid=${ready%% *}
	"$CMP" threads "$pid" -r 1 -v >"$TMP/$v.cmp" 2>"$TMP/$v.cmp.err"
	ok $? "$v: unwcmp runs" || diag "$(cat "$TMP/$v.cmp.err")"
	eu-stack -i -p "$pid" >"$TMP/$v.eu" 2>/dev/null
	n=$(summary "$TMP/$v.cmp" libunwind stacks)
	is "$(summary "$TMP/$v.cmp" libunwind differ)" 0 "$v: libunwind's $n stacks are libdw's, frame for frame"
	is "$(summary "$TMP/$v.cmp" libunwind ends)" "$n" "$v: all $n reach _start or the clone"
	bad=0
	for tid in $(ls /proc/"$pid"/task); do
		[ "$(cat /proc/"$pid"/task/"$tid"/comm)" = spinner ] && continue # it moves between stops
		functions "$TMP/$v.cmp" libunwind "$tid" >"$TMP/lu.fn"
		eustack_functions "$TMP/$v.eu" "$tid" >"$TMP/eu.fn"
		if [ ! -s "$TMP/lu.fn" ] || ! names_match "$TMP/eu.fn" "$TMP/lu.fn"; then
			bad=$((bad + 1))
			diag "$v tid $tid: libunwind against eu-stack -i:" "$(diff "$TMP/eu.fn" "$TMP/lu.fn")"
		fi
	done
	is "$bad" 0 "$v: every parked thread's libunwind stack is eu-stack -i's"
done

# the chains parked.c promises, from libunwind's unwind of parked-O2
chain() { # chain THREADNAME FUNCTIONS...: those functions in that order, outermost last
	local name=$1 tid
	shift
	tid=$(grep -lx "$name" /proc/"$pid"/task/*/comm 2>/dev/null | head -n 1 | cut -d/ -f5)
	functions "$TMP/chain.cmp" libunwind "$tid" | awk -v want="$*" '
		BEGIN { n = split(want, w, " "); k = 1 } $0 == w[k] { k++ } END { exit !(k > n) }'
}
start_fixture ready "$FIX/parked-O2"
pid=${ready%% *}
"$CMP" threads "$pid" -r 1 -v >"$TMP/chain.cmp" 2>/dev/null
chain holder __GI___nanosleep hold_lock start_thread __clone3; ok $? "holder: nanosleep … hold_lock, start_thread, __clone3"
chain locker ___pthread_mutex_lock wait_for_lock start_thread __clone3; ok $? "locker: pthread_mutex_lock … wait_for_lock"
chain waiter ___pthread_cond_wait wait_for_signal start_thread __clone3; ok $? "waiter: pthread_cond_wait … wait_for_signal"
chain reader read_pipe start_thread __clone3; ok $? "reader: read_pipe"
chain sleeper sleep_long start_thread __clone3; ok $? "sleeper: sleep_long"
chain parked-O2 main __libc_start_main_impl _start; ok $? "main thread: main, __libc_start_main_impl, _start"

# ---- a signal frame, the vdso, samples ------------------------------------------

start_fixture ready "$FIX/sighandler"
pid=${ready%% *}
tid=$(echo "$ready" | awk '{ print $2 }')
"$CMP" threads "$pid" -r 1 -v >"$TMP/sig.cmp" 2>/dev/null
is "$(summary "$TMP/sig.cmp" libunwind differ)" 0 "sighandler: libunwind's stacks are libdw's"
functions "$TMP/sig.cmp" libunwind "$tid" | tr '\n' ' ' | grep -q 'on_usr1 __restore_rt interrupted_here victim start_thread __clone3 $'
ok $? "sighandler: through the signal frame: on_usr1 __restore_rt interrupted_here victim start_thread __clone3" ||
	diag "$(functions "$TMP/sig.cmp" libunwind "$tid" | tr '\n' ' ')"

for f in vdso cpuburn; do
	start_fixture ready "$FIX/$f"
	pid=${ready%% *}
	"$CMP" cpu "$pid" -d 1000 -r 1 -v >"$TMP/$f.cmp" 2>"$TMP/$f.err"
	n=$(summary "$TMP/$f.cmp" libunwind stacks)
	[ "${n:-0}" -gt 20 ]; ok $? "$f: ${n:-0} perf samples (more than 20)" || diag "$(cat "$TMP/$f.err")"
	is "$(summary "$TMP/$f.cmp" libunwind differ)" 0 "$f: libunwind unwinds every sample as libdw does"
	is "$(summary "$TMP/$f.cmp" libunwind ends)" "$(summary "$TMP/$f.cmp" libdw ends)" "$f: as many reach the clone"
	kill "$pid"
done
grep '^stack .* libunwind ' "$TMP/vdso.cmp" | grep -c $'\tclock_loop\tstart_thread\t__clone3$' >"$TMP/n"
[ "$(cat "$TMP/n")" -gt 0 ]; ok $? "vdso: samples in the vdso unwind to clock_loop, start_thread, __clone3 ($(cat "$TMP/n"))"
grep '^stack .* libunwind ' "$TMP/cpuburn.cmp" | grep -c $'\trun_slices\tworker\tstart_thread\t__clone3$' >"$TMP/n"
[ "$(cat "$TMP/n")" -gt 0 ]; ok $? "cpuburn: samples unwind through run_slices, worker, start_thread, __clone3 ($(cat "$TMP/n"))"

# ---- through xprof: the option, and the target is never left stopped ------------------

start_fixture ready "$FIX/parked-O2" 300
pid=${ready%% *}
XPROF_UNWINDER=libunwind "$XPROF" threads -p "$pid" >"$TMP/lu.txt" 2>"$TMP/lu.err"
ok $? "XPROF_UNWINDER=libunwind xprof threads exits 0 (every stack complete)" || diag "$(cat "$TMP/lu.err")"
no_thread_stopped "$pid"; ok $? "and leaves no thread stopped"
is "$(grep -c '^thread ' "$TMP/lu.txt")" 307 "it shows all 307 threads"
is "$(grep -c '^pool_wait()' "$TMP/lu.txt")" 300 "the 300 pool threads are in pool_wait"
stuck=0
for delay in 0.01 0.03 0.06 0.1; do
	XPROF_UNWINDER=libunwind "$XPROF" threads -p "$pid" >/dev/null 2>&1 &
	xp=$!
	sleep "$delay"
	kill -KILL "$xp" 2>/dev/null
	wait "$xp" 2>/dev/null
	no_thread_stopped "$pid" || stuck=$((stuck + 1))
done
is "$stuck" 0 "xprof (libunwind) killed with SIGKILL at 4 moments of a dump: no thread left stopped"

start_fixture ready "$FIX/cpuburn"
pid=${ready%% *}
XPROF_UNWINDER=libunwind "$XPROF" cpu -p "$pid" -d 1s -o "$TMP/cpu.pb.gz" 2>"$TMP/cpu.err"
ok $? "XPROF_UNWINDER=libunwind xprof cpu exits 0" || diag "$(cat "$TMP/cpu.err")"
no_thread_stopped "$pid"; ok $? "and leaves no thread stopped"
pprof_check "$TMP/cpu.pb.gz"; ok $? "its profile is valid"
go tool pprof -traces "$TMP/cpu.pb.gz" 2>/dev/null | grep -q 'burn_[abc]'
ok $? "and holds the burn_a/b/c stacks"
kill "$pid"

one_line 64 "bad XPROF_UNWINDER 'frobnicate' (use libdw or libunwind)" "a bad XPROF_UNWINDER is a usage error" -- \
	env XPROF_UNWINDER=frobnicate "$XPROF" threads -p 1
plan "$_tap_n"
done_testing
