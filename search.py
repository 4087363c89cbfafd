#!/usr/bin/env python
"""Search a NAS space with a zero-cost proxy as the fitness; see ``python search.py --help``.
The same command as ``eznas search`` (installed by ``pip install .``), kept for EZNAS's usage."""
import sys

from eznas.threads import quiet_openmp

quiet_openmp()  # before torch loads: OpenMP reads its wait policy once, when it starts

from eznas.cli import search_main  # noqa: E402

if __name__ == "__main__":
    sys.exit(search_main())
