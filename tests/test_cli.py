"""The command-line tools, run as a user would (subprocesses)."""
from __future__ import annotations

import json

import numpy as np
import pytest

from fastvis.beton import BetonReader
from tests.helpers import run_cli as cli


@pytest.mark.parametrize("tool", ["convert", "inspect", "train", "bench"])
def test_help_works_for_every_tool(tool):
    out = cli(tool, "--help", check=0).stdout
    assert "usage: fastvis-" + tool in out


def test_bench_lists_and_runs_a_benchmark(tmp_path):
    assert cli("bench").returncode == 2 and "augment" in cli("bench").stdout
    out = tmp_path / "augment.json"
    proc = cli("bench", "augment", "--device", "cpu", "--batch", "32", "--iters", "2", "--repeats", "1",
               "--json", out, check=0)
    assert "CutMix" in proc.stdout
    rows = json.loads(out.read_text())["cpu"]["rows"]
    assert rows["CutMix"]["fastvis (uint8)"] > 0 and "RandAugment(2, 9)" in rows


def test_poisson_benchmark_runs_against_opencv(tmp_path):
    out = tmp_path / "poisson.json"
    proc = cli("bench", "poisson", "--device", "cpu", "--patch", "64", "--batch", "2", "--repeats", "1", "--json", out,
               check=0)
    rows = json.loads(out.read_text())["rows"]
    ours = rows["fastvis cpu (1 patch)"]
    assert ours["ms"] > 0 and ours["max_err"] <= 1.0 and ours["iterations"] > 0
    assert any(k.startswith("OpenCV") for k in rows) and "vs OpenCV" in proc.stdout and "64x64 patch" in proc.stdout


def test_convert_cifar_archive_then_inspect(cifar_archives, tmp_path):
    arc = cifar_archives["cifar100"]
    out = tmp_path / "c100.beton"
    proc = cli("convert", arc.path, out, "--no-verify", "--split", "test", "-q", check=0)
    assert f"wrote {out}: {len(arc.test['images'])} samples, 100 classes" in proc.stdout
    r = BetonReader(out)
    assert np.array_equal(r.column("coarse_label"), arc.test["coarse"])
    info = json.loads(cli("inspect", out, "--json", check=0).stdout)
    assert info["samples"] == len(arc.test["images"])
    assert info["fields"]["image"] == {"type": "RGBImageField", "mode": "raw", "jpeg_quality": 90, "size": "32x32"}
    assert sum(info["class_counts"].values()) == info["samples"]
    assert list(info["class_counts"])[:2] == ["fine_00", "fine_01"]
    text = cli("inspect", out, check=0).stdout
    assert "100 classes" in text and "coarse_label" in text


def test_user_errors_are_one_line_without_traceback(cifar_archives, tmp_path):
    arc = cifar_archives["cifar100"]
    out = tmp_path / "x.beton"
    cases = [
        (("convert", arc.path, out), "md5 mismatch"),  # verification is on by default
        (("convert", tmp_path / "missing", out), "no such file"),
        (("convert", arc.path, out, "--no-verify", "--split", "val"), "splits"),
        (("inspect", tmp_path / "missing.beton"), "no such file"),
        (("convert", arc.path, out, "--kind", "dicom"), "DICOM"),
        (("convert", arc.path, out, "--no-verify", "--shuffle"), "--shuffle do not apply"),
    ]
    (tmp_path / "junk.beton").write_bytes(b"\x00" * 100)
    cases.append((("inspect", tmp_path / "junk.beton"), "version"))
    for args, message in cases:
        proc = cli(*args)
        assert proc.returncode == 1, (args, proc.stderr)
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and message in lines[0], (args, proc.stderr)
        assert "Traceback" not in proc.stderr
    assert not out.exists()


def test_bad_option_is_a_usage_error():
    proc = cli("convert", "a", "b", "--kind", "nope")
    assert proc.returncode == 2 and "invalid choice" in proc.stderr


@pytest.mark.parametrize("option,value,message", [
    ("--page-size", "3", "must be a power of two from 4,096"), ("--page-size", "0", "power of two"),
    ("--page-size", "12288", "power of two"), ("--page-size", str(2**40), "to 2,147,483,648"),
    ("--workers", "-1", "must be a number from 1"), ("--shuffle", "-1", "from 0"),
    ("--size", "100000", "from 1 to 8,192"), ("--jpeg", "0", "from 1 to 100"), ("--workers", "two", "not a whole"),
])
def test_convert_numbers_out_of_range_are_one_usage_line(option, value, message, capsys):
    from fastvis.cli.convert import build_parser

    with pytest.raises(SystemExit) as stop:
        build_parser().parse_args(["src", "out.beton", option, value])
    err = capsys.readouterr().err.strip().splitlines()
    assert stop.value.code == 2 and message in err[-1] and option in err[-1]
    assert build_parser().parse_args(["src", "out.beton", "--page-size", "65536"]).page_size == 65536


def test_loader_benchmark_runs_every_loader_and_plots(tmp_path, ffcv, dali):
    from fastvis.bench.loader import synthetic

    raw = synthetic(tmp_path / "raw.beton", n=256)
    out, png = tmp_path / "loader.json", tmp_path / "loader.png"
    # one worker each: ffcv compiles a pipeline of one thread in half the time of two
    proc = cli("bench", "loader", "--beton", raw, "--batch", "64", "--jpeg-n", "48", "--jpeg-batch", "16",
               "--repeats", "1", "--workers", "1", "--json", out, "--plot", png, check=0)
    assert proc.returncode == 0, proc.stderr
    rows = json.loads(out.read_text())
    assert set(rows["raw"]) == {"fastvis resident", "fastvis streaming", "torch DataLoader + torchvision v2",
                                "ffcv Loader", "DALI pipeline"}
    assert set(rows["jpeg"]) == {"fastvis JpegLoader", "torch DataLoader + torchvision v2", "ffcv Loader",
                                 "DALI pipeline"}
    assert all(v > 0 for suite in rows.values() for v in suite.values())
    assert png.read_bytes()[:4] == b"\x89PNG" and "KiB an image" in proc.stdout and "1 workers" in proc.stdout


def test_time_to_accuracy_benchmark_runs_both_trainers(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(0)
    root = tmp_path / "folder"
    for split, n in (("train", 48), ("test", 16)):
        for k, colour in enumerate(([220, 40, 40], [40, 40, 220])):
            d = root / split / f"class{k}"
            d.mkdir(parents=True)
            for i in range(n):
                img = np.clip(np.array(colour) + rng.integers(-40, 40, (32, 32, 3)), 0, 255).astype(np.uint8)
                Image.fromarray(img).save(d / f"{i}.png")
    out = tmp_path / "train.json"
    # both trainers with a small model, the baseline loading in its own process (--workers 0)
    proc = cli("bench", "train", "--data", root, "--epochs", "2", "--baseline-args",
               "--workers 0 --batch-size 16 --model tinynet", "--fastvis-args", "--batch-size 16 --model tinynet",
               "--json", out, check=0)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(out.read_text())
    runs = result["runs"]
    assert set(runs) == {"fastvis-train", "plain PyTorch (DataLoader)"}
    for r in runs.values():  # two epochs each, whatever the machine's speed
        assert 0 <= r["top1"] <= 1 and r["images_per_second"] > 0 and r["epochs"] == pytest.approx(2.0)
    assert result["split"] == "test split" and result["top1_ratio"] >= 0 and result["epochs"] == 2.0
    assert "time to accuracy" in proc.stdout and "top-1 ratio" in proc.stdout


# a stand-in for the record's script (which fastvis does not ship): only the texts the CPU changes touch
STAND_IN = '''"""stand-in"""
import torch
from math import ceil

@torch.compile
def zeropower_via_newtonschulz5(G):
    X = G.bfloat16()
    return X

class CifarNet(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.head = torch.nn.Linear(2, 2).half()

def print_training_details(variables, is_final_entry):
    pass

def main(run, model):
    data = torch.load("cifar10/train.pt", map_location=torch.device("cuda"))
    train_loader = range(len(data["labels"]) // 4)
    total_train_steps = ceil(8 * len(train_loader))
    starter, ender = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    starter.record()
    x = zeropower_via_newtonschulz5(torch.ones(2, 2))
    ender.record()
    torch.cuda.synchronize()
    time_seconds = starter.elapsed_time(ender) / 1000
    print_training_details(locals(), is_final_entry=False)
    print_training_details(locals(), is_final_entry=True)
    return float(total_train_steps) + float(x.sum()) / 100 + float(model.head.weight.dtype == torch.float32)

if __name__ == "__main__":
    model = CifarNet().cuda()
'''


def test_record_benchmark_changes_only_what_a_cpu_needs(tmp_path):
    import torch

    from fastvis.bench.record import cpu_source, run_record

    with pytest.raises(SystemExit, match="other.py: has no '.half\\(\\)'"):
        cpu_source(STAND_IN.replace(".half()", ""), 4, "other.py")
    script = tmp_path / "record.py"
    script.write_text(STAND_IN)
    (tmp_path / "cifar10").mkdir()
    torch.save({"labels": torch.zeros(40, dtype=torch.long)}, tmp_path / "cifar10" / "train.pt")
    run_record(script, tmp_path, 2.5, 0, tmp_path / "result.json")
    result = json.loads((tmp_path / "result.json").read_text())
    # 2.5 epochs of 10 steps, fp32 Newton-Schulz on the CPU (4 ones / 100), an fp32 model
    assert result["top1"] == pytest.approx(25 + 0.04 + 1)
    assert result["train_seconds"] >= 0 and result["wall_seconds"] >= result["train_seconds"]


def test_record_benchmark_s_fastvis_row_names_the_optimiser_and_precision_it_trained_with(data, tmp_path):
    from fastvis.bench.record import fastvis_row, table
    from fastvis.train import train
    from tests.helpers import train_config

    summary = train(train_config(data, tmp_path, epochs=1, optimizer="muon"))
    row = fastvis_row(tmp_path, wall=7.0)
    assert row["optimizer"] == "muon" and row["precision"] == "off" and row["batch_size"] == 32
    assert row["top1"] == summary["top1"] and row["wall_seconds"] == 7.0
    assert "| fastvis-train --model fastnet (fp32) | 1 | " in table({"fastvis 1 0": row})

