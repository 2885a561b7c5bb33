"""CIFAR-10 / CIFAR-100 from the original "python version" pickle batches.

Expected layout (as extracted from ``cifar-10-python.tar.gz`` / ``cifar-100-python.tar.gz``):
``<root>/cifar10/cifar-10-batches-py/{data_batch_1..5,test_batch}`` and
``<root>/cifar100/cifar-100-python/{train,test}`` (the ``cifar10``/``cifar100`` level may be omitted).  Each file is a pickled dict with
``b"data"`` (uint8 (N, 3072), row-major RGB planes) and ``b"labels"`` (CIFAR-10) or
``b"fine_labels"`` (CIFAR-100).  The pickles hold only numpy arrays and lists, and
are read with a restricted unpickler that refuses anything else.
"""
from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import torch

from .fashion_mnist import DatasetNotFoundError
from .imageset import ImageSet
from .spec import DatasetSpec

CIFAR10 = DatasetSpec("cifar10", 10, 3, 32, mean=(0.4914, 0.4822, 0.4465), std=(0.2470, 0.2435, 0.2616))
CIFAR100 = DatasetSpec("cifar100", 100, 3, 32, mean=(0.5071, 0.4865, 0.4409), std=(0.2673, 0.2564, 0.2762))

_LAYOUT = {
    "cifar10": ("cifar-10-batches-py", {"train": [f"data_batch_{i}" for i in range(1, 6)], "test": ["test_batch"]}, b"labels"),
    "cifar100": ("cifar-100-python", {"train": ["train"], "test": ["test"]}, b"fine_labels"),
}
_ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
            ("numpy", "ndarray"), ("numpy", "dtype"), ("numpy.core.multiarray", "scalar"),
            ("numpy._core.multiarray", "scalar"), ("_codecs", "encode")}


class _ArraysOnly(pickle.Unpickler):
    def find_class(self, module, name):
        if (module, name) in _ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}: a CIFAR batch holds only arrays")


def _read_batch(path: Path, label_key: bytes) -> tuple[np.ndarray, np.ndarray]:
    try:
        with open(path, "rb") as f:
            d = _ArraysOnly(f, encoding="bytes").load()
        data = np.asarray(d[b"data"], dtype=np.uint8)
        labels = np.asarray(d[label_key], dtype=np.int64)
    except (pickle.UnpicklingError, KeyError, EOFError, TypeError, ValueError) as e:
        raise ValueError(f"{path} is not a CIFAR python batch ({type(e).__name__}: {e})") from e
    if data.ndim != 2 or data.shape[1] != 3072 or len(labels) != len(data):
        raise ValueError(f"{path}: expected data (N, 3072) and N labels, got {data.shape} and {labels.shape}")
    return data, labels


def load(name: str, split: str = "train", root: str | os.PathLike | None = None) -> ImageSet:
    """Load ``cifar10`` or ``cifar100`` as a uint8 :class:`ImageSet` (N, 3, 32, 32).

    :param root: folder holding ``cifar-10-batches-py`` / ``cifar-100-python`` (default ``$CDEMI_DATA``).
    """
    folder_name, files, label_key = _LAYOUT[name]
    spec = CIFAR10 if name == "cifar10" else CIFAR100
    root = Path(root if root is not None else os.environ.get("CDEMI_DATA", "data"))
    folder = root / name / folder_name if (root / name / folder_name).is_dir() else root / folder_name
    missing = [f for f in files[split] if not (folder / f).is_file()]
    if missing:
        raise DatasetNotFoundError(
            f"{name} not found: {folder} lacks {', '.join(missing)}. Download the python version from "
            "https://www.cs.toronto.edu/~kriz/cifar.html and extract it under the data root "
            "(root= or $CDEMI_DATA)."
        )
    parts = [_read_batch(folder / f, label_key) for f in files[split]]
    data = np.concatenate([p[0] for p in parts]).reshape(-1, 3, 32, 32)
    labels = np.concatenate([p[1] for p in parts])
    return ImageSet(torch.from_numpy(data), torch.from_numpy(labels), spec)
