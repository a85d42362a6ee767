#!/bin/bash
# Every refusal names its real cause, in one line: an unprivileged user on
# a root process (not perf_event_paranoid), a target that is not dumpable,
# a target holding capabilities xprof lacks, an empty -o (a usage error),
# a heap walk of a process that execs (not "Bad address"); and cpu's perf
# sampling, which never ptraces, is not refused for a traced process.
. "$(dirname "$0")/lib.sh"
need_ptrace
[ "$(id -u)" = 0 ] && command -v setpriv >/dev/null || skip_all "needs root and setpriv to run xprof as nobody"
plan 16

AS_NOBODY="setpriv --reuid=nobody --regid=nogroup --clear-groups"
nobody_dir "$XPROF"
NXPROF="$NOBODY_DIR/xprof"

# --- -o '' is a usage error
start_fixture info build/fixtures/badnames msg-target spinner
read -r pid _ <<<"$info"
for cmd in threads heap cpu; do
	one_line 64 "$cmd: -o wants a file name" "$cmd -o ''" -- $XPROF "$cmd" -p "$pid" -o ''
done

# --- an unprivileged user on root's process: the uid, once
one_line 2 "pid $pid belongs to uid 0 and xprof runs as uid $(id -u nobody)" \
	"cpu as nobody on a root process: one line naming the uid" -- $AS_NOBODY "$NXPROF" cpu -p "$pid" -d 0.3
! grep -q paranoid "$TMP/err"
ok $? "... and perf_event_paranoid is not blamed"

# --- a process that is not dumpable (prctl PR_SET_DUMPABLE 0), of the same user
$AS_NOBODY /usr/bin/python3 -c 'import ctypes, os, time
ctypes.CDLL(None).prctl(4, 0, 0, 0, 0)
print("ready", os.getpid(), flush=True)
time.sleep(60)' >"$TMP/nodump.out" 2>&1 &
_fixture_pids="$_fixture_pids $!"
for i in $(seq 1 500); do grep -q ready "$TMP/nodump.out" && break; sleep 0.01; done
ndpid=$(awk '/ready/ { print $2 }' "$TMP/nodump.out")
one_line 2 "pid $ndpid is not dumpable" "threads on a non-dumpable process of our own uid" -- \
	$AS_NOBODY "$NXPROF" threads -p "$ndpid"
one_line 2 "cannot sample pid $ndpid: operation not permitted (pid $ndpid is not dumpable" \
	"cpu on it: one line, no --wall fallback" -- $AS_NOBODY "$NXPROF" cpu -p "$ndpid" -d 0.3

# --- capabilities: pid 1 here holds some that xprof lacks (a container)
missing=$(( 0x$(awk '/^CapPrm/ { print $2 }' /proc/1/status) & ~0x$(awk '/^CapPrm/ { print $2 }' /proc/self/status) ))
if [ "$missing" != 0 ] && ! $XPROF threads -p 1 >/dev/null 2>"$TMP/err1" && grep -q "not permitted" "$TMP/err1"; then
	grep -q "pid 1 holds capabilities xprof lacks (cap_" "$TMP/err1"
	ok $? "pid 1, refused, holds capabilities xprof lacks: the message names them" || diag "$(cat "$TMP/err1")"
	! grep -q "security module" "$TMP/err1"
	ok $? "... instead of guessing at a security module"
else
	ok 0 "# SKIP pid 1 is readable here, or holds no capability xprof lacks"
	ok 0 "# SKIP"
fi
# root without CAP_SYS_PTRACE, on a process holding it: the missing capability
one_line 2 "root without CAP_SYS_PTRACE" "root without CAP_SYS_PTRACE" -- \
	setpriv --bounding-set -sys_ptrace --inh-caps -sys_ptrace "$XPROF" threads -p "$pid"

# --- a traced process: perf sampling never ptraces, so cpu samples it
/usr/bin/python3 -c 'import ctypes, sys, time
libc = ctypes.CDLL(None, use_errno=True)
if libc.ptrace(0x4206, int(sys.argv[1]), 0, 0) != 0:   # PTRACE_SEIZE: the tracee runs on
    sys.exit("seize: %d" % ctypes.get_errno())
print("ready", flush=True)
time.sleep(60)' "$pid" >"$TMP/tracer.out" 2>&1 &
tracer=$!
_fixture_pids="$_fixture_pids $tracer"
for i in $(seq 1 500); do grep -q ready "$TMP/tracer.out" && break; sleep 0.01; done
grep -q "TracerPid:[[:space:]]*$tracer\$" /proc/"$pid"/status
ok $? "the target is traced by a seizing tracer" || diag "$(cat "$TMP/tracer.out")"
$XPROF cpu -p "$pid" -d 0.5 -o "$TMP/traced.pb.gz" 2>"$TMP/err"
is "$?" 0 "cpu (perf) samples a traced process" || diag "$(cat "$TMP/err")"
grep -q badnames_spin <(go tool pprof -traces "$TMP/traced.pb.gz" 2>/dev/null)
ok $? "... and its profile has the spinning thread's samples"
one_line 2 "already traced by pid $tracer" "threads, which ptraces, still refuses it" -- $XPROF threads -p "$pid"
one_line 2 "already traced by pid $tracer" "and so does cpu --wall" -- $XPROF cpu --wall -p "$pid" -d 0.3
kill "$tracer"
wait "$tracer" 2>/dev/null

# --- heap on a process that execs itself every 20 ms
start_fixture info build/fixtures/hostile reexec 20
read -r rpid _ <<<"$info"
bad=0 said=0 runs=20
for i in $(seq 1 $runs); do
	rm -f "$TMP/reexec.pb.gz"
	$XPROF heap -p "$rpid" -o "$TMP/reexec.pb.gz" >/dev/null 2>"$TMP/err"
	rc=$?
	grep -q "Bad address" "$TMP/err" && bad=$((bad + 1))
	if grep -q "pid $rpid exec'd while xprof read it" "$TMP/err"; then
		said=$((said + 1))
		# nothing written is a failure: exit 2 and no file, never exit 1
		{ [ "$rc" = 2 ] && [ ! -e "$TMP/reexec.pb.gz" ]; } || bad=$((bad + 1))
	fi
done
is "$bad" 0 "heap on a process that execs: no 'Bad address', and exit 2 with no file when it exec'd, in $runs runs ($said said it exec'd)"
done_testing
