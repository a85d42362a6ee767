# tests/pylib.sh — helpers of the CPython tests (python.t,
# python_versions.t): fixtures/pyfix.py's own view of its threads and CPU
# against xprof's.  Source it after lib.sh.

# py_frames FILE TID: the Python frames of one thread of a text dump,
# "NAME FILE:LINE" innermost first
py_frames() {
	awk -v tid="$2" '
		/^thread / { on = ($2 == tid); next }
		/^$/ { on = 0 }
		on && !/^\t/ { name = $0; sub(/\(\)$/, "", name); next }
		on && /^\t.*\.py:[0-9]+$/ { sub(/^\t/, ""); print name " " $0 }
	' "$1"
}
# interp_frames FILE TID: the same from the fixture's frames.txt
interp_frames() {
	awk -v tid="$2" '/^thread / { on = ($2 == tid); next } on { print }' "$1"
}
# wait_done DIR N: the fixture has written its files N times
wait_done() {
	local i
	for i in $(seq 100); do
		[ "$(wc -l 2>/dev/null <"$1/done.txt")" = "$2" ] && return 0
		sleep 0.1
	done
	return 1
}

# check_threads LABEL PYTHON [ARGS]: the threads fixture run by PYTHON, dumped
check_threads() {
	local label=$1 dir="$TMP/$1" pid tids tid spinner=0 bad=0 n=0 want got
	shift
	mkdir -p "$dir"
	start_fixture ready "$@" fixtures/pyfix.py threads "$dir"
	pid=${ready%% *}
	sleep 0.3 # the threads park
	"$XPROF" threads -p "$pid" >"$dir/dump.txt" 2>"$dir/dump.err"
	rc=$?
	# 1: a thread did not stop in time (a loaded machine); its Python
	# frames are still shown, read as it ran
	[ $rc = 0 ] || { [ $rc = 1 ] && grep -q 'did not stop' "$dir/dump.txt"; }
	ok $? "$label: xprof threads exits 0 (or 1 with a thread that did not stop in time)" ||
		diag "exit $rc: $(cat "$dir/dump.err")"
	kill -USR1 "$pid"
	wait_done "$dir" 1
	ok $? "$label: the fixture printed its own view of its threads" || return
	tids=$(awk '/^thread /{ print $2 }' "$dir/frames.txt")
	for tid in $tids; do
		want=$(interp_frames "$dir/frames.txt" "$tid")
		got=$(py_frames "$dir/dump.txt" "$tid")
		if grep -q '^spin_forever ' <<<"$want"; then
			# running: its innermost frames move between xprof's stop
			# and the fixture's signal (spin_step, or the loop's
			# stop.is_set, Event.is_set: CI caught each on one side);
			# compare the names from spin_forever out, after those
			spinner=$tid
			want=$(cut -d' ' -f1 <<<"$want" | awk 'on || !/^(spin_step|Event\.is_set)$/ { on = 1; print }')
			got=$(cut -d' ' -f1 <<<"$got" | awk 'on || !/^(spin_step|Event\.is_set)$/ { on = 1; print }')
		fi
		n=$((n + 1))
		if [ "$want" != "$got" ]; then
			bad=$((bad + 1))
			diag "tid $tid: the interpreter says:" "$want" "xprof says:" "$got"
		fi
	done
	is "$n/$bad" "5/0" "$label: all 5 Python threads have the interpreter's Python stack (threads/mismatches)"
	grep -q "^thread $spinner \"[^\"]*\" \[[^]]*holds the GIL" "$dir/dump.txt" &&
		grep -q "the GIL is held by thread $spinner " "$dir/dump.err"
	ok $? "$label: the spinning thread $spinner is named as the GIL holder" ||
		diag "$(grep -e GIL -e '^thread' "$dir/dump.txt" "$dir/dump.err")"
	[ "$(grep -c 'holds the GIL' "$dir/dump.txt")" = 1 ]
	ok $? "$label: and no other thread"
	LAST_PID=$pid LAST_DIR=$dir
}

proc_cpu() { sed 's/.*) //' "/proc/$1/stat" | awk '{ print $12 + $13 }'; }
# profile DIR PID TENTHS [starve]: xprof cpu at 499 Hz on PID until it has
# burned TENTHS tenths of a second of CPU, however loaded the machine (then
# Ctrl-C ends the run), xprof stopped for 0.4 s in the middle if starve;
# then the fixture writes its own view
profile() {
	local dir=$1 pid=$2 tenths=$3 cpu0 hz i xp rc
	"$XPROF" cpu -p "$pid" -d 40s -F 499 -o "$dir/cpu.pb.gz" 2>"$dir/cpu.err" &
	xp=$!
	cpu0=$(proc_cpu "$pid")
	hz=$(getconf CLK_TCK)
	if [ -n "${4:-}" ]; then
		sleep 0.5
		kill -STOP "$xp"
		sleep 0.4
		kill -CONT "$xp"
	fi
	for i in $(seq 300); do
		[ $(($(proc_cpu "$pid") - cpu0)) -ge $((tenths * hz / 10)) ] && break
		sleep 0.1
	done
	kill -INT "$xp"
	wait "$xp"
	rc=$?
	kill -USR1 "$pid"
	# 1: samples lost while xprof was starved of CPU (a loaded machine)
	[ $rc = 0 ] || { [ $rc = 1 ] && grep -q 'samples were lost' "$dir/cpu.err"; }
	ok $? "xprof cpu exits 0 (or 1 having lost samples)" || diag "exit $rc: $(cat "$dir/cpu.err")"
	wait_done "$dir" 1
	diag "$(grep python "$dir/cpu.err")"
}
# py_shares PROFILE ONLY: "ALPHA BETA GAMMA N", samples per function (cum:
# a stack counts once for each function in it) as shares of the N in them,
# of all samples (ONLY 0) or of those whose Python frames had not moved on
# when read (ONLY 1: no python=moved label)
py_shares() {
	perl tests/pprof_samples.pl "$1" | awk -F'\t' -v only="$2" '
		only && /python:\[moved\]/ { next }
		{ split($1, fr, / /); n = split(fr[1], f, /;/); delete seen
		  for (i = 1; i <= n; i++) seen[f[i]] = 1
		  split($2, v, / /); for (k in seen) c[k] += v[1] }
		END { t = c["alpha"] + c["beta"] + c["gamma"]
		      if (t) printf "%.1f %.1f %.1f %d", 100 * c["alpha"] / t, 100 * c["beta"] / t, 100 * c["gamma"] / t, t }'
}
# py_truth CPUTXT: "ALPHA BETA GAMMA", the shares of CPU time the fixture measured
py_truth() {
	awk '{ v[$1] = $2 } END { t = v["alpha"] + v["beta"] + v["gamma"]
	if (t) printf "%.1f %.1f %.1f", 100 * v["alpha"] / t, 100 * v["beta"] / t, 100 * v["gamma"] / t }' "$1"
}
