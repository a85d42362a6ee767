#!/bin/sh
# Unit tests of proto/ (tests/unit/test_proto.c), built by make unit.
cd "$(dirname "$0")/.." && exec tests/unit/test_proto
