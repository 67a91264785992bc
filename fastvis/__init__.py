"""fastvis: fast image-classifier training with the data path on the GPU."""

__version__ = "0.1.0"


class FastvisError(Exception):
    """A user-facing error (bad input, bad option): the command-line tools print it on one line."""
