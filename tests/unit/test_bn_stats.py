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
