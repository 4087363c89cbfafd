"""Per-unit network statistics: the named tensors that proxies and evolved programs read.

**Units.** A network declares how its units are found with a ``unit_rule`` class or instance attribute;
every rule traces one forward pass (so units come in execution order, whatever the module tree looks like).
An *activation* is any activation call, module or functional (ReLU, ReLU6, GELU, SiLU, Hardswish, ...:
eznas.activations); a *chain* is a run of directly chained Conv2d modules (DARTS's depthwise+pointwise
pairs), named by its first conv.

* ``"relu_conv_bn"`` (NB-201, NATS-Bench, DARTS, NDS, NB-301: pre-activation ReLU-Conv-BN ops): every
  BatchNorm2d whose input is a chain's output closes a unit when the chain's first conv reads an
  activation's output; otherwise there is no unit there. So the stem (no ReLU before its conv), conv
  shortcuts without BN and FactorizedReduce (its BN reads a concatenation) are not units.
* ``"conv_bn"`` (NB-101, NAS-Bench-Macro: post-activation Conv-BN-ReLU ops): every chain -> BatchNorm2d
  is a unit, the stem and 1x1 projections included, whatever produced the conv's input (a ReLU, a max-pool,
  a sum of vertices, the image), and ``inp`` is the conv input (``inp`` = ``pre``, ``inp_grad`` =
  ``pre_grad``): there is no ReLU inside the unit. (Under ``relu_conv_bn`` NB-101 cell 0 would have 14
  units among its 64 convs.)
* ``"layer"``, the rule of any network that declares none (a user's model: torchvision's ResNets,
  MobileNets, EfficientNets, RegNets, ConvNeXts, models written with ``F.relu``): every chain is a unit.
  ``inp`` is the input of the activation its first conv reads, where it reads one (``inp`` = ``pre``
  elsewhere: the stem, MobileNet's expansions, ConvNeXt's depthwise convs reading a residual sum); ``act``
  is the output of the norm reading the chain's output (BatchNorm2d, GroupNorm, InstanceNorm2d, LayerNorm
  such as torchvision's LayerNorm2d), or the last conv's own output where no norm follows.

**Names.** Per unit and per pass (D: the data batch; N: Gaussian noise of the same shape; P: the data
plus ``perturbation`` times Gaussian noise, stored as the difference P - D):

==============  ===============================================================================
``inp``         the block input, before the activation (ReLU in our spaces)
``pre``         the conv input, after the activation
``act``         the norm output (BatchNorm; under ``layer`` the last conv's output where no norm follows)
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
from dataclasses import dataclass, field
from typing import NamedTuple, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from eznas.activations import ActivationCalls
from eznas.data import Batch
from eznas.features import network_features
from eznas.hooks import attached

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
    ``"relu_conv_bn"``, ``"conv_bn"`` or, for a network that declares none (any user's model), ``"layer"``.
    Literals here, so exported proxies carry it whole."""
    rule = getattr(net, "unit_rule", "layer")
    if rule not in ("relu_conv_bn", "conv_bn", "layer"):
        raise ValueError(f"{type(net).__name__}.unit_rule is {rule!r}; valid: relu_conv_bn, conv_bn, layer")
    return rule


def norm_types(rule: str) -> tuple[type[nn.Module], ...]:
    """The normalisation modules that close a unit under ``rule``: BatchNorm2d, and under ``layer`` also
    GroupNorm, InstanceNorm2d and LayerNorm (torchvision's LayerNorm2d among them) reading a conv's output."""
    if rule == "layer":
        return nn.BatchNorm2d, nn.GroupNorm, nn.InstanceNorm2d, nn.LayerNorm
    return (nn.BatchNorm2d,)


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
    conv: nn.Conv2d  # the first conv of the chain: its input is ``pre``
    last: nn.Conv2d  # the last conv of the chain: its output is ``act`` where no norm closes the unit
    norm: nn.Module | None  # the norm closing the unit (its output is ``act``); None only under "layer"
    activation: bool  # whether the first conv's input is an activation's output (whose input is ``inp``)


def find_units(net: nn.Module, x: torch.Tensor) -> list[_UnitModules]:
    """Trace one forward pass on ``x`` and return the units (``unit_rule(net)``) in execution order."""
    calls: list[tuple[nn.Module | str, int, int]] = []  # (module or "activation", id(input), id(output))
    keep: list[torch.Tensor] = []  # keeps traced tensors alive so their ids stay unique

    def seen(site: nn.Module | str, inp: torch.Tensor, out: torch.Tensor) -> None:
        keep.extend((inp, out))
        calls.append((site, id(inp), id(out)))

    kinds = (nn.Conv2d, *norm_types(unit_rule(net)))
    with torch.no_grad(), ActivationCalls(lambda inp, out: seen("activation", inp, out)), \
            attached(m.register_forward_hook(lambda m, i, o: seen(m, i[0], o)) for m in net.modules()
                     if isinstance(m, kinds)):
        net(x)
    return _units(net, calls)


def _units(net: nn.Module, calls: list[tuple[nn.Module | str, int, int]]) -> list[_UnitModules]:
    """The units of a traced forward pass, from its activation, Conv2d and norm calls in order."""
    rule = unit_rule(net)
    names = {m: n for n, m in net.named_modules()}
    produced_by = {out: site for site, _, out in calls}
    first_input: dict[nn.Module, int] = {}
    for site, inp, _ in calls:
        if not isinstance(site, str):
            first_input.setdefault(site, inp)

    def chain(last: nn.Conv2d) -> tuple[nn.Conv2d, bool]:
        """The chain's first conv (back through directly chained convs) and whether it reads an activation."""
        conv = last
        while isinstance(produced_by.get(first_input[conv]), nn.Conv2d):
            conv = produced_by[first_input[conv]]
        return conv, isinstance(produced_by.get(first_input[conv]), str)

    units = []
    if rule != "layer":
        for module, inp, _ in calls:
            if not isinstance(module, nn.BatchNorm2d) or not isinstance(produced_by.get(inp), nn.Conv2d):
                continue
            last = produced_by[inp]
            conv, activation = chain(last)
            if rule == "conv_bn":
                units.append(_UnitModules(names[conv], conv, last, module, False))
            elif activation:
                units.append(_UnitModules(names[conv], conv, last, module, True))
        return units
    norm_reading: dict[int, nn.Module] = {}  # id(a tensor) -> the first norm call reading it
    for site, inp, _ in calls:
        if isinstance(site, norm_types(rule)):
            norm_reading.setdefault(inp, site)
    conv_inputs = {first_input[m] for m in first_input if isinstance(m, nn.Conv2d)}
    done: set[nn.Module] = set()
    for site, inp, out in calls:
        if isinstance(site, nn.Conv2d) and site not in done and out not in conv_inputs:  # a chain's last conv
            done.add(site)
            conv, activation = chain(site)
            units.append(_UnitModules(names[conv], conv, site, norm_reading.get(out), activation))
    return units


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

    Every activation call's input, every Conv2d's first input and every norm's first output (under the
    ``layer`` rule every Conv2d's first output too) get a private alias (a view) whose gradient is that
    call's share; after the pass, the trace says which form units."""
    rule = unit_rule(net)
    norms = norm_types(rule)
    calls: list[tuple[nn.Module | str, int, int]] = []  # (module or "activation", id(input), id(output))
    keep: list[torch.Tensor] = []  # keeps the traced tensors alive so their ids stay unique
    act_in: list[tuple[int, dict]] = []  # the running activation call's input (before its alias) and record
    act_out: dict[int, dict[str, torch.Tensor]] = {}  # id(output) -> inp, inp_grad, every activation call
    conv_in: dict[nn.Module, int] = {}  # the conv's current call's input (before its alias)
    first_input: dict[nn.Module, int] = {}  # the conv's first call's input
    inputs: dict[nn.Module, dict[str, torch.Tensor]] = {}  # conv's first call: pre, pre_grad
    outputs: dict[nn.Module, dict[str, torch.Tensor]] = {}  # norm's (and under "layer" conv's) first call: act

    def save_grad(rec: dict, key: str):
        def hook(grad: torch.Tensor) -> None:
            rec[key] = grad.detach()
        return hook

    def alias(t: torch.Tensor, key: str) -> tuple[torch.Tensor, dict]:
        view = t.view_as(t)
        rec = {key: view.detach()}
        if view.requires_grad:
            view.register_hook(save_grad(rec, f"{key}_grad"))
        return view, rec

    def activation_input(t: torch.Tensor) -> torch.Tensor:  # an activation may run more than once
        keep.append(t)
        view, rec = alias(t, "inp")
        act_in.append((id(t), rec))
        return view

    def activation_output(view: torch.Tensor, out: torch.Tensor) -> None:
        inp, rec = act_in.pop()
        act_out[id(out)] = rec
        keep.append(out)
        calls.append(("activation", inp, id(out)))

    def conv_pre(module, args):
        conv_in[module] = id(args[0])
        keep.append(args[0])
        if module in inputs:  # the conv runs again (shared weights): its first call is the unit's
            return None
        first_input[module] = id(args[0])
        view, inputs[module] = alias(args[0], "pre")
        return (view, *args[1:])

    def post(module, args, output):
        inp = conv_in.pop(module) if isinstance(module, nn.Conv2d) else id(args[0])
        if module not in outputs and (isinstance(module, norms) or rule == "layer" and isinstance(module, nn.Conv2d)):
            output, outputs[module] = alias(output, "act")
        keep.append(output)
        calls.append((module, inp, id(output)))
        return output

    handles = []
    for m in net.modules():
        if isinstance(m, nn.Conv2d):
            handles.append(m.register_forward_pre_hook(conv_pre))
        if isinstance(m, (nn.Conv2d, *norms)):
            handles.append(m.register_forward_hook(post))
    net.zero_grad(set_to_none=True)
    with attached(handles), torch.enable_grad():
        with ActivationCalls(activation_output, alias=activation_input):
            logits = net(x)
        if backward:
            loss = logits.sum() if signal == "logits_sum" else F.cross_entropy(logits, y)
            loss.backward()
    units = _units(net, calls)
    records = []
    for u in units:
        rec = {**inputs[u.conv], **outputs[u.norm if u.norm is not None else u.last]}
        if u.activation:
            rec.update(act_out[first_input[u.conv]])
        else:  # no activation inside the unit: its input is the conv's
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
