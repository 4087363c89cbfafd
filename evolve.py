#!/usr/bin/env python
"""Discover a zero-cost proxy by genetic programming; see ``python evolve.py --help``."""
import sys

from eznas.cli import evolve_main

if __name__ == "__main__":
    sys.exit(evolve_main())
