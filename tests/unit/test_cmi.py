import json
import math
from pathlib import Path

import pytest
import torch

from cdemi.invert import HOSTS
from cdemi.invert.cmi import CMI, info_nce

from ..conftest import tiny_model

GOLDEN = Path(__file__).parents[1] / "fixtures" / "golden_cmi.json"


def _host(teacher, spec, **kw):
    kw = {"batch_size": 16, "g_steps": 2, "nz": 16, "ngf": 8, "seed": 0, **kw}
    return CMI(teacher, spec, **kw)


def _golden_values(spec) -> dict:
    """InfoNCE on fixed unit vectors (B 4, M 6, D 256), and the host's first-step terms.

    The host's teacher is an untrained, seeded ResNet-18 (width 1/16), so the values do not
    depend on the training code; two syntheses of one step each give the first-step terms with
    an empty bank and the contrastive term with a bank of one batch (16 rows).
    """
    g = torch.Generator().manual_seed(0)
    q = torch.nn.functional.normalize(torch.randn(4, 256, generator=g), dim=1)
    k = torch.nn.functional.normalize(torch.randn(10, 256, generator=g), dim=1)
    host = _host(tiny_model(width=0.0625).eval(), spec, g_steps=1)
    first, second = host.synthesize().losses, host.synthesize().losses
    total = first["bn"] + first["oh"] + 0.8 * first["cr"]
    return {"info_nce_b4_m6": info_nce(q, k, 0.1).item(), "step1_bn": first["bn"], "step1_oh": first["oh"],
            "step1_cr_b16_m0": first["cr"], "step1_total": total, "synthesis2_cr_b16_m16": second["cr"]}


def test_contrastive_and_host_losses_match_their_reviewed_golden_values(digits_train):
    golden = json.loads(GOLDEN.read_text())
    for name, value in _golden_values(digits_train.spec).items():
        assert value == pytest.approx(golden[name], rel=1e-4), name


def test_info_nce_of_orthonormal_positives_has_its_closed_form():
    keys = torch.eye(10)  # B 4 queries equal to their keys, 6 bank rows; all pairs orthogonal
    expected = math.log(1 + 9 * math.exp(-1 / 0.5))  # positive logit 2, nine negatives at 0
    assert info_nce(keys[:4], keys, 0.5).item() == pytest.approx(expected, rel=1e-5)


def test_a_short_synthesis_lowers_the_loss(digits_teacher, digits_train):
    def last_step(g_steps):  # same seed: one step reports the first step's terms
        t = _host(digits_teacher, digits_train.spec, g_steps=g_steps, lr_g=0.01, lr_z=0.05).synthesize().losses
        return t["bn"] + t["oh"] + 0.8 * t["cr"], t["cr"]

    (first, first_cr), (last, last_cr) = last_step(1), last_step(5)
    assert last < first and last_cr < first_cr
    assert not any(m._forward_hooks for m in digits_teacher.modules())  # hooks detached


def test_memory_bank_grows_by_one_batch_and_is_capped(digits_teacher, digits_train):
    host = _host(digits_teacher, digits_train.spec, g_steps=1, bank_size=40)
    sizes = []
    for _ in range(3):
        before = host.bank.clone()
        host.synthesize()
        sizes.append(len(host.bank))
    assert sizes == [16, 32, 40]
    assert torch.equal(host.bank[:24], before[-24:])  # FIFO: the oldest rows left first
    assert host.bank.device.type == "cpu" and not host.bank.requires_grad


def test_resume_restores_rng_bank_head_and_its_optimiser(digits_teacher, digits_train):
    a = _host(digits_teacher, digits_train.spec)
    a.synthesize()
    b = _host(digits_teacher, digits_train.spec, seed=1)
    b.load_state_dict(a.state_dict())
    assert torch.equal(a.synthesize().images, b.synthesize().images)
    assert torch.equal(a.bank, b.bank) and a.syntheses == b.syntheses == 2
    assert all(torch.equal(p, q) for p, q in zip(a.head.parameters(), b.head.parameters()))


def test_adversarial_term_needs_a_student_and_waits_for_the_warmup(digits_teacher, digits_train):
    host = _host(digits_teacher, digits_train.spec, g_steps=1, warmup=1)
    student = tiny_model(width=0.0625)
    assert "adv" not in host.synthesize(student).losses
    assert "adv" not in host.synthesize().losses
    assert "adv" in host.synthesize(student).losses and student.training


def test_non_finite_loss_names_the_terms(digits_teacher, digits_train):
    host = _host(digits_teacher, digits_train.spec, g_steps=1)
    with pytest.raises(FloatingPointError, match="cr.*extra"):
        host.synthesize(extra=lambda x, y: (torch.tensor(float("nan")), {}))


def test_registry_maps_cmi_to_the_class():
    assert HOSTS.get("cmi") is CMI and CMI.name == "cmi"
