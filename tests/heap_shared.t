#!/bin/bash
# xprof heap never reads what is not the heap: a 1 MiB heap beside 1 GiB
# each of untouched shared memory, a /dev/shm file and a private
# reservation is copied and stopped as the heap alone is, and the target's
# RssAnon and RssShmem are the same afterwards.
. "$(dirname "$0")/lib.sh"
need_ptrace

rss() { awk '$1 == "RssAnon:" { a = $2 } $1 == "RssShmem:" { s = $2 } END { print a, s }' "/proc/$1/status"; }
copied() { sed -n 's/.* while \([0-9.]*\) MiB were copied.*/\1/p' "$1"; }
pause() { sed -n 's/.*process stopped for \([0-9.]*\) ms.*/\1/p' "$1"; }
# median of 3 runs' pauses: PID -> "pause copied"
runs() {
	local i p=()
	for i in 1 2 3; do
		"$XPROF" heap -p "$1" -o "$TMP/h.pb.gz" >/dev/null 2>"$TMP/err.$1.$i" || { echo "fail fail"; return; }
		p+=("$(pause "$TMP/err.$1.$i")")
	done
	printf '%s\n' "${p[@]}" | sort -g | sed -n 2p | tr '\n' ' '
	copied "$TMP/err.$1.3"
}

start_fixture ready "$FIX/heapshm" 0
alone=${ready%% *}
start_fixture ready "$FIX/heapshm" 1024
big=${ready%% *}
before=$(rss "$big")
read -r p0 c0 <<<"$(runs "$alone")"
read -r p1 c1 <<<"$(runs "$big")"
after=$(rss "$big")
[ "$c0" != fail ] && [ "$c1" != fail ]
ok $? "xprof heap exits 0 on both" || diag "$(cat "$TMP"/err.*)"
is "$c1" "$c0" "the same MiB copied with 3 GiB of untouched memory beside the heap as without"
is "$after" "$before" "RssAnon and RssShmem (kB) unchanged by three runs"
awk -v a="$p0" -v b="$p1" 'BEGIN { exit !(b <= 2 * a + 10) }'
ok $? "stopped about as long: ${p1} ms against ${p0} ms for the heap alone (median of 3)"
grep -q 'left alone: 2048\.[0-9] MiB of shared mappings' "$TMP/err.$big.3"
ok $? "the 2 GiB of shared mappings are left alone: $(grep -o 'left alone.*' "$TMP/err.$big.3")"
plan "$_tap_n"
done_testing
