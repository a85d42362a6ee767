#!/bin/bash
# Faults on xprof's side, the cases the other fault tests leave out:
# - heap when the walk would not fit in memory (xprof in a memory cgroup
#   with a small limit): refused before anything is stopped, one line
#   naming the sizes, exit 2, no file; the same heap under a large limit
#   is walked;
# - SIGINT, SIGTERM and SIGHUP during a heap walk: xprof exits by the
#   signal, says the target runs, leaves no file or temporary;
# - SIGTERM and SIGHUP during cpu (perf and --wall): the run stops early and
#   the profile is written (exit 0), as Ctrl-C does;
# - stdout closed under threads (SIGPIPE): exit 2, one line;
# - a full disk under cpu and heap -o: exit 2, no partial file;
# - cpu on more threads than ulimit -n has room for falls back to --wall;
#   --wall spaces its ticks so a big process is stopped under 10% of the time.
# Every case ends with the target running.
. "$(dirname "$0")/lib.sh"
need_ptrace

no_temp() { [ -z "$(ls -A "$1" | grep '^\..*\.pb\.gz\.')" ]; }

# --- the heap walk's memory budget -------------------------------------------
# a child of xprof's own memory cgroup (v2, or v1's memory hierarchy)
make_cgroup() {
	local rel
	rel=$(sed -n 's/^0:://p' /proc/self/cgroup)
	if [ -n "$rel" ] && [ -f /sys/fs/cgroup/cgroup.controllers ] &&
		grep -qw memory "/sys/fs/cgroup${rel%/}/cgroup.subtree_control" 2>/dev/null; then
		CG="/sys/fs/cgroup${rel%/}/xprof-test.$$"
		CG_LIMIT=memory.max
	else
		rel=$(sed -n 's/^[0-9]*:memory://p' /proc/self/cgroup)
		[ -n "$rel" ] && [ -d /sys/fs/cgroup/memory ] || return 1
		CG="/sys/fs/cgroup/memory${rel%/}/xprof-test.$$"
		CG_LIMIT=memory.limit_in_bytes
	fi
	mkdir "$CG" 2>/dev/null
}
# in_cgroup LIMIT CMD...: runs CMD inside the cgroup limited to LIMIT
in_cgroup() {
	echo "$1" >"$CG/$CG_LIMIT" || return 99
	shift
	sh -c 'echo $$ >"$0/cgroup.procs" && exec "$@"' "$CG" "$@"
}

if [ "$(id -u)" = 0 ] && make_cgroup; then
	start_fixture ready "$FIX/heapbig" 200
	hpid=${ready%% *}
	sleep 0.3
	in_cgroup 200M "$XPROF" heap -p "$hpid" -o "$TMP/budget.pb.gz" >/dev/null 2>"$TMP/err"
	rc=$?
	[ "$rc" = 2 ] && [ "$(wc -l <"$TMP/err")" = 1 ] &&
		grep -q "the walk needs [0-9]* MiB for [0-9]* MiB of heap and [0-9]* MiB of memory is available.*nothing was stopped" "$TMP/err"
	ok $? "a heap walk that would not fit under a 200 MB limit is refused, one line (exit $rc): $(cat "$TMP/err")"
	[ ! -e "$TMP/budget.pb.gz" ] && no_temp "$TMP"
	ok $? "and writes no file"
	! grep -q 'process stopped for' "$TMP/err" && no_thread_stopped "$hpid"
	ok $? "and the target was not stopped and runs"
	in_cgroup 900M "$XPROF" heap -p "$hpid" -o "$TMP/budget.pb.gz" >/dev/null 2>"$TMP/err"
	rc=$?
	[ "$rc" = 0 ] && [ -s "$TMP/budget.pb.gz" ]
	ok $? "the same heap under a 900 MB limit is walked (exit $rc)" || diag "$(cat "$TMP/err")"
	kill -KILL "$hpid"
	wait "$hpid" 2>/dev/null
	for i in $(seq 1 100); do rmdir "$CG" 2>/dev/null && break; sleep 0.05; done
else
	for i in 1 2 3 4; do ok 0 "# SKIP needs root and a memory cgroup to put xprof in"; done
fi

# --- signals during a heap walk ------------------------------------------------
# a background job of a script ignores SIGINT: give xprof the default back
start_fixture ready "$FIX/heapcxx" 300000 200000
bpid=${ready%% *}
bad=0 n=0 caught=0
for sig in INT TERM HUP; do
	for delay in 0.05 0.15 0.3; do
		rm -f "$TMP/sig.pb.gz"
		env --default-signal=INT "$XPROF" heap -p "$bpid" -o "$TMP/sig.pb.gz" >/dev/null 2>"$TMP/err" &
		xp=$!
		sleep "$delay"
		kill -"$sig" "$xp" 2>/dev/null
		wait "$xp" 2>/dev/null
		rc=$?
		n=$((n + 1))
		grep -q 'interrupted, target left running' "$TMP/err" && caught=$((caught + 1))
		case $rc in
		0) [ -s "$TMP/sig.pb.gz" ] ;; # it finished before the signal came
		# no file, or (the signal held while the file was renamed into
		# place) a whole one; never a part or a temporary
		$((128 + $(kill -l "$sig")))) { [ ! -e "$TMP/sig.pb.gz" ] || tests/unit/pprofcheck "$TMP/sig.pb.gz" >/dev/null; } && no_temp "$TMP" ;;
		*) false ;;
		esac || { bad=$((bad + 1)); diag "SIG$sig after ${delay}s: exit $rc: $(cat "$TMP/err")"; }
		no_thread_stopped "$bpid" || { bad=$((bad + 1)); diag "SIG$sig after ${delay}s left threads stopped"; }
	done
done
is "$bad" 0 "SIGINT, SIGTERM, SIGHUP at $n moments of a heap walk: exit 128+N and no file or a whole one (or done first), target runs"
[ "$caught" -gt 0 ]
ok $? "and xprof says the target was left running ($caught of $n runs were mid-walk)"

# --- SIGTERM and SIGHUP end a cpu run early, and it is written -------------------
start_fixture ready "$FIX/parked-O2" 5
pid=${ready%% *}
for mode in "" --wall; do
	for sig in TERM HUP; do
		rm -f "$TMP/cpu.pb.gz"
		"$XPROF" cpu $mode -p "$pid" -d 10s -o "$TMP/cpu.pb.gz" >/dev/null 2>"$TMP/err" &
		xp=$!
		sleep 0.6
		kill -"$sig" "$xp"
		wait "$xp"
		rc=$?
		[ "$rc" = 0 ] && grep -q 'stopped early by a signal' "$TMP/err" && tests/unit/pprofcheck "$TMP/cpu.pb.gz" >/dev/null
		ok $? "cpu ${mode:-(perf)}: SIG$sig stops the run early and writes the profile (exit $rc)" ||
			diag "$(cat "$TMP/err")"
	done
	no_thread_stopped "$pid"
	ok $? "cpu ${mode:-(perf)}: the target runs afterwards"
done

# --- many threads: too few file descriptors for perf, long stops for --wall ------
start_fixture ready "$FIX/parked-O2" 1000
bigpid=${ready%% *}
(ulimit -n 64 && exec "$XPROF" cpu -p "$bigpid" -d 1s -o "$TMP/fd.pb.gz") >/dev/null 2>"$TMP/err"
rc=$?
[ "$rc" = 0 ] && grep -q 'too many threads for one perf event per thread and CPU within the open-file limit (64; ulimit -n): sampling with --wall' "$TMP/err" &&
	tests/unit/pprofcheck "$TMP/fd.pb.gz" >/dev/null
ok $? "cpu with more events to open than ulimit -n allows: says so, samples with --wall (exit $rc)" || diag "$(cat "$TMP/err")"
"$XPROF" cpu --wall=ptrace -F 999 -p "$bigpid" -d 1s -o "$TMP/duty.pb.gz" >/dev/null 2>"$TMP/err"
rc=$?
ticks=$(( $(sed -n 's/.*: \([0-9]*\) samples over.*/\1/p' "$TMP/err") / $(ls /proc/"$bigpid"/task | wc -l) ))
[ "$rc" = 0 ] && grep -q 'ticks were delayed, to keep it stopped under a tenth of the time' "$TMP/err" && [ "$ticks" -lt 500 ]
ok $? "cpu --wall -F 999 on 1000 threads: ticks spaced to keep the target running 90% of the time ($ticks ticks in 1 s)" ||
	diag "exit $rc: $(cat "$TMP/err")"
kill -KILL "$bigpid"
wait "$bigpid" 2>/dev/null

# --- stdout closed under threads -------------------------------------------------
"$XPROF" threads -p "$pid" 2>"$TMP/err" | true
rc=${PIPESTATUS[0]}
[ "$rc" = 2 ] && [ "$(wc -l <"$TMP/err")" = 1 ] && grep -q 'cannot write the dump: Broken pipe' "$TMP/err"
ok $? "threads into a closed pipe: exit 2, one line (exit $rc): $(cat "$TMP/err")"
"$XPROF" threads -p "$pid" >/dev/full 2>"$TMP/err"
rc=$?
[ "$rc" = 2 ] && grep -q 'cannot write the dump: No space left on device' "$TMP/err"
ok $? "threads into /dev/full: exit 2 (exit $rc): $(cat "$TMP/err")"
no_thread_stopped "$pid"
ok $? "and the target runs"

# --- a full disk under cpu and heap -------------------------------------------------
if [ "$(id -u)" = 0 ] && mkdir -p "$TMP/tiny" && mount -t tmpfs -o size=4k tmpfs "$TMP/tiny" 2>/dev/null; then
	head -c 4096 /dev/zero >"$TMP/tiny/filler" 2>/dev/null
	start_fixture ready "$FIX/heapfix" normal
	hfpid=${ready%% *}
	for cmd in "cpu -d 1s" "cpu --wall -d 1s" "heap"; do
		p=$pid
		[ "$cmd" = heap ] && p=$hfpid
		"$XPROF" $cmd -p "$p" -o "$TMP/tiny/x.pb.gz" >/dev/null 2>"$TMP/err"
		rc=$?
		[ "$rc" = 2 ] && grep -q "cannot write $TMP/tiny/x.pb.gz: No space left on device" "$TMP/err" &&
			[ "$(ls -A "$TMP/tiny")" = filler ]
		ok $? "$cmd onto a full disk: exit 2, no file nor temporary (exit $rc): $(tail -n 1 "$TMP/err")"
		no_thread_stopped "$p"
		ok $? "$cmd onto a full disk: the target runs"
	done
	umount "$TMP/tiny"
else
	for i in 1 2 3 4 5 6; do ok 0 "# SKIP full-disk case needs root to mount a tmpfs"; done
fi
plan "$_tap_n"
done_testing
