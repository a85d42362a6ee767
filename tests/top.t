#!/bin/bash
# xprof top, driven in tmux (a private server, 120x40): the shares shown
# against cpuburn's own split of its CPU time (burn_a 1/6, burn_b 2/6,
# burn_c 3/6 of the workers', by their thread CPU clocks) and against the Go
# fixture (main.burn is all of goapp's CPU); every key (sort, window, thread
# filter, kernel frames, stack view, pause, help, resize); the terminal given
# back on q, Ctrl-C, SIGTERM and the target's exit; pipe mode.  --wall on
# the waiter (8 threads, each 1/8 of the threads' time): the shares of each
# thread and of the functions only some threads are in, and the target
# never stopped (perf, not ptrace); on cpuburn in pipe mode; the ptrace
# fallback where perf is refused, said on the status line.
. "$(dirname "$0")/lib.sh"
need_ptrace
command -v tmux >/dev/null || { echo "Bail out! tmux missing (make deps)"; exit 1; }

# a private server on a socket in the test's own directory (removed with it)
SOCK="$TMP/tmux-xprof-test-$$"
tm() { tmux -S "$SOCK" "$@"; }
trap 'tm kill-server 2>/dev/null; _cleanup' EXIT

plan 67

# screen: the pane now, into $TMP/screen
screen() { tm capture-pane -p -t top >"$TMP/screen"; }
# wait_screen ERE [SECONDS]: polls the pane until a line matches
wait_screen() {
	local i
	for i in $(seq 1 $((${2:-10} * 10))); do
		screen
		grep -qE -- "$1" "$TMP/screen" && return 0
		sleep 0.1
	done
	return 1
}
# rows: the table's lines of the last screen
rows() { grep -E '^ +[0-9]+\.[0-9] +[0-9]+\.[0-9] +[0-9]+\.[0-9] +[0-9]+\.[0-9]  ' "$TMP/screen"; }
# col N FUNCTION: column N (1 own 1s, 2 total 1s, 3 own all, 4 total all) of FUNCTION's row
col() { rows | awk -v n="$1" -v f="$2" '$5 == f { print $n; exit }'; }
# wcol N FUNCTION: the same with --wall, where a STATE column comes first
wcol() { rows | awk -v n="$1" -v f="$2" '{ for (i = 5; i <= NF; i++) if ($i == f) { print $n; exit } }'; }
# sorted N: column N of the rows never grows downwards
sorted() { rows | awk -v n="$1" 'NR > 1 && $n > prev + 0.05 { bad = 1 } { prev = $n } END { exit bad }'; }
# samples: the "samples N" of the header
samples() { sed -n 's/.*  samples \([0-9]*\) (.*/\1/p' "$TMP/screen" | head -1; }
# run_top ARGS: xprof top in the pane, its exit status echoed after it
run_top() {
	tm send-keys -t top "clear; $XPROF top $*; echo xprof-exit=\$?" Enter
}
top_pid() { pgrep -P "$(tm display -p -t top '#{pane_pid}')" -x xprof; }
alternate() { tm display -p -t top '#{alternate_on}'; }
# tol P N: allowed distance in points of a share P% out of N samples: 3
# standard deviations of the binomial, at least 3 points
tol() { awk -v p="$1" -v n="$2" 'BEGIN { t = 300 * sqrt(p / 100 * (1 - p / 100) / (n > 0 ? n : 1)); printf "%.1f", t < 3 ? 3 : t }'; }

start_fixture ready "$FIX/cpuburn"
pid=${ready%% *}
tm new-session -d -s top -x 120 -y 40 "bash --norc --noprofile" || { echo "Bail out! tmux would not start"; exit 1; }
tm set-option -g status off >/dev/null
tm set-option -g window-size manual >/dev/null 2>&1

run_top -p "$pid" -F 499
wait_screen "^cpuburn \(pid $pid\)  cpu [0-9]+%  threads 3  samples " 15
ok $? "the header names the process, its CPU use, threads, samples" || diag "$(cat "$TMP/screen")"
is "$(alternate)" 1 "the view is on the alternate screen"
grep -q '^cpu at 499 Hz  window: last second  sort: own  thread: all  kernel frames: shown' "$TMP/screen"
ok $? "the second line says the mode, window, sort, thread and kernel setting" || diag "$(head -3 "$TMP/screen")"
tail -1 "$TMP/screen" | grep -q '^q quit  o/t sort own/total'
ok $? "a help line at the bottom"

# since start, sorted by total: enough samples for the shares to settle
tm send-keys -t top a t
for i in $(seq 1 150); do
	screen
	n=$(samples)
	[ "${n:-0}" -ge 600 ] && grep -q 'window: since start  sort: total' "$TMP/screen" && break
	sleep 0.1
done
grep -q 'window: since start  sort: total' "$TMP/screen" && grep -q '^ *own 1s  total 1s   own all \*total all  FUNCTION' "$TMP/screen"
ok $? "a and t: since start, sorted by total (the column starred)" || diag "$(head -3 "$TMP/screen")"
sorted 4
ok $? "rows in decreasing total since start" || diag "$(rows | head)"
is "$(col 4 worker)" 100.0 "worker is on every sample's stack (100.0% total)"
n=$(samples)
burn_workers=$(col 4 run_slices)
for f in burn_a:16.67 burn_b:33.33 burn_c:50.00; do
	got=$(col 4 "${f%%:*}")
	want=${f#*:}
	t=$(tol "$want" "$n")
	within "$got" "$want" "$t"
	ok $? "${f%%:*}: $got% total since start over $n samples, truth $(printf %.1f "$want")% (within $t points)"
done
sec_c=$(grep -cE '^ +[0-9.]+ +[0-9.]+ +[0-9.]+ +[0-9.]+  burn_c +cpuburn\.c:[0-9]+ ' "$TMP/screen")
is "$sec_c" 1 "burn_c's file:line is cpuburn.c"
rows | awk '$5 == "burn_c"' | grep -qE 'burn-[01] burn-[01]'
ok $? "burn_c runs on both workers, burn-0 and burn-1" || diag "$(rows | awk '$5 == "burn_c"')"
: "$burn_workers"

tm send-keys -t top o
wait_screen '^ *\*own 1s|^ +own 1s  total 1s  \*own all' 3
grep -q 'sort: own' "$TMP/screen" && sorted 3
ok $? "o: sorted by own since start" || diag "$(head -8 "$TMP/screen")"
top_own=$(rows | head -1 | awk '{ print $5 }')
is "$top_own" mix "the hottest function by own share is mix, inlined into the burn loops"
tm send-keys -t top a
wait_screen 'window: last second  sort: own' 3
ok $? "a again: back to the last second" && grep -q '^ *\*own 1s' "$TMP/screen"
ok $? "the own column of the last second is the sort key"

# thread filter: f shows the first thread only, T chooses from a list
tm send-keys -t top f
wait_screen 'thread: [^ ]+ \(tid [0-9]+\)' 3
ok $? "f: one thread only" || diag "$(sed -n 2p "$TMP/screen")"
sleep 1.2
screen
name=$(sed -n 's/.*thread: \([^ ]*\) (tid.*/\1/p' "$TMP/screen" | head -1)
others=$(rows | cut -c108- | awk -v n="$name" 'NF && $0 != n' | wc -l)
[ -n "$name" ] && [ "$(rows | wc -l)" -gt 0 ]
ok $? "the filtered table has rows"
is "$others" 0 "every row runs on $name only"
tm send-keys -t top T
wait_screen 'choose a thread' 3
ok $? "T: a list of threads" && grep -qE '^ +[0-9]+ +burn-1 ' "$TMP/screen"
ok $? "the list names the threads with their tids"
tm send-keys -t top k Enter
wait_screen 'thread: all  kernel' 3
ok $? "choosing 'all threads' lifts the filter"

# kernel frames: pvm/syscall frames come and go
tm send-keys -t top a K
wait_screen 'kernel frames: hidden' 3
ok $? "K: kernel frames hidden"
sleep 1.2
screen
! rows | grep -q '\[kernel\]'
ok $? "no [kernel] row while they are hidden"
tm send-keys -t top K
wait_screen 'kernel frames: shown' 3
ok $? "K again: shown"

# the hottest stack through the selected function
tm send-keys -t top t g j j j j
sleep 0.3
screen
sel=$(rows | sed -n 5p | awk '{ print $5 }')
tm send-keys -t top Enter
wait_screen '^hottest stack through ' 3
ok $? "Enter: the hottest stack through the selected function" || diag "$(head -5 "$TMP/screen")"
grep -q "^hottest stack through $sel (since start): [0-9]* samples" "$TMP/screen"
ok $? "it is the selected row's ($sel)" || diag "$(sed -n 3p "$TMP/screen")"
awk '/^hottest stack/ { on = 1; next } on && NF && !/\[kernel\]/ { print $1 }' "$TMP/screen" | tr '\n' ' ' |
	grep -qE 'mix burn_[abc] run_slices worker start_thread'
ok $? "the stack reads leaf first: mix, burn_X, run_slices, worker, start_thread" ||
	diag "$(sed -n '3,14p' "$TMP/screen")"
tm send-keys -t top Enter
wait_screen '^ +own 1s ' 3
ok $? "Enter again: back to the table"

# pause: the screen holds still, then moves again
tm send-keys -t top p
wait_screen 'PAUSED' 3
ok $? "p: paused"
screen
cp "$TMP/screen" "$TMP/paused"
sleep 1.6
screen
cmp -s "$TMP/screen" "$TMP/paused"
ok $? "nothing changes while paused (1.6 s: a refresh or more)" || diag "$(diff "$TMP/paused" "$TMP/screen" | head -6)"
tm send-keys -t top p
sleep 1.6
screen
! grep -q PAUSED "$TMP/screen" && ! cmp -s "$TMP/screen" "$TMP/paused"
ok $? "p again: it moves on"

# help, resize
tm send-keys -t top '?'
wait_screen '^xprof top keys' 3
ok $? "?: the keys explained"
tm send-keys -t top x
wait_screen '^ +own 1s ' 3
ok $? "any key closes the help"
tm resize-window -t top -x 90 -y 25
sleep 0.5
screen
[ "$(wc -l <"$TMP/screen")" = 25 ] && tail -1 "$TMP/screen" | grep -q '^q quit' && ! awk 'length > 90' "$TMP/screen" | grep -q .
ok $? "resized to 90x25: the help line is on the new last line, nothing wider" || diag "$(tail -2 "$TMP/screen")"
tm resize-window -t top -x 120 -y 40

for i in 1 2 3; do thread_states "$pid"; sleep 0.2; done | grep -q '[tT]'
ok $((!$?)) "the target is never stopped (no thread in t or T state, sampled while top runs)"

# q: the shell comes back on the normal screen
tm send-keys -t top q
wait_screen '^xprof-exit=' 5
is "$(sed -n 's/^xprof-exit=//p' "$TMP/screen")" 0 "q: exit 0"
is "$(alternate)" 0 "q: the alternate screen is left (terminal restored)"

# SIGTERM
run_top -p "$pid"
wait_screen "^cpuburn \(pid $pid\)" 15
xp=$(top_pid)
kill -TERM "$xp"
wait_screen '^xprof-exit=' 5
is "$(sed -n 's/^xprof-exit=//p' "$TMP/screen")" 0 "SIGTERM: exit 0"
grep -q '^xprof: top: stopped by Terminated$' "$TMP/screen" && [ "$(alternate)" = 0 ]
ok $? "SIGTERM: the terminal is restored, then a message" || diag "$(grep xprof "$TMP/screen")"

# Ctrl-C
run_top -p "$pid"
wait_screen "^cpuburn \(pid $pid\)" 15
tm send-keys -t top C-c
wait_screen '^xprof-exit=' 5
is "$(sed -n 's/^xprof-exit=//p' "$TMP/screen")" 0 "Ctrl-C: exit 0"
is "$(alternate)" 0 "Ctrl-C: the terminal is restored"

# a terminal terminfo does not know: said, exit 2, the screen untouched
tm send-keys -t top "clear; TERM=xprof-no-such-term $XPROF top -p $pid; echo term-exit=\$?" Enter
wait_screen '^term-exit=' 15
is "$(sed -n 's/^term-exit=//p' "$TMP/screen")" 2 "an unknown TERM: exit 2"
grep -q '^xprof: top: cannot use the terminal: TERM=xprof-no-such-term is unknown to terminfo' "$TMP/screen" &&
	[ "$(alternate)" = 0 ]
ok $? "an unknown TERM: said, the screen not taken" || diag "$(grep xprof "$TMP/screen")"

# the target exits
start_fixture ready2 "$FIX/cpuburn"
pid2=${ready2%% *}
run_top -p "$pid2"
wait_screen "^cpuburn \(pid $pid2\)" 15
{ kill -KILL "$pid2"; wait "$pid2"; } 2>/dev/null # reaped, as a parent would
wait_screen '^xprof-exit=' 5
is "$(sed -n 's/^xprof-exit=//p' "$TMP/screen")" 0 "the target's exit ends it, exit 0"
grep -q "^xprof: top: pid $pid2 (cpuburn) exited$" "$TMP/screen" && [ "$(alternate)" = 0 ]
ok $? "and says so after giving the terminal back" || diag "$(grep xprof "$TMP/screen")"

# Go
start_fixture gready "$FIX/goapp"
gpid=${gready%% *}
run_top -p "$gpid"
tm send-keys -t top a
for i in $(seq 1 150); do
	screen
	[ "$(samples)" -ge 100 ] 2>/dev/null && grep -q 'since start' "$TMP/screen" && break
	sleep 0.1
done
got=$(col 4 main.burn)
n=$(samples)
first=$(rows | head -1 | awk '{ print $5 }')
[ "$first" = main.burn ] && awk -v g="$got" 'BEGIN { exit !(g != "" && g >= 90) }'
ok $? "Go: main.burn is the hottest function, on $got% of goapp's samples ($n; truth: all but the runtime's few, at least 90%)" ||
	diag "$(head -8 "$TMP/screen")"
grep -qE ' main\.burn +main\.go:[0-9]+ ' "$TMP/screen"
ok $? "Go: main.burn's file:line is main.go"
tm send-keys -t top q
wait_screen '^xprof-exit=' 5
kill -KILL "$gpid"

# pipe mode
start=$(date +%s%N)
timeout 30 "$XPROF" top -p "$pid" 2>"$TMP/err" | head -20 >"$TMP/pipe"
st=("${PIPESTATUS[@]}")
ms=$((($(date +%s%N) - start) / 1000000))
is "${st[0]}" 0 "| head -20: xprof ends with exit 0 when the pipe closes ($ms ms)"
[ "$(wc -l <"$TMP/pipe")" = 20 ] && head -1 "$TMP/pipe" | grep -qE "^--- [0-9-]+T[0-9:]+Z cpuburn \(pid $pid\)  cpu " &&
	grep -qE '^ +\*own 1s  total 1s +own all +total all  FUNCTION' "$TMP/pipe" && [ "$ms" -lt 15000 ]
ok $? "pipe mode prints timestamped blocks of the same table" || diag "$(head -5 "$TMP/pipe")"

# refusals: one line, exit 2, the terminal never taken
if [ "$(id -u)" = 0 ] && command -v setpriv >/dev/null; then
	nobody_dir "$XPROF"
	one_line 2 "top: cannot sample pid $pid: operation not permitted (pid $pid belongs to uid 0" \
		"as nobody on a root process: why, in one line" -- setpriv --reuid=nobody --regid=nogroup --clear-groups "$NOBODY_DIR/$(basename "$XPROF")" top -p "$pid"
else
	ok 0 "# SKIP needs root and setpriv"
fi
one_line 2 "top: no process named 'xprof-no-such-name' is running" "--name with none running" -- \
	"$XPROF" top --name xprof-no-such-name

# --wall on the waiter, in the terminal: 8 threads, each always there, so
# each is 1/8 of the threads' time, whether it runs or waits (the waiter
# hardly runs at all: the time must come from the waits).  Watched all the
# while: perf, not ptrace, so never a tracer nor a stopped thread.
start_fixture wready "$FIX/waiter" "$TMP/window"
wpid=${wready%% *}
watch_target "$wpid" "$TMP/watch" "$TMP/watch.done" &
watcher=$!
run_top -p "$wpid" --wall
wait_screen "^waiter \(pid $wpid\)" 15
grep -qE '^wall-clock from perf, no thread stopped \(threads: [0-9]+ running, [0-9]+ sleeping\) at 99 Hz' "$TMP/screen"
ok $? "--wall: the second line says the wall clock comes from perf, no thread stopped" || diag "$(head -3 "$TMP/screen")"
tm send-keys -t top a t
# three refreshes since start at least: the first interval starts late
for i in $(seq 1 100); do
	screen
	n=$(samples)
	[ "${n:-0}" -ge 1 ] && [ "$(wcol 4 start_thread)" != "" ] && grep -q 'window: since start  sort: total' "$TMP/screen" && break
	sleep 0.1
done
sleep 3.2
screen
cp "$TMP/screen" "$TMP/wall_table"
# start_thread: 7 threads of 8; main, and each thread's own wait: 1 of 8
for f in start_thread:87.5 main:12.5 wait_on_pipe:12.5 wait_in_sleep:12.5 wait_on_cond:12.5 hold_mutex:12.5; do
	got=$(wcol 4 "${f%%:*}")
	within "$got" "${f#*:}" 1.5
	ok $? "--wall: ${f%%:*} is on $got% of the threads' time since start (truth ${f#*:}%: $( [ "${f%%:*}" = start_thread ] && echo 7 || echo 1) of 8 threads, within 1.5 points)" ||
		diag "$(head -14 "$TMP/wall_table")"
done
# the hottest stack through the first function by total (__clone3,
# start_thread or the fixture's run: they tie at 7 of 8 threads, in any
# order): one thread's wait, the same stack all along (w-cond's,
# w-pipe's...): 1 of 8 since start
tm send-keys -t top g Enter
wait_screen '^hottest stack through ' 3
hot=$(sed -n 's/^hottest stack through [^ ]* (since start): [0-9.]* s, \([0-9.]*\)%, thread .*/\1/p' "$TMP/screen")
within "$hot" 12.5 1.5
ok $? "--wall: the hottest stack through the first function is one thread's whole time since start ($hot%, truth 12.5%)" ||
	diag "$(sed -n 3p "$TMP/screen")"
tm send-keys -t top Enter
wait_screen '^ +own 1s ' 3
tm send-keys -t top T
wait_screen 'choose a thread' 3
ok $? "--wall: T lists the threads" || diag "$(head -5 "$TMP/screen")"
shares=$(sed -n "s/^ *[0-9]\{1,\} \{1,\}[^ ]\{1,\} \{1,\}\([0-9.]\{1,\}\)% of the threads' time since start.*/\1/p" "$TMP/screen")
bad=$(awk '{ d = $1 - 12.5; if (d < 0) d = -d; if (d > 1.5) print }' <<<"$shares")
[ "$(grep -c . <<<"$shares")" = 8 ] && [ -z "$bad" ]
ok $? "--wall: each of the 8 threads is 1/8 of the threads' time (12.5%, within 1.5 points): $(tr '\n' ' ' <<<"$shares")" ||
	diag "$(sed -n '3,13p' "$TMP/screen")"
tm send-keys -t top Escape q
wait_screen '^xprof-exit=' 5
is "$(sed -n 's/^xprof-exit=//p' "$TMP/screen")" 0 "--wall: q, exit 0"
touch "$TMP/watch.done"
wait "$watcher"
not_stopped_during "$TMP/watch"
ok $? "--wall: the waiter was never stopped while top ran: TracerPid 0 and no thread in t or T at $polls polls" ||
	diag "$(awk '$1 != 0 || $2 ~ /[tT]/ { n++ } END { print n + 0 " polls saw a tracer or a stopped thread, e.g.:" }' "$TMP/watch")
$(awk '$1 != 0 || $2 ~ /[tT]/' "$TMP/watch" | head -3)"

# --wall (text mode): cpuburn's two workers run, its main thread sleeps
"$XPROF" top -p "$pid" --wall >"$TMP/wall" 2>"$TMP/err" &
xp=$!
wall_seen() {
	grep -qE '^wall-clock from perf, no thread stopped \(threads: [0-9]+ running, [0-9]+ sleeping\) at 99 Hz' "$TMP/wall" &&
		grep -qE '^ +[0-9.]+ +[0-9.]+ +[0-9.]+ +[0-9.]+  R100 S  0 D  0  .* burn-[01]( burn-[01])?$' "$TMP/wall" &&
		grep -qE '  R *[0-9]+ S *[0-9]+ D *[0-9]+  .* cpuburn$' "$TMP/wall"
}
end=$((SECONDS + 30))
while [ "$SECONDS" -lt "$end" ] && ! wall_seen; do sleep 0.2; done
kill -INT "$xp"
wait "$xp"
is "$?" 0 "--wall: SIGINT ends it with exit 0" || diag "$(cat "$TMP/err")"
main_rows=$(grep -E '  R *[0-9]+ S *[0-9]+ D *[0-9]+  .* cpuburn$' "$TMP/wall")
wall_seen && ! grep -v '  R  0 S100 D  0  ' <<<"$main_rows" | grep -q .
ok $? "--wall: the workers' own time all running; the main thread's all sleeping ($(grep -c . <<<"$main_rows") rows of it)" ||
	diag "$(head -12 "$TMP/wall")"

# perf refused (a seccomp filter): ptrace, and the status line says so
timeout 30 tests/unit/noperf "$XPROF" top -p "$pid" --wall 2>"$TMP/err" | head -3 >"$TMP/np"
st=("${PIPESTATUS[@]}")
[ "${st[0]}" = 0 ] && grep -qE '^wall-clock by ptrace, every thread stopped at each tick: perf refused \(threads: ' "$TMP/np"
ok $? "--wall where perf is refused: the ptrace sampler, said on the status line" || diag "exit ${st[0]}: $(cat "$TMP/np" "$TMP/err")"

done_testing
