import pytest
import torch
from torch import nn

from cdemi.invert.bn_stats import BNStatistics

from ..conftest import tiny_model


def _net():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Conv2d(4, 3, 3), nn.BatchNorm2d(3))
    with torch.no_grad():  # running stats from a "real" distribution
        net.train()
        for _ in range(50):
            net(torch.randn(64, 1, 10, 10) * 2 + 1)
    return net.eval()


def test_loss_matches_the_definition():
    net = _net()
    x = torch.rand(8, 1, 10, 10)
    with BNStatistics(net) as bn:
        net(x)
        got = bn.loss()
    h = net[0](x)
    mean, var = h.mean((0, 2, 3)), h.var((0, 2, 3), unbiased=False)
    bn1 = net[1]
    want = (bn1.running_mean - mean).norm() + (bn1.running_var - var).norm()
    h2 = net[3](net[2](net[1](h)))
    mean2, var2 = h2.mean((0, 2, 3)), h2.var((0, 2, 3), unbiased=False)
    want = want + (net[4].running_mean - mean2).norm() + (net[4].running_var - var2).norm()
    assert got.item() == pytest.approx(want.item(), rel=1e-5)


def test_hooks_detach_on_exit_and_optimising_the_input_lowers_the_loss():
    net = _net()
    x = torch.rand(16, 1, 10, 10, requires_grad=True)
    opt = torch.optim.Adam([x], lr=0.05)
    bn = BNStatistics(net)
    losses = []
    for _ in range(60):
        with bn:
            net(x)
            loss = bn.loss()
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert not bn.attached and all(not m._forward_hooks for m in net.modules())
    assert losses[-1] < 0.5 * losses[0]


def test_momentum_blends_the_running_average():
    net = _net()
    bn = BNStatistics(net, momentum=0.9)
    with bn:
        net(torch.rand(8, 1, 10, 10))
        plain = bn.loss().item()
        bn.update_average()
        net(torch.rand(8, 1, 10, 10) + 5)
        blended = bn.loss().item()
    with BNStatistics(net) as fresh:
        net(torch.rand(8, 1, 10, 10) + 5)
        unblended = fresh.loss().item()
    assert blended < unblended  # 90% of the earlier, closer statistics
    state = bn.state_dict()
    other = BNStatistics(net, momentum=0.9)
    other.load_state_dict(state)
    assert torch.equal(other.average[0][0], bn.average[0][0])
    assert plain > 0


def test_a_net_without_batchnorm_is_refused():
    with pytest.raises(ValueError, match="has no BatchNorm2d layer"):
        BNStatistics(nn.Sequential(nn.Conv2d(1, 1, 1)))
    with pytest.raises(ValueError, match=r"momentum must lie in \[0, 1\)"):
        BNStatistics(tiny_model(), momentum=1.0)


@pytest.mark.parametrize("layout", [torch.contiguous_format, torch.channels_last])
def test_both_variance_methods_agree_with_float64_on_an_offset_input(layout):
    """Inputs far from zero mean (mean 3, std 0.1) are where a one-pass E[x^2] - E[x]^2 would lose
    digits; both methods stay within float32 rounding of the float64 values, in either layout."""
    from cdemi.invert.bn_stats import channel_statistics

    torch.manual_seed(0)
    x = (torch.randn(16, 6, 9, 9) * 0.1 + 3).contiguous(memory_format=layout)
    want_mean, want_var = x.double().mean((0, 2, 3)), x.double().var((0, 2, 3), unbiased=False)
    for method in ("welford", "two_pass"):
        mean, var = channel_statistics(x, method)
        assert mean.shape == var.shape == (6,) and mean.dtype == torch.float32
        assert torch.allclose(mean.double(), want_mean, rtol=1e-6)
        assert torch.allclose(var.double(), want_var, rtol=1e-5)


def test_the_method_is_honoured_and_an_unknown_one_is_refused_by_name():
    net = _net()
    x = torch.rand(8, 1, 10, 10)
    losses = {}
    for method in ("welford", "two_pass"):
        bn = BNStatistics(net, method=method)
        assert bn.method == method
        with bn:
            net(x)
            losses[method] = bn.loss().item()
    assert losses["two_pass"] == pytest.approx(losses["welford"], rel=1e-5)
    with pytest.raises(ValueError, match=r"unknown BN-statistics method 'mean_of_squares'; allowed: welford, two_pass"):
        BNStatistics(net, method="mean_of_squares")


def test_hosts_pass_their_bn_statistics_setting_to_the_prior(digits_teacher, digits_train):
    """``host_params.bn_statistics`` reaches the BN prior of every host that has one, and the profile
    refuses an unknown value before anything runs."""
    from cdemi import params
    from cdemi.invert import HOSTS

    for name in ("fast", "cmi", "deepinversion"):
        host = HOSTS.get(name)(digits_teacher, digits_train.spec, batch_size=4, bn_statistics="two_pass")
        assert host.bn_stats.method == "two_pass"
        assert HOSTS.get(name)(digits_teacher, digits_train.spec, batch_size=4).bn_stats.method == "welford"
    entry = {"teacher": "t.pt", "student": {"arch": "mobilenetv2"}, "host": "fast",
             "host_params": {"bn_statistics": "fast"}}
    with pytest.raises(ValueError, match=r"host_params.bn_statistics of host 'fast' must be one of welford, two_pass"):
        params.DistillRun.model_validate(entry)


def test_a_paused_pass_leaves_the_last_statistics_in_place():
    """CMI's local view runs inside ``paused()``: the loss is the statistics of the pass outside it."""
    net = _net()
    x, other = torch.rand(8, 1, 10, 10), torch.rand(8, 1, 10, 10) * 3
    with BNStatistics(net) as bn:
        net(x)
        want = bn.loss().item()
        with bn.paused():
            net(other)
        assert bn.loss().item() == want
        net(other)
        assert bn.loss().item() != want
    assert bn.recording
