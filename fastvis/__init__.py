"""fastvis: fast image-classifier training with the data path on the GPU."""

__version__ = "0.1.0"


class FastvisError(Exception):
    """A user-facing error (bad input, bad option): the command-line tools print it on one line.
    Anything else that escapes a command is an internal error and keeps its traceback."""


class InputError(FastvisError, ValueError):
    """Bad input data or a bad option value (also a ValueError, for library callers)."""
