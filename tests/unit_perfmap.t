#!/bin/sh
# Unit tests of the perf map parser (tests/unit/test_perfmap.c), built by make unit.
cd "$(dirname "$0")/.." && exec tests/unit/test_perfmap
