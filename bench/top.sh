#!/usr/bin/env bash
# bench/top.sh — how much xprof top slows its target, against xprof cpu at the
# same rate; writes the "top" section of docs/benchmarks.md and prints the
# table.  Run by `make bench`, from the repository root after `make all
# fixtures`; running it directly works too.
#
#   BENCH_TOP_ROUNDS=N       rounds (default 3)
#   BENCH_TOP_ITERATIONS=N   the target's work (default 3200000000, about
#                            4 s on 2 idle cores)
#   BENCH_TOP_HZ=N           the sampling rate of both (default 99)
#
# Each round runs build/fixtures/cpuwork (a fixed amount of work on nproc
# threads; it prints the wall time of its compute phase, work_ms) alone,
# then with `xprof cpu -p PID` attached, then with `xprof top -p PID`
# attached (standard output a file: the text table every second), in that
# order.  Both profilers are started the moment the target is, by the same
# code, and run until it exits; each is wrapped in GNU time for its own
# CPU.  Processes are only ever started here (under timeout) and waited
# for; nothing is killed by name.

set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

ROUNDS=${BENCH_TOP_ROUNDS:-3}
ITER=${BENCH_TOP_ITERATIONS:-3200000000}
HZ=${BENCH_TOP_HZ:-99}
NTHR=$(nproc)
XPROF=./xprof
TARGET=build/fixtures/cpuwork
DOC=docs/benchmarks.md
KEY=top
HEADING="xprof top: the target's slowdown against xprof cpu"
RUN_TIMEOUT=300

die() { echo "bench/top: $*" >&2; exit 1; }
. bench/lib.sh

[[ $ROUNDS =~ ^[1-9][0-9]*$ ]] || die "BENCH_TOP_ROUNDS must be a positive integer (got '$ROUNDS')"
[[ $ITER =~ ^[1-9][0-9]*$ ]] || die "BENCH_TOP_ITERATIONS must be a positive integer (got '$ITER')"
[[ $HZ =~ ^[1-9][0-9]*$ ]] || die "BENCH_TOP_HZ must be a positive integer (got '$HZ')"
[ -x "$XPROF" ] || die "$XPROF is not built: run 'make all fixtures' (or 'make bench')"
[ -x "$TARGET" ] || die "$TARGET is not built: run 'make fixtures' (or 'make bench')"
[ -x /usr/bin/time ] && /usr/bin/time --version 2>&1 | grep -q GNU || die "GNU time (/usr/bin/time) is required"

SECONDS=0
TMP=$(mktemp -d "${TMPDIR:-/tmp}/xprof-bench-top.XXXXXX")
TPID=
PPID_=
cleanup() {
	local rc=$?
	trap - EXIT INT TERM
	[ -n "$TPID" ] && kill -KILL "$TPID" 2>/dev/null && wait "$TPID" 2>/dev/null
	[ -n "$PPID_" ] && kill -TERM "$PPID_" 2>/dev/null && wait "$PPID_" 2>/dev/null
	rm -rf "$TMP"
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
BUSY_START=$(busy_cpus 1)

# run_one TOOL ROUND: the target, with TOOL (none, cpu, top) attached;
# appends "tool round work_ms profiler_cpu_ms samples_or_blocks" to $DATA
DATA=$TMP/runs.tsv
: >"$DATA"
run_one() {
	local tool=$1 round=$2 work pcpu=NA extra=NA us sy el mx
	"$TARGET" "$ITER" "$NTHR" >"$TMP/out" 2>&1 &
	TPID=$!
	case $tool in
	cpu)
		timeout -k 5 "$RUN_TIMEOUT" /usr/bin/time -o "$TMP/ptime" -f '%e %U %S %M' \
			"$XPROF" cpu -p "$TPID" -F "$HZ" -d 600s -o "$TMP/x.pb.gz" 2>"$TMP/perr" >/dev/null &
		PPID_=$!
		;;
	top)
		timeout -k 5 "$RUN_TIMEOUT" /usr/bin/time -o "$TMP/ptime" -f '%e %U %S %M' \
			"$XPROF" top -p "$TPID" -F "$HZ" >"$TMP/top.txt" 2>"$TMP/perr" &
		PPID_=$!
		;;
	esac
	wait "$TPID" || die "the target failed: $(tail -1 "$TMP/out")"
	TPID=
	if [ -n "$PPID_" ]; then
		wait "$PPID_" || true # xprof cpu: 1 when its target exits during the run
		PPID_=
		# GNU time says "Command exited with non-zero status N" first when so
		read -r el us sy mx < <(tail -n 1 "$TMP/ptime") || true
		pcpu=$(awk -v u="$us" -v s="$sy" 'BEGIN { printf "%.0f", (u + s) * 1000 }')
		if [ "$tool" = cpu ]; then
			extra=$(sed -n 's/.*: \([0-9]*\) samples over .*/\1/p' "$TMP/perr" | tail -1)
		else
			extra=$(grep -c '^--- ' "$TMP/top.txt" || true)
		fi
	fi
	work=$(awk '$1 == "work_ms" { print $2 }' "$TMP/out")
	printf '%s\t%s\t%s\t%s\t%s\n' "$tool" "$round" "${work:-NA}" "$pcpu" "${extra:-NA}" >>"$DATA"
	echo "bench/top: round $round $tool: work ${work:-?} ms, profiler CPU $pcpu ms ($extra)" >&2
}

run_one none 0 # warm-up: page cache
run_one cpu 0  # and xprof's debug-info cache
for ((r = 1; r <= ROUNDS; r++)); do
	for tool in none cpu top; do
		run_one "$tool" "$r"
	done
done
BENCH_S=$SECONDS
LOAD_END=$(cut -d' ' -f1-3 /proc/loadavg)
BUSY_END=$(busy_cpus 1)

export DATA ROUNDS ITER HZ NTHR TARGET BENCH_S LOAD_START LOAD_END BUSY_START BUSY_END
export MEASURED="$(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores, Linux $(uname -r)"
python3 - "$TMP/section.md" "$TMP/table.md" <<'PY'
import os, statistics, sys
E = os.environ
rows = [l.rstrip("\n").split("\t") for l in open(E["DATA"])]
def num(s):
    return None if s in ("NA", "") else float(s)
runs = [dict(tool=t, round=int(r), work=num(w), pcpu=num(p), extra=num(x)) for t, r, w, p, x in rows]
timed = [r for r in runs if r["round"] > 0]
def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None
base = med(r["work"] for r in timed if r["tool"] == "none")
label = {"none": "none (alone)", "cpu": "`xprof cpu -p PID -F %s`" % E["HZ"],
         "top": "`xprof top -p PID -F %s` (text mode)" % E["HZ"]}
table = ["| profiler | median work (ms) | median slowdown | profiler CPU (ms, median) | runs (work ms) |",
         "|---|--:|--:|--:|---|"]
S = {}
for t in ("none", "cpu", "top"):
    rs = [r for r in timed if r["tool"] == t]
    w = med(r["work"] for r in rs)
    slow = None if w is None or not base else 100.0 * (w / base - 1)
    S[t] = slow
    p = med(r["pcpu"] for r in rs)
    table.append("| %s | %s | %s | %s | %s |" % (
        label[t], "n/a" if w is None else "%.0f" % w,
        "0 (reference)" if t == "none" else ("n/a" if slow is None else "%+.1f%%" % slow),
        "—" if t == "none" else ("n/a" if p is None else "%.0f" % p),
        ", ".join("%.0f" % r["work"] if r["work"] is not None else "?" for r in rs)))
table = "\n".join(table) + "\n"
verdict = ""
if S["cpu"] is not None and S["top"] is not None:
    verdict = ("xprof top's slowdown is %+.1f%%, xprof cpu's %+.1f%% (difference %+.1f points)." %
               (S["top"], S["cpu"], S["top"] - S["cpu"]))
    alone = [r["work"] for r in timed if r["tool"] == "none" and r["work"] is not None]
    if len(alone) > 1 and base:
        spread = 100.0 * (max(alone) - min(alone)) / base
        verdict += ("  The target alone varied by %.0f%% of its median between rounds%s." % (
            spread, ": more than the difference, which is noise at this load"
            if spread > abs(S["top"] - S["cpu"]) else ""))
body = [
    "Measured %s; %s rounds, %s s in all.  Each round runs `%s %s %s` alone, with `xprof cpu -p "
    "PID -F %s -d 600s` attached and with `xprof top -p PID -F %s` attached (its standard output a "
    "file, so the text table every second), in that order; each profiler is started as soon as "
    "the target is and ends when it exits.  *work* is the target's own wall time of its compute "
    "phase (CLOCK_MONOTONIC from its first worker's creation to the last one's join); both "
    "profilers miss the same first moments (their attach), so the two are compared on equal "
    "terms.  *profiler CPU*: user+sys of the profiler's process (GNU time), its start-up "
    "included; the kernel's work taking samples is charged to the target." % (
        E["MEASURED"], E["ROUNDS"], E["BENCH_S"], E["TARGET"], E["ITER"], E["NTHR"], E["HZ"], E["HZ"]),
    "",
    table.rstrip("\n"),
    "",
    verdict,
    "",
    "With %s worker threads on %s cores any CPU a profiler uses is taken from the target.  "
    "Busy CPUs (other processes, /proc/stat over 1 s): %s before, %s after; load average %s at "
    "the start, %s at the end." % (E["NTHR"], os.cpu_count(), E["BUSY_START"], E["BUSY_END"],
                                    E["LOAD_START"], E["LOAD_END"]),
]
open(sys.argv[1], "w").write("\n".join(body) + "\n")
open(sys.argv[2], "w").write(table + "\n" + verdict + "\n")
PY
bash bench/md-section.sh "$DOC" "$KEY" "$HEADING" "$TMP/section.md"
echo
echo "## $HEADING"
echo
cat "$TMP/table.md"
echo "written to $DOC"
