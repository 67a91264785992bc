"""One writer per run folder: a second training into a folder in use is refused with one line
naming the first, and writes nothing there; a killed run's lock is taken over; a finished run
started again keeps every row of metrics.jsonl once."""
from __future__ import annotations

import json
import os
import subprocess
import sys

from fastvis.atomic import LOCK_NAME, lock_folder
from tests.helpers import REPO


def _args(data, out, *extra):
    return ["--data", data[0], "--val", data[1], "--model", "tinynet", "--device", "cpu", "-q", "--epochs", "1",
            "--batch-size", "32", "--out", str(out), *extra]


def test_a_second_run_into_a_folder_in_use_is_refused_naming_the_first(data, tmp_path, capsys):
    from fastvis.cli.train import main

    run = tmp_path / "run"
    held = lock_folder(run)  # the first run, still going
    try:
        assert main(_args(data, run)) == 1
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and "another fastvis-train is writing into this folder" in err, err
        assert f"pid {os.getpid()}" in err and str(run) in err
        assert sorted(p.name for p in run.iterdir()) == [LOCK_NAME]  # nothing of the second run
        assert main(_args(data, run, "--resume", "auto")) == 1  # nor a resume of it
    finally:
        os.close(held)
    assert main(_args(data, run)) == 0  # once the first has ended
    assert json.loads((run / "summary.json").read_text())["steps"] == 8


def test_the_lock_of_a_killed_run_is_taken_over(data, tmp_path):
    from fastvis.cli.train import main

    run = tmp_path / "run"
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time; from fastvis.atomic import lock_folder; "
                               f"lock_folder({str(run)!r}); print('held', flush=True); time.sleep(600)"],
                              stdout=subprocess.PIPE, text=True, cwd=REPO)
    try:
        assert holder.stdout.readline().strip() == "held"
        assert main(_args(data, run)) == 1
        holder.kill()
        holder.wait(timeout=60)
        assert "pid" in (run / LOCK_NAME).read_text()  # the dead process's note is still there
        assert main(_args(data, run)) == 0
    finally:
        holder.kill()


def test_a_lock_that_is_not_a_regular_file_is_refused_without_waiting(data, tmp_path, capsys):
    from fastvis.cli.train import main

    run = tmp_path / "run"
    run.mkdir()
    os.mkfifo(run / LOCK_NAME)
    assert main(_args(data, run)) == 1
    assert "not a regular file" in capsys.readouterr().err


def test_a_finished_run_started_again_keeps_each_row_once(data, tmp_path):
    from fastvis.cli.train import main

    run = tmp_path / "run"
    args = _args(data, run, "--resume", "auto")
    assert main(args) == 0
    first = (run / "metrics.jsonl").read_text().splitlines()
    assert main(args) == 0  # it finds its last checkpoint: evaluates again, trains nothing more
    again = (run / "metrics.jsonl").read_text().splitlines()
    assert len(again) == len(first) and [json.loads(r)["step"] for r in again] == [json.loads(r)["step"]
                                                                                   for r in first]
    assert sum(bool(json.loads(r).get("final")) for r in again) == 1  # the final evaluation of --val, once


def test_a_fifo_in_place_of_metrics_jsonl_is_refused_without_waiting(data, tmp_path, capsys):
    from fastvis.cli.train import main

    run = tmp_path / "run"
    run.mkdir()
    os.mkfifo(run / "metrics.jsonl")
    assert main(_args(data, run)) == 1
    assert "metrics.jsonl: exists and is not a regular file" in capsys.readouterr().err


def test_a_run_from_a_file_of_every_option_resumes_with_the_choices_it_made(data, tmp_path):
    """fastvis-ablate starts each run from a file listing every option, those left to the recipe
    as null; a run of it killed after a checkpoint must resume under the same command line,
    keeping the optimiser, batch, model and precision it resolved at its start."""
    from fastvis.cli.train import main
    from fastvis.train.config import TrainConfig

    run = tmp_path / "run"
    spec = tmp_path / "spec.json"
    cfg = TrainConfig.from_options(data=data[0], val=data[1], model="tinynet", device="cpu", epochs=1)
    options = cfg.as_dict()
    assert options["optim"]["optimizer"] is None and options["speed"]["amp"] is None  # left to the recipe
    spec.write_text(json.dumps(options))
    args = ["--config", str(spec), "--out", str(run), "--resume", "auto", "-q"]
    assert main(args) == 0
    saved = json.loads((run / "config.json").read_text())
    assert saved["optim"]["optimizer"] is not None and saved["speed"]["amp"] is not None
    assert main(args) == 0  # was: "--optimizer None: the run ... was started with sgd"
    again = json.loads((run / "config.json").read_text())
    assert {k: v for k, v in again.items() if k != "run"} == {k: v for k, v in saved.items() if k != "run"}
