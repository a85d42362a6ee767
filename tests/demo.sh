#!/bin/bash
# make demo: start a bundled workload, dump its threads with xprof, write a
# pprof profile of them and show it with go tool pprof.  The workload is
# killed at the end, however the demo ends.
set -u
cd "$(dirname "$0")/.."
out=$(mktemp /tmp/xprof-demo.XXXXXX)
build/fixtures/parked-O2 40 >"$out" 2>&1 &
pid=$!
trap 'kill -KILL $pid 2>/dev/null; wait $pid 2>/dev/null; rm -f "$out"' EXIT
for i in $(seq 1 500); do grep -q '^ready' "$out" && break; sleep 0.01; done
grep -q '^ready' "$out" || { echo "demo: the workload did not start" >&2; exit 1; }

echo "== a workload with 47 threads: a mutex holder and waiter, a condition"
echo "== variable, a pipe read, a sleep, a busy loop and a pool of 40 (pid $pid)"
echo
echo "\$ ./xprof threads -p $pid --group"
./xprof threads -p "$pid" --group || exit 1
echo
echo "\$ ./xprof threads -p $pid -o /tmp/xprof-demo.threads.pb.gz"
./xprof threads -p "$pid" -o /tmp/xprof-demo.threads.pb.gz || exit 1
echo
echo "\$ go tool pprof -top /tmp/xprof-demo.threads.pb.gz"
go tool pprof -top /tmp/xprof-demo.threads.pb.gz 2>&1 | head -n 20
echo
echo "Open it in a browser: go tool pprof -http=: /tmp/xprof-demo.threads.pb.gz"
