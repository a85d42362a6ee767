#!/bin/sh
# Unit tests of pyrt/ over fake, hostile interpreters (tests/unit/test_pyrt.c), built by make unit.
cd "$(dirname "$0")/.." && exec tests/unit/test_pyrt
