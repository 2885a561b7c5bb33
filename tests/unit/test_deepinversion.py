import pytest
import torch

from cdemi.invert import HOSTS, DeepInversion


def test_synthesised_images_are_recognised_by_the_teacher(digits_teacher, digits_train):
    # a light BN weight: 60 steps on a 20-image batch cannot satisfy the published bn = 10 as well
    host = DeepInversion(digits_teacher, digits_train.spec, batch_size=20, iterations=60, lr=0.1, bn=0.1, seed=0)
    batch = host.synthesize()
    assert batch.images.shape == (20, 1, 16, 16) and 0 <= batch.images.min() and batch.images.max() <= 1
    assert torch.bincount(batch.targets).tolist() == [2] * 10
    with torch.no_grad():
        pred = digits_teacher(digits_train.spec.normalise(batch.images)).argmax(1)
    assert (pred == batch.targets).float().mean() >= 0.8
    assert set(batch.losses) == {"ce", "bn", "tv", "l2"}


def test_a_short_synthesis_lowers_its_loss(digits_teacher, digits_train):
    def total(iterations):
        b = DeepInversion(digits_teacher, digits_train.spec, batch_size=20, iterations=iterations, seed=3).synthesize()
        return 10.0 * b.losses["bn"] + b.losses["ce"] + 2.5e-5 * b.losses["tv"]

    assert total(40) < 0.7 * total(1)


def test_extra_term_reaches_the_pixels(digits_teacher, digits_train):
    calls = []

    def brighten(x, y):
        calls.append(x.shape[0])
        return -10.0 * x.mean(), {}

    plain = DeepInversion(digits_teacher, digits_train.spec, batch_size=10, iterations=20, seed=1).synthesize()
    pushed = DeepInversion(digits_teacher, digits_train.spec, batch_size=10, iterations=20, seed=1).synthesize(extra=brighten)
    assert len(calls) == 20 and pushed.images.mean() > plain.images.mean()


def test_state_round_trip_repeats_the_next_batch(digits_teacher, digits_train):
    host = DeepInversion(digits_teacher, digits_train.spec, batch_size=10, iterations=5, seed=2)
    state = host.state_dict()
    first = host.synthesize()
    host.load_state_dict(state)
    assert torch.equal(host.synthesize().images, first.images)


def test_host_registry():
    assert HOSTS.get("deepinversion") is DeepInversion
    with pytest.raises(KeyError, match="unknown inversion host 'dafl'"):
        HOSTS.get("dafl")
