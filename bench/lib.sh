# bench/lib.sh — what the benchmark scripts share; sourced, not run.
# Expects TPID (the target's pid, where used) and a die function.

# clock: microseconds in _now, no subshell when bash has EPOCHREALTIME
if [[ -n ${EPOCHREALTIME-} ]]; then
	stamp() { _now=${EPOCHREALTIME//[!0-9]/}; }
	CLOCK='bash $EPOCHREALTIME'
else
	stamp() { _now=$(($(date +%s%N) / 1000)); }
	CLOCK='date +%s%N'
fi

# Threads of the target in state t or T.  The state is the first field after
# the last ')' of /proc/PID/task/TID/stat (comm may hold spaces and parens);
# RS is a byte that never occurs, so each file is one record.
count_stopped() {
	awk 'BEGIN { RS = "\001" }
	     { s = $0; sub(/^.*\)/, "", s); split(s, f, " ")
	       if (f[1] == "t" || f[1] == "T") n++ }
	     END { print n + 0 }' /proc/"$TPID"/task/*/stat 2>/dev/null || true
}

# Wait up to 1 s for no thread to be stopped.  Sets STOPPED (the count left).
wait_running() {
	local end
	stamp
	end=$((_now + 1000000))
	while :; do
		kill -0 "$TPID" 2>/dev/null || die "the target (pid $TPID) died"
		STOPPED=$(count_stopped)
		[ "$STOPPED" -eq 0 ] && return 0
		stamp
		[ "$_now" -lt "$end" ] || return 1
		sleep 0.02
	done
}

# CPUs kept busy by other processes, from /proc/stat over SECS seconds
busy_cpus() {
	python3 - "$1" <<'PY'
import os, sys, time
def snap():
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return sum(v), v[3] + v[4]          # total, idle + iowait
t0, i0 = snap(); time.sleep(float(sys.argv[1])); t1, i1 = snap()
print("%.2f" % ((1 - (i1 - i0) / max(t1 - t0, 1)) * os.cpu_count()))
PY
}
