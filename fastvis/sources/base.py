"""What every source gives the converter."""
from __future__ import annotations

import unicodedata
from collections.abc import Iterator

from .. import FastvisError
from ..beton import Field


class SourceError(FastvisError):
    """A source (archive, folder, download) is missing, corrupt or not what it claims to be."""


MAX_FILE_BYTES = 256 << 20  # one image file or archive member; larger ones are bad inputs, never read


class Oversized(ValueError):
    """A file or archive member larger than the bound on what is read into memory at once."""

    def __init__(self, size: int, limit: int):
        super().__init__(f"{size / 2**20:,.1f} MiB, more than the {limit / 2**20:,.0f} MiB read for one file")
        self.size, self.limit = size, limit


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

    def check_classes(self, counts: dict[int, int]) -> None:
        """End of the samples: every class got samples. A class whose every file was bad would
        otherwise stay in the class list with no sample (or, left out, shift the ids of the
        others), so it is an error, ``skip_bad`` or not."""
        classes = self.info.get("classes") or []
        empty = [c for i, c in enumerate(classes) if not counts.get(i)]
        if empty:
            raise SourceError(f"{getattr(self, 'root', '')}: class(es) {empty} have no readable sample (every file of "
                              "theirs was bad); nothing written: fix those files, or leave the class out")

    def note_spellings(self, classes: list[str]) -> None:
        """A note for class names that differ only in case, spaces or Unicode normalisation ('Defect'
        and 'defect'; 'café' with one code point for the 'é' or two, as macOS writes file names):
        most likely one class spelt two ways."""
        seen: dict[str, str] = {}
        for c in classes:
            key = unicodedata.normalize("NFC", str(c)).strip().casefold()
            if key in seen:
                how = "case or spaces"
                if unicodedata.normalize("NFC", str(c)) == unicodedata.normalize("NFC", str(seen[key])):
                    how = f"Unicode normalisation ({ascii(seen[key])} and {ascii(c)})"
                self.info.setdefault("notes", []).append(
                    f"classes {seen[key]!r} and {c!r} differ only in {how}: two classes, as written")
            seen.setdefault(key, c)

    def __len__(self) -> int:
        raise NotImplementedError

    def __iter__(self) -> Iterator[tuple]:
        raise NotImplementedError

    @property
    def label_field(self) -> str | None:
        return "label" if "label" in self.fields else None
