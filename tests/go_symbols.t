#!/bin/bash
# Go binaries stripped with -ldflags="-s -w" keep only .gopclntab: xprof
# names their functions, files and lines from it, as it names the same
# program with DWARF.  (Unwinding such a binary, which has no CFI, is for
# the Go issue: its stacks stop after the first frames.)
. "$(dirname "$0")/lib.sh"
need_ptrace
command -v go >/dev/null || { echo "Bail out! go missing (make deps)"; exit 1; }

# leaf FILE: "function file:line" of the thread running main.burn
burn_leaf() { awk '/^thread / { getline f; getline l; if (f ~ /^main\.burn/) { sub(/^\t/, "", l); sub(/ \+0x.*/, "", l); print f, l; exit } }' "$1"; }

for v in goapp goapp-stripped; do
	start_fixture ready "$FIX/$v"
	pid=${ready%% *}
	"$XPROF" threads -p "$pid" >"$TMP/$v.txt" 2>"$TMP/$v.err"
	leaf=$(burn_leaf "$TMP/$v.txt")
	case "$leaf" in
	"main.burn() "*fixtures/go/main.go:2[0-9]) ok 0 "$v: the busy goroutine's thread is in main.burn at its line: $leaf" ;;
	*) ok 1 "$v: the busy goroutine's thread is in main.burn"; diag "got '$leaf'" "$(head -20 "$TMP/$v.txt")" ;;
	esac
	grep -A1 '^runtime.usleep' "$TMP/$v.txt" | grep -q 'src/runtime/sys_linux_amd64.s:[0-9]'
	ok $? "$v: runtime frames are named, with file:line"
	grep -q '?? pc=0xc0' "$TMP/$v.txt"
	ok $((! $?)) "$v: no frame made of a stack address"
	"$XPROF" cpu -p "$pid" -d 1s -F 199 -o "$TMP/$v.pb.gz" 2>"$TMP/$v.cpu.err"
	ok $? "$v: cpu profile written" || diag "$(cat "$TMP/$v.cpu.err")"
	share=$(go tool pprof -symbolize=none -top "$TMP/$v.pb.gz" 2>/dev/null | awk '$6 == "main.burn" { sub(/%/, "", $2); print $2 }')
	awk -v s="$share" 'BEGIN { exit !(s + 0 >= 90) }'
	ok $? "$v: main.burn has ${share:-0}% of the CPU samples, named by xprof (pprof told not to symbolize)"
done
plan "$_tap_n"
done_testing
