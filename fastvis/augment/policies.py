"""RandAugment, AutoAugment (CIFAR-10 policy) and TrivialAugment, applied per sample on the device.

Each sample draws its own operations and magnitudes; the batch is then processed op by op:
all samples that drew a geometric op go through one ``grid_sample`` with per-sample affine
matrices, and each colour op runs once on the samples that drew it. Op definitions and
magnitude ranges follow the papers (and torchvision's conventions: shear about the top-left
corner, rotation about the centre, nearest-neighbour sampling, zero fill).

Images are uint8 (values 0..255) or float (values 0..1), shape (B, C, H, W) with C = 3
(colour ops) or 1 (grey).
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from .. import FastvisError
from .base import PlanContext, StageFn, module_form, on_images
from .generators import GeneratorLike, cpu_tensor, rng

__all__ = ["OPS", "AutoAugment", "RandAugment", "TrivialAugment", "apply_ops", "autoaugment", "randaugment",
           "trivialaugment"]

OPS = ["Identity", "ShearX", "ShearY", "TranslateX", "TranslateY", "Rotate", "Brightness", "Color", "Contrast",
       "Sharpness", "Posterize", "Solarize", "AutoContrast", "Equalize", "Invert"]
OP_ID = {name: i for i, name in enumerate(OPS)}
GEOMETRIC = {OP_ID[n] for n in ("ShearX", "ShearY", "TranslateX", "TranslateY", "Rotate")}
SIGNED = {OP_ID[n] for n in ("ShearX", "ShearY", "TranslateX", "TranslateY", "Rotate", "Brightness", "Color",
                             "Contrast", "Sharpness")}


# -- magnitude tables ---------------------------------------------------------------------------

def magnitude_table(bins: int, height: int, width: int, wide: bool = False) -> torch.Tensor:
    """(len(OPS), 2, bins) float64: per op, the magnitude of each bin for x and y axes.

    Translation uses the width for TranslateX and the height for TranslateY."""
    t = torch.zeros(len(OPS), 2, bins, dtype=torch.float64)
    lin = lambda hi: torch.linspace(0, hi, bins, dtype=torch.float64)  # noqa: E731
    shear, rot, color = (0.99, 135.0, 0.99) if wide else (0.3, 30.0, 0.9)
    for name in ("ShearX", "ShearY"):
        t[OP_ID[name]] = lin(shear)
    if wide:
        t[OP_ID["TranslateX"]] = lin(32.0)
        t[OP_ID["TranslateY"]] = lin(32.0)
    else:
        t[OP_ID["TranslateX"]] = lin(150.0 / 331.0 * width)
        t[OP_ID["TranslateY"]] = lin(150.0 / 331.0 * height)
    t[OP_ID["Rotate"]] = lin(rot)
    for name in ("Brightness", "Color", "Contrast", "Sharpness"):
        t[OP_ID[name]] = lin(color)
    steps = 6 if wide else 4
    t[OP_ID["Posterize"]] = 8 - (torch.arange(bins, dtype=torch.float64) / ((bins - 1) / steps)).round()
    t[OP_ID["Solarize"]] = torch.linspace(1.0, 0.0, bins, dtype=torch.float64)  # fraction of the value range
    return t


# -- the ops on a subset of samples (float, values in [0, bound]) -------------------------------

def _gray(x: torch.Tensor) -> torch.Tensor:
    if x.shape[1] == 1:
        return x
    return (0.2989 * x[:, 0:1] + 0.587 * x[:, 1:2] + 0.114 * x[:, 2:3])


def _blend(a: torch.Tensor, b: torch.Tensor, factor: torch.Tensor, bound: float) -> torch.Tensor:
    """``b + factor * (a - b)``, clamped: factor 1 gives ``a``."""
    return (b + factor.view(-1, 1, 1, 1) * (a - b)).clamp_(0, bound)


def _sharp_degenerate(x: torch.Tensor) -> torch.Tensor:
    c = x.shape[1]
    k = torch.tensor([[1, 1, 1], [1, 5, 1], [1, 1, 1]], dtype=x.dtype, device=x.device) / 13.0
    smooth = F.conv2d(x, k.expand(c, 1, 3, 3), groups=c)
    out = x.clone()
    out[:, :, 1:-1, 1:-1] = smooth
    return out


def _equalize(x: torch.Tensor, bound: float) -> torch.Tensor:
    """Histogram equalisation per channel, PIL's algorithm, on values quantised to 256 levels."""
    n, c, h, w = x.shape
    scale = 255.0 / bound
    v = (x * scale).round().clamp_(0, 255).long().view(n * c, h * w)
    hist = torch.zeros(n * c, 256, dtype=torch.int64, device=x.device).scatter_add_(1, v, torch.ones_like(v))
    nonzero = hist > 0
    last = 255 - nonzero.flip(1).long().argmax(1)  # index of the last non-empty bin
    step = (h * w - hist.gather(1, last.view(-1, 1)).view(-1)) // 255
    cum = hist.cumsum(1)
    safe = step.clamp(min=1).view(-1, 1)
    lut = torch.cat([torch.zeros(n * c, 1, dtype=torch.int64, device=x.device),
                     ((cum + safe // 2) // safe)[:, :-1]], 1).clamp_(0, 255)
    eq = lut.gather(1, v)
    out = torch.where((step > 0).view(-1, 1), eq, v)
    return (out.to(x.dtype) / scale).view(n, c, h, w)


def _color_op(op: int, x: torch.Tensor, m: torch.Tensor, bound: float) -> torch.Tensor:
    name = OPS[op]
    if name == "Brightness":
        return _blend(x, torch.zeros_like(x), 1.0 + m, bound)
    if name == "Color":
        return _blend(x, _gray(x).expand_as(x), 1.0 + m, bound)
    if name == "Contrast":
        mean = _gray(x).mean(dim=(1, 2, 3), keepdim=True)
        return _blend(x, mean.expand_as(x), 1.0 + m, bound)
    if name == "Sharpness":
        return _blend(x, _sharp_degenerate(x), 1.0 + m, bound)
    if name == "Posterize":
        shift = (8 - m).clamp(0, 8).view(-1, 1, 1, 1)
        q = torch.pow(2.0, shift).to(x.dtype)
        levels = (x * (255.0 / bound)).floor()
        return (torch.div(levels, q, rounding_mode="floor") * q) * (bound / 255.0)
    if name == "Solarize":
        thr = (m * bound).view(-1, 1, 1, 1)
        return torch.where(x >= thr, bound - x, x)
    if name == "AutoContrast":
        lo = x.amin(dim=(2, 3), keepdim=True)
        hi = x.amax(dim=(2, 3), keepdim=True)
        span = hi - lo
        ok = span > 0
        scale = torch.where(ok, bound / span.clamp(min=1e-12), torch.ones_like(span))
        off = torch.where(ok, lo, torch.zeros_like(lo))
        return ((x - off) * scale).clamp_(0, bound)
    if name == "Equalize":
        return _equalize(x, bound)
    if name == "Invert":
        return bound - x
    raise ValueError(f"{name} is not a colour op")


def _affine_rows(ops: torch.Tensor, m: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """(n, 2, 3) maps from output pixel (x, y, 1) to source pixel coordinates."""
    n = ops.shape[0]
    mat = torch.zeros(n, 2, 3, dtype=torch.float64)
    mat[:, 0, 0] = 1.0
    mat[:, 1, 1] = 1.0
    sel = lambda name: ops == OP_ID[name]  # noqa: E731
    # shear about the top-left corner of the image (pixel centres sit at index + 0.5)
    mat[sel("ShearX"), 0, 1] = m[sel("ShearX")]
    mat[sel("ShearX"), 0, 2] = 0.5 * m[sel("ShearX")]
    mat[sel("ShearY"), 1, 0] = m[sel("ShearY")]
    mat[sel("ShearY"), 1, 2] = 0.5 * m[sel("ShearY")]
    mat[sel("TranslateX"), 0, 2] = -m[sel("TranslateX")]
    mat[sel("TranslateY"), 1, 2] = -m[sel("TranslateY")]
    r = sel("Rotate")
    if r.any():
        a = -torch.deg2rad(m[r])  # positive angles turn the image counter-clockwise
        cos, sin = torch.cos(a), torch.sin(a)
        cx, cy = (w - 1) / 2.0, (h - 1) / 2.0
        rot = torch.zeros(int(r.sum()), 2, 3, dtype=torch.float64)
        rot[:, 0, 0], rot[:, 0, 1], rot[:, 0, 2] = cos, sin, cx - cos * cx - sin * cy
        rot[:, 1, 0], rot[:, 1, 1], rot[:, 1, 2] = -sin, cos, cy + sin * cx - cos * cy
        mat[r] = rot
    return mat


def _geometric(x: torch.Tensor, ops: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    n, c, h, w = x.shape
    mat = _affine_rows(ops, m, h, w).to(x.device, torch.float32)
    ys, xs = torch.meshgrid(torch.arange(h, device=x.device, dtype=torch.float32),
                            torch.arange(w, device=x.device, dtype=torch.float32), indexing="ij")
    pts = torch.stack([xs, ys, torch.ones_like(xs)], -1).view(1, h * w, 3)
    src = pts @ mat.transpose(1, 2)  # (n, h*w, 2) source pixel coordinates
    grid = torch.stack([(2 * src[..., 0] + 1) / w - 1, (2 * src[..., 1] + 1) / h - 1], -1).view(n, h, w, 2)
    return F.grid_sample(x, grid, mode="nearest", padding_mode="zeros", align_corners=False)


def apply_ops(images: torch.Tensor, ops: torch.Tensor, magnitudes: torch.Tensor) -> torch.Tensor:
    """Apply op ``ops[i]`` (an index into ``OPS``) with magnitude ``magnitudes[i]`` to sample ``i``.

    Magnitudes are in the op's own unit (shear factor, pixels, degrees, blend offset, bits,
    solarize threshold as a fraction of the range). ``ops``/``magnitudes`` live on the CPU.
    Returns a float tensor with values in [0, bound] (255 for uint8 input, 1 for float)."""
    bound = 255.0 if images.dtype == torch.uint8 else 1.0
    x = images.to(torch.float32)
    ops = ops.to("cpu", torch.int64)
    magnitudes = magnitudes.to("cpu", torch.float64)
    geo = _member(ops, GEOMETRIC)
    if geo.any():
        idx = geo.nonzero().view(-1)
        dev_idx = idx.to(x.device, non_blocking=True)
        x = x.index_copy(0, dev_idx, _geometric(x.index_select(0, dev_idx), ops[idx], magnitudes[idx]))
    for k in ops.unique().tolist():
        if k in GEOMETRIC or OPS[k] == "Identity":
            continue
        idx = (ops == k).nonzero().view(-1)
        dev_idx = idx.to(x.device, non_blocking=True)
        m = magnitudes[idx].to(x.device, torch.float32, non_blocking=True)
        x = x.index_copy(0, dev_idx, _color_op(k, x.index_select(0, dev_idx), m, bound))
    return x


def _member(ops: torch.Tensor, ids: set[int]) -> torch.Tensor:
    return torch.isin(ops, torch.tensor(sorted(ids), dtype=ops.dtype))


def _finish(x: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    if like.dtype == torch.uint8:
        return x.round_().clamp_(0, 255).to(torch.uint8)
    return x.clamp_(0, 1).to(like.dtype)


def _signed(ops: torch.Tensor, mags: torch.Tensor, r: np.random.Generator) -> torch.Tensor:
    flip = cpu_tensor(r.random(ops.shape[0]) < 0.5) & _member(ops, SIGNED)
    return torch.where(flip, -mags, mags)


def _lookup(table: torch.Tensor, ops: torch.Tensor, bins: torch.Tensor) -> torch.Tensor:
    axis = (ops == OP_ID["TranslateY"]).long()
    return table[ops, axis, bins]


RANDAUGMENT_OPS = [OP_ID[n] for n in ("Identity", "ShearX", "ShearY", "TranslateX", "TranslateY", "Rotate",
                                      "Brightness", "Color", "Contrast", "Sharpness", "Posterize", "Solarize",
                                      "AutoContrast", "Equalize")]


def randaugment(images: torch.Tensor, num_ops: int = 2, magnitude: int = 9, num_magnitude_bins: int = 31,
                generator: GeneratorLike = None) -> torch.Tensor:
    """RandAugment (Cubuk et al., 2020): ``num_ops`` ops drawn uniformly per sample, each at
    bin ``magnitude`` of ``num_magnitude_bins``, sign random where it applies."""
    if not 0 <= magnitude < num_magnitude_bins:
        raise ValueError(f"magnitude must be in [0, {num_magnitude_bins})")
    r = rng(generator)
    b, _, h, w = images.shape
    table = magnitude_table(num_magnitude_bins, h, w)
    choices = torch.tensor(RANDAUGMENT_OPS)
    x = images
    for _ in range(num_ops):
        ops = choices[cpu_tensor(r.integers(0, len(choices), b))]
        mags = _signed(ops, _lookup(table, ops, torch.full((b,), magnitude)), r)
        x = _finish(apply_ops(x, ops, mags), images)
    return x


def trivialaugment(images: torch.Tensor, num_magnitude_bins: int = 31, generator: GeneratorLike = None):
    """TrivialAugment Wide (Müller & Hutter, 2021): one op and one random magnitude per sample."""
    r = rng(generator)
    b, _, h, w = images.shape
    table = magnitude_table(num_magnitude_bins, h, w, wide=True)
    choices = torch.tensor(RANDAUGMENT_OPS)
    ops = choices[cpu_tensor(r.integers(0, len(choices), b))]
    mags = _signed(ops, _lookup(table, ops, cpu_tensor(r.integers(0, num_magnitude_bins, b))), r)
    return _finish(apply_ops(images, ops, mags), images)


# AutoAugment's CIFAR-10 policy (Cubuk et al., 2019, appendix): 25 sub-policies of two
# (op, probability, magnitude bin out of 10) steps.
CIFAR10_POLICY = [
    (("Invert", 0.1, 0), ("Contrast", 0.2, 6)), (("Rotate", 0.7, 2), ("TranslateX", 0.3, 9)),
    (("Sharpness", 0.8, 1), ("Sharpness", 0.9, 3)), (("ShearY", 0.5, 8), ("TranslateY", 0.7, 9)),
    (("AutoContrast", 0.5, 0), ("Equalize", 0.9, 0)), (("ShearY", 0.2, 7), ("Posterize", 0.3, 7)),
    (("Color", 0.4, 3), ("Brightness", 0.6, 7)), (("Sharpness", 0.3, 9), ("Brightness", 0.7, 9)),
    (("Equalize", 0.6, 0), ("Equalize", 0.5, 0)), (("Contrast", 0.6, 7), ("Sharpness", 0.6, 5)),
    (("Color", 0.7, 7), ("TranslateX", 0.5, 8)), (("Equalize", 0.3, 0), ("AutoContrast", 0.4, 0)),
    (("TranslateY", 0.4, 3), ("Sharpness", 0.2, 6)), (("Brightness", 0.9, 6), ("Color", 0.2, 8)),
    (("Solarize", 0.5, 2), ("Invert", 0.0, 0)), (("Equalize", 0.2, 0), ("AutoContrast", 0.6, 0)),
    (("Equalize", 0.2, 0), ("Equalize", 0.6, 0)), (("Color", 0.9, 9), ("Equalize", 0.6, 0)),
    (("AutoContrast", 0.8, 0), ("Solarize", 0.2, 8)), (("Brightness", 0.1, 3), ("Color", 0.7, 0)),
    (("Solarize", 0.4, 5), ("AutoContrast", 0.9, 0)), (("TranslateY", 0.9, 9), ("TranslateY", 0.7, 9)),
    (("AutoContrast", 0.9, 0), ("Solarize", 0.8, 3)), (("Equalize", 0.8, 0), ("Invert", 0.1, 0)),
    (("TranslateY", 0.7, 9), ("AutoContrast", 0.9, 0)),
]


def autoaugment(images: torch.Tensor, generator: GeneratorLike = None) -> torch.Tensor:
    """AutoAugment with the CIFAR-10 policy: one sub-policy per sample, each step applied with
    its probability."""
    r = rng(generator)
    b, _, h, w = images.shape
    table = magnitude_table(10, h, w)
    pol_ops = torch.tensor([[OP_ID[s[0]] for s in sp] for sp in CIFAR10_POLICY])
    pol_p = torch.tensor([[s[1] for s in sp] for sp in CIFAR10_POLICY], dtype=torch.float64)
    pol_bin = torch.tensor([[s[2] for s in sp] for sp in CIFAR10_POLICY])
    pick = cpu_tensor(r.integers(0, len(CIFAR10_POLICY), b))
    x = images
    for step in range(2):
        ops = pol_ops[pick, step]
        keep = cpu_tensor(r.random(b)) < pol_p[pick, step]
        ops = torch.where(keep, ops, torch.full_like(ops, OP_ID["Identity"]))
        mags = _signed(ops, _lookup(table, ops, pol_bin[pick, step]), r)
        x = _finish(apply_ops(x, ops, mags), images)
    return x


RandAugment = module_form(randaugment, "RandAugment")
TrivialAugment = module_form(trivialaugment, "TrivialAugment")
AutoAugment = module_form(autoaugment, "AutoAugment")


# -- stages of fastvis-train's plan (see fastvis.augment.registry) ---------------------------------
def randaugment_stage(ctx: PlanContext) -> StageFn | None:
    """``--randaugment N,M``."""
    spec = ctx.option("randaugment")
    if not spec:
        return None
    try:
        n, m = (int(v) for v in str(spec).split(","))
    except ValueError:
        raise FastvisError(f"--randaugment takes N,M (e.g. 2,9), not {spec!r}") from None
    return on_images(lambda x, s: randaugment(x, n, m, generator=s))


def autoaugment_stage(ctx: PlanContext) -> StageFn | None:
    """``--autoaugment``: the CIFAR-10 policy."""
    return on_images(lambda x, s: autoaugment(x, generator=s)) if ctx.option("autoaugment") else None


def trivialaugment_stage(ctx: PlanContext) -> StageFn | None:
    """``--trivialaugment``."""
    return on_images(lambda x, s: trivialaugment(x, generator=s)) if ctx.option("trivialaugment") else None
