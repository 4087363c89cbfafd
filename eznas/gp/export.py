"""Export a program as a standalone PyTorch file that needs only ``torch`` (``best_proxy.py``).

The file carries the very source of the functions eznas scores with - the statistics collector
(:func:`eznas.stats.passes.collect_tensors` and what it calls), the program's primitives and its aggregator,
and the scoring loop :func:`eznas.primitives.aggregate.aggregate_units` - found by following the names each
one uses, plus the program compiled to one Python expression over the units and network features. So
``best_proxy.score`` and ``verify_scores.py --program`` compute the same numbers by the same code.

It scores by :mod:`eznas.api`'s protocol (it carries :func:`eznas.networks.private_copy`): each model on a
private copy, under a seeded and restored global random state, so it gives ``eznas.score`` /
``eznas.score_pool``'s numbers and leaves the model exactly as it was. It declares what the program needs
(:func:`requirements`: the call that works, pool or per-network, labels, statistics, network-level terminals,
what a model must have) in its docstring and as constants at its top, and raises its own ``ProxyError`` (one
line naming the requirement not met) where eznas would raise EznasError; it never returns NaN.

This module assembles the file; the parts come from :mod:`eznas.gp.closure` (the carried source),
:mod:`eznas.gp.requirements` (what the program needs), :mod:`eznas.gp.expression` (the program as Python)
and :mod:`eznas.gp.export_code` (the file's own functions).
"""
from __future__ import annotations

import textwrap
from typing import Any

from deap import gp

from eznas.data import Batch
from eznas.errors import reason
from eznas.features import network_features
from eznas.networks import private_copy
from eznas.gp.as_proxy import proxy_needs
from eznas.gp.closure import closure
from eznas.gp.export_code import common_code, network_code, pool_code
from eznas.gp.program import Program
from eznas.gp.pset import PROXY_PREFIX, is_aggregator, is_pool_op, proxy_name
from eznas.gp.requirements import labels_reason, proxy_functions, requirements
from eznas.proxies import Probe, get_proxy
from eznas.stats.collector import statistic
from eznas.stats.passes import collect_tensors
from eznas.primitives import PRIMITIVES
from eznas.primitives.aggregate import ProgramFailure, aggregate_units
from eznas.primitives.network import checked, each

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
    imports, defs = closure(fns)
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
    body = (common_code(labels_reason(program, signal) if needs["LABELS"] else "", proxies)
            + (pool_code(program) if program.is_pool else network_code(program)))
    return "\n".join(head) + "".join("\n\n\n" + d for d in defs) + "\n" + body


def _docstring(doc: str, program: Program, signal: str, needs: dict[str, Any]) -> str:
    """The file's docstring: the caller's ``doc``, then the call that works and what the program needs."""
    fn = needs["CALL"].split("(")[0]
    usage = ("# models: a list scored together; one float per model, higher is better" if needs["POOL"] else
             "# one float, higher is better (score_pool(models, ...) scores each model alone)")
    kind = ("a pool program: a model's score ranks it among the models scored together (net_rank), so call "
            "score_pool; score() raises" if needs["POOL"] else
            "a per-network program: score() scores one model, score_pool() a list of them, each alone")
    labels = (f"needed, (B,) class indices: {labels_reason(program, signal)}" if needs["LABELS"] else
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
