"""DenseNet (Huang et al., 2017): each layer sees the feature maps of all layers before it in its
block. The BC form: 1x1 bottleneck convolutions (4k channels) before each 3x3 one, and
transitions that halve the channels and the resolution between blocks.

Two stems: ``cifar`` (one 3x3 convolution at full resolution, for 32-64 px images and crops)
and ``imagenet`` (7x7 stride 2 and a max-pool, for larger images such as whole radiographs).
"""
from __future__ import annotations

import torch
import torch.nn as nn

from .registry import register
from .resnet import he_init

__all__ = ["DenseNet"]


class _Layer(nn.Module):
    def __init__(self, c_in: int, growth: int, bottleneck: int = 4):
        super().__init__()
        mid = bottleneck * growth
        self.body = nn.Sequential(
            nn.BatchNorm2d(c_in), nn.ReLU(inplace=True), nn.Conv2d(c_in, mid, 1, bias=False),
            nn.BatchNorm2d(mid), nn.ReLU(inplace=True), nn.Conv2d(mid, growth, 3, padding=1, bias=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([x, self.body(x)], 1)


class DenseNet(nn.Module):
    def __init__(self, num_classes: int, blocks: tuple[int, ...] = (16, 16, 16), growth: int = 12,
                 compression: float = 0.5, in_channels: int = 3, stem: str = "cifar", init_features: int | None = None):
        super().__init__()
        c = init_features or 2 * growth
        if stem == "cifar":
            layers: list[nn.Module] = [nn.Conv2d(in_channels, c, 3, padding=1, bias=False)]
        else:
            layers = [nn.Conv2d(in_channels, c, 7, stride=2, padding=3, bias=False), nn.BatchNorm2d(c),
                      nn.ReLU(inplace=True), nn.MaxPool2d(3, stride=2, padding=1)]
        for b, n in enumerate(blocks):
            for _ in range(n):
                layers.append(_Layer(c, growth))
                c += growth
            if b < len(blocks) - 1:
                out = int(c * compression)
                layers += [nn.BatchNorm2d(c), nn.ReLU(inplace=True), nn.Conv2d(c, out, 1, bias=False),
                           nn.AvgPool2d(2)]
                c = out
        layers += [nn.BatchNorm2d(c), nn.ReLU(inplace=True), nn.AdaptiveAvgPool2d(1), nn.Flatten()]
        self.features = nn.Sequential(*layers)
        self.fc = nn.Linear(c, num_classes)
        he_init(self)
        nn.init.zeros_(self.fc.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(x))


# DenseNet-BC (growth 12) for CIFAR-size images and crops: depth 3 x 2n + 4
@register("densenet_bc40")
def _densenet_bc40(num_classes, in_channels=3, drop_path_rate=0.0):
    return DenseNet(num_classes, (6, 6, 6), 12, in_channels=in_channels)


@register("densenet_bc100")
def _densenet_bc100(num_classes, in_channels=3, drop_path_rate=0.0):
    return DenseNet(num_classes, (16, 16, 16), 12, in_channels=in_channels)


# DenseNet-121 (growth 32) with the 7x7/2 stem, for larger images
@register("densenet121")
def _densenet121(num_classes, in_channels=3, drop_path_rate=0.0):
    return DenseNet(num_classes, (6, 12, 24, 16), 32, in_channels=in_channels, stem="imagenet", init_features=64)
