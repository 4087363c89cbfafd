"""Evolved programs used like registered proxies (``verify_scores.py --program``)."""
from __future__ import annotations

from typing import Iterable

from eznas.gp.program import ProgramError, parse_program
from eznas.proxies.base import Probe, Proxy, ProxyCall
from eznas.stats import CollectorConfig, collect
from primitives.aggregate import ProgramFailure


def program_names(texts: Iterable[str]) -> tuple[str, ...]:
    """The statistics the parsable programs among ``texts`` read, together (one collection serves them all)."""
    names: set[str] = set()
    for text in texts:
        try:
            names |= parse_program(text).terminals
        except ProgramError:
            continue  # reported where that program is parsed
    return tuple(sorted(names))


def program_call(text: str, signal: str = "logits_sum", noise_seed: int = 0,
                 shared: tuple[str, ...] | None = None) -> ProxyCall:
    """A ProxyCall that collects the program's statistics (float32) on the probe's network and batch; where
    the program is not defined it raises ProgramFailure with the reason (the scoring loop records it).

    With ``shared`` (a superset of its names, e.g. ``program_names`` of all programs scored together), the
    programs of one probe share one collection of those names: the same values (a statistic does not depend
    on which others are collected with it), collected once; the first program's seconds include it."""
    program = parse_program(text)
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
        value, reason = program.evaluate(stats)
        if reason is not None:
            raise ProgramFailure(reason)
        return value

    return ProxyCall(str(program), Proxy("program", score, frozenset(), f"evolved program {program}"))
