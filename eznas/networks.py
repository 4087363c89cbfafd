"""One recipe for a network that is scored: build it from its arch, seed its initialisation by (run seed,
arch id), initialise, place it on the device in train mode. Scoring, fitness, tests and benchmarks all use
``build_network``, so an arch is the same network wherever it is scored."""
from __future__ import annotations

import copy
import zlib

import torch
import torch.nn as nn

from eznas.inits import get_init
from eznas.spaces import Arch, SearchSpace


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` picks CUDA when a GPU is present, else the CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("--device cuda: no CUDA device is available (use --device auto or cpu)")
    return torch.device(name)


def private_copy(model: nn.Module) -> nn.Module:
    """What a user's model is scored as: a deep copy in train mode with every parameter taking gradients and no
    ``.grad`` (the model itself is left as it was)."""
    net = copy.deepcopy(model).train()
    for p in net.parameters():
        p.requires_grad_(True)
        p.grad = None
    return net


def arch_seed(seed: int, uid: str) -> int:
    """The initialisation seed of one network: fixed by (run seed, arch id), not by sampling order."""
    return zlib.crc32(f"{seed}:{uid}".encode())


def build_network(space: SearchSpace, arch: Arch, classes: int, seed: int, init: str = "default",
                  device: torch.device | str = "cpu") -> nn.Module:
    """``arch`` of ``space`` with ``classes`` outputs, initialised from ``arch_seed(seed, arch.uid)`` by
    the initialisation ``init`` (``eznas.inits``: drawn on the global RNG so seeded), on ``device``, in train
    mode."""
    scheme = get_init(init)  # an unknown name fails before the build
    torch.manual_seed(arch_seed(seed, arch.uid))
    net = space.build(arch.spec, classes)
    scheme(net, None)
    return net.to(device).train()
