"""``python -m tests.interrupt EVENT N -- fastvis-train arguments``: run fastvis-train and kill it
(SIGKILL, as the machine would) at the N-th time EVENT happens, so that tests stop a run at a
chosen moment of its life whatever the machine's speed:

- ``checkpoint``: right after the N-th checkpoint is written (an epoch, or a task, is over);
- ``evaluation``: inside the N-th evaluation;
- ``write``: inside the N-th whole-file write (``fastvis.atomic``), its temporary written and not
  yet renamed: the curve, the report, the summary, config.json, metrics.jsonl on resume;
- ``write:NAME``: likewise, inside the N-th write of the file called NAME (``write:summary.json``);
- ``checkpoint-write``: inside the N-th checkpoint write, likewise;
- ``none``: not killed.

Under torchrun, ``INTERRUPT_RANK=R`` limits the kill to the worker of that rank, and
``INTERRUPT_ONCE=PATH`` to the first start (the kill leaves PATH behind; a restarted worker that
finds it runs on), so that an elastic restart can be tested at a chosen moment.

With ``TEST_EXACT=1`` in the environment the run computes the same sums in the same order in every
process: fp32 (not a timed choice of bf16 autocast, which may fall either way where the CPU has
native bf16), one thread, and no oneDNN (whose kernels now and then split a convolution's sums
differently from one process to the next, about 1e-3 apart after a few steps), so that a resumed
run can be compared bit for bit with an uninterrupted one.

The trainer itself carries no such hook: this module patches it before it starts.
"""
from __future__ import annotations

import os
import signal
import sys


def _kill() -> None:
    sys.stdout.flush()
    sys.stderr.flush()
    os.kill(os.getpid(), signal.SIGKILL)


def install(event: str, n: int) -> None:
    count = {"n": 0}

    rank, once = os.environ.get("INTERRUPT_RANK"), os.environ.get("INTERRUPT_ONCE")

    def due() -> bool:
        if rank is not None and os.environ.get("RANK", "0") != rank:
            return False
        if once and os.path.exists(once):
            return False
        count["n"] += 1
        if count["n"] < n:
            return False
        if once:
            open(once, "w").close()
        return True

    if event == "none":
        return
    if event == "checkpoint":
        from fastvis.incremental import runner
        from fastvis.train import loop

        for cls in (loop.Trainer, runner.IncrementalTrainer):
            original = cls.save_checkpoint

            def save(self, _original=original):
                _original(self)
                if due():
                    _kill()

            cls.save_checkpoint = save
    elif event == "evaluation":
        from fastvis.train import loop

        original = loop.Trainer.evaluate

        def evaluate(self, *args, **kwargs):
            if due():
                _kill()
            return original(self, *args, **kwargs)

        loop.Trainer.evaluate = evaluate
    elif event in ("write", "checkpoint-write") or event.startswith("write:"):
        import fastvis.atomic as atomic

        original = atomic.finish
        name = event.partition(":")[2]

        def finish(tmp, path, *args, **kwargs):
            if name:
                mine = os.path.basename(str(path)) == name
            else:
                mine = (event == "checkpoint-write") == str(path).endswith(".pt")
            if mine and due():
                _kill()
            return original(tmp, path, *args, **kwargs)

        atomic.finish = finish  # write_atomic (checkpoints too) and atomic_path look it up in atomic
    else:
        raise SystemExit(f"tests.interrupt: unknown event {event!r}")


def main(argv: list[str]) -> int:
    if len(argv) < 3 or argv[2] != "--":
        raise SystemExit("usage: python -m tests.interrupt EVENT N -- ARGS")
    if os.environ.get("TEST_EXACT") == "1":
        import torch

        from fastvis.train import model

        torch.set_num_threads(1)
        torch.backends.mkldnn.enabled = False
        model.cpu_has_fast_bf16 = lambda: False  # fp32: no timed choice of bf16 that may differ between runs
    install(argv[0], int(argv[1]))
    from fastvis.cli.train import main as train_main

    return train_main(argv[3:])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
