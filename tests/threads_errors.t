#!/bin/bash
# Bad input gets one clear line on stderr, the documented exit code, and no
# output file: usage errors (64), and each way a pid can be wrong (2).
. "$(dirname "$0")/lib.sh"
need_ptrace

# expect_fail CODE PATTERN DESCRIPTION -- ARGS...: one_line on xprof ARGS
expect_fail() {
	local code=$1 pattern=$2 desc=$3; shift 4
	one_line "$code" "$pattern" "$desc" -- $XPROF "$@"
}

expect_fail 64 "unknown command 'frobnicate'" "unknown command" -- frobnicate
expect_fail 64 "-p PID is required" "threads without -p" -- threads
expect_fail 64 "invalid pid 'abc'" "non-numeric pid" -- threads -p abc
expect_fail 64 "invalid pid '-5'" "negative pid" -- threads -p -5
expect_fail 64 "invalid pid '0'" "pid 0" -- threads -p 0
expect_fail 64 "unexpected argument 'extra'" "stray argument" -- threads -p 1 extra
expect_fail 2 "no such process: 4194000" "no such process" -- threads -p 4194000
expect_fail 2 "kernel thread" "a kernel thread (kthreadd, pid 2)" -- threads -p 2

# a zombie: a child that exited and was not reaped
bash -c 'sleep 0.05 & exec sleep 30' &
parent=$!
_fixture_pids="$_fixture_pids $parent"
sleep 0.3
zombie=$(ps -o pid= --ppid "$parent" | tr -d ' ' | head -n 1)
expect_fail 2 "is a zombie" "a zombie" -- threads -p "$zombie"

# xprof itself: exec keeps the shell's pid
sh -c 'exec "$0" threads -p $$' "$XPROF" >"$TMP/out" 2>"$TMP/err"
rc=$?
[ "$rc" = 2 ] && grep -q 'is xprof itself' "$TMP/err"
ok $? "xprof refuses its own pid (exit $rc): $(cat "$TMP/err")"

# already traced by someone else
start_fixture ready "$FIX/parked-O2"
pid=${ready%% *}
gdb -batch -nx -p "$pid" -ex 'shell sleep 3' >/dev/null 2>&1 &
gdbpid=$!
for i in $(seq 1 300); do
	grep -q "TracerPid:[[:space:]]*[1-9]" /proc/"$pid"/status && break
	sleep 0.01
done
expect_fail 2 "already traced by pid" "a process under a debugger" -- threads -p "$pid"
kill "$gdbpid" 2>/dev/null
wait "$gdbpid" 2>/dev/null

# not permitted: another user's process, and root without CAP_SYS_PTRACE.
# expect_fail runs "$XPROF" unquoted-split, so a wrapper can go in front.
if [ "$(id -u)" = 0 ] && command -v setpriv >/dev/null; then
	xprof_saved=$XPROF
	nobody_dir "$XPROF"
	XPROF="setpriv --reuid=65534 --regid=65534 --clear-groups $NOBODY_DIR/xprof"
	expect_fail 2 "operation not permitted (pid $pid belongs to uid 0 and xprof runs as uid 65534; run as root or as that user)" \
		"another user's process" -- threads -p "$pid"
	XPROF="setpriv --bounding-set -sys_ptrace --inh-caps -sys_ptrace $xprof_saved"
	expect_fail 2 "runs as root without CAP_SYS_PTRACE, as in a container; grant it" \
		"root without CAP_SYS_PTRACE" -- threads -p "$pid"
	XPROF=$xprof_saved
else
	ok 0 "# SKIP needs root and setpriv to run xprof as another user"
	ok 0 "# SKIP needs root and setpriv to drop CAP_SYS_PTRACE"
fi

# output that cannot be written: error before touching the target
expect_fail 2 "cannot write $TMP/nodir/x.pb.gz: No such file or directory" "-o into a missing directory" -- threads -p "$pid" -o "$TMP/nodir/x.pb.gz"
mkdir "$TMP/isdir"
expect_fail 2 "Is a directory" "-o naming a directory" -- threads -p "$pid" -o "$TMP/isdir"
[ -z "$(ls -A "$TMP/isdir")" ]
ok $? "no file left behind in the directory"

# a full disk: the write fails, no partial file
if [ "$(id -u)" = 0 ] && mkdir -p "$TMP/tiny" && mount -t tmpfs -o size=4k tmpfs "$TMP/tiny" 2>/dev/null; then
	start_fixture ready "$FIX/parked-O2" 300
	bigpid=${ready%% *}
	head -c 4096 /dev/zero >"$TMP/tiny/filler" 2>/dev/null
	"$XPROF" threads -p "$bigpid" -o "$TMP/tiny/x.pb.gz" >/dev/null 2>"$TMP/err"
	rc=$?
	[ "$rc" = 2 ] && grep -q 'cannot write' "$TMP/err"
	ok $? "a full disk is a clear error (exit $rc): $(cat "$TMP/err")"
	is "$(ls -A "$TMP/tiny")" "filler" "and leaves no partial or temporary file"
	umount "$TMP/tiny"
	no_thread_stopped "$bigpid"
	ok $? "and the target runs"
else
	ok 0 "# SKIP full-disk case needs root to mount a tmpfs"
	ok 0 "# SKIP"
	ok 0 "# SKIP"
fi

# started with stdout closed: the dump must not land in whatever file
# xprof opens next (fd 1 would be reused); a clear error, and no stop
start_fixture ready "$FIX/parked-O2" 2
cpid=${ready%% *}
"$XPROF" threads -p "$cpid" >&- 2>"$TMP/err"
rc=$?
[ "$rc" = 2 ] && grep -q 'standard output is closed' "$TMP/err"
ok $? "stdout closed: exit $rc, $(cat "$TMP/err")"
"$XPROF" threads -p "$cpid" -o "$TMP/closed.pb.gz" >&- 2>/dev/null
ok $? "stdout closed with -o: the profile is still written"

# --help and --version tell the truth
"$XPROF" threads --help | grep -q -- '--group'
ok $? "threads --help documents --group"
"$XPROF" --version | grep -q '^xprof [0-9]'
ok $? "--version"
plan "$_tap_n"
done_testing
