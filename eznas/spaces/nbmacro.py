"""NAS-Bench-Macro (Su et al., "Prioritized Architecture Sampling with Monte-Carlo Tree Search", CVPR 2021):
a macro space of MobileNetV2 blocks on CIFAR-10.

An arch is 8 characters over ``0/1/2``, one per searchable layer in stages of ``STAGES`` = [2, 3, 3] layers:
``0`` identity, ``1`` inverted residual with kernel 3 and expansion 3, ``2`` kernel 5 and expansion 6. The
benchmark's form (``normal_form``): a stage's first layer stays where it is (it changes the resolution and
width, so an identity there is a conv), and within a stage the identities after it come at the stage's end
(the authors train ``get_real_arch(arch)``, so the 3^8 = 6,561 strings are 3,969 distinct networks); a string
in another form is refused, naming the benchmark's form.

The network is the repository's ``train/model.py``, built here from ``layer_plan``: stem conv3x3(3->32)-BN-ReLU;
the 8 layers, the first of each stage at stride 2 doubling the channels (32->64->128->256; an identity there is
conv1x1 stride 2 + BN, elsewhere nothing); conv1x1(256->1280)-BN-ReLU, global average pooling, linear. An
inverted residual from ``c_in`` to ``c_out`` has ``round(c_in * expansion)`` hidden channels: conv1x1-BN-ReLU,
depthwise conv kxk (padding k // 2, the layer's stride)-BN-ReLU, conv1x1-BN, plus its input where the stride
is 1 and ``c_in == c_out``. Convs have no bias. The parameter count of the 10-class network equals the table's
``params`` (all parameters, BN's affine ones included) on every row of the mirror's 600 (tested).

Ops are post-activation Conv-BN-ReLU, so the network declares the collector's ``conv_bn`` unit rule
(eznas.stats): every Conv -> BN pair is a unit. ``cells`` holds the layers that compute something: an identity
at stride 1 is no module at all (the network is one layer shallower, which is what the benchmark's form says),
so AZ-NAS's features, ``stem`` and ``cells``, are the outputs of real layers (an identity module there would
repeat its input: zero progressivity, and a trainability of -inf, on every arch with one).

The table (``nbmacro/nbmacro_dev600_cifar10.csv``, 600 of the 3,969 distinct archs; or a file of the same
layout): ``arch`` (read as text: it keeps its leading zeros), ``test_acc_0..2`` (the best CIFAR-10 test
accuracy over the 50 epochs of each of three trainings, %), ``mean_acc`` (default accuracy), ``std``,
``params``, ``flops``. CIFAR-10 only. An arch's uid is its 0-based row, as in the other row-numbered tables
(``read_archs``: a ``uid`` column is kept).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, NamedTuple, Sequence

import torch
import torch.nn as nn

from eznas.errors import ArchError, DataError
from eznas.spaces.base import Arch, SearchSpace, register_space
from eznas.spaces.encoding import Encoding
from eznas.spaces.nb201 import read_archs

STAGES = (2, 3, 3)
LAYERS = sum(STAGES)
STEM_CHANNELS = 32
HEAD_CHANNELS = 1280
IDENTITY = 0
BLOCKS = {1: (3, 3), 2: (5, 6)}  # choice -> (kernel, expansion) of its inverted residual
CHOICES = "0 identity, 1 inverted residual k3 e3, 2 inverted residual k5 e6"
DATASET = "cifar10"
ACCURACY = "mean_acc"


class Layer(NamedTuple):
    """One searchable layer of a network: its choice (0/1/2), channels in and out, stride."""

    choice: int
    c_in: int
    c_out: int
    stride: int


def stages() -> list[range]:
    """The positions of each stage's layers: [range(0, 2), range(2, 5), range(5, 8)]."""
    ends = [sum(STAGES[:i + 1]) for i in range(len(STAGES))]
    return [range(end - size, end) for size, end in zip(STAGES, ends)]


def normal_form(choices: Sequence[int]) -> tuple[int, ...]:
    """The benchmark's form of an arch: in each stage, after its first layer, the non-identity layers in order,
    then the identities (the authors' ``get_real_arch``)."""
    out: list[int] = []
    for stage in stages():
        rest = [choices[p] for p in stage[1:]]
        out += [choices[stage[0]], *(c for c in rest if c != IDENTITY), *(c for c in rest if c == IDENTITY)]
    return tuple(out)


def parse_arch(spec: Any) -> tuple[int, ...]:
    """``"00000120"`` -> (0, 0, 0, 0, 0, 1, 2, 0); a bad spec raises ArchError naming the string, the bad
    position and what is expected there."""
    if not isinstance(spec, str):
        raise ArchError(f"NAS-Bench-Macro arch must be a string of {LAYERS} characters ({CHOICES}), "
                        f"got {type(spec).__name__} {spec!r}")
    if len(spec) != LAYERS:
        hint = " (a number that lost its leading zeros? read the arch column as text)" \
            if spec.isdigit() and len(spec) < LAYERS else ""
        raise ArchError(f"NAS-Bench-Macro arch {spec!r}: expected {LAYERS} characters ({CHOICES}), got "
                        f"{len(spec)}{hint}")
    for position, token in enumerate(spec):
        if token not in "012":
            raise ArchError(f"NAS-Bench-Macro arch {spec!r}: bad token {token!r} at position {position} "
                            f"(a layer is one of {CHOICES})")
    choices = tuple(int(token) for token in spec)
    for stage in stages():
        for p in stage[2:]:
            if choices[p] != IDENTITY and choices[p - 1] == IDENTITY:
                raise ArchError(f"NAS-Bench-Macro arch {spec!r}: layer {spec[p]!r} at position {p} follows an "
                                f"identity in the stage of positions {stage[0]}-{stage[-1]}: after a stage's first "
                                f"layer its identities come last (the benchmark's form of this network is "
                                f"{''.join(map(str, normal_form(choices)))!r})")
    return choices


def layer_plan(choices: Sequence[int]) -> list[Layer]:
    """The 8 layers of an arch: the first of each stage at stride 2, doubling the channels."""
    plan, channels = [], STEM_CHANNELS
    for stage in stages():
        for p in stage:
            stride = 2 if p == stage[0] else 1
            plan.append(Layer(choices[p], channels, channels * stride, stride))
            channels *= stride
    return plan


def hidden_channels(layer: Layer) -> int:
    """An inverted residual's expanded width: the expansion applies to its input channels."""
    return round(layer.c_in * BLOCKS[layer.choice][1])


def is_skipped(layer: Layer) -> bool:
    """An identity at stride 1 between equal widths: no layer at all (the network is one layer shallower)."""
    return layer.choice == IDENTITY and layer.stride == 1 and layer.c_in == layer.c_out


def layer_params(layer: Layer) -> int:
    """Parameters of one layer (convs without bias, BN weight and bias)."""
    if layer.choice == IDENTITY:
        return 0 if is_skipped(layer) else layer.c_in * layer.c_out + 2 * layer.c_out
    kernel, hidden = BLOCKS[layer.choice][0], hidden_channels(layer)
    return (layer.c_in * hidden + 2 * hidden) + (kernel * kernel * hidden + 2 * hidden) + \
        (hidden * layer.c_out + 2 * layer.c_out)


def count_params(choices: Sequence[int], num_classes: int) -> int:
    """The network's parameter count, from ``layer_plan`` (the table's ``params`` for 10 classes)."""
    plan = layer_plan(choices)
    stem = 3 * STEM_CHANNELS * 9 + 2 * STEM_CHANNELS
    last = plan[-1].c_out
    head = last * HEAD_CHANNELS + 2 * HEAD_CHANNELS + HEAD_CHANNELS * num_classes + num_classes
    return stem + sum(layer_params(layer) for layer in plan) + head


def conv_bn(c_in: int, c_out: int, kernel: int = 1, stride: int = 1, groups: int = 1,
            relu: bool = True) -> list[nn.Module]:
    """Conv (no bias, padding ``kernel // 2``) -> BN (-> ReLU)."""
    layers = [nn.Conv2d(c_in, c_out, kernel, stride, padding=kernel // 2, groups=groups, bias=False),
              nn.BatchNorm2d(c_out)]
    return layers + [nn.ReLU()] if relu else layers


class InvertedResidual(nn.Module):
    """MobileNetV2's block: expand 1x1, depthwise kxk (the stride), project 1x1; the input is added where the
    stride is 1 and the widths are equal."""

    def __init__(self, layer: Layer):
        super().__init__()
        kernel, hidden = BLOCKS[layer.choice][0], hidden_channels(layer)
        self.conv = nn.Sequential(*conv_bn(layer.c_in, hidden),
                                  *conv_bn(hidden, hidden, kernel, layer.stride, groups=hidden),
                                  *conv_bn(hidden, layer.c_out, relu=False))
        self.shortcut = layer.stride == 1 and layer.c_in == layer.c_out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv(x)
        return out + x if self.shortcut else out


def make_layer(layer: Layer) -> nn.Module:
    if layer.choice != IDENTITY:
        return InvertedResidual(layer)
    return nn.Sequential(*conv_bn(layer.c_in, layer.c_out, 1, layer.stride, relu=False))


class MacroNetwork(nn.Module):
    """The NAS-Bench-Macro network of an arch (see the module docstring); returns logits. Its ops are
    Conv-BN-ReLU, so the collector's units are its Conv -> BN pairs (eznas.stats, ``unit_rule``)."""

    unit_rule = "conv_bn"

    def __init__(self, choices: Sequence[int], num_classes: int):
        super().__init__()
        if num_classes < 1:
            raise ArchError(f"NAS-Bench-Macro network needs num_classes >= 1, got {num_classes}")
        plan = layer_plan(choices)
        self.stem = nn.Sequential(*conv_bn(3, STEM_CHANNELS, 3))
        # the layers that compute something: AZ-NAS's features after the stem (an identity's output is its input)
        self.cells = nn.Sequential(*(make_layer(layer) for layer in plan if not is_skipped(layer)))
        self.head = nn.Sequential(*conv_bn(plan[-1].c_out, HEAD_CHANNELS))
        self.classifier = nn.Linear(HEAD_CHANNELS, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.head(self.cells(self.stem(x))).mean(dim=(2, 3)))


@register_space("NASBenchMacro")
class NASBenchMacro(SearchSpace):
    """NAS-Bench-Macro archs (8 layers over 0/1/2) with their mean CIFAR-10 test accuracies."""

    name = "NASBenchMacro"

    @staticmethod
    def check_dataset(dataset: str) -> None:
        if dataset != DATASET:
            raise DataError(f"NASBenchMacro ground truth is CIFAR-10 only (the benchmark trained no other dataset), "
                            f"not {dataset!r}")

    def encoding(self) -> Encoding:
        """The 8 layers' choices over 0/1/2, in the benchmark's form only (3,969 of the 3^8 strings)."""
        return Encoding(((0, 1, 2),) * LAYERS, parse_arch, lambda code: "".join(map(str, code)),
                        lambda code: normal_form(code) == code)

    def default_benchmark(self, data_root: Path, dataset: str) -> Path:
        self.check_dataset(dataset)
        return Path(data_root) / "nbmacro" / "nbmacro_dev600_cifar10.csv"

    def load(self, path: Path, dataset: str, accuracy_key: str | None = None) -> list[Arch]:
        """Read an ``arch,<accuracy>`` CSV (accuracy ``mean_acc`` by default); uid = 0-based row (or ``uid``)."""
        self.check_dataset(dataset)
        return read_archs(path, "arch", accuracy_key or ACCURACY, spec_of)

    def build(self, spec: str, num_classes: int) -> nn.Module:
        return MacroNetwork(parse_arch(spec), num_classes)


def spec_of(text: Any, where: str) -> str:
    """A table's arch string, validated (errors name ``where``)."""
    try:
        parse_arch(text)
    except ArchError as exc:
        raise ArchError(f"{where}: {exc}") from None
    return text
