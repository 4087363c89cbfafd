"""Score benchmark architectures with registered proxies: build, initialise, one shared pass, proxies."""
from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field
from typing import Collection, Iterator, Sequence

import numpy as np
import torch

from eznas.data import BatchSource
from eznas.errors import reason
from eznas.proxies import Probe, ProxyCall, parse_proxy
from eznas.networks import arch_seed, build_network, resolve_device  # noqa: F401
from eznas.spaces import Arch, SearchSpace

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
    """Yield the scores of each arch in turn, keyed by proxy spec (``name[:key=value...]``), except the
    archs whose uid is in ``skip`` (each arch's batch and initialisation stay those of its position).
    A proxy that raises gets NaN and its error is kept; so do all the proxies of an arch whose network
    cannot be built, and those reading a shared pass that fails."""
    chosen = [p if isinstance(p, ProxyCall) else parse_proxy(p) for p in proxies]
    needs = frozenset().union(*(p.needs for p in chosen))
    arch_only = bool(chosen) and all(p.proxy.arch_only for p in chosen)  # no network to build
    for i, arch in enumerate(archs):
        if arch.uid in skip:
            continue
        start = time.perf_counter()
        net_seed = arch_seed(seed, arch.uid)
        failed: dict[str, str] = {}  # a step every proxy (build) or the pass readers (shared) depend on
        try:
            net = None if arch_only else build_network(space, arch, batches.spec.num_classes, seed, init, device)
            probe = Probe(net, batches.batch(i).to(device), seed=net_seed, arch=arch)
        except Exception as exc:  # noqa: BLE001 - one arch must not stop the run
            failed["build"] = f"building the network: {reason(exc)}"
        else:
            try:
                probe.run(needs)
            except Exception as exc:  # noqa: BLE001
                failed["shared"] = f"the shared pass: {reason(exc)}"
        build = time.perf_counter() - start - (0.0 if "build" in failed else probe.seconds)
        scores, seconds, errors = {}, {}, {}
        for proxy in chosen:
            t0 = time.perf_counter()
            if blocked := failed.get("build") or (failed.get("shared") if proxy.needs else None):
                scores[proxy.label], errors[proxy.label] = math.nan, blocked
            else:
                try:
                    scores[proxy.label] = proxy(probe)
                except Exception as exc:  # noqa: BLE001 - one failing proxy must not stop the run
                    scores[proxy.label], errors[proxy.label] = math.nan, reason(exc)
                    log.debug("%s on %s failed: %s", proxy.label, arch.uid, exc)
            shared = probe.seconds if proxy.needs and "build" not in failed else 0.0
            seconds[proxy.label] = build + shared + time.perf_counter() - t0
        yield ArchScores(arch, scores, seconds, errors)
