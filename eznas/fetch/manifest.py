"""The data manifest ``eznas/data_sources.json``: what the mirror holds, what the public sources become, and
the data with no automatic download."""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from eznas.errors import DataError

MANIFEST = Path(__file__).parent.parent / "data_sources.json"

Manifest = dict[str, Any]


def load_manifest(path: str | os.PathLike = MANIFEST) -> Manifest:
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: unreadable data manifest ({exc})") from None


def manual_notes(root: Path, manifest: Manifest | None = None) -> list[str]:
    """Messages for data with no automatic download that is not in ``root`` yet."""
    entries = (manifest or load_manifest()).get("manual", [])
    return [e["message"].format(root=root) for e in entries if not (root / e["expect"]).exists()]
