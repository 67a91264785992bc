"""The pure parts of class-incremental learning: protocols, class orders, herding, the memory,
the metrics and the order study's split of the spread."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from fastvis import InputError
from fastvis.incremental import Memory, class_order, herding, order_study, parse_protocol, summarize, task_classes
from fastvis.models import create_model


@pytest.mark.parametrize("spec,k,sizes", [
    ("B0-10", 100, [10] * 10), ("B0-5", 100, [20] * 5), ("B0-20", 100, [5] * 20), ("B50-10", 100, [50] + [10] * 5),
    ("B50-5", 100, [50] + [5] * 10), ("b0-4", 8, [2] * 4), ("B4-2", 8, [4, 2, 2])])
def test_protocols_split_the_classes(spec, k, sizes):
    assert parse_protocol(spec, k) == sizes
    assert sum(sizes) == k


@pytest.mark.parametrize("spec,k", [("B0-3", 100), ("B50-7", 100), ("B100-10", 100), ("B0-0", 10), ("10", 100),
                                    ("B0_10", 100)])
def test_bad_protocols_are_refused_with_the_reason(spec, k):
    with pytest.raises(InputError, match="--incremental"):
        parse_protocol(spec, k)


def test_the_default_order_is_the_permutation_pycil_and_facil_draw():
    np.random.seed(1993)
    expected = np.random.permutation(100).tolist()  # what those codebases do, global state and all
    assert class_order("seed:1993", 100) == expected
    assert class_order("seed:1993", 100)[:5] == [68, 56, 78, 8, 23]
    assert class_order("seed:1", 100) != expected
    assert sorted(class_order("seed:7", 100)) == list(range(100))


def test_sorted_explicit_and_coarse_orders():
    assert class_order("sorted", 6) == [0, 1, 2, 3, 4, 5]
    assert class_order("5,4,3,2,1,0", 6) == [5, 4, 3, 2, 1, 0]
    coarse = np.array([2, 0, 1, 0, 2, 1])  # superclass of each class
    order = class_order("coarse", 6, coarse)
    assert order == [1, 3, 2, 5, 0, 4]  # superclass 0 first, its classes in id order
    tasks = task_classes(order, parse_protocol("B0-3", 6))
    assert [{int(coarse[c]) for c in t} for t in tasks] == [{0}, {1}, {2}]  # each task one superclass
    with pytest.raises(InputError, match="each of the 6 class ids once"):
        class_order("0,1,2,3,4,4", 6)
    with pytest.raises(InputError, match="each of the 6 class ids once"):
        class_order("0,1,2,3,4", 6)
    with pytest.raises(InputError, match="coarse labels|superclasses"):
        class_order("coarse", 6)
    with pytest.raises(InputError, match="seed:N"):
        class_order("seed:x", 6)


def test_herding_picks_the_sample_that_brings_the_running_mean_closest_to_the_class_mean():
    # unit vectors at angles: the class mean points along 0 degrees
    angles = torch.tensor([0.0, 80.0, -80.0, 10.0, 60.0]) * math.pi / 180
    f = torch.stack([angles.cos(), angles.sin()], 1)
    mu = f.mean(0)
    # by hand: the first pick is the sample closest to mu; the second the one whose average
    # with it is closest to mu; and so on
    first = int((mu - f).norm(dim=1).argmin())
    second = min((i for i in range(5) if i != first), key=lambda i: float((mu - (f[first] + f[i]) / 2).norm()))
    picks = herding(f * torch.tensor([3.0, 3.0]), 5)  # scaled features: herding normalises them
    assert picks[:2].tolist() == [first, second]
    assert sorted(picks.tolist()) == [0, 1, 2, 3, 4]  # each sample once
    third = min((i for i in range(5) if i not in (first, second)),
                key=lambda i: float((mu - (f[first] + f[second] + f[i]) / 3).norm()))
    assert int(picks[2]) == third
    assert len(herding(f, 2)) == 2 and len(herding(f, 10)) == 5


def test_the_memory_stays_within_its_size_and_balanced_over_classes():
    mem = Memory(10)
    mem.add(0, torch.arange(0, 10))
    mem.add(1, torch.arange(100, 110))
    mem.shrink(4)  # room for 4 classes: 2 each, the first picks kept
    assert mem.by_class[0].tolist() == [0, 1] and mem.by_class[1].tolist() == [100, 101]
    mem.add(2, torch.arange(200, 202))
    mem.add(3, torch.arange(300, 302))
    assert len(mem) == 8 <= mem.size and mem.indices().tolist()[:2] == [0, 1]
    restored = Memory(0)
    restored.load_state_dict(mem.state_dict(), "cpu")
    assert restored.indices().tolist() == mem.indices().tolist() and restored.size == 10


def test_metrics_from_a_hand_made_accuracy_matrix():
    matrix = [[0.9],
              [0.6, 0.8],
              [0.5, 0.7, 0.85]]
    seen = [0.9, 0.7, 0.68]
    m = summarize(matrix, seen)
    assert m["average_incremental"] == pytest.approx((0.9 + 0.7 + 0.68) / 3)
    assert m["last"] == 0.68
    # forgetting: task 1 best 0.9 (before the last task) -> 0.5; task 2 best 0.8 -> 0.7
    assert m["forgetting"] == pytest.approx(((0.9 - 0.5) + (0.8 - 0.7)) / 2)
    # backward transfer: (0.5 - 0.9 + 0.7 - 0.8) / 2
    assert m["backward_transfer"] == pytest.approx(-0.25)
    single = summarize([[0.7]], [0.7])
    assert single["forgetting"] is None and single["average_incremental"] == 0.7


def test_the_order_study_separates_order_from_seed_spread():
    # three orders, two seeds each: orders differ by 10 points, seeds by +-1 point
    results = {"a": {0: 0.41, 1: 0.39}, "b": {0: 0.51, 1: 0.49}, "c": {0: 0.61, 1: 0.59}}
    s = order_study(results)
    assert s["mean"] == pytest.approx(0.5) and s["runs"] == 6 and s["orders"] == 3
    seed_var = (6 * 0.01 ** 2) / 3  # pooled within-order variance, 3 degrees of freedom
    assert s["seed_sd"] == pytest.approx(math.sqrt(seed_var))
    assert s["order_sd"] == pytest.approx(math.sqrt(0.01 - seed_var / 2))  # var of the means 0.01
    flat = order_study({"a": {0: 0.5, 1: 0.6}, "b": {0: 0.5, 1: 0.6}})  # orders alike: only seed noise
    assert flat["order_sd"] == 0.0 and flat["seed_sd"] > 0


def test_resnet32_is_the_small_cifar_resnet_of_the_literature():
    model = create_model("resnet32", 100)
    params = sum(p.numel() for p in model.parameters())
    assert 0.45e6 < params < 0.48e6
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d) and m.kernel_size == (3, 3)]
    assert len(convs) == 31  # 31 convolutions and the classifier: 32 layers
    assert model(torch.zeros(2, 3, 32, 32)).shape == (2, 100)
