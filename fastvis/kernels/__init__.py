"""numba kernels of fastvis: each op as a CUDA kernel, a CPU twin that computes the same
result, a numpy (or scipy) reference, and one dispatch entry that picks the kernel or the twin
by the tensor's device. ``OPS`` is the index (see README.md beside this file); importing this
package imports no kernel module, so numba's CUDA target (or its simulator, chosen with
``NUMBA_ENABLE_CUDASIM=1``) is set up only when an op is first used."""
from __future__ import annotations

import importlib
from dataclasses import dataclass

__all__ = ["OPS", "KernelOp", "resolve"]


@dataclass(frozen=True)
class KernelOp:
    """Where one op lives: ``module`` in this package, the names of its dispatch entry, its
    CUDA kernel(s), its CPU twin(s), its reference and its torch form (for device tensors where
    numba cannot build CUDA kernels; ``None``: the CPU twin runs on host copies)."""

    module: str
    dispatch: str | None
    cuda: tuple[str, ...]
    cpu: tuple[str, ...]
    reference: str
    torch: str | None = None


OPS: dict[str, KernelOp] = {
    "crop_flip": KernelOp("geometric", "crop_flip", ("crop_flip_cuda",), ("crop_flip_cpu",), "crop_flip_reference",
                          "crop_flip_torch"),
    "cutmix_paste": KernelOp("mix", "cutmix_paste", ("cutmix_paste_cuda",),
                             ("cutmix_paste_cpu", "cutmix_paste_words_cpu"), "cutmix_paste_reference",
                             "cutmix_paste_torch"),
    "mixup_blend": KernelOp("mix", "mixup_blend", ("mixup_blend_u8_cuda", "mixup_blend_float_cuda"),
                            ("mixup_blend_u8_cpu", "mixup_blend_float_cpu"), "mixup_blend_reference",
                            "mixup_blend_torch"),
    # Poisson blending's dispatch lives with its batching, in fastvis.augment.poisson_blend_batch
    "poisson_sor": KernelOp("poisson", None, ("poisson_sor_cuda",), ("poisson_sor_cpu",), "poisson_reference"),
}


def resolve(op: str, part: str = "dispatch"):
    """The function(s) behind ``OPS[op]``: ``part`` is ``dispatch``, ``reference``, ``torch``
    (one function or ``None``), ``cuda`` or ``cpu`` (a tuple)."""
    entry = OPS[op]
    module = importlib.import_module(f"{__name__}.{entry.module}")
    names = getattr(entry, part)
    if isinstance(names, tuple):
        return tuple(getattr(module, n) for n in names)
    return None if names is None else getattr(module, names)
