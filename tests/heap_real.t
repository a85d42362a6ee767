#!/bin/bash
# xprof heap on real programs from Debian, checked against their own
# accounting: a python3 holding known objects (24 buffers of 204,800 bytes,
# 6,000 of 1,000, every one reachable) and an idle PostgreSQL backend with
# 1 GB of shared buffers.  glibc's counters are read independently with gdb
# (libc6-dbg); the share of in-use bytes called [unreachable] stays under
# 5%; the target's memory (RssAnon, RssShmem) does not grow, and its shared
# memory is never read.
. "$(dirname "$0")/lib.sh"
need_ptrace
PY=/usr/bin/python3 # Debian's, not one first on PATH
PGBIN=/usr/lib/postgresql/15/bin
for t in "$PY" "$PGBIN/initdb" "$PGBIN/pg_ctl" /usr/bin/psql /usr/bin/gdb; do
	[ -x "$t" ] || { echo "Bail out! $t missing (make deps installs python3, postgresql, gdb)"; exit 1; }
done
command -v go >/dev/null || { echo "Bail out! go missing (make deps)"; exit 1; }

# rss PID: "RssAnon RssShmem" in kB
rss() { awk '$1 == "RssAnon:" { a = $2 } $1 == "RssShmem:" { s = $2 } END { print a, s }' "/proc/$1/status"; }

# settle PID: waits (up to 3 s) until the process's memory stays the same
# for 0.5 s, so that what changes it afterwards is xprof
settle() {
	local i last now
	last=$(rss "$1")
	for i in 1 2 3 4 5 6; do
		sleep 0.5
		now=$(rss "$1")
		[ "$now" = "$last" ] && return 0
		last=$now
	done
}

# ---- python3 ----------------------------------------------------------------

cat >"$TMP/held.py" <<'PY'
import os, sys, time
big = [bytes(range(256)) * 800 for _ in range(24)]  # 204,800 bytes each: mmapped
small = [os.urandom(1000) for _ in range(6000)]     # 1,000 bytes each: in the arena
print("ready", os.getpid(), sys.getallocatedblocks(), flush=True)
time.sleep(120)
PY
start_fixture ready "$PY" "$TMP/held.py"
read -r pid pyblocks <<<"$ready"
settle "$pid"
before=$(rss "$pid")
"$XPROF" heap -p "$pid" -o "$TMP/py.pb.gz" >/dev/null 2>"$TMP/err"
ok $? "python3: xprof heap exits 0" || diag "$(cat "$TMP/err")"
after=$(rss "$pid")
is "$after" "$before" "python3: RssAnon and RssShmem (kB) unchanged by xprof"
pprof_check "$TMP/py.pb.gz"
ok $? "python3: the profile is valid and go tool pprof reads it"
check_heap python3 "$pid" "$TMP/err" "$TMP/py.pb.gz"
# bytes objects of 204,800 and 1,000 bytes: malloc(size + 33)
is "$(heap_under "$TMP/py.pb.gz" "[malloc 208880]")" "24 5013120" "python3: the 24 buffers of 204,800 bytes"
read -r n _ <<<"$(heap_under "$TMP/py.pb.gz" "[malloc 1048]")"
[ "$n" -ge 6000 ] && [ "$n" -le 6100 ]
ok $? "python3: the 6,000 objects of 1,000 bytes ($n blocks of 1048; Python holds $pyblocks objects)"
go tool pprof -traces "$TMP/py.pb.gz" 2>/dev/null | grep -A3 '\[malloc 208880\]' | grep -q '^ *\[anon rw 0x[0-9a-f]*\]$'
ok $? "python3: the buffers are held from pymalloc's arenas, named [anon rw ADDR]"
diag "python3: $(grep -h 'process stopped' "$TMP/err")"

# ---- PostgreSQL ---------------------------------------------------------------

PGUSER_OS=postgres
id "$PGUSER_OS" >/dev/null 2>&1 || { echo "Bail out! no user postgres (make deps installs postgresql)"; exit 1; }
if [ "$(id -u)" != 0 ]; then # initdb and the server run as postgres, through runuser
	ok 0 "# SKIP PostgreSQL: not root, cannot run the server as user postgres"
	plan "$_tap_n"
	done_testing
fi
chmod 711 "$TMP"
PGDIR=$TMP/pg
mkdir -p "$PGDIR" && chown "$PGUSER_OS" "$PGDIR"
as_pg() { runuser -u "$PGUSER_OS" -- "$@"; }
pg_down() {
	[ -f "$PGDIR/data/postmaster.pid" ] &&
		as_pg "$PGBIN/pg_ctl" -D "$PGDIR/data" -m immediate -w stop >/dev/null 2>&1
	exec 3>&-
}
trap 'pg_down; _cleanup' EXIT
as_pg "$PGBIN/initdb" -N -A trust -U postgres -D "$PGDIR/data" >"$TMP/initdb.log" 2>&1 ||
	{ echo "Bail out! initdb failed: $(tail -3 "$TMP/initdb.log")"; exit 1; }
as_pg "$PGBIN/pg_ctl" -D "$PGDIR/data" -l "$PGDIR/log" -w -t 30 \
	-o "-c listen_addresses='' -c unix_socket_directories=$PGDIR -c shared_buffers=1GB" start >/dev/null 2>&1 ||
	{ echo "Bail out! postgres did not start: $(tail -3 "$PGDIR/log")"; exit 1; }
# a psql session kept open on a FIFO: its backend idles between queries
mkfifo -m 600 "$PGDIR/in" && chown "$PGUSER_OS" "$PGDIR/in"
as_pg psql -h "$PGDIR" -U postgres -d postgres -X -A -t -q <"$PGDIR/in" >"$PGDIR/out" 2>&1 &
_fixture_pids="$_fixture_pids $!"
exec 3>"$PGDIR/in"
echo "select 'ready ' || pg_backend_pid();" >&3
for i in $(seq 1 500); do grep -q '^ready' "$PGDIR/out" && break; sleep 0.02; done
bpid=$(sed -n 's/^ready //p' "$PGDIR/out")
[ -n "$bpid" ] || { echo "Bail out! no backend: $(cat "$PGDIR/out")"; exit 1; }
settle "$bpid" # idle in ClientRead, its statistics flushed (1 s after a query)
before=$(rss "$bpid")
"$XPROF" heap -p "$bpid" -o "$TMP/pg.pb.gz" >/dev/null 2>"$TMP/err"
ok $? "postgres: xprof heap of an idle backend exits 0" || diag "$(cat "$TMP/err")"
after=$(rss "$bpid")
is "$after" "$before" "postgres: RssAnon and RssShmem (kB) unchanged by xprof"
copied=$(sed -n 's/.* while \([0-9.]*\) MiB were copied.*/\1/p' "$TMP/err")
awk -v c="$copied" 'BEGIN { exit !(c < 64) }'
ok $? "postgres: $copied MiB copied, not the 1 GB of shared buffers"
grep -q 'left alone: 10[0-9][0-9]\.[0-9] MiB of shared mappings' "$TMP/err"
ok $? "postgres: the shared buffers are left alone ($(grep -o 'left alone: [0-9.]* MiB of shared' "$TMP/err"))"
pprof_check "$TMP/pg.pb.gz"
ok $? "postgres: the profile is valid and go tool pprof reads it"
check_heap postgres "$bpid" "$TMP/err" "$TMP/pg.pb.gz"
echo "select 'alive ' || 41 + 1;" >&3
for i in $(seq 1 250); do grep -q '^alive 42' "$PGDIR/out" && break; sleep 0.02; done
grep -q '^alive 42' "$PGDIR/out"
ok $? "postgres: the backend answers a query afterwards"
diag "postgres: $(grep -h 'process stopped' "$TMP/err")"
plan "$_tap_n"
done_testing
