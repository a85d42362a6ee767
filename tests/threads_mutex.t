#!/bin/bash
# Mutex owners and deadlocks: a thread blocked in pthread_mutex_lock shows
# the tid and name of the thread holding the mutex; two threads waiting for
# each other's mutexes are reported as a deadlock before the dump.
. "$(dirname "$0")/lib.sh"
need_ptrace

# parked: "locker" waits for lock_a, held by "holder"
start_fixture ready "$FIX/parked-O2"
pid=${ready%% *}
"$XPROF" threads -p "$pid" >"$TMP/parked.txt" 2>"$TMP/parked.err"
holder=$(awk '/^thread .*"holder"/ {print $2}' "$TMP/parked.txt")
line=$(grep '^thread .*"locker"' "$TMP/parked.txt")
echo "$line" | grep -q "waiting for mutex 0x[0-9a-f]* held by thread $holder \"holder\""
ok $? "locker shows lock_a held by thread $holder \"holder\"" || diag "$line"
grep '^thread .*"waiter"' "$TMP/parked.txt" | grep -vq 'waiting for mutex'
ok $? "a pthread_cond_wait waiter is not taken for a mutex waiter"
grep -q '^deadlock' "$TMP/parked.txt"
ok $((! $?)) "no deadlock reported where there is none"

# deadlock: dl-first holds a, waits b; dl-second holds b, waits a
start_fixture ready "$FIX/deadlock"
read -r pid tid_a tid_b addr_a addr_b <<<"$ready"
"$XPROF" threads -p "$pid" >"$TMP/dl.txt" 2>"$TMP/dl.err"
head -n 1 "$TMP/dl.txt" | grep -q '^deadlock'
ok $? "the deadlock is reported first" || diag "$(head -5 "$TMP/dl.txt")"
grep -q "^  thread $tid_a \"dl-first\" waits for mutex $addr_b held by thread $tid_b \"dl-second\"$" "$TMP/dl.txt"
ok $? "dl-first waits for mutex_b ($addr_b) held by dl-second" || diag "$(head -5 "$TMP/dl.txt")"
grep -q "^  thread $tid_b \"dl-second\" waits for mutex $addr_a held by thread $tid_a \"dl-first\"$" "$TMP/dl.txt"
ok $? "dl-second waits for mutex_a ($addr_a) held by dl-first"
sed -n '/^deadlock/,/^$/p' "$TMP/dl.txt" | grep -q bystander
ok $((! $?)) "the bystander is not part of the cycle"
grep -q 'deadlock found' "$TMP/dl.err"
ok $? "the summary names the deadlock"
plan "$_tap_n"
done_testing
