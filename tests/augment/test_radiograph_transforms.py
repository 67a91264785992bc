"""Stored radiograph values to [0, 1], and defect synthesis by Poisson blending."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import fastvis.augment as A


def test_to_unit_window_minmax_and_monochrome1():
    raw = torch.tensor([[0, 1000], [3000, 4095]], dtype=torch.int16).view(1, 1, 2, 2).repeat(3, 1, 1, 1)
    metas = [
        {"rescale_slope": 2.0, "rescale_intercept": -100.0, "window_center": 2000.0, "window_width": 4000.0,
         "photometric": "MONOCHROME2"},
        {"rescale_slope": 1.0, "rescale_intercept": 0.0, "photometric": "MONOCHROME2"},  # no window: min-max
        {"rescale_slope": 1.0, "rescale_intercept": 0.0, "window_center": 2048.0, "window_width": 4096.0,
         "photometric": "MONOCHROME1"},
    ]
    p = A.window_params(metas)
    out = A.to_unit(raw, p)
    v = raw[0, 0].double().numpy()
    np.testing.assert_allclose(out[0, 0].numpy(), np.clip((v * 2 - 100 - 0) / 4000, 0, 1), atol=1e-6)
    np.testing.assert_allclose(out[1, 0].numpy(), (v - v.min()) / (v.max() - v.min()), atol=1e-6)
    np.testing.assert_allclose(out[2, 0].numpy(), 1 - v / 4096, atol=1e-6)
    assert out.dtype == torch.float32
    minmax = A.window_params(metas, "minmax")
    assert all(math.isnan(r) for r in minmax[:, 2].tolist())
    with pytest.raises(ValueError, match="no window"):
        A.window_params(metas, "window")


def test_to_unit_reads_uint16_bits_held_in_int16():
    vals = np.array([0, 1, 40000, 65535], np.uint16)
    raw = torch.from_numpy(vals.view(np.int16)).view(1, 1, 2, 2)
    p = A.window_params([{"window_center": 32767.5, "window_width": 65535.0}])
    out = A.to_unit(raw, p, unsigned16=True)
    np.testing.assert_allclose(out.flatten().numpy(), vals / 65535.0, atol=1e-6)


def _batch(rng, n=8, size=48):
    from scipy.ndimage import gaussian_filter

    x = torch.from_numpy(gaussian_filter(rng.random((n, 1, size, size)), (0, 0, 3, 3))).float()
    x = (x - x.min()) / (x.max() - x.min()) * 0.6 + 0.2
    masks = torch.zeros(n, size, size, dtype=torch.uint8)
    masks[1, 10:20, 12:30] = 1
    masks[3, 30:44, 5:12] = 1
    masks[5, 0:6, 40:48] = 1  # at the image corner: the patch is clipped, its ring kept
    return x, torch.tensor([1, 0, 1, 0, 1, 0, 1, 1]), masks


def test_defect_bank_cuts_patches_around_masks(rng):
    x, y, masks = _batch(rng)
    defect = (y == 0).nonzero().flatten()
    bank = A.DefectBank.from_samples(x[defect], masks[defect], margin=3)
    assert len(bank) == 3
    assert bank.patches[0].shape == (1, 16, 24) and bank.masks[0].sum() == 10 * 18
    for m in bank.masks:  # the one-pixel boundary ring is never part of the mask
        assert not (m[0].any() or m[-1].any() or m[:, 0].any() or m[:, -1].any())


def test_defect_paste_relabels_and_changes_only_masked_pixels(rng):
    x, y, masks = _batch(rng)
    defect = (y == 0).nonzero().flatten()
    bank = A.DefectBank.from_samples(x[defect], masks[defect])
    out, y2, params = A.defect_paste(x, y, bank, defect_class=0, normal=[1], p=1.0, generator=5)
    chosen = params.index.tolist()
    assert chosen == (y == 1).nonzero().flatten().tolist()  # p=1: every normal image
    assert (y2 == 0).all() and (y == 1).sum() == 5  # the input labels are untouched
    assert torch.equal(out[y == 0], x[y == 0])  # defect images are left alone
    assert out.min() >= 0 and out.max() <= 1
    for i, k, (oy, ox), f in zip(chosen, params.which.tolist(), params.offsets.tolist(), params.flip.tolist()):
        m = bank.masks[k].flip(-1) if f else bank.masks[k]
        h, w = m.shape
        region = torch.zeros(x.shape[-2:], dtype=torch.bool)
        region[oy : oy + h, ox : ox + w] = m
        assert torch.equal(out[i, 0][~region], x[i, 0][~region])
        assert not torch.equal(out[i, 0][region], x[i, 0][region])
    # the same seed replays the same batch; p=0 changes nothing
    again, _, _ = A.defect_paste(x, y, bank, 0, [1], p=1.0, generator=5)
    assert torch.equal(again, out)
    none, y3, p0 = A.defect_paste(x, y, bank, 0, [1], p=0.0, generator=5)
    assert len(p0.index) == 0 and torch.equal(none, x) and torch.equal(y3, y)


def test_defect_paste_module_with_patches_larger_than_the_image(rng):
    x, y, masks = _batch(rng)
    bank = A.DefectBank([torch.rand(1, 60, 60)], [torch.ones(60, 60, dtype=torch.bool)])
    module = A.DefectPaste(bank, defect_class=0, normal=[1], p=1.0, generator=1)
    out, y2, _ = module(x, y)
    assert torch.equal(out, x) and torch.equal(y2, y)  # nothing fits: nothing pasted
