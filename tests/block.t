#!/bin/bash
# xprof block: the waiting time of the waiter fixture's four waits (mutex,
# condition variable, pipe read, nanosleep; each timed by the fixture
# itself around the call) against xprof's delay per function over the same
# window, the reason labels, the target never stopped (no tracer, no thread
# in t or T during the run), the profile's types, and the errors.
. "$(dirname "$0")/lib.sh"
need_ptrace
command -v go >/dev/null || { echo "Bail out! go missing (make deps)"; exit 1; }

win="$TMP/window"
start_fixture ready "$FIX/waiter" "$win"
pid=${ready%% *}
fixout=$(ls "$TMP"/fixture.*.out)
out="$TMP/block.pb.gz"

# watch the target during the run: its tracer and its threads' states
watch_target "$pid" "$TMP/watch" "$TMP/done" &
watcher=$!
mounts_before=$(md5sum </proc/self/mountinfo)
# a machine too busy to let xprof drain its rings loses records (exit 1,
# said): the truth is checked on a run that lost none, of up to three
for try in 1 2 3; do
	"$XPROF" block -p "$pid" -d 3s -o "$out" >"$TMP/out" 2>"$TMP/err"
	rc=$?
	[ "$rc" = 1 ] && grep -q 'records were lost' "$TMP/err" || break
	diag "try $try: $(grep 'records were lost' "$TMP/err")"
done
touch "$TMP/done"
wait "$watcher"
ok $rc "xprof block -p exits 0" || diag "$(cat "$TMP/err")"
not_stopped_during "$TMP/watch"
ok $? "the target was never stopped: TracerPid 0 and no thread in t or T at $polls polls during the run"
is "$(md5sum </proc/self/mountinfo)" "$mounts_before" "the mount table is as before (no tracefs mounted: the context-switch event needs none)"
pprof_check "$out"
ok $? "the profile is valid (CheckValid rules) and go tool pprof reads it"
go tool pprof -raw "$out" >"$TMP/raw" 2>&1
grep -qx 'contentions/count delay/nanoseconds' "$TMP/raw" && grep -q '^PeriodType: contentions count$' "$TMP/raw"
ok $? "sample types contentions/count, delay/nanoseconds, as Go's block profile"

# the fixture's own accounting over the profile's window
window_of "$out" >"$win"
: >"$fixout.mark"
kill -USR1 "$pid"
for i in $(seq 1 200); do grep -q '^end' "$fixout" && break; sleep 0.01; done
diag "window $(cat "$win"); the fixture's own waits:" "$(grep '^wait_' "$fixout")"
for fn in wait_on_mutex wait_on_cond wait_on_pipe wait_in_sleep; do
	truth=$(awk -v f="$fn" '$1 == f { print $2 }' "$fixout")
	got=$(delay_ns "$out" "$fn")
	awk -v g="$got" -v t="$truth" 'BEGIN { d = g - t; if (d < 0) d = -d; exit !(t > 0 && d <= 0.10 * t) }'
	ok $? "$fn: xprof $(awk -v g="$got" 'BEGIN { printf "%.3f", g / 1e9 }') s delay, the fixture measured $(awk -v t="$truth" 'BEGIN { printf "%.3f", t / 1e9 }') s (within 10%)"
done

# the reasons: each wait under its system call, kept by -tagfocus
for pair in wait_on_pipe:read wait_on_mutex:futex wait_on_cond:futex wait_in_sleep:clock_nanosleep; do
	fn=${pair%%:*} reason=${pair#*:}
	all=$(delay_ns "$out" "$fn")
	kept=$(delay_ns "$out" "$fn" -tagfocus=reason="$reason")
	awk -v a="$all" -v k="$kept" 'BEGIN { exit !(a > 0 && k >= 0.95 * a) }'
	ok $? "$fn waits with reason=$reason ($kept of $all ns under -tagfocus)"
done
go tool pprof -tags "$out" >"$TMP/tags" 2>&1
grep -q 'wchan' "$TMP/tags" && grep -q 'thread' "$TMP/tags" && grep -q 'w-pipe' "$TMP/tags"
ok $? "labels thread (w-pipe...), tid, wchan are there" || diag "$(head -30 "$TMP/tags")"
! grep -q 'preempted' "$TMP/tags"
ok $? "no preemption in the default profile (it is not blocking)"
"$XPROF" block -p "$pid" -d 1s --preempted -o "$TMP/pre.pb.gz" 2>"$TMP/err.pre"
ok $? "--preempted exits 0" || diag "$(cat "$TMP/err.pre")"
n=$(sed -n 's/.* \([0-9]*\) preemptions.*/\1/p' "$TMP/err.pre")
go tool pprof -tags "$TMP/pre.pb.gz" 2>/dev/null | grep -q 'preempted'
has=$?
[ "${n:-0}" = 0 ] && has=0
ok $has "--preempted keeps the $n preemptions it saw under reason=preempted"
no_thread_stopped "$pid"
ok $? "the target runs on after xprof"

# errors: one line each, nothing written
one_line 64 'block: -p PID is required' "no pid" -- "$XPROF" block
one_line 64 'unknown duration unit' "bad duration" -- "$XPROF" block -p "$pid" -d 3y
true & gone=$!
wait "$gone"
one_line 2 "no such process: $gone" "a pid that does not exist" -- "$XPROF" block -p "$gone" -d 1s -o "$TMP/none.pb.gz"
[ ! -e "$TMP/none.pb.gz" ]
ok $? "nothing written for a pid that does not exist"
if [ "$(id -u)" = 0 ] && command -v setpriv >/dev/null; then
	nobody_dir "$XPROF"
	one_line 2 'operation not permitted' "another user's process, as nobody" -- \
		env XPROF_CACHE_DIR=off setpriv --reuid=65534 --regid=65534 --clear-groups "$NOBODY_DIR/xprof" block -p "$pid" -d 1s -o "$NOBODY_DIR/nb.pb.gz"
	[ ! -e "$NOBODY_DIR/nb.pb.gz" ]
	ok $? "nothing written when perf is refused"
fi
plan "$_tap_n"
done_testing
