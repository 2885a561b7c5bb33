import json
from pathlib import Path

import pytest
import torch

from cdemi.invert.losses import adversarial_disagreement, image_l2, total_variation
from cdemi.losses import kd_kl

GOLDEN = Path(__file__).parents[1] / "fixtures" / "golden_losses.json"


def _batch():
    g = torch.Generator().manual_seed(0)
    s, t = torch.randn(6, 5, generator=g), torch.randn(6, 5, generator=g)
    t[:3] = s[:3] * 2  # three samples where the argmax agrees
    return s, t, torch.rand(2, 3, 6, 6, generator=g)


def _values():
    s, t, x = _batch()
    return {"kd_kl_t4": kd_kl(s, t, 4.0).item(), "kd_kl_t20": kd_kl(s, t, 20.0).item(),
            "adversarial": adversarial_disagreement(s, t).item(), "tv": total_variation(x).item(),
            "l2": image_l2(x).item()}


def test_losses_match_their_reviewed_golden_values():
    golden = json.loads(GOLDEN.read_text())
    for name, value in _values().items():
        assert value == pytest.approx(golden[name], rel=1e-5), name


def test_adversarial_term_counts_only_agreeing_samples():
    s = torch.tensor([[3.0, 0.0], [0.0, 3.0]])
    t = torch.tensor([[2.0, 0.0], [2.0, 0.0]])  # agrees on sample 0 only
    p = torch.softmax(t[0], 0)
    q = torch.log_softmax(s[0], 0)
    kl0 = (p * (p.log() - q)).sum()
    assert adversarial_disagreement(s, t).item() == pytest.approx(-kl0.item() / 2, rel=1e-6)
    assert adversarial_disagreement(t, t).item() == pytest.approx(0.0, abs=1e-7)


def test_kd_kl_is_zero_for_equal_logits_and_scales_with_tau_squared():
    s, t, _ = _batch()
    assert kd_kl(s, s, 4.0).item() == pytest.approx(0.0, abs=1e-6)
    assert kd_kl(s, t, 1.0).item() > 0


@pytest.mark.parametrize("tau", [1.0, 4.0, 20.0])
def test_kd_kl_gradient_is_tau_times_the_softmax_gap_so_tau_squared_keeps_its_scale(tau):
    """d/ds of tau^2 KL(p_t || p_s) at temperature tau is tau (p_s - p_t) / N: without the tau^2 factor
    the gradient at tau 20 would be 400x smaller than it is."""
    g = torch.Generator().manual_seed(0)
    s, t = torch.randn(8, 10, generator=g).requires_grad_(True), 2 * torch.randn(8, 10, generator=g)
    kd_kl(s, t, tau).backward()
    expected = tau * (torch.softmax(s.detach() / tau, 1) - torch.softmax(t / tau, 1)) / 8
    assert torch.allclose(s.grad, expected, atol=1e-7, rtol=1e-5)


def test_kd_kl_gradient_magnitude_at_tau_20_is_that_at_tau_1_within_a_small_factor():
    g = torch.Generator().manual_seed(1)
    s0, t = 0.5 * torch.randn(8, 10, generator=g), 0.5 * torch.randn(8, 10, generator=g)
    norms = {}
    for tau in (1.0, 20.0):
        s = s0.clone().requires_grad_(True)
        kd_kl(s, t, tau).backward()
        norms[tau] = float(s.grad.norm())
    assert 0.5 < norms[20.0] / norms[1.0] < 2.0  # 1 / 400 of it without tau^2


def test_tv_is_zero_for_flat_images():
    assert total_variation(torch.full((2, 3, 5, 5), 0.7)).item() == pytest.approx(0.0, abs=1e-7)
