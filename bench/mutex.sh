#!/usr/bin/env bash
# bench/mutex.sh — what xprof mutex costs a lock-heavy target, against perf
# recording the futex system calls with DWARF stacks (the tracepoint way to
# the same profile); writes the "mutex" section of docs/benchmarks.md and
# prints the table.  Run by `make bench`, from the repository root after
# `make all fixtures`; running it directly works too.
#
#   BENCH_MUTEX_ROUNDS=N    rounds (default 3)
#   BENCH_MUTEX_THREADS=N   the target's threads (default 8)
#
# Each round runs build/fixtures/lockbench (THREADS threads taking one
# pthread mutex, 50 spins in and out of it) for 6 s, in this order: alone,
# under xprof mutex, under perf record -e syscalls:sys_{enter,exit}_futex
# --call-graph dwarf.  A tool attaches at 0.5 s for 4 s; the target's ops/s
# is counted from its own running totals between seconds 1 and 4.  perf
# needs tracefs for the tracepoints: it runs in a private mount namespace
# (unshare -m) with tracefs mounted there only; without unshare or root it
# is left out.  Nothing is killed by name.

set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

ROUNDS=${BENCH_MUTEX_ROUNDS:-3}
NTHR=${BENCH_MUTEX_THREADS:-8}
XPROF=./xprof
TARGET=build/fixtures/lockbench
DOC=docs/benchmarks.md
KEY=mutex
HEADING="xprof mutex vs perf record of futex calls (lock-heavy target)"

die() { echo "bench/mutex: $*" >&2; exit 1; }
[[ $ROUNDS =~ ^[1-9][0-9]*$ ]] || die "BENCH_MUTEX_ROUNDS must be a positive integer (got '$ROUNDS')"
[[ $NTHR =~ ^[1-9][0-9]*$ ]] && [ "$NTHR" -le 64 ] || die "BENCH_MUTEX_THREADS must be 1 to 64 (got '$NTHR')"
[ -x "$XPROF" ] || die "$XPROF is not built: run 'make all fixtures' (or 'make bench')"
[ -x "$TARGET" ] || die "$TARGET is not built: run 'make fixtures' (or 'make bench')"
PERF=$(command -v perf 2>/dev/null || true)
TOOLS=(baseline xprof)
if [ -n "$PERF" ] && [ "$(id -u)" = 0 ] && command -v unshare >/dev/null; then
	TOOLS+=(perf-futex)
else
	echo "bench/mutex: perf, root or unshare missing: perf is left out" >&2
fi
[ "$(id -u)" = 0 ] || die "xprof mutex needs root or CAP_PERFMON (the uprobe PMU)"

TMP=$(mktemp -d "${TMPDIR:-/tmp}/xprof-bench-mutex.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
DATA=$TMP/runs.tsv
: >"$DATA"

# run_one TOOL ROUND: one line "tool round ops_per_s events end_s" in $DATA
run_one() {
	local tool=$1 round=$2 tpid i events=NA end_s=NA t0 t1
	"$TARGET" 6 "$NTHR" 50 50 >"$TMP/out" 2>&1 &
	tpid=$!
	for i in $(seq 1 200); do grep -q '^ready' "$TMP/out" && break; sleep 0.01; done
	sleep 0.5
	t0=$(date +%s%N)
	case $tool in
	xprof)
		"$XPROF" mutex -p "$tpid" -d 4s -o "$TMP/m.pb.gz" 2>"$TMP/err" || true
		events=$(sed -n 's/.*: \([0-9]*\) lock waits in .*/\1/p' "$TMP/err")
		;;
	perf-futex)
		timeout -k 5 60 unshare -m sh -c 'mount --make-rprivate / && mount -t tracefs nodev /sys/kernel/tracing &&
			exec "$0" record -q -e syscalls:sys_enter_futex,syscalls:sys_exit_futex --call-graph dwarf \
				-p "$1" -o "$2" -- sleep 4' "$PERF" "$tpid" "$TMP/perf.data" >"$TMP/err" 2>&1 || true
		events=$("$PERF" report --stats -i "$TMP/perf.data" 2>/dev/null | awk '/SAMPLE events:/ && !n++ { print $3 }' || true)
		;;
	esac
	t1=$(date +%s%N)
	[ "$tool" = baseline ] || end_s=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", (b - a) / 1e9 }')
	wait "$tpid" || true
	awk -v tool="$tool" -v r="$round" -v e="${events:-NA}" -v s="$end_s" \
		'$1 == "at" { at[$2] = $3 } END { printf "%s\t%s\t%.0f\t%s\t%s\n", tool, r, (at[4] - at[1]) / 3, e, s }' \
		"$TMP/out" >>"$DATA"
	echo "bench/mutex: round $round $tool: $(tail -n 1 "$DATA" | cut -f3) ops/s" >&2
}

for r in $(seq 1 "$ROUNDS"); do
	for t in "${TOOLS[@]}"; do run_one "$t" "$r"; done
done

# the table: median ops/s per tool, its ratio to the target alone
BODY=$TMP/body.md
python3 - "$DATA" "$NTHR" "$ROUNDS" >"$BODY" <<'PY'
import statistics, sys
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1]) if l.strip()]
by = {}
for tool, r, ops, ev, end in rows:
    by.setdefault(tool, []).append((float(ops), ev, end))
base = statistics.median(o for o, _, _ in by["baseline"])
names = {"baseline": "alone", "xprof": "xprof mutex",
         "perf-futex": "perf record -e syscalls:sys_{enter,exit}_futex --call-graph dwarf"}
print(f"lockbench: {sys.argv[2]} threads on one pthread mutex, 50 spins in and out of it; "
      f"ops/s counted by the target itself over seconds 1-4 of 6, the tool attached from 0.5 s for 4 s; "
      f"median of {sys.argv[3]} rounds, run alternately.\n")
print("| run | target ops/s | vs alone | events recorded | tool's wall time (s) |")
print("|---|---:|---:|---:|---:|")
for tool in ("baseline", "xprof", "perf-futex"):
    if tool not in by:
        continue
    v = by[tool]
    ops = statistics.median(o for o, _, _ in v)
    ev = "/".join(e for _, e, _ in v)
    end = "/".join(s for _, _, s in v)
    print(f"| {names[tool]} | {ops:,.0f} | {ops / base:.2f} | {ev if tool != 'baseline' else '-'} | {end if tool != 'baseline' else '-'} |")
print("\nevents: xprof's lock waits measured (entry and return of glibc's slow path), perf's futex "
      "samples (entry and exit of every futex call, with 8 KiB of stack each); per round. "
      "NA: the count could not be read back (no summary line, or perf report could not read perf.data). "
      "xprof's wall time includes taking its uprobes out (one RCU grace period per event, "
      "5 events per thread, each waiting for the kernel's event mutex, which every perf user of the machine takes).")
PY
bash bench/md-section.sh "$DOC" "$KEY" "$HEADING" "$BODY"
cat "$BODY"
