"""The module form of a batch transform, made from its function.

Every transform is first a plain function on a batch, ``fn(images, [labels | indices], *options,
generator=None)``. :func:`module_form` turns it into a ``torch.nn.Module`` whose constructor
takes the options (with the function's defaults) and the generator, and whose ``forward``
takes the batch inputs and calls the function: the module gives exactly what the function
gives. A module keeps its generator (a CPU ``torch.Generator``, made from a seed if need be),
so successive calls draw new parameters and a module built from the same seed replays them.

fastvis-train applies the transforms a run's options turn on as *stages* of one plan
(:mod:`fastvis.train.augment_plan`): an :class:`AugmentedBatch` flows through them, and each
transform's module builds its own stage from a :class:`PlanContext` (the registry,
:data:`fastvis.augment.registry.TRANSFORMS`, says which builder, in which order, with which
seed stream).
"""
from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch

from .generators import as_generator

__all__ = ["AugmentedBatch", "BatchTransform", "PlanContext", "StageFn", "module_form", "on_images"]


class BatchTransform(torch.nn.Module):
    """Base of the module forms: ``options`` are the function's keyword arguments."""

    function: ClassVar[Callable[..., Any]]
    inputs: ClassVar[tuple[str, ...]] = ("images",)
    _signature: ClassVar[inspect.Signature]

    def __init__(self, *args, **kwargs):
        super().__init__()
        bound = self._signature.bind(*args, **kwargs)
        bound.apply_defaults()
        self.options = dict(bound.arguments)
        self.random = "generator" in self.options
        if self.random:
            self.generator = as_generator(self.options.pop("generator"))

    def forward(self, *inputs):
        if len(inputs) != len(self.inputs):
            raise TypeError(f"{type(self).__name__} takes ({', '.join(self.inputs)}), got {len(inputs)} inputs")
        extra = {"generator": self.generator} if self.random else {}
        return type(self).function(*inputs, **self.options, **extra)

    def set_epoch(self, epoch: int) -> None:
        """For transforms with an ``epoch`` option (the alternating flip)."""
        if "epoch" not in self.options:
            raise AttributeError(f"{type(self).__name__} has no epoch")
        self.options["epoch"] = epoch

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={v!r}" for k, v in self.options.items() if not isinstance(v, torch.Tensor))


def module_form(function: Callable[..., Any], name: str, inputs: tuple[str, ...] = ("images",)) -> type:
    """A :class:`BatchTransform` subclass named ``name`` around ``function``, whose first
    parameters are ``inputs``."""
    sig = inspect.signature(function)
    names = list(sig.parameters)
    if tuple(names[: len(inputs)]) != inputs:
        raise TypeError(f"{function.__name__} must start with the parameters {inputs}, not {names[: len(inputs)]}")
    options = inspect.Signature([p for n, p in sig.parameters.items() if n not in inputs])
    doc = f"Module form of :func:`{function.__module__}.{function.__name__}`: ``{name}{options}``, "\
          f"``forward({', '.join(inputs)})``."
    return type(name, (BatchTransform,), {"function": staticmethod(function), "inputs": tuple(inputs),
                                          "_signature": options, "__doc__": doc,
                                          "__module__": function.__module__})


@dataclass
class AugmentedBatch:
    """What flows through a training plan: images, class ids, soft targets once mixed, the
    samples' indices in the dataset (where the loader gives them), the epoch, the share of the
    run (or of its phase) done (1: outside a schedule, e.g. fine-tuning at a task's end)."""

    images: torch.Tensor
    labels: torch.Tensor
    targets: torch.Tensor | None = None
    indices: torch.Tensor | None = None
    epoch: int = 0
    progress: float = 1.0


#: one stage of a training plan: ``(batch, seed) -> batch``, the seed of this step's own stream
StageFn = Callable[[AugmentedBatch, int], AugmentedBatch]


@dataclass
class PlanContext:
    """What a transform's stage builder may read when fastvis-train builds its plan."""

    option: Callable[[str], Any]  # a training option's value by its name (fastvis.train.config)
    seed: int  # the run's seed
    num_classes: int
    image_size: tuple[int, int]  # (height, width) of the batches the loader gives
    mean: tuple[float, ...]
    std: tuple[float, ...]
    channels_last: bool
    radiographs: bool  # one-channel float images in [0, 1] (else uint8 RGB)
    applied: frozenset[str] = frozenset()  # what the loader already does to every batch ("crop", "normalize")
    dataset: Any = None  # the resident training set (labels, masks, classes); None when streamed
    log: Callable[[str], None] = print
    stats: dict = field(default_factory=dict)  # counters a stage keeps for the run's summary


def on_images(fn: Callable[[torch.Tensor, int], torch.Tensor]) -> StageFn:
    """A stage from a transform of the images alone: ``fn(images, seed)``."""
    def apply(v: AugmentedBatch, seed: int) -> AugmentedBatch:
        v.images = fn(v.images, seed)
        return v

    return apply
