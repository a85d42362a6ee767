#!/usr/bin/env bash
# bench/block.sh — what xprof block costs a context-switch-heavy target,
# against perf record -e sched:sched_switch --call-graph dwarf; writes the
# "block" section of docs/benchmarks.md and prints the table.  Run by `make
# bench`, from the repository root after `make all fixtures`.
#
#   BENCH_BLOCK_ROUNDS=N    rounds (default 5)
#   BENCH_BLOCK_SECONDS=S   length of each window (default 4)
#
# The target (build/fixtures/switcher) passes a byte between two threads
# over two pipes, each pass two threads blocking and waking: tens of
# thousands of context switches a second.  It counts its passes; SIGUSR1
# makes it print the count and the time, so its rate is measured over each
# window.  Each round has three windows, in this order: nothing attached
# (baseline), xprof block, perf record.  perf needs tracefs for the
# tracepoint, which is not mounted here: perf runs in a mount namespace of
# its own (unshare -m) where tracefs is mounted; the host's mounts never
# change (checked before and after).  The target is started here and
# killed by its pid at the end.

set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

ROUNDS=${BENCH_BLOCK_ROUNDS:-5}
SECS=${BENCH_BLOCK_SECONDS:-4}
XPROF=./xprof
TARGET=build/fixtures/switcher
DOC=docs/benchmarks.md
KEY=block
HEADING="xprof block vs perf record -e sched:sched_switch (context-switch-heavy target)"

die() { echo "bench/block: $*" >&2; exit 1; }
. bench/lib.sh

[[ $ROUNDS =~ ^[1-9][0-9]*$ ]] || die "BENCH_BLOCK_ROUNDS must be a positive integer (got '$ROUNDS')"
[[ $SECS =~ ^[1-9][0-9]*$ ]] || die "BENCH_BLOCK_SECONDS must be a positive integer (got '$SECS')"
[ -x "$XPROF" ] || die "$XPROF is not built: run 'make all fixtures' (or 'make bench')"
[ -x "$TARGET" ] || die "$TARGET is not built: run 'make fixtures' (or 'make bench')"
PERF=$(command -v perf 2>/dev/null) || die "perf not found (Debian: apt-get install linux-perf)"
command -v unshare >/dev/null || die "unshare not found (Debian: apt-get install util-linux)"
[ "$(id -u)" = 0 ] || die "run as root: perf's tracepoint needs tracefs mounted (privately) and xprof block needs perf_event_open with kernel access"
unset DEBUGINFOD_URLS

TMP=$(mktemp -d "${TMPDIR:-/tmp}/xprof-bench-block.XXXXXX")
TPID=
cleanup() {
	local rc=$?
	trap - EXIT INT TERM
	if [ -n "$TPID" ]; then
		kill -KILL "$TPID" 2>/dev/null || true
		wait "$TPID" 2>/dev/null || true
	fi
	rm -rf "$TMP"
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

mounts_before=$(md5sum </proc/self/mountinfo)
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)

"$TARGET" >"$TMP/target.out" 2>&1 &
TPID=$!
for i in $(seq 1 500); do grep -q '^ready' "$TMP/target.out" && break; sleep 0.01; done
grep -q '^ready' "$TMP/target.out" || die "the target did not start"

# mark: the target's pass count and time now ("PASSES NS")
mark() {
	local n
	n=$(grep -c '^passes' "$TMP/target.out" || true)
	kill -USR1 "$TPID"
	for i in $(seq 1 500); do
		[ "$(grep -c '^passes' "$TMP/target.out" || true)" -gt "$n" ] && break
		sleep 0.01
	done
	grep '^passes' "$TMP/target.out" | tail -n 1 | awk '{ print $2, $4 }'
}

# perf inside a mount namespace of its own, where tracefs is mounted
PERF_SH='mount --make-rprivate / && mount -t tracefs tracefs /sys/kernel/tracing &&
	exec "$0" record -e sched:sched_switch --call-graph dwarf -p "$1" -o "$2" -- sleep "$3"'

DATA=$TMP/runs.tsv
: >"$DATA"
for round in $(seq 1 "$ROUNDS"); do
	for tool in baseline xprof perf; do
		rm -f "$TMP/x.pb.gz" "$TMP/perf.data"
		read -r p0 t0 < <(mark)
		case $tool in
		baseline) sleep "$SECS"; rc=0 ;;
		xprof) /usr/bin/time -o "$TMP/time" -f '%U %S' "$XPROF" block -p "$TPID" -d "${SECS}s" -o "$TMP/x.pb.gz" \
			>"$TMP/err" 2>&1 && rc=0 || rc=$? ;;
		perf) /usr/bin/time -o "$TMP/time" -f '%U %S' unshare -m sh -c "$PERF_SH" "$PERF" "$TPID" "$TMP/perf.data" "$SECS" \
			>"$TMP/err" 2>&1 && rc=0 || rc=$? ;;
		esac
		read -r p1 t1 < <(mark)
		rate=$(awk -v a="$p0" -v b="$p1" -v s="$t0" -v e="$t1" 'BEGIN { printf "%.0f", (b - a) / ((e - s) / 1e9) }')
		cpu=NA waits=NA lost=0
		[ "$tool" != baseline ] && read -r us sy < <(tail -n 1 "$TMP/time") && cpu=$(awk -v u="$us" -v s="$sy" 'BEGIN { printf "%.2f", u + s }')
		case $tool in
		xprof)
			[ "$rc" -le 1 ] && [ -f "$TMP/x.pb.gz" ] || die "xprof block failed (exit $rc): $(tail -n 2 "$TMP/err")"
			waits=$(sed -n 's/.* \([0-9]*\) waits, .*/\1/p' "$TMP/err")
			lost=$(sed -n 's/.*xprof: \([0-9]*\) records were lost.*/\1/p' "$TMP/err")
			;;
		perf)
			[ "$rc" = 0 ] && [ -f "$TMP/perf.data" ] || die "perf record failed (exit $rc): $(tail -n 3 "$TMP/err")"
			st=$("$PERF" report --stats -i "$TMP/perf.data" 2>/dev/null || true)
			waits=$(awk '/SAMPLE events:/ { print $3; exit }' <<<"$st")
			lost=$(awk '/LOST(_SAMPLES)? events:/ { n += $3 } END { print n + 0 }' <<<"$st")
			;;
		esac
		printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$round" "$tool" "$rate" "$cpu" "${waits:-NA}" "${lost:-0}" >>"$DATA"
		echo "bench/block: round $round $tool: $rate passes/s, cpu ${cpu} s, ${waits:-?} switches recorded, ${lost:-0} lost" >&2
	done
done
mounts_after=$(md5sum </proc/self/mountinfo)
[ "$mounts_before" = "$mounts_after" ] || die "the host's mount table changed during the benchmark"
LOAD_END=$(cut -d' ' -f1-3 /proc/loadavg)

python3 - "$DATA" "$SECS" "$ROUNDS" "$LOAD_START" "$LOAD_END" >"$TMP/body.md" <<'PY'
import statistics, sys

data, secs, rounds, load0, load1 = sys.argv[1:6]
runs = [l.rstrip("\n").split("\t") for l in open(data)]
by = {}
for r in runs:
    by.setdefault(r[1], []).append(r)
base = {r[0]: float(r[2]) for r in by["baseline"]}
print("`bench/block.sh`: build/fixtures/switcher, two threads passing a byte over two pipes")
print("(each pass: both threads block once and are woken), its own passes per second over")
print("windows of %s s, %s rounds of: nothing attached, `xprof block -d %ss`, `perf record -e" % (secs, rounds, secs))
print("sched:sched_switch --call-graph dwarf -p PID -- sleep %s` (in a mount namespace of its own" % secs)
print("with tracefs; the host's mount table was compared before and after: unchanged).")
print("xprof and perf (its dwarf default) copy 8 KiB of stack per switch.  Load average")
print("%s at the start, %s at the end (other work on the machine)." % (load0, load1))
print()
print("| tool | passes/s (median) | vs baseline (median of rounds) | tool CPU s (median) | switches recorded (median) | lost (total) |")
print("|---|---:|---:|---:|---:|---:|")
for tool in ("baseline", "xprof", "perf"):
    rs = by.get(tool, [])
    rates = [float(r[2]) for r in rs]
    ratios = [float(r[2]) / base[r[0]] for r in rs if base.get(r[0])]
    cpus = [float(r[3]) for r in rs if r[3] != "NA"]
    waits = [float(r[4]) for r in rs if r[4] not in ("NA", "")]
    lost = sum(int(r[5] or 0) for r in rs)
    name = {"baseline": "nothing attached", "xprof": "xprof block", "perf": "perf record sched_switch dwarf"}[tool]
    print("| %s | %.0f | %s | %s | %s | %s |" % (
        name, statistics.median(rates),
        "%.2f" % statistics.median(ratios) if tool != "baseline" else "1",
        "%.2f" % statistics.median(cpus) if cpus else "-",
        "%.0f" % statistics.median(waits) if waits else "-",
        lost if tool != "baseline" else "-"))
print()
print("Per round (passes/s): " + "; ".join(
    "%s: %s" % (k, ", ".join("%.0f" % float(r[2]) for r in by[k])) for k in ("baseline", "xprof", "perf")))
PY
cat "$TMP/body.md"
bash bench/md-section.sh "$DOC" "$KEY" "$HEADING" "$TMP/body.md"
