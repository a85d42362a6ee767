#!/usr/bin/env bash
# bench/run.sh — xprof threads against eu-stack and gdb on one 1000-thread
# target; writes the "threads" section of docs/benchmarks.md and prints the
# table.  Run by `make bench` from the repository root after `make all
# fixtures`; running it directly works too.
#
#   BENCH_ROUNDS=N   timed rounds (default 7); each round runs xprof, eu-stack,
#                    gdb once, in that order, on the same target
#
# One target (build/fixtures/parked-O2 993: main + 6 named threads + 993 pool
# threads = 1000) is started, and only it is ever killed, by pid, on exit.
# After every tool run the target's threads are checked not to be left
# stopped (state t or T); a run that leaves them stopped counts as a failure.

set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

ROUNDS=${BENCH_ROUNDS:-7}
XPROF=./xprof
TARGET=build/fixtures/parked-O2
POOL=993                # main + 6 named + 993 pool threads = 1000
NTHREADS=1000
DOC=docs/benchmarks.md
KEY=threads
HEADING="xprof threads vs eu-stack vs gdb (1000-thread target)"
READY_TIMEOUT=30        # s, for the target's "ready" line
TOOL_TIMEOUT=120        # s, per tool run
GDB_SLOW_MS=60000       # a gdb run slower than this caps gdb's rounds ...
GDB_SLOW_ROUNDS=3       # ... at this many
TOOLS=(xprof xprof-cold eu-stack gdb)  # xprof-cold: debug-info cache off

die() { echo "bench: $*" >&2; exit 1; }
. bench/lib.sh # the scripts run from the repository root

# ---- checks ----------------------------------------------------------------

[[ $ROUNDS =~ ^[1-9][0-9]*$ ]] || die "BENCH_ROUNDS must be a positive integer (got '$ROUNDS')"
[ -x "$XPROF" ] || die "$XPROF is not built: run 'make all fixtures' (or 'make bench')"
[ -x "$TARGET" ] || die "$TARGET is not built: run 'make fixtures' (or 'make bench')"
for t in eu-stack gdb timeout python3 awk; do
	command -v "$t" >/dev/null 2>&1 ||
		die "'$t' not found in PATH; eu-stack is in Debian's elfutils, gdb in gdb (make deps installs both)"
done
[ -x bench/md-section.sh ] || [ -f bench/md-section.sh ] || die "bench/md-section.sh is missing"
if [ "$(id -u)" != 0 ] && [ "$(cat /proc/sys/kernel/yama/ptrace_scope 2>/dev/null || echo 0)" != 0 ]; then
	echo "bench: warning: not root and kernel.yama.ptrace_scope != 0: attaching may be refused" >&2
fi
# no network lookups for debug info: every tool uses what is on disk
unset DEBUGINFOD_URLS


stamp
BENCH_T0=$_now
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
TMP=$(mktemp -d "${TMPDIR:-/tmp}/xprof-bench.XXXXXX")
TPID=

# ---- the target, killed by pid however we exit -------------------------------

cleanup() {
	local rc=$?
	trap - EXIT INT TERM
	if [ -n "$TPID" ] && kill -0 "$TPID" 2>/dev/null; then
		kill -CONT "$TPID" 2>/dev/null || true
		kill -KILL "$TPID" 2>/dev/null || true
		wait "$TPID" 2>/dev/null || true
	fi
	rm -rf "$TMP"
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

"$TARGET" "$POOL" >"$TMP/target.out" 2>&1 &
TPID=$!

stamp
deadline=$((_now + READY_TIMEOUT * 1000000))
until grep -q '^ready ' "$TMP/target.out" 2>/dev/null; do
	kill -0 "$TPID" 2>/dev/null || die "target exited before it was ready: $(cat "$TMP/target.out")"
	stamp
	[ "$_now" -lt "$deadline" ] || die "target not ready after ${READY_TIMEOUT} s"
	sleep 0.05
done
read -r _ ready_pid <"$TMP/target.out"
[ "$ready_pid" = "$TPID" ] || die "target says it is pid $ready_pid, started as $TPID"
nthr=$(ls /proc/"$TPID"/task | wc -l)
[ "$nthr" -eq "$NTHREADS" ] || die "target has $nthr threads, expected $NTHREADS"
echo "bench: target pid $TPID, $nthr threads; $ROUNDS rounds" >&2

# ---- helpers -----------------------------------------------------------------

# After a run: check the target runs again.  Sets VIOLATION ("" when fine).
# A target left stopped is continued so the remaining runs stay meaningful.
check_target() {
	VIOLATION=
	wait_running && return 0
	VIOLATION="left $STOPPED threads stopped"
	echo "bench: $1 $VIOLATION; sending SIGCONT to $TPID" >&2
	kill -CONT "$TPID" 2>/dev/null || true
	wait_running || die "target still has $STOPPED stopped threads after SIGCONT"
}

tool_cmd() { # tool_cmd TOOL -> CMD array
	case $1 in
	xprof) CMD=("$XPROF" threads -p "$TPID") ;;
	xprof-cold) CMD=(env XPROF_CACHE_DIR=off "$XPROF" threads -p "$TPID") ;;
	eu-stack) CMD=(eu-stack -p "$TPID") ;;
	gdb) CMD=(gdb -batch -nx -p "$TPID" -ex 'thread apply all bt') ;;
	esac
}

# run_tool TOOL OUT ERR: one whole run, wall clock.  Sets US, RC.
run_tool() {
	local t0
	tool_cmd "$1"
	stamp
	t0=$_now
	timeout -k 5 "$TOOL_TIMEOUT" "${CMD[@]}" >"$2" 2>"$3" && RC=0 || RC=$?
	stamp
	US=$((_now - t0))
}

# Judge a finished run.  Sets FAIL ("" when the run counts).
judge() { # judge TOOL ERRFILE
	FAIL=
	case $RC in
	124 | 137) FAIL="timed out after ${TOOL_TIMEOUT} s" ;;
	esac
	if [ -z "$FAIL" ]; then
		case $1 in
		xprof | xprof-cold)
			if [ "$RC" -gt 1 ]; then
				FAIL="exit status $RC: $(tail -n 1 "$2")"
			elif ! grep -q 'process stopped for [0-9.]* ms' "$2"; then
				FAIL="no summary line on stderr"
			elif grep -q ' 0 frames,' "$2"; then
				FAIL="summary says 0 frames: $(tail -n 1 "$2")"
			fi
			;;
		eu-stack) [ "$RC" -le 1 ] || FAIL="exit status $RC" ;; # 1: some stack partial
		gdb) [ "$RC" -eq 0 ] || FAIL="exit status $RC" ;;
		esac
	fi
	check_target "$1"
	if [ -n "$VIOLATION" ]; then
		FAIL=${FAIL:+$FAIL; }$VIOLATION
	fi
}

SAMPLES=$TMP/samples.tsv # tool round us pause_ms fail
: >"$SAMPLES"
record() { # record TOOL ROUND US PAUSE FAIL
	printf '%s\t%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "${4:--}" "${5:--}" >>"$SAMPLES"
}

xprof_pause() { sed -n 's/.*process stopped for \([0-9.]*\) ms.*/\1/p' "$1" | tail -n 1; }

# ---- warm-up: page cache, debug info; its output gives the frame counts ------

declare -A FRAMES THREADS WARM_MS
gdb_rounds=$ROUNDS
gdb_capped=

for tool in "${TOOLS[@]}"; do
	if [ "${tool%-cold}" = xprof ]; then
		run_tool "$tool" /dev/null "$TMP/warm.$tool.err"
		FRAMES[$tool]=$(sed -n 's/.*, \([0-9]*\) frames,.*/\1/p' "$TMP/warm.$tool.err" | tail -n 1)
		THREADS[$tool]=$(sed -n 's/.*: \([0-9]*\) threads,.*/\1/p' "$TMP/warm.$tool.err" | tail -n 1)
	else
		run_tool "$tool" "$TMP/warm.$tool.out" "$TMP/warm.$tool.err"
		FRAMES[$tool]=$(grep -c '^#' "$TMP/warm.$tool.out" || true)
		if [ "$tool" = eu-stack ]; then
			THREADS[$tool]=$(grep -c '^TID ' "$TMP/warm.$tool.out" || true)
		else
			THREADS[$tool]=$(grep -c '^Thread ' "$TMP/warm.$tool.out" || true)
		fi
	fi
	judge "$tool" "$TMP/warm.$tool.err"
	WARM_MS[$tool]=$((US / 1000))
	record "$tool" 0 "$US" "" "$FAIL"
	echo "bench: warm-up $tool: $((US / 1000)) ms, ${THREADS[$tool]:-?} threads, ${FRAMES[$tool]:-?} frames${FAIL:+ — FAILED: $FAIL}" >&2
	if [ "$tool" = gdb ] && [ "$US" -gt $((GDB_SLOW_MS * 1000)) ] && [ "$gdb_rounds" -gt "$GDB_SLOW_ROUNDS" ]; then
		gdb_rounds=$GDB_SLOW_ROUNDS
		gdb_capped="the warm-up gdb run took $((US / 1000000)) s"
	fi
done

# ---- timed rounds ------------------------------------------------------------

gdb_done=0
for ((r = 1; r <= ROUNDS; r++)); do
	line="round $r/$ROUNDS:"
	for tool in "${TOOLS[@]}"; do
		if [ "$tool" = gdb ] && [ "$gdb_done" -ge "$gdb_rounds" ]; then
			continue
		fi
		pause=
		if [ "${tool%-cold}" = xprof ]; then
			run_tool "$tool" /dev/null "$TMP/run.err"
			pause=$(xprof_pause "$TMP/run.err")
		else
			run_tool "$tool" /dev/null /dev/null
		fi
		judge "$tool" "$TMP/run.err"
		record "$tool" "$r" "$US" "$pause" "$FAIL"
		line+=" $tool $((US / 1000)) ms${pause:+ (pause $pause ms)}${FAIL:+ FAILED: $FAIL};"
		if [ "$tool" = gdb ]; then
			gdb_done=$((gdb_done + 1))
			if [ "$US" -gt $((GDB_SLOW_MS * 1000)) ] && [ "$gdb_rounds" -gt "$GDB_SLOW_ROUNDS" ]; then
				gdb_rounds=$GDB_SLOW_ROUNDS
				gdb_capped="a gdb run took $((US / 1000000)) s"
			fi
		fi
	done
	echo "bench: $line" >&2
done

stamp
BENCH_S=$(((_now - BENCH_T0) / 1000000))
LOAD_END=$(cut -d' ' -f1-3 /proc/loadavg)

# ---- statistics, the Markdown section, the table on stdout -------------------

export LOAD_START LOAD_END SAMPLES ROUNDS POOL NTHREADS TOOL_TIMEOUT CLOCK BENCH_S gdb_rounds gdb_capped
export GDB_SLOW_MS GDB_SLOW_ROUNDS
export XPROF_VERSION=$("$XPROF" --version 2>&1 | head -n 1 || true)
export EU_VERSION=$(eu-stack --version 2>&1 | head -n 1 || true)
export GDB_VERSION=$(gdb --version 2>&1 | head -n 1 || true)
export MEASURED="$(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores, Linux $(uname -r)"
for tool in "${TOOLS[@]}"; do
	v=${tool//-/_}
	export "FRAMES_$v=${FRAMES[$tool]:-}" "THREADS_$v=${THREADS[$tool]:-}" "WARM_$v=${WARM_MS[$tool]}"
done

python3 - "$TMP/section.md" "$TMP/table.md" <<'PY'
import os, statistics, sys

section_path, table_path = sys.argv[1:3]
E = os.environ
tools = ["xprof", "xprof-cold", "eu-stack", "gdb"]
rounds = int(E["ROUNDS"])

rows = {t: [] for t in tools}          # timed runs: (round, ms, pause, fail)
warm_fail = {t: None for t in tools}
with open(E["SAMPLES"]) as f:
    for line in f:
        tool, rnd, us, pause, fail = line.rstrip("\n").split("\t")
        fail = None if fail == "-" else fail
        if rnd == "0":
            warm_fail[tool] = fail
            continue
        rows[tool].append((int(rnd), int(us) / 1000.0,
                           None if pause == "-" else float(pause), fail))

def fmt(ms):
    if ms is None:
        return "n/a"
    return "%.0f" % ms if ms >= 100 else "%.1f" % ms if ms >= 10 else "%.2f" % ms

stats = {}
for t in tools:
    good = [ms for _, ms, _, fail in rows[t] if not fail]
    pauses = [p for _, _, p, fail in rows[t] if not fail and p is not None]
    stats[t] = dict(
        n=len(rows[t]), good=len(good),
        med=statistics.median(good) if good else None,
        lo=min(good) if good else None, hi=max(good) if good else None,
        pause=statistics.median(pauses) if pauses else None,
        plo=min(pauses) if pauses else None, phi=max(pauses) if pauses else None,
        fails=[(r, fail) for r, _, _, fail in rows[t] if fail],
    )

base = stats["xprof"]["med"]
header = ("| tool | median total (ms) | min | max | median pause (ms) | frames "
          "| ratio to xprof | failed runs |")
sep = "|---|--:|--:|--:|--:|--:|--:|--:|"
table = [header, sep]
for t in tools:
    s = stats[t]
    v = t.replace("-", "_")
    if t.startswith("xprof"):
        pause = fmt(s["pause"])
        ratio = "%.1f×" % (s["med"] / base) if base and s["med"] else "n/a"
    else:
        pause = "whole run"
        ratio = "%.1f×" % (s["med"] / base) if base and s["med"] else "n/a"
    nfail = len(s["fails"]) + (1 if warm_fail[t] else 0)
    table.append("| %s | %s | %s | %s | %s | %s | %s | %d of %d |" % (
        "`%s`" % t, fmt(s["med"]), fmt(s["lo"]), fmt(s["hi"]), pause,
        E.get("FRAMES_" + v) or "?", ratio, nfail, s["n"] + 1))
table = "\n".join(table) + "\n"

gdb_rounds = int(E["gdb_rounds"])
notes = []
notes.append(
    "- *median pause* is how long the target's threads were stopped.  For xprof "
    "it is the \"process stopped for\" figure from its summary line (all threads "
    "stopped, registers and stacks copied, threads released; unwinding and "
    "symbolizing happen after the release)%s.  For eu-stack and gdb it is the "
    "whole run: gdb stops every thread for its whole run; eu-stack attaches the "
    "threads one at a time and keeps each stopped while it unwinds it, so the "
    "process is not running normally for the whole run either." % (
        " — range %s–%s ms over the timed runs" % (fmt(stats["xprof"]["plo"]),
                                                   fmt(stats["xprof"]["phi"]))
        if stats["xprof"]["pause"] is not None else ""))
notes.append(
    "- *ratio to xprof* is the tool's median total divided by xprof's median total.")
notes.append(
    "- `xprof` reads libc's debug info from its cache of decompressed debug files "
    "(filled by the warm-up run); `xprof-cold` is the same run with the cache off "
    "(`XPROF_CACHE_DIR=off`), paying the decompression of libc6-dbg's compressed "
    "sections on every run, as eu-stack and gdb do.")
notes.append(
    "- *frames* come from one untimed warm-up run of each tool on the same target: "
    "xprof's summary line; the lines starting with `#` in eu-stack's and gdb's "
    "output.  Threads seen: xprof %s, eu-stack %s, gdb %s (target: %s).  gdb's count "
    "is higher because it counts inlined frames; xprof's and eu-stack's count "
    "physical frames (xprof's text shows the inlined frames too, as eu-stack -i does)."
    % (E.get("THREADS_xprof") or "?", E.get("THREADS_eu_stack") or "?",
       E.get("THREADS_gdb") or "?", E["NTHREADS"]))
notes.append(
    "- *failed runs* counts runs (the warm-up included) that timed out, failed, "
    "or left any of the target's threads stopped (state `t`/`T` in "
    "`/proc/PID/task/*/stat` 1 s after the tool exited).  Failed runs are left "
    "out of the medians.")
if gdb_rounds < rounds:
    notes.append("- gdb ran %d rounds instead of %d: %s (more than %d s), so its "
                 "rounds were capped at %d to keep the benchmark short." % (
                     stats["gdb"]["n"], rounds, E["gdb_capped"],
                     int(E["GDB_SLOW_MS"]) // 1000, int(E["GDB_SLOW_ROUNDS"])))
notes.append(
    "- Load average (1, 5, 15 min) at the start: %s; at the end: %s (the target's "
    "spinning thread alone accounts for about 1)." % (E["LOAD_START"], E["LOAD_END"]))
notes.append(
    "- The target has one thread (`spinner`) that burns a CPU the whole time, "
    "so on a 2-core machine the tools share the other core with everything else.")

fail_lines = []
for t in tools:
    if warm_fail[t]:
        fail_lines.append("- `%s` warm-up: %s" % (t, warm_fail[t]))
    for r, fail in stats[t]["fails"]:
        fail_lines.append("- `%s` round %d: %s" % (t, r, fail))

raw = []
for t in tools:
    raw.append("- `%s`: %s (warm-up %s)" % (
        t, ", ".join(fmt(ms) + ("!" if fail else "") for _, ms, _, fail in rows[t]),
        E["WARM_" + t.replace("-", "_")]))
    if t == "xprof":
        raw.append("- `xprof` pause: %s" % ", ".join(
            fmt(p) if p is not None else "?" for _, _, p, _ in rows[t]))

body = []
body.append("Measured %s; the whole benchmark took %s s.  %d timed rounds%s; "
            "each round runs xprof, xprof-cold, eu-stack and gdb once, in that order, on the "
            "same target, after one untimed warm-up run of each (page cache, "
            "debug info)." % (
                E["MEASURED"], E["BENCH_S"], rounds,
                " (gdb: %d)" % stats["gdb"]["n"] if gdb_rounds < rounds else ""))
body.append("")
body.append(table.rstrip("\n"))
body.append("")
body.extend(notes)
body.append("")
if fail_lines:
    body.append("Failures:")
    body.append("")
    body.extend(fail_lines)
    body.append("")
body.append(
    "The target is `build/fixtures/parked-O2 %s`: main, 6 named threads parked "
    "in known places and %s pool threads in `pthread_cond_wait`, %s threads in "
    "all, started once and shared by every run.  Each run below is timed whole "
    "(start to exit, wall clock, with %s), under `timeout -k 5 %s`, output "
    "discarded:" % (E["POOL"], E["POOL"], E["NTHREADS"], E["CLOCK"], E["TOOL_TIMEOUT"]))
body.append("")
body.append("```sh")
body.append("./xprof threads -p PID >/dev/null 2>summary   # summary: stderr, for the pause")
body.append("XPROF_CACHE_DIR=off ./xprof threads -p PID >/dev/null 2>summary   # xprof-cold")
body.append("eu-stack -p PID >/dev/null 2>&1                # exit status 1 (a partial stack) is accepted")
body.append("gdb -batch -nx -p PID -ex 'thread apply all bt' >/dev/null 2>&1")
body.append("```")
body.append("")
body.append("`DEBUGINFOD_URLS` is unset, so no tool fetches debug info over the network.  "
            "Versions: %s; %s; %s." % (
                E.get("XPROF_VERSION") or "xprof ?", E.get("EU_VERSION") or "eu-stack ?",
                E.get("GDB_VERSION") or "gdb ?"))
body.append("")
body.append("Raw totals in ms, per round (`!` marks a failed run):")
body.append("")
body.extend(raw)

with open(section_path, "w") as f:
    f.write("\n".join(body) + "\n")
with open(table_path, "w") as f:
    f.write(table)
PY

bash bench/md-section.sh "$DOC" "$KEY" "$HEADING" "$TMP/section.md"

echo
echo "## $HEADING"
echo
cat "$TMP/table.md"
echo
echo "$ROUNDS rounds (gdb: $gdb_done)$([ -n "$gdb_capped" ] && echo ", gdb capped: $gdb_capped"); whole benchmark ${BENCH_S} s; written to $DOC"
