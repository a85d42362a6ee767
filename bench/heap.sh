#!/usr/bin/env bash
# bench/heap.sh — xprof heap on glibc heaps of small blocks (10 MB, 100 MB,
# 1 GB): how long the target is stopped, how long the whole run takes, how
# much is copied, xprof's peak memory; writes the "heap" section of
# docs/benchmarks.md and prints the table.  Run by `make bench` after
# bench/cpu.sh, from the repository root after `make all fixtures`; running
# it directly works too.
#
#   BENCH_HEAP_SIZES="MB ..."  heap sizes, in MiB of blocks (default
#                              "10 100 1000"; 1..16384 each)
#   BENCH_HEAP_ROUNDS=N        timed xprof runs per size (default 3)
#   BENCH_HEAP_BASELINE=BINARY another xprof (an older build) to measure on
#                              the real programs too, for a before/after
#                              (default: none)
#
# Then two real programs from Debian, as root (the PostgreSQL server runs as
# user postgres): an idle PostgreSQL backend with 1 GB of shared buffers
# (a cluster made with initdb in a temporary directory, on a Unix socket
# there only, stopped at the end) and a python3 holding 24 buffers of
# 204,800 bytes and 6,000 of 1,000, all reachable.  Each binary runs on a
# fresh target (a new psql session, a new python3): the pause, the MiB
# copied, the target's RssAnon and RssShmem before and after, and the share
# of in-use bytes called [unreachable].
#
# For each size one target is started (build/fixtures/heapbig MB: about MB
# MiB of 16..256-byte blocks in lists and arrays, from 3 threads, ~10%
# freed again, ~5% unreachable; it prints "ready PID BLOCKS BYTES
# UNREACHABLE UNREACHABLE_BYTES" and sleeps), xprof heap runs on it ROUNDS
# times (once more, untimed, before the first size: debug-info cache), and
# the target is killed, by pid.  After every run the target's threads are
# checked not to be left stopped (state t or T in /proc/PID/task/*/stat);
# a run that leaves them stopped counts as a failure and the target is
# continued.  Only the targets started here are ever killed, by pid, also
# on error or interrupt.

set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

ROUNDS=${BENCH_HEAP_ROUNDS:-3}
read -r -a SIZES <<<"${BENCH_HEAP_SIZES:-10 100 1000}"
XPROF=./xprof
TARGET=build/fixtures/heapbig
DOC=docs/benchmarks.md
KEY=heap
READY_TIMEOUT=120 # s, for the target's "ready" line
RUN_TIMEOUT=600   # s, per xprof run
PAUSE_AIM_MS=500  # "well under a second", for the largest heap of 1000 MB or more

die() { echo "bench/heap: $*" >&2; exit 1; }
. bench/lib.sh # the scripts run from the repository root

# ---- checks ----------------------------------------------------------------

[[ $ROUNDS =~ ^[1-9][0-9]*$ ]] || die "BENCH_HEAP_ROUNDS must be a positive integer (got '$ROUNDS')"
[ "${#SIZES[@]}" -gt 0 ] || die "BENCH_HEAP_SIZES is empty"
for mb in "${SIZES[@]}"; do
	[[ $mb =~ ^[1-9][0-9]*$ ]] && [ "$mb" -le 16384 ] ||
		die "BENCH_HEAP_SIZES: '$mb' is not a size in MB between 1 and 16384"
done
[ -x "$XPROF" ] || die "$XPROF is not built: run 'make all fixtures' (or 'make bench')"
[ -x "$TARGET" ] || die "$TARGET is not built: run 'make fixtures' (or 'make bench')"
for t in timeout python3 awk; do
	command -v "$t" >/dev/null 2>&1 || die "'$t' not found in PATH"
done
[ -f bench/md-section.sh ] || die "bench/md-section.sh is missing"
if [ -x /usr/bin/time ] && /usr/bin/time --version 2>&1 | grep -q GNU; then
	GNU_TIME=1
else
	GNU_TIME=
	echo "bench/heap: /usr/bin/time (GNU time) not found; no peak memory" >&2
fi
if [ "$(id -u)" != 0 ] && [ "$(cat /proc/sys/kernel/yama/ptrace_scope 2>/dev/null || echo 0)" != 0 ]; then
	echo "bench/heap: warning: not root and kernel.yama.ptrace_scope != 0: attaching may be refused" >&2
fi
# no network lookups for debug info
unset DEBUGINFOD_URLS

# heading from the sizes: "10 MB, 100 MB, 1 GB" for the default ones
size_label() { # size_label MB
	if [ "$1" -ge 1000 ] && [ $(($1 % 1000)) -eq 0 ]; then
		echo "$(($1 / 1000)) GB"
	else
		echo "$1 MB"
	fi
}
labels=()
for mb in "${SIZES[@]}"; do labels+=("$(size_label "$mb")"); done
HEADING="xprof heap (glibc heaps of $(IFS=,; echo "${labels[*]}" | sed 's/,/, /g'))"


SECONDS=0
TMP=$(mktemp -d "${TMPDIR:-/tmp}/xprof-bench-heap.XXXXXX")
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

PGDIR=
pg_down() {
	exec 3>&-
	if [ -n "$PGDIR" ] && [ -f "$PGDIR/data/postmaster.pid" ]; then
		runuser -u postgres -- "$PGBIN/pg_ctl" -D "$PGDIR/data" -m immediate -w stop >/dev/null 2>&1 || true
	fi
}

cleanup() {
	local rc=$?
	trap - EXIT INT TERM
	kill_target
	pg_down
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
	echo "bench/heap: warning: $BUSY_START CPUs were busy with other work before the start; times will be noisy" >&2
fi

# Starts the target for MB and waits for its "ready" line.  Sets TPID and
# T_BLOCKS T_BYTES T_UNREACH T_UNREACH_BYTES T_READY_MS T_RSS_KB.
start_target() {
	local mb=$1 t0 deadline rpid
	stamp
	t0=$_now
	# emptied here: the background child truncates it only when it runs,
	# and the loop below must not read the previous target's ready line
	: >"$TMP/target.out"
	"$TARGET" "$mb" >"$TMP/target.out" 2>&1 &
	TPID=$!
	deadline=$((t0 + READY_TIMEOUT * 1000000))
	until grep -q '^ready ' "$TMP/target.out" 2>/dev/null; do
		kill -0 "$TPID" 2>/dev/null || die "target ($TARGET $mb) exited before it was ready: $(cat "$TMP/target.out")"
		stamp
		[ "$_now" -lt "$deadline" ] || die "target ($TARGET $mb) not ready after ${READY_TIMEOUT} s"
		sleep 0.05
	done
	stamp
	T_READY_MS=$(((_now - t0) / 1000))
	read -r _ rpid T_BLOCKS T_BYTES T_UNREACH T_UNREACH_BYTES <"$TMP/target.out"
	[ "$rpid" = "$TPID" ] || die "target says it is pid $rpid, started as $TPID"
	T_RSS_KB=$(awk '$1 == "VmRSS:" { print $2 }' /proc/"$TPID"/status)
}

DATA=$TMP/runs.tsv # mb round rc wall_us maxrss_kb size stopped errfile
BDATA=$TMP/baseline.tsv # mb pause copied, the baseline's runs
: >"$BDATA"
TARGETS=$TMP/targets.tsv # mb blocks bytes unreach unreach_bytes ready_ms rss_kb skipped
: >"$DATA"
: >"$TARGETS"

# One xprof heap run on the current target.  Sets LAST (a short summary).
run_one() { # run_one MB ROUND
	local mb=$1 round=$2 t0 rc wall mx=NA size=NA stopped=0 err=$TMP/err.$1.$2 pause
	local pre=()
	[ -n "$GNU_TIME" ] && pre=(/usr/bin/time -o "$TMP/time" -f '%M')
	: >"$TMP/time"
	rm -f "$TMP/h.pb.gz"
	stamp
	t0=$_now
	timeout -k 5 "$RUN_TIMEOUT" "${pre[@]}" "$XPROF" heap -p "$TPID" -o "$TMP/h.pb.gz" >/dev/null 2>"$err" && rc=0 || rc=$?
	stamp
	wall=$((_now - t0))
	[ -n "$GNU_TIME" ] && mx=$(tail -n 1 "$TMP/time" | grep -E '^[0-9]+$' || echo NA)
	[ -f "$TMP/h.pb.gz" ] && size=$(stat -c %s "$TMP/h.pb.gz")
	if ! wait_running; then
		stopped=$STOPPED
		echo "bench/heap: $(size_label "$mb") round $round: xprof left $STOPPED threads stopped; sending SIGCONT to $TPID" >&2
		kill -CONT "$TPID" 2>/dev/null || true
		wait_running || die "target still has $STOPPED stopped threads after SIGCONT"
	fi
	printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$mb" "$round" "$rc" "$wall" "$mx" "$size" "$stopped" "$err" >>"$DATA"
	pause=$(sed -n 's/.*process stopped for \([0-9.]*\) ms.*/\1/p' "$err" | tail -n 1)
	LAST="$((wall / 1000)) ms, pause ${pause:-?} ms"
	[ "$rc" -eq 0 ] || LAST+=", exit status $rc"
	[ "$stopped" -eq 0 ] || LAST+=", LEFT $stopped THREADS STOPPED"
	if grep -q 'the walk is partial' "$err"; then
		LAST+=", $(grep -o 'the walk is partial.*' "$err" | tail -n 1)"
	fi
	return 0
}

# ---- the sizes ---------------------------------------------------------------

echo "bench/heap: sizes ${SIZES[*]} MB, $ROUNDS rounds each" >&2
warm=1
for mb in "${SIZES[@]}"; do
	need_kb=$((mb * 1024 * 3 + 512 * 1024)) # the target, xprof's copy, its tables
	avail_kb=$(mem_available_kb)
	if [ "${avail_kb:-0}" -lt "$need_kb" ]; then
		echo "bench/heap: skipping $(size_label "$mb"): $((avail_kb / 1024)) MiB available, about $((need_kb / 1024)) MiB needed" >&2
		printf '%s\tNA\tNA\tNA\tNA\tNA\tNA\t%s\n' "$mb" "only $((avail_kb / 1024)) MiB available, about $((need_kb / 1024)) MiB needed" >>"$TARGETS"
		continue
	fi
	start_target "$mb"
	printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t-\n' "$mb" "$T_BLOCKS" "$T_BYTES" "$T_UNREACH" "$T_UNREACH_BYTES" \
		"$T_READY_MS" "$T_RSS_KB" >>"$TARGETS"
	echo "bench/heap: $(size_label "$mb"): target pid $TPID ready in $T_READY_MS ms, $T_BLOCKS blocks, $T_BYTES bytes, RSS $((T_RSS_KB / 1024)) MiB" >&2
	if [ -n "$warm" ]; then
		run_one "$mb" 0
		echo "bench/heap: warm-up (not counted): $LAST" >&2
		warm=
	fi
	for ((r = 1; r <= ROUNDS; r++)); do
		run_one "$mb" "$r"
		echo "bench/heap: $(size_label "$mb") round $r/$ROUNDS: $LAST" >&2
		# the baseline between xprof's rounds, on the same target under the same load
		if [ -n "${BENCH_HEAP_BASELINE:-}" ]; then
			timeout -k 5 "$RUN_TIMEOUT" "$BENCH_HEAP_BASELINE" heap -p "$TPID" -o "$TMP/b.pb.gz" >/dev/null 2>"$TMP/berr" || true
			wait_running || { kill -CONT "$TPID" 2>/dev/null || true; }
			printf '%s\t%s\t%s\n' "$mb" "$(sed -n 's/.*process stopped for \([0-9.]*\) ms.*/\1/p' "$TMP/berr")" \
				"$(sed -n 's/.* while \([0-9.]*\) MiB were copied.*/\1/p' "$TMP/berr")" >>"$BDATA"
			echo "bench/heap: $(size_label "$mb") baseline: $(grep -h 'process stopped' "$TMP/berr" | sed 's/^xprof: //')" >&2
		fi
	done
	kill_target
done

# ---- real programs ---------------------------------------------------------------

PGBIN=/usr/lib/postgresql/15/bin
PY=/usr/bin/python3
BASELINE=${BENCH_HEAP_BASELINE:-}
[ -z "$BASELINE" ] || [ -x "$BASELINE" ] || die "BENCH_HEAP_BASELINE=$BASELINE is not an executable"
REAL=$TMP/real.tsv # program label round rc pause copied anon0 shm0 anon1 shm1 inuse unreach
: >"$REAL"
rss_of() { awk '$1 == "RssAnon:" { a = $2 } $1 == "RssShmem:" { s = $2 } END { print a "\t" s }' /proc/"$1"/status; }

# real_run PROGRAM LABEL BINARY ROUND: one run on TPID, one line in REAL
real_run() {
	local prog=$1 label=$2 bin=$3 round=$4 err=$TMP/real.err r0 r1 rc
	sleep 1.5 # idle: PostgreSQL flushes its statistics 1 s after a query
	r0=$(rss_of "$TPID")
	timeout -k 5 "$RUN_TIMEOUT" "$bin" heap -p "$TPID" -o "$TMP/r.pb.gz" >/dev/null 2>"$err" && rc=0 || rc=$?
	r1=$(rss_of "$TPID")
	printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$prog" "$label" "$round" "$rc" \
		"$(sed -n 's/.*process stopped for \([0-9.]*\) ms.*/\1/p' "$err")" \
		"$(sed -n 's/.* while \([0-9.]*\) MiB were copied.*/\1/p' "$err")" "$r0" "$r1" \
		"$(sed -n 's/.* blocks in use, \([0-9.]*\) MiB; .* unreachable blocks, \([0-9.]*\) MiB$/\1\t\2/p' "$err")" >>"$REAL"
	echo "bench/heap: $prog, $label, round $round: exit $rc, $(grep -h 'process stopped' "$err" | sed 's/^xprof: //')" >&2
}

# the binaries to compare: "label path" lines
bins=$(printf 'xprof %s\n' "$XPROF")
[ -z "$BASELINE" ] || bins=$(printf 'baseline %s\n%s' "$BASELINE" "$bins")

if [ "$(id -u)" = 0 ] && [ -x "$PGBIN/initdb" ] && [ -x /usr/bin/psql ] && id postgres >/dev/null 2>&1; then
	chmod 711 "$TMP"
	PGDIR=$TMP/pg
	mkdir "$PGDIR" && chown postgres "$PGDIR"
	runuser -u postgres -- "$PGBIN/initdb" -N -A trust -U postgres -D "$PGDIR/data" >/dev/null 2>&1 || die "initdb failed"
	runuser -u postgres -- "$PGBIN/pg_ctl" -D "$PGDIR/data" -l "$PGDIR/log" -w -t 60 \
		-o "-c listen_addresses='' -c unix_socket_directories=$PGDIR -c shared_buffers=1GB" start >/dev/null 2>&1 ||
		die "postgres did not start: $(tail -3 "$PGDIR/log")"
	mkfifo -m 600 "$PGDIR/in" && chown postgres "$PGDIR/in"
	while read -r label bin; do
		# a fresh session, so that no binary sees what another did to it
		runuser -u postgres -- psql -h "$PGDIR" -U postgres -d postgres -X -A -t -q <"$PGDIR/in" >"$PGDIR/out" 2>&1 &
		exec 3>"$PGDIR/in"
		echo "select 'ready ' || pg_backend_pid();" >&3
		for i in $(seq 1 500); do grep -q '^ready' "$PGDIR/out" && break; sleep 0.02; done
		TPID=$(sed -n 's/^ready //p' "$PGDIR/out")
		[ -n "$TPID" ] || die "no PostgreSQL backend: $(cat "$PGDIR/out")"
		n=$ROUNDS
		[ "$label" = baseline ] && n=1
		for ((r = 1; r <= n; r++)); do real_run postgres "$label" "$bin" "$r"; done
		exec 3>&- # psql ends, and its backend with it
		wait
		TPID=
	done <<<"$bins"
	pg_down
else
	echo "bench/heap: not root, or postgresql not installed: no PostgreSQL measurement" >&2
fi
cat >"$TMP/held.py" <<'PY'
import os, sys, time
big = [bytes(range(256)) * 800 for _ in range(24)]
small = [os.urandom(1000) for _ in range(6000)]
print("ready", os.getpid(), flush=True)
time.sleep(3600)
PY
if [ -x "$PY" ]; then
	while read -r label bin; do
		: >"$TMP/py.out"
		"$PY" "$TMP/held.py" >"$TMP/py.out" 2>&1 &
		TPID=$!
		for i in $(seq 1 500); do grep -q '^ready' "$TMP/py.out" && break; sleep 0.02; done
		n=$ROUNDS
		[ "$label" = baseline ] && n=1
		for ((r = 1; r <= n; r++)); do real_run python3 "$label" "$bin" "$r"; done
		kill_target
	done <<<"$bins"
fi

BENCH_S=$SECONDS
LOAD_END=$(cut -d' ' -f1-3 /proc/loadavg)
BUSY_END=$(busy_cpus 1)

# ---- statistics, the Markdown section, the table on stdout -------------------

cpu_model=$(awk -F': *' '/^model name/ { print $2; exit }' /proc/cpuinfo 2>/dev/null || true)
export REAL BASELINE BDATA DATA TARGETS ROUNDS BENCH_S LOAD_START LOAD_END BUSY_START BUSY_END RUN_TIMEOUT READY_TIMEOUT
export GNU_TIME TARGET PAUSE_AIM_MS
export XPROF_VERSION=$("$XPROF" --version 2>&1 | head -n 1 || true)
export GLIBC_VERSION=$(ldd --version 2>&1 | head -n 1 || true)
export MEASURED="$(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores (${cpu_model:-unknown CPU}), $(awk '$1 == "MemTotal:" { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo) RAM, Linux $(uname -r)"
export SIZE_LIST="${SIZES[*]}"

python3 - "$TMP/section.md" "$TMP/table.md" <<'PY'
import os, re, statistics, sys

section_path, table_path = sys.argv[1:3]
E = os.environ
sizes = [int(s) for s in E["SIZE_LIST"].split()]
rounds = int(E["ROUNDS"])
aim = float(E["PAUSE_AIM_MS"])

def label(mb):
    return "%d GB" % (mb // 1000) if mb >= 1000 and mb % 1000 == 0 else "%d MB" % mb

def num(s):
    return None if s in ("NA", "", "-") else float(s)

def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None

T = {}
with open(E["TARGETS"]) as f:
    for line in f:
        mb, blocks, byts, un, unb, ready, rss, skipped = line.rstrip("\n").split("\t")
        T[int(mb)] = dict(blocks=num(blocks), bytes=num(byts), unreach=num(un), unreach_bytes=num(unb),
                          ready=num(ready), rss=num(rss), skipped=None if skipped == "-" else skipped)

SUM = re.compile(r"\): (\d+) arenas, (\d+) blocks in use, ([0-9.]+) MiB; ([0-9.]+) MiB free; "
                 r"(\d+) mmapped; (\d+) unreachable blocks, ([0-9.]+) MiB")
STOP = re.compile(r"process stopped for ([0-9.]+) ms while ([0-9.]+) MiB were copied; total ([0-9.]+) ms")
runs = []
with open(E["DATA"]) as f:
    for line in f:
        mb, rnd, rc, wall, mx, size, stopped, errf = line.rstrip("\n").split("\t")
        with open(errf, errors="replace") as ef:
            err = ef.read()
        r = dict(mb=int(mb), round=int(rnd), rc=int(rc), wall=int(wall) / 1000.0, mx=num(mx),
                 size=num(size), stopped=int(stopped), fail=[], other=[])
        m = SUM.findall(err)
        s = STOP.findall(err)
        if m:
            a = m[-1]
            r.update(arenas=int(a[0]), blocks=int(a[1]), inuse=float(a[2]), free=float(a[3]),
                     mmapped=int(a[4]), unreach=int(a[5]), unreach_mib=float(a[6]))
        if s:
            r.update(pause=float(s[-1][0]), copied=float(s[-1][1]), own=float(s[-1][2]))
        partial = re.findall(r"the walk is partial: (.*)", err)
        if r["rc"] in (124, 137):
            r["fail"].append("timed out after %s s" % E["RUN_TIMEOUT"])
        elif r["rc"] == 1 and partial:
            r["fail"].append("partial walk (exit status 1): " + partial[-1].strip())
        elif r["rc"] != 0:
            last = [l for l in err.splitlines() if l.strip()]
            r["fail"].append("exit status %d: %s" % (r["rc"], last[-1] if last else "no output"))
        if not (m and s) and r["rc"] not in (124, 137):
            r["fail"].append("no summary lines on stderr")
        if r["stopped"]:
            r["fail"].append("left %d threads stopped" % r["stopped"])
        for l in err.splitlines():
            if l and not any(k in l for k in (" blocks in use, ", "process stopped for", ": wrote ",
                                                "the walk is partial", "glibc counts", "left alone:")):
                r["other"].append(l.strip())
        runs.append(r)

S = {}
for mb in sizes:
    rs = [r for r in runs if r["mb"] == mb and r["round"] > 0]
    # the medians take every run that measured something (a partial walk
    # too: its pause is real, though it covers less of the heap); the
    # failures are counted and listed
    got = [r for r in rs if "pause" in r and not any(x.startswith("timed out") for x in r["fail"])]
    S[mb] = dict(rs=rs, got=got, nf=sum(1 for r in rs if r["fail"]),
                 pause=med(r["pause"] for r in got), wall=med(r["wall"] for r in got),
                 own=med(r["own"] for r in got), copied=med(r["copied"] for r in got),
                 blocks=med(r.get("blocks") for r in got), mx=med(r["mx"] for r in got),
                 size=med(r["size"] for r in got), unreach=med(r.get("unreach") for r in got),
                 partial=sum(1 for r in got if any(x.startswith("partial") for x in r["fail"])))

def f1(x):
    return "n/a" if x is None else ("%.1f" % x if x < 100 else "%.0f" % x)

def fint(x):
    return "n/a" if x is None else "{:,}".format(int(round(x)))

def fdiff(a, b):
    if a is None or b is None:
        return "n/a"
    d = int(round(a - b))
    return "{:+,}".format(d).replace("-", "−")

BASE = {}
with open(E["BDATA"]) as f:
    for line in f:
        mb, p, c = (line.rstrip("\n").split("\t") + ["", ""])[:3]
        BASE.setdefault(int(mb), []).append((num(p), num(c)))
header = "| heap | blocks | median pause (ms) | median total (ms) | MiB copied | xprof peak RSS (MiB) | failed runs |"
sep = "|---|--:|--:|--:|--:|--:|--:|"
if BASE:
    header += " baseline: median pause (ms), MiB copied |"
    sep += "--:|"
table = [header, sep]
for mb in sizes:
    s, t = S[mb], T.get(mb, {})
    if t.get("skipped"):
        table.append("| %s | — | skipped | — | — | — | — |%s" % (label(mb), " — |" if BASE else ""))
        continue
    blocks = fint(s["blocks"])
    if s["blocks"] is not None and t.get("blocks") is not None:
        blocks += " (%s)" % fdiff(s["blocks"], t["blocks"])
    mx = "%.0f" % (s["mx"] / 1024.0) if s["mx"] else "n/a"
    failed = "%d of %d" % (s["nf"], len(s["rs"]))
    if s["partial"]:
        failed += " (partial walk)"
    row = "| %s | %s | %s | %s | %s | %s | %s |" % (
        label(mb), blocks, f1(s["pause"]), f1(s["wall"]), f1(s["copied"]), mx, failed)
    if BASE:
        b = BASE.get(mb, [])
        row += " %s, %s |" % (f1(med(x[0] for x in b)), f1(med(x[1] for x in b)))
    table.append(row)
table = "\n".join(table) + "\n"

# ---- aim: a heap of about 1 GB (millions of blocks) stopped well under 1 s
aims = []
big = [mb for mb in sizes if mb >= 1000 and S[mb]["pause"] is not None]
if big:
    mb = max(big)
    s = S[mb]
    verdict = "met" if s["pause"] <= aim and not s["partial"] else "not met"
    why = ""
    if s["partial"]:
        why = " (and the walk was partial, so not the whole heap was covered)"
    if float(E["BUSY_START"]) > 1 or float(E["BUSY_END"]) > 1:
        why += (" (measured while %s CPUs of %d were busy with other work: the times are "
                "several times those of a quiet machine; the baseline column, measured under the "
                "same load, is the comparison)" % (E["BUSY_START"], os.cpu_count() or 0))
    aims.append("- Pause: with %s blocks in use (%s heap) the target was stopped for %s ms "
                "(median; aim: well under a second, taken as ≤ %.0f ms): **%s**%s." % (
                    fint(s["blocks"]), label(mb), f1(s["pause"]), aim, verdict, why))
else:
    aims.append("- Pause: no heap of 1 GB or more was measured.")

notes = []
notes.append(
    "- *blocks*: xprof's \"blocks in use\" (median), and in parentheses its difference from the "
    "blocks the target itself holds (the BLOCKS of its ready line).  A few more are expected: "
    "libc's own blocks, such as each worker thread's DTV, calloc'ed by pthread_create.")
for mb in sizes:
    s, t = S[mb], T.get(mb, {})
    if t.get("skipped"):
        notes.append("- %s: skipped, %s." % (label(mb), t["skipped"]))
        continue
    notes.append(
        "- %s: the target holds %s blocks, %.1f MiB (usable sizes), %s of them (%.1f MiB) "
        "unreachable; xprof counted %s blocks in use (%s) and %s unreachable (%s); it was "
        "ready after %s ms with an RSS of %.0f MiB.  xprof's own \"total\" (median): %s ms; "
        "profile written: %s KiB." % (
            label(mb), fint(t["blocks"]), t["bytes"] / 1048576.0, fint(t["unreach"]),
            t["unreach_bytes"] / 1048576.0, fint(s["blocks"]), fdiff(s["blocks"], t["blocks"]),
            fint(s["unreach"]), fdiff(s["unreach"], t["unreach"]), fint(t["ready"]),
            t["rss"] / 1024.0, f1(s["own"]), f1(s["size"] / 1024.0 if s["size"] else None)))
if BASE:
    notes.append(
        "- *baseline*: `%s`, another build, run once after each of xprof's rounds on the same target, "
        "so that both see the same load: the median of its pauses and its MiB copied." % E["BASELINE"])
notes.append(
    "- *median pause* is xprof's \"process stopped for\" figure: from the first thread "
    "interrupted to the last one released, which covers copying every arena's heaps, the "
    "other private writable memory (the roots and the mmapped chunks; resident pages only, "
    "shared mappings never) and the stacks.  Walking the chunks, reachability, types and the "
    "profile come after the release.")
notes.append(
    "- *median total* is the wall time of the whole xprof run, measured around it (bash "
    "`$EPOCHREALTIME`), start-up and writing the profile included.  *MiB copied*: xprof's "
    "\"MiB were copied\".  *xprof peak RSS*: GNU time's `%M` (maximum resident set size of "
    "xprof; the target is not its child).")
notes.append(
    "- *failed runs* counts runs that timed out, exited non-zero (status 1: xprof wrote a "
    "profile but says the walk is partial), printed no summary, or left any of the target's "
    "threads stopped (state `t`/`T` in `/proc/PID/task/*/stat` 1 s after xprof exited).  "
    "The medians take every run that printed its summary lines, partial walks included (their "
    "pause is real, but covers less than the whole heap).")
notes.append(
    "- CPUs busy with other processes, measured over 1 s from /proc/stat: %s before the "
    "start, %s after the end; load average (1, 5, 15 min) %s at the start, %s at the end." % (
        E["BUSY_START"], E["BUSY_END"], E["LOAD_START"], E["LOAD_END"]))

fails, odd = [], []
for r in runs:
    where = "%s, %s" % (label(r["mb"]), "warm-up" if r["round"] == 0 else "round %d" % r["round"])
    if r["fail"]:
        fails.append("- %s: %s" % (where, "; ".join(r["fail"])))
    if r["other"]:
        odd.append("- %s: %s" % (where, " / ".join(r["other"][:3])))

raw = []
for mb in sizes:
    parts = []
    for r in S[mb]["rs"]:
        p = "pause %s, total %s (own %s) ms" % (f1(r.get("pause")), f1(r["wall"]), f1(r.get("own")))
        if r["fail"]:
            p += " !"
        parts.append(p)
    if parts:
        raw.append("- %s: %s" % (label(mb), "; ".join(parts)))

body = []
body.append("Measured %s; the whole benchmark took %s s.  %d timed xprof runs per heap size, "
            "one target per size (started fresh, then killed); one untimed warm-up run on the "
            "first target (debug-info cache)." % (E["MEASURED"], E["BENCH_S"], rounds))
body.append("")
body.append(table.rstrip("\n"))
body.append("")
body.extend(aims)
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
    "The target is `%s MB` (`fixtures/heapbig.c`, built -O2 -fomit-frame-pointer): the main "
    "thread and 2 workers (the main arena and 2 thread arenas) each malloc MB/3 MiB of usable "
    "bytes in blocks of 16, 32, ..., 256 requested bytes (cycling), half of the kept ones in "
    "4 singly linked lists per thread (heads in the global `lists`), half in arrays of 65536 "
    "pointers (512 KiB each, mmapped; in the global `arrays`); a pseudo-random ~10%% of the "
    "allocations are freed again (free chunks between the blocks in use), and the last 10%% "
    "of every list is dropped (unreachable).  Each block holds its next pointer or 0, its "
    "index, then text.  The commands (MB = %s):" % (E["TARGET"], ", ".join(str(m) for m in sizes)))
body.append("")
body.append("```sh")
body.append("%s MB   # prints: ready PID BLOCKS BYTES UNREACHABLE UNREACHABLE_BYTES" % E["TARGET"])
body.append("timeout -k 5 %s /usr/bin/time -o T -f %%M ./xprof heap -p PID -o h.pb.gz" % E["RUN_TIMEOUT"])
body.append("```")
body.append("")
REALROWS = []
with open(E["REAL"]) as f:
    for line in f:
        v = line.rstrip("\n").split("\t")
        if len(v) < 12:
            v += [""] * (12 - len(v))
        REALROWS.append(dict(prog=v[0], label=v[1], rc=int(v[3]), pause=num(v[4]), copied=num(v[5]),
                             a0=num(v[6]), s0=num(v[7]), a1=num(v[8]), s1=num(v[9]), inuse=num(v[10]),
                             unreach=num(v[11])))
if REALROWS:
    body.append("Real programs (Debian's PostgreSQL 15 and python3): %s." % (
        "the baseline is `%s`, an earlier build, once on its own fresh target; xprof %d rounds" % (
            E["BASELINE"], rounds) if E.get("BASELINE") else "%d rounds" % rounds))
    body.append("")
    body.append("| target | xprof | median pause (ms) | MiB copied | RssAnon before → after (MiB) | RssShmem before → after (MiB) | [unreachable] share | exit |")
    body.append("|---|---|--:|--:|--:|--:|--:|--:|")
    for prog in ("postgres", "python3"):
        for label in ("baseline", "xprof"):
            rs = [r for r in REALROWS if r["prog"] == prog and r["label"] == label]
            if not rs:
                continue
            r0, rl = rs[0], rs[-1]
            share = "n/a"
            if rl["inuse"]:
                share = "%.0f%%" % (100.0 * (rl["unreach"] or 0) / rl["inuse"])
            body.append("| %s | %s | %s | %s | %.1f → %.1f | %.1f → %.1f | %s | %s |" % (
                "PostgreSQL backend, shared_buffers=1GB" if prog == "postgres" else
                "python3, 24 × 204,800 + 6,000 × 1,000 bytes", label, f1(med(r["pause"] for r in rs)),
                f1(med(r["copied"] for r in rs)), (r0["a0"] or 0) / 1024.0, (rl["a1"] or 0) / 1024.0,
                (r0["s0"] or 0) / 1024.0, (rl["s1"] or 0) / 1024.0, share,
                "/".join(str(r["rc"]) for r in rs)))
    body.append("")
    body.append("RSS before is before the first run, after is after the last; the [unreachable] share is "
                "xprof's \"unreachable ... MiB\" over its \"blocks in use, ... MiB\" (every object of both "
                "programs is reachable, so it is all false leaks).  The PostgreSQL cluster is made by "
                "`initdb` in a temporary directory and started with `-c listen_addresses='' -c "
                "unix_socket_directories=DIR -c shared_buffers=1GB`; the backend is that of an idle `psql` "
                "session.")
    body.append("")
body.append("Versions: %s; %s.  `DEBUGINFOD_URLS` is unset." % (
    E.get("XPROF_VERSION") or "xprof ?", E.get("GLIBC_VERSION") or "glibc ?"))
body.append("")
body.append("Raw runs (pause, wall total and xprof's own total; `!` marks a failed run):")
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
echo "$ROUNDS rounds per size (${SIZES[*]} MB); whole heap benchmark ${BENCH_S} s; written to $DOC"
