"""The kernel index (``fastvis.kernels.OPS``): every name in it exists, every kernel of the
modules is in it, and each op's dispatch entry and reference agree on a tiny batch."""
from __future__ import annotations

import importlib
import inspect

import numpy as np
import torch

from fastvis.kernels import OPS, resolve


def test_every_listed_function_exists_and_every_kernel_is_listed():
    listed: dict[str, set[str]] = {}
    for name, op in OPS.items():
        for part in ("cuda", "cpu"):
            assert len(resolve(name, part)) >= 1, (name, part)
        assert callable(resolve(name, "reference"))
        if op.dispatch:
            assert callable(resolve(name, "dispatch"))
        if op.torch:
            assert callable(resolve(name, "torch"))
        listed.setdefault(op.module, set()).update({*op.cuda, *op.cpu, op.reference, op.dispatch, op.torch} - {None})
    for module, names in listed.items():
        mod = importlib.import_module(f"fastvis.kernels.{module}")
        public = {n for n, f in vars(mod).items()
                  if n.endswith(("_cuda", "_cpu", "_reference", "_torch"))
                  and not n.startswith("_") and (callable(f) or inspect.isfunction(f))}
        assert public <= names, f"kernels of {module} missing from OPS: {sorted(public - names)}"


def test_dispatch_entries_agree_with_their_references():
    rng = np.random.default_rng(0)
    src = rng.integers(0, 256, (4, 3, 6, 6), dtype=np.uint8)
    perm = np.array([1, 2, 3, 0])
    boxes = np.array([[0, 3, 0, 3], [1, 6, 2, 4], [0, 0, 0, 0], [2, 5, 1, 6]])
    out = resolve("cutmix_paste")(torch.from_numpy(src), torch.from_numpy(perm), torch.from_numpy(boxes))
    assert np.array_equal(out.numpy(), resolve("cutmix_paste", "reference")(src, perm, boxes))
    lam = np.array([0.2, 0.5, 1.0, 0.7], np.float32)
    out = resolve("mixup_blend")(torch.from_numpy(src), torch.from_numpy(perm), torch.from_numpy(lam))
    assert np.array_equal(out.numpy(), resolve("mixup_blend", "reference")(src, perm, lam))
    oy, ox, flip = np.array([0, 1, 2, 4]), np.array([4, 3, 0, 1]), np.array([0, 1, 1, 0], np.uint8)
    out = resolve("crop_flip")(torch.from_numpy(src), torch.from_numpy(oy), torch.from_numpy(ox),
                               torch.from_numpy(flip), 2, True)
    assert np.array_equal(out.numpy(), resolve("crop_flip", "reference")(src, oy, ox, flip, 2, True, (6, 6)))
