"""verify_scores: score sampled benchmark architectures with proxies and rank-correlate with accuracy.

* :mod:`eznas.verify.config`: ``VerifyConfig``, its checks, the settings that change the scores and the calls
  to score;
* :mod:`eznas.verify.run`: the run (:func:`run_verify`): scoring, checkpoints, the outputs;
* :mod:`eznas.verify.folder`: the run folder (config.json, the guard, the resume check, the partial run);
* :mod:`eznas.verify.summary`: the figures per proxy and the command's lines about them.

The public API (``VerifyConfig``, ``run_verify``; docs/proxies.md) is importable from here.
"""
from eznas.verify.config import VerifyConfig
from eznas.verify.run import run_verify

__all__ = ["VerifyConfig", "run_verify"]
