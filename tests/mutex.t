#!/bin/bash
# xprof mutex on a native program: lockers' threads wait on a pthread
# mutex, an rwlock and a std::mutex and time each wait themselves.  xprof's
# delay per waiting function must be within 10% of what they measured over
# the profile's window, the holder label the thread that held the lock;
# the target is never stopped, pthread_create keeps working, and the
# breakpoints are gone after xprof ends, SIGKILL included.
. "$(dirname "$0")/lib.sh"
need_ptrace
[ "$(id -u)" = 0 ] || skip_all "uprobes need root or CAP_PERFMON"
[ -e /sys/bus/event_source/devices/uprobe/type ] || skip_all "this kernel has no uprobe PMU"
command -v go >/dev/null || skip_all "go tool pprof is needed"

start_fixture ready "$FIX/lockers" "$TMP/waits"
read -r pid holder_m writer_r holder_x <<<"$ready"

# Kilobytes of libc's code that are no longer the file's: a uprobe's int3
# copies the page it writes into (Anonymous in smaps); 0 when none is left.
libc_text_anon() {
	awk '/ r-xp .*\/libc\.so\.6$/ { f = 1; next } f && /^Anonymous:/ { print $2; exit }' "/proc/$pid/smaps"
}
# Asks lockers for its waits (SIGUSR1) and waits for the file.
dump_waits() {
	rm -f "$TMP/waits"
	kill -USR1 "$pid"
	for _ in $(seq 1 500); do [ -s "$TMP/waits" ] && return 0; sleep 0.01; done
	return 1
}

# watch the target while xprof runs: thread states, tracer, libc's code
(
	while [ ! -e "$TMP/stop-watch" ]; do
		echo "states $(cat /proc/$pid/task/*/stat 2>/dev/null | awk '{ printf "%s", $3 }')"
		echo "tracer $(awk '/^TracerPid:/ { print $2 }' /proc/$pid/status)"
		echo "anon $(libc_text_anon)"
		sleep 0.05
	done
) >"$TMP/watch" &
watcher=$!

# a thread that comes during the run (late-m) is probed too
"$XPROF" mutex -p "$pid" -d 3s -o "$TMP/m.pb.gz" 2>"$TMP/m.err" &
xp=$!
# once xprof waits on its probes (a fixed second could end before they are
# in, on a loaded machine, and late-m would not come during the run)
in_run "$xp" || diag "xprof mutex never waited on its probes"
kill -USR2 "$pid"
wait "$xp"
ok $? "xprof mutex exits 0" || diag "$(cat "$TMP/m.err")"
touch "$TMP/stop-watch"
wait "$watcher"
dump_waits
ok $? "lockers wrote its waits"

grep -q '^states .*t' "$TMP/watch"
ok $((! $?)) "no thread of the target was in tracing stop during the run ($(grep -c '^states' "$TMP/watch") looks)"
is "$(grep '^tracer' "$TMP/watch" | sort -u)" "tracer 0" "TracerPid was 0 throughout"
anon_max=$(awk '/^anon/ && $2 > m { m = $2 } END { print m + 0 }' "$TMP/watch")
ok $((anon_max == 0)) "the probes were in during the run: libc's code had ${anon_max} kB copied"
is "$(libc_text_anon)" 0 "after xprof, libc's code is the file's again (no breakpoint left)"
is "$(awk '/^create_failures/ { print $2 }' "$TMP/waits")" 0 "pthread_create never failed under the probes"

tests/unit/pprofcheck "$TMP/m.pb.gz" >/dev/null
ok $? "the profile passes CheckValid"
go tool pprof -raw "$TMP/m.pb.gz" >"$TMP/raw" 2>/dev/null
types=$(sed -n '/^Samples/{n;p;q}' "$TMP/raw")
is "$types" "contentions/count delay/nanoseconds" "sample types as Go's mutex profile"
tests/pprof_samples.pl "$TMP/m.pb.gz" >"$TMP/samples"

# the profile's window: time_nanos and duration
t0=$(date -d "$(sed -n 's/^Time: \(.*\) [A-Z]*$/\1/p' "$TMP/raw")" +%s%N)
dur=$(sed -n 's/^Duration: //p' "$TMP/raw")
t1=$(awk -v a="$t0" -v d="$dur" 'BEGIN { printf "%.0f", a + d * 1e9 }')
diag "window $t0 + $dur s" "$(cat "$TMP/m.err")"

# fixture_delay FUNCTION [HOLDER]: ns lockers waited in FUNCTION, waits
# ending inside the window (and begun while HOLDER held the lock)
fixture_delay() { lock_waits_ns "$TMP/waits" "$1" "$t0" "$t1" "${2:-}"; }
# xprof_delay FUNCTION [LABEL]: ns xprof measured in stacks through FUNCTION
xprof_delay() { stack_delay_ns "$TMP/samples" "$1" "${2:-}"; }

for f in lock_pthread_mutex lock_std_mutex; do
	want=$(fixture_delay "$f")
	got=$(xprof_delay "$f")
	within10 "$got" "$want"
	ok $? "$f: xprof's delay $((got / 1000000)) ms within 10% of the $((want / 1000000)) ms lockers measured"
done
# an rwlock wait is timed in glibc's futex wait only: rdlock's spin for the
# writer's hand-over around it is not counted, which on a loaded machine
# was up to 15% of the wait; the delay is a lower bound
want=$(fixture_delay lock_rwlock_read)
got=$(xprof_delay lock_rwlock_read)
awk -v g="$got" -v w="$want" 'BEGIN { exit !(w > 0 && g >= 0.75 * w && g <= 1.05 * w) }'
ok $? "lock_rwlock_read: xprof's delay $((got / 1000000)) ms is 75-105% of the $((want / 1000000)) ms lockers measured"

want=$(fixture_delay lock_pthread_mutex "$holder_m")
got=$(xprof_delay lock_pthread_mutex "holder_tid:[$holder_m]")
within10 "$got" "$want"
ok $? "pthread mutex waits held by holder-m ($holder_m): $((got / 1000000)) ms, lockers says $((want / 1000000)) ms"
want=$(fixture_delay lock_std_mutex "$holder_x")
got=$(xprof_delay lock_std_mutex "holder_tid:[$holder_x]")
within10 "$got" "$want"
ok $? "std::mutex waits held by holder-x ($holder_x): $((got / 1000000)) ms, lockers says $((want / 1000000)) ms"
grep -q 'holder:\[holder-m\]' "$TMP/samples"
ok $? "the holder label names the thread: holder-m"
grep 'lock_rwlock_read' "$TMP/samples" | grep -vq 'lock:\[rwlock\]'
ok $((! $?)) "rwlock waits are labelled lock=rwlock"
grep 'lock_std_mutex' "$TMP/samples" | grep -q 'std::mutex::lock'
ok $? "std::mutex waits show std::mutex::lock in their stacks"
want=$(fixture_delay lock_pthread_mutex_late)
got=$(xprof_delay lock_pthread_mutex_late)
grep -q 'thread:\[late-m\]' "$TMP/samples" && awk -v g="$got" -v w="$want" 'BEGIN { exit !(g > 0.5 * w && g <= 1.1 * w) }'
ok $? "a thread started during the run (late-m) is probed: $((got / 1000000)) ms of its $((want / 1000000)) ms (the waits before xprof found it are not)" ||
	diag "late-m's waits: $(grep -c '^lock_pthread_mutex_late' "$TMP/waits"), first ending at $(awk '$1 == "lock_pthread_mutex_late" { print $3; exit }' "$TMP/waits")"
grep -q 'thread:\[wait-m1\].*tid:\[[0-9]*\]' "$TMP/samples"
ok $? "thread and tid labels name the waiter"

# SIGKILL: the kernel takes the breakpoints out when xprof's descriptors close
"$XPROF" mutex -p "$pid" -d 60s -o "$TMP/k.pb.gz" 2>"$TMP/k.err" &
xp=$!
for _ in $(seq 1 300); do [ "$(libc_text_anon)" != 0 ] && break; sleep 0.02; done
anon_in=$(libc_text_anon)
kill -KILL "$xp"
wait "$xp" 2>/dev/null
# the kernel closes the events as xprof exits, one grace period each, and
# waits behind any other perf user of the machine: allow a minute
t_kill=$SECONDS
while [ "$(libc_text_anon)" != 0 ] && ! libc_code_is_file "$pid" && [ $((SECONDS - t_kill)) -lt 60 ]; do sleep 0.1; done
libc_code_is_file "$pid"
ok $? "after SIGKILL of xprof (probes were in: $anon_in kB copied), libc's code is the file's again, byte for byte ($((SECONDS - t_kill)) s after; $(libc_text_anon) kB still a copy)"
dump_waits
n0=$(grep -c '^lock_' "$TMP/waits")
sleep 0.5
dump_waits
n1=$(grep -c '^lock_' "$TMP/waits")
kill -0 "$pid" && [ "$n1" -gt $((n0 + 100)) ]
ok $? "the target runs on after xprof's SIGKILL: $((n1 - n0)) more waits in 0.5 s"
[ ! -e "$TMP/k.pb.gz" ]
ok $? "a killed run leaves no output file"
st=$(cat /proc/$pid/task/*/stat | awk '{ printf "%s", $3 }')
[[ $st != *t* && $st != *T* ]]
ok $? "no thread left stopped ($st)"

# the target exits during the run: what was measured is written, exit 1
start_fixture lb "$FIX/lockbench" 4 4
lbpid=${lb%% *}
"$XPROF" mutex -p "$lbpid" -d 20s -o "$TMP/x.pb.gz" 2>"$TMP/x.err"
rc=$?
[ "$rc" = 1 ] && grep -q "pid $lbpid exited during the run" "$TMP/x.err" && tests/unit/pprofcheck "$TMP/x.pb.gz" >/dev/null
ok $? "a target that exits during the run: the profile is written, exit 1 (exit $rc)" || diag "$(cat "$TMP/x.err")"

# bad input
one_line 64 'mutex: -p PID is required' "no pid" -- "$XPROF" mutex
one_line 64 'unknown duration unit' "bad duration" -- "$XPROF" mutex -p "$pid" -d 3x
one_line 2 'no such process' "a pid that does not exist" -- "$XPROF" mutex -p 4194000

plan "$_tap_n"
done_testing
