"""Classification metrics beyond top-1: what a user with few, unbalanced classes (defect vs
normal) needs to trust a number.

:class:`Tally` accumulates an evaluation batch by batch (the confusion matrix, and for two
classes the positive class's probability of every sample) and :meth:`Tally.result` turns it
into per-class precision and recall, balanced accuracy (the mean recall over the classes
present), and for two classes the ROC AUC and the recall at a fixed false-alarm rate. The
functions work on plain arrays so that they can be checked on hand-made numbers.
"""
from __future__ import annotations

import numpy as np
import torch

__all__ = ["METRICS", "Tally", "balanced_accuracy", "class_metrics", "positive_class", "recall_at_fpr", "roc_auc"]

# what --metric may track (and fastvis-ablate compare): larger is better for all of them
METRICS = ("top1", "top5", "balanced_accuracy", "auc")
FALSE_ALARM_RATE = 0.05  # not tuning: the false-alarm rate at which the defect recall is reported
DETAIL_CLASSES = 20  # not tuning: per-class numbers and the confusion matrix in every row up to this many classes


def class_metrics(confusion: np.ndarray) -> dict:
    """Per-class precision, recall and support of a confusion matrix (rows: true class, columns:
    predicted). A class never predicted has precision None; a class absent has recall None."""
    c = np.asarray(confusion, dtype=np.float64)
    support, predicted, hits = c.sum(1), c.sum(0), np.diag(c)
    precision = [float(h / p) if p else None for h, p in zip(hits, predicted)]
    recall = [float(h / s) if s else None for h, s in zip(hits, support)]
    return {"precision": precision, "recall": recall, "support": [int(s) for s in support]}


def balanced_accuracy(confusion: np.ndarray) -> float:
    """The mean recall over the classes that have samples (chance level: 1 / classes present)."""
    c = np.asarray(confusion, dtype=np.float64)
    support = c.sum(1)
    present = support > 0
    if not present.any():
        return float("nan")
    return float((np.diag(c)[present] / support[present]).mean())


def roc_auc(scores: np.ndarray, positive: np.ndarray) -> float | None:
    """The area under the ROC curve: the chance that a random positive scores above a random
    negative (ties count half). None without both positives and negatives."""
    s, p = np.asarray(scores, np.float64), np.asarray(positive, bool)
    n_pos, n_neg = int(p.sum()), int((~p).sum())
    if n_pos == 0 or n_neg == 0:
        return None
    order = np.argsort(s, kind="mergesort")
    ranks = np.empty(len(s), np.float64)
    sorted_s = s[order]
    # average ranks over ties (1-based)
    start = 0
    for end in np.append(np.nonzero(np.diff(sorted_s))[0] + 1, len(s)):
        ranks[order[start:end]] = (start + 1 + end) / 2
        start = end
    return float((ranks[p].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def recall_at_fpr(scores: np.ndarray, positive: np.ndarray, fpr: float = FALSE_ALARM_RATE) -> float | None:
    """The share of positives found when the threshold lets at most ``fpr`` of the negatives
    through (a sample is called positive when its score is strictly above the threshold)."""
    s, p = np.asarray(scores, np.float64), np.asarray(positive, bool)
    neg = np.sort(s[~p])[::-1]
    if p.sum() == 0 or len(neg) == 0:
        return None
    allowed = int(np.floor(fpr * len(neg) + 1e-9))  # false alarms allowed
    if allowed >= len(neg):
        return 1.0
    return float((s[p] > neg[allowed]).mean())


class Tally:
    """One evaluation, accumulated batch by batch on the device."""

    def __init__(self, num_classes: int, device, positive: int | None = None):
        self.k = num_classes
        self.confusion = torch.zeros(num_classes * num_classes, dtype=torch.int64, device=device)
        self.positive = positive if num_classes == 2 else None
        self.scores: list[torch.Tensor] = []
        self.labels: list[torch.Tensor] = []

    def add(self, logits: torch.Tensor, labels: torch.Tensor) -> None:
        pred = logits.argmax(1)
        self.confusion += torch.bincount(labels * self.k + pred, minlength=self.k * self.k)
        if self.positive is not None:
            self.scores.append(logits.float().softmax(1)[:, self.positive].cpu())
            self.labels.append(labels.cpu())

    def gathered(self, total=None, concat=None) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
        """(confusion, scores, labels) over all processes: ``total`` sums a list of numbers over
        the processes and ``concat`` concatenates an array over them (identity by default)."""
        total = total or (lambda v: v)
        concat = concat or (lambda a: a)
        conf = np.asarray(total([float(v) for v in self.confusion.tolist()]), np.float64)
        conf = conf.reshape(self.k, self.k).round().astype(np.int64)
        if self.positive is None:
            return conf, None, None
        scores = torch.cat(self.scores).numpy() if self.scores else np.zeros(0)
        labels = torch.cat(self.labels).numpy() if self.labels else np.zeros(0, np.int64)
        return conf, concat(scores), concat(labels)

    def result(self, total=None, concat=None) -> dict:
        """balanced_accuracy, per_class, confusion; for two classes auc and recall_at_fpr (the
        positive class's recall at FALSE_ALARM_RATE) too."""
        conf, scores, labels = self.gathered(total, concat)
        out = {"balanced_accuracy": balanced_accuracy(conf), "per_class": class_metrics(conf),
               "confusion": conf.tolist()}
        if scores is not None:
            pos = labels == self.positive
            out["auc"] = roc_auc(scores, pos)
            out["recall_at_fpr"] = recall_at_fpr(scores, pos)
        return out


def positive_class(classes: list[str], num_classes: int, asked: str | None = None) -> int | None:
    """The class whose recall and AUC are reported for two-class data: ``asked`` (a name or an
    index, as --defect-class), else the class named 'defect', else class 1."""
    if asked is not None:  # refused when it names no class, whatever the number of classes
        from ..augment.defects import class_index  # not at import: defects pulls in the numba kernels

        index = class_index(classes, num_classes, asked)
        return index if num_classes == 2 else None
    if num_classes != 2:
        return None
    return classes.index("defect") if "defect" in classes else 1
