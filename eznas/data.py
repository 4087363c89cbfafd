"""Data root resolution and real image batches (CIFAR-10, CIFAR-100, ImageNet16-120).

The data root is resolved in one place, :func:`resolve_data_root`: the ``--data-root`` flag, then the
``EZNAS_DATA`` environment variable, then ``./data``. Its layout mirrors ``shared/data``::

    <root>/cifar10/        cifar-10-batches-py/data_batch_{1..5}   (official)  or  cifar10_train*.npz
    <root>/cifar100/       cifar-100-python/train                  (official)  or  cifar100_train*.npz
    <root>/imagenet16-120/ ImageNet16/train_data_batch_{1..10}     (official)  or  imagenet16_120*.npz
    <root>/nb201/          nb201_acc_200ep.csv
    <root>/nds/            darts_swap{500,1000}_cifar10.csv, NDS json files (DARTS.json, ...)
"""
from __future__ import annotations

import logging
import os
import pickle
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from eznas.errors import DataError

log = logging.getLogger(__name__)

DATA_ENV = "EZNAS_DATA"


def resolve_data_root(flag: str | os.PathLike | None = None) -> Path:
    """The data root: ``flag``, else ``$EZNAS_DATA``, else ``./data`` (it need not exist yet)."""
    if flag:
        return Path(flag).expanduser()
    if os.environ.get(DATA_ENV):
        return Path(os.environ[DATA_ENV]).expanduser()
    return Path("data")


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    folder: str
    num_classes: int
    resolution: int
    mean: tuple[float, float, float]  # NB-201 normalisation, 0-255 units
    std: tuple[float, float, float]
    official: tuple[str, ...]  # training-split pickles, relative to the folder
    npz_glob: str  # the mirror's training-split npz


DATASETS: dict[str, DatasetSpec] = {
    "cifar10": DatasetSpec(
        "cifar10", "cifar10", 10, 32, (125.3, 123.0, 113.9), (63.0, 62.1, 66.7),
        tuple(f"cifar-10-batches-py/data_batch_{i}" for i in range(1, 6)), "cifar10_train*.npz",
    ),
    "cifar100": DatasetSpec(
        "cifar100", "cifar100", 100, 32, (129.3, 124.1, 112.4), (68.2, 65.4, 70.4),
        ("cifar-100-python/train",), "cifar100_train*.npz",
    ),
    "ImageNet16-120": DatasetSpec(
        "ImageNet16-120", "imagenet16-120", 120, 16, (122.68, 116.66, 104.01), (63.22, 61.26, 65.09),
        tuple(f"ImageNet16/train_data_batch_{i}" for i in range(1, 11)), "imagenet16_120*.npz",
    ),
}


def dataset_spec(name: str) -> DatasetSpec:
    try:
        return DATASETS[name]
    except KeyError:
        raise DataError(f"unknown dataset {name!r}; valid: {', '.join(DATASETS)}") from None


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """The official CIFAR/ImageNet16 pickles hold only dicts, lists and numpy arrays."""

    def find_class(self, module: str, name: str):  # noqa: ANN201
        if module.split(".")[0] == "numpy":
            if module.startswith("numpy.core"):  # pickled by numpy 1.x
                module = "numpy._core" + module[len("numpy.core"):]
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}")


def _read_official(path: Path, spec: DatasetSpec) -> tuple[np.ndarray, np.ndarray]:
    try:
        with open(path, "rb") as f:
            entry = _NumpyOnlyUnpickler(f, encoding="latin1").load()
        data = np.asarray(entry["data"], dtype=np.uint8)
        labels = np.asarray(entry.get("labels", entry.get("fine_labels")), dtype=np.int64)
    except Exception as exc:  # noqa: BLE001 - any failure here is a bad file
        raise DataError(f"{path}: not a readable {spec.name} pickle ({exc})") from None
    r = spec.resolution
    x = data.reshape(-1, 3, r, r).transpose(0, 2, 3, 1)
    if spec.name == "ImageNet16-120":  # labels 1..1000; NB-201 keeps 1..120 and shifts to 0..119
        keep = labels <= 120
        x, labels = x[keep], labels[keep] - 1
    return x, labels


@lru_cache(maxsize=4)
def load_images(data_root: Path, dataset: str) -> tuple[np.ndarray, np.ndarray]:
    """The training images (uint8 NHWC) and labels of ``dataset``, official files first, then npz."""
    spec = dataset_spec(dataset)
    folder = Path(data_root) / spec.folder
    official = [folder / p for p in spec.official if (folder / p).is_file()]
    if official:
        parts = [_read_official(p, spec) for p in official]
        x = np.concatenate([p[0] for p in parts])
        y = np.concatenate([p[1] for p in parts])
        source = f"{len(official)} official file(s) in {folder}"
    else:
        npz = sorted(folder.glob(spec.npz_glob))
        if not npz:
            raise DataError(
                f"no {spec.name} images in {folder}: expected {spec.official[0]} or {spec.npz_glob} "
                f"(run setup_script.sh, or pass --data-root / set {DATA_ENV})"
            )
        try:
            with np.load(npz[0]) as z:
                x, y = z["x"], z["y"].astype(np.int64)
        except Exception as exc:  # noqa: BLE001
            raise DataError(f"{npz[0]}: not a readable image npz with 'x' and 'y' ({exc})") from None
        source = str(npz[0])
    r = spec.resolution
    if x.ndim != 4 or x.shape[1:] != (r, r, 3) or len(x) != len(y):
        raise DataError(f"{source}: expected images of shape (N, {r}, {r}, 3), got {x.shape}")
    log.info("%s: %d training images from %s", spec.name, len(x), source)
    return x, y


def normalise(x: np.ndarray, spec: DatasetSpec) -> torch.Tensor:
    """uint8 NHWC -> float32 NCHW with NB-201's per-channel mean and std, in the standard (contiguous) layout.

    Not the channels-last view the permute gives: on CPU, oneDNN's 1x1 stride-2 conv backward with
    channels-last input and fewer than 8 input channels (FactorizedReduce in SWAP's DARTS probe network)
    writes past its workspace: wrong weight gradients, hangs, or heap corruption ("double free or
    corruption"; uxlfoundation/oneDNN#6035). Reproduced here with torch 2.13.0."""
    t = torch.from_numpy(np.ascontiguousarray(x)).permute(0, 3, 1, 2).float().contiguous()
    mean = torch.tensor(spec.mean).view(1, 3, 1, 1)
    std = torch.tensor(spec.std).view(1, 3, 1, 1)
    return (t - mean) / std


@dataclass(frozen=True)
class Batch:
    x: torch.Tensor  # (B, 3, H, W) float32, normalised
    y: torch.Tensor  # (B,) int64 labels
    num_classes: int

    def to(self, device: torch.device | str) -> "Batch":
        return Batch(self.x.to(device), self.y.to(device), self.num_classes)


class BatchSource:
    """Deterministic image batches: the same batch for every network, or a fresh one per network.

    The batch for network ``i`` is drawn without replacement by ``numpy.random.default_rng`` seeded
    with ``seed`` (shared batch) or ``[seed, i]`` (fresh batch per network, as EZNAS did); ``first``: the
    first ``batch_size`` training images in file order, for every network (SWAP's unshuffled loader).
    """

    def __init__(self, data_root: Path, dataset: str, batch_size: int, seed: int, fresh: bool = False,
                 first: bool = False):
        self.spec = dataset_spec(dataset)
        self.images, self.labels = load_images(Path(data_root), dataset)
        if not 1 <= batch_size <= len(self.images):
            raise DataError(
                f"--batch_size {batch_size} is out of range for {dataset} ({len(self.images)} images available)"
            )
        if fresh and first:
            raise DataError("a batch is either fresh per network or the first images, not both")
        self.batch_size, self.seed, self.fresh = batch_size, seed, fresh
        if fresh:
            self._shared = None
        elif first:
            self._shared = self._take(np.arange(batch_size))
        else:
            self._shared = self._draw(np.random.default_rng(seed))

    def _draw(self, rng: np.random.Generator) -> Batch:
        return self._take(np.sort(rng.choice(len(self.images), self.batch_size, replace=False)))

    def _take(self, idx: np.ndarray) -> Batch:
        x = normalise(self.images[idx], self.spec)
        return Batch(x, torch.from_numpy(self.labels[idx].copy()), self.spec.num_classes)

    def batch(self, network_index: int = 0) -> Batch:
        if self._shared is not None:
            return self._shared
        return self._draw(np.random.default_rng([self.seed, network_index]))
