#!/usr/bin/env bash
# bench/unwinders.sh — libdw's unwinder (xprof's) against libunwind's on the
# same stacks: every thread of a stopped process (xprof threads) and perf
# samples (xprof cpu), on the fixtures, real programs from Debian and the
# benchmark targets.  Writes the "unwinders" section of docs/benchmarks.md
# and prints the table.  Run by `make bench`; running it directly works
# too, from the repository root after `make all fixtures unit`.
#
#   BENCH_UNW_RUNS=N   passes over each set of stacks (default 20; the first
#                      is cold, the median is over the others)
#   BENCH_UNW_MS=N     perf sampling per cpu target, ms (default 2000)
#
# tests/unit/unwcmp does the work: each stack copied once (registers and
# stack, as xprof copies them), then unwound by each unwinder in an address
# space of its own.  PostgreSQL needs root (its server runs as postgres);
# redis is skipped when redis-server or redis-benchmark is missing.  Only
# processes started here are stopped, by pid.

set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

RUNS=${BENCH_UNW_RUNS:-20}
MS=${BENCH_UNW_MS:-2000}
CMP=tests/unit/unwcmp
FIX=build/fixtures
DOC=docs/benchmarks.md
KEY=unwinders
HEADING="Unwinders: libdw against libunwind on the same stacks"

die() { echo "bench/unwinders: $*" >&2; exit 1; }
[[ $RUNS =~ ^[1-9][0-9]*$ ]] || die "BENCH_UNW_RUNS must be a positive integer (got '$RUNS')"
[[ $MS =~ ^[1-9][0-9]*$ ]] || die "BENCH_UNW_MS must be a positive integer (got '$MS')"
[ -x "$CMP" ] || die "$CMP is not built: run 'make unit' (or 'make bench')"
[ -x "$FIX/parked-O2" ] || die "the fixtures are not built: run 'make fixtures' (or 'make bench')"

LOAD0=$(cut -d' ' -f1 /proc/loadavg)
W=$(mktemp -d)
chmod 711 "$W"
started=()
pg_stop=
cleanup() {
	local p
	[ -n "$pg_stop" ] && eval "$pg_stop" >/dev/null 2>&1 || true
	for p in "${started[@]}"; do
		kill "$p" 2>/dev/null || true
		wait "$p" 2>/dev/null || true
	done
	rm -rf "$W"
}
trap cleanup EXIT

# wait_line FILE PATTERN: up to 10 s for PATTERN in FILE
wait_line() {
	local i
	for i in $(seq 1 500); do
		grep -q "$2" "$1" 2>/dev/null && return 0
		sleep 0.02
	done
	return 1
}

ROWS=$W/rows
: >"$ROWS"
UPT=

# measure NAME MODE PID [unwcmp options]: one row of the table
measure() {
	local name=$1 mode=$2 pid=$3 out=$W/out
	shift 3
	if ! "$CMP" "$mode" "$pid" -r "$RUNS" -d "$MS" "$@" >"$out" 2>"$W/err"; then
		echo "bench/unwinders: $name: $(cat "$W/err")" >&2
		return 0
	fi
	awk -v name="$name" -v mode="$mode" '
		$1 == "unwinder" { for (i = 3; i < NF; i += 2) v[$2, $i] = $(i + 1) }
		function pct(a, b) { return b ? sprintf("%.0f%%", 100 * a / b) : "-" }
		END {
			n = v["libdw", "stacks"]
			printf "| %s | %s | %d | %s / %s | %.1f / %.1f | %d | %d / %d | %d / %d | %.1f / %.1f |\n",
				name, mode, n,
				pct(v["libdw", "ends"], n), pct(v["libunwind", "ends"], n),
				n ? v["libdw", "frames"] / n : 0, n ? v["libunwind", "frames"] / n : 0,
				v["libunwind", "differ"],
				v["libunwind", "further"], v["libunwind", "shorter"],
				v["libdw", "median_ns"], v["libunwind", "median_ns"],
				v["libdw", "first_ms"], v["libunwind", "first_ms"]
			if (v["libunwind-ptrace", "stacks"] != "")
				printf "| %s | %d | %s | %.1f | %d | %d | %.1f |\n", name, n,
					pct(v["libunwind-ptrace", "ends"], n), v["libunwind-ptrace", "frames"] / n,
					v["libunwind-ptrace", "differ"], v["libunwind-ptrace", "median_ns"],
					v["libunwind-ptrace", "first_ms"] > "/dev/stderr"
		}' "$out" >>"$ROWS" 2>>"$W/upt"
	tail -1 "$ROWS"
}

# start NAME CMD...: a fixture printing "ready PID ..." on stdout; sets TPID
start() {
	local name=$1 log=$W/$1.log
	shift
	"$@" >"$log" 2>&1 &
	started+=($!)
	wait_line "$log" '^ready' || die "$name did not get ready: $(head -3 "$log")"
	TPID=$(awk '/^ready/ { print $2; exit }' "$log")
}

stop_last() {
	local p=${started[-1]}
	kill "$p" 2>/dev/null || true
	wait "$p" 2>/dev/null || true
	unset 'started[-1]'
}

# ---- fixtures ----------------------------------------------------------------

start parked "$FIX/parked-O2" 1000
measure "parked-O2, 1000 threads" threads "$TPID" -u
stop_last
start sighandler "$FIX/sighandler"
measure "sighandler (through a signal frame)" threads "$TPID"
stop_last
start vdso "$FIX/vdso"
measure "vdso (clock_gettime loop)" cpu "$TPID"
stop_last
start cpuburn "$FIX/cpuburn"
measure "cpuburn" cpu "$TPID"
stop_last
mkdir -p "$W/go"
start goparked "$FIX/goparked" "$W/go"
measure "goparked (Go)" threads "$TPID"
stop_last
# the cpu benchmark's target (bench/cpu.sh), long enough for the sampling
"$FIX/cpuwork" 40000000000 >"$W/cpuwork.log" 2>&1 &
started+=($!)
sleep 0.3
measure "cpuwork (bench/cpu.sh's target)" cpu "${started[-1]}"
stop_last

# instructions (callgrind, blind to the load of the machine) and system
# calls (strace) per stack, warm: a run of 21 passes less a run of 1
INSTR=$W/instr
: >"$INSTR"
if command -v valgrind >/dev/null && command -v strace >/dev/null; then
	start parked "$FIX/parked-O2"
	for b in libdw libunwind; do
		declare -A ir=() sc=() sm=()
		for r in 1 21; do
			valgrind --tool=callgrind --callgrind-out-file="$W/cg.out" --toggle-collect=xp_unwind \
				"$CMP" threads "$TPID" -r "$r" -b "$b" >"$W/cg.log" 2>&1 || die "callgrind: $(tail -3 "$W/cg.log")"
			ir[$r]=$(sed -n 's/.*Collected : *\([0-9]*\).*/\1/p' "$W/cg.log")
			nst=$(awk '$1 == "stacks" { print $2; exit }' "$W/cg.log")
			strace -f -qq -c -o "$W/st.out" "$CMP" threads "$TPID" -r "$r" -b "$b" >/dev/null 2>&1 || true
			sc[$r]=$(awk '$NF == "total" { print $(NF - 2) }' "$W/st.out")
			sm[$r]=$(awk '$NF == "rt_sigprocmask" { print $4 }' "$W/st.out")
		done
		awk -v b="$b" -v n="$nst" -v i1="${ir[1]}" -v i21="${ir[21]}" -v s1="${sc[1]}" -v s21="${sc[21]}" \
			-v m1="${sm[1]:-0}" -v m21="${sm[21]:-0}" 'BEGIN {
			printf "| %s | %d | %.0f | %.0f | %.1f | %.1f |\n", b, n, (i21 - i1) / (20 * n), i1 / n,
				(s21 - s1) / (20 * n), (m21 - m1) / (20 * n) }' >>"$INSTR"
	done
	stop_last
fi

# ---- real programs -------------------------------------------------------------

PY=/usr/bin/python3 # Debian's build (LTO, no frame pointers)
if [ -x "$PY" ]; then
	cat >"$W/burn.py" <<'PY'
import os, sys, threading
def fib(n):
    return n if n < 2 else fib(n - 1) + fib(n - 2)
def spin():
    while True:
        fib(18)
for _ in range(2):
    threading.Thread(target=spin, daemon=True).start()
print("ready", os.getpid(), flush=True)
spin()
PY
	start python3 "$PY" "$W/burn.py"
	measure "python3 (recursive Python, 3 threads)" cpu "$TPID"
	measure "python3 (recursive Python, 3 threads)" threads "$TPID"
	stop_last
fi

PGBIN=/usr/lib/postgresql/15/bin
if [ "$(id -u)" = 0 ] && [ -x "$PGBIN/initdb" ] && id postgres >/dev/null 2>&1; then
	PGDIR=$W/pg
	mkdir -p "$PGDIR" && chown postgres "$PGDIR"
	as_pg() { runuser -u postgres -- "$@"; }
	if as_pg "$PGBIN/initdb" -N -A trust -U postgres -D "$PGDIR/data" >"$W/initdb.log" 2>&1 &&
		as_pg "$PGBIN/pg_ctl" -D "$PGDIR/data" -l "$PGDIR/log" -w -t 30 \
			-o "-c listen_addresses='' -c unix_socket_directories=$PGDIR" start >/dev/null 2>&1; then
		pg_stop="runuser -u postgres -- $PGBIN/pg_ctl -D $PGDIR/data -m immediate -w stop"
		# one backend busy in the executor: a query that runs for about a minute
		as_pg psql -h "$PGDIR" -U postgres -d postgres -X -A -t -q -c \
			"set jit = off; select count(*) from generate_series(1, 400000000) a where a % 7 = 3" \
			>"$W/pg.out" 2>&1 &
		started+=($!)
		bpid=
		for i in $(seq 1 100); do
			bpid=$(as_pg psql -h "$PGDIR" -U postgres -d postgres -X -A -t -q -c \
				"select pid from pg_stat_activity where query like '%generate_series%' and pid <> pg_backend_pid()")
			[ -n "$bpid" ] && break
			sleep 0.05
		done
		[ -n "$bpid" ] || die "postgres: no busy backend ($(cat "$W/pg.out"))"
		sleep 0.3
		measure "postgres backend (executor, JIT off)" cpu "$bpid"
		measure "postgres backend (executor, JIT off)" threads "$bpid"
		eval "$pg_stop" >/dev/null 2>&1 || true
		pg_stop=
		stop_last
	else
		echo "bench/unwinders: postgres did not start: $(tail -2 "$W/initdb.log" "$PGDIR/log" 2>/dev/null)" >&2
	fi
fi

if command -v redis-server >/dev/null && command -v redis-benchmark >/dev/null; then
	mkdir -p "$W/redis"
	redis-server --port 0 --unixsocket "$W/redis/sock" --dir "$W/redis" --save '' --appendonly no \
		--io-threads 2 >"$W/redis.log" 2>&1 &
	started+=($!)
	rpid=${started[-1]}
	wait_line "$W/redis.log" "ready to accept" || die "redis did not start: $(tail -3 "$W/redis.log")"
	redis-benchmark -s "$W/redis/sock" -n 100000000 -c 8 -q -t set,get,lpush,lpop >/dev/null 2>&1 &
	started+=($!)
	sleep 0.5
	measure "redis-server (redis-benchmark load)" cpu "$rpid"
	measure "redis-server (redis-benchmark load)" threads "$rpid"
	stop_last
	stop_last
fi

# ---- the section --------------------------------------------------------------

body=$W/body
{
	cat <<EOF
\`bench/unwinders.sh\` (\`tests/unit/unwcmp\`): each stack is copied once, as
xprof copies it (a stopped thread's registers and stack, or a perf sample's
registers and 16 KiB of stack), then unwound by both unwinders, each in an
address space of its own: libdw's (\`dwfl_getthread_frames\`, with Go's
table for Go code: xprof's default) and libunwind's (libunwind-generic over
xprof's own accessors: the stack from the copy, code and \`.eh_frame_hdr\`
from the module files; \`XPROF_UNWINDER=libunwind\`).  $RUNS passes; *first*
is the first pass over all the stacks (cold: CFI found and parsed; libdw's
includes reading \`.debug_frame\` from separate debug files, which xprof
opens anyway to symbolize), *ns per stack* the median of one stack's unwind
over the other passes.  *Ends*: stacks whose outermost frame is \`_start\`,
a clone, a Go stack's top or a Go stack switch (\`runtime.mcall\`,
\`runtime.systemstack\`, where Go's own traceback ends a system stack).  *Differ*: libunwind's frames not equal to
libdw's at the same depth; *further / shorter*: libunwind's stacks that are
libdw's with frames added / cut.  Frames: libdw / libunwind.  Go code has
no \`.eh_frame\` for libunwind: it falls back on the frame-pointer chain,
which skips the caller of a leaf function that keeps no frame
(\`runtime.futexsleep\` above \`runtime.futex\`), where libdw's path reads
Go's own frame-size table.

| target | mode | stacks | ends | frames per stack | differ | further / shorter | ns per stack, median | first pass, ms |
|---|---|---|---|---|---|---|---|---|
EOF
	cat "$ROWS"
	# what the rows say, in words: where libunwind would be worth using
	awk -F'|' '
		function num(x) { gsub(/[^0-9.]/, "", x); return x + 0 }
		{ n += num($4); split($8, fs, "/"); further += num(fs[1]); shorter += num(fs[2])
		  split($9, t, "/"); r = num(t[1]) ? num(t[2]) / num(t[1]) : 0
		  if (rows == 0 || r < lo) lo = r; if (rows == 0 || r > hi) hi = r; rows++
		  if (num($7) > 0) { d = d (d == "" ? "" : ", ") $2; gsub(/^ +| +$/, "", d) } }
		END {
			printf "\nOver the %d stacks of %d rows, libunwind got further than libdw on %d and stopped\n", n, rows, further
			printf "earlier on %d; its frames differ from libdw%cs only on: %s.  Per stack it took\n", shorter, 39, d == "" ? "none" : d
			printf "%.1f to %.1f times libdw%cs time (median against median).  ", lo, hi, 39
			if (further == 0 && lo > 1)
				print "It wins nowhere: xprof keeps libdw as\nits only unwinder, with no libunwind fallback (it would never have added a\nframe), and `XPROF_UNWINDER=libunwind` stays for comparisons like this one."
			else
				print "See the rows for where it does better."
		}' "$ROWS"
	if [ -s "$INSTR" ]; then
		cat <<EOF

The same on parked-O2's 7 threads, counted rather than timed (the machine's
load does not move these): instructions per stack under callgrind, warm
(21 passes less 1, over 20 passes) and in the first pass, and system calls
per stack, warm, under strace:

| unwinder | stacks | instructions per stack, warm | first pass, per stack | system calls per stack, warm | of which rt_sigprocmask |
|---|---|---|---|---|---|
EOF
		cat "$INSTR"
		cat <<EOF

libunwind's time goes to that \`rt_sigprocmask\` pair around each lookup in
its cache of register rules: Debian's libunwind (1.6) blocks every signal
while it holds the cache's lock, two system calls a frame
(\`UNW_CACHE_PER_THREAD\` measured the same, \`UNW_CACHE_NONE\` 2.5 times
slower).
EOF
	fi
	if [ -s "$W/upt" ]; then
		cat <<EOF

libunwind-ptrace's own accessors (\`_UPT_*\`: a \`PTRACE_PEEKDATA\` per word
read, \`/proc/PID/maps\` and the ELF files opened by libunwind), on the same
threads while the process is held stopped, for comparison; xprof does not
use them, since every microsecond they take is a microsecond the target
stands still:

| target | stacks | ends | frames per stack | differ from libdw | ns per stack, median | first pass, ms |
|---|---|---|---|---|---|---|
EOF
		cat "$W/upt"
	fi
	echo
	echo "Command: \`BENCH_UNW_RUNS=$RUNS BENCH_UNW_MS=$MS bash bench/unwinders.sh\`; load average $LOAD0 at the"
	echo "start, $(cut -d' ' -f1 /proc/loadavg) at the end (the times are medians; the counts above are not timed)."
} >"$body"
cat "$body"
bash bench/md-section.sh "$DOC" "$KEY" "$HEADING" "$body"
