"""Defect synthesis: Poisson-blend real defect patches into normal images, relabelled as defects.

A :class:`DefectBank` holds patches cut from defect samples around their masks (the mask's
bounding box plus a margin), as float images in [0, 1]. A mask that fills its bounding box is
taken for a box label (a rectangle drawn around the defect, not its outline): the bank then
keeps only what stands out inside it, weighted towards the box's centre (:func:`tight_mask`),
or the ellipse inscribed in the box where nothing stands out, so that casting edges along the
box's sides and in its corners are not carried along.

:func:`defect_paste` keeps the class mix under control: ``p`` is the share of defect-labelled
images a batch should hold after pasting. A batch of ``B`` images with ``d`` defects gets
``p * B - d`` pastes (rounded at random, none when it already holds enough), each into a
normal image picked at random, so that pasting never pushes the mix past ``p``: on balanced
data ``p = 0.5`` pastes little, on data with few real defects it brings each batch to half
defects. Each patch is turned by a random multiple of 90 degrees, mirrored at random and
scaled by a random factor of ``scale``, and placed only where the image is inside the
material: every pixel under the patch's box is off the window's clip levels (a patch in a
region clipped to white would be invisible but labelled defect). After the blend the region
takes back the target's fine texture (its difference to a 3x3 mean), so a smooth patch does not
show as a noise-free blot. The parameters are drawn apart from their application
(:func:`defect_paste_params`), from an explicit generator or seed.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from .. import FastvisError
from .base import AugmentedBatch, PlanContext, StageFn, module_form
from .generators import GeneratorLike, rng
from .poisson import mask_box, poisson_blend_batch

__all__ = ["DefectBank", "DefectPaste", "DefectPasteParams", "class_index", "defect_paste", "defect_paste_params",
           "placed_patch", "tight_mask", "valid_map"]

CLIP = (0.005, 0.995)  # values at or beyond these are taken as clipped by the window (background, saturated)


def tight_mask(patch: torch.Tensor, box: tuple[int, int, int, int]) -> torch.Tensor:
    """The defect inside a box label: the pixels of the ellipse inscribed in ``box`` (y0, y1,
    x0, x1, half-open, in ``patch`` coordinates) whose difference to the median of the box's
    rim, weighted by ``(1 - r^2)^2`` (r: the elliptical radius, 1 on the ellipse), is above 0.35 of
    the largest, grown by one pixel; the ellipse when fewer than four pixels stand out.
    ``patch`` (C, h, w)."""
    y0, y1, x0, x1 = box
    h, w = patch.shape[-2:]
    yy, xx = torch.meshgrid(torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32),
                            indexing="ij")
    cy, cx, ry, rx = (y0 + y1 - 1) / 2, (x0 + x1 - 1) / 2, max((y1 - y0) / 2, 1.0), max((x1 - x0) / 2, 1.0)
    r2 = ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2
    ellipse = r2 <= 1.0
    inside = patch[:, y0:y1, x0:x1].float()
    rim = torch.cat([inside[:, 0], inside[:, -1], inside[:, :, 0], inside[:, :, -1]], dim=1)
    diff = (patch.float() - rim.median(dim=1).values[:, None, None]).abs().amax(0)
    # a box is drawn around its defect: what stands out near its edge is not it
    diff = diff * (1 - r2).clamp(min=0) ** 2
    top = float(diff.max())
    strong = (diff > 0.35 * top) if top > 0 else torch.zeros_like(ellipse)
    if int(strong.sum()) < 4:
        return ellipse
    grown = F.max_pool2d(strong[None, None].float(), 3, stride=1, padding=1)[0, 0] > 0
    return grown & ellipse


@dataclass
class DefectBank:
    patches: list[torch.Tensor]  # (C, h, w) float in [0, 1]
    masks: list[torch.Tensor]  # (h, w) bool, never touching the patch border
    from_boxes: int = 0  # masks derived from box labels

    def __len__(self) -> int:
        return len(self.patches)

    @classmethod
    def from_samples(cls, images: torch.Tensor, masks: torch.Tensor, margin: int = 3) -> "DefectBank":
        """Cut one patch per sample with a nonempty mask. ``images`` (N, C, H, W) float,
        ``masks`` (N, H, W) (nonzero: defect); a mask that fills its bounding box is a box label
        and is narrowed by :func:`tight_mask`."""
        patches, out_masks, boxes = [], [], 0
        H, W = images.shape[-2:]
        for k in range(images.shape[0]):
            m = masks[k] != 0
            box = mask_box(m)
            if box is None:
                continue
            y0, y1 = max(0, box[0] - margin), min(H, box[1] + margin)
            x0, x1 = max(0, box[2] - margin), min(W, box[3] + margin)
            patch = images[k, :, y0:y1, x0:x1].float().clone()
            pm = m[y0:y1, x0:x1].clone()
            area = (box[1] - box[0]) * (box[3] - box[2])
            if area >= 9 and int(m.sum()) == area:  # a filled rectangle: a box label
                pm = tight_mask(patch, (box[0] - y0, box[1] - y0, box[2] - x0, box[3] - x0))
                boxes += 1
            pm[0], pm[-1], pm[:, 0], pm[:, -1] = False, False, False, False  # keep the boundary ring
            if y1 - y0 < 3 or x1 - x0 < 3 or not bool(pm.any()):
                continue
            patches.append(patch)
            out_masks.append(pm)
        return cls(patches, out_masks, boxes)


@dataclass
class DefectPasteParams:
    index: torch.Tensor  # (P,) samples that receive a patch
    which: torch.Tensor  # (P,) bank patch for each
    offsets: torch.Tensor  # (P, 2) top-left corner (y, x)
    flip: torch.Tensor  # (P,) mirror the patch left-right
    rot: torch.Tensor | None = None  # (P,) quarter turns (counter-clockwise) before the flip
    scale: torch.Tensor | None = None  # (P,) size factor


def _scaled(h: int, w: int, rot: int, s: float) -> tuple[int, int]:
    if rot % 2:
        h, w = w, h
    return max(3, int(round(h * s))), max(3, int(round(w * s)))


def placed_patch(bank: DefectBank, k: int, flip: bool = False, rot: int = 0,
                 scale: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """(patch, mask) of bank entry ``k`` turned ``rot`` quarter turns, mirrored when ``flip``
    and resized by ``scale`` (bilinear for the patch, nearest for the mask; the border ring
    stays clear)."""
    pt, m = bank.patches[k], bank.masks[k]
    if rot % 4:
        pt, m = torch.rot90(pt, rot, (-2, -1)), torch.rot90(m, rot, (-2, -1))
    if flip:
        pt, m = pt.flip(-1), m.flip(-1)
    size = _scaled(*bank.patches[k].shape[-2:], rot, scale)
    if size != tuple(pt.shape[-2:]):
        pt = F.interpolate(pt[None].float(), size=size, mode="bilinear", align_corners=False)[0]
        m = F.interpolate(m[None, None].float(), size=size, mode="nearest")[0, 0] > 0
        m[0], m[-1], m[:, 0], m[:, -1] = False, False, False, False
    return pt, m


def valid_map(images: torch.Tensor, clip: tuple[float, float] = CLIP) -> torch.Tensor:
    """(B, H, W) bool: pixels inside the material (every channel strictly between the clip levels)."""
    return ((images > clip[0]) & (images < clip[1])).all(1)


def _fits(invalid: np.ndarray, h: int, w: int) -> np.ndarray:
    """Top-left corners (y, x) where an ``h x w`` box covers no invalid pixel."""
    H, W = invalid.shape
    if h > H or w > W:
        return np.zeros((0, 2), np.int64)
    c = np.zeros((H + 1, W + 1), np.int64)
    c[1:, 1:] = invalid.astype(np.int64).cumsum(0).cumsum(1)
    sums = c[h:, w:] - c[:-h, w:] - c[h:, :-w] + c[:-h, :-w]
    return np.argwhere(sums == 0)


def defect_paste_params(labels: torch.Tensor, bank: DefectBank, image_hw: tuple[int, int], normal: Sequence[int],
                        p: float, generator: GeneratorLike = None, defect_class: int | None = None,
                        valid: torch.Tensor | None = None, rotate: bool = True,
                        scale: tuple[float, float] = (0.8, 1.25)) -> DefectPasteParams:
    """Which normal samples get which patch, turned, mirrored and scaled how, and where. ``p``:
    the share of defect-labelled samples (of ``defect_class``) wanted after pasting; ``valid``
    (B, H, W) bool: where a patch's box may lie (default: anywhere)."""
    r = rng(generator)
    y = labels.cpu().numpy()
    H, W = image_hw
    normals = np.nonzero(np.isin(y, list(normal)))[0]
    have = int((y == defect_class).sum()) if defect_class is not None else 0
    need = p * len(y) - have
    count = int(np.floor(need)) + int(r.random() < need - np.floor(need)) if need > 0 else 0
    order = normals[r.permutation(len(normals))]
    invalid = None if valid is None else (~valid.bool()).cpu().numpy()
    picks = []
    for i in order:
        if len(picks) >= count or not len(bank):
            break
        k = int(r.integers(len(bank)))
        turn = int(r.integers(4)) if rotate else 0
        flip = bool(r.random() < 0.5)
        s = float(np.exp(r.uniform(np.log(scale[0]), np.log(scale[1])))) if scale[0] != scale[1] else scale[0]
        h, w = _scaled(*bank.patches[k].shape[-2:], turn, s)
        if invalid is None:
            corners = np.argwhere(np.ones((H - h + 1, W - w + 1), bool)) if h <= H and w <= W \
                else np.zeros((0, 2), np.int64)
        else:
            corners = _fits(invalid[i], h, w)
        if len(corners) == 0:
            continue  # the patch fits nowhere in this image: the next normal image
        picks.append((int(i), k, tuple(int(v) for v in corners[int(r.integers(len(corners)))]), flip, turn, s))
    picks.sort()
    cols = list(zip(*picks)) if picks else [[], [], [], [], [], []]
    return DefectPasteParams(torch.tensor(cols[0], dtype=torch.int64), torch.tensor(cols[1], dtype=torch.int64),
                             torch.tensor(cols[2], dtype=torch.int64).reshape(-1, 2),
                             torch.tensor(cols[3], dtype=torch.bool), torch.tensor(cols[4], dtype=torch.int64),
                             torch.tensor(cols[5], dtype=torch.float32))


def _fine(x: torch.Tensor) -> torch.Tensor:
    """The fine texture of (C, h, w): its difference to the 3x3 mean (edges replicated)."""
    return x - F.avg_pool2d(F.pad(x[None], (1, 1, 1, 1), mode="replicate"), 3, stride=1)[0]


def class_index(classes: list[str], num_classes: int, name: str) -> int:
    """The id of the class ``name`` (a class name, or an index below ``num_classes``), as
    ``--defect-class`` names it; one line listing the classes when there is none."""
    if name in classes:
        return classes.index(name)
    if str(name).isdigit() and int(name) < num_classes:
        return int(name)
    listed = classes or list(range(num_classes))
    raise FastvisError(f"--defect-class {name!r} is not one of the classes {listed}")


def defect_paste(images: torch.Tensor, labels: torch.Tensor, bank: DefectBank, defect_class: int,
                 normal: Sequence[int], p: float = 0.5, generator: GeneratorLike = None,
                 params: DefectPasteParams | None = None, rotate: bool = True,
                 scale: tuple[float, float] = (0.8, 1.25), texture: bool = True,
                 ) -> tuple[torch.Tensor, torch.Tensor, DefectPasteParams]:
    """Returns new ``(images, labels, params)``; ``images`` float (B, C, H, W) in [0, 1]."""
    if params is None:
        params = defect_paste_params(labels, bank, tuple(images.shape[-2:]), normal, p, generator, defect_class,
                                     valid_map(images), rotate, scale)
    if len(params.index) == 0:
        return images, labels, params
    dev = images.device
    n = len(params.index)
    rot = params.rot.tolist() if params.rot is not None else [0] * n
    scl = params.scale.tolist() if params.scale is not None else [1.0] * n
    placed = [placed_patch(bank, k, f, t, s) for k, f, t, s in zip(params.which.tolist(), params.flip.tolist(), rot,
                                                                    scl)]
    patches, masks = [pt.to(dev) for pt, _ in placed], [m.to(dev) for _, m in placed]
    out = poisson_blend_batch(images, patches, masks, params.offsets, params.index, clip=(0.0, 1.0))
    if texture:
        for i, (oy, ox), m in zip(params.index.tolist(), params.offsets.tolist(), masks):
            h, w = m.shape
            blended, target = out[i, :, oy : oy + h, ox : ox + w], images[i, :, oy : oy + h, ox : ox + w]
            out[i, :, oy : oy + h, ox : ox + w] = torch.where(
                m, (blended - _fine(blended) + _fine(target)).clamp(0, 1), blended)
    labels = labels.clone()
    labels[params.index.to(labels.device)] = defect_class
    return out, labels, params


DefectPaste = module_form(defect_paste, "DefectPaste", inputs=("images", "labels"))


def defect_paste_stage(ctx: PlanContext) -> StageFn | None:
    """``--defect-paste P``: a bank cut around the masks of the ``--defect-class`` samples of the
    resident training set, pasted into the other classes' images."""
    p = ctx.option("defect_paste")
    if not p:
        return None
    ds = ctx.dataset
    if ds is None or ds.masks is None:
        raise FastvisError("--defect-paste needs radiographs converted with masks (fastvis-convert DIR OUT "
                           "--size N --labels CSV with a mask column)")
    classes = ds.classes or [str(k) for k in range(ctx.num_classes)]
    asked = ctx.option("defect_class")
    defect = class_index(classes, ctx.num_classes, asked if asked is not None else "defect")
    if "normal" in classes and classes.index("normal") != defect:
        normal = [classes.index("normal")]
    else:
        normal = [k for k in range(ctx.num_classes) if k != defect]
    pick = ((ds.labels == defect) & (ds.masks.flatten(1).amax(1) > 0)).nonzero().flatten().cpu()
    if len(pick) == 0:
        raise FastvisError(f"--defect-paste: no training sample of class {classes[defect]!r} has a mask")
    bank = DefectBank.from_samples(ds.batch(pick)[0], ds.masks[pick.to(ds.masks.device)])
    boxes = f" ({bank.from_boxes} box labels narrowed to what stands out in them)" if bank.from_boxes else ""
    ctx.log(f"defect bank: {len(bank)} patches from {len(pick)} masked {classes[defect]!r} samples{boxes}; pasting "
            f"brings each batch to {100 * p:g}% {classes[defect]!r} samples")
    stats = ctx.stats
    stats["defect_pastes"] = 0

    def paste(v: AugmentedBatch, seed: int) -> AugmentedBatch:
        v.images, v.labels, params = defect_paste(v.images, v.labels, bank, defect, normal, p, generator=seed)
        stats["defect_pastes"] += len(params.index)
        return v

    return paste
