"""``python -m eznas.fetch``: the ``eznas fetch`` command (``eznas.fetch.cli``)."""
from eznas.fetch.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
