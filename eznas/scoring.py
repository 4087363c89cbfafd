"""Score architectures with registered proxies: build, initialise, one shared pass, proxies. ``score_arch`` is
the one recipe, for one arch: verify (``score_archs``), search and the fitness's values (gp/values.py) use it."""
from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field
from typing import Callable, Collection, Iterator, Sequence

import numpy as np
import torch

from eznas.data import BatchSource
from eznas.errors import reason
from eznas.proxies import Probe, ProxyCall, parse_proxy
from eznas.networks import arch_seed, build_network, resolve_device  # noqa: F401
from eznas.spaces import Arch, SearchSpace
from eznas.threads import refit_threads

log = logging.getLogger(__name__)

def sample_archs(archs: Sequence[Arch], n: int | None, seed: int) -> list[Arch]:
    """``n`` archs drawn without replacement by seed (all of them, in file order, when n is None or <0)."""
    if n is None or n < 0 or n >= len(archs):
        return list(archs)
    idx = np.random.default_rng(seed).choice(len(archs), n, replace=False)
    return [archs[i] for i in idx]


@dataclass
class ArchScores:
    arch: Arch
    scores: dict[str, float]
    seconds: dict[str, float]  # per proxy: build + the passes it needs + its own compute
    errors: dict[str, str] = field(default_factory=dict)
    steps: dict[str, float] = field(default_factory=dict)  # "build" (network, batch), "shared pass", each proxy
    probe: Probe | None = None  # the network on its batch after the proxies, for the caller to read on (keep)


def proxy_error(label: str, exc: Exception) -> str:
    """How a proxy that raised is recorded by default: the exception as one line."""
    return reason(exc)


def score_arch(
    space: SearchSpace,
    arch: Arch,
    calls: Sequence[ProxyCall],
    batches: BatchSource,
    index: int = 0,
    *,
    seed: int = 0,
    init: str = "default",
    device: torch.device = torch.device("cpu"),
    keep: bool = False,
    failure: Callable[[str, Exception], str] = proxy_error,
) -> ArchScores:
    """Score one arch: its network (built from ``space`` and initialised by ``init`` from
    ``arch_seed(seed, arch.uid)``, on ``device``, in train mode) on ``batches.batch(index)``, one Probe whose
    shared pass serves every call, then each call in turn, keyed by its label. A call that raises gets NaN
    and ``failure(label, exc)`` as its error; so do all the calls when the network cannot be built, and
    those reading a shared pass that fails. ``keep``: the caller reads the network further (the result's
    ``probe``), so it is built even for arch-only calls, and a failed build or shared pass raises."""
    refit_threads()  # a command's share among the eznas commands running beside it now
    start = time.perf_counter()
    needs = frozenset().union(*(c.needs for c in calls))
    arch_only = not keep and bool(calls) and all(c.proxy.arch_only for c in calls)  # no network to build
    failed: dict[str, str] = {}  # a step every call (build) or the pass readers (shared) depend on
    probe = None
    try:
        net = None if arch_only else build_network(space, arch, batches.spec.num_classes, seed, init, device)
        probe = Probe(net, batches.batch(index).to(device), seed=arch_seed(seed, arch.uid), arch=arch)
    except Exception as exc:  # noqa: BLE001 - one arch must not stop the run
        if keep:
            raise
        failed["build"] = f"building the network: {reason(exc)}"
    built = time.perf_counter()
    if probe is not None:
        try:
            probe.run(needs)
        except Exception as exc:  # noqa: BLE001
            if keep:
                raise
            failed["shared"] = f"the shared pass: {reason(exc)}"
    shared = probe.seconds if probe is not None else 0.0
    steps = {"build": built - start, "shared pass": time.perf_counter() - built}
    build = time.perf_counter() - start - shared
    scores, seconds, errors = {}, {}, {}
    for call in calls:
        t0 = time.perf_counter()
        if blocked := failed.get("build") or (failed.get("shared") if call.needs else None):
            scores[call.label], errors[call.label] = math.nan, blocked
        else:
            try:
                scores[call.label] = call(probe)
            except Exception as exc:  # noqa: BLE001 - one failing proxy must not stop the run
                scores[call.label], errors[call.label] = math.nan, failure(call.label, exc)
                log.debug("%s on %s failed: %s", call.label, arch.uid, exc)
        steps[call.label] = time.perf_counter() - t0
        seconds[call.label] = build + (shared if call.needs else 0.0) + steps[call.label]
    return ArchScores(arch, scores, seconds, errors, steps, probe if keep else None)


def score_archs(
    space: SearchSpace,
    archs: Sequence[Arch],
    proxies: Sequence[str | ProxyCall],
    batches: BatchSource,
    *,
    seed: int = 0,
    init: str = "default",
    device: torch.device = torch.device("cpu"),
    skip: Collection[str] = (),
) -> Iterator[ArchScores]:
    """Yield the scores of each arch in turn (``score_arch``), keyed by proxy spec (``name[:key=value...]``),
    except the archs whose uid is in ``skip`` (each arch's batch and initialisation stay those of its
    position)."""
    chosen = [p if isinstance(p, ProxyCall) else parse_proxy(p) for p in proxies]
    for i, arch in enumerate(archs):
        if arch.uid not in skip:
            yield score_arch(space, arch, chosen, batches, i, seed=seed, init=init, device=device)
