"""Radiographs end to end: DICOM folder -> .beton (--size, masks) -> resident float batches ->
training with defect synthesis -> report."""
from __future__ import annotations

import json

import pytest
import torch

from fastvis.loader import ResidentDataset
from tests.helpers import missing, run_cli, warm_runs_cli


@pytest.fixture(scope="module")
def xray(tmp_path_factory):
    from tests.radiographs import build_xray_folder

    root = tmp_path_factory.mktemp("xray")
    try:
        train, train_csv = build_xray_folder(root / "train", 24, tile=96, seed=0)
        val, val_csv = build_xray_folder(root / "val", 12, tile=96, seed=1)
    except FileNotFoundError as exc:
        missing(str(exc))
    normal_csv = root / "normal-only.csv"  # the validation folder's normal rows alone: a one-class file
    rows = val_csv.read_text().splitlines()
    normal_csv.write_text("\n".join([rows[0], *[r for r in rows[1:] if r.split(",")[1] == "normal"]]) + "\n")
    for name, folder, csv_path, size in (("train", train, train_csv, "48"), ("val", val, val_csv, "48"),
                                         ("normal", val, normal_csv, "48"), ("val32", val, val_csv, "32")):
        proc = run_cli("convert", folder, root / f"{name}.beton", "--size", size, "--labels", csv_path, "-q",
                       timeout=300)
        assert proc.returncode == 0, proc.stderr
    return root


def test_resident_radiographs_are_float_batches_with_masks(xray):
    ds = ResidentDataset.load(xray / "train.beton")
    assert ds.images.dtype == torch.int16 and ds.unsigned16  # 2 bytes a pixel on the device
    assert ds.image_shape == (1, 48, 48) and ds.classes == ["defect", "normal"]
    x, y = ds.batch(torch.arange(len(ds)))
    assert x.dtype == torch.float32 and x.shape == (24, 1, 48, 48)
    assert 0 <= float(x.min()) and float(x.max()) <= 1 and float(x.std()) > 0.01
    assert ds.masks.shape == (24, 48, 48)
    assert (ds.masks.flatten(1).amax(1) > 0).tolist() == (y == 0).tolist()  # defects have masks
    mean, std = ds.mean_std()
    assert len(mean) == 1 and 0 < mean[0] < 1 and std[0] > 0


def test_training_with_defect_synthesis_writes_the_report(xray, tmp_path):
    out = tmp_path / "run"
    proc = run_cli("train", "--data", xray / "train.beton", "--val", xray / "val.beton", "--model", "tinynet",
                   "--epochs", "2", "--batch-size", "8", "--defect-paste", "0.5", "--out", out, "-q")
    assert proc.returncode == 0, proc.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["image_size"] == [1, 48, 48] and summary["num_classes"] == 2
    assert summary["defect_pastes"] > 0 and summary["hyper"]["defect_paste"] == 0.5
    assert (out / "report.pdf").stat().st_size > 0
    assert 0 <= summary["top1"] <= 1


def test_radiograph_configuration_errors(xray, tmp_path):
    from fastvis import FastvisError
    from fastvis.train.config import TrainConfig
    from fastvis.train.loop import Trainer

    cfg = TrainConfig.from_options(data=str(xray / "val.beton"), val=str(xray / "val.beton"), model="tinynet",
                                   epochs=1, defect_paste=0.5, defect_class="nothing", out=str(tmp_path / "r"),
                                   batch_size=4,
                                   quiet=True)
    with pytest.raises(FastvisError, match="not one of the classes"):
        Trainer(cfg).setup()
    cfg = cfg.replace(defect_class=None, randaugment="2,9")
    with pytest.raises(FastvisError, match="RGB"):
        Trainer(cfg).setup()


def _fit(xray, tmp_path, **options):
    from fastvis.train.config import TrainConfig
    from fastvis.train.loop import train

    opts = dict(data=str(xray / "train.beton"), val=str(xray / "val.beton"), model="tinynet", epochs=2, batch_size=8,
                out=str(tmp_path / "r"), quiet=True)
    return train(TrainConfig.from_options(**{**opts, **options}))


def test_defect_metrics_in_the_summary_and_the_report(xray, tmp_path):
    from pypdf import PdfReader

    s = _fit(xray, tmp_path, metric="auc")
    final = s["final"]["test"]
    assert s["classes"] == ["defect", "normal"] and s["positive_class"] == 0
    assert final["per_class"]["support"] == [6, 6] and sum(map(sum, final["confusion"])) == 12
    recalls = final["per_class"]["recall"]
    assert s["balanced_accuracy"] == pytest.approx(sum(recalls) / 2)
    assert 0 <= s["auc"] <= 1 and s["recall_at_fpr"] is not None and s["false_alarm_rate"] == 0.05
    rows = [json.loads(line) for line in (tmp_path / "r" / "metrics.jsonl").read_text().splitlines()]
    assert all("balanced_accuracy" in r and "auc" in r and "confusion" in r for r in rows)
    # --metric auc: the best result is the best AUC of the watched split
    assert s["metric"] == "auc" and s["best"] == pytest.approx(max(r["auc"] for r in rows))
    text = PdfReader(tmp_path / "r" / "report.pdf").pages[0].extract_text()
    assert "balanced accuracy" in text and "AUC" in text and "Per class" in text
    assert "top-5" not in text  # two classes: top-5 is always 100% and says nothing


def test_a_normal_only_validation_file_is_scored_against_the_training_classes(xray, tmp_path):
    s = _fit(xray, tmp_path, val=str(xray / "normal.beton"), epochs=1)
    final = s["final"]["test"]
    assert final["per_class"]["support"] == [0, 6]  # its 'normal' (id 0 in that file) is the training set's 1
    assert s["top1"] == pytest.approx(final["per_class"]["recall"][1])
    assert s["auc"] is None  # no defects to rank


def test_a_validation_file_of_another_size_is_refused(xray, tmp_path):
    from fastvis import FastvisError

    with pytest.raises(FastvisError, match=r"val32.beton: its images are 1x32x32, the training images 1x48x48"):
        _fit(xray, tmp_path, val=str(xray / "val32.beton"))
    with pytest.raises(FastvisError, match="--metric auc needs two classes"):
        _fit(xray, tmp_path, data=str(xray / "normal.beton"), val=None, holdout=2, metric="auc", batch_size=2)


def test_defect_benchmark_writes_its_paired_table(tmp_path):
    """fastvis-bench defects on a toy scale: both settings, without and with synthesis, paired seeds."""
    pytest.importorskip("pydicom")
    from tests.radiographs import build_xray_folder

    try:
        build_xray_folder(tmp_path / "probe", 2, tile=32)
    except FileNotFoundError as exc:
        missing(str(exc))
    args = ["--out", tmp_path / "d", "--normal", "6", "--many", "6", "--few", "2", "--val", "4", "--tile", "48",
            "--size", "24", "--epochs", "1", "--seeds", "2", "--model", "tinynet", "--batch-size", "4", "--jobs", "2"]
    proc = warm_runs_cli("bench", "defects", *args, timeout=900)  # its runs forked, warm
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads((tmp_path / "d" / "defects.json").read_text())
    assert set(result["results"]) == {"few: 2 of 8", "many: 6 of 12"}
    for r in result["results"].values():
        for metric in ("balanced_accuracy", "auc"):
            assert set(r[metric]["base"]["runs"]) == {0, 1} or set(r[metric]["base"]["runs"]) == {"0", "1"}
            (v,) = r[metric]["variants"]
            assert v["variant"] == "defect-paste=0.5" and v["seeds"] == 2 and v["low"] <= v["diff"] <= v["high"]
    assert "| few: 2 of 8 | off |" in proc.stdout and "| many: 6 of 12 | defect-paste=0.5 |" in proc.stdout
    run = tmp_path / "d" / "few" / "runs" / "defect-paste=0.5" / "seed0"
    assert json.loads((run / "summary.json").read_text())["defect_pastes"] > 0
