#!/bin/bash
# The decompressed debug-info cache: libc's debug file (found by build id
# under /usr/lib/debug, compressed sections) is copied once, decompressed,
# named by build id; later dumps read it and print the same thing; a bad
# entry is ignored, and XPROF_CACHE_DIR=off turns the cache off.
. "$(dirname "$0")/lib.sh"
need_ptrace

libc=$(ldd "$FIX/parked-O2" | awk '/libc.so/ {print $3}')
id=$(eu-readelf -n "$libc" | awk '/Build ID:/ {print $3}')
dbg=/usr/lib/debug/.build-id/${id:0:2}/${id:2}.debug
[ -f "$dbg" ] || { echo "Bail out! libc debug file $dbg missing (libc6-dbg; make deps)"; exit 1; }
start_fixture ready "$FIX/parked-O2"
pid=${ready%% *}
# the frames, without the running spinner (its pc moves) and without the
# header's system call (a first dump leaves sleepers in restart_syscall)
strip_spinner() { sed '/"spinner"/,/^$/d; s/^\(thread [0-9]* "[^"]*"\) .*/\1/' "$1"; }

# an entry of the first format (no location lists) is not used, and goes
mkdir -p -m 700 "$XPROF_CACHE_DIR"
cp "$dbg" "$XPROF_CACHE_DIR/$id.debug"
"$XPROF" threads -p "$pid" >"$TMP/first.txt" 2>/dev/null
ok $? "first dump"
entry="$XPROF_CACHE_DIR/$id.2.debug"
[ -f "$entry" ] && [ ! -e "$XPROF_CACHE_DIR/$id.debug" ]
ok $? "libc's debug file is cached under its build id, in place of a first-format entry"
readelf -S -W "$entry" | awk '$2 ~ /^\.debug_/ && $9 ~ /C/' | grep -q . 
ok $((! $?)) "the cached copy has no compressed sections"
# the Python loop's next_instr is found through them (python.t)
want=$(readelf -S -W "$dbg" | grep -c '\.debug_loclists ')
have=$(readelf -S -W "$entry" | awk '$2 == ".debug_loclists" && $3 == "PROGBITS"' | wc -l)
[ "$want" = "$have" ]
ok $? "the cached copy keeps the location lists ($have of $want)"
[ "$(stat -c %a "$XPROF_CACHE_DIR")" = 700 ] && [ "$(stat -c %a "$entry")" = 600 ]
ok $? "the cache is private (0700 dir, 0600 file)"
"$XPROF" threads -p "$pid" >"$TMP/second.txt" 2>/dev/null
diff <(strip_spinner "$TMP/first.txt") <(strip_spinner "$TMP/second.txt") >"$TMP/d1"
ok $? "a dump from the cache prints the same stacks and lines" || diag "$(head -20 "$TMP/d1")"
XPROF_CACHE_DIR=off "$XPROF" threads -p "$pid" >"$TMP/nocache.txt" 2>/dev/null
diff <(strip_spinner "$TMP/first.txt") <(strip_spinner "$TMP/nocache.txt") >/dev/null
ok $? "and the same as without the cache"

# a bad entry (another file under the name) is not used
cp "$FIX/parked-O2" "$entry"
"$XPROF" threads -p "$pid" >"$TMP/bad.txt" 2>/dev/null
grep -A1 '^__GI___nanosleep()' "$TMP/bad.txt" | grep -q 'nanosleep.c:[0-9]'
ok $? "an entry whose build id does not match is ignored: libc still has lines"
ln -sf /etc/passwd "$entry.lnk"
rm -f "$entry"
ln -s /etc/hostname "$entry"
"$XPROF" threads -p "$pid" >"$TMP/sym.txt" 2>/dev/null
grep -A1 '^__GI___nanosleep()' "$TMP/sym.txt" | grep -q 'nanosleep.c:[0-9]'
ok $? "a symlink planted as an entry is not followed"

# the cache directory itself: used only when it is no symlink, is ours and
# nobody else can write to it; an entry is written only with room to spare
for kind in open symlink; do
	d="$TMP/cache-$kind"
	if [ "$kind" = open ]; then
		mkdir -m 777 "$d"
		chmod 777 "$d"
	else
		mkdir -m 700 "$TMP/elsewhere"
		ln -s "$TMP/elsewhere" "$d"
	fi
	XPROF_CACHE_DIR=$d "$XPROF" threads -p "$pid" >"$TMP/$kind.txt" 2>/dev/null
	grep -A1 '^__GI___nanosleep()' "$TMP/$kind.txt" | grep -q 'nanosleep.c:[0-9]' &&
		[ -z "$(ls -A "$d/")" ]
	ok $? "a cache directory that is $([ $kind = open ] && echo "writable by all" || echo "a symlink") is not used; libc still has lines"
done
if [ "$(id -u)" = 0 ] && mkdir -m 700 "$TMP/small" && mount -t tmpfs -o size=1m,mode=0700 tmpfs "$TMP/small" 2>/dev/null; then
	XPROF_CACHE_DIR=$TMP/small "$XPROF" threads -p "$pid" >"$TMP/small.txt" 2>/dev/null
	grep -A1 '^__GI___nanosleep()' "$TMP/small.txt" | grep -q 'nanosleep.c:[0-9]' &&
		[ ! -e "$TMP/small/$id.2.debug" ] && [ -z "$(ls -A "$TMP/small" | grep '^\.')" ]
	ok $? "a 1 MB cache file system: libc's entry is not written, no temporary is left; libc still has lines"
	umount "$TMP/small"
else
	ok 0 "# SKIP needs root to mount a small tmpfs"
fi
plan "$_tap_n"
done_testing
