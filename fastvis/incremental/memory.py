"""The exemplar memory: a fixed number of training samples of the classes seen so far, chosen by
herding and shared equally between the classes, held as indices into the data on the device.

Herding (Welling 2009, as iCaRL uses it): the exemplars of a class are picked one at a time,
each time the sample that brings the mean of the picked features closest to the mean of all the
class's features (features L2-normalised). The picks come in priority order, so shrinking a
class's share when new classes arrive keeps its first exemplars.
"""
from __future__ import annotations

from collections.abc import Iterator

import torch

from ..loader.order import seeded_passes

__all__ = ["Memory", "herding", "shared_batches"]


def herding(features: torch.Tensor, m: int) -> torch.Tensor:
    """Indices (into ``features``, (n, d)) of ``m`` exemplars in the order herding picks them."""
    f = torch.nn.functional.normalize(features.float(), dim=1)
    n = f.shape[0]
    m = min(m, n)
    mu = f.mean(0)
    picked: list[int] = []
    running = torch.zeros_like(mu)
    taken = torch.zeros(n, dtype=torch.bool, device=f.device)
    for k in range(1, m + 1):
        distance = (mu[None] - (running[None] + f) / k).norm(dim=1)
        distance[taken] = float("inf")
        i = int(distance.argmin())
        picked.append(i)
        taken[i] = True
        running += f[i]
    return torch.tensor(picked, dtype=torch.long, device=features.device)


class Memory:
    """At most ``size`` exemplars, ``size // classes`` per class seen (in herding order)."""

    def __init__(self, size: int):
        self.size = size
        self.by_class: dict[int, torch.Tensor] = {}  # class position -> dataset indices, priority order

    def per_class(self, classes: int) -> int:
        return self.size // max(classes, 1)

    def shrink(self, classes: int) -> None:
        """Keep each class's first ``size // classes`` exemplars (room for ``classes`` classes)."""
        m = self.per_class(classes)
        self.by_class = {c: idx[:m] for c, idx in self.by_class.items()}

    def add(self, cls: int, indices: torch.Tensor) -> None:
        self.by_class[cls] = indices

    def indices(self) -> torch.Tensor:
        if not self.by_class:
            return torch.zeros(0, dtype=torch.long)
        return torch.cat([self.by_class[c] for c in sorted(self.by_class)])

    def __len__(self) -> int:
        return sum(len(v) for v in self.by_class.values())

    def state_dict(self) -> dict:
        return {"size": self.size, "by_class": {int(c): v.cpu() for c, v in self.by_class.items()}}

    def load_state_dict(self, state: dict, device) -> None:
        self.size = int(state["size"])
        self.by_class = {int(c): v.to(device) for c, v in state["by_class"].items()}


def shared_batches(new: torch.Tensor, kept: torch.Tensor, batch: int, kept_per_batch: int, start: int, stop: int,
                   seed: int, key: int) -> Iterator[torch.Tensor]:
    """Batches ``start`` to ``stop`` of a task, each of ``batch - kept_per_batch`` samples of
    ``new`` and ``kept_per_batch`` of ``kept``, both drawn from seeded passes that run on across
    epochs (each pass its own order): every new sample once before any twice, and the same for the
    memory."""
    fresh = batch - kept_per_batch
    a = seeded_passes(new, start * fresh, stop * fresh, seed, key)
    m = seeded_passes(kept, start * kept_per_batch, stop * kept_per_batch, seed, key + 5_003)  # not tuning: apart
    for k in range(stop - start):
        yield torch.cat([a[k * fresh:(k + 1) * fresh], m[k * kept_per_batch:(k + 1) * kept_per_batch]])
