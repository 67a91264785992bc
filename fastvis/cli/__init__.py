"""Command-line tools: argument parsing only; the work is done by the library."""
from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Callable

from .. import FastvisError
from ..beton import BetonError

USER_ERRORS = (FastvisError, BetonError, OSError)  # one line each; anything else keeps its traceback


class Terminated(BaseException):
    """SIGTERM or SIGHUP: unwinds like Ctrl-C, so that temporaries are removed on the way out."""


def _terminate(signum, frame):
    raise Terminated(signum)


def run(prog: str, body: Callable[[], int | None]) -> int:
    """Run a command body; user errors become one line on stderr and a non-zero status. SIGTERM
    and SIGHUP stop it as Ctrl-C does: outputs are left as they were, temporaries removed."""
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, _terminate)
    try:
        return body() or 0
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
    except Terminated as exc:
        signum = exc.args[0]
        print(f"{prog}: stopped by {signal.Signals(signum).name}", file=sys.stderr)
        return 128 + signum
    except USER_ERRORS as exc:
        text = str(exc) or type(exc).__name__
        if isinstance(exc, OSError) and exc.filename and str(exc.filename) not in text:
            text = f"{exc.filename}: {text}"
        sys.stderr.write(f"{prog}: error: {text}\n")  # one write: the processes of a DDP run share the stream
        sys.stderr.flush()
        return 1
