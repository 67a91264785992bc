"""Damaged data does not train: every loader of the training path checks each sample against the
CRC-32 written with the file the first time it reads it, and a damaged sample stops the run with
one line naming the file and the sample; ``--no-checksums`` trains on files the user trusts."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from fastvis.beton import BetonError, BetonReader
from tests.helpers import write_set


def _damaged(src: str, dst: Path, sample: int, where: str) -> Path:
    """A copy of ``src`` (and its sidecar) with one bit changed in a sample's pixels or its label."""
    r = BetonReader(src)
    raw = bytearray(Path(src).read_bytes())
    if where == "pixels":
        at = int(r._ptrs[r.names.index("image")][sample]) + 7
    else:  # the label in the sample's metadata record: find the record's bytes in the file
        record = r.metadata[sample].tobytes()
        at = bytes(raw).index(record) + r.metadata.dtype.fields["f1"][1]
        assert np.frombuffer(bytes(raw[at:at + 8]), "<i8")[0] == r.labels()[sample]
    raw[at] ^= 1 << 1  # a colour one step off, or a label 2 away: both still in range
    dst.write_bytes(bytes(raw))
    Path(str(dst) + ".json").write_text(Path(src + ".json").read_text())
    return dst


@pytest.fixture(scope="module")
def damaged(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("damaged")
    src = str(write_set(root / "train.beton", 256, 0))
    return {"good": Path(src), "pixels": _damaged(src, root / "pixels.beton", 37, "pixels"),
            "label": _damaged(src, root / "label.beton", 37, "label")}


@pytest.mark.parametrize("where", ["pixels", "label"])
def test_a_checked_reader_names_the_damaged_sample_and_reads_the_others(damaged, where):
    plain, checked = BetonReader(damaged[where]), BetonReader(damaged[where], checked=True)
    assert plain.verify() == [37]
    plain.read_batch("image", [36, 37])  # unchecked: the damage passes unseen
    assert checked.read_batch("image", [0, 36, 38]).shape == (3, 16, 16, 3)
    for read in (lambda: checked.read_batch("image", [36, 37]), lambda: checked[37],
                 lambda: checked.get(-219, "label"), lambda: checked.payload(37, "image")):
        with pytest.raises(BetonError, match=r"pixels.beton|label.beton") as exc:
            read()
        assert "sample 37 no longer matches the CRC-32" in str(exc.value)
    with pytest.raises(BetonError, match="sample 37"):
        checked.check()
    BetonReader(damaged["good"]).check()  # a whole file passes


def test_each_sample_is_checked_once(damaged, monkeypatch):
    from fastvis.beton import integrity

    seen = []
    real = integrity.SampleCheck.bad
    monkeypatch.setattr(integrity.SampleCheck, "bad", lambda self, idx: seen.extend(idx) or real(self, idx))
    r = BetonReader(damaged["good"], checked=True)
    r.read_batch("image", [1, 2, 3])
    r.read_batch("label", [2, 3, 4])
    r.read_batch("image", [4, 4, 1])
    assert sorted(seen) == [1, 2, 3, 4]


def test_a_file_without_checksums_is_read_unchecked(tmp_path):
    from fastvis.beton.format import GUARD_MAGIC

    src = write_set(tmp_path / "s.beton", 8, 0)
    raw = bytearray(src.read_bytes())
    at = bytes(raw).index(GUARD_MAGIC)
    raw[at:at + len(GUARD_MAGIC)] = bytes(len(GUARD_MAGIC))  # as another writer's file: no record
    other = tmp_path / "other.beton"
    other.write_bytes(bytes(raw))
    r = BetonReader(other, checked=True)
    r.check()
    assert r.read_batch("image", range(8)).shape == (8, 16, 16, 3)


@pytest.mark.parametrize("loader", ["resident", "streaming", "jpeg"])
@pytest.mark.parametrize("where", ["pixels", "label"])
def test_training_on_a_damaged_sample_stops_naming_it(damaged, data, tmp_path, capsys, loader, where):
    from fastvis.cli.train import main

    args = ["--data", str(damaged[where]), "--val", data[1], "--model", "tinynet", "--device", "cpu", "-q",
            "--epochs", "1", "--batch-size", "32", "--loader", loader, "--out", str(tmp_path / "run")]
    if loader == "jpeg":
        args += ["--image-size", "16"]
    assert main(args) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and f"{where}.beton: sample 37 no longer matches the CRC-32" in err, err
    assert not (tmp_path / "run" / "checkpoint.pt").exists()


def test_no_checksums_trains_on_a_file_the_user_trusts(damaged, data, tmp_path):
    from fastvis.cli.train import main

    args = ["--data", str(damaged["pixels"]), "--val", data[1], "--model", "tinynet", "--device", "cpu", "-q",
            "--epochs", "1", "--batch-size", "32", "--out", str(tmp_path / "run"), "--no-checksums"]
    assert main(args) == 0


def test_a_damaged_validation_sample_is_named_too(damaged, data, tmp_path, capsys):
    from fastvis.cli.train import main

    args = ["--data", data[0], "--val", str(damaged["label"]), "--model", "tinynet", "--device", "cpu", "-q",
            "--epochs", "1", "--batch-size", "32", "--out", str(tmp_path / "run")]
    assert main(args) == 1
    assert "label.beton: sample 37 no longer matches" in capsys.readouterr().err
