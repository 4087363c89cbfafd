"""The proxy registry and the Probe: one network on one batch, with the passes proxies share.

A proxy is a function ``fn(probe, **options) -> float`` registered with the passes it reads::

    @register_proxy("snip", needs={"backward"})
    def snip(probe: Probe) -> float: ...

``needs`` is a subset of PASSES. The Probe runs one forward pass (with a cross-entropy backward when a
proxy needs it) and records, through hooks, only what the requested proxies read; several proxies in
one run therefore share the network build and the pass. A proxy that needs passes of its own (another
signal, another input, re-initialised weights) runs them on ``probe.copy()``, never on ``probe.net``.

Options are keyword-only parameters with defaults (the paper's protocol), set per run as
``name:key=value:key=value``, e.g. ``swap:repeats=8`` or ``sweetimator:low=1e-5:high=5e-5``. Their valid
values are declared with the proxy, checked when a spec is parsed (a float must also be finite)::

    @register_proxy("sweetimator", needs={"backward"}, valid={"low": at_least(0), "high": above(0)},
                    rules=[Valid(lambda o: o["low"] < o["high"], "low < high", ("low", "high"))])

A rule sees all the options (defaults filled in) and, when known, ``batch_size``.
"""
from __future__ import annotations

import contextlib
import copy
import inspect
import math
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from eznas.activations import ActivationCalls
from eznas.data import Batch
from eznas.errors import EznasError
from eznas.hooks import attached
from eznas.registry import Registry, Valid, check_values, doc_line

PASSES = frozenset({"forward", "backward", "relu_kernel", "macs"})
FINITE = Valid(math.isfinite, "a finite number")


@dataclass(frozen=True)
class Proxy:
    name: str
    fn: Callable[..., float]
    needs: frozenset[str]
    doc: str  # one line: what it computes, and the reference
    valid: Mapping[str, Valid] = field(default_factory=dict)  # option -> its valid values
    rules: tuple[Valid, ...] = ()  # tests of all the options together (plus batch_size when known)
    # a pool-level proxy: scores of the whole pool from its per-arch components' columns (see register_pool_proxy)
    pool: Callable[[Any], Any] | None = None
    components: tuple[str, ...] = ()
    arch_only: bool = False  # reads only the arch and the batch's shape (a learned ranker): no network is built
    labels: bool = False  # reads the batch's labels (a cross-entropy loss); every proxy needing "backward" does
    parts: tuple["ProxyCall", ...] = ()  # a pool program registered as a proxy: its per-arch parts (ProxyCall.parts)

    def options(self) -> dict[str, Any]:
        """The proxy's options and their defaults."""
        return {p.name: p.default for p in inspect.signature(self.fn).parameters.values()
                if p.kind is p.KEYWORD_ONLY}

    def check(self, options: Mapping[str, Any], batch_size: int | None = None, label: str | None = None) -> None:
        """Raise EznasError naming the first option (of ``options`` over the defaults) that is not valid."""
        where = f"proxy {label or self.name!r}"
        values = {**self.options(), **options}
        check_values(values, {k: FINITE for k, v in values.items() if isinstance(v, float)}, where)
        check_values(values, self.valid, where)
        context = {**values, "batch_size": batch_size}
        for rule in self.rules:
            if not rule(context):
                shown = ", ".join(f"{k}={context[k]}" for k in rule.keys)
                raise EznasError(f"{where}: needs {rule.text}, got {shown}")


@dataclass(frozen=True)
class ProxyCall:
    """A proxy with its options bound; ``label`` is the spec as written (the output column name)."""

    label: str
    proxy: Proxy
    options: dict[str, Any] = field(default_factory=dict)
    parts: tuple["ProxyCall", ...] = ()  # a pool-level call's components that are not registered proxies

    @property
    def needs(self) -> frozenset[str]:
        return self.proxy.needs

    def __call__(self, probe: "Probe") -> float:
        return float(self.proxy.fn(probe, **self.options))


PROXIES: Registry[Proxy] = Registry("proxy", plugins="eznas.proxies")


def register_proxy(name: str, needs: Iterable[str] = (), valid: Mapping[str, Valid] | None = None,
                   rules: Sequence[Valid] = (), labels: bool = False) -> Callable:
    """Register ``fn(probe, **options)``; ``valid`` and ``rules`` declare its options' valid values; ``labels``:
    it reads the batch's labels in passes of its own (implied by ``needs={"backward"}``)."""
    needs = frozenset(needs)
    if not needs <= PASSES:
        raise ValueError(f"proxy {name!r}: unknown needs {sorted(needs - PASSES)}; valid: {sorted(PASSES)}")

    def decorator(fn: Callable[..., float]) -> Callable[..., float]:
        proxy = Proxy(name, fn, needs, doc_line(fn), dict(valid or {}), tuple(rules),
                      labels=labels or "backward" in needs)
        if unknown := sorted(set(proxy.valid) - set(proxy.options())):
            raise ValueError(f"proxy {name!r}: valid values given for unknown options {unknown}")
        proxy.check({})  # the defaults themselves must be valid
        PROXIES.register(name)(proxy)
        return fn

    return decorator


def register_pool_proxy(name: str, components: Sequence[str]) -> Callable:
    """Register ``combine(table) -> array``: a proxy whose value for an arch depends on the pool scored with
    it (e.g. AZ-NAS's sum of log ranks). ``components`` are per-arch proxies; a scorer of a pool scores them
    for every arch, then ``combine`` turns their columns (a DataFrame, one row per arch) into the scores.
    Calling it on one arch is an error naming it."""
    def decorator(combine: Callable[[Any], Any]) -> Callable[[Any], Any]:
        def per_arch(probe: "Probe") -> float:
            raise EznasError(f"{name} is pool-level (its value ranks an arch among the archs scored with it): "
                             f"score a pool with verify_scores.py, or use its components {', '.join(components)}")
        PROXIES.register(name)(Proxy(name, per_arch, frozenset(), doc_line(combine), pool=combine,
                                     components=tuple(components)))
        return combine

    return decorator


def list_proxies(pattern: str = "*") -> list[str]:
    return PROXIES.names(pattern)


def get_proxy(name: str) -> Proxy:
    return PROXIES.get(name)


def parse_proxy(spec: str, batch_size: int | None = None) -> ProxyCall:
    """``name[:key=value...]`` -> ProxyCall; values take the type of the option's default and are checked
    against the proxy's valid values (and, given ``batch_size``, its rules that depend on it)."""
    name, *pairs = spec.strip().split(":")
    proxy = get_proxy(name)
    defaults, options = proxy.options(), {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        if not sep or key not in defaults:
            valid = ", ".join(f"{k}={v}" for k, v in defaults.items()) or "none"
            raise EznasError(f"proxy {spec!r}: bad option {pair!r} (options of {name}: {valid})")
        options[key] = _convert(text, defaults[key], spec)
    proxy.check(options, batch_size, spec.strip())
    return ProxyCall(spec.strip(), proxy, options, parts=proxy.parts)


def _convert(text: str, default: Any, spec: str) -> Any:
    try:
        if isinstance(default, bool):
            if text.lower() not in ("true", "false", "1", "0"):
                raise ValueError(text)
            return text.lower() in ("true", "1")
        if isinstance(default, int):
            return int(text)
        if isinstance(default, float) or default is None:
            return float(text)
        return type(default)(text)
    except ValueError:
        raise EznasError(f"proxy {spec!r}: cannot read {text!r} as {type(default).__name__}") from None


def weight_layers(net: nn.Module) -> Iterator[nn.Module]:
    """Conv2d and Linear modules: the layers the classic gradient proxies sum over."""
    return (m for m in net.modules() if isinstance(m, (nn.Conv2d, nn.Linear)))


@dataclass
class Probe:
    """A network on a batch. ``run(needs)`` does the shared pass; proxies read its results."""

    net: nn.Module | None  # None when every proxy scored is arch-only (Proxy.arch_only)
    batch: Batch
    seed: int = 0  # the network's initialisation seed; proxies derive their own seeds from it
    logits: torch.Tensor | None = None
    weight_grads: dict[nn.Module, torch.Tensor] = field(default_factory=dict)  # CE grads per Conv/Linear
    relu_kernel: torch.Tensor | None = None  # NASWOT's K = sum over activations of c c^T + (1-c)(1-c)^T
    activations: int = 0  # the activation calls whose codes K sums
    macs: float | None = None  # multiply-accumulates of Conv2d and Linear for one sample
    seconds: float = 0.0  # time spent in the shared pass
    memo: dict[tuple, Any] = field(default_factory=dict)  # results one proxy computes for another
    arch: Any = None  # the Arch scored (uid, spec), for proxies that read the arch itself (learned rankers)

    def copy(self) -> nn.Module:
        """A private copy of the network (same weights, train mode) for a proxy's own passes."""
        return copy.deepcopy(self.net).train()

    def generator(self, salt: int = 0) -> torch.Generator:
        """A CPU generator seeded from the network's seed, for a proxy's own random draws."""
        return torch.Generator().manual_seed((self.seed * 1_000_003 + salt) % (1 << 63))

    def run(self, needs: Iterable[str]) -> None:
        """The one shared pass: a forward (plus CE backward, ReLU codes, MAC counts as needed)."""
        needs = frozenset(needs)
        if not needs:
            return
        start = time.perf_counter()
        hooks = []
        if "relu_kernel" in needs:
            b = self.batch.x.shape[0]
            self.relu_kernel = torch.zeros(b, b, dtype=torch.float64, device=self.batch.x.device)
            self.activations = 0
        if "macs" in needs:
            self.macs = 0.0
            hooks += [m.register_forward_hook(self._add_macs) for m in weight_layers(self.net)]
        codes = ActivationCalls(self._add_codes) if "relu_kernel" in needs else contextlib.nullcontext()
        with attached(hooks):
            self.net.zero_grad(set_to_none=True)
            with torch.set_grad_enabled("backward" in needs):
                with codes:
                    self.logits = self.net(self.batch.x)
                if "backward" in needs:
                    F.cross_entropy(self.logits, self.batch.y).backward()
                    self.weight_grads = {m: m.weight.grad for m in weight_layers(self.net)
                                         if m.weight.grad is not None}
                    self.net.zero_grad(set_to_none=True)
        self.seconds = time.perf_counter() - start

    def _add_codes(self, inp: torch.Tensor, out: torch.Tensor) -> None:
        """NASWOT's binary codes of one activation call (input > 0: eznas.activations), added to its kernel."""
        c = (inp.detach() > 0).flatten(1).to(torch.float64)
        self.relu_kernel += c @ c.T + (1 - c) @ (1 - c).T
        self.activations += 1

    def _add_macs(self, module: nn.Module, inputs: tuple[torch.Tensor, ...], out: torch.Tensor) -> None:
        if isinstance(module, nn.Conv2d):
            k = module.weight[0].numel()  # (C_in / groups) * kh * kw
            self.macs += out[0].numel() * k
        else:
            self.macs += module.in_features * module.out_features


def per_arch_calls(calls: dict[str, ProxyCall], batch_size: int) -> dict[str, ProxyCall]:
    """What is scored per arch: ``calls`` with each pool-level one replaced by its components (a registered
    pool proxy's, or a pool program's parts; each added once)."""
    out: dict[str, ProxyCall] = {}
    for label, call in calls.items():
        parts = {p.label: p for p in call.parts}  # a pool program's parts: per-arch programs
        for part in call.proxy.components if call.proxy.pool else (label,):
            if part not in out:
                out[part] = calls.get(part) or parts.get(part) or parse_proxy(part, batch_size)
    return out
