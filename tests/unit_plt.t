#!/bin/sh
# Unit tests of PLT stub names (tests/unit/test_plt.c) on real ELF files, built by make unit.
cd "$(dirname "$0")/.." && exec tests/unit/test_plt
