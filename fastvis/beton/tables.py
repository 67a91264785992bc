"""The structural checks of a .beton's allocation table and of the payload pointers of each
field: every pointer lies in an allocation of its own sample, of the size its metadata says, in
one page, inside the data pages (so that a damaged file never yields out-of-bounds reads or
another sample's bytes)."""
from __future__ import annotations

import numpy as np

__all__ = ["payload_tables"]


def payload_tables(names, fields, meta, alloc, alloc_ptr: int, meta_end: int, page_size: int, num_samples: int):
    """``(pointers, sizes)``: per field, the payload offset and size of each sample (None for
    scalar fields), after checking them against the allocation table; ``ValueError`` saying
    what is wrong otherwise."""
    a_ptr = alloc["ptr"].astype(np.int64)
    a_size = alloc["size"].astype(np.int64)
    if len(alloc):
        if (alloc["ptr"] > np.uint64(alloc_ptr)).any() or (alloc["size"] > np.uint64(alloc_ptr)).any():
            raise ValueError("allocation table points past the end of the data")
        end = a_ptr + a_size
        if (a_ptr < meta_end).any() or (end > alloc_ptr).any():
            raise ValueError("allocation table points outside the data pages")
        last = np.maximum(end - 1, a_ptr)
        if ((a_ptr // page_size) != (last // page_size)).any():
            raise ValueError("an allocation straddles two pages")
        if (alloc["sample_id"] >= np.uint64(max(num_samples, 1))).any():
            raise ValueError("allocation table names a sample that does not exist")
    order = np.lexsort((a_size, a_ptr))
    a_ptr, a_size = a_ptr[order], a_size[order]
    a_sid = alloc["sample_id"].astype(np.int64)[order]

    all_ptrs: list[np.ndarray | None] = []
    all_sizes: list[np.ndarray | None] = []
    for j, (name, field) in enumerate(zip(names, fields)):
        col = meta[f"f{j}"]
        problem = field.check_meta(col)
        if problem:
            raise ValueError(f"field {name!r}: {problem}")
        ptrs = field.pointers(col)
        if ptrs is None:
            all_ptrs.append(None)
            all_sizes.append(None)
            continue
        if (ptrs > np.uint64(alloc_ptr)).any():
            raise ValueError(f"field {name!r}: a data pointer lies past the end of the data")
        ptrs = ptrs.astype(np.int64)
        sizes = field.payload_sizes(col)
        idx = np.searchsorted(a_ptr, ptrs, side="left")
        inside = idx < len(a_ptr)
        idx_c = np.minimum(idx, max(len(a_ptr) - 1, 0))
        if len(ptrs) and (len(a_ptr) == 0 or not (inside & (a_ptr[idx_c] == ptrs)).all()):
            raise ValueError(f"field {name!r}: a data pointer matches no allocation (corrupt metadata)")
        known = sizes >= 0
        if len(ptrs) == 0:
            all_ptrs.append(ptrs)
            all_sizes.append(sizes)
            continue
        match = a_size[idx_c] == sizes
        # zero-size payloads share their pointer with the next allocation: look one further
        nxt = np.minimum(idx_c + 1, len(a_ptr) - 1)
        match |= (a_ptr[nxt] == ptrs) & (a_size[nxt] == sizes)
        if (known & ~match).any():
            i = int(np.flatnonzero(known & ~match)[0])
            raise ValueError(
                f"field {name!r}: sample {i} should hold {int(sizes[i])} bytes, "
                f"its allocation holds {int(a_size[idx_c[i]])}"
            )
        # every pointer lies in an allocation of its own sample: a flipped pointer that lands on
        # another sample's data would otherwise return that sample's pixels as this one's
        use_next = ~(a_size[idx_c] == sizes) & (a_ptr[nxt] == ptrs) & (a_size[nxt] == sizes)
        owner = np.where(use_next, a_sid[nxt], a_sid[idx_c])
        stray = owner != np.arange(len(ptrs))
        if stray.any():
            i = int(np.flatnonzero(stray)[0])
            raise ValueError(f"field {name!r}: sample {i} points into the data of sample {int(owner[i])} "
                             "(corrupt metadata)")
        sizes = np.where(known, sizes, a_size[idx_c])
        all_ptrs.append(ptrs)
        all_sizes.append(sizes)
    return all_ptrs, all_sizes
