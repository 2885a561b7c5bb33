"""The condensation literature's evaluation: a ConvNet trained from scratch on the condensed set.

Protocol of DC/DSA/DM: ConvNet-3 (width 128, instance norm), SGD lr 0.01 (MTT: the
learned synthetic lr), momentum 0.9, weight decay 5e-4, batch 256, 1000 epochs with
the lr divided by 10 at half, DSA augmentation drawn per sample; test accuracy of the
final network, repeated over several initialisations.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from .. import augment as diffaug
from .. import models
from ..data import ImageSet
from ..data.condensed import CondensedSet
from ..train import evaluate


def train_on_condensed(cs: CondensedSet, test: ImageSet, *, epochs: int = 1000, lr: float = 0.01,
                       batch_size: int = 256, augment: bool = True, width: float = 1.0, seed: int = 0,
                       device: str | torch.device = "cpu") -> float:
    """Train one ConvNet on ``cs`` and return its test accuracy (%) on ``test``."""
    spec = cs.spec
    if test.spec.name != cs.dataset:
        raise ValueError(f"condensed set of {cs.dataset} evaluated on {test.spec.name}")
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    net = models.build("convnet", num_classes=spec.num_classes, in_channels=spec.channels, width=width,
                       image_size=spec.image_size).to(device)
    opt = torch.optim.SGD(net.parameters(), lr=lr, momentum=0.9, weight_decay=5e-4)
    sched = torch.optim.lr_scheduler.MultiStepLR(opt, [epochs // 2], 0.1)
    x_all, y_all = cs.normalised().to(device), cs.labels.to(device)
    net.train()
    for _ in range(epochs):
        order = torch.randperm(len(y_all), generator=gen)
        for b in range(0, len(order), batch_size):
            idx = order[b:b + batch_size].to(device)
            x = x_all[idx]
            if augment:
                x = diffaug.augment(x, diffaug.DSA_STRATEGY, gen, siamese=False, one_op=True)
            opt.zero_grad(set_to_none=True)
            F.cross_entropy(net(x), y_all[idx]).backward()
            opt.step()
        sched.step()
    return evaluate(net, test, device)


def evaluate_condensed(cs: CondensedSet, test: ImageSet, *, runs: int = 3, progress: bool = True, **kwargs) -> list[float]:
    """Test accuracies (%) of ``runs`` ConvNets (seeds 0..runs-1) trained on ``cs``.

    ``lr`` defaults to the set's learned learning rate when it has one (MTT).
    """
    if "lr" not in kwargs and "learned_lr" in cs.meta:
        kwargs["lr"] = cs.meta["learned_lr"]
    return [train_on_condensed(cs, test, seed=s, **kwargs)
            for s in tqdm(range(runs), desc=f"evaluate {cs.method} ipc={cs.ipc}", disable=not progress)]
