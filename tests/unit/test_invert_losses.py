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


def test_tv_is_zero_for_flat_images():
    assert total_variation(torch.full((2, 3, 5, 5), 0.7)).item() == pytest.approx(0.0, abs=1e-7)
