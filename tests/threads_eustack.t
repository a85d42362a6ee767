#!/bin/bash
# Every thread's stack from xprof matches eu-stack -i frame for frame
# (function names, inline frames included), on every fixture variant:
# -O2 without frame pointers, -O0, -O2 with frame pointers, non-PIE,
# stripped with separate debug info, stripped with only MiniDebugInfo, C++.  Also checks the ends of stacks:
# start_thread / __clone3 for threads, main / _start for the main thread.
. "$(dirname "$0")/lib.sh"
need_ptrace
command -v eu-stack >/dev/null || { echo "Bail out! eu-stack missing (make deps)"; exit 1; }

variants="parked-O2 parked-O0 parked-O2-fp parked-nopie parked-split parked-minidebug parked-cxx"
for v in $variants; do
	start_fixture ready "$FIX/$v"
	pid=${ready%% *}
	tids=$(ls /proc/"$pid"/task | sort -n)
	eu-stack -i -p "$pid" >"$TMP/$v.eu" 2>"$TMP/$v.eu.err"
	"$XPROF" threads -p "$pid" >"$TMP/$v.x" 2>"$TMP/$v.x.err"
	ok $? "$v: xprof threads exits 0 (all stacks complete)" || diag "$(cat "$TMP/$v.x.err")"
	mismatches=0
	for tid in $tids; do
		xprof_functions "$TMP/$v.x" "$tid" >"$TMP/x.fn"
		eustack_functions "$TMP/$v.eu" "$tid" >"$TMP/eu.fn"
		if [ ! -s "$TMP/x.fn" ] || ! names_match "$TMP/eu.fn" "$TMP/x.fn"; then
			mismatches=$((mismatches + 1))
			diff -u "$TMP/eu.fn" "$TMP/x.fn" >"$TMP/diff"
			diag "$v tid $tid differs from eu-stack -i:" "$(cat "$TMP/diff")"
		fi
	done
	is "$mismatches" 0 "$v: all $(echo $tids | wc -w) threads match eu-stack -i frame for frame"
	# the outermost frames
	bad_ends=0
	for tid in $tids; do
		last2=$(xprof_functions "$TMP/$v.x" "$tid" | tail -n 2 | tr '\n' ' ')
		if [ "$tid" = "$pid" ]; then
			want="__libc_start_main_impl _start "
		else
			want="start_thread __clone3 "
		fi
		[ "$last2" = "$want" ] || { bad_ends=$((bad_ends + 1)); diag "$v tid $tid ends in: $last2"; }
	done
	is "$bad_ends" 0 "$v: every stack reaches _start or start_thread/__clone3"
done

# Spot checks of what the fixture's header promises, on the reference build.
x="$TMP/parked-O2.x"
grep -A12 '"locker"' "$x" | grep -q '^___pthread_mutex_lock()' ; ok $? "locker waits in pthread_mutex_lock"
grep -A12 '"locker"' "$x" | grep -q '^futex_wait(\.\.\.)$' ; ok $? "inline frames are marked (futex_wait inlined)"
grep -A3 '"reader"' "$x" | grep -q 'read' ; ok $? "reader is in read"
grep -A12 '"waiter"' "$x" | grep -q '^___pthread_cond_wait()' ; ok $? "waiter waits in pthread_cond_wait"
grep '"sleeper"' "$x" | grep -q 'sleeping' ; ok $? "sleeper's state is sleeping"
grep '"spinner"' "$x" | grep -q '\[running' ; ok $? "spinner's state is running"
grep -A1 '^main()' "$x" | grep -q 'fixtures/parked.c:[0-9]* +0x' ; ok $? "frames carry file:line +offset"
grep -A1 '^__GI___nanosleep()' "$x" | grep -q 'nanosleep.c:[0-9]' ; ok $? "libc frames have lines (libc6-dbg found by build-id)"
grep -q 'pop()' "$TMP/parked-cxx.x" && grep -q '^app::Queue<int>::pop()' "$TMP/parked-cxx.x" ; ok $? "C++ names are demangled"
grep -q '^void app::wait_here<int>(.*) (inlined)$' "$TMP/parked-cxx.x" ; ok $? "C++ always-inline template shows as an inline frame"
grep -q 'process stopped for [0-9.]* ms' "$TMP/parked-O2.x.err" ; ok $? "summary reports the pause"
plan "$_tap_n"
done_testing
