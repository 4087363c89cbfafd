import pickle
from pathlib import Path

import numpy as np
import pytest

from eznas import data
from eznas.data import BatchSource, load_images, resolve_data_root
from eznas.errors import DataError


def test_data_root_resolution_order(monkeypatch, tmp_path):
    monkeypatch.setenv("EZNAS_DATA", str(tmp_path / "env"))
    assert resolve_data_root(tmp_path / "flag") == tmp_path / "flag"
    assert resolve_data_root(None) == tmp_path / "env"
    monkeypatch.delenv("EZNAS_DATA")
    assert resolve_data_root(None) == Path("data")


def test_missing_images_name_the_folder_and_expected_files(tmp_path):
    with pytest.raises(DataError) as err:
        load_images(tmp_path, "cifar100")
    msg = str(err.value)
    assert str(tmp_path / "cifar100") in msg and "cifar-100-python/train" in msg and "cifar100_train*.npz" in msg


def test_unknown_dataset_lists_valid():
    with pytest.raises(DataError, match="valid: cifar10, cifar100, ImageNet16-120"):
        data.dataset_spec("mnist")


def _write_pickle(path: Path, entry: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        pickle.dump(entry, f)


def test_official_cifar10_pickles_are_read_in_nhwc(tmp_path):
    rng = np.random.default_rng(0)
    chw = rng.integers(0, 256, (7, 3, 32, 32), dtype=np.uint8)
    for i in range(1, 6):
        _write_pickle(tmp_path / "cifar10" / f"cifar-10-batches-py/data_batch_{i}",
                      {"data": chw.reshape(7, -1), "labels": list(range(7)), "batch_label": "x"})
    x, y = load_images(tmp_path, "cifar10")
    assert x.shape == (35, 32, 32, 3) and y.tolist()[:7] == list(range(7))
    assert (x[0] == chw[0].transpose(1, 2, 0)).all()


def test_official_imagenet16_keeps_first_120_classes(tmp_path):
    labels = [1, 120, 121, 500, 7]
    imgs = np.arange(5 * 768, dtype=np.int64).reshape(5, 768) % 256
    _write_pickle(tmp_path / "imagenet16-120" / "ImageNet16/train_data_batch_1",
                  {"data": imgs.astype(np.uint8), "labels": labels, "mean": np.zeros(768)})
    x, y = load_images(tmp_path, "ImageNet16-120")
    assert x.shape == (3, 16, 16, 3) and y.tolist() == [0, 119, 6]


def test_official_pickle_with_foreign_objects_is_refused(tmp_path):
    _write_pickle(tmp_path / "cifar100" / "cifar-100-python/train", {"data": Path("/etc/passwd")})
    with pytest.raises(DataError, match="not a readable cifar100 pickle"):
        load_images(tmp_path, "cifar100")


def test_mirror_npz_batches(data_root):
    x, y = load_images(data_root, "cifar10")
    assert x.dtype == np.uint8 and x.shape[1:] == (32, 32, 3) and len(x) == len(y) > 1000
    x16, y16 = load_images(data_root, "ImageNet16-120")
    assert x16.shape == (120, 16, 16, 3) and sorted(y16.tolist()) == list(range(120))


def test_batches_are_deterministic_shared_or_fresh(data_root):
    a = BatchSource(data_root, "cifar10", 16, seed=3)
    b = BatchSource(data_root, "cifar10", 16, seed=3)
    assert a.batch(0).x.equal(b.batch(0).x) and a.batch(0) is a.batch(5)
    assert a.batch(0).x.shape == (16, 3, 32, 32) and abs(float(a.batch(0).x.mean())) < 1.0
    fresh = BatchSource(data_root, "cifar10", 16, seed=3, fresh=True)
    assert fresh.batch(1).x.equal(BatchSource(data_root, "cifar10", 16, seed=3, fresh=True).batch(1).x)
    assert not fresh.batch(1).x.equal(fresh.batch(2).x)
    assert not BatchSource(data_root, "cifar10", 16, seed=4).batch(0).x.equal(a.batch(0).x)


def test_first_batch_is_the_first_training_images_for_every_seed(data_root):
    x, y = load_images(data_root, "cifar10")
    first = BatchSource(data_root, "cifar10", 16, seed=3, first=True)
    assert first.batch(0) is first.batch(7)
    assert first.batch(0).y.tolist() == y[:16].tolist()
    assert first.batch(0).x.equal(BatchSource(data_root, "cifar10", 16, seed=9, first=True).batch(0).x)
    with pytest.raises(DataError, match="fresh per network or the first images"):
        BatchSource(data_root, "cifar10", 16, seed=3, fresh=True, first=True)


def test_batch_size_larger_than_the_data_is_an_error(data_root):
    with pytest.raises(DataError, match="--batch_size 500 is out of range for ImageNet16-120"):
        BatchSource(data_root, "ImageNet16-120", 500, seed=0)
