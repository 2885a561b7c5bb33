"""Image augmentation, all of it: batched, seeded only by a ``torch.Generator``, on any device.

Two families:

- Training views (:func:`random_crop_flip`, :func:`random_resized_crop`): the usual
  crop-after-padding and flip of classifier training and KD, and CMI's random-resized local
  view.  Each sample draws its own parameters; the draws come from a CPU generator, so a
  resumed run repeats them exactly.
- Differentiable augmentation (:func:`augment`, :func:`dsa`, :func:`diffaugment`): DSA
  (Zhao & Bilen 2021) and DiffAugment (Zhao et al. 2020).  With ``siamese=True`` one draw of
  parameters is shared by the whole batch, so two batches augmented from generators in the
  same state (real and synthetic, as DSA does) get the same transform.

Every function is differentiable w.r.t. the images, so gradients reach synthetic pixels or
a generator through it.  The generator is a CPU one; the images may live on any device.

Defaults are the published ones: DSA's ``color_crop_cutout_flip_scale_rotate`` with
scale 1.2, rotation 15 degrees, crop-pad 1/8, cutout 1/2, brightness 1.0, saturation
2.0, contrast 0.5, flip 0.5, one op per call (mode ``S``); DiffAugment's
``color_translation_cutout`` (translation 1/8, cutout 1/2) applies all ops per sample.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F


# Training views


def random_crop_flip(images: torch.Tensor, padding: int, generator: torch.Generator, flip: bool = True) -> torch.Tensor:
    """Random crop after zero padding, and random horizontal flip, per sample.

    :param images: float (N, C, H, W).
    :param padding: pixels of zero padding on each side; the crop offset is uniform in
        ``[0, 2 * padding]`` per axis (the usual ``RandomCrop(size, padding)``).
    :param generator: CPU generator, the only source of randomness (reproducible resume).
    :returns: float (N, C, H, W).
    """
    n, c, h, w = images.shape
    dy = torch.randint(0, 2 * padding + 1, (n,), generator=generator)
    dx = torch.randint(0, 2 * padding + 1, (n,), generator=generator)
    do_flip = torch.rand(n, generator=generator) < 0.5 if flip else torch.zeros(n, dtype=torch.bool)
    dev = images.device
    padded = F.pad(images, (padding,) * 4)
    rows = (dy.view(n, 1) + torch.arange(h).view(1, h)).to(dev)  # (N, H)
    cols = dx.view(n, 1) + torch.arange(w).view(1, w)  # (N, W)
    cols = torch.where(do_flip.view(n, 1), cols.flip(1), cols).to(dev)
    idx_rows = rows.view(n, 1, h, 1).expand(n, c, h, w + 2 * padding)
    out = padded.gather(2, idx_rows)
    return out.gather(3, cols.view(n, 1, 1, w).expand(n, c, h, w))


def random_resized_crop(images: torch.Tensor, generator: torch.Generator, scale=(0.25, 1.0),
                        ratio=(3 / 4, 4 / 3)) -> torch.Tensor:
    """Differentiable ``RandomResizedCrop`` + horizontal flip per sample, resized back bilinearly.

    :param images: float (N, C, H, W).
    :param generator: CPU generator, the only source of randomness.
    :param scale: range of the crop's share of the image area; :param ratio: range of its aspect
        ratio (log-uniform).  A side longer than the image is capped at the image.
    :returns: float (N, C, H, W), differentiable w.r.t. ``images``.
    """
    n = images.shape[0]
    area = torch.empty(n).uniform_(*scale, generator=generator)
    aspect = torch.empty(n).uniform_(math.log(ratio[0]), math.log(ratio[1]), generator=generator).exp()
    w, h = (area * aspect).sqrt().clamp(max=1.0), (area / aspect).sqrt().clamp(max=1.0)
    cx = (2 * torch.rand(n, generator=generator) - 1) * (1 - w)
    cy = (2 * torch.rand(n, generator=generator) - 1) * (1 - h)
    sign = torch.where(torch.rand(n, generator=generator) < 0.5, -1.0, 1.0)
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0], theta[:, 0, 2], theta[:, 1, 1], theta[:, 1, 2] = w * sign, cx, h, cy
    grid = F.affine_grid(theta.to(images), list(images.shape), align_corners=False)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="border", align_corners=False)


# Differentiable augmentation: DSA and DiffAugment


@dataclass(frozen=True)
class AugmentParams:
    """Magnitudes of the ops (see module docstring for the published values)."""

    scale: float = 1.2
    rotate: float = 15.0
    crop_pad: float = 0.125
    cutout: float = 0.5
    brightness: float = 1.0
    saturation: float = 2.0
    contrast: float = 0.5
    flip: float = 0.5


def _rand(n: int, g: torch.Generator, siamese: bool, device) -> torch.Tensor:
    r = torch.rand(1 if siamese else n, generator=g)
    return (r.expand(n) if siamese else r).to(device)


def _randint(high: int, n: int, g: torch.Generator, siamese: bool, device) -> torch.Tensor:
    r = torch.randint(0, high, (1 if siamese else n,), generator=g)
    return (r.expand(n) if siamese else r).to(device)


def _affine(x: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    grid = F.affine_grid(theta, list(x.shape), align_corners=True)
    return F.grid_sample(x, grid, align_corners=True)


def scale(x, g, p: AugmentParams, siamese):
    n = x.shape[0]
    lo, hi = 1.0 / p.scale, p.scale
    sx = _rand(n, g, siamese, x.device) * (hi - lo) + lo
    sy = _rand(n, g, siamese, x.device) * (hi - lo) + lo
    theta = torch.zeros(n, 2, 3, device=x.device, dtype=x.dtype)
    theta[:, 0, 0], theta[:, 1, 1] = sx, sy
    return _affine(x, theta)


def rotate(x, g, p: AugmentParams, siamese):
    n = x.shape[0]
    ang = (_rand(n, g, siamese, x.device) - 0.5) * 2 * p.rotate / 180 * math.pi
    theta = torch.zeros(n, 2, 3, device=x.device, dtype=x.dtype)
    theta[:, 0, 0], theta[:, 0, 1] = torch.cos(ang), torch.sin(-ang)
    theta[:, 1, 0], theta[:, 1, 1] = torch.sin(ang), torch.cos(ang)
    return _affine(x, theta)


def flip(x, g, p: AugmentParams, siamese):
    mask = (_rand(x.shape[0], g, siamese, x.device) < p.flip).view(-1, 1, 1, 1)
    return torch.where(mask, x.flip(3), x)


def brightness(x, g, p: AugmentParams, siamese):
    return x + (_rand(x.shape[0], g, siamese, x.device).view(-1, 1, 1, 1) - 0.5) * p.brightness


def saturation(x, g, p: AugmentParams, siamese):
    mean = x.mean(dim=1, keepdim=True)
    return (x - mean) * (_rand(x.shape[0], g, siamese, x.device).view(-1, 1, 1, 1) * p.saturation) + mean


def contrast(x, g, p: AugmentParams, siamese):
    mean = x.mean(dim=[1, 2, 3], keepdim=True)
    return (x - mean) * (_rand(x.shape[0], g, siamese, x.device).view(-1, 1, 1, 1) + p.contrast) + mean


def translate(x, g, p: AugmentParams, siamese):
    """Shift by up to ``crop_pad`` of the side with zero fill (DSA's crop, DiffAugment's translation)."""
    n, _, h, w = x.shape
    sh, sw = int(h * p.crop_pad + 0.5), int(w * p.crop_pad + 0.5)
    ty = _randint(2 * sh + 1, n, g, siamese, x.device) - sh
    tx = _randint(2 * sw + 1, n, g, siamese, x.device) - sw
    rows = (torch.arange(h, device=x.device).view(1, h) + ty.view(n, 1)).clamp(-1, h)  # -1 / h -> padding
    cols = (torch.arange(w, device=x.device).view(1, w) + tx.view(n, 1)).clamp(-1, w)
    padded = F.pad(x, (1, 1, 1, 1))
    out = padded.gather(2, (rows + 1).view(n, 1, h, 1).expand(n, x.shape[1], h, w + 2))
    return out.gather(3, (cols + 1).view(n, 1, 1, w).expand(n, x.shape[1], h, w))


def cutout(x, g, p: AugmentParams, siamese):
    """Zero a square of ``cutout`` times the side at a random centre."""
    n, _, h, w = x.shape
    ch, cw = int(h * p.cutout + 0.5), int(w * p.cutout + 0.5)
    cy = _randint(h + (1 - ch % 2), n, g, siamese, x.device)
    cx = _randint(w + (1 - cw % 2), n, g, siamese, x.device)
    ys = torch.arange(h, device=x.device).view(1, h, 1)
    xs = torch.arange(w, device=x.device).view(1, 1, w)
    y0 = (cy - ch // 2).view(n, 1, 1)
    x0 = (cx - cw // 2).view(n, 1, 1)
    inside = (ys >= y0) & (ys < y0 + ch) & (xs >= x0) & (xs < x0 + cw)
    return x * (~inside).unsqueeze(1).to(x.dtype)


OPS = {"color": (brightness, saturation, contrast), "crop": (translate,), "translation": (translate,),
       "cutout": (cutout,), "flip": (flip,), "scale": (scale,), "rotate": (rotate,)}


def augment(x: torch.Tensor, strategy: str, generator: torch.Generator, params: AugmentParams = AugmentParams(),
            siamese: bool = True, one_op: bool = True) -> torch.Tensor:
    """Apply the ops named in ``strategy`` (``_``-separated keys of :data:`OPS`).

    :param x: float (N, C, H, W), any scale (normalised images are fine).
    :param generator: the only source of randomness.
    :param siamese: one parameter draw for the whole batch (DSA) instead of one per sample.
    :param one_op: apply one randomly chosen op group (DSA mode ``S``) instead of all (``M``).
    :returns: float (N, C, H, W), differentiable w.r.t. ``x``.
    """
    names = [s for s in strategy.split("_") if s]
    unknown = [s for s in names if s not in OPS]
    if unknown:
        raise ValueError(f"unknown augmentation {unknown}; known: {', '.join(OPS)}")
    if not names:
        return x
    if one_op:
        names = [names[int(torch.randint(0, len(names), (1,), generator=generator))]]
    for name in names:
        for op in OPS[name]:
            x = op(x, generator, params, siamese)
    return x


DSA_STRATEGY = "color_crop_cutout_flip_scale_rotate"
DIFFAUGMENT_STRATEGY = "color_translation_cutout"


def dsa(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """DSA's Siamese augmentation, one op per call: reseed two generators alike for real and synthetic."""
    return augment(x, DSA_STRATEGY, generator, siamese=True, one_op=True)


def diffaugment(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """DiffAugment colour + translation + cutout, drawn per sample."""
    return augment(x, DIFFAUGMENT_STRATEGY, generator, siamese=False, one_op=False)
