"""A training step's time by optimiser: SGD, and Muon with its orthogonalisation in bf16 (torch's)
and in float32 (fastvis's default off the GPU), for each model asked, on random images of
CIFAR's shape. The forward and backward pass and the optimiser's step are timed apart; the
median of the timed steps is reported, after one step that warms up.

Usage: fastvis-bench step [--models fastnet_s,fastnet] [--batch 512] [--steps 3] [--device cpu]
       [--json PATH]
"""
from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch

VARIANTS = (("sgd", "float32"), ("muon", "bfloat16"), ("muon", "float32"))


def time_steps(model_name: str, kind: str, ns_dtype: str, batch: int, steps: int, device: torch.device,
               classes: int = 100) -> dict:
    """Median seconds of the forward and backward pass and of the optimiser's step."""
    from fastvis.models import create_model
    from fastvis.train.config import TrainConfig
    from fastvis.train.model import make_optimizer, peak_lr

    torch.manual_seed(0)
    model = create_model(model_name, classes).to(device).to(memory_format=torch.channels_last)
    cfg = TrainConfig()  # the trainer's optimiser with the recipe's values, in the precision asked
    cfg.optim.optimizer, cfg.optim.batch_size = kind, batch
    opt = make_optimizer(model, cfg, peak_lr(cfg, model_name))
    opt.ns_dtype = ns_dtype
    x = torch.randn(batch, 3, 32, 32, device=device).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, classes, (batch,), device=device)

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    passes, updates = [], []
    for k in range(steps + 1):
        sync()
        t0 = time.perf_counter()
        loss = torch.nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        sync()
        t1 = time.perf_counter()
        opt.step()
        sync()
        t2 = time.perf_counter()
        if k:  # the first warms up
            passes.append(t1 - t0)
            updates.append(t2 - t1)
    fwd_bwd, step = statistics.median(passes), statistics.median(updates)
    return {"model": model_name, "optimizer": kind, "ns_dtype": ns_dtype, "forward_backward_s": fwd_bwd,
            "step_s": step, "images_per_second": batch / (fwd_bwd + step)}


def main(argv: list[str] | None = None, prog: str | None = None):
    ap = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n")[0])
    ap.add_argument("--models", default="fastnet_s,fastnet", help="comma-separated model names")
    ap.add_argument("--batch", type=int, default=512)
    ap.add_argument("--steps", type=int, default=3, help="timed steps per variant (after one that warms up)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    if args.steps < 1 or args.batch < 1:
        ap.error("--steps and --batch must be at least 1")
    device = torch.device(args.device)
    rows = []
    lines = [f"# a training step, batch {args.batch}, {device.type}, torch {torch.__version__}, "
             f"{torch.get_num_threads()} threads; median of {args.steps} steps",
             "| model | optimizer | orthogonalisation | forward+backward s | optimizer step s | images/s |",
             "|---|---|---|---:|---:|---:|"]
    for name in [m for m in args.models.split(",") if m]:
        for kind, dtype in VARIANTS:
            r = time_steps(name, kind, dtype, args.batch, args.steps, device)
            rows.append(r)
            lines.append(f"| {name} | {kind} | {dtype if kind == 'muon' else '-'} | {r['forward_backward_s']:.3f} | "
                         f"{r['step_s']:.3f} | {r['images_per_second']:.0f} |")
            print(lines[-1] if len(rows) > 1 else "\n".join(lines), flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps({"options": vars(args), "results": rows, "table": lines}, indent=1))
    return rows


if __name__ == "__main__":
    main()
