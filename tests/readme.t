#!/bin/bash
# readme.t — README.md and docs/xprof.1 against the xprof they describe:
# every `xprof CMD ...` line they show names a command xprof has and only
# options that command's --help lists; every --help option is in the man
# page (SYNOPSIS and OPTIONS) and in README's synopsis of the command; and
# the examples whose output README shows are run on fixtures (cpuburn,
# parked, goparked, python3), their output compared line by line with
# README's, numbers, names and paths aside.  A failure says what to change.
. "$(dirname "$0")/lib.sh"
need_ptrace
plan 10

# ---- what the docs show ----------------------------------------------------

# lines "CMD<TAB>LINE" for every xprof command line in README's code (4-space
# indented or fenced) and in the man page's SYNOPSIS and EXAMPLES, the man
# page's roff turned into text
doc_commands() {
	perl -ne '
		BEGIN { $fence = 0 }
		if (/^```/) { $fence = !$fence; next }
		next unless $fence || /^    /;
		s/^\s*\$\s+//; s/^\s+//;
		print "README.md\t$_" if /^xprof\s+[a-z]/;
	' README.md
	# the man page: .B/.RB/.BR/.I/.RI/.IR macros joined into one line per
	# command of SYNOPSIS; EXAMPLES are plain lines between .nf and .fi
	perl -ne '
		chomp;
		if (/^\.SH (.*)/) { print "docs/xprof.1\t$cur\n" if $cur ne ""; $cur = ""; $sec = $1; next }
		if ($sec eq "SYNOPSIS") {
			if (/^\.br/) { print "docs/xprof.1\t$cur\n" if $cur ne ""; $cur = ""; next }
			s/^\.(B|I|RB|BR|IR|RI)\s*//; s/\\-/-/g; s/"//g; s/\\f[BIRP]//g;
			$cur .= ($cur eq "" ? "" : " ") . $_;
		} elsif ($sec eq "EXAMPLES" && !/^\./) {
			s/\\-/-/g; print "docs/xprof.1\t$_\n" if /^xprof\s+[a-z]/;
		}
	' docs/xprof.1
}

# the options of one command line, one per line: tokens that look like an
# option, up to a lone "--" (a launched command's own), a comment, or a
# shell operator (&&, &, a pipe into another command)
line_options() {
	perl -e '
		$_ = $ARGV[0];
		s/\s#\s.*//; s/\s&&?\s.*//; s/\s\|\s+(?!-).*//;
		for (split /[\s\[\]()|]+/) {
			last if $_ eq "--";
			print "$1\n" if /^(--?[A-Za-z][-A-Za-z]*)(=.*)?$/;
		}
	' "$1"
}

# the options of `xprof CMD --help`: "-x, --long" or "--long" at the start of
# an indented line
help_options() {
	"$XPROF" "$1" --help 2>/dev/null | perl -ne 'print "$1\n$2\n" if /^\s+(-\w), (--[\w-]+)/; print "$1\n" if /^\s+(--[\w-]+)\b/'
}

xprof_abs=$(realpath "$(command -v "$XPROF")")
commands=$("$XPROF" --help | awk '/^commands:/ { on = 1; next } on && /^  [a-z]/ { print $1 } /^$/ && on > 0 && seen { exit } on { seen = 1 }')

# ---- 1. every command and option shown exists --------------------------------
doc_commands >"$TMP/lines"
n=$(wc -l <"$TMP/lines")
[ "$n" -gt 20 ]
ok $? "README.md and docs/xprof.1 show $n xprof command lines" || diag "$(cat "$TMP/lines")"
bad=""
while IFS=$'\t' read -r file line; do
	cmd=$(awk '{ print $2 }' <<<"$line")
	case "$cmd" in
	[a-z]*) ;;
	*) continue ;;
	esac
	if ! grep -qx "$cmd" <<<"$commands"; then
		bad+="$file shows 'xprof $cmd', and xprof has no command $cmd (xprof --help): $line"$'\n'
		continue
	fi
	help_options "$cmd" >"$TMP/help.$cmd"
	for opt in $(line_options "$line"); do
		[ "$opt" = --help ] || [ "$opt" = -h ] && continue
		grep -qx -- "$opt" "$TMP/help.$cmd" ||
			bad+="$file shows option $opt of 'xprof $cmd', which 'xprof $cmd --help' does not list: $line"$'\n'
	done
done <"$TMP/lines"
[ -z "$bad" ]
ok $? "every command and option the docs show is one xprof has" || diag "$bad"

# ---- 2. every --help option is documented -------------------------------------
manopts=$(sed -n '/^\.SH OPTIONS/,/^\.SH /p' docs/xprof.1 | sed 's/\\-/-/g')
bad=""
for cmd in $commands; do
	help_options "$cmd" >"$TMP/help.$cmd"
	[ -s "$TMP/help.$cmd" ] || { bad+="'xprof $cmd --help' lists no options"$'\n'; continue; }
	syn_man=$(grep -P "^docs/xprof.1\txprof $cmd( |\$)" "$TMP/lines" | head -1)
	syn_readme=$(grep -P "^README.md\txprof $cmd .*\[" "$TMP/lines")
	while read -r opt; do
		[ "$opt" = --help ] || [ "$opt" = -h ] && continue
		grep -qP -- "(^|[\s,\[(|])\Q$opt\E([\s,=\])|]|\$)" <<<"$manopts" ||
			bad+="option $opt of 'xprof $cmd --help' is not in docs/xprof.1's OPTIONS"$'\n'
		# a synopsis names the long form or the short one
		long=$(grep -A1 -x -- "$opt" "$TMP/help.$cmd" | sed -n '2s/^--/--/p')
		for syn in "docs/xprof.1 SYNOPSIS:$syn_man" "README.md:$syn_readme"; do
			where=${syn%%:*} text=${syn#*:}
			[ -z "$text" ] && continue
			perl -e '$t = $ARGV[0]; exit !grep { $t =~ /(^|[\s\[(|])\Q$_\E([\s\])|]|$)/m } @ARGV[1..$#ARGV]' \
				"$text" "$opt" ${long:+"$long"} && continue
			# "-g" is named by "--group" and the other way round
			[ "${opt#--}" != "$opt" ] && grep -B1 -x -- "$opt" "$TMP/help.$cmd" | head -1 | grep -q '^-[^-]' &&
				perl -e '$t = $ARGV[0]; exit !($t =~ /(^|[\s\[(|])\Q$ARGV[1]\E([\s\])|]|$)/m)' "$text" \
					"$(grep -B1 -x -- "$opt" "$TMP/help.$cmd" | head -1)" && continue
			bad+="option $opt of 'xprof $cmd --help' is missing from the synopsis in $where"$'\n'
		done
	done <"$TMP/help.$cmd"
done
[ -z "$bad" ]
ok $? "every option of every command's --help is in the man page and in the synopses" || diag "$bad"

# ---- 3. the examples, run ------------------------------------------------------

# README's code blocks, each as one file $TMP/block.N (the indent removed)
perl -e '
	open my $f, "<", "README.md" or die; my ($n, $in) = (0, 0);
	while (<$f>) {
		if (/^    (.*)/ && !$fence) { if (!$in) { $n++; open $o, ">", "$ARGV[0]/block.$n"; $in = 1 } print $o "$1\n"; next }
		$fence = !$fence if /^```/;
		if ($in) { close $o; $in = 0 }
	}
' "$TMP"

# shape LINE...: numbers, hex, the target's name and the directories of
# paths made neutral, for output lines that differ only in those
shape() {
	perl -pe '
		s/^xprof: \S+ \(pid/xprof: NAME (pid/; s/\(pid (\d+)\)/(pid N)/g; s/pid \d+ \([^)]*\)/pid N (NAME)/g;
		s/xprof\.[^.\s]+\.\d+\./xprof.NAME.N./g; s/wrote \S+;/wrote FILE;/; s/-http=: \S+/-http=: FILE/;
		s/(\s|^)\S*\/([^\/\s:]+:\d+)/$1$2/g;
		s/0x[0-9a-f]+/X/g; s/\d+(\.\d+)?/N/g;
	'
}

# dump_shape: a stack dump with its ids, addresses and directories set
# aside; function names, line numbers and offsets kept
dump_shape() {
	perl -pe '
		s/^(thread|goroutine) \d+/$1 N/; s/thread \d+ "/thread N "/g;
		s/0x[0-9a-f]{7,}/X/g;
		s/(\s|^)\S*\/([^\/\s:]+:\d+)/$1$2/g;
	'
}

# compare_block TITLE README_FILE REAL_FILE [SHAPE]
compare_block() {
	local shaper=${4:-shape}
	if diff <($shaper <"$2") <($shaper <"$3") >"$TMP/diff"; then
		ok 0 "$1"
	else
		ok 1 "$1"
		diag "README.md shows (left) and xprof prints (right), once numbers, names and paths are set aside:" \
			"$(cat "$TMP/diff")" "the real output, to paste:" "$(cat "$3")"
	fi
}

# the block that starts with a line matching PATTERN
block_of() {
	local f
	for f in "$TMP"/block.*; do
		grep -q -m1 -e "$1" <(head -1 "$f") && { echo "$f"; return 0; }
	done
	return 1
}

# xprof cpu: "$ xprof cpu -p 4242 -d 10s -F 999" and its two lines
start_fixture ready "$FIX/cpuburn"
bpid=${ready%% *}
f=$(block_of '^\$ xprof cpu -p ') || f=/dev/null
cmdline=$(head -1 "$f" | sed 's/^\$ //; s/ 4242 / '"$bpid"' /; s/-d [0-9a-z]*/-d 1s/')
# at 999 Hz a starved xprof loses samples (exit 1, said on a line of its
# own): that run is tried again, up to 3 times, as the example shows none
for try in 1 2 3; do
	(cd "$TMP" && "$xprof_abs" ${cmdline#xprof }) >/dev/null 2>"$TMP/cpu.err"
	rc=$?
	[ $rc = 1 ] && grep -q 'samples were lost' "$TMP/cpu.err" || break
done
ok $rc "README's cpu example runs: $cmdline" || diag "$(cat "$TMP/cpu.err")"
compare_block "README's cpu example prints what xprof cpu prints" <(sed -n '2,$p' "$f") "$TMP/cpu.err"

# xprof heap on python3, as README shows it
if command -v python3 >/dev/null; then
	python3 -c 'import os, time
x = [str(i) * 3 for i in range(100000)]
print("ready", os.getpid(), flush=True)
time.sleep(120)' >"$TMP/py.out" 2>&1 &
	_fixture_pids="$_fixture_pids $!"
	for i in $(seq 1 500); do grep -q ready "$TMP/py.out" && break; sleep 0.02; done
	ppid=$(awk '/ready/ { print $2 }' "$TMP/py.out")
	f=$(block_of '^\$ xprof heap -p ') || f=/dev/null
	cmdline=$(head -1 "$f" | sed 's/^\$ //; s/ 4242 / '"$ppid"' /')
	(cd "$TMP" && "$xprof_abs" ${cmdline#xprof }) >/dev/null 2>"$TMP/heap.err"
	ok $? "README's heap example runs on python3: $cmdline" || diag "$(cat "$TMP/heap.err")"
	grep '^xprof: ' "$f" >"$TMP/heap.readme"
	# the last line ("wrote") is not shown in README
	grep -v '^xprof: wrote ' "$TMP/heap.err" >"$TMP/heap.real"
	compare_block "README's heap example prints what xprof heap prints" "$TMP/heap.readme" "$TMP/heap.real"
else
	ok 0 "# SKIP python3 is not installed"
	ok 0 "# SKIP python3 is not installed"
fi

# xprof threads: the "locker" thread of the parked fixture
start_fixture ready "$FIX/parked-O2"
tpid=${ready%% *}
# on a loaded machine a thread may not stop in time (exit 1, its stack
# missing): up to three tries for every stack
for try in 1 2 3; do
	"$XPROF" threads -p "$tpid" >"$TMP/threads.txt" 2>"$TMP/threads.err"
	rc=$?
	[ "$rc" = 0 ] && break
done
[ "$rc" -le 1 ]
ok $? "xprof threads on parked-O2 runs" || diag "$(cat "$TMP/threads.err")"
f=$(block_of '^thread [0-9]* "locker"') || f=/dev/null
awk '/^thread [0-9]* "locker"/ { on = 1 } /^$/ { on = 0 } on' "$TMP/threads.txt" >"$TMP/locker.real"
compare_block "README's thread dump is the parked fixture's locker thread as xprof prints it" "$f" "$TMP/locker.real" dump_shape

# Go: goroutine waiting for a mutex in goparked
mkdir -p "$TMP/go"
start_fixture ready "$FIX/goparked" "$TMP/go"
gpid=${ready%% *}
f=$(block_of '^goroutine [0-9]* \[semacquire\]') || f=/dev/null
# the goroutine may not have reached the mutex yet when goparked says ready
# (a loaded machine): a dump without it is taken again, up to 5 times
for try in 1 2 3 4 5; do
	"$XPROF" threads -p "$gpid" >"$TMP/go.txt" 2>"$TMP/go.err"
	# the first [semacquire] goroutine whose top frame is README's
	awk -v want="$(sed -n 2p "$f")" '/^goroutine [0-9]* \[semacquire\]/ { on = 1; n = 0; buf = $0 "\n"; next }
		on && /^$/ { if (hit) { printf "%s", buf; done = 1; exit } on = 0; next }
		on { n++; if (n == 1) hit = ($0 == want); buf = buf $0 "\n" }
		END { if (on && hit && !done) printf "%s", buf }' "$TMP/go.txt" >"$TMP/goroutine.real"
	[ -s "$TMP/goroutine.real" ] && break
	sleep 0.5
done
compare_block "README's goroutine is goparked's, as xprof prints it (line numbers too)" "$f" "$TMP/goroutine.real" dump_shape

done_testing
