"""Activation calls, whatever the model's style: modules or functional calls, ReLU or its smooth cousins.

Proxies that read activation patterns (SWAP, NASWOT) and the statistics collector (a unit's block input is
an activation's input) see activations through :class:`ActivationCalls`, a ``TorchFunctionMode``: while it
is active every torch function call passes through it, so ``nn.ReLU()``, ``nn.ReLU6()``, ``nn.GELU()``,
``nn.SiLU()``, ``nn.Hardswish()``, ``nn.LeakyReLU()``, ``nn.ELU()``, ``nn.Mish()`` and the functional calls
behind them (``F.relu``, ``torch.relu``, ``x.relu_()``, ``F.gelu``, ``F.silu``, ...) are all seen alike.
Gates (sigmoid, hardsigmoid: squeeze-excitation's scale) are not activations here.

An activation's *pattern* is ``input > 0`` (for ReLU the same as ``output > 0``; for GELU, SiLU, Hardswish,
ReLU6 the sign of the pre-activation, where the function's gate is open), so a ReLU network's patterns are
the ones SWAP and NASWOT defined.

While the mode is active an in-place activation call (``nn.ReLU(inplace=True)``, ``F.relu(x, inplace=True)``,
``x.relu_()``) runs out of place and returns its result in a new tensor: every model that uses the value an
activation returns computes the same numbers, and the recorded input is never overwritten. (A model that
calls ``x.relu_()`` and then reads ``x`` without taking the returned value is not supported.)

Depends on torch only, so exported proxies (``best_proxy.py``) carry this very code.
"""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode


def activation_functions() -> dict:
    """Every torch function an activation call reaches -> its out-of-place form (taking the same arguments
    but ``inplace``)."""
    return {F.relu: F.relu, torch.relu: torch.relu, torch.relu_: torch.relu, torch.Tensor.relu: torch.relu,
            torch.Tensor.relu_: torch.relu, F.relu6: F.relu6, F.hardtanh: F.hardtanh, F.hardtanh_: F.hardtanh,
            F.gelu: F.gelu, F.silu: F.silu, F.hardswish: F.hardswish, F.mish: F.mish, F.leaky_relu: F.leaky_relu,
            F.leaky_relu_: F.leaky_relu, F.elu: F.elu, F.elu_: F.elu, F.selu: F.selu, torch.selu: F.selu,
            F.celu: F.celu}


class ActivationCalls(TorchFunctionMode):
    """``with ActivationCalls(seen): net(x)`` calls ``seen(x, out)`` for every activation call of the forward
    (input and output, in call order), running it out of place; ``alias(x) -> x'``, when given, first
    replaces the input the activation reads (e.g. a view whose gradient is this call's share)."""

    def __init__(self, seen: Callable[[torch.Tensor, torch.Tensor], None],
                 alias: Callable[[torch.Tensor], torch.Tensor] | None = None) -> None:
        super().__init__()
        self.seen, self.alias = seen, alias
        self.functions = activation_functions()

    def __torch_function__(self, func, types, args=(), kwargs=None):  # noqa: ANN001, ANN204 - torch's protocol
        kwargs = kwargs or {}
        act = self.functions.get(func)
        if act is None or not args or not isinstance(args[0], torch.Tensor):
            return func(*args, **kwargs)
        x = self.alias(args[0]) if self.alias is not None else args[0]
        out = act(x, *args[1:], **{k: v for k, v in kwargs.items() if k != "inplace"})
        self.seen(x, out)
        return out
