#!/bin/bash
# xprof cpu: accuracy against a fixture whose CPU time is split 1:2:3 among
# three functions (burn_a 16.7%, burn_b 33.3%, burn_c 50%, measured by the
# fixture's own thread CPU clock), complete stacks, inline frames, the
# profile's metadata, threads created during the run, wall mode, launch
# mode, a target that exits, Ctrl-C.
. "$(dirname "$0")/lib.sh"
need_ptrace
command -v go >/dev/null || { echo "Bail out! go missing (make deps)"; exit 1; }

# complete_share FILE: percent of the samples whose outermost frame is where
# a stack ends (start of a thread or of the program)
complete_share() {
	go tool pprof -traces -sample_index=samples "$1" 2>/dev/null | awk '
		/^-----------\+/ { if (v != "") { total += v; if (last ~ /^(__clone3|clone3|clone|_start)$/) ok += v }; v = ""; next }
		/^ *[a-z]+: / { next }
		v == "" && $1 ~ /^[0-9]+$/ { v = $1; last = $2; next }
		v != "" && NF >= 1 { last = $1 }
		END { if (v != "") { total += v; if (last ~ /^(__clone3|clone3|clone|_start)$/) ok += v }
		      printf "%.2f\n", total ? 100 * ok / total : 0 }'
}

start_fixture ready "$FIX/cpuburn" 2 1000
pid=${ready%% *}
out="$TMP/cpu.pb.gz"
# 499 Hz: at 999 Hz the three burning threads on two cores starve xprof's
# unwinding enough that the rings overflow now and then (11-345 samples
# lost in some runs, exit 1), which is what exit 1 is for, not this test.
# The file's first run has an empty debug-info cache ($TMP/cache): libc's
# debug file is inflated and written there (10 MB) while sampling, and on
# a loaded machine that held xprof up long enough to overflow the rings
# (load 20: 3 of 4 cold runs lost 1-20 samples, 0 of 9 warm runs lost
# any): such a run is tried again, up to 3 times in all.
for try in 1 2 3; do
	"$XPROF" cpu -p "$pid" -d 3s -F 499 -o "$out" >"$TMP/out" 2>"$TMP/err"
	rc=$?
	[ "$rc" = 1 ] && grep -q '^xprof: [0-9]* samples were lost: the ring buffers filled' "$TMP/err" || break
	diag "try $try lost samples (xprof held up): $(head -n 1 "$TMP/err")"
done
is "$rc" 0 "xprof cpu -p exits 0" || diag "$(cat "$TMP/err")"
pprof_check "$out"
ok $? "the profile is valid (CheckValid rules) and go tool pprof reads it"
burn_shares "$out" 3
share=$(complete_share "$out")
awk -v s="$share" 'BEGIN { exit !(s >= 99) }'
ok $? "$share% of samples have a complete stack (down to __clone3 or _start), at least 99%"
go tool pprof -top "$out" 2>/dev/null | grep -q 'mix (inline)$'
ok $? "the always-inline helper mix() shows as an inline frame"
go tool pprof -raw "$out" >"$TMP/raw" 2>&1
grep -q '^PeriodType: cpu nanoseconds$' "$TMP/raw" && grep -q '^Period: 2004008$' "$TMP/raw"
ok $? "period type cpu/nanoseconds, period 1e9/499"
grep -A1 '^Samples:' "$TMP/raw" | grep -q '^samples/count cpu/nanoseconds'
ok $? "sample types samples/count and cpu/nanoseconds"
# the run ends at the first check after 3 s, which a starved xprof makes
# later (the Duration did not start with 3 once at load 25): at least 3 s,
# and the summary says the same
dur=$(sed -n 's/^Duration: \([0-9.]*\)s*$/\1/p' "$TMP/raw")
said=$(sed -n 's/.* samples over \([0-9.]*\) s at 499 Hz.*/\1/p' "$TMP/err")
grep -q '^Time: ' "$TMP/raw" && awk -v d="$dur" -v s="$said" 'BEGIN { exit !(d >= 3 && d - s < 0.051 && s - d < 0.051) }'
ok $? "time and duration are set (${dur}s, at least 3 s; the summary says $said s)"
grep -A20 '^Mappings' "$TMP/raw" | grep 'cpuburn' | grep -q '[0-9a-f]\{40\}'
ok $? "the binary's mapping carries its build ID"
late=$(grep -l '^burn-late$' /proc/"$pid"/task/*/comm | cut -d/ -f5)
grep -q "tid:\[$late\]" "$TMP/raw"
ok $? "a thread created during the run (burn-late, tid $late) was sampled"
grep -q "thread:\[burn-0\]" "$TMP/raw"
ok $? "samples carry thread name labels"
grep -q 'samples over [0-9.]* s at 499 Hz' "$TMP/err" && grep -q 'with a complete stack' "$TMP/err"
ok $? "the summary gives samples, duration, rate and complete stacks"

# folded and svg
"$XPROF" cpu -p "$pid" -d 1s -F 499 --format folded -o "$TMP/cpu.folded" 2>"$TMP/err"
ok $? "--format folded"
grep -q '^__clone3;start_thread;worker;run_slices;burn_c;mix [0-9][0-9]*$' "$TMP/cpu.folded"
ok $? "folded stacks are root first with inline frames, one count per line" || diag "$(head -3 "$TMP/cpu.folded")"
"$XPROF" cpu -p "$pid" -d 1s -F 499 --format svg -o "$TMP/cpu.svg" 2>"$TMP/err"
ok $? "--format svg"
python3 -c "import xml.dom.minidom,sys; xml.dom.minidom.parse(sys.argv[1])" "$TMP/cpu.svg" && grep -q 'burn_c' "$TMP/cpu.svg" && grep -q '<script' "$TMP/cpu.svg"
ok $? "the SVG is well-formed XML with the functions and its script"

# wall mode: every thread, with its state
start_fixture ready "$FIX/parked-O2"
ppid=${ready%% *}
"$XPROF" cpu -p "$ppid" -d 1s --wall -o "$TMP/wall.pb.gz" 2>"$TMP/err"
ok $? "--wall exits 0" || diag "$(cat "$TMP/err")"
pprof_check "$TMP/wall.pb.gz"
ok $? "the wall profile is valid"
go tool pprof -raw "$TMP/wall.pb.gz" >"$TMP/wraw" 2>&1
grep -q '^PeriodType: wall nanoseconds' "$TMP/wraw" && grep -A1 '^Samples:' "$TMP/wraw" | grep -q 'wall/nanoseconds'
ok $? "wall profile: sample type wall/nanoseconds"
grep -q 'state:\[sleeping\] thread:\[holder\]' "$TMP/wraw" && grep -q 'state:\[running\] thread:\[spinner\]' "$TMP/wraw"
ok $? "blocked and running threads are both sampled, labelled by state"
no_thread_stopped "$ppid"
ok $? "the target runs after a wall-clock run"

# launch mode
"$XPROF" cpu -F 499 -o "$TMP/launch.pb.gz" -- sh -c 'i=0; while [ $i -lt 300000 ]; do i=$((i+1)); done; exit 3' 2>"$TMP/err"
is "$?" 3 "launch mode exits with the command's status (3), as time(1) does" || diag "$(cat "$TMP/err")"
grep -q 'exited with status 3' "$TMP/err"
ok $? "the command's exit status is reported"
pprof_check "$TMP/launch.pb.gz"
ok $? "and its profile is valid"
# drop_plt PROGRAM: folded stacks on stdin without the frames
# [MODULE+0xOFF] of PROGRAM or its libraries whose OFF is in the module's
# .plt or .plt.sec section (a PLT stub has no symbol)
drop_plt() {
	local libs
	libs=$( { echo "$1"; ldd "$1" | sed -n 's/.* \(\/[^ ]*\) (0x.*/\1/p; s/^\t\(\/[^ ]*\) (0x.*/\1/p'; } | sort -u)
	perl -e '
		my %plt;
		for my $f (@ARGV) {
			my $m = $f; $m =~ s{.*/}{};
			for (`readelf -SW \Q$f\E 2>/dev/null`) {
				push @{$plt{$m}}, [hex($1), hex($1) + hex($2)] if /\s\.plt(?:\.sec)?\s+PROGBITS\s+([0-9a-f]+)\s+[0-9a-f]+\s+([0-9a-f]+)/;
			}
		}
		while (my $l = <STDIN>) {
			$l =~ s{;?\[([^\]+;]+)\+0x([0-9a-f]+)\]}{
				my ($m, $o, $in) = ($1, hex $2, 0);
				$in ||= $o >= $_->[0] && $o < $_->[1] for @{$plt{$m} || []};
				$in ? "" : $&
			}ge;
			print $l;
		}' $libs
}
# a short command: its libraries are mapped after the exec (PERF_RECORD_MMAP2,
# in whichever CPU's ring) and it is gone before xprof symbolizes
short_ok=0
for i in 1 2 3; do
	"$XPROF" cpu -F 499 --format folded -o "$TMP/short.folded" -- "$FIX/cpuwork" 100000000 2 >/dev/null 2>"$TMP/err"
	# ld.so's start-up and the threads' first instructions are sampled
	# too, and under load one or two of some 150 stacks there do not
	# unwind to the end (97.4-99.3% seen): the bar is 95%, not 100%.  A
	# sample inside the execve itself still has the launcher's registers:
	# its user frame is in no mapping of the new program (1 run in 40).
	# An incomplete stack keeps the address where it ended, in no
	# mapping, as its root: [unknown+0x...] first on its line.  The vdso
	# has symbols for its exported functions only: a page fault taken in
	# its internal code shows as [vdso]+0x780 under __vdso_clock_gettime
	# (1 run in 40).  A sample in a PLT stub (no symbol: named from its
	# module and offset, [ld-linux-x86-64.so.2+0x1000] under
	# _dl_map_object_deps, 1 run in 6 at load 15) is left out as well,
	# when that offset is in the module's .plt section
	pct=$(sed -n 's/.* \([0-9.]*\)% with a complete stack.*/\1/p' "$TMP/err")
	awk -v p="${pct:-0}" 'BEGIN { exit !(p >= 95) }' &&
		grep -q '^__clone3;start_thread;worker;work;stage_' "$TMP/short.folded" &&
		! sed -e 's/^\[unknown+0x[0-9a-f]*\];//' -e 's/;\[vdso\]+0x[0-9a-f]*//g' "$TMP/short.folded" | drop_plt "$FIX/cpuwork" |
			grep '0x[0-9a-f]' | grep -qv '_sys_execve_\[k\]' &&
		short_ok=$((short_ok + 1)) ||
		{ cat "$TMP/err"; grep '0x[0-9a-f]' "$TMP/short.folded" | head -5; } >>"$TMP/short.why"
done
is "$short_ok" 3 "a short launched command (0.1 s): 95% complete, symbolized stacks in 3 of 3 runs" ||
	diag "$(cat "$TMP/short.why" 2>/dev/null)"
"$XPROF" cpu -o "$TMP/nope.pb.gz" -- /nonexistent/program 2>"$TMP/err"
rc=$?
[ "$rc" = 127 ] && grep -q 'cannot run /nonexistent/program: No such file or directory' "$TMP/err" && [ ! -e "$TMP/nope.pb.gz" ]
ok $? "a command that cannot run: clear error, exit 127 as the shell's, no file"

# a target that exits mid-run: the profile is still written
# (killed once xprof samples it: 0.7 s after its start could come before
# xprof's on a loaded machine)
start_fixture ready "$FIX/cpuburn" 1
epid=${ready%% *}
"$XPROF" cpu -p "$epid" -d 60s -F 499 -o "$TMP/exit.pb.gz" 2>"$TMP/err" &
xp=$!
sampling "$xp" "$epid" || diag "xprof did not sample cpuburn: $(cat "$TMP/err")"
kill -KILL "$epid"
wait "$xp"
rc=$?
wait "$epid" 2>/dev/null # reap it quietly: its death is the point
[ "$rc" = 1 ] && grep -q "pid $epid exited during the run" "$TMP/err"
ok $? "a target that exits ends the run (exit 1, said so)" || diag "exit $rc: $(cat "$TMP/err")"
pprof_check "$TMP/exit.pb.gz" && go tool pprof -top "$TMP/exit.pb.gz" 2>/dev/null | grep -q burn_
ok $? "and its profile is written, symbolized"

# Ctrl-C stops early and still writes
"$XPROF" cpu -p "$pid" -d 30s -o "$TMP/int.pb.gz" 2>"$TMP/err" &
xp=$!
# (once it samples: a SIGINT during a slow start-up ends it otherwise)
sampling "$xp" "$pid" || diag "xprof did not sample cpuburn: $(cat "$TMP/err")"
kill -INT "$xp"
wait "$xp"
rc=$?
[ "$rc" = 0 ] && grep -q 'stopped early' "$TMP/err" && pprof_check "$TMP/int.pb.gz"
ok $? "SIGINT stops early and still writes the profile (exit $rc)"
plan "$_tap_n"
done_testing
