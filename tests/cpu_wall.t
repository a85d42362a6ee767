#!/bin/bash
# xprof cpu --wall from perf: every thread accounted for over the whole run
# without being stopped.  A D-second run of an N-thread fixture totals N x D
# (within 5%): the waiter (8 threads, mostly waiting) and cpuburn (4
# threads, three burning on two cores: running and runnable); each thread
# alone totals D; the target never stopped; --wall=ptrace and the fallback
# to ptrace where perf is refused (as nobody) still work and say so.
. "$(dirname "$0")/lib.sh"
need_ptrace
command -v go >/dev/null || { echo "Bail out! go missing (make deps)"; exit 1; }

# per_thread FILE: "TID NS" for each thread of a wall profile
per_thread() {
	go tool pprof -raw "$1" 2>/dev/null | awk '
		/^Samples:/ { on = 1; next }
		/^Locations/ { on = 0 }
		on && /^ +[0-9]+ +[0-9]+:/ { v = $2; sub(/:$/, "", v); next }
		on && match($0, /tid:\[[0-9]+\]/) { t = substr($0, RSTART + 5, RLENGTH - 6); sum[t] += v }
		END { for (t in sum) print t, sum[t] }'
}
# duration_ns FILE: the profile's duration
duration_ns() {
	go tool pprof -raw "$1" 2>/dev/null | awk '/^Duration: / { printf "%d\n", $2 * 1e9 }'
}

# check_totals NAME FILE NTHREADS
check_totals() {
	local name=$1 f=$2 want=$3 d n total bad
	d=$(duration_ns "$f")
	per_thread "$f" >"$TMP/per"
	n=$(wc -l <"$TMP/per")
	total=$(awk '{ s += $2 } END { printf "%d", s }' "$TMP/per")
	is "$n" "$want" "$name: all $want threads are in the profile"
	awk -v t="$total" -v n="$want" -v d="$d" 'BEGIN { w = n * d; x = t - w; if (x < 0) x = -x; exit !(d > 0 && x <= 0.05 * w) }'
	ok $? "$name: the profile totals $(awk -v t="$total" 'BEGIN { printf "%.3f", t / 1e9 }') s for $want threads x $(awk -v d="$d" 'BEGIN { printf "%.2f", d / 1e9 }') s (within 5%)"
	bad=$(awk -v d="$d" '{ x = $2 - d; if (x < 0) x = -x; if (x > 0.05 * d) print "tid " $1 ": " $2 " ns" }' "$TMP/per")
	ok ${#bad} "$name: each thread alone totals the duration (within 5%)" || diag "$bad"
}

start_fixture ready "$FIX/waiter" "$TMP/window"
wpid=${ready%% *}
watch_target "$wpid" "$TMP/watch" "$TMP/done" &
watcher=$!
# a machine too busy to let xprof drain its rings loses records (exit 1,
# said): the totals are checked on a run that lost none, of up to three
for try in 1 2 3; do
	"$XPROF" cpu --wall -p "$wpid" -d 3s -o "$TMP/waiter.pb.gz" 2>"$TMP/err"
	rc=$?
	[ "$rc" = 1 ] && grep -q 'samples were lost' "$TMP/err" || break
	diag "try $try lost records: $(grep -o '[0-9]* lost' "$TMP/err" | head -1)"
done
touch "$TMP/done"
wait "$watcher"
ok $rc "cpu --wall on the waiter exits 0" || diag "$(cat "$TMP/err")"
grep -q 'wall-clock from perf (no thread stopped)' "$TMP/err"
ok $? "it says the wall clock came from perf" || diag "$(cat "$TMP/err")"
not_stopped_during "$TMP/watch"
ok $? "the target was never stopped: TracerPid 0 and no thread in t or T at $polls polls"
pprof_check "$TMP/waiter.pb.gz"
ok $? "the profile is valid and go tool pprof reads it"
go tool pprof -raw "$TMP/waiter.pb.gz" >"$TMP/raw" 2>&1
grep -qx 'samples/count wall/nanoseconds' "$TMP/raw" && grep -q '^PeriodType: wall nanoseconds$' "$TMP/raw"
ok $? "sample types samples/count, wall/nanoseconds"
check_totals waiter "$TMP/waiter.pb.gz" 8
go tool pprof -top -cum -nodecount=500 -tagfocus=reason=read "$TMP/waiter.pb.gz" 2>/dev/null | grep -q ' wait_on_pipe$'
ok $? "off-CPU time carries its reason: wait_on_pipe under reason=read"

start_fixture ready "$FIX/cpuburn" 3
bpid=${ready%% *}
for try in 1 2 3; do
	"$XPROF" cpu --wall -p "$bpid" -d 3s -F 499 -o "$TMP/burn.pb.gz" 2>"$TMP/err"
	rc=$?
	[ "$rc" = 1 ] && grep -q 'samples were lost' "$TMP/err" || break
	diag "try $try lost records: $(grep -o '[0-9]* lost' "$TMP/err" | head -1)"
done
ok $rc "cpu --wall on cpuburn (3 burning threads on $(nproc) CPUs) exits 0" || diag "$(cat "$TMP/err")"
check_totals cpuburn "$TMP/burn.pb.gz" 4
go tool pprof -top -tagfocus=state=running "$TMP/burn.pb.gz" 2>/dev/null | grep -q 'burn_c'
ok $? "burning threads are state=running in burn_c"

"$XPROF" cpu --wall=ptrace -p "$wpid" -d 1s -o "$TMP/pt.pb.gz" 2>"$TMP/err"
ok $? "--wall=ptrace exits 0" || diag "$(cat "$TMP/err")"
go tool pprof -raw "$TMP/pt.pb.gz" 2>/dev/null | grep -q '^PeriodType: wall nanoseconds$' && ! grep -q 'from perf' "$TMP/err"
ok $? "--wall=ptrace writes a wall profile with the ptrace sampler"
"$XPROF" cpu --wall=bogus -p "$wpid" 2>/dev/null
is $? 64 "--wall=bogus is a usage error"

# a SIGSTOPped process: its threads are stopped the whole run, and left so
start_fixture ready "$FIX/cpuburn" 2
spid=${ready%% *}
kill -STOP "$spid"
for i in $(seq 1 100); do thread_states "$spid" | grep -vq T || break; sleep 0.01; done
"$XPROF" cpu --wall -p "$spid" -d 1s -o "$TMP/stopped.pb.gz" 2>"$TMP/err"
ok $? "a SIGSTOPped process under --wall: exit 0" || diag "$(cat "$TMP/err")"
go tool pprof -raw "$TMP/stopped.pb.gz" 2>/dev/null >"$TMP/raw.txt"
nstopped=$(grep -c 'state:\[stopped\]' "$TMP/raw.txt")
nother=$(grep 'state:\[' "$TMP/raw.txt" | grep -vc 'state:\[stopped\]')
[ "$nstopped" -ge 3 ] && [ "$nother" = 0 ]
ok $? "every thread labelled state=stopped ($nstopped stacks, $nother otherwise)" || diag "$(grep 'state:' "$TMP/raw.txt" | sort | uniq -c)"
check_totals stopped "$TMP/stopped.pb.gz" 3
[ -z "$(thread_states "$spid" | grep -v T)" ]
ok $? "the process is left stopped, as found ($(thread_states "$spid" | tr -d '\n'))"
kill -CONT "$spid"

# perf_event_open refused (a seccomp filter): the ptrace sampler, said so
tests/unit/noperf "$XPROF" cpu --wall -p "$wpid" -d 1s -o "$TMP/np.pb.gz" 2>"$TMP/err"
rc=$?
[ "$rc" = 0 ] && grep -q 'perf_event_open refused.*every thread was stopped at each tick (ptrace) instead' "$TMP/err"
ok $? "perf refused: --wall samples with ptrace and says so" || diag "exit $rc: $(cat "$TMP/err")"
one_line 2 'cannot sample the context switches of pid' "perf refused: xprof block says what to do" -- \
	tests/unit/noperf "$XPROF" block -p "$wpid" -d 1s -o "$TMP/npb.pb.gz"

if [ "$(id -u)" = 0 ] && command -v setpriv >/dev/null && [ "$(cat /proc/sys/kernel/perf_event_paranoid)" -ge 2 ]; then
	asnobody="setpriv --reuid=65534 --regid=65534 --clear-groups"
	nobody_dir "$XPROF" "$FIX/waiter"
	$asnobody "$NOBODY_DIR/waiter" "$NOBODY_DIR/window" >"$TMP/nb.out" 2>&1 &
	nbpid=$!
	_fixture_pids="$_fixture_pids $nbpid"
	for i in $(seq 1 500); do grep -q '^ready' "$TMP/nb.out" && break; sleep 0.01; done
	XPROF_CACHE_DIR=off $asnobody "$NOBODY_DIR/xprof" cpu --wall -p "$nbpid" -d 1s -o "$NOBODY_DIR/nb.pb.gz" 2>"$TMP/err"
	rc=$?
	[ "$rc" = 0 ] && grep -q 'perf_event_open refused.*every thread was stopped at each tick (ptrace) instead' "$TMP/err"
	ok $? "as nobody (perf_event_paranoid 2): --wall falls back to ptrace and says so" || diag "exit $rc: $(cat "$TMP/err")"
	one_line 2 'perf_event_open refused (run as root, give xprof CAP_PERFMON, or set kernel.perf_event_paranoid to 1 or less)' \
		"as nobody: xprof block says what to do" -- \
		env XPROF_CACHE_DIR=off $asnobody "$NOBODY_DIR/xprof" block -p "$nbpid" -d 1s -o "$NOBODY_DIR/nbb.pb.gz"
fi
plan "$_tap_n"
done_testing
