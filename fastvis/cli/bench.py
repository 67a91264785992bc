"""``fastvis-bench beton|augment|loader|poisson|train|baseline [options]``: run a benchmark, print its table."""
from __future__ import annotations

import importlib
import sys


def main(argv: list[str] | None = None) -> int:
    from ..bench import COMMANDS

    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in COMMANDS:
        lines = [f"  {name:10s} {text}" for name, (_, text) in COMMANDS.items()]
        print("usage: fastvis-bench {" + ",".join(COMMANDS) + "} [options]\n\nbenchmarks:\n" + "\n".join(lines)
              + "\n\n'fastvis-bench NAME --help' lists the options of one.")
        return 0 if argv and argv[0] in ("-h", "--help") else 2
    module = importlib.import_module(COMMANDS[argv[0]][0])
    module.main(argv[1:], prog=f"fastvis-bench {argv[0]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
