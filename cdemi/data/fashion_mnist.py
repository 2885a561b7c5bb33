"""Fashion-MNIST (Xiao et al. 2017): 60k/10k grey 28x28 images, 10 classes.

Found, in this order, in: an explicit root (argument, else the ``CDEMI_DATA``
environment variable), Debian's ``dataset-fashion-mnist`` package
(``/usr/share/datasets/fashion-mnist``), then torchvision's download into the
explicit root when ``download=True``.  Inside a root the four IDX files may lie at
the top, under ``fashion_mnist/``, or under torchvision's ``FashionMNIST/raw/``,
gzip-compressed or not.  The decompressed bytes are checked against the SHA-256 of
the original release.
"""
from __future__ import annotations

import os
from pathlib import Path

import torch

from .idx import parse_idx, read_idx_bytes, sha256_of
from .imageset import ImageSet
from .spec import DatasetSpec

SPEC = DatasetSpec("fashion_mnist", 10, 1, 28, mean=(0.2860,), std=(0.3530,))
CLASS_NAMES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")
DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")

# SHA-256 of the *decompressed* IDX files of the original release.
FILES = {
    "train-images-idx3-ubyte": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
    "train-labels-idx1-ubyte": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
    "t10k-images-idx3-ubyte": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
    "t10k-labels-idx1-ubyte": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
}
_SPLIT_PREFIX = {"train": "train", "test": "t10k"}


class DatasetNotFoundError(FileNotFoundError):
    """A dataset's files were looked for and not found; the message says where and how to get them."""


def _find_in(folder: Path, stem: str) -> Path | None:
    for sub in ("", "fashion_mnist", "FashionMNIST/raw"):
        for suffix in (".gz", ""):
            p = folder / sub / (stem + suffix)
            if p.is_file():
                return p
    return None


def candidate_roots(root: str | os.PathLike | None = None) -> list[Path]:
    """The folders searched, in order: explicit root (or ``$CDEMI_DATA``), Debian's folder."""
    roots = []
    explicit = root if root is not None else os.environ.get("CDEMI_DATA")
    if explicit:
        roots.append(Path(explicit))
    roots.append(DEBIAN_DIR)
    return roots


def locate(root: str | os.PathLike | None = None, download: bool = False) -> dict[str, Path]:
    """Paths of the four IDX files.

    :param root: folder to look in first (default ``$CDEMI_DATA``).
    :param download: if nothing is found, let torchvision download into ``root``.
    :raises DatasetNotFoundError: listing every folder searched and how to get the files.
    """
    searched = candidate_roots(root)
    for folder in searched:
        found = {stem: _find_in(folder, stem) for stem in FILES}
        if all(found.values()):
            return found  # type: ignore[return-value]
    if download and searched[0] != DEBIAN_DIR:
        from torchvision.datasets import FashionMNIST

        FashionMNIST(str(searched[0]), train=True, download=True)
        FashionMNIST(str(searched[0]), train=False, download=True)
        return locate(searched[0], download=False)
    where = ", ".join(str(p) for p in searched)
    raise DatasetNotFoundError(
        f"Fashion-MNIST not found (looked in: {where}). Get it with "
        "`apt-get install dataset-fashion-mnist` (Debian, as root), or put the four IDX files "
        "(train-images-idx3-ubyte.gz, ...) in a folder and pass it as root= or $CDEMI_DATA, "
        "or call with download=True and a root to let torchvision download them."
    )


def load(split: str = "train", root: str | os.PathLike | None = None, download: bool = False) -> ImageSet:
    """Load a split (``train`` 60000 or ``test`` 10000) as a uint8 :class:`ImageSet` (N, 1, 28, 28).

    :raises ValueError: a file's content does not match the original release.
    """
    if split not in _SPLIT_PREFIX:
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    paths = locate(root, download)
    arrays = {}
    for kind in ("images", "labels"):
        stem = f"{_SPLIT_PREFIX[split]}-{kind}-idx{3 if kind == 'images' else 1}-ubyte"
        data = read_idx_bytes(paths[stem])
        if sha256_of(data) != FILES[stem]:
            raise ValueError(
                f"{paths[stem]} does not match the original Fashion-MNIST release (checksum differs); "
                "delete it and fetch the dataset again"
            )
        arrays[kind] = parse_idx(data, str(paths[stem]))
    images = torch.from_numpy(arrays["images"].copy()).unsqueeze(1)
    labels = torch.from_numpy(arrays["labels"].astype("int64"))
    return ImageSet(images, labels, SPEC)


def export(dest: str | os.PathLike, root: str | os.PathLike | None = None, download: bool = False) -> Path:
    """Write the four verified, decompressed IDX files into ``dest`` (atomically, each file).

    Whatever the source (Debian's gzip files, a download, an explicit folder), the
    exported bytes are those of the original release, so DVC sees one hash.
    """
    from ..artifacts import atomic_write_bytes

    dest = Path(dest)
    paths = locate(root, download)
    for stem, digest in FILES.items():
        target = dest / stem
        if target.is_file() and sha256_of(target.read_bytes()) == digest:
            continue
        data = read_idx_bytes(paths[stem])
        if sha256_of(data) != digest:
            raise ValueError(f"{paths[stem]} does not match the original Fashion-MNIST release (checksum differs)")
        atomic_write_bytes(target, data)
    return dest

