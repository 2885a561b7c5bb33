import zipfile

import numpy as np
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


def test_corrupt_or_foreign_sets_are_refused(tmp_path, tally):
    tally.bad_input("condensed set of another dataset, IPC or resolution", 3)
    tally.bad_input("corrupt condensed set (bit flip, truncation)")
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
    assert tally.kept(tmp_path / "a.pt", bytes(blob))


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


def test_vico_layout_errors_are_explained(tmp_path, tally):
    tally.bad_input("public condensed file of another layout, dataset or resolution", 3)
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


DAMAGED = "damaged public condensed file (truncation, bit flip, code pickle, other bytes)"


def _vico(tmp_path, dataset="FashionMNIST", shape=(1, 28, 28), classes=10):
    x, y = _pixels(2, classes, shape)
    f = tmp_path / f"res_DM_{dataset}_ConvNet_2ipc.pt"
    torch.save({"data": [[x, y]], "accs_all_exps": {}}, f)
    return f


def _official_vico(tmp_path, numpy_layout: str):
    """A res_*.pt as VICO-UoE's main.py / main_DM.py saves it: the normalised images and labels of each
    experiment, and ``accs_all_exps`` holding, per evaluation model, the numpy float64 accuracies its
    evaluation returns.  ``numpy_layout`` "2" pickles them as numpy 2.x does (``numpy._core``), "1" as
    numpy 1.x did (``numpy.core``; the same pickle with the older module path)."""
    x, y = _pixels(2)
    f = tmp_path / "res_DM_FashionMNIST_ConvNet_2ipc.pt"
    accs = {"ConvNet": [np.float64(0.8123), np.float64(0.8201)]}
    torch.save({"data": [[_normalise(x, "fashion_mnist"), y]], "accs_all_exps": accs}, f)
    if numpy_layout == "1":
        old = f.with_suffix(".numpy2")
        f.rename(old)
        with zipfile.ZipFile(old) as zin, zipfile.ZipFile(f, "w", zipfile.ZIP_STORED) as zout:
            for info in zin.infolist():
                data = zin.read(info.filename)
                if info.filename.endswith("data.pkl"):
                    assert b"numpy._core.multiarray" in data
                    data = data.replace(b"numpy._core.multiarray", b"numpy.core.multiarray")
                zout.writestr(info, data)
        assert "numpy.core.multiarray.scalar" in torch.serialization.get_unsafe_globals_in_checkpoint(f)
    return f, x


@pytest.mark.parametrize("numpy_layout", ["1", "2"])
def test_an_official_vico_file_with_numpy_accuracies_loads_with_exactly_numpy_allowed(tmp_path, numpy_layout):
    f, x = _official_vico(tmp_path, numpy_layout)
    with pytest.raises(Exception, match="Weights only load failed"):  # torch's defaults alone refuse it
        torch.load(f, weights_only=True)
    cs = read_vico(f)
    assert torch.allclose(cs.images, x, atol=1e-6) and cs.ipc == 2
    assert cs.meta["source_accuracies"] == {"ConvNet": [0.8123, 0.8201]}


def test_a_vico_file_that_needs_other_code_is_refused_naming_it(tmp_path):
    import fractions

    x, y = _pixels(2)
    f = tmp_path / "res_DM_FashionMNIST_ConvNet_2ipc.pt"
    torch.save({"data": [[_normalise(x, "fashion_mnist"), y]],
                "accs_all_exps": {"ConvNet": [fractions.Fraction(4, 5)]}}, f)
    with pytest.raises(FormatError, match=r"needs code outside what may be unpickled \(fractions.Fraction\)"):
        read_vico(f)


def test_damaged_public_files_are_refused_with_the_fix(tmp_path, tally):
    """Truncation, a flipped exponent bit (NaN pixels), a pickle that needs code, and bytes that differ
    from a pinned download: each a FormatError naming the file; the file itself is left as it is."""
    f = _vico(tmp_path)
    good = f.read_bytes()
    digest = read_vico(f).meta["source_sha256"]

    f.write_bytes(good[: len(good) // 2])
    tally.bad_input(DAMAGED)
    with pytest.raises(FormatError, match=f"VICO-UoE result file {f} cannot be loaded safely.*Download the file again"):
        read_vico(f)
    assert tally.kept(f, good[: len(good) // 2])

    x, y = _pixels()
    x.view(-1)[7] = float("nan")  # what a flipped exponent bit can make of a float32
    torch.save({"data": [[x, y]]}, f)
    tally.bad_input(DAMAGED)
    with pytest.raises(FormatError, match=f"{f}: 1 pixel values are NaN or infinite"):
        read_vico(f)

    class Payload:
        def __reduce__(self):
            return (print, ("code ran",))

    torch.save({"data": Payload()}, f)
    tally.bad_input(DAMAGED)
    with pytest.raises(FormatError, match=r"cannot be loaded safely: it needs code outside .*\(builtins.print\)"):
        read_vico(f)

    f.write_bytes(good)
    assert read_vico(f, sha256=digest.upper()).meta["source_sha256"] == digest  # the pin matches its own bytes
    other = bytearray(good)
    other[-50] ^= 0x01
    f.write_bytes(bytes(other))
    tally.bad_input(DAMAGED)
    with pytest.raises(FormatError, match=f"has SHA-256 [0-9a-f]{{64}}, the pinned download has {digest}"):
        read_vico(f, sha256=digest)
    assert tally.kept(f, bytes(other))


def test_public_files_of_another_dataset_are_refused(tmp_path, tally):
    """CIFAR-100 labels in a file read as CIFAR-10, 32x32 images read as Fashion-MNIST, a class missing."""
    tally.bad_input("public condensed file of another layout, dataset or resolution", 3)
    f = _vico(tmp_path, "CIFAR100", (3, 32, 32), classes=100)
    with pytest.raises(FormatError, match=r"labels span 0..99, cifar10 has classes 0..9: a set of another dataset"):
        read_vico(f, dataset="cifar10")
    x, y = _pixels(1, 10, (3, 32, 32))
    torch.save(_normalise(x, "cifar10"), tmp_path / "images_best.pt")
    torch.save(y, tmp_path / "labels_best.pt")
    with pytest.raises(FormatError, match=r"images \(10, 3, 32, 32\).*fashion_mnist needs \(N, \(1, 28, 28\)\)"):
        read_mtt(tmp_path / "images_best.pt", tmp_path / "labels_best.pt", "fashion_mnist")
    torch.save(torch.arange(1, 11) % 9, tmp_path / "labels_best.pt")  # class 9 missing, class 0 twice
    with pytest.raises(FormatError, match="labels_best.pt: classes are not balanced"):
        read_mtt(tmp_path / "images_best.pt", tmp_path / "labels_best.pt", "cifar10")


def test_mtt_files_that_need_code_or_are_truncated_are_refused(tmp_path, tally):
    x, y = _pixels(1, 10, (3, 32, 32))
    torch.save(_normalise(x, "cifar10"), tmp_path / "images_best.pt")
    good = (tmp_path / "images_best.pt").read_bytes()
    (tmp_path / "labels_best.pt").write_bytes(b"\x80\x02cos\nsystem\nq\x00X\x02\x00\x00\x00idq\x01\x85q\x02Rq\x03.")
    tally.bad_input(DAMAGED, 2)
    with pytest.raises(FormatError, match="MTT labels file .*labels_best.pt cannot be loaded safely"):
        read_mtt(tmp_path / "images_best.pt", tmp_path / "labels_best.pt", "cifar10")
    torch.save(y, tmp_path / "labels_best.pt")
    (tmp_path / "images_best.pt").write_bytes(good[:-200])
    with pytest.raises(FormatError, match="MTT images file .*images_best.pt cannot be loaded safely"):
        read_mtt(tmp_path / "images_best.pt", tmp_path / "labels_best.pt", "cifar10")
    assert tally.kept(tmp_path / "images_best.pt", good[:-200])


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


def _import_run(f, **overrides):
    from cdemi.artifacts import sha256_file
    from cdemi.params import ImportRun

    return ImportRun(**{"format": "vico", "source": str(f), "sha256": sha256_file(f), "ipc": 2, **overrides})


def _profile_settings(fmnist_root):
    from cdemi.params import DataParams, RuntimeParams

    return DataParams(dataset="fashion_mnist", root=str(fmnist_root)), RuntimeParams(threads=1)


def test_an_imports_entry_turns_an_official_file_into_a_pipeline_set(tmp_path, fmnist_root):
    """The file as main_DM.py saves it becomes a set of the project's format: its own method name
    (kept apart from the sets condensed here), the source's digest and reported accuracies in its meta."""
    from cdemi.condense import condense_entry
    from cdemi.data.public_formats import reported_accuracy

    f, x = _official_vico(tmp_path, "2")
    run = _import_run(f)
    out = tmp_path / "sets" / "dm_vico_ipc2.pt"
    record = condense_entry(run, *_profile_settings(fmnist_root), out, progress=False)
    cs = load_condensed(out)
    assert (record["method"], cs.method, cs.ipc, cs.dataset) == ("dm_vico", "dm_vico", 2, "fashion_mnist")
    assert torch.allclose(cs.images, x, atol=1e-6)
    assert cs.meta["source_sha256"] == run.sha256 and cs.meta["source_format"] == "vico"
    assert reported_accuracy(cs.meta) == pytest.approx(100 * (0.8123 + 0.8201) / 2)


def test_an_import_that_does_not_match_its_entry_stops_before_writing(tmp_path, fmnist_root):
    from cdemi.condense import condense_entry

    f, _ = _official_vico(tmp_path, "2")
    out = tmp_path / "sets" / "dm_vico_ipc2.pt"
    with pytest.raises(FormatError, match="the pinned download has"):
        condense_entry(_import_run(f, sha256="0" * 64), *_profile_settings(fmnist_root), out, progress=False)
    with pytest.raises(ValueError, match="holds 2 images per class, the entry says ipc: 3; set ipc: 2"):
        condense_entry(_import_run(f, ipc=3), *_profile_settings(fmnist_root), out, progress=False)
    assert not out.exists() and not out.with_suffix(".json").exists()


@pytest.mark.parametrize("overrides,message", [({"format": "mtt", "experiment": 1}, "experiment applies to vico"),
                                               ({"zca": True}, "zca applies to MTT"),
                                               ({"sha256": "abc"}, "sha256"), ({"seed": 1}, "seed has no effect")])
def test_import_settings_that_cannot_take_effect_are_refused(tmp_path, overrides, message):
    from pydantic import ValidationError

    f, _ = _official_vico(tmp_path, "2")
    with pytest.raises(ValidationError, match=message):
        _import_run(f, **overrides)
