"""The model registry: each model module registers its variants where it defines them
(``@register("name")`` on a builder ``(num_classes, in_channels=3, drop_path_rate=0.0) -> Module``);
``create_model`` builds one by name, or ``timm:NAME`` with timm."""
from __future__ import annotations

import warnings
from collections.abc import Callable

import torch.nn as nn

from .. import InputError

__all__ = ["create_model", "list_models", "register"]

_BUILDERS: dict[str, Callable[..., nn.Module]] = {}


def register(name: str):
    """Register a builder under ``name``; a second builder of the same name replaces the first,
    with a warning naming both."""
    def deco(fn):
        old = _BUILDERS.get(name)
        if old is not None and old is not fn:
            warnings.warn(f"model {name!r} registered twice: {fn.__module__}.{fn.__qualname__} replaces "
                          f"{old.__module__}.{old.__qualname__}", stacklevel=2)
        _BUILDERS[name] = fn
        return fn
    return deco


def list_models() -> list[str]:
    return sorted(_BUILDERS)


def create_model(name: str, num_classes: int, in_channels: int = 3, drop_path_rate: float = 0.0) -> nn.Module:
    """A registered model, or ``timm:NAME`` (needs timm, built without pretrained weights)."""
    if name.startswith("timm:"):
        try:
            import timm
        except ImportError:
            raise InputError("timm models need timm installed (pip install timm)") from None
        return timm.create_model(name[5:], pretrained=False, num_classes=num_classes, in_chans=in_channels,
                                 drop_path_rate=drop_path_rate)
    if name not in _BUILDERS:
        raise InputError(f"unknown model {name!r}; choose from {', '.join(list_models())} or timm:NAME")
    return _BUILDERS[name](num_classes, in_channels=in_channels, drop_path_rate=drop_path_rate)
