"""Random parameters: drawn on the CPU from an explicit generator, then moved to the device.

A transform takes ``generator``: a CPU ``torch.Generator`` or an integer seed (None: fresh
randomness). Each call draws one 62-bit seed from it and draws all its parameters (boxes,
offsets, flips, lambdas, op choices) from a numpy PCG64 seeded with that, so a batch depends
only on the generator's state, not on the device: the same seed gives the same augmentation
on CPU and CUDA. Parameters are a few numbers per sample; numpy draws them in microseconds,
where a chain of small torch ops would cost more than the pixel work.
"""
from __future__ import annotations

import numpy as np
import torch

GeneratorLike = torch.Generator | int | np.random.Generator | None


def as_generator(generator: GeneratorLike) -> torch.Generator | np.random.Generator:
    """Normalise what a caller passed: a CPU torch.Generator (kept, so that modules advance
    it), a numpy Generator (passed through inside one transform), or a seed / None."""
    if isinstance(generator, np.random.Generator):
        return generator
    if isinstance(generator, torch.Generator):
        if generator.device.type != "cpu":
            raise ValueError("augmentation parameters are drawn on the CPU: pass a CPU torch.Generator or a seed")
        return generator
    g = torch.Generator()
    if generator is None:
        g.seed()
    else:
        g.manual_seed(int(generator))
    return g


def rng(generator: GeneratorLike) -> np.random.Generator:
    """The numpy generator one transform call draws from (advances a torch generator once)."""
    g = as_generator(generator)
    if isinstance(g, np.random.Generator):
        return g
    return np.random.default_rng(int(torch.randint(0, 2**62, (1,), generator=g)))


def cpu_tensor(a) -> torch.Tensor:
    """A numpy array as a (contiguous) CPU tensor, without a copy where it can."""
    return torch.from_numpy(np.ascontiguousarray(a))


def device_seed(r: np.random.Generator) -> int:
    """A seed for a device-side generator (per-pixel random fills)."""
    return int(r.integers(0, 2**62))
