#!/usr/bin/env bash
# bench/ux.sh — what a user waits for around xprof's own work: the first
# `xprof threads` on a target (the debug-info cache empty) and the next ones
# (warm), and the time `xprof cpu -F 499 -d 2s` takes after its 2 s of
# sampling; beside eu-stack (threads) and perf record + perf report (cpu)
# on the same targets.  Writes the "ux" section of docs/benchmarks.md and
# prints it.  Run by `make bench` from the repository root after
# `make all fixtures`; running it directly works too.
#
#   BENCH_UX_ROUNDS=N   rounds per measure (default 3; the median is shown)
#   XPROF_BEFORE=PATH   an xprof built from an earlier commit, measured in a
#                       "before" column (e.g. git clone -q . /tmp/base &&
#                       make -C /tmp/base; XPROF_BEFORE=/tmp/base/xprof)
#
# Targets: python3 (the first on PATH, with its debug info when found),
# redis-server (its own data directory in a temp dir, a Unix socket, no TCP),
# and build/fixtures/parked-O2 with 110 extra threads (117 in all, idle but
# one spinner).  Only the processes started here are killed, by pid.
# Times are wall-clock (what the user waits) and CPU (user + sys of the
# tool, which a loaded machine inflates less); both from GNU time.

set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

ROUNDS=${BENCH_UX_ROUNDS:-3}
XPROF=$(pwd)/xprof
BEFORE=${XPROF_BEFORE:-}
DOC=docs/benchmarks.md
KEY=ux
HEADING="Waiting for xprof: threads' first run, cpu after the sampling"

die() { echo "bench/ux: $*" >&2; exit 1; }
[[ $ROUNDS =~ ^[1-9][0-9]*$ ]] || die "BENCH_UX_ROUNDS must be a positive integer"
[ -x "$XPROF" ] || die "$XPROF is not built: run 'make' (or 'make bench')"
[ -x build/fixtures/parked-O2 ] || die "build/fixtures/parked-O2 is not built: run 'make fixtures'"
[ -z "$BEFORE" ] || [ -x "$BEFORE" ] || die "XPROF_BEFORE=$BEFORE is not an executable"
for t in eu-stack perf python3 /usr/bin/time; do
	command -v "$t" >/dev/null 2>&1 || die "'$t' not found (make deps installs elfutils, linux-perf, python3, time)"
done
unset DEBUGINFOD_URLS # no network: every tool uses what is on disk

TMP=$(mktemp -d "${TMPDIR:-/tmp}/xprof-bench-ux.XXXXXX")
PIDS=()
cleanup() {
	local p
	for p in "${PIDS[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
	for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
	rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# wait_line FILE PATTERN: up to 120 s (a loaded machine) for a line of FILE to match
wait_line() {
	local end=$((SECONDS + 120))
	while [ "$SECONDS" -le "$end" ]; do
		grep -q -e "$2" "$1" 2>/dev/null && return 0
		sleep 0.05
	done
	die "no line '$2' in $1: $(head -c 300 "$1")"
}

# ---- targets ------------------------------------------------------------------
TARGETS=()
python3 -c 'import os, time
x = [str(i) for i in range(100000)]
print("ready", os.getpid(), flush=True)
time.sleep(100000)' >"$TMP/py.out" 2>&1 &
PIDS+=($!)
wait_line "$TMP/py.out" '^ready'
TARGETS+=("python3:$(awk '/^ready/ { print $2 }' "$TMP/py.out")")
if command -v redis-server >/dev/null; then
	mkdir -p "$TMP/redis"
	redis-server --port 0 --unixsocket "$TMP/redis/sock" --dir "$TMP/redis" --save '' --appendonly no \
		--daemonize no >"$TMP/redis.out" 2>&1 &
	PIDS+=($!)
	# "Ready to accept connections" (redis 6), "ready to accept connections at" (7)
	wait_line "$TMP/redis.out" '[Rr]eady to accept connections'
	TARGETS+=("redis-server:${PIDS[-1]}")
fi
build/fixtures/parked-O2 110 >"$TMP/parked.out" 2>&1 &
PIDS+=($!)
wait_line "$TMP/parked.out" '^ready'
PARKED=$(awk '/^ready/ { print $2 }' "$TMP/parked.out")
TARGETS+=("parked-O2 (117 threads):$PARKED")

# timed OUT CMD...: "wall cpu" in ms of CMD (GNU time), appended to OUT
timed() {
	local out=$1; shift
	/usr/bin/time -f '%e %U %S' -o "$TMP/time" "$@" >/dev/null 2>"$TMP/err" || true
	# the last line: GNU time puts "Command exited with non-zero status N"
	# first (threads: 1 when a thread did not stop in time)
	tail -n 1 "$TMP/time" | awk '{ printf "%d %d\n", $1 * 1000, ($2 + $3) * 1000 }' >>"$out"
}

# median FILE COLUMN
median() {
	sort -n -k"$2" "$1" | awk -v c="$2" '{ v[NR] = $c } END { print NR ? v[int((NR + 1) / 2)] : "-" }'
}

# ---- threads: first run and warm ---------------------------------------------------
threads_rows=""
for t in "${TARGETS[@]}"; do
	name=${t%%:*} pid=${t##*:}
	row="| $name"
	for bin in ${BEFORE:+"$BEFORE"} "$XPROF"; do
		rm -f "$TMP/first" "$TMP/warm"
		for r in $(seq 1 "$ROUNDS"); do
			rm -rf "$TMP/cache"
			XPROF_CACHE_DIR="$TMP/cache" timed "$TMP/first" "$bin" threads -p "$pid"
			XPROF_CACHE_DIR="$TMP/cache" timed "$TMP/warm" "$bin" threads -p "$pid"
		done
		row+=" | $(median "$TMP/first" 1) ms ($(median "$TMP/first" 2) ms CPU) | $(median "$TMP/warm" 1) ms ($(median "$TMP/warm" 2) ms CPU)"
	done
	rm -f "$TMP/eu"
	for r in $(seq 1 "$ROUNDS"); do timed "$TMP/eu" eu-stack -i -p "$pid"; done
	row+=" | $(median "$TMP/eu" 1) ms ($(median "$TMP/eu" 2) ms CPU) |"
	threads_rows+="$row"$'\n'
done

# ---- cpu: the time after the sampling ----------------------------------------------
# xprof cpu -d 2s: its wall time less the 2 s; perf: record for 2 s, then the
# report it needs to show anything (perf report --stdio)
cpu_rows=""
for bin in ${BEFORE:+"$BEFORE"} "$XPROF"; do
	rm -f "$TMP/cpu"
	for r in $(seq 1 "$ROUNDS"); do
		timed "$TMP/cpu" "$bin" cpu -p "$PARKED" -F 499 -d 2s -o "$TMP/cpu.pb.gz"
	done
	label=$([ "$bin" = "$XPROF" ] && echo "xprof (this build)" || echo "xprof (before)")
	cpu_rows+="| $label | $(($(median "$TMP/cpu" 1) - 2000)) ms | $(median "$TMP/cpu" 2) ms |"$'\n'
done
rm -f "$TMP/rep" "$TMP/rec"
for r in $(seq 1 "$ROUNDS"); do
	timed "$TMP/rec" perf record -q -F 499 --call-graph dwarf -p "$PARKED" -o "$TMP/perf.data" -- sleep 2
	timed "$TMP/rep" perf report -i "$TMP/perf.data" --stdio
done
cpu_rows+="| perf record --call-graph dwarf, then perf report --stdio | $(($(median "$TMP/rec" 1) - 2000)) ms + $(median "$TMP/rep" 1) ms | $(median "$TMP/rec" 2) ms + $(median "$TMP/rep" 2) ms |"$'\n'

# ---- the section ---------------------------------------------------------------------
load=$(cut -d' ' -f1-3 /proc/loadavg)
{
	echo "\`xprof threads -p PID\` with an empty debug-info cache (first run: separate"
	echo "debug files are inflated into the cache) and with it filled (warm), and"
	echo "\`eu-stack -i -p PID\`; then \`xprof cpu -p PID -F 499 -d 2s\` on the 117-thread"
	echo "parked fixture, the time it takes after its 2 s of sampling, beside perf"
	echo "record for 2 s and the \`perf report\` that shows the result.  Median of"
	echo "$ROUNDS; wall time, and in parentheses user + sys CPU.  Load average while"
	echo "measured: $load (on a loaded machine wall times stretch, and a single"
	echo "round is noise; CPU times are the steadier figure).  python3 is"
	echo "\`$(command -v python3)\`."
	[ -n "$BEFORE" ] && echo "\"before\" is \`$BEFORE\`, built from an earlier commit."
	echo
	if [ -n "$BEFORE" ]; then
		echo "| target | before: first | before: warm | xprof: first | xprof: warm | eu-stack |"
		echo "|---|---|---|---|---|---|"
	else
		echo "| target | xprof: first | xprof: warm | eu-stack |"
		echo "|---|---|---|---|"
	fi
	printf '%s' "$threads_rows"
	echo
	echo "| after 2 s of sampling | wall | CPU |"
	echo "|---|---|---|"
	printf '%s' "$cpu_rows"
	echo
	echo "What was cut (perf record -g and strace -c of xprof itself): /proc/kallsyms is"
	echo "read only when a sample has a kernel frame, in 256 KiB reads (the kernel"
	echo "gives a page each: some 1,300 calls where stdio's 1 KiB buffer made 5,300)"
	echo "into one name arena instead of 120,000 strdups; the debug-info cache leaves"
	echo "out the sections xprof never reads (macros, name indexes) instead of"
	echo "inflating and writing them (location lists are kept: the Python loop's"
	echo "next_instr is found through them)."
} >"$TMP/section.md"
bash bench/md-section.sh "$DOC" "$KEY" "$HEADING" "$TMP/section.md"
cat "$TMP/section.md"
