"""The CIFAR reader on archives built in the official pickle format."""
from __future__ import annotations

import dataclasses
import hashlib
import http.server
import io
import pickle
import tarfile
import threading
from pathlib import Path

import numpy as np
import pytest

from fastvis.beton import BetonReader
from fastvis.convert import convert
from fastvis.sources import CifarSource, SourceError, detect_kind, open_source
from fastvis.sources import cifar as cifar_mod
from fastvis.sources.download import download
from tests.cifar_archive import build_cifar_archive
from tests.helpers import extract_tar


def test_cifar100_archive_roundtrip(cifar_archives, tmp_path):
    arc = cifar_archives["cifar100"]
    for split, ref in (("train", arc.train), ("test", arc.test)):
        src = CifarSource("cifar100", arc.path, split=split, verify=False)
        assert list(src.fields) == ["image", "label", "coarse_label"]
        assert src.classes == arc.classes and src.coarse_classes == arc.coarse_classes
        out = tmp_path / f"{split}.beton"
        summary = convert(src, out, progress=False)
        assert summary.samples == len(ref["images"]) and summary.classes == 100
        r = BetonReader(out)
        assert np.array_equal(r.read_batch("image", range(len(r))), ref["images"])
        assert np.array_equal(r.column("label"), ref["labels"])
        assert np.array_equal(r.column("coarse_label"), ref["coarse"])
        assert r.info["classes"] == arc.classes and r.info["coarse_classes"] == arc.coarse_classes
        assert r.info["split"] == split and sum(r.info["class_counts"]) == len(r)
        assert r.info["class_counts"] == np.bincount(ref["labels"], minlength=100).tolist()


def test_cifar10_archive_and_extracted_folder(cifar_archives, tmp_path):
    arc = cifar_archives["cifar10"]
    from_tar = CifarSource("cifar10", arc.path, verify=False)
    folder = extract_tar(arc.path, tmp_path / "x")
    for path in (folder, folder / "cifar-10-batches-py"):
        from_dir = CifarSource("cifar10", path, verify=False)
        assert np.array_equal(from_dir.images, from_tar.images)
    assert list(from_tar.fields) == ["image", "label"]
    assert np.array_equal(from_tar.images, arc.train["images"])
    assert np.array_equal(from_tar.labels, arc.train["labels"])
    assert from_tar.classes == arc.classes
    assert detect_kind(arc.path) == "cifar10" and detect_kind(folder) == "cifar10"


def test_python3_pickles_with_bytes_keys(tmp_path):
    arc = build_cifar_archive(tmp_path, "cifar10", 20, 10, seed=5, bytes_keys=True, protocol=4)
    src = CifarSource("cifar10", arc.path, verify=False)
    assert np.array_equal(src.images, arc.train["images"])


def test_md5_is_verified_by_default(cifar_archives, tmp_path, monkeypatch):
    arc = cifar_archives["cifar100"]
    with pytest.raises(SourceError, match="md5 mismatch.*--no-verify"):
        CifarSource("cifar100", arc.path)
    # with the archive's own md5 as the official one, verification passes
    spec = dataclasses.replace(cifar_mod.SPECS["cifar100"], md5=arc.md5)
    monkeypatch.setitem(cifar_mod.SPECS, "cifar100", spec)
    assert len(CifarSource("cifar100", arc.path)) == len(arc.train["images"])


def test_extracted_members_are_checked_against_official_md5(cifar_archives, tmp_path, monkeypatch):
    arc = cifar_archives["cifar100"]
    folder = extract_tar(arc.path, tmp_path / "x") / "cifar-100-python"
    with pytest.raises(SourceError, match="meta: md5 mismatch|md5 mismatch"):
        CifarSource("cifar100", folder)
    sums = {m: hashlib.md5((folder / m).read_bytes()).hexdigest() for m in ("train", "test", "meta")}
    spec = dataclasses.replace(
        cifar_mod.SPECS["cifar100"],
        splits={"train": [("train", sums["train"])], "test": [("test", sums["test"])]},
        meta=("meta", sums["meta"]),
    )
    monkeypatch.setitem(cifar_mod.SPECS, "cifar100", spec)
    assert len(CifarSource("cifar100", folder, split="test")) == len(arc.test["images"])
    (folder / "test").write_bytes((folder / "test").read_bytes()[:-10])
    with pytest.raises(SourceError, match="test: md5 mismatch"):
        CifarSource("cifar100", folder, split="test")


def _rewrite(src: Path, dest: Path, drop=(), replace=None):
    replace = replace or {}
    with tarfile.open(src) as tin, tarfile.open(dest, "w:gz") as tout:
        for info in tin:
            name = info.name.rsplit("/", 1)[-1]
            if name in drop:
                continue
            data = replace.get(name, tin.extractfile(info).read())
            info.size = len(data)
            tout.addfile(info, io.BytesIO(data))
    return dest


def test_missing_member_is_named_and_nothing_written(cifar_archives, tmp_path):
    bad = _rewrite(cifar_archives["cifar100"].path, tmp_path / "cifar-100-python.tar.gz", drop=("test",))
    with pytest.raises(SourceError, match="no member cifar-100-python/test"):
        CifarSource("cifar100", bad, split="test", verify=False)


def test_unsafe_archive_members_are_never_read_and_are_reported(cifar_archives, tmp_path):
    arc = cifar_archives["cifar100"]
    with tarfile.open(arc.path) as tar:
        train = tar.extractfile("cifar-100-python/train").read()
    with tarfile.open(tmp_path / "u.tar.gz", "w:gz") as tout, tarfile.open(arc.path) as tin:
        for info in tin:
            tout.addfile(info, tin.extractfile(info))
        for name in ("../cifar-100-python/train", "/etc/cifar-100-python/meta"):  # would escape: a decoy
            info = tarfile.TarInfo(name)
            info.size = len(train)
            tout.addfile(info, io.BytesIO(train))
    src = CifarSource("cifar100", tmp_path / "u.tar.gz", verify=False)
    assert sorted(src.skipped) == [("../cifar-100-python/train", "unsafe path in archive, ignored"),
                                   ("/etc/cifar-100-python/meta", "unsafe path in archive, ignored")]
    out = tmp_path / "o.beton"
    convert(src, out, progress=False)
    assert len(BetonReader(out)) == len(arc.train["labels"])  # the real members only


def test_corrupt_pickle_is_named(cifar_archives, tmp_path):
    arc = cifar_archives["cifar100"]
    with tarfile.open(arc.path) as tar:
        train = tar.extractfile("cifar-100-python/train").read()
    bad = _rewrite(arc.path, tmp_path / "c.tar.gz", replace={"train": train[: len(train) // 2]})
    with pytest.raises(SourceError, match="train: not a readable CIFAR pickle"):
        CifarSource("cifar100", bad, verify=False)


def test_truncated_archive_is_named(cifar_archives, tmp_path):
    data = cifar_archives["cifar100"].path.read_bytes()
    cut = tmp_path / "cifar-100-python.tar.gz"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(SourceError, match="corrupt or unreadable archive"):
        CifarSource("cifar100", cut, verify=False)


class _Evil:
    def __reduce__(self):
        return (print, ("this pickle runs code",))


def test_pickles_that_run_code_are_refused(cifar_archives, tmp_path, capsys):
    evil = pickle.dumps({"fine_label_names": _Evil()}, protocol=2)
    bad = _rewrite(cifar_archives["cifar100"].path, tmp_path / "e.tar.gz", replace={"meta": evil})
    with pytest.raises(SourceError, match="refusing to load (__builtin__|builtins).print"):
        CifarSource("cifar100", bad, verify=False)
    assert "runs code" not in capsys.readouterr().out


def test_wrong_shapes_and_labels_are_named(cifar_archives, tmp_path):
    arc = cifar_archives["cifar10"]
    with tarfile.open(arc.path) as tar:
        batch = pickle.loads(tar.extractfile("cifar-10-batches-py/data_batch_1").read())
    batch["labels"] = [99] * len(batch["labels"])
    bad = _rewrite(arc.path, tmp_path / "l.tar.gz", replace={"data_batch_1": pickle.dumps(batch, protocol=2)})
    with pytest.raises(SourceError, match=r"labels outside \[0, 10\)"):
        CifarSource("cifar10", bad, verify=False)
    batch["labels"] = [0] * len(batch["labels"])
    batch["data"] = batch["data"][:, :100]
    bad = _rewrite(arc.path, tmp_path / "d.tar.gz", replace={"data_batch_1": pickle.dumps(batch, protocol=2)})
    with pytest.raises(SourceError, match="expected uint8"):
        CifarSource("cifar10", bad, verify=False)


def test_unknown_split_and_name():
    with pytest.raises(SourceError, match="splits"):
        CifarSource("cifar10", "/nonexistent", split="val")
    with pytest.raises(SourceError, match="unknown CIFAR"):
        CifarSource("cifar1000")


# -- download --------------------------------------------------------------------------------

class _Server:
    """A local HTTP server for one file; ``fail_first`` requests answer 503."""

    def __init__(self, folder: Path, fail_first: int = 0):
        state = {"left": fail_first, "hits": 0}

        class Handler(http.server.SimpleHTTPRequestHandler):
            def __init__(self, *a, **k):
                super().__init__(*a, directory=str(folder), **k)

            def do_GET(self):
                state["hits"] += 1
                if state["left"] > 0:
                    state["left"] -= 1
                    self.send_error(503)
                    return
                super().do_GET()

            def log_message(self, *a):
                pass

        self.state = state
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()


def test_download_retries_and_verifies(cifar_archives, tmp_path):
    arc = cifar_archives["cifar10"]
    with _Server(arc.path.parent, fail_first=2) as srv:
        dest = download(f"{srv.url}/{arc.path.name}", tmp_path / "cache" / "a.tar.gz", md5=arc.md5,
                        retries=3, backoff=0.01, progress=False)
        assert srv.state["hits"] == 3
    assert dest.read_bytes() == arc.path.read_bytes()


def test_download_md5_mismatch_keeps_nothing(cifar_archives, tmp_path):
    arc = cifar_archives["cifar10"]
    with _Server(arc.path.parent) as srv:
        with pytest.raises(SourceError, match="does not match its md5"):
            download(f"{srv.url}/{arc.path.name}", tmp_path / "a.tar.gz", md5="0" * 32, backoff=0.01, progress=False)
        with pytest.raises(SourceError, match="after 2 attempts"):
            download(f"{srv.url}/missing.tar.gz", tmp_path / "b.tar.gz", retries=1, backoff=0.01, progress=False)
    assert list(tmp_path.iterdir()) == []


def test_dataset_name_downloads_into_cache(cifar_archives, tmp_path, monkeypatch):
    arc = cifar_archives["cifar10"]
    with _Server(arc.path.parent) as srv:
        spec = dataclasses.replace(cifar_mod.SPECS["cifar10"], url=f"{srv.url}/{arc.path.name}", md5=arc.md5)
        monkeypatch.setitem(cifar_mod.SPECS, "cifar10", spec)
        src = open_source("cifar10", cache=tmp_path / "cache", split="test", progress=False)
        assert (tmp_path / "cache" / arc.path.name).exists()
        assert np.array_equal(src.images, arc.test["images"])
    # second use: from the cache, no server needed
    src2 = open_source("cifar10", cache=tmp_path / "cache", split="test", progress=False)
    assert np.array_equal(src2.images, arc.test["images"])


def test_without_network_the_error_says_how_to_give_the_archive(tmp_path, monkeypatch):
    spec = dataclasses.replace(cifar_mod.SPECS["cifar100"], url="http://cifar.invalid/cifar-100-python.tar.gz")
    monkeypatch.setitem(cifar_mod.SPECS, "cifar100", spec)
    cache = tmp_path / "cache"
    with pytest.raises(SourceError) as err:
        open_source("cifar100", cache=cache, progress=False)
    text = str(err.value)
    assert "cannot download" in text and "DATA=path/to/cifar-100-python.tar.gz" in text and str(cache) in text
    assert list(cache.iterdir()) == []  # no partial file left in the cache


def test_a_renamed_cifar_archive_is_recognised_by_its_content(cifar_archives, tmp_path):
    renamed = tmp_path / "my-download.tgz"
    renamed.write_bytes(cifar_archives["cifar100"].path.read_bytes())
    assert detect_kind(renamed) == "cifar100"
    src = open_source(renamed, split="test", progress=False, verify=False)
    assert np.array_equal(src.images, cifar_archives["cifar100"].test["images"])
    plain = tmp_path / "other.tar"
    with tarfile.open(plain, "w") as tar:
        tar.add(renamed, arcname="photos/a/x.bin")
    assert detect_kind(plain) == "imagefolder"


def test_a_member_larger_than_any_cifar_member_is_not_read(cifar_archives, tmp_path, monkeypatch):
    from fastvis.sources import cifar

    arc = cifar_archives["cifar100"]
    monkeypatch.setattr(cifar, "MAX_MEMBER_BYTES", 1000)  # the test archive's train member is larger
    with pytest.raises(SourceError, match=r"cifar-100-python/train is .* MiB, larger than any member of the "
                                          r"cifar100 archive can be \(0 MiB\): not read"):
        CifarSource("cifar100", arc.path, verify=False)
