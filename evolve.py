#!/usr/bin/env python
"""Discover a zero-cost proxy by genetic programming; see ``python evolve.py --help``.
The same command as ``eznas evolve`` (installed by ``pip install .``), kept for EZNAS's usage."""
import sys

from eznas.threads import quiet_openmp

quiet_openmp()  # before torch loads: OpenMP reads its wait policy once, when it starts

from eznas.cli import evolve_main  # noqa: E402

if __name__ == "__main__":
    sys.exit(evolve_main())
