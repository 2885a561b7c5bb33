import torch

from cdemi.invert import HOSTS, Fast

from ..conftest import tiny_model


def _host(teacher, spec, **kw):
    return Fast(teacher, spec, batch_size=20, g_steps=2, nz=16, ngf=8, warmup=1, seed=0, **kw)


def test_meta_generator_learns_across_syntheses(digits_teacher, digits_train):
    host = _host(digits_teacher, digits_train.spec, lr_g=0.01, lr_z=0.05)
    before = [p.detach().clone() for p in host.meta_generator.parameters()]
    losses = [host.synthesize().losses for _ in range(8)]
    assert any(not torch.equal(a, b.detach()) for a, b in zip(before, host.meta_generator.parameters()))
    first, last = losses[0], losses[-1]
    assert 10 * last["bn"] + 0.5 * last["oh"] < 10 * first["bn"] + 0.5 * first["oh"]
    assert host.bn_stats.average[0] is not None  # BN-statistics momentum is being tracked


def test_adversarial_term_waits_for_the_warmup(digits_teacher, digits_train):
    host = _host(digits_teacher, digits_train.spec)
    student = tiny_model(width=0.0625)
    assert "adv" not in host.synthesize(student).losses
    assert "adv" in host.synthesize(student).losses and student.training


def test_resume_restores_generator_optimiser_bn_average_and_rng(digits_teacher, digits_train):
    a = _host(digits_teacher, digits_train.spec)
    a.synthesize()
    state = {k: v for k, v in a.state_dict().items()}
    b = _host(digits_teacher, digits_train.spec)
    b.load_state_dict(state)
    assert torch.equal(a.synthesize().images, b.synthesize().images)
    assert HOSTS.get("fast") is Fast
