"""Export a program as a standalone PyTorch file that needs only ``torch`` (``best_proxy.py``).

The file carries the very source of the functions eznas scores with - the statistics collector
(:func:`eznas.stats.collect_tensors` and what it calls), the program's primitives and its aggregator,
and the scoring loop :func:`primitives.aggregate.aggregate_units` - found by following the names each
one uses, plus the program compiled to one Python expression over the units and network features. So ``best_proxy.score`` and
``verify_scores.py --program`` compute the same numbers by the same code.
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

from deap import gp

from eznas.errors import EznasError
from eznas.data import Batch
from eznas.features import network_features
from eznas.gp.program import Program, is_aggregator, is_pool_op, parse_program
from eznas.gp.pset import proxy_name
from eznas.proxies import Probe, get_proxy
from eznas.proxies.program import proxy_needs
from eznas.stats import collect_tensors, statistic
from primitives import PRIMITIVES
from primitives.aggregate import ProgramFailure, aggregate_units
from primitives.network import checked, each, log_ranks

OWN_PACKAGES = ("eznas", "primitives")
REGISTRATIONS = ("primitive", "register_proxy")
RESERVED = ("NAMES", "SIGNAL", "NOISE_SEED", "PERTURBATION", "SIGN", "PROXIES", "NEEDS", "PARTS", "POOL",
            "proxy_value", "part_value", "network_value", "network_values", "pool_scores", "measure", "score",
            "score_pool")


def program_expression(program: Program, units: str = "units", features: str = "features") -> str:
    """The program as one Python expression over the list ``units`` of each unit's named tensors and the
    dict ``features``, evaluated as ``Program.value`` does: statistics as float32, per-unit constants as
    0-d tensors, each aggregator through ``aggregate_units``, each network-level result checked finite."""
    tree = program.tree

    def unit(i: int) -> tuple[str, int]:
        node = tree[i]
        if isinstance(node, gp.Primitive):
            args, j = [], i + 1
            for _ in node.args:
                text, j = unit(j)
                args.append(text)
            return f"{PRIMITIVES.get(node.name).fn.__name__}({', '.join(args)})", j
        if isinstance(node.value, str):
            return f"statistic(t[{node.name!r}])", i + 1
        return f"torch.tensor({float(node.value)!r})", i + 1

    def net(i: int) -> str:
        node = tree[i]
        if isinstance(node, gp.Terminal):
            return f"{features}[{node.name!r}]" if isinstance(node.value, str) else repr(float(node.value))
        spec = PRIMITIVES.get(node.name)
        if is_aggregator(node):
            agg = spec.fn
            return (f"aggregate_units({units}, lambda i, t: {unit(i + 1)[0]}, {agg.unit.__name__}, "
                    f"{agg.combine.__name__}, {node.name!r})")
        args, j = [], i + 1
        for _ in node.args:
            args.append(net(j))
            j = program.stops[j]
        return f"checked({spec.fn.__name__}({', '.join(args)}), {node.name!r})"

    return net(0)


def pool_expression(program: Program, columns: str = "columns", n: str = "n") -> str:
    """A pool program's combination as one Python expression over ``columns`` (each frontier part's values on
    the ``n`` networks of the pool where every part is defined), evaluated as ``Program.pool_scores`` does:
    pool ops on whole columns, the other ops network by network (``each``), NaN where not defined."""
    tree, parts = program.tree, set(program.frontier())

    def pool(i: int) -> str:
        node = tree[i]
        if isinstance(node, gp.Terminal) and not isinstance(node.value, str):
            return f"[{float(node.value)!r}] * {n}"
        if program.key(i) in parts:
            return f"{columns}[{program.key(i)!r}]"
        args, j = [], i + 1
        for _ in node.args:
            args.append(pool(j))
            j = program.stops[j]
        fn = PRIMITIVES.get(node.name).fn
        if is_pool_op(node):
            return f"{fn.fn.__name__}({', '.join(args)})"
        return f"each({fn.__name__}, {node.name!r}, {', '.join(args)})"

    return pool(0)


def proxy_functions(terminals: Iterable[str]) -> dict[str, Any]:
    """The registered proxy function behind each proxy terminal (``zc_<proxy>``)."""
    return {t: get_proxy(proxy_name(t)).fn for t in terminals}


def check_exportable(terminals: Iterable[str]) -> None:
    """Raise EznasError naming the first proxy terminal whose proxy's code cannot be carried by an export."""
    for terminal, fn in proxy_functions(terminals).items():
        try:
            _closure([Probe, Batch, fn])
        except EznasError as exc:
            raise EznasError(f"proxy terminal {terminal}: {exc}") from None


def export_source(program: Program, *, signal: str, noise_seed: int, perturbation: float, doc: str) -> str:
    """A Python module with ``score_pool(nets, images, labels=None, seeds=None) -> list[float]`` for
    ``program`` and, unless it is a pool program, ``score(net, images, labels=None, seed=0) -> float``; a
    hybrid program's file also carries the registered proxies its proxy terminals read, with the Probe
    they run on (``seed``: the proxies' own random draws, as verify_scores seeds them per network)."""
    fns = [collect_tensors, network_features, aggregate_units, ProgramFailure, checked, statistic]
    for node in program.tree:
        if isinstance(node, gp.Primitive):
            fn = PRIMITIVES.get(node.name).fn
            fns += [fn.unit, fn.combine] if is_aggregator(node) else [fn.fn, each] if is_pool_op(node) else [fn]
    proxies = proxy_functions(program.proxies)
    if proxies:
        fns += [Probe, Batch, *proxies.values()]
    imports, defs = _closure(fns)
    needs = sorted(proxy_needs(program.proxies))
    proxy_lines = (
        f"PROXIES = {{{', '.join(f'{t!r}: {fn.__name__}' for t, fn in proxies.items())}}}  # proxy terminals\n"
        f"NEEDS = {needs!r}  # the shared pass they read\n") if proxies else ""
    proxy_code = '''
        probe = Probe(net, Batch(images, labels, 0), seed=seed)  # the proxy terminals, at their defaults
        probe.run(NEEDS)
        features.update({name: proxy_value(fn, probe) for name, fn in PROXIES.items()})''' if proxies else ""
    proxy_def = '''


def proxy_value(fn, probe: Probe) -> float:
    """A proxy terminal's value, NaN where its proxy fails (the program is then not defined)."""
    try:
        return float(fn(probe))
    except Exception:  # noqa: BLE001
        return math.nan
''' if proxies else ""
    if program.is_pool:
        parts = program.frontier()
        values = "".join(f"\n        {k!r}: part_value(lambda: {program_expression(parse_program(k))})," for k in parts)
        program_code = f'''

def part_value(value) -> float:
    """A part's value on one network, NaN where it is not defined."""
    try:
        v = value()
    except ProgramFailure:
        return math.nan
    return v if math.isfinite(v) else math.nan


def network_values(units: list[dict[str, torch.Tensor]], features: dict[str, float]) -> dict[str, float]:
    """The program's per-network parts on one network's units and features (NaN where one is not defined)."""
    return {{{values}
    }}


def pool_scores(rows: list[dict[str, float]]) -> list[float]:
    """The scores of a pool from each network's ``network_values``: a network where a part is not defined
    gets NaN and takes no part; net_rank ranks among the others."""
    keep = [i for i, row in enumerate(rows) if all(math.isfinite(row[k]) for k in PARTS)]
    n = len(keep)
    columns = {{k: [rows[i][k] for i in keep] for k in PARTS}}
    values = {pool_expression(program)}
    out = [math.nan] * len(rows)
    for i, v in zip(keep, values):
        out[i] = SIGN * v if math.isfinite(v) else math.nan
    return out


def score(net: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor | None = None, seed: int = 0) -> float:
    """Not defined for one network: this program ranks networks among a pool (net_rank); use score_pool."""
    raise ValueError("this program is pool-level (net_rank ranks a network among those scored together): "
                     "use score_pool(nets, images, labels)")
'''
        pool_code = "pool_scores([network_values(*measure(net, images, labels, s)) for net, s in zip(nets, seeds)])"
    else:
        program_code = f'''

def network_value(units: list[dict[str, torch.Tensor]], features: dict[str, float]) -> float:
    """The program on one network's units (their named tensors) and features; raises ProgramFailure
    where it is not defined."""
    return {program_expression(program)}


def score(net: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor | None = None, seed: int = 0) -> float:
    """Score ``net`` on one batch (higher is better; NaN where the program is not defined). The statistics
    come from train mode; labels are needed only for the cross-entropy signal; ``seed`` seeds the proxy
    terminals' own random draws (a program without them ignores it)."""
    try:
        value = SIGN * network_value(*measure(net, images, labels, seed))
    except ProgramFailure:
        return math.nan
    return value if math.isfinite(value) else math.nan
'''
        pool_code = "[score(net, images, labels, s) for net, s in zip(nets, seeds)]"
    body = f'''
{proxy_lines}NAMES = {tuple(sorted(program.terminals))!r}
SIGNAL = {signal!r}
NOISE_SEED = {noise_seed!r}
PERTURBATION = {perturbation!r}
SIGN = {program.sign!r}
POOL = {program.is_pool!r}  # a pool program: its score of a network depends on the networks scored with it
{f"PARTS = {tuple(program.frontier())!r}  # its per-network parts" + chr(10) if program.is_pool else ""}{proxy_def}

def measure(net: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor | None = None, seed: int = 0
            ) -> tuple[list[dict[str, torch.Tensor]], dict[str, float]]:
    """One network's units (the named statistics of each, from train mode on one batch) and features;
    labels are needed only for the cross-entropy signal; ``seed`` seeds the proxy terminals' own random
    draws (a program without them ignores it)."""
    if labels is None:
        labels = torch.zeros(images.shape[0], dtype=torch.long, device=images.device)
    was_training = net.training
    try:
        units = [t for _, t in collect_tensors(net.train(), images, labels, NAMES, SIGNAL, NOISE_SEED, PERTURBATION)]
        features = network_features(net, images, len(units)){proxy_code}
    finally:
        net.train(was_training)
    return units, features
{program_code}

def score_pool(nets: list[torch.nn.Module], images: torch.Tensor, labels: torch.Tensor | None = None,
               seeds: list[int] | None = None) -> list[float]:
    """Score networks together on one batch (higher is better; NaN where not defined); ``seeds``: each
    network's proxy-terminal seed (default 0). For a pool program a network's score depends on the pool."""
    seeds = [0] * len(nets) if seeds is None else list(seeds)
    return {pool_code}
'''
    head = [f'"""{doc.strip()}\n"""', "from __future__ import annotations\n",
            *sorted(imports, key=lambda line: (line.startswith("from"), line))]
    return "\n".join(head) + "".join("\n\n\n" + d for d in defs) + "\n\n" + body


def _closure(roots: Iterable[Any]) -> tuple[set[str], list[str]]:
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
