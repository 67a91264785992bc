"""``fastvis-train``: time-budgeted training with a one-page report.

Also runs under torchrun: ``torchrun --nproc-per-node N -m fastvis.cli.train ...``, or
``fastvis-train --nproc-per-node N ...`` which starts torchrun itself.
"""
from __future__ import annotations

import argparse
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

from .. import InputError
from . import run

STARTED = time.perf_counter()


def build_parser() -> argparse.ArgumentParser:
    from ..train.config import build_parser as config_parser

    p = config_parser("fastvis-train", "Train an image classifier inside a time budget; writes summary.json, "
                      "metrics.jsonl, curve.png, report.pdf, config.json and checkpoint.pt into --out.")
    p.add_argument("--list-models", action="store_true", default=False, help="print the model names and exit")
    p.add_argument("--recipe", action="store_true", default=False, help="print the recipe (every default the trainer "
                   "derives, with its unit, reason and evidence) and exit")
    g = p.add_argument_group("ablation after the run (see fastvis-ablate)")
    g.add_argument("--ablate", metavar="VARIANTS", default=None,
                   help="then measure variants of this run over seeds: -tta,-label-smoothing removes a component, "
                   "cutmix=1.0 sets an option; results in OUT/ablation/ and on the report")
    g.add_argument("--ablate-seeds", type=int, default=3, metavar="S", help="seeds of the ablation (default 3)")
    g.add_argument("--ablate-within-budget", action="store_true", default=False,
                   help="share --budget between the run and the ablation's runs (default: each run of the "
                   "ablation gets the whole budget, so the ablation takes (variants + 1) x seeds - 1 budgets more)")
    return p


#: torchrun's own log lines ("W1204 05:18:36.538000 13479 .../api.py:1028] ..."), and the one that
#: starts its account of a failed worker (a traceback of the agent and a table follow it)
_TORCHRUN_LOG = re.compile(rb"^[IWEF]\d{4} \d\d:\d\d:\d\d\.\d+ +\d+ ")
_TORCHRUN_FAILED = re.compile(rb"\] failed \(exitcode: ")


def _agent_stderr(agent: subprocess.Popen, out: str, cmd: list[str]) -> tuple[Path, int]:
    """Pass the workers' messages on (each of the ranks' identical error lines once; progress bars
    as they are drawn) and keep torchrun's own lines, and everything after it reports a failed
    worker (its traceback and table, 40-odd lines), in OUT/torchrun.log only. Returns the log and
    how many lines it kept back."""
    log = Path(out) / "torchrun.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    screen = getattr(sys.stderr, "buffer", None)
    shown: set[bytes] = set()
    held, failing, pending = 0, False, b""

    def show(data: bytes) -> None:
        if screen is not None:
            screen.write(data)
            screen.flush()
        else:
            sys.stderr.write(data.decode(errors="replace"))

    with open(log, "ab") as fp:
        fp.write(f"== {time.strftime('%Y-%m-%d %H:%M:%S')} {' '.join(cmd)}\n".encode())
        fd = agent.stderr.fileno()
        while True:
            try:
                chunk = os.read(fd, 1 << 16)
            except KeyboardInterrupt:  # the agent stops its workers: read on to its end
                continue
            if not chunk:
                break
            fp.write(chunk)
            fp.flush()
            pending += chunk
            *lines, pending = pending.split(b"\n")
            for line in (x + b"\n" for x in lines):
                failing = failing or bool(_TORCHRUN_LOG.match(line) and _TORCHRUN_FAILED.search(line))
                if failing or _TORCHRUN_LOG.match(line):
                    held += 1
                elif not (line.startswith(b"fastvis-train: error:") and line in shown):
                    shown.add(line)
                    show(line)
            if pending.startswith(b"\r"):  # a progress bar redrawn in place: at once
                show(pending)
                pending = b""
        if pending and not failing:
            show(pending)
    return log, held


def _relaunch(argv: list[str], n: int, out: str) -> int:
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
    from ..train.ddp import exit_with_parent

    agent = subprocess.Popen(cmd, preexec_fn=exit_with_parent if sys.platform.startswith("linux") else None,
                             stderr=subprocess.PIPE)
    log, held = _agent_stderr(agent, out, cmd)
    while True:
        try:
            code = agent.wait()
            break
        except KeyboardInterrupt:  # Ctrl-C reaches the agent too (same process group): let it stop its workers
            pass
    if held and code > 0:
        print(f"fastvis-train: torchrun's account of the failure ({held} lines): {log}", file=sys.stderr)
    if code < 0:  # the agent itself was killed: its workers end with it
        name = signal.Signals(-code).name if -code in signal.valid_signals() else str(-code)
        print(f"fastvis-train: error: the torchrun agent (pid {agent.pid}) was killed by {name}; its workers "
              f"ended with it; continue the run in {out} with the same command and --out {out} --resume auto",
              file=sys.stderr)
        return 128 - code
    return code


def _variant_items(spec: str) -> list[str]:
    return [v.strip() for v in spec.split(",") if v.strip()]


def _ablate_after(cfg, args) -> int:
    """The ablation of the run just finished, in OUT/ablation: the run itself is its base for
    its seed (copied in, not repeated)."""
    import shutil
    from pathlib import Path

    from .ablate import ablate
    from .ablate import build_parser as ablate_parser

    out = Path(cfg.run.out)
    folder = out / "ablation" / "base" / f"seed{cfg.run.seed}"
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("summary.json", "metrics.jsonl", "config.json"):
        shutil.copyfile(out / name, folder / name)
    items = _variant_items(args.ablate)
    without = ",".join(v[1:] for v in items if v.startswith("-"))
    changes = ",".join(v for v in items if not v.startswith("-"))
    ablate_args = ablate_parser().parse_args(["--from", str(out), "--out", str(out / "ablation"), "--without", without,
                                              "--with", changes, "--seeds", str(args.ablate_seeds)])
    if cfg.schedule.budget:
        ablate_args.budget = str(cfg.schedule.budget)
    code = ablate(ablate_args)
    shutil.copyfile(out / "ablation" / "report.pdf", out / "report.pdf")  # the run's page, with its argument
    return code


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser().parse_args(argv)
    if args.list_models:
        from ..models import list_models

        print("\n".join(list_models()))
        return 0
    if args.recipe:
        from ..train.recipe import table

        print(table())
        return 0

    def body() -> int:
        from ..train.budget import Clock
        from ..train.config import config_from_args

        cfg = config_from_args(args)
        if args.ablate and args.ablate_within_budget and cfg.schedule.budget:
            runs = (1 + len(_variant_items(args.ablate))) * args.ablate_seeds
            cfg = cfg.replace(budget=cfg.schedule.budget / runs)  # every run of the ablation gets this share
        inc = cfg.incremental
        if inc.incremental:
            if args.ablate:
                raise InputError("--ablate measures ordinary runs; for class-incremental ones use fastvis-ablate, "
                                 "or --class-order-runs and --seeds-per-order")
            if inc.class_order_runs > 1 or inc.seeds_per_order > 1:
                if cfg.speed.nproc_per_node > 1:
                    raise InputError("--class-order-runs/--seeds-per-order run one run after another in one "
                                     "process: give them without --nproc-per-node")
                from ..incremental.study import run_order_study

                run_order_study(cfg, print if not cfg.run.quiet else (lambda *_: None))
                return 0
        n = cfg.speed.nproc_per_node
        if n > 1 and "WORLD_SIZE" not in os.environ:  # every process gets the same output folder
            code = _relaunch([*argv, "--out", cfg.run.out] if "out" not in args else argv, n, cfg.run.out)
        else:
            from ..train.ddp import peer_failure

            if inc.incremental:
                from ..incremental.runner import train_incremental as fit
            else:
                from ..train.loop import train as fit
            try:
                fit(cfg, Clock(STARTED))
            except RuntimeError as exc:  # a rank that died or hangs: one line, not a backend traceback
                failure = peer_failure(exc, int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)),
                                       cfg.speed.ddp_timeout) if "WORLD_SIZE" in os.environ else None
                if failure is None:
                    raise
                raise failure from None
            if "WORLD_SIZE" in os.environ:  # a process of a DDP run: the launching process ablates
                # its outputs are written and the group is torn down: leave without the interpreter's
                # finalisation, in which a backend thread still being destroyed aborted the process
                # now and then ("terminate called without an active exception")
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(0)
            code = 0
        return _ablate_after(cfg, args) if args.ablate and code == 0 else code

    return run("fastvis-train", body)


if __name__ == "__main__":
    sys.exit(main())
