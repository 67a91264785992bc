"""What every source gives the converter."""
from __future__ import annotations

from collections.abc import Iterator

from .. import FastvisError
from ..beton import Field


class SourceError(FastvisError):
    """A source (archive, folder, download) is missing, corrupt or not what it claims to be."""


class Source:
    """A dataset to convert: a fixed field layout and an iterator of samples in field order.

    ``len(source)`` is an upper bound on the samples it yields (sources that skip bad files
    may yield fewer); ``info`` is what goes into the JSON sidecar (class names, split, origin);
    ``skipped`` lists ``(name, problem)`` for every input left out.
    """

    kind: str = "source"
    fields: dict[str, Field]
    info: dict

    def __init__(self) -> None:
        self.skipped: list[tuple[str, str]] = []

    def __len__(self) -> int:
        raise NotImplementedError

    def __iter__(self) -> Iterator[tuple]:
        raise NotImplementedError

    @property
    def label_field(self) -> str | None:
        return "label" if "label" in self.fields else None
