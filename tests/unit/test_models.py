import pytest
import torch

from cdemi import models
from cdemi.models.base import Classifier

SHAPES = [(1, 28), (3, 32)]


@pytest.mark.parametrize("arch", models.ARCHITECTURES.names())
@pytest.mark.parametrize("channels,side", SHAPES)
def test_logits_and_penultimate_features(arch, channels, side):
    kw = {"image_size": side} if arch == "convnet" else {}
    torch.manual_seed(0)
    m = models.build(arch, num_classes=7, in_channels=channels, width=0.25, **kw).eval()
    assert isinstance(m, Classifier)
    x = torch.randn(3, channels, side, side)
    logits, feats = m(x, return_features=True)
    assert logits.shape == (3, 7)
    assert feats.shape == (3, m.feature_dim)
    # the features are exactly the input of the final linear layer
    assert torch.allclose(m.head(feats), logits, atol=1e-6)
    assert torch.equal(m(x), logits)
    logits.sum().backward()
    assert all(p.grad is not None for p in m.parameters() if p.requires_grad)


def test_feature_dims_of_the_profile_nets():
    kw = dict(num_classes=10, in_channels=1, width=0.25)
    assert models.build("resnet34", **kw).feature_dim == 128
    assert models.build("resnet18", **kw).feature_dim == 128
    assert models.build("mobilenetv2", **kw).feature_dim == 320
    assert models.build("convnet", num_classes=10, in_channels=1, image_size=28).feature_dim == 128 * 3 * 3


def test_width_scales_parameters():
    small = sum(p.numel() for p in models.build("resnet18", 10, 3, width=0.25).parameters())
    full = sum(p.numel() for p in models.build("resnet18", 10, 3, width=1.0).parameters())
    assert 11_000_000 < full < 11_300_000  # the CIFAR ResNet-18 of the KD literature (11.17 M)
    assert small < full / 10


def test_unknown_architecture_lists_the_known_ones():
    with pytest.raises(KeyError, match="unknown architecture 'resnet50'; known: convnet, mobilenetv2, resnet18"):
        models.build("resnet50", 10, 3)


def test_registry_refuses_a_second_registration_under_one_name():
    with pytest.raises(ValueError, match="registered twice"):
        models.ARCHITECTURES.register("resnet18")(lambda **kw: None)
