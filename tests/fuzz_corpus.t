#!/bin/bash
# The fuzz harnesses (tests/fuzz/fuzz_*.c, built with the sanitizers) run
# once over each committed seed and each reproducer of a bug fuzzing found
# (tests/fuzz/regress/NAME/): a fixed bug stays fixed.  Seconds, no fuzzing;
# `make fuzz` fuzzes.
. "$(dirname "$0")/lib.sh"

# the harnesses tests/fuzz/fuzz.mk declares
read -r -a names <<<"$(make -s fuzz-list)"
[ ${#names[@]} -gt 0 ] || { echo "Bail out! make fuzz-list names no harness"; exit 1; }
plan $((1 + 2 * ${#names[@]}))

make -s fuzz-build >"$TMP/build" 2>&1
ok $? "make fuzz-build builds ${names[*]}" || { diag "$(tail -20 "$TMP/build")"; exit 1; }

# run NAME DESCRIPTION FILES...: each file once; every one must run clean
run() {
	local name=$1 what=$2 out="$TMP/$1.$2.out" n
	shift 2
	if [ $# -eq 0 ]; then
		ok 1 "fuzz_$name has $what"
		return
	fi
	TMPDIR=$TMP XPROF_CACHE_DIR=off build/fuzz/fuzz_"$name" -timeout=30 -artifact_prefix="$TMP/" "$@" >"$out" 2>&1
	local st=$?
	n=$(grep -c '^Executed ' "$out")
	[ "$st" -eq 0 ] && [ "$n" -eq $# ]
	ok $? "fuzz_$name runs clean over its $# $what" ||
		diag "exit $st, $n of $# run" "$(grep -E '^==[0-9]+==ERROR|^SUMMARY|runtime error|^Running' "$out" | tail -5)"
}

shopt -s nullglob
for name in "${names[@]}"; do
	run "$name" seeds tests/fuzz/seeds/"$name"/*
	regress=(tests/fuzz/regress/"$name"/*)
	if [ ${#regress[@]} -eq 0 ]; then
		ok 0 "fuzz_$name: no bug found by fuzzing yet to replay"
	else
		run "$name" reproducers "${regress[@]}"
	fi
done
