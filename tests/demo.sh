#!/bin/bash
# make demo: start bundled workloads, profile them with xprof, show the
# results with go tool pprof.  The workloads are killed at the end, however
# the demo ends.
set -u
cd "$(dirname "$0")/.."
out=$(mktemp /tmp/xprof-demo.XXXXXX)
burn_out=$(mktemp /tmp/xprof-demo.XXXXXX)
pid= burn=
trap 'for p in $pid $burn; do kill -KILL $p 2>/dev/null; wait $p 2>/dev/null; done; rm -f "$out" "$burn_out"' EXIT

wait_ready() { # wait_ready FILE
	for i in $(seq 1 500); do grep -q '^ready' "$1" && return 0; sleep 0.01; done
	echo "demo: a workload did not start" >&2
	exit 1
}

build/fixtures/cpuburn 2 >"$burn_out" 2>&1 &
burn=$!
wait_ready "$burn_out"
echo "== 1. CPU: a workload whose two threads split their time 1:2:3 between"
echo "==    burn_a, burn_b and burn_c (pid $burn)"
echo
echo "\$ ./xprof cpu -p $burn -d 3s -F 499 -o /tmp/xprof-demo.cpu.pb.gz"
./xprof cpu -p "$burn" -d 3s -F 499 -o /tmp/xprof-demo.cpu.pb.gz || exit 1
echo
echo "\$ go tool pprof -top -cum /tmp/xprof-demo.cpu.pb.gz"
go tool pprof -top -cum /tmp/xprof-demo.cpu.pb.gz 2>&1 | head -n 16
echo
echo "\$ ./xprof cpu -p $burn -d 2s --format svg -o /tmp/xprof-demo.cpu.svg"
./xprof cpu -p "$burn" -d 2s --format svg -o /tmp/xprof-demo.cpu.svg || exit 1
kill -KILL "$burn"; wait "$burn" 2>/dev/null; burn=

build/fixtures/heapcxx 3000 2000 >"$out" 2>&1 &
pid=$!
wait_ready "$out"
echo
echo "== 2. Heap: a C++ program holding 3000 Circles and 2000 Squares in a"
echo "==    vector, a 500-node list, and glibc's own blocks (pid $pid)"
echo
echo "\$ ./xprof heap -p $pid -o /tmp/xprof-demo.heap.pb.gz"
./xprof heap -p "$pid" -o /tmp/xprof-demo.heap.pb.gz || exit 1
echo
echo "\$ go tool pprof -traces -sample_index=inuse_objects /tmp/xprof-demo.heap.pb.gz"
go tool pprof -traces -sample_index=inuse_objects /tmp/xprof-demo.heap.pb.gz 2>&1 | sed -n '5,40p'
kill -KILL "$pid"; wait "$pid" 2>/dev/null; pid=

build/fixtures/parked-O2 40 >"$out" 2>&1 &
pid=$!
wait_ready "$out"
echo
echo "== 3. Threads: 47 threads: a mutex holder and waiter, a condition variable,"
echo "==    a pipe read, a sleep, a busy loop and a pool of 40 (pid $pid)"
echo
echo "\$ ./xprof threads -p $pid --group"
./xprof threads -p "$pid" --group || exit 1
echo
echo "\$ ./xprof threads -p $pid -o /tmp/xprof-demo.threads.pb.gz"
./xprof threads -p "$pid" -o /tmp/xprof-demo.threads.pb.gz || exit 1
echo
echo "Open them in a browser:"
echo "  go tool pprof -http=: /tmp/xprof-demo.cpu.pb.gz"
echo "  go tool pprof -http=: /tmp/xprof-demo.heap.pb.gz"
echo "  go tool pprof -http=: /tmp/xprof-demo.threads.pb.gz"
echo "  /tmp/xprof-demo.cpu.svg (an interactive flame graph)"
