"""Models by name: ``create_model("resnet18", num_classes=100)``; ``timm:NAME`` with timm."""
from __future__ import annotations

from collections.abc import Callable

import torch.nn as nn

from .. import InputError
from .densenet import DenseNet
from .fastnet import FastNet
from .resnet import BasicBlock, Bottleneck, PreActBlock, ResNet, WideResNet

_REGISTRY: dict[str, Callable[..., nn.Module]] = {}


def register(name: str):
    def deco(fn):
        _REGISTRY[name] = fn
        return fn
    return deco


def _resnet(block, layers, **kw):
    return lambda num_classes, in_channels=3, drop_path_rate=0.0: ResNet(
        block, layers, num_classes=num_classes, in_channels=in_channels, drop_path_rate=drop_path_rate, **kw)


for _att in (None, "se", "cbam"):
    _prefix = f"{_att}_" if _att else ""
    register(f"{_prefix}resnet18")(_resnet(BasicBlock, [2, 2, 2, 2], attention=_att))
    register(f"{_prefix}resnet34")(_resnet(BasicBlock, [3, 4, 6, 3], attention=_att))
    register(f"{_prefix}resnet50")(_resnet(Bottleneck, [3, 4, 6, 3], attention=_att))
register("preact_resnet18")(_resnet(PreActBlock, [2, 2, 2, 2], preact=True))
# the CIFAR ResNet of He et al. (2016) with n = 5 (6n + 2 = 32 layers, 0.47 M parameters): the
# backbone of the class-incremental literature (iCaRL, LwF, WA on CIFAR-100)
register("resnet32")(_resnet(BasicBlock, [5, 5, 5], widths=(16, 32, 64), stem_out=16))
register("resnext29_8x64d")(_resnet(Bottleneck, [3, 3, 3], widths=(64, 128, 256), groups=8, base_width=64))
register("resnext29_4x32d")(_resnet(Bottleneck, [3, 3, 3], widths=(64, 128, 256), groups=4, base_width=32))


@register("wrn16_8")
def _wrn16_8(num_classes, in_channels=3, drop_path_rate=0.0):
    return WideResNet(16, 8, num_classes, in_channels=in_channels, drop_path_rate=drop_path_rate)


@register("wrn28_10")
def _wrn28_10(num_classes, in_channels=3, drop_path_rate=0.0):
    return WideResNet(28, 10, num_classes, in_channels=in_channels, drop_path_rate=drop_path_rate)


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


@register("fastnet")
def _fastnet(num_classes, in_channels=3, drop_path_rate=0.0):
    return FastNet(num_classes, in_channels=in_channels)


@register("fastnet_m")
def _fastnet_m(num_classes, in_channels=3, drop_path_rate=0.0):
    return FastNet(num_classes, widths=(48, 192, 192), in_channels=in_channels)


@register("fastnet_s")
def _fastnet_s(num_classes, in_channels=3, drop_path_rate=0.0):
    return FastNet(num_classes, widths=(32, 128, 128), in_channels=in_channels)


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


def list_models() -> list[str]:
    return sorted(_REGISTRY)


def create_model(name: str, num_classes: int, in_channels: int = 3, drop_path_rate: float = 0.0) -> nn.Module:
    """A registered model, or ``timm:NAME`` (needs timm, built without pretrained weights)."""
    if name.startswith("timm:"):
        try:
            import timm
        except ImportError:
            raise InputError("timm models need timm installed (pip install timm)") from None
        return timm.create_model(name[5:], pretrained=False, num_classes=num_classes, in_chans=in_channels,
                                 drop_path_rate=drop_path_rate)
    if name not in _REGISTRY:
        raise InputError(f"unknown model {name!r}; choose from {', '.join(list_models())} or timm:NAME")
    return _REGISTRY[name](num_classes, in_channels=in_channels, drop_path_rate=drop_path_rate)


__all__ = ["DenseNet", "FastNet", "ResNet", "WideResNet", "create_model", "list_models", "register"]
