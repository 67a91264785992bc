"""Image folders and archives of image folders."""
from __future__ import annotations

import io
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fastvis.beton import BetonReader
from fastvis.convert import convert
from fastvis.sources import ImageFolderSource, SourceError, detect_kind

CLASSES = ["zebra", "ant", "cat"]  # sorted: ant, cat, zebra


def png_bytes(img: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture
def tree(rng):
    """{relative path: image} for a train/test tree with 3 classes of lossless PNGs."""
    files = {}
    for split, n in (("train", 4), ("test", 2)):
        for c in CLASSES:
            for i in range(n):
                files[f"{split}/{c}/{i:03d}.png"] = rng.integers(0, 256, (10, 14, 3), dtype=np.uint8)
    return files


def write_folder(root: Path, files: dict) -> Path:
    for rel, img in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(png_bytes(img) if isinstance(img, np.ndarray) else img)
    return root


def write_tar(path: Path, files: dict, prefix: str = "", mode: str = "w:gz") -> Path:
    with tarfile.open(path, mode) as tar:
        for rel, img in files.items():
            data = png_bytes(img) if isinstance(img, np.ndarray) else img
            info = tarfile.TarInfo(prefix + rel)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def write_zip(path: Path, files: dict, prefix: str = "") -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for rel, img in files.items():
            zf.writestr(prefix + rel, png_bytes(img) if isinstance(img, np.ndarray) else img)
    return path


def expected(files: dict, split: str):
    classes = sorted(CLASSES)
    return {rel: (img, classes.index(rel.split("/")[1])) for rel, img in files.items() if rel.startswith(split + "/")}


def check(src: ImageFolderSource, files: dict, split: str):
    want = expected(files, split)
    got = list(src)
    assert len(got) == len(want) == len(src)
    assert src.classes == sorted(CLASSES)
    pool = {(img.tobytes(), y) for img, y in want.values()}
    assert {(img.tobytes(), y) for img, y in got} == pool


@pytest.mark.parametrize("container", ["folder", "tar.gz", "tar.xz", "zip", "wrapped-tar", "wrapped-zip"])
def test_every_container_gives_the_same_samples(tmp_path, tree, container):
    if container == "folder":
        path = write_folder(tmp_path / "data", tree)
    elif container == "tar.gz":
        path = write_tar(tmp_path / "d.tar.gz", tree)
    elif container == "tar.xz":
        path = write_tar(tmp_path / "d.tar.xz", tree, mode="w:xz")
    elif container == "zip":
        path = write_zip(tmp_path / "d.zip", tree)
    elif container == "wrapped-tar":
        path = write_tar(tmp_path / "d.tar", tree, prefix="mydata/", mode="w")
    else:
        path = write_zip(tmp_path / "d.zip", tree, prefix="outer/inner/")
    assert detect_kind(path) == "imagefolder"
    check(ImageFolderSource(path), tree, "train")  # train is the default split when present
    check(ImageFolderSource(path, split="test"), tree, "test")
    with pytest.raises(SourceError, match="no 'val' split"):
        ImageFolderSource(path, split="val")


def test_plain_class_folders_without_split(tmp_path, tree):
    flat = {rel.split("/", 1)[1]: img for rel, img in tree.items() if rel.startswith("train/")}
    src = ImageFolderSource(write_folder(tmp_path / "flat", flat))
    assert src.split is None and len(src) == len(flat)
    assert src.info["classes"] == ["ant", "cat", "zebra"]


def test_an_option_of_another_kind_of_source_is_refused_with_why(tmp_path, tree):
    from fastvis.sources import open_source

    flat = {rel.split("/", 1)[1]: img for rel, img in tree.items() if rel.startswith("train/")}
    root = write_folder(tmp_path / "flat", flat)
    with pytest.raises(SourceError, match=r"flat: --labels, --keep-tags do not apply to imagefolder sources \(class "
                                          r"folders name the labels .*; images have no DICOM tags\)"):
        open_source(root, labels="labels.csv", keep_tags=["PatientAge"])
    with pytest.raises(SourceError, match="--size do not apply to cifar10 sources"):
        open_source("cifar10", size=16)
    assert len(open_source(root, jpeg=0)) == len(flat)  # --raw is the default for small images


def test_conversion_keeps_pixels_and_counts(tmp_path, tree):
    src = ImageFolderSource(write_tar(tmp_path / "d.tar.gz", tree))
    assert src.mode == "raw"  # small images are stored raw by default
    out = tmp_path / "o.beton"
    summary = convert(src, out, progress=False)
    r = BetonReader(out)
    assert summary.samples == len(r) == 12 and summary.class_counts == [4, 4, 4]
    want = expected(tree, "train")
    got = {(r[i][0].tobytes(), r[i][1]) for i in range(len(r))}
    assert got == {(img.tobytes(), y) for img, y in want.values()}


def test_resize_options(tmp_path, rng):
    files = {"a/0.png": rng.integers(0, 256, (30, 50, 3), dtype=np.uint8),
             "b/0.png": rng.integers(0, 256, (80, 20, 3), dtype=np.uint8)}
    root = write_folder(tmp_path / "r", files)
    shapes = {img.shape for img, _ in ImageFolderSource(root, size=16)}
    assert shapes == {(16, 16, 3)}
    shapes = {img.shape for img, _ in ImageFolderSource(root, max_side=40)}
    assert shapes == {(24, 40, 3), (40, 10, 3)}
    src = ImageFolderSource(root)
    assert src.mode == "raw" or src.mode == "jpeg"
    assert ImageFolderSource(root, size=100).mode == "jpeg"  # above 64 px: JPEG by default
    assert ImageFolderSource(root, size=100, jpeg=0).mode == "raw"


def test_jpeg_storage_and_grayscale(tmp_path):
    yy, xx = np.mgrid[0:40, 0:40]
    smooth = np.stack([(yy * 3) % 256, (xx * 3) % 256, ((yy + xx) * 2) % 256], -1).astype(np.uint8)
    gray = (yy * 5 % 256).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(gray, "L").save(buf, format="PNG")
    root = write_folder(tmp_path / "g", {"c/0.png": smooth, "d/1.png": buf.getvalue()})
    src = ImageFolderSource(root, jpeg=95)
    out = tmp_path / "j.beton"
    convert(src, out, progress=False)
    r = BetonReader(out)
    imgs = {r[i][1]: r[i][0] for i in range(2)}
    assert np.abs(imgs[0].astype(int) - smooth).mean() < 3
    assert imgs[1].shape == (40, 40, 3) and np.abs(imgs[1][..., 1].astype(int) - gray).mean() < 3


def test_corrupt_image_fails_or_is_skipped(tmp_path, tree):
    files = dict(tree)
    files["train/cat/broken.jpg"] = b"\xff\xd8\xff\xe0 this is not really a jpeg"
    files["train/ant/broken2.png"] = b"not a png either"
    path = write_zip(tmp_path / "bad.zip", files)
    out = tmp_path / "o.beton"
    strict = ImageFolderSource(path)
    with pytest.raises(SourceError, match="train/cat/broken.jpg: unreadable image .* and 1 more"):
        convert(strict, out, progress=False)
    assert not out.exists() and list(tmp_path.iterdir()) == [path]
    assert sorted(n for n, _ in strict.skipped) == ["train/ant/broken2.png", "train/cat/broken.jpg"]  # all listed
    src = ImageFolderSource(path, skip_bad=True)
    summary = convert(src, out, progress=False)
    assert summary.samples == 12 and sorted(n for n, _ in summary.skipped) == ["train/ant/broken2.png",
                                                                               "train/cat/broken.jpg"]
    assert BetonReader(out).info["skipped"][0]["file"] == "train/cat/broken.jpg"


def test_unsafe_member_names_are_bad_inputs_never_read(tmp_path, tree):
    files = dict(tree)
    files["../../evil/0.png"] = next(iter(tree.values()))
    files["/abs/0.png"] = next(iter(tree.values()))
    path = write_tar(tmp_path / "u.tar", files, mode="w")
    out = tmp_path / "o.beton"
    with pytest.raises(SourceError, match=r"unsafe path in archive .* and 1 more bad input.*--skip-bad"):
        convert(ImageFolderSource(path), out, progress=False)  # like every other bad input: nothing written
    assert not out.exists()
    src = ImageFolderSource(path, skip_bad=True)
    check(src, tree, "train")
    assert {n for n, _ in src.skipped} == {"../../evil/0.png", "/abs/0.png"}


def test_links_inside_a_tar_are_bad_inputs_not_dropped_silently(tmp_path, tree):
    import io
    import tarfile

    path = write_tar(tmp_path / "l.tar", dict(tree), mode="w")
    with tarfile.open(path, "a") as tar:
        for name, kind in (("train/cat/sym.png", tarfile.SYMTYPE), ("train/cat/hard.png", tarfile.LNKTYPE)):
            info = tarfile.TarInfo(name)
            info.type, info.linkname = kind, next(n for n in tree if n.startswith("train/cat/"))
            tar.addfile(info, io.BytesIO(b""))
    with pytest.raises(SourceError, match="a link inside the archive, not followed"):
        convert(ImageFolderSource(path), tmp_path / "o.beton", progress=False)
    src = ImageFolderSource(path, skip_bad=True)
    convert(src, tmp_path / "o.beton", progress=False)
    assert {n for n, _ in src.skipped} == {"train/cat/sym.png", "train/cat/hard.png"}


def test_layout_errors(tmp_path, rng):
    loose = write_folder(tmp_path / "loose", {"0.png": rng.integers(0, 256, (4, 4, 3), dtype=np.uint8)})
    with pytest.raises(SourceError, match="not inside a class folder"):
        ImageFolderSource(loose)
    (tmp_path / "empty").mkdir()
    with pytest.raises(SourceError, match="no images found"):
        ImageFolderSource(tmp_path / "empty")
    with pytest.raises(SourceError, match="no such file"):
        ImageFolderSource(tmp_path / "missing")
    bad = tmp_path / "bad.tar.gz"
    bad.write_bytes(b"\x1f\x8b\x08\x00garbage" * 10)
    with pytest.raises(SourceError, match="corrupt or unreadable"):
        ImageFolderSource(bad)


@pytest.mark.parametrize("container", ["folder", "tar.gz", "zip"])
def test_shuffled_conversion_mixes_classes_and_keeps_every_sample(tmp_path, tree, container):
    writers = {"folder": lambda: write_folder(tmp_path / "data", tree),
               "tar.gz": lambda: write_tar(tmp_path / "d.tar.gz", tree),
               "zip": lambda: write_zip(tmp_path / "d.zip", tree)}
    path = writers[container]()
    def runs(labels):  # how many stretches of one class
        return 1 + sum(a != b for a, b in zip(labels, labels[1:]))

    assert runs([y for _, y in ImageFolderSource(path)]) == 3  # class by class
    src = ImageFolderSource(path, shuffle=3)
    check(src, tree, "train")
    got = [(img.tobytes(), y) for img, y in ImageFolderSource(path, shuffle=3)]
    labels = [y for _, y in got]
    assert runs(labels) > 3
    assert got == [(img.tobytes(), y) for img, y in ImageFolderSource(path, shuffle=3)]  # the seed fixes the order
    assert got != [(img.tobytes(), y) for img, y in ImageFolderSource(path, shuffle=4)]
    out = convert(src, tmp_path / "s.beton", progress=False)
    r = BetonReader(out.path)
    assert r.info["shuffled"] == 3 and r.column("label").tolist() == labels


def test_a_class_whose_every_image_is_bad_is_an_error_even_with_skip_bad(tmp_path, tree):
    files = {k: v for k, v in tree.items() if not k.startswith("train/ant/")}
    files["train/ant/only.png"] = b"not a png"  # the class folder is there, none of its images reads
    path = write_folder(tmp_path / "src", files)
    out = tmp_path / "o.beton"
    with pytest.raises(SourceError, match=r"class\(es\) \['ant'\] have no readable sample.*nothing written"):
        convert(ImageFolderSource(path, skip_bad=True), out, progress=False)
    assert not out.exists()


def test_class_names_that_differ_only_in_case_get_a_note(tmp_path, tree):
    files = {k.replace("train/zebra/", "train/Cat/"): v for k, v in tree.items()}
    src = ImageFolderSource(write_folder(tmp_path / "src", files))
    assert any("'Cat' and 'cat' differ only in case" in n for n in src.info["notes"])
    assert "notes" not in ImageFolderSource(write_folder(tmp_path / "ok", tree)).info


def test_class_names_equal_after_unicode_normalisation_get_a_note(tmp_path, tree):
    nfc, nfd = "caf\u00e9", "cafe\u0301"  # 'café' as one code point for the 'é', and as 'e' + accent
    files = {k.replace("train/zebra/", f"train/{nfc}/").replace("train/cat/", f"train/{nfd}/"): v
             for k, v in tree.items()}
    src = ImageFolderSource(write_folder(tmp_path / "src", files))
    assert len(src.classes) == 3
    assert any("differ only in Unicode normalisation" in n and ascii(nfc) in n and ascii(nfd) in n
               for n in src.info["notes"])


def test_an_empty_class_folder_stops_the_conversion_named(tmp_path, tree):
    root = write_folder(tmp_path / "src", tree)
    (root / "train" / "emu").mkdir()
    (root / "train" / "emu" / "readme.txt").write_text("no images here")
    out = tmp_path / "o.beton"
    with pytest.raises(SourceError, match=r"class folder\(s\) \['emu'\] hold no images.*nothing written"):
        convert(ImageFolderSource(root), out, progress=False)
    assert not out.exists()
    ImageFolderSource(root, split="test")  # the other split has no such folder


def test_a_class_folder_that_is_a_link_is_read_and_a_loop_is_a_bad_input(tmp_path, tree):
    files = {k: v for k, v in tree.items() if not k.startswith("train/ant/")}
    root = write_folder(tmp_path / "src", files)
    elsewhere = write_folder(tmp_path / "elsewhere", {k.split("/", 1)[1]: v for k, v in tree.items()
                                                      if k.startswith("train/ant/")})
    (root / "train" / "ant").symlink_to(elsewhere / "ant", target_is_directory=True)
    check(ImageFolderSource(root), tree, "train")  # the linked class is there, every image of it
    (root / "train" / "cat" / "loop").symlink_to(root / "train", target_is_directory=True)
    out = tmp_path / "o.beton"
    with pytest.raises(SourceError, match="train/cat/loop"):
        convert(ImageFolderSource(root), out, progress=False)
    assert not out.exists()
    src = ImageFolderSource(root, skip_bad=True)
    convert(src, out, progress=False)
    assert [name for name, _ in src.skipped] == ["train/cat/loop"] and len(BetonReader(out)) == 12


@pytest.mark.parametrize("container", ["folder", "zip"])
def test_raw_or_jpeg_is_decided_from_the_whole_folder_not_its_first_image(tmp_path, rng, container):
    files = {f"a/{i:03d}.png": rng.integers(0, 256, (32, 32, 3), dtype=np.uint8) for i in range(20)}
    files["b/big.png"] = rng.integers(0, 256, (100, 120, 3), dtype=np.uint8)  # listed last
    small = {k: v for k, v in files.items() if k != "b/big.png"}
    small["b/000.png"] = files["a/000.png"]

    def make(name, content):
        return write_folder(tmp_path / name, content) if container == "folder" else write_zip(
            tmp_path / f"{name}.zip", content)

    assert ImageFolderSource(make("mixed", files)).mode == "jpeg"
    assert ImageFolderSource(make("small", small)).mode == "raw"


@pytest.mark.parametrize("container", ["folder", "tar.gz", "zip"])
def test_an_image_file_over_the_size_bound_is_a_bad_input_never_read(tmp_path, tree, container):
    files = dict(tree)
    files["train/cat/huge.png"] = b"\0" * 6000  # the PNGs of the tree are well under 1,000 bytes
    path = {"folder": lambda: write_folder(tmp_path / "data", files),
            "tar.gz": lambda: write_tar(tmp_path / "d.tar.gz", files),
            "zip": lambda: write_zip(tmp_path / "d.zip", files)}[container]()
    out = tmp_path / "o.beton"
    with pytest.raises(SourceError, match=r"train/cat/huge.png: unreadable image \(too large to read: 0.0 MiB, "
                                          "more than the 0 MiB read for one file"):
        convert(ImageFolderSource(path, max_file_bytes=5000), out, progress=False)
    assert not out.exists()
    src = ImageFolderSource(path, max_file_bytes=5000, skip_bad=True)
    check_rest = convert(src, out, progress=False)
    assert check_rest.samples == 12 and [n for n, _ in src.skipped] == ["train/cat/huge.png"]


def test_a_gigabyte_member_of_a_small_archive_is_not_read_into_memory(tmp_path, tree):
    """The default bound: a tar whose member declares 1 GiB (a hole on disk) is converted without
    holding the member: Python's allocations stay far below its size."""
    import tracemalloc

    path = tmp_path / "d.tar"
    info = tarfile.TarInfo("train/cat/huge.png")
    info.size = 1 << 30
    with open(path, "wb") as f:
        f.write(info.tobuf())
        f.seek(info.size, io.SEEK_CUR)  # a hole: no disk used
        f.write(bytes(2 * tarfile.BLOCKSIZE))  # the end-of-archive marker, where members are added
    with tarfile.open(path, "a") as tar:
        for rel, img in tree.items():
            data = png_bytes(img)
            member = tarfile.TarInfo(rel)
            member.size = len(data)
            tar.addfile(member, io.BytesIO(data))
    src = ImageFolderSource(path, skip_bad=True)
    tracemalloc.start()
    try:
        summary = convert(src, tmp_path / "o.beton", progress=False)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert summary.samples == 12
    assert src.skipped == [("train/cat/huge.png", "too large to read: 1,024.0 MiB, more than the 256 MiB read "
                                                  "for one file")]
    assert peak < 64 << 20


def test_large_images_are_decoded_within_a_memory_bound_whatever_the_workers(tmp_path):
    """Eight 4000x4000 PNGs (48 MB each decoded) converted by eight threads with room for one
    such image at a time: the decoded pixels held at once are bounded and each thread gives a
    large image's memory back, so the peak grows by about one image, not by one per thread (the
    peek at the first sample for the page size included: it decodes nothing more)."""
    import subprocess
    import sys

    side = 4000
    x = np.zeros((side, side, 3), np.uint8)
    x[:, :, 0] = np.arange(side)[None, :] % 256
    for k in range(8):
        d = tmp_path / "big" / f"c{k % 2}"
        d.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.roll(x, k, axis=0)).save(d / f"{k}.png", compress_level=1)
    script = """
import re, sys
from fastvis.convert import convert
from fastvis.sources import ImageFolderSource, imagefolder
imagefolder.MAX_PIXELS_HELD = int(sys.argv[4])
def status(key):
    return int(re.search(key + r":\\s+(\\d+)", open("/proc/self/status").read()).group(1)) * 1024
start = status("VmRSS")
summary = convert(ImageFolderSource(sys.argv[1], size=int(sys.argv[3]) or None, workers=8), sys.argv[2], progress=False)
print(summary.samples, status("VmHWM") - start)
"""
    one = side * side * 3
    for size in (32, 0):
        proc = subprocess.run([sys.executable, "-c", script, str(tmp_path / "big"), str(tmp_path / f"{size}.beton"),
                               str(size), str(side * side)], capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr[-2000:]
        samples, grew = map(int, proc.stdout.split())
        # resized: the image decoding and its array; full size: also the writer's JPEG encoding of the one
        # before it. Eight threads at once took 1.0 GB resized before the bound
        assert samples == 8 and grew < (3 if size else 6) * one, (size, grew / 1e6)
