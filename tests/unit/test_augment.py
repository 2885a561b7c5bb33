"""Augmentation: DSA / DiffAugment ops and the random-resized training view."""
import pytest
import torch

from cdemi.augment import (DSA_STRATEGY, OPS, AugmentParams, augment, cutout, diffaugment, random_resized_crop,
                           translate)


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("name", sorted(OPS))
def test_each_op_is_differentiable_and_seeded(name):
    x = torch.rand(4, 3, 16, 16, requires_grad=True)
    a = augment(x, name, _gen(1), one_op=False)
    b = augment(x, name, _gen(1), one_op=False)
    assert a.shape == x.shape and torch.equal(a, b)
    a.square().sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_siamese_draw_transforms_two_batches_alike():
    x = torch.rand(3, 1, 12, 12)
    y = torch.cat([x, x])
    out_x = augment(x, DSA_STRATEGY, _gen(7), one_op=False)
    out_y = augment(y, DSA_STRATEGY, _gen(7), one_op=False)
    assert torch.allclose(out_x, out_y[:3], atol=1e-6)
    # Siamese means one draw for the whole batch: identical inputs give identical outputs
    twin = augment(torch.cat([x[:1], x[:1]]), DSA_STRATEGY, _gen(3), one_op=False)
    assert torch.allclose(twin[0], twin[1], atol=1e-6)


def test_per_sample_draws_differ_within_a_batch():
    x = torch.rand(1, 3, 16, 16).repeat(8, 1, 1, 1)
    out = diffaugment(x, _gen(0))
    assert not torch.allclose(out[0], out[1])


def test_translate_moves_pixels_and_fills_zeros():
    x = torch.zeros(1, 1, 8, 8)
    x[0, 0, 4, 4] = 1.0
    p = AugmentParams(crop_pad=0.25)
    for seed in range(10):
        out = translate(x, _gen(seed), p, siamese=True)
        assert out.sum() <= 1.0 and set(out.unique().tolist()) <= {0.0, 1.0}


def test_cutout_zeroes_a_square_of_the_stated_size():
    x = torch.ones(2, 1, 16, 16)
    out = cutout(x, _gen(0), AugmentParams(cutout=0.5), siamese=False)
    zeros = (out == 0).sum(dim=(1, 2, 3))
    assert all(0 < z <= 64 for z in zeros.tolist())  # an 8x8 square, clipped at the edges
    many = cutout(torch.ones(64, 1, 16, 16), _gen(1), AugmentParams(cutout=0.5), siamese=False)
    assert (many == 0).sum(dim=(1, 2, 3)).max().item() == 64


def test_unknown_op_is_named():
    with pytest.raises(ValueError, match="unknown augmentation \\['blur'\\]"):
        augment(torch.rand(1, 1, 4, 4), "color_blur", _gen())


def test_random_resized_crop_is_seeded_differentiable_and_the_full_crop_is_the_image_or_its_mirror():
    x = torch.rand(6, 3, 12, 12, requires_grad=True)
    a, b = random_resized_crop(x, _gen(2)), random_resized_crop(x, _gen(2))
    assert a.shape == x.shape and torch.equal(a, b)
    a.square().sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    full = random_resized_crop(x.detach(), _gen(0), scale=(1.0, 1.0), ratio=(1.0, 1.0))
    for i in range(len(x)):
        assert torch.allclose(full[i], x[i], atol=1e-5) or torch.allclose(full[i], x[i].flip(2), atol=1e-5)
