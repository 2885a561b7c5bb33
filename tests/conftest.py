"""Shared fixtures: tiny real data and fake files in the real on-disk formats."""
from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import settings

from cdemi import data

# The same examples on every run (and no example database carried between runs): the suite is
# deterministic, and so are the reliability counts it writes for the README.
settings.register_profile("cdemi", derandomize=True, database=None)
settings.load_profile("cdemi")


@pytest.fixture(scope="session")
def digits_train():
    return data.load("digits", "train")


@pytest.fixture(scope="session")
def digits_test():
    return data.load("digits", "test")


@pytest.fixture(scope="session")
def fmnist_root() -> Path:
    """The exported Fashion-MNIST folder the Makefile prepares (the README's commands)."""
    root = Path(__file__).resolve().parents[1] / "data"
    data.fashion_mnist.locate(root)  # fails with its own message when absent
    return root


@pytest.fixture(scope="session")
def digits_teacher(digits_train, digits_test):
    """A ResNet-18 (width 0.25) trained 3 epochs on digits (~96% test accuracy), in eval mode."""
    from cdemi.train import TrainSettings, train_classifier

    t = tiny_model(width=0.25)
    train_classifier(t, digits_train, digits_test, TrainSettings(epochs=3, batch_size=64, lr=0.05), progress=False)
    return t.eval()


def write_cifar_batch(path: Path, images: np.ndarray, labels: list[int], label_key: bytes) -> None:
    """A batch as the CIFAR python release stores it: a protocol-2 pickle with bytes keys."""
    d = {b"batch_label": b"fake batch", label_key: labels, b"data": images.reshape(len(images), -1),
         b"filenames": [f"img{i}.png".encode() for i in range(len(images))]}
    if label_key == b"fine_labels":
        d[b"coarse_labels"] = [0] * len(labels)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        pickle.dump(d, f, protocol=2)


@pytest.fixture
def fake_cifar(tmp_path):
    """A data root with tiny CIFAR-10 (5 train batches of 4, test 4) and CIFAR-100 files.

    Returns (root, {name: {split: (images uint8 (N,3,32,32), labels)}}).
    """
    rng = np.random.default_rng(0)
    truth = {}
    c10 = tmp_path / "cifar10" / "cifar-10-batches-py"
    imgs, labs = [], []
    for i in range(1, 6):
        x = rng.integers(0, 256, (4, 3, 32, 32), dtype=np.uint8)
        y = rng.integers(0, 10, 4).tolist()
        write_cifar_batch(c10 / f"data_batch_{i}", x, y, b"labels")
        imgs.append(x)
        labs += y
    xt, yt = rng.integers(0, 256, (4, 3, 32, 32), dtype=np.uint8), rng.integers(0, 10, 4).tolist()
    write_cifar_batch(c10 / "test_batch", xt, yt, b"labels")
    truth["cifar10"] = {"train": (np.concatenate(imgs), labs), "test": (xt, yt)}
    c100 = tmp_path / "cifar100" / "cifar-100-python"
    truth["cifar100"] = {}
    for split in ("train", "test"):
        x, y = rng.integers(0, 256, (6, 3, 32, 32), dtype=np.uint8), rng.integers(0, 100, 6).tolist()
        write_cifar_batch(c100 / split, x, y, b"fine_labels")
        truth["cifar100"][split] = (x, y)
    return tmp_path, truth


@pytest.fixture
def fake_tiny_imagenet(tmp_path):
    """tiny-imagenet-200 layout with 2 classes, 3 train images each and 2 val images (PNG-coded JPEG names)."""
    from PIL import Image

    base = tmp_path / "tiny_imagenet" / "tiny-imagenet-200"
    wnids = ["n01443537", "n01629819"]
    (base).mkdir(parents=True)
    (base / "wnids.txt").write_text("\n".join(wnids) + "\n")
    rng = np.random.default_rng(1)
    for w in wnids:
        d = base / "train" / w / "images"
        d.mkdir(parents=True)
        for i in range(3):
            Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(d / f"{w}_{i}.JPEG", format="JPEG")
    (base / "val" / "images").mkdir(parents=True)
    lines = []
    for i, w in enumerate(reversed(wnids)):
        Image.fromarray(np.full((64, 64, 3), 40 * i, dtype=np.uint8)).save(base / "val" / "images" / f"val_{i}.JPEG", format="JPEG")
        lines.append(f"val_{i}.JPEG\t{w}\t0\t0\t63\t63")
    (base / "val" / "val_annotations.txt").write_text("\n".join(lines) + "\n")
    return tmp_path, wnids


def interrupt_synthesis(host, at_call: int) -> None:
    """Make ``host.synthesize`` raise KeyboardInterrupt on its ``at_call``-th call (1-based),
    as an interruption in the middle of a distillation run would."""
    real, calls = host.synthesize, {"n": 0}

    def dying(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == at_call:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    host.synthesize = dying


def tiny_model(arch: str = "resnet18", in_channels: int = 1, width: float = 0.125):
    from cdemi import models

    torch.manual_seed(0)
    return models.build(arch, num_classes=10, in_channels=in_channels, width=width)


@pytest.fixture(scope="session")
def tally():
    """The suite's count of bad inputs, injected faults and files kept (:mod:`tests.reliability_tally`)."""
    from .reliability_tally import TALLY

    return TALLY


def _reliability_counts_file() -> Path | None:
    """Where ``make test`` wants the suite's reliability counts (``CDEMI_RELIABILITY_COUNTS``, a file git
    ignores), or None outside ``make test``."""
    import os

    path = os.environ.get("CDEMI_RELIABILITY_COUNTS")
    return Path(path) if path else None


TIERS = ("unit", "pipeline", "reliability")


def pytest_collection_modifyitems(config, items):
    """Every test under ``tests/<tier>/`` takes the marker ``<tier>``: ``pytest -m unit`` is the quick tier."""
    here = Path(__file__).resolve().parent
    for item in items:
        try:
            tier = Path(item.path).resolve().relative_to(here).parts[0]
        except ValueError:  # a notebook under notebooks/ (nbval)
            continue
        if tier in TIERS:
            item.add_marker(getattr(pytest.mark, tier))


def pytest_sessionstart(session):
    """Under ``make test``: drop the previous run's counts, so only a whole, passing run leaves any."""
    path = _reliability_counts_file()
    if path is not None:
        path.unlink(missing_ok=True)


def pytest_sessionfinish(session, exitstatus):
    """After a whole, passing suite under ``make test``: the counts into ``CDEMI_RELIABILITY_COUNTS``
    (``make readme`` shows them in the README; no tracked file is written here)."""
    from .reliability_tally import TALLY

    path = _reliability_counts_file()
    whole = not (session.config.option.keyword or session.config.option.markexpr)
    if path is not None and whole and exitstatus == 0 and session.testscollected:
        path.parent.mkdir(parents=True, exist_ok=True)
        TALLY.write(path)
        print(f"\nreliability counts written to {path}")
