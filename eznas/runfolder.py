"""A run folder, one recipe for every command that writes one (verify, search, evolve): the guard that keeps a
new run out of a folder that holds one, the ``config.json`` a run writes (atomically) and reads back (through a
migration hook, :func:`as_used`: a setting newer than the run is what the run used), and the check that a
resumed run keeps its settings, except those its command declares may change (budgets, output paths). The
errors read the same in every command: ``--out DIR already holds a run (FILE): continue it with --resume DIR
...`` and ``--resume DIR: FLAG would change the run's KEY (A there, B now); a resumed run keeps its settings
(only ... may change)``."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

from eznas.errors import DataError, EznasError, reason
from eznas.io import write_json

CONFIG = "config.json"
OUT = "out"  # the setting that names the folder itself: never compared (a run named relative, then absolute)


def _flag(key: str) -> str:
    return f"--{key}"


def _as_saved(data: dict[str, Any]) -> dict[str, Any]:
    return data


def _equal(key: str, before: Any, now: Any) -> bool:
    return before == now


def jsonable(obj: Any) -> Any:
    """``obj`` as JSON holds it (tuples as lists, anything else as text): how settings are saved and compared."""
    return json.loads(json.dumps(obj, default=str))


def flat(settings: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested settings as dotted keys: ``{"fitness": {"selection": 200}}`` -> ``{"fitness.selection": 200}``."""
    out: dict[str, Any] = {}
    for key, value in settings.items():
        out.update(flat(value, f"{prefix}{key}.") if isinstance(value, dict) else {f"{prefix}{key}": value})
    return out


def as_used(defaults: Mapping[str, Any], before: Mapping[str, Any] | None = None
            ) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """The ``migrate`` hook of a command whose saved configs may predate some of its settings: a setting the
    saved config lacks is what the run used, its value in ``before`` (the table of what runs made before a
    setting existed used, where that is not the setting's default) or else its default now (``defaults``).
    Nested settings are filled key by key (a saved ``{"fitness": {...}}`` keeps its own keys)."""
    def migrate(saved: dict[str, Any]) -> dict[str, Any]:
        return _filled(_filled(jsonable(dict(defaults)), jsonable(dict(before or {}))), saved)

    return migrate


def _filled(base: dict[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    """``base`` with ``over``'s values, nested dicts merged key by key (``over`` wins)."""
    out = dict(base)
    for key, value in over.items():
        out[key] = _filled(out[key], value) if isinstance(out.get(key), dict) and isinstance(value, dict) else value
    return out


def _words(items: list[str]) -> str:
    return " and ".join([", ".join(items[:-1]), items[-1]] if len(items) > 1 else items)


@dataclass(frozen=True)
class RunFolder:
    """One command's run folder at ``path``.

    ``holds``: the files that mean it holds a run (the first found is named); ``may_change``: the settings
    (top-level keys) a resumed run may change; ``flag``: a setting's flag as errors name it (a changeable one:
    as the "only ... may change" words name it); ``migrate``: a saved config as the run used it; ``same``:
    whether a setting's saved and present values are the same (default ``==``, on JSON values)."""
    path: Path
    holds: tuple[str, ...] = (CONFIG,)
    may_change: tuple[str, ...] = ()
    flag: Callable[[str], str] = _flag
    migrate: Callable[[dict[str, Any]], dict[str, Any]] = _as_saved
    same: Callable[[str, Any, Any], bool] = _equal

    @property
    def config(self) -> Path:
        return Path(self.path) / CONFIG

    def held(self) -> str | None:
        """The first of ``holds`` in the folder: it holds a run (None: it holds none)."""
        return next((name for name in self.holds if (Path(self.path) / name).exists()), None)

    def guard(self, resume: bool) -> str | None:
        """:meth:`held`; a folder that holds a run is an error unless ``resume``."""
        held = self.held()
        if held and not resume:
            raise EznasError(f"--out {self.path} already holds a run ({held}): continue it with --resume "
                             f"{self.path} (same settings), or choose another --out")
        return held

    def read(self, name: str = CONFIG) -> dict[str, Any]:
        """The JSON object in the folder's file ``name``, as saved: FileNotFoundError when it is absent, one
        DataError line naming it when it is unreadable."""
        path = Path(self.path) / name
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            raise
        except (OSError, ValueError) as exc:
            raise DataError(f"--resume {self.path}: {path} is unreadable ({reason(exc)}); move it "
                            "aside to start again") from None
        if not isinstance(data, dict):
            raise DataError(f"--resume {self.path}: {path} is unreadable (not a JSON object); move it aside to "
                            "start again")
        return data

    def saved_config(self, migrated: bool = True) -> dict[str, Any]:
        """The run's config.json (through ``migrate`` unless not ``migrated``); its absence is an error."""
        try:
            data = self.read(CONFIG)
        except FileNotFoundError:
            raise EznasError(f"--resume {self.path}: no {CONFIG} there (not a run folder)") from None
        return self.migrate(data) if migrated else data

    def write_config(self, settings: Mapping[str, Any]) -> None:
        """config.json: the run's settings, written whole or not at all."""
        write_json(self.config, settings)

    def changed(self, before: Mapping[str, Any], now: Mapping[str, Any]) -> list[str]:
        """The settings (dotted keys: present ones first, then those only ``before`` has) whose values differ,
        except those that may change."""
        return [key for key, _, _ in self._differences(before, now)]

    def _differences(self, before: Mapping[str, Any], now: Mapping[str, Any]) -> list[tuple[str, Any, Any]]:
        """:meth:`changed`, each with its value in ``before`` and in ``now`` (flattened once)."""
        a, b = flat(jsonable(before)), flat(jsonable(now))
        return [(k, a.get(k), b.get(k)) for k in {**b, **a} if k.split(".")[0] not in (*self.may_change, OUT)
                and not self.same(k, a.get(k), b.get(k))]

    def check_resumed(self, before: Mapping[str, Any], now: Mapping[str, Any],
                      name: Callable[[str], str] | None = None) -> None:
        """A resumed run's settings ``now`` are the saved ``before`` but for those that may change; else the
        error names the first that differs, by ``name`` (default: its flag), and both its values."""
        if differences := self._differences(before, now):
            key, a, b = differences[0]
            rule = f" ({self.rule()})" if self.rule() else ""
            raise EznasError(f"--resume {self.path}: {(name or self.flag)(key)} would change the run's {key} "
                             f"({a!r} there, {b!r} now); a resumed run keeps its settings{rule}")

    def rule(self) -> str:
        """What a resumed run may change, in words: "only --budget and --time_budget may change" ("": nothing)."""
        free = [self.flag(k) for k in self.may_change if k != OUT]
        return f"only {_words(free)} may change" if free else ""
