#!/usr/bin/env bash
# bench/serve.sh — what repeated scrapes of xprof serve cost, against a
# fresh `xprof cpu` per profile; writes the "serve" section of
# docs/benchmarks.md and prints the table.  Run by `make bench`, from the
# repository root after `make all fixtures`; running it directly works too.
#
#   BENCH_SERVE_SCRAPES=N   CPU profiles scraped back to back (default 100)
#   BENCH_SERVE_SECONDS=S   seconds= of each (default 10); after each, a heap
#                           scrape (so one every S seconds)
#   BENCH_SERVE_FRESH=N     fresh `xprof cpu -d S` runs to compare (default 10)
#   XPROF=PATH              the binary (default ./xprof)
#
# The target is build/fixtures/cpuburn (2 threads, a small glibc heap).
# xprof serve's CPU per scrape is the growth of its utime+stime
# (/proc/PID/stat) over the scrape; its RSS is VmRSS after the 1st, 10th and
# last CPU scrape.  Processes are only ever started here and killed by pid.

set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

SCRAPES=${BENCH_SERVE_SCRAPES:-100}
SECS=${BENCH_SERVE_SECONDS:-10}
FRESH=${BENCH_SERVE_FRESH:-10}
XPROF=${XPROF:-./xprof}
DOC=${BENCH_SERVE_DOC:-docs/benchmarks.md}
KEY=serve
HEADING="xprof serve: repeated scrapes vs a fresh xprof cpu each time"

die() { echo "bench/serve: $*" >&2; exit 1; }
[[ $SCRAPES =~ ^[1-9][0-9]*$ && $SECS =~ ^[1-9][0-9]*$ && $FRESH =~ ^[1-9][0-9]*$ ]] ||
	die "BENCH_SERVE_SCRAPES, _SECONDS and _FRESH must be positive integers"
[ -x "$XPROF" ] && [ -x build/fixtures/cpuburn ] || die "run make all fixtures first"
command -v curl >/dev/null || die "curl is missing (make deps)"
command -v /usr/bin/time >/dev/null || die "GNU time is missing (make deps)"

TMP=$(mktemp -d /tmp/xprof-bench-serve.XXXXXX)
TPID="" SPID=""
cleanup() {
	[ -n "$SPID" ] && kill "$SPID" 2>/dev/null && wait "$SPID" 2>/dev/null
	[ -n "$TPID" ] && kill "$TPID" 2>/dev/null && wait "$TPID" 2>/dev/null
	rm -rf "$TMP"
}
trap cleanup EXIT
HZ=$(getconf CLK_TCK)

build/fixtures/cpuburn 2 >"$TMP/target.out" 2>&1 &
TPID=$!
for _ in $(seq 1 500); do grep -q '^ready' "$TMP/target.out" && break; sleep 0.02; done
grep -q '^ready' "$TMP/target.out" || die "cpuburn did not start"

# cpu_ms PID: utime + stime of PID in milliseconds
cpu_ms() { awk -v hz="$HZ" '{ sub(/^.*\) /, ""); split($0, f, " "); print int((f[12] + f[13]) * 1000 / hz) }' "/proc/$1/stat"; }
rss_mb() { awk '/^VmRSS:/ { printf "%.1f", $2 / 1024 }' "/proc/$1/status"; }

"$XPROF" serve -p "$TPID" --listen 127.0.0.1:0 --max-seconds "$SECS" 2>"$TMP/serve.err" &
SPID=$!
for _ in $(seq 1 500); do grep -q 'serving' "$TMP/serve.err" && break; sleep 0.02; done
URL=$(sed -n 's|^xprof: serving .* on \(http://[^ ]*\)$|\1|p' "$TMP/serve.err")
[ -n "$URL" ] || die "xprof serve did not start: $(cat "$TMP/serve.err")"

: >"$TMP/cpu.ms"
: >"$TMP/heap.ms"
rss1="" rss10="" rssN=""
for i in $(seq 1 "$SCRAPES"); do
	c0=$(cpu_ms "$SPID")
	st=$(curl -s -o "$TMP/p.pb" -w '%{http_code}' --max-time $((SECS + 60)) "${URL}profile?seconds=$SECS")
	[ "$st" = 200 ] || die "scrape $i of profile answered $st: $(head -c 300 "$TMP/p.pb")"
	c1=$(cpu_ms "$SPID")
	echo $((c1 - c0)) >>"$TMP/cpu.ms"
	st=$(curl -s -o "$TMP/h.pb" -w '%{http_code}' --max-time 60 "${URL}heap")
	[ "$st" = 200 ] || die "scrape $i of heap answered $st: $(head -c 300 "$TMP/h.pb")"
	c2=$(cpu_ms "$SPID")
	echo $((c2 - c1)) >>"$TMP/heap.ms"
	[ "$i" = 1 ] && rss1=$(rss_mb "$SPID")
	[ "$i" = 10 ] && rss10=$(rss_mb "$SPID")
	echo "scrape $i: profile $((c1 - c0)) ms CPU, heap $((c2 - c1)) ms CPU, RSS $(rss_mb "$SPID") MB" >&2
done
rssN=$(rss_mb "$SPID")
kill "$SPID"
wait "$SPID" || true
SPID=""

: >"$TMP/fresh.txt"
for i in $(seq 1 "$FRESH"); do
	/usr/bin/time -f '%U %S %M' -o "$TMP/t" "$XPROF" cpu -p "$TPID" -d "${SECS}s" -o "$TMP/f.pb.gz" 2>/dev/null ||
		die "xprof cpu failed"
	awk '{ printf "%d %.1f\n", ($1 + $2) * 1000, $3 / 1024 }' "$TMP/t" >>"$TMP/fresh.txt"
	echo "fresh $i: $(cat "$TMP/t")" >&2
done

# stats FILE [COLUMN]: first, median of the rest, mean of the rest
stats() {
	local col=${2:-1} first rest
	first=$(awk -v c="$col" 'NR == 1 { print $c }' "$1")
	rest=$(awk -v c="$col" 'NR > 1 { print $c }' "$1" | sort -n)
	[ -n "$rest" ] || rest=$first
	awk -v first="$first" '{ v[++n] = $1; s += $1 }
		END { m = n % 2 ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2
		      printf "%s %s %.0f\n", first, m, s / n }' <<<"$rest"
}
read -r cfirst cmed cmean <<<"$(stats "$TMP/cpu.ms")"
read -r hfirst hmed hmean <<<"$(stats "$TMP/heap.ms")"
read -r ffirst fmed fmean <<<"$(stats "$TMP/fresh.txt" 1)"
read -r _ frss _ <<<"$(stats "$TMP/fresh.txt" 2)"

{
	echo "Target: build/fixtures/cpuburn (2 threads burning CPU, a small glibc heap)."
	echo "$SCRAPES scrapes of \`profile?seconds=$SECS\` (99 Hz) back to back, each followed by"
	echo "one of \`heap\`, against one \`xprof serve -p\`; then $FRESH runs of"
	echo "\`xprof cpu -p PID -d ${SECS}s\`, a new process each time.  CPU is user+sys of"
	echo "xprof (for the server: the growth of its /proc/PID/stat over each request)."
	echo
	echo "| | first | median of the rest | mean of the rest |"
	echo "|---|--:|--:|--:|"
	echo "| xprof serve, \`profile?seconds=$SECS\`: CPU ms | $cfirst | $cmed | $cmean |"
	echo "| xprof serve, \`heap\`: CPU ms | $hfirst | $hmed | $hmean |"
	echo "| fresh \`xprof cpu -d ${SECS}s\`: CPU ms | $ffirst | $fmed | $fmean |"
	echo
	echo "xprof serve's RSS: $rss1 MB after 1 scrape, $rss10 MB after 10, $rssN MB after $SCRAPES."
	echo "A fresh \`xprof cpu\` peaks at $frss MB (median)."
	echo
	echo "Command: \`BENCH_SERVE_SCRAPES=$SCRAPES BENCH_SERVE_SECONDS=$SECS BENCH_SERVE_FRESH=$FRESH bash bench/serve.sh\`."
} >"$TMP/body.md"
cat "$TMP/body.md"
bash bench/md-section.sh "$DOC" "$KEY" "$HEADING" "$TMP/body.md"
