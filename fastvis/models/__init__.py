"""Models by name: ``create_model("resnet18", num_classes=100)``; ``timm:NAME`` with timm. Each
model module registers its variants where it defines them (:mod:`.registry`)."""
from __future__ import annotations

from . import tinynet  # noqa: F401  (registers tinynet)
from .densenet import DenseNet
from .fastnet import FastNet
from .registry import create_model, list_models, register
from .resnet import ResNet, WideResNet

__all__ = ["DenseNet", "FastNet", "ResNet", "WideResNet", "create_model", "list_models", "register"]
