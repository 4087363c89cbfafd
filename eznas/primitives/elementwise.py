"""Element-wise primitives: Tensor -> Tensor and (Tensor, Tensor) -> Tensor, with safe forms."""
from __future__ import annotations

import torch

from eznas.primitives.base import Tensor, primitive

T = torch.Tensor
U = (Tensor,)
B = (Tensor, Tensor)


@primitive("log", U, Tensor)
def log(x: T) -> T:
    """log x where x > 0, else 0."""
    return torch.where(x > 0, torch.log(torch.where(x > 0, x, 1.0)), 0.0)


@primitive("abslog", U, Tensor)
def abslog(x: T) -> T:
    """log |x| where x != 0, else 0."""
    a = x.abs()
    return torch.where(a > 0, torch.log(torch.where(a > 0, a, 1.0)), 0.0)


@primitive("abs", U, Tensor)
def abs_(x: T) -> T:
    """|x|."""
    return x.abs()


@primitive("square", U, Tensor)
def square(x: T) -> T:
    """x^2."""
    return x * x


@primitive("sqrt", U, Tensor)
def sqrt(x: T) -> T:
    """sqrt |x|."""
    return x.abs().sqrt()


@primitive("exp", U, Tensor)
def exp(x: T) -> T:
    """exp(min(x, 30)): finite for any finite input."""
    return torch.exp(x.clamp(max=30.0))


@primitive("sigmoid", U, Tensor)
def sigmoid(x: T) -> T:
    """1 / (1 + exp(-x))."""
    return torch.sigmoid(x)


@primitive("relu", U, Tensor)
def relu(x: T) -> T:
    """max(x, 0)."""
    return torch.relu(x)


@primitive("sign", U, Tensor)
def sign(x: T) -> T:
    """-1, 0 or 1."""
    return torch.sign(x)


@primitive("heaviside", U, Tensor)
def heaviside(x: T) -> T:
    """1 where x > 0, else 0."""
    return (x > 0).to(x.dtype)


@primitive("reciprocal", U, Tensor)
def reciprocal(x: T) -> T:
    """1 / x where x != 0, else 0."""
    nz = x != 0
    return torch.where(nz, 1.0 / torch.where(nz, x, 1.0), 0.0)


@primitive("neg", U, Tensor)
def neg(x: T) -> T:
    """-x."""
    return -x


@primitive("zscore", U, Tensor)
def zscore(x: T) -> T:
    """(x - mean) / std over all elements; zeros when the std is 0 or undefined."""
    if x.numel() < 2:
        return torch.zeros_like(x)
    std = x.std()
    return (x - x.mean()) / std if std > 0 else torch.zeros_like(x)


@primitive("softmax_channel", U, Tensor)
def softmax_channel(x: T) -> T:
    """Softmax over the channel dim (dim 1) of a (batch, channel, ...) tensor; over all of a 1-d one."""
    return torch.softmax(x, dim=1 if x.dim() >= 2 else -1) if x.dim() else torch.ones_like(x)


@primitive("softmax_space", U, Tensor)
def softmax_space(x: T) -> T:
    """Softmax over the spatial positions (dims 2..) of each (sample, channel) map; over all of a <3-d one."""
    if x.dim() >= 3:
        return torch.softmax(x.flatten(2), dim=-1).view_as(x)
    return torch.softmax(x.flatten(), dim=0).view_as(x) if x.dim() else torch.ones_like(x)


@primitive("logdet", U, Tensor)
def logdet(x: T) -> T:
    """log det of each square map (the last two dims), in float64; NaN (negative determinant) -> 0 and
    -inf (singular) kept, as EZNAS. A non-square input is an error."""
    if x.dim() < 2 or x.shape[-1] != x.shape[-2]:
        raise ValueError(f"logdet needs square maps, got shape {tuple(x.shape)}")
    return torch.nan_to_num(torch.logdet(x.double()), nan=0.0, posinf=float("inf"), neginf=float("-inf"))


@primitive("add", B, Tensor)
def add(a: T, b: T) -> T:
    """a + b (broadcasting)."""
    return a + b


@primitive("sub", B, Tensor)
def sub(a: T, b: T) -> T:
    """a - b."""
    return a - b


@primitive("mul", B, Tensor)
def mul(a: T, b: T) -> T:
    """a * b."""
    return a * b


@primitive("div", B, Tensor)
def div(a: T, b: T) -> T:
    """a / b where b != 0, else 0."""
    nz = b != 0
    return torch.where(nz, a / torch.where(nz, b, 1.0), 0.0)


@primitive("minimum", B, Tensor)
def minimum(a: T, b: T) -> T:
    """Element-wise min."""
    return torch.minimum(a, b)


@primitive("maximum", B, Tensor)
def maximum(a: T, b: T) -> T:
    """Element-wise max."""
    return torch.maximum(a, b)


@primitive("lt", B, Tensor)
def lt(a: T, b: T) -> T:
    """1 where a < b, else 0."""
    return (a < b).to(torch.result_type(a, b))


@primitive("gt", B, Tensor)
def gt(a: T, b: T) -> T:
    """1 where a > b, else 0."""
    return (a > b).to(torch.result_type(a, b))
