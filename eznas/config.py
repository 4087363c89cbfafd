"""Frozen config dataclasses from TOML or dicts, strictly: an unknown key or a wrong type is an error."""
from __future__ import annotations

import dataclasses
import tomllib
from pathlib import Path
from typing import Any, TypeVar

from eznas.errors import EznasError

C = TypeVar("C")
_SCALARS = {"int": int, "float": float, "str": str, "bool": bool}


def from_dict(cls: type[C], data: dict[str, Any], where: str) -> C:
    """Build ``cls`` from ``data``; nested dataclass fields take tables."""
    if not isinstance(data, dict):
        raise EznasError(f"{where}: expected a table, got {type(data).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    defaults = cls()
    kwargs = {}
    for key, value in data.items():
        if key not in fields:
            raise EznasError(f"{where}: unknown key {key!r}; valid: {', '.join(fields)}")
        kwargs[key] = _coerce(value, getattr(defaults, key), str(fields[key].type), f"{where}.{key}")
    return cls(**kwargs)


def _coerce(value: Any, default: Any, annotation: str, where: str) -> Any:
    if dataclasses.is_dataclass(default):
        return from_dict(type(default), value, where)
    if isinstance(default, tuple):
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise EznasError(f"{where}: expected a list of strings, got {value!r}")
        return tuple(value)
    base = annotation.replace(" | None", "").strip()
    if value is None and "None" in annotation:
        return None
    kind = _SCALARS.get(base)
    ok = (kind is float and isinstance(value, (int, float)) and not isinstance(value, bool)) or \
         (kind is int and isinstance(value, int) and not isinstance(value, bool)) or \
         (kind in (str, bool) and isinstance(value, kind))
    if not ok:
        raise EznasError(f"{where}: expected {base}, got {value!r}")
    return float(value) if kind is float else value


def load_toml(cls: type[C], path: str | Path) -> C:
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise EznasError(f"config file not found: {path}") from None
    except tomllib.TOMLDecodeError as exc:
        raise EznasError(f"{path}: not valid TOML ({exc})") from None
    return from_dict(cls, data, str(path))
