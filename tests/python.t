#!/bin/bash
# CPython (Debian 12's /usr/bin/python3, 3.11): Python frames in place of
# the interpreter loop, checked against the interpreter's own view.
# - xprof threads on fixtures/pyfix.py: every Python thread's Python
#   frames (qualified name, file:line, innermost first) are those
#   sys._current_frames() gives (the fixture prints them at SIGUSR1 right
#   after the dump); the thread spinning in pure Python holds the GIL;
#   the same with the layouts from python3.11-dbg's DWARF and from xprof's
#   own table (a copy of the interpreter whose build id matches no debug
#   file); the pprof profile has the Python functions (go tool pprof -traces);
# - xprof cpu: each Python function's share of the samples within 5 points
#   of the share of CPU time the fixture measured of itself
#   (time.thread_time around each call) over the same window; skipped,
#   saying so, when the machine is so loaded that under 70% of the samples
#   were read before their Python frames moved on.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/pylib.sh"
need_ptrace
PY=/usr/bin/python3
[ -x "$PY" ] && "$PY" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' ||
	skip_all "needs Debian 12's python3 (3.11)"
plan 22

check_threads dwarf "$PY"
if dpkg-query -W -f='${Status}' python3.11-dbg 2>/dev/null | grep -q 'ok installed'; then
	grep -q 'layouts: DWARF' "$TMP/dwarf/dump.err"
	ok $? "with python3.11-dbg installed, the layouts come from its DWARF" || diag "$(cat "$TMP/dwarf/dump.err")"
else
	echo "ok $((_tap_n += 1)) # SKIP python3.11-dbg is not installed (make deps)"
fi
"$XPROF" threads -p "$LAST_PID" -o "$TMP/threads.pb.gz" 2>"$TMP/threads.err"
go tool pprof -traces "$TMP/threads.pb.gz" >"$TMP/threads.traces" 2>&1
[ "$(grep -c ' park_outer$' "$TMP/threads.traces")" = 3 ] && grep -q ' spin_step$' "$TMP/threads.traces" &&
	! grep -q '_PyEval_EvalFrameDefault' "$TMP/threads.traces"
ok $? "go tool pprof -traces: park_outer in 3 stacks, spin_step in one, no interpreter loop left" ||
	diag "$(head -60 "$TMP/threads.traces")"
go tool pprof -raw "$TMP/threads.pb.gz" 2>/dev/null | grep -q 'gil:\[held\]'
ok $? "the GIL holder's sample is labelled gil=held"
# xprof serve: the same code behind net/http/pprof's goroutine dump
"$XPROF" serve --listen 127.0.0.1:0 -p "$LAST_PID" 2>"$TMP/serve.err" &
srv=$!
_fixture_pids="$_fixture_pids $srv"
for i in $(seq 500); do
	url=$(sed -n 's|^xprof: serving .* on \(http://127.0.0.1:[0-9]*/debug/pprof\)/$|\1|p' "$TMP/serve.err")
	[ -n "$url" ] && break
	sleep 0.02
done
curl -s --max-time 30 -o "$TMP/serve.txt" "$url/goroutine?debug=2"
[ "$(grep -c '^park_outer()' "$TMP/serve.txt")" = 3 ] && grep -q 'holds the GIL' "$TMP/serve.txt"
ok $? "xprof serve: goroutine?debug=2 has the Python frames and the GIL holder" || diag "$(head -40 "$TMP/serve.txt")"
kill "$srv"
wait "$srv" 2>/dev/null
kill "$LAST_PID"

# the same interpreter with a build id no debug file has: xprof's table
bid=$(readelf -n "$(readlink -f "$PY")" | awk '/Build ID/ { print $3 }')
"$PY" - "$(readlink -f "$PY")" "$TMP/python3.11" "$bid" <<'EOF'
import sys
data = open(sys.argv[1], "rb").read()
old = bytes.fromhex(sys.argv[3])
assert data.count(old) == 1
open(sys.argv[2], "wb").write(data.replace(old, bytes(b ^ 0xff for b in old)))
EOF
chmod +x "$TMP/python3.11"
check_threads table "$TMP/python3.11"
grep -q 'layouts: known 3.11 layout' "$TMP/table/dump.err"
ok $? "without debug info, the layouts come from xprof's 3.11 table" || diag "$(cat "$TMP/table/dump.err")"
kill "$LAST_PID"

# in its own pid namespace (a container), a thread state holds the id the
# thread has there: each is found through the tasks' NSpid
if unshare --pid --fork --mount-proc true 2>/dev/null; then
	dir=$TMP/ns
	mkdir -p "$dir"
	start_fixture ready unshare --pid --fork --kill-child --mount-proc "$PY" fixtures/pyfix.py threads "$dir"
	upid=${_fixture_pids##* }
	pid=$(pgrep -P "$upid")
	sleep 0.3 # the threads park
	"$XPROF" threads -p "$pid" >"$dir/dump.txt" 2>"$dir/dump.err"
	[ "$(grep -c '^park_inner()' "$dir/dump.txt")" = 3 ] && grep -q '^spin_step()' "$dir/dump.txt" &&
		grep -q '^main_wait()' "$dir/dump.txt" && grep -q '5 Python threads' "$dir/dump.err" &&
		grep -q "holds the GIL" "$dir/dump.txt"
	ok $? "in a pid namespace (ready says pid ${ready%% *}, we know it as $pid): every thread's Python stack, and the GIL holder" ||
		diag "$(cat "$dir/dump.err"; grep -E '^(thread|park|spin|main)' "$dir/dump.txt")"
	kill "$upid"
else
	echo "ok $((_tap_n += 1)) # SKIP unshare --pid is not allowed here"
fi

# cpu: shares of alpha, beta and gamma (gamma through gamma_inner)
dir=$TMP/cpu
mkdir -p "$dir"
start_fixture ready "$PY" fixtures/pyfix.py cpu "$dir" 2
pid=${ready%% *}
sleep 0.3
kill -USR2 "$pid"
# sampled until the fixture has burned 2.6 s of CPU (1300 samples at 499
# Hz, 1000 of them outside the stop: a share's sampling error is then
# about 1.6 points).  xprof is starved for 0.4 s (stopped): what the
# target ran meanwhile is read late, in one batch, and must not be shown
# under the functions the threads run when xprof reads again
profile "$dir" "$pid" 26 starve
go tool pprof -traces "$dir/cpu.pb.gz" >"$dir/traces" 2>&1
truth=$(py_truth "$dir/cpu.txt")
read -r ta tb tg <<<"$truth"
diag "the fixture measured: alpha $ta% beta $tb% gamma $tg%"
read -r a b g total <<<"$(py_shares "$dir/cpu.pb.gz" 1)"
diag "xprof, samples not moved on: alpha $a% beta $b% gamma $g% of $total samples in them"
read -r a b g total <<<"$(py_shares "$dir/cpu.pb.gz" 0)"
diag "xprof, all samples: alpha $a% beta $b% gamma $g% of $total samples in them"
# the frames are read live, within 5 ms of each sample or not at all (a
# sample read later keeps the interpreter loop, labelled python=late): the
# check needs 400 samples in the three functions (a share's sampling
# error is then under 2.5 points)
same=$(sed -n 's/.* \([0-9.]*\)% with the Python frames still the same when read/\1/p' "$dir/cpu.err")
late=$(perl tests/pprof_samples.pl "$dir/cpu.pb.gz" | awk -F'\t' '/python:\[late\]/ { split($2, v, / /); n += v[1] } END { print n + 0 }')
[ "$late" -ge 20 ]
ok $? "the samples taken while xprof was stopped are labelled python=late ($late)" || diag "$(grep python "$dir/cpu.err")"
if [ "${total:-0}" -lt 400 ]; then
	echo "ok $((_tap_n += 1)) # SKIP only ${total:-0} samples in alpha, beta and gamma were read in time: the machine is too loaded to hold the shares to 5 points"
else
	within "$a" "$ta" 5 && within "$b" "$tb" 5 && within "$g" "$tg" 5
	ok $? "alpha, beta and gamma within 5 points of the CPU shares the fixture measured ($total samples in them, $same% of those read in time still the same)"
fi
grep -q ' gamma_inner$' "$dir/traces" && awk '/ gamma_inner$/ { getline; exit !($NF == "gamma") }' "$dir/traces"
ok $? "gamma_inner is called from gamma in the profile"
kill "$pid"

# hop: the innermost frame of a sample taken in work may be read after
# work returned and rest took its place; the sampled registers say it was
# work.  Shares of the innermost Python function against the fixture's
# own CPU accounting (rest's is its calls into time.sleep)
dir=$TMP/hop
mkdir -p "$dir"
start_fixture ready "$PY" fixtures/pyfix.py hop "$dir"
pid=${ready%% *}
sleep 0.3
kill -USR2 "$pid"
profile "$dir" "$pid" 15
read -r tw tr <<<"$(awk '{ v[$1] = $2 } END { t = v["work"] + v["rest"]
	if (t) printf "%.1f %.1f", 100 * v["work"] / t, 100 * v["rest"] / t }' "$dir/cpu.txt")"
read -r w r n <<<"$(perl tests/pprof_samples.pl "$dir/cpu.pb.gz" | awk -F'\t' '
	/python:\[late\]/ { next }
	{ split($1, fr, / /); k = split(fr[1], f, /;/)
	  for (i = 1; i <= k; i++) if (f[i] == "work" || f[i] == "rest") { split($2, v, / /); c[f[i]] += v[1]; break } }
	END { t = c["work"] + c["rest"]; if (t) printf "%.1f %.1f %d", 100 * c["work"] / t, 100 * c["rest"] / t, t }')"
diag "the fixture measured: work $tw% rest $tr%; xprof: work $w% rest $r% of $n samples"
if [ "${n:-0}" -lt 300 ]; then
	echo "ok $((_tap_n += 1)) # SKIP only ${n:-0} samples in work and rest were read in time"
else
	within "$w" "$tw" 5 && within "$r" "$tr" 5
	ok $? "the innermost Python function of each sample is the one the sampled registers name (work and rest within 5 points)"
fi
kill "$pid"
done_testing
