"""The time-budgeted trainer (``fastvis-train``): ``train(TrainConfig.from_options(...))``.

The loop is :mod:`fastvis.train.loop`; see there for the map of its parts. The names below are
imported when first used, so that the command line can build its parser from
:mod:`fastvis.train.config` without loading torch."""
from __future__ import annotations

import importlib

_EXPORTS = {"TrainConfig": "config", "Trainer": "loop", "TrainingDiverged": "loop", "train": "loop"}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)


def __dir__():
    return __all__
