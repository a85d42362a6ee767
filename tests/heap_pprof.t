#!/bin/bash
# Profiles as pprof reads them: the profiled binary is mapping 1 (file,
# build id, the bounds and offset of its text mapping) in every command's
# profile, so go tool pprof prints "File: NAME" and not "Main binary
# filename not available"; a heap root no symbol names is called after its
# file, section and offset ("[global] libstdc++ bss+0xa8") and pprof's graph
# shows it on one line, where it broke "libstdc++.so.6.0.30+0x2162e8" at
# every dot.
. "$(dirname "$0")/lib.sh"
need_ptrace
command -v go >/dev/null || { echo "Bail out! go missing (make deps)"; exit 1; }

# mapping1 PROFILE: "start limit offset file build_id" of mapping 1
mapping1() {
	go tool pprof -raw "$1" 2>/dev/null | awk '/^Mappings/ { on = 1; next }
		on && $1 == "1:" { split($2, a, "/"); b = $4 ~ /^\[/ ? "" : $4; print a[1], a[2], a[3], $3, b; exit }'
}
# want_mapping PID BINARY: the same, of BINARY's executable mapping in PID,
# in the file's own addresses (a PIE's load bias taken off): its offset in
# the file put where the text segment's p_offset goes to p_vaddr
want_mapping() {
	local bid f range off segoff segvaddr start
	bid=$(readelf -n "$2" | sed -n 's/.*Build ID: //p' | head -1)
	f=$(readlink -f "$2")
	read -r range off <<<"$(awk -v f="$f" '$2 ~ /x/ && $6 == f { print $1, $3; exit }' "/proc/$1/maps")"
	read -r segoff segvaddr <<<"$(readelf -lW "$2" | awk '$1 == "LOAD" && / R E / { print $2, $3; exit }')"
	[ -n "$range" ] && [ -n "$segvaddr" ] || return 0
	start=$((0x$off - segoff + segvaddr))
	printf '0x%x 0x%x 0x%x %s %s\n' "$start" "$((start + 0x${range#*-} - 0x${range%-*}))" "$((0x$off))" "$f" "$bid"
}
# check_main KIND PROFILE PID BINARY: mapping 1 (after pprof's own
# reordering: what its File: line names) is BINARY's
check_main() {
	local got want
	got=$(mapping1 "$2")
	want=$(want_mapping "$3" "$4")
	[ -n "$want" ] && [ "$got" = "$want" ]
	ok $? "$1: mapping 1 is the binary's text mapping, with its build id ($got)" || diag "want: $want"
}
# check_file KIND PROFILE NAME: go tool pprof prints File: NAME
check_file() {
	go tool pprof -top "$2" >"$TMP/top" 2>&1
	grep -q "^File: $3\$" "$TMP/top" && ! grep -q 'Main binary filename not available' "$TMP/top"
	ok $? "$1: go tool pprof -top says File: $3, not 'Main binary filename not available'" ||
		diag "$(head -3 "$TMP/top")"
}

start_fixture ready "$FIX/heapcxx" 300 200
pid=${ready%% *}
"$XPROF" heap -p "$pid" -o "$TMP/heap.pb.gz" 2>"$TMP/err"
ok $? "xprof heap exits 0" || diag "$(cat "$TMP/err")"
pprof_check "$TMP/heap.pb.gz"
ok $? "the heap profile is valid"
check_main heap "$TMP/heap.pb.gz" "$pid" "$FIX/heapcxx"
check_file heap "$TMP/heap.pb.gz" heapcxx
# the web UI's title and the graph's legend come from the same labels
go tool pprof -dot "$TMP/heap.pb.gz" 2>/dev/null | grep -q 'label="File: heapcxx\\l.*Type: inuse_space'
ok $? "the graph's legend names the file and the sample type"

# libstdc++'s emergency exception pool is held by a static in its .bss,
# which has no symbol in Debian's stripped libstdc++
go tool pprof -traces "$TMP/heap.pb.gz" 2>/dev/null >"$TMP/traces"
root=$(grep -o '\[global\] libstdc++[^ ]* *[^ ]*' "$TMP/traces" | head -1)
case "$root" in
'[global] libstdc++ bss+0x'*) ok 0 "a global without a symbol is named by file, section and offset: $root" ;;
*) ok 1 "a global without a symbol is named by file, section and offset"; diag "got '$root'" ;;
esac
# the slot named holds a pointer into the heap: its address is libstdc++'s
# load base + .bss's address + the offset
lib=$(awk '$6 ~ /libstdc\+\+/ { print $6; exit }' "/proc/$pid/maps")
base=$(awk -v l="$lib" '$6 == l { split($1, r, "-"); print r[1]; exit }' "/proc/$pid/maps")
bss=$(readelf -SW "$lib" | awk '$2 == ".bss" { print $4 } $3 == ".bss" { print $5 }' | head -1)
off=${root##*+}
slot=$((0x$base + 0x${bss:-0} + ${off:-0}))
word=$(dd if="/proc/$pid/mem" bs=8 count=1 iflag=skip_bytes skip="$slot" 2>/dev/null | od -An -tx8 | tr -d ' ')
heap=$(awk '$6 == "[heap]" { split($1, r, "-"); print r[1], r[2] }' "/proc/$pid/maps")
read -r hlo hhi <<<"$heap"
[ -n "$word" ] && [ -n "$hlo" ] && [ $((0x$word >= 0x$hlo && 0x$word < 0x$hhi)) = 1 ]
ok $? "that slot (0x$(printf %x "$slot")) holds a heap pointer (0x$word, heap 0x$hlo-0x$hhi)"
go tool pprof -dot "$TMP/heap.pb.gz" 2>/dev/null | grep -F "label=\"$root\\n" >/dev/null
ok $? "pprof's graph shows it on one line" ||
	diag "$(go tool pprof -dot "$TMP/heap.pb.gz" 2>/dev/null | grep -F 'libstdc')"

# the other commands' profiles: the same mapping 1
"$XPROF" threads -p "$pid" -o "$TMP/threads.pb.gz" 2>"$TMP/err"
ok $? "xprof threads -o exits 0" || diag "$(cat "$TMP/err")"
check_main threads "$TMP/threads.pb.gz" "$pid" "$FIX/heapcxx"

start_fixture ready "$FIX/cpuburn" 1
cpid=${ready%% *}
"$XPROF" cpu -p "$cpid" -d 1s -o "$TMP/cpu.pb.gz" 2>"$TMP/err"
ok $? "xprof cpu exits 0" || diag "$(cat "$TMP/err")"
check_main cpu "$TMP/cpu.pb.gz" "$cpid" "$FIX/cpuburn"
# a command that ends by itself (xprof leaves a launched command running
# when -d ends first)
"$XPROF" cpu --wall -F 499 -o "$TMP/cpu2.pb.gz" -- "$FIX/cpuwork" 200000000 1 >/dev/null 2>"$TMP/err"
ok $? "xprof cpu --wall -- CMD exits 0" || diag "$(cat "$TMP/err")"
mapping1 "$TMP/cpu2.pb.gz" | grep -q " $(readlink -f "$FIX/cpuwork") [0-9a-f]\{40\}\$"
ok $? "cpu -- CMD: mapping 1 is cpuwork's, with its build id"

# with `ulimit -s unlimited` (the legacy mmap layout) the libraries are
# mapped below the program: the lowest file is libc, not the program
start_fixture ready bash -c 'ulimit -s unlimited; exec "$0" 30 20' "$FIX/heapcxx"
lpid=${ready%% *}
first=$(awk '$2 ~ /x/ && $6 ~ /^\// { print $6; exit }' "/proc/$lpid/maps")
case "$first" in
*heapcxx) skip=1 ;;
*) skip=0 ;;
esac
diag "legacy layout: the lowest executable file is $first"
"$XPROF" heap -p "$lpid" -o "$TMP/lheap.pb.gz" 2>"$TMP/err"
ok $? "legacy layout: xprof heap exits 0" || diag "$(cat "$TMP/err")"
check_main "legacy layout, heap" "$TMP/lheap.pb.gz" "$lpid" "$FIX/heapcxx"
check_file "legacy layout, heap" "$TMP/lheap.pb.gz" heapcxx
"$XPROF" threads -p "$lpid" -o "$TMP/lthreads.pb.gz" 2>"$TMP/err"
check_main "legacy layout, threads" "$TMP/lthreads.pb.gz" "$lpid" "$FIX/heapcxx"
"$XPROF" cpu -p "$lpid" --wall -d 200ms -o "$TMP/lcpu.pb.gz" 2>"$TMP/err"
check_main "legacy layout, cpu --wall" "$TMP/lcpu.pb.gz" "$lpid" "$FIX/heapcxx"
[ "$skip" = 0 ]
ok $? "the case is real: a library is the lowest executable file ($first)"

start_fixture ready "$FIX/goapp"
gpid=${ready%% *}
"$XPROF" threads -p "$gpid" -o "$TMP/goroutines.pb.gz" 2>"$TMP/err"
ok $? "xprof threads -o on a Go program exits 0" || diag "$(cat "$TMP/err")"
check_main goroutines "$TMP/goroutines.pb.gz" "$gpid" "$FIX/goapp"

plan "$_tap_n"
done_testing
