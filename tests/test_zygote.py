"""The suite's warm starter (tests.zygote) must run a command-line tool as a fresh interpreter would."""
from __future__ import annotations

import json

from tests.helpers import _env, _zygote_for, run_cli, train_cli, train_killed
from tests.zygote import import_time_env


def test_a_forked_run_is_a_fresh_one_in_status_streams_and_result(data, tmp_path):
    args = ["--data", data[0], "--val", data[1], "--model", "tinynet", "--epochs", 1, "--batch-size", 32,
            "--device", "cpu", "--seed", 3, "--no-amp"]  # fp32: not a timed choice
    runs = {}
    for fresh in (False, True):
        out = tmp_path / f"fresh{fresh}"
        proc = train_cli(*args, "--out", out, "-q", fresh=fresh, check=0)
        runs[fresh] = proc, json.loads((out / "summary.json").read_text())
    (a, sa), (b, sb) = runs[False], runs[True]
    assert sa["top1"] == sb["top1"] and sa["val_loss"] == sb["val_loss"] and sa["steps"] == sb["steps"]
    assert a.stdout.replace(str(tmp_path / "freshFalse"), "OUT") == b.stdout.replace(str(tmp_path / "freshTrue"), "OUT")
    for fresh in (False, True):  # bad input: the same one line, the same status
        proc = run_cli("train", "--data", tmp_path / "missing.beton", "--out", tmp_path / "bad", fresh=fresh)
        runs[fresh] = proc
    assert (runs[False].returncode, runs[False].stdout, runs[False].stderr) == \
        (runs[True].returncode, runs[True].stdout, runs[True].stderr) != (0, "", "")
    assert runs[False].stderr.count("\n") == 1 and "missing.beton" in runs[False].stderr


def test_a_killed_run_reports_its_signal_and_exit_codes_pass_through(data, tmp_path):
    proc = train_killed("--data", data[0], "--val", data[1], "--model", "tinynet", "--epochs", 2, "--batch-size", 64,
                        "--device", "cpu", "--out", tmp_path / "k", "-q", at="checkpoint", n=1)
    assert proc.returncode == -9
    assert run_cli("train", "--epochs", "many").returncode == 2  # argparse's status
    forked, fresh = (run_cli("probe", "x", module="tests.zygote_probe", check=3, fresh=f) for f in (False, True))
    assert forked.stdout == fresh.stdout == "argv x\nthread joined\natexit ran\n"
    assert forked.stderr == fresh.stderr == "to stderr\n"


def test_a_setting_read_at_import_gets_its_own_starter():
    plain = _zygote_for(_env())
    assert _zygote_for(_env()) is plain
    other = _zygote_for(_env({"OMP_NUM_THREADS": "1"}))
    assert other is not plain and ("OMP_NUM_THREADS", "1") in import_time_env(_env({"OMP_NUM_THREADS": "1"}))
    assert import_time_env({"WANDB_MODE": "offline", "HOME": "/x"}) == ()  # read at run time: shared
