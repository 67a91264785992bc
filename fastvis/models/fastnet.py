"""A fast small network in the style of the CIFAR-10 speed-run records (airbench, Jordan 2024):
a 2x2 patch "whitening" convolution whose weights are set from the data's patch covariance
(and not trained for RGB images; its bias is, for the first epochs), then three conv groups (conv, max-pool,
BN, GELU, conv, BN, GELU), global max-pool, a linear head scaled down. The BatchNorm layers
learn a shift but no scale (every conv is followed by one, so a scale would only repeat the
filters' norm) and keep running statistics with a short memory (each batch weighs 0.4). About
2 M parameters at the default widths. ``fastnet_l`` is the record family's larger net (the class of
airbench96): widths 128/384/512 and a third conv in each group, added back to the group's first
output (a residual), about 10 M parameters, for GPUs. ``fastnet_xs`` (32/64/64) is the proxy that
ranks batches for ``--hard-fraction``."""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from .registry import register


class ConvGroup(nn.Module):
    def __init__(self, cin, cout, momentum=0.4, depth=2):
        super().__init__()
        if depth not in (2, 3):
            raise ValueError(f"ConvGroup depth {depth}: 2 or 3")
        self.conv1 = nn.Conv2d(cin, cout, 3, padding="same", bias=False)
        self.bn1 = nn.BatchNorm2d(cout, momentum=momentum)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding="same", bias=False)
        self.bn2 = nn.BatchNorm2d(cout, momentum=momentum)
        self.depth = depth
        if depth == 3:
            self.conv3 = nn.Conv2d(cout, cout, 3, padding="same", bias=False)
            self.bn3 = nn.BatchNorm2d(cout, momentum=momentum)
        for m in self.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.weight.requires_grad_(False)

    def forward(self, x):
        x = F.max_pool2d(self.conv1(x), 2)
        x = F.gelu(self.bn1(x))
        y = F.gelu(self.bn2(self.conv2(x)))
        return y if self.depth == 2 else F.gelu(self.bn3(self.conv3(y)) + x)


class FastNet(nn.Module):
    def __init__(self, num_classes=10, widths=(64, 256, 256), whiten_width=24, in_channels=3, scale=1 / 9,
                 depth=2):
        super().__init__()
        self.whiten = nn.Conv2d(in_channels, whiten_width, 2, bias=True)
        # set from the data by init_whitening; trained only where the patches' dimensions (and their
        # negatives) leave channels over (one-channel images: 8 of 24)
        self.whiten.weight.requires_grad_(2 * in_channels * 4 < whiten_width)
        self.groups = nn.Sequential(ConvGroup(whiten_width, widths[0], depth=depth),
                                    ConvGroup(widths[0], widths[1], depth=depth),
                                    ConvGroup(widths[1], widths[2], depth=depth))
        self.fc = nn.Linear(widths[2], num_classes, bias=False)
        self.scale = scale
        for m in self.modules():  # start each conv close to an identity on its first channels
            if isinstance(m, nn.Conv2d) and m is not self.whiten and m.out_channels >= m.in_channels:
                nn.init.dirac_(m.weight.data[: m.in_channels])

    @torch.no_grad()
    def init_whitening(self, images: torch.Tensor, eps: float = 5e-4) -> None:
        """Set the 2x2 patch convolution to whiten the patches of ``images`` (normalised float)."""
        c = images.shape[1]
        k = self.whiten.kernel_size[0]
        patches = images.float().unfold(2, k, 1).unfold(3, k, 1).transpose(1, 3).reshape(-1, c * k * k)
        patches = patches - patches.mean(0)
        cov = patches.T @ patches / len(patches)
        evals, evecs = torch.linalg.eigh(cov)
        half = self.whiten.out_channels // 2
        use = min(half, c * k * k)
        w = (evecs.T / torch.sqrt(evals + eps)[:, None]).flip(0)[:use]
        w = w.reshape(use, c, k, k)
        self.whiten.weight.zero_()
        self.whiten.weight[:use] = w
        self.whiten.weight[half:half + use] = -w
        self.whiten.bias.zero_()

    def forward(self, x):
        x = F.gelu(self.whiten(x))
        x = self.groups(x)
        x = torch.amax(x, dim=(2, 3))
        return self.fc(x) * self.scale


@register("fastnet")
def _fastnet(num_classes, in_channels=3, drop_path_rate=0.0):
    return FastNet(num_classes, in_channels=in_channels)


@register("fastnet_m")
def _fastnet_m(num_classes, in_channels=3, drop_path_rate=0.0):
    return FastNet(num_classes, widths=(48, 192, 192), in_channels=in_channels)


@register("fastnet_s")
def _fastnet_s(num_classes, in_channels=3, drop_path_rate=0.0):
    return FastNet(num_classes, widths=(32, 128, 128), in_channels=in_channels)


@register("fastnet_l")
def _fastnet_l(num_classes, in_channels=3, drop_path_rate=0.0):
    return FastNet(num_classes, widths=(128, 384, 512), in_channels=in_channels, depth=3)


@register("fastnet_xs")
def _fastnet_xs(num_classes, in_channels=3, drop_path_rate=0.0):
    return FastNet(num_classes, widths=(32, 64, 64), in_channels=in_channels)
