#!/bin/bash
# Go binaries stripped with -ldflags="-s -w" keep only .gopclntab: xprof
# names their functions, files and lines from it, and unwinds them by its
# frame sizes, as it does the same program with DWARF.  The OS threads'
# stacks (--native) and CPU profiles.
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
plan "$_tap_n"
done_testing
