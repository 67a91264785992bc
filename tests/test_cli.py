"""The command-line tools, run as a user would (subprocesses)."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from fastvis.beton import BetonReader


def cli(tool: str, *args, check=None):
    proc = subprocess.run([sys.executable, "-m", f"fastvis.cli.{tool}", *map(str, args)],
                          capture_output=True, text=True, timeout=300)
    if check is not None:
        assert proc.returncode == check, proc.stderr
    return proc


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
    proc = cli("bench", "poisson", "--device", "cpu", "--batch", "2", "--repeats", "1", "--json", out, check=0)
    rows = json.loads(out.read_text())["rows"]
    ours = rows["fastvis cpu (1 patch)"]
    assert ours["ms"] > 0 and ours["max_err"] <= 1.0 and ours["iterations"] > 0
    assert any(k.startswith("OpenCV") for k in rows) and "vs OpenCV" in proc.stdout


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
