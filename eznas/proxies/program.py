"""An evolved program used like a registered proxy (``verify_scores.py --program``)."""
from __future__ import annotations

from eznas.gp.program import parse_program
from eznas.proxies.base import Probe, Proxy, ProxyCall
from eznas.stats import CollectorConfig, collect
from primitives.aggregate import ProgramFailure


def program_call(text: str, signal: str = "logits_sum", noise_seed: int = 0) -> ProxyCall:
    """A ProxyCall that collects the program's statistics (float32) on the probe's network and batch; where
    the program is not defined it raises ProgramFailure with the reason (the scoring loop records it)."""
    program = parse_program(text)
    config = CollectorConfig(names=tuple(sorted(program.terminals)), signal=signal, noise_seed=noise_seed)

    def score(probe: Probe) -> float:
        value, reason = program.evaluate(collect(probe.net, probe.batch, config))
        if reason is not None:
            raise ProgramFailure(reason)
        return value

    return ProxyCall(str(program), Proxy("program", score, frozenset(), f"evolved program {program}"))
