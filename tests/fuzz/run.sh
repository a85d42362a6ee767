#!/bin/bash
# tests/fuzz/run.sh NAME SECONDS [LIBFUZZER OPTIONS] [-- SEED FILES]
# Runs build/fuzz/fuzz_NAME for SECONDS on one core at the lowest priority,
# its corpus build/fuzz/corpus/NAME seeded from tests/fuzz/seeds/NAME and the
# seed files, crashes saved in build/fuzz/crashes/NAME, the whole output in
# build/fuzz/NAME.log; prints the summary.  Exits non-zero on a finding.
set -u
cd "$(dirname "$0")/../.." || exit 2
name=$1 secs=$2
shift 2
opts=()
while [ $# -gt 0 ] && [ "$1" != -- ]; do
	opts+=("$1")
	shift
done
[ $# -gt 0 ] && shift
dir=build/fuzz
bin=$dir/fuzz_$name
corpus=$dir/corpus/$name
crashes=$dir/crashes/$name
log=$dir/$name.log
[ -x "$bin" ] || { echo "run.sh: $bin is not built (make fuzz-build)" >&2; exit 2; }
mkdir -p "$corpus" "$crashes"
for f in tests/fuzz/seeds/"$name"/* "$@"; do
	[ -f "$f" ] && cp -n "$f" "$corpus/"
done
before=$(ls "$crashes" | wc -l)
echo "fuzz_$name: ${secs}s, corpus $corpus ($(ls "$corpus" | wc -l) inputs), log $log"
nice -n 19 "$bin" "${opts[@]}" -max_total_time="$secs" -print_final_stats=1 \
	-artifact_prefix="$crashes/" "$corpus" >"$log" 2>&1
st=$?
grep -E '^#[0-9]+[[:space:]]+(INITED|DONE)|^stat::(number_of_executed_units|average_exec_per_sec|new_units_added|peak_rss_mb)' "$log"
if [ "$st" -ne 0 ]; then
	grep -E '^==[0-9]+==ERROR|^SUMMARY|runtime error|Test unit written|^artifact_prefix' "$log" | head -20
	echo "fuzz_$name: FOUND SOMETHING (exit $st); new files in $crashes: $(($(ls "$crashes" | wc -l) - before))"
fi
exit "$st"
