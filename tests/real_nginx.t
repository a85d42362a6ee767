#!/bin/bash
# xprof on Debian's nginx (stripped, no -dbgsym): a master and two workers
# started here with a private configuration in a temporary directory,
# listening on a Unix socket, every response the serving worker's own pid
# ($pid).  A bounded load on one keep-alive connection goes to one worker,
# which the responses name.  threads: the stacks eu-stack prints, frame for
# frame, and the epoll leaf in the function nginx's epoll module names as its
# process_events; cpu: the samples land in the serving worker, as many as its
# CPU time; heap: the worker's and the master's glibc heaps against glibc's
# own counters (gdb); block: the idle worker's epoll_wait covers the window.
# After every command the target serves, is not traced and not stopped.
. "$(dirname "$0")/lib.sh"
need_ptrace
NGINX=/usr/sbin/nginx
[ -x "$NGINX" ] || skip_all "$NGINX missing (make deps installs nginx)"
for t in curl eu-stack gdb go; do
	command -v "$t" >/dev/null || { echo "Bail out! $t missing (make deps)"; exit 1; }
done

D=$TMP/nginx
mkdir -p "$D"
S=$D/sock
cat >"$D/nginx.conf" <<EOF
daemon off;
master_process on;
worker_processes 2;
pid $D/nginx.pid;
error_log $D/error.log;
events { worker_connections 64; }
http {
	access_log off;
	keepalive_requests 1000000;
	client_body_temp_path $D/body;
	proxy_temp_path $D/proxy;
	fastcgi_temp_path $D/fastcgi;
	uwsgi_temp_path $D/uwsgi;
	scgi_temp_path $D/scgi;
	server {
		listen unix:$S;
		location / { return 200 "\$pid\n"; }
	}
}
EOF
"$NGINX" -p "$D" -c "$D/nginx.conf" -e "$D/error.log" >"$D/out" 2>&1 &
master=$!
_fixture_pids="$_fixture_pids $master"
for i in $(seq 1 500); do
	[ "$(ls /proc/"$master"/task 2>/dev/null | wc -l)" -ge 1 ] && [ -S "$S" ] &&
		[ "$(pgrep -P "$master" | wc -l)" = 2 ] && break
	kill -0 "$master" 2>/dev/null || break
	sleep 0.02
done
workers=$(pgrep -P "$master" | sort -n | tr '\n' ' ')
[ "$(echo $workers | wc -w)" = 2 ] || { echo "Bail out! nginx did not start: $(cat "$D/out" "$D/error.log" 2>/dev/null | tail -3)"; exit 1; }
_fixture_pids="$_fixture_pids $workers" # killed after the master, should it die first
# the master stops its workers; only a worker still there afterwards (an
# nginx, by its comm) is killed: a pid freed may be another's by then
stop_nginx() {
	local w keep=""
	kill -TERM "$master" 2>/dev/null
	for i in $(seq 1 100); do kill -0 "$master" 2>/dev/null || break; sleep 0.05; done
	for w in $workers; do
		[ "$(cat "/proc/$w/comm" 2>/dev/null)" = nginx ] && kill -KILL "$w"
	done
	for w in $_fixture_pids; do [[ " $workers " == *" $w "* ]] || keep="$keep $w"; done
	_fixture_pids=$keep
}
trap 'stop_nginx; _cleanup' EXIT
diag "$("$NGINX" -v 2>&1), master $master, workers $workers"

# served_by PID: 0 when one of up to 300 new connections is answered by
# worker PID (the kernel wakes the workers unevenly)
served_by() {
	local i
	for i in 1 2 3 4 5; do
		curl -s --unix-socket "$S" -H 'Connection: close' "http://localhost/?[1-60]" 2>/dev/null | grep -qx "$1" && return 0
	done
	return 1
}
# left_well PID WORKER WHAT: the after-checks of every command: PID not
# traced, no thread stopped, and WORKER answers requests
left_well() {
	local tp st
	tp=$(awk '$1 == "TracerPid:" { print $2 }' "/proc/$1/status")
	st=$(thread_states "$1" | tr -d '\n')
	[ "$tp" = 0 ] && [[ $st != *[tT]* ]] && served_by "$2"
	ok $? "$3: afterwards pid $1 is in state $st, TracerPid $tp, and worker $2 answers requests"
}

# ---- threads: the same stacks as eu-stack --------------------------------------
for p in $master $workers; do
	eu-stack -i -p "$p" >"$TMP/$p.eu" 2>/dev/null
	"$XPROF" threads -p "$p" >"$TMP/$p.x" 2>"$TMP/$p.xerr"
	ok $? "threads -p $p: exits 0" || diag "$(cat "$TMP/$p.xerr")"
	xprof_functions "$TMP/$p.x" "$p" >"$TMP/x.fn"
	eustack_functions "$TMP/$p.eu" "$p" >"$TMP/eu.fn"
	names_match "$TMP/eu.fn" "$TMP/x.fn"
	ok $? "threads -p $p: $(wc -l <"$TMP/x.fn") frames, as eu-stack's, name for name" ||
		diag "$(diff "$TMP/eu.fn" "$TMP/x.fn")"
	diag "$(cat "$TMP/$p.xerr")"
done
w1=${workers%% *}
is "$(xprof_functions "$TMP/$master.x" "$master" | tr '\n' ' ')" \
	"__GI___sigsuspend ngx_master_process_cycle main __libc_start_call_main __libc_start_main_impl _start " \
	"the master waits for signals in ngx_master_process_cycle"
# nginx's static functions have no symbol (eu-stack and gdb print none):
# xprof names each by the start of its FDE, [nginx+0xSTART]
is "$(xprof_functions "$TMP/$w1.x" "$w1" | sed 's/^\[nginx+0x[0-9a-f]*\]$/[nginx+START]/' | tr '\n' ' ')" \
	"epoll_wait [nginx+START] ngx_process_events_and_timers [nginx+START] ngx_spawn_process [nginx+START] ngx_master_process_cycle main __libc_start_call_main __libc_start_main_impl _start " \
	"a worker waits in epoll_wait under ngx_process_events_and_timers, forked by ngx_spawn_process"
# epoll_wait's caller is the function nginx's epoll module names as its
# event action process_events: ngx_module_t.ctx is at +56; the actions of
# ngx_event_module_t start at +24, process_events the 8th
pe=$(gdb -p "$w1" -batch -nx -ex 'printf "pe 0x%lx\n", *(long *)(*(long *)((char *)&ngx_epoll_module + 56) + 24 + 7 * 8)' 2>/dev/null |
	sed -n 's/^pe //p')
base=$(awk '/\/usr\/sbin\/nginx/ { split($1, a, "-"); print "0x" a[1]; exit }' "/proc/$w1/maps")
caller=$(xprof_functions "$TMP/$w1.x" "$w1" | sed -n 2p)
want="[nginx+0x$(printf '%x' $((pe - base)))]"
is "$caller" "$want" "epoll_wait's caller is ngx_epoll_process_events, the epoll module's process_events ($pe, loaded at $base)"
left_well "$w1" "$w1" "threads"

# ---- cpu: one keep-alive connection, served by one worker -----------------------
curl -s --unix-socket "$S" "http://localhost/?[1-200000]" >"$D/load.out" 2>/dev/null &
load=$!
_fixture_pids="$_fixture_pids $load"
for i in $(seq 1 250); do [ -s "$D/load.out" ] && break; sleep 0.02; done
busy=$(head -n 1 "$D/load.out")
idle=${workers/$busy/}
idle=${idle// /}
# the kernel's task clock of the busy worker over 3 s around xprof's 2 s,
# as a CPU share (the load is steady); utime and stime, tick samples, count
# a server running in 0.1 ms bursts twice over on this kind of machine
perf stat -x, -e task-clock -p "$busy" -o "$TMP/stat" -- sleep 3 >/dev/null 2>&1 &
pstat=$!
_fixture_pids="$_fixture_pids $pstat"
sleep 0.3
"$XPROF" cpu -p "$busy" -d 2s -o "$TMP/busy.pb.gz" 2>"$TMP/busy.err" &
xb=$!
"$XPROF" cpu -p "$idle" -d 2s -o "$TMP/idle.pb.gz" 2>"$TMP/idle.err" &
xi=$!
wait "$xb"
rb=$?
wait "$xi"
ri=$?
wait "$pstat"
kill "$load" 2>/dev/null
wait "$load" 2>/dev/null
ok $rb "cpu -p on the busy worker exits 0" || diag "$(cat "$TMP/busy.err")"
[ "$ri" = 0 ] || { [ "$ri" = 2 ] && grep -q '^xprof: no samples: pid [0-9]* did not run on a CPU while sampled' "$TMP/idle.err"; }
ok $? "cpu -p on the idle worker: exit $ri (0, or 2: no samples, nothing written)" || diag "$(cat "$TMP/idle.err")"
diag "busy worker $busy: $(head -n 1 "$TMP/busy.err")" "idle worker $idle: $(head -n 1 "$TMP/idle.err")"
pprof_check "$TMP/busy.pb.gz"
ok $? "the busy worker's profile is valid and go tool pprof reads it"
samples() { go tool pprof -raw "$1" 2>/dev/null | awk '/^Samples/ { on = 1; getline; next } /^Locations/ { on = 0 } on && $2 ~ /:$/ { n += $1 } END { print n + 0 }'; }
nb=$(samples "$TMP/busy.pb.gz") ni=0
[ -s "$TMP/idle.pb.gz" ] && ni=$(samples "$TMP/idle.pb.gz")
share=$(awk -F, '$3 ~ /^task-clock/ { printf "%.1f", $1 / 3000 * 100 }' "$TMP/stat")
awk -v n="$nb" -v s="$share" 'BEGIN { e = s / 100 * 2 * 99; exit !(s >= 3 && n >= 0.8 * e - 3 && n <= 1.2 * e + 3) }'
ok $? "the busy worker: $nb samples at 99 Hz in 2 s, its task clock $share% of a CPU by perf stat (within 20%)"
[ "$ni" -le 2 ]
ok $? "the idle worker: $ni samples (at most 2)"
pct=$(sed -n 's/.*, \([0-9.]*\)% with a complete stack.*/\1/p' "$TMP/busy.err")
awk -v p="$pct" 'BEGIN { exit !(p >= 95) }'
ok $? "$pct% of the busy worker's samples have a complete stack (at least 95%)"
# every location in nginx has a function: a symbol or [nginx+0xSTART]
go tool pprof -raw "$TMP/busy.pb.gz" >"$TMP/busy.raw" 2>/dev/null
mid=$(awk '/^Mappings/ { on = 1; next } on && $3 == "/usr/sbin/nginx" { sub(/:/, "", $1); print $1; exit }' "$TMP/busy.raw")
unnamed=$(awk -v m="M=$mid" '/^Locations/ { on = 1; next } /^Mappings/ { on = 0 } on && $3 == m && NF == 3' "$TMP/busy.raw" | wc -l)
is "$unnamed" 0 "every nginx location of the profile is a function (pprof no longer merges the static ones into [nginx])"
go tool pprof -traces "$TMP/busy.pb.gz" 2>/dev/null >"$TMP/busy.traces"
k=$(grep -c 'ngx_http_' "$TMP/busy.traces")
[ "$k" -ge 1 ] && grep -q ngx_process_events_and_timers "$TMP/busy.traces"
ok $? "its stacks hold nginx's HTTP code ($k ngx_http_ frames) under ngx_process_events_and_timers"
left_well "$busy" "$busy" "cpu"

# ---- heap: worker and master against glibc ------------------------------------
for p in $idle $master; do
	watch_target "$p" "$TMP/hwatch.$p" "$TMP/hdone.$p" &
	watcher=$!
	"$XPROF" heap -p "$p" -o "$TMP/h$p.pb.gz" >/dev/null 2>"$TMP/h$p.err"
	rc=$?
	sleep 0.1
	touch "$TMP/hdone.$p"
	wait "$watcher"
	ok $rc "heap -p $p: exits 0" || diag "$(cat "$TMP/h$p.err")"
	pprof_check "$TMP/h$p.pb.gz"
	ok $? "heap -p $p: the profile is valid and go tool pprof reads it"
	check_heap "heap -p $p" "$p" "$TMP/h$p.err" "$TMP/h$p.pb.gz"
	ms=$(sed -n 's/.*process stopped for \([0-9.]*\) ms.*/\1/p' "$TMP/h$p.err")
	# the poller sees the stop (t) only while xprof holds it: the last polls
	# after xprof ended show the process running again
	tail -n 3 "$TMP/hwatch.$p" | awk '$1 != 0 || $2 ~ /[tT]/ { bad = 1 } END { exit bad }'
	ok $? "heap -p $p: stopped for $ms ms, running and untraced right after ($(tail -n 1 "$TMP/hwatch.$p"))"
	left_well "$p" "$idle" "heap -p $p"
done

# ---- block: the idle worker waits in epoll_wait the whole window ----------------
watch_target "$idle" "$TMP/bwatch" "$TMP/bdone" &
watcher=$!
"$XPROF" block -p "$idle" -d 2s -o "$TMP/block.pb.gz" 2>"$TMP/block.err"
rc=$?
touch "$TMP/bdone"
wait "$watcher"
ok $rc "block -p $idle: exits 0" || diag "$(cat "$TMP/block.err")"
not_stopped_during "$TMP/bwatch"
ok $? "block: the worker was never stopped nor traced ($polls polls)"
d=$(go tool pprof -raw "$TMP/block.pb.gz" 2>/dev/null | awk '/^Duration: / { printf "%d\n", $2 * 1e9 }')
ew=$(go tool pprof -unit=ns -top -cum -nodecount=200 "$TMP/block.pb.gz" 2>/dev/null |
	awk '$6 == "epoll_wait" { sub(/ns$/, "", $4); print $4; exit }')
awk -v g="${ew:-0}" -v d="$d" 'BEGIN { x = g - d; if (x < 0) x = -x; exit !(d > 0 && x <= 0.10 * d) }'
ok $? "block: $(awk -v g="${ew:-0}" 'BEGIN { printf "%.3f", g / 1e9 }') s in epoll_wait over a $(awk -v d="$d" 'BEGIN { printf "%.3f", d / 1e9 }') s window (within 10%)"
go tool pprof -traces -tagfocus=reason=epoll_wait "$TMP/block.pb.gz" 2>/dev/null | grep -q ngx_process_events_and_timers
ok $? "block: its waits are labelled epoll_wait, under ngx_process_events_and_timers"
left_well "$idle" "$idle" "block"

plan "$_tap_n"
done_testing
