"""Image datasets held in memory as tensors, and the batches a trainer reads from them.

Sources (no downloads, ever):

* ``fashion-mnist`` / ``mnist`` / ``idx``: MNIST-format IDX files (gzipped or not) read by
  :func:`read_idx` from any directory. Debian ships Fashion-MNIST as
  ``apt-get install dataset-fashion-mnist`` (files in ``/usr/share/datasets/fashion-mnist/``).
* ``digits``: scikit-learn's bundled 8x8 digits (1797 images, split 80/20 with a fixed seed).
* ``folder``: a directory with one sub-folder per class (or ``train/`` and ``test/`` directories
  that each have one), images read with Pillow or matplotlib.
* your own tensors: ``ImageData(images, labels)``.

Every source gives an :class:`ImageData`: ``images`` uint8 ``(N, C, H, W)`` (or float in [0, 1]),
``labels`` int64 ``(N,)``.
"""

from __future__ import annotations

import gzip
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DistributedSampler

from mi_estimators.options import did_you_mean

__all__ = [
    "DATASETS",
    "DatasetNotFoundError",
    "ImageData",
    "EpochBatches",
    "load_dataset",
    "load_digits",
    "load_idx_split",
    "load_image_folder",
    "read_idx",
]

#: names accepted by ``--dataset``
DATASETS = ("fashion-mnist", "mnist", "idx", "digits", "folder")

#: where Debian's ``dataset-fashion-mnist`` package puts the files
DEFAULT_DIRS = {
    "fashion-mnist": "/usr/share/datasets/fashion-mnist",
    "mnist": "/usr/share/datasets/mnist",
}

_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
_IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".ppm", ".pgm"}


class DatasetNotFoundError(FileNotFoundError):
    """The dataset's files are not where we looked; the message says how to get them."""


@dataclass
class ImageData:
    """A labelled image set in memory.

    ``images``: ``(N, C, H, W)``, uint8 in [0, 255] or floating point in [0, 1].
    ``labels``: int64 ``(N,)``. ``classes``: optional class names, index = label.
    """

    images: Tensor
    labels: Tensor
    classes: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not isinstance(self.images, Tensor):
            self.images = torch.as_tensor(np.asarray(self.images))
        if not isinstance(self.labels, Tensor):
            self.labels = torch.as_tensor(np.asarray(self.labels))
        if self.images.dim() == 3:  # (N, H, W) grayscale
            self.images = self.images.unsqueeze(1)
        if self.images.dim() != 4:
            raise ValueError(
                f"images must have shape (N, C, H, W) or (N, H, W), got {tuple(self.images.shape)}"
            )
        if self.images.dtype != torch.uint8 and not self.images.is_floating_point():
            raise ValueError(f"images must be uint8 or floating point in [0, 1], got {self.images.dtype}")
        self.labels = self.labels.long().reshape(-1)
        if len(self.labels) != len(self.images):
            raise ValueError(f"{len(self.images)} images but {len(self.labels)} labels")

    def __len__(self) -> int:
        return len(self.images)

    @property
    def in_channels(self) -> int:
        return int(self.images.shape[1])

    @property
    def image_size(self) -> int:
        return int(self.images.shape[-1])

    @property
    def num_classes(self) -> int:
        return int(self.labels.max()) + 1 if len(self.labels) else 0

    def subset(self, limit: int | None) -> "ImageData":
        """The first ``limit`` images (all when ``limit`` is None)."""
        if limit is None or limit >= len(self):
            return self
        if limit < 1:
            raise ValueError(f"--limit must be a positive number of images, got {limit}")
        return ImageData(self.images[:limit], self.labels[:limit], self.classes)

    def resized(self, size: int | None) -> "ImageData":
        """Bilinearly resized to ``size`` x ``size`` (unchanged when None or already that size)."""
        if size is None or (self.images.shape[-2:] == (size, size)):
            return self
        x = as_float(self.images)
        x = torch.nn.functional.interpolate(x, size=(size, size), mode="bilinear", align_corners=False,
                                            antialias=True)
        return ImageData(x.clamp_(0, 1), self.labels, self.classes)

    def channel_stats(self) -> tuple[Tensor, Tensor]:
        """Per-channel mean and standard deviation of the images in [0, 1], shapes ``(C,)``."""
        x = as_float(self.images[:10000])
        return x.mean(dim=(0, 2, 3)), x.std(dim=(0, 2, 3)).clamp_min(1e-3)

    # torch.utils.data: batched indexing, so that a DataLoader reads whole batches at once
    def __getitem__(self, index):
        return self.images[index], self.labels[index]

    def __getitems__(self, indices: list[int]):
        idx = torch.as_tensor(indices, dtype=torch.long)
        return self.images[idx], self.labels[idx]


def as_float(images: Tensor) -> Tensor:
    """uint8 [0, 255] -> float32 [0, 1]; floating images are returned as float32."""
    return images.float().div_(255.0) if images.dtype == torch.uint8 else images.float()


# --------------------------------------------------------------------------------------- IDX


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX file (the MNIST format), gzipped or not, into a numpy array.

    Layout: two zero bytes, a type code (0x08 uint8 ... 0x0E float64), the number of dimensions,
    then one big-endian int32 per dimension, then the data in C order.
    """
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as fh:
        raw = fh.read()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
        raise ValueError(f"{path} is not an IDX file (bad magic number {raw[:4].hex()})")
    ndim = raw[3]
    shape = tuple(int(d) for d in np.frombuffer(raw, dtype=">i4", count=ndim, offset=4))
    dtype = np.dtype(_IDX_DTYPES[raw[2]])
    expected = int(np.prod(shape)) * dtype.itemsize
    offset = 4 + 4 * ndim
    if len(raw) - offset != expected:
        raise ValueError(f"{path}: header says shape {shape} ({expected} bytes) but the file "
                         f"holds {len(raw) - offset} bytes of data; the file is truncated or corrupt")
    return np.frombuffer(raw, dtype=dtype, offset=offset).reshape(shape).astype(dtype.newbyteorder("="))


def _find_idx(directory: Path, stem: str) -> Path | None:
    for name in (stem, stem + ".gz", stem.replace("-idx", ".idx"), stem.replace("-idx", ".idx") + ".gz"):
        if (directory / name).is_file():
            return directory / name
    return None


def load_idx_split(directory: str | os.PathLike, split: str = "train", *, name: str = "idx") -> ImageData:
    """Images and labels of one split from MNIST-format files in ``directory``.

    Looks for ``train-images-idx3-ubyte[.gz]`` / ``train-labels-idx1-ubyte[.gz]`` (``split="train"``)
    or ``t10k-...`` (``split="test"``).
    """
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    directory = Path(directory)
    prefix = "train" if split == "train" else "t10k"
    found = {kind: _find_idx(directory, f"{prefix}-{kind}-idx{3 if kind == 'images' else 1}-ubyte")
             for kind in ("images", "labels")}
    missing = [k for k, v in found.items() if v is None]
    if missing:
        raise DatasetNotFoundError(_missing_message(name, directory,
                                                    f"{prefix}-images-idx3-ubyte.gz and {prefix}-labels-idx1-ubyte.gz"))
    images, labels = read_idx(found["images"]), read_idx(found["labels"])
    if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
        raise ValueError(f"{directory}: expected images (N, H, W) and labels (N,), "
                         f"got {images.shape} and {labels.shape}")
    return ImageData(torch.from_numpy(images.copy()), torch.from_numpy(labels.astype(np.int64)))


def _missing_message(name: str, directory: Path, wanted: str) -> str:
    msg = f"{name}: no {wanted} in {directory}."
    if name == "fashion-mnist":
        msg += (" Install it (as root) with `apt-get install dataset-fashion-mnist` (files go to "
                "/usr/share/datasets/fashion-mnist/), or pass --data-dir DIR pointing at a "
                "directory that holds the four IDX files.")
    else:
        msg += " Pass --data-dir DIR pointing at a directory that holds the MNIST-format IDX files."
    return msg


# ----------------------------------------------------------------------------------- digits


def load_digits(split: str = "train", *, test_fraction: float = 0.2, seed: int = 0) -> ImageData:
    """scikit-learn's bundled 8x8 digits (pixel values 0..16 scaled to uint8), split with a fixed seed."""
    try:
        from sklearn.datasets import load_digits as _sk_digits
    except ImportError as exc:  # pragma: no cover - scikit-learn is a dependency of the train extra
        raise DatasetNotFoundError(
            "the digits dataset comes with scikit-learn: pip install 'mi-estimators[train]'") from exc
    bunch = _sk_digits()
    images = torch.from_numpy((bunch.images * (255.0 / 16.0)).round().astype(np.uint8))
    labels = torch.from_numpy(bunch.target.astype(np.int64))
    return _split(ImageData(images, labels, [str(c) for c in bunch.target_names]), split, test_fraction, seed)


def _split(data: ImageData, split: str, test_fraction: float, seed: int) -> ImageData:
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
    perm = torch.randperm(len(data), generator=torch.Generator().manual_seed(seed))
    n_test = max(1, int(round(test_fraction * len(data))))
    idx = perm[:n_test] if split == "test" else perm[n_test:]
    idx = idx.sort().values
    return ImageData(data.images[idx], data.labels[idx], data.classes)


# ----------------------------------------------------------------------------------- folder


def _imread(path: Path) -> np.ndarray:
    try:
        from PIL import Image
    except ImportError:  # pragma: no cover - Pillow comes with matplotlib
        import matplotlib.image as mpimg

        arr = mpimg.imread(path)
        return (arr * 255).round().astype(np.uint8) if arr.dtype != np.uint8 else arr
    with Image.open(path) as im:
        if im.mode not in ("L", "RGB"):
            im = im.convert("RGBA" if "A" in im.mode else "RGB")
            if im.mode == "RGBA":
                im = im.convert("RGB")
        return np.asarray(im, dtype=np.uint8)


def _read_class_folders(root: Path) -> ImageData:
    classes = sorted(d.name for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    if not classes:
        raise DatasetNotFoundError(f"{root} has no class sub-folders; the folder dataset expects "
                                   "ROOT/<class>/<image files> (or ROOT/train/<class>/... and ROOT/test/<class>/...)")
    arrays, labels = [], []
    for label, cls in enumerate(classes):
        for f in sorted((root / cls).iterdir()):
            if f.suffix.lower() in _IMAGE_SUFFIXES:
                arrays.append(_imread(f))
                labels.append(label)
    if not arrays:
        raise DatasetNotFoundError(f"no image files ({', '.join(sorted(_IMAGE_SUFFIXES))}) under {root}")
    shapes = {a.shape for a in arrays}
    if len(shapes) != 1:
        raise ValueError(f"images under {root} have different shapes {sorted(shapes)[:4]}; "
                         "resize them to one size first")
    stacked = np.stack(arrays)
    tensor = torch.from_numpy(stacked)
    tensor = tensor.unsqueeze(1) if tensor.dim() == 3 else tensor.permute(0, 3, 1, 2).contiguous()
    return ImageData(tensor, torch.tensor(labels), classes)


def load_image_folder(root: str | os.PathLike, split: str = "train", *, test_fraction: float = 0.2,
                      seed: int = 0) -> ImageData:
    """A folder of images with one sub-folder per class.

    If ``root/train`` and ``root/test`` exist they are the splits; otherwise the images are split
    ``1 - test_fraction`` / ``test_fraction`` with a fixed seed.
    """
    root = Path(root)
    if not root.is_dir():
        raise DatasetNotFoundError(f"folder dataset: {root} is not a directory; pass --data-dir ROOT "
                                   "where ROOT/<class>/ holds the images of each class")
    if (root / "train").is_dir() and (root / "test").is_dir():
        return _read_class_folders(root / split)
    return _split(_read_class_folders(root), split, test_fraction, seed)


# ----------------------------------------------------------------------------------- dispatch


def load_dataset(name: str, split: str = "train", *, data_dir: str | os.PathLike | None = None,
                 limit: int | None = None, image_size: int | None = None, seed: int = 0) -> ImageData:
    """Load one split of a named dataset (see :data:`DATASETS`), optionally truncated and resized."""
    if name in ("fashion-mnist", "mnist", "idx"):
        directory = data_dir or DEFAULT_DIRS.get(name)
        if directory is None:
            raise DatasetNotFoundError("--dataset idx needs --data-dir DIR holding MNIST-format IDX files")
        if not Path(directory).is_dir():
            raise DatasetNotFoundError(_missing_message(name, Path(directory), "directory"))
        data = load_idx_split(directory, split, name=name)
    elif name == "digits":
        data = load_digits(split, seed=seed)
    elif name == "folder":
        if data_dir is None:
            raise DatasetNotFoundError("--dataset folder needs --data-dir ROOT with one sub-folder per class")
        data = load_image_folder(data_dir, split, seed=seed)
    else:
        raise ValueError(f"unknown dataset {name!r}{did_you_mean(name, DATASETS)} Known: {', '.join(DATASETS)}.")
    return data.subset(limit).resized(image_size)


# ---------------------------------------------------------------------------------- batches


class EpochBatches:
    """The index batches of one epoch: shuffled by ``(seed, epoch)``, sharded over ranks.

    Wraps :class:`torch.utils.data.DistributedSampler` (also with one replica), so every rank sees
    a disjoint ``1/world_size`` share and the order depends only on the seed and the epoch; that
    makes a resumed run read exactly the batches an uninterrupted one would. ``skip`` drops the
    batches already consumed in a partially finished epoch.
    """

    def __init__(self, n: int, batch_size: int, *, seed: int, rank: int = 0, world_size: int = 1,
                 shuffle: bool = True, drop_last: bool = True) -> None:
        if batch_size < 1:
            raise ValueError(f"batch size must be positive, got {batch_size}")
        per_rank = n // world_size if drop_last else -(-n // world_size)
        if drop_last and per_rank < batch_size:
            raise ValueError(f"{n} training images give {per_rank} per rank, fewer than one batch of "
                             f"{batch_size}; lower --batch-size or raise --limit")
        self.sampler = DistributedSampler(range(n), num_replicas=world_size, rank=rank, shuffle=shuffle,
                                          seed=seed, drop_last=True)
        self.batch_size, self.drop_last = batch_size, drop_last

    def __len__(self) -> int:
        m = len(self.sampler)
        return m // self.batch_size if self.drop_last else -(-m // self.batch_size)

    def epoch(self, epoch: int, skip: int = 0) -> list[list[int]]:
        self.sampler.set_epoch(epoch)
        idx = list(self.sampler)
        batches = [idx[i:i + self.batch_size] for i in range(0, len(idx), self.batch_size)]
        if self.drop_last and batches and len(batches[-1]) < self.batch_size:
            batches.pop()
        return batches[skip:]
