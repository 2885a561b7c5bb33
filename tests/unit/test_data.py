import gzip
import pickle

import numpy as np
import pytest
import torch

from cdemi import data
from cdemi.augment import random_crop_flip
from cdemi.data import fashion_mnist
from cdemi.data.idx import parse_idx


def test_fashion_mnist_loads_with_its_published_statistics(fmnist_root):
    train = data.load("fashion_mnist", "train", fmnist_root)
    test = data.load("fashion_mnist", "test", fmnist_root)
    assert train.images.shape == (60000, 1, 28, 28) and test.images.shape == (10000, 1, 28, 28)
    assert train.images.dtype == torch.uint8
    assert torch.bincount(train.labels).tolist() == [6000] * 10
    assert torch.bincount(test.labels).tolist() == [1000] * 10
    x = train.float_images()
    assert abs(x.mean().item() - train.spec.mean[0]) < 1e-3 and abs(x.std().item() - train.spec.std[0]) < 1e-3


def test_fashion_mnist_missing_says_where_it_looked_and_how_to_get_it(tmp_path, monkeypatch, tally):
    tally.fault("missing dataset")
    monkeypatch.setattr(fashion_mnist, "DEBIAN_DIR", tmp_path / "no-debian")
    with pytest.raises(data.DatasetNotFoundError) as e:
        data.load("fashion_mnist", "train", tmp_path / "empty")
    msg = str(e.value)
    assert str(tmp_path / "empty") in msg and "no-debian" in msg and "apt-get install dataset-fashion-mnist" in msg


def test_fashion_mnist_found_through_cdemi_data_in_torchvision_layout(fmnist_root, tmp_path, monkeypatch):
    raw = tmp_path / "FashionMNIST" / "raw"
    raw.mkdir(parents=True)
    for stem in fashion_mnist.FILES:
        src = fmnist_root / "fashion_mnist" / stem
        with gzip.open(raw / (stem + ".gz"), "wb") as f:
            f.write(src.read_bytes())
    monkeypatch.setattr(fashion_mnist, "DEBIAN_DIR", tmp_path / "no-debian")
    monkeypatch.setenv("CDEMI_DATA", str(tmp_path))
    assert len(fashion_mnist.load("test")) == 10000


def test_fashion_mnist_refuses_a_modified_file(fmnist_root, tmp_path, monkeypatch, tally):
    tally.bad_input("dataset file modified, truncated, foreign or a code pickle")
    for stem in fashion_mnist.FILES:
        (tmp_path / stem).write_bytes((fmnist_root / "fashion_mnist" / stem).read_bytes())
    blob = bytearray((tmp_path / "t10k-labels-idx1-ubyte").read_bytes())
    blob[100] = (blob[100] + 1) % 10
    (tmp_path / "t10k-labels-idx1-ubyte").write_bytes(bytes(blob))
    with pytest.raises(ValueError, match="does not match the original Fashion-MNIST"):
        fashion_mnist.load("test", tmp_path)


def test_idx_parser_rejects_truncated_and_foreign_data(tally):
    tally.bad_input("dataset file modified, truncated, foreign or a code pickle", 2)
    good = bytes([0, 0, 8, 1]) + (3).to_bytes(4, "big") + bytes([1, 2, 3])
    assert parse_idx(good).tolist() == [1, 2, 3]
    with pytest.raises(ValueError, match="truncated"):
        parse_idx(good[:-1])
    with pytest.raises(ValueError, match="magic"):
        parse_idx(b"PK\x03\x04junk")


@pytest.mark.parametrize("name,classes", [("cifar10", 10), ("cifar100", 100)])
def test_cifar_reads_the_python_batches(fake_cifar, name, classes):
    root, truth = fake_cifar
    for split in ("train", "test"):
        s = data.load(name, split, root)
        x, y = truth[name][split]
        assert s.spec.num_classes == classes and s.images.shape[1:] == (3, 32, 32)
        assert torch.equal(s.images, torch.from_numpy(x)) and s.labels.tolist() == list(y)


def test_cifar_refuses_pickles_that_run_code(fake_cifar, tally):
    tally.bad_input("dataset file modified, truncated, foreign or a code pickle")
    root, _ = fake_cifar
    target = root / "cifar10" / "cifar-10-batches-py" / "test_batch"

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    target.write_bytes(pickle.dumps({b"data": Evil(), b"labels": []}, protocol=2))
    with pytest.raises(ValueError, match="not a CIFAR python batch"):
        data.load("cifar10", "test", root)


def test_cifar_missing_names_the_folder_and_the_download(tmp_path, tally):
    tally.fault("missing dataset")
    with pytest.raises(data.DatasetNotFoundError, match="cifar-10-batches-py.*cs.toronto.edu"):
        data.load("cifar10", "train", tmp_path)


def test_tiny_imagenet_folder_layout(fake_tiny_imagenet):
    root, wnids = fake_tiny_imagenet
    train = data.load("tiny_imagenet", "train", root)
    assert train.images.shape == (6, 3, 64, 64) and train.labels.tolist() == [0, 0, 0, 1, 1, 1]
    test = data.load("tiny_imagenet", "test", root)
    assert test.labels.tolist() == [1, 0]  # val_annotations order, labels from wnids.txt
    assert abs(test.images[1].float().mean().item() - 40) < 3  # JPEG-coded constant image


def test_digits_split_is_fixed_and_disjoint():
    a, b = data.load("digits", "train"), data.load("digits", "test")
    assert len(a) + len(b) == 1797 and a.images.shape[1:] == (1, 16, 16)
    assert torch.equal(a.images, data.load("digits", "train").images)


def test_unknown_dataset_lists_known_ones(tally):
    tally.bad_input("unknown dataset name")
    with pytest.raises(KeyError, match="known: cifar10, cifar100, digits, fashion_mnist, tiny_imagenet"):
        data.load("mnist")


def test_imageset_rejects_wrong_shapes_and_labels():
    spec = data.spec("digits")
    with pytest.raises(ValueError, match="expects"):
        data.ImageSet(torch.zeros(2, 3, 16, 16, dtype=torch.uint8), torch.zeros(2), spec)
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 10\)"):
        data.ImageSet(torch.zeros(2, 1, 16, 16, dtype=torch.uint8), torch.tensor([0, 10]), spec)


def test_crop_flip_is_a_permutation_of_padded_pixels_and_seeded():
    x = torch.arange(2 * 3 * 8 * 8, dtype=torch.float32).view(2, 3, 8, 8) + 1
    a = random_crop_flip(x, 2, torch.Generator().manual_seed(5))
    b = random_crop_flip(x, 2, torch.Generator().manual_seed(5))
    assert torch.equal(a, b) and a.shape == x.shape
    for n in range(2):  # each output pixel is an input pixel of the same sample and channel, or padding
        for c in range(3):
            vals = set(a[n, c].flatten().tolist()) - {0.0}
            assert vals <= set(x[n, c].flatten().tolist())
    assert torch.equal(random_crop_flip(x, 0, torch.Generator().manual_seed(0), flip=False), x)
