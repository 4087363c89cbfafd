"""Per-unit network statistics: the named tensors that proxies and evolved programs read.

**Units.** A unit is a ``ReLU -> Conv2d (-> Conv2d ...) -> BatchNorm2d`` chain, found by tracing one
forward pass (so in execution order, whatever the module tree looks like):

* every BatchNorm2d whose input is the output of a Conv2d closes a unit;
* walking back through directly chained Conv2d modules (DARTS's depthwise+pointwise pairs) gives the
  unit's first conv, whose input must be the output of an nn.ReLU; otherwise there is no unit there.

So NB-201's and DARTS's ReLU-Conv-BN ops are units; the stem (no ReLU before its conv), conv shortcuts
without BN and FactorizedReduce (its BN reads a concatenation) are not.

A network built of post-activation Conv-BN-ReLU ops (NB-101) declares ``unit_rule = "conv_bn"`` (a class
or instance attribute; the default is ``"relu_conv_bn"``): then every Conv2d (chain) -> BatchNorm2d is a
unit, the stem and 1x1 projections included, whatever produced the conv's input (a ReLU, a max-pool, a
sum of vertices, the image), and ``inp`` is the conv input (``inp`` = ``pre``, ``inp_grad`` =
``pre_grad``): there is no ReLU inside the unit. Under the default rule such a net would have a unit only
where a conv directly reads a ReLU's output (NB-101 cell 0: 14 of 64 convs).

**Names.** Per unit and per pass (D: the data batch; N: Gaussian noise of the same shape; P: the data
plus ``perturbation`` times Gaussian noise, stored as the difference P - D):

==============  ===============================================================================
``inp``         the block input, before the ReLU
``pre``         the conv input, after the ReLU
``act``         the BatchNorm output
``*_grad``      the gradient of the backward signal w.r.t. each of them: this unit's share where a
                tensor has several readers; ``inp_grad`` is what flows back through the unit's ReLU
                call, as a backward hook on the ReLU sees it (``pre_grad * 1[inp > 0]`` when the
                ReLU feeds only this conv, as in NB-201 and DARTS)
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
import math
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
from eznas.features import network_features
from eznas.hooks import attached
from eznas.io import atomic_path

log = logging.getLogger(__name__)

COLLECTOR_VERSION = 7  # 2: a ReLU called more than once gives each unit its own input; 3: inp_grad as
# the ReLU's backward gives it (differs from 2 only where a ReLU output has several readers); 4: the N pass
# runs in the batch's memory layout (same noise values; its gradients round differently); 5: network
# features (eznas.features) stored with the units; 6: float16 storage saturates at +-65504 (was inf);
# 7: batches and inputs in the standard layout, not channels-last (eznas.data.normalise: a oneDNN bug)
STATS = ("inp", "inp_grad", "pre", "pre_grad", "weight_grad", "act", "act_grad")
PASSES = ("D", "N", "P")
NAMES = ("weight", *(f"{s}_{p}" for p in PASSES for s in STATS))
SIGNALS = ("logits_sum", "ce")
DTYPES = {"float32": torch.float32, "float16": torch.float16}


def unit_rule(net: nn.Module) -> str:
    """The unit rule ``net`` declares (its ``unit_rule`` attribute; see the module docstring):
    ``"relu_conv_bn"`` (the default) or ``"conv_bn"``. Literals here, so exported proxies carry it whole."""
    rule = getattr(net, "unit_rule", "relu_conv_bn")
    if rule not in ("relu_conv_bn", "conv_bn"):
        raise ValueError(f"{type(net).__name__}.unit_rule is {rule!r}; valid: relu_conv_bn, conv_bn")
    return rule


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
    features: dict[str, float] = field(default_factory=dict)  # eznas.features.FEATURES of the network

    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for u in self.units for t in u.tensors.values())


class _UnitModules(NamedTuple):
    name: str
    relu: nn.ReLU | None  # None under the "conv_bn" rule
    conv: nn.Conv2d  # the first conv of the chain (reads the ReLU output)
    bn: nn.BatchNorm2d


def find_units(net: nn.Module, x: torch.Tensor) -> list[_UnitModules]:
    """Trace one forward pass on ``x`` and return the units (``unit_rule(net)``) in execution order."""
    calls: list[tuple[nn.Module, int, int]] = []  # (module, id(input), id(output)) in call order
    keep: list[torch.Tensor] = []  # keeps traced tensors alive so their ids stay unique

    def hook(module: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
        keep.extend((inputs[0], output))
        calls.append((module, id(inputs[0]), id(output)))

    kinds = (nn.ReLU, nn.Conv2d, nn.BatchNorm2d)
    with _no_inplace_relu(net), torch.no_grad(), \
            attached(m.register_forward_hook(hook) for m in net.modules() if isinstance(m, kinds)):
        net(x)
    return _units(net, calls)


def _units(net: nn.Module, calls: list[tuple[nn.Module, int, int]]) -> list[_UnitModules]:
    """The units of a traced forward pass, from its ReLU, Conv2d and BatchNorm2d calls in order."""
    with_relu = unit_rule(net) == "relu_conv_bn"
    names = {m: n for n, m in net.named_modules()}
    produced_by = {out: module for module, _, out in calls}
    first_input = {}
    for module, inp, _ in calls:
        first_input.setdefault(module, inp)
    units = []
    for module, inp, _ in calls:
        if not isinstance(module, nn.BatchNorm2d) or not isinstance(produced_by.get(inp), nn.Conv2d):
            continue
        conv = produced_by[inp]
        while isinstance(produced_by.get(first_input[conv]), nn.Conv2d):
            conv = produced_by[first_input[conv]]
        relu = produced_by.get(first_input[conv])
        if not with_relu:
            units.append(_UnitModules(names[conv], None, conv, module))
        elif isinstance(relu, nn.ReLU):
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


def rounded(t: torch.Tensor, dtype: torch.dtype, copy: bool = False) -> torch.Tensor:
    """``t`` as ``dtype``, saturating: a finite value beyond ``dtype``'s range becomes its largest finite
    value of the same sign instead of an infinity (float16 stops at 65504, and deep residual sums of an
    untrained network pass that), so signs, orders and finiteness survive the rounding."""
    if dtype == t.dtype or not dtype.is_floating_point:
        return t.to(dtype, copy=copy)
    big = torch.finfo(dtype).max
    if torch.finfo(t.dtype).max > big and bool((t.abs() > big).logical_and(t.isfinite()).any()):
        t = torch.where(t.isfinite(), t.clamp(-big, big), t)
    return t.to(dtype, copy=copy)


def collect(net: nn.Module, batch: Batch, config: CollectorConfig = CollectorConfig(),
            features: bool = True) -> NetworkStats:
    """Run the passes ``config`` needs on ``net`` (in train mode) and return the named per-unit tensors,
    stored as ``config.dtype`` with at most ``config.max_samples`` samples per tensor, and (if ``features``)
    the network's features (eznas.features).

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
            tensors[key] = rounded((t[:cap] if capped else t), dtype, copy=capped or key == "weight")
        out.append(Unit(name, tensors))
    return NetworkStats(out, network_features(net, batch.x, len(out)) if features else {})


def collect_tensors(net: nn.Module, x: torch.Tensor, y: torch.Tensor, names: Sequence[str],
                    signal: str = "logits_sum", noise_seed: int = 0, perturbation: float = 0.1
                    ) -> list[tuple[str, dict[str, torch.Tensor]]]:
    """The named float32 tensors of every unit (module path of its first conv, {name: tensor}): the
    passes the names need (D, N, P) on ``x`` with backward signal ``signal``. Depends on torch only, so
    exported proxies (``best_proxy.py``) carry this very function."""
    gen = torch.Generator(device="cpu").manual_seed(noise_seed)
    # the standard layout: oneDNN's channels-last 1x1 stride-2 conv backward with < 8 input channels writes
    # past its workspace (wrong weight gradients, heap corruption: uxlfoundation/oneDNN#6035)
    x = x.contiguous()
    noise = torch.empty_like(x).copy_(torch.randn(x.shape, generator=gen))
    perturb = torch.empty_like(x).copy_(torch.randn(x.shape, generator=gen))
    inputs = {"D": x, "N": noise, "P": x + perturbation * perturb}
    passes = {n.rsplit("_", 1)[1] for n in names if n != "weight"} or {"D"}  # "D" alone: to find the units
    passes |= {"D"} if "P" in passes else set()  # P is stored as a difference from D
    grads = {n.rsplit("_", 1)[1] for n in names if "_grad_" in n}  # passes whose gradients are read
    grads |= {"D"} if "P" in grads else set()  # the P pass's gradients are stored as differences from D's
    runs = {p: _one_pass(net, inputs[p], y, signal, backward=p in grads) for p in sorted(passes)}
    units = next(iter(runs.values()))[0]
    if any([u.name for u in run[0]] != [u.name for u in units] for run in runs.values()):
        raise RuntimeError("the network's units differ between passes (its forward is not deterministic)")
    records = {p: run[1] for p, run in runs.items()}  # pass -> per unit {stat: tensor}
    out = []
    for i, u in enumerate(units):
        tensors = {}
        for name in names:
            stat, _, p = name.rpartition("_")
            tensors[name] = u.conv.weight.detach() if name == "weight" else records[p][i][stat]
        out.append((u.name, tensors))
    perturbed = [(i, name) for i in range(len(units)) for name in names if name.endswith("_P")]
    diffs = _differences([(out[i][1][name], records["D"][i][name.rpartition("_")[0]]) for i, name in perturbed])
    for (i, name), diff in zip(perturbed, diffs):
        out[i][1][name] = diff
    return out


def statistic(t: torch.Tensor) -> torch.Tensor:
    """A statistic as programs and the proxies built on the collector read it: float32 in the standard
    (contiguous) layout, so a value does not depend on how the statistics were stored (fresh from the
    collector, channels-last like the batch, or loaded from the cache)."""
    return t.to(torch.float32, memory_format=torch.contiguous_format)


def _differences(pairs: list[tuple[torch.Tensor, torch.Tensor]]) -> list[torch.Tensor]:
    """``p - d`` for each pair of a P-pass tensor and its D counterpart: in place in ``p`` (nothing else
    reads it), once per tensor, where its memory is read through that one view only. Units share P
    tensors (a cell node feeds several edges, autograd hands one gradient to all summands and splits a
    concatenation's gradient into views), and their D counterparts are shared alike."""
    def view(t: torch.Tensor) -> tuple:
        return t.untyped_storage().data_ptr(), t.storage_offset(), tuple(t.shape), t.stride()

    views: dict[int, set[tuple]] = {}
    for v in (view(p) for p, _ in pairs):
        views.setdefault(v[0], set()).add(v)
    done: dict[tuple, torch.Tensor] = {}
    out = []
    for p, d in pairs:
        v = view(p)
        if len(views[v[0]]) > 1:  # overlapping views: changing one in place would change the others
            out.append(p - d)
        else:
            if v not in done:
                done[v] = p.sub_(d)
            out.append(done[v])
    return out


def _one_pass(net: nn.Module, x: torch.Tensor, y: torch.Tensor, signal: str, backward: bool = True
              ) -> tuple[list[_UnitModules], list[dict[str, torch.Tensor]]]:
    """One forward and (if ``backward``) backward pass on ``x``: the units (traced in this very pass) and
    their records. Without the backward pass the forward is the same computation (autograd on), so its
    values are the same to the bit; the records then have no gradients.

    Every ReLU call's input, every Conv2d's first input and every BatchNorm2d's first output get a private
    alias (a view) whose gradient is that call's share; after the pass, the trace says which form units."""
    calls: list[tuple[nn.Module, int, int]] = []  # (module, id(input), id(output)) in call order
    keep: list[torch.Tensor] = []  # keeps the traced tensors alive so their ids stay unique
    relu_in: list[tuple[torch.Tensor, dict]] = []  # the running ReLU call's input alias and record
    relu_out: dict[int, dict[str, torch.Tensor]] = {}  # id(output) -> inp, inp_grad, every ReLU call
    conv_in: dict[nn.Module, int] = {}  # the conv's current call's input (before its alias)
    first_input: dict[nn.Module, int] = {}  # the conv's first call's input
    first: dict[nn.Module, dict[str, torch.Tensor]] = {}  # first call's conv: pre, pre_grad; BN: act, act_grad

    def save_grad(rec: dict, key: str):
        def hook(grad: torch.Tensor) -> None:
            rec[key] = grad.detach()
        return hook

    def alias(module: nn.Module | None, t: torch.Tensor, key: str) -> tuple[torch.Tensor, dict]:
        view = t.view_as(t)
        rec = {key: view.detach()}
        if view.requires_grad:
            view.register_hook(save_grad(rec, f"{key}_grad"))
        if module is not None:
            first[module] = rec
        return view, rec

    def relu_pre(module, inputs):  # a ReLU module may run more than once (torchvision's ResNets)
        keep.append(inputs[0])
        relu_in.append(alias(None, inputs[0], "inp"))
        return (relu_in[-1][0], *inputs[1:])

    def conv_pre(module, inputs):
        conv_in[module] = id(inputs[0])
        keep.append(inputs[0])
        if module in first:  # the conv runs again (shared weights): its first call is the unit's
            return None
        first_input[module] = id(inputs[0])
        return (alias(module, inputs[0], "pre")[0], *inputs[1:])

    def post(module, inputs, output):
        inp = conv_in.pop(module) if isinstance(module, nn.Conv2d) else id(inputs[0])
        if isinstance(module, nn.BatchNorm2d) and module not in first:
            output = alias(module, output, "act")[0]
        elif isinstance(module, nn.ReLU):
            relu_out[id(output)] = relu_in.pop()[1]
        keep.append(output)
        calls.append((module, inp, id(output)))
        return output

    handles = []
    for m in net.modules():
        if isinstance(m, (nn.Conv2d, nn.ReLU)):
            handles.append(m.register_forward_pre_hook(conv_pre if isinstance(m, nn.Conv2d) else relu_pre))
        if isinstance(m, (nn.ReLU, nn.Conv2d, nn.BatchNorm2d)):
            handles.append(m.register_forward_hook(post))
    net.zero_grad(set_to_none=True)
    with attached(handles), _no_inplace_relu(net), torch.enable_grad():
        logits = net(x)
        if backward:
            loss = logits.sum() if signal == "logits_sum" else F.cross_entropy(logits, y)
            loss.backward()
    units = _units(net, calls)
    records = []
    for u in units:
        rec = {**first[u.conv], **first[u.bn]}
        if u.relu is not None:
            rec.update(relu_out[first_input[u.conv]])
        else:  # "conv_bn": the unit's input is the conv's
            rec["inp"] = rec["pre"]
            if "pre_grad" in rec:
                rec["inp_grad"] = rec["pre_grad"]
        if backward:
            for key, like in (("pre_grad", "pre"), ("act_grad", "act"), ("inp_grad", "inp")):  # no gradient reached it
                if key not in rec:
                    rec[key] = torch.zeros_like(rec[like])
            g = u.conv.weight.grad
            rec["weight_grad"] = g.detach() if g is not None else torch.zeros_like(u.conv.weight)
        records.append(rec)
    net.zero_grad(set_to_none=True)
    return units, records


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
            blob = torch.load(path, map_location="cpu", weights_only=True, mmap=True)  # reads what is used
            if blob["key"] != key:
                raise ValueError(f"holds key {blob['key']}")
            stats = _unpack(blob["index"], blob["data"])
            stats.features = {k: float(v) for k, v in blob["features"].items()}
        except Exception as exc:  # noqa: BLE001 - truncated, corrupt or foreign: never use it
            raise DataError(f"statistics cache file {path} is unreadable ({exc}); delete it to recompute") from None
        self._remember(key, stats)
        return stats

    def put(self, key: str, stats: NetworkStats, fields: dict | None = None) -> None:
        index, data = _pack(stats)
        with atomic_path(self.path(key)) as tmp:
            torch.save({"key": key, "fields": json.dumps(fields or {}, default=str), "index": index, "data": data,
                        "features": dict(stats.features)}, tmp)
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


def _pack(stats: NetworkStats) -> tuple[list[tuple], dict[str, torch.Tensor]]:
    """One flat tensor per dtype and an index of (unit number, unit name, name, dtype, shape): PyTorch's
    safe unpickler handles each storage in Python, so a file of a thousand small tensors loads slowly."""
    index, parts = [], {}
    for i, u in enumerate(stats.units):
        for name, t in u.tensors.items():
            dtype = str(t.dtype).removeprefix("torch.")
            index.append((i, u.name, name, dtype, tuple(t.shape)))
            parts.setdefault(dtype, []).append(t.reshape(-1))
    return index, {dtype: torch.cat(ts) for dtype, ts in parts.items()}


def _unpack(index: list[tuple], data: dict[str, torch.Tensor]) -> NetworkStats:
    units: dict[int, Unit] = {}
    offset = dict.fromkeys(data, 0)
    for i, unit, name, dtype, shape in index:
        n = math.prod(shape)
        units.setdefault(i, Unit(unit)).tensors[name] = data[dtype][offset[dtype]:offset[dtype] + n].view(shape)
        offset[dtype] += n
    return NetworkStats(list(units.values()))


def config_fields(config: CollectorConfig) -> dict:
    return asdict(config)
