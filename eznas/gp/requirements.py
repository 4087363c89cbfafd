"""What a program needs of its caller, as its exported file (``best_proxy.py``) declares it, and whether its
proxy terminals can be exported at all.

:func:`requirements` gives the exported file's constants CALL to REQUIRES: the call that works (pool or
per-network), whether labels are needed, the per-unit statistics and network-level terminals it reads, and
what the model and the batch must have. :func:`check_exportable` refuses, before a run, a proxy terminal
whose proxy's code an export could not carry.
"""
from __future__ import annotations

from typing import Any, Iterable

from deap import gp

from eznas.data import Batch
from eznas.errors import EznasError
from eznas.gp.closure import closure
from eznas.gp.program import Program
from eznas.gp.pset import proxy_name
from eznas.proxies import Probe, get_proxy

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


def proxy_functions(terminals: Iterable[str]) -> dict[str, Any]:
    """The registered proxy function behind each proxy terminal (``zc_<proxy>``)."""
    return {t: get_proxy(proxy_name(t)).fn for t in terminals}


def check_exportable(terminals: Iterable[str]) -> None:
    """Raise EznasError naming the first proxy terminal whose proxy's code cannot be carried by an export."""
    for terminal, fn in proxy_functions(terminals).items():
        try:
            closure([Probe, Batch, fn])
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


def labels_reason(program: Program, signal: str) -> str:
    """Why ``program`` needs labels (where ``requirements`` says it does)."""
    if signal == "ce":
        return "its backward signal is the cross-entropy with the labels"
    users = [t for t in program.proxies if get_proxy(proxy_name(t)).labels]
    return f"{', '.join(users)} read{'s' if len(users) == 1 else ''} a cross-entropy loss"
