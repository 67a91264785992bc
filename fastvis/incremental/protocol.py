"""Which classes come when: the protocol (how many classes each task adds) and the class order.

Protocols, in the notation of the class-incremental literature:

- ``B0-T``: ``T`` tasks of equal size (CIFAR-100 ``B0-10``: 10 tasks of 10 classes);
- ``B<k>-<n>`` with ``k > 0``: a base task of ``k`` classes, then tasks of ``n`` classes
  (``B50-10``: 50 classes, then 5 tasks of 10).

Class orders (``--class-order``):

- ``seed:S``: ``numpy.random.seed(S)`` then a permutation of the class ids, the order PyCIL and
  FACIL draw, so that ``seed:1993`` (the default) gives the order their published numbers use;
- ``sorted``: the class ids in order;
- ``coarse``: the classes grouped by superclass (CIFAR-100's coarse labels, in the order of the
  superclass ids), so that tasks follow the superclasses;
- an explicit list of every class id, comma-separated.
"""
from __future__ import annotations

import re

import numpy as np

from .. import InputError
from ..beton import BetonReader

__all__ = ["DEFAULT_ORDER", "class_order", "parse_protocol", "superclasses", "task_classes"]

DEFAULT_ORDER = "seed:1993"


def parse_protocol(spec: str, num_classes: int) -> list[int]:
    """The number of classes each task adds."""
    m = re.fullmatch(r"[Bb](\d+)-(\d+)", spec.strip())
    if not m:
        raise InputError(f"--incremental {spec}: expected B0-T (T equal tasks) or B<k>-<n> (k classes, then tasks "
                         "of n), e.g. B0-10 or B50-10")
    base, n = int(m.group(1)), int(m.group(2))
    if n <= 0:
        raise InputError(f"--incremental {spec}: the second number must be at least 1")
    if base == 0:
        if num_classes % n:
            raise InputError(f"--incremental {spec}: {num_classes} classes do not split into {n} equal tasks")
        return [num_classes // n] * n
    if base >= num_classes or (num_classes - base) % n:
        raise InputError(f"--incremental {spec}: after a base task of {base} classes, the other "
                         f"{num_classes - base} of {num_classes} classes do not split into tasks of {n}")
    return [base] + [n] * ((num_classes - base) // n)


def class_order(spec: str, num_classes: int, coarse: np.ndarray | None = None) -> list[int]:
    """The class ids in the order the tasks take them. ``coarse[c]`` is the superclass of class
    ``c`` (for ``coarse``)."""
    spec = spec.strip()
    if spec.startswith("seed:"):
        try:
            seed = int(spec[5:])
        except ValueError:
            raise InputError(f"--class-order {spec}: expected seed:N") from None
        return [int(c) for c in np.random.RandomState(seed).permutation(num_classes)]
    if spec == "sorted":
        return list(range(num_classes))
    if spec == "coarse":
        if coarse is None:
            raise InputError("--class-order coarse needs superclasses (a CIFAR-100 file converted with fastvis, "
                             "which keeps its coarse labels)")
        return [int(c) for c in np.lexsort((np.arange(num_classes), np.asarray(coarse)))]
    try:
        order = [int(v) for v in spec.split(",")]
    except ValueError:
        raise InputError(f"--class-order {spec}: expected seed:N, sorted, coarse or a comma-separated list of "
                         "class ids") from None
    if sorted(order) != list(range(num_classes)):
        missing = sorted(set(range(num_classes)) - set(order))
        extra = sorted({c for c in order if not 0 <= c < num_classes} | {c for c in order if order.count(c) > 1})
        raise InputError(f"--class-order: the list must hold each of the {num_classes} class ids once "
                         f"(missing {missing[:5]}{'...' if len(missing) > 5 else ''}, wrong or repeated {extra[:5]})")
    return order


def task_classes(order: list[int], sizes: list[int]) -> list[list[int]]:
    """The class ids of each task."""
    out, start = [], 0
    for n in sizes:
        out.append(order[start:start + n])
        start += n
    return out


def superclasses(path, num_classes: int) -> np.ndarray:
    """The superclass of each class of a .beton file with a ``coarse_label`` field (CIFAR-100
    converted by fastvis)."""
    reader = BetonReader(path)
    if "coarse_label" not in reader.names:
        raise InputError(f"--class-order coarse: {path} has no coarse labels (superclasses)")
    fine, coarse = reader.labels(), reader.labels("coarse_label")
    out = np.zeros(num_classes, dtype=np.int64)
    for c in range(num_classes):
        members = coarse[fine == c]
        out[c] = members[0] if len(members) else 0
    return out
