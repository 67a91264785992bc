"""Resident and streaming loaders: coverage, sharding, determinism, page locality."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from fastvis.beton import BetonError, BetonReader, BetonWriter, IntField, NDArrayField, RGBImageField
from fastvis.loader import ResidentDataset, StreamingLoader, epoch_order, seeded_passes, shard_indices

N = 1000


@pytest.fixture(scope="module")
def beton(tmp_path_factory):
    rng = np.random.default_rng(0)
    path = tmp_path_factory.mktemp("loader") / "d.beton"
    images = rng.integers(0, 256, (N, 8, 8, 3), dtype=np.uint8)
    scans = rng.integers(0, 65536, (N, 2, 3), dtype=np.uint16)
    with BetonWriter(path, {"image": RGBImageField(), "label": IntField(), "scan": NDArrayField(np.uint16, (2, 3))},
                     capacity=N, page_size=1 << 14) as w:  # 84 images a page: many pages
        for i in range(N):
            w.write((images[i], i, scans[i]))
    return path, images, scans


@pytest.mark.parametrize("world", [2, 3, 5, 8])
def test_shards_are_disjoint_equal_and_cover(world):
    order = epoch_order(N + 3, seed=1, epoch=4)
    parts = [shard_indices(order, r, world) for r in range(world)]
    assert len({len(p) for p in parts}) == 1
    allidx = torch.cat(parts)
    assert set(allidx.tolist()) == set(range(N + 3))
    assert len(allidx) - len(set(allidx.tolist())) == (-(N + 3)) % world  # only the padding repeats


def test_seeded_passes_are_one_stream_of_permutations_drawn_in_any_stretches():
    items = torch.arange(100, 113)
    whole = seeded_passes(items, 0, 5 * 13, seed=3, key=7)
    for p in range(5):  # pass p: the items in the order of (seed, key + p)
        assert torch.equal(whole[p * 13:(p + 1) * 13], items[epoch_order(13, 3, 7 + p)])
    cuts = [0, 4, 13, 13, 30, 64, 65]
    assert torch.equal(torch.cat([seeded_passes(items, a, b, 3, 7) for a, b in zip(cuts, cuts[1:])]), whole)
    assert len(seeded_passes(items, 9, 9, 3, 7)) == 0
    assert not torch.equal(seeded_passes(items, 0, 13, 4, 7), whole[:13])


@pytest.mark.parametrize("order", ["random", "quasi_random", "sequential"])
def test_every_sample_once_per_epoch_with_right_contents(beton, order):
    path, images, scans = beton
    loader = StreamingLoader(path, 64, fields=("image", "label", "scan"), order=order, drop_last=False, threads=3)
    seen = []
    for x, y, s in loader:
        assert x.shape[1:] == (3, 8, 8) and x.dtype == torch.uint8
        assert x.is_contiguous(memory_format=torch.channels_last)
        assert torch.equal(x.permute(0, 2, 3, 1), torch.from_numpy(images[y.numpy()]))
        assert torch.equal(s, torch.from_numpy(scans[y.numpy()]))
        seen.extend(y.tolist())
    assert sorted(seen) == list(range(N))
    assert len(loader) == -(-N // 64)


def test_order_depends_on_seed_and_epoch_only(beton):
    path, _, _ = beton
    a = StreamingLoader(path, 100, order="quasi_random", seed=3, threads=1)
    b = StreamingLoader(path, 100, order="quasi_random", seed=3, threads=4, prefetch=5)
    ya = [y for _, y in a]
    yb = [y for _, y in b]
    assert all(torch.equal(p, q) for p, q in zip(ya, yb)) and len(ya) == len(yb) == N // 100
    a.set_epoch(1)
    assert not torch.equal(torch.cat([y for _, y in a]), torch.cat(ya))


def test_quasi_random_batches_touch_few_pages(beton):
    path, _, _ = beton
    pages = BetonReader(path).metadata["f0"]["data_ptr"] // (1 << 14)

    def pages_per_batch(order):
        loader = StreamingLoader(path, 50, order=order, seed=0, window_pages=2)
        return np.mean([len(set(pages[y.numpy()].tolist())) for _, y in loader])

    assert pages_per_batch("quasi_random") <= 3.0 < pages_per_batch("random")


def test_ranks_read_disjoint_parts(beton):
    path, _, _ = beton
    parts = []
    for r in range(4):
        loader = StreamingLoader(path, 25, order="random", rank=r, world=4, drop_last=False)
        parts.append(torch.cat([y for _, y in loader]))
    assert sum(len(p) for p in parts) == N
    assert len(set(torch.cat(parts).tolist())) == N


def test_bad_inputs(beton, tmp_path):
    path, _, _ = beton
    with pytest.raises(KeyError):
        StreamingLoader(path, 8, fields=("image", "nope"))
    with pytest.raises(ValueError):
        StreamingLoader(path, 8, order="sorted")
    cut = tmp_path / "cut.beton"
    cut.write_bytes(path.read_bytes()[:5000])
    with pytest.raises(BetonError):
        StreamingLoader(cut, 8)


def test_resident_dataset(beton):
    path, images, _ = beton
    ds = ResidentDataset.load(path)
    assert len(ds) == N and ds.image_size == (8, 8)
    x, y = ds.batch(torch.tensor([5, 2, 900]))
    assert torch.equal(x.permute(0, 2, 3, 1), torch.from_numpy(images[[5, 2, 900]]))
    assert y.tolist() == [5, 2, 900]
    mean, std = ds.mean_std()
    assert all(0.4 < m < 0.6 for m in mean) and all(0.2 < s < 0.4 for s in std)


@pytest.mark.gpu
def test_streaming_to_cuda(beton):
    path, images, _ = beton
    loader = StreamingLoader(path, 128, order="random", device="cuda", drop_last=False)
    seen = 0
    for x, y in loader:
        assert x.is_cuda and torch.equal(x.permute(0, 2, 3, 1).cpu(), torch.from_numpy(images[y.cpu().numpy()]))
        seen += len(y)
    assert seen == N
