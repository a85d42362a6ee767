#!/bin/bash
# Go programs from outside: xprof threads prints the goroutines as Go's own
# dump (runtime.Stack of all goroutines, via pprof's goroutine profile
# debug=2) prints them, and xprof heap writes the heap profile runtime/pprof
# writes.  build/fixtures/goparked parks goroutines in every common way,
# writes its own dump and heap profile at a quiet moment, then waits: both
# must agree with what xprof reads from outside.  Also with the binary
# stripped of symbols and DWARF (-ldflags="-s -w": the heap, block and
# mutex profiles found from the runtime's code), and of DWARF only (-w:
# go1.19's known layouts instead of DWARF's).
. "$(dirname "$0")/lib.sh"
need_ptrace
command -v go >/dev/null || { echo "Bail out! go missing (make deps)"; exit 1; }


cputicks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }

for v in goparked goparked-stripped goparked-nodwarf; do
	dir="$TMP/$v"
	mkdir -p "$dir"
	start_fixture ready "$FIX/$v" "$dir"
	pid=${ready%% *}

	"$XPROF" threads -p "$pid" >"$dir/x.txt" 2>"$dir/x.err"
	ok $? "$v: xprof threads exits 0" || diag "$(cat "$dir/x.err")"
	grep -q "go1\.[0-9]*.*goroutines (and [0-9]* of the runtime's, not shown)" "$dir/x.err"
	ok $? "$v: the summary names the Go version and the goroutine count" || diag "$(cat "$dir/x.err")"
	if [ "$v" = goparked ]; then
		grep -q 'layouts: DWARF' "$dir/x.err"
		ok $? "$v: the layouts come from the binary's DWARF" || diag "$(cat "$dir/x.err")"
	fi

	# every goroutine Go's dump shows waiting, identical in xprof's dump
	blocks "$dir/goroutines.txt" | grep -v '^goroutine [0-9]* \[\(running\|runnable\)' >"$dir/go.blocks"
	grep -q '^goroutine [0-9]* \[syscall' "$dir/go.blocks"
	ok $? "$v: Go's own dump has the goroutine in a blocking system call"
	blocks "$dir/x.txt" >"$dir/x.blocks"
	waiting_missing "$dir/go.blocks" "$dir/x.blocks" "not in xprof's dump:"
	ok $((n < 11 || missing > 0)) "$v: all $n waiting goroutines of Go's own dump are in xprof's, same id, wait reason, frames, arguments and creator ($missing missing)"
	for want in 'chan receive' 'chan send' select sleep semacquire 'IO wait' 'sync.Cond.Wait' syscall; do
		grep -q "^goroutine [0-9]* \[$want\]:" "$dir/x.txt"
		ok $? "$v: a goroutine parked in $want"
	done
	grep -A2 '^goroutine [0-9]* \[chan receive\]:' "$dir/x.txt" | grep -q '^main.recvInline(\.\.\.)$'
	ok $? "$v: an inlined frame is printed as Go prints it: main.recvInline(...)"
	grep -A1 '^goroutine [0-9]* \[running\]:' "$dir/x.txt" | grep -q '^main.busy()$'
	ok $? "$v: the busy goroutine is running, in main.busy (from its thread's registers)"

	# the goroutine profile: a sample per goroutine, with pprof labels
	"$XPROF" threads -p "$pid" -o "$dir/g.pb.gz" 2>"$dir/g.err"
	ok $? "$v: goroutine profile written" || diag "$(cat "$dir/g.err")"
	tests/unit/pprofcheck "$dir/g.pb.gz" >/dev/null
	ok $? "$v: the goroutine profile passes CheckValid"
	go tool pprof -traces "$dir/g.pb.gz" >"$dir/g.traces" 2>&1
	samples=$(grep -c '^ *goroutine: ' "$dir/g.traces")
	is "$samples" "$(grep -c '^goroutine ' "$dir/x.txt")" "$v: one sample per goroutine of the text dump"
	awk '/^-----/ { b = "" } { b = b "\n" $0 } /main\.waitChan/ && b ~ /worker: +labeled/ && b ~ /shard: +7/ { f = 1 } END { exit !f }' "$dir/g.traces"
	ok $? "$v: the goroutine's own pprof labels (worker=labeled, shard=7) are on its sample"

	"$XPROF" threads -p "$pid" --native >"$dir/n.txt" 2>/dev/null
	grep -q '^goroutine 1 \[' "$dir/n.txt" && grep -q '^thread [0-9]* "' "$dir/n.txt"
	ok $? "$v: --native adds the OS threads' stacks after the goroutines"

	# never left stopped, and it keeps running
	st=$(awk '{ print $3 }' "/proc/$pid/stat")
	t0=$(cputicks "$pid")
	sleep 0.3
	t1=$(cputicks "$pid")
	[ "$st" != t ] && [ "$st" != T ] && [ "$t1" -gt "$t0" ]
	ok $? "$v: the program was left running (state $st, CPU ticks $t0 -> $t1)"
done

# the heap profile: same sites, same four values (within 1%)
dir="$TMP/goparked"
pid=$(pgrep -f "$FIX/goparked $dir" | head -1)
"$XPROF" heap -p "$pid" -o "$dir/xh.pb.gz" 2>"$dir/h.err"
ok $? "xprof heap on a Go program writes a profile" || diag "$(cat "$dir/h.err")"
tests/unit/pprofcheck "$dir/xh.pb.gz" >/dev/null
ok $? "the Go heap profile passes CheckValid"
types=$(go tool pprof -raw "$dir/xh.pb.gz" 2>/dev/null | sed -n '/^Samples/{n;p;q}')
is "$types" "$(go tool pprof -raw "$dir/heap.pb.gz" 2>/dev/null | sed -n '/^Samples/{n;p;q}')" "sample types as runtime/pprof's: $types"
tests/pprof_samples.pl "$dir/xh.pb.gz" >"$dir/x.samples"
bad=$(pprof_differ "$dir/heap.pb.gz" "$dir/xh.pb.gz")
sites=$(tests/pprof_samples.pl "$dir/heap.pb.gz" | wc -l)
ok $((sites < 5 || ${#bad} > 0)) "all $sites allocation sites of Go's own heap profile are in xprof's, with the same four values" || diag "$bad"
grep -q 'main.allocLarge;main.main' "$dir/x.samples"
ok $? "allocation stacks are real: main.allocLarge called from main.main"

for kind in block mutex; do
	"$XPROF" heap -p "$pid" --$kind -o "$dir/x$kind.pb.gz" 2>"$dir/$kind.err"
	ok $? "xprof heap --$kind writes the Go program's $kind profile" || diag "$(cat "$dir/$kind.err")"
	bad=$(pprof_differ "$dir/$kind.pb.gz" "$dir/x$kind.pb.gz")
	n=$(tests/pprof_samples.pl "$dir/$kind.pb.gz" | wc -l)
	ok $((n < 1 || ${#bad} > 0)) "all $n stacks of Go's own $kind profile are in xprof's, same contentions and delay" || diag "$bad"
done
"$XPROF" block -p "$pid" -o "$dir/xb.pb.gz" 2>"$dir/b.err"
ok $? "xprof block on a Go program writes its runtime's block profile" || diag "$(cat "$dir/b.err")"
bad=$(pprof_differ "$dir/block.pb.gz" "$dir/xb.pb.gz")
ok ${#bad} "xprof block: the same stacks, contentions and delay as Go's own block profile" || diag "$bad"
grep -q 'sync.(\*Mutex).Unlock;main.contend.func1' <(tests/pprof_samples.pl "$dir/xmutex.pb.gz")
ok $? "the mutex profile names the unlock that handed the mutex over"
"$XPROF" mutex -p "$pid" -o "$dir/xm2.pb.gz" 2>"$dir/m2.err"
bad=$(pprof_differ "$dir/mutex.pb.gz" "$dir/xm2.pb.gz")
ok $((${#bad} > 0)) "xprof mutex on a Go program writes the runtime's mutex profile, as Go's own" || diag "$bad" "$(cat "$dir/m2.err")"

dir="$TMP/goparked-nodwarf"
pid=$(pgrep -f "$FIX/goparked-nodwarf $dir" | head -1)
"$XPROF" heap -p "$pid" -o "$dir/xh.pb.gz" 2>"$dir/h.err"
ok $? "without DWARF (-w), with go1.19's known layouts: heap profile written" || diag "$(cat "$dir/h.err")"
bad=$(pprof_differ "$dir/heap.pb.gz" "$dir/xh.pb.gz")
ok ${#bad} "without DWARF: the same sites and values as Go's own heap profile" || diag "$bad"
grep -q 'layouts: known go1.19' "$dir/x.err"
ok $? "the summary says the layouts are go1.19's, not the binary's DWARF" || diag "$(cat "$dir/x.err")"

# stripped of every symbol (-s -w): the profile variables are found in the
# runtime's own code (runtime.MemProfile, profilealloc, BlockProfile, ...)
dir="$TMP/goparked-stripped"
pid=$(pgrep -f "$FIX/goparked-stripped $dir" | head -1)
"$XPROF" heap -p "$pid" -o "$dir/xh.pb.gz" 2>"$dir/h.err"
ok $? "without symbols: heap profile written" || diag "$(cat "$dir/h.err")"
bad=$(pprof_differ "$dir/heap.pb.gz" "$dir/xh.pb.gz")
sites=$(tests/pprof_samples.pl "$dir/heap.pb.gz" | wc -l)
ok $((sites < 5 || ${#bad} > 0)) "without symbols: all $sites allocation sites of Go's own heap profile, same four values" || diag "$bad"
for kind in block mutex; do
	"$XPROF" heap -p "$pid" --$kind -o "$dir/x$kind.pb.gz" 2>"$dir/$kind.err"
	bad=$(pprof_differ "$dir/$kind.pb.gz" "$dir/x$kind.pb.gz")
	n=$(tests/pprof_samples.pl "$dir/$kind.pb.gz" | wc -l)
	ok $((n < 1 || ${#bad} > 0)) "without symbols: all $n stacks of Go's own $kind profile, same contentions and delay" ||
		diag "$bad" "$(cat "$dir/$kind.err")"
done

# a Go program that never references runtime.MemProfile has no heap
# profile; stripped, it links no runtime.MemProfile to find the profile in,
# and the message is still that it records none
for v in goapp goapp-stripped; do
	start_fixture ready "$FIX/$v"
	pid=${ready%% *}
	"$XPROF" heap -p "$pid" -o "$TMP/noprof.pb.gz" 2>"$TMP/noprof.err"
	rc=$?
	grep -q 'MemProfileRate is 0' "$TMP/noprof.err"
	ok $((rc != 2 || $?)) "$v: memory profiling disabled (MemProfileRate 0): explained, exit 2" || diag "$(cat "$TMP/noprof.err")"
	[ ! -e "$TMP/noprof.pb.gz" ]
	ok $? "$v: and no file"
	"$XPROF" heap -p "$pid" --block -o "$TMP/noblock.pb.gz" 2>"$TMP/noblock.err"
	rc=$?
	grep -q 'runtime.SetBlockProfileRate' "$TMP/noblock.err"
	ok $((rc != 2 || $?)) "$v: block profiling never turned on: explained, exit 2" || diag "$(cat "$TMP/noblock.err")"
done
"$XPROF" heap -p "$pid" --block --mutex 2>/dev/null
is $? 64 "--block with --mutex is a usage error"

plan "$_tap_n"
done_testing
