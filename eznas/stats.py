"""Per-unit network statistics: the named tensors that proxies and evolved programs read.

**Units.** A unit is a ``ReLU -> Conv2d (-> Conv2d ...) -> BatchNorm2d`` chain, found by tracing one
forward pass (so in execution order, whatever the module tree looks like):

* every BatchNorm2d whose input is the output of a Conv2d closes a unit;
* walking back through directly chained Conv2d modules (DARTS's depthwise+pointwise pairs) gives the
  unit's first conv, whose input must be the output of an nn.ReLU; otherwise there is no unit there.

So NB-201's and DARTS's ReLU-Conv-BN ops are units; the stem (no ReLU before its conv), conv shortcuts
without BN and FactorizedReduce (its BN reads a concatenation) are not. In a post-activation
Conv-BN-ReLU net, each conv after the first forms a unit with the previous layer's ReLU.

**Names.** Per unit and per pass (D: the data batch; N: Gaussian noise of the same shape; P: the data
plus ``perturbation`` times Gaussian noise, stored as the difference P - D):

==============  ===============================================================================
``inp``         the block input, before the ReLU
``pre``         the conv input, after the ReLU
``act``         the BatchNorm output
``*_grad``      the gradient of the backward signal w.r.t. each of them; ``inp_grad`` is the part
                that flows through this unit's ReLU (``pre_grad * 1[inp > 0]``), as a module hook sees it
``weight_grad`` the gradient w.r.t. the first conv's weight
==============  ===============================================================================

and, once per unit, ``weight`` (the first conv's weight). A stored name is ``<stat>_<pass>``, e.g.
``inp_grad_D`` or ``act_N``: 1 + 7 x 3 = 22 names, as in EZNAS, but bound by name.
The backward signal is the sum of the logits (EZNAS) or the cross-entropy with the labels (Sweetimator).
"""
from __future__ import annotations

import hashlib
import json
import logging
from collections import OrderedDict
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterator, NamedTuple, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from eznas.data import Batch
from eznas.errors import DataError
from eznas.hooks import attached
from eznas.io import atomic_path

log = logging.getLogger(__name__)

COLLECTOR_VERSION = 2  # 2: a ReLU module called more than once gives each unit its own input
STATS = ("inp", "inp_grad", "pre", "pre_grad", "weight_grad", "act", "act_grad")
PASSES = ("D", "N", "P")
NAMES = ("weight", *(f"{s}_{p}" for p in PASSES for s in STATS))
SIGNALS = ("logits_sum", "ce")
DTYPES = {"float32": torch.float32, "float16": torch.float16}


@dataclass(frozen=True)
class CollectorConfig:
    names: tuple[str, ...] = NAMES  # which named tensors to keep
    signal: str = "logits_sum"  # backward signal: "logits_sum" (EZNAS) or "ce" (cross-entropy)
    dtype: str = "float32"  # storage: "float32" or "float16"
    max_samples: int | None = None  # keep at most this many batch samples of each per-sample tensor
    perturbation: float = 0.1  # P = D + perturbation * N(0, 1); EZNAS: sqrt(0.01)
    noise_seed: int = 0  # seeds the N and P passes' noise

    def __post_init__(self) -> None:
        bad = [n for n in self.names if n not in NAMES]
        if bad:
            raise ValueError(f"unknown statistic {bad[0]!r}; valid: {', '.join(NAMES)}")
        if self.signal not in SIGNALS:
            raise ValueError(f"unknown backward signal {self.signal!r}; valid: {', '.join(SIGNALS)}")
        if self.dtype not in DTYPES:
            raise ValueError(f"unknown storage dtype {self.dtype!r}; valid: {', '.join(DTYPES)}")


@dataclass
class Unit:
    name: str  # module path of the unit's first conv, e.g. "cells.3.edges.1.0.1"
    tensors: dict[str, torch.Tensor] = field(default_factory=dict)


@dataclass
class NetworkStats:
    units: list[Unit]

    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for u in self.units for t in u.tensors.values())


class _UnitModules(NamedTuple):
    name: str
    relu: nn.ReLU
    conv: nn.Conv2d  # the first conv of the chain (reads the ReLU output)
    bn: nn.BatchNorm2d


def find_units(net: nn.Module, x: torch.Tensor) -> list[_UnitModules]:
    """Trace one forward pass on ``x`` and return the ReLU -> Conv -> BN units in execution order."""
    names = {m: n for n, m in net.named_modules()}
    calls: list[tuple[nn.Module, int, int]] = []  # (module, id(input), id(output)) in call order
    keep: list[torch.Tensor] = []  # keeps traced tensors alive so their ids stay unique

    def hook(module: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
        keep.extend((inputs[0], output))
        calls.append((module, id(inputs[0]), id(output)))

    kinds = (nn.ReLU, nn.Conv2d, nn.BatchNorm2d)
    with _no_inplace_relu(net), torch.no_grad(), \
            attached(m.register_forward_hook(hook) for m in net.modules() if isinstance(m, kinds)):
        net(x)
    produced_by = {out: module for module, _, out in calls}
    units = []
    for module, inp, _ in calls:
        if not isinstance(module, nn.BatchNorm2d) or not isinstance(produced_by.get(inp), nn.Conv2d):
            continue
        conv = produced_by[inp]
        conv_input = next(i for m, i, _ in calls if m is conv)
        while isinstance(produced_by.get(conv_input), nn.Conv2d):
            conv = produced_by[conv_input]
            conv_input = next(i for m, i, _ in calls if m is conv)
        relu = produced_by.get(conv_input)
        if isinstance(relu, nn.ReLU):
            units.append(_UnitModules(names[conv], relu, conv, module))
    return units


@contextmanager
def _no_inplace_relu(net: nn.Module) -> Iterator[None]:
    """Run with every nn.ReLU out of place (same values), so no recorded tensor is overwritten."""
    relus = [m for m in net.modules() if isinstance(m, nn.ReLU) and m.inplace]
    for m in relus:
        m.inplace = False
    try:
        yield
    finally:
        for m in relus:
            m.inplace = True


def collect(net: nn.Module, batch: Batch, config: CollectorConfig = CollectorConfig()) -> NetworkStats:
    """Run the passes ``config`` needs on ``net`` (in train mode) and return the named per-unit tensors,
    stored as ``config.dtype`` with at most ``config.max_samples`` samples per tensor.

    The network's weights are not changed; its gradients are cleared afterwards.
    """
    units = collect_tensors(net, batch.x, batch.y, config.names, config.signal, config.noise_seed,
                            config.perturbation)
    dtype, cap = DTYPES[config.dtype], config.max_samples
    out = []
    for name, tensors in units:
        for key, t in tensors.items():
            capped = cap is not None and key != "weight" and not key.startswith("weight_grad") and len(t) > cap
            # a copy only where the tensor would otherwise alias the net's weight or a larger storage
            tensors[key] = (t[:cap] if capped else t).to(dtype, copy=capped or key == "weight")
        out.append(Unit(name, tensors))
    return NetworkStats(out)


def collect_tensors(net: nn.Module, x: torch.Tensor, y: torch.Tensor, names: Sequence[str],
                    signal: str = "logits_sum", noise_seed: int = 0, perturbation: float = 0.1
                    ) -> list[tuple[str, dict[str, torch.Tensor]]]:
    """The named float32 tensors of every unit (module path of its first conv, {name: tensor}): the
    passes the names need (D, N, P) on ``x`` with backward signal ``signal``. Depends on torch only, so
    exported proxies (``best_proxy.py``) carry this very function."""
    units = find_units(net, x[:2])  # the units do not depend on the batch: trace a small one
    gen = torch.Generator(device="cpu").manual_seed(noise_seed)
    noise = torch.randn(x.shape, generator=gen).to(x.device)
    perturb = torch.randn(x.shape, generator=gen).to(x.device)
    inputs = {"D": x, "N": noise, "P": x + perturbation * perturb}
    passes = {n.rsplit("_", 1)[1] for n in names if n != "weight"}
    passes |= {"D"} if "P" in passes else set()  # P is stored as a difference from D
    raw = {p: _one_pass(net, inputs[p], y, units, signal) for p in sorted(passes)}
    out = []
    for i, u in enumerate(units):
        tensors = {}
        for name in names:
            if name == "weight":
                tensors[name] = u.conv.weight.detach()
            else:
                stat, p = name.rsplit("_", 1)
                tensors[name] = raw[p][i][stat] - raw["D"][i][stat] if p == "P" else raw[p][i][stat]
        out.append((u.name, tensors))
    return out


def _one_pass(net: nn.Module, x: torch.Tensor, y: torch.Tensor, units: list[_UnitModules], signal: str
              ) -> list[dict[str, torch.Tensor]]:
    records: list[dict[str, torch.Tensor]] = [{} for _ in units]
    relu_calls: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}  # id(output) -> (input, output), every call
    handles = []

    def save_grad(rec: dict, key: str):
        def hook(grad: torch.Tensor) -> None:
            rec[key] = grad.detach()
        return hook

    def relu_post(module, inputs, output):  # a ReLU module may run more than once (torchvision's ResNets)
        relu_calls[id(output)] = (inputs[0].detach(), output)

    for rec, u in zip(records, units):
        def conv_pre(module, inputs, rec=rec, name=u.name):
            if "pre" in rec:
                return None  # the conv runs again (shared weights): its first call is the unit's
            call = relu_calls.get(id(inputs[0]))
            if call is None:
                raise RuntimeError(f"unit {name}: its conv's input is not a ReLU output in this pass")
            alias = inputs[0].view_as(inputs[0])  # a private alias: its gradient is this conv's share
            rec["inp"], rec["pre"] = call[0], alias.detach()
            if alias.requires_grad:
                alias.register_hook(save_grad(rec, "pre_grad"))
            return (alias, *inputs[1:])

        def bn_post(module, inputs, output, rec=rec):
            if "act" in rec:
                return None
            alias = output.view_as(output)
            rec["act"] = alias.detach()
            alias.register_hook(save_grad(rec, "act_grad"))
            return alias

        handles += [u.conv.register_forward_pre_hook(conv_pre), u.bn.register_forward_hook(bn_post)]
    handles += [relu.register_forward_hook(relu_post) for relu in {id(u.relu): u.relu for u in units}.values()]
    net.zero_grad(set_to_none=True)
    with attached(handles), _no_inplace_relu(net), torch.enable_grad():
        logits = net(x)
        loss = logits.sum() if signal == "logits_sum" else F.cross_entropy(logits, y)
        loss.backward()
    for rec, u in zip(records, units):
        for key, like in (("pre_grad", "pre"), ("act_grad", "act")):  # no gradient reached it
            if key not in rec:
                rec[key] = torch.zeros_like(rec[like])
        rec["inp_grad"] = rec["pre_grad"] * (rec["inp"] > 0)
        g = u.conv.weight.grad
        rec["weight_grad"] = g.detach() if g is not None else torch.zeros_like(u.conv.weight)
    net.zero_grad(set_to_none=True)
    return records


def stats_key(**fields: object) -> str:
    """A cache key over everything that changes the numbers (pass space, arch, dataset, batch seed and
    size, init scheme and seed, and the collector config); the collector version is always included."""
    blob = json.dumps({"collector_version": COLLECTOR_VERSION, **fields}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


class StatsCache:
    """Statistics on disk (one atomically written file per key) with an in-memory LRU under a byte budget."""

    def __init__(self, folder: str | Path, memory_budget_bytes: int = 1 << 30):
        self.folder = Path(folder)
        self.budget = memory_budget_bytes
        self._memory: OrderedDict[str, NetworkStats] = OrderedDict()
        self._bytes = 0

    def path(self, key: str) -> Path:
        return self.folder / key[:2] / f"{key}.pt"

    def get(self, key: str) -> NetworkStats | None:
        if key in self._memory:
            self._memory.move_to_end(key)
            return self._memory[key]
        path = self.path(key)
        if not path.is_file():
            return None
        try:
            blob = torch.load(path, map_location="cpu", weights_only=True)
            stats = NetworkStats([Unit(name, tensors) for name, tensors in blob["units"]])
            if blob["key"] != key:
                raise ValueError(f"holds key {blob['key']}")
        except Exception as exc:  # noqa: BLE001 - truncated, corrupt or foreign: never use it
            raise DataError(f"statistics cache file {path} is unreadable ({exc}); delete it to recompute") from None
        self._remember(key, stats)
        return stats

    def put(self, key: str, stats: NetworkStats, fields: dict | None = None) -> None:
        with atomic_path(self.path(key)) as tmp:
            torch.save({"key": key, "fields": json.dumps(fields or {}, default=str),
                        "units": [(u.name, u.tensors) for u in stats.units]}, tmp)
        self._remember(key, stats)

    def _remember(self, key: str, stats: NetworkStats) -> None:
        size = stats.nbytes()
        if size > self.budget:
            return
        self._memory[key] = stats
        self._bytes += size
        while self._bytes > self.budget:
            _, old = self._memory.popitem(last=False)
            self._bytes -= old.nbytes()


def config_fields(config: CollectorConfig) -> dict:
    return asdict(config)
