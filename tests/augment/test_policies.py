"""RandAugment's ops against torchvision's functional ops, and the policies' behaviour."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import fastvis.augment as A
from fastvis.augment.policies import OP_ID, OPS, apply_ops

TF = pytest.importorskip("torchvision.transforms.v2.functional", reason="torchvision is the reference here")


@pytest.fixture(scope="module")
def image():
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:32, 0:32]
    planes = [(yy * 7 + xx * 3) % 256, (xx * 5) % 256, rng.integers(0, 256, (32, 32))]
    return torch.from_numpy(np.stack(planes, 0).astype(np.uint8))


def ours(image, name, magnitude):
    out = apply_ops(image[None], torch.tensor([OP_ID[name]]), torch.tensor([magnitude], dtype=torch.float64))
    return out.round().clamp(0, 255).to(torch.uint8)[0]


REFERENCES = {
    # name: (our magnitude, torchvision call, max difference, fraction of pixels allowed to differ)
    "Brightness": (0.3, lambda im: TF.adjust_brightness(im, 1.3), 1, 1.0),
    "Color": (-0.4, lambda im: TF.adjust_saturation(im, 0.6), 1, 1.0),
    "Contrast": (0.5, lambda im: TF.adjust_contrast(im, 1.5), 1, 1.0),
    "Sharpness": (0.8, lambda im: TF.adjust_sharpness(im, 1.8), 1, 1.0),
    "Posterize": (3, lambda im: TF.posterize(im, 3), 0, 0.0),
    "Solarize": (100 / 255, lambda im: TF.solarize(im, 100), 0, 0.0),
    "AutoContrast": (0, lambda im: TF.autocontrast(im), 1, 1.0),
    "Equalize": (0, lambda im: TF.equalize(im), 0, 0.0),
    "Invert": (0, lambda im: TF.invert(im), 0, 0.0),
    "Rotate": (30, lambda im: TF.rotate(im, 30.0), 0, 0.0),
    "TranslateX": (5, lambda im: TF.affine(im, angle=0.0, translate=[5, 0], scale=1.0, shear=[0.0, 0.0]), 0, 0.0),
    "TranslateY": (-3, lambda im: TF.affine(im, angle=0.0, translate=[0, -3], scale=1.0, shear=[0.0, 0.0]), 0, 0.0),
    # nearest-neighbour ties at exactly .5 may round the other way
    "ShearX": (0.2, lambda im: TF.affine(im, angle=0.0, translate=[0, 0], scale=1.0,
                                         shear=[math.degrees(math.atan(0.2)), 0.0], center=[0, 0]), 255, 0.01),
    "ShearY": (0.2, lambda im: TF.affine(im, angle=0.0, translate=[0, 0], scale=1.0,
                                         shear=[0.0, math.degrees(math.atan(0.2))], center=[0, 0]), 255, 0.01),
}


@pytest.mark.parametrize("name", sorted(REFERENCES))
def test_op_matches_torchvision(image, name):
    magnitude, reference, max_diff, frac = REFERENCES[name]
    diff = (ours(image, name, magnitude).int() - reference(image).int()).abs()
    assert diff.max() <= max_diff
    assert (diff > 0).float().mean() <= frac
    if name not in ("Equalize", "Invert", "AutoContrast"):
        assert not torch.equal(ours(image, name, magnitude), image)  # the op did something


def test_ops_are_applied_per_sample(image):
    batch = image[None].repeat(len(OPS), 1, 1, 1)
    ops = torch.arange(len(OPS))
    mags = torch.tensor([0, 0.2, 0.2, 5, 5, 30, 0.3, 0.3, 0.3, 0.3, 3, 0.4, 0, 0, 0], dtype=torch.float64)
    out = apply_ops(batch, ops, mags).round().clamp(0, 255).to(torch.uint8)
    for i, name in enumerate(OPS):
        assert torch.equal(out[i], ours(image, name, float(mags[i]))), name
    assert torch.equal(out[OP_ID["Identity"]], image)


@pytest.mark.parametrize("policy", ["randaugment", "trivialaugment", "autoaugment"])
@pytest.mark.parametrize("dtype", [torch.uint8, torch.float32])
def test_policies_are_deterministic_and_keep_dtype(image, policy, dtype):
    x = image[None].repeat(16, 1, 1, 1)
    x = x if dtype == torch.uint8 else x.float() / 255
    fn = getattr(A, policy)
    a, b, c = fn(x, generator=1), fn(x, generator=1), fn(x, generator=2)
    assert a.dtype == dtype and a.shape == x.shape
    assert torch.equal(a, b) and not torch.equal(a, c)
    hi = 255 if dtype == torch.uint8 else 1.0
    assert a.min() >= 0 and a.max() <= hi
    # samples draw their own ops: identical inputs come out different
    assert len({a[i].float().sum().item() for i in range(16)}) > 4


def test_randaugment_magnitude_zero_keeps_colour_ops_identity(image):
    x = image[None].repeat(8, 1, 1, 1)
    out = A.randaugment(x, num_ops=1, magnitude=0, generator=0, num_magnitude_bins=31)
    # at bin 0 every op but Posterize(8 bits), Solarize(threshold 255), AutoContrast and Equalize is the identity
    changed = [not torch.equal(out[i], x[i]) for i in range(8)]
    assert sum(changed) < 8


def test_module_forms(image):
    x = image[None].repeat(4, 1, 1, 1)
    assert torch.equal(A.RandAugment(generator=3)(x), A.randaugment(x, generator=3))
    assert torch.equal(A.TrivialAugment(generator=3)(x), A.trivialaugment(x, generator=3))
    assert torch.equal(A.AutoAugment(generator=3)(x), A.autoaugment(x, generator=3))
    with pytest.raises(ValueError):
        A.randaugment(x, magnitude=31)


@pytest.mark.gpu
def test_policies_on_cuda_match_cpu(image):
    x = image[None].repeat(32, 1, 1, 1)
    for fn in (A.randaugment, A.trivialaugment, A.autoaugment):
        cpu = fn(x, generator=5).int()
        gpu = fn(x.cuda(), generator=5).cpu().int()
        assert (cpu - gpu).abs().max() <= 1
