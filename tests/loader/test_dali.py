"""The DALI loader (``--loader dali``): a DALI pipeline fed from a .beton, run on the CPU here."""
from __future__ import annotations

import sys

import numpy as np
import pytest
import torch

from fastvis.augment import center_crop_resize
from fastvis.beton import BetonReader, BetonWriter, IntField, RGBImageField
from fastvis.loader import decode_jpeg_batch, epoch_order


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    from scipy.ndimage import gaussian_filter

    rng = np.random.default_rng(0)
    root = tmp_path_factory.mktemp("dali")
    with BetonWriter(root / "raw.beton", {"image": RGBImageField(), "label": IntField()}, capacity=22) as w:
        for k in range(22):
            w.write((rng.integers(1, 256, (8, 8, 3), dtype=np.uint8), k))  # no zeros: padding is visible
    with BetonWriter(root / "jpeg.beton", {"image": RGBImageField("jpeg", 95), "label": IntField()}, capacity=12) as w:
        for k in range(12):
            side = int(rng.integers(24, 64))
            w.write(((gaussian_filter(rng.random((side, side, 3)), (3, 3, 0)) * 255).astype(np.uint8), k))
    return root / "raw.beton", root / "jpeg.beton"


def _windows(img: np.ndarray, p: int):
    """Every H x W window of ``img`` zero-padded by ``p``, and their mirrors, as (3, H, W)."""
    h, w = img.shape[:2]
    padded = np.pad(img, ((p, p), (p, p), (0, 0)))
    for dy in range(2 * p + 1):
        for dx in range(2 * p + 1):
            win = padded[dy : dy + h, dx : dx + w].transpose(2, 0, 1)
            yield win
            yield win[:, :, ::-1]


def test_padded_crops_follow_the_epoch_order(dali, files):
    from fastvis.loader.dali import DaliLoader

    raw, _ = files
    r = BetonReader(raw)
    loader = DaliLoader(raw, 4, crop="pad", padding=2, seed=3, threads=2)
    assert len(loader) == 5
    for epoch in (0, 1):
        loader.set_epoch(epoch)
        batches = list(loader)
        labels = torch.cat([y for _, y in batches]).numpy()
        assert np.array_equal(labels, epoch_order(22, 3, epoch).numpy()[:20])  # labels == sample index here
        for x, y in batches:
            assert x.shape == (4, 3, 8, 8) and x.dtype == torch.uint8
            for img, i in zip(x.numpy(), y.tolist()):  # a padded window of its own image, maybe mirrored
                assert any(np.array_equal(img, win) for win in _windows(r.get(i, "image"), 2)), i
    shifted = sum(int((x == 0).any()) for x, _ in batches)
    assert shifted > 0  # some crops moved into the padding


def test_normalised_output_and_same_seed_same_batches(dali, files):
    from fastvis.loader.dali import DaliLoader

    raw, _ = files
    mean, std = (0.5, 0.4, 0.3), (0.2, 0.25, 0.3)
    a = list(DaliLoader(raw, 4, crop="pad", seed=1))
    b = list(DaliLoader(raw, 4, crop="pad", seed=1, threads=1, mean=mean, std=std))
    for (xa, ya), (xb, yb) in zip(a, b):
        assert xb.dtype == torch.float32 and torch.equal(ya, yb)
        ref = (xa.float() - 255 * torch.tensor(mean).view(3, 1, 1)) / (255 * torch.tensor(std).view(3, 1, 1))
        assert torch.allclose(xb, ref, atol=1e-4)
    c = list(DaliLoader(raw, 4, crop="pad", seed=2))
    assert not all(torch.equal(x, z) for (x, _), (z, _) in zip(a, c))


def test_jpeg_random_resized_crops(dali, files):
    from fastvis.loader.dali import DaliLoader

    _, jpeg = files
    r = BetonReader(jpeg)
    # whole-image boxes and no flip: every output is the image resized, as fastvis resizes it
    whole = DaliLoader(jpeg, 3, 20, scale=(1.0, 1.0), ratio=(1.0, 1.0), flip_p=0.0)
    for x, y in whole:
        ref = center_crop_resize(decode_jpeg_batch(r, y.numpy()), 20, crop_frac=1.0)
        assert x.shape == (3, 3, 20, 20)
        assert (x.float() - ref.float()).abs().mean() < 3  # decoders and resamplers differ slightly
    crops = DaliLoader(jpeg, 3, 20, scale=(0.1, 0.3), seed=4)
    for (x, y), (xw, yw) in zip(crops, whole):
        assert (x.float() - xw.float()).abs().mean() > 1  # small boxes are not the whole image
    # starting at batch 2 reads batch 2's samples
    crops.set_epoch(1)
    full = [y for _, y in crops]
    assert torch.equal(next(crops.batches(2))[1], full[2])


@pytest.mark.parametrize("world", [2, 3, 8])
def test_ranks_read_disjoint_parts(dali, files, world):
    from fastvis.loader.dali import DaliLoader

    raw, _ = files
    parts = [torch.cat([y for _, y in DaliLoader(raw, 1, crop="pad", rank=k, world=world, seed=5)]).tolist()
             for k in range(world)]
    assert len({len(p) for p in parts}) == 1
    flat = sum(parts, [])
    assert set(flat) == set(range(22)) and len(flat) - len(set(flat)) == (-22) % world


def test_bad_inputs(dali, files, monkeypatch):
    from fastvis.loader.dali import DaliLoader

    raw, jpeg = files
    with pytest.raises(ValueError, match="differ in size"):
        DaliLoader(jpeg, 2, 16, crop="pad")
    with pytest.raises(ValueError, match="crop size"):
        DaliLoader(jpeg, 2)
    with pytest.raises(ValueError, match="keeps the image size"):
        DaliLoader(raw, 2, 16, crop="pad")
    with pytest.raises(TypeError, match="not an RGB image field"):
        DaliLoader(raw, 2, image_field="label")
    monkeypatch.setitem(sys.modules, "nvidia.dali", None)
    with pytest.raises(ImportError, match=r"fastvis\[dali\]"):
        DaliLoader(raw, 2, crop="pad")


@pytest.mark.gpu
def test_on_cuda(dali, files):
    from fastvis.loader.dali import DaliLoader

    _, jpeg = files
    x, y = next(iter(DaliLoader(jpeg, 4, 16, device="cuda", mean=(0.5,) * 3, std=(0.25,) * 3)))
    assert x.is_cuda and y.is_cuda and x.shape == (4, 3, 16, 16) and x.dtype == torch.float32


def test_a_corrupt_jpeg_is_named(dali, files, tmp_path):
    from fastvis.beton import BetonError
    from fastvis.loader.dali import DaliLoader

    _, jpeg = files
    r = BetonReader(jpeg)
    data = bytearray(jpeg.read_bytes())
    start = int(r._ptrs[0][5])
    data[start : start + 300] = b"\x00" * 300  # no JPEG header left
    bad = tmp_path / "bad.beton"
    bad.write_bytes(bytes(data))
    with pytest.raises(BetonError, match=r"bad\.beton.*sample 5"):
        for _ in DaliLoader(bad, 3, 16):
            pass
