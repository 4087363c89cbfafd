"""A user's own space or proxy, plugged in with ``--plugin MODULE`` (or an entry point): named like eznas's own
in verify, search and evolve, in worker processes too; a module that does not import is one error line."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from eznas.registry import PLUGINS_ENV

REPO = Path(__file__).resolve().parents[1]
PLUGIN = '''
import pandas as pd
import torch.nn as nn
from eznas.errors import ArchError
from eznas.proxies.base import register_proxy
from eznas.spaces import Arch, SearchSpace, register_space


@register_space("ToyWidths")
class ToyWidths(SearchSpace):
    """A conv net per width (the arch string), with made-up accuracies."""

    datasets = ("cifar10",)

    def default_benchmark(self, data_root, dataset):
        return data_root / "toy" / "widths.csv"

    def load(self, path, dataset, accuracy_key=None):
        table = pd.read_csv(path, dtype={"arch": str})
        return [Arch(str(i), a, float(acc)) for i, (a, acc) in enumerate(zip(table["arch"], table["accuracy"]))]

    def build(self, spec, num_classes):
        if not spec.isdigit():
            raise ArchError(f"bad width {spec!r}")
        w = int(spec)
        return nn.Sequential(nn.Conv2d(3, w, 3, padding=1), nn.BatchNorm2d(w), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                             nn.Flatten(), nn.Linear(w, num_classes))


@register_proxy("toy_width")
def toy_width(probe):
    """The first conv's width (a toy proxy)."""
    return float(next(m for m in probe.net.modules() if isinstance(m, nn.Conv2d)).out_channels)
'''


def run(args: list[str], cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], cwd=cwd, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "OMP_NUM_THREADS": "1", **(env or {})})


@pytest.fixture
def plugin(tmp_path, data_root) -> Path:
    (tmp_path / "toy_plugin.py").write_text(textwrap.dedent(PLUGIN))
    (tmp_path / "widths.csv").write_text("arch,accuracy\n" + "".join(f"{w},{50 + w}\n" for w in range(2, 14)))
    return tmp_path


def test_verify_scores_a_plugged_space_with_a_plugged_proxy(plugin, data_root):
    out = run([str(REPO / "verify_scores.py"), "--plugin", "toy_plugin", "--search_space", "ToyWidths",
               "--benchmark_path", "widths.csv", "--proxy", "toy_width,params", "--n_samples", "all", "--batch_size",
               "4", "--data-root", str(data_root), "--out", "run", "--results_csv", "all.csv", "--quiet"], plugin,
              {"PYTHONPATH": str(plugin)})
    assert out.returncode == 0, out.stderr
    assert "proxy=toy_width kendall=1.0000 spearman=1.0000" in out.stdout and "n=12" in out.stdout


def test_evolve_accepts_a_plugged_space_as_a_task(plugin, monkeypatch):
    monkeypatch.syspath_prepend(str(plugin))
    monkeypatch.setenv(PLUGINS_ENV, "toy_plugin")
    from eznas.gp.presets import check_tasks, default_tasks, space_tasks

    check_tasks(["ToyWidths:cifar10", "NASBench201:cifar10"], "--tasks")
    assert default_tasks()["ToyWidths"] == ("ToyWidths:cifar10",) and space_tasks("ToyWidths") == ("ToyWidths:cifar10",)
    with pytest.raises(Exception, match="unknown dataset 'cifar100' for ToyWidths"):
        check_tasks(["ToyWidths:cifar100"], "--tasks")
    assert "NDS" not in default_tasks()  # a task names no NDS space: not evolvable


def test_a_plugin_that_does_not_import_is_one_error_line(tmp_path):
    out = run([str(REPO / "verify_scores.py"), "--plugin", "no_such_module_xyz", "--n_samples", "2"], tmp_path)
    assert out.returncode == 2
    assert out.stderr.strip().splitlines()[-1] == ("error: plugin module 'no_such_module_xyz' failed to import: "
                                                   "ModuleNotFoundError: No module named 'no_such_module_xyz'")
