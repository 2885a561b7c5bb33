import copy
import json
import math
from pathlib import Path

import pytest
import torch

from cdemi.invert import HOSTS
from cdemi.invert.predfkd import PREDFKD, flat_image_bce, js_divergence

from ..conftest import tiny_model

GOLDEN = Path(__file__).parents[1] / "fixtures" / "golden_predfkd.json"


def _host(teacher, spec, **kw):
    kw = {"batch_size": 24, "g_steps": 2, "nz": 16, "ngf": 8, "replay_fraction": 0.25, "vae_nz": 8, "vae_width": 8,
          "vae_steps": 2, "seed": 0, **kw}
    return PREDFKD(teacher, spec, **kw)


def _golden_values(spec) -> dict:
    """The generator loss terms of untrained, seeded nets on a fixed batch, and JS at tau 3 on fixed logits."""
    teacher, student = tiny_model(width=0.125).eval(), tiny_model(width=0.0625).eval()
    host = _host(teacher, spec)
    g = torch.Generator().manual_seed(0)
    x = spec.normalise(torch.rand(8, 1, 16, 16, generator=g))
    with torch.no_grad():
        terms, _ = host.loss_terms(x, student)
    s, t = 3 * torch.randn(6, 5, generator=g), 3 * torch.randn(6, 5, generator=g)
    return {**{k: v.item() for k, v in terms.items()}, "js_t3_logits": js_divergence(s, t, 3.0).item()}


def test_loss_terms_match_their_reviewed_golden_values(digits_train):
    golden = json.loads(GOLDEN.read_text())
    values = _golden_values(digits_train.spec)
    assert values.keys() == golden.keys()
    for name, value in values.items():
        assert value == pytest.approx(golden[name], rel=1e-4), name
    assert 0 <= values["js"] <= math.log(2) and values["adv"] == pytest.approx(1 - values["js"])
    assert -math.log(10) <= values["ie"] <= 0 and values["oh"] >= 0 and values["a"] <= 0


def test_js_divergence_on_hand_made_distributions():
    p, q = torch.tensor([[0.8, 0.2]]), torch.tensor([[0.3, 0.7]])
    m = (p + q) / 2
    by_hand = 0.5 * sum(a * math.log(a / c) + b * math.log(b / c) for a, b, c in zip(p[0].tolist(), q[0].tolist(),
                                                                                       m[0].tolist()))
    assert js_divergence(3 * p.log(), 3 * q.log(), 3.0).item() == pytest.approx(by_hand, rel=1e-5)  # logits = tau ln p
    logits = torch.randn(4, 10, generator=torch.Generator().manual_seed(0))
    assert js_divergence(logits, logits).item() == pytest.approx(0.0, abs=1e-7)
    one_hot = 1e4 * torch.eye(3)
    assert js_divergence(one_hot, one_hot.roll(1, dims=0)).item() == pytest.approx(math.log(2), rel=1e-6)


def test_syntheses_lower_the_generator_loss(digits_teacher, digits_train):
    host = _host(digits_teacher, digits_train.spec, batch_size=32, g_steps=3)
    z = torch.randn(64, 16, generator=torch.Generator().manual_seed(1))

    def loss() -> float:
        with torch.no_grad():
            terms, _ = host.loss_terms(digits_train.spec.normalise(host.image_generator(z)))
        return sum(host.weights[k] * v.item() for k, v in terms.items())

    before = loss()
    batches = [host.synthesize() for _ in range(4)]
    assert loss() < before - 0.1
    assert [len(b.targets) for b in batches] == [32, 40, 40, 40]  # 25% replay from the second synthesis on


def test_memory_vae_learns_a_fixed_batch_and_replays_teacher_labelled_images(digits_teacher, digits_train):
    host = _host(digits_teacher, digits_train.spec, vae_steps=10, lr_vae=3e-3)
    images = digits_train.images[:32].float() / 255

    def bce() -> float:
        with torch.no_grad():
            return host.memory.loss(images, torch.Generator().manual_seed(1))[0].item()

    before = bce()
    for _ in range(4):
        host.train_memory(images)
    assert bce() < 0.9 * before
    replayed, labels = host.replay(7)
    assert replayed.shape == (7, 1, 16, 16) and 0 <= replayed.min() and replayed.max() <= 1
    assert labels.dtype == torch.int64
    assert torch.equal(labels, digits_teacher(digits_train.spec.normalise(replayed)).argmax(1))


def test_memory_with_default_settings_learns_digits_and_replays_contrast(digits_teacher, digits_train):
    """Ten syntheses' worth of memory updates on real digit batches (plus the memory's own replays, as in
    a run): its BCE ends well below the flat image's and its replays keep the data's per-image contrast."""
    host = PREDFKD(digits_teacher, digits_train.spec, batch_size=64, nz=16, ngf=8, seed=0)  # memory at its defaults
    real = digits_train.images.float() / 255
    for s in range(10):
        batch = real[64 * s:64 * (s + 1)]
        if s:
            batch = torch.cat([batch, host.replay(host.replay_size)[0]])
        bce, _ = host.train_memory(batch)
    assert float(bce) < 0.7 * flat_image_bce(batch)
    contrast = real[:640].flatten(1).std(1).mean()
    assert host.replay(256)[0].flatten(1).std(1).mean() > 0.6 * contrast


def test_flat_image_bce_is_the_best_constant():
    images = torch.rand(4, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    best = flat_image_bce(images)
    for c in (0.3, 0.7):
        other = torch.nn.functional.binary_cross_entropy(torch.full_like(images, c), images, reduction="sum") / 4
        assert best < float(other)


def test_resume_restores_generator_memory_optimisers_and_rng(digits_teacher, digits_train):
    student = tiny_model(width=0.0625)
    a = _host(digits_teacher, digits_train.spec)
    a.synthesize(student)
    a.synthesize(student)
    b = _host(digits_teacher, digits_train.spec, seed=1)
    b.load_state_dict(copy.deepcopy(a.state_dict()))  # as if saved to disk
    x, y = a.synthesize(student), b.synthesize(student)
    assert torch.equal(x.images, y.images) and torch.equal(x.targets, y.targets) and x.losses == y.losses
    assert b.syntheses == 3 and len(x.targets) == 30


def test_adversarial_term_needs_a_student_and_the_warmup(digits_teacher, digits_train):
    host = _host(digits_teacher, digits_train.spec, warmup=1)
    student = tiny_model(width=0.0625)
    assert "adv" not in host.synthesize(student).losses
    losses = host.synthesize(student).losses
    assert "adv" in losses and 0 <= losses["js"] <= math.log(2) and student.training
    assert "adv" not in host.synthesize().losses


def test_extra_term_joins_the_generator_loss(digits_teacher, digits_train):
    host = _host(digits_teacher, digits_train.spec)
    seen = []

    def extra(x, targets):
        seen.append((x.shape, targets.shape, x.requires_grad))
        return x.mean() * 0 + 0.5, {}

    assert host.synthesize(extra=extra).losses["extra"] == pytest.approx(0.5)
    assert seen == [((24, 1, 16, 16), (24,), True)] * 2


def test_non_finite_loss_raises_naming_the_terms(digits_teacher, digits_train):
    host = _host(digits_teacher, digits_train.spec)
    with pytest.raises(FloatingPointError, match="oh"):
        host.synthesize(extra=lambda x, t: (torch.tensor(float("nan")), {}))


def test_registered_under_its_name():
    assert HOSTS.get("predfkd") is PREDFKD and PREDFKD.name == "predfkd"
