# tests/lib.sh — TAP helpers and fixture control for xprof's tests.
# Source it from a test; run tests with prove from the repository root.
#
# Every fixture a test starts is killed by pid when the test exits, however
# it exits.  Live tests skip with a reason when ptrace is not permitted.

set -u
cd "$(dirname "$0")/.." || exit 1
XPROF=${XPROF:-./xprof}
FIX=build/fixtures
TMP=$(mktemp -d /tmp/xprof-test.XXXXXX)
# a private debug-info cache: tests never write into $HOME
export XPROF_CACHE_DIR=$TMP/cache
# debug files only from where the system keeps them, unless a test says
unset XPROF_DEBUG_DIRS
_tap_n=0
_tap_failed=0
_fixture_pids=""

_cleanup() {
	local p
	[ -n "${NOBODY_DIR:-}" ] && rm -rf "$NOBODY_DIR"
	for p in $_fixture_pids; do
		kill -CONT "$p" 2>/dev/null
		kill -KILL "$p" 2>/dev/null
	done
	for p in $_fixture_pids; do
		wait "$p" 2>/dev/null
	done
	rm -rf "$TMP"
}
trap _cleanup EXIT
trap 'exit 130' INT TERM

plan() { echo "1..$1"; }
diag() { local l; while IFS= read -r l; do echo "# $l"; done <<<"$*"; }

ok() { # ok CONDITION_STATUS DESCRIPTION  (status 0 = pass)
	local st=$1; shift
	_tap_n=$((_tap_n + 1))
	if [ "$st" -eq 0 ]; then
		echo "ok $_tap_n - $*"
	else
		echo "not ok $_tap_n - $*"
		_tap_failed=$((_tap_failed + 1))
	fi
	return "$st"
}

is() { # is GOT WANT DESCRIPTION
	local got=$1 want=$2; shift 2
	if [ "$got" = "$want" ]; then
		ok 0 "$*"
	else
		ok 1 "$*"
		diag "got:  $got" "want: $want"
		return 1
	fi
}

skip_all() { echo "1..0 # SKIP $*"; exit 0; }

need_ptrace() {
	[ -x "$XPROF" ] || { echo "Bail out! $XPROF is not built (run make)"; exit 1; }
	if [ "$(id -u)" != 0 ]; then
		local scope
		scope=$(cat /proc/sys/kernel/yama/ptrace_scope 2>/dev/null || echo 0)
		[ "$scope" = 0 ] || skip_all "ptrace_scope is $scope and not root: live tests cannot attach"
	fi
}

# start_fixture OUTVAR BINARY ARGS...: starts a fixture, waits (10 s) for its
# "ready ..." line and stores that line's words after "ready" in OUTVAR
# (the first is the pid).
start_fixture() {
	local var=$1 bin=$2; shift 2
	local out="$TMP/fixture.$RANDOM.out" i
	"$bin" "$@" >"$out" 2>&1 &
	local pid=$!
	_fixture_pids="$_fixture_pids $pid"
	for i in $(seq 1 1000); do
		if grep -q '^ready' "$out" 2>/dev/null; then
			printf -v "$var" '%s' "$(sed -n 's/^ready //p' "$out" | head -n 1)"
			return 0
		fi
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.01
	done
	echo "Bail out! fixture $bin did not become ready: $(head -c 500 "$out")"
	exit 1
}

# nobody_dir FILE...: a world-readable directory (in $NOBODY_DIR, removed at
# exit) holding copies of FILEs, for running them as another user: the
# checkout's own path may not be open to other users.
nobody_dir() {
	[ -n "${NOBODY_DIR:-}" ] || { NOBODY_DIR=$(mktemp -d /tmp/xprof-nobody.XXXXXX) && chmod 1777 "$NOBODY_DIR"; }
	cp "$@" "$NOBODY_DIR"/
}

# thread_states PID: one state letter per thread of PID
thread_states() {
	# comm may hold ") ": the state follows the last one (greedy .*)
	cat /proc/"$1"/task/*/stat 2>/dev/null | sed 's/.*) \(.\).*/\1/'
}

# no_thread_stopped PID: 0 when no thread is in tracing stop or group stop,
# waiting up to 1 s for threads that are being released.
no_thread_stopped() {
	local i
	for i in $(seq 1 100); do
		thread_states "$1" | grep -q '[tT]' || return 0
		sleep 0.01
	done
	return 1
}

# thread_utime PID TID: user ticks of one thread
thread_utime() {
	sed 's/.*) //' "/proc/$1/task/$2/stat" | awk '{print $12}'
}

# pprof_check FILE: the profile passes xprof's own validity check (pprof's
# CheckValid rules) and go tool pprof reads it.
pprof_check() {
	tests/unit/pprofcheck "$1" >"$TMP/check.out" 2>&1 || { diag "$(cat "$TMP/check.out")"; return 1; }
	go tool pprof -raw "$1" >"$TMP/raw.out" 2>&1 || { diag "$(head -5 "$TMP/raw.out")"; return 1; }
}

# pprof_differ GO XPROF: the samples of Go's own profile missing from
# xprof's or with a value off by more than 1% (nothing when they agree)
pprof_differ() {
	join -t $'\t' -a1 -a2 -e MISSING -o 0,1.2,2.2 <(tests/pprof_samples.pl "$1" | sort) <(tests/pprof_samples.pl "$2" | sort) |
		awk -F'\t' '{ n = split($2, a, " "); m = split($3, b, " ");
			if (n != m || n == 0) { print; next }
			for (i = 1; i <= n; i++) { d = a[i] - b[i]; if (d < 0) d = -d; if (d > a[i] / 100 + 1) { print; next } } }'
}

# xprof_functions DUMPFILE TID: the function names of one thread of a text
# dump, one per line, innermost first (decorations stripped).
xprof_functions() {
	awk -v tid="$2" '
		/^thread / { on = ($2 == tid); next }
		/^$/ { on = 0 }
		on && !/^\t/ && !/^\.\.\./ { sub(/ \(inlined\)$/, ""); sub(/\(\.\.\.\)$/, ""); sub(/\(\)$/, ""); print }
	' "$1"
}

# eustack_functions EUSTACKFILE TID: the same from `eu-stack -i` output.
# A trailing "()" is dropped on both sides: C's f and C++'s f() print alike.
# eu-stack leaves a frame blank when its DWARF scope has no name; that
# shows as <unnamed>, which names_match accepts for any name.
eustack_functions() {
	awk -v tid="$2" '
		/^TID / { on = ($2 == tid ":"); next }
		on && /^#/ { $1 = ""; $2 = ""; sub(/^ +/, ""); sub(/ +$/, ""); sub(/\(\)$/, ""); if ($0 == "") $0 = "<unnamed>"; print }
	' "$1"
}

# names_match EUSTACK_LIST XPROF_LIST: same length, same names, where
# <unnamed> on the eu-stack side matches anything.
names_match() {
	awk 'NR == FNR { want[FNR] = $0; n = FNR; next }
	     { got[FNR] = $0; m = FNR }
	     END {
		if (n != m) exit 1
		for (i = 1; i <= n; i++)
			if (want[i] != "<unnamed>" && want[i] != got[i]) exit 1
	     }' "$1" "$2"
}

# heap_under FILE NAME: "count bytes" of the samples whose story has frame NAME
heap_under() {
	go tool pprof -raw "$1" 2>/dev/null | awk -v want="$2" '
		/^Samples/ { on = 1; next }
		/^Locations/ { on = 0; loc = 1; next }
		/^Mappings/ { loc = 0 }
		on && $2 ~ /:$/ { n++; cnt[n] = $1; b = $2; sub(/:/, "", b); byt[n] = b; ids[n] = ""; for (i = 3; i <= NF; i++) ids[n] = ids[n] " " $i; next }
		loc && $1 ~ /^[0-9]+:$/ { id = $1; sub(/:/, "", id); name = $0; sub(/^ *[0-9]+: 0x[0-9a-f]+ (M=[0-9]+ )?/, "", name); sub(/ :0 s=0$/, "", name); locname[id] = name }
		END { for (k = 1; k <= n; k++) { split(ids[k], a, " "); for (j in a) if (locname[a[j]] == want) { c += cnt[k]; s += byt[k]; break } } print c + 0, s + 0 }'
}

# glibc_counts PID: "n_mmaps mmapped_mem narenas system_mem" as glibc keeps
# them, read by gdb (which stops the process for a moment; libc6-dbg)
glibc_counts() {
	cat >"$TMP/counts.gdb" <<'GDB'
set $a = &main_arena
set $n = 0
set $t = 0
while $n < 1000
  set $t = $t + $a->system_mem
  set $n = $n + 1
  set $a = $a->next
  if $a == &main_arena
    loop_break
  end
end
printf "glibc %d %lu %d %lu\n", mp_.n_mmaps, mp_.mmapped_mem, $n, $t
GDB
	gdb -p "$1" -batch -nx -x "$TMP/counts.gdb" 2>/dev/null | sed -n 's/^glibc //p'
}

# check_heap NAME PID ERRFILE PROFILE: xprof heap's summary (ERRFILE) and
# PROFILE against glibc's own counters: the arenas, the mmapped chunks and
# system_mem; at most 5% of the bytes in use [unreachable]
check_heap() {
	local name=$1 pid=$2 err=$3 prof=$4 n_mmaps mem narenas sysmem inuse ubytes
	read -r n_mmaps mem narenas sysmem <<<"$(glibc_counts "$pid")"
	[ -n "$sysmem" ] || { ok 1 "$name: gdb read glibc's counters"; return; }
	is "$(sed -n 's/.* \([0-9]*\) arenas, .*/\1/p' "$err")" "$narenas" "$name: the $narenas arenas of glibc's ring"
	is "$(sed -n 's/.*; found [0-9.]* MiB, \([0-9]*\) chunks, \([0-9.]*\) MiB$/\1 \2/p' "$err")" \
		"$n_mmaps $(awk -v b="$mem" 'BEGIN { printf "%.1f", b / 1048576 }')" \
		"$name: every mmapped chunk glibc counts ($n_mmaps, $mem bytes) is found"
	is "$(sed -n 's/.*; found \([0-9.]*\) MiB, .*/\1/p' "$err")" \
		"$(awk -v b="$sysmem" 'BEGIN { printf "%.1f", b / 1048576 }')" \
		"$name: the arenas' chunks cover glibc's system_mem ($sysmem bytes)"
	inuse=$(sed -n 's/.* blocks in use, \([0-9.]*\) MiB;.*/\1/p' "$err")
	read -r _ ubytes <<<"$(heap_under "$prof" "[unreachable]")"
	awk -v u="$ubytes" -v t="$inuse" 'BEGIN { exit !(t > 0 && u <= 0.05 * t * 1048576) }'
	ok $? "$name: $ubytes bytes of $inuse MiB in use are [unreachable] (at most 5%)"
}

done_testing() {
	[ "$_tap_failed" -eq 0 ]
	exit $?
}

# one_line CODE PATTERN DESCRIPTION -- COMMAND...: exit CODE, stderr one line matching PATTERN
one_line() {
	local code=$1 pattern=$2 desc=$3; shift 4
	"$@" >/dev/null 2>"$TMP/err"
	local rc=$? lines
	lines=$(wc -l <"$TMP/err")
	if [ "$rc" = "$code" ] && [ "$lines" = 1 ] && grep -q -e "$pattern" "$TMP/err"; then
		ok 0 "$desc (exit $code): $(cat "$TMP/err")"
	else
		ok 1 "$desc"
		diag "exit $rc, want $code; stderr ($lines lines):" "$(cat "$TMP/err")"
	fi
}

# cum_share FILE FUNCTION: cumulative percent of FUNCTION in go tool pprof -top
cum_share() {
	go tool pprof -top -cum -nodecount=500 "$1" 2>/dev/null |
		awk -v f="$2" '$6 == f { sub(/%/, "", $5); print $5; exit }'
}
# within GOT WANT POINTS
within() { awk -v g="$1" -v w="$2" -v p="$3" 'BEGIN { d = g - w; if (d < 0) d = -d; exit !(g != "" && d <= p) }'; }
# burn_shares FILE POINTS: three checks, cpuburn's burn_a/b/c at 1/6, 2/6
# and 3/6 of the samples, each within POINTS
burn_shares() {
	local f share want
	for f in burn_a:16.67 burn_b:33.33 burn_c:50.00; do
		share=$(cum_share "$1" "${f%%:*}")
		want=${f#*:}
		within "$share" "$want" "$2"
		ok $? "${f%%:*}: $share% of samples, truth $(printf %.1f "$want")% (within $2 points)"
	done
}

# blocks FILE: one goroutine per record, its lines joined by \x1f, header
# "goroutine N [state]:" first; goroutine 1 (which wrote Go's dump) left out
blocks() { awk 'BEGIN { RS = ""; FS = "\n" } !/^goroutine 1 \[/ { gsub(/\n/, "\x1f"); print }' "$1"; }
# waiting_missing GO_BLOCKS XPROF_BLOCKS WHAT: sets n (goroutines Go's dump
# shows waiting) and missing (those not identical in xprof's), with a diag
# line for each one missing
waiting_missing() {
	local b
	n=0 missing=0
	while IFS= read -r b; do
		n=$((n + 1))
		grep -qxF -- "$b" "$2" || { missing=$((missing + 1)); diag "$3" "${b//$'\x1f'/$'\n'}"; }
	done <"$1"
}

# watch_target PID FILE STOPFILE: until STOPFILE exists, appends to FILE one
# line per poll, "TRACERPID STATES" (one state letter per thread), every
# 20 ms; shell builtins only, so that a loaded machine still polls often.
# Run it in the background; not_stopped_during FILE checks it.
watch_target() {
	local line s st tp f status
	while [ ! -e "$3" ]; do
		tp=
		# the whole file in one go: bash's read takes a line and seeks
		# back, and /proc regenerates status between the reads, so a
		# State line changing length (R (running) / S (sleeping)) moved
		# the next ones and TracerPid went unseen ("gone": serve_collect.t
		# failed so in a clean-clone run)
		{ status=$(<"/proc/$1/status"); } 2>/dev/null
		if [[ $status == *TracerPid:* ]]; then
			tp=${status#*TracerPid:}
			tp=${tp%%$'\n'*}
			tp=${tp//[[:space:]]/}
		fi
		st=
		for f in /proc/"$1"/task/*/stat; do
			read -r line <"$f" 2>/dev/null || continue
			s=${line##*) }
			st+=${s%% *}
		done
		echo "${tp:-gone} $st"
		sleep 0.02
	done >>"$2"
}
# not_stopped_during FILE: 0 when watch_target polled at least 10 times and
# never saw a tracer or a thread in t or T; sets polls
not_stopped_during() {
	polls=$(wc -l <"$1")
	[ "$polls" -ge 10 ] && ! awk '$1 != 0 || $2 ~ /[tT]/ { bad = 1 } END { exit !bad }' "$1"
}

# ---- off-CPU and lock delays against a fixture's own timing (block.t,
# mutex.t, serve_collect.t) ------------------------------------------------
# delay_ns FILE FUNCTION [PPROF OPTIONS]: FUNCTION's cumulative delay in ns
delay_ns() {
	local f=$1 fn=$2; shift 2
	go tool pprof -unit=ns -top -cum -nodecount=1000 "$@" "$f" 2>/dev/null |
		awk -v f="$fn" '$6 == f { sub(/ns$/, "", $4); print $4; found = 1; exit } END { if (!found) print 0 }'
}
# window_of FILE: "T0 T1", the profile's start and end in realtime ns
window_of() {
	local t d t0
	t=$(go tool pprof -raw "$1" 2>/dev/null | sed -n 's/^Time: \(.*\) UTC$/\1/p')
	d=$(go tool pprof -raw "$1" 2>/dev/null | sed -n 's/^Duration: //p')
	t0=$(date -d "$t" +%s%N)
	awk -v t="$t0" -v d="$d" 'BEGIN { printf "%d %d\n", t, t + d * 1e9 }'
}
# lock_waits_ns WAITS FUNCTION T0 T1 [HOLDER]: ns the lockers fixture
# waited in FUNCTION (its WAITS file), waits ending in [T0, T1] (and begun
# while HOLDER held the lock)
lock_waits_ns() {
	awk -v f="$2" -v a="$3" -v b="$4" -v h="${5:-}" \
		'$1 == f && $3 >= a && $3 <= b && (h == "" || $4 == h) { s += $3 - $2 } END { printf "%.0f", s }' "$1"
}
# stack_delay_ns SAMPLES FUNCTION [LABEL]: ns of the samples
# (tests/pprof_samples.pl's output) whose stack goes through FUNCTION
stack_delay_ns() {
	awk -F '\t' -v f=";$2;" -v l="${3:-}" \
		'index(";" $1 ";", f) && (l == "" || index($1, l)) { split($2, v, " "); s += v[2] } END { printf "%.0f", s }' \
		"$1"
}
# within10 GOT WANT: GOT within 10% of WANT (> 0)
within10() { awk -v g="$1" -v w="$2" 'BEGIN { exit !(w > 0 && g >= 0.9 * w && g <= 1.1 * w) }'; }

# ---- xprof serve (serve.t, serve_collect.t) ----------------------------------
# start_serve ERRFILE ARGS...: starts xprof serve on a free loopback port;
# sets $srv (pid) and $url (http://127.0.0.1:PORT/debug/pprof)
start_serve() {
	local err=$1 i
	shift
	"$XPROF" serve --listen 127.0.0.1:0 "$@" 2>"$err" &
	srv=$!
	_fixture_pids="$_fixture_pids $srv"
	for i in $(seq 1 500); do
		url=$(sed -n 's|^xprof: serving .* on \(http://127.0.0.1:[0-9]*/debug/pprof\)/$|\1|p' "$err")
		[ -n "$url" ] && return 0
		kill -0 "$srv" 2>/dev/null || break
		sleep 0.02
	done
	echo "Bail out! xprof serve did not start: $(cat "$err")"
	exit 1
}
# get PATH [CURL ARGS]: "STATUS" of GET $url/PATH, body in $TMP/body,
# headers in $TMP/head
get() {
	local path=$1
	shift
	curl -s --max-time 30 -o "$TMP/body" -D "$TMP/head" -w '%{http_code}' "$@" "$url/$path"
}
header() { tr -d '\r' <"$TMP/head" | sed -n "s/^$1: //Ip" | tail -1; }
# term_during PATH: GET $url/PATH into $TMP/early.pb, SIGTERM to the server
# 1.5 s later; sets rc (serve's exit status), early (the request's HTTP
# status) and ms (how long the request took)
term_during() {
	local t0 cu
	t0=$(date +%s%N)
	curl -s --max-time 30 -o "$TMP/early.pb" -w '%{http_code}' "$url/$1" >"$TMP/early.st" &
	cu=$!
	sleep 1.5
	kill -TERM "$srv"
	wait "$srv"
	rc=$?
	wait "$cu"
	early=$(cat "$TMP/early.st")
	ms=$((($(date +%s%N) - t0) / 1000000))
}

# libc_code_is_file PID: 0 when the bytes of PID's executable libc mapping
# are the file's (no breakpoint left in them), whether the kernel gave the
# file's page back or left its restored copy (Anonymous kB in smaps: after
# a SIGKILL of xprof mid-set-up it kept an 8 kB copy, its bytes the file's)
libc_code_is_file() {
	local range perm off path lo hi
	read -r range perm off _ _ path < <(awk '$2 ~ /x/ && $6 ~ /\/libc\.so\.6$/' "/proc/$1/maps")
	[ -n "$range" ] || return 1
	lo=$((16#${range%-*})) hi=$((16#${range#*-}))
	cmp -s <(dd if="/proc/$1/mem" bs=4096 skip=$((lo / 4096)) count=$(((hi - lo) / 4096)) 2>/dev/null) \
		<(dd if="$path" bs=4096 skip=$((16#$off / 4096)) count=$(((hi - lo) / 4096)) 2>/dev/null)
}

# ---- waiting for xprof's run, not for a fixed time (faults_target.t, cpu.t,
# faults_exec.t): a fixed sleep before an exit, an exec, a tracer or a
# signal came before xprof had started on a loaded machine ----------------------
# cpu_ticks PID: the process's CPU time so far by its own account (utime +
# stime, in clock ticks: 100 a second)
cpu_ticks() { sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | awk '{ print $12 + $13 }'; }
# in_run XPID: waits (60 s at most) until xprof (XPID) sleeps between reads
# of its rings or between ticks (poll, or nanosleep for the ptrace
# sampler): its run has begun; 1 when it ended first
in_run() {
	local i sc
	for i in $(seq 1 6000); do
		read -r sc _ <"/proc/$1/syscall" 2>/dev/null || return 1
		case $sc in 7 | 35 | 230) return 0 ;; esac
		sleep 0.01
	done
	return 1
}
# sampling XPID TPID: in_run, and then the target (TPID) has been on a CPU
# 0.2 s more by its own account, so samples were taken; 1 when either
# ended first
sampling() {
	local i t0 t
	in_run "$1" && t0=$(cpu_ticks "$2") && [ -n "$t0" ] || return 1
	for i in $(seq 1 6000); do
		kill -0 "$1" 2>/dev/null || return 1
		t=$(cpu_ticks "$2")
		[ -n "$t" ] || return 1
		[ $((t - t0)) -ge 20 ] && return 0
		sleep 0.01
	done
	return 1
}
