"""TinyNet: a small model for smoke tests and DDP checks."""
from __future__ import annotations

import torch.nn as nn

from .registry import register


class TinyNet(nn.Module):
    """Two convolutions with GroupNorm: a small model whose output does not depend on how the
    batch is split (no batch statistics), for smoke tests and DDP checks."""

    def __init__(self, num_classes, in_channels=3, width=16):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, width, 3, padding=1), nn.GroupNorm(4, width), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(width, 2 * width, 3, padding=1), nn.GroupNorm(4, 2 * width), nn.ReLU(),
            nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.fc = nn.Linear(2 * width, num_classes)

    def forward(self, x):
        return self.fc(self.features(x))


@register("tinynet")
def _tinynet(num_classes, in_channels=3, drop_path_rate=0.0):
    return TinyNet(num_classes, in_channels)
