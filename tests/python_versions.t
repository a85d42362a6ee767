#!/bin/bash
# CPython builds other than Debian's: pyenv's shared builds of 3.11, 3.12
# and 3.13 (the interpreter in lib/libpython3.X.so.1.0, with its DWARF),
# each checked against the interpreter's own view, as python.t does for
# Debian's 3.11.  For each version present (the newest patch release of
# it under $PYENV_ROOT, else ~/.pyenv; skipped, saying so, when absent):
# - xprof threads on fixtures/pyfix.py: every Python thread's Python
#   frames (qualified name, file:line, innermost first) are those
#   sys._current_frames() gives at SIGUSR1 right after the dump, the
#   spinning thread and no other is the GIL holder, the layouts come from
#   where they should (3.11 and 3.12: the library's DWARF; 3.13: the
#   _Py_DebugOffsets at the start of _PyRuntime), and the target is left
#   untraced and running;
# - 3.12 and 3.13: the same with a copy of the library stripped of its
#   DWARF (run through LD_LIBRARY_PATH): xprof's 3.12 table, 3.13's debug
#   offsets (3.11's table is python.t's);
# - xprof cpu: alpha's, beta's and gamma's shares of the samples within 5
#   points of the shares of CPU time the fixture measured of itself
#   (time.thread_time around each call) over the same window (skipped,
#   saying so, under 400 samples read in time), the innermost Python frame
#   checked against the next_instr the sampled registers hold (the loop's
#   DWARF), and the target left untraced and running.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/pylib.sh"
need_ptrace
VERSIONS="3.11 3.12 3.13"
# tests per version: 11, and 6 without DWARF (not for 3.11)
tests_of() { [ "$1" = 3.11 ] && echo 11 || echo 17; }
n=0
for minor in $VERSIONS; do n=$((n + $(tests_of "$minor"))); done
plan $n
PYENV=${PYENV_ROOT:-$HOME/.pyenv}/versions

skip_n() { # skip_n N REASON
	local i
	for i in $(seq "$1"); do echo "ok $((_tap_n += 1)) # SKIP $2"; done
}
# released LABEL PID: the target has no tracer and no stopped thread
released() {
	local tp
	tp=$(awk '/^TracerPid:/ { print $2 }' "/proc/$2/status")
	[ "$tp" = 0 ] && no_thread_stopped "$2"
	ok $? "$1: the target is left untraced (TracerPid $tp) and no thread stopped" || diag "$(thread_states "$2" | tr -d '\n')"
}

for minor in $VERSIONS; do
	home=$(ls -d "$PYENV/$minor".* 2>/dev/null | grep -E "/$minor\.[0-9]+\$" | sort -V | tail -1)
	py=$home/bin/python$minor
	lib=$home/lib/libpython$minor.so.1.0
	if [ -z "$home" ] || [ ! -x "$py" ] || [ ! -e "$lib" ]; then
		skip_n "$(tests_of "$minor")" "no shared pyenv build of Python $minor under $PYENV"
		continue
	fi
	full=${home##*/}
	case $minor in
	3.13) src=_Py_DebugOffsets nodebug=_Py_DebugOffsets ;;
	*) src=DWARF nodebug="known $minor layout" ;;
	esac

	check_threads "$full" "$py"
	grep -q "^xprof: python $full (layouts: $src)" "$TMP/$full/dump.err"
	ok $? "$full: python $full read, the layouts from $src" || diag "$(cat "$TMP/$full/dump.err")"
	released "$full" "$LAST_PID"
	kill "$LAST_PID"

	# the same library without its DWARF
	if [ "$minor" != 3.11 ]; then
		mkdir -p "$TMP/lib$minor"
		strip --strip-debug -o "$TMP/lib$minor/${lib##*/}" "$lib"
		check_threads "$full-nodebug" env LD_LIBRARY_PATH="$TMP/lib$minor" "$py"
		grep -q "^xprof: python $full (layouts: $nodebug)" "$TMP/$full-nodebug/dump.err"
		ok $? "$full without DWARF: the layouts from $nodebug" || diag "$(cat "$TMP/$full-nodebug/dump.err")"
		kill "$LAST_PID"
	fi

	# cpu: two threads in alpha, beta and gamma for 2 s of CPU (1000
	# samples at 499 Hz: a share's sampling error is about 1.6 points)
	dir=$TMP/$full-cpu
	mkdir -p "$dir"
	start_fixture ready "$py" fixtures/pyfix.py cpu "$dir" 2
	pid=${ready%% *}
	sleep 0.3
	kill -USR2 "$pid"
	profile "$dir" "$pid" 20
	read -r ta tb tg <<<"$(py_truth "$dir/cpu.txt")"
	read -r a b g total <<<"$(py_shares "$dir/cpu.pb.gz" 0)"
	diag "$full: the fixture measured alpha $ta% beta $tb% gamma $tg%; xprof: alpha $a% beta $b% gamma $g% of ${total:-0} samples in them"
	if ! grep -q "^xprof: python $full (layouts: $src)" "$dir/cpu.err"; then
		ok 1 "$full: xprof cpu read the interpreter" || diag "$(grep python "$dir/cpu.err")"
	elif [ "${total:-0}" -lt 400 ]; then
		skip_n 1 "only ${total:-0} samples in alpha, beta and gamma were read in time: the machine is too loaded to hold the shares to 5 points"
	else
		within "$a" "$ta" 5 && within "$b" "$tb" 5 && within "$g" "$tg" 5
		ok $? "$full: alpha, beta and gamma within 5 points of the CPU shares the fixture measured (${total} samples)"
	fi
	if [ "$minor" = 3.13 ]; then
		# 3.13's DWARF has no next_instr for its loop (optimized out):
		# the frame the registers hold stands in for it
		same=$(sed -n 's/.* \([0-9.]*\)% with the Python frames still the same when read/\1/p' "$dir/cpu.err")
		grep -q 'checked by the frame the sampled registers hold only' "$dir/cpu.err" &&
			awk -v s="${same:-0}" 'BEGIN { exit !(s >= 50) }'
		ok $? "$full: the innermost Python frame checked against the frame the sampled registers hold (${same:-?}% still the same when read)" ||
			diag "$(grep python "$dir/cpu.err")"
	else
		checked=$(sed -n 's/.*agreed with the sampled registers in \([0-9.]*\)% of samples and was taken from them in \([0-9.]*\)%.*/\1 \2/p' "$dir/cpu.err")
		read -r chk cor <<<"$checked"
		awk -v c="${chk:-0}" -v k="${cor:-0}" 'BEGIN { exit !(c + k >= 50) }'
		ok $? "$full: the innermost Python frame checked against the sampled next_instr (agreed ${chk:-?}%, taken from it ${cor:-?}%)" ||
			diag "$(grep python "$dir/cpu.err")"
	fi
	released "$full cpu" "$pid"
	kill "$pid"
done
done_testing
