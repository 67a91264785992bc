"""DICOM folders: real radiographs (pydicom-data) and pydicom's test files, broken ones included."""
from __future__ import annotations

import csv
import shutil
import subprocess
import sys
import warnings

import numpy as np
import pytest

from fastvis.beton import BetonReader
from fastvis.convert import convert
from fastvis.sources import DicomSource, SourceError, detect_kind
from fastvis.sources.dicom import area_resize, decode_image
from tests.helpers import missing, run_cli

pydicom = pytest.importorskip("pydicom")


def dicom_file(name: str):
    from pydicom.data import get_testdata_file

    path = get_testdata_file(name, download=False)
    if path is None:
        missing(f"{name} not found (pip install pydicom-data)")
    return path


def pixels(path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return pydicom.dcmread(path).pixel_array


GOOD = {  # name in the folder: pydicom test file
    "normal/rg1": "RG1_UNCR.dcm",  # CR, 15 bits, MONOCHROME1, uncompressed, no extension
    "normal/rg3.dcm": "RG3_J2KR.dcm",  # CR, 10 bits, JPEG 2000 lossless
    "defect/ct.dcm": "CT_small.dcm",  # signed 16 bits, rescale intercept
    "defect/mr_rle.DCM": "MR_small_RLE.dcm",  # RLE
    "defect/jpeg_ll.dicom": "JPEG-LL.dcm",  # JPEG lossless
    "defect/mr_be.dcm": "MR_small_bigendian.dcm",  # big-endian: stored little-endian
}
BAD = {
    "defect/truncated.dcm": "MR_truncated.dcm",
    "defect/plan.dcm": "rtplan.dcm",
    "defect/rgb.dcm": "SC_rgb.dcm",
    "defect/frames.dcm": "emri_small.dcm",
    "defect/nometa.dcm": "no_meta.dcm",
}


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("dicom") / "xray"
    for rel, name in {**GOOD, **BAD}.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(dicom_file(name), root / rel)
    (root / "defect" / "junk.dcm").write_bytes(b"\0" * 300)  # named like DICOM, is not
    data = open(dicom_file("RG3_UNCR.dcm"), "rb").read()
    (root / "normal" / "cut.dcm").write_bytes(data[: len(data) // 2])  # pixel data cut short
    (root / "README.txt").write_text("not an image; ignored")
    return root


def cli(*args):
    return run_cli("convert", *args, timeout=300)


def test_folder_is_detected_as_dicom(folder):
    assert detect_kind(folder) == "dicom"


def test_lossless_conversion_with_bad_files_reported(folder, tmp_path):
    out = tmp_path / "x.beton"
    proc = cli(folder, out, "-q")
    assert proc.returncode == 1, proc.stderr  # strict: every bad file listed, nothing written
    bad_lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("skipped ")]
    assert len(bad_lines) == len(BAD) + 2
    for rel in [*BAD, "defect/junk.dcm", "normal/cut.dcm"]:
        assert any(rel in ln for ln in bad_lines), rel
    assert "README" not in proc.stderr
    assert "--skip-bad" in proc.stderr and "nothing written" in proc.stderr
    assert not out.exists() and not list(tmp_path.glob(".*part"))
    proc = cli(folder, out, "-q", "--skip-bad")  # the rest is written, and the bad files are still listed
    listed = [ln for ln in proc.stderr.splitlines() if ln.startswith("skipped ")]
    assert proc.returncode == 0 and len(listed) == len(bad_lines)
    r = BetonReader(out)
    assert list(r.names) == ["image", "label", "meta"]
    assert r.info["classes"] == ["defect", "normal"] and len(r) == len(GOOD)
    seen = set()
    for i in range(len(r)):
        image, label, meta = r[i]
        assert isinstance(meta, dict)
        expect = pixels(folder / meta["path"])
        got = decode_image(image, meta)
        assert got.dtype == expect.dtype.newbyteorder("=") and np.array_equal(got, expect), meta["path"]
        assert image.nbytes == expect.nbytes  # the raw buffer, nothing more
        assert label == (0 if meta["path"].startswith("defect/") else 1)
        seen.add(meta["path"])
        for key in ("rows", "columns", "dtype", "bits_stored", "photometric", "rescale_slope", "rescale_intercept",
                    "window_center", "window_width", "modality"):
            assert key in meta
    assert seen == set(GOOD)
    rg1 = next(r[i][2] for i in range(len(r)) if r[i][2]["path"] == "normal/rg1")
    assert rg1 == {**rg1, "rows": 1955, "columns": 1841, "dtype": "uint16", "bits_stored": 15,
                   "photometric": "MONOCHROME1", "modality": "CR", "window_center": 15000.0}
    ct = next(r[i][2] for i in range(len(r)) if r[i][2]["path"] == "defect/ct.dcm")
    assert ct["dtype"] == "int16" and ct["rescale_intercept"] == -1024.0
    # the sidecar lists what was left out
    assert {s["file"] for s in r.info["skipped"]} == {*BAD, "defect/junk.dcm", "normal/cut.dcm"}


def test_no_patient_data_unless_asked(folder, tmp_path):
    names = set()
    for rel in GOOD:
        ds = pydicom.dcmread(folder / rel, stop_before_pixels=True)
        for kw in ("PatientName", "PatientID", "PatientBirthDate", "InstitutionName"):
            v = str(ds.get(kw, "")).strip()
            if len(v) >= 4:
                names.add(v)
    assert names, "the test files carry patient data to look for"
    out = tmp_path / "anon.beton"
    assert cli(folder, out, "-q", "--skip-bad").returncode == 0
    blob = out.read_bytes() + out.with_name(out.name + ".json").read_bytes()
    for v in names:
        assert v.encode() not in blob, v
    kept = tmp_path / "kept.beton"
    assert cli(folder, kept, "-q", "--skip-bad", "--keep-tags", "PatientID,Modality").returncode == 0
    r = BetonReader(kept)
    meta = next(r[i][2] for i in range(len(r)) if r[i][2]["path"] == "defect/ct.dcm")
    ds = pydicom.dcmread(folder / "defect/ct.dcm", stop_before_pixels=True)
    assert meta["tags"] == {"PatientID": str(ds.PatientID), "Modality": "CT"}
    assert cli(folder, tmp_path / "y.beton", "--keep-tags", "NotATag").returncode == 1


def test_resized_training_set_and_masks_from_csv(folder, tmp_path):
    root = tmp_path / "xr"
    for rel, name in (("a/rg1", "RG1_UNCR.dcm"), ("a/rg3.dcm", "RG3_J2KR.dcm"), ("b/rg3u.dcm", "RG3_UNCR.dcm")):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(dicom_file(name), root / rel)
    rows, cols = 1955, 1841
    mask = np.zeros((rows, cols), np.uint8)
    mask[500:700, 900:1000] = 255
    from PIL import Image

    Image.fromarray(mask).save(tmp_path / "m1.png")
    labels = tmp_path / "labels.csv"
    with open(labels, "w", newline="") as fp:
        w = csv.writer(fp)
        w.writerow(["path", "label", "mask"])
        w.writerow(["a/rg1", "defect", "../m1.png"])
        w.writerow(["a/rg3.dcm", "defect", "100 200 300 500"])  # a box
        w.writerow(["b/rg3u.dcm", "normal", ""])
        w.writerow(["b/gone.dcm", "normal", ""])
    out = tmp_path / "small.beton"
    with pytest.raises(SourceError, match="b/gone.dcm: bad file .listed in the labels file but missing"):
        convert(DicomSource(root, labels=labels, size=64), out, progress=False)  # strict: nothing written
    assert not out.exists()
    summary = convert(DicomSource(root, labels=labels, size=64, skip_bad=True), out, progress=False)
    assert summary.samples == 3 and [s[0] for s in summary.skipped] == ["b/gone.dcm"]
    r = BetonReader(out)
    assert list(r.names) == ["image", "label", "meta", "mask"]
    assert r.info["classes"] == ["defect", "normal"]
    img0, label0, meta0, mask0 = r[0]
    assert img0.shape == (64, 64) and img0.dtype == np.uint16 and label0 == 0 and meta0["size"] == 64
    assert meta0["rows"] == rows  # the original size stays in meta
    assert np.array_equal(img0, area_resize(pixels(root / "a/rg1"), 64))
    # the mask follows its image: the 200x100 defect of the 1955x1841 radiograph at 64 px
    assert mask0.dtype == np.uint8 and 0 < mask0.sum() < 64 * 64
    ys, xs = np.nonzero(mask0)
    assert abs(ys.mean() - 600 * 64 / rows) < 1.5 and abs(xs.mean() - 950 * 64 / cols) < 1.5
    _, _, _, mask1 = r[1]
    assert mask1.sum() > 0
    _, label2, _, mask2 = r[2]
    assert label2 == 1 and mask2.sum() == 0
    # signed and unsigned 16-bit images cannot share one array field
    shutil.copy(dicom_file("CT_small.dcm"), root / "b" / "ct.dcm")
    with pytest.raises(SourceError, match="signed and unsigned"):
        DicomSource(root, size=64)


def test_area_resize_matches_opencv(rng):
    cv2 = pytest.importorskip("cv2")
    for shape, size in (((100, 80), 32), ((1955, 1841), 256), ((37, 41), 37)):
        a = rng.integers(0, 65535, shape).astype(np.uint16)
        ours = area_resize(a, size).astype(np.int64)
        theirs = cv2.resize(a, (size, size), interpolation=cv2.INTER_AREA).astype(np.int64)
        assert np.abs(ours - theirs).max() <= 1
    sq = rng.integers(0, 65535, (37, 37)).astype(np.uint16)
    assert np.array_equal(area_resize(sq, 37), sq)  # same size: unchanged


def test_files_outside_class_folders_need_a_labels_file(tmp_path):
    (tmp_path / "d").mkdir()
    shutil.copy(dicom_file("CT_small.dcm"), tmp_path / "d" / "a.dcm")
    with pytest.raises(SourceError, match="class folder"):
        DicomSource(tmp_path / "d")
    labels = tmp_path / "l.csv"
    labels.write_text("a.dcm,3\n")
    src = DicomSource(tmp_path / "d", labels=labels)
    assert src.classes == ["3"] and len(src) == 1


def test_missing_decoder_names_the_extra(folder, tmp_path):
    code = f"""
import sys
for m in ("pylibjpeg", "openjpeg", "libjpeg", "rle", "gdcm", "jpeg_ls", "pyjpegls"):
    sys.modules[m] = None
from fastvis.cli.convert import main
sys.exit(main([{str(folder)!r}, {str(tmp_path / 'n.beton')!r}, "-q", "--skip-bad"]))
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1
    assert "fastvis[dicom]" in proc.stderr and "JPEG" in proc.stderr
    assert not (tmp_path / "n.beton").exists()  # nothing partial


def test_shuffled_writing_order(folder):
    plain = DicomSource(folder)
    mixed = DicomSource(folder, shuffle=2)
    assert sorted(map(str, mixed._items)) == sorted(map(str, plain._items))  # the same files, labels, masks
    assert [str(p) for p, _, _ in mixed._items] == [str(p) for p, _, _ in DicomSource(folder, shuffle=2)._items]
    assert [p for p, _, _ in mixed._items] != [p for p, _, _ in plain._items]
    assert mixed.info["shuffled"] == 2 and plain.info["shuffled"] is None


def _xray(tmp_path, n: int):
    """(root, labels.csv) of ``n`` 64-px crops of the pydicom-data radiographs, half defects."""
    from tests.radiographs import build_xray_folder

    try:
        return build_xray_folder(tmp_path / "x", n, tile=64)
    except FileNotFoundError as exc:
        missing(str(exc))


def test_decoding_threads_run_one_blas_thread_each(tmp_path, monkeypatch):
    """The --size resize is two matrix products: BLAS threads inside the decoding threads made
    conversion ten times slower, so the source limits BLAS to one thread while it reads."""
    threadpoolctl = pytest.importorskip("threadpoolctl")

    def blas_threads():
        return [p["num_threads"] for p in threadpoolctl.threadpool_info() if p["user_api"] == "blas"]

    if not blas_threads():
        pytest.skip("numpy has no BLAS that threadpoolctl can control here")
    seen = []
    original = DicomSource._sample

    def spy(self, *args):
        seen.extend(blas_threads())
        return original(self, *args)

    root, labels = _xray(tmp_path, 4)
    monkeypatch.setattr(DicomSource, "_sample", spy)
    with threadpoolctl.threadpool_limits(limits=2, user_api="blas"):
        before = blas_threads()
        samples = list(DicomSource(root, labels, size=32))
        after = blas_threads()
    assert samples and seen and set(seen) == {1}
    assert after == before  # restored when the reading is done


def test_dicom_classes_all_bad_or_spelt_twice(tmp_path):
    root, labels = _xray(tmp_path, 6)
    rows = labels.read_text().splitlines()
    (root / "crack").mkdir()
    (root / "crack" / "c.dcm").write_bytes(b"\0" * 300)  # the one file of class 'crack' is not DICOM
    bad = tmp_path / "bad.csv"
    bad.write_text("\n".join([*rows, "crack/c.dcm,crack,"]) + "\n")
    out = tmp_path / "o.beton"
    proc = cli(root, out, "--labels", bad, "--size", "32", "--skip-bad")
    assert proc.returncode == 1 and "class(es) ['crack'] have no readable sample" in proc.stderr
    assert not out.exists()
    # 'Defect' and 'defect': converted as written, with a note that names both
    spelt = tmp_path / "spelt.csv"
    spelt.write_text("\n".join([rows[0], *[r.replace(",defect,", ",Defect,", 1) if k == 1 else r
                                         for k, r in enumerate(rows[1:])]]) + "\n")
    proc = cli(root, out, "--labels", spelt, "--size", "32")
    assert proc.returncode == 0, proc.stderr
    assert "note: classes 'Defect' and 'defect' differ only in case or spaces" in proc.stderr
    assert BetonReader(out).info["classes"] == ["Defect", "defect", "normal"]


def test_labels_file_messages_name_what_went_wrong(tmp_path):
    root, labels = _xray(tmp_path, 4)
    rows = labels.read_text().splitlines()
    elsewhere = tmp_path / "elsewhere.csv"  # paths relative to the working folder, not to DIR
    elsewhere.write_text("\n".join(f"x/{r}" for r in rows[1:]) + "\n")
    proc = cli(root, tmp_path / "o.beton", "--labels", elsewhere)
    assert proc.returncode == 1 and "none of its 4 paths is a DICOM file under" in proc.stderr
    assert "relative to DIR" in proc.stderr and "x/normal/0000.dcm" in proc.stderr
    unquoted = tmp_path / "unquoted.csv"  # a box written without quotes: four more columns
    unquoted.write_text("\n".join([rows[0], *[r.split(",")[0] + "," + r.split(",")[1] + ",2,3,20,30"
                                              for r in rows[1:]]]) + "\n")
    out = tmp_path / "o.beton"
    proc = cli(root, out, "--labels", unquoted, "--size", "16")
    assert proc.returncode == 0, proc.stderr
    assert BetonReader(out).info["masks"]


def test_a_file_cut_inside_its_header_is_called_cut_short(tmp_path):
    root = tmp_path / "xr"
    (root / "a").mkdir(parents=True)
    data = open(dicom_file("RG3_UNCR.dcm"), "rb").read()
    shutil.copy(dicom_file("RG3_UNCR.dcm"), root / "a" / "good.dcm")
    (root / "a" / "short.dcm").write_bytes(data[:300])  # the DICM marker, then the header ends
    src = DicomSource(root, skip_bad=True)
    problems = dict(src.skipped)
    assert "ends after 300 bytes, inside its header" in problems["a/short.dcm"], problems
