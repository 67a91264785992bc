"""The recipe table: every value explained and backed, and the rules that read it."""
from __future__ import annotations

import ast
import json

import pytest

from fastvis.models import create_model, list_models
from fastvis.train import recipe
from tests.helpers import REPO, train_config


def test_every_value_has_a_unit_a_reason_and_evidence_that_exists():
    headings = {line.lstrip("#").strip() for line in (REPO / "bench" / "RESULTS.md").read_text().splitlines()
                if line.startswith("#")}
    for name, v in recipe.RECIPE.items():
        assert v.unit.strip() and len(v.why.split()) >= 4, name
        if v.evidence.startswith("RESULTS: "):
            title = v.evidence[len("RESULTS: "):]
            assert any(h.startswith(title) for h in headings), f"{name}: no RESULTS.md section {title!r}"
        else:
            assert (REPO / v.evidence).is_file(), f"{name}: {v.evidence} does not exist"


def test_ladders_name_registered_models_largest_first_and_end_on_a_floor():
    for device in ("cpu", "cuda"):
        ladder = recipe.get(f"ladder_{device}")
        assert all(name in list_models() for name, _, _ in ladder)
        sizes = [sum(p.numel() for p in create_model(name, 100).parameters()) for name, _, _ in ladder]
        assert sizes == sorted(sizes, reverse=True)
        assert ladder[-1][1:] == (0, 0)  # the floor takes any budget and a set of any size
    assert set(recipe.get("epochs_model").values()) <= set(list_models())


@pytest.mark.parametrize("samples,device,processes,expected", [
    (45_000, "cpu", 1, recipe.get("batch")["cpu"]),  # CIFAR-size: the device's batch
    (1_000, "cpu", 1, 16),  # 1,000 images: 62 steps an epoch instead of 1
    (5_000, "cpu", 1, 128),  # 39 steps
    (100, "cpu", 1, 16),  # never below the smallest batch
    (1_000, "cuda", 2, 16),
    (1_000, "cpu", 3, 15),  # a multiple of the processes
])
def test_the_batch_gives_an_epoch_enough_steps(samples, device, processes, expected):
    b = recipe.batch_size(device, samples, processes)
    assert b == expected
    if b > recipe.get("min_batch"):
        assert samples // b >= recipe.get("min_steps_per_epoch")


def test_the_recipe_prints_from_the_command_line():
    from tests.helpers import train_cli

    out = train_cli("--recipe", check=0).stdout
    assert all(name in out for name in recipe.RECIPE) and "evidence: " in out


def test_learning_rates_scale_with_the_batch():
    assert recipe.peak_lr("fastnet_s", "sgd", 256) == pytest.approx(recipe.get("lr_sgd")["fastnet_s"] / 2)
    assert recipe.peak_lr("resnet18", "sgd", 512) == recipe.get("lr_sgd")["*"]
    short = recipe.keyed("lr_muon_sgd", "fastnet")[0][1]
    assert recipe.peak_lr("fastnet", "muon", 1024) == pytest.approx(2 * short)


def test_under_muon_a_longer_run_takes_a_lower_peak_rate():
    points = recipe.keyed("lr_muon_sgd", "fastnet")
    (e0, lr0), (e1, lr1) = points[0], points[-1]
    assert e0 < e1 and lr0 > lr1
    assert recipe.muon_sgd_lr(None) == recipe.muon_sgd_lr(1.0) == recipe.muon_sgd_lr(e0) == lr0
    assert recipe.muon_sgd_lr(e1) == pytest.approx(lr1) and recipe.muon_sgd_lr(10 * e1) == lr1
    between = [recipe.muon_sgd_lr(e) for e in (e0, (e0 * e1) ** 0.5, e1)]
    assert between[1] == pytest.approx((lr0 * lr1) ** 0.5)  # geometric in both
    assert between == sorted(between, reverse=True)
    assert recipe.peak_lr("fastnet", "muon", 256, e1) == pytest.approx(lr1 / 2)
    assert recipe.peak_lr("fastnet", "sgd", 512, e1) == recipe.peak_lr("fastnet", "sgd", 512)  # SGD: as measured


def test_the_largest_net_never_takes_the_short_runs_high_rate():
    # fastnet_l did not learn at the small nets' 8-epoch rate; below its first point it keeps that
    # point's rate, and from the last point on it joins the others
    points = recipe.keyed("lr_muon_sgd", "fastnet_l")
    low, last = points[0][1], points[-1][0]
    short = recipe.muon_sgd_lr(None, "fastnet")
    assert low < short and recipe.muon_sgd_lr(None, "fastnet_l") == recipe.muon_sgd_lr(2.0, "fastnet_l") == low
    assert recipe.peak_lr("fastnet_l", "muon", 512, 8.0) == low < recipe.peak_lr("fastnet", "muon", 512, 8.0)
    assert recipe.peak_lr("fastnet_l", "muon", 512, 2 * last) == recipe.peak_lr("fastnet", "muon", 512, 2 * last)


@pytest.mark.parametrize("epochs", [2.0, 16.0])
def test_a_run_of_fixed_epochs_takes_the_rate_for_its_length(data, tmp_path, epochs):
    from fastvis.train.loop import Trainer

    t = Trainer(train_config(data, tmp_path, optimizer="muon", lr=None, epochs=epochs))
    t.setup()
    assert t.planned_epochs == epochs
    assert t.peak_lr == pytest.approx(recipe.peak_lr("tinynet", "muon", 32, epochs))
    assert t.cfg.optim.lr is None  # the epochs decide it again on a resume
    assert t.optimizer.muon_peak == pytest.approx(recipe.get("muon_lr"))


def test_a_given_muon_rate_is_the_filters_peak(data, tmp_path):
    from fastvis.train.loop import Trainer

    t = Trainer(train_config(data, tmp_path, optimizer="muon", lr=None, muon_lr=0.05, epochs=4.0))
    t.setup()
    assert t.optimizer.muon_peak == pytest.approx(0.05) != recipe.get("muon_lr")


def test_a_budgeted_run_plans_its_epochs_from_the_speed_and_keeps_the_rate(data, tmp_path, monkeypatch):
    from fastvis.train import model, speed
    from fastvis.train.loop import Trainer
    from tests.helpers import FakeClock

    budget, epochs = 100.0, 12.0
    train_s = recipe.get("budget_model_share") * budget
    timed = []

    def fake_speed(net, *a, **k):
        timed.append(net)
        return speed.Speed(images_per_second=epochs * 256 / train_s, amp=False)

    monkeypatch.setattr(model, "measure_speed", fake_speed)
    # precision pinned: on a CPU with native bf16 the precision probe would time the model too,
    # through the same patched function, and this test is about the rate's plan on any machine
    cfg = train_config(data, tmp_path, optimizer="muon", lr=None, epochs=None, budget=budget, amp=False)
    t = Trainer(cfg, FakeClock())
    t.setup()
    assert len(timed) == 1 and t.data.n == 256
    assert t.planned_epochs == pytest.approx(epochs)
    expected = recipe.peak_lr("tinynet", "muon", 32, epochs)
    assert recipe.peak_lr("tinynet", "muon", 32) > expected > recipe.peak_lr("tinynet", "muon", 32, 100.0)
    assert t.peak_lr == pytest.approx(expected)
    saved = json.loads((tmp_path / "config.json").read_text())
    assert saved["optim"]["lr"] == pytest.approx(expected)  # a resume keeps the rate its first start chose


def test_a_run_takes_the_recipes_batch_for_its_data(data, tmp_path):
    from fastvis.train.loop import Trainer

    t = Trainer(train_config(data, tmp_path, batch_size=None))  # 256 samples: 16 steps of 16
    t.setup()
    assert t.cfg.optim.batch_size == 16 and t.steps_per_epoch == 16
    assert t.hyper()["batch_size"] == 16


def test_no_bare_tuning_constants_in_the_trainer():
    """Numbers that tune training belong in the recipe table. Elsewhere in the trainer and the
    class-incremental mode: small integers (counts, seed-stream keys), halves, percent, epsilons
    against a division by zero, and numbers on a line that says why they are not tuning
    (``# not tuning: ...``: units, seed mixing)."""
    found = []
    for folder in ("fastvis/train", "fastvis/incremental"):
        for path in sorted((REPO / folder).glob("*.py")):
            if path.name in ("recipe.py", "config.py", "report.py"):
                continue  # the table itself; option defaults beside their help; the report's page layout
            lines = path.read_text().splitlines()
            for node in ast.walk(ast.parse("\n".join(lines))):
                if isinstance(node, ast.Constant) and type(node.value) in (int, float):
                    line = lines[node.lineno - 1]
                    small = type(node.value) is int and 0 <= node.value <= 10
                    plain = node.value in (0.0, 0.5, 1.0, 100) or 0 < node.value < 1e-6
                    if not (small or plain or "# not tuning" in line):
                        found.append(f"{path.relative_to(REPO)}:{node.lineno}: {node.value!r}")
    assert not found, "\n".join(found)
