"""Files given to --resume or --teacher that load safely but are not fastvis checkpoints: one
line naming what the file is not (never a traceback, never an attempt at a huge allocation)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from fastvis.models import create_model


def _tinynet(num_classes: int = 4) -> dict:
    return create_model("tinynet", num_classes).state_dict()


CASES = {
    "random bytes": (None, "not a checkpoint (neither a torch zip file nor a pickle)"),
    "a list": ([1, 2, 3], "it holds a list, not a dict"),
    "no weights": ({"a": 1}, "no 'model'"),
    "no model name": ({"model": {}}, "no 'model_name'"),
    "an unknown model": ({"model": {}, "model_name": "nosuch", "num_classes": 4}, "none of fastvis's models"),
    "negative classes": ({"model": {}, "model_name": "tinynet", "num_classes": -5}, "-5 classes"),
    "huge classes": ({"model": {}, "model_name": "tinynet", "num_classes": 2**45}, "35184372088832 classes"),
    "classes as text": ({"model": {}, "model_name": "tinynet", "num_classes": "4"}, "'num_classes' is a str"),
    "weights of another shape": ({"model": _tinynet(10), "model_name": "tinynet", "num_classes": 4,
                                  "optimizer": {}, "step": 3, "rng": torch.get_rng_state(), "history": []},
                                 "size mismatch for fc.weight"),
}


@pytest.mark.parametrize("option", ["--teacher", "--resume"])
@pytest.mark.parametrize("case", list(CASES))
def test_a_file_that_is_no_fastvis_checkpoint_is_one_line(data, tmp_path, capsys, option, case):
    from fastvis.cli.train import main

    obj, message = CASES[case]
    path = tmp_path / "ckpt" / "checkpoint.pt"
    path.parent.mkdir()
    if obj is None:
        path.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    else:
        torch.save(obj, path)
    args = ["--data", data[0], "--val", data[1], "--model", "tinynet", "--epochs", "1", "--device", "cpu", "-q",
            "--batch-size", "32", "--out", str(tmp_path / "run"), option, str(path)]
    assert main(args) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(path) in err and message in err, err
    assert "could run code" not in err


def test_a_resume_needs_a_run_s_state_not_only_weights(data, tmp_path, capsys):
    from fastvis.cli.train import main

    path = tmp_path / "w.pt"
    torch.save({"model": _tinynet(), "model_name": "tinynet", "num_classes": 4}, path)  # enough for a teacher
    base = ["--data", data[0], "--val", data[1], "--model", "tinynet", "--epochs", "1", "--device", "cpu", "-q",
            "--batch-size", "32"]
    assert main([*base, "--out", str(tmp_path / "t"), "--teacher", str(path)]) == 0
    assert main([*base, "--out", str(tmp_path / "r"), "--resume", str(path)]) == 1
    assert "not a fastvis checkpoint (no 'optimizer')" in capsys.readouterr().err
