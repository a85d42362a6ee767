#!/bin/bash
# A hostile target cannot make xprof (root) read a file it never mapped
# and show what is in it (docs/security.md).  The "secret" is a root-only
# ELF built from the same source as the target with one function renamed
# (hold_lock -> xprof_secret_victim): if xprof read it in place of the
# target's binary or debug file, that name would show in the dump.
# - the target's binary is deleted and its path made a symlink to the
#   secret; xprof without CAP_SYS_ADMIN (no /proc/PID/map_files, as in a
#   container) opens the path: the device and inode must be the mapped ones;
# - a .gnu_debuglink naming "../../../..$SECRET/victim.debug" (with the
#   right CRC) is not followed.
. "$(dirname "$0")/lib.sh"
need_ptrace
[ "$(id -u)" = 0 ] && command -v setpriv >/dev/null || skip_all "needs root and setpriv"

SECRET=$TMP/secret
mkdir -m 700 "$SECRET"
CFLAGS="-O2 -fomit-frame-pointer -g -pthread -Wl,--build-id=none"
gcc $CFLAGS -Dhold_lock=xprof_secret_victim -o "$SECRET/victim" fixtures/parked.c &&
	objcopy --only-keep-debug "$SECRET/victim" "$SECRET/victim.debug" ||
	{ echo "Bail out! cannot build the secret"; exit 1; }
nocap="setpriv --inh-caps=-sys_admin,-checkpoint_restore --bounding-set=-sys_admin,-checkpoint_restore"

# --- the mapped path now names another file ------------------------------------
nobody_dir "$FIX/parked-O2"
start_fixture ready setpriv --reuid=65534 --regid=65534 --clear-groups "$NOBODY_DIR/parked-O2"
pid=${ready%% *}
$nocap "$XPROF" threads -p "$pid" >"$TMP/before.txt" 2>"$TMP/err"
grep -q 'hold_lock' "$TMP/before.txt"
ok $? "without CAP_SYS_ADMIN the binary is opened by its path, and symbolized" || diag "$(cat "$TMP/err")"
rm "$NOBODY_DIR/parked-O2"
ln -s "$SECRET/victim" "$NOBODY_DIR/parked-O2"
$nocap "$XPROF" threads -p "$pid" >"$TMP/after.txt" 2>"$TMP/err"
rc=$?
{ [ "$rc" = 0 ] || [ "$rc" = 1 ]; } && grep -q '^thread ' "$TMP/after.txt"
ok $? "a binary replaced by a symlink: the dump is still made (exit $rc)" || diag "$(cat "$TMP/err")"
grep -q 'xprof_secret_victim' "$TMP/after.txt"
ok $((! $?)) "and the file the symlink names is not read (no xprof_secret_victim)"
no_thread_stopped "$pid"
ok $? "the target runs"

# --- a .gnu_debuglink that climbs out ------------------------------------------------
gcc $CFLAGS -o "$TMP/link.full" fixtures/parked.c
objcopy --strip-all "$TMP/link.full" "$TMP/link"
name="../../../../../../../../../..$SECRET/victim.debug"
{
	printf '%s\0' "$name"
	pad=$(((4 - (${#name} + 1) % 4) % 4))
	head -c "$pad" /dev/zero
	gzip -c "$SECRET/victim.debug" | tail -c 8 | head -c 4 # CRC-32, little-endian
} >"$TMP/debuglink.sec"
objcopy --add-section .gnu_debuglink="$TMP/debuglink.sec" "$TMP/link"
readelf -p .gnu_debuglink "$TMP/link" 2>/dev/null | grep -q 'victim.debug'
ok $? "the target's .gnu_debuglink names $name"
start_fixture ready "$TMP/link"
lpid=${ready%% *}
"$XPROF" threads -p "$lpid" >"$TMP/link.txt" 2>"$TMP/err"
rc=$?
{ [ "$rc" = 0 ] || [ "$rc" = 1 ]; } && grep -q '^thread ' "$TMP/link.txt"
ok $? "the dump is made (exit $rc)" || diag "$(cat "$TMP/err")"
grep -q 'xprof_secret_victim' "$TMP/link.txt"
ok $((! $?)) "and the debug file outside the debug directories is not read"
plan "$_tap_n"
done_testing
