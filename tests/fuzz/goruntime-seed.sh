#!/bin/bash
# tests/fuzz/goruntime-seed.sh DIR: records a seed for fuzz_goruntime from a
# live build/fixtures/goparked (started here, recorded while stopped for a
# moment, killed by pid), written into DIR.  Run by `make fuzz`.
set -euo pipefail
cd "$(dirname "$0")/../.."
dir=$1
mkdir -p "$dir"
tmp=$(mktemp -d)
build/fixtures/goparked "$tmp" >"$tmp/out" 2>&1 &
pid=$!
trap 'kill -KILL $pid 2>/dev/null; wait $pid 2>/dev/null || true; rm -rf "$tmp"' EXIT
for _ in $(seq 100); do
	grep -q '^ready' "$tmp/out" && break
	sleep 0.1
done
grep -q '^ready' "$tmp/out" || { echo "goruntime-seed.sh: goparked did not start" >&2; exit 1; }
XPROF_FUZZ_WRITE_SEEDS=$dir build/fuzz/fuzz_goruntime "$pid"
mv "$dir/live-$pid" "$dir/goparked"
