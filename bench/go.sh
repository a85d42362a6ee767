#!/usr/bin/env bash
# bench/go.sh — xprof threads on Go programs of 1000, 10000 and 100000
# goroutines against Go's own dump of them: how long each stops the
# program, how long xprof takes in all, xprof's peak memory; writes the
# "go" section of docs/benchmarks.md and prints the table.  Run by
# `make bench` after bench/heap.sh, from the repository root after
# `make all fixtures`; running it directly works too.
#
#   BENCH_GO_SIZES="N ..."  extra goroutines parked in the target (default
#                           "1000 10000 100000"; 1..1000000 each)
#   BENCH_GO_ROUNDS=N       rounds per size (default 5)
#   BENCH_GO_BUDGET=S       seconds of rounds per size (default 60): after
#                           3 rounds, a round that would likely end past it
#                           is not started (a dump of 100000 goroutines
#                           takes 8 s on a quiet 2-core machine, 15 s on a
#                           busy one)
#
# For each size one target is started (GOPARKED_EXTRA=N
# build/fixtures/goparked OUTDIR: N goroutines parked 5 frames deep in a
# channel receive, besides its dozen test goroutines; it prints "ready PID"
# and waits).  xprof threads runs on it once, untimed, its output kept: it
# must hold one "goroutine N [...]:" header per goroutine, N plus a few
# (the sanity check; also the page cache).  Then ROUNDS rounds, each
#   (a) SIGUSR1 to the target: it dumps all its goroutines itself as Go
#       does (pprof goroutine profile, debug=2, into io.Discard, the world
#       stopped) and appends the microseconds that took to OUTDIR/dump_us;
#       we wait for the new line;
#   (b) ./xprof threads -p PID >/dev/null, timed here, its "process stopped
#       for X ms" and "total Y ms" taken from its summary line on stderr.
# Alternating the two in every round spreads the machine's noise (shared,
# 2 cores, niced fuzzers) over both alike; medians are quoted.  After every
# xprof run the target's threads are checked not to be left stopped (state
# t or T in /proc/PID/task/*/stat); a run that leaves them stopped counts
# as a failure and the target is continued.  Only the targets started here
# are ever killed, by pid, also on error or interrupt.

set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

ROUNDS=${BENCH_GO_ROUNDS:-5}
BUDGET=${BENCH_GO_BUDGET:-60}
MIN_ROUNDS=3 # the fewest for a median worth quoting, budget or not
read -r -a SIZES <<<"${BENCH_GO_SIZES:-1000 10000 100000}"
XPROF=./xprof
TARGET=build/fixtures/goparked
DOC=docs/benchmarks.md
KEY=go
READY_TIMEOUT=180 # s, for the target's "ready" line (100000 goroutines: ~10 s)
DUMP_TIMEOUT=300  # s, per dump of Go's own (100000 goroutines: ~8 s)
RUN_TIMEOUT=300   # s, per xprof run
SMALL=50          # goroutines the target may have besides the N extra ones

die() { echo "bench/go: $*" >&2; exit 1; }
. bench/lib.sh # the scripts run from the repository root

# ---- checks ----------------------------------------------------------------

[[ $ROUNDS =~ ^[1-9][0-9]*$ ]] || die "BENCH_GO_ROUNDS must be a positive integer (got '$ROUNDS')"
[[ $BUDGET =~ ^[1-9][0-9]*$ ]] || die "BENCH_GO_BUDGET must be a positive number of seconds (got '$BUDGET')"
[ "${#SIZES[@]}" -gt 0 ] || die "BENCH_GO_SIZES is empty"
for n in "${SIZES[@]}"; do
	[[ $n =~ ^[1-9][0-9]*$ ]] && [ "$n" -le 1000000 ] ||
		die "BENCH_GO_SIZES: '$n' is not a number of goroutines between 1 and 1000000"
done
[ -x "$XPROF" ] || die "$XPROF is not built: run 'make all fixtures' (or 'make bench')"
[ -x "$TARGET" ] || die "$TARGET is not built: run 'make fixtures' (or 'make bench')"
for t in timeout python3 awk; do
	command -v "$t" >/dev/null 2>&1 || die "'$t' not found in PATH"
done
[ -f bench/md-section.sh ] || die "bench/md-section.sh is missing"
# GNU time gives xprof's peak RSS (the target is not xprof's child, so
# %M is xprof's own) and its CPU time (how much of a run was work, how
# much waiting for a CPU on a busy machine); without it, neither
if [ -x /usr/bin/time ] && /usr/bin/time --version 2>&1 | grep -q GNU; then
	GNU_TIME=1
else
	GNU_TIME=
	echo "bench/go: /usr/bin/time (GNU time, Debian package 'time') not found; no peak memory, no CPU time" >&2
fi
if [ "$(id -u)" != 0 ] && [ "$(cat /proc/sys/kernel/yama/ptrace_scope 2>/dev/null || echo 0)" != 0 ]; then
	echo "bench/go: warning: not root and kernel.yama.ptrace_scope != 0: attaching may be refused" >&2
fi
unset DEBUGINFOD_URLS

fint() { sed ':a;s/\B[0-9]\{3\}\>/,&/;ta' <<<"$1"; } # 100000 -> 100,000
HEADING="xprof threads vs Go's own goroutine dump ($(for n in "${SIZES[@]}"; do fint "$n"; done | paste -sd'#' | sed 's/#/, /g') goroutines)"

SECONDS=0
TMP=$(mktemp -d "${TMPDIR:-/tmp}/xprof-bench-go.XXXXXX")
TPID=

# ---- the target, killed by pid however we exit -------------------------------

kill_target() {
	if [ -n "$TPID" ] && kill -0 "$TPID" 2>/dev/null; then
		kill -CONT "$TPID" 2>/dev/null || true
		kill -KILL "$TPID" 2>/dev/null || true
	fi
	[ -n "$TPID" ] && { wait "$TPID" 2>/dev/null || true; }
	TPID=
}

cleanup() {
	local rc=$?
	trap - EXIT INT TERM
	kill_target
	rm -rf "$TMP"
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

mem_available_kb() { awk '$1 == "MemAvailable:" { print $2 }' /proc/meminfo; }

BUSY_START=$(busy_cpus 1)
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
if python3 -c "import sys; sys.exit(0 if float('$BUSY_START') > 0.3 else 1)"; then
	echo "bench/go: warning: $BUSY_START CPUs were busy with other work before the start; times will be noisy" >&2
fi

# Starts the target with N extra goroutines and waits for its "ready" line.
# Sets TPID, OUT (its OUTDIR), T_READY_MS, T_RSS_KB.
start_target() {
	local n=$1 t0 deadline rpid
	OUT=$TMP/out.$n
	mkdir -p "$OUT"
	# a file of its own, empty before the start: the child truncates it
	# only once it runs, and a file shared with the previous size could
	# still show that target's "ready" line to the loop below
	TOUT=$TMP/target.$n.out
	: >"$TOUT"
	stamp
	t0=$_now
	GOPARKED_EXTRA=$n "$TARGET" "$OUT" >"$TOUT" 2>&1 &
	TPID=$!
	deadline=$((t0 + READY_TIMEOUT * 1000000))
	until grep -q '^ready ' "$TOUT" 2>/dev/null; do
		kill -0 "$TPID" 2>/dev/null || die "target ($TARGET, $n extra goroutines) exited before it was ready: $(cat "$TOUT")"
		stamp
		[ "$_now" -lt "$deadline" ] || die "target ($TARGET, $n extra goroutines) not ready after ${READY_TIMEOUT} s"
		sleep 0.05
	done
	stamp
	T_READY_MS=$(((_now - t0) / 1000))
	read -r _ rpid <"$TOUT"
	[ "$rpid" = "$TPID" ] || die "target says it is pid $rpid, started as $TPID"
	T_RSS_KB=$(awk '$1 == "VmRSS:" { print $2 }' /proc/"$TPID"/status)
}

GODATA=$TMP/go.tsv       # n round dump_us wall_us
XDATA=$TMP/xprof.tsv     # n round rc wall_us maxrss_kb cpu_ms stopped errfile outfile
TARGETS=$TMP/targets.tsv # n ready_ms rss_kb rounds_done skipped
: >"$GODATA"
: >"$XDATA"
: >"$TARGETS"

# (a) Go's own dump: SIGUSR1, then wait for a new line in OUTDIR/dump_us.
# Sets LAST.  The target times the dump itself; the wall time measured
# here (signal to line seen, polled every 10 ms) is only a cross-check.
go_dump() { # go_dump N ROUND
	local n=$1 round=$2 before t0 deadline us
	before=$({ wc -l <"$OUT/dump_us"; } 2>/dev/null || echo 0)
	stamp
	t0=$_now
	deadline=$((t0 + DUMP_TIMEOUT * 1000000))
	kill -USR1 "$TPID" || die "cannot signal the target (pid $TPID)"
	while [ "$({ wc -l <"$OUT/dump_us"; } 2>/dev/null || echo 0)" -le "$before" ]; do
		kill -0 "$TPID" 2>/dev/null || die "the target (pid $TPID) died during its own dump"
		stamp
		[ "$_now" -lt "$deadline" ] || die "no new line in $OUT/dump_us ${DUMP_TIMEOUT} s after SIGUSR1"
		sleep 0.01
	done
	stamp
	us=$(tail -n 1 "$OUT/dump_us")
	[[ $us =~ ^[0-9]+$ ]] || die "unexpected line in $OUT/dump_us: '$us'"
	printf '%s\t%s\t%s\t%s\n' "$n" "$round" "$us" "$((_now - t0))" >>"$GODATA"
	LAST="Go's own dump $((us / 1000)) ms"
}

# (b) One xprof threads run on the current target; round 0 keeps its output
# (the sanity check), the timed rounds send it to /dev/null.  Appends to LAST.
xprof_run() { # xprof_run N ROUND
	local n=$1 round=$2 t0 rc wall mx=NA cpu=NA stopped=0 err=$TMP/err.$1.$2 out=/dev/null pause total
	local pre=()
	[ "$round" -eq 0 ] && out=$TMP/dump.$n.txt
	[ -n "$GNU_TIME" ] && pre=(/usr/bin/time -o "$TMP/time" -f '%M %U %S')
	: >"$TMP/time"
	stamp
	t0=$_now
	timeout -k 5 "$RUN_TIMEOUT" "${pre[@]}" "$XPROF" threads -p "$TPID" >"$out" 2>"$err" && rc=0 || rc=$?
	stamp
	wall=$((_now - t0))
	if [ -n "$GNU_TIME" ] && tail -n 1 "$TMP/time" | grep -qE '^[0-9]+ [0-9.]+ [0-9.]+$'; then
		read -r mx cpu < <(tail -n 1 "$TMP/time" | awk '{ printf "%s %d\n", $1, ($2 + $3) * 1000 }')
	fi
	if ! wait_running; then
		stopped=$STOPPED
		echo "bench/go: $n goroutines, round $round: xprof left $STOPPED threads stopped; sending SIGCONT to $TPID" >&2
		kill -CONT "$TPID" 2>/dev/null || true
		wait_running || die "target still has $STOPPED stopped threads after SIGCONT"
	fi
	printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$n" "$round" "$rc" "$wall" "$mx" "$cpu" "$stopped" "$err" "$out" >>"$XDATA"
	pause=$(sed -n 's/.*process stopped for \([0-9.]*\) ms.*/\1/p' "$err" | tail -n 1)
	total=$(sed -n 's/.*process stopped for .*, total \([0-9.]*\) ms.*/\1/p' "$err" | tail -n 1)
	LAST+="${LAST:+; }xprof pause ${pause:-?} ms, total ${total:-?} ms, wall $((wall / 1000)) ms"
	[ "$rc" -eq 0 ] || LAST+=", exit status $rc"
	[ "$stopped" -eq 0 ] || LAST+=", LEFT $stopped THREADS STOPPED"
	return 0
}

# ---- the sizes ---------------------------------------------------------------

echo "bench/go: sizes ${SIZES[*]} goroutines, $ROUNDS rounds each" >&2
DONE=() # "N: rounds done", for the last line
for n in "${SIZES[@]}"; do
	# the target (~4 KiB a goroutine), Go's dump buffers (up to 127 MiB
	# allocated while it retries), xprof's copy and tables (~1 KiB a
	# goroutine), with room to spare
	need_kb=$((n * 8 + 512 * 1024))
	avail_kb=$(mem_available_kb)
	if [ "${avail_kb:-0}" -lt "$need_kb" ]; then
		echo "bench/go: skipping $n goroutines: $((avail_kb / 1024)) MiB available, about $((need_kb / 1024)) MiB needed" >&2
		printf '%s\tNA\tNA\t0\t%s\n' "$n" "only $((avail_kb / 1024)) MiB available, about $((need_kb / 1024)) MiB needed" >>"$TARGETS"
		continue
	fi
	start_target "$n"
	# Go's own dump at start-up, for the sanity check's cross-check
	cp "$OUT/goroutines.txt" "$TMP/go-startup.$n.txt" 2>/dev/null || : >"$TMP/go-startup.$n.txt"
	echo "bench/go: $n goroutines: target pid $TPID ready in $T_READY_MS ms, RSS $((T_RSS_KB / 1024)) MiB" >&2
	LAST=
	xprof_run "$n" 0
	echo "bench/go: $n goroutines, sanity run (not counted): $LAST, $(grep -c '^goroutine [0-9]* \[' "$TMP/dump.$n.txt" || true) goroutine headers" >&2
	stamp
	rounds_t0=$_now
	for ((r = 1; r <= ROUNDS; r++)); do
		stamp
		round_t0=$_now
		LAST=
		go_dump "$n" "$r"
		xprof_run "$n" "$r"
		echo "bench/go: $n goroutines, round $r/$ROUNDS: $LAST" >&2
		stamp
		# another round as long as this one would end past the budget
		if [ "$r" -ge "$MIN_ROUNDS" ] && [ "$r" -lt "$ROUNDS" ] &&
			[ $((2 * _now - round_t0 - rounds_t0)) -gt $((BUDGET * 1000000)) ]; then
			echo "bench/go: $n goroutines: $r rounds took $(((_now - rounds_t0) / 1000000)) s; no more (BENCH_GO_BUDGET=$BUDGET s)" >&2
			r=$((r + 1))
			break
		fi
	done
	printf '%s\t%s\t%s\t%s\t-\n' "$n" "$T_READY_MS" "$T_RSS_KB" "$((r - 1))" >>"$TARGETS"
	DONE+=("$n: $((r - 1))")
	kill_target
done

BENCH_S=$SECONDS
LOAD_END=$(cut -d' ' -f1-3 /proc/loadavg)
BUSY_END=$(busy_cpus 1)

# ---- statistics, the Markdown section, the table on stdout -------------------

cpu_model=$(awk -F': *' '/^model name/ { print $2; exit }' /proc/cpuinfo 2>/dev/null || true)
export GODATA XDATA TARGETS TMP ROUNDS BUDGET MIN_ROUNDS BENCH_S LOAD_START LOAD_END BUSY_START BUSY_END
export RUN_TIMEOUT DUMP_TIMEOUT GNU_TIME TARGET SMALL
export XPROF_VERSION=$("$XPROF" --version 2>&1 | head -n 1 || true)
export GO_BUILD_VERSION=$(go version "$TARGET" 2>/dev/null | awk '{ print $2 }' || true)
export MEASURED="$(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores (${cpu_model:-unknown CPU}), $(awk '$1 == "MemTotal:" { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo) RAM, Linux $(uname -r)"
export SIZE_LIST="${SIZES[*]}"

python3 - "$TMP/section.md" "$TMP/table.md" "$TMP/failures" <<'PY'
import os, re, statistics, sys

section_path, table_path, failures_path = sys.argv[1:4]
E = os.environ
sizes = [int(s) for s in E["SIZE_LIST"].split()]
rounds = int(E["ROUNDS"])
small = int(E["SMALL"])
HEADER = re.compile(rb"^goroutine [0-9]+ \[", re.M)

def num(s):
    return None if s in ("NA", "", "-") else float(s)

def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None

def fint(x):
    return "n/a" if x is None else "{:,}".format(int(round(x)))

def f1(x):
    if x is None:
        return "n/a"
    return "%.0f" % x if x >= 100 else "%.1f" % x if x >= 10 else "%.2f" % x

def mib(b):
    return "%.1f MiB" % (b / 1048576.0) if b >= 1048576 else "%.0f KiB" % (b / 1024.0)

# How many times runtime/pprof's writeGoroutineStacks calls runtime.Stack
# (each a full stop-the-world pass over every goroutine) for a dump of
# `size` bytes: a 1 MiB buffer, doubled while the dump fills it, up to
# 64 MiB, where the dump is cut.
def passes(size):
    buf, k = 1 << 20, 1
    while size >= buf and buf < 64 << 20:
        buf, k = buf * 2, k + 1
    return k, size >= 64 << 20

T = {}
with open(E["TARGETS"]) as f:
    for line in f:
        n, ready, rss, done, skipped = line.rstrip("\n").split("\t")
        T[int(n)] = dict(ready=num(ready), rss=num(rss), done=int(done),
                         skipped=None if skipped == "-" else skipped)

G = {}
with open(E["GODATA"]) as f:
    for line in f:
        n, rnd, us, wall = line.rstrip("\n").split("\t")
        G.setdefault(int(n), []).append(dict(round=int(rnd), ms=int(us) / 1000.0, wall=int(wall) / 1000.0))

# xprof: pid 123 (goparked): go1.19.8 (layouts: known go1.19 layout), 10013
# goroutines (and 6 of the runtime's, not shown), process stopped for 12.34 ms, total 56 ms
SUM = re.compile(r"xprof: pid \d+ \(.*?\): (go[0-9][^ ,]*)(?: \(layouts: ([^)]*)\))?, (\d+) goroutines"
                 r"(?: \(and (\d+) of the runtime's[^)]*\))?, process stopped for ([0-9.]+) ms, total ([0-9.]+) ms")
runs, fails, odd = [], [], []
with open(E["XDATA"]) as f:
    for line in f:
        n, rnd, rc, wall, mx, cpu, stopped, errf, outf = line.rstrip("\n").split("\t")
        with open(errf, errors="replace") as ef:
            err = ef.read()
        r = dict(n=int(n), round=int(rnd), rc=int(rc), wall=int(wall) / 1000.0, mx=num(mx), cpu=num(cpu),
                 stopped=int(stopped), fail=[])
        m = SUM.findall(err)
        if m:
            a = m[-1]
            r.update(gover=a[0], layouts=a[1], count=int(a[2]), runtime=int(a[3] or 0),
                     pause=float(a[4]), own=float(a[5]))
        if r["rc"] in (124, 137):
            r["fail"].append("timed out after %s s" % E["RUN_TIMEOUT"])
        elif r["rc"] != 0:
            last = [l for l in err.splitlines() if l.strip()]
            r["fail"].append("exit status %d: %s" % (r["rc"], last[-1] if last else "no output"))
        if not m and r["rc"] not in (124, 137):
            r["fail"].append("no summary line on stderr")
        if r["stopped"]:
            r["fail"].append("left %d threads stopped" % r["stopped"])
        if r["round"] == 0:
            # the sanity check: the dump's headers, the summary's count
            # and N plus a few must agree
            with open(outf, "rb") as of:
                text = of.read()
            r["headers"] = len(HEADER.findall(text))
            r["bytes"] = len(text)
            if "count" in r and r["headers"] != r["count"]:
                r["fail"].append("the dump has %d goroutine headers, the summary says %d"
                                 % (r["headers"], r["count"]))
            if not r["n"] <= r["headers"] <= r["n"] + small:
                r["fail"].append("the dump has %d goroutine headers, expected %d to %d"
                                 % (r["headers"], r["n"], r["n"] + small))
            try:
                with open(os.path.join(E["TMP"], "go-startup.%d.txt" % r["n"]), "rb") as gf:
                    gt = gf.read()
                r["go_headers"], r["go_bytes"] = len(HEADER.findall(gt)), len(gt)
            except OSError:
                pass
        other = [l.strip() for l in err.splitlines() if l.strip() and not SUM.search(l)]
        where = "%s goroutines, %s" % (fint(r["n"]), "sanity run" if r["round"] == 0 else "round %d" % r["round"])
        if r["fail"]:
            fails.append("- %s: %s" % (where, "; ".join(r["fail"])))
        if other:
            odd.append("- %s: %s" % (where, " / ".join(other[:3])))
        runs.append(r)

S = {}
for n in sizes:
    rs = [r for r in runs if r["n"] == n and r["round"] > 0]
    san = next((r for r in runs if r["n"] == n and r["round"] == 0), None)
    got = [r for r in rs if "pause" in r and not any(x.startswith("timed out") for x in r["fail"])]
    gs = G.get(n, [])
    s = dict(rs=rs, san=san, got=got, gs=gs, nf=sum(1 for r in rs if r["fail"]) + (1 if san and san["fail"] else 0),
             go=med(g["ms"] for g in gs), gowall=med(g["wall"] for g in gs),
             pause=med(r["pause"] for r in got), own=med(r["own"] for r in got),
             wall=med(r["wall"] for r in got), cpu=med(r["cpu"] for r in got), mx=med(r["mx"] for r in got + ([san] if san else [])),
             count=med(r.get("count") for r in got))
    s["ratio"] = s["go"] / s["pause"] if s["go"] is not None and s["pause"] else None
    if san and "bytes" in san:
        s["passes"], s["cut"] = passes(san["bytes"])
    else:
        s["passes"], s["cut"] = None, False
    S[n] = s

header = ("| goroutines | Go's own dump, world stopped (ms) | its stop-the-world passes "
          "| xprof pause (ms) | xprof total (ms) | pause ratio, Go ÷ xprof "
          "| xprof peak RSS (MiB) | failed runs |")
sep = "|--:|--:|--:|--:|--:|--:|--:|--:|"
table = [header, sep]
for n in sizes:
    s, t = S[n], T.get(n, {})
    if t.get("skipped"):
        table.append("| %s | skipped | — | — | — | — | — | — |" % fint(n))
        continue
    count = fint(n)
    if s["count"] is not None:
        count += " (+%d)" % (s["count"] - n)
    if s["passes"] is not None and s["go"] is not None:
        ps = "%d (≈ %s ms each)" % (s["passes"], f1(s["go"] / s["passes"]))
        if s["cut"]:
            ps += ", dump cut at 64 MiB"
    else:
        ps = "n/a"
    ratio = "%.1f×" % s["ratio"] if s["ratio"] else "n/a"
    mx = "%.0f" % (s["mx"] / 1024.0) if s["mx"] else "n/a"
    table.append("| %s | %s | %s | %s | %s | %s | %s | %d of %d |" % (
        count, f1(s["go"]), ps, f1(s["pause"]), f1(s["own"]), ratio, mx,
        s["nf"], len(s["rs"]) + (1 if s["san"] else 0)))
table = "\n".join(table) + "\n"

notes = []
notes.append(
    "- *goroutines*: the N extra goroutines the target parks, and in parentheses how many "
    "more it has (its dozen test goroutines, main, the signal handler's): xprof's count, "
    "median over the timed runs.  xprof shows the runtime's own goroutines only in its "
    "count of hidden ones, as Go's dump leaves them out.")
notes.append(
    "- *Go's own dump* is the target's own timing (`time.Since` around "
    "`pprof.Lookup(\"goroutine\").WriteTo(io.Discard, 2)`), median over the rounds.  "
    "That is `runtime.Stack(buf, true)` in runtime/pprof's retry loop: it starts with a "
    "1 MiB buffer and, while the dump fills it, allocates one twice as large and dumps "
    "again, up to 64 MiB, where the dump is cut.  Each `runtime.Stack` call stops the "
    "world, formats every goroutine (even past the end of a full buffer) and restarts "
    "it, so the program is stopped for nearly all of the time quoted, in that many "
    "passes of about equal length (*its stop-the-world passes*, from the size of the "
    "dump: xprof's output of the sanity run, which is Go's format; \"each\" is the "
    "time divided by the passes, an estimate of the longest single stop).")
notes.append(
    "- *xprof pause* is xprof's \"process stopped for\" figure: every thread stopped, "
    "`runtime.allgs`, each `runtime.g` and each goroutine's stack copied, the threads "
    "released; unwinding, symbolizing and formatting come after the release.  *xprof "
    "total* is xprof's own \"total\" figure; the wall time measured around the run "
    "(bash `$EPOCHREALTIME`, start-up and exit included) is in the notes per size.  "
    "*pause ratio*: the median of Go's dump ÷ the median of xprof's pause.  On a busy "
    "machine all these times include waiting for a CPU, xprof's pause too (the target "
    "stays stopped meanwhile); xprof's CPU time (GNU time's `%U` + `%S`), in the notes "
    "per size, is the work alone.")
notes.append(
    "- *xprof peak RSS*: GNU time's `%M` (maximum resident set size of xprof; the target "
    "is not its child), median over every run of the size.")
notes.append(
    "- *failed runs* counts xprof runs (the sanity run included) that timed out, exited "
    "non-zero, printed no summary, left any of the target's threads stopped (state `t`/`T` "
    "in `/proc/PID/task/*/stat` 1 s after xprof exited), or, for the sanity run, whose "
    "output did not hold exactly as many `goroutine N [...]:` headers as its summary "
    "counted, between N and N+%d." % small)
for n in sizes:
    s, t = S[n], T.get(n, {})
    if t.get("skipped"):
        notes.append("- %s goroutines: skipped, %s." % (fint(n), t["skipped"]))
        continue
    san = s["san"] or {}
    line = ("- %s goroutines: the target was ready after %s ms with an RSS of %.0f MiB.  "
            "Sanity run: %s goroutine headers in %s of output (summary: %s goroutines, %s "
            "of the runtime's not shown)" % (
                fint(n), fint(t["ready"]), t["rss"] / 1024.0, fint(san.get("headers")),
                mib(san["bytes"]) if "bytes" in san else "n/a", fint(san.get("count")),
                fint(san.get("runtime"))))
    if "go_headers" in san:
        line += "; Go's own dump at the target's start-up (OUTDIR/goroutines.txt): %s headers in %s" % (
            fint(san["go_headers"]), mib(san["go_bytes"]))
    line += (".  xprof's runs (median): wall time %s ms, CPU time (user + system) %s ms; Go's dumps, "
             "from SIGUSR1 to the line in dump_us: %s ms." % (f1(s["wall"]), f1(s["cpu"]), f1(s["gowall"])))
    if t["done"] < rounds:
        line += ("  Only %d rounds: they took longer than BENCH_GO_BUDGET (%s s) allowed for %d." % (
            t["done"], E["BUDGET"], rounds))
    notes.append(line)
notes.append(
    "- The target has a goroutine (`busy`) that spins the whole time, so on a 2-core "
    "machine one core is taken; Go's dump (one thread formats while the world is stopped) "
    "and xprof share the other with everything else.  CPUs busy with other processes, "
    "measured over 1 s from /proc/stat: %s before the start, %s after the end; load average "
    "(1, 5, 15 min) %s at the start, %s at the end." % (
        E["BUSY_START"], E["BUSY_END"], E["LOAD_START"], E["LOAD_END"]))

raw = []
for n in sizes:
    s = S[n]
    if not s["rs"] and not s["gs"]:
        continue
    gd = {g["round"]: g for g in s["gs"]}
    parts = []
    for r in s["rs"]:
        g = gd.get(r["round"])
        p = "Go %s / xprof pause %s, total %s" % (
            f1(g["ms"]) if g else "?", f1(r.get("pause")), f1(r.get("own")))
        if r["fail"]:
            p += " !"
        parts.append(p)
    raw.append("- %s goroutines: %s" % (fint(n), "; ".join(parts)))

body = []
capped = any(t["done"] < rounds for t in T.values() if not t["skipped"])
body.append("Measured %s; the whole benchmark took %s s.  One target per size (started "
            "fresh, then killed), one untimed xprof run on it (the sanity check), then %d "
            "rounds%s, each Go's own dump of all goroutines, then one xprof run." % (
                E["MEASURED"], E["BENCH_S"], rounds,
                " (fewer where noted: at least %s, within about %s s of rounds per size)" % (
                    E["MIN_ROUNDS"], E["BUDGET"]) if capped else ""))
body.append("")
body.append(table.rstrip("\n"))
body.append("")
body.extend(notes)
body.append("")
if fails:
    body.append("Failed runs:")
    body.append("")
    body.extend(fails)
    body.append("")
if odd:
    body.append("Other messages from xprof:")
    body.append("")
    body.extend(odd)
    body.append("")
body.append(
    "The target is `%s` (`fixtures/go/parked/main.go`, %s): goroutines parked in a "
    "channel receive, a select, a sleep, a mutex, an accept, a sync.Cond, a send, a "
    "WaitGroup, an inlined receive, 13 frames deep, a labeled one and a spinning one; "
    "with `GOPARKED_EXTRA=N` also N goroutines in `main.parkDeep`, 5 frames deep in a "
    "channel receive, and a goroutine that dumps all goroutines on each SIGUSR1 and "
    "appends the microseconds to OUTDIR/dump_us.  The commands (N = %s):" % (
        E["TARGET"], E.get("GO_BUILD_VERSION") or "Go ?", ", ".join(str(n) for n in sizes)))
body.append("")
body.append("```sh")
body.append("GOPARKED_EXTRA=N %s OUTDIR   # prints: ready PID" % E["TARGET"])
body.append("./xprof threads -p PID >dump.txt 2>summary   # the sanity run, untimed")
body.append("kill -USR1 PID    # (a) Go's own dump; wait for a new line in OUTDIR/dump_us")
body.append("timeout -k 5 %s /usr/bin/time -o T -f '%%M %%U %%S' ./xprof threads -p PID >/dev/null 2>summary   # (b)"
            % E["RUN_TIMEOUT"])
body.append("```")
body.append("")
seen = sorted({"%s%s" % (r["gover"], " (layouts: %s)" % r["layouts"] if r["layouts"] else "")
               for r in runs if "gover" in r})
body.append("Versions: %s; the target built with %s; xprof's summary said: %s.  "
            "`DEBUGINFOD_URLS` is unset." % (
                E.get("XPROF_VERSION") or "xprof ?", E.get("GO_BUILD_VERSION") or "Go ?",
                "; ".join(seen) or "n/a"))
body.append("")
body.append("Raw rounds in ms (Go's dump, then xprof's pause and total; `!` marks a failed run):")
body.append("")
body.extend(raw)

with open(section_path, "w") as f:
    f.write("\n".join(body) + "\n")
with open(table_path, "w") as f:
    f.write(table)
with open(failures_path, "w") as f:
    f.write("\n".join(fails) + ("\n" if fails else ""))
PY

bash bench/md-section.sh "$DOC" "$KEY" "$HEADING" "$TMP/section.md"

echo
echo "## $HEADING"
echo
cat "$TMP/table.md"
echo
if [ -s "$TMP/failures" ]; then
	echo "Failed runs:"
	cat "$TMP/failures"
	echo
fi
echo "rounds done per size (of $ROUNDS): $(IFS=,; echo "${DONE[*]:-none}" | sed 's/,/, /g'); whole go benchmark ${BENCH_S} s; written to $DOC"
