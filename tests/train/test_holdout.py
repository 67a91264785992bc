"""``--holdout``: a class-balanced, seeded validation split carved out of the training file,
never trained on, reported as such."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from fastvis.beton import BetonReader
from fastvis.loader import StreamingLoader, holdout_split
from fastvis.train.data import build_train_data
from fastvis.train.ddp import World
from fastvis.train.loop import train
from tests.helpers import train_config as config


@pytest.mark.parametrize("size,expected", [(0.25, 250), (100, 100), (7, 7)])
def test_split_is_disjoint_complete_balanced_and_seeded(size, expected):
    labels = np.repeat(np.arange(10), 100)[np.random.default_rng(0).permutation(1000)]
    train_ids, hold = holdout_split(labels, size, seed=3)
    assert len(hold) == expected and len(train_ids) == 1000 - expected
    assert not set(train_ids) & set(hold) and set(train_ids) | set(hold) == set(range(1000))
    per_class = np.bincount(labels[hold], minlength=10)
    assert per_class.max() - per_class.min() <= 1  # balanced to within one sample
    again = holdout_split(labels, size, seed=3)[1]
    assert np.array_equal(hold, again)
    if expected >= 100:
        assert not np.array_equal(hold, holdout_split(labels, size, seed=4)[1])


def test_split_follows_the_class_mix_and_refuses_degenerate_sizes():
    labels = np.array([0] * 900 + [1] * 100)
    _, hold = holdout_split(labels, 0.1)
    assert np.bincount(labels[hold]).tolist() == [90, 10]
    for bad in (0, 1000, -5, 5000):
        with pytest.raises(ValueError, match="holdout"):
            holdout_split(labels, bad)


@pytest.mark.parametrize("world", [2, 3])
def test_ranks_read_only_training_samples_and_all_of_them(data, world):
    labels = BetonReader(data[0]).column("label")
    train_ids, hold = holdout_split(labels, 0.25)
    seen = []
    for rank in range(world):
        loader = StreamingLoader(data[0], 8, order="random", rank=rank, world=world, drop_last=False,
                                 samples=train_ids)
        seen.append(torch.cat([b.indices for b in loader.batches()]).tolist())
    union = set().union(*map(set, seen))
    assert union == set(train_ids.tolist()) and not union & set(hold.tolist())
    assert max(map(len, seen)) - min(map(len, seen)) == 0  # equal parts (padded by wrapping)


@pytest.mark.parametrize("loader", ["resident", "streaming"])
def test_training_data_leaves_the_holdout_out(data, tmp_path, loader):
    cfg = config(data, tmp_path, holdout=0.25, loader=loader)
    d = build_train_data(cfg, data[0], World(), torch.device("cpu"))
    reader = BetonReader(data[0])
    train_ids, hold = holdout_split(reader.column("label"), 0.25)
    assert d.n == len(train_ids) == 192 and len(d.holdout) == len(hold) == 64
    expected = torch.from_numpy(reader.read_batch("image", hold)).permute(0, 3, 1, 2)
    assert torch.equal(d.holdout.images, expected)  # the held-out samples, as stored
    d.loader.set_epoch(0)
    trained = torch.cat([b.images for b in d.loader.batches()]) if loader == "streaming" else d.dataset.images
    held = {bytes(x.contiguous().numpy()) for x in expected}
    assert not any(bytes(x.contiguous().numpy()) in held for x in trained)


def test_runs_report_the_split_they_measure(data, tmp_path):
    both = train(config(data, tmp_path / "both", holdout=64, epochs=2))
    assert both["split"] == "test" and both["splits"] == {"holdout": 64, "test": 64}
    assert both["train_samples"] == 192 and set(both["final"]) == {"holdout", "test"}
    rows = [json.loads(line) for line in (tmp_path / "both" / "metrics.jsonl").read_text().splitlines()]
    assert [r["split"] for r in rows[:-1]] == ["holdout"] * (len(rows) - 1) and rows[-1]["split"] == "test"
    assert rows[-2]["final"] and rows[-1]["final"] and len(rows) >= 5  # a curve, then the two final rows
    assert both["best_top1"] == max(r["top1"] for r in rows if r["split"] == "holdout")
    alone = train(config(data, tmp_path / "alone", val=None, holdout=0.25, epochs=1))
    assert alone["split"] == "holdout" and alone["splits"] == {"holdout": 64} and alone["top1"] > 0.25
    with pytest.raises(Exception, match="--holdout"):
        train(config(data, tmp_path / "none", val=None, epochs=1))
