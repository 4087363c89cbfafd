"""A portable export: best_proxy.py run where eznas (eznas.primitives included), deap and a top-level primitives
(the old name, or PyPI's) cannot be imported, on torchvision models. It declares what its program needs (docstring
and constants), computes eznas.score / eznas.score_pool's numbers, leaves the models exactly as they were, and
raises its own ProxyError (one line naming the missing requirement) where a program cannot score a model, never
NaN."""
from __future__ import annotations

import ast
import json
import os
import subprocess
import sys

import pytest
import torch
import torch.nn as nn

import eznas
from eznas.gp.export import export_source
from eznas.gp.parse import parse_program

# a pool program over a statistic and a proxy terminal; a per-network one with the cross-entropy signal (labels)
# and an AZ-NAS terminal (it needs feature maps at two resolutions)
POOL = "net_add(net_rank(sum_units(corr_min_eig(pre_N))), net_scale(net_rank(net_log(zc_synflow)), 0.5))"
NETWORK = "net_add(meanlog_units(mean_abs(weight_grad_D)), net_log(zc_az_expressivity))"

# runs in a fresh interpreter, cwd outside the repo: eznas, deap and a top-level primitives raise ImportError
SCRIPT = r'''
import importlib.abc, importlib.util, json, sys
from pathlib import Path

BLOCKED = ("eznas", "deap", "primitives")


class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ImportError(f"{name} is blocked: the exported file must need only torch")
        return None


sys.meta_path.insert(0, Block())
for name in BLOCKED:
    try:
        __import__(name)
    except ImportError:
        continue
    raise SystemExit(f"{name} is importable")
import torch
torch.set_num_threads(1)
try:  # torchvision beside a CPU-only torch, as tests/conftest.py (tv_models) does: the models are pickled
    torch.ops.load_library(str(Path(importlib.util.find_spec("torchvision").origin).parent / "_C.so"))
except OSError:
    LIB = torch.library.Library("torchvision", "DEF")
    for op in ("nms", "qnms"):
        LIB.define(f"{op}(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")


def load(path, name):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # the file's dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def snapshot(model):
    return ({k: v.clone() for k, v in model.state_dict(keep_vars=False).items()},
            [m.training for m in model.modules()], [p.requires_grad for p in model.parameters()],
            [None if p.grad is None else p.grad.clone() for p in model.parameters()])


def unchanged(a, b):
    return (a[0].keys() == b[0].keys() and all(torch.equal(a[0][k], b[0][k]) for k in a[0])
            and a[1] == b[1] and a[2] == b[2]
            and all((x is None and y is None) or (x is not None and y is not None and torch.equal(x, y))
                    for x, y in zip(a[3], b[3], strict=True)))


def error(fn, *args):
    try:
        fn(*args)
    except Exception as exc:
        return [type(exc).__name__, isinstance(exc, ValueError), str(exc)]
    return None


pool, network = load(sys.argv[1], "pool_proxy"), load(sys.argv[2], "network_proxy")
data = torch.load(sys.argv[3], weights_only=False)
models, x, y, linear, one_stage = data["models"], data["x"], data["y"], data["linear"], data["one_stage"]
before = [snapshot(m) for m in models]
out = {"pool": pool.score_pool(models, x), "network": [network.score(m, x, y) for m in models],
       "network_pool": network.score_pool(models, x, y)}
out["errors"] = {
    "score on a pool program": error(pool.score, models[0], x),
    "pool with a model without conv": error(pool.score_pool, [models[0], linear], x),
    "no labels": error(network.score, models[0], x),
    "no conv": error(network.score, linear, x, y),
    "one resolution stage": error(network.score, one_stage, x, y),
}
out["unchanged"] = [unchanged(b, snapshot(m)) for b, m in zip(before, models)]
print(json.dumps(out))
'''


def constants(source: str) -> tuple[str, dict]:
    """The file's docstring and its top-level constants (plain literals)."""
    tree = ast.parse(source)
    values = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            try:
                values[node.targets[0].id] = ast.literal_eval(node.value)
            except ValueError:
                continue  # not a plain constant (PROXIES maps names to functions)
    return ast.get_docstring(tree), values


def test_the_file_declares_what_its_program_needs():
    doc, pool = constants(export_source(parse_program(POOL), signal="logits_sum", noise_seed=0, perturbation=0.1,
                                        doc="a pool program"))
    assert pool["POOL"] is True and pool["LABELS"] is False and pool["UNITS"] is True
    assert pool["CALL"] == "score_pool(models, images)" and "from best_proxy import score_pool" in doc
    assert "    score_pool(models, images)" in doc and "score(model" not in doc
    assert pool["STATISTICS"] == ("pre_N",) and pool["NETWORK_TERMINALS"] == ("zc_synflow",)
    assert any("Conv2d" in need for need in pool["REQUIRES"]) and "pre_N" in doc and "zc_synflow (proxy" in doc
    assert pool["PROGRAM"] == POOL and parse_program(pool["PARTS"][0])
    doc, network = constants(export_source(parse_program(NETWORK), signal="ce", noise_seed=0, perturbation=0.1,
                                           doc="a per-network program"))
    assert network["POOL"] is False and network["LABELS"] is True and network["SIGNAL"] == "ce"
    assert network["CALL"] == "score(model, images, labels)" and "    score(model, images, labels)" in doc
    assert network["STATISTICS"] == ("weight_grad_D",) and network["NETWORK_TERMINALS"] == ("zc_az_expressivity",)
    assert any("two resolution stages" in need for need in network["REQUIRES"]) and "labels: needed" in doc
    _, features = constants(export_source(parse_program("net_log(params)"), signal="logits_sum", noise_seed=0,
                                          perturbation=0.1, doc="features only"))
    assert features["UNITS"] is False and features["REQUIRES"] == () and features["STATISTICS"] == ()


def test_the_exported_file_scores_torchvision_models_without_eznas(tv_models, tmp_path):
    torch.manual_seed(0)
    resnet = tv_models.resnet18(num_classes=10)
    mobile = tv_models.mobilenet_v3_small(num_classes=10).eval()  # eval mode: scored in train mode, left in eval
    resnet.conv1.weight.requires_grad_(False)  # scored with gradients, left without
    resnet.fc.weight.grad = torch.ones_like(resnet.fc.weight)  # left as it was
    models = [resnet, mobile]
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(8, 3, 32, 32, generator=g), torch.randint(0, 10, (8,), generator=g)
    linear = nn.Sequential(nn.Flatten(), nn.Linear(3 * 32 * 32, 10))
    one_stage = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                              nn.Flatten(), nn.Linear(4, 10))
    torch.save({"models": models, "x": x, "y": y, "linear": linear, "one_stage": one_stage}, tmp_path / "data.pt")
    paths = []
    for text, signal, name in ((POOL, "logits_sum", "pool.py"), (NETWORK, "ce", "network.py")):
        (tmp_path / name).write_text(export_source(parse_program(text), signal=signal, noise_seed=0,
                                                   perturbation=0.1, doc=name))
        paths.append(str(tmp_path / name))
    run = subprocess.run([sys.executable, "-c", SCRIPT, *paths, str(tmp_path / "data.pt")], capture_output=True,
                         text=True, cwd=tmp_path, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert run.returncode == 0, run.stderr[-3000:]
    out = json.loads(run.stdout)
    assert out["pool"] == pytest.approx(eznas.score_pool(models, x, programs=(POOL,))[POOL], rel=1e-9)
    expected = [eznas.score(m, x, y, programs=(NETWORK,), signal="ce")[NETWORK] for m in models]
    assert out["network"] == pytest.approx(expected, rel=1e-9) and out["network_pool"] == out["network"]
    assert out["unchanged"] == [True, True]
    errors = out["errors"]
    for case, words in {"score on a pool program": ("use score_pool",),
                        "pool with a model without conv": ("model 1", "Sequential has no unit", "Conv2d"),
                        "no labels": ("needs labels", "cross-entropy"),
                        "no conv": ("Sequential has no unit", "Conv2d"),
                        "one resolution stage": ("zc_az_expressivity", "two stages")}.items():
        assert errors[case] is not None, f"{case}: no error"
        kind, is_value_error, message = errors[case]
        assert kind == "ProxyError" and is_value_error and len(message.splitlines()) == 1, (case, message)
        assert all(w in message for w in words), (case, message)
