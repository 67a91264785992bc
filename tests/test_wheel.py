"""The package as a user installs it: a wheel built from the repository, installed (not
editable) into a fresh virtual environment that sees only the declared runtime requirements,
then every console script and a tiny end-to-end run from outside the source tree."""
from __future__ import annotations

import importlib.metadata as md
import json
import os
import subprocess
import sys

try:
    import tomllib
except ImportError:  # Python 3.10
    import tomli as tomllib
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


def _requirement(text: str):
    try:
        from packaging.requirements import Requirement
    except ImportError:  # pip vendors it
        from pip._vendor.packaging.requirements import Requirement
    return Requirement(text)


def _runtime_closure(requirements: list[str]) -> dict[str, md.Distribution]:
    """The installed distributions the declared requirements need, recursively (no extras)."""
    seen: dict[str, md.Distribution] = {}
    todo = list(requirements)
    while todo:
        req = _requirement(todo.pop())
        if req.marker is not None and not req.marker.evaluate({"extra": ""}):
            continue
        key = req.name.lower().replace("_", "-")
        if key in seen:
            continue
        try:
            dist = md.distribution(req.name)
        except md.PackageNotFoundError:
            pytest.fail(f"declared requirement {req} is not installed in the test environment")
        seen[key] = dist
        todo.extend(dist.requires or [])
    return seen


def _link_dists(dists: dict[str, md.Distribution], folder: Path) -> None:
    """A folder of links to the top-level files and packages of ``dists`` (a site-packages
    that holds only them)."""
    folder.mkdir()
    for dist in dists.values():
        root = Path(dist.locate_file(""))
        tops = {Path(str(f)).parts[0] for f in dist.files or [] if not str(f).startswith("..")}
        for top in tops:
            src, dst = root / top, folder / top
            if src.exists() and not dst.exists():
                dst.symlink_to(src, target_is_directory=src.is_dir())


def _run(cmd, cwd, **kw):
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "NUMBA_ENABLE_CUDASIM", "VIRTUAL_ENV")}
    proc = subprocess.run([str(c) for c in cmd], cwd=cwd, capture_output=True, text=True, env=env, timeout=900, **kw)
    assert proc.returncode == 0, f"{cmd}\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}"
    return proc


def _image_folder(root: Path) -> Path:
    rng = np.random.default_rng(0)
    for split, n in (("train", 24), ("test", 8)):
        for k, colour in enumerate(([220, 30, 30], [30, 30, 220])):
            d = root / split / f"class{k}"
            d.mkdir(parents=True)
            for i in range(n):
                img = np.clip(np.array(colour) + rng.integers(-40, 40, (16, 16, 3)), 0, 255).astype(np.uint8)
                Image.fromarray(img).save(d / f"{i}.png")
    return root


def test_wheel_installs_and_runs_outside_the_source_tree(tmp_path):
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    dist_dir = tmp_path / "dist"
    _run([sys.executable, "-m", "pip", "wheel", REPO, "--no-deps", "-q", "-w", dist_dir], cwd=tmp_path)
    (wheel,) = dist_dir.glob("fastvis-*.whl")

    # every module of the source tree is in the wheel
    names = set(zipfile.ZipFile(wheel).namelist())
    sources = {str(p.relative_to(REPO)) for p in (REPO / "fastvis").rglob("*.py")}
    assert sources <= names, f"missing from the wheel: {sorted(sources - names)}"

    # a fresh environment that sees the declared runtime requirements and nothing else
    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", venv], cwd=tmp_path)  # pip comes from outside
    py = venv / "bin" / "python"
    site = Path(_run([py, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], cwd=tmp_path)
                .stdout.strip())
    deps = tmp_path / "deps"
    _link_dists(_runtime_closure(project["dependencies"]), deps)
    (site / "runtime-deps.pth").write_text(f"{deps}\n")
    pip = [sys.executable, "-m", "pip", "--python", py]
    _run([*pip, "install", "-q", "--no-deps", "--no-index", wheel], cwd=tmp_path)
    _run([*pip, "check"], cwd=tmp_path)  # every declared requirement is satisfied

    work = tmp_path / "work"  # outside the source tree: nothing can be imported from the checkout
    work.mkdir()
    where = _run([py, "-c", "import fastvis; print(fastvis.__file__)"], cwd=work).stdout.strip()
    assert where.startswith(str(site)), where
    for script in project["scripts"]:
        out = _run([venv / "bin" / script, "--help"], cwd=work).stdout
        assert "usage" in out.lower(), script

    photos = _image_folder(work / "photos")
    _run([venv / "bin" / "fastvis-convert", photos, "train.beton", "-q"], cwd=work)
    _run([venv / "bin" / "fastvis-convert", photos, "test.beton", "--split", "test", "-q"], cwd=work)
    _run([venv / "bin" / "fastvis-inspect", "train.beton"], cwd=work)
    _run([venv / "bin" / "fastvis-train", "--data", "train.beton", "--val", "test.beton", "--model", "tinynet",
          "--epochs", "1", "--batch-size", "16", "--device", "cpu", "--out", "run", "-q"], cwd=work)
    summary = json.loads((work / "run" / "summary.json").read_text())
    assert summary["model"] == "tinynet" and summary["train_samples"] == 48 and summary["steps"] == 3
    assert (work / "run" / "report.pdf").read_bytes()[:4] == b"%PDF"
    assert json.loads((work / "run" / "config.json").read_text())["optim"]["batch_size"] == 16
