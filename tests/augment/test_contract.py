"""The contract every registered batch transform keeps (``fastvis.augment.TRANSFORMS``): it
takes the dtypes it declares, the same seed gives the same output, the module form gives what
the function gives, the shape, dtype and device come back as declared, and CUDA gives what the
CPU gives. One table of example settings drives every test; a transform added to the registry
without settings here fails the first test."""
from __future__ import annotations

import dataclasses

import pytest
import torch

import fastvis.augment as A

B, H, W, K = 8, 12, 12, 5


def _images(dtype: str, channels: int = 3, device="cpu") -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    if dtype == "uint8":
        x = torch.randint(0, 256, (B, channels, H, W), generator=g, dtype=torch.uint8)
    elif dtype == "int16":
        x = torch.randint(-2000, 30000, (B, channels, H, W), generator=g, dtype=torch.int16)
    else:
        x = torch.rand(B, channels, H, W, generator=g)
    return x.to(device)


def _labels(device="cpu"):
    return (torch.arange(B) % K).to(device)


def _bank():
    mask = torch.zeros(5, 5, dtype=torch.bool)
    mask[1:4, 1:4] = True
    return A.DefectBank([torch.full((1, 5, 5), 0.9)], [mask])


# name -> (inputs after the images: callable(device) -> tuple, options, image channels)
SETTINGS = {
    "random_crop_flip": (lambda d: (), dict(padding=2), 3),
    "random_crop": (lambda d: (), dict(padding=2), 3),
    "hflip": (lambda d: (), {}, 3),
    "random_translate": (lambda d: (), dict(max_shift=2), 3),
    "alternating_flip": (lambda d: (torch.arange(B),), dict(epoch=1, seed=3), 3),
    "random_resized_crop": (lambda d: (), dict(size=6, scale=(0.3, 1.0)), 3),
    "randaugment": (lambda d: (), dict(num_ops=2, magnitude=9), 3),
    "trivialaugment": (lambda d: (), {}, 3),
    "autoaugment": (lambda d: (), {}, 3),
    "normalize": (lambda d: (), dict(mean=(0.5, 0.4, 0.3), std=(0.2, 0.25, 0.3)), 3),
    "to_unit": (lambda d: (torch.tensor([[1.0, 0.0, float("nan"), float("nan"), k % 2] for k in range(B)],
                                        dtype=torch.float64),), {}, 1),
    "cutout": (lambda d: (), dict(size=4), 3),
    "random_erasing": (lambda d: (), dict(p=1.0), 3),
    "cutmix": (lambda d: (_labels(d),), dict(num_classes=K), 3),
    "mixup": (lambda d: (_labels(d),), dict(num_classes=K), 3),
    "mix": (lambda d: (_labels(d),), dict(num_classes=K), 3),
    "defect_paste": (lambda d: (_labels(d) % 2,), dict(bank=_bank(), defect_class=0, normal=[1], p=1.0), 1),
    "resize": (lambda d: (), dict(size=(7, 9)), 3),
}

CASES = [(name, dtype) for name, spec in A.TRANSFORMS.items() for dtype in spec.dtypes]


def _random(spec) -> bool:
    import inspect

    return "generator" in inspect.signature(spec.function).parameters


def _run_function(name, dtype, seed, device="cpu", **more):
    spec = A.TRANSFORMS[name]
    extra, options, channels = SETTINGS[name]
    x = _images(dtype, channels, device)
    seeded = dict(generator=seed) if _random(spec) else {}
    return x, spec.function(x, *extra(device), **options, **more, **seeded)


# transforms whose default picks another method on CUDA than on the CPU (by design: the resized
# crop resamples with antialiased interpolation on the CPU, with one roi_align call on CUDA):
# across devices they are compared with the method named here on both
SAME_METHOD = {"random_resized_crop": dict(method="roi_align")}


def _tensors(out):
    """The tensors of an output (a tensor, a tuple, or a dataclass of parameters), in order."""
    if isinstance(out, torch.Tensor):
        return [out]
    if dataclasses.is_dataclass(out):
        return _tensors(tuple(getattr(out, f.name) for f in dataclasses.fields(out)))
    return [t for o in out for t in _tensors(o)]


def _equal(a, b) -> bool:
    ta, tb = _tensors(a), _tensors(b)
    return len(ta) == len(tb) and all(torch.equal(p.cpu(), q.cpu()) for p, q in zip(ta, tb))


def test_every_registered_transform_has_settings_here():
    assert set(A.TRANSFORMS) == set(SETTINGS)
    for name, spec in A.TRANSFORMS.items():
        assert issubclass(spec.module, A.BatchTransform), name


@pytest.mark.parametrize("name,dtype", CASES)
def test_same_seed_same_output(name, dtype):
    _, a = _run_function(name, dtype, seed=11)
    _, b = _run_function(name, dtype, seed=11)
    assert _equal(a, b)


@pytest.mark.parametrize("name,dtype", CASES)
def test_module_gives_what_the_function_gives(name, dtype):
    spec = A.TRANSFORMS[name]
    extra, options, channels = SETTINGS[name]
    x, expected = _run_function(name, dtype, seed=5)
    seeded = dict(generator=5) if _random(spec) else {}
    module = spec.module(**options, **seeded)
    assert _equal(module(x, *extra("cpu")), expected)
    if _random(spec):  # the module keeps its generator: a second call draws anew, as a second module does
        again = spec.module(**options, generator=5)
        again(x, *extra("cpu"))
        assert _equal(module(x, *extra("cpu")), again(x, *extra("cpu")))


@pytest.mark.parametrize("name,dtype", CASES)
def test_shape_dtype_and_device(name, dtype):
    spec = A.TRANSFORMS[name]
    x, out = _run_function(name, dtype, seed=2)
    images = out if isinstance(out, torch.Tensor) else out[0]
    want = x.dtype if spec.output == "same" else getattr(torch, spec.output)
    assert images.dtype == want and images.device == x.device
    assert images.shape[:2] == x.shape[:2]
    if spec.keeps_shape:
        assert images.shape == x.shape
    if spec.mixes_labels:
        targets = out[1]
        assert targets.shape == (B, K) and targets.dtype == torch.float32
        assert torch.allclose(targets.sum(1), torch.ones(B))


@pytest.mark.gpu
@pytest.mark.parametrize("name,dtype", CASES)
def test_cuda_gives_what_the_cpu_gives(name, dtype):
    _, cpu = _run_function(name, dtype, seed=9, **SAME_METHOD.get(name, {}))
    _, gpu = _run_function(name, dtype, seed=9, device="cuda", **SAME_METHOD.get(name, {}))
    for a, b in zip(_tensors(cpu), _tensors(gpu)):
        assert b.device.type in ("cuda", "cpu") and a.shape == b.shape and a.dtype == b.dtype
        diff = (a.double() - b.cpu().double()).abs().nan_to_num(0).max() if a.numel() else 0
        assert diff <= (1 if a.dtype == torch.uint8 else 1e-4), (name, dtype)


# -- how fastvis-train applies them (each entry's ``training``) -------------------------------------
def test_training_stages_each_get_a_dtype_they_take_in_the_registry_order():
    """Walked in the plan's order, from the uint8 of RGB data and the [0, 1] float of radiographs:
    every stage a kind of data can have receives a dtype it takes (uint8-only ones come before
    normalize), and the batch leaves as float32."""
    for start, skip in (("uint8", {"masks"}), ("float32", {"rgb"})):
        dtype = start
        for name, use in A.training_order():
            if skip & set(use.needs):
                continue
            spec = A.TRANSFORMS[name]
            assert dtype in spec.dtypes, (name, dtype)
            dtype = dtype if spec.output == "same" else spec.output
        assert dtype == "float32", start


def test_training_stages_read_training_options_and_every_augmentation_option_is_read():
    from fastvis.train.config import OPTIONS

    order = A.training_order()
    read = {o for _, use in order for o in use.options}
    assert read <= set(OPTIONS)
    assert {n for n, (group, _) in OPTIONS.items() if group == "augment"} <= read
    keys = [use.key for _, use in order if use.key is not None]
    assert len(keys) == len(set(keys)) and len({use.order for _, use in order}) == len(order)
