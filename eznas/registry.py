"""One registry pattern for proxies, search spaces and primitives (timm / zero-cost-nas style).

    PROXIES = Registry("proxy")

    @PROXIES.register("synflow")
    def synflow(probe): ...

    PROXIES.get("synflow")     # the registered object
    PROXIES.names("*flow")     # sorted names, fnmatch filter

A registry made with ``plugins=GROUP`` also holds what installed packages register through that entry-point
group (``[project.entry-points."eznas.proxies"] mine = "mypackage.proxies"``): on its first use, each entry
point is loaded (a module registers at import; a callable it names is called). eznas ships its discovered
proxies that way (``eznas.gp.discovered``), so the layers below gp never import it. Modules named in
``$EZNAS_PLUGINS`` (comma-separated; what a command's ``--plugin MODULE`` sets, so its worker processes see
them too) are imported at the first use of any registry.

``Valid`` rules (``at_least(1)``, ``above(0)``, or your own) say which values of an option are valid.
"""
from __future__ import annotations

import difflib
import fnmatch
import importlib
import os
from importlib.metadata import entry_points
from dataclasses import dataclass
from typing import Any, Callable, Generic, Iterator, Mapping, TypeVar

from eznas.errors import EznasError

T = TypeVar("T")
PLUGINS_ENV = "EZNAS_PLUGINS"
_imported_env: set[str] = set()  # the $EZNAS_PLUGINS modules imported in this process


def import_plugins(modules: str | None = None) -> None:
    """Import the comma-separated ``modules`` (default ``$EZNAS_PLUGINS``) not imported yet: what they register
    joins the registries (EznasError naming one that does not import)."""
    for name in filter(None, (m.strip() for m in (os.environ.get(PLUGINS_ENV, "") if modules is None else modules).split(","))):
        if name in _imported_env:
            continue
        _imported_env.add(name)
        try:
            importlib.import_module(name)
        except Exception as exc:  # noqa: BLE001 - named with the plugin
            _imported_env.discard(name)
            raise EznasError(f"plugin module {name!r} failed to import: {type(exc).__name__}: {exc}") from None


def doc_line(obj: object) -> str:
    """The first paragraph of an object's docstring, on one line (what a registry lists)."""
    return " ".join((getattr(obj, "__doc__", None) or "").split("\n\n")[0].split())


@dataclass(frozen=True)
class Valid:
    """A rule for an option's value: ``test(value)`` is true when it is valid; ``text`` says what is
    (it completes "must be ...", e.g. ">= 1")."""

    test: Callable[[Any], bool]
    text: str
    keys: tuple[str, ...] = ()  # for a rule over several options: those its message shows

    def __call__(self, value: Any) -> bool:
        try:
            return bool(self.test(value))
        except (TypeError, ValueError):
            return False


def at_least(low: float) -> Valid:
    return Valid(lambda v: v >= low, f">= {low:g}")


def above(low: float) -> Valid:
    return Valid(lambda v: v > low, f"> {low:g}")


def check_values(values: Mapping[str, Any], rules: Mapping[str, Valid], where: str = "",
                 name: Callable[[str], str] = str) -> None:
    """Raise EznasError for the first value that breaks its rule: "<where>: <name(key)> must be <rule>,
    got <value>". Absent and None values are not checked."""
    for key, rule in rules.items():
        value = values.get(key)
        if value is not None and not rule(value):
            raise EznasError(f"{where}{': ' if where else ''}{name(key)} must be {rule.text}, got {value}")


class UnknownNameError(KeyError):
    """A name that is not in a registry; the message lists the valid names."""

    def __str__(self) -> str:  # KeyError quotes its message; we want it plain
        return str(self.args[0])


class Registry(Generic[T]):
    """A typed name -> object table filled by a decorator."""

    def __init__(self, kind: str, plugins: str | None = None) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}
        self._plugins = plugins  # the entry-point group still to load (None once loaded, or when there is none)

    def _load_plugins(self) -> None:
        group, self._plugins = self._plugins, None  # first: a plugin that uses the registry sees it as it is
        for point in entry_points(group=group) if group else ():
            try:
                loaded = point.load()
                if callable(loaded):
                    loaded()
            except Exception as exc:  # noqa: BLE001 - named with the plugin
                raise EznasError(f"{self.kind} plugin {point.name} ({point.value}, entry-point group {group}) "
                                 f"failed to load: {type(exc).__name__}: {exc}") from None

    @property
    def items(self) -> dict[str, T]:
        if self._plugins:
            self._load_plugins()
        if os.environ.get(PLUGINS_ENV):
            import_plugins()
        return self._items

    def register(self, name: str) -> Callable[[T], T]:
        def decorator(obj: T) -> T:
            if name in self._items:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            self._items[name] = obj
            return obj

        return decorator

    def get(self, name: str) -> T:
        try:
            return self.items[name]
        except KeyError:
            close = difflib.get_close_matches(name, self.items, n=3)
            hint = f" (did you mean {', '.join(close)}?)" if close else ""
            raise UnknownNameError(
                f"unknown {self.kind} {name!r}{hint}; valid: {', '.join(self.names())}"
            ) from None

    def names(self, pattern: str = "*") -> list[str]:
        return sorted(n for n in self.items if fnmatch.fnmatchcase(n, pattern))

    def __contains__(self, name: object) -> bool:
        return name in self.items

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self.items)
