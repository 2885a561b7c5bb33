"""The feature-alignment guidance: discriminator, L_FA, validation, diagnostics, loop integration."""
import json
from pathlib import Path

import pytest
import torch

from cdemi.data.subsets import real_subset
from cdemi.distill import DistillSettings, distill_student
from cdemi.guidance import (FeatureAlignment, FeatureDiagnostics, FeatureDiscriminator, FeatureTap,
                            discriminator_loss, generator_adversarial_loss)
from cdemi.guidance.alignment import held_out_split
from cdemi.invert import Fast

from ..conftest import interrupt_synthesis, tiny_model

GOLDEN = Path(__file__).parents[1] / "fixtures" / "golden_guidance.json"


def _condensed(digits_train, k=2):
    cs = real_subset(digits_train, k, seed=0)
    return cs.images, cs.labels


def test_discriminator_separates_two_feature_sets():
    g = torch.Generator().manual_seed(0)
    real = torch.randn(200, 16, generator=g) + 1.5
    fake = torch.randn(200, 16, generator=g) - 1.5
    labels = torch.randint(0, 10, (200,), generator=g)
    torch.manual_seed(0)
    d = FeatureDiscriminator(16, 10, hidden=32)
    opt = torch.optim.Adam(d.parameters(), lr=2e-3, betas=(0.5, 0.999))
    for _ in range(150):
        loss = discriminator_loss(d(real, labels), d(fake, labels))
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        assert (d(real, labels) > 0).float().mean() > 0.95 and (d(fake, labels) < 0).float().mean() > 0.95


def test_conditional_output_depends_on_the_label_and_unconditional_does_not():
    h = torch.randn(6, 16, generator=torch.Generator().manual_seed(1))
    a, b = torch.zeros(6, dtype=torch.long), torch.full((6,), 3)
    for conditioning, differs in (("projection", True), ("none", False)):
        torch.manual_seed(0)
        d = FeatureDiscriminator(16, 10, hidden=32, conditioning=conditioning).eval()
        with torch.no_grad():
            assert (not torch.allclose(d(h, a), d(h, b))) == differs


def test_gan_losses_match_their_formulas():
    real, fake = torch.tensor([2.0, -1.0]), torch.tensor([0.5, -3.0])
    sp = torch.nn.functional.softplus
    assert discriminator_loss(real, fake) == pytest.approx(float(sp(-real).mean() + sp(fake).mean()))
    assert discriminator_loss(real, fake, "hinge") == pytest.approx((0 + 2) / 2 + (1.5 + 0) / 2)
    assert generator_adversarial_loss(fake, "hinge") == pytest.approx(1.25)
    with pytest.raises(ValueError, match="'nonsaturating' or 'hinge'"):
        discriminator_loss(real, fake, "wasserstein")


def test_feature_tap_reads_the_penultimate_features_and_named_blocks(digits_teacher, digits_train):
    x = digits_train.spec.normalise(digits_train.images[:5].float() / 255)
    with torch.no_grad():
        _, feats = digits_teacher(x, return_features=True)
        assert torch.allclose(FeatureTap(digits_teacher)(x), feats)
        assert FeatureTap(digits_teacher, "layer2")(x).shape == (5, digits_teacher.layer2[-1].bn2.num_features)
    with pytest.raises(ValueError, match="'layer9' is not a submodule of ResNet; use 'penultimate' or one of: conv1"):
        FeatureTap(digits_teacher, "layer9")


def test_the_generator_gets_a_gradient_from_l_fa_and_a_step_lowers_it(digits_teacher, digits_train):
    spec = digits_train.spec
    fa = FeatureAlignment(digits_teacher, *_condensed(digits_train), spec, augment=False, seed=0)
    pixels = torch.rand(20, *spec.shape, generator=torch.Generator().manual_seed(2)).requires_grad_(True)
    targets = torch.arange(20) % 10
    for _ in range(5):  # D learns a little first
        fa(spec.normalise(pixels).detach(), targets)

    def l_fa():  # under the current, fixed discriminator
        return generator_adversarial_loss(fa.discriminator(fa.tap(spec.normalise(pixels)), targets))

    before = l_fa()
    before.backward()
    assert pixels.grad is not None and pixels.grad.abs().sum() > 0
    with torch.no_grad():
        pixels -= 0.5 * pixels.grad / pixels.grad.norm()
        assert l_fa() < before
    assert all(p.grad is None and not p.requires_grad for p in fa.teacher.parameters())


def test_golden_l_fa_on_a_fixed_batch(digits_train):
    spec = digits_train.spec
    teacher = tiny_model(width=0.25).eval()
    fa = FeatureAlignment(teacher, *_condensed(digits_train), spec, seed=0)
    view = spec.normalise(torch.rand(10, *spec.shape, generator=torch.Generator().manual_seed(3)))
    loss, stats = fa(view, torch.arange(10))
    got = {"weighted_l_fa": float(loss), **stats}
    golden = json.loads(GOLDEN.read_text())
    assert got == pytest.approx(golden, rel=1e-4, abs=1e-6)


def test_the_weight_scales_l_fa(digits_train):
    spec = digits_train.spec
    view = spec.normalise(torch.rand(10, *spec.shape, generator=torch.Generator().manual_seed(3)))
    out = [FeatureAlignment(tiny_model(width=0.25).eval(), *_condensed(digits_train), spec, weight=w, seed=0)(
        view, torch.arange(10)) for w in (1.0, 2.0)]
    assert float(out[1][0]) == pytest.approx(2 * float(out[0][0])) and out[0][1] == out[1][1]


def test_a_condensed_set_that_disagrees_with_the_teacher_is_refused(digits_teacher, digits_train):
    images, labels = _condensed(digits_train)
    spec = digits_train.spec
    with pytest.raises(ValueError, match=r"condensed images have shape \(20, 1, 28, 28\) but the teacher takes digits"):
        FeatureAlignment(digits_teacher, torch.zeros(20, 1, 28, 28), labels, spec)
    with pytest.raises(ValueError, match="condensed labels span 0..11 but the teacher has 10 classes"):
        FeatureAlignment(digits_teacher, images, labels.clamp(max=9).index_fill(0, torch.tensor([0]), 11), spec)
    with pytest.raises(ValueError, match=r"no image of class\(es\) \[9\]"):
        FeatureAlignment(digits_teacher, images[labels < 9], labels[labels < 9], spec)


def test_diagnostics_measure_distances_and_the_teachers_own_accuracy(digits_teacher, digits_train):
    spec = digits_train.spec
    condensed, real = real_subset(digits_train, 2, seed=0), real_subset(digits_train, 10, seed=1)
    diag = FeatureDiagnostics(digits_teacher, spec, condensed=(condensed.images, condensed.labels),
                              real=(real.images, real.labels))
    same = diag.measure(condensed.images, condensed.labels)
    noise = diag.measure(torch.rand(20, *spec.shape, generator=torch.Generator().manual_seed(0)), condensed.labels)
    assert same["distance_condensed"] == pytest.approx(0, abs=1e-5) and same["teacher_accuracy"] > 80
    assert noise["distance_condensed"] > same["distance_real"] > 0
    assert diag.reference["condensed_to_real"] == pytest.approx(same["distance_real"])


def test_guided_distill_records_discriminator_numbers_and_resumes_identically(digits_teacher, digits_train,
                                                                            digits_test, tmp_path):
    spec = digits_train.spec
    images, labels = _condensed(digits_train)
    settings = DistillSettings(epochs=3, kd_steps=3, batch_size=16, lr=0.05, temperature=4.0, seed=1)

    def run(state=None, die_at=None):
        host = Fast(digits_teacher, spec, batch_size=16, g_steps=2, nz=8, ngf=4, warmup=0, seed=0)
        fa = FeatureAlignment(digits_teacher, images, labels, spec, seed=0)
        diag = FeatureDiagnostics(digits_teacher, spec, condensed=(images, labels))
        if die_at is not None:
            interrupt_synthesis(host, die_at)
        student = tiny_model(width=0.125)
        return distill_student(digits_teacher, student, digits_test, settings, host=host, transfer=images, guidance=fa,
                       diagnostics=diag, state_path=state, progress=False)

    whole = run()
    row = whole["curve"][0]
    assert set(row["guidance"]) == {"d_loss", "d_acc_real", "d_acc_fake", "l_fa"}
    assert set(row["diagnostics"]) == {"teacher_accuracy", "distance_condensed"}
    assert "extra" in row["synthesis_losses"]
    with pytest.raises(KeyboardInterrupt):
        run(tmp_path / "g.state", die_at=3)
    resumed = run(tmp_path / "g.state")
    assert [(r["test_accuracy"], r["guidance"], r["diagnostics"]) for r in resumed["curve"]] == \
        [(r["test_accuracy"], r["guidance"], r["diagnostics"]) for r in whole["curve"]]


def test_guidance_without_a_host_is_refused(digits_teacher, digits_train, digits_test):
    fa = FeatureAlignment(digits_teacher, *_condensed(digits_train), digits_train.spec)
    with pytest.raises(ValueError, match="guidance steers an inversion host"):
        distill_student(digits_teacher, tiny_model(), digits_test, DistillSettings(epochs=1), transfer=torch.zeros(2, 1, 8, 8),
                guidance=fa)


def test_held_out_images_are_per_class_and_never_reach_the_discriminator(digits_teacher, digits_train):
    images, labels = _condensed(digits_train, k=4)
    train, held = held_out_split(labels, 1, seed=3)
    assert sorted(labels[held].tolist()) == list(range(10)) and len(train) == 30
    assert set(train.tolist()).isdisjoint(held.tolist()) and torch.equal(held_out_split(labels, 1, seed=3)[1], held)
    fa = FeatureAlignment(digits_teacher, images, labels, digits_train.spec, held_out_per_class=1, seed=3)
    expected = digits_train.spec.normalise(images[train])
    assert torch.equal(fa.real_images, expected) and fa.held_out[0].shape[0] == 10
    with pytest.raises(ValueError, match="class 0 has 4 condensed image.*held_out_per_class is 4.*lower"):
        held_out_split(labels, 4, seed=0)
    assert FeatureAlignment(digits_teacher, images, labels, digits_train.spec).held_out is None


def test_held_out_accuracy_is_taken_before_the_first_step_and_leaves_the_discriminator_as_it_was(digits_teacher,
                                                                                                   digits_train):
    spec = digits_train.spec
    images, labels = _condensed(digits_train, k=4)
    fa = FeatureAlignment(digits_teacher, images, labels, spec, held_out_per_class=1, seed=0)
    view = spec.normalise(torch.rand(10, *spec.shape, generator=torch.Generator().manual_seed(2)))
    before = {k: v.clone() for k, v in fa.discriminator.state_dict().items()}
    first = fa.held_out_accuracy(view, torch.arange(10))
    assert all(torch.equal(v, fa.discriminator.state_dict()[k]) for k, v in before.items())  # eval: no power step
    assert first["d_held_out"] == pytest.approx((first["d_held_out_real"] + first["d_held_out_fake"]) / 2)
    for _ in range(3):
        fa(view, torch.arange(10))
    stats = fa.pop_stats()
    assert {k: stats[k] for k in first} == first  # measured at the first call, before D's step
    assert set(stats) >= {"d_loss", "d_acc_real", "d_acc_fake", "l_fa"} and fa.pop_stats() == {}
    with pytest.raises(ValueError, match="held_out_per_class > 0"):
        FeatureAlignment(digits_teacher, images, labels, spec).held_out_accuracy(view, torch.arange(10))


def test_a_discriminator_trained_on_separable_features_tells_held_out_images_apart(digits_teacher, digits_train):
    """Noise against real digits: after some steps D must beat chance on images it never trained on."""
    spec = digits_train.spec
    images, labels = _condensed(digits_train, k=6)
    fa = FeatureAlignment(digits_teacher, images, labels, spec, augment=False, d_lr=2e-3, held_out_per_class=2, seed=0)
    noise = torch.Generator().manual_seed(5)
    for _ in range(60):
        fa(spec.normalise(torch.rand(20, *spec.shape, generator=noise)), torch.arange(20) % 10)
        fa.pop_stats()
    fresh = fa.held_out_accuracy(spec.normalise(torch.rand(20, *spec.shape, generator=noise)), torch.arange(20) % 10)
    assert fresh["d_held_out"] > 0.8
