"""DSA: dataset condensation with gradient matching and differentiable Siamese
augmentation (Zhao & Bilen, ICML 2021; gradient matching from DC, ICLR 2021).

Per outer step, for every class, the gradients of the cross-entropy w.r.t. a
ConvNet's weights on a real batch and on the synthetic images (both DSA-augmented
with one shared draw) are matched with the layer-wise distance of DC
(:func:`gradient_distance`); the images take an SGD step, then the network trains
``inner_loop`` epochs on the synthetic set.  A fresh network starts every iteration.
Published defaults: 1000 iterations, (outer, inner) = (1, 1) / (10, 50) / (50, 10) at
IPC 1 / 10 / 50, image lr 0.1 (momentum 0.5), network lr 0.01, 256 real images per class.
"""
from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from .. import augment as diffaug
from .. import models
from ..data import ImageSet
from ..data.condensed import CondensedSet
from .base import Checkpointer, ClassSampler, finish, learnable_images, run_digest

LOOPS = {1: (1, 1), 10: (10, 50), 20: (20, 25), 30: (30, 20), 40: (40, 15), 50: (50, 10)}


def gradient_distance(grads_syn: list[torch.Tensor], grads_real: list[torch.Tensor]) -> torch.Tensor:
    """DC's matching distance: per output unit ``1 - cos`` of the gradient rows, summed over layers.

    Weight gradients are reshaped to (out, rest); 1-D gradients (biases, norm
    parameters) are ignored, as in the published code.
    """
    total = grads_syn[0].new_zeros(())
    for gs, gr in zip(grads_syn, grads_real):
        if gs.dim() == 1:
            continue
        gs, gr = gs.reshape(gs.shape[0], -1), gr.reshape(gr.shape[0], -1)
        cos = (gs * gr).sum(-1) / (gs.norm(dim=-1) * gr.norm(dim=-1) + 1e-6)
        total = total + (1 - cos).sum()
    return total


def condense_dsa(data: ImageSet, ipc: int, *, iterations: int = 1000, outer_loop: int | None = None,
                 inner_loop: int | None = None, lr_img: float = 0.1, lr_net: float = 0.01, batch_real: int = 256,
                 batch_train: int = 256, init: str = "real", augment: bool = True, width: float = 1.0, seed: int = 0,
                 state_path: str | Path | None = None, save_every: int = 10, progress: bool = True,
                 device: str | torch.device = "cpu") -> CondensedSet:
    """Condense ``data`` to ``ipc`` images per class by gradient matching (DSA).

    :param outer_loop, inner_loop: default from :data:`LOOPS` by IPC.
    Other parameters as :func:`cdemi.condense.dm.condense_dm`.
    """
    if outer_loop is None or inner_loop is None:
        o, i = LOOPS.get(ipc, (10, 50))
        outer_loop, inner_loop = outer_loop or o, inner_loop or i
    params = dict(ipc=ipc, iterations=iterations, outer_loop=outer_loop, inner_loop=inner_loop, lr_img=lr_img,
                  lr_net=lr_net, batch_real=batch_real, batch_train=batch_train, init=init, augment=augment, width=width)
    spec = data.spec
    images, labels, opt, gen = learnable_images(data, ipc, init, seed, lr_img, device)
    ckpt = Checkpointer(state_path, run_digest("dsa", params, seed, data), save_every, {"images": images},
                        {"images": opt}, gen)
    start, timer = ckpt.resume(iterations)
    sampler = ClassSampler(data, device)

    def aug(x, s):
        return diffaug.dsa(x, torch.Generator().manual_seed(s)) if augment else x

    for it in tqdm(range(start, iterations), desc=f"DSA ipc={ipc}", disable=not progress, initial=start, total=iterations):
        torch.manual_seed(int(torch.randint(0, 2**31 - 1, (1,), generator=gen)))
        net = models.build("convnet", num_classes=spec.num_classes, in_channels=spec.channels, width=width,
                           image_size=spec.image_size).to(device)
        weights = list(net.parameters())
        opt_net = torch.optim.SGD(net.parameters(), lr=lr_net)
        for ol in range(outer_loop):
            loss = images.new_zeros(())
            for c in range(spec.num_classes):
                s = int(torch.randint(0, 2**31 - 1, (1,), generator=gen))
                real = aug(sampler.sample(c, batch_real, gen), s)
                y_real = torch.full((real.shape[0],), c, device=device)
                g_real = torch.autograd.grad(F.cross_entropy(net(real), y_real), weights)
                g_real = [g.detach() for g in g_real]
                syn = aug(images[c * ipc:(c + 1) * ipc], s)
                g_syn = torch.autograd.grad(F.cross_entropy(net(syn), labels[c * ipc:(c + 1) * ipc]), weights,
                                            create_graph=True)
                loss = loss + gradient_distance(list(g_syn), g_real)
            if not torch.isfinite(loss):
                raise FloatingPointError(f"DSA: non-finite matching loss at iteration {it + 1}, outer step {ol + 1}")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if ol == outer_loop - 1:
                break
            syn_all, y_all = images.detach(), labels
            for _ in range(inner_loop):
                order = torch.randperm(len(y_all), generator=gen)
                for b in range(0, len(order), batch_train):
                    idx = order[b:b + batch_train].to(device)
                    x = aug(syn_all[idx], int(torch.randint(0, 2**31 - 1, (1,), generator=gen)))
                    opt_net.zero_grad(set_to_none=True)
                    F.cross_entropy(net(x), y_all[idx]).backward()
                    opt_net.step()
        ckpt.maybe_save(it + 1, iterations, timer)
    return finish(images, labels.cpu(), data, "dsa", ipc, seed, params, timer.seconds)
