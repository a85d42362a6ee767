#!/bin/bash
# xprof cpu on a real JIT: Debian's PostgreSQL 15 with jit=on,
# jit_above_cost=0 and jit_profiling_support=on (LLVM's perf listener
# writes a jitdump, jit-PID.dump, and maps it; LLVM's code keeps no frame
# pointer), one backend running an aggregate over a 200,000-row table
# again and again.  At least 95% of the samples must have a whole stack
# (down to _start), the JIT functions must be named as the backend's own
# jitdump names them (evalexpr_N_M, deform_N_M), and the executor's frame
# that called them must be there, not skipped (95% of them at least).
# Without jit_profiling_support, a frame-pointer guess through LLVM's code
# (which keeps none) must not skip the executor's frame.
. "$(dirname "$0")/lib.sh"
need_ptrace
command -v go >/dev/null || { echo "Bail out! go missing (make deps)"; exit 1; }
PGBIN=/usr/lib/postgresql/15/bin
for t in "$PGBIN/initdb" "$PGBIN/pg_ctl" /usr/bin/psql; do
	[ -x "$t" ] || { echo "Bail out! $t missing (make deps installs postgresql)"; exit 1; }
done
ls /usr/lib/postgresql/15/lib/llvmjit.so >/dev/null 2>&1 || skip_all "PostgreSQL has no llvmjit.so (no JIT)"
id postgres >/dev/null 2>&1 || { echo "Bail out! no user postgres (make deps installs postgresql)"; exit 1; }
[ "$(id -u)" = 0 ] || skip_all "not root: cannot run the server as user postgres"

chmod 711 "$TMP"
PGDIR=$TMP/pg
mkdir -p "$PGDIR/jitdump" && chown -R postgres "$PGDIR"
as_pg() { runuser -u postgres -- "$@"; }
pg_down() {
	[ -f "$PGDIR/data/postmaster.pid" ] &&
		as_pg "$PGBIN/pg_ctl" -D "$PGDIR/data" -m immediate -w stop >/dev/null 2>&1
}
trap 'pg_down; _cleanup' EXIT
as_pg "$PGBIN/initdb" -N -A trust -U postgres -D "$PGDIR/data" >"$TMP/initdb.log" 2>&1 ||
	{ echo "Bail out! initdb failed: $(tail -3 "$TMP/initdb.log")"; exit 1; }
# JITDUMPDIR: LLVM's listener writes its jitdumps there, not into /tmp
JITDUMPDIR=$PGDIR/jitdump as_pg "$PGBIN/pg_ctl" -D "$PGDIR/data" -l "$PGDIR/log" -w -t 60 \
	-o "-c listen_addresses='' -c unix_socket_directories=$PGDIR -c jit=on -c jit_above_cost=0 -c jit_profiling_support=on -c max_parallel_workers_per_gather=0" \
	start >/dev/null 2>&1 || { echo "Bail out! postgres did not start: $(tail -3 "$PGDIR/log")"; exit 1; }
psql_pg() { as_pg psql -h "$PGDIR" -U postgres -d postgres -X -A -t -q "$@"; }
psql_pg -c "create table t as select g a, g % 97 b, (g * 7) % 1000 c from generate_series(1, 200000) g" \
	-c "vacuum analyze t" >"$TMP/setup.log" 2>&1 || { echo "Bail out! setup failed: $(cat "$TMP/setup.log")"; exit 1; }
q="select sum((a * 2 + b) % 13 + (c * 3) % 7 + a % 11), count(*) filter (where (a + c) % 7 = 1 and b * c > 100) from t;"
{
	echo "select 'ready ' || pg_backend_pid();"
	for i in $(seq 1 400); do echo "$q"; done
} >"$PGDIR/load.sql"
chmod 644 "$PGDIR/load.sql"
psql_pg -f "$PGDIR/load.sql" >"$PGDIR/out" 2>&1 &
_fixture_pids="$_fixture_pids $!"
for i in $(seq 1 1000); do grep -q '^ready' "$PGDIR/out" && break; sleep 0.02; done
bpid=$(sed -n 's/^ready //p' "$PGDIR/out")
[ -n "$bpid" ] || { echo "Bail out! no backend: $(cat "$PGDIR/out")"; exit 1; }
# the first query's code is compiled and its jitdump mapped
for i in $(seq 1 500); do grep -q 'jit-[0-9]*\.dump' "/proc/$bpid/maps" && break; sleep 0.02; done
dump=$(awk '/jit-[0-9]*\.dump$/ { print $6; exit }' "/proc/$bpid/maps")
ok $([ -n "$dump" ]; echo $?) "the backend maps a jitdump: $dump"

"$XPROF" cpu -p "$bpid" -d 3s -o "$TMP/pg.pb.gz" >/dev/null 2>"$TMP/err"
ok $? "xprof cpu on the backend exits 0" || diag "$(cat "$TMP/err")"
pprof_check "$TMP/pg.pb.gz"
ok $? "the profile is valid and go tool pprof reads it"
tests/pprof_samples.pl "$TMP/pg.pb.gz" >"$TMP/samples"
pct=$(sed -n 's/.* \([0-9.]*\)% with a complete stack.*/\1/p' "$TMP/err")
awk -v p="$pct" 'BEGIN { exit !(p != "" && p >= 95) }'
ok $? "$pct% of the samples have a complete stack (at least 95%)" || diag "$(cat "$TMP/err")"
# the stacks as pprof reads them: leaf first, the last frame _start
read -r n whole jit named called <<<"$(awk -F'\t' '{
		split($1, a, " "); split($2, v, " "); s = a[1]; n += v[1]
		if (s ~ /;_start$/) whole += v[1]
		if (s ~ /(^|;)(evalexpr|deform)_[0-9]+_[0-9]+;/) {
			jit += v[1]
			# under the outermost JIT frame: the executor (a static
			# function of postgres, named by its start without debug
			# symbols: [postgres+0x30f0f0]), then the rest
			if (s ~ /(evalexpr|deform)_[0-9]+_[0-9]+;\[postgres\+0x[0-9a-f]+\];standard_ExecutorRun;/) called += v[1]
		}
	} END { print n + 0, whole + 0, jit + 0, jit + 0, called + 0 }' "$TMP/samples")"
awk -v w="$whole" -v n="$n" 'BEGIN { exit !(n > 0 && w >= 0.95 * n) }'
ok $? "$whole of $n samples end in _start as go tool pprof reads them (at least 95%)"
awk -v j="$jit" -v n="$n" 'BEGIN { exit !(n > 0 && j >= 0.2 * n) }'
ok $? "$jit of $n samples are in or under JIT code named evalexpr_N_M or deform_N_M (at least 20%)" ||
	diag "$(sort -t$'\t' -k2 -rn "$TMP/samples" | head -5)"
awk -v c="$called" -v j="$jit" 'BEGIN { exit !(j > 0 && c >= 0.95 * j) }'
ok $? "$called of them have the executor's frame (postgres, then standard_ExecutorRun) under the JIT code (at least 95%)" ||
	diag "$(grep -E '(evalexpr|deform)_' "$TMP/samples" | grep -vE '\[postgres\+0x[0-9a-f]+\];standard_ExecutorRun' | head -5)"
# each name is one the backend's jitdump gives
missing=0
for name in $(grep -oE '(evalexpr|deform)_[0-9]+_[0-9]+' "$TMP/samples" | sort -u); do
	grep -qaF "$name" "$dump" || { missing=$((missing + 1)); diag "$name is not in $dump"; }
done
is "$missing" 0 "every JIT function name is one the backend's jitdump names"
grep -q '^ready' "$PGDIR/out" && ! grep -qiE 'error|fatal|server closed|terminated' "$PGDIR/out"
ok $? "the backend answered its queries, none failed (psql's output has no error)" || diag "$(grep -iE 'error|fatal|closed|terminated' "$PGDIR/out" | head -3)"

# without jit_profiling_support: no jitdump, and LLVM's code keeps no frame
# pointer (rbp is the executor's).  The stacks may end at the JIT code; a
# frame-pointer guess that skips the executor's frame must not pass.
PGOPTIONS="-c jit_profiling_support=off" psql_pg -f "$PGDIR/load.sql" >"$PGDIR/out2" 2>&1 &
_fixture_pids="$_fixture_pids $!"
for i in $(seq 1 1000); do grep -q '^ready' "$PGDIR/out2" && break; sleep 0.02; done
bpid2=$(sed -n 's/^ready //p' "$PGDIR/out2")
[ -n "$bpid2" ] || { echo "Bail out! no second backend: $(cat "$PGDIR/out2")"; exit 1; }
sleep 0.5
"$XPROF" cpu -p "$bpid2" -d 2s -o "$TMP/pg2.pb.gz" >/dev/null 2>"$TMP/err2"
ok $? "no jitdump: xprof cpu exits 0" || diag "$(cat "$TMP/err2")"
jitmap=$(go tool pprof -raw "$TMP/pg2.pb.gz" 2>/dev/null | sed -n 's/^\([0-9]*\): 0x[0-9a-f/x]* \[jit\] .*/\1/p' | head -1)
tests/pprof_samples.pl "$TMP/pg2.pb.gz" >"$TMP/samples2"
read -r n2 jit2 skipped <<<"$(awk -F'\t' -v m="M=$jitmap" '{
		split($1, a, " "); split($2, v, " "); k = split(a[1], f, ";"); n += v[1]
		for (i = 1; i <= k; i++) if (f[i] == m) { jit += v[1]; if (f[i + 1] == "standard_ExecutorRun") bad += v[1]; break }
	} END { print n + 0, jit + 0, bad + 0 }' "$TMP/samples2")"
ok $([ -n "$jitmap" ] && [ "$jit2" -gt 0 ]; echo $?) "no jitdump: $jit2 of $n2 samples in unnamed JIT code (mapping $jitmap, [jit])"
is "$skipped" 0 "no jitdump: no stack goes from the JIT code straight to standard_ExecutorRun (the executor's frame skipped)" ||
	diag "$(grep "M=$jitmap;standard_ExecutorRun" "$TMP/samples2" | head -3)"
plan "$_tap_n"
done_testing
