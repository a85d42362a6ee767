#!/bin/bash
# -o replaces only regular files: a character device or a FIFO is written
# in place and stays what it was, "-" is standard output, a write error
# (ENOSPC from a /dev/full node) fails with exit 2, and a symlink planted in
# a sticky world-writable directory by another user is not followed (the
# rule of the kernel's fs.protected_symlinks, which is 0 on many machines).
# Every command writes through the same code; each is tried on a device.
. "$(dirname "$0")/lib.sh"
need_ptrace
xprof_abs=$(realpath "$XPROF") # for runs in another directory
[ "$(id -u)" = 0 ] || skip_all "mknod and chown need root"
plan 36

start_fixture info build/fixtures/badnames paths-target spinner
read -r pid _ <<<"$info"

# kind PATH: what PATH is, as stat says, with a device's numbers
kind() { stat -c '%F %t,%T' "$1" 2>/dev/null; }

mknod "$TMP/null" c 1 3 && mknod "$TMP/full" c 1 7 && chmod 666 "$TMP/null" "$TMP/full"
null_kind=$(kind "$TMP/null")

# --- a character device like /dev/null: written, never replaced
for args in "threads -p $pid" "heap -p $pid" "cpu -p $pid -d 0.3" "cpu -p $pid -d 0.3 --format folded" \
	"cpu -p $pid -d 0.3 --format svg"; do
	# shellcheck disable=SC2086
	$XPROF $args -o "$TMP/null" >/dev/null 2>"$TMP/err"
	st=$?
	is "$st $(kind "$TMP/null")" "0 $null_kind" "xprof $args -o NULLDEV: exit 0 and the device stays a device" ||
		diag "$(cat "$TMP/err")"
done
ok "$(! ls -A "$TMP" | grep -q '^\.null\.'; echo $?)" "no temp file is left beside the device"

# --- a device that fails every write, like /dev/full
for args in "threads -p $pid" "cpu -p $pid -d 0.3 --format folded"; do
	# shellcheck disable=SC2086
	$XPROF $args -o "$TMP/full" >/dev/null 2>"$TMP/err"
	st=$?
	is "$st" 2 "xprof $args -o FULLDEV: a failed write is exit 2"
	grep -q "^xprof: cannot write $TMP/full: No space left on device$" "$TMP/err"
	ok $? "... with the reason on one line" || diag "$(cat "$TMP/err")"
	is "$(kind "$TMP/full")" "$(printf 'character special file 1,7')" "... and the device stays"
done

# --- a FIFO, read by a background cat
mkfifo "$TMP/fifo"
# bounded: a FIFO replaced by a file would leave the reader waiting
timeout 20 cat "$TMP/fifo" >"$TMP/from-fifo" &
catpid=$!
$XPROF threads -p "$pid" -o "$TMP/fifo" 2>"$TMP/err"
is "$?" 0 "xprof threads -o FIFO exits 0" || diag "$(cat "$TMP/err")"
wait "$catpid"
pprof_check "$TMP/from-fifo"; ok $? "the reader of the FIFO got a valid profile"
is "$(stat -c %F "$TMP/fifo")" fifo "the FIFO is still a FIFO"

# --- "-": standard output
mkdir "$TMP/cwd"
(cd "$TMP/cwd" && "$xprof_abs" threads -p "$pid" -o - >"$TMP/stdout.pb.gz" 2>"$TMP/err")
is "$?" 0 "-o - exits 0" || diag "$(cat "$TMP/err")"
pprof_check "$TMP/stdout.pb.gz"; ok $? "-o - writes a valid profile to standard output"
is "$(ls -A "$TMP/cwd")" "" "and creates no file named '-'"
grep -q "^xprof: wrote the profile to standard output$" "$TMP/err"
ok $? "the summary says where the profile went" || diag "$(cat "$TMP/err")"
(cd "$TMP/cwd" && "$xprof_abs" cpu -p "$pid" -d 0.3 --format folded -o - >"$TMP/stdout.folded" 2>"$TMP/err")
grep -q 'badnames_spin [0-9][0-9]*$' "$TMP/stdout.folded"
ok $? "cpu --format folded -o - prints folded stacks" || diag "$(head -3 "$TMP/stdout.folded")" "$(cat "$TMP/err")"
(cd "$TMP/cwd" && "$xprof_abs" cpu -d 0.5 -o - -- sh -c 'echo from-the-command; i=0; while [ $i -lt 300000 ]; do i=$((i + 1)); done' \
	>"$TMP/launch.pb.gz" 2>"$TMP/err")
pprof_check "$TMP/launch.pb.gz"; ok $? "cpu -o - -- CMD: the command's output stays out of the profile"
grep -q '^from-the-command$' "$TMP/err"
ok $? "... and goes to standard error" || diag "$(cat "$TMP/err")"

# a terminal gets no binary profile (script gives the command a pty; its
# shell may start elsewhere, hence the cd and the absolute path)
if command -v script >/dev/null; then
	script -qec "cd '$TMP/cwd' && '$xprof_abs' threads -p $pid -o -; echo \"rc=\$?\"" /dev/null >"$TMP/tty.out" 2>&1
	grep -q "it is a terminal and the profile is binary" "$TMP/tty.out" && grep -q "rc=2" "$TMP/tty.out"
	ok $? "-o - on a terminal is refused, exit 2" || diag "$(cat "$TMP/tty.out")"
else
	ok 0 "# SKIP no script(1) to give xprof a terminal"
fi

# --- symlinks to standard output
ln -s /proc/self/fd/1 "$TMP/to-fd1"
$XPROF threads -p "$pid" -o "$TMP/to-fd1" >"$TMP/via-link.pb.gz" 2>"$TMP/err"
is "$?" 0 "-o LINK-TO-/proc/self/fd/1 exits 0" || diag "$(cat "$TMP/err")"
pprof_check "$TMP/via-link.pb.gz"; ok $? "... the profile arrives on standard output"
is "$(readlink "$TMP/to-fd1")" /proc/self/fd/1 "... and the link is still the link"
# as /dev/stdout (never named here: a binary under test that replaces the
# link would replace the system's own), a link to a link through /proc/self
ln -s /proc/self/fd/1 "$TMP/stdout" && ln -s stdout "$TMP/chain"
$XPROF threads -p "$pid" -o "$TMP/chain" >"$TMP/chain.pb.gz" 2>"$TMP/err"
pprof_check "$TMP/chain.pb.gz"; ok $? "-o LINK-TO-LINK-TO-/proc/self/fd/1, as /dev/stdout, writes to standard output" ||
	diag "$(cat "$TMP/err")"

# --- symlinks in a sticky world-writable directory (a shared /tmp)
mkdir -m 1777 "$TMP/sticky"
echo precious >"$TMP/victim"
ln -s "$TMP/victim" "$TMP/sticky/planted"
chown -h nobody "$TMP/sticky/planted"
$XPROF threads -p "$pid" -o "$TMP/sticky/planted" 2>"$TMP/err"
is "$?" 2 "a symlink another user planted in a sticky directory is refused (exit 2)"
grep -q "symlink of uid $(id -u nobody) in $TMP/sticky, a sticky world-writable directory" "$TMP/err"
ok $? "... and the message says why" || diag "$(cat "$TMP/err")"
is "$(cat "$TMP/victim")" precious "... the file it points to is untouched"
mkdir "$TMP/elsewhere"
ln -s "$TMP/elsewhere" "$TMP/sticky/dir"
chown -h nobody "$TMP/sticky/dir"
$XPROF threads -p "$pid" -o "$TMP/sticky/dir/out.pb.gz" 2>"$TMP/err"
is "$? $(ls -A "$TMP/elsewhere")" "2 " "a planted symlink on the way (a directory) is refused too" ||
	diag "$(cat "$TMP/err")"
ln -s "$TMP/victim" "$TMP/sticky/mine"
$XPROF threads -p "$pid" -o "$TMP/sticky/mine" 2>"$TMP/err"
is "$?" 0 "our own symlink in the sticky directory is followed" || diag "$(cat "$TMP/err")"
pprof_check "$TMP/victim"; ok $? "... the file it points to now holds the profile"
ok "$(test -L "$TMP/sticky/mine"; echo $?)" "... and the link stays a link"
ln -s "$TMP/created.pb.gz" "$TMP/dangling"
$XPROF threads -p "$pid" -o "$TMP/dangling" 2>"$TMP/err"
pprof_check "$TMP/created.pb.gz"; ok $? "a dangling symlink of ours creates its target, as '>' does"

# --- refused before any work
mknod "$TMP/loop" b 7 0
$XPROF threads -p "$pid" -o "$TMP/loop" 2>"$TMP/err"
is "$? $(grep -c 'block device' "$TMP/err")" "2 1" "a block device is refused" || diag "$(cat "$TMP/err")"
done_testing
