#!/bin/bash
# Go binaries stripped with -ldflags="-s -w" keep only .gopclntab: xprof
# names their functions, files and lines from it, and unwinds them by its
# frame sizes, as it does the same program with DWARF.  The OS threads'
# stacks (--native) and CPU profiles.  A Go binary stripped as Debian
# strips it, its symbols and DWARF in a debug file found by its GNU build
# id: without that file xprof heap finds the runtime's profile variables
# in the runtime's own code; with it (XPROF_DEBUG_DIRS), by their symbols,
# and the layouts come from its DWARF: both times the heap profile is Go's.
. "$(dirname "$0")/lib.sh"
need_ptrace
command -v go >/dev/null || { echo "Bail out! go missing (make deps)"; exit 1; }

# leaf FILE: "function file:line" of the thread running main.burn
burn_leaf() { awk '/^thread / { getline f; getline l; if (f ~ /^main\.burn/) { sub(/^\t/, "", l); sub(/ \+0x.*/, "", l); print f, l; exit } }' "$1"; }

for v in goapp goapp-stripped; do
	start_fixture ready "$FIX/$v"
	pid=${ready%% *}
	"$XPROF" threads -p "$pid" --native >"$TMP/$v.txt" 2>"$TMP/$v.err"
	leaf=$(burn_leaf "$TMP/$v.txt")
	case "$leaf" in
	"main.burn() "*fixtures/go/main.go:2[0-9]) ok 0 "$v: the busy goroutine's thread is in main.burn at its line: $leaf" ;;
	*) ok 1 "$v: the busy goroutine's thread is in main.burn"; diag "got '$leaf'" "$(head -20 "$TMP/$v.txt")" ;;
	esac
	grep -A1 '^runtime.usleep' "$TMP/$v.txt" | grep -q 'src/runtime/sys_linux_amd64.s:[0-9]'
	ok $? "$v: runtime frames are named, with file:line"
	awk '/^thread / { getline f } f ~ /^main\.burn/ && /^runtime\.goexit\(\)/ { found = 1 } END { exit !found }' "$TMP/$v.txt"
	ok $? "$v: the busy thread's stack is whole, main.burn down to runtime.goexit"
	grep -q '?? pc=0xc0' "$TMP/$v.txt"
	ok $((! $?)) "$v: no frame made of a stack address"
	"$XPROF" cpu -p "$pid" -d 1s -F 199 -o "$TMP/$v.pb.gz" 2>"$TMP/$v.cpu.err"
	ok $? "$v: cpu profile written" || diag "$(cat "$TMP/$v.cpu.err")"
	share=$(go tool pprof -symbolize=none -top "$TMP/$v.pb.gz" 2>/dev/null | awk '$6 == "main.burn" { sub(/%/, "", $2); print $2 }')
	awk -v s="$share" 'BEGIN { exit !(s + 0 >= 90) }'
	ok $? "$v: main.burn has ${share:-0}% of the CPU samples, named by xprof (pprof told not to symbolize)"
	go tool pprof -symbolize=none -traces "$TMP/$v.pb.gz" 2>/dev/null | grep -A1 ' main\.burn$' | grep -q '^ *runtime\.goexit$'
	ok $? "$v: CPU samples in main.burn unwind to runtime.goexit"
done
# the -dbgsym case: goparked-dbgsym has a GNU build id and no symbols
dir="$TMP/dbgsym"
mkdir -p "$dir"
id=$(readelf -n "$FIX/goparked-dbgsym" | sed -n 's/.*Build ID: //p')
start_fixture ready "$FIX/goparked-dbgsym" "$dir"
pid=${ready%% *}
XPROF_DEBUG_DIRS= "$XPROF" heap -p "$pid" -o "$dir/none.pb.gz" 2>"$dir/none.err"
ok $? "without its debug file: heap profile written (the runtime's variables found in its code)" || diag "$(cat "$dir/none.err")"
bad=$(pprof_differ "$dir/heap.pb.gz" "$dir/none.pb.gz")
sites=$(tests/pprof_samples.pl "$dir/heap.pb.gz" | wc -l)
ok $((sites < 5 || ${#bad} > 0)) "without its debug file: all $sites sites of Go's own heap profile, same four values" || diag "$bad"
mkdir -p "$TMP/debug/.build-id/${id:0:2}"
cp "$FIX/goparked-dbgsym.symbols" "$TMP/debug/.build-id/${id:0:2}/${id:2}.debug"
export XPROF_DEBUG_DIRS="relative/is/ignored:$TMP/nothing-here:$TMP/debug"
"$XPROF" heap -p "$pid" -o "$dir/xh.pb.gz" 2>"$dir/h.err"
ok $? "with the debug file under XPROF_DEBUG_DIRS: heap profile written" || diag "$(cat "$dir/h.err")"
bad=$(pprof_differ "$dir/heap.pb.gz" "$dir/xh.pb.gz")
sites=$(tests/pprof_samples.pl "$dir/heap.pb.gz" | wc -l)
ok $((sites < 5 || ${#bad} > 0)) "all $sites allocation sites of Go's own heap profile, with the same four values" || diag "$bad"
"$XPROF" heap -p "$pid" --mutex -o "$dir/xmutex.pb.gz" 2>"$dir/m.err"
ok $? "and its mutex profile" || diag "$(cat "$dir/m.err")"
"$XPROF" threads -p "$pid" >"$dir/x.txt" 2>"$dir/x.err"
grep -q 'layouts: DWARF' "$dir/x.err"
ok $? "the goroutine dump takes the runtime's layouts from the debug file's DWARF" || diag "$(cat "$dir/x.err")"
grep -A2 '^goroutine [0-9]* \[chan receive\]:' "$dir/x.txt" | grep -q '^main.recvInline(\.\.\.)$'
ok $? "and prints the goroutines as Go does"
unset XPROF_DEBUG_DIRS

plan "$_tap_n"
done_testing
