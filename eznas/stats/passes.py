"""The hooked passes of the collector: one forward (and backward) pass per input (D, N, P), each tracing its
own units (eznas.stats.units) and recording every unit's named tensors, and the P pass stored as P - D.
Depends on torch only, so exported proxies (``best_proxy.py``) carry this very code."""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from eznas.activations import ActivationCalls
from eznas.hooks import attached
from eznas.stats.units import _UnitModules, _units, norm_types, unit_rule


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
