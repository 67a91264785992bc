"""fastvis-ablate: statistics on fixed numbers, the variants, and a tiny ablation end to end
(outputs, no repeated runs, resuming after a kill)."""
from __future__ import annotations

import json
import math
import signal
import subprocess
import sys
import time

import pytest

from fastvis import InputError
from fastvis.ablate.analysis import sentence
from fastvis.ablate.runner import check_folders, parse_variants, plan_runs
from fastvis.ablate.stats import compare, mean_std, t_quantile
from fastvis.train.config import TrainConfig
from fastvis.train.recipe import fingerprint
from tests.helpers import REPO, train_cli, warm_runs_cli


def test_statistics_on_fixed_numbers():
    assert t_quantile(2) == pytest.approx(4.303) and t_quantile(40) == pytest.approx(2.021, abs=0.002)
    m, sd = mean_std([0.50, 0.52, 0.51])
    assert m == pytest.approx(0.51) and sd == pytest.approx(0.01)
    base = {0: 0.50, 1: 0.52, 2: 0.51}
    small = compare(base, {0: 0.48, 1: 0.49, 2: 0.50}, "-tta")  # differences -2, -3, -1 points
    half = 4.303 * 0.01 / math.sqrt(3)
    assert small.diff == pytest.approx(-0.02) and small.low == pytest.approx(-0.02 - half)
    assert small.high == pytest.approx(-0.02 + half) and not small.significant  # the interval holds zero
    large = compare(base, {0: 0.45, 1: 0.46, 2: 0.47}, "-label_smoothing")  # -5, -6, -4 points
    assert large.significant and large.high < 0 and large.seeds == 3
    unpaired = compare(base, {1: 0.40, 7: 0.3}, "x")  # only seed 1 is shared
    assert unpaired.seeds == 1 and unpaired.low is None and not unpaired.significant


def test_the_sentence_states_the_strongest_effect_with_its_interval():
    cfg = TrainConfig.from_options(budget=600.0, out="x")
    rows = [
        {"variant": "-tta", "changes": {"tta": False}, "seeds": 3, "diff": -0.004, "low": -0.011, "high": 0.003,
         "significant": False},
        {"variant": "-label-smoothing", "changes": {"label_smoothing": 0}, "seeds": 3, "diff": -0.019,
         "low": -0.026, "high": -0.012, "significant": True},
        {"variant": "cutmix=1.0", "changes": {"cutmix": 1.0}, "seeds": 3, "diff": 0.03, "low": -0.02,
         "high": 0.08, "significant": False},  # larger, but within the spread: not the one stated
    ]
    text = sentence({"metric": "top1", "variants": rows}, cfg)
    assert text == ("Under a 10-minute budget, removing label smoothing costs 1.9 points of top-1 "
                    "(95% CI 1.2-2.6, 3 seeds).")
    none = sentence({"metric": "top1", "variants": [rows[0]]}, cfg)
    assert "within the seed-to-seed spread" in none and "-0.4 points" in none


def test_runs_left_by_other_settings_are_refused_not_mixed_in(tmp_path):
    base = TrainConfig.from_options(epochs=2.0, out=str(tmp_path), model="tinynet")
    runs = plan_runs(base, parse_variants(base, [], ["lr=0.4"]), 2, tmp_path)

    def leave(run, config, recipe=fingerprint(), finished=True):
        run.folder.mkdir(parents=True, exist_ok=True)
        (run.folder / "ablation-config.json").write_text(json.dumps(config.as_dict()))
        (run.folder / ("summary.json" if finished else "checkpoint.pt")).write_text(json.dumps({"recipe": recipe}))

    check_folders(runs)  # nothing there yet
    for run in runs:
        leave(run, run.config)
    check_folders(runs)  # its own runs: reused
    leave(runs[0], runs[0].config.replace(epochs=3.0))  # the base's seed 0, another --epochs
    leave(runs[3], runs[3].config, recipe="0123456789ab")  # lr=0.4's seed 1, another recipe table
    with pytest.raises(InputError) as err:
        check_folders(runs)
    text = str(err.value)
    assert f"{runs[0].folder}: schedule.epochs: 3.0 there, 2.0 now" in text
    assert f"{runs[3].folder}: the recipe table: 0123456789ab there" in text and str(runs[1].folder) not in text
    leave(runs[0], runs[0].config.replace(lr=0.3), finished=False)  # a killed run of other settings
    (runs[0].folder / "summary.json").unlink()
    with pytest.raises(InputError, match="optim.lr: 0.3 there, None now"):
        check_folders(runs[:1])


def test_variants_are_checked_against_the_base():
    base = TrainConfig.from_options(budget=60.0, out="x", label_smoothing=0.1)
    vs = parse_variants(base, ["tta", "label-smoothing"], ["amp=off", "cutmix=1.0"])
    assert [(v.name, v.changes) for v in vs] == [("-tta", {"tta": False}), ("-label-smoothing", {"label_smoothing": 0}),
                                                  ("amp=off", {"amp": False}), ("cutmix=1.0", {"cutmix": 1.0})]
    for without, with_, message in ((["ema"], [], "no ema"), ([], ["cutmix"], "OPTION=VALUE"),
                                    (["nonsense"], [], "unknown option"), ([], ["tta=on"], "already has")):
        with pytest.raises(Exception, match=message):
            parse_variants(base, without, with_)


def _ablate(*args):
    """fastvis-ablate as a new interpreter, its runs forked from it (tests.warm_runs)."""
    return [sys.executable, "-m", "tests.warm_runs", "fastvis.cli.ablate", *map(str, args)]


def test_a_tiny_ablation_end_to_end(data, tmp_path):
    from pypdf import PdfReader

    out = tmp_path / "ablate"
    args = ["--data", data[0], "--val", data[1], "--model", "tinynet", "--epochs", "1", "--batch-size", "32",
            "--device", "cpu", "--without", "tta", "--with", "label_smoothing=0.3", "--seeds", "2",
            "--cumulative", "--jobs", "2", "--out", out]  # two runs at a time, sharing the cores
    # killed once the first run has finished: the next invocation resumes
    proc = subprocess.Popen(_ablate(*args), cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    first = out / "base" / "seed0" / "summary.json"
    while not first.exists() and proc.poll() is None:
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=120)
    stamp = first.stat().st_mtime_ns
    done = warm_runs_cli("ablate", *args, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert first.stat().st_mtime_ns == stamp  # not run again
    result = json.loads((out / "ablation.json").read_text())
    assert [v["variant"] for v in result["variants"]] == ["-tta", "label_smoothing=0.3"]
    assert all(v["seeds"] == 2 and v["low"] is not None for v in result["variants"])
    assert len(result["base"]["runs"]) == 2 and result["split"] == "test"
    assert [c["variant"] for c in result["cumulative"]][0] == "base" and len(result["cumulative"]) == 3
    assert (out / "ablation.csv").read_text().splitlines()[0].startswith("variant,changes,seeds,mean")
    assert (out / "ablation.png").read_bytes()[:4] == b"\x89PNG"
    report = PdfReader(out / "report.pdf")
    assert len(report.pages) == 1
    page = " ".join(report.pages[0].extract_text().split())
    assert "What makes it converge fast" in page and " ".join(result["sentence"].split()) in page
    slides = PdfReader(out / "slides.pdf")
    assert 3 <= len(slides.pages) <= 5 and slides.pages[0].mediabox.width > slides.pages[0].mediabox.height
    again = warm_runs_cli("ablate", *args, timeout=300)
    assert again.returncode == 0 and "8 of 8 runs already finished" in again.stdout


def test_class_incremental_runs_are_ablated_on_their_average_incremental_accuracy(tmp_path):
    from tests.incremental.data import write_classes

    train, val = write_classes(tmp_path / "train.beton", 24, 0), write_classes(tmp_path / "val.beton", 8, 1)
    out = tmp_path / "ablate"
    proc = warm_runs_cli("ablate", "--data", train, "--val", val, "--model", "tinynet", "--incremental", "B0-2",
                         "--cl-method", "replay", "--memory", "16", "--epochs-per-task", "1", "--batch-size", "32",
                         "--device", "cpu", "--with", "balanced_epochs=0", "--seeds", "1", "--jobs", "2", "--out", out)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    result = json.loads((out / "ablation.json").read_text())
    assert result["metric"] == "average_incremental" and result["split"] == "test"
    for name, row in (("base", result["base"]), ("balanced_epochs=0", result["variants"][0])):
        block = json.loads((out / name / "seed0" / "summary.json").read_text())["incremental"]
        assert row["runs"] == {"0": block["average_incremental"]}
    assert "Over 1 epochs per task" in result["sentence"] and "average incremental accuracy" in result["sentence"]
    assert "average incremental accuracy %" in proc.stdout and not (out / "slides.pdf").exists()


def test_train_then_ablate_reuses_the_run_as_its_base(data, tmp_path):
    from pypdf import PdfReader

    out = tmp_path / "run"
    proc = train_cli("--data", data[0], "--val", data[1], "--model", "tinynet", "--epochs", "1", "--batch-size", "32",
                     "--device", "cpu", "-q", "--out", out, "--ablate=-tta", "--ablate-seeds", "1")
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads((out / "ablation" / "ablation.json").read_text())
    assert [v["variant"] for v in result["variants"]] == ["-tta"] and result["variants"][0]["seeds"] == 1
    assert (out / "ablation" / "base" / "seed0" / "summary.json").read_text() == (out / "summary.json").read_text()
    assert "one seed: no interval" in result["sentence"]
    page = " ".join(PdfReader(out / "report.pdf").pages[0].extract_text().split())
    assert "What makes it converge fast" in page


def test_runs_share_a_cpu_when_asked_and_the_cuda_devices_otherwise(monkeypatch):
    import torch

    from fastvis.ablate import runner

    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)
    assert runner._devices() == [None] and runner._devices(3) == [None, None, None]
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 4)
    assert runner._devices() == ["0", "1", "2", "3"] and runner._devices(2) == ["0", "1"]
