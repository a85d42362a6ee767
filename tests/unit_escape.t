#!/bin/sh
# Unit tests of the escaper (tests/unit/test_escape.c), built by make unit.
cd "$(dirname "$0")/.." && exec tests/unit/test_escape
