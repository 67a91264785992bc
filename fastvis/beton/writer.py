"""Writing ``.beton`` files: one pass, constant memory (one page), atomic on success."""
from __future__ import annotations

import json
import os
import zlib
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from ..atomic import check_output, finish, remove_stale, temp_file, write_temp
from .fields import Field
from .format import (
    ALLOC_DTYPE,
    DEFAULT_PAGE_SIZE,
    FIELD_DESC_DTYPE,
    GUARD_DTYPE,
    HEADER_DTYPE,
    MAX_FIELDS,
    MAX_PAGE_SIZE,
    MIN_PAGE_SIZE,
    VERSION,
    align_up,
    encode_name,
    is_power_of_two,
    metadata_dtype,
)
from .integrity import guard_bytes, record_bytes
from .reader import sidecar_path

__all__ = ["BetonWriter"]


class BetonWriter:
    """Write samples into a ``.beton`` file.

    ``fields`` maps names to :class:`Field` objects (the order is the file's field order).
    ``capacity`` is an upper bound on the number of samples (the metadata table is reserved
    for it up front; fewer samples may be written, the header records the true count).

    The file is built under a temporary name in the same folder and renamed to ``path`` only
    when :meth:`close` succeeds (after an fsync), so an interrupted or failed write never
    leaves a file at ``path``. The file carries its own integrity record (a CRC-32 per sample and
    one of the header, see :mod:`.integrity`), in padding that FFCV's readers skip.
    Use it as a context manager: an exception inside the ``with``
    block discards the temporary file. Set :attr:`sidecar` (a JSON-able dict of dataset-level
    facts) before the file is closed, and its sidecar ``path.json`` (with the file's size added as
    ``beton_bytes``) is written to disk before either is renamed into place, so that the two
    appear together or, when the disk is full, not at all.

    >>> with BetonWriter("out.beton", {"image": RGBImageField(), "label": IntField()}, capacity=n) as w:
    ...     for img, y in samples:
    ...         w.write((img, y))
    """

    def __init__(
        self,
        path: str | os.PathLike,
        fields: Mapping[str, Field],
        capacity: int,
        page_size: int = DEFAULT_PAGE_SIZE,
    ):
        if not fields:
            raise ValueError("a .beton file needs at least one field")
        if len(fields) > MAX_FIELDS:
            raise ValueError(f"at most {MAX_FIELDS} fields")
        if not is_power_of_two(page_size) or not MIN_PAGE_SIZE <= page_size <= MAX_PAGE_SIZE:
            raise ValueError(
                f"page_size must be a power of two in [{MIN_PAGE_SIZE}, {MAX_PAGE_SIZE}], got {page_size}"
            )
        if capacity < 0:
            raise ValueError("capacity must be >= 0")
        self.path = Path(path)
        self.sidecar: dict | None = None
        self.names = list(fields)
        self.fields = [fields[n] for n in self.names]
        for name, field in zip(self.names, self.fields):
            if not isinstance(field, Field):
                raise TypeError(f"field {name!r} is {field!r}, not a fastvis.beton Field")
            encode_name(name)  # validates length and ASCII
        self.capacity = int(capacity)
        self.page_size = int(page_size)
        self.meta_dtype = metadata_dtype([f.metadata_dtype for f in self.fields])
        self._meta = np.zeros(self.capacity, self.meta_dtype)
        self._crc = np.zeros(self.capacity, np.uint32)
        self._allocs: list[tuple[int, int, int]] = []
        self._count = 0
        self._closed = False

        self._meta_start = HEADER_DTYPE.itemsize + FIELD_DESC_DTYPE.itemsize * len(self.fields)
        # the metadata table, then (ending where the pages begin) the integrity record: 4 bytes a sample
        meta_end = self._meta_start + self.meta_dtype.itemsize * self.capacity
        self._data_start = align_up(meta_end + 4 * self.capacity + GUARD_DTYPE.itemsize, self.page_size)
        self._page = np.zeros(self.page_size, np.uint8)
        self._page_index = -1  # no page open yet
        self._page_used = 0

        check_output(self.path)  # before any work: not a device, a FIFO or a folder
        remove_stale(self.path)  # temporaries of killed writers of this file
        self._fp, self._tmp_path = temp_file(self.path)
        try:
            self._fp.write(bytes(self._data_start))  # header, descriptors, metadata: filled in at close
        except BaseException:
            self.abort()
            raise

    # -- public --------------------------------------------------------------------------
    def __len__(self) -> int:
        return self._count

    def __enter__(self) -> "BetonWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()

    def write(self, sample) -> int:
        """Append one sample (a tuple in field order, or a dict by name); returns its index."""
        if self._closed:
            raise ValueError("write() on a closed BetonWriter")
        if self._count >= self.capacity:
            raise ValueError(f"more samples than the capacity ({self.capacity}) given to BetonWriter")
        if isinstance(sample, Mapping):
            values = [sample[n] for n in self.names]
        else:
            values = list(sample)
            if len(values) != len(self.fields):
                raise ValueError(f"sample has {len(values)} values, the file has {len(self.fields)} fields")

        encoded = []
        total = 0
        for name, field, value in zip(self.names, self.fields, values):
            try:
                payload, partial = field.encode(value)
            except (TypeError, ValueError) as exc:
                raise ValueError(f"field {name!r} of sample {self._count}: {exc}") from None
            encoded.append((payload, partial))
            if payload is not None:
                total += len(payload)
        if total > self.page_size:
            raise ValueError(
                f"sample {self._count} takes {total} bytes, more than a page ({self.page_size}); "
                "use a larger page_size"
            )
        has_payload = any(payload is not None for payload, _ in encoded)
        if has_payload and (self._page_index < 0 or self._page_used + total > self.page_size):
            self._next_page()  # (scalar-only samples need no page: a file of them has none)

        index = self._count
        record = []
        crc = 0
        for field, (payload, partial) in zip(self.fields, encoded):
            if payload is None:
                record.append(field.make_meta(partial, 0, 0))
                continue
            n = len(payload)
            ptr = self._data_start + self._page_index * self.page_size + self._page_used
            self._page[self._page_used : self._page_used + n] = payload
            crc = zlib.crc32(self._page[self._page_used : self._page_used + n], crc)
            self._page_used += n
            self._allocs.append((index, ptr, n))
            record.append(field.make_meta(partial, ptr, n))
        self._meta[index] = tuple(record)
        self._crc[index] = zlib.crc32(record_bytes(self._meta[index : index + 1]), crc)
        self._count += 1
        return index

    def close(self) -> Path:
        """Finish the file: flush the last page, write tables and header, fsync, rename."""
        if self._closed:
            return self.path
        side_tmp = None
        try:
            if self._page_index >= 0:
                self._flush_page()
            fp = self._fp
            fp.seek(0, os.SEEK_END)
            alloc_ptr = fp.tell()
            fp.write(np.array(self._allocs, dtype=ALLOC_DTYPE).tobytes())

            header = np.zeros(1, HEADER_DTYPE)
            header["version"] = VERSION
            header["num_fields"] = len(self.fields)
            header["page_size"] = self.page_size
            header["num_samples"] = self._count
            header["alloc_table_ptr"] = alloc_ptr
            desc = np.zeros(len(self.fields), FIELD_DESC_DTYPE)
            for i, (name, field) in enumerate(zip(self.names, self.fields)):
                desc[i]["type_id"] = field.type_id
                desc[i]["name"] = encode_name(name)
                desc[i]["arguments"] = field.to_args()
            head = header.tobytes() + desc.tobytes()
            guard = guard_bytes(self._crc[: self._count], head, self._count, len(self.fields))
            fp.seek(0)
            fp.write(head)
            fp.write(self._meta[: self._count].tobytes())
            fp.seek(self._data_start - len(guard))
            fp.write(guard)
            fp.flush()
            os.fsync(fp.fileno())
            fp.close()
            if self.sidecar is not None:  # on disk before either is renamed: a full disk leaves both as they were
                side = check_output(sidecar_path(self.path))
                info = dict(self.sidecar, beton_bytes=self._tmp_path.stat().st_size)
                side_tmp = write_temp(side, json.dumps(info, indent=1))
            finish(self._tmp_path, self.path, 0o666 & ~_umask())
            if side_tmp is not None:
                finish(side_tmp, side, 0o666 & ~_umask())
        except BaseException:
            if side_tmp is not None:
                side_tmp.unlink(missing_ok=True)
            self.abort()
            raise
        self._closed = True
        return self.path

    def abort(self) -> None:
        """Discard everything written so far; ``path`` is left as it was."""
        self._closed = True
        try:
            self._fp.close()
        finally:
            self._tmp_path.unlink(missing_ok=True)

    # -- pages ---------------------------------------------------------------------------
    def _next_page(self) -> None:
        if self._page_index >= 0:
            self._flush_page()
        self._page_index += 1
        self._page_used = 0

    def _flush_page(self) -> None:
        # Whole pages are written (zero padded), as FFCV's page-based readers expect.
        self._page[self._page_used :] = 0
        self._fp.seek(self._data_start + self._page_index * self.page_size)
        self._fp.write(self._page.data)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
