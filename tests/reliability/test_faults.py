"""Environment and numerical faults: a clear error, nothing half-written, the last good file kept.

Permission denied: the writing code runs in a child process that drops root to ``nobody`` (uid/gid
65534) after its imports, so the kernel itself refuses the write (EACCES); without root the folder is
made read-only instead.  A read-only file system (EROFS): a tmpfs remounted read-only.  Full disk:
a 256 KiB tmpfs (ENOSPC), and a child process under ``RLIMIT_FSIZE`` with SIGXFSZ ignored (EFBIG).
The mounts need root and a sandbox that allows them; those cases are skipped otherwise.
"""
from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import torch
import yaml

from cdemi.artifacts import ArtifactWriteError, atomic_torch_save, atomic_write_json, safe_torch_load
from cdemi.data.subsets import real_subset
from cdemi.distill import DistillSettings, distill_student
from cdemi.invert import DeepInversion

from ..conftest import tiny_model

ROOT = Path(__file__).resolve().parents[2]
OLD_JSON = {"run": "before", "accuracy": 12.5}
OLD_TORCH = {"w": torch.arange(6.0)}
BIG_TORCH = {"w": torch.zeros(256, 1024)}  # 1 MiB: more than the 256 KiB tmpfs holds


def _write(kind: str, path: Path) -> None:
    if kind == "json":
        atomic_write_json(path, {"run": "after", "blob": "x" * (1 << 20)})
    else:
        atomic_torch_save(path, BIG_TORCH)


def _seed_old(kind: str, folder: Path) -> tuple[Path, bytes]:
    path = folder / ("run.json" if kind == "json" else "model.pt")
    atomic_write_json(path, OLD_JSON) if kind == "json" else atomic_torch_save(path, OLD_TORCH)
    return path, path.read_bytes()


def _leftovers(folder: Path, path: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p != path)


CHILD = r"""
import json, os, resource, signal, sys
sys.path.insert(0, {root!r})
import torch
from cdemi.artifacts import ArtifactWriteError, atomic_torch_save, atomic_write_json, torch_bytes
torch_bytes({{"warm": torch.zeros(1)}})  # every lazy import done before losing access to them
mode, kind, path = sys.argv[1:4]
if mode == "nobody":
    os.setgroups([]); os.setgid(65534); os.setuid(65534)
else:
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (64 * 1024, 64 * 1024))
try:
    if kind == "json":
        atomic_write_json(path, {{"run": "after", "blob": "x" * (1 << 20)}})
    else:
        atomic_torch_save(path, {{"w": torch.zeros(256, 1024)}})
except ArtifactWriteError as e:
    print(json.dumps({{"type": type(e).__name__, "errno": e.errno, "filename": e.filename, "message": str(e)}}))
else:
    print(json.dumps({{"type": None}}))
"""


def _in_child(mode: str, kind: str, path: Path) -> dict:
    out = subprocess.run([sys.executable, "-c", CHILD.format(root=str(ROOT)), mode, kind, str(path)],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.fixture
def shared_folder():
    """A folder that ``nobody`` can enter but not write in (tmp_path's parents are root's only)."""
    folder = Path(tempfile.mkdtemp(prefix="cdemi-faults-", dir="/tmp"))
    folder.chmod(0o755)
    yield folder
    for p in folder.iterdir():
        p.unlink()
    folder.rmdir()


@pytest.fixture
def tmpfs(tmp_path):
    """A 256 KiB tmpfs at ``tmp_path / 'fs'`` (root and a sandbox that allows mounting)."""
    mnt = tmp_path / "fs"
    mnt.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mnt)], capture_output=True, text=True)
    if r.returncode:
        pytest.skip(f"cannot mount a tmpfs here: {r.stderr.strip()}")
    yield mnt
    subprocess.run(["umount", str(mnt)], check=True)


@pytest.mark.parametrize("kind", ["json", "torch"])
def test_permission_denied_is_one_clear_error_and_the_old_file_survives(kind, shared_folder, tally):
    path, before = _seed_old(kind, shared_folder)
    tally.fault("write fault (no permission, read-only, full disk, size limit)")
    if os.geteuid() == 0:
        got = _in_child("nobody", kind, path)
    else:  # not root: the mode bits are enough
        shared_folder.chmod(0o555)
        try:
            with pytest.raises(ArtifactWriteError) as e:
                _write(kind, path)
        finally:
            shared_folder.chmod(0o755)
        got = {"type": "ArtifactWriteError", "errno": e.value.errno, "filename": e.value.filename,
               "message": str(e.value)}
    assert got["type"] == "ArtifactWriteError" and got["errno"] in (errno.EACCES, errno.EPERM)
    assert got["filename"] == str(path)
    assert got["message"].startswith(f"cannot write {path}: permission denied")
    assert f"make {shared_folder} writable or choose another output folder" in got["message"]
    assert tally.kept(path, before) and _leftovers(shared_folder, path) == []


@pytest.mark.parametrize("kind", ["json", "torch"])
def test_a_full_disk_is_one_clear_error_and_the_old_file_survives(kind, tmpfs, tally):
    path, before = _seed_old(kind, tmpfs)
    tally.fault("write fault (no permission, read-only, full disk, size limit)")
    with pytest.raises(ArtifactWriteError) as e:
        _write(kind, path)
    assert isinstance(e.value, OSError) and e.value.errno == errno.ENOSPC and e.value.filename == str(path)
    assert str(e.value).startswith(f"cannot write {path}: out of space")
    assert f"free space on the file system holding {tmpfs}" in str(e.value)
    assert tally.kept(path, before) and _leftovers(tmpfs, path) == []
    atomic_write_json(tmpfs / "small.json", {"ok": True})  # the space the failed write took is free again


@pytest.mark.parametrize("kind", ["json", "torch"])
def test_a_file_size_limit_is_one_clear_error_and_the_old_file_survives(kind, tmp_path, tally):
    path, before = _seed_old(kind, tmp_path)
    tally.fault("write fault (no permission, read-only, full disk, size limit)")
    got = _in_child("fsize", kind, path)
    assert got["type"] == "ArtifactWriteError" and got["errno"] == errno.EFBIG and got["filename"] == str(path)
    assert f"free space on the file system holding {tmp_path} (or raise the file-size limit" in got["message"]
    assert tally.kept(path, before) and _leftovers(tmp_path, path) == []


def test_a_read_only_file_system_is_one_clear_error(tmpfs, tally):
    path, before = _seed_old("torch", tmpfs)
    tally.fault("write fault (no permission, read-only, full disk, size limit)")
    subprocess.run(["mount", "-o", "remount,ro", str(tmpfs)], check=True)
    with pytest.raises(ArtifactWriteError, match=f"cannot write {path}: read-only file system .*"
                                                 f"make {tmpfs} writable or choose another output folder") as e:
        atomic_torch_save(path, OLD_TORCH)
    assert e.value.errno == errno.EROFS and tally.kept(path, before) and _leftovers(tmpfs, path) == []


def test_a_missing_dataset_stops_a_stage_before_any_work(digits_teacher, tmp_path, tally):
    """The loaders' own messages are tested in test_data.py; here: the stage stops on them first."""
    from cdemi import data, params
    from cdemi.distill import distill_entry
    from cdemi.models.checkpoint import save_classifier

    tally.fault("missing dataset")
    save_classifier(tmp_path / "teacher.pt", digits_teacher, "resnet18",
                    {"num_classes": 10, "in_channels": 1, "width": 0.25}, "digits", test_accuracy=96.0)
    run = {"teacher": str(tmp_path / "teacher.pt"), "teacher_arch": "resnet18", "student": {"arch": "resnet18"},
           "host": "fast", "epochs": 1, "kd_steps": 1, "batch_size": 16}
    prof = params.validate({"profile": "smoke", "data": {"dataset": "cifar10", "root": str(tmp_path / "nodata")},
                            "distill": {"r": run}})
    with pytest.raises(data.DatasetNotFoundError, match=f"{tmp_path / 'nodata'}.*cifar-10-batches-py.*"
                                                        "cs.toronto.edu.*root= or \\$CDEMI_DATA"):
        distill_entry("r", prof.distill["r"], prof.data, prof.runtime, tmp_path / "r.json", progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["teacher.json", "teacher.pt"]  # no record, no state


# ---- numerical faults -------------------------------------------------------------------------

SHORT = DistillSettings(epochs=3, kd_steps=3, batch_size=16, lr=0.05, temperature=4.0, seed=1)


def _snapshot_when(state: Path, store: dict) -> None:
    store["bytes"] = state.read_bytes()


def test_a_nan_kd_loss_names_epoch_step_and_term_and_keeps_the_last_state(digits_teacher, digits_train,
                                                                          digits_test, tmp_path, tally):
    """The teacher's output turns NaN from its 5th call on: KD-only, 3 steps an epoch, one teacher call
    a step, so epoch 2, step 2, on the transfer term."""
    state, seen, calls = tmp_path / "d.state", {}, {"n": 0}

    def poison(module, inputs, output):
        calls["n"] += 1
        if calls["n"] == 5:
            _snapshot_when(state, seen)
        return output * float("nan") if calls["n"] >= 5 else output

    handle = digits_teacher.register_forward_hook(poison)
    tally.fault("non-finite loss")
    try:
        with pytest.raises(FloatingPointError) as e:
            distill_student(digits_teacher, tiny_model(width=0.0625), digits_test, SHORT,
                    transfer=real_subset(digits_train, 2, seed=0).images, state_path=state, progress=False)
    finally:
        handle.remove()
    msg = str(e.value)
    assert msg.startswith("distill: non-finite KD loss at epoch 2, step 2 of 3: term transfer (transfer KL = nan)")
    assert tally.kept(state, seen["bytes"])  # untouched since the fault
    assert len(json.loads(safe_torch_load(state)["curve"])) == 1  # the last finished epoch's, loadable


def test_an_infinite_generator_loss_names_epoch_step_and_term_and_keeps_the_last_state(
        digits_teacher, digits_train, digits_test, tmp_path, monkeypatch, tally):
    """DeepInversion's total-variation term turns infinite on its 4th call: 2 synthesis steps an
    epoch, so epoch 2, synthesis step 2."""
    from cdemi.invert import deepinversion

    state, seen, calls, real_tv = tmp_path / "d.state", {}, {"n": 0}, deepinversion.total_variation

    def poisoned_tv(x):
        calls["n"] += 1
        if calls["n"] == 3:
            _snapshot_when(state, seen)
        return real_tv(x) * float("inf") if calls["n"] == 4 else real_tv(x)

    monkeypatch.setattr(deepinversion, "total_variation", poisoned_tv)
    tally.fault("non-finite loss")
    host = DeepInversion(digits_teacher, digits_train.spec, batch_size=8, iterations=2, seed=0)
    with pytest.raises(FloatingPointError) as e:
        distill_student(digits_teacher, tiny_model(width=0.0625), digits_test, SHORT, host=host, state_path=state,
                progress=False)
    msg = str(e.value)
    assert msg.startswith("distill: epoch 2, synthesis: deepinversion: non-finite generator loss at synthesis "
                          "step 2: term tv (all terms: ")
    assert "'tv': inf" in msg
    assert tally.kept(state, seen["bytes"])
    assert len(json.loads(safe_torch_load(state)["curve"])) == 1


def test_a_diverging_dvc_stage_command_exits_non_zero_and_writes_no_record(digits_teacher, tmp_path, tally):
    """``python -m cdemi.distill`` (the command a DVC stage runs) on a profile whose teacher checkpoint
    holds an infinite head bias: the teacher's logits, and so the host's cross-entropy, are not finite."""
    import copy

    from cdemi.models.checkpoint import save_classifier

    broken = copy.deepcopy(digits_teacher)
    with torch.no_grad():
        broken.head.bias[0] = float("inf")
    save_classifier(tmp_path / "teacher.pt", broken, "resnet18",
                    {"num_classes": 10, "in_channels": 1, "width": 0.25}, "digits", test_accuracy=96.0)
    profile = {"profile": "smoke", "data": {"dataset": "digits"}, "distill": {"boom": {
        "teacher": str(tmp_path / "teacher.pt"), "teacher_arch": "resnet18",
        "student": {"arch": "resnet18", "width": 0.0625}, "host": "deepinversion",
        "host_params": {"batch_size": 8, "iterations": 2},
        "epochs": 2, "kd_steps": 2, "batch_size": 16}}}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(profile))
    record = tmp_path / "out" / "boom.json"
    tally.fault("non-finite loss")
    out = subprocess.run([sys.executable, "-m", "cdemi.distill", str(tmp_path / "params.yaml"), "boom", str(record),
                          "--no-progress"], cwd=ROOT, capture_output=True, text=True, timeout=120,
                         env={**os.environ, "DVC_NO_ANALYTICS": "1"})
    assert out.returncode != 0
    last = out.stderr.strip().splitlines()[-1]
    assert last.startswith("FloatingPointError: distill: epoch 1, synthesis: deepinversion: non-finite generator "
                           "loss at synthesis step 1: term ce"), out.stderr[-2000:]
    assert not record.exists() and not record.with_suffix(".samples.pt").exists()
