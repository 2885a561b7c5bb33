"""The forward-hook base: hooks live only inside the ``with`` block and see each layer in order."""
import pytest
import torch
from torch import nn

from cdemi.models.hooks import ForwardHooks


class _Shapes(ForwardHooks):
    def __init__(self, layers):
        super().__init__(layers)
        self.seen = []

    def record(self, index, module, inputs, output):
        self.seen.append((index, tuple(inputs[0].shape), tuple(output.shape)))


def test_record_gets_each_layer_index_input_and_output_only_inside_the_block():
    net = nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.Conv2d(2, 4, 3))
    hooks = _Shapes([net[2], net[0]])  # the index is the position in `layers`, not in the model
    x = torch.zeros(5, 1, 8, 8)
    net(x)
    assert hooks.seen == [] and not hooks.attached
    with hooks as h:
        assert h is hooks and hooks.attached
        net(x)
    assert hooks.seen == [(1, (5, 1, 8, 8), (5, 2, 6, 6)), (0, (5, 2, 6, 6), (5, 4, 4, 4))]
    net(x)
    assert len(hooks.seen) == 2 and not any(m._forward_hooks for m in net.modules())


def test_hooks_are_removed_when_the_block_raises():
    net = nn.Sequential(nn.Linear(3, 3))
    with pytest.raises(RuntimeError, match="boom"):
        with _Shapes(list(net)):
            raise RuntimeError("boom")
    assert not net[0]._forward_hooks
