#!/bin/bash
# xprof block on a real multi-threaded server from Debian: mariadbd, started
# here in a temporary data directory on a Unix socket (no network), under a
# bounded load: one client runs SELECT SLEEP(30) (ended with the test),
# another inserts 300 rows.  The sleeping connection's thread waits in
# Item_func_sleep::val_int (a timed condition wait) through xprof's whole
# window: its delay there is the window's length (within 10%).  The server is
# never stopped, its stacks are symbolized (do_command, the InnoDB threads),
# and it answers queries afterwards.
. "$(dirname "$0")/lib.sh"
need_ptrace
command -v go >/dev/null || { echo "Bail out! go missing (make deps)"; exit 1; }
for t in /usr/sbin/mariadbd /usr/bin/mariadb-install-db /usr/bin/mariadb; do
	[ -x "$t" ] || { echo "Bail out! $t missing (make deps installs mariadb-server)"; exit 1; }
done
[ "$(id -u)" = 0 ] || skip_all "not root: mariadbd's data directory and perf's kernel access need it"

D=$TMP/mariadb
mkdir -p "$D"
mariadb-install-db --no-defaults --datadir="$D/data" --user=root --skip-test-db \
	--auth-root-authentication-method=normal >"$TMP/install.log" 2>&1 ||
	{ echo "Bail out! mariadb-install-db failed: $(tail -3 "$TMP/install.log")"; exit 1; }
/usr/sbin/mariadbd --no-defaults --datadir="$D/data" --socket="$D/sock" --skip-networking --user=root \
	--pid-file="$D/pid" --log-error="$D/err.log" --innodb-buffer-pool-size=16M --skip-grant-tables \
	>/dev/null 2>&1 &
mpid=$!
_fixture_pids="$_fixture_pids $mpid"
client() { mariadb --no-defaults -S "$D/sock" -u root "$@"; }
for i in $(seq 1 600); do
	client -e 'SELECT 1' >/dev/null 2>&1 && break
	kill -0 "$mpid" 2>/dev/null || break
	sleep 0.1
done
client -e 'SELECT 1' >/dev/null 2>&1 || { echo "Bail out! mariadbd did not start: $(tail -3 "$D/err.log")"; exit 1; }
diag "mariadbd $(client -N -e 'SELECT VERSION()'), pid $mpid, $(ls /proc/$mpid/task | wc -l) threads"

# the load: one connection sleeping, one inserting
# one SLEEP through the window, xprof started once it runs: four of 1.5 s
# with a fixed 0.5 s for the first to begin left the connection out of
# Item_func_sleep for 0.85 of the 3 s at load 19 (client round trips, a
# late start)
client -e 'SELECT SLEEP(30)' >/dev/null 2>&1 &
sleeper=$!
_fixture_pids="$_fixture_pids $sleeper"
{
	echo 'CREATE DATABASE b; USE b; CREATE TABLE t (id INT PRIMARY KEY, v VARCHAR(100)) ENGINE=InnoDB;'
	for i in $(seq 1 300); do echo "INSERT INTO t VALUES ($i, REPEAT('x', 100));"; done
} | client >/dev/null 2>&1 &
writer=$!
_fixture_pids="$_fixture_pids $writer"
for i in $(seq 1 1000); do
	[ "$(client -N -e "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE INFO = 'SELECT SLEEP(30)'" 2>/dev/null)" = 1 ] && break
	sleep 0.02
done

watch_target "$mpid" "$TMP/watch" "$TMP/done" &
watcher=$!
"$XPROF" block -p "$mpid" -d 3s -o "$TMP/m.pb.gz" 2>"$TMP/err"
rc=$?
touch "$TMP/done"
wait "$watcher"
[ "$rc" = 0 ] || { [ "$rc" = 1 ] && grep -q 'records were lost' "$TMP/err"; }
ok $? "xprof block -p mariadbd: exit $rc (0, or 1 with records lost on a busy machine)" || diag "$(cat "$TMP/err")"
diag "$(head -n 1 "$TMP/err")"
not_stopped_during "$TMP/watch"
ok $? "mariadbd was never stopped: TracerPid 0 and no thread in t or T at $polls polls"
pprof_check "$TMP/m.pb.gz"
ok $? "the profile is valid and go tool pprof reads it"

d=$(go tool pprof -raw "$TMP/m.pb.gz" 2>/dev/null | awk '/^Duration: / { printf "%d\n", $2 * 1e9 }')
sleep_ns=$(go tool pprof -unit=ns -top -cum -nodecount=2000 "$TMP/m.pb.gz" 2>/dev/null |
	awk '$6 ~ /^Item_func_sleep::val_int/ { sub(/ns$/, "", $4); print $4; exit }')
awk -v g="${sleep_ns:-0}" -v d="$d" 'BEGIN { x = g - d; if (x < 0) x = -x; exit !(d > 0 && x <= 0.10 * d) }'
ok $? "the SLEEP(30) connection: $(awk -v g="${sleep_ns:-0}" 'BEGIN { printf "%.3f", g / 1e9 }') s in Item_func_sleep::val_int over a $(awk -v d="$d" 'BEGIN { printf "%.3f", d / 1e9 }') s window (within 10%)"
go tool pprof -traces -tagfocus=reason=futex "$TMP/m.pb.gz" 2>/dev/null | grep -q 'Item_func_sleep::val_int'
ok $? "its waits are futex waits (a timed condition wait)"
go tool pprof -traces "$TMP/m.pb.gz" 2>/dev/null >"$TMP/traces"
grep -q 'do_command' "$TMP/traces" && grep -q 'do_handle_one_connection' "$TMP/traces"
ok $? "connection threads' stacks are symbolized down to do_handle_one_connection"
nthreads=$(go tool pprof -tags "$TMP/m.pb.gz" 2>/dev/null | awk '/^ *tid:/ { on = 1; next } /^ *[a-z]+:/ { on = 0 } on && NF' | wc -l)
[ "$nthreads" -ge 5 ]
ok $? "$nthreads of mariadbd's threads waited in the window"
wait "$writer"
client -N -e 'SELECT COUNT(*) FROM b.t' >"$TMP/count" 2>&1
is "$(cat "$TMP/count")" 300 "mariadbd answers afterwards: the 300 rows inserted during the run are there"
kill -TERM "$mpid"
for i in $(seq 1 300); do kill -0 "$mpid" 2>/dev/null || break; sleep 0.1; done
plan "$_tap_n"
done_testing
