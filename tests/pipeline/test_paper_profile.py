"""The paper profile (``profiles/paper.yaml``): its grid is complete and wired, its values are the
published ones, and its entries, shrunk, run end to end on fake data in the real on-disk formats of
CIFAR-10, CIFAR-100 and Tiny-ImageNet through the functions the DVC stages' notebooks call."""
from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from cdemi import data as datasets
from cdemi import params
from cdemi.artifacts import safe_torch_load
from cdemi.condense import condense_entry, evaluate_entry
from cdemi.data.condensed import load_condensed
from cdemi.distill import distill_entry
from cdemi.train import train_run

from ..conftest import write_cifar_batch

ROOT = Path(__file__).resolve().parents[2]
PAPER = ROOT / "profiles" / "paper.yaml"
DATASETS = ("cifar10", "cifar100", "tiny_imagenet")
HOSTS = ("deepinversion", "fast", "cmi", "predfkd")


@pytest.fixture(scope="module")
def profile() -> params.Profile:
    return params.load(PAPER)


def _outputs(profile: params.Profile) -> dict[str, tuple[str, str]]:
    """Path -> (section, entry name) of every artifact a train / kd_full / condense stage writes (dvc.yaml)."""
    out = {f"data/models/{k}.pt": ("train", k) for k in profile.train}
    out |= {f"data/models/{k}.pt": ("kd_full", k) for k in profile.kd_full}
    out |= {f"data/condensed/{k}.pt": ("condense", k) for k in profile.condense}
    return out


def _dataset_of(profile: params.Profile, section: str, name: str) -> str:
    return getattr(profile, section)[name].dataset or profile.data.dataset


# ---------------------------------------------------------------- the profile itself


def test_every_input_of_a_run_is_produced_by_an_entry_of_the_same_dataset(profile):
    produced = _outputs(profile)
    assert {_dataset_of(profile, s, k) for s in ("train", "kd_full", "condense") for k in getattr(profile, s)} \
        == set(DATASETS)
    for name, run in profile.kd_full.items():
        assert produced[run.teacher][0] == "train", name
        assert _dataset_of(profile, *produced[run.teacher]) == run.dataset, name
    for name, run in profile.distill.items():
        dataset = run.dataset or profile.data.dataset
        assert dataset in DATASETS and name.startswith(f"{dataset}_"), name
        for path in (run.teacher, run.transfer, run.diagnostics_reference):
            if path is None:
                continue
            assert path in produced, f"{name}: nothing in the profile writes {path}"
            assert _dataset_of(profile, *produced[path]) == dataset, f"{name}: {path} is of another dataset"
        section, teacher = produced[run.teacher]
        assert section == "train" and profile.train[teacher].arch == run.teacher_arch == "resnet34", name
        assert all(not isinstance(v, str) for v in run.host_params.values()), f"{name}: a number read as text"


def _cell(profile: params.Profile, run: params.DistillRun) -> tuple:
    """What a run is, from its fields: (student, host, variant, (method, ipc) of its set, ablation)."""
    transfer = None
    if run.transfer:
        entry = profile.condense[Path(run.transfer).stem]
        transfer = (entry.method, entry.ipc)
    ablation = ()
    if run.guidance is not None:
        base = params.GuidanceParams(conditional=run.guidance.conditional)
        ablation = tuple(sorted((k, v) for k, v in run.guidance.model_dump().items() if v != getattr(base, k)))
    return run.student.arch, run.host or "kd", run.variant, transfer, ablation


def _expected_grid() -> dict[tuple, set[int]]:
    """The default profile's grid T1-T5 (83 runs), as cells -> seeds."""
    cells: dict[tuple, set[int]] = {}
    dm10 = ("dm", 10)
    for student, seeds in (("mobilenetv2", {0, 1, 2}), ("resnet18", {0})):  # T1
        for host in HOSTS:
            cells[(student, host, "plain", None, ())] = seeds
            cells[(student, host, "naive", dm10, ())] = seeds
            cells[(student, host, "guided", dm10, ())] = seeds
        cells[(student, "kd", "kd-only", dm10, ())] = seeds
        cells[(student, "kd", "kd-only", ("random_real", 10), ())] = seeds
    mnv2 = "mobilenetv2"
    for ipc in (1, 50):  # T2
        for host in ("fast", "cmi"):
            cells[(mnv2, host, "naive", ("dm", ipc), ())] = {0}
            cells[(mnv2, host, "guided", ("dm", ipc), ())] = {0}
        cells[(mnv2, "kd", "kd-only", ("dm", ipc), ())] = {0}
    for s in (("dsa", 10), ("mtt", 10)):  # T3
        cells[(mnv2, "fast", "guided", s, ())] = {0}
        cells[(mnv2, "kd", "kd-only", s, ())] = {0}
    cells[(mnv2, "fast", "guided", ("random_real", 10), ())] = {0}
    for k in (1, 5, 10):  # T4
        cells[(mnv2, "fast", "guided", ("kshot", k), ())] = {0}
        cells[(mnv2, "kd", "kd-only", ("kshot", k), ())] = {0}
    cells[(mnv2, "fast", "guided-uncond", dm10, ())] = {0}  # T5
    for ablation in (("layer", "layer3"), ("augment", False), ("weight", 0.1), ("weight", 0.5), ("weight", 2.0)):
        cells[(mnv2, "fast", "guided", dm10, (ablation,))] = {0}
    return cells


@pytest.mark.parametrize("dataset", DATASETS)
def test_each_dataset_has_the_whole_grid(profile, dataset):
    found: dict[tuple, set[int]] = {}
    runs = [r for r in profile.distill.values() if (r.dataset or profile.data.dataset) == dataset]
    for run in runs:
        seeds = found.setdefault(_cell(profile, run), set())
        assert run.seed not in seeds, f"two runs of one cell with seed {run.seed}: {_cell(profile, run)}"
        seeds.add(run.seed)
    expected = _expected_grid()
    assert found == expected
    assert len(runs) == sum(len(s) for s in expected.values()) == 83
    sets = {(e.method, e.ipc) for e in profile.condense.values() if e.dataset == dataset}
    assert sets == {(m, i) for m in ("dm", "dsa", "mtt", "random_real") for i in (1, 10, 50)} \
        | {("kshot", k) for k in (1, 5, 10)}
    assert {(r.arch, r.teacher is None) for r in (*profile.train.values(), *profile.kd_full.values())
            if r.dataset == dataset} == {("resnet34", True), ("mobilenetv2", True), ("resnet18", True),
                                         ("mobilenetv2", False), ("resnet18", False)}


# host -> (host_params subset, loop settings): the published CIFAR values (paper.md; the hosts' public scripts)
PUBLISHED = {
    "deepinversion": ({"batch_size": 256, "iterations": 2000, "lr": 0.05, "bn": 10.0, "tv": 2.5e-5},
                      {"epochs": 200, "kd_steps": 400, "batch_size": 256, "lr": 0.1, "temperature": 20.0}),
    "fast": ({"batch_size": 256, "g_steps": 10, "lr_g": 2e-3, "lr_z": 0.01, "bn": 10.0, "oh": 0.5, "adv": 1.33,
              "bn_momentum": 0.9, "warmup": 20},
             {"epochs": 220, "kd_steps": 400, "batch_size": 256, "lr": 0.2, "temperature": 20.0}),
    "cmi": ({"batch_size": 256, "g_steps": 200, "lr_g": 1e-3, "bn": 1.0, "oh": 1.0, "adv": 0.5, "cr": 0.8},
            {"epochs": 200, "kd_steps": 400, "batch_size": 256, "lr": 0.1, "temperature": 20.0}),
    "predfkd": ({"batch_size": 1024, "lr_g": 0.02, "oh": 1.0, "a": 0.1, "nz": 1000, "replay_fraction": 0.125},
                {"epochs": 400, "batch_size": 1024, "lr": 0.1}),
}


def test_hosts_run_with_their_published_values(profile):
    for name, run in profile.distill.items():
        assert run.student.width == 1.0, name
        if run.host is None:
            continue
        host_params, loop = PUBLISHED[run.host]
        assert {k: run.host_params.get(k) for k in host_params} == host_params, name
        assert {k: getattr(run, k) for k in loop} == loop, name
    dm = [e for e in profile.condense.values() if e.method == "dm"]
    assert {(e.iterations, e.batch_real, e.lr_img, e.width) for e in dm} == {(20000, 256, 1.0, 1.0)}
    dsa = [e for e in profile.condense.values() if e.method == "dsa"]
    assert {(e.ipc, e.iterations, e.outer_loop, e.inner_loop) for e in dsa} == \
        {(1, 1000, 1, 1), (10, 1000, 10, 50), (50, 1000, 50, 10)}
    mtt = [e for e in profile.condense.values() if e.method == "mtt"]
    assert {(e.iterations, e.num_experts, e.expert_train_epochs) for e in mtt} == {(5000, 100, 50)}
    assert all(e.max_start_epoch + e.expert_epochs <= e.expert_train_epochs for e in mtt)


# ---------------------------------------------------------------- fake data in the real formats

PER_CLASS = {"cifar10": (4, 2), "cifar100": (3, 1), "tiny_imagenet": (2, 1)}  # (train, test) images per class


def _images(rng: np.random.Generator, labels: np.ndarray, size: int) -> np.ndarray:
    """uint8 (N, 3, size, size): noise around a colour of the class, so the classes differ a little."""
    base = (labels[:, None] * np.array([37, 91, 53])) % 256
    noise = rng.integers(-40, 41, (len(labels), 3, size, size))
    return np.clip(base[:, :, None, None] + noise, 0, 255).astype(np.uint8)


def _pickle(path: Path, obj: dict) -> None:
    with open(path, "wb") as f:
        pickle.dump(obj, f, protocol=2)


def write_fake_cifar10(root: Path, train_per_class: int, test_per_class: int, seed: int = 0) -> None:
    """``root/cifar10/cifar-10-batches-py``: data_batch_1..5, test_batch and batches.meta, as released."""
    rng = np.random.default_rng(seed)
    folder = root / "cifar10" / "cifar-10-batches-py"
    labels = rng.permutation(np.repeat(np.arange(10), train_per_class))
    images = _images(rng, labels, 32)
    for i, part in enumerate(np.array_split(np.arange(len(labels)), 5), start=1):
        write_cifar_batch(folder / f"data_batch_{i}", images[part], labels[part].tolist(), b"labels")
    test = np.repeat(np.arange(10), test_per_class)
    write_cifar_batch(folder / "test_batch", _images(rng, test, 32), test.tolist(), b"labels")
    names = [b"airplane", b"automobile", b"bird", b"cat", b"deer", b"dog", b"frog", b"horse", b"ship", b"truck"]
    _pickle(folder / "batches.meta",
            {b"num_cases_per_batch": len(labels) // 5, b"label_names": names, b"num_vis": 3072})


def write_fake_cifar100(root: Path, train_per_class: int, test_per_class: int, seed: int = 0) -> None:
    """``root/cifar100/cifar-100-python``: train, test and meta, as released."""
    rng = np.random.default_rng(seed)
    folder = root / "cifar100" / "cifar-100-python"
    for split, n in (("train", train_per_class), ("test", test_per_class)):
        labels = rng.permutation(np.repeat(np.arange(100), n))
        write_cifar_batch(folder / split, _images(rng, labels, 32), labels.tolist(), b"fine_labels")
    _pickle(folder / "meta", {b"fine_label_names": [f"class{i}".encode() for i in range(100)],
                              b"coarse_label_names": [f"super{i}".encode() for i in range(20)]})


def write_fake_tiny_imagenet(root: Path, train_per_class: int, val_per_class: int, seed: int = 0) -> list[str]:
    """``root/tiny_imagenet/tiny-imagenet-200`` with 200 classes: wnids.txt, words.txt,
    train/<wnid>/images/*.JPEG (+ <wnid>_boxes.txt), val/images/*.JPEG + val_annotations.txt, as released."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    base = root / "tiny_imagenet" / "tiny-imagenet-200"
    wnids = [f"n{1440000 + 7 * i:08d}" for i in range(200)]
    base.mkdir(parents=True)
    (base / "wnids.txt").write_text("".join(f"{w}\n" for w in wnids))
    (base / "words.txt").write_text("".join(f"{w}\tthing {i}, object {i}\n" for i, w in enumerate(wnids)))
    for c, w in enumerate(wnids):
        folder = base / "train" / w / "images"
        folder.mkdir(parents=True)
        x = _images(rng, np.full(train_per_class, c), 64)
        for i in range(train_per_class):
            Image.fromarray(x[i].transpose(1, 2, 0)).save(folder / f"{w}_{i}.JPEG", format="JPEG")
        (base / "train" / w / f"{w}_boxes.txt").write_text(
            "".join(f"{w}_{i}.JPEG\t0\t0\t63\t63\n" for i in range(train_per_class)))
    (base / "val" / "images").mkdir(parents=True)
    lines, k = [], 0
    for c, w in enumerate(wnids):
        x = _images(rng, np.full(val_per_class, c), 64)
        for i in range(val_per_class):
            Image.fromarray(x[i].transpose(1, 2, 0)).save(base / "val" / "images" / f"val_{k}.JPEG", format="JPEG")
            lines.append(f"val_{k}.JPEG\t{w}\t0\t0\t63\t63\n")
            k += 1
    (base / "val" / "val_annotations.txt").write_text("".join(lines))
    return wnids


@pytest.fixture(scope="module")
def fake_root(tmp_path_factory) -> Path:
    """A working folder laid out as the repository: data/<name>/ holds the three fake releases."""
    root = tmp_path_factory.mktemp("paper")
    write_fake_cifar10(root / "data", *PER_CLASS["cifar10"])
    write_fake_cifar100(root / "data", *PER_CLASS["cifar100"])
    write_fake_tiny_imagenet(root / "data", *PER_CLASS["tiny_imagenet"])
    return root


def test_fake_releases_read_as_the_real_ones(fake_root):
    for name, (train_n, test_n) in PER_CLASS.items():
        spec = datasets.spec(name)
        for split, n in (("train", train_n), ("test", test_n)):
            s = datasets.load(name, split, fake_root / "data")
            assert s.images.shape == (spec.num_classes * n, *spec.shape) and s.images.dtype == torch.uint8
            assert torch.bincount(s.labels, minlength=spec.num_classes).tolist() == [n] * spec.num_classes


# ---------------------------------------------------------------- shrinking entries


def shrink(section: str, entry: dict, per_class: int) -> dict:
    """A tiny copy of a raw profile entry: epochs, iterations, steps, widths, batch sizes and sizes
    drawn per class (at most ``per_class``) are cut down; the architecture, dataset, method, host,
    variant, paths and every other key stay as they are."""
    e = dict(entry)
    if section in ("train", "kd_full"):
        e.update(width=0.0625, epochs=1, batch_size=16)
    elif section == "condense":
        e["ipc"] = min(e["ipc"], per_class)
        tiny = {"iterations": 2, "width": 0.125, "batch_real": 2, "outer_loop": 1, "inner_loop": 1, "batch_train": 16,
                "syn_steps": 2, "expert_epochs": 1, "max_start_epoch": 0, "num_experts": 1, "expert_train_epochs": 1,
                "batch_syn": 8}
        e.update({k: v for k, v in tiny.items() if k in e})
    elif section == "distill":
        e.update(epochs=2, kd_steps=2, batch_size=8, student={**e["student"], "width": 0.125})
        if e.get("pool_max"):
            e["pool_max"] = 16
        e["real_reference_per_class"] = min(e.get("real_reference_per_class", 0), per_class)
        hp = dict(e.get("host_params", {}))
        tiny = {"batch_size": 8, "iterations": 2, "g_steps": 2, "nz": 16, "ngf": 8, "head_hidden": 16, "bank_size": 32}
        hp.update({k: v for k, v in tiny.items() if k in hp})
        if "warmup" in hp:
            hp["warmup"] = min(hp["warmup"], 1)  # so that the second epoch distils
        if hp:
            e["host_params"] = hp
        if e.get("guidance") is not None or e.get("variant") in ("guided", "guided-uncond"):
            g = dict(e.get("guidance") or {"conditional": e["variant"] == "guided"})
            e["guidance"] = {**g, "hidden": 16, "real_batch": 8}
    else:
        raise ValueError(f"no shrinking rule for section {section!r}")
    return e


def test_shrink_keeps_what_a_run_is(profile):
    raw = params.expand_templates(yaml.safe_load(PAPER.read_text()))  # the entries as the stages see them
    for name in ("cifar10_fast_guided-uncond_dm10_mnv2_s0", "tiny_imagenet_predfkd_guided_dm10_r18_s0",
                 "cifar100_fast_guided_dm10_mnv2_s0_w05", "cifar100_kd_k5_mnv2_s0"):
        small = params.validate({"profile": "paper", "distill": {name: shrink("distill", raw["distill"][name], 2)}})
        big, run = profile.distill[name], small.distill[name]
        assert _cell(profile, big)[:3] == _cell(profile, run)[:3] and run.epochs == 2
        assert (run.teacher, run.transfer, run.dataset, run.diagnostics_reference) == \
            (big.teacher, big.transfer, big.dataset, big.diagnostics_reference)
        assert set(run.host_params) == set(big.host_params)
        if big.guidance is not None:
            assert (run.guidance.weight, run.guidance.layer, run.guidance.conditional, run.guidance.augment) == \
                (big.guidance.weight, big.guidance.layer, big.guidance.conditional, big.guidance.augment)


# ---------------------------------------------------------------- end to end, per dataset

# per dataset: the condensed sets to build and the runs (a guided one first); together they cover every
# host, both students, guided, plain and KD-only runs, and DM, DSA, MTT and k-shot sets
E2E = {
    "cifar10": (("dm_ipc10", "mtt_ipc10"), ("cifar10_fast_guided_mtt10_mnv2_s0", "cifar10_deepinversion_plain_r18_s0")),
    "cifar100": (("dm_ipc10", "kshot_k5"), ("cifar100_cmi_guided_dm10_mnv2_s0", "cifar100_kd_k5_mnv2_s0")),
    "tiny_imagenet": (("dm_ipc10", "dsa_ipc1"), ("tiny_imagenet_predfkd_guided_dm10_r18_s0",)),
}


@pytest.mark.parametrize("dataset", DATASETS)
def test_paper_entries_run_end_to_end_on_fake_releases(fake_root, monkeypatch, dataset):
    """Teacher, condensed sets (with their evaluation) and distillation runs of one dataset, each a
    shrunk paper-profile entry run in-process as its DVC stage's notebook runs it, from the
    repository-relative paths of the profile (the working folder stands in for the repository)."""
    # runtime: one CPU thread here. Tiny-ImageNet runs in NCHW: with channels-last, the CPU backward of a
    # 1x1 stride-2 convolution with 4 or 8 input channels on 64x64 inputs (the shrunk ResNets' first
    # downsampling shortcut) corrupts the heap in this torch build (at 16 or more channels it does not).
    monkeypatch.chdir(fake_root)
    raw = params.expand_templates(yaml.safe_load(PAPER.read_text()))  # the entries as the stages see them
    per_class = PER_CLASS[dataset][0]
    set_names, runs = E2E[dataset]
    small = params.validate({
        "profile": "paper", "data": raw["data"],
        "runtime": {**raw["runtime"], "threads": 1, "device": "cpu", "channels_last": dataset != "tiny_imagenet"},
        "train": {f"{dataset}_resnet34": shrink("train", raw["train"][f"{dataset}_resnet34"], per_class)},
        "condense": {f"{dataset}_{s}": shrink("condense", raw["condense"][f"{dataset}_{s}"], per_class)
                     for s in set_names},
        "evaluate_condensed": {**raw["evaluate_condensed"], "epochs": 1, "runs": 1, "width": 0.125, "batch_size": 64},
        "distill": {r: shrink("distill", raw["distill"][r], per_class) for r in runs},
    }, "the shrunk paper profile")
    spec = datasets.spec(dataset)

    teacher = f"{dataset}_resnet34"
    rec = train_run(small.train[teacher], small.data, small.runtime, f"data/models/{teacher}.pt", progress=False)
    assert rec["dataset"] == dataset and rec["arch"] == "resnet34"
    assert rec["arch_kwargs"]["num_classes"] == spec.num_classes
    assert json.loads(Path(f"data/models/{teacher}.json").read_text())["sha256"] == rec["sha256"]

    for name, entry in small.condense.items():
        out = Path(f"data/condensed/{name}.pt")
        record = condense_entry(entry, small.data, small.runtime, out, progress=False)
        cs = load_condensed(out, dataset=dataset, shape=spec.shape)
        assert (cs.method, cs.ipc, record["sha256"]) == (entry.method, entry.ipc, cs.meta["sha256"])
        assert torch.bincount(cs.labels, minlength=spec.num_classes).tolist() == [entry.ipc] * spec.num_classes
        evaluation = evaluate_entry(out, small.evaluate_condensed, small.data, small.runtime, progress=False)
        assert len(evaluation["accuracies"]) == 1 and 0 <= evaluation["mean"] <= 100

    for name in runs:
        run = small.distill[name]
        record_path = Path(f"results/distill/{name}.json")
        result = distill_entry(name, run, small.data, small.runtime, record_path, progress=False)
        written = json.loads(record_path.read_text())
        assert written["final_accuracy"] == result["final_accuracy"] and len(written["curve"]) == 2
        assert (written["name"], written["dataset"], written["variant"], written["host"]) == \
            (name, dataset, profile_variant(raw, name), run.host or "none")
        assert written["teacher"] == "resnet34" and written["student"] == run.student.arch
        assert written["teacher_sha256"] == rec["sha256"]
        student = safe_torch_load(record_path.with_suffix(".state"), "distillation state")["student"]
        assert student["head.weight"].shape[0] == spec.num_classes
        samples = safe_torch_load(record_path.with_suffix(".samples.pt"), "samples")
        assert samples["dataset"] == dataset
        if run.host is not None:
            assert samples["images"].shape[1:] == spec.shape and samples["images"].dtype == torch.uint8
            assert int(samples["targets"].max()) < spec.num_classes
            assert written["images_synthesised"] > 0 and "teacher_accuracy" in written["diagnostics_mean"]
            assert ("d_acc_real" in written["diagnostics_mean"]) == (run.guidance is not None)
            assert written["diagnostics_reference"]["sha256"] == \
                load_condensed(run.diagnostics_reference).meta["sha256"]


def profile_variant(raw: dict, name: str) -> str:
    """The variant the full paper-profile entry validates to."""
    return params.validate({"profile": "paper", "distill": {name: raw["distill"][name]}}).distill[name].variant


# ---------------------------------------------------------------- the cost estimate


def test_cost_estimate_arithmetic_on_a_tiny_profile():
    from cdemi.report.cost import ARCH_COST, StepTimes, condense_work, estimate, summary

    times = StepTimes(synthesis={"fast": 1.0}, kd=2.0, train=0.5, condense={"dm": 0.1, "dsa": 3.0, "mtt": 0.2},
                      expert_epoch=10.0, guidance={"fast": 1.5})
    prof = params.validate({
        "profile": "paper",
        "train": {"t": {"arch": "resnet34", "dataset": "tiny_imagenet", "epochs": 2, "batch_size": 128}},
        "kd_full": {"s": {"arch": "resnet18", "dataset": "tiny_imagenet", "width": 0.5, "epochs": 1, "batch_size": 128,
                          "teacher": "data/models/t.pt"}},
        "condense": {"dm": {"method": "dm", "dataset": "cifar100", "ipc": 1, "iterations": 30, "lr_img": 1.0,
                            "batch_real": 64, "width": 0.5},
                     "dsa": {"method": "dsa", "dataset": "cifar10", "ipc": 10, "iterations": 2, "lr_img": 0.1},
                     "mtt1": {"method": "mtt", "dataset": "cifar10", "ipc": 1, "iterations": 10, "lr_img": 100.0,
                              "syn_steps": 5, "num_experts": 2, "expert_train_epochs": 3},
                     "mtt10": {"method": "mtt", "dataset": "cifar10", "ipc": 10, "iterations": 10, "lr_img": 100.0,
                               "syn_steps": 5, "batch_syn": 50, "num_experts": 2, "expert_train_epochs": 3},
                     "real": {"method": "random_real", "dataset": "cifar10", "ipc": 10}},
        "evaluate_condensed": {"epochs": 4, "runs": 2, "width": 1.0},
        "distill": {
            "guided": {"teacher": "data/models/t.pt", "dataset": "tiny_imagenet",
                       "student": {"arch": "resnet18", "width": 0.5}, "host": "fast",
                       "host_params": {"batch_size": 512, "g_steps": 4, "warmup": 1}, "transfer": "data/condensed/dm.pt",
                       "variant": "guided", "epochs": 3, "kd_steps": 10, "batch_size": 128},
            "kd": {"teacher": "data/models/t.pt", "dataset": "tiny_imagenet",
                   "student": {"arch": "resnet18", "width": 0.5},
                   "transfer": "data/condensed/dm.pt", "epochs": 2, "kd_steps": 10, "batch_size": 256,
                   "curve_test_per_class": 5}},
    })
    rows = estimate(prof, times).set_index("name")
    hours = rows["hours"] * 3600  # seconds
    r18 = ARCH_COST["resnet18"] * 0.25
    # train: epochs x ceil(100000 / 128) steps of 128 images at 0.5 s per 128 32x32 images, x4 pixels;
    # evaluation: the test set's forward (a third of a pass) every epoch
    assert hours["t"] == pytest.approx(2 * 782 * 0.5 * 4 + 2 * 10000 * 0.5 / 128 * 4 / 3)
    assert hours["s"] == pytest.approx(782 * 0.5 * 4 * (r18 + 1 / 3) + 10000 * 0.5 / 128 * 4 * r18 / 3)
    # condensation: iterations x the reference iteration x (work / reference work) x width^2,
    # plus the evaluation: runs x epochs x images x (ConvNet epoch / 50,000)
    dm_ratio = condense_work("dm", 100, 1, batch_real=64) / condense_work("dm", 10, 10, batch_real=256)
    assert dm_ratio == pytest.approx(100 * (64 / 3 + 1) / (10 * (256 / 3 + 10)))
    assert hours["dm"] == pytest.approx(30 * 0.1 * dm_ratio * 0.25 + 2 * 4 * 100 * 10.0 / 50000)
    assert hours["dsa"] == pytest.approx(2 * 3.0 + 2 * 4 * 100 * 10.0 / 50000)  # loops (10, 50) by default at IPC 10
    assert hours["mtt1"] == pytest.approx(10 * 0.2 * (5 * 3 * 10) / (30 * 3 * 100) + 2 * 4 * 10 * 10.0 / 50000)
    assert hours["mtt10"] == pytest.approx(10 * 0.2 * (5 * 3 * 50) / (30 * 3 * 100) + 2 * 4 * 100 * 10.0 / 50000)
    assert hours["cifar10 MTT experts"] == pytest.approx(2 * 3 * 10.0)  # once for both sets
    assert hours["real"] == pytest.approx(2 * 4 * 100 * 10.0 / 50000)
    # distillation: synthesis (epochs x g_steps x batch / 256 x pixels x guidance factor), two-term KD after
    # the warm-up, evaluation on the whole test set every epoch
    synthesis = 3 * 4 * 1.0 * 2 * 4 * 1.5
    kd = 2 * 10 * 2 * 2.0 * 0.5 * 4 * (1 / 3 + r18) / (1 / 3 + ARCH_COST["resnet18"])
    evaluation = 3 * 10000 * 0.5 / 128 * 4 * r18 / 3
    g = rows.loc["guided"]
    assert (g.synthesis_hours * 3600, g.kd_hours * 3600, g.eval_hours * 3600) == \
        pytest.approx((synthesis, kd, evaluation))
    assert hours["guided"] == pytest.approx(synthesis + kd + evaluation)
    # KD on a set alone: one term, no warm-up; the curve on 5 test images per class, the last epoch on all
    kd_only = 2 * 10 * 2.0 * 1 * 4 * (1 / 3 + r18) / (1 / 3 + ARCH_COST["resnet18"])
    assert hours["kd"] == pytest.approx(kd_only + (1000 + 10000) * 0.5 / 128 * 4 * r18 / 3)
    table = summary(estimate(prof, times))
    assert table.loc["total", "total"] == pytest.approx(rows["hours"].sum())
    assert table.loc["condense", "cifar10"] == pytest.approx(rows.loc[["dsa", "mtt1", "mtt10", "real",
                                                                       "cifar10 MTT experts"], "hours"].sum())
    assert table["entries"].to_dict() == {"train": 1, "kd_full": 1, "condense": 5, "distill": 2, "total": 9}


def test_cost_reference_figures_reproduce_the_published_synthesis_times(profile):
    """The paper profile's CIFAR-10 ResNet-34 -> ResNet-18 plain runs come back to the published
    synthesis hours: Fast-10 0.28 h and DeepInversion 42 h exactly; CMI 19 h x 200 / 500 generator steps."""
    from cdemi.report.cost import estimate

    rows = estimate(profile).set_index("name")
    synthesis = rows["synthesis_hours"]
    assert synthesis["cifar10_fast_plain_r18_s0"] == pytest.approx(0.28)
    assert synthesis["cifar10_deepinversion_plain_r18_s0"] == pytest.approx(42.0)
    assert synthesis["cifar10_cmi_plain_r18_s0"] == pytest.approx(19.0 * 200 / 500)
    assert synthesis["tiny_imagenet_fast_plain_r18_s0"] == pytest.approx(4 * 0.28)  # 64x64: four times the pixels
    assert (rows["hours"] > 0).groupby(rows["stage"]).all()[["train", "kd_full", "distill"]].all()
