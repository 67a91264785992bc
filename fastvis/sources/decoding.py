"""Decoding many images on worker threads within a memory bound: the decoded pixels held at once,
granted in file order, memory given back after a large image, results in order with a bounded
look-ahead."""
from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

__all__ = ["MAX_PIXELS_HELD", "TRIM_PIXELS", "PixelBudget", "Stopped", "give_back_memory", "ordered_map"]

#: decoded pixels the workers hold at once, from decoding to the writer (64 M: 192 MB of RGB); an
#: image larger than this is decoded alone. Eight 6000x6000 PNGs took 2.3 GB to convert without it.
MAX_PIXELS_HELD = 64_000_000


def give_back_memory() -> None:
    """Return freed memory to the system (glibc's malloc_trim; elsewhere nothing). Each decoding
    thread allocates from its own malloc arena, which keeps a large image's memory after it is
    freed: eight 6000x6000 PNGs decoded by eight threads held 1 GB where one thread held 0.19."""
    global _TRIM
    if _TRIM is None:
        try:
            import ctypes

            _TRIM = ctypes.CDLL(None).malloc_trim
        except (OSError, AttributeError):
            _TRIM = False
    if _TRIM:
        _TRIM(0)


_TRIM = None
TRIM_PIXELS = 1_000_000  # images at least this large give their memory back when decoded


class Stopped(Exception):
    pass


class PixelBudget:
    """Decoded pixels held at once, granted in the order the images are asked for (so that the
    image the writer waits for is never kept waiting by those after it): each ticket takes its
    share once (0 for a file that failed before its size was known) and gives it back when the
    writer has it."""

    def __init__(self, limit: int):
        self.limit, self.used, self.turn, self.closed = limit, 0, 0, False
        self.cond = threading.Condition()

    def take(self, ticket: int, pixels: int) -> int:
        """Wait for the turn of ``ticket`` and room for ``pixels``; :class:`Stopped` once closed."""
        pixels = min(pixels, self.limit)
        with self.cond:
            self.cond.wait_for(lambda: self.closed or (self.turn == ticket and self.used + pixels <= self.limit))
            if self.closed:
                raise Stopped
            self.used += pixels
            self.turn += 1
            self.cond.notify_all()
        return pixels

    def give(self, pixels: int) -> None:
        with self.cond:
            self.used -= pixels
            self.cond.notify_all()

    def close(self) -> None:
        """The writer stopped early (or is done): images not yet decoded are not decoded."""
        with self.cond:
            self.closed = True
            self.cond.notify_all()


def ordered_map(pool: ThreadPoolExecutor, fn, items, depth: int):
    """``pool.map`` with bounded look-ahead (the input may be a large lazy stream)."""
    from collections import deque

    pending: deque = deque()
    for item in items:
        pending.append(pool.submit(fn, item))
        if len(pending) >= depth:
            yield pending.popleft().result()
    while pending:
        yield pending.popleft().result()
