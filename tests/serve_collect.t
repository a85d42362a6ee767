#!/bin/bash
# xprof serve's block and mutex for native programs: the collectors of
# xprof block (perf's context switches) and xprof mutex (uprobes on glibc's
# lock slow path) over seconds=N, fetched with curl and go tool pprof and
# checked as block.t and mutex.t check the commands: the delay per waiting
# function against what the waiter and lockers fixtures timed of themselves
# over the profile's window, the target never stopped.  Then one of a kind
# at a time (a second answered at once), no wait on a CPU or heap request
# meanwhile, Go's 400 for a bad seconds, and the reason when perf is refused.
. "$(dirname "$0")/lib.sh"
need_ptrace
command -v go >/dev/null || { echo "Bail out! go missing (make deps)"; exit 1; }
command -v curl >/dev/null || { echo "Bail out! curl missing (make deps)"; exit 1; }
export PPROF_TMPDIR=$TMP/pprof

# ms_since T0: milliseconds since T0 (date +%s%N)
ms_since() { echo $((($(date +%s%N) - $1) / 1000000)); }
# one_line_body: the body is one line of text
one_line_body() { [ "$(wc -l <"$TMP/body")" = 1 ] && [ -s "$TMP/body" ]; }
# refused_while_running KIND N: KIND?seconds=N in the background ($long;
# the answer in $TMP/long.pb, its status in $TMP/long.st); a second
# KIND?seconds=1 a second later must be refused at once, in one line, as a
# second CPU profile is
refused_while_running() {
	local t0
	curl -s --max-time 30 -o "$TMP/long.pb" -w '%{http_code}' "$url/$1?seconds=$2" >"$TMP/long.st" &
	long=$!
	sleep 1
	t0=$(date +%s%N)
	st=$(get "$1?seconds=1")
	ms=$(ms_since "$t0")
	is "$st $(cat "$TMP/body")" \
		"500 $1 profiling already in use: one native $1 profile at a time (try again when it ends)" \
		"a second $1 profile while one runs: refused, as a second CPU profile is"
	one_line_body && [ "$ms" -lt 1500 ]
	ok $? "... at once (${ms} ms), in one line"
}
# watched_get PATH PID WATCHFILE: st=$(get PATH) while watch_target
# watches PID into WATCHFILE.  A machine too busy to let xprof drain its
# rings loses records (the profile's comment says so): the truth is checked
# on a run that lost none, of up to three.
watched_get() {
	local try
	rm -f "$TMP/done"
	watch_target "$2" "$3" "$TMP/done" &
	local watcher=$!
	for try in 1 2 3; do
		st=$(get "$1")
		go tool pprof -comments "$TMP/body" 2>/dev/null | grep -q 'records lost' || break
		diag "try $try: $(go tool pprof -comments "$TMP/body" 2>/dev/null)"
	done
	touch "$TMP/done"
	wait "$watcher"
}

# ---- block: waiter's four waits ----------------------------------------------
win="$TMP/window"
start_fixture ready "$FIX/waiter" "$win"
pid=${ready%% *}
fixout=$(ls "$TMP"/fixture.*.out)
start_serve "$TMP/s1.err" -p "$pid"

st=$(get "")
grep -q "href='block'" "$TMP/body" && grep -q "href='mutex'" "$TMP/body" &&
	grep -q "block: </div> Where the threads waited off the CPU .* over seconds=N (default 30 s)" "$TMP/body" &&
	grep -q "mutex: </div> Where the threads waited for pthread mutexes .* over seconds=N (default 30 s)" "$TMP/body"
ok $? "the index of a native program offers block and mutex, with what they measure ($st)"

watched_get "block?seconds=2" "$pid" "$TMP/watch"
is "$st $(header Content-Disposition)" '200 attachment; filename="block"' "block?seconds=2 of a native program"
cp "$TMP/body" "$TMP/block.pb"
not_stopped_during "$TMP/watch"
ok $? "the target was never stopped: TracerPid 0 and no thread in t or T at $polls polls during the request" ||
	diag "$(awk '$1 != 0 || $2 ~ /[tT]/' "$TMP/watch" | head -5)"
pprof_check "$TMP/block.pb"
ok $? "the profile is valid (CheckValid rules)"
go tool pprof -raw "$TMP/block.pb" >"$TMP/raw" 2>&1
grep -qx 'contentions/count delay/nanoseconds' "$TMP/raw" && grep -q '^Duration: 2' "$TMP/raw"
ok $? "contentions/count and delay/nanoseconds, over the 2 s asked for"

window_of "$TMP/block.pb" >"$win"
kill -USR1 "$pid"
for _ in $(seq 1 200); do grep -q '^end' "$fixout" && break; sleep 0.01; done
diag "window $(cat "$win"); the fixture's own waits:" "$(grep '^wait_' "$fixout")"
for fn in wait_on_mutex wait_on_cond wait_on_pipe wait_in_sleep; do
	truth=$(awk -v f="$fn" '$1 == f { print $2 }' "$fixout")
	got=$(delay_ns "$TMP/block.pb" "$fn")
	within10 "$got" "$truth"
	ok $? "$fn: xprof $(awk -v g="$got" 'BEGIN { printf "%.3f", g / 1e9 }') s delay, the fixture measured $(awk -v t="$truth" 'BEGIN { printf "%.3f", t / 1e9 }') s (within 10%)"
done
kept=$(delay_ns "$TMP/block.pb" wait_on_pipe -tagfocus=reason=read)
all=$(delay_ns "$TMP/block.pb" wait_on_pipe)
awk -v a="$all" -v k="$kept" 'BEGIN { exit !(a > 0 && k >= 0.95 * a) }'
ok $? "labels as xprof block's: wait_on_pipe under reason=read ($kept of $all ns)"

# go tool pprof fetches it itself
go tool pprof -top "$url/block?seconds=1" >"$TMP/top" 2>"$TMP/top.err"
rc=$?
[ "$rc" = 0 ] && grep -q '^Type: delay$' "$TMP/top" && grep -q 'wait_on_pipe' "$TMP/top"
ok $? "go tool pprof -top $url/block?seconds=1 works (delay, wait_on_pipe among the functions)" ||
	diag "exit $rc" "$(cat "$TMP/top.err")" "$(head -20 "$TMP/top")"

# one block profile at a time; a CPU profile and a heap walk meanwhile are
# served without waiting for it
refused_while_running block 4
t0=$(date +%s%N)
st=$(get "profile?seconds=1")
ms=$(ms_since "$t0")
[ "$st" = 200 ] && [ "$ms" -lt 2500 ] && go tool pprof -raw "$TMP/body" 2>/dev/null | grep -q '^Duration: 1'
ok $? "a CPU profile meanwhile: served in its own 1 s ($st, ${ms} ms)"
t0=$(date +%s%N)
st=$(get heap)
ms=$(ms_since "$t0")
[ "$st" = 200 ] && [ "$ms" -lt 1500 ]
ok $? "a heap request meanwhile: served at once ($st, ${ms} ms)"
wait "$long"
is "$(cat "$TMP/long.st")" 200 "the first block profile is answered"
go tool pprof -raw "$TMP/long.pb" 2>/dev/null | grep -q '^Duration: 4'
ok $? "... over its whole 4 s"
st=$(get "block?seconds=1")
is "$st" 200 "once it ended, a block profile is served again"

# what the router refuses, in one line
st=$(get "block?seconds=x")
is "$st $(cat "$TMP/body")" '400 invalid value for "seconds" - must be a positive integer' "block?seconds=x: Go's 400"
one_line_body
ok $? "... in one line"
st=$(get "mutex?seconds=0")
is "$st $(cat "$TMP/body")" '400 invalid value for "seconds" - must be a positive integer' "mutex?seconds=0: Go's 400"
st=$(get "block?seconds=61")
is "$st $(cat "$TMP/body")" "400 profile duration exceeds server's limit of 60 seconds (xprof serve --max-seconds)" \
	"block?seconds=61, over the cap: 400 as for profile"
running=$(thread_states "$pid" | tr -d '\n')
kill -0 "$pid" && no_thread_stopped "$pid"
ok $? "waiter runs on ($running)"

# SIGTERM: a block profile in flight ends early and is answered
term_during "block?seconds=20"
is "$rc $early" "0 200" "SIGTERM during block?seconds=20: the profile is answered, serve exits 0"
[ "$ms" -lt 10000 ] && pprof_check "$TMP/early.pb"
ok $? "... early (${ms} ms of 20 s), a valid profile"

# perf refused: the reason as the answer, the server runs on
if [ "$(id -u)" = 0 ] && command -v setpriv >/dev/null; then
	nobody_dir "$XPROF"
	printf '#!/bin/sh\nXPROF_CACHE_DIR=off exec setpriv --reuid=65534 --regid=65534 --clear-groups %s "$@"\n' \
		"$NOBODY_DIR/xprof" >"$NOBODY_DIR/as-nobody"
	chmod 755 "$NOBODY_DIR/as-nobody"
	XPROF=$NOBODY_DIR/as-nobody start_serve "$TMP/s2.err" -p "$pid"
	st=$(get "block?seconds=1")
	[ "$st" = 500 ] && one_line_body && grep -q 'operation not permitted\|perf_event_open refused' "$TMP/body"
	ok $? "as nobody, perf refused: 500 with the reason in one line ($st: $(cat "$TMP/body"))"
	st=$(get "")
	is "$st" 200 "... and the server runs on"
	kill -TERM "$srv"
	wait "$srv"
fi

# ---- mutex: lockers' waits -----------------------------------------------------
if [ "$(id -u)" != 0 ] || [ ! -e /sys/bus/event_source/devices/uprobe/type ]; then
	plan "$_tap_n"
	echo "# mutex left out: uprobes need root and the uprobe PMU"
	done_testing
fi
start_fixture ready "$FIX/lockers" "$TMP/waits"
read -r lpid holder_m _ holder_x <<<"$ready"
start_serve "$TMP/s3.err" -p "$lpid"
libc_text_anon() {
	awk '/ r-xp .*\/libc\.so\.6$/ { f = 1; next } f && /^Anonymous:/ { print $2; exit }' "/proc/$lpid/smaps"
}
watched_get "mutex?seconds=2" "$lpid" "$TMP/lwatch"
is "$st $(header Content-Disposition)" '200 attachment; filename="mutex"' "mutex?seconds=2 of a native program"
cp "$TMP/body" "$TMP/mutex.pb"
not_stopped_during "$TMP/lwatch"
ok $? "lockers was never stopped: TracerPid 0 and no thread in t or T at $polls polls during the request" ||
	diag "$(awk '$1 != 0 || $2 ~ /[tT]/' "$TMP/lwatch" | head -5)"
# the probes go after the answer, one grace period each, behind any other
# perf user of the machine: allow a minute
t_ans=$SECONDS
anon_at_answer=$(libc_text_anon)
while [ "$(libc_text_anon)" != 0 ] && [ $((SECONDS - t_ans)) -lt 60 ]; do sleep 0.1; done
is "$(libc_text_anon)" 0 "after the answer the probes go: libc's code is the file's again $((SECONDS - t_ans)) s later ($anon_at_answer kB copied at the answer)"
pprof_check "$TMP/mutex.pb"
ok $? "the profile is valid (CheckValid rules)"
go tool pprof -raw "$TMP/mutex.pb" >"$TMP/raw" 2>/dev/null
is "$(sed -n '/^Samples/{n;p;q}' "$TMP/raw")" "contentions/count delay/nanoseconds" "sample types as Go's mutex profile"
read -r t0 t1 < <(window_of "$TMP/mutex.pb")
rm -f "$TMP/waits"
kill -USR1 "$lpid"
for _ in $(seq 1 500); do [ -s "$TMP/waits" ] && break; sleep 0.01; done
tests/pprof_samples.pl "$TMP/mutex.pb" >"$TMP/samples"
diag "window $t0 $t1"
for f in lock_pthread_mutex lock_std_mutex; do
	want=$(lock_waits_ns "$TMP/waits" "$f" "$t0" "$t1")
	got=$(stack_delay_ns "$TMP/samples" "$f")
	within10 "$got" "$want"
	ok $? "$f: xprof's delay $((got / 1000000)) ms within 10% of the $((want / 1000000)) ms lockers measured"
done
# as mutex.t: an rwlock wait's spin around the futex wait is not counted
want=$(lock_waits_ns "$TMP/waits" lock_rwlock_read "$t0" "$t1")
got=$(stack_delay_ns "$TMP/samples" lock_rwlock_read)
awk -v g="$got" -v w="$want" 'BEGIN { exit !(w > 0 && g >= 0.75 * w && g <= 1.05 * w) }'
ok $? "lock_rwlock_read: xprof's delay $((got / 1000000)) ms is 75-105% of the $((want / 1000000)) ms lockers measured"
want=$(lock_waits_ns "$TMP/waits" lock_pthread_mutex "$t0" "$t1" "$holder_m")
got=$(stack_delay_ns "$TMP/samples" lock_pthread_mutex "holder_tid:[$holder_m]")
within10 "$got" "$want"
ok $? "waits held by holder-m ($holder_m): $((got / 1000000)) ms, lockers says $((want / 1000000)) ms"

# one mutex profile at a time
refused_while_running mutex 3
t0=$(date +%s%N)
st=$(get "block?seconds=1")
ms=$(ms_since "$t0")
[ "$st" = 200 ] && [ "$ms" -lt 2500 ]
ok $? "a block profile meanwhile: served in its own 1 s ($st, ${ms} ms)"
wait "$long"
is "$(cat "$TMP/long.st")" 200 "the first mutex profile is answered"
go tool pprof -top "$url/mutex?seconds=3" >"$TMP/top" 2>"$TMP/top.err"
grep -q 'lock_pthread_mutex' "$TMP/top"
ok $? "go tool pprof -top $url/mutex?seconds=3 works (it waits 4.5 s: the answer does not wait for the probes to go)" || diag "$(cat "$TMP/top.err")"
no_thread_stopped "$lpid" && [ "$(awk '/^TracerPid:/ { print $2 }' "/proc/$lpid/status")" = 0 ]
ok $? "lockers runs on, no tracer, no thread stopped"
is "$(awk '/^create_failures/ { print $2 }' "$TMP/waits")" 0 "pthread_create never failed under the probes"
# SIGTERM right after a mutex answer: serve's exit waits for its probes to go
anon_before=$(libc_text_anon)
t0=$(date +%s%N)
kill -TERM "$srv"
wait "$srv"
rc=$?
is "$rc $(libc_text_anon)" "0 0" "SIGTERM just after a mutex profile: exit 0 with its probes out ($anon_before kB copied before, $(ms_since "$t0") ms to exit)"

plan "$_tap_n"
done_testing
