"""The code of an exported file's (``best_proxy.py``'s) own functions, as text: its ``ProxyError``, the
input checks, ``measure`` (one model's units and features on a private copy, as eznas.score computes them)
and, with the program compiled in, ``score`` and ``score_pool`` for a per-network program
(:func:`network_code`) or a pool program (:func:`pool_code`). The names it defines are
:data:`eznas.gp.closure.RESERVED`.
"""
from __future__ import annotations

from typing import Any

from eznas.gp.expression import pool_expression, program_expression
from eznas.gp.parse import parse_program
from eznas.gp.program import Program


def common_code(labels_reason: str, proxies: dict[str, Any]) -> str:
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


def network_code(program: Program) -> str:
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


def pool_code(program: Program) -> str:
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
