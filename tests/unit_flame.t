#!/bin/sh
# Unit tests of cmd/flame.c (tests/unit/test_flame.c), built by make unit.
cd "$(dirname "$0")/.." && exec tests/unit/test_flame
