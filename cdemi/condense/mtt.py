"""MTT: dataset distillation by matching training trajectories (Cazenavette et al., CVPR 2022).

Stage 1 (:func:`train_experts`): ConvNets trained on the real data with plain SGD record
their flattened weights after every epoch (the expert trajectories).
Stage 2 (:func:`condense_mtt`): each iteration picks an expert and a start epoch ``t``,
runs ``syn_steps`` differentiable SGD steps from ``theta_t`` on (augmented) synthetic
batches with a learnable learning rate, and minimises
``||theta_student - theta_{t+M}||^2 / ||theta_t - theta_{t+M}||^2`` w.r.t. the pixels and
the learning rate.  Published CIFAR-10 IPC-10 values: syn_steps 30, expert_epochs M = 2,
max_start_epoch 20, image lr 1000 (ZCA space), lr lr 1e-5, initial synthetic lr 0.01;
experts: SGD lr 0.01, no momentum, no weight decay, 50 epochs, DSA augmentation.
"""
from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch.func import functional_call
from tqdm.auto import tqdm

from .. import augment as diffaug
from .. import models
from ..artifacts import atomic_torch_save, safe_torch_load
from ..data import ImageSet
from ..data.condensed import CondensedSet
from .base import Checkpointer, finish, learnable_images, run_digest


def _convnet(data: ImageSet, width: float) -> torch.nn.Module:
    s = data.spec
    return models.build("convnet", num_classes=s.num_classes, in_channels=s.channels, width=width, image_size=s.image_size)


def _flat(net: torch.nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().reshape(-1) for p in net.parameters()]).cpu()


def train_experts(data: ImageSet, *, num_experts: int = 10, epochs: int = 15, lr: float = 0.01, batch_size: int = 256,
                  augment: bool = True, width: float = 1.0, seed: int = 0, path: str | Path | None = None,
                  progress: bool = True, device: str | torch.device = "cpu") -> torch.Tensor:
    """Train ``num_experts`` ConvNets and return their trajectories, float32 (E, epochs + 1, P).

    With ``path`` the trajectories are saved after every finished expert and an
    interrupted run continues with the next expert; a file of other settings, or of another
    dataset (CIFAR-10 and CIFAR-100 have the same size), is not reused.
    """
    trajs: list[torch.Tensor] = []
    if path and Path(path).exists():
        saved = safe_torch_load(path, "expert trajectories")
        if saved.get("settings") == [num_experts, epochs, lr, batch_size, augment, width, seed, len(data), data.spec.name]:
            trajs = list(saved["trajectories"])
    gen_root = torch.Generator().manual_seed(seed)
    seeds = torch.randint(0, 2**31 - 1, (num_experts,), generator=gen_root).tolist()
    for e in tqdm(range(len(trajs), num_experts), desc="MTT experts", disable=not progress, initial=len(trajs),
                  total=num_experts):
        torch.manual_seed(seeds[e])
        gen = torch.Generator().manual_seed(seeds[e])
        net = _convnet(data, width).to(device)
        opt = torch.optim.SGD(net.parameters(), lr=lr)
        points = [_flat(net)]
        for _ in range(epochs):
            order = torch.randperm(len(data), generator=gen)
            for b in range(0, len(order), batch_size):
                idx = order[b:b + batch_size]
                x = data.spec.normalise(data.images[idx].to(device).float().div_(255))
                if augment:
                    x = diffaug.augment(x, diffaug.DSA_STRATEGY, gen, siamese=False, one_op=True)
                opt.zero_grad(set_to_none=True)
                F.cross_entropy(net(x), data.labels[idx].to(device)).backward()
                opt.step()
            points.append(_flat(net))
        trajs.append(torch.stack(points))
        if path:
            atomic_torch_save(path, {"trajectories": torch.stack(trajs),
                                     "settings": [num_experts, epochs, lr, batch_size, augment, width, seed, len(data), data.spec.name]})
    return torch.stack(trajs)


def condense_mtt(data: ImageSet, ipc: int, trajectories: torch.Tensor, *, iterations: int = 5000, syn_steps: int = 20,
                 expert_epochs: int = 2, max_start_epoch: int = 10, lr_img: float = 100.0, lr_lr: float = 1e-5,
                 syn_lr: float = 0.01, batch_syn: int | None = None, init: str = "real", augment: bool = True,
                 width: float = 1.0, seed: int = 0, state_path: str | Path | None = None, save_every: int = 50,
                 progress: bool = True, device: str | torch.device = "cpu") -> CondensedSet:
    """Condense ``data`` to ``ipc`` images per class by trajectory matching.

    :param trajectories: float (E, T, P) from :func:`train_experts` with the same ``width``.
    :param batch_syn: synthetic images per student step (None: all of them).
    :param syn_lr: initial value of the learnable student learning rate (saved in the record).
    """
    params = dict(ipc=ipc, iterations=iterations, syn_steps=syn_steps, expert_epochs=expert_epochs,
                  max_start_epoch=max_start_epoch, lr_img=lr_img, lr_lr=lr_lr, syn_lr=syn_lr, batch_syn=batch_syn,
                  init=init, augment=augment, width=width, experts=int(trajectories.shape[0]))
    net = _convnet(data, width).to(device)
    names = [n for n, _ in net.named_parameters()]
    shapes = [p.shape for _, p in net.named_parameters()]
    sizes = [p.numel() for _, p in net.named_parameters()]
    if trajectories.dim() != 3 or trajectories.shape[2] != sum(sizes):
        raise ValueError(f"trajectories of shape {tuple(trajectories.shape)} do not fit a ConvNet of width {width} "
                         f"({sum(sizes)} parameters): train the experts with the same width")
    if max_start_epoch + expert_epochs > trajectories.shape[1] - 1:
        raise ValueError(f"max_start_epoch {max_start_epoch} + expert_epochs {expert_epochs} exceeds the "
                         f"{trajectories.shape[1] - 1} recorded epochs")
    images, labels, opt_img, gen = learnable_images(data, ipc, init, seed, lr_img, device)
    lr = torch.tensor(syn_lr, device=device).requires_grad_(True)
    opt_lr = torch.optim.SGD([lr], lr=lr_lr, momentum=0.5)
    digest = run_digest("mtt", params, seed, data, trajectories=float(trajectories.sum()))
    ckpt = Checkpointer(state_path, digest, save_every, {"images": images, "lr": lr},
                        {"images": opt_img, "lr": opt_lr}, gen)
    start, timer = ckpt.resume(iterations)
    n_syn = len(labels)
    batch = batch_syn or n_syn

    def forward(flat: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        tensors = dict(zip(names, (t.view(s) for t, s in zip(flat.split(sizes), shapes))))
        return functional_call(net, tensors, (x,))

    last_loss = float("nan")
    for it in tqdm(range(start, iterations), desc=f"MTT ipc={ipc}", disable=not progress, initial=start, total=iterations):
        e = int(torch.randint(0, trajectories.shape[0], (1,), generator=gen))
        t0 = int(torch.randint(0, max_start_epoch + 1, (1,), generator=gen))
        start_w = trajectories[e, t0].to(device)
        target_w = trajectories[e, t0 + expert_epochs].to(device)
        w = start_w.clone().requires_grad_(True)
        for _ in range(syn_steps):
            idx = torch.randperm(n_syn, generator=gen)[:batch].to(device)
            x = images[idx]
            if augment:
                x = diffaug.augment(x, diffaug.DSA_STRATEGY, gen, siamese=False, one_op=True)
            ce = F.cross_entropy(forward(w, x), labels[idx])
            (g,) = torch.autograd.grad(ce, w, create_graph=True)
            w = w - lr * g
        loss = (w - target_w).square().sum() / (start_w - target_w).square().sum().clamp_min(1e-12)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"MTT: non-finite trajectory loss at iteration {it + 1}")
        opt_img.zero_grad(set_to_none=True)
        opt_lr.zero_grad(set_to_none=True)
        loss.backward()
        opt_img.step()
        opt_lr.step()
        with torch.no_grad():
            lr.clamp_(min=1e-6)
        last_loss = loss.item()
        ckpt.maybe_save(it + 1, iterations, timer)
    return finish(images, labels.cpu(), data, "mtt", ipc, seed, params, timer.seconds,
                  {"learned_lr": float(lr.detach()), "final_loss": last_loss})
