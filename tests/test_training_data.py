"""Datasets of the trainer kit: IDX reader, Fashion-MNIST from Debian's path, digits, image folders,
missing-dataset errors, atomic checkpoint writes."""

from __future__ import annotations

import gzip
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from mi_estimators.training import DatasetNotFoundError, load_dataset, read_idx, save_atomic
from mi_estimators.training.data import DEFAULT_DIRS, load_idx_split

FASHION = Path(DEFAULT_DIRS["fashion-mnist"])


def _write_idx(path: Path, array: np.ndarray, code: int, dtype: str) -> None:
    header = bytes([0, 0, code, array.ndim]) + struct.pack(f">{array.ndim}i", *array.shape)
    payload = header + array.astype(dtype).tobytes()
    (gzip.open if path.suffix == ".gz" else open)(path, "wb").write(payload)


@pytest.mark.parametrize("suffix", ["", ".gz"])
def test_read_idx_round_trip(tmp_path, suffix):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(5, 4, 3), dtype=np.uint8)
    floats = rng.normal(size=(2, 3)).astype(np.float32)
    _write_idx(tmp_path / f"a{suffix}", images, 0x08, "u1")
    _write_idx(tmp_path / f"b{suffix}", floats, 0x0D, ">f4")
    np.testing.assert_array_equal(read_idx(tmp_path / f"a{suffix}"), images)
    np.testing.assert_array_equal(read_idx(tmp_path / f"b{suffix}"), floats)


def test_read_idx_rejects_bad_files(tmp_path):
    (tmp_path / "bad").write_bytes(b"\x01\x02\x03\x04rest")
    with pytest.raises(ValueError, match="not an IDX file"):
        read_idx(tmp_path / "bad")
    _write_idx(tmp_path / "short", np.zeros((3, 2), np.uint8), 0x08, "u1")
    (tmp_path / "short").write_bytes((tmp_path / "short").read_bytes()[:-1])
    with pytest.raises(ValueError, match="truncated"):
        read_idx(tmp_path / "short")


def test_idx_directory_with_uncompressed_files(tmp_path):
    _write_idx(tmp_path / "t10k-images-idx3-ubyte", np.full((3, 6, 6), 7, np.uint8), 0x08, "u1")
    _write_idx(tmp_path / "t10k-labels-idx1-ubyte", np.array([0, 2, 1], np.uint8), 0x08, "u1")
    data = load_dataset("idx", "test", data_dir=tmp_path)
    assert data.images.shape == (3, 1, 6, 6) and data.labels.tolist() == [0, 2, 1]
    assert data.num_classes == 3


@pytest.mark.skipif(not FASHION.is_dir(), reason=f"Fashion-MNIST not installed at {FASHION} "
                    "(apt-get install dataset-fashion-mnist, as root)")
def test_fashion_mnist_slice_from_debian_path():
    test = load_idx_split(FASHION, "test", name="fashion-mnist").subset(300)
    assert test.images.shape == (300, 1, 28, 28) and test.images.dtype == torch.uint8
    assert set(test.labels.tolist()) <= set(range(10)) and len(set(test.labels.tolist())) == 10
    assert 0 < float(test.images.float().mean()) < 255


def test_missing_dataset_says_how_to_install(tmp_path):
    with pytest.raises(DatasetNotFoundError, match=r"apt-get install dataset-fashion-mnist.*--data-dir"):
        load_dataset("fashion-mnist", data_dir=tmp_path)
    with pytest.raises(DatasetNotFoundError, match="--data-dir"):
        load_dataset("folder", data_dir=tmp_path / "nowhere")
    with pytest.raises(ValueError, match="did you mean 'digits'"):
        load_dataset("digit")


def test_missing_dataset_on_the_command_line(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "mi_estimators.cli", "train", "dim", "--data-dir",
                           str(tmp_path), "--out", str(tmp_path / "o")], capture_output=True, text=True,
                          timeout=120)
    if "unknown trainer" in proc.stderr:
        pytest.skip("the dim plugin is not installed")
    assert proc.returncode == 2
    assert "apt-get install dataset-fashion-mnist" in proc.stderr and "Traceback" not in proc.stderr


def test_digits_split_is_disjoint_and_complete():
    train, test = load_dataset("digits", "train"), load_dataset("digits", "test")
    assert train.images.shape[1:] == (1, 8, 8) and len(train) + len(test) == 1797
    assert len(test) == round(0.2 * 1797)
    assert load_dataset("digits", "train", image_size=32, limit=10).images.shape == (10, 1, 32, 32)


def test_image_folder_rgb(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(0)
    for cls in ("cat", "dog"):
        (tmp_path / cls).mkdir()
        for i in range(5):
            Image.fromarray(rng.integers(0, 256, (10, 10, 3), dtype=np.uint8)).save(tmp_path / cls / f"{i}.png")
    train, test = load_dataset("folder", "train", data_dir=tmp_path), load_dataset("folder", "test", data_dir=tmp_path)
    assert train.images.shape == (8, 3, 10, 10) and len(test) == 2 and train.classes == ["cat", "dog"]
    pixel = np.asarray(Image.open(tmp_path / "cat" / "0.png"))
    all_images = torch.cat([train.images, test.images])
    assert any(torch.equal(img.permute(1, 2, 0), torch.from_numpy(pixel.copy())) for img in all_images)


def test_save_atomic_keeps_old_file_on_failure(tmp_path):
    path = tmp_path / "ck.pt"
    save_atomic({"step": 1}, path)
    with pytest.raises(Exception):
        save_atomic({"bad": lambda: None}, path)  # lambdas cannot be pickled
    assert torch.load(path)["step"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["ck.pt"]
