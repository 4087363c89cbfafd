#!/usr/bin/env python
"""Score benchmark architectures with zero-cost proxies; see ``python verify_scores.py --help``."""
import sys

from eznas.cli import verify_main

if __name__ == "__main__":
    sys.exit(verify_main())
