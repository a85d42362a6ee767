#!/bin/bash
# xprof serve's delta profiles of a Go program: heap, allocs, block and
# mutex?seconds=N, as net/http/pprof answers them (the runtime's profile
# now minus N seconds ago).  gochurn allocates, blocks and contends a mutex
# at a steady rate and logs each event itself: each delta must hold what
# it logged in the profile's window, its startup stacks (idle since) must
# be absent, and the cumulative profile must hold more.  Then go tool pprof
# on a URL, one delta of a kind at a time, Go's 400s, the cap, and SIGTERM
# answering a delta early.
. "$(dirname "$0")/lib.sh"
need_ptrace
command -v go >/dev/null || { echo "Bail out! go missing (make deps)"; exit 1; }
command -v curl >/dev/null || { echo "Bail out! curl missing (make deps)"; exit 1; }
export PPROF_TMPDIR=$TMP/pprof

# samples FILE: the profile's samples (tests/pprof_samples.pl) in FILE.s
samples() { perl tests/pprof_samples.pl "$1" >"$1.s"; }
# value_of FILE FUNCTION INDEX: the sum of value INDEX (1-based) of the
# samples whose stack goes through FUNCTION (samples FILE first)
value_of() {
	awk -F '\t' -v f=";$2;" -v i="$3" \
		'index(";" $1 ";", f) { split($2, v, " "); s += v[i] } END { printf "%.0f", s }' "$1.s"
}
# logged LOG T0 T1: "COUNT SUM MAX" of the LOG lines "T VALUE" with T in [T0, T1]
logged() {
	awk -v a="$2" -v b="$3" '$1 >= a && $1 <= b { n++; s += $2; if ($2 > m) m = $2 }
		END { printf "%d %.0f %.0f\n", n, s, m }' "$1"
}
# total_at LOG T: the TOTAL of the last LOG line "T TOTAL" at or before T
total_at() { awk -v t="$2" '$1 <= t { v = $2 } END { print v + 0 }' "$1"; }
# delta_window FILE: "T0 T1" of a delta profile: as Go's, its Time is the
# second read's, its Duration the time between the reads
delta_window() {
	window_of "$1" | awk -v OFMT=%d '{ printf "%d %d\n", 2 * $1 - $2, $1 }'
}
# near GOT WANT SLACK: |GOT - WANT| <= SLACK
near() { awk -v g="$1" -v w="$2" -v s="$3" 'BEGIN { d = g - w; if (d < 0) d = -d; exit !(g != "" && d <= s) }'; }

dir=$TMP/churn
mkdir -p "$dir"
start_fixture ready "$FIX/gochurn" "$dir"
pid=${ready%% *}
start_serve "$TMP/s.err" -p "$pid"
sleep 1.5 # some churn before the window: the cumulative profiles hold more

# ---- heap: churnAlloc's objects against alloc.log ------------------------------
st=$(get "heap?seconds=2")
is "$st $(header Content-Disposition)" '200 attachment; filename="heap-delta"' "heap?seconds=2 of a Go program: 200, named as Go names a delta"
cp "$TMP/body" "$TMP/heap.pb"
pprof_check "$TMP/heap.pb"
ok $? "... a valid profile"
go tool pprof -comments "$TMP/heap.pb" 2>/dev/null | grep -q '^xprof: delta profile: what the runtime recorded in the 2\.[0-9]* s between two reads (seconds=2)$'
ok $? "... its comment says it is a delta over 2 s" || diag "$(go tool pprof -comments "$TMP/heap.pb" 2>&1)"
pauses=$(go tool pprof -comments "$TMP/heap.pb" 2>/dev/null | sed -n 's/^xprof: pid [0-9]* was stopped \([0-9.]*\) ms and \([0-9.]*\) ms for the two reads$/\1 \2/p')
[ -n "$pauses" ]
ok $? "... and another how long each of the two reads stopped the program ($pauses ms)"
go tool pprof -raw "$TMP/heap.pb" 2>/dev/null | grep -q '^alloc_objects/count alloc_space/bytes inuse_objects/count inuse_space/bytes$' &&
	go tool pprof -raw "$TMP/heap.pb" 2>/dev/null | grep -q '^PeriodType: space bytes$'
ok $? "... Go's heap sample types and period type"
read -r t0 t1 < <(delta_window "$TMP/heap.pb")
samples "$TMP/heap.pb"
got=$(value_of "$TMP/heap.pb" main.churnAlloc 1)
want=$(($(total_at "$dir/alloc.log" "$t1") - $(total_at "$dir/alloc.log" "$t0")))
near "$got" "$want" 100
ok $? "churnAlloc's objects in the delta ($got) are what it logged in the window ($want, within one burst of 100)"
is "$(value_of "$TMP/heap.pb" main.churnAlloc 2)" "$((got * 4096))" "... of 4096 bytes each (alloc_space)"
is "$(value_of "$TMP/heap.pb" main.onceAlloc 1)" 0 "onceAlloc, idle since the start, is absent from the delta"
st=$(get heap)
cp "$TMP/body" "$TMP/heapcum.pb"
samples "$TMP/heapcum.pb"
cum=$(value_of "$TMP/heapcum.pb" main.churnAlloc 1)
[ "$st" = 200 ] && [ "$(value_of "$TMP/heapcum.pb" main.onceAlloc 1)" -ge 2000 ] &&
	awk -v d="$got" -v c="$cum" 'BEGIN { exit !(d > 0 && d < 0.75 * c) }'
ok $? "the cumulative heap holds onceAlloc's 2000 and more churn ($cum objects) than the delta ($got)"

# ---- allocs: the same, alloc_space first -------------------------------------------
st=$(get "allocs?seconds=1")
is "$st $(header Content-Disposition)" '200 attachment; filename="allocs-delta"' "allocs?seconds=1"
go tool pprof -top "$TMP/body" 2>/dev/null | grep -q '^Type: alloc_space$' &&
	go tool pprof -top "$TMP/body" 2>/dev/null | grep -q 'main\.churnAlloc$'
ok $? "... alloc_space by default, churnAlloc in it"

# ---- block: recvWait's waits against block.log -------------------------------
st=$(get "block?seconds=2")
is "$st $(header Content-Disposition)" '200 attachment; filename="block-delta"' "block?seconds=2 of a Go program"
cp "$TMP/body" "$TMP/block.pb"
pprof_check "$TMP/block.pb"
ok $? "... a valid profile"
go tool pprof -raw "$TMP/block.pb" 2>/dev/null | grep -A1 '^Samples' | grep -q 'contentions/count delay/nanoseconds'
ok $? "... Go's sample types contentions/count delay/nanoseconds"
read -r t0 t1 < <(delta_window "$TMP/block.pb")
read -r n sum max < <(logged "$dir/block.log" "$t0" "$t1")
samples "$TMP/block.pb"
got=$(value_of "$TMP/block.pb" main.recvWait 2)
near "$got" "$sum" "$(awk -v m="$max" -v s="$sum" 'BEGIN { printf "%.0f", m + 0.05 * s }')" && [ "$n" -ge 5 ]
ok $? "recvWait's delay in the delta ($got ns) is what it logged in the window ($sum ns in $n waits; within one wait + 5%)"
near "$(value_of "$TMP/block.pb" main.recvWait 1)" "$n" 1
ok $? "... in as many contentions ($(value_of "$TMP/block.pb" main.recvWait 1), logged $n)"
is "$(value_of "$TMP/block.pb" main.onceBlock 1)" 0 "onceBlock, idle since the start, is absent from the delta"
st=$(get block)
cp "$TMP/body" "$TMP/blockcum.pb"
samples "$TMP/blockcum.pb"
cum=$(value_of "$TMP/blockcum.pb" main.recvWait 2)
[ "$(value_of "$TMP/blockcum.pb" main.onceBlock 1)" -ge 3 ] && awk -v d="$got" -v c="$cum" 'BEGIN { exit !(d > 0 && d < 0.75 * c) }'
ok $? "the cumulative block profile has onceBlock's 3 waits and more of recvWait ($cum ns) than the delta"

# ---- mutex: holdUnlock's contended unlocks against mutex.log ---------------------
st=$(get "mutex?seconds=2")
is "$st $(header Content-Disposition)" '200 attachment; filename="mutex-delta"' "mutex?seconds=2 of a Go program"
cp "$TMP/body" "$TMP/mutex.pb"
pprof_check "$TMP/mutex.pb"
ok $? "... a valid profile"
read -r t0 t1 < <(delta_window "$TMP/mutex.pb")
read -r n sum max < <(logged "$dir/mutex.log" "$t0" "$t1")
samples "$TMP/mutex.pb"
got=$(value_of "$TMP/mutex.pb" main.holdUnlock 2)
near "$got" "$sum" "$(awk -v m="$max" -v s="$sum" 'BEGIN { printf "%.0f", m + 0.05 * s }')" && [ "$n" -ge 5 ]
ok $? "holdUnlock's delay in the delta ($got ns) is what the waiters logged in the window ($sum ns in $n waits)"
is "$(value_of "$TMP/mutex.pb" main.onceUnlock 1)" 0 "onceUnlock, idle since the start, is absent from the delta"
st=$(get mutex)
cp "$TMP/body" "$TMP/mutexcum.pb"
samples "$TMP/mutexcum.pb"
[ "$(value_of "$TMP/mutexcum.pb" main.onceUnlock 1)" -ge 3 ] &&
	awk -v d="$got" -v c="$(value_of "$TMP/mutexcum.pb" main.holdUnlock 2)" 'BEGIN { exit !(d > 0 && d < 0.75 * c) }'
ok $? "the cumulative mutex profile has onceUnlock's 3 and more of holdUnlock than the delta"

# ---- go tool pprof on the URL ---------------------------------------------------
go tool pprof -top -sample_index=alloc_objects "$url/heap?seconds=1" >"$TMP/top" 2>"$TMP/top.err"
# (pprof prints a window it rounds to 1 s as "1s", not "1.0s": r2 at load
# 10 failed on "Duration: 1s")
[ $? = 0 ] && grep -q 'main\.churnAlloc$' "$TMP/top" && grep -qE '^Duration: 1(\.[0-9]+)?s,' "$TMP/top"
ok $? "go tool pprof -top -sample_index=alloc_objects $url/heap?seconds=1 works (churnAlloc, Duration 1.x s)" || diag "$(cat "$TMP/top" "$TMP/top.err")"

# ---- one of a kind at a time; the others meanwhile -------------------------------
curl -s --max-time 30 -o "$TMP/long.pb" -w '%{http_code}' "$url/heap?seconds=3" >"$TMP/long.st" &
long=$!
sleep 1
t=$(date +%s%N)
st=$(get "heap?seconds=1")
ms=$((($(date +%s%N) - t) / 1000000))
is "$st $(cat "$TMP/body")" "500 heap profiling already in use: one heap?seconds=N at a time (try again when it ends)" \
	"a second heap?seconds=N while one runs: refused"
[ "$ms" -lt 1500 ]
ok $? "... at once (${ms} ms)"
t=$(date +%s%N)
st=$(get heap)
ms=$((($(date +%s%N) - t) / 1000000))
[ "$st" = 200 ] && [ "$ms" -lt 1500 ]
ok $? "heap without seconds meanwhile: answered at once ($st, ${ms} ms)"
wait "$long"
is "$(cat "$TMP/long.st")" 200 "... and the first delta is answered"

# ---- bad requests: Go's 400s ---------------------------------------------------------
st=$(get "heap?seconds=0")
is "$st $(cat "$TMP/body")" '400 invalid value for "seconds" - must be a positive integer' "heap?seconds=0: Go's 400"
st=$(get "mutex?seconds=x")
is "$st $(cat "$TMP/body")" '400 invalid value for "seconds" - must be a positive integer' "mutex?seconds=x: Go's 400"
st=$(get "allocs?seconds=61")
is "$st $(cat "$TMP/body")" "400 profile duration exceeds server's limit of 60 seconds (xprof serve --max-seconds)" \
	"allocs?seconds=61, over the cap: 400"
st=$(get "heap?seconds=1&debug=1")
is "$st $(cat "$TMP/body")" '400 seconds and debug params are incompatible' "heap?seconds=1&debug=1: Go's 400"
st=$(get "mutex?seconds=1&debug=1")
is "$st $(cat "$TMP/body")" '400 seconds and debug params are incompatible' "mutex?seconds=1&debug=1: the same"

# ---- SIGTERM: a delta in flight is answered early ------------------------------------
term_during "block?seconds=20"
is "$rc $early" "0 200" "SIGTERM during block?seconds=20: answered, serve exits 0"
[ "$ms" -lt 10000 ] && pprof_check "$TMP/early.pb" &&
	go tool pprof -comments "$TMP/early.pb" 2>/dev/null | grep -q 'ended early: the server is stopping'
ok $? "... early (${ms} ms of 20 s), a valid profile that says so"
kill -0 "$pid" && no_thread_stopped "$pid"
ok $? "gochurn runs on, no thread stopped"

plan "$_tap_n"
done_testing
