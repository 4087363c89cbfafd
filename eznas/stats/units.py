"""Where a network's units are: the rule a network declares and the units one traced forward pass finds.

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
"""
from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn as nn

from eznas.activations import ActivationCalls
from eznas.hooks import attached


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
