"""One registry pattern for proxies, search spaces and primitives (timm / zero-cost-nas style).

    PROXIES = Registry("proxy")

    @PROXIES.register("synflow")
    def synflow(probe): ...

    PROXIES.get("synflow")     # the registered object
    PROXIES.names("*flow")     # sorted names, fnmatch filter

``Valid`` rules (``at_least(1)``, ``above(0)``, or your own) say which values of an option are valid.
"""
from __future__ import annotations

import difflib
import fnmatch
from dataclasses import dataclass
from typing import Any, Callable, Generic, Iterator, Mapping, TypeVar

from eznas.errors import EznasError

T = TypeVar("T")


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

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        def decorator(obj: T) -> T:
            if name in self._items:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            self._items[name] = obj
            return obj

        return decorator

    def get(self, name: str) -> T:
        try:
            return self._items[name]
        except KeyError:
            close = difflib.get_close_matches(name, self._items, n=3)
            hint = f" (did you mean {', '.join(close)}?)" if close else ""
            raise UnknownNameError(
                f"unknown {self.kind} {name!r}{hint}; valid: {', '.join(self.names())}"
            ) from None

    def names(self, pattern: str = "*") -> list[str]:
        return sorted(n for n in self._items if fnmatch.fnmatchcase(n, pattern))

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._items)
