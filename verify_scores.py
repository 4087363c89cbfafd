#!/usr/bin/env python
"""Score benchmark architectures with zero-cost proxies; see ``python verify_scores.py --help``.
The same command as ``eznas verify`` (installed by ``pip install .``), kept for EZNAS's usage."""
import sys

from eznas.threads import quiet_openmp

quiet_openmp()  # before torch loads: OpenMP reads its wait policy once, when it starts

from eznas.cli import verify_main  # noqa: E402

if __name__ == "__main__":
    sys.exit(verify_main())
