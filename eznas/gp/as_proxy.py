"""Evolved programs used like registered proxies (``verify_scores.py --program``)."""
from __future__ import annotations

import math
from dataclasses import replace
from typing import Any, Iterable

import numpy as np

from eznas.errors import EznasError
from eznas.gp.parse import parse_program
from eznas.gp.program import Program, ProgramError
from eznas.gp.pset import proxy_name
from eznas.proxies.base import Probe, Proxy, ProxyCall, list_proxies, parse_proxy
from eznas.stats import CollectorConfig, collect
from eznas.primitives.aggregate import ProgramFailure


def program_names(texts: Iterable[str]) -> tuple[str, ...]:
    """The statistics the parsable programs among ``texts`` read, together (one collection serves them all)."""
    names: set[str] = set()
    for text in texts:
        try:
            names |= parse_program(text).terminals
        except ProgramError:
            continue  # reported where that program is parsed
    return tuple(sorted(names))


def proxy_needs(terminals: Iterable[str]) -> frozenset[str]:
    """The shared passes the proxies behind some proxy terminals read."""
    return frozenset().union(*(parse_proxy(proxy_name(t)).needs for t in terminals))


def terminal_calls(terminals: Iterable[str]) -> list[ProxyCall]:
    """The registered proxies behind some proxy terminals (``zc_<proxy>``), at their defaults, labelled by
    the terminal."""
    return [replace(parse_proxy(proxy_name(t)), label=t) for t in terminals]


def terminal_error(terminal: str, exc: Exception) -> str:
    """A proxy terminal that raised: the reason its programs are not defined on this network."""
    return f"{type(exc).__name__} in {terminal}"


def terminal_value(terminal: str, value: float) -> float | str:
    """A proxy terminal's value: its score, or the reason it is not defined there (not finite)."""
    return value if math.isfinite(value) else f"not finite: {terminal}"


def proxy_values(probe: Probe, terminals: Iterable[str]) -> dict[str, float | str]:
    """Proxy terminals on a probe whose shared pass the scoring loop has done: each registered proxy's score
    at its defaults, or a string, the reason it is not defined there."""
    out: dict[str, float | str] = {}
    for call in terminal_calls(terminals):
        try:
            out[call.label] = terminal_value(call.label, call(probe))
        except Exception as exc:  # noqa: BLE001 - a failing proxy makes the program undefined on this network
            out[call.label] = terminal_error(call.label, exc)
    return out


def program_call(text: str, signal: str = "logits_sum", noise_seed: int = 0,
                 shared: tuple[str, ...] | None = None) -> ProxyCall:
    """A ProxyCall that collects the program's statistics (float32) on the probe's network and batch; where
    the program is not defined it raises ProgramFailure with the reason (the scoring loop records it).

    With ``shared`` (a superset of its names, e.g. ``program_names`` of all programs scored together), the
    programs of one probe share one collection of those names: the same values (a statistic does not depend
    on which others are collected with it), collected once; the first program's seconds include it. They
    share what they compute from it too: an aggregated sub-program's value (keyed by its text, as in the
    value cache) and a proxy terminal's, computed by the first program that reads it."""
    program = parse_program(text)
    if program.is_pool:
        return pool_program_call(program, signal, noise_seed, shared)
    names = tuple(sorted(program.terminals))
    if shared is not None and not set(names) <= set(shared):
        raise ValueError(f"shared names {shared} lack some of {names}")
    config = CollectorConfig(names=shared if shared is not None else names, signal=signal, noise_seed=noise_seed)

    def score(probe: Probe) -> float:
        key = ("program-statistics", config)
        stats = probe.memo.get(key) if shared is not None else None
        if stats is None:
            stats = collect(probe.net, probe.batch, config)
            if shared is not None:
                probe.memo[key] = stats
        # one program alone: nothing to share (its own aggregates are each computed once anyway)
        values = probe.memo.setdefault(("program-values", config), {}) if shared is not None else None
        if program.proxies:
            terminals = probe.memo.setdefault(("proxy-terminals",), {}) if shared is not None else {}
            if missing := [t for t in program.proxies if t not in terminals]:
                terminals.update(proxy_values(probe, missing))
            stats = replace(stats, features={**stats.features, **{t: terminals[t] for t in program.proxies}})
        value, reason = program.evaluate(stats, values)
        if reason is not None:
            raise ProgramFailure(reason)
        return value

    # the proxy terminals' shared pass is the scoring loop's (Probe.run with every proxy's needs)
    labels = signal == "ce" or any(parse_proxy(proxy_name(t)).proxy.labels for t in program.proxies)
    return ProxyCall(str(program), Proxy("program", score, proxy_needs(program.proxies),
                                         f"evolved program {program}", labels=labels))


def pool_program_call(program: Program, signal: str, noise_seed: int, shared: tuple[str, ...] | None) -> ProxyCall:
    """A pool program as a pool-level ProxyCall: its frontier parts are scored per arch (programs, columns
    named by their text; ``part:<text>`` where the text is also a registered proxy's name, e.g. the feature
    ``params``), then ``Program.pool_scores`` combines their columns once the pool is complete. The parts of
    a probe share one collection of statistics (the program's, or ``shared``), the first part's seconds
    include it."""
    registered = set(list_proxies())
    shared = shared if shared is not None else tuple(sorted(program.terminals))  # the parts: one collection
    parts = {key: program_call(key, signal, noise_seed, shared) for key in program.frontier()}
    labels = {key: f"part:{key}" if key in registered else key for key in parts}

    def combine(table: Any) -> np.ndarray:
        rows = [{key: float(table.at[i, labels[key]]) for key in parts} for i in table.index]
        return np.array([math.nan if isinstance(v, str) else v for v in program.pool_scores(rows)], float)

    def per_arch(probe: Probe) -> float:
        raise EznasError(f"program {program} is pool-level (net_rank ranks an arch among those scored with it): "
                         "score a pool with verify_scores.py")

    proxy = Proxy("program", per_arch, frozenset(), f"evolved pool program {program}", pool=combine,
                  components=tuple(labels.values()))
    return ProxyCall(str(program), proxy,
                     parts=tuple(replace(call, label=labels[key]) for key, call in parts.items()))
