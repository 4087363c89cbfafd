"""Read a pandas DataFrame pickle safely: the globals it would import are read from its opcodes, without
running it, and any outside a DataFrame's allow-list stop it before it is unpickled."""
from __future__ import annotations

import pickletools
from pathlib import Path
from typing import Any

from eznas.errors import DataError

# What a pandas DataFrame pickle (pandas 0.2x to 3.x) may import; no function that reads files or evaluates.
_PICKLE_MODULE_PREFIXES = (
    "pandas.core.frame", "pandas.core.series", "pandas.core.internals", "pandas.core.indexes", "pandas.core.index",
    "pandas.core.arrays", "pandas.core.dtypes", "pandas.arrays", "pandas._libs.internals", "pandas._libs.arrays",
    "pandas._libs.tslibs",
)
_PICKLE_NAMES = {
    *(("pandas", n) for n in ("DataFrame", "Series", "Index", "RangeIndex", "MultiIndex", "CategoricalDtype",
                              "Categorical", "StringDtype", "Int64Dtype", "Float64Dtype", "BooleanDtype")),
    ("__builtin__", "slice"), ("__builtin__", "object"), ("__builtin__", "set"), ("__builtin__", "frozenset"),
    ("numpy", "dtype"), ("numpy", "ndarray"),
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
    ("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer"),
    ("builtins", "slice"), ("builtins", "object"), ("builtins", "set"), ("builtins", "frozenset"),
    ("builtins", "complex"), ("builtins", "bytearray"), ("_codecs", "encode"),
    ("copyreg", "_reconstructor"), ("collections", "OrderedDict"),
}
_PICKLE_STRING_OPS = {"SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8", "UNICODE", "STRING", "BINSTRING", "SHORT_BINSTRING"}
_MARK = object()


def pickle_globals(data: bytes) -> set[tuple[str, str]]:
    """The (module, name) globals a pickle would import, read from its opcodes without running it.

    The stack is simulated as in ``pickletools.dis``, with the value of every pushed string kept, so
    the module and name that a protocol-4 ``STACK_GLOBAL`` pops are known.
    """
    found: set[tuple[str, str]] = set()
    stack: list[Any] = []  # a str for each pushed string, _MARK for marks, None for anything else
    memo: dict[int, Any] = {}
    for op, arg, _ in pickletools.genops(data):
        name = op.name
        if name in ("GLOBAL", "INST"):
            module, _, attr = str(arg).partition(" ")
            found.add((module, attr))
        elif name == "STACK_GLOBAL":
            module, attr = stack[-2:] if len(stack) >= 2 else (None, None)
            if not (isinstance(module, str) and isinstance(attr, str)):
                raise DataError("pickle has a STACK_GLOBAL whose name cannot be read without running it")
            found.add((module, attr))
        elif name in ("MEMOIZE", "PUT", "BINPUT", "LONG_BINPUT"):  # they leave the stack as it is
            memo[len(memo) if name == "MEMOIZE" else int(arg)] = stack[-1] if stack else None
            continue
        before = op.stack_before
        if pickletools.markobject in before or (name == "POP" and stack and stack[-1] is _MARK):
            while stack and stack.pop() is not _MARK:
                pass
            before = before[: before.index(pickletools.markobject)] if pickletools.markobject in before else []
        if before:
            del stack[max(0, len(stack) - len(before)):]
        if name in ("GET", "BINGET", "LONG_BINGET"):
            stack.append(memo.get(int(arg)))
        elif name in _PICKLE_STRING_OPS:
            stack.append(arg.decode("latin1") if isinstance(arg, bytes) else arg)
        else:
            stack.extend(_MARK if t is pickletools.markobject else None for t in op.stack_after)
    return found


def read_pandas_pickle(path: Path):  # noqa: ANN202 - a DataFrame
    import pandas as pd

    bad = sorted(
        f"{m}.{n}" for m, n in pickle_globals(path.read_bytes())
        if (m, n) not in _PICKLE_NAMES and not any(m == p or m.startswith(p + ".") for p in _PICKLE_MODULE_PREFIXES)
    )
    if bad:
        raise DataError(f"{path}: refusing to unpickle, it would import {', '.join(bad)}")
    frame = pd.read_pickle(path)
    if not isinstance(frame, pd.DataFrame):
        raise DataError(f"{path}: expected a pandas DataFrame, got {type(frame).__name__}")
    return frame
