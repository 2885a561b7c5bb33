"""DM: dataset condensation with distribution matching (Zhao & Bilen, WACV 2023).

Each iteration samples a randomly initialised ConvNet and, per class, matches the mean
embedding (the ConvNet's penultimate features) of a DSA-augmented real batch and of the
identically augmented synthetic images (squared L2 distance of the means); the images
take one SGD step.  Published defaults: 20000 iterations, image lr 1.0 (SGD, momentum
0.5), 256 real images per class per iteration, init from real images, DSA strategy
``color_crop_cutout_flip_scale_rotate``, ConvNet-3 with instance norm, width 128.

Under ``torchrun`` (:mod:`cdemi.distributed`) rank r matches the classes ``c`` with
``c % world_size == r``: every rank draws the same random network and the same real batches
and augmentation seeds from the shared RNG (skipping the images of classes it leaves to
others), and the image gradients are summed over the ranks before each step, so the ranks
take the single-process step (up to floating-point summation order) with the work split.
"""
from __future__ import annotations

from pathlib import Path

import torch
from tqdm.auto import tqdm

from .. import augment as diffaug
from .. import distributed, models
from ..data import ImageSet
from ..data.condensed import CondensedSet
from .base import Checkpointer, ClassSampler, finish, learnable_images, run_digest


def condense_dm(data: ImageSet, ipc: int, *, iterations: int = 20000, lr_img: float = 1.0, batch_real: int = 256,
                init: str = "real", augment: bool = True, width: float = 1.0, seed: int = 0,
                state_path: str | Path | None = None, save_every: int = 100, progress: bool = True,
                device: str | torch.device = "cpu") -> CondensedSet:
    """Condense ``data`` to ``ipc`` images per class by distribution matching.

    :param iterations: outer iterations (one random network each).
    :param lr_img: SGD learning rate of the synthetic pixels (normalised scale).
    :param batch_real: real images per class per iteration.
    :param init: ``real`` or ``noise``.
    :param augment: DSA Siamese augmentation on both sides.
    :param width: ConvNet width multiplier (1.0 = 128 channels).
    :param state_path: resume state, saved every ``save_every`` iterations.
    :returns: the condensed set, pixel scale, with seed, parameters, wall time, peak memory.
    """
    params = dict(ipc=ipc, iterations=iterations, lr_img=lr_img, batch_real=batch_real, init=init,
                  augment=augment, width=width)
    spec = data.spec
    images, labels, opt, gen = learnable_images(data, ipc, init, seed, lr_img, device)
    ckpt = Checkpointer(state_path, run_digest("dm", params, seed, data), save_every, {"images": images},
                        {"images": opt}, gen)
    start, timer = ckpt.resume(iterations)
    sampler = ClassSampler(data, device)
    world, me = distributed.world_size(), distributed.rank()
    for it in tqdm(range(start, iterations), desc=f"DM ipc={ipc}", disable=not progress, initial=start, total=iterations):
        torch.manual_seed(int(torch.randint(0, 2**31 - 1, (1,), generator=gen)))
        net = models.build("convnet", num_classes=spec.num_classes, in_channels=spec.channels, width=width,
                           image_size=spec.image_size).to(device)
        for p in net.parameters():
            p.requires_grad_(False)
        loss = torch.zeros((), device=device)
        for c in range(spec.num_classes):
            if world > 1 and c % world != me:  # another rank's class: keep the shared RNG in step
                sampler.skip(c, gen)
                if augment:
                    torch.randint(0, 2**31 - 1, (1,), generator=gen)
                continue
            real = sampler.sample(c, batch_real, gen)
            syn = images[c * ipc:(c + 1) * ipc]
            if augment:
                aug_seed = int(torch.randint(0, 2**31 - 1, (1,), generator=gen))
                real = diffaug.dsa(real, torch.Generator().manual_seed(aug_seed))
                syn = diffaug.dsa(syn, torch.Generator().manual_seed(aug_seed))
            loss = loss + (net.embed(real).mean(0) - net.embed(syn).mean(0)).square().sum()
        if not torch.isfinite(loss):
            raise FloatingPointError(f"DM: non-finite matching loss at iteration {it + 1}")
        opt.zero_grad(set_to_none=True)
        if world == 1 or loss.requires_grad:  # a rank may own no class (more ranks than classes)
            loss.backward()
        distributed.all_reduce_gradients([images], average=False)  # every class's gradient, from its rank
        opt.step()
        ckpt.maybe_save(it + 1, iterations, timer)
    return finish(images, labels.cpu(), data, "dm", ipc, seed, params, timer.seconds)
