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
    assert bank.patches[0].shape == (1, 16, 24)
    # the masks are filled rectangles: box labels, narrowed to inside the box's inscribed ellipse
    assert bank.from_boxes == 3 and 0 < bank.masks[0].sum() < 10 * 18
    assert not bank.masks[0][:3].any() and not bank.masks[0][:, :3].any()  # nothing outside the box
    assert not bank.masks[0][3, 3] and bank.masks[0][8, 12]  # the box corner is out, its centre in
    outline = masks.clone()
    outline[1, 10, 12] = 0  # a pixel mask (not a filled box) is kept as it is
    kept = A.DefectBank.from_samples(x[defect], outline[defect], margin=3)
    assert kept.from_boxes == 2 and kept.masks[0].sum() == 10 * 18 - 1
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
    for i, k, (oy, ox), f, t, s in zip(chosen, params.which.tolist(), params.offsets.tolist(), params.flip.tolist(),
                                       params.rot.tolist(), params.scale.tolist()):
        m = A.placed_patch(bank, k, f, t, s)[1]
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
    bank = A.DefectBank([torch.rand(1, 70, 70)], [torch.ones(70, 70, dtype=torch.bool)])  # 56 px at the least
    module = A.DefectPaste(bank, defect_class=0, normal=[1], p=1.0, generator=1)
    out, y2, _ = module(x, y)
    assert torch.equal(out, x) and torch.equal(y2, y)  # nothing fits: nothing pasted


def _bank_of(size=7, value=0.1):
    mask = torch.zeros(size, size, dtype=torch.bool)
    mask[2:-2, 2:-2] = True
    mask[3, 2] = False  # a pixel mask: not narrowed
    return A.DefectBank([torch.full((1, size, size), value)], [mask])


@pytest.mark.parametrize("defects,p", [(2, 0.5), (8, 0.5), (16, 0.5), (4, 0.25), (0, 1.0), (16, 0.0)])
def test_defect_paste_brings_the_batch_to_the_share_p_and_never_past_it(rng, defects, p):
    B = 32
    x = torch.full((B, 1, 24, 24), 0.5)
    y = torch.ones(B, dtype=torch.int64)
    y[torch.from_numpy(rng.permutation(B)[:defects])] = 0
    bank = _bank_of()
    counts = []
    _, y2, params = A.defect_paste(x, y, bank, defect_class=0, normal=[1], p=p, generator=0)
    assert int((y2 == 0).sum()) == defects + len(params.index)
    for seed in range(40):  # the draws alone
        params = A.defect_paste_params(y, bank, (24, 24), [1], p, seed, defect_class=0, valid=A.valid_map(x))
        assert set(params.index.tolist()) <= set((y == 1).nonzero().flatten().tolist())  # normals only
        counts.append(defects + len(params.index))
    want = max(p * B, defects)
    assert abs(np.mean(counts) - want) <= 0.5  # the share asked (on average: the count is rounded at random)
    assert max(counts) <= max(int(np.ceil(p * B)), defects)  # never more defects than asked or already there


def test_defect_paste_places_patches_only_inside_the_material(rng):
    x = torch.full((16, 1, 32, 32), 0.5) + 0.01 * torch.from_numpy(rng.standard_normal((16, 1, 32, 32))).float()
    x[:, :, :, :20] = 1.0  # clipped to white by the window: background or saturated
    x[:, :, 28:, :] = 0.0  # and to black
    y = torch.ones(16, dtype=torch.int64)
    out, y2, params = A.defect_paste(x, y, _bank_of(), 0, [1], p=1.0, generator=3)
    assert len(params.index) == 16
    changed = (out != x).any(1)
    assert changed.any() and not changed[:, :, :20].any() and not changed[:, 28:].any()
    # nowhere to go: the image is left normal
    full = torch.ones(4, 1, 32, 32)
    out, y3, params = A.defect_paste(full, torch.ones(4, dtype=torch.int64), _bank_of(), 0, [1], p=1.0, generator=3)
    assert len(params.index) == 0 and torch.equal(out, full) and (y3 == 1).all()


def test_box_labels_keep_the_defect_not_the_casting_edge_beside_it():
    img = torch.full((1, 1, 40, 40), 0.5)
    yy, xx = torch.meshgrid(torch.arange(40.0), torch.arange(40.0), indexing="ij")
    img[0, 0] -= 0.3 * torch.exp(-((yy - 20) ** 2 + (xx - 20) ** 2) / 8)  # a round void in the middle
    img[0, 0, 10:30, 10:12] = 0.95  # a bright casting edge along the box's left side
    box = torch.zeros(1, 40, 40, dtype=torch.uint8)
    box[0, 10:30, 10:30] = 1
    bank = A.DefectBank.from_samples(img, box, margin=3)
    m = bank.masks[0]  # patch coordinates: the box starts at (3, 3)
    assert bank.from_boxes == 1
    assert m[3 + 10, 3 + 10] and not m[3:23, 3:5].any()  # the void's centre in, the bright edge out
    assert m.sum() < 0.25 * 20 * 20
    # a box with nothing standing out: its inscribed ellipse
    flat = A.tight_mask(torch.full((1, 10, 10), 0.5), (0, 10, 0, 10))
    assert flat[5, 5] and not flat[0, 0] and 0.6 < float(flat.float().mean()) < 0.85


def test_pasted_region_keeps_the_target_texture(rng):
    noise = 0.05 * torch.from_numpy(rng.standard_normal((8, 1, 32, 32))).float()
    x = (0.5 + noise).clamp(0, 1)
    y = torch.ones(8, dtype=torch.int64)
    mask = torch.zeros(14, 14, dtype=torch.bool)
    mask[1:-1, 1:-1] = True
    mask[1, 1] = False
    yy, xx = torch.meshgrid(torch.arange(14.0), torch.arange(14.0), indexing="ij")
    blob = 0.5 - 0.3 * torch.exp(-((yy - 6.5) ** 2 + (xx - 6.5) ** 2) / 8)
    bank = A.DefectBank([blob[None]], [mask])  # a smooth (noise-free) dark void
    kw = dict(p=1.0, generator=1, rotate=False, scale=(1.0, 1.0))
    plain, _, params = A.defect_paste(x, y, bank, 0, [1], texture=False, **kw)
    textured, _, params2 = A.defect_paste(x, y, bank, 0, [1], **kw)
    assert torch.equal(params.offsets, params2.offsets)

    def fine_std(img):
        vals = []
        for i, (oy, ox) in zip(params.index.tolist(), params.offsets.tolist()):
            region = img[i, :, oy + 2 : oy + 12, ox + 2 : ox + 12]  # the fine texture: less the 3x3 mean
            vals.append(float((region[:, 1:-1, 1:-1] - torch.nn.functional.avg_pool2d(region[None], 3, 1)[0]).std()))
        return np.mean(vals)

    assert fine_std(plain) < 0.3 * fine_std(x)  # a noise-free blot without texture matching
    assert 0.7 * fine_std(x) < fine_std(textured) < 1.3 * fine_std(x)
    # the defect is still there: the region is darker than its surroundings
    assert float(textured.mean()) < float(x.mean())


def test_rotated_and_scaled_patches_keep_a_clear_border_ring():
    mask = torch.zeros(9, 13, dtype=torch.bool)
    mask[1:-1, 1:-1] = True
    mask[1, 1] = False
    bank = A.DefectBank([torch.rand(1, 9, 13)], [mask])
    for rot in range(4):
        for s in (0.8, 1.0, 1.25):
            pt, m = A.placed_patch(bank, 0, flip=bool(rot % 2), rot=rot, scale=s)
            assert pt.shape[-2:] == m.shape and m.any()
            assert not (m[0].any() or m[-1].any() or m[:, 0].any() or m[:, -1].any())
            assert (m.shape[0] > m.shape[1]) == bool(rot % 2)  # quarter turns swap height and width
