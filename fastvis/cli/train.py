"""``fastvis-train``: time-budgeted training with a one-page report.

Also runs under torchrun: ``torchrun --nproc-per-node N -m fastvis.cli.train ...``, or
``fastvis-train --nproc-per-node N ...`` which starts torchrun itself.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

from . import run

STARTED = time.perf_counter()


def build_parser() -> argparse.ArgumentParser:
    from ..train.config import build_parser as config_parser

    p = config_parser("fastvis-train", "Train an image classifier inside a time budget; writes summary.json, "
                      "metrics.jsonl, curve.png, report.pdf, config.json and checkpoint.pt into --out.")
    p.add_argument("--list-models", action="store_true", default=False, help="print the model names and exit")
    return p


def _relaunch(argv: list[str], n: int) -> int:
    """Start ``n`` processes of this command through torchrun (minus the --nproc-per-node option)."""
    rest, skip = [], False
    for a in argv:
        if skip:
            skip = False
            continue
        if a == "--nproc-per-node":
            skip = True
            continue
        if a.startswith("--nproc-per-node="):
            continue
        rest.append(a)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={n}",
           "-m", "fastvis.cli.train", *rest]
    return subprocess.call(cmd)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser().parse_args(argv)
    if args.list_models:
        from ..models import list_models

        print("\n".join(list_models()))
        return 0

    def body() -> int:
        from ..train.budget import Clock
        from ..train.config import config_from_args

        cfg = config_from_args(args)
        n = cfg.speed.nproc_per_node
        if n > 1 and "WORLD_SIZE" not in os.environ:  # every process gets the same output folder
            return _relaunch([*argv, "--out", cfg.output.out] if "out" not in args else argv, n)
        from ..train.loop import train

        train(cfg, Clock(STARTED))
        return 0

    return run("fastvis-train", body)


if __name__ == "__main__":
    sys.exit(main())
