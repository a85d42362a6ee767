#!/usr/bin/env bash
# bench/md-section.sh — put one section into docs/benchmarks.md, keep the rest.
#
# Usage: bench/md-section.sh DOC KEY HEADING BODY_FILE
#
#   DOC        the Markdown file (created if missing)
#   KEY        a short stable name for the section (threads, cpu, heap, ...)
#   HEADING    the section's "## " heading text, without the "## "
#   BODY_FILE  the section's content, without its heading
#
# The file is "# xprof benchmarks", a short preamble (rewritten on every call:
# how the file is produced and on which machine), then "## " sections.  Each
# section written here carries a marker comment <!-- bench-section: KEY -->
# under its heading.  A section is replaced when its marker names KEY or its
# heading is exactly HEADING (so a hand-written or renamed section does not
# linger); further matches are dropped; otherwise the section is appended.
# Lines inside ``` or ~~~ fences are never taken for headings.  Other
# sections are kept byte for byte.  The file is replaced atomically.
#
# Meant to be shared by every benchmark script (threads, later cpu, heap).

set -euo pipefail

if [ $# -ne 4 ]; then
	echo "usage: $0 DOC KEY HEADING BODY_FILE" >&2
	exit 64
fi
command -v python3 >/dev/null || { echo "$0: python3 is required" >&2; exit 1; }

cpu_model=$(awk -F': *' '/^model name/ { print $2; exit }' /proc/cpuinfo 2>/dev/null || true)
XP_NPROC=$(nproc) XP_KERNEL=$(uname -r) XP_DATE=$(date -u '+%Y-%m-%d %H:%M UTC') \
XP_CPU=${cpu_model:-unknown CPU} \
python3 - "$@" <<'PY'
import os, re, sys, tempfile

doc, key, heading, body_file = sys.argv[1:5]
marker = "<!-- bench-section: %s -->" % key
with open(body_file, encoding="utf-8") as f:
    body = f.read().strip("\n") + "\n"

env = os.environ
preamble = (
    "# xprof benchmarks\n"
    "\n"
    "Produced by `make bench` (it builds `./xprof` and the fixtures, then runs\n"
    "`bench/run.sh`); every section below is rewritten by the script that\n"
    "measures it, and the other sections are kept as they were.  Numbers are\n"
    "wall-clock times on one machine and are only comparable within a section.\n"
    "Last written on this machine: %s cores (%s), Linux %s, %s.\n"
    % (env["XP_NPROC"], env["XP_CPU"], env["XP_KERNEL"], env["XP_DATE"])
)
new_section = "## %s\n%s\n\n%s" % (heading, marker, body)

try:
    with open(doc, encoding="utf-8") as f:
        lines = f.read().splitlines(keepends=True)
except FileNotFoundError:
    lines = []

# Split into the preamble and "## " sections, ignoring fenced code.
sections = []          # list of [heading_text, [lines]]
fence = None
for line in lines:
    m = re.match(r"^ {0,3}(`{3,}|~{3,})", line)
    if m:
        tok = m.group(1)
        if fence is None:
            fence = tok
        elif tok[0] == fence[0] and len(tok) >= len(fence):
            fence = None
    if fence is None and not m and re.match(r"^## ", line):
        sections.append([line[3:].strip(), [line]])
    elif sections:
        sections[-1][1].append(line)
    # else: old preamble, rewritten below

def matches(sec):
    text, body_lines = sec
    if text == heading:
        return True
    return any(l.strip() == marker for l in body_lines)

out, placed = [preamble], False
for sec in sections:
    if matches(sec):
        if not placed:
            out.append(new_section)
            placed = True
        continue
    chunk = "".join(sec[1])
    if not chunk.endswith("\n"):
        chunk += "\n"
    out.append(chunk)
if not placed:
    out.append(new_section)

# one blank line between blocks, whatever the blocks ended with
text = "\n".join(block.rstrip("\n") + "\n" for block in out)

d = os.path.dirname(os.path.abspath(doc))
os.makedirs(d, exist_ok=True)
fd, tmp = tempfile.mkstemp(dir=d, prefix=".benchmarks.", suffix=".tmp")
try:
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
    os.chmod(tmp, 0o644)
    os.replace(tmp, doc)
except BaseException:
    os.unlink(tmp)
    raise
PY
