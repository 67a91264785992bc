"""The metrics beyond top-1 on hand-made numbers, and class alignment of a validation file by name."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from fastvis import FastvisError
from fastvis.loader import ResidentDataset
from fastvis.train.data import align_classes
from fastvis.train.metrics import Tally, balanced_accuracy, class_metrics, positive_class, recall_at_fpr, roc_auc


def test_per_class_precision_recall_and_balanced_accuracy_of_a_confusion_matrix():
    conf = np.array([[8, 2, 0], [1, 3, 0], [0, 0, 0]])  # rows: true class; class 2 absent and never predicted
    m = class_metrics(conf)
    assert m["precision"][:2] == pytest.approx([8 / 9, 3 / 5]) and m["precision"][2] is None
    assert m["recall"][:2] == pytest.approx([0.8, 0.75]) and m["recall"][2] is None
    assert m["support"] == [10, 4, 0]
    assert balanced_accuracy(conf) == pytest.approx((0.8 + 0.75) / 2)  # over the classes present
    # a model that always answers the majority class: 90% top-1, 50% balanced
    assert balanced_accuracy(np.array([[90, 0], [10, 0]])) == pytest.approx(0.5)


def test_roc_auc_counts_ordered_pairs_and_half_ties():
    scores = np.array([0.9, 0.8, 0.7, 0.6, 0.5])
    pos = np.array([1, 0, 1, 0, 0], bool)
    assert roc_auc(scores, pos) == pytest.approx(5 / 6)
    assert roc_auc(np.array([0.5, 0.5]), np.array([True, False])) == pytest.approx(0.5)
    assert roc_auc(np.array([0.1, 0.2, 0.3]), np.array([True, True, False])) == pytest.approx(0.0)
    assert roc_auc(scores, np.zeros(5, bool)) is None  # one class only: undefined


def test_recall_at_a_false_alarm_rate():
    neg = np.arange(20) / 20  # 0.00 .. 0.95
    pos = np.array([0.99, 0.92, 0.91, 0.5])
    scores, labels = np.concatenate([neg, pos]), np.r_[np.zeros(20, bool), np.ones(4, bool)]
    # 5% of 20 negatives: one false alarm allowed, so the threshold is the second-highest negative (0.90)
    assert recall_at_fpr(scores, labels, 0.05) == pytest.approx(3 / 4)
    assert recall_at_fpr(scores, labels, 0.0) == pytest.approx(1 / 4)  # above every negative (0.95)
    assert recall_at_fpr(scores, labels, 1.0) == pytest.approx(1.0)


def test_tally_accumulates_batches_into_the_same_numbers():
    torch.manual_seed(0)
    logits, labels = torch.randn(50, 2), torch.randint(0, 2, (50,))
    tally = Tally(2, "cpu", positive=1)
    for s in range(0, 50, 16):
        tally.add(logits[s : s + 16], labels[s : s + 16])
    r = tally.result()
    conf = np.zeros((2, 2), int)
    for t, p in zip(labels.tolist(), logits.argmax(1).tolist()):
        conf[t, p] += 1
    assert r["confusion"] == conf.tolist()
    assert r["balanced_accuracy"] == pytest.approx(balanced_accuracy(conf))
    assert r["auc"] == pytest.approx(roc_auc(logits.softmax(1)[:, 1].numpy(), labels.numpy() == 1))
    assert "auc" not in Tally(3, "cpu", positive=1).result()  # AUC for two classes only


def test_the_positive_class_is_the_defect_class():
    assert positive_class(["defect", "normal"], 2) == 0
    assert positive_class(["ok", "bad"], 2, "bad") == 1
    assert positive_class(["a", "b"], 2) == 1
    assert positive_class(["a", "b", "c"], 3) is None


def _ds(classes, labels):
    labels = torch.tensor(labels)
    return ResidentDataset(torch.zeros(len(labels), 1, 2, 2, dtype=torch.uint8), labels, len(classes), classes)


def test_validation_labels_are_mapped_by_class_name():
    normals = _ds(["normal"], [0, 0, 0])  # a normal-only file: its class 0 is the training set's 1
    align_classes(normals, ["defect", "normal"], "val.beton")
    assert normals.labels.tolist() == [1, 1, 1] and normals.classes == ["defect", "normal"]
    swapped = _ds(["normal", "defect"], [0, 1, 1])
    align_classes(swapped, ["defect", "normal"], "val.beton")
    assert swapped.labels.tolist() == [1, 0, 0]
    same = _ds(["defect", "normal"], [0, 1])
    align_classes(same, ["defect", "normal"], "val.beton")
    assert same.labels.tolist() == [0, 1]
    unnamed = _ds([], [1, 0])  # no names: the ids stand
    align_classes(unnamed, ["defect", "normal"], "val.beton")
    assert unnamed.labels.tolist() == [1, 0]


def test_unknown_or_misspelt_validation_classes_are_refused():
    with pytest.raises(FastvisError, match=r"val.beton: classes \['Defect'\].*spelled differently: 'Defect' vs "
                                           r"'defect'"):
        align_classes(_ds(["Defect", "normal"], [0, 1]), ["defect", "normal"], "val.beton")
    with pytest.raises(FastvisError, match=r"classes \['crack'\] are not among"):
        align_classes(_ds(["crack", "normal"], [0, 1]), ["defect", "normal"], "val.beton")
    # a listed but unused class name does not matter
    ok = _ds(["normal", "crack"], [0, 0])
    align_classes(ok, ["defect", "normal"], "val.beton")
    assert ok.labels.tolist() == [1, 1]
