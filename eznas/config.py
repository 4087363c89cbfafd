"""Frozen config dataclasses from TOML, dicts or ``KEY=VALUE`` overrides, strictly: an unknown key or a wrong type
is an error."""
from __future__ import annotations

import dataclasses
import json
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
        numbers = annotation.startswith("tuple[float")
        if not isinstance(value, list) or not all(
                isinstance(v, (int, float)) and not isinstance(v, bool) if numbers else isinstance(v, str) for v in value):
            raise EznasError(f"{where}: expected a list of {'numbers' if numbers else 'strings'}, got {value!r}")
        return tuple(float(v) for v in value) if numbers else tuple(value)
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


# ---------------------------------------------------------------------------------------------- overrides
def plain(cfg: Any) -> dict[str, Any]:
    """A config as JSON holds it (tuples as lists): what a run's config.json stores and from_dict reads."""
    return json.loads(json.dumps(dataclasses.asdict(cfg)))


def merge_toml(cfg: C, path: str | Path) -> C:
    """The keys of the TOML file at ``path`` over ``cfg`` (strictly checked, as load_toml reads them)."""
    load_toml(type(cfg), path)  # unknown keys, wrong types, bad TOML: its error names the file and key

    def merge(base: dict, over: dict) -> dict:
        return {**base, **{k: merge(base[k], v) if isinstance(v, dict) and isinstance(base.get(k), dict) else v
                           for k, v in over.items()}}

    return from_dict(type(cfg), merge(plain(cfg), tomllib.loads(Path(path).read_text())), str(path))


def get_field(cfg: Any, key: str) -> Any:
    """The value of a dotted key, e.g. ``fitness.selection``."""
    for name in key.split("."):
        cfg = getattr(cfg, name)
    return cfg


def replace_fields(cfg: C, changes: dict[str, Any]) -> C:
    """``cfg`` with each dotted key's value replaced, all at once (a nested config is rebuilt once, so its checks
    see every change to it together)."""
    direct, nested = {}, {}
    for key, value in changes.items():
        head, _, rest = key.partition(".")
        if rest:
            nested.setdefault(head, {})[rest] = value
        else:
            direct[head] = value
    return dataclasses.replace(cfg, **direct, **{k: replace_fields(getattr(cfg, k), v) for k, v in nested.items()})


def override(cfg: C, *assignments: str, where: str = "--set") -> C:
    """``cfg`` with every ``KEY=VALUE`` applied at once: a dotted key of its (nested) fields, the text read as the
    field's type (``a,b`` for a tuple; ``null``, or nothing, for None where a field may be None). An unknown key
    names the valid ones, a value of the wrong type the expected type (EznasError)."""
    changes = dict(_assignment(cfg, a, where) for a in assignments)
    try:
        return replace_fields(cfg, changes)
    except EznasError as exc:
        raise EznasError(f"{where} {f' {where} '.join(assignments)}: {exc}") from None


def _assignment(cfg: Any, assignment: str, where: str) -> tuple[str, Any]:
    """``KEY=VALUE`` as (key, the value as the field's type)."""
    key, sep, text = assignment.partition("=")
    key = key.strip()
    if not sep or not key:
        raise EznasError(f"{where} {assignment!r}: expected KEY=VALUE, e.g. {where} seed=1")
    node, annotation = cfg, ""
    for depth, name in enumerate(parts := key.split(".")):
        prefix = ".".join(parts[:depth])
        if not dataclasses.is_dataclass(node):
            raise EznasError(f"{where} {key}: unknown key {key!r} ({prefix} is a value, not a table of keys)")
        fields = {f.name: f for f in dataclasses.fields(node)}
        if name not in fields:
            valid = [f"{prefix}.{n}" if prefix else n for n in fields]
            raise EznasError(f"{where} {key}: unknown key {key!r}; valid: " + ", ".join(
                v + (".*" if dataclasses.is_dataclass(get_field(cfg, v)) else "") for v in valid))
        node, annotation = getattr(node, name), str(fields[name].type)
    if dataclasses.is_dataclass(node):
        first = dataclasses.fields(node)[0].name
        raise EznasError(f"{where} {key}: a table; set its keys, e.g. {where} {key}.{first}=...")
    return key, _parse(text.strip(), node, annotation, f"{where} {key}")


_TRUE, _FALSE = ("true", "yes", "on", "1"), ("false", "no", "off", "0")


def _parse(text: str, current: Any, annotation: str, where: str) -> Any:
    """``text`` as a field of this annotation (int, float, str, bool, tuple of str, each maybe ``| None``)."""
    base = annotation.replace(" | None", "").strip()
    optional = base != annotation.strip()
    if optional and text.lower() in ("", "null"):
        return None
    if isinstance(current, tuple) or base.startswith("tuple"):
        items = tuple(t.strip() for t in text.split(",") if t.strip())
        if base.startswith("tuple[float"):
            try:
                return tuple(float(t) for t in items)
            except ValueError:
                raise EznasError(f"{where}: expected comma-separated numbers, got {text!r}") from None
        return items
    kind = _SCALARS.get(base)
    try:
        if kind is bool:
            if text.lower() not in _TRUE + _FALSE:
                raise ValueError(text)
            return text.lower() in _TRUE
        if kind is not None:
            return kind(text)
    except ValueError:
        pass
    expected = {"bool": "bool (true or false)"}.get(base, base) + (" or null" if optional else "")
    raise EznasError(f"{where}: expected {expected}, got {text!r}")
