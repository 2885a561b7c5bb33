"""The DCGAN-style generator of Fast / CMI (Fang et al.): z -> image on the pixel scale.

``Linear(nz -> 2*ngf*(S/4)^2) -> BN -> Up -> Conv-BN-LeakyReLU(0.2) (2 ngf) -> Up ->
Conv-BN-LeakyReLU(0.2) (ngf) -> Conv (channels) -> Sigmoid``, for square images of side
S divisible by 4 (28, 32, 64).  Published: nz = 256, ngf = 64 (about 0.86 M parameters at
32x32); a narrower ``ngf`` keeps synthesis cheaper than the teacher on a CPU.
"""
from __future__ import annotations

import torch
from torch import nn


class Generator(nn.Module):
    """:param nz: latent size; :param ngf: base width; :param image_size: side S; :param channels: output channels."""

    def __init__(self, nz: int = 256, ngf: int = 64, image_size: int = 32, channels: int = 3):
        super().__init__()
        if image_size % 4:
            raise ValueError(f"generator image_size must be divisible by 4, got {image_size}")
        self.nz, self.init_size = nz, image_size // 4
        self.project = nn.Linear(nz, 2 * ngf * self.init_size**2)
        self.body = nn.Sequential(
            nn.BatchNorm2d(2 * ngf),
            nn.Upsample(scale_factor=2),
            nn.Conv2d(2 * ngf, 2 * ngf, 3, 1, 1, bias=False), nn.BatchNorm2d(2 * ngf), nn.LeakyReLU(0.2, inplace=True),
            nn.Upsample(scale_factor=2),
            nn.Conv2d(2 * ngf, ngf, 3, 1, 1, bias=False), nn.BatchNorm2d(ngf), nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(ngf, channels, 3, 1, 1),
            nn.Sigmoid(),
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """Latents float (N, nz) -> images float (N, channels, S, S) in [0, 1] (pixel scale)."""
        h = self.project(z).view(z.shape[0], -1, self.init_size, self.init_size)
        return self.body(h)
