#!/bin/bash
# xprof serve: net/http/pprof's endpoints for a live process, fetched by
# real clients (go tool pprof and curl) and checked as the file tests check
# the commands' profiles: CPU shares of cpuburn (1:2:3), heapfix's exact
# heap, goparked's goroutine dump against the runtime's own.  Then the
# safety list one by one: loopback only without a token, the token, one CPU
# profile at a time, the seconds cap, a target that exits, following a
# name across restarts, SIGTERM, too many connections, slow clients, big
# requests.  Only loopback addresses are ever bound.
. "$(dirname "$0")/lib.sh"
need_ptrace
command -v go >/dev/null || { echo "Bail out! go missing (make deps)"; exit 1; }
command -v curl >/dev/null || { echo "Bail out! curl missing (make deps)"; exit 1; }
export PPROF_TMPDIR=$TMP/pprof

# running PID: alive, in no stop, still getting CPU or sleeping as before
running() { kill -0 "$1" 2>/dev/null && no_thread_stopped "$1"; }

# ---- CPU: go tool pprof against cpuburn; a second profile meanwhile ------
start_fixture ready "$FIX/cpuburn" 3
cb=${ready%% *}
start_serve "$TMP/s1.err" -p "$cb"
grep -q "^xprof: serving pid $cb (cpuburn) on http://127.0.0.1:[0-9]*/debug/pprof/$" "$TMP/s1.err"
ok $? "serve reports: serving pid $cb (cpuburn) on $url/"

# libmicrohttpd is serve's alone: linked into xprof, its nine libraries
# (gnutls and what it needs) were loaded by every command
readelf -d "$XPROF" | grep -q 'NEEDED.*libmicrohttpd'
ok $((!$?)) "xprof does not link libmicrohttpd: serve opens it"
mkdir -p "$TMP/badlib" && : >"$TMP/badlib/libmicrohttpd.so.12"
LD_LIBRARY_PATH=$TMP/badlib timeout 20 "$XPROF" serve -p "$cb" --listen 127.0.0.1:0 >/dev/null 2>"$TMP/nolib.err"
rc=$?
is "$rc $(cat "$TMP/nolib.err")" \
	"2 xprof: serve: cannot load libmicrohttpd.so.12, the HTTP server's library (install libmicrohttpd12)" \
	"a libmicrohttpd that cannot be loaded: one line, exit 2"

go tool pprof -proto "$url/profile?seconds=5" >"$TMP/cpu.pb" 2>"$TMP/pprof.err" &
pp=$!
sleep 1
t0=$(date +%s%N)
st=$(get "profile?seconds=1")
ms=$((($(date +%s%N) - t0) / 1000000))
is "$st $(cat "$TMP/body")" "500 Could not enable CPU profiling: cpu profiling already in use" \
	"a second CPU profile gets net/http/pprof's answer"
[ "$ms" -lt 2500 ]
ok $? "... at once (${ms} ms), not after the first ends"
is "$(header X-Go-Pprof)" 1 "... with Go's X-Go-Pprof: 1 header"
wait "$pp"
ok $? "go tool pprof -proto $url/profile?seconds=5 succeeds" || diag "$(cat "$TMP/pprof.err")"
pprof_check "$TMP/cpu.pb"
ok $? "the profile is valid (CheckValid rules)"
burn_shares "$TMP/cpu.pb" 4
go tool pprof -raw "$TMP/cpu.pb" 2>/dev/null | grep -q '^Duration: 5'
ok $? "the profile lasts the 5 s asked for"

st=$(get "profile?seconds=1")
is "$st" 200 "once the first ends, a CPU profile is served again"
is "$(header Content-Type)" application/octet-stream "... as application/octet-stream"
is "$(header Content-Disposition)" 'attachment; filename="profile"' "... with Go's Content-Disposition"
st=$(get "profile?seconds=61")
is "$st" 400 "seconds=61, over the default cap of 60: 400"
grep -q "exceeds server's limit of 60 seconds" "$TMP/body"
ok $? "... saying so: $(cat "$TMP/body")"

# ---- the index and the other paths ----------------------------------------
st=$(get "")
is "$st $(header Content-Type)" "200 text/html; charset=utf-8" "the index is HTML"
grep -q "pid $cb (cpuburn)" "$TMP/body" && grep -q "href='profile'" "$TMP/body" &&
	grep -q "href='heap'" "$TMP/body" && grep -q "href='goroutine?debug=1'" "$TMP/body" &&
	grep -q "href='threadcreate?debug=1'" "$TMP/body"
ok $? "it names the target and links profile, heap and goroutine"
! grep -q "href='allocs'" "$TMP/body"
ok $? "it offers no allocs profile for a native program (block and mutex: tests/serve_collect.t)"
st=$(curl -s -o /dev/null -w '%{http_code} %{redirect_url}' "${url%/pprof}/pprof")
is "$st" "301 $url/" "/debug/pprof redirects to /debug/pprof/, as Go's mux does"
st=$(get cmdline)
cmp -s "$TMP/body" <(head -c -1 /proc/"$cb"/cmdline)
ok $? "cmdline: the target's arguments joined by NUL ($st)"
st=$(get nosuch)
is "$st $(cat "$TMP/body")" "404 Unknown profile" "an unknown profile: Go's 404 Unknown profile"
st=$(get allocs)
is "$st" 404 "allocs of a native program: 404"
st=$(get "block?debug=1")
is "$st" 501 "block?debug=1 of a native program: 501 ($(cat "$TMP/body"))"
st=$(get "heap?seconds=x")
is "$st $(cat "$TMP/body")" '400 invalid value for "seconds" - must be a positive integer' "heap?seconds=x: Go's 400"
st=$(get "heap?seconds=1")
[ "$st" = 400 ] && grep -q '^"seconds" parameter is not supported for this profile type (pid [0-9]* (cpuburn) is not a Go program' "$TMP/body"
ok $? "heap?seconds=1 of a native program: 400, no delta of glibc's heap ($(cat "$TMP/body"))"
st=$(curl -s -o /dev/null -w '%{http_code}' -X POST "$url/heap")
is "$st" 405 "POST: 405"
st=$(curl -s -o /dev/null -w '%{http_code}' -X GET --data-binary 'x=1' "$url/")
is "$st" 413 "a request with a body: 413"
st=$(curl -s -o /dev/null -w '%{http_code}' -H "X-Big: $(head -c 20000 /dev/zero | tr '\0' a)" "$url/")
[ "$st" -ge 400 ] && [ "$st" -lt 500 ]
ok $? "a request head over 16 KiB is refused ($st)"
st=$(get "goroutine?debug=2")
is "$st $(header Content-Type)" "200 text/plain; charset=utf-8" "goroutine?debug=2 is text"
grep -q '^thread [0-9]* "burn-0"' "$TMP/body" && grep -q 'burn_[abc]' "$TMP/body"
ok $? "... with every thread's stack (burn-0 in burn_a/b/c)"
st=$(get "goroutine?debug=1")
is "$st $(head -1 "$TMP/body")" "200 goroutine profile: total 4" "goroutine?debug=1: runtime/pprof's count text, one per thread (main + 3 burn)"
is "$(awk '/^[0-9]+ @ 0x/ { n += $1 } END { print n }' "$TMP/body")" 4 "... the counts of its stacks sum to 4"
grep -q '^#	0x[0-9a-f]*	run_slices+0x[0-9a-f]*	/[^	]*/fixtures/cpuburn.c:[0-9]*$' "$TMP/body" &&
	grep -q '^#	0x[0-9a-f]*	main+0x[0-9a-f]*	/[^	]*/fixtures/cpuburn.c:105$' "$TMP/body"
ok $? "... frames as #	PC	FUNCTION+OFFSET	FILE:LINE (run_slices, main at cpuburn.c:105)" || diag "$(head -20 "$TMP/body")"
st=$(get "threadcreate?debug=1")
is "$st $(head -1 "$TMP/body")" "200 threadcreate profile: total 4" "threadcreate?debug=1: every thread counted by where it started"
grep -A4 '^3 @ 0x' "$TMP/body" | grep -q '	worker+0x' && grep -A4 '^1 @ 0x' "$TMP/body" | grep -q '	main+0x'
ok $? "... 3 from worker (via start_thread), 1 from main" || diag "$(cat "$TMP/body")"
st=$(get threadcreate)
pprof_check "$TMP/body"
ok $? "threadcreate as a profile ($st), valid"
st=$(get goroutine)
is "$st" 200 "goroutine (pprof)"
pprof_check "$TMP/body"
ok $? "... a valid profile"
is "$(go tool pprof -raw "$TMP/body" 2>/dev/null | grep -c 'thread:\[burn-')" 3 "... one sample per burn thread"

# ---- the target exits: 410, the server runs on ---------------------------
kill "$cb"
wait "$cb" 2>/dev/null
st=$(get heap)
is "$st" 410 "the target exited: heap answers 410"
grep -q "pid $cb (cpuburn) has exited" "$TMP/body"
ok $? "... with the reason: $(cat "$TMP/body")"
st=$(get "")
is "$st" 410 "... and so does the index"
kill -0 "$srv"
ok $? "the server keeps running"

# ---- SIGTERM during a profile: answered early, target untouched, exit 0 --
start_fixture ready "$FIX/cpuburn" 2
cb=${ready%% *}
start_serve "$TMP/s2.err" -p "$cb"
term_during "profile?seconds=20"
is "$rc" 0 "SIGTERM: xprof serve exits 0"
is "$early" 200 "the CPU profile in flight is answered (after ${ms} ms of 20 s)"
[ "$ms" -lt 10000 ]
ok $? "... early, not after its 20 s"
pprof_check "$TMP/early.pb"
ok $? "... with a valid profile"
running "$cb"
ok $? "the target runs on, no thread left stopped"
grep -q 'stopped after' "$TMP/s2.err"
ok $? "serve says why it stopped: $(tail -1 "$TMP/s2.err")"

# ---- heap: heapfix's exact totals ----------------------------------------
start_fixture ready "$FIX/heapfix"
read -r hp held held_b leaked leaked_b internal internal_b <<<"$ready"
start_serve "$TMP/s3.err" -p "$hp"
st=$(get heap)
is "$st $(header Content-Disposition)" '200 attachment; filename="heap"' "heap of a glibc program"
pprof_check "$TMP/body"
ok $? "... a valid profile"
read -r count bytes <<<"$(go tool pprof -raw "$TMP/body" 2>/dev/null | awk '/^Samples/ { on = 1; next } /^Locations/ { on = 0 }
	on && $2 ~ /:$/ { c += $1; sub(/:/, "", $2); b += $2 } END { print c + 0, b + 0 }')"
is "$count $bytes" "$((held + leaked + internal)) $((held_b + leaked_b + internal_b))" \
	"... with heapfix's in-use blocks and bytes, exactly"
running "$hp"
ok $? "... and heapfix left running"

# ---- the token -----------------------------------------------------------
"$XPROF" serve -p "$hp" --listen 0.0.0.0:0 2>"$TMP/nt.err"
rc=$?
is "$rc" 64 "a non-loopback address without --token is refused (exit 64)"
grep -q "refusing to listen on 0.0.0.0:0 without --token" "$TMP/nt.err"
ok $? "... saying so: $(cat "$TMP/nt.err")"
printf 'short\n' >"$TMP/tok.short"
chmod 600 "$TMP/tok.short"
"$XPROF" serve -p "$hp" --listen 127.0.0.1:0 --token "$TMP/tok.short" 2>"$TMP/ts.err"
is "$?" 2 "a token under 16 characters is refused: $(cat "$TMP/ts.err")"
tok=$(head -c 24 /dev/urandom | base64 | tr -d '/+=')
printf '%s\n' "$tok" >"$TMP/tok"
chmod 644 "$TMP/tok"
"$XPROF" serve -p "$hp" --listen 127.0.0.1:0 --token "$TMP/tok" 2>"$TMP/tp.err"
is "$?" 2 "a token file others can read is refused: $(cat "$TMP/tp.err")"
chmod 600 "$TMP/tok"
start_serve "$TMP/s4.err" -p "$hp" --token "$TMP/tok"
st=$(get "")
is "$st $(header WWW-Authenticate)" '401 Bearer realm="xprof"' "no token: 401 with a Bearer challenge"
st=$(get "" -H "Authorization: Bearer ${tok}x")
is "$st" 401 "a wrong token: 401"
st=$(get "" -H "Authorization: Bearer ${tok:0:10}")
is "$st" 401 "a prefix of the token: 401"
st=$(get cmdline -H "Authorization: Bearer $tok")
is "$st" 200 "the right token: 200"

# ---- connections: the cap, slow clients ------------------------------------
start_serve "$TMP/s5.err" -p "$hp" --max-connections 2 --timeout 1
port=${url#http://127.0.0.1:}
port=${port%%/*}
exec 5<>/dev/tcp/127.0.0.1/"$port" 6<>/dev/tcp/127.0.0.1/"$port"
st=$(curl -s --max-time 3 -o /dev/null -w '%{http_code}' "$url/cmdline")
is "$st" 000 "with --max-connections 2 and two open, a third connection is closed unanswered"
exec 5>&- 6>&-
sleep 0.2
st=$(curl -s --max-time 3 -o /dev/null -w '%{http_code}' "$url/cmdline")
is "$st" 200 "once they close, requests are answered again"
exec 5<>/dev/tcp/127.0.0.1/"$port"
printf 'GET /debug/pprof/cmdline HTTP/1.1\r\n' >&5
t0=$(date +%s%N)
timeout 5 cat <&5 >/dev/null
ms=$((($(date +%s%N) - t0) / 1000000))
exec 5>&-
[ "$ms" -lt 4000 ]
ok $? "a client that stalls mid-request is disconnected after --timeout 1 (${ms} ms)"
# Ctrl-Z: a suspended server would keep a target it is stopping stopped
# (the stopping thread holds SIGTSTP, the others would take it)
kill -TSTP "$srv"
sleep 0.3
state=$(awk '{ print $3 }' "/proc/$srv/stat")
st=$(curl -s --max-time 3 -o /dev/null -w '%{http_code}' "$url/cmdline")
[ "$state" != T ] && [ "$st" = 200 ]
ok $? "SIGTSTP does not suspend the server (state $state, answers $st)"
kill -CONT "$srv"
kill -TERM "$srv"
wait "$srv"
is "$?" 0 "SIGTERM with no request in flight: exit 0"

# ---- follow a name across restarts ----------------------------------------
cp "$FIX/cpuburn" "$TMP/xpsv$$"
name=$(head -c 15 <<<"xpsv$$")
start_fixture ready "$TMP/xpsv$$" 1
p1=${ready%% *}
start_serve "$TMP/s6.err" --name "$name"
st=$(get "")
grep -q "pid $p1 ($name)" "$TMP/body"
ok $? "--name $name serves pid $p1 ($st)"
kill "$p1"
wait "$p1" 2>/dev/null
st=$(get "")
is "$st" 404 "once it exits and none runs: 404 ($(cat "$TMP/body"))"
start_fixture ready "$TMP/xpsv$$" 1
p2=${ready%% *}
st=$(get "")
grep -q "pid $p2 ($name)" "$TMP/body"
ok $? "the next $name (pid $p2) is found and served ($st)"
# an instance that has exited but is not reaped (its parent does not wait)
# is a zombie, and older than the next one: the next one is served
kill "$p2"
wait "$p2" 2>/dev/null
perl -e '$| = 1; $p = fork(); if (!$p) { exec @ARGV; exit 127 } sleep 60' "$TMP/xpsv$$" 1 >"$TMP/zombie.out" 2>&1 &
zparent=$!
_fixture_pids="$_fixture_pids $zparent"
for i in $(seq 1 500); do grep -q '^ready' "$TMP/zombie.out" && break; sleep 0.02; done
zp=$(sed -n 's/^ready \([0-9]*\).*/\1/p' "$TMP/zombie.out" | head -1)
kill "$zp"
for i in $(seq 1 100); do [ "$(awk '{ print $3 }' "/proc/$zp/stat" 2>/dev/null)" = Z ] && break; sleep 0.02; done
start_fixture ready "$TMP/xpsv$$" 1
p3=${ready%% *}
st=$(get "")
grep -q "pid $p3 ($name)" "$TMP/body"
ok $? "with an older $name left a zombie (pid $zp, state $(awk '{ print $3 }' "/proc/$zp/stat" 2>/dev/null)), the live one (pid $p3) is served ($st: $(grep -o 'pid [0-9]* ([^)]*)' "$TMP/body" | head -1))"

# ---- the kept modules follow an exec of the same process ----------------------
# (hostile execs at the SIGUSR1 sent after the first dump: 2.5 s could run
# out before the server and its first dump on a loaded machine)
start_fixture ready "$FIX/hostile" exec usr1 "$FIX/cpuburn" 1
hp2=${ready%% *}
start_serve "$TMP/s8.err" -p "$hp2"
st=$(get "goroutine?debug=2")
grep -q hostile_spin "$TMP/body"
ok $? "before its exec, the dump names hostile_spin ($st)" || diag "$(head -c 300 "$TMP/body")"
kill -USR1 "$hp2"
for i in $(seq 1 100); do [ "$(cat /proc/"$hp2"/comm 2>/dev/null)" = cpuburn ] && break; sleep 0.05; done
sleep 0.3
st=$(get "goroutine?debug=2")
grep -q 'burn_[abc]' "$TMP/body" && ! grep -q hostile_spin "$TMP/body"
ok $? "after it exec'd cpuburn, the same server names burn_a/b/c: its modules were rebuilt ($st)" || diag "$(head -12 "$TMP/body")"
st=$(get "profile?seconds=1")
go tool pprof -top "$TMP/body" 2>/dev/null | grep -q 'burn_[abc]'
ok $? "... and so does a CPU profile ($st)"
kill -TERM "$srv"
wait "$srv"

# ---- Go: goroutine?debug=2 equals the runtime's own dump --------------------
dir="$TMP/goparked"
mkdir -p "$dir"
start_fixture ready "$FIX/goparked" "$dir"
gp=${ready%% *}
start_serve "$TMP/s7.err" --cmdline "goparked $dir\$"
grep -q "serving pid $gp (goparked)" "$TMP/s7.err"
ok $? "--cmdline finds goparked (pid $gp)"
st=$(get "goroutine?debug=2")
is "$st" 200 "goroutine?debug=2 of a Go program"
cp "$TMP/body" "$dir/x.txt"
blocks "$dir/goroutines.txt" | grep -v '^goroutine [0-9]* \[\(running\|runnable\)' >"$dir/go.blocks"
blocks "$dir/x.txt" >"$dir/x.blocks"
waiting_missing "$dir/go.blocks" "$dir/x.blocks" "not served:"
ok $((n < 11 || missing > 0)) "all $n waiting goroutines of Go's own dump are served identically ($missing missing)"
st=$(get "")
grep -q "href='block'" "$TMP/body" && grep -q "href='mutex'" "$TMP/body"
ok $? "the index of a Go program offers block and mutex"
st=$(get "goroutine?debug=1")
total=$(sed -n 's/^goroutine profile: total \([0-9]*\)$/\1/p' "$TMP/body")
is "$total" "$(grep -c '^goroutine [0-9]* \[' "$dir/x.txt")" "goroutine?debug=1 counts every goroutine of the debug=2 dump"
grep -q '^# labels: {"shard":"7", "worker":"labeled"}$' "$TMP/body"
ok $? "... with the goroutine's pprof labels as runtime/pprof prints them" || diag "$(grep labels "$TMP/body")"
st=$(get allocs)
is "$st" 200 "allocs of a Go program"
go tool pprof -raw "$TMP/body" 2>/dev/null | grep -q '^DefaultSampleType: alloc_space$' ||
	go tool pprof -top "$TMP/body" 2>/dev/null | grep -q '^Type: alloc_space$'
ok $? "... the heap profile with alloc_space as its default type, as Go's allocs"
st=$(get mutex)
is "$st $(header Content-Disposition)" '200 attachment; filename="mutex"' "mutex of a Go program"
go tool pprof -raw "$TMP/body" 2>/dev/null | grep -A1 '^Samples' | grep -q 'contentions/count delay/nanoseconds'
ok $? "... Go's sample types contentions/count delay/nanoseconds"
st=$(get "block?seconds=1")
is "$st $(header Content-Disposition)" '200 attachment; filename="block-delta"' \
	"block?seconds=1 of a Go program: Go's delta (tests/serve_godelta.t checks its figures)"
pprof_check "$TMP/body" &&
	go tool pprof -raw "$TMP/body" 2>/dev/null | awk '/^Samples:/ { s = 1; next } /^Locations/ { s = 0 } s && /:/ { n++ } END { exit n > 0 }'
ok $? "... valid, and without samples: nothing of goparked blocked in that second"
running "$gp"
ok $? "goparked left running"

plan "$_tap_n"
done_testing
