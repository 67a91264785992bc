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

    Strict by default and the same for every source: bad inputs are all listed, and unless
    ``skip_bad`` the iteration ends with a :class:`SourceError` (so that the converter writes
    nothing); with ``skip_bad`` the rest is written.
    """

    kind: str = "source"
    fields: dict[str, Field]
    info: dict
    skip_bad: bool = False

    def __init__(self) -> None:
        self.skipped: list[tuple[str, str]] = []

    def check_bad(self, bad: list[tuple[str, str]], what: str = "bad input") -> None:
        """End of the samples: fail, naming the first bad input, unless ``skip_bad``."""
        if bad and not self.skip_bad:
            name, problem = bad[0]
            more = f" and {len(bad) - 1} more bad input(s)" if len(bad) > 1 else ""
            raise SourceError(f"{getattr(self, 'root', '')}: {name}: {what} ({problem}){more}; nothing written: "
                              "pass --skip-bad to write the rest")

    def __len__(self) -> int:
        raise NotImplementedError

    def __iter__(self) -> Iterator[tuple]:
        raise NotImplementedError

    @property
    def label_field(self) -> str | None:
        return "label" if "label" in self.fields else None
