"""Downloads into a cache folder: progress bar, retries, md5 check, atomic rename."""
from __future__ import annotations

import errno
import hashlib
import os
import socket
import time
import urllib.error
import urllib.request
from pathlib import Path

from .base import SourceError

CHUNK = 1 << 20


def cache_dir() -> Path:
    """``$FASTVIS_CACHE``, else ``$XDG_CACHE_HOME/fastvis``, else ``~/.cache/fastvis``."""
    env = os.environ.get("FASTVIS_CACHE")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "fastvis"


def md5sum(path: str | os.PathLike) -> str:
    h = hashlib.md5()
    with open(path, "rb") as fp:
        for block in iter(lambda: fp.read(CHUNK), b""):
            h.update(block)
    return h.hexdigest()


def check_md5(path: str | os.PathLike, expected: str, hint: str = "") -> None:
    got = md5sum(path)
    if got != expected:
        raise SourceError(
            f"{path}: md5 mismatch (expected {expected}, got {got}): the file is corrupt, incomplete "
            f"or not the official one{hint}"
        )


def _offline(exc: Exception) -> bool:
    reason = getattr(exc, "reason", exc)
    return isinstance(reason, socket.gaierror) or getattr(reason, "errno", None) in (errno.ENETUNREACH,
                                                                                     errno.EHOSTUNREACH)


def download(
    url: str,
    dest: str | os.PathLike,
    md5: str | None = None,
    retries: int = 3,
    backoff: float = 1.0,
    progress: bool = True,
    timeout: float = 60.0,
) -> Path:
    """Fetch ``url`` into ``dest`` (through ``dest.part``), verify ``md5``, then rename.

    Network errors are retried ``retries`` times with exponential backoff; an md5 mismatch is
    not retried (it is reported). Nothing is left at ``dest`` unless the whole file arrived
    and matched.
    """
    from tqdm.auto import tqdm

    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    last_error: Exception | None = None
    for attempt in range(retries + 1):
        if attempt:
            time.sleep(backoff * 2 ** (attempt - 1))
        try:
            with urllib.request.urlopen(url, timeout=timeout) as resp, open(part, "wb") as out:
                total = int(resp.headers.get("Content-Length") or 0) or None
                with tqdm(total=total, unit="B", unit_scale=True, desc=dest.name, disable=not progress) as bar:
                    while True:
                        block = resp.read(CHUNK)
                        if not block:
                            break
                        out.write(block)
                        bar.update(len(block))
                if total is not None and out.tell() != total:
                    raise urllib.error.ContentTooShortError(
                        f"got {out.tell()} of {total} bytes", None  # type: ignore[arg-type]
                    )
            break
        except (urllib.error.URLError, OSError, TimeoutError) as exc:
            last_error = exc
            part.unlink(missing_ok=True)
            if _offline(exc):  # no name resolution or no route: retrying will not help
                raise SourceError(f"cannot download {url}: no network ({getattr(exc, 'reason', exc)})") from None
    else:
        raise SourceError(f"cannot download {url} after {retries + 1} attempts: {last_error}")
    try:
        if md5 is not None:
            check_md5(part, md5)
    except SourceError:
        part.unlink(missing_ok=True)
        raise SourceError(f"{url}: downloaded file does not match its md5 {md5}; nothing was kept") from None
    os.replace(part, dest)
    return dest
