"""Variants of a base configuration, their runs over seeds, and what the runs measured.

A variant is one change to the base: ``-tta`` (a component removed: a flag off, a number zero,
an option unset), or ``cutmix=1.0`` (an option set). Every (variant, seed) pair is one
``fastvis-train`` run in its own folder, ``OUT/<variant>/seed<k>``, started in its own process
with ``--resume auto``: a finished run (its ``summary.json`` is there) is not repeated, a
killed one continues from its checkpoint. A run folder left by other settings (the options, or a
recipe table that derives other defaults) stops the ablation before anything runs, rather than
mixing its result in. With several CUDA devices the runs go one per device.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from .. import InputError
from ..train.config import OPTIONS, TrainConfig, canonical_name, coerce, option_type

__all__ = ["Run", "Variant", "check_folders", "cumulative_variants", "metric_of", "parse_variants", "plan_runs",
           "run_all"]


@dataclass
class Variant:
    name: str
    changes: dict = field(default_factory=dict)


@dataclass
class Run:
    variant: Variant
    seed: int
    folder: Path
    config: TrainConfig

    @property
    def done(self) -> bool:
        return (self.folder / "summary.json").is_file()

    def summary(self) -> dict | None:
        return json.loads((self.folder / "summary.json").read_text()) if self.done else None

    def conflict(self) -> str | None:
        """How the run already in :attr:`folder` (finished, or killed with a checkpoint) differs
        from this one's settings; None when there is none or it has the same."""
        spec = self.folder / "ablation-config.json"
        if not spec.is_file() or not (self.done or (self.folder / "checkpoint.pt").is_file()):
            return None
        try:
            there = json.loads(spec.read_text())
        except (OSError, ValueError) as exc:
            return f"its ablation-config.json cannot be read ({exc})"
        here = json.loads(json.dumps(self.config.as_dict()))
        where = {("run", "out"), ("run", "resume"), ("run", "quiet")}  # not settings of the result
        diffs = [f"{group}.{key}: {there.get(group, {}).get(key)!r} there, {value!r} now"
                 for group, values in here.items() for key, value in values.items()
                 if (group, key) not in where and there.get(group, {}).get(key) != value]
        if self.done:
            from ..train.recipe import fingerprint

            made, now = self.summary().get("recipe"), fingerprint()
            if made != now:
                diffs.append(f"the recipe table: {made or 'before recipe digests'} there, {now} now "
                             "(defaults the runs derive have changed)")
        return "; ".join(diffs) or None


def check_folders(runs: list[Run]) -> None:
    """Refuse (naming the folders and what differs) to reuse runs made with other settings."""
    clashes = [(r, why) for r in runs if (why := r.conflict())]
    if clashes:
        lines = [f"{r.folder}: {why}" for r, why in clashes[:3]] + (
            [f"... and {len(clashes) - 3} more"] if len(clashes) > 3 else [])
        raise InputError("these runs were made with other settings, so their results would not compare: "
                         + " | ".join(lines) + ". Give a new --out, or remove those run folders to run them again")


def _option(name: str) -> str:
    key = canonical_name(name)
    if key not in OPTIONS:
        raise InputError(f"unknown option {name!r} in a variant (options are those of fastvis-train)")
    return key


def off_value(name: str):
    """What "without" sets an option to: flags off, numbers 0, other options unset."""
    if name == "flip":
        return "none"
    kind = option_type(name)
    if kind is bool:
        return False
    if kind in (int, float):
        return 0
    return None


def parse_variants(base: TrainConfig, without: list[str], changes: list[str]) -> list[Variant]:
    """The variants of ``--without a,b`` and ``--with k=v,...``, checked against the base."""
    out: list[Variant] = []
    for name in without:
        key = _option(name)
        off = off_value(key)
        if base.get(key) == off or (key == "amp" and base.get(key) is False):
            raise InputError(f"--without {name}: the base run has no {name} to remove ({key} is {base.get(key)!r})")
        out.append(Variant(f"-{name}", {key: off}))
    for item in changes:
        if "=" not in item:
            raise InputError(f"--with {item}: expected OPTION=VALUE, e.g. cutmix=1.0")
        name, value = item.split("=", 1)
        key = _option(name.strip())
        parsed = coerce(key, value.strip(), "--with ")
        if base.get(key) == parsed:
            raise InputError(f"--with {item}: the base run already has {key}={parsed!r}")
        out.append(Variant(f"{name.strip()}={value.strip()}", {key: parsed}))
    names = [v.name for v in out]
    if len(set(names)) != len(names):
        raise InputError(f"a variant is given twice: {names}")
    return out


def cumulative_variants(variants: list[Variant]) -> list[Variant]:
    """The changes added in turn (a speed-run ablation table): the first two together, then the
    first three, ... (the base and the first change alone are runs of the ablation already)."""
    out = []
    for k in range(2, len(variants) + 1):
        changes = {}
        for v in variants[:k]:
            changes.update(v.changes)
        out.append(Variant(" + ".join(v.name for v in variants[:k]), changes))
    return out


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.=+-]", "_", name) or "base"


def plan_runs(base: TrainConfig, variants: list[Variant], seeds: int, out: Path) -> list[Run]:
    """Every (variant, seed) run, ordered seed by seed (so that partial results are paired)."""
    runs = []
    first = base.run.seed
    for k in range(seeds):
        for v in [Variant("base"), *variants]:
            folder = Path(out) / _slug(v.name) / f"seed{first + k}"
            cfg = base.replace(**v.changes, seed=first + k, out=str(folder), resume=None, quiet=True)
            runs.append(Run(v, first + k, folder, cfg))
    return runs


def _devices(jobs: int | None = None) -> list[str | None]:
    """Where runs go at once: one per CUDA device (at most ``jobs``); without CUDA, ``jobs``
    runs on the CPU (default one), each given its share of the cores."""
    try:
        import torch

        n = torch.cuda.device_count()
    except Exception:  # no torch CUDA
        n = 0
    if n:
        return [str(i) for i in range(n)][: jobs or None]
    return [None] * max(1, jobs or 1)


def _command(run: Run) -> list[str]:
    run.folder.mkdir(parents=True, exist_ok=True)
    spec = run.folder / "ablation-config.json"
    spec.write_text(json.dumps(run.config.as_dict(), indent=1))
    return [sys.executable, "-m", "fastvis.cli.train", "--config", str(spec), "--out", str(run.folder),
            "--resume", "auto", "-q"]


def run_all(runs: list[Run], log=print, jobs: int | None = None) -> list[Run]:
    """Run every run that has no summary yet: in sequence, one per CUDA device, or ``jobs`` at a
    time on the CPU (:func:`_devices`). Returns the runs that failed (the last line of each
    one's error is logged). Runs left in their folders by other settings stop it first
    (:func:`check_folders`)."""
    check_folders(runs)
    todo = [r for r in runs if not r.done]
    if len(todo) < len(runs):
        log(f"ablation: {len(runs) - len(todo)} of {len(runs)} runs already finished")
    devices = _devices(jobs)
    running: dict[subprocess.Popen, tuple[Run, int]] = {}  # the run and its slot of ``devices``
    failed = []
    try:
        _loop(todo, running, devices, failed, log)
    finally:  # stopped (Ctrl-C, SIGTERM): the runs in flight stop too, and resume next time
        for proc in running:
            proc.terminate()
        for proc in running:
            proc.wait()
    return failed


def _loop(todo, running, devices, failed, log) -> None:
    threads = max(1, (os.cpu_count() or 1) // len(devices))
    while todo or running:
        free = [k for k in range(len(devices)) if k not in {slot for _, slot in running.values()}]
        while todo and free:
            run, slot = todo.pop(0), free.pop(0)
            device = devices[slot]
            env = dict(os.environ)
            if device is not None:
                env["CUDA_VISIBLE_DEVICES"] = device
            elif len(devices) > 1 and "OMP_NUM_THREADS" not in os.environ:  # CPU runs side by side share the cores
                env["OMP_NUM_THREADS"] = str(threads)
            log(f"ablation: {run.variant.name}, seed {run.seed} -> {run.folder}")
            cmd = _command(run)
            with open(run.folder / "stderr.log", "w") as err:  # a file: a pipe could fill up and block
                proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=err)
            running[proc] = (run, slot)
        for proc in [p for p in running if p.poll() is not None]:
            run, _ = running.pop(proc)
            err = (run.folder / "stderr.log").read_text().strip().splitlines()
            if proc.returncode != 0 or not run.done:
                failed.append(run)
                log(f"ablation: {run.variant.name}, seed {run.seed} failed: {err[-1] if err else proc.returncode}")
        if running:
            time.sleep(0.5)


def metric_of(summary: dict, metric: str = "top1") -> tuple[float, str]:
    """The metric of a run on the split its choices are made on: the holdout when there is one.
    A class-incremental run gives its ``average_incremental`` (or ``last``) accuracy."""
    if "incremental" in summary:
        block = summary["incremental"]
        return float(block[metric if metric in ("average_incremental", "last") else "average_incremental"]), \
            block["split"]
    final = summary.get("final") or {}
    split = "holdout" if "holdout" in final else summary.get("split", "test")
    value = final[split][metric] if split in final else summary[metric]
    return float(value), split
