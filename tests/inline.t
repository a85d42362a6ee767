#!/bin/bash
# Inline frames as the reference writes and shows them: an inlined call and
# its callers up to the physical function are one location of several
# lines, innermost first, so go tool pprof prints "(inline)" after them.
# Go: goparked writes its own block and mutex profiles (runtime/pprof);
# xprof's, read from outside, must print the same -raw samples and
# locations, and the same -traces with the same (inline) markers.
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

plan "$_tap_n"
done_testing
