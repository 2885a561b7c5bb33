"""Forward hooks on a fixed set of layers, attached only inside a ``with`` block.

Subclasses say what to record from each hooked layer's forward pass by overriding
:meth:`ForwardHooks.record`; entering the block registers one forward hook per layer,
leaving it (also on an exception) removes them, so passes outside the block pay nothing.
"""
from __future__ import annotations

from functools import partial
from typing import Any, Sequence, TypeVar

from torch import nn

Hooks = TypeVar("Hooks", bound="ForwardHooks")


class ForwardHooks:
    """Forward hooks on ``layers``: ``with hooks: model(x)`` calls :meth:`record` per layer.

    :param layers: the modules to hook, in the order their index ``i`` is passed to :meth:`record`.
    """

    def __init__(self, layers: Sequence[nn.Module]):
        self.layers = list(layers)
        self._handles: list = []

    def record(self, index: int, module: nn.Module, inputs: tuple, output: Any) -> None:
        """Called after ``layers[index]`` ran forward on ``inputs`` (a tuple) giving ``output``."""
        raise NotImplementedError

    def __enter__(self: Hooks) -> Hooks:
        self._handles = [m.register_forward_hook(partial(self.record, i)) for i, m in enumerate(self.layers)]
        return self

    def __exit__(self, *exc) -> None:
        for h in self._handles:
            h.remove()
        self._handles = []

    @property
    def attached(self) -> bool:
        """True inside the ``with`` block (the hooks are registered)."""
        return bool(self._handles)
