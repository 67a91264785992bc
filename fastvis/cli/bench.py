"""``fastvis-bench``: not built yet in this version (its issue is open)."""
from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="fastvis-bench", description="Benchmarks (not built yet; see bench/ for the scripts).")
    p.parse_args(argv)
    print("fastvis-bench: not built yet in this version of fastvis", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
