#!/bin/bash
# What go tool pprof's own views make of xprof's profiles of C code, on the
# machine where they were taken: -list finds the source from any directory
# (file names made absolute with DW_AT_comp_dir, as gdb shows them),
# -disasm finds the function in the binary (locations and mappings hold the
# file's own addresses, as objdump shows them, for a PIE too),
# -symbolize=force keeps the names, and the web UI's source page shows the
# source lines and the instructions.  The fixture is parked-O2 (PIE, built
# with `cc fixtures/parked.c`: the DWARF holds "fixtures/parked.c").
. "$(dirname "$0")/lib.sh"
need_ptrace
command -v go >/dev/null || { echo "Bail out! go missing (make deps)"; exit 1; }

here=$PWD
bin="$FIX/parked-O2"
start_fixture ready "$bin"
pid=${ready%% *}
"$XPROF" threads -p "$pid" >"$TMP/dump.txt" 2>"$TMP/dump.err"
ok $? "xprof threads on parked-O2" || diag "$(cat "$TMP/dump.err")"
grep -A1 '^hold_lock()$' "$TMP/dump.txt" | grep -q "^	$here/fixtures/parked.c:[0-9]* +0x"
ok $? "the text dump names the source absolutely: $here/fixtures/parked.c" || diag "$(grep -A1 '^hold_lock' "$TMP/dump.txt")"

"$XPROF" threads -p "$pid" -o "$TMP/t.pb.gz" 2>"$TMP/t.err"
ok $? "goroutine-style thread profile written" || diag "$(cat "$TMP/t.err")"
pprof_check "$TMP/t.pb.gz"
ok $? "it passes CheckValid and go tool pprof reads it"

# the mapping of the executable: its own addresses (PT_LOAD's p_vaddr),
# not the randomized ones of /proc/PID/maps
vaddr=$(readelf -lW "$bin" | awk '$1 == "LOAD" && / R E / { print $3; exit }')
map=$(go tool pprof -raw "$TMP/t.pb.gz" 2>/dev/null | sed -n '/^Mappings/,$p' | grep " $here/$bin ")
start=$(echo "$map" | sed -n 's/^[0-9]*: \(0x[0-9a-f]*\)\/.*/\1/p')
[ -n "$vaddr" ] && [ -n "$start" ] && [ $((vaddr)) = $((start)) ]
ok $? "the executable's mapping starts at its text segment's own address $vaddr: $map"

# from /, where the relative name recorded in the DWARF finds nothing
(cd / && go tool pprof -list hold_lock "$TMP/t.pb.gz") >"$TMP/list.txt" 2>&1
grep -q 'sleep(1000);' "$TMP/list.txt"
ok $? "go tool pprof -list hold_lock run from / shows fixtures/parked.c's lines" || diag "$(head -5 "$TMP/list.txt")"

(cd / && go tool pprof -disasm hold_lock "$TMP/t.pb.gz") >"$TMP/disasm.txt" 2>&1
grep -q 'CALL.*;hold_lock parked.c:[0-9]*$' "$TMP/disasm.txt"
ok $? "go tool pprof -disasm hold_lock shows its instructions, the sampled call annotated" || diag "$(head -5 "$TMP/disasm.txt")"
# every instruction address shown is one objdump shows for hold_lock
objdump -d --no-show-raw-insn "$bin" | awk '/<hold_lock>:$/ { on = 1; next } /^$/ { on = 0 } on { sub(/:.*/, ""); sub(/^ */, ""); print }' >"$TMP/objdump.addrs"
awk '/^ +[.0-9]+ +[.0-9]+ +[0-9a-f]+: / { print $3 }' "$TMP/disasm.txt" | sed 's/:$//' >"$TMP/pprof.addrs"
[ -s "$TMP/pprof.addrs" ] && [ -z "$(comm -23 <(sort "$TMP/pprof.addrs") <(sort "$TMP/objdump.addrs"))" ]
ok $? "its $(wc -l <"$TMP/pprof.addrs") addresses are objdump's for hold_lock" || diag "$(head -3 "$TMP/pprof.addrs")"

# pprof's own re-symbolization reads the same binary at the same addresses
(cd / && go tool pprof -symbolize=force -traces "$TMP/t.pb.gz") >"$TMP/force.txt" 2>&1
grep -q '^ *hold_lock$' "$TMP/force.txt" && ! grep -q '\[parked-O2\]' "$TMP/force.txt"
ok $? "-symbolize=force keeps hold_lock's name (no [parked-O2] frames)" || diag "$(grep -m3 parked-O2 "$TMP/force.txt")"

# the web UI's source page (weblist): the source lines and the instructions.
# go tool pprof reads the file name for it from the binary with its own
# DWARF reader, which leaves GCC's DWARF 5 names relative to the build
# directory: -source_path names that directory.
pprof_bin=$(go tool -n pprof)
port=$((20000 + RANDOM % 20000))
"$pprof_bin" -http="127.0.0.1:$port" -no_browser -source_path="$here" "$TMP/t.pb.gz" >"$TMP/http.log" 2>&1 &
web=$!
for i in $(seq 1 200); do
	curl -sf "http://127.0.0.1:$port/ui/source?f=hold_lock" >"$TMP/source.html" 2>/dev/null && break
	kill -0 "$web" 2>/dev/null || break
	sleep 0.05
done
kill "$web" 2>/dev/null
wait "$web" 2>/dev/null
grep -q 'sleep(1000);' "$TMP/source.html" && grep -q 'CALL' "$TMP/source.html"
ok $? "the web UI's /ui/source?f=hold_lock shows the source line and the instructions" || diag "$(head -c 300 "$TMP/http.log")"

plan "$_tap_n"
done_testing
