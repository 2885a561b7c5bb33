import pytest
import torch

from cdemi import data
from cdemi.artifacts import ArtifactError
from cdemi.data.condensed import CondensedSet, load_condensed, save_condensed
from cdemi.data.public_formats import SOURCE_NORMALISATION, ZCA, FormatError, read_mtt, read_vico
from cdemi.data.subsets import real_subset


def _pixels(n_per_class=2, classes=10, shape=(1, 28, 28), seed=0):
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(classes).repeat_interleave(n_per_class)
    return torch.rand((classes * n_per_class, *shape), generator=g), labels


def _normalise(x, dataset):
    mean, std = SOURCE_NORMALISATION[dataset]
    return (x - torch.tensor(mean).view(1, -1, 1, 1)) / torch.tensor(std).view(1, -1, 1, 1)


def test_round_trip_keeps_images_labels_and_provenance(tmp_path):
    x, y = _pixels()
    cs = CondensedSet(x, y, "fashion_mnist", "dm", 2, {"seed": 3})
    rec = save_condensed(tmp_path / "dm.pt", cs)
    back = load_condensed(tmp_path / "dm.pt", dataset="fashion_mnist", ipc=2, shape=(1, 28, 28))
    assert torch.equal(back.images, x) and torch.equal(back.labels, y)
    assert back.meta["seed"] == 3 and back.meta["sha256"] == rec["sha256"] and back.method == "dm"


def test_corrupt_or_foreign_sets_are_refused(tmp_path):
    x, y = _pixels()
    save_condensed(tmp_path / "a.pt", CondensedSet(x, y, "fashion_mnist", "dm", 2))
    with pytest.raises(ArtifactError, match="has dataset 'fashion_mnist', expected 'cifar10'"):
        load_condensed(tmp_path / "a.pt", dataset="cifar10")
    with pytest.raises(ArtifactError, match="has IPC 2, expected 10"):
        load_condensed(tmp_path / "a.pt", ipc=10)
    with pytest.raises(ArtifactError, match=r"image shape \[1, 28, 28\], expected \[3, 32, 32\]"):
        load_condensed(tmp_path / "a.pt", shape=(3, 32, 32))
    blob = bytearray((tmp_path / "a.pt").read_bytes())
    blob[-100] ^= 0xFF
    (tmp_path / "a.pt").write_bytes(bytes(blob))
    with pytest.raises(ArtifactError, match="corrupt or was replaced"):
        load_condensed(tmp_path / "a.pt")


def test_unbalanced_or_misshapen_sets_are_rejected():
    x, y = _pixels()
    with pytest.raises(ValueError, match="per-class counts"):
        CondensedSet(x[1:], y[1:], "fashion_mnist", "dm", 2)
    with pytest.raises(ValueError, match=r"needs \(N, \(3, 32, 32\)\)"):
        CondensedSet(x, y, "cifar10", "dm", 2)


def test_vico_file_round_trip_chooses_the_experiment(tmp_path):
    x0, y = _pixels(seed=0)
    x1, _ = _pixels(seed=1)
    perm = torch.randperm(len(y), generator=torch.Generator().manual_seed(0))
    f = tmp_path / "res_DM_FashionMNIST_ConvNet_2ipc.pt"
    torch.save({"data": [[_normalise(x0, "fashion_mnist"), y.clone()],
                         [_normalise(x1, "fashion_mnist")[perm], y[perm]]],
                "accs_all_exps": {"ConvNet": [0.81, 0.82]}}, f)
    cs = read_vico(f, experiment=1)
    assert cs.dataset == "fashion_mnist" and cs.method == "dm" and cs.ipc == 2
    order = torch.argsort(y[perm], stable=True)  # the reader sorts by class, keeping the file's order within one
    assert torch.allclose(cs.images, x1[perm][order], atol=1e-6) and torch.equal(cs.labels, y)
    with pytest.raises(FormatError, match="experiment 2 requested, the file holds 2"):
        read_vico(f, experiment=2)


def test_vico_layout_errors_are_explained(tmp_path):
    f = tmp_path / "res_DSA_CIFAR10_ConvNet_1ipc.pt"
    torch.save({"images": torch.zeros(10, 3, 32, 32)}, f)
    with pytest.raises(FormatError, match="expected a dict with key 'data'"):
        read_vico(f)
    x, y = _pixels(1)
    torch.save({"data": [[x, y]]}, f)
    with pytest.raises(FormatError, match=r"cifar10 needs \(N, \(3, 32, 32\)\)"):
        read_vico(f)
    with pytest.raises(FormatError, match="expected res_<method>"):
        read_vico(tmp_path / "synthetic.pt")


def test_mtt_zca_files_are_unwhitened_with_a_refitted_zca(tmp_path):
    g = torch.Generator().manual_seed(0)
    train = torch.rand(300, 1, 28, 28, generator=g) * 0.5 + 0.25
    zca = ZCA.fit(train)
    x, y = _pixels(2, 10, (1, 28, 28))
    torch.save(zca.whiten(x), tmp_path / "images_best.pt")
    torch.save(y, tmp_path / "labels_best.pt")
    refit = ZCA.fit(train.clone())  # a reader refits on the same training set
    cs = read_mtt(tmp_path / "images_best.pt", tmp_path / "labels_best.pt", "fashion_mnist", zca=refit)
    assert cs.method == "mtt" and cs.ipc == 2 and cs.meta["zca"] is True
    assert torch.allclose(cs.images, x, atol=1e-4)


def test_mtt_plain_files_are_denormalised(tmp_path):
    x, y = _pixels(1, 10, (3, 32, 32))
    torch.save(_normalise(x, "cifar10"), tmp_path / "images_best.pt")
    torch.save(y, tmp_path / "labels_best.pt")
    cs = read_mtt(tmp_path / "images_best.pt", tmp_path / "labels_best.pt", "cifar10")
    assert torch.allclose(cs.images, x, atol=1e-6)
    torch.save(y[:5], tmp_path / "labels_best.pt")
    with pytest.raises(FormatError, match="MTT files hold images"):
        read_mtt(tmp_path / "images_best.pt", tmp_path / "labels_best.pt", "cifar10")


def test_kshot_subsets_are_balanced_seeded_and_real(digits_train):
    a = real_subset(digits_train, 5, seed=1, method="kshot")
    b = real_subset(digits_train, 5, seed=1, method="kshot")
    c = real_subset(digits_train, 5, seed=2, method="kshot")
    assert a.ipc == 5 and torch.bincount(a.labels).tolist() == [5] * 10
    assert torch.equal(a.images, b.images) and not torch.equal(a.images, c.images)
    idx = torch.tensor(a.meta["source_indices"])
    assert torch.equal(a.images, digits_train.images[idx].float() / 255)
    assert len(set(idx.tolist())) == 50
    with pytest.raises(ValueError, match="fewer than k = 1000"):
        real_subset(digits_train, 1000, seed=0)
