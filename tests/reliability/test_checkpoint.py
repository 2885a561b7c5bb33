import pickle

import pytest
import torch

from cdemi.artifacts import record_path
from cdemi.models.checkpoint import CheckpointError, load_classifier, save_classifier

from ..conftest import tiny_model

KW = {"num_classes": 10, "in_channels": 1, "width": 0.125}


@pytest.fixture
def saved(tmp_path):
    m = tiny_model()
    path = tmp_path / "net.pt"
    save_classifier(path, m, "resnet18", KW, "digits", test_accuracy=12.5)
    return path, m


def test_round_trip_restores_identical_outputs(saved):
    path, m = saved
    loaded, record = load_classifier(path, arch="resnet18", dataset="digits", num_classes=10)
    x = torch.randn(4, 1, 16, 16)
    assert torch.equal(loaded(x), m.eval()(x))
    assert record["test_accuracy"] == 12.5 and len(record["sha256"]) == 64


def test_bit_flip_is_refused_by_checksum(saved, tally):
    path, _ = saved
    blob = bytearray(path.read_bytes())
    blob[len(blob) // 2] ^= 0x01
    path.write_bytes(bytes(blob))
    record = record_path(path).read_bytes()
    tally.bad_input("corrupt checkpoint (bit flip, truncation)")
    with pytest.raises(CheckpointError, match="does not match its record"):
        load_classifier(path)
    assert tally.kept(path, bytes(blob)) and tally.kept(record_path(path), record)  # refused, not rewritten


def test_truncated_file_is_refused(saved, tally):
    path, _ = saved
    damaged = path.read_bytes()[:1000]
    path.write_bytes(damaged)
    tally.bad_input("corrupt checkpoint (bit flip, truncation)")
    with pytest.raises(CheckpointError, match="corrupt or was replaced"):
        load_classifier(path)
    assert tally.kept(path, damaged)


def test_expected_architecture_dataset_and_classes_are_enforced(saved, tally):
    path, _ = saved
    tally.bad_input("checkpoint of another architecture, dataset or class count", 3)
    with pytest.raises(CheckpointError, match="architecture 'resnet18', expected 'resnet34'"):
        load_classifier(path, arch="resnet34")
    with pytest.raises(CheckpointError, match="dataset 'digits', expected 'cifar10'"):
        load_classifier(path, dataset="cifar10")
    with pytest.raises(CheckpointError, match="num_classes 10, expected 100"):
        load_classifier(path, num_classes=100)


def test_weights_of_another_architecture_are_refused(tmp_path, tally):
    tally.bad_input("checkpoint of another architecture, dataset or class count")
    path = tmp_path / "other.pt"
    save_classifier(path, tiny_model("mobilenetv2"), "mobilenetv2", KW, "digits")
    rec = record_path(path)
    rec.write_text(rec.read_text().replace('"mobilenetv2"', '"resnet18"'))
    with pytest.raises(CheckpointError, match="does not hold weights of resnet18"):
        load_classifier(path)


def test_pickle_that_needs_code_is_refused(saved, tally):
    path, _ = saved
    tally.bad_input("pickle that needs code to load")

    class Payload:
        def __reduce__(self):
            return (print, ("code ran",))

    import hashlib, json
    path.write_bytes(pickle.dumps(Payload()))
    rec = record_path(path)
    r = json.loads(rec.read_text())
    r["sha256"] = hashlib.sha256(path.read_bytes()).hexdigest()
    rec.write_text(json.dumps(r))
    with pytest.raises(ValueError, match="cannot be loaded safely"):
        load_classifier(path)


def test_missing_record_says_what_to_do(tmp_path, tally):
    tally.bad_input("checkpoint without its record")
    with pytest.raises(CheckpointError, match="record .* is missing: rerun the stage"):
        load_classifier(tmp_path / "nothing.pt")
