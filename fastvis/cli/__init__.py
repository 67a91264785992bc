"""Command-line tools: argument parsing only; the work is done by the library."""
from __future__ import annotations

import sys
from collections.abc import Callable

from .. import FastvisError
from ..beton import BetonError

USER_ERRORS = (FastvisError, BetonError, OSError)  # one line each; anything else keeps its traceback


def run(prog: str, body: Callable[[], int | None]) -> int:
    """Run a command body; user errors become one line on stderr and a non-zero status."""
    try:
        return body() or 0
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
    except USER_ERRORS as exc:
        text = str(exc) or type(exc).__name__
        if isinstance(exc, OSError) and exc.filename and str(exc.filename) not in text:
            text = f"{exc.filename}: {text}"
        print(f"{prog}: error: {text}", file=sys.stderr)
        return 1
