#!/bin/bash
# xprof mutex on a real multi-threaded server from Debian: mariadbd in a
# temporary data directory on a Unix socket (no network), four clients
# doing contended updates of two rows (a bounded load: 4 x 1500 updates).
# Checked against what the server and the kernel know: every waiter and
# every holder is one of mariadbd's threads, no thread waits longer than
# the window, the waits go through mariadbd's own connection code, the
# server is never stopped, every update lands (the rows' sum), and libc's
# code is the file's again afterwards.
. "$(dirname "$0")/lib.sh"
need_ptrace
[ "$(id -u)" = 0 ] || skip_all "uprobes need root or CAP_PERFMON"
[ -e /sys/bus/event_source/devices/uprobe/type ] || skip_all "this kernel has no uprobe PMU"
for t in /usr/sbin/mariadbd /usr/bin/mariadb-install-db /usr/bin/mariadb; do
	[ -x "$t" ] || { echo "Bail out! $t missing (make deps installs mariadb-server)"; exit 1; }
done
command -v go >/dev/null || { echo "Bail out! go missing (make deps)"; exit 1; }

db="$TMP/db"
sock="$TMP/mysqld.sock"
mariadb-install-db --no-defaults --datadir="$db" --user=root --auth-root-authentication-method=normal \
	--skip-test-db >"$TMP/install.log" 2>&1 || { echo "Bail out! mariadb-install-db failed: $(tail -3 "$TMP/install.log")"; exit 1; }
/usr/sbin/mariadbd --no-defaults --datadir="$db" --socket="$sock" --skip-networking --user=root \
	--innodb-buffer-pool-size=32M --log-error="$TMP/mariadbd.err" --pid-file="$TMP/mariadbd.pid" >"$TMP/mariadbd.out" 2>&1 &
pid=$!
_fixture_pids="$_fixture_pids $pid"
sql() { mariadb --no-defaults -S "$sock" -uroot "$@"; }
for _ in $(seq 1 300); do sql -e 'select 1' >/dev/null 2>&1 && break; sleep 0.1; done
sql -e 'select 1' >/dev/null 2>&1 || { echo "Bail out! mariadbd did not start: $(tail -3 "$TMP/mariadbd.err")"; exit 1; }
sql -e "create database b; create table b.t (id int primary key, v int) engine=innodb; insert into b.t values (1, 0), (2, 0);"

# the load: 4 clients, 1500 updates each, alternating the two rows
clients=""
for c in 1 2 3 4; do
	for i in $(seq 1 1500); do echo "update b.t set v = v + 1 where id = $((i % 2 + 1));"; done >"$TMP/load.$c.sql"
	sql <"$TMP/load.$c.sql" &
	clients="$clients $!"
done
sleep 0.3

(
	while [ ! -e "$TMP/stop-watch" ]; do
		echo "states $(cat /proc/$pid/task/*/stat 2>/dev/null | awk '{ printf "%s", $3 }')"
		echo "tracer $(awk '/^TracerPid:/ { print $2 }' /proc/$pid/status)"
		ls /proc/$pid/task | sed 's/^/tid /'
		sleep 0.05
	done
) >"$TMP/watch" &
watcher=$!
"$XPROF" mutex -p "$pid" -d 3s -o "$TMP/m.pb.gz" 2>"$TMP/m.err"
rc=$?
touch "$TMP/stop-watch"
wait "$watcher"
[ "$rc" = 0 ] || [ "$rc" = 1 ]
ok $? "xprof mutex on mariadbd writes a profile (exit $rc)" || diag "$(cat "$TMP/m.err")"
diag "$(grep 'lock waits' "$TMP/m.err")"
for c in $clients; do wait "$c"; done

tests/unit/pprofcheck "$TMP/m.pb.gz" >/dev/null
ok $? "the profile passes CheckValid"
go tool pprof -raw "$TMP/m.pb.gz" >"$TMP/raw" 2>/dev/null
is "$(sed -n '/^Samples/{n;p;q}' "$TMP/raw")" "contentions/count delay/nanoseconds" "sample types as Go's mutex profile"
tests/pprof_samples.pl "$TMP/m.pb.gz" >"$TMP/samples"
waits=$(awk -F '\t' '{ split($2, v, " "); n += v[1] } END { print n + 0 }' "$TMP/samples")
ok $((waits < 10)) "four clients updating two rows contend: $waits lock waits"

sort -u <(sed -n 's/^tid //p' "$TMP/watch") >"$TMP/tids"
grep -o 'tid:\[[0-9]*\]' "$TMP/samples" | tr -dc '0-9\n' | sort -u >"$TMP/waiters"
grep -o 'holder_tid:\[[0-9]*\]' "$TMP/samples" | tr -dc '0-9\n' | sort -u >"$TMP/holders"
strangers=$(comm -23 <(sort -u "$TMP/waiters" "$TMP/holders") "$TMP/tids" | tr '\n' ' ')
ok $((${#strangers} > 0)) "every waiter and holder ($(wc -l <"$TMP/waiters") and $(wc -l <"$TMP/holders")) is a thread of mariadbd" ||
	diag "not mariadbd's: $strangers"
[ -s "$TMP/holders" ]
ok $? "holders are known"
dur=$(sed -n 's/^Duration: //p' "$TMP/raw")
over=$(awk -F '\t' -v d="$dur" '{ match($1, /tid:\[[0-9]+\]$/); t = substr($1, RSTART); split($2, v, " "); s[t] += v[2] }
	END { for (t in s) if (s[t] > (d + 0.05) * 1e9) print t, s[t] }' "$TMP/samples")
ok $((${#over} > 0)) "no thread waited longer than the $dur s window" || diag "$over"
grep -q 'do_command' "$TMP/samples"
ok $? "waits are in mariadbd's own code: do_command (a connection's thread)"

grep -q '^states .*t' "$TMP/watch"
ok $((! $?)) "no thread of mariadbd was in tracing stop during the run"
is "$(grep '^tracer' "$TMP/watch" | sort -u)" "tracer 0" "TracerPid was 0 throughout"
anon=$(awk '/ r-xp .*\/libc\.so\.6$/ { f = 1; next } f && /^Anonymous:/ { print $2; exit }' "/proc/$pid/smaps")
is "$anon" 0 "libc's code in mariadbd is the file's again (no breakpoint left)"
is "$(sql -N -e 'select sum(v) from b.t')" 6000 "every update landed: the rows sum to 4 x 1500"

kill "$pid"
for _ in $(seq 1 300); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
plan "$_tap_n"
done_testing
