#!/bin/bash
# exit_status.t — what xprof's exit status and messages promise (docs/xprof.1,
# EXIT STATUS): a launched command's status comes back as time(1) passes it
# on; a signal before the output is in place leaves no file and ends xprof
# by the signal, one after it changes nothing; usage errors and ignored
# options are one line and status 64.
. "$(dirname "$0")/lib.sh"
need_ptrace
command -v strace >/dev/null || skip_all "strace is not installed (apt install strace)"
plan 39

# ---- a launched command's status ---------------------------------------
"$XPROF" cpu -o "$TMP/l.pb.gz" -- bash -c 'exit 3' >/dev/null 2>"$TMP/err"
is "$?" 3 "-- bash -c 'exit 3' exits 3, as time(1) would" || diag "$(cat "$TMP/err")"
"$XPROF" cpu -o "$TMP/l.pb.gz" -- bash -c 'kill -USR1 $$' >/dev/null 2>"$TMP/err"
is "$?" $((128 + 10)) "a command killed by SIGUSR1 gives 128+10" || diag "$(cat "$TMP/err")"
grep -q 'bash was killed by signal 10' "$TMP/err"
ok $? "and says which signal" || diag "$(cat "$TMP/err")"
"$XPROF" cpu -o "$TMP/l.pb.gz" -- "$TMP/no-such-command" >/dev/null 2>"$TMP/err"
is "$?" 127 "a command that does not exist: 127, as the shell says it"
"$XPROF" cpu -o "$TMP/l.pb.gz" -- /etc/passwd >/dev/null 2>"$TMP/err"
is "$?" 126 "a command that cannot be run: 126"

# a command with samples: its status, the profile written, and no word of
# the exec that started it (which is no exec of the target's own)
"$XPROF" cpu -F 499 -o "$TMP/l.pb.gz" -- "$FIX/cpuwork" 20000000 1 >/dev/null 2>"$TMP/err"
is "$?" 0 "a launched cpuwork that exits 0: 0" || diag "$(cat "$TMP/err")"
pprof_check "$TMP/l.pb.gz"
ok $? "its profile is written and valid"
! grep -q "exec'd" "$TMP/err"
ok $? "nothing is said of the exec that launched it" || diag "$(cat "$TMP/err")"
# a launched command that execs once more: that exec is the target's own
"$XPROF" cpu -F 499 -o "$TMP/l2.pb.gz" -- bash -c "exec $FIX/cpuwork 20000000 1" >/dev/null 2>"$TMP/err"
grep -q "exec'd 1 time during the run (from bash to cpuwork)" "$TMP/err"
ok $? "an exec of the launched command itself is still reported" || diag "$(cat "$TMP/err")"

# -d ends before the command: it is sent SIGTERM (perf record's way), and
# xprof's own status stands
"$XPROF" cpu -F 199 -d 1s -o "$TMP/d.pb.gz" -- bash -c 'while :; do :; done' >/dev/null 2>"$TMP/err"
is "$?" 0 "-d shorter than the command: exit 0, the profile written" || diag "$(cat "$TMP/err")"
cpid=$(sed -n 's/^xprof: bash (pid \([0-9]*\)).*/\1/p' "$TMP/err")
grep -q 'bash was still running at the end of -d: ended with SIGTERM' "$TMP/err"
ok $? "it says the command was ended with SIGTERM" || diag "$(cat "$TMP/err")"
[ -n "$cpid" ] && ! kill -0 "$cpid" 2>/dev/null
ok $? "and the command (pid ${cpid:-?}) is gone, not left running"

# ---- signals around the write -------------------------------------------
start_fixture ready "$FIX/parked-O2"
ppid=${ready%% *}
for cmd in threads heap; do
	# strace delivers SIGTERM as the temp file is renamed over the
	# output: the run is complete, the status its own
	# (the braces keep the shell's "Terminated" out of the TAP stream; a
	# run that fails for another reason, 2, as a loaded machine's thread
	# that does not stop in time, is tried again)
	for try in 1 2 3; do
		rm -f "$TMP/s.pb.gz"
		{ strace -f -o /dev/null -e trace=rename -e inject=rename:signal=TERM \
			"$XPROF" "$cmd" -p "$ppid" -o "$TMP/s.pb.gz" >/dev/null 2>"$TMP/err"; rc=$?; } 2>/dev/null
		[ "$rc" = 2 ] || break
	done
	[ "$rc" -le 1 ] && [ -s "$TMP/s.pb.gz" ]
	ok $? "$cmd: SIGTERM once the file is being renamed into place: exit $rc (0 or 1), the file written" ||
		diag "$(cat "$TMP/err")"
	# and while the temp file is written: no file, ended by the signal
	# (the braces keep the shell's "Terminated" out of the TAP stream; a
	# run that fails for another reason, 2, as a loaded machine's thread
	# that does not stop in time, is tried again)
	for try in 1 2 3; do
		rm -f "$TMP/s.pb.gz"
		{ strace -f -o /dev/null -e trace=fchmod -e inject=fchmod:signal=TERM \
			"$XPROF" "$cmd" -p "$ppid" -o "$TMP/s.pb.gz" >/dev/null 2>"$TMP/err"; rc=$?; } 2>/dev/null
		[ "$rc" = 2 ] || break
	done
	[ "$rc" = 143 ] && [ ! -e "$TMP/s.pb.gz" ] && [ -z "$(ls -A "$TMP" | grep '^\.s\.pb\.gz')" ]
	ok $? "$cmd: SIGTERM while the temp file is written: 143 (128+15), no file, no temp file (got $rc)" ||
		diag "$(cat "$TMP/err")"
done
no_thread_stopped "$ppid"
ok $? "the target runs on"

# ---- usage errors: one line, xprof:, 64 ------------------------------------
one_line 64 "^xprof: threads: unknown option '-x'" "an unknown short option" -- "$XPROF" threads -x
one_line 64 "^xprof: cpu: option '--pid' wants a value" "a long option without its value" -- "$XPROF" cpu --pid
one_line 64 "^xprof: heap: unknown option '--bogus'" "an unknown long option" -- "$XPROF" heap --bogus=1
one_line 64 "^xprof: cpu: option '--no-kernel' takes no value" "a value for a flag" -- "$XPROF" cpu --no-kernel=1 -p "$ppid"
for c in block mutex top; do
	one_line 64 "^xprof: $c: unknown option '-x'" "$c: an unknown short option" -- "$XPROF" $c -x
	one_line 64 "^xprof: $c: option '-p' wants a value" "$c: an option without its value" -- "$XPROF" $c -p
done
one_line 64 "^xprof: serve: unknown option '-z'" "serve, too" -- "$XPROF" serve -z

# ---- combinations that would be ignored are refused ------------------------
one_line 64 "^xprof: threads: --group is for the text dump" "threads --group with -o" -- \
	"$XPROF" threads -p "$ppid" --group -o "$TMP/g.pb.gz"
one_line 64 "^xprof: threads: --native adds OS threads" "threads --native with -o" -- \
	"$XPROF" threads -p "$ppid" --native -o "$TMP/g.pb.gz"
one_line 64 "^xprof: cpu: --no-kernel is for CPU sampling" "cpu --wall --no-kernel" -- \
	"$XPROF" cpu --wall --no-kernel -p "$ppid" -d 1s -o "$TMP/g.pb.gz"
mkdir -p "$TMP/go"
start_fixture gready "$FIX/goparked" "$TMP/go"
gpid=${gready%% *}
one_line 64 "^xprof: threads: --group groups OS threads, and pid $gpid (goparked) is a Go program" \
	"threads --group on a Go program" -- "$XPROF" threads -p "$gpid" --group
"$XPROF" threads -p "$gpid" --group --native >"$TMP/gn.txt" 2>"$TMP/err"
[ $? -le 1 ]
ok $? "threads --group --native on a Go program is accepted" || diag "$(cat "$TMP/err")"
grep -q '^goroutine 1 \[' "$TMP/gn.txt" && grep -q '^thread [0-9]* "goparked" \[' "$TMP/gn.txt"
ok $? "the goroutines, then the OS threads" || diag "$(tail -20 "$TMP/gn.txt")"

# ---- what a bad -o or -p says ------------------------------------------------
one_line 2 "^xprof: cannot write /proc/version: it is in /proc, the kernel's process file system" \
	"-o /proc/version says why" -- "$XPROF" threads -p "$ppid" -o /proc/version
[ ! -e "$TMP/none" ]
tid=$(ls "/proc/$ppid/task" | grep -v "^$ppid\$" | head -1)
tname=$(cat "/proc/$ppid/task/$tid/comm")
"$XPROF" threads -p "$tid" >/dev/null 2>"$TMP/err"
# 1: on a loaded machine the spinner may not stop in time
[ $? -le 1 ]
ok $? "threads -p TID (a thread, not the leader) exits 0 (or 1)" || diag "$(cat "$TMP/err")"
grep -q "^xprof: $tid is a thread ($tname) of pid $ppid (parked-O2): xprof reads the whole process" "$TMP/err"
ok $? "it says a thread was given, and of which process" || diag "$(cat "$TMP/err")"
grep -q "^xprof: pid $ppid (parked-O2): 7 threads" "$TMP/err"
ok $? "the summary names the process, not the thread" || diag "$(cat "$TMP/err")"
"$XPROF" cpu -p "$tid" -d 1s -F 199 --wall -o "$TMP/tid.pb.gz" >/dev/null 2>"$TMP/err"
grep -q "^xprof: parked-O2 (pid $ppid):" "$TMP/err"
ok $? "cpu -p TID: the summary names the process too" || diag "$(cat "$TMP/err")"

done_testing
