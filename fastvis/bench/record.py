"""The CIFAR-10 record holder's script against ``fastvis-train --model fastnet``, on this machine, at
the same epochs, on the same images.

The record's script (``airbench94_muon.py`` of github.com/KellerJordan/cifar10-airbench) is not
part of fastvis: give the path of a copy you fetched. It is run as written except for what a
machine without CUDA needs, each change checked to apply (the run stops if the script no longer
has the text it changes): tensors and the model on the CPU, fp32 instead of fp16/bf16 (emulated
bf16 runs about 10x slower on a CPU without native bf16), no ``torch.compile`` of the Newton-Schulz
step, a wall clock for its CUDA event timer, and its 8 epochs replaced by ``--epochs``. It reads
``cifar10/train.pt`` and ``test.pt``, which are written here from the same two ``.beton`` files
fastvis trains on, so both see the same pixels. Each run starts in its own process with the seed
set; fastvis runs with its defaults and ``--model fastnet --epochs E --seed S``.

Usage: fastvis-bench record --script airbench94_muon.py --train c10-train.beton --test c10-test.beton
       [--epochs 4 8] [--seeds 2] [--out bench/out/record]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

__all__ = ["CPU_CHANGES", "cpu_source", "main", "run_record", "table", "write_tensors"]

#: (text in the script, its replacement, why): everything changed in the record's script
CPU_CHANGES = [
    ('map_location=torch.device("cuda")', 'map_location=torch.device("cpu")', "no CUDA device"),
    (".half()", ".float()", "fp32 on a CPU"),
    ("X = G.bfloat16()", "X = G.float()", "fp32: emulated bf16 is about 10x slower"),
    ("@torch.compile\ndef zeropower_via_newtonschulz5", "def zeropower_via_newtonschulz5",
     "no compilation (fastvis does not compile by default either)"),
    ("torch.cuda.Event(enable_timing=True)", "_WallEvent()", "a wall clock instead of CUDA events"),
    ("torch.cuda.synchronize()", "pass", "nothing to wait for"),
    ("CifarNet().cuda()", "CifarNet()", "no CUDA device"),
    ("total_train_steps = ceil(8 * len(train_loader))", "total_train_steps = ceil(EPOCHS * len(train_loader))",
     "the epochs of the comparison"),
]

_PRELUDE = '''
import time as _time
EPOCHS = {epochs!r}
class _WallEvent:
    def record(self):
        self.t = _time.perf_counter()
    def elapsed_time(self, end):
        return 1000.0 * (end.t - self.t)
'''


def cpu_source(text: str, epochs: float, path: str = "the script") -> str:
    """The record's script with :data:`CPU_CHANGES` applied (each must apply) and the prelude
    they need (``EPOCHS``, the wall-clock event) after its docstring."""
    for old, new, why in CPU_CHANGES:
        if old not in text:
            raise SystemExit(f"{path}: has no {old!r} to change ({why}); is it airbench94_muon.py?")
        text = text.replace(old, new)
    lines = text.split("\n")
    first_import = next(i for i, line in enumerate(lines) if line.startswith("import "))
    lines.insert(first_import, _PRELUDE.format(epochs=epochs))
    return "\n".join(lines)


def write_tensors(beton: Path, out: Path) -> None:
    """The images and labels of a fastvis file as the record's loader reads them: uint8 NHWC."""
    import torch

    from fastvis.loader.resident import ResidentDataset

    if out.exists():
        return
    d = ResidentDataset.load(beton)
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"images": d.images.permute(0, 2, 3, 1).contiguous(), "labels": d.labels, "classes": d.classes},
               out)


def run_record(script: Path, work: Path, epochs: float, seed: int, result: Path) -> None:
    """In its own process: the record's ``main`` once, with the seed set; its accuracy to ``result``."""
    import torch

    torch.manual_seed(seed)
    namespace = {"__name__": "record", "__file__": str(script)}
    exec(compile(cpu_source(script.read_text(), epochs, str(script)), str(script), "exec"), namespace)
    model = namespace["CifarNet"]().to(memory_format=torch.channels_last)
    printed, print_row = [], namespace["print_training_details"]

    def keep_row(variables, is_final_entry):  # its own timer: whitening and training, then + the TTA evaluation
        printed.append(variables["time_seconds"])
        print_row(variables, is_final_entry)

    namespace["print_training_details"] = keep_row
    t, cwd = time.perf_counter(), os.getcwd()
    os.chdir(work)  # its loader reads ./cifar10/{train,test}.pt
    try:
        accuracy = namespace["main"](seed, model)
    finally:
        os.chdir(cwd)
    result.write_text(json.dumps({"top1": accuracy, "wall_seconds": time.perf_counter() - t,
                                  "train_seconds": printed[-2], "threads": torch.get_num_threads()}))


def main(argv: list[str] | None = None, prog: str | None = None):
    ap = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n")[0])
    ap.add_argument("--script", required=True, help="a copy of airbench94_muon.py")
    ap.add_argument("--train", required=True, help="CIFAR-10 training split, a fastvis file")
    ap.add_argument("--test", required=True, help="CIFAR-10 test split, a fastvis file")
    ap.add_argument("--epochs", type=float, nargs="+", default=[4, 8])
    ap.add_argument("--seeds", type=int, default=2)
    ap.add_argument("--only", choices=["record", "fastvis"], help="run one side only")
    ap.add_argument("--out", default=os.path.join("bench", "out", "record"))
    args = ap.parse_args(argv)
    script, out = Path(args.script).resolve(), Path(args.out).resolve()
    if not script.is_file():
        ap.error(f"--script {args.script}: no such file")
    cpu_source(script.read_text(), 8, str(script))  # refuse a script the changes do not fit, before any run
    write_tensors(Path(args.train), out / "cifar10" / "train.pt")
    write_tensors(Path(args.test), out / "cifar10" / "test.pt")
    path = out / "record.json"
    results = json.loads(path.read_text()) if path.exists() else {}
    for epochs in args.epochs:
        for seed in range(args.seeds):
            for side in ("record", "fastvis"):
                key = f"{side} {epochs:g} {seed}"
                if key in results or args.only not in (None, side):
                    continue  # measured before: the table resumes
                results[key] = _one(side, script, out, epochs, seed, args)
                path.write_text(json.dumps(results, indent=1))
                print(key, results[key], flush=True)
    print(table(results))


def _one(side: str, script: Path, out: Path, epochs: float, seed: int, args) -> dict:
    run = out / f"{side}-{epochs:g}ep-seed{seed}"
    run.mkdir(parents=True, exist_ok=True)
    if side == "record":
        cmd = [sys.executable, "-m", "fastvis.bench.record", "--one", str(script), str(out), str(epochs), str(seed),
               str(run / "result.json")]
    else:
        cmd = [sys.executable, "-m", "fastvis.cli.train", "--data", args.train, "--val", args.test, "--model",
               "fastnet", "--epochs", str(epochs), "--seed", str(seed), "--out", str(run), "-q"]
    t = time.perf_counter()
    with open(run / "log.txt", "w") as log:
        proc = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT)
    wall = time.perf_counter() - t
    if proc.returncode:
        raise SystemExit(f"fastvis-bench record: the {side} run failed; see {run / 'log.txt'}")
    if side == "record":
        r = json.loads((run / "result.json").read_text())
        return {"top1": r["top1"], "wall_seconds": wall, "train_seconds": r["train_seconds"],
                "images_per_second": 50000 * epochs / r["train_seconds"]}
    return fastvis_row(run, wall)


def fastvis_row(run: Path, wall: float) -> dict:
    """The table's row of a fastvis run folder: its summary's accuracy and speed, and how it
    trained (batch, optimiser, precision: on a CPU with native bf16 fastvis may train in bf16,
    the record's script in fp32)."""
    s = json.loads((run / "summary.json").read_text())
    return {"top1": s["top1"], "wall_seconds": wall, "train_seconds": s["train_seconds"],
            "images_per_second": s["images_per_second"], "batch_size": s["batch_size"],
            "optimizer": s["hyper"]["optimizer"], "precision": s["amp"]}


def table(results: dict) -> str:
    """Markdown: per side and epochs, the test top-1 of every seed, their mean and the images/s."""
    from fastvis.ablate.stats import mean_std

    groups: dict[tuple, list] = {}
    for key, r in results.items():
        side, epochs, _ = key.split()
        groups.setdefault((side, float(epochs)), []).append(r)
    lines = ["| run | epochs | test top-1 per seed | mean ± sd | images/s (median) |", "|---|---:|---|---:|---:|"]
    for (side, epochs), rs in sorted(groups.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        accs = [100 * r["top1"] for r in rs]
        m, s = mean_std(accs)
        speed = statistics.median(r["images_per_second"] for r in rs)
        kinds = sorted({"fp32" if r["precision"] == "off" else r["precision"] for r in rs if r.get("precision")})
        name = "airbench94_muon.py (CPU, fp32)" if side == "record" else \
            "fastvis-train --model fastnet" + (f" ({', '.join(kinds)})" if kinds else "")
        lines.append(f"| {name} | {epochs:g} | {', '.join(f'{a:.2f}' for a in accs)} | {m:.2f} ± {s:.2f} | "
                     f"{speed:,.0f} |")
    return "\n".join(lines)


if __name__ == "__main__":
    if sys.argv[1:2] == ["--one"]:
        run_record(Path(sys.argv[2]), Path(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5]), Path(sys.argv[6]))
    else:
        main()
