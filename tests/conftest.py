"""Shared fixtures. Real data comes from the data root (``$EZNAS_DATA`` or ``./data``, filled by
setup_script.sh); a checkout with ``../shared/data`` beside it falls back to that mirror."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from eznas.data import resolve_data_root

REPO = Path(__file__).resolve().parents[1]


def _find_data_root() -> Path | None:
    for root in (resolve_data_root(None), REPO / "data", REPO.parent / "shared" / "data"):
        root = root if root.is_absolute() else REPO / root
        if (root / "nb201" / "nb201_acc_200ep.csv").is_file():
            return root
    return None


@pytest.fixture(scope="session")
def data_root() -> Path:
    root = _find_data_root()
    if root is None:
        if os.environ.get("CI"):
            pytest.fail("no data root with nb201/nb201_acc_200ep.csv: setup_script.sh did not fill ./data")
        pytest.skip("no data root (run setup_script.sh or set EZNAS_DATA)")
    return root


@pytest.fixture(scope="session")
def nb201_table(data_root: Path):
    import pandas as pd

    return pd.read_csv(data_root / "nb201" / "nb201_acc_200ep.csv")
