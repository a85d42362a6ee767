#!/bin/bash
# Names a target chooses reach the operator escaped: a comm holding a
# newline cannot forge an "xprof: wrote" line on stderr, an escape sequence
# in a thread name never reaches the terminal raw, and the default output
# file name holds only letters, digits and ._+- of the comm.
# build/fixtures/badnames sets its comm and a thread's name from argv.
. "$(dirname "$0")/lib.sh"
need_ptrace
xprof_abs=$(realpath "$XPROF") # for runs in another directory
plan 13

ESC=$'\e'
COMM=$'\nxprof: wrote /'           # 15 bytes: the whole comm
TNAME=$'t\e[31mred\n'              # ESC and a newline in a thread name
start_fixture info build/fixtures/badnames "$COMM" "$TNAME"
read -r pid tid <<<"$info"
[ "$(cat /proc/"$pid"/comm)" = $'\nxprof: wrote /' ] || echo "Bail out! the fixture's comm is not set"

# no_raw FILE: no ESC byte and no other control byte but newline and tab
no_raw() { ! LC_ALL=C grep -q '[[:cntrl:]]' <(tr -d '\n\t' <"$1"); }

# --- threads: the text dump and its summary
$XPROF threads -p "$pid" >"$TMP/dump" 2>"$TMP/err"
is "$?" 0 "xprof threads exits 0"
ok "$(no_raw "$TMP/dump"; echo $?)" "the dump holds no escape sequence or control byte"
grep -qF "thread $tid \"t\\x1b[31mred\\n\"" "$TMP/dump"
ok $? "the thread's name shows escaped in the dump" || diag "$(grep "^thread" "$TMP/dump")"
ok "$(no_raw "$TMP/err"; echo $?)" "stderr holds no escape sequence or control byte"
ok "$(! grep -q '^xprof: wrote' "$TMP/err"; echo $?)" \
	"no forged 'xprof: wrote' line on stderr (threads writes no file)" || diag "$(cat "$TMP/err")"
grep -qF "pid $pid (\\nxprof: wrote /)" "$TMP/err"
ok $? "the summary names the process by its escaped comm" || diag "$(cat "$TMP/err")"

# --- threads --group: names in the grouped dump
$XPROF threads -p "$pid" --group >"$TMP/group" 2>/dev/null
ok "$(no_raw "$TMP/group"; echo $?)" "the grouped dump holds no escape sequence either"

# --- cpu: the default file name and the "wrote" line
mkdir "$TMP/cwd"
(cd "$TMP/cwd" && "$xprof_abs" cpu -p "$pid" -d 1 -F 99 2>"$TMP/cpu.err")
is "$?" 0 "xprof cpu -p with the default output name exits 0" || diag "$(cat "$TMP/cpu.err")"
want="xprof._nxprof__wrote__.$pid.cpu.pb.gz" # the escaped comm, "\n" as "_n"
files=$(ls -A "$TMP/cwd")
is "$files" "$want" "the default file name keeps only safe bytes of the comm"
pprof_check "$TMP/cwd/$want"; ok $? "and it is a valid profile"
grep -c '^xprof: wrote ' "$TMP/cpu.err" >"$TMP/n"
is "$(cat "$TMP/n")" 1 "exactly one 'xprof: wrote' line" || diag "$(cat "$TMP/cpu.err")"
ok "$(no_raw "$TMP/cpu.err"; echo $?)" "cpu's stderr holds no escape sequence or control byte"

# --- heap: the same default name rule
(cd "$TMP/cwd" && "$xprof_abs" heap -p "$pid" >/dev/null 2>"$TMP/heap.err")
ok "$(test -f "$TMP/cwd/xprof._nxprof__wrote__.$pid.heap.pb.gz"; echo $?)" \
	"heap's default file name is made safe the same way" || diag "$(ls -A "$TMP/cwd")" "$(cat "$TMP/heap.err")"
done_testing
