"""eznas's discovered proxies, by name: the winners of the default ``evolve.py`` runs, registered like any proxy
(``verify_scores.py --proxy discovered``, ``search.py --proxy discovered``, ``eznas.score_pool(models, images,
proxies=("discovered",))``, a ranker's features).

``discovered.json`` beside this file holds them with their provenance: the program, the run's GP seed, tasks
and settings, its selection and validation fitness per task and its test figures. It is written by
``benchmarks/bench_discovery.py --part ship`` from that benchmark's results, never by hand:
``discovered_s<seed>`` is GP seed <seed>'s winner and ``discovered`` the one of them with the best validation
fitness (the runs' own criterion; never a test figure). The registry loads this module through the
``eznas.proxies`` entry point (see :mod:`eznas.registry`), so the proxies layer never imports gp.
"""
from __future__ import annotations

import json
from dataclasses import replace
from functools import lru_cache
from pathlib import Path
from typing import Any

from eznas.errors import DataError
from eznas.gp.as_proxy import program_call
from eznas.proxies.base import PROXIES, list_proxies

SHIPPED = Path(__file__).with_name("discovered.json")
FIELDS = {"name": str, "program": str, "gp_seed": int, "tasks": list, "signal": str, "noise_seed": int,
          "validation_fitness": float, "source": str}


def shipped(path: Path = SHIPPED) -> list[dict[str, Any]]:
    """The shipped entries (a DataError naming the file and the first bad field)."""
    try:
        entries = json.loads(path.read_text())["proxies"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise DataError(f"{path}: no readable list 'proxies' ({exc})") from None
    for i, entry in enumerate(entries):
        for name, kind in FIELDS.items():
            value = entry.get(name) if isinstance(entry, dict) else None
            if not isinstance(value, (int, float) if kind is float else kind) or isinstance(value, bool):
                raise DataError(f"{path}: proxies[{i}].{name} is missing or not a {kind.__name__}")
    return entries


def describe(entry: dict[str, Any]) -> str:
    """One line: what it is and where it comes from (the proxy's listed doc)."""
    test = "; ".join(f"{task} rho {m['spearman']:.3f}" for task, m in entry.get("test", {}).items())
    alias = f" (= {entry['default_of']})" if entry.get("default_of") else ""
    return (f"discovered by eznas{alias}: the winner of the default evolve run, GP seed {entry['gp_seed']}, on "
            f"{', '.join(entry['tasks'])}; validation fitness {entry['validation_fitness']:.3f}"
            + (f"; test (archs no run read): {test}" if test else "") + f"; provenance: {entry['source']}")


@lru_cache(maxsize=1)
def _shipped() -> tuple[dict[str, Any], ...]:
    """The package's shipped entries, read once."""
    return tuple(shipped())


def names() -> list[str]:
    """The shipped proxies' names (the default ``discovered`` first)."""
    return [entry["name"] for entry in _shipped()]


def hand_made() -> list[str]:
    """The registered proxies other than the discovered ones (the baselines a discovered proxy is judged by)."""
    discovered = set(names())
    return [n for n in list_proxies() if n not in discovered]


def provenance(name: str) -> dict[str, Any]:
    """A shipped proxy's entry: its program, run settings and figures."""
    for entry in _shipped():
        if entry["name"] == name:
            return entry
    raise KeyError(f"no discovered proxy {name!r}; shipped: {', '.join(names())}")


def register() -> None:
    """Register every shipped proxy (the ``eznas.proxies`` entry point)."""
    for entry in _shipped():
        call = program_call(entry["program"], entry["signal"], entry["noise_seed"])
        PROXIES.register(entry["name"])(replace(call.proxy, name=entry["name"], doc=describe(entry), parts=call.parts))
