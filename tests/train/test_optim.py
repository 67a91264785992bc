"""The optimiser's parts: parameter roles, lr scales, Muon on matrix-shaped filters, lookahead and
the test-time augmentation views."""
from __future__ import annotations

import json

import pytest
import torch

from fastvis.models import create_model
from fastvis.models.layers import MatrixConv2d, matrix_filters
from fastvis.train import optim, recipe
from fastvis.train.ema import Lookahead
from fastvis.train.evaluation import tta_logits, tta_views
from fastvis.train.model import make_optimizer
from fastvis.train.optim import Optimizer, newton_schulz, parameter_roles


def _opt(model, kind="sgd", **kw):
    args = dict(lr=0.1, momentum=0.9, nesterov=True, weight_decay=5e-4, norm_lr_scale=64.0, head_lr_scale=1.0,
                muon_lr=0.24, muon_momentum=0.6, ns_steps=3, ns_dtype="float32")
    args.update(kw)
    return Optimizer(model, kind, **args)


def test_fastnet_parameters_by_role():
    model = create_model("fastnet_s", 10)
    roles = parameter_roles(model)
    assert roles["whiten_bias"] == [model.whiten.bias]  # the whitening weights are not trained
    assert all(p is not model.whiten.weight for ps in roles.values() for p in ps)
    assert roles["head"] == [model.fc.weight]
    assert len(roles["filters"]) == 6 and all(p.ndim == 4 for p in roles["filters"])
    assert len(roles["norm"]) == 6 and all(p.ndim == 1 for p in roles["norm"])  # BatchNorm shifts only
    trained = sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert trained == sum(p.numel() for ps in roles.values() for p in ps)


def test_each_group_gets_its_lr_scale_and_the_whitening_bias_stops():
    model = create_model("fastnet_s", 10)
    opt = _opt(model, head_lr_scale=4.0)
    base = opt.set_lr(0.5, whiten_factor=0.0)
    assert base == pytest.approx(0.05)
    lrs = {g["role"]: g["lr"] for g in opt.param_groups}
    assert lrs["norm"] == pytest.approx(0.05 * 64) and lrs["head"] == pytest.approx(0.05 * 4)
    assert lrs["whiten_bias"] == 0.0 and lrs["filters"] == pytest.approx(0.05)


def test_muon_trains_filters_as_matrices_and_keeps_their_norm():
    torch.manual_seed(0)
    model = create_model("fastnet_s", 10)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    opt = _opt(model, "muon")
    convs = [m for m in model.modules() if isinstance(m, MatrixConv2d)]
    assert len(convs) == 6 and all(m.weight.ndim == 2 for m in convs)
    assert not isinstance(model.whiten, MatrixConv2d)  # frozen: left as it was
    x, y = torch.randn(16, 3, 32, 32), torch.randint(0, 10, (16,))
    for _ in range(3):
        opt.set_lr(1.0)
        loss = torch.nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    for m in convs:
        assert float(m.weight.detach().norm()) == pytest.approx(m.weight.shape[0] ** 0.5, rel=1e-4)
    state = model.state_dict()  # checkpoints keep the 4-D filters: an ordinary model loads them
    assert all(state[k].shape == v.shape for k, v in before.items())
    plain = create_model("fastnet_s", 10)
    plain.load_state_dict(state)
    assert torch.allclose(plain(x), model(x), atol=1e-5)
    assert matrix_filters(model) == [m.weight for m in convs]  # twice: the same matrices
    saved = opt.state_dict()
    again = _opt(create_model("fastnet_s", 10), "muon")
    again.load_state_dict(saved)
    with pytest.raises(Exception, match="another optimizer"):
        _opt(create_model("fastnet_s", 10), "sgd").load_state_dict(saved)


def test_newton_schulz_in_float32_is_torchs_iteration():
    """The float32 orthogonalisation computes torch's iteration (its coefficients, its steps): the
    same matrix in float64 agrees to float32's precision, and torch's bf16 result to bf16's."""
    torch_ns = torch.optim._muon._zeropower_via_newtonschulz
    coefficients = (3.4445, -4.7750, 2.0315)
    torch.manual_seed(0)
    for shape in [(32, 216), (300, 40)]:  # wide and tall
        g = torch.randn(*shape)
        ours = newton_schulz(g, coefficients, 3, 1e-7)
        assert ours.dtype == torch.float32 and ours.shape == g.shape
        exact = newton_schulz(g.double(), coefficients, 3, 1e-7)  # the same code in float64
        assert torch.allclose(ours.double(), exact, atol=1e-5)
        theirs = torch_ns(g, coefficients, 3, 1e-7).float()
        assert (ours - theirs).norm() / ours.norm() < 0.02
        assert not torch.equal(ours, theirs)  # computed in another precision, not torch's
        singular = torch.linalg.svdvals(ours)  # orthogonalised: singular values near 1, not g's spread
        assert 0.3 < float(singular.min()) and float(singular.max()) < 1.5


def test_muon_step_orthogonalises_in_the_precision_asked(monkeypatch):
    torch_ns = torch.optim._muon._zeropower_via_newtonschulz
    calls = []

    def counting(*args):
        calls.append(args[0].shape)
        return newton_schulz(*args)

    monkeypatch.setattr(optim, "newton_schulz", counting)
    results = {}
    for dtype in ("float32", "bfloat16"):
        torch.manual_seed(0)
        model = create_model("fastnet_s", 10)
        opt = _opt(model, "muon", ns_dtype=dtype)
        calls.clear()
        x, y = torch.randn(8, 3, 32, 32), torch.randint(0, 10, (8,))
        torch.nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
        assert len(calls) == (6 if dtype == "float32" else 0)  # one per filter, or torch's own
        assert torch.optim._muon._zeropower_via_newtonschulz is torch_ns  # restored after the step
        results[dtype] = [p.detach().clone() for p in opt.muon.param_groups[0]["params"]]
    for a, b in zip(results["float32"], results["bfloat16"]):
        assert not torch.equal(a, b) and torch.allclose(a, b, atol=0.05)

    def failing(*args):
        raise RuntimeError("boom")

    monkeypatch.setattr(optim, "newton_schulz", failing)
    model = create_model("fastnet_s", 10)
    opt = _opt(model, "muon")
    model(torch.randn(4, 3, 32, 32)).sum().backward()
    with pytest.raises(RuntimeError, match="boom"):
        opt.step()
    assert torch.optim._muon._zeropower_via_newtonschulz is torch_ns  # restored after a failure too
    with pytest.raises(ValueError, match="ns_dtype"):
        _opt(model, "muon", ns_dtype="float16")


def test_the_recipe_orthogonalises_in_float32_off_the_gpu():
    from fastvis.train.config import TrainConfig

    assert recipe.muon_ns_dtype("cpu") == "float32" and recipe.muon_ns_dtype("mps") == "float32"
    assert recipe.muon_ns_dtype("cuda") == "bfloat16"
    cfg = TrainConfig()
    cfg.optim.optimizer = "muon"
    opt = make_optimizer(create_model("fastnet_s", 10), cfg, 0.1)
    assert opt.ns_dtype == "float32"


def test_lookahead_averages_more_as_training_ends():
    model = torch.nn.Linear(2, 1, bias=False)
    la = Lookahead(model, every=5, base=0.95)
    assert la.decay(0.0) == 0.0 and la.decay(1.0) == pytest.approx(0.95 ** 5)
    with torch.no_grad():
        model.weight.fill_(1.0)
    la.update(model, step=4, progress=1.0)  # not a 5th step: nothing
    assert float(model.weight[0, 0]) == 1.0
    start = float(la.average["weight"][0, 0])
    la.update(model, step=5, progress=1.0)
    d = 0.95 ** 5
    expected = d * start + (1 - d) * 1.0
    assert float(model.weight[0, 0]) == pytest.approx(expected) and float(la.average["weight"][0, 0]) == \
        pytest.approx(expected)


def test_tta_views_weigh_to_one_and_shift_by_reflection():
    for tta, shift in ((False, 0), (True, 0), (True, 1), (True, 2)):
        views = tta_views(tta, shift)
        assert sum(w for w, _ in views) == pytest.approx(1.0)
        assert len(views) == (1 if not tta else 2 if not shift else 6)
    x = torch.arange(16.0).reshape(1, 1, 4, 4)
    views = [v for _, v in tta_views(True, 1, x)]
    assert torch.equal(views[1], x.flip(3))
    assert torch.equal(views[2][0, 0, 1:, 1:], x[0, 0, :3, :3])  # moved down-right by one pixel
    assert torch.equal(views[4][0, 0, :3, :3], x[0, 0, 1:, 1:])  # moved up-left
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 3))
    assert torch.allclose(tta_logits(model, x, False, 0), model(x))


def test_step_benchmark_times_each_optimiser(tmp_path, capsys):
    from fastvis.bench.step import main

    out = tmp_path / "step.json"
    rows = main(["--models", "fastnet_s", "--batch", "8", "--steps", "1", "--json", str(out)])
    assert [(r["optimizer"], r["ns_dtype"]) for r in rows] == [("sgd", "float32"), ("muon", "bfloat16"),
                                                               ("muon", "float32")]
    assert all(r["forward_backward_s"] > 0 and r["step_s"] > 0 and r["images_per_second"] > 0 for r in rows)
    table = json.loads(out.read_text())["table"]
    assert len(table) == 6 and "| fastnet_s | muon | bfloat16 |" in table[4]
    assert "orthogonalisation" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["--steps", "0"])


def test_the_recipe_s_optimiser_by_model_channels_and_mode():
    assert recipe.optimizer("fastnet_s") == "muon" and recipe.optimizer("resnet18") == "sgd"  # "*": the rest
    assert recipe.optimizer("resnet32", incremental=True) == recipe.get("incremental_optimizer") == "muon"
    for incremental in (False, True):  # one channel (radiographs): its own, whatever the model or mode
        assert recipe.optimizer("fastnet_s", 1, incremental) == recipe.get("optimizer_one_channel") == "sgd"
