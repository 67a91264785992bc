"""Loaders: from a .beton file to batches on the device.

Every loader keeps the :class:`BatchLoader` contract (``set_epoch``, ``len``, ``batches(first)``,
``applies``, ``per_rank``) and takes its sample order from :mod:`fastvis.loader.order`.
:data:`LOADERS` names them for the trainer and its ``--loader`` option. The names below are
imported when first used, so that reading :data:`LOADERS` (the command line does) costs nothing.
"""
from __future__ import annotations

import importlib

#: loader name -> "module:class" (DALI is an optional extra)
LOADERS = {
    "resident": "fastvis.loader.resident:ResidentLoader",
    "streaming": "fastvis.loader.streaming:StreamingLoader",
    "jpeg": "fastvis.loader.jpeg:JpegLoader",
    "dali": "fastvis.loader.dali:DaliLoader",
}

_EXPORTS = {
    "Batch": "base", "BatchLoader": "base",
    "JpegLoader": "jpeg", "center_sample": "jpeg", "decode_jpeg_batch": "jpeg",
    "ORDERS": "order", "epoch_order": "order", "holdout_split": "order", "quasi_random_order": "order",
    "seeded_passes": "order", "shard_indices": "order",
    "ResidentDataset": "resident", "ResidentLoader": "resident", "channel_mean_std": "resident",
    "StreamingLoader": "streaming",
}

__all__ = ["LOADERS", "loader_class", *sorted(_EXPORTS)]


def loader_class(name: str) -> type:
    """The class registered as ``name`` in :data:`LOADERS`."""
    if name not in LOADERS:
        raise ValueError(f"unknown loader {name!r}; loaders: {', '.join(LOADERS)}")
    module, cls = LOADERS[name].split(":")
    return getattr(importlib.import_module(module), cls)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)


def __dir__():
    return __all__
