"""The source an exported file carries: a function or class of eznas and every function or class of ours it
uses, found by following the names each one uses, with the import lines for the rest.

    imports, defs = closure([collect_tensors, aggregate_units])

Registration decorators (``@primitive``, ``@register_proxy``, ``@register_init``) are dropped: the file has
no registry. A name that cannot be carried (two definitions of one name, one that would shadow a name the
file needs, a value that is neither an import nor a function of ours, source on disk that is not the code
this process runs) raises EznasError here, not in the user's file.
"""
from __future__ import annotations

import __future__
import ast
import builtins
import inspect
import sys
import textwrap
import types
from typing import Any, Iterable

from eznas.errors import EznasError

OWN_PACKAGES = ("eznas",)  # its language included: eznas.primitives
REGISTRATIONS = ("primitive", "register_proxy", "register_init")
RESERVED = ("CALL", "POOL", "LABELS", "UNITS", "STATISTICS", "NETWORK_TERMINALS", "REQUIRES", "PROGRAM", "SIGNAL",
            "NOISE_SEED", "PERTURBATION", "SIGN", "PASSES", "PARTS", "PROXIES", "ProxyError", "check_inputs",
            "proxy_value", "measure", "part_value", "network_value", "network_values", "pool_scores", "score",
            "score_pool", "pool_seeds", "private", "probe")  # the names the exported file defines itself


def closure(roots: Iterable[Any]) -> tuple[set[str], list[str]]:
    """Import lines and definition sources for ``roots`` and every function or class of our own packages
    they use, dependencies first; a name that cannot be carried is an error here, not in the user's file."""
    imports: set[str] = {"import math", "import torch"}
    defs: dict[str, str] = {}
    seen: dict[str, Any] = {}

    def visit(obj: Any) -> None:
        name = obj.__name__
        if name in seen:
            if seen[name] is not obj:
                raise EznasError(f"cannot export: two definitions named {name!r}")
            return
        seen[name] = obj
        if name in RESERVED or hasattr(builtins, name):
            raise EznasError(f"cannot export: a definition named {name!r} would shadow a name the file needs")
        source = textwrap.dedent(inspect.getsource(obj))
        node = ast.parse(source).body[0]
        source = _without_registration(node, source)
        node = ast.parse(source).body[0]
        if inspect.isfunction(obj) and not _is_running_code(inspect.unwrap(obj), source):
            raise EznasError(f"cannot export: the source of {obj.__module__}.{name} on disk is not the code this "
                             "process runs (the package changed after it started); export from a fresh process")
        namespace = vars(sys.modules[obj.__module__])
        local = {a.arg for a in ast.walk(node) if isinstance(a, ast.arg)} | \
            {n.id for n in ast.walk(node) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)}
        for used in sorted({n.id for n in ast.walk(node) if isinstance(n, ast.Name)} - local):
            if used not in namespace:
                continue  # a local variable or a builtin
            value = namespace[used]
            if _own(value):
                visit(value)
            else:
                imports.add(_import_line(used, value))
        defs[name] = source

    for root in roots:
        visit(root)
    return imports, list(defs.values())


def _is_running_code(fn: types.FunctionType, source: str) -> bool:
    """Whether ``source`` compiles to ``fn``'s code: the same names, locals, arguments and constants."""
    def signature(code: types.CodeType) -> tuple:
        return (code.co_names, code.co_varnames, code.co_argcount,
                tuple(c for c in code.co_consts if not isinstance(c, types.CodeType)))

    module = compile(source, "<export>", "exec", flags=__future__.annotations.compiler_flag, dont_inherit=True)
    compiled = [c for c in module.co_consts if isinstance(c, types.CodeType) and c.co_name == fn.__name__]
    return bool(compiled) and signature(compiled[0]) == signature(fn.__code__)


def _own(value: Any) -> bool:
    return (inspect.isfunction(value) or inspect.isclass(value)) and \
        value.__module__.split(".")[0] in OWN_PACKAGES


def _import_line(name: str, value: Any) -> str:
    if isinstance(value, types.ModuleType):
        full = value.__name__
        return f"import {full}" if full == name else f"import {full} as {name}"
    module = getattr(value, "__module__", None)
    qualname = getattr(value, "__qualname__", getattr(value, "__name__", None))
    if module and qualname and module.split(".")[0] not in OWN_PACKAGES \
            and getattr(sys.modules.get(module), qualname, None) is value:
        return f"from {module} import {qualname}" + ("" if qualname == name else f" as {name}")
    raise EznasError(f"cannot export: {name!r} ({type(value).__name__}) is neither an import nor a function of ours")


def _without_registration(node: ast.AST, source: str) -> str:
    """The definition's source without its ``@primitive(...)`` or ``@register_proxy(...)`` decorator (the
    file has no registry)."""
    lines = source.splitlines()
    drop = set()
    for dec in getattr(node, "decorator_list", []):
        call = dec.func if isinstance(dec, ast.Call) else dec
        if isinstance(call, ast.Name) and call.id in REGISTRATIONS:
            drop.update(range(dec.lineno - 1, dec.end_lineno))
    return "\n".join(line for k, line in enumerate(lines) if k not in drop)
