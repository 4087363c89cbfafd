#!/usr/bin/env python
"""Search a NAS space with a zero-cost proxy as the fitness; see ``python search.py --help``."""
import sys

from eznas.cli import search_main

if __name__ == "__main__":
    sys.exit(search_main())
