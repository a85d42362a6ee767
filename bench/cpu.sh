#!/usr/bin/env bash
# bench/cpu.sh — xprof cpu against perf record (--call-graph dwarf and -g) on
# one CPU-bound target; writes the "cpu" section of docs/benchmarks.md and
# prints the table.  Run by `make bench` after bench/run.sh, from the
# repository root after `make all fixtures`; running it directly works too.
#
#   BENCH_CPU_ROUNDS=N       timed rounds per frequency (default 5)
#   BENCH_CPU_ITERATIONS=N   the target's total work (default 1600000000,
#                            about 2 s on 2 idle cores)
#   BENCH_CPU_THREADS=N      the target's worker threads (default: nproc)
#
# For HZ in 99 and 999, each round runs, in this order, the target alone
# (baseline), under xprof cpu, under perf record --call-graph dwarf and under
# perf record -g, each launched fresh (build/fixtures/cpuwork prints the wall
# time of its compute phase, its own CPU time and peak RSS).  Every run is
# wrapped in GNU time for the user+sys CPU and peak RSS of the whole process
# tree.  Processes are only ever started here (under timeout); nothing is
# killed by name.

set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

ROUNDS=${BENCH_CPU_ROUNDS:-5}
ITER=${BENCH_CPU_ITERATIONS:-1600000000}
NTHR=${BENCH_CPU_THREADS:-$(nproc)}
FREQS=(99 999)
TOOLS=(baseline xprof perf-dwarf perf-g)
XPROF=./xprof
TARGET=build/fixtures/cpuwork
DOC=docs/benchmarks.md
KEY=cpu
HEADING="xprof cpu vs perf record (CPU-bound target)"
RUN_TIMEOUT=120 # s, per run

die() { echo "bench/cpu: $*" >&2; exit 1; }
. bench/lib.sh # the scripts run from the repository root

# ---- checks ----------------------------------------------------------------

[[ $ROUNDS =~ ^[1-9][0-9]*$ ]] || die "BENCH_CPU_ROUNDS must be a positive integer (got '$ROUNDS')"
[[ $ITER =~ ^[1-9][0-9]*$ ]] || die "BENCH_CPU_ITERATIONS must be a positive integer (got '$ITER')"
[[ $NTHR =~ ^[1-9][0-9]*$ ]] || die "BENCH_CPU_THREADS must be a positive integer (got '$NTHR')"
[ -x "$XPROF" ] || die "$XPROF is not built: run 'make all fixtures' (or 'make bench')"
[ -x "$TARGET" ] || die "$TARGET is not built: run 'make fixtures' (or 'make bench')"
if [ -x /usr/bin/perf ]; then
	PERF=/usr/bin/perf
else
	PERF=$(command -v perf 2>/dev/null) || die "perf not found (Debian: apt-get install linux-perf)"
fi
for t in timeout python3 awk; do
	command -v "$t" >/dev/null 2>&1 || die "'$t' not found in PATH"
done
[ -f bench/md-section.sh ] || die "bench/md-section.sh is missing"
# GNU time gives the peak RSS; without it, bash's time (no peak memory)
if [ -x /usr/bin/time ] && /usr/bin/time --version 2>&1 | grep -q GNU; then
	GNU_TIME=1
	TIMER="GNU time (/usr/bin/time -f '%e %U %S %M')"
else
	GNU_TIME=
	TIMER="bash's time builtin (no peak memory: /usr/bin/time is not GNU time or missing)"
	echo "bench/cpu: /usr/bin/time (GNU time) not found; using bash's time, without peak memory" >&2
fi
# no network lookups for debug info (perf report/script use debuginfod too)
unset DEBUGINFOD_URLS

SECONDS=0
TMP=$(mktemp -d "${TMPDIR:-/tmp}/xprof-bench-cpu.XXXXXX")
cleanup() {
	local rc=$?
	trap - EXIT INT TERM
	rm -rf "$TMP"
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

BUSY_START=$(busy_cpus 1)
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
if python3 -c "import sys; sys.exit(0 if float('$BUSY_START') > 0.3 else 1)"; then
	echo "bench/cpu: warning: $BUSY_START CPUs were busy with other work before the start; slowdowns will be noisy" >&2
fi

# ---- one run ---------------------------------------------------------------

tool_cmd() { # tool_cmd TOOL HZ -> CMD array
	local t=("$TARGET" "$ITER" "$NTHR")
	case $1 in
	baseline) CMD=("${t[@]}") ;;
	xprof) CMD=("$XPROF" cpu -F "$2" -o "$TMP/x.pb.gz" -- "${t[@]}") ;;
	perf-dwarf) CMD=("$PERF" record -e cpu-clock -F "$2" --call-graph dwarf -o "$TMP/perf.data" -- "${t[@]}") ;;
	perf-g) CMD=("$PERF" record -e cpu-clock -F "$2" -g -o "$TMP/perfg.data" -- "${t[@]}") ;;
	esac
}

# Share of perf script's samples whose outermost frame is the thread's or
# the process's first function.  perf script prints a header line per
# sample, its callchain innermost first (a tab, the address, symbol+off,
# the dso in parentheses; inlined functions as extra lines), a blank line.
# Prints "samples complete".
perf_complete() {
	local pre=()
	[ -n "$GNU_TIME" ] && pre=(/usr/bin/time -o "$TMP/script.time" -f '%U %S')
	: >"$TMP/script.time"
	"${pre[@]}" "$PERF" script -i "$1" 2>"$TMP/script.err" | awk '
		function done_() {
			if (!in_s) return
			n++
			s = last; sub(/\+0x[0-9a-f]+$/, "", s)
			if (s == "__clone3" || s == "clone3" || s == "__clone" || s == "clone" || s == "_start")
				c++
			in_s = 0; last = ""
		}
		/^$/ { done_(); next }
		/^[ \t]/ { if (in_s) last = $2; next }
		{ done_(); in_s = 1; last = "" }
		END { done_(); print n + 0, c + 0 }'
}

# run_one TOOL HZ ROUND: appends one line to $DATA
DATA=$TMP/runs.tsv
: >"$DATA"
run_one() {
	local tool=$1 hz=$2 round=$3 rc fail= el=NA us=NA sy=NA mx=NA
	local work cpu trss samples=NA complete=NA lost=0 size=NA other= scpu=NA
	tool_cmd "$tool" "$hz"
	rm -f "$TMP/x.pb.gz" "$TMP/perf.data" "$TMP/perfg.data"
	if [ -n "$GNU_TIME" ]; then
		timeout -k 5 "$RUN_TIMEOUT" /usr/bin/time -o "$TMP/time" -f '%e %U %S %M' \
			"${CMD[@]}" >"$TMP/out" 2>"$TMP/err" && rc=0 || rc=$?
		read -r el us sy mx <"$TMP/time" || true
	else
		local TIMEFORMAT='%R %U %S'
		{ time timeout -k 5 "$RUN_TIMEOUT" "${CMD[@]}" >"$TMP/out" 2>"$TMP/err"; } 2>"$TMP/time" && rc=0 || rc=$?
		read -r el us sy <"$TMP/time" || true
	fi
	work=$(awk '$1 == "work_ms" { print $2 }' "$TMP/out")
	cpu=$(awk '$1 == "cpu_ms" { print $2 }' "$TMP/out")
	trss=$(awk '$1 == "maxrss_kb" { print $2 }' "$TMP/out")
	case $rc in
	124 | 137) fail="timed out after ${RUN_TIMEOUT} s" ;;
	0) ;;
	1) [ "$tool" = xprof ] || fail="exit status 1" ;; # xprof: 1 = written, samples lost
	*) fail="exit status $rc: $(tail -n 1 "$TMP/err" | tr '\t' ' ')" ;;
	esac
	[ -n "$work" ] && [ -n "$cpu" ] || fail=${fail:-no work_ms/cpu_ms from the target}
	case $tool in
	xprof)
		local sum
		sum=$(grep ' samples over .* with a complete stack' "$TMP/err" | tail -n 1 || true)
		if [ -n "$sum" ]; then
			samples=$(sed -n 's/.*: \([0-9]*\) samples over .*/\1/p' <<<"$sum")
			complete=$(sed -n 's/.* \([0-9.]*\)% with a complete stack.*/\1/p' <<<"$sum")
		else
			fail=${fail:-no summary line on stderr}
		fi
		# lost: ", N lost" in the summary (newer xprof), else "N samples were lost"
		lost=$(sed -n 's/.* with a complete stack, \([0-9]*\) lost.*/\1/p' <<<"$sum")
		[ -n "$lost" ] || lost=$(sed -n 's/.*xprof: \([0-9]*\) samples were lost.*/\1/p' "$TMP/err" | tail -n 1)
		lost=${lost:-0}
		[ -f "$TMP/x.pb.gz" ] && size=$(stat -c %s "$TMP/x.pb.gz")
		other=$(grep -v -e ' samples over ' -e 'exited with status 0$' -e ': wrote ' \
			-e '^work_ms' "$TMP/err" | head -n 3 | tr '\t\n' '  ' || true)
		;;
	perf-dwarf | perf-g)
		local f=$TMP/perf.data st n c su= ss=
		[ "$tool" = perf-g ] && f=$TMP/perfg.data
		if [ -f "$f" ]; then
			size=$(stat -c %s "$f")
			st=$("$PERF" report --stats -i "$f" 2>/dev/null || true)
			samples=$(awk '/SAMPLE events:/ { print $3; exit }' <<<"$st")
			lost=$(awk '/cpu-clock stats:/ { exit } /LOST(_SAMPLES)? events:/ { n += $3 } END { print n + 0 }' <<<"$st")
			perf_complete "$f" >"$TMP/complete" # a pipeline: done, timing file written
			read -r n c <"$TMP/complete"
			read -r su ss <"$TMP/script.time" || true
			[ -n "${su:-}" ] && [ -n "${ss:-}" ] &&
				scpu=$(awk -v u="$su" -v s="$ss" 'BEGIN { printf "%.0f", (u + s) * 1000 }')
			if [ "${n:-0}" -gt 0 ]; then
				complete=$(awk -v n="$n" -v c="$c" 'BEGIN { printf "%.1f", 100 * c / n }')
				[ -n "$samples" ] && [ "$n" -ne "$samples" ] &&
					other="perf script printed $n samples, perf report --stats counts $samples;"
			else
				fail=${fail:-perf script printed no samples}
			fi
			other+=$(cat "$TMP/err" "$TMP/script.err" |
				grep -v -e '^\[ perf record: Woken up' -e '^\[ perf record: Captured and wrote' |
				head -n 3 | tr '\t\n' '  ' || true)
		else
			fail=${fail:-no $f written}
		fi
		samples=${samples:-NA}
		;;
	esac
	printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' \
		"$hz" "$round" "$tool" "${work:-NA}" "${cpu:-NA}" "${trss:-NA}" "$el" "$us" "$sy" "$mx" \
		"$samples" "$complete" "$lost" "$size" "$scpu" "${fail:--}" "${other:--}" >>"$DATA"
	LAST="$tool ${work:-?} ms"
	if [ "$tool" != baseline ]; then
		LAST+=" ($samples samples, $complete% complete"
		[ "$lost" != 0 ] && LAST+=", $lost LOST"
		LAST+=")"
	fi
	[ -n "$fail" ] && LAST+=" FAILED: $fail"
	return 0
}

# ---- warm-up (page cache, xprof's debug-info cache, perf's build-id cache) --

line="warm-up (99 Hz, not counted):"
for tool in "${TOOLS[@]}"; do
	run_one "$tool" 99 0
	line+=" $LAST;"
done
echo "bench/cpu: $line" >&2
echo "bench/cpu: $ROUNDS rounds at ${FREQS[*]} Hz; target $TARGET $ITER $NTHR" >&2

# ---- timed rounds ------------------------------------------------------------

for hz in "${FREQS[@]}"; do
	for ((r = 1; r <= ROUNDS; r++)); do
		line="$hz Hz round $r/$ROUNDS:"
		for tool in "${TOOLS[@]}"; do
			run_one "$tool" "$hz" "$r"
			line+=" $LAST;"
		done
		echo "bench/cpu: $line" >&2
	done
done

BENCH_S=$SECONDS
LOAD_END=$(cut -d' ' -f1-3 /proc/loadavg)
BUSY_END=$(busy_cpus 1)

# ---- statistics, the Markdown section, the table on stdout -------------------

export DATA ROUNDS ITER NTHR TARGET BENCH_S LOAD_START LOAD_END BUSY_START BUSY_END TIMER RUN_TIMEOUT
export GNU_TIME
export XPROF_VERSION=$("$XPROF" --version 2>&1 | head -n 1 || true)
export PERF_VERSION=$("$PERF" --version 2>&1 | head -n 1 || true)
export PERF
export MEASURED="$(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores, Linux $(uname -r)"
export FREQ_LIST="${FREQS[*]}"

python3 - "$TMP/section.md" "$TMP/table.md" <<'PY'
import os, statistics, sys

section_path, table_path = sys.argv[1:3]
E = os.environ
tools = ["baseline", "xprof", "perf-dwarf", "perf-g"]
label = {"baseline": "none (baseline)", "xprof": "`xprof cpu`",
         "perf-dwarf": "`perf record --call-graph dwarf`", "perf-g": "`perf record -g`"}
freqs = [int(f) for f in E["FREQ_LIST"].split()]
rounds = int(E["ROUNDS"])

def num(s):
    return None if s in ("NA", "", "-") else float(s)

runs = []   # dicts
with open(E["DATA"]) as f:
    for line in f:
        (hz, rnd, tool, work, cpu, trss, el, us, sy, mx, samples, complete, lost,
         size, scpu, fail, other) = line.rstrip("\n").split("\t")
        us, sy = num(us), num(sy)
        runs.append(dict(hz=int(hz), round=int(rnd), tool=tool, work=num(work),
                         cpu=num(cpu), trss=num(trss), el=num(el),
                         tcpu=None if us is None or sy is None else (us + sy) * 1000.0,
                         mx=num(mx), samples=num(samples), complete=num(complete),
                         lost=int(lost or 0), size=num(size), scpu=num(scpu),
                         fail=None if fail == "-" else fail,
                         other=None if other == "-" else other.strip()))

def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None

S = {}
for hz in freqs:
    for t in tools:
        rs = [r for r in runs if r["hz"] == hz and r["tool"] == t and r["round"] > 0]
        good = [r for r in rs if not r["fail"]]
        S[hz, t] = dict(rs=rs, good=good,
                        work=med(r["work"] for r in good),
                        cpu=med(r["cpu"] for r in good),
                        tcpu=med(r["tcpu"] for r in good),
                        samples=med(r["samples"] for r in good),
                        complete=med(r["complete"] for r in good),
                        mx=med(r["mx"] for r in good),
                        size=med(r["size"] for r in good),
                        lost=sum(r["lost"] for r in rs))

for hz in freqs:
    b = S[hz, "baseline"]
    for t in tools:
        s = S[hz, t]
        for r in s["rs"]:
            r["slow"] = (100.0 * (r["work"] / b["work"] - 1)
                         if r["work"] is not None and b["work"] else None)
            # the profiler's own CPU: the whole tree's user+sys (GNU time,
            # from wait4) minus the target's own, as the target reports it
            r["pcpu"] = (r["tcpu"] - r["cpu"]
                         if r["tcpu"] is not None and r["cpu"] is not None else None)
            # the overhead, target side included: minus the median baseline tree
            r["ocpu"] = (r["tcpu"] - b["tcpu"]
                         if r["tcpu"] is not None and b["tcpu"] is not None else None)
            r["pcpu_us"] = (1000.0 * r["pcpu"] / r["samples"]
                            if r["pcpu"] is not None and r["samples"] else None)
            r["ocpu_us"] = (1000.0 * r["ocpu"] / r["samples"]
                            if r["ocpu"] is not None and r["samples"] else None)
        good = s["good"]
        s["slow"] = med(r["slow"] for r in good)
        s["pcpu"] = med(r["pcpu"] for r in good)
        s["pcpu_us"] = med(r["pcpu_us"] for r in good)
        s["ocpu_us"] = med(r["ocpu_us"] for r in good)

def f1(x, unit=""):
    return "n/a" if x is None else "%.1f%s" % (x, unit)

def fslow(x):
    return "n/a" if x is None else "%+.1f%%" % x

MiB = 1024.0 * 1024.0
gnu = bool(E.get("GNU_TIME"))
header = ("| Hz | tool | median work (ms) | median slowdown | complete stacks | samples "
          "| xprof CPU per sample (µs) | xprof peak RSS / perf.data size (MiB) | failed runs |")
sep = "|--:|---|--:|--:|--:|--:|--:|--:|--:|"
table = [header, sep]
for hz in freqs:
    for t in tools:
        s = S[hz, t]
        nf = sum(1 for r in s["rs"] if r["fail"])
        if t == "baseline":
            cells = [str(hz), label[t], f1(s["work"]), "0 (reference)", "—", "—", "—", "—"]
        else:
            if t == "xprof":
                cpu = f1(s["pcpu_us"])
                mem = ("%.1f (RSS)" % (s["mx"] / 1024.0)) if gnu and s["mx"] else "n/a"
            else:
                cpu = "—"
                mem = ("%.1f (file)" % (s["size"] / MiB)) if s["size"] else "n/a"
            cells = [str(hz), label[t], f1(s["work"]), fslow(s["slow"]),
                     f1(s["complete"], "%"), "%.0f" % s["samples"] if s["samples"] else "n/a",
                     cpu, mem]
        cells.append("%d of %d" % (nf, len(s["rs"])))
        table.append("| " + " | ".join(cells) + " |")
table = "\n".join(table) + "\n"

# ---- aims
top = max(freqs)
xs, ds, gs = S[top, "xprof"], S[top, "perf-dwarf"], S[top, "perf-g"]
aims = []
if xs["slow"] is not None and ds["slow"] is not None:
    if ds["slow"] > 0:
        ratio = xs["slow"] / ds["slow"]
        verdict = "met" if ratio <= 0.5 else "not met"
        rtxt = "%.2f" % ratio
    else:
        ratio = None
        verdict = "met" if xs["slow"] <= 0 else "not met (perf's slowdown is not positive, so no ratio)"
        rtxt = "n/a"
    aims.append("- Slowdown: at %d Hz xprof's slowdown is %s, perf --call-graph dwarf's %s "
                "(ratio %s; aim ≤ 0.5): **%s**." % (
                    top, fslow(xs["slow"]), fslow(ds["slow"]), rtxt, verdict))
else:
    aims.append("- Slowdown: n/a (runs failed).")
if xs["complete"] is not None and gs["complete"] is not None:
    ok = xs["complete"] >= 99.0 and gs["complete"] <= 50.0
    aims.append("- Complete stacks: at %d Hz %s of xprof's samples have a complete stack, "
                "%s of perf -g's and %s of perf --call-graph dwarf's (aim: xprof ≥ 99%%, "
                "perf -g ≤ 50%% on this frame-pointer-less code): **%s**." % (
                    top, f1(xs["complete"], "%"), f1(gs["complete"], "%"),
                    f1(ds["complete"], "%"), "met" if ok else "not met"))

# ---- notes
lo, hi = min(freqs), max(freqs)
xl, xh = S[lo, "xprof"], S[hi, "xprof"]
marginal = None
if None not in (xl["pcpu"], xh["pcpu"], xl["samples"], xh["samples"]) and xh["samples"] > xl["samples"]:
    marginal = 1000.0 * (xh["pcpu"] - xl["pcpu"]) / (xh["samples"] - xl["samples"])
fixed = None if marginal is None else xl["pcpu"] - marginal * xl["samples"] / 1000.0
perf_own = []
for hz in freqs:
    for t in ("perf-dwarf", "perf-g"):
        s = S[hz, t]
        sc = med(1000.0 * r["scpu"] / r["samples"] for r in s["good"]
                 if r["scpu"] is not None and r["samples"])
        perf_own.append("%s at %d Hz %s µs (then perf script, unwinding and printing: %s µs)" % (
            t.replace("perf-", "perf "), hz, f1(s["pcpu_us"]), f1(sc)))
notes = []
notes.append(
    "- *slowdown* = the target's `work_ms` / the median `work_ms` of the baseline runs at "
    "the same frequency − 1.  `work_ms` is measured inside the target with CLOCK_MONOTONIC "
    "from the first worker's creation to the last one's join, so the profilers' start-up "
    "and their work after the target exits (perf's build-id pass and writing, xprof's "
    "symbolizing and writing) are not in it.  With %s worker threads on %s cores, a "
    "profiler's CPU use while the target runs competes with the target directly." % (
        E["NTHR"], os.cpu_count()))
notes.append(
    "- *xprof CPU per sample* = (user+sys CPU of the whole run, from %s, which "
    "counts xprof and its reaped child, the target) − (the target's own user+sys CPU, "
    "which it reports from getrusage(RUSAGE_SELF) just before it exits), divided by xprof's "
    "sample count; median over the runs.  It includes xprof's start-up, symbolizing and "
    "writing the profile, but not the kernel's work taking the samples, which runs in the "
    "target's context and is charged to the target.  Marginal cost between %d and %d Hz "
    "(difference of the median CPU times / difference of the median sample counts): %s µs "
    "per sample, and %s ms of CPU per run that does not grow with the samples.  Charging xprof instead with all CPU above the median baseline run "
    "(target's extra kernel time included): %s µs per sample at %d Hz.  The same "
    "subtraction for perf record's own process (its writing and build-id pass included): "
    "%s." % (
        E["TIMER"], lo, hi, f1(marginal), f1(fixed), f1(xh["ocpu_us"]), hi, "; ".join(perf_own)))
notes.append(
    "- *complete stacks*: xprof's share from its summary line; perf's, from `perf script -i "
    "FILE` (symbolized with the binary's symbols and libc6-dbg's), a sample counting as "
    "complete when its outermost frame is `__clone3`, `clone3`, `__clone`, `clone` or "
    "`_start`.  *samples* (median): xprof's summary line; for perf, `SAMPLE events` of "
    "`perf report --stats`.")
if gnu:
    notes.append(
        "- *peak RSS* of xprof: GNU time's `%%M`, the larger of xprof's and the target's peak "
        "RSS (wait4 reports both); the target's own is about %s MiB, so the figure is "
        "xprof's.  perf record's own peak RSS, for comparison: %s.  *perf.data size*: the "
        "file's size (`stat -c %%s`); xprof's pprof output is %s." % (
            f1(med(r["trss"] for r in S[lo, "baseline"]["good"]) / 1024.0
               if S[lo, "baseline"]["good"] else None),
            "; ".join("%s at %d Hz %s MiB" % (t.replace("perf-", "perf "), hz,
                                              f1(S[hz, t]["mx"] / 1024.0 if S[hz, t]["mx"] else None))
                      for hz in freqs for t in ("perf-dwarf", "perf-g")),
            ", ".join("%s KiB at %d Hz" % (f1(S[hz, "xprof"]["size"] / 1024.0
                                              if S[hz, "xprof"]["size"] else None), hz)
                      for hz in freqs)))
else:
    notes.append("- No peak memory: GNU time (/usr/bin/time) is missing, bash's time was used.")
lost = ["%s at %d Hz: %d" % (t, hz, S[hz, t]["lost"]) for hz in freqs
        for t in ("xprof", "perf-dwarf", "perf-g") if S[hz, t]["lost"]]
notes.append("- Lost samples (summed over the timed runs): %s." % (
    "; ".join(lost) if lost else "none, for every tool"))
notes.append(
    "- CPUs busy with other processes, measured over 1 s from /proc/stat: %s before "
    "the start, %s after the end; load average (1, 5, 15 min) %s at the start, %s at the "
    "end.  Anything else running on the machine inflates and scatters the slowdowns." % (
        E["BUSY_START"], E["BUSY_END"], E["LOAD_START"], E["LOAD_END"]))

odd, fails = [], []
for r in runs:
    where = "%s, %d Hz, %s" % (r["tool"], r["hz"], "warm-up" if r["round"] == 0 else "round %d" % r["round"])
    if r["fail"]:
        fails.append("- %s: %s" % (where, r["fail"]))
    if r["other"]:
        odd.append("- %s: %s" % (where, r["other"]))

raw = []
for hz in freqs:
    for t in tools:
        s = S[hz, t]
        parts = []
        for r in s["rs"]:
            p = f1(r["work"])
            if t != "baseline":
                p += " (%s, %s samples, %s CPU ms)" % (
                    fslow(r["slow"]), "%.0f" % r["samples"] if r["samples"] else "?",
                    "%.0f" % r["pcpu"] if r["pcpu"] is not None else "?")
            if r["fail"]:
                p += "!"
            parts.append(p)
        raw.append("- %d Hz `%s`: %s" % (hz, t, ", ".join(parts)))

T = "%s %s %s" % (E["TARGET"], E["ITER"], E["NTHR"])
body = []
body.append("Measured %s; the whole benchmark took %s s.  %d rounds at each of %s Hz; each "
            "round runs the target alone, under xprof, under perf record --call-graph dwarf "
            "and under perf record -g, in that order, each launched fresh, after one untimed "
            "warm-up run of each at %d Hz (page cache, xprof's debug-info cache, perf's "
            "build-id cache)." % (E["MEASURED"], E["BENCH_S"], rounds,
                                  " and ".join(str(f) for f in freqs), lo))
body.append("")
body.append(table.rstrip("\n"))
body.append("")
body.extend(aims)
body.append("")
body.extend(notes)
body.append("")
if fails:
    body.append("Failed runs (left out of the medians):")
    body.append("")
    body.extend(fails)
    body.append("")
if odd:
    body.append("Other messages from the tools:")
    body.append("")
    body.extend(odd)
    body.append("")
body.append(
    "The target is `%s` (`fixtures/cpuwork.c`): %s iterations of a hash-mixing loop split "
    "over %s threads, in `work` → `stage_a`/`stage_b` → the inline `mix`, built -O2 "
    "-fomit-frame-pointer; its stack is mix (inline), stage_a or stage_b, work, worker, "
    "start_thread, clone3.  Every run is `timeout -k 5 %s /usr/bin/time -o T -f '%%e %%U %%S %%M' "
    "CMD`, with CMD (HZ = 99 or 999; the target prints `work_ms`, `cpu_ms`, `maxrss_kb`):"
    % (E["TARGET"], E["ITER"], E["NTHR"], E["RUN_TIMEOUT"]))
body.append("")
body.append("```sh")
body.append(T)
body.append("./xprof cpu -F HZ -o x.pb.gz -- " + T)
body.append("perf record -e cpu-clock -F HZ --call-graph dwarf -o perf.data -- " + T)
body.append("perf record -e cpu-clock -F HZ -g -o perfg.data -- " + T)
body.append("perf report --stats -i FILE   # SAMPLE events, LOST events")
body.append("perf script -i FILE           # callchains, for the complete-stack share")
body.append("```")
body.append("")
body.append("The event is always cpu-clock (a software timer: this VM has no hardware "
            "counters).  perf record --call-graph dwarf copies 8 KiB of user stack per sample "
            "(its default) and unwinds only in perf script; xprof copies 16 KiB and unwinds "
            "as samples arrive.  `DEBUGINFOD_URLS` is unset.  Versions: %s; %s (%s)." % (
                E.get("XPROF_VERSION") or "xprof ?", E.get("PERF_VERSION") or "perf ?", E["PERF"]))
body.append("")
body.append("Raw `work_ms` per round (slowdown, samples, the profiler's own CPU ms; "
            "`!` marks a failed run):")
body.append("")
body.extend(raw)

with open(section_path, "w") as f:
    f.write("\n".join(body) + "\n")
with open(table_path, "w") as f:
    f.write(table + "\n" + "\n".join(aims) + "\n")
PY

bash bench/md-section.sh "$DOC" "$KEY" "$HEADING" "$TMP/section.md"

echo
echo "## $HEADING"
echo
cat "$TMP/table.md"
echo
echo "$ROUNDS rounds at ${FREQS[*]} Hz; whole cpu benchmark ${BENCH_S} s; written to $DOC"
