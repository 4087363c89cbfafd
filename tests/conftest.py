"""Shared fixtures. Real data comes from the data root (``$EZNAS_DATA`` or ``./data``, filled by
setup_script.sh); a checkout with ``../shared/data`` beside it falls back to that mirror."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from eznas.data import resolve_data_root

REPO = Path(__file__).resolve().parents[1]


def _find_data_root() -> Path | None:
    for root in (resolve_data_root(None), REPO / "data", REPO.parent / "shared" / "data"):
        root = root if root.is_absolute() else REPO / root
        if (root / "nb201" / "nb201_acc_200ep.csv").is_file():
            return root
    return None


@pytest.fixture(scope="session")
def data_root() -> Path:
    root = _find_data_root()
    if root is None:
        if os.environ.get("CI"):
            pytest.fail("no data root with nb201/nb201_acc_200ep.csv: setup_script.sh did not fill ./data")
        pytest.skip("no data root (run setup_script.sh or set EZNAS_DATA)")
    return root


@pytest.fixture(scope="session")
def nb201_table(data_root: Path):
    import pandas as pd

    return pd.read_csv(data_root / "nb201" / "nb201_acc_200ep.csv")


# ---------------------------------------------------------------------------------- a tiny real evolution run
def tiny(data_root: Path, **kw):
    """EvolutionConfig of a run small enough for tests: 8 programs, 2 generations, NB-201 CIFAR-10 with 12
    selection networks (6 for screening, 3 promoted a generation) and 6 validation networks, batch 4; no
    proxy terminals, no blends, no pool ops, no novel elites, the best winner."""
    import dataclasses

    from eznas.gp.config import EvolutionConfig, FitnessConfig
    from eznas.parallel import ParallelConfig

    from eznas.features import FEATURES

    # the loop's mechanics on the features only, without blends and pool ops (the default's proxy terminals cost seconds
    # per network; tests/test_proxy_terminals.py runs the defaults)
    base = EvolutionConfig(population=8, offspring=8, generations=2, elites=2, hall_of_fame=5, parallel=ParallelConfig(),
                           features=FEATURES, blend_parts=0, pool_ops=False, winner="best", novel_elites=0,
                           fitness=FitnessConfig(tasks=("NASBench201:cifar10",), selection=12, validation=6,
                                                 screen=6, promote=3, batch_size=4, data_root=str(data_root)))
    return dataclasses.replace(base, **kw)


@pytest.fixture(scope="session", autouse=True)
def own_temporary_folder(tmp_path_factory):
    """The suite's commands count only each other as eznas commands beside them (eznas.threads.Presence
    lives in the temporary folder), not those running beside the suite: this process's and its
    subprocesses' temporary folder is the session's own."""
    import tempfile

    folder, before = tmp_path_factory.mktemp("tmp"), os.environ.get("TMPDIR")
    os.environ["TMPDIR"], tempfile.tempdir = str(folder), None
    yield
    os.environ.pop("TMPDIR") if before is None else os.environ.update(TMPDIR=before)
    tempfile.tempdir = None


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("value-cache")


@pytest.fixture(scope="session")
def two_generations(data_root, cache_dir, tmp_path_factory):
    """The reference run: ``tiny`` with the serial backend (folder, result)."""
    from eznas.gp.run import run_evolution

    out = tmp_path_factory.mktemp("evo") / "run"
    result = run_evolution(tiny(data_root), out, cache_dir=cache_dir, test_networks=8)
    return out, result


@pytest.fixture
def one_thread():
    """Big builds and tiny forwards on one thread; the previous count restored (later tests compare scores)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


_TORCHVISION_SCHEMAS: list = []  # keeps the op library below alive


@pytest.fixture(scope="session")
def tv_models():
    """``torchvision.models`` (the test-only models: random weights, never downloaded), importable beside a
    CPU-only torch. PyPI's torchvision wheel is built against CUDA torch, so its C extension (detection ops
    such as nms) does not load beside torch's CPU build, and ``import torchvision`` then fails registering
    fake kernels for the two ops it expects; their schemas are declared here first (the classification
    models are pure Python). Where the extension loads, nothing is declared."""
    import importlib.util

    spec = importlib.util.find_spec("torchvision")
    if spec is None:
        pytest.fail("torchvision is not installed (a test dependency: pip install -e .[dev])")
    try:
        torch.ops.load_library(str(Path(spec.origin).parent / "_C.so"))
    except OSError:
        if not _TORCHVISION_SCHEMAS:
            lib = torch.library.Library("torchvision", "DEF")
            for op in ("nms", "qnms"):
                lib.define(f"{op}(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
            _TORCHVISION_SCHEMAS.append(lib)
    import torchvision.models

    return torchvision.models
