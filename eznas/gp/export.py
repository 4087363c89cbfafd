"""Export a program as a standalone PyTorch file that needs only ``torch`` (``best_proxy.py``).

The file carries the very source of the functions eznas scores with - the statistics collector
(:func:`eznas.stats.collect_tensors` and what it calls), the program's primitives and its aggregator,
and the scoring loop :func:`eznas.primitives.aggregate.aggregate_units` - found by following the names each
one uses, plus the program compiled to one Python expression over the units and network features. So
``best_proxy.score`` and ``verify_scores.py --program`` compute the same numbers by the same code.

It scores by :mod:`eznas.api`'s protocol (it carries :func:`eznas.networks.private_copy`): each model on a
private copy, under a seeded and restored global random state, so it gives ``eznas.score`` /
``eznas.score_pool``'s numbers and leaves the model exactly as it was. It declares what the program needs
(:func:`requirements`: the call that works, pool or per-network, labels, statistics, network-level terminals,
what a model must have) in its docstring and as constants at its top, and raises its own ``ProxyError`` (one
line naming the requirement not met) where eznas would raise EznasError; it never returns NaN.
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

from eznas.data import Batch
from eznas.errors import EznasError, reason
from eznas.features import network_features
from eznas.networks import private_copy
from eznas.gp.program import Program, is_aggregator, is_pool_op, parse_program
from eznas.gp.pset import PROXY_PREFIX, proxy_name
from eznas.proxies import Probe, get_proxy
from eznas.gp.as_proxy import proxy_needs
from eznas.stats import collect_tensors, statistic
from eznas.primitives import PRIMITIVES
from eznas.primitives.aggregate import ProgramFailure, aggregate_units
from eznas.primitives.network import checked, each, log_ranks

OWN_PACKAGES = ("eznas",)  # its language included: eznas.primitives
REGISTRATIONS = ("primitive", "register_proxy", "register_init")
RESERVED = ("CALL", "POOL", "LABELS", "UNITS", "STATISTICS", "NETWORK_TERMINALS", "REQUIRES", "PROGRAM", "SIGNAL",
            "NOISE_SEED", "PERTURBATION", "SIGN", "PASSES", "PARTS", "PROXIES", "ProxyError", "check_inputs",
            "proxy_value", "measure", "part_value", "network_value", "network_values", "pool_scores", "score",
            "score_pool", "pool_seeds", "private", "probe")
# what the model and the batch must have for parts of a program (the exported file's REQUIRES)
UNIT_NEED = ("the model has a Conv2d layer, for the per-unit statistics (each chain of Conv2d layers is a unit; a "
             "model declaring unit_rule 'relu_conv_bn' or 'conv_bn' needs those patterns)")
SWAP_BATCH = "the batch has at most 53 images, for swap_units"
AZ_NEED = ("the model has at least two resolution stages (feature maps at two resolutions of more than one pixel) "
           "at this input size, or stem and cells modules, for the AZ-NAS terminals")
ACTIVATION_NEED = "the model calls activations (ReLU, GELU, SiLU, ...) on feature maps, for {}"
PROXY_NEEDS = {"az_expressivity": AZ_NEED, "az_progressivity": AZ_NEED, "az_trainability": AZ_NEED,
               "swap": ACTIVATION_NEED.format("zc_swap"), "reg_swap": ACTIVATION_NEED.format("zc_reg_swap"),
               "naswot": ACTIVATION_NEED.format("zc_naswot"),
               "grasp": "the model's operations have second derivatives, for zc_grasp",
               "sweetimator": "the model has a cells module list, for zc_sweetimator"}
CONSTANTS = {  # the exported file's constants: what each says
    "CALL": "the call that scores with this program",
    "POOL": "a pool program: a model's score depends on the models scored with it (call score_pool)",
    "LABELS": "whether labels are needed",
    "UNITS": "whether it reads per-unit statistics (a model without units cannot be scored)",
    "STATISTICS": "the per-unit statistics it reads (<stat>_<pass>: D data, N noise, P perturbed data)",
    "NETWORK_TERMINALS": "the network-level terminals it reads (features; zc_*: a registered proxy's score)",
    "REQUIRES": "what the model and the batch must have (else ProxyError names what is missing)",
    "PROGRAM": "the program, as eznas.score(..., programs=(PROGRAM,)) takes it",
    "SIGNAL": "the backward signal",
    "NOISE_SEED": "seeds the N and P passes' noise (eznas.score's seed)",
    "PERTURBATION": "P = D + PERTURBATION * N(0, 1)",
    "SIGN": "-1: the program's value is negated",
    "PASSES": "the shared pass the proxy terminals read",
    "PARTS": "a pool program's per-network parts",
}
PROTOCOL = """Each model is scored on a private copy (copy.deepcopy), in train mode, with every parameter taking
gradients, on the device of its first parameter, with torch's global random state seeded by the seed inside
and restored after, as eznas.score does: the model itself is left exactly as it was (weights, buffers such as
BatchNorm running statistics and num_batches_tracked, train/eval mode, requires_grad and .grad). Where a
requirement is not met the call raises ProxyError (a ValueError) with one line naming it; it never returns NaN."""


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


def requirements(program: Program, signal: str) -> dict[str, Any]:
    """What ``program`` needs of its caller, as its exported file declares it (plain constants): the call
    that works, whether it is a pool program, whether labels are needed, the per-unit statistics and the
    network-level terminals it reads, and what the model and the batch must have."""
    proxies = [get_proxy(proxy_name(t)) for t in program.proxies]
    units = bool(program.aggregates())
    requires = [UNIT_NEED] if units else []
    if any(isinstance(n, gp.Primitive) and n.name == "swap_units" for n in program.tree):
        requires.append(SWAP_BATCH)
    requires += list(dict.fromkeys(PROXY_NEEDS[p.name] for p in proxies if p.name in PROXY_NEEDS))
    labels = signal == "ce" or any(p.labels for p in proxies)
    args = "images, labels" if labels else "images"
    named = {n.name for n in program.tree if isinstance(n, gp.Terminal) and isinstance(n.value, str)}
    return {"CALL": f"score_pool(models, {args})" if program.is_pool else f"score(model, {args})",
            "POOL": program.is_pool, "LABELS": labels, "UNITS": units,
            "STATISTICS": tuple(sorted(program.terminals)),
            "NETWORK_TERMINALS": tuple(sorted(named - program.terminals)), "REQUIRES": tuple(requires)}


def export_source(program: Program, *, signal: str, noise_seed: int, perturbation: float, doc: str) -> str:
    """A Python module that needs only torch, with ``score_pool(models, images, labels=None, seeds=None) ->
    list[float]`` for ``program`` and, unless it is a pool program, ``score(model, images, labels=None,
    seed=0) -> float``. It declares what the program needs (``requirements``) at the top, in its docstring
    and as constants; it scores as :mod:`eznas.api` does (a private copy of each model, the same numbers as
    ``eznas.score`` / ``eznas.score_pool`` with ``seed`` = ``noise_seed``), and where a requirement is not met
    it raises ``ProxyError`` with one line naming it. A hybrid program's file also carries the registered
    proxies its proxy terminals read, with the Probe they run on."""
    fns = [private_copy, reason, collect_tensors, network_features, aggregate_units, ProgramFailure, checked,
           statistic]
    for node in program.tree:
        if isinstance(node, gp.Primitive):
            fn = PRIMITIVES.get(node.name).fn
            fns += [fn.unit, fn.combine] if is_aggregator(node) else [fn.fn, each] if is_pool_op(node) else [fn]
    proxies = proxy_functions(program.proxies)
    if proxies:
        fns += [Probe, Batch, *proxies.values()]
    imports, defs = _closure(fns)
    needs = requirements(program, signal)
    constants = {**needs, "SIGNAL": signal, "NOISE_SEED": noise_seed, "PERTURBATION": perturbation,
                 "SIGN": program.sign, "PROGRAM": str(program)}
    if proxies:
        constants["PASSES"] = sorted(proxy_needs(program.proxies))
    if program.is_pool:
        constants["PARTS"] = tuple(program.frontier())
    declared = "\n".join(f"# {CONSTANTS[k]}\n{k} = {v!r}" for k, v in constants.items())
    head = [_docstring(doc, program, signal, needs), "from __future__ import annotations\n",
            *sorted(imports, key=lambda line: (line.startswith("from"), line)),
            f"\n# What this program needs and how it collects its statistics (see the docstring)\n{declared}"]
    body = (_common_code(_labels_reason(program, signal) if needs["LABELS"] else "", proxies)
            + (_pool_code(program) if program.is_pool else _network_code(program)))
    return "\n".join(head) + "".join("\n\n\n" + d for d in defs) + "\n" + body


def _labels_reason(program: Program, signal: str) -> str:
    if signal == "ce":
        return "its backward signal is the cross-entropy with the labels"
    users = [t for t in program.proxies if get_proxy(proxy_name(t)).labels]
    return f"{', '.join(users)} read{'s' if len(users) == 1 else ''} a cross-entropy loss"


def _docstring(doc: str, program: Program, signal: str, needs: dict[str, Any]) -> str:
    """The file's docstring: the caller's ``doc``, then the call that works and what the program needs."""
    fn = needs["CALL"].split("(")[0]
    usage = ("# models: a list scored together; one float per model, higher is better" if needs["POOL"] else
             "# one float, higher is better (score_pool(models, ...) scores each model alone)")
    kind = ("a pool program: a model's score ranks it among the models scored together (net_rank), so call "
            "score_pool; score() raises" if needs["POOL"] else
            "a per-network program: score() scores one model, score_pool() a list of them, each alone")
    labels = (f"needed, (B,) class indices: {_labels_reason(program, signal)}" if needs["LABELS"] else
              "not needed (the backward signal is the sum of the logits)")
    terminals = [f"{t} (proxy terminal: {get_proxy(proxy_name(t)).doc.rstrip('.')})" if t.startswith(PROXY_PREFIX) else
                 f"{t} (network feature)" for t in needs["NETWORK_TERMINALS"]]
    items = [f"kind: {kind}", f"labels: {labels}",
             f"per-unit statistics: {', '.join(needs['STATISTICS']) or 'none'}",
             f"network-level terminals: {'; '.join(terminals) or 'none'}",
             "images: a (B, C, H, W) float batch, normalised as the model expects", *needs["REQUIRES"]]
    lines = [doc.strip(), "", "Usage (needs only PyTorch):", "", f"    from best_proxy import {fn}",
             f"    {needs['CALL']}   {usage}", "", "What it needs (the constants CALL to REQUIRES below say the same):",
             "", *(textwrap.fill(item, 110, initial_indent="- ", subsequent_indent="  ") for item in items), "",
             PROTOCOL]
    text = "\n".join(lines).replace("\\", "\\\\").replace('"""', '\\"\\"\\"')
    return f'"""{text}\n"""'


def _common_code(labels_reason: str, proxies: dict[str, Any]) -> str:
    """The file's error class, input checks and ``measure`` (one model's units and features, on a private
    copy under a seeded, restored global random state, in the order eznas.score computes them)."""
    table = f"PROXIES = {{{', '.join(f'{t!r}: {fn.__name__}' for t, fn in proxies.items())}}}  # proxy terminals\n\n\n"
    proxy_def = '''

def proxy_value(name: str, fn, probe: Probe) -> float:
    """A proxy terminal's value; ProxyError naming it where its proxy fails or its value is not finite."""
    try:
        value = float(fn(probe))
    except Exception as exc:  # noqa: BLE001 - named with the terminal
        raise ProxyError(f"{name} (a proxy terminal) does not apply to {type(probe.net).__name__}: "
                         f"{reason(exc)}") from None
    if not math.isfinite(value):
        raise ProxyError(f"{name} (a proxy terminal) is {value} on {type(probe.net).__name__}")
    return value
'''
    probe = '''
            probe = Probe(private, Batch(x, y, int(y.max()) + 1 if labels is not None else 1), seed=seed)
            probe.run(PASSES)'''
    update = "\n        features.update({name: proxy_value(name, fn, probe) for name, fn in PROXIES.items()})"
    return f'''

{table if proxies else ""}class ProxyError(ValueError):
    """This program cannot score this input: the message (one line) names the requirement not met."""


def check_inputs(net: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor | None) -> None:
    """ProxyError for a model, images or labels this program cannot take."""
    if not isinstance(net, torch.nn.Module):
        raise ProxyError(f"expected a torch.nn.Module, got {{type(net).__name__}}")
    if not isinstance(images, torch.Tensor) or images.dim() != 4 or not images.is_floating_point():
        raise ProxyError(f"images must be a float tensor of shape (B, C, H, W), got "
                         f"{{getattr(images, 'shape', type(images).__name__)}}")
    if labels is None and LABELS:
        raise ProxyError({f"this program needs labels ({labels_reason}): pass labels, (B,) class indices"!r})
    if labels is not None and (not isinstance(labels, torch.Tensor) or labels.dtype != torch.long
                               or labels.shape != images.shape[:1]):
        raise ProxyError(f"labels must be a long tensor of shape ({{len(images)}},), got "
                         f"{{getattr(labels, 'dtype', type(labels).__name__)}} {{tuple(getattr(labels, 'shape', ()))}}")
{proxy_def if proxies else ""}

def measure(net: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor | None = None, seed: int = 0
            ) -> tuple[list[dict[str, torch.Tensor]], dict[str, float]]:
    """One model's units (each unit's named statistics, from train mode on one batch) and features, on a
    private copy: ``net`` itself is left exactly as it was. torch's global random state is seeded by
    ``seed`` inside and restored after; ``seed`` also seeds the proxy terminals' own random draws (as
    eznas.score does). Raises ProxyError naming what the model or the input lacks."""
    check_inputs(net, images, labels)
    device = next((p.device for p in net.parameters()), torch.device("cpu"))
    y = labels if labels is not None else torch.zeros(len(images), dtype=torch.long)
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(seed)
        private = private_copy(net)
        x, y = images.to(device), y.to(device)
        try:{probe if proxies else ""}
            units = [t for _, t in collect_tensors(private, x, y, STATISTICS, SIGNAL, NOISE_SEED, PERTURBATION)]
            features = network_features(private, x, len(units))
        except Exception as exc:  # noqa: BLE001 - one line, with the model's name
            raise ProxyError(f"{{type(net).__name__}}: the forward/backward pass failed: {{reason(exc)}}") from None
        if UNITS and not units:
            raise ProxyError(f"{{type(net).__name__}} has no unit: this program reads per-unit statistics, so the "
                             "model needs a Conv2d layer (a chain of them is a unit)"){update if proxies else ""}
    return units, features
'''


def _network_code(program: Program) -> str:
    """A per-network program's ``network_value``, ``score`` and ``score_pool`` (each model alone)."""
    return NETWORK_CODE.replace("EXPRESSION", program_expression(program)) + POOL_SEEDS


NETWORK_CODE = '''

def network_value(units: list[dict[str, torch.Tensor]], features: dict[str, float]) -> float:
    """The program on one model's units (their named tensors) and features; raises ProgramFailure where it
    is not defined."""
    return EXPRESSION


def score(net: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor | None = None, seed: int = 0) -> float:
    """Score ``net`` on one batch (higher is better): ``eznas.score(net, images, labels, programs=(PROGRAM,),
    signal=SIGNAL, seed=seed)`` where ``seed`` is NOISE_SEED; ``net`` is left exactly as it was. Raises
    ProxyError with one line naming the requirement not met; never returns NaN."""
    units, features = measure(net, images, labels, seed)
    try:
        value = SIGN * network_value(units, features)
    except ProgramFailure as exc:
        raise ProxyError(f"the program is not defined on {type(net).__name__}: {exc}") from None
    if not math.isfinite(value):
        raise ProxyError(f"the program's value is {value} on {type(net).__name__}")
    return value


def score_pool(nets: list[torch.nn.Module], images: torch.Tensor, labels: torch.Tensor | None = None,
               seeds: list[int] | None = None) -> list[float]:
    """Each of ``nets`` scored alone by ``score`` (``seeds``: each one's seed, default 0)."""
    out = []
    for i, (net, seed) in enumerate(zip(nets, pool_seeds(nets, seeds))):
        try:
            out.append(score(net, images, labels, seed))
        except ProxyError as exc:
            raise ProxyError(f"model {i}: {exc}") from None
    return out
'''


def _pool_code(program: Program) -> str:
    """A pool program's ``network_values`` (its parts on one model), ``pool_scores``, ``score_pool`` and a
    ``score`` that says to call score_pool."""
    values = "".join(f"\n        {k!r}: part_value({i}, lambda: {program_expression(parse_program(k))}),"
                     for i, k in enumerate(program.frontier()))
    return f'''

def part_value(i: int, value) -> float:
    """The value of the program's part PARTS[i] on one model; ProxyError where it is not defined there."""
    try:
        v = value()
    except ProgramFailure as exc:
        raise ProxyError(f"the program's part PARTS[{{i}}] is not defined on this model: {{exc}}") from None
    if not math.isfinite(v):
        raise ProxyError(f"the program's part PARTS[{{i}}] is {{v}} on this model")
    return v


def network_values(units: list[dict[str, torch.Tensor]], features: dict[str, float]) -> dict[str, float]:
    """The program's per-network parts on one model's units and features."""
    return {{{values}
    }}


def pool_scores(rows: list[dict[str, float]]) -> list[float]:
    """The scores of a pool from each model's ``network_values`` (net_rank ranks among the pool)."""
    n = len(rows)
    columns = {{k: [row[k] for row in rows] for k in PARTS}}
    values = [SIGN * v for v in {pool_expression(program)}]
    bad = [str(i) for i, v in enumerate(values) if not math.isfinite(v)]
    if bad:
        raise ProxyError(f"the program has no finite pool score for model(s) {{', '.join(bad)}}")
    return values


def score(net: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor | None = None, seed: int = 0) -> float:
    """Not defined for one model: this program ranks a model among a pool (net_rank); use score_pool."""
    raise ProxyError("this program is pool-level (net_rank ranks a model among the models scored together): "
                     f"use {{CALL}} with a list of models")


def score_pool(nets: list[torch.nn.Module], images: torch.Tensor, labels: torch.Tensor | None = None,
               seeds: list[int] | None = None) -> list[float]:
    """Score ``nets`` together on one batch (higher is better): ``eznas.score_pool(nets, images, labels,
    programs=(PROGRAM,), signal=SIGNAL, seed=s)`` where every seed is s = NOISE_SEED (``seeds``: each model's
    seed, default 0); the models are left exactly as they were. A model's score depends on the pool. Raises
    ProxyError with one line naming the model and the requirement not met; never returns NaN."""
    rows = []
    for i, (net, seed) in enumerate(zip(nets, pool_seeds(nets, seeds))):
        try:
            rows.append(network_values(*measure(net, images, labels, seed)))
        except ProxyError as exc:
            raise ProxyError(f"model {{i}}: {{exc}}") from None
    return pool_scores(rows)
''' + POOL_SEEDS


POOL_SEEDS = '''

def pool_seeds(nets: list[torch.nn.Module], seeds: list[int] | None) -> list[int]:
    """Each model's seed (default 0); ProxyError for an empty pool or a seed count that does not match."""
    if isinstance(nets, torch.nn.Module) or not len(nets):
        raise ProxyError("score_pool takes a non-empty list of models")
    seeds = [0] * len(nets) if seeds is None else list(seeds)
    if len(seeds) != len(nets):
        raise ProxyError(f"{len(seeds)} seeds for {len(nets)} models")
    return seeds
'''


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
