#!/bin/bash
# xprof threads -o: a pprof profile with one sample per thread, sample type
# threads/count, labels tid (num), thread (str), state (str), read back with
# go tool pprof -raw and -traces.
. "$(dirname "$0")/lib.sh"
need_ptrace
command -v go >/dev/null || { echo "Bail out! go missing (make deps)"; exit 1; }

start_fixture ready "$FIX/parked-O2" 20
pid=${ready%% *}
nthreads=$(ls /proc/"$pid"/task | wc -l)
out="$TMP/threads.pb.gz"
"$XPROF" threads -p "$pid" -o "$out" >"$TMP/stdout" 2>"$TMP/stderr"
ok $? "xprof threads -o exits 0" || diag "$(cat "$TMP/stderr")"
pprof_check "$out"
ok $? "the profile is valid (CheckValid rules) and go tool pprof reads it"
gzip -t "$out"
ok $? "the file is gzipped"
grep -q "wrote $out; open it with: go tool pprof -http=: $out" "$TMP/stderr"
ok $? "the summary says how to open it"
[ ! -s "$TMP/stdout" ]
ok $? "nothing on stdout when writing a profile"

go tool pprof -raw "$out" >"$TMP/raw" 2>&1
grep -A1 '^Samples:' "$TMP/raw" | grep -q '^threads/count$'
ok $? "sample type threads/count"
samples=$(awk '/^Samples:/ {on=1; next} /^Locations/ {on=0} on && /^ +1:/' "$TMP/raw" | wc -l)
is "$samples" "$nthreads" "one sample per thread ($nthreads)"
tids=$(grep -o 'tid:\[[0-9]*\]' "$TMP/raw" | tr -dc '0-9\n' | sort -n | tr '\n' ' ')
want=$(ls /proc/"$pid"/task | sort -n | tr '\n' ' ')
is "$tids" "$want" "the tid labels are the process's thread ids"
grep -q 'thread:\[holder\]' "$TMP/raw" && grep -q 'thread:\[pool\]' "$TMP/raw"
ok $? "thread name labels"
grep -q 'state:\[sleeping\]' "$TMP/raw" && grep -q 'state:\[running\]' "$TMP/raw"
ok $? "state labels"

go tool pprof -traces "$out" >"$TMP/traces" 2>&1
grep -q 'hold_lock' "$TMP/traces" && grep -q 'start_thread' "$TMP/traces"
ok $? "-traces shows symbolized stacks"
go tool pprof -top -nodecount=200 "$out" 2>/dev/null | grep -q 'pool_wait'
ok $? "-top shows the pool's function"
# the pool's 20 threads share one stack: 20 samples through pool_wait
n=$(go tool pprof -raw "$out" 2>/dev/null | grep -c 'pool\]')
is "$n" 20 "20 samples labelled thread=pool"
grep -q 'Mappings' "$TMP/raw" && grep -A30 '^Mappings' "$TMP/raw" | grep -q 'libc.so.6'
ok $? "mappings name their files"
grep -A30 '^Mappings' "$TMP/raw" | grep 'parked-O2' | grep -q '[0-9a-f]\{40\}'
ok $? "mappings carry the build ID"
plan "$_tap_n"
done_testing
