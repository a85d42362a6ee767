#!/bin/bash
# Inline frames as the reference writes and shows them: an inlined call and
# its callers up to the physical function are one location of several
# lines, innermost first, so go tool pprof prints "(inline)" after them.
# Go: goparked writes its own block and mutex profiles (runtime/pprof);
# xprof's, read from outside, must print the same -raw samples and
# locations, and the same -traces with the same (inline) markers.
# C with link-time optimisation: a function inlined from another unit
# (its abstract origin there, DW_FORM_ref_addr) is a frame of its own with
# its file:line, and the outer function keeps its own, as gdb's bt shows
# them: the lto fixture, and Debian's python3.11 (with python3.11-dbg's
# DWARF) where a thread waiting for the GIL is in PyCOND_TIMEDWAIT inlined
# into take_gil.
. "$(dirname "$0")/lib.sh"
need_ptrace
command -v go >/dev/null || { echo "Bail out! go missing (make deps)"; exit 1; }

# raw_body PROFILE: go tool pprof -raw from the samples to the mappings
raw_body() { go tool pprof -raw "$1" 2>/dev/null | sed -n '/^Samples/,/^Mappings/p'; }
# traces_body PROFILE: go tool pprof -traces without the header
traces_body() { go tool pprof -traces "$1" 2>/dev/null | sed -n '/^-----/,$p'; }

dir="$TMP/goparked"
mkdir -p "$dir"
start_fixture ready "$FIX/goparked" "$dir"
pid=${ready%% *}
for kind in mutex block; do
	"$XPROF" heap -p "$pid" --$kind -o "$dir/x$kind.pb.gz" 2>"$dir/$kind.err"
	ok $? "xprof heap --$kind on goparked" || diag "$(cat "$dir/$kind.err")"
	raw_body "$dir/$kind.pb.gz" >"$dir/go.raw"
	raw_body "$dir/x$kind.pb.gz" >"$dir/x.raw"
	grep -q '^             ' "$dir/go.raw"
	ok $? "$kind: Go's own profile has a location of several lines (an inlined call)"
	diff "$dir/go.raw" "$dir/x.raw" >"$dir/raw.diff"
	ok $? "$kind: -raw samples and locations the same as runtime/pprof's ($(grep -c ': 0x' "$dir/go.raw") locations)" ||
		diag "$(head -20 "$dir/raw.diff")"
	traces_body "$dir/$kind.pb.gz" >"$dir/go.traces"
	traces_body "$dir/x$kind.pb.gz" >"$dir/x.traces"
	diff "$dir/go.traces" "$dir/x.traces" >"$dir/traces.diff"
	ok $? "$kind: -traces the same, $(grep -c '(inline)$' "$dir/go.traces") lines marked (inline)" ||
		diag "$(head -20 "$dir/traces.diff")"
done
grep -q '^ *[0-9.]*[a-z]*s *sync.(\*Mutex).Unlock (inline)$' <(go tool pprof -traces "$dir/xmutex.pb.gz" 2>/dev/null)
ok $? "the mutex profile shows sync.(*Mutex).Unlock (inline), as Go's does"

# the goroutine profile: the goroutine in main.recvInline (inlined into
# main.callsInline) has it as an inline line of callsInline's location
"$XPROF" threads -p "$pid" -o "$dir/g.pb.gz" 2>"$dir/g.err"
ok $? "goroutine profile written" || diag "$(cat "$dir/g.err")"
go tool pprof -traces "$dir/g.pb.gz" 2>/dev/null | grep -A1 'main.recvInline (inline)$' | grep -q '^ *main.callsInline$'
ok $? "goroutine profile: main.recvInline (inline) in main.callsInline"

# ---- LTO: an inline instance whose abstract origin is in another unit ----
start_fixture ready "$FIX/lto"
pid=${ready%% *}
tid=$(grep -l '^lto-park$' /proc/"$pid"/task/*/comm | head -1 | cut -d/ -f5)
sleep_line=$(grep -n 'LTO_SLEEP_LINE' fixtures/lto_b.c | cut -d: -f1)
call_line=$(grep -n 'LTO_CALL_LINE' fixtures/lto_a.c | cut -d: -f1)
"$XPROF" threads -p "$pid" >"$TMP/lto.txt" 2>"$TMP/lto.err"
ok $? "xprof threads on the LTO fixture" || diag "$(cat "$TMP/lto.err")"
xprof_functions "$TMP/lto.txt" "$tid" | sed -n '3,4p' | tr '\n' ' ' >"$TMP/lto.names"
is "$(cat "$TMP/lto.names")" "b_park park_in_a " "the inlined b_park (from lto_b.c's unit) is a frame of its own, in park_in_a"
grep -A1 '^b_park(\.\.\.)$' "$TMP/lto.txt" | grep -q "/fixtures/lto_b.c:$sleep_line\$"
ok $? "b_park is at lto_b.c:$sleep_line, the nanosleep line" || diag "$(grep -A8 lto-park "$TMP/lto.txt")"
grep -A1 '^park_in_a()$' "$TMP/lto.txt" | grep -q "/fixtures/lto_a.c:$call_line +0x"
ok $? "park_in_a keeps its own line, lto_a.c:$call_line (where it calls b_park), not b_park's" || diag "$(grep -A8 lto-park "$TMP/lto.txt")"
if command -v gdb >/dev/null; then
	gdb -batch -p "$pid" -ex 'thread apply all bt' >"$TMP/lto.gdb" 2>&1
	want=$(sed -n 's/^#[0-9]*  *\(0x[0-9a-f]* in \)\{0,1\}\(b_park\|park_in_a\) (.*) at \(.*\)$/\2 \3/p' "$TMP/lto.gdb" | tr '\n' ' ')
	got=$(grep -A1 -E '^(b_park|park_in_a)\(' "$TMP/lto.txt" | awk '/^[a-z]/ { f = $1; sub(/\(.*/, "", f) } /^\t/ { sub(/^.*\/fixtures\//, "fixtures/", $1); print f, $1 }' | tr '\n' ' ')
	is "$got" "$want" "the same frames and file:line as gdb's bt"
fi
"$XPROF" threads -p "$pid" -o "$TMP/lto.pb.gz" 2>/dev/null
go tool pprof -traces "$TMP/lto.pb.gz" 2>/dev/null | grep -A1 '^ *b_park (inline)$' | grep -q '^ *park_in_a$'
ok $? "in the profile: b_park (inline) in park_in_a's location"

# ---- python3.11: PyCOND_TIMEDWAIT inlined into take_gil.lto_priv.0 ----
py=/usr/bin/python3.11
id=$(readelf -n "$py" 2>/dev/null | sed -n 's/.*Build ID: //p' | head -1)
if [ -x "$py" ] && [ -n "$id" ] && [ -e "/usr/lib/debug/.build-id/${id:0:2}/${id:2}.debug" ] && command -v gdb >/dev/null; then
	cat >"$TMP/spin.py" <<'PY'
import os, threading
def spin():
    x = 0
    while True:
        x += 1
for _ in range(2):
    threading.Thread(target=spin, daemon=True).start()
print("ready", os.getpid(), flush=True)
threading.Event().wait()
PY
	start_fixture ready "$py" "$TMP/spin.py"
	pid=${ready%% *}
	# the two spinning threads take turns: one waits for the GIL
	for i in 1 2 3 4 5 6 7 8 9 10; do
		"$XPROF" threads -p "$pid" >"$TMP/py.txt" 2>/dev/null
		grep -q '^PyCOND_TIMEDWAIT(\.\.\.)$' "$TMP/py.txt" && break
		sleep 0.2
	done
	grep -A3 '^PyCOND_TIMEDWAIT(\.\.\.)$' "$TMP/py.txt" | sed 's/ +0x.*//' | tr '\n\t' '  ' >"$TMP/py.got"
	for i in 1 2 3 4 5 6 7 8 9 10; do
		gdb -batch -p "$pid" -ex 'thread apply all bt' >"$TMP/py.gdb" 2>&1
		grep -q ' PyCOND_TIMEDWAIT (' "$TMP/py.gdb" && break
		sleep 0.2
	done
	want=$(grep -A1 ' PyCOND_TIMEDWAIT (' "$TMP/py.gdb" | sed -n 's/^#[0-9]*  *\(0x[0-9a-f]* in \)\{0,1\}\([A-Za-z_]*\) (.*) at \.\.\/\(.*\)$/\2 \3/p' | tr '\n' ' ')
	got=$(sed 's/(\.\.\.)//; s/()//' "$TMP/py.got" | awk '{ for (i = 1; i <= NF; i += 2) { f = $(i + 1); sub(/^.*\/python3\.11-[^\/]*\//, "", f); printf "%s %s ", $i, f } }')
	[ -n "$want" ] && [ "$got" = "$want" ]
	ok $? "python3.11 (LTO): a thread waiting for the GIL is in PyCOND_TIMEDWAIT inlined into take_gil, each at its own line, as gdb shows ($got)" ||
		diag "gdb: $want" "xprof: $got"
else
	ok 0 "# SKIP python3.11 or python3.11-dbg's debug info or gdb missing"
fi

plan "$_tap_n"
done_testing
