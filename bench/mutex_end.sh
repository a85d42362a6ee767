#!/usr/bin/env bash
# bench/mutex_end.sh — how long `xprof mutex` takes to end once asked to:
# from SIGINT to the profile written and to xprof's exit, on a target of
# many threads, and whether the breakpoints are gone at the exit.  Writes
# the "mutex-end" section of docs/benchmarks.md and prints the table.  Run
# by `make bench`, from the repository root after `make all fixtures`;
# running it directly works too.
#
#   BENCH_MUTEX_END_THREADS="50 200"   the target's thread counts (1-256 each)
#   BENCH_MUTEX_END_ROUNDS=N           rounds per count (default 3)
#   BENCH_MUTEX_END_XPROF=PATH         the xprof to time (default ./xprof),
#                                      e.g. an older build to compare
#   BENCH_MUTEX_END_WRITE=0            print the table only, keep the doc
#
# Each round starts build/fixtures/lockbench with THREADS threads on one
# pthread mutex, runs `xprof mutex -p PID -d 10m` on it, waits until the
# uprobes are in (libc's code page has an Anonymous copy in the target's
# smaps) and 2 s more, sends SIGINT and times the output file's appearance
# and the exit (polled every 10 ms).  Right after the exit it reads the
# target's smaps again: 0 kB means every breakpoint is out.  The target is
# killed by its pid after each round.

set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
. bench/lib.sh

COUNTS=${BENCH_MUTEX_END_THREADS:-50 200}
ROUNDS=${BENCH_MUTEX_END_ROUNDS:-3}
XPROF=${BENCH_MUTEX_END_XPROF:-./xprof}
WRITE=${BENCH_MUTEX_END_WRITE:-1}
TARGET=build/fixtures/lockbench
DOC=docs/benchmarks.md
KEY=mutex-end
HEADING="xprof mutex: time to end (SIGINT to exit) by thread count"

die() { echo "bench/mutex_end: $*" >&2; exit 1; }
[[ $ROUNDS =~ ^[1-9][0-9]*$ ]] || die "BENCH_MUTEX_END_ROUNDS must be a positive integer (got '$ROUNDS')"
for n in $COUNTS; do
	[[ $n =~ ^[1-9][0-9]*$ ]] && [ "$n" -le 256 ] || die "BENCH_MUTEX_END_THREADS: each count must be 1 to 256 (got '$n')"
done
[ -x "$XPROF" ] || die "$XPROF is not built: run 'make all fixtures' (or 'make bench')"
[ -x "$TARGET" ] || die "$TARGET is not built: run 'make fixtures' (or 'make bench')"
[ "$(id -u)" = 0 ] || die "xprof mutex needs root or CAP_PERFMON (the uprobe PMU)"

TMP=$(mktemp -d "${TMPDIR:-/tmp}/xprof-bench-mutex-end.XXXXXX")
TPID= XPID=
cleanup() {
	[ -n "$XPID" ] && kill -KILL "$XPID" 2>/dev/null && wait "$XPID" 2>/dev/null
	[ -n "$TPID" ] && kill -KILL "$TPID" 2>/dev/null && wait "$TPID" 2>/dev/null
	rm -rf "$TMP"
}
trap cleanup EXIT
DATA=$TMP/runs.tsv
: >"$DATA"

# kB of libc's code that are no longer the file's (a uprobe's int3 copies
# the page it writes into); 0 when no breakpoint is left
libc_text_anon() {
	awk '/ r-xp .*\/libc\.so\.6$/ { f = 1; next } f && /^Anonymous:/ { print $2; exit }' "/proc/$TPID/smaps"
}
# 1 while pid $1 has not exited (a zombie has)
running() {
	local s
	s=$(awk '{ sub(/^.*\) /, ""); print $1 }' "/proc/$1/stat" 2>/dev/null) || return 1
	[ "$s" != Z ]
}

# run_one THREADS ROUND: a line "threads round written_s exit_s waits anon_kb" in $DATA
run_one() {
	local n=$1 r=$2 i t0 tw= tx waits anon
	"$TARGET" 600 "$n" 50 50 >"$TMP/out" 2>&1 &
	TPID=$!
	for i in $(seq 1 500); do grep -q '^ready' "$TMP/out" && break; sleep 0.01; done
	grep -q '^ready' "$TMP/out" || die "lockbench did not start"
	rm -f "$TMP/m.pb.gz"
	"$XPROF" mutex -p "$TPID" -d 10m -o "$TMP/m.pb.gz" 2>"$TMP/err" &
	XPID=$!
	for i in $(seq 1 3000); do
		[ "$(libc_text_anon)" != 0 ] && break
		running "$XPID" || break
		sleep 0.01
	done
	running "$XPID" || die "xprof mutex ended before the probes were in: $(cat "$TMP/err")"
	sleep 2
	stamp
	t0=$_now
	kill -INT "$XPID"
	while running "$XPID"; do
		if [ -z "$tw" ] && [ -e "$TMP/m.pb.gz" ]; then
			stamp
			tw=$_now
		fi
		sleep 0.01
	done
	stamp
	tx=$_now
	anon=$(libc_text_anon)
	wait "$XPID" || true
	XPID=
	[ -n "$tw" ] || tw=$tx
	kill -KILL "$TPID" 2>/dev/null || true
	wait "$TPID" 2>/dev/null || true
	TPID=
	waits=$(sed -n 's/.*: \([0-9]*\) lock waits in .*/\1/p' "$TMP/err")
	printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$n" "$r" "$(((tw - t0) / 1000))" "$(((tx - t0) / 1000))" \
		"${waits:-NA}" "${anon:-NA}" >>"$DATA"
	echo "bench/mutex_end: $n threads, round $r: written after $(((tw - t0) / 1000)) ms," \
		"exit after $(((tx - t0) / 1000)) ms, ${anon:-NA} kB of breakpoints left" >&2
}

for r in $(seq 1 "$ROUNDS"); do
	for n in $COUNTS; do run_one "$n" "$r"; done
done

BODY=$TMP/body.md
python3 - "$DATA" "$ROUNDS" "$CLOCK" >"$BODY" <<'PY'
import statistics, sys
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1]) if l.strip()]
by = {}
for n, r, w, x, waits, anon in rows:
    by.setdefault(int(n), []).append((int(w), int(x), waits, anon))
print(f"lockbench with THREADS threads on one pthread mutex under `xprof mutex -p PID` "
      f"(5 uprobe events per thread); SIGINT 2 s after the probes are in; "
      f"median of {sys.argv[2]} rounds, times in seconds from the SIGINT ({sys.argv[3]}, polled every 10 ms).\n")
print("| threads | events | profile written | xprof exited | per event (ms) | breakpoints left at exit (kB) |")
print("|---:|---:|---:|---:|---:|---|")
for n in sorted(by):
    v = by[n]
    w = statistics.median(a for a, _, _, _ in v) / 1000
    x = statistics.median(b for _, b, _, _ in v) / 1000
    anon = "/".join(d for _, _, _, d in v)
    print(f"| {n} | {5 * n} | {w:.2f} | {x:.2f} | {(x - w) * 1000 / (5 * n):.0f} | {anon} |")
print("\nThe time after the profile is written is the kernel destroying the uprobe events: "
      "each close takes the kernel's global event_mutex and, under it, waits for RCU grace "
      "periods (uprobe_unregister_sync, tracepoint_synchronize_unregister), so closes run one "
      "after the other whatever the number of threads closing them, and an open on the machine "
      "waits behind them.  xprof closes them by address, the most hit first and return probes "
      "before entry probes (attach/uprobe.c, close_by_address); closed thread by thread, as before "
      "that, the same runs ended after 66.3 s (50 threads) and 223.5 s (200 threads), medians of 3 "
      "with BENCH_MUTEX_END_XPROF set to that build.")
PY
if [ "$WRITE" != 0 ]; then
	bash bench/md-section.sh "$DOC" "$KEY" "$HEADING" "$BODY"
fi
cat "$BODY"
