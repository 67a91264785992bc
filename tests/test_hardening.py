"""Bad input, kills and bad options: one clear line naming the file and the problem, nothing
already written lost or left half-written, no damaged data returned as good."""
from __future__ import annotations

import contextlib
import errno
import json
import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fastvis.atomic import LOCK_NAME, check_output, remove_stale, write_atomic
from fastvis.beton import BetonError, BetonReader, BetonWriter, IntField, RGBImageField
from tests.helpers import run_cli as cli
from tests.helpers import train_cli, train_killed

REPO = Path(__file__).resolve().parents[1]


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def _folder(root: Path, n: int) -> Path:
    rng = np.random.default_rng(0)
    for k in range(2):
        d = root / f"c{k}"
        d.mkdir(parents=True)
        for i in range(n):
            Image.fromarray(rng.integers(0, 256, (24, 24, 3), dtype=np.uint8)).save(d / f"{i}.png")
    return root


# -- outputs ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["fifo", "folder", "device"])
def test_an_output_that_is_not_a_regular_file_is_refused_before_any_work(tmp_path, kind):
    out = tmp_path / "out.beton"
    if kind == "fifo":
        os.mkfifo(out)
    elif kind == "folder":
        out.mkdir()
    else:
        if os.geteuid() != 0:
            pytest.skip("making a device node needs root")
        os.mknod(out, 0o600 | 0o020000, os.makedev(1, 3))  # a character device, as /dev/null
    before = os.stat(out)
    proc = cli("convert", _folder(tmp_path / "imgs", 2), out, "-q")
    assert proc.returncode == 1 and str(out) in proc.stderr and "Traceback" not in proc.stderr
    after = os.stat(out)
    assert (after.st_mode, after.st_ino) == (before.st_mode, before.st_ino)  # untouched


def test_stale_temporaries_of_dead_writers_are_removed_and_live_ones_kept(tmp_path):
    out = tmp_path / "x.beton"
    dead = tmp_path / f".x.beton.{_dead_pid()}.abc.part"
    live = tmp_path / f".x.beton.{os.getppid()}.def.part"
    other = tmp_path / f".y.beton.{_dead_pid()}.abc.part"
    for p in (dead, live, other):
        p.write_bytes(b"junk")
    assert remove_stale(out) == [dead]
    assert live.exists() and other.exists() and not dead.exists()


def test_atomic_write_keeps_the_old_file_when_writing_fails(tmp_path, monkeypatch):
    path = tmp_path / "summary.json"
    write_atomic(path, '{"old": 1}')

    def broken(*args):
        raise OSError("disk full")

    monkeypatch.setattr(os, "fsync", broken)
    with pytest.raises(OSError, match="disk full"):
        write_atomic(path, '{"new": 2}')
    assert json.loads(path.read_text()) == {"old": 1} and list(tmp_path.glob(".*.part")) == []
    monkeypatch.undo()
    with pytest.raises(Exception, match="not a regular file"):
        os.mkfifo(tmp_path / "fifo")
        check_output(tmp_path / "fifo")


def test_a_conversion_that_fills_the_disk_leaves_the_file_and_its_sidecar_as_they_were(tmp_path, monkeypatch):
    """The disk fills up while the sidecar is written, after the .beton itself is complete: neither
    is renamed into place, so the earlier conversion's file and class names stay together."""
    from fastvis.convert import convert
    from fastvis.sources import ImageFolderSource

    src, out = _folder(tmp_path / "imgs", 3), tmp_path / "out.beton"
    convert(ImageFolderSource(src), out, progress=False)
    before = out.read_bytes(), (tmp_path / "out.beton.json").read_bytes()
    (src / "c0" / "extra.png").write_bytes((src / "c0" / "0.png").read_bytes())
    fsync = os.fsync

    def full(fd):  # the sidecar's temporary cannot be flushed to disk
        if os.path.basename(os.readlink(f"/proc/self/fd/{fd}")).startswith(".out.beton.json."):
            raise OSError(errno.ENOSPC, "No space left on device")
        return fsync(fd)

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(OSError, match="No space left"):
        convert(ImageFolderSource(src), out, progress=False)
    monkeypatch.undo()
    assert (out.read_bytes(), (tmp_path / "out.beton.json").read_bytes()) == before
    assert list(tmp_path.glob(".*part")) == []
    convert(ImageFolderSource(src), out, progress=False)  # with room again: both new, together
    assert len(BetonReader(out)) == 7 and json.loads((tmp_path / "out.beton.json").read_text())["num_samples"] == 7


@contextlib.contextmanager
def _disk_full_after(size: int):
    """Writes past ``size`` bytes of a file fail as on a full disk (RLIMIT_FSIZE: Python ignores
    SIGXFSZ, so the write raises EFBIG)."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (size, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))


def test_a_checkpoint_on_a_full_disk_is_one_os_error_naming_it(tmp_path):
    """torch.save's zip writer turns a failed write into a RuntimeError ("unexpected pos"): the
    checkpoint writer says what failed instead, and the checkpoint there before stays."""
    import torch

    from fastvis.train.checkpoint import save_atomic

    path = tmp_path / "checkpoint.pt"
    save_atomic({"w": torch.zeros(4)}, path)
    before = path.read_bytes()
    with _disk_full_after(8192), pytest.raises(OSError, match="checkpoint.pt"):
        save_atomic({"w": torch.zeros(100_000)}, path)
    assert path.read_bytes() == before and list(tmp_path.glob(".*part")) == []


@pytest.mark.parametrize("name", ["report.pdf", "curve.png", "slides.pdf"])
def test_a_report_on_a_full_disk_is_one_os_error_and_the_old_one_stays(tmp_path, name):
    """On a full disk the figure is one OSError naming the file, never the PDF writer's own
    errors, and the file there before is left as it was."""
    from fastvis.plots import pyplot, save_figure

    def figure():
        fig = pyplot().figure()
        fig.add_subplot().plot(np.random.default_rng(0).random(5000))
        return fig

    path = tmp_path / name
    path.write_bytes(b"the old one")
    with _disk_full_after(2048), pytest.raises(OSError, match=name):
        if name == "slides.pdf":
            from matplotlib.backends.backend_pdf import PdfPages

            def pages(fp):
                with PdfPages(fp) as pdf:
                    pdf.savefig(figure())
                    pdf.savefig(figure())
            save_figure(pages, path)
        else:
            save_figure(figure(), path, format=name.rsplit(".", 1)[1])
    assert path.read_bytes() == b"the old one" and list(tmp_path.glob(".*part")) == []
    save_figure(figure(), path, format=name.rsplit(".", 1)[1])  # with room again
    assert path.read_bytes()[:4] in (b"%PDF", b"\x89PNG")


@pytest.mark.parametrize("delay", [0.5, 1.0, 1.5, 2.5])
def test_a_conversion_killed_at_any_moment_leaves_no_output_and_no_temporaries(tmp_path, delay):
    src = _folder(tmp_path / "imgs", 1500)
    out = tmp_path / "out.beton"
    proc = subprocess.Popen([sys.executable, "-m", "fastvis.cli.convert", str(src), str(out), "-q"],
                            stderr=subprocess.PIPE, text=True, cwd=REPO)
    time.sleep(delay)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    leftovers = list(tmp_path.glob(".*part"))
    assert leftovers == []
    assert proc.returncode in (0, 128 + signal.SIGTERM, -signal.SIGTERM), err
    # The signal may land before the rename (no output) or after it, even as the process exits
    # having printed its summary (a whole output, though the exit status is the signal's): never
    # anything between.
    if out.exists():
        assert len(BetonReader(out)) == 3000
    else:
        assert proc.returncode != 0


# -- damaged files and sidecars ---------------------------------------------------------------------

def _small(path: Path, labels=(0, 1, 2, 1), size: int = 4) -> Path:
    with BetonWriter(path, {"image": RGBImageField(), "label": IntField()}, capacity=len(labels)) as w:
        for y in labels:
            w.write((np.full((size, size, 3), abs(y) % 256, np.uint8), y))
    return path


def test_a_fifo_is_not_opened(tmp_path):
    fifo = tmp_path / "x.beton"
    os.mkfifo(fifo)
    proc = cli("inspect", fifo, timeout=60)
    assert proc.returncode == 1 and "not a regular file" in proc.stderr


@pytest.mark.parametrize("sidecar,problem", [
    ("[1, 2]", "expected a JSON object"),
    ('{"classes": 5}', "list of names"),
    ('{"num_classes": "ten"}', "num_classes"),
    ('{"num_classes": 2, "classes": ["a", "b", "c"]}', "3 class names for 2 classes"),
    ('{"num_samples": 1000}', "another version"),
    ("{not json", "unreadable sidecar"),
])
def test_a_damaged_sidecar_is_one_line(tmp_path, sidecar, problem):
    path = _small(tmp_path / "s.beton")
    (tmp_path / "s.beton.json").write_text(sidecar)
    proc = cli("inspect", path)
    assert proc.returncode == 1 and problem in proc.stderr and "s.beton.json" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_a_sidecar_left_from_an_earlier_conversion_is_recognised(tmp_path):
    src_a, src_b = _folder(tmp_path / "a", 3), _folder(tmp_path / "b", 6)
    out = tmp_path / "o.beton"
    assert cli("convert", src_a, out, "-q").returncode == 0
    old_sidecar = (tmp_path / "o.beton.json").read_text()
    assert cli("convert", src_b, out, "-q").returncode == 0
    (tmp_path / "o.beton.json").write_text(old_sidecar)  # as if killed between the two renames
    with pytest.raises(BetonError, match="another version"):
        BetonReader(out)


@pytest.mark.parametrize("bad", [268435464, -3, 7])
def test_a_class_id_out_of_range_is_named_not_counted(tmp_path, bad):
    path = _small(tmp_path / "l.beton", labels=(0, 1, bad, 1))
    (tmp_path / "l.beton.json").write_text(json.dumps({"num_classes": 3, "classes": ["a", "b", "c"]}))
    proc = cli("inspect", path)
    assert proc.returncode == 1 and "sample 2" in proc.stderr and str(bad) in proc.stderr


# -- the trainer's options ---------------------------------------------------------------------------

BAD_OPTIONS = [
    (["--batch-size", "0"], "--batch-size 0"),
    (["--batch-size", "-8"], "--batch-size -8"),
    (["--label-smoothing", "2"], "--label-smoothing"),
    (["--device", "tpu"], "--device tpu"),
    (["--epochs", "0"], "--epochs 0"),
    (["--epochs", "-1"], "--epochs -1"),
    (["--weight-decay", "-1"], "--weight-decay"),
    (["--warmup", "2"], "--warmup"),
    (["--ema", "2"], "--ema"),
    (["--nproc-per-node", "0"], "--nproc-per-node"),
    (["--randaugment", "two"], "--randaugment"),
    (["--batch-size", "4096"], "no whole batch"),
    (["--holdout", "100000"], "holdout"),
]


@pytest.mark.parametrize("extra,message", BAD_OPTIONS)
def test_bad_trainer_options_are_one_line(data, tmp_path, capsys, extra, message):
    from fastvis.cli.train import main

    base = ["--data", data[0], "--val", data[1], "--model", "tinynet", "--device", "cpu", "-q", "--out",
            str(tmp_path / "run")]
    if "--epochs" not in extra:
        base += ["--epochs", "1"]
    assert main(base + extra) == 1
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1, err


def test_bad_data_is_one_line(data, tmp_path, capsys):
    from fastvis.cli.train import main

    empty = tmp_path / "empty.beton"
    with BetonWriter(empty, {"image": RGBImageField(), "label": IntField()}, capacity=0):
        pass
    no_image = tmp_path / "noimage.beton"
    with BetonWriter(no_image, {"label": IntField()}, capacity=4) as w:
        for y in range(4):
            w.write((y,))
    more = _small(tmp_path / "more.beton", labels=(0, 1, 9, 1), size=16)  # the validation set has a class id 9
    base = ["--model", "tinynet", "--device", "cpu", "-q", "--epochs", "1", "--batch-size", "32"]
    for train, val, message in ((empty, data[1], "no samples"), (no_image, data[1], "no field 'image'"),
                                (data[0], more, "not the same classes")):
        assert main(["--data", str(train), "--val", str(val), "--out", str(tmp_path / "r"), *base]) == 1
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1, err


def test_a_budget_too_small_to_train_is_refused(data, tmp_path, capsys):
    from fastvis.cli.train import main

    code = main(["--data", data[0], "--val", data[1], "--model", "tinynet", "--device", "cpu", "-q", "--budget", "1s",
                 "--batch-size", "32",
                 "--out", str(tmp_path / "r")])
    assert code == 1 and "leaves no time to train" in capsys.readouterr().err


# -- resuming -----------------------------------------------------------------------------------------

def test_resume_continues_the_run_with_its_own_settings(data, tmp_path):
    run = tmp_path / "run"
    args = ["--data", data[0], "--val", data[1], "--model", "tinynet", "--epochs", "3", "--batch-size", "32",
            "--lr", "0.2", "--device", "cpu", "-q", "--cutmix", "1.0"]
    train_killed(*args, "--out", run, at="checkpoint", n=1)
    stale = run / f".checkpoint.pt.{_dead_pid()}.x.part"
    stale.write_bytes(b"half a checkpoint")  # as a kill during a save leaves it
    changed = train_cli("--resume", run, "--lr", "0.5")
    assert changed.returncode == 1 and "--lr 0.5" in changed.stderr and "keeps its settings" in changed.stderr
    with open(run / "metrics.jsonl", "a") as fp:  # as if killed after an evaluation, before its checkpoint
        fp.write(json.dumps({"epoch": 2.0, "step": 16, "split": "test", "top1": 0.999}) + "\n")
    resumed = train_cli("--resume", run)  # the run folder alone: its data, model and options come from it
    assert resumed.returncode == 0, resumed.stderr
    summary = json.loads((run / "summary.json").read_text())
    assert summary["steps"] == 24 and summary["hyper"]["cutmix"] == 1.0 and not stale.exists()
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [0.625, 1.25, 1.875, 2.5, 3] and 0.999 not in [r["top1"] for r in rows]  # once
    more = train_cli("--resume", run, "--epochs", "4")  # more epochs: does what it says
    assert more.returncode == 0 and json.loads((run / "summary.json").read_text())["steps"] == 32


def test_resume_auto_starts_or_continues(data, tmp_path):
    run = tmp_path / "auto"
    args = ["--data", data[0], "--val", data[1], "--model", "tinynet", "--epochs", "2", "--batch-size", "32",
            "--device", "cpu", "-q", "--out", run, "--resume", "auto"]
    train_killed(*args, at="checkpoint", n=1)  # nothing to resume yet: starts
    second = train_cli(*args)  # the same command line: continues
    assert second.returncode == 0, second.stderr
    assert json.loads((run / "summary.json").read_text())["steps"] == 16


def _whole_outputs(run: Path) -> list[str]:
    """The run's outputs that are there, each checked to be whole (a kill may leave temporaries
    of the writer it stopped, removed at the next start, but never a half-written output)."""
    import torch

    there = []
    for name in ("summary.json", "config.json"):
        if (run / name).exists():
            json.loads((run / name).read_text())
            there.append(name)
    if (run / "metrics.jsonl").exists():
        for line in (run / "metrics.jsonl").read_text().splitlines():
            json.loads(line)
        there.append("metrics.jsonl")
    if (run / "report.pdf").exists():
        pdf = (run / "report.pdf").read_bytes()
        assert pdf.startswith(b"%PDF") and pdf.rstrip().endswith(b"%%EOF")
        there.append("report.pdf")
    if (run / "curve.png").exists():
        with Image.open(run / "curve.png") as img:
            img.verify()
        there.append("curve.png")
    if (run / "checkpoint.pt").exists():
        torch.load(run / "checkpoint.pt", weights_only=True)
        there.append("checkpoint.pt")
    return there


# every moment of a 2-epoch run's life where a kill can land, as two chains of kills: each kill is
# (event, how many of them before it) in a process started with --resume auto on the folder the kill
# before it left, so that each chain also resumes runs killed more than once. A fresh run writes
# config.json and metrics.jsonl, evaluates and checkpoints each epoch, then writes the curve, the
# report and the summary; a run resumed from the last checkpoint has only those final writes left.
KILL_CHAINS = {
    "early": [("write", 2),  # fresh: inside the second file write
              ("checkpoint-write", 1),  # nothing to resume: starts again, killed inside epoch 1's checkpoint
              ("evaluation", 1),  # again from the start: inside epoch 1's evaluation
              ("checkpoint", 1),  # again: right after epoch 1's checkpoint
              ("evaluation", 1)],  # resumed from epoch 1: inside epoch 2's evaluation
    "late": [("checkpoint-write", 2),  # fresh: inside epoch 2's checkpoint write
             ("checkpoint", 1),  # resumed from epoch 1: right after epoch 2's checkpoint
             ("write:curve.png", 1),  # resumed with training done: inside the last writes, one by one
             ("write:report.pdf", 1),
             ("write:summary.json", 1)],
}


@pytest.mark.slow
def test_a_run_killed_at_many_moments_leaves_whole_outputs_and_resumes(data, tmp_path):
    """SIGKILL a training run at moments spread over its whole life (inside a checkpoint write,
    after epochs, inside evaluations, inside the writes of the curve, the report, the summary),
    again and again: whatever it wrote is whole after each kill, and the same command line with
    --resume auto then finishes the run with every step done once and no temporaries left. The
    kills come at events, not at times: any machine's speed."""
    args = ["--data", data[0], "--val", data[1], "--model", "tinynet", "--epochs", "2", "--batch-size", "32",
            "--device", "cpu", "-q", "--resume", "auto"]
    steps = 2 * len(BetonReader(data[0])) // 32

    def chain(name: str) -> list[set[str]]:
        run, left = tmp_path / name, []
        for event, n in KILL_CHAINS[name]:
            train_killed(*args, "--out", run, at=event, n=n)
            left.append(set(_whole_outputs(run)))
        again = train_cli(*args, "--out", run)
        assert again.returncode == 0, again.stderr[-2000:]
        assert set(_whole_outputs(run)) >= {"summary.json", "report.pdf", "curve.png", "metrics.jsonl"}
        assert not [p.name for p in run.iterdir() if p.name != LOCK_NAME and (p.name.startswith(".")
                                                                               or p.name.endswith(".part"))]
        assert json.loads((run / "summary.json").read_text())["steps"] == steps
        rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
        assert len(rows) == len({(r["epoch"], r["split"], bool(r.get("final"))) for r in rows})  # no row twice
        return left

    # the two chains at once (each its own folder; the kills come at events, so sharing the cores
    # changes nothing but the time the sweep takes)
    with ThreadPoolExecutor(2) as pool:
        early, late = pool.map(chain, KILL_CHAINS)
    assert "checkpoint.pt" not in early[1] and {"checkpoint.pt", "metrics.jsonl"} <= early[3]  # before, after epoch 1
    assert "curve.png" not in late[2] and "curve.png" in late[3] and "report.pdf" in late[4]  # the last writes
    assert "summary.json" not in late[4]


# -- integrity sweeps ---------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    root = tmp_path_factory.mktemp("integrity")
    out = root / "c.beton"
    assert cli("convert", _folder(root / "imgs", 12), out, "-q", "--raw").returncode == 0
    reader = BetonReader(out)
    originals = [reader[i] for i in range(len(reader))]
    return out, originals


def _flipped(src: Path, dst: Path, offset: int, bit: int) -> Path:
    raw = bytearray(src.read_bytes())
    raw[offset] ^= 1 << bit
    dst.write_bytes(bytes(raw))
    (dst.parent / (dst.name + ".json")).write_text((src.parent / (src.name + ".json")).read_text())
    return dst


def _same(a, b) -> bool:
    return all(np.array_equal(np.asarray(x), np.asarray(y)) for x, y in zip(a, b))


def test_every_flipped_bit_is_caught_or_harmless(converted, tmp_path):
    """Flip one bit at offsets all over the file (header, descriptors, metadata, pixels, the
    allocation table): the file is refused when opened, or verification names the changed
    sample, or nothing a reader returns has changed. Never different data passed off as good."""
    src, originals = converted
    size = src.stat().st_size
    offsets = sorted(set(list(range(0, 2048, 7)) + list(range(2048, size, max(1, size // 400)))))
    silent = []
    for k, off in enumerate(offsets):
        path = _flipped(src, tmp_path / f"f{k % 4}.beton", off, k % 8)
        try:
            r = BetonReader(path)
            changed = r.verify()
            got = [r[i] for i in range(len(r))]
        except (BetonError, ValueError):
            continue  # refused, with the file named
        if not changed and not all(_same(a, b) for a, b in zip(got, originals)):
            silent.append(off)
    assert not silent, f"bit flips at {silent[:5]} returned changed data as good"
    assert BetonReader(src).verify() == []


def test_the_training_path_never_reads_a_flipped_bit_as_good(converted, tmp_path):
    """The same sweep through what training reads (a checked reader: each sample against its
    CRC-32 at its first read, labels included): every flip is refused with the file named, or
    every value read is what was written. Zero silent wrong reads."""
    src, originals = converted
    size = src.stat().st_size
    offsets = sorted(set(list(range(0, 2048, 5)) + list(range(2048, size, max(1, size // 600)))))
    silent, refused = [], 0
    for k, off in enumerate(offsets):
        path = _flipped(src, tmp_path / f"t{k % 4}.beton", off, (k + 3) % 8)
        try:
            r = BetonReader(path, checked=True)
            got = [r[i] for i in range(len(r))]
            labels = r.read_batch("label", range(len(r)))
        except (BetonError, ValueError) as exc:
            assert str(path) in str(exc)
            refused += 1
            continue
        if not all(_same(a, b) for a, b in zip(got, originals)) or \
                list(labels) != [int(o[1]) for o in originals]:
            silent.append(off)
    assert not silent, f"bit flips at {silent[:5]} were read as good data"
    assert refused > len(offsets) // 3  # the others change nothing a reader returns (padding, unused bytes)


def test_a_pointer_into_another_sample_is_refused(converted, tmp_path):
    src, _ = converted
    r = BetonReader(src)
    j = r.names.index("image")
    raw = bytearray(src.read_bytes())
    ptr3, ptr4 = int(r._ptrs[j][3]), int(r._ptrs[j][4])
    at = bytes(raw).find(np.array([ptr3], "<u8").tobytes())  # sample 3's pointer in the metadata table
    assert at > 0
    raw[at : at + 8] = np.array([ptr4], "<u8").tobytes()  # sample 3 now points at sample 4's pixels
    bad = tmp_path / "p.beton"
    bad.write_bytes(bytes(raw))
    with pytest.raises(BetonError, match="sample 3 points into the data of sample 4"):
        BetonReader(bad)


def test_int_labels_turned_float_are_not_class_ids(converted, tmp_path):
    from fastvis.beton.format import FIELD_DESC_DTYPE, GUARD_MAGIC, HEADER_DTYPE, TYPE_FLOAT

    src, _ = converted
    r = BetonReader(src)
    j = r.names.index("label")
    raw = bytearray(src.read_bytes())
    raw[HEADER_DTYPE.itemsize + j * FIELD_DESC_DTYPE.itemsize] = TYPE_FLOAT  # the type id of field j
    bad = tmp_path / "t.beton"
    bad.write_bytes(bytes(raw))
    with pytest.raises(BetonError, match="damaged header or field descriptors"):  # fastvis's file: its header CRC
        BetonReader(bad)
    at = bytes(raw).index(GUARD_MAGIC)
    raw[at : at + len(GUARD_MAGIC)] = bytes(len(GUARD_MAGIC))  # as a file from another writer, with no record
    bad.write_bytes(bytes(raw))
    with pytest.raises(BetonError, match="not class ids"):
        BetonReader(bad).labels()


def test_inspect_verify_names_the_changed_sample(converted, tmp_path):
    src, _ = converted
    r = BetonReader(src)
    j = r.names.index("image")
    bad = _flipped(src, tmp_path / "v.beton", int(r._ptrs[j][5]) + 10, 3)
    ok = cli("inspect", src, "--verify")
    assert ok.returncode == 0 and "verified: all 24 samples" in ok.stdout and "checksums: in the file" in ok.stdout
    proc = cli("inspect", bad, "--verify")
    assert proc.returncode == 1 and "1 sample(s) changed" in proc.stderr and ": 5" in proc.stderr


# -- image folders ------------------------------------------------------------------------------------

def test_sixteen_bit_greys_are_scaled_not_clipped(tmp_path):
    root = tmp_path / "g"
    (root / "a").mkdir(parents=True)
    ramp = (np.arange(64 * 64, dtype=np.uint32).reshape(64, 64) * 16).astype(np.uint16)  # 0 .. 65520
    Image.fromarray(ramp).save(root / "a" / "ramp.png")
    assert Image.open(root / "a" / "ramp.png").mode.startswith("I;16")
    out = tmp_path / "g.beton"
    proc = cli("convert", root, out, "--raw", "-q")
    assert proc.returncode == 0 and "scaled to 8 bits" in proc.stderr
    img = BetonReader(out)[0][0][..., 0].astype(int)
    expect = np.round(ramp * (255 / 65535)).astype(int)
    assert np.abs(img - expect).max() <= 1 and (img == 255).mean() < 0.01  # not squashed to white


@pytest.mark.parametrize("kind", ["fifo", "dangling link"])
def test_an_irregular_file_in_an_image_folder_is_listed_not_opened(tmp_path, kind):
    root = _folder(tmp_path / "imgs", 3)
    odd = root / "c0" / "odd.png"
    if kind == "fifo":
        os.mkfifo(odd)
    else:
        odd.symlink_to(tmp_path / "nowhere.png")
    out = tmp_path / "o.beton"
    proc = cli("convert", root, out, "-q", timeout=120)
    assert proc.returncode == 1 and "c0/odd.png" in proc.stderr and not out.exists()
    ok = cli("convert", root, out, "-q", "--skip-bad", timeout=120)
    assert ok.returncode == 0 and len(BetonReader(out)) == 6


def test_an_image_too_large_for_the_format_is_named(tmp_path):
    root = _folder(tmp_path / "imgs", 1)
    Image.fromarray(np.zeros((1, 70000, 3), np.uint8)).save(root / "c1" / "wide.png")
    proc = cli("convert", root, tmp_path / "o.beton", "--raw", "-q")
    assert proc.returncode == 1 and "c1/wide.png" in proc.stderr and "70000x1" in proc.stderr
