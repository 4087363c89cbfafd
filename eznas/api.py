"""Score your own model: ``eznas.score(model, images)`` and ``eznas.score_pool(models, images)``.

    import eznas
    eznas.score(model, images, proxies=("meco", "synflow"), programs=("sum_units(corr_min_eig(pre_N))",))
    eznas.score_pool([m1, m2, m3], images, proxies=("az_nas",))  # pool-level: ranks among the models

**Protocol.** Each model is scored on a private copy (``copy.deepcopy``), in train mode (as benchmark
networks are), with every parameter taking gradients, on the device of the model's first parameter (the
CPU for a model without parameters), with torch's global random state seeded by ``seed`` inside and
restored after; proxies draw their own noise and re-initialisations from ``seed`` (as ``verify_scores.py``
seeds a network's). The model itself is left exactly as it was: weights, buffers (BatchNorm running
statistics, ``num_batches_tracked``), train/eval mode, ``requires_grad`` and ``.grad``.

``images``: a (B, 3, H, W) float batch, normalised as the model expects. ``labels``: (B,) class indices,
needed only by proxies and programs that read a cross-entropy loss (``snip``, ``grad_norm``, ``fisher``,
``grasp``, ``zico``, ``sweetimator``; programs with ``signal="ce"``); asking for one without labels is an
error naming it.

A proxy or program that does not apply to a model (no activation for SWAP, too few stages for AZ-NAS, an
operation without a second derivative for GraSP, a non-finite value) is never returned as NaN, 0 or -inf:
the call raises :class:`~eznas.errors.EznasError`, one line naming each such score and why.
"""
from __future__ import annotations

import math
from typing import Any, Sequence

import pandas as pd
import torch
import torch.nn as nn

from eznas.data import Batch
from eznas.errors import EznasError, reason
from eznas.proxies import Probe, ProxyCall, list_proxies, parse_proxy, per_arch_calls
from eznas.gp.as_proxy import program_call, program_names
from eznas.networks import private_copy


def score(model: nn.Module, images: torch.Tensor, labels: torch.Tensor | None = None,
          proxies: Sequence[str] = (), programs: Sequence[str] = (), seed: int = 0,
          signal: str = "logits_sum") -> dict[str, float]:
    """Per-network scores of ``model`` on ``images``: {proxy spec or program text: value}. Pool-level
    proxies and programs (``az_nas``, programs with ``net_rank``) need :func:`score_pool`."""
    calls = _calls(proxies, programs, seed, signal, len(images))
    pooled = [label for label, call in calls.items() if call.proxy.pool]
    if pooled:
        raise EznasError(f"{', '.join(pooled)}: pool-level (an arch's value ranks it among the archs scored with "
                         "it): use eznas.score_pool(models, images, ...)")
    values, errors = _score_one(model, images, labels, calls, seed)
    _raise(errors, type(model).__name__)
    return values


def score_pool(models: Sequence[nn.Module], images: torch.Tensor, labels: torch.Tensor | None = None,
               proxies: Sequence[str] = (), programs: Sequence[str] = (), seed: int = 0,
               signal: str = "logits_sum") -> dict[str, list[float]]:
    """Scores of each of ``models`` on ``images``: {proxy spec or program text: one value per model, in
    order}; pool-level proxies and programs are computed from their per-network parts over the pool."""
    if not models:
        raise EznasError("score_pool: no models")
    calls = _calls(proxies, programs, seed, signal, len(images))
    parts = per_arch_calls(calls, len(images))
    rows = []
    for i, model in enumerate(models):
        values, errors = _score_one(model, images, labels, parts, seed)
        _raise(errors, f"model {i} ({type(model).__name__})")
        rows.append(values)
    table = pd.DataFrame(rows)
    out: dict[str, list[float]] = {}
    for label, call in calls.items():
        column = call.proxy.pool(table) if call.proxy.pool else table[label]
        values = [float(v) for v in column]
        bad = [i for i, v in enumerate(values) if not math.isfinite(v)]
        if bad:
            raise EznasError(f"{label}: no finite pool score for model(s) {', '.join(map(str, bad))}")
        out[label] = values
    return out


def _calls(proxies: Sequence[str], programs: Sequence[str], seed: int, signal: str, batch_size: int
           ) -> dict[str, ProxyCall]:
    if isinstance(proxies, str) or isinstance(programs, str):
        raise EznasError("proxies and programs are sequences of names / program texts, e.g. proxies=('meco',)")
    if not proxies and not programs:
        raise EznasError(f"nothing to score: name proxies=(...) (registered: {', '.join(list_proxies())}) "
                         "or programs=(...)")
    calls = {}
    for spec in proxies:
        call = parse_proxy(spec, batch_size)
        if call.proxy.arch_only:
            raise EznasError(f"proxy {spec!r} reads a benchmark arch (a learned ranker), not a model")
        calls[call.label] = call
    shared = program_names(programs)
    for text in programs:
        call = program_call(text, signal, seed, shared)
        calls[call.label] = call
    return calls


def _needs_labels(call: ProxyCall) -> bool:
    return call.proxy.labels or any(_needs_labels(part) for part in call.parts)


def _score_one(model: nn.Module, images: torch.Tensor, labels: torch.Tensor | None,
               calls: dict[str, ProxyCall], seed: int) -> tuple[dict[str, float], dict[str, str]]:
    """Values and reasons (where a call does not apply) of the per-network ``calls`` on a copy of ``model``."""
    if not isinstance(model, nn.Module):
        raise EznasError(f"expected a torch.nn.Module, got {type(model).__name__}")
    if not isinstance(images, torch.Tensor) or images.dim() != 4 or not images.is_floating_point():
        raise EznasError(f"images must be a float tensor of shape (B, C, H, W), got "
                         f"{getattr(images, 'shape', type(images).__name__)}")
    missing = [label for label, call in calls.items() if labels is None and _needs_labels(call)]
    if missing:
        raise EznasError(f"{', '.join(missing)}: needs labels (a cross-entropy loss): pass labels=")
    if labels is not None and (labels.shape != images.shape[:1] or labels.dtype != torch.long):
        raise EznasError(f"labels must be a long tensor of shape ({len(images)},), got {labels.dtype} "
                         f"{tuple(labels.shape)}")
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    y = labels if labels is not None else torch.zeros(len(images), dtype=torch.long)
    classes = int(y.max()) + 1 if labels is not None else 1
    values: dict[str, float] = {}
    errors: dict[str, str] = {}
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(seed)
        net = private_copy(model)
        probe = Probe(net, Batch(images.to(device), y.to(device), classes), seed=seed)
        try:
            probe.run(frozenset().union(*(call.needs for call in calls.values())))
        except Exception as exc:  # noqa: BLE001 - named in the error with the calls that needed it
            raise EznasError(f"{type(model).__name__}: the forward/backward pass failed: {exc}") from None
        for label, call in calls.items():
            try:
                value = call(probe)
            except Exception as exc:  # noqa: BLE001 - reported with the call's name
                errors[label] = reason(exc)
                continue
            if not math.isfinite(value):
                errors[label] = f"its value is {value} on this model"
            else:
                values[label] = value
    return values, errors


def _raise(errors: dict[str, Any], where: str) -> None:
    if errors:
        raise EznasError("; ".join(f"{label} does not apply to {where}: {why}" for label, why in errors.items()))
