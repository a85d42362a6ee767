#!/bin/sh
# Unit tests of unwind/ (tests/unit/test_unwind.c), built by make unit.
cd "$(dirname "$0")/.." && exec tests/unit/test_unwind
